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
 *      no translation table exists and forget needs no bookkeeping: the
 *      volume keeps an unlinked inode alive while a cairn_file is open
 *      (meta's orphan accounting), which is exactly while the kernel can
 *      still send requests for it through an open handle.
 *   2. Every open file handle is on cfs.handles until release, so that
 *      shutdown can close the ones the kernel never released (a lazy
 *      unmount, a killed session) before volume_close.
 *   3. CFS_CTL_INO (the hidden control file) is never a volume inode:
 *      volume inode numbers are allocated upward from 1.
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

/* An open file (fi->fh). */
typedef struct cfh {
	struct cfh *prev, *next;
	cairn_file *f;          /* NULL for the control file */
	char *text;             /* control file: the statistics snapshot */
	size_t len;
} cfh;

enum {
	CFS_ST_LOOKUP, CFS_ST_GETATTR, CFS_ST_SETATTR, CFS_ST_CREATE,
	CFS_ST_REMOVE, CFS_ST_RENAME, CFS_ST_OPEN, CFS_ST_READ, CFS_ST_WRITE,
	CFS_ST_FSYNC, CFS_ST_READDIR, CFS_ST_XATTR, CFS_ST_OTHER,
	CFS_ST_BYTES_READ, CFS_ST_BYTES_WRITTEN, CFS_ST_ERRORS,
	CFS_ST_KEEP_CACHE, CFS_ST_FORGET, CFS_ST__COUNT
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
	pthread_mutex_t mu;     /* handles */
	cfh *handles;
	size_t nhandles;
	uint64_t st[CFS_ST__COUNT];   /* atomics */
} cfs;

extern const struct fuse_lowlevel_ops cfs_ops;

int cfs_init(cfs *fs, cairn_volume *vol, const cairn_mount_opts *o,
	     const char *voldir, const char *mountpoint);
/* Close every handle the kernel did not release; first error returned. */
int cfs_close_all(cfs *fs);
void cfs_destroy(cfs *fs);
/* The statistics as "key value" lines (malloc'd, NUL-terminated). */
int cfs_stats_text(cfs *fs, char **out, size_t *len);

#endif
