/*
 * cairn/meta.h - the metadata engine (library cairn_meta): the namespace,
 * extent maps, chunk and segment tables, snapshots and the write-ahead log,
 * all in one LMDB environment.  docs/metadata.md explains the model and
 * docs/format.md every key and value.
 *
 * Handles (opaque):
 *   cairn_meta   one open environment (one per volume, one owner process).
 *   meta_txn     a transaction.  Read transactions come from
 *                meta_read_begin(); write transactions exist only inside a
 *                meta_write() callback, which the group-commit machinery
 *                runs on some thread together with other callers' work.
 *
 * Writing.  meta_write(m, durability, op, fn, arg) runs fn(txn, arg) inside
 * a shared LMDB write transaction.  Everything fn changes commits atomically
 * together with exactly one WAL record (its LSN is returned in *lsn_out).
 * If fn returns an error, none of its changes commit.  fn must not do disk
 * or network I/O, must not block, and may be run more than once (a batch
 * that has to be retried runs it again): it must only read its argument and
 * write its results into it.  Do not call meta_write() while the same
 * thread holds a read transaction (the map may have to grow, which waits for
 * readers).
 *
 * Durability (docs/metadata.md "Durability"):
 *   META_SYNCED   returns after the commit is on stable storage.
 *   META_RELAXED  returns after the commit is in LMDB (visible, and safe
 *                 against a process crash); a background flusher makes it
 *                 durable within opts.flush_interval_ms.  An OS crash may
 *                 lose the relaxed commits since the last flush, never
 *                 corrupt the environment (opts.safe_relaxed).
 *
 * Errors are cairn_rc codes with a context message (cairn_errmsg()).  Every
 * function below lists the codes it may return besides CAIRN_E_NOMEM,
 * CAIRN_E_IO (LMDB or disk failure), CAIRN_E_CORRUPT (a malformed record)
 * and CAIRN_E_VERSION (a record of an unknown version).
 */
#ifndef CAIRN_META_H
#define CAIRN_META_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cairn_meta cairn_meta;
typedef struct meta_txn meta_txn;

#define META_ROOT_INO 1ULL
#define META_NAME_MAX 255
#define META_SYMLINK_MAX 4095
#define META_XATTR_NAME_MAX 255
#define META_XATTR_SIZE_MAX 65536
#define META_LINK_MAX 65000

typedef enum meta_durability {
	META_RELAXED = 0,
	META_SYNCED = 1,
} meta_durability;

typedef struct meta_opts {
	uint64_t map_size;          /* initial LMDB map size (default 256 MiB;
	                               with writemap, allocated on disk) */
	uint64_t map_max;           /* growth cap on MDB_MAP_FULL (default 1 TiB) */
	unsigned max_readers;       /* LMDB reader slots for meta_read_begin
	                               (default 510); checkpoints add 2 */
	unsigned flush_interval_ms; /* relaxed window (default 1000; 0 = no flusher,
	                               nor undo writer: then pages freed since
	                               the last checkpoint wait for the next) */
	uint64_t wal_keep;          /* WAL records kept when no consumer needs
	                               older ones (default 100000) */
	int replica;                /* 1: do not format an empty environment;
	                               it is filled by meta_wal_apply() */
	int safe_relaxed;           /* how META_RELAXED commits reach the disk
	                               (META_RELAXED_* below; default PINNED) */
	int writemap;               /* 1 (default): LMDB MDB_WRITEMAP, commits
	                               write through the map (much faster small
	                               transactions); 0: pwrite + read-only map,
	                               which turns a stray write into a crash */
} meta_opts;

/* meta_opts.safe_relaxed (docs/metadata.md "Durability"):
 *   PINNED   (default) MDB_NOSYNC; every flush (and every SYNCED commit)
 *            is a checkpoint: the synced snapshot's meta pages are saved in
 *            meta.synced, and its pages in meta.undo.* before LMDB may reuse
 *            them; after an OS crash both are written back at open.  Never
 *            corrupted; relaxed commits cost no sync.
 *   SYNC_EACH  MDB_NOMETASYNC: every group commit fdatasyncs its pages.
 *            Never corrupted; about one fdatasync per group commit.
 *   UNSAFE   MDB_NOSYNC alone: an OS crash may corrupt the environment. */
#define META_RELAXED_UNSAFE 0
#define META_RELAXED_SYNC_EACH 1
#define META_RELAXED_PINNED 2

/* Fill o with the defaults above. */
void meta_opts_init(meta_opts *o);

/* Open (and format, when empty and not a replica) the environment in
 * directory dir, which must exist.  Files left orphaned by a crash (unlinked
 * while open) are removed.  opts may be NULL for the defaults.
 * Errors: CAIRN_E_INVAL, CAIRN_E_VERSION (schema of another version),
 * CAIRN_E_BUSY (held by another process). */
int meta_open(const char *dir, const meta_opts *opts, cairn_meta **out);

/* Sync and close.  No transaction may be active.  Returns the first error
 * seen by the flusher or the final sync (the handle is freed anyway). */
int meta_close(cairn_meta *m);

/* Make every commit so far durable (one fdatasync; in the default mode a
 * checkpoint: two).  Like meta_write, not while the same thread holds a
 * read transaction. */
int meta_sync(cairn_meta *m);

/* ---- transactions ---------------------------------------------------- */

/* A pooled read-only snapshot transaction.  Errors: CAIRN_E_BUSY (reader
 * slots exhausted after clearing stale readers). */
int meta_read_begin(cairn_meta *m, meta_txn **out);
void meta_read_end(meta_txn *t);

typedef int (*meta_write_fn)(meta_txn *t, void *arg);

/* Operation codes recorded in the WAL record header (informational). */
enum {
	META_OP_OTHER = 0, META_OP_FORMAT = 1, META_OP_CREATE = 2,
	META_OP_MKDIR = 3, META_OP_UNLINK = 4, META_OP_RMDIR = 5,
	META_OP_RENAME = 6, META_OP_LINK = 7, META_OP_SYMLINK = 8,
	META_OP_SETATTR = 9, META_OP_XATTR = 10, META_OP_EXTENT = 11,
	META_OP_CHUNK = 12, META_OP_SEGMENT = 13, META_OP_SNAPSHOT = 14,
	META_OP_CLONE = 15, META_OP_ORPHAN = 16, META_OP_FSCK = 17,
};

/* Run fn in a group-committed write transaction (see the top of this file).
 * Returns fn's error, or CAIRN_E_NOSPC (map at map_max, or disk full),
 * CAIRN_E_IO (commit or fsync failed; after a failed fsync the environment
 * refuses every further write: reopen it).  lsn_out may be NULL; it gets 0
 * when fn changed nothing. */
int meta_write(cairn_meta *m, meta_durability d, unsigned op,
	       meta_write_fn fn, void *arg, uint64_t *lsn_out);

/* LMDB write commits made since open: meta_write calls per commit is how
 * well group commit batches (bench/bench_meta reports it). */
uint64_t meta_commits(cairn_meta *m);

/* The environment a transaction belongs to. */
cairn_meta *meta_txn_env(meta_txn *t);

/* ---- namespace -------------------------------------------------------- */

#define META_INO_F_RDONLY 0x1u  /* inode of a snapshot: never modified */

typedef struct meta_attr {
	uint64_t ino;
	uint32_t mode;   /* S_IF* | permission bits */
	uint32_t uid, gid;
	uint32_t nlink;
	uint32_t flags;  /* META_INO_F_* */
	uint64_t size;
	uint64_t rdev;
	int64_t atime_ns, mtime_ns, ctime_ns, btime_ns;
} meta_attr;

/* Fields of meta_sattr to apply. */
#define META_SET_MODE  0x01u
#define META_SET_UID   0x02u
#define META_SET_GID   0x04u
#define META_SET_SIZE  0x08u
#define META_SET_ATIME 0x10u
#define META_SET_MTIME 0x20u
#define META_SET_CTIME 0x40u

typedef struct meta_sattr {
	unsigned mask;
	uint32_t mode;  /* permission bits only; the file type never changes */
	uint32_t uid, gid;
	uint64_t size;  /* truncate or extend (regular files only) */
	int64_t atime_ns, mtime_ns, ctime_ns;
} meta_sattr;

/* Errors common to the namespace calls: CAIRN_E_NOTFOUND (no such inode or
 * entry), CAIRN_E_NOTDIR (parent is not a directory), CAIRN_E_NAMETOOLONG
 * (name over META_NAME_MAX), CAIRN_E_INVAL (empty name, "." or "..", or a
 * name containing '/' or NUL), CAIRN_E_ROFS (inode of a snapshot). */
int meta_lookup(meta_txn *t, uint64_t parent, const char *name, meta_attr *out);
int meta_getattr(meta_txn *t, uint64_t ino, meta_attr *out);
/* CAIRN_E_ISDIR (size of a directory), CAIRN_E_INVAL (size of a
 * non-regular file), CAIRN_E_FBIG. */
int meta_setattr(meta_txn *t, uint64_t ino, const meta_sattr *sa, meta_attr *out);
/* Create a node: mode carries the type (S_IFREG, S_IFCHR, S_IFBLK, S_IFIFO,
 * S_IFSOCK; S_IFDIR is meta_mkdir's and S_IFLNK meta_symlink's).
 * CAIRN_E_EXISTS. */
int meta_mknod(meta_txn *t, uint64_t parent, const char *name, uint32_t mode,
	       uint64_t rdev, uint32_t uid, uint32_t gid, meta_attr *out);
int meta_create(meta_txn *t, uint64_t parent, const char *name, uint32_t mode,
		uint32_t uid, uint32_t gid, meta_attr *out);
int meta_mkdir(meta_txn *t, uint64_t parent, const char *name, uint32_t mode,
	       uint32_t uid, uint32_t gid, meta_attr *out);
int meta_symlink(meta_txn *t, uint64_t parent, const char *name,
		 const char *target, uint32_t uid, uint32_t gid, meta_attr *out);
/* Copies at most size bytes (no NUL added); *len gets the full length.
 * CAIRN_E_INVAL (not a symlink). */
int meta_readlink(meta_txn *t, uint64_t ino, char *buf, size_t size, size_t *len);
/* CAIRN_E_ISDIR (a directory). */
int meta_unlink(meta_txn *t, uint64_t parent, const char *name);
/* CAIRN_E_NOTEMPTY, CAIRN_E_NOTDIR (not a directory), CAIRN_E_BUSY (root). */
int meta_rmdir(meta_txn *t, uint64_t parent, const char *name);
/* CAIRN_E_ISDIR (link to a directory), CAIRN_E_EXISTS, CAIRN_E_MLINK. */
int meta_link(meta_txn *t, uint64_t ino, uint64_t newparent,
	      const char *newname, meta_attr *out);

#define META_RENAME_NOREPLACE 0x1u
#define META_RENAME_EXCHANGE  0x2u
/* POSIX rename(2)/renameat2(2): CAIRN_E_EXISTS (NOREPLACE),
 * CAIRN_E_NOTFOUND (EXCHANGE without a target), CAIRN_E_ISDIR (file over a
 * directory), CAIRN_E_NOTDIR (directory over a file), CAIRN_E_NOTEMPTY,
 * CAIRN_E_INVAL (a directory into its own subtree, both flags). */
int meta_rename(meta_txn *t, uint64_t sparent, const char *sname,
		uint64_t dparent, const char *dname, unsigned flags);

/* Directory listing.  Cookies: an entry's cookie is fixed when the entry is
 * created and never reused in that directory; meta_readdir returns the
 * entries with a cookie greater than `cookie` (0 = from the start) in
 * cookie order, so a listing resumed from any cookie neither repeats nor
 * skips an entry that existed throughout.  "." and ".." are not listed.
 * cb returns nonzero to stop (that value is not an error). */
typedef int (*meta_dirent_fn)(const char *name, size_t namelen, uint64_t ino,
			      uint32_t type, uint64_t cookie, void *arg);
int meta_readdir(meta_txn *t, uint64_t dir, uint64_t cookie,
		 meta_dirent_fn cb, void *arg);

#define META_XATTR_CREATE  0x1u
#define META_XATTR_REPLACE 0x2u
/* CAIRN_E_EXISTS (CREATE), CAIRN_E_NODATA (REPLACE/get/remove of a missing
 * name), CAIRN_E_RANGE (value over META_XATTR_SIZE_MAX, or buffer too small
 * for get/list; size 0 asks for the length only). */
int meta_xattr_set(meta_txn *t, uint64_t ino, const char *name,
		   const void *val, size_t len, unsigned flags);
int meta_xattr_get(meta_txn *t, uint64_t ino, const char *name, void *buf,
		   size_t size, size_t *len);
/* Names as NUL-terminated strings back to back, like listxattr(2). */
int meta_xattr_list(meta_txn *t, uint64_t ino, char *buf, size_t size, size_t *len);
int meta_xattr_remove(meta_txn *t, uint64_t ino, const char *name);

typedef struct meta_statfs {
	uint64_t inodes;        /* live inodes, snapshots included */
	uint64_t file_bytes;    /* sum of regular file sizes */
	uint64_t stored_bytes;  /* bytes of live chunks (sum of segment live) */
	uint64_t segments;
	uint64_t chunks;
	uint64_t last_lsn;
} meta_statfs;
int meta_statfs_get(meta_txn *t, meta_statfs *out);

/* Open-file accounting (in memory: a crash closes everything).  An inode
 * whose last link is removed while it is open is kept as an orphan until
 * meta_ino_close() drops the last reference (then its extents are freed
 * in a META_RELAXED write); orphans left by a crash are freed at open. */
int meta_ino_open(cairn_meta *m, uint64_t ino);
int meta_ino_close(cairn_meta *m, uint64_t ino);

/* ---- extents, chunks, segments --------------------------------------- */

typedef struct meta_extent {
	uint64_t off;       /* file offset */
	uint64_t len;
	uint64_t chunk;     /* 0 for a hole (lookup only) */
	uint64_t chunk_off; /* offset inside the chunk's raw bytes */
} meta_extent;

/* Map [off, off+len) of regular file ino to chunk bytes [chunk_off, ...).
 * Whatever mapped the range before is cut away; the file grows to off+len
 * if shorter; mtime/ctime are set.  CAIRN_E_NOTFOUND (inode or chunk),
 * CAIRN_E_ISDIR/CAIRN_E_INVAL (not a regular file), CAIRN_E_RANGE (past
 * the chunk's raw length), CAIRN_E_FBIG. */
int meta_extent_write(meta_txn *t, uint64_t ino, uint64_t off, uint64_t len,
		      uint64_t chunk, uint64_t chunk_off);
/* The same, with mtime and ctime set to mtime_ns (when the bytes were
 * written, which may be before the commit), or left as they are when
 * mtime_ns is 0 (an explicit mtime was set since the write). */
int meta_extent_write_at(meta_txn *t, uint64_t ino, uint64_t off, uint64_t len,
			 uint64_t chunk, uint64_t chunk_off, int64_t mtime_ns);
/* Unmap [off, off+len) (a hole); the size does not change. */
int meta_extent_punch(meta_txn *t, uint64_t ino, uint64_t off, uint64_t len);
/* The mapping of [off, off+len) clipped to EOF, holes included (chunk 0),
 * in order; at most max entries, *n gets how many. */
int meta_extent_lookup(meta_txn *t, uint64_t ino, uint64_t off, uint64_t len,
		       meta_extent *out, size_t max, size_t *n);

#define META_HASH_LEN 32
typedef struct meta_chunk {
	uint64_t id;
	uint64_t seg;
	uint64_t seg_off;
	uint32_t stored_len;  /* bytes in the segment */
	uint32_t raw_len;     /* bytes after decoding */
	uint8_t codec;        /* 0 none, 1 zstd */
	uint32_t crc;         /* crc32c of the stored bytes */
	uint8_t hash[META_HASH_LEN]; /* sha256 of the raw bytes */
	uint64_t refs;        /* extents referencing it (read only) */
} meta_chunk;

/* Record a chunk stored in segment c->seg; c->id gets the new id and
 * c->refs 0.  An extent should reference it in the same transaction (a
 * chunk whose last reference goes away is deleted; one never referenced
 * stays until GC removes it).  A STAGING segment grows to cover the chunk.
 * CAIRN_E_NOTFOUND (segment), CAIRN_E_INVAL (length 0, unknown codec,
 * segment dead or deleting, range past the size of a sealed segment). */
int meta_chunk_add(meta_txn *t, meta_chunk *c);
int meta_chunk_get(meta_txn *t, uint64_t id, meta_chunk *out);
/* The live chunk with this content hash (deduplication). CAIRN_E_NOTFOUND. */
int meta_chunk_find(meta_txn *t, const uint8_t hash[META_HASH_LEN], uint64_t *id);
/* Compaction: the chunk's bytes now live at (seg, seg_off). */
int meta_chunk_move(meta_txn *t, uint64_t id, uint64_t seg, uint64_t seg_off);
/* Compaction that re-encoded the chunk: c->id names it; c->seg, seg_off,
 * stored_len, codec and crc are its new place and stored form (raw_len and
 * hash must be the chunk's: the raw bytes are the same).  The refs, the
 * content-hash entry and the extents naming it do not change.
 * CAIRN_E_NOTFOUND (chunk or segment), CAIRN_E_INVAL (same segment, raw
 * length or hash differ, target segment dead or deleting, range past the
 * end of a sealed target). */
int meta_chunk_relocate(meta_txn *t, const meta_chunk *c);
/* The chunks stored in segment seg (through the segment index), in chunk
 * id order; cb returns nonzero to stop (not an error). */
typedef int (*meta_chunk_fn)(const meta_chunk *c, void *arg);
int meta_seg_chunks(meta_txn *t, uint64_t seg, meta_chunk_fn cb, void *arg);
/* Sum of the lengths of all extent records (bytes mapped to chunks,
 * counted once per record: shared maps once) and their count.  One scan
 * of the extent table. */
int meta_extent_totals(meta_txn *t, uint64_t *bytes, uint64_t *records);

/* What the tree under ino (a directory or a file, live or in a snapshot)
 * holds: regular files (and other non-directory nodes), directories,
 * symlinks, logical bytes (sizes of regular files, each inode once),
 * stored bytes of the distinct chunks its files' extents name, and of
 * those the bytes of chunks named by nothing outside the tree (every
 * extent record naming them lies in an extent map that only inodes inside
 * the tree name, and those inodes have no link outside it).  One scan of
 * the tree and of its extent maps.  CAIRN_E_NOTFOUND. */
typedef struct meta_tree_usage {
	uint64_t files, dirs, symlinks;
	uint64_t logical_bytes, stored_bytes, unique_bytes;
} meta_tree_usage;
int meta_tree_usage_get(meta_txn *t, uint64_t ino, meta_tree_usage *out);

typedef enum meta_seg_state {
	META_SEG_STAGING = 1,   /* local, being appended to */
	META_SEG_SEALED = 2,    /* local, immutable, upload pending */
	META_SEG_UPLOADING = 3, /* upload intent recorded */
	META_SEG_UPLOADED = 4,  /* in the object store */
	META_SEG_DEAD = 5,      /* no live chunk; may be deleted after grace */
	META_SEG_DELETING = 6,  /* delete intent recorded */
} meta_seg_state;

#define META_SEG_KEY_MAX 256
#define META_SEG_UPLOAD_ID_MAX 256
typedef struct meta_seg {
	uint64_t id;
	uint32_t state;        /* meta_seg_state */
	uint32_t kind;         /* 0 packed, 1 stream */
	uint64_t size;         /* bytes written so far / final size */
	uint64_t live_bytes;   /* stored bytes of live chunks (read only) */
	uint64_t nchunks;      /* live chunks (read only) */
	int64_t ctime_ns, mtime_ns;
	char key[META_SEG_KEY_MAX];             /* object key, "" if none */
	char upload_id[META_SEG_UPLOAD_ID_MAX]; /* multipart upload, "" if none */
} meta_seg;

/* New segment in state STAGING; s->id gets its id. */
int meta_seg_create(meta_txn *t, meta_seg *s);
int meta_seg_get(meta_txn *t, uint64_t id, meta_seg *out);
/* Update state, size, key and upload_id from s (live_bytes/nchunks are
 * ignored).  State moves only forward along the diagram in docs/metadata.md;
 * size never shrinks below the end of a live chunk.  CAIRN_E_INVAL. */
int meta_seg_update(meta_txn *t, const meta_seg *s);
/* Remove a DEAD/DELETING segment with no live chunk. CAIRN_E_BUSY. */
int meta_seg_delete(meta_txn *t, uint64_t id);
typedef int (*meta_seg_fn)(const meta_seg *s, void *arg);
int meta_seg_list(meta_txn *t, uint64_t from, meta_seg_fn cb, void *arg);

/* ---- deduplication pins (chunk deduplication, docs/large-files.md) ---- */

/* Create a regular file (mode S_IFREG|0600) with no name and nlink 0,
 * queued in the orphan table like a file unlinked while open: a writer's
 * hidden holder of chunk references (its extents) that are not yet in any
 * file.  The caller meta_ino_open()s it after the commit; the last
 * meta_ino_close() frees it with its extents, and meta_open() frees it
 * after a crash.  out->ino gets its number. */
int meta_pin_create(meta_txn *t, meta_attr *out);

/* ---- snapshots and clones -------------------------------------------- */

#define META_SNAP_NAME_MAX 255
typedef struct meta_snap {
	char name[META_SNAP_NAME_MAX + 1];
	uint64_t root;    /* root inode of the read-only tree */
	uint64_t src;     /* inode it was taken from */
	int64_t ctime_ns;
	uint64_t entries; /* inodes copied */
} meta_snap;

/* Snapshot the tree under directory src as name.  CAIRN_E_EXISTS,
 * CAIRN_E_NOTDIR, CAIRN_E_NAMETOOLONG. */
int meta_snapshot_create(meta_txn *t, uint64_t src, const char *name, meta_snap *out);
int meta_snapshot_get(meta_txn *t, const char *name, meta_snap *out);
typedef int (*meta_snap_fn)(const meta_snap *s, void *arg);
int meta_snapshot_list(meta_txn *t, meta_snap_fn cb, void *arg);
int meta_snapshot_delete(meta_txn *t, const char *name);
/* Writable copy of the tree (or file) src — live or in a snapshot — as
 * dparent/dname.  CAIRN_E_EXISTS, CAIRN_E_ROFS (dparent in a snapshot). */
int meta_clone(meta_txn *t, uint64_t src, uint64_t dparent, const char *dname,
	       meta_attr *out);

/* ---- write-ahead log -------------------------------------------------- */

/* Called for each record in LSN order; nonzero stops the scan. */
typedef int (*meta_wal_fn)(uint64_t lsn, const void *rec, size_t len, void *arg);
/* Records with LSN >= from, inside one read transaction: rec is valid only
 * during the callback, which must not write to m (meta_write may wait for
 * this very reader to grow the map).  CAIRN_E_NOTFOUND if `from` was
 * trimmed. */
int meta_wal_read(cairn_meta *m, uint64_t from, meta_wal_fn cb, void *arg);
/* Apply one record (from another environment's meta_wal_read) to a
 * replica; LSNs must follow on.  CAIRN_E_INVAL (gap), CAIRN_E_VERSION. */
int meta_wal_apply(cairn_meta *m, const void *rec, size_t len);
/* First retained and last LSN (0, 0 when empty). */
int meta_wal_bounds(cairn_meta *m, uint64_t *first, uint64_t *last);
/* Register (or move) a consumer: records >= acked+1 are kept for it. */
int meta_wal_consumer_set(cairn_meta *m, const char *name, uint64_t acked);
int meta_wal_consumer_remove(cairn_meta *m, const char *name);
/* Trim records past the horizon now (also done after commits). */
int meta_wal_trim(cairn_meta *m);
/* Decode a record header: lsn, op, entry count.  CAIRN_E_CORRUPT,
 * CAIRN_E_VERSION. */
int meta_wal_decode(const void *rec, size_t len, uint64_t *lsn, unsigned *op,
		    uint32_t *nentries);

/* SHA-256 over every replicated table (not the WAL itself): two
 * environments with equal digests hold the same metadata. */
int meta_digest(cairn_meta *m, uint8_t out[32]);

/* ---- log shipping support (docs/log-shipping.md) ---------------------- */

/* LSN of the last commit known to be on stable storage (a synced commit,
 * a flush of relaxed ones, meta_sync).  Only records up to it are shipped. */
uint64_t meta_durable_lsn(cairn_meta *m);

/* What a WAL record (as meta_wal_read hands it out) says about segments:
 * cb(seg, state, arg) once per `seg` put (state = the segment record's
 * state, META_SEG_*) and once per `chunk` put (seg = the segment the chunk
 * lies in, state = 0).  Deletes and logical entries are not reported.
 * Every length is checked before use.  Nonzero from cb stops the walk and
 * is returned.  CAIRN_E_CORRUPT, CAIRN_E_VERSION. */
typedef int (*meta_segref_fn)(uint64_t seg, uint32_t state, void *arg);
int meta_wal_segrefs(const void *rec, size_t len, meta_segref_fn cb, void *arg);

/* The writer epoch recorded in the replicated metadata (counter id 10,
 * docs/format.md): the log shipper writes it when a writer takes the
 * volume, so that the record is the fence in the shipped log.  0 when
 * never set.  set: CAIRN_E_INVAL for epoch 0 or a read transaction. */
int meta_writer_epoch_get(meta_txn *t, uint64_t *epoch);
int meta_writer_epoch_set(meta_txn *t, uint64_t epoch);

/* Images.  meta_image_write: a compact copy of the environment
 * (mdb_env_copy2 with MDB_CP_COMPACT; no write transaction is held) into
 * the new file path (CAIRN_E_EXISTS if it exists), fsynced; *lsn gets the
 * LSN of the last record the copy holds (read back from the copy).
 * meta_image_lsn: check that path is an image of this schema (format
 * counter; CAIRN_E_VERSION, CAIRN_E_CORRUPT naming path) and give its LSN.
 * meta_image_install: make the image at path the environment of directory
 * dir (created if missing; CAIRN_E_EXISTS if it holds an environment):
 * the file is moved in as data.mdb, its `wal` table and consumers are
 * cleared, its last LSN is kept, so that meta_open (writer) or meta_open
 * with opts.replica (then meta_wal_apply continues at LSN+1) opens it.
 * meta_replica_load: replace every replicated table of replica m (opened
 * with opts.replica) by the image's, in one write transaction (readers
 * see the old or the new namespace, never a mix); m's last LSN becomes the
 * image's.  CAIRN_E_INVAL if m is not a replica. */
int meta_image_write(cairn_meta *m, const char *path, uint64_t *lsn);
int meta_image_lsn(const char *path, uint64_t *lsn);
int meta_image_install(const char *path, const char *dir);
int meta_replica_load(cairn_meta *m, const char *path);

/* Log objects (docs/format.md "Log object"): a run of consecutive WAL
 * records with a header (magic, version, first and last LSN, record
 * count, the writer's epoch and instance id, time) and a crc32c over all.
 * Build one with meta_logbuf_add (records must follow on: LSN = last+1)
 * and meta_logbuf_finish (fills header and crc; b->p, b->len is then the
 * object).  meta_logobj_decode verifies everything before it calls cb
 * for any record (magic, version, lengths, crc32c, each record's own crc
 * via meta_wal_decode, LSNs dense from first to last): a bad object is
 * CAIRN_E_CORRUPT / CAIRN_E_VERSION and cb is never called. */
#define META_LOGOBJ_VERSION 1
typedef struct meta_logobj_hdr {
	uint64_t first, last;   /* LSNs; first <= last */
	uint32_t nrec;          /* = last - first + 1 */
	uint64_t epoch;         /* writer epoch (the lease it held) */
	uint8_t writer[16];     /* writer instance id */
	int64_t time_ns;        /* when the object was built */
} meta_logobj_hdr;
typedef struct meta_logbuf {
	uint8_t *p;
	size_t len, cap;
	uint32_t n;
	uint64_t first, last;
} meta_logbuf;
/* CAIRN_E_INVAL (LSN does not follow on; finish: no record),
 * CAIRN_E_CORRUPT (bad record), CAIRN_E_RANGE (object over 1 GiB). */
int meta_logbuf_add(meta_logbuf *b, const void *rec, size_t len);
int meta_logbuf_finish(meta_logbuf *b, uint64_t epoch, const uint8_t writer[16],
		       int64_t time_ns);
/* Empty the buffer for reuse (keeps the allocation). */
void meta_logbuf_reset(meta_logbuf *b);
void meta_logbuf_free(meta_logbuf *b);
int meta_logobj_decode(const void *buf, size_t len, meta_logobj_hdr *hdr,
		       meta_wal_fn cb, void *arg);

/* ---- fsck ------------------------------------------------------------- */

#define META_FSCK_REPAIR 0x1u
typedef struct meta_fsck_result {
	uint64_t inodes, dirents, extents, chunks, segments;
	uint64_t problems;  /* found */
	uint64_t repaired;
	uint64_t live_bytes;       /* sum of stored_len over chunk records */
	uint64_t referenced_bytes; /* sum of len over extent records */
} meta_fsck_result;

/* Full consistency check; one line per problem is written to report (may
 * be NULL).  With META_FSCK_REPAIR, safe repairs are committed (synced).
 * Returns 0 even when problems are found (see res->problems). */
int meta_fsck(cairn_meta *m, unsigned flags, FILE *report, meta_fsck_result *res);

#ifdef __cplusplus
}
#endif
#endif
