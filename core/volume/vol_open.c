/*
 * vol_open.c - the volume directory: format, the config file, the owner
 * lock, open and close.
 *
 * Layout of a volume directory (docs/volume.md):
 *
 *   <dir>/volume.conf   versioned text config: UUID, store URL, compression,
 *                       segment size, writer epoch
 *   <dir>/lock          flock'd by the owner process; holds its pid
 *   <dir>/meta/         the LMDB environment (meta/)
 *   <dir>/staging/      staging and sealed segments, <16 hex id>.seg; an
 *                       uploaded segment's file stays as a local copy
 *   <dir>/cache/        seg_cache: windows of segments fetched from the store
 *   <dir>/store/        the default file:// object store
 *
 * Guarantees:
 *   1. At most one process has a volume open: the lock file is flock'd
 *      before anything else is touched; a second opener gets CAIRN_E_BUSY
 *      naming the pid written in it.
 *   2. Every open writes a new epoch to volume.conf durably (temp file,
 *      fsync, rename, fsync of the directory) before any segment is
 *      created: the config's + 1 and, with log shipping, above every
 *      lease in the store (vol_ship_claim, docs/log-shipping.md), so
 *      the keys of this run (UUID, epoch, seq) never equal keys of an
 *      earlier run, even if the metadata were restored from an old copy.
 *   3. volume.conf is replaced atomically: a crash leaves the old or the
 *      new file, never a torn one.
 *
 * State of a volume handle:
 *
 *   volume_open --> [OPEN] --volume_close--> (freed)
 *   (open_conf_locked, open_uring_store, open_epoch [lease], meta_open,
 *    vol_ship_check, cache, vol_recover, threads, vol_ship_start)
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "vol_int.h"

#define CONF_NAME "volume.conf"
#define CONF_MAGIC "cairn-volume-config"
#define DEF_SEGMENT_SIZE (64ull << 20)

typedef struct vconf {
	int version;
	uint8_t uuid[16];
	char store[1024];
	int zstd_level;
	uint64_t segment_size;
	uint64_t epoch;
	uint8_t instance[16];   /* this directory's id (log shipping leases) */
	int have_instance;      /* 0: an older file; the next open adds it */
} vconf;

int64_t vol_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void vol_seg_path(const cairn_volume *vol, uint64_t seg, char *buf, size_t size)
{
	snprintf(buf, size, "%s/staging/%016" PRIx64 ".seg", vol->dir, seg);
}

static void uuid_fmt(const uint8_t u[16], char out[37])
{
	static const char hx[] = "0123456789abcdef";
	size_t j = 0;
	for (int i = 0; i < 16; i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			out[j++] = '-';
		out[j++] = hx[u[i] >> 4];
		out[j++] = hx[u[i] & 15];
	}
	out[j] = 0;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

static int uuid_parse(const char *s, uint8_t u[16])
{
	size_t j = 0;
	if (strlen(s) != 36)
		return -1;
	for (int i = 0; i < 16; i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10) {
			if (s[j++] != '-')
				return -1;
		}
		int hi = hexval(s[j]), lo = hexval(s[j + 1]);
		if (hi < 0 || lo < 0)
			return -1;
		u[i] = (uint8_t)(hi << 4 | lo);
		j += 2;
	}
	return 0;
}

static int parse_u64(const char *v, uint64_t *out)
{
	char *end;
	if (!*v || *v == '-')
		return -1;
	errno = 0;
	unsigned long long x = strtoull(v, &end, 10);
	if (errno || *end)
		return -1;
	*out = x;
	return 0;
}

static int fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return cairn_errf(CAIRN_E_IO, "open %s: %s", dir, strerror(errno));
	int rc = 0;
	if (fsync(fd) != 0)
		rc = cairn_errf(CAIRN_E_IO, "fsync %s: %s", dir, strerror(errno));
	close(fd);
	return rc;
}

static int conf_write(const char *dir, const vconf *c)
{
	char path[4096], tmp[4096], text[2048], us[37], is[37];
	int fd = -1, rc = 0;
	uuid_fmt(c->uuid, us);
	uuid_fmt(c->instance, is);
	int n = snprintf(text, sizeof text,
			 "# cairn volume configuration (docs/volume.md); "
			 "rewritten at every open\n"
			 "%s %d\nuuid = %s\nstore = %s\nzstd_level = %d\n"
			 "segment_size = %" PRIu64 "\nepoch = %" PRIu64 "\n%s%s%s",
			 CONF_MAGIC, c->version, us, c->store, c->zstd_level,
			 c->segment_size, c->epoch, c->have_instance ? "instance = " : "",
			 c->have_instance ? is : "", c->have_instance ? "\n" : "");
	if (n < 0 || (size_t)n >= sizeof text)
		return cairn_errf(CAIRN_E_RANGE, "volume config too long");
	snprintf(path, sizeof path, "%s/%s", dir, CONF_NAME);
	snprintf(tmp, sizeof tmp, "%s/%s.tmp", dir, CONF_NAME);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return cairn_errf(CAIRN_E_IO, "create %s: %s", tmp, strerror(errno));
	if (write(fd, text, (size_t)n) != n) {
		rc = cairn_errf(CAIRN_E_IO, "write %s: %s", tmp, strerror(errno));
		goto out;
	}
	if (fsync(fd) != 0) {
		rc = cairn_errf(CAIRN_E_IO, "fsync %s: %s", tmp, strerror(errno));
		goto out;
	}
	if (rename(tmp, path) != 0) {
		rc = cairn_errf(CAIRN_E_IO, "rename %s: %s", tmp, strerror(errno));
		goto out;
	}
	rc = fsync_dir(dir);
out:
	close(fd);
	return rc;
}

int vol_conf_text_read(const char *path, char *text, size_t size)
{
	ssize_t got;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? CAIRN_E_NOTFOUND :
			cairn_errf(CAIRN_E_IO, "open %s: %s", path, strerror(errno));
	got = read(fd, text, size - 1);
	close(fd);
	if (got < 0)
		return cairn_errf(CAIRN_E_IO, "read %s: %s", path, strerror(errno));
	if ((size_t)got == size - 1)
		return cairn_errf(CAIRN_E_CORRUPT, "%s: too long", path);
	text[got] = 0;
	return 0;
}

static int conf_read(const char *dir, vconf *c)
{
	char path[4096], text[4096];
	int have_magic = 0, have_uuid = 0, have_store = 0, have_epoch = 0;
	int rc;

	memset(c, 0, sizeof *c);
	snprintf(path, sizeof path, "%s/%s", dir, CONF_NAME);
	rc = vol_conf_text_read(path, text, sizeof text);
	if (rc == CAIRN_E_NOTFOUND)
		return cairn_errf(CAIRN_E_NOTFOUND,
				  "%s is not a cairn volume (no %s; run format first)",
				  dir, CONF_NAME);
	if (rc)
		return rc;
	char *save = NULL;
	int lineno = 0;
	for (char *line = strtok_r(text, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		lineno++;
		if (line[0] == '#' || line[0] == 0)
			continue;
		if (!have_magic) {
			size_t ml = strlen(CONF_MAGIC);
			uint64_t v;
			if (strncmp(line, CONF_MAGIC, ml) != 0 || line[ml] != ' ' ||
			    parse_u64(line + ml + 1, &v))
				return cairn_errf(CAIRN_E_CORRUPT,
						  "%s:%d: not a cairn volume config", path, lineno);
			if (v != CAIRN_VOLUME_CONF_VERSION)
				return cairn_errf(CAIRN_E_VERSION,
						  "%s: config version %" PRIu64
						  " is not supported (this cairn reads version %d)",
						  path, v, CAIRN_VOLUME_CONF_VERSION);
			c->version = (int)v;
			have_magic = 1;
			continue;
		}
		char *eq = strstr(line, " = ");
		if (!eq)
			return cairn_errf(CAIRN_E_CORRUPT, "%s:%d: expected 'key = value'",
					  path, lineno);
		*eq = 0;
		const char *k = line, *v = eq + 3;
		uint64_t x;
		if (!strcmp(k, "uuid")) {
			if (uuid_parse(v, c->uuid))
				return cairn_errf(CAIRN_E_CORRUPT, "%s:%d: bad uuid '%s'",
						  path, lineno, v);
			have_uuid = 1;
		} else if (!strcmp(k, "store")) {
			if (strlen(v) >= sizeof c->store)
				return cairn_errf(CAIRN_E_CORRUPT, "%s:%d: store URL too long",
						  path, lineno);
			snprintf(c->store, sizeof c->store, "%s", v);
			have_store = 1;
		} else if (!strcmp(k, "zstd_level")) {
			long lv;
			char *end;
			errno = 0;
			lv = strtol(v, &end, 10);
			if (errno || *end || !*v || lv < -1 || lv > 22)
				return cairn_errf(CAIRN_E_CORRUPT, "%s:%d: bad zstd_level '%s'",
						  path, lineno, v);
			c->zstd_level = (int)lv;
		} else if (!strcmp(k, "segment_size")) {
			if (parse_u64(v, &x) || x < (1u << 20) || x > (4ull << 30))
				return cairn_errf(CAIRN_E_CORRUPT, "%s:%d: bad segment_size '%s'",
						  path, lineno, v);
			c->segment_size = x;
		} else if (!strcmp(k, "epoch")) {
			if (parse_u64(v, &x))
				return cairn_errf(CAIRN_E_CORRUPT, "%s:%d: bad epoch '%s'",
						  path, lineno, v);
			c->epoch = x;
			have_epoch = 1;
		} else if (!strcmp(k, "instance")) {
			if (uuid_parse(v, c->instance))
				return cairn_errf(CAIRN_E_CORRUPT, "%s:%d: bad instance '%s'",
						  path, lineno, v);
			c->have_instance = 1;
		} else {
			return cairn_errf(CAIRN_E_CORRUPT, "%s:%d: unknown key '%s'",
					  path, lineno, k);
		}
	}
	if (!have_magic || !have_uuid || !have_store || !have_epoch || !c->segment_size)
		return cairn_errf(CAIRN_E_CORRUPT, "%s: incomplete (uuid, store, "
				  "segment_size and epoch are required)", path);
	return 0;
}

/* A random id of this volume directory (docs/log-shipping.md: a lease
 * with our instance is our own). */
static int instance_new(vconf *c)
{
	if (getrandom(c->instance, sizeof c->instance, 0) != (ssize_t)sizeof c->instance)
		return cairn_errf(CAIRN_E_IO, "getrandom: %s", strerror(errno));
	c->instance[6] = (uint8_t)((c->instance[6] & 0x0f) | 0x40);
	c->instance[8] = (uint8_t)((c->instance[8] & 0x3f) | 0x80);
	c->have_instance = 1;
	return 0;
}

static int mkdir_p1(const char *path)
{
	if (mkdir(path, 0755) != 0 && errno != EEXIST)
		return cairn_errf(CAIRN_E_IO, "mkdir %s: %s", path, strerror(errno));
	return 0;
}

int volume_format(const char *dir, const cairn_format_opts *opts)
{
	cairn_format_opts fo = { 0 };
	char path[4096];
	struct stat st;
	cairn_meta *m = NULL;
	vconf c;
	int rc;

	if (!dir || !*dir || strlen(dir) > 3000)
		return cairn_errf(CAIRN_E_INVAL, "format: bad volume directory");
	if (opts)
		fo = *opts;
	memset(&c, 0, sizeof c);
	c.version = CAIRN_VOLUME_CONF_VERSION;
	c.zstd_level = fo.zstd_level < 0 ? -1 : (fo.zstd_level ? fo.zstd_level : 3);
	if (c.zstd_level > 22)
		return cairn_errf(CAIRN_E_INVAL, "format: zstd level %d out of range (1..22)",
				  c.zstd_level);
	c.segment_size = fo.segment_size ? fo.segment_size : DEF_SEGMENT_SIZE;
	if (c.segment_size < (1u << 20) || c.segment_size > (4ull << 30))
		return cairn_errf(CAIRN_E_INVAL,
				  "format: segment size %" PRIu64 " out of range (1 MiB .. 4 GiB)",
				  c.segment_size);
	c.epoch = 0;
	if (fo.store_url) {
		/* Check the store before anything is created: a mistyped URL,
		 * a missing bucket or bad credentials fail here, not at the
		 * first upload. */
		cairn_objstore *os = NULL;
		if ((rc = objstore_open(fo.store_url, NULL, &os)))
			return cairn_err_wrap(rc, "store %s", fo.store_url);
		objstore_close(os);
	}
	if ((rc = mkdir_p1(dir)))
		return rc;
	snprintf(path, sizeof path, "%s/%s", dir, CONF_NAME);
	if (stat(path, &st) == 0)
		return cairn_errf(CAIRN_E_EXISTS, "%s already holds a cairn volume", dir);
	if (fo.store_url) {
		if (strlen(fo.store_url) >= sizeof c.store)
			return cairn_errf(CAIRN_E_INVAL, "format: store URL too long");
		snprintf(c.store, sizeof c.store, "%s", fo.store_url);
	} else {
		char *abs = realpath(dir, NULL);
		if (!abs)
			return cairn_errf(CAIRN_E_IO, "realpath %s: %s", dir, strerror(errno));
		snprintf(c.store, sizeof c.store, "file://%s/store", abs);
		snprintf(path, sizeof path, "%s/store", abs);
		free(abs);
		if ((rc = mkdir_p1(path)))
			return rc;
	}
	if (getrandom(c.uuid, sizeof c.uuid, 0) != (ssize_t)sizeof c.uuid)
		return cairn_errf(CAIRN_E_IO, "getrandom: %s", strerror(errno));
	c.uuid[6] = (uint8_t)((c.uuid[6] & 0x0f) | 0x40);  /* RFC 4122 v4 */
	c.uuid[8] = (uint8_t)((c.uuid[8] & 0x3f) | 0x80);
	if ((rc = instance_new(&c)))
		return rc;
	const char *subs[] = { "meta", "staging", "cache" };
	for (size_t i = 0; i < 3; i++) {
		snprintf(path, sizeof path, "%s/%s", dir, subs[i]);
		if ((rc = mkdir_p1(path)))
			return rc;
	}
	snprintf(path, sizeof path, "%s/meta", dir);
	if ((rc = meta_open(path, NULL, &m)))
		return cairn_err_wrap(rc, "format %s", dir);
	if ((rc = meta_close(m)))
		return cairn_err_wrap(rc, "format %s", dir);
	/* The config is written last: a directory without it is not a volume,
	 * so a crash during format leaves something format can redo. */
	return conf_write(dir, &c);
}

static int lock_take(cairn_volume *vol)
{
	char path[4096], buf[3200];
	int fd;
	snprintf(path, sizeof path, "%s/lock", vol->dir);
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0)
		return cairn_errf(CAIRN_E_IO, "open %s: %s", path, strerror(errno));
	if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
		int e = errno;
		ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
		close(fd);
		if (e != EWOULDBLOCK)
			return cairn_errf(CAIRN_E_IO, "flock %s: %s", path, strerror(e));
		buf[n > 0 ? n : 0] = 0;
		/* "pid\n" or "pid\nnote\n" (volume_set_owner_note) */
		char *note = strchr(buf, '\n');
		if (note) {
			*note++ = 0;
			note[strcspn(note, "\n")] = 0;
		}
		if (note && *note)
			return cairn_errf(CAIRN_E_BUSY, "volume %s is in use by process %s, %s",
					  vol->dir, n > 0 ? buf : "(unknown pid)", note);
		return cairn_errf(CAIRN_E_BUSY, "volume %s is in use by process %s (lock %s)",
				  vol->dir, n > 0 ? buf : "(unknown pid)", path);
	}
	int n = snprintf(buf, sizeof buf, "%ld\n", (long)getpid());
	if (ftruncate(fd, 0) != 0 || pwrite(fd, buf, (size_t)n, 0) != n) {
		int e = errno;
		close(fd);
		return cairn_errf(CAIRN_E_IO, "write %s: %s", path, strerror(e));
	}
	vol->lock_fd = fd;
	return 0;
}

int volume_set_owner_note(cairn_volume *vol, const char *note)
{
	char buf[3200];
	size_t len = note ? strlen(note) : 0;
	int n;

	if (len > 3000 || (note && strchr(note, '\n')))
		return cairn_errf(CAIRN_E_INVAL, "owner note must be one line of at most 3000 bytes");
	n = snprintf(buf, sizeof buf, "%ld\n%s%s", (long)getpid(), note ? note : "",
		     len ? "\n" : "");
	/* Rewritten in place under our flock; a reader racing this sees the
	 * pid with or without the note, both true. */
	if (pwrite(vol->lock_fd, buf, (size_t)n, 0) != n ||
	    ftruncate(vol->lock_fd, n) != 0)
		return cairn_errf(CAIRN_E_IO, "write %s/lock: %s", vol->dir, strerror(errno));
	return 0;
}

static void opts_fill(cairn_volume *vol, const vconf *c)
{
	cairn_volume_opts *o = &vol->o;
	if (!o->segment_size)
		o->segment_size = c->segment_size;
	if (!o->seal_age_ms)
		o->seal_age_ms = 3000;
	if (!o->commit_interval_ms)
		o->commit_interval_ms = 1000;
	if (!o->upload_cap)
		o->upload_cap = 1ull << 30;
	if (o->upload_cap < 2 * o->segment_size)
		o->upload_cap = 2 * o->segment_size;
	if (!o->upload_wait_ms)
		o->upload_wait_ms = 30000;
	if (!o->cache_size)
		o->cache_size = 1ull << 30;
	if (!o->local_keep)
		o->local_keep = 1ull << 30;
	if (!o->read_window)
		o->read_window = 4u << 20;
	if (!o->inode_dirty_max)
		o->inode_dirty_max = 8u << 20;
	if (!o->pending_max)
		o->pending_max = 32u << 20;
	if (!o->stream_threshold)
		o->stream_threshold = 16u << 20;
	if (!o->stream_part_size)
		o->stream_part_size = 16u << 20;
	if (!o->stream_inflight)
		o->stream_inflight = 8;
	if (o->stream_inflight > 64)
		o->stream_inflight = 64;
	if (!o->stream_chunk_avg)
		o->stream_chunk_avg = 4u << 20;
	if (!o->stream_commit_bytes)
		o->stream_commit_bytes = 256u << 20;
	if (!o->stream_readahead)
		o->stream_readahead = 8;
	if (o->stream_readahead > 64)
		o->stream_readahead = 64;
	if (!o->readahead_mem)
		o->readahead_mem = 1ull << 30;
	if (o->readahead_mem < (64ull << 20))
		o->readahead_mem = 64ull << 20;
	if (!o->gc_grace_ms)
		o->gc_grace_ms = 3600 * 1000;
	else if (o->gc_grace_ms < 0)
		o->gc_grace_ms = 0;
	/* Copies of parts kept for sending (vol_stream.c): the parts in
	 * flight and two more, at most VOL_PART_MEM. */
	vol->pm_cap = o->stream_part_size * (o->stream_inflight + 2);
	if (vol->pm_cap > VOL_PART_MEM)
		vol->pm_cap = VOL_PART_MEM;
}

/* Uploads the uploader could not finish (open failed, or close with
 * segments still queued): their in-memory state goes; the next open's
 * recovery aborts them and uploads the segments again. */
static void vol_jobs_free(cairn_volume *vol)
{
	for (size_t i = 0; i < vol->nq; i++) {
		vol_mpu_free(vol->q[i].job);
		vol->q[i].job = NULL;
	}
}

static void vol_free(cairn_volume *vol)
{
	vol_ship_free(vol);
	if (vol->cache)
		seg_cache_close(vol->cache);
	if (vol->own_os)
		objstore_close(vol->os);
	if (vol->meta) {
		if (meta_close(vol->meta))
			CAIRN_WARN(VOL_MOD, "close metadata of %s: %s", vol->dir, cairn_errmsg());
	}
	if (vol->own_u)
		uring_close(vol->u);
	if (vol->lock_fd >= 0)
		close(vol->lock_fd);  /* releases the flock */
	pthread_mutex_destroy(&vol->it_mu);
	pthread_mutex_destroy(&vol->st_mu);
	pthread_mutex_destroy(&vol->up_mu);
	pthread_mutex_destroy(&vol->rd_mu);
	pthread_mutex_destroy(&vol->gc_mu);
	pthread_mutex_destroy(&vol->gc_wmu);
	pthread_cond_destroy(&vol->gc_cv);
	pthread_cond_destroy(&vol->up_cv);
	pthread_cond_destroy(&vol->done_cv);
	free(vol->itab);
	free(vol->pend);
	free(vol->prune);
	free(vol->q);
	free(vol->kept);
	free(vol->dir);
	free(vol);
}

int vol_alloc(const char *dir, size_t ibuckets, const char *what, cairn_volume **out)
{
	cairn_volume *vol;

	*out = NULL;
	vol = calloc(1, sizeof *vol);
	if (!vol)
		return cairn_errf(CAIRN_E_NOMEM, "%s %s", what, dir);
	/* vol_free takes down what is set up here */
	vol->lock_fd = -1;
	pthread_mutex_init(&vol->it_mu, NULL);
	pthread_mutex_init(&vol->st_mu, NULL);
	pthread_mutex_init(&vol->up_mu, NULL);
	pthread_mutex_init(&vol->rd_mu, NULL);
	pthread_mutex_init(&vol->gc_mu, NULL);
	pthread_mutex_init(&vol->gc_wmu, NULL);
	pthread_cond_init(&vol->gc_cv, NULL);
	pthread_cond_init(&vol->up_cv, NULL);
	pthread_cond_init(&vol->done_cv, NULL);
	vol->dir = strdup(dir);
	vol->ibuckets = ibuckets;
	vol->itab = calloc(vol->ibuckets, sizeof *vol->itab);
	if (!vol->dir || !vol->itab) {
		vol_free(vol);
		return cairn_errf(CAIRN_E_NOMEM, "%s %s", what, dir);
	}
	*out = vol;
	return 0;
}

void vol_vinodes_free(cairn_volume *vol)
{
	pthread_mutex_lock(&vol->it_mu);
	for (size_t b = 0; b < vol->ibuckets; b++) {
		vinode *vi = vol->itab[b];
		while (vi) {
			vinode *nx = vi->hnext;
			vbuf *x = vi->head;
			vol_stream_free(vol, vi);  /* left by a failure */
			vol_ra_free(vol, vi);
			while (x) {
				vbuf *n = x->next;
				free(x->data);
				free(x);
				x = n;
			}
			pthread_rwlock_destroy(&vi->lk);
			free(vi);
			vi = nx;
		}
		vol->itab[b] = NULL;
	}
	pthread_mutex_unlock(&vol->it_mu);
}

/* volume_open, step 1: the config, the owner lock, the config again under
 * the lock (the previous owner may have bumped the epoch), the instance id
 * (added to an older config by open_epoch's write). */
static int open_conf_locked(cairn_volume *vol, vconf *c)
{
	int rc;
	/* The config check comes before the lock so that a wrong directory
	 * is never given a lock file. */
	if ((rc = conf_read(vol->dir, c)))
		return rc;
	if ((rc = lock_take(vol)))
		return rc;
	if ((rc = conf_read(vol->dir, c)))
		return rc;
	if (!c->have_instance && (rc = instance_new(c)))
		return rc;
	memcpy(vol->uuid, c->uuid, 16);
	memcpy(vol->instance, c->instance, 16);
	vol->conf_segment_size = c->segment_size;
	vol->zstd_level = c->zstd_level;
	snprintf(vol->store_url, sizeof vol->store_url, "%s", c->store);
	opts_fill(vol, c);
	return 0;
}

int vol_open_uring_store(cairn_volume *vol, const char *store_url, const char *store_ctx)
{
	int rc;
	if (vol->o.uring) {
		vol->u = vol->o.uring;
	} else {
		if ((rc = uring_open(NULL, &vol->u)))
			return rc;
		vol->own_u = 1;
	}
	if (vol->o.store) {
		vol->os = vol->o.store;
	} else {
		cairn_objstore_opts so = { 0 };
		so.uring = vol->u;
		if ((rc = objstore_open(store_url, &so, &vol->os)))
			return cairn_err_wrap(rc, "%s", store_ctx);
		vol->own_os = 1;
	}
	return 0;
}

/* Step 2: the io_uring and the object store (the caller's, or our own). */
static int open_uring_store(cairn_volume *vol, const vconf *c)
{
	char ctx[3200];
	snprintf(ctx, sizeof ctx, "open store of volume %s", vol->dir);
	return vol_open_uring_store(vol, c->store, ctx);
}

/* Step 3: this run's epoch: above volume.conf's and (shipping) every
 * lease in the store, whose lease it claims; written durably. */
static int open_epoch(cairn_volume *vol, vconf *c)
{
	uint64_t e = c->epoch + 1;
	int rc;
	if ((rc = vol_ship_claim(vol, c->epoch, &e)))
		return rc;
	c->epoch = e;
	if ((rc = conf_write(vol->dir, c)))
		return rc;
	vol->epoch = e;
	vol->st.epoch = e;
	return 0;
}

int volume_open(const char *dir, const cairn_volume_opts *opts,
		cairn_volume **out)
{
	cairn_volume *vol;
	char path[4096];
	vconf c;
	int rc;

	*out = NULL;
	if (!dir || !*dir || strlen(dir) > 3000)
		return cairn_errf(CAIRN_E_INVAL, "open: bad volume directory");
	if ((rc = vol_alloc(dir, 4096, "open volume", &vol)))
		return rc;
	if (opts)
		vol->o = *opts;
	if (vol->o.durability != CAIRN_DUR_LOCAL && vol->o.durability != CAIRN_DUR_REMOTE) {
		rc = cairn_errf(CAIRN_E_INVAL, "open %s: unknown durability %d", dir,
				vol->o.durability);
		goto fail;
	}
	if ((rc = open_conf_locked(vol, &c)))
		goto fail;
	if ((rc = open_uring_store(vol, &c)))
		goto fail;
	/* The store before the epoch: the epoch must be above every lease in
	 * the store (docs/log-shipping.md), and is durable in volume.conf
	 * before anything uses it. */
	if ((rc = open_epoch(vol, &c)))
		goto fail;
	snprintf(path, sizeof path, "%s/meta", dir);
	if ((rc = meta_open(path, NULL, &vol->meta))) {
		rc = cairn_err_wrap(rc, "open metadata of volume %s", dir);
		goto fail;
	}
	if ((rc = vol_ship_check(vol)))
		goto fail;
	snprintf(path, sizeof path, "%s/cache", dir);
	if ((rc = seg_cache_open(vol->u, path, vol->o.cache_size, &vol->cache)))
		goto fail;
	snprintf(path, sizeof path, "%s/staging", dir);
	if ((rc = mkdir_p1(path)))
		goto fail;
	vol->gen = 1;
	if ((rc = vol_recover(vol))) {
		rc = cairn_err_wrap(rc, "recover volume %s", dir);
		goto fail;
	}
	if ((rc = vol_threads_start(vol)))
		goto fail;
	if ((rc = vol_gc_start(vol))) {
		vol_threads_stop(vol);
		goto fail;
	}
	if ((rc = vol_ship_start(vol))) {
		vol_gc_stop(vol);
		vol_threads_stop(vol);
		goto fail;
	}
	CAIRN_INFO(VOL_MOD, "volume %s open (epoch %" PRIu64 ", store %s)", dir,
		   vol->epoch, objstore_url(vol->os));
	*out = vol;
	return 0;
fail:
	vol_readers_close(vol);
	vol_jobs_free(vol);
	vol_free(vol);
	return rc;
}

int volume_close(cairn_volume *vol)
{
	int rc = 0, r;
	if (!vol)
		return 0;
	if (vol->fl)
		return vol_follow_close(vol);
	/* A gc pass in progress is cut short (what it leaves, the next pass
	 * reclaims) before anything it uses is torn down. */
	vol_gc_stop(vol);
	/* Whatever is buffered becomes a committed, sealed segment; the
	 * uploader then gets one pass, and what it cannot upload now is
	 * uploaded by the next open's recovery. */
	r = vol_sync_all(vol, 0);
	if (r) {
		CAIRN_WARN(VOL_MOD, "close %s: commit: %s", vol->dir, cairn_errmsg());
		rc = r;
	}
	r = vol_seal(vol);
	if (r && !rc) {
		CAIRN_WARN(VOL_MOD, "close %s: seal: %s", vol->dir, cairn_errmsg());
		rc = r;
	}
	vol_threads_stop(vol);
	vol_ship_stop(vol);
	vol_prune_queued(vol);
	vol_vinodes_free(vol);
	pthread_mutex_lock(&vol->st_mu);
	if (vol->w) {
		seg_writer_close(vol->w);
		vol->w = NULL;
	}
	pthread_mutex_unlock(&vol->st_mu);
	vol_readers_close(vol);
	vol_jobs_free(vol);
	vol_free(vol);
	return rc;
}

void volume_uuid(const cairn_volume *vol, char out[37])
{
	uuid_fmt(vol->uuid, out);
}

void volume_stats(cairn_volume *vol, cairn_volume_stats *out)
{
	cairn_volume_stats *s = &vol->st;
	memset(out, 0, sizeof *out);
	pthread_mutex_lock(&vol->up_mu);
	out->epoch = vol->epoch;
	out->segments_sealed = __atomic_load_n(&s->segments_sealed, __ATOMIC_RELAXED);
	out->segments_uploaded = s->segments_uploaded;
	out->upload_failures = s->upload_failures;
	out->commits = __atomic_load_n(&s->commits, __ATOMIC_RELAXED);
	out->chunks_staged = __atomic_load_n(&s->chunks_staged, __ATOMIC_RELAXED);
	out->reads_local = __atomic_load_n(&s->reads_local, __ATOMIC_RELAXED);
	out->reads_store = __atomic_load_n(&s->reads_store, __ATOMIC_RELAXED);
	out->unuploaded_bytes = vol->q_bytes + __atomic_load_n(&vol->cur_size, __ATOMIC_RELAXED);
	out->upload_queue = vol->nq;
	out->unuploaded_bytes += __atomic_load_n(&vol->sp_bytes, __ATOMIC_RELAXED);
	out->streams = __atomic_load_n(&s->streams, __ATOMIC_RELAXED);
	out->stream_parts = __atomic_load_n(&s->stream_parts, __ATOMIC_RELAXED);
	out->stream_part_digests = __atomic_load_n(&s->stream_part_digests, __ATOMIC_RELAXED);
	out->stream_parts_mem = __atomic_load_n(&s->stream_parts_mem, __ATOMIC_RELAXED);
	out->stream_part_retries = __atomic_load_n(&s->stream_part_retries, __ATOMIC_RELAXED);
	out->reads_parallel = __atomic_load_n(&s->reads_parallel, __ATOMIC_RELAXED);
	out->reads_demand = __atomic_load_n(&s->reads_demand, __ATOMIC_RELAXED);
	out->read_chunk_bytes = __atomic_load_n(&s->read_chunk_bytes, __ATOMIC_RELAXED);
	out->read_nocopy_bytes = __atomic_load_n(&s->read_nocopy_bytes, __ATOMIC_RELAXED);
	out->readahead_bytes = __atomic_load_n(&s->readahead_bytes, __ATOMIC_RELAXED);
	out->readahead_refused = __atomic_load_n(&s->readahead_refused, __ATOMIC_RELAXED);
	out->uploads_active = vol->up_active;
	out->uploads_active_max = vol->up_active_max;
	pthread_mutex_unlock(&vol->up_mu);
	vol_ship_stats(vol, out);
	vol_follow_stats(vol, out);
}

/* ---- pieces for vol_rebuild.c and vol_follow.c (vol_int.h) ---- */

void vol_uuid_fmt(const uint8_t u[16], char out[37])
{
	uuid_fmt(u, out);
}

int vol_uuid_parse(const char *s, uint8_t u[16])
{
	return uuid_parse(s, u);
}

int vol_mkdir(const char *path)
{
	return mkdir_p1(path);
}

int vol_fsync_dir(const char *dir)
{
	return fsync_dir(dir);
}

int vol_conf_create(const char *dir, const uint8_t uuid[16], const char *store,
		    int zstd_level, uint64_t segment_size, uint64_t epoch,
		    const uint8_t instance[16])
{
	vconf c;
	memset(&c, 0, sizeof c);
	if (instance) {
		memcpy(c.instance, instance, 16);
		c.have_instance = 1;
	}
	c.version = CAIRN_VOLUME_CONF_VERSION;
	memcpy(c.uuid, uuid, 16);
	if (strlen(store) >= sizeof c.store)
		return cairn_errf(CAIRN_E_INVAL, "store URL too long");
	snprintf(c.store, sizeof c.store, "%s", store);
	c.zstd_level = zstd_level;
	c.segment_size = segment_size;
	c.epoch = epoch;
	return conf_write(dir, &c);
}

int vol_conf_epoch(const char *dir, uint64_t *epoch)
{
	vconf c;
	int rc = conf_read(dir, &c);
	if (!rc)
		*epoch = c.epoch;
	return rc;
}

int vol_lock(cairn_volume *vol)
{
	return lock_take(vol);
}

void vol_destroy(cairn_volume *vol)
{
	vol_free(vol);
}

/* Defaults of every option left zero, for a volume of this segment size. */
void vol_opts_defaults(cairn_volume *vol, uint64_t segment_size)
{
	vconf c;
	memset(&c, 0, sizeof c);
	c.segment_size = segment_size;
	opts_fill(vol, &c);
}
