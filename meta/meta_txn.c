/*
 * meta_txn.c - write transactions with group commit, the WAL record of each
 * operation, the background flusher, and the logged put/delete primitives.
 *
 * Group commit.  A caller of meta_write() queues a node (its callback) and
 * waits.  When no leader is active, a waiting caller becomes the leader: it
 * takes the whole queue, runs every callback in one LMDB write transaction
 * (each callback's changes followed by its WAL record under the next LSN),
 * commits once, releases the nodes, and, while callers queued meanwhile
 * (up to META_LEAD_ROUNDS batches), leads their batch too before it gives
 * up leadership.  Callers that asked for META_SYNCED share one sync: the
 * leader, when its batch holds a synced caller, syncs before the next
 * batch, so that callers arriving during the fdatasync queue up and share
 * the next commit and sync; N synced callers cost about one LMDB commit
 * and one fdatasync per batch.
 * meta_sync_upto() syncs once for every commit made before it started.
 *
 *   node:  queued --(leader takes queue)--> running --commit--> done
 *                                             |  ^
 *                    map full / a callback    |  | rerun without the
 *                    failed after changes ----+--+ failed callback
 *
 * Durability (docs/metadata.md): the environment runs with MDB_NOSYNC, so a
 * commit lands in the page cache: safe against a process crash.  SYNCED
 * callers return after an fdatasync covering their commit; RELAXED callers
 * rely on the flusher, which syncs every opts.flush_interval_ms.  In the
 * default mode (META_RELAXED_PINNED) every such sync is a checkpoint of
 * meta_ckpt.c, which also keeps an OS crash from corrupting the
 * environment; the leader's checkpoint runs while it still leads, the
 * flusher's takes leadership only for the instant of its capture.
 *
 * Invariants:
 *   1. At most one leader; the LMDB write transaction lives only inside
 *      run_batch() on the leader's thread and never spans I/O other than
 *      LMDB's own commit.
 *   2. LSNs are dense and increase by one per committed non-empty record;
 *      m->last_lsn and the local "last_lsn" key are updated in the same
 *      commit as the records.
 *   3. A callback's result is final only when it failed without changing
 *      anything, or when the batch committed.
 *   4. A waiter sleeps on its node's own futex word (state, WN_*), not on
 *      q_lock.  Its results are final when the state reads DONE; the node
 *      lives on its caller's stack and disappears as soon as DONE is seen,
 *      so whoever posts DONE touches the node no more.  A batch is
 *      released as a chain: the leader posts the first waiter, each
 *      released waiter the next (its node's `chain`), so one context
 *      switch of the leader's does not become one per caller.  On giving
 *      up leadership the leader kicks the first queued caller
 *      (meta_lead_handoff), not every waiter; a kicked caller that was
 *      taken into a batch meanwhile (`taken`) waits on for DONE.
 *   5. After an fsync failure (m->failed) no write is accepted: the page
 *      cache may have dropped the data the fsync could not write.
 */
#include <errno.h>
#include <stdlib.h>
#include <linux/futex.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "meta_int.h"

struct meta_wnode {
	meta_write_fn fn;
	void *arg;
	unsigned op;
	int synced;
	int rc;
	int final;
	uint64_t lsn;
	uint64_t seq;
	char msg[256];
	uint32_t state;     /* WN_*: its caller sleeps on this futex word */
	int taken;          /* in a leader's batch (under q_lock) */
	meta_wnode *chain;  /* the batch's next caller to release */
	meta_wnode *next;
};

/* A node's state.  Only its caller moves it WAIT -> SLEEP (announcing a
 * futex wait); the leader moves it to DONE (results final) and the
 * outgoing leader to KICK (take leadership), the caller back to WAIT. */
enum { WN_WAIT, WN_SLEEP, WN_KICK, WN_DONE };

static void wn_wait(meta_wnode *n)
{
	for (;;) {
		uint32_t s = __atomic_load_n(&n->state, __ATOMIC_ACQUIRE);
		if (s == WN_KICK || s == WN_DONE)
			return;
		if (s == WN_WAIT &&
		    !__atomic_compare_exchange_n(&n->state, &s, WN_SLEEP, 0,
						 __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
			continue;
		/* EAGAIN (state moved on) and EINTR just loop */
		(void)syscall(SYS_futex, &n->state, FUTEX_WAIT_PRIVATE, WN_SLEEP, NULL, NULL, 0);
	}
}

/* Move n to state s and wake its caller if it sleeps.  After a move to
 * DONE the node may be gone at once (it lives on its caller's stack): the
 * wake then hits a dead address, which futex waiters tolerate as a
 * spurious wake-up. */
static void wn_post(meta_wnode *n, uint32_t s)
{
	uint32_t *w = &n->state;
	if (__atomic_exchange_n(w, s, __ATOMIC_ACQ_REL) == WN_SLEEP)
		(void)syscall(SYS_futex, w, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

/* Leadership was just given up (under q_lock): wake whoever should take
 * it next.  lead_acquire() waiters wait on q_cond; of the queued callers
 * only the first is kicked, and the others only when their batch is done,
 * so a finished batch does not wake every waiter for nothing (each wake-up
 * is a context switch, which on two cores cost as much as the batching
 * saved). */
void meta_lead_handoff(cairn_meta *m)
{
	if (m->lead_want)
		pthread_cond_broadcast(&m->q_cond);
	else if (m->q_head)
		wn_post(m->q_head, WN_KICK);
}

int mt_buf_add(mt_buf *b, const void *p, size_t n)
{
	if (b->len + n > b->cap) {
		size_t nc = b->cap ? b->cap : 256;
		while (nc < b->len + n)
			nc *= 2;
		uint8_t *np = realloc(b->p, nc);
		if (!np)
			return cairn_errf(CAIRN_E_NOMEM, "WAL record of %zu bytes", nc);
		b->p = np;
		b->cap = nc;
	}
	memcpy(b->p + b->len, p, n);
	b->len += n;
	return 0;
}

int mt_need_write(meta_txn *t)
{
	if (!t->write)
		return cairn_errf(CAIRN_E_INVAL, "change requested in a read-only transaction");
	return 0;
}

static int mt_lmdb_fail(meta_txn *t, int err, const char *what, int tbl)
{
	t->lmdb_err = 1;
	if (err == MDB_MAP_FULL)
		t->map_full = 1;
	char buf[64];
	snprintf(buf, sizeof buf, "%s %s", what, meta_table_names[tbl]);
	return meta_lmdb_err(err, buf);
}

int mt_get(meta_txn *t, int tbl, const void *k, size_t klen, MDB_val *v)
{
	MDB_val kv = { klen, (void *)k };
	int err = mdb_get(t->txn, t->m->dbi[tbl], &kv, v);
	if (err == MDB_NOTFOUND)
		return CAIRN_E_NOTFOUND;  /* callers say what was missing */
	if (err)
		return mt_lmdb_fail(t, err, "get", tbl);
	return 0;
}

static int mt_log(meta_txn *t, int kind, int tbl, const void *k, size_t klen,
		  const void *v, size_t vlen)
{
	uint8_t h[8];
	h[0] = (uint8_t)kind;
	h[1] = (uint8_t)tbl;
	le16(h + 2, (uint16_t)klen);
	le32(h + 4, (uint32_t)vlen);
	int rc = mt_buf_add(&t->rec, h, 8);
	if (!rc && klen)
		rc = mt_buf_add(&t->rec, k, klen);
	if (!rc && vlen)
		rc = mt_buf_add(&t->rec, v, vlen);
	if (rc) {
		t->lmdb_err = 1;  /* the record no longer matches the changes */
		return rc;
	}
	t->nent++;
	return 0;
}

int mt_put(meta_txn *t, int tbl, const void *k, size_t klen, const void *v,
	   size_t vlen)
{
	return mt_put_append(t, tbl, k, klen, v, vlen, 0);
}

int mt_put_append(meta_txn *t, int tbl, const void *k, size_t klen, const void *v,
		  size_t vlen, int append)
{
	int rc = mt_need_write(t);
	if (rc)
		return rc;
	MDB_val kv = { klen, (void *)k }, vv = { vlen, (void *)v };
	int err = MDB_KEYEXIST;
	/* bulk copies insert ascending keys: appending skips the descent and
	 * fills pages; out of order, LMDB says KEYEXIST and we put normally */
	if (append)
		err = mdb_put(t->txn, t->m->dbi[tbl], &kv, &vv, MDB_APPEND);
	if (err == MDB_KEYEXIST)
		err = mdb_put(t->txn, t->m->dbi[tbl], &kv, &vv, 0);
	if (err)
		return mt_lmdb_fail(t, err, "put", tbl);
	if (t->suppress || tbl >= MT_NREPL)
		return 0;
	return mt_log(t, MW_PUT, tbl, k, klen, v, vlen);
}

int mt_del(meta_txn *t, int tbl, const void *k, size_t klen)
{
	int rc = mt_need_write(t);
	if (rc)
		return rc;
	MDB_val kv = { klen, (void *)k };
	int err = mdb_del(t->txn, t->m->dbi[tbl], &kv, NULL);
	if (err == MDB_NOTFOUND)
		return cairn_errf(CAIRN_E_NOTFOUND, "delete from %s: no such key",
				  meta_table_names[tbl]);
	if (err)
		return mt_lmdb_fail(t, err, "delete", tbl);
	if (t->suppress || tbl >= MT_NREPL)
		return 0;
	return mt_log(t, MW_DEL, tbl, k, klen, NULL, 0);
}

int mt_log_logical(meta_txn *t, int kind, const void *p, size_t n)
{
	if (t->suppress)
		return 0;
	return mt_log(t, kind, 0, NULL, 0, p, n);
}

int mt_cursor(meta_txn *t, int tbl, MDB_cursor **c)
{
	int err = mdb_cursor_open(t->txn, t->m->dbi[tbl], c);
	if (err)
		return mt_lmdb_fail(t, err, "cursor", tbl);
	return 0;
}

int mt_counter_get(meta_txn *t, int id, uint64_t *v)
{
	uint8_t k = (uint8_t)id;
	MDB_val val;
	int rc = mt_get(t, MT_COUNTER, &k, 1, &val);
	if (rc == CAIRN_E_NOTFOUND) {
		*v = 0;
		return 0;
	}
	if (rc)
		return rc;
	if (val.mv_size != 8)
		return cairn_errf(CAIRN_E_CORRUPT, "counter %d: %zu bytes", id, val.mv_size);
	*v = rle64(val.mv_data);
	return 0;
}

int mt_counter_add(meta_txn *t, int id, int64_t delta)
{
	uint64_t v;
	uint8_t k = (uint8_t)id, b[8];
	int rc = mt_counter_get(t, id, &v);
	if (rc)
		return rc;
	le64(b, v + (uint64_t)delta);
	return mt_put(t, MT_COUNTER, &k, 1, b, 8);
}

int mt_counter_next(meta_txn *t, int id, uint64_t *v)
{
	int rc = mt_counter_get(t, id, v);
	if (rc)
		return rc;
	if (*v == 0)
		*v = 1;
	uint8_t k = (uint8_t)id, b[8];
	le64(b, *v + 1);
	return mt_put(t, MT_COUNTER, &k, 1, b, 8);
}

/* ---- the leader ---- */

static void node_fail(meta_wnode *n, int rc)
{
	n->rc = rc;
	n->final = 1;
	cairn_err_copy(n->msg, sizeof n->msg);
}

static void batch_fail(meta_wnode *b, int rc)
{
	char msg[256];
	cairn_err_copy(msg, sizeof msg);
	for (meta_wnode *n = b; n; n = n->next)
		if (!n->final) {
			n->rc = rc;
			n->final = 1;
			memcpy(n->msg, msg, sizeof msg);
		}
}

/* Finish the record in t->rec (header in front of the entries) and store
 * it under lsn. */
static int wal_store(meta_txn *t, unsigned op, uint64_t lsn)
{
	uint8_t *h = t->rec.p;
	memset(h, 0, MW_HDR);
	h[0] = META_REC_V1;
	h[1] = (uint8_t)op;
	le32(h + 4, t->nent);
	le64(h + 8, lsn);
	le64(h + 16, (uint64_t)t->now);
	le32(h + 24, (uint32_t)(t->rec.len - MW_HDR));
	uint32_t crc = cairn_crc32c(0, h, 28);
	crc = cairn_crc32c(crc, h + MW_HDR, t->rec.len - MW_HDR);
	le32(h + 28, crc);
	uint8_t k[8];
	be64(k, lsn);
	MDB_val kv = { 8, k }, vv = { t->rec.len, t->rec.p };
	int err = mdb_put(t->txn, t->m->dbi[MT_WAL], &kv, &vv, MDB_APPEND);
	if (err)
		return mt_lmdb_fail(t, err, "append", MT_WAL);
	return 0;
}

/* The map is full.  With pinned checkpoints, pages freed since the last
 * checkpoint cannot be reused yet, so first move the pin to the present
 * (once per batch), and grow only if that does not help. */
static int batch_map_full(cairn_meta *m, int *ckpt_tried)
{
	if (m->opts.safe_relaxed == META_RELAXED_PINNED && !*ckpt_tried) {
		*ckpt_tried = 1;
		uint64_t seq = __atomic_load_n(&m->commit_seq, __ATOMIC_SEQ_CST);
		int rc = meta_ckpt(m, seq, 1, 0);
		if (rc)
			return rc;
		return 0;
	}
	return meta_env_grow(m);
}

/* Whether the file system holding dir has (almost) no free blocks left. */
static int disk_full(const char *dir)
{
	struct statvfs sv;

	if (statvfs(dir, &sv) != 0)
		return 0;
	return (uint64_t)sv.f_bavail * sv.f_frsize < (1u << 20);
}

static void run_batch(cairn_meta *m, meta_wnode *batch)
{
	meta_txn t;
	int rc, err, ckpt_tried = 0;
	memset(&t, 0, sizeof t);
	t.m = m;
	t.write = 1;
	if (__atomic_load_n(&m->failed, __ATOMIC_ACQUIRE)) {
		cairn_errf(CAIRN_E_IO, "metadata environment failed earlier (%s); reopen it",
			   m->failmsg);
		batch_fail(batch, CAIRN_E_IO);
		return;
	}
restart:
	err = mdb_txn_begin(m->env, NULL, 0, &t.txn);
	if (err == MDB_MAP_RESIZED) {
		/* another process grew the map: adopt its size */
		err = mdb_env_set_mapsize(m->env, 0);
		if (!err)
			err = mdb_txn_begin(m->env, NULL, 0, &t.txn);
	}
	if (err) {
		batch_fail(batch, meta_lmdb_err(err, "begin write transaction"));
		goto out;
	}
	uint64_t lsn = m->last_lsn;
	int64_t now = meta_now_ns();
	for (meta_wnode *n = batch; n; n = n->next) {
		if (n->final)
			continue;
		t.rec.len = 0;
		t.nent = 0;
		t.map_full = t.lmdb_err = 0;
		t.suppress = 0;
		t.now = now;
		t.lsn_next = lsn + 1;
		t.lsn_set = 0;
		rc = mt_buf_add(&t.rec, (uint8_t[MW_HDR]){ 0 }, MW_HDR);
		if (!rc)
			rc = n->fn(&t, n->arg);
		if (!rc && t.nent)
			rc = wal_store(&t, n->op, lsn + 1);
		if (t.map_full) {
			mdb_txn_abort(t.txn);
			rc = batch_map_full(m, &ckpt_tried);
			if (rc) {
				batch_fail(batch, rc);
				goto out;
			}
			goto restart;
		}
		if (rc) {
			node_fail(n, rc);
			if (t.nent || t.lmdb_err) {
				/* partial changes: drop the whole txn, rerun the rest */
				mdb_txn_abort(t.txn);
				goto restart;
			}
			continue;
		}
		n->rc = 0;
		n->lsn = t.nent ? ++lsn : 0;
		if (t.lsn_set)
			lsn = t.lsn_set;  /* a replica took an image's state */
	}
	if (lsn != m->last_lsn) {
		uint8_t b[8];
		le64(b, lsn);
		MDB_val kv = { 8, "last_lsn" }, vv = { 8, b };
		err = mdb_put(t.txn, m->dbi[MT_LOCAL], &kv, &vv, 0);
		rc = 0;
		/* in PINNED mode checkpoints trim (meta_ckpt.c says why) */
		if (err)
			rc = mt_lmdb_fail(&t, err, "put", MT_LOCAL);
		else if (!meta_ckpt_trims(m)) {
			rc = mw_trim_some(m, t.txn, lsn, 64);
			/* Deleting log records can need pages too (a full
			 * map during a trim): grow the map and redo the batch
			 * like any other full map, do not fail the commits. */
			if (rc == CAIRN_E_NOSPC)
				t.map_full = t.lmdb_err = 1;
		}
		if (rc && t.map_full) {
			mdb_txn_abort(t.txn);
			if ((rc = batch_map_full(m, &ckpt_tried))) {
				batch_fail(batch, rc);
				goto out;
			}
			goto restart;
		}
		if (rc) {
			mdb_txn_abort(t.txn);
			batch_fail(batch, rc);
			goto out;
		}
	}
	if ((err = meta_fault_hit(m, MF_COMMIT))) {
		mdb_txn_abort(t.txn);
		batch_fail(batch, cairn_errf(cairn_rc_from_errno(err),
					     "commit metadata: %s (injected)", strerror(err)));
		goto out;
	}
	uint64_t txnid = mdb_txn_id(t.txn);
	err = mdb_txn_commit(t.txn);
	if (err == MDB_MAP_FULL) {
		if ((rc = batch_map_full(m, &ckpt_tried))) {
			batch_fail(batch, rc);
			goto out;
		}
		goto restart;
	}
	if (err == EIO && disk_full(m->dir)) {
		/* LMDB reports a short write as EIO; on a full disk that is
		 * what happens when the last blocks run out mid-write. */
		err = ENOSPC;
	}
	if (err) {
		/* LMDB aborted the transaction: nothing of it is visible */
		batch_fail(batch, meta_lmdb_err(err, "commit metadata"));
		goto out;
	}
	if (m->undo && (rc = meta_undo_note(m, txnid))) {
		/* the checkpoint's snapshot lost its protection: stop here */
		cairn_err_copy(m->failmsg, sizeof m->failmsg);
		__atomic_store_n(&m->failed, 1, __ATOMIC_RELEASE);
		CAIRN_ERROR("meta", "%s", cairn_errmsg());
	}
	meta_pool_stale(m);
	__atomic_store_n(&m->last_lsn, lsn, __ATOMIC_RELAXED);
	uint64_t seq = __atomic_add_fetch(&m->commit_seq, 1, __ATOMIC_SEQ_CST);
	for (meta_wnode *n = batch; n; n = n->next)
		if (!n->final) {
			n->seq = seq;
			n->final = 1;
		}
out:
	free(t.rec.p);
}

int meta_sync_upto(cairn_meta *m, uint64_t seq, int have_leader)
{
	int rc = 0;
	if (m->opts.safe_relaxed == META_RELAXED_PINNED)
		return meta_ckpt(m, seq, have_leader, 0);
	/* covered already: no need to wait for a sync in progress (stored
	 * with release after its fdatasync) */
	if (__atomic_load_n(&m->synced_seq, __ATOMIC_ACQUIRE) >= seq &&
	    !__atomic_load_n(&m->failed, __ATOMIC_ACQUIRE))
		return 0;
	pthread_mutex_lock(&m->sync_lock);
	if (m->failed) {
		rc = cairn_errf(CAIRN_E_IO, "metadata sync failed earlier (%s); reopen", m->failmsg);
		goto out;
	}
	if (m->synced_seq >= seq)
		goto out;
	/* everything committed before this point is covered by the sync */
	uint64_t target = __atomic_load_n(&m->commit_seq, __ATOMIC_SEQ_CST);
	/* read after target: last_lsn is stored after its commit, so the sync
	 * below covers every LSN seen here */
	uint64_t dlsn = __atomic_load_n(&m->last_lsn, __ATOMIC_SEQ_CST);
	/* fdatasync of the file, not mdb_env_sync: with MDB_WRITEMAP that
	 * msyncs the map, which a growth by the leader (meanwhile: this runs
	 * outside leadership) unmaps and maps again; ENOMEM there would fail
	 * the environment.  On Linux both write back the same pages. */
	int fd, err = meta_fault_hit(m, MF_SYNC);
	if (!err && !(err = mdb_env_get_fd(m->env, &fd)) && fdatasync(fd) != 0)
		err = errno;
	if (err) {
		rc = cairn_errf(CAIRN_E_IO, "fdatasync of metadata in %s: %s", m->dir,
				err > 0 ? strerror(err) : mdb_strerror(err));
		cairn_err_copy(m->failmsg, sizeof m->failmsg);
		__atomic_store_n(&m->failed, 1, __ATOMIC_RELEASE);
		CAIRN_ERROR("meta", "%s", cairn_errmsg());
		goto out;
	}
	__atomic_store_n(&m->synced_seq, target, __ATOMIC_RELEASE);
	meta_durable_note(m, dlsn);
out:
	pthread_mutex_unlock(&m->sync_lock);
	return rc;
}

uint64_t meta_commits(cairn_meta *m)
{
	return __atomic_load_n(&m->commit_seq, __ATOMIC_SEQ_CST);
}

int meta_sync(cairn_meta *m)
{
	return meta_sync_upto(m, __atomic_load_n(&m->commit_seq, __ATOMIC_SEQ_CST), 0);
}

#define META_LEAD_ROUNDS 16

/* Whether a queued caller wants META_SYNCED (under q_lock): its batch ends
 * in a checkpoint, which a caller whose own write is done should not wait
 * for. */
static int queue_synced(const cairn_meta *m)
{
	for (const meta_wnode *x = m->q_head; x; x = x->next)
		if (x->synced)
			return 1;
	return 0;
}

/* Lead batches: called with q_lock held (released on return), own (the
 * caller's node) queued.  Nodes are released after q_lock is dropped, and
 * a released caller returns without taking it (meta_write). */
static void lead(cairn_meta *m, meta_wnode *own)
{
	m->leader = 1;
	for (int round = 1;; round++) {
		meta_wnode *b = m->q_head;
		m->q_head = m->q_tail = NULL;
		for (meta_wnode *x = b; x; x = x->next)
			x->taken = 1;
		pthread_mutex_unlock(&m->q_lock);
		run_batch(m, b);
		/* The leader syncs before it hands over: callers arriving
		 * meanwhile queue up and share the next commit and sync, which
		 * is what makes SYNCED cheap under concurrency.  A failure is
		 * sticky and reported by each caller's own meta_sync_upto. */
		uint64_t sseq = 0;
		for (meta_wnode *x = b; x; x = x->next)
			if (x->synced && !x->rc && x->seq > sseq)
				sseq = x->seq;
		if (sseq)
			(void)meta_sync_upto(m, sseq, 1);
		/* Release the batch as a chain: each released caller releases
		 * the next (meta_write), so the leader makes one wake-up, not
		 * one per caller, and the others run on whichever core is
		 * free.  Touch no node after posting DONE: its caller may
		 * return at once. */
		meta_wnode *first = NULL, **tail = &first;
		for (meta_wnode *x = b; x; x = x->next)
			if (x != own) {
				*tail = x;
				tail = &x->chain;
			}
		*tail = NULL;
		own->state = WN_DONE;
		if (first)
			wn_post(first, WN_DONE);
		/* Callers queued meanwhile: lead their batch too rather than
		 * wake one of them to do it (a context switch each), for a
		 * bounded number of rounds so this caller returns too.  Not
		 * after a sync or before one: next to an fdatasync a hand-over
		 * costs nothing, and this caller would wait for it. */
		pthread_mutex_lock(&m->q_lock);
		if (!m->q_head || m->lead_want || sseq || round == META_LEAD_ROUNDS ||
		    queue_synced(m))
			break;
	}
	m->leader = 0;
	meta_lead_handoff(m);
	pthread_mutex_unlock(&m->q_lock);
}

int meta_write(cairn_meta *m, meta_durability d, unsigned op,
	       meta_write_fn fn, void *arg, uint64_t *lsn_out)
{
	meta_wnode n;
	memset(&n, 0, sizeof n);
	n.fn = fn;
	n.arg = arg;
	n.op = op;
	n.synced = d == META_SYNCED;
	if (lsn_out)
		*lsn_out = 0;
	if (d != META_RELAXED && d != META_SYNCED)
		return cairn_errf(CAIRN_E_INVAL, "durability %d is neither relaxed nor synced", (int)d);
	pthread_mutex_lock(&m->q_lock);
	if (m->q_tail)
		m->q_tail->next = &n;
	else
		m->q_head = &n;
	m->q_tail = &n;
	for (;;) {
		uint32_t s = __atomic_load_n(&n.state, __ATOMIC_ACQUIRE);
		if (s == WN_DONE)
			break;
		/* a kicked caller may have been taken into a batch since */
		if (!n.taken && !m->leader && !m->lead_want) {
			lead(m, &n);
			goto led;
		}
		if (s == WN_KICK)  /* a lost race for leadership: wait again */
			__atomic_compare_exchange_n(&n.state, &s, WN_WAIT, 0,
						    __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
		pthread_mutex_unlock(&m->q_lock);
		wn_wait(&n);
		/* released: nothing left to do under q_lock (taking it here
		 * would put every link of the chain through the lock) */
		if (__atomic_load_n(&n.state, __ATOMIC_ACQUIRE) == WN_DONE)
			goto released;
		pthread_mutex_lock(&m->q_lock);
	}
	pthread_mutex_unlock(&m->q_lock);
released:
	if (n.chain)
		wn_post(n.chain, WN_DONE);
led:
	if (n.rc)
		return cairn_err_set(n.rc, n.msg);
	if (d == META_SYNCED && n.seq) {
		int rc = meta_sync_upto(m, n.seq, 0);
		if (rc)
			return rc;
	}
	if (lsn_out)
		*lsn_out = n.lsn;
	return 0;
}

/* ---- the flusher ---- */

static void *flusher_main(void *arg)
{
	cairn_meta *m = arg;
	pthread_mutex_lock(&m->q_lock);
	while (!m->stop) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		uint64_t ns = (uint64_t)ts.tv_nsec + (uint64_t)m->opts.flush_interval_ms * 1000000;
		ts.tv_sec += (time_t)(ns / 1000000000);
		ts.tv_nsec = (long)(ns % 1000000000);
		pthread_cond_timedwait(&m->flush_cond, &m->q_lock, &ts);
		if (m->stop)
			break;
		pthread_mutex_unlock(&m->q_lock);
		uint64_t seq = __atomic_load_n(&m->commit_seq, __ATOMIC_SEQ_CST);
		int rc = 0;
		int failed = __atomic_load_n(&m->failed, __ATOMIC_ACQUIRE);
		/* a no-op when already synced; in PINNED mode the data is
		 * written back before the checkpoint pins anything */
		if (!failed)
			rc = m->opts.safe_relaxed == META_RELAXED_PINNED
				     ? meta_ckpt(m, seq, 0, MCK_PRESYNC)
				     : meta_sync_upto(m, seq, 0);
		if (rc && !m->flush_err) {
			/* a durability failure: meta_close reports it */
			m->flush_err = rc;
			CAIRN_ERROR("meta", "background flush: %s", cairn_errmsg());
		}
		/* Trimming the log is housekeeping, retried every pass; on a
		 * full map it cannot run, which loses nothing. */
		if (!rc && !failed && !meta_ckpt_trims(m) && meta_wal_trim(m))
			CAIRN_WARN("meta", "background log trim: %s", cairn_errmsg());
		pthread_mutex_lock(&m->q_lock);
	}
	pthread_mutex_unlock(&m->q_lock);
	return NULL;
}

int meta_txn_start_flusher(cairn_meta *m)
{
	if (!m->opts.flush_interval_ms)
		return 0;
	int err = pthread_create(&m->flusher, NULL, flusher_main, m);
	if (err)
		return cairn_errf(CAIRN_E_NOMEM, "start metadata flusher: %s", strerror(err));
	m->flusher_on = 1;
	return 0;
}

void meta_txn_stop_flusher(cairn_meta *m)
{
	if (!m->flusher_on)
		return;
	pthread_mutex_lock(&m->q_lock);
	m->stop = 1;
	pthread_cond_broadcast(&m->flush_cond);
	pthread_mutex_unlock(&m->q_lock);
	pthread_join(m->flusher, NULL);
	m->flusher_on = 0;
}
