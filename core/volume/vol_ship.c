/*
 * vol_ship.c - log shipping, writer side (docs/log-shipping.md): the
 * writer's lease, the shipper thread that packs the write-ahead log into
 * log objects in the store, metadata images, trimming, and fencing.
 *
 * Store layout under v/<uuid>/meta/ (docs/log-shipping.md "What is in the
 * store"): volume, lease/<epoch>, wal/<first LSN>, image/<LSN>[.mdb].
 *
 * Guarantees:
 *   1. Only durable records are shipped (meta_durable_lsn), in LSN order,
 *      each log object created with put-if-absent at wal/<first LSN>.
 *   2. The data rule: a shipped prefix of the log never names a chunk in a
 *      segment that the store does not hold, and a segment's UPLOADED put
 *      is shipped no later than the object carrying its chunks (see
 *      ship_cut).  The bootstrap image is uploaded only once every segment
 *      it may name is uploaded or dead; later images once the shipped LSN
 *      reaches theirs.
 *   3. One writer: an open claims lease/<E> with put-if-absent, E above
 *      every epoch in the store; a log object that already exists with
 *      other records, or a newer lease seen at renewal, fences this writer
 *      (CAIRN_E_FENCED): nothing more is shipped or deleted.
 *   4. No metadata transaction is held across store I/O, and commits never
 *      wait for the shipper; volume_ship_flush does.
 *   5. gc deletes a dead segment's object only once its death is shipped
 *      (vol_ship_death_shipped) and only while the lease is held.
 *   6. Segments are uploaded (and compacted) only while this run's lease
 *      is held and the store's log checked (vol_ship_upload_ok): an epoch
 *      taken without the store may be another writer's.
 *
 * States of the shipper (vship.mu):
 *
 *   (open) --vol_ship_claim ok--> [LEASED] --ship_round...--> [LEASED]
 *      |  store down at open            |  EXISTS with other records, or
 *      v                                |  a newer lease at renewal
 *   [NO LEASE] --acquire (background)-->|-----------> [FENCED] (final)
 *                                       |  the store's log is past ours
 *                                       +-----------> [STALE]  (final)
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

#include "cairn/codec.h"
#include "vol_int.h"

#define SHIP_OBJ_MAX (16u << 20)     /* log objects end here when they can */
#define SHIP_READ_MAX (256u << 20)   /* records read per round */
#define SHIP_GET_MAX (1024ull << 20) /* largest log object read back */
#define SHIP_BACKOFF_MIN_MS 100
#define SHIP_BACKOFF_MAX_MS 30000
#define LEASE_MAGIC "cairn-lease"
#define VMETA_MAGIC "cairn-volume-meta"
#define IMAGE_MAGIC "cairn-image"
#define TEXT_VERSION 1

typedef struct srec {
	uint64_t lsn;
	uint8_t *p;
	size_t len;
} srec;

typedef struct vdeath {
	uint64_t seg, lsn;
} vdeath;

struct vship {
	cairn_volume *vol;
	pthread_mutex_t mu;
	pthread_cond_t cv;        /* wakes the thread */
	pthread_cond_t done_cv;   /* a round ended */
	pthread_t thr;
	int thread, stop;
	uint64_t req, served;     /* flush requests made / taken by a round */
	uint64_t rounds;          /* rounds ended */

	/* under mu */
	int lease_held, fenced, stale, checked;
	uint64_t epoch;           /* our lease's (= vol->epoch) */
	uint64_t shipped;         /* last LSN in the store */
	int have_image;
	uint64_t image_lsn;
	int64_t image_wall_ms;    /* wall time of the newest image */
	uint64_t log_since_image; /* bytes shipped since */
	int last_rc;
	char last_err[512];
	int64_t fail_since_ms;    /* 0 while the store works */
	char waiting[256];        /* what shipping waits for (data rule) */
	vdeath *dead;
	size_t ndead, cdead;
	uint64_t open_lsn;        /* deaths before this open: this LSN */
	uint64_t objects, bytes, failures, images;

	/* the thread's own */
	int64_t next_renew_ms, next_try_ms, backoff_ms, last_trim_ms;
	int warned;
	int img_pending;
	uint64_t img_lsn, boot_maxseg;
	meta_logbuf lb;
	srec *r;
	size_t nr, cr;
	uint64_t rbytes;
	char pfx[96];             /* v/<uuid>/meta/ */
	char host[256];
	char img_path[4096];
};

static int64_t wall_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* ---- versioned text objects (docs/log-shipping.md) ---- */

/* A number of a text object that this side keeps as int64_t. */
static int text_i64(const char *what, const vtkv *kv, int64_t *out)
{
	uint64_t x;
	int rc = vol_text_u64(what, kv, 10, &x);
	if (rc)
		return rc;
	if (x > (uint64_t)INT64_MAX)
		return cairn_errf(CAIRN_E_CORRUPT, "%s: bad %s '%s'", what, kv->key, kv->val);
	*out = (int64_t)x;
	return 0;
}

typedef struct vlease {
	uint64_t epoch;
	uint8_t instance[16];
	char host[256];
	int64_t pid, renewed_ms, ttl_ms;
} vlease;

static int lease_parse(const uint8_t *buf, size_t len, const char *what, vlease *l)
{
	vtkv kv[] = { { "epoch", 0, "" }, { "instance", 0, "" }, { "host", 0, "" },
		      { "pid", 0, "" }, { "renewed_ms", 0, "" }, { "ttl_ms", 0, "" } };
	int64_t e = 0;
	int rc;
	memset(l, 0, sizeof *l);
	if ((rc = vol_text_parse(what, buf, len, LEASE_MAGIC, kv, 6)))
		return rc;
	if ((rc = text_i64(what, &kv[0], &e)) || (rc = text_i64(what, &kv[3], &l->pid)) ||
	    (rc = text_i64(what, &kv[4], &l->renewed_ms)) ||
	    (rc = text_i64(what, &kv[5], &l->ttl_ms)))
		return rc;
	l->epoch = (uint64_t)e;
	if (!kv[1].have || vol_uuid_parse(kv[1].val, l->instance))
		return cairn_errf(CAIRN_E_CORRUPT, "%s: bad or no instance", what);
	snprintf(l->host, sizeof l->host, "%s", kv[2].have ? kv[2].val : "?");
	return 0;
}

static int lease_text(struct vship *s, int64_t ttl_ms, char *buf, size_t size)
{
	char is[37];
	vol_uuid_fmt(s->vol->instance, is);
	int n = snprintf(buf, size, "%s %d\nepoch = %" PRIu64 "\ninstance = %s\nhost = %s\n"
			 "pid = %ld\nrenewed_ms = %" PRId64 "\nttl_ms = %" PRId64 "\n",
			 LEASE_MAGIC, TEXT_VERSION, s->epoch, is, s->host, (long)getpid(),
			 vol_wall_ms(), ttl_ms);
	if (n < 0 || (size_t)n >= size)
		return cairn_errf(CAIRN_E_RANGE, "lease text too long");
	return n;
}

/* ---- the error state ---- */

static void ship_fail(struct vship *s, int rc)
{
	char msg[512];
	cairn_err_copy(msg, sizeof msg);
	pthread_mutex_lock(&s->mu);
	s->last_rc = rc;
	snprintf(s->last_err, sizeof s->last_err, "%s", msg);
	if (!s->fail_since_ms)
		s->fail_since_ms = vol_now_ms();
	s->failures++;
	pthread_mutex_unlock(&s->mu);
	if (!s->warned)
		CAIRN_WARN(VOL_MOD, "log shipping of %s: %s (retrying with backoff)", s->vol->dir, msg);
	s->warned = 1;
	s->backoff_ms = s->backoff_ms ? s->backoff_ms * 2 : SHIP_BACKOFF_MIN_MS;
	if (s->backoff_ms > SHIP_BACKOFF_MAX_MS)
		s->backoff_ms = SHIP_BACKOFF_MAX_MS;
	s->next_try_ms = vol_now_ms() + s->backoff_ms;
}

static void ship_ok(struct vship *s)
{
	if (s->warned)
		CAIRN_INFO(VOL_MOD, "log shipping of %s works again", s->vol->dir);
	s->warned = 0;
	s->backoff_ms = 0;
	s->next_try_ms = 0;
	pthread_mutex_lock(&s->mu);
	s->fail_since_ms = 0;
	s->last_rc = 0;
	pthread_mutex_unlock(&s->mu);
}

/* Fenced (final): one clear line, then nothing more is shipped or deleted. */
static int ship_fence(struct vship *s, const char *why)
{
	pthread_mutex_lock(&s->mu);
	int was = s->fenced;
	s->fenced = 1;
	snprintf(s->last_err, sizeof s->last_err, "%s", why);
	pthread_cond_broadcast(&s->done_cv);
	pthread_mutex_unlock(&s->mu);
	if (!was)
		CAIRN_ERROR(VOL_MOD, "volume %s is fenced: %s; nothing more is shipped or "
			    "deleted, and commits from now on stay on this disk only",
			    s->vol->dir, why);
	return cairn_errf(CAIRN_E_FENCED, "volume %s: %s", s->vol->dir, why);
}

static void set_shipped(struct vship *s, uint64_t lsn, uint64_t bytes)
{
	pthread_mutex_lock(&s->mu);
	if (lsn > s->shipped)
		s->shipped = lsn;
	s->log_since_image += bytes;
	pthread_cond_broadcast(&s->done_cv);
	pthread_mutex_unlock(&s->mu);
}

static uint64_t get_shipped(struct vship *s)
{
	pthread_mutex_lock(&s->mu);
	uint64_t x = s->shipped;
	pthread_mutex_unlock(&s->mu);
	return x;
}

/* ---- the lease ---- */

/* The newest lease in the store (epoch 0: none) and the largest epoch. */
static int lease_newest(struct vship *s, vlease *out, int *have)
{
	char pfx[128], key[160], what[200];
	vkeys l;
	uint64_t e, best = 0;
	uint8_t *buf;
	size_t len;
	int rc;

	*have = 0;
	memset(out, 0, sizeof *out);
	snprintf(pfx, sizeof pfx, "%slease/", s->pfx);
	if ((rc = vol_store_keys(s->vol->os, pfx, &l)))
		return rc;
	for (size_t i = 0; i < l.n; i++)
		if (!vol_key_hex(l.k[i], pfx, &e) && e > best)
			best = e;
	vol_keys_free(&l);
	if (!best)
		return 0;
	snprintf(key, sizeof key, "%s%016" PRIx64, pfx, best);
	if ((rc = vol_shipped_get(s->vol->os, key, VOL_TEXT_MAX, &buf, &len)))
		return cairn_err_wrap(rc, "read lease %s", key);
	snprintf(what, sizeof what, "lease %s", key);
	rc = lease_parse(buf, len, what, out);
	free(buf);
	if (rc)
		return rc;
	if (out->epoch != best)
		return cairn_errf(CAIRN_E_CORRUPT, "lease %s names epoch %" PRIu64, key, out->epoch);
	*have = 1;
	return 0;
}

static int lease_fresh(const vlease *l)
{
	int64_t age = vol_wall_ms() - l->renewed_ms;
	return l->ttl_ms > 0 && age < l->ttl_ms;
}

static int lease_busy(struct vship *s, const vlease *l)
{
	return cairn_errf(CAIRN_E_BUSY,
			  "volume %s is held by another writer: host %s, pid %" PRId64
			  ", epoch %" PRIu64 " (lease renewed %" PRId64 " ms ago, ttl %" PRId64
			  " ms); stop that writer, or take the volume over with --takeover "
			  "(opts.takeover), which fences it", s->vol->dir, l->host, l->pid,
			  l->epoch, vol_wall_ms() - l->renewed_ms, l->ttl_ms);
}

static int lease_put(struct vship *s, int create, int64_t ttl_ms)
{
	char key[160], text[1024];
	int n = lease_text(s, ttl_ms, text, sizeof text), rc;
	if (n < 0)
		return n;
	snprintf(key, sizeof key, "%slease/%016" PRIx64, s->pfx, s->epoch);
	if (create)
		rc = objstore_put_if_absent(s->vol->os, key, text, (size_t)n);
	else
		rc = objstore_put_buf(s->vol->os, key, text, (size_t)n);
	if (rc == CAIRN_E_EXISTS)
		return cairn_errf(CAIRN_E_BUSY, "volume %s: another writer claimed epoch %"
				  PRIu64 " at the same moment (%s); try again", s->vol->dir,
				  s->epoch, key);
	return rc;
}

/* meta/volume: created once; a later writer checks it is this volume's. */
static int volmeta_check(struct vship *s)
{
	char key[160], text[1024], us[37];
	vtkv kv[] = { { "uuid", 0, "" }, { "segment_size", 0, "" }, { "zstd_level", 0, "" },
		      { "created_ms", 0, "" } };
	uint8_t *buf;
	size_t len;
	int rc, n;

	vol_uuid_fmt(s->vol->uuid, us);
	snprintf(key, sizeof key, "%svolume", s->pfx);
	n = snprintf(text, sizeof text, "%s %d\nuuid = %s\nsegment_size = %" PRIu64
		     "\nzstd_level = %d\ncreated_ms = %" PRId64 "\n", VMETA_MAGIC,
		     TEXT_VERSION, us, s->vol->conf_segment_size, s->vol->zstd_level,
		     vol_wall_ms());
	rc = objstore_put_if_absent(s->vol->os, key, text, (size_t)n);
	if (rc != CAIRN_E_EXISTS)
		return rc;
	cairn_err_clear();
	if ((rc = vol_shipped_get(s->vol->os, key, VOL_TEXT_MAX, &buf, &len)))
		return rc;
	rc = vol_text_parse(key, buf, len, VMETA_MAGIC, kv, 4);
	if (!rc) {
		const char *u = kv[0].have ? kv[0].val : NULL;
		if (!u || strcmp(u, us) != 0)
			rc = cairn_errf(CAIRN_E_CORRUPT, "%s names volume %s, not %s", key,
					u ? u : "(none)", us);
	}
	free(buf);
	return rc;
}

/* Claim lease/<epoch> (s->epoch set by the caller): at open, epoch is
 * chosen here above every epoch seen; in the background (the store was
 * down at open) it is fixed, and a store that went past it fences us. */
static int lease_claim(struct vship *s, uint64_t conf_epoch, int at_open)
{
	vlease l;
	int have, rc;

	if ((rc = lease_newest(s, &l, &have)))
		return rc;
	if (have && memcmp(l.instance, s->vol->instance, 16) != 0 && lease_fresh(&l) &&
	    !s->vol->o.takeover) {
		if (at_open)
			return lease_busy(s, &l);
		lease_busy(s, &l);
		return ship_fence(s, cairn_errmsg());
	}
	int ours = have && l.epoch == s->epoch && !memcmp(l.instance, s->vol->instance, 16);
	if (at_open) {
		uint64_t e = conf_epoch;
		if (have && l.epoch > e)
			e = l.epoch;
		s->epoch = e + 1;
	} else if (have && l.epoch >= s->epoch && !ours) {
		char why[300];
		snprintf(why, sizeof why, "another writer (host %s, epoch %" PRIu64 ") claimed "
			 "the volume while this one (epoch %" PRIu64 ") could not reach the store",
			 l.host, l.epoch, s->epoch);
		return ship_fence(s, why);
	}
	if ((rc = lease_put(s, !ours, s->vol->o.lease_ttl_ms))) {
		if (rc == CAIRN_E_BUSY && !at_open)
			return ship_fence(s, cairn_errmsg());
		return rc;
	}
	pthread_mutex_lock(&s->mu);
	s->lease_held = 1;   /* released again if the open fails */
	pthread_mutex_unlock(&s->mu);
	if ((rc = volmeta_check(s))) {
		if (rc != CAIRN_E_CORRUPT && rc != CAIRN_E_VERSION) {
			/* a store error: the background claims (re-puts) again */
			pthread_mutex_lock(&s->mu);
			s->lease_held = 0;
			pthread_mutex_unlock(&s->mu);
		}
		return rc;
	}
	s->next_renew_ms = vol_now_ms() + s->vol->o.lease_ttl_ms / 3;
	if (have && memcmp(l.instance, s->vol->instance, 16) != 0 && lease_fresh(&l))
		CAIRN_WARN(VOL_MOD, "volume %s taken over from host %s, pid %" PRId64 ", epoch %"
			   PRIu64 " (now epoch %" PRIu64 "): that writer is fenced", s->vol->dir,
			   l.host, l.pid, l.epoch, s->epoch);
	return 0;
}

static int lease_renew(struct vship *s)
{
	vlease l;
	int have, rc;
	if ((rc = lease_newest(s, &l, &have)))
		return rc;
	if (have && l.epoch > s->epoch) {
		char why[300];
		snprintf(why, sizeof why, "a newer writer holds the lease (host %s, pid %" PRId64
			 ", epoch %" PRIu64 " > %" PRIu64 ")", l.host, l.pid, l.epoch, s->epoch);
		return ship_fence(s, why);
	}
	if ((rc = lease_put(s, 0, s->vol->o.lease_ttl_ms)))
		return rc;
	s->next_renew_ms = vol_now_ms() + s->vol->o.lease_ttl_ms / 3;
	return 0;
}

/* ---- local records ---- */

static void recs_clear(struct vship *s)
{
	for (size_t i = 0; i < s->nr; i++)
		free(s->r[i].p);
	s->nr = 0;
	s->rbytes = 0;
}

typedef struct rd_ctx {
	struct vship *s;
	uint64_t upto;
	int rc;
} rd_ctx;

static int rd_cb(uint64_t lsn, const void *rec, size_t len, void *arg)
{
	rd_ctx *c = arg;
	struct vship *s = c->s;
	if (lsn > c->upto || s->rbytes >= SHIP_READ_MAX)
		return 1;
	if (s->nr == s->cr) {
		size_t nc = s->cr ? s->cr * 2 : 256;
		srec *nr = realloc(s->r, nc * sizeof *nr);
		if (!nr) {
			c->rc = cairn_errf(CAIRN_E_NOMEM, "ship: records");
			return 1;
		}
		s->r = nr;
		s->cr = nc;
	}
	srec *r = &s->r[s->nr];
	if (!(r->p = malloc(len ? len : 1))) {
		c->rc = cairn_errf(CAIRN_E_NOMEM, "ship: records");
		return 1;
	}
	memcpy(r->p, rec, len);
	r->len = len;
	r->lsn = lsn;
	s->nr++;
	s->rbytes += len;
	return 0;
}

/* Compare local records from first on with those of a log object. */
typedef struct cmp_ctx {
	const srec *o;          /* the object's records */
	size_t n, i;
	int differ;
} cmp_ctx;

static int cmp_cb(uint64_t lsn, const void *rec, size_t len, void *arg)
{
	cmp_ctx *c = arg;
	if (c->i == c->n)
		return 1;
	const srec *o = &c->o[c->i];
	if (o->lsn != lsn || o->len != len || memcmp(o->p, rec, len) != 0) {
		c->differ = 1;
		return 1;
	}
	c->i++;
	return 0;
}

typedef struct dec_ctx {
	srec *v;
	size_t n, cap;
	int rc;
} dec_ctx;

static int dec_cb(uint64_t lsn, const void *rec, size_t len, void *arg)
{
	dec_ctx *d = arg;
	if (d->n == d->cap) {
		size_t nc = d->cap ? d->cap * 2 : 256;
		srec *nv = realloc(d->v, nc * sizeof *nv);
		if (!nv) {
			d->rc = cairn_errf(CAIRN_E_NOMEM, "decode log object");
			return 1;
		}
		d->v = nv;
		d->cap = nc;
	}
	/* rec points into the object's buffer, which outlives d */
	d->v[d->n].lsn = lsn;
	d->v[d->n].p = (uint8_t *)rec;
	d->v[d->n].len = len;
	d->n++;
	return 0;
}

/* Whether the log object at key holds exactly our local records for its
 * range.  *same: 1 equal, 0 differ; *last: the object's last LSN. */
static int obj_matches_local(struct vship *s, const char *key, int *same, uint64_t *last,
			     uint64_t *epoch)
{
	uint8_t *buf;
	size_t len;
	meta_logobj_hdr h;
	dec_ctx d = { 0 };
	cmp_ctx c = { 0 };
	int rc;

	*same = 0;
	if ((rc = vol_shipped_get(s->vol->os, key, SHIP_GET_MAX, &buf, &len)))
		return rc;
	rc = meta_logobj_decode(buf, len, &h, dec_cb, &d);
	if (!rc && d.rc)
		rc = d.rc;
	if (rc) {
		rc = cairn_err_wrap(rc, "log object %s", key);
		goto out;
	}
	*last = h.last;
	*epoch = h.epoch;
	c.o = d.v;
	c.n = d.n;
	rc = meta_wal_read(s->vol->meta, h.first, cmp_cb, &c);
	if (rc == CAIRN_E_NOTFOUND) {
		/* trimmed locally: cannot be compared */
		cairn_err_clear();
		rc = 0;
		*same = -1;
		goto out;
	}
	if (rc)
		goto out;
	*same = !c.differ && c.i == c.n;
out:
	free(d.v);
	free(buf);
	return rc;
}

/* ---- the store's state at open: newest image and log object ---- */

static int image_list(struct vship *s, uint64_t **lsns, size_t *n)
{
	char pfx[128];
	vkeys l;
	uint64_t x;
	int rc;
	*lsns = NULL;
	*n = 0;
	snprintf(pfx, sizeof pfx, "%simage/", s->pfx);
	if ((rc = vol_store_keys(s->vol->os, pfx, &l)))
		return rc;
	if (l.n && !(*lsns = calloc(l.n, sizeof **lsns)))
		rc = cairn_errf(CAIRN_E_NOMEM, "list %s", pfx);
	for (size_t i = 0; !rc && i < l.n; i++)
		if (!vol_key_hex(l.k[i], pfx, &x))
			(*lsns)[(*n)++] = x;   /* manifests only; sorted */
	vol_keys_free(&l);
	return rc;
}

static int manifest_read(struct vship *s, uint64_t lsn, int64_t *time_ms)
{
	char key[160];
	vtkv kv[] = { { "lsn", 0, "" }, { "epoch", 0, "" }, { "size", 0, "" },
		      { "crc32c", 0, "" }, { "time_ms", 0, "" } };
	uint8_t *buf;
	size_t len;
	int rc;
	snprintf(key, sizeof key, "%simage/%016" PRIx64, s->pfx, lsn);
	if ((rc = vol_shipped_get(s->vol->os, key, VOL_TEXT_MAX, &buf, &len)))
		return rc;
	rc = vol_text_parse(key, buf, len, IMAGE_MAGIC, kv, 5);
	if (!rc)
		rc = text_i64(key, &kv[4], time_ms);
	free(buf);
	return rc;
}

/* Where the store's log ends; the stale-directory check. */
static int store_scan(struct vship *s)
{
	cairn_volume *vol = s->vol;
	char pfx[128], us[37];
	uint64_t *imgs = NULL, lf = 0, ll = 0, end = 0, wlast = 0, wepoch = 0, f;
	size_t nimg = 0;
	int64_t itime = 0;
	vkeys l = { 0 };
	int rc, same = 1;

	if ((rc = image_list(s, &imgs, &nimg)))
		return rc;
	if (nimg && (rc = manifest_read(s, imgs[nimg - 1], &itime)))
		goto out;
	snprintf(pfx, sizeof pfx, "%swal/", s->pfx);
	if ((rc = vol_store_keys(vol->os, pfx, &l)))
		goto out;
	if ((rc = meta_wal_bounds(vol->meta, &lf, &ll)))
		goto out;
	for (size_t i = l.n; i-- > 0;) {
		if (vol_key_hex(l.k[i], pfx, &f))
			continue;
		if ((rc = obj_matches_local(s, l.k[i], &same, &wlast, &wepoch)))
			goto out;
		break;
	}
	end = nimg ? imgs[nimg - 1] : 0;
	if (wlast > end)
		end = wlast;
	vol_uuid_fmt(vol->uuid, us);
	if (end > ll || !same) {
		pthread_mutex_lock(&s->mu);
		s->stale = 1;
		pthread_mutex_unlock(&s->mu);
		if (end > ll)
			rc = cairn_errf(CAIRN_E_FENCED,
					"volume %s is stale: the store's log goes to LSN %" PRIu64
					", past this directory's last LSN %" PRIu64 " (another writer "
					"went on from the bucket); rebuild a directory from the store "
					"with 'cairn recover --store %s --uuid %s DIR'", vol->dir, end,
					ll, vol->store_url, us);
		else
			rc = cairn_errf(CAIRN_E_FENCED,
					"volume %s is stale: the store's log up to LSN %" PRIu64
					" (writer epoch %" PRIu64 ") differs from this directory's "
					"(another writer went on from the bucket); rebuild a directory "
					"from the store with 'cairn recover --store %s --uuid %s DIR'",
					vol->dir, wlast, wepoch, vol->store_url, us);
		CAIRN_ERROR(VOL_MOD, "%s", cairn_errmsg());
		goto out;
	}
	pthread_mutex_lock(&s->mu);
	s->shipped = end;
	s->have_image = nimg > 0;
	s->image_lsn = nimg ? imgs[nimg - 1] : 0;
	s->image_wall_ms = itime;
	s->checked = 1;
	pthread_mutex_unlock(&s->mu);
out:
	vol_keys_free(&l);
	free(imgs);
	return rc;
}

/* The fence record: the writer epoch in the replicated metadata, so that
 * the shipped log shows where this writer took the volume. */
static int fence_fn(meta_txn *t, void *arg)
{
	return meta_writer_epoch_set(t, *(uint64_t *)arg);
}

static int fence_record(struct vship *s)
{
	uint64_t e = s->epoch;
	int rc = meta_write(s->vol->meta, META_SYNCED, META_OP_OTHER, fence_fn, &e, NULL);
	if (rc)
		return cairn_err_wrap(rc, "volume %s: record writer epoch %" PRIu64, s->vol->dir, e);
	return 0;
}

/* ---- the data rule ---- */

typedef struct sev {
	uint64_t seg;
	uint32_t state;         /* 0: a chunk put */
	size_t rec;
	size_t res;             /* chunk put: index of the record resolving its
				   segment (UPLOADED or dead put), or SIZE_MAX */
} sev;

typedef struct sevs {
	sev *v;
	size_t n, cap;
	size_t rec;
	int rc;
} sevs;

static int sev_cb(uint64_t seg, uint32_t state, void *arg)
{
	sevs *e = arg;
	if (e->n == e->cap) {
		size_t nc = e->cap ? e->cap * 2 : 1024;
		sev *nv = realloc(e->v, nc * sizeof *nv);
		if (!nv)
			return e->rc = cairn_errf(CAIRN_E_NOMEM, "ship: segment refs");
		e->v = nv;
		e->cap = nc;
	}
	e->v[e->n].seg = seg;
	e->v[e->n].state = state;
	e->v[e->n].rec = e->rec;
	e->v[e->n].res = SIZE_MAX;
	e->n++;
	return 0;
}

/* A tiny open-addressing map seg -> value (0 = absent). */
typedef struct smap {
	uint64_t *k, *v;
	size_t cap, n;
} smap;

static int smap_put(smap *m, uint64_t k, uint64_t v)
{
	if ((m->n + 1) * 2 > m->cap) {
		size_t nc = m->cap ? m->cap * 2 : 256;
		uint64_t *nk = calloc(nc, sizeof *nk), *nv = calloc(nc, sizeof *nv);
		if (!nk || !nv) {
			free(nk);
			free(nv);
			return cairn_errf(CAIRN_E_NOMEM, "ship: segment map");
		}
		for (size_t i = 0; i < m->cap; i++) {
			if (!m->k[i])
				continue;
			size_t j = (m->k[i] * 0x9e3779b97f4a7c15ull) & (nc - 1);
			while (nk[j])
				j = (j + 1) & (nc - 1);
			nk[j] = m->k[i];
			nv[j] = m->v[i];
		}
		free(m->k);
		free(m->v);
		m->k = nk;
		m->v = nv;
		m->cap = nc;
	}
	size_t j = (k * 0x9e3779b97f4a7c15ull) & (m->cap - 1);
	while (m->k[j] && m->k[j] != k)
		j = (j + 1) & (m->cap - 1);
	if (!m->k[j])
		m->n++;
	m->k[j] = k;
	m->v[j] = v;
	return 0;
}

static uint64_t smap_get(const smap *m, uint64_t k)
{
	if (!m->cap)
		return 0;
	size_t j = (k * 0x9e3779b97f4a7c15ull) & (m->cap - 1);
	while (m->k[j]) {
		if (m->k[j] == k)
			return m->v[j];
		j = (j + 1) & (m->cap - 1);
	}
	return 0;
}

static void smap_free(smap *m)
{
	free(m->k);
	free(m->v);
	memset(m, 0, sizeof *m);
}

static int pending_state(uint32_t st)
{
	return st == META_SEG_STAGING || st == META_SEG_SEALED || st == META_SEG_UPLOADING;
}

static int resolved_state(uint32_t st)
{
	return st == META_SEG_UPLOADED || st == META_SEG_DEAD || st == META_SEG_DELETING;
}

typedef struct nup_ctx {
	smap *m;
	uint64_t maxid;
	int rc;
} nup_ctx;

static int nup_cb(const meta_seg *sg, void *arg)
{
	nup_ctx *c = arg;
	if (sg->id > c->maxid)
		c->maxid = sg->id;
	if (pending_state(sg->state) && (c->rc = smap_put(c->m, sg->id, sg->state)))
		return 1;
	return 0;
}

/* Segments not in the store yet (STAGING, SEALED, UPLOADING), now. */
static int not_uploaded(cairn_volume *vol, smap *m, uint64_t *maxid)
{
	meta_txn *t;
	nup_ctx c = { .m = m };
	int rc;
	if ((rc = meta_read_begin(vol->meta, &t)))
		return rc;
	rc = meta_seg_list(t, 0, nup_cb, &c);
	meta_read_end(t);
	if (maxid)
		*maxid = c.maxid;
	return rc ? rc : c.rc;
}

/* ok[i] = 1: the records 0..i may end an object (docs/log-shipping.md,
 * the data rule); returns the number of records that may be shipped at
 * all (the hard stop).  N: segments not uploaded before the records were
 * read. */
static int ship_cut(struct vship *s, const smap *N, uint8_t *ok, size_t *hard_out,
		    uint64_t *wait_seg)
{
	sevs e = { 0 };
	smap last = { 0 }, nres = { 0 };
	size_t hard = s->nr;
	int rc = 0;

	*wait_seg = 0;
	for (size_t i = 0; i < s->nr; i++) {
		e.rec = i;
		rc = meta_wal_segrefs(s->r[i].p, s->r[i].len, sev_cb, &e);
		if (!rc && e.rc)
			rc = e.rc;
		if (rc) {
			rc = cairn_err_wrap(rc, "ship: WAL record %" PRIu64, s->r[i].lsn);
			goto out;
		}
	}
	/* Backward: for each chunk put, the next record (same one included)
	 * that resolves its segment.  Values are index + 1 (0: none). */
	for (size_t k = e.n; k-- > 0;) {
		sev *v = &e.v[k];
		if (v->state && resolved_state(v->state)) {
			if ((rc = smap_put(&nres, v->seg, v->rec + 1)))
				goto out;
		} else if (!v->state) {
			uint64_t r = smap_get(&nres, v->seg);
			v->res = r ? (size_t)(r - 1) : SIZE_MAX;
		}
	}
	/* (A resolving put earlier in the chunk's own record is seen by the
	 * forward walk first: the chunk is not pending then.) */
	/* Forward: the segment's state as the records go. */
	size_t need = 0, k = 0;
	for (size_t i = 0; i < s->nr && i < hard; i++) {
		for (; k < e.n && e.v[k].rec == i; k++) {
			sev *v = &e.v[k];
			if (v->state) {
				if ((rc = smap_put(&last, v->seg, v->state)))
					goto out;
				continue;
			}
			uint64_t st = smap_get(&last, v->seg);
			if (!st)
				st = smap_get(N, v->seg) ? META_SEG_STAGING : META_SEG_UPLOADED;
			if (!pending_state((uint32_t)st))
				continue;
			if (v->res == SIZE_MAX) {
				hard = i;
				*wait_seg = v->seg;
				break;
			}
			if (v->res > need)
				need = v->res;
		}
		if (i < hard)
			ok[i] = need <= i;
	}
	*hard_out = hard;
out:
	free(e.v);
	smap_free(&last);
	smap_free(&nres);
	return rc;
}

/* ---- one round's shipping ---- */

static int put_object(struct vship *s, size_t a, size_t b, int *adopted)
{
	cairn_volume *vol = s->vol;
	char key[160];
	int rc;

	*adopted = 0;
	meta_logbuf_reset(&s->lb);
	for (size_t i = a; i <= b; i++)
		if ((rc = meta_logbuf_add(&s->lb, s->r[i].p, s->r[i].len)))
			return cairn_err_wrap(rc, "ship: pack record %" PRIu64, s->r[i].lsn);
	if ((rc = meta_logbuf_finish(&s->lb, s->epoch, vol->instance, wall_ns())))
		return rc;
	snprintf(key, sizeof key, "%swal/%016" PRIx64, s->pfx, s->r[a].lsn);
	rc = objstore_put_if_absent(vol->os, key, s->lb.p, s->lb.len);
	if (rc == CAIRN_E_EXISTS) {
		int same;
		uint64_t last = 0, ep = 0;
		cairn_err_clear();
		if ((rc = obj_matches_local(s, key, &same, &last, &ep)))
			return rc;
		if (same != 1) {
			char why[300];
			snprintf(why, sizeof why, "log object %s (LSN %" PRIu64 "..%" PRIu64
				 ") was written by another writer (epoch %" PRIu64 "; ours %" PRIu64 ")",
				 key, s->r[a].lsn, last, ep, s->epoch);
			return ship_fence(s, why);
		}
		/* ours: a retry whose first attempt landed, or a re-ship after
		 * a crash between the put and the consumer update */
		if ((rc = meta_wal_consumer_set(vol->meta, "ship", last)))
			return rc;
		set_shipped(s, last, 0);
		*adopted = 1;
		return 0;
	}
	if (rc)
		return rc;
	if ((rc = meta_wal_consumer_set(vol->meta, "ship", s->r[b].lsn)))
		return rc;
	pthread_mutex_lock(&s->mu);
	s->objects++;
	s->bytes += s->lb.len;
	pthread_mutex_unlock(&s->mu);
	set_shipped(s, s->r[b].lsn, s->lb.len);
	return 0;
}

static int ship_log(struct vship *s, int flush)
{
	cairn_volume *vol = s->vol;
	uint64_t first, last, dur, shipped = get_shipped(s), wait_seg = 0;
	smap N = { 0 };
	uint8_t *ok = NULL;
	size_t hard = 0;
	rd_ctx c = { .s = s };
	int rc;

	if ((rc = meta_wal_bounds(vol->meta, &first, &last)))
		return rc;
	if (last <= shipped)
		return 0;
	if (flush && meta_durable_lsn(vol->meta) < last && (rc = meta_sync(vol->meta)))
		return rc;
	/* Segment states before the records are read: see ship_cut. */
	if ((rc = not_uploaded(vol, &N, NULL)))
		goto out;
	dur = meta_durable_lsn(vol->meta);
	if (dur <= shipped)
		goto out;
	c.upto = dur;
	recs_clear(s);
	rc = meta_wal_read(vol->meta, shipped + 1, rd_cb, &c);
	if (!rc)
		rc = c.rc;
	if (rc == CAIRN_E_NOTFOUND) {
		/* trimmed before it was shipped (a volume that did not ship):
		 * the log goes on from a new image */
		cairn_err_clear();
		CAIRN_WARN(VOL_MOD, "log shipping of %s: the local log no longer holds LSN %"
			   PRIu64 "; shipping goes on from a new image", vol->dir, shipped + 1);
		pthread_mutex_lock(&s->mu);
		s->have_image = 0;
		pthread_mutex_unlock(&s->mu);
		s->img_pending = 0;   /* the bootstrap writes its own */
		rc = 0;
		goto out;
	}
	if (rc)
		goto out;
	if (!s->nr || s->r[0].lsn != shipped + 1) {
		if (s->nr)
			rc = cairn_errf(CAIRN_E_CORRUPT, "ship: local log starts at %" PRIu64
					", not %" PRIu64, s->r[0].lsn, shipped + 1);
		goto out;
	}
	if (!(ok = calloc(s->nr, 1))) {
		rc = cairn_errf(CAIRN_E_NOMEM, "ship");
		goto out;
	}
	if ((rc = ship_cut(s, &N, ok, &hard, &wait_seg)))
		goto out;
	pthread_mutex_lock(&s->mu);
	if (wait_seg)
		snprintf(s->waiting, sizeof s->waiting, "LSN %" PRIu64 " waits for the upload "
			 "of segment %" PRIu64, s->r[hard].lsn, wait_seg);
	else
		s->waiting[0] = 0;
	pthread_mutex_unlock(&s->mu);
	/* Pack: each object ends at a permitted record, within SHIP_OBJ_MAX
	 * when one permits it. */
	size_t a = 0;
	while (a < hard) {
		size_t best = SIZE_MAX, first_ok = SIZE_MAX;
		uint64_t bytes = 0;
		for (size_t i = a; i < hard; i++) {
			bytes += s->r[i].len + 16;
			if (!ok[i])
				continue;
			if (first_ok == SIZE_MAX)
				first_ok = i;
			if (bytes <= SHIP_OBJ_MAX)
				best = i;
			else
				break;
		}
		if (best == SIZE_MAX)
			best = first_ok;
		if (best == SIZE_MAX)
			break;
		int adopted;
		if ((rc = put_object(s, a, best, &adopted)))
			goto out;
		if (adopted) {
			/* the object may end elsewhere: the next round goes on */
			pthread_mutex_lock(&s->mu);
			s->req++;
			pthread_mutex_unlock(&s->mu);
			break;
		}
		a = best + 1;
	}
out:
	free(ok);
	smap_free(&N);
	recs_clear(s);
	return rc;
}

/* ---- images ---- */

/* The .mdb: one put (a link put on file://), or a multipart upload when
 * it is larger than the store's largest single put. */
static int image_put(cairn_objstore *os, const char *key, int fd, uint64_t size)
{
	cairn_objstore_limits lim;
	char uid[CAIRN_UPLOAD_ID_MAX];
	cairn_mpu_part *parts = NULL;
	unsigned np = 0;
	int rc;

	objstore_limits(os, &lim);
	if (size <= lim.max_put_size) {
		cairn_obj_src src = { .buf = NULL, .fd = fd, .off = 0, .len = size };
		return objstore_put(os, key, &src);
	}
	if ((rc = objstore_mpu_create(os, key, uid)))
		return rc;
	for (uint64_t off = 0; off < size;) {
		uint64_t ps = objstore_part_size(os, size, np + 1, 64ull << 20);
		if (ps > size - off)
			ps = size - off;
		cairn_mpu_part *np2 = realloc(parts, (np + 1) * sizeof *parts);
		if (!np2) {
			rc = cairn_errf(CAIRN_E_NOMEM, "image upload");
			goto out;
		}
		parts = np2;
		cairn_obj_src src = { .buf = NULL, .fd = fd, .off = off, .len = ps };
		if ((rc = objstore_mpu_part(os, key, uid, np + 1, &src, &parts[np])))
			goto out;
		np++;
		off += ps;
	}
	rc = objstore_mpu_complete(os, key, uid, parts, np);
out:
	if (rc) {
		char saved[512];
		cairn_err_copy(saved, sizeof saved);
		if (objstore_mpu_abort(os, key, uid))
			CAIRN_WARN(VOL_MOD, "abort the upload of %s: %s", key, cairn_errmsg());
		cairn_err_set(rc, saved);
	}
	free(parts);
	return rc;
}

static int image_upload(struct vship *s, uint64_t lsn)
{
	cairn_volume *vol = s->vol;
	char key[160], text[512];
	uint8_t *buf = NULL;
	struct stat st;
	uint32_t crc = 0;
	int fd, rc, n;

	fd = open(s->img_path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return cairn_errf(CAIRN_E_IO, "open %s: %s", s->img_path, strerror(errno));
	if (fstat(fd, &st) != 0) {
		rc = cairn_errf(CAIRN_E_IO, "stat %s: %s", s->img_path, strerror(errno));
		goto out;
	}
	if (!(buf = malloc(1 << 20))) {
		rc = cairn_errf(CAIRN_E_NOMEM, "image crc");
		goto out;
	}
	for (off_t off = 0; off < st.st_size;) {
		ssize_t got = pread(fd, buf, 1 << 20, off);
		if (got <= 0) {
			rc = cairn_errf(CAIRN_E_IO, "read %s: %s", s->img_path,
					got < 0 ? strerror(errno) : "short file");
			goto out;
		}
		crc = cairn_crc32c(crc, buf, (size_t)got);
		off += got;
	}
	snprintf(key, sizeof key, "%simage/%016" PRIx64 ".mdb", s->pfx, lsn);
	if ((rc = image_put(vol->os, key, fd, (uint64_t)st.st_size)))
		goto out;
	snprintf(key, sizeof key, "%simage/%016" PRIx64, s->pfx, lsn);
	int64_t now = vol_wall_ms();
	n = snprintf(text, sizeof text, "%s %d\nlsn = %" PRIu64 "\nepoch = %" PRIu64
		     "\nsize = %" PRIu64 "\ncrc32c = %08" PRIx32 "\ntime_ms = %" PRId64 "\n",
		     IMAGE_MAGIC, TEXT_VERSION, lsn, s->epoch, (uint64_t)st.st_size, crc, now);
	rc = objstore_put_if_absent(vol->os, key, text, (size_t)n);
	if (rc == CAIRN_E_EXISTS) {
		/* an earlier attempt of ours landed: the .mdb above is the
		 * same LSN's image (one LSN, one metadata state) */
		cairn_err_clear();
		rc = 0;
	}
	if (rc)
		goto out;
	pthread_mutex_lock(&s->mu);
	s->have_image = 1;
	s->image_lsn = lsn;
	s->image_wall_ms = now;
	s->log_since_image = 0;
	s->images++;
	pthread_mutex_unlock(&s->mu);
	CAIRN_INFO(VOL_MOD, "volume %s: image at LSN %" PRIu64 " in the store (%" PRIu64
		   " bytes)", vol->dir, lsn, (uint64_t)st.st_size);
out:
	free(buf);
	close(fd);
	if (!rc)
		unlink(s->img_path);
	return rc;
}

static int image_write(struct vship *s)
{
	int rc;
	if (unlink(s->img_path) != 0 && errno != ENOENT)
		return cairn_errf(CAIRN_E_IO, "unlink %s: %s", s->img_path, strerror(errno));
	if ((rc = meta_image_write(s->vol->meta, s->img_path, &s->img_lsn)))
		return cairn_err_wrap(rc, "volume %s: write an image", s->vol->dir);
	s->img_pending = 1;
	return 0;
}

/* The store holds no image: one now (docs/log-shipping.md "Bootstrap"). */
static int bootstrap(struct vship *s)
{
	cairn_volume *vol = s->vol;
	smap N = { 0 };
	uint64_t maxid = 0;
	int rc;

	if (!s->img_pending) {
		if ((rc = image_write(s)))
			return rc;
		/* every segment the image may name exists now */
		if ((rc = not_uploaded(vol, &N, &maxid)))
			goto out;
		s->boot_maxseg = maxid;
		smap_free(&N);
	}
	if ((rc = not_uploaded(vol, &N, NULL)))
		goto out;
	for (size_t i = 0; i < N.cap; i++) {
		if (N.k[i] && N.k[i] <= s->boot_maxseg) {
			pthread_mutex_lock(&s->mu);
			snprintf(s->waiting, sizeof s->waiting, "the first image (LSN %" PRIu64
				 ") waits for the upload of segment %" PRIu64, s->img_lsn, N.k[i]);
			pthread_mutex_unlock(&s->mu);
			goto out;
		}
	}
	if ((rc = image_upload(s, s->img_lsn)))
		goto out;
	s->img_pending = 0;
	if ((rc = meta_wal_consumer_set(vol->meta, "ship", s->img_lsn)))
		goto out;
	set_shipped(s, s->img_lsn, 0);
out:
	smap_free(&N);
	return rc;
}

/* A new image after image_log_bytes of log or image_interval_ms. */
static int image_step(struct vship *s)
{
	cairn_volume *vol = s->vol;
	pthread_mutex_lock(&s->mu);
	uint64_t shipped = s->shipped, ilsn = s->image_lsn, since = s->log_since_image;
	int64_t iw = s->image_wall_ms;
	pthread_mutex_unlock(&s->mu);
	int rc;

	if (s->img_pending) {
		if (shipped < s->img_lsn)
			return 0;   /* the data rule holds for it once shipped */
		if ((rc = image_upload(s, s->img_lsn)))
			return rc;
		s->img_pending = 0;
		s->last_trim_ms = 0;  /* trim at once */
		return 0;
	}
	if (shipped <= ilsn)
		return 0;
	if (since < vol->o.image_log_bytes &&
	    vol_wall_ms() - iw < (int64_t)vol->o.image_interval_ms)
		return 0;
	return image_write(s);
}

/* Delete log objects and images older than the newest image that is
 * ship_retention_ms old; never the newest image or anything after it. */
static int trim_step(struct vship *s)
{
	cairn_volume *vol = s->vol;
	int64_t now = vol_now_ms(), every = vol->o.ship_retention_ms;
	uint64_t *imgs = NULL, cut = 0, f;
	size_t nimg = 0;
	char pfx[128];
	vkeys l = { 0 };
	const char **del = NULL;
	size_t ndel = 0;
	int rc;

	/* a listing per retention period (at most a minute), not per round */
	if (every > 60000)
		every = 60000;
	if (every < (int64_t)vol->o.ship_interval_ms)
		every = vol->o.ship_interval_ms;
	if (s->last_trim_ms && now - s->last_trim_ms < every)
		return 0;
	s->last_trim_ms = now;
	if ((rc = image_list(s, &imgs, &nimg)) || nimg < 2)
		goto out;
	for (size_t i = nimg; i-- > 0;) {
		int64_t t;
		if ((rc = manifest_read(s, imgs[i], &t)))
			goto out;
		if (vol_wall_ms() - t >= vol->o.ship_retention_ms) {
			cut = imgs[i];
			break;
		}
	}
	if (!cut)
		goto out;
	snprintf(pfx, sizeof pfx, "%swal/", s->pfx);
	if ((rc = vol_store_keys(vol->os, pfx, &l)))
		goto out;
	if (!(del = calloc(l.n + 2 * nimg + 1, sizeof *del))) {
		rc = cairn_errf(CAIRN_E_NOMEM, "ship: trim");
		goto out;
	}
	/* an object ends where the next begins */
	for (size_t i = 0; i + 1 < l.n; i++) {
		uint64_t nf;
		if (vol_key_hex(l.k[i], pfx, &f) || vol_key_hex(l.k[i + 1], pfx, &nf))
			continue;
		if (nf && nf - 1 <= cut)
			del[ndel++] = l.k[i];
	}
	/* images: the manifest first (recovery looks for manifests) */
	char (*ik)[160] = calloc(2 * nimg + 1, sizeof *ik);
	size_t nik = 0;
	if (!ik) {
		rc = cairn_errf(CAIRN_E_NOMEM, "ship: trim");
		goto out;
	}
	for (size_t i = 0; i < nimg; i++) {
		if (imgs[i] >= cut)
			continue;
		snprintf(ik[nik], sizeof ik[nik], "%simage/%016" PRIx64, s->pfx, imgs[i]);
		del[ndel++] = ik[nik++];
		snprintf(ik[nik], sizeof ik[nik], "%simage/%016" PRIx64 ".mdb", s->pfx, imgs[i]);
		del[ndel++] = ik[nik++];
	}
	for (size_t i = 0; i < ndel && !rc; i++) {
		rc = objstore_delete(vol->os, del[i]);
		if (rc == CAIRN_E_NOTFOUND) {
			cairn_err_clear();
			rc = 0;
		}
	}
	if (ndel && !rc)
		CAIRN_DEBUG(VOL_MOD, "volume %s: %zu log objects and images before LSN %" PRIu64
			    " trimmed from the store", vol->dir, ndel, cut);
	free(ik);
out:
	free(del);
	vol_keys_free(&l);
	free(imgs);
	return rc;
}

/* ---- the thread ---- */

/* Background: the lease, the store check and the fence record, when the
 * store was down at open. */
static int acquire(struct vship *s)
{
	int rc;
	if ((rc = lease_claim(s, 0, 0)))
		return rc;
	if ((rc = store_scan(s))) {
		if (rc == CAIRN_E_FENCED) {
			pthread_mutex_lock(&s->mu);
			s->stale = 1;
			pthread_cond_broadcast(&s->done_cv);
			pthread_mutex_unlock(&s->mu);
		}
		return rc;
	}
	if ((rc = fence_record(s)))
		return rc;
	CAIRN_INFO(VOL_MOD, "volume %s: lease of epoch %" PRIu64 " taken; shipping starts",
		   s->vol->dir, s->epoch);
	return 0;
}

static void ship_round(struct vship *s, int flush)
{
	int rc = 0;
	pthread_mutex_lock(&s->mu);
	int dead = s->fenced || s->stale, held = s->lease_held && s->checked;
	pthread_mutex_unlock(&s->mu);
	if (dead)
		return;
	if (s->next_try_ms && vol_now_ms() < s->next_try_ms && !flush)
		return;
	if (!held && (rc = acquire(s)))
		goto fail;
	if (vol_now_ms() >= s->next_renew_ms && (rc = lease_renew(s)))
		goto fail;
	pthread_mutex_lock(&s->mu);
	int have_image = s->have_image;
	pthread_mutex_unlock(&s->mu);
	if (!have_image) {
		if ((rc = bootstrap(s)))
			goto fail;
		pthread_mutex_lock(&s->mu);
		have_image = s->have_image;
		pthread_mutex_unlock(&s->mu);
		if (!have_image) {
			ship_ok(s);
			return;
		}
	}
	if ((rc = ship_log(s, flush)))
		goto fail;
	if ((rc = image_step(s)))
		goto fail;
	if ((rc = trim_step(s)))
		goto fail;
	ship_ok(s);
	return;
fail:
	if (rc != CAIRN_E_FENCED)
		ship_fail(s, rc);
}

static void *ship_main(void *arg)
{
	struct vship *s = arg;
	cairn_volume *vol = s->vol;

	pthread_mutex_lock(&s->mu);
	for (;;) {
		int64_t now = vol_now_ms(), wake = now + vol->o.ship_interval_ms;
		if (s->lease_held && s->next_renew_ms && s->next_renew_ms < wake)
			wake = s->next_renew_ms;
		if (s->next_try_ms && s->next_try_ms < wake)
			wake = s->next_try_ms;
		while (!s->stop && s->req == s->served && vol_now_ms() < wake) {
			int64_t ms = wake - vol_now_ms();
			vol_cond_wait_ms(&s->cv, &s->mu, ms > 60000 ? 60000u : (unsigned)ms);
		}
		if (s->stop)
			break;
		uint64_t req = s->req;
		int flush = req != s->served;
		pthread_mutex_unlock(&s->mu);
		ship_round(s, flush);
		pthread_mutex_lock(&s->mu);
		s->served = req;
		s->rounds++;
		pthread_cond_broadcast(&s->done_cv);
	}
	pthread_mutex_unlock(&s->mu);
	return NULL;
}

/* ---- the volume's side ---- */

static void opts_defaults(cairn_volume_opts *o)
{
	if (!o->ship_interval_ms)
		o->ship_interval_ms = 5000;
	if (!o->image_log_bytes)
		o->image_log_bytes = 256ull << 20;
	if (!o->image_interval_ms)
		o->image_interval_ms = 3600 * 1000;
	if (!o->ship_retention_ms)
		o->ship_retention_ms = 3600 * 1000;
	else if (o->ship_retention_ms < 0)
		o->ship_retention_ms = 0;
	if (!o->lease_ttl_ms)
		o->lease_ttl_ms = 30000;
	if (o->lease_ttl_ms < 30)
		o->lease_ttl_ms = 30;
}

int vol_ship_claim(cairn_volume *vol, uint64_t conf_epoch, uint64_t *epoch)
{
	cairn_objstore_limits lim;
	struct vship *s;
	char us[37];
	int rc;

	*epoch = conf_epoch + 1;
	if (vol->o.no_ship)
		return 0;
	opts_defaults(&vol->o);
	objstore_limits(vol->os, &lim);
	if (!lim.put_if_absent)
		return cairn_errf(CAIRN_E_UNSUPPORTED,
				  "volume %s: the store %s cannot create an object only if it "
				  "is absent, which log shipping needs to keep one writer "
				  "(docs/log-shipping.md); open with no_ship to run without it",
				  vol->dir, objstore_url(vol->os));
	if (!(s = calloc(1, sizeof *s)))
		return cairn_errf(CAIRN_E_NOMEM, "volume %s: shipper", vol->dir);
	s->vol = vol;
	s->open_lsn = UINT64_MAX;   /* no death counts as shipped before start */
	pthread_mutex_init(&s->mu, NULL);
	pthread_cond_init(&s->cv, NULL);
	pthread_cond_init(&s->done_cv, NULL);
	vol->ship = s;
	vol_uuid_fmt(vol->uuid, us);
	snprintf(s->pfx, sizeof s->pfx, "v/%s/meta/", us);
	snprintf(s->img_path, sizeof s->img_path, "%s/ship-image.tmp", vol->dir);
	if (gethostname(s->host, sizeof s->host - 1) != 0)
		snprintf(s->host, sizeof s->host, "?");
	s->host[sizeof s->host - 1] = 0;
	for (char *p = s->host; *p; p++)
		if (*p == '\n')
			*p = ' ';
	rc = lease_claim(s, conf_epoch, 1);
	if (rc == CAIRN_E_BUSY || rc == CAIRN_E_FENCED || rc == CAIRN_E_CORRUPT ||
	    rc == CAIRN_E_VERSION)
		return rc;
	if (rc) {
		/* The store does not answer: open anyway; the lease is
		 * claimed in the background, and until then nothing is
		 * shipped or uploaded (vol_ship_upload_ok) and gc deletes
		 * nothing. */
		CAIRN_WARN(VOL_MOD, "volume %s: cannot claim the writer's lease (%s); the "
			   "volume opens, and the lease is retried in the background "
			   "(until then nothing is shipped or uploaded and gc deletes nothing)",
			   vol->dir, cairn_errmsg());
		cairn_err_clear();
		if (!s->epoch)
			s->epoch = conf_epoch + 1;   /* else: its lease is in the store */
		s->warned = 1;
	}
	*epoch = s->epoch;
	return 0;
}

int vol_ship_check(cairn_volume *vol)
{
	struct vship *s = vol->ship;
	int rc;
	if (vol->o.no_ship) {
		/* Without shipping nothing may hold the local log back. */
		rc = meta_wal_consumer_remove(vol->meta, "ship");
		if (rc == CAIRN_E_NOTFOUND) {
			cairn_err_clear();
			rc = 0;
		}
		return rc;
	}
	if (!s || !s->lease_held)
		return 0;
	rc = store_scan(s);
	if (rc == CAIRN_E_FENCED || rc == CAIRN_E_CORRUPT || rc == CAIRN_E_VERSION)
		return rc;
	if (rc) {
		CAIRN_WARN(VOL_MOD, "volume %s: cannot read the store's log (%s); retried in "
			   "the background", vol->dir, cairn_errmsg());
		cairn_err_clear();
		pthread_mutex_lock(&s->mu);
		s->lease_held = 0;   /* acquire again: claim is idempotent for us */
		pthread_mutex_unlock(&s->mu);
		s->warned = 1;
	}
	return 0;
}

int vol_ship_start(cairn_volume *vol)
{
	struct vship *s = vol->ship;
	uint64_t first, last;
	int rc;
	if (!s)
		return 0;
	if ((rc = meta_wal_bounds(vol->meta, &first, &last)))
		return rc;
	pthread_mutex_lock(&s->mu);
	s->open_lsn = last;
	pthread_mutex_unlock(&s->mu);
	if (s->lease_held && s->checked && (rc = fence_record(s)))
		return rc;
	if (pthread_create(&s->thr, NULL, ship_main, s) != 0)
		return cairn_errf(CAIRN_E_NOMEM, "volume %s: start the shipper", vol->dir);
	s->thread = 1;
	/* the fence record goes out at once */
	pthread_mutex_lock(&s->mu);
	s->req++;
	pthread_cond_signal(&s->cv);
	pthread_mutex_unlock(&s->mu);
	return 0;
}

void vol_ship_stop(cairn_volume *vol)
{
	struct vship *s = vol->ship;
	if (!s || !s->thread)
		return;
	pthread_mutex_lock(&s->mu);
	s->stop = 1;
	pthread_cond_broadcast(&s->cv);
	pthread_cond_broadcast(&s->done_cv);
	pthread_mutex_unlock(&s->mu);
	pthread_join(s->thr, NULL);
	s->thread = 0;
	/* a last round: what the uploader got out is shipped now */
	pthread_mutex_lock(&s->mu);
	int go = s->lease_held && s->checked && !s->fenced && !s->stale;
	pthread_mutex_unlock(&s->mu);
	if (go) {
		s->next_try_ms = 0;
		ship_round(s, 1);
	}
}

void vol_ship_free(cairn_volume *vol)
{
	struct vship *s = vol->ship;
	if (!s)
		return;
	vol_ship_stop(vol);
	/* Released: the lease stays (its epoch is never reused) with ttl 0,
	 * which no one takes for a live writer.  The caller's error message
	 * (a failed open) survives the store calls. */
	char saved[1024];
	cairn_err_copy(saved, sizeof saved);
	if (s->lease_held && !s->fenced && vol->os && lease_put(s, 0, 0))
		CAIRN_WARN(VOL_MOD, "volume %s: release the lease: %s", vol->dir, cairn_errmsg());
	if (saved[0])
		cairn_err_set(CAIRN_E_INTERNAL, saved);
	else
		cairn_err_clear();
	if (s->img_pending)
		unlink(s->img_path);
	recs_clear(s);
	free(s->r);
	free(s->dead);
	meta_logbuf_free(&s->lb);
	pthread_mutex_destroy(&s->mu);
	pthread_cond_destroy(&s->cv);
	pthread_cond_destroy(&s->done_cv);
	free(s);
	vol->ship = NULL;
}

void vol_ship_stats(cairn_volume *vol, cairn_volume_stats *out)
{
	struct vship *s = vol->ship;
	uint64_t first, last;
	if (vol->meta && !meta_wal_bounds(vol->meta, &first, &last))
		out->last_lsn = last;
	else
		cairn_err_clear();
	if (!s)
		return;
	pthread_mutex_lock(&s->mu);
	out->shipped_lsn = s->shipped;
	out->ship_objects = s->objects;
	out->ship_bytes = s->bytes;
	out->ship_failures = s->failures;
	out->images = s->images;
	out->image_lsn = s->image_lsn;
	out->lease_epoch = s->lease_held ? s->epoch : 0;
	out->fenced = s->fenced || s->stale;
	pthread_mutex_unlock(&s->mu);
}

int volume_ship_flush(cairn_volume *vol)
{
	struct vship *s = vol->ship;
	uint64_t first, target;
	int rc;

	VOL_RO_CHECK(vol);
	if (!s)
		return cairn_errf(CAIRN_E_UNSUPPORTED, "volume %s: opened without log shipping",
				  vol->dir);
	pthread_mutex_lock(&s->mu);
	int dead = s->fenced || s->stale;
	pthread_mutex_unlock(&s->mu);
	if (dead)
		return cairn_errf(CAIRN_E_FENCED, "volume %s: %s", vol->dir, s->last_err);
	if ((rc = meta_wal_bounds(vol->meta, &first, &target)))
		return rc;
	/* Uploads wait for the lease (vol_ship_upload_ok): a round that
	 * claims it first, when the store did not answer before. */
	pthread_mutex_lock(&s->mu);
	if (!(s->lease_held && s->checked) && s->thread) {
		int64_t w0 = vol_now_ms();
		uint64_t mine = ++s->req;
		pthread_cond_signal(&s->cv);
		while (s->served < mine && !s->fenced && !s->stale && !s->stop &&
		       vol_now_ms() - w0 < vol->o.upload_wait_ms) {
			vol_cond_wait_ms(&s->done_cv, &s->mu, 100);
		}
	}
	dead = s->fenced || s->stale;
	pthread_mutex_unlock(&s->mu);
	if (dead)
		return cairn_errf(CAIRN_E_FENCED, "volume %s: %s", vol->dir, s->last_err);
	/* Records name chunks of the staging segment: their upload first. */
	if ((rc = vol_wait_uploaded(vol, 0)))
		return rc;
	int64_t t0 = vol_now_ms();
	uint64_t progress = 0;
	pthread_mutex_lock(&s->mu);
	for (;;) {
		if (s->fenced || s->stale) {
			rc = cairn_errf(CAIRN_E_FENCED, "volume %s: %s", vol->dir, s->last_err);
			break;
		}
		if (s->shipped >= target && s->have_image)
			break;
		if (s->shipped != progress) {
			progress = s->shipped;
			t0 = vol_now_ms();
		}
		int64_t waited = vol_now_ms() - t0;
		if (waited >= vol->o.upload_wait_ms) {
			if (s->fail_since_ms)
				rc = cairn_errf(s->last_rc ? s->last_rc : CAIRN_E_STORE,
						"volume %s: log not shipped past LSN %" PRIu64
						" (wanted %" PRIu64 ") after %" PRId64 " ms: %s", vol->dir,
						s->shipped, target, waited, s->last_err);
			else
				rc = cairn_errf(CAIRN_E_TIMEOUT,
						"volume %s: log not shipped past LSN %" PRIu64
						" (wanted %" PRIu64 ") after %" PRId64 " ms%s%s", vol->dir,
						s->shipped, target, waited, s->waiting[0] ? ": " : "",
						s->waiting);
			break;
		}
		uint64_t r0 = s->rounds, mine = ++s->req;
		pthread_cond_signal(&s->cv);
		while (s->served < mine && !s->fenced && !s->stale && !s->stop) {
			vol_cond_wait_ms(&s->done_cv, &s->mu, 100);
			if (vol_now_ms() - t0 >= vol->o.upload_wait_ms)
				break;
		}
		if (s->rounds != r0 && s->shipped < target && !s->fail_since_ms && !s->fenced) {
			/* blocked by the data rule: let the uploader go on */
			pthread_mutex_unlock(&s->mu);
			struct timespec d = { 0, 20 * 1000000 };
			nanosleep(&d, NULL);
			pthread_mutex_lock(&s->mu);
		}
	}
	pthread_mutex_unlock(&s->mu);
	return rc;
}

int vol_ship_flush_if_on(cairn_volume *vol)
{
	return vol->ship ? volume_ship_flush(vol) : 0;
}

int vol_ship_upload_ok(cairn_volume *vol)
{
	struct vship *s = vol->ship;
	if (!s)
		return 1;
	pthread_mutex_lock(&s->mu);
	int ok = s->lease_held && s->checked && !s->stale;
	pthread_mutex_unlock(&s->mu);
	return ok;
}

/* ---- gc ---- */

int vol_ship_gc_ok(cairn_volume *vol)
{
	struct vship *s = vol->ship;
	if (!s)
		return 1;
	pthread_mutex_lock(&s->mu);
	int ok = s->lease_held && s->checked && !s->fenced && !s->stale;
	pthread_mutex_unlock(&s->mu);
	return ok;
}

void vol_ship_died(cairn_volume *vol, const uint64_t *ids, size_t n, uint64_t lsn)
{
	struct vship *s = vol->ship;
	if (!s || !n)
		return;
	pthread_mutex_lock(&s->mu);
	if (s->ndead + n > s->cdead) {
		size_t nc = s->cdead ? s->cdead : 64;
		while (nc < s->ndead + n)
			nc *= 2;
		vdeath *nd = realloc(s->dead, nc * sizeof *nd);
		if (!nd) {
			/* untracked: they fall back to open_lsn, which is raised
			 * to their death (later for the others: still safe) */
			if (s->open_lsn < lsn)
				s->open_lsn = lsn;
			pthread_mutex_unlock(&s->mu);
			CAIRN_WARN(VOL_MOD, "volume %s: out of memory tracking dead segments",
				   vol->dir);
			return;
		}
		s->dead = nd;
		s->cdead = nc;
	}
	for (size_t i = 0; i < n; i++) {
		s->dead[s->ndead].seg = ids[i];
		s->dead[s->ndead++].lsn = lsn;
	}
	pthread_mutex_unlock(&s->mu);
}

int vol_ship_death_shipped(cairn_volume *vol, uint64_t seg, uint64_t *death_lsn)
{
	struct vship *s = vol->ship;
	if (!s) {
		*death_lsn = 0;
		return 1;
	}
	pthread_mutex_lock(&s->mu);
	uint64_t lsn = s->open_lsn;
	for (size_t i = 0; i < s->ndead; i++)
		if (s->dead[i].seg == seg)
			lsn = s->dead[i].lsn;
	int ok = s->lease_held && s->checked && !s->fenced && !s->stale && s->shipped >= lsn;
	pthread_mutex_unlock(&s->mu);
	*death_lsn = lsn;
	return ok;
}

void vol_ship_forget(cairn_volume *vol, uint64_t seg)
{
	struct vship *s = vol->ship;
	if (!s)
		return;
	pthread_mutex_lock(&s->mu);
	for (size_t i = 0; i < s->ndead; i++) {
		if (s->dead[i].seg == seg) {
			s->dead[i] = s->dead[--s->ndead];
			break;
		}
	}
	pthread_mutex_unlock(&s->mu);
}

void vol_ship_wait_lsn(cairn_volume *vol, uint64_t lsn)
{
	struct vship *s = vol->ship;
	if (!s || !s->thread)
		return;
	pthread_mutex_lock(&s->mu);
	if (s->shipped < lsn && !s->fenced && !s->stale) {
		/* one round that starts after this request (a round in
		 * progress may have read the log before lsn was committed):
		 * bounded by that round's I/O */
		uint64_t mine = ++s->req;
		pthread_cond_signal(&s->cv);
		while (s->served < mine && !s->stop && !s->fenced)
			pthread_cond_wait(&s->done_cv, &s->mu);
	}
	pthread_mutex_unlock(&s->mu);
}
