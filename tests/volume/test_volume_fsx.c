/*
 * test_volume_fsx - randomized data integrity in the style of fsx: random
 * writes, overwrites, appends, truncates and reads across many files,
 * every read checked against a reference copy held in memory, with fsync,
 * handle close/reopen, volume close+reopen and cache drops mixed in.
 * Small segments, a small local-copy budget and a small cache make the
 * reads go through every path: buffers, the staging file, sealed local
 * copies, the window cache and the store.
 *
 * CAIRN_TEST_SEED replays a run; CAIRN_TEST_SCALE scales the op count
 * (default 100,000 ops).
 */
#include "vol_test.h"

#define NFILES 24
#define MAXSZ (192u << 10)

static uint8_t *ref[NFILES];
static uint64_t rsize[NFILES];
static uint64_t inos[NFILES];
static cairn_file *fh[NFILES][2];
static uint8_t wbuf[MAXSZ], rbuf[MAXSZ + 100];

static cairn_volume *vol_open_fsx(const char *dir)
{
	cairn_volume_opts o;
	cairn_volume *v;
	vt_opts(&o);
	o.local_keep = 2u << 20;
	o.cache_size = 4u << 20;
	o.read_window = 128u << 10;
	if (volume_open(dir, &o, &v)) {
		fprintf(stderr, "open: %s\n", cairn_errmsg());
		exit(1);
	}
	return v;
}

static void close_all(void)
{
	for (int i = 0; i < NFILES; i++)
		for (int j = 0; j < 2; j++)
			if (fh[i][j]) {
				CHECK_OK(volume_file_close(fh[i][j]));
				fh[i][j] = NULL;
			}
}

static cairn_file *handle(cairn_volume *v, int i, int j)
{
	if (!fh[i][j] && volume_file_open(v, inos[i], &fh[i][j])) {
		fprintf(stderr, "open file %d: %s\n", i, cairn_errmsg());
		exit(1);
	}
	return fh[i][j];
}

static int verify(cairn_volume *v, int i, uint64_t off, size_t len, uint64_t op)
{
	size_t got = 0, want;
	int rc;

	/* Not zeros: a read must write every byte it returns (holes too). */
	memset(rbuf, 0xa5, len);
	rc = volume_file_read(handle(v, i, (int)(op & 1)), rbuf, len, off, &got);
	if (rc) {
		fprintf(stderr, "op %llu: read file %d [%llu+%zu]: %s\n",
		       (unsigned long long)op, i, (unsigned long long)off, len,
		       cairn_errmsg());
		CHECK_OK(rc);
		return 1;
	}
	want = off >= rsize[i] ? 0 : (rsize[i] - off < len ? rsize[i] - off : len);
	if (got != want || memcmp(rbuf, ref[i] + off, got)) {
		size_t k = 0;
		while (k < got && k < want && rbuf[k] == ref[i][off + k])
			k++;
		fprintf(stderr, "op %llu: file %d [%llu+%zu]: got %zu bytes, want %zu; "
		       "first difference at %llu\n", (unsigned long long)op, i,
		       (unsigned long long)off, len, got, want,
		       (unsigned long long)(off + k));
		CHECK(0);
		return 1;
	}
	CHECK(1);
	return 0;
}

int main(void)
{
	const char *base = t_tmpdir("volume_fsx");
	uint64_t seed = t_seed(), s = seed;
	uint64_t nops = t_scaled(100000), op;
	char dir[1024];
	cairn_volume *v;
	unsigned reopens = 0, drops = 0, fsyncs = 0, truncs = 0;

	snprintf(dir, sizeof dir, "%s/vol", base);
	vt_format(dir, 2u << 20);
	v = vol_open_fsx(dir);
	for (int i = 0; i < NFILES; i++) {
		char name[32];
		snprintf(name, sizeof name, "f%02d", i);
		inos[i] = vt_file(v, name);
		ref[i] = calloc(1, MAXSZ);
		REQUIRE(ref[i]);
	}
	for (op = 0; op < nops; op++) {
		int i = (int)(t_rand(&s) % NFILES);
		unsigned r = (unsigned)(t_rand(&s) % 1000);
		uint64_t off, len;
		if (r < 380) {  /* write */
			len = t_rand(&s) % 8 == 0 ? 1 + t_rand(&s) % 32768 : 1 + t_rand(&s) % 2048;
			off = t_rand(&s) % (MAXSZ - len);
			if (t_rand(&s) % 3 == 0 && rsize[i] + len <= MAXSZ)
				off = rsize[i];  /* append */
			t_fill(wbuf, len, t_rand(&s));
			int rc = volume_file_write(handle(v, i, (int)(r & 1)), wbuf, len, off);
			if (rc) {
				fprintf(stderr, "op %llu: write: %s\n", (unsigned long long)op,
					cairn_errmsg());
				CHECK_OK(rc);
				break;
			}
			memcpy(ref[i] + off, wbuf, len);
			if (off + len > rsize[i])
				rsize[i] = off + len;
		} else if (r < 780) {  /* read */
			off = rsize[i] ? t_rand(&s) % (rsize[i] + 10) : 0;
			len = 1 + t_rand(&s) % 40000;
			if (off + len > MAXSZ)
				len = MAXSZ - off;
			if (len && verify(v, i, off, len, op))
				break;
		} else if (r < 800) {  /* truncate */
			uint64_t ns = t_rand(&s) % (MAXSZ / 2);
			if (t_rand(&s) % 2)
				ns = rsize[i] > 0 ? t_rand(&s) % rsize[i] : 0;
			int rc = volume_file_truncate(handle(v, i, 0), ns);
			if (rc) {
				fprintf(stderr, "op %llu: truncate: %s\n", (unsigned long long)op,
					cairn_errmsg());
				CHECK_OK(rc);
				break;
			}
			if (ns < rsize[i])
				memset(ref[i] + ns, 0, rsize[i] - ns);
			rsize[i] = ns;
			truncs++;
		} else if (r < 810) {  /* fsync */
			CHECK_OK(volume_file_fsync(handle(v, i, 0)));
			fsyncs++;
		} else if (r < 960) {  /* close a handle */
			int j = (int)(t_rand(&s) % 2);
			if (fh[i][j]) {
				CHECK_OK(volume_file_close(fh[i][j]));
				fh[i][j] = NULL;
			}
		} else if (r < 995) {  /* size check */
			cairn_attr a;
			CHECK_OK(volume_getattr(v, inos[i], &a));
			if (a.size != rsize[i]) {
				fprintf(stderr, "op %llu: file %d size %llu, want %llu\n",
					(unsigned long long)op, i, (unsigned long long)a.size,
					(unsigned long long)rsize[i]);
				CHECK(0);
				break;
			}
		} else if (r < 998) {  /* drop the caches */
			CHECK_OK(volume_drop_cache(v));
			drops++;
		} else if (t_rand(&s) % 4 == 0) {  /* close and reopen the volume */
			close_all();
			CHECK_OK(volume_close(v));
			v = vol_open_fsx(dir);
			reopens++;
		}
	}
	/* Full check, then once more after a reopen with cold caches. */
	for (int pass = 0; pass < 2; pass++) {
		for (int i = 0; i < NFILES; i++)
			verify(v, i, 0, MAXSZ, op);
		close_all();
		CHECK_OK(volume_close(v));
		v = vol_open_fsx(dir);
		CHECK_OK(volume_drop_cache(v));
	}
	cairn_volume_stats st;
	volume_stats(v, &st);
	printf("%llu ops: %u reopens, %u cache drops, %u fsyncs, %u truncates\n",
	       (unsigned long long)op, reopens, drops, fsyncs, truncs);
	close_all();
	CHECK_OK(volume_close(v));
	if (t_failures_)
		printf("FAILED with CAIRN_TEST_SEED=%llu\n", (unsigned long long)seed);
	for (int i = 0; i < NFILES; i++)
		free(ref[i]);
	t_rmtree(base);
	return t_done();
}
