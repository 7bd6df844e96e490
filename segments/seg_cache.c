/*
 * seg_cache.c - the local segment cache: pieces (byte ranges) of segment
 * objects in files under one directory, within a size limit, least recently
 * used evicted first, verified on every read, reused after a restart.
 *
 * A piece file "c-<first 32 hex of sha256(key)>-<offset %016x>" holds:
 *
 *     0  magic "CAIRNCCH"     8  u16 version (1)    10 u16 key length
 *     12 u32 block size (65536)                     16 u64 offset in segment
 *     24 u64 length           32 u32 block count    36 u32 data offset
 *     40 rsv[20]              60 u32 crc32c of bytes 0..59, the key and the
 *                                    block crcs
 *     64 key bytes, then one u32 crc32c per block of data
 *     data offset (64 + key + crcs rounded up to 4096): the bytes
 *
 * Pieces are written to "tmp-*" and renamed into place under the cache
 * lock, so a name always denotes a complete file; they are not fsynced: a
 * power loss can leave garbage, which the checksums catch (and a cache
 * may lose data).
 *
 * Invariants
 *   1. Every piece in the in-memory table has a file of that name whose
 *      header and block crcs were verified when it was written or at open;
 *      the table's copy of the block crcs is what data is checked against.
 *   2. Bytes returned by seg_cache_get passed their block crcs.  A block
 *      that fails is logged with the segment and file, the piece is deleted
 *      and the call returns CAIRN_E_CORRUPT.
 *   3. bytes (sum of piece file sizes) <= limit after every put, and at
 *      open (older pieces by mtime evicted first).
 *   4. Files are created, renamed and unlinked only under the lock, so an
 *      eviction can never delete a newer piece of the same name; a reader
 *      opens the file under the lock and then reads the inode it opened.
 *
 * Piece life:  put: tmp-* --rename--> c-* (in table) --evict/drop/corrupt-->
 *              unlinked.  open: c-* valid -> table; invalid or tmp-* ->
 *              unlinked.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "seg_int.h"

#define MOD "segments"
#define CACHE_MAGIC "CAIRNCCH"
#define CACHE_VERSION 1
#define CACHE_BLOCK (64u << 10)
#define CACHE_HDR 64
#define CACHE_NAME_MAX 64

typedef struct piece {
	char *key;
	uint64_t off, len;
	uint64_t disk;           /* file size */
	uint32_t data_off;
	uint32_t nblocks;
	uint32_t *crcs;
	uint64_t gen;            /* unique per piece, to tell replacements */
	int64_t mtime;           /* at open only, to order the LRU */
	char name[CACHE_NAME_MAX];
	struct piece *prev, *next; /* LRU: head most recent */
	struct piece *hnext;       /* hash chain by key */
} piece;

struct seg_cache {
	pthread_mutex_t mu;
	cairn_uring *u;
	char *dir;
	int dfd;
	uint64_t limit;
	piece **buckets;
	size_t nbuckets;
	piece *head, *tail;
	uint64_t gen, tmpseq;
	seg_cache_stats st;
	/* Fetches in flight (seg_cache_claim): one reader fetches a piece,
	 * the others wait for it instead of fetching the same bytes. */
	struct claim {
		char *key;
		uint64_t off;
		struct claim *next;
	} *claims;
	pthread_cond_t claim_cv;
};

/* ---- table ---- */

static size_t key_hash(const char *key)
{
	uint64_t h = 1469598103934665603ULL;

	for (; *key; key++)
		h = (h ^ (uint8_t)*key) * 1099511628211ULL;
	return (size_t)h;
}

static void lru_unlink(seg_cache *c, piece *p)
{
	if (p->prev)
		p->prev->next = p->next;
	else
		c->head = p->next;
	if (p->next)
		p->next->prev = p->prev;
	else
		c->tail = p->prev;
	p->prev = p->next = NULL;
}

static void lru_front(seg_cache *c, piece *p)
{
	p->next = c->head;
	p->prev = NULL;
	if (c->head)
		c->head->prev = p;
	c->head = p;
	if (!c->tail)
		c->tail = p;
}

static void piece_free(piece *p)
{
	if (!p)
		return;
	free(p->key);
	free(p->crcs);
	free(p);
}

static int table_grow(seg_cache *c)
{
	size_t nb = c->nbuckets ? c->nbuckets * 2 : 256;
	piece **nv = calloc(nb, sizeof *nv);

	if (!nv)
		return cairn_errf(CAIRN_E_NOMEM, "cache %s: table", c->dir);
	for (size_t i = 0; i < c->nbuckets; i++) {
		piece *p = c->buckets[i], *n;

		for (; p; p = n) {
			size_t b = key_hash(p->key) & (nb - 1);

			n = p->hnext;
			p->hnext = nv[b];
			nv[b] = p;
		}
	}
	free(c->buckets);
	c->buckets = nv;
	c->nbuckets = nb;
	return CAIRN_OK;
}

static int table_add(seg_cache *c, piece *p)
{
	size_t b;
	int rc;

	if (c->st.pieces + 1 > c->nbuckets) {
		rc = table_grow(c);
		if (rc)
			return rc;
	}
	b = key_hash(p->key) & (c->nbuckets - 1);
	p->hnext = c->buckets[b];
	c->buckets[b] = p;
	c->st.pieces++;
	c->st.bytes += p->disk;
	return CAIRN_OK;
}

/* Take p out of the table and the LRU; unlink its file if asked. */
static void table_del(seg_cache *c, piece *p, int unlink_file)
{
	piece **pp = &c->buckets[key_hash(p->key) & (c->nbuckets - 1)];

	while (*pp && *pp != p)
		pp = &(*pp)->hnext;
	if (*pp)
		*pp = p->hnext;
	lru_unlink(c, p);
	c->st.pieces--;
	c->st.bytes -= p->disk;
	if (unlink_file && unlinkat(c->dfd, p->name, 0) != 0 && errno != ENOENT)
		CAIRN_WARN(MOD, "cache %s: unlink %s: %s", c->dir, p->name,
			   strerror(errno));
	piece_free(p);
}

static piece *table_find_name(seg_cache *c, const char *key, const char *name)
{
	piece *p = c->nbuckets ? c->buckets[key_hash(key) & (c->nbuckets - 1)]
			       : NULL;

	for (; p; p = p->hnext)
		if (strcmp(p->name, name) == 0)
			return p;
	return NULL;
}

static piece *table_find_range(seg_cache *c, const char *key, uint64_t off,
			       uint64_t len)
{
	piece *p = c->nbuckets ? c->buckets[key_hash(key) & (c->nbuckets - 1)]
			       : NULL;

	for (; p; p = p->hnext)
		if (p->off <= off && off - p->off <= p->len &&
		    len <= p->len - (off - p->off) && strcmp(p->key, key) == 0)
			return p;
	return NULL;
}

static void evict_to(seg_cache *c, uint64_t limit, const piece *keep)
{
	piece *p = c->tail;

	while (c->st.bytes > limit && p) {
		piece *prev = p->prev;

		if (p != keep) {
			CAIRN_DEBUG(MOD, "cache: evict %s @%" PRIu64 " (%" PRIu64 " bytes)",
				    p->key, p->off, p->len);
			c->st.evictions++;
			table_del(c, p, 1);
		}
		p = prev;
	}
}

/* ---- piece files ---- */

static int piece_name(const char *key, uint64_t off, char name[CACHE_NAME_MAX])
{
	uint8_t h[CAIRN_SHA256_LEN];
	char hex[2 * CAIRN_SHA256_LEN + 1];
	int rc = cairn_sha256(key, strlen(key), h);

	if (rc)
		return rc;
	cairn_hex(h, sizeof h, hex);
	snprintf(name, CACHE_NAME_MAX, "c-%.32s-%016" PRIx64, hex, off);
	return CAIRN_OK;
}

static uint32_t data_off_for(size_t keylen, uint32_t nblocks)
{
	uint64_t m = CACHE_HDR + keylen + 4ull * nblocks;

	return (uint32_t)((m + 4095) & ~4095ull);
}

/* Header, key and block crcs of piece p (meta is data_off bytes). */
static void meta_encode(const piece *p, uint8_t *meta)
{
	size_t klen = strlen(p->key);
	uint8_t *cr = meta + CACHE_HDR + klen;
	uint32_t crc;

	memset(meta, 0, p->data_off);
	memcpy(meta, CACHE_MAGIC, 8);
	seg_put16(meta + 8, CACHE_VERSION);
	seg_put16(meta + 10, (uint16_t)klen);
	seg_put32(meta + 12, CACHE_BLOCK);
	seg_put64(meta + 16, p->off);
	seg_put64(meta + 24, p->len);
	seg_put32(meta + 32, p->nblocks);
	seg_put32(meta + 36, p->data_off);
	memcpy(meta + CACHE_HDR, p->key, klen);
	for (uint32_t i = 0; i < p->nblocks; i++)
		seg_put32(cr + 4 * i, p->crcs[i]);
	crc = cairn_crc32c(0, meta, 60);
	crc = cairn_crc32c(crc, meta + CACHE_HDR, klen + 4ull * p->nblocks);
	seg_put32(meta + 60, crc);
}

/* Validate the piece file name (in dir) and load its entry; any failure is
 * CAIRN_E_CORRUPT with the reason (the caller deletes the file). */
static int piece_load(seg_cache *c, const char *name, piece **out)
{
	uint8_t hdr[CACHE_HDR], *rest = NULL;
	piece *p = NULL;
	struct stat st;
	size_t got = 0, klen, rlen;
	uint32_t crc;
	char want[CACHE_NAME_MAX];
	int fd, rc;

	*out = NULL;
	fd = openat(c->dfd, name, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return cairn_errf(CAIRN_E_IO, "open: %s", strerror(errno));
	if (fstat(fd, &st) != 0) {
		rc = cairn_errf(CAIRN_E_IO, "stat: %s", strerror(errno));
		goto out;
	}
	rc = uring_read(c->u, fd, hdr, sizeof hdr, 0, &got);
	if (rc)
		goto out;
	rc = CAIRN_E_CORRUPT;
	if (got != sizeof hdr || memcmp(hdr, CACHE_MAGIC, 8) != 0) {
		cairn_errf(rc, "no valid header");
		goto out;
	}
	if (seg_get16(hdr + 8) != CACHE_VERSION ||
	    seg_get32(hdr + 12) != CACHE_BLOCK) {
		cairn_errf(rc, "unknown version or block size");
		goto out;
	}
	p = calloc(1, sizeof *p);
	if (!p) {
		rc = cairn_errf(CAIRN_E_NOMEM, "piece");
		goto out;
	}
	klen = seg_get16(hdr + 10);
	p->off = seg_get64(hdr + 16);
	p->len = seg_get64(hdr + 24);
	p->nblocks = seg_get32(hdr + 32);
	p->data_off = seg_get32(hdr + 36);
	if (klen == 0 || klen > CAIRN_KEY_MAX || p->len == 0 ||
	    p->len > SEG_MAX_SIZE ||
	    p->nblocks != (p->len + CACHE_BLOCK - 1) / CACHE_BLOCK ||
	    p->data_off != data_off_for(klen, p->nblocks) ||
	    (uint64_t)st.st_size != p->data_off + p->len) {
		cairn_errf(rc, "inconsistent header or size (%" PRIu64 " bytes)",
			   (uint64_t)st.st_size);
		goto out;
	}
	rlen = klen + 4ull * p->nblocks;
	rest = malloc(rlen);
	p->key = malloc(klen + 1);
	p->crcs = malloc(4ull * p->nblocks);
	if (!rest || !p->key || !p->crcs) {
		rc = cairn_errf(CAIRN_E_NOMEM, "piece");
		goto out;
	}
	rc = uring_read(c->u, fd, rest, rlen, CACHE_HDR, &got);
	if (rc)
		goto out;
	rc = CAIRN_E_CORRUPT;
	crc = cairn_crc32c(cairn_crc32c(0, hdr, 60), rest, got);
	if (got != rlen || crc != seg_get32(hdr + 60)) {
		cairn_errf(rc, "header checksum mismatch");
		goto out;
	}
	memcpy(p->key, rest, klen);
	p->key[klen] = '\0';
	for (uint32_t i = 0; i < p->nblocks; i++)
		p->crcs[i] = seg_get32(rest + klen + 4 * i);
	rc = piece_name(p->key, p->off, want);
	if (rc)
		goto out;
	if (strcmp(want, name) != 0) {
		rc = cairn_errf(CAIRN_E_CORRUPT, "name does not match key '%s'",
				p->key);
		goto out;
	}
	memcpy(p->name, want, sizeof want);
	p->disk = (uint64_t)st.st_size;
	p->mtime = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
	*out = p;
	p = NULL;
	rc = CAIRN_OK;
out:
	close(fd);
	free(rest);
	piece_free(p);
	return rc;
}

static int cmp_mtime(const void *a, const void *b)
{
	const piece *x = *(piece *const *)a, *y = *(piece *const *)b;

	return x->mtime < y->mtime ? -1 : x->mtime > y->mtime;
}

int seg_cache_open(cairn_uring *u, const char *dir, uint64_t limit,
		   seg_cache **out)
{
	seg_cache *c = NULL;
	piece **v = NULL, *p;
	size_t n = 0, cap = 0;
	DIR *d = NULL;
	struct dirent *de;
	int rc;

	*out = NULL;
	if (limit == 0)
		return cairn_errf(CAIRN_E_INVAL, "cache %s: size limit is 0", dir);
	if (mkdir(dir, 0755) != 0 && errno != EEXIST)
		return cairn_errf(CAIRN_E_IO, "create cache directory %s: %s", dir,
				  strerror(errno));
	c = calloc(1, sizeof *c);
	if (!c || !(c->dir = strdup(dir))) {
		free(c);
		return cairn_errf(CAIRN_E_NOMEM, "cache %s", dir);
	}
	c->dfd = -1;
	if (pthread_mutex_init(&c->mu, NULL) != 0) {
		free(c->dir);
		free(c);
		return cairn_errf(CAIRN_E_NOMEM, "cache %s: mutex", dir);
	}
	if (pthread_cond_init(&c->claim_cv, NULL) != 0) {
		pthread_mutex_destroy(&c->mu);
		free(c->dir);
		free(c);
		return cairn_errf(CAIRN_E_NOMEM, "cache %s: condition variable", dir);
	}
	c->u = u;
	c->limit = limit;
	c->st.limit = limit;
	c->dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (c->dfd < 0) {
		rc = cairn_errf(CAIRN_E_IO, "open cache directory %s: %s", dir,
				strerror(errno));
		goto fail;
	}
	rc = table_grow(c);
	if (rc)
		goto fail;
	{
		/* fdopendir owns the descriptor it is given: give it a copy. */
		int lfd = dup(c->dfd);

		d = lfd >= 0 ? fdopendir(lfd) : NULL;
		if (!d) {
			rc = cairn_errf(CAIRN_E_IO, "read cache directory %s: %s",
					dir, strerror(errno));
			if (lfd >= 0)
				close(lfd);
			goto fail;
		}
	}
	while ((de = readdir(d)) != NULL) {
		if (strncmp(de->d_name, "tmp-", 4) == 0) {
			/* A put that did not finish before a crash. */
			if (unlinkat(c->dfd, de->d_name, 0) != 0)
				CAIRN_WARN(MOD, "cache %s: unlink %s: %s", dir,
					   de->d_name, strerror(errno));
			continue;
		}
		if (strncmp(de->d_name, "c-", 2) != 0)
			continue;
		rc = piece_load(c, de->d_name, &p);
		if (rc == CAIRN_E_CORRUPT || rc == CAIRN_E_IO) {
			CAIRN_WARN(MOD, "cache %s: dropping %s: %s", dir,
				   de->d_name, cairn_errmsg());
			if (unlinkat(c->dfd, de->d_name, 0) != 0)
				CAIRN_WARN(MOD, "cache %s: unlink %s: %s", dir,
					   de->d_name, strerror(errno));
			continue;
		}
		if (rc)
			goto fail;
		if (n == cap) {
			size_t ncap = cap ? cap * 2 : 64;
			piece **nv = realloc(v, ncap * sizeof *nv);

			if (!nv) {
				piece_free(p);
				rc = cairn_errf(CAIRN_E_NOMEM, "cache %s: open", dir);
				goto fail;
			}
			v = nv;
			cap = ncap;
		}
		v[n++] = p;
	}
	/* Oldest first, each pushed to the front: the newest ends at the head. */
	if (n)
		qsort(v, n, sizeof *v, cmp_mtime);
	for (size_t i = 0; i < n; i++) {
		rc = table_add(c, v[i]);
		if (rc)
			goto fail;
		v[i]->gen = ++c->gen;
		lru_front(c, v[i]);
		v[i] = NULL;
	}
	evict_to(c, c->limit, NULL);
	closedir(d);
	free(v);
	*out = c;
	return CAIRN_OK;
fail:
	if (d)
		closedir(d);
	for (size_t i = 0; i < n; i++)
		piece_free(v[i]);
	free(v);
	seg_cache_close(c);
	return rc;
}

void seg_cache_close(seg_cache *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->nbuckets; i++) {
		piece *p = c->buckets[i], *n;

		for (; p; p = n) {
			n = p->hnext;
			piece_free(p);
		}
	}
	free(c->buckets);
	if (c->dfd >= 0)
		close(c->dfd);
	while (c->claims) {
		struct claim *n = c->claims->next;
		free(c->claims->key);
		free(c->claims);
		c->claims = n;
	}
	pthread_cond_destroy(&c->claim_cv);
	pthread_mutex_destroy(&c->mu);
	free(c->dir);
	free(c);
}

int seg_cache_has(seg_cache *c, const char *key, uint64_t off, uint64_t len)
{
	int has;

	pthread_mutex_lock(&c->mu);
	has = len && table_find_range(c, key, off, len) != NULL;
	pthread_mutex_unlock(&c->mu);
	return has;
}

static struct claim **claim_find(seg_cache *c, const char *key, uint64_t off)
{
	struct claim **pp = &c->claims;

	for (; *pp; pp = &(*pp)->next)
		if ((*pp)->off == off && !strcmp((*pp)->key, key))
			return pp;
	return NULL;
}

int seg_cache_claim(seg_cache *c, const char *key, uint64_t off)
{
	struct claim *cl;

	pthread_mutex_lock(&c->mu);
	if (claim_find(c, key, off)) {
		while (claim_find(c, key, off))
			pthread_cond_wait(&c->claim_cv, &c->mu);
		pthread_mutex_unlock(&c->mu);
		return 0;
	}
	cl = calloc(1, sizeof *cl);
	if (cl && !(cl->key = strdup(key))) {
		free(cl);
		cl = NULL;
	}
	if (cl) { /* without memory: fetch, just not deduplicated */
		cl->off = off;
		cl->next = c->claims;
		c->claims = cl;
	}
	pthread_mutex_unlock(&c->mu);
	return 1;
}

void seg_cache_unclaim(seg_cache *c, const char *key, uint64_t off)
{
	struct claim **pp, *cl;

	pthread_mutex_lock(&c->mu);
	pp = claim_find(c, key, off);
	if (pp) {
		cl = *pp;
		*pp = cl->next;
		free(cl->key);
		free(cl);
		pthread_cond_broadcast(&c->claim_cv);
	}
	pthread_mutex_unlock(&c->mu);
}

int seg_cache_put(seg_cache *c, const char *key, uint64_t off,
		  const void *buf, size_t len)
{
	piece *p = NULL, *old;
	uint8_t *meta = NULL;
	char tmp[48];
	uring_op ops[2];
	size_t klen = strlen(key);
	int fd = -1, rc;

	if (len == 0 || klen == 0 || klen > CAIRN_KEY_MAX || len > SEG_MAX_SIZE)
		return cairn_errf(CAIRN_E_INVAL,
				  "cache put '%.80s' @%" PRIu64 ": %zu bytes, key of %zu",
				  key, off, len, klen);
	p = calloc(1, sizeof *p);
	if (!p)
		return cairn_errf(CAIRN_E_NOMEM, "cache put");
	p->off = off;
	p->len = len;
	p->nblocks = (uint32_t)((len + CACHE_BLOCK - 1) / CACHE_BLOCK);
	p->data_off = data_off_for(klen, p->nblocks);
	p->disk = p->data_off + len;
	if (p->disk > c->limit) {
		rc = cairn_errf(CAIRN_E_RANGE,
				"cache %s: piece of %" PRIu64 " bytes exceeds the limit %" PRIu64,
				c->dir, p->disk, c->limit);
		goto out;
	}
	p->key = strdup(key);
	p->crcs = malloc(4ull * p->nblocks);
	meta = malloc(p->data_off);
	if (!p->key || !p->crcs || !meta) {
		rc = cairn_errf(CAIRN_E_NOMEM, "cache put %s", key);
		goto out;
	}
	for (uint32_t i = 0; i < p->nblocks; i++) {
		uint64_t b = (uint64_t)i * CACHE_BLOCK;
		uint64_t bl = len - b < CACHE_BLOCK ? len - b : CACHE_BLOCK;

		p->crcs[i] = cairn_crc32c(0, (const uint8_t *)buf + b, bl);
	}
	rc = piece_name(key, off, p->name);
	if (rc)
		goto out;
	meta_encode(p, meta);

	pthread_mutex_lock(&c->mu);
	snprintf(tmp, sizeof tmp, "tmp-%d-%" PRIu64, (int)getpid(), ++c->tmpseq);
	pthread_mutex_unlock(&c->mu);
	fd = openat(c->dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0) {
		rc = cairn_errf(CAIRN_E_IO, "cache %s: create %s: %s", c->dir, tmp,
				strerror(errno));
		goto out;
	}
	memset(ops, 0, sizeof ops);
	ops[0].op = URING_OP_WRITE;
	ops[0].fd = fd;
	ops[0].buf = meta;
	ops[0].len = p->data_off;
	ops[0].off = 0;
	ops[1].op = URING_OP_WRITE;
	ops[1].fd = fd;
	ops[1].buf = (void *)buf;
	ops[1].len = len;
	ops[1].off = p->data_off;
	rc = uring_run(c->u, ops, 2);
	close(fd);
	fd = -1;
	if (rc) {
		rc = cairn_err_wrap(rc, "cache %s: write %s", c->dir, tmp);
		unlinkat(c->dfd, tmp, 0);
		goto out;
	}

	pthread_mutex_lock(&c->mu);
	if (renameat(c->dfd, tmp, c->dfd, p->name) != 0) {
		rc = cairn_errf(CAIRN_E_IO, "cache %s: rename %s: %s", c->dir,
				tmp, strerror(errno));
		pthread_mutex_unlock(&c->mu);
		unlinkat(c->dfd, tmp, 0);
		goto out;
	}
	old = table_find_name(c, key, p->name);
	if (old)
		table_del(c, old, 0); /* its file was just replaced */
	rc = table_add(c, p);
	if (rc) {
		unlinkat(c->dfd, p->name, 0);
		pthread_mutex_unlock(&c->mu);
		goto out;
	}
	p->gen = ++c->gen;
	lru_front(c, p);
	evict_to(c, c->limit, p);
	p = NULL;
	pthread_mutex_unlock(&c->mu);
out:
	if (fd >= 0)
		close(fd);
	free(meta);
	piece_free(p);
	return rc;
}

int seg_cache_get(seg_cache *c, const char *key, uint64_t off, void *buf,
		  size_t len)
{
	piece *p;
	uint64_t pstart, pend, b0, b1, gen, rel;
	uint32_t *crcs = NULL, data_off;
	uint8_t *tmp = NULL;
	char name[CACHE_NAME_MAX];
	size_t got = 0, n;
	int fd = -1, rc;

	if (len == 0)
		return cairn_errf(CAIRN_E_INVAL, "cache get %s: empty range", key);
	pthread_mutex_lock(&c->mu);
	p = table_find_range(c, key, off, len);
	if (!p) {
		c->st.misses++;
		pthread_mutex_unlock(&c->mu);
		return cairn_errf(CAIRN_E_NOTFOUND,
				  "cache: %s @%" PRIu64 "+%zu not cached", key, off,
				  len);
	}
	rel = off - p->off;
	b0 = rel / CACHE_BLOCK;
	b1 = (rel + len - 1) / CACHE_BLOCK;
	pstart = b0 * CACHE_BLOCK;
	pend = (b1 + 1) * CACHE_BLOCK;
	if (pend > p->len)
		pend = p->len;
	crcs = malloc((b1 - b0 + 1) * sizeof *crcs);
	tmp = malloc(pend - pstart);
	if (!crcs || !tmp) {
		pthread_mutex_unlock(&c->mu);
		rc = cairn_errf(CAIRN_E_NOMEM, "cache get %s", key);
		goto out;
	}
	memcpy(crcs, p->crcs + b0, (b1 - b0 + 1) * sizeof *crcs);
	memcpy(name, p->name, sizeof name);
	gen = p->gen;
	data_off = p->data_off;
	lru_unlink(c, p);
	lru_front(c, p);
	/* Open under the lock: the fd is then the file this entry describes,
	 * even if a later put replaces the name (invariant 4). */
	fd = openat(c->dfd, name, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		rc = cairn_errf(errno == ENOENT ? CAIRN_E_NOTFOUND : CAIRN_E_IO,
				"cache %s: open %s: %s", c->dir, name,
				strerror(errno));
		table_del(c, p, 0);
		pthread_mutex_unlock(&c->mu);
		goto out;
	}
	pthread_mutex_unlock(&c->mu);

	rc = uring_read(c->u, fd, tmp, pend - pstart, data_off + pstart, &got);
	if (rc) {
		rc = cairn_err_wrap(rc, "cache %s: read %s", c->dir, name);
		goto out;
	}
	for (uint64_t b = b0; b <= b1; b++) {
		uint64_t s = (b - b0) * CACHE_BLOCK;
		uint64_t bl = pend - pstart - s < CACHE_BLOCK ? pend - pstart - s
							      : CACHE_BLOCK;

		n = got > s ? (got - s < bl ? got - s : bl) : 0;
		if (n == bl && cairn_crc32c(0, tmp + s, bl) == crcs[b - b0])
			continue;
		CAIRN_ERROR(MOD,
			    "segment %s: cached copy %s/%s is corrupt (block %" PRIu64
			    " at segment offset %" PRIu64 "%s); dropping it",
			    key, c->dir, name, b, off - rel + b * CACHE_BLOCK,
			    n == bl ? "" : ", short file");
		rc = cairn_errf(CAIRN_E_CORRUPT,
				"segment %s: cached copy %s is corrupt (block %" PRIu64 ")",
				key, name, b);
		pthread_mutex_lock(&c->mu);
		c->st.corrupt++;
		p = table_find_name(c, key, name);
		if (p && p->gen == gen)
			table_del(c, p, 1);
		pthread_mutex_unlock(&c->mu);
		goto out;
	}
	memcpy(buf, tmp + (rel - pstart), len);
	pthread_mutex_lock(&c->mu);
	c->st.hits++;
	pthread_mutex_unlock(&c->mu);
out:
	if (fd >= 0)
		close(fd);
	free(crcs);
	free(tmp);
	return rc;
}

int seg_cache_drop(seg_cache *c, const char *key)
{
	piece *p, *n;

	pthread_mutex_lock(&c->mu);
	p = c->buckets[key_hash(key) & (c->nbuckets - 1)];
	for (; p; p = n) {
		n = p->hnext;
		if (strcmp(p->key, key) == 0)
			table_del(c, p, 1);
	}
	pthread_mutex_unlock(&c->mu);
	return CAIRN_OK;
}

void seg_cache_stats_get(seg_cache *c, seg_cache_stats *out)
{
	pthread_mutex_lock(&c->mu);
	*out = c->st;
	pthread_mutex_unlock(&c->mu);
}
