/*
 * fuse_priv.h - private structures of the FUSE adapter (fuse/).  Named
 * _priv rather than _int because tests/layering.sh rejects any *_int.h
 * include in fuse/ (its target: other modules' internals).
 *
 *   fuse_ops.c    the libfuse3 low-level operations over the volume API
 *   fuse_mount.c  options, daemonizing, the session, umount, stats
 *
 * Invariants:
 *   1. FUSE node ids are volume inode numbers (the root is 1 in both), so
 *      no translation table exists.
 *   2. Opens send no message (FUSE_CAP_NO_OPEN_SUPPORT, docs/fuse.md
 *      "Zero-message opens"): every request carries fh 0, and file data
 *      goes through one cairn_file per inode (cino.f), opened at the first
 *      request that needs it and closed (its buffered data staged) once
 *      idle for CFS_IDLE_MS, at RELEASE (followers, which keep OPEN)
 *      and at FORGET.  A request holds cino.refs while it uses cino.f, and
 *      f is only closed at refs 0, under ino_mu.
 *   3. The volume keeps an unlinked inode alive while a cairn_file is open
 *      (meta's orphan accounting).  Since opens are invisible, a regular
 *      file about to be unlinked or renamed over gets a second handle,
 *      cino.pin, kept until FORGET: the kernel sends that only when no
 *      process holds the inode any more.
 *   4. Every cino is in fs->itab until closed, so that shutdown can close
 *      them all (staging their data) before volume_close.
 *   5. CFS_CTL_INO (the hidden control file) is never a volume inode:
 *      volume inode numbers are allocated upward from 1.
 *   6. fs->lk counts the kernel's lookups of regular files (every entry
 *      reply: lookup, create, mknod, link, readdirplus), less FORGETs:
 *      an inode with a count is one a process may hold, so a command of
 *      the control socket that removes it pins it first (as invariant 3;
 *      docs/fuse.md "Commands through the control socket").
 *   7. Notifications to the kernel from outside requests (the control
 *      socket's commands) are sent under se_lock (read) and only while
 *      se_closing is 0, never under ino_mu or mu, never from a request
 *      handler; serve() sets se_closing and takes se_lock (write) before
 *      the session goes.
 */
#ifndef CAIRN_FUSE_PRIV_H
#define CAIRN_FUSE_PRIV_H

#define FUSE_USE_VERSION 312

#include <fuse_lowlevel.h>
#include <pthread.h>
#include <stdint.h>

#include "cairn/fuse.h"
#include "cairn/volume.h"

#define FUSE_MOD "fuse"
#define CFS_CTL_INO (UINT64_MAX - 1)

/* The file handle of an inode (invariant 2), in fs->itab. */
typedef struct cino {
	struct cino *hnext;
	uint64_t ino;
	cairn_file *f;          /* NULL until a request needs it */
	cairn_file *pin;        /* invariant 3: until FORGET */
	unsigned refs;          /* requests using f now */
	unsigned held;          /* kernel handles that will send RELEASE
				 * (OPEN answered with a handle: followers):
				 * no idle close while any is open */
	int64_t used_ns;        /* CLOCK_MONOTONIC of the last request */
	uint64_t wbytes;        /* bytes written through f since it opened */
} cino;

/* Lookup count of a regular file the kernel holds (invariant 6). */
typedef struct cfs_lk {
	struct cfs_lk *next;
	uint64_t ino;
	uint64_t n;
} cfs_lk;
#define CFS_LK_BUCKETS 65536
#define CFS_LK_LOCKS 64     /* bucket b is under lk_mu[b % CFS_LK_LOCKS] */

#define CFS_ITAB_BUCKETS 4096
#define CFS_IDLE_MS 500     /* idle file handles are closed after this */
/* ... unless CFS_STREAM_BYTES or more were written through them: such a
 * file is most likely a large file streaming to its own segment (the
 * volume's default stream_threshold), whose stream a close would end, so
 * a writer's pause (torch.save between two tensors) gets longer. */
#define CFS_STREAM_BYTES (16u << 20)
#define CFS_STREAM_IDLE_MS 10000

/* A statistics snapshot of the control file: taken at each LOOKUP of its
 * name (so once per open by path), served by READ and sized by GETATTR. */
typedef struct cfs_ctl {
	char *text;
	size_t len;
} cfs_ctl;

enum {
	CFS_ST_LOOKUP, CFS_ST_GETATTR, CFS_ST_SETATTR, CFS_ST_CREATE,
	CFS_ST_REMOVE, CFS_ST_RENAME, CFS_ST_OPEN, CFS_ST_READ, CFS_ST_WRITE,
	CFS_ST_FSYNC, CFS_ST_READDIR, CFS_ST_XATTR, CFS_ST_OTHER,
	CFS_ST_BYTES_READ, CFS_ST_BYTES_WRITTEN, CFS_ST_ERRORS,
	CFS_ST_KEEP_CACHE, CFS_ST_FORGET, CFS_ST_RELEASE, CFS_ST_IDLE_CLOSE,
	CFS_ST_DIRECT_CREATE,
	CFS_ST__COUNT
};

/* A follower's record of what a file was when the kernel last cached it
 * (fuse_ops.c file_open): the cache is kept only for an unchanged inode. */
typedef struct cfs_kc {
	uint64_t ino;
	uint64_t size;
	int64_t mtime_ns, ctime_ns;
} cfs_kc;
#define CFS_KC_SLOTS 4096

typedef struct cfs {
	cairn_volume *vol;
	int follower;           /* a read-only follower: files change under us */
	cfs_kc *kc;             /* followers: CFS_KC_SLOTS entries, under mu */
	double entry_to, attr_to;
	char voldir[4096];
	char mountpoint[4096];
	int no_open;            /* the kernel may skip OPEN (init) */
	struct fuse_session *se;    /* for notifications; set by serve() */
	pthread_mutex_t mu;     /* kc, ctl */
	cfs_ctl ctl;
	pthread_mutex_t ino_mu; /* itab, every cino field, nfiles, stop */
	pthread_cond_t ino_cv;  /* wakes the idle-closer */
	cino **itab;            /* CFS_ITAB_BUCKETS chains */
	size_t nfiles;          /* cairn_files open (f and pin) */
	int stop;
	int read_only;          /* -o ro (or a follower): control commands
				 * that change the volume are refused */
	cfs_lk **lk;            /* invariant 6: CFS_LK_BUCKETS chains */
	pthread_mutex_t lk_mu[CFS_LK_LOCKS];
	pthread_rwlock_t se_lock;   /* invariant 7 */
	int se_closing;             /* atomic */
	int reaper_on;
	pthread_t reaper;
	uint64_t st[CFS_ST__COUNT];   /* atomics */
} cfs;

extern const struct fuse_lowlevel_ops cfs_ops;

int cfs_init(cfs *fs, cairn_volume *vol, const cairn_mount_opts *o,
	     const char *voldir, const char *mountpoint);
/* Stop the idle-closer and close every file handle (staging its data);
 * first error returned. */
int cfs_close_all(cfs *fs);
void cfs_destroy(cfs *fs);
/* Invariant 7: no notification starts after this; wait_ms for those in
 * flight (0: as long as they take), then fs->se is NULL.  0, or -1 if one
 * is still in flight (the kernel blocks it until the mount is gone). */
int cfs_notify_stop(cfs *fs, unsigned wait_ms);
/* The statistics as "key value" lines (malloc'd, NUL-terminated). */
int cfs_stats_text(cfs *fs, char **out, size_t *len);

#endif
