/*
 * t_meta_fsck.c - fsck finds each kind of damage, with a readable line,
 * and its repairs leave a clean environment; records of an unknown version
 * are refused with a clear error.  Damage is done through the engine's
 * internal logged put/delete (meta_int.h).
 */
#include "t.h"
#include "meta_t.h"
#include "meta_int.h"

static cairn_meta *m;

typedef struct dmg {
	int kind;
	uint64_t a, b;
} dmg;

enum { D_NLINK, D_DELINODE, D_CHUNKREFS, D_SEGLIVE, D_COUNTER, D_SIZE, D_UNLINKED, D_OVERLAP,
       D_BADVER, D_EMAPREFS };

static int damage_fn(meta_txn *t, void *arg)
{
	dmg *d = arg;
	mi_inode in;
	uint8_t k[16];
	int rc;
	switch (d->kind) {
	case D_NLINK:
	case D_SIZE:
		if ((rc = mi_inode_get(t, d->a, &in)))
			return rc;
		if (d->kind == D_NLINK)
			in.a.nlink = (uint32_t)d->b;
		else
			in.a.size = d->b;
		return mi_inode_put_raw(t, &in);
	case D_DELINODE:
		be64(k, d->a);
		return mt_del(t, MT_INODE, k, 8);
	case D_CHUNKREFS: {
		meta_chunk c;
		if ((rc = mch_get(t, d->a, &c)))
			return rc;
		c.refs = d->b;
		return mch_put(t, &c);
	}
	case D_SEGLIVE: {
		meta_seg s;
		if ((rc = ms_get(t, d->a, &s)))
			return rc;
		s.live_bytes = d->b;
		return ms_put(t, &s);
	}
	case D_COUNTER: {
		uint8_t id = (uint8_t)d->a, v[8];
		le64(v, d->b);
		return mt_put(t, MT_COUNTER, &id, 1, v, 8);
	}
	case D_UNLINKED: {
		/* drop the entry (both indexes) but keep the inode */
		uint64_t ino, cookie;
		uint32_t type;
		MDB_val v;
		uint8_t dk[8 + 8];
		size_t kl = md_key(dk, META_ROOT_INO, "u", 1);
		if ((rc = mt_get(t, MT_DIRENT, dk, kl, &v)) || (rc = md_dec(&v, &ino, &type, &cookie)))
			return rc;
		if ((rc = mt_del(t, MT_DIRENT, dk, kl)))
			return rc;
		be64(k, META_ROOT_INO);
		be64(k + 8, cookie);
		return mt_del(t, MT_DCOOKIE, k, 16);
	}
	case D_OVERLAP: {
		/* an extent at d->b that overlaps the one at 0 in emap of inode a */
		meta_extent e = { 0, 100, 0, 0 };
		uint8_t v[ME_VLEN];
		if ((rc = mi_inode_get(t, d->a, &in)))
			return rc;
		MDB_val ev;
		be64(k, in.emap);
		be64(k + 8, 0);
		if ((rc = mt_get(t, MT_EXTENT, k, 16, &ev)) || (rc = me_dec(&ev, &e)))
			return rc;
		e.len = 10;
		be64(k + 8, d->b);
		me_enc(v, &e);
		if ((rc = mt_put(t, MT_EXTENT, k, 16, v, ME_VLEN)))
			return rc;
		return mx_chunk_ref(t, e.chunk, 1);
	}
	case D_BADVER: {
		uint8_t buf[MI_FIXED + META_SYMLINK_MAX + 1];
		if ((rc = mi_inode_get(t, d->a, &in)))
			return rc;
		size_t n = mi_inode_enc(&in, buf);
		buf[0] = 9;
		be64(k, d->a);
		return mt_put(t, MT_INODE, k, 8, buf, n);
	}
	case D_EMAPREFS: {
		uint8_t v[MM_VLEN];
		if ((rc = mi_inode_get(t, d->a, &in)))
			return rc;
		be64(k, in.emap);
		v[0] = META_REC_V1;
		le64(v + 1, d->b);
		return mt_put(t, MT_EMAP, k, 8, v, MM_VLEN);
	}
	}
	return CAIRN_E_INVAL;
}

static void damage(int kind, uint64_t a, uint64_t b)
{
	dmg d = { kind, a, b };
	REQUIRE_OK(meta_write(m, META_RELAXED, 0, damage_fn, &d, NULL));
}

/* fsck must find problems mentioning `needle`, repair them, then be clean */
static void expect_fix(const char *needle, int repairable)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *rep = open_memstream(&buf, &len);
	meta_fsck_result r;
	REQUIRE(rep);
	CHECK_OK(meta_fsck(m, 0, rep, &r));
	fclose(rep);
	CHECK(r.problems > 0);
	if (!strstr(buf ? buf : "", needle))
		fprintf(stderr, "report lacks '%s':\n%s", needle, buf ? buf : "");
	CHECK(buf && strstr(buf, needle));
	free(buf);
	if (!repairable)
		return;
	CHECK_OK(meta_fsck(m, META_FSCK_REPAIR, stderr, &r));
	CHECK(r.repaired > 0);
	CHECK_OK(meta_fsck(m, 0, stderr, &r));
	CHECK(r.problems == 0);
}

int main(void)
{
	const char *dir = t_tmpdir("meta_fsck");
	meta_opts o = t_opts();
	REQUIRE_OK(meta_open(dir, &o, &m));
	meta_attr f, g, d, u, a;
	uint64_t seg, c1;
	REQUIRE_OK(w_create(m, META_ROOT_INO, "f", &f));
	REQUIRE_OK(w_mkdir(m, META_ROOT_INO, "d", &d));
	REQUIRE_OK(w_create(m, d.ino, "g", &g));
	REQUIRE_OK(w_link(m, g.ino, META_ROOT_INO, "g2", NULL));
	REQUIRE_OK(w_seg_new(m, &seg));
	REQUIRE_OK(w_chunk(m, seg, 0, 1000, 1, &c1));
	REQUIRE_OK(w_extw(m, f.ino, 0, 1000, c1, 0));
	REQUIRE_OK(w_extw(m, g.ino, 0, 500, c1, 0));
	meta_fsck_result r;
	CHECK_OK(meta_fsck(m, 0, stderr, &r));
	CHECK(r.problems == 0 && r.inodes == 4 && r.dirents == 4 && r.extents == 2 && r.chunks == 1);
	CHECK_RC(meta_fsck(m, 0x10, NULL, &r), CAIRN_E_INVAL);

	damage(D_NLINK, g.ino, 5);
	expect_fix("nlink 5 but 2 entries", 1);
	damage(D_NLINK, d.ino, 7);
	expect_fix("nlink 7, want 2", 1);
	damage(D_CHUNKREFS, c1, 9);
	expect_fix("refs 9, 2 extents name it", 1);
	damage(D_SEGLIVE, seg, 1);
	expect_fix("live 1 bytes", 1);
	damage(D_COUNTER, MC_INODES, 100);
	expect_fix("counter inodes: 100, counted 4", 1);
	damage(D_COUNTER, MC_NEXT_INO, 2);
	expect_fix("counter next inode", 1);
	damage(D_SIZE, f.ino, 10);
	expect_fix("past EOF 10", 1);
	meta_extent e[4];
	size_t n;
	CHECK_OK(r_extents(m, f.ino, 0, 100, e, 4, &n));
	CHECK(n == 1 && e[0].len == 10);
	REQUIRE_OK(w_create(m, META_ROOT_INO, "u", &u));
	damage(D_UNLINKED, u.ino, 0);
	expect_fix("unreachable", 1);
	CHECK_OK(r_lookup(m, META_ROOT_INO, "lost+found", &a));
	char nm[32];
	snprintf(nm, sizeof nm, "#%llu", (unsigned long long)u.ino);
	CHECK_OK(r_lookup(m, a.ino, nm, NULL));
	damage(D_EMAPREFS, g.ino, 3);
	expect_fix("refs 3, 1 inodes name it", 1);
	/* a dangling entry: the inode is gone */
	damage(D_DELINODE, u.ino, 0);
	expect_fix("names a missing inode", 1);
	CHECK_RC(r_lookup(m, a.ino, nm, NULL), CAIRN_E_NOTFOUND);
	/* overlapping extents are reported, not repaired */
	damage(D_OVERLAP, g.ino, 5);
	expect_fix("overlaps the previous one", 0);
	/* an unknown record version is refused with a clear error */
	damage(D_BADVER, f.ino, 0);
	CHECK_RC(r_getattr(m, f.ino, &a), CAIRN_E_VERSION);
	CHECK_MSG("record version 9 is unknown (this build reads version 1)");
	CHECK_OK(meta_fsck(m, 0, NULL, &r));
	CHECK(r.problems > 0);
	CHECK_OK(meta_close(m));
	t_rmtree(dir);
	return t_done();
}
