/*
 * meta_snap.c - snapshots (named, read-only, point-in-time trees) and
 * clones (writable copies of a tree or snapshot).
 *
 * Neither copies data.  The copy walks the source tree breadth-first and
 * writes, per inode, a new inode record (same attributes, new number), its
 * directory entries (same names and cookies) and its xattrs.  A file's
 * extent map is not copied: the new inode names the same emap and the
 * emap's refs goes up by one, so the cost is O(inodes) and independent of
 * the data bytes and of the number of extents; the first write to either
 * side copies the map (meta_extent.c).  docs/metadata.md describes how the
 * schema could make a snapshot O(1).
 *
 * The WAL gets one logical entry per snapshot/clone/snapshot delete (not
 * the copied records): replay runs the same copy, which is deterministic
 * given the same tables, parameters and record time.
 *
 * Invariants:
 *   1. Inodes of a snapshot carry META_INO_F_RDONLY; clones never do.
 *   2. Hard links inside the copied tree stay hard links in the copy, with
 *      nlink = the number of entries naming them inside the copy.
 *   3. The snapshot table's entries count equals the inodes copied.
 */
#include <stdlib.h>
#include <sys/stat.h>

#include "meta_int.h"

#define MS_SNAP_VLEN 33

typedef struct ms_pair { uint64_t src, dst; } ms_pair;
typedef struct ms_link { uint64_t src, dst; uint32_t n; } ms_link;

typedef struct ms_copy {
	meta_txn *t;
	int rdonly;
	ms_pair *q;
	size_t qn, qcap, qhead;
	ms_link *links;     /* hard-linked files seen so far (open hash) */
	size_t lcap, ln;
	uint64_t count;
	uint64_t file_bytes;
	uint64_t next_ino;  /* allocator, written back once at the end */
} ms_copy;

typedef struct ms_child {
	uint64_t ino, cookie;
	uint32_t type;
	uint16_t nlen;
	char name[META_NAME_MAX];
} ms_child;

static int ms_q_push(ms_copy *c, uint64_t src, uint64_t dst)
{
	if (c->qn == c->qcap) {
		size_t nc = c->qcap ? c->qcap * 2 : 64;
		ms_pair *nq = realloc(c->q, nc * sizeof *nq);
		if (!nq)
			return cairn_errf(CAIRN_E_NOMEM, "snapshot queue");
		c->q = nq;
		c->qcap = nc;
	}
	c->q[c->qn++] = (ms_pair){ src, dst };
	return 0;
}

static ms_link *ms_link_find(ms_copy *c, uint64_t src, int *found)
{
	size_t mask = c->lcap - 1, i = (size_t)(src * 0x9e3779b97f4a7c15ULL) & mask;
	while (c->links[i].src && c->links[i].src != src)
		i = (i + 1) & mask;
	*found = c->links[i].src == src;
	return &c->links[i];
}

static int ms_link_grow(ms_copy *c)
{
	size_t ncap = c->lcap ? c->lcap * 2 : 64;
	ms_link *old = c->links;
	size_t ocap = c->lcap;
	c->links = calloc(ncap, sizeof *c->links);
	if (!c->links) {
		c->links = old;
		return cairn_errf(CAIRN_E_NOMEM, "snapshot link table");
	}
	c->lcap = ncap;
	for (size_t i = 0; i < ocap; i++)
		if (old[i].src) {
			int f;
			*ms_link_find(c, old[i].src, &f) = old[i];
		}
	free(old);
	return 0;
}

static int ms_xattr_copy(meta_txn *t, uint64_t src, uint64_t dst)
{
	MDB_cursor *cur;
	uint8_t kb[8];
	int rc = mt_cursor(t, MT_XATTR, &cur);
	if (rc)
		return rc;
	be64(kb, src);
	MDB_val k = { 8, kb }, v;
	int err = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
	/* collect first: puts would move the cursor's page under it */
	typedef struct { size_t kl, vl; uint8_t *p; } xa;
	xa *list = NULL;
	size_t n = 0;
	while (!err && k.mv_size > 8 && rbe64(k.mv_data) == src) {
		xa *nl = realloc(list, (n + 1) * sizeof *nl);
		uint8_t *p = malloc(k.mv_size + v.mv_size);
		if (!nl || !p) {
			free(p);
			if (nl)
				list = nl;
			rc = cairn_errf(CAIRN_E_NOMEM, "copy xattrs");
			break;
		}
		list = nl;
		memcpy(p, k.mv_data, k.mv_size);
		memcpy(p + k.mv_size, v.mv_data, v.mv_size);
		list[n++] = (xa){ k.mv_size, v.mv_size, p };
		err = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
	}
	mdb_cursor_close(cur);
	for (size_t i = 0; i < n; i++) {
		if (!rc) {
			be64(list[i].p, dst);
			rc = mt_put(t, MT_XATTR, list[i].p, list[i].kl, list[i].p + list[i].kl,
				    list[i].vl);
		}
		free(list[i].p);
	}
	free(list);
	return rc;
}

/* New inode dst as a copy of in (already read), under parent. */
static int ms_copy_inode(ms_copy *c, mi_inode *in, uint64_t dst, uint64_t parent)
{
	meta_txn *t = c->t;
	int rc;
	uint64_t src = in->a.ino;
	in->a.ino = dst;
	if (S_ISDIR(in->a.mode))
		in->parent = parent;
	if (c->rdonly)
		in->a.flags |= META_INO_F_RDONLY;
	else
		in->a.flags &= ~META_INO_F_RDONLY;
	if (in->emap && (rc = mx_emap_share(t, in->emap)))
		return rc;
	uint8_t k[8], buf[MI_FIXED + META_SYMLINK_MAX + 1];
	be64(k, dst);
	size_t n = mi_inode_enc(in, buf);
	/* new numbers are above every existing one: append */
	if ((rc = mt_put_append(t, MT_INODE, k, 8, buf, n, 1)))
		return rc;
	c->count++;
	if (S_ISREG(in->a.mode))
		c->file_bytes += in->a.size;
	return ms_xattr_copy(t, src, dst);
}

static int ms_children(meta_txn *t, uint64_t dir, ms_child **out, size_t *n)
{
	MDB_cursor *cur;
	uint8_t kb[16];
	size_t cap = 0;
	int rc = mt_cursor(t, MT_DCOOKIE, &cur);
	*out = NULL;
	*n = 0;
	if (rc)
		return rc;
	be64(kb, dir);
	be64(kb + 8, 0);
	MDB_val k = { 16, kb }, v;
	int err = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
	while (!err && k.mv_size == 16 && rbe64(k.mv_data) == dir) {
		if ((rc = mr_version(&v, "dir cookie of inode", dir)))
			break;
		if (v.mv_size <= MDC_FIXED || v.mv_size > MDC_FIXED + META_NAME_MAX) {
			rc = cairn_errf(CAIRN_E_CORRUPT, "directory %llu: bad cookie record",
					(unsigned long long)dir);
			break;
		}
		if (*n == cap) {
			cap = cap ? cap * 2 : 16;
			ms_child *nc = realloc(*out, cap * sizeof *nc);
			if (!nc) {
				rc = cairn_errf(CAIRN_E_NOMEM, "directory listing");
				break;
			}
			*out = nc;
		}
		const uint8_t *p = v.mv_data;
		ms_child *ch = &(*out)[(*n)++];
		ch->cookie = rbe64((uint8_t *)k.mv_data + 8);
		ch->type = (uint32_t)p[1] << 12;
		ch->ino = rle64(p + 2);
		ch->nlen = (uint16_t)(v.mv_size - MDC_FIXED);
		memcpy(ch->name, p + MDC_FIXED, ch->nlen);
		err = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
	}
	mdb_cursor_close(cur);
	if (!rc && err && err != MDB_NOTFOUND)
		rc = meta_lmdb_err(err, "list directory");
	return rc;
}

/* Copy the tree at src; *root gets the new root inode. */
static int ms_copy_tree(meta_txn *t, uint64_t src, uint64_t parent, int rdonly,
			uint64_t *root, uint64_t *count)
{
	ms_copy c;
	mi_inode in;
	ms_child *ch = NULL;
	size_t nch = 0;
	int rc;
	memset(&c, 0, sizeof c);
	c.t = t;
	c.rdonly = rdonly;
	if ((rc = mi_inode_get(t, src, &in)) || (rc = mt_counter_get(t, MC_NEXT_INO, &c.next_ino)))
		return rc;
	if (!c.next_ino)
		c.next_ino = 1;
	*root = c.next_ino++;
	if (!S_ISDIR(in.a.mode))
		in.a.nlink = 1;  /* a single file copied alone has one name */
	if ((rc = ms_copy_inode(&c, &in, *root, parent)))
		goto out;
	if (S_ISDIR(in.a.mode) && (rc = ms_q_push(&c, src, *root)))
		goto out;
	while (c.qhead < c.qn) {
		ms_pair d = c.q[c.qhead++];
		free(ch);
		ch = NULL;
		if ((rc = ms_children(t, d.src, &ch, &nch)))
			goto out;
		for (size_t i = 0; i < nch; i++) {
			uint64_t dst;
			int linked = 0;
			if (!S_ISDIR(ch[i].type)) {
				/* hard links: one copy, counted within the tree */
				if ((c.ln + 1) * 2 > c.lcap && (rc = ms_link_grow(&c)))
					goto out;
				int found;
				ms_link *l = ms_link_find(&c, ch[i].ino, &found);
				if (found) {
					l->n++;
					dst = l->dst;
					linked = 1;
				}
			}
			if (!linked) {
				dst = c.next_ino++;
				if ((rc = mi_inode_get(t, ch[i].ino, &in)))
					goto out;
				if (!S_ISDIR(in.a.mode) && in.a.nlink > 1) {
					int found;
					ms_link *l = ms_link_find(&c, ch[i].ino, &found);
					*l = (ms_link){ ch[i].ino, dst, 1 };
					c.ln++;
				}
				if ((rc = ms_copy_inode(&c, &in, dst, d.dst)))
					goto out;
				if (S_ISDIR(in.a.mode) && (rc = ms_q_push(&c, ch[i].ino, dst)))
					goto out;
			}
			if ((rc = mn_dirent_put(t, d.dst, ch[i].name, ch[i].nlen, dst, ch[i].type,
						ch[i].cookie, 1)))
				goto out;
		}
	}
	/* fix nlink of hard-linked files to the links inside the copy */
	for (size_t i = 0; i < c.lcap; i++) {
		if (!c.links[i].src)
			continue;
		if ((rc = mi_inode_get(t, c.links[i].dst, &in)))
			goto out;
		if (in.a.nlink != c.links[i].n) {
			in.a.nlink = c.links[i].n;
			if ((rc = mi_inode_put_raw(t, &in)))
				goto out;
		}
	}
	uint8_t ck = MC_NEXT_INO, cv[8];
	le64(cv, c.next_ino);
	if ((rc = mt_put(t, MT_COUNTER, &ck, 1, cv, 8)))
		goto out;
	if ((rc = mt_counter_add(t, MC_INODES, (int64_t)c.count)) ||
	    (rc = mt_counter_add(t, MC_FILE_BYTES, (int64_t)c.file_bytes)))
		goto out;
	*count = c.count;
out:
	free(ch);
	free(c.q);
	free(c.links);
	return rc;
}

static int ms_name(const char *name, size_t *n)
{
	if (!name || !*name)
		return cairn_errf(CAIRN_E_INVAL, "empty snapshot name");
	*n = strnlen(name, META_SNAP_NAME_MAX + 1);
	if (*n > META_SNAP_NAME_MAX)
		return cairn_errf(CAIRN_E_NAMETOOLONG, "snapshot name longer than %d bytes",
				  META_SNAP_NAME_MAX);
	return 0;
}

static int ms_snap_dec(const char *name, size_t nl, const MDB_val *v, meta_snap *out)
{
	int rc = mr_version(v, "snapshot", 0);
	if (rc)
		return rc;
	if (v->mv_size != MS_SNAP_VLEN)
		return cairn_errf(CAIRN_E_CORRUPT, "snapshot '%.*s': bad record", (int)nl, name);
	const uint8_t *p = v->mv_data;
	memcpy(out->name, name, nl);
	out->name[nl] = 0;
	out->root = rle64(p + 1);
	out->src = rle64(p + 9);
	out->ctime_ns = (int64_t)rle64(p + 17);
	out->entries = rle64(p + 25);
	return 0;
}

/* Logical WAL entry: u64 a, u64 b, name.  Logged unless replaying. */
static int ms_log(meta_txn *t, int kind, uint64_t a, uint64_t b, const char *name, size_t nl)
{
	uint8_t p[16 + 256];
	le64(p, a);
	le64(p + 8, b);
	memcpy(p + 16, name, nl);
	return mt_log_logical(t, kind, p, 16 + nl);
}

static int snapshot_create(meta_txn *t, uint64_t src, const char *name, meta_snap *out)
{
	size_t nl;
	mi_inode in;
	MDB_val v;
	int rc;
	if ((rc = mt_need_write(t)) || (rc = ms_name(name, &nl)))
		return rc;
	rc = mt_get(t, MT_SNAP, name, nl, &v);
	if (!rc)
		return cairn_errf(CAIRN_E_EXISTS, "snapshot '%s' exists", name);
	if (rc != CAIRN_E_NOTFOUND)
		return rc;
	if ((rc = mi_inode_get(t, src, &in)))
		return rc;
	if (!S_ISDIR(in.a.mode))
		return cairn_errf(CAIRN_E_NOTDIR, "snapshot source %llu is not a directory",
				  (unsigned long long)src);
	if ((rc = ms_log(t, MW_SNAPSHOT, src, 0, name, nl)))
		return rc;
	t->suppress++;
	meta_snap s;
	memset(&s, 0, sizeof s);
	rc = ms_copy_tree(t, src, 0, 1, &s.root, &s.entries);
	if (!rc) {
		uint8_t val[MS_SNAP_VLEN];
		val[0] = META_REC_V1;
		le64(val + 1, s.root);
		le64(val + 9, src);
		le64(val + 17, (uint64_t)t->now);
		le64(val + 25, s.entries);
		rc = mt_put(t, MT_SNAP, name, nl, val, MS_SNAP_VLEN);
	}
	t->suppress--;
	if (rc)
		return rc;
	if (out) {
		memcpy(s.name, name, nl);
		s.name[nl] = 0;
		s.src = src;
		s.ctime_ns = t->now;
		*out = s;
	}
	return 0;
}

int meta_snapshot_create(meta_txn *t, uint64_t src, const char *name, meta_snap *out)
{
	return snapshot_create(t, src, name, out);
}

int meta_snapshot_get(meta_txn *t, const char *name, meta_snap *out)
{
	size_t nl;
	MDB_val v;
	int rc = ms_name(name, &nl);
	if (rc)
		return rc;
	rc = mt_get(t, MT_SNAP, name, nl, &v);
	if (rc == CAIRN_E_NOTFOUND)
		return cairn_errf(rc, "snapshot '%s' does not exist", name);
	if (rc)
		return rc;
	return ms_snap_dec(name, nl, &v, out);
}

int meta_snapshot_list(meta_txn *t, meta_snap_fn cb, void *arg)
{
	MDB_cursor *c;
	MDB_val k, v;
	meta_snap s;
	int rc = mt_cursor(t, MT_SNAP, &c);
	if (rc)
		return rc;
	int err = mdb_cursor_get(c, &k, &v, MDB_FIRST);
	while (!err) {
		if (k.mv_size == 0 || k.mv_size > META_SNAP_NAME_MAX) {
			rc = cairn_errf(CAIRN_E_CORRUPT, "snapshot name of %zu bytes", k.mv_size);
			break;
		}
		if ((rc = ms_snap_dec(k.mv_data, k.mv_size, &v, &s)))
			break;
		if (cb(&s, arg))
			break;
		err = mdb_cursor_get(c, &k, &v, MDB_NEXT);
	}
	mdb_cursor_close(c);
	if (!rc && err && err != MDB_NOTFOUND)
		rc = meta_lmdb_err(err, "list snapshots");
	return rc;
}

/* Free the whole tree under root (entries, inodes, xattrs, extent maps). */
static int ms_delete_tree(meta_txn *t, uint64_t root)
{
	uint64_t *stack = NULL;
	size_t sn = 0, scap = 0;
	ms_child *ch = NULL;
	size_t nch;
	mi_inode in;
	int rc = 0;
#define PUSH(x)                                                                  \
	do {                                                                     \
		if (sn == scap) {                                                \
			size_t nc_ = scap ? scap * 2 : 64;                      \
			uint64_t *ns_ = realloc(stack, nc_ * sizeof *ns_);       \
			if (!ns_) {                                              \
				rc = cairn_errf(CAIRN_E_NOMEM, "delete tree");  \
				goto out;                                        \
			}                                                        \
			stack = ns_;                                             \
			scap = nc_;                                              \
		}                                                                \
		stack[sn++] = (x);                                               \
	} while (0)
	PUSH(root);
	while (sn) {
		uint64_t dir = stack[--sn];
		if ((rc = mi_inode_get(t, dir, &in)))
			goto out;
		if (S_ISDIR(in.a.mode)) {
			free(ch);
			ch = NULL;
			if ((rc = ms_children(t, dir, &ch, &nch)))
				goto out;
			for (size_t i = 0; i < nch; i++) {
				uint8_t k[8 + META_NAME_MAX];
				size_t kl = md_key(k, dir, ch[i].name, ch[i].nlen);
				if ((rc = mt_del(t, MT_DIRENT, k, kl)))
					goto out;
				be64(k + 8, ch[i].cookie);
				if ((rc = mt_del(t, MT_DCOOKIE, k, 16)))
					goto out;
				if (S_ISDIR(ch[i].type)) {
					PUSH(ch[i].ino);
				} else {
					/* no orphan logic: open counts are not part of
					 * the replicated state, and replay must match */
					mi_inode f, of;
					if ((rc = mi_inode_get(t, ch[i].ino, &f)))
						goto out;
					of = f;
					if (f.a.nlink > 1) {
						f.a.nlink--;
						rc = mi_inode_put(t, &of, &f);
					} else {
						rc = mx_inode_free(t, &f);
					}
					if (rc)
						goto out;
				}
			}
		}
		if ((rc = mx_inode_free(t, &in)))
			goto out;
	}
out:
	free(ch);
	free(stack);
	return rc;
#undef PUSH
}

static int snapshot_delete(meta_txn *t, const char *name)
{
	meta_snap s;
	size_t nl;
	int rc;
	if ((rc = mt_need_write(t)) || (rc = meta_snapshot_get(t, name, &s)))
		return rc;
	nl = strlen(s.name);
	if ((rc = ms_log(t, MW_SNAPDEL, 0, 0, name, nl)))
		return rc;
	t->suppress++;
	rc = ms_delete_tree(t, s.root);
	if (!rc)
		rc = mt_del(t, MT_SNAP, name, nl);
	t->suppress--;
	return rc;
}

int meta_snapshot_delete(meta_txn *t, const char *name)
{
	return snapshot_delete(t, name);
}

int meta_clone(meta_txn *t, uint64_t src, uint64_t dparent, const char *dname, meta_attr *out)
{
	size_t nl;
	mi_inode dir, in;
	MDB_val v;
	uint64_t root, count;
	int rc;
	if ((rc = mt_need_write(t)) || (rc = mn_check_name(dname, &nl)))
		return rc;
	if ((rc = mi_inode_get(t, dparent, &dir)))
		return rc;
	if (!S_ISDIR(dir.a.mode))
		return cairn_errf(CAIRN_E_NOTDIR, "inode %llu is not a directory",
				  (unsigned long long)dparent);
	if (dir.a.flags & META_INO_F_RDONLY)
		return cairn_errf(CAIRN_E_ROFS, "inode %llu belongs to a snapshot (read-only)",
				  (unsigned long long)dparent);
	uint8_t k[8 + META_NAME_MAX];
	size_t kl = md_key(k, dparent, dname, nl);
	rc = mt_get(t, MT_DIRENT, k, kl, &v);
	if (!rc)
		return cairn_errf(CAIRN_E_EXISTS, "'%s' exists in directory %llu", dname,
				  (unsigned long long)dparent);
	if (rc != CAIRN_E_NOTFOUND)
		return rc;
	if ((rc = mi_inode_get(t, src, &in)))
		return rc;
	if (S_ISDIR(in.a.mode) && dir.a.nlink >= META_LINK_MAX)
		return cairn_errf(CAIRN_E_MLINK, "directory %llu has %u links",
				  (unsigned long long)dparent, dir.a.nlink);
	if ((rc = ms_log(t, MW_CLONE, src, dparent, dname, nl)))
		return rc;
	t->suppress++;
	mi_inode old = dir;
	rc = ms_copy_tree(t, src, dparent, 0, &root, &count);
	if (!rc)
		rc = mn_dirent_add(t, &dir, dname, nl, root, in.a.mode);
	if (!rc) {
		if (S_ISDIR(in.a.mode))
			dir.a.nlink++;
		dir.a.mtime_ns = dir.a.ctime_ns = t->now;
		rc = mi_inode_put(t, &old, &dir);
	}
	t->suppress--;
	if (!rc && out)
		rc = meta_getattr(t, root, out);
	return rc;
}

int ms_snap_replay(meta_txn *t, int kind, const uint8_t *p, size_t n)
{
	char name[META_NAME_MAX + 1];
	if (n < 17 || n > 16 + META_NAME_MAX)
		return cairn_errf(CAIRN_E_CORRUPT, "WAL snapshot entry of %zu bytes", n);
	uint64_t a = rle64(p), b = rle64(p + 8);
	memcpy(name, p + 16, n - 16);
	name[n - 16] = 0;
	if (strlen(name) != n - 16)
		return cairn_errf(CAIRN_E_CORRUPT, "WAL snapshot entry: NUL in name");
	switch (kind) {
	case MW_SNAPSHOT: return snapshot_create(t, a, name, NULL);
	case MW_CLONE: return meta_clone(t, a, b, name, NULL);
	default: return snapshot_delete(t, name);
	}
}
