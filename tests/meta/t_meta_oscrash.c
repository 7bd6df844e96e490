/*
 * t_meta_oscrash.c - an OS crash (power loss) emulated faithfully, for the
 * default relaxed mode (META_RELAXED_PINNED, meta/meta_ckpt.c).
 *
 * What the disk can hold after an OS crash: every byte that was synced,
 * plus any subset of the pages written since (the kernel writes dirty pages
 * back in any order, whole 4 KiB blocks).  So per seed:
 *   1. random operations (relaxed), then meta_sync(): a checkpoint.  The
 *      files as they are now are the durable image (everything was just
 *      synced); D_sync = the digest of the tables.
 *   2. more random operations, never synced.  The file now is what the page
 *      cache holds.
 *   3. the crash image: the durable image with a random subset of the
 *      pages that changed in (2) copied in; sometimes the other slot of
 *      meta.synced is garbage (a torn write of the next checkpoint).
 *   4. a child opens the image under another boot id (CAIRN_TEST_BOOT_ID):
 *      LMDB traversal of every table (free list included), meta_fsck clean,
 *      digest == D_sync exactly (every transaction up to the sync, none
 *      after), then more writes, fsck, close, reopen, fsck.  A crash of the
 *      child (SIGSEGV in LMDB on a damaged tree) counts as damage.
 *
 * Variants:
 *   restore  the real scheme: no seed may show damage.
 *   norestore  meta.synced left out of the image: the scheme's restore
 *            step does not run.  Some seeds must show damage (corruption, or
 *            a state that no transaction ever produced) - proof that the
 *            emulation can see what the restore prevents.
 *   nopin    restore with the protection switched off (internal test
 *            switch: the undo records are dropped): pages of the synced
 *            snapshot get reused unsaved, and some seeds must show damage.
 *   sameboot the image is the page cache itself (a process crash) with the
 *            same boot id: nothing may be rolled back (digest == final).
 * Also: a clean close is never rolled back; a side file whose snapshot is
 * longer than data.mdb is refused with a clear message; a garbage side file
 * is ignored with a warning; once no saved page waits to become durable,
 * freed pages are reused as without a pin (the file grows no more than in
 * UNSAFE mode).
 *
 * The undo writer's turn (meta_undo_flush) is taken at random points of
 * step 2, so pages of the checkpoint's snapshot are reused and overwritten
 * and the restore has to put saved pages back (counted; must be > 0).
 * T_DEBUG=1 keeps the directories and prints why a verifier failed.
 */
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>

#include "t.h"
#include "meta_t.h"
#include "meta_int.h"

enum { V_RESTORE, V_NORESTORE, V_NOPIN, V_SAMEBOOT };
#define UR_HDR_T 24  /* undo record header (meta_ckpt.c UR_HDR) */
static uint64_t total_restored;  /* saved pages put back, per variant */
static const char *const vname[] = { "restore", "norestore", "nopin", "sameboot" };

static int file_read(const char *path, uint8_t **buf, size_t *len)
{
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		return -1;
	struct stat st;
	if (fstat(fd, &st) != 0) {
		close(fd);
		return -1;
	}
	*len = (size_t)st.st_size;
	*buf = malloc(*len ? *len : 1);
	ssize_t n = *buf ? pread(fd, *buf, *len, 0) : -1;
	close(fd);
	return n == (ssize_t)*len ? 0 : -1;
}

static int file_write(const char *path, const uint8_t *buf, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0)
		return -1;
	ssize_t n = pwrite(fd, buf, len, 0);
	close(fd);
	return n == (ssize_t)len ? 0 : -1;
}

/* One random operation; errors such as EXISTS/NOTFOUND are part of the
 * game (a failed callback commits nothing). */
static void random_op(cairn_meta *m, uint64_t *rng)
{
	char a[32], b[32];
	static uint8_t val[3000];
	snprintf(a, sizeof a, "f%03u", (unsigned)(t_rand(rng) % 300));
	snprintf(b, sizeof b, "f%03u", (unsigned)(t_rand(rng) % 300));
	meta_attr at;
	switch (t_rand(rng) % 6) {
	case 0: case 1:
		(void)w_create(m, META_ROOT_INO, a, NULL);
		break;
	case 2:
		(void)w_unlink(m, META_ROOT_INO, a);
		break;
	case 3:
		(void)w_rename(m, META_ROOT_INO, a, META_ROOT_INO, b, 0);
		break;
	case 4:
		if (r_lookup(m, META_ROOT_INO, a, &at) == 0)
			(void)w_truncate(m, at.ino, t_rand(rng) % 100000);
		break;
	case 5:
		if (r_lookup(m, META_ROOT_INO, a, &at) == 0) {
			size_t len = 1 + t_rand(rng) % sizeof val;
			t_fill(val, len, t_rand(rng));
			(void)w_xset(m, at.ino, "user.x", val, len, 0);
		}
		break;
	}
}

/* Walk every table, and LMDB's free list, with cursors. */
static int lmdb_walk(cairn_meta *m)
{
	MDB_txn *txn;
	if (mdb_txn_begin(m->env, NULL, MDB_RDONLY, &txn))
		return -1;
	int bad = 0;
	for (int i = -1; i < MT_COUNT && !bad; i++) {
		MDB_dbi dbi = i < 0 ? 0 : m->dbi[i];  /* 0: the free list */
		MDB_cursor *c;
		MDB_val k, v;
		MDB_stat st;
		if (mdb_stat(txn, dbi, &st) || mdb_cursor_open(txn, dbi, &c)) {
			bad = 1;
			break;
		}
		size_t n = 0;
		int err = mdb_cursor_get(c, &k, &v, MDB_FIRST);
		while (!err) {
			n++;
			err = mdb_cursor_get(c, &k, &v, MDB_NEXT);
		}
		if (err != MDB_NOTFOUND || n != st.ms_entries) {
			if (getenv("T_DEBUG")) fprintf(stderr, "walk %d: %s n %zu entries %zu\n", i, mdb_strerror(err), n, (size_t)st.ms_entries);
			bad = 1;
		}
		mdb_cursor_close(c);
	}
	mdb_txn_abort(txn);
	return bad ? -1 : 0;
}

/* The child's verdict: 0 whole and as expected, 1 digest not allowed,
 * 2 open failed, 3 fsck problems, 4 LMDB traversal failed, 5 later
 * writes or reopen failed. */
static int verify(const char *dir, const uint8_t (*allowed)[32], size_t nallowed,
		  uint64_t seed, int report)
{
	cairn_meta *m;
	meta_opts o = t_opts();
	o.map_size = 4 << 20;
	o.flush_interval_ms = 0;
	if (meta_open(dir, &o, &m)) {
		if (getenv("T_DEBUG")) fprintf(stderr, "open: %s\n", cairn_errmsg());
		return 2;
	}
	/* tell the parent how many saved pages the restore put back */
	if (write(report, &m->restored, sizeof m->restored) != (ssize_t)sizeof m->restored)
		return 6;
	if (lmdb_walk(m))
		return 4;
	meta_fsck_result r;
	if (meta_fsck(m, 0, NULL, &r) || r.problems)
		return 3;
	uint8_t d[32];
	if (meta_digest(m, d))
		return 4;
	int found = 0;
	for (size_t i = 0; i < nallowed && !found; i++)
		found = memcmp(d, allowed[i], 32) == 0;
	if (!found)
		return 1;
	uint64_t rng = seed ^ 0x5555;
	for (int i = 0; i < 200; i++)
		random_op(m, &rng);
	if (meta_fsck(m, 0, NULL, &r) || r.problems || lmdb_walk(m) || meta_close(m))
		return 5;
	if (meta_open(dir, &o, &m))
		return 5;
	int bad = meta_fsck(m, 0, NULL, &r) || r.problems || lmdb_walk(m);
	if (meta_close(m) || bad)
		return 5;
	return 0;
}

/* The durable image: taken by the checkpoint hook, i.e. right after each
 * checkpoint (explicit, or one a full map forced) became durable. */
typedef struct seed_state {
	int variant;
	uint8_t *dur, *side;
	size_t durlen, sidelen;
	uint64_t next_slot;
	uint8_t (*allowed)[32];
	size_t nallowed;
	int fail;
} seed_state;

static void ckpt_hook(cairn_meta *m, void *arg)
{
	seed_state *ss = arg;
	char path[700];
	free(ss->dur);
	free(ss->side);
	ss->dur = ss->side = NULL;
	snprintf(path, sizeof path, "%s/data.mdb", m->dir);
	if (file_read(path, &ss->dur, &ss->durlen))
		ss->fail = 1;
	snprintf(path, sizeof path, "%s/meta.synced", m->dir);
	if (file_read(path, &ss->side, &ss->sidelen))
		ss->fail = 1;
	ss->next_slot = (m->ck_seq + 1) & 1;
	/* what a restore must give back: exactly this state */
	ss->nallowed = 0;
	if (meta_digest(m, ss->allowed[ss->nallowed++]))
		ss->fail = 1;
}

/* One seed of one variant: 0 = no damage, otherwise the verdict (or 100 +
 * the signal that killed the verifier). */
static int run_seed(const char *base, int variant, uint64_t seed)
{
	char live[600], crash[600], path[700];
	uint64_t rng = seed;
	snprintf(live, sizeof live, "%s/%s-%llu", base, vname[variant], (unsigned long long)seed);
	snprintf(crash, sizeof crash, "%s.crash", live);
	REQUIRE(mkdir(live, 0755) == 0 && mkdir(crash, 0755) == 0);

	meta_opts o = t_opts();
	o.map_size = 4 << 20;
	o.flush_interval_ms = 0;  /* the test decides when to sync */
	o.writemap = (int)(t_rand(&rng) & 1);
	/* often a log past its horizon: the checkpoint trims it */
	if (t_rand(&rng) & 1)
		o.wal_keep = 20 + t_rand(&rng) % 100;
	cairn_meta *m;
	REQUIRE_OK(meta_open(live, &o, &m));
	if (variant == V_NOPIN)
		m->test_nopin = 1;
	int n1 = 50 + (int)(t_rand(&rng) % 300), n2 = 10 + (int)(t_rand(&rng) % 200);
	seed_state ss;
	memset(&ss, 0, sizeof ss);
	ss.variant = variant;
	ss.allowed = calloc((size_t)n2 + 2, 32);
	REQUIRE(ss.allowed);
	m->test_ckpt_hook = ckpt_hook;
	m->test_ckpt_arg = &ss;
	for (int i = 0; i < n1; i++)
		random_op(m, &rng);
	REQUIRE_OK(meta_sync(m));
	for (int i = 0; i < n2; i++) {
		random_op(m, &rng);
		if (variant == V_NORESTORE)
			REQUIRE_OK(meta_digest(m, ss.allowed[ss.nallowed++]));
		/* the undo writer's turn: saved pages synced, the rolling pin
		 * moves, the pages freed so far may be reused */
		if (t_rand(&rng) % 8 == 0)
			REQUIRE_OK(meta_undo_flush(m));
	}
	m->test_ckpt_hook = NULL;
	REQUIRE(!ss.fail && ss.dur && ss.side);
	uint8_t *cur;
	size_t curlen;
	snprintf(path, sizeof path, "%s/data.mdb", live);
	REQUIRE(file_read(path, &cur, &curlen) == 0);
	if (variant == V_SAMEBOOT) {
		/* a process crash: nothing committed may be lost */
		REQUIRE_OK(meta_digest(m, ss.allowed[0]));
		ss.nallowed = 1;
	}
	unsigned psize = m->psize;

	/* the crash image */
	size_t imglen = curlen > ss.durlen ? curlen : ss.durlen;
	uint8_t *img = calloc(1, imglen);
	REQUIRE(img);
	memcpy(img, ss.dur, ss.durlen);
	unsigned pct = (unsigned[]){ 10, 50, 90 }[t_rand(&rng) % 3];
	size_t changed = 0;
	if (variant == V_SAMEBOOT) {
		memcpy(img, cur, curlen);
	} else {
		for (size_t off = 0; off + psize <= curlen; off += psize) {
			if (off + psize <= ss.durlen && memcmp(ss.dur + off, cur + off, psize) == 0)
				continue;
			changed++;
			if (t_rand(&rng) % 100 < pct)
				memcpy(img + off, cur + off, psize);
		}
	}
	snprintf(path, sizeof path, "%s/data.mdb", crash);
	REQUIRE(file_write(path, img, imglen) == 0);
	if (variant != V_NORESTORE) {
		size_t stride = ((size_t)80 + 2 * psize + 4095) & ~(size_t)4095;
		if (variant != V_SAMEBOOT && t_rand(&rng) % 3 == 0) {
			/* the next checkpoint was being written: torn slot */
			size_t need = (ss.next_slot + 1) * stride;
			if (ss.sidelen < need) {
				uint8_t *ns = realloc(ss.side, need);
				REQUIRE(ns);
				memset(ns + ss.sidelen, 0, need - ss.sidelen);
				ss.side = ns;
				ss.sidelen = need;
			}
			t_fill(ss.side + ss.next_slot * stride,
			       stride / 2 + t_rand(&rng) % (stride / 2), t_rand(&rng));
		}
		snprintf(path, sizeof path, "%s/meta.synced", crash);
		REQUIRE(file_write(path, ss.side, ss.sidelen) == 0);
		/* the undo files: every flush was synced; sometimes a torn
		 * write of the next one at the end */
		for (int u = 0; u < 2; u++) {
			uint8_t *ub;
			size_t ulen;
			snprintf(path, sizeof path, "%s/meta.undo.%d", live, u);
			REQUIRE(file_read(path, &ub, &ulen) == 0);
			if (variant != V_SAMEBOOT && t_rand(&rng) % 3 == 0) {
				size_t extra = 1 + t_rand(&rng) % (2 * psize);
				uint8_t *nb = realloc(ub, ulen + extra);
				REQUIRE(nb);
				ub = nb;
				t_fill(ub + ulen, extra, t_rand(&rng));
				if (extra >= 8)
					memcpy(ub + ulen, "UNDO", 4);
				ulen += extra;
			}
			snprintf(path, sizeof path, "%s/meta.undo.%d", crash, u);
			REQUIRE(file_write(path, ub, ulen) == 0);
			free(ub);
		}
	}
	CHECK_OK(meta_close(m));

	fflush(NULL);
	int pfd[2];
	REQUIRE(pipe(pfd) == 0);
	pid_t pid = fork();
	REQUIRE(pid >= 0);
	if (pid == 0) {
		char boot[64];
		snprintf(boot, sizeof boot, "test-boot-%llu-after", (unsigned long long)seed);
		if (variant != V_SAMEBOOT)
			setenv("CAIRN_TEST_BOOT_ID", boot, 1);  /* the machine rebooted */
		/* the restore warning, once per seed, is expected */
		cairn_log_set_level(CAIRN_LOG_ERROR);
		close(pfd[0]);
		_exit(verify(crash, (const uint8_t (*)[32])ss.allowed, ss.nallowed, seed, pfd[1]));
	}
	close(pfd[1]);
	uint64_t restored = 0;
	if (read(pfd[0], &restored, sizeof restored) != (ssize_t)sizeof restored)
		restored = 0;
	close(pfd[0]);
	total_restored += restored;
	int st;
	REQUIRE(waitpid(pid, &st, 0) == pid);
	int verdict = WIFEXITED(st) ? WEXITSTATUS(st) : 100 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
	if (verdict && (variant == V_RESTORE || variant == V_SAMEBOOT))
		fprintf(stderr, "seed %llu (%s, writemap %d, %zu changed pages, %u%% reached "
			"the disk): verdict %d\n", (unsigned long long)seed, vname[variant],
			o.writemap, changed, pct, verdict);
	free(ss.dur);
	free(ss.side);
	free(ss.allowed);
	free(cur);
	free(img);
	if (!getenv("T_DEBUG")) {
		t_rmtree(live);
		t_rmtree(crash);
	}
	return verdict;
}

static void test_variant(const char *base, int variant, uint64_t seeds, uint64_t seed0)
{
	uint64_t damaged = 0, hist[8] = { 0 };
	total_restored = 0;
	int control = variant == V_NORESTORE || variant == V_NOPIN;
	/* A negative control must show damage; how often a random image hits
	 * what the switched-off protection guards varies with timing, so a
	 * control runs on past its seeds (bounded) until it has seen damage. */
	for (uint64_t i = 0; i < seeds || (control && !damaged && i < seeds + 300); i++) {
		if (i == seeds)
			printf("%s: no damage in %llu seeds yet, running more\n",
			       vname[variant], (unsigned long long)seeds);
		int v = run_seed(base, variant, seed0 + i);
		if (v) {
			damaged++;
			hist[v >= 100 ? 6 : v < 6 ? v : 7]++;
		}
	}
	printf("%-9s %llu seeds, %llu damaged (digest %llu, open %llu, fsck %llu, "
	       "lmdb %llu, later %llu, crashed %llu)\n", vname[variant],
	       (unsigned long long)seeds, (unsigned long long)damaged,
	       (unsigned long long)hist[1], (unsigned long long)hist[2],
	       (unsigned long long)hist[3], (unsigned long long)hist[4],
	       (unsigned long long)hist[5], (unsigned long long)hist[6]);
	printf("%-9s %llu saved pages put back in all\n", vname[variant],
	       (unsigned long long)total_restored);
	if (variant == V_RESTORE)
		CHECK(total_restored > 0);  /* the undo log was needed, and used */
	if (variant == V_RESTORE || variant == V_SAMEBOOT)
		CHECK(damaged == 0);
	else
		CHECK(damaged > 0);  /* the emulation sees what the scheme prevents */
}

/* A clean close is never rolled back, whatever the boot id; a side file
 * that names more pages than data.mdb has is refused; a garbage side file
 * is only a warning. */
static void test_edges(const char *base)
{
	char dir[600], path[700];
	snprintf(dir, sizeof dir, "%s/edges", base);
	REQUIRE(mkdir(dir, 0755) == 0);
	meta_opts o = t_opts();
	o.map_size = 4 << 20;
	cairn_meta *m;
	REQUIRE_OK(meta_open(dir, &o, &m));
	for (int i = 0; i < 50; i++) {
		char name[32];
		snprintf(name, sizeof name, "c%d", i);
		CHECK_OK(w_create(m, META_ROOT_INO, name, NULL));
	}
	CHECK_OK(meta_close(m));
	setenv("CAIRN_TEST_BOOT_ID", "edges-other-boot", 1);
	REQUIRE_OK(meta_open(dir, &o, &m));
	CHECK_OK(r_lookup(m, META_ROOT_INO, "c49", NULL));
	CHECK_OK(w_create(m, META_ROOT_INO, "late", NULL));
	CHECK_OK(meta_sync(m));
	/* leave without a clean close: copy the files as they are */
	char copy[600], cmd[1400];
	snprintf(copy, sizeof copy, "%s/edges-copy", base);
	snprintf(cmd, sizeof cmd, "cp -r '%s' '%s'", dir, copy);
	REQUIRE(system(cmd) == 0);
	CHECK_OK(meta_close(m));

	/* data.mdb cut short: the saved snapshot cannot be restored */
	snprintf(path, sizeof path, "%s/data.mdb", copy);
	REQUIRE(truncate(path, 8192) == 0);
	setenv("CAIRN_TEST_BOOT_ID", "edges-third-boot", 1);
	CHECK_RC(meta_open(copy, &o, &m), CAIRN_E_CORRUPT);
	CHECK_MSG("shorter than the synced snapshot");

	/* a garbage side file: no restore possible, said so, opens anyway */
	snprintf(path, sizeof path, "%s/meta.synced", dir);
	uint8_t junk[20000];
	t_fill(junk, sizeof junk, 7);
	REQUIRE(file_write(path, junk, sizeof junk) == 0);
	REQUIRE_OK(meta_open(dir, &o, &m));
	CHECK_OK(r_lookup(m, META_ROOT_INO, "late", NULL));
	CHECK_OK(meta_close(m));
	unsetenv("CAIRN_TEST_BOOT_ID");
}

/* Pages the file grows by under the same small update done 2,000 times
 * after a checkpoint, the undo writer's turn every 100 updates. */
static uint64_t reuse_run(const char *dir, int mode)
{
	meta_opts o = t_opts();
	o.map_size = 4 << 20;
	o.flush_interval_ms = 0;  /* the test takes the undo writer's turns */
	o.safe_relaxed = mode;
	cairn_meta *m;
	meta_attr a;
	uint8_t val[64];
	REQUIRE(mkdir(dir, 0755) == 0);
	REQUIRE_OK(meta_open(dir, &o, &m));
	for (int i = 0; i < 200; i++) {
		char name[32];
		snprintf(name, sizeof name, "r%d", i);
		CHECK_OK(w_create(m, META_ROOT_INO, name, NULL));
		if (i % 10 == 0)
			CHECK_OK(meta_undo_flush(m));
	}
	REQUIRE_OK(r_lookup(m, META_ROOT_INO, "r7", &a));
	REQUIRE_OK(meta_sync(m));
	MDB_envinfo before, after;
	REQUIRE(mdb_env_info(m->env, &before) == 0);
	for (int i = 0; i < 2000; i++) {
		t_fill(val, sizeof val, (uint64_t)i);
		CHECK_OK(w_xset(m, a.ino, "user.x", val, sizeof val, 0));
		if (i % 100 == 0)
			CHECK_OK(meta_undo_flush(m));
	}
	REQUIRE(mdb_env_info(m->env, &after) == 0);
	CHECK_OK(meta_close(m));
	return after.me_last_pgno - before.me_last_pgno;
}

/* The WAL at its horizon (wal_keep), so that every commit could trim the
 * oldest record: 2,000 updates after a checkpoint, the undo writer's turn
 * after the first update and then every 100, a checkpoint every 500.  Returns the pages the file grew by;
 * *saved: the pages of synced snapshots saved in the undo log meanwhile. */
static uint64_t trim_run(const char *dir, int mode, uint64_t *saved)
{
	meta_opts o = t_opts();
	o.map_size = 8 << 20;
	o.flush_interval_ms = 0;  /* the test takes the turns */
	o.safe_relaxed = mode;
	o.wal_keep = 1000;
	cairn_meta *m;
	meta_attr a;
	uint8_t val[64];
	REQUIRE(mkdir(dir, 0755) == 0);
	REQUIRE_OK(meta_open(dir, &o, &m));
	for (int i = 0; i < 1500; i++) {
		char name[32];
		snprintf(name, sizeof name, "w%d", i);
		CHECK_OK(w_create(m, META_ROOT_INO, name, NULL));
		if (i % 10 == 0)
			CHECK_OK(meta_undo_flush(m));
	}
	REQUIRE_OK(r_lookup(m, META_ROOT_INO, "w7", &a));
	REQUIRE_OK(meta_sync(m));
	MDB_envinfo before, after;
	REQUIRE(mdb_env_info(m->env, &before) == 0);
	uint64_t rec = UR_HDR_T + m->psize, off = m->u_off;
	*saved = 0;
	for (int i = 1; i <= 2000; i++) {
		t_fill(val, sizeof val, (uint64_t)i);
		CHECK_OK(w_xset(m, a.ino, "user.x", val, sizeof val, 0));
		/* right after the first update of an epoch (which saves
		 * the path it copies), then every 100 */
		if (i % 100 == 1) {
			CHECK_OK(meta_undo_flush(m));
			*saved += (m->u_off - off) / rec;
			off = m->u_off;
		}
		if (i % 500 == 0) {
			CHECK_OK(meta_sync(m));
			off = m->u_off;  /* a new epoch: its undo file from 0 */
		}
	}
	REQUIRE(mdb_env_info(m->env, &after) == 0);
	uint64_t f, l;
	CHECK_OK(meta_wal_bounds(m, &f, &l));
	CHECK(l - f < 1000 + 500 + 10);  /* still bounded */
	CHECK_OK(meta_close(m));
	return after.me_last_pgno - before.me_last_pgno;
}

/* Trimming the WAL frees pages of the synced snapshot (its oldest
 * records).  Done a little by every commit, it kept pages to save coming
 * all the time, so the rolling pin stayed one undo flush behind and LMDB
 * took fresh pages meanwhile: here 182 pages saved and the file grew by
 * 1,177 pages against 0 in UNSAFE mode.  Checkpoints now trim right before
 * their capture, where nothing needs saving: 31 saved (the paths the first
 * update of each epoch copies), no growth.  Checkpoints trim right
 * before their capture instead, where nothing needs saving. */
static void test_trim_reuse(const char *base)
{
	char dir[600];
	uint64_t su, sp;
	snprintf(dir, sizeof dir, "%s/trim-unsafe", base);
	uint64_t unsafe = trim_run(dir, META_RELAXED_UNSAFE, &su);
	snprintf(dir, sizeof dir, "%s/trim-pinned", base);
	uint64_t pinned = trim_run(dir, META_RELAXED_PINNED, &sp);
	printf("trim      grew by %llu pages pinned, %llu unsafe; %llu pages saved\n",
	       (unsigned long long)pinned, (unsigned long long)unsafe, (unsigned long long)sp);
	CHECK(pinned <= unsafe + 32);
	CHECK(sp <= 64);
}

/* Once the pages of the synced snapshot a commit freed are saved durably,
 * nothing is left for the pin to protect, and LMDB must reuse freed pages
 * as it does without a pin: the file grows no more than in UNSAFE mode.
 * (With the pin moved only by the undo writer, every update between two
 * of its turns took fresh pages: hundreds more here.) */
static void test_reuse(const char *base)
{
	char dir[600];
	snprintf(dir, sizeof dir, "%s/reuse-unsafe", base);
	uint64_t unsafe = reuse_run(dir, META_RELAXED_UNSAFE);
	snprintf(dir, sizeof dir, "%s/reuse-pinned", base);
	uint64_t pinned = reuse_run(dir, META_RELAXED_PINNED);
	printf("reuse     grew by %llu pages pinned, %llu unsafe\n", (unsigned long long)pinned,
	       (unsigned long long)unsafe);
	CHECK(pinned <= unsafe + 32);
}

int main(void)
{
	uint64_t seed = t_seed();
	const char *base = t_tmpdir("meta_oscrash");
	test_edges(base);
	test_reuse(base);
	test_trim_reuse(base);
	test_variant(base, V_RESTORE, t_scaled(40), seed);
	test_variant(base, V_SAMEBOOT, t_scaled(5), seed + 1000);
	test_variant(base, V_NORESTORE, t_scaled(12), seed + 2000);
	test_variant(base, V_NOPIN, t_scaled(12), seed + 3000);
	if (!getenv("T_DEBUG"))
		t_rmtree(base);
	return t_done();
}
