/*
 * The Prometheus text exposition format (version 0.0.4) of a metrics
 * snapshot: pure, so tests/unit/test_metrics.c checks it against golden
 * text. Names follow the Prometheus naming practice: the odrs_ prefix, base
 * units (seconds, bytes) as suffixes, _total on counters. Every label value
 * is printed from the first scrape on, 0 until it happens, so rate() and
 * increase() see the first wake of each kind.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "metrics.h"

const uint64_t metrics_bucket_ms[METRICS_BUCKETS] = { 10,   25,	  50,	100,   250,   500,
						      1000, 2500, 5000, 10000, 30000, 60000 };

void metrics_histogram_observe(struct metrics_histogram *h, uint64_t ms)
{
	size_t i = 0;

	while (i < METRICS_BUCKETS && ms > metrics_bucket_ms[i])
		i++;
	if (i < METRICS_BUCKETS)
		h->bucket[i]++;
	h->count++;
	h->sum_ms += ms;
}

/* ms as seconds, exactly and shortest: 1234 is 1.234, 2500 is 2.5, 60000 is 60. */
static void seconds(FILE *f, uint64_t ms)
{
	char frac[5];
	int n;

	fprintf(f, "%llu", (unsigned long long)(ms / 1000));
	if (!(ms % 1000))
		return;
	n = snprintf(frac, sizeof(frac), ".%03u", (unsigned)(ms % 1000));
	while (frac[n - 1] == '0')
		frac[--n] = '\0';
	fputs(frac, f);
}

static void family(FILE *f, const char *name, const char *type, const char *help)
{
	fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void scalar(FILE *f, const char *name, const char *type, const char *help, uint64_t v)
{
	family(f, name, type, help);
	fprintf(f, "%s %llu\n", name, (unsigned long long)v);
}

static void histogram(FILE *f, const char *name, const char *help, const struct metrics_histogram *h)
{
	uint64_t cumulative = 0;

	family(f, name, "histogram", help);
	for (size_t i = 0; i < METRICS_BUCKETS; i++) {
		cumulative += h->bucket[i];
		fprintf(f, "%s_bucket{le=\"", name);
		seconds(f, metrics_bucket_ms[i]);
		fprintf(f, "\"} %llu\n", (unsigned long long)cumulative);
	}
	fprintf(f, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum ", name, (unsigned long long)h->count, name);
	seconds(f, h->sum_ms);
	fprintf(f, "\n%s_count %llu\n", name, (unsigned long long)h->count);
}

ssize_t metrics_render(const struct metrics_snapshot *s, char **text)
{
	static const char *const from[METRICS_FROM_COUNT] = {
		[METRICS_FROM_HIBERNATE] = "hibernate", [METRICS_FROM_DOZE] = "doze"
	};
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	if (!f)
		return -ENOMEM;
	family(f, "odrs_wakes_total", "counter",
	       "Wakes completed on this node (restored or resumed), by trigger and by the sleep they "
	       "ended.");
	for (int t = 0; t < METRICS_TRIGGERS; t++)
		for (int k = 0; k < METRICS_FROM_COUNT; k++)
			fprintf(f, "odrs_wakes_total{trigger=\"%s\",from=\"%s\"} %llu\n",
				wk_trigger_name((enum wk_trigger)t), from[k],
				(unsigned long long)s->wakes[t][k]);
	scalar(f, "odrs_arp_replies_total", "counter",
	       "ARP replies and IPv6 neighbor advertisements sent for sleeping VMs.", s->arp_replies);
	scalar(f, "odrs_syns_held_total", "counter", "Client SYNs held for a VM being woken.", s->syns_held);
	scalar(f, "odrs_frames_malformed_total", "counter", "Captured frames that did not parse.",
	       s->frames_malformed);
	scalar(f, "odrs_pcap_drops_total", "counter",
	       "Frames the kernel or libpcap dropped before odrsd read them.", s->pcap_drops);
	family(f, "odrs_vms", "gauge", "Managed VMs, by state.");
	for (int st = 0; st < VM_STATE_COUNT; st++)
		fprintf(f, "odrs_vms{state=\"%s\"} %llu\n", vm_state_name((enum vm_state)st),
			(unsigned long long)s->vms[st]);
	scalar(f, "odrs_memory_freed_bytes", "gauge",
	       "Memory the sleeping VMs do not hold: the images of the hibernated ones, what the dozing "
	       "ones on this node paged out.",
	       s->memory_freed_bytes);
	scalar(f, "odrs_accept_holder", "gauge",
	       "1 when this node answers for the sleeping VMs (the accept role), else 0.", s->accept_holder);
	histogram(f, "odrs_wake_duration_seconds", "Time from a wake's trigger to its VM running.", &s->wake);
	histogram(f, "odrs_hibernate_duration_seconds", "Time a hibernation took to save its VM.",
		  &s->hibernate);
	if (fclose(f) != 0) {
		free(buf);
		return -ENOMEM;
	}
	*text = buf;
	return (ssize_t)len;
}
