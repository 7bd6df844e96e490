/*
 * test_space_random.c - a random workload (small and streamed writes,
 * overwrites, truncates, unlinks, renames, clones, snapshots and snapshot
 * deletes) interleaved with gc passes that compact (threshold 0.99) and
 * delete at once (no grace), against an in-memory model.  After every
 * round: every live file and every snapshot file reads back byte for byte,
 * fsck is clean, volume_space agrees with fsck's recount, and the store
 * holds exactly the segments the metadata knows.  Some rounds reopen the
 * volume and drop the caches, so reads come from the store.
 * Rounds: t_scaled(24); CAIRN_TEST_SEED replays one run.
 */
#include "space_t.h"

#define NSNAP 3

typedef struct snapm {
	char name[32];
	int live;
	sp_model m;
} snapm;

static void step(cairn_volume *v, sp_model *m, snapm *snaps, uint64_t *rng, unsigned *names)
{
	unsigned op = (unsigned)(t_rand(rng) % 100);
	char name[64];
	sp_file *f = m->n ? &m->f[t_rand(rng) % (uint64_t)m->n] : NULL;

	if (op < 30 || !f) {
		/* a new file: small, or large and sequential (a stream) */
		snprintf(name, sizeof name, "f%u", (*names)++);
		if (m->n >= SP_MAXF - 2)
			return;
		uint64_t len = t_rand(rng) % 4 == 0 ? SP_MIB + t_rand(rng) % (2 * SP_MIB)
						    : 1 + t_rand(rng) % (96 << 10);
		sp_write(v, m, name, 0, len, len > SP_MIB ? (256u << 10) : (size_t)len, rng);
	} else if (op < 50) {
		/* overwrite (maybe extending) */
		uint64_t off = f->size ? t_rand(rng) % f->size : 0;
		uint64_t len = 1 + t_rand(rng) % (64 << 10);
		snprintf(name, sizeof name, "%s", f->name);
		sp_write(v, m, name, off, len, (size_t)len, rng);
	} else if (op < 58) {
		uint64_t size = f->size ? t_rand(rng) % (f->size + 1) : 0;
		cairn_sattr sa = { .mask = CAIRN_SET_SIZE, .size = size };
		cairn_attr a;
		CHECK_OK(volume_setattr(v, sp_ino(v, f->name), &sa, &a));
		sp_set_size(f, size);
	} else if (op < 72) {
		CHECK_OK(volume_unlink(v, CAIRN_ROOT_INO, f->name));
		sp_del(m, f);
	} else if (op < 80) {
		/* rename, sometimes over another file */
		sp_file *g = m->n > 1 ? &m->f[t_rand(rng) % (uint64_t)m->n] : NULL;
		if (g && g != f && (t_rand(rng) & 1)) {
			char old[64];
			snprintf(old, sizeof old, "%s", f->name);
			snprintf(name, sizeof name, "%s", g->name);
			CHECK_OK(volume_rename(v, CAIRN_ROOT_INO, old, CAIRN_ROOT_INO, name, 0));
			sp_del(m, g);
			f = sp_find(m, old);  /* the delete may have moved it */
		} else {
			snprintf(name, sizeof name, "f%u", (*names)++);
			CHECK_OK(volume_rename(v, CAIRN_ROOT_INO, f->name, CAIRN_ROOT_INO, name, 0));
		}
		snprintf(f->name, sizeof f->name, "%s", name);
	} else if (op < 88) {
		if (m->n >= SP_MAXF - 2)
			return;
		snprintf(name, sizeof name, "f%u", (*names)++);
		cairn_attr a;
		CHECK_OK(volume_clone(v, sp_ino(v, f->name), CAIRN_ROOT_INO, name, &a));
		sp_file *c = sp_add(m, name);
		f = sp_find(m, f->name);
		sp_reserve(c, f->size);
		memcpy(c->data, f->data, f->size);
		c->size = f->size;
	} else {
		snapm *s = &snaps[t_rand(rng) % NSNAP];
		if (s->live) {
			CHECK_OK(volume_snapshot_delete(v, s->name));
			sp_model_free(&s->m);
			s->live = 0;
		} else {
			cairn_snap sn;
			snprintf(s->name, sizeof s->name, "s%u", (*names)++);
			CHECK_OK(volume_snapshot_create(v, CAIRN_ROOT_INO, s->name, &sn));
			sp_model_copy(&s->m, m);
			s->live = 1;
		}
	}
}

static void verify_all(cairn_volume *v, const sp_model *m, const snapm *snaps)
{
	CHECK(sp_verify(v, CAIRN_ROOT_INO, m, "live") == 0);
	for (int i = 0; i < NSNAP; i++) {
		cairn_snap sn;
		if (!snaps[i].live)
			continue;
		CHECK_OK(volume_snapshot_get(v, snaps[i].name, &sn));
		CHECK(sp_verify(v, sn.root, &snaps[i].m, snaps[i].name) == 0);
	}
}

int main(void)
{
	const char *dir = t_tmpdir("space_random");
	uint64_t rng = t_seed();
	uint64_t rounds = t_scaled(24);
	cairn_volume_opts o;
	cairn_volume *v;
	cairn_objstore *os;
	sp_model m = { 0 };
	snapm snaps[NSNAP];
	unsigned names = 0;
	cairn_gc_result total = { 0 };

	memset(snaps, 0, sizeof snaps);
	sp_format(dir);
	sp_opts(&o);
	REQUIRE_OK(volume_open(dir, &o, &v));
	REQUIRE_OK(sp_store_open(dir, &os));
	for (uint64_t r = 0; r < rounds; r++) {
		unsigned nops = 10 + (unsigned)(t_rand(&rng) % 30);
		for (unsigned i = 0; i < nops; i++)
			step(v, &m, snaps, &rng, &names);
		/* Everything committed is in the store: compaction takes only
		 * uploaded segments. */
		CHECK_OK(volume_sync_durable(v, CAIRN_DUR_REMOTE));
		cairn_gc_opts g;
		cairn_gc_result res;
		sp_gc_opts(&g);
		CHECK_OK(volume_gc(v, &g, &res));
		total.segments_deleted += res.segments_deleted;
		total.segments_compacted += res.segments_compacted;
		total.chunks_moved += res.chunks_moved;
		total.bytes_rewritten += res.bytes_rewritten;
		verify_all(v, &m, snaps);
		sp_check_accounting(v);
		sp_check_store_matches(v, os);
		if (r % 5 == 4) {
			REQUIRE_OK(volume_close(v));
			REQUIRE_OK(volume_open(dir, &o, &v));
			CHECK_OK(volume_drop_cache(v));
			verify_all(v, &m, snaps);
		}
		if (t_failures_) {
			fprintf(stderr, "round %" PRIu64 " failed\n", r);
			break;
		}
	}
	printf("rounds %" PRIu64 ": %" PRIu64 " segments deleted, %" PRIu64 " compacted (%"
	       PRIu64 " chunks, %" PRIu64 " bytes)\n", rounds, total.segments_deleted,
	       total.segments_compacted, total.chunks_moved, total.bytes_rewritten);
	/* teeth: the passes did reclaim and compact */
	CHECK(total.segments_deleted > 0);
	CHECK(rounds < 4 || total.segments_compacted > 0);
	CHECK(rounds < 4 || total.chunks_moved > 0);
	/* one last pass on the final state, then everything again from the
	 * store */
	CHECK_OK(volume_close(v));
	REQUIRE_OK(volume_open(dir, &o, &v));
	CHECK_OK(volume_drop_cache(v));
	verify_all(v, &m, snaps);
	sp_check_accounting(v);
	CHECK_OK(volume_close(v));
	objstore_close(os);
	sp_model_free(&m);
	for (int i = 0; i < NSNAP; i++)
		sp_model_free(&snaps[i].m);
	return t_done();
}
