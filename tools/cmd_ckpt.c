/*
 * cmd_ckpt.c - `cairn ckpt save` and `cairn ckpt restore` (docs/checkpoints.md).
 *
 * A checkpoint NAME is the read-only snapshot "ckpt:NAME" of a directory
 * tree.  It is published by one metadata transaction (the snapshot) only
 * after every byte of the tree is in the object store, so a reader (or a
 * process killed at any moment) sees it whole or not at all.
 *
 * save SRC NAME, SRC a local directory: the tree is copied into a hidden
 * staging directory of the live tree, /.cairn/staging/<NAME>.<pid>.<rand>,
 * by several threads (large files take the volume's stream path by
 * themselves, small ones are packed), then volume_sync_durable(REMOTE),
 * then the snapshot of the staging directory, then the staging tree is
 * removed.  Staging directories of dead saves (another pid: a volume has
 * one owner process; or this pid but no running save) are removed at the
 * start of every save.  In the mount daemon, a SRC under the mount point is
 * already in the volume: it is cloned (one transaction, no data copied,
 * so later writes do not leak in), the clone made durable and snapshotted.
 *
 * restore NAME DEST: the snapshot tree is walked and written under DEST
 * through directory file descriptors only (openat/mkdirat/symlinkat with
 * O_NOFOLLOW|O_EXCL, names checked), by several threads; holes are kept
 * (volume_seek_data), modes, times and symlinks preserved, directories'
 * modes and times set once their contents are complete.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cairn/uring.h"
#include "cmd_ckpt.h"

#define CKPT_STAGING_DIR ".cairn"
#define CKPT_STAGING_SUB "staging"
#define CKPT_NAME_MAX 200
#define CKPT_DEFAULT_THREADS 4
#define CKPT_MAX_THREADS 64
#define CKPT_BUF (16u << 20)   /* per-thread copy buffer */
#define RS_ALIGN 4096u         /* O_DIRECT alignment of restore writes */

const char cmd_ckpt_save_usage[] =
	"usage: cairn ckpt save [--threads N] SRC_DIR NAME\n"
	"\n"
	"Save the directory tree SRC_DIR as checkpoint NAME (the read-only\n"
	"snapshot \"ckpt:NAME\").  The checkpoint is published in one metadata\n"
	"transaction once all its data is in the object store: it exists whole\n"
	"or not at all, also if the process is killed.  Large files stream as\n"
	"parallel multipart uploads, small files are packed, chunks already\n"
	"stored are referenced instead of uploaded.  When the volume is mounted\n"
	"and SRC_DIR is inside the mount, nothing is copied: the tree is cloned,\n"
	"made durable and published.\n"
	"\n"
	"  -j, --threads N   files copied in parallel (default 4)\n"
	"\n"
	"NAME: 1-200 bytes of A-Z a-z 0-9 . _ + = @ -, not starting with '.'.\n"
	"Exit status: 0 saved, 1 failed, 2 usage, 4 the checkpoint exists.\n";

const char cmd_ckpt_restore_usage[] =
	"usage: cairn ckpt restore [--force] [--threads N] [--cold] NAME DEST_DIR\n"
	"\n"
	"Write checkpoint NAME into DEST_DIR (created if missing): files\n"
	"byte for byte (checksums verified on every read), holes, modes,\n"
	"times and symlinks; ownership too when run as root.  Nothing is ever\n"
	"written outside DEST_DIR, and symlinks found in DEST_DIR are never\n"
	"followed.  Device nodes are not recreated (a line names each one).\n"
	"The data is synced to disk before the command returns.\n"
	"\n"
	"  -f, --force       restore into a non-empty DEST_DIR: existing\n"
	"                    entries named like stored ones are replaced\n"
	"                    (a directory stays and is merged)\n"
	"  -j, --threads N   files written in parallel (default 4)\n"
	"  --cold            drop the volume's local copies and cache first,\n"
	"                    so that every byte comes from the object store\n"
	"                    (benchmarks, store checks)\n"
	"\n"
	"Exit status: 0 restored, 1 failed, 2 usage, 3 no such checkpoint,\n"
	"4 DEST_DIR is not empty (without --force).\n";

int ckpt_name_check(cli_ctx *c, const char *name)
{
	size_t n = strlen(name);

	if (n == 0 || n > CKPT_NAME_MAX)
		return cli_usage(c, "checkpoint name must be 1-%d bytes, not %zu",
				 CKPT_NAME_MAX, n);
	if (name[0] == '.')
		return cli_usage(c, "checkpoint name '%s' starts with '.'", name);
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)name[i];
		if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		    (ch >= '0' && ch <= '9') || strchr("._+=@-", ch))
			continue;
		return cli_usage(c, "checkpoint name '%s' has a character "
				 "outside A-Z a-z 0-9 . _ + = @ -", name);
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* shared helpers                                                      */

static int64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int64_t ts_ns(struct timespec ts)
{
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static struct timespec ns_ts(int64_t ns)
{
	struct timespec ts;
	ts.tv_sec = (time_t)(ns / 1000000000LL);
	ts.tv_nsec = (long)(ns % 1000000000LL);
	if (ts.tv_nsec < 0) {
		ts.tv_nsec += 1000000000L;
		ts.tv_sec--;
	}
	return ts;
}

/* The first failure of a multi-threaded operation: what failed and why
 * (the worker's thread-local cairn_errmsg), reported by the main thread. */
typedef struct ck_err {
	pthread_mutex_t mu;
	atomic_int failed;
	int rc;
	char what[PATH_MAX + 64];
	char msg[1024];
} ck_err;

static void ck_err_init(ck_err *e)
{
	memset(e, 0, sizeof *e);
	pthread_mutex_init(&e->mu, NULL);
}

/* Record rc (the thread's cairn_errmsg is the why); returns rc. */
static int ck_fail(ck_err *e, int rc, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int ck_fail(ck_err *e, int rc, const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&e->mu);
	if (!e->rc) {
		e->rc = rc;
		va_start(ap, fmt);
		vsnprintf(e->what, sizeof e->what, fmt, ap);
		va_end(ap);
		cairn_err_copy(e->msg, sizeof e->msg);
		if (!e->msg[0])
			snprintf(e->msg, sizeof e->msg, "%s", cairn_strerror(rc));
		atomic_store(&e->failed, 1);
	}
	pthread_mutex_unlock(&e->mu);
	return rc;
}

/* Report the recorded failure on c->err; returns the exit status. */
static int ck_report(cli_ctx *c, ck_err *e)
{
	cairn_err_set(e->rc, e->msg);
	return cli_fail(c, e->rc, NULL, "%s", e->what);
}

/* After the publishing snapshot: its record (and every earlier one) in the
 * store (docs/log-shipping.md).  A volume opened without shipping has
 * nothing to wait for.  CAIRN_E_FENCED: another writer took the volume. */
static int ckpt_ship(cairn_volume *vol)
{
	int rc = volume_ship_flush(vol);
	if (rc == CAIRN_E_UNSUPPORTED) {
		cairn_err_clear();
		return 0;
	}
	return rc;
}

/* What a failed data upload or log shipment of a checkpoint prints: one
 * line; a fenced writer's says that the checkpoint is not published. */
static const char *ckpt_what(int rc)
{
	return rc == CAIRN_E_FENCED ? "not published (this writer is fenced)" : "data upload";
}

static int errno_rc(const char *fmt, const char *arg)
{
	int err = errno;
	return cairn_errf(cairn_rc_from_errno(err), fmt, arg, strerror(err));
}

static int parse_threads(cli_ctx *c, const char *s, int *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < 1 || v > CKPT_MAX_THREADS)
		return cli_usage(c, "--threads takes 1..%d, not '%s'",
				 CKPT_MAX_THREADS, s);
	*out = (int)v;
	return 0;
}

/* The entries of volume directory dir, listed first (no volume call runs
 * inside the readdir callback, which holds a read transaction). */
typedef struct vent {
	char *name;
	uint64_t ino;
} vent;

typedef struct vlist {
	vent *v;
	size_t n, cap;
	int rc;
} vlist;

static int vlist_cb(const char *name, size_t namelen, uint64_t ino,
		    uint32_t type, uint64_t cookie, void *arg)
{
	vlist *l = arg;
	(void)type;
	(void)cookie;
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 64;
		vent *nv = realloc(l->v, cap * sizeof *nv);
		if (!nv) {
			l->rc = cairn_errf(CAIRN_E_NOMEM, "directory listing");
			return 1;
		}
		l->v = nv;
		l->cap = cap;
	}
	l->v[l->n].name = strndup(name, namelen);
	if (!l->v[l->n].name) {
		l->rc = cairn_errf(CAIRN_E_NOMEM, "directory listing");
		return 1;
	}
	/* A name with an embedded NUL is kept as such: the restore's name
	 * check sees that strlen differs and refuses it. */
	if (strlen(l->v[l->n].name) != namelen)
		l->v[l->n].name[0] = '\0';
	l->v[l->n].ino = ino;
	l->n++;
	return 0;
}

static void vlist_free(vlist *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i].name);
	free(l->v);
	memset(l, 0, sizeof *l);
}

static int vlist_read(cairn_volume *vol, uint64_t dir, vlist *l)
{
	int rc;
	memset(l, 0, sizeof *l);
	rc = volume_readdir(vol, dir, 0, vlist_cb, l);
	if (!rc)
		rc = l->rc;
	if (rc)
		vlist_free(l);
	return rc;
}

/* Remove parent/name and, for a directory, everything under it. */
static int vol_rm_tree(cairn_volume *vol, uint64_t parent, const char *name)
{
	cairn_attr a;
	vlist l;
	int rc = volume_lookup(vol, parent, name, &a);

	if (rc)
		return rc == CAIRN_E_NOTFOUND ? 0 : rc;
	if (!S_ISDIR(a.mode))
		return volume_unlink(vol, parent, name);
	if ((rc = vlist_read(vol, a.ino, &l)))
		return rc;
	for (size_t i = 0; i < l.n && !rc; i++)
		rc = vol_rm_tree(vol, a.ino, l.v[i].name);
	vlist_free(&l);
	if (!rc)
		rc = volume_rmdir(vol, parent, name);
	return rc;
}

/* What a volume tree holds (files, bytes), by walking it. */
typedef struct tree_count {
	uint64_t files, dirs, symlinks, other, bytes;
} tree_count;

static int vol_count_tree(cairn_volume *vol, uint64_t dir, tree_count *tc)
{
	vlist l;
	int rc = vlist_read(vol, dir, &l);

	for (size_t i = 0; i < l.n && !rc; i++) {
		cairn_attr a;
		if ((rc = volume_getattr(vol, l.v[i].ino, &a)))
			break;
		if (S_ISDIR(a.mode)) {
			tc->dirs++;
			rc = vol_count_tree(vol, a.ino, tc);
		} else if (S_ISREG(a.mode)) {
			tc->files++;
			tc->bytes += a.size;
		} else if (S_ISLNK(a.mode)) {
			tc->symlinks++;
		} else {
			tc->other++;
		}
	}
	vlist_free(&l);
	return rc;
}

/* ------------------------------------------------------------------ */
/* staging directories                                                 */

/* Staging names of the saves running in this process (the mount daemon
 * runs several commands at once). */
static pthread_mutex_t g_staging_mu = PTHREAD_MUTEX_INITIALIZER;
typedef struct staging_reg {
	struct staging_reg *next;
	char name[CLI_NAME_BUF];
} staging_reg;
static staging_reg *g_staging;

static staging_reg *staging_register(const char *name)
{
	staging_reg *r = calloc(1, sizeof *r);
	if (!r)
		return NULL;
	snprintf(r->name, sizeof r->name, "%s", name);
	pthread_mutex_lock(&g_staging_mu);
	r->next = g_staging;
	g_staging = r;
	pthread_mutex_unlock(&g_staging_mu);
	return r;
}

static void staging_unregister(staging_reg *r)
{
	if (!r)
		return;
	pthread_mutex_lock(&g_staging_mu);
	for (staging_reg **p = &g_staging; *p; p = &(*p)->next) {
		if (*p == r) {
			*p = r->next;
			break;
		}
	}
	pthread_mutex_unlock(&g_staging_mu);
	free(r);
}

static int staging_active(const char *name)
{
	int found = 0;
	pthread_mutex_lock(&g_staging_mu);
	for (staging_reg *r = g_staging; r && !found; r = r->next)
		found = strcmp(r->name, name) == 0;
	pthread_mutex_unlock(&g_staging_mu);
	return found;
}

/* "<NAME>.<pid>.<16 hex>": the pid, or -1 if name is not a staging name. */
static long staging_pid(const char *name)
{
	const char *r = strrchr(name, '.'), *p;
	char *end;
	long pid;

	if (!r || r == name || strlen(r + 1) != 16 ||
	    strspn(r + 1, "0123456789abcdef") != 16)
		return -1;
	for (p = r - 1; p > name && *p != '.'; p--)
		;
	if (p == name || p + 1 == r)
		return -1;
	errno = 0;
	pid = strtol(p + 1, &end, 10);
	if (errno || end != r || pid <= 0)
		return -1;
	return pid;
}

/* mkdir -p /.cairn/staging; *out gets its inode. */
static int staging_parent(cairn_volume *vol, uint64_t *out)
{
	const char *parts[2] = { CKPT_STAGING_DIR, CKPT_STAGING_SUB };
	uint64_t dir = CAIRN_ROOT_INO;

	for (int i = 0; i < 2; i++) {
		cairn_attr a;
		int rc = volume_lookup(vol, dir, parts[i], &a);
		if (rc == CAIRN_E_NOTFOUND) {
			rc = volume_mkdir(vol, dir, parts[i], 0700, geteuid(),
					  getegid(), &a);
			if (rc == CAIRN_E_EXISTS)
				rc = volume_lookup(vol, dir, parts[i], &a);
		}
		if (rc)
			return cairn_err_wrap(rc, "staging directory /%s%s%s",
					      CKPT_STAGING_DIR, i ? "/" : "",
					      i ? CKPT_STAGING_SUB : "");
		if (!S_ISDIR(a.mode))
			return cairn_errf(CAIRN_E_NOTDIR, "/%s%s%s is not a directory",
					  CKPT_STAGING_DIR, i ? "/" : "",
					  i ? CKPT_STAGING_SUB : "");
		dir = a.ino;
	}
	*out = dir;
	return 0;
}

/* Remove the staging trees no running save owns; *removed counts them. */
static int staging_cleanup(cairn_volume *vol, uint64_t sdir, uint64_t *removed)
{
	vlist l;
	int rc = vlist_read(vol, sdir, &l);
	long self = (long)getpid();

	for (size_t i = 0; i < l.n && !rc; i++) {
		long pid = staging_pid(l.v[i].name);
		if (pid < 0)
			continue;  /* not ours: leave it alone */
		/* One process owns a volume: another pid is dead (or gone
		 * from this volume); this pid without a running save left
		 * it after a failure. */
		if (pid == self && staging_active(l.v[i].name))
			continue;
		rc = vol_rm_tree(vol, sdir, l.v[i].name);
		if (rc)
			rc = cairn_err_wrap(rc, "remove stale staging directory "
					    "/%s/%s/%s", CKPT_STAGING_DIR,
					    CKPT_STAGING_SUB, l.v[i].name);
		else
			(*removed)++;
	}
	vlist_free(&l);
	return rc;
}

/* ------------------------------------------------------------------ */
/* save                                                                */

typedef struct sv_item {
	char *src;        /* local path */
	char *rel;        /* path inside the checkpoint, for messages */
	uint64_t parent;  /* volume directory */
	uint64_t ino;     /* set once created */
	struct stat st;
} sv_item;

typedef struct sv_list {
	sv_item *v;
	size_t n, cap;
} sv_list;

typedef struct save_state {
	cli_ctx *c;
	cairn_volume *vol;
	sv_list files;    /* regular files: copied by the workers */
	sv_list attrs;    /* dirs, symlinks, specials: attributes set last */
	atomic_size_t next;
	atomic_uint_fast64_t bytes_done;
	uint64_t total_bytes, nfiles, ndirs, nsymlinks, nother;
	cli_progress *prog;
	ck_err err;
} save_state;

static int sv_push(sv_list *l, const char *src, const char *rel,
		   uint64_t parent, const struct stat *st, sv_item **out)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 256;
		sv_item *nv = realloc(l->v, cap * sizeof *nv);
		if (!nv)
			return cairn_errf(CAIRN_E_NOMEM, "file list");
		l->v = nv;
		l->cap = cap;
	}
	sv_item *it = &l->v[l->n];
	memset(it, 0, sizeof *it);
	it->src = strdup(src);
	it->rel = strdup(rel);
	if (!it->src || !it->rel) {
		free(it->src);
		free(it->rel);
		return cairn_errf(CAIRN_E_NOMEM, "file list");
	}
	it->parent = parent;
	it->st = *st;
	l->n++;
	if (out)
		*out = it;
	return 0;
}

static void sv_list_free(sv_list *l)
{
	for (size_t i = 0; i < l->n; i++) {
		free(l->v[i].src);
		free(l->v[i].rel);
	}
	free(l->v);
}

/* Walk the local directory path (rel inside the checkpoint) into volume
 * directory vdir: directories, symlinks and special files are created
 * now, regular files listed for the workers. */
static int save_scan(save_state *s, const char *path, const char *rel,
		     uint64_t vdir)
{
	DIR *d = opendir(path);
	struct dirent *de;
	int rc = 0;

	if (!d)
		return ck_fail(&s->err, errno_rc("open directory %s: %s", path),
			       "read %s", path);
	while (!rc) {
		char cp[PATH_MAX], cr[PATH_MAX];
		struct stat st;
		cairn_attr a;
		sv_item *it;

		if (cli_cancelled(s->c)) {
			rc = ck_fail(&s->err, cairn_errf(CAIRN_E_CANCELED, "canceled"),
				     "save");
			break;
		}
		errno = 0;
		de = readdir(d);
		if (!de) {
			if (errno)
				rc = ck_fail(&s->err, errno_rc("readdir %s: %s", path),
					     "read %s", path);
			break;
		}
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if ((size_t)snprintf(cp, sizeof cp, "%s/%s", path, de->d_name) >= sizeof cp ||
		    (size_t)snprintf(cr, sizeof cr, "%s%s%s", rel, *rel ? "/" : "",
				     de->d_name) >= sizeof cr) {
			rc = ck_fail(&s->err, cairn_errf(CAIRN_E_NAMETOOLONG,
							 "path too long"), "%s/%s",
				     path, de->d_name);
			break;
		}
		if (lstat(cp, &st) != 0) {
			if (errno == ENOENT)
				continue;  /* removed while we scan */
			rc = ck_fail(&s->err, errno_rc("stat %s: %s", cp), "read %s", cp);
			break;
		}
		if (S_ISREG(st.st_mode)) {
			rc = sv_push(&s->files, cp, cr, vdir, &st, NULL);
			if (rc)
				ck_fail(&s->err, rc, "scan %s", cp);
			s->total_bytes += (uint64_t)st.st_size;
			s->nfiles++;
			continue;
		}
		if (S_ISDIR(st.st_mode)) {
			rc = volume_mkdir(s->vol, vdir, de->d_name, 0700, st.st_uid,
					  st.st_gid, &a);
			if (rc) {
				ck_fail(&s->err, rc, "create directory %s", cr);
				break;
			}
			s->ndirs++;
			if ((rc = sv_push(&s->attrs, cp, cr, vdir, &st, &it))) {
				ck_fail(&s->err, rc, "scan %s", cp);
				break;
			}
			it->ino = a.ino;
			rc = save_scan(s, cp, cr, a.ino);
			continue;
		}
		if (S_ISLNK(st.st_mode)) {
			char target[PATH_MAX + 1];
			ssize_t n = readlink(cp, target, sizeof target);
			if (n < 0 || (size_t)n >= sizeof target) {
				rc = ck_fail(&s->err, n < 0 ? errno_rc("readlink %s: %s", cp) :
					     cairn_errf(CAIRN_E_NAMETOOLONG, "target too long"),
					     "read symlink %s", cp);
				break;
			}
			target[n] = '\0';
			rc = volume_symlink(s->vol, vdir, de->d_name, target,
					    st.st_uid, st.st_gid, &a);
			if (rc) {
				ck_fail(&s->err, rc, "create symlink %s", cr);
				break;
			}
			s->nsymlinks++;
		} else {
			rc = volume_mknod(s->vol, vdir, de->d_name, st.st_mode,
					  st.st_rdev, st.st_uid, st.st_gid, &a);
			if (rc) {
				ck_fail(&s->err, rc, "create special file %s", cr);
				break;
			}
			s->nother++;
		}
		if ((rc = sv_push(&s->attrs, cp, cr, vdir, &st, &it))) {
			ck_fail(&s->err, rc, "scan %s", cp);
			break;
		}
		it->ino = a.ino;
	}
	closedir(d);
	return rc;
}

static int name_of(const char *path, const char **name)
{
	const char *p = strrchr(path, '/');
	*name = p ? p + 1 : path;
	return 0;
}

/* Copy one regular file: only its data ranges (SEEK_DATA/SEEK_HOLE), in
 * large sequential writes (a file written in order from 0 becomes a
 * stream), then its size. */
static int save_file(save_state *s, sv_item *it, char *buf)
{
	const char *name;
	cairn_file *f = NULL;
	cairn_attr a;
	struct stat st;
	uint64_t off = 0, end = 0, size;
	int fd, rc;

	name_of(it->src, &name);
	/* O_NONBLOCK: a fifo swapped in since the walk must not block */
	fd = open(it->src, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return ck_fail(&s->err, errno_rc("open %s: %s", it->src), "read %s", it->src);
	if (fstat(fd, &st) != 0) {
		rc = ck_fail(&s->err, errno_rc("stat %s: %s", it->src), "read %s", it->src);
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		rc = ck_fail(&s->err, cairn_errf(CAIRN_E_INVAL, "%s is no longer a regular file",
						 it->src), "read %s", it->src);
		goto out;
	}
	/* reads of a regular file never block; io_uring would answer EAGAIN */
	if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) != 0) {
		rc = ck_fail(&s->err, errno_rc("fcntl %s: %s", it->src), "read %s", it->src);
		goto out;
	}
	size = (uint64_t)st.st_size;
	it->st.st_size = st.st_size;
	(void)posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	rc = volume_create(s->vol, it->parent, name, st.st_mode & 07777,
			   st.st_uid, st.st_gid, &a);
	if (rc) {
		ck_fail(&s->err, rc, "create %s", it->rel);
		goto out;
	}
	it->ino = a.ino;
	if ((rc = volume_file_open(s->vol, a.ino, &f))) {
		ck_fail(&s->err, rc, "open %s", it->rel);
		goto out;
	}
	while (off < size && !atomic_load(&s->err.failed)) {
		off_t data = lseek(fd, (off_t)off, SEEK_DATA), hole;
		if (data < 0 && errno == ENXIO)
			break;  /* only a hole to the end */
		if (data < 0) {
			data = (off_t)off;  /* no SEEK_DATA here: all data */
			hole = (off_t)size;
		} else {
			hole = lseek(fd, data, SEEK_HOLE);
			if (hole < 0 || (uint64_t)hole > size)
				hole = (off_t)size;
		}
		cli_progress_add(s->prog, (uint64_t)data - off);
		for (uint64_t pos = (uint64_t)data; pos < (uint64_t)hole;) {
			size_t want = (uint64_t)hole - pos < CKPT_BUF ?
				      (size_t)((uint64_t)hole - pos) : CKPT_BUF;
			size_t got = 0;
			while (got < want) {
				ssize_t n = pread(fd, buf + got, want - got,
						  (off_t)(pos + got));
				if (n < 0 && errno == EINTR)
					continue;
				if (n < 0) {
					rc = ck_fail(&s->err, errno_rc("read %s: %s", it->src),
						     "read %s", it->src);
					goto out;
				}
				if (n == 0)
					break;  /* shrank while we copy */
				got += (size_t)n;
			}
			if (got && (rc = volume_file_write(f, buf, got, pos))) {
				ck_fail(&s->err, rc, "write %s", it->rel);
				goto out;
			}
			cli_progress_add(s->prog, got);
			atomic_fetch_add(&s->bytes_done, got);
			pos += got;
			end = pos;
			if (got < want) {
				hole = (off_t)pos;
				size = pos;
				break;
			}
			if (cli_cancelled(s->c)) {
				rc = ck_fail(&s->err, cairn_errf(CAIRN_E_CANCELED, "canceled"),
					     "save");
				goto out;
			}
		}
		off = (uint64_t)hole;
	}
	if (!atomic_load(&s->err.failed) && end < size &&
	    (rc = volume_file_truncate(f, size))) {
		ck_fail(&s->err, rc, "set the size of %s", it->rel);
		goto out;
	}
	cli_progress_add(s->prog, size > off ? size - off : 0);
out:
	if (f) {
		int crc = volume_file_close(f);
		if (crc && !rc)
			rc = ck_fail(&s->err, crc, "write %s", it->rel);
	}
	close(fd);
	return rc;
}

static void *save_worker(void *arg)
{
	save_state *s = arg;
	char *buf = malloc(CKPT_BUF);

	if (!buf) {
		ck_fail(&s->err, cairn_errf(CAIRN_E_NOMEM, "copy buffer"), "save");
		return NULL;
	}
	for (;;) {
		size_t i = atomic_fetch_add(&s->next, 1);
		if (i >= s->files.n || atomic_load(&s->err.failed))
			break;
		if (cli_cancelled(s->c)) {
			ck_fail(&s->err, cairn_errf(CAIRN_E_CANCELED, "canceled"), "save");
			break;
		}
		if (save_file(s, &s->files.v[i], buf))
			break;
	}
	free(buf);
	return NULL;
}

/* Largest first: the big files start early, small ones fill the gaps. */
static int by_size_desc(const void *a, const void *b)
{
	const sv_item *x = a, *y = b;
	return (x->st.st_size < y->st.st_size) - (x->st.st_size > y->st.st_size);
}

static int set_attrs(cairn_volume *vol, uint64_t ino, const struct stat *st,
		     int with_mode)
{
	cairn_sattr sa = {
		.mask = CAIRN_SET_UID | CAIRN_SET_GID | CAIRN_SET_ATIME |
			CAIRN_SET_MTIME | (with_mode ? CAIRN_SET_MODE : 0),
		.mode = st->st_mode & 07777,
		.uid = st->st_uid,
		.gid = st->st_gid,
		.atime_ns = ts_ns(st->st_atim),
		.mtime_ns = ts_ns(st->st_mtim),
	};
	return volume_setattr(vol, ino, &sa, NULL);
}

typedef struct save_result {
	const char *mode;   /* "copy" or "in-volume" */
	char src[PATH_MAX];
	tree_count tc;
	uint64_t stored_before, stored_after, stale_removed;
	double seconds;
} save_result;

static void save_print(cli_ctx *c, const char *name, const save_result *r)
{
	uint64_t added = r->stored_after > r->stored_before ?
			 r->stored_after - r->stored_before : 0;
	double rate = r->seconds > 0 ? (double)r->tc.bytes / r->seconds : 0;
	char b1[32], b2[32], b3[32];

	if (c->json) {
		cli_json j;
		cli_json_init(&j, c->out);
		cli_json_obj_begin(&j);
		cli_json_kstr(&j, "checkpoint", name);
		cli_json_key(&j, "snapshot");
		{
			char sn[CAIRN_SNAP_NAME_MAX + 1];
			snprintf(sn, sizeof sn, "%s%s", CKPT_SNAP_PREFIX, name);
			cli_json_str(&j, sn);
		}
		cli_json_kstr(&j, "source", r->src);
		cli_json_kstr(&j, "mode", r->mode);
		cli_json_ku64(&j, "files", r->tc.files);
		cli_json_ku64(&j, "dirs", r->tc.dirs);
		cli_json_ku64(&j, "symlinks", r->tc.symlinks);
		cli_json_ku64(&j, "other", r->tc.other);
		cli_json_ku64(&j, "bytes", r->tc.bytes);
		cli_json_ku64(&j, "stored_bytes_added", added);
		cli_json_ku64(&j, "stale_staging_removed", r->stale_removed);
		cli_json_kf64(&j, "seconds", r->seconds);
		cli_json_kf64(&j, "bytes_per_second", rate);
		cli_json_obj_end(&j);
		return;
	}
	if (c->verbose < 0)
		return;
	fprintf(c->out, "saved checkpoint %s from %s (%s): %" PRIu64 " files, %"
		PRIu64 " dirs, %" PRIu64 " symlinks, %" PRIu64 " bytes (%s) in %.2f s"
		" (%s/s); %" PRIu64 " bytes newly stored (%s)\n",
		name, r->src, r->mode, r->tc.files, r->tc.dirs, r->tc.symlinks,
		r->tc.bytes, cli_fmt_bytes(r->tc.bytes, b1, sizeof b1), r->seconds,
		cli_fmt_bytes((uint64_t)rate, b2, sizeof b2), added,
		cli_fmt_bytes(added, b3, sizeof b3));
}

static uint64_t stored_bytes(cairn_volume *vol)
{
	cairn_statfs sf;
	if (volume_statfs(vol, &sf))
		return 0;
	return sf.stored_bytes;
}

/* Is abs (a realpath) the mount point or under it? */
static int under(const char *abs, const char *mp)
{
	size_t n = strlen(mp);
	if (n == 1 && mp[0] == '/')
		return 1;
	return strncmp(abs, mp, n) == 0 && (abs[n] == '\0' || abs[n] == '/');
}

static int save_in_volume(cli_ctx *c, const char *name, const char *snap,
			  const char *src, uint64_t sdir, const char *sname,
			  save_result *r)
{
	cairn_volume *vol = c->vol;
	cairn_attr a, ca;
	int rc, status;

	r->mode = "in-volume";
	if ((rc = cli_resolve(c, src, &a)))
		return cli_fail(c, rc, NULL, "%s", src);
	if (!S_ISDIR(a.mode))
		return cli_fail(c, cairn_errf(CAIRN_E_NOTDIR, "not a directory"),
				NULL, "%s", src);
	/* Freeze the tree as it is now (no data copied), then make it
	 * durable remotely, then publish: writes after this moment never
	 * leak into the checkpoint. */
	if ((rc = volume_clone(vol, a.ino, sdir, sname, &ca)))
		return cli_fail(c, rc, NULL, "clone %s", src);
	if ((rc = vol_count_tree(vol, ca.ino, &r->tc)))
		status = cli_fail(c, rc, NULL, "count %s", src);
	else if ((rc = volume_sync_durable(vol, CAIRN_DUR_REMOTE)))
		status = cli_fail(c, rc, NULL, "checkpoint %s %s", name, ckpt_what(rc));
	else if ((rc = volume_snapshot_create(vol, ca.ino, snap, NULL)))
		status = cli_fail(c, rc, NULL, "checkpoint %s", name);
	else if ((rc = ckpt_ship(vol)))
		status = cli_fail(c, rc, NULL, "checkpoint %s %s", name, ckpt_what(rc));
	else
		status = 0;
	if (vol_rm_tree(vol, sdir, sname) && !status)
		cli_info(c, "warning: removing the staging clone failed: %s "
			 "(the next save removes it)", cairn_errmsg());
	return status;
}

static int save_copy(cli_ctx *c, const char *name, const char *snap,
		     const char *src, uint64_t sdir, const char *sname,
		     int nthreads, save_result *r)
{
	cairn_volume *vol = c->vol;
	save_state s;
	pthread_t th[CKPT_MAX_THREADS];
	int nth = 0, rc, status = 0;
	struct stat rootst;
	cairn_attr root;

	r->mode = "copy";
	memset(&s, 0, sizeof s);
	ck_err_init(&s.err);
	s.c = c;
	s.vol = vol;
	if (stat(src, &rootst) != 0)
		return cli_fail(c, errno_rc("%s: %s", src), NULL, "source");
	if (!S_ISDIR(rootst.st_mode))
		return cli_fail(c, cairn_errf(CAIRN_E_NOTDIR, "not a directory"),
				NULL, "%s", src);
	if ((rc = volume_mkdir(vol, sdir, sname, 0700, rootst.st_uid,
			       rootst.st_gid, &root)))
		return cli_fail(c, rc, NULL, "create staging directory %s", sname);

	if (save_scan(&s, src, "", root.ino))
		goto fail;
	qsort(s.files.v, s.files.n, sizeof *s.files.v, by_size_desc);
	s.prog = cli_progress_start(c, "save", s.total_bytes);
	if ((size_t)nthreads > s.files.n)
		nthreads = s.files.n ? (int)s.files.n : 1;
	for (; nth < nthreads; nth++) {
		if (pthread_create(&th[nth], NULL, save_worker, &s) != 0) {
			if (!nth) {
				save_worker(&s);
			}
			break;
		}
	}
	for (int i = 0; i < nth; i++)
		pthread_join(th[i], NULL);
	cli_progress_end(s.prog);
	s.prog = NULL;
	if (atomic_load(&s.err.failed))
		goto fail;
	/* Everything written: commit and upload, then the attributes, then
	 * publish. */
	if ((rc = volume_sync_durable(vol, CAIRN_DUR_REMOTE))) {
		ck_fail(&s.err, rc, "checkpoint %s %s", name, ckpt_what(rc));
		goto fail;
	}
	for (size_t i = 0; i < s.files.n; i++) {
		if ((rc = set_attrs(vol, s.files.v[i].ino, &s.files.v[i].st, 1))) {
			ck_fail(&s.err, rc, "set the attributes of %s", s.files.v[i].rel);
			goto fail;
		}
	}
	/* Deepest first (creation order reversed), the root last. */
	for (size_t i = s.attrs.n; i-- > 0;) {
		sv_item *it = &s.attrs.v[i];
		if ((rc = set_attrs(vol, it->ino, &it->st, !S_ISLNK(it->st.st_mode)))) {
			ck_fail(&s.err, rc, "set the attributes of %s", it->rel);
			goto fail;
		}
	}
	if ((rc = set_attrs(vol, root.ino, &rootst, 1))) {
		ck_fail(&s.err, rc, "set the attributes of %s", src);
		goto fail;
	}
	if ((rc = volume_snapshot_create(vol, root.ino, snap, NULL))) {
		ck_fail(&s.err, rc, "checkpoint %s", name);
		goto fail;
	}
	/* Published locally; in the store once its record is shipped. */
	if ((rc = ckpt_ship(vol))) {
		ck_fail(&s.err, rc, "checkpoint %s %s", name, ckpt_what(rc));
		goto fail;
	}
	r->tc.files = s.nfiles;
	r->tc.dirs = s.ndirs;
	r->tc.symlinks = s.nsymlinks;
	r->tc.other = s.nother;
	r->tc.bytes = 0;
	for (size_t i = 0; i < s.files.n; i++)
		r->tc.bytes += (uint64_t)s.files.v[i].st.st_size;
	if ((rc = vol_rm_tree(vol, sdir, sname)))
		cli_info(c, "warning: removing the staging directory failed: %s "
			 "(the next save removes it)", cairn_errmsg());
	goto out;
fail:
	status = ck_report(c, &s.err);
	if (!status)
		status = CLI_EXIT_FAIL;
	(void)vol_rm_tree(vol, sdir, sname);
out:
	sv_list_free(&s.files);
	sv_list_free(&s.attrs);
	pthread_mutex_destroy(&s.err.mu);
	return status ? status : 0;
}

int cmd_ckpt_save(cli_ctx *c, int argc, char **argv)
{
	static const cli_opt opts[] = {
		{ "threads", 'j', 1, 'j' },
		{ NULL, 0, 0, 0 },
	};
	cli_args a;
	char **ops, snap[CAIRN_SNAP_NAME_MAX + 1], sname[CLI_NAME_BUF];
	char abs[PATH_MAX];
	int nops, id, rc, status = 0, nthreads = CKPT_DEFAULT_THREADS;
	uint64_t sdir = 0, rnd = 0;
	staging_reg *reg = NULL;
	save_result r;
	cairn_snap sn;
	int64_t t0 = mono_ns();

	memset(&r, 0, sizeof r);
	cli_args_init(&a, argc, argv);
	while ((id = cli_getopt(c, &a, opts)) != 0) {
		if (id < 0 || (id == 'j' && parse_threads(c, a.arg, &nthreads))) {
			cli_args_free(&a);
			return CLI_EXIT_USAGE;
		}
	}
	ops = cli_operands(&a, &nops);
	if (nops != 2) {
		status = cli_usage(c, nops < 2 ? "expected SRC_DIR and NAME" :
				   "unexpected argument '%s'", nops > 2 ? ops[2] : "");
		goto out;
	}
	if ((status = ckpt_name_check(c, ops[1])))
		goto out;
	snprintf(snap, sizeof snap, "%s%s", CKPT_SNAP_PREFIX, ops[1]);
	if (cli_local_path(c, ops[0], abs, sizeof abs) < 0) {
		status = cli_usage(c, "path too long: %s", ops[0]);
		goto out;
	}
	if (!realpath(abs, r.src)) {
		status = cli_fail(c, errno_rc("%s: %s", abs), NULL, "source");
		goto out;
	}
	rc = volume_snapshot_get(c->vol, snap, &sn);
	if (rc == 0) {
		status = cli_fail(c, cairn_errf(CAIRN_E_EXISTS, "checkpoint %s exists",
						ops[1]), "remove it first with 'cairn ckpt rm'",
				  "save %s", ops[1]);
		goto out;
	}
	if (rc != CAIRN_E_NOTFOUND) {
		status = cli_fail(c, rc, NULL, "look up checkpoint %s", ops[1]);
		goto out;
	}
	if ((rc = staging_parent(c->vol, &sdir))) {
		status = cli_fail(c, rc, NULL, "save %s", ops[1]);
		goto out;
	}
	if (getrandom(&rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd)
		rnd = (uint64_t)mono_ns() ^ ((uint64_t)pthread_self() << 16);
	snprintf(sname, sizeof sname, "%s.%ld.%016" PRIx64, ops[1], (long)getpid(), rnd);
	/* Registered before it exists, so that a concurrent save's cleanup
	 * never takes it for a leftover. */
	if (!(reg = staging_register(sname))) {
		status = cli_fail(c, CAIRN_E_NOMEM, NULL, "save %s", ops[1]);
		goto out;
	}
	if ((rc = staging_cleanup(c->vol, sdir, &r.stale_removed))) {
		status = cli_fail(c, rc, NULL, "save %s", ops[1]);
		goto out;
	}
	if (r.stale_removed)
		cli_info(c, "removed %" PRIu64 " staging director%s left by "
			 "interrupted saves", r.stale_removed,
			 r.stale_removed == 1 ? "y" : "ies");
	r.stored_before = stored_bytes(c->vol);
	if (c->mountpoint && under(r.src, c->mountpoint))
		status = save_in_volume(c, ops[1], snap, r.src, sdir, sname, &r);
	else
		status = save_copy(c, ops[1], snap, r.src, sdir, sname, nthreads, &r);
	if (status)
		goto out;
	r.stored_after = stored_bytes(c->vol);
	r.seconds = (double)(mono_ns() - t0) / 1e9;
	save_print(c, ops[1], &r);
out:
	staging_unregister(reg);
	cli_args_free(&a);
	return status;
}

/* ------------------------------------------------------------------ */
/* restore                                                             */

/* A destination directory being filled: its fd stays open while files
 * are written into it; when the last reference goes (its entries done,
 * its subdirectories finished) its mode and times are set and it closes. */
typedef struct rs_dir {
	int fd;
	atomic_int refs;
	struct rs_dir *parent;
	cairn_attr a;
	char *rel;
} rs_dir;

typedef struct rs_job {
	rs_dir *dir;
	char *name;
	cairn_attr a;
} rs_job;

typedef struct restore_state {
	cli_ctx *c;
	cairn_volume *vol;
	int force;
	int root_owner;   /* euid 0: restore ownership */
	rs_job *jobs;
	size_t njobs, cap;
	atomic_size_t next;
	tree_count tc;
	cli_progress *prog;
	ck_err err;
	rs_dir **dirs;    /* every directory, freed at the end */
	size_t ndirs, dcap;
	cairn_uring *u;   /* file writes go through the I/O engine */
} restore_state;

static void rel_of(char *buf, size_t size, const rs_dir *d, const char *name)
{
	snprintf(buf, size, "%s%s%s", d->rel, *d->rel ? "/" : "", name);
}

static void rs_dir_put(restore_state *s, rs_dir *d)
{
	while (d && atomic_fetch_sub(&d->refs, 1) == 1) {
		rs_dir *p = d->parent;
		struct timespec ts[2] = { ns_ts(d->a.atime_ns), ns_ts(d->a.mtime_ns) };
		if (s->root_owner && fchown(d->fd, d->a.uid, d->a.gid) != 0 &&
		    !atomic_load(&s->err.failed))
			ck_fail(&s->err, errno_rc("chown %s: %s", *d->rel ? d->rel : "."),
				"restore %s", *d->rel ? d->rel : ".");
		if (fchmod(d->fd, d->a.mode & 07777) != 0 || futimens(d->fd, ts) != 0)
			ck_fail(&s->err, errno_rc("set attributes of %s: %s",
						  *d->rel ? d->rel : "."),
				"restore %s", *d->rel ? d->rel : ".");
		close(d->fd);
		d->fd = -1;
		d = p;
	}
}

/* Is name safe as one component under a directory fd? */
static int name_ok(const char *name)
{
	return name[0] && strcmp(name, ".") && strcmp(name, "..") &&
	       !strchr(name, '/');
}

/* With --force, make room for a new entry name in dir: an existing
 * non-directory is unlinked (a symlink is never followed); an existing
 * directory is kept when keep_dir, else it is an error. */
static int make_room(restore_state *s, int dfd, const char *name,
		     const char *rel, int keep_dir, int *is_dir)
{
	struct stat st;

	*is_dir = 0;
	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0)
		return errno == ENOENT ? 0 :
		       ck_fail(&s->err, errno_rc("stat %s: %s", rel), "restore %s", rel);
	if (S_ISDIR(st.st_mode)) {
		if (keep_dir) {
			*is_dir = 1;
			return 0;
		}
		return ck_fail(&s->err, cairn_errf(CAIRN_E_ISDIR,
						   "a directory is in the way"),
			       "restore %s", rel);
	}
	if (unlinkat(dfd, name, 0) != 0)
		return ck_fail(&s->err, errno_rc("unlink %s: %s", rel), "restore %s", rel);
	return 0;
}

static int rs_file(restore_state *s, rs_job *j, char *buf)
{
	char rel[PATH_MAX];
	cairn_file *f = NULL;
	uint64_t off = 0, size = j->a.size;
	int fd, rc = 0, isdir, direct = 0;  /* O_DIRECT: 1 on, 0 off, -1 unusable */
	struct timespec ts[2] = { ns_ts(j->a.atime_ns), ns_ts(j->a.mtime_ns) };

	rel_of(rel, sizeof rel, j->dir, j->name);
	fd = openat(j->dir->fd, j->name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
		    O_CLOEXEC, 0600);
	if (fd < 0 && errno == EEXIST && s->force) {
		if (make_room(s, j->dir->fd, j->name, rel, 0, &isdir))
			return -1;
		fd = openat(j->dir->fd, j->name, O_WRONLY | O_CREAT | O_EXCL |
			    O_NOFOLLOW | O_CLOEXEC, 0600);
	}
	if (fd < 0)
		return ck_fail(&s->err, errno_rc("create %s: %s", rel), "restore %s", rel);
	if ((rc = volume_file_open(s->vol, j->a.ino, &f))) {
		ck_fail(&s->err, rc, "read %s", rel);
		goto out;
	}
	while (off < size && !atomic_load(&s->err.failed)) {
		uint64_t data, hole;
		rc = volume_seek_data(f, off, SEEK_DATA, &data);
		if (rc == CAIRN_E_NXIO) {
			rc = 0;
			break;
		}
		if (!rc)
			rc = volume_seek_data(f, data, SEEK_HOLE, &hole);
		if (rc) {
			ck_fail(&s->err, rc, "read %s", rel);
			goto out;
		}
		if (hole > size)
			hole = size;
		cli_progress_add(s->prog, data - off);
		for (uint64_t pos = data; pos < hole;) {
			size_t want = hole - pos < CKPT_BUF ? (size_t)(hole - pos) : CKPT_BUF;
			size_t got = 0, put = 0;
			if ((rc = volume_file_read(f, buf, want, pos, &got))) {
				ck_fail(&s->err, rc, "read %s", rel);
				goto out;
			}
			while (put < got) {
				ssize_t n;
				size_t len = got - put;
				/* Whole aligned blocks bypass the page cache
				 * (synced anyway at the end: O_DIRECT saves the
				 * copy into it, the dominant cost); the rest is
				 * buffered. */
				int want_direct = direct >= 0 &&
					(pos + put) % RS_ALIGN == 0 &&
					put % RS_ALIGN == 0 && len >= RS_ALIGN;
				if (want_direct)
					len &= ~(size_t)(RS_ALIGN - 1);
				if (direct >= 0 && want_direct != direct) {
					int fl = fcntl(fd, F_GETFL);
					if (fl < 0 || fcntl(fd, F_SETFL, want_direct ?
							    fl | O_DIRECT : fl & ~O_DIRECT) != 0) {
						if (want_direct) {
							direct = -1;  /* not here */
							continue;
						}
						rc = ck_fail(&s->err, errno_rc("write %s: %s", rel),
							     "restore %s", rel);
						goto out;
					}
					direct = want_direct;
				}
				int wrc = uring_write(s->u, fd, buf + put, len, pos + put);
				n = wrc ? -1 : (ssize_t)len;
				if (n < 0 && direct == 1 && wrc == CAIRN_E_INVAL) {
					direct = -1;  /* the file system refuses it */
					if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_DIRECT) != 0) {
						rc = ck_fail(&s->err, errno_rc("write %s: %s", rel),
							     "restore %s", rel);
						goto out;
					}
					continue;
				}
				if (n <= 0) {
					rc = ck_fail(&s->err, wrc ? wrc : CAIRN_E_IO,
						     "restore %s", rel);
					goto out;
				}
				put += (size_t)n;
			}
			cli_progress_add(s->prog, got);
			pos += got;
			if (got < want) {
				hole = size = pos;  /* shorter than its size said */
				break;
			}
			if (cli_cancelled(s->c)) {
				rc = ck_fail(&s->err, cairn_errf(CAIRN_E_CANCELED, "canceled"),
					     "restore");
				goto out;
			}
		}
		off = hole;
	}
	if (atomic_load(&s->err.failed))
		goto out;
	cli_progress_add(s->prog, size > off ? size - off : 0);
	if (ftruncate(fd, (off_t)size) != 0 ||
	    (s->root_owner && fchown(fd, j->a.uid, j->a.gid) != 0) ||
	    fchmod(fd, j->a.mode & 07777) != 0 || futimens(fd, ts) != 0)
		rc = ck_fail(&s->err, errno_rc("set attributes of %s: %s", rel),
			     "restore %s", rel);
out:
	if (f)
		(void)volume_file_close(f);  /* read-only: nothing to lose */
	if (close(fd) != 0 && !rc)
		rc = ck_fail(&s->err, errno_rc("close %s: %s", rel), "restore %s", rel);
	return rc;
}

static void *restore_worker(void *arg)
{
	restore_state *s = arg;
	char *buf = NULL;

	if (posix_memalign((void **)&buf, RS_ALIGN, CKPT_BUF) != 0)
		buf = NULL;
	if (!buf)
		ck_fail(&s->err, cairn_errf(CAIRN_E_NOMEM, "copy buffer"), "restore");
	for (;;) {
		size_t i = atomic_fetch_add(&s->next, 1);
		if (i >= s->njobs)
			break;
		if (buf && !atomic_load(&s->err.failed)) {
			if (cli_cancelled(s->c))
				ck_fail(&s->err, cairn_errf(CAIRN_E_CANCELED, "canceled"),
					"restore");
			else
				(void)rs_file(s, &s->jobs[i], buf);
		}
		/* every job drops its directory's reference, done or not */
		rs_dir_put(s, s->jobs[i].dir);
	}
	free(buf);
	return NULL;
}

static int rs_track(restore_state *s, rs_dir *d)
{
	if (s->ndirs == s->dcap) {
		size_t cap = s->dcap ? s->dcap * 2 : 64;
		rs_dir **nv = realloc(s->dirs, cap * sizeof *nv);
		if (!nv)
			return cairn_errf(CAIRN_E_NOMEM, "directory list");
		s->dirs = nv;
		s->dcap = cap;
	}
	s->dirs[s->ndirs++] = d;
	return 0;
}

static int rs_push(restore_state *s, rs_dir *d, const char *name,
		   const cairn_attr *a)
{
	if (s->njobs == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 256;
		rs_job *nv = realloc(s->jobs, cap * sizeof *nv);
		if (!nv)
			return cairn_errf(CAIRN_E_NOMEM, "file list");
		s->jobs = nv;
		s->cap = cap;
	}
	s->jobs[s->njobs].name = strdup(name);
	if (!s->jobs[s->njobs].name)
		return cairn_errf(CAIRN_E_NOMEM, "file list");
	s->jobs[s->njobs].dir = d;
	s->jobs[s->njobs].a = *a;
	atomic_fetch_add(&d->refs, 1);
	s->njobs++;
	return 0;
}

/* Walk volume directory d->a.ino, creating its subdirectories, symlinks
 * and special files under d->fd and listing its regular files. */
static int rs_scan(restore_state *s, rs_dir *d)
{
	vlist l;
	int rc = vlist_read(s->vol, d->a.ino, &l);

	if (rc)
		return ck_fail(&s->err, rc, "list %s", *d->rel ? d->rel : ".");
	for (size_t i = 0; i < l.n && !rc; i++) {
		const char *name = l.v[i].name;
		char rel[PATH_MAX];
		cairn_attr a;
		int isdir;

		if (cli_cancelled(s->c)) {
			rc = ck_fail(&s->err, cairn_errf(CAIRN_E_CANCELED, "canceled"),
				     "restore");
			break;
		}
		rel_of(rel, sizeof rel, d, name);
		if (!name_ok(name)) {
			rc = ck_fail(&s->err, cairn_errf(CAIRN_E_CORRUPT,
				"unsafe entry name '%s' in the checkpoint", name),
				"restore %s", *d->rel ? d->rel : ".");
			break;
		}
		if ((rc = volume_getattr(s->vol, l.v[i].ino, &a))) {
			ck_fail(&s->err, rc, "stat %s", rel);
			break;
		}
		if (S_ISREG(a.mode)) {
			s->tc.files++;
			s->tc.bytes += a.size;
			if ((rc = rs_push(s, d, name, &a)))
				ck_fail(&s->err, rc, "restore %s", rel);
			continue;
		}
		if (S_ISDIR(a.mode)) {
			rs_dir *nd;
			isdir = 0;
			if (mkdirat(d->fd, name, 0700) != 0) {
				if (errno != EEXIST || !s->force) {
					rc = ck_fail(&s->err, errno_rc("mkdir %s: %s", rel),
						     "restore %s", rel);
					break;
				}
				if ((rc = make_room(s, d->fd, name, rel, 1, &isdir)))
					break;
				if (!isdir && mkdirat(d->fd, name, 0700) != 0) {
					rc = ck_fail(&s->err, errno_rc("mkdir %s: %s", rel),
						     "restore %s", rel);
					break;
				}
			}
			nd = calloc(1, sizeof *nd);
			if (!nd || !(nd->rel = strdup(rel)) || rs_track(s, nd)) {
				if (nd)
					free(nd->rel);
				free(nd);
				rc = ck_fail(&s->err, CAIRN_E_NOMEM, "restore %s", rel);
				break;
			}
			nd->fd = openat(d->fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
					O_CLOEXEC);
			if (nd->fd < 0) {
				rc = ck_fail(&s->err, errno_rc("open %s: %s", rel),
					     "restore %s", rel);
				break;
			}
			/* an existing directory we merge into must be writable */
			if (isdir && fchmod(nd->fd, 0700) != 0) {
				rc = ck_fail(&s->err, errno_rc("chmod %s: %s", rel),
					     "restore %s", rel);
				close(nd->fd);
				nd->fd = -1;
				break;
			}
			nd->a = a;
			nd->parent = d;
			atomic_store(&nd->refs, 1);
			atomic_fetch_add(&d->refs, 1);
			s->tc.dirs++;
			rc = rs_scan(s, nd);
			rs_dir_put(s, nd);
			continue;
		}
		/* symlink or special file; device nodes are not recreated: a
		 * checkpoint restored as root must not hand out devices */
		if (S_ISCHR(a.mode) || S_ISBLK(a.mode)) {
			fprintf(s->c->err, "cairn: %s: skipped device node %s (device "
				"files are not restored)\n", s->c->cmd, rel);
			s->tc.other++;
			continue;
		}
		{
			struct timespec ts[2] = { ns_ts(a.atime_ns), ns_ts(a.mtime_ns) };
			int made;
			for (int attempt = 0;; attempt++) {
				if (S_ISLNK(a.mode)) {
					char target[PATH_MAX + 1];
					size_t len = 0;
					if ((rc = volume_readlink(s->vol, a.ino, target,
								  sizeof target - 1, &len))) {
						ck_fail(&s->err, rc, "read symlink %s", rel);
						break;
					}
					if (len >= sizeof target) {
						rc = ck_fail(&s->err, cairn_errf(CAIRN_E_NAMETOOLONG,
							"symlink target too long"), "restore %s", rel);
						break;
					}
					target[len] = '\0';
					made = symlinkat(target, d->fd, name);
				} else {
					made = mknodat(d->fd, name, a.mode & (S_IFMT | 07777),
						       (dev_t)a.rdev);
				}
				if (made == 0)
					break;
				if (errno != EEXIST || !s->force || attempt) {
					rc = ck_fail(&s->err, errno_rc("create %s: %s", rel),
						     "restore %s", rel);
					break;
				}
				if ((rc = make_room(s, d->fd, name, rel, 0, &isdir)))
					break;
			}
			if (rc)
				break;
			if (s->root_owner &&
			    fchownat(d->fd, name, a.uid, a.gid, AT_SYMLINK_NOFOLLOW) != 0) {
				rc = ck_fail(&s->err, errno_rc("chown %s: %s", rel),
					     "restore %s", rel);
				break;
			}
			if (!S_ISLNK(a.mode) &&
			    fchmodat(d->fd, name, a.mode & 07777, AT_SYMLINK_NOFOLLOW) != 0) {
				rc = ck_fail(&s->err, errno_rc("chmod %s: %s", rel),
					     "restore %s", rel);
				break;
			}
			if (utimensat(d->fd, name, ts, AT_SYMLINK_NOFOLLOW) != 0) {
				rc = ck_fail(&s->err, errno_rc("set times of %s: %s", rel),
					     "restore %s", rel);
				break;
			}
			if (S_ISLNK(a.mode))
				s->tc.symlinks++;
			else
				s->tc.other++;
		}
	}
	vlist_free(&l);
	return rc;
}

/* Open (creating if missing) the destination directory; refuse a
 * non-empty one unless force. */
static int rs_open_dest(cli_ctx *c, const char *dest, int force, int *out)
{
	int fd, n = 0;
	DIR *d;
	struct dirent *de;

	if (mkdir(dest, 0755) != 0 && errno != EEXIST)
		return cli_fail(c, errno_rc("mkdir %s: %s", dest), NULL, "destination");
	fd = open(dest, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return cli_fail(c, errno_rc("open %s: %s", dest), NULL, "destination");
	if (!force) {
		int dfd = dup(fd);
		if (dfd < 0 || !(d = fdopendir(dfd))) {
			if (dfd >= 0)
				close(dfd);
			close(fd);
			return cli_fail(c, errno_rc("read %s: %s", dest), NULL, "destination");
		}
		while ((de = readdir(d)))
			if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
				n++;
		closedir(d);
		if (n) {
			close(fd);
			return cli_fail(c, cairn_errf(CAIRN_E_NOTEMPTY,
					"%s is not empty", dest),
					"use --force to restore into it", "destination");
		}
	}
	*out = fd;
	return 0;
}

static void restore_print(cli_ctx *c, const char *name, const char *dest,
			  const tree_count *tc, double secs)
{
	double rate = secs > 0 ? (double)tc->bytes / secs : 0;
	char b1[32], b2[32];

	if (c->json) {
		cli_json j;
		cli_json_init(&j, c->out);
		cli_json_obj_begin(&j);
		cli_json_kstr(&j, "checkpoint", name);
		cli_json_kstr(&j, "destination", dest);
		cli_json_ku64(&j, "files", tc->files);
		cli_json_ku64(&j, "dirs", tc->dirs);
		cli_json_ku64(&j, "symlinks", tc->symlinks);
		cli_json_ku64(&j, "other", tc->other);
		cli_json_ku64(&j, "bytes", tc->bytes);
		cli_json_kf64(&j, "seconds", secs);
		cli_json_kf64(&j, "bytes_per_second", rate);
		cli_json_obj_end(&j);
		return;
	}
	if (c->verbose < 0)
		return;
	fprintf(c->out, "restored checkpoint %s to %s: %" PRIu64 " files, %" PRIu64
		" dirs, %" PRIu64 " symlinks, %" PRIu64 " bytes (%s) in %.2f s (%s/s)\n",
		name, dest, tc->files, tc->dirs, tc->symlinks, tc->bytes,
		cli_fmt_bytes(tc->bytes, b1, sizeof b1), secs,
		cli_fmt_bytes((uint64_t)rate, b2, sizeof b2));
}

int cmd_ckpt_restore(cli_ctx *c, int argc, char **argv)
{
	static const cli_opt opts[] = {
		{ "force", 'f', 0, 'f' },
		{ "threads", 'j', 1, 'j' },
		{ "cold", 0, 0, 'c' },
		{ NULL, 0, 0, 0 },
	};
	cli_args a;
	char **ops, snap[CAIRN_SNAP_NAME_MAX + 1], dest[PATH_MAX];
	int nops, id, rc, status = 0, nthreads = CKPT_DEFAULT_THREADS, force = 0;
	int dfd = -1, nth = 0, cold = 0;
	cairn_snap sn;
	restore_state s;
	rs_dir *root = NULL;
	pthread_t th[CKPT_MAX_THREADS];
	int64_t t0 = mono_ns();

	memset(&s, 0, sizeof s);
	ck_err_init(&s.err);
	cli_args_init(&a, argc, argv);
	while ((id = cli_getopt(c, &a, opts)) != 0) {
		if (id < 0 || (id == 'j' && parse_threads(c, a.arg, &nthreads))) {
			status = CLI_EXIT_USAGE;
			goto out;
		}
		if (id == 'f')
			force = 1;
		if (id == 'c')
			cold = 1;
	}
	ops = cli_operands(&a, &nops);
	if (nops != 2) {
		status = cli_usage(c, nops < 2 ? "expected NAME and DEST_DIR" :
				   "unexpected argument '%s'", nops > 2 ? ops[2] : "");
		goto out;
	}
	if ((status = ckpt_name_check(c, ops[0])))
		goto out;
	snprintf(snap, sizeof snap, "%s%s", CKPT_SNAP_PREFIX, ops[0]);
	if (cli_local_path(c, ops[1], dest, sizeof dest) < 0) {
		status = cli_usage(c, "path too long: %s", ops[1]);
		goto out;
	}
	if (c->mountpoint) {
		/* The daemon writing into its own mount would serve itself. */
		char rp[PATH_MAX], tmp[PATH_MAX];
		const char *probe = dest;
		if (!realpath(dest, rp)) {
			char *sl;
			snprintf(tmp, sizeof tmp, "%s", dest);
			sl = strrchr(tmp, '/');
			if (sl && sl != tmp)
				*sl = '\0';
			probe = tmp;
			if (!realpath(probe, rp))
				rp[0] = '\0';
		}
		if (rp[0] && under(rp, c->mountpoint)) {
			status = cli_usage(c, "DEST_DIR %s is inside the mounted volume; "
					   "use 'cairn clone @%s PATH' to copy no data",
					   ops[1], snap);
			goto out;
		}
	}
	if ((rc = volume_snapshot_get(c->vol, snap, &sn))) {
		status = cli_fail(c, rc == CAIRN_E_NOTFOUND ?
				  cairn_errf(rc, "no checkpoint named %s", ops[0]) : rc,
				  rc == CAIRN_E_NOTFOUND ? "see 'cairn ckpt list'" : NULL,
				  "restore %s", ops[0]);
		goto out;
	}
	if ((status = rs_open_dest(c, dest, force, &dfd)))
		goto out;
	if (cold && (rc = volume_drop_cache(c->vol))) {
		close(dfd);
		status = cli_fail(c, rc, NULL, "drop the local caches");
		goto out;
	}
	s.c = c;
	s.vol = c->vol;
	s.force = force;
	s.root_owner = geteuid() == 0;
	if ((rc = uring_open(NULL, &s.u))) {
		close(dfd);
		status = cli_fail(c, rc, NULL, "start the I/O engine");
		goto out;
	}
	root = calloc(1, sizeof *root);
	if (!root || !(root->rel = strdup("")) || rs_track(&s, root)) {
		if (root)
			free(root->rel);
		free(root);
		close(dfd);
		status = cli_fail(c, CAIRN_E_NOMEM, NULL, "restore %s", ops[0]);
		goto out;
	}
	root->fd = dfd;
	atomic_store(&root->refs, 1);
	if ((rc = volume_getattr(c->vol, sn.root, &root->a))) {
		ck_fail(&s.err, rc, "read checkpoint %s", ops[0]);
	} else {
		/* One descriptor per directory with pending files. */
		struct rlimit rl;
		if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
			rl.rlim_cur = rl.rlim_max;
			(void)setrlimit(RLIMIT_NOFILE, &rl);
		}
		(void)rs_scan(&s, root);
	}
	s.prog = cli_progress_start(c, "restore", s.tc.bytes);
	if ((size_t)nthreads > s.njobs)
		nthreads = s.njobs ? (int)s.njobs : 1;
	for (; nth < nthreads; nth++)
		if (pthread_create(&th[nth], NULL, restore_worker, &s) != 0)
			break;
	if (!nth)
		restore_worker(&s);
	for (int i = 0; i < nth; i++)
		pthread_join(th[i], NULL);
	rs_dir_put(&s, root);  /* the last one: sets DEST's mode and times */
	cli_progress_end(s.prog);
	if (!atomic_load(&s.err.failed)) {
		/* durable, like cp followed by sync */
		int sfd = open(dest, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (sfd < 0 || syncfs(sfd) != 0)
			ck_fail(&s.err, errno_rc("sync %s: %s", dest), "restore %s", ops[0]);
		if (sfd >= 0)
			close(sfd);
	}
	if (atomic_load(&s.err.failed)) {
		status = ck_report(c, &s.err);
		goto out;
	}
	restore_print(c, ops[0], dest, &s.tc, (double)(mono_ns() - t0) / 1e9);
out:
	for (size_t i = 0; i < s.ndirs; i++) {
		if (s.dirs[i]->fd >= 0)
			close(s.dirs[i]->fd);
		free(s.dirs[i]->rel);
		free(s.dirs[i]);
	}
	free(s.dirs);
	for (size_t i = 0; i < s.njobs; i++)
		free(s.jobs[i].name);
	free(s.jobs);
	uring_close(s.u);
	pthread_mutex_destroy(&s.err.mu);
	cli_args_free(&a);
	return status;
}
