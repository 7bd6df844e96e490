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
 * capabilities add rows.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cairn/runtime.h"

enum { EXIT_FAIL = 1, EXIT_USAGE = 2 };

struct cli {
	const char *volume;
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
	{"help", "show help for a command",
	 "usage: cairn help [COMMAND]\n", cmd_help},
	{NULL, NULL, NULL, NULL},
};

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
