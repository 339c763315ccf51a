/*
 * The snapshot-file protocol of snapshot_dir, shared by every node: pure
 * POSIX, no libvirt, no logging; every call returns 0 or a negative errno.
 *
 * Files of domain NAME (".odrs-save": a suffix no disk image uses):
 *   NAME.odrs-save                  complete, restorable: the VM is hibernated
 *   NAME.odrs-save.part.NODE        being written by a save on NODE; never restored
 *   NAME.odrs-save.restoring.NODE   claimed by a restore on NODE
 * A save writes its part file, fsyncs it, renames it to the image and fsyncs
 * the directory. A restore claims the image by renaming it to its claim
 * (of all nodes one rename wins), removes the claim once the domain runs and
 * renames it back if the restore failed. A node renames or removes only the
 * files named for it and the image; every other node's part or claim is
 * reported and left to that node (or an operator). Legacy names of older
 * versions (NAME.img, NAME.img.restoring.NODE) are adopted only when their
 * header shows a libvirt save image of NAME; nothing else is ever touched.
 */
#ifndef ODRSD_SNAPFILE_H
#define ODRSD_SNAPFILE_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SNAPFILE_SUFFIX ".odrs-save"

/* The paths of one domain's files, as one node sees them. */
struct snapfile {
	char dir[PATH_MAX];
	char name[128];
	char node[64];
	char image[PATH_MAX]; /* DIR/NAME.odrs-save */
	char part[PATH_MAX];  /* DIR/NAME.odrs-save.part.NODE: the path a save writes */
	char claim[PATH_MAX]; /* DIR/NAME.odrs-save.restoring.NODE: the path a restore reads */
	/* Older versions' names: DIR/NAME.img, DIR/NAME.img.restoring.NODE */
	char legacy_image[PATH_MAX], legacy_claim[PATH_MAX];
};

/* -EINVAL for a name or node that is empty, hidden or holds '/'; -ENAMETOOLONG. */
int snapfile_init(struct snapfile *sf, const char *dir, const char *name, const char *node);

/*
 * The header of a libvirt QEMU save image (src/qemu/qemu_saveimage.h):
 * 0 complete and written for domain name; -EINPROGRESS its save has not
 * finished (magic LibvirtQemudPart); -EBADMSG not a save image of name
 * (another domain's, or not one at all: a disk); -errno of open/read.
 */
int snapfile_header_check(const char *path, const char *name);

/* Before a save: this node's leftover part file goes (libvirt would write into it). */
int snapfile_save_begin(const struct snapfile *sf);
/*
 * The save returned: its part file becomes the image durably (data, rename,
 * directory). On failure the part file is still there (-EBADMSG: libvirt did
 * not finish it) and nothing is restorable.
 */
int snapfile_save_commit(const struct snapfile *sf, uint64_t *bytes);
/* The save failed: this node's part file goes. */
int snapfile_save_abort(const struct snapfile *sf);
/*
 * Claim the image for a restore on this node: -ENOENT none (or another node
 * won it); -EBADMSG it is not a save image of the domain (it stays where it
 * was). *bytes is its size.
 */
int snapfile_claim(const struct snapfile *sf, uint64_t *bytes);
/* The restore failed and the domain is down: the claim is restorable again. */
int snapfile_release(const struct snapfile *sf);
/* The domain runs (restored, or already running: the claim is stale): the claim goes. */
int snapfile_finish(const struct snapfile *sf);

/* What snapshot_dir holds for one domain after snapfile_recover(). */
struct snapfile_state {
	bool image;	/* a restorable image */
	uint64_t bytes; /* its size */
	/* Without an image only (found by reading the whole directory): */
	char claimed_by[64]; /* a node (not this one) holding a claim, or "" */
	char saving_on[64];  /* a node (not this one) writing a part file, or "" */
	char left[PATH_MAX]; /* a legacy file left alone (not provably this domain's), or "" */
};

/*
 * After a crash of this node (at its start), with the domain's libvirt job
 * over and running saying whether the domain runs here: this node's files
 * are settled (running: its claim, part and any image of the domain go, an
 * image of a running VM is stale; down: its claim is released, a complete
 * part committed, an unfinished one removed, a legacy image adopted). Other
 * nodes' files are only reported in st. Returns the first failure.
 */
int snapfile_recover(const struct snapfile *sf, bool running, struct snapfile_state *st);

/*
 * At start: 0 if snapshot_dir holds only odrs's files and libvirt save
 * images (and lost+found); -ENOTEMPTY with the first other entry's name in
 * foreign. A missing directory is 0: there is nothing to refuse.
 */
int snapfile_dir_check(const char *dir, char *foreign, size_t foreign_len);

#endif
