/*
 * test_ship_ckpt.c - a checkpoint publish (tools/cmd_ckpt.c, `cairn ckpt
 * save`) on a shipping volume: published and its record shipped; once
 * another writer took the volume over, the fenced writer's publish fails
 * with CAIRN_E_FENCED in one line saying it is not published.
 */
#include "ship_t.h"
#include "cli.h"
#include "cmd_ckpt.h"

static void copy_volume(const char *src, const char *dst)
{
	char cmd[2000], path[700], text[4096];
	snprintf(cmd, sizeof cmd, "cp -a '%s' '%s'", src, dst);
	REQUIRE(system(cmd) == 0);
	snprintf(path, sizeof path, "%s/volume.conf", dst);
	FILE *fp = fopen(path, "r");
	REQUIRE(fp != NULL);
	size_t n = fread(text, 1, sizeof text - 1, fp);
	fclose(fp);
	text[n] = 0;
	char *p = strstr(text, "instance = ");
	REQUIRE(p != NULL);
	p += strlen("instance = ");
	p[0] = p[0] == 'a' ? 'b' : 'a';
	fp = fopen(path, "w");
	REQUIRE(fp != NULL && fwrite(text, 1, n, fp) == n && fclose(fp) == 0);
}

/* cairn ckpt save SRC NAME on vol; the status, and what it printed on
 * stderr in err (one line expected on failure). */
static int ckpt_save(cairn_volume *vol, const char *dir, const char *src, const char *name,
		     char *err, size_t errsize)
{
	cli_ctx c;
	FILE *ef = tmpfile();
	REQUIRE(ef != NULL);
	memset(&c, 0, sizeof c);
	c.cmd = "ckpt save";
	c.volume_dir = dir;
	c.out = stdout;
	c.err = ef;
	c.cwd = "/";
	c.verbose = -1;
	c.vol = vol;
	char *argv[] = { "save", (char *)src, (char *)name, NULL };
	int status = cmd_ckpt_save(&c, 3, argv);
	fflush(ef);
	rewind(ef);
	size_t n = fread(err, 1, errsize - 1, ef);
	err[n] = 0;
	fclose(ef);
	return status;
}

int main(void)
{
	const char *base = t_tmpdir("ship_ckpt");
	char a_dir[600], b_dir[600], src[600], path[700], err[4096], uuid[37];
	cairn_volume_opts o;
	cairn_volume *a, *b;
	cairn_volume_stats st;

	snprintf(a_dir, sizeof a_dir, "%s/a", base);
	snprintf(b_dir, sizeof b_dir, "%s/b", base);
	snprintf(src, sizeof src, "%s/src", base);
	REQUIRE(mkdir(src, 0755) == 0);
	snprintf(path, sizeof path, "%s/weights.bin", src);
	FILE *fp = fopen(path, "w");
	REQUIRE(fp && fputs("rank 0 weights\n", fp) >= 0 && fclose(fp) == 0);
	sh_format(a_dir, NULL);
	sh_opts(&o);
	o.lease_ttl_ms = 60000;
	REQUIRE_OK(volume_open(a_dir, &o, &a));
	volume_uuid(a, uuid);

	/* Published and shipped. */
	CHECK(ckpt_save(a, a_dir, src, "step1", err, sizeof err) == 0);
	volume_stats(a, &st);
	CHECK(st.shipped_lsn > 0 && st.ship_objects >= 1 && st.fenced == 0);
	CHECK_OK(volume_ship_flush(a));

	/* Another writer takes over; a's next publish fails, one line. */
	copy_volume(a_dir, b_dir);
	o.takeover = 1;
	REQUIRE_OK(volume_open(b_dir, &o, &b));
	CHECK_OK(volume_ship_flush(b));
	CHECK_OK(volume_mkdir(a, CAIRN_ROOT_INO, "after", 040755, 0, 0, NULL));
	int status = ckpt_save(a, a_dir, src, "step2", err, sizeof err);
	CHECK(status != 0);
	fprintf(stderr, "fenced publish said: %s", err);
	CHECK(strstr(err, "not published") != NULL);
	CHECK(strstr(err, "fenced") != NULL);
	char *nl = strchr(err, '\n');
	CHECK(nl != NULL && nl[1] == 0);   /* one line */
	CHECK_OK(volume_close(a));
	CHECK_OK(volume_close(b));
	if (!t_failures_)
		t_rmtree(base);
	return t_done();
}
