/*
 * meta_env.c - opening and closing the LMDB environment, the pool of read
 * transactions, map growth, open-file counts and fault injection.
 *
 * LMDB specifics handled here:
 *   - MDB_NOTLS: read transactions are not tied to threads, so they are
 *     pooled (reset, then renewed) instead of being created per call.  A
 *     transaction given back while its snapshot is still the newest is
 *     pooled *live* (not reset): the next begin takes it as it is, when no
 *     commit came in between, and skips the renew and the lookups of each
 *     table's root that LMDB makes in every new transaction (about a
 *     third of a one-lookup transaction).  The leader resets the live ones
 *     after each commit (meta_pool_stale), so they never hold back the
 *     reuse of freed pages.  Readers work on the shard of their CPU (a
 *     count of readers and one cached transaction per cache line), so
 *     threads that read at once share no written cache line.
 *   - Key comparison: every table is opened with meta_key_cmp, LMDB's
 *     default order without glibc's memcmp (below says why).
 *   - Reader slots: on MDB_READERS_FULL, stale slots of dead processes are
 *     cleared with mdb_reader_check() and the begin is retried once.
 *   - Map size: a large map is set at open (and, with MDB_WRITEMAP, allocated
 *     on disk: a hole would turn a full disk into SIGBUS); when a commit hits MDB_MAP_FULL
 *     the group-commit leader aborts, doubles the map (up to opts.map_max)
 *     and reruns the batch.  mdb_env_set_mapsize() needs no transaction to
 *     be active in the process: growth takes map_lock exclusive and waits
 *     until the readers counted in the shards are gone; a reader that
 *     finds a growth under way waits on map_lock (image copies hold it
 *     shared for the whole copy).
 *   - Durability flags: the environment runs with MDB_NOSYNC (or
 *     MDB_NOMETASYNC with opts.safe_relaxed = META_RELAXED_SYNC_EACH);
 *     syncing is meta_txn.c's job, checkpoints (the default mode) are
 *     meta_ckpt.c's: its recovery runs here before LMDB opens the file.
 *   - MDB_WRITEMAP (opts.writemap, default on): commits write through the
 *     shared map instead of pwrite()ing every dirty page, which triples
 *     small-transaction throughput; the price is that a wild pointer write
 *     in this process could reach the database (docs/metadata.md).
 *
 * Lifecycle:
 *
 *   meta_open --> [open] --meta_close--> (freed)
 *                   |  ^
 *        fsync fails|  | (no way back: reopen)
 *                   v  |
 *                [failed] -- writes refused with CAIRN_E_IO, reads work
 *
 * Invariants:
 *   1. One process owns an environment: meta.lock is flock()ed at open.
 *   2. A read transaction in use is counted in its shard (t->shard) from
 *      before it is taken until after it is given back; no shard counts a
 *      reader while rs_growing is set and the map is resized.
 *   3. The root inode (1) exists in every formatted environment.
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "meta_int.h"

const char *const meta_table_names[MT_COUNT] = {
	"inode", "dirent", "dcookie", "extent", "emap", "chunk", "chash",
	"seg", "xattr", "snap", "orphan", "counter", "segchunk", "wal", "local",
};

int64_t meta_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int meta_lmdb_err(int err, const char *what)
{
	int rc;
	switch (err) {
	case MDB_NOTFOUND: rc = CAIRN_E_NOTFOUND; break;
	case MDB_MAP_FULL: rc = CAIRN_E_NOSPC; break;
	case ENOSPC: rc = CAIRN_E_NOSPC; break;
	case MDB_READERS_FULL: rc = CAIRN_E_BUSY; break;
	case MDB_VERSION_MISMATCH: rc = CAIRN_E_VERSION; break;
	case MDB_INVALID: case MDB_CORRUPTED: case MDB_PAGE_NOTFOUND:
		rc = CAIRN_E_CORRUPT; break;
	case ENOMEM: rc = CAIRN_E_NOMEM; break;
	case MDB_BAD_VALSIZE: rc = CAIRN_E_RANGE; break;
	default: rc = CAIRN_E_IO; break;
	}
	return cairn_errf(rc, "%s: %s", what, mdb_strerror(err));
}

void meta_fault_set(cairn_meta *m, int kind, int n, int err)
{
	m->fault_at[kind] = n;
	m->fault_errno[kind] = err;
	m->fault_count[kind] = 0;
}

int meta_fault_hit(cairn_meta *m, int kind)
{
	if (!m->fault_at[kind])
		return 0;
	if (++m->fault_count[kind] != m->fault_at[kind])
		return 0;
	m->fault_at[kind] = 0;
	return m->fault_errno[kind];
}

/* A build knob for comparing the modes in the benchmark
 * (-DMETA_DEFAULT_SAFE_RELAXED=1); not for production builds. */
#ifndef META_DEFAULT_SAFE_RELAXED
#define META_DEFAULT_SAFE_RELAXED META_RELAXED_PINNED
#endif

void meta_opts_init(meta_opts *o)
{
	memset(o, 0, sizeof *o);
	o->map_size = 256ULL << 20;
	o->map_max = 1ULL << 40;
	o->max_readers = 510;
	o->flush_interval_ms = 1000;
	o->wal_keep = 100000;
	o->writemap = 1;
	/* The brief: relaxed never corrupts the database.  MDB_NOSYNC alone
	 * can, on an OS crash (docs/metadata.md); pinned checkpoints make it
	 * safe without a sync per commit. */
	o->safe_relaxed = META_DEFAULT_SAFE_RELAXED;
}

/* With MDB_WRITEMAP, LMDB writes through a shared map of a sparse file: a
 * page fault on a hole when the disk is full is a SIGBUS, not an error.  So
 * the whole map is allocated up front (and again after each growth): a full
 * disk then shows up here, as CAIRN_E_NOSPC, before any commit needs it. */
static int env_prealloc(cairn_meta *m, uint64_t size)
{
	int fd, err;
	if (!m->opts.writemap)
		return 0;
	if ((err = mdb_env_get_fd(m->env, &fd)))
		return meta_lmdb_err(err, "metadata file descriptor");
	if ((err = meta_fault_hit(m, MF_ALLOC)))
		errno = err;
	else if (fallocate(fd, 0, 0, (off_t)size) == 0)
		return 0;
	if (errno == EOPNOTSUPP) {
		static int once;
		cairn_log_once(&once, CAIRN_LOG_WARN, "meta",
			       "%s: cannot preallocate the metadata map; a full disk may "
			       "kill the process (SIGBUS)", m->dir);
		return 0;
	}
	return cairn_errf(cairn_rc_from_errno(errno), "allocate %llu MiB for metadata in %s: %s",
			  (unsigned long long)(size >> 20), m->dir, strerror(errno));
}

/* ---- reader shards ----
 *
 * A read transaction used to take map_lock shared and pool_lock twice, and
 * the pool handed transactions from core to core in LIFO order: with
 * several threads reading at once, those cache lines moved between the
 * cores on every lookup.  Now a reader works on the shard of the CPU it
 * runs on (one cache line each): the shard's `active` count stands in for
 * map_lock's read side (growth sets rs_growing, then waits until every
 * count is 0; a reader that sees rs_growing steps back and waits on
 * map_lock, which growth holds exclusive), and its `slot` caches one
 * pooled transaction, so a thread that begins and ends read transactions
 * in a loop touches its shard's line and LMDB's read-mostly lines only.
 * What does not fit in a slot goes to the pool array (pool_lock), as
 * before.  A slot holds a meta_txn pointer with bit 0 set when the
 * transaction is live (not reset); whoever exchanges it out owns it. */

static unsigned rs_pick(void)
{
	static _Thread_local unsigned mine; /* fallback: a shard per thread, +1 */
	static unsigned next;
	int cpu = sched_getcpu();
	if (cpu >= 0)
		return (unsigned)cpu % META_RSHARDS;
	if (!mine)
		mine = __atomic_add_fetch(&next, 1, __ATOMIC_RELAXED) % META_RSHARDS + 1;
	return mine - 1;
}

/* Count a reader in shard si; while a growth of the map is under way, wait
 * for it first. */
static void rs_enter(cairn_meta *m, unsigned si)
{
	meta_rshard *s = &m->rshard[si];
	for (;;) {
		/* Dekker with meta_env_grow: either it sees this count or
		 * this sees rs_growing (both sequentially consistent). */
		__atomic_add_fetch(&s->active, 1, __ATOMIC_SEQ_CST);
		if (!__atomic_load_n(&m->rs_growing, __ATOMIC_SEQ_CST))
			return;
		__atomic_sub_fetch(&s->active, 1, __ATOMIC_SEQ_CST);
		pthread_rwlock_rdlock(&m->map_lock);
		pthread_rwlock_unlock(&m->map_lock);
	}
}

static void rs_exit(cairn_meta *m, unsigned si)
{
	__atomic_sub_fetch(&m->rshard[si].active, 1, __ATOMIC_SEQ_CST);
}

/* Growth: wait until no read transaction is in use. */
static void rs_wait_idle(cairn_meta *m)
{
	for (;;) {
		unsigned busy = 0;
		for (unsigned i = 0; i < META_RSHARDS; i++)
			busy += __atomic_load_n(&m->rshard[i].active, __ATOMIC_SEQ_CST);
		if (!busy)
			return;
		struct timespec ts = { 0, 50 * 1000 };
		nanosleep(&ts, NULL);
	}
}

/* Cache t (live or reset) in shard si's slot; 0 if the slot is taken. */
static int rs_put(cairn_meta *m, unsigned si, meta_txn *t, int live)
{
	uintptr_t none = 0, v = (uintptr_t)t | (live ? 1u : 0u);
	if (!__atomic_compare_exchange_n(&m->rshard[si].slot, &none, v, 0, __ATOMIC_SEQ_CST,
					 __ATOMIC_RELAXED))
		return 0;
	/* After the slot (sequentially consistent, like meta_pool_stale's
	 * exchange of the flag and its reads of the slots): either the
	 * leader's next pass sees this slot or the flag stays set. */
	if (live && !__atomic_load_n(&m->rs_live, __ATOMIC_SEQ_CST))
		__atomic_store_n(&m->rs_live, 1, __ATOMIC_SEQ_CST);
	return 1;
}

/* Under pool_lock: keep t in the pool array; if it is full, give t back
 * (its reader slot no longer counted) for the caller to close. */
static meta_txn *pool_push_locked(cairn_meta *m, meta_txn *t, int live)
{
	if (m->npool < m->cappool) {
		t->live = live;
		if (live)
			__atomic_add_fetch(&m->nlive, 1, __ATOMIC_RELEASE);
		m->pool[m->npool++] = t;
		return NULL;
	}
	m->nslots--;
	return t;
}

/* Keep a reset transaction in slot si if free, else in the pool. */
static void rs_keep_reset(cairn_meta *m, unsigned si, meta_txn *t)
{
	if (rs_put(m, si, t, 0))
		return;
	pthread_mutex_lock(&m->pool_lock);
	t = pool_push_locked(m, t, 0);
	pthread_mutex_unlock(&m->pool_lock);
	if (t) {
		mdb_txn_abort(t->txn);
		free(t);
	}
}

/* Reset the live transactions cached in the slots. */
static void rs_reset_live(cairn_meta *m)
{
	for (unsigned i = 0; i < META_RSHARDS; i++) {
		uintptr_t v = __atomic_load_n(&m->rshard[i].slot, __ATOMIC_SEQ_CST);
		if (!(v & 1))
			continue;
		v = __atomic_exchange_n(&m->rshard[i].slot, 0, __ATOMIC_SEQ_CST);
		if (!v)
			continue;  /* a reader took it meanwhile */
		meta_txn *t = (meta_txn *)(v & ~(uintptr_t)1);
		if (v & 1)
			mdb_txn_reset(t->txn);
		rs_keep_reset(m, i, t);
	}
}

/* Close every pooled transaction (meta_close, failed meta_open). */
static void rs_close_all(cairn_meta *m)
{
	for (unsigned i = 0; m->rshard && i < META_RSHARDS; i++) {
		uintptr_t v = __atomic_exchange_n(&m->rshard[i].slot, 0, __ATOMIC_SEQ_CST);
		if (v) {
			meta_txn *t = (meta_txn *)(v & ~(uintptr_t)1);
			mdb_txn_abort(t->txn);
			free(t);
		}
	}
	for (size_t i = 0; i < m->npool; i++) {
		mdb_txn_abort(m->pool[i]->txn);
		free(m->pool[i]);
	}
	m->npool = 0;
}

static void pool_reset_live(cairn_meta *m);

int meta_env_grow(cairn_meta *m)
{
	int rc = 0;
	if (m->map_size >= m->opts.map_max)
		return cairn_errf(CAIRN_E_NOSPC, "metadata map full at %llu MiB (map_max)",
				  (unsigned long long)(m->map_size >> 20));
	uint64_t nsz = m->map_size * 2;
	if (nsz > m->opts.map_max)
		nsz = m->opts.map_max;
	pthread_rwlock_wrlock(&m->map_lock);
	/* no transaction may be active in the process: readers drain (new
	 * ones wait on map_lock), live pooled ones are reset */
	__atomic_store_n(&m->rs_growing, 1, __ATOMIC_SEQ_CST);
	rs_wait_idle(m);
	rs_reset_live(m);
	pthread_mutex_lock(&m->pool_lock);
	pool_reset_live(m);
	pthread_mutex_unlock(&m->pool_lock);
	int err = mdb_env_set_mapsize(m->env, (size_t)nsz);
	if (err) {
		rc = meta_lmdb_err(err, "grow metadata map");
	} else if ((rc = env_prealloc(m, nsz))) {
		/* back to the old size: LMDB truncates the file again */
		err = mdb_env_set_mapsize(m->env, (size_t)m->map_size);
		if (err)
			CAIRN_ERROR("meta", "shrinking the map back: %s", mdb_strerror(err));
	} else {
		CAIRN_INFO("meta", "map grown from %llu to %llu MiB",
			   (unsigned long long)(m->map_size >> 20),
			   (unsigned long long)(nsz >> 20));
		m->map_size = nsz;
	}
	__atomic_store_n(&m->rs_growing, 0, __ATOMIC_SEQ_CST);
	pthread_rwlock_unlock(&m->map_lock);
	return rc;
}

/* ---- read transactions ---- */

/* The newest committed transaction (from LMDB's meta pages; 0 if unknown,
 * which matches no snapshot). */
static uint64_t env_last_txnid(cairn_meta *m)
{
	MDB_envinfo info;
	if (mdb_env_info(m->env, &info))
		return 0;
	return info.me_last_txnid;
}

/* Under pool_lock. */
static void pool_reset_live(cairn_meta *m)
{
	for (size_t i = 0; i < m->npool; i++)
		if (m->pool[i]->live) {
			mdb_txn_reset(m->pool[i]->txn);
			m->pool[i]->live = 0;
		}
	__atomic_store_n(&m->nlive, 0, __ATOMIC_RELEASE);
}

void meta_pool_stale(cairn_meta *m)
{
	/* A reader giving a transaction back races with this: it may pool
	 * one live just after a commit it checked too early; that one holds
	 * its snapshot until the next commit or begin, and is never used
	 * for a read that began after the commit (meta_read_begin checks). */
	if (__atomic_load_n(&m->rs_live, __ATOMIC_RELAXED) &&
	    __atomic_exchange_n(&m->rs_live, 0, __ATOMIC_SEQ_CST))
		rs_reset_live(m);
	if (!__atomic_load_n(&m->nlive, __ATOMIC_ACQUIRE))
		return;
	pthread_mutex_lock(&m->pool_lock);
	pool_reset_live(m);
	pthread_mutex_unlock(&m->pool_lock);
}

int meta_read_begin(cairn_meta *m, meta_txn **out)
{
	meta_txn *t = NULL;
	int rc = 0, err, live = 0;
	unsigned si = rs_pick();
	rs_enter(m, si);
	uintptr_t v = __atomic_exchange_n(&m->rshard[si].slot, 0, __ATOMIC_SEQ_CST);
	if (v) {
		t = (meta_txn *)(v & ~(uintptr_t)1);
		live = (int)(v & 1);
	} else {
		pthread_mutex_lock(&m->pool_lock);
		if (m->npool) {
			t = m->pool[--m->npool];
			live = t->live;
			if (live)
				__atomic_sub_fetch(&m->nlive, 1, __ATOMIC_RELEASE);
			t->live = 0;
		}
		pthread_mutex_unlock(&m->pool_lock);
	}
	/* None here or in the array: one cached by another CPU's shard
	 * (this thread may have moved) before a new one takes a reader
	 * slot, or max_readers would count idle transactions. */
	for (unsigned k = 1; !t && k < META_RSHARDS; k++) {
		meta_rshard *o = &m->rshard[(si + k) % META_RSHARDS];
		if (!__atomic_load_n(&o->slot, __ATOMIC_RELAXED))
			continue;
		v = __atomic_exchange_n(&o->slot, 0, __ATOMIC_SEQ_CST);
		t = (meta_txn *)(v & ~(uintptr_t)1);
		live = (int)(v & 1);
	}
	if (t && live) {
		/* Live: still the newest snapshot (read after we took it, so a
		 * commit that completed before this call is seen)?  Then it is
		 * what a renew would give. */
		if ((uint64_t)mdb_txn_id(t->txn) == env_last_txnid(m)) {
			t->shard = si;
			*out = t;
			return 0;
		}
		mdb_txn_reset(t->txn);
	}
	if (t) {
		t->lmdb_err = 0;
		err = mdb_txn_renew(t->txn);
		if (err) {
			mdb_txn_abort(t->txn);
			free(t);
			t = NULL;
			pthread_mutex_lock(&m->pool_lock);
			m->nslots--;
			pthread_mutex_unlock(&m->pool_lock);
		}
	}
	if (!t) {
		t = calloc(1, sizeof *t);
		if (!t) {
			rc = cairn_errf(CAIRN_E_NOMEM, "read transaction");
			goto fail;
		}
		t->m = m;
		/* max_readers counts the caller's slots (in use or pooled): the
		 * checkpoint pins have their own (META_CKPT_READERS) */
		pthread_mutex_lock(&m->pool_lock);
		int full = m->nslots >= m->opts.max_readers;
		if (!full)
			m->nslots++;
		pthread_mutex_unlock(&m->pool_lock);
		if (full) {
			free(t);
			rc = meta_lmdb_err(MDB_READERS_FULL, "begin read transaction");
			goto fail;
		}
		for (int tries = 0;; tries++) {
			err = mdb_txn_begin(m->env, NULL, MDB_RDONLY, &t->txn);
			if (err == MDB_READERS_FULL && tries == 0) {
				int dead = 0;
				/* Slots of crashed processes are reclaimed here. */
				if (mdb_reader_check(m->env, &dead))
					dead = -1;
				CAIRN_WARN("meta", "reader slots full; cleared %d stale", dead);
				continue;
			}
			break;
		}
		if (err) {
			free(t);
			pthread_mutex_lock(&m->pool_lock);
			m->nslots--;
			pthread_mutex_unlock(&m->pool_lock);
			rc = meta_lmdb_err(err, "begin read transaction");
			goto fail;
		}
	}
	t->m = m;
	t->write = 0;
	t->shard = si;
	*out = t;
	return 0;
fail:
	rs_exit(m, si);
	return rc;
}

void meta_read_end(meta_txn *t)
{
	if (!t)
		return;
	cairn_meta *m = t->m;
	unsigned si = t->shard;
	/* keep it live if no commit came since it began (and no LMDB call
	 * failed in it) */
	int live = !t->lmdb_err && (uint64_t)mdb_txn_id(t->txn) == env_last_txnid(m);
	if (!live)
		mdb_txn_reset(t->txn);
	/* the slot of the CPU it ends on: the next reader there finds it in
	 * its cache */
	if (!rs_put(m, rs_pick(), t, live)) {
		pthread_mutex_lock(&m->pool_lock);
		t = pool_push_locked(m, t, live);
		pthread_mutex_unlock(&m->pool_lock);
		if (t) {
			mdb_txn_abort(t->txn);
			free(t);
		}
	}
	/* last: a growth waiting for this reader may now reset the slot */
	rs_exit(m, si);
}

cairn_meta *meta_txn_env(meta_txn *t)
{
	return t->m;
}

/* ---- open-file counts ---- */

static size_t open_slot(cairn_meta *m, uint64_t ino)
{
	size_t mask = m->open_cap - 1, i = (size_t)(ino * 0x9e3779b97f4a7c15ULL) & mask;
	while (m->open_ino[i] && m->open_ino[i] != ino)
		i = (i + 1) & mask;
	return i;
}

static int open_grow(cairn_meta *m)
{
	size_t ncap = m->open_cap ? m->open_cap * 2 : 64;
	uint64_t *oi = m->open_ino;
	uint32_t *oc = m->open_cnt;
	size_t ocap = m->open_cap;
	m->open_ino = calloc(ncap, sizeof *m->open_ino);
	m->open_cnt = calloc(ncap, sizeof *m->open_cnt);
	if (!m->open_ino || !m->open_cnt) {
		free(m->open_ino);
		free(m->open_cnt);
		m->open_ino = oi;
		m->open_cnt = oc;
		return cairn_errf(CAIRN_E_NOMEM, "open-file table");
	}
	m->open_cap = ncap;
	for (size_t i = 0; i < ocap; i++)
		if (oi[i]) {
			size_t s = open_slot(m, oi[i]);
			m->open_ino[s] = oi[i];
			m->open_cnt[s] = oc[i];
		}
	free(oi);
	free(oc);
	return 0;
}

int meta_open_count(cairn_meta *m, uint64_t ino)
{
	int n = 0;
	pthread_mutex_lock(&m->open_lock);
	if (m->open_cap) {
		size_t s = open_slot(m, ino);
		if (m->open_ino[s])
			n = (int)m->open_cnt[s];
	}
	pthread_mutex_unlock(&m->open_lock);
	return n;
}

int meta_ino_open(cairn_meta *m, uint64_t ino)
{
	int rc = 0;
	if (!ino)
		return cairn_errf(CAIRN_E_INVAL, "open of inode 0");
	pthread_mutex_lock(&m->open_lock);
	if ((m->open_n + 1) * 2 > m->open_cap && (rc = open_grow(m)))
		goto out;
	size_t s = open_slot(m, ino);
	if (!m->open_ino[s]) {
		m->open_ino[s] = ino;
		m->open_cnt[s] = 0;
		m->open_n++;
	}
	m->open_cnt[s]++;
out:
	pthread_mutex_unlock(&m->open_lock);
	return rc;
}

static int orphan_free_fn(meta_txn *t, void *arg)
{
	uint64_t ino = *(uint64_t *)arg;
	uint8_t k[8];
	MDB_val v;
	mi_inode in;
	be64(k, ino);
	int rc = mt_get(t, MT_ORPHAN, k, 8, &v);
	if (rc == CAIRN_E_NOTFOUND)
		return 0;  /* relinked or already freed */
	if (rc)
		return rc;
	if (meta_open_count(t->m, ino) > 0)
		return 0;  /* reopened meanwhile */
	rc = mi_inode_get(t, ino, &in);
	if (!rc && in.a.nlink == 0)
		rc = mx_inode_free(t, &in);
	if (!rc)
		rc = mt_del(t, MT_ORPHAN, k, 8);
	return rc;
}

int meta_ino_close(cairn_meta *m, uint64_t ino)
{
	int last = 0;
	pthread_mutex_lock(&m->open_lock);
	size_t s = m->open_cap ? open_slot(m, ino) : 0;
	if (!m->open_cap || !m->open_ino[s]) {
		pthread_mutex_unlock(&m->open_lock);
		return cairn_errf(CAIRN_E_BADF, "close of inode %llu that is not open",
				  (unsigned long long)ino);
	}
	if (--m->open_cnt[s] == 0) {
		last = 1;
		/* backward-shift deletion keeps linear probing chains intact */
		size_t mask = m->open_cap - 1, i = s, j = s;
		m->open_ino[i] = 0;
		m->open_n--;
		for (;;) {
			j = (j + 1) & mask;
			if (!m->open_ino[j])
				break;
			size_t h = (size_t)(m->open_ino[j] * 0x9e3779b97f4a7c15ULL) & mask;
			if ((j > i && (h <= i || h > j)) || (j < i && (h <= i && h > j))) {
				m->open_ino[i] = m->open_ino[j];
				m->open_cnt[i] = m->open_cnt[j];
				m->open_ino[j] = 0;
				i = j;
			}
		}
	}
	pthread_mutex_unlock(&m->open_lock);
	if (!last)
		return 0;
	int rc = meta_write(m, META_RELAXED, META_OP_ORPHAN, orphan_free_fn, &ino, NULL);
	if (rc)
		return cairn_err_wrap(rc, "free unlinked inode %llu", (unsigned long long)ino);
	return 0;
}

/* Orphans are inodes unlinked while open; after a restart nobody has them
 * open any more. */
static int orphan_all_fn(meta_txn *t, void *arg)
{
	(void)arg;
	MDB_cursor *c;
	MDB_val k, v;
	int rc = mt_cursor(t, MT_ORPHAN, &c);
	if (rc)
		return rc;
	uint64_t inos[256];
	size_t n = 0;
	int err = mdb_cursor_get(c, &k, &v, MDB_FIRST);
	while (!err && n < 256) {
		if (k.mv_size == 8)
			inos[n++] = rbe64(k.mv_data);
		err = mdb_cursor_get(c, &k, &v, MDB_NEXT);
	}
	mdb_cursor_close(c);
	for (size_t i = 0; i < n && !rc; i++) {
		uint8_t kb[8];
		mi_inode in;
		be64(kb, inos[i]);
		rc = mi_inode_get(t, inos[i], &in);
		if (rc == CAIRN_E_NOTFOUND)
			rc = 0;
		else if (!rc && in.a.nlink == 0)
			rc = mx_inode_free(t, &in);
		if (!rc)
			rc = mt_del(t, MT_ORPHAN, kb, 8);
	}
	return rc;
}

int meta_orphan_cleanup(cairn_meta *m)
{
	for (;;) {
		meta_txn *t;
		MDB_val k, v;
		MDB_cursor *c;
		int rc = meta_read_begin(m, &t);
		if (rc)
			return rc;
		rc = mt_cursor(t, MT_ORPHAN, &c);
		int any = 0;
		if (!rc) {
			any = mdb_cursor_get(c, &k, &v, MDB_FIRST) == 0;
			mdb_cursor_close(c);
		}
		meta_read_end(t);
		if (rc || !any)
			return rc;
		rc = meta_write(m, META_SYNCED, META_OP_ORPHAN, orphan_all_fn, NULL, NULL);
		if (rc)
			return cairn_err_wrap(rc, "free orphaned inodes");
	}
}

/* ---- open / close ---- */

static int format_fn(meta_txn *t, void *arg)
{
	(void)arg;
	mi_inode root;
	int rc;
	memset(&root, 0, sizeof root);
	root.a.ino = META_ROOT_INO;
	root.a.mode = S_IFDIR | 0755;
	root.a.nlink = 2;
	root.a.atime_ns = root.a.mtime_ns = root.a.ctime_ns = root.a.btime_ns = t->now;
	root.next_cookie = 1;
	if ((rc = mt_counter_add(t, MC_FORMAT, META_SCHEMA_VERSION)))
		return rc;
	if ((rc = mt_counter_add(t, MC_NEXT_INO, META_ROOT_INO + 1)))
		return rc;
	for (int id = MC_NEXT_CHUNK; id <= MC_NEXT_EMAP; id++)
		if ((rc = mt_counter_add(t, id, 1)))
			return rc;
	return mi_inode_put(t, NULL, &root);
}

/* LMDB's default key order for our tables (mdb_cmp_memn: unsigned bytes,
 * a proper prefix first), compared eight bytes at a time with plain loads.
 * LMDB's own calls glibc's memcmp, whose AVX-512 version for short lengths
 * (masked vector loads) took ~20 ns per call on the reference VM; a lookup
 * makes ~15 comparisons per tree, and this one cut a lookup from ~700 to
 * ~400 ns with the pages in cache (docs/metadata.md, "Readers").  The order
 * is exactly the default's, so files written before, LMDB's tools
 * (mdb_stat, mdb_dump) and this build agree on every tree. */
int meta_key_cmp(const MDB_val *a, const MDB_val *b)
{
	const uint8_t *p = a->mv_data, *q = b->mv_data;
	size_t n = a->mv_size < b->mv_size ? a->mv_size : b->mv_size, i = 0;
	for (; i + 8 <= n; i += 8) {
		uint64_t x = rbe64(p + i), y = rbe64(q + i);
		if (x != y)
			return x < y ? -1 : 1;
	}
	for (; i < n; i++)
		if (p[i] != q[i])
			return p[i] < q[i] ? -1 : 1;
	return a->mv_size < b->mv_size ? -1 : a->mv_size > b->mv_size;
}

static int env_setup(cairn_meta *m)
{
	MDB_txn *txn;
	int err = mdb_txn_begin(m->env, NULL, 0, &txn);
	if (err)
		return meta_lmdb_err(err, "begin setup transaction");
	for (int i = 0; i < MT_COUNT; i++) {
		err = mdb_dbi_open(txn, meta_table_names[i], MDB_CREATE, &m->dbi[i]);
		/* before any access to the table, as LMDB requires */
		if (!err)
			err = mdb_set_compare(txn, m->dbi[i], meta_key_cmp);
		if (err) {
			mdb_txn_abort(txn);
			return meta_lmdb_err(err, meta_table_names[i]);
		}
	}
	/* last LSN: kept in the local table, survives trimming */
	MDB_val k = { 8, "last_lsn" }, v;
	err = mdb_get(txn, m->dbi[MT_LOCAL], &k, &v);
	if (!err && v.mv_size == 8)
		m->last_lsn = rle64(v.mv_data);
	size_t txnid = mdb_txn_id(txn);
	err = mdb_txn_commit(txn);
	if (err)
		return meta_lmdb_err(err, "commit setup transaction");
	/* like every commit: pages of the checkpoint's snapshot it freed are
	 * saved first (meta_ckpt.c) */
	return meta_undo_note(m, txnid);
}

int meta_open(const char *dir, const meta_opts *opts, cairn_meta **out)
{
	cairn_meta *m = NULL;
	int rc = 0, err, lockfd = -1;
	char path[600];

	*out = NULL;
	if (!dir || strlen(dir) >= sizeof m->dir)
		return cairn_errf(CAIRN_E_INVAL, "metadata directory path missing or too long");
	m = calloc(1, sizeof *m);
	if (!m)
		return cairn_errf(CAIRN_E_NOMEM, "metadata environment");
	if (opts)
		m->opts = *opts;
	else
		meta_opts_init(&m->opts);
	if (m->opts.map_size < (1u << 20))
		m->opts.map_size = 1u << 20;
	if (m->opts.map_max < m->opts.map_size)
		m->opts.map_max = m->opts.map_size;
	if (!m->opts.max_readers)
		m->opts.max_readers = 510;
	if (m->opts.safe_relaxed < META_RELAXED_UNSAFE || m->opts.safe_relaxed > META_RELAXED_PINNED) {
		int mode = m->opts.safe_relaxed;
		free(m);
		return cairn_errf(CAIRN_E_INVAL, "safe_relaxed %d is not a META_RELAXED_* mode", mode);
	}
	m->env_fd = -1;
	m->ck_fd = -1;
	m->u_fd[0] = m->u_fd[1] = -1;
	snprintf(m->dir, sizeof m->dir, "%s", dir);
	pthread_rwlockattr_t ra;
	pthread_rwlockattr_init(&ra);
	/* writer preference: growth must not starve behind a reader stream */
	pthread_rwlockattr_setkind_np(&ra, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&m->map_lock, &ra);
	pthread_rwlockattr_destroy(&ra);
	pthread_mutex_init(&m->pool_lock, NULL);
	pthread_mutex_init(&m->q_lock, NULL);
	pthread_cond_init(&m->q_cond, NULL);
	pthread_mutex_init(&m->sync_lock, NULL);
	pthread_cond_init(&m->flush_cond, NULL);
	pthread_mutex_init(&m->open_lock, NULL);
	pthread_mutex_init(&m->u_lock, NULL);
	pthread_cond_init(&m->u_cond, NULL);
	m->cappool = 64;
	m->pool = calloc(m->cappool, sizeof *m->pool);
	m->rshard = aligned_alloc(64, META_RSHARDS * sizeof *m->rshard);
	if (m->rshard)
		memset(m->rshard, 0, META_RSHARDS * sizeof *m->rshard);
	if (!m->pool || !m->rshard) {
		rc = cairn_errf(CAIRN_E_NOMEM, "reader pool");
		goto fail;
	}

	snprintf(path, sizeof path, "%s/meta.lock", dir);
	lockfd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (lockfd < 0) {
		rc = cairn_errf(errno == ENOENT ? CAIRN_E_NOTFOUND : CAIRN_E_IO,
				"open %s: %s", path, strerror(errno));
		goto fail;
	}
	if (flock(lockfd, LOCK_EX | LOCK_NB) != 0) {
		rc = cairn_errf(CAIRN_E_BUSY, "metadata in %s is open in another process", dir);
		goto fail;
	}

	if ((err = mdb_env_create(&m->env))) {
		rc = meta_lmdb_err(err, "mdb_env_create");
		goto fail;
	}
	if ((err = mdb_env_set_maxdbs(m->env, MT_COUNT + 2)) ||
	    (err = mdb_env_set_maxreaders(m->env, m->opts.max_readers + META_CKPT_READERS)) ||
	    (err = mdb_env_set_mapsize(m->env, (size_t)m->opts.map_size))) {
		rc = meta_lmdb_err(err, "configure LMDB environment");
		mdb_env_close(m->env);
		m->env = NULL;
		goto fail;
	}
	/* after an OS crash, put the synced meta pages back first */
	if ((rc = meta_ckpt_recover(m))) {
		mdb_env_close(m->env);
		m->env = NULL;
		goto fail;
	}
	unsigned flags = MDB_NOTLS | MDB_NORDAHEAD | (m->opts.writemap ? MDB_WRITEMAP : 0) |
			 (m->opts.safe_relaxed == META_RELAXED_SYNC_EACH ? MDB_NOMETASYNC
									  : MDB_NOSYNC);
	if ((err = mdb_env_open(m->env, dir, flags, 0644))) {
		rc = meta_lmdb_err(err, dir);
		mdb_env_close(m->env);
		m->env = NULL;
		goto fail;
	}
	MDB_envinfo info;
	mdb_env_info(m->env, &info);
	m->map_size = info.me_mapsize;
	if ((rc = env_prealloc(m, m->map_size)))
		goto fail;
	if (m->opts.safe_relaxed == META_RELAXED_PINNED && (rc = meta_ckpt_open(m)))
		goto fail;
	if ((rc = env_setup(m)))
		goto fail;
	/* The durable LSN starts at the last one: in PINNED mode the first
	 * checkpoint (above) synced the file; otherwise sync it now, once, as
	 * commits of a crashed process may still sit in the page cache. */
	if (m->opts.safe_relaxed != META_RELAXED_PINNED && (err = mdb_env_sync(m->env, 1))) {
		rc = meta_lmdb_err(err, "sync metadata at open");
		goto fail;
	}
	meta_durable_note(m, m->last_lsn);

	/* schema version */
	meta_txn *t;
	uint64_t fmt = 0;
	if ((rc = meta_read_begin(m, &t)))
		goto fail;
	rc = mt_counter_get(t, MC_FORMAT, &fmt);
	meta_read_end(t);
	if (rc)
		goto fail;
	if (fmt && fmt != META_SCHEMA_VERSION) {
		rc = cairn_errf(CAIRN_E_VERSION,
				"metadata in %s has schema version %llu; this build reads version %d",
				dir, (unsigned long long)fmt, META_SCHEMA_VERSION);
		goto fail;
	}
	if ((rc = meta_txn_start_flusher(m)) || (rc = meta_undo_start(m)))
		goto fail;
	if (!fmt && !m->opts.replica) {
		rc = meta_write(m, META_SYNCED, META_OP_FORMAT, format_fn, NULL, NULL);
		if (rc) {
			rc = cairn_err_wrap(rc, "format metadata in %s", dir);
			goto fail;
		}
	}
	if (!m->opts.replica && (rc = meta_orphan_cleanup(m)))
		goto fail;
	/* the lock stays held until meta_close */
	m->lockfd = lockfd;
	*out = m;
	return 0;
fail:
	if (m->env)
		meta_txn_stop_flusher(m);
	meta_undo_stop(m);
	meta_ckpt_close(m);
	if (m->env) {
		rs_close_all(m);
		mdb_env_close(m->env);
	}
	if (lockfd >= 0)
		close(lockfd);
	free(m->rshard);
	free(m->pool);
	free(m);
	return rc;
}

int meta_close(cairn_meta *m)
{
	if (!m)
		return 0;
	meta_txn_stop_flusher(m);
	meta_undo_stop(m);
	int rc = m->flush_err;
	if (m->failed) {
		/* nothing more can be made durable */
	} else if (m->opts.safe_relaxed == META_RELAXED_PINNED) {
		int r = meta_ckpt(m, __atomic_load_n(&m->commit_seq, __ATOMIC_SEQ_CST), 0,
				  MCK_CLEAN);
		if (r && !rc)
			rc = cairn_err_wrap(r, "final metadata checkpoint");
	} else {
		int err = mdb_env_sync(m->env, 1);
		if (err && !rc)
			rc = meta_lmdb_err(err, "final metadata sync");
	}
	meta_ckpt_close(m);
	rs_close_all(m);
	free(m->rshard);
	free(m->pool);
	mdb_env_close(m->env);
	if (m->lockfd >= 0)
		close(m->lockfd);
	free(m->open_ino);
	free(m->open_cnt);
	pthread_rwlock_destroy(&m->map_lock);
	pthread_mutex_destroy(&m->pool_lock);
	pthread_mutex_destroy(&m->q_lock);
	pthread_cond_destroy(&m->q_cond);
	pthread_mutex_destroy(&m->sync_lock);
	pthread_cond_destroy(&m->flush_cond);
	pthread_mutex_destroy(&m->open_lock);
	pthread_mutex_destroy(&m->u_lock);
	pthread_cond_destroy(&m->u_cond);
	free(m);
	return rc;
}
