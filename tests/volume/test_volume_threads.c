/*
 * test_volume_threads - the API from many threads at once, as the FUSE
 * mount calls it: threads writing, reading, fsyncing and truncating their
 * own files, and threads writing disjoint stripes of one shared file
 * through their own handles, while the background threads commit, seal and
 * upload.  Every file is checked at the end and after a reopen.
 */
#include <pthread.h>

#include "vol_test.h"

#define NT 6
#define STRIPE 4096
#define NSTRIPES 64

static cairn_volume *g_vol;
static uint64_t g_shared;
static uint64_t g_seed;
static uint8_t own_ref[NT][64 << 10];
static uint64_t own_size[NT];
static uint64_t own_ino[NT];
static int g_errors;

static void *worker(void *arg)
{
	int id = (int)(intptr_t)arg;
	uint64_t s = g_seed + (uint64_t)id;
	uint8_t buf[8192], got[64 << 10];
	cairn_file *f = NULL, *sh = NULL;
	int ops = (int)t_scaled(600);

	if (volume_file_open(g_vol, own_ino[id], &f) ||
	    volume_file_open(g_vol, g_shared, &sh)) {
		__atomic_add_fetch(&g_errors, 1, __ATOMIC_RELAXED);
		return NULL;
	}
	for (int k = 0; k < ops; k++) {
		unsigned r = (unsigned)(t_rand(&s) % 100);
		size_t n;
		if (r < 45) {
			uint64_t len = 1 + t_rand(&s) % sizeof buf;
			uint64_t off = t_rand(&s) % (sizeof own_ref[0] - len);
			t_fill(buf, len, t_rand(&s));
			if (volume_file_write(f, buf, len, off))
				goto fail;
			memcpy(own_ref[id] + off, buf, len);
			if (off + len > own_size[id])
				own_size[id] = off + len;
		} else if (r < 75) {
			if (volume_file_read(f, got, sizeof got, 0, &n))
				goto fail;
			if (n != own_size[id] || memcmp(got, own_ref[id], n)) {
				fprintf(stderr, "thread %d: own file differs at op %d\n", id, k);
				goto fail;
			}
		} else if (r < 80) {
			if (volume_file_fsync(f))
				goto fail;
		} else if (r < 83) {
			uint64_t ns = own_size[id] / 2;
			if (volume_file_truncate(f, ns))
				goto fail;
			memset(own_ref[id] + ns, 0, own_size[id] - ns);
			own_size[id] = ns;
		} else if (r < 95) {
			/* My stripes of the shared file: stripe i belongs to
			 * thread i % NT and holds the byte (i & 0xff). */
			int i = (int)(t_rand(&s) % (NSTRIPES / NT)) * NT + id;
			memset(buf, i & 0xff, STRIPE);
			if (volume_file_write(sh, buf, STRIPE, (uint64_t)i * STRIPE))
				goto fail;
		} else {
			cairn_attr a;
			if (volume_getattr(g_vol, own_ino[id], &a) || a.size != own_size[id]) {
				fprintf(stderr, "thread %d: size %llu, want %llu\n", id,
					(unsigned long long)a.size, (unsigned long long)own_size[id]);
				goto fail;
			}
		}
	}
	if (volume_file_close(f) || volume_file_close(sh))
		__atomic_add_fetch(&g_errors, 1, __ATOMIC_RELAXED);
	return NULL;
fail:
	fprintf(stderr, "thread %d: %s\n", id, cairn_errmsg());
	__atomic_add_fetch(&g_errors, 1, __ATOMIC_RELAXED);
	volume_file_close(f);
	volume_file_close(sh);
	return NULL;
}

static void check_all(void)
{
	static uint8_t got[NSTRIPES * STRIPE];
	size_t n;
	for (int id = 0; id < NT; id++) {
		CHECK_OK(vt_read(g_vol, own_ino[id], got, sizeof got, 0, &n));
		CHECK(n == own_size[id] && !memcmp(got, own_ref[id], n));
	}
	CHECK_OK(vt_read(g_vol, g_shared, got, sizeof got, 0, &n));
	for (size_t i = 0; i < n / STRIPE; i++) {
		/* A stripe never written reads as zeros. */
		uint8_t c = got[i * STRIPE];
		CHECK(c == 0 || c == (i & 0xff));
		for (size_t j = 1; j < STRIPE; j++)
			if (got[i * STRIPE + j] != c) {
				CHECK(0);
				break;
			}
	}
}

int main(void)
{
	const char *base = t_tmpdir("volume_threads");
	char dir[1024];
	cairn_volume_opts o;
	pthread_t th[NT];

	g_seed = t_seed();
	snprintf(dir, sizeof dir, "%s/vol", base);
	vt_format(dir, 0);
	vt_opts(&o);
	o.segment_size = 256u << 10;
	o.inode_dirty_max = 16u << 10;
	REQUIRE_OK(volume_open(dir, &o, &g_vol));
	for (int i = 0; i < NT; i++) {
		char name[16];
		snprintf(name, sizeof name, "t%d", i);
		own_ino[i] = vt_file(g_vol, name);
	}
	g_shared = vt_file(g_vol, "shared");
	for (int i = 0; i < NT; i++)
		REQUIRE(pthread_create(&th[i], NULL, worker, (void *)(intptr_t)i) == 0);
	for (int i = 0; i < NT; i++)
		pthread_join(th[i], NULL);
	CHECK(g_errors == 0);
	check_all();
	CHECK_OK(volume_close(g_vol));
	REQUIRE_OK(volume_open(dir, &o, &g_vol));
	CHECK_OK(volume_drop_cache(g_vol));
	check_all();
	CHECK_OK(volume_close(g_vol));
	t_rmtree(base);
	return t_done();
}
