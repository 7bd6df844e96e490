/*
 * cli_util.c - what the commands of the cairn CLI share (tools/cli.h):
 * one-line messages with the documented exit codes, reentrant option
 * parsing, sizes/durations/times, local and volume paths, a JSON writer
 * and a progress line.
 *
 * Everything here is reentrant: commands run on threads of the mount
 * daemon (cli_ctl.c), so nothing uses getopt(3), strtok(3) or process
 * globals; messages go to the command's own streams.
 *
 * Volume paths (docs/cli.md "Paths"):
 *   /a/b        the live tree (the leading '/' is optional)
 *   @SNAP/a/b   inside snapshot SNAP (read-only)
 *   /MNT/a/b    in the mount daemon only: a local path under its mount
 *               point MNT means the same file
 * "." and empty components are skipped, ".." is refused (a path names one
 * file without walking back up, which keeps resolution a single descent).
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"

/* ---- messages ---- */

static void vline(cli_ctx *c, const char *fmt, va_list ap)
{
	vfprintf(c->err, fmt, ap);
}

int cli_fail(cli_ctx *c, int rc, const char *hint, const char *what_fmt, ...)
{
	char what[1024];
	const char *why = cairn_errmsg();
	va_list ap;

	va_start(ap, what_fmt);
	vsnprintf(what, sizeof what, what_fmt, ap);
	va_end(ap);
	if (!why || !*why)
		why = cairn_strerror(rc);
	/* the message names the path already ("'/a/b': no such file") */
	if (what[0] && strlen(what) + 2 < sizeof what) {
		char q[1024 + 2];
		snprintf(q, sizeof q, "'%s'", what);
		if (strstr(why, q))
			what[0] = 0;
	}
	fprintf(c->err, "cairn: %s: %s%s%s%s%s\n", c->cmd, what, what[0] ? ": " : "", why,
		hint ? "; " : "", hint ? hint : "");
	fflush(c->err);
	switch (rc) {
	case CAIRN_E_NOTFOUND:
		return CLI_EXIT_NOTFOUND;
	case CAIRN_E_EXISTS:
	case CAIRN_E_NOTEMPTY:
		return CLI_EXIT_EXISTS;
	default:
		return CLI_EXIT_FAIL;
	}
}

int cli_usage(cli_ctx *c, const char *fmt, ...)
{
	va_list ap;
	fprintf(c->err, "cairn: %s: ", c->cmd);
	va_start(ap, fmt);
	vline(c, fmt, ap);
	va_end(ap);
	fprintf(c->err, " (see 'cairn %s --help')\n", c->cmd);
	fflush(c->err);
	return CLI_EXIT_USAGE;
}

void cli_info(cli_ctx *c, const char *fmt, ...)
{
	va_list ap;
	if (c->verbose < 0 || c->json)
		return;
	va_start(ap, fmt);
	vline(c, fmt, ap);
	va_end(ap);
	fputc('\n', c->err);
	fflush(c->err);
}

int cli_cancelled(const cli_ctx *c)
{
	return c->cancel && *c->cancel;
}

int cli_wants_help(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--") == 0)
			break;
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
			return 1;
	}
	return 0;
}

int cli_run_group(cli_ctx *c, const cli_command *sub, int argc, char **argv)
{
	/* The two-word name lives as long as the command's thread runs. */
	static _Thread_local char name[128];
	const char *group = argv[0];

	if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		FILE *f = argc < 2 ? c->err : c->out;
		fprintf(f, "usage: cairn %s SUBCOMMAND [ARGS]\n\nSubcommands:\n", group);
		for (const cli_command *s = sub; s->name; s++)
			fprintf(f, "  %-10s %s\n", s->name, s->summary);
		fprintf(f, "\n'cairn %s SUBCOMMAND --help' for one of them.\n", group);
		return argc < 2 ? CLI_EXIT_USAGE : CLI_EXIT_OK;
	}
	for (const cli_command *s = sub; s->name; s++) {
		if (strcmp(s->name, argv[1]) != 0)
			continue;
		snprintf(name, sizeof name, "%s %s", group, s->name);
		c->cmd = name;
		if (cli_wants_help(argc - 1, argv + 1)) {
			fputs(s->usage, c->out);
			return CLI_EXIT_OK;
		}
		if ((s->flags & CLI_VOLUME) && !c->vol) {
			fprintf(c->err, "cairn: %s: no volume open\n", name);
			return CLI_EXIT_FAIL;
		}
		return s->run(c, argc - 1, argv + 1);
	}
	fprintf(c->err, "cairn: %s: unknown subcommand '%s' (see 'cairn %s --help')\n", group,
		argv[1], group);
	return CLI_EXIT_USAGE;
}

/* ---- options ---- */

void cli_args_init(cli_args *a, int argc, char **argv)
{
	memset(a, 0, sizeof *a);
	a->argc = argc;
	a->argv = argv;
	a->i = 1;
}

static int add_operand(cli_args *a, char *s)
{
	if (!a->operands) {
		a->operands = calloc((size_t)a->argc + 1, sizeof *a->operands);
		if (!a->operands)
			return -1;
	}
	a->operands[a->noperands++] = s;
	a->operands[a->noperands] = NULL;
	return 0;
}

int cli_getopt(cli_ctx *c, cli_args *a, const cli_opt *opts)
{
	a->arg = NULL;
	for (;;) {
		char *s;
		if (a->sub) {
			/* inside a cluster of short options: -rf */
			s = a->argv[a->i];
			char ch = s[a->sub];
			const cli_opt *o = opts;
			for (; o->lng; o++)
				if (o->shrt && o->shrt == ch)
					break;
			if (!o->lng) {
				a->sub = 0;
				a->i++;
				cli_usage(c, "unknown option '-%c'", ch);
				return -1;
			}
			a->sub++;
			if (o->has_arg) {
				if (s[a->sub]) {
					a->arg = s + a->sub;
					a->i++;
				} else if (a->i + 1 < a->argc) {
					a->arg = a->argv[a->i + 1];
					a->i += 2;
				} else {
					a->sub = 0;
					a->i++;
					cli_usage(c, "option '-%c' needs a value", ch);
					return -1;
				}
				a->sub = 0;
			} else if (!s[a->sub]) {
				a->sub = 0;
				a->i++;
			}
			return o->id;
		}
		if (a->i >= a->argc)
			return 0;  /* operands: cli_operands() */
		s = a->argv[a->i];
		if (strcmp(s, "--") == 0) {
			for (a->i++; a->i < a->argc; a->i++)
				if (add_operand(a, a->argv[a->i])) {
					cli_usage(c, "out of memory");
					return -1;
				}
			continue;
		}
		if (s[0] == '-' && s[1] == '-') {
			const char *name = s + 2, *eq = strchr(name, '=');
			size_t n = eq ? (size_t)(eq - name) : strlen(name);
			const cli_opt *o = opts;
			for (; o->lng; o++)
				if (strlen(o->lng) == n && strncmp(o->lng, name, n) == 0)
					break;
			if (!o->lng) {
				a->i++;
				cli_usage(c, "unknown option '%.*s'", (int)(n + 2), s);
				return -1;
			}
			if (o->has_arg) {
				if (eq) {
					a->arg = eq + 1;
					a->i++;
				} else if (a->i + 1 < a->argc) {
					a->arg = a->argv[a->i + 1];
					a->i += 2;
				} else {
					a->i++;
					cli_usage(c, "option '--%s' needs a value", o->lng);
					return -1;
				}
			} else {
				a->i++;
				if (eq) {
					cli_usage(c, "option '--%s' takes no value", o->lng);
					return -1;
				}
			}
			return o->id;
		}
		if (s[0] == '-' && s[1]) {
			a->sub = 1;
			continue;
		}
		if (add_operand(a, s)) {
			cli_usage(c, "out of memory");
			return -1;
		}
		a->i++;
	}
}

char **cli_operands(cli_args *a, int *n)
{
	static char *none[1] = {NULL};
	*n = a->noperands;
	return a->operands ? a->operands : none;
}

void cli_args_free(cli_args *a)
{
	free(a->operands);
	a->operands = NULL;
	a->noperands = 0;
}

/* ---- sizes, durations, times ---- */

/* A non-negative decimal number "12" or "1.5" at s: value in *v, end in
 * *end.  -1 if none. */
static int parse_number(const char *s, double *v, const char **end)
{
	const char *p = s;
	double x = 0, scale = 1;
	int digits = 0;

	while (*p >= '0' && *p <= '9') {
		x = x * 10 + (*p++ - '0');
		digits++;
	}
	if (*p == '.') {
		p++;
		while (*p >= '0' && *p <= '9') {
			scale /= 10;
			x += (*p++ - '0') * scale;
			digits++;
		}
	}
	if (!digits)
		return -1;
	*v = x;
	*end = p;
	return 0;
}

int cli_parse_size(const char *s, uint64_t *out)
{
	const char *end;
	double v;
	unsigned shift = 0;

	if (!s || parse_number(s, &v, &end))
		return -1;
	switch (*end) {
	case '\0': break;
	case 'K': case 'k': shift = 10; end++; break;
	case 'M': case 'm': shift = 20; end++; break;
	case 'G': case 'g': shift = 30; end++; break;
	case 'T': case 't': shift = 40; end++; break;
	default: return -1;
	}
	if (shift && *end == 'i' && end[1] == 'B')
		end += 2;
	else if (*end == 'B')
		end++;
	if (*end)
		return -1;
	v = ldexp(v, (int)shift);
	if (!(v < 18446744073709551616.0) || v != floor(v))
		return -1;  /* too big, or a fraction of a byte */
	*out = (uint64_t)v;
	return 0;
}

int cli_parse_duration(const char *s, int64_t *ms)
{
	const char *end;
	double v, unit;

	if (!s || parse_number(s, &v, &end))
		return -1;
	if (strcmp(end, "") == 0 || strcmp(end, "s") == 0)
		unit = 1000;
	else if (strcmp(end, "ms") == 0)
		unit = 1;
	else if (strcmp(end, "m") == 0 || strcmp(end, "min") == 0)
		unit = 60e3;
	else if (strcmp(end, "h") == 0)
		unit = 3600e3;
	else if (strcmp(end, "d") == 0)
		unit = 86400e3;
	else
		return -1;
	v *= unit;
	if (!(v < 9.2e18))
		return -1;
	*ms = (int64_t)llround(v);
	return 0;
}

const char *cli_fmt_bytes(uint64_t n, char *buf, size_t size)
{
	static const char *units[] = {"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
	if (n < 1024) {
		snprintf(buf, size, "%llu B", (unsigned long long)n);
		return buf;
	}
	double v = (double)n / 1024;
	int u = 0;
	while (v >= 1024 && u < 5) {
		v /= 1024;
		u++;
	}
	snprintf(buf, size, v < 10 ? "%.2f %s" : v < 100 ? "%.1f %s" : "%.0f %s", v, units[u]);
	return buf;
}

const char *cli_fmt_time(int64_t ns, char *buf, size_t size)
{
	time_t t = (time_t)(ns >= 0 ? ns / 1000000000 : -((-ns + 999999999) / 1000000000));
	struct tm tm;
	if (!gmtime_r(&t, &tm) || strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(buf, size, "%lld", (long long)ns);
	return buf;
}

/* ---- paths ---- */

int cli_local_path(const cli_ctx *c, const char *path, char *buf, size_t size)
{
	int n;
	if (path[0] == '/' || !c->cwd)
		n = snprintf(buf, size, "%s", path);
	else
		n = snprintf(buf, size, "%s%s%s", c->cwd,
			     c->cwd[0] && c->cwd[strlen(c->cwd) - 1] == '/' ? "" : "/", path);
	return n < 0 || (size_t)n >= size ? -1 : 0;
}

/* The start of a volume path: the live root or a snapshot's root, and
 * the rest of the path (after "@SNAP" or the mount point).  `shown`
 * gets the prefix for messages ("" or "@SNAP"). */
static int path_start(cli_ctx *c, const char *vpath, uint64_t *ino, const char **rest,
		      char *shown, size_t shown_size)
{
	shown[0] = 0;
	*ino = CAIRN_ROOT_INO;
	*rest = vpath;
	if (c->mountpoint && vpath[0] == '/') {
		size_t m = strlen(c->mountpoint);
		while (m > 1 && c->mountpoint[m - 1] == '/')
			m--;
		if (m > 1 && strncmp(vpath, c->mountpoint, m) == 0 &&
		    (vpath[m] == '/' || vpath[m] == 0))
			*rest = vpath + m;
	}
	if ((*rest)[0] == '@') {
		const char *name = *rest + 1;
		size_t n = strcspn(name, "/");
		char sname[CAIRN_SNAP_NAME_MAX + 1];
		cairn_snap s;
		int rc;
		if (n == 0)
			return cairn_errf(CAIRN_E_INVAL, "'%s': empty snapshot name after '@'", vpath);
		if (n > CAIRN_SNAP_NAME_MAX)
			return cairn_errf(CAIRN_E_NAMETOOLONG, "'%s': snapshot name too long", vpath);
		memcpy(sname, name, n);
		sname[n] = 0;
		rc = volume_snapshot_get(c->vol, sname, &s);
		if (rc == CAIRN_E_NOTFOUND)
			return cairn_errf(rc, "no snapshot named '%s'", sname);
		if (rc)
			return cairn_err_wrap(rc, "snapshot '%s'", sname);
		*ino = s.root;
		*rest = name + n;
		snprintf(shown, shown_size, "@%s", sname);
	}
	return 0;
}

/* Next component of *p into name; 0 at the end, 1 with one, < 0 error. */
static int next_comp(const char **p, char name[CLI_NAME_BUF], const char *vpath)
{
	for (;;) {
		const char *s = *p;
		while (*s == '/')
			s++;
		if (!*s) {
			*p = s;
			return 0;
		}
		size_t n = strcspn(s, "/");
		*p = s + n;
		if (n == 1 && s[0] == '.')
			continue;
		if (n == 2 && s[0] == '.' && s[1] == '.')
			return -cairn_errf(CAIRN_E_INVAL, "'%s': '..' is not allowed in volume paths",
					   vpath);
		if (n >= CLI_NAME_BUF)
			return -cairn_errf(CAIRN_E_NAMETOOLONG, "'%s': a name is longer than %d bytes",
					   vpath, CLI_NAME_BUF - 1);
		memcpy(name, s, n);
		name[n] = 0;
		return 1;
	}
}

/* Walk from the start to the end of vpath, or (stop_before_last) to the
 * parent of its last component.  *leaf gets the last name then. */
static int walk(cli_ctx *c, const char *vpath, int stop_before_last, cairn_attr *out,
		char *leaf)
{
	char shown[CAIRN_SNAP_NAME_MAX + 2], name[CLI_NAME_BUF], next[CLI_NAME_BUF];
	char sofar[4096];
	const char *p;
	uint64_t ino;
	cairn_attr a;
	int rc, more;
	size_t len;

	if (!c->vol)
		return cairn_errf(CAIRN_E_INVAL, "no volume open");
	if ((rc = path_start(c, vpath, &ino, &p, shown, sizeof shown)))
		return rc;
	if ((rc = volume_getattr(c->vol, ino, &a)))
		return cairn_err_wrap(rc, "'%s'", vpath);
	len = (size_t)snprintf(sofar, sizeof sofar, "%s", shown);
	more = next_comp(&p, name, vpath);
	if (more < 0)
		return -more;
	if (stop_before_last && !more)
		return cairn_errf(CAIRN_E_INVAL, "'%s' is the root of %s", vpath,
				  shown[0] ? "a snapshot" : "the volume");
	while (more) {
		int last = 0;
		const char *q = p;
		int r2 = next_comp(&q, next, vpath);
		if (r2 < 0)
			return -r2;
		last = !r2;
		if (stop_before_last && last) {
			memcpy(leaf, name, strlen(name) + 1);
			if ((a.mode & 0170000) != 0040000)
				return cairn_errf(CAIRN_E_NOTDIR, "'%s' is not a directory",
						  sofar[0] ? sofar : "/");
			break;
		}
		if ((a.mode & 0170000) != 0040000)
			return cairn_errf(CAIRN_E_NOTDIR, "'%s' is not a directory",
					  sofar[0] ? sofar : "/");
		if (len + 1 + strlen(name) < sizeof sofar)
			len += (size_t)snprintf(sofar + len, sizeof sofar - len, "/%s", name);
		rc = volume_lookup(c->vol, ino, name, &a);
		if (rc == CAIRN_E_NOTFOUND)
			return cairn_errf(rc, "'%s': no such file or directory", sofar);
		if (rc)
			return cairn_err_wrap(rc, "'%s'", sofar);
		ino = a.ino;
		p = q;
		memcpy(name, next, sizeof name);
		more = !last;
	}
	if (out)
		*out = a;
	return 0;
}

int cli_resolve(cli_ctx *c, const char *vpath, cairn_attr *out)
{
	cairn_attr a;
	return walk(c, vpath, 0, out ? out : &a, NULL);
}

int cli_resolve_parent(cli_ctx *c, const char *vpath, uint64_t *parent,
		       char leaf[CLI_NAME_BUF])
{
	cairn_attr a;
	int rc = walk(c, vpath, 1, &a, leaf);
	if (rc == 0)
		*parent = a.ino;
	return rc;
}

/* ---- JSON ---- */

void cli_json_init(cli_json *j, FILE *f)
{
	memset(j, 0, sizeof *j);
	j->f = f;
	j->first[0] = 1;
}

static void jvalue(cli_json *j)
{
	if (j->pending_key) {
		j->pending_key = 0;
		return;
	}
	if (!j->first[j->depth])
		fputc(',', j->f);
	j->first[j->depth] = 0;
}

static void jopen(cli_json *j, int ch)
{
	jvalue(j);
	fputc(ch, j->f);
	if (j->depth < 31)
		j->depth++;
	j->first[j->depth] = 1;
}

static void jclose(cli_json *j, int ch)
{
	fputc(ch, j->f);
	if (j->depth > 0)
		j->depth--;
	j->first[j->depth] = 0;
	if (j->depth == 0)
		fputc('\n', j->f);
}

void cli_json_obj_begin(cli_json *j) { jopen(j, '{'); }
void cli_json_obj_end(cli_json *j) { jclose(j, '}'); }
void cli_json_arr_begin(cli_json *j) { jopen(j, '['); }
void cli_json_arr_end(cli_json *j) { jclose(j, ']'); }

/* Length of a valid UTF-8 sequence at s, 0 if invalid. */
static size_t utf8_len(const unsigned char *s)
{
	unsigned c = s[0];
	size_t n;
	uint32_t cp;
	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		n = 2, cp = c & 0x1f;
	else if (c >= 0xe0 && c <= 0xef)
		n = 3, cp = c & 0x0f;
	else if (c >= 0xf0 && c <= 0xf4)
		n = 4, cp = c & 0x07;
	else
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if ((n == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
	    (n == 4 && (cp < 0x10000 || cp > 0x10ffff)))
		return 0;
	return n;
}

static void jstring(FILE *f, const char *str)
{
	const unsigned char *s = (const unsigned char *)str;
	fputc('"', f);
	while (*s) {
		unsigned ch = *s;
		if (ch == '"' || ch == '\\') {
			fputc('\\', f);
			fputc((int)ch, f);
			s++;
		} else if (ch == '\n') {
			fputs("\\n", f);
			s++;
		} else if (ch == '\t') {
			fputs("\\t", f);
			s++;
		} else if (ch < 0x20 || ch == 0x7f) {
			fprintf(f, "\\u%04x", ch);
			s++;
		} else {
			size_t n = utf8_len(s);
			if (n == 0) {
				/* not UTF-8 (names are bytes): U+FFFD keeps the
				 * document valid */
				fputs("\\ufffd", f);
				s++;
			} else {
				fwrite(s, 1, n, f);
				s += n;
			}
		}
	}
	fputc('"', f);
}

void cli_json_key(cli_json *j, const char *k)
{
	jvalue(j);
	jstring(j->f, k);
	fputc(':', j->f);
	j->pending_key = 1;
}

void cli_json_str(cli_json *j, const char *s)
{
	jvalue(j);
	if (s)
		jstring(j->f, s);
	else
		fputs("null", j->f);
}

void cli_json_u64(cli_json *j, uint64_t v)
{
	jvalue(j);
	fprintf(j->f, "%llu", (unsigned long long)v);
}

void cli_json_i64(cli_json *j, int64_t v)
{
	jvalue(j);
	fprintf(j->f, "%lld", (long long)v);
}

void cli_json_f64(cli_json *j, double v)
{
	jvalue(j);
	if (isfinite(v))
		fprintf(j->f, "%.15g", v);
	else
		fputs("null", j->f);
}

void cli_json_bool(cli_json *j, int v)
{
	jvalue(j);
	fputs(v ? "true" : "false", j->f);
}

void cli_json_kstr(cli_json *j, const char *k, const char *s) { cli_json_key(j, k); cli_json_str(j, s); }
void cli_json_ku64(cli_json *j, const char *k, uint64_t v) { cli_json_key(j, k); cli_json_u64(j, v); }
void cli_json_ki64(cli_json *j, const char *k, int64_t v) { cli_json_key(j, k); cli_json_i64(j, v); }
void cli_json_kf64(cli_json *j, const char *k, double v) { cli_json_key(j, k); cli_json_f64(j, v); }
void cli_json_kbool(cli_json *j, const char *k, int v) { cli_json_key(j, k); cli_json_bool(j, v); }

/* ---- progress ---- */

struct cli_progress {
	FILE *f;
	char label[64];
	_Atomic uint64_t done, total;
	_Atomic int64_t last_ns;   /* last redraw */
	int64_t start_ns;
	pthread_mutex_t mu;        /* one redraw at a time */
};

static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

cli_progress *cli_progress_start(cli_ctx *c, const char *label, uint64_t total)
{
	cli_progress *p;
	if (!c->err_tty || c->json || c->verbose < 0)
		return NULL;
	p = calloc(1, sizeof *p);
	if (!p)
		return NULL;
	p->f = c->err;
	snprintf(p->label, sizeof p->label, "%s", label);
	atomic_store(&p->total, total);
	p->start_ns = now_ns();
	pthread_mutex_init(&p->mu, NULL);
	return p;
}

static void redraw(cli_progress *p, int64_t t)
{
	char b1[24], b2[24], b3[24], eta[32] = "";
	uint64_t done = atomic_load(&p->done), total = atomic_load(&p->total);
	double secs = (double)(t - p->start_ns) / 1e9;
	double rate = secs > 0 ? (double)done / secs : 0;

	if (total && rate > 0 && done <= total) {
		uint64_t left = (uint64_t)((double)(total - done) / rate);
		snprintf(eta, sizeof eta, ", ETA %llu:%02llu", (unsigned long long)(left / 60),
			 (unsigned long long)(left % 60));
	}
	if (total)
		fprintf(p->f, "\r\033[K%s: %s / %s (%3.0f%%), %s/s%s", p->label,
			cli_fmt_bytes(done, b1, sizeof b1), cli_fmt_bytes(total, b2, sizeof b2),
			100.0 * (double)done / (double)total, cli_fmt_bytes((uint64_t)rate, b3, sizeof b3),
			eta);
	else
		fprintf(p->f, "\r\033[K%s: %s, %s/s", p->label, cli_fmt_bytes(done, b1, sizeof b1),
			cli_fmt_bytes((uint64_t)rate, b3, sizeof b3));
	fflush(p->f);
}

void cli_progress_add(cli_progress *p, uint64_t bytes)
{
	if (!p)
		return;
	atomic_fetch_add(&p->done, bytes);
	int64_t t = now_ns(), last = atomic_load(&p->last_ns);
	if (t - last < 200000000)  /* 5 redraws a second */
		return;
	if (!atomic_compare_exchange_strong(&p->last_ns, &last, t))
		return;
	if (pthread_mutex_trylock(&p->mu) != 0)
		return;
	redraw(p, t);
	pthread_mutex_unlock(&p->mu);
}

void cli_progress_total(cli_progress *p, uint64_t total)
{
	if (p)
		atomic_store(&p->total, total);
}

void cli_progress_end(cli_progress *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->mu);
	fputs("\r\033[K", p->f);
	fflush(p->f);
	pthread_mutex_unlock(&p->mu);
	pthread_mutex_destroy(&p->mu);
	free(p);
}
