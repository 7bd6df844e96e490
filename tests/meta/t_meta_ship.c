/*
 * t_meta_ship.c - what log shipping needs from the metadata engine
 * (meta_ship.c): log objects (round trip of real records, every single
 * byte flip and every truncation refused before any record is handed out,
 * non-dense LSNs refused when building), segment references of records
 * against what was committed, the durable LSN under relaxed and synced
 * commits (PINNED and SYNC_EACH modes), and the writer epoch counter
 * (round trip and replay on a replica).  The libFuzzer entry point
 * (fuzz_logobj.c) is replayed on the seed corpus given as arguments and on
 * random mutations.
 *
 *   t_meta_ship --write-seeds DIR   writes the seed corpus
 */
#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include "t.h"
#include "meta_t.h"
#include "meta_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct recs {
	uint8_t *p[64];
	size_t len[64];
	uint64_t lsn[64];
	int n;
} recs;

static int collect_cb(uint64_t lsn, const void *rec, size_t len, void *arg)
{
	recs *r = arg;
	if (r->n >= 64)
		return 1;
	r->p[r->n] = malloc(len);
	if (!r->p[r->n])
		return 1;
	memcpy(r->p[r->n], rec, len);
	r->len[r->n] = len;
	r->lsn[r->n] = lsn;
	r->n++;
	return 0;
}

static void recs_free(recs *r)
{
	for (int i = 0; i < r->n; i++)
		free(r->p[i]);
	r->n = 0;
}

typedef struct seen {
	int calls;
	uint64_t next;
	const recs *want;
	int bad;
} seen;

static int seen_cb(uint64_t lsn, const void *rec, size_t len, void *arg)
{
	seen *s = arg;
	if (lsn != s->next)
		s->bad = 1;
	if (s->want) {
		int i = s->calls;
		if (i >= s->want->n || s->want->lsn[i] != lsn || s->want->len[i] != len ||
		    memcmp(s->want->p[i], rec, len))
			s->bad = 1;
	}
	s->calls++;
	s->next = lsn + 1;
	return 0;
}

static void build_obj(const recs *r, int from, int to, meta_logbuf *b)
{
	meta_logbuf_reset(b);
	for (int i = from; i < to; i++)
		REQUIRE_OK(meta_logbuf_add(b, r->p[i], r->len[i]));
	uint8_t w[16];
	memset(w, 0xab, sizeof w);
	REQUIRE_OK(meta_logbuf_finish(b, 7, w, 123456789));
}

/* ---- log objects ---- */

static void test_logobj(cairn_meta *m, const char *seeds)
{
	meta_attr a, f;
	REQUIRE_OK(w_mkdir(m, META_ROOT_INO, "d", &a));
	REQUIRE_OK(w_create(m, a.ino, "f", &f));
	REQUIRE_OK(w_xset(m, f.ino, "user.k", "v", 1, 0));
	REQUIRE_OK(w_snap(m, META_ROOT_INO, "s1", NULL));
	REQUIRE_OK(w_truncate(m, f.ino, 4096));
	recs r;
	memset(&r, 0, sizeof r);
	REQUIRE_OK(meta_wal_read(m, 1, collect_cb, &r));
	REQUIRE(r.n >= 6);

	/* round trip, the header fields included */
	meta_logbuf b;
	memset(&b, 0, sizeof b);
	build_obj(&r, 0, r.n, &b);
	CHECK(b.n == (uint32_t)r.n && b.first == r.lsn[0] && b.last == r.lsn[r.n - 1]);
	meta_logobj_hdr h;
	seen s = { 0, r.lsn[0], &r, 0 };
	CHECK_OK(meta_logobj_decode(b.p, b.len, &h, seen_cb, &s));
	CHECK(s.calls == r.n && !s.bad);
	CHECK(h.first == r.lsn[0] && h.last == r.lsn[r.n - 1] && h.nrec == (uint32_t)r.n);
	CHECK(h.epoch == 7 && h.time_ns == 123456789 && h.writer[0] == 0xab && h.writer[15] == 0xab);

	/* a part from the middle, and reuse of the buffer */
	build_obj(&r, 2, 4, &b);
	s = (seen){ 0, r.lsn[2], NULL, 0 };
	CHECK_OK(meta_logobj_decode(b.p, b.len, &h, seen_cb, &s));
	CHECK(s.calls == 2 && !s.bad && h.first == r.lsn[2] && h.last == r.lsn[3]);
	if (seeds) {
		/* the seed corpus: small objects of real records */
		char path[700];
		for (int i = 0; i < 3; i++) {
			build_obj(&r, i, i + 1 + i, &b);
			snprintf(path, sizeof path, "%s/seed-%d.log", seeds, i);
			FILE *fp = fopen(path, "wb");
			REQUIRE(fp && fwrite(b.p, 1, b.len, fp) == b.len && fclose(fp) == 0);
		}
	}

	/* every single-byte flip of a small object: refused, cb never called */
	build_obj(&r, 0, 2, &b);
	uint8_t *c = malloc(b.len);
	REQUIRE(c);
	int flips_ok = 1, trunc_ok = 1;
	for (size_t i = 0; i < b.len; i++) {
		for (int bit = 0; bit < 8; bit += 3) {
			memcpy(c, b.p, b.len);
			c[i] ^= (uint8_t)(1u << bit);
			s = (seen){ 0, 0, NULL, 0 };
			int rc = meta_logobj_decode(c, b.len, &h, seen_cb, &s);
			if ((rc != CAIRN_E_CORRUPT && rc != CAIRN_E_VERSION) || s.calls) {
				if (flips_ok)
					fprintf(stderr, "flip of byte %zu bit %d: rc %d, %d calls\n", i,
						bit, rc, s.calls);
				flips_ok = 0;
			}
		}
	}
	CHECK(flips_ok);
	/* every truncation, and one byte too many */
	for (size_t l = 0; l < b.len; l++) {
		s = (seen){ 0, 0, NULL, 0 };
		int rc = meta_logobj_decode(b.p, l, &h, seen_cb, &s);
		if (rc != CAIRN_E_CORRUPT || s.calls)
			trunc_ok = 0;
	}
	CHECK(trunc_ok);
	uint8_t *longer = calloc(1, b.len + 1);
	REQUIRE(longer);
	memcpy(longer, b.p, b.len);
	s = (seen){ 0, 0, NULL, 0 };
	CHECK_RC(meta_logobj_decode(longer, b.len + 1, &h, seen_cb, &s), CAIRN_E_CORRUPT);
	CHECK(s.calls == 0);
	free(longer);

	/* the version byte alone (crc fixed up) is CAIRN_E_VERSION */
	memcpy(c, b.p, b.len);
	c[8] = 2;
	le32(c + 76, cairn_crc32c(cairn_crc32c(0, c, 76), c + 80, b.len - 80));
	CHECK_RC(meta_logobj_decode(c, b.len, &h, NULL, NULL), CAIRN_E_VERSION);
	/* a header whose LSNs disagree with its records, crc fixed up */
	memcpy(c, b.p, b.len);
	le64(c + 16, rle64(c + 16) + 1);
	le64(c + 24, rle64(c + 24) + 1);
	le32(c + 76, cairn_crc32c(cairn_crc32c(0, c, 76), c + 80, b.len - 80));
	CHECK_RC(meta_logobj_decode(c, b.len, &h, NULL, NULL), CAIRN_E_CORRUPT);
	CHECK_MSG("has LSN");
	/* a record count the body cannot hold */
	memcpy(c, b.p, b.len);
	le32(c + 12, 1000000);
	le64(c + 24, rle64(c + 16) + 999999);
	le32(c + 76, cairn_crc32c(cairn_crc32c(0, c, 76), c + 80, b.len - 80));
	CHECK_RC(meta_logobj_decode(c, b.len, &h, NULL, NULL), CAIRN_E_CORRUPT);
	free(c);

	/* building: LSNs must follow on; a bad record is refused */
	meta_logbuf_reset(&b);
	CHECK_OK(meta_logbuf_add(&b, r.p[0], r.len[0]));
	CHECK_RC(meta_logbuf_add(&b, r.p[2], r.len[2]), CAIRN_E_INVAL);
	CHECK_RC(meta_logbuf_add(&b, r.p[0], r.len[0]), CAIRN_E_INVAL);
	CHECK_OK(meta_logbuf_add(&b, r.p[1], r.len[1]));
	uint8_t *bad = malloc(r.len[2]);
	REQUIRE(bad);
	memcpy(bad, r.p[2], r.len[2]);
	bad[r.len[2] - 1] ^= 1;
	CHECK_RC(meta_logbuf_add(&b, bad, r.len[2]), CAIRN_E_CORRUPT);
	free(bad);
	CHECK(b.n == 2);
	meta_logbuf_reset(&b);
	CHECK_RC(meta_logbuf_finish(&b, 1, NULL, 0), CAIRN_E_INVAL);
	meta_logbuf_free(&b);
	recs_free(&r);
}

/* ---- the fuzz entry point on seeds and mutations ---- */

static size_t read_file(const char *path, uint8_t **out)
{
	FILE *fp = fopen(path, "rb");
	if (!fp)
		return 0;
	uint8_t *p = malloc(1 << 20);
	size_t n = p ? fread(p, 1, 1 << 20, fp) : 0;
	fclose(fp);
	*out = p;
	return n;
}

static void test_fuzz_replay(int argc, char **argv, cairn_meta *m)
{
	int files = 0;
	uint64_t seed = t_seed();
	recs r;
	memset(&r, 0, sizeof r);
	REQUIRE_OK(meta_wal_read(m, 1, collect_cb, &r));
	meta_logbuf b;
	memset(&b, 0, sizeof b);
	build_obj(&r, 0, r.n < 4 ? r.n : 4, &b);
	LLVMFuzzerTestOneInput(b.p, b.len);
	for (int a = 1; a < argc; a++) {
		DIR *d = opendir(argv[a]);
		struct dirent *e;
		if (!d)
			continue;
		while ((e = readdir(d))) {
			char path[1200];
			uint8_t *p = NULL;
			if (e->d_name[0] == '.')
				continue;
			snprintf(path, sizeof path, "%s/%s", argv[a], e->d_name);
			size_t n = read_file(path, &p);
			if (p) {
				LLVMFuzzerTestOneInput(p, n);
				files++;
			}
			free(p);
		}
		closedir(d);
	}
	if (argc > 1)
		CHECK(files >= 3);
	/* random mutations of a valid object: flips, truncations, splices */
	uint8_t *c = malloc(b.len + 64);
	REQUIRE(c);
	uint64_t iters = t_scaled(20000);
	for (uint64_t i = 0; i < iters; i++) {
		size_t len = b.len;
		memcpy(c, b.p, b.len);
		int nmut = 1 + (int)(t_rand(&seed) % 4);
		for (int k = 0; k < nmut; k++) {
			uint64_t x = t_rand(&seed);
			switch (x % 3) {
			case 0: c[(x >> 8) % len] ^= (uint8_t)(x >> 40); break;
			case 1: len = (size_t)((x >> 8) % (len + 1)); if (!len) len = 1; break;
			default: c[(x >> 8) % len] = (uint8_t)(x >> 32); break;
			}
		}
		LLVMFuzzerTestOneInput(c, len);
	}
	CHECK(1);
	free(c);
	meta_logbuf_free(&b);
	recs_free(&r);
}

/* ---- segment references ---- */

typedef struct refs {
	uint64_t seg[256];
	uint32_t state[256];
	int n;
} refs;

static int ref_cb(uint64_t seg, uint32_t state, void *arg)
{
	refs *r = arg;
	if (r->n < 256) {
		r->seg[r->n] = seg;
		r->state[r->n] = state;
	}
	r->n++;
	return 0;
}

static int stop_cb(uint64_t seg, uint32_t state, void *arg)
{
	(void)seg;
	(void)state;
	(*(int *)arg)++;
	return 42;
}

typedef struct segw {
	uint64_t seg;
	uint64_t chunk[2];
	meta_seg s;
} segw;

/* segment create and two chunk inserts in one transaction */
static int seg_chunks_fn(meta_txn *t, void *arg)
{
	segw *w = arg;
	meta_seg s;
	memset(&s, 0, sizeof s);
	int rc = meta_seg_create(t, &s);
	if (rc)
		return rc;
	w->seg = s.id;
	for (int i = 0; i < 2 && !rc; i++) {
		meta_chunk c;
		memset(&c, 0, sizeof c);
		c.seg = s.id;
		c.seg_off = (uint64_t)i * 100;
		c.stored_len = c.raw_len = 100;
		c.hash[0] = (uint8_t)(i + 1);
		c.hash[1] = (uint8_t)s.id;
		rc = meta_chunk_add(t, &c);
		w->chunk[i] = c.id;
	}
	return rc;
}

static void test_segrefs(cairn_meta *m)
{
	segw w;
	memset(&w, 0, sizeof w);
	uint64_t l1, l2, l3, l4;
	REQUIRE_OK(meta_write(m, META_RELAXED, META_OP_SEGMENT, seg_chunks_fn, &w, &l1));
	/* an extent over a chunk of the segment (chunk refs change: a chunk put) */
	meta_attr f;
	REQUIRE_OK(w_create(m, META_ROOT_INO, "segf", &f));
	REQUIRE_OK(w_extw(m, f.ino, 0, 100, w.chunk[0], 0));
	REQUIRE_OK(meta_wal_bounds(m, &l2, &l2));
	meta_seg s;
	REQUIRE_OK(r_seg(m, w.seg, &s));
	s.state = META_SEG_SEALED;
	REQUIRE_OK(w_seg_update(m, &s));
	s.state = META_SEG_UPLOADING;
	REQUIRE_OK(w_seg_update(m, &s));
	s.state = META_SEG_UPLOADED;
	snprintf(s.key, sizeof s.key, "seg/%llu", (unsigned long long)w.seg);
	REQUIRE_OK(w_seg_update(m, &s));
	REQUIRE_OK(meta_wal_bounds(m, &l3, &l4));

	recs r;
	memset(&r, 0, sizeof r);
	REQUIRE_OK(meta_wal_read(m, l1, collect_cb, &r));
	REQUIRE(r.n == (int)(l4 - l1 + 1));
	/* record l1: the segment (STAGING) and both chunks; the chunk puts
	 * grow the staging segment, so seg puts follow; every chunk put names
	 * w.seg with state 0 */
	refs x;
	memset(&x, 0, sizeof x);
	CHECK_OK(meta_wal_segrefs(r.p[0], r.len[0], ref_cb, &x));
	int nseg = 0, nchunk = 0, other = 0;
	for (int i = 0; i < x.n && i < 256; i++) {
		if (x.seg[i] != w.seg)
			other++;
		else if (x.state[i] == 0)
			nchunk++;
		else if (x.state[i] == META_SEG_STAGING)
			nseg++;
		else
			other++;
	}
	CHECK(nchunk == 2 && nseg >= 1 && other == 0);
	CHECK(x.state[0] == META_SEG_STAGING);  /* the create comes first */
	/* the extent record puts chunk w.chunk[0] (its refs) */
	memset(&x, 0, sizeof x);
	CHECK_OK(meta_wal_segrefs(r.p[l2 - l1], r.len[l2 - l1], ref_cb, &x));
	CHECK(x.n == 1 && x.seg[0] == w.seg && x.state[0] == 0);
	/* the three updates: SEALED, UPLOADING, UPLOADED, in that order */
	static const uint32_t want[3] = { META_SEG_SEALED, META_SEG_UPLOADING, META_SEG_UPLOADED };
	for (int i = 0; i < 3; i++) {
		int at = (int)(l2 - l1) + 1 + i;
		memset(&x, 0, sizeof x);
		CHECK_OK(meta_wal_segrefs(r.p[at], r.len[at], ref_cb, &x));
		CHECK(x.n == 1 && x.seg[0] == w.seg && x.state[0] == want[i]);
	}
	/* a record without segments: nothing reported */
	recs r1;
	memset(&r1, 0, sizeof r1);
	REQUIRE_OK(meta_wal_read(m, 1, collect_cb, &r1));
	memset(&x, 0, sizeof x);
	CHECK_OK(meta_wal_segrefs(r1.p[0], r1.len[0], ref_cb, &x));  /* format */
	CHECK(x.n == 0);
	recs_free(&r1);
	/* cb's nonzero stops the walk and is returned */
	int calls = 0;
	CHECK_RC(meta_wal_segrefs(r.p[0], r.len[0], stop_cb, &calls), 42);
	CHECK(calls == 1);
	/* corrupt records (crc fixed up, so the entry walk is reached) */
	uint8_t *c = malloc(r.len[0]);
	REQUIRE(c);
	int walk_ok = 1;
	for (size_t i = MW_HDR; i < r.len[0]; i++) {
		memcpy(c, r.p[0], r.len[0]);
		c[i] ^= 0xff;
		uint32_t crc = cairn_crc32c(0, c, 28);
		le32(c + 28, cairn_crc32c(crc, c + MW_HDR, r.len[0] - MW_HDR));
		memset(&x, 0, sizeof x);
		int rc = meta_wal_segrefs(c, r.len[0], ref_cb, &x);
		if (rc != 0 && rc != CAIRN_E_CORRUPT && rc != CAIRN_E_VERSION)
			walk_ok = 0;
	}
	CHECK(walk_ok);
	memcpy(c, r.p[0], r.len[0]);
	c[29] ^= 1;
	CHECK_RC(meta_wal_segrefs(c, r.len[0], ref_cb, &x), CAIRN_E_CORRUPT);
	for (size_t l = 0; l < r.len[0]; l++)
		if (meta_wal_segrefs(r.p[0], l, ref_cb, &x) != CAIRN_E_CORRUPT)
			walk_ok = 0;
	CHECK(walk_ok);
	free(c);
	recs_free(&r);
}

/* ---- durable LSN ---- */

static void test_durable(const char *base, int mode)
{
	char dir[600];
	cairn_meta *d;
	snprintf(dir, sizeof dir, "%s/dur%d", base, mode);
	REQUIRE(mkdir(dir, 0755) == 0);
	meta_opts o = t_opts();
	o.flush_interval_ms = 0;  /* no flusher: relaxed commits stay unsynced */
	o.safe_relaxed = mode;
	REQUIRE_OK(meta_open(dir, &o, &d));
	uint64_t f, l, lsn;
	REQUIRE_OK(meta_wal_bounds(d, &f, &l));
	CHECK(meta_durable_lsn(d) == l);  /* the format record was synced */
	meta_attr a;
	mt_dur = META_RELAXED;
	REQUIRE_OK(w_mkdir(d, META_ROOT_INO, "r1", &a));
	REQUIRE_OK(w_mkdir(d, META_ROOT_INO, "r2", &a));
	REQUIRE_OK(meta_wal_bounds(d, &f, &lsn));
	CHECK(meta_durable_lsn(d) < lsn);
	CHECK_OK(meta_sync(d));
	CHECK(meta_durable_lsn(d) == lsn);
	mt_dur = META_SYNCED;
	REQUIRE_OK(w_mkdir(d, META_ROOT_INO, "s1", &a));
	mt_dur = META_RELAXED;
	REQUIRE_OK(meta_wal_bounds(d, &f, &lsn));
	CHECK(meta_durable_lsn(d) >= lsn);
	REQUIRE_OK(w_mkdir(d, META_ROOT_INO, "r3", &a));
	CHECK(meta_durable_lsn(d) == lsn);
	CHECK_OK(meta_close(d));
	/* after a reopen, everything there is durable */
	REQUIRE_OK(meta_open(dir, &o, &d));
	REQUIRE_OK(meta_wal_bounds(d, &f, &l));
	CHECK(l == lsn + 1 && meta_durable_lsn(d) == l);
	CHECK_OK(meta_close(d));
}

/* ---- writer epoch ---- */

static int epoch_set_fn(meta_txn *t, void *arg)
{
	return meta_writer_epoch_set(t, *(uint64_t *)arg);
}

static uint64_t epoch_of(cairn_meta *x)
{
	meta_txn *t;
	uint64_t e = 99;
	REQUIRE_OK(meta_read_begin(x, &t));
	CHECK_OK(meta_writer_epoch_get(t, &e));
	meta_read_end(t);
	return e;
}

typedef struct fwd { cairn_meta *r; int rc; } fwd;
static int fwd_cb(uint64_t lsn, const void *rec, size_t len, void *arg)
{
	fwd *f = arg;
	(void)lsn;
	f->rc = meta_wal_apply(f->r, rec, len);
	return f->rc;
}

static void test_epoch(const char *base)
{
	char dir[600], rdir[600];
	cairn_meta *w, *r;
	snprintf(dir, sizeof dir, "%s/ep", base);
	snprintf(rdir, sizeof rdir, "%s/epr", base);
	REQUIRE(mkdir(dir, 0755) == 0 && mkdir(rdir, 0755) == 0);
	meta_opts o = t_opts();
	REQUIRE_OK(meta_open(dir, &o, &w));
	CHECK(epoch_of(w) == 0);
	uint64_t e = 5, lsn;
	CHECK_OK(meta_write(w, META_SYNCED, META_OP_OTHER, epoch_set_fn, &e, &lsn));
	CHECK(lsn > 0 && epoch_of(w) == 5);
	e = 0;
	CHECK_RC(meta_write(w, META_SYNCED, META_OP_OTHER, epoch_set_fn, &e, NULL), CAIRN_E_INVAL);
	e = 0x1122334455667788ULL;
	CHECK_OK(meta_write(w, META_SYNCED, META_OP_OTHER, epoch_set_fn, &e, NULL));
	CHECK(epoch_of(w) == 0x1122334455667788ULL);
	/* outside a write: refused */
	meta_txn *t;
	REQUIRE_OK(meta_read_begin(w, &t));
	CHECK_RC(meta_writer_epoch_set(t, 9), CAIRN_E_INVAL);
	meta_read_end(t);
	/* the record replays: digests equal, the epoch is the writer's */
	meta_opts ro = t_opts();
	ro.replica = 1;
	REQUIRE_OK(meta_open(rdir, &ro, &r));
	fwd f = { r, 0 };
	CHECK_OK(meta_wal_read(w, 1, fwd_cb, &f));
	CHECK(f.rc == 0);
	uint8_t d1[32], d2[32];
	CHECK_OK(meta_digest(w, d1));
	CHECK_OK(meta_digest(r, d2));
	CHECK(!memcmp(d1, d2, 32));
	CHECK(epoch_of(r) == 0x1122334455667788ULL);
	CHECK_OK(meta_close(r));
	CHECK_OK(meta_close(w));
	/* fsck knows nothing wrong about counter 10 */
	meta_fsck_result fr;
	REQUIRE_OK(meta_open(dir, &o, &w));
	CHECK_OK(meta_fsck(w, 0, stderr, &fr));
	CHECK(fr.problems == 0);
	CHECK_OK(meta_close(w));
}

int main(int argc, char **argv)
{
	const char *seeds = NULL;
	if (argc == 3 && !strcmp(argv[1], "--write-seeds")) {
		seeds = argv[2];
		argc = 1;
	}
	const char *base = t_tmpdir("meta_ship");
	char dir[600];
	snprintf(dir, sizeof dir, "%s/p", base);
	REQUIRE(mkdir(dir, 0755) == 0);
	cairn_meta *m;
	meta_opts o = t_opts();
	o.wal_keep = 1000000;
	REQUIRE_OK(meta_open(dir, &o, &m));
	test_logobj(m, seeds);
	test_fuzz_replay(argc, argv, m);
	test_segrefs(m);
	CHECK_OK(meta_close(m));
	test_durable(base, META_RELAXED_PINNED);
	test_durable(base, META_RELAXED_SYNC_EACH);
	test_durable(base, META_RELAXED_UNSAFE);
	test_epoch(base);
	int rc = t_done();
	if (!rc)
		t_rmtree(base);
	return rc;
}
