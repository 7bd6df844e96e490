/*
 * t_meta_extent.c - extent maps (overwrite, append, truncate, holes,
 * punch, lookup by offset), chunk reference counts, segment live bytes,
 * segment states and upload intent fields, dedup lookup, chunk moves.
 */
#include "t.h"
#include "meta_t.h"

static cairn_meta *m;

static uint64_t refs(uint64_t chunk)
{
	meta_chunk c;
	int rc = r_chunk(m, chunk, &c);
	return rc ? 0 : c.refs;
}

static uint64_t live(uint64_t seg)
{
	meta_seg s;
	return r_seg(m, seg, &s) ? (uint64_t)-1 : s.live_bytes;
}

static void test_extents(void)
{
	uint64_t seg, c1, c2;
	meta_attr f, a;
	meta_extent e[16];
	size_t n;
	REQUIRE_OK(w_seg_new(m, &seg));
	REQUIRE_OK(w_chunk(m, seg, 0, 1000, 1, &c1));
	REQUIRE_OK(w_chunk(m, seg, 1000, 1000, 2, &c2));
	CHECK(live(seg) == 2000 && refs(c1) == 0);
	REQUIRE_OK(w_create(m, META_ROOT_INO, "f", &f));
	CHECK_OK(w_extw(m, f.ino, 0, 1000, c1, 0));
	CHECK(refs(c1) == 1);
	CHECK_OK(r_getattr(m, f.ino, &a));
	CHECK(a.size == 1000);
	/* overwrite the middle: c1 split in two */
	CHECK_OK(w_extw(m, f.ino, 200, 100, c2, 0));
	CHECK(refs(c1) == 2 && refs(c2) == 1);
	CHECK_OK(r_extents(m, f.ino, 0, 1000, e, 16, &n));
	CHECK(n == 3);
	CHECK(e[0].off == 0 && e[0].len == 200 && e[0].chunk == c1 && e[0].chunk_off == 0);
	CHECK(e[1].off == 200 && e[1].len == 100 && e[1].chunk == c2);
	CHECK(e[2].off == 300 && e[2].len == 700 && e[2].chunk == c1 && e[2].chunk_off == 300);
	/* append past a hole */
	CHECK_OK(w_extw(m, f.ino, 5000, 100, c2, 900));
	CHECK_OK(r_getattr(m, f.ino, &a));
	CHECK(a.size == 5100);
	CHECK_OK(r_extents(m, f.ino, 900, 10000, e, 16, &n));
	CHECK(n == 3);
	CHECK(e[0].off == 900 && e[0].len == 100 && e[0].chunk == c1 && e[0].chunk_off == 900);
	CHECK(e[1].off == 1000 && e[1].len == 4000 && e[1].chunk == 0);
	CHECK(e[2].off == 5000 && e[2].len == 100 && e[2].chunk == c2 && e[2].chunk_off == 900);
	/* lookup inside one extent */
	CHECK_OK(r_extents(m, f.ino, 250, 10, e, 16, &n));
	CHECK(n == 1 && e[0].off == 250 && e[0].len == 10 && e[0].chunk_off == 50);
	/* overwrite spanning several extents */
	CHECK_OK(w_extw(m, f.ino, 100, 800, c2, 0));
	CHECK(refs(c1) == 2 && refs(c2) == 2);
	CHECK_OK(r_extents(m, f.ino, 0, 1000, e, 16, &n));
	CHECK(n == 3 && e[0].len == 100 && e[1].len == 800 && e[2].off == 900);
	/* truncate: extents past EOF go, the straddling one is trimmed */
	CHECK_OK(w_truncate(m, f.ino, 150));
	CHECK(refs(c1) == 1 && refs(c2) == 1);
	CHECK_OK(r_extents(m, f.ino, 0, 1ULL << 40, e, 16, &n));
	CHECK(n == 2 && e[1].off == 100 && e[1].len == 50);
	/* extend by truncate: a hole */
	CHECK_OK(w_truncate(m, f.ino, 400));
	CHECK_OK(r_extents(m, f.ino, 0, 1000, e, 16, &n));
	CHECK(n == 3 && e[2].chunk == 0 && e[2].off == 150 && e[2].len == 250);
	/* punch */
	CHECK_OK(w_punch(m, f.ino, 0, 100));
	CHECK(refs(c1) == 0);
	CHECK_RC(r_chunk(m, c1, &(meta_chunk){ 0 }), CAIRN_E_NOTFOUND);
	CHECK(live(seg) == 1000);
	/* errors */
	CHECK_RC(w_extw(m, META_ROOT_INO, 0, 10, c2, 0), CAIRN_E_ISDIR);
	CHECK_RC(w_extw(m, f.ino, 0, 10, 99999, 0), CAIRN_E_NOTFOUND);
	CHECK_MSG("chunk 99999 does not exist");
	CHECK_RC(w_extw(m, f.ino, 0, 10, c2, 995), CAIRN_E_RANGE);
	CHECK_RC(w_extw(m, f.ino, 0, 0, c2, 0), CAIRN_E_INVAL);
	CHECK_RC(w_extw(m, f.ino, 1ULL << 61, 10, c2, 0), CAIRN_E_FBIG);
	meta_attr sl;
	CHECK_OK(w_symlink(m, META_ROOT_INO, "sl", "x", &sl));
	CHECK_RC(w_extw(m, sl.ino, 0, 1, c2, 0), CAIRN_E_INVAL);
	/* deleting the file drops the last references */
	CHECK_OK(w_unlink(m, META_ROOT_INO, "f"));
	CHECK_RC(r_chunk(m, c2, &(meta_chunk){ 0 }), CAIRN_E_NOTFOUND);
	CHECK(live(seg) == 0);
	meta_txn *t;
	meta_statfs st;
	REQUIRE_OK(meta_read_begin(m, &t));
	CHECK_OK(meta_statfs_get(t, &st));
	meta_read_end(t);
	CHECK(st.stored_bytes == 0 && st.chunks == 0);
}

static int seg_cb(const meta_seg *s, void *arg)
{
	uint64_t *ids = ((void **)arg)[0];
	size_t *n = ((void **)arg)[1];
	if (*n < 8)
		ids[(*n)++] = s->id;
	return 0;
}

static void test_segments(void)
{
	uint64_t seg, c;
	meta_seg s;
	REQUIRE_OK(w_seg_new(m, &seg));
	CHECK_OK(r_seg(m, seg, &s));
	CHECK(s.state == META_SEG_STAGING && s.size == 0);
	CHECK_OK(w_chunk(m, seg, 0, 4096, 7, &c));
	CHECK_OK(r_seg(m, seg, &s));
	CHECK(s.size == 4096 && s.live_bytes == 4096 && s.nchunks == 1);
	s.state = META_SEG_SEALED;
	CHECK_OK(w_seg_update(m, &s));
	CHECK_RC(w_chunk(m, seg, 4096, 10, 8, NULL), CAIRN_E_INVAL);
	CHECK_MSG("sealed segment");
	s.state = META_SEG_STAGING;
	CHECK_RC(w_seg_update(m, &s), CAIRN_E_INVAL);
	s.state = META_SEG_UPLOADING;
	snprintf(s.key, sizeof s.key, "vol/uuid/seg/%llu", (unsigned long long)seg);
	snprintf(s.upload_id, sizeof s.upload_id, "upload-123");
	CHECK_OK(w_seg_update(m, &s));
	s.state = META_SEG_SEALED;  /* abort, to be retried */
	CHECK_OK(w_seg_update(m, &s));
	s.state = META_SEG_UPLOADED;
	s.upload_id[0] = 0;
	CHECK_OK(w_seg_update(m, &s));
	CHECK_OK(r_seg(m, seg, &s));
	CHECK(s.state == META_SEG_UPLOADED && !strcmp(s.upload_id, "") &&
	      strstr(s.key, "vol/uuid/seg/") == s.key);
	s.size = 10;
	CHECK_RC(w_seg_update(m, &s), CAIRN_E_INVAL);
	CHECK_OK(r_seg(m, seg, &s));
	s.state = META_SEG_DEAD;
	CHECK_RC(w_seg_update(m, &s), CAIRN_E_BUSY);
	CHECK_RC(w_seg_delete(m, seg), CAIRN_E_BUSY);
	/* dedup */
	meta_txn *t;
	uint8_t h[META_HASH_LEN] = { 7, 0, (uint8_t)seg };
	uint64_t found;
	REQUIRE_OK(meta_read_begin(m, &t));
	CHECK_OK(meta_chunk_find(t, h, &found));
	CHECK(found == c);
	h[0] = 99;
	CHECK_RC(meta_chunk_find(t, h, &found), CAIRN_E_NOTFOUND);
	meta_read_end(t);
	/* compaction: move the chunk to a new segment */
	uint64_t seg2;
	meta_attr f;
	REQUIRE_OK(w_seg_new(m, &seg2));
	REQUIRE_OK(w_create(m, META_ROOT_INO, "g", &f));
	CHECK_OK(w_extw(m, f.ino, 0, 4096, c, 0));
	CHECK_OK(w_chunk_move(m, c, seg2, 0));
	CHECK(live(seg) == 0 && live(seg2) == 4096);
	CHECK_RC(w_chunk_move(m, c, seg2, 0), CAIRN_E_INVAL);
	meta_extent e[2];
	size_t n;
	CHECK_OK(r_extents(m, f.ino, 0, 4096, e, 2, &n));
	CHECK(n == 1 && e[0].chunk == c);
	CHECK_OK(r_seg(m, seg, &s));
	s.state = META_SEG_DEAD;
	CHECK_OK(w_seg_update(m, &s));
	CHECK_RC(w_chunk(m, seg, 0, 10, 9, NULL), CAIRN_E_INVAL);
	CHECK_MSG("dead");
	CHECK_OK(w_seg_delete(m, seg));
	CHECK_RC(r_seg(m, seg, &s), CAIRN_E_NOTFOUND);
	CHECK_RC(w_chunk(m, 424242, 0, 10, 9, NULL), CAIRN_E_NOTFOUND);
	CHECK_RC(w_chunk(m, seg2, 0, 0, 9, NULL), CAIRN_E_INVAL);
	CHECK_OK(w_unlink(m, META_ROOT_INO, "g"));
	CHECK(live(seg2) == 0);
	/* listing from an id */
	uint64_t ids[8];
	size_t nids = 0;
	void *args[2] = { ids, &nids };
	REQUIRE_OK(meta_read_begin(m, &t));
	CHECK_OK(meta_seg_list(t, 0, seg_cb, args));
	meta_read_end(t);
	CHECK(nids == 2 && ids[nids - 1] == seg2);  /* the first test's seg and seg2 */
	nids = 0;
	REQUIRE_OK(meta_read_begin(m, &t));
	CHECK_OK(meta_seg_list(t, seg2, seg_cb, args));
	meta_read_end(t);
	CHECK(nids == 1 && ids[0] == seg2);
}

int main(void)
{
	const char *dir = t_tmpdir("meta_extent");
	meta_opts o = t_opts();
	REQUIRE_OK(meta_open(dir, &o, &m));
	test_extents();
	test_segments();
	meta_fsck_result fr;
	CHECK_OK(meta_fsck(m, 0, stderr, &fr));
	CHECK(fr.problems == 0);
	CHECK_OK(meta_close(m));
	t_rmtree(dir);
	return t_done();
}
