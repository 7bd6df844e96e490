/*
 * test_cli_util.c - the shared helpers of the CLI (tools/cli_util.c):
 * reentrant option parsing, sizes, durations, time and byte formatting,
 * JSON escaping (checked by a round trip through python3's parser when it
 * is installed), and volume path resolution on a real volume.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "t.h"
#include "../../tools/cli.h"

const cli_command cli_fs_commands[] = {{0}};
const cli_command cli_ckpt_commands[] = {{0}};
const cli_command cli_admin_commands[] = {{0}};

static char errbuf[4096];

static cli_ctx mkctx(FILE *err)
{
	cli_ctx c;
	memset(&c, 0, sizeof c);
	c.cmd = "test";
	c.out = stdout;
	c.err = err;
	c.cwd = "/home/u";
	return c;
}

static void test_getopt(void)
{
	enum { A = 1, B, V };
	static const cli_opt opts[] = {
		{"all", 'a', 0, A}, {"big", 'b', 0, B}, {"value", 'v', 1, V}, {NULL, 0, 0, 0},
	};
	char *argv[] = {"cmd", "x", "-ab", "--value=1", "y", "-v", "2", "-v3", "--value", "4",
			"--", "-a", NULL};
	FILE *err = fmemopen(errbuf, sizeof errbuf, "w");
	cli_ctx c = mkctx(err);
	cli_args a;
	int got[16], n = 0, opt, nops;
	const char *vals[8];
	int nv = 0;

	cli_args_init(&a, 12, argv);
	while ((opt = cli_getopt(&c, &a, opts)) > 0 && n < 16) {
		got[n++] = opt;
		if (opt == V)
			vals[nv++] = a.arg;
	}
	CHECK(opt == 0);
	CHECK(n == 6);
	CHECK(got[0] == A && got[1] == B && got[2] == V && got[3] == V && got[4] == V &&
	      got[5] == V);
	REQUIRE(nv == 4);
	CHECK(strcmp(vals[0], "1") == 0 && strcmp(vals[1], "2") == 0);
	CHECK(strcmp(vals[2], "3") == 0 && strcmp(vals[3], "4") == 0);
	char **ops = cli_operands(&a, &nops);
	REQUIRE(nops == 3);
	CHECK(strcmp(ops[0], "x") == 0 && strcmp(ops[1], "y") == 0 && strcmp(ops[2], "-a") == 0);
	cli_args_free(&a);

	/* errors: unknown long, unknown short, missing value */
	char *bad1[] = {"cmd", "--nope", NULL};
	char *bad2[] = {"cmd", "-az", NULL};
	char *bad3[] = {"cmd", "--value", NULL};
	char *bad4[] = {"cmd", "--all=3", NULL};
	cli_args_init(&a, 2, bad1);
	CHECK(cli_getopt(&c, &a, opts) == -1);
	cli_args_free(&a);
	cli_args_init(&a, 2, bad2);
	CHECK(cli_getopt(&c, &a, opts) == A);
	CHECK(cli_getopt(&c, &a, opts) == -1);
	cli_args_free(&a);
	cli_args_init(&a, 2, bad3);
	CHECK(cli_getopt(&c, &a, opts) == -1);
	cli_args_free(&a);
	cli_args_init(&a, 2, bad4);
	CHECK(cli_getopt(&c, &a, opts) == -1);
	cli_args_free(&a);
	fclose(err);
	CHECK(strstr(errbuf, "unknown option '--nope'") != NULL);
	CHECK(strstr(errbuf, "unknown option '-z'") != NULL);
	CHECK(strstr(errbuf, "'--value' needs a value") != NULL);
	CHECK(strstr(errbuf, "takes no value") != NULL);
	/* each message is one line ending with the help pointer */
	int lines = 0;
	for (char *p = errbuf; *p; p++)
		lines += *p == '\n';
	CHECK(lines == 4);
}

static void test_units(void)
{
	uint64_t v;
	int64_t ms;
	char b[32];

	CHECK(cli_parse_size("4096", &v) == 0 && v == 4096);
	CHECK(cli_parse_size("64M", &v) == 0 && v == 64ull << 20);
	CHECK(cli_parse_size("1.5G", &v) == 0 && v == 3ull << 29);
	CHECK(cli_parse_size("2TiB", &v) == 0 && v == 2ull << 40);
	CHECK(cli_parse_size("1KB", &v) == 0 && v == 1024);
	CHECK(cli_parse_size("", &v) == -1);
	CHECK(cli_parse_size("-1", &v) == -1);
	CHECK(cli_parse_size("12Q", &v) == -1);
	CHECK(cli_parse_size("0.3", &v) == -1);  /* a fraction of a byte */
	CHECK(cli_parse_size("99999999T", &v) == -1);
	CHECK(cli_parse_duration("30s", &ms) == 0 && ms == 30000);
	CHECK(cli_parse_duration("5m", &ms) == 0 && ms == 300000);
	CHECK(cli_parse_duration("2h", &ms) == 0 && ms == 7200000);
	CHECK(cli_parse_duration("7d", &ms) == 0 && ms == 7 * 86400000ll);
	CHECK(cli_parse_duration("1500ms", &ms) == 0 && ms == 1500);
	CHECK(cli_parse_duration("0", &ms) == 0 && ms == 0);
	CHECK(cli_parse_duration("1.5", &ms) == 0 && ms == 1500);
	CHECK(cli_parse_duration("soon", &ms) == -1);
	CHECK(cli_parse_duration("5y", &ms) == -1);
	CHECK(strcmp(cli_fmt_bytes(1023, b, sizeof b), "1023 B") == 0);
	CHECK(strcmp(cli_fmt_bytes(1536, b, sizeof b), "1.50 KiB") == 0);
	CHECK(strcmp(cli_fmt_bytes(64ull << 20, b, sizeof b), "64.0 MiB") == 0);
	CHECK(strcmp(cli_fmt_time(0, b, sizeof b), "1970-01-01T00:00:00Z") == 0);
	CHECK(strcmp(cli_fmt_time(1000000000ll * 86400 + 5, b, sizeof b),
		     "1970-01-02T00:00:00Z") == 0);

	cli_ctx c = mkctx(stderr);
	CHECK(cli_local_path(&c, "a/b", b, sizeof b) == 0 && strcmp(b, "/home/u/a/b") == 0);
	CHECK(cli_local_path(&c, "/x", b, sizeof b) == 0 && strcmp(b, "/x") == 0);
	CHECK(cli_local_path(&c, "a-long-name-that-overflows", b, sizeof b) == -1);
}

static void test_json(const char *dir)
{
	char path[4200], cmd[8400];
	FILE *f;
	cli_json j;

	snprintf(path, sizeof path, "%s/j.json", dir);
	REQUIRE((f = fopen(path, "w")) != NULL);
	cli_json_init(&j, f);
	cli_json_obj_begin(&j);
	cli_json_kstr(&j, "s", "q\"b\\s/\n\t\x01\x7f é ☃");
	cli_json_kstr(&j, "bad", "a\xff\xc3z");  /* not UTF-8 */
	cli_json_ku64(&j, "u", UINT64_MAX);
	cli_json_ki64(&j, "i", INT64_MIN);
	cli_json_kf64(&j, "f", 0.25);
	cli_json_kf64(&j, "nan", 0.0 / 0.0);
	cli_json_kbool(&j, "t", 1);
	cli_json_key(&j, "arr");
	cli_json_arr_begin(&j);
	cli_json_u64(&j, 1);
	cli_json_obj_begin(&j);
	cli_json_obj_end(&j);
	cli_json_arr_begin(&j);
	cli_json_arr_end(&j);
	cli_json_str(&j, NULL);
	cli_json_arr_end(&j);
	cli_json_obj_end(&j);
	REQUIRE(fclose(f) == 0);
	if (system("python3 -c '' 2>/dev/null") != 0) {
		fprintf(stderr, "python3 missing: JSON round trip not checked\n");
		return;
	}
	snprintf(cmd, sizeof cmd,
		 "python3 -c 'import json,sys; d=json.load(open(sys.argv[1],encoding=\"utf-8\"));"
		 "assert d[\"s\"]==\"q\\\"b\\\\s/\\n\\t\\x01\\x7f \\u00e9 \\u2603\", d;"
		 "assert d[\"bad\"]==\"a\\ufffd\\ufffdz\", d;"
		 "assert d[\"u\"]==2**64-1 and d[\"i\"]==-2**63 and d[\"f\"]==0.25, d;"
		 "assert d[\"nan\"] is None and d[\"t\"] is True, d;"
		 "assert d[\"arr\"]==[1,{},[],None], d' %s", path);
	CHECK(system(cmd) == 0);
}

static void test_resolve(const char *dir)
{
	char vdir[4200], leaf[CLI_NAME_BUF];
	cairn_volume *vol;
	cairn_attr a, d1, f1;
	cairn_snap s;
	uint64_t parent;
	cli_ctx c = mkctx(stderr);

	snprintf(vdir, sizeof vdir, "%s/vol", dir);
	CHECK_OK(volume_format(vdir, NULL));
	REQUIRE(volume_open(vdir, NULL, &vol) == 0);
	c.vol = vol;
	CHECK_OK(volume_mkdir(vol, CAIRN_ROOT_INO, "d", 0755, 0, 0, &d1));
	CHECK_OK(volume_create(vol, d1.ino, "f", 0644, 0, 0, &f1));
	CHECK_OK(cli_resolve(&c, "/", &a));
	CHECK(a.ino == CAIRN_ROOT_INO);
	CHECK_OK(cli_resolve(&c, "/d/f", &a));
	CHECK(a.ino == f1.ino);
	CHECK_OK(cli_resolve(&c, "d//./f/", &a));
	CHECK(a.ino == f1.ino);
	CHECK(cli_resolve(&c, "/d/nope/x", &a) == CAIRN_E_NOTFOUND);
	CHECK(strstr(cairn_errmsg(), "'/d/nope'") != NULL);
	CHECK(cli_resolve(&c, "/d/f/x", &a) == CAIRN_E_NOTDIR);
	CHECK(cli_resolve(&c, "/d/../d", &a) == CAIRN_E_INVAL);
	CHECK_OK(cli_resolve_parent(&c, "/d/new", &parent, leaf));
	CHECK(parent == d1.ino && strcmp(leaf, "new") == 0);
	CHECK(cli_resolve_parent(&c, "/", &parent, leaf) == CAIRN_E_INVAL);
	CHECK(cli_resolve_parent(&c, "/d/f/x", &parent, leaf) == CAIRN_E_NOTDIR);
	/* snapshots */
	CHECK_OK(volume_snapshot_create(vol, d1.ino, "s1", &s));
	CHECK_OK(cli_resolve(&c, "@s1/f", &a));
	CHECK(a.ino != f1.ino);  /* the snapshot's own inode */
	CHECK_OK(cli_resolve(&c, "@s1", &a));
	CHECK(a.ino == s.root);
	CHECK(cli_resolve(&c, "@nope/f", &a) == CAIRN_E_NOTFOUND);
	CHECK(cli_resolve(&c, "@/f", &a) == CAIRN_E_INVAL);
	CHECK(cli_resolve_parent(&c, "@s1", &parent, leaf) == CAIRN_E_INVAL);
	CHECK_OK(cli_resolve_parent(&c, "@s1/g", &parent, leaf));
	CHECK(parent == s.root);
	/* in the daemon: local paths under the mount point */
	c.mountpoint = "/mnt/x";
	CHECK_OK(cli_resolve(&c, "/mnt/x/d/f", &a));
	CHECK(a.ino == f1.ino);
	CHECK_OK(cli_resolve(&c, "/mnt/x", &a));
	CHECK(a.ino == CAIRN_ROOT_INO);
	CHECK(cli_resolve(&c, "/mnt/xy/d", &a) == CAIRN_E_NOTFOUND);
	CHECK_OK(volume_close(vol));
}

int main(void)
{
	const char *dir = t_tmpdir("cli_util");
	test_getopt();
	test_units();
	test_json(dir);
	test_resolve(dir);
	t_rmtree(dir);
	return t_done();
}
