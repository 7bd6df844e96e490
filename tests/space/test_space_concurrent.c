/*
 * test_space_concurrent.c - gc and compaction while the volume is in use.
 * A writer thread creates, overwrites (so chunks die while compaction
 * copies them), truncates and unlinks files, reads back what it wrote and
 * uploads now and then; a gc thread runs passes that compact anything not
 * fully live, back to back.  The grace is an hour during the race (a
 * reader that resolved a chunk just before it moved still finds the old
 * segment: the grace is what protects it), so the race exercises the
 * switch: chunks that died or moved since they were copied must not be
 * moved.  At the end a pass without grace deletes everything dead, and
 * every file reads back exactly from the store, fsck is clean, the store
 * holds exactly the segments the metadata knows.
 * Ops: t_scaled(300); CAIRN_TEST_SEED replays the writer's choices.
 */
#include <pthread.h>

#include "space_t.h"

typedef struct shared {
	cairn_volume *v;
	int stop;
	uint64_t passes, compacted, moved, failures;
} shared;

static void *gc_thread(void *arg)
{
	shared *s = arg;
	while (!__atomic_load_n(&s->stop, __ATOMIC_RELAXED)) {
		cairn_gc_opts g;
		cairn_gc_result r;
		volume_gc_opts_init(&g);
		g.grace_ms = 3600 * 1000;
		g.compact_below = 0.99;
		if (volume_gc(s->v, &g, &r)) {
			fprintf(stderr, "gc: %s\n", cairn_errmsg());
			s->failures++;
		}
		s->passes++;
		s->compacted += r.segments_compacted;
		s->moved += r.chunks_moved;
		usleep(2000);
	}
	return NULL;
}

int main(void)
{
	const char *dir = t_tmpdir("space_concurrent");
	uint64_t rng = t_seed();
	uint64_t ops = t_scaled(300);
	cairn_volume_opts o;
	cairn_objstore *os;
	sp_model m = { 0 };
	shared s = { 0 };
	unsigned names = 0;
	pthread_t th;
	char name[64];

	sp_format(dir);
	sp_opts(&o);
	REQUIRE_OK(volume_open(dir, &o, &s.v));
	REQUIRE_OK(sp_store_open(dir, &os));
	REQUIRE(pthread_create(&th, NULL, gc_thread, &s) == 0);
	for (uint64_t i = 0; i < ops && !t_failures_; i++) {
		unsigned op = (unsigned)(t_rand(&rng) % 100);
		sp_file *f = m.n ? &m.f[t_rand(&rng) % (uint64_t)m.n] : NULL;
		if (op < 35 || !f || m.n < 4) {
			if (m.n >= SP_MAXF - 1)
				continue;
			snprintf(name, sizeof name, "f%u", names++);
			uint64_t len = t_rand(&rng) % 8 == 0 ? SP_MIB + t_rand(&rng) % SP_MIB
							     : 1 + t_rand(&rng) % (120 << 10);
			sp_write(s.v, &m, name, 0, len, len > SP_MIB ? (128u << 10) : (size_t)len, &rng);
			f = sp_find(&m, name);
		} else if (op < 70) {
			uint64_t off = t_rand(&rng) % (f->size + 1), len = 1 + t_rand(&rng) % (64 << 10);
			snprintf(name, sizeof name, "%s", f->name);
			sp_write(s.v, &m, name, off, len, (size_t)len, &rng);
			f = sp_find(&m, name);
		} else if (op < 78) {
			uint64_t size = t_rand(&rng) % (f->size + 1);
			cairn_sattr sa = { .mask = CAIRN_SET_SIZE, .size = size };
			cairn_attr a;
			CHECK_OK(volume_setattr(s.v, sp_ino(s.v, f->name), &sa, &a));
			sp_set_size(f, size);
		} else if (op < 93) {
			CHECK_OK(volume_unlink(s.v, CAIRN_ROOT_INO, f->name));
			sp_del(&m, f);
			f = NULL;
		} else {
			CHECK_OK(volume_sync_durable(s.v, CAIRN_DUR_REMOTE));
		}
		/* read back while gc runs: one file, or now and then all */
		if (f) {
			sp_model one = { .n = 1 };
			one.f[0] = *f;
			CHECK(sp_verify(s.v, CAIRN_ROOT_INO, &one, "during") == 0);
		}
		if (i % 50 == 49)
			CHECK(sp_verify(s.v, CAIRN_ROOT_INO, &m, "during") == 0);
	}
	__atomic_store_n(&s.stop, 1, __ATOMIC_RELAXED);
	pthread_join(th, NULL);
	CHECK(s.failures == 0);
	printf("%" PRIu64 " gc passes, %" PRIu64 " segments compacted, %" PRIu64
	       " chunks moved\n", s.passes, s.compacted, s.moved);
	CHECK(ops < 100 || s.moved > 0);

	/* Quiet now: everything dead goes, everything live reads back. */
	cairn_gc_opts g;
	cairn_gc_result r;
	CHECK_OK(volume_sync_durable(s.v, CAIRN_DUR_REMOTE));
	sp_gc_opts(&g);
	CHECK_OK(volume_gc(s.v, &g, &r));
	CHECK_OK(volume_drop_cache(s.v));
	CHECK(sp_verify(s.v, CAIRN_ROOT_INO, &m, "after") == 0);
	sp_check_accounting(s.v);
	sp_check_store_matches(s.v, os);
	CHECK_OK(volume_close(s.v));
	REQUIRE_OK(volume_open(dir, &o, &s.v));
	CHECK_OK(volume_drop_cache(s.v));
	CHECK(sp_verify(s.v, CAIRN_ROOT_INO, &m, "reopened") == 0);
	CHECK_OK(volume_close(s.v));
	objstore_close(os);
	sp_model_free(&m);
	return t_done();
}
