/*
 * The snapshot-file protocol; snapfile.h describes it. Every step is one
 * rename or unlink of a file this node owns (or of the image, which the
 * protocol hands from node to node by rename), followed by a directory
 * fsync, so that a crash between two steps leaves a state recover() settles.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "snapfile.h"

/* libvirt writes the second magic first and the first once the state is complete. */
#define SAVE_MAGIC	   "LibvirtQemudSave"
#define SAVE_MAGIC_PARTIAL "LibvirtQemudPart"
#define SAVE_MAGIC_LEN	   16
#define SAVE_VERSION_MAX   2
/* magic, then version, data_len, was_running, format, cookieOffset, unused[14] */
#define SAVE_HEADER_LEN (SAVE_MAGIC_LEN + 19 * 4)
/* The domain XML that follows the header; larger is no save image of ours. */
#define SAVE_XML_MAX (4u << 20)

#define PART_INFIX   SNAPFILE_SUFFIX ".part."
#define CLAIM_INFIX  SNAPFILE_SUFFIX ".restoring."
#define LEGACY_IMAGE ".img"
#define LEGACY_CLAIM ".img.restoring."

static bool name_ok(const char *s, size_t max)
{
	size_t len = strnlen(s, max);

	return len > 0 && len < max && s[0] != '.' && !strchr(s, '/');
}

int snapfile_init(struct snapfile *sf, const char *dir, const char *name, const char *node)
{
	size_t n = sizeof(sf->image);

	if (!name_ok(name, sizeof(sf->name)) || !name_ok(node, sizeof(sf->node)))
		return -EINVAL;
	if ((size_t)snprintf(sf->dir, sizeof(sf->dir), "%s", dir) >= sizeof(sf->dir) ||
	    (size_t)snprintf(sf->image, n, "%s/%s" SNAPFILE_SUFFIX, dir, name) >= n ||
	    (size_t)snprintf(sf->part, n, "%s/%s" PART_INFIX "%s", dir, name, node) >= n ||
	    (size_t)snprintf(sf->claim, n, "%s/%s" CLAIM_INFIX "%s", dir, name, node) >= n ||
	    (size_t)snprintf(sf->legacy_image, n, "%s/%s" LEGACY_IMAGE, dir, name) >= n ||
	    (size_t)snprintf(sf->legacy_claim, n, "%s/%s" LEGACY_CLAIM "%s", dir, name, node) >= n)
		return -ENAMETOOLONG;
	strcpy(sf->name, name);
	strcpy(sf->node, node);
	return 0;
}

static uint32_t get_u32(const unsigned char *p, bool swap)
{
	uint32_t v;

	memcpy(&v, p, sizeof(v));
	return swap ? __builtin_bswap32(v) : v;
}

/* The name as libvirt's XML writer escapes text. */
static void xml_escape(const char *s, char *out, size_t len)
{
	size_t at = 0;

	for (; *s && at + 7 < len; s++) {
		const char *e = *s == '&'    ? "&amp;"
				: *s == '<'  ? "&lt;"
				: *s == '>'  ? "&gt;"
				: *s == '"'  ? "&quot;"
				: *s == '\'' ? "&apos;"
					     : NULL;
		if (e) {
			memcpy(out + at, e, strlen(e));
			at += strlen(e);
		} else {
			out[at++] = *s;
		}
	}
	out[at] = '\0';
}

/* The first <name> of the domain XML is the domain's own (libvirt writes it first). */
static bool xml_names(const char *xml, const char *name)
{
	char want[sizeof(((struct snapfile *)0)->name) * 6 + 16], esc[sizeof(want) - 16];
	const char *at = strstr(xml, "<name>");

	if (!at || strncmp(xml + strspn(xml, " \t\r\n"), "<domain", 7) != 0)
		return false;
	xml_escape(name, esc, sizeof(esc));
	snprintf(want, sizeof(want), "<name>%s</name>", esc);
	return strncmp(at, want, strlen(want)) == 0;
}

int snapfile_header_check(const char *path, const char *name)
{
	unsigned char h[SAVE_HEADER_LEN];
	uint32_t version, xml_len;
	bool partial, swap = false, ok;
	char *xml;
	ssize_t n;
	int fd, r = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return -errno;
	n = pread(fd, h, sizeof(h), 0);
	if (n < 0) {
		r = -errno;
		goto out;
	}
	partial = n >= SAVE_MAGIC_LEN && memcmp(h, SAVE_MAGIC_PARTIAL, SAVE_MAGIC_LEN) == 0;
	if (n != (ssize_t)sizeof(h) || (!partial && memcmp(h, SAVE_MAGIC, SAVE_MAGIC_LEN) != 0)) {
		/* An unfinished save may not have written its whole header yet. */
		r = partial || n == 0 ? -EINPROGRESS : -EBADMSG;
		goto out;
	}
	/* libvirt reads images written on a host of the other byte order. */
	version = get_u32(h + SAVE_MAGIC_LEN, false);
	if (version > SAVE_VERSION_MAX) {
		swap = true;
		version = __builtin_bswap32(version);
	}
	xml_len = get_u32(h + SAVE_MAGIC_LEN + 4, swap);
	if (version == 0 || version > SAVE_VERSION_MAX || xml_len == 0 || xml_len > SAVE_XML_MAX) {
		r = -EBADMSG;
		goto out;
	}
	if (!(xml = malloc(xml_len + 1))) {
		r = -ENOMEM;
		goto out;
	}
	n = pread(fd, xml, xml_len, SAVE_HEADER_LEN);
	if (n < 0) {
		r = -errno;
	} else {
		xml[n] = '\0';
		ok = (size_t)n == xml_len && xml_names(xml, name);
		r = !ok && partial ? -EINPROGRESS : !ok ? -EBADMSG : partial ? -EINPROGRESS : 0;
	}
	free(xml);
out:
	close(fd);
	return r;
}

static int fsync_dir(const char *dir)
{
	int fd, r = 0;

	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fsync(fd) < 0)
		r = -errno;
	close(fd);
	return r;
}

static int unlink_owned(const char *path)
{
	return unlink(path) < 0 && errno != ENOENT ? -errno : 0;
}

/* rename, then the directory: the new name survives a crash. */
static int rename_durably(const struct snapfile *sf, const char *from, const char *to)
{
	if (rename(from, to) < 0)
		return -errno;
	return fsync_dir(sf->dir);
}

static int file_size(const char *path, uint64_t *bytes)
{
	struct stat st;

	if (stat(path, &st) < 0)
		return -errno;
	*bytes = (uint64_t)st.st_size;
	return 0;
}

int snapfile_save_begin(const struct snapfile *sf)
{
	return unlink_owned(sf->part);
}

int snapfile_save_commit(const struct snapfile *sf, uint64_t *bytes)
{
	struct stat st;
	int fd, r = 0;

	/* A part file libvirt did not finish is never made restorable. */
	if ((r = snapfile_header_check(sf->part, sf->name)) < 0)
		return r == -EINPROGRESS ? -EBADMSG : r;
	fd = open(sf->part, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return -errno;
	if (fsync(fd) < 0 || fstat(fd, &st) < 0)
		r = -errno;
	close(fd);
	if (r < 0)
		return r;
	*bytes = (uint64_t)st.st_size;
	if (rename(sf->part, sf->image) < 0)
		return -errno;
	/* Not durably restorable: the part file it was, for the caller to undo the save from. */
	if ((r = fsync_dir(sf->dir)) < 0)
		rename(sf->image, sf->part);
	return r;
}

int snapfile_save_abort(const struct snapfile *sf)
{
	int r = unlink_owned(sf->part);

	return r < 0 ? r : fsync_dir(sf->dir);
}

int snapfile_claim(const struct snapfile *sf, uint64_t *bytes)
{
	int r, back;

	if (rename(sf->image, sf->claim) < 0)
		return -errno;
	if ((r = snapfile_header_check(sf->claim, sf->name)) < 0) {
		/* Not ours to restore: it goes back as it was. */
		back = rename_durably(sf, sf->claim, sf->image);
		return r == -EINPROGRESS || r == -EBADMSG ? -EBADMSG : back < 0 ? back : r;
	}
	if ((r = fsync_dir(sf->dir)) < 0 || (r = file_size(sf->claim, bytes)) < 0) {
		back = rename_durably(sf, sf->claim, sf->image);
		return back < 0 ? back : r;
	}
	return 0;
}

int snapfile_release(const struct snapfile *sf)
{
	return rename_durably(sf, sf->claim, sf->image);
}

int snapfile_finish(const struct snapfile *sf)
{
	int r = unlink_owned(sf->claim);

	return r < 0 ? r : fsync_dir(sf->dir);
}

static bool exists(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0;
}

/* Other nodes' part and claim files of the domain: reported, never touched. */
static void scan_peers(const struct snapfile *sf, struct snapfile_state *st)
{
	char part[sizeof(sf->name) + 32], claim[sizeof(sf->name) + 32];
	size_t plen, clen;
	struct dirent *d;
	DIR *dir;

	plen = (size_t)snprintf(part, sizeof(part), "%s" PART_INFIX, sf->name);
	clen = (size_t)snprintf(claim, sizeof(claim), "%s" CLAIM_INFIX, sf->name);
	if (!(dir = opendir(sf->dir)))
		return;
	while ((d = readdir(dir))) {
		if (strncmp(d->d_name, claim, clen) == 0 && d->d_name[clen] &&
		    strcmp(d->d_name + clen, sf->node) != 0)
			snprintf(st->claimed_by, sizeof(st->claimed_by), "%s", d->d_name + clen);
		else if (strncmp(d->d_name, part, plen) == 0 && d->d_name[plen] &&
			 strcmp(d->d_name + plen, sf->node) != 0)
			snprintf(st->saving_on, sizeof(st->saving_on), "%s", d->d_name + plen);
	}
	closedir(dir);
}

/*
 * A file of an older version's names: adopted as the image (down) or
 * removed (running) only when its header shows a save image of the domain;
 * otherwise it is left and named in st->left.
 */
static int settle_legacy(const struct snapfile *sf, const char *path, bool running, struct snapfile_state *st)
{
	int r;

	if (!exists(path))
		return 0;
	if (snapfile_header_check(path, sf->name) != 0 || (!running && exists(sf->image))) {
		snprintf(st->left, sizeof(st->left), "%s", path);
		return 0;
	}
	if (running)
		return (r = unlink_owned(path)) < 0 ? r : fsync_dir(sf->dir);
	return rename_durably(sf, path, sf->image);
}

int snapfile_recover(const struct snapfile *sf, bool running, struct snapfile_state *st)
{
	int r = 0, h;

	memset(st, 0, sizeof(*st));
	if (running) {
		/* A restore that finished, a save that did not: this node's files go. */
		if ((r = unlink_owned(sf->claim)) < 0 || (r = unlink_owned(sf->part)) < 0)
			return r;
		/* Restorable, it would start a second instance over the live disk. */
		if (exists(sf->image)) {
			if (snapfile_header_check(sf->image, sf->name) == -EBADMSG)
				snprintf(st->left, sizeof(st->left), "%s", sf->image);
			else if ((r = unlink_owned(sf->image)) < 0)
				return r;
		}
	} else if (exists(sf->claim)) {
		/* A restore that died before the domain ran: the image was never used, unless saved again since. */
		r = exists(sf->image)		       ? unlink_owned(sf->claim)
		    : rename(sf->claim, sf->image) < 0 ? -errno
						       : 0;
		if (r < 0)
			return r;
	}
	if (!running && exists(sf->part)) {
		/* libvirt stops a domain only once its save is complete: then the part is the VM's state. */
		h = snapfile_header_check(sf->part, sf->name);
		if (h == 0)
			r = snapfile_save_commit(sf, &st->bytes);
		else if (h == -EINPROGRESS)
			r = unlink_owned(sf->part);
		else
			snprintf(st->left, sizeof(st->left), "%s", sf->part);
		if (r < 0)
			return r;
	}
	if ((r = fsync_dir(sf->dir)) < 0 && r != -ENOENT)
		return r;
	if ((r = settle_legacy(sf, sf->legacy_claim, running, st)) < 0 ||
	    (r = settle_legacy(sf, sf->legacy_image, running, st)) < 0)
		return r;
	st->image = file_size(sf->image, &st->bytes) == 0;
	/* Only a VM without an image needs to know: a scan reads the whole (shared) directory. */
	if (!st->image)
		scan_peers(sf, st);
	return 0;
}

/* NAME.odrs-save, NAME.odrs-save.part.NODE or NAME.odrs-save.restoring.NODE. */
static bool odrs_name(const char *f)
{
	const char *at = strstr(f, SNAPFILE_SUFFIX), *rest;

	if (!at || at == f)
		return false;
	rest = at + strlen(SNAPFILE_SUFFIX);
	if (!*rest)
		return true;
	if (strncmp(rest, ".part.", 6) == 0)
		return rest[6] != '\0';
	if (strncmp(rest, ".restoring.", 11) == 0)
		return rest[11] != '\0';
	return odrs_name(rest);
}

static bool libvirt_save_image(int dfd, const char *f)
{
	char magic[SAVE_MAGIC_LEN];
	struct stat st;
	ssize_t n;
	int fd;

	fd = openat(dfd, f, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	if (fd < 0)
		return false;
	n = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) ? read(fd, magic, sizeof(magic)) : -1;
	close(fd);
	return n == (ssize_t)sizeof(magic) && (memcmp(magic, SAVE_MAGIC, SAVE_MAGIC_LEN) == 0 ||
					       memcmp(magic, SAVE_MAGIC_PARTIAL, SAVE_MAGIC_LEN) == 0);
}

int snapfile_dir_check(const char *dir, char *foreign, size_t foreign_len)
{
	struct dirent *d;
	int r = 0;
	DIR *dp;

	if (!(dp = opendir(dir)))
		return errno == ENOENT ? 0 : -errno;
	while ((d = readdir(dp))) {
		if (!strcmp(d->d_name, ".") || !strcmp(d->d_name, "..") || !strcmp(d->d_name, "lost+found") ||
		    odrs_name(d->d_name) || libvirt_save_image(dirfd(dp), d->d_name))
			continue;
		snprintf(foreign, foreign_len, "%s", d->d_name);
		r = -ENOTEMPTY;
		break;
	}
	closedir(dp);
	return r;
}
