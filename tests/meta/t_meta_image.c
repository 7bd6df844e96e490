/*
 * t_meta_image.c - images of the metadata environment (meta_image.c):
 * meta_image_write of a namespace with files, extents, a snapshot and a
 * clone; meta_image_install into a new directory, opened as a replica
 * (digest equal to the source's at the image LSN, then the source's later
 * records applied: equal again) and as a writer (LSNs go on at the image's
 * + 1, no consumer survives); clear errors for existing targets and for
 * files that are not images; meta_replica_load of a later state into a
 * replica while an older reader still sees the old namespace.
 */
#include <fcntl.h>
#include <unistd.h>

#include "t.h"
#include "meta_t.h"
#include "meta_int.h"

typedef struct fwd { cairn_meta *r; int rc; uint64_t upto, n; } fwd;
static int fwd_cb(uint64_t lsn, const void *rec, size_t len, void *arg)
{
	fwd *f = arg;
	if (f->upto && lsn > f->upto)
		return 1;
	f->rc = meta_wal_apply(f->r, rec, len);
	f->n++;
	return f->rc;
}

/* apply w's records from..upto (0: all) to r */
static uint64_t forward(cairn_meta *w, cairn_meta *r, uint64_t from, uint64_t upto)
{
	fwd f = { r, 0, upto, 0 };
	CHECK_OK(meta_wal_read(w, from, fwd_cb, &f));
	CHECK_OK(f.rc);
	return f.n;
}

static int same_digest(cairn_meta *a, cairn_meta *b)
{
	uint8_t d1[32], d2[32];
	if (meta_digest(a, d1) || meta_digest(b, d2))
		return 0;
	return !memcmp(d1, d2, 32);
}

static uint64_t last_lsn(cairn_meta *m)
{
	uint64_t f, l;
	REQUIRE_OK(meta_wal_bounds(m, &f, &l));
	return l;
}

static int exists(const char *dir, const char *name)
{
	char p[700];
	struct stat st;
	snprintf(p, sizeof p, "%s/%s", dir, name);
	return stat(p, &st) == 0;
}

/* files, a segment with chunks, extents, a snapshot and a clone */
static void build_ns(cairn_meta *w, const char *tag)
{
	char name[64];
	meta_attr d, f;
	uint64_t seg, ch[3];
	snprintf(name, sizeof name, "dir-%s", tag);
	REQUIRE_OK(w_mkdir(w, META_ROOT_INO, name, &d));
	REQUIRE_OK(w_seg_new(w, &seg));
	for (int i = 0; i < 3; i++)
		REQUIRE_OK(w_chunk(w, seg, (uint64_t)i * 4096, 4096, (uint8_t)(tag[0] + i), &ch[i]));
	for (int i = 0; i < 4; i++) {
		snprintf(name, sizeof name, "f%d", i);
		REQUIRE_OK(w_create(w, d.ino, name, &f));
		REQUIRE_OK(w_extw(w, f.ino, 0, 4096, ch[i % 3], 0));
		REQUIRE_OK(w_extw(w, f.ino, 8192, 1000, ch[(i + 1) % 3], 10));
		REQUIRE_OK(w_xset(w, f.ino, "user.tag", tag, strlen(tag), 0));
	}
	REQUIRE_OK(w_symlink(w, d.ino, "ln", "f0", NULL));
	snprintf(name, sizeof name, "snap-%s", tag);
	REQUIRE_OK(w_snap(w, d.ino, name, NULL));
	snprintf(name, sizeof name, "clone-%s", tag);
	REQUIRE_OK(w_clone(w, d.ino, META_ROOT_INO, name, NULL));
}

static int has_consumer(cairn_meta *m, const char *name)
{
	meta_txn *t;
	char key[64];
	int n = snprintf(key, sizeof key, "consumer:%s", name);
	MDB_val k = { (size_t)n, key }, v;
	REQUIRE_OK(meta_read_begin(m, &t));
	int found = mdb_get(t->txn, m->dbi[MT_LOCAL], &k, &v) == 0;
	meta_read_end(t);
	return found;
}

static void test_image(const char *base)
{
	char wdir[600], idir[600], i2dir[600], img[600], img2[600], junk[600];
	cairn_meta *w, *r;
	snprintf(wdir, sizeof wdir, "%s/w", base);
	snprintf(idir, sizeof idir, "%s/inst", base);
	snprintf(i2dir, sizeof i2dir, "%s/inst2", base);
	snprintf(img, sizeof img, "%s/a.mdb", base);
	snprintf(img2, sizeof img2, "%s/b.mdb", base);
	snprintf(junk, sizeof junk, "%s/junk.mdb", base);
	REQUIRE(mkdir(wdir, 0755) == 0);
	meta_opts o = t_opts();
	o.wal_keep = 1000000;
	REQUIRE_OK(meta_open(wdir, &o, &w));
	build_ns(w, "a");
	REQUIRE_OK(meta_wal_consumer_set(w, "ship", 2));
	uint8_t dw[32], dr[32];
	REQUIRE_OK(meta_digest(w, dw));
	uint64_t lsn = 0, l1 = last_lsn(w);
	CHECK_OK(meta_image_write(w, img, &lsn));
	CHECK(lsn == l1);
	uint64_t lsn2 = 0;
	CHECK_OK(meta_image_lsn(img, &lsn2));
	CHECK(lsn2 == lsn);
	CHECK_RC(meta_image_write(w, img, &lsn2), CAIRN_E_EXISTS);
	CHECK(exists(base, "a.mdb"));  /* a refused write leaves the old file */

	/* files that are not images */
	CHECK_RC(meta_image_lsn(junk, &lsn2), CAIRN_E_NOTFOUND);
	int fd = open(junk, O_WRONLY | O_CREAT | O_EXCL, 0644);
	REQUIRE(fd >= 0);
	char zeros[16384];
	memset(zeros, 0x5a, sizeof zeros);
	REQUIRE(write(fd, zeros, sizeof zeros) == (ssize_t)sizeof zeros);
	close(fd);
	CHECK_RC(meta_image_lsn(junk, &lsn2), CAIRN_E_CORRUPT);
	CHECK_MSG("junk.mdb");
	CHECK_RC(meta_image_install(junk, i2dir), CAIRN_E_CORRUPT);
	CHECK(exists(base, "junk.mdb") && !exists(i2dir, "data.mdb"));
	CHECK_RC(meta_image_lsn(wdir, &lsn2), CAIRN_E_INVAL);

	/* install, open as replica: the source's state at the image LSN */
	CHECK_OK(meta_image_install(img, idir));
	CHECK(!exists(base, "a.mdb") && exists(idir, "data.mdb"));
	CHECK(!exists(idir, "meta.synced") && !exists(idir, "meta.undo.0"));
	meta_opts ro = t_opts();
	ro.replica = 1;
	REQUIRE_OK(meta_open(idir, &ro, &r));
	REQUIRE_OK(meta_digest(r, dr));
	CHECK(!memcmp(dw, dr, 32));
	uint64_t f, l;
	CHECK_OK(meta_wal_bounds(r, &f, &l));
	CHECK(f == 0 && l == lsn);
	CHECK(!has_consumer(r, "ship"));
	meta_attr a;
	CHECK_OK(r_lookup(r, META_ROOT_INO, "clone-a", &a));
	/* the source goes on; the replica follows from lsn + 1 */
	build_ns(w, "b");
	meta_attr x;
	REQUIRE_OK(r_lookup(w, META_ROOT_INO, "dir-a", &x));
	REQUIRE_OK(w_unlink(w, x.ino, "f1"));
	CHECK(forward(w, r, lsn + 1, 0) == last_lsn(w) - lsn);
	CHECK(same_digest(w, r));
	CHECK(last_lsn(r) == last_lsn(w));
	/* a replica's own records are the source's */
	CHECK_OK(meta_close(r));
	REQUIRE_OK(meta_open(idir, &ro, &r));
	CHECK(same_digest(w, r));
	CHECK_OK(meta_close(r));

	/* a directory that holds an environment is refused */
	uint64_t lb;
	CHECK_OK(meta_image_write(w, img2, &lb));
	CHECK_RC(meta_image_install(img2, idir), CAIRN_E_EXISTS);
	CHECK_RC(meta_image_install(img2, wdir), CAIRN_E_EXISTS);
	CHECK(exists(base, "b.mdb"));

	/* install and open as the writer: LSNs go on at image + 1 */
	REQUIRE_OK(meta_digest(w, dw));
	CHECK_OK(meta_image_install(img2, i2dir));
	cairn_meta *w2;
	REQUIRE_OK(meta_open(i2dir, &o, &w2));
	REQUIRE_OK(meta_digest(w2, dr));
	CHECK(!memcmp(dw, dr, 32));
	CHECK(last_lsn(w2) == lb);
	uint64_t nl = 0;
	t_op op = { .kind = TO_MKDIR, .a = META_ROOT_INO, .s1 = "after", .mode = 0755 };
	CHECK_OK(meta_write(w2, META_SYNCED, META_OP_MKDIR, t_op_fn, &op, &nl));
	CHECK(nl == lb + 1);
	/* the same record on the old writer: the two agree again */
	uint64_t ol = 0;
	t_op op2 = op;
	CHECK_OK(meta_write(w, META_SYNCED, META_OP_MKDIR, t_op_fn, &op2, &ol));
	CHECK(ol == nl);
	CHECK(!has_consumer(w2, "ship") && has_consumer(w, "ship"));
	meta_fsck_result fr;
	CHECK_OK(meta_fsck(w2, 0, stderr, &fr));
	CHECK(fr.problems == 0);
	CHECK_OK(meta_close(w2));

	/* install across file systems (copy, then the source is removed) */
	struct stat sb, ss;
	char shm[600], i3dir[600];
	snprintf(shm, sizeof shm, "/dev/shm/meta_image.%d.mdb", (int)getpid());
	snprintf(i3dir, sizeof i3dir, "%s/inst3", base);
	if (stat("/dev/shm", &ss) == 0 && stat(base, &sb) == 0 && ss.st_dev != sb.st_dev) {
		uint64_t lc;
		REQUIRE_OK(meta_digest(w, dw));
		CHECK_OK(meta_image_write(w, shm, &lc));
		CHECK_OK(meta_image_install(shm, i3dir));
		CHECK(access(shm, F_OK) != 0 && !exists(i3dir, "data.mdb.install"));
		REQUIRE_OK(meta_open(i3dir, &ro, &r));
		REQUIRE_OK(meta_digest(r, dr));
		CHECK(!memcmp(dw, dr, 32) && last_lsn(r) == lc);
		CHECK_OK(meta_close(r));
		unlink(shm);
	} else {
		printf("note: /dev/shm is on the same file system; cross-fs install not run\n");
	}
	CHECK_OK(meta_close(w));
}

static void test_replica_load(const char *base)
{
	char wdir[600], rdir[600], img[600];
	cairn_meta *w, *r;
	snprintf(wdir, sizeof wdir, "%s/lw", base);
	snprintf(rdir, sizeof rdir, "%s/lr", base);
	snprintf(img, sizeof img, "%s/l.mdb", base);
	REQUIRE(mkdir(wdir, 0755) == 0 && mkdir(rdir, 0755) == 0);
	meta_opts o = t_opts();
	o.wal_keep = 1000000;
	meta_opts ro = t_opts();
	ro.replica = 1;
	REQUIRE_OK(meta_open(wdir, &o, &w));
	REQUIRE_OK(meta_open(rdir, &ro, &r));
	/* state A on both */
	build_ns(w, "a");
	REQUIRE_OK(w_create(w, META_ROOT_INO, "old", NULL));
	uint64_t la = last_lsn(w);
	forward(w, r, 1, 0);
	CHECK(same_digest(w, r));
	/* a later state B on the writer only */
	REQUIRE_OK(w_unlink(w, META_ROOT_INO, "old"));
	REQUIRE_OK(w_create(w, META_ROOT_INO, "new", NULL));
	build_ns(w, "b");
	uint8_t dw[32], dr[32];
	REQUIRE_OK(meta_digest(w, dw));
	uint64_t lb;
	REQUIRE_OK(meta_image_write(w, img, &lb));
	CHECK(lb > la);
	CHECK_RC(meta_replica_load(w, img), CAIRN_E_INVAL);

	/* a reader opened before the load keeps the old namespace */
	meta_txn *old;
	meta_attr a;
	REQUIRE_OK(meta_read_begin(r, &old));
	CHECK_OK(meta_replica_load(r, img));
	CHECK_OK(meta_lookup(old, META_ROOT_INO, "old", &a));
	CHECK_RC(meta_lookup(old, META_ROOT_INO, "new", &a), CAIRN_E_NOTFOUND);
	CHECK_RC(meta_lookup(old, META_ROOT_INO, "dir-b", &a), CAIRN_E_NOTFOUND);
	meta_read_end(old);
	CHECK_RC(r_lookup(r, META_ROOT_INO, "old", &a), CAIRN_E_NOTFOUND);
	CHECK_OK(r_lookup(r, META_ROOT_INO, "new", &a));
	REQUIRE_OK(meta_digest(r, dr));
	CHECK(!memcmp(dw, dr, 32));
	uint64_t f, l;
	CHECK_OK(meta_wal_bounds(r, &f, &l));
	CHECK(f == 0 && l == lb);
	/* the image file stays (the follower may keep it) and the replica
	 * follows the writer from lb + 1 */
	CHECK(exists(base, "l.mdb"));
	REQUIRE_OK(w_mkdir(w, META_ROOT_INO, "later", NULL));
	build_ns(w, "c");
	CHECK(forward(w, r, lb + 1, 0) == last_lsn(w) - lb);
	CHECK(same_digest(w, r));
	uint64_t lr = last_lsn(r);
	CHECK(lr == last_lsn(w));
	/* a bad image changes nothing */
	char junk[600];
	snprintf(junk, sizeof junk, "%s/lj.mdb", base);
	FILE *fp = fopen(junk, "wb");
	REQUIRE(fp && fputs("not an image", fp) >= 0 && fclose(fp) == 0);
	CHECK_RC(meta_replica_load(r, junk), CAIRN_E_CORRUPT);
	CHECK(same_digest(w, r));
	/* survives a reopen */
	CHECK_OK(meta_close(r));
	REQUIRE_OK(meta_open(rdir, &ro, &r));
	CHECK(same_digest(w, r) && last_lsn(r) == lr);
	CHECK_OK(meta_close(r));
	CHECK_OK(meta_close(w));
}

int main(void)
{
	const char *base = t_tmpdir("meta_image");
	char b[600];
	snprintf(b, sizeof b, "%s", base);
	test_image(b);
	test_replica_load(b);
	int rc = t_done();
	if (!rc)
		t_rmtree(b);
	return rc;
}
