/*
 * cmd_snap.c - the checkpoint catalogue (`cairn ckpt list|rm|prune|diff|
 * pin|unpin`), snapshots (`cairn snapshot create|list|rm`) and clones
 * (`cairn clone`), and the table of the ckpt group (save and restore are in
 * cmd_ckpt.c).  docs/checkpoints.md.
 *
 * Names.  A checkpoint NAME is the read-only snapshot "ckpt:NAME"
 * (CKPT_SNAP_PREFIX); checkpoint names are checked by ckpt_name_check().
 * Snapshots made with `snapshot create` may not start with "ckpt:", so the
 * two catalogues never mix: `ckpt list` shows only checkpoints, `snapshot
 * list` only the others.
 *
 * Pins.  A pinned checkpoint is never pruned and `ckpt rm` refuses it
 * without --force.  A pin is an empty regular file /.cairn/pins/NAME in the
 * live tree (PINS_DIR): it is ordinary metadata, so it survives restarts,
 * goes through the same transactions as everything else and can be seen
 * (and removed) with `cairn ls /.cairn/pins`.
 *
 * Invariants:
 *   1. Every command changes the volume in at most one volume call per
 *      snapshot or pin (volume_snapshot_delete, volume_clone, ...): no
 *      command leaves a half-made object behind.
 *   2. prune computes the whole keep set before deleting anything and
 *      never deletes a pinned checkpoint; --dry-run calls nothing that
 *      writes.
 *   3. diff reads both trees only; paths it prints are relative to the
 *      roots of the two trees and start with '/'; directories end in '/'.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "cmd_ckpt.h"

#define PINS_PARENT ".cairn"
#define PINS_NAME "pins"
#define PINS_DIR "/" PINS_PARENT "/" PINS_NAME
#define PREFIX_LEN (sizeof CKPT_SNAP_PREFIX - 1)

/* ---- small helpers ---- */

/* Options every command of this file accepts. */
enum { OPT_HELP = 1000, OPT_JSON };
#define COMMON_OPTS {"help", 'h', 0, OPT_HELP}, {"json", 0, 0, OPT_JSON}

/* Parse argv with opts (which include COMMON_OPTS); per option call
 * on_opt.  Returns -1 to continue with the operands in ops and nops, or an
 * exit status to return at once (--help printed, usage error). */
typedef int (*opt_fn)(cli_ctx *c, int id, const char *arg, void *st);

static int parse(cli_ctx *c, cli_args *a, int argc, char **argv,
		 const cli_opt *opts, const char *usage, opt_fn on_opt, void *st,
		 int min_ops, int max_ops, char ***ops, int *nops)
{
	int id;

	cli_args_init(a, argc, argv);
	while ((id = cli_getopt(c, a, opts)) > 0) {
		if (id == OPT_HELP) {
			fputs(usage, c->out);
			return CLI_EXIT_OK;
		}
		if (id == OPT_JSON) {
			c->json = 1;
			continue;
		}
		int rc = on_opt ? on_opt(c, id, a->arg, st) : CLI_EXIT_USAGE;
		if (rc >= 0)
			return rc;
	}
	if (id < 0)
		return CLI_EXIT_USAGE;
	*ops = cli_operands(a, nops);
	if (*nops < min_ops)
		return cli_usage(c, "missing operand");
	if (*nops > max_ops)
		return cli_usage(c, "unexpected argument '%s'", (*ops)[max_ops]);
	return -1;
}

/* "ckpt:NAME" into buf (at least CAIRN_SNAP_NAME_MAX + 1). */
static void ckpt_snap_name(const char *name, char *buf, size_t size)
{
	snprintf(buf, size, "%s%s", CKPT_SNAP_PREFIX, name);
}

static int is_ckpt_snap(const char *snap_name)
{
	return strncmp(snap_name, CKPT_SNAP_PREFIX, PREFIX_LEN) == 0;
}

/* A snapshot name given to `snapshot create/rm`: non-empty, at most
 * CAIRN_SNAP_NAME_MAX bytes, no '/' (it would be ambiguous in @SNAP/path),
 * no control characters, and not in the checkpoint namespace. */
static int snap_name_check(cli_ctx *c, const char *name)
{
	size_t n = strlen(name);
	if (n == 0)
		return cli_usage(c, "empty snapshot name");
	if (n > CAIRN_SNAP_NAME_MAX)
		return cli_usage(c, "snapshot name longer than %d bytes", CAIRN_SNAP_NAME_MAX);
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)name[i];
		if (ch == '/' || ch < 0x20 || ch == 0x7f)
			return cli_usage(c, "snapshot name '%s' contains '/' or a control character",
					 name);
	}
	if (is_ckpt_snap(name))
		return cli_usage(c, "snapshot names starting with '%s' are checkpoints; use "
				 "'cairn ckpt'", CKPT_SNAP_PREFIX);
	return 0;
}

/* ---- the snapshot catalogue ---- */

typedef struct snap_ent {
	cairn_snap s;
	cairn_tree_usage u;
	int pinned;
	int keep;             /* prune: reason bits */
} snap_ent;

typedef struct snap_vec {
	snap_ent *v;
	size_t n, cap;
	int ckpts;            /* collect checkpoints (1) or the others (0) */
	int oom;
} snap_vec;

static int snap_collect_cb(const cairn_snap *s, void *arg)
{
	snap_vec *sv = arg;
	if (is_ckpt_snap(s->name) != sv->ckpts)
		return 0;
	if (sv->n == sv->cap) {
		size_t cap = sv->cap ? sv->cap * 2 : 16;
		snap_ent *v = realloc(sv->v, cap * sizeof *v);
		if (!v) {
			sv->oom = 1;
			return 1;
		}
		sv->v = v;
		sv->cap = cap;
	}
	memset(&sv->v[sv->n], 0, sizeof sv->v[0]);
	sv->v[sv->n++].s = *s;
	return 0;
}

static int snap_time_cmp(const void *pa, const void *pb)
{
	const snap_ent *a = pa, *b = pb;
	if (a->s.ctime_ns != b->s.ctime_ns)
		return a->s.ctime_ns < b->s.ctime_ns ? -1 : 1;
	return strcmp(a->s.name, b->s.name);
}

/* Snapshots of one kind, oldest first. */
static int snap_collect(cli_ctx *c, int ckpts, snap_vec *sv)
{
	memset(sv, 0, sizeof *sv);
	sv->ckpts = ckpts;
	int rc = volume_snapshot_list(c->vol, snap_collect_cb, sv);
	if (!rc && sv->oom)
		rc = cairn_errf(CAIRN_E_NOMEM, "snapshot list");
	if (rc) {
		free(sv->v);
		sv->v = NULL;
		return cli_fail(c, rc, NULL, "list snapshots");
	}
	if (sv->n)
		qsort(sv->v, sv->n, sizeof sv->v[0], snap_time_cmp);
	return 0;
}

/* The checkpoint NAME (after checking the name): 0, or an exit status
 * after a message (CLI_EXIT_NOTFOUND when it does not exist). */
static int ckpt_get(cli_ctx *c, const char *name, cairn_snap *s)
{
	char sn[CAIRN_SNAP_NAME_MAX + 1];
	int rc = ckpt_name_check(c, name);
	if (rc)
		return rc;
	ckpt_snap_name(name, sn, sizeof sn);
	rc = volume_snapshot_get(c->vol, sn, s);
	if (rc == CAIRN_E_NOTFOUND)
		return cli_fail(c, cairn_errf(rc, "no such checkpoint"), "see 'cairn ckpt list'",
				"'%s'", name);
	if (rc)
		return cli_fail(c, rc, NULL, "checkpoint '%s'", name);
	return 0;
}

/* ---- pins (/.cairn/pins/NAME) ---- */

/* The pins directory's inode in *ino, 0 if it does not exist; create it
 * (mkdir -p) when create is set. */
static int pins_dir(cli_ctx *c, int create, uint64_t *ino)
{
	static const char *const path[2] = { PINS_PARENT, PINS_NAME };
	uint64_t dir = CAIRN_ROOT_INO;
	cairn_attr a;

	*ino = 0;
	for (int i = 0; i < 2; i++) {
		int rc = volume_lookup(c->vol, dir, path[i], &a);
		if (rc == CAIRN_E_NOTFOUND) {
			if (!create)
				return 0;
			rc = volume_mkdir(c->vol, dir, path[i], 0755, (uint32_t)geteuid(),
					  (uint32_t)getegid(), &a);
			if (rc == CAIRN_E_EXISTS)  /* a concurrent pin */
				rc = volume_lookup(c->vol, dir, path[i], &a);
		}
		if (rc)
			return cairn_err_wrap(rc, "pins directory %s", PINS_DIR);
		if (!S_ISDIR(a.mode))
			return cairn_errf(CAIRN_E_NOTDIR, "pins directory %s: not a directory",
					  PINS_DIR);
		dir = a.ino;
	}
	*ino = dir;
	return 0;
}

static int pin_get(cli_ctx *c, const char *name, int *pinned)
{
	uint64_t dir;
	cairn_attr a;
	int rc = pins_dir(c, 0, &dir);

	*pinned = 0;
	if (rc || !dir)
		return rc;
	rc = volume_lookup(c->vol, dir, name, &a);
	if (rc == CAIRN_E_NOTFOUND)
		return 0;
	if (!rc)
		*pinned = 1;
	return rc;
}

/* Drop the pin of name if there is one. */
static int pin_drop(cli_ctx *c, const char *name, int *was)
{
	uint64_t dir;
	int rc = pins_dir(c, 0, &dir);

	*was = 0;
	if (rc || !dir)
		return rc;
	rc = volume_unlink(c->vol, dir, name);
	if (rc == CAIRN_E_NOTFOUND)
		return 0;
	if (!rc)
		*was = 1;
	return rc;
}

/* Mark the pinned entries of sv. */
static int pins_mark(cli_ctx *c, snap_vec *sv)
{
	for (size_t i = 0; i < sv->n; i++) {
		int rc = pin_get(c, sv->v[i].s.name + PREFIX_LEN, &sv->v[i].pinned);
		if (rc)
			return rc;
	}
	return 0;
}

/* ---- ckpt list ---- */

static const char ckpt_list_usage[] =
	"usage: cairn ckpt list [--json]\n"
	"\n"
	"List the checkpoints, oldest first: name, time saved (UTC), files,\n"
	"logical bytes (sum of file sizes), bytes unique to the checkpoint (stored\n"
	"bytes no other checkpoint, snapshot or live file references: what\n"
	"'cairn ckpt rm' followed by 'cairn gc' would free) and whether it is\n"
	"pinned.  --json: an array of objects with the same fields (bytes exact).\n";

static int cmd_ckpt_list(cli_ctx *c, int argc, char **argv)
{
	static const cli_opt opts[] = { COMMON_OPTS, {NULL, 0, 0, 0} };
	cli_args a;
	char **ops;
	int nops, st = parse(c, &a, argc, argv, opts, ckpt_list_usage, NULL, NULL, 0, 0,
			     &ops, &nops);
	snap_vec sv;

	cli_args_free(&a);
	if (st >= 0)
		return st;
	if ((st = snap_collect(c, 1, &sv)))
		return st;
	int rc = pins_mark(c, &sv);
	if (rc) {
		st = cli_fail(c, rc, NULL, "read pins");
		goto out;
	}
	for (size_t i = 0; i < sv.n; i++) {
		if (cli_cancelled(c)) {
			st = cli_fail(c, CAIRN_E_CANCELED, NULL, "list");
			goto out;
		}
		rc = volume_tree_usage(c->vol, sv.v[i].s.root, &sv.v[i].u);
		if (rc) {
			st = cli_fail(c, rc, NULL, "usage of checkpoint '%s'",
				      sv.v[i].s.name + PREFIX_LEN);
			goto out;
		}
	}

	char tb[32], lb[32], ub[32];
	if (c->json) {
		cli_json j;
		cli_json_init(&j, c->out);
		cli_json_arr_begin(&j);
		for (size_t i = 0; i < sv.n; i++) {
			const snap_ent *e = &sv.v[i];
			cli_json_obj_begin(&j);
			cli_json_kstr(&j, "name", e->s.name + PREFIX_LEN);
			cli_json_kstr(&j, "time", cli_fmt_time(e->s.ctime_ns, tb, sizeof tb));
			cli_json_ki64(&j, "time_ns", e->s.ctime_ns);
			cli_json_ku64(&j, "files", e->u.files);
			cli_json_ku64(&j, "dirs", e->u.dirs);
			cli_json_ku64(&j, "symlinks", e->u.symlinks);
			cli_json_ku64(&j, "logical_bytes", e->u.logical_bytes);
			cli_json_ku64(&j, "stored_bytes", e->u.stored_bytes);
			cli_json_ku64(&j, "unique_bytes", e->u.unique_bytes);
			cli_json_kbool(&j, "pinned", e->pinned);
			cli_json_obj_end(&j);
		}
		cli_json_arr_end(&j);
		goto out;
	}
	int w = 4;
	for (size_t i = 0; i < sv.n; i++) {
		int l = (int)strlen(sv.v[i].s.name + PREFIX_LEN);
		w = l > w ? l : w;
	}
	if (sv.n == 0) {
		cli_info(c, "no checkpoints (save one with 'cairn ckpt save DIR NAME')");
		goto out;
	}
	fprintf(c->out, "%-*s  %-20s  %9s  %10s  %10s  %s\n", w, "NAME", "TIME", "FILES",
		"LOGICAL", "UNIQUE", "PINNED");
	for (size_t i = 0; i < sv.n; i++) {
		const snap_ent *e = &sv.v[i];
		fprintf(c->out, "%-*s  %-20s  %9llu  %10s  %10s  %s\n", w, e->s.name + PREFIX_LEN,
			cli_fmt_time(e->s.ctime_ns, tb, sizeof tb),
			(unsigned long long)e->u.files,
			cli_fmt_bytes(e->u.logical_bytes, lb, sizeof lb),
			cli_fmt_bytes(e->u.unique_bytes, ub, sizeof ub), e->pinned ? "yes" : "no");
	}
out:
	free(sv.v);
	return st;
}

/* ---- ckpt rm ---- */

static const char ckpt_rm_usage[] =
	"usage: cairn ckpt rm [--force] NAME\n"
	"\n"
	"Delete checkpoint NAME (its data is freed by the next 'cairn gc' once\n"
	"nothing else references it).  A pinned checkpoint is refused unless\n"
	"--force, which also drops the pin.\n"
	"Exit status: 3 no such checkpoint, 2 bad name.\n";

static int rm_opt(cli_ctx *c, int id, const char *arg, void *st)
{
	(void)c; (void)arg;
	if (id == 'f')
		*(int *)st = 1;
	return -1;
}

static int cmd_ckpt_rm(cli_ctx *c, int argc, char **argv)
{
	static const cli_opt opts[] = { COMMON_OPTS, {"force", 'f', 0, 'f'}, {NULL, 0, 0, 0} };
	cli_args a;
	char **ops;
	int force = 0, nops, pinned, was;
	int st = parse(c, &a, argc, argv, opts, ckpt_rm_usage, rm_opt, &force, 1, 1,
		       &ops, &nops);
	cairn_snap s;

	if (st >= 0)
		goto out;
	const char *name = ops[0];
	if ((st = ckpt_get(c, name, &s)))
		goto out;
	int rc = pin_get(c, name, &pinned);
	if (rc) {
		st = cli_fail(c, rc, NULL, "read pin of '%s'", name);
		goto out;
	}
	if (pinned && !force) {
		cairn_errf(CAIRN_E_PERM, "checkpoint is pinned");
		st = cli_fail(c, CAIRN_E_PERM, "'cairn ckpt unpin' it first, or use --force",
			      "remove '%s'", name);
		goto out;
	}
	if ((rc = volume_snapshot_delete(c->vol, s.name))) {
		st = cli_fail(c, rc, NULL, "remove checkpoint '%s'", name);
		goto out;
	}
	if ((rc = pin_drop(c, name, &was))) {
		st = cli_fail(c, rc, NULL, "checkpoint '%s' removed; drop its pin", name);
		goto out;
	}
	if (c->json) {
		cli_json j;
		cli_json_init(&j, c->out);
		cli_json_obj_begin(&j);
		cli_json_kstr(&j, "removed", name);
		cli_json_kbool(&j, "was_pinned", was);
		cli_json_obj_end(&j);
	} else {
		cli_info(c, "removed checkpoint %s", name);
	}
	st = 0;
out:
	cli_args_free(&a);
	return st;
}

/* ---- ckpt prune ---- */

static const char ckpt_prune_usage[] =
	"usage: cairn ckpt prune [--keep-last N] [--keep-within DURATION]\n"
	"                        [--dry-run] [--now SECONDS] [--json]\n"
	"\n"
	"Delete the checkpoints no rule keeps.  A checkpoint is kept if it is one\n"
	"of the N newest (--keep-last N, N >= 0), or if it was saved at most\n"
	"DURATION ago (--keep-within 7d; units ms s m h d, bare number = seconds),\n"
	"or if it is pinned ('cairn ckpt pin').  At least one rule is required.\n"
	"Prints each checkpoint removed ('would remove' with --dry-run, which\n"
	"changes nothing).  --now evaluates --keep-within as of that time (Unix\n"
	"seconds, fraction allowed) instead of the current time.\n"
	"--json: {\"dry_run\", \"removed\": [names], \"kept\": [{name, reasons}]}.\n";

typedef struct prune_args {
	long long keep_last;      /* -1: no rule */
	int64_t within_ms;        /* -1: no rule */
	int dry_run;
	int64_t now_ns;           /* 0: now */
} prune_args;

enum { KEEP_PIN = 1, KEEP_LAST = 2, KEEP_WITHIN = 4 };

/* "1700000000" or "1700000000.25" seconds into ns. */
static int parse_epoch(const char *s, int64_t *ns)
{
	int64_t sec = 0, frac = 0, scale = 1000000000;
	const char *p = s;

	if (!*p)
		return -1;
	for (; *p >= '0' && *p <= '9'; p++) {
		if (sec > (INT64_MAX / 1000000000 - 9) / 10)
			return -1;
		sec = sec * 10 + (*p - '0');
	}
	if (p == s)
		return -1;
	if (*p == '.') {
		p++;
		for (; *p >= '0' && *p <= '9'; p++)
			if (scale > 1) {
				scale /= 10;
				frac += (*p - '0') * scale;
			}
	}
	if (*p)
		return -1;
	*ns = sec * 1000000000 + frac;
	return 0;
}

static int prune_opt(cli_ctx *c, int id, const char *arg, void *st)
{
	prune_args *p = st;
	char *end;

	switch (id) {
	case 'l':
		p->keep_last = strtoll(arg, &end, 10);
		if (!*arg || *end || p->keep_last < 0)
			return cli_usage(c, "--keep-last takes a number >= 0, not '%s'", arg);
		break;
	case 'w':
		if (cli_parse_duration(arg, &p->within_ms) < 0 || p->within_ms < 0)
			return cli_usage(c, "--keep-within takes a duration like 7d or 12h, not '%s'",
					 arg);
		break;
	case 'n':
		p->dry_run = 1;
		break;
	case 't':
		if (parse_epoch(arg, &p->now_ns) < 0)
			return cli_usage(c, "--now takes Unix seconds, not '%s'", arg);
		break;
	}
	return -1;
}

static int cmd_ckpt_prune(cli_ctx *c, int argc, char **argv)
{
	static const cli_opt opts[] = {
		COMMON_OPTS,
		{"keep-last", 0, 1, 'l'}, {"keep-within", 0, 1, 'w'},
		{"dry-run", 'n', 0, 'n'}, {"now", 0, 1, 't'}, {NULL, 0, 0, 0}
	};
	prune_args p = { .keep_last = -1, .within_ms = -1 };
	cli_args a;
	char **ops;
	int nops, rc;
	int st = parse(c, &a, argc, argv, opts, ckpt_prune_usage, prune_opt, &p, 0, 0,
		       &ops, &nops);
	snap_vec sv = { 0 };

	cli_args_free(&a);
	if (st >= 0)
		return st;
	if (p.keep_last < 0 && p.within_ms < 0)
		return cli_usage(c, "give --keep-last N and/or --keep-within DURATION");
	if (!p.now_ns) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		p.now_ns = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
	}
	if ((st = snap_collect(c, 1, &sv)))
		return st;
	if ((rc = pins_mark(c, &sv))) {
		st = cli_fail(c, rc, NULL, "read pins");
		goto out;
	}
	/* The whole keep set first (invariant 2); sv is oldest first. */
	for (size_t i = 0; i < sv.n; i++) {
		snap_ent *e = &sv.v[i];
		if (e->pinned)
			e->keep |= KEEP_PIN;
		if (p.keep_last >= 0 && (unsigned long long)(sv.n - i) <= (unsigned long long)p.keep_last)
			e->keep |= KEEP_LAST;
		if (p.within_ms >= 0 && (p.within_ms > INT64_MAX / 2000000 ||
					 p.now_ns - e->s.ctime_ns <= p.within_ms * 1000000))
			e->keep |= KEEP_WITHIN;
	}
	cli_json j = { 0 };
	if (c->json) {
		cli_json_init(&j, c->out);
		cli_json_obj_begin(&j);
		cli_json_kbool(&j, "dry_run", p.dry_run);
		cli_json_key(&j, "removed");
		cli_json_arr_begin(&j);
	}
	size_t removed = 0;
	for (size_t i = 0; i < sv.n && !st; i++) {
		snap_ent *e = &sv.v[i];
		const char *name = e->s.name + PREFIX_LEN;
		if (e->keep)
			continue;
		if (cli_cancelled(c)) {
			st = cli_fail(c, CAIRN_E_CANCELED, NULL, "prune (%zu removed)", removed);
			break;
		}
		if (!p.dry_run && (rc = volume_snapshot_delete(c->vol, e->s.name))) {
			/* Gone already (a concurrent rm) is what we wanted. */
			if (rc != CAIRN_E_NOTFOUND) {
				st = cli_fail(c, rc, NULL, "remove checkpoint '%s' (%zu removed before)",
					      name, removed);
				break;
			}
		}
		removed++;
		if (c->json)
			cli_json_str(&j, name);
		else
			fprintf(c->out, "%s %s\n", p.dry_run ? "would remove" : "removed", name);
	}
	if (c->json) {
		cli_json_arr_end(&j);
		cli_json_key(&j, "kept");
		cli_json_arr_begin(&j);
		for (size_t i = 0; i < sv.n; i++) {
			snap_ent *e = &sv.v[i];
			if (!e->keep)
				continue;
			cli_json_obj_begin(&j);
			cli_json_kstr(&j, "name", e->s.name + PREFIX_LEN);
			cli_json_key(&j, "reasons");
			cli_json_arr_begin(&j);
			if (e->keep & KEEP_PIN)
				cli_json_str(&j, "pinned");
			if (e->keep & KEEP_LAST)
				cli_json_str(&j, "keep-last");
			if (e->keep & KEEP_WITHIN)
				cli_json_str(&j, "keep-within");
			cli_json_arr_end(&j);
			cli_json_obj_end(&j);
		}
		cli_json_arr_end(&j);
		cli_json_ku64(&j, "removed_count", removed);
		cli_json_obj_end(&j);
	} else if (!st) {
		for (size_t i = 0; i < sv.n && c->verbose > 0; i++)
			if (sv.v[i].keep)
				fprintf(c->out, "kept %s%s%s%s\n", sv.v[i].s.name + PREFIX_LEN,
					sv.v[i].keep & KEEP_PIN ? " (pinned)" : "",
					sv.v[i].keep & KEEP_LAST ? " (keep-last)" : "",
					sv.v[i].keep & KEEP_WITHIN ? " (keep-within)" : "");
		cli_info(c, "%s %zu of %zu checkpoints%s", p.dry_run ? "would remove" : "removed",
			 removed, sv.n, removed && !p.dry_run ? "; 'cairn gc' frees their space" : "");
	}
out:
	free(sv.v);
	return st;
}

/* ---- ckpt pin / unpin ---- */

static const char ckpt_pin_usage[] =
	"usage: cairn ckpt pin NAME\n"
	"\n"
	"Pin checkpoint NAME: 'cairn ckpt prune' never removes it and 'cairn ckpt\n"
	"rm' refuses it without --force.  The pin is the empty file\n"
	"/.cairn/pins/NAME in the volume.  Pinning twice is not an error.\n"
	"Exit status: 3 no such checkpoint, 2 bad name.\n";

static const char ckpt_unpin_usage[] =
	"usage: cairn ckpt unpin NAME\n"
	"\n"
	"Remove the pin of NAME ('cairn ckpt pin').  Unpinning a checkpoint that is\n"
	"not pinned is not an error.  Exit status: 3 no such checkpoint and no pin.\n";

static int pin_report(cli_ctx *c, const char *name, int pinned, int changed)
{
	if (c->json) {
		cli_json j;
		cli_json_init(&j, c->out);
		cli_json_obj_begin(&j);
		cli_json_kstr(&j, "name", name);
		cli_json_kbool(&j, "pinned", pinned);
		cli_json_kbool(&j, "changed", changed);
		cli_json_obj_end(&j);
	} else {
		cli_info(c, "%s %s%s", pinned ? "pinned" : "unpinned", name,
			 changed ? "" : " (already)");
	}
	return 0;
}

static int cmd_ckpt_pin(cli_ctx *c, int argc, char **argv)
{
	static const cli_opt opts[] = { COMMON_OPTS, {NULL, 0, 0, 0} };
	cli_args a;
	char **ops;
	int nops, rc;
	int st = parse(c, &a, argc, argv, opts, ckpt_pin_usage, NULL, NULL, 1, 1, &ops, &nops);
	cairn_snap s;
	uint64_t dir;
	cairn_attr at;

	if (st >= 0)
		goto out;
	if ((st = ckpt_get(c, ops[0], &s)))
		goto out;
	if ((rc = pins_dir(c, 1, &dir))) {
		st = cli_fail(c, rc, NULL, "pin '%s'", ops[0]);
		goto out;
	}
	rc = volume_create(c->vol, dir, ops[0], 0644, (uint32_t)geteuid(), (uint32_t)getegid(),
			   &at);
	if (rc && rc != CAIRN_E_EXISTS) {
		st = cli_fail(c, rc, NULL, "pin '%s'", ops[0]);
		goto out;
	}
	st = pin_report(c, ops[0], 1, rc == 0);
out:
	cli_args_free(&a);
	return st;
}

static int cmd_ckpt_unpin(cli_ctx *c, int argc, char **argv)
{
	static const cli_opt opts[] = { COMMON_OPTS, {NULL, 0, 0, 0} };
	cli_args a;
	char **ops;
	int nops, rc, was;
	int st = parse(c, &a, argc, argv, opts, ckpt_unpin_usage, NULL, NULL, 1, 1, &ops, &nops);
	char sn[CAIRN_SNAP_NAME_MAX + 1];
	cairn_snap s;

	if (st >= 0)
		goto out;
	if ((st = ckpt_name_check(c, ops[0])))
		goto out;
	if ((rc = pin_drop(c, ops[0], &was))) {
		st = cli_fail(c, rc, NULL, "unpin '%s'", ops[0]);
		goto out;
	}
	ckpt_snap_name(ops[0], sn, sizeof sn);
	if (!was && (rc = volume_snapshot_get(c->vol, sn, &s))) {
		st = cli_fail(c, rc, rc == CAIRN_E_NOTFOUND ? "see 'cairn ckpt list'" : NULL,
			      "checkpoint '%s'", ops[0]);
		goto out;
	}
	st = pin_report(c, ops[0], 0, was);
out:
	cli_args_free(&a);
	return st;
}

/* ---- ckpt diff ---- */

static const char ckpt_diff_usage[] =
	"usage: cairn ckpt diff [--content] [--json] A B\n"
	"\n"
	"What changed from A to B.  A and B are checkpoint names, or volume paths\n"
	"(/live/dir, @SNAP/dir) to compare any two trees.  One line per path,\n"
	"relative to the two roots (directories end in '/'):\n"
	"  added    PATH     only in B (a new directory lists its contents too)\n"
	"  removed  PATH     only in A\n"
	"  changed  PATH  (what)  in both, with a different type, size, mode,\n"
	"                  mtime, symlink target, or (--content) bytes\n"
	"A directory is changed only by its type or mode; its entries speak for\n"
	"the rest.  --content reads and compares files of equal size whose\n"
	"attributes are otherwise equal.  --json: {\"added\": [paths],\n"
	"\"removed\": [paths], \"changed\": [{\"path\", \"what\": [...]}]}.\n"
	"Exit status: 0 whether or not they differ, 3 no such checkpoint.\n";

typedef struct dent {
	char *name;
	uint64_t ino;
} dent;

typedef struct dvec {
	dent *v;
	size_t n, cap;
	int oom;
} dvec;

static int dvec_cb(const char *name, size_t namelen, uint64_t ino, uint32_t type,
		   uint64_t cookie, void *arg)
{
	dvec *d = arg;
	(void)type; (void)cookie;
	if (d->n == d->cap) {
		size_t cap = d->cap ? d->cap * 2 : 32;
		dent *v = realloc(d->v, cap * sizeof *v);
		if (!v) {
			d->oom = 1;
			return 1;
		}
		d->v = v;
		d->cap = cap;
	}
	char *s = malloc(namelen + 1);
	if (!s) {
		d->oom = 1;
		return 1;
	}
	memcpy(s, name, namelen);
	s[namelen] = 0;
	d->v[d->n].name = s;
	d->v[d->n++].ino = ino;
	return 0;
}

static void dvec_free(dvec *d)
{
	for (size_t i = 0; i < d->n; i++)
		free(d->v[i].name);
	free(d->v);
}

static int dent_cmp(const void *pa, const void *pb)
{
	return strcmp(((const dent *)pa)->name, ((const dent *)pb)->name);
}

/* The entries of directory ino, sorted by name. */
static int dir_read(cli_ctx *c, uint64_t ino, dvec *d)
{
	memset(d, 0, sizeof *d);
	int rc = volume_readdir(c->vol, ino, 0, dvec_cb, d);
	if (!rc && d->oom)
		rc = cairn_errf(CAIRN_E_NOMEM, "read directory %llu", (unsigned long long)ino);
	if (rc) {
		dvec_free(d);
		return rc;
	}
	if (d->n)
		qsort(d->v, d->n, sizeof d->v[0], dent_cmp);
	return 0;
}

typedef struct differ {
	cli_ctx *c;
	int content;
	cli_json j;
	int section;     /* json: 0 added, 1 removed, 2 changed */
	uint64_t counts[3];
	char path[4096];
	char *bufa, *bufb;
} differ;

enum { D_ADDED, D_REMOVED, D_CHANGED };
static const char *const d_label[3] = { "added", "removed", "changed" };

/* What differs between a and b (files present on both sides), as a
 * comma-separated list in what (empty: nothing). */
enum { W_TYPE = 1, W_SIZE = 2, W_MODE = 4, W_MTIME = 8, W_TARGET = 16, W_CONTENT = 32 };
static const char *const w_names[] = { "type", "size", "mode", "mtime", "target", "content" };

static int files_differ(differ *d, uint64_t ia, uint64_t ib, uint64_t size, int *out)
{
	cairn_file *fa = NULL, *fb = NULL;
	enum { BUF = 1 << 20 };
	int rc;

	*out = 0;
	if (!d->bufa && (!(d->bufa = malloc(BUF)) || !(d->bufb = malloc(BUF))))
		return cairn_errf(CAIRN_E_NOMEM, "diff buffers");
	if ((rc = volume_file_open(d->c->vol, ia, &fa)) ||
	    (rc = volume_file_open(d->c->vol, ib, &fb)))
		goto out;
	for (uint64_t off = 0; off < size && !*out; ) {
		size_t ga, gb, want = size - off < BUF ? (size_t)(size - off) : BUF;
		if (cli_cancelled(d->c)) {
			rc = cairn_errf(CAIRN_E_CANCELED, "diff canceled");
			goto out;
		}
		if ((rc = volume_file_read(fa, d->bufa, want, off, &ga)) ||
		    (rc = volume_file_read(fb, d->bufb, want, off, &gb)))
			goto out;
		if (ga != gb || memcmp(d->bufa, d->bufb, ga))
			*out = 1;
		if (ga < want)
			break;
		off += ga;
	}
out:
	if (fa) {
		int rc2 = volume_file_close(fa);
		rc = rc ? rc : rc2;
	}
	if (fb) {
		int rc2 = volume_file_close(fb);
		rc = rc ? rc : rc2;
	}
	return rc;
}

static int compare(differ *d, uint64_t ia, uint64_t ib, const cairn_attr *a,
		   const cairn_attr *b, int content, unsigned *what)
{
	char ta[4096], tb[4096];
	size_t la, lb;
	int rc;

	*what = 0;
	if ((a->mode & S_IFMT) != (b->mode & S_IFMT)) {
		*what = W_TYPE;
		return 0;
	}
	if ((a->mode & 07777) != (b->mode & 07777))
		*what |= W_MODE;
	if (S_ISDIR(a->mode))
		return 0;
	if (a->size != b->size)
		*what |= W_SIZE;
	if (a->mtime_ns != b->mtime_ns)
		*what |= W_MTIME;
	if (S_ISLNK(a->mode)) {
		if ((rc = volume_readlink(d->c->vol, ia, ta, sizeof ta, &la)) ||
		    (rc = volume_readlink(d->c->vol, ib, tb, sizeof tb, &lb)))
			return rc;
		if (la != lb || memcmp(ta, tb, la))
			*what |= W_TARGET;
	}
	if (content && S_ISREG(a->mode) && !(*what & W_SIZE) && ia != ib) {
		int differs;
		if ((rc = files_differ(d, ia, ib, a->size, &differs)))
			return rc;
		if (differs)
			*what |= W_CONTENT;
	}
	return 0;
}

static void report(differ *d, int kind, int isdir, unsigned what)
{
	const char *slash = isdir && strcmp(d->path, "/") ? "/" : "";
	d->counts[kind]++;
	if (!d->c->json) {
		fprintf(d->c->out, "%-8s %s%s", d_label[kind], d->path, slash);
		if (what) {
			const char *sep = "  (";
			for (unsigned i = 0; i < 6; i++)
				if (what & (1u << i)) {
					fprintf(d->c->out, "%s%s", sep, w_names[i]);
					sep = ", ";
				}
			fputc(')', d->c->out);
		}
		fputc('\n', d->c->out);
		return;
	}
	if (kind == D_CHANGED) {
		cli_json_obj_begin(&d->j);
		char p[sizeof d->path + 1];
		snprintf(p, sizeof p, "%s%s", d->path, slash);
		cli_json_kstr(&d->j, "path", p);
		cli_json_key(&d->j, "what");
		cli_json_arr_begin(&d->j);
		for (unsigned i = 0; i < 6; i++)
			if (what & (1u << i))
				cli_json_str(&d->j, w_names[i]);
		cli_json_arr_end(&d->j);
		cli_json_obj_end(&d->j);
	} else {
		char p[sizeof d->path + 1];
		snprintf(p, sizeof p, "%s%s", d->path, slash);
		cli_json_str(&d->j, p);
	}
}

/* d->path += "/name"; restores the old length on pop. */
static int path_push(differ *d, const char *name, size_t *old)
{
	*old = strlen(d->path);
	const char *sep = *old && d->path[*old - 1] == '/' ? "" : "/";
	int n = snprintf(d->path + *old, sizeof d->path - *old, "%s%s", sep, name);
	if (n < 0 || (size_t)n >= sizeof d->path - *old) {
		d->path[*old] = 0;
		return cairn_errf(CAIRN_E_NAMETOOLONG, "path %s/%s too long", d->path, name);
	}
	return 0;
}

/* Pass kind (D_ADDED or D_REMOVED) over: report every entry of the tree
 * under ino (itself included unless skip_self). */
static int walk_one(differ *d, int kind, uint64_t ino, int skip_self)
{
	cairn_attr a;
	dvec dv;
	int rc = volume_getattr(d->c->vol, ino, &a);
	if (rc)
		return rc;
	if (!skip_self)
		report(d, kind, S_ISDIR(a.mode), 0);
	if (!S_ISDIR(a.mode))
		return 0;
	if ((rc = dir_read(d->c, ino, &dv)))
		return rc;
	for (size_t i = 0; i < dv.n && !rc; i++) {
		size_t old;
		if ((rc = path_push(d, dv.v[i].name, &old)))
			break;
		rc = walk_one(d, kind, dv.v[i].ino, 0);
		d->path[old] = 0;
	}
	dvec_free(&dv);
	return rc;
}

/* Compare directories ia (in A) and ib (in B).  In JSON mode the walk runs
 * once per section (added, removed, changed) and reports only that one;
 * in text mode once, reporting everything in path order. */
static int diff_dir(differ *d, uint64_t ia, uint64_t ib)
{
	dvec da, db;
	int rc;

	if (cli_cancelled(d->c))
		return cairn_errf(CAIRN_E_CANCELED, "diff canceled");
	if ((rc = dir_read(d->c, ia, &da)))
		return rc;
	if ((rc = dir_read(d->c, ib, &db))) {
		dvec_free(&da);
		return rc;
	}
	int text = !d->c->json;
	size_t i = 0, k = 0;
	while (!rc && (i < da.n || k < db.n)) {
		int cmp = i >= da.n ? 1 : k >= db.n ? -1 : strcmp(da.v[i].name, db.v[k].name);
		size_t old;
		const char *name = cmp <= 0 ? da.v[i].name : db.v[k].name;
		if ((rc = path_push(d, name, &old)))
			break;
		if (cmp < 0) {
			if (text || d->section == D_REMOVED)
				rc = walk_one(d, D_REMOVED, da.v[i].ino, 0);
			i++;
		} else if (cmp > 0) {
			if (text || d->section == D_ADDED)
				rc = walk_one(d, D_ADDED, db.v[k].ino, 0);
			k++;
		} else {
			cairn_attr a, b;
			unsigned what = 0;
			if (!(rc = volume_getattr(d->c->vol, da.v[i].ino, &a)) &&
			    !(rc = volume_getattr(d->c->vol, db.v[k].ino, &b)))
				rc = compare(d, da.v[i].ino, db.v[k].ino, &a, &b,
					     d->content && (text || d->section == D_CHANGED), &what);
			if (!rc && what && (text || d->section == D_CHANGED))
				report(d, D_CHANGED, S_ISDIR(b.mode), what);
			if (!rc && (what & W_TYPE)) {
				/* One tree's subtree is gone, the other's new. */
				if (S_ISDIR(a.mode) && (text || d->section == D_REMOVED))
					rc = walk_one(d, D_REMOVED, da.v[i].ino, 1);
				if (!rc && S_ISDIR(b.mode) && (text || d->section == D_ADDED))
					rc = walk_one(d, D_ADDED, db.v[k].ino, 1);
			} else if (!rc && S_ISDIR(a.mode)) {
				rc = diff_dir(d, da.v[i].ino, db.v[k].ino);
			}
			i++;
			k++;
		}
		d->path[old] = 0;
	}
	dvec_free(&da);
	dvec_free(&db);
	return rc;
}

/* A diff operand: a checkpoint name, or a volume path (/..., @...). */
static int diff_root(cli_ctx *c, const char *arg, uint64_t *ino)
{
	cairn_attr a;
	int rc;

	if (arg[0] == '/' || arg[0] == '@') {
		if ((rc = cli_resolve(c, arg, &a)))
			return cli_fail(c, rc, NULL, "%s", arg);
		if (!S_ISDIR(a.mode))
			return cli_fail(c, cairn_errf(CAIRN_E_NOTDIR, "not a directory"), NULL,
					"%s", arg);
		*ino = a.ino;
		return 0;
	}
	cairn_snap s;
	if ((rc = ckpt_get(c, arg, &s)))
		return rc;
	*ino = s.root;
	return 0;
}

static int diff_opt(cli_ctx *c, int id, const char *arg, void *st)
{
	(void)c; (void)arg;
	if (id == 'c')
		*(int *)st = 1;
	return -1;
}

static int cmd_ckpt_diff(cli_ctx *c, int argc, char **argv)
{
	static const cli_opt opts[] = { COMMON_OPTS, {"content", 0, 0, 'c'}, {NULL, 0, 0, 0} };
	cli_args a;
	char **ops;
	int nops, content = 0, rc = 0;
	int st = parse(c, &a, argc, argv, opts, ckpt_diff_usage, diff_opt, &content, 2, 2,
		       &ops, &nops);
	uint64_t ra, rb;
	differ *d = NULL;

	if (st >= 0)
		goto out;
	if ((st = diff_root(c, ops[0], &ra)) || (st = diff_root(c, ops[1], &rb)))
		goto out;
	if (!(d = calloc(1, sizeof *d))) {
		st = cli_fail(c, CAIRN_E_NOMEM, NULL, "diff");
		goto out;
	}
	d->c = c;
	d->content = content;
	if (c->json) {
		cli_json_init(&d->j, c->out);
		cli_json_obj_begin(&d->j);
		cli_json_kstr(&d->j, "a", ops[0]);
		cli_json_kstr(&d->j, "b", ops[1]);
		for (d->section = 0; d->section < 3 && !rc; d->section++) {
			cli_json_key(&d->j, d_label[d->section]);
			cli_json_arr_begin(&d->j);
			d->path[0] = 0;
			rc = diff_dir(d, ra, rb);
			cli_json_arr_end(&d->j);
		}
		if (!rc) {
			cli_json_ku64(&d->j, "added_count", d->counts[D_ADDED]);
			cli_json_ku64(&d->j, "removed_count", d->counts[D_REMOVED]);
			cli_json_ku64(&d->j, "changed_count", d->counts[D_CHANGED]);
		}
		cli_json_obj_end(&d->j);
	} else {
		rc = diff_dir(d, ra, rb);
		if (!rc)
			cli_info(c, "%llu added, %llu removed, %llu changed",
				 (unsigned long long)d->counts[D_ADDED],
				 (unsigned long long)d->counts[D_REMOVED],
				 (unsigned long long)d->counts[D_CHANGED]);
	}
	if (rc)
		st = cli_fail(c, rc, NULL, "diff %s %s", ops[0], ops[1]);
out:
	if (d) {
		free(d->bufa);
		free(d->bufb);
		free(d);
	}
	cli_args_free(&a);
	return st;
}

/* ---- snapshot create / list / rm ---- */

static const char snap_create_usage[] =
	"usage: cairn snapshot create [--json] PATH NAME\n"
	"\n"
	"Snapshot the directory tree at volume path PATH (/dir, or @SNAP/dir) as\n"
	"the read-only tree NAME, readable as @NAME/... (and under the mount).\n"
	"Copies metadata only: O(entries), no data.  NAME: 1-255 bytes, no '/' or\n"
	"control characters, not starting with 'ckpt:' (checkpoints' namespace).\n"
	"Exit status: 3 PATH missing, 4 NAME exists, 2 bad name.\n";

static const char snap_list_usage[] =
	"usage: cairn snapshot list [--json]\n"
	"\n"
	"List the snapshots (checkpoints excluded: see 'cairn ckpt list'), oldest\n"
	"first: name, time taken (UTC), inode it was taken from, entries.\n";

static const char snap_rm_usage[] =
	"usage: cairn snapshot rm NAME\n"
	"\n"
	"Delete snapshot NAME; its data is freed by 'cairn gc' once nothing else\n"
	"references it.  Checkpoints are removed with 'cairn ckpt rm'.\n"
	"Exit status: 3 no such snapshot, 2 bad name.\n";

static void snap_json(cli_json *j, const cairn_snap *s, const char *name)
{
	char tb[32];
	cli_json_obj_begin(j);
	cli_json_kstr(j, "name", name);
	cli_json_kstr(j, "time", cli_fmt_time(s->ctime_ns, tb, sizeof tb));
	cli_json_ki64(j, "time_ns", s->ctime_ns);
	cli_json_ku64(j, "source_ino", s->src);
	cli_json_ku64(j, "root_ino", s->root);
	cli_json_ku64(j, "entries", s->entries);
	cli_json_obj_end(j);
}

static int cmd_snap_create(cli_ctx *c, int argc, char **argv)
{
	static const cli_opt opts[] = { COMMON_OPTS, {NULL, 0, 0, 0} };
	cli_args a;
	char **ops;
	int nops, rc;
	int st = parse(c, &a, argc, argv, opts, snap_create_usage, NULL, NULL, 2, 2, &ops,
		       &nops);
	cairn_attr at;
	cairn_snap s;

	if (st >= 0)
		goto out;
	if ((st = snap_name_check(c, ops[1])))
		goto out;
	if ((rc = cli_resolve(c, ops[0], &at))) {
		st = cli_fail(c, rc, NULL, "source");
		goto out;
	}
	if (!S_ISDIR(at.mode)) {
		st = cli_fail(c, cairn_errf(CAIRN_E_NOTDIR, "not a directory"),
			      "snapshots are of directories; 'cairn clone' copies a file", "%s",
			      ops[0]);
		goto out;
	}
	if ((rc = volume_snapshot_create(c->vol, at.ino, ops[1], &s))) {
		st = cli_fail(c, rc, NULL, "snapshot %s as '%s'", ops[0], ops[1]);
		goto out;
	}
	if (c->json) {
		cli_json j;
		cli_json_init(&j, c->out);
		snap_json(&j, &s, s.name);
	} else {
		cli_info(c, "snapshot %s of %s: %llu entries", s.name, ops[0],
			 (unsigned long long)s.entries);
	}
	st = 0;
out:
	cli_args_free(&a);
	return st;
}

static int cmd_snap_list(cli_ctx *c, int argc, char **argv)
{
	static const cli_opt opts[] = { COMMON_OPTS, {NULL, 0, 0, 0} };
	cli_args a;
	char **ops;
	int nops;
	int st = parse(c, &a, argc, argv, opts, snap_list_usage, NULL, NULL, 0, 0, &ops, &nops);
	snap_vec sv;
	char tb[32];

	cli_args_free(&a);
	if (st >= 0)
		return st;
	if ((st = snap_collect(c, 0, &sv)))
		return st;
	if (c->json) {
		cli_json j;
		cli_json_init(&j, c->out);
		cli_json_arr_begin(&j);
		for (size_t i = 0; i < sv.n; i++)
			snap_json(&j, &sv.v[i].s, sv.v[i].s.name);
		cli_json_arr_end(&j);
	} else if (sv.n == 0) {
		cli_info(c, "no snapshots");
	} else {
		int w = 4;
		for (size_t i = 0; i < sv.n; i++) {
			int l = (int)strlen(sv.v[i].s.name);
			w = l > w ? l : w;
		}
		fprintf(c->out, "%-*s  %-20s  %12s  %10s\n", w, "NAME", "TIME", "SOURCE_INO",
			"ENTRIES");
		for (size_t i = 0; i < sv.n; i++)
			fprintf(c->out, "%-*s  %-20s  %12llu  %10llu\n", w, sv.v[i].s.name,
				cli_fmt_time(sv.v[i].s.ctime_ns, tb, sizeof tb),
				(unsigned long long)sv.v[i].s.src,
				(unsigned long long)sv.v[i].s.entries);
	}
	free(sv.v);
	return 0;
}

static int cmd_snap_rm(cli_ctx *c, int argc, char **argv)
{
	static const cli_opt opts[] = { COMMON_OPTS, {NULL, 0, 0, 0} };
	cli_args a;
	char **ops;
	int nops, rc;
	int st = parse(c, &a, argc, argv, opts, snap_rm_usage, NULL, NULL, 1, 1, &ops, &nops);

	if (st >= 0)
		goto out;
	if ((st = snap_name_check(c, ops[0])))
		goto out;
	if ((rc = volume_snapshot_delete(c->vol, ops[0]))) {
		st = cli_fail(c, rc, rc == CAIRN_E_NOTFOUND ? "see 'cairn snapshot list'" : NULL,
			      "remove snapshot '%s'", ops[0]);
		goto out;
	}
	if (c->json) {
		cli_json j;
		cli_json_init(&j, c->out);
		cli_json_obj_begin(&j);
		cli_json_kstr(&j, "removed", ops[0]);
		cli_json_obj_end(&j);
	} else {
		cli_info(c, "removed snapshot %s", ops[0]);
	}
	st = 0;
out:
	cli_args_free(&a);
	return st;
}

/* ---- clone ---- */

static const char clone_usage[] =
	"usage: cairn clone [--json] SRC DST\n"
	"\n"
	"Make DST a writable copy of SRC without copying data: SRC is a volume\n"
	"path, live (/a/b) or in a snapshot (@SNAP/a/b; a checkpoint NAME is\n"
	"@ckpt:NAME/...), a directory tree or a file; DST a new path in the live\n"
	"tree whose parent exists.  Copy-on-write: later writes to either side never\n"
	"show in the other.  O(entries) metadata, one transaction.\n"
	"Exit status: 3 SRC or DST's parent missing, 4 DST exists.\n";

static int cmd_clone(cli_ctx *c, int argc, char **argv)
{
	static const cli_opt opts[] = { COMMON_OPTS, {NULL, 0, 0, 0} };
	cli_args a;
	char **ops;
	int nops, rc;
	int st = parse(c, &a, argc, argv, opts, clone_usage, NULL, NULL, 2, 2, &ops, &nops);
	cairn_attr src, out;
	uint64_t parent;
	char leaf[CLI_NAME_BUF];

	if (st >= 0)
		goto out;
	if ((rc = cli_resolve(c, ops[0], &src))) {
		st = cli_fail(c, rc, NULL, "source");
		goto out;
	}
	if ((rc = cli_resolve_parent(c, ops[1], &parent, leaf))) {
		st = cli_fail(c, rc, NULL, "destination");
		goto out;
	}
	if ((rc = volume_clone(c->vol, src.ino, parent, leaf, &out))) {
		st = cli_fail(c, rc, rc == CAIRN_E_ROFS ? "clone into the live tree" : NULL,
			      "clone %s to %s", ops[0], ops[1]);
		goto out;
	}
	cli_mount_entry(c, parent, leaf);
	if (c->json) {
		cli_json j;
		cli_json_init(&j, c->out);
		cli_json_obj_begin(&j);
		cli_json_kstr(&j, "source", ops[0]);
		cli_json_kstr(&j, "dest", ops[1]);
		cli_json_ku64(&j, "ino", out.ino);
		cli_json_obj_end(&j);
	} else {
		cli_info(c, "cloned %s to %s", ops[0], ops[1]);
	}
	st = 0;
out:
	cli_args_free(&a);
	return st;
}

/* ---- tables ---- */

static const char ckpt_usage[] =
	"usage: cairn ckpt COMMAND [ARGS]\n"
	"\n"
	"Checkpoints: named, read-only, whole-or-nothing copies of a directory\n"
	"tree (docs/checkpoints.md).\n"
	"  save SRC_DIR NAME      save a checkpoint\n"
	"  restore NAME DEST_DIR  restore one\n"
	"  list                   list them with their size and unique bytes\n"
	"  rm NAME                delete one\n"
	"  prune --keep-last N | --keep-within DURATION   delete old ones\n"
	"  diff A B               what changed between two\n"
	"  pin NAME / unpin NAME  protect one from prune and rm\n"
	"'cairn ckpt COMMAND --help' for each.\n";

static const cli_command ckpt_sub[] = {
	{ "save", "save a checkpoint", cmd_ckpt_save_usage, CLI_VOLUME, cmd_ckpt_save },
	{ "restore", "restore a checkpoint", cmd_ckpt_restore_usage, CLI_VOLUME,
	  cmd_ckpt_restore },
	{ "list", "list checkpoints", ckpt_list_usage, CLI_VOLUME, cmd_ckpt_list },
	{ "rm", "delete a checkpoint", ckpt_rm_usage, CLI_VOLUME, cmd_ckpt_rm },
	{ "prune", "delete the checkpoints no rule keeps", ckpt_prune_usage, CLI_VOLUME,
	  cmd_ckpt_prune },
	{ "diff", "what changed between two checkpoints", ckpt_diff_usage, CLI_VOLUME,
	  cmd_ckpt_diff },
	{ "pin", "protect a checkpoint from prune and rm", ckpt_pin_usage, CLI_VOLUME,
	  cmd_ckpt_pin },
	{ "unpin", "remove a pin", ckpt_unpin_usage, CLI_VOLUME, cmd_ckpt_unpin },
	{ NULL, NULL, NULL, 0, NULL },
};

static const char snap_usage[] =
	"usage: cairn snapshot COMMAND [ARGS]\n"
	"\n"
	"Read-only trees of the volume, readable as @NAME/path (docs/checkpoints.md).\n"
	"  create PATH NAME   snapshot a directory (metadata only, no data copied)\n"
	"  list               list snapshots (not checkpoints)\n"
	"  rm NAME            delete one\n";

static const cli_command snap_sub[] = {
	{ "create", "snapshot a directory", snap_create_usage, CLI_VOLUME, cmd_snap_create },
	{ "list", "list snapshots", snap_list_usage, CLI_VOLUME, cmd_snap_list },
	{ "rm", "delete a snapshot", snap_rm_usage, CLI_VOLUME, cmd_snap_rm },
	{ NULL, NULL, NULL, 0, NULL },
};

static int cmd_ckpt(cli_ctx *c, int argc, char **argv)
{
	return cli_run_group(c, ckpt_sub, argc, argv);
}

static int cmd_snapshot(cli_ctx *c, int argc, char **argv)
{
	return cli_run_group(c, snap_sub, argc, argv);
}

const cli_command cli_ckpt_commands[] = {
	{ "ckpt", "save, restore, list, prune, diff and pin checkpoints", ckpt_usage,
	  CLI_GROUP | CLI_VOLUME, cmd_ckpt },
	{ "snapshot", "create, list and delete read-only snapshots", snap_usage,
	  CLI_GROUP | CLI_VOLUME, cmd_snapshot },
	{ "clone", "writable copy of a tree or file, no data copied", clone_usage, CLI_VOLUME,
	  cmd_clone },
	{ NULL, NULL, NULL, 0, NULL },
};
