/*
 * t_meta_ns.c - every namespace operation's success and error cases,
 * including the rename corner cases, readdir cookies under change, xattrs,
 * statfs, files unlinked while open, reopen, and schema versions.
 */
#include "t.h"
#include "meta_t.h"

static cairn_meta *m;
static const char *dir;

static void test_create_lookup(void)
{
	meta_attr a, b;
	CHECK_OK(w_create(m, META_ROOT_INO, "f", &a));
	CHECK(S_ISREG(a.mode) && a.nlink == 1 && a.size == 0 && a.ino > 1);
	CHECK_OK(r_lookup(m, META_ROOT_INO, "f", &b));
	CHECK(b.ino == a.ino);
	CHECK_RC(w_create(m, META_ROOT_INO, "f", NULL), CAIRN_E_EXISTS);
	CHECK_MSG("exists");
	CHECK_RC(r_lookup(m, META_ROOT_INO, "nope", NULL), CAIRN_E_NOTFOUND);
	CHECK_MSG("'nope' not found");
	CHECK_RC(r_lookup(m, a.ino, "x", NULL), CAIRN_E_NOTDIR);
	CHECK_RC(w_create(m, a.ino, "x", NULL), CAIRN_E_NOTDIR);
	CHECK_RC(w_create(m, 999999, "x", NULL), CAIRN_E_NOTFOUND);
	CHECK_MSG("inode 999999 does not exist");
	char longname[300];
	memset(longname, 'a', sizeof longname - 1);
	longname[299] = 0;
	CHECK_RC(w_create(m, META_ROOT_INO, longname, NULL), CAIRN_E_NAMETOOLONG);
	longname[255] = 0;
	CHECK_OK(w_create(m, META_ROOT_INO, longname, NULL));
	CHECK_RC(w_create(m, META_ROOT_INO, "", NULL), CAIRN_E_INVAL);
	CHECK_RC(w_create(m, META_ROOT_INO, ".", NULL), CAIRN_E_INVAL);
	CHECK_RC(w_create(m, META_ROOT_INO, "..", NULL), CAIRN_E_INVAL);
	CHECK_RC(w_create(m, META_ROOT_INO, "a/b", NULL), CAIRN_E_INVAL);
	CHECK_MSG("contains '/'");
	CHECK_OK(w_unlink(m, META_ROOT_INO, longname));
	CHECK_OK(w_unlink(m, META_ROOT_INO, "f"));
}

static void test_mkdir_rmdir(void)
{
	meta_attr d, root0, root1, s;
	CHECK_OK(r_getattr(m, META_ROOT_INO, &root0));
	CHECK_OK(w_mkdir(m, META_ROOT_INO, "d", &d));
	CHECK(S_ISDIR(d.mode) && d.nlink == 2);
	CHECK_OK(r_getattr(m, META_ROOT_INO, &root1));
	CHECK(root1.nlink == root0.nlink + 1);
	CHECK_OK(w_mkdir(m, d.ino, "sub", &s));
	CHECK_OK(r_getattr(m, d.ino, &d));
	CHECK(d.nlink == 3);
	CHECK_RC(w_rmdir(m, META_ROOT_INO, "d"), CAIRN_E_NOTEMPTY);
	CHECK_MSG("not empty");
	CHECK_RC(w_unlink(m, META_ROOT_INO, "d"), CAIRN_E_ISDIR);
	CHECK_OK(w_create(m, d.ino, "file", NULL));
	CHECK_RC(w_rmdir(m, d.ino, "file"), CAIRN_E_NOTDIR);
	CHECK_RC(w_rmdir(m, d.ino, "none"), CAIRN_E_NOTFOUND);
	CHECK_OK(w_unlink(m, d.ino, "file"));
	CHECK_OK(w_rmdir(m, d.ino, "sub"));
	CHECK_OK(w_rmdir(m, META_ROOT_INO, "d"));
	CHECK_RC(r_getattr(m, d.ino, &d), CAIRN_E_NOTFOUND);
	CHECK_OK(r_getattr(m, META_ROOT_INO, &root1));
	CHECK(root1.nlink == root0.nlink);
}

static void test_mknod_symlink(void)
{
	meta_attr a;
	char buf[64];
	size_t len;
	meta_txn *t;
	CHECK_OK(w_mknod(m, META_ROOT_INO, "fifo", S_IFIFO | 0600, 0, &a));
	CHECK(S_ISFIFO(a.mode));
	CHECK_OK(w_mknod(m, META_ROOT_INO, "chr", S_IFCHR | 0600, 0x0801, &a));
	CHECK(S_ISCHR(a.mode) && a.rdev == 0x0801);
	CHECK_RC(w_mknod(m, META_ROOT_INO, "bad", S_IFDIR | 0600, 0, NULL), CAIRN_E_INVAL);
	CHECK_MSG("mknod of file type");
	CHECK_OK(w_symlink(m, META_ROOT_INO, "sl", "target/path", &a));
	CHECK(S_ISLNK(a.mode) && a.size == 11);
	REQUIRE_OK(meta_read_begin(m, &t));
	CHECK_OK(meta_readlink(t, a.ino, buf, sizeof buf, &len));
	CHECK(len == 11 && !memcmp(buf, "target/path", 11));
	meta_attr f;
	CHECK_OK(meta_lookup(t, META_ROOT_INO, "fifo", &f));
	CHECK_RC(meta_readlink(t, f.ino, buf, sizeof buf, &len), CAIRN_E_INVAL);
	meta_read_end(t);
	char big[5000];
	memset(big, 'x', sizeof big - 1);
	big[4999] = 0;
	CHECK_RC(w_symlink(m, META_ROOT_INO, "big", big, NULL), CAIRN_E_NAMETOOLONG);
	CHECK_RC(w_symlink(m, META_ROOT_INO, "empty", "", NULL), CAIRN_E_INVAL);
	CHECK_OK(w_unlink(m, META_ROOT_INO, "fifo"));
	CHECK_OK(w_unlink(m, META_ROOT_INO, "chr"));
	CHECK_OK(w_unlink(m, META_ROOT_INO, "sl"));
}

static void test_link(void)
{
	meta_attr a, d, l;
	CHECK_OK(w_create(m, META_ROOT_INO, "lf", &a));
	CHECK_OK(w_mkdir(m, META_ROOT_INO, "ld", &d));
	CHECK_OK(w_link(m, a.ino, d.ino, "lf2", &l));
	CHECK(l.nlink == 2 && l.ino == a.ino);
	CHECK_RC(w_link(m, a.ino, d.ino, "lf2", NULL), CAIRN_E_EXISTS);
	CHECK_RC(w_link(m, d.ino, META_ROOT_INO, "dirlink", NULL), CAIRN_E_ISDIR);
	CHECK_RC(w_link(m, a.ino, a.ino, "x", NULL), CAIRN_E_NOTDIR);
	CHECK_OK(w_unlink(m, META_ROOT_INO, "lf"));
	CHECK_OK(r_getattr(m, a.ino, &l));
	CHECK(l.nlink == 1);
	CHECK_OK(w_unlink(m, d.ino, "lf2"));
	CHECK_RC(r_getattr(m, a.ino, &l), CAIRN_E_NOTFOUND);
	CHECK_OK(w_rmdir(m, META_ROOT_INO, "ld"));
}

static void test_setattr(void)
{
	meta_attr a, b;
	CHECK_OK(w_create(m, META_ROOT_INO, "sa", &a));
	meta_sattr sa = { .mask = META_SET_MODE | META_SET_UID | META_SET_GID | META_SET_ATIME |
				  META_SET_MTIME,
			  .mode = 0600 | S_IFDIR, .uid = 7, .gid = 8, .atime_ns = 1000,
			  .mtime_ns = 2000 };
	CHECK_OK(w_setattr(m, a.ino, &sa, &b));
	CHECK(b.mode == (S_IFREG | 0600) && b.uid == 7 && b.gid == 8);
	CHECK(b.atime_ns == 1000 && b.mtime_ns == 2000 && b.ctime_ns > 2000);
	CHECK_OK(w_truncate(m, a.ino, 12345));
	CHECK_OK(r_getattr(m, a.ino, &b));
	CHECK(b.size == 12345);
	CHECK_RC(w_truncate(m, META_ROOT_INO, 1), CAIRN_E_ISDIR);
	CHECK_RC(w_truncate(m, a.ino, 1ULL << 62), CAIRN_E_FBIG);
	meta_sattr bad = { .mask = 0x1000 };
	CHECK_RC(w_setattr(m, a.ino, &bad, NULL), CAIRN_E_INVAL);
	CHECK_RC(w_setattr(m, 424242, &sa, NULL), CAIRN_E_NOTFOUND);
	CHECK_OK(w_unlink(m, META_ROOT_INO, "sa"));
}

static void test_rename(void)
{
	meta_attr a, b, d1, d2, sub, x;
	CHECK_OK(w_mkdir(m, META_ROOT_INO, "r1", &d1));
	CHECK_OK(w_mkdir(m, META_ROOT_INO, "r2", &d2));
	CHECK_OK(w_create(m, d1.ino, "a", &a));
	CHECK_OK(w_create(m, d1.ino, "b", &b));
	/* plain move within and across directories */
	CHECK_OK(w_rename(m, d1.ino, "a", d1.ino, "a2", 0));
	CHECK_RC(r_lookup(m, d1.ino, "a", NULL), CAIRN_E_NOTFOUND);
	CHECK_OK(r_lookup(m, d1.ino, "a2", &x));
	CHECK(x.ino == a.ino);
	CHECK_OK(w_rename(m, d1.ino, "a2", d2.ino, "a", 0));
	CHECK_OK(r_lookup(m, d2.ino, "a", &x));
	CHECK(x.ino == a.ino);
	/* replace a file: the old target goes away */
	CHECK_OK(w_rename(m, d1.ino, "b", d2.ino, "a", 0));
	CHECK_RC(r_getattr(m, a.ino, &x), CAIRN_E_NOTFOUND);
	CHECK_OK(r_lookup(m, d2.ino, "a", &x));
	CHECK(x.ino == b.ino);
	/* same name: no-op */
	CHECK_OK(w_rename(m, d2.ino, "a", d2.ino, "a", 0));
	CHECK_OK(r_lookup(m, d2.ino, "a", &x));
	/* missing source */
	CHECK_RC(w_rename(m, d2.ino, "zz", d2.ino, "yy", 0), CAIRN_E_NOTFOUND);
	/* NOREPLACE */
	CHECK_OK(w_create(m, d2.ino, "c", &a));
	CHECK_RC(w_rename(m, d2.ino, "a", d2.ino, "c", META_RENAME_NOREPLACE), CAIRN_E_EXISTS);
	CHECK_OK(w_rename(m, d2.ino, "a", d2.ino, "n", META_RENAME_NOREPLACE));
	CHECK_RC(w_rename(m, d2.ino, "n", d2.ino, "c",
			  META_RENAME_NOREPLACE | META_RENAME_EXCHANGE), CAIRN_E_INVAL);
	/* EXCHANGE of two files */
	CHECK_OK(w_rename(m, d2.ino, "n", d2.ino, "c", META_RENAME_EXCHANGE));
	CHECK_OK(r_lookup(m, d2.ino, "c", &x));
	CHECK(x.ino == b.ino);
	CHECK_OK(r_lookup(m, d2.ino, "n", &x));
	CHECK(x.ino == a.ino);
	CHECK_RC(w_rename(m, d2.ino, "n", d2.ino, "none", META_RENAME_EXCHANGE),
		 CAIRN_E_NOTFOUND);
	/* directory corner cases */
	CHECK_OK(w_mkdir(m, d1.ino, "sub", &sub));
	CHECK_RC(w_rename(m, d2.ino, "c", d1.ino, "sub", 0), CAIRN_E_ISDIR);
	CHECK_RC(w_rename(m, d1.ino, "sub", d2.ino, "c", 0), CAIRN_E_NOTDIR);
	CHECK_RC(w_rename(m, META_ROOT_INO, "r1", sub.ino, "r1", 0), CAIRN_E_INVAL);
	CHECK_MSG("own subtree");
	CHECK_RC(w_rename(m, META_ROOT_INO, "r1", d1.ino, "self", 0), CAIRN_E_INVAL);
	meta_attr e;
	CHECK_OK(w_mkdir(m, d2.ino, "full", &e));
	CHECK_OK(w_create(m, e.ino, "inside", NULL));
	CHECK_RC(w_rename(m, d1.ino, "sub", d2.ino, "full", 0), CAIRN_E_NOTEMPTY);
	CHECK_OK(w_unlink(m, e.ino, "inside"));
	/* directory over an empty directory, across parents: nlinks */
	meta_attr p1, p2;
	CHECK_OK(w_rename(m, d1.ino, "sub", d2.ino, "full", 0));
	CHECK_RC(r_getattr(m, e.ino, &x), CAIRN_E_NOTFOUND);
	CHECK_OK(r_getattr(m, d1.ino, &p1));
	CHECK_OK(r_getattr(m, d2.ino, &p2));
	CHECK(p1.nlink == 2 && p2.nlink == 3);
	/* EXCHANGE a directory with a file across parents */
	CHECK_OK(w_create(m, d1.ino, "file", &a));
	CHECK_OK(w_rename(m, d1.ino, "file", d2.ino, "full", META_RENAME_EXCHANGE));
	CHECK_OK(r_getattr(m, d1.ino, &p1));
	CHECK_OK(r_getattr(m, d2.ino, &p2));
	CHECK(p1.nlink == 3 && p2.nlink == 2);
	CHECK_OK(r_lookup(m, d1.ino, "file", &x));
	CHECK(x.ino == sub.ino);
	/* EXCHANGE may not put a directory below itself */
	CHECK_RC(w_rename(m, META_ROOT_INO, "r1", d1.ino, "file", META_RENAME_EXCHANGE),
		 CAIRN_E_INVAL);
	/* rename between two hard links of one file: nothing happens */
	CHECK_OK(w_link(m, a.ino, d2.ino, "hl", NULL));
	CHECK_OK(w_rename(m, d2.ino, "full", d2.ino, "hl", 0));
	CHECK_OK(r_lookup(m, d2.ino, "full", &x));
	CHECK(x.nlink == 2);
	CHECK_RC(w_rename(m, d2.ino, "full", d2.ino, "x", 0x80), CAIRN_E_INVAL);
}

static void test_readdir(void)
{
	meta_attr d;
	t_ls l;
	char name[32];
	CHECK_OK(w_mkdir(m, META_ROOT_INO, "rd", &d));
	memset(&l, 0, sizeof l);
	CHECK_OK(r_readdir(m, d.ino, 0, &l));
	CHECK(l.n == 0);
	for (int i = 0; i < 20; i++) {
		snprintf(name, sizeof name, "e%02d", i);
		CHECK_OK(w_create(m, d.ino, name, NULL));
	}
	memset(&l, 0, sizeof l);
	l.stop_after = 7;
	CHECK_OK(r_readdir(m, d.ino, 0, &l));
	CHECK(l.n == 7);
	uint64_t cookie = l.last;
	/* change the directory between calls: remove seen and unseen entries,
	 * add new ones; entries present throughout appear exactly once */
	CHECK_OK(w_unlink(m, d.ino, "e02"));
	CHECK_OK(w_unlink(m, d.ino, "e15"));
	CHECK_OK(w_create(m, d.ino, "new1", NULL));
	CHECK_OK(w_rename(m, d.ino, "e03", d.ino, "e03b", 0));
	t_ls rest;
	memset(&rest, 0, sizeof rest);
	CHECK_OK(r_readdir(m, d.ino, cookie, &rest));
	CHECK(rest.n == 20 - 7 - 1 + 2);  /* -e15, +new1, +e03b */
	for (int i = 7; i < 20; i++) {
		snprintf(name, sizeof name, "e%02d:", i);
		if (i == 15)
			CHECK(!strstr(rest.buf, name));
		else
			CHECK(strstr(rest.buf, name) != NULL);
	}
	for (int i = 0; i < 7; i++) {
		snprintf(name, sizeof name, "e%02d:", i);
		CHECK(!strstr(rest.buf, name));
	}
	CHECK(strstr(rest.buf, "new1:") != NULL);
	meta_attr f;
	CHECK_OK(r_lookup(m, d.ino, "e00", &f));
	memset(&l, 0, sizeof l);
	CHECK_RC(r_readdir(m, f.ino, 0, &l), CAIRN_E_NOTDIR);
}

static void test_xattr(void)
{
	meta_attr a;
	meta_txn *t;
	char buf[128];
	size_t len;
	CHECK_OK(w_create(m, META_ROOT_INO, "xa", &a));
	CHECK_OK(w_xset(m, a.ino, "user.a", "hello", 5, 0));
	CHECK_RC(w_xset(m, a.ino, "user.a", "x", 1, META_XATTR_CREATE), CAIRN_E_EXISTS);
	CHECK_RC(w_xset(m, a.ino, "user.b", "x", 1, META_XATTR_REPLACE), CAIRN_E_NODATA);
	CHECK_OK(w_xset(m, a.ino, "user.a", "world!", 6, META_XATTR_REPLACE));
	CHECK_OK(w_xset(m, a.ino, "user.b", "", 0, META_XATTR_CREATE));
	CHECK_RC(w_xset(m, a.ino, "user.c", "", 0, 4), CAIRN_E_INVAL);
	void *big = calloc(1, META_XATTR_SIZE_MAX + 1);
	CHECK_RC(w_xset(m, a.ino, "user.big", big, META_XATTR_SIZE_MAX + 1, 0), CAIRN_E_RANGE);
	CHECK_MSG("limit");
	CHECK_OK(w_xset(m, a.ino, "user.big", big, META_XATTR_SIZE_MAX, 0));
	free(big);
	char lname[300];
	memset(lname, 'n', 299);
	lname[299] = 0;
	CHECK_RC(w_xset(m, a.ino, lname, "", 0, 0), CAIRN_E_NAMETOOLONG);
	REQUIRE_OK(meta_read_begin(m, &t));
	CHECK_OK(meta_xattr_get(t, a.ino, "user.a", buf, sizeof buf, &len));
	CHECK(len == 6 && !memcmp(buf, "world!", 6));
	CHECK_OK(meta_xattr_get(t, a.ino, "user.a", NULL, 0, &len));
	CHECK(len == 6);
	CHECK_RC(meta_xattr_get(t, a.ino, "user.a", buf, 3, &len), CAIRN_E_RANGE);
	CHECK_RC(meta_xattr_get(t, a.ino, "user.zz", buf, sizeof buf, &len), CAIRN_E_NODATA);
	CHECK_OK(meta_xattr_list(t, a.ino, buf, sizeof buf, &len));
	CHECK(len == strlen("user.a") + 1 + strlen("user.b") + 1 + strlen("user.big") + 1);
	CHECK(!strcmp(buf, "user.a"));
	CHECK_OK(meta_xattr_list(t, a.ino, NULL, 0, &len));
	CHECK_RC(meta_xattr_list(t, a.ino, buf, 4, &len), CAIRN_E_RANGE);
	meta_read_end(t);
	CHECK_OK(w_xrm(m, a.ino, "user.a"));
	CHECK_RC(w_xrm(m, a.ino, "user.a"), CAIRN_E_NODATA);
	CHECK_OK(w_unlink(m, META_ROOT_INO, "xa"));
}

static void test_open_unlinked(void)
{
	meta_attr a, x;
	meta_statfs s0, s1;
	meta_txn *t;
	REQUIRE_OK(meta_read_begin(m, &t));
	CHECK_OK(meta_statfs_get(t, &s0));
	meta_read_end(t);
	CHECK_OK(w_create(m, META_ROOT_INO, "open", &a));
	CHECK_OK(w_truncate(m, a.ino, 100));
	CHECK_OK(meta_ino_open(m, a.ino));
	CHECK_OK(meta_ino_open(m, a.ino));
	CHECK_OK(w_unlink(m, META_ROOT_INO, "open"));
	CHECK_RC(r_lookup(m, META_ROOT_INO, "open", NULL), CAIRN_E_NOTFOUND);
	CHECK_OK(r_getattr(m, a.ino, &x));
	CHECK(x.nlink == 0 && x.size == 100);
	CHECK_RC(w_link(m, a.ino, META_ROOT_INO, "back", NULL), CAIRN_E_NOTFOUND);
	CHECK_OK(meta_ino_close(m, a.ino));
	CHECK_OK(r_getattr(m, a.ino, &x));
	CHECK_OK(meta_ino_close(m, a.ino));
	CHECK_RC(r_getattr(m, a.ino, &x), CAIRN_E_NOTFOUND);
	CHECK_RC(meta_ino_close(m, a.ino), CAIRN_E_BADF);
	REQUIRE_OK(meta_read_begin(m, &t));
	CHECK_OK(meta_statfs_get(t, &s1));
	meta_read_end(t);
	CHECK(s1.inodes == s0.inodes && s1.file_bytes == s0.file_bytes);
	/* kept open across a "crash": freed at the next open */
	CHECK_OK(w_create(m, META_ROOT_INO, "open2", &a));
	CHECK_OK(meta_ino_open(m, a.ino));
	CHECK_OK(w_unlink(m, META_ROOT_INO, "open2"));
	CHECK_OK(meta_close(m));
	meta_opts o = t_opts();
	REQUIRE_OK(meta_open(dir, &o, &m));
	CHECK_RC(r_getattr(m, a.ino, &x), CAIRN_E_NOTFOUND);
}

static void test_statfs_reopen(void)
{
	meta_txn *t;
	meta_statfs s;
	meta_attr a;
	REQUIRE_OK(meta_read_begin(m, &t));
	CHECK_OK(meta_statfs_get(t, &s));
	meta_read_end(t);
	CHECK(s.inodes > 1 && s.last_lsn > 1);
	CHECK_OK(w_create(m, META_ROOT_INO, "persist", &a));
	mt_dur = META_SYNCED;
	CHECK_OK(w_truncate(m, a.ino, 77));
	mt_dur = META_RELAXED;
	CHECK_OK(meta_close(m));
	meta_opts o = t_opts();
	cairn_meta *m2;
	CHECK_RC(meta_open("/nonexistent/dir/x", &o, &m2), CAIRN_E_NOTFOUND);
	REQUIRE_OK(meta_open(dir, &o, &m));
	CHECK_RC(meta_open(dir, &o, &m2), CAIRN_E_BUSY);
	CHECK_MSG("open in another process");
	meta_attr b;
	CHECK_OK(r_lookup(m, META_ROOT_INO, "persist", &b));
	CHECK(b.ino == a.ino && b.size == 77);
	CHECK_RC(meta_write(m, (meta_durability)7, 0, t_op_fn, NULL, NULL), CAIRN_E_INVAL);
}

int main(void)
{
	dir = t_tmpdir("meta_ns");
	meta_opts o = t_opts();
	REQUIRE_OK(meta_open(dir, &o, &m));
	meta_attr root;
	CHECK_OK(r_getattr(m, META_ROOT_INO, &root));
	CHECK(S_ISDIR(root.mode) && root.nlink == 2);
	test_create_lookup();
	test_mkdir_rmdir();
	test_mknod_symlink();
	test_link();
	test_setattr();
	test_rename();
	test_readdir();
	test_xattr();
	test_open_unlinked();
	test_statfs_reopen();
	meta_fsck_result fr;
	CHECK_OK(meta_fsck(m, 0, stderr, &fr));
	CHECK(fr.problems == 0);
	CHECK_OK(meta_close(m));
	t_rmtree(dir);
	return t_done();
}
