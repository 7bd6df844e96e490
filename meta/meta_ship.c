/*
 * meta_ship.c - what log shipping (docs/log-shipping.md) needs from the
 * metadata engine besides images (meta_image.c): the durable LSN, the
 * segments a WAL record names, the writer epoch counter, and log objects,
 * the unit in which the WAL is stored in the object store.
 *
 * Log object (docs/format.md "Log object"): an 80-byte header and a body of
 * records, each framed by its u32 LE length:
 *
 *   "CAIRNLOG" | version u16 | header size u16 | nrec u32 | first u64 |
 *   last u64 | epoch u64 | writer[16] | time_ns i64 | body length u64 |
 *   reserved u32 (0) | crc32c u32 of header bytes 0..75 and the body
 *
 * A log object comes from outside (the store): meta_logobj_decode checks
 * every length before use and verifies the whole object before it hands
 * out the first record.
 *
 *   meta_logbuf:  empty --meta_logbuf_add--> records --meta_logbuf_finish-->
 *                 object (b->p, b->len) --meta_logbuf_reset--> empty
 *   (adding after finish is allowed: finish again rewrites the header)
 *
 * Invariants:
 *   1. A logbuf holds records first..last, dense, each a valid WAL record
 *      (meta_wal_decode), in front of them room for the header.
 *   2. meta_logobj_decode calls cb only when the whole object checked out:
 *      a bad object never half-applies.
 *   3. durable_lsn only grows, and names a record only after an fdatasync
 *      that covers its commit returned (meta_durable_note's callers).
 */
#include <stdlib.h>

#include "cairn/codec.h"
#include "meta_int.h"

#define LOG_MAGIC "CAIRNLOG"
#define LOG_HDR 80
/* objects the decoder accepts at all (the shipper writes 16 MiB ones) */
#define LOG_MAX ((size_t)1 << 30)

/* ---- durable LSN ---- */

void meta_durable_note(cairn_meta *m, uint64_t lsn)
{
	uint64_t cur = __atomic_load_n(&m->durable_lsn, __ATOMIC_SEQ_CST);
	while (lsn > cur &&
	       !__atomic_compare_exchange_n(&m->durable_lsn, &cur, lsn, 0, __ATOMIC_SEQ_CST,
					    __ATOMIC_SEQ_CST))
		;
}

uint64_t meta_durable_lsn(cairn_meta *m)
{
	return __atomic_load_n(&m->durable_lsn, __ATOMIC_SEQ_CST);
}

/* ---- segment references of a record ---- */

int meta_wal_segrefs(const void *rec, size_t len, meta_segref_fn cb, void *arg)
{
	uint64_t lsn;
	uint32_t n;
	int rc = meta_wal_decode(rec, len, &lsn, NULL, &n);
	if (rc)
		return rc;
	const uint8_t *p = (const uint8_t *)rec + MW_HDR;
	size_t blen = len - MW_HDR, pos = 0;
	for (uint32_t i = 0; i < n; i++) {
		if (blen - pos < 8)
			return cairn_errf(CAIRN_E_CORRUPT, "WAL record %llu entry %u: truncated header",
					  (unsigned long long)lsn, i);
		uint8_t kind = p[pos], tbl = p[pos + 1];
		size_t kl = rle16(p + pos + 2), vl = rle32(p + pos + 4);
		pos += 8;
		if (kl > blen - pos || vl > blen - pos - kl)
			return cairn_errf(CAIRN_E_CORRUPT,
					  "WAL record %llu entry %u: lengths %zu+%zu past the record",
					  (unsigned long long)lsn, i, kl, vl);
		const uint8_t *k = p + pos;
		MDB_val v = { vl, (void *)(p + pos + kl) };
		pos += kl + vl;
		if (kind < MW_PUT || kind > MW_SNAPDEL)
			return cairn_errf(CAIRN_E_CORRUPT, "WAL record %llu entry %u: kind %u unknown",
					  (unsigned long long)lsn, i, kind);
		if (kind != MW_PUT || (tbl != MT_CHUNK && tbl != MT_SEG))
			continue;
		if (kl != 8)
			return cairn_errf(CAIRN_E_CORRUPT, "WAL record %llu entry %u: %s key of %zu bytes",
					  (unsigned long long)lsn, i, meta_table_names[tbl], kl);
		uint64_t id = rbe64(k);
		if (tbl == MT_CHUNK) {
			meta_chunk c;
			if ((rc = mch_dec(id, &v, &c)))
				return cairn_err_wrap(rc, "WAL record %llu", (unsigned long long)lsn);
			rc = cb(c.seg, 0, arg);
		} else {
			meta_seg s;
			if ((rc = ms_dec(id, &v, &s)))
				return cairn_err_wrap(rc, "WAL record %llu", (unsigned long long)lsn);
			rc = cb(s.id, s.state, arg);
		}
		if (rc)
			return rc;
	}
	if (pos != blen)
		return cairn_errf(CAIRN_E_CORRUPT, "WAL record %llu: %zu bytes after the last entry",
				  (unsigned long long)lsn, blen - pos);
	return 0;
}

/* ---- writer epoch ---- */

int meta_writer_epoch_get(meta_txn *t, uint64_t *epoch)
{
	return mt_counter_get(t, MC_WRITER_EPOCH, epoch);
}

int meta_writer_epoch_set(meta_txn *t, uint64_t epoch)
{
	uint8_t k = MC_WRITER_EPOCH, v[8];
	int rc = mt_need_write(t);
	if (rc)
		return rc;
	if (epoch == 0)
		return cairn_errf(CAIRN_E_INVAL, "writer epoch 0 is reserved for 'never set'");
	le64(v, epoch);
	return mt_put(t, MT_COUNTER, &k, 1, v, 8);
}

/* ---- log objects ---- */

static int logbuf_grow(meta_logbuf *b, size_t need)
{
	if (need <= b->cap)
		return 0;
	size_t nc = b->cap ? b->cap : 4096;
	while (nc < need)
		nc *= 2;
	uint8_t *np = realloc(b->p, nc);
	if (!np)
		return cairn_errf(CAIRN_E_NOMEM, "log object of %zu bytes", nc);
	b->p = np;
	b->cap = nc;
	return 0;
}

int meta_logbuf_add(meta_logbuf *b, const void *rec, size_t len)
{
	uint64_t lsn;
	int rc = meta_wal_decode(rec, len, &lsn, NULL, NULL);
	if (rc)
		return cairn_err_wrap(rc, "add to log object");
	if (lsn == 0)
		return cairn_errf(CAIRN_E_CORRUPT, "WAL record with LSN 0");
	if (b->n && lsn != b->last + 1)
		return cairn_errf(CAIRN_E_INVAL, "WAL record %llu does not follow on %llu in the log object",
				  (unsigned long long)lsn, (unsigned long long)b->last);
	if (b->n == UINT32_MAX)
		return cairn_errf(CAIRN_E_RANGE, "log object holds too many records");
	size_t base = b->n ? b->len : LOG_HDR;
	if (len > LOG_MAX || base + 4 + len > LOG_MAX)
		return cairn_errf(CAIRN_E_RANGE, "log object would exceed %zu bytes", LOG_MAX);
	if ((rc = logbuf_grow(b, base + 4 + len)))
		return rc;
	if (!b->n)
		memset(b->p, 0, LOG_HDR);
	le32(b->p + base, (uint32_t)len);
	memcpy(b->p + base + 4, rec, len);
	b->len = base + 4 + len;
	if (!b->n)
		b->first = lsn;
	b->last = lsn;
	b->n++;
	return 0;
}

int meta_logbuf_finish(meta_logbuf *b, uint64_t epoch, const uint8_t writer[16],
		       int64_t time_ns)
{
	if (!b->n)
		return cairn_errf(CAIRN_E_INVAL, "empty log object");
	uint8_t *h = b->p;
	memset(h, 0, LOG_HDR);
	memcpy(h, LOG_MAGIC, 8);
	le16(h + 8, META_LOGOBJ_VERSION);
	le16(h + 10, LOG_HDR);
	le32(h + 12, b->n);
	le64(h + 16, b->first);
	le64(h + 24, b->last);
	le64(h + 32, epoch);
	if (writer)
		memcpy(h + 40, writer, 16);
	le64(h + 56, (uint64_t)time_ns);
	le64(h + 64, (uint64_t)(b->len - LOG_HDR));
	uint32_t crc = cairn_crc32c(0, h, 76);
	crc = cairn_crc32c(crc, h + LOG_HDR, b->len - LOG_HDR);
	le32(h + 76, crc);
	return 0;
}

void meta_logbuf_reset(meta_logbuf *b)
{
	b->len = 0;
	b->n = 0;
	b->first = b->last = 0;
}

void meta_logbuf_free(meta_logbuf *b)
{
	free(b->p);
	memset(b, 0, sizeof *b);
}

int meta_logobj_decode(const void *buf, size_t len, meta_logobj_hdr *hdr,
		       meta_wal_fn cb, void *arg)
{
	const uint8_t *h = buf;
	if (len < LOG_HDR)
		return cairn_errf(CAIRN_E_CORRUPT, "log object of %zu bytes is shorter than its header",
				  len);
	if (len > LOG_MAX)
		return cairn_errf(CAIRN_E_CORRUPT, "log object of %zu bytes is over the %zu byte limit",
				  len, LOG_MAX);
	if (memcmp(h, LOG_MAGIC, 8))
		return cairn_errf(CAIRN_E_CORRUPT, "not a log object (bad magic)");
	if (rle16(h + 8) != META_LOGOBJ_VERSION)
		return cairn_errf(CAIRN_E_VERSION,
				  "log object version %u is unknown (this build reads version %u)",
				  rle16(h + 8), META_LOGOBJ_VERSION);
	uint64_t blen = rle64(h + 64);
	if (rle16(h + 10) != LOG_HDR || blen != len - LOG_HDR || rle32(h + 72) != 0)
		return cairn_errf(CAIRN_E_CORRUPT,
				  "log object: header size %u, body %llu bytes, object %zu bytes",
				  rle16(h + 10), (unsigned long long)blen, len);
	uint32_t crc = cairn_crc32c(0, h, 76);
	crc = cairn_crc32c(crc, h + LOG_HDR, len - LOG_HDR);
	if (crc != rle32(h + 76))
		return cairn_errf(CAIRN_E_CORRUPT, "log object: checksum mismatch");
	meta_logobj_hdr hd;
	memset(&hd, 0, sizeof hd);
	hd.nrec = rle32(h + 12);
	hd.first = rle64(h + 16);
	hd.last = rle64(h + 24);
	hd.epoch = rle64(h + 32);
	memcpy(hd.writer, h + 40, 16);
	hd.time_ns = (int64_t)rle64(h + 56);
	if (hd.first == 0 || hd.last < hd.first || hd.nrec == 0 ||
	    hd.last - hd.first != (uint64_t)hd.nrec - 1 ||
	    (uint64_t)hd.nrec * (4 + MW_HDR) > blen)
		return cairn_errf(CAIRN_E_CORRUPT,
				  "log object: LSNs %llu..%llu and %u records do not agree "
				  "(body %llu bytes)", (unsigned long long)hd.first,
				  (unsigned long long)hd.last, hd.nrec, (unsigned long long)blen);
	/* pass 1: every record, before any is handed out */
	const uint8_t *p = h + LOG_HDR;
	size_t pos = 0;
	for (uint32_t i = 0; i < hd.nrec; i++) {
		if (blen - pos < 4)
			return cairn_errf(CAIRN_E_CORRUPT, "log object: record %u of %u truncated",
					  i, hd.nrec);
		size_t rl = rle32(p + pos);
		pos += 4;
		if (rl > blen - pos)
			return cairn_errf(CAIRN_E_CORRUPT,
					  "log object: record %u of %zu bytes past the end", i, rl);
		uint64_t lsn;
		int rc = meta_wal_decode(p + pos, rl, &lsn, NULL, NULL);
		if (rc)
			return cairn_err_wrap(rc, "log object %llu..%llu, record %u",
					      (unsigned long long)hd.first,
					      (unsigned long long)hd.last, i);
		if (lsn != hd.first + i)
			return cairn_errf(CAIRN_E_CORRUPT,
					  "log object %llu..%llu: record %u has LSN %llu",
					  (unsigned long long)hd.first, (unsigned long long)hd.last,
					  i, (unsigned long long)lsn);
		pos += rl;
	}
	if (pos != blen)
		return cairn_errf(CAIRN_E_CORRUPT, "log object: %llu bytes after the last record",
				  (unsigned long long)(blen - pos));
	if (hdr)
		*hdr = hd;
	if (!cb)
		return 0;
	/* pass 2: hand them out */
	pos = 0;
	for (uint32_t i = 0; i < hd.nrec; i++) {
		size_t rl = rle32(p + pos);
		pos += 4;
		int r = cb(hd.first + i, p + pos, rl, arg);
		if (r)
			return r;
		pos += rl;
	}
	return 0;
}
