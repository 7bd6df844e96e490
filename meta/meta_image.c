/*
 * meta_image.c - images of the metadata environment for log shipping
 * (docs/log-shipping.md "Images", docs/format.md "Image").
 *
 * An image is one file: a compact copy of data.mdb (LMDB's
 * mdb_env_copyfd2 with MDB_CP_COMPACT, taken from one read snapshot while
 * commits go on), nothing else: no lock file, no checkpoint side files
 * (meta.synced, meta.undo.*), which describe one directory's crash state
 * and are not needed by a file that was fsynced whole.  Its local table
 * keeps `last_lsn`, the LSN of the last record the snapshot holds; it also
 * still holds the writer's retained WAL and consumer acks, which
 * meta_image_install drops and meta_replica_load ignores.
 *
 *   meta_image_write:   env --copy, fsync--> image file --meta_image_lsn-->
 *   meta_image_install: image file --rename (or copy)--> dir/data.mdb,
 *                       wal and consumers cleared --> meta_open accepts it
 *   meta_replica_load:  replica env + image --one write txn--> replica at
 *                       the image's LSN
 *
 * Invariants:
 *   1. An image is opened only read-only with MDB_NOLOCK|MDB_NOSUBDIR, and
 *      only after its schema (format counter) and last_lsn checked out.
 *   2. An installed directory holds no side files of another environment:
 *      install refuses a directory that has data.mdb, meta.synced or
 *      meta.undo.* (meta_ckpt_recover would apply them to the image).
 *   3. meta_replica_load replaces tables 0-12 in one LMDB transaction and
 *      logs nothing; the replica's WAL is emptied (LSNs stay dense) and
 *      its last LSN becomes the image's in the same commit.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "meta_int.h"

#define CONSUMER_PREFIX "consumer:"

typedef struct img {
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi[MT_COUNT];
	uint64_t lsn;
} img;

static void img_close(img *im)
{
	if (im->txn)
		mdb_txn_abort(im->txn);
	if (im->env)
		mdb_env_close(im->env);
	memset(im, 0, sizeof *im);
}

/* Open the image at path read-only and check it (invariant 1). */
static int img_open(const char *path, img *im)
{
	struct stat st;
	int err, rc = 0;
	char what[600];

	memset(im, 0, sizeof *im);
	if (stat(path, &st) != 0)
		return cairn_errf(errno == ENOENT ? CAIRN_E_NOTFOUND : CAIRN_E_IO, "image %s: %s",
				  path, strerror(errno));
	if (!S_ISREG(st.st_mode))
		return cairn_errf(CAIRN_E_INVAL, "image %s is not a regular file", path);
	snprintf(what, sizeof what, "image %s", path);
	if ((err = mdb_env_create(&im->env)))
		return meta_lmdb_err(err, what);
	if ((err = mdb_env_set_maxdbs(im->env, MT_COUNT + 2)) ||
	    (err = mdb_env_open(im->env, path, MDB_NOSUBDIR | MDB_RDONLY | MDB_NOLOCK | MDB_NOTLS,
				0644)) ||
	    (err = mdb_txn_begin(im->env, NULL, MDB_RDONLY, &im->txn))) {
		rc = meta_lmdb_err(err, what);
		goto fail;
	}
	for (int i = 0; i < MT_COUNT; i++) {
		err = mdb_dbi_open(im->txn, meta_table_names[i], 0, &im->dbi[i]);
		if (err == MDB_NOTFOUND || err == MDB_INCOMPATIBLE) {
			rc = cairn_errf(CAIRN_E_CORRUPT, "image %s: no table '%s' (not a cairn image)",
					path, meta_table_names[i]);
			goto fail;
		}
		if (err) {
			rc = meta_lmdb_err(err, what);
			goto fail;
		}
	}
	uint8_t fk = MC_FORMAT;
	MDB_val k = { 1, &fk }, v;
	err = mdb_get(im->txn, im->dbi[MT_COUNTER], &k, &v);
	if (err == MDB_NOTFOUND || (!err && v.mv_size != 8)) {
		rc = cairn_errf(CAIRN_E_CORRUPT, "image %s: no schema version (not a formatted "
				"environment)", path);
		goto fail;
	}
	if (err) {
		rc = meta_lmdb_err(err, what);
		goto fail;
	}
	if (rle64(v.mv_data) != META_SCHEMA_VERSION) {
		rc = cairn_errf(CAIRN_E_VERSION, "image %s has schema version %llu; this build "
				"reads version %d", path, (unsigned long long)rle64(v.mv_data),
				META_SCHEMA_VERSION);
		goto fail;
	}
	k.mv_size = 8;
	k.mv_data = "last_lsn";
	err = mdb_get(im->txn, im->dbi[MT_LOCAL], &k, &v);
	if (err == MDB_NOTFOUND || (!err && v.mv_size != 8) ||
	    (!err && rle64(v.mv_data) == 0)) {
		rc = cairn_errf(CAIRN_E_CORRUPT, "image %s: no last LSN", path);
		goto fail;
	}
	if (err) {
		rc = meta_lmdb_err(err, what);
		goto fail;
	}
	im->lsn = rle64(v.mv_data);
	return 0;
fail:
	img_close(im);
	return rc;
}

int meta_image_lsn(const char *path, uint64_t *lsn)
{
	img im;
	int rc = img_open(path, &im);
	if (rc)
		return rc;
	*lsn = im.lsn;
	img_close(&im);
	return 0;
}

static int fsync_parent(const char *path)
{
	char dir[600];
	if (strlen(path) >= sizeof dir)
		return cairn_errf(CAIRN_E_NAMETOOLONG, "path %s too long", path);
	snprintf(dir, sizeof dir, "%s", path);
	char *sl = strrchr(dir, '/');
	if (!sl)
		snprintf(dir, sizeof dir, ".");
	else if (sl == dir)
		dir[1] = 0;
	else
		*sl = 0;
	return meta_fsync_dir(dir);
}

int meta_image_write(cairn_meta *m, const char *path, uint64_t *lsn)
{
	int rc = 0, err;
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0)
		return cairn_errf(errno == EEXIST ? CAIRN_E_EXISTS : cairn_rc_from_errno(errno),
				  "create image %s: %s", path, strerror(errno));
	/* the copy's read transaction takes a reader slot: count it like the
	 * pool's, and hold map_lock shared, which keeps growth out (readers of
	 * the pool are counted in their shards instead, meta_env.c) */
	pthread_mutex_lock(&m->pool_lock);
	int full = m->nslots >= m->opts.max_readers;
	if (!full)
		m->nslots++;
	pthread_mutex_unlock(&m->pool_lock);
	if (full) {
		rc = meta_lmdb_err(MDB_READERS_FULL, "image copy");
		goto fail;
	}
	pthread_rwlock_rdlock(&m->map_lock);
	err = mdb_env_copyfd2(m->env, fd, MDB_CP_COMPACT);
	pthread_rwlock_unlock(&m->map_lock);
	pthread_mutex_lock(&m->pool_lock);
	m->nslots--;
	pthread_mutex_unlock(&m->pool_lock);
	if (err) {
		rc = meta_lmdb_err(err, path);
		goto fail;
	}
	if (fsync(fd) != 0) {
		rc = cairn_errf(cairn_rc_from_errno(errno), "fsync image %s: %s", path,
				strerror(errno));
		goto fail;
	}
	err = close(fd);
	fd = -1;
	if (err) {
		rc = cairn_errf(CAIRN_E_IO, "close image %s: %s", path, strerror(errno));
		goto fail;
	}
	if ((rc = fsync_parent(path)) || (rc = meta_image_lsn(path, lsn)))
		goto fail;
	return 0;
fail:
	if (fd >= 0)
		close(fd);
	if (unlink(path) != 0 && errno != ENOENT)
		CAIRN_WARN("meta", "remove failed image %s: %s", path, strerror(errno));
	return rc;
}

/* Copy src to dst (a new file), fsynced: install across file systems. */
static int copy_file(const char *src, const char *dst)
{
	int rc = 0, in = -1, out = -1;
	char *buf = malloc(1 << 20);
	if (!buf)
		return cairn_errf(CAIRN_E_NOMEM, "copy buffer");
	in = open(src, O_RDONLY | O_CLOEXEC);
	if (in < 0) {
		rc = cairn_errf(cairn_rc_from_errno(errno), "open %s: %s", src, strerror(errno));
		goto out;
	}
	out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (out < 0) {
		rc = cairn_errf(errno == EEXIST ? CAIRN_E_EXISTS : cairn_rc_from_errno(errno),
				"create %s: %s", dst, strerror(errno));
		goto out;
	}
	for (;;) {
		ssize_t n = read(in, buf, 1 << 20);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = cairn_errf(CAIRN_E_IO, "read %s: %s", src, strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		for (ssize_t off = 0; off < n;) {
			ssize_t w = write(out, buf + off, (size_t)(n - off));
			if (w < 0 && errno == EINTR)
				continue;
			if (w < 0) {
				rc = cairn_errf(cairn_rc_from_errno(errno), "write %s: %s", dst,
						strerror(errno));
				goto out;
			}
			off += w;
		}
	}
	if (fsync(out) != 0)
		rc = cairn_errf(cairn_rc_from_errno(errno), "fsync %s: %s", dst, strerror(errno));
out:
	if (out >= 0 && close(out) != 0 && !rc)
		rc = cairn_errf(CAIRN_E_IO, "close %s: %s", dst, strerror(errno));
	if (rc && out >= 0)
		unlink(dst);
	if (in >= 0)
		close(in);
	free(buf);
	return rc;
}

/* In the installed environment: empty the wal table, drop consumer acks. */
static int install_clean(const char *dir, off_t size)
{
	MDB_env *env;
	MDB_txn *txn = NULL;
	MDB_dbi wal, local;
	MDB_cursor *c = NULL;
	int err, rc = 0;
	char what[600];
	snprintf(what, sizeof what, "install image in %s", dir);
	if ((err = mdb_env_create(&env)))
		return meta_lmdb_err(err, what);
	/* room for the copy-on-write pages of the deletes */
	if ((err = mdb_env_set_maxdbs(env, MT_COUNT + 2)) ||
	    (err = mdb_env_set_mapsize(env, (size_t)size * 2 + (64u << 20))) ||
	    (err = mdb_env_open(env, dir, 0, 0644)) ||
	    (err = mdb_txn_begin(env, NULL, 0, &txn)) ||
	    (err = mdb_dbi_open(txn, meta_table_names[MT_WAL], 0, &wal)) ||
	    (err = mdb_dbi_open(txn, meta_table_names[MT_LOCAL], 0, &local)) ||
	    (err = mdb_drop(txn, wal, 0)) ||
	    (err = mdb_cursor_open(txn, local, &c)))
		goto lmdb_fail;
	size_t pl = strlen(CONSUMER_PREFIX);
	MDB_val k = { pl, CONSUMER_PREFIX }, v;
	err = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
	while (!err && k.mv_size >= pl && !memcmp(k.mv_data, CONSUMER_PREFIX, pl)) {
		if ((err = mdb_cursor_del(c, 0)))
			break;
		k.mv_size = pl;
		k.mv_data = CONSUMER_PREFIX;
		err = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
	}
	mdb_cursor_close(c);
	c = NULL;
	if (err && err != MDB_NOTFOUND)
		goto lmdb_fail;
	err = mdb_txn_commit(txn);
	txn = NULL;
	if (err || (err = mdb_env_sync(env, 1)))
		goto lmdb_fail;
	mdb_env_close(env);
	return 0;
lmdb_fail:
	rc = meta_lmdb_err(err, what);
	if (c)
		mdb_cursor_close(c);
	if (txn)
		mdb_txn_abort(txn);
	mdb_env_close(env);
	return rc;
}

int meta_image_install(const char *path, const char *dir)
{
	static const char *const taken[] = { "data.mdb", "meta.synced", "meta.undo.0",
					      "meta.undo.1" };
	char dst[600], tmp[620];
	struct stat st;
	uint64_t lsn;
	int rc, moved = 0;

	if (!dir || strlen(dir) > 512)
		return cairn_errf(CAIRN_E_INVAL, "install directory missing or too long");
	if ((rc = meta_image_lsn(path, &lsn)))
		return rc;
	if (mkdir(dir, 0755) != 0 && errno != EEXIST)
		return cairn_errf(cairn_rc_from_errno(errno), "create %s: %s", dir, strerror(errno));
	for (size_t i = 0; i < sizeof taken / sizeof taken[0]; i++) {
		snprintf(dst, sizeof dst, "%s/%s", dir, taken[i]);
		if (lstat(dst, &st) == 0)
			return cairn_errf(CAIRN_E_EXISTS, "%s already holds a metadata environment (%s)",
					  dir, taken[i]);
	}
	if (stat(path, &st) != 0)
		return cairn_errf(CAIRN_E_IO, "stat %s: %s", path, strerror(errno));
	snprintf(dst, sizeof dst, "%s/data.mdb", dir);
	if (rename(path, dst) == 0) {
		moved = 1;
	} else if (errno == EXDEV) {
		/* another file system: copy under a temporary name, then rename,
		 * so data.mdb never exists half-written */
		snprintf(tmp, sizeof tmp, "%s/data.mdb.install", dir);
		if ((rc = copy_file(path, tmp)))
			return rc;
		if (rename(tmp, dst) != 0) {
			rc = cairn_errf(CAIRN_E_IO, "rename %s: %s", tmp, strerror(errno));
			unlink(tmp);
			return rc;
		}
	} else {
		return cairn_errf(cairn_rc_from_errno(errno), "move %s to %s: %s", path, dst,
				  strerror(errno));
	}
	if ((rc = install_clean(dir, st.st_size)) || (rc = meta_fsync_dir(dir)))
		goto fail;
	if (!moved && unlink(path) != 0)
		CAIRN_WARN("meta", "remove installed image %s: %s", path, strerror(errno));
	return 0;
fail:
	/* give the image back where it was (a copy is simply dropped) */
	if (moved ? rename(dst, path) != 0 : unlink(dst) != 0)
		CAIRN_WARN("meta", "undo install of %s: %s", path, strerror(errno));
	snprintf(tmp, sizeof tmp, "%s/lock.mdb", dir);
	unlink(tmp);
	return cairn_err_wrap(rc, "install image %s in %s", path, dir);
}

/* ---- replica load ---- */

typedef struct load_arg {
	img *im;
} load_arg;

static int load_fail(meta_txn *t, int err, const char *what)
{
	/* changes were made: the batch must be aborted, not committed */
	t->lmdb_err = 1;
	if (err == MDB_MAP_FULL)
		t->map_full = 1;
	return meta_lmdb_err(err, what);
}

static int load_fn(meta_txn *t, void *arg)
{
	load_arg *a = arg;
	img *im = a->im;
	cairn_meta *m = t->m;
	int rc = 0, err;

	t->suppress++;
	for (int tbl = 0; tbl < MT_NREPL && !rc; tbl++) {
		MDB_cursor *c;
		MDB_val k, v;
		if ((err = mdb_drop(t->txn, m->dbi[tbl], 0))) {
			rc = load_fail(t, err, meta_table_names[tbl]);
			break;
		}
		if ((err = mdb_cursor_open(im->txn, im->dbi[tbl], &c))) {
			rc = load_fail(t, err, "image cursor");
			break;
		}
		err = mdb_cursor_get(c, &k, &v, MDB_FIRST);
		while (!err && !(rc = mt_put_append(t, tbl, k.mv_data, k.mv_size, v.mv_data,
						     v.mv_size, 1)))
			err = mdb_cursor_get(c, &k, &v, MDB_NEXT);
		mdb_cursor_close(c);
		if (rc)
			t->lmdb_err = 1;
		else if (err != MDB_NOTFOUND)
			rc = load_fail(t, err, "read image");
	}
	/* the old records no longer lead to the new state: the log restarts
	 * after the image's LSN (invariant 3) */
	if (!rc && (err = mdb_drop(t->txn, m->dbi[MT_WAL], 0)))
		rc = load_fail(t, err, "empty the WAL");
	t->suppress--;
	if (rc)
		return rc;
	__atomic_store_n(&m->wal_first, 0, __ATOMIC_RELAXED);
	t->lsn_set = im->lsn;
	return 0;
}

int meta_replica_load(cairn_meta *m, const char *path)
{
	img im;
	if (!m->opts.replica)
		return cairn_errf(CAIRN_E_INVAL, "metadata in %s is not a replica: an image is "
				  "loaded only into a replica", m->dir);
	int rc = img_open(path, &im);
	if (rc)
		return rc;
	load_arg a = { &im };
	rc = meta_write(m, META_SYNCED, META_OP_OTHER, load_fn, &a, NULL);
	img_close(&im);
	if (rc)
		return cairn_err_wrap(rc, "load image %s into %s", path, m->dir);
	/* an older image moves the last LSN back: so must the durable one
	 * (lower is always safe; the load itself was synced) */
	uint64_t last = __atomic_load_n(&m->last_lsn, __ATOMIC_SEQ_CST);
	if (meta_durable_lsn(m) > last)
		__atomic_store_n(&m->durable_lsn, last, __ATOMIC_SEQ_CST);
	return 0;
}
