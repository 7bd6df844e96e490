/*
 * meta_fsck.c - full consistency check of a metadata environment, with
 * safe repairs behind META_FSCK_REPAIR.
 *
 * One read transaction sees a consistent snapshot; fsck walks every table
 * and cross-checks:
 *   - entries vs inodes: every entry's parent is a directory, its child
 *     exists with the type the entry says, and the by-cookie index matches
 *     the by-name index both ways; cookies are below the directory's next;
 *   - nlink: files = entries naming them; directories = 2 + subdirectories,
 *     named exactly once (root and snapshot roots: never), parent field
 *     right; unreachable inodes and nlink-0 inodes outside the orphan table;
 *   - extents: no overlap, length > 0, chunk exists and covers the range,
 *     nothing past EOF, extent maps exist and their refs = inodes naming them;
 *   - reference counts: chunk refs = extent records naming the chunk;
 *     segment live bytes/chunk counts = sums over live chunks; the content
 *     hash and segment->chunk indexes; statfs counters; id allocators;
 *   - snapshots: roots exist, are read-only directories;
 *   - log continuity: WAL LSNs dense up to last_lsn, each record valid.
 *
 * Repairs (each one a physical, logged change, committed META_SYNCED):
 * stale index entries are deleted or rewritten, counts are set to what was
 * counted, entries naming missing inodes are removed, unreachable inodes are
 * linked into /lost+found, nlink-0 inodes are queued as orphans (freed at
 * the next open), extents past EOF are cut.  Overlapping extents are only
 * reported: choosing which data wins is not safe.  Repair runs up to three
 * rounds, re-checking after each, since one fix can change another count.
 */
#include <stdarg.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "meta_int.h"

/* ---- a u64 -> record index map ---- */
typedef struct fk_map {
	uint64_t *keys;
	uint32_t *vals;
	size_t cap, n;
} fk_map;

static int fk_put(fk_map *m, uint64_t key, uint32_t val)
{
	if ((m->n + 1) * 2 > m->cap) {
		size_t nc = m->cap ? m->cap * 2 : 1024;
		uint64_t *nk = calloc(nc, sizeof *nk);
		uint32_t *nv = calloc(nc, sizeof *nv);
		if (!nk || !nv) {
			free(nk);
			free(nv);
			return cairn_errf(CAIRN_E_NOMEM, "fsck map");
		}
		for (size_t i = 0; i < m->cap; i++)
			if (m->keys[i]) {
				size_t j = (size_t)(m->keys[i] * 0x9e3779b97f4a7c15ULL) & (nc - 1);
				while (nk[j])
					j = (j + 1) & (nc - 1);
				nk[j] = m->keys[i];
				nv[j] = m->vals[i];
			}
		free(m->keys);
		free(m->vals);
		m->keys = nk;
		m->vals = nv;
		m->cap = nc;
	}
	size_t j = (size_t)(key * 0x9e3779b97f4a7c15ULL) & (m->cap - 1);
	while (m->keys[j] && m->keys[j] != key)
		j = (j + 1) & (m->cap - 1);
	if (!m->keys[j])
		m->n++;
	m->keys[j] = key;
	m->vals[j] = val;
	return 0;
}

static int fk_get(const fk_map *m, uint64_t key, uint32_t *val)
{
	if (!m->cap || !key)
		return 0;
	size_t j = (size_t)(key * 0x9e3779b97f4a7c15ULL) & (m->cap - 1);
	while (m->keys[j]) {
		if (m->keys[j] == key) {
			*val = m->vals[j];
			return 1;
		}
		j = (j + 1) & (m->cap - 1);
	}
	return 0;
}

static void fk_free(fk_map *m)
{
	free(m->keys);
	free(m->vals);
}

typedef struct fk_ino {
	uint64_t ino, size, emap, parent, next_cookie, entry_parent;
	uint32_t mode, nlink, flags, named, subdirs;
	int orphan, snaproot;
} fk_ino;

typedef struct fk_emap { uint64_t id, refs, counted, max_end; } fk_emap;
typedef struct fk_chunk { meta_chunk c; uint64_t counted; int has_sc; } fk_chunk;
typedef struct fk_seg { meta_seg s; uint64_t live, n; } fk_seg;

/* repair actions */
enum {
	FA_DEL = 1,       /* delete key in table */
	FA_PUT,           /* put key/value */
	FA_NLINK,         /* inode a: nlink = b */
	FA_PARENT,        /* inode a: parent = b */
	FA_COOKIE,        /* inode a: next_cookie = b */
	FA_LOSTFOUND,     /* link inode a into /lost+found */
	FA_ORPHAN,        /* queue inode a as an orphan */
	FA_EMAPREFS,      /* emap a: refs = b */
	FA_CHUNKREFS,     /* chunk a: refs = b (0: delete) */
	FA_SEGLIVE,       /* seg a: live = b, nchunks = c */
	FA_COUNTER,       /* counter a = b */
	FA_CUT,           /* inode a: cut extents past size */
};

typedef struct fk_act {
	int kind, tbl;
	uint64_t a, b, c;
	uint8_t *k, *v;
	size_t kl, vl;
} fk_act;

typedef struct fk {
	cairn_meta *m;
	meta_txn *t;
	FILE *out;
	meta_fsck_result *res;
	int repair;
	fk_ino *inos; size_t ni, capi; fk_map imap;
	fk_emap *emaps; size_t ne, cape; fk_map emapm;
	fk_chunk *chunks; size_t nc, capc; fk_map cmap;
	fk_seg *segs; size_t ns, caps; fk_map smap;
	fk_act *acts; size_t na, capa;
	uint64_t max_ino, max_chunk, max_seg, max_emap;
	int err;
} fk;

static void fk_problem(fk *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fk_problem(fk *f, const char *fmt, ...)
{
	f->res->problems++;
	if (!f->out)
		return;
	va_list ap;
	va_start(ap, fmt);
	fputs("fsck: ", f->out);
	vfprintf(f->out, fmt, ap);
	fputc('\n', f->out);
	va_end(ap);
}

#define FK_GROW(arr, n, cap)                                                       \
	do {                                                                       \
		if ((n) == (cap)) {                                                \
			size_t nc_ = (cap) ? (cap) * 2 : 256;                      \
			void *np_ = realloc((arr), nc_ * sizeof *(arr));           \
			if (!np_)                                                  \
				return cairn_errf(CAIRN_E_NOMEM, "fsck tables");   \
			(arr) = np_;                                               \
			(cap) = nc_;                                               \
		}                                                                  \
	} while (0)

static int fk_act_add(fk *f, int kind, int tbl, uint64_t a, uint64_t b, uint64_t c,
		      const void *k, size_t kl, const void *v, size_t vl)
{
	if (!f->repair)
		return 0;
	FK_GROW(f->acts, f->na, f->capa);
	fk_act *x = &f->acts[f->na];
	memset(x, 0, sizeof *x);
	x->kind = kind;
	x->tbl = tbl;
	x->a = a;
	x->b = b;
	x->c = c;
	if (kl) {
		x->k = malloc(kl + vl + 1);
		if (!x->k)
			return cairn_errf(CAIRN_E_NOMEM, "fsck repair");
		memcpy(x->k, k, kl);
		if (vl)
			memcpy(x->k + kl, v, vl);
		x->v = x->k + kl;
		x->kl = kl;
		x->vl = vl;
	}
	f->na++;
	return 0;
}

static fk_ino *fk_inode(fk *f, uint64_t ino)
{
	uint32_t i;
	return fk_get(&f->imap, ino, &i) ? &f->inos[i] : NULL;
}

static int fk_scan_inodes(fk *f)
{
	MDB_cursor *c;
	MDB_val k, v;
	mi_inode in;
	int rc = mt_cursor(f->t, MT_INODE, &c);
	if (rc)
		return rc;
	int err = mdb_cursor_get(c, &k, &v, MDB_FIRST);
	for (; !err; err = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		if (k.mv_size != 8) {
			fk_problem(f, "inode table: key of %zu bytes", k.mv_size);
			continue;
		}
		uint64_t ino = rbe64(k.mv_data);
		if (mi_inode_dec(ino, &v, &in)) {
			fk_problem(f, "%s", cairn_errmsg());
			continue;
		}
		FK_GROW(f->inos, f->ni, f->capi);
		fk_ino *x = &f->inos[f->ni];
		memset(x, 0, sizeof *x);
		x->ino = ino;
		x->mode = in.a.mode;
		x->nlink = in.a.nlink;
		x->flags = in.a.flags;
		x->size = in.a.size;
		x->emap = in.emap;
		x->parent = in.parent;
		x->next_cookie = in.next_cookie;
		if ((rc = fk_put(&f->imap, ino, (uint32_t)f->ni)))
			break;
		f->ni++;
		if (ino > f->max_ino)
			f->max_ino = ino;
	}
	mdb_cursor_close(c);
	f->res->inodes = f->ni;
	return rc;
}

static int fk_scan_dirents(fk *f)
{
	MDB_cursor *c;
	MDB_val k, v;
	int rc = mt_cursor(f->t, MT_DIRENT, &c);
	if (rc)
		return rc;
	int err = mdb_cursor_get(c, &k, &v, MDB_FIRST);
	for (; !err && !rc; err = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		uint64_t ino, cookie;
		uint32_t type;
		f->res->dirents++;
		if (k.mv_size <= 8 || k.mv_size > 8 + META_NAME_MAX) {
			fk_problem(f, "entry key of %zu bytes", k.mv_size);
			continue;
		}
		uint64_t parent = rbe64(k.mv_data);
		const char *name = (const char *)k.mv_data + 8;
		int nl = (int)(k.mv_size - 8);
		if (md_dec(&v, &ino, &type, &cookie)) {
			fk_problem(f, "entry '%.*s' in %llu: %s", nl, name,
				   (unsigned long long)parent, cairn_errmsg());
			continue;
		}
		fk_ino *p = fk_inode(f, parent), *ch = fk_inode(f, ino);
		if (!p || !S_ISDIR(p->mode) || !ch) {
			fk_problem(f, "entry '%.*s' in %llu: %s", nl, name, (unsigned long long)parent,
				   !p ? "parent missing" : !S_ISDIR(p->mode) ? "parent not a directory"
				   : "names a missing inode");
			uint8_t ck[16];
			be64(ck, parent);
			be64(ck + 8, cookie);
			if ((rc = fk_act_add(f, FA_DEL, MT_DIRENT, 0, 0, 0, k.mv_data, k.mv_size, NULL, 0)) ||
			    (rc = fk_act_add(f, FA_DEL, MT_DCOOKIE, 0, 0, 0, ck, 16, NULL, 0)))
				break;
			continue;
		}
		if ((type & S_IFMT) != (ch->mode & S_IFMT))
			fk_problem(f, "entry '%.*s' in %llu: type 0%o, inode %llu is 0%o", nl, name,
				   (unsigned long long)parent, type, (unsigned long long)ino,
				   ch->mode & S_IFMT);
		if (cookie >= p->next_cookie) {
			fk_problem(f, "entry '%.*s' in %llu: cookie %llu not below next %llu", nl, name,
				   (unsigned long long)parent, (unsigned long long)cookie,
				   (unsigned long long)p->next_cookie);
			if ((rc = fk_act_add(f, FA_COOKIE, 0, parent, cookie + 1, 0, NULL, 0, NULL, 0)))
				break;
		}
		/* the by-cookie index must say the same */
		uint8_t ck[16];
		MDB_val cv;
		be64(ck, parent);
		be64(ck + 8, cookie);
		int crc = mt_get(f->t, MT_DCOOKIE, ck, 16, &cv);
		if (crc || cv.mv_size != MDC_FIXED + (size_t)nl ||
		    memcmp((uint8_t *)cv.mv_data + MDC_FIXED, name, (size_t)nl) ||
		    rle64((uint8_t *)cv.mv_data + 2) != ino) {
			fk_problem(f, "entry '%.*s' in %llu: cookie index %s", nl, name,
				   (unsigned long long)parent, crc ? "missing" : "differs");
			uint8_t val[MDC_FIXED + META_NAME_MAX];
			val[0] = META_REC_V1;
			val[1] = (uint8_t)((type & S_IFMT) >> 12);
			le64(val + 2, ino);
			memcpy(val + MDC_FIXED, name, (size_t)nl);
			if ((rc = fk_act_add(f, FA_PUT, MT_DCOOKIE, 0, 0, 0, ck, 16, val,
					     MDC_FIXED + (size_t)nl)))
				break;
		}
		ch->named++;
		if (S_ISDIR(ch->mode)) {
			p->subdirs++;
			if (ch->named > 1)
				fk_problem(f, "directory %llu has more than one entry",
					   (unsigned long long)ino);
			ch->entry_parent = parent;
		}
	}
	mdb_cursor_close(c);
	return rc;
}

static int fk_scan_cookies(fk *f)
{
	MDB_cursor *c;
	MDB_val k, v;
	int rc = mt_cursor(f->t, MT_DCOOKIE, &c);
	if (rc)
		return rc;
	int err = mdb_cursor_get(c, &k, &v, MDB_FIRST);
	for (; !err && !rc; err = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		if (k.mv_size != 16 || v.mv_size <= MDC_FIXED || v.mv_size > MDC_FIXED + META_NAME_MAX) {
			fk_problem(f, "cookie index: malformed record");
			rc = fk_act_add(f, FA_DEL, MT_DCOOKIE, 0, 0, 0, k.mv_data, k.mv_size, NULL, 0);
			continue;
		}
		uint64_t parent = rbe64(k.mv_data);
		uint8_t dk[8 + META_NAME_MAX];
		size_t nl = v.mv_size - MDC_FIXED;
		size_t dkl = md_key(dk, parent, (const char *)v.mv_data + MDC_FIXED, nl);
		MDB_val dv;
		uint64_t ino, cookie;
		uint32_t type;
		if (mt_get(f->t, MT_DIRENT, dk, dkl, &dv) || md_dec(&dv, &ino, &type, &cookie) ||
		    cookie != rbe64((uint8_t *)k.mv_data + 8)) {
			fk_problem(f, "cookie %llu in %llu: no matching entry '%.*s'",
				   (unsigned long long)rbe64((uint8_t *)k.mv_data + 8),
				   (unsigned long long)parent, (int)nl, (char *)v.mv_data + MDC_FIXED);
			rc = fk_act_add(f, FA_DEL, MT_DCOOKIE, 0, 0, 0, k.mv_data, 16, NULL, 0);
		}
	}
	mdb_cursor_close(c);
	return rc;
}

static int fk_scan_small(fk *f)
{
	MDB_cursor *c;
	MDB_val k, v;
	int rc, err;
	/* orphans */
	if ((rc = mt_cursor(f->t, MT_ORPHAN, &c)))
		return rc;
	for (err = mdb_cursor_get(c, &k, &v, MDB_FIRST); !err && !rc;
	     err = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		fk_ino *x = k.mv_size == 8 ? fk_inode(f, rbe64(k.mv_data)) : NULL;
		if (!x || x->nlink) {
			fk_problem(f, "orphan record for %s inode", x ? "a linked" : "a missing");
			rc = fk_act_add(f, FA_DEL, MT_ORPHAN, 0, 0, 0, k.mv_data, k.mv_size, NULL, 0);
		} else {
			x->orphan = 1;
		}
	}
	mdb_cursor_close(c);
	if (rc || (rc = mt_cursor(f->t, MT_SNAP, &c)))
		return rc;
	for (err = mdb_cursor_get(c, &k, &v, MDB_FIRST); !err;
	     err = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		if (mr_version(&v, "snapshot", 0) || v.mv_size != 33) {
			fk_problem(f, "snapshot '%.*s': bad record", (int)k.mv_size, (char *)k.mv_data);
			continue;
		}
		fk_ino *x = fk_inode(f, rle64((uint8_t *)v.mv_data + 1));
		if (!x || !S_ISDIR(x->mode) || !(x->flags & META_INO_F_RDONLY))
			fk_problem(f, "snapshot '%.*s': root missing or not a read-only directory",
				   (int)k.mv_size, (char *)k.mv_data);
		else
			x->snaproot = 1;
	}
	mdb_cursor_close(c);
	/* emaps */
	if ((rc = mt_cursor(f->t, MT_EMAP, &c)))
		return rc;
	for (err = mdb_cursor_get(c, &k, &v, MDB_FIRST); !err && !rc;
	     err = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		if (k.mv_size != 8 || mr_version(&v, "extent map", 0) || v.mv_size != MM_VLEN) {
			fk_problem(f, "extent map table: malformed record");
			continue;
		}
		FK_GROW(f->emaps, f->ne, f->cape);
		fk_emap *e = &f->emaps[f->ne];
		e->id = rbe64(k.mv_data);
		e->refs = rle64((uint8_t *)v.mv_data + 1);
		e->counted = e->max_end = 0;
		if (e->id > f->max_emap)
			f->max_emap = e->id;
		rc = fk_put(&f->emapm, e->id, (uint32_t)f->ne++);
	}
	mdb_cursor_close(c);
	if (rc || (rc = mt_cursor(f->t, MT_SEG, &c)))
		return rc;
	for (err = mdb_cursor_get(c, &k, &v, MDB_FIRST); !err && !rc;
	     err = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		FK_GROW(f->segs, f->ns, f->caps);
		fk_seg *s = &f->segs[f->ns];
		if (k.mv_size != 8 || ms_dec(rbe64(k.mv_data), &v, &s->s)) {
			fk_problem(f, "segment table: %s", cairn_errmsg());
			continue;
		}
		s->live = s->n = 0;
		if (s->s.id > f->max_seg)
			f->max_seg = s->s.id;
		rc = fk_put(&f->smap, s->s.id, (uint32_t)f->ns++);
	}
	mdb_cursor_close(c);
	f->res->segments = f->ns;
	if (rc || (rc = mt_cursor(f->t, MT_CHUNK, &c)))
		return rc;
	for (err = mdb_cursor_get(c, &k, &v, MDB_FIRST); !err && !rc;
	     err = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		FK_GROW(f->chunks, f->nc, f->capc);
		fk_chunk *ch = &f->chunks[f->nc];
		if (k.mv_size != 8 || mch_dec(rbe64(k.mv_data), &v, &ch->c)) {
			fk_problem(f, "chunk table: %s", cairn_errmsg());
			continue;
		}
		ch->counted = 0;
		ch->has_sc = 0;
		if (ch->c.id > f->max_chunk)
			f->max_chunk = ch->c.id;
		rc = fk_put(&f->cmap, ch->c.id, (uint32_t)f->nc++);
	}
	mdb_cursor_close(c);
	f->res->chunks = f->nc;
	return rc;
}

static int fk_check_inodes(fk *f)
{
	int rc = 0;
	fk_ino *root = fk_inode(f, META_ROOT_INO);
	if (!root || !S_ISDIR(root->mode))
		fk_problem(f, "root inode missing or not a directory");
	for (size_t i = 0; i < f->ni && !rc; i++) {
		fk_ino *x = &f->inos[i];
		if (x->emap) {
			uint32_t ei;
			if (!fk_get(&f->emapm, x->emap, &ei))
				fk_problem(f, "inode %llu names missing extent map %llu",
					   (unsigned long long)x->ino, (unsigned long long)x->emap);
			else
				f->emaps[ei].counted++;
		}
		if (S_ISDIR(x->mode)) {
			int top = x->ino == META_ROOT_INO || x->snaproot;
			if (x->nlink == 0 && x->orphan)
				continue;
			if (x->nlink != 2 + x->subdirs) {
				fk_problem(f, "directory %llu: nlink %u, want %u", (unsigned long long)x->ino,
					   x->nlink, 2 + x->subdirs);
				rc = fk_act_add(f, FA_NLINK, 0, x->ino, 2 + x->subdirs, 0, NULL, 0, NULL, 0);
			}
			if (!top && x->named == 0) {
				fk_problem(f, "directory %llu is unreachable", (unsigned long long)x->ino);
				rc = rc ? rc : fk_act_add(f, FA_LOSTFOUND, 0, x->ino, 0, 0, NULL, 0, NULL, 0);
			} else if (!top && x->parent != x->entry_parent) {
				fk_problem(f, "directory %llu: parent %llu, entry in %llu",
					   (unsigned long long)x->ino, (unsigned long long)x->parent,
					   (unsigned long long)x->entry_parent);
				rc = rc ? rc : fk_act_add(f, FA_PARENT, 0, x->ino, x->entry_parent, 0, NULL, 0,
							  NULL, 0);
			}
			continue;
		}
		if (x->named == 0 && x->nlink == 0) {
			if (!x->orphan) {
				fk_problem(f, "inode %llu: nlink 0 and not queued as orphan",
					   (unsigned long long)x->ino);
				rc = fk_act_add(f, FA_ORPHAN, 0, x->ino, 0, 0, NULL, 0, NULL, 0);
			}
			continue;
		}
		if (x->named == 0) {
			fk_problem(f, "inode %llu is unreachable (nlink %u)", (unsigned long long)x->ino,
				   x->nlink);
			rc = fk_act_add(f, FA_LOSTFOUND, 0, x->ino, 0, 0, NULL, 0, NULL, 0);
		} else if (x->nlink != x->named) {
			fk_problem(f, "inode %llu: nlink %u but %u entries", (unsigned long long)x->ino,
				   x->nlink, x->named);
			rc = fk_act_add(f, FA_NLINK, 0, x->ino, x->named, 0, NULL, 0, NULL, 0);
		}
	}
	return rc;
}

static int fk_scan_extents(fk *f)
{
	MDB_cursor *c;
	MDB_val k, v;
	meta_extent e;
	uint64_t prev_emap = 0, prev_end = 0;
	int rc = mt_cursor(f->t, MT_EXTENT, &c);
	if (rc)
		return rc;
	int err = mdb_cursor_get(c, &k, &v, MDB_FIRST);
	for (; !err && !rc; err = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		f->res->extents++;
		if (k.mv_size != 16 || me_dec(&v, &e)) {
			fk_problem(f, "extent table: malformed record");
			continue;
		}
		uint64_t emap = rbe64(k.mv_data);
		e.off = rbe64((uint8_t *)k.mv_data + 8);
		uint32_t ei, ci;
		int have_emap = fk_get(&f->emapm, emap, &ei);
		int have_chunk = fk_get(&f->cmap, e.chunk, &ci);
		if (!have_emap || !have_chunk || e.len == 0) {
			fk_problem(f, "extent %llu@%llu: %s", (unsigned long long)emap,
				   (unsigned long long)e.off,
				   !have_emap ? "extent map missing" : !have_chunk ? "chunk missing"
				   : "length 0");
			rc = fk_act_add(f, FA_DEL, MT_EXTENT, 0, 0, 0, k.mv_data, 16, NULL, 0);
			continue;
		}
		f->chunks[ci].counted++;
		f->res->referenced_bytes += e.len;
		if (emap == prev_emap && e.off < prev_end)
			fk_problem(f, "extent map %llu: extent at %llu overlaps the previous one (ends %llu)",
				   (unsigned long long)emap, (unsigned long long)e.off,
				   (unsigned long long)prev_end);
		if (e.chunk_off > f->chunks[ci].c.raw_len ||
		    e.len > f->chunks[ci].c.raw_len - e.chunk_off)
			fk_problem(f, "extent %llu@%llu: past the end of chunk %llu",
				   (unsigned long long)emap, (unsigned long long)e.off,
				   (unsigned long long)e.chunk);
		prev_emap = emap;
		prev_end = e.off + e.len;
		if (prev_end > f->emaps[ei].max_end)
			f->emaps[ei].max_end = prev_end;
	}
	mdb_cursor_close(c);
	if (rc)
		return rc;
	for (size_t i = 0; i < f->ne && !rc; i++) {
		fk_emap *em = &f->emaps[i];
		if (em->refs != em->counted) {
			fk_problem(f, "extent map %llu: refs %llu, %llu inodes name it",
				   (unsigned long long)em->id, (unsigned long long)em->refs,
				   (unsigned long long)em->counted);
			rc = fk_act_add(f, FA_EMAPREFS, 0, em->id, em->counted, 0, NULL, 0, NULL, 0);
		}
	}
	/* extents past EOF */
	for (size_t i = 0; i < f->ni && !rc; i++) {
		fk_ino *x = &f->inos[i];
		uint32_t ei;
		if (x->emap && fk_get(&f->emapm, x->emap, &ei) && f->emaps[ei].max_end > x->size) {
			fk_problem(f, "inode %llu: extents reach %llu, past EOF %llu",
				   (unsigned long long)x->ino, (unsigned long long)f->emaps[ei].max_end,
				   (unsigned long long)x->size);
			rc = fk_act_add(f, FA_CUT, 0, x->ino, 0, 0, NULL, 0, NULL, 0);
		}
	}
	return rc;
}

static int fk_check_chunks(fk *f)
{
	MDB_cursor *c;
	MDB_val k, v;
	int rc = 0, err;
	for (size_t i = 0; i < f->nc && !rc; i++) {
		fk_chunk *ch = &f->chunks[i];
		uint32_t si;
		f->res->live_bytes += ch->c.stored_len;
		if (ch->c.refs != ch->counted) {
			fk_problem(f, "chunk %llu: refs %llu, %llu extents name it",
				   (unsigned long long)ch->c.id, (unsigned long long)ch->c.refs,
				   (unsigned long long)ch->counted);
			rc = fk_act_add(f, FA_CHUNKREFS, 0, ch->c.id, ch->counted, 0, NULL, 0, NULL, 0);
		}
		if (!fk_get(&f->smap, ch->c.seg, &si)) {
			fk_problem(f, "chunk %llu: segment %llu missing", (unsigned long long)ch->c.id,
				   (unsigned long long)ch->c.seg);
			continue;
		}
		fk_seg *s = &f->segs[si];
		if (ch->c.refs || ch->counted) {
			s->live += ch->c.stored_len;
			s->n++;
		}
		if (ch->c.seg_off + ch->c.stored_len > s->s.size)
			fk_problem(f, "chunk %llu: past the end of segment %llu",
				   (unsigned long long)ch->c.id, (unsigned long long)s->s.id);
	}
	if (rc || (rc = mt_cursor(f->t, MT_SEGCHUNK, &c)))
		return rc;
	for (err = mdb_cursor_get(c, &k, &v, MDB_FIRST); !err && !rc;
	     err = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		uint32_t ci;
		if (k.mv_size == 16 && fk_get(&f->cmap, rbe64((uint8_t *)k.mv_data + 8), &ci) &&
		    f->chunks[ci].c.seg == rbe64(k.mv_data)) {
			f->chunks[ci].has_sc = 1;
			continue;
		}
		fk_problem(f, "segment index: stale entry");
		rc = fk_act_add(f, FA_DEL, MT_SEGCHUNK, 0, 0, 0, k.mv_data, k.mv_size, NULL, 0);
	}
	mdb_cursor_close(c);
	for (size_t i = 0; i < f->nc && !rc; i++) {
		if (f->chunks[i].has_sc)
			continue;
		uint8_t sk[16];
		be64(sk, f->chunks[i].c.seg);
		be64(sk + 8, f->chunks[i].c.id);
		fk_problem(f, "chunk %llu: missing from its segment's index",
			   (unsigned long long)f->chunks[i].c.id);
		rc = fk_act_add(f, FA_PUT, MT_SEGCHUNK, 0, 0, 0, sk, 16, "", 0);
	}
	if (rc || (rc = mt_cursor(f->t, MT_CHASH, &c)))
		return rc;
	for (err = mdb_cursor_get(c, &k, &v, MDB_FIRST); !err && !rc;
	     err = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		uint32_t ci;
		if (k.mv_size == META_HASH_LEN && v.mv_size == 8 &&
		    fk_get(&f->cmap, rle64(v.mv_data), &ci) &&
		    !memcmp(f->chunks[ci].c.hash, k.mv_data, META_HASH_LEN))
			continue;
		fk_problem(f, "content hash index: stale entry");
		rc = fk_act_add(f, FA_DEL, MT_CHASH, 0, 0, 0, k.mv_data, k.mv_size, NULL, 0);
	}
	mdb_cursor_close(c);
	for (size_t i = 0; i < f->ns && !rc; i++) {
		fk_seg *s = &f->segs[i];
		if (s->live != s->s.live_bytes || s->n != s->s.nchunks) {
			fk_problem(f, "segment %llu: live %llu bytes/%llu chunks, counted %llu/%llu",
				   (unsigned long long)s->s.id, (unsigned long long)s->s.live_bytes,
				   (unsigned long long)s->s.nchunks, (unsigned long long)s->live,
				   (unsigned long long)s->n);
			rc = fk_act_add(f, FA_SEGLIVE, 0, s->s.id, s->live, s->n, NULL, 0, NULL, 0);
		}
		if (s->s.state < META_SEG_STAGING || s->s.state > META_SEG_DELETING)
			fk_problem(f, "segment %llu: state %u unknown", (unsigned long long)s->s.id,
				   s->s.state);
	}
	return rc;
}

static int fk_check_counters(fk *f)
{
	uint64_t want[MC_COUNT] = { 0 }, have;
	int rc = 0;
	for (size_t i = 0; i < f->ni; i++)
		if (S_ISREG(f->inos[i].mode))
			want[MC_FILE_BYTES] += f->inos[i].size;
	want[MC_INODES] = f->ni;
	for (size_t i = 0; i < f->ns; i++)
		want[MC_STORED_BYTES] += f->segs[i].live;
	want[MC_SEGMENTS] = f->ns;
	want[MC_CHUNKS] = f->nc;
	static const int exact[] = { MC_INODES, MC_FILE_BYTES, MC_STORED_BYTES, MC_SEGMENTS, MC_CHUNKS };
	static const char *const names[MC_COUNT] = { "format", "next inode", "next chunk",
		"next segment", "next extent map", "inodes", "file bytes", "stored bytes",
		"segments", "chunks" };
	for (size_t i = 0; i < sizeof exact / sizeof exact[0] && !rc; i++) {
		int id = exact[i];
		if ((rc = mt_counter_get(f->t, id, &have)))
			return rc;
		if (have != want[id]) {
			fk_problem(f, "counter %s: %llu, counted %llu", names[id], (unsigned long long)have,
				   (unsigned long long)want[id]);
			rc = fk_act_add(f, FA_COUNTER, 0, (uint64_t)id, want[id], 0, NULL, 0, NULL, 0);
		}
	}
	const struct { int id; uint64_t max; } alloc[] = {
		{ MC_NEXT_INO, f->max_ino }, { MC_NEXT_CHUNK, f->max_chunk },
		{ MC_NEXT_SEG, f->max_seg }, { MC_NEXT_EMAP, f->max_emap } };
	for (size_t i = 0; i < 4 && !rc; i++) {
		if ((rc = mt_counter_get(f->t, alloc[i].id, &have)))
			return rc;
		if (alloc[i].max && have <= alloc[i].max) {
			fk_problem(f, "counter %s: %llu, but %llu is in use", names[alloc[i].id],
				   (unsigned long long)have, (unsigned long long)alloc[i].max);
			rc = fk_act_add(f, FA_COUNTER, 0, (uint64_t)alloc[i].id, alloc[i].max + 1, 0,
					NULL, 0, NULL, 0);
		}
	}
	return rc;
}

static int fk_check_wal(fk *f)
{
	MDB_cursor *c;
	MDB_val k, v;
	uint64_t expect = 0, first = 0, last = 0;
	int rc = mt_cursor(f->t, MT_WAL, &c);
	if (rc)
		return rc;
	int err = mdb_cursor_get(c, &k, &v, MDB_FIRST);
	for (; !err; err = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		uint64_t lsn = k.mv_size == 8 ? rbe64(k.mv_data) : 0, hl;
		if (!first)
			first = lsn;
		if (expect && lsn != expect)
			fk_problem(f, "WAL: gap before LSN %llu (expected %llu)", (unsigned long long)lsn,
				   (unsigned long long)expect);
		if (meta_wal_decode(v.mv_data, v.mv_size, &hl, NULL, NULL))
			fk_problem(f, "WAL record %llu: %s", (unsigned long long)lsn, cairn_errmsg());
		else if (hl != lsn)
			fk_problem(f, "WAL record under key %llu says LSN %llu", (unsigned long long)lsn,
				   (unsigned long long)hl);
		expect = lsn + 1;
		last = lsn;
	}
	mdb_cursor_close(c);
	MDB_val lk = { 8, "last_lsn" }, lv;
	uint64_t want = 0;
	if (!mdb_get(f->t->txn, f->m->dbi[MT_LOCAL], &lk, &lv) && lv.mv_size == 8)
		want = rle64(lv.mv_data);
	if (last && last != want)
		fk_problem(f, "WAL: last record %llu, last LSN recorded %llu", (unsigned long long)last,
			   (unsigned long long)want);
	return 0;
}

/* ---- repairs ---- */

static int fk_lostfound(meta_txn *t, mi_inode *in)
{
	meta_attr lf;
	int rc = meta_lookup(t, META_ROOT_INO, "lost+found", &lf);
	if (rc == CAIRN_E_NOTFOUND)
		rc = meta_mkdir(t, META_ROOT_INO, "lost+found", 0700, 0, 0, &lf);
	if (rc)
		return rc;
	char name[32];
	snprintf(name, sizeof name, "#%llu", (unsigned long long)in->a.ino);
	mi_inode dir, odir, oin = *in;
	if ((rc = mi_inode_get(t, lf.ino, &dir)))
		return rc;
	odir = dir;
	if ((rc = mn_dirent_add(t, &dir, name, strlen(name), in->a.ino, in->a.mode)))
		return rc;
	if (S_ISDIR(in->a.mode)) {
		dir.a.nlink++;
		in->parent = lf.ino;
	} else {
		in->a.nlink = 1;
	}
	if ((rc = mi_inode_put(t, &odir, &dir)))
		return rc;
	return mi_inode_put(t, &oin, in);
}

static int fk_apply(meta_txn *t, void *arg)
{
	fk *f = arg;
	int rc = 0;
	for (size_t i = 0; i < f->na && !rc; i++) {
		fk_act *a = &f->acts[i];
		mi_inode in, old;
		meta_chunk ch;
		meta_seg s;
		switch (a->kind) {
		case FA_DEL:
			rc = mt_del(t, a->tbl, a->k, a->kl);
			if (rc == CAIRN_E_NOTFOUND)
				rc = 0;
			break;
		case FA_PUT:
			rc = mt_put(t, a->tbl, a->k, a->kl, a->v, a->vl);
			break;
		case FA_NLINK: case FA_PARENT: case FA_COOKIE: case FA_LOSTFOUND: case FA_CUT:
			if ((rc = mi_inode_get(t, a->a, &in)))
				break;
			old = in;
			if (a->kind == FA_NLINK)
				in.a.nlink = (uint32_t)a->b;
			else if (a->kind == FA_PARENT)
				in.parent = a->b;
			else if (a->kind == FA_COOKIE && in.next_cookie < a->b)
				in.next_cookie = a->b;
			else if (a->kind == FA_LOSTFOUND) {
				rc = fk_lostfound(t, &in);
				break;
			} else if (a->kind == FA_CUT) {
				uint64_t size = in.a.size;
				in.a.size = UINT64_MAX;  /* make mx_truncate cut */
				if ((rc = mx_truncate(t, &in, size)))
					break;
			}
			rc = mi_inode_put(t, &old, &in);
			break;
		case FA_ORPHAN: {
			uint8_t k[8], v[9];
			be64(k, a->a);
			v[0] = META_REC_V1;
			le64(v + 1, (uint64_t)t->now);
			rc = mt_put(t, MT_ORPHAN, k, 8, v, 9);
			break;
		}
		case FA_EMAPREFS: {
			uint8_t k[8], v[MM_VLEN];
			be64(k, a->a);
			v[0] = META_REC_V1;
			le64(v + 1, a->b);
			if (a->b)
				rc = mt_put(t, MT_EMAP, k, 8, v, MM_VLEN);
			else if (!(rc = mt_put(t, MT_EMAP, k, 8, (le64(v + 1, 1), v), MM_VLEN)))
				rc = mx_emap_release(t, a->a);
			break;
		}
		case FA_CHUNKREFS:
			if ((rc = mch_get(t, a->a, &ch)))
				break;
			if (a->b) {
				ch.refs = a->b;
				rc = mch_put(t, &ch);
			} else {
				/* set to 1 and drop it: the normal path frees it exactly */
				ch.refs = 1;
				if (!(rc = mch_put(t, &ch)))
					rc = mx_chunk_ref(t, a->a, -1);
			}
			break;
		case FA_SEGLIVE:
			if ((rc = ms_get(t, a->a, &s)))
				break;
			s.live_bytes = a->b;
			s.nchunks = a->c;
			rc = ms_put(t, &s);
			break;
		case FA_COUNTER: {
			uint8_t k = (uint8_t)a->a, v[8];
			le64(v, a->b);
			rc = mt_put(t, MT_COUNTER, &k, 1, v, 8);
			break;
		}
		}
	}
	return rc;
}

static void fk_reset(fk *f)
{
	fk_free(&f->imap);
	fk_free(&f->emapm);
	fk_free(&f->cmap);
	fk_free(&f->smap);
	free(f->inos);
	free(f->emaps);
	free(f->chunks);
	free(f->segs);
	for (size_t i = 0; i < f->na; i++)
		free(f->acts[i].k);
	free(f->acts);
	cairn_meta *m = f->m;
	FILE *out = f->out;
	meta_fsck_result *res = f->res;
	int repair = f->repair;
	memset(f, 0, sizeof *f);
	f->m = m;
	f->out = out;
	f->res = res;
	f->repair = repair;
}

static int fk_round(fk *f)
{
	int rc = meta_read_begin(f->m, &f->t);
	if (rc)
		return rc;
	if (!(rc = fk_scan_inodes(f)) && !(rc = fk_scan_small(f)) && !(rc = fk_scan_dirents(f)) &&
	    !(rc = fk_scan_cookies(f)) && !(rc = fk_check_inodes(f)) &&
	    !(rc = fk_scan_extents(f)) && !(rc = fk_check_chunks(f)) &&
	    !(rc = fk_check_counters(f)))
		rc = fk_check_wal(f);
	meta_read_end(f->t);
	f->t = NULL;
	return rc;
}

int meta_fsck(cairn_meta *m, unsigned flags, FILE *report, meta_fsck_result *res)
{
	fk f;
	int rc = 0;
	memset(res, 0, sizeof *res);
	if (flags & ~META_FSCK_REPAIR)
		return cairn_errf(CAIRN_E_INVAL, "fsck flags 0x%x unknown", flags);
	memset(&f, 0, sizeof f);
	f.m = m;
	f.out = report;
	f.res = res;
	f.repair = !!(flags & META_FSCK_REPAIR);
	for (int round = 0; round < 4; round++) {
		meta_fsck_result r;
		memset(&r, 0, sizeof r);
		f.res = &r;
		rc = fk_round(&f);
		if (round == 0)
			*res = r;
		else
			res->problems = res->problems > r.problems ? res->problems : r.problems;
		if (rc || !r.problems || !f.repair || round == 3 || !f.na)
			break;
		rc = meta_write(m, META_SYNCED, META_OP_FSCK, fk_apply, &f, NULL);
		if (rc) {
			rc = cairn_err_wrap(rc, "fsck repair");
			break;
		}
		res->repaired += f.na;
		if (report)
			fprintf(report, "fsck: repaired %zu problems; checking again\n", f.na);
		fk_reset(&f);
	}
	/* after repairs, what is left is what the last round found */
	f.res = res;
	fk_reset(&f);
	return rc;
}

/* ---- tree usage (what a tree holds and would free) ---- */

typedef struct tu_chunk { uint64_t id, stored, refs, private_refs; } tu_chunk;

typedef struct tu {
	meta_txn *t;
	meta_tree_usage *out;
	fk_map links;          /* non-directory inode -> names inside the tree */
	uint64_t *nodes; size_t nn, capn;  /* those inodes, each once */
	uint64_t *dirs; size_t nd, capd;   /* directories still to list */
	fk_map emapm;          /* emap -> index in emaps */
	struct tu_emap { uint64_t id, named; int escapes; } *emaps;
	size_t ne, cape;
	fk_map chunkm;         /* chunk -> index in chunks */
	tu_chunk *chunks; size_t nc, capc;
} tu;

#define TU_GROW(arr, n, cap)                                                       \
	do {                                                                       \
		if ((n) == (cap)) {                                                \
			size_t nc_ = (cap) ? (cap) * 2 : 64;                       \
			void *np_ = realloc((arr), nc_ * sizeof *(arr));           \
			if (!np_)                                                  \
				return cairn_errf(CAIRN_E_NOMEM, "tree usage tables"); \
			(arr) = np_;                                               \
			(cap) = nc_;                                               \
		}                                                                  \
	} while (0)

static int tu_node(tu *u, uint64_t ino)
{
	uint32_t n;
	if (fk_get(&u->links, ino, &n))
		return fk_put(&u->links, ino, n + 1);
	TU_GROW(u->nodes, u->nn, u->capn);
	u->nodes[u->nn++] = ino;
	return fk_put(&u->links, ino, 1);
}

typedef struct tu_dir { tu *u; int rc; } tu_dir;

static int tu_dirent(const char *name, size_t namelen, uint64_t ino, uint32_t type,
		     uint64_t cookie, void *arg)
{
	tu_dir *d = arg;
	tu *u = d->u;
	(void)name;
	(void)namelen;
	(void)cookie;
	if (type != S_IFDIR) {
		d->rc = tu_node(u, ino);
		return d->rc;
	}
	u->out->dirs++;
	if (u->nd == u->capd) {
		size_t nc = u->capd ? u->capd * 2 : 64;
		uint64_t *nd = realloc(u->dirs, nc * sizeof *nd);
		if (!nd) {
			d->rc = cairn_errf(CAIRN_E_NOMEM, "tree usage tables");
			return 1;
		}
		u->dirs = nd;
		u->capd = nc;
	}
	u->dirs[u->nd++] = ino;
	return 0;
}

static int tu_list_dir(tu *u, uint64_t dir)
{
	tu_dir d = { u, 0 };
	int rc = meta_readdir(u->t, dir, 0, tu_dirent, &d);
	return rc ? rc : d.rc;
}

static int tu_emap_refs(meta_txn *t, uint64_t emap, uint64_t *refs)
{
	uint8_t k[8];
	MDB_val v;
	be64(k, emap);
	int rc = mt_get(t, MT_EMAP, k, 8, &v);
	if (rc || (rc = mr_version(&v, "extent map", emap)))
		return rc;
	if (v.mv_size != MM_VLEN)
		return cairn_errf(CAIRN_E_CORRUPT, "extent map %llu: bad record",
				  (unsigned long long)emap);
	*refs = rle64((uint8_t *)v.mv_data + 1);
	return 0;
}

/* Count the chunks of one extent map; priv: the map is the tree's alone. */
static int tu_extents(tu *u, uint64_t emap, int priv)
{
	MDB_cursor *cur;
	uint8_t kb[16];
	meta_extent e;
	meta_chunk c;
	int rc = mt_cursor(u->t, MT_EXTENT, &cur);
	if (rc)
		return rc;
	be64(kb, emap);
	be64(kb + 8, 0);
	MDB_val k = { 16, kb }, v;
	int err = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
	while (!err && k.mv_size == 16 && rbe64(k.mv_data) == emap) {
		uint32_t ci;
		if ((rc = me_dec(&v, &e)))
			break;
		if (!fk_get(&u->chunkm, e.chunk, &ci)) {
			if ((rc = mch_get(u->t, e.chunk, &c)))
				break;
			if (u->nc == u->capc) {
				size_t nc = u->capc ? u->capc * 2 : 256;
				tu_chunk *np = realloc(u->chunks, nc * sizeof *np);
				if (!np) {
					rc = cairn_errf(CAIRN_E_NOMEM, "tree usage tables");
					break;
				}
				u->chunks = np;
				u->capc = nc;
			}
			ci = (uint32_t)u->nc++;
			u->chunks[ci] = (tu_chunk){ c.id, c.stored_len, c.refs, 0 };
			if ((rc = fk_put(&u->chunkm, c.id, ci)))
				break;
			u->out->stored_bytes += c.stored_len;
		}
		if (priv)
			u->chunks[ci].private_refs++;
		err = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
	}
	mdb_cursor_close(cur);
	if (!rc && err && err != MDB_NOTFOUND)
		rc = meta_lmdb_err(err, "scan extents");
	return rc;
}

static int tu_run(tu *u, uint64_t root)
{
	mi_inode in;
	int rc = mi_inode_get(u->t, root, &in);
	if (rc)
		return rc;
	if (S_ISDIR(in.a.mode)) {
		u->out->dirs++;
		TU_GROW(u->dirs, u->nd, u->capd);
		u->dirs[u->nd++] = root;
	} else if ((rc = tu_node(u, root))) {
		return rc;
	}
	while (u->nd)
		if ((rc = tu_list_dir(u, u->dirs[--u->nd])))
			return rc;
	/* The root file of a file tree is named once: by the name it is
	 * reached through, which deleting the tree removes. */
	for (size_t i = 0; i < u->nn; i++) {
		uint32_t named = 0, ei;
		if ((rc = mi_inode_get(u->t, u->nodes[i], &in)))
			return rc;
		fk_get(&u->links, u->nodes[i], &named);
		if (S_ISLNK(in.a.mode)) {
			u->out->symlinks++;
			continue;
		}
		u->out->files++;
		if (!S_ISREG(in.a.mode))
			continue;
		u->out->logical_bytes += in.a.size;
		if (!in.emap)
			continue;
		if (!fk_get(&u->emapm, in.emap, &ei)) {
			TU_GROW(u->emaps, u->ne, u->cape);
			ei = (uint32_t)u->ne++;
			u->emaps[ei].id = in.emap;
			u->emaps[ei].named = 0;
			u->emaps[ei].escapes = 0;
			if ((rc = fk_put(&u->emapm, in.emap, ei)))
				return rc;
		}
		u->emaps[ei].named++;
		if (named < in.a.nlink)
			u->emaps[ei].escapes = 1;  /* a link outside the tree */
	}
	for (size_t i = 0; i < u->ne; i++) {
		uint64_t refs = 0;
		if ((rc = tu_emap_refs(u->t, u->emaps[i].id, &refs)))
			return rc;
		int priv = !u->emaps[i].escapes && refs == u->emaps[i].named;
		if ((rc = tu_extents(u, u->emaps[i].id, priv)))
			return rc;
	}
	for (size_t i = 0; i < u->nc; i++)
		if (u->chunks[i].refs && u->chunks[i].private_refs >= u->chunks[i].refs)
			u->out->unique_bytes += u->chunks[i].stored;
	return 0;
}

int meta_tree_usage_get(meta_txn *t, uint64_t ino, meta_tree_usage *out)
{
	tu u;
	memset(&u, 0, sizeof u);
	memset(out, 0, sizeof *out);
	u.t = t;
	u.out = out;
	int rc = tu_run(&u, ino);
	fk_free(&u.links);
	fk_free(&u.emapm);
	fk_free(&u.chunkm);
	free(u.nodes);
	free(u.dirs);
	free(u.emaps);
	free(u.chunks);
	return rc;
}
