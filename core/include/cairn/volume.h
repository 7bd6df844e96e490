/*
 * cairn/volume.h - the volume API (library cairn_volume): one namespace whose
 * metadata lives in LMDB (meta/) and whose file data lives in packed
 * segments (segments/) in an object store.  The FUSE adapter and the CLI use
 * this header only; they never see LMDB or segment internals.
 *
 * Handles (opaque):
 *   cairn_volume  an open volume.  One owner process at a time (a lock file
 *                 in the volume directory names the owner's pid).
 *   cairn_file    an open regular file.  Every handle of one inode shares
 *                 one write buffer, so two handles see each other's writes.
 *
 * Guarantees (docs/volume.md explains the protocol behind each):
 *   1. A read returns the bytes of the latest completed writes (holes and
 *      bytes past a truncation read as zeros), or an error; every byte that
 *      came from disk or the store was verified against the crc32c written
 *      with it.  A mismatch is CAIRN_E_CORRUPT (EIO) with a log line naming
 *      the segment, never wrong bytes.
 *   2. volume_file_fsync() returns after the file's data and metadata are on
 *      local stable storage (durability local) or after the data is in the
 *      object store (durability remote).  Data closed but not fsynced
 *      reaches the metadata within commit_interval_ms; a crash may lose it,
 *      never half of one write call, and never corrupts the volume.
 *   3. Bytes written but not yet uploaded are capped (upload_cap): past the
 *      cap writers wait, and fail with CAIRN_E_NOSPC naming the store's
 *      last error when the store stays failing past upload_wait_ms.
 *   4. Every function is thread-safe.
 *
 * Errors are cairn_rc codes (cairn/err.h) with a context message
 * (cairn_errmsg()); cairn_rc_to_errno() gives the errno for FUSE.
 */
#ifndef CAIRN_VOLUME_H
#define CAIRN_VOLUME_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/uio.h>

#include "cairn/runtime.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cairn_volume cairn_volume;
typedef struct cairn_file cairn_file;

#define CAIRN_ROOT_INO 1ULL
#define CAIRN_VOLUME_CONF_VERSION 1
#define CAIRN_GC_GRACE_NONE (-1)

enum cairn_durability {
	CAIRN_DUR_LOCAL = 0,   /* fsync: data + metadata fsynced locally */
	CAIRN_DUR_REMOTE = 1,  /* fsync: data in the object store */
};

/* Options of volume_format.  Zeroed fields take the defaults. */
typedef struct cairn_format_opts {
	const char *store_url;  /* default "file://<dir>/store" */
	int zstd_level;         /* 0: 3; < 0: never compress */
	uint64_t segment_size;  /* seal packed segments at this size; 64 MiB */
} cairn_format_opts;

/* Options of volume_open.  Zeroed fields take the defaults. */
typedef struct cairn_volume_opts {
	cairn_objstore *store;  /* use this store (caller keeps ownership)
				   instead of the configured URL: tests and
				   benchmarks pass wrapped stores */
	cairn_uring *uring;     /* use this engine (caller owns it); NULL: the
				   volume opens one */
	int durability;         /* CAIRN_DUR_*; default local */
	uint64_t segment_size;  /* default: the configured one */
	unsigned seal_age_ms;   /* seal a non-empty staging segment this old;
				   default 3000 */
	unsigned commit_interval_ms; /* commit closed files' data; default 1000 */
	uint64_t upload_cap;    /* bytes not yet uploaded; default 1 GiB (at
				   least 2 segments) */
	unsigned upload_wait_ms; /* writers at the cap, and syncs waiting for
				    uploads, give up after this long without
				    an upload finishing; 30000 */
	uint64_t cache_size;    /* local cache of segment windows; 1 GiB */
	uint64_t local_keep;    /* uploaded segments' local copies kept; 1 GiB */
	uint64_t read_window;   /* bytes fetched around a missed chunk; 4 MiB */
	uint64_t inode_dirty_max; /* stage an open file's buffer past this; 8 MiB */
	uint64_t pending_max;   /* staged but uncommitted bytes; 32 MiB */
	int no_upload;          /* tests: never start uploads */
	/* Large files (docs/large-files.md).  A new file written sequentially
	 * from offset 0 goes to its own stream segment (spooled locally,
	 * uploaded by a parallel multipart upload while it is written) once
	 * it passes stream_threshold bytes. */
	uint64_t stream_threshold; /* default 16 MiB; UINT64_MAX: never */
	uint64_t stream_part_size; /* multipart part size; 16 MiB (at least
				      the store's minimum part size) */
	unsigned stream_inflight;  /* parts in flight per file; 8 */
	uint32_t stream_chunk_avg; /* content-defined chunks: average size,
				      a power of two; 4 MiB (min avg/4, max
				      avg*4) */
	uint64_t stream_commit_bytes; /* commit a stream's chunks every this
				      many bytes; 256 MiB */
	unsigned stream_readahead; /* chunks fetched ahead by sequential
				      reads of an uploaded stream; 8 */
	uint64_t readahead_mem;    /* most bytes of readahead memory for the
				      whole volume (every file's slots);
				      default 1 GiB, at least 64 MiB */
	int stream_multipart;      /* 1: upload streams by multipart while
				      they are written even when the store
				      takes a whole file by a link (file://
				      on the volume's file system; then the
				      sealed spool is linked in one put by
				      default, docs/large-files.md) */
	/* Space (docs/space.md). */
	int64_t gc_grace_ms;       /* dead segments are deleted this long after
				      they died; 0: default 1 hour;
				      CAIRN_GC_GRACE_NONE: at once (tests) */
	unsigned gc_interval_ms;   /* background gc pass every this long;
				      0: no background gc (the FUSE mount
				      runs one every 5 minutes) */
	int no_dedup;              /* never reference stored chunks by hash */
	/* Log shipping (docs/log-shipping.md): the write-ahead log and
	 * metadata images go to the store, so that the bucket alone can
	 * rebuild the volume and followers can tail it. */
	int no_ship;               /* 1: no shipping, no lease (tests, tools);
				      the bucket then cannot rebuild it */
	unsigned ship_interval_ms; /* ship durable records at least this
				      often; default 5000 */
	uint64_t image_log_bytes;  /* new image after this much shipped log;
				      default 256 MiB */
	unsigned image_interval_ms;/* ... or this long after the last one (if
				      anything was shipped); default 1 hour */
	int64_t ship_retention_ms; /* log objects and images older than the
				      newest image are deleted from the store
				      this long after it; default 1 hour */
	unsigned lease_ttl_ms;     /* a writer's lease is fresh this long
				      after its last renewal; default 30000 */
	int takeover;              /* 1: take the volume even when another
				      writer's lease is fresh (it is fenced) */
	/* Followers (volume_open_follower). */
	unsigned follow_poll_ms;   /* look for new log objects; default 1000 */
	unsigned follow_max_lag_ms;/* further behind than this: re-sync from
				      the newest image; default 10 minutes
				      (keep it below the writer's gc grace) */
} cairn_volume_opts;

/* File attributes (a copy of the metadata's inode record). */
typedef struct cairn_attr {
	uint64_t ino;
	uint32_t mode;
	uint32_t uid, gid;
	uint32_t nlink;
	uint32_t flags;
	uint64_t size;
	uint64_t rdev;
	int64_t atime_ns, mtime_ns, ctime_ns, btime_ns;
} cairn_attr;

#define CAIRN_SET_MODE  0x01u
#define CAIRN_SET_UID   0x02u
#define CAIRN_SET_GID   0x04u
#define CAIRN_SET_SIZE  0x08u
#define CAIRN_SET_ATIME 0x10u
#define CAIRN_SET_MTIME 0x20u
#define CAIRN_SET_CTIME 0x40u

typedef struct cairn_sattr {
	unsigned mask;   /* CAIRN_SET_* */
	uint32_t mode;
	uint32_t uid, gid;
	uint64_t size;
	int64_t atime_ns, mtime_ns, ctime_ns;
} cairn_sattr;

typedef struct cairn_statfs {
	uint64_t inodes, file_bytes, stored_bytes, segments, chunks;
} cairn_statfs;

/* Counters for tests, benchmarks and `cairn stats`. */
typedef struct cairn_volume_stats {
	uint64_t epoch;
	uint64_t segments_sealed, segments_uploaded, upload_failures;
	uint64_t commits, chunks_staged;
	uint64_t unuploaded_bytes;
	uint64_t upload_queue;     /* sealed segments waiting for (or in) upload */
	uint64_t reads_local, reads_store;  /* chunks read from local files /
					       through the cache or store */
	uint64_t streams;          /* stream segments started */
	uint64_t stream_parts;     /* multipart parts uploaded */
	uint64_t stream_part_digests; /* parts sent with the payload hash
				      computed as the spool was written */
	uint64_t stream_parts_mem; /* parts sent from a copy kept in memory
				      as the spool was written (not read
				      back from the spool) */
	uint64_t stream_part_retries;
	uint64_t reads_parallel;   /* chunks fetched by parallel ranged GETs */
	uint64_t reads_demand;     /* of those, fetched by a read for itself
				      (not ahead by the readahead) */
	/* Log shipping (writer) and following (follower). */
	uint64_t last_lsn;         /* last committed (writer) / applied
				      (follower) LSN */
	uint64_t shipped_lsn;      /* last LSN in the store */
	uint64_t ship_objects, ship_bytes, ship_failures;
	uint64_t images, image_lsn;/* images uploaded; LSN of the newest */
	uint64_t lease_epoch;      /* epoch of the lease held; 0: none */
	int fenced;                /* 1: another writer took over */
	int follower;              /* 1: a read-only follower */
	uint64_t follow_applied_objects, follow_resyncs;
	uint64_t follow_lag_ms;    /* now - when the follower last saw the
				      end of the store's log */
	uint64_t read_chunk_bytes; /* bytes of whole chunks fetched or decoded
				      to serve file reads (readahead GETs
				      counted when started) */
	uint64_t read_nocopy_bytes;/* bytes volume_file_read_to handed out
				      from readahead memory, uncopied */
	uint64_t readahead_bytes;  /* readahead memory held now (at most
				      opts.readahead_mem) */
	uint64_t readahead_refused;/* chunks not fetched ahead (or read the
				      ordinary way) because that memory was
				      at its bound */
	uint64_t uploads_active;   /* queue entries being uploaded now */
	uint64_t uploads_active_max; /* most at once since open (the
				      uploader workers, VOL_UPLOADERS) */
} cairn_volume_stats;

/* ---- volume ---- */

/* Create a volume in dir (created if missing; must not hold a volume):
 * config file, metadata environment, staging and cache directories, and,
 * for the default store, the store directory.  opts may be NULL.
 * Errors: CAIRN_E_EXISTS (already formatted), CAIRN_E_INVAL, CAIRN_E_IO. */
int volume_format(const char *dir, const cairn_format_opts *opts);

/* Open the volume in dir: take the owner lock, bump the writer epoch,
 * open metadata and store, recover (upload pending sealed segments, cut
 * the open staging segment to its committed high-water mark).  opts may
 * be NULL.  Errors: CAIRN_E_NOTFOUND (no volume in dir), CAIRN_E_VERSION
 * (config of an unknown version), CAIRN_E_CORRUPT (bad config),
 * CAIRN_E_BUSY (another process owns it; the message names its pid), and
 * the errors of the metadata engine and the store. */
int volume_open(const char *dir, const cairn_volume_opts *opts,
		cairn_volume **out);

/* Commit everything, seal the staging segment, try one round of uploads
 * (what fails is uploaded at the next open), and free.  Close every file
 * handle first: handles left open are invalid afterwards (their buffered
 * data is committed).  Returns the first error met (vol is freed anyway). */
int volume_close(cairn_volume *vol);

/* Record what the owner is doing (e.g. "mounted at /mnt/x; unmount it with
 * 'cairn umount /mnt/x'") in the volume's lock file beside its pid, so that
 * a second opener's CAIRN_E_BUSY message names it.  note is one line of at
 * most 3000 bytes.  Errors: CAIRN_E_INVAL (too long or not one line),
 * CAIRN_E_IO. */
int volume_set_owner_note(cairn_volume *vol, const char *note);

/* Commit every file's buffered data (stage + one synced commit); with
 * durability remote also seal and wait for the uploads. */
int volume_sync(cairn_volume *vol);

/* Forget local copies of uploaded segments and the window cache, so the
 * next reads go to the store (tests, benchmarks of cold reads). */
int volume_drop_cache(cairn_volume *vol);

void volume_stats(cairn_volume *vol, cairn_volume_stats *out);
/* The volume's UUID as 36 characters + NUL. */
void volume_uuid(const cairn_volume *vol, char out[37]);

/* ---- log shipping, recovery, followers (docs/log-shipping.md) ---- */

/* Ship every record committed before the call (syncing the metadata
 * first) and return once it is in the store: what fsync in remote mode,
 * volume_sync_durable(REMOTE) and checkpoint publication wait for.
 * Errors: CAIRN_E_FENCED (another writer took the volume: nothing this
 * writer commits from now on reaches the store), store errors,
 * CAIRN_E_UNSUPPORTED when opened with no_ship. */
int volume_ship_flush(cairn_volume *vol);

typedef struct cairn_recover_opts {
	const char *store_url;   /* the store holding the volume */
	cairn_objstore *store;   /* or this one (tests); caller owns it */
	const char *uuid;        /* which volume when the store holds several */
	int force;               /* recover even while a writer's lease is
				    fresh (that writer will be fenced) */
} cairn_recover_opts;

typedef struct cairn_recover_result {
	char uuid[37];
	uint64_t image_lsn;      /* the image recovery started from */
	uint64_t lsn;            /* recovered up to and including this LSN */
	int64_t time_ns;         /* commit time of that record */
	uint64_t log_objects, records;
	uint64_t epoch;          /* epoch the new volume directory starts at */
	uint64_t fsck_problems;
} cairn_recover_result;

/* Rebuild a volume in dir (created; must not hold a volume) from its
 * store alone: newest image, every later log object in LSN order, then
 * fsck; volume.conf gets an epoch above every epoch the store has seen.
 * The volume is left closed; its next volume_open takes the lease.
 * Errors: CAIRN_E_NOTFOUND (no volume or no image in the store),
 * CAIRN_E_INVAL (several volumes and no uuid), CAIRN_E_CORRUPT (a log
 * object or image failed its checks, or the log has a gap: the message
 * names the LSN and the key), CAIRN_E_BUSY (a writer's lease is fresh
 * and force is 0: the message names it), CAIRN_E_EXISTS. */
int volume_recover_store(const char *dir, const cairn_recover_opts *o,
			 cairn_recover_result *res);

/* Open a read-only follower of the volume in store_url: dir is the
 * follower's own directory (metadata replica, cache), created if missing.
 * It starts from the newest image (or where dir left off), applies new
 * log objects every follow_poll_ms, and re-syncs from a newer image when
 * it falls further behind than follow_max_lag_ms or the log it needs was
 * trimmed.  Reads see whole transactions only.  Every call that would
 * change the volume returns CAIRN_E_ROFS.  Errors as volume_open and
 * volume_recover_store. */
int volume_open_follower(const char *dir, const char *store_url,
			 const cairn_volume_opts *opts, cairn_volume **out);

/* ---- namespace (errors as cairn/meta.h lists them) ---- */

int volume_lookup(cairn_volume *vol, uint64_t parent, const char *name,
		  cairn_attr *out);
/* The size (and mtime) include data still buffered in memory. */
int volume_getattr(cairn_volume *vol, uint64_t ino, cairn_attr *out);
/* CAIRN_SET_SIZE truncates or extends, buffered data included. */
int volume_setattr(cairn_volume *vol, uint64_t ino, const cairn_sattr *sa,
		   cairn_attr *out);
int volume_mknod(cairn_volume *vol, uint64_t parent, const char *name,
		 uint32_t mode, uint64_t rdev, uint32_t uid, uint32_t gid,
		 cairn_attr *out);
int volume_create(cairn_volume *vol, uint64_t parent, const char *name,
		  uint32_t mode, uint32_t uid, uint32_t gid, cairn_attr *out);
int volume_mkdir(cairn_volume *vol, uint64_t parent, const char *name,
		 uint32_t mode, uint32_t uid, uint32_t gid, cairn_attr *out);
int volume_symlink(cairn_volume *vol, uint64_t parent, const char *name,
		   const char *target, uint32_t uid, uint32_t gid,
		   cairn_attr *out);
int volume_readlink(cairn_volume *vol, uint64_t ino, char *buf, size_t size,
		    size_t *len);
int volume_unlink(cairn_volume *vol, uint64_t parent, const char *name);
int volume_rmdir(cairn_volume *vol, uint64_t parent, const char *name);
int volume_link(cairn_volume *vol, uint64_t ino, uint64_t newparent,
		const char *newname, cairn_attr *out);
#define CAIRN_RENAME_NOREPLACE 0x1u
#define CAIRN_RENAME_EXCHANGE  0x2u
int volume_rename(cairn_volume *vol, uint64_t sparent, const char *sname,
		  uint64_t dparent, const char *dname, unsigned flags);
/* Entries after cookie (0: from the start) in cookie order; cb returns
 * nonzero to stop. "." and ".." are not listed. */
typedef int (*cairn_dirent_fn)(const char *name, size_t namelen, uint64_t ino,
			       uint32_t type, uint64_t cookie, void *arg);
int volume_readdir(cairn_volume *vol, uint64_t dir, uint64_t cookie,
		   cairn_dirent_fn cb, void *arg);
#define CAIRN_XATTR_CREATE  0x1u
#define CAIRN_XATTR_REPLACE 0x2u
int volume_xattr_set(cairn_volume *vol, uint64_t ino, const char *name,
		     const void *val, size_t len, unsigned flags);
int volume_xattr_get(cairn_volume *vol, uint64_t ino, const char *name,
		     void *buf, size_t size, size_t *len);
int volume_xattr_list(cairn_volume *vol, uint64_t ino, char *buf, size_t size,
		      size_t *len);
int volume_xattr_remove(cairn_volume *vol, uint64_t ino, const char *name);
int volume_statfs(cairn_volume *vol, cairn_statfs *out);

/* ---- files ---- */

/* Open regular file ino.  Errors: CAIRN_E_NOTFOUND, CAIRN_E_ISDIR,
 * CAIRN_E_INVAL (not a regular file). */
int volume_file_open(cairn_volume *vol, uint64_t ino, cairn_file **out);

/* Read up to len bytes at off; *got < len only at end of file.
 * Errors: CAIRN_E_CORRUPT (checksum mismatch), CAIRN_E_IO, store errors. */
int volume_file_read(cairn_file *f, void *buf, size_t len, uint64_t off,
		     size_t *got);
/* What volume_file_read_to hands the bytes to: iov[0..niov) hold the len
 * bytes read, in order, valid only until fn returns.  Returns 0 or a
 * cairn_rc. */
typedef int (*cairn_read_fn)(void *arg, const struct iovec *iov, int niov,
			     size_t len);
/* volume_file_read without a copy where the volume holds the bytes: the
 * range [off, off+len) (shorter only at end of file; empty past it) goes
 * to fn(arg, ...) once.  When the whole range lies in chunks of a large
 * file that the readahead holds (verified, docs/large-files.md "Read
 * path"), the pieces point into that memory, kept for the call; otherwise
 * the range is read into buf (len bytes, the caller's) and fn gets that
 * one piece.  fn runs with no volume lock held, but must not close f.
 * Returns the read's error (fn is then not called) or fn's result.
 * Errors: those of volume_file_read. */
int volume_file_read_to(cairn_file *f, void *buf, size_t len, uint64_t off,
			cairn_read_fn fn, void *arg);
/* Write len bytes at off (holes before off read as zeros).
 * Errors: CAIRN_E_FBIG, CAIRN_E_NOSPC (upload cap, store down),
 * CAIRN_E_IO (the volume failed earlier: reopen it). */
int volume_file_write(cairn_file *f, const void *buf, size_t len, uint64_t off);
/* Write at the end of the file; *off (may be NULL) gets where. */
int volume_file_append(cairn_file *f, const void *buf, size_t len,
		       uint64_t *off);
int volume_file_truncate(cairn_file *f, uint64_t size);
/* See guarantee 2. */
int volume_file_fsync(cairn_file *f);
uint64_t volume_file_ino(const cairn_file *f);
/* Stage the buffered data (committed within commit_interval_ms) and free
 * the handle.  Returns staging errors (the handle is freed anyway).
 * NULL is a no-op. */
int volume_file_close(cairn_file *f);

/* Copy file bytes [src_off, src_off+len) of src to dst at dst_off by
 * sharing extents (copy_file_range(2), docs/volume.md "Copies and
 * holes"): no data moves and no chunk is created; dst's range maps the
 * same chunk bytes as src's (a later write to either file remaps only that
 * file), holes of src become holes of dst.  Both files' buffered data is
 * committed first; the remapping is one metadata transaction (relaxed,
 * like other namespace changes: volume_file_fsync(dst) makes it durable).
 * The copy stops at the end of src: *copied gets the bytes copied (0 at or
 * past the end).  dst grows to dst_off + *copied if shorter; its mtime and
 * ctime change.  Byte offsets need no alignment.
 * Errors: CAIRN_E_INVAL (handles of another volume, or src and dst the
 * same file with overlapping ranges: callers wanting that copy through
 * a buffer), CAIRN_E_FBIG (dst range past the size limit), CAIRN_E_ROFS
 * (dst in a snapshot), and the errors of volume_file_fsync. */
int volume_copy_range(cairn_volume *vol, cairn_file *src, uint64_t src_off,
		      cairn_file *dst, uint64_t dst_off, uint64_t len,
		      uint64_t *copied);

/* lseek(2) SEEK_DATA / SEEK_HOLE (the values of <unistd.h>): *out gets
 * the first offset >= off inside data (SEEK_DATA) or inside a hole
 * (SEEK_HOLE; the end of the file counts as a hole).  Holes are the
 * ranges never written (sparse writes, extending truncation); buffered
 * data is committed first.  Errors: CAIRN_E_NXIO (off at or past the end
 * of the file, or SEEK_DATA with no data after off: ENXIO, as Linux),
 * CAIRN_E_INVAL (another whence). */
int volume_seek_data(cairn_file *f, uint64_t off, int whence, uint64_t *out);

/* ---- snapshots and clones (docs/volume.md "Snapshots and clones") ---- */

#define CAIRN_SNAP_NAME_MAX 255
typedef struct cairn_snap {
	char name[CAIRN_SNAP_NAME_MAX + 1];
	uint64_t root;     /* root inode of the read-only tree */
	uint64_t src;      /* inode it was taken from */
	int64_t ctime_ns;
	uint64_t entries;  /* inodes in the tree */
} cairn_snap;

/* Snapshot the tree under directory src as a read-only tree named name.
 * Buffered data of every open file is committed first, so the snapshot
 * holds every completed write.  One metadata transaction: no data is
 * copied.  Errors: CAIRN_E_EXISTS, CAIRN_E_NOTDIR, CAIRN_E_NAMETOOLONG,
 * CAIRN_E_INVAL (empty name). */
int volume_snapshot_create(cairn_volume *vol, uint64_t src, const char *name,
			   cairn_snap *out);
/* CAIRN_E_NOTFOUND. */
int volume_snapshot_get(cairn_volume *vol, const char *name, cairn_snap *out);
/* In name order; cb returns nonzero to stop (not an error). */
typedef int (*cairn_snap_fn)(const cairn_snap *s, void *arg);
int volume_snapshot_list(cairn_volume *vol, cairn_snap_fn cb, void *arg);
/* Free the tree; its data becomes garbage once nothing else references
 * it.  CAIRN_E_NOTFOUND. */
int volume_snapshot_delete(cairn_volume *vol, const char *name);
/* Writable copy of src (a directory tree or a file, live or inside a
 * snapshot) as dparent/dname, sharing all data (copy-on-write): later
 * writes to either side never show in the other.  Buffered data is
 * committed first.  CAIRN_E_EXISTS, CAIRN_E_ROFS (dparent read-only). */
int volume_clone(cairn_volume *vol, uint64_t src, uint64_t dparent,
		 const char *dname, cairn_attr *out);

/* volume_sync with the given durability, whatever the volume's default:
 * CAIRN_DUR_REMOTE returns once every committed byte is in the object
 * store (what a checkpoint publish waits for). */
int volume_sync_durable(cairn_volume *vol, int durability);

/* ---- space: accounting, garbage collection, compaction (docs/space.md) - */

typedef struct cairn_space {
	uint64_t logical_bytes;   /* sum of file sizes, snapshots included */
	uint64_t referenced_bytes;/* bytes of extents mapped to chunks, counted
				     once per extent record */
	uint64_t live_bytes;      /* stored bytes of live chunks */
	uint64_t stored_bytes;    /* bytes of all segments not yet deleted */
	uint64_t reclaimable_bytes; /* stored - live: freed by gc/compaction */
	uint64_t segments, segments_dead, chunks;
	double dedup_ratio;       /* referenced / live (1.0 when empty) */
	double live_fraction;     /* live / stored (1.0 when empty) */
} cairn_space;
/* Errors: as meta reads. */
int volume_space(cairn_volume *vol, cairn_space *out);

typedef struct cairn_gc_opts {
	int dry_run;              /* report, change nothing */
	int64_t grace_ms;         /* < 0: the volume's (default 1 hour) */
	double compact_below;     /* compact segments whose live fraction is
				     below this; < 0: default 0.5; 0: never */
	uint64_t compact_max_bytes; /* bytes rewritten per pass; 0: 1 GiB */
	uint64_t delete_batch;    /* objects deleted per batch; 0: 64 */
	int no_orphans;           /* skip listing the store for orphans */
} cairn_gc_opts;

typedef struct cairn_gc_result {
	uint64_t segments_examined;
	uint64_t segments_marked_dead;   /* live -> dead this pass */
	uint64_t segments_deleted;       /* objects deleted (or would be) */
	uint64_t bytes_deleted;
	uint64_t segments_waiting;       /* dead, inside the grace period */
	uint64_t bytes_waiting;
	uint64_t orphans_found;          /* store objects metadata does not know */
	uint64_t orphans_deleted;
	uint64_t orphan_bytes;
	uint64_t segments_compacted;
	uint64_t chunks_moved;
	uint64_t bytes_rewritten;
} cairn_gc_result;

void volume_gc_opts_init(cairn_gc_opts *o);
/* One pass of garbage collection and compaction (docs/space.md).  Safe
 * while the volume is in use and against a crash at any point.  opts may
 * be NULL.  Errors: store and metadata errors, with what was done so far
 * in *res. */
int volume_gc(cairn_volume *vol, const cairn_gc_opts *opts,
	      cairn_gc_result *res);

/* What the tree under ino (a directory or a file, live or in a snapshot)
 * holds: files and directories, logical bytes (sum of file sizes), stored
 * bytes of the chunks it references, and of those the bytes referenced by
 * nothing outside the tree (what deleting it would free).  One read
 * transaction; O(inodes + extents of the tree). */
typedef struct cairn_tree_usage {
	uint64_t files, dirs, symlinks;
	uint64_t logical_bytes;
	uint64_t stored_bytes;
	uint64_t unique_bytes;
} cairn_tree_usage;
int volume_tree_usage(cairn_volume *vol, uint64_t ino, cairn_tree_usage *out);

/* ---- consistency ---- */

#define CAIRN_FSCK_REPAIR 0x1u
typedef struct cairn_fsck_result {
	uint64_t inodes, dirents, extents, chunks, segments;
	uint64_t problems, repaired;
	uint64_t live_bytes;      /* recounted from the chunk records */
	uint64_t referenced_bytes;/* recounted from the extent records */
} cairn_fsck_result;
/* Full metadata check (meta_fsck) plus, per segment, that the store holds
 * its object (or the local file for segments not yet uploaded) with the
 * recorded size.  One line per problem to report (may be NULL).  Returns
 * 0 even when problems are found (res->problems). */
int volume_fsck(cairn_volume *vol, unsigned flags, FILE *report,
		cairn_fsck_result *res);

#ifdef __cplusplus
}
#endif
#endif
