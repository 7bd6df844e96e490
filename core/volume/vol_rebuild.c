/*
 * vol_rebuild.c - the reading side of log shipping: rebuilding a volume
 * from its store alone (volume_recover_store, `cairn recover`), and the
 * readers of what the writer's shipper (vol_ship.c) puts under
 * v/<uuid>/meta/ that followers (vol_follow.c) share.  Formats:
 * docs/log-shipping.md "What is in the store"; the log object:
 * docs/format.md "Log object" (meta_logobj_decode).
 *
 * Recovery, in order:
 *
 *   find the volume (v/<uuid>/ listed, or --uuid) -> meta/volume
 *   -> leases: refuse a fresh one of a writer (unless force)
 *   -> newest image whose manifest, size, crc32c and schema check out
 *        (downloaded to <dir>/image.tmp, meta_image_install -> <dir>/meta)
 *   -> log objects from the image's LSN + 1 on, each verified whole
 *        (meta_logobj_decode) before its records are applied
 *   -> segments the log left in flight (no chunk may point into them: the
 *        data rule) are marked dead, so gc deletes what of them the store
 *        holds
 *   -> volume.conf (same uuid, an epoch above every epoch in the store,
 *        written last: a directory without it is not a volume)
 *   -> volume_open (no shipping) + volume_fsck + volume_close
 *
 * Guarantees:
 *   1. Never a silently shorter namespace: a log object that fails its
 *      checks, or a missing object while a later one exists (a gap), is
 *      CAIRN_E_CORRUPT naming the LSN and the key, and nothing is left
 *      that looks like a volume (no volume.conf).
 *   2. The new directory's keys never collide with the old writer's: its
 *      epoch is above every epoch in meta/lease/ and under seg/.
 *   3. Every length and number read from the store is checked before use.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cairn/codec.h"
#include "vol_int.h"

#define LOGOBJ_MAX (64ull << 20)      /* log objects are at most 16 MiB */
#define IMG_PIECE (8u << 20)          /* image download granularity */

typedef struct u64v {
	uint64_t *v;
	size_t n, cap;
} u64v;

static int u64v_push(u64v *a, uint64_t x)
{
	if (a->n == a->cap) {
		size_t nc = a->cap ? a->cap * 2 : 64;
		uint64_t *nv = realloc(a->v, nc * sizeof *nv);
		if (!nv)
			return cairn_errf(CAIRN_E_NOMEM, "list of %zu numbers", nc);
		a->v = nv;
		a->cap = nc;
	}
	a->v[a->n++] = x;
	return 0;
}

static int u64_cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* ---- which volume ---- */

typedef struct uuids {
	char (*v)[37];
	size_t n, cap;
} uuids;

static int uuid_cb(const cairn_obj_entry *e, void *arg)
{
	uuids *u = arg;
	const char *k = e->key;
	uint8_t b[16];
	char s[37];
	if (strncmp(k, "v/", 2) != 0 || strlen(k) < 2 + 36 + 1 || k[2 + 36] != '/')
		return 0;
	memcpy(s, k + 2, 36);
	s[36] = 0;
	if (vol_uuid_parse(s, b))
		return 0;
	if (u->n && strcmp(u->v[u->n - 1], s) == 0)
		return 0;  /* keys come in order: one run per volume */
	if (u->n == u->cap) {
		size_t nc = u->cap ? u->cap * 2 : 8;
		char (*nv)[37] = realloc(u->v, nc * sizeof *nv);
		if (!nv)
			return cairn_errf(CAIRN_E_NOMEM, "volume list");
		u->v = nv;
		u->cap = nc;
	}
	memcpy(u->v[u->n++], s, 37);
	return 0;
}

int vol_shipped_find(cairn_objstore *os, const char *uuid, uint8_t out[16])
{
	uuids u = { 0 };
	int rc;

	if (uuid) {
		if (vol_uuid_parse(uuid, out))
			return cairn_errf(CAIRN_E_INVAL, "'%s' is not a volume uuid "
					  "(8-4-4-4-12 lower-case hex)", uuid);
		return 0;
	}
	/* Listing v/ walks every key of every volume: recovery is rare and
	 * the store has no delimiter listing in its contract. */
	if ((rc = vol_store_list(os, "v/", uuid_cb, &u)))
		goto out;
	if (u.n == 0) {
		rc = cairn_errf(CAIRN_E_NOTFOUND, "store %s holds no cairn volume (nothing "
				"under v/)", objstore_url(os));
	} else if (u.n > 1) {
		char list[400];
		size_t w = 0;
		for (size_t i = 0; i < u.n && w + 40 < sizeof list; i++)
			w += (size_t)snprintf(list + w, sizeof list - w, "%s%s", i ? ", " : "",
					      u.v[i]);
		rc = cairn_errf(CAIRN_E_INVAL, "store %s holds %zu volumes (%s%s)",
				objstore_url(os), u.n, list, w + 40 >= sizeof list ? ", ..." : "");
	} else {
		rc = vol_uuid_parse(u.v[0], out) ?
			cairn_errf(CAIRN_E_INTERNAL, "uuid %s", u.v[0]) : 0;
	}
out:
	free(u.v);
	return rc;
}

/* ---- meta/volume ---- */

int vol_shipped_volume(cairn_objstore *os, const char *vpfx, vshipped_vol *out)
{
	char key[CAIRN_KEY_MAX];
	vtkv kv[] = { { "uuid", 0, "" }, { "segment_size", 0, "" }, { "zstd_level", 0, "" },
		      { "created_ms", 0, "" } };
	uint8_t *buf = NULL, u[16];
	size_t len;
	uint64_t x;
	int rc;

	memset(out, 0, sizeof *out);
	snprintf(key, sizeof key, "%smeta/volume", vpfx);
	if ((rc = vol_shipped_get(os, key, VOL_TEXT_MAX, &buf, &len))) {
		if (rc != CAIRN_E_NOTFOUND)
			return cairn_err_wrap(rc, "read %s", key);
		cairn_obj_list l = { 0 };
		int any = objstore_list(os, vpfx, NULL, 1, &l) == 0 && l.n > 0;
		objstore_list_free(&l);
		if (!any)
			return cairn_errf(CAIRN_E_NOTFOUND, "store %s holds no volume %.36s",
					  objstore_url(os), vpfx + 2);
		return cairn_errf(CAIRN_E_NOTFOUND, "%s is missing: the volume under %s "
				  "never shipped its metadata (was it written by a "
				  "cairn without log shipping, or with no_ship?)", key, vpfx);
	}
	rc = vol_text_parse(key, buf, len, "cairn-volume-meta", kv, 4);
	free(buf);
	if (rc)
		return rc;
	if (!kv[0].have || vol_uuid_parse(kv[0].val, u))
		return cairn_errf(CAIRN_E_CORRUPT, "%s: bad or missing uuid", key);
	if (strncmp(vpfx + 2, kv[0].val, 36) != 0)
		return cairn_errf(CAIRN_E_CORRUPT, "%s names volume %s, not the one of its "
				  "prefix", key, kv[0].val);
	memcpy(out->uuid, u, 16);
	if ((rc = vol_text_u64(key, &kv[1], 10, &out->segment_size)))
		return rc;
	if (out->segment_size < (1u << 20) || out->segment_size > (4ull << 30))
		return cairn_errf(CAIRN_E_CORRUPT, "%s: segment_size %" PRIu64 " out of range",
				  key, out->segment_size);
	{
		char *end;
		errno = 0;
		long lv = kv[2].have ? strtol(kv[2].val, &end, 10) : 0;
		if (!kv[2].have || errno || *end || end == kv[2].val || lv < -1 || lv > 22)
			return cairn_errf(CAIRN_E_CORRUPT, "%s: bad or missing zstd_level", key);
		out->zstd_level = (int)lv;
	}
	if (kv[3].have && (rc = vol_text_u64(key, &kv[3], 10, &x)))
		return rc;
	return 0;
}

/* ---- leases ---- */

typedef struct lease_scan {
	u64v epochs;
	const char *pfx;
} lease_scan;

static int lease_cb(const cairn_obj_entry *e, void *arg)
{
	lease_scan *s = arg;
	uint64_t ep;
	const char *name = e->key + strlen(s->pfx);
	if (vol_hex16(name, strlen(name), &ep))
		return 0;  /* not a lease (a temporary of another tool?) */
	return u64v_push(&s->epochs, ep);
}

/* The highest epoch under meta/lease/ (0: none) and, when the newest lease
 * is fresh, a description of its holder in busy (else busy[0] = 0). */
static int leases_check(cairn_objstore *os, const char *vpfx, uint64_t *max_epoch,
			char *busy, size_t busy_size)
{
	char pfx[CAIRN_KEY_MAX], key[CAIRN_KEY_MAX];
	lease_scan s = { { 0 }, pfx };
	uint8_t *buf = NULL;
	size_t len;
	int rc;

	*max_epoch = 0;
	busy[0] = 0;
	snprintf(pfx, sizeof pfx, "%smeta/lease/", vpfx);
	if ((rc = vol_store_list(os, pfx, lease_cb, &s)))
		goto out;
	if (!s.epochs.n)
		goto out;
	qsort(s.epochs.v, s.epochs.n, sizeof *s.epochs.v, u64_cmp);
	*max_epoch = s.epochs.v[s.epochs.n - 1];
	snprintf(key, sizeof key, "%s%016" PRIx64, pfx, *max_epoch);
	rc = vol_shipped_get(os, key, VOL_TEXT_MAX, &buf, &len);
	if (rc == CAIRN_E_NOTFOUND) {  /* deleted since the listing */
		cairn_err_clear();
		rc = 0;
		goto out;
	}
	if (rc)
		goto out;
	{
		vtkv kv[] = { { "epoch", 0, "" }, { "instance", 0, "" }, { "host", 0, "" },
			      { "pid", 0, "" }, { "renewed_ms", 0, "" }, { "ttl_ms", 0, "" } };
		uint64_t renewed, ttl, ep;
		if ((rc = vol_text_parse(key, buf, len, "cairn-lease", kv, 6)) ||
		    (rc = vol_text_u64(key, &kv[0], 10, &ep)) ||
		    (rc = vol_text_u64(key, &kv[4], 10, &renewed)) ||
		    (rc = vol_text_u64(key, &kv[5], 10, &ttl)))
			goto out;
		if (ep != *max_epoch) {
			rc = cairn_errf(CAIRN_E_CORRUPT, "%s says epoch %" PRIu64, key, ep);
			goto out;
		}
		uint64_t now = (uint64_t)vol_wall_ms();
		/* fresh: renewed less than ttl ago (sums checked: the numbers
		 * come from the store) */
		if (renewed <= UINT64_MAX - ttl && now < renewed + ttl)
			snprintf(busy, busy_size, "the writer on host %s (pid %s, epoch %" PRIu64
				 ") renewed its lease %" PRIu64 " ms ago (ttl %" PRIu64 " ms)",
				 kv[2].have ? kv[2].val : "?", kv[3].have ? kv[3].val : "?", ep,
				 now > renewed ? now - renewed : 0, ttl);
	}
out:
	free(buf);
	free(s.epochs.v);
	return rc;
}

/* A released lease (ttl 0) of epoch for instance: newer than the live
 * writer's, which its renewal takes for a takeover. */
static int lease_fence(cairn_objstore *os, const char *vpfx, uint64_t epoch,
		       const uint8_t instance[16])
{
	char key[CAIRN_KEY_MAX], text[800], host[256], is[37];
	if (gethostname(host, sizeof host) != 0)
		snprintf(host, sizeof host, "?");
	host[sizeof host - 1] = 0;
	vol_uuid_fmt(instance, is);
	int n = snprintf(text, sizeof text, "cairn-lease 1\nepoch = %" PRIu64 "\ninstance = %s\n"
			 "host = %s\npid = %ld\nrenewed_ms = %" PRId64 "\nttl_ms = 0\n", epoch,
			 is, host, (long)getpid(), vol_wall_ms());
	if (n < 0 || (size_t)n >= sizeof text)
		return cairn_errf(CAIRN_E_RANGE, "lease text too long");
	snprintf(key, sizeof key, "%smeta/lease/%016" PRIx64, vpfx, epoch);
	int rc = objstore_put_if_absent(os, key, text, (size_t)n);
	if (rc)
		return cairn_err_wrap(rc, "recover: claim %s to fence the old writer", key);
	return 0;
}

/* The highest epoch among the segment keys v/<uuid>/seg/<epoch>/... */
typedef struct seg_scan {
	const char *pfx;
	uint64_t max;
} seg_scan;

static int segep_cb(const cairn_obj_entry *e, void *arg)
{
	seg_scan *s = arg;
	const char *p = e->key + strlen(s->pfx);
	const char *slash = strchr(p, '/');
	uint64_t ep;
	if (slash && !vol_hex16(p, (size_t)(slash - p), &ep) && ep > s->max)
		s->max = ep;
	return 0;
}

/* ---- images ---- */

typedef struct img_scan {
	const char *pfx;
	u64v lsns;
} img_scan;

static int img_cb(const cairn_obj_entry *e, void *arg)
{
	img_scan *s = arg;
	const char *name = e->key + strlen(s->pfx);
	uint64_t lsn;
	if (vol_hex16(name, strlen(name), &lsn))
		return 0;  /* the .mdb beside its manifest */
	return u64v_push(&s->lsns, lsn);
}

/* LSNs of the image manifests, ascending. */
static int images_list(cairn_objstore *os, const char *vpfx, u64v *out)
{
	char pfx[CAIRN_KEY_MAX];
	img_scan s = { pfx, { 0 } };
	int rc;
	snprintf(pfx, sizeof pfx, "%smeta/image/", vpfx);
	if ((rc = vol_store_list(os, pfx, img_cb, &s))) {
		free(s.lsns.v);
		return rc;
	}
	if (s.lsns.n)
		qsort(s.lsns.v, s.lsns.n, sizeof *s.lsns.v, u64_cmp);
	*out = s.lsns;
	return 0;
}

int vol_shipped_image_newest(cairn_objstore *os, const char *vpfx, uint64_t *lsn)
{
	u64v l = { 0 };
	int rc = images_list(os, vpfx, &l);
	*lsn = 0;
	if (!rc && l.n)
		*lsn = l.v[l.n - 1];
	free(l.v);
	return rc;
}

/* Download and check the image of manifest LSN lsn into path. */
static int image_fetch_one(cairn_objstore *os, const char *vpfx, uint64_t lsn,
			   const char *path, vshipped_img *out)
{
	char mkey[CAIRN_KEY_MAX], dkey[CAIRN_KEY_MAX];
	vtkv kv[] = { { "lsn", 0, "" }, { "epoch", 0, "" }, { "size", 0, "" },
		      { "crc32c", 0, "" }, { "time_ms", 0, "" } };
	uint8_t *buf = NULL, *piece = NULL;
	uint64_t crc64, off = 0;
	uint32_t crc = 0;
	size_t len;
	int fd = -1, rc;

	memset(out, 0, sizeof *out);
	snprintf(mkey, sizeof mkey, "%smeta/image/%016" PRIx64, vpfx, lsn);
	snprintf(dkey, sizeof dkey, "%s.mdb", mkey);
	if ((rc = vol_shipped_get(os, mkey, VOL_TEXT_MAX, &buf, &len)))
		return cairn_err_wrap(rc, "read image manifest %s", mkey);
	rc = vol_text_parse(mkey, buf, len, "cairn-image", kv, 5);
	free(buf);
	buf = NULL;
	if (rc || (rc = vol_text_u64(mkey, &kv[0], 10, &out->lsn)) ||
	    (rc = vol_text_u64(mkey, &kv[1], 10, &out->epoch)) ||
	    (rc = vol_text_u64(mkey, &kv[2], 10, &out->size)) ||
	    (rc = vol_text_u64(mkey, &kv[3], 16, &crc64)))
		return rc;
	if (strlen(kv[3].val) != 8)
		return cairn_errf(CAIRN_E_CORRUPT, "%s: crc32c '%s' is not 8 hex digits", mkey,
				  kv[3].val);
	if (kv[4].have) {
		uint64_t t;
		if ((rc = vol_text_u64(mkey, &kv[4], 10, &t)))
			return rc;
		if (t > (uint64_t)INT64_MAX / 1000000)
			return cairn_errf(CAIRN_E_CORRUPT, "%s: time_ms %" PRIu64 " out of range",
					  mkey, t);
		out->time_ms = (int64_t)t;
	}
	if (out->lsn != lsn)
		return cairn_errf(CAIRN_E_CORRUPT, "%s says LSN %" PRIu64, mkey, out->lsn);
	out->crc = (uint32_t)crc64;
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0)
		return cairn_errf(errno == EEXIST ? CAIRN_E_EXISTS : CAIRN_E_IO, "create %s: %s",
				  path, strerror(errno));
	piece = malloc(IMG_PIECE);
	if (!piece) {
		rc = cairn_errf(CAIRN_E_NOMEM, "image download buffer");
		goto out;
	}
	/* Read one byte past the promised size: an object longer than its
	 * manifest says is caught too. */
	for (;;) {
		uint64_t got = 0;
		if ((rc = objstore_get(os, dkey, off, piece, IMG_PIECE, &got))) {
			rc = cairn_err_wrap(rc, "download image %s", dkey);
			goto out;
		}
		if (got == 0)
			break;
		if (off + got > out->size) {
			rc = cairn_errf(CAIRN_E_CORRUPT, "image %s is longer than the %" PRIu64
					" bytes its manifest %s says", dkey, out->size, mkey);
			goto out;
		}
		crc = cairn_crc32c(crc, piece, (size_t)got);
		if (pwrite(fd, piece, (size_t)got, (off_t)off) != (ssize_t)got) {
			rc = cairn_errf(CAIRN_E_IO, "write %s: %s", path, strerror(errno));
			goto out;
		}
		off += got;
		if (got < IMG_PIECE)
			break;
	}
	if (off != out->size) {
		rc = cairn_errf(CAIRN_E_CORRUPT, "image %s is %" PRIu64 " bytes, its manifest %s "
				"says %" PRIu64, dkey, off, mkey, out->size);
		goto out;
	}
	if (crc != out->crc) {
		rc = cairn_errf(CAIRN_E_CORRUPT, "image %s: crc32c %08x, its manifest %s says "
				"%08x", dkey, crc, mkey, out->crc);
		goto out;
	}
	if (fsync(fd) != 0) {
		rc = cairn_errf(CAIRN_E_IO, "fsync %s: %s", path, strerror(errno));
		goto out;
	}
	close(fd);
	fd = -1;
	uint64_t il = 0;
	if ((rc = meta_image_lsn(path, &il))) {
		rc = cairn_err_wrap(rc, "image %s", dkey);
		goto out;
	}
	if (il != lsn)
		rc = cairn_errf(CAIRN_E_CORRUPT, "image %s holds LSN %" PRIu64 ", its manifest "
				"%s says %" PRIu64, dkey, il, mkey, lsn);
out:
	if (fd >= 0)
		close(fd);
	free(piece);
	if (rc)
		unlink(path);
	return rc;
}

int vol_shipped_image(cairn_objstore *os, const char *vpfx, uint64_t above,
		      const char *path, vshipped_img *out)
{
	u64v l = { 0 };
	int rc = images_list(os, vpfx, &l), first_rc = 0;
	char first_msg[512] = "";

	if (rc)
		return rc;
	/* Newest first; an image that fails its checks is reported and the
	 * next older one tried (the log after it decides whether it is
	 * enough: a gap is an error of its own). */
	for (size_t i = l.n; i-- > 0;) {
		if (l.v[i] <= above)
			break;
		rc = image_fetch_one(os, vpfx, l.v[i], path, out);
		if (!rc)
			goto out;
		if (rc == CAIRN_E_EXISTS)
			goto out;
		if (rc != CAIRN_E_CORRUPT && rc != CAIRN_E_VERSION && rc != CAIRN_E_NOTFOUND)
			goto out;  /* the store failing, not the image */
		CAIRN_WARN(VOL_MOD, "image at LSN %" PRIu64 " of %s unusable: %s", l.v[i], vpfx,
			   cairn_errmsg());
		if (!first_rc) {
			first_rc = rc;
			snprintf(first_msg, sizeof first_msg, "%s", cairn_errmsg());
		}
	}
	if (first_rc)
		rc = cairn_errf(first_rc, "no usable image of %s: %s", vpfx, first_msg);
	else if (above)
		rc = cairn_errf(CAIRN_E_NOTFOUND, "no image of %s newer than LSN %" PRIu64, vpfx,
				above);
	else
		rc = cairn_errf(CAIRN_E_NOTFOUND, "the store holds no image of %s (meta/image/ "
				"is empty): nothing to rebuild from", vpfx);
out:
	free(l.v);
	return rc;
}

/* ---- log objects ---- */

typedef struct wal_scan {
	const char *pfx;
	u64v firsts;
} wal_scan;

static int wal_cb(const cairn_obj_entry *e, void *arg)
{
	wal_scan *s = arg;
	const char *name = e->key + strlen(s->pfx);
	uint64_t lsn;
	if (vol_hex16(name, strlen(name), &lsn))
		return 0;
	return u64v_push(&s->firsts, lsn);
}

int vol_shipped_log_list(cairn_objstore *os, const char *vpfx, uint64_t **firsts, size_t *n)
{
	char pfx[CAIRN_KEY_MAX];
	wal_scan s = { pfx, { 0 } };
	int rc;
	snprintf(pfx, sizeof pfx, "%smeta/wal/", vpfx);
	*firsts = NULL;
	*n = 0;
	if ((rc = vol_store_list(os, pfx, wal_cb, &s))) {
		free(s.firsts.v);
		return rc;
	}
	if (s.firsts.n)
		qsort(s.firsts.v, s.firsts.n, sizeof *s.firsts.v, u64_cmp);
	*firsts = s.firsts.v;
	*n = s.firsts.n;
	return 0;
}

typedef struct apply_ctx {
	cairn_meta *m;
	uint64_t applied;
	uint64_t records;
	int64_t time_ns;
	int rc;
	uint64_t kfirst;        /* the LSN the object's key names */
	int seen;
} apply_ctx;

static int apply_cb(uint64_t lsn, const void *rec, size_t len, void *arg)
{
	apply_ctx *a = arg;
	if (!a->seen) {
		/* an object under another object's name (its first record is
		 * not the key's LSN) is not the log: never skip over it */
		a->seen = 1;
		if (lsn != a->kfirst) {
			a->rc = cairn_errf(CAIRN_E_CORRUPT, "its first record is LSN %" PRIu64
					   ", not the %" PRIu64 " its key names", lsn, a->kfirst);
			return 1;
		}
	}
	if (lsn <= a->applied)
		return 0;  /* the object began before the image */
	if (lsn != a->applied + 1) {
		a->rc = cairn_errf(CAIRN_E_CORRUPT, "record %" PRIu64 " where %" PRIu64
				   " was due", lsn, a->applied + 1);
		return 1;
	}
	if ((a->rc = meta_wal_apply(a->m, rec, len)))
		return 1;
	/* docs/format.md "WAL record": bytes 16..23, the time of the
	 * transaction (meta_logobj_decode checked the record's length) */
	if (len >= 24) {
		const uint8_t *p = (const uint8_t *)rec + 16;
		uint64_t t = 0;
		for (int i = 7; i >= 0; i--)
			t = t << 8 | p[i];
		a->time_ns = (int64_t)t;
	}
	a->applied = lsn;
	a->records++;
	return 0;
}

int vol_shipped_apply(cairn_meta *m, const char *key, const uint8_t *buf, size_t len,
		      uint64_t *applied, uint64_t *records, int64_t *time_ns)
{
	apply_ctx a = { m, *applied, 0, 0, 0, 0, 0 };
	meta_logobj_hdr h;
	const char *name = strrchr(key, '/');
	name = name ? name + 1 : key;
	if (vol_hex16(name, strlen(name), &a.kfirst))
		return cairn_errf(CAIRN_E_CORRUPT, "log object %s: the key names no LSN", key);
	int rc = meta_logobj_decode(buf, len, &h, apply_cb, &a);
	if (!rc && a.rc)
		rc = a.rc;
	if (!rc && h.last > a.applied)
		rc = cairn_errf(CAIRN_E_CORRUPT, "object ends at LSN %" PRIu64 " but only %" PRIu64
				" was applied", h.last, a.applied);
	if (!rc && h.first > *applied + 1)
		rc = cairn_errf(CAIRN_E_CORRUPT, "object starts at LSN %" PRIu64 ", after %" PRIu64
				" (a gap)", h.first, *applied + 1);
	*applied = a.applied;
	if (records)
		*records += a.records;
	if (time_ns && a.time_ns)
		*time_ns = a.time_ns;
	if (rc)
		return cairn_err_wrap(rc == CAIRN_E_VERSION ? rc : CAIRN_E_CORRUPT,
				      "log object %s (LSN %" PRIu64 ")", key, a.applied + 1);
	return 0;
}

/* ---- recovery ---- */

/* The states of a segment not (yet) in the store. */
static int inflight_keep(const meta_seg *s)
{
	return s->state == META_SEG_STAGING || s->state == META_SEG_SEALED ||
	       s->state == META_SEG_UPLOADING;
}

typedef struct deadop {
	const meta_seg *v;
	size_t n;
} deadop;

static int dead_fn(meta_txn *t, void *arg)
{
	deadop *d = arg;
	for (size_t i = 0; i < d->n; i++) {
		meta_seg s;
		int rc = meta_seg_get(t, d->v[i].id, &s);
		if (rc)
			return rc;
		if (s.nchunks)
			continue;  /* reported by the caller; fsck names it too */
		s.state = META_SEG_DEAD;
		if ((rc = meta_seg_update(t, &s)))
			return cairn_err_wrap(rc, "segment %s", s.key);
	}
	return 0;
}

/* Segments the writer had in flight: the shipped log holds their records
 * but, by the data rule, no chunk in them.  Their objects (if any upload
 * finished) become gc's to delete; multipart uploads are aborted. */
static int settle_inflight(cairn_meta *m, cairn_objstore *os)
{
	vseglist l;
	int rc;

	if ((rc = vol_seglist_load(m, inflight_keep, &l)) || !l.n)
		goto out;
	for (size_t i = 0; i < l.n; i++) {
		if (l.v[i].nchunks)
			CAIRN_ERROR(VOL_MOD, "segment %s (state %u) holds %" PRIu64 " chunks but "
				    "never reached the store: their data is lost", l.v[i].key,
				    l.v[i].state, l.v[i].nchunks);
		if (l.v[i].upload_id[0] && l.v[i].key[0] &&
		    objstore_mpu_abort(os, l.v[i].key, l.v[i].upload_id))
			cairn_err_clear();  /* best effort: the store expires them */
	}
	deadop d = { l.v, l.n };
	rc = meta_write(m, META_SYNCED, META_OP_SEGMENT, dead_fn, &d, NULL);
	if (!rc)
		CAIRN_INFO(VOL_MOD, "%zu segments the old writer had in flight marked dead", l.n);
out:
	free(l.v);
	return rc;
}

/* Remove what a failed recovery created in dir (never volume.conf: it is
 * written last, so it is not there). */
static void cleanup_dir(const char *dir, const char *img)
{
	static const char *const files[] = {
		"data.mdb", "lock.mdb", "meta.synced", "meta.undo.0", "meta.undo.1", "lock",
	};
	char path[4200];
	unlink(img);
	for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
		snprintf(path, sizeof path, "%s/meta/%s", dir, files[i]);
		unlink(path);
	}
}

int volume_recover_store(const char *dir, const cairn_recover_opts *o,
			 cairn_recover_result *res)
{
	cairn_recover_result r;
	cairn_objstore *os = NULL;
	cairn_meta *m = NULL;
	vshipped_vol sv;
	vshipped_img im;
	char vpfx[64], uuid[37], path[4200], img[4200], key[CAIRN_KEY_MAX], busy[512];
	char msg[1024];
	uint64_t *firsts = NULL, lease_max = 0, applied;
	size_t nfirst = 0;
	struct stat st;
	int rc, created_meta = 0;

	memset(&r, 0, sizeof r);
	if (res)
		memset(res, 0, sizeof *res);
	img[0] = 0;
	if (!dir || !*dir || strlen(dir) > 3000 || !o || (!o->store && !o->store_url))
		return cairn_errf(CAIRN_E_INVAL, "recover: a directory and a store are needed");
	if (!o->store && strncmp(o->store_url, "file://", 7) == 0 &&
	    stat(o->store_url + 7, &st) != 0)
		/* file:// creates a missing directory: a mistyped path would
		 * become an empty store */
		return cairn_errf(CAIRN_E_NOTFOUND, "recover: store %s: %s", o->store_url,
				  strerror(errno));
	if (o->store) {
		os = o->store;
	} else if ((rc = objstore_open(o->store_url, NULL, &os))) {
		return cairn_err_wrap(rc, "recover: store %s", o->store_url);
	}
	const char *url = o->store_url ? o->store_url : objstore_url(os);
	if (strlen(url) >= 1024) {
		rc = cairn_errf(CAIRN_E_INVAL, "recover: store URL too long");
		goto out;
	}
	snprintf(path, sizeof path, "%s/volume.conf", dir);
	if (stat(path, &st) == 0) {
		rc = cairn_errf(CAIRN_E_EXISTS, "recover: %s already holds a cairn volume", dir);
		goto out;
	}
	uint8_t ub[16];
	if ((rc = vol_shipped_find(os, o->uuid, ub))) {
		if (rc == CAIRN_E_INVAL && !o->uuid)
			rc = cairn_errf(rc, "recover: %s: name one with --uuid", cairn_errmsg());
		goto out;
	}
	vol_uuid_fmt(ub, uuid);
	snprintf(vpfx, sizeof vpfx, "v/%s/", uuid);
	memcpy(r.uuid, uuid, 37);
	if ((rc = vol_shipped_volume(os, vpfx, &sv)))
		goto out;
	if ((rc = leases_check(os, vpfx, &lease_max, busy, sizeof busy)))
		goto out;
	if (busy[0] && !o->force) {
		rc = cairn_errf(CAIRN_E_BUSY, "volume %s is live: %s; stop that writer, or "
				"pass --force to take the volume over (it will be fenced)", uuid,
				busy);
		goto out;
	}
	if (busy[0])
		CAIRN_WARN(VOL_MOD, "recovering volume %s although %s (forced)", uuid, busy);

	if ((rc = vol_mkdir(dir)))
		goto out;
	static const char *const subs[] = { "staging", "cache" };
	for (size_t i = 0; i < 2; i++) {
		snprintf(path, sizeof path, "%s/%s", dir, subs[i]);
		if ((rc = vol_mkdir(path)))
			goto out;
	}
	snprintf(img, sizeof img, "%s/image.tmp", dir);
	unlink(img);  /* left by an earlier attempt that crashed */
	if ((rc = vol_shipped_image(os, vpfx, 0, img, &im)))
		goto out;
	r.image_lsn = im.lsn;
	r.time_ns = im.time_ms * 1000000;
	snprintf(path, sizeof path, "%s/meta", dir);
	created_meta = 1;
	if ((rc = meta_image_install(img, path))) {
		if (rc == CAIRN_E_EXISTS)
			created_meta = 0;
		rc = cairn_err_wrap(rc, "recover: install the image in %s", path);
		goto out;
	}
	unlink(img);  /* moved in as data.mdb, or gone already */
	{
		meta_opts mo;
		meta_opts_init(&mo);
		mo.replica = 1;
		if ((rc = meta_open(path, &mo, &m))) {
			rc = cairn_err_wrap(rc, "recover: open the installed image");
			goto out;
		}
	}
	/* The log after the image.  Objects are named by their first LSN; the
	 * image's LSN may fall inside one, so start from the newest object
	 * beginning at or before L+1 and skip what the image holds. */
	applied = im.lsn;
	if ((rc = vol_shipped_log_list(os, vpfx, &firsts, &nfirst)))
		goto out;
	size_t i = 0;
	while (i + 1 < nfirst && firsts[i + 1] <= applied + 1)
		i++;
	for (; i < nfirst; i++) {
		uint8_t *buf = NULL;
		size_t len;
		if (firsts[i] > applied + 1) {
			rc = cairn_errf(CAIRN_E_CORRUPT, "recover: the log has a gap: no object "
					"holds LSN %" PRIu64 " (%smeta/wal/%016" PRIx64 " is missing) "
					"but %smeta/wal/%016" PRIx64 " exists", applied + 1, vpfx,
					applied + 1, vpfx, firsts[i]);
			goto out;
		}
		snprintf(key, sizeof key, "%smeta/wal/%016" PRIx64, vpfx, firsts[i]);
		rc = vol_shipped_get(os, key, LOGOBJ_MAX, &buf, &len);
		if (rc == CAIRN_E_NOTFOUND && firsts[i] <= im.lsn) {
			cairn_err_clear();  /* trimmed since the listing: the image has it */
			rc = 0;
			continue;
		}
		if (rc) {
			rc = cairn_err_wrap(rc == CAIRN_E_NOTFOUND ? CAIRN_E_CORRUPT : rc,
					    "recover: log object %s (LSN %" PRIu64 ")", key,
					    applied + 1);
			goto out;
		}
		uint64_t before = applied;
		rc = vol_shipped_apply(m, key, buf, len, &applied, &r.records, &r.time_ns);
		free(buf);
		if (rc)
			goto out;
		if (applied > before)
			r.log_objects++;
	}
	/* Objects shipped after the listing: go on until the next is missing. */
	for (;;) {
		uint8_t *buf = NULL;
		size_t len;
		snprintf(key, sizeof key, "%smeta/wal/%016" PRIx64, vpfx, applied + 1);
		rc = vol_shipped_get(os, key, LOGOBJ_MAX, &buf, &len);
		if (rc == CAIRN_E_NOTFOUND) {
			cairn_err_clear();
			rc = 0;
			break;
		}
		if (rc)
			goto out;
		rc = vol_shipped_apply(m, key, buf, len, &applied, &r.records, &r.time_ns);
		free(buf);
		if (rc)
			goto out;
		r.log_objects++;
	}
	r.lsn = applied;
	if ((rc = settle_inflight(m, os)))
		goto out;
	rc = meta_close(m);
	m = NULL;
	if (rc)
		goto out;

	/* An epoch above every epoch the store has seen: leases and segment
	 * keys (a writer that never shipped its lease still wrote segments). */
	{
		char spfx[CAIRN_KEY_MAX];
		seg_scan ss = { spfx, 0 };
		snprintf(spfx, sizeof spfx, "%sseg/", vpfx);
		if ((rc = vol_store_list(os, spfx, segep_cb, &ss)))
			goto out;
		uint64_t e = ss.max > lease_max ? ss.max : lease_max;
		if (im.epoch > e)
			e = im.epoch;
		r.epoch = e + 1;
	}
	uint8_t inst[16];
	if (getrandom(inst, sizeof inst, 0) != (ssize_t)sizeof inst) {
		rc = cairn_errf(CAIRN_E_IO, "getrandom: %s", strerror(errno));
		goto out;
	}
	inst[6] = (uint8_t)((inst[6] & 0x0f) | 0x40);
	inst[8] = (uint8_t)((inst[8] & 0x3f) | 0x80);
	if ((rc = vol_conf_create(dir, ub, url, sv.zstd_level, sv.segment_size, r.epoch, inst)))
		goto out;
	created_meta = 0;  /* a volume now: never cleaned up */
	/* Forced over a live writer: claim epoch E in its place, so that its
	 * next renewal sees a newer lease and fences it, and so that this
	 * directory's first open (same instance) need not wait out its ttl. */
	if (busy[0] && (rc = lease_fence(os, vpfx, r.epoch, inst)))
		goto out;

	/* Check what was built, through the volume itself: it must open. */
	{
		cairn_volume_opts vo;
		cairn_volume *vol = NULL;
		cairn_fsck_result fr;
		memset(&vo, 0, sizeof vo);
		vo.store = os;
		vo.no_ship = 1;
		vo.no_upload = 1;
		if ((rc = volume_open(dir, &vo, &vol))) {
			rc = cairn_err_wrap(rc, "recover: open the rebuilt volume %s", dir);
			goto out;
		}
		char *rep = NULL;
		size_t replen = 0;
		FILE *mf = open_memstream(&rep, &replen);
		if (!mf) {
			if (volume_close(vol))
				cairn_err_clear();
			rc = cairn_errf(CAIRN_E_NOMEM, "recover: fsck report");
			goto out;
		}
		rc = volume_fsck(vol, 0, mf, &fr);
		fclose(mf);
		/* one log line per problem; the count goes to the caller */
		for (char *sv2 = NULL, *ln = rep ? strtok_r(rep, "\n", &sv2) : NULL; ln;
		     ln = strtok_r(NULL, "\n", &sv2))
			CAIRN_WARN(VOL_MOD, "recovered volume %s: fsck: %s", dir, ln);
		free(rep);
		int r2 = volume_close(vol);
		if (!rc)
			rc = r2;
		if (rc) {
			rc = cairn_err_wrap(rc, "recover: fsck of %s", dir);
			goto out;
		}
		r.fsck_problems = fr.problems;
		if (fr.problems)
			CAIRN_WARN(VOL_MOD, "recovered volume %s: fsck found %" PRIu64 " problems",
				   dir, fr.problems);
		/* The check's open took an epoch too: report what the next
		 * writer starts above. */
		uint64_t ce;
		if (vol_conf_epoch(dir, &ce) == 0)
			r.epoch = ce;
		cairn_err_clear();
	}
	CAIRN_INFO(VOL_MOD, "recovered volume %s into %s: LSN %" PRIu64 " (image %" PRIu64
		   " + %" PRIu64 " log objects)", uuid, dir, r.lsn, r.image_lsn, r.log_objects);
out:
	if (rc)
		snprintf(msg, sizeof msg, "%s", cairn_errmsg());
	if (m && meta_close(m))
		cairn_err_clear();
	free(firsts);
	if (rc && created_meta)
		cleanup_dir(dir, img);
	else if (rc && img[0])
		unlink(img);
	if (!o->store && os)
		objstore_close(os);
	if (res)
		*res = r;
	if (rc)
		rc = cairn_errf(rc, "%s", msg);
	return rc;
}
