/*
 * The discovered domains, on the loop. What libvirt last said of each
 * domain with valid metadata is kept (found); every change builds the
 * discovered VMs again against the running configuration and applies them
 * with the [vm] sections through odrsd_vms_apply(), as a reload does.
 * Metadata that does not parse is refused like a bad file: the domain keeps
 * what it had (or stays unmanaged) and the problems are logged, prefixed
 * with its name.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "discover.h"
#include "evlog.h"
#include "log.h"
#include "metadata.h"
#include "odrsd.h"
#include "snapfile.h"

struct found {
	struct found *next;
	char *name;
	char *xml;   /* its metadata, as it last parsed */
	bool listed; /* named by the listing in progress */
};

struct discovery {
	struct found *found;
	struct discovered cur; /* where the discovered VMs' confs point */
	bool listing;	       /* applied once the listing ends */
};

static struct discovery *discovery(struct odrsd *d)
{
	if (!d->discovery)
		d->discovery = calloc(1, sizeof(*d->discovery));
	return d->discovery;
}

static struct found **find(struct discovery *s, const char *name)
{
	struct found **p;

	for (p = &s->found; *p && strcmp((*p)->name, name); p = &(*p)->next)
		;
	return p;
}

static void found_free(struct found *f)
{
	free(f->name);
	free(f->xml);
	free(f);
}

static void diag_domain(void *ctx, const char *file, unsigned line, const char *msg)
{
	log_err("%s: %s", file, msg);
}

void discover_abandon(struct discovered *set)
{
	for (size_t i = 0; i < set->n; i++)
		wk_vmconf_clear(&set->vms[i]);
	free(set->vms);
	set->vms = NULL;
	set->n = 0;
}

void discover_commit(struct odrsd *d, struct discovered *set)
{
	struct discovery *s = discovery(d);

	if (!s) { /* nothing was found: set is empty */
		discover_abandon(set);
		return;
	}
	discover_abandon(&s->cur);
	s->cur = *set;
	set->vms = NULL;
	set->n = 0;
}

/* The [vm] section or the discovered domain already holding one of c's addresses, or NULL. */
static const char *address_taken(struct wk_vmtable *t, const struct wk_vmconf *c)
{
	const struct wk_vmconf *other = wk_vmtable_by_ip(t, c->ip);

	if (!other && c->has_ip6)
		other = wk_vmtable_by_ip6(t, c->ip6);
	return other ? other->name : NULL;
}

int discover_build(struct odrsd *d, const struct wk_config *cfg, struct discovered *out)
{
	struct discovery *s = d->discovery;
	struct wk_vmtable *t;
	size_t n = 0;
	int r = 0;

	out->vms = NULL;
	out->n = 0;
	if (cfg->discover != WK_DISCOVER_LIBVIRT || !s || !s->found)
		return 0;
	for (struct found *f = s->found; f; f = f->next)
		n++;
	if (!(out->vms = calloc(n, sizeof(*out->vms))) || !(t = wk_vmtable_new(cfg->nvms + n))) {
		free(out->vms);
		out->vms = NULL;
		return -ENOMEM;
	}
	for (size_t i = 0; i < cfg->nvms && r == 0; i++) {
		r = wk_vmtable_add(t, cfg->vms[i].ip, NULL, &cfg->vms[i]);
		if (r == 0 && cfg->vms[i].has_ip6)
			r = wk_vmtable_add_ip6(t, cfg->vms[i].ip6, &cfg->vms[i]);
	}
	for (struct found *f = s->found; f && r == 0; f = f->next) {
		struct wk_vmconf *c = &out->vms[out->n];
		const char *other;

		if (wk_config_vm(cfg, f->name))
			continue; /* its [vm] section wins */
		/* It parsed before: only an allocation fails now. */
		if ((r = metadata_parse(cfg, f->name, f->xml, diag_domain, NULL, c)) < 0)
			break;
		if ((other = address_taken(t, c))) {
			log_err("%s: its odrs metadata names an address of %s: not managed", f->name, other);
			wk_vmconf_clear(c);
			continue;
		}
		if ((r = wk_vmtable_add(t, c->ip, NULL, c)) == 0 && c->has_ip6)
			r = wk_vmtable_add_ip6(t, c->ip6, c);
		out->n++;
	}
	wk_vmtable_free(t);
	if (r < 0)
		discover_abandon(out);
	return r < 0 ? -ENOMEM : 0;
}

/* The VM set follows what was found. */
static void apply(struct odrsd *d)
{
	struct discovered set;
	char err[512];

	if (discover_build(d, d->cfg, &set) < 0) {
		log_err("discover: out of memory; the managed VMs stay as they are");
		return;
	}
	if (odrsd_vms_apply(d, d->cfg, set.vms, set.n, "discover", NULL, NULL, err, sizeof(err)) < 0) {
		log_err("discover: %s", err);
		discover_abandon(&set);
		return;
	}
	discover_commit(d, &set);
}

/*
 * A discovered VM no longer managed. Asleep, its image (or its paused
 * domain) is the guest's only state: it is kept, and said so.
 */
static void report_gone(struct odrsd *d, const char *name)
{
	struct vm *vm = vm_by_name(d, name);

	if (!vm || !discover_owns(d, vm))
		return;
	if (vm->state == VM_HIBERNATED || vm->state == VM_HIBERNATING) {
		log_warn("%s: undefined, or its odrs metadata removed, while hibernated: no longer managed; "
			 "its image %s/%s" SNAPFILE_SUFFIX
			 " is kept (define the domain again, or virsh restore it)",
			 name, d->cfg->snapshot_dir, name);
		evlog_emit("undiscovered", name,
			   json_pack("{s:s, s:s++}", "state", vm_state_name(vm->state), "image",
				     d->cfg->snapshot_dir, "/", name, SNAPFILE_SUFFIX));
		return;
	}
	if (vm->state == VM_DOZING || vm->state == VM_DOZING_OFF)
		log_warn("%s: undefined, or its odrs metadata removed, while dozing: no longer managed; "
			 "the domain stays paused (virsh resume it)",
			 name);
	else
		log_info("%s: undefined, or its odrs metadata removed: no longer managed", name);
	evlog_emit("undiscovered", name, json_pack("{s:s}", "state", vm_state_name(vm->state)));
}

/* Whether c's addresses are free, or domain's already: another VM's are refused as a file's are. */
static bool address_free(struct odrsd *d, const char *domain, const struct wk_vmconf *c)
{
	const struct vm *other = wk_vmtable_by_ip(d->table, c->ip);
	char ip[INET6_ADDRSTRLEN];

	if (other && strcmp(other->name, domain)) {
		inet_ntop(AF_INET, &c->ip, ip, sizeof(ip));
		log_err("%s: ip %s is already used by %s", domain, ip, other->name);
		return false;
	}
	other = c->has_ip6 ? wk_vmtable_by_ip6(d->table, c->ip6) : NULL;
	if (other && strcmp(other->name, domain)) {
		inet_ntop(AF_INET6, c->ip6, ip, sizeof(ip));
		log_err("%s: ip6 %s is already used by %s", domain, ip, other->name);
		return false;
	}
	return true;
}

/* Take what libvirt said of a domain; whether the managed VMs change. */
static bool take(struct odrsd *d, struct discovery *s, const char *domain, const char *xml)
{
	struct found **p = find(s, domain), *f = *p;
	struct wk_vmconf c;
	char *copy;

	if (f)
		f->listed = true;
	if (!xml) {
		if (!f)
			return false;
		report_gone(d, domain);
		*p = f->next;
		found_free(f);
		return true;
	}
	if (f && !strcmp(f->xml, xml))
		return false;
	if (metadata_parse(d->cfg, domain, xml, diag_domain, NULL, &c) < 0 ||
	    (!wk_config_vm(d->cfg, domain) && !address_free(d, domain, &c))) {
		log_err("%s: odrs metadata refused; %s", domain,
			f ? "its previous metadata stays in force" : "not managed");
		wk_vmconf_clear(&c);
		return false;
	}
	wk_vmconf_clear(&c);
	if (!(copy = strdup(xml)) || (!f && !(f = calloc(1, sizeof(*f))))) {
		free(copy);
		log_err("%s: odrs metadata: out of memory", domain);
		return false;
	}
	if (!f->name) {
		if (!(f->name = strdup(domain))) {
			free(copy);
			free(f);
			log_err("%s: odrs metadata: out of memory", domain);
			return false;
		}
		f->listed = true;
		f->next = s->found;
		s->found = f;
	}
	free(f->xml);
	f->xml = copy;
	if (wk_config_vm(d->cfg, domain)) {
		log_info("%s: odrs metadata found; its [vm %s] section wins", domain, domain);
		return false;
	}
	evlog_emit("discovered", domain, json_pack("{s:s}", "metadata", xml));
	return true;
}

bool discover_owns(const struct odrsd *d, const struct vm *vm)
{
	const struct discovery *s = d->discovery;

	return s && vm->conf >= s->cur.vms && vm->conf < s->cur.vms + s->cur.n;
}

void discover_domain(struct odrsd *d, const char *domain, const char *xml)
{
	struct discovery *s;

	if (d->cfg->discover != WK_DISCOVER_LIBVIRT || !(s = discovery(d)))
		return;
	if (take(d, s, domain, xml) && !s->listing)
		apply(d);
}

void discover_listing(struct odrsd *d, bool done)
{
	struct discovery *s;

	if (d->cfg->discover != WK_DISCOVER_LIBVIRT || !(s = discovery(d)))
		return;
	s->listing = !done;
	if (!done) {
		for (struct found *f = s->found; f; f = f->next)
			f->listed = false;
		return;
	}
	for (struct found **p = &s->found; *p;) {
		struct found *f = *p;

		if (f->listed) {
			p = &f->next;
			continue;
		}
		report_gone(d, f->name);
		*p = f->next;
		found_free(f);
	}
	/* What the listing named was taken without applying: once for all. */
	apply(d);
}
