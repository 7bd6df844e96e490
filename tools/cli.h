/*
 * cli.h - what the commands of the `cairn` binary share (tools/).
 *
 * A command is a function run(ctx, argc, argv) with argv[0] its name (for
 * two-word commands, "ckpt save", argv[0] is "save" and ctx->cmd "ckpt
 * save").  It never calls exit(), never uses getopt(3) (not reentrant:
 * commands also run on threads of the mount daemon, see below), never
 * writes to stdout/stderr directly: only to ctx->out / ctx->err.
 *
 * Where a command runs (tools/cli_ctl.c):
 *   - a command flagged CLI_VOLUME needs the open volume (ctx->vol).  When
 *     the volume is not mounted, main() opens it, runs the command and
 *     closes it.  When it is mounted, main() connects to the mount's
 *     control socket (<volume>/control.sock), sends argv, the global
 *     options and its working directory, and passes its stdin/stdout/stderr
 *     (SCM_RIGHTS); the daemon runs the very same function on a thread of
 *     its own with its open volume, and answers with the exit status.  So
 *     every command behaves the same mounted or not.
 *   - other commands (format, mount, umount, stats, version, help) run in
 *     the calling process.
 *
 * Local paths given on the command line are relative to ctx->cwd (the
 * caller's working directory, also in the daemon): use cli_local_path().
 *
 * Exit status (docs/cli.md): 0 success, CLI_EXIT_FAIL (1) the operation
 * failed, CLI_EXIT_USAGE (2) bad usage, CLI_EXIT_NOTFOUND (3) a named
 * volume path, snapshot or checkpoint does not exist, CLI_EXIT_EXISTS (4)
 * it exists already / destination not empty, CLI_EXIT_BUSY (5) the volume
 * is in use and has no control socket, CLI_EXIT_ROFS (6) a command that
 * changes the volume sent to the daemon of a read-only mount.
 *
 * The mount's kernel caches (docs/fuse.md "Commands through the control
 * socket"): a command that changes the live tree tells ctx->mount, through
 * cli_mount_remove / cli_mount_entry / cli_mount_inode below, which names
 * and inodes it touched (no-ops when the CLI opened the volume itself).
 */
#ifndef CAIRN_CLI_H
#define CAIRN_CLI_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "cairn/runtime.h"
#include "cairn/volume.h"

enum {
	CLI_EXIT_OK = 0,
	CLI_EXIT_FAIL = 1,
	CLI_EXIT_USAGE = 2,
	CLI_EXIT_NOTFOUND = 3,
	CLI_EXIT_EXISTS = 4,
	CLI_EXIT_BUSY = 5,
	CLI_EXIT_ROFS = 6,
};

/* In the mount daemon: the mount whose kernel caches must follow what a
 * command changes (tools/cairn.c fills it from cairn/fuse.h). */
typedef struct cli_mount {
	void *arg;
	int read_only;     /* -o ro or a follower: changes are refused */
	/* before (parent, name) is removed or replaced: pin a regular file
	 * the kernel holds, so processes that have it open keep reading it */
	int (*pin)(void *arg, uint64_t parent, const char *name);
	/* after (parent, name) was created, removed or replaced */
	void (*entry)(void *arg, uint64_t parent, const char *name);
	/* after ino's data or attributes changed */
	void (*inode)(void *arg, uint64_t ino);
} cli_mount;

typedef struct cli_ctx {
	const char *cmd;          /* "ckpt save", for messages */
	const char *volume_dir;   /* absolute */
	int json;                 /* --json: one JSON document on out */
	int verbose;              /* -1 quiet, 0 normal, 1+ verbose */
	FILE *out, *err;
	int err_tty;              /* err is a terminal: progress bars allowed */
	const char *cwd;          /* caller's working directory (absolute) */
	cairn_volume *vol;        /* CLI_VOLUME commands: the open volume */
	const char *mountpoint;   /* in the daemon: its mount point (realpath);
				     NULL when the CLI opened the volume */
	volatile int *cancel;     /* nonzero: stop early (SIGINT, client gone);
				     long loops check cli_cancelled() */
	const cli_mount *mount;   /* in the daemon: its mount; NULL otherwise */
} cli_ctx;

/* Call before removing or replacing (parent, name) in the live tree (rm,
 * mv over a file): 0, or the error to report (nothing was changed). */
static inline int cli_mount_remove(const cli_ctx *c, uint64_t parent, const char *name)
{
	return c->mount && c->mount->pin ? c->mount->pin(c->mount->arg, parent, name) : 0;
}

/* Call after (parent, name) in the live tree was created, removed or
 * replaced. */
static inline void cli_mount_entry(const cli_ctx *c, uint64_t parent, const char *name)
{
	if (c->mount && c->mount->entry)
		c->mount->entry(c->mount->arg, parent, name);
}

/* Call after the data or attributes of inode ino changed in place. */
static inline void cli_mount_inode(const cli_ctx *c, uint64_t ino)
{
	if (c->mount && c->mount->inode)
		c->mount->inode(c->mount->arg, ino);
}

#define CLI_VOLUME 0x1u  /* needs ctx->vol (runs in the daemon if mounted) */
#define CLI_GROUP  0x2u  /* has subcommands (run dispatches argv[1]) */

typedef struct cli_command {
	const char *name;
	const char *summary;      /* one line for `cairn --help` */
	const char *usage;        /* full --help text, ends with '\n' */
	unsigned flags;
	int (*run)(cli_ctx *c, int argc, char **argv);
} cli_command;

/* Command tables, one per file; each ends with a zeroed row. */
extern const cli_command cli_fs_commands[];    /* cmd_fs.c: ls stat cat put get mkdir rm mv */
extern const cli_command cli_ckpt_commands[];  /* cmd_ckpt.c: ckpt snapshot clone */
extern const cli_command cli_admin_commands[]; /* cmd_admin.c: status fsck gc */

/* Dispatch a two-word group ("ckpt save ..."): finds argv[1] in sub,
 * handles --help and unknown subcommands, sets c->cmd. */
int cli_run_group(cli_ctx *c, const cli_command *sub, int argc, char **argv);
/* "--help" or "-h" among argv[1..] before "--". */
int cli_wants_help(int argc, char **argv);

/* ---- messages and errors (one line each) ---- */

/* "cairn: <cmd>: <what>: <cairn_errmsg()>[; <hint>]" on c->err; returns
 * the exit status for rc (CLI_EXIT_NOTFOUND for CAIRN_E_NOTFOUND,
 * CLI_EXIT_EXISTS for CAIRN_E_EXISTS/NOTEMPTY, else CLI_EXIT_FAIL). */
int cli_fail(cli_ctx *c, int rc, const char *hint, const char *what_fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* "cairn: <cmd>: <message> (see 'cairn <cmd> --help')"; returns
 * CLI_EXIT_USAGE. */
int cli_usage(cli_ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Informational line on c->err unless quiet or json. */
void cli_info(cli_ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int cli_cancelled(const cli_ctx *c);

/* ---- argument parsing (reentrant) ---- */

typedef struct cli_opt {
	const char *lng;   /* "force" for --force; NULL ends the table */
	char shrt;         /* 'f' for -f, 0 for none */
	int has_arg;       /* 1: takes a value (--x V, --x=V, -xV, -x V) */
	int id;            /* returned by cli_getopt */
} cli_opt;

typedef struct cli_args {
	int argc;
	char **argv;
	int i;             /* next argv index; after the loop: first operand */
	const char *arg;   /* value of the last option that takes one */
	/* internal */
	int sub;
	char **operands;
	int noperands;
} cli_args;

/* Start parsing argv[1..].  Options and operands may mix; "--" ends
 * options. */
void cli_args_init(cli_args *a, int argc, char **argv);
/* Next option's id; 0 when done (then cli_operands gives the operands);
 * -1 after printing a usage error for an unknown option or a missing
 * value (the caller returns CLI_EXIT_USAGE). */
int cli_getopt(cli_ctx *c, cli_args *a, const cli_opt *opts);
/* The operands in order (valid until cli_args_free). */
char **cli_operands(cli_args *a, int *n);
void cli_args_free(cli_args *a);

/* "64M", "1G", "4096", "1.5G": bytes (binary units K M G T).  -1 on
 * anything else. */
int cli_parse_size(const char *s, uint64_t *out);
/* "30s", "5m", "2h", "7d", "1500ms", bare number = seconds: ms.  -1 else. */
int cli_parse_duration(const char *s, int64_t *ms);
/* "1.5 GiB": human size into buf (at least 16 bytes). */
const char *cli_fmt_bytes(uint64_t n, char *buf, size_t size);
/* ISO 8601 UTC "2026-11-21T10:00:00Z" of a time in ns (at least 24 bytes). */
const char *cli_fmt_time(int64_t ns, char *buf, size_t size);

/* ---- paths ---- */

/* A local path made absolute against c->cwd into buf.  -1 if too long. */
int cli_local_path(const cli_ctx *c, const char *path, char *buf, size_t size);

/* Volume path syntax (docs/cli.md):
 *   /a/b        in the live tree (a leading '/' is optional)
 *   @SNAP/a/b   inside snapshot SNAP (read-only)
 *   or, in the daemon, a local path under its mount point.
 * "." and empty components are skipped; ".." is refused.
 * Resolve the whole path to its inode (symlinks are not followed).
 * Errors: CAIRN_E_NOTFOUND (message names the missing component),
 * CAIRN_E_NOTDIR, CAIRN_E_INVAL. */
int cli_resolve(cli_ctx *c, const char *vpath, cairn_attr *out);
/* Resolve everything but the last component: *parent gets the parent
 * directory's inode and leaf (of size CAIRN_NAME_BUF) the last name.
 * CAIRN_E_INVAL for the root itself or a snapshot root. */
#define CLI_NAME_BUF 256
int cli_resolve_parent(cli_ctx *c, const char *vpath, uint64_t *parent,
		       char leaf[CLI_NAME_BUF]);

/* ---- JSON output (to c->out) ---- */

typedef struct cli_json {
	FILE *f;
	int depth;
	int first[32];     /* no comma needed yet at this depth */
	int pending_key;
} cli_json;

void cli_json_init(cli_json *j, FILE *f);
void cli_json_obj_begin(cli_json *j);   /* { */
void cli_json_obj_end(cli_json *j);     /* } (and a newline at depth 0) */
void cli_json_arr_begin(cli_json *j);
void cli_json_arr_end(cli_json *j);
void cli_json_key(cli_json *j, const char *k);      /* "k": */
void cli_json_str(cli_json *j, const char *s);      /* escaped, UTF-8 as is */
void cli_json_u64(cli_json *j, uint64_t v);
void cli_json_i64(cli_json *j, int64_t v);
void cli_json_f64(cli_json *j, double v);
void cli_json_bool(cli_json *j, int v);
/* Shorthands: key + value. */
void cli_json_kstr(cli_json *j, const char *k, const char *s);
void cli_json_ku64(cli_json *j, const char *k, uint64_t v);
void cli_json_ki64(cli_json *j, const char *k, int64_t v);
void cli_json_kf64(cli_json *j, const char *k, double v);
void cli_json_kbool(cli_json *j, const char *k, int v);

/* ---- progress (bytes, rate, ETA on c->err when it is a terminal) ---- */

typedef struct cli_progress cli_progress;
/* total 0: unknown.  Returns NULL (a valid no-op progress) when progress
 * is not shown (not a terminal, --json, -q). */
cli_progress *cli_progress_start(cli_ctx *c, const char *label, uint64_t total);
void cli_progress_add(cli_progress *p, uint64_t bytes);  /* thread-safe */
void cli_progress_total(cli_progress *p, uint64_t total);
void cli_progress_end(cli_progress *p);  /* clears the line; frees */

/* ---- control socket (cli_ctl.c) ---- */

#define CLI_CTL_SOCK "control.sock"

/* Serve commands on <volume_dir>/control.sock for the daemon that owns vol
 * (called by `cairn mount` once the volume is open; stopped before it is
 * closed).  Clients whose uid differs from the daemon's are refused unless
 * they are root.  mount (may be NULL; kept, not copied) is given to every
 * command; with mount->read_only, commands that change the volume are
 * refused (CLI_EXIT_ROFS). */
typedef struct cli_ctl cli_ctl;
int cli_ctl_start(cairn_volume *vol, const char *volume_dir,
		  const char *mountpoint, const cli_mount *mount, cli_ctl **out);
void cli_ctl_stop(cli_ctl *s);  /* waits for running commands */

/* In main(): if the volume in dir is served by a live control socket, run
 * the command there and return 1 with *status set; return 0 if there is no
 * socket (the caller opens the volume itself); < 0 on an error already
 * reported on c->err (*status set). */
int cli_ctl_try(cli_ctx *c, int argc, char **argv, int *status);

#endif
