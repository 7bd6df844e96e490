/*
 * cmd_fs.c - direct access to the files of a volume without mounting it:
 * ls, stat, cat, put, get, mkdir, rm, mv (table cli_fs_commands).
 *
 * Every command here is CLI_VOLUME: it runs on the volume this process
 * opened, or inside the mount daemon through its control socket when the
 * volume is mounted (cli_ctl.c), with the same output.
 *
 * put imports a local tree in one go: the calling thread walks it
 * (creating directories, symlinks and fifos in the volume as it goes and
 * queueing regular files), then PUT_THREADS workers copy the files
 * through the volume API, each file written sequentially from offset 0 so
 * that small files pack into segments and large ones stream (volume.h).
 * Modes and times are kept; directory times are set last (creating their
 * entries changed them).
 *
 * get exports a volume tree and never writes outside LOCAL whatever the
 * stored names are: every local file is reached from LOCAL's directory fd
 * one component at a time with O_NOFOLLOW (open_beneath), new files are
 * created O_EXCL (-f unlinks an existing file first, never truncates it
 * in place), names "", ".", ".." or with '/' are refused, and a
 * pre-existing symlink anywhere below LOCAL is an error, never followed.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

#define COPY_BUF (1u << 20)
#define PUT_THREADS 4

static int is_dir(uint32_t mode) { return S_ISDIR(mode); }

static const char *type_name(uint32_t mode)
{
	switch (mode & S_IFMT) {
	case S_IFREG: return "file";
	case S_IFDIR: return "dir";
	case S_IFLNK: return "symlink";
	case S_IFIFO: return "fifo";
	case S_IFSOCK: return "socket";
	case S_IFCHR: return "char";
	case S_IFBLK: return "block";
	default: return "unknown";
	}
}

static void mode_string(uint32_t mode, char out[11])
{
	static const char *rwx = "rwxrwxrwx";
	const char *t = "?-dlpscb";
	switch (mode & S_IFMT) {
	case S_IFREG: out[0] = t[1]; break;
	case S_IFDIR: out[0] = t[2]; break;
	case S_IFLNK: out[0] = t[3]; break;
	case S_IFIFO: out[0] = t[4]; break;
	case S_IFSOCK: out[0] = t[5]; break;
	case S_IFCHR: out[0] = t[6]; break;
	case S_IFBLK: out[0] = t[7]; break;
	default: out[0] = t[0];
	}
	for (int i = 0; i < 9; i++)
		out[1 + i] = (mode & (0400u >> i)) ? rwx[i] : '-';
	if (mode & S_ISUID)
		out[3] = (mode & 0100) ? 's' : 'S';
	if (mode & S_ISGID)
		out[6] = (mode & 0010) ? 's' : 'S';
	if (mode & S_ISVTX)
		out[9] = (mode & 0001) ? 't' : 'T';
	out[10] = 0;
}

/* ---- directory listings ---- */

struct ent {
	char *name;
	uint64_t ino;
};

struct entlist {
	struct ent *v;
	size_t n, cap;
	int nomem;
};

static int collect_cb(const char *name, size_t namelen, uint64_t ino, uint32_t type,
		      uint64_t cookie, void *arg)
{
	struct entlist *l = arg;
	(void)type;
	(void)cookie;
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 64;
		struct ent *v = realloc(l->v, cap * sizeof *v);
		if (!v) {
			l->nomem = 1;
			return 1;
		}
		l->v = v;
		l->cap = cap;
	}
	l->v[l->n].name = strndup(name, namelen);
	if (!l->v[l->n].name) {
		l->nomem = 1;
		return 1;
	}
	l->v[l->n++].ino = ino;
	return 0;
}

static void entlist_free(struct entlist *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i].name);
	free(l->v);
	memset(l, 0, sizeof *l);
}

static int ent_cmp(const void *a, const void *b)
{
	return strcmp(((const struct ent *)a)->name, ((const struct ent *)b)->name);
}

/* All entries of directory ino, sorted by name. */
static int list_dir(cairn_volume *vol, uint64_t ino, struct entlist *l)
{
	int rc;
	memset(l, 0, sizeof *l);
	rc = volume_readdir(vol, ino, 0, collect_cb, l);
	if (!rc && l->nomem)
		rc = cairn_errf(CAIRN_E_NOMEM, "listing a directory");
	if (rc) {
		entlist_free(l);
		return rc;
	}
	if (l->n > 1)
		qsort(l->v, l->n, sizeof *l->v, ent_cmp);
	return 0;
}

/* The symlink target of a (into buf, "" if none). */
static int link_target(cairn_volume *vol, const cairn_attr *a, char *buf, size_t size)
{
	size_t len = 0;
	int rc;
	buf[0] = 0;
	if (!S_ISLNK(a->mode))
		return 0;
	rc = volume_readlink(vol, a->ino, buf, size - 1, &len);
	if (rc)
		return rc;
	buf[len < size - 1 ? len : size - 1] = 0;
	return 0;
}

static void json_attr(cli_json *j, const cairn_attr *a, const char *target)
{
	char mode[16], t[32];
	snprintf(mode, sizeof mode, "%04o", a->mode & 07777);
	cli_json_kstr(j, "type", type_name(a->mode));
	cli_json_ku64(j, "ino", a->ino);
	cli_json_kstr(j, "mode", mode);
	cli_json_ku64(j, "nlink", a->nlink);
	cli_json_ku64(j, "uid", a->uid);
	cli_json_ku64(j, "gid", a->gid);
	cli_json_ku64(j, "size", a->size);
	cli_json_ki64(j, "mtime_ns", a->mtime_ns);
	cli_json_kstr(j, "mtime", cli_fmt_time(a->mtime_ns, t, sizeof t));
	if (target && S_ISLNK(a->mode))
		cli_json_kstr(j, "target", target);
}

static void long_line(cli_ctx *c, const cairn_attr *a, const char *name, const char *target)
{
	char m[11], t[32];
	mode_string(a->mode, m);
	fprintf(c->out, "%s %3u %5u %5u %12llu %s %s%s%s\n", m, a->nlink, a->uid, a->gid,
		(unsigned long long)a->size, cli_fmt_time(a->mtime_ns, t, sizeof t), name,
		target && target[0] ? " -> " : "", target && target[0] ? target : "");
}

static int cmd_ls(cli_ctx *c, int argc, char **argv)
{
	enum { O_LONG = 1, O_ALL };
	static const cli_opt opts[] = {
		{"long", 'l', 0, O_LONG}, {"all", 'a', 0, O_ALL}, {NULL, 0, 0, 0},
	};
	int lng = 0, all = 0, opt, n, rc, status = 0;
	char **ops, target[PATH_MAX];
	const char *path;
	cli_args a;
	cairn_attr at;
	cli_json j;

	cli_args_init(&a, argc, argv);
	while ((opt = cli_getopt(c, &a, opts)) > 0)
		opt == O_LONG ? (lng = 1) : (all = 1);
	ops = cli_operands(&a, &n);
	if (opt < 0 || n > 1) {
		status = opt < 0 ? CLI_EXIT_USAGE : cli_usage(c, "unexpected argument '%s'", ops[1]);
		goto out;
	}
	path = n ? ops[0] : "/";
	if ((rc = cli_resolve(c, path, &at))) {
		status = cli_fail(c, rc, NULL, "%s", path);
		goto out;
	}
	cli_json_init(&j, c->out);
	if (c->json) {
		cli_json_obj_begin(&j);
		cli_json_kstr(&j, "path", path);
		cli_json_key(&j, "entries");
		cli_json_arr_begin(&j);
	}
	if (!is_dir(at.mode)) {
		if ((rc = link_target(c->vol, &at, target, sizeof target))) {
			status = cli_fail(c, rc, NULL, "%s", path);
			goto out;
		}
		const char *base = strrchr(path, '/');
		base = base && base[1] ? base + 1 : path;
		if (c->json) {
			cli_json_obj_begin(&j);
			cli_json_kstr(&j, "name", base);
			json_attr(&j, &at, target);
			cli_json_obj_end(&j);
		} else if (lng) {
			long_line(c, &at, base, target);
		} else {
			fprintf(c->out, "%s\n", base);
		}
	} else {
		struct entlist l;
		if ((rc = list_dir(c->vol, at.ino, &l))) {
			status = cli_fail(c, rc, NULL, "%s", path);
			goto out;
		}
		for (size_t i = 0; i < l.n && !status; i++) {
			cairn_attr ea;
			if (!all && l.v[i].name[0] == '.')
				continue;
			if (cli_cancelled(c)) {
				status = cli_fail(c, CAIRN_E_CANCELED, NULL, "%s", path);
				break;
			}
			if (!lng && !c->json) {
				fprintf(c->out, "%s\n", l.v[i].name);
				continue;
			}
			if ((rc = volume_getattr(c->vol, l.v[i].ino, &ea)) ||
			    (rc = link_target(c->vol, &ea, target, sizeof target))) {
				status = cli_fail(c, rc, NULL, "%s: %s", path, l.v[i].name);
				break;
			}
			if (c->json) {
				cli_json_obj_begin(&j);
				cli_json_kstr(&j, "name", l.v[i].name);
				json_attr(&j, &ea, target);
				cli_json_obj_end(&j);
			} else {
				long_line(c, &ea, l.v[i].name, target);
			}
		}
		entlist_free(&l);
	}
	if (c->json && !status) {
		cli_json_arr_end(&j);
		cli_json_obj_end(&j);
	}
out:
	cli_args_free(&a);
	return status;
}

/* Commands taking exactly `want` operands and no options. */
static int operands_only(cli_ctx *c, int argc, char **argv, int want, const char *names)
{
	int nops, opt, status = 0;
	static const cli_opt none[] = {{NULL, 0, 0, 0}};
	cli_args a;
	char **ops;
	cli_args_init(&a, argc, argv);
	while ((opt = cli_getopt(c, &a, none)) > 0)
		;
	ops = cli_operands(&a, &nops);
	if (opt < 0)
		status = CLI_EXIT_USAGE;
	else if (nops < want)
		status = cli_usage(c, "missing %s", names);
	else if (nops > want)
		status = cli_usage(c, "unexpected argument '%s'", ops[want]);
	else
		for (int i = 0; i < want; i++)
			argv[i + 1] = ops[i];  /* operands in order, options gone */
	cli_args_free(&a);
	return status;
}

static int cmd_stat(cli_ctx *c, int argc, char **argv)
{
	char target[PATH_MAX], m[11], t[32];
	cairn_attr a;
	int rc;

	if ((rc = operands_only(c, argc, argv, 1, "PATH")))
		return rc;
	if ((rc = cli_resolve(c, argv[1], &a)) ||
	    (rc = link_target(c->vol, &a, target, sizeof target)))
		return cli_fail(c, rc, NULL, "%s", argv[1]);
	if (c->json) {
		cli_json j;
		cli_json_init(&j, c->out);
		cli_json_obj_begin(&j);
		cli_json_kstr(&j, "path", argv[1]);
		json_attr(&j, &a, target);
		cli_json_ki64(&j, "atime_ns", a.atime_ns);
		cli_json_ki64(&j, "ctime_ns", a.ctime_ns);
		cli_json_ki64(&j, "btime_ns", a.btime_ns);
		cli_json_obj_end(&j);
		return 0;
	}
	mode_string(a.mode, m);
	fprintf(c->out, "path: %s\n", argv[1]);
	fprintf(c->out, "type: %s\n", type_name(a.mode));
	if (S_ISLNK(a.mode))
		fprintf(c->out, "target: %s\n", target);
	fprintf(c->out, "ino: %llu\n", (unsigned long long)a.ino);
	fprintf(c->out, "mode: %04o (%s)\n", a.mode & 07777, m);
	fprintf(c->out, "nlink: %u\n", a.nlink);
	fprintf(c->out, "uid: %u\n", a.uid);
	fprintf(c->out, "gid: %u\n", a.gid);
	fprintf(c->out, "size: %llu\n", (unsigned long long)a.size);
	fprintf(c->out, "mtime: %s (%lld ns)\n", cli_fmt_time(a.mtime_ns, t, sizeof t),
		(long long)a.mtime_ns);
	fprintf(c->out, "atime: %s (%lld ns)\n", cli_fmt_time(a.atime_ns, t, sizeof t),
		(long long)a.atime_ns);
	fprintf(c->out, "ctime: %s (%lld ns)\n", cli_fmt_time(a.ctime_ns, t, sizeof t),
		(long long)a.ctime_ns);
	fprintf(c->out, "btime: %s (%lld ns)\n", cli_fmt_time(a.btime_ns, t, sizeof t),
		(long long)a.btime_ns);
	return 0;
}

static int cmd_cat(cli_ctx *c, int argc, char **argv)
{
	cairn_file *f = NULL;
	cairn_attr a;
	char *buf;
	uint64_t off = 0;
	int rc;

	if ((rc = operands_only(c, argc, argv, 1, "PATH")))
		return rc;
	if ((rc = cli_resolve(c, argv[1], &a)))
		return cli_fail(c, rc, NULL, "%s", argv[1]);
	if (is_dir(a.mode))
		return cli_fail(c, cairn_errf(CAIRN_E_ISDIR, "is a directory"), NULL, "%s",
				argv[1]);
	if (!S_ISREG(a.mode))
		return cli_fail(c, cairn_errf(CAIRN_E_INVAL, "not a regular file (%s)",
					      type_name(a.mode)), NULL, "%s", argv[1]);
	if (!(buf = malloc(COPY_BUF)))
		return cli_fail(c, cairn_errf(CAIRN_E_NOMEM, "buffer"), NULL, "%s", argv[1]);
	if ((rc = volume_file_open(c->vol, a.ino, &f)))
		goto out;
	for (;;) {
		size_t got = 0;
		if (cli_cancelled(c)) {
			rc = cairn_errf(CAIRN_E_CANCELED, "interrupted");
			break;
		}
		if ((rc = volume_file_read(f, buf, COPY_BUF, off, &got)) || got == 0)
			break;
		if (fwrite(buf, 1, got, c->out) != got) {
			rc = cairn_errf(CAIRN_E_IO, "writing the output: %s", strerror(errno));
			break;
		}
		off += got;
	}
	if (!rc && fflush(c->out) != 0)
		rc = cairn_errf(CAIRN_E_IO, "writing the output: %s", strerror(errno));
out:
	{
		int r = volume_file_close(f);
		if (!rc)
			rc = r;
	}
	free(buf);
	return rc ? cli_fail(c, rc, NULL, "%s", argv[1]) : 0;
}

/* The caller's ids for new entries: root keeps the source's. */
static uint32_t new_uid(uint32_t src) { return geteuid() == 0 ? src : (uint32_t)geteuid(); }
static uint32_t new_gid(uint32_t src) { return geteuid() == 0 ? src : (uint32_t)getegid(); }

static int cmd_mkdir(cli_ctx *c, int argc, char **argv)
{
	static const cli_opt opts[] = {{"parents", 'p', 0, 1}, {NULL, 0, 0, 0}};
	int parents = 0, opt, n, rc, status = 0;
	char **ops, leaf[CLI_NAME_BUF];
	uint64_t parent;
	cli_args a;

	cli_args_init(&a, argc, argv);
	while ((opt = cli_getopt(c, &a, opts)) > 0)
		parents = 1;
	ops = cli_operands(&a, &n);
	if (opt < 0)
		status = CLI_EXIT_USAGE;
	else if (n == 0)
		status = cli_usage(c, "missing PATH");
	for (int i = 0; i < n && !status; i++) {
		const char *path = ops[i];
		cairn_attr at;
		if (parents) {
			/* each prefix in turn: existing directories are fine */
			char pre[PATH_MAX];
			size_t len = strlen(path);
			if (len >= sizeof pre) {
				status = cli_fail(c, cairn_errf(CAIRN_E_NAMETOOLONG, "path too long"),
						  NULL, "%s", path);
				break;
			}
			for (size_t k = 1; k <= len && !status; k++) {
				if (k < len && path[k] != '/')
					continue;
				memcpy(pre, path, k);
				pre[k] = 0;
				if (pre[0] == '@' && !strchr(pre, '/'))
					continue;  /* the snapshot itself */
				rc = cli_resolve(c, pre, &at);
				if (rc == 0 && !is_dir(at.mode))
					rc = cairn_errf(CAIRN_E_NOTDIR, "'%s' is not a directory", pre);
				if (rc == CAIRN_E_NOTFOUND) {
					rc = cli_resolve_parent(c, pre, &parent, leaf);
					if (!rc)
						rc = volume_mkdir(c->vol, parent, leaf, 0755,
								  new_uid(0), new_gid(0), &at);
					if (!rc)
						cli_mount_entry(c, parent, leaf);
				}
				if (rc)
					status = cli_fail(c, rc, NULL, "%s", path);
			}
			continue;
		}
		if ((rc = cli_resolve_parent(c, path, &parent, leaf)) ||
		    (rc = volume_mkdir(c->vol, parent, leaf, 0755, new_uid(0), new_gid(0), &at))) {
			if (rc == CAIRN_E_EXISTS)
				cairn_errf(rc, "'%s' exists already", path);
			status = cli_fail(c, rc, NULL, "%s", path);
		} else {
			cli_mount_entry(c, parent, leaf);
		}
	}
	cli_args_free(&a);
	return status;
}

/* Remove name in parent, a whole tree with recursive.  Each name goes
 * from the mount's caches too, and a file a process holds through the
 * mount is pinned first (cli.h). */
static int remove_tree(cli_ctx *c, uint64_t parent, const char *name, const cairn_attr *at)
{
	struct entlist l;
	int rc;
	if (!is_dir(at->mode)) {
		if (!(rc = cli_mount_remove(c, parent, name)) &&
		    !(rc = volume_unlink(c->vol, parent, name)))
			cli_mount_entry(c, parent, name);
		return rc;
	}
	if ((rc = list_dir(c->vol, at->ino, &l)))
		return rc;
	for (size_t i = 0; i < l.n && !rc; i++) {
		cairn_attr ea;
		if (cli_cancelled(c))
			rc = cairn_errf(CAIRN_E_CANCELED, "interrupted");
		else if (!(rc = volume_getattr(c->vol, l.v[i].ino, &ea)))
			rc = remove_tree(c, at->ino, l.v[i].name, &ea);
	}
	entlist_free(&l);
	if (!rc && !(rc = volume_rmdir(c->vol, parent, name)))
		cli_mount_entry(c, parent, name);
	return rc;
}

static int cmd_rm(cli_ctx *c, int argc, char **argv)
{
	enum { O_REC = 1, O_FORCE };
	static const cli_opt opts[] = {
		{"recursive", 'r', 0, O_REC}, {"force", 'f', 0, O_FORCE}, {NULL, 0, 0, 0},
	};
	int rec = 0, force = 0, opt, n, rc, status = 0;
	char **ops, leaf[CLI_NAME_BUF];
	cli_args a;

	cli_args_init(&a, argc, argv);
	while ((opt = cli_getopt(c, &a, opts)) > 0)
		opt == O_REC ? (rec = 1) : (force = 1);
	ops = cli_operands(&a, &n);
	if (opt < 0)
		status = CLI_EXIT_USAGE;
	else if (n == 0)
		status = cli_usage(c, "missing PATH");
	for (int i = 0; i < n && !status; i++) {
		uint64_t parent;
		cairn_attr at;
		if ((rc = cli_resolve_parent(c, ops[i], &parent, leaf)) ||
		    (rc = volume_lookup(c->vol, parent, leaf, &at))) {
			if (rc == CAIRN_E_NOTFOUND && force)
				continue;
			if (rc == CAIRN_E_NOTFOUND)
				cairn_errf(rc, "no such file or directory");
			status = cli_fail(c, rc, NULL, "%s", ops[i]);
			break;
		}
		if (is_dir(at.mode) && !rec) {
			status = cli_fail(c, cairn_errf(CAIRN_E_ISDIR, "is a directory"),
					  "use 'rm -r' to remove a tree", "%s", ops[i]);
			break;
		}
		if ((rc = remove_tree(c, parent, leaf, &at)))
			status = cli_fail(c, rc, NULL, "%s", ops[i]);
	}
	cli_args_free(&a);
	return status;
}

static int cmd_mv(cli_ctx *c, int argc, char **argv)
{
	char sleaf[CLI_NAME_BUF], dleaf[CLI_NAME_BUF];
	uint64_t sp, dp;
	cairn_attr sa, da;
	int rc;

	if ((rc = operands_only(c, argc, argv, 2, "SRC and DST")))
		return rc;
	if ((rc = cli_resolve_parent(c, argv[1], &sp, sleaf)) ||
	    (rc = volume_lookup(c->vol, sp, sleaf, &sa))) {
		if (rc == CAIRN_E_NOTFOUND)
			cairn_errf(rc, "no such file or directory");
		return cli_fail(c, rc, NULL, "%s", argv[1]);
	}
	/* into an existing directory, as mv(1) */
	rc = cli_resolve(c, argv[2], &da);
	if (rc == 0 && is_dir(da.mode)) {
		dp = da.ino;
		memcpy(dleaf, sleaf, sizeof dleaf);
	} else if (rc == 0 || rc == CAIRN_E_NOTFOUND) {
		rc = cli_resolve_parent(c, argv[2], &dp, dleaf);
	}
	if (rc)
		return cli_fail(c, rc, NULL, "%s %s", argv[1], argv[2]);
	/* a file replaced at DST stays readable for whoever has it open */
	if ((rc = cli_mount_remove(c, dp, dleaf)) ||
	    (rc = volume_rename(c->vol, sp, sleaf, dp, dleaf, 0)))
		return cli_fail(c, rc, NULL, "%s %s", argv[1], argv[2]);
	cli_mount_entry(c, sp, sleaf);
	cli_mount_entry(c, dp, dleaf);
	return 0;
}

/* ---- put and get: a tree copied by worker threads ---- */

struct job {
	char *rel;            /* path below the copy's root ("" for the root) */
	uint64_t ino;         /* put: parent dir in the volume; get: the file */
	char *name;           /* put: name in parent */
	uint64_t dst;         /* put: the file created in the volume */
	struct stat st;       /* put: the local file's; get: mode/times */
};

struct copy {
	cli_ctx *c;
	int put;
	int rootfd;           /* put: the source's parent dir; get: LOCAL's */
	int force;
	struct job *jobs;
	size_t njobs, cap;
	_Atomic size_t next;
	_Atomic int failed;
	pthread_mutex_t mu;   /* first error */
	int rc;
	char msg[1024];
	cli_progress *prog;
	uint64_t files, dirs, links, bytes, skipped;
	/* directories whose mode and times are applied last */
	struct job *dirs_v;
	size_t ndirs, dcap;
};

static int copy_fail(struct copy *cp, int rc, const char *fmt, const char *arg)
{
	pthread_mutex_lock(&cp->mu);
	if (!cp->rc) {
		char what[600];
		snprintf(what, sizeof what, fmt, arg);
		cp->rc = rc;
		snprintf(cp->msg, sizeof cp->msg, "%s: %s", what,
			 cairn_errmsg()[0] ? cairn_errmsg() : cairn_strerror(rc));
	}
	pthread_mutex_unlock(&cp->mu);
	atomic_store(&cp->failed, 1);
	return rc;
}

static int push(struct job **v, size_t *n, size_t *cap, const struct job *j)
{
	if (*n == *cap) {
		size_t nc = *cap ? *cap * 2 : 256;
		struct job *nv = realloc(*v, nc * sizeof *nv);
		if (!nv)
			return cairn_errf(CAIRN_E_NOMEM, "job list");
		*v = nv;
		*cap = nc;
	}
	(*v)[(*n)++] = *j;
	return 0;
}

static void jobs_free(struct job *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(v[i].rel);
		free(v[i].name);
	}
	free(v);
}

static char *join_rel(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	char *s = malloc(la + lb + 2);
	if (!s)
		return NULL;
	memcpy(s, a, la);
	if (la)
		s[la++] = '/';
	memcpy(s + la, b, lb + 1);
	return s;
}

static int64_t ts_ns(struct timespec ts) { return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec; }

static int set_times(cairn_volume *vol, uint64_t ino, const struct stat *st, int mode_too)
{
	cairn_sattr sa = {0};
	sa.mask = CAIRN_SET_ATIME | CAIRN_SET_MTIME | (mode_too ? CAIRN_SET_MODE : 0);
	sa.mode = st->st_mode & 07777;
	sa.atime_ns = ts_ns(st->st_atim);
	sa.mtime_ns = ts_ns(st->st_mtim);
	return volume_setattr(vol, ino, &sa, NULL);
}

/* One local file into the volume. */
static int put_file(struct copy *cp, struct job *j, char *buf)
{
	cli_ctx *c = cp->c;
	cairn_file *f = NULL;
	cairn_attr at;
	uint64_t off = 0;
	int fd, rc;

	fd = openat(cp->rootfd, j->rel, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return copy_fail(cp, cairn_errf(cairn_rc_from_errno(errno), "%s", strerror(errno)),
				 "open %s", j->rel);
	rc = volume_create(c->vol, j->ino, j->name, j->st.st_mode & 07777,
			   new_uid(j->st.st_uid), new_gid(j->st.st_gid), &at);
	if (rc == CAIRN_E_EXISTS && cp->force) {
		rc = volume_lookup(c->vol, j->ino, j->name, &at);
		if (!rc && !S_ISREG(at.mode))
			rc = cairn_errf(CAIRN_E_EXISTS, "exists and is a %s", type_name(at.mode));
	} else if (rc == CAIRN_E_EXISTS) {
		cairn_errf(rc, "exists already (put -f replaces files)");
	}
	if (!rc)
		rc = volume_file_open(c->vol, at.ino, &f);
	if (!rc && cp->force)
		rc = volume_file_truncate(f, 0);
	while (!rc) {
		ssize_t r = read(fd, buf, COPY_BUF);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			rc = cairn_errf(cairn_rc_from_errno(errno), "read: %s", strerror(errno));
			break;
		}
		if (r == 0)
			break;
		if ((rc = volume_file_write(f, buf, (size_t)r, off)))
			break;
		off += (uint64_t)r;
		cli_progress_add(cp->prog, (uint64_t)r);
		if (atomic_load(&cp->failed) || cli_cancelled(c))
			rc = CAIRN_E_CANCELED;
	}
	close(fd);
	if (f) {
		int r = volume_file_close(f);
		if (!rc)
			rc = r;
	}
	if (!rc) {
		j->dst = at.ino;  /* times are set once the data is committed */
		/* a new name, or new bytes in place (put -f) */
		cli_mount_entry(c, j->ino, j->name);
		cli_mount_inode(c, at.ino);
	}
	if (rc == CAIRN_E_CANCELED && atomic_load(&cp->failed))
		return rc;  /* someone else's error is the one reported */
	if (rc)
		return copy_fail(cp, rc, "%s", j->rel);
	pthread_mutex_lock(&cp->mu);
	cp->files++;
	cp->bytes += off;
	pthread_mutex_unlock(&cp->mu);
	return 0;
}

/* Open rel below rootfd one component at a time, never following a
 * symlink; the last component with flags/mode. */
static int open_beneath(int rootfd, const char *rel, int flags, mode_t mode)
{
	char comp[CLI_NAME_BUF];
	int dfd = rootfd;
	const char *p = rel;
	for (;;) {
		size_t n = strcspn(p, "/");
		if (n == 0 || n >= sizeof comp) {
			errno = n ? ENAMETOOLONG : EINVAL;
			break;
		}
		memcpy(comp, p, n);
		comp[n] = 0;
		if (!p[n]) {
			int fd = openat(dfd, comp, flags | O_NOFOLLOW | O_CLOEXEC, mode);
			int e = errno;
			if (dfd != rootfd)
				close(dfd);
			errno = e;
			return fd;
		}
		int nfd = openat(dfd, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		int e = errno;
		if (dfd != rootfd)
			close(dfd);
		errno = e;
		if (nfd < 0)
			return -1;
		dfd = nfd;
		p += n + 1;
	}
	if (dfd != rootfd)
		close(dfd);
	return -1;
}

/* The parent directory of rel (below rootfd) and its last name. */
static int open_parent(int rootfd, const char *rel, const char **leaf)
{
	const char *slash = strrchr(rel, '/');
	if (!slash) {
		*leaf = rel;
		return fcntl(rootfd, F_DUPFD_CLOEXEC, 0);
	}
	char *dir = strndup(rel, (size_t)(slash - rel));
	if (!dir) {
		errno = ENOMEM;
		return -1;
	}
	int fd = open_beneath(rootfd, dir, O_RDONLY | O_DIRECTORY, 0);
	int e = errno;
	free(dir);
	errno = e;
	*leaf = slash + 1;
	return fd;
}

static int local_err(const char *what)
{
	int e = errno;
	if (e == ELOOP || e == ENOTDIR)
		return cairn_errf(CAIRN_E_EXISTS, "%s: a symlink or non-directory is in the way "
				  "(get never writes through one)", what);
	if (e == EEXIST)
		return cairn_errf(CAIRN_E_EXISTS, "%s: exists already (get -f replaces files)",
				  what);
	return cairn_errf(cairn_rc_from_errno(e), "%s: %s", what, strerror(e));
}

/* One volume file out to LOCAL. */
static int get_file(struct copy *cp, const struct job *j, char *buf)
{
	cli_ctx *c = cp->c;
	cairn_file *f = NULL;
	uint64_t off = 0;
	const char *leaf;
	int fd, pfd, rc = 0;

	/* Always a new file (O_EXCL); -f unlinks what is there first rather
	 * than truncating it, so a planted FIFO (which would block), device
	 * or hard link to a file outside LOCAL is never written through. */
	pfd = open_parent(cp->rootfd, j->rel, &leaf);
	if (pfd < 0)
		return copy_fail(cp, local_err(j->rel), "%s", "get");
	if (cp->force) {
		struct stat ls;
		int e = 0;
		if (fstatat(pfd, leaf, &ls, AT_SYMLINK_NOFOLLOW) == 0) {
			if (S_ISLNK(ls.st_mode))
				e = ELOOP;  /* in the way: an error, as without -f */
			else if (unlinkat(pfd, leaf, 0) != 0 && errno != ENOENT)
				e = errno;  /* a directory, no permission */
		}
		if (e) {
			errno = e;
			rc = local_err(j->rel);
			close(pfd);
			return copy_fail(cp, rc, "%s", "get");
		}
	}
	fd = openat(pfd, leaf, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0) {
		rc = local_err(j->rel);
		close(pfd);
		return copy_fail(cp, rc, "%s", "get");
	}
	close(pfd);
	if ((rc = volume_file_open(c->vol, j->ino, &f)))
		goto out;
	for (;;) {
		size_t got = 0;
		if (atomic_load(&cp->failed) || cli_cancelled(c)) {
			rc = CAIRN_E_CANCELED;
			break;
		}
		if ((rc = volume_file_read(f, buf, COPY_BUF, off, &got)) || got == 0)
			break;
		for (size_t done = 0; done < got;) {
			ssize_t w = write(fd, buf + done, got - done);
			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0) {
				rc = cairn_errf(cairn_rc_from_errno(errno), "write: %s",
						strerror(errno));
				break;
			}
			done += (size_t)w;
		}
		if (rc)
			break;
		off += got;
		cli_progress_add(cp->prog, got);
	}
	if (!rc) {
		struct timespec ts[2] = {j->st.st_atim, j->st.st_mtim};
		if (fchmod(fd, j->st.st_mode & 07777) || futimens(fd, ts))
			rc = cairn_errf(cairn_rc_from_errno(errno), "%s", strerror(errno));
	}
out:
	if (f) {
		int r = volume_file_close(f);
		if (!rc)
			rc = r;
	}
	if (close(fd) && !rc)
		rc = cairn_errf(CAIRN_E_IO, "close: %s", strerror(errno));
	if (rc == CAIRN_E_CANCELED && atomic_load(&cp->failed))
		return rc;
	if (rc)
		return copy_fail(cp, rc, "%s", j->rel);
	pthread_mutex_lock(&cp->mu);
	cp->files++;
	cp->bytes += off;
	pthread_mutex_unlock(&cp->mu);
	return 0;
}

static void *copy_worker(void *arg)
{
	struct copy *cp = arg;
	char *buf = malloc(COPY_BUF);
	if (!buf) {
		copy_fail(cp, cairn_errf(CAIRN_E_NOMEM, "copy buffer"), "%s", "buffer");
		return NULL;
	}
	for (;;) {
		size_t i = atomic_fetch_add(&cp->next, 1);
		if (i >= cp->njobs || atomic_load(&cp->failed))
			break;
		if (cli_cancelled(cp->c)) {
			copy_fail(cp, cairn_errf(CAIRN_E_CANCELED, "interrupted"), "%s", "copy");
			break;
		}
		if (cp->put)
			put_file(cp, &cp->jobs[i], buf);
		else
			get_file(cp, &cp->jobs[i], buf);
	}
	free(buf);
	return NULL;
}

static void run_workers(struct copy *cp, int nthreads)
{
	pthread_t t[16];
	int n = 0;
	uint64_t total = 0;
	for (size_t i = 0; i < cp->njobs; i++)
		total += (uint64_t)cp->jobs[i].st.st_size;
	cli_progress_total(cp->prog, total);
	if (nthreads > 16)
		nthreads = 16;
	if ((size_t)nthreads > cp->njobs)
		nthreads = (int)cp->njobs;
	for (int i = 0; i < nthreads; i++)
		if (pthread_create(&t[n], NULL, copy_worker, cp) == 0)
			n++;
	if (n == 0 && cp->njobs)
		copy_worker(cp);  /* no thread to be had: do it here */
	for (int i = 0; i < n; i++)
		pthread_join(t[i], NULL);
}

/* Walk the local directory dfd (rel below the root), creating its
 * subdirectories and symlinks under volume directory ino and queueing
 * its files. */
static int put_walk(struct copy *cp, int dfd, const char *rel, uint64_t ino)
{
	cli_ctx *c = cp->c;
	DIR *d = fdopendir(dfd);
	struct dirent *de;
	int rc = 0;

	if (!d) {
		close(dfd);
		return copy_fail(cp, cairn_errf(cairn_rc_from_errno(errno), "%s", strerror(errno)),
				 "read directory %s", rel[0] ? rel : ".");
	}
	while (!rc && (errno = 0, de = readdir(d)) != NULL) {
		struct stat st;
		struct job j = {0};
		cairn_attr at;
		char *crel;
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (cli_cancelled(c))
			return closedir(d), copy_fail(cp, cairn_errf(CAIRN_E_CANCELED, "interrupted"),
						      "%s", "put");
		if (!(crel = join_rel(rel, de->d_name))) {
			rc = copy_fail(cp, cairn_errf(CAIRN_E_NOMEM, "path"), "%s", de->d_name);
			break;
		}
		if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
			rc = copy_fail(cp, cairn_errf(cairn_rc_from_errno(errno), "%s",
						      strerror(errno)), "stat %s", crel);
			free(crel);
			break;
		}
		if (S_ISREG(st.st_mode)) {
			j.rel = crel;
			j.ino = ino;
			j.st = st;
			j.name = strdup(de->d_name);
			if (!j.name || push(&cp->jobs, &cp->njobs, &cp->cap, &j)) {
				free(j.name);
				free(crel);
				rc = copy_fail(cp, CAIRN_E_NOMEM, "%s", "job list");
			}
			continue;
		}
		if (S_ISDIR(st.st_mode)) {
			rc = volume_mkdir(c->vol, ino, de->d_name, (st.st_mode & 07777) | 0700,
					  new_uid(st.st_uid), new_gid(st.st_gid), &at);
			if (rc == CAIRN_E_EXISTS) {
				rc = volume_lookup(c->vol, ino, de->d_name, &at);
				if (!rc && !is_dir(at.mode))
					rc = cairn_errf(CAIRN_E_EXISTS, "exists and is not a directory");
			} else if (!rc) {
				cli_mount_entry(c, ino, de->d_name);
			}
			if (rc) {
				rc = copy_fail(cp, rc, "mkdir %s", crel);
				free(crel);
				break;
			}
			cp->dirs++;
			j.rel = crel;
			j.ino = at.ino;
			j.st = st;
			if (push(&cp->dirs_v, &cp->ndirs, &cp->dcap, &j)) {
				free(crel);
				rc = copy_fail(cp, CAIRN_E_NOMEM, "%s", "dir list");
				break;
			}
			int sub = openat(dirfd(d), de->d_name,
					 O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (sub < 0) {
				rc = copy_fail(cp, cairn_errf(cairn_rc_from_errno(errno), "%s",
							      strerror(errno)), "open %s", crel);
				break;
			}
			rc = put_walk(cp, sub, crel, at.ino);
			continue;
		}
		if (S_ISLNK(st.st_mode)) {
			/* not on the stack: put_walk recurses once per level */
			char *target = malloc(PATH_MAX);
			ssize_t n = target ? readlinkat(dirfd(d), de->d_name, target, PATH_MAX - 1)
					   : (errno = ENOMEM, -1);
			if (n < 0) {
				rc = copy_fail(cp, cairn_errf(cairn_rc_from_errno(errno), "%s",
							      strerror(errno)), "readlink %s", crel);
			} else {
				target[n] = 0;
				rc = volume_symlink(c->vol, ino, de->d_name, target,
						    new_uid(st.st_uid), new_gid(st.st_gid), &at);
				if (!rc)
					cli_mount_entry(c, ino, de->d_name);
				if (!rc)
					rc = set_times(c->vol, at.ino, &st, 0);
				if (rc)
					rc = copy_fail(cp, rc, "symlink %s", crel);
				else
					cp->links++;
			}
			free(target);
		} else if (S_ISFIFO(st.st_mode)) {
			rc = volume_mknod(c->vol, ino, de->d_name, st.st_mode, 0,
					  new_uid(st.st_uid), new_gid(st.st_gid), &at);
			if (rc)
				rc = copy_fail(cp, rc, "mkfifo %s", crel);
			else
				cli_mount_entry(c, ino, de->d_name);
		} else {
			cli_info(c, "cairn: put: skipping %s (a %s)", crel, type_name(st.st_mode));
			cp->skipped++;
		}
		free(crel);
	}
	if (!rc && errno)
		rc = copy_fail(cp, cairn_errf(cairn_rc_from_errno(errno), "%s", strerror(errno)),
			       "read directory %s", rel[0] ? rel : ".");
	closedir(d);
	return rc;
}

static int copy_opts(cli_ctx *c, int argc, char **argv, int *rec, int *force, int *threads,
		     char **src, char **dst)
{
	enum { O_REC = 1, O_FORCE, O_JOBS };
	static const cli_opt opts[] = {
		{"recursive", 'r', 0, O_REC}, {"force", 'f', 0, O_FORCE},
		{"jobs", 'j', 1, O_JOBS}, {NULL, 0, 0, 0},
	};
	int opt, n, status = 0;
	char **ops;
	cli_args a;

	cli_args_init(&a, argc, argv);
	while (!status && (opt = cli_getopt(c, &a, opts)) != 0) {
		char *end;
		switch (opt) {
		case O_REC: *rec = 1; break;
		case O_FORCE: *force = 1; break;
		case O_JOBS:
			*threads = (int)strtol(a.arg, &end, 10);
			if (*end || *threads < 1 || *threads > 16)
				status = cli_usage(c, "--jobs takes 1..16, not '%s'", a.arg);
			break;
		default: status = CLI_EXIT_USAGE;
		}
	}
	ops = cli_operands(&a, &n);
	if (!status && n < 2)
		status = cli_usage(c, n ? "missing the destination" : "missing the source and "
				   "the destination");
	if (!status && n > 2)
		status = cli_usage(c, "unexpected argument '%s'", ops[2]);
	if (!status) {
		*src = ops[0];
		*dst = ops[1];
	}
	/* argv outlives a: the operands point into it */
	cli_args_free(&a);
	return status;
}

static void copy_report(struct copy *cp, const char *verb, int64_t t0)
{
	cli_ctx *c = cp->c;
	struct timespec now;
	char b[24], r[24];
	clock_gettime(CLOCK_MONOTONIC, &now);
	double secs = (double)(ts_ns(now) - t0) / 1e9;
	if (c->json) {
		cli_json j;
		cli_json_init(&j, c->out);
		cli_json_obj_begin(&j);
		cli_json_ku64(&j, "files", cp->files);
		cli_json_ku64(&j, "dirs", cp->dirs);
		cli_json_ku64(&j, "symlinks", cp->links);
		cli_json_ku64(&j, "bytes", cp->bytes);
		cli_json_ku64(&j, "skipped", cp->skipped);
		cli_json_kf64(&j, "seconds", secs);
		cli_json_obj_end(&j);
		return;
	}
	cli_info(c, "%s %llu files, %llu directories, %llu symlinks, %s in %.1f s (%s/s)", verb,
		 (unsigned long long)cp->files, (unsigned long long)cp->dirs,
		 (unsigned long long)cp->links, cli_fmt_bytes(cp->bytes, b, sizeof b), secs,
		 cli_fmt_bytes(secs > 0 ? (uint64_t)((double)cp->bytes / secs) : 0, r, sizeof r));
}

static int copy_init(struct copy *cp, cli_ctx *c, int put)
{
	memset(cp, 0, sizeof *cp);
	cp->c = c;
	cp->put = put;
	cp->rootfd = -1;
	pthread_mutex_init(&cp->mu, NULL);
	return 0;
}

static int copy_finish(struct copy *cp, const char *arg)
{
	cli_ctx *c = cp->c;
	int status = 0;
	cli_progress_end(cp->prog);
	cp->prog = NULL;
	if (cp->rc) {
		cairn_err_set(cp->rc, cp->msg);
		status = cli_fail(c, cp->rc, NULL, "%s", arg);
	}
	jobs_free(cp->jobs, cp->njobs);
	jobs_free(cp->dirs_v, cp->ndirs);
	if (cp->rootfd >= 0)
		close(cp->rootfd);
	pthread_mutex_destroy(&cp->mu);
	return status;
}

static int cmd_put(cli_ctx *c, int argc, char **argv)
{
	int rec = 0, force = 0, threads = PUT_THREADS, rc, status;
	char *src, *dst, local[PATH_MAX], leaf[CLI_NAME_BUF];
	struct copy cp;
	struct stat st;
	struct timespec t0;
	cairn_attr at;
	uint64_t parent;
	const char *base;
	char name[CLI_NAME_BUF];

	if ((status = copy_opts(c, argc, argv, &rec, &force, &threads, &src, &dst)))
		return status;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	if (cli_local_path(c, src, local, sizeof local))
		return cli_fail(c, cairn_errf(CAIRN_E_NAMETOOLONG, "path too long"), NULL,
				"%s", src);
	while (strlen(local) > 1 && local[strlen(local) - 1] == '/')
		local[strlen(local) - 1] = 0;
	/* A symlink named on the command line is followed (as cp -H), the
	 * ones inside the tree are copied as symlinks. */
	if (stat(local, &st) != 0)
		return cli_fail(c, cairn_errf(cairn_rc_from_errno(errno), "%s", strerror(errno)),
				NULL, "%s", src);
	base = strrchr(local, '/');
	snprintf(name, sizeof name, "%s", base && base[1] ? base + 1 : local);
	{
		char real[PATH_MAX];
		struct stat lst;
		if (lstat(local, &lst) == 0 && S_ISLNK(lst.st_mode) && realpath(local, real))
			snprintf(local, sizeof local, "%s", real);
	}
	if (S_ISDIR(st.st_mode) && !rec)
		return cli_fail(c, cairn_errf(CAIRN_E_ISDIR, "is a directory"),
				"use 'put -r' for a tree", "%s", src);
	if (!S_ISDIR(st.st_mode) && !S_ISREG(st.st_mode))
		return cli_fail(c, cairn_errf(CAIRN_E_INVAL, "not a regular file or directory"),
				NULL, "%s", src);
	base = strrchr(local, '/');
	base = base && base[1] ? base + 1 : local;
	/* An existing directory DST receives the source by its name. */
	rc = cli_resolve(c, dst, &at);
	if (rc == 0 && is_dir(at.mode) && strcmp(name, "/") != 0) {
		parent = at.ino;
		snprintf(leaf, sizeof leaf, "%s", name);
	} else if (rc == 0 || rc == CAIRN_E_NOTFOUND) {
		rc = cli_resolve_parent(c, dst, &parent, leaf);
	}
	if (rc)
		return cli_fail(c, rc, NULL, "%s %s", src, dst);

	copy_init(&cp, c, 1);
	cp.force = force;
	cp.prog = cli_progress_start(c, "put", 0);
	if (S_ISREG(st.st_mode)) {
		/* one file: its directory is the root of the copy */
		char dir[PATH_MAX];
		struct job j = {0};
		snprintf(dir, sizeof dir, "%.*s", (int)(base - local), local);
		cp.rootfd = open(dir[0] ? dir : "/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		j.rel = strdup(base);
		j.name = strdup(leaf);
		j.ino = parent;
		j.st = st;
		if (cp.rootfd < 0)
			copy_fail(&cp, cairn_errf(cairn_rc_from_errno(errno), "%s", strerror(errno)),
				  "open %s", dir);
		else if (!j.rel || !j.name || push(&cp.jobs, &cp.njobs, &cp.cap, &j))
			copy_fail(&cp, CAIRN_E_NOMEM, "%s", "job");
	} else {
		struct job j = {0};
		int fd = open(local, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		rc = fd < 0 ? cairn_errf(cairn_rc_from_errno(errno), "%s", strerror(errno)) :
			volume_mkdir(c->vol, parent, leaf, (st.st_mode & 07777) | 0700,
				     new_uid(st.st_uid), new_gid(st.st_gid), &at);
		if (rc == CAIRN_E_EXISTS && force) {
			rc = volume_lookup(c->vol, parent, leaf, &at);
			if (!rc && !is_dir(at.mode))
				rc = cairn_errf(CAIRN_E_EXISTS, "exists and is not a directory");
		} else if (rc == CAIRN_E_EXISTS) {
			cairn_errf(rc, "'%s' exists already (put -f merges into it)", leaf);
		} else if (!rc) {
			cli_mount_entry(c, parent, leaf);
		}
		if (rc) {
			if (fd >= 0)
				close(fd);
			copy_fail(&cp, rc, "%s", dst);
		} else {
			cp.dirs++;
			j.rel = strdup("");
			j.ino = at.ino;
			j.st = st;
			if (!j.rel || push(&cp.dirs_v, &cp.ndirs, &cp.dcap, &j))
				copy_fail(&cp, CAIRN_E_NOMEM, "%s", "dir list");
			cp.rootfd = open(local, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
			if (cp.rootfd < 0)
				copy_fail(&cp, cairn_errf(cairn_rc_from_errno(errno), "%s",
							  strerror(errno)), "open %s", local);
			else
				put_walk(&cp, fd, "", at.ino);
		}
	}
	if (!cp.rc)
		run_workers(&cp, threads);
	/* Commit everything once (put returns with its data committed),
	 * then give the files their times. */
	if (!cp.rc && cp.njobs && (rc = volume_sync(c->vol)))
		copy_fail(&cp, rc, "%s", "commit");
	for (size_t i = 0; i < cp.njobs && !cp.rc; i++)
		if ((rc = set_times(c->vol, cp.jobs[i].dst, &cp.jobs[i].st, 0)))
			copy_fail(&cp, rc, "set times of %s", cp.jobs[i].rel);
		else
			cli_mount_inode(c, cp.jobs[i].dst);
	/* directories last, deepest first: their entries are all in */
	for (size_t i = cp.ndirs; i-- > 0 && !cp.rc;)
		if ((rc = set_times(c->vol, cp.dirs_v[i].ino, &cp.dirs_v[i].st, 1)))
			copy_fail(&cp, rc, "set times of %s", cp.dirs_v[i].rel[0] ? cp.dirs_v[i].rel : ".");
		else
			cli_mount_inode(c, cp.dirs_v[i].ino);
	if (!cp.rc)
		copy_report(&cp, "put", ts_ns(t0));
	return copy_finish(&cp, src);
}

/* A stored name that is safe as one local path component. */
static int safe_name(const char *n)
{
	return n[0] && strcmp(n, ".") != 0 && strcmp(n, "..") != 0 && !strchr(n, '/');
}

static void attr_to_stat(const cairn_attr *a, struct stat *st)
{
	memset(st, 0, sizeof *st);
	st->st_mode = a->mode;
	st->st_size = (off_t)a->size;
	st->st_atim.tv_sec = a->atime_ns / 1000000000;
	st->st_atim.tv_nsec = a->atime_ns % 1000000000;
	st->st_mtim.tv_sec = a->mtime_ns / 1000000000;
	st->st_mtim.tv_nsec = a->mtime_ns % 1000000000;
	if (st->st_atim.tv_nsec < 0) {
		st->st_atim.tv_sec--;
		st->st_atim.tv_nsec += 1000000000;
	}
	if (st->st_mtim.tv_nsec < 0) {
		st->st_mtim.tv_sec--;
		st->st_mtim.tv_nsec += 1000000000;
	}
}

/* Walk volume directory ino (rel below LOCAL's root), creating local
 * directories and symlinks and queueing files. */
static int get_walk(struct copy *cp, uint64_t ino, const char *rel)
{
	cli_ctx *c = cp->c;
	struct entlist l;
	int rc;

	if ((rc = list_dir(c->vol, ino, &l)))
		return copy_fail(cp, rc, "list %s", rel[0] ? rel : ".");
	for (size_t i = 0; i < l.n && !rc; i++) {
		struct job j = {0};
		cairn_attr a;
		char *crel;
		if (cli_cancelled(c)) {
			rc = copy_fail(cp, cairn_errf(CAIRN_E_CANCELED, "interrupted"), "%s", "get");
			break;
		}
		if (!safe_name(l.v[i].name)) {
			rc = copy_fail(cp, cairn_errf(CAIRN_E_INVAL, "refusing the stored name '%s'",
						      l.v[i].name), "%s", rel[0] ? rel : ".");
			break;
		}
		if ((rc = volume_getattr(c->vol, l.v[i].ino, &a))) {
			rc = copy_fail(cp, rc, "%s", l.v[i].name);
			break;
		}
		if (!(crel = join_rel(rel, l.v[i].name))) {
			rc = copy_fail(cp, CAIRN_E_NOMEM, "%s", "path");
			break;
		}
		j.rel = crel;
		j.ino = a.ino;
		attr_to_stat(&a, &j.st);
		if (S_ISREG(a.mode)) {
			if (push(&cp->jobs, &cp->njobs, &cp->cap, &j)) {
				free(crel);
				rc = copy_fail(cp, CAIRN_E_NOMEM, "%s", "job list");
			}
			continue;
		}
		if (S_ISDIR(a.mode) || S_ISLNK(a.mode)) {
			const char *leaf;
			int pfd = open_parent(cp->rootfd, crel, &leaf), r = 0;
			/* not on the stack: get_walk recurses once per level */
			char *target = NULL;
			if (pfd < 0) {
				rc = copy_fail(cp, local_err(crel), "%s", "get");
				free(crel);
				break;
			}
			if (S_ISDIR(a.mode)) {
				r = mkdirat(pfd, leaf, 0700);
				if (r != 0 && errno == EEXIST) {
					/* merging into an existing directory: it
					 * must be a real one */
					int t = openat(pfd, leaf, O_RDONLY | O_DIRECTORY |
						       O_NOFOLLOW | O_CLOEXEC);
					r = t < 0 ? -1 : close(t);
				}
				if (r == 0)
					cp->dirs++;
			} else {
				if (!(target = malloc(PATH_MAX)))
					rc = cairn_errf(CAIRN_E_NOMEM, "symlink target");
				else
					rc = link_target(c->vol, &a, target, PATH_MAX);
				if (!rc) {
					r = symlinkat(target, pfd, leaf);
					if (r == 0) {
						struct timespec ts[2] = {j.st.st_atim, j.st.st_mtim};
						r = utimensat(pfd, leaf, ts, AT_SYMLINK_NOFOLLOW);
						cp->links++;
					}
				}
			}
			if (!rc && r != 0)
				rc = local_err(crel);
			close(pfd);
			free(target);
			if (rc) {
				copy_fail(cp, rc, "%s", "get");
				free(crel);
				break;
			}
			if (S_ISDIR(a.mode)) {
				if (push(&cp->dirs_v, &cp->ndirs, &cp->dcap, &j)) {
					free(crel);
					rc = copy_fail(cp, CAIRN_E_NOMEM, "%s", "dir list");
					break;
				}
				rc = get_walk(cp, a.ino, crel);
			} else {
				free(crel);
			}
			continue;
		}
		cli_info(c, "cairn: get: skipping %s (a %s)", crel, type_name(a.mode));
		cp->skipped++;
		free(crel);
	}
	entlist_free(&l);
	return rc;
}

static int cmd_get(cli_ctx *c, int argc, char **argv)
{
	int rec = 0, force = 0, threads = PUT_THREADS, rc, status;
	char *src, *dst, local[PATH_MAX], dir[PATH_MAX], sbase[PATH_MAX];
	const char *name;
	struct copy cp;
	struct stat st;
	struct timespec t0;
	cairn_attr at;

	if ((status = copy_opts(c, argc, argv, &rec, &force, &threads, &src, &dst)))
		return status;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	if ((rc = cli_resolve(c, src, &at)))
		return cli_fail(c, rc, NULL, "%s", src);
	if (is_dir(at.mode) && !rec)
		return cli_fail(c, cairn_errf(CAIRN_E_ISDIR, "is a directory"),
				"use 'get -r' for a tree", "%s", src);
	if (!is_dir(at.mode) && !S_ISREG(at.mode))
		return cli_fail(c, cairn_errf(CAIRN_E_INVAL, "not a regular file or directory"),
				NULL, "%s", src);
	if (cli_local_path(c, dst, local, sizeof local))
		return cli_fail(c, cairn_errf(CAIRN_E_NAMETOOLONG, "path too long"), NULL,
				"%s", dst);
	while (strlen(local) > 1 && local[strlen(local) - 1] == '/')
		local[strlen(local) - 1] = 0;
	/* LOCAL an existing directory: the source goes in by its name;
	 * else LOCAL names it (its parent must exist). */
	if (stat(local, &st) == 0 && S_ISDIR(st.st_mode)) {
		/* the last name of src: "/ds/", "/ds/." and "/ds" are "ds" */
		size_t l = (size_t)snprintf(sbase, sizeof sbase, "%s", src);
		const char *b;
		if (l >= sizeof sbase)
			l = sizeof sbase - 1;
		for (;;) {
			while (l > 0 && sbase[l - 1] == '/')
				sbase[--l] = 0;
			if ((l == 1 && sbase[0] == '.') || (l >= 2 && sbase[l - 1] == '.' &&
							    sbase[l - 2] == '/')) {
				sbase[--l] = 0;
				continue;
			}
			break;
		}
		snprintf(dir, sizeof dir, "%s", local);
		b = strrchr(sbase, '/');
		b = b ? b + 1 : sbase;
		name = b;
		if (at.ino == CAIRN_ROOT_INO || b[0] == '@' || !b[0])
			name = NULL;  /* the root itself: its entries go into LOCAL */
	} else {
		char *slash = strrchr(local, '/');
		if (!slash) {
			/* relative, with no working directory known */
			strcpy(dir, ".");
			name = local;
		} else {
			snprintf(dir, sizeof dir, "%.*s", (int)(slash - local), local);
			if (!dir[0])
				strcpy(dir, "/");
			name = slash + 1;
		}
	}
	if (name && !safe_name(name))
		return cli_fail(c, cairn_errf(CAIRN_E_INVAL, "bad local name '%s'", name), NULL,
				"%s", dst);

	copy_init(&cp, c, 0);
	cp.force = force;
	cp.prog = cli_progress_start(c, "get", 0);
	cp.rootfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (cp.rootfd < 0) {
		copy_fail(&cp, cairn_errf(cairn_rc_from_errno(errno), "%s", strerror(errno)),
			  "open %s", dir);
	} else if (!is_dir(at.mode)) {
		struct job j = {0};
		j.rel = strdup(name);
		j.ino = at.ino;
		attr_to_stat(&at, &j.st);
		if (!j.rel || push(&cp.jobs, &cp.njobs, &cp.cap, &j))
			copy_fail(&cp, CAIRN_E_NOMEM, "%s", "job");
	} else if (!name) {
		get_walk(&cp, at.ino, "");
	} else {
		/* the tree's top directory: a new one, or an existing real
		 * directory when forced */
		struct job j = {0};
		if (mkdirat(cp.rootfd, name, 0700) != 0) {
			int t = -1;
			if (errno == EEXIST && force)
				t = openat(cp.rootfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
					   O_CLOEXEC);
			if (t < 0)
				copy_fail(&cp, local_err(name), "%s", "get");
			else
				close(t);
		}
		if (!cp.rc) {
			cp.dirs++;
			j.rel = strdup(name);
			j.ino = at.ino;
			attr_to_stat(&at, &j.st);
			if (!j.rel || push(&cp.dirs_v, &cp.ndirs, &cp.dcap, &j))
				copy_fail(&cp, CAIRN_E_NOMEM, "%s", "dir list");
			else
				get_walk(&cp, at.ino, name);
		}
	}
	if (!cp.rc)
		run_workers(&cp, threads);
	for (size_t i = cp.ndirs; i-- > 0 && !cp.rc;) {
		struct job *j = &cp.dirs_v[i];
		int fd = open_beneath(cp.rootfd, j->rel, O_RDONLY | O_DIRECTORY, 0);
		struct timespec ts[2] = {j->st.st_atim, j->st.st_mtim};
		if (fd < 0 || fchmod(fd, j->st.st_mode & 07777) || futimens(fd, ts))
			copy_fail(&cp, local_err(j->rel), "%s", "get");
		if (fd >= 0)
			close(fd);
	}
	if (!cp.rc)
		copy_report(&cp, "got", ts_ns(t0));
	return copy_finish(&cp, src);
}

const cli_command cli_fs_commands[] = {
	{"ls", "list a directory of the volume",
	 "usage: cairn ls [-l] [-a] [PATH]\n"
	 "\n"
	 "List the entries of the volume directory PATH (default /), sorted by\n"
	 "name; for a file, the file itself.  PATH is /a/b in the live tree or\n"
	 "@SNAP/a/b inside snapshot SNAP.\n"
	 "\n"
	 "  -l, --long  mode, links, uid, gid, size, mtime (UTC), name\n"
	 "  -a, --all   include names starting with '.'\n"
	 "\n"
	 "With --json: {\"path\", \"entries\": [{\"name\", \"type\", \"ino\", \"mode\",\n"
	 "\"nlink\", \"uid\", \"gid\", \"size\", \"mtime_ns\", \"mtime\", \"target\"}]}.\n",
	 CLI_VOLUME, cmd_ls},
	{"stat", "show a file's attributes",
	 "usage: cairn stat PATH\n"
	 "\n"
	 "Print type, symlink target, inode, mode, links, owner, size and times\n"
	 "of PATH (symlinks are not followed).  With --json, one object.\n",
	 CLI_VOLUME, cmd_stat},
	{"cat", "write a file's bytes to stdout",
	 "usage: cairn cat PATH\n"
	 "\n"
	 "Copy the bytes of the regular file PATH to standard output.\n",
	 CLI_VOLUME, cmd_cat},
	{"put", "copy local files into the volume",
	 "usage: cairn put [-r] [-f] [-j N] LOCAL PATH\n"
	 "\n"
	 "Copy the local file or, with -r, the directory tree LOCAL into the\n"
	 "volume as PATH (or into PATH/NAME when PATH is an existing directory).\n"
	 "Files are copied by N threads (default 4): small files pack into\n"
	 "segments, large ones stream to the store.  Modes, times and symlinks\n"
	 "are kept; fifos are recreated; sockets and devices are skipped.\n"
	 "\n"
	 "  -r, --recursive  copy a directory tree\n"
	 "  -f, --force      replace existing files, merge into existing\n"
	 "                   directories (default: exists is an error, exit 4)\n"
	 "  -j, --jobs N     copy threads, 1..16\n"
	 "\n"
	 "When the volume is mounted, the mount daemon reads LOCAL as its own\n"
	 "user.  Prints a summary (or one JSON object with --json).\n",
	 CLI_VOLUME, cmd_put},
	{"get", "copy files out of the volume",
	 "usage: cairn get [-r] [-f] [-j N] PATH LOCAL\n"
	 "\n"
	 "Copy the volume file or, with -r, the tree PATH (live or @SNAP/...) to\n"
	 "the local LOCAL (or into LOCAL/NAME when LOCAL is an existing\n"
	 "directory).  Modes, times and symlinks are kept.  Nothing is ever\n"
	 "written outside LOCAL: stored names '.', '..' or with '/' are refused,\n"
	 "and an existing symlink below LOCAL is an error, never followed.\n"
	 "\n"
	 "  -r, --recursive  copy a directory tree\n"
	 "  -f, --force      replace existing local files (default: exists is\n"
	 "                   an error, exit 4)\n"
	 "  -j, --jobs N     copy threads, 1..16\n"
	 "\n"
	 "When the volume is mounted, the mount daemon writes LOCAL as its own\n"
	 "user.\n",
	 CLI_VOLUME, cmd_get},
	{"mkdir", "create directories",
	 "usage: cairn mkdir [-p] PATH...\n"
	 "\n"
	 "Create the directories PATH (mode 0755).\n"
	 "\n"
	 "  -p, --parents  create missing parents; existing ones are fine\n",
	 CLI_VOLUME, cmd_mkdir},
	{"rm", "remove files or trees",
	 "usage: cairn rm [-r] [-f] PATH...\n"
	 "\n"
	 "Remove the files PATH; with -r also directories and all they hold.\n"
	 "The space is reclaimed by 'cairn gc' once nothing (a snapshot, a\n"
	 "clone) references the data.\n"
	 "\n"
	 "  -r, --recursive  remove directory trees\n"
	 "  -f, --force      a missing PATH is not an error\n",
	 CLI_VOLUME, cmd_rm},
	{"mv", "rename or move a file or tree",
	 "usage: cairn mv SRC DST\n"
	 "\n"
	 "Rename SRC to DST, or move it into DST when DST is an existing\n"
	 "directory.  An existing file DST is replaced.  One metadata\n"
	 "transaction: no data moves.\n",
	 CLI_VOLUME, cmd_mv},
	{0},
};
