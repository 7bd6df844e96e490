/*
 * vol_gc.c - space: accounting (volume_space, volume_tree_usage), garbage
 * collection and compaction (volume_gc, the background gc thread), and the
 * volume fsck.  docs/space.md explains the design and why each step is
 * safe against a crash at any point.
 *
 * Every decision is taken from committed metadata (the reference model of
 * docs/metadata.md: a segment whose nchunks is 0 holds nothing any inode,
 * snapshot or clone can reach), and every state change is committed before
 * the I/O it announces:
 *
 *   UPLOADED --mark (nchunks == 0)--> DEAD --sweep (older than the grace,
 *            (mtime := time of death)        DELETING committed SYNCED)-->
 *   DELETING --objstore delete, local copy and cache windows dropped-->
 *            meta_seg_delete --> (gone)
 *
 * One pass (volume_gc), under vol.gc_mu:
 *   1. compaction: UPLOADED segments whose live fraction is below the
 *      threshold have their live chunks read (crc-verified), appended to
 *      new packed segments, which are sealed and uploaded; only then, in
 *      ONE meta_write per new segment, every chunk still at its old place
 *      is relocated (meta_chunk_relocate); a chunk that died meanwhile is
 *      not moved.  The old segments are left with nchunks 0.
 *   2. mark: UPLOADED segments with nchunks 0 -> DEAD (re-checked inside
 *      the transaction).  STAGING, SEALED and UPLOADING segments are never
 *      touched: they are the volume's open, queued or uploading segments
 *      (vol_recover deals with the ones a crash leaves).
 *   3. sweep: DELETING segments (a crash interrupted their delete) and
 *      DEAD ones older than the grace, delete_batch at a time: DELETING
 *      (synced: it also makes every earlier commit, e.g. the compaction
 *      switch, durable) -> delete the objects -> drop local copies ->
 *      meta_seg_delete.
 *   4. orphans: objects under the volume's segment prefix that no segment
 *      record names, older than the grace, are deleted.  A segment's
 *      record, key included, is committed (vol_seg_new) before its object
 *      can be written, and only gc removes records: so an object listed
 *      before the records are read, and absent from them, is not being
 *      uploaded by anyone.
 *
 * Invariants:
 *   1. No metadata transaction is held across I/O.
 *   2. An object is deleted only once its record is DELETING (durable) or
 *      no record names it; a record is deleted only after its object.
 *   3. A chunk's record names bytes in a segment that is in the store, or
 *      (until it is uploaded) in the local staging file: compaction
 *      switches a chunk only to an UPLOADED segment.
 *   4. Log shipping (docs/log-shipping.md): a DEAD segment's object is
 *      deleted only once the record of its death is shipped
 *      (vol_ship_death_shipped), and nothing at all (sweep, orphans) while
 *      the writer does not hold its lease or is fenced (vol_ship_gc_ok).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "vol_int.h"

#define GC_DEF_COMPACT_BELOW 0.5
#define GC_DEF_COMPACT_MAX (1ull << 30)
#define GC_DEF_BATCH 64
#define GC_BG_COMPACT_MAX (256ull << 20)

void volume_gc_opts_init(cairn_gc_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->grace_ms = -1;
	o->compact_below = -1.0;
}

static int64_t wall_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int gc_stopping(cairn_volume *vol)
{
	return __atomic_load_n(&vol->gc_stop, __ATOMIC_RELAXED);
}

/* Make room for entry n of the array at *pp (cap entries of elem bytes). */
static int vgrow(void *pp, size_t *cap, size_t n, size_t elem)
{
	void **p = pp;
	if (n < *cap)
		return 0;
	size_t nc = *cap ? *cap * 2 : 256;
	void *np = realloc(*p, nc * elem);
	if (!np)
		return cairn_errf(CAIRN_E_NOMEM, "gc: list of %zu entries", nc);
	*p = np;
	*cap = nc;
	return 0;
}

/* ---- the segment table, as gc needs it ---- */

typedef struct gseg {
	uint64_t id, size, live, nchunks;
	int64_t mtime_ns;
	uint32_t state, kind;
	char key[SEG_KEY_MAX];
} gseg;

typedef struct gsegs {
	gseg *v;
	size_t n, cap;
	size_t nlong;           /* records whose key does not fit gseg.key */
	int rc;
} gsegs;

static int gsegs_cb(const meta_seg *s, void *arg)
{
	gsegs *l = arg;
	if ((l->rc = vgrow(&l->v, &l->cap, l->n, sizeof *l->v)))
		return 1;
	gseg *g = &l->v[l->n++];
	g->id = s->id;
	g->size = s->size;
	g->live = s->live_bytes;
	g->nchunks = s->nchunks;
	g->mtime_ns = s->mtime_ns;
	g->state = s->state;
	g->kind = s->kind;
	/* Keys are seg_key_format's (< SEG_KEY_MAX); a longer one is not a
	 * key this volume wrote: keep it empty, it is never deleted. */
	if (strnlen(s->key, sizeof s->key) < sizeof g->key)
		snprintf(g->key, sizeof g->key, "%s", s->key);
	else {
		g->key[0] = 0;
		l->nlong++;
	}
	return 0;
}

static int gsegs_load(cairn_volume *vol, gsegs *l)
{
	meta_txn *t;
	int rc;
	l->n = 0;
	l->nlong = 0;
	l->rc = 0;
	if ((rc = meta_read_begin(vol->meta, &t)))
		return rc;
	rc = meta_seg_list(t, 0, gsegs_cb, l);
	meta_read_end(t);
	return rc ? rc : l->rc;
}

/* ---- state changes, a batch per transaction ---- */

typedef struct segop {
	const uint64_t *ids;
	size_t n;
	uint32_t to;            /* META_SEG_DEAD, META_SEG_DELETING, or 0: delete */
	uint8_t *done;          /* out: the change applied to ids[i] */
	size_t ndone;
} segop;

static int segop_fn(meta_txn *t, void *arg)
{
	segop *p = arg;
	p->ndone = 0;
	for (size_t i = 0; i < p->n; i++) {
		meta_seg s;
		int rc = meta_seg_get(t, p->ids[i], &s);
		p->done[i] = 0;
		if (rc == CAIRN_E_NOTFOUND) {
			cairn_err_clear();
			continue;
		}
		if (rc)
			return rc;
		if (s.nchunks)
			continue;  /* a chunk came back (compaction): not garbage */
		if (p->to == META_SEG_DEAD) {
			if (s.state != META_SEG_UPLOADED)
				continue;
		} else if (s.state != META_SEG_DEAD && s.state != META_SEG_DELETING) {
			continue;
		}
		if (p->to == 0) {
			if (s.state != META_SEG_DELETING)
				continue;
			rc = meta_seg_delete(t, s.id);
		} else if (s.state != p->to) {
			s.state = p->to;
			rc = meta_seg_update(t, &s);
		}
		if (rc)
			return rc;
		p->done[i] = 1;
		p->ndone++;
	}
	return 0;
}

static int segop_run(cairn_volume *vol, const uint64_t *ids, size_t n, uint32_t to,
		     meta_durability d, uint8_t *done, size_t *ndone)
{
	segop p = { .ids = ids, .n = n, .to = to, .done = done };
	uint64_t lsn = 0;
	int rc = meta_write(vol->meta, d, META_OP_SEGMENT, segop_fn, &p, &lsn);
	if (ndone)
		*ndone = rc ? 0 : p.ndone;
	if (!rc && to == META_SEG_DEAD && lsn) {
		/* Their death is record lsn: their objects wait until it is
		 * shipped (docs/log-shipping.md "Garbage collection"). */
		for (size_t i = 0; i < n; i++)
			if (done[i])
				vol_ship_died(vol, ids + i, 1, lsn);
	}
	return rc;
}

/* ---- local traces of a deleted segment ---- */

static void forget_local(cairn_volume *vol, uint64_t id, const char *key)
{
	char path[4096];

	pthread_mutex_lock(&vol->up_mu);
	for (size_t i = 0; i < vol->nkept; i++) {
		if (vol->kept[i].id != id)
			continue;
		vol->kept_bytes -= vol->kept[i].size;
		memmove(vol->kept + i, vol->kept + i + 1, (vol->nkept - i - 1) * sizeof *vol->kept);
		vol->nkept--;
		break;
	}
	pthread_mutex_unlock(&vol->up_mu);
	vol_seg_path(vol, id, path, sizeof path);
	if (unlink(path) != 0 && errno != ENOENT)
		CAIRN_WARN(VOL_MOD, "gc: unlink %s: %s", path, strerror(errno));
	if (key[0] && seg_cache_drop(vol->cache, key))
		CAIRN_WARN(VOL_MOD, "gc: drop cached windows of %s: %s", key, cairn_errmsg());
	pthread_mutex_lock(&vol->rd_mu);
	for (size_t i = 0; i < VOL_READERS; i++) {
		if (vol->rd[i].r && vol->rd[i].seg == id && vol->rd[i].refs == 0) {
			seg_reader_close(vol->rd[i].r);
			vol->rd[i].r = NULL;
		}
	}
	pthread_mutex_unlock(&vol->rd_mu);
}

/* Whether the uploader still holds segment id in its queue (it may have
 * just marked it UPLOADED and not yet taken it off). */
static int in_upload_queue(cairn_volume *vol, uint64_t id)
{
	int found = 0;
	pthread_mutex_lock(&vol->up_mu);
	for (size_t i = 0; i < vol->nq && !found; i++)
		found = vol->q[i].id == id;
	pthread_mutex_unlock(&vol->up_mu);
	return found;
}

/* ---- one pass ---- */

typedef struct gc_pass {
	cairn_volume *vol;
	cairn_gc_opts o;
	int64_t grace_ms;
	cairn_gc_result *res;
	gsegs segs;
	int rc;                 /* first error met (the pass goes on) */
	char msg[512];
} gc_pass;

static void pass_err(gc_pass *p, int rc)
{
	if (rc && !p->rc) {
		p->rc = rc;
		cairn_err_copy(p->msg, sizeof p->msg);
	}
}

/* -- sweep: delete a batch of segments whose record is DELETING -- */

static int sweep_batch(gc_pass *p, const gseg **b, size_t n)
{
	cairn_volume *vol = p->vol;
	uint64_t *ids = calloc(n, sizeof *ids);
	uint8_t *done = calloc(n, 1);
	const char **keys = calloc(n, sizeof *keys);
	int *rcs = calloc(n, sizeof *rcs);
	size_t nk = 0, ndone = 0;
	int rc;

	if (!ids || !done || !keys || !rcs) {
		rc = cairn_errf(CAIRN_E_NOMEM, "gc: delete batch");
		goto out;
	}
	for (size_t i = 0; i < n; i++)
		ids[i] = b[i]->id;
	/* The intent is durable before any object goes (and with it every
	 * earlier commit: the compaction switch that emptied the segment). */
	if ((rc = segop_run(vol, ids, n, META_SEG_DELETING, META_SYNCED, done, NULL)))
		goto out;
	for (size_t i = 0; i < n; i++)
		if (done[i] && b[i]->key[0])
			keys[nk++] = b[i]->key;
	if (nk) {
		rc = objstore_delete_batch(vol->os, keys, nk, rcs);
		if (rc && rc != CAIRN_E_NOTFOUND) {
			pass_err(p, cairn_err_wrap(rc, "gc: delete segment objects"));
			/* A batch that failed as a whole (or whose store does not
			 * say per key) leaves each rcs[k] 0: no object counts as
			 * deleted then; they stay DELETING, the next pass retries. */
			for (size_t k = 0; k < nk; k++)
				if (!rcs[k])
					rcs[k] = rc;
		}
		rc = 0;
	}
	/* Only the records whose object is gone are deleted below: the
	 * others stay DELETING (invariant 2). */
	size_t nd = 0;
	for (size_t i = 0, k = 0; i < n; i++) {
		if (!done[i])
			continue;
		if (b[i]->key[0]) {
			int r = rcs[k++];
			if (r && r != CAIRN_E_NOTFOUND)
				continue;  /* stays DELETING: the next pass retries */
		}
		forget_local(vol, b[i]->id, b[i]->key);
		vol_ship_forget(vol, b[i]->id);
		ids[nd++] = b[i]->id;
	}
	if (nd && (rc = segop_run(vol, ids, nd, 0, META_RELAXED, done, &ndone)))
		goto out;
	/* done[] now follows ids[0..nd) */
	for (size_t i = 0, j = 0; i < n && j < nd; i++) {
		if (b[i]->id != ids[j])
			continue;
		if (done[j++]) {
			p->res->segments_deleted++;
			p->res->bytes_deleted += b[i]->size;
		}
	}
out:
	free(ids);
	free(done);
	free(keys);
	free(rcs);
	return rc;
}

static int sweep(gc_pass *p, const uint8_t *would_die)
{
	cairn_volume *vol = p->vol;
	size_t batch = p->o.delete_batch, nb = 0;
	int64_t now = wall_ns(), grace_ns = p->grace_ms * 1000000;
	const gseg **b = calloc(batch, sizeof *b);
	int rc = 0;

	if (!b)
		return cairn_errf(CAIRN_E_NOMEM, "gc: delete batch");
	/* Log shipping: objects go only while this writer holds the lease,
	 * and a dead segment's only once its death is shipped (a recovered
	 * volume or a follower never names an object gc deleted).  Deaths
	 * past the grace but not shipped yet get one shipper round first. */
	int ship_ok = vol_ship_gc_ok(vol);
	uint64_t want = 0, dl;
	for (size_t i = 0; ship_ok && !p->o.dry_run && i < p->segs.n; i++) {
		const gseg *g = &p->segs.v[i];
		if (g->state == META_SEG_DEAD && now - g->mtime_ns >= grace_ns &&
		    !vol_ship_death_shipped(vol, g->id, &dl) && dl > want)
			want = dl;
	}
	if (want)
		vol_ship_wait_lsn(vol, want);
	for (size_t i = 0; i < p->segs.n && !rc; i++) {
		const gseg *g = &p->segs.v[i];
		int64_t died = g->mtime_ns;
		if (would_die && would_die[i])
			died = now;  /* dry run: marked dead now */
		else if (g->state != META_SEG_DEAD && g->state != META_SEG_DELETING)
			continue;
		if ((g->state != META_SEG_DELETING && now - died < grace_ns) ||
		    (!p->o.dry_run && (!ship_ok || (g->state == META_SEG_DEAD &&
						    !vol_ship_death_shipped(vol, g->id, &dl))))) {
			p->res->segments_waiting++;
			p->res->bytes_waiting += g->size;
			continue;
		}
		if (p->o.dry_run) {
			p->res->segments_deleted++;
			p->res->bytes_deleted += g->size;
			continue;
		}
		if (in_upload_queue(vol, g->id))
			continue;  /* next pass */
		b[nb++] = g;
		if (nb == batch) {
			rc = sweep_batch(p, b, nb);
			nb = 0;
		}
		if (gc_stopping(vol))
			break;
	}
	if (!rc && nb)
		rc = sweep_batch(p, b, nb);
	free(b);
	return rc;
}

/* -- mark: UPLOADED segments without live chunks die -- */

static int mark(gc_pass *p, uint8_t *would_die)
{
	uint64_t *ids = calloc(p->segs.n + 1, sizeof *ids);
	uint8_t *done = calloc(p->segs.n + 1, 1);
	size_t n = 0, ndone = 0;
	int rc = 0;

	if (!ids || !done) {
		rc = cairn_errf(CAIRN_E_NOMEM, "gc: mark");
		goto out;
	}
	for (size_t i = 0; i < p->segs.n; i++) {
		const gseg *g = &p->segs.v[i];
		if (g->state != META_SEG_UPLOADED || g->nchunks)
			continue;
		if (p->o.dry_run) {
			would_die[i] = 1;
			p->res->segments_marked_dead++;
			continue;
		}
		ids[n++] = g->id;
	}
	if (n && !(rc = segop_run(p->vol, ids, n, META_SEG_DEAD, META_RELAXED, done, &ndone)))
		p->res->segments_marked_dead += ndone;
out:
	free(ids);
	free(done);
	return rc;
}

/* -- orphans: objects under the segment prefix no record names -- */

static int key_cmp(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int orphans(gc_pass *p)
{
	cairn_volume *vol = p->vol;
	cairn_obj_list l;
	char prefix[SEG_KEY_MAX], *token = NULL;
	const char **known = NULL, **del = NULL;
	cairn_obj_entry *ent = NULL;
	size_t nent = 0, cent = 0, ndel = 0;
	seg_id sid;
	int rc;

	memset(&sid, 0, sizeof sid);
	memcpy(sid.uuid, vol->uuid, 16);
	sid.kind = SEG_KIND_PACKED;
	if ((rc = seg_key_format(&sid, prefix, sizeof prefix)))
		return rc;
	char *cut = strstr(prefix, "/seg/");
	if (!cut)
		return cairn_errf(CAIRN_E_INTERNAL, "gc: segment key %s has no /seg/", prefix);
	cut[5] = 0;
	/* List first, read the records after: see the top of the file. */
	do {
		memset(&l, 0, sizeof l);
		rc = objstore_list(vol->os, prefix, token, 1000, &l);
		free(token);
		token = NULL;
		if (rc) {
			rc = cairn_err_wrap(rc, "gc: list %s", prefix);
			goto out;
		}
		for (size_t i = 0; i < l.n; i++) {
			if ((rc = vgrow(&ent, &cent, nent, sizeof *ent))) {
				objstore_list_free(&l);
				goto out;
			}
			ent[nent] = l.v[i];
			ent[nent].key = strdup(l.v[i].key);
			if (!ent[nent].key) {
				objstore_list_free(&l);
				rc = cairn_errf(CAIRN_E_NOMEM, "gc: object list");
				goto out;
			}
			nent++;
		}
		if (l.next && !(token = strdup(l.next))) {
			objstore_list_free(&l);
			rc = cairn_errf(CAIRN_E_NOMEM, "gc: object list");
			goto out;
		}
		objstore_list_free(&l);
	} while (token);
	if (!nent)
		goto out;
	if ((rc = gsegs_load(vol, &p->segs)))
		goto out;
	known = calloc(p->segs.n + 1, sizeof *known);
	del = calloc(nent, sizeof *del);
	if (!known || !del) {
		rc = cairn_errf(CAIRN_E_NOMEM, "gc: orphan check");
		goto out;
	}
	size_t nknown = 0;
	for (size_t i = 0; i < p->segs.n; i++)
		if (p->segs.v[i].key[0])
			known[nknown++] = p->segs.v[i].key;
	qsort(known, nknown, sizeof *known, key_cmp);
	int64_t now_s = wall_ns() / 1000000000;
	/* A record whose key is not one this volume writes cannot be matched
	 * against the listing: it may name any of these objects, so none is
	 * deleted (they are still counted). */
	if (p->segs.nlong)
		CAIRN_WARN(VOL_MOD, "gc: %zu segment records have keys of %d bytes or more: "
			   "orphan objects are reported, not deleted", p->segs.nlong,
			   SEG_KEY_MAX);
	for (size_t i = 0; i < nent; i++) {
		const char *k = ent[i].key;
		if (bsearch(&k, known, nknown, sizeof *known, key_cmp))
			continue;
		p->res->orphans_found++;
		p->res->orphan_bytes += ent[i].size;
		/* mtime has whole seconds: round the age down */
		if ((now_s - ent[i].mtime) * 1000 < p->grace_ms)
			continue;
		if (p->o.dry_run)
			p->res->orphans_deleted++;  /* would be */
		else if (!p->segs.nlong)
			del[ndel++] = k;
	}
	for (size_t i = 0; i < ndel; i += p->o.delete_batch) {
		size_t n = ndel - i < p->o.delete_batch ? ndel - i : p->o.delete_batch;
		int *rcs = calloc(n, sizeof *rcs);
		if (!rcs) {
			rc = cairn_errf(CAIRN_E_NOMEM, "gc: delete orphans");
			goto out;
		}
		int r = objstore_delete_batch(vol->os, del + i, n, rcs);
		for (size_t j = 0; j < n; j++)
			if (!rcs[j] || rcs[j] == CAIRN_E_NOTFOUND)
				p->res->orphans_deleted++;
		free(rcs);
		if (r && r != CAIRN_E_NOTFOUND)
			pass_err(p, cairn_err_wrap(r, "gc: delete orphan objects"));
	}
	if (ndel)
		CAIRN_INFO(VOL_MOD, "gc: %" PRIu64 " orphan objects under %s deleted",
			   p->res->orphans_deleted, prefix);
out:
	for (size_t i = 0; i < nent; i++)
		free(ent[i].key);
	free(ent);
	free(token);
	free(known);
	free(del);
	return rc;
}

/* -- compaction -- */

typedef struct cmove {
	uint64_t chunk, from_seg, from_off;
	seg_frame fr;           /* its new frame */
} cmove;

/* A new segment being filled by compaction. */
typedef struct cout {
	int level;              /* zstd level of its writer */
	seg_writer *w;
	meta_seg s;
	cmove *mv;
	size_t n, cap;
	uint64_t moved;         /* out of the switch */
} cout;

static int switch_fn(meta_txn *t, void *arg)
{
	cout *o = arg;
	o->moved = 0;
	for (size_t i = 0; i < o->n; i++) {
		const cmove *m = &o->mv[i];
		meta_chunk c;
		int rc = meta_chunk_get(t, m->chunk, &c);
		if (rc == CAIRN_E_NOTFOUND) {
			cairn_err_clear();
			continue;  /* died since it was read */
		}
		if (rc)
			return rc;
		if (c.seg != m->from_seg || c.seg_off != m->from_off)
			continue;
		c.seg = o->s.id;
		c.seg_off = m->fr.off;
		c.stored_len = m->fr.stored_len;
		c.codec = (uint8_t)m->fr.codec;
		c.crc = m->fr.crc;
		if ((rc = meta_chunk_relocate(t, &c)))
			return cairn_err_wrap(rc, "relocate chunk %" PRIu64, m->chunk);
		o->moved++;
	}
	return 0;
}

/* Give up on an output (error, or the volume closing): nothing points into
 * it, so it is dead at once; its object, if any, goes with the sweep. */
static void cout_abandon(cairn_volume *vol, cout *o)
{
	char path[4096];
	if (!o->s.id)
		return;
	if (o->w) {
		seg_writer_close(o->w);
		o->w = NULL;
	}
	/* DEAD (durable) first, then the file: a SEALED or UPLOADING record
	 * left by a crash (or a failed commit) in between must find its file,
	 * which the next open uploads (it then dies with no chunk); without
	 * it the record would stay forever ("its data is lost"). */
	vol_seg_path(vol, o->s.id, path, sizeof path);
	uint64_t first, last;
	if (vol_seg_set_state(vol, o->s.id, META_SEG_DEAD, 0, NULL, META_SYNCED)) {
		CAIRN_WARN(VOL_MOD, "gc: abandon compaction segment %s: %s", o->s.key,
			   cairn_errmsg());
	} else {
		/* its death is at or before the last LSN now */
		if (!meta_wal_bounds(vol->meta, &first, &last))
			vol_ship_died(vol, &o->s.id, 1, last);
		if (unlink(path) != 0 && errno != ENOENT)
			CAIRN_WARN(VOL_MOD, "gc: unlink %s: %s", path, strerror(errno));
	}
	o->s.id = 0;
	o->n = 0;
}

static int cout_upload(cairn_volume *vol, const cout *o, uint64_t size)
{
	char path[4096];
	int fd, rc;

	if ((rc = vol_seg_set_state(vol, o->s.id, META_SEG_SEALED, size, NULL, META_SYNCED)) ||
	    (rc = vol_seg_set_state(vol, o->s.id, META_SEG_UPLOADING, size, o->s.key, META_SYNCED)))
		return rc;
	vol_seg_path(vol, o->s.id, path, sizeof path);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return cairn_errf(CAIRN_E_IO, "gc: open %s: %s", path, strerror(errno));
	cairn_obj_src src = { .buf = NULL, .fd = fd, .off = 0, .len = size };
	rc = objstore_put(vol->os, o->s.key, &src);
	close(fd);
	if (rc)
		return cairn_err_wrap(rc, "gc: upload compacted segment %s", o->s.key);
	return vol_seg_set_state(vol, o->s.id, META_SEG_UPLOADED, size, NULL, META_RELAXED);
}

/* Seal, upload, switch the chunks over: the output is done. */
static int cout_finish(gc_pass *p, cout *o)
{
	cairn_volume *vol = p->vol;
	uint64_t size = 0;
	int rc;

	if (!o->s.id)
		return 0;
	if (!o->n) {
		cout_abandon(vol, o);
		return 0;
	}
	rc = seg_writer_seal(o->w, &size);
	seg_writer_close(o->w);
	o->w = NULL;
	if (!rc)
		rc = cout_upload(vol, o, size);
	if (!rc)
		rc = meta_write(vol->meta, META_RELAXED, META_OP_CHUNK, switch_fn, o, NULL);
	if (rc) {
		cout_abandon(vol, o);
		return cairn_err_wrap(rc, "gc: compaction into %s", o->s.key);
	}
	p->res->chunks_moved += o->moved;
	pthread_mutex_lock(&vol->up_mu);
	vol_kept_add(vol, o->s.id, size, o->s.key);
	pthread_mutex_unlock(&vol->up_mu);
	CAIRN_DEBUG(VOL_MOD, "gc: compacted %zu chunks into %s (%" PRIu64 " bytes, %" PRIu64
		    " switched)", o->n, o->s.key, size, o->moved);
	o->s.id = 0;
	o->n = 0;
	return 0;
}

static int cout_add(gc_pass *p, cout *o, const meta_chunk *c, const uint8_t *raw)
{
	cairn_volume *vol = p->vol;
	int rc;

	if (!o->s.id) {
		char path[4096];
		seg_id id;
		seg_writer_opts wo = { .zstd_level = o->level };
		if ((rc = vol_seg_new(vol, 0, &o->s, &id)))
			return rc;
		vol_seg_path(vol, o->s.id, path, sizeof path);
		unlink(path);  /* only a run whose record was lost can leave one */
		if ((rc = seg_writer_create(vol->u, path, &id, &wo, &o->w))) {
			cout_abandon(vol, o);
			return rc;
		}
	}
	if ((rc = vgrow(&o->mv, &o->cap, o->n, sizeof *o->mv)))
		return rc;
	cmove *m = &o->mv[o->n];
	/* Frames are tagged with their offset (vol_stage.c). */
	if ((rc = seg_writer_append(o->w, seg_writer_size(o->w), raw, c->raw_len, &m->fr)))
		return rc;
	m->chunk = c->id;
	m->from_seg = c->seg;
	m->from_off = c->seg_off;
	o->n++;
	if (seg_writer_size(o->w) >= vol->o.segment_size)
		return cout_finish(p, o);
	return 0;
}

typedef struct clist {
	meta_chunk *v;
	size_t n, cap;
	int rc;
} clist;

static int clist_cb(const meta_chunk *c, void *arg)
{
	clist *l = arg;
	if ((l->rc = vgrow(&l->v, &l->cap, l->n, sizeof *l->v)))
		return 1;
	l->v[l->n++] = *c;
	return 0;
}

/* Scratch buffers of one compaction: a chunk's raw bytes, and a window
 * of a segment object. */
typedef struct cbufs {
	uint8_t *raw, *win;
	size_t rawcap, wincap;
} cbufs;

static int grow(uint8_t **p, size_t *cap, size_t need)
{
	if (need <= *cap)
		return 0;
	uint8_t *n = realloc(*p, need);
	if (!n)
		return cairn_errf(CAIRN_E_NOMEM, "gc: buffer of %zu bytes", need);
	*p = n;
	*cap = need;
	return 0;
}

static int chunk_copy(gc_pass *p, cout *outs, const meta_chunk *c, const uint8_t *raw)
{
	int rc = cout_add(p, &outs[c->codec == 0 && outs[1].level >= 0 ? 0 : 1], c, raw);
	if (!rc)
		p->res->bytes_rewritten += c->stored_len;
	return rc;
}

static int off_cmp(const void *a, const void *b)
{
	const meta_chunk *x = a, *y = b;
	return x->seg_off < y->seg_off ? -1 : x->seg_off > y->seg_off;
}

/* Windows of the object are fetched straight from the store, not through
 * the window cache: the segment is about to die, and caching it would
 * evict what readers use.  Live frames closer than GC_GAP share a GET. */
#define GC_WINDOW (8u << 20)
#define GC_GAP (1u << 20)

static int copy_remote(gc_pass *p, const meta_seg *s, meta_chunk *v, size_t n, cout *outs,
		       cbufs *b)
{
	cairn_volume *vol = p->vol;
	int rc = 0;

	qsort(v, n, sizeof *v, off_cmp);
	for (size_t i = 0; i < n && !rc;) {
		uint64_t start = v[i].seg_off, end = start + SEG_FRAME_HDR_SIZE + v[i].stored_len;
		size_t j = i + 1;
		while (j < n && v[j].seg_off >= end && v[j].seg_off - end <= GC_GAP &&
		       v[j].seg_off + SEG_FRAME_HDR_SIZE + v[j].stored_len - start <= GC_WINDOW) {
			end = v[j].seg_off + SEG_FRAME_HDR_SIZE + v[j].stored_len;
			j++;
		}
		uint64_t got = 0;
		if (gc_stopping(vol))
			return cairn_errf(CAIRN_E_CANCELED, "gc: the volume is closing");
		if ((rc = grow(&b->win, &b->wincap, end - start)))
			return rc;
		rc = objstore_get(vol->os, s->key, start, b->win, end - start, &got);
		if (rc)
			return cairn_err_wrap(rc, "gc: read %s", s->key);
		if (got != end - start)
			return cairn_errf(CAIRN_E_CORRUPT, "gc: segment %s: %" PRIu64 " bytes at %"
					  PRIu64 ", expected %" PRIu64, s->key, got, start,
					  end - start);
		for (size_t k = i; k < j && !rc; k++) {
			const meta_chunk *c = &v[k];
			seg_frame fr = { .chunk_id = c->seg_off, .off = c->seg_off,
					 .stored_len = c->stored_len, .raw_len = c->raw_len,
					 .codec = c->codec, .crc = c->crc };
			size_t raw = 0;
			if ((rc = grow(&b->raw, &b->rawcap, c->raw_len)))
				break;
			/* Verified against the crc32c recorded with it. */
			rc = seg_frame_decode(s->key, &fr, b->win + (c->seg_off - start),
					      SEG_FRAME_HDR_SIZE + c->stored_len, b->raw, c->raw_len,
					      &raw);
			if (!rc && raw != c->raw_len)
				rc = cairn_errf(CAIRN_E_CORRUPT, "gc: segment %s: chunk at %" PRIu64
						" decoded to %zu bytes, expected %u", s->key,
						c->seg_off, raw, c->raw_len);
			if (!rc)
				rc = chunk_copy(p, outs, c, b->raw);
		}
		i = j;
	}
	return rc;
}

/* Copy the live chunks of segment id into the outputs. */
static int compact_one(gc_pass *p, uint64_t id, cout *outs, cbufs *b)
{
	cairn_volume *vol = p->vol;
	char path[4096];
	clist l = { 0 };
	meta_seg s;
	meta_txn *t;
	int rc;

	if ((rc = meta_read_begin(vol->meta, &t)))
		return rc;
	rc = meta_seg_get(t, id, &s);
	if (!rc && s.state == META_SEG_UPLOADED)
		rc = meta_seg_chunks(t, id, clist_cb, &l);
	meta_read_end(t);
	if (!rc)
		rc = l.rc;
	if (rc || s.state != META_SEG_UPLOADED)
		goto out;
	vol_seg_path(vol, id, path, sizeof path);
	if (access(path, F_OK) != 0) {
		rc = copy_remote(p, &s, l.v, l.n, outs, b);
		goto done;
	}
	/* A local copy: read through it (verified on the way). */
	for (size_t i = 0; i < l.n && !rc; i++) {
		const meta_chunk *c = &l.v[i];
		if (gc_stopping(vol)) {
			rc = cairn_errf(CAIRN_E_CANCELED, "gc: the volume is closing");
			break;
		}
		if ((rc = grow(&b->raw, &b->rawcap, c->raw_len)))
			break;
		if ((rc = vol_chunk_read(vol, c, &s, b->raw))) {
			rc = cairn_err_wrap(rc, "gc: read chunk %" PRIu64 " of %s", c->id, s.key);
			break;
		}
		rc = chunk_copy(p, outs, c, b->raw);
	}
done:
	if (!rc)
		p->res->segments_compacted++;
out:
	free(l.v);
	return rc;
}

typedef struct ccand {
	uint64_t id, live;
	double frac;
} ccand;

static int ccand_cmp(const void *a, const void *b)
{
	const ccand *x = a, *y = b;
	if (x->frac != y->frac)
		return x->frac < y->frac ? -1 : 1;
	return x->id < y->id ? -1 : x->id > y->id;
}

static int compact(gc_pass *p)
{
	cairn_volume *vol = p->vol;
	ccand *cv = calloc(p->segs.n + 1, sizeof *cv);
	size_t n = 0;
	cbufs b = { 0 };
	int rc = 0;
	/* Raw chunks (stream data, incompressible bytes) stay raw and
	 * compressed ones are compressed again at the volume's level, so a
	 * chunk keeps its stored form (and crc) where it can. */
	cout outs[2];
	memset(outs, 0, sizeof outs);
	outs[0].level = -1;
	outs[1].level = vol->zstd_level;

	if (!cv)
		return cairn_errf(CAIRN_E_NOMEM, "gc: compaction candidates");
	for (size_t i = 0; i < p->segs.n; i++) {
		const gseg *g = &p->segs.v[i];
		if (g->state != META_SEG_UPLOADED || !g->nchunks || !g->size)
			continue;
		/* What a rewrite would keep, framing included: a segment
		 * whose every chunk is live scores exactly 1, so a small
		 * segment is never rewritten into an equal one. */
		uint64_t keep = g->live + g->nchunks * (SEG_FRAME_HDR_SIZE + SEG_INDEX_ENTRY_SIZE) +
				SEG_HEADER_SIZE + SEG_FOOTER_SIZE;
		double frac = (double)keep / (double)g->size;
		if (frac >= p->o.compact_below)
			continue;
		cv[n++] = (ccand){ g->id, g->live, frac };
	}
	qsort(cv, n, sizeof *cv, ccand_cmp);
	uint64_t budget = p->o.compact_max_bytes, used = 0;
	for (size_t i = 0; i < n && !rc; i++) {
		if (used && used + cv[i].live > budget)
			break;
		used += cv[i].live;
		if (p->o.dry_run) {
			const gseg *g = NULL;
			for (size_t j = 0; j < p->segs.n && !g; j++)
				if (p->segs.v[j].id == cv[i].id)
					g = &p->segs.v[j];
			p->res->segments_compacted++;
			p->res->chunks_moved += g ? g->nchunks : 0;
			p->res->bytes_rewritten += cv[i].live;
			continue;
		}
		rc = compact_one(p, cv[i].id, outs, &b);
	}
	for (int k = 0; k < 2; k++) {
		if (rc) {
			cout_abandon(vol, &outs[k]);
		} else {
			rc = cout_finish(p, &outs[k]);
		}
		free(outs[k].mv);
	}
	free(b.raw);
	free(b.win);
	free(cv);
	return rc;
}

static int gc_pass_run(gc_pass *p)
{
	uint8_t *would_die = NULL;
	int rc;

	if ((rc = gsegs_load(p->vol, &p->segs)))
		return rc;
	p->res->segments_examined = p->segs.n;
	if (p->o.compact_below > 0 && vol_ship_upload_ok(p->vol)) {
		rc = compact(p);
		if (rc == CAIRN_E_CANCELED)
			return rc;
		pass_err(p, rc);
		if (!p->o.dry_run && (rc = gsegs_load(p->vol, &p->segs)))
			return rc;
	}
	if (p->o.dry_run && !(would_die = calloc(p->segs.n + 1, 1)))
		return cairn_errf(CAIRN_E_NOMEM, "gc: dry run");
	rc = mark(p, would_die);
	if (!rc && !p->o.dry_run)
		rc = gsegs_load(p->vol, &p->segs);
	if (!rc)
		rc = sweep(p, would_die);
	free(would_die);
	if (rc)
		return rc;
	/* Orphans only while holding the lease: another writer's new
	 * segments are orphans to this one. */
	if (!p->o.no_orphans && !gc_stopping(p->vol) && vol_ship_gc_ok(p->vol))
		rc = orphans(p);
	return rc;
}

int volume_gc(cairn_volume *vol, const cairn_gc_opts *opts, cairn_gc_result *res)
{
	cairn_gc_result scratch;
	gc_pass p;
	int rc;

	if (!res)
		res = &scratch;
	memset(res, 0, sizeof *res);
	VOL_RO_CHECK(vol);
	memset(&p, 0, sizeof p);
	p.vol = vol;
	p.res = res;
	if (opts)
		p.o = *opts;
	else
		volume_gc_opts_init(&p.o);
	p.grace_ms = p.o.grace_ms < 0 ? vol->o.gc_grace_ms : p.o.grace_ms;
	if (p.o.compact_below < 0)
		p.o.compact_below = GC_DEF_COMPACT_BELOW;
	if (p.o.compact_below > 1)
		p.o.compact_below = 1;
	if (!p.o.compact_max_bytes)
		p.o.compact_max_bytes = GC_DEF_COMPACT_MAX;
	if (!p.o.delete_batch)
		p.o.delete_batch = GC_DEF_BATCH;
	if (p.o.delete_batch > 1000)
		p.o.delete_batch = 1000;

	pthread_mutex_lock(&vol->gc_mu);
	rc = gc_pass_run(&p);
	pthread_mutex_unlock(&vol->gc_mu);
	free(p.segs.v);
	if (!rc && p.rc)
		rc = cairn_err_set(p.rc, p.msg);
	if (rc)
		return cairn_err_wrap(rc, "gc of volume %s", vol->dir);
	CAIRN_DEBUG(VOL_MOD, "gc %s: %" PRIu64 " segments examined, %" PRIu64 " marked dead, %"
		    PRIu64 " deleted (%" PRIu64 " bytes), %" PRIu64 " waiting, %" PRIu64
		    " compacted, %" PRIu64 " orphans deleted", vol->dir, res->segments_examined,
		    res->segments_marked_dead, res->segments_deleted, res->bytes_deleted,
		    res->segments_waiting, res->segments_compacted, res->orphans_deleted);
	return 0;
}

/* ---- the background thread ---- */

static void *gc_main(void *arg)
{
	cairn_volume *vol = arg;

	pthread_mutex_lock(&vol->gc_wmu);
	while (!vol->gc_stop) {
		int w = vol_cond_wait_ms(&vol->gc_cv, &vol->gc_wmu, vol->o.gc_interval_ms);
		if (vol->gc_stop)
			break;
		if (w != ETIMEDOUT)
			continue;
		pthread_mutex_unlock(&vol->gc_wmu);
		cairn_gc_opts o;
		cairn_gc_result r;
		volume_gc_opts_init(&o);
		o.compact_max_bytes = GC_BG_COMPACT_MAX;  /* a gentle rate */
		int rc = volume_gc(vol, &o, &r);
		if (rc && rc != CAIRN_E_CANCELED)
			CAIRN_WARN(VOL_MOD, "background gc: %s", cairn_errmsg());
		pthread_mutex_lock(&vol->gc_wmu);
	}
	pthread_mutex_unlock(&vol->gc_wmu);
	return NULL;
}

int vol_gc_start(cairn_volume *vol)
{
	if (!vol->o.gc_interval_ms)
		return 0;
	if (pthread_create(&vol->gc_thr, NULL, gc_main, vol) != 0)
		return cairn_errf(CAIRN_E_NOMEM, "start the gc thread");
	vol->gc_thread = 1;
	return 0;
}

void vol_gc_stop(cairn_volume *vol)
{
	pthread_mutex_lock(&vol->gc_wmu);
	__atomic_store_n(&vol->gc_stop, 1, __ATOMIC_RELAXED);
	pthread_cond_broadcast(&vol->gc_cv);
	pthread_mutex_unlock(&vol->gc_wmu);
	if (vol->gc_thread) {
		pthread_join(vol->gc_thr, NULL);
		vol->gc_thread = 0;
	}
}

/* ---- accounting ---- */

static int space_seg_cb(const meta_seg *s, void *arg)
{
	cairn_space *o = arg;
	o->segments++;
	o->stored_bytes += s->size;
	if (s->state == META_SEG_DEAD || s->state == META_SEG_DELETING)
		o->segments_dead++;
	return 0;
}

int volume_space(cairn_volume *vol, cairn_space *out)
{
	meta_statfs sf;
	meta_txn *t;
	uint64_t nrec = 0;
	int rc;

	memset(out, 0, sizeof *out);
	if ((rc = meta_read_begin(vol->meta, &t)))
		return rc;
	rc = meta_statfs_get(t, &sf);
	if (!rc)
		rc = meta_extent_totals(t, &out->referenced_bytes, &nrec);
	if (!rc)
		rc = meta_seg_list(t, 0, space_seg_cb, out);
	meta_read_end(t);
	if (rc)
		return cairn_err_wrap(rc, "space of volume %s", vol->dir);
	out->logical_bytes = sf.file_bytes;
	out->live_bytes = sf.stored_bytes;
	out->chunks = sf.chunks;
	out->reclaimable_bytes = out->stored_bytes > out->live_bytes
				 ? out->stored_bytes - out->live_bytes : 0;
	out->dedup_ratio = out->live_bytes
			   ? (double)out->referenced_bytes / (double)out->live_bytes : 1.0;
	out->live_fraction = out->stored_bytes
			     ? (double)out->live_bytes / (double)out->stored_bytes : 1.0;
	return 0;
}

int volume_tree_usage(cairn_volume *vol, uint64_t ino, cairn_tree_usage *out)
{
	meta_tree_usage u;
	meta_txn *t;
	int rc;

	memset(out, 0, sizeof *out);
	if ((rc = meta_read_begin(vol->meta, &t)))
		return rc;
	rc = meta_tree_usage_get(t, ino, &u);
	meta_read_end(t);
	if (rc)
		return cairn_err_wrap(rc, "usage of inode %" PRIu64, ino);
	out->files = u.files;
	out->dirs = u.dirs;
	out->symlinks = u.symlinks;
	out->logical_bytes = u.logical_bytes;
	out->stored_bytes = u.stored_bytes;
	out->unique_bytes = u.unique_bytes;
	return 0;
}

/* ---- fsck ---- */

static void fsck_problem(FILE *report, cairn_fsck_result *res, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void fsck_problem(FILE *report, cairn_fsck_result *res, const char *fmt, ...)
{
	va_list ap;
	res->problems++;
	if (!report)
		return;
	va_start(ap, fmt);
	fputs("fsck: ", report);
	vfprintf(report, fmt, ap);
	fputc('\n', report);
	va_end(ap);
}

/* The local file of a segment not (yet) uploaded: -1 missing, else its
 * size. */
static int64_t local_size(cairn_volume *vol, uint64_t id)
{
	char path[4096];
	struct stat st;
	vol_seg_path(vol, id, path, sizeof path);
	return stat(path, &st) == 0 ? (int64_t)st.st_size : -1;
}

/* The local side of segment g; *remote is set when its object must be
 * checked in the store. */
static int fsck_seg_local(cairn_volume *vol, const gseg *g, FILE *report,
			  cairn_fsck_result *res, int *remote)
{
	int rc;

	*remote = 0;
	if (g->state == META_SEG_STAGING || g->state == META_SEG_SEALED ||
	    g->state == META_SEG_UPLOADING) {
		int64_t sz = local_size(vol, g->id);
		if (sz >= 0 && (g->state == META_SEG_STAGING ? (uint64_t)sz >= g->size
							     : (uint64_t)sz == g->size))
			return 0;
		/* It may have been uploaded (and the local copy dropped)
		 * since the list was read. */
		meta_txn *t;
		meta_seg s;
		if ((rc = meta_read_begin(vol->meta, &t)))
			return rc;
		rc = meta_seg_get(t, g->id, &s);
		meta_read_end(t);
		if (rc == CAIRN_E_NOTFOUND || (!rc && s.state != META_SEG_UPLOADED &&
					       s.state != g->state)) {
			cairn_err_clear();
			return 0;  /* moved on: checked at the next fsck */
		}
		if (rc)
			return rc;
		if (s.state != META_SEG_UPLOADED) {
			if (sz < 0)
				fsck_problem(report, res, "segment %s (state %u): local file missing",
					     g->key, g->state);
			else
				fsck_problem(report, res, "segment %s (state %u): local file has %"
					     PRId64 " bytes, recorded size %" PRIu64, g->key,
					     g->state, sz, g->size);
			return 0;
		}
	} else if (g->state != META_SEG_UPLOADED) {
		return 0;  /* dead: its object may or may not be there */
	}
	if (!g->key[0])
		fsck_problem(report, res, "segment %" PRIu64 ": uploaded but has no key", g->id);
	else
		*remote = 1;
	return 0;
}

#define FSCK_HEADS 64

/* HEAD the objects of segs[0..n) in parallel, FSCK_HEADS at a time. */
static int fsck_heads(cairn_volume *vol, const gseg **segs, size_t n, FILE *report,
		      cairn_fsck_result *res)
{
	cairn_obj_req *req = calloc(FSCK_HEADS, sizeof *req);
	cairn_obj_batch *b = NULL;
	int rc = 0;

	if (!req)
		return cairn_errf(CAIRN_E_NOMEM, "fsck: store checks");
	if ((rc = objstore_batch_new(vol->os, &b)))
		goto out;
	for (size_t at = 0; at < n && !rc; at += FSCK_HEADS) {
		size_t k = n - at < FSCK_HEADS ? n - at : FSCK_HEADS;
		size_t sub = 0;
		for (size_t i = 0; i < k && !rc; i++) {
			memset(&req[i], 0, sizeof req[i]);
			req[i].op = OBJ_OP_HEAD;
			req[i].key = segs[at + i]->key;
			if (!(rc = objstore_submit(b, &req[i])))
				sub++;
		}
		while (objstore_batch_outstanding(b)) {
			cairn_obj_req *d;
			objstore_batch_reap(b, &d);
		}
		for (size_t i = 0; i < sub && !rc; i++) {
			const gseg *g = segs[at + i];
			if (req[i].rc == CAIRN_E_NOTFOUND)
				fsck_problem(report, res, "segment %s: uploaded, but not in the store",
					     g->key);
			else if (req[i].rc)
				rc = cairn_err_set(req[i].rc, req[i].msg);
			else if (req[i].info.size != g->size)
				fsck_problem(report, res, "segment %s: %" PRIu64 " bytes in the store, "
					     "recorded %" PRIu64, g->key, req[i].info.size, g->size);
		}
	}
out:
	objstore_batch_free(b);
	free(req);
	if (!rc)
		cairn_err_clear();
	return rc ? cairn_err_wrap(rc, "fsck: store") : 0;
}

int volume_fsck(cairn_volume *vol, unsigned flags, FILE *report, cairn_fsck_result *res)
{
	meta_fsck_result mr;
	gsegs l = { 0 };
	int rc;

	memset(res, 0, sizeof *res);
	if (flags & ~CAIRN_FSCK_REPAIR)
		return cairn_errf(CAIRN_E_INVAL, "fsck flags 0x%x unknown", flags);
	if (flags & CAIRN_FSCK_REPAIR)
		VOL_RO_CHECK(vol);
	rc = meta_fsck(vol->meta, (flags & CAIRN_FSCK_REPAIR) ? META_FSCK_REPAIR : 0, report, &mr);
	if (rc)
		return cairn_err_wrap(rc, "fsck of volume %s", vol->dir);
	res->inodes = mr.inodes;
	res->dirents = mr.dirents;
	res->extents = mr.extents;
	res->chunks = mr.chunks;
	res->segments = mr.segments;
	res->problems = mr.problems;
	res->repaired = mr.repaired;
	res->live_bytes = mr.live_bytes;
	res->referenced_bytes = mr.referenced_bytes;
	/* Segments in the store and on disk: not while gc deletes them. */
	pthread_mutex_lock(&vol->gc_mu);
	rc = gsegs_load(vol, &l);
	const gseg **remote = calloc(l.n + 1, sizeof *remote);
	size_t nremote = 0;
	if (!rc && !remote)
		rc = cairn_errf(CAIRN_E_NOMEM, "fsck: segment list");
	for (size_t i = 0; !rc && i < l.n; i++) {
		int r = 0;
		rc = fsck_seg_local(vol, &l.v[i], report, res, &r);
		if (r)
			remote[nremote++] = &l.v[i];
	}
	if (!rc && nremote)
		rc = fsck_heads(vol, remote, nremote, report, res);
	pthread_mutex_unlock(&vol->gc_mu);
	free(remote);
	free(l.v);
	if (rc)
		return cairn_err_wrap(rc, "fsck of volume %s", vol->dir);
	return 0;
}
