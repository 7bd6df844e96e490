/*
 * meta_int.h - private structures of the metadata engine, shared by the
 * meta_*.c modules (and by tests of internals).
 *
 * Module map:
 *   meta_env.c     open/close, map growth, reader pool, fault hooks
 *   meta_txn.c     group commit, the flusher, logged put/del
 *   meta_ckpt.c    checkpoints: crash-safe relaxed durability (side file)
 *   meta_rec.c     key and value encodings (docs/format.md)
 *   meta_ns.c      namespace operations
 *   meta_extent.c  extent maps
 *   meta_chunk.c   chunk and segment tables
 *   meta_wal.c     WAL read/apply/trim/consumers, digest
 *   meta_ship.c    log shipping: durable LSN, segment refs of records,
 *                  writer epoch, log objects
 *   meta_image.c   images: compact copies, install, replica load
 *   meta_snap.c    snapshots and clones
 *   meta_fsck.c    consistency check
 *
 * Invariants shared by all modules:
 *   1. Every change to a replicated table goes through mt_put/mt_del, which
 *      append it to the transaction's WAL record; only the WAL table and the
 *      local table are written directly.
 *   2. A write callback checks every precondition before its first change,
 *      so that a failing callback usually leaves the batch clean; if it did
 *      change something, the batch is aborted and rerun without it.
 *   3. Integers in keys are big-endian (so LMDB's byte order is numeric
 *      order); integers in values are little-endian.
 */
#ifndef CAIRN_META_INT_H
#define CAIRN_META_INT_H

#include <lmdb.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include "cairn/meta.h"
#include "cairn/runtime.h"

/* Tables.  The ids are part of the WAL format: never renumber. */
enum {
	MT_INODE = 0,
	MT_DIRENT = 1,
	MT_DCOOKIE = 2,
	MT_EXTENT = 3,
	MT_EMAP = 4,
	MT_CHUNK = 5,
	MT_CHASH = 6,
	MT_SEG = 7,
	MT_XATTR = 8,
	MT_SNAP = 9,
	MT_ORPHAN = 10,
	MT_COUNTER = 11,
	MT_SEGCHUNK = 12,
	MT_NREPL,         /* tables above are replicated through the WAL */
	MT_WAL = MT_NREPL,
	MT_LOCAL,
	MT_COUNT
};
extern const char *const meta_table_names[MT_COUNT];

/* Counter ids (MT_COUNTER keys, one byte). */
enum {
	MC_FORMAT = 0,   /* schema version */
	MC_NEXT_INO = 1,
	MC_NEXT_CHUNK = 2,
	MC_NEXT_SEG = 3,
	MC_NEXT_EMAP = 4,
	MC_INODES = 5,
	MC_FILE_BYTES = 6,
	MC_STORED_BYTES = 7,
	MC_SEGMENTS = 8,
	MC_CHUNKS = 9,
	MC_WRITER_EPOCH = 10, /* fence of log shipping (meta_ship.c) */
	MC_COUNT
};

#define META_SCHEMA_VERSION 1
#define META_REC_V1 1

/* WAL record entry kinds. */
enum { MW_PUT = 1, MW_DEL = 2, MW_SNAPSHOT = 3, MW_CLONE = 4, MW_SNAPDEL = 5 };

typedef struct mt_buf {
	uint8_t *p;
	size_t len, cap;
} mt_buf;
int mt_buf_add(mt_buf *b, const void *p, size_t n);

/* Fault injection (tests): fail the nth event of a kind from now on. */
enum { MF_COMMIT = 0, MF_SYNC = 1, MF_PUT = 2, MF_ALLOC = 3, MF_COUNT };

typedef struct meta_wnode meta_wnode;

/* Reader shards (meta_env.c): one cache line per CPU (modulo), written
 * only by the readers running there (and by growth and the leader's
 * meta_pool_stale, rarely). */
#define META_RSHARDS 16
typedef struct meta_rshard {
	unsigned active;    /* read txns begun here and not ended (atomic) */
	unsigned pad0;
	uintptr_t slot;     /* a pooled meta_txn *, bit 0: live (atomic) */
	uint8_t pad[64 - 2 * sizeof(unsigned) - sizeof(uintptr_t)];
} meta_rshard;
_Static_assert(sizeof(meta_rshard) == 64, "a reader shard is one cache line");

struct cairn_meta {
	MDB_env *env;
	MDB_dbi dbi[MT_COUNT];
	char dir[512];
	int lockfd;
	meta_opts opts;
	uint64_t map_size;

	/* Map growth holds it exclusive (LMDB requires no active transaction
	 * in the process while the map is resized), sets rs_growing and
	 * waits for the readers counted in the shards; image copies hold it
	 * shared; a reader that sees rs_growing waits on it. */
	pthread_rwlock_t map_lock;
	meta_rshard *rshard;    /* META_RSHARDS, 64-byte aligned */
	int rs_growing;         /* atomic */
	int rs_live;            /* a slot may hold a live txn (atomic) */

	pthread_mutex_t pool_lock;
	meta_txn **pool;
	size_t npool, cappool;
	unsigned nlive;         /* pooled read txns kept live (not reset):
	                           still on the newest snapshot (atomic) */
	unsigned nslots;        /* reader slots held by read txns (pooled too) */

	/* group commit */
	pthread_mutex_t q_lock;
	pthread_cond_t q_cond;
	meta_wnode *q_head, *q_tail;
	int leader;
	int lead_want;          /* threads in lead_acquire (meta_ckpt.c):
	                           callers of meta_write let them lead first */
	uint64_t last_lsn;      /* of the last committed record */
	uint64_t durable_lsn;   /* last LSN known on stable storage (atomic;
	                           meta_durable_lsn) */
	uint64_t commit_seq;    /* LMDB commits so far */
	int failed;             /* sticky: an fsync failed */
	char failmsg[256];

	pthread_mutex_t sync_lock;
	uint64_t synced_seq;    /* written under sync_lock (release), read
	                           without it by covered callers */

	/* flusher */
	pthread_t flusher;
	int flusher_on, stop;
	pthread_cond_t flush_cond;
	int flush_err;

	/* open-file counts (ino -> count), tiny open-addressing table */
	pthread_mutex_t open_lock;
	uint64_t *open_ino;
	uint32_t *open_cnt;
	size_t open_cap, open_n;

	/* checkpoints (meta_ckpt.c; opts.safe_relaxed == META_RELAXED_PINNED) */
	int env_fd;             /* data.mdb */
	unsigned psize;         /* LMDB page size */
	int ck_fd;              /* meta.synced, -1 until the first checkpoint */
	int ck_new;             /* created by this open: fsync the directory */
	uint64_t ck_seq;        /* seq of the newest slot written */
	uint64_t ck_txnid;      /* snapshot that slot names */
	MDB_txn *ck_pin;        /* read txn pinning that snapshot */
	char boot_id[40];
	int test_nopin;         /* tests: drop the pin right away (unsafe) */
	/* undo log (meta_ckpt.c): pages of the checkpoint's snapshot T saved
	 * before LMDB may reuse them, so that the pin need not last */
	int undo;               /* on (default in PINNED mode) */
	uint8_t *u_map;         /* bit set: page of T not saved yet */
	uint64_t u_last;        /* T's last page */
	uint64_t u_epoch;       /* seq of the slot the epoch belongs to */
	int64_t u_epoch_ns;     /* when it started (monotonic) */
	int64_t u_prev_ns;      /* how long the epoch before it lasted */
	mt_buf u_buf;           /* records not written yet (leader only) */
	mt_buf u_retry;         /* records a failed flush could not write
	                           (under sync_lock) */
	uint64_t u_off;         /* append offset in the epoch's undo file */
	int u_fd[2];            /* meta.undo.0, meta.undo.1 */
	MDB_txn *u_pin;         /* rolling pin: records freed at/after it wait */
	MDB_txn *u_rd;          /* reads free-list records after commits */
	size_t u_pending;       /* u_buf.len as the leader left it (atomic) */
	int u_hold;             /* records outside u_buf not durable yet (a
	                           flush in flight, or u_retry): the leader
	                           must not move the pin (atomic) */
	unsigned undo_ms;       /* undo writer: idle wait; young epoch = 4x */
	uint64_t restored;      /* pages put back at open (tests) */
	pthread_t u_thread;
	int u_thread_on;
	pthread_mutex_t u_lock; /* u_cond: the leader wakes the undo writer */
	pthread_cond_t u_cond;
	/* tests: called after each checkpoint is durable (under sync_lock) */
	void (*test_ckpt_hook)(cairn_meta *m, void *arg);
	void *test_ckpt_arg;

	/* WAL trimming */
	uint64_t wal_first;     /* cached lowest retained LSN (0 unknown) */

	/* fault injection */
	int fault_at[MF_COUNT];  /* 0 off; n: the nth event fails */
	int fault_errno[MF_COUNT];
	int fault_count[MF_COUNT];
};

struct meta_txn {
	cairn_meta *m;
	MDB_txn *txn;
	int write;
	int live;          /* pooled read txn not reset: its snapshot was the
	                      newest when it was given back (meta_read_end) */
	unsigned shard;    /* read txn: the reader shard that counts it */
	int suppress;      /* >0: changes are not logged (replayed logical op) */
	int map_full;      /* an LMDB call hit MDB_MAP_FULL */
	int lmdb_err;      /* some LMDB call failed: the txn is unusable */
	int64_t now;       /* wall clock of this operation, ns */
	uint64_t lsn_next; /* LSN this operation's record will get */
	uint64_t lsn_set;  /* nonzero: the environment's last LSN becomes
	                      this (meta_replica_load; no record is logged) */
	mt_buf rec;        /* the entries of the current operation */
	uint32_t nent;
};

/* ---- meta_env.c ---- */
int meta_lmdb_err(int err, const char *what);
/* The key comparison of every table: LMDB's default order (mdb_cmp_memn),
 * without memcmp (meta_env.c says why). */
int meta_key_cmp(const MDB_val *a, const MDB_val *b);
int meta_fault_hit(cairn_meta *m, int kind);
/* Tests: make the nth event of kind fail with errno err (n = 0: off). */
void meta_fault_set(cairn_meta *m, int kind, int n, int err);
int meta_env_grow(cairn_meta *m);
int64_t meta_now_ns(void);
int meta_open_count(cairn_meta *m, uint64_t ino);
/* After a commit: reset the pooled read txns kept live, so that none holds
 * back the reuse of the pages the commit freed. */
void meta_pool_stale(cairn_meta *m);

/* ---- meta_txn.c ---- */
int mt_get(meta_txn *t, int tbl, const void *k, size_t klen, MDB_val *v);
int mt_put(meta_txn *t, int tbl, const void *k, size_t klen, const void *v,
	   size_t vlen);
int mt_put_append(meta_txn *t, int tbl, const void *k, size_t klen, const void *v,
		  size_t vlen, int append);
int mt_del(meta_txn *t, int tbl, const void *k, size_t klen);
int mt_log_logical(meta_txn *t, int kind, const void *p, size_t n);
int mt_counter_get(meta_txn *t, int id, uint64_t *v);
int mt_counter_add(meta_txn *t, int id, int64_t delta);
int mt_counter_next(meta_txn *t, int id, uint64_t *v);
int mt_cursor(meta_txn *t, int tbl, MDB_cursor **c);
int mt_need_write(meta_txn *t);
int meta_txn_start_flusher(cairn_meta *m);
void meta_txn_stop_flusher(cairn_meta *m);
int meta_sync_upto(cairn_meta *m, uint64_t seq, int have_leader);
/* Under q_lock, right after leadership was given up: wake the next one. */
void meta_lead_handoff(cairn_meta *m);
/* ---- meta_ship.c ---- */
/* Every record up to lsn is on stable storage (monotonic). */
void meta_durable_note(cairn_meta *m, uint64_t lsn);

/* ---- meta_ckpt.c ---- */
/* reader slots for checkpoints: the rolling pin, the previous epoch's,
 * the next one, and the free-list reader of meta_undo_note */
#define META_CKPT_READERS 4
#define MCK_CLEAN 0x1u   /* final checkpoint of meta_close */
#define MCK_FORCE 0x2u   /* write a slot even if nothing changed */
#define MCK_PRESYNC 0x4u /* background: write the data back before the
                            capture, so that the pinned part is short */
/* Before mdb_env_open: restore the synced meta pages after an OS crash
 * (other modes: remove a stale side file). */
int meta_ckpt_recover(cairn_meta *m);
/* After mdb_env_open, before any write: the first checkpoint. */
int meta_ckpt_open(cairn_meta *m);
/* Make every commit up to commit_seq `seq` durable and name it in the side
 * file; have_leader: the caller holds group-commit leadership. */
int meta_ckpt(cairn_meta *m, uint64_t seq, int have_leader, unsigned flags);
void meta_ckpt_close(cairn_meta *m);
/* After the leader committed transaction txnid: save the pages of T it
 * freed (leader only). */
int meta_undo_note(cairn_meta *m, uint64_t txnid);
/* Write and sync the saved pages, then move the rolling pin to now (when
 * none are waiting, the leader moves it after each commit by itself). */
int meta_undo_flush(cairn_meta *m);
int meta_undo_start(cairn_meta *m);
/* 1: checkpoints trim the WAL (PINNED mode, undo log on); ordinary
 * commits and the flusher leave it to them. */
int meta_ckpt_trims(const cairn_meta *m);
void meta_undo_stop(cairn_meta *m);
/* fsync a directory (a new or renamed entry in it is durable). */
int meta_fsync_dir(const char *dir);
/* This boot's id (CAIRN_TEST_BOOT_ID overrides it, for tests). */
int meta_boot_id(char out[40]);

/* ---- meta_wal.c ---- */
#define MW_HDR 32
/* Delete up to max WAL records below the trim horizon (inside the leader's
 * write transaction; the WAL table is local, never logged). */
int mw_trim_some(cairn_meta *m, MDB_txn *txn, uint64_t last, size_t max);
/* Apply the entries of a record inside t (suppressed logging). */
int mw_apply_body(meta_txn *t, const uint8_t *body, size_t len, uint32_t n);

/* ---- meta_rec.c: encodings ---- */
/* One load or store each (memcpy of a fixed size compiles to a plain
 * move, plus a bswap for the big-endian keys): the byte loops these were
 * stayed loops in the lookup path (mi_inode_dec was 8% of a cached
 * lookup).  The byte order on disk is the same on every host. */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define META_LE_HOST 1
#else
#define META_LE_HOST 0
#endif
static inline void be64(uint8_t *p, uint64_t v)
{
	if (META_LE_HOST) {
		v = __builtin_bswap64(v);
		memcpy(p, &v, 8);
		return;
	}
	for (int i = 7; i >= 0; i--) { p[i] = (uint8_t)v; v >>= 8; }
}
static inline uint64_t rbe64(const uint8_t *p)
{
	uint64_t v = 0;
	if (META_LE_HOST) {
		memcpy(&v, p, 8);
		return __builtin_bswap64(v);
	}
	for (int i = 0; i < 8; i++) v = (v << 8) | p[i];
	return v;
}
static inline void le64(uint8_t *p, uint64_t v)
{
	if (META_LE_HOST) {
		memcpy(p, &v, 8);
		return;
	}
	for (int i = 0; i < 8; i++) { p[i] = (uint8_t)v; v >>= 8; }
}
static inline uint64_t rle64(const uint8_t *p)
{
	uint64_t v = 0;
	if (META_LE_HOST) {
		memcpy(&v, p, 8);
		return v;
	}
	for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
	return v;
}
static inline void le32(uint8_t *p, uint32_t v)
{
	if (META_LE_HOST) {
		memcpy(p, &v, 4);
		return;
	}
	for (int i = 0; i < 4; i++) { p[i] = (uint8_t)v; v >>= 8; }
}
static inline uint32_t rle32(const uint8_t *p)
{
	if (META_LE_HOST) {
		uint32_t v;
		memcpy(&v, p, 4);
		return v;
	}
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}
static inline void le16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static inline uint16_t rle16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }

/* inode value */
#define MI_FIXED 96
typedef struct mi_inode {
	meta_attr a;
	uint64_t emap;         /* extent map id, 0 = none yet */
	uint64_t next_cookie;  /* directories: cookie of the next entry */
	uint64_t parent;       /* directories: the containing directory */
	uint16_t tlen;         /* symlink target length */
	char target[META_SYMLINK_MAX + 1];
} mi_inode;
int mi_inode_dec(uint64_t ino, const MDB_val *v, mi_inode *out);
size_t mi_inode_enc(const mi_inode *in, uint8_t *buf); /* buf >= MI_FIXED+tlen */
int mi_inode_get(meta_txn *t, uint64_t ino, mi_inode *out);
int mi_inode_put(meta_txn *t, const mi_inode *old, const mi_inode *in);
int mi_inode_del(meta_txn *t, const mi_inode *old);
/* Write without touching the statfs counters (bulk copies add them up). */
int mi_inode_put_raw(meta_txn *t, const mi_inode *in);

/* dirent: key parent.be64 + name; value v1: ver, type, ino, cookie */
#define MD_VLEN 18
size_t md_key(uint8_t *k, uint64_t parent, const char *name, size_t nlen);
int md_dec(const MDB_val *v, uint64_t *ino, uint32_t *type, uint64_t *cookie);
void md_enc(uint8_t *v, uint64_t ino, uint32_t type, uint64_t cookie);

/* dcookie: key parent.be64 + cookie.be64; value v1: ver, type, ino, name */
#define MDC_FIXED 10

/* extent: key emap.be64 + off.be64; value v1: ver, len, chunk, chunk_off */
#define ME_VLEN 25
int me_dec(const MDB_val *v, meta_extent *e);
void me_enc(uint8_t *v, const meta_extent *e);

/* emap value v1: ver, refs */
#define MM_VLEN 9

/* chunk value v1 */
#define MCH_VLEN 72
int mch_dec(uint64_t id, const MDB_val *v, meta_chunk *c);
void mch_enc(uint8_t *v, const meta_chunk *c);
int mch_get(meta_txn *t, uint64_t id, meta_chunk *c);
int mch_put(meta_txn *t, const meta_chunk *c);

/* segment value v1 */
#define MS_FIXED 48
int ms_dec(uint64_t id, const MDB_val *v, meta_seg *s);
size_t ms_enc(const meta_seg *s, uint8_t *buf); /* buf >= MS_FIXED + 512 */
int ms_get(meta_txn *t, uint64_t id, meta_seg *s);
int ms_put(meta_txn *t, const meta_seg *s);

int mr_version(const MDB_val *v, const char *what, uint64_t id);

/* ---- shared helpers between modules ---- */
int mx_chunk_ref(meta_txn *t, uint64_t chunk, int64_t delta);
int mx_emap_release(meta_txn *t, uint64_t emap);
int mx_emap_share(meta_txn *t, uint64_t emap);
int mx_inode_free(meta_txn *t, mi_inode *in);
int mx_truncate(meta_txn *t, mi_inode *in, uint64_t size);
int mn_check_name(const char *name, size_t *nlen);
int mn_dirent_put(meta_txn *t, uint64_t parent, const char *name, size_t nlen,
		  uint64_t ino, uint32_t type, uint64_t cookie, int append);
int mn_drop_link(meta_txn *t, mi_inode *in, int is_dir);
int mn_dirent_add(meta_txn *t, mi_inode *dir, const char *name, size_t nlen,
		  uint64_t ino, uint32_t type);
int mx_xattr_drop_all(meta_txn *t, uint64_t ino);
int ms_snap_replay(meta_txn *t, int kind, const uint8_t *p, size_t n);
int meta_orphan_cleanup(cairn_meta *m);

#endif
