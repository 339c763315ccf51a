/*
 * libvirt, off the packet loop. Calls that take seconds (save, restore,
 * waiting for a domain's job) run on worker threads with their own
 * connection; the loop learns of a finished job through an ev_async and
 * calls done(job, ctx) on the loop thread.
 *
 * Snapshot files in snapshot_dir follow snapfile.h: a save writes
 * NAME.odrs-save.part.NODE and commits it to NAME.odrs-save; a restore
 * claims the image as NAME.odrs-save.restoring.NODE, removes the claim once
 * the domain runs and gives it back if the restore failed. A failed save
 * leaves the domain running; a restore that finds the domain running
 * removes the (stale) image. An inspect settles only this node's files
 * after a crash (snapfile_recover) and names another node's claim in
 * job->error; a node never touches another's files.
 */
#ifndef ODRSD_VIRT_H
#define ODRSD_VIRT_H

#include <ev.h>
#include <net/if.h>
#include <stdbool.h>
#include <stdint.h>
#include <wake/config.h>

enum virt_op {
	VIRT_INSPECT, /* wait for any running libvirt job on the domain, settle leftovers, report */
	VIRT_SAVE,    /* hibernate: save into snapshot_dir */
	VIRT_RESTORE, /* wake: restore from snapshot_dir */
	VIRT_PROBE,   /* run WK_PROBE_COMMAND in the guest (agent or ssh) */
	VIRT_DOZE,    /* doze: pause the domain, page its memory out to swap */
	VIRT_RESUME,  /* wake from a doze: resume the paused domain */
};

/* What a domain is, as far as libvirt and snapshot_dir say. */
enum virt_state {
	VIRT_RUNNING,	 /* active (running or paused: see paused) */
	VIRT_HIBERNATED, /* inactive, NAME.odrs-save present */
	VIRT_STOPPED,	 /* inactive, no image */
	VIRT_MISSING,	 /* no such domain and no image */
};

struct virt_job {
	enum virt_op op;
	const char *name; /* the libvirt domain: the caller's string, kept until done() */
	void *owner;	  /* the caller's object */
	/* Inputs of VIRT_PROBE, and of VIRT_SAVE's shrink step. */
	enum wk_probe probe;   /* agent or ssh */
	enum wk_shrink shrink; /* what a save asks of the guest first */
	uint32_t ip;	       /* for ssh, network order */
	unsigned timeout_ms;   /* for each guest command */
	bool dozed;	       /* VIRT_INSPECT: a doze paused it (its tap's bridge port is disabled) */
	/* Results, valid in done(). */
	int err;	       /* 0 or a negative errno; -ENOTCONN: libvirtd unreachable,
					    ask again (an inspect settles what it left) */
	char error[256];       /* why, when err != 0 */
	enum virt_state state; /* after the job */
	char tap[IF_NAMESIZE]; /* running: the tap of the interface with mac */
	uint8_t mac[6];	       /* the domain's first interface MAC */
	bool has_mac;
	bool defined;		  /* inspect: the domain is defined on this node */
	bool paused;		  /* VIRT_RUNNING, paused (an inspect's and a doze's result) */
	uint64_t mem_bytes;	  /* the domain's memory (with its MAC, read from the domain) */
	uint64_t bytes;		  /* size of the image (after a save, or when hibernated) */
	uint64_t ms;		  /* how long the libvirt call took (a save: with its shrink) */
	uint64_t shrunk_bytes;	  /* guest memory a save's shrink step released */
	uint64_t shrink_ms;	  /* of a save's ms, the shrink step's */
	uint64_t paged_out_bytes; /* VIRT_DOZE: how much QEMU's resident memory fell */
	uint64_t resident_bytes;  /* VIRT_DOZE: QEMU's resident memory left */
	char *output;		  /* VIRT_PROBE: what the command printed (malloc'd; caller frees) */
	size_t output_len;
	/*
	 * Progress of a save or restore in bytes, updated by the worker while
	 * it runs; read it with __atomic_load_n(&job->progress_done,
	 * __ATOMIC_RELAXED). A restore reports only its total until it is done.
	 */
	volatile uint64_t progress_done, progress_total;
	/* Private to virt.c. */
	struct virt_job *next;
};

struct virt;
typedef void (*virt_done_fn)(struct virt_job *job, void *ctx);

/*
 * Start the workers: nrestore threads serve VIRT_RESTORE jobs (wake_concurrency),
 * nsave threads serve VIRT_SAVE and VIRT_INSPECT jobs (hibernate_concurrency),
 * VIRT_RESUME jobs queue with the restores, VIRT_DOZE jobs with the saves;
 * one more thread serves VIRT_PROBE jobs, so a hung guest agent delays no save.
 * Jobs of one kind run in submission order. Returns 0 or -errno.
 */
int virt_open(struct virt **out, struct ev_loop *loop, const char *uri, const char *snapshot_dir,
	      const char *node, unsigned nrestore, unsigned nsave, virt_done_fn done, void *ctx);
void virt_submit(struct virt *v, struct virt_job *job);
/* Stop taking jobs, wait for the running ones (their done() is not called), free. */
void virt_close(struct virt *v);
/* At least ms between the starts of two restores (0: none, the default). */
void virt_set_restore_spacing(struct virt *v, uint64_t ms);
/* 0 when the host has a swap device a doze can page out to, else -ENOSPC. */
int virt_swap_check(void);
/* How many restores are waiting or running. */
unsigned virt_restores_pending(const struct virt *v);

#endif
