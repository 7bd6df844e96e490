/*
 * t_meta_model.c - model-based randomized test.  Random operations
 * (create, mkdir, mknod, symlink, unlink, rmdir, rename with and without
 * NOREPLACE/EXCHANGE, link, setattr, truncate, xattrs, extent writes and
 * punches, open/close of unlinked files, clones and snapshots) are applied
 * both to cairn's metadata and to a simple in-memory model.  After each
 * step the result code and every object the step touched are compared;
 * every 2,000 steps (and at the end) the whole tree, statfs and fsck are.
 * Finally the WAL is replayed from LSN 1 into a fresh replica environment
 * and its digest must equal the original's.
 *
 * Seeded (CAIRN_TEST_SEED); the seed and the failing step are printed.
 * Steps: t_scaled(100000).
 */
#include "t.h"
#include "meta_t.h"

#define NNAMES 6
#define MAXN 4096
#define FMAX 512
#define NCHUNK 8
#define NX 3

static const char *names[NNAMES] = { "a", "b", "c", "dd", "e", "f" };
static const char *xnames[NX] = { "user.x", "user.y", "trusted.z" };

typedef struct mnode {
	int used;          /* slot in use (inode alive) */
	int type;          /* 0 file, 1 dir, 2 symlink, 3 fifo */
	uint64_t ino;
	uint32_t nlink;
	uint32_t perm;
	uint64_t size;
	int parent;        /* dirs */
	int child[NNAMES]; /* dirs: node index or -1 */
	int open;
	int rdonly;
	int xset[NX];
	uint8_t xval[NX];
	int16_t dch[FMAX];  /* per byte: chunk index, -1 hole */
	uint16_t doff[FMAX];
} mnode;

static mnode *N;
static cairn_meta *m;
static uint64_t chunks[NCHUNK];
static uint64_t rng;
static uint64_t step;
static int snaps[8];
static uint64_t seg, seg_end;
static int trace;
static uint64_t watch;  /* snapshot root nodes, -1 none */

static int node_new(int type)
{
	for (int i = 0; i < MAXN; i++)
		if (!N[i].used) {
			memset(&N[i], 0, sizeof N[i]);
			N[i].used = 1;
			N[i].type = type;
			N[i].parent = -1;
			for (int k = 0; k < NNAMES; k++)
				N[i].child[k] = -1;
			for (int k = 0; k < FMAX; k++)
				N[i].dch[k] = -1;
			return i;
		}
	return -1;
}

static uint64_t rnd(uint64_t n) { return t_rand(&rng) % n; }

/* pick a random live node of a type (any = -1) that is linked in the live
 * tree (walk from root) */
static int pick(int type, int allow_root)
{
	static int cand[MAXN * NNAMES + 1];
	int nc = 0, stack[MAXN], sn = 0;
	stack[sn++] = 0;
	while (sn) {
		int d = stack[--sn];
		if ((type < 0 || N[d].type == type) && (allow_root || d != 0))
			cand[nc++] = d;
		if (N[d].type == 1)
			for (int k = 0; k < NNAMES; k++) {
				int c = N[d].child[k];
				if (c < 0)
					continue;
				if (N[c].type == 1)
					stack[sn++] = c;
				else if (type < 0 || N[c].type == type)
					cand[nc++] = c;
			}
	}
	return nc ? cand[rnd((uint64_t)nc)] : -1;
}

static void node_free_if_dead(int i)
{
	if (N[i].nlink == 0 && N[i].open == 0)
		N[i].used = 0;
}

static int is_under(int d, int anc)
{
	for (int k = 0; d >= 0 && k < 10000; k++) {
		if (d == anc)
			return 1;
		d = N[d].parent;
	}
	return 0;
}

static int dir_empty(int d)
{
	for (int k = 0; k < NNAMES; k++)
		if (N[d].child[k] >= 0)
			return 0;
	return 1;
}

static int nlive(void)
{
	int n = 0;
	for (int i = 0; i < MAXN; i++)
		n += N[i].used;
	return n;
}

/* ---- comparison ---- */

static int fail_step(const char *what)
{
	fprintf(stderr, "step %llu: %s mismatch\n", (unsigned long long)step, what);
	return 1;
}

static int cmp_node(int i)
{
	mnode *n = &N[i];
	meta_attr a;
	int bad = 0;
	int rc = r_getattr(m, n->ino, &a);
	if (rc) {
		fprintf(stderr, "step %llu: getattr %llu: %s\n", (unsigned long long)step,
			(unsigned long long)n->ino, cairn_errmsg());
		return 1;
	}
	int type = S_ISDIR(a.mode) ? 1 : S_ISLNK(a.mode) ? 2 : S_ISFIFO(a.mode) ? 3 : 0;
	if (type != n->type || a.nlink != n->nlink || (a.mode & 07777) != n->perm ||
	    !!(a.flags & META_INO_F_RDONLY) != n->rdonly) {
		fprintf(stderr, "step %llu: inode %llu type %d/%d nlink %u/%u perm %o/%o ro %u/%d\n",
			(unsigned long long)step, (unsigned long long)n->ino, type, n->type,
			a.nlink, n->nlink, a.mode & 07777, n->perm, a.flags, n->rdonly);
		return 1;
	}
	if (n->type == 0) {
		if (a.size != n->size)
			return fail_step("size");
		meta_extent e[FMAX + 2];
		size_t ne;
		if (r_extents(m, n->ino, 0, FMAX * 2, e, FMAX + 2, &ne))
			return fail_step("extent lookup");
		uint64_t pos = 0;
		for (size_t k = 0; k < ne && !bad; k++) {
			if (e[k].off != pos) {
				bad = 1;
				break;
			}
			for (uint64_t b = 0; b < e[k].len; b++, pos++) {
				int ch = -1;
				if (e[k].chunk)
					for (int c = 0; c < NCHUNK; c++)
						if (chunks[c] == e[k].chunk)
							ch = c;
				if (pos >= FMAX || n->dch[pos] != ch ||
				    (ch >= 0 && n->doff[pos] != e[k].chunk_off + b)) {
					bad = 1;
					break;
				}
			}
		}
		if (bad || pos != n->size)
			return fail_step("extents");
	}
	if (n->type == 1) {
		t_ls l;
		memset(&l, 0, sizeof l);
		if (r_readdir(m, n->ino, 0, &l))
			return fail_step("readdir");
		int cnt = 0;
		for (int k = 0; k < NNAMES; k++) {
			if (n->child[k] < 0)
				continue;
			cnt++;
			char want[64];
			snprintf(want, sizeof want, "%s:%llu,", names[k],
				 (unsigned long long)N[n->child[k]].ino);
			/* names are distinct prefixes up to ':' */
			char *p = strstr(l.buf, want);
			if (!p || (p != l.buf && p[-1] != ','))
				return fail_step("directory entry");
		}
		if (cnt != l.n) {
			fprintf(stderr, "dir %llu: cairn '%s', model has %d\n",
				(unsigned long long)n->ino, l.buf, cnt);
			return fail_step("directory size");
		}
	}
	meta_txn *t;
	if (meta_read_begin(m, &t))
		return 1;
	for (int x = 0; x < NX && !bad; x++) {
		uint8_t v[4];
		size_t len;
		rc = meta_xattr_get(t, n->ino, xnames[x], v, sizeof v, &len);
		if (n->xset[x])
			bad = rc || len != 1 || v[0] != n->xval[x];
		else
			bad = rc != CAIRN_E_NODATA;
	}
	meta_read_end(t);
	return bad ? fail_step("xattr") : 0;
}

static int cmp_all(void)
{
	int bad = 0;
	for (int i = 0; i < MAXN && !bad; i++)
		if (N[i].used)
			bad = cmp_node(i);
	meta_txn *t;
	meta_statfs s;
	if (meta_read_begin(m, &t))
		return 1;
	int rc = meta_statfs_get(t, &s);
	meta_read_end(t);
	if (!bad && (rc || s.inodes != (uint64_t)nlive())) {
		fprintf(stderr, "step %llu: statfs inodes %llu, model %d\n", (unsigned long long)step,
			(unsigned long long)s.inodes, nlive());
		bad = 1;
	}
	meta_fsck_result fr;
	if (!bad && (meta_fsck(m, 0, stderr, &fr) || fr.problems)) {
		fprintf(stderr, "step %llu: fsck found problems\n", (unsigned long long)step);
		bad = 1;
	}
	return bad;
}

/* after a clone/snapshot: give the model copy the inode numbers cairn chose */
static int assign_inos(int mn, uint64_t ino)
{
	N[mn].ino = ino;
	if (N[mn].type != 1)
		return 0;
	for (int k = 0; k < NNAMES; k++) {
		int c = N[mn].child[k];
		if (c < 0)
			continue;
		meta_attr a;
		if (r_lookup(m, ino, names[k], &a))
			return 1;
		if (N[c].ino && N[c].ino != a.ino)
			return 1;  /* hard links must map to one inode */
		if (!N[c].ino && assign_inos(c, a.ino))
			return 1;
	}
	return 0;
}

/* copy a model subtree (hard links within the tree stay links) */
static int copy_tree(int src, int parent, int rdonly, int *map)
{
	int d = node_new(N[src].type);
	if (d < 0)
		return -1;
	int save_used = N[d].used;
	N[d] = N[src];
	N[d].used = save_used;
	N[d].ino = 0;
	N[d].open = 0;
	N[d].rdonly = rdonly;
	N[d].parent = parent;
	if (N[src].type != 1) {
		N[d].nlink = 1;
		return d;
	}
	for (int k = 0; k < NNAMES; k++) {
		int c = N[src].child[k];
		N[d].child[k] = -1;
		if (c < 0)
			continue;
		if (N[c].type != 1 && map[c] >= 0) {
			N[d].child[k] = map[c];
			N[map[c]].nlink++;
			continue;
		}
		int nc = copy_tree(c, d, rdonly, map);
		if (nc < 0)
			return -1;
		if (N[c].type != 1)
			map[c] = nc;
		N[d].child[k] = nc;
	}
	return d;
}

static int expect(int rc, int want, const char *op)
{
	if (rc != want) {
		fprintf(stderr, "step %llu: %s = %s (%s), model wants %s\n", (unsigned long long)step,
			op, cairn_rc_name(rc), cairn_errmsg(), cairn_rc_name(want));
		return 1;
	}
	return 0;
}

static int one_step(void)
{
	int op = (int)rnd(100);
	int d = pick(1, 1);
	int k = (int)rnd(NNAMES);
	int c = N[d].child[k];
	meta_attr a;
	int rc, want;
	/* the model must never run out of nodes after cairn made one */
	int full = nlive() > 1500;
	if (full && (op < 22 || op >= 93))
		op = 22 + (int)rnd(16);  /* unlink or rmdir instead */
	if (trace)
		fprintf(stderr, "step %llu op %d dir %llu name %s child %d\n", (unsigned long long)step,
			op, (unsigned long long)N[d].ino, names[k], c);

	if (op < 14) {  /* create / mknod / symlink */
		int kind = (int)rnd(3);
		want = c >= 0 ? CAIRN_E_EXISTS : 0;
		if (kind == 0)
			rc = w_create(m, N[d].ino, names[k], &a);
		else if (kind == 1)
			rc = w_mknod(m, N[d].ino, names[k], S_IFIFO | 0640, 0, &a);
		else
			rc = w_symlink(m, N[d].ino, names[k], "some/target", &a);
		if (expect(rc, want, "create"))
			return 1;
		if (!rc) {
			int n = node_new(kind == 2 ? 2 : kind == 1 ? 3 : 0);
			if (n < 0)
				return 0;
			N[n].ino = a.ino;
			N[n].nlink = 1;
			N[n].perm = kind == 0 ? 0644 : kind == 1 ? 0640 : 0777;
			N[n].size = kind == 2 ? 11 : 0;
			N[d].child[k] = n;
			return cmp_node(n) || cmp_node(d);
		}
		return 0;
	}
	if (op < 22) {  /* mkdir */
		want = c >= 0 ? CAIRN_E_EXISTS : 0;
		rc = w_mkdir(m, N[d].ino, names[k], &a);
		if (expect(rc, want, "mkdir"))
			return 1;
		if (!rc) {
			int n = node_new(1);
			if (n < 0)
				return 0;
			N[n].ino = a.ino;
			N[n].nlink = 2;
			N[n].perm = 0755;
			N[n].parent = d;
			N[d].child[k] = n;
			N[d].nlink++;
			return cmp_node(n) || cmp_node(d);
		}
		return 0;
	}
	if (op < 32) {  /* unlink */
		want = c < 0 ? CAIRN_E_NOTFOUND : N[c].type == 1 ? CAIRN_E_ISDIR : 0;
		rc = w_unlink(m, N[d].ino, names[k]);
		if (expect(rc, want, "unlink"))
			return 1;
		if (!rc) {
			N[d].child[k] = -1;
			N[c].nlink--;
			node_free_if_dead(c);
			if (N[c].used && cmp_node(c))
				return 1;
			return cmp_node(d);
		}
		return 0;
	}
	if (op < 38) {  /* rmdir */
		want = c < 0 ? CAIRN_E_NOTFOUND : N[c].type != 1 ? CAIRN_E_NOTDIR
			: !dir_empty(c) ? CAIRN_E_NOTEMPTY : 0;
		rc = w_rmdir(m, N[d].ino, names[k]);
		if (expect(rc, want, "rmdir"))
			return 1;
		if (!rc) {
			N[d].child[k] = -1;
			N[d].nlink--;
			N[c].nlink = 0;
			N[c].used = 0;
			return cmp_node(d);
		}
		return 0;
	}
	if (op < 52) {  /* rename */
		int dd = pick(1, 1), dk = (int)rnd(NNAMES), dc = N[dd].child[dk];
		unsigned fl = rnd(4) == 0 ? META_RENAME_NOREPLACE
			      : rnd(4) == 0 ? META_RENAME_EXCHANGE : 0;
		int same = d == dd && k == dk;
		if (c < 0)
			want = CAIRN_E_NOTFOUND;
		else if ((fl & META_RENAME_EXCHANGE) && dc < 0)
			want = CAIRN_E_NOTFOUND;
		else if ((fl & META_RENAME_NOREPLACE) && dc >= 0)
			want = CAIRN_E_EXISTS;
		else if (N[c].type == 1 && dd != d && is_under(dd, c))
			want = CAIRN_E_INVAL;
		else if ((fl & META_RENAME_EXCHANGE) && N[dc].type == 1 && dd != d && is_under(d, dc))
			want = CAIRN_E_INVAL;
		else if (same || (dc >= 0 && dc == c))
			want = -1;  /* no-op */
		else if (fl & META_RENAME_EXCHANGE)
			want = 0;
		else if (dc >= 0 && N[c].type == 1 && N[dc].type != 1)
			want = CAIRN_E_NOTDIR;
		else if (dc >= 0 && N[c].type != 1 && N[dc].type == 1)
			want = CAIRN_E_ISDIR;
		else if (dc >= 0 && N[dc].type == 1 && !dir_empty(dc))
			want = CAIRN_E_NOTEMPTY;
		else
			want = 0;
		rc = w_rename(m, N[d].ino, names[k], N[dd].ino, names[dk], fl);
		if (trace)
			fprintf(stderr, "  rename -> %llu/%s (node %d type %d) flags %u: want %d rc %d\n",
				(unsigned long long)N[dd].ino, names[dk], dc, dc >= 0 ? N[dc].type : -1, fl,
				want, rc);
		if (expect(rc, want < 0 ? 0 : want, "rename"))
			return 1;
		if (rc || want < 0)
			return 0;
		if (fl & META_RENAME_EXCHANGE) {
			N[d].child[k] = dc;
			N[dd].child[dk] = c;
			if (d != dd) {
				if (N[c].type == 1) { N[c].parent = dd; N[d].nlink--; N[dd].nlink++; }
				if (N[dc].type == 1) { N[dc].parent = d; N[dd].nlink--; N[d].nlink++; }
			}
		} else {
			if (dc >= 0) {
				if (N[dc].type == 1) {
					N[dd].nlink--;
					N[dc].nlink = 0;
					N[dc].used = 0;
				} else {
					N[dc].nlink--;
					node_free_if_dead(dc);
				}
			}
			N[d].child[k] = -1;
			N[dd].child[dk] = c;
			if (N[c].type == 1 && d != dd) {
				N[d].nlink--;
				N[dd].nlink++;
				N[c].parent = dd;
			}
		}
		return cmp_node(d) || cmp_node(dd) || cmp_node(c) ||
		       (dc >= 0 && N[dc].used && cmp_node(dc));
	}
	if (op < 58) {  /* link */
		int f = pick(0, 0);
		if (f < 0)
			return 0;
		want = c >= 0 ? CAIRN_E_EXISTS : 0;
		rc = w_link(m, N[f].ino, N[d].ino, names[k], NULL);
		if (expect(rc, want, "link"))
			return 1;
		if (!rc) {
			N[d].child[k] = f;
			N[f].nlink++;
			return cmp_node(f) || cmp_node(d);
		}
		return 0;
	}
	if (op < 64) {  /* setattr: mode or truncate */
		int f = pick(rnd(3) ? 0 : -1, 1);
		if (f < 0)
			return 0;
		if (rnd(2) || N[f].type != 0) {
			meta_sattr sa = { .mask = META_SET_MODE, .mode = (uint32_t)rnd(01000) };
			if (expect(w_setattr(m, N[f].ino, &sa, NULL), 0, "chmod"))
				return 1;
			N[f].perm = sa.mode;
		} else {
			uint64_t sz = rnd(FMAX + 1);
			if (expect(w_truncate(m, N[f].ino, sz), 0, "truncate"))
				return 1;
			for (uint64_t b = sz; b < FMAX; b++)
				N[f].dch[b] = -1;
			N[f].size = sz;
		}
		return cmp_node(f);
	}
	if (op < 70) {  /* xattrs */
		int f = pick(-1, 1);
		int x = (int)rnd(NX);
		if (rnd(3) == 0) {
			want = N[f].xset[x] ? 0 : CAIRN_E_NODATA;
			if (expect(w_xrm(m, N[f].ino, xnames[x]), want, "xattr remove"))
				return 1;
			N[f].xset[x] = 0;
		} else {
			unsigned fl = (unsigned)rnd(3);
			uint8_t v = (uint8_t)rnd(256);
			want = (fl == META_XATTR_CREATE && N[f].xset[x]) ? CAIRN_E_EXISTS
			       : (fl == META_XATTR_REPLACE && !N[f].xset[x]) ? CAIRN_E_NODATA : 0;
			if (expect(w_xset(m, N[f].ino, xnames[x], &v, 1, fl), want, "xattr set"))
				return 1;
			if (!want) {
				N[f].xset[x] = 1;
				N[f].xval[x] = v;
			}
		}
		return cmp_node(f);
	}
	if (op < 88) {  /* extent write / punch */
		int f = pick(0, 0);
		if (f < 0)
			return 0;
		uint64_t off = rnd(FMAX - 1), len = 1 + rnd(FMAX / 4);
		if (off + len > FMAX)
			len = FMAX - off;
		if (rnd(5) == 0) {
			if (expect(w_punch(m, N[f].ino, off, len), 0, "punch"))
				return 1;
			for (uint64_t b = off; b < off + len; b++)
				N[f].dch[b] = -1;
		} else {
			int ch = (int)rnd(NCHUNK);
			meta_chunk cc;
			if (r_chunk(m, chunks[ch], &cc) == CAIRN_E_NOTFOUND) {
				/* its last reference went away: cairn freed it */
				if (expect(w_chunk(m, seg, seg_end, FMAX, (uint8_t)ch, &chunks[ch]), 0,
					   "chunk add"))
					return 1;
				seg_end += FMAX;
			}
			uint64_t co = rnd(FMAX - len + 1);
			if (expect(w_extw(m, N[f].ino, off, len, chunks[ch], co), 0, "extent write"))
				return 1;
			for (uint64_t b = 0; b < len; b++) {
				N[f].dch[off + b] = (int16_t)ch;
				N[f].doff[off + b] = (uint16_t)(co + b);
			}
			if (off + len > N[f].size)
				N[f].size = off + len;
		}
		return cmp_node(f);
	}
	if (op < 93) {  /* open/close */
		int f = -1;
		for (int tries = 0; tries < 8 && f < 0; tries++) {
			int i = (int)rnd(MAXN);
			if (N[i].used && N[i].open)
				f = i;
		}
		if (f >= 0 && rnd(2)) {
			if (expect(meta_ino_close(m, N[f].ino), 0, "close"))
				return 1;
			N[f].open--;
			node_free_if_dead(f);
			if (!N[f].used) {
				meta_attr x;
				return expect(r_getattr(m, N[f].ino, &x), CAIRN_E_NOTFOUND, "getattr closed");
			}
			return cmp_node(f);
		}
		f = pick(0, 0);
		if (f < 0)
			return 0;
		if (expect(meta_ino_open(m, N[f].ino), 0, "open"))
			return 1;
		N[f].open++;
		return 0;
	}
	if (op < 96) {  /* clone of a tree or file */
		int src = pick(-1, 1);
		if (c >= 0) {
			return expect(w_clone(m, N[src].ino, N[d].ino, names[k], NULL), CAIRN_E_EXISTS,
				      "clone");
		}
		if (nlive() > MAXN / 2)
			return 0;
		int map[MAXN];
		memset(map, -1, sizeof map);
		int nd = copy_tree(src, d, 0, map);
		if (nd < 0)
			return 0;
		if (expect(w_clone(m, N[src].ino, N[d].ino, names[k], &a), 0, "clone"))
			return 1;
		N[d].child[k] = nd;
		if (N[nd].type == 1)
			N[d].nlink++;
		if (assign_inos(nd, a.ino))
			return fail_step("clone inode map");
		return cmp_node(d);
	}
	/* snapshot create / delete, and writes into a snapshot */
	int s = (int)rnd(8);
	char sname[16];
	snprintf(sname, sizeof sname, "snap%d", s);
	if (snaps[s] >= 0) {
		int r = snaps[s];
		if (N[r].type == 1 && rnd(2)) {
			if (expect(w_create(m, N[r].ino, "new", NULL), CAIRN_E_ROFS, "create in snapshot"))
				return 1;
		}
		if (expect(w_snapdel(m, sname), 0, "snapshot delete"))
			return 1;
		/* free the model copy */
		int stack[MAXN], sn = 0;
		stack[sn++] = r;
		while (sn) {
			int x = stack[--sn];
			if (!N[x].used)
				continue;
			if (N[x].type == 1)
				for (int kk = 0; kk < NNAMES; kk++)
					if (N[x].child[kk] >= 0)
						stack[sn++] = N[x].child[kk];
			if (N[x].type != 1 && --N[x].nlink > 0)
				continue;
			N[x].used = 0;
		}
		snaps[s] = -1;
		return 0;
	}
	if (nlive() > MAXN / 2)
		return 0;
	int map[MAXN];
	memset(map, -1, sizeof map);
	int nd = copy_tree(d, -1, 1, map);
	if (nd < 0)
		return 0;
	meta_snap sn;
	if (expect(w_snap(m, N[d].ino, sname, &sn), 0, "snapshot"))
		return 1;
	snaps[s] = nd;
	if (assign_inos(nd, sn.root))
		return fail_step("snapshot inode map");
	return cmp_node(nd);
}

static int replay_cb(uint64_t lsn, const void *rec, size_t len, void *arg)
{
	(void)lsn;
	int *rc = (int *)((void **)arg)[1];
	*rc = meta_wal_apply((cairn_meta *)((void **)arg)[0], rec, len);
	return *rc;
}

int main(void)
{
	uint64_t seed = t_seed();
	trace = getenv("CAIRN_MODEL_TRACE") != NULL;
	watch = getenv("CAIRN_MODEL_WATCH") ? strtoull(getenv("CAIRN_MODEL_WATCH"), NULL, 0) : 0;
	rng = seed;
	const char *base = t_tmpdir("meta_model");
	char dir[600], rdir[600];
	snprintf(dir, sizeof dir, "%s/main", base);
	snprintf(rdir, sizeof rdir, "%s/replica", base);
	REQUIRE(mkdir(dir, 0755) == 0 && mkdir(rdir, 0755) == 0);
	meta_opts o = t_opts();
	o.wal_keep = 1ULL << 40;
	REQUIRE_OK(meta_open(dir, &o, &m));
	N = calloc(MAXN, sizeof *N);
	REQUIRE(N);
	for (int i = 0; i < 8; i++)
		snaps[i] = -1;
	int root = node_new(1);
	N[root].ino = META_ROOT_INO;
	N[root].nlink = 2;
	N[root].perm = 0755;
	REQUIRE_OK(w_seg_new(m, &seg));
	seg_end = NCHUNK * FMAX;
	for (int i = 0; i < NCHUNK; i++)
		REQUIRE_OK(w_chunk(m, seg, (uint64_t)i * FMAX, FMAX, (uint8_t)(i + 1), &chunks[i]));
	uint64_t steps = t_scaled(100000);
	int failed = 0;
	for (step = 1; step <= steps && !failed; step++) {
		failed = one_step();
		if (!failed && watch)
			for (int i = 0; i < MAXN; i++)
				if (N[i].used && N[i].ino == watch && cmp_node(i)) {
					failed = 1;
					break;
				}
		if (!failed && step % 2000 == 0)
			failed = cmp_all();
	}
	if (failed)
		fprintf(stderr, "FAILED at step %llu with CAIRN_TEST_SEED=%llu\n",
			(unsigned long long)(step - 1), (unsigned long long)seed);
	CHECK(!failed);
	if (!failed) {
		meta_attr ra;
		CHECK_OK(r_getattr(m, META_ROOT_INO, &ra));
		CHECK(ra.nlink == N[root].nlink);
	}
	/* replay the whole log onto a fresh replica */
	meta_opts ro = t_opts();
	ro.replica = 1;
	ro.wal_keep = 1ULL << 40;
	cairn_meta *r;
	REQUIRE_OK(meta_open(rdir, &ro, &r));
	int arc = 0;
	void *args[2] = { r, &arc };
	CHECK_OK(meta_wal_read(m, 1, replay_cb, args));
	CHECK_OK(arc);
	uint8_t d1[32], d2[32];
	CHECK_OK(meta_digest(m, d1));
	CHECK_OK(meta_digest(r, d2));
	CHECK(!memcmp(d1, d2, 32));
	uint64_t f1, l1, f2, l2;
	CHECK_OK(meta_wal_bounds(m, &f1, &l1));
	CHECK_OK(meta_wal_bounds(r, &f2, &l2));
	printf("WAL: %llu..%llu, replica %llu..%llu\n", (unsigned long long)f1,
	       (unsigned long long)l1, (unsigned long long)f2, (unsigned long long)l2);
	CHECK(f1 == 1 && f2 == 1 && l1 == l2 && l1 > steps / 4);
	meta_fsck_result fr;
	CHECK_OK(meta_fsck(r, 0, stderr, &fr));
	CHECK(fr.problems == 0);
	CHECK_OK(meta_close(r));
	CHECK_OK(meta_close(m));
	free(N);
	if (!failed)
		t_rmtree(base);
	return t_done();
}
