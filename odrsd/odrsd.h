/* odrsd: the daemon's shared state. The data path is capture.c. */
#ifndef ODRSD_H
#define ODRSD_H

#include <ev.h>
#include <jansson.h>
#include <net/if.h>
#include <pcap/pcap.h>
#include <stdbool.h>
#include <stdint.h>
#include <wake.h>

#include "cluster.h"
#include "delay.h"
#include "filter.h"
#include "virt.h"

enum vm_state {
	VM_UNKNOWN = 0, /* being inspected at start-up */
	VM_RUNNING,
	VM_HIBERNATING,
	VM_HIBERNATED,
	VM_WAKING,
	VM_DOZING_OFF, /* a doze job pauses it and pages its memory out */
	VM_DOZING,     /* paused on its node, its memory in swap; a resume wakes it */
	VM_ERROR,
	VM_STATE_COUNT,
};

/*
 * A client's SYN, kept byte for byte until the VM can take it; or a frame
 * held like one: a segment of a flow the VM had open (wake_on established),
 * a datagram to one of its wake_udp_ports.
 */
struct held_syn {
	struct held_syn *next;
	struct wk_flow flow;
	bool syn;	/* a SYN, replayed until its SYN-ACK; anything else is replayed once */
	bool answered;	/* the VM's SYN-ACK was seen; or, not a SYN, replayed */
	unsigned tries; /* replays into the tap; the first made it the tap's frame */
	uint16_t len;
	uint8_t frame[WK_FRAME_MAX];
};

struct waiter; /* a control connection waiting on a VM */

struct vm {
	const struct wk_vmconf *conf; /* in d->cfg; re-pointed on reload */
	char *name;		      /* malloc'd */
	uint32_t ip;
	uint8_t mac[WK_ETH_ALEN];
	bool has_mac;
	bool has_ip6;
	uint8_t ip6[16]; /* when has_ip6 */
	enum vm_state state;
	double state_since;	 /* when it entered state (ops->now) */
	char *error;		 /* why it is in error (vm_text_set); NULL: none */
	unsigned error_rechecks; /* rechecks in a row that found it in error: the backoff */
	char tap[IF_NAMESIZE];
	bool pinned;
	bool removed; /* dropped from the config; freed once idle */
	uint64_t snapshot_bytes;
	int64_t last_wake_ms;	 /* -1: never woken by us */
	ev_tstamp last_activity; /* last TCP frame to or from it (UDP too with activity_udp) */
	struct wk_flows *flows;	 /* its open TCP flows, kept while it runs here (flows.c); NULL: none seen */

	/* The wake in progress or asked for. */
	struct wk_rate wake_rate;     /* its automatic wakes (wakes_per_hour) */
	const char *hibernate_reason; /* "idle" or "manual": a string literal (a doze's too) */
	ev_tstamp dozed_at;	      /* since when it dozes, as this odrsd knows */
	uint64_t paged_out_bytes;     /* by its last doze (odrs_memory_freed_bytes) */
	enum wk_trigger trigger;
	bool wake_wanted;  /* a trigger came while hibernating */
	bool wake_limited; /* wake_limited logged; cleared by the next wake */
	bool dozed;	   /* paused by a doze (state.c keeps it across a restart) */
	char *client;	   /* ip:port of the first SYN, or the ARP requester (vm_text_set); NULL: none */
	ev_tstamp trigger_at;
	struct held_syn *held; /* in arrival order */
	unsigned nheld;
	unsigned replay_tries;
	ev_tstamp replayed_at;
	/* One-shot timers, allocated while they run (timers.c): NULL otherwise. */
	ev_timer *replay_timer; /* re-inject until the SYN-ACK comes */
	ev_timer *wake_timer;	/* wake_timeout */
	ev_timer *recheck;	/* in error: inspect again (vm_recheck_delay) */

	struct virt_job *job; /* its job, allocated per job (wake.c); NULL between jobs and while it waits */
	bool job_busy;	      /* a job is queued, running, or waiting in d->jobs_waiting */
	enum virt_op job_op;  /* while waiting: the job it waits to start */
	struct vm *job_next;  /* in d->jobs_waiting */
	ev_tstamp job_started;
	/* The last job's results that odrsctl's answer for a VM already there repeats. */
	uint64_t job_ms, job_paged_out_bytes, job_resident_bytes;
	struct waiter *waiters;

	/* The last trigger its policy or a rate limit refused (wake.c), for odrsctl show. */
	const char *refused_why; /* the key that refused it (a literal); NULL: none yet */
	char *refused_from;	 /* its sender: ip, or ip:port for a SYN (vm_text_set) */
	ev_tstamp refused_at;
	enum wk_trigger refused_trigger;

	/* Idleness (idle.c). */
	bool idle_pending; /* looked idle at the last check: confirm */
	bool probing;
	const char *idle_skip;	/* the last idle_skip reason logged */
	const char *stayed_up;	/* why the last check kept it up (a literal); NULL: none yet */
	char *stayed_up_detail; /* vm_text_set */
	ev_tstamp stayed_up_at;
	struct virt_job *probe; /* asks the guest for its load and processes; while probing */

	/* Cluster mode (cluster.c). */
	char *node;		/* where it runs or is being restored (vm_text_set); NULL asleep */
	uint64_t mem_bytes;	/* running here: counts in this node's memory score */
	int64_t rev;		/* mod_revision of its registry key; 0: none */
	json_t *reg;		/* the registry's last word on it, or NULL */
	bool claiming;		/* a wake claim is on its way to etcd */
	bool reg_pending;	/* its registry key waits for the next batch (cluster.c) */
	uint8_t retrain_queued; /* retrain.c: a bit per queue it is in */
	uint8_t timers_owed;	/* timers.c: a bit per timer (enum vm_timer) that found no memory */
};

struct counters {
	uint64_t frames, malformed, arp_replies, syns_held, syns_dropped, syns_replayed;
	uint64_t restores, restore_failures, saves, save_failures, filter_updates;
	uint64_t claims, claims_lost, claims_refused, retrain_frames, wakes_limited;
	uint64_t reloads; /* configurations applied since start */
	uint64_t flows_held, flows_unknown,
		udp_held; /* segments held; of no recorded flow, dropped; datagrams held */
	uint64_t refused_wake_on, refused_wake_ports, refused_wake_udp_ports, refused_ignore_sources,
		refused_routers; /* triggers the policy refused, by the key that refused them */
};

/* The activity capture's frames reach idle.c at most this late. */
#define ACTIVITY_DELAY_MS 500

struct capture {
	const char *name; /* "wake", "activity", "confirm": for the log */
	pcap_t *pcap;
	ev_io io;
	char *key;		/* the filter asked for (filter_text()); "" for no handle */
	char *filter;		/* in force, maybe coarser (filter.h); NULL for no handle */
	enum filter_fit fit;	/* past FILTER_HOSTS: passes frames of hosts it does not name */
	bool in_kernel;		/* the kernel runs the filter, not libpcap */
	uint64_t filtered_user; /* frames it passed that the VM table dropped */
	uint64_t drops_closed;	/* pcap drops of its handles closed already */
	bool immediate;		/* every frame at once, or in blocks */
	pcap_handler on_frame;
	struct odrsd *d;
	pcap_t *retiring; /* in blocks: the handle swapped out, read until its last block is out */
	ev_io retiring_io;
	ev_timer retire_timer; /* ACTIVITY_DELAY_MS and a margin */
};

/* One MAC to announce (retrain.c). */
struct announce {
	uint8_t mac[WK_ETH_ALEN];
	uint32_t ip;
	ev_tstamp due;
};
struct announce_queue {
	struct announce *a;
	size_t head, len, cap; /* a[head..len) are queued, oldest first */
	uint8_t bit;	       /* its bit in vm->retrain_queued */
};
struct retrain {
	ev_timer tick;			  /* runs while frames are queued */
	ev_timer refresh;		  /* retrain_refresh: every sleeping MAC again */
	struct announce_queue now, later; /* single VMs; later: their second bursts, by due time */
	bool sweeping;			  /* every sleeping MAC: d->vms[sweep..] still to send */
	size_t sweep;
	ev_tstamp sweep_due; /* the role move's second sweep (retrain_delay); 0: none */
	bool sending;	     /* a burst is on: tick every 10 ms until now is empty */
	double credit;	     /* frames the rate allows to send now */
	ev_tstamp last_tick, burst_started;
	unsigned burst_sent;
};

struct cluster;
struct vm_life;
struct virtev;

struct odrsd {
	struct ev_loop *loop;
	struct wk_config *cfg;
	const char *config_path;
	bool foreground, debug;
	ev_tstamp started;

	struct vm **vms;
	size_t nvms;
	struct wk_names *byname; /* vms by name (vm_by_name); rebuilt with vms */
	struct wk_vmtable *table;
	unsigned nheld_total;
	struct wk_rate wake_rate; /* automatic wakes on this node (wakes_per_minute) */
	/*
	 * VMs whose job waits (wake.c): inspects beyond JOBS_INSPECTS_MAX queued,
	 * and, at the head, jobs whose allocation failed, to be reported failed
	 * from the loop (jobs_timer).
	 */
	struct vm *jobs_waiting, *jobs_waiting_tail;
	unsigned inspects_queued; /* inspect jobs allocated and submitted */
	ev_timer jobs_timer;
	/* timers.c: the VMs' timers that found no memory, started again or fired from here. */
	ev_timer timers_sweep;
	unsigned timers_owed; /* set bits of every vm->timers_owed */

	struct capture cap;	/* the wake capture; swapped when its filter changes */
	struct capture act;	/* the activity capture (TCP of every managed VM), in blocks */
	struct capture confirm; /* TCP of the VMs idle.c confirms as idle, immediate; open meanwhile */
	ev_timer filter_timer;	/* coalesces filter rebuilds to one per loop turn */
	ev_tstamp filter_built, filter_cost; /* the last rebuild: when it ended, how long it took */
	unsigned ifindex;		     /* of cfg->interface */
	int inject_fd;			     /* AF_PACKET socket for every frame we send */

	struct virt *virt;
	struct virtev *virtev; /* libvirt's domain events (virtev.c) */
	int control_fd;
	char control_path[108]; /* sun_path's size */
	ev_io control_io;
	ev_timer idle_timer; /* one for all VMs: check_interval */
	ev_timer idle_walk;  /* the check in progress: d->vms[idle_walked..] still to see (idle.c) */
	size_t idle_walked;
	bool idle_any;	       /* a VM seen so far looked idle */
	ev_timer idle_confirm; /* ACTIVITY_DELAY_MS after the confirm capture opened */
	ev_signal sighup, sigterm, sigint;
	/* Stopping with wake_on_stop: the wakes asked for, until they end or stop_deadline. */
	ev_timer stop_wait;
	char stop_signal[16]; /* SIGTERM, SIGINT */
	unsigned stop_woken;
	ev_tstamp stop_deadline;
	struct counters n;

	bool accept;			   /* this node holds the accept role (always, without a cluster) */
	struct cluster *cluster;	   /* NULL without a cluster backend */
	struct waiter *accept_waiters;	   /* control clients waiting for an accept-role move */
	struct waiter *state_waiters;	   /* control clients waiting for a VM's state to be written */
	struct state_writer *state_writer; /* state.c: writes state_dir off the loop */
	struct retrain retrain;
	struct vm_life *life;	     /* vm.c: its effects and observers (wake.c fills them in) */
	struct discovery *discovery; /* discover.c: the domains found with odrs metadata */

	/* odrsd's share of the data path's delays (delay.h), for status and /metrics. */
	struct timeval frame_captured;	    /* the wake capture's frame in hand: its pcap timestamp */
	struct delay_histogram reply_delay; /* a neighbour request's capture to its reply's send */
	struct delay_histogram reply_turn;  /* the loop's wake-up to the reply's send: the in-loop part */
	struct delay_histogram loop_turn; /* each loop turn's callbacks: wake-up from poll to the next poll */
	struct timespec turn_began;	  /* this turn's wake-up (CLOCK_MONOTONIC) */
	ev_check turn_begin;
	ev_prepare turn_end;
};

/* capture.c */
int capture_start(struct odrsd *d);
void capture_stop(struct odrsd *d);
void capture_filter_changed(struct odrsd *d);
/* A rebuild asked for and not run yet runs now: what must be captured from here on is. */
void capture_filter_flush(struct odrsd *d);
/* Hand every frame the activity captures hold to idle.c. */
void capture_activity_flush(struct odrsd *d);
/* Open, change or close the confirm capture to fit vm_idle_confirming(); 0 or -errno (logged). */
int capture_confirm_update(struct odrsd *d);
void capture_interface_changed(struct odrsd *d);
/* Each capture's filter mode in status, its pcap drops and filtered_user in counters. */
void capture_status(struct odrsd *d, json_t *status, json_t *counters);
/* The pcap drops of every capture since start (handles swapped out included). */
uint64_t capture_pcap_drops(const struct odrsd *d);

/* wake.c: the daemon's side of each VM (vm.c decides its lifecycle). */
/* Fill in the lifecycle's effects and observers; before the first vm_new(). */
void wake_init(struct odrsd *d);
/*
 * The wake capture's frame for vm: a neighbour request (ARP or NS), a SYN to
 * it, its SYN-ACK, another TCP segment or a UDP datagram to it.
 */
void vm_on_frame(struct odrsd *d, struct vm *vm, const struct wk_pkt *p, const uint8_t *frame, size_t len);
/* Keep a client's SYN for vm (a copy), or a segment or datagram held like one; false when dropped or already held. */
bool wake_hold_syn(struct odrsd *d, struct vm *vm, const uint8_t *frame, size_t len);
/* Forget vm's held SYNs (nobody will replay them: a fenced node's, or another node replays them). */
void wake_release_syns(struct odrsd *d, struct vm *vm);
void wake_job_done(struct virt_job *job, void *ctx);
struct vm *vm_new(struct odrsd *d, const struct wk_vmconf *c);
struct vm *vm_by_name(struct odrsd *d, const char *name);
/*
 * vm.c: a VM's texts are held only while set: *text becomes a copy of s,
 * NULL for NULL or "" (and without memory for the copy: the text is lost, not the VM).
 */
void vm_text_set(char **text, const char *s);
static inline const char *vm_text(const char *text)
{
	return text ? text : "";
}
void vm_announce(struct odrsd *d, const struct vm *vm);

/*
 * timers.c: a VM's one-shot timers. One that cannot be allocated is owed
 * and the sweep, every second while any is owed, starts it again, or fires
 * it itself once it is due: a wake still times out, a VM in error is still
 * checked again, held SYNs still replayed.
 */
enum vm_timer { VM_TIMER_REPLAY, VM_TIMER_WAKE, VM_TIMER_RECHECK, VM_TIMER_COUNT };
/* Start (or restart) vm's timer k, due in after seconds; false: no memory, owed to the sweep. */
bool vm_timer_start(struct odrsd *d, struct vm *vm, enum vm_timer k, double after);
/* Stop it, owed or running (a no-op when neither). */
void vm_timer_stop(struct odrsd *d, struct vm *vm, enum vm_timer k);
/* wake.c: what timer k does when it fires; and, owed, in how many seconds it is due (<= 0: now). */
void vm_timer_fired(struct odrsd *d, struct vm *vm, enum vm_timer k);
double vm_timer_due_in(const struct odrsd *d, const struct vm *vm, enum vm_timer k);
/*
 * Any one-shot timer w, due in after seconds, unless it runs already. It is
 * set each time: libev keeps what was left of a one-shot timer when it
 * stopped, nothing once it fired, so one started again as it was fires at
 * once (the cluster's score went out on every loop turn during start-up's
 * inspects; idle.c's confirmation judged a VM before its last half second
 * of frames arrived, at every check but the first).
 */
void timer_once(struct ev_loop *loop, ev_timer *w, double after);

/* flows.c: a VM's open TCP flows, from the activity capture (odrsd(8)). */
/* One TCP segment of the activity capture: its flow, for each end that is a VM running here. */
void flows_note(struct odrsd *d, const struct wk_pkt *p);
/* Whether p, a TCP segment to vm, belongs to a flow vm had open. */
bool flows_known(const struct vm *vm, const struct wk_pkt *p);
size_t flows_open(const struct vm *vm);
void flows_free(struct vm *vm);

/* idle.c */
void idle_start(struct odrsd *d);
/* No more checks (stopping): nothing goes to sleep from here on. */
void idle_stop(struct odrsd *d);
void idle_interval_changed(struct odrsd *d);
/* A TCP frame to or from ip: false when it is no VM's. */
bool idle_note_tcp(struct odrsd *d, uint32_t ip);
bool idle_note_tcp6(struct odrsd *d, const uint8_t ip6[16]);
/* A UDP datagram: activity of either end that is a VM with activity_udp. */
void idle_note_udp(struct odrsd *d, const struct wk_pkt *p);
void idle_probe_done(struct odrsd *d, struct vm *vm);
bool vm_watch_activity(const struct odrsd *d, const struct vm *vm);
/* Looked idle at a check and not decided yet (confirmation or probe). */
bool vm_idle_confirming(const struct odrsd *d, const struct vm *vm);

/* virtev.c: follow libvirt's domain lifecycle events; a VM changed behind odrsd's back is inspected. */
int virtev_start(struct odrsd *d);
void virtev_stop(struct odrsd *d);
/* discover = libvirt turned on (every domain's metadata is read again) or off. */
void virtev_discover(struct odrsd *d, bool on);

/* inject.c */
int inject_open(void);
int inject_frame(struct odrsd *d, unsigned ifindex, const uint8_t *frame, size_t len);
#define TAP_VLANS_MAX 64
/*
 * The VLANs that the bridge sends untagged out of port ifindex, at most max
 * of them into vids: how many, 0 when the bridge does not filter VLANs (it
 * forwards every tag unchanged), or -errno.
 */
int inject_tap_untagged(unsigned ifindex, uint16_t *vids, size_t max);

/* control.c: completion of a VM operation a client waits for. */
void control_vm_done(struct odrsd *d, struct vm *vm, int err, const char *error);
void control_accept_done(struct odrsd *d, int err, const char *error);
/* vm's state up to ticket is in state_dir (err 0) or could not be written. */
void control_state_saved(struct odrsd *d, const char *vm, int64_t ticket, int err);

/* state.c: what survives a restart besides libvirt and snapshot_dir. */
void state_load(struct odrsd *d, struct vm *vm);
/* The writer thread: 0 or -errno. Stopping, it writes what is queued first. */
int state_start(struct odrsd *d);
void state_stop(struct odrsd *d);
/*
 * Queue vm's state for writing; a ticket (> 0), or -ENOMEM (logged). Once
 * it is durable (or failed, logged), control_state_saved(d, name, ticket, err).
 */
int64_t state_save(struct odrsd *d, const struct vm *vm);

/* main.c */
/*
 * The one path by which VMs are added, re-addressed and dropped: manage
 * what cfg's [vm] sections and the nfound discovered VMs in found (none of
 * them named by a section) describe, why ("reload", "discover") in the log;
 * the names added and removed appended to added_names and removed_names
 * (JSON arrays, or NULL). 0, or -errno with err set and nothing changed.
 */
int odrsd_vms_apply(struct odrsd *d, const struct wk_config *cfg, const struct wk_vmconf *found,
		    size_t nfound, const char *why, json_t *added_names, json_t *removed_names, char *err,
		    size_t errlen);
/*
 * Re-read the configuration: 0, or -errno with the problems in err. by (an
 * object, its reference taken): who asked, its members put in the reload
 * event. Applied, *verdict (when verdict is not NULL) gets {vms, added,
 * removed, restart_needed}.
 */
int odrsd_reload(struct odrsd *d, json_t *by, json_t **verdict, char *err, size_t errlen);

#include "vm.h"

#endif
