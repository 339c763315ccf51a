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

/* us as seconds, exactly and shortest: 1234000 is 1.234, 2500000 is 2.5, 25 is 0.000025. */
static void seconds(FILE *f, uint64_t us)
{
	char frac[8];
	int n;

	fprintf(f, "%llu", (unsigned long long)(us / 1000000));
	if (!(us % 1000000))
		return;
	n = snprintf(frac, sizeof(frac), ".%06u", (unsigned)(us % 1000000));
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

/*
 * A histogram family from nbuckets counts, bucket[i] the observations up to
 * bound[i] (in units of unit_us µs) and over the one before; count in all,
 * beyond the last bound too; their sum in µs.
 */
static void histogram(FILE *f, const char *name, const char *help, const uint64_t *bound, uint64_t unit_us,
		      const uint64_t *bucket, size_t nbuckets, uint64_t count, uint64_t sum_us)
{
	uint64_t cumulative = 0;

	family(f, name, "histogram", help);
	for (size_t i = 0; i < nbuckets; i++) {
		cumulative += bucket[i];
		fprintf(f, "%s_bucket{le=\"", name);
		seconds(f, bound[i] * unit_us);
		fprintf(f, "\"} %llu\n", (unsigned long long)cumulative);
	}
	fprintf(f, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum ", name, (unsigned long long)count, name);
	seconds(f, sum_us);
	fprintf(f, "\n%s_count %llu\n", name, (unsigned long long)count);
}

static void histogram_ms(FILE *f, const char *name, const char *help, const struct metrics_histogram *h)
{
	histogram(f, name, help, metrics_bucket_ms, 1000, h->bucket, METRICS_BUCKETS, h->count,
		  h->sum_ms * 1000);
}

static void histogram_us(FILE *f, const char *name, const char *help, const struct delay_histogram *h)
{
	histogram(f, name, help, delay_bucket_us, 1, h->bucket, DELAY_BUCKETS, h->count, h->sum_us);
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
	histogram_ms(f, "odrs_wake_duration_seconds", "Time from a wake's trigger to its VM running.",
		     &s->wake);
	histogram_ms(f, "odrs_hibernate_duration_seconds", "Time a hibernation took to save its VM.",
		     &s->hibernate);
	histogram_us(f, "odrs_reply_delay_seconds",
		     "Time from an ARP request's or neighbor solicitation's capture (the kernel's receive "
		     "time) to its reply's send.",
		     &s->reply_delay);
	histogram_us(
		f, "odrs_reply_turn_seconds",
		"Of odrs_reply_delay_seconds, the part after the event loop's wake-up: from the start of "
		"the loop turn that sent the reply to its send.",
		&s->reply_turn);
	histogram_us(f, "odrs_loop_turn_seconds",
		     "Time each turn of odrsd's event loop spent in callbacks, from its wake-up to its next "
		     "wait.",
		     &s->loop_turn);
	if (fclose(f) != 0) {
		free(buf);
		return -ENOMEM;
	}
	*text = buf;
	return (ssize_t)len;
}
