/*
 * meta_ckpt.c - crash-safe relaxed durability without a sync per commit
 * (opts.safe_relaxed = META_RELAXED_PINNED, the default).
 *
 * The environment runs with MDB_NOSYNC: a commit writes its copy-on-write
 * pages and then its meta page (through the map with MDB_WRITEMAP), and
 * nothing orders them on the way to the disk.  After an OS crash the disk
 * may hold a meta page whose tree never arrived, and pages of the last
 * synced snapshot may have been reused and overwritten by later commits.
 * A checkpoint makes one snapshot T durable and keeps it restorable until
 * the next one is:
 *
 *   1. capture (commits blocked: the caller holds group-commit leadership):
 *      first the WAL is trimmed, in a commit of its own (ck_trim); then
 *      T = the last committed txnid; copy LMDB's two meta pages (pages 0
 *      and 1 of data.mdb, which select T); begin a read transaction on T
 *      (a pin); start undo epoch n (= the slot's seq): a bitmap of T's
 *      pages (2..T's last page minus T's free list).  LMDB reuses a page
 *      freed by transaction K only when K is older than every reader's
 *      snapshot (mdb_page_alloc -> mdb_find_oldest), so while the pin
 *      lives no page of T (or T-1) is rewritten.
 *   2. persist (commits run again): fdatasync data.mdb, which makes T's
 *      pages durable; write the meta pages into slot n & 1 of meta.synced
 *      with T, n, the boot id and a crc32c; fdatasync it.  Then release the
 *      previous epoch's pin.  The flusher's checkpoints first fdatasync
 *      the data with nothing pinned (MCK_PRESYNC), so that the pinned
 *      fdatasync, during which no page freed since is reused, is short.
 *   3. undo (meta_undo_note after every commit): the pages of T a commit
 *      freed (LMDB's free-list record of that commit) are copied while
 *      still intact.  When none are waiting to be made durable, the leader
 *      moves the pin (the "rolling pin") to the commit it just made: LMDB
 *      reuses freed pages as soon as with plain MDB_NOSYNC.  Otherwise the
 *      undo writer, woken by the leader, appends them to meta.undo.<n & 1>,
 *      fdatasyncs, and only then moves the pin to where its copy was taken
 *      (meta_undo_flush), so a page of T is reused, and can be
 *      overwritten, only after its copy is durable.
 *
 * At open, before LMDB sees the file (meta_ckpt_recover): if the newest
 * valid slot is not marked clean and its boot id differs from this boot's,
 * the OS went down after that checkpoint; the epoch's saved pages and then
 * the slot's meta pages are written back and synced, so LMDB opens at T
 * with all of T's pages.  With the same boot id only the process died and
 * the page cache (which LMDB reads) holds every commit: nothing is done.
 * meta_close writes a final checkpoint marked clean; the first checkpoint
 * of an open (before any write) clears the mark.
 *
 *   slot:   [empty] --persist--> [valid, unclean] --close--> [valid, clean]
 *                         ^                                        |
 *                         +------- open: first checkpoint ---------+
 *   epoch n:  capture --> persist (slot n durable) --> flush, flush, ... -->
 *             next capture (epoch n+1) --> slot n+1 durable: n retired
 *
 * Invariants:
 *   1. Every snapshot named by a valid slot is restorable: each page of it
 *      is on disk as it was, or saved in the epoch's undo file, or pinned
 *      (not reusable) by a live read transaction of this process; or this
 *      process has not committed since it opened (the first checkpoint of
 *      an open precedes any write).
 *   2. A slot names T only after T's pages were fdatasynced.
 *   3. Captures and undo-buffer swaps happen under leadership (no commit in
 *      flight); persist and flush run under sync_lock; lock order:
 *      leadership, then sync_lock (the undo writer only tries sync_lock
 *      while it leads: a persisting checkpoint holds it for an fdatasync).
 *      The leader moves the pin only while u_hold is clear: a flush sets
 *      it under leadership when it takes the records, and clears it once
 *      they are durable and its own pin is in place.
 *   4. A SYNCED commit returns only after a slot naming a snapshot that
 *      contains it is durable (a restore never undoes it).
 *   5. The rolling pin moves only after the undo records of every commit
 *      before its new position are durable.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "meta_int.h"

#define CK_MAGIC "CAIRNSYN"
#define CK_VERSION 1
#define CK_HDR 80
#define CK_F_CLEAN 0x1u
#define CK_FILE "meta.synced"

/* LMDB 0.9 meta page layout (64-bit): page header 16 bytes, then
 * mm_magic u32, mm_version u32, mm_address, mm_mapsize, mm_dbs[2] (48 bytes
 * each), mm_last_pg, mm_txnid. */
#define LM_MAGIC 0xBEEFC0DEu
#define LM_OFF_MAGIC 16
#define LM_OFF_LASTPG 136
#define LM_OFF_TXNID 144

static size_t ck_stride(unsigned psize)
{
	size_t n = CK_HDR + 2 * (size_t)psize;
	return (n + 4095) & ~(size_t)4095;
}

int meta_boot_id(char out[40])
{
	const char *t = getenv("CAIRN_TEST_BOOT_ID");
	memset(out, 0, 40);
	if (t && *t) {
		snprintf(out, 40, "%s", t);
		return 0;
	}
	int fd = open("/proc/sys/kernel/random/boot_id", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return cairn_errf(CAIRN_E_IO, "open /proc/sys/kernel/random/boot_id: %s",
				  strerror(errno));
	ssize_t n = read(fd, out, 39);
	int e = errno;
	close(fd);
	if (n <= 0)
		return cairn_errf(CAIRN_E_IO, "read boot id: %s", n < 0 ? strerror(e) : "empty");
	out[n] = 0;
	char *nl = strchr(out, '\n');
	if (nl)
		*nl = 0;
	memset(out + strlen(out), 0, 40 - strlen(out));
	return 0;
}

static uint64_t lm_txnid(const uint8_t *page)
{
	uint64_t v;
	memcpy(&v, page + LM_OFF_TXNID, 8);
	return v;
}

static int lm_valid(const uint8_t *page)
{
	uint32_t magic;
	memcpy(&magic, page + LM_OFF_MAGIC, 4);
	return magic == LM_MAGIC;
}

/* ---- slots ---- */

typedef struct ck_slot {
	uint64_t seq, txnid;
	uint32_t flags;
	char boot[40];
	uint8_t *pages;    /* 2 * psize */
} ck_slot;

static uint32_t ck_crc(const uint8_t *buf, size_t len)
{
	uint32_t c = cairn_crc32c(0, buf, 36);
	return cairn_crc32c(c, buf + 40, len - 40);
}

static void ck_encode(uint8_t *buf, unsigned psize, const ck_slot *s)
{
	size_t len = CK_HDR + 2 * (size_t)psize;
	memset(buf, 0, CK_HDR);
	memcpy(buf, CK_MAGIC, 8);
	le32(buf + 8, CK_VERSION);
	le32(buf + 12, psize);
	le64(buf + 16, s->seq);
	le64(buf + 24, s->txnid);
	le32(buf + 32, s->flags);
	memcpy(buf + 40, s->boot, 40);
	memcpy(buf + CK_HDR, s->pages, 2 * (size_t)psize);
	le32(buf + 36, ck_crc(buf, len));
}

/* 1 if buf holds a valid slot (decoded into s, pages pointing into buf). */
static int ck_decode(uint8_t *buf, size_t have, ck_slot *s, unsigned *psize)
{
	if (have < CK_HDR || memcmp(buf, CK_MAGIC, 8) != 0 || rle32(buf + 8) != CK_VERSION)
		return 0;
	uint32_t ps = rle32(buf + 12);
	if (ps < 512 || ps > 65536 || (ps & (ps - 1)))
		return 0;
	size_t len = CK_HDR + 2 * (size_t)ps;
	if (have < len || rle32(buf + 36) != ck_crc(buf, len))
		return 0;
	s->seq = rle64(buf + 16);
	s->txnid = rle64(buf + 24);
	s->flags = rle32(buf + 32);
	memcpy(s->boot, buf + 40, 40);
	s->boot[39] = 0;
	s->pages = buf + CK_HDR;
	*psize = ps;
	return 1;
}

/* ---- open: recovery ---- */

int meta_fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return cairn_errf(CAIRN_E_IO, "open %s: %s", dir, strerror(errno));
	int r = fsync(fd);
	int e = errno;
	close(fd);
	if (r != 0)
		return cairn_errf(CAIRN_E_IO, "fsync %s: %s", dir, strerror(e));
	return 0;
}

#define UR_HDR 24
#define UR_MAGIC "UNDO"

/* Put back the pages of T saved in the slot's undo file (records of other
 * epochs, and everything from the first bad record on, are ignored: each
 * flush is synced before the pages it saved may be reused, so a torn tail
 * only holds pages that were never overwritten). */
static int undo_apply(cairn_meta *m, int dfd, const ck_slot *s, unsigned psize,
		      uint64_t last_pg, uint64_t *applied)
{
	char path[600];
	int rc = 0;
	snprintf(path, sizeof path, "%s/meta.undo.%u", m->dir, (unsigned)(s->seq & 1));
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : cairn_errf(CAIRN_E_IO, "open %s: %s", path,
							strerror(errno));
	size_t rl = UR_HDR + psize;
	uint8_t *r = malloc(rl);
	if (!r) {
		close(fd);
		return cairn_errf(CAIRN_E_NOMEM, "read %s", path);
	}
	for (off_t off = 0;; off += (off_t)rl) {
		if (pread(fd, r, rl, off) != (ssize_t)rl)
			break;
		uint64_t pg = rle64(r + 8), ep = rle64(r + 16);
		if (memcmp(r, UR_MAGIC, 4) != 0 || ep != s->seq ||
		    rle32(r + 4) != cairn_crc32c(0, r + 8, rl - 8) || pg < 2 || pg > last_pg)
			break;
		if (pwrite(dfd, r + UR_HDR, psize, (off_t)(pg * psize)) != (ssize_t)psize) {
			rc = cairn_errf(CAIRN_E_IO, "restore page %llu of %s/data.mdb: %s",
					(unsigned long long)pg, m->dir, strerror(errno));
			break;
		}
		(*applied)++;
	}
	free(r);
	close(fd);
	return rc;
}

/* Write the slot's meta pages over pages 0 and 1 of data.mdb. */
static int ck_restore(cairn_meta *m, const ck_slot *s, unsigned psize)
{
	char path[600];
	int rc = 0, fd;
	snprintf(path, sizeof path, "%s/data.mdb", m->dir);
	uint8_t *p0 = s->pages, *p1 = s->pages + psize;
	if (!lm_valid(p0) || !lm_valid(p1) ||
	    (lm_txnid(p0) > lm_txnid(p1) ? lm_txnid(p0) : lm_txnid(p1)) != s->txnid)
		return cairn_errf(CAIRN_E_CORRUPT,
				  "%s/%s: saved meta pages do not select transaction %llu",
				  m->dir, CK_FILE, (unsigned long long)s->txnid);
	uint64_t last_pg, a, b;
	memcpy(&a, p0 + LM_OFF_LASTPG, 8);
	memcpy(&b, p1 + LM_OFF_LASTPG, 8);
	last_pg = lm_txnid(p0) > lm_txnid(p1) ? a : b;
	fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT) {
			CAIRN_WARN("meta", "%s: %s exists but data.mdb does not; ignoring it",
				   m->dir, CK_FILE);
			return 0;
		}
		return cairn_errf(CAIRN_E_IO, "open %s: %s", path, strerror(errno));
	}
	struct stat st;
	if (fstat(fd, &st) != 0) {
		rc = cairn_errf(CAIRN_E_IO, "stat %s: %s", path, strerror(errno));
		goto out;
	}
	if ((uint64_t)st.st_size < (last_pg + 1) * (uint64_t)psize) {
		rc = cairn_errf(CAIRN_E_CORRUPT,
				"%s is %llu bytes, shorter than the synced snapshot (%llu pages of %u)",
				path, (unsigned long long)st.st_size,
				(unsigned long long)(last_pg + 1), psize);
		goto out;
	}
	uint64_t applied = 0;
	if ((rc = undo_apply(m, fd, s, psize, last_pg, &applied)))
		goto out;
	if (pwrite(fd, s->pages, 2 * (size_t)psize, 0) != (ssize_t)(2 * (size_t)psize) ||
	    fdatasync(fd) != 0) {
		rc = cairn_errf(CAIRN_E_IO, "restore meta pages of %s: %s", path, strerror(errno));
		goto out;
	}
	m->restored = applied;
	CAIRN_WARN("meta", "%s: the OS stopped uncleanly after the last metadata sync; "
		   "rolled back to synced transaction %llu (%llu saved pages put back)", m->dir,
		   (unsigned long long)s->txnid, (unsigned long long)applied);
out:
	close(fd);
	return rc;
}

int meta_ckpt_recover(cairn_meta *m)
{
	char path[600];
	int rc = 0;
	uint8_t *buf = NULL;
	snprintf(path, sizeof path, "%s/%s", m->dir, CK_FILE);
	if (m->opts.safe_relaxed != META_RELAXED_PINNED) {
		/* other modes do not keep the file current: a stale one must
		 * never be restored later */
		if (unlink(path) != 0 && errno != ENOENT)
			return cairn_errf(CAIRN_E_IO, "remove %s: %s", path, strerror(errno));
		return 0;
	}
	if ((rc = meta_boot_id(m->boot_id)))
		return rc;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT)
			return 0;
		return cairn_errf(CAIRN_E_IO, "open %s: %s", path, strerror(errno));
	}
	struct stat st;
	if (fstat(fd, &st) != 0) {
		rc = cairn_errf(CAIRN_E_IO, "stat %s: %s", path, strerror(errno));
		goto out;
	}
	size_t max = ck_stride(65536) * 2;
	size_t have = (uint64_t)st.st_size < max ? (size_t)st.st_size : max;
	buf = malloc(have ? have : 1);
	if (!buf) {
		rc = cairn_errf(CAIRN_E_NOMEM, "read %s", path);
		goto out;
	}
	if (have && pread(fd, buf, have, 0) != (ssize_t)have) {
		rc = cairn_errf(CAIRN_E_IO, "read %s: %s", path, strerror(errno));
		goto out;
	}
	ck_slot s[2], *best = NULL;
	unsigned ps[2] = { 0, 0 };
	int ok0 = ck_decode(buf, have, &s[0], &ps[0]);
	int ok1 = 0;
	/* slot 1 sits one stride further; the stride follows the page size */
	if (ok0 && have > ck_stride(ps[0]))
		ok1 = ck_decode(buf + ck_stride(ps[0]), have - ck_stride(ps[0]), &s[1], &ps[1]);
	else if (!ok0)
		for (unsigned p = 512; p <= 65536 && !ok1; p *= 2)
			if (have > ck_stride(p))
				ok1 = ck_decode(buf + ck_stride(p), have - ck_stride(p), &s[1], &ps[1]) &&
				      ck_stride(ps[1]) == ck_stride(p);
	if (ok0)
		best = &s[0];
	if (ok1 && (!best || s[1].seq > best->seq))
		best = &s[1];
	if (!best) {
		if (have)
			CAIRN_WARN("meta", "%s: no valid slot; an OS crash before this open "
				   "cannot be repaired", path);
		goto out;
	}
	m->ck_seq = best->seq;
	if (best->flags & CK_F_CLEAN)
		goto out;
	if (strcmp(best->boot, m->boot_id) == 0)
		goto out;  /* only the process died: the page cache is current */
	rc = ck_restore(m, best, best == &s[0] ? ps[0] : ps[1]);
out:
	free(buf);
	close(fd);
	return rc;
}

/* ---- checkpoints ---- */

/* Take group-commit leadership.  lead_want makes meta_write callers wait
 * instead of leading, so a checkpoint or the undo writer gets the next turn
 * even under a steady stream of commits (it used to wait tens of ms, and
 * the rolling pin with it). */
static void lead_acquire(cairn_meta *m)
{
	pthread_mutex_lock(&m->q_lock);
	m->lead_want++;
	while (m->leader)
		pthread_cond_wait(&m->q_cond, &m->q_lock);
	m->leader = 1;
	m->lead_want--;
	pthread_mutex_unlock(&m->q_lock);
}

static void lead_release(cairn_meta *m)
{
	pthread_mutex_lock(&m->q_lock);
	m->leader = 0;
	meta_lead_handoff(m);
	pthread_mutex_unlock(&m->q_lock);
}

static int ck_fail(cairn_meta *m, int rc)
{
	cairn_err_copy(m->failmsg, sizeof m->failmsg);
	__atomic_store_n(&m->failed, 1, __ATOMIC_RELEASE);
	CAIRN_ERROR("meta", "%s", cairn_errmsg());
	return rc;
}

static int ck_open_file(cairn_meta *m)
{
	char path[600];
	struct stat st;
	snprintf(path, sizeof path, "%s/%s", m->dir, CK_FILE);
	int created = stat(path, &st) != 0;
	m->ck_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (m->ck_fd < 0)
		return cairn_errf(CAIRN_E_IO, "open %s: %s", path, strerror(errno));
	m->ck_new |= created;
	return 0;
}

static int ck_pin_begin(cairn_meta *m, MDB_txn **out)
{
	int err;
	for (int tries = 0;; tries++) {
		err = mdb_txn_begin(m->env, NULL, MDB_RDONLY, out);
		if (err == MDB_READERS_FULL && tries == 0) {
			int dead;
			(void)mdb_reader_check(m->env, &dead);
			continue;
		}
		break;
	}
	if (err)
		return meta_lmdb_err(err, "pin the synced metadata snapshot");
	return 0;
}

/* ---- the undo log ---- */

static int bit_get(const uint8_t *m, uint64_t i) { return m[i >> 3] >> (i & 7) & 1; }
static void bit_clr(uint8_t *m, uint64_t i) { m[i >> 3] &= (uint8_t)~(1u << (i & 7)); }

/* Pages of T: 2..last page, minus every page on T's free list. */
static int undo_map_build(cairn_meta *m, MDB_txn *pin, const uint8_t *pages,
			  uint8_t **out, uint64_t *lastp)
{
	unsigned psize = m->psize;
	uint64_t t0 = lm_txnid(pages), t1 = lm_txnid(pages + psize), last;
	memcpy(&last, (t0 > t1 ? pages : pages + psize) + LM_OFF_LASTPG, 8);
	uint8_t *map = malloc((size_t)(last / 8 + 1));
	if (!map)
		return cairn_errf(CAIRN_E_NOMEM, "undo page map of %llu pages",
				  (unsigned long long)last);
	memset(map, 0xff, (size_t)(last / 8 + 1));
	bit_clr(map, 0);
	bit_clr(map, 1);
	MDB_cursor *c;
	MDB_val k, v;
	int err = mdb_cursor_open(pin, 0, &c);  /* dbi 0: LMDB's free list */
	if (err) {
		free(map);
		return meta_lmdb_err(err, "open the free list");
	}
	err = mdb_cursor_get(c, &k, &v, MDB_FIRST);
	while (!err) {
		const size_t *idl = v.mv_data;
		size_t n = v.mv_size / sizeof(size_t);
		for (size_t i = 1; i < n && i <= idl[0]; i++)
			if (idl[i] <= last)
				bit_clr(map, idl[i]);
		err = mdb_cursor_get(c, &k, &v, MDB_NEXT);
	}
	mdb_cursor_close(c);
	if (err != MDB_NOTFOUND) {
		free(map);
		return meta_lmdb_err(err, "read the free list");
	}
	*out = map;
	*lastp = last;
	return 0;
}

int meta_undo_note(cairn_meta *m, uint64_t txnid)
{
	int err, rc = 0;
	if (!m->undo || !m->u_map)
		return 0;
	if (!m->u_rd)
		err = mdb_txn_begin(m->env, NULL, MDB_RDONLY, &m->u_rd);
	else
		err = mdb_txn_renew(m->u_rd);
	if (err) {
		if (m->u_rd)
			mdb_txn_abort(m->u_rd);
		m->u_rd = NULL;
		return meta_lmdb_err(err, "read the free list");
	}
	MDB_cursor *c;
	size_t key = (size_t)txnid;
	MDB_val k = { sizeof key, &key }, v;
	if ((err = mdb_cursor_open(m->u_rd, 0, &c))) {
		rc = meta_lmdb_err(err, "open the free list");
		goto out;
	}
	err = mdb_cursor_get(c, &k, &v, MDB_SET);
	if (err == MDB_NOTFOUND) {
		mdb_cursor_close(c);
		goto out;  /* freed nothing */
	}
	if (err) {
		mdb_cursor_close(c);
		rc = meta_lmdb_err(err, "read the free list");
		goto out;
	}
	const size_t *idl = v.mv_data;
	size_t n = v.mv_size / sizeof(size_t);
	unsigned psize = m->psize;
	for (size_t i = 1; i < n && i <= idl[0] && !rc; i++) {
		uint64_t pg = idl[i];
		if (pg > m->u_last || !bit_get(m->u_map, pg))
			continue;
		/* still T's bytes: nothing reuses a page before the rolling pin
		 * moves past the transaction that freed it */
		size_t at = m->u_buf.len;
		uint8_t h[UR_HDR] = { 0 };
		memcpy(h, UR_MAGIC, 4);
		le64(h + 8, pg);
		le64(h + 16, m->u_epoch);
		if ((rc = mt_buf_add(&m->u_buf, h, UR_HDR)))
			break;
		/* make room for the page and read it in place */
		if (m->u_buf.cap < m->u_buf.len + psize) {
			size_t nc = m->u_buf.cap * 2 > m->u_buf.len + psize ? m->u_buf.cap * 2
									      : m->u_buf.len + psize;
			uint8_t *np = realloc(m->u_buf.p, nc);
			if (!np) {
				rc = cairn_errf(CAIRN_E_NOMEM, "undo buffer");
				break;
			}
			m->u_buf.p = np;
			m->u_buf.cap = nc;
		}
		if (pread(m->env_fd, m->u_buf.p + m->u_buf.len, psize, (off_t)(pg * psize)) !=
		    (ssize_t)psize) {
			rc = cairn_errf(CAIRN_E_IO, "save page %llu of %s/data.mdb: %s",
					(unsigned long long)pg, m->dir, strerror(errno));
			break;
		}
		m->u_buf.len += psize;
		le32(m->u_buf.p + at + 4, cairn_crc32c(0, m->u_buf.p + at + 8, UR_HDR - 8 + psize));
		if (!m->test_nopin)
			bit_clr(m->u_map, pg);
		else
			m->u_buf.len = at;  /* tests: the protection switched off */
	}
	mdb_cursor_close(c);
out:
	if (!__atomic_exchange_n(&m->u_pending, m->u_buf.len, __ATOMIC_ACQ_REL) &&
	    m->u_buf.len && m->u_thread_on) {
		/* the first records since the last flush: wake the writer */
		pthread_mutex_lock(&m->u_lock);
		pthread_cond_signal(&m->u_cond);
		pthread_mutex_unlock(&m->u_lock);
	}
	if (!rc && !m->u_buf.len && !__atomic_load_n(&m->u_hold, __ATOMIC_ACQUIRE) &&
	    m->u_pin) {
		/* Nothing saved is waiting to be made durable: every page of T
		 * freed so far is on disk in the undo file (or was never T's),
		 * so the pin may move to the present right away (invariant 5),
		 * which lets LMDB reuse the pages freed since as soon as with
		 * plain MDB_NOSYNC.  u_rd is exactly there (renewed after this
		 * commit): it becomes the pin, the old pin the next reader. */
		MDB_txn *old = m->u_pin;
		m->u_pin = m->u_rd;
		m->u_rd = old;
	}
	mdb_txn_reset(m->u_rd);
	return rc;
}

/* busy: a checkpoint is persisting, nothing was done */
static int undo_flush(cairn_meta *m, int *busy)
{
	int rc = 0;
	MDB_txn *pin = NULL;
	*busy = 0;
	if (!m->undo)
		return 0;
	lead_acquire(m);
	/* Not a blocking lock: a checkpoint persisting (an fdatasync of the
	 * data) holds sync_lock, and waiting for it here would hold every
	 * commit up meanwhile.  That checkpoint starts a new epoch anyway. */
	int e = pthread_mutex_trylock(&m->sync_lock);
	if (e) {
		lead_release(m);
		*busy = e == EBUSY;
		return e == EBUSY ? 0 : cairn_errf(CAIRN_E_IO, "undo flush: lock: %s", strerror(e));
	}
	if (m->failed) {
		rc = cairn_errf(CAIRN_E_IO, "metadata sync failed earlier (%s); reopen", m->failmsg);
		lead_release(m);
		goto out;
	}
	/* under leadership: the records cover every commit up to now, and the
	 * new pin is exactly now */
	if (!m->u_buf.len && !m->u_retry.len) {
		/* nothing to save: the leader moves the pin by itself */
		__atomic_store_n(&m->u_pending, 0, __ATOMIC_RELEASE);
		lead_release(m);
		goto out;
	}
	if (m->u_buf.len && (rc = mt_buf_add(&m->u_retry, m->u_buf.p, m->u_buf.len))) {
		lead_release(m);
		goto out;
	}
	m->u_buf.len = 0;
	__atomic_store_n(&m->u_pending, 0, __ATOMIC_RELEASE);
	mt_buf b = m->u_retry;
	memset(&m->u_retry, 0, sizeof m->u_retry);
	int fd = m->u_fd[m->u_epoch & 1];
	off_t off = (off_t)m->u_off;
	/* until they are durable and the new pin is in place, the leader
	 * must leave the pin where it is */
	__atomic_store_n(&m->u_hold, 1, __ATOMIC_RELEASE);
	rc = ck_pin_begin(m, &pin);
	lead_release(m);
	if (!rc && b.len && (pwrite(fd, b.p, b.len, off) != (ssize_t)b.len || fdatasync(fd) != 0))
		rc = cairn_errf(cairn_rc_from_errno(errno), "write %s/meta.undo.%u: %s", m->dir,
				(unsigned)(m->u_epoch & 1), strerror(errno));
	if (rc) {
		/* not fatal: the old pin stays, nothing they protect is reused,
		 * and the next flush writes them again at the same place (the
		 * order of records does not matter) */
		m->u_retry = b;
		goto out;
	}
	m->u_off += b.len;
	free(b.p);
	if (m->u_pin)
		mdb_txn_abort(m->u_pin);
	m->u_pin = pin;
	pin = NULL;
	__atomic_store_n(&m->u_hold, 0, __ATOMIC_RELEASE);
out:
	if (pin)
		mdb_txn_abort(pin);
	pthread_mutex_unlock(&m->sync_lock);
	return rc;
}

static int64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int meta_undo_flush(cairn_meta *m)
{
	int busy;
	return undo_flush(m, &busy);
}

static void sleep_ns(int64_t ns)
{
	struct timespec ts = { (time_t)(ns / 1000000000), (long)(ns % 1000000000) };
	nanosleep(&ts, NULL);
}

/* The undo writer.  It sleeps until the leader saved pages (u_cond), then
 * flushes them at once: the pin stays behind only for as long as the
 * records take to become durable (about one fdatasync), and LMDB reuses
 * the pages freed meanwhile right after.  Flushes run back to back while
 * pages keep coming. */
static void *undo_main(void *arg)
{
	cairn_meta *m = arg;
	int64_t period = (int64_t)m->undo_ms * 1000000;
	for (;;) {
		pthread_mutex_lock(&m->u_lock);
		if (!__atomic_load_n(&m->stop, __ATOMIC_ACQUIRE) &&
		    !__atomic_load_n(&m->u_pending, __ATOMIC_ACQUIRE) &&
		    !__atomic_load_n(&m->u_hold, __ATOMIC_ACQUIRE)) {
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			uint64_t ns = (uint64_t)ts.tv_nsec + (uint64_t)period;
			ts.tv_sec += (time_t)(ns / 1000000000);
			ts.tv_nsec = (long)(ns % 1000000000);
			pthread_cond_timedwait(&m->u_cond, &m->u_lock, &ts);
		}
		pthread_mutex_unlock(&m->u_lock);
		if (__atomic_load_n(&m->stop, __ATOMIC_ACQUIRE))
			break;
		if (__atomic_load_n(&m->failed, __ATOMIC_ACQUIRE)) {
			sleep_ns(period);
			continue;
		}
		if (!__atomic_load_n(&m->u_pending, __ATOMIC_ACQUIRE) &&
		    !__atomic_load_n(&m->u_hold, __ATOMIC_ACQUIRE))
			continue;  /* nothing saved since the last flush */
		/* a young epoch while checkpoints come often (synced commits):
		 * the next one will move the pin soon, and flushing would add
		 * an fdatasync */
		pthread_mutex_lock(&m->sync_lock);
		int64_t age = mono_ns() - m->u_epoch_ns, prev = m->u_prev_ns;
		pthread_mutex_unlock(&m->sync_lock);
		if (age < 4 * period && prev < 4 * period) {
			sleep_ns(4 * period - age);
			continue;
		}
		int busy;
		if (undo_flush(m, &busy)) {
			/* retried after a period; the failure that matters
			 * (sticky) is reported by the next write */
			static int once;
			cairn_log_once(&once, CAIRN_LOG_WARN, "meta", "undo flush: %s (retrying)",
				       cairn_errmsg());
			sleep_ns(period);
		} else if (busy) {
			sleep_ns(period / 4);  /* a checkpoint is persisting */
		}
	}
	return NULL;
}

int meta_undo_start(cairn_meta *m)
{
	if (!m->undo || !m->opts.flush_interval_ms)
		return 0;
	int err = pthread_create(&m->u_thread, NULL, undo_main, m);
	if (err)
		return cairn_errf(CAIRN_E_NOMEM, "start metadata undo writer: %s", strerror(err));
	m->u_thread_on = 1;
	return 0;
}

void meta_undo_stop(cairn_meta *m)
{
	if (!m->u_thread_on)
		return;
	pthread_mutex_lock(&m->u_lock);
	__atomic_store_n(&m->stop, 1, __ATOMIC_RELEASE);
	pthread_cond_signal(&m->u_cond);
	pthread_mutex_unlock(&m->u_lock);
	pthread_join(m->u_thread, NULL);
	m->u_thread_on = 0;
}

/* Trimming the WAL, in PINNED mode, is done here: by a commit of its own
 * right before a capture, under the same leadership (meta_ckpt), instead
 * of a little by every commit.  Trimming deletes the oldest records, whose
 * pages belong to the checkpoint's snapshot; done by ordinary commits, it
 * frees pages of the snapshot all the time, each one to be saved in the
 * undo log, and the rolling pin then lags one undo flush behind another
 * while LMDB takes fresh pages from the end of the file (a 4-thread create
 * run on an environment whose log had reached wal_keep grew it from 15,000
 * to 65,000 pages and ran 4x slower).  Done right before the capture of T
 * (this commit is T), the pages it frees are on T's own free list, so they
 * are no pages of T, and the previous epoch's pin, held until T's slot is
 * durable, keeps them from being reused for as long as the previous
 * snapshot must stay restorable: they need no undo record (if the capture
 * fails after all, meta_ckpt saves them like any commit's).  Trimming is
 * housekeeping: a failure is logged and retried at the next checkpoint.
 * Returns the transaction id it committed, 0 if none. */
#define CK_TRIM_MAX ((size_t)1 << 18)

int meta_ckpt_trims(const cairn_meta *m)
{
	return m->undo;
}

static uint64_t ck_trim(cairn_meta *m)
{
	uint64_t last = __atomic_load_n(&m->last_lsn, __ATOMIC_RELAXED);
	uint64_t keep = m->opts.wal_keep;
	uint64_t first = __atomic_load_n(&m->wal_first, __ATOMIC_RELAXED);
	if (last <= keep || (first && first > last - keep))
		return 0;  /* nothing below the horizon */
	MDB_txn *txn;
	MDB_envinfo info;
	uint64_t before = 0, done = 0;
	int rc = 0, err = mdb_env_info(m->env, &info);
	if (!err) {
		before = info.me_last_txnid;
		err = mdb_txn_begin(m->env, NULL, 0, &txn);
	}
	if (err) {
		rc = meta_lmdb_err(err, "trim WAL");
		goto out;
	}
	if ((rc = mw_trim_some(m, txn, last, CK_TRIM_MAX))) {
		mdb_txn_abort(txn);
		goto out;
	}
	if ((err = mdb_txn_commit(txn))) {
		rc = meta_lmdb_err(err, "commit WAL trim");
		goto out;
	}
	if ((err = mdb_env_info(m->env, &info))) {
		/* it may have committed: assume so (saving costs only copies) */
		done = before + 1;
		rc = meta_lmdb_err(err, "metadata environment info");
	} else if (info.me_last_txnid != before) {
		done = info.me_last_txnid;
	}
	if (done) {
		meta_pool_stale(m);
		__atomic_add_fetch(&m->commit_seq, 1, __ATOMIC_SEQ_CST);
	}
out:
	if (rc) {
		static int once;
		cairn_log_once(&once, CAIRN_LOG_WARN, "meta",
			       "WAL trim at checkpoint: %s (retried at the next)", cairn_errmsg());
	}
	return done;
}

int meta_ckpt(cairn_meta *m, uint64_t seq, int have_leader, unsigned flags)
{
	int rc = 0, err, leading = 0, new_epoch = 0;
	uint64_t trimmed = 0;
	MDB_txn *old_upin = NULL;
	int clean = (flags & MCK_CLEAN) != 0, force = (flags & (MCK_CLEAN | MCK_FORCE)) != 0;
	MDB_txn *pin = NULL;
	uint8_t *slot = NULL;
	unsigned psize = m->psize;
	size_t stride = ck_stride(psize);

	/* The common case (a synced caller whose leader synced) costs no
	 * leadership and no lock: sync_lock is held by a checkpoint for its
	 * whole fdatasync, and a caller already covered would wait for it.
	 * synced_seq is stored (release) only once its slot is durable. */
	if (!force && __atomic_load_n(&m->synced_seq, __ATOMIC_ACQUIRE) >= seq &&
	    !__atomic_load_n(&m->failed, __ATOMIC_ACQUIRE))
		return 0;
	if ((flags & MCK_PRESYNC) && !have_leader) {
		/* From the capture until the new slot is durable nothing freed
		 * since the previous epoch's pin is reused: every commit then
		 * takes fresh pages, which the fdatasync must write too.  Write
		 * the dirty pages back first, with nothing pinned, so that the
		 * pinned fdatasync has only what changed meanwhile to write. */
		int err0 = 0;
		if (fdatasync(m->env_fd) != 0)
			err0 = errno;
		if (err0) {
			pthread_mutex_lock(&m->sync_lock);
			rc = ck_fail(m, cairn_errf(CAIRN_E_IO, "fdatasync of metadata in %s: %s",
						   m->dir, strerror(err0)));
			pthread_mutex_unlock(&m->sync_lock);
			return rc;
		}
	}
	if (!have_leader) {
		lead_acquire(m);
		leading = 1;
	}
	pthread_mutex_lock(&m->sync_lock);
	if (m->failed) {
		rc = cairn_errf(CAIRN_E_IO, "metadata sync failed earlier (%s); reopen", m->failmsg);
		goto out;
	}
	if (m->synced_seq >= seq && !force)
		goto out;

	/* not in the first checkpoint of an open: nothing may be written
	 * before it (invariant 1) */
	if (m->u_map && meta_ckpt_trims(m))
		trimmed = ck_trim(m);

	/* capture: no commit can run (we lead), so T and its meta pages
	 * match and the pin gets exactly T */
	uint64_t cseq = __atomic_load_n(&m->commit_seq, __ATOMIC_SEQ_CST);
	uint64_t clsn = __atomic_load_n(&m->last_lsn, __ATOMIC_SEQ_CST);  /* T's */
	MDB_envinfo info;
	if ((err = mdb_env_info(m->env, &info))) {
		rc = meta_lmdb_err(err, "metadata environment info");
		goto out;
	}
	uint64_t txnid = info.me_last_txnid;
	if (txnid == m->ck_txnid && m->ck_fd >= 0 && !force) {
		/* batches that changed nothing commit no LMDB transaction */
		__atomic_store_n(&m->synced_seq, cseq, __ATOMIC_RELEASE);
		meta_durable_note(m, clsn);
		goto out;
	}
	slot = calloc(1, stride);
	if (!slot) {
		rc = cairn_errf(CAIRN_E_NOMEM, "metadata checkpoint");
		goto out;
	}
	ck_slot s;
	memset(&s, 0, sizeof s);
	s.pages = malloc(2 * (size_t)psize);
	if (!s.pages) {
		rc = cairn_errf(CAIRN_E_NOMEM, "metadata checkpoint");
		goto out;
	}
	if (pread(m->env_fd, s.pages, 2 * (size_t)psize, 0) != (ssize_t)(2 * (size_t)psize)) {
		rc = cairn_errf(CAIRN_E_IO, "read meta pages of %s/data.mdb: %s", m->dir,
				strerror(errno));
		free(s.pages);
		goto out;
	}
	uint64_t t0 = lm_txnid(s.pages), t1 = lm_txnid(s.pages + psize);
	if (!lm_valid(s.pages) || !lm_valid(s.pages + psize) || (t0 > t1 ? t0 : t1) != txnid) {
		rc = cairn_errf(CAIRN_E_CORRUPT,
				"meta pages of %s/data.mdb do not name transaction %llu "
				"(LMDB layout not understood)", m->dir, (unsigned long long)txnid);
		free(s.pages);
		goto out;
	}
	if ((rc = ck_pin_begin(m, &pin))) {
		free(s.pages);
		goto out;
	}
	if (mdb_txn_id(pin) != txnid) {
		rc = cairn_errf(CAIRN_E_IO, "pinned snapshot %zu is not %llu", mdb_txn_id(pin),
				(unsigned long long)txnid);
		free(s.pages);
		goto out;
	}
	if (m->undo) {
		/* a new undo epoch starts at T, before any later commit: the
		 * pin becomes its rolling pin; the old epoch's rolling pin
		 * stays until the new slot is durable */
		uint8_t *map = NULL;
		uint64_t last = 0;
		if ((rc = undo_map_build(m, pin, s.pages, &map, &last))) {
			free(s.pages);
			goto out;
		}
		free(m->u_map);
		m->u_map = map;
		m->u_last = last;
		m->u_epoch = m->ck_seq + 1;
		int64_t now = mono_ns();
		m->u_prev_ns = now - m->u_epoch_ns;
		m->u_epoch_ns = now;
		m->u_off = 0;
		m->u_buf.len = 0;
		m->u_retry.len = 0;
		/* the old epoch's unsaved records are dropped: old_upin
		 * protects what they covered until the new slot is durable */
		__atomic_store_n(&m->u_pending, 0, __ATOMIC_RELEASE);
		__atomic_store_n(&m->u_hold, 0, __ATOMIC_RELEASE);
		old_upin = m->u_pin;
		m->u_pin = pin;
		pin = NULL;
		new_epoch = 1;
	}
	if (leading) {
		/* commits go on while we sync: T's pages are pinned */
		lead_release(m);
		leading = 0;
	}

	/* persist.  The new epoch's undo file is not truncated: its records
	 * are written from offset 0 over those of two epochs ago, which carry
	 * another epoch number and end the reading at recovery. */
	if (m->ck_fd < 0 && (rc = ck_open_file(m))) {
		free(s.pages);
		goto out;
	}
	err = meta_fault_hit(m, MF_SYNC);
	if (!err && fdatasync(m->env_fd) != 0)
		err = errno;
	if (err) {
		rc = ck_fail(m, cairn_errf(CAIRN_E_IO, "fdatasync of metadata in %s: %s", m->dir,
					   strerror(err)));
		free(s.pages);
		goto out;
	}
	s.seq = m->ck_seq + 1;
	s.txnid = txnid;
	s.flags = clean ? CK_F_CLEAN : 0;
	memcpy(s.boot, m->boot_id, 40);
	ck_encode(slot, psize, &s);
	free(s.pages);
	off_t off = (off_t)((s.seq & 1) * stride);
	if (pwrite(m->ck_fd, slot, stride, off) != (ssize_t)stride || fdatasync(m->ck_fd) != 0) {
		rc = ck_fail(m, cairn_errf(CAIRN_E_IO, "write %s/%s: %s", m->dir, CK_FILE,
					   strerror(errno)));
		goto out;
	}
	if (m->ck_new) {
		if ((rc = meta_fsync_dir(m->dir))) {
			rc = ck_fail(m, rc);
			goto out;
		}
		m->ck_new = 0;
	}
	m->ck_seq = s.seq;
	m->ck_txnid = txnid;
	if (cseq > m->synced_seq)
		__atomic_store_n(&m->synced_seq, cseq, __ATOMIC_RELEASE);
	meta_durable_note(m, clsn);
	/* the new slot is durable: the previous snapshot may now be reused */
	if (m->undo) {
		if (old_upin)
			mdb_txn_abort(old_upin);
		old_upin = NULL;
	} else {
		if (m->ck_pin)
			mdb_txn_abort(m->ck_pin);
		m->ck_pin = pin;
		pin = NULL;
		if (m->test_nopin) {
			mdb_txn_abort(m->ck_pin);
			m->ck_pin = NULL;
		}
	}
	if (m->test_ckpt_hook)
		m->test_ckpt_hook(m, m->test_ckpt_arg);
out:
	if (trimmed && !new_epoch && m->undo) {
		/* The capture failed after the trim: no new epoch covers the
		 * pages the trim freed, which belong to the current epoch's
		 * snapshot.  Save them like those of any commit (we still
		 * lead); if even that fails, stop (as run_batch does). */
		int r2 = meta_undo_note(m, trimmed);
		if (r2) {
			r2 = ck_fail(m, r2);
			if (!rc)
				rc = r2;
		}
	}
	if (pin)
		mdb_txn_abort(pin);
	if (old_upin) {
		/* the new slot never became durable (the environment failed):
		 * keep the old epoch protected until close */
		if (m->ck_pin)
			mdb_txn_abort(m->ck_pin);
		m->ck_pin = old_upin;
	}
	free(slot);
	pthread_mutex_unlock(&m->sync_lock);
	if (leading)
		lead_release(m);
	return rc;
}

int meta_ckpt_open(cairn_meta *m)
{
	MDB_stat st;
	int err = mdb_env_stat(m->env, &st);
	if (err)
		return meta_lmdb_err(err, "metadata environment stat");
	m->psize = st.ms_psize;
	if ((err = mdb_env_get_fd(m->env, &m->env_fd)))
		return meta_lmdb_err(err, "metadata file descriptor");
	m->ck_fd = -1;
	m->ck_txnid = 0;
	m->undo = 1;
	m->undo_ms = 5;
	for (int i = 0; i < 2; i++) {
		char path[600];
		struct stat ust;
		snprintf(path, sizeof path, "%s/meta.undo.%d", m->dir, i);
		if (stat(path, &ust) != 0)
			m->ck_new = 1;  /* the first checkpoint syncs the directory */
		m->u_fd[i] = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
		if (m->u_fd[i] < 0)
			return cairn_errf(CAIRN_E_IO, "open %s: %s", path, strerror(errno));
	}
	/* before any write: from here on the side file names a snapshot this
	 * process pins (invariant 1), and the clean mark is gone */
	int rc = meta_ckpt(m, 0, 1, MCK_FORCE);
	if (rc)
		return cairn_err_wrap(rc, "first metadata checkpoint in %s", m->dir);
	return 0;
}

void meta_ckpt_close(cairn_meta *m)
{
	if (m->u_pin)
		mdb_txn_abort(m->u_pin);
	if (m->u_rd)
		mdb_txn_abort(m->u_rd);
	m->u_pin = m->u_rd = NULL;
	for (int i = 0; i < 2; i++)
		if (m->u_fd[i] >= 0) {
			close(m->u_fd[i]);
			m->u_fd[i] = -1;
		}
	free(m->u_map);
	m->u_map = NULL;
	free(m->u_buf.p);
	memset(&m->u_buf, 0, sizeof m->u_buf);
	free(m->u_retry.p);
	memset(&m->u_retry, 0, sizeof m->u_retry);
	if (m->ck_pin) {
		mdb_txn_abort(m->ck_pin);
		m->ck_pin = NULL;
	}
	if (m->ck_fd >= 0) {
		close(m->ck_fd);
		m->ck_fd = -1;
	}
}
