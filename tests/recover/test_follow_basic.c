/*
 * test_follow_basic.c - a read-only follower (volume_open_follower,
 * docs/log-shipping.md "Followers") of a writer in the same process, one
 * file:// store:
 *   - files and checkpoint-like snapshots of the writer appear at the
 *     follower (polled, generous bound: never a speed assertion), and a
 *     reader thread never sees a snapshot partly (its file count and bytes
 *     are checked whenever it is visible);
 *   - the writer's gc with compaction (normal grace) leaves every file
 *     readable at the follower;
 *   - every call that would change the follower is CAIRN_E_ROFS;
 *   - a follower reopened from its directory goes on where it left off;
 *   - a stale follower reading a segment the writer's gc deleted (grace 0)
 *     gets CAIRN_E_IO naming it, catches up, and then reads the file.
 * On file://, and on s3rver with argument "s3" (follow_basic_s3).
 */
#include <pthread.h>

#include "recover_t.h"
#include "t_store.h"

#define BOUND_MS 60000
#define CK_FILES 6

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };
	nanosleep(&ts, NULL);
}

/* Wait until the follower holds every file of m with its bytes (and, if
 * exact, no other file). */
static int wait_tree(cairn_volume *f, const rt_model *m, const char *what, int exact)
{
	int64_t t0 = now_ms();
	for (;;) {
		int bad = 0;
		for (size_t i = 0; i < m->n && !bad; i++) {
			uint64_t ino;
			char leaf[256];
			if (rt_walk(f, CAIRN_ROOT_INO, m->f[i].path, 0, 0, &ino, leaf) ||
			    rt_file_equal(f, ino, &m->f[i]))
				bad = 1;
		}
		if (!bad) {
			rt_count c = { 0 };
			if (exact)
				rt_count_tree(f, CAIRN_ROOT_INO, &c);
			if (!exact || (!c.rc && c.files == m->n))
				return 0;
		}
		if (now_ms() - t0 > BOUND_MS) {
			fprintf(stderr, "%s: not at the follower after %d ms\n", what, BOUND_MS);
			return -1;
		}
		sleep_ms(50);
	}
}

/* ---- the snapshot watcher: never a partial snapshot ---- */

typedef struct watch {
	cairn_volume *f;
	int stop;
	int seen[16];
	int bad;
	uint64_t looks;
} watch;

static void *watcher(void *arg)
{
	watch *w = arg;
	while (!__atomic_load_n(&w->stop, __ATOMIC_RELAXED)) {
		for (int k = 1; k < 16; k++) {
			char name[32];
			cairn_snap s;
			snprintf(name, sizeof name, "ckpt-%d", k);
			if (volume_snapshot_get(w->f, name, &s))
				continue;
			rt_model sm = { 0 };
			for (int r = 0; r < CK_FILES; r++) {
				char p[64];
				snprintf(p, sizeof p, "rank%d", r);
				rt_set(&sm, p, 20000 + (uint64_t)r * 1000 + (uint64_t)k,
				       (uint64_t)k * 100 + (uint64_t)r);
			}
			if (rt_check_tree(w->f, s.root, &sm, name)) {
				fprintf(stderr, "partial or wrong snapshot %s at the follower\n", name);
				w->bad++;
			}
			rt_free(&sm);
			w->seen[k] = 1;
			w->looks++;
		}
		sleep_ms(5);
	}
	return NULL;
}

static void checkpoint(cairn_volume *v, int k, rt_model *m)
{
	char path[RT_PATH_MAX], dir[64], name[32];
	uint64_t ino;
	char leaf[256];
	for (int r = 0; r < CK_FILES; r++) {
		snprintf(path, sizeof path, "ckpt/step%d/rank%d", k, r);
		rt_write(v, path, 20000 + (uint64_t)r * 1000 + (uint64_t)k, (uint64_t)k * 100 + (uint64_t)r);
		rt_set(m, path, 20000 + (uint64_t)r * 1000 + (uint64_t)k, (uint64_t)k * 100 + (uint64_t)r);
		/* commits between the files: a follower applying record by
		 * record could see a partial tree, never a partial snapshot */
		REQUIRE_OK(volume_sync(v));
	}
	snprintf(dir, sizeof dir, "ckpt/step%d", k);
	snprintf(name, sizeof name, "ckpt-%d", k);
	REQUIRE_OK(rt_walk(v, CAIRN_ROOT_INO, dir, 0, 0, &ino, leaf));
	REQUIRE_OK(volume_snapshot_create(v, ino, name, NULL));
}

static void rofs_checks(cairn_volume *f, const rt_model *m)
{
	cairn_attr a;
	uint64_t ino;
	char leaf[256];
	cairn_sattr sa = { .mask = CAIRN_SET_MODE, .mode = 0600 };
	REQUIRE(m->n > 0);
	REQUIRE_OK(rt_walk(f, CAIRN_ROOT_INO, m->f[0].path, 0, 0, &ino, leaf));
	CHECK_RC(volume_create(f, CAIRN_ROOT_INO, "new", 0100644, 0, 0, &a), CAIRN_E_ROFS);
	CHECK_MSG("read-only follower");
	CHECK_RC(volume_mkdir(f, CAIRN_ROOT_INO, "newdir", 0755, 0, 0, &a), CAIRN_E_ROFS);
	CHECK_RC(volume_mknod(f, CAIRN_ROOT_INO, "fifo", 010644, 0, 0, 0, &a), CAIRN_E_ROFS);
	CHECK_RC(volume_symlink(f, CAIRN_ROOT_INO, "sl", "x", 0, 0, &a), CAIRN_E_ROFS);
	CHECK_RC(volume_setattr(f, ino, &sa, &a), CAIRN_E_ROFS);
	CHECK_RC(volume_unlink(f, CAIRN_ROOT_INO, "ckpt"), CAIRN_E_ROFS);
	CHECK_RC(volume_rmdir(f, CAIRN_ROOT_INO, "ckpt"), CAIRN_E_ROFS);
	CHECK_RC(volume_rename(f, CAIRN_ROOT_INO, "ckpt", CAIRN_ROOT_INO, "x", 0), CAIRN_E_ROFS);
	CHECK_RC(volume_link(f, ino, CAIRN_ROOT_INO, "hard", &a), CAIRN_E_ROFS);
	CHECK_RC(volume_xattr_set(f, ino, "user.x", "1", 1, 0), CAIRN_E_ROFS);
	CHECK_RC(volume_xattr_remove(f, ino, "user.x"), CAIRN_E_ROFS);
	CHECK_RC(volume_snapshot_create(f, CAIRN_ROOT_INO, "s", NULL), CAIRN_E_ROFS);
	CHECK_RC(volume_snapshot_delete(f, "ckpt-1"), CAIRN_E_ROFS);
	CHECK_RC(volume_clone(f, CAIRN_ROOT_INO, CAIRN_ROOT_INO, "c", &a), CAIRN_E_ROFS);
	CHECK_RC(volume_gc(f, NULL, NULL), CAIRN_E_ROFS);
	CHECK_RC(volume_ship_flush(f), CAIRN_E_ROFS);
	cairn_fsck_result fr;
	CHECK_RC(volume_fsck(f, CAIRN_FSCK_REPAIR, NULL, &fr), CAIRN_E_ROFS);
	cairn_file *fh;
	REQUIRE_OK(volume_file_open(f, ino, &fh));
	CHECK_RC(volume_file_write(fh, "x", 1, 0), CAIRN_E_ROFS);
	CHECK_RC(volume_file_append(fh, "x", 1, NULL), CAIRN_E_ROFS);
	CHECK_RC(volume_file_truncate(fh, 0), CAIRN_E_ROFS);
	CHECK_RC(volume_copy_range(f, fh, 0, fh, 10, 1, NULL), CAIRN_E_ROFS);
	CHECK_OK(volume_file_close(fh));
	/* nothing changed */
	CHECK(rt_check_tree(f, CAIRN_ROOT_INO, m, "after ROFS") == 0);
}

int main(int argc, char **argv)
{
	char tmp[600], vol[700], fdir[700], url[800];
	t_store ts;
	cairn_format_opts fo = { 0 };
	cairn_volume_opts vo, fopt;
	cairn_volume *v, *f;
	rt_model m = { 0 };
	uint64_t seed = t_seed();
	char path[RT_PATH_MAX];

	snprintf(tmp, sizeof tmp, "%s", t_tmpdir("follow_basic"));
	snprintf(vol, sizeof vol, "%s/vol", tmp);
	snprintf(fdir, sizeof fdir, "%s/follower", tmp);
	if (!t_store_s3(&ts, argc, argv, "follow", url, sizeof url))
		snprintf(url, sizeof url, "file://%s/store", tmp);
	fo.store_url = url;
	REQUIRE_OK(volume_format(vol, &fo));
	memset(&vo, 0, sizeof vo);
	vo.ship_interval_ms = 100;
	vo.segment_size = 1u << 20;
	vo.seal_age_ms = 100;
	REQUIRE_OK(volume_open(vol, &vo, &v));
	for (int i = 0; i < 20; i++) {
		snprintf(path, sizeof path, "first/f%02d", i);
		uint64_t size = 1 + t_rand(&seed) % 30000, s = t_rand(&seed);
		rt_write(v, path, size, s);
		rt_set(&m, path, size, s);
	}
	REQUIRE_OK(volume_sync_durable(v, CAIRN_DUR_REMOTE));
	REQUIRE_OK(volume_ship_flush(v));

	/* a writer's directory is no follower's */
	memset(&fopt, 0, sizeof fopt);
	fopt.follow_poll_ms = 50;
	CHECK_RC(volume_open_follower(vol, url, &fopt, &f), CAIRN_E_INVAL);
	REQUIRE_OK(volume_open_follower(fdir, url, &fopt, &f));
	CHECK(wait_tree(f, &m, "first files", 1) == 0);
	{
		cairn_volume_stats st;
		char u1[37], u2[37];
		volume_stats(f, &st);
		CHECK(st.follower == 1);
		CHECK(st.last_lsn > 0);
		volume_uuid(v, u1);
		volume_uuid(f, u2);
		CHECK(strcmp(u1, u2) == 0);
	}

	/* checkpoints while a reader watches for partial snapshots */
	watch w = { .f = f };
	pthread_t th;
	REQUIRE(pthread_create(&th, NULL, watcher, &w) == 0);
	int nck = (int)t_scaled(4);
	if (nck > 15)
		nck = 15;
	for (int k = 1; k <= nck; k++) {
		checkpoint(v, k, &m);
		for (int i = 0; i < 10; i++) {
			snprintf(path, sizeof path, "more/k%d/f%d", k, i);
			uint64_t size = t_rand(&seed) % 9000, s = t_rand(&seed);
			rt_write(v, path, size, s);
			rt_set(&m, path, size, s);
		}
	}
	REQUIRE_OK(volume_sync_durable(v, CAIRN_DUR_REMOTE));
	CHECK(wait_tree(f, &m, "checkpoints", 1) == 0);
	{
		int64_t t0 = now_ms();
		while (!w.seen[nck] && now_ms() - t0 < BOUND_MS)
			sleep_ms(20);
	}
	__atomic_store_n(&w.stop, 1, __ATOMIC_RELAXED);
	pthread_join(th, NULL);
	CHECK(w.bad == 0);
	CHECK(w.seen[nck]);
	printf("watcher checked snapshots %llu times\n", (unsigned long long)w.looks);
	rofs_checks(f, &m);

	/* gc with compaction at the writer, normal grace */
	for (size_t i = 0; i < m.n;) {
		if (strncmp(m.f[i].path, "first/", 6) == 0 || strncmp(m.f[i].path, "more/", 5) == 0) {
			if (t_rand(&seed) % 10 < 7) {
				uint64_t d;
				char leaf[256];
				REQUIRE_OK(rt_walk(v, CAIRN_ROOT_INO, m.f[i].path, 0, 1, &d, leaf));
				REQUIRE_OK(volume_unlink(v, d, leaf));
				rt_del(&m, m.f[i].path);
				continue;
			}
		}
		i++;
	}
	REQUIRE_OK(volume_sync_durable(v, CAIRN_DUR_REMOTE));
	{
		cairn_gc_opts go;
		cairn_gc_result gr;
		volume_gc_opts_init(&go);
		go.compact_below = 0.9;
		CHECK_OK(volume_gc(v, &go, &gr));
		printf("gc: %llu dead, %llu compacted, %llu deleted\n",
		       (unsigned long long)gr.segments_marked_dead,
		       (unsigned long long)gr.segments_compacted,
		       (unsigned long long)gr.segments_deleted);
		CHECK(gr.segments_deleted == 0);
	}
	REQUIRE_OK(volume_sync_durable(v, CAIRN_DUR_REMOTE));
	REQUIRE_OK(volume_ship_flush(v));
	CHECK(wait_tree(f, &m, "after gc", 1) == 0);
	CHECK(rt_check_tree(f, CAIRN_ROOT_INO, &m, "follower after gc") == 0);

	/* reopen the follower from its directory */
	REQUIRE_OK(volume_close(f));
	rt_write(v, "later/file", 12345, 99);
	rt_set(&m, "later/file", 12345, 99);
	REQUIRE_OK(volume_sync_durable(v, CAIRN_DUR_REMOTE));
	REQUIRE_OK(volume_ship_flush(v));
	REQUIRE_OK(volume_open_follower(fdir, url, &fopt, &f));
	CHECK(wait_tree(f, &m, "after reopen", 1) == 0);
	{
		cairn_volume_stats st;
		volume_stats(f, &st);
		CHECK(st.follow_resyncs == 0);  /* went on from its own replica */
	}
	REQUIRE_OK(volume_close(f));

	/* a stale follower and a segment gc deleted: EIO, then it catches up */
	fopt.follow_poll_ms = 3600 * 1000;
	REQUIRE_OK(volume_open_follower(fdir, url, &fopt, &f));
	{
		/* the victim: a file alone in its segments, rewritten so its
		 * old segment dies and is deleted at once */
		rt_write(v, "victim", 3000, 5);
		REQUIRE_OK(volume_sync_durable(v, CAIRN_DUR_REMOTE));
		REQUIRE_OK(volume_ship_flush(v));
		REQUIRE_OK(volume_close(f));
		REQUIRE_OK(volume_open_follower(fdir, url, &fopt, &f));
		rt_model vm = { 0 };
		rt_set(&vm, "victim", 3000, 5);
		CHECK(wait_tree(f, &vm, "victim", 0) == 0);
		uint64_t ino;
		char leaf[256];
		REQUIRE_OK(rt_walk(f, CAIRN_ROOT_INO, "victim", 0, 0, &ino, leaf));
		REQUIRE_OK(volume_drop_cache(f));
		/* the writer replaces it; gc with no grace deletes the old data */
		rt_write(v, "victim", 3000, 6);
		REQUIRE_OK(volume_sync_durable(v, CAIRN_DUR_REMOTE));
		cairn_gc_opts go;
		cairn_gc_result gr;
		volume_gc_opts_init(&go);
		go.grace_ms = 0;
		go.compact_below = 0.99;
		for (int i = 0; i < 3; i++) {
			REQUIRE_OK(volume_ship_flush(v));
			CHECK_OK(volume_gc(v, &go, &gr));
			printf("gc (grace 0): %llu dead, %llu compacted, %llu deleted\n",
			       (unsigned long long)gr.segments_marked_dead,
			       (unsigned long long)gr.segments_compacted,
			       (unsigned long long)gr.segments_deleted);
		}
		cairn_file *fh;
		uint8_t buf[3000];
		size_t got = 0;
		REQUIRE_OK(volume_file_open(f, ino, &fh));
		int rc = volume_file_read(fh, buf, sizeof buf, 0, &got);
		CHECK_OK(volume_file_close(fh));
		{
			uint8_t old[3000];
			t_fill(old, sizeof old, 5);
			printf("stale read: %s (%s), %s bytes\n", cairn_rc_name(rc),
			       rc ? cairn_errmsg() : "", rc ? "no" :
			       memcmp(old, buf, sizeof old) == 0 ? "old" : "other");
		}
		if (rc) {
			CHECK(rc == CAIRN_E_IO);
			CHECK_MSG("catching up");
		} else {
			/* the old segment survived: the stale follower (polling
			 * once an hour, not kicked) still reads the old bytes */
			uint8_t old[3000];
			t_fill(old, sizeof old, 5);
			CHECK(got == sizeof old && memcmp(old, buf, sizeof old) == 0);
		}
		/* kicked: the follower catches up and reads the new bytes */
		rt_set(&m, "victim", 3000, 6);
		rt_set(&vm, "victim", 3000, 6);
		CHECK(wait_tree(f, &vm, "victim after catch-up", 0) == 0);
		rt_free(&vm);
	}
	CHECK(rt_check_tree(f, CAIRN_ROOT_INO, &m, "follower at the end") == 0);

	/* the log a stopped follower needs is trimmed behind a new image: at
	 * its next open it re-syncs from that image */
	cairn_volume_stats fst;
	volume_stats(f, &fst);
	REQUIRE_OK(volume_close(f));
	REQUIRE_OK(volume_close(v));
	vo.image_log_bytes = 1;        /* an image after every shipped round */
	vo.ship_retention_ms = -1;     /* older log and images deleted at once */
	REQUIRE_OK(volume_open(vol, &vo, &v));
	{
		char uuid[37], obj[200];
		cairn_objstore *os;
		cairn_obj_info oi;
		volume_uuid(v, uuid);
		REQUIRE_OK(objstore_open(url, NULL, &os));
		snprintf(obj, sizeof obj, "v/%s/meta/wal/%016llx", uuid,
			 (unsigned long long)fst.last_lsn + 1);
		int64_t t0 = now_ms();
		for (int i = 0; now_ms() - t0 < BOUND_MS; i++) {
			snprintf(path, sizeof path, "trim/f%d", i);
			rt_write(v, path, 100 + (uint64_t)i, (uint64_t)i);
			rt_set(&m, path, 100 + (uint64_t)i, (uint64_t)i);
			REQUIRE_OK(volume_sync(v));
			REQUIRE_OK(volume_ship_flush(v));
			int hrc = objstore_head(os, obj, &oi);
			REQUIRE(hrc == 0 || hrc == CAIRN_E_NOTFOUND);
			if (hrc == CAIRN_E_NOTFOUND && i >= 2)
				break;
			sleep_ms(100);
		}
		CHECK_RC(objstore_head(os, obj, &oi), CAIRN_E_NOTFOUND);
		objstore_close(os);
	}
	fopt.follow_poll_ms = 50;
	REQUIRE_OK(volume_open_follower(fdir, url, &fopt, &f));
	CHECK(wait_tree(f, &m, "after re-sync", 1) == 0);
	volume_stats(f, &fst);
	printf("follower re-synced %llu times, at LSN %llu, image %llu\n",
	       (unsigned long long)fst.follow_resyncs, (unsigned long long)fst.last_lsn,
	       (unsigned long long)fst.image_lsn);
	CHECK(fst.follow_resyncs >= 1);
	CHECK(rt_check_tree(f, CAIRN_ROOT_INO, &m, "follower after re-sync") == 0);
	REQUIRE_OK(volume_close(f));
	REQUIRE_OK(volume_close(v));
	rt_free(&m);
	t_store_stop(&ts);
	if (!getenv("CAIRN_TEST_KEEP"))
		t_rmtree(tmp);
	return t_done();
}
