/*
 * meta_ns.c - namespace operations with POSIX semantics: lookup, getattr,
 * setattr, mknod/create/mkdir/symlink, readlink, unlink, rmdir, rename
 * (NOREPLACE, EXCHANGE), link, readdir, xattrs and statfs.
 *
 * Every operation runs inside a caller's meta_txn: reads in any, changes in
 * a write transaction (meta_write callback).  Each checks all of its
 * preconditions before its first change (meta_int.h invariant 2).
 *
 * Directory entries are stored twice: by name (dirent table: lookup) and by
 * cookie (dcookie table: readdir).  A directory hands out cookies from its
 * inode's next_cookie counter, so cookies are never reused in a directory
 * and a resumed readdir neither repeats nor skips stable entries.
 *
 * Invariants:
 *   1. nlink of a directory = 2 + its subdirectories; of anything else =
 *      the number of entries naming it (0 only while an orphan).
 *   2. A directory inode's parent field names the one directory holding it.
 *   3. An inode with nlink 0 exists only while open (orphan table) or
 *      until the end of the transaction that unlinked it.
 *   4. Inodes flagged META_INO_F_RDONLY (snapshots) are never changed here.
 */
#include <stdlib.h>
#include <sys/stat.h>

#include "meta_int.h"

#define MN_FILE_MAX (1ULL << 60)

int mn_check_name(const char *name, size_t *nlen)
{
	if (!name || !*name)
		return cairn_errf(CAIRN_E_INVAL, "empty file name");
	size_t n = strnlen(name, META_NAME_MAX + 1);
	if (n > META_NAME_MAX)
		return cairn_errf(CAIRN_E_NAMETOOLONG, "file name longer than %d bytes",
				  META_NAME_MAX);
	if ((n == 1 && name[0] == '.') || (n == 2 && name[0] == '.' && name[1] == '.'))
		return cairn_errf(CAIRN_E_INVAL, "'%s' cannot be used as an entry name", name);
	if (memchr(name, '/', n))
		return cairn_errf(CAIRN_E_INVAL, "file name '%s' contains '/'", name);
	*nlen = n;
	return 0;
}

static int mn_writable(const mi_inode *in)
{
	if (in->a.flags & META_INO_F_RDONLY)
		return cairn_errf(CAIRN_E_ROFS, "inode %llu belongs to a snapshot (read-only)",
				  (unsigned long long)in->a.ino);
	return 0;
}

static int mn_get_dir(meta_txn *t, uint64_t ino, mi_inode *d)
{
	int rc = mi_inode_get(t, ino, d);
	if (rc)
		return rc;
	if (!S_ISDIR(d->a.mode))
		return cairn_errf(CAIRN_E_NOTDIR, "inode %llu is not a directory",
				  (unsigned long long)ino);
	return 0;
}

static int mn_dirent_get(meta_txn *t, uint64_t parent, const char *name, size_t nlen,
			 uint64_t *ino, uint32_t *type, uint64_t *cookie)
{
	uint8_t k[8 + META_NAME_MAX];
	MDB_val v;
	size_t kl = md_key(k, parent, name, nlen);
	int rc = mt_get(t, MT_DIRENT, k, kl, &v);
	if (rc == CAIRN_E_NOTFOUND)
		return cairn_errf(rc, "'%.*s' not found in directory %llu", (int)nlen, name,
				  (unsigned long long)parent);
	if (rc)
		return rc;
	return md_dec(&v, ino, type, cookie);
}

static int mn_dirent_exists(meta_txn *t, uint64_t parent, const char *name, size_t nlen,
			    int *exists)
{
	uint8_t k[8 + META_NAME_MAX];
	MDB_val v;
	size_t kl = md_key(k, parent, name, nlen);
	int rc = mt_get(t, MT_DIRENT, k, kl, &v);
	*exists = rc == 0;
	return rc == CAIRN_E_NOTFOUND ? 0 : rc;
}

static int mn_dcookie_put(meta_txn *t, uint64_t parent, uint64_t cookie, const char *name,
			  size_t nlen, uint64_t ino, uint32_t type, int append)
{
	uint8_t k[16], v[MDC_FIXED + META_NAME_MAX];
	be64(k, parent);
	be64(k + 8, cookie);
	v[0] = META_REC_V1;
	v[1] = (uint8_t)((type & S_IFMT) >> 12);
	le64(v + 2, ino);
	memcpy(v + MDC_FIXED, name, nlen);
	return mt_put_append(t, MT_DCOOKIE, k, 16, v, MDC_FIXED + nlen, append);
}

int mn_dirent_put(meta_txn *t, uint64_t parent, const char *name, size_t nlen,
			 uint64_t ino, uint32_t type, uint64_t cookie, int append)
{
	uint8_t k[8 + META_NAME_MAX], v[MD_VLEN];
	size_t kl = md_key(k, parent, name, nlen);
	md_enc(v, ino, type, cookie);
	int rc = mt_put(t, MT_DIRENT, k, kl, v, MD_VLEN);
	if (!rc)
		rc = mn_dcookie_put(t, parent, cookie, name, nlen, ino, type, append);
	return rc;
}

int mn_dirent_add(meta_txn *t, mi_inode *dir, const char *name, size_t nlen,
		  uint64_t ino, uint32_t type)
{
	uint64_t cookie = dir->next_cookie ? dir->next_cookie : 1;
	dir->next_cookie = cookie + 1;
	return mn_dirent_put(t, dir->a.ino, name, nlen, ino, type, cookie, 0);
}

static int mn_dirent_del(meta_txn *t, uint64_t parent, const char *name, size_t nlen,
			 uint64_t cookie)
{
	uint8_t k[8 + META_NAME_MAX];
	size_t kl = md_key(k, parent, name, nlen);
	int rc = mt_del(t, MT_DIRENT, k, kl);
	if (rc)
		return rc;
	be64(k, parent);
	be64(k + 8, cookie);
	return mt_del(t, MT_DCOOKIE, k, 16);
}

static int mn_dir_empty(meta_txn *t, uint64_t dir, int *empty)
{
	MDB_cursor *c;
	uint8_t kb[8];
	be64(kb, dir);
	MDB_val k = { 8, kb }, v;
	int rc = mt_cursor(t, MT_DIRENT, &c);
	if (rc)
		return rc;
	int err = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
	*empty = err || k.mv_size < 8 || rbe64(k.mv_data) != dir;
	mdb_cursor_close(c);
	if (err && err != MDB_NOTFOUND)
		return meta_lmdb_err(err, "scan directory");
	return 0;
}

int mx_xattr_drop_all(meta_txn *t, uint64_t ino)
{
	MDB_cursor *c;
	uint8_t kb[8];
	int rc = mt_cursor(t, MT_XATTR, &c);
	if (rc)
		return rc;
	for (;;) {
		be64(kb, ino);
		MDB_val k = { 8, kb }, v;
		int err = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
		if (err || k.mv_size < 8 || rbe64(k.mv_data) != ino)
			break;
		uint8_t key[8 + META_XATTR_NAME_MAX];
		size_t kl = k.mv_size < sizeof key ? k.mv_size : sizeof key;
		memcpy(key, k.mv_data, kl);
		if ((rc = mt_del(t, MT_XATTR, key, kl)))
			break;
	}
	mdb_cursor_close(c);
	return rc;
}

int mx_inode_free(meta_txn *t, mi_inode *in)
{
	int rc = 0;
	if (in->emap)
		rc = mx_emap_release(t, in->emap);
	if (!rc)
		rc = mx_xattr_drop_all(t, in->a.ino);
	if (!rc)
		rc = mi_inode_del(t, in);
	return rc;
}

/* The inode lost a link: free it, or keep it as an orphan while open. */
int mn_drop_link(meta_txn *t, mi_inode *in, int is_dir)
{
	int rc;
	mi_inode old = *in;
	if (is_dir)
		in->a.nlink = 0;
	else if (in->a.nlink)
		in->a.nlink--;
	in->a.ctime_ns = t->now;
	if (in->a.nlink)
		return mi_inode_put(t, &old, in);
	if (meta_open_count(t->m, in->a.ino) > 0) {
		uint8_t k[8], v[9];
		be64(k, in->a.ino);
		v[0] = META_REC_V1;
		le64(v + 1, (uint64_t)t->now);
		rc = mi_inode_put(t, &old, in);
		if (!rc)
			rc = mt_put(t, MT_ORPHAN, k, 8, v, 9);
		return rc;
	}
	return mx_inode_free(t, &old);
}

static void fill_attr(const mi_inode *in, meta_attr *out)
{
	if (out)
		*out = in->a;
}

int meta_getattr(meta_txn *t, uint64_t ino, meta_attr *out)
{
	mi_inode in;
	int rc = mi_inode_get(t, ino, &in);
	if (!rc)
		fill_attr(&in, out);
	return rc;
}

int meta_lookup(meta_txn *t, uint64_t parent, const char *name, meta_attr *out)
{
	size_t nlen;
	uint64_t ino, cookie;
	uint32_t type;
	int rc = mn_check_name(name, &nlen);
	if (rc)
		return rc;
	uint8_t k[8 + META_NAME_MAX];
	MDB_val v;
	size_t kl = md_key(k, parent, name, nlen);
	rc = mt_get(t, MT_DIRENT, k, kl, &v);
	if (rc == CAIRN_E_NOTFOUND) {
		/* distinguish "no entry" from "parent is not a directory" */
		mi_inode d;
		rc = mn_get_dir(t, parent, &d);
		if (rc)
			return rc;
		return cairn_errf(CAIRN_E_NOTFOUND, "'%s' not found in directory %llu", name,
				  (unsigned long long)parent);
	}
	if (rc)
		return rc;
	if ((rc = md_dec(&v, &ino, &type, &cookie)))
		return rc;
	return meta_getattr(t, ino, out);
}

static int mn_make(meta_txn *t, uint64_t parent, const char *name, uint32_t mode,
		   uint64_t rdev, uint32_t uid, uint32_t gid, const char *target,
		   meta_attr *out)
{
	size_t nlen, tlen = 0;
	mi_inode dir, in;
	int exists, rc;
	if ((rc = mt_need_write(t)) || (rc = mn_check_name(name, &nlen)))
		return rc;
	if (target) {
		tlen = strnlen(target, META_SYMLINK_MAX + 1);
		if (tlen == 0)
			return cairn_errf(CAIRN_E_INVAL, "empty symlink target");
		if (tlen > META_SYMLINK_MAX)
			return cairn_errf(CAIRN_E_NAMETOOLONG, "symlink target longer than %d bytes",
					  META_SYMLINK_MAX);
	}
	if ((rc = mn_get_dir(t, parent, &dir)) || (rc = mn_writable(&dir)))
		return rc;
	if ((rc = mn_dirent_exists(t, parent, name, nlen, &exists)))
		return rc;
	if (exists)
		return cairn_errf(CAIRN_E_EXISTS, "'%s' exists in directory %llu", name,
				  (unsigned long long)parent);
	int is_dir = S_ISDIR(mode);
	if (is_dir && dir.a.nlink >= META_LINK_MAX)
		return cairn_errf(CAIRN_E_MLINK, "directory %llu has %u links",
				  (unsigned long long)parent, dir.a.nlink);
	mi_inode olddir = dir;
	memset(&in.a, 0, sizeof in.a);
	if ((rc = mt_counter_next(t, MC_NEXT_INO, &in.a.ino)))
		return rc;
	in.a.mode = mode;
	in.a.uid = uid;
	in.a.gid = gid;
	in.a.nlink = is_dir ? 2 : 1;
	in.a.rdev = rdev;
	in.a.atime_ns = in.a.mtime_ns = in.a.ctime_ns = in.a.btime_ns = t->now;
	in.emap = 0;
	in.next_cookie = is_dir ? 1 : 0;
	in.parent = is_dir ? parent : 0;
	in.tlen = (uint16_t)tlen;
	if (tlen)
		memcpy(in.target, target, tlen);
	in.target[tlen] = 0;
	if (target)
		in.a.size = tlen;
	if ((rc = mi_inode_put(t, NULL, &in)))
		return rc;
	if ((rc = mn_dirent_add(t, &dir, name, nlen, in.a.ino, mode)))
		return rc;
	if (is_dir)
		dir.a.nlink++;
	dir.a.mtime_ns = dir.a.ctime_ns = t->now;
	if ((rc = mi_inode_put(t, &olddir, &dir)))
		return rc;
	fill_attr(&in, out);
	return 0;
}

int meta_mknod(meta_txn *t, uint64_t parent, const char *name, uint32_t mode,
	       uint64_t rdev, uint32_t uid, uint32_t gid, meta_attr *out)
{
	switch (mode & S_IFMT) {
	case S_IFREG: case S_IFCHR: case S_IFBLK: case S_IFIFO: case S_IFSOCK:
		break;
	default:
		return cairn_errf(CAIRN_E_INVAL, "mknod of file type 0%o is not allowed",
				  mode & S_IFMT);
	}
	return mn_make(t, parent, name, mode & (S_IFMT | 07777), rdev, uid, gid, NULL, out);
}

int meta_create(meta_txn *t, uint64_t parent, const char *name, uint32_t mode,
		uint32_t uid, uint32_t gid, meta_attr *out)
{
	return mn_make(t, parent, name, S_IFREG | (mode & 07777), 0, uid, gid, NULL, out);
}

int meta_mkdir(meta_txn *t, uint64_t parent, const char *name, uint32_t mode,
	       uint32_t uid, uint32_t gid, meta_attr *out)
{
	return mn_make(t, parent, name, S_IFDIR | (mode & 07777), 0, uid, gid, NULL, out);
}

int meta_symlink(meta_txn *t, uint64_t parent, const char *name, const char *target,
		 uint32_t uid, uint32_t gid, meta_attr *out)
{
	if (!target)
		return cairn_errf(CAIRN_E_INVAL, "symlink without a target");
	return mn_make(t, parent, name, S_IFLNK | 0777, 0, uid, gid, target, out);
}

int meta_readlink(meta_txn *t, uint64_t ino, char *buf, size_t size, size_t *len)
{
	mi_inode in;
	int rc = mi_inode_get(t, ino, &in);
	if (rc)
		return rc;
	if (!S_ISLNK(in.a.mode))
		return cairn_errf(CAIRN_E_INVAL, "inode %llu is not a symlink",
				  (unsigned long long)ino);
	memcpy(buf, in.target, in.tlen < size ? in.tlen : size);
	*len = in.tlen;
	return 0;
}

static int mn_remove(meta_txn *t, uint64_t parent, const char *name, int want_dir)
{
	size_t nlen;
	mi_inode dir, in;
	uint64_t ino, cookie;
	uint32_t type;
	int rc;
	if ((rc = mt_need_write(t)) || (rc = mn_check_name(name, &nlen)))
		return rc;
	if ((rc = mn_get_dir(t, parent, &dir)) || (rc = mn_writable(&dir)))
		return rc;
	if ((rc = mn_dirent_get(t, parent, name, nlen, &ino, &type, &cookie)))
		return rc;
	if ((rc = mi_inode_get(t, ino, &in)))
		return rc;
	int is_dir = S_ISDIR(in.a.mode);
	if (want_dir && !is_dir)
		return cairn_errf(CAIRN_E_NOTDIR, "'%s' is not a directory", name);
	if (!want_dir && is_dir)
		return cairn_errf(CAIRN_E_ISDIR, "'%s' is a directory", name);
	if (is_dir) {
		int empty;
		if ((rc = mn_dir_empty(t, ino, &empty)))
			return rc;
		if (!empty)
			return cairn_errf(CAIRN_E_NOTEMPTY, "directory '%s' is not empty", name);
	}
	mi_inode olddir = dir;
	if ((rc = mn_dirent_del(t, parent, name, nlen, cookie)))
		return rc;
	if (is_dir)
		dir.a.nlink--;
	dir.a.mtime_ns = dir.a.ctime_ns = t->now;
	if ((rc = mi_inode_put(t, &olddir, &dir)))
		return rc;
	return mn_drop_link(t, &in, is_dir);
}

int meta_unlink(meta_txn *t, uint64_t parent, const char *name)
{
	return mn_remove(t, parent, name, 0);
}

int meta_rmdir(meta_txn *t, uint64_t parent, const char *name)
{
	return mn_remove(t, parent, name, 1);
}

int meta_link(meta_txn *t, uint64_t ino, uint64_t newparent, const char *newname,
	      meta_attr *out)
{
	size_t nlen;
	mi_inode dir, in;
	int exists, rc;
	if ((rc = mt_need_write(t)) || (rc = mn_check_name(newname, &nlen)))
		return rc;
	if ((rc = mi_inode_get(t, ino, &in)))
		return rc;
	if (S_ISDIR(in.a.mode))
		return cairn_errf(CAIRN_E_ISDIR, "hard link to directory %llu",
				  (unsigned long long)ino);
	if ((rc = mn_writable(&in)))
		return rc;
	if (in.a.nlink == 0)
		return cairn_errf(CAIRN_E_NOTFOUND, "inode %llu was unlinked",
				  (unsigned long long)ino);
	if (in.a.nlink >= META_LINK_MAX)
		return cairn_errf(CAIRN_E_MLINK, "inode %llu has %u links",
				  (unsigned long long)ino, in.a.nlink);
	if ((rc = mn_get_dir(t, newparent, &dir)) || (rc = mn_writable(&dir)))
		return rc;
	if ((rc = mn_dirent_exists(t, newparent, newname, nlen, &exists)))
		return rc;
	if (exists)
		return cairn_errf(CAIRN_E_EXISTS, "'%s' exists in directory %llu", newname,
				  (unsigned long long)newparent);
	mi_inode olddir = dir, oldin = in;
	if ((rc = mn_dirent_add(t, &dir, newname, nlen, ino, in.a.mode)))
		return rc;
	dir.a.mtime_ns = dir.a.ctime_ns = t->now;
	if ((rc = mi_inode_put(t, &olddir, &dir)))
		return rc;
	in.a.nlink++;
	in.a.ctime_ns = t->now;
	if ((rc = mi_inode_put(t, &oldin, &in)))
		return rc;
	fill_attr(&in, out);
	return 0;
}

/* Is `dir` the directory `anc` or below it? */
static int mn_is_under(meta_txn *t, uint64_t dir, uint64_t anc, int *under)
{
	mi_inode in;
	*under = 0;
	for (int depth = 0; dir && depth < 100000; depth++) {
		if (dir == anc) {
			*under = 1;
			return 0;
		}
		if (dir == META_ROOT_INO)
			return 0;
		int rc = mi_inode_get(t, dir, &in);
		if (rc)
			return rc;
		dir = in.parent;
	}
	return 0;
}

int meta_rename(meta_txn *t, uint64_t sp, const char *sname, uint64_t dp,
		const char *dname, unsigned flags)
{
	size_t snl, dnl;
	mi_inode sdir, ddir_s, src, dst;
	uint64_t sino, dino = 0, scookie, dcookie = 0;
	uint32_t stype, dtype = 0;
	int rc, dexists;
	memset(&dst, 0, sizeof dst);
	if ((rc = mt_need_write(t)))
		return rc;
	if (flags & ~(META_RENAME_NOREPLACE | META_RENAME_EXCHANGE))
		return cairn_errf(CAIRN_E_INVAL, "rename flags 0x%x unknown", flags);
	if ((flags & META_RENAME_NOREPLACE) && (flags & META_RENAME_EXCHANGE))
		return cairn_errf(CAIRN_E_INVAL, "rename with both NOREPLACE and EXCHANGE");
	if ((rc = mn_check_name(sname, &snl)) || (rc = mn_check_name(dname, &dnl)))
		return rc;
	if ((rc = mn_get_dir(t, sp, &sdir)) || (rc = mn_writable(&sdir)))
		return rc;
	mi_inode *ddir = &sdir;
	if (dp != sp) {
		ddir = &ddir_s;
		if ((rc = mn_get_dir(t, dp, ddir)) || (rc = mn_writable(ddir)))
			return rc;
	}
	if ((rc = mn_dirent_get(t, sp, sname, snl, &sino, &stype, &scookie)))
		return rc;
	{
		uint8_t k[8 + META_NAME_MAX];
		MDB_val v;
		size_t kl = md_key(k, dp, dname, dnl);
		rc = mt_get(t, MT_DIRENT, k, kl, &v);
		dexists = rc == 0;
		if (rc && rc != CAIRN_E_NOTFOUND)
			return rc;
		if (dexists && (rc = md_dec(&v, &dino, &dtype, &dcookie)))
			return rc;
	}
	if ((flags & META_RENAME_EXCHANGE) && !dexists)
		return cairn_errf(CAIRN_E_NOTFOUND, "rename exchange: '%s' not found in directory %llu",
				  dname, (unsigned long long)dp);
	if ((flags & META_RENAME_NOREPLACE) && dexists)
		return cairn_errf(CAIRN_E_EXISTS, "'%s' exists in directory %llu", dname,
				  (unsigned long long)dp);
	if ((rc = mi_inode_get(t, sino, &src)))
		return rc;
	if (dexists && (rc = mi_inode_get(t, dino, &dst)))
		return rc;
	int sdirp = S_ISDIR(src.a.mode), ddirp = dexists && S_ISDIR(dst.a.mode);
	/* a directory may not move below itself (either way, for EXCHANGE) */
	if (sdirp && dp != sp) {
		int under;
		if ((rc = mn_is_under(t, dp, sino, &under)))
			return rc;
		if (under)
			return cairn_errf(CAIRN_E_INVAL, "cannot move directory '%s' into its own subtree",
					  sname);
	}
	if ((flags & META_RENAME_EXCHANGE) && ddirp && dp != sp) {
		int under;
		if ((rc = mn_is_under(t, sp, dino, &under)))
			return rc;
		if (under)
			return cairn_errf(CAIRN_E_INVAL, "cannot move directory '%s' into its own subtree",
					  dname);
	}
	/* same entry, or two links of one inode: nothing to do (POSIX) */
	if ((sp == dp && snl == dnl && !memcmp(sname, dname, snl)) || (dexists && dino == sino))
		return 0;
	mi_inode osdir = sdir, oddir = *ddir, osrc = src, odst = dst;
	if (flags & META_RENAME_EXCHANGE) {
		if ((rc = mn_dirent_put(t, sp, sname, snl, dino, dst.a.mode, scookie, 0)))
			return rc;
		if ((rc = mn_dirent_put(t, dp, dname, dnl, sino, src.a.mode, dcookie, 0)))
			return rc;
		if (sp != dp && sdirp != ddirp) {
			if (sdirp) { sdir.a.nlink--; ddir->a.nlink++; }
			else { sdir.a.nlink++; ddir->a.nlink--; }
		}
		if (sdirp)
			src.parent = dp;
		if (ddirp)
			dst.parent = sp;
		src.a.ctime_ns = dst.a.ctime_ns = t->now;
		sdir.a.mtime_ns = sdir.a.ctime_ns = ddir->a.mtime_ns = ddir->a.ctime_ns = t->now;
		if ((rc = mi_inode_put(t, &osrc, &src)) || (rc = mi_inode_put(t, &odst, &dst)) ||
		    (rc = mi_inode_put(t, &osdir, &sdir)))
			return rc;
		if (dp != sp && (rc = mi_inode_put(t, &oddir, ddir)))
			return rc;
		return 0;
	}
	if (dexists) {
		if (sdirp && !ddirp)
			return cairn_errf(CAIRN_E_NOTDIR, "rename directory '%s' over non-directory '%s'",
					  sname, dname);
		if (!sdirp && ddirp)
			return cairn_errf(CAIRN_E_ISDIR, "rename '%s' over directory '%s'", sname, dname);
		if ((rc = mn_writable(&dst)))
			return rc;
		if (ddirp) {
			int empty;
			if ((rc = mn_dir_empty(t, dino, &empty)))
				return rc;
			if (!empty)
				return cairn_errf(CAIRN_E_NOTEMPTY, "directory '%s' is not empty", dname);
		}
	} else if (sdirp && dp != sp && ddir->a.nlink >= META_LINK_MAX) {
		return cairn_errf(CAIRN_E_MLINK, "directory %llu has %u links",
				  (unsigned long long)dp, ddir->a.nlink);
	}
	/* all checks done: change */
	if (dexists) {
		if ((rc = mn_dirent_del(t, dp, dname, dnl, dcookie)))
			return rc;
		if (ddirp)
			ddir->a.nlink--;
	}
	if ((rc = mn_dirent_del(t, sp, sname, snl, scookie)))
		return rc;
	if ((rc = mn_dirent_add(t, ddir, dname, dnl, sino, src.a.mode)))
		return rc;
	if (sdirp && sp != dp) {
		sdir.a.nlink--;
		ddir->a.nlink++;
		src.parent = dp;
	}
	src.a.ctime_ns = t->now;
	sdir.a.mtime_ns = sdir.a.ctime_ns = ddir->a.mtime_ns = ddir->a.ctime_ns = t->now;
	if ((rc = mi_inode_put(t, &osrc, &src)) || (rc = mi_inode_put(t, &osdir, &sdir)))
		return rc;
	if (dp != sp && (rc = mi_inode_put(t, &oddir, ddir)))
		return rc;
	if (dexists)
		return mn_drop_link(t, &dst, ddirp);
	return 0;
}

int meta_setattr(meta_txn *t, uint64_t ino, const meta_sattr *sa, meta_attr *out)
{
	mi_inode in;
	int rc;
	if ((rc = mt_need_write(t)))
		return rc;
	if (sa->mask & ~0x7fu)
		return cairn_errf(CAIRN_E_INVAL, "setattr mask 0x%x unknown", sa->mask);
	if ((rc = mi_inode_get(t, ino, &in)) || (rc = mn_writable(&in)))
		return rc;
	if (sa->mask & META_SET_SIZE) {
		if (S_ISDIR(in.a.mode))
			return cairn_errf(CAIRN_E_ISDIR, "truncate of directory %llu",
					  (unsigned long long)ino);
		if (!S_ISREG(in.a.mode))
			return cairn_errf(CAIRN_E_INVAL, "truncate of inode %llu, not a regular file",
					  (unsigned long long)ino);
		if (sa->size > MN_FILE_MAX)
			return cairn_errf(CAIRN_E_FBIG, "size %llu is over the limit",
					  (unsigned long long)sa->size);
	}
	mi_inode old = in;
	if (sa->mask & META_SET_MODE)
		in.a.mode = (in.a.mode & S_IFMT) | (sa->mode & 07777);
	if (sa->mask & META_SET_UID)
		in.a.uid = sa->uid;
	if (sa->mask & META_SET_GID)
		in.a.gid = sa->gid;
	if ((sa->mask & META_SET_SIZE) && sa->size != in.a.size) {
		if ((rc = mx_truncate(t, &in, sa->size)))
			return rc;
		in.a.mtime_ns = t->now;
	}
	if (sa->mask & META_SET_ATIME)
		in.a.atime_ns = sa->atime_ns;
	if (sa->mask & META_SET_MTIME)
		in.a.mtime_ns = sa->mtime_ns;
	in.a.ctime_ns = (sa->mask & META_SET_CTIME) ? sa->ctime_ns : t->now;
	if ((rc = mi_inode_put(t, &old, &in)))
		return rc;
	fill_attr(&in, out);
	return 0;
}

int meta_readdir(meta_txn *t, uint64_t dir, uint64_t cookie, meta_dirent_fn cb, void *arg)
{
	mi_inode d;
	MDB_cursor *c;
	uint8_t kb[16];
	int rc = mn_get_dir(t, dir, &d);
	if (rc || cookie == UINT64_MAX)
		return rc;
	if ((rc = mt_cursor(t, MT_DCOOKIE, &c)))
		return rc;
	be64(kb, dir);
	be64(kb + 8, cookie + 1);
	MDB_val k = { 16, kb }, v;
	int err = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
	while (!err) {
		if (k.mv_size != 16 || rbe64(k.mv_data) != dir)
			break;
		uint64_t ck = rbe64((uint8_t *)k.mv_data + 8);
		if ((rc = mr_version(&v, "dir cookie of inode", dir)))
			break;
		if (v.mv_size < MDC_FIXED + 1 || v.mv_size > MDC_FIXED + META_NAME_MAX) {
			rc = cairn_errf(CAIRN_E_CORRUPT, "directory %llu cookie %llu: bad record",
					(unsigned long long)dir, (unsigned long long)ck);
			break;
		}
		const uint8_t *p = v.mv_data;
		char name[META_NAME_MAX + 1];
		size_t nl = v.mv_size - MDC_FIXED;
		memcpy(name, p + MDC_FIXED, nl);
		name[nl] = 0;
		if (cb(name, nl, rle64(p + 2), (uint32_t)p[1] << 12, ck, arg))
			break;
		err = mdb_cursor_get(c, &k, &v, MDB_NEXT);
	}
	mdb_cursor_close(c);
	if (!rc && err && err != MDB_NOTFOUND)
		rc = meta_lmdb_err(err, "readdir");
	return rc;
}

/* ---- xattrs ---- */

static int mn_xattr_key(uint8_t *k, uint64_t ino, const char *name, size_t *kl)
{
	if (!name || !*name)
		return cairn_errf(CAIRN_E_INVAL, "empty xattr name");
	size_t n = strnlen(name, META_XATTR_NAME_MAX + 1);
	if (n > META_XATTR_NAME_MAX)
		return cairn_errf(CAIRN_E_NAMETOOLONG, "xattr name longer than %d bytes",
				  META_XATTR_NAME_MAX);
	be64(k, ino);
	memcpy(k + 8, name, n);
	*kl = 8 + n;
	return 0;
}

int meta_xattr_set(meta_txn *t, uint64_t ino, const char *name, const void *val,
		   size_t len, unsigned flags)
{
	uint8_t k[8 + META_XATTR_NAME_MAX];
	size_t kl;
	MDB_val v;
	mi_inode in;
	int rc;
	if ((rc = mt_need_write(t)) || (rc = mn_xattr_key(k, ino, name, &kl)))
		return rc;
	if (flags & ~(META_XATTR_CREATE | META_XATTR_REPLACE))
		return cairn_errf(CAIRN_E_INVAL, "xattr flags 0x%x unknown", flags);
	if (len > META_XATTR_SIZE_MAX)
		return cairn_errf(CAIRN_E_RANGE, "xattr value of %zu bytes (limit %d)", len,
				  META_XATTR_SIZE_MAX);
	if ((rc = mi_inode_get(t, ino, &in)) || (rc = mn_writable(&in)))
		return rc;
	rc = mt_get(t, MT_XATTR, k, kl, &v);
	if (rc && rc != CAIRN_E_NOTFOUND)
		return rc;
	if (!rc && (flags & META_XATTR_CREATE))
		return cairn_errf(CAIRN_E_EXISTS, "xattr '%s' exists", name);
	if (rc && (flags & META_XATTR_REPLACE))
		return cairn_errf(CAIRN_E_NODATA, "xattr '%s' does not exist", name);
	uint8_t *buf = malloc(len + 1);
	if (!buf)
		return cairn_errf(CAIRN_E_NOMEM, "xattr value");
	buf[0] = META_REC_V1;
	if (len)
		memcpy(buf + 1, val, len);
	rc = mt_put(t, MT_XATTR, k, kl, buf, len + 1);
	free(buf);
	if (rc)
		return rc;
	mi_inode old = in;
	in.a.ctime_ns = t->now;
	return mi_inode_put(t, &old, &in);
}

int meta_xattr_get(meta_txn *t, uint64_t ino, const char *name, void *buf, size_t size,
		   size_t *len)
{
	uint8_t k[8 + META_XATTR_NAME_MAX];
	size_t kl;
	MDB_val v;
	int rc = mn_xattr_key(k, ino, name, &kl);
	if (rc)
		return rc;
	rc = mt_get(t, MT_XATTR, k, kl, &v);
	if (rc == CAIRN_E_NOTFOUND) {
		mi_inode in;
		if ((rc = mi_inode_get(t, ino, &in)))
			return rc;
		return cairn_errf(CAIRN_E_NODATA, "xattr '%s' does not exist", name);
	}
	if (rc || (rc = mr_version(&v, "xattr of inode", ino)))
		return rc;
	*len = v.mv_size - 1;
	if (size == 0)
		return 0;
	if (size < *len)
		return cairn_errf(CAIRN_E_RANGE, "xattr '%s' has %zu bytes, buffer %zu", name,
				  *len, size);
	memcpy(buf, (uint8_t *)v.mv_data + 1, *len);
	return 0;
}

int meta_xattr_list(meta_txn *t, uint64_t ino, char *buf, size_t size, size_t *len)
{
	mi_inode in;
	MDB_cursor *c;
	uint8_t kb[8];
	int rc = mi_inode_get(t, ino, &in);
	if (rc || (rc = mt_cursor(t, MT_XATTR, &c)))
		return rc;
	be64(kb, ino);
	MDB_val k = { 8, kb }, v;
	size_t n = 0;
	int err = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
	while (!err && k.mv_size > 8 && rbe64(k.mv_data) == ino) {
		size_t nl = k.mv_size - 8;
		if (size && n + nl + 1 > size) {
			rc = cairn_errf(CAIRN_E_RANGE, "xattr list of inode %llu needs more than %zu bytes",
					(unsigned long long)ino, size);
			break;
		}
		if (size) {
			memcpy(buf + n, (uint8_t *)k.mv_data + 8, nl);
			buf[n + nl] = 0;
		}
		n += nl + 1;
		err = mdb_cursor_get(c, &k, &v, MDB_NEXT);
	}
	mdb_cursor_close(c);
	*len = n;
	return rc;
}

int meta_xattr_remove(meta_txn *t, uint64_t ino, const char *name)
{
	uint8_t k[8 + META_XATTR_NAME_MAX];
	size_t kl;
	MDB_val v;
	mi_inode in;
	int rc;
	if ((rc = mt_need_write(t)) || (rc = mn_xattr_key(k, ino, name, &kl)))
		return rc;
	if ((rc = mi_inode_get(t, ino, &in)) || (rc = mn_writable(&in)))
		return rc;
	rc = mt_get(t, MT_XATTR, k, kl, &v);
	if (rc == CAIRN_E_NOTFOUND)
		return cairn_errf(CAIRN_E_NODATA, "xattr '%s' does not exist", name);
	if (rc || (rc = mt_del(t, MT_XATTR, k, kl)))
		return rc;
	mi_inode old = in;
	in.a.ctime_ns = t->now;
	return mi_inode_put(t, &old, &in);
}

int meta_statfs_get(meta_txn *t, meta_statfs *out)
{
	int rc;
	memset(out, 0, sizeof *out);
	if ((rc = mt_counter_get(t, MC_INODES, &out->inodes)) ||
	    (rc = mt_counter_get(t, MC_FILE_BYTES, &out->file_bytes)) ||
	    (rc = mt_counter_get(t, MC_STORED_BYTES, &out->stored_bytes)) ||
	    (rc = mt_counter_get(t, MC_SEGMENTS, &out->segments)) ||
	    (rc = mt_counter_get(t, MC_CHUNKS, &out->chunks)))
		return rc;
	out->last_lsn = __atomic_load_n(&t->m->last_lsn, __ATOMIC_RELAXED);
	return 0;
}
