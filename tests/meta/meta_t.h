/*
 * meta_t.h - helpers for the meta tests and bench: one function per
 * operation that runs it in its own meta_write (durability chosen by the
 * global mt_dur), and read helpers that open a pooled read transaction.
 * Each write helper returns the cairn_rc of the operation.
 */
#ifndef CAIRN_META_T_H
#define CAIRN_META_T_H

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cairn/meta.h"

static meta_durability mt_dur = META_RELAXED;

enum {
	TO_CREATE, TO_MKDIR, TO_MKNOD, TO_SYMLINK, TO_UNLINK, TO_RMDIR, TO_RENAME,
	TO_LINK, TO_SETATTR, TO_XSET, TO_XRM, TO_EXTW, TO_PUNCH, TO_CHUNK, TO_SEGNEW,
	TO_SEGUPD, TO_SEGDEL, TO_SNAP, TO_SNAPDEL, TO_CLONE, TO_MOVE,
};

typedef struct t_op {
	int kind;
	uint64_t a, b, c, d;
	const char *s1, *s2;
	const void *buf;
	size_t len;
	uint32_t mode;
	unsigned flags;
	meta_attr out;
	meta_sattr sa;
	meta_chunk ch;
	meta_seg seg;
	meta_snap snap;
} t_op;

static int t_op_fn(meta_txn *t, void *arg)
{
	t_op *o = arg;
	switch (o->kind) {
	case TO_CREATE: return meta_create(t, o->a, o->s1, o->mode, 0, 0, &o->out);
	case TO_MKDIR: return meta_mkdir(t, o->a, o->s1, o->mode, 0, 0, &o->out);
	case TO_MKNOD: return meta_mknod(t, o->a, o->s1, o->mode, o->b, 0, 0, &o->out);
	case TO_SYMLINK: return meta_symlink(t, o->a, o->s1, o->s2, 0, 0, &o->out);
	case TO_UNLINK: return meta_unlink(t, o->a, o->s1);
	case TO_RMDIR: return meta_rmdir(t, o->a, o->s1);
	case TO_RENAME: return meta_rename(t, o->a, o->s1, o->b, o->s2, o->flags);
	case TO_LINK: return meta_link(t, o->a, o->b, o->s1, &o->out);
	case TO_SETATTR: return meta_setattr(t, o->a, &o->sa, &o->out);
	case TO_XSET: return meta_xattr_set(t, o->a, o->s1, o->buf, o->len, o->flags);
	case TO_XRM: return meta_xattr_remove(t, o->a, o->s1);
	case TO_EXTW: return meta_extent_write(t, o->a, o->b, o->c, o->d, (uint64_t)o->len);
	case TO_PUNCH: return meta_extent_punch(t, o->a, o->b, o->c);
	case TO_CHUNK: return meta_chunk_add(t, &o->ch);
	case TO_SEGNEW: return meta_seg_create(t, &o->seg);
	case TO_SEGUPD: return meta_seg_update(t, &o->seg);
	case TO_SEGDEL: return meta_seg_delete(t, o->a);
	case TO_SNAP: return meta_snapshot_create(t, o->a, o->s1, &o->snap);
	case TO_SNAPDEL: return meta_snapshot_delete(t, o->s1);
	case TO_CLONE: return meta_clone(t, o->a, o->b, o->s1, &o->out);
	case TO_MOVE: return meta_chunk_move(t, o->a, o->b, o->c);
	}
	return CAIRN_E_INVAL;
}

/* Two new directories a and b under the root in one write; with a == b the
 * second fails after the first changed something (the batch must undo
 * it). */
typedef struct t_two { char a[24], b[24]; } t_two;
static inline int t_two_fn(meta_txn *t, void *arg)
{
	t_two *x = arg;
	int rc = meta_mkdir(t, META_ROOT_INO, x->a, 0755, 0, 0, NULL);
	if (!rc)
		rc = meta_mkdir(t, META_ROOT_INO, x->b, 0755, 0, 0, NULL);
	return rc;
}

/* A write that changes nothing (no WAL record, no LSN). */
static inline int t_noop_fn(meta_txn *t, void *arg)
{
	(void)arg;
	meta_attr a;
	return meta_getattr(t, META_ROOT_INO, &a);
}

static inline int t_run(cairn_meta *m, t_op *o)
{
	return meta_write(m, mt_dur, META_OP_OTHER, t_op_fn, o, NULL);
}

static inline int w_create(cairn_meta *m, uint64_t p, const char *name, meta_attr *out)
{
	t_op o = { .kind = TO_CREATE, .a = p, .s1 = name, .mode = 0644 };
	int rc = t_run(m, &o);
	if (out) *out = o.out;
	return rc;
}
static inline int w_mkdir(cairn_meta *m, uint64_t p, const char *name, meta_attr *out)
{
	t_op o = { .kind = TO_MKDIR, .a = p, .s1 = name, .mode = 0755 };
	int rc = t_run(m, &o);
	if (out) *out = o.out;
	return rc;
}
static inline int w_mknod(cairn_meta *m, uint64_t p, const char *name, uint32_t mode,
			  uint64_t rdev, meta_attr *out)
{
	t_op o = { .kind = TO_MKNOD, .a = p, .s1 = name, .mode = mode, .b = rdev };
	int rc = t_run(m, &o);
	if (out) *out = o.out;
	return rc;
}
static inline int w_symlink(cairn_meta *m, uint64_t p, const char *name, const char *target,
			    meta_attr *out)
{
	t_op o = { .kind = TO_SYMLINK, .a = p, .s1 = name, .s2 = target };
	int rc = t_run(m, &o);
	if (out) *out = o.out;
	return rc;
}
static inline int w_unlink(cairn_meta *m, uint64_t p, const char *name)
{
	t_op o = { .kind = TO_UNLINK, .a = p, .s1 = name };
	return t_run(m, &o);
}
static inline int w_rmdir(cairn_meta *m, uint64_t p, const char *name)
{
	t_op o = { .kind = TO_RMDIR, .a = p, .s1 = name };
	return t_run(m, &o);
}
static inline int w_rename(cairn_meta *m, uint64_t sp, const char *sn, uint64_t dp,
			   const char *dn, unsigned flags)
{
	t_op o = { .kind = TO_RENAME, .a = sp, .s1 = sn, .b = dp, .s2 = dn, .flags = flags };
	return t_run(m, &o);
}
static inline int w_link(cairn_meta *m, uint64_t ino, uint64_t np, const char *name,
			 meta_attr *out)
{
	t_op o = { .kind = TO_LINK, .a = ino, .b = np, .s1 = name };
	int rc = t_run(m, &o);
	if (out) *out = o.out;
	return rc;
}
static inline int w_setattr(cairn_meta *m, uint64_t ino, const meta_sattr *sa, meta_attr *out)
{
	t_op o = { .kind = TO_SETATTR, .a = ino, .sa = *sa };
	int rc = t_run(m, &o);
	if (out) *out = o.out;
	return rc;
}
static inline int w_truncate(cairn_meta *m, uint64_t ino, uint64_t size)
{
	meta_sattr sa = { .mask = META_SET_SIZE, .size = size };
	return w_setattr(m, ino, &sa, NULL);
}
static inline int w_xset(cairn_meta *m, uint64_t ino, const char *name, const void *v,
			 size_t len, unsigned flags)
{
	t_op o = { .kind = TO_XSET, .a = ino, .s1 = name, .buf = v, .len = len, .flags = flags };
	return t_run(m, &o);
}
static inline int w_xrm(cairn_meta *m, uint64_t ino, const char *name)
{
	t_op o = { .kind = TO_XRM, .a = ino, .s1 = name };
	return t_run(m, &o);
}
static inline int w_extw(cairn_meta *m, uint64_t ino, uint64_t off, uint64_t len,
			 uint64_t chunk, uint64_t choff)
{
	t_op o = { .kind = TO_EXTW, .a = ino, .b = off, .c = len, .d = chunk, .len = choff };
	return t_run(m, &o);
}
static inline int w_punch(cairn_meta *m, uint64_t ino, uint64_t off, uint64_t len)
{
	t_op o = { .kind = TO_PUNCH, .a = ino, .b = off, .c = len };
	return t_run(m, &o);
}
static inline int w_seg_new(cairn_meta *m, uint64_t *id)
{
	t_op o = { .kind = TO_SEGNEW };
	int rc = t_run(m, &o);
	*id = o.seg.id;
	return rc;
}
static inline int w_seg_update(cairn_meta *m, const meta_seg *s)
{
	t_op o = { .kind = TO_SEGUPD, .seg = *s };
	return t_run(m, &o);
}
static inline int w_seg_delete(cairn_meta *m, uint64_t id)
{
	t_op o = { .kind = TO_SEGDEL, .a = id };
	return t_run(m, &o);
}
/* A chunk of raw_len bytes at seg_off in seg; hash byte 0 = tag (0: none). */
static inline int w_chunk(cairn_meta *m, uint64_t seg, uint64_t seg_off, uint32_t len,
			  uint8_t tag, uint64_t *id)
{
	t_op o = { .kind = TO_CHUNK };
	o.ch.seg = seg;
	o.ch.seg_off = seg_off;
	o.ch.stored_len = len;
	o.ch.raw_len = len;
	o.ch.hash[0] = tag;
	o.ch.hash[1] = (uint8_t)(seg_off >> 8);
	o.ch.hash[2] = (uint8_t)seg;
	int rc = t_run(m, &o);
	if (id) *id = o.ch.id;
	return rc;
}
static inline int w_chunk_move(cairn_meta *m, uint64_t id, uint64_t seg, uint64_t off)
{
	t_op o = { .kind = TO_MOVE, .a = id, .b = seg, .c = off };
	return t_run(m, &o);
}
static inline int w_snap(cairn_meta *m, uint64_t src, const char *name, meta_snap *out)
{
	t_op o = { .kind = TO_SNAP, .a = src, .s1 = name };
	int rc = t_run(m, &o);
	if (out) *out = o.snap;
	return rc;
}
static inline int w_snapdel(cairn_meta *m, const char *name)
{
	t_op o = { .kind = TO_SNAPDEL, .s1 = name };
	return t_run(m, &o);
}
static inline int w_clone(cairn_meta *m, uint64_t src, uint64_t dp, const char *name,
			  meta_attr *out)
{
	t_op o = { .kind = TO_CLONE, .a = src, .b = dp, .s1 = name };
	int rc = t_run(m, &o);
	if (out) *out = o.out;
	return rc;
}

/* ---- reads ---- */

static inline int r_lookup(cairn_meta *m, uint64_t p, const char *name, meta_attr *out)
{
	meta_txn *t;
	meta_attr a;
	int rc = meta_read_begin(m, &t);
	if (rc) return rc;
	rc = meta_lookup(t, p, name, out ? out : &a);
	meta_read_end(t);
	return rc;
}
static inline int r_getattr(cairn_meta *m, uint64_t ino, meta_attr *out)
{
	meta_txn *t;
	int rc = meta_read_begin(m, &t);
	if (rc) return rc;
	rc = meta_getattr(t, ino, out);
	meta_read_end(t);
	return rc;
}
static inline int r_chunk(cairn_meta *m, uint64_t id, meta_chunk *out)
{
	meta_txn *t;
	int rc = meta_read_begin(m, &t);
	if (rc) return rc;
	rc = meta_chunk_get(t, id, out);
	meta_read_end(t);
	return rc;
}
static inline int r_seg(cairn_meta *m, uint64_t id, meta_seg *out)
{
	meta_txn *t;
	int rc = meta_read_begin(m, &t);
	if (rc) return rc;
	rc = meta_seg_get(t, id, out);
	meta_read_end(t);
	return rc;
}
static inline int r_extents(cairn_meta *m, uint64_t ino, uint64_t off, uint64_t len,
			    meta_extent *out, size_t max, size_t *n)
{
	meta_txn *t;
	int rc = meta_read_begin(m, &t);
	if (rc) return rc;
	rc = meta_extent_lookup(t, ino, off, len, out, max, n);
	meta_read_end(t);
	return rc;
}

/* readdir into "name:ino,name:ino," (in cookie order) */
typedef struct t_ls { char buf[65536]; size_t len; int n; uint64_t last; int stop_after; } t_ls;
static int t_ls_cb(const char *name, size_t nl, uint64_t ino, uint32_t type, uint64_t cookie,
		   void *arg)
{
	t_ls *l = arg;
	(void)type;
	int w = snprintf(l->buf + l->len, sizeof l->buf - l->len, "%.*s:%llu,", (int)nl, name,
			 (unsigned long long)ino);
	if (w > 0 && (size_t)w < sizeof l->buf - l->len)
		l->len += (size_t)w;
	l->n++;
	l->last = cookie;
	return l->stop_after && l->n >= l->stop_after;
}
static inline int r_readdir(cairn_meta *m, uint64_t dir, uint64_t cookie, t_ls *l)
{
	meta_txn *t;
	int rc = meta_read_begin(m, &t);
	if (rc) return rc;
	rc = meta_readdir(t, dir, cookie, t_ls_cb, l);
	meta_read_end(t);
	return rc;
}

static inline meta_opts t_opts(void)
{
	meta_opts o;
	meta_opts_init(&o);
	o.map_size = 64ULL << 20;
	o.flush_interval_ms = 200;
	return o;
}

#endif
