/*
 * bench_meta.c - metadata engine throughput, each figure beside the same
 * operation on a native directory of the file system under --dir (ext4 on
 * the reference machine), measured in the same run.
 *
 *   bench_meta --dir D [--n N] [--synced-n M] [--threads T] [--cases LIST]
 *              [--mode pinned|sync-each|unsafe] [--wal-keep K]
 *
 * --mode: opts.safe_relaxed (default pinned); --wal-keep: opts.wal_keep
 * (default 100000, so that the log reaches its horizon during the run).
 * --cases picks some of: create1, create4, synced (creates), lookup,
 * readdir, rename, snapshot (default: all, in this order).  lookup and
 * readdir read the create1 directories, rename renames the files of create1
 * and create4, snapshot copies the create4 tree: pick those along.  With
 * --cases, each case also prints (stderr) the CPU time per operation and
 * the LMDB file's last page after it, for profiling.
 *
 * Cases (one JSON object per case on stdout, inside {"cases": [...]}):
 *   create   relaxed/synced x 1/T threads   creat(2)+close, fsync(dir) if synced
 *   lookup   per-call txn and batched txn x 1/T threads   fstatat(2)
 *   readdir  entries/s over N entries        readdir(3)
 *   rename   relaxed/synced x 1/T threads   renameat(2), fsync(dir) if synced
 *   snapshot entries/s of a tree of N files  mkdir+creat of a copy of the tree
 *   clone    entries/s (same baseline)
 * Each thread works in its own directory, in cairn and in the baseline.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cairn/meta.h"
#include "cairn/err.h"

static const char *base;
static uint64_t N = 100000, NS = 2000;
static int T = 4;
static cairn_meta *m;
static int first_case = 1;
static const char *cases;  /* NULL: all */

static int want(const char *c)
{
	if (!cases)
		return 1;
	size_t n = strlen(c);
	for (const char *p = cases; *p;) {
		const char *e = strchr(p, ',');
		size_t l = e ? (size_t)(e - p) : strlen(p);
		if (l == n && !strncmp(p, c, n))
			return 1;
		if (!e)
			break;
		p = e + 1;
	}
	return 0;
}

static double cpu_s(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
	       (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/* LMDB's last used page, from the newer meta page of data.mdb (64-bit
 * layout: txnid at 144, last page at 136); diagnostics only. */
static unsigned long long last_page(void)
{
	char p[700];
	unsigned char b[8192];
	snprintf(p, sizeof p, "%s/meta/data.mdb", base);
	int fd = open(p, O_RDONLY);
	if (fd < 0)
		return 0;
	ssize_t r = pread(fd, b, sizeof b, 0);
	close(fd);
	if (r != (ssize_t)sizeof b)
		return 0;
	unsigned long long t0, t1, l0, l1;
	memcpy(&t0, b + 144, 8);
	memcpy(&t1, b + 4096 + 144, 8);
	memcpy(&l0, b + 136, 8);
	memcpy(&l1, b + 4096 + 136, 8);
	return t0 > t1 ? l0 : l1;
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what)
{
	fprintf(stderr, "bench_meta: %s: %s\n", what, cairn_errmsg()[0] ? cairn_errmsg() : strerror(errno));
	exit(1);
}

static void emit(const char *cas, double v, double b, const char *note)
{
	printf("%s\n  {\"case\": \"%s\", \"metric\": \"ops/s\", \"value\": %.0f, "
	       "\"baseline_name\": \"native dir\", \"baseline\": %.0f, \"note\": \"%s\"}",
	       first_case ? "" : ",", cas, v, b, note);
	first_case = 0;
	fprintf(stderr, "%-40s %12.0f /s   native %12.0f /s   ratio %.2f\n", cas, v, b,
		b > 0 ? v / b : 0);
	fflush(stdout);
}

/* ---- cairn side ---- */

typedef struct job {
	int id, kind, synced;
	uint64_t dir, n, start;
	char ndir[600];
	int dfd;
} job;

enum { K_CREATE, K_LOOKUP1, K_LOOKUPB, K_RENAME, K_NCREATE, K_NLOOKUP, K_NRENAME };

typedef struct cop { uint64_t dir; char a[32], b[32]; int kind; } cop;
static int cop_fn(meta_txn *t, void *arg)
{
	cop *o = arg;
	if (o->kind == K_CREATE)
		return meta_create(t, o->dir, o->a, 0644, 0, 0, NULL);
	return meta_rename(t, o->dir, o->a, o->dir, o->b, 0);
}

static void *worker(void *arg)
{
	job *j = arg;
	cop o;
	meta_txn *t = NULL;
	meta_attr a;
	uint64_t x = 88172645463325252ULL ^ (uint64_t)j->id;
	for (uint64_t i = 0; i < j->n; i++) {
		uint64_t k = i;
		if (j->kind == K_LOOKUP1 || j->kind == K_LOOKUPB || j->kind == K_NLOOKUP) {
			x ^= x << 13; x ^= x >> 7; x ^= x << 17;
			k = x % j->n;
		}
		snprintf(o.a, sizeof o.a, "f%08llu", (unsigned long long)k);
		switch (j->kind) {
		case K_CREATE:
		case K_RENAME:
			o.dir = j->dir;
			o.kind = j->kind;
			snprintf(o.b, sizeof o.b, "r%08llu", (unsigned long long)k);
			if (meta_write(m, j->synced ? META_SYNCED : META_RELAXED, 0, cop_fn, &o, NULL))
				die("write");
			break;
		case K_LOOKUP1:
			if (meta_read_begin(m, &t) || meta_lookup(t, j->dir, o.a, &a))
				die("lookup");
			meta_read_end(t);
			t = NULL;
			break;
		case K_LOOKUPB:
			if (i % 1000 == 0) {
				if (t)
					meta_read_end(t);
				if (meta_read_begin(m, &t))
					die("read txn");
			}
			if (meta_lookup(t, j->dir, o.a, &a))
				die("lookup");
			break;
		case K_NCREATE: {
			int fd = openat(j->dfd, o.a, O_CREAT | O_EXCL | O_WRONLY, 0644);
			if (fd < 0)
				die("openat");
			if (j->synced && fsync(j->dfd))
				die("fsync");
			close(fd);
			break;
		}
		case K_NLOOKUP: {
			struct stat st;
			if (fstatat(j->dfd, o.a, &st, 0))
				die("fstatat");
			break;
		}
		case K_NRENAME:
			snprintf(o.b, sizeof o.b, "r%08llu", (unsigned long long)k);
			if (renameat(j->dfd, o.a, j->dfd, o.b) || (j->synced && fsync(j->dfd)))
				die("renameat");
			break;
		}
	}
	if (t)
		meta_read_end(t);
	return NULL;
}

typedef struct mk { const char *n; uint64_t t; meta_attr a; } mk;

static int mk_fn(meta_txn *t, void *arg)
{
	mk *k = arg;
	return meta_mkdir(t, META_ROOT_INO, k->n, 0755, 0, 0, &k->a);
}

/* move root entry k->n into directory k->t */
static int mv_fn(meta_txn *t, void *arg)
{
	mk *k = arg;
	return meta_rename(t, META_ROOT_INO, k->n, k->t, k->n, 0);
}

static uint64_t mkdir_cairn(const char *name)
{
	meta_attr a;
	meta_txn *t;
	if (meta_read_begin(m, &t))
		die("read");
	int rc = meta_lookup(t, META_ROOT_INO, name, &a);
	meta_read_end(t);
	if (!rc)
		return a.ino;
	mk k = { name, 0, { 0 } };
	if (meta_write(m, META_RELAXED, 0, mk_fn, &k, NULL))
		die("mkdir");
	return k.a.ino;
}

/* run kind with `threads` jobs of n ops each; cairn jobs use dirs named
 * prefix<i>, native jobs directories base/native/prefix<i> */
static double run(int kind, int threads, uint64_t n, int synced, const char *prefix)
{
	pthread_t th[64];
	job j[64];
	for (int i = 0; i < threads; i++) {
		char name[64];
		snprintf(name, sizeof name, "%s%d", prefix, i);
		memset(&j[i], 0, sizeof j[i]);
		j[i].id = i + 1;
		j[i].kind = kind;
		j[i].synced = synced;
		j[i].n = n;
		if (kind >= K_NCREATE) {
			snprintf(j[i].ndir, sizeof j[i].ndir, "%s/native/%s", base, name);
			mkdir(j[i].ndir, 0755);
			j[i].dfd = open(j[i].ndir, O_RDONLY | O_DIRECTORY);
			if (j[i].dfd < 0)
				die(j[i].ndir);
		} else {
			j[i].dir = mkdir_cairn(name);
		}
	}
	double t0 = now(), c0 = cpu_s();
	uint64_t k0 = meta_commits(m);
	for (int i = 0; i < threads; i++)
		pthread_create(&th[i], NULL, worker, &j[i]);
	for (int i = 0; i < threads; i++)
		pthread_join(th[i], NULL);
	double dt = now() - t0;
	for (int i = 0; i < threads; i++)
		if (kind >= K_NCREATE)
			close(j[i].dfd);
	if (cases && kind < K_NCREATE)
		fprintf(stderr, "  [kind %d x%d: %.2f us CPU/op, %.2f writes/commit, last page %llu]\n",
			kind, threads, (cpu_s() - c0) * 1e6 / ((double)n * threads),
			(double)n * threads / (double)(meta_commits(m) - k0 ? meta_commits(m) - k0 : 1),
			last_page());
	return (double)n * threads / dt;
}

static int count_cb(const char *name, size_t nl, uint64_t ino, uint32_t type, uint64_t c, void *arg)
{
	(void)name; (void)nl; (void)ino; (void)type; (void)c;
	(*(uint64_t *)arg)++;
	return 0;
}

typedef struct snp { uint64_t src, dst; const char *name; int clone; meta_snap s; } snp;
static int snap_fn(meta_txn *t, void *arg)
{
	snp *s = arg;
	if (s->clone)
		return meta_clone(t, s->src, META_ROOT_INO, s->name, NULL);
	return meta_snapshot_create(t, s->src, s->name, &s->s);
}

/* native "snapshot": recreate the tree's entries (dirs + empty files) */
static uint64_t copy_tree(const char *src, const char *dst)
{
	uint64_t n = 0;
	DIR *d = opendir(src);
	if (!d || mkdir(dst, 0755))
		die("copy tree");
	struct dirent *e;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		char s[1024], t[1024];
		snprintf(s, sizeof s, "%s/%s", src, e->d_name);
		snprintf(t, sizeof t, "%s/%s", dst, e->d_name);
		if (e->d_type == DT_DIR) {
			n += copy_tree(s, t);
		} else {
			int fd = open(t, O_CREAT | O_EXCL | O_WRONLY, 0644);
			if (fd < 0)
				die("copy tree create");
			close(fd);
		}
		n++;
	}
	closedir(d);
	return n;
}

int main(int argc, char **argv)
{
	int mode = META_RELAXED_PINNED;
	uint64_t wal_keep = 100000;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--dir") && i + 1 < argc)
			base = argv[++i];
		else if (!strcmp(argv[i], "--n") && i + 1 < argc)
			N = strtoull(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--synced-n") && i + 1 < argc)
			NS = strtoull(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--threads") && i + 1 < argc)
			T = (int)strtol(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--wal-keep") && i + 1 < argc)
			wal_keep = strtoull(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--cases") && i + 1 < argc)
			cases = argv[++i];
		else if (!strcmp(argv[i], "--mode") && i + 1 < argc) {
			const char *md = argv[++i];
			mode = !strcmp(md, "pinned") ? META_RELAXED_PINNED
			       : !strcmp(md, "sync-each") ? META_RELAXED_SYNC_EACH
			       : !strcmp(md, "unsafe") ? META_RELAXED_UNSAFE : -1;
		} else {
			fprintf(stderr, "usage: bench_meta --dir D [--n N] [--synced-n M] [--threads T] "
				"[--cases create1,create4,synced,lookup,readdir,rename,snapshot] "
				"[--mode pinned|sync-each|unsafe] [--wal-keep K]\n");
			return 2;
		}
	}
	if (!base || T < 1 || T > 64 || N < 100 || mode < 0) {
		fprintf(stderr, "bench_meta: --dir is required; 1 <= threads <= 64; n >= 100\n");
		return 2;
	}
	char path[600];
	snprintf(path, sizeof path, "%s/meta", base);
	mkdir(base, 0755);
	if (mkdir(path, 0755) && errno != EEXIST)
		die(path);
	snprintf(path, sizeof path, "%s/native", base);
	if (mkdir(path, 0755) && errno != EEXIST)
		die(path);
	meta_opts o;
	meta_opts_init(&o);
	o.wal_keep = wal_keep;
	o.safe_relaxed = mode;
	snprintf(path, sizeof path, "%s/meta", base);
	if (meta_open(path, &o, &m))
		die("meta_open");
	printf("{\"n\": %llu, \"synced_n\": %llu, \"threads\": %d, \"cases\": [",
	       (unsigned long long)N, (unsigned long long)NS, T);
	char note[128];
	double v, b;
	uint64_t per = N / (uint64_t)T;

	/* creates */
	if (want("create1")) {
		v = run(K_CREATE, 1, N, 0, "c1-");
		b = run(K_NCREATE, 1, N, 0, "c1-");
		emit("create relaxed 1 thread", v, b, "");
	}

	if (want("create4")) {
		v = run(K_CREATE, T, per, 0, "c4-");
		b = run(K_NCREATE, T, per, 0, "c4-");
		snprintf(note, sizeof note, "target >= 100000/s: %s", v >= 100000 ? "met" : "missed");
		emit("create relaxed 4 threads", v, b, note);
	}

	if (want("synced")) {
		v = run(K_CREATE, 1, NS, 1, "s1-");
		b = run(K_NCREATE, 1, NS, 1, "s1-");
		emit("create synced 1 thread", v, b, "native: fsync(dir) per create");
		v = run(K_CREATE, T, NS / (uint64_t)T, 1, "s4-");
		b = run(K_NCREATE, T, NS / (uint64_t)T, 1, "s4-");
		emit("create synced 4 threads", v, b, "group commit; native: fsync(dir) per create");
	}

	/* lookups over the 1-thread create directory */
	if (want("lookup")) {
		v = run(K_LOOKUP1, 1, N, 0, "c1-");
		b = run(K_NLOOKUP, 1, N, 0, "c1-");
		snprintf(note, sizeof note, "one read txn per lookup; target >= 1000000/s: %s",
			 v >= 1e6 ? "met" : "missed");
		emit("lookup 1 thread", v, b, note);
		v = run(K_LOOKUPB, 1, N, 0, "c1-");
		snprintf(note, sizeof note, "1000 lookups per read txn; target >= 1000000/s: %s",
			 v >= 1e6 ? "met" : "missed");
		emit("lookup batched 1 thread", v, b, note);
		v = run(K_LOOKUP1, T, per, 0, "c4-");
		b = run(K_NLOOKUP, T, per, 0, "c4-");
		snprintf(note, sizeof note, "one read txn per lookup; target >= 1000000/s: %s",
			 v >= 1e6 ? "met" : "missed");
		emit("lookup 4 threads", v, b, note);
	}

	/* readdir */
	if (want("readdir")) {
		meta_txn *t;
		uint64_t dir = mkdir_cairn("c1-0"), cnt = 0;
		double t0 = now();
		for (int r = 0; r < 3; r++) {
			if (meta_read_begin(m, &t) || meta_readdir(t, dir, 0, count_cb, &cnt))
				die("readdir");
			meta_read_end(t);
		}
		v = (double)cnt / (now() - t0);
		snprintf(path, sizeof path, "%s/native/c1-0", base);
		cnt = 0;
		t0 = now();
		for (int r = 0; r < 3; r++) {
			DIR *d = opendir(path);
			if (!d)
				die("opendir");
			while (readdir(d))
				cnt++;
			closedir(d);
		}
		b = (double)cnt / (now() - t0);
		emit("readdir entries", v, b, "");
	}

	/* renames (of the create directories' files) */
	if (want("rename")) {
		v = run(K_RENAME, 1, N, 0, "c1-");
		b = run(K_NRENAME, 1, N, 0, "c1-");
		emit("rename relaxed 1 thread", v, b, "");
		v = run(K_RENAME, T, per, 0, "c4-");
		b = run(K_NRENAME, T, per, 0, "c4-");
		emit("rename relaxed 4 threads", v, b, "");
		v = run(K_RENAME, 1, NS, 1, "s1-");
		b = run(K_NRENAME, 1, NS, 1, "s1-");
		emit("rename synced 1 thread", v, b, "native: fsync(dir) per rename");
		v = run(K_RENAME, T, NS / (uint64_t)T, 1, "s4-");
		b = run(K_NRENAME, T, NS / (uint64_t)T, 1, "s4-");
		emit("rename synced 4 threads", v, b, "group commit; native: fsync(dir) per rename");
	}

	/* snapshot and clone of the tree made by the 4-thread creates */
	if (want("snapshot")) {
		uint64_t src = mkdir_cairn("tree");
		/* move the c4-* dirs under one root, in cairn and natively */
		for (int i = 0; i < T; i++) {
			char nm[32];
			snprintf(nm, sizeof nm, "c4-%d", i);
			mk x = { nm, src, { 0 } };
			if (meta_write(m, META_RELAXED, 0, mv_fn, &x, NULL))
				die("move");
			char s[700], d[700];
			snprintf(s, sizeof s, "%s/native/%s", base, nm);
			snprintf(d, sizeof d, "%s/native/tree", base);
			mkdir(d, 0755);
			snprintf(d, sizeof d, "%s/native/tree/%s", base, nm);
			if (rename(s, d))
				die("rename tree");
		}
		snp s = { src, 0, "snap1", 0, { { 0 }, 0, 0, 0, 0 } };
		double t0 = now();
		if (meta_write(m, META_SYNCED, META_OP_SNAPSHOT, snap_fn, &s, NULL))
			die("snapshot");
		double dt = now() - t0;
		v = (double)s.s.entries / dt;
		char sp[700], dp[700];
		snprintf(sp, sizeof sp, "%s/native/tree", base);
		snprintf(dp, sizeof dp, "%s/native/tree-copy", base);
		t0 = now();
		uint64_t cnt = copy_tree(sp, dp);
		b = (double)cnt / (now() - t0);
		snprintf(note, sizeof note, "%llu entries; target >= 500000/s: %s",
			 (unsigned long long)s.s.entries, v >= 500000 ? "met" : "missed");
		emit("snapshot entries", v, b, note);
		snp c = { src, 0, "clone1", 1, { { 0 }, 0, 0, 0, 0 } };
		t0 = now();
		if (meta_write(m, META_SYNCED, META_OP_CLONE, snap_fn, &c, NULL))
			die("clone");
		v = (double)s.s.entries / (now() - t0);
		emit("clone entries", v, b, "native: the same tree copy");
	}
	printf("\n]}\n");
	if (meta_close(m))
		die("close");
	return 0;
}

