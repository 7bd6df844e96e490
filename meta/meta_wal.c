/*
 * meta_wal.c - the write-ahead log: reading records from an LSN, applying
 * them to a replica, trimming past the horizon, consumers, and the digest
 * used to compare two environments.
 *
 * A record (docs/format.md "WAL record") is written by meta_txn.c in the
 * same LMDB transaction as the changes it describes: a 32-byte header
 * (version, op, entry count, LSN, time, body length, crc32c) and entries,
 * each a physical put or delete of one key in one replicated table, or a
 * logical snapshot/clone (replayed by running the same deterministic copy).
 * Replaying every record from LSN 1 onto an empty replica reproduces the
 * tables bit for bit, and the replica's own WAL gets identical records.
 *
 * Trimming.  Records at or below  min(last - wal_keep, min consumer ack)
 * are deleted, so the log stays bounded unless a registered consumer (log
 * shipping) lags: in the default mode (META_RELAXED_PINNED) all of them by
 * each checkpoint, in a commit of its own right before its capture
 * (meta_ckpt.c says why: trimmed pages then need no undo record), so the
 * log holds up to wal_keep + the records of one flush interval; in the
 * other modes a bounded number per commit and all of them by the
 * flusher's meta_wal_trim.
 *
 * Invariants:
 *   1. Retained LSNs are dense: first..last with no gap.
 *   2. A record is never trimmed while a consumer's ack is below it.
 *   3. A record is applied only at LSN last+1 of the replica.
 */
#include <stdlib.h>

#include "meta_int.h"

#define CONSUMER_PREFIX "consumer:"

int meta_wal_decode(const void *rec, size_t len, uint64_t *lsn, unsigned *op,
		    uint32_t *nentries)
{
	const uint8_t *h = rec;
	if (len < MW_HDR)
		return cairn_errf(CAIRN_E_CORRUPT, "WAL record of %zu bytes is shorter than its header",
				  len);
	if (h[0] != META_REC_V1)
		return cairn_errf(CAIRN_E_VERSION,
				  "WAL record version %u is unknown (this build reads version %u)",
				  h[0], META_REC_V1);
	if (rle32(h + 24) != len - MW_HDR)
		return cairn_errf(CAIRN_E_CORRUPT, "WAL record body is %zu bytes, header says %u",
				  len - MW_HDR, rle32(h + 24));
	uint32_t crc = cairn_crc32c(0, h, 28);
	crc = cairn_crc32c(crc, h + MW_HDR, len - MW_HDR);
	if (crc != rle32(h + 28))
		return cairn_errf(CAIRN_E_CORRUPT, "WAL record %llu: checksum mismatch",
				  (unsigned long long)rle64(h + 8));
	if (lsn)
		*lsn = rle64(h + 8);
	if (op)
		*op = h[1];
	if (nentries)
		*nentries = rle32(h + 4);
	return 0;
}

int mw_apply_body(meta_txn *t, const uint8_t *p, size_t len, uint32_t n)
{
	size_t pos = 0;
	int rc = 0;
	for (uint32_t i = 0; i < n && !rc; i++) {
		if (len - pos < 8)
			return cairn_errf(CAIRN_E_CORRUPT, "WAL entry %u: truncated header", i);
		uint8_t kind = p[pos], tbl = p[pos + 1];
		size_t kl = rle16(p + pos + 2), vl = rle32(p + pos + 4);
		pos += 8;
		if (kl > len - pos || vl > len - pos - kl)
			return cairn_errf(CAIRN_E_CORRUPT, "WAL entry %u: lengths %zu+%zu past the record",
					  i, kl, vl);
		const uint8_t *k = p + pos, *v = p + pos + kl;
		pos += kl + vl;
		switch (kind) {
		case MW_PUT:
		case MW_DEL:
			if (tbl >= MT_NREPL)
				return cairn_errf(CAIRN_E_CORRUPT, "WAL entry %u: table %u unknown", i, tbl);
			if (kl == 0)
				return cairn_errf(CAIRN_E_CORRUPT, "WAL entry %u: empty key", i);
			rc = kind == MW_PUT ? mt_put(t, tbl, k, kl, v, vl) : mt_del(t, tbl, k, kl);
			break;
		case MW_SNAPSHOT:
		case MW_CLONE:
		case MW_SNAPDEL:
			rc = ms_snap_replay(t, kind, v, vl);
			break;
		default:
			return cairn_errf(CAIRN_E_CORRUPT, "WAL entry %u: kind %u unknown", i, kind);
		}
	}
	if (!rc && pos != len)
		return cairn_errf(CAIRN_E_CORRUPT, "WAL record: %zu bytes after the last entry",
				  len - pos);
	return rc;
}

typedef struct apply_arg {
	const uint8_t *rec;
	size_t len;
	uint64_t lsn;
	uint32_t n;
} apply_arg;

static int apply_fn(meta_txn *t, void *arg)
{
	apply_arg *a = arg;
	if (a->lsn != t->lsn_next)
		return cairn_errf(CAIRN_E_INVAL, "WAL record %llu does not follow on LSN %llu",
				  (unsigned long long)a->lsn, (unsigned long long)(t->lsn_next - 1));
	/* logical entries (snapshots) stamp times from the record */
	t->now = (int64_t)rle64(a->rec + 16);
	t->suppress++;
	int rc = mw_apply_body(t, a->rec + MW_HDR, a->len - MW_HDR, a->n);
	t->suppress--;
	if (rc)
		return rc;
	/* the replica logs the very same record */
	t->rec.len = MW_HDR;
	if ((rc = mt_buf_add(&t->rec, a->rec + MW_HDR, a->len - MW_HDR)))
		return rc;
	t->nent = a->n ? a->n : 1;
	return 0;
}

int meta_wal_apply(cairn_meta *m, const void *rec, size_t len)
{
	apply_arg a = { rec, len, 0, 0 };
	unsigned op;
	int rc = meta_wal_decode(rec, len, &a.lsn, &op, &a.n);
	if (rc)
		return rc;
	return meta_write(m, META_RELAXED, op, apply_fn, &a, NULL);
}

static uint64_t wal_first_key(MDB_txn *txn, MDB_dbi dbi)
{
	MDB_cursor *c;
	MDB_val k, v;
	uint64_t first = 0;
	if (mdb_cursor_open(txn, dbi, &c))
		return 0;
	if (!mdb_cursor_get(c, &k, &v, MDB_FIRST) && k.mv_size == 8)
		first = rbe64(k.mv_data);
	mdb_cursor_close(c);
	return first;
}

int meta_wal_read(cairn_meta *m, uint64_t from, meta_wal_fn cb, void *arg)
{
	meta_txn *t;
	MDB_cursor *c;
	int rc = meta_read_begin(m, &t);
	if (rc)
		return rc;
	if (from == 0)
		from = 1;
	uint64_t first = wal_first_key(t->txn, m->dbi[MT_WAL]);
	MDB_val lk = { 8, "last_lsn" }, lv;
	uint64_t last = 0;
	if (!mdb_get(t->txn, m->dbi[MT_LOCAL], &lk, &lv) && lv.mv_size == 8)
		last = rle64(lv.mv_data);
	if ((first && from < first) || (!first && from <= last)) {
		rc = cairn_errf(CAIRN_E_NOTFOUND, "WAL record %llu was trimmed (first retained: %llu)",
				(unsigned long long)from, (unsigned long long)first);
		goto out;
	}
	if ((rc = mt_cursor(t, MT_WAL, &c)))
		goto out;
	uint8_t kb[8];
	be64(kb, from);
	MDB_val k = { 8, kb }, v;
	int err = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
	while (!err) {
		if (k.mv_size != 8) {
			rc = cairn_errf(CAIRN_E_CORRUPT, "WAL key of %zu bytes", k.mv_size);
			break;
		}
		if (cb(rbe64(k.mv_data), v.mv_data, v.mv_size, arg))
			break;
		err = mdb_cursor_get(c, &k, &v, MDB_NEXT);
	}
	mdb_cursor_close(c);
	if (!rc && err && err != MDB_NOTFOUND)
		rc = meta_lmdb_err(err, "read WAL");
out:
	meta_read_end(t);
	return rc;
}

int meta_wal_bounds(cairn_meta *m, uint64_t *first, uint64_t *last)
{
	meta_txn *t;
	int rc = meta_read_begin(m, &t);
	if (rc)
		return rc;
	*first = wal_first_key(t->txn, m->dbi[MT_WAL]);
	MDB_val lk = { 8, "last_lsn" }, lv;
	*last = 0;
	if (!mdb_get(t->txn, m->dbi[MT_LOCAL], &lk, &lv) && lv.mv_size == 8)
		*last = rle64(lv.mv_data);
	meta_read_end(t);
	return 0;
}

/* The lowest LSN any consumer still needs minus one (UINT64_MAX: none). */
static uint64_t wal_min_ack(cairn_meta *m, MDB_txn *txn)
{
	MDB_cursor *c;
	uint64_t min = UINT64_MAX;
	size_t pl = strlen(CONSUMER_PREFIX);
	if (mdb_cursor_open(txn, m->dbi[MT_LOCAL], &c))
		return 0;
	MDB_val k = { pl, CONSUMER_PREFIX }, v;
	int err = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
	while (!err && k.mv_size >= pl && !memcmp(k.mv_data, CONSUMER_PREFIX, pl)) {
		if (v.mv_size == 8 && rle64(v.mv_data) < min)
			min = rle64(v.mv_data);
		err = mdb_cursor_get(c, &k, &v, MDB_NEXT);
	}
	mdb_cursor_close(c);
	return min;
}

int mw_trim_some(cairn_meta *m, MDB_txn *txn, uint64_t last, size_t max)
{
	uint64_t keep = m->opts.wal_keep;
	if (last <= keep)
		return 0;
	uint64_t upto = last - keep;
	uint64_t hint = __atomic_load_n(&m->wal_first, __ATOMIC_RELAXED);
	if (hint && hint > upto)
		return 0;  /* cheap exit: nothing below the horizon */
	uint64_t ack = wal_min_ack(m, txn);
	if (ack < upto)
		upto = ack;
	MDB_cursor *c;
	MDB_val k, v;
	int err = mdb_cursor_open(txn, m->dbi[MT_WAL], &c);
	if (err)
		return meta_lmdb_err(err, "trim WAL");
	size_t n = 0;
	err = mdb_cursor_get(c, &k, &v, MDB_FIRST);
	while (!err && n < max && k.mv_size == 8 && rbe64(k.mv_data) <= upto) {
		if ((err = mdb_cursor_del(c, 0)))
			break;
		n++;
		err = mdb_cursor_get(c, &k, &v, MDB_FIRST);
	}
	uint64_t first = (!err && k.mv_size == 8) ? rbe64(k.mv_data) : 0;
	mdb_cursor_close(c);
	if (err && err != MDB_NOTFOUND)
		return meta_lmdb_err(err, "trim WAL");
	/* only a hint; a stale value just costs a scan */
	__atomic_store_n(&m->wal_first, first, __ATOMIC_RELAXED);
	return 0;
}

static int trim_fn(meta_txn *t, void *arg)
{
	(void)arg;
	return mw_trim_some(t->m, t->txn, t->lsn_next - 1, (size_t)1 << 20);
}

int meta_wal_trim(cairn_meta *m)
{
	uint64_t last = __atomic_load_n(&m->last_lsn, __ATOMIC_RELAXED);
	uint64_t first = __atomic_load_n(&m->wal_first, __ATOMIC_RELAXED);
	/* nothing below the horizon: no need for a write transaction (the
	 * flusher calls this every interval) */
	if (first && (last <= m->opts.wal_keep || first > last - m->opts.wal_keep))
		return 0;
	__atomic_store_n(&m->wal_first, 0, __ATOMIC_RELAXED);
	return meta_write(m, META_RELAXED, META_OP_OTHER, trim_fn, NULL, NULL);
}

typedef struct consumer_arg {
	const char *name;
	uint64_t acked;
	int remove;
} consumer_arg;

static int consumer_fn(meta_txn *t, void *arg)
{
	consumer_arg *a = arg;
	char key[300];
	int n = snprintf(key, sizeof key, CONSUMER_PREFIX "%s", a->name);
	if (a->remove) {
		int rc = mt_del(t, MT_LOCAL, key, (size_t)n);
		if (rc == CAIRN_E_NOTFOUND)
			return cairn_errf(rc, "WAL consumer '%s' is not registered", a->name);
		return rc;
	}
	uint8_t v[8];
	le64(v, a->acked);
	return mt_put(t, MT_LOCAL, key, (size_t)n, v, 8);
}

static int consumer_name_ok(const char *name)
{
	if (!name || !*name || strlen(name) > 255)
		return cairn_errf(CAIRN_E_INVAL, "WAL consumer name empty or over 255 bytes");
	return 0;
}

int meta_wal_consumer_set(cairn_meta *m, const char *name, uint64_t acked)
{
	consumer_arg a = { name, acked, 0 };
	int rc = consumer_name_ok(name);
	if (rc)
		return rc;
	return meta_write(m, META_SYNCED, META_OP_OTHER, consumer_fn, &a, NULL);
}

int meta_wal_consumer_remove(cairn_meta *m, const char *name)
{
	consumer_arg a = { name, 0, 1 };
	int rc = consumer_name_ok(name);
	if (rc)
		return rc;
	return meta_write(m, META_SYNCED, META_OP_OTHER, consumer_fn, &a, NULL);
}

int meta_digest(cairn_meta *m, uint8_t out[32])
{
	meta_txn *t;
	cairn_sha256_ctx *h;
	int rc = cairn_sha256_new(&h);
	if (rc)
		return rc;
	if ((rc = meta_read_begin(m, &t))) {
		cairn_sha256_free(h);
		return rc;
	}
	for (int tbl = 0; tbl < MT_NREPL && !rc; tbl++) {
		MDB_cursor *c;
		MDB_val k, v;
		if ((rc = mt_cursor(t, tbl, &c)))
			break;
		int err = mdb_cursor_get(c, &k, &v, MDB_FIRST);
		while (!err && !rc) {
			uint8_t hdr[10];
			hdr[0] = (uint8_t)tbl;
			le16(hdr + 1, (uint16_t)k.mv_size);
			le32(hdr + 3, (uint32_t)v.mv_size);
			rc = cairn_sha256_update(h, hdr, 7);
			if (!rc)
				rc = cairn_sha256_update(h, k.mv_data, k.mv_size);
			if (!rc)
				rc = cairn_sha256_update(h, v.mv_data, v.mv_size);
			err = mdb_cursor_get(c, &k, &v, MDB_NEXT);
		}
		mdb_cursor_close(c);
		if (!rc && err != MDB_NOTFOUND)
			rc = meta_lmdb_err(err, "digest");
	}
	meta_read_end(t);
	if (!rc)
		rc = cairn_sha256_final(h, out);
	cairn_sha256_free(h);
	return rc;
}
