/*
 * t_meta_wal.c - the write-ahead log: one record per committed transaction
 * with dense LSNs (also under concurrent group commit), reading from an
 * LSN, trimming past the horizon unless a consumer still needs records,
 * following a primary with a replica record by record, and clear errors
 * for gaps, corrupt records and unknown record versions.
 */
#include <pthread.h>

#include "t.h"
#include "meta_t.h"
#include "meta_int.h"

static cairn_meta *m;

typedef struct scan { uint64_t first, last, n; int ops[64]; } scan;

static int scan_cb(uint64_t lsn, const void *rec, size_t len, void *arg)
{
	scan *s = arg;
	uint64_t hl;
	unsigned op;
	uint32_t ne;
	if (meta_wal_decode(rec, len, &hl, &op, &ne) || hl != lsn)
		return 1;
	if (!s->first)
		s->first = lsn;
	if (s->last && lsn != s->last + 1)
		return 1;
	if (s->n < 64)
		s->ops[s->n] = (int)op;
	s->last = lsn;
	s->n++;
	return 0;
}

static void *thr(void *arg)
{
	int id = (int)(uintptr_t)arg;
	char name[32];
	for (int i = 0; i < 200; i++) {
		snprintf(name, sizeof name, "g%d-%d", id, i);
		t_op o = { .kind = TO_CREATE, .a = META_ROOT_INO, .s1 = name, .mode = 0644 };
		if (meta_write(m, i % 2 ? META_SYNCED : META_RELAXED, META_OP_CREATE, t_op_fn, &o,
			       NULL))
			return (void *)1;
	}
	return NULL;
}

/* even i: two new directories; odd i: the same name twice (fails after
 * its first change, so its batch is rerun without it) */
static void *thr_mixed(void *arg)
{
	int id = (int)(uintptr_t)arg;
	for (int i = 0; i < 100; i++) {
		t_two x;
		snprintf(x.a, sizeof x.a, "m%d-%d", id, i);
		snprintf(x.b, sizeof x.b, i % 2 ? "m%d-%d" : "n%d-%d", id, i);
		int rc = meta_write(m, META_RELAXED, META_OP_MKDIR, t_two_fn, &x, NULL);
		if (rc != (i % 2 ? CAIRN_E_EXISTS : 0))
			return (void *)1;
	}
	return NULL;
}

typedef struct follow { cairn_meta *r; int rc; uint64_t n; } follow;
static int follow_cb(uint64_t lsn, const void *rec, size_t len, void *arg)
{
	follow *f = arg;
	(void)lsn;
	f->rc = meta_wal_apply(f->r, rec, len);
	f->n++;
	return f->rc;
}

int main(void)
{
	const char *base = t_tmpdir("meta_wal");
	char dir[600], rdir[600];
	snprintf(dir, sizeof dir, "%s/p", base);
	snprintf(rdir, sizeof rdir, "%s/r", base);
	REQUIRE(mkdir(dir, 0755) == 0 && mkdir(rdir, 0755) == 0);
	meta_opts o = t_opts();
	o.wal_keep = 1000000;
	REQUIRE_OK(meta_open(dir, &o, &m));
	uint64_t f0, l0, lsn, f1, l1;
	CHECK_OK(meta_wal_bounds(m, &f0, &l0));
	CHECK(f0 == 1 && l0 == 1);  /* the format record */

	/* one record per transaction; none for failures or no-ops */
	t_two x = { "x1", "x2" };
	CHECK_OK(meta_write(m, META_SYNCED, META_OP_MKDIR, t_two_fn, &x, &lsn));
	CHECK(lsn == 2);
	CHECK_RC(meta_write(m, META_SYNCED, META_OP_MKDIR, t_two_fn, &x, &lsn), CAIRN_E_EXISTS);
	CHECK(lsn == 0);
	t_two y = { "y1", "x1" };  /* fails after a change: nothing may remain */
	CHECK_RC(meta_write(m, META_RELAXED, META_OP_MKDIR, t_two_fn, &y, &lsn), CAIRN_E_EXISTS);
	CHECK_RC(r_lookup(m, META_ROOT_INO, "y1", NULL), CAIRN_E_NOTFOUND);
	CHECK_OK(meta_write(m, META_RELAXED, 0, t_noop_fn, NULL, &lsn));
	CHECK(lsn == 0);
	CHECK_OK(meta_wal_bounds(m, &f1, &l1));
	CHECK(l1 == 2);
	scan s;
	memset(&s, 0, sizeof s);
	CHECK_OK(meta_wal_read(m, 0, scan_cb, &s));
	CHECK(s.first == 1 && s.last == 2 && s.ops[0] == META_OP_FORMAT && s.ops[1] == META_OP_MKDIR);

	/* concurrent writers: dense LSNs, every transaction logged once */
	pthread_t th[4];
	uint64_t seq0 = m->commit_seq;
	for (uintptr_t i = 0; i < 4; i++)
		pthread_create(&th[i], NULL, thr, (void *)i);
	void *ret;
	int bad = 0;
	for (int i = 0; i < 4; i++) {
		pthread_join(th[i], &ret);
		bad |= ret != NULL;
	}
	CHECK(!bad);
	memset(&s, 0, sizeof s);
	CHECK_OK(meta_wal_read(m, 3, scan_cb, &s));
	CHECK(s.n == 800 && s.first == 3 && s.last == 802);
	printf("800 transactions in %llu LMDB commits\n",
	       (unsigned long long)(m->commit_seq - seq0));

	/* failures after a change, mixed into concurrent batches */
	for (uintptr_t i = 0; i < 4; i++)
		pthread_create(&th[i], NULL, thr_mixed, (void *)i);
	for (int i = 0; i < 4; i++) {
		pthread_join(th[i], &ret);
		bad |= ret != NULL;
	}
	CHECK(!bad);
	for (int id = 0; id < 4; id++)
		for (int i = 0; i < 100; i++) {
			char a[16];
			snprintf(a, sizeof a, "m%d-%d", id, i);
			CHECK_RC(r_lookup(m, META_ROOT_INO, a, NULL), i % 2 ? CAIRN_E_NOTFOUND : 0);
		}
	memset(&s, 0, sizeof s);
	CHECK_OK(meta_wal_read(m, 803, scan_cb, &s));
	CHECK(s.n == 200 && s.last == 1002);
	/* a replica follows record by record, then catches up in one go */
	meta_opts ro = t_opts();
	ro.replica = 1;
	cairn_meta *r;
	REQUIRE_OK(meta_open(rdir, &ro, &r));
	follow fl = { r, 0, 0 };
	CHECK_OK(meta_wal_read(m, 1, follow_cb, &fl));
	CHECK_OK(fl.rc);
	CHECK(fl.n == 1002);
	REQUIRE_OK(w_mkdir(m, META_ROOT_INO, "later", NULL));
	fl.n = 0;
	CHECK_OK(meta_wal_read(m, 1003, follow_cb, &fl));
	CHECK(fl.n == 1 && fl.rc == 0);
	uint8_t d1[32], d2[32];
	CHECK_OK(meta_digest(m, d1));
	CHECK_OK(meta_digest(r, d2));
	CHECK(!memcmp(d1, d2, 32));
	CHECK_OK(r_lookup(r, META_ROOT_INO, "later", NULL));

	/* bad records */
	typedef struct grab { uint8_t buf[4096]; size_t len; } grab;
	static grab g;
	{
		meta_txn *t;
		REQUIRE_OK(meta_read_begin(m, &t));
		uint8_t k[8];
		MDB_val v;
		be64(k, 1003);
		REQUIRE_OK(mt_get(t, MT_WAL, k, 8, &v));
		g.len = v.mv_size < sizeof g.buf ? v.mv_size : sizeof g.buf;
		memcpy(g.buf, v.mv_data, g.len);
		meta_read_end(t);
	}
	CHECK_RC(meta_wal_apply(r, g.buf, g.len), CAIRN_E_INVAL);
	CHECK_MSG("does not follow on LSN 1003");
	g.buf[g.len - 1] ^= 0x55;
	CHECK_RC(meta_wal_apply(r, g.buf, g.len), CAIRN_E_CORRUPT);
	CHECK_MSG("checksum mismatch");
	g.buf[g.len - 1] ^= 0x55;
	g.buf[0] = 2;
	CHECK_RC(meta_wal_apply(r, g.buf, g.len), CAIRN_E_VERSION);
	CHECK_MSG("WAL record version 2 is unknown");
	CHECK_RC(meta_wal_apply(r, g.buf, 10), CAIRN_E_CORRUPT);
	CHECK_MSG("shorter than its header");
	CHECK_OK(meta_close(r));

	/* trimming: keep 10 unless a consumer needs more */
	CHECK_OK(meta_close(m));
	o.wal_keep = 10;
	REQUIRE_OK(meta_open(dir, &o, &m));
	CHECK_OK(meta_wal_consumer_set(m, "ship", 500));
	CHECK_OK(meta_wal_trim(m));
	CHECK_OK(meta_wal_bounds(m, &f1, &l1));
	CHECK(f1 == 501 && l1 == 1003);
	memset(&s, 0, sizeof s);
	CHECK_RC(meta_wal_read(m, 400, scan_cb, &s), CAIRN_E_NOTFOUND);
	CHECK_MSG("was trimmed (first retained: 501)");
	CHECK_OK(meta_wal_consumer_set(m, "ship", 980));
	CHECK_OK(meta_wal_trim(m));
	CHECK_OK(meta_wal_bounds(m, &f1, &l1));
	CHECK(f1 == 981);
	CHECK_OK(meta_wal_consumer_remove(m, "ship"));
	CHECK_RC(meta_wal_consumer_remove(m, "ship"), CAIRN_E_NOTFOUND);
	CHECK_RC(meta_wal_consumer_set(m, "", 1), CAIRN_E_INVAL);
	CHECK_OK(meta_wal_trim(m));
	CHECK_OK(meta_wal_bounds(m, &f1, &l1));
	CHECK(f1 == l1 - 9);
	/* trimming also happens as commits go on, without meta_wal_trim: in
	 * the default (PINNED) mode at each checkpoint (the flusher's, or
	 * meta_sync's here), otherwise a little by every commit */
	for (int i = 0; i < 300; i++) {
		char name[32];
		snprintf(name, sizeof name, "t%d", i);
		REQUIRE_OK(w_create(m, META_ROOT_INO, name, NULL));
	}
	CHECK_OK(meta_sync(m));
	CHECK_OK(meta_wal_bounds(m, &f1, &l1));
	CHECK(l1 - f1 < 10 + 64);
	meta_fsck_result fr;
	CHECK_OK(meta_fsck(m, 0, stderr, &fr));
	CHECK(fr.problems == 0);
	CHECK_OK(meta_close(m));
	t_rmtree(base);
	return t_done();
}
