/*
 * cairn.c - the cairn command line: git-style subcommands over the volume
 * API.
 *
 * Contract with the user (docs/cli.md):
 *   - every command has --help; `cairn help CMD` prints the same;
 *   - exit 0 on success; on failure one line on stderr, "cairn: CMD: what
 *     failed: why" followed by what to do where we know it, and a non-zero
 *     exit status (tools/cli.h): 1 failed, 2 usage, 3 not found, 4 exists,
 *     5 volume busy without a control socket, 6 refused by a read-only
 *     mount;
 *   - global options come before the command: --volume DIR (or
 *     $CAIRN_VOLUME, default ~/.local/share/cairn/default), --json, -q, -v,
 *     --log-file FILE.
 *
 * Commands are tables of cli_command rows (tools/cli.h): the built-ins
 * here (version, format, mount, umount, stats, help) and one table per
 * cmd_*.c file.  A CLI_VOLUME command runs either in the mount daemon
 * through its control socket (cli_ctl.c), when the volume is mounted, or
 * here on a volume this process opens and closes.  mount/umount/stats call
 * the FUSE library (cairn/fuse.h, docs/fuse.md).  Run as mount.fuse.cairn
 * (a symlink), the binary is mount(8)'s helper for fstab lines of type
 * fuse.cairn.
 */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cairn/fuse.h"
#include "cli.h"

struct global {
	const char *volume;
	const char *log_file;
};

static struct global g;

static const cli_command builtin_commands[];

static const cli_command *const tables[] = {
	builtin_commands, cli_fs_commands, cli_ckpt_commands, cli_admin_commands,
};

static const cli_command *find_command(const char *name)
{
	for (size_t t = 0; t < sizeof tables / sizeof tables[0]; t++)
		for (const cli_command *c = tables[t]; c->name; c++)
			if (strcmp(c->name, name) == 0)
				return c;
	return NULL;
}


static int no_args(cli_ctx *c, int argc, char **argv)
{
	if (argc > 1)
		return argv[1][0] == '-' && argv[1][1] ?
			cli_usage(c, "unknown option '%s'", argv[1]) :
			cli_usage(c, "unexpected argument '%s'", argv[1]);
	return 0;
}

static int cmd_version(cli_ctx *c, int argc, char **argv)
{
	cairn_uring *u = NULL;
	const char *engine = "unavailable";
	const char *reason = "";
	int rc;

	if ((rc = no_args(c, argc, argv)))
		return rc;
	/* The engine that would run here, with the reason for a fallback. */
	rc = uring_open(NULL, &u);
	if (rc == CAIRN_OK) {
		engine = uring_engine_name(u);
		reason = uring_fallback_reason(u);
	} else {
		reason = cairn_errmsg();
	}
	if (c->json) {
		cli_json j;
		cli_json_init(&j, c->out);
		cli_json_obj_begin(&j);
		cli_json_kstr(&j, "version", CAIRN_VERSION);
		cli_json_kstr(&j, "io_engine", engine);
		cli_json_kstr(&j, "io_engine_fallback_reason", reason);
		cli_json_kstr(&j, "crc32c", cairn_crc32c_impl());
		cli_json_obj_end(&j);
	} else {
		fprintf(c->out, "cairn %s\n", CAIRN_VERSION);
		fprintf(c->out, "io engine: %s%s%s%s\n", engine, reason[0] ? " (" : "", reason,
			reason[0] ? ")" : "");
		fprintf(c->out, "crc32c: %s\n", cairn_crc32c_impl());
	}
	uring_close(u);
	return rc == CAIRN_OK ? 0 : CLI_EXIT_FAIL;
}

/* mkdir -p of the directories above path (not path itself). */
static int mkdir_parents(const char *path)
{
	char buf[4096];
	size_t n = strlen(path);

	if (n >= sizeof buf)
		return cairn_errf(CAIRN_E_NAMETOOLONG, "volume path %s is too long", path);
	memcpy(buf, path, n + 1);
	while (n > 1 && buf[n - 1] == '/')
		buf[--n] = '\0';
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		if (!strchr(p + 1, '/') && p[1] != '\0') {
			/* last component: volume_format creates it */
			*p = '\0';
			if (mkdir(buf, 0755) != 0 && errno != EEXIST)
				return cairn_errf(cairn_rc_from_errno(errno), "mkdir %s: %s",
						  buf, strerror(errno));
			break;
		}
		*p = '\0';
		if (mkdir(buf, 0755) != 0 && errno != EEXIST)
			return cairn_errf(cairn_rc_from_errno(errno), "mkdir %s: %s", buf,
					  strerror(errno));
		*p = '/';
	}
	return 0;
}

static int cmd_format(cli_ctx *c, int argc, char **argv)
{
	enum { O_STORE = 1, O_COMPRESS, O_LEVEL, O_SEGSIZE };
	static const cli_opt opts[] = {
		{"store", 0, 1, O_STORE},
		{"compress", 0, 1, O_COMPRESS},
		{"zstd-level", 0, 1, O_LEVEL},
		{"segment-size", 0, 1, O_SEGSIZE},
		{NULL, 0, 0, 0},
	};
	cairn_format_opts fo = {0};
	cli_args a;
	char **ops;
	int opt, none = 0, nops, status = 0;
	long level = 0;

	cli_args_init(&a, argc, argv);
	while (!status && (opt = cli_getopt(c, &a, opts)) != 0) {
		char *end = NULL;
		switch (opt) {
		case O_STORE: fo.store_url = a.arg; break;
		case O_COMPRESS:
			if (strcmp(a.arg, "none") == 0)
				none = 1;
			else if (strcmp(a.arg, "zstd") != 0)
				status = cli_usage(c, "--compress takes zstd or none, not '%s'", a.arg);
			break;
		case O_LEVEL:
			errno = 0;
			level = strtol(a.arg, &end, 10);
			if (errno || !end || *end || level < 1 || level > 19)
				status = cli_usage(c, "--zstd-level takes 1..19, not '%s'", a.arg);
			break;
		case O_SEGSIZE:
			if (cli_parse_size(a.arg, &fo.segment_size) ||
			    fo.segment_size < (1u << 20) || fo.segment_size > (1ull << 32))
				status = cli_usage(c, "--segment-size takes 1M..4G (e.g. 64M), not '%s'",
						   a.arg);
			break;
		default:
			status = CLI_EXIT_USAGE;
		}
	}
	ops = cli_operands(&a, &nops);
	if (!status && nops > 0)
		status = cli_usage(c, "unexpected argument '%s'", ops[0]);
	cli_args_free(&a);
	if (status)
		return status;
	fo.zstd_level = none ? -1 : (int)level;
	if (mkdir_parents(c->volume_dir) || volume_format(c->volume_dir, &fo)) {
		fprintf(c->err, "cairn: format: %s\n", cairn_errmsg());
		return CLI_EXIT_FAIL;
	}
	if (c->json) {
		cli_json j;
		cli_json_init(&j, c->out);
		cli_json_obj_begin(&j);
		cli_json_kstr(&j, "volume", c->volume_dir);
		cli_json_kstr(&j, "store", fo.store_url ? fo.store_url : "default");
		cli_json_obj_end(&j);
	} else if (c->verbose >= 0) {
		fprintf(c->out, "formatted volume %s (store: %s)\n", c->volume_dir,
			fo.store_url ? fo.store_url : "file:// inside the volume");
	}
	return 0;
}

/* The mount daemon's control socket: started once the volume is open and
 * the kernel mount live, stopped before the volume closes. */
struct ctl_hook {
	const char *volume_dir;
	char mountpoint[PATH_MAX];
	cli_ctl *ctl;
	cli_mount mount;    /* commands tell the mount what they change */
};

static int mount_pin(void *arg, uint64_t parent, const char *name)
{
	return cairn_mount_live_pin(arg, parent, name);
}

static void mount_entry(void *arg, uint64_t parent, const char *name)
{
	cairn_mount_live_inval_entry(arg, parent, name);
}

static void mount_inode(void *arg, uint64_t ino)
{
	cairn_mount_live_inval_inode(arg, ino);
}

static int ctl_on_open(struct cairn_volume *vol, cairn_mount_live *m, void *arg)
{
	struct ctl_hook *h = arg;
	h->mount.arg = m;
	h->mount.read_only = cairn_mount_live_read_only(m);
	h->mount.pin = mount_pin;
	h->mount.entry = mount_entry;
	h->mount.inode = mount_inode;
	return cli_ctl_start(vol, h->volume_dir, h->mountpoint, &h->mount, &h->ctl);
}

static void ctl_on_close(void *arg)
{
	struct ctl_hook *h = arg;
	cli_ctl_stop(h->ctl);
	h->ctl = NULL;
}

static int do_mount(cairn_mount_opts *o, struct ctl_hook *h)
{
	h->volume_dir = o->volume_dir;
	if (!realpath(o->mountpoint, h->mountpoint))
		snprintf(h->mountpoint, sizeof h->mountpoint, "%s", o->mountpoint);
	o->on_open = ctl_on_open;
	o->on_close = ctl_on_close;
	o->hook_arg = h;
	return cairn_mount(o);
}

static int cmd_mount(cli_ctx *c, int argc, char **argv)
{
	enum { O_FG = 1, O_DEBUG, O_OPT, O_FOLLOW, O_STORE };
	static const cli_opt opts[] = {
		{"foreground", 'f', 0, O_FG},
		{"debug", 'd', 0, O_DEBUG},
		{"options", 'o', 1, O_OPT},
		{"follow", 0, 0, O_FOLLOW},
		{"store", 0, 1, O_STORE},
		{NULL, 0, 0, 0},
	};
	const char *store = NULL;
	int follow = 0;
	static struct ctl_hook hook;
	cairn_mount_opts o;
	cli_args a;
	char **ops;
	int opt, nops, status = 0;

	cairn_mount_opts_init(&o);
	cli_args_init(&a, argc, argv);
	while (!status && (opt = cli_getopt(c, &a, opts)) != 0) {
		switch (opt) {
		case O_FG: o.foreground = 1; break;
		case O_DEBUG: o.debug = 1; o.foreground = 1; break;
		case O_OPT:
			if (cairn_mount_opts_parse(&o, a.arg))
				status = cli_usage(c, "%s", cairn_errmsg());
			break;
		case O_FOLLOW: follow = 1; break;
		case O_STORE: store = a.arg; break;
		default:
			status = CLI_EXIT_USAGE;
		}
	}
	ops = cli_operands(&a, &nops);
	if (!status && nops < 1)
		status = cli_usage(c, "missing MOUNTPOINT");
	if (!status && nops > 1)
		status = cli_usage(c, "unexpected argument '%s'", ops[1]);
	if (!status && follow && !store)
		status = cli_usage(c, "--follow needs --store URL (the writer's store)");
	if (!status && store && !follow)
		status = cli_usage(c, "--store is for --follow (a volume's own store is in "
				   "its volume.conf)");
	if (!status && follow) {
		/* The follower's own directory: created if missing; one that
		 * holds a writer volume is refused by volume_open_follower. */
		char conf[PATH_MAX + 16];
		struct stat st;
		snprintf(conf, sizeof conf, "%s/volume.conf", c->volume_dir);
		if (stat(conf, &st) == 0) {
			fprintf(c->err, "cairn: mount: %s holds a writer volume; a follower needs "
				"a directory of its own (--volume DIR)\n", c->volume_dir);
			status = CLI_EXIT_FAIL;
		} else if (mkdir_parents(c->volume_dir)) {
			fprintf(c->err, "cairn: mount: %s\n", cairn_errmsg());
			status = CLI_EXIT_FAIL;
		} else if (mkdir(c->volume_dir, 0755) != 0 && errno != EEXIST) {
			fprintf(c->err, "cairn: mount: create %s: %s\n", c->volume_dir,
				strerror(errno));
			status = CLI_EXIT_FAIL;
		}
		o.follow_store = store;
		o.read_only = 1;
	}
	if (!status) {
		o.volume_dir = c->volume_dir;
		o.mountpoint = ops[0];
		o.log_file = g.log_file;
		if (do_mount(&o, &hook)) {
			fprintf(c->err, "cairn: mount: %s\n", cairn_errmsg());
			status = CLI_EXIT_FAIL;
		}
	}
	cli_args_free(&a);
	return status;
}

/* One MOUNTPOINT operand, no options. */
static int one_mountpoint(cli_ctx *c, int argc, char **argv)
{
	if (argc < 2)
		return cli_usage(c, "missing MOUNTPOINT");
	if (argc > 2)
		return cli_usage(c, "unexpected argument '%s'", argv[2]);
	if (argv[1][0] == '-')
		return cli_usage(c, "unknown option '%s'", argv[1]);
	return 0;
}

static int cmd_umount(cli_ctx *c, int argc, char **argv)
{
	int rc = one_mountpoint(c, argc, argv);
	if (rc)
		return rc;
	if (cairn_umount(argv[1], 120000)) {
		fprintf(c->err, "cairn: umount: %s\n", cairn_errmsg());
		return CLI_EXIT_FAIL;
	}
	return 0;
}

static int cmd_stats(cli_ctx *c, int argc, char **argv)
{
	char buf[8192];
	int rc = one_mountpoint(c, argc, argv);
	if (rc)
		return rc;
	if (cairn_mount_stats(argv[1], buf, sizeof buf)) {
		fprintf(c->err, "cairn: stats: %s\n", cairn_errmsg());
		return CLI_EXIT_FAIL;
	}
	if (!c->json) {
		fputs(buf, c->out);
		return 0;
	}
	/* "key value" lines -> one object; all-digit values are numbers */
	cli_json j;
	cli_json_init(&j, c->out);
	cli_json_obj_begin(&j);
	for (char *save = NULL, *ln = strtok_r(buf, "\n", &save); ln;
	     ln = strtok_r(NULL, "\n", &save)) {
		char *sp = strchr(ln, ' ');
		if (!sp)
			continue;
		*sp++ = 0;
		if (*sp && strlen(sp) < 20 && strspn(sp, "0123456789") == strlen(sp))
			cli_json_ku64(&j, ln, strtoull(sp, NULL, 10));
		else
			cli_json_kstr(&j, ln, sp);
	}
	cli_json_obj_end(&j);
	return 0;
}

static void print_usage(FILE *f)
{
	static const char *const heads[] = {
		"Commands:", "Files in the volume:", "Checkpoints, snapshots, clones:",
		"Operations:",
	};
	fprintf(f,
		"usage: cairn [--volume DIR] [--json] [-q|-v] [--log-file FILE] COMMAND [ARGS]\n"
		"\n"
		"cairn is a file system and data store for ML training: small files packed\n"
		"into large segments in an object store, checkpoints published atomically.\n");
	for (size_t t = 0; t < sizeof tables / sizeof tables[0]; t++) {
		if (!tables[t][0].name)
			continue;
		fprintf(f, "\n%s\n", heads[t]);
		for (const cli_command *c = tables[t]; c->name; c++)
			fprintf(f, "  %-10s %s\n", c->name, c->summary);
	}
	fprintf(f,
		"\n"
		"Global options:\n"
		"  --volume DIR     the volume directory (default: $CAIRN_VOLUME, else\n"
		"                   ~/.local/share/cairn/default)\n"
		"  --json           machine-readable output\n"
		"  -q, --quiet      print errors only\n"
		"  -v, --verbose    log more (repeat for debug)\n"
		"  --log-file FILE  append the log to FILE instead of stderr\n"
		"  -h, --help       this help; 'cairn COMMAND --help' for a command\n"
		"  --version        same as 'cairn version'\n"
		"\n"
		"Volume paths: /a/b in the live tree, @SNAP/a/b inside snapshot SNAP.\n"
		"Exit status: 0 success, 1 the operation failed, 2 usage error, 3 not\n"
		"found, 4 already exists, 5 volume busy, 6 volume mounted read-only\n"
		"(docs/cli.md).\n");
}

static int cmd_help(cli_ctx *c, int argc, char **argv)
{
	const cli_command *cmd;
	if (argc < 2) {
		print_usage(c->out);
		return 0;
	}
	if (!(cmd = find_command(argv[1])))
		return cli_usage(c, "unknown command '%s'", argv[1]);
	if ((cmd->flags & CLI_GROUP) && argc > 2) {
		char *hargv[] = {argv[1], argv[2], "--help", NULL};
		c->cmd = argv[1];
		return cmd->run(c, 3, hargv);
	}
	fputs(cmd->usage, c->out);
	return 0;
}

static const cli_command builtin_commands[] = {
	{"version", "show the version and the active I/O engine",
	 "usage: cairn version\n"
	 "\n"
	 "Print cairn's version, the local I/O engine that runs on this machine\n"
	 "(io_uring, or the thread-pool fallback with the reason) and the crc32c\n"
	 "implementation. With --json, one JSON object.\n",
	 0, cmd_version},
	{"format", "create a volume",
	 "usage: cairn [--volume DIR] format [--store URL] [--compress zstd|none]\n"
	 "                                [--zstd-level N] [--segment-size SIZE]\n"
	 "\n"
	 "Create a volume in DIR (--volume, $CAIRN_VOLUME, or\n"
	 "~/.local/share/cairn/default; parent directories are created).\n"
	 "\n"
	 "  --store URL          where the data goes: file:///abs/dir or\n"
	 "                       s3://bucket[/prefix]; default: a file:// store\n"
	 "                       inside the volume, no cloud account needed\n"
	 "  --compress zstd|none compress data frames (default zstd; raw where\n"
	 "                       compression does not pay)\n"
	 "  --zstd-level N       1..19 (default 3)\n"
	 "  --segment-size SIZE  seal packed segments at SIZE (default 64M)\n"
	 "\n"
	 "Fails if DIR already holds a volume.\n",
	 0, cmd_format},
	{"mount", "mount the volume with FUSE",
	 "usage: cairn [--volume DIR] mount [-f] [-d] [-o OPTS]... MOUNTPOINT\n"
	 "       cairn [--volume DIR] mount --follow --store URL [-f] [-o OPTS]... MOUNTPOINT\n"
	 "\n"
	 "Mount the volume on MOUNTPOINT (an existing directory). The mount\n"
	 "daemon owns the volume while mounted; it runs in the background\n"
	 "(logging to DIR/mount.log, or --log-file) and this command returns\n"
	 "once the mount is live, or prints the daemon's error and exits 1.\n"
	 "\n"
	 "With --follow, mount a read-only follower of the volume whose writer\n"
	 "ships its log to the store URL (docs/log-shipping.md): DIR is the\n"
	 "follower's own directory (metadata replica and cache; created if\n"
	 "missing; never a writer's volume directory). New files and\n"
	 "checkpoints of the writer appear within seconds; every change is\n"
	 "refused (read-only). The store must hold one volume, or DIR must\n"
	 "have followed it before.\n"
	 "\n"
	 "  -f             serve in the foreground (Ctrl-C unmounts)\n"
	 "  -d             foreground with libfuse request tracing\n"
	 "  --follow       a read-only follower (needs --store)\n"
	 "  --store URL    the store the writer ships to (file:///dir, s3://...)\n"
	 "  -o OPTS        comma-separated options:\n"
	 "      ro                     read-only mount\n"
	 "      allow_other            let other users use the mount\n"
	 "      durability=local|remote  what fsync waits for (default local)\n"
	 "      cache_size=SIZE        local cache of store data (default 1G)\n"
	 "      entry_timeout=SECS     kernel name cache (default 10; 1 --follow)\n"
	 "      attr_timeout=SECS      kernel attribute cache (default 10; 1 --follow)\n"
	 "      nosuid,nodev,noexec,noatime,...  passed to the kernel\n"
	 "      defaults,noauto,user,nofail,_netdev,x-*  ignored (fstab)\n"
	 "\n"
	 "As mount.fuse.cairn (a symlink to cairn), mount(8) and fstab lines\n"
	 "work:  VOLUME_DIR  MOUNTPOINT  fuse.cairn  defaults,noauto  0 0\n",
	 0, cmd_mount},
	{"umount", "flush and unmount a mounted volume",
	 "usage: cairn umount MOUNTPOINT\n"
	 "\n"
	 "Commit everything the mount holds, unmount it and wait until its\n"
	 "daemon has closed the volume. A mount whose daemon died (\"transport\n"
	 "endpoint is not connected\") is cleaned up; remounting then recovers\n"
	 "everything that was fsynced.\n",
	 0, cmd_umount},
	{"stats", "show a running mount's statistics",
	 "usage: cairn stats MOUNTPOINT\n"
	 "\n"
	 "Print the mount's counters (operations, bytes, cache use, pending\n"
	 "uploads) as 'key value' lines, or one JSON object with --json. Read\n"
	 "from the hidden control file MOUNTPOINT/.cairn-stats.\n",
	 0, cmd_stats},
	{"help", "show help for a command",
	 "usage: cairn help [COMMAND]\n", 0, cmd_help},
	{0},
};

/* mount(8) runs "mount.fuse.cairn SOURCE MOUNTPOINT [-o OPTS] [-n] [-s]
 * [-v]" for an fstab line of type fuse.cairn: the same as
 * "cairn --volume SOURCE mount [-o OPTS] MOUNTPOINT". */
static int mount_helper(int argc, char **argv)
{
	cairn_mount_opts o;
	const char *pos[2] = {NULL, NULL};
	int npos = 0;

	cairn_mount_opts_init(&o);
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "-o") == 0 && i + 1 < argc) {
			if (cairn_mount_opts_parse(&o, argv[++i])) {
				fprintf(stderr, "mount.fuse.cairn: %s\n", cairn_errmsg());
				return CLI_EXIT_USAGE;
			}
		} else if (strcmp(argv[i], "-n") == 0 || strcmp(argv[i], "-s") == 0 ||
			   strcmp(argv[i], "-v") == 0) {
			/* no mtab, sloppy, verbose: nothing to do */
		} else if (strcmp(argv[i], "-f") == 0) {
			o.foreground = 1;
		} else if (argv[i][0] != '-' && npos < 2) {
			pos[npos++] = argv[i];
		} else {
			fprintf(stderr, "mount.fuse.cairn: unexpected argument '%s'\n"
				"usage: mount.fuse.cairn VOLUME_DIR MOUNTPOINT [-o OPTS]\n", argv[i]);
			return CLI_EXIT_USAGE;
		}
	}
	if (npos != 2) {
		fprintf(stderr, "usage: mount.fuse.cairn VOLUME_DIR MOUNTPOINT [-o OPTS]\n");
		return CLI_EXIT_USAGE;
	}
	static struct ctl_hook hook;
	char vdir[PATH_MAX];
	o.volume_dir = realpath(pos[0], vdir) ? vdir : pos[0];
	o.mountpoint = pos[1];
	if (do_mount(&o, &hook)) {
		fprintf(stderr, "mount.fuse.cairn: %s\n", cairn_errmsg());
		return CLI_EXIT_FAIL;
	}
	return 0;
}

static volatile int g_cancel;

static void on_sigint(int sig)
{
	(void)sig;
	if (g_cancel)
		_exit(130);  /* a second Ctrl-C: stop now */
	g_cancel = 1;
}

/* The volume directory: --volume, $CAIRN_VOLUME, or the default; made
 * absolute against cwd. */
static const char *volume_dir(const char *cwd, char *buf, size_t size)
{
	char tmp[PATH_MAX];
	const char *v = g.volume;
	if (!v || !v[0]) {
		const char *home = getenv("HOME");
		snprintf(tmp, sizeof tmp, "%s/.local/share/cairn/default",
			 home && home[0] ? home : ".");
		v = tmp;
	}
	if (v[0] == '/' || !cwd)
		snprintf(buf, size, "%s", v);
	else
		snprintf(buf, size, "%s/%s", cwd, v);
	/* canonical when it exists, so the daemon and clients agree */
	if (realpath(buf, tmp))
		snprintf(buf, size, "%s", tmp);
	return buf;
}

/* The store a follower directory follows (its follow.conf, written by
 * volume_open_follower: "store = URL" line).  -1 when dir is no follower. */
static int follower_store(const char *dir, char *out, size_t size)
{
	char path[PATH_MAX + 16], line[1200];
	FILE *f;
	int found = -1;
	snprintf(path, sizeof path, "%s/follow.conf", dir);
	if (!(f = fopen(path, "re")))
		return -1;
	while (found && fgets(line, sizeof line, f)) {
		line[strcspn(line, "\n")] = 0;
		if (strncmp(line, "store = ", 8) == 0 && strlen(line + 8) < size) {
			snprintf(out, size, "%s", line + 8);
			found = 0;
		}
	}
	fclose(f);
	return found;
}

/* A CLI_VOLUME command: in the mount daemon if it serves the volume, else
 * on a volume opened here. */
static int run_volume_command(cli_ctx *c, const cli_command *cmd, int argc, char **argv)
{
	struct sigaction sa;
	int status = 0, rc;

	if (cli_ctl_try(c, argc, argv, &status) != 0)
		return status;
	rc = volume_open(c->volume_dir, NULL, &c->vol);
	if (rc == CAIRN_E_NOTFOUND) {
		/* A follower's directory (cairn mount --follow) not mounted:
		 * open the follower, read-only. */
		char store[1100];
		if (follower_store(c->volume_dir, store, sizeof store) == 0)
			rc = volume_open_follower(c->volume_dir, store, NULL, &c->vol);
	}
	if (rc) {
		const char *hint = rc == CAIRN_E_NOTFOUND ? "; create one with 'cairn format'" : "";
		fprintf(c->err, "cairn: %s: %s%s\n", c->cmd, cairn_errmsg(), hint);
		return rc == CAIRN_E_BUSY ? CLI_EXIT_BUSY : CLI_EXIT_FAIL;
	}
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_sigint;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	status = cmd->run(c, argc, argv);
	fflush(c->out);
	rc = volume_close(c->vol);
	c->vol = NULL;
	if (rc && status == 0) {
		fprintf(c->err, "cairn: %s: closing the volume: %s\n", c->cmd, cairn_errmsg());
		status = CLI_EXIT_FAIL;
	}
	return status;
}

int main(int argc, char **argv)
{
	enum { G_VOLUME = 1, G_JSON, G_QUIET, G_VERBOSE, G_LOG, G_HELP, G_VERSION };
	static const cli_opt gopts[] = {
		{"volume", 0, 1, G_VOLUME},
		{"json", 0, 0, G_JSON},
		{"quiet", 'q', 0, G_QUIET},
		{"verbose", 'v', 0, G_VERBOSE},
		{"log-file", 0, 1, G_LOG},
		{"help", 'h', 0, G_HELP},
		{"version", 0, 0, G_VERSION},
		{NULL, 0, 0, 0},
	};
	char cwd[PATH_MAX], vdir[PATH_MAX];
	cli_ctx ctx = {0};
	const cli_command *cmd;
	int show_version = 0, i;

	const char *base = strrchr(argv[0], '/');
	base = base ? base + 1 : argv[0];
	if (strcmp(base, "mount.fuse.cairn") == 0 || strcmp(base, "mount.cairn") == 0)
		return mount_helper(argc, argv);

	ctx.cmd = "cairn";
	ctx.out = stdout;
	ctx.err = stderr;
	ctx.err_tty = isatty(2);
	ctx.cancel = &g_cancel;
	ctx.cwd = getcwd(cwd, sizeof cwd) ? cwd : NULL;
	g.volume = getenv("CAIRN_VOLUME");
	/* Global options come before the command; its own flags are its
	 * business, so stop at the first operand. */
	for (i = 1; i < argc && argv[i][0] == '-' && argv[i][1]; i++) {
		const char *s = argv[i];
		const cli_opt *o = NULL;
		const char *val = NULL;
		if (strcmp(s, "--") == 0) {
			i++;
			break;
		}
		if (s[1] != '-' && s[2] && strspn(s + 1, "qv") == strlen(s + 1)) {
			for (const char *p = s + 1; *p; p++)  /* -qv, -vv */
				ctx.verbose = *p == 'q' ? -1 : ctx.verbose + 1;
			continue;
		}
		for (const cli_opt *p = gopts; p->lng; p++) {
			size_t n = strlen(p->lng);
			if ((s[1] == '-' && strncmp(s + 2, p->lng, n) == 0 &&
			     (s[2 + n] == 0 || (p->has_arg && s[2 + n] == '='))) ||
			    (p->shrt && s[1] == p->shrt && s[2] == 0)) {
				o = p;
				break;
			}
		}
		if (!o) {
			fprintf(stderr, "cairn: unknown option '%s' (see 'cairn --help')\n", s);
			return CLI_EXIT_USAGE;
		}
		if (o->has_arg) {
			const char *eq = strchr(s, '=');
			if (eq)
				val = eq + 1;
			else if (i + 1 < argc)
				val = argv[++i];
			else {
				fprintf(stderr, "cairn: option '--%s' needs a value (see 'cairn --help')\n",
					o->lng);
				return CLI_EXIT_USAGE;
			}
		}
		switch (o->id) {
		case G_VOLUME: g.volume = val; break;
		case G_JSON: ctx.json = 1; break;
		case G_QUIET: ctx.verbose = -1; break;
		case G_VERBOSE: ctx.verbose++; break;
		case G_LOG:
			g.log_file = val;
			if (cairn_log_set_file(val) != CAIRN_OK) {
				fprintf(stderr, "cairn: %s\n", cairn_errmsg());
				return CLI_EXIT_USAGE;
			}
			break;
		case G_HELP: print_usage(stdout); return 0;
		case G_VERSION: show_version = 1; break;
		}
	}
	if (ctx.verbose < 0)
		cairn_log_set_level(CAIRN_LOG_ERROR);
	else if (ctx.verbose == 1)
		cairn_log_set_level(CAIRN_LOG_INFO);
	else if (ctx.verbose > 1)
		cairn_log_set_level(CAIRN_LOG_DEBUG);

	argc -= i;
	argv += i;
	ctx.volume_dir = volume_dir(ctx.cwd, vdir, sizeof vdir);
	if (show_version) {
		char *vargv[] = {"version", NULL};
		ctx.cmd = "version";
		return cmd_version(&ctx, 1, vargv);
	}
	if (argc == 0) {
		print_usage(stderr);
		return CLI_EXIT_USAGE;
	}
	if (!(cmd = find_command(argv[0]))) {
		fprintf(stderr, "cairn: unknown command '%s' (see 'cairn --help')\n", argv[0]);
		return CLI_EXIT_USAGE;
	}
	ctx.cmd = cmd->name;
	if (cli_wants_help(argc, argv)) {
		if (!(cmd->flags & CLI_GROUP) || strcmp(argv[1], "--help") == 0 ||
		    strcmp(argv[1], "-h") == 0) {
			fputs(cmd->usage, stdout);
			return 0;
		}
		return cmd->run(&ctx, argc, argv);  /* cli_run_group prints it */
	}
	/* A group without its subcommand is a usage error: say so before
	 * the volume is looked for. */
	if ((cmd->flags & CLI_VOLUME) && !((cmd->flags & CLI_GROUP) && argc < 2))
		return run_volume_command(&ctx, cmd, argc, argv);
	return cmd->run(&ctx, argc, argv);
}
