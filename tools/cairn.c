/*
 * cairn.c - the cairn command line: git-style subcommands over the volume
 * API.
 *
 * Contract with the user (docs/cli.md):
 *   - every command has --help; `cairn help CMD` prints the same;
 *   - exit 0 on success; on failure one line on stderr, "cairn: CMD: what
 *     failed: why" followed by what to do where we know it, and a non-zero
 *     exit status:
 *         1  the operation failed (I/O, store, corrupt data, ...)
 *         2  usage error (unknown command or flag, bad argument)
 *   - global options come before the command: --volume DIR (or
 *     $CAIRN_VOLUME, default ~/.local/share/cairn/default), --json, -q, -v,
 *     --log-file FILE.
 *
 * Commands are a table (name, summary, usage text, function); later
 * capabilities add rows.  mount/umount/stats call the FUSE library
 * (cairn/fuse.h, docs/fuse.md).  Run as mount.fuse.cairn (a symlink), the
 * binary is mount(8)'s helper for fstab lines of type fuse.cairn.
 */
#include <errno.h>
#include <getopt.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cairn/fuse.h"
#include "cairn/runtime.h"
#include "cairn/volume.h"

enum { EXIT_FAIL = 1, EXIT_USAGE = 2 };

struct cli {
	const char *volume;
	const char *log_file;
	int json;
	int verbose; /* -1 quiet, 0 normal, 1+ verbose */
};

struct command {
	const char *name;
	const char *summary;
	const char *usage;
	int (*run)(struct cli *cli, int argc, char **argv);
};

static const struct command commands[];

static int usage_error(const char *cmd, const char *fmt, const char *arg)
{
	fprintf(stderr, "cairn: %s: ", cmd);
	fprintf(stderr, fmt, arg);
	fprintf(stderr, " (see 'cairn %s --help')\n", cmd);
	return EXIT_USAGE;
}

/* "--help" or "-h" anywhere among a command's arguments. */
static int wants_help(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--") == 0)
			break;
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
			return 1;
	}
	return 0;
}

static void json_str(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			printf("\\%c", c);
		else if (c < 0x20)
			printf("\\u%04x", c);
		else
			putchar(c);
	}
	putchar('"');
}

static int cmd_version(struct cli *cli, int argc, char **argv)
{
	cairn_uring *u = NULL;
	const char *engine = "unavailable";
	const char *reason = "";
	int rc;

	if (argc > 1)
		return usage_error("version", "unexpected argument '%s'", argv[1]);
	/* The engine that would run here, with the reason for a fallback. */
	rc = uring_open(NULL, &u);
	if (rc == CAIRN_OK) {
		engine = uring_engine_name(u);
		reason = uring_fallback_reason(u);
	} else {
		reason = cairn_errmsg();
	}
	if (cli->json) {
		printf("{\"version\":");
		json_str(CAIRN_VERSION);
		printf(",\"io_engine\":");
		json_str(engine);
		printf(",\"io_engine_fallback_reason\":");
		json_str(reason);
		printf(",\"crc32c\":");
		json_str(cairn_crc32c_impl());
		printf("}\n");
	} else {
		printf("cairn %s\n", CAIRN_VERSION);
		printf("io engine: %s%s%s%s\n", engine, reason[0] ? " (" : "",
		       reason, reason[0] ? ")" : "");
		printf("crc32c: %s\n", cairn_crc32c_impl());
	}
	uring_close(u);
	return rc == CAIRN_OK ? 0 : EXIT_FAIL;
}

/* The volume directory: --volume, $CAIRN_VOLUME, or the default. */
static const char *volume_dir(struct cli *cli, char *buf, size_t size)
{
	if (cli->volume && cli->volume[0])
		return cli->volume;
	const char *home = getenv("HOME");
	snprintf(buf, size, "%s/.local/share/cairn/default", home && home[0] ? home : ".");
	return buf;
}

static int op_failed(const char *cmd)
{
	fprintf(stderr, "cairn: %s: %s\n", cmd, cairn_errmsg());
	return EXIT_FAIL;
}

/* "64M", "1G", "4096": bytes.  Returns 0, or -1 on anything else. */
static int parse_size(const char *s, uint64_t *out)
{
	char *end = NULL;
	unsigned long long v;
	unsigned shift = 0;

	if (!s || !*s || *s == '-')
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s)
		return -1;
	switch (*end) {
	case '\0': break;
	case 'K': case 'k': shift = 10; end++; break;
	case 'M': case 'm': shift = 20; end++; break;
	case 'G': case 'g': shift = 30; end++; break;
	default: return -1;
	}
	if (*end == 'i' && end[1] == 'B')
		end += 2;
	else if (*end == 'B')
		end++;
	if (*end || (shift && v > (UINT64_MAX >> shift)))
		return -1;
	*out = (uint64_t)v << shift;
	return 0;
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

static int cmd_format(struct cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
		{"store", required_argument, NULL, 's'},
		{"compress", required_argument, NULL, 'c'},
		{"zstd-level", required_argument, NULL, 'z'},
		{"segment-size", required_argument, NULL, 'S'},
		{NULL, 0, NULL, 0},
	};
	cairn_format_opts fo = {0};
	char vbuf[4096];
	const char *dir;
	int opt, none = 0;
	long level = 0;

	optind = 0;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, "+", opts, NULL)) != -1) {
		char *end = NULL;
		switch (opt) {
		case 's': fo.store_url = optarg; break;
		case 'c':
			if (strcmp(optarg, "none") == 0)
				none = 1;
			else if (strcmp(optarg, "zstd") != 0)
				return usage_error("format", "--compress takes zstd or none, not '%s'",
						   optarg);
			break;
		case 'z':
			errno = 0;
			level = strtol(optarg, &end, 10);
			if (errno || !end || *end || level < 1 || level > 19)
				return usage_error("format", "--zstd-level takes 1..19, not '%s'",
						   optarg);
			break;
		case 'S':
			if (parse_size(optarg, &fo.segment_size) ||
			    fo.segment_size < (1u << 20) || fo.segment_size > (1ull << 32))
				return usage_error("format",
						   "--segment-size takes 1M..4G (e.g. 64M), not '%s'",
						   optarg);
			break;
		default:
			return usage_error("format", "unknown option '%s'", argv[optind - 1]);
		}
	}
	if (optind < argc)
		return usage_error("format", "unexpected argument '%s'", argv[optind]);
	fo.zstd_level = none ? -1 : (int)level;
	dir = volume_dir(cli, vbuf, sizeof vbuf);
	if (mkdir_parents(dir) || volume_format(dir, &fo)) {
		fprintf(stderr, "cairn: format: %s\n", cairn_errmsg());
		return EXIT_FAIL;
	}
	if (cli->json) {
		printf("{\"volume\":");
		json_str(dir);
		printf(",\"store\":");
		json_str(fo.store_url ? fo.store_url : "default");
		printf("}\n");
	} else if (cli->verbose >= 0) {
		printf("formatted volume %s (store: %s)\n", dir,
		       fo.store_url ? fo.store_url : "file:// inside the volume");
	}
	return 0;
}

static int cmd_mount(struct cli *cli, int argc, char **argv)
{
	cairn_mount_opts o;
	char vbuf[4096];
	int opt;

	cairn_mount_opts_init(&o);
	optind = 0;  /* reset getopt for the command's own flags */
	opterr = 0;
	while ((opt = getopt(argc, argv, "+fdo:")) != -1) {
		switch (opt) {
		case 'f': o.foreground = 1; break;
		case 'd': o.debug = 1; o.foreground = 1; break;
		case 'o':
			if (cairn_mount_opts_parse(&o, optarg)) {
				fprintf(stderr, "cairn: mount: %s (see 'cairn mount --help')\n",
					cairn_errmsg());
				return EXIT_USAGE;
			}
			break;
		default:
			return usage_error("mount", "unknown option '%s'", argv[optind - 1]);
		}
	}
	if (optind >= argc)
		return usage_error("mount", "%s", "missing MOUNTPOINT");
	if (optind + 1 < argc)
		return usage_error("mount", "unexpected argument '%s'", argv[optind + 1]);
	o.volume_dir = volume_dir(cli, vbuf, sizeof vbuf);
	o.mountpoint = argv[optind];
	o.log_file = cli->log_file;
	if (cairn_mount(&o))
		return op_failed("mount");
	return 0;
}

static int cmd_umount(struct cli *cli, int argc, char **argv)
{
	(void)cli;
	if (argc < 2)
		return usage_error("umount", "%s", "missing MOUNTPOINT");
	if (argc > 2)
		return usage_error("umount", "unexpected argument '%s'", argv[2]);
	if (argv[1][0] == '-')
		return usage_error("umount", "unknown option '%s'", argv[1]);
	if (cairn_umount(argv[1], 120000))
		return op_failed("umount");
	return 0;
}

static int cmd_stats(struct cli *cli, int argc, char **argv)
{
	char buf[8192];
	if (argc < 2)
		return usage_error("stats", "%s", "missing MOUNTPOINT");
	if (argc > 2)
		return usage_error("stats", "unexpected argument '%s'", argv[2]);
	if (argv[1][0] == '-')
		return usage_error("stats", "unknown option '%s'", argv[1]);
	if (cairn_mount_stats(argv[1], buf, sizeof buf))
		return op_failed("stats");
	if (!cli->json) {
		fputs(buf, stdout);
		return 0;
	}
	/* "key value" lines -> one object; all-digit values are numbers */
	int first = 1;
	putchar('{');
	for (char *save = NULL, *ln = strtok_r(buf, "\n", &save); ln;
	     ln = strtok_r(NULL, "\n", &save)) {
		char *sp = strchr(ln, ' ');
		if (!sp)
			continue;
		*sp++ = 0;
		printf("%s", first ? "" : ",");
		first = 0;
		json_str(ln);
		putchar(':');
		if (*sp && strspn(sp, "0123456789") == strlen(sp))
			printf("%s", sp);
		else
			json_str(sp);
	}
	printf("}\n");
	return 0;
}

static void print_usage(FILE *f)
{
	fprintf(f,
		"usage: cairn [--volume DIR] [--json] [-q|-v] [--log-file FILE] COMMAND [ARGS]\n"
		"\n"
		"cairn is a file system and data store for ML training: small files packed\n"
		"into large segments in an object store, checkpoints published atomically.\n"
		"\n"
		"Commands:\n");
	for (const struct command *c = commands; c->name; c++)
		fprintf(f, "  %-10s %s\n", c->name, c->summary);
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
		"Exit status: 0 success, 1 the operation failed, 2 usage error.\n");
}

static int cmd_help(struct cli *cli, int argc, char **argv)
{
	(void)cli;
	if (argc < 2) {
		print_usage(stdout);
		return 0;
	}
	for (const struct command *c = commands; c->name; c++) {
		if (strcmp(c->name, argv[1]) == 0) {
			printf("%s", c->usage);
			return 0;
		}
	}
	return usage_error("help", "unknown command '%s'", argv[1]);
}

static const struct command commands[] = {
	{"version", "show the version and the active I/O engine",
	 "usage: cairn version\n"
	 "\n"
	 "Print cairn's version, the local I/O engine that runs on this machine\n"
	 "(io_uring, or the thread-pool fallback with the reason) and the crc32c\n"
	 "implementation. With --json, one JSON object.\n",
	 cmd_version},
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
	 cmd_format},
	{"mount", "mount the volume with FUSE",
	 "usage: cairn [--volume DIR] mount [-f] [-d] [-o OPTS]... MOUNTPOINT\n"
	 "\n"
	 "Mount the volume on MOUNTPOINT (an existing directory). The mount\n"
	 "daemon owns the volume while mounted; it runs in the background\n"
	 "(logging to DIR/mount.log, or --log-file) and this command returns\n"
	 "once the mount is live, or prints the daemon's error and exits 1.\n"
	 "\n"
	 "  -f        serve in the foreground (Ctrl-C unmounts)\n"
	 "  -d        foreground with libfuse request tracing\n"
	 "  -o OPTS   comma-separated options:\n"
	 "      ro                     read-only mount\n"
	 "      allow_other            let other users use the mount\n"
	 "      durability=local|remote  what fsync waits for (default local)\n"
	 "      cache_size=SIZE        local cache of store data (default 1G)\n"
	 "      entry_timeout=SECS     kernel name cache (default 10)\n"
	 "      attr_timeout=SECS      kernel attribute cache (default 10)\n"
	 "      nosuid,nodev,noexec,noatime,...  passed to the kernel\n"
	 "      defaults,noauto,user,nofail,_netdev,x-*  ignored (fstab)\n"
	 "\n"
	 "As mount.fuse.cairn (a symlink to cairn), mount(8) and fstab lines\n"
	 "work:  VOLUME_DIR  MOUNTPOINT  fuse.cairn  defaults,noauto  0 0\n",
	 cmd_mount},
	{"umount", "flush and unmount a mounted volume",
	 "usage: cairn umount MOUNTPOINT\n"
	 "\n"
	 "Commit everything the mount holds, unmount it and wait until its\n"
	 "daemon has closed the volume. A mount whose daemon died (\"transport\n"
	 "endpoint is not connected\") is cleaned up; remounting then recovers\n"
	 "everything that was fsynced.\n",
	 cmd_umount},
	{"stats", "show a running mount's statistics",
	 "usage: cairn stats MOUNTPOINT\n"
	 "\n"
	 "Print the mount's counters (operations, bytes, cache use, pending\n"
	 "uploads) as 'key value' lines, or one JSON object with --json. Read\n"
	 "from the hidden control file MOUNTPOINT/.cairn-stats.\n",
	 cmd_stats},
	{"help", "show help for a command",
	 "usage: cairn help [COMMAND]\n", cmd_help},
	{NULL, NULL, NULL, NULL},
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
				return EXIT_USAGE;
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
			return EXIT_USAGE;
		}
	}
	if (npos != 2) {
		fprintf(stderr, "usage: mount.fuse.cairn VOLUME_DIR MOUNTPOINT [-o OPTS]\n");
		return EXIT_USAGE;
	}
	o.volume_dir = pos[0];
	o.mountpoint = pos[1];
	if (cairn_mount(&o)) {
		fprintf(stderr, "mount.fuse.cairn: %s\n", cairn_errmsg());
		return EXIT_FAIL;
	}
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"volume", required_argument, NULL, 'V'},
		{"json", no_argument, NULL, 'j'},
		{"quiet", no_argument, NULL, 'q'},
		{"verbose", no_argument, NULL, 'v'},
		{"log-file", required_argument, NULL, 'L'},
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'E'},
		{NULL, 0, NULL, 0},
	};
	struct cli cli = {0};
	int opt, show_version = 0;

	const char *base = strrchr(argv[0], '/');
	base = base ? base + 1 : argv[0];
	if (strcmp(base, "mount.fuse.cairn") == 0 || strcmp(base, "mount.cairn") == 0)
		return mount_helper(argc, argv);
	cli.volume = getenv("CAIRN_VOLUME");
	/* '+': stop at the command; its own flags are its business. */
	opterr = 0;
	while ((opt = getopt_long(argc, argv, "+qvh", opts, NULL)) != -1) {
		switch (opt) {
		case 'V': cli.volume = optarg; break;
		case 'j': cli.json = 1; break;
		case 'q': cli.verbose = -1; break;
		case 'v': cli.verbose++; break;
		case 'L':
			cli.log_file = optarg;
			if (cairn_log_set_file(optarg) != CAIRN_OK) {
				fprintf(stderr, "cairn: %s\n", cairn_errmsg());
				return EXIT_USAGE;
			}
			break;
		case 'h': print_usage(stdout); return 0;
		case 'E': show_version = 1; break;
		default:
			fprintf(stderr, "cairn: unknown option '%s' (see 'cairn --help')\n",
				argv[optind - 1]);
			return EXIT_USAGE;
		}
	}
	if (cli.verbose < 0)
		cairn_log_set_level(CAIRN_LOG_ERROR);
	else if (cli.verbose == 1)
		cairn_log_set_level(CAIRN_LOG_INFO);
	else if (cli.verbose > 1)
		cairn_log_set_level(CAIRN_LOG_DEBUG);

	argc -= optind;
	argv += optind;
	if (show_version) {
		char *vargv[] = {"version", NULL};
		return cmd_version(&cli, 1, vargv);
	}
	if (argc == 0) {
		print_usage(stderr);
		return EXIT_USAGE;
	}
	for (const struct command *c = commands; c->name; c++) {
		if (strcmp(c->name, argv[0]) != 0)
			continue;
		if (wants_help(argc, argv)) {
			printf("%s", c->usage);
			return 0;
		}
		return c->run(&cli, argc, argv);
	}
	fprintf(stderr, "cairn: unknown command '%s' (see 'cairn --help')\n", argv[0]);
	return EXIT_USAGE;
}
