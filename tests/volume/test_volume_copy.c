/*
 * test_volume_copy - extent-sharing copies (volume_copy_range) and
 * SEEK_DATA / SEEK_HOLE (volume_seek_data): unaligned ranges, holes, copies
 * across files and inside one file, a copy of a large file still being
 * streamed, independent overwrites of source and copy (copy-on-write at
 * extent level), no chunk created by a copy, persistence across reopen and
 * after the source is unlinked, copies both ways racing with writes (the
 * two inode locks), a clean metadata fsck, and the errors.
 */
#include <pthread.h>

#include "vol_test.h"

#include "cairn/meta.h"

#define MAXSZ (24u << 20)

typedef struct model {
	uint64_t ino;
	uint8_t *b;
	uint64_t size;
} model;

static void m_write(model *m, const uint8_t *buf, uint64_t len, uint64_t off)
{
	memcpy(m->b + off, buf, len);
	if (off + len > m->size)
		m->size = off + len;
}

/* What copy_file_range does to the model: clipped at the source's end. */
static uint64_t m_copy(const model *s, uint64_t soff, model *d, uint64_t doff, uint64_t len)
{
	if (soff >= s->size)
		return 0;
	uint64_t n = s->size - soff < len ? s->size - soff : len;
	memmove(d->b + doff, s->b + soff, n);
	if (doff + n > d->size)
		d->size = doff + n;
	return n;
}

static void m_check(cairn_volume *v, const model *m, const char *what)
{
	cairn_attr a;
	size_t got = 0;
	CHECK_OK(volume_getattr(v, m->ino, &a));
	if (a.size != m->size) {
		CHECK(a.size == m->size);
		fprintf(stderr, "%s: size %llu, expected %llu\n", what,
			(unsigned long long)a.size, (unsigned long long)m->size);
		return;
	}
	uint8_t *buf = malloc(m->size + 1);
	REQUIRE(buf);
	CHECK_OK(vt_read(v, m->ino, buf, m->size + 1, 0, &got));
	CHECK(got == m->size);
	if (got == m->size && memcmp(buf, m->b, got) != 0) {
		uint64_t i = 0;
		while (buf[i] == m->b[i])
			i++;
		CHECK(!"bytes differ");
		fprintf(stderr, "%s: first difference at %llu\n", what, (unsigned long long)i);
	}
	free(buf);
}

static void fill(uint8_t *b, size_t n, uint64_t seed)
{
	t_fill(b, n, seed);
}

static int wr(cairn_file *f, model *m, uint64_t off, uint64_t len, uint64_t seed)
{
	uint8_t *b = malloc(len);
	REQUIRE(b);
	fill(b, len, seed);
	int rc = volume_file_write(f, b, len, off);
	if (!rc)
		m_write(m, b, len, off);
	free(b);
	return rc;
}

static void seek_is(cairn_file *f, uint64_t off, int whence, int want_rc, uint64_t want)
{
	uint64_t at = 12345;
	int rc = volume_seek_data(f, off, whence, &at);
	CHECK_RC(rc, want_rc);
	if (!want_rc && at != want) {
		CHECK(at == want);
		fprintf(stderr, "seek %s from %llu: %llu, expected %llu\n",
			whence == SEEK_DATA ? "data" : "hole", (unsigned long long)off,
			(unsigned long long)at, (unsigned long long)want);
	}
}

static uint64_t chunks_now(cairn_volume *v, uint64_t *staged)
{
	cairn_statfs s;
	cairn_volume_stats st;
	CHECK_OK(volume_statfs(v, &s));
	volume_stats(v, &st);
	*staged = st.chunks_staged;
	return s.chunks;
}

static void test_seek(cairn_volume *v)
{
	cairn_file *f;
	cairn_sattr sa = { .mask = CAIRN_SET_SIZE, .size = 1 << 20 };
	model m = { .ino = vt_file(v, "sparse") };

	m.b = calloc(1, 1 << 20);
	REQUIRE(m.b);
	REQUIRE_OK(volume_file_open(v, m.ino, &f));
	CHECK_OK(volume_setattr(v, m.ino, &sa, NULL));
	m.size = 1 << 20;
	/* Still buffered when asked: the seek commits it first. */
	CHECK_OK(wr(f, &m, 8192, 4096, 1));
	CHECK_OK(wr(f, &m, 65536, 4096, 2));
	CHECK_OK(wr(f, &m, 65536 + 4096, 100, 3));  /* unaligned end */
	seek_is(f, 0, SEEK_DATA, 0, 8192);
	seek_is(f, 0, SEEK_HOLE, 0, 0);
	seek_is(f, 8192, SEEK_HOLE, 0, 12288);
	seek_is(f, 9000, SEEK_DATA, 0, 9000);
	seek_is(f, 12288, SEEK_DATA, 0, 65536);
	seek_is(f, 65536, SEEK_HOLE, 0, 65536 + 4196);
	seek_is(f, 65536 + 4196, SEEK_DATA, CAIRN_E_NXIO, 0);
	CHECK_MSG("only holes");
	seek_is(f, 65536 + 4196, SEEK_HOLE, 0, 65536 + 4196);
	seek_is(f, (1 << 20) - 1, SEEK_HOLE, 0, (1 << 20) - 1);
	seek_is(f, 1 << 20, SEEK_HOLE, CAIRN_E_NXIO, 0);
	CHECK_MSG("past the end");
	seek_is(f, 1 << 20, SEEK_DATA, CAIRN_E_NXIO, 0);
	seek_is(f, 0, SEEK_SET, CAIRN_E_INVAL, 0);
	CHECK_MSG("neither SEEK_DATA nor");
	/* Data up to the end: the end is the hole. */
	CHECK_OK(wr(f, &m, (1 << 20) - 10, 10, 4));
	seek_is(f, 1 << 19, SEEK_DATA, 0, (1 << 20) - 10);
	seek_is(f, (1 << 20) - 10, SEEK_HOLE, 0, 1 << 20);
	m_check(v, &m, "sparse");
	CHECK_OK(volume_file_close(f));
	free(m.b);
}

/* Copies in both directions between two files while a third thread
 * writes to both: the two inode locks must never deadlock, and every
 * byte read back is one some operation put there (the sizes only grow
 * within the first 256 KiB). */
typedef struct cross {
	cairn_volume *v;
	cairn_file *x, *y;
	int dir;
	int rc;
} cross;

static void *cross_run(void *arg)
{
	cross *c = arg;
	uint8_t buf[4096];
	uint64_t n;
	for (int i = 0; i < (int)t_scaled(200) && !c->rc; i++) {
		uint64_t off = (uint64_t)(i * 7919) % (200 << 10);
		if (c->dir == 0)
			c->rc = volume_copy_range(c->v, c->x, off, c->y, (off * 3) % (200 << 10),
						  5000, &n);
		else if (c->dir == 1)
			c->rc = volume_copy_range(c->v, c->y, off, c->x, (off * 5) % (200 << 10),
						  5000, &n);
		else {
			memset(buf, i & 0xff, sizeof buf);
			c->rc = volume_file_write(i & 1 ? c->x : c->y, buf, sizeof buf, off);
		}
	}
	return NULL;
}

static void test_cross(cairn_volume *v)
{
	cairn_file *x, *y;
	pthread_t th[3];
	cross c[3];
	static uint8_t z[256 << 10];

	REQUIRE_OK(volume_file_open(v, vt_file(v, "x"), &x));
	REQUIRE_OK(volume_file_open(v, vt_file(v, "y"), &y));
	memset(z, 'x', sizeof z);
	CHECK_OK(volume_file_write(x, z, sizeof z, 0));
	memset(z, 'y', sizeof z);
	CHECK_OK(volume_file_write(y, z, sizeof z, 0));
	for (int i = 0; i < 3; i++) {
		c[i] = (cross){ .v = v, .x = x, .y = y, .dir = i };
		REQUIRE(pthread_create(&th[i], NULL, cross_run, &c[i]) == 0);
	}
	for (int i = 0; i < 3; i++) {
		pthread_join(th[i], NULL);
		CHECK_OK(c[i].rc);
	}
	size_t got = 0;
	cairn_attr a;
	CHECK_OK(volume_getattr(v, volume_file_ino(x), &a));
	CHECK(a.size == sizeof z);
	CHECK_OK(volume_file_read(x, z, sizeof z, 0, &got));
	CHECK(got == sizeof z);
	CHECK_OK(volume_file_close(x));
	CHECK_OK(volume_file_close(y));
}

int main(void)
{
	const char *base = t_tmpdir("volume_copy");
	char dir[1024], mdir[1100];
	cairn_volume *v;
	cairn_volume_opts o;
	cairn_file *fa, *fb, *fc, *fl, *fm;
	uint64_t n, c0, s0, c1, s1, seed = t_seed();
	model A = { 0 }, B = { 0 }, C = { 0 }, L = { 0 }, M = { 0 };
	model *all[] = { &A, &B, &C, &L, &M };

	snprintf(dir, sizeof dir, "%s/v", base);
	vt_format(dir, 0);
	vt_opts(&o);
	REQUIRE_OK(volume_open(dir, &o, &v));
	for (size_t i = 0; i < 5; i++) {
		all[i]->b = calloc(1, MAXSZ);
		REQUIRE(all[i]->b);
	}
	A.ino = vt_file(v, "a");
	B.ino = vt_file(v, "b");
	C.ino = vt_file(v, "c");
	L.ino = vt_file(v, "large");
	M.ino = vt_file(v, "m");
	REQUIRE_OK(volume_file_open(v, A.ino, &fa));
	REQUIRE_OK(volume_file_open(v, B.ino, &fb));
	REQUIRE_OK(volume_file_open(v, C.ino, &fc));

	/* A: data, a hole, data.  B: data.  Both committed, then copied:
	 * no chunk may appear. */
	CHECK_OK(wr(fa, &A, 0, 300000, seed + 1));
	CHECK_OK(wr(fa, &A, 700001, 5000, seed + 2));
	CHECK_OK(wr(fb, &B, 0, 100000, seed + 3));
	CHECK_OK(volume_file_fsync(fa));
	CHECK_OK(volume_file_fsync(fb));
	c0 = chunks_now(v, &s0);
	CHECK_OK(volume_copy_range(v, fa, 12345, fb, 54321, 700000, &n));
	CHECK(n == m_copy(&A, 12345, &B, 54321, 700000));
	CHECK(n == 705001 - 12345);
	/* Ends in a hole of the source: the copy still grows dst. */
	CHECK_OK(volume_copy_range(v, fa, 250000, fc, 0, 100000, &n));
	CHECK(n == m_copy(&A, 250000, &C, 0, 100000));
	c1 = chunks_now(v, &s1);
	CHECK(c1 == c0);
	CHECK(s1 == s0);
	m_check(v, &A, "a");
	m_check(v, &B, "b");
	m_check(v, &C, "c");
	/* The holes came along. */
	seek_is(fb, 0, SEEK_HOLE, 0, 54321 + 300000 - 12345);
	seek_is(fb, 54321 + 300000 - 12345, SEEK_DATA, 0, 54321 + 700001 - 12345);
	seek_is(fc, 0, SEEK_HOLE, 0, 50000);
	seek_is(fc, 50000, SEEK_DATA, CAIRN_E_NXIO, 0);

	/* Copy-on-write: overwrite the source and the copy independently,
	 * buffered (the next copy commits them first). */
	CHECK_OK(wr(fa, &A, 20000, 1000, seed + 4));
	CHECK_OK(wr(fb, &B, 60000, 1000, seed + 5));
	CHECK_OK(wr(fb, &B, 54321 + 299990, 20, seed + 6));  /* into the hole */
	m_check(v, &A, "a after overwrite");
	m_check(v, &B, "b after overwrite");
	/* Within one file, not overlapping, past its end (a hole between). */
	CHECK_OK(volume_copy_range(v, fa, 0, fa, 800000, 10000, &n));
	CHECK(n == m_copy(&A, 0, &A, 800000, 10000));
	CHECK_OK(volume_copy_range(v, fb, 100, fa, 3, 999, &n));
	CHECK(n == m_copy(&B, 100, &A, 3, 999));
	/* At or past the source's end: nothing. */
	CHECK_OK(volume_copy_range(v, fa, A.size, fb, 0, 100, &n));
	CHECK(n == 0);
	/* Errors. */
	CHECK_RC(volume_copy_range(v, fa, 0, fa, 5000, 10000, &n), CAIRN_E_INVAL);
	CHECK_MSG("ranges overlap");
	CHECK_RC(volume_copy_range(v, fa, 0, fb, 1ull << 62, 10, &n), CAIRN_E_FBIG);
	CHECK_MSG("past the size limit");
	m_check(v, &A, "a after self copy");
	m_check(v, &B, "b");

	/* A large file still streaming when copied. */
	REQUIRE_OK(volume_file_open(v, L.ino, &fl));
	REQUIRE_OK(volume_file_open(v, M.ino, &fm));
	for (uint64_t off = 0; off < (20u << 20); off += 1 << 20)
		CHECK_OK(wr(fl, &L, off, 1 << 20, seed + 100 + off));
	cairn_volume_stats st;
	volume_stats(v, &st);
	CHECK(st.streams >= 1);
	CHECK_OK(volume_copy_range(v, fl, (1 << 20) + 7, fm, 3, 17u << 20, &n));
	CHECK(n == m_copy(&L, (1 << 20) + 7, &M, 3, 17u << 20));
	c0 = chunks_now(v, &s0);
	CHECK_OK(volume_copy_range(v, fl, 0, fm, 18u << 20, 5u << 20, &n));
	CHECK(n == m_copy(&L, 0, &M, 18u << 20, 5u << 20));
	c1 = chunks_now(v, &s1);
	CHECK(c1 == c0 && s1 == s0);
	CHECK_OK(wr(fl, &L, 5u << 20, 4096, seed + 7));
	CHECK_OK(wr(fm, &M, 5u << 20, 4096, seed + 8));
	m_check(v, &L, "large");
	m_check(v, &M, "copy of large");

	test_seek(v);
	test_cross(v);

	CHECK_OK(volume_file_close(fa));
	CHECK_OK(volume_file_close(fb));
	CHECK_OK(volume_file_close(fc));
	CHECK_OK(volume_file_close(fl));
	CHECK_OK(volume_file_close(fm));
	CHECK_OK(volume_close(v));

	/* Reopen: the copies persisted; then the sources go away and the
	 * copies keep their bytes (chunk references were counted). */
	REQUIRE_OK(volume_open(dir, &o, &v));
	for (size_t i = 0; i < 5; i++)
		m_check(v, all[i], "after reopen");
	CHECK_OK(volume_unlink(v, CAIRN_ROOT_INO, "a"));
	CHECK_OK(volume_unlink(v, CAIRN_ROOT_INO, "large"));
	CHECK_OK(volume_sync(v));
	CHECK_OK(volume_close(v));
	REQUIRE_OK(volume_open(dir, &o, &v));
	m_check(v, &B, "b after unlink of a");
	m_check(v, &C, "c after unlink of a");
	m_check(v, &M, "m after unlink of large");
	CHECK_OK(volume_close(v));

	/* The metadata's own check: references and extents consistent. */
	cairn_meta *meta;
	meta_fsck_result res;
	snprintf(mdir, sizeof mdir, "%s/meta", dir);
	REQUIRE_OK(meta_open(mdir, NULL, &meta));
	CHECK_OK(meta_fsck(meta, 0, stderr, &res));
	CHECK(res.problems == 0);
	CHECK(res.chunks > 0);
	CHECK_OK(meta_close(meta));

	printf("seed %llu, fsck: %llu chunks, %llu extents\n", (unsigned long long)seed,
	       (unsigned long long)res.chunks, (unsigned long long)res.extents);
	for (size_t i = 0; i < 5; i++)
		free(all[i]->b);
	t_rmtree(base);
	return t_done();
}
