/*
 * fuse_ops.c - the libfuse3 low-level operations of a cairn mount, each a
 * thin translation to the volume API (cairn/volume.h).
 *
 * Guarantees:
 *   1. Every request is answered exactly once; a volume error becomes the
 *      positive errno of cairn_rc_to_errno(), and is logged at debug level
 *      with its context message.
 *   2. Permission checks are the kernel's (the mount always has
 *      default_permissions: owner, group, other, sticky bit); this file
 *      only supplies the owner of new nodes (the caller's fsuid/fsgid, or
 *      the parent's group under a set-group-id directory).
 *   3. The kernel page cache of a file is kept across opens: opens send
 *      no message (FUSE_CAP_NO_OPEN_SUPPORT: the first OPEN is answered
 *      ENOSYS, which also implies FOPEN_KEEP_CACHE), so a warm read of a
 *      small file costs the daemon nothing.  This is exact: the daemon
 *      owns the volume, so every change of a file's bytes goes through
 *      this mount's kernel inode (write, truncate, O_TRUNC, punch hole),
 *      which updates or drops its cached pages itself, or is made by a
 *      command of the control socket, which invalidates what it touched
 *      (cairn_mount_live_inval_*, fuse_priv.h invariant 7); the cache is
 *      therefore never stale.  Invalidating at open would be worse than
 *      useless: a page dropped while another handle's WRITE is in flight
 *      is re-read from the daemon without that write's bytes and then
 *      served stale (seen by fuse_stress's append/reader case).  A
 *      follower (files change under it) keeps OPEN and decides there.
 *      A new file created write-only gets FOPEN_DIRECT_IO on its CREATE
 *      reply: that handle's writes skip the page cache, and the kernel
 *      drops the cached pages of each direct write's range first, so
 *      cached readers of the file stay exact (test fuse_wdirect).
 *   4. Written data is staged (then committed within the volume's commit
 *      interval) when the inode's handle is closed: after CFS_IDLE_MS
 *      without a request, at RELEASE (followers, which keep OPEN), at
 *      FORGET, at fsync (staged and committed synced), and at shutdown
 *      (cfs_close_all, before volume_close), so SIGTERM and umount lose
 *      nothing.  The volume shares one buffer per inode, so commands run
 *      by the daemon (the control socket) read what was written, and
 *      volume_sync (ckpt save, snapshots, umount's fsync of the control
 *      file) stages it.
 *   5. Locks (flock, POSIX) are not implemented here on purpose: the kernel
 *      then keeps them itself, which is correct for every process using
 *      this mount (the only way into the volume while it is mounted).
 *
 * Node ids are inode numbers (fuse_priv.h invariant 1); requests carry
 * fh 0 and name the inode (invariant 2).  The hidden control file
 * CFS_CTL_INO exists only in lookup (a new statistics snapshot),
 * getattr, read, write/setattr (refused), fsync and lseek; without OPEN
 * even root's write open of it succeeds, and its writes fail.
 *
 * Directory offsets: "." is 1, ".." is 2, the entry with volume cookie c is
 * c + 2, so a listing resumed from any offset continues after that entry.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "fuse_priv.h"

#define CFS_IO_MAX (1u << 20)

static cfs *req_fs(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

static void st_add(cfs *fs, int k, uint64_t n)
{
	__atomic_add_fetch(&fs->st[k], n, __ATOMIC_RELAXED);
}

static void reply_rc(fuse_req_t req, int rc, const char *op)
{
	cfs *fs = req_fs(req);
	int e = rc ? cairn_rc_to_errno(rc) : 0;
	if (rc) {
		st_add(fs, CFS_ST_ERRORS, 1);
		if (rc != CAIRN_E_NOTFOUND)
			CAIRN_DEBUG(FUSE_MOD, "%s: %s", op, cairn_errmsg());
	}
	fuse_reply_err(req, e);
}

static void ts_from(struct timespec *ts, int64_t ns)
{
	int64_t s = ns / 1000000000, r = ns % 1000000000;
	if (r < 0) {
		r += 1000000000;
		s--;
	}
	ts->tv_sec = (time_t)s;
	ts->tv_nsec = (long)r;
}

static int64_t ts_ns(const struct timespec *ts)
{
	return (int64_t)ts->tv_sec * 1000000000 + ts->tv_nsec;
}

static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return ts_ns(&ts);
}

static void stat_from(const cairn_attr *a, struct stat *st)
{
	memset(st, 0, sizeof *st);
	st->st_ino = a->ino;
	st->st_mode = a->mode;
	st->st_nlink = a->nlink;
	st->st_uid = a->uid;
	st->st_gid = a->gid;
	st->st_size = (off_t)a->size;
	st->st_rdev = (dev_t)a->rdev;
	st->st_blksize = 65536;
	st->st_blocks = (blkcnt_t)((a->size + 511) / 512);
	ts_from(&st->st_atim, a->atime_ns);
	ts_from(&st->st_mtim, a->mtime_ns);
	ts_from(&st->st_ctim, a->ctime_ns);
}

static void ctl_stat(cfs *fs, struct stat *st)
{
	memset(st, 0, sizeof *st);
	st->st_ino = CFS_CTL_INO;
	st->st_mode = S_IFREG | 0444;
	st->st_nlink = 1;
	st->st_blksize = 4096;
	pthread_mutex_lock(&fs->mu);
	st->st_size = (off_t)fs->ctl.len;
	pthread_mutex_unlock(&fs->mu);
}

/* ---- per-inode file handles (fuse_priv.h invariants 2-4) ---- */

static int64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts_ns(&ts);
}

static size_t ibucket(uint64_t ino)
{
	return (size_t)((ino * 0x9e3779b97f4a7c15ULL) >> 32) % CFS_ITAB_BUCKETS;
}

/* Under ino_mu. */
static cino *ino_find(cfs *fs, uint64_t ino)
{
	cino *e = fs->itab[ibucket(ino)];
	while (e && e->ino != ino)
		e = e->hnext;
	return e;
}

/* Under ino_mu: unlink e from its chain and free it. */
static void ino_drop(cfs *fs, cino *e)
{
	cino **pp = &fs->itab[ibucket(e->ino)];
	while (*pp != e)
		pp = &(*pp)->hnext;
	*pp = e->hnext;
	free(e);
}

/* Under ino_mu: the entry of ino, created empty if missing (NULL: no
 * memory). */
static cino *ino_entry(cfs *fs, uint64_t ino)
{
	cino *e = ino_find(fs, ino);
	if (e)
		return e;
	if (!(e = calloc(1, sizeof *e)))
		return NULL;
	size_t b = ibucket(ino);
	e->ino = ino;
	e->hnext = fs->itab[b];
	fs->itab[b] = e;
	return e;
}

static void close_warn(cairn_file *f, uint64_t ino, const char *why)
{
	if (f && volume_file_close(f))
		CAIRN_WARN(FUSE_MOD, "close of inode %" PRIu64 " (%s): %s", ino, why,
			   cairn_errmsg());
}

/* The file handle of ino for one request (invariant 2); ino_put after. */
static int ino_get(cfs *fs, uint64_t ino, cino **out)
{
	cairn_file *f = NULL;
	cino *e;
	int rc;

	*out = NULL;
	if (ino == CFS_CTL_INO)
		return cairn_errf(CAIRN_E_BADF, "the control file has no data handle");
	pthread_mutex_lock(&fs->ino_mu);
	e = ino_find(fs, ino);
	if (e && e->f) {
		e->refs++;
		pthread_mutex_unlock(&fs->ino_mu);
		*out = e;
		return 0;
	}
	pthread_mutex_unlock(&fs->ino_mu);
	/* Opened outside the lock (a metadata read); a racing request may
	 * win, and then this handle is closed unused. */
	if ((rc = volume_file_open(fs->vol, ino, &f)))
		return rc;
	pthread_mutex_lock(&fs->ino_mu);
	e = ino_entry(fs, ino);
	if (!e) {
		pthread_mutex_unlock(&fs->ino_mu);
		close_warn(f, ino, "no memory");
		return cairn_errf(CAIRN_E_NOMEM, "handle of inode %" PRIu64, ino);
	}
	if (!e->f) {
		e->f = f;
		f = NULL;
		fs->nfiles++;
	}
	e->refs++;
	pthread_mutex_unlock(&fs->ino_mu);
	close_warn(f, ino, "lost an open race");
	*out = e;
	return 0;
}

static void ino_put(cfs *fs, cino *e)
{
	pthread_mutex_lock(&fs->ino_mu);
	e->refs--;
	e->used_ns = mono_ns();
	pthread_mutex_unlock(&fs->ino_mu);
}

/* A kernel handle that will send RELEASE was opened (+1; -1 if its
 * reply failed: the kernel will not release it).  0, or CAIRN_E_NOMEM. */
static int ino_hold(cfs *fs, uint64_t ino, int d)
{
	int rc = 0;
	pthread_mutex_lock(&fs->ino_mu);
	cino *e = d > 0 ? ino_entry(fs, ino) : ino_find(fs, ino);
	if (e && d > 0)
		e->held++;
	else if (e && e->held)
		e->held--;
	if (e && !e->f && !e->pin && !e->refs && !e->held)
		ino_drop(fs, e);
	if (!e && d > 0)
		rc = cairn_errf(CAIRN_E_NOMEM, "handle of inode %" PRIu64, ino);
	pthread_mutex_unlock(&fs->ino_mu);
	return rc;
}

/* Close ino's data handle now if no request uses it (staging its data);
 * with release, one kernel handle less first; with forget, also its pin
 * (the kernel has dropped the inode). */
static void ino_close(cfs *fs, uint64_t ino, int forget)
{
	cairn_file *f = NULL, *p = NULL;
	pthread_mutex_lock(&fs->ino_mu);
	cino *e = ino_find(fs, ino);
	if (e && !forget && e->held)
		e->held--;
	if (e) {
		if (!e->refs && (forget || !e->held)) {
			f = e->f;
			e->f = NULL;
		}
		if (forget) {
			p = e->pin;
			e->pin = NULL;
		}
		fs->nfiles -= (f != NULL) + (p != NULL);
		if (forget)
			e->held = 0;
		if (!e->f && !e->pin && !e->refs && !e->held)
			ino_drop(fs, e);
	}
	pthread_mutex_unlock(&fs->ino_mu);
	close_warn(f, ino, forget ? "forget" : "release");
	close_warn(p, ino, "forget of an unlinked inode");
}

/* ---- lookup counts of regular files (fuse_priv.h invariant 6) ---- */

static size_t lkbucket(uint64_t ino)
{
	return (size_t)((ino * 0x9e3779b97f4a7c15ULL) >> 40) % CFS_LK_BUCKETS;
}

/* Where ino's count is or would go in its chain (bucket b, under
 * lk_mu[b % CFS_LK_LOCKS]): *result is the entry or NULL. */
static cfs_lk **lk_slot(cfs *fs, size_t b, uint64_t ino)
{
	cfs_lk **pp = &fs->lk[b];
	while (*pp && (*pp)->ino != ino)
		pp = &(*pp)->next;
	return pp;
}

static pthread_mutex_t *lk_lock(cfs *fs, size_t b)
{
	pthread_mutex_t *mu = &fs->lk_mu[b % CFS_LK_LOCKS];
	pthread_mutex_lock(mu);
	return mu;
}

/* One more lookup of ino the kernel holds (an entry reply about to be
 * sent).  Best effort: without memory the inode is not counted, and a
 * control-socket removal then does not pin it. */
static void lk_add(cfs *fs, uint64_t ino)
{
	size_t b = lkbucket(ino);
	pthread_mutex_t *mu = lk_lock(fs, b);
	cfs_lk *e = *lk_slot(fs, b, ino);
	if (!e && (e = calloc(1, sizeof *e))) {
		e->ino = ino;
		e->next = fs->lk[b];
		fs->lk[b] = e;
	}
	if (e)
		e->n++;
	pthread_mutex_unlock(mu);
}

/* n lookups of ino dropped (FORGET, or an entry reply that failed). */
static void lk_drop(cfs *fs, uint64_t ino, uint64_t n)
{
	size_t b = lkbucket(ino);
	pthread_mutex_t *mu = lk_lock(fs, b);
	cfs_lk **pp = lk_slot(fs, b, ino);
	cfs_lk *e = *pp;
	if (e && e->n > n) {
		e->n -= n;
	} else if (e) {
		*pp = e->next;
		free(e);
	}
	pthread_mutex_unlock(mu);
}

static int lk_known(cfs *fs, uint64_t ino)
{
	size_t b = lkbucket(ino);
	pthread_mutex_t *mu = lk_lock(fs, b);
	int known = *lk_slot(fs, b, ino) != NULL;
	pthread_mutex_unlock(mu);
	return known;
}

/* Invariant 3: before name in parent goes away (unlink, rename over it),
 * a regular file it names gets a pin, so a process that has it open
 * keeps reading and writing it until the kernel forgets the inode.  With
 * held_only (a control-socket command: the kernel may never have seen
 * it, and would then never send the FORGET that closes the pin), only an
 * inode the kernel holds (invariant 6). */
static int pin_victim(cfs *fs, uint64_t parent, const char *name, int held_only)
{
	cairn_attr a;
	cairn_file *p = NULL;
	int rc = volume_lookup(fs->vol, parent, name, &a);
	if (rc == CAIRN_E_NOTFOUND) {
		cairn_err_clear();
		return 0;  /* the operation itself reports it */
	}
	if (rc)
		return rc;
	if (!S_ISREG(a.mode) || (held_only && !lk_known(fs, a.ino)))
		return 0;
	pthread_mutex_lock(&fs->ino_mu);
	cino *e = ino_find(fs, a.ino);
	int have = e && e->pin;
	pthread_mutex_unlock(&fs->ino_mu);
	if (have)
		return 0;
	if ((rc = volume_file_open(fs->vol, a.ino, &p)))
		return rc;
	pthread_mutex_lock(&fs->ino_mu);
	e = ino_entry(fs, a.ino);
	if (e && !e->pin) {
		e->pin = p;
		p = NULL;
		fs->nfiles++;
	}
	pthread_mutex_unlock(&fs->ino_mu);
	if (!e) {
		close_warn(p, a.ino, "no memory");
		return cairn_errf(CAIRN_E_NOMEM, "pin of inode %" PRIu64, a.ino);
	}
	close_warn(p, a.ino, "pinned twice");
	return 0;
}

/* The idle-closer: data handles unused for CFS_IDLE_MS are closed, which
 * stages their buffered data (committed within the volume's commit
 * interval after that), as RELEASE did when every open sent one. */
static void *reaper_main(void *arg)
{
	cfs *fs = arg;
	enum { BATCH = 256 };
	cairn_file *fl[BATCH];
	uint64_t il[BATCH];
	size_t n = 0;

	pthread_mutex_lock(&fs->ino_mu);
	while (!fs->stop) {
		/* A full batch: more may be idle already, no pause (files
		 * created faster than one batch per tick must not pile up
		 * their buffers in memory). */
		if (n < BATCH) {
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_nsec += 100 * 1000000L;
			if (ts.tv_nsec >= 1000000000L) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000L;
			}
			pthread_cond_timedwait(&fs->ino_cv, &fs->ino_mu, &ts);
		}
		n = 0;
		if (fs->stop || !fs->nfiles)
			continue;
		int64_t now = mono_ns();
		int64_t cut = now - (int64_t)CFS_IDLE_MS * 1000000;
		int64_t cut_stream = now - (int64_t)CFS_STREAM_IDLE_MS * 1000000;
		for (size_t b = 0; b < CFS_ITAB_BUCKETS && n < BATCH; b++) {
			cino *e = fs->itab[b];
			while (e && n < BATCH) {
				cino *nx = e->hnext;
				uint64_t wb = __atomic_load_n(&e->wbytes, __ATOMIC_RELAXED);
				int64_t c = wb >= CFS_STREAM_BYTES ? cut_stream : cut;
				if (e->f && !e->refs && !e->held && e->used_ns < c) {
					il[n] = e->ino;
					fl[n++] = e->f;
					e->f = NULL;
					__atomic_store_n(&e->wbytes, 0, __ATOMIC_RELAXED);
					fs->nfiles--;
					if (!e->pin)
						ino_drop(fs, e);
				}
				e = nx;
			}
		}
		if (!n)
			continue;
		pthread_mutex_unlock(&fs->ino_mu);
		for (size_t i = 0; i < n; i++)
			close_warn(fl[i], il[i], "idle");
		__atomic_add_fetch(&fs->st[CFS_ST_IDLE_CLOSE], n, __ATOMIC_RELAXED);
		pthread_mutex_lock(&fs->ino_mu);
	}
	pthread_mutex_unlock(&fs->ino_mu);
	return NULL;
}

/* A new statistics snapshot for the control file (at each LOOKUP of its
 * name, so once per open by path: opens send no message).  Its pages are
 * dropped from the kernel's cache before the entry is answered, so a
 * reader never sees an older snapshot's bytes; the size comes with the
 * entry (timeouts 0: every open looks the name up again). */
static int ctl_snapshot(cfs *fs)
{
	char *text = NULL, *old;
	size_t len = 0;
	int rc = cfs_stats_text(fs, &text, &len);
	if (rc)
		return rc;
	pthread_mutex_lock(&fs->mu);
	old = fs->ctl.text;
	fs->ctl.text = text;
	fs->ctl.len = len;
	pthread_mutex_unlock(&fs->mu);
	free(old);
	/* -ENOENT: the kernel holds no inode for it yet (nothing cached). */
	if (fs->se)
		(void)fuse_lowlevel_notify_inval_inode(fs->se, CFS_CTL_INO, 0, 0);
	return 0;
}

static void reply_entry(fuse_req_t req, const cairn_attr *a)
{
	cfs *fs = req_fs(req);
	struct fuse_entry_param e;
	memset(&e, 0, sizeof e);
	e.ino = a->ino;
	e.generation = 1;
	stat_from(a, &e.attr);
	e.attr_timeout = fs->attr_to;
	e.entry_timeout = fs->entry_to;
	if (S_ISREG(a->mode))
		lk_add(fs, a->ino);   /* invariant 6: before the kernel has it */
	if (fuse_reply_entry(req, &e)) {
		CAIRN_DEBUG(FUSE_MOD, "reply_entry: the request was interrupted");
		if (S_ISREG(a->mode))
			lk_drop(fs, a->ino, 1);
	}
}

/* Owner of a new node: the caller, with the group (and, for a directory,
 * the set-group-id bit) of a set-group-id parent, as ext4 does. */
static int new_owner(fuse_req_t req, uint64_t parent, uint32_t *mode,
		     uint32_t *uid, uint32_t *gid)
{
	const struct fuse_ctx *c = fuse_req_ctx(req);
	cairn_attr pa;
	int rc = volume_getattr(req_fs(req)->vol, parent, &pa);
	if (rc)
		return rc;
	*uid = c->uid;
	*gid = c->gid;
	if (pa.mode & S_ISGID) {
		*gid = pa.gid;
		if (S_ISDIR(*mode))
			*mode |= S_ISGID;
	}
	return 0;
}

static void cfs_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	cfs *fs = req_fs(req);
	cairn_attr a;
	int rc;

	st_add(fs, CFS_ST_LOOKUP, 1);
	if (parent == CAIRN_ROOT_INO && strcmp(name, CAIRN_FUSE_CTL_NAME) == 0) {
		struct fuse_entry_param e;
		if ((rc = ctl_snapshot(fs))) {
			reply_rc(req, rc, "lookup of the control file");
			return;
		}
		memset(&e, 0, sizeof e);
		e.ino = CFS_CTL_INO;
		e.generation = 1;
		ctl_stat(fs, &e.attr);
		fuse_reply_entry(req, &e);
		return;
	}
	rc = volume_lookup(fs->vol, parent, name, &a);
	if (rc == CAIRN_E_NOTFOUND) {
		/* A negative entry: every change comes through this mount, so
		 * the kernel drops it itself when the name is created (or a
		 * control-socket command that creates it invalidates it). */
		struct fuse_entry_param e;
		memset(&e, 0, sizeof e);
		e.entry_timeout = fs->entry_to;
		fuse_reply_entry(req, &e);
		return;
	}
	if (rc) {
		reply_rc(req, rc, "lookup");
		return;
	}
	reply_entry(req, &a);
}

/* The kernel dropped the inode: no request names it any more until a
 * new LOOKUP, so its handles (data and pin) are closed. */
static void cfs_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	st_add(req_fs(req), CFS_ST_FORGET, 1);
	if (ino != CFS_CTL_INO) {
		lk_drop(req_fs(req), ino, nlookup);
		ino_close(req_fs(req), ino, 1);
	}
	fuse_reply_none(req);
}

static void cfs_forget_multi(fuse_req_t req, size_t count,
			     struct fuse_forget_data *forgets)
{
	st_add(req_fs(req), CFS_ST_FORGET, count);
	for (size_t i = 0; i < count; i++)
		if (forgets[i].ino != CFS_CTL_INO) {
			lk_drop(req_fs(req), forgets[i].ino, forgets[i].nlookup);
			ino_close(req_fs(req), forgets[i].ino, 1);
		}
	fuse_reply_none(req);
}

static void cfs_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	cfs *fs = req_fs(req);
	struct stat st;
	cairn_attr a;
	int rc;

	(void)fi;
	st_add(fs, CFS_ST_GETATTR, 1);
	if (ino == CFS_CTL_INO) {
		ctl_stat(fs, &st);
		fuse_reply_attr(req, &st, 0);
		return;
	}
	if ((rc = volume_getattr(fs->vol, ino, &a))) {
		reply_rc(req, rc, "getattr");
		return;
	}
	stat_from(&a, &st);
	fuse_reply_attr(req, &st, fs->attr_to);
}

static void cfs_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr,
			int to_set, struct fuse_file_info *fi)
{
	cfs *fs = req_fs(req);
	cairn_sattr sa;
	cairn_attr a;
	struct stat st;
	int rc;

	(void)fi;
	st_add(fs, CFS_ST_SETATTR, 1);
	if (ino == CFS_CTL_INO) {
		fuse_reply_err(req, EPERM);
		return;
	}
	memset(&sa, 0, sizeof sa);
	if (to_set & FUSE_SET_ATTR_MODE) {
		sa.mask |= CAIRN_SET_MODE;
		sa.mode = attr->st_mode & 07777;
	}
	if (to_set & FUSE_SET_ATTR_UID) {
		sa.mask |= CAIRN_SET_UID;
		sa.uid = attr->st_uid;
	}
	if (to_set & FUSE_SET_ATTR_GID) {
		sa.mask |= CAIRN_SET_GID;
		sa.gid = attr->st_gid;
	}
	if (to_set & FUSE_SET_ATTR_SIZE) {
		sa.mask |= CAIRN_SET_SIZE;
		sa.size = (uint64_t)attr->st_size;
	}
	if (to_set & (FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_ATIME_NOW)) {
		sa.mask |= CAIRN_SET_ATIME;
		sa.atime_ns = (to_set & FUSE_SET_ATTR_ATIME_NOW) ? now_ns()
			      : ts_ns(&attr->st_atim);
	}
	if (to_set & (FUSE_SET_ATTR_MTIME | FUSE_SET_ATTR_MTIME_NOW)) {
		sa.mask |= CAIRN_SET_MTIME;
		sa.mtime_ns = (to_set & FUSE_SET_ATTR_MTIME_NOW) ? now_ns()
			      : ts_ns(&attr->st_mtim);
	}
	if (to_set & FUSE_SET_ATTR_CTIME) {
		sa.mask |= CAIRN_SET_CTIME;
		sa.ctime_ns = ts_ns(&attr->st_ctim);
	}
	if (sa.mask)
		rc = volume_setattr(fs->vol, ino, &sa, &a);
	else
		rc = volume_getattr(fs->vol, ino, &a);
	/* The metadata's record lacks what is still buffered in memory
	 * (size, mtime): answer with the volume's full view. */
	if (!rc && sa.mask)
		rc = volume_getattr(fs->vol, ino, &a);
	if (rc) {
		reply_rc(req, rc, "setattr");
		return;
	}
	stat_from(&a, &st);
	fuse_reply_attr(req, &st, fs->attr_to);
}

static void cfs_readlink(fuse_req_t req, fuse_ino_t ino)
{
	char buf[4097];
	size_t len = 0;
	int rc = volume_readlink(req_fs(req)->vol, ino, buf, sizeof buf - 1, &len);
	st_add(req_fs(req), CFS_ST_OTHER, 1);
	if (!rc && len >= sizeof buf)
		rc = cairn_errf(CAIRN_E_NAMETOOLONG, "symlink target of %zu bytes", len);
	if (rc) {
		reply_rc(req, rc, "readlink");
		return;
	}
	buf[len] = 0;
	fuse_reply_readlink(req, buf);
}

static void cfs_mknod(fuse_req_t req, fuse_ino_t parent, const char *name,
		      mode_t mode, dev_t rdev)
{
	cfs *fs = req_fs(req);
	uint32_t m = mode, uid, gid;
	cairn_attr a;
	int rc;

	st_add(fs, CFS_ST_CREATE, 1);
	if (!(rc = new_owner(req, parent, &m, &uid, &gid)))
		rc = volume_mknod(fs->vol, parent, name, m, rdev, uid, gid, &a);
	if (rc) {
		reply_rc(req, rc, "mknod");
		return;
	}
	reply_entry(req, &a);
}

static void cfs_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name,
		      mode_t mode)
{
	cfs *fs = req_fs(req);
	uint32_t m = S_IFDIR | (mode & 07777), uid, gid;
	cairn_attr a;
	int rc;

	st_add(fs, CFS_ST_CREATE, 1);
	if (!(rc = new_owner(req, parent, &m, &uid, &gid)))
		rc = volume_mkdir(fs->vol, parent, name, m & 07777, uid, gid, &a);
	if (rc) {
		reply_rc(req, rc, "mkdir");
		return;
	}
	reply_entry(req, &a);
}

static void cfs_symlink(fuse_req_t req, const char *link, fuse_ino_t parent,
			const char *name)
{
	cfs *fs = req_fs(req);
	uint32_t m = S_IFLNK | 0777, uid, gid;
	cairn_attr a;
	int rc;

	st_add(fs, CFS_ST_CREATE, 1);
	if (!(rc = new_owner(req, parent, &m, &uid, &gid)))
		rc = volume_symlink(fs->vol, parent, name, link, uid, gid, &a);
	if (rc) {
		reply_rc(req, rc, "symlink");
		return;
	}
	reply_entry(req, &a);
}

static void cfs_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	st_add(req_fs(req), CFS_ST_REMOVE, 1);
	if (parent == CAIRN_ROOT_INO && strcmp(name, CAIRN_FUSE_CTL_NAME) == 0) {
		fuse_reply_err(req, EPERM);
		return;
	}
	int rc = pin_victim(req_fs(req), parent, name, 0);
	if (!rc)
		rc = volume_unlink(req_fs(req)->vol, parent, name);
	reply_rc(req, rc, "unlink");
}

static void cfs_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	st_add(req_fs(req), CFS_ST_REMOVE, 1);
	reply_rc(req, volume_rmdir(req_fs(req)->vol, parent, name), "rmdir");
}

static void cfs_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
		       fuse_ino_t newparent, const char *newname, unsigned int flags)
{
	unsigned f = 0;
	st_add(req_fs(req), CFS_ST_RENAME, 1);
	if (flags & ~(unsigned)(RENAME_NOREPLACE | RENAME_EXCHANGE)) {
		fuse_reply_err(req, EINVAL);  /* RENAME_WHITEOUT: overlayfs only */
		return;
	}
	if (flags & RENAME_NOREPLACE)
		f |= CAIRN_RENAME_NOREPLACE;
	if (flags & RENAME_EXCHANGE)
		f |= CAIRN_RENAME_EXCHANGE;
	if ((parent == CAIRN_ROOT_INO && strcmp(name, CAIRN_FUSE_CTL_NAME) == 0) ||
	    (newparent == CAIRN_ROOT_INO && strcmp(newname, CAIRN_FUSE_CTL_NAME) == 0)) {
		fuse_reply_err(req, EPERM);
		return;
	}
	int rc = 0;
	if (!(flags & (RENAME_NOREPLACE | RENAME_EXCHANGE)))
		rc = pin_victim(req_fs(req), newparent, newname, 0);
	if (!rc)
		rc = volume_rename(req_fs(req)->vol, parent, name, newparent, newname, f);
	reply_rc(req, rc, "rename");
}

static void cfs_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent,
		     const char *newname)
{
	cairn_attr a;
	int rc;
	st_add(req_fs(req), CFS_ST_CREATE, 1);
	if (ino == CFS_CTL_INO) {
		fuse_reply_err(req, EPERM);
		return;
	}
	rc = volume_link(req_fs(req)->vol, ino, newparent, newname, &a);
	if (rc) {
		reply_rc(req, rc, "link");
		return;
	}
	reply_entry(req, &a);
}

/* ---- files ---- */

/* A follower's files change under it (the writer is another host): the
 * kernel's pages are kept only for an inode whose size and times are
 * what they were when they were cached.  Followers therefore keep OPEN
 * (cfs_init_conn). */
static void follower_keep_cache(cfs *fs, uint64_t ino, struct fuse_file_info *fi)
{
	cairn_attr a;
	fi->keep_cache = 0;
	if (volume_getattr(fs->vol, ino, &a) == 0) {
		pthread_mutex_lock(&fs->mu);
		cfs_kc *k = &fs->kc[(ino * 0x9e3779b97f4a7c15ULL >> 32) % CFS_KC_SLOTS];
		if (k->ino == ino && k->size == a.size && k->mtime_ns == a.mtime_ns &&
		    k->ctime_ns == a.ctime_ns)
			fi->keep_cache = 1;
		k->ino = ino;
		k->size = a.size;
		k->mtime_ns = a.mtime_ns;
		k->ctime_ns = a.ctime_ns;
		pthread_mutex_unlock(&fs->mu);
	}
	cairn_err_clear();
}

static void cfs_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	cfs *fs = req_fs(req);

	st_add(fs, CFS_ST_OPEN, 1);
	if (fs->no_open) {
		/* Zero-message opens: after this answer the kernel never
		 * sends OPEN (nor RELEASE) for a regular file again, keeps its
		 * page cache (FOPEN_KEEP_CACHE is implied) and sends fh 0.
		 * O_TRUNC arrives as a SETATTR (no atomic_o_trunc). */
		fuse_reply_err(req, ENOSYS);
		return;
	}
	fi->fh = 0;
	fi->direct_io = 0;
	if (ino == CFS_CTL_INO) {
		fi->keep_cache = 0;
	} else if (fs->follower) {
		follower_keep_cache(fs, ino, fi);
	} else {
		/* Guarantee 3: the kernel's cache is the file's content. */
		fi->keep_cache = 1;
	}
	if (fi->keep_cache)
		st_add(fs, CFS_ST_KEEP_CACHE, 1);
	if (ino != CFS_CTL_INO) {
		int rc = ino_hold(fs, ino, 1);
		if (rc) {
			reply_rc(req, rc, "open");
			return;
		}
	}
	if (fuse_reply_open(req, fi) && ino != CFS_CTL_INO)
		(void)ino_hold(fs, ino, -1);  /* interrupted: no RELEASE */
}

static void cfs_create(fuse_req_t req, fuse_ino_t parent, const char *name,
		       mode_t mode, struct fuse_file_info *fi)
{
	cfs *fs = req_fs(req);
	uint32_t m = S_IFREG | (mode & 07777), uid, gid;
	struct fuse_entry_param e;
	cairn_attr a;
	int rc, fresh;

	st_add(fs, CFS_ST_CREATE, 1);
	if (!(rc = new_owner(req, parent, &m, &uid, &gid)))
		rc = volume_create(fs->vol, parent, name, m & 07777, uid, gid, &a);
	fresh = rc == 0;
	if (rc == CAIRN_E_EXISTS && !(fi->flags & O_EXCL)) {
		/* Another creator won the race: open what it made. */
		rc = volume_lookup(fs->vol, parent, name, &a);
		if (!rc && S_ISDIR(a.mode))
			rc = cairn_errf(CAIRN_E_ISDIR, "create of '%s': a directory", name);
		if (!rc && !S_ISREG(a.mode))
			rc = cairn_errf(CAIRN_E_INVAL, "create of '%s': not a regular file", name);
		if (!rc && (fi->flags & O_TRUNC) && a.size) {
			cairn_sattr sa = { .mask = CAIRN_SET_SIZE, .size = 0 };
			rc = volume_setattr(fs->vol, a.ino, &sa, &a);
		}
	}
	if (rc) {
		reply_rc(req, rc, "create");
		return;
	}
	/* Once the kernel has seen ENOSYS for OPEN it sends no RELEASE for
	 * created files either (6.18; before that first OPEN it does): the
	 * data is staged when the handle is idle, as for any open. */
	fi->fh = 0;
	/* A new file created write-only (torch.save's "wb"): its handle
	 * writes past the page cache (docs/fuse.md "Write-only creates"). */
	fi->direct_io = fresh && !fs->follower && (fi->flags & O_ACCMODE) == O_WRONLY;
	fi->keep_cache = 1;
	st_add(fs, CFS_ST_KEEP_CACHE, 1);
	if (fi->direct_io)
		st_add(fs, CFS_ST_DIRECT_CREATE, 1);
	memset(&e, 0, sizeof e);
	e.ino = a.ino;
	e.generation = 1;
	stat_from(&a, &e.attr);
	e.attr_timeout = fs->attr_to;
	e.entry_timeout = fs->entry_to;
	lk_add(fs, a.ino);
	if (fuse_reply_create(req, &e, fi)) {
		CAIRN_DEBUG(FUSE_MOD, "create: the request was interrupted");
		lk_drop(fs, a.ino, 1);
	}
}

/* The control file's current snapshot: bytes [off, off+size). */
static void ctl_read(fuse_req_t req, cfs *fs, size_t size, off_t off)
{
	pthread_mutex_lock(&fs->mu);
	size_t len = fs->ctl.len;
	size_t o = (uint64_t)off < len ? (size_t)off : len;
	size_t n = len - o < size ? len - o : size;
	char *copy = malloc(n ? n : 1);
	if (copy && n)
		memcpy(copy, fs->ctl.text + o, n);
	pthread_mutex_unlock(&fs->mu);
	if (!copy) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	fuse_reply_buf(req, copy, n);
	free(copy);
}

/* Each worker thread's READ buffer (CFS_IO_MAX bytes), kept for the
 * thread's life and freed by the key's destructor when libfuse ends an
 * idle worker.  A malloc and free of 1 MiB per request came back as heap
 * that glibc had trimmed (madvise DONTNEED), so READs faulted in and
 * zeroed their pages again (docs/fuse.md "Speed features").  Used only
 * when the volume cannot reply from its own memory (volume_file_read_to). */
static uring_tbuf rbuf = URING_TBUF_INIT(CFS_IO_MAX, 64);

static uint8_t *read_buf(void)
{
	return uring_tbuf_get(&rbuf);
}

/* volume_file_read_to's consumer: the reply, from the volume's memory
 * (a large file's readahead chunks) or from the thread's buffer. */
static int reply_read(void *arg, const struct iovec *iov, int niov, size_t len)
{
	fuse_req_t req = arg;
	int r;
	st_add(req_fs(req), CFS_ST_BYTES_READ, len);
	r = niov ? fuse_reply_iov(req, iov, niov) : fuse_reply_buf(req, NULL, 0);
	if (r)  /* -errno: the request was interrupted; nothing to answer */
		CAIRN_DEBUG(FUSE_MOD, "read reply: %s", strerror(-r));
	return 0;
}

static void cfs_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		     struct fuse_file_info *fi)
{
	cfs *fs = req_fs(req);
	uint8_t *buf;
	cino *e;
	int rc;

	(void)fi;
	st_add(fs, CFS_ST_READ, 1);
	if (off < 0) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	if (ino == CFS_CTL_INO) {
		ctl_read(req, fs, size, off);
		return;
	}
	if (size > CFS_IO_MAX)
		size = CFS_IO_MAX;
	if (!(buf = read_buf())) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	/* Answered by reply_read, unless the read fails (then not called). */
	if (!(rc = ino_get(fs, ino, &e))) {
		rc = volume_file_read_to(e->f, buf, size, (uint64_t)off, reply_read, req);
		ino_put(fs, e);
	}
	if (rc)
		reply_rc(req, rc, "read");
}

static void cfs_write(fuse_req_t req, fuse_ino_t ino, const char *buf,
		      size_t size, off_t off, struct fuse_file_info *fi)
{
	cfs *fs = req_fs(req);
	cino *e;
	int rc;

	(void)fi;
	st_add(fs, CFS_ST_WRITE, 1);
	if (ino == CFS_CTL_INO) {
		fuse_reply_err(req, EPERM);  /* read-only, even for root */
		return;
	}
	if (off < 0) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	/* The kernel computed the offset (O_APPEND included) under its inode
	 * lock from an i_size that every write through this mount updates;
	 * writing elsewhere would desynchronize its page cache. */
	if (!(rc = ino_get(fs, ino, &e))) {
		rc = volume_file_write(e->f, buf, size, (uint64_t)off);
		if (!rc)
			__atomic_add_fetch(&e->wbytes, size, __ATOMIC_RELAXED);
		ino_put(fs, e);
	}
	if (rc) {
		reply_rc(req, rc, "write");
		return;
	}
	st_add(fs, CFS_ST_BYTES_WRITTEN, size);
	fuse_reply_write(req, size);
}

/* Sent for every open on a follower (and for files created before the
 * first OPEN was answered ENOSYS): stage the inode's data now if no other
 * kernel handle we know of is open, as a close did before zero-message
 * opens.  Other openers are invisible: the handle reopens on demand. */
static void cfs_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	cfs *fs = req_fs(req);
	(void)fi;
	st_add(fs, CFS_ST_RELEASE, 1);
	if (ino != CFS_CTL_INO)
		ino_close(fs, ino, 0);
	fuse_reply_err(req, 0);
}

static void cfs_fsync(fuse_req_t req, fuse_ino_t ino, int datasync,
		      struct fuse_file_info *fi)
{
	cfs *fs = req_fs(req);
	cino *e;
	int rc;
	(void)datasync;
	(void)fi;
	st_add(fs, CFS_ST_FSYNC, 1);
	if (ino == CFS_CTL_INO) {
		reply_rc(req, volume_sync(fs->vol), "fsync");
		return;
	}
	if (!(rc = ino_get(fs, ino, &e))) {
		rc = volume_file_fsync(e->f);
		ino_put(fs, e);
	}
	reply_rc(req, rc, "fsync");
}

static int do_fallocate(cfs *fs, cairn_file *f, uint64_t ino, int mode, off_t off,
			off_t len)
{
	cairn_attr a;
	int rc;

	if ((rc = volume_getattr(fs->vol, ino, &a)))
		return rc;
	uint64_t end = (uint64_t)off + (uint64_t)len;
	if (mode == 0) {
		/* Space is not reserved (the store has no such notion); the
		 * size grows as posix_fallocate promises. */
		if (end > a.size) {
			cairn_sattr sa = { .mask = CAIRN_SET_SIZE, .size = end };
			rc = volume_setattr(fs->vol, ino, &sa, NULL);
		}
	} else if (mode == FALLOC_FL_KEEP_SIZE) {
		rc = 0;
	} else {
		/* PUNCH_HOLE|KEEP_SIZE: zeros written over the range, reads
		 * are those of a hole. */
		static const uint8_t zeros[65536];
		uint64_t pos = (uint64_t)off, stop = end < a.size ? end : a.size;
		while (!rc && pos < stop) {
			uint64_t n = stop - pos < sizeof zeros ? stop - pos : sizeof zeros;
			rc = volume_file_write(f, zeros, n, pos);
			pos += n;
		}
	}
	return rc;
}

static void cfs_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t off,
			  off_t len, struct fuse_file_info *fi)
{
	cfs *fs = req_fs(req);
	cino *e;
	int rc;

	(void)fi;
	st_add(fs, CFS_ST_OTHER, 1);
	if (ino == CFS_CTL_INO) {
		fuse_reply_err(req, EBADF);
		return;
	}
	if (off < 0 || len <= 0 || (uint64_t)len > UINT64_MAX - (uint64_t)off) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	if (mode != 0 && mode != FALLOC_FL_KEEP_SIZE &&
	    mode != (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE)) {
		fuse_reply_err(req, EOPNOTSUPP);
		return;
	}
	if (!(rc = ino_get(fs, ino, &e))) {
		rc = do_fallocate(fs, e->f, ino, mode, off, len);
		ino_put(fs, e);
	}
	reply_rc(req, rc, "fallocate");
}

/* An instant copy: the volume maps the destination range to the source's
 * chunks (volume_copy_range, docs/fuse.md); no byte passes through the
 * daemon, so bytes_read/bytes_written do not count it.  The kernel checked
 * the flags, the open modes and overlapping ranges of one file, and drops
 * the destination's cached pages afterwards. */
static void cfs_copy_file_range(fuse_req_t req, fuse_ino_t ino_in, off_t off_in,
				struct fuse_file_info *fi_in, fuse_ino_t ino_out,
				off_t off_out, struct fuse_file_info *fi_out,
				size_t len, int flags)
{
	cfs *fs = req_fs(req);
	cino *ei = NULL, *eo = NULL;
	uint64_t done = 0;
	int rc;

	(void)fi_in;
	(void)fi_out;
	st_add(fs, CFS_ST_OTHER, 1);
	if (flags) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	if (ino_in == CFS_CTL_INO || ino_out == CFS_CTL_INO) {
		fuse_reply_err(req, EBADF);
		return;
	}
	if (off_in < 0 || off_out < 0) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	rc = ino_get(fs, ino_in, &ei);
	if (!rc)
		rc = ino_get(fs, ino_out, &eo);
	if (!rc)
		rc = volume_copy_range(fs->vol, ei->f, (uint64_t)off_in, eo->f,
				       (uint64_t)off_out, (uint64_t)len, &done);
	if (eo)
		ino_put(fs, eo);
	if (ei)
		ino_put(fs, ei);
	if (rc) {
		reply_rc(req, rc, "copy_file_range");
		return;
	}
	fuse_reply_write(req, (size_t)done);
}

/* SEEK_DATA / SEEK_HOLE from the extent map (the kernel answers SEEK_SET,
 * SEEK_CUR and SEEK_END itself). */
static void cfs_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence,
		      struct fuse_file_info *fi)
{
	cfs *fs = req_fs(req);
	uint64_t at = 0;
	cino *e;
	int rc;

	(void)fi;
	st_add(fs, CFS_ST_OTHER, 1);
	if (off < 0 || (whence != SEEK_DATA && whence != SEEK_HOLE)) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	if (ino == CFS_CTL_INO) {
		/* The control file: all data, no hole.  Never ENOSYS, which
		 * would turn lseek off for the whole mount. */
		pthread_mutex_lock(&fs->mu);
		size_t len = fs->ctl.len;
		pthread_mutex_unlock(&fs->mu);
		if ((uint64_t)off >= len)
			fuse_reply_err(req, ENXIO);
		else
			fuse_reply_lseek(req, whence == SEEK_DATA ? off : (off_t)len);
		return;
	}
	if (!(rc = ino_get(fs, ino, &e))) {
		rc = volume_seek_data(e->f, (uint64_t)off, whence, &at);
		ino_put(fs, e);
	}
	if (rc) {
		if (rc == CAIRN_E_NXIO)
			fuse_reply_err(req, ENXIO);  /* an answer, not an error */
		else
			reply_rc(req, rc, "lseek");
		return;
	}
	fuse_reply_lseek(req, (off_t)at);
}

/* ---- directories ---- */

static void cfs_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	cairn_attr a;
	int rc = volume_getattr(req_fs(req)->vol, ino, &a);
	if (!rc && !S_ISDIR(a.mode))
		rc = cairn_errf(CAIRN_E_NOTDIR, "opendir of inode %" PRIu64, (uint64_t)ino);
	if (rc) {
		reply_rc(req, rc, "opendir");
		return;
	}
	fi->fh = 0;
	fi->cache_readdir = 0;
	fuse_reply_open(req, fi);
}

typedef struct rdctx {
	fuse_req_t req;
	cfs *fs;
	char *buf;
	size_t size, pos;
	int plus;
	int rc;
	uint64_t *regs;     /* readdirplus: regular files counted (invariant 6) */
	size_t nregs, capregs;
} rdctx;

/* Append one entry; 1 when the buffer is full (the entry is not added). */
static int rd_add(rdctx *r, const char *name, const cairn_attr *a,
		  uint32_t mode, uint64_t ino, off_t next)
{
	size_t need;
	if (r->plus) {
		struct fuse_entry_param e;
		memset(&e, 0, sizeof e);
		if (a) {
			e.ino = a->ino;
			e.generation = 1;
			stat_from(a, &e.attr);
			e.attr_timeout = r->fs->attr_to;
			e.entry_timeout = r->fs->entry_to;
		} else {
			e.attr.st_ino = ino;
			e.attr.st_mode = mode;
		}
		need = fuse_add_direntry_plus(r->req, NULL, 0, name, &e, 0);
		if (r->pos + need > r->size)
			return 1;
		if (a && S_ISREG(a->mode)) {
			/* a lookup for the kernel (invariant 6), undone if the
			 * reply fails */
			if (r->nregs == r->capregs) {
				size_t cap = r->capregs ? r->capregs * 2 : 64;
				uint64_t *v = realloc(r->regs, cap * sizeof *v);
				if (!v) {
					r->rc = cairn_errf(CAIRN_E_NOMEM, "readdirplus");
					return 1;
				}
				r->regs = v;
				r->capregs = cap;
			}
			r->regs[r->nregs++] = a->ino;
			lk_add(r->fs, a->ino);
		}
		fuse_add_direntry_plus(r->req, r->buf + r->pos, r->size - r->pos, name, &e, next);
	} else {
		struct stat st;
		memset(&st, 0, sizeof st);
		st.st_ino = ino;
		st.st_mode = mode;
		need = fuse_add_direntry(r->req, NULL, 0, name, NULL, 0);
		if (r->pos + need > r->size)
			return 1;
		fuse_add_direntry(r->req, r->buf + r->pos, r->size - r->pos, name, &st, next);
	}
	r->pos += need;
	return 0;
}

static int rd_cb(const char *name, size_t namelen, uint64_t ino, uint32_t type,
		 uint64_t cookie, void *arg)
{
	rdctx *r = arg;
	char nm[256];
	cairn_attr a;

	if (namelen >= sizeof nm) {
		r->rc = cairn_errf(CAIRN_E_CORRUPT, "directory entry of %zu bytes", namelen);
		return 1;
	}
	memcpy(nm, name, namelen);
	nm[namelen] = 0;
	if (r->plus) {
		int rc = volume_getattr(r->fs->vol, ino, &a);
		if (rc == CAIRN_E_NOTFOUND)
			return 0;  /* removed since the listing's snapshot */
		if (rc) {
			r->rc = rc;
			return 1;
		}
	}
	return rd_add(r, nm, r->plus ? &a : NULL, type, ino, (off_t)(cookie + 2));
}

static void do_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       int plus)
{
	cfs *fs = req_fs(req);
	rdctx r = { .req = req, .fs = fs, .size = size, .plus = plus };
	int rc = 0;

	st_add(fs, CFS_ST_READDIR, 1);
	r.buf = malloc(size ? size : 1);
	if (!r.buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	/* "." and ".." carry no attributes (the kernel skips them in a
	 * readdirplus answer); ".." shows the directory's own number, as the
	 * volume keeps no parent pointer. */
	if (off < 1 && rd_add(&r, ".", NULL, S_IFDIR, ino, 1))
		goto reply;
	if (off < 2 && rd_add(&r, "..", NULL, S_IFDIR, ino, 2))
		goto reply;
	rc = volume_readdir(fs->vol, ino, off <= 2 ? 0 : (uint64_t)off - 2, rd_cb, &r);
	if (!rc)
		rc = r.rc;
	if (rc && r.pos == 0) {
		free(r.buf);
		free(r.regs);
		reply_rc(req, rc, "readdir");
		return;
	}
reply:
	if (fuse_reply_buf(req, r.buf, r.pos))
		for (size_t i = 0; i < r.nregs; i++)
			lk_drop(fs, r.regs[i], 1);   /* the kernel has none of them */
	free(r.buf);
	free(r.regs);
}

static void cfs_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			struct fuse_file_info *fi)
{
	(void)fi;
	do_readdir(req, ino, size, off, 0);
}

static void cfs_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			    struct fuse_file_info *fi)
{
	(void)fi;
	do_readdir(req, ino, size, off, 1);
}

static void cfs_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	(void)fi;
	fuse_reply_err(req, 0);
}

static void cfs_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync,
			 struct fuse_file_info *fi)
{
	(void)ino;
	(void)datasync;
	(void)fi;
	st_add(req_fs(req), CFS_ST_FSYNC, 1);
	/* Namespace changes are metadata commits: one synced commit of the
	 * volume makes them (and every earlier one) durable. */
	reply_rc(req, volume_sync(req_fs(req)->vol), "fsyncdir");
}

static void cfs_statfs(fuse_req_t req, fuse_ino_t ino)
{
	cfs *fs = req_fs(req);
	struct statvfs sv, local;
	cairn_statfs s;
	int rc;

	(void)ino;
	st_add(fs, CFS_ST_OTHER, 1);
	if ((rc = volume_statfs(fs->vol, &s))) {
		reply_rc(req, rc, "statfs");
		return;
	}
	memset(&sv, 0, sizeof sv);
	/* Space is the object store's; the local file system holding the
	 * volume directory is the nearest honest figure for free space. */
	if (statvfs(fs->voldir, &local) == 0) {
		sv.f_bsize = local.f_bsize;
		sv.f_frsize = local.f_frsize;
		sv.f_blocks = local.f_blocks;
		sv.f_bfree = local.f_bfree;
		sv.f_bavail = local.f_bavail;
	} else {
		sv.f_bsize = sv.f_frsize = 4096;
	}
	sv.f_files = s.inodes + (1ull << 32);
	sv.f_ffree = 1ull << 32;
	sv.f_favail = sv.f_ffree;
	sv.f_namemax = 255;
	fuse_reply_statfs(req, &sv);
}

/* ---- xattrs ---- */

static void cfs_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
			 const char *value, size_t size, int flags)
{
	unsigned f = 0;
	st_add(req_fs(req), CFS_ST_XATTR, 1);
	if (ino == CFS_CTL_INO) {
		fuse_reply_err(req, EPERM);
		return;
	}
	/* POSIX ACLs are not interpreted (no FUSE_POSIX_ACL): stored as plain
	 * xattrs they would let `cp -a`/`tar` believe the mode was set while
	 * the permission bits stay as created.  Refused, tools fall back to
	 * chmod (docs/fuse.md). */
	if (strncmp(name, "system.posix_acl_", 17) == 0) {
		fuse_reply_err(req, EOPNOTSUPP);
		return;
	}
	if (flags & XATTR_CREATE)
		f |= CAIRN_XATTR_CREATE;
	if (flags & XATTR_REPLACE)
		f |= CAIRN_XATTR_REPLACE;
	reply_rc(req, volume_xattr_set(req_fs(req)->vol, ino, name, value, size, f),
		 "setxattr");
}

/* get (name != NULL) or list: size 0 asks for the length. */
static void xattr_reply(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	cfs *fs = req_fs(req);
	size_t len = 0;
	char *buf = NULL;
	int rc;

	st_add(fs, CFS_ST_XATTR, 1);
	if (ino == CFS_CTL_INO) {
		if (name)
			fuse_reply_err(req, ENODATA);
		else if (size)
			fuse_reply_buf(req, NULL, 0);
		else
			fuse_reply_xattr(req, 0);
		return;
	}
	if (size && !(buf = malloc(size))) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	rc = name ? volume_xattr_get(fs->vol, ino, name, buf, size, &len)
		  : volume_xattr_list(fs->vol, ino, buf, size, &len);
	if (rc)
		reply_rc(req, rc, name ? "getxattr" : "listxattr");
	else if (!size)
		fuse_reply_xattr(req, len);
	else if (len > size)
		fuse_reply_err(req, ERANGE);
	else
		fuse_reply_buf(req, buf, len);
	free(buf);
}

static void cfs_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
			 size_t size)
{
	xattr_reply(req, ino, name, size);
}

static void cfs_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	xattr_reply(req, ino, NULL, size);
}

static void cfs_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	st_add(req_fs(req), CFS_ST_XATTR, 1);
	if (ino == CFS_CTL_INO) {
		fuse_reply_err(req, EPERM);
		return;
	}
	reply_rc(req, volume_xattr_remove(req_fs(req)->vol, ino, name), "removexattr");
}

static void cfs_access(fuse_req_t req, fuse_ino_t ino, int mask)
{
	/* default_permissions: the kernel checked already. */
	(void)ino;
	(void)mask;
	fuse_reply_err(req, 0);
}

static void cfs_init_conn(void *userdata, struct fuse_conn_info *conn)
{
	cfs *fs = userdata;
	conn->max_write = CFS_IO_MAX;
	conn->max_readahead = CFS_IO_MAX;
	conn->max_background = 64;
	conn->congestion_threshold = 48;
	conn->time_gran = 1;
	unsigned want = FUSE_CAP_ASYNC_READ | FUSE_CAP_READDIRPLUS |
			FUSE_CAP_READDIRPLUS_AUTO | FUSE_CAP_PARALLEL_DIROPS |
			FUSE_CAP_CACHE_SYMLINKS;
	conn->want |= want & conn->capable;
	/* Zero-message opens (docs/fuse.md): the first OPEN is answered
	 * ENOSYS and the kernel sends no OPEN or RELEASE for regular files
	 * from then on.  Not on a follower, whose opens decide whether the
	 * kernel's pages are still the file's.  No atomic_o_trunc: with no
	 * OPEN the kernel would skip the truncation; without it O_TRUNC
	 * comes as a SETATTR. */
	fs->no_open = !fs->follower && (conn->capable & FUSE_CAP_NO_OPEN_SUPPORT);
	if (fs->no_open)
		conn->want |= FUSE_CAP_NO_OPEN_SUPPORT;
	conn->want &= ~(unsigned)FUSE_CAP_ATOMIC_O_TRUNC;
	/* Writeback caching stays off: with it the kernel would own mtime
	 * and O_APPEND offsets, and an fsync'd byte would depend on the
	 * kernel's flushing order (docs/fuse.md). */
	conn->want &= ~(unsigned)FUSE_CAP_WRITEBACK_CACHE;
}

const struct fuse_lowlevel_ops cfs_ops = {
	.init = cfs_init_conn,
	.lookup = cfs_lookup,
	.forget = cfs_forget,
	.forget_multi = cfs_forget_multi,
	.getattr = cfs_getattr,
	.setattr = cfs_setattr,
	.readlink = cfs_readlink,
	.mknod = cfs_mknod,
	.mkdir = cfs_mkdir,
	.symlink = cfs_symlink,
	.unlink = cfs_unlink,
	.rmdir = cfs_rmdir,
	.rename = cfs_rename,
	.link = cfs_link,
	.open = cfs_open,
	.create = cfs_create,
	.read = cfs_read,
	.write = cfs_write,
	.release = cfs_release,
	.fsync = cfs_fsync,
	.fallocate = cfs_fallocate,
	.copy_file_range = cfs_copy_file_range,
	.lseek = cfs_lseek,
	.opendir = cfs_opendir,
	.readdir = cfs_readdir,
	.readdirplus = cfs_readdirplus,
	.releasedir = cfs_releasedir,
	.fsyncdir = cfs_fsyncdir,
	.statfs = cfs_statfs,
	.setxattr = cfs_setxattr,
	.getxattr = cfs_getxattr,
	.listxattr = cfs_listxattr,
	.removexattr = cfs_removexattr,
	.access = cfs_access,
};

/* ---- state ---- */

int cfs_init(cfs *fs, cairn_volume *vol, const cairn_mount_opts *o,
	     const char *voldir, const char *mountpoint)
{
	memset(fs, 0, sizeof *fs);
	fs->vol = vol;
	/* Long by default: every change passes through this mount's kernel,
	 * which updates or invalidates what it caches itself.  A follower's
	 * changes come from the log: short, so they show within a second. */
	double def = o->follow_store ? 1.0 : 10.0;
	fs->follower = o->follow_store != NULL;
	fs->entry_to = o->entry_timeout < 0 ? def : o->entry_timeout;
	fs->attr_to = o->attr_timeout < 0 ? def : o->attr_timeout;
	snprintf(fs->voldir, sizeof fs->voldir, "%s", voldir);
	snprintf(fs->mountpoint, sizeof fs->mountpoint, "%s", mountpoint);
	if (pthread_mutex_init(&fs->mu, NULL))
		return cairn_errf(CAIRN_E_NOMEM, "fuse state mutex");
	if (pthread_mutex_init(&fs->ino_mu, NULL)) {
		pthread_mutex_destroy(&fs->mu);
		return cairn_errf(CAIRN_E_NOMEM, "fuse handle mutex");
	}
	if (pthread_cond_init(&fs->ino_cv, NULL)) {
		pthread_mutex_destroy(&fs->ino_mu);
		pthread_mutex_destroy(&fs->mu);
		return cairn_errf(CAIRN_E_NOMEM, "fuse handle condition");
	}
	int rc = 0, nlk = 0, rw = 0;
	pthread_rwlockattr_t rwa;
	fs->read_only = o->read_only || fs->follower;
	/* writers first: the shutdown's wait is not starved by a command
	 * invalidating entry after entry (invariant 7) */
	if (pthread_rwlockattr_init(&rwa)) {
		rc = cairn_errf(CAIRN_E_NOMEM, "fuse session lock");
	} else {
		(void)pthread_rwlockattr_setkind_np(&rwa,
			PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
		if (pthread_rwlock_init(&fs->se_lock, &rwa))
			rc = cairn_errf(CAIRN_E_NOMEM, "fuse session lock");
		else
			rw = 1;
		pthread_rwlockattr_destroy(&rwa);
	}
	for (; !rc && nlk < CFS_LK_LOCKS; nlk++)
		if (pthread_mutex_init(&fs->lk_mu[nlk], NULL))
			rc = cairn_errf(CAIRN_E_NOMEM, "fuse lookup-count locks");
	if (!rc && !(fs->lk = calloc(CFS_LK_BUCKETS, sizeof *fs->lk)))
		rc = cairn_errf(CAIRN_E_NOMEM, "lookup-count table");
	if (!rc && fs->follower && !(fs->kc = calloc(CFS_KC_SLOTS, sizeof *fs->kc)))
		rc = cairn_errf(CAIRN_E_NOMEM, "follower cache table");
	if (!rc && !(fs->itab = calloc(CFS_ITAB_BUCKETS, sizeof *fs->itab)))
		rc = cairn_errf(CAIRN_E_NOMEM, "file handle table");
	if (!rc && pthread_create(&fs->reaper, NULL, reaper_main, fs))
		rc = cairn_errf(CAIRN_E_NOMEM, "idle-closer thread");
	if (rc) {
		while (nlk > 0)
			pthread_mutex_destroy(&fs->lk_mu[--nlk]);
		if (rw)
			pthread_rwlock_destroy(&fs->se_lock);
		free(fs->lk);
		free(fs->itab);
		free(fs->kc);
		pthread_cond_destroy(&fs->ino_cv);
		pthread_mutex_destroy(&fs->ino_mu);
		pthread_mutex_destroy(&fs->mu);
		return rc;
	}
	fs->reaper_on = 1;
	return 0;
}

static void reaper_stop(cfs *fs)
{
	if (!fs->reaper_on)
		return;
	pthread_mutex_lock(&fs->ino_mu);
	fs->stop = 1;
	pthread_cond_signal(&fs->ino_cv);
	pthread_mutex_unlock(&fs->ino_mu);
	pthread_join(fs->reaper, NULL);
	fs->reaper_on = 0;
}

int cfs_close_all(cfs *fs)
{
	int rc = 0;
	reaper_stop(fs);
	/* The session has ended: no request is in flight. */
	for (size_t b = 0; b < CFS_ITAB_BUCKETS; b++) {
		cino *e = fs->itab[b];
		fs->itab[b] = NULL;
		while (e) {
			cino *nx = e->hnext;
			int r = volume_file_close(e->f);   /* NULL: no-op */
			if (r && !rc)
				rc = r;
			r = volume_file_close(e->pin);
			if (r && !rc)
				rc = r;
			free(e);
			e = nx;
		}
	}
	fs->nfiles = 0;
	return rc;
}

void cfs_destroy(cfs *fs)
{
	reaper_stop(fs);
	for (size_t b = 0; fs->itab && b < CFS_ITAB_BUCKETS; b++) {
		for (cino *e = fs->itab[b], *nx; e; e = nx) {
			nx = e->hnext;
			close_warn(e->f, e->ino, "destroy");
			close_warn(e->pin, e->ino, "destroy");
			free(e);
		}
	}
	free(fs->itab);
	fs->itab = NULL;
	for (size_t b = 0; fs->lk && b < CFS_LK_BUCKETS; b++) {
		for (cfs_lk *e = fs->lk[b], *nx; e; e = nx) {
			nx = e->next;
			free(e);
		}
	}
	free(fs->lk);
	fs->lk = NULL;
	for (int i = 0; i < CFS_LK_LOCKS; i++)
		pthread_mutex_destroy(&fs->lk_mu[i]);
	pthread_rwlock_destroy(&fs->se_lock);
	free(fs->ctl.text);
	fs->ctl.text = NULL;
	free(fs->kc);
	fs->kc = NULL;
	pthread_cond_destroy(&fs->ino_cv);
	pthread_mutex_destroy(&fs->ino_mu);
	pthread_mutex_destroy(&fs->mu);
}

/* ---- changes made outside requests (fuse_priv.h invariants 6, 7) ---- */

int cfs_notify_stop(cfs *fs, unsigned wait_ms)
{
	__atomic_store_n(&fs->se_closing, 1, __ATOMIC_SEQ_CST);
	if (wait_ms) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += wait_ms / 1000;
		ts.tv_nsec += (long)(wait_ms % 1000) * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		if (pthread_rwlock_timedwrlock(&fs->se_lock, &ts))
			return -1;
	} else {
		pthread_rwlock_wrlock(&fs->se_lock);
	}
	fs->se = NULL;
	pthread_rwlock_unlock(&fs->se_lock);
	return 0;
}

static cfs *live_fs(cairn_mount_live *m)
{
	return (cfs *)(void *)m;
}

int cairn_mount_live_read_only(const cairn_mount_live *m)
{
	return ((const cfs *)(const void *)m)->read_only;
}

int cairn_mount_live_pin(cairn_mount_live *m, uint64_t parent, const char *name)
{
	cfs *fs = live_fs(m);
	if (fs->read_only)
		return cairn_errf(CAIRN_E_ROFS, "the mount is read-only");
	return pin_victim(fs, parent, name, 1);
}

/* Send one notification (invariant 7); -ENOENT (the kernel holds no
 * such entry or inode) is the usual answer and means nothing to do. */
static void live_notify(cfs *fs, uint64_t parent, const char *name, uint64_t ino)
{
	int r = 0;
	if (pthread_rwlock_rdlock(&fs->se_lock))
		return;
	if (fs->se && !__atomic_load_n(&fs->se_closing, __ATOMIC_SEQ_CST)) {
		if (name) {
			r = fuse_lowlevel_notify_inval_entry(fs->se, parent, name, strlen(name));
			/* the directory's size, times and link count */
			if (r == 0 || r == -ENOENT)
				r = fuse_lowlevel_notify_inval_inode(fs->se, parent, -1, 0);
		} else {
			r = fuse_lowlevel_notify_inval_inode(fs->se, ino, 0, 0);
		}
	}
	pthread_rwlock_unlock(&fs->se_lock);
	if (r && r != -ENOENT)
		CAIRN_DEBUG(FUSE_MOD, "invalidating %s %" PRIu64 "%s%s: %s",
			    name ? "entry in" : "inode", name ? parent : ino, name ? " " : "",
			    name ? name : "", strerror(-r));
}

void cairn_mount_live_inval_entry(cairn_mount_live *m, uint64_t parent, const char *name)
{
	live_notify(live_fs(m), parent, name, 0);
}

void cairn_mount_live_inval_inode(cairn_mount_live *m, uint64_t ino)
{
	live_notify(live_fs(m), 0, NULL, ino);
}

int cfs_stats_text(cfs *fs, char **out, size_t *len)
{
	static const char *names[CFS_ST__COUNT] = {
		"ops_lookup", "ops_getattr", "ops_setattr", "ops_create",
		"ops_remove", "ops_rename", "ops_open", "ops_read", "ops_write",
		"ops_fsync", "ops_readdir", "ops_xattr", "ops_other",
		"bytes_read", "bytes_written", "errors", "keep_cache_opens",
		"inodes_forgotten", "ops_release", "idle_closes",
		"direct_creates",
	};
	cairn_volume_stats vs;
	size_t cap = 8192, n = 0;
	char *b = malloc(cap);
	size_t nh;

	if (!b)
		return cairn_errf(CAIRN_E_NOMEM, "statistics text");
	volume_stats(fs->vol, &vs);
	pthread_mutex_lock(&fs->ino_mu);
	nh = fs->nfiles;
	pthread_mutex_unlock(&fs->ino_mu);
#define APPEND(...) (n += (size_t)snprintf(b + n, n < cap ? cap - n : 0, __VA_ARGS__))
	APPEND("pid %ld\n", (long)getpid());
	APPEND("volume %s\n", fs->voldir);
	APPEND("mountpoint %s\n", fs->mountpoint);
	APPEND("open_files %zu\n", nh);
	for (int i = 0; i < CFS_ST__COUNT; i++)
		APPEND("%s %" PRIu64 "\n", names[i],
		       __atomic_load_n(&fs->st[i], __ATOMIC_RELAXED));
	APPEND("epoch %" PRIu64 "\n", vs.epoch);
	APPEND("segments_sealed %" PRIu64 "\n", vs.segments_sealed);
	APPEND("segments_uploaded %" PRIu64 "\n", vs.segments_uploaded);
	APPEND("upload_failures %" PRIu64 "\n", vs.upload_failures);
	APPEND("upload_queue %" PRIu64 "\n", vs.upload_queue);
	APPEND("pending_upload_bytes %" PRIu64 "\n", vs.unuploaded_bytes);
	APPEND("commits %" PRIu64 "\n", vs.commits);
	APPEND("chunks_staged %" PRIu64 "\n", vs.chunks_staged);
	APPEND("chunk_reads_local %" PRIu64 "\n", vs.reads_local);
	APPEND("chunk_reads_store %" PRIu64 "\n", vs.reads_store);
	APPEND("chunk_bytes_read %" PRIu64 "\n", vs.read_chunk_bytes);
	APPEND("read_nocopy_bytes %" PRIu64 "\n", vs.read_nocopy_bytes);
	APPEND("readahead_bytes %" PRIu64 "\n", vs.readahead_bytes);
	APPEND("readahead_refused %" PRIu64 "\n", vs.readahead_refused);
	/* log shipping (writer) and following (docs/log-shipping.md) */
	APPEND("follower %d\n", vs.follower);
	APPEND("last_lsn %" PRIu64 "\n", vs.last_lsn);
	if (vs.follower) {
		APPEND("follow_applied_objects %" PRIu64 "\n", vs.follow_applied_objects);
		APPEND("follow_resyncs %" PRIu64 "\n", vs.follow_resyncs);
		APPEND("follow_lag_ms %" PRIu64 "\n", vs.follow_lag_ms);
		APPEND("image_lsn %" PRIu64 "\n", vs.image_lsn);
	} else {
		APPEND("shipped_lsn %" PRIu64 "\n", vs.shipped_lsn);
		APPEND("ship_objects %" PRIu64 "\n", vs.ship_objects);
		APPEND("ship_bytes %" PRIu64 "\n", vs.ship_bytes);
		APPEND("ship_failures %" PRIu64 "\n", vs.ship_failures);
		APPEND("images %" PRIu64 "\n", vs.images);
		APPEND("image_lsn %" PRIu64 "\n", vs.image_lsn);
		APPEND("lease_epoch %" PRIu64 "\n", vs.lease_epoch);
		APPEND("fenced %d\n", vs.fenced);
	}
#undef APPEND
	if (n >= cap) {
		free(b);
		return cairn_errf(CAIRN_E_INTERNAL, "statistics text over %zu bytes", cap);
	}
	*out = b;
	*len = n;
	return 0;
}
