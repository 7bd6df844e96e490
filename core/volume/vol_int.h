/*
 * vol_int.h - private structures of the volume layer (core/volume/).
 *
 *   vol_open.c   volume directory, config, owner lock, open/close, recovery
 *   vol_ns.c     namespace passthrough to meta/
 *   vol_file.c   per-inode write buffers, file read/write/truncate/fsync
 *   vol_stage.c  staging segment, commit, seal, uploader, chunk reads
 *   vol_stream.c large files: stream segments, multipart uploads from the
 *                spool, parallel reads and readahead (docs/large-files.md)
 *   vol_fuse.c   extent-sharing copies (copy_file_range), SEEK_DATA/HOLE
 *   vol_gc.c     space: accounting, garbage collection, compaction, the
 *                background gc thread, volume fsck (docs/space.md)
 *   vol_ship.c   log shipping, writer side: the lease, the shipper thread,
 *                images, fencing (docs/log-shipping.md)
 *   vol_rebuild.c  log shipping, reading side: volume_recover_store and the
 *                readers of the shipped metadata followers share
 *   vol_follow.c read-only followers: replica, tailer thread, re-sync
 *                (vol->fl; VOL_RO_CHECK in every call that changes)
 *   vol_storeutil.c  store helpers of both sides of log shipping: listing,
 *                whole small objects, hex key names, versioned text objects
 *
 * Lock order (never taken in the other direction):
 *   vinode.lk  ->  vol.st_mu  ->  vol.up_mu
 *   vol.it_mu is taken alone (to pin or unpin a vinode), or before a
 *   vinode lock only by the background pruner, which holds nothing else.
 *   vol.rd_mu (segment readers) is a leaf, and so is the shipper's
 *   vship.mu (vol_ship.c), which is never held across store I/O.
 *   vol.gc_mu (one gc pass at a time) is taken before anything else and
 *   held across the pass, which takes the others as any reader does.
 *   Two vinode locks are held together only by volume_copy_range
 *   (vol_fuse.c), lower inode number first.
 *   A stream (vinode.st) is used under vinode.lk (written under the write
 *   lock); its readahead's vra.mu is a leaf taken under vinode.lk (read).
 */
#ifndef CAIRN_VOL_INT_H
#define CAIRN_VOL_INT_H

#include <pthread.h>
#include <stdint.h>

#include "cairn/meta.h"
#include "cairn/segment.h"
#include "cairn/volume.h"

#define VOL_MOD "volume"
#define VOL_CHUNK_MAX (4u << 20)   /* largest chunk staged */
#define VOL_PART_MEM (128ull << 20) /* most part copies kept in memory */

/* One in-memory range of an inode's data, oldest first in the list.
 * gen 0: dirty (only in memory); gen > 0: appended to a staging segment in
 * commit generation gen, kept until vol.committed_gen >= gen. */
typedef struct vbuf {
	struct vbuf *next;
	uint64_t off, len;
	uint64_t cap;           /* bytes allocated at data (>= len) */
	uint64_t gen;
	uint8_t *data;
} vbuf;

typedef struct vinode {
	struct vinode *hnext;
	uint64_t ino;
	unsigned pins;          /* handles and transient users (under it_mu) */
	pthread_rwlock_t lk;
	vbuf *head, *tail;      /* under lk */
	uint64_t dirty_bytes;   /* bytes in gen-0 vbufs */
	uint64_t size;          /* the file size, buffered data included */
	int64_t mtime_ns;       /* last write, 0 if none buffered */
	int mtime_set;          /* an explicit mtime (setattr) came after the
				   last buffered write: staging it keeps the
				   inode's times */
	struct vstream *st;     /* large file being streamed (vol_stream.c) */
	struct vra *ra;         /* readahead of uploaded stream chunks
				   (vol_stream.c); set once under rd_mu */
} vinode;

struct cairn_file {
	cairn_volume *vol;
	vinode *vi;
};

/* A chunk appended to the staging segment, not yet committed. */
typedef struct vpend {
	uint64_t ino, off, len;
	seg_frame fr;
	int64_t wtime_ns;       /* when it was written: the commit sets the
				   inode's mtime to it; 0: keep the times (an
				   explicit mtime was set since) */
	uint64_t chunk_id;      /* out of the commit */
} vpend;

/* A segment waiting for (or kept after) its upload. */
typedef struct vseg {
	uint64_t id;
	uint64_t size;
	char key[SEG_KEY_MAX];
	uint64_t acct;          /* bytes it counts in q_bytes */
	int stream;             /* a stream segment: multipart upload */
	struct vmpu *job;       /* its upload begun while it was written */
	int busy;               /* an uploader worker has it (up_mu) */
} vseg;

typedef struct vreader {
	uint64_t seg;
	seg_reader *r;
	unsigned refs;
	uint64_t used;
} vreader;

#define VOL_READERS 32
/* Uploader workers (vol_stage.c): queue entries uploaded at once, so that
 * one upload's completion (a server-side copy on some stores) overlaps
 * the next ones' parts. */
#ifndef VOL_UPLOADERS
#define VOL_UPLOADERS 4
#endif

struct cairn_volume {
	char *dir;
	uint8_t uuid[16];
	uint8_t instance[16];   /* this directory's id (volume.conf) */
	uint64_t conf_segment_size; /* volume.conf's (meta/volume) */
	uint64_t epoch;
	char store_url[1024];
	int zstd_level;
	cairn_volume_opts o;
	int lock_fd;

	cairn_meta *meta;
	cairn_uring *u;
	int own_u;
	cairn_objstore *os;
	int own_os;
	seg_cache *cache;

	/* inode table */
	pthread_mutex_t it_mu;
	vinode **itab;
	size_t ibuckets;
	size_t nfiles;          /* open handles */

	/* staging (st_mu) */
	pthread_mutex_t st_mu;
	seg_writer *w;
	uint64_t w_seg;
	char w_key[SEG_KEY_MAX];
	vpend *pend;
	size_t npend, cpend;
	uint64_t pend_bytes;
	uint64_t gen;           /* generation being staged */
	uint64_t committed_gen; /* atomic: every gen <= this is committed */
	int broken;             /* sticky error code (st_mu) */
	char broken_msg[256];
	uint64_t *prune, nprune, cprune; /* inodes to prune after commits */

	/* uploads (up_mu) */
	pthread_mutex_t up_mu;
	pthread_cond_t up_cv;   /* wakes the background threads */
	pthread_cond_t done_cv; /* an upload finished or failed */
	vseg *q;                /* sealed segments to upload, in order */
	size_t nq, cq;
	uint64_t q_bytes;
	uint64_t cur_size;      /* atomic: size of the staging segment */
	uint64_t sp_bytes;      /* atomic: spooled stream bytes not uploaded
				   of streams still being written */
	uint64_t pm_bytes;      /* atomic: part copies held in memory
				   (vol_stream.c "part digests") */
	uint64_t pm_cap;        /* their limit, set at open */
	vseg *kept;             /* uploaded segments with a local copy */
	size_t nkept, ckept;
	uint64_t kept_bytes;
	int64_t fail_since_ms;  /* 0 while the store works */
	char last_err[512];
	int stop, draining;
	int seal_req;
	pthread_t up_thr[VOL_UPLOADERS], bg_thr;
	unsigned nup_thr;       /* uploader workers started */
	unsigned up_active, up_active_max; /* entries being uploaded (up_mu) */
	int threads;

	/* segment readers (rd_mu) */
	pthread_mutex_t rd_mu;
	vreader rd[VOL_READERS];
	uint64_t rd_clock;

	/* stats (atomics) */
	cairn_volume_stats st;

	/* gc (vol_gc.c): gc_mu serializes passes; the background thread
	 * sleeps on gc_cv under gc_wmu until gc_stop */
	pthread_mutex_t gc_mu;
	pthread_mutex_t gc_wmu;
	pthread_cond_t gc_cv;
	int gc_stop;            /* atomic: stop the thread, cut a pass short */
	int gc_thread;          /* the background thread runs */
	pthread_t gc_thr;

	/* follower (vol_follow.c): NULL for a writer */
	struct vfollow *fl;

	/* log shipping, writer side (vol_ship.c): NULL with opts.no_ship */
	struct vship *ship;
};

/* vol_open.c */
int64_t vol_now_ms(void);
void vol_attr_from(const meta_attr *a, cairn_attr *o);
void vol_seg_path(const cairn_volume *vol, uint64_t seg, char *buf, size_t size);

/* vol_open.c: pieces of the volume directory for vol_rebuild.c and
 * vol_follow.c (which build volumes without volume_open). */
void vol_uuid_fmt(const uint8_t u[16], char out[37]);
int vol_uuid_parse(const char *s, uint8_t u[16]);
int vol_mkdir(const char *path);
int vol_fsync_dir(const char *dir);
/* Write a new volume.conf (atomically) in dir; instance may be NULL (the
 * first open makes one). */
int vol_conf_create(const char *dir, const uint8_t uuid[16], const char *store,
		    int zstd_level, uint64_t segment_size, uint64_t epoch,
		    const uint8_t instance[16]);
int vol_conf_epoch(const char *dir, uint64_t *epoch);
/* The owner lock of vol->dir (vol->lock_fd). */
int vol_lock(cairn_volume *vol);
/* Fill the options left zero in vol->o with their defaults. */
void vol_opts_defaults(cairn_volume *vol, uint64_t segment_size);
/* A new handle: its locks, directory name and inode table of ibuckets
 * buckets set up, nothing opened (lock_fd -1).  CAIRN_E_NOMEM says
 * "<what> <dir>".  vol_destroy frees it. */
int vol_alloc(const char *dir, size_t ibuckets, const char *what, cairn_volume **out);
/* The io_uring and the object store at store_url: the caller's (opts), or
 * opened here and owned.  A failure to open the store is wrapped in
 * store_ctx. */
int vol_open_uring_store(cairn_volume *vol, const char *store_url, const char *store_ctx);
/* Read the small text file path (volume.conf, follow.conf) into text,
 * NUL-terminated; a file of size - 1 bytes or more is CAIRN_E_CORRUPT (too
 * long).  A missing file is CAIRN_E_NOTFOUND with no message set (the
 * caller says what it means); CAIRN_E_IO. */
int vol_conf_text_read(const char *path, char *text, size_t size);
/* Free every in-memory inode (buffers, streams, readahead) at close. */
void vol_vinodes_free(cairn_volume *vol);
/* Free a handle that volume_open did not finish (or a follower's). */
void vol_destroy(cairn_volume *vol);

/* vol_storeutil.c: object-store helpers of log shipping (both sides). */
#define VOL_TEXT_MAX 4096   /* small text objects (meta/volume, leases,
			       image manifests) */
/* The wall clock in ms (leases and manifests carry it). */
int64_t vol_wall_ms(void);
/* Call cb for every key under prefix, in the store's order; a non-zero
 * return of cb stops the walk and is returned.  A listing failure is
 * wrapped as "list <prefix>". */
typedef int (*vol_list_fn)(const cairn_obj_entry *e, void *arg);
int vol_store_list(cairn_objstore *os, const char *prefix, vol_list_fn cb, void *arg);
/* Every key under prefix, sorted (strcmp); vol_keys_free. */
typedef struct vkeys {
	char **k;
	size_t n, cap;
} vkeys;
int vol_store_keys(cairn_objstore *os, const char *prefix, vkeys *out);
void vol_keys_free(vkeys *l);
/* Exactly 16 lower-case hex digits in s[0..n) (vol_hex16), or in key after
 * prefix (vol_key_hex): 0, else -1. */
int vol_hex16(const char *s, size_t n, uint64_t *out);
int vol_key_hex(const char *key, const char *prefix, uint64_t *out);
/* A whole object of at most max bytes (malloc'd, NUL-terminated after
 * *len bytes).  CAIRN_E_CORRUPT when larger, or when it changed size
 * between the head and the get. */
int vol_shipped_get(cairn_objstore *os, const char *key, uint64_t max, uint8_t **buf,
		    size_t *len);
/* A versioned text object: "<magic> 1" then "key = value" lines, each key
 * of kv at most once and no other key; blank and '#' lines skipped
 * (docs/log-shipping.md).  CAIRN_E_CORRUPT, CAIRN_E_VERSION, naming
 * objkey.  vol_text_u64: a present, unsigned number in base. */
typedef struct vtkv {
	const char *key;
	int have;
	char val[200];
} vtkv;
int vol_text_parse(const char *objkey, const uint8_t *buf, size_t len, const char *magic,
		   vtkv *kv, size_t nkv);
int vol_text_u64(const char *objkey, const vtkv *kv, int base, uint64_t *out);

/* vol_rebuild.c: readers of the shipped metadata under v/<uuid>/meta/
 * (docs/log-shipping.md), shared by recovery and followers.  vpfx is
 * "v/<uuid>/". */
typedef struct vshipped_vol {
	uint8_t uuid[16];
	uint64_t segment_size;
	int zstd_level;
} vshipped_vol;
typedef struct vshipped_img {
	uint64_t lsn, epoch, size;
	uint32_t crc;
	int64_t time_ms;
} vshipped_img;
/* The volume named by uuid (checked), or the only one in the store:
 * CAIRN_E_NOTFOUND (none), CAIRN_E_INVAL (several). */
int vol_shipped_find(cairn_objstore *os, const char *uuid, uint8_t out[16]);
/* meta/volume: CAIRN_E_NOTFOUND, CAIRN_E_CORRUPT, CAIRN_E_VERSION. */
int vol_shipped_volume(cairn_objstore *os, const char *vpfx, vshipped_vol *out);
/* LSN of the newest image manifest (0: none). */
int vol_shipped_image_newest(cairn_objstore *os, const char *vpfx, uint64_t *lsn);
/* Download the newest image with LSN > above whose manifest, size, crc32c
 * and schema check out into the new file path.  CAIRN_E_NOTFOUND (none),
 * CAIRN_E_CORRUPT (every candidate failed). */
int vol_shipped_image(cairn_objstore *os, const char *vpfx, uint64_t above,
		      const char *path, vshipped_img *out);
/* First LSNs of the log objects under meta/wal/, ascending (malloc'd). */
int vol_shipped_log_list(cairn_objstore *os, const char *vpfx, uint64_t **firsts,
			 size_t *n);
/* Verify the log object buf (all of it, meta_logobj_decode) and apply its
 * records after *applied to m (meta_wal_apply); *applied moves on, records
 * and time_ns (commit time of the last one) are updated.  CAIRN_E_CORRUPT
 * naming key. */
int vol_shipped_apply(cairn_meta *m, const char *key, const uint8_t *buf, size_t len,
		      uint64_t *applied, uint64_t *records, int64_t *time_ns);

/* vol_follow.c: read-only followers (docs/log-shipping.md).  Every public
 * call that would change the volume starts with VOL_RO_CHECK. */
#define VOL_RO_CHECK(vol) \
	do { if ((vol)->fl) return vol_follow_rofs((vol), __func__); } while (0)
int vol_follow_rofs(cairn_volume *vol, const char *what);
/* volume_close of a follower. */
int vol_follow_close(cairn_volume *vol);
/* Follower fields of volume_stats. */
void vol_follow_stats(cairn_volume *vol, cairn_volume_stats *out);
/* A read of a follower failed with rc: a segment object the writer's gc
 * deleted becomes CAIRN_E_IO with a message, and wakes the tailer. */
int vol_follow_read_error(cairn_volume *vol, int rc);

/* vol_ship.c (docs/log-shipping.md).  Open: vol_ship_claim (store open,
 * before the epoch is written: *epoch gets the epoch to use, above every
 * lease in the store and conf_epoch), vol_ship_check (metadata open: the
 * stale-directory check), vol_ship_start (after recovery: the fence record
 * and the shipper thread).  Close: vol_ship_stop (a last round, the lease
 * released), vol_ship_free.  All are no-ops with opts.no_ship. */
int vol_ship_claim(cairn_volume *vol, uint64_t conf_epoch, uint64_t *epoch);
int vol_ship_check(cairn_volume *vol);
int vol_ship_start(cairn_volume *vol);
void vol_ship_stop(cairn_volume *vol);
void vol_ship_free(cairn_volume *vol);
void vol_ship_stats(cairn_volume *vol, cairn_volume_stats *out);
/* gc: whether objects may be deleted now (the lease is held, not fenced;
 * always with no_ship); segments ids[0..n) died in the record lsn; whether
 * the death of seg is shipped (forgetting it when it is); kick the shipper
 * and wait for one round when lsn is not shipped yet. */
int vol_ship_gc_ok(cairn_volume *vol);
/* Whether segments may be uploaded: the lease of this run's epoch is held
 * and the store's log checked (an epoch taken while the store did not
 * answer may be another writer's, and so may every key under
 * seg/<epoch>/; a stale directory's too); always without shipping. */
int vol_ship_upload_ok(cairn_volume *vol);
void vol_ship_died(cairn_volume *vol, const uint64_t *ids, size_t n, uint64_t lsn);
int vol_ship_death_shipped(cairn_volume *vol, uint64_t seg, uint64_t *death_lsn);
void vol_ship_forget(cairn_volume *vol, uint64_t seg);
void vol_ship_wait_lsn(cairn_volume *vol, uint64_t lsn);
/* fsync (remote), volume_sync_durable(REMOTE): volume_ship_flush when
 * shipping is on, else 0. */
int vol_ship_flush_if_on(cairn_volume *vol);

/* vol_gc.c: the background gc thread (gc_interval_ms > 0). */
int vol_gc_start(cairn_volume *vol);
void vol_gc_stop(cairn_volume *vol);

/* vol_file.c */
vinode *vol_vinode_find(cairn_volume *vol, uint64_t ino);  /* pinned or NULL */
int vol_vinode_get(cairn_volume *vol, uint64_t ino, uint64_t size, vinode **out);
void vol_vinode_unpin(cairn_volume *vol, vinode *vi);
/* With vi->lk held for writing. */
int vol_inode_stage(cairn_volume *vol, vinode *vi);
void vol_inode_prune(cairn_volume *vol, vinode *vi);
int vol_sync_all(cairn_volume *vol, int remote);
void vol_prune_queued(cairn_volume *vol);

/* vol_stage.c */
int vol_stage_append(cairn_volume *vol, uint64_t ino, uint64_t off,
		     const uint8_t *data, uint64_t len, int64_t wtime_ns,
		     uint64_t *gen);
/* An explicit mtime is being set on ino: its staged, uncommitted data must
 * not move the inode's times when committed. */
void vol_stage_keep_times(cairn_volume *vol, uint64_t ino);
int vol_commit(cairn_volume *vol, int synced);
int vol_commit_locked(cairn_volume *vol, int synced);
int vol_seal(cairn_volume *vol);
int vol_seal_locked(cairn_volume *vol);
int vol_cap_wait(cairn_volume *vol);
int vol_wait_uploaded(cairn_volume *vol, uint64_t seg);
/* The store takes a whole file of size bytes (0: any) by a hard link:
 * upload sealed segments, streams too, in one put (objstore.h link_puts). */
int vol_store_links(cairn_volume *vol, uint64_t size);
int vol_chunk_read(cairn_volume *vol, const meta_chunk *c, const meta_seg *s,
		   uint8_t *dst);
int vol_threads_start(cairn_volume *vol);
void vol_threads_stop(cairn_volume *vol);
int vol_recover(cairn_volume *vol);
void vol_readers_close(cairn_volume *vol);
int vol_upload_enqueue(cairn_volume *vol, uint64_t id, uint64_t size, const char *key);
int vol_upload_enqueue_stream(cairn_volume *vol, uint64_t id, uint64_t size,
			      const char *key, uint64_t acct, struct vmpu *job);
/* Record a new segment (packed, or stream if stream != 0) with its key in
 * one relaxed meta transaction; fills its record and parsed key. */
int vol_seg_new(cairn_volume *vol, int stream, meta_seg *out, seg_id *id);
int vol_seg_set_state(cairn_volume *vol, uint64_t id, uint32_t state,
		      uint64_t size, const char *key, meta_durability d);
/* Every segment record (keep NULL) or those keep accepts, in id order, from
 * one read transaction of m.  On failure l is freed and empty. */
typedef struct vseglist {
	meta_seg *v;
	size_t n, cap;
	int rc;
} vseglist;
/* pthread_cond_timedwait for ms from now (CLOCK_REALTIME); its result. */
int vol_cond_wait_ms(pthread_cond_t *cv, pthread_mutex_t *mu, unsigned ms);
int vol_seglist_load(cairn_meta *m, int (*keep)(const meta_seg *s), vseglist *l);

/* vol_stream.c: large files (docs/large-files.md).  With vi->lk held for
 * writing: */
/* Take the write if it belongs to the inode's stream, or start a stream
 * when the inode's buffer qualifies; *taken tells whether it was handled. */
int vol_stream_write(cairn_volume *vol, vinode *vi, const uint8_t *buf,
		     uint64_t len, uint64_t off, int *taken);
/* After buffering: start a stream if the inode qualifies. */
int vol_stream_maybe_start(cairn_volume *vol, vinode *vi);
/* Whether the dirty buffer should wait for the stream threshold instead of
 * being staged at inode_dirty_max. */
int vol_stream_candidate(const cairn_volume *vol, const vinode *vi);
/* End the stream: last chunk, commit, seal, hand the upload over. */
int vol_stream_end(cairn_volume *vol, vinode *vi);
/* Lay the stream's uncommitted bytes over buf (= file bytes [off, off+n));
 * vi->lk held at least for reading. */
int vol_stream_overlay(cairn_volume *vol, vinode *vi, uint8_t *buf,
		       uint64_t off, uint64_t n);
/* Free a stream left after a failure (volume close). */
void vol_stream_free(cairn_volume *vol, vinode *vi);
/* Before a read of [off, off+n): classify it (sequential, inside the
 * current run, or random) and size the inode's readahead window (vi->lk
 * held for reading). */
void vol_stream_ra_note(cairn_volume *vol, vinode *vi, uint64_t off, uint64_t n);
/* After a read of [off, off+n): fetch the next chunks of uploaded streams
 * ahead, as many as the window (vi->lk held for reading). */
void vol_stream_readahead(cairn_volume *vol, vinode *vi, uint64_t off, uint64_t n);
/* Free the inode's readahead (the vinode is being freed). */
void vol_ra_free(cairn_volume *vol, vinode *vi);
/* volume_file_read_to: when every byte of [off, off+n) lies in chunks of
 * uploaded streams that readahead slots hold (or start to hold, as a read
 * would), wait for them, pin them and point iov[0..*cnt) (at most max)
 * at the bytes, pins[] naming the slots: 1.  Otherwise 0, nothing pinned
 * (the caller reads the ordinary way).  vi->lk held for reading. */
int vol_stream_ra_pin(cairn_volume *vol, vinode *vi, uint64_t off, uint64_t n,
		      struct iovec *iov, void **pins, int max, int *cnt);
/* Release what vol_stream_ra_pin pinned (no lock needed). */
void vol_stream_ra_unpin(vinode *vi, void **pins, int cnt);
/* Uploader: finish (or do from scratch) the multipart upload of s. */
int vol_stream_upload(cairn_volume *vol, vseg *s);
void vol_mpu_free(struct vmpu *m);
/* Recovery: abort a recorded multipart upload (best effort). */
void vol_mpu_abort_recorded(cairn_volume *vol, const meta_seg *s);
/* Reads: fetch the chunks of uploaded stream segments among ex[0..n) in
 * parallel into buf (file bytes [off, ...)); sets done[i] for each
 * extent handled.  vi may be NULL (no readahead). */
int vol_stream_read_remote(cairn_volume *vol, vinode *vi, const meta_extent *ex,
			   const meta_chunk *ch, const meta_seg *sg, size_t n,
			   uint8_t *buf, uint64_t off, uint64_t end, uint8_t *done);
void vol_kept_add(cairn_volume *vol, uint64_t id, uint64_t size, const char *key);

#endif
