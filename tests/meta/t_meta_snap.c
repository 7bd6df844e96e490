/*
 * t_meta_snap.c - snapshots and clones: a snapshot is a read-only
 * point-in-time copy (every change refused with CAIRN_E_ROFS), a clone is a
 * writable copy of a tree or snapshot; neither copies data (chunk refs do
 * not move when a snapshot is taken: extent maps are shared), writes after
 * the copy are copy-on-write, hard links and xattrs are preserved, and
 * reference accounting stays exact through overwrite and delete (fsck).
 */
#include "t.h"
#include "meta_t.h"

static cairn_meta *m;

static uint64_t refs(uint64_t chunk)
{
	meta_chunk c;
	return r_chunk(m, chunk, &c) ? 0 : c.refs;
}

static void fsck_clean(void)
{
	meta_fsck_result r;
	CHECK_OK(meta_fsck(m, 0, stderr, &r));
	CHECK(r.problems == 0);
}

static int snap_cb(const meta_snap *s, void *arg)
{
	if (!strcmp(s->name, "s1") && s->entries == 5)
		(*(int *)arg)++;
	return 0;
}

int main(void)
{
	const char *dir = t_tmpdir("meta_snap");
	meta_opts o = t_opts();
	REQUIRE_OK(meta_open(dir, &o, &m));
	meta_attr top, sub, f, g, sl, a, b;
	uint64_t seg, c1, c2;
	REQUIRE_OK(w_seg_new(m, &seg));
	REQUIRE_OK(w_chunk(m, seg, 0, 1000, 1, &c1));
	REQUIRE_OK(w_chunk(m, seg, 1000, 1000, 2, &c2));
	REQUIRE_OK(w_mkdir(m, META_ROOT_INO, "ckpt", &top));
	REQUIRE_OK(w_mkdir(m, top.ino, "sub", &sub));
	REQUIRE_OK(w_create(m, top.ino, "f", &f));
	REQUIRE_OK(w_create(m, sub.ino, "g", &g));
	REQUIRE_OK(w_link(m, g.ino, top.ino, "g-link", NULL));
	REQUIRE_OK(w_link(m, g.ino, META_ROOT_INO, "outside", NULL));  /* link from outside */
	REQUIRE_OK(w_symlink(m, sub.ino, "sl", "../f", &sl));
	REQUIRE_OK(w_extw(m, f.ino, 0, 1000, c1, 0));
	REQUIRE_OK(w_extw(m, g.ino, 0, 500, c2, 0));
	REQUIRE_OK(w_extw(m, g.ino, 500, 500, c2, 500));
	REQUIRE_OK(w_xset(m, f.ino, "user.tag", "v1", 2, 0));
	CHECK(refs(c1) == 1 && refs(c2) == 2);

	meta_snap s;
	CHECK_OK(w_snap(m, top.ino, "s1", &s));
	CHECK(s.entries == 5 && s.root > 0 && s.src == top.ino);
	/* no data reference moved: the extent maps are shared */
	CHECK(refs(c1) == 1 && refs(c2) == 2);
	CHECK_RC(w_snap(m, top.ino, "s1", NULL), CAIRN_E_EXISTS);
	CHECK_RC(w_snap(m, f.ino, "s2", NULL), CAIRN_E_NOTDIR);
	CHECK_RC(w_snap(m, top.ino, "", NULL), CAIRN_E_INVAL);
	fsck_clean();

	/* the snapshot's view */
	CHECK_OK(r_getattr(m, s.root, &a));
	CHECK(S_ISDIR(a.mode) && (a.flags & META_INO_F_RDONLY) && a.nlink == 3);
	meta_attr sf, sg, sg2, ssub;
	CHECK_OK(r_lookup(m, s.root, "f", &sf));
	CHECK(sf.ino != f.ino && sf.size == 1000 && (sf.flags & META_INO_F_RDONLY));
	CHECK_OK(r_lookup(m, s.root, "sub", &ssub));
	CHECK_OK(r_lookup(m, ssub.ino, "g", &sg));
	CHECK_OK(r_lookup(m, s.root, "g-link", &sg2));
	CHECK(sg.ino == sg2.ino && sg.nlink == 2);  /* links inside the tree only */
	meta_txn *t;
	char buf[16];
	size_t len;
	REQUIRE_OK(meta_read_begin(m, &t));
	CHECK_OK(meta_xattr_get(t, sf.ino, "user.tag", buf, sizeof buf, &len));
	CHECK(len == 2 && !memcmp(buf, "v1", 2));
	meta_attr ssl;
	CHECK_OK(meta_lookup(t, ssub.ino, "sl", &ssl));
	CHECK_OK(meta_readlink(t, ssl.ino, buf, sizeof buf, &len));
	CHECK(len == 4 && !memcmp(buf, "../f", 4));
	meta_snap got;
	CHECK_OK(meta_snapshot_get(t, "s1", &got));
	CHECK(got.root == s.root && got.entries == 5);
	CHECK_RC(meta_snapshot_get(t, "nope", &got), CAIRN_E_NOTFOUND);
	int nsnaps = 0;
	CHECK_OK(meta_snapshot_list(t, snap_cb, &nsnaps));
	CHECK(nsnaps == 1);
	meta_read_end(t);

	/* read-only: every change is refused */
	CHECK_RC(w_create(m, s.root, "new", NULL), CAIRN_E_ROFS);
	CHECK_MSG("belongs to a snapshot");
	CHECK_RC(w_unlink(m, s.root, "f"), CAIRN_E_ROFS);
	CHECK_RC(w_rmdir(m, s.root, "sub"), CAIRN_E_ROFS);
	CHECK_RC(w_truncate(m, sf.ino, 0), CAIRN_E_ROFS);
	CHECK_RC(w_extw(m, sf.ino, 0, 10, c2, 0), CAIRN_E_ROFS);
	CHECK_RC(w_xset(m, sf.ino, "user.x", "", 0, 0), CAIRN_E_ROFS);
	CHECK_RC(w_rename(m, top.ino, "f", s.root, "moved", 0), CAIRN_E_ROFS);
	CHECK_RC(w_rename(m, s.root, "f", top.ino, "moved", 0), CAIRN_E_ROFS);
	CHECK_RC(w_link(m, f.ino, s.root, "l", NULL), CAIRN_E_ROFS);
	CHECK_RC(w_link(m, sf.ino, top.ino, "l", NULL), CAIRN_E_ROFS);

	/* copy-on-write: overwrite the live file, the snapshot keeps c1 */
	CHECK_OK(w_extw(m, f.ino, 0, 1000, c2, 0));
	CHECK(refs(c1) == 1 && refs(c2) == 3);
	meta_extent e[4];
	size_t n;
	CHECK_OK(r_extents(m, sf.ino, 0, 1000, e, 4, &n));
	CHECK(n == 1 && e[0].chunk == c1);
	CHECK_OK(r_extents(m, f.ino, 0, 1000, e, 4, &n));
	CHECK(n == 1 && e[0].chunk == c2);
	/* truncating the shared g (through its live name) copies its map */
	CHECK_OK(w_truncate(m, g.ino, 100));
	CHECK(refs(c2) == 2 + 2);  /* f's one, g's trimmed one, snapshot g's two */
	CHECK_OK(r_getattr(m, sg.ino, &a));
	CHECK(a.size == 1000);
	fsck_clean();

	/* a clone of the snapshot is writable and independent */
	meta_attr cl;
	CHECK_OK(w_clone(m, s.root, META_ROOT_INO, "finetune", &cl));
	CHECK(!(cl.flags & META_INO_F_RDONLY) && S_ISDIR(cl.mode));
	CHECK_RC(w_clone(m, s.root, META_ROOT_INO, "finetune", NULL), CAIRN_E_EXISTS);
	CHECK_RC(w_clone(m, top.ino, s.root, "x", NULL), CAIRN_E_ROFS);
	meta_attr cf;
	CHECK_OK(r_lookup(m, cl.ino, "f", &cf));
	CHECK(!(cf.flags & META_INO_F_RDONLY));
	CHECK_OK(w_extw(m, cf.ino, 0, 10, c2, 0));
	CHECK_OK(r_extents(m, sf.ino, 0, 1000, e, 4, &n));
	CHECK(n == 1 && e[0].chunk == c1);
	CHECK_OK(w_create(m, cl.ino, "new", NULL));
	CHECK_OK(r_getattr(m, META_ROOT_INO, &b));
	/* a clone of a single file */
	meta_attr one;
	CHECK_OK(w_clone(m, g.ino, META_ROOT_INO, "g-copy", &one));
	CHECK(one.nlink == 1 && one.size == 100);
	fsck_clean();

	/* delete everything live: the snapshot alone keeps the chunks */
	meta_snap s2;
	CHECK_OK(w_snap(m, META_ROOT_INO, "whole", &s2));
	CHECK_OK(w_snapdel(m, "whole"));
	CHECK_RC(w_snapdel(m, "whole"), CAIRN_E_NOTFOUND);
	CHECK_OK(w_unlink(m, top.ino, "f"));
	CHECK_OK(w_unlink(m, sub.ino, "g"));
	CHECK_OK(w_unlink(m, top.ino, "g-link"));
	CHECK_OK(w_unlink(m, META_ROOT_INO, "outside"));
	CHECK_OK(w_unlink(m, META_ROOT_INO, "g-copy"));
	CHECK(refs(c1) == 2 && refs(c2) > 0);  /* snapshot f + clone f (tail) */
	fsck_clean();
	/* drop the clone and the snapshot: every reference goes away */
	CHECK_OK(w_unlink(m, cl.ino, "new"));
	CHECK_OK(w_unlink(m, cl.ino, "f"));
	CHECK_OK(w_unlink(m, cl.ino, "g-link"));
	CHECK_OK(r_lookup(m, cl.ino, "sub", &a));
	CHECK_OK(w_unlink(m, a.ino, "g"));
	CHECK_OK(w_unlink(m, a.ino, "sl"));
	CHECK_OK(w_rmdir(m, cl.ino, "sub"));
	CHECK_OK(w_rmdir(m, META_ROOT_INO, "finetune"));
	CHECK_OK(w_snapdel(m, "s1"));
	CHECK(refs(c1) == 0 && refs(c2) == 0);
	meta_seg sg_;
	CHECK_OK(r_seg(m, seg, &sg_));
	CHECK(sg_.live_bytes == 0 && sg_.nchunks == 0);
	fsck_clean();
	CHECK_OK(meta_close(m));
	t_rmtree(dir);
	return t_done();
}
