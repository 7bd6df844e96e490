/*
 * vol_follow.c - read-only followers (volume_open_follower, `cairn mount
 * --follow`): a replica of a volume's metadata in a directory of its own,
 * kept up to date from the log the writer ships to the store
 * (docs/log-shipping.md "Followers").  Data is read from the store through
 * the normal read path and cache (vol_file.c, vol_stage.c): a follower
 * uploads nothing, stages nothing, runs no gc, holds no lease and never
 * takes an epoch.
 *
 * Directory of a follower:
 *   <dir>/follow.conf   "cairn-follower 1", uuid and store URL (a follower
 *                       directory never holds volume.conf: it is not a
 *                       writer volume, and a writer's is refused)
 *   <dir>/lock          the owner lock (as a volume's)
 *   <dir>/meta/         the replica environment (meta_open opts.replica)
 *   <dir>/cache/        windows of segments read from the store
 *
 * The tailer thread, every follow_poll_ms (or at once when a read found a
 * segment gone):
 *
 *   GET meta/wal/<applied+1> --found--> verify all, apply each record
 *        |                              (meta_logobj_decode, meta_wal_apply)
 *        | not found                    then again
 *        v
 *   [at the end of the log: lag 0]
 *        | (after a re-sync, at the start, every 30 idle polls:)
 *        v
 *   list meta/wal/: an object starting before applied+1 holds it -> apply
 *                   later objects only (ours was trimmed) -> re-sync
 *   lag > follow_max_lag_ms and a newer image -> re-sync
 *   re-sync: the newest image -> meta_replica_load (one write transaction)
 *
 * Guarantees:
 *   1. Readers see whole transactions only: each record is applied in one
 *      LMDB transaction (a snapshot or a checkpoint's publication is one
 *      record), and a re-sync swaps the whole namespace in one.
 *   2. A log object is verified whole before any of its records is
 *      applied; a bad one is logged (at most once a minute) and retried at
 *      every poll, never applied in part.  (Records of one object are
 *      applied one transaction each: a chunk may show a few records before
 *      its segment's UPLOADED put, so a follower reads segments from the
 *      store whatever their state, vol_stage.c vol_chunk_read.)
 *   3. Nothing is written to the store, and every public call that would
 *      change the volume fails with CAIRN_E_ROFS (VOL_RO_CHECK).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "vol_int.h"

#define FOLLOW_CONF "follow.conf"
#define FOLLOW_MAGIC "cairn-follower"
#define LOGOBJ_MAX (64ull << 20)
#define LOCATE_EVERY 30      /* idle polls between listings of meta/wal/ */

typedef struct vfollow {
	char vpfx[64];
	pthread_mutex_t mu;
	pthread_cond_t cv;
	pthread_t thr;
	int thr_on;
	int stop, kick;          /* under mu */
	uint64_t applied;        /* atomic: last LSN applied */
	uint64_t objects, resyncs, image_lsn; /* atomic */
	int64_t end_ms;          /* atomic: last time the end of the log was
				    seen (monotonic ms) */
	int need_locate;         /* tailer only */
	uint64_t nogain_first, nogain_at; /* tailer only: the object starting
				    at nogain_first holds nothing after LSN
				    nogain_at (not fetched again) */
	unsigned idle;           /* tailer only */
	int64_t warned_ms;       /* tailer only: rate of repeated warnings */
} vfollow;

int vol_follow_rofs(cairn_volume *vol, const char *what)
{
	return cairn_errf(CAIRN_E_ROFS, "%s: volume %s is a read-only follower of %s",
			  what, vol->dir, vol->store_url);
}

static void follow_wake(vfollow *fl)
{
	pthread_mutex_lock(&fl->mu);
	fl->kick = 1;
	pthread_cond_broadcast(&fl->cv);
	pthread_mutex_unlock(&fl->mu);
}

int vol_follow_read_error(cairn_volume *vol, int rc)
{
	vfollow *fl = vol->fl;
	if (rc != CAIRN_E_NOTFOUND)
		return rc;
	char msg[768];
	snprintf(msg, sizeof msg, "%s", cairn_errmsg());
	follow_wake(fl);
	CAIRN_ERROR(VOL_MOD, "follower %s: %s: the writer's gc deleted data this follower "
		    "(at LSN %" PRIu64 ") still points at; catching up", vol->dir, msg,
		    __atomic_load_n(&fl->applied, __ATOMIC_RELAXED));
	return cairn_errf(CAIRN_E_IO, "%s: the follower is behind the writer's gc (at LSN "
			  "%" PRIu64 "); it is catching up, retry", msg,
			  __atomic_load_n(&fl->applied, __ATOMIC_RELAXED));
}

void vol_follow_stats(cairn_volume *vol, cairn_volume_stats *out)
{
	vfollow *fl = vol->fl;
	if (!fl)
		return;
	out->follower = 1;
	out->epoch = 0;
	out->last_lsn = __atomic_load_n(&fl->applied, __ATOMIC_RELAXED);
	out->shipped_lsn = out->last_lsn;
	out->image_lsn = __atomic_load_n(&fl->image_lsn, __ATOMIC_RELAXED);
	out->follow_applied_objects = __atomic_load_n(&fl->objects, __ATOMIC_RELAXED);
	out->follow_resyncs = __atomic_load_n(&fl->resyncs, __ATOMIC_RELAXED);
	int64_t lag = vol_now_ms() - __atomic_load_n(&fl->end_ms, __ATOMIC_RELAXED);
	out->follow_lag_ms = lag > 0 ? (uint64_t)lag : 0;
}

/* ---- follow.conf ---- */

static int fconf_read(const char *dir, uint8_t uuid[16], char *store, size_t store_size)
{
	char path[4200], text[2048];
	int have_magic = 0, have_uuid = 0, have_store = 0, rc;

	snprintf(path, sizeof path, "%s/%s", dir, FOLLOW_CONF);
	if ((rc = vol_conf_text_read(path, text, sizeof text)))
		return rc;
	char *save = NULL;
	for (char *ln = strtok_r(text, "\n", &save); ln; ln = strtok_r(NULL, "\n", &save)) {
		if (!ln[0] || ln[0] == '#')
			continue;
		if (!have_magic) {
			if (strcmp(ln, FOLLOW_MAGIC " 1") != 0)
				return cairn_errf(strncmp(ln, FOLLOW_MAGIC " ", sizeof FOLLOW_MAGIC) ?
						  CAIRN_E_CORRUPT : CAIRN_E_VERSION,
						  "%s: not a version 1 follower config", path);
			have_magic = 1;
			continue;
		}
		char *eq = strstr(ln, " = ");
		if (!eq)
			return cairn_errf(CAIRN_E_CORRUPT, "%s: expected 'key = value'", path);
		*eq = 0;
		if (!strcmp(ln, "uuid") && !vol_uuid_parse(eq + 3, uuid)) {
			have_uuid = 1;
		} else if (!strcmp(ln, "store") && strlen(eq + 3) < store_size) {
			snprintf(store, store_size, "%s", eq + 3);
			have_store = 1;
		} else {
			return cairn_errf(CAIRN_E_CORRUPT, "%s: bad line '%s'", path, ln);
		}
	}
	if (!have_magic || !have_uuid || !have_store)
		return cairn_errf(CAIRN_E_CORRUPT, "%s: incomplete (uuid and store are "
				  "required)", path);
	return 0;
}

static int fconf_write(const char *dir, const uint8_t uuid[16], const char *store)
{
	char path[4200], tmp[4200], text[1400], us[37];
	int fd, rc = 0;
	vol_uuid_fmt(uuid, us);
	int n = snprintf(text, sizeof text, "# cairn follower (docs/log-shipping.md)\n"
			 FOLLOW_MAGIC " 1\nuuid = %s\nstore = %s\n", us, store);
	if (n < 0 || (size_t)n >= sizeof text)
		return cairn_errf(CAIRN_E_RANGE, "follower config too long");
	snprintf(path, sizeof path, "%s/%s", dir, FOLLOW_CONF);
	snprintf(tmp, sizeof tmp, "%s.tmp", path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return cairn_errf(CAIRN_E_IO, "create %s: %s", tmp, strerror(errno));
	if (write(fd, text, (size_t)n) != n || fsync(fd) != 0)
		rc = cairn_errf(CAIRN_E_IO, "write %s: %s", tmp, strerror(errno));
	close(fd);
	if (!rc && rename(tmp, path) != 0)
		rc = cairn_errf(CAIRN_E_IO, "rename %s: %s", tmp, strerror(errno));
	if (!rc)
		rc = vol_fsync_dir(dir);
	return rc;
}

/* ---- the tailer ---- */

/* Open files' sizes come from the metadata: after records changed it,
 * refresh them (a follower's vinodes never hold data). */
static void refresh_vinodes(cairn_volume *vol)
{
	vinode **list = NULL;
	size_t n = 0, cap = 0;

	pthread_mutex_lock(&vol->it_mu);
	for (size_t b = 0; b < vol->ibuckets; b++) {
		for (vinode *vi = vol->itab[b]; vi; vi = vi->hnext) {
			if (n == cap) {
				size_t nc = cap ? cap * 2 : 32;
				vinode **nl = realloc(list, nc * sizeof *nl);
				if (!nl)
					goto done;  /* sizes refresh at the next object */
				list = nl;
				cap = nc;
			}
			vi->pins++;
			list[n++] = vi;
		}
	}
done:
	pthread_mutex_unlock(&vol->it_mu);
	for (size_t i = 0; i < n; i++) {
		meta_txn *t;
		meta_attr a;
		if (meta_read_begin(vol->meta, &t) == 0) {
			int rc = meta_getattr(t, list[i]->ino, &a);
			meta_read_end(t);
			if (!rc) {
				pthread_rwlock_wrlock(&list[i]->lk);
				list[i]->size = a.size;
				pthread_rwlock_unlock(&list[i]->lk);
			}
		}
		cairn_err_clear();
		vol_vinode_unpin(vol, list[i]);
	}
	free(list);
}

/* Replace the replica by the newest image (newer than what is applied). */
static int resync(cairn_volume *vol, const char *why)
{
	vfollow *fl = vol->fl;
	char path[4200];
	vshipped_img im;
	uint64_t applied = __atomic_load_n(&fl->applied, __ATOMIC_RELAXED);
	int rc;

	snprintf(path, sizeof path, "%s/image.tmp", vol->dir);
	unlink(path);
	if ((rc = vol_shipped_image(vol->os, fl->vpfx, applied, path, &im)))
		return rc;
	rc = meta_replica_load(vol->meta, path);
	unlink(path);
	if (rc)
		return cairn_err_wrap(rc, "load image at LSN %" PRIu64, im.lsn);
	CAIRN_INFO(VOL_MOD, "follower %s re-synced from the image at LSN %" PRIu64
		   " (was at %" PRIu64 ": %s)", vol->dir, im.lsn, applied, why);
	__atomic_store_n(&fl->applied, im.lsn, __ATOMIC_RELAXED);
	__atomic_store_n(&fl->image_lsn, im.lsn, __ATOMIC_RELAXED);
	__atomic_add_fetch(&fl->resyncs, 1, __ATOMIC_RELAXED);
	fl->need_locate = 1;
	refresh_vinodes(vol);
	return 0;
}

/* Apply the object under key; *progress tells whether LSNs moved on. */
static int apply_key(cairn_volume *vol, const char *key, int *progress)
{
	vfollow *fl = vol->fl;
	uint8_t *buf = NULL;
	size_t len;
	uint64_t applied = __atomic_load_n(&fl->applied, __ATOMIC_RELAXED), before = applied;
	int rc;

	*progress = 0;
	if ((rc = vol_shipped_get(vol->os, key, LOGOBJ_MAX, &buf, &len)))
		return rc;
	rc = vol_shipped_apply(vol->meta, key, buf, len, &applied, NULL, NULL);
	free(buf);
	/* records applied before a failure are whole transactions: keep them */
	__atomic_store_n(&fl->applied, applied, __ATOMIC_RELAXED);
	if (applied > before) {
		*progress = 1;
		__atomic_add_fetch(&fl->objects, 1, __ATOMIC_RELAXED);
		refresh_vinodes(vol);
	}
	return rc;
}

/* meta/wal/<applied+1> is not there: is that the end of the log, an
 * object that began earlier, or a log trimmed under us?  *progress when
 * something was applied. */
static int locate(cairn_volume *vol, int *progress)
{
	vfollow *fl = vol->fl;
	uint64_t *firsts = NULL, applied = __atomic_load_n(&fl->applied, __ATOMIC_RELAXED);
	size_t n = 0, i;
	char key[CAIRN_KEY_MAX];
	int rc;

	*progress = 0;
	if ((rc = vol_shipped_log_list(vol->os, fl->vpfx, &firsts, &n)))
		return rc;
	for (i = 0; i < n && firsts[i] <= applied + 1; i++)
		;
	/* firsts[0..i) start at or before applied+1: the last of them may
	 * hold applied+1 (the image fell inside it, or it was shipped since
	 * our GET) */
	if (i > 0 && !(fl->nogain_first == firsts[i - 1] && fl->nogain_at == applied)) {
		snprintf(key, sizeof key, "%smeta/wal/%016" PRIx64, fl->vpfx, firsts[i - 1]);
		rc = apply_key(vol, key, progress);
		if (rc == CAIRN_E_NOTFOUND) {  /* trimmed since the listing */
			cairn_err_clear();
			rc = 0;
		}
		if (rc || *progress)
			goto out;
		fl->nogain_first = firsts[i - 1];
		fl->nogain_at = applied;
	}
	if (i < n) {
		/* later objects exist but none holds applied+1 */
		uint64_t newest = 0;
		if ((rc = vol_shipped_image_newest(vol->os, fl->vpfx, &newest)))
			goto out;
		if (newest > applied) {
			rc = resync(vol, "the log it needed was trimmed");
			*progress = !rc;
		} else {
			rc = cairn_errf(CAIRN_E_CORRUPT, "the log has a gap: no object holds LSN "
					"%" PRIu64 " (%smeta/wal/%016" PRIx64 " is missing) but "
					"%smeta/wal/%016" PRIx64 " exists", applied + 1, fl->vpfx,
					applied + 1, fl->vpfx, firsts[i]);
		}
	}
out:
	free(firsts);
	return rc;
}

/* One round: apply every object there is, then look where we are. */
static int follow_round(cairn_volume *vol)
{
	vfollow *fl = vol->fl;
	char key[CAIRN_KEY_MAX];
	int rc = 0, progress;

	for (;;) {
		if (__atomic_load_n(&fl->stop, __ATOMIC_RELAXED))
			return 0;
		uint64_t applied = __atomic_load_n(&fl->applied, __ATOMIC_RELAXED);
		int64_t lag = vol_now_ms() - __atomic_load_n(&fl->end_ms, __ATOMIC_RELAXED);
		if (lag > (int64_t)vol->o.follow_max_lag_ms) {
			uint64_t newest = 0;
			if ((rc = vol_shipped_image_newest(vol->os, fl->vpfx, &newest)))
				return rc;
			if (newest > applied) {
				char why[96];
				snprintf(why, sizeof why, "%" PRId64 " ms behind", lag);
				if ((rc = resync(vol, why)))
					return rc;
				continue;
			}
		}
		snprintf(key, sizeof key, "%smeta/wal/%016" PRIx64, fl->vpfx, applied + 1);
		rc = apply_key(vol, key, &progress);
		if (!rc) {
			fl->idle = 0;
			continue;
		}
		if (rc != CAIRN_E_NOTFOUND)
			return rc;
		cairn_err_clear();
		if (fl->need_locate || ++fl->idle % LOCATE_EVERY == 0) {
			fl->need_locate = 0;
			if ((rc = locate(vol, &progress)))
				return rc;
			if (progress)
				continue;
		}
		__atomic_store_n(&fl->end_ms, vol_now_ms(), __ATOMIC_RELAXED);
		return 0;
	}
}

static void *follow_main(void *arg)
{
	cairn_volume *vol = arg;
	vfollow *fl = vol->fl;

	for (;;) {
		pthread_mutex_lock(&fl->mu);
		if (!fl->stop && !fl->kick) {
			struct timespec ts;
			clock_gettime(CLOCK_MONOTONIC, &ts);
			uint64_t ns = (uint64_t)ts.tv_nsec +
				(uint64_t)vol->o.follow_poll_ms * 1000000ull;
			ts.tv_sec += (time_t)(ns / 1000000000ull);
			ts.tv_nsec = (long)(ns % 1000000000ull);
			pthread_cond_timedwait(&fl->cv, &fl->mu, &ts);
		}
		int stop = fl->stop;
		fl->kick = 0;
		pthread_mutex_unlock(&fl->mu);
		if (stop)
			break;
		if (follow_round(vol)) {
			/* The store failing, or a bad object: retried at the next
			 * poll; said once a minute at most. */
			int64_t now = vol_now_ms();
			if (now - fl->warned_ms >= 60000) {
				fl->warned_ms = now;
				CAIRN_WARN(VOL_MOD, "follower %s at LSN %" PRIu64 ": %s", vol->dir,
					   __atomic_load_n(&fl->applied, __ATOMIC_RELAXED),
					   cairn_errmsg());
			}
			cairn_err_clear();
		}
	}
	return NULL;
}

/* ---- open and close ---- */

static void follow_free(cairn_volume *vol)
{
	vfollow *fl = vol->fl;
	if (!fl)
		return;
	if (fl->thr_on) {
		pthread_mutex_lock(&fl->mu);
		fl->stop = 1;
		pthread_cond_broadcast(&fl->cv);
		pthread_mutex_unlock(&fl->mu);
		pthread_join(fl->thr, NULL);
		fl->thr_on = 0;
	}
	pthread_mutex_destroy(&fl->mu);
	pthread_cond_destroy(&fl->cv);
	free(fl);
	vol->fl = NULL;
}

int volume_open_follower(const char *dir, const char *store_url,
			 const cairn_volume_opts *opts, cairn_volume **out)
{
	cairn_volume *vol = NULL;
	vfollow *fl = NULL;
	vshipped_vol sv;
	char path[4200], cstore[1024], uuid[37];
	uint8_t ub[16];
	struct stat st;
	int rc, have_conf;

	*out = NULL;
	if (!dir || !*dir || strlen(dir) > 3000)
		return cairn_errf(CAIRN_E_INVAL, "follow: bad directory");
	if (!store_url || !*store_url || strlen(store_url) >= sizeof vol->store_url)
		return cairn_errf(CAIRN_E_INVAL, "follow: a store URL is needed");
	snprintf(path, sizeof path, "%s/volume.conf", dir);
	if (stat(path, &st) == 0)
		return cairn_errf(CAIRN_E_INVAL, "follow: %s holds a writer volume; a follower "
				  "needs a directory of its own", dir);
	if (!(opts && opts->store) && strncmp(store_url, "file://", 7) == 0 &&
	    stat(store_url + 7, &st) != 0)
		/* file:// creates a missing directory: never for a follower */
		return cairn_errf(CAIRN_E_NOTFOUND, "follow: store %s: %s", store_url,
				  strerror(errno));
	if ((rc = vol_mkdir(dir)))
		return rc;
	if ((rc = vol_alloc(dir, 1024, "follow", &vol)))
		return rc;
	fl = calloc(1, sizeof *fl);
	if (!fl) {
		vol_destroy(vol);
		return cairn_errf(CAIRN_E_NOMEM, "follow %s", dir);
	}
	/* follow_free takes down what is set up here */
	pthread_mutex_init(&fl->mu, NULL);
	{
		/* the tailer sleeps on the monotonic clock */
		pthread_condattr_t ca;
		pthread_condattr_init(&ca);
		pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
		pthread_cond_init(&fl->cv, &ca);
		pthread_condattr_destroy(&ca);
	}
	vol->fl = fl;
	if (opts)
		vol->o = *opts;
	if (!vol->o.follow_poll_ms)
		vol->o.follow_poll_ms = 1000;
	if (!vol->o.follow_max_lag_ms)
		vol->o.follow_max_lag_ms = 10 * 60 * 1000;
	vol->o.no_upload = 1;
	vol->o.no_ship = 1;
	vol->o.gc_interval_ms = 0;
	if ((rc = vol_lock(vol)))
		goto fail;
	rc = fconf_read(dir, ub, cstore, sizeof cstore);
	if (rc && rc != CAIRN_E_NOTFOUND)
		goto fail;
	have_conf = rc == 0;
	rc = 0;
	if (have_conf && strcmp(cstore, store_url) != 0) {
		rc = cairn_errf(CAIRN_E_INVAL, "follow: %s follows %s, not %s; use another "
				"directory", dir, cstore, store_url);
		goto fail;
	}
	snprintf(vol->store_url, sizeof vol->store_url, "%s", store_url);
	snprintf(path, sizeof path, "follow: store %s", store_url);
	if ((rc = vol_open_uring_store(vol, store_url, path)))
		goto fail;
	if (!have_conf && (rc = vol_shipped_find(vol->os, NULL, ub))) {
		if (rc == CAIRN_E_INVAL)  /* several volumes: no --uuid here */
			rc = cairn_errf(rc, "follow: %s; a follower needs a store (bucket "
					"prefix) that holds one volume", cairn_errmsg());
		goto fail;
	}
	vol_uuid_fmt(ub, uuid);
	memcpy(vol->uuid, ub, 16);
	snprintf(fl->vpfx, sizeof fl->vpfx, "v/%s/", uuid);
	if ((rc = vol_shipped_volume(vol->os, fl->vpfx, &sv)))
		goto fail;
	vol->zstd_level = sv.zstd_level;
	vol_opts_defaults(vol, sv.segment_size);
	if (!have_conf && (rc = fconf_write(dir, ub, store_url)))
		goto fail;
	static const char *const subs[] = { "meta", "cache", "staging" };
	for (size_t i = 0; i < 3; i++) {
		snprintf(path, sizeof path, "%s/%s", dir, subs[i]);
		if ((rc = vol_mkdir(path)))
			goto fail;
	}
	{
		meta_opts mo;
		meta_opts_init(&mo);
		mo.replica = 1;
		snprintf(path, sizeof path, "%s/meta", dir);
		if ((rc = meta_open(path, &mo, &vol->meta))) {
			rc = cairn_err_wrap(rc, "follow: open the replica in %s", path);
			goto fail;
		}
	}
	snprintf(path, sizeof path, "%s/cache", dir);
	if ((rc = seg_cache_open(vol->u, path, vol->o.cache_size, &vol->cache)))
		goto fail;
	vol->gen = 1;
	{
		uint64_t first = 0, last = 0;
		if ((rc = meta_wal_bounds(vol->meta, &first, &last)))
			goto fail;
		fl->applied = last;
	}
	fl->end_ms = vol_now_ms();
	if (fl->applied == 0) {
		/* A new follower starts from the newest image. */
		if ((rc = resync(vol, "a new follower"))) {
			rc = cairn_err_wrap(rc, "follow: bootstrap from %s", store_url);
			goto fail;
		}
		fl->resyncs = 0;
	}
	fl->need_locate = 1;
	/* Catch up once before returning, so that the first reads see a
	 * recent state; a failure here is retried by the tailer. */
	if (follow_round(vol)) {
		CAIRN_WARN(VOL_MOD, "follower %s: %s (retrying in the background)", dir,
			   cairn_errmsg());
		cairn_err_clear();
	}
	if (pthread_create(&fl->thr, NULL, follow_main, vol) != 0) {
		rc = cairn_errf(CAIRN_E_NOMEM, "follow: start the tailer thread");
		goto fail;
	}
	fl->thr_on = 1;
	CAIRN_INFO(VOL_MOD, "follower %s of volume %s in %s open at LSN %" PRIu64, dir, uuid,
		   store_url, fl->applied);
	*out = vol;
	return 0;
fail:
	{
		char msg[1024];
		snprintf(msg, sizeof msg, "%s", cairn_errmsg());
		follow_free(vol);
		vol_readers_close(vol);
		vol_destroy(vol);
		return cairn_errf(rc, "%s", msg);
	}
}

int vol_follow_close(cairn_volume *vol)
{
	follow_free(vol);
	vol_vinodes_free(vol);  /* a follower buffers no writes */
	vol_readers_close(vol);
	vol_destroy(vol);
	return 0;
}
