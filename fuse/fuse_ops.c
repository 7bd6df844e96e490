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
 *   3. The kernel page cache of a file is kept across opens (KEEP_CACHE):
 *      the daemon owns the volume, so every change of a file's bytes goes
 *      through this mount's kernel inode (write, truncate, O_TRUNC, punch
 *      hole), which updates or drops its cached pages itself; the cache is
 *      therefore never stale.  Invalidating at open would be worse than
 *      useless: a page dropped while another handle's WRITE is in flight
 *      is re-read from the daemon without that write's bytes and then
 *      served stale (seen by fuse_stress's append/reader case).
 *   4. Locks (flock, POSIX) are not implemented here on purpose: the kernel
 *      then keeps them itself, which is correct for every process using
 *      this mount (the only way into the volume while it is mounted).
 *
 * Node ids are inode numbers (fuse_priv.h invariant 1); the hidden control
 * file CFS_CTL_INO exists only in lookup/getattr/open/read/fsync/release.
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

static void ctl_stat(struct stat *st)
{
	memset(st, 0, sizeof *st);
	st->st_ino = CFS_CTL_INO;
	st->st_mode = S_IFREG | 0444;
	st->st_nlink = 1;
	st->st_blksize = 4096;
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
	if (fuse_reply_entry(req, &e))
		CAIRN_DEBUG(FUSE_MOD, "reply_entry: the request was interrupted");
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
		memset(&e, 0, sizeof e);
		e.ino = CFS_CTL_INO;
		e.generation = 1;
		ctl_stat(&e.attr);
		fuse_reply_entry(req, &e);
		return;
	}
	rc = volume_lookup(fs->vol, parent, name, &a);
	if (rc == CAIRN_E_NOTFOUND) {
		/* A negative entry: every change comes through this mount, so
		 * the kernel drops it itself when the name is created. */
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

static void cfs_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	(void)ino;
	(void)nlookup;
	st_add(req_fs(req), CFS_ST_FORGET, 1);
	fuse_reply_none(req);
}

static void cfs_forget_multi(fuse_req_t req, size_t count,
			     struct fuse_forget_data *forgets)
{
	(void)forgets;
	st_add(req_fs(req), CFS_ST_FORGET, count);
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
		ctl_stat(&st);
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
	reply_rc(req, volume_unlink(req_fs(req)->vol, parent, name), "unlink");
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
	reply_rc(req, volume_rename(req_fs(req)->vol, parent, name, newparent,
				    newname, f), "rename");
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

static void handle_add(cfs *fs, cfh *h)
{
	pthread_mutex_lock(&fs->mu);
	h->prev = NULL;
	h->next = fs->handles;
	if (fs->handles)
		fs->handles->prev = h;
	fs->handles = h;
	fs->nhandles++;
	pthread_mutex_unlock(&fs->mu);
}

static void handle_del(cfs *fs, cfh *h)
{
	pthread_mutex_lock(&fs->mu);
	if (h->prev)
		h->prev->next = h->next;
	else
		fs->handles = h->next;
	if (h->next)
		h->next->prev = h->prev;
	fs->nhandles--;
	pthread_mutex_unlock(&fs->mu);
}

static int ctl_open(cfs *fs, struct fuse_file_info *fi)
{
	cfh *h = calloc(1, sizeof *h);
	int rc;
	if (!h)
		return cairn_errf(CAIRN_E_NOMEM, "control file handle");
	if ((rc = cfs_stats_text(fs, &h->text, &h->len))) {
		free(h);
		return rc;
	}
	handle_add(fs, h);
	fi->fh = (uintptr_t)h;
	fi->direct_io = 1;   /* the size is 0: the kernel must ask us */
	return 0;
}

/* Open ino for fi; a is its current attributes. */
static int file_open(cfs *fs, uint64_t ino, struct fuse_file_info *fi)
{
	cfh *h = calloc(1, sizeof *h);
	int rc;
	if (!h)
		return cairn_errf(CAIRN_E_NOMEM, "file handle");
	if ((rc = volume_file_open(fs->vol, ino, &h->f))) {
		free(h);
		return rc;
	}
	handle_add(fs, h);
	fi->fh = (uintptr_t)h;
	if (fs->follower) {
		/* A follower's files change under it (the writer is another
		 * host): keep the kernel's pages only for an inode whose
		 * size and times are what they were when they were cached. */
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
		if (fi->keep_cache)
			st_add(fs, CFS_ST_KEEP_CACHE, 1);
		return 0;
	}
	/* Guarantee 3: the kernel's cache is the file's content. */
	fi->keep_cache = 1;
	st_add(fs, CFS_ST_KEEP_CACHE, 1);
	return 0;
}

static void cfs_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	cfs *fs = req_fs(req);
	int rc;

	st_add(fs, CFS_ST_OPEN, 1);
	if (ino == CFS_CTL_INO) {
		if ((fi->flags & O_ACCMODE) != O_RDONLY)
			rc = cairn_errf(CAIRN_E_PERM, "the control file is read-only");
		else
			rc = ctl_open(fs, fi);
	} else {
		/* atomic_o_trunc: the truncation is ours (the kernel checked
		 * write permission).  No getattr first: an open is on the hot
		 * path of small-file reads, and volume_file_open checks the
		 * type itself. */
		rc = 0;
		if (fi->flags & O_TRUNC) {
			cairn_sattr sa = { .mask = CAIRN_SET_SIZE, .size = 0 };
			rc = volume_setattr(fs->vol, ino, &sa, NULL);
		}
		if (!rc)
			rc = file_open(fs, ino, fi);
	}
	if (rc) {
		reply_rc(req, rc, "open");
		return;
	}
	if (fuse_reply_open(req, fi)) {
		/* Interrupted: the kernel will never release it. */
		cfh *h = (cfh *)(uintptr_t)fi->fh;
		handle_del(fs, h);
		if (volume_file_close(h->f))
			CAIRN_WARN(FUSE_MOD, "close after interrupted open: %s", cairn_errmsg());
		free(h->text);
		free(h);
	}
}

static void cfs_create(fuse_req_t req, fuse_ino_t parent, const char *name,
		       mode_t mode, struct fuse_file_info *fi)
{
	cfs *fs = req_fs(req);
	uint32_t m = S_IFREG | (mode & 07777), uid, gid;
	struct fuse_entry_param e;
	cairn_attr a;
	int rc;

	st_add(fs, CFS_ST_CREATE, 1);
	if (!(rc = new_owner(req, parent, &m, &uid, &gid)))
		rc = volume_create(fs->vol, parent, name, m & 07777, uid, gid, &a);
	if (rc == CAIRN_E_EXISTS && !(fi->flags & O_EXCL)) {
		/* Another creator won the race: open what it made. */
		rc = volume_lookup(fs->vol, parent, name, &a);
		if (!rc && S_ISDIR(a.mode))
			rc = cairn_errf(CAIRN_E_ISDIR, "create of '%s': a directory", name);
		if (!rc && (fi->flags & O_TRUNC) && a.size) {
			cairn_sattr sa = { .mask = CAIRN_SET_SIZE, .size = 0 };
			rc = volume_setattr(fs->vol, a.ino, &sa, &a);
		}
	}
	if (!rc)
		rc = file_open(fs, a.ino, fi);
	if (rc) {
		reply_rc(req, rc, "create");
		return;
	}
	memset(&e, 0, sizeof e);
	e.ino = a.ino;
	e.generation = 1;
	stat_from(&a, &e.attr);
	e.attr_timeout = fs->attr_to;
	e.entry_timeout = fs->entry_to;
	if (fuse_reply_create(req, &e, fi)) {
		cfh *h = (cfh *)(uintptr_t)fi->fh;
		handle_del(fs, h);
		if (volume_file_close(h->f))
			CAIRN_WARN(FUSE_MOD, "close after interrupted create: %s", cairn_errmsg());
		free(h);
	}
}

static void cfs_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		     struct fuse_file_info *fi)
{
	cfs *fs = req_fs(req);
	cfh *h = (cfh *)(uintptr_t)fi->fh;
	size_t got = 0;
	uint8_t *buf;
	int rc;

	(void)ino;
	st_add(fs, CFS_ST_READ, 1);
	if (off < 0) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	if (!h->f) {
		/* Reply from a copy: the reader may close (RELEASE frees
		 * h->text) as soon as the kernel has taken our reply, which
		 * can be before our writev returns. */
		size_t o = (uint64_t)off < h->len ? (size_t)off : h->len;
		size_t n = h->len - o < size ? h->len - o : size;
		char *copy = malloc(n ? n : 1);
		if (!copy) {
			fuse_reply_err(req, ENOMEM);
			return;
		}
		memcpy(copy, h->text + o, n);
		fuse_reply_buf(req, copy, n);
		free(copy);
		return;
	}
	if (size > CFS_IO_MAX)
		size = CFS_IO_MAX;
	buf = malloc(size ? size : 1);
	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	rc = volume_file_read(h->f, buf, size, (uint64_t)off, &got);
	if (rc)
		reply_rc(req, rc, "read");
	else {
		st_add(fs, CFS_ST_BYTES_READ, got);
		fuse_reply_buf(req, (const char *)buf, got);
	}
	free(buf);
}

static void cfs_write(fuse_req_t req, fuse_ino_t ino, const char *buf,
		      size_t size, off_t off, struct fuse_file_info *fi)
{
	cfs *fs = req_fs(req);
	cfh *h = (cfh *)(uintptr_t)fi->fh;
	int rc;

	(void)ino;
	st_add(fs, CFS_ST_WRITE, 1);
	if (!h->f) {
		fuse_reply_err(req, EBADF);
		return;
	}
	if (off < 0) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	/* The kernel computed the offset (O_APPEND included) under its inode
	 * lock from an i_size that every write through this mount updates;
	 * writing elsewhere would desynchronize its page cache. */
	rc = volume_file_write(h->f, buf, size, (uint64_t)off);
	if (rc) {
		reply_rc(req, rc, "write");
		return;
	}
	st_add(fs, CFS_ST_BYTES_WRITTEN, size);
	fuse_reply_write(req, size);
}

static void cfs_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	cfs *fs = req_fs(req);
	cfh *h = (cfh *)(uintptr_t)fi->fh;
	(void)ino;
	handle_del(fs, h);
	if (h->f && volume_file_close(h->f))
		CAIRN_WARN(FUSE_MOD, "close of inode %" PRIu64 ": %s", (uint64_t)ino,
			   cairn_errmsg());
	free(h->text);
	free(h);
	fuse_reply_err(req, 0);
}

static void cfs_fsync(fuse_req_t req, fuse_ino_t ino, int datasync,
		      struct fuse_file_info *fi)
{
	cfs *fs = req_fs(req);
	cfh *h = (cfh *)(uintptr_t)fi->fh;
	(void)ino;
	(void)datasync;
	st_add(fs, CFS_ST_FSYNC, 1);
	reply_rc(req, h->f ? volume_file_fsync(h->f) : volume_sync(fs->vol), "fsync");
}

static void cfs_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t off,
			  off_t len, struct fuse_file_info *fi)
{
	cfs *fs = req_fs(req);
	cfh *h = (cfh *)(uintptr_t)fi->fh;
	cairn_attr a;
	int rc;

	st_add(fs, CFS_ST_OTHER, 1);
	if (!h->f) {
		fuse_reply_err(req, EBADF);
		return;
	}
	if (off < 0 || len <= 0) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	if ((rc = volume_getattr(fs->vol, ino, &a))) {
		reply_rc(req, rc, "fallocate");
		return;
	}
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
	} else if (mode == (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE)) {
		/* Zeros written over the range: reads are those of a hole. */
		static const uint8_t zeros[65536];
		uint64_t pos = (uint64_t)off, stop = end < a.size ? end : a.size;
		while (!rc && pos < stop) {
			uint64_t n = stop - pos < sizeof zeros ? stop - pos : sizeof zeros;
			rc = volume_file_write(h->f, zeros, n, pos);
			pos += n;
		}
	} else {
		fuse_reply_err(req, EOPNOTSUPP);
		return;
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
	cfh *hi = (cfh *)(uintptr_t)fi_in->fh, *ho = (cfh *)(uintptr_t)fi_out->fh;
	uint64_t done = 0;
	int rc;

	(void)ino_in;
	(void)ino_out;
	st_add(fs, CFS_ST_OTHER, 1);
	if (flags) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	if (!hi->f || !ho->f) {
		fuse_reply_err(req, EBADF);
		return;
	}
	if (off_in < 0 || off_out < 0) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	rc = volume_copy_range(fs->vol, hi->f, (uint64_t)off_in, ho->f, (uint64_t)off_out,
			       (uint64_t)len, &done);
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
	cfh *h = (cfh *)(uintptr_t)fi->fh;
	uint64_t at = 0;
	int rc;

	(void)ino;
	st_add(fs, CFS_ST_OTHER, 1);
	if (off < 0 || (whence != SEEK_DATA && whence != SEEK_HOLE)) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	if (!h->f) {
		/* The control file: all data, no hole.  Never ENOSYS, which
		 * would turn lseek off for the whole mount. */
		if ((uint64_t)off >= h->len)
			fuse_reply_err(req, ENXIO);
		else
			fuse_reply_lseek(req, whence == SEEK_DATA ? off : (off_t)h->len);
		return;
	}
	rc = volume_seek_data(h->f, (uint64_t)off, whence, &at);
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
		reply_rc(req, rc, "readdir");
		return;
	}
reply:
	fuse_reply_buf(req, r.buf, r.pos);
	free(r.buf);
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
	(void)userdata;
	conn->max_write = CFS_IO_MAX;
	conn->max_readahead = CFS_IO_MAX;
	conn->max_background = 64;
	conn->congestion_threshold = 48;
	conn->time_gran = 1;
	unsigned want = FUSE_CAP_ASYNC_READ | FUSE_CAP_READDIRPLUS |
			FUSE_CAP_READDIRPLUS_AUTO | FUSE_CAP_PARALLEL_DIROPS |
			FUSE_CAP_CACHE_SYMLINKS | FUSE_CAP_ATOMIC_O_TRUNC;
	conn->want |= want & conn->capable;
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
	if (fs->follower && !(fs->kc = calloc(CFS_KC_SLOTS, sizeof *fs->kc))) {
		pthread_mutex_destroy(&fs->mu);
		return cairn_errf(CAIRN_E_NOMEM, "follower cache table");
	}
	return 0;
}

int cfs_close_all(cfs *fs)
{
	int rc = 0;
	pthread_mutex_lock(&fs->mu);
	cfh *h = fs->handles;
	fs->handles = NULL;
	fs->nhandles = 0;
	pthread_mutex_unlock(&fs->mu);
	while (h) {
		cfh *next = h->next;
		int r = h->f ? volume_file_close(h->f) : 0;
		if (r && !rc)
			rc = r;
		free(h->text);
		free(h);
		h = next;
	}
	return rc;
}

void cfs_destroy(cfs *fs)
{
	free(fs->kc);
	fs->kc = NULL;
	pthread_mutex_destroy(&fs->mu);
}

int cfs_stats_text(cfs *fs, char **out, size_t *len)
{
	static const char *names[CFS_ST__COUNT] = {
		"ops_lookup", "ops_getattr", "ops_setattr", "ops_create",
		"ops_remove", "ops_rename", "ops_open", "ops_read", "ops_write",
		"ops_fsync", "ops_readdir", "ops_xattr", "ops_other",
		"bytes_read", "bytes_written", "errors", "keep_cache_opens",
		"inodes_forgotten",
	};
	cairn_volume_stats vs;
	size_t cap = 8192, n = 0;
	char *b = malloc(cap);
	size_t nh;

	if (!b)
		return cairn_errf(CAIRN_E_NOMEM, "statistics text");
	volume_stats(fs->vol, &vs);
	pthread_mutex_lock(&fs->mu);
	nh = fs->nhandles;
	pthread_mutex_unlock(&fs->mu);
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
