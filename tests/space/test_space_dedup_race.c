/*
 * test_space_dedup_race.c - gc racing a writer that deduplicates against
 * old chunks.  Per round, in one volume (gc grace none):
 *   - the writer thread streams copies of the base files, each with one
 *     region rewritten, so most of their chunks are dedup hits against
 *     the bases' stored chunks; it reads every copy back right after
 *     closing it and deletes old copies;
 *   - the churn thread deletes base files and rewrites them with new
 *     content, so the chunks the writer is about to reference lose their
 *     last references (and their segments die);
 *   - the gc thread runs volume_gc passes (grace none, compaction on in
 *     odd rounds) back to back.
 * No read may fail or differ; at the end every file reads back exactly,
 * also from the store after a cache drop, the metadata fsck is clean
 * (exact refcounts) and no pin inode is left.  Rounds: t_scaled(4).
 */
#include <pthread.h>

#include "dedup_t.h"

#define NBASE 3
#define BASE_SIZE (3 * MIB)
#define KEEP 4
#define OPS 12

typedef struct rstate {
	cairn_volume *v;
	pthread_mutex_t mu;
	dd_file base[NBASE];      /* current content of base file i */
	uint64_t rng_w, rng_c;
	int stop, compact;
	dd_file copy[OPS];
	char copy_name[OPS][32];
	int copy_live[OPS];
	uint64_t written, passes;
} rstate;

static int put(cairn_volume *v, const char *name, const dd_file *f, uint64_t *ino)
{
	cairn_file *fh;
	cairn_attr a;
	int rc = volume_create(v, CAIRN_ROOT_INO, name, 0100644, 0, 0, &a);
	if (rc)
		return rc;
	*ino = a.ino;
	if ((rc = volume_file_open(v, a.ino, &fh)))
		return rc;
	rc = dd_write(fh, f, 0, f->size, 1 << 20);
	int rc2 = volume_file_close(fh);
	return rc ? rc : rc2;
}

static void *writer(void *arg)
{
	rstate *s = arg;
	for (int k = 0; k < OPS; k++) {
		uint64_t ino;
		pthread_mutex_lock(&s->mu);
		int i = (int)(t_rand(&s->rng_w) % NBASE);
		dd_file f = s->base[i];
		pthread_mutex_unlock(&s->mu);
		f.kind = DD_EDIT;
		f.other = t_rand(&s->rng_w);
		memset(f.reg, 0, sizeof f.reg);
		f.reg[0][0] = t_rand(&s->rng_w) % (f.size - 65536);
		f.reg[0][1] = f.reg[0][0] + 65536;
		snprintf(s->copy_name[k], sizeof s->copy_name[k], "w%d", k);
		s->copy[k] = f;
		int rc = put(s->v, s->copy_name[k], &f, &ino);
		CHECK_OK(rc);
		if (rc)
			break;
		s->copy_live[k] = 1;
		s->written += f.size;
		CHECK(dd_check_file(s->v, ino, &f) == 0);
		if (k >= KEEP) {
			CHECK_OK(volume_unlink(s->v, CAIRN_ROOT_INO, s->copy_name[k - KEEP]));
			s->copy_live[k - KEEP] = 0;
		}
	}
	return NULL;
}

static void *churn(void *arg)
{
	rstate *s = arg;
	char name[32];
	for (int k = 0; k < OPS / 2; k++) {
		uint64_t ino;
		int i = (int)(t_rand(&s->rng_c) % NBASE);
		dd_file f = { .kind = DD_BASE, .size = BASE_SIZE, .seed = t_rand(&s->rng_c) };
		snprintf(name, sizeof name, "b%d", i);
		CHECK_OK(volume_unlink(s->v, CAIRN_ROOT_INO, name));
		int rc = put(s->v, name, &f, &ino);
		CHECK_OK(rc);
		if (rc)
			break;
		/* The writer copies it from now on (dedup hits once its stream
		 * segment is uploaded, plain writes before). */
		pthread_mutex_lock(&s->mu);
		s->base[i] = f;
		pthread_mutex_unlock(&s->mu);
		usleep(20000);
	}
	return NULL;
}

static void *gcer(void *arg)
{
	rstate *s = arg;
	cairn_gc_opts go;
	cairn_gc_result gr;
	volume_gc_opts_init(&go);
	go.grace_ms = CAIRN_GC_GRACE_NONE;
	go.compact_below = s->compact ? 0.9 : 0;
	while (!__atomic_load_n(&s->stop, __ATOMIC_ACQUIRE)) {
		CHECK_OK(volume_gc(s->v, &go, &gr));
		s->passes++;
		usleep(2000);
	}
	return NULL;
}

int main(void)
{
	const char *tmp = t_tmpdir("space_dedup_race");
	uint64_t rng = t_seed();
	uint64_t rounds = t_scaled(4);

	for (uint64_t r = 0; r < rounds; r++) {
		char dir[700], url[800], name[32];
		cairn_volume_opts o;
		cairn_objstore *os;
		cairn_objstore_stats st;
		rstate *s = calloc(1, sizeof *s);
		REQUIRE(s);
		pthread_mutex_init(&s->mu, NULL);
		s->rng_w = t_rand(&rng);
		s->rng_c = t_rand(&rng);
		s->compact = (int)(r & 1);
		snprintf(dir, sizeof dir, "%s/vol%" PRIu64, tmp, r);
		REQUIRE_OK(volume_format(dir, NULL));
		snprintf(url, sizeof url, "file://%s/store", dir);
		REQUIRE_OK(objstore_open(url, NULL, &os));
		memset(&o, 0, sizeof o);
		o.store = os;
		o.stream_threshold = 256 << 10;
		o.stream_part_size = 5 * MIB;
		o.stream_chunk_avg = 64u << 10;
		o.stream_commit_bytes = 1 * MIB;  /* commits with hits pending */
		o.gc_grace_ms = CAIRN_GC_GRACE_NONE;
		o.seal_age_ms = 50;
		REQUIRE_OK(volume_open(dir, &o, &s->v));
		for (int i = 0; i < NBASE; i++) {
			uint64_t ino;
			s->base[i] = (dd_file){ .kind = DD_BASE, .size = BASE_SIZE,
						.seed = t_rand(&rng) };
			snprintf(name, sizeof name, "b%d", i);
			REQUIRE_OK(put(s->v, name, &s->base[i], &ino));
		}
		REQUIRE_OK(volume_sync_durable(s->v, CAIRN_DUR_REMOTE));
		pthread_t tw, tc, tg;
		REQUIRE(pthread_create(&tg, NULL, gcer, s) == 0);
		REQUIRE(pthread_create(&tc, NULL, churn, s) == 0);
		REQUIRE(pthread_create(&tw, NULL, writer, s) == 0);
		pthread_join(tw, NULL);
		pthread_join(tc, NULL);
		__atomic_store_n(&s->stop, 1, __ATOMIC_RELEASE);
		pthread_join(tg, NULL);

		/* Everything reads back, also from the store. */
		cairn_gc_opts go;
		cairn_gc_result gr;
		volume_gc_opts_init(&go);
		go.grace_ms = CAIRN_GC_GRACE_NONE;
		REQUIRE_OK(volume_sync_durable(s->v, CAIRN_DUR_REMOTE));
		CHECK_OK(volume_gc(s->v, &go, &gr));
		uint64_t files = 0;
		for (int pass = 0; pass < 2; pass++) {
			files = 0;
			for (int i = 0; i < NBASE; i++) {
				cairn_attr a;
				snprintf(name, sizeof name, "b%d", i);
				REQUIRE_OK(volume_lookup(s->v, CAIRN_ROOT_INO, name, &a));
				CHECK(dd_check_file(s->v, a.ino, &s->base[i]) == 0);
				files++;
			}
			for (int k = 0; k < OPS; k++) {
				cairn_attr a;
				if (!s->copy_live[k])
					continue;
				REQUIRE_OK(volume_lookup(s->v, CAIRN_ROOT_INO, s->copy_name[k], &a));
				CHECK(dd_check_file(s->v, a.ino, &s->copy[k]) == 0);
				files++;
			}
			REQUIRE_OK(volume_drop_cache(s->v));
		}
		REQUIRE_OK(volume_close(s->v));
		/* Written: the bases, their rewrites, the copies. */
		uint64_t total = (NBASE + OPS / 2) * BASE_SIZE + s->written;
		objstore_stats(os, &st);
		printf("round %" PRIu64 ": %" PRIu64 " MiB copied, %" PRIu64 " gc passes, "
		       "compaction %s; %.1f MiB written, %.1f MiB uploaded\n", r,
		       (uint64_t)(s->written / MIB), s->passes, s->compact ? "on" : "off",
		       (double)total / MIB, (double)st.bytes_up / MIB);
		if (!s->compact)  /* the copies did deduplicate */
			CHECK(st.bytes_up < total - s->written / 4);
		objstore_close(os);
		uint64_t inodes = 0;
		CHECK(dd_meta_fsck(dir, &inodes) == 0);
		CHECK(inodes == 1 + files);
		pthread_mutex_destroy(&s->mu);
		free(s);
		t_rmtree(dir);
	}
	t_rmtree(tmp);
	return t_done();
}
