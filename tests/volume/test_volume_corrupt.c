/*
 * test_volume_corrupt - a flipped byte never reaches a reader:
 *   - in a stored segment object: the read fails with CAIRN_E_CORRUPT and
 *     a log line naming the segment;
 *   - in a cache piece: logged, dropped, fetched again from the store, the
 *     right bytes returned; in both the cache and the store: CORRUPT;
 *   - in a staging file not yet uploaded (its only copy): CORRUPT;
 *   - a truncated stored object: CORRUPT.
 */
#include "vol_test.h"

static char logpath[1200];

static int log_has(const char *needle)
{
	FILE *fp = fopen(logpath, "r");
	char line[4096];
	int found = 0;
	if (!fp)
		return 0;
	while (!found && fgets(line, sizeof line, fp))
		found = strstr(line, needle) != NULL;
	fclose(fp);
	return found;
}

/* Paths of the files under dir whose name matches pattern (find -name). */
static int find_files(const char *dir, const char *pattern, char out[][1200], int max)
{
	char cmd[1500];
	int n = 0;
	snprintf(cmd, sizeof cmd, "find '%s' -type f -name '%s' | sort", dir, pattern);
	FILE *p = popen(cmd, "r");
	if (!p)
		return 0;
	while (n < max && fgets(out[n], 1200, p)) {
		out[n][strcspn(out[n], "\n")] = 0;
		n++;
	}
	pclose(p);
	return n;
}

static void flip(const char *path, long off)
{
	FILE *fp = fopen(path, "r+b");
	REQUIRE(fp);
	if (off < 0) {
		REQUIRE(fseek(fp, off, SEEK_END) == 0);
	} else {
		REQUIRE(fseek(fp, off, SEEK_SET) == 0);
	}
	long at = ftell(fp);
	int c = fgetc(fp);
	REQUIRE(c != EOF);
	REQUIRE(fseek(fp, at, SEEK_SET) == 0);
	fputc(c ^ 0x5a, fp);
	fclose(fp);
}

int main(void)
{
	const char *base = t_tmpdir("volume_corrupt");
	static uint8_t data[40000], got[40000];
	char dir[1024], store[1100], cache[1100], staging[1100];
	static char objs[16][1200], pieces[64][1200];
	cairn_volume *v;
	cairn_volume_opts o;
	uint64_t ino[4];
	size_t n;

	snprintf(dir, sizeof dir, "%s/vol", base);
	snprintf(store, sizeof store, "%s/store", dir);
	snprintf(cache, sizeof cache, "%s/cache", dir);
	snprintf(staging, sizeof staging, "%s/staging", dir);
	snprintf(logpath, sizeof logpath, "%s/log", base);
	REQUIRE_OK(cairn_log_set_file(logpath));
	vt_format(dir, 0);
	vt_opts(&o);
	o.durability = CAIRN_DUR_REMOTE;
	o.seal_age_ms = 100000;  /* one segment: sealed by the remote sync */
	REQUIRE_OK(volume_open(dir, &o, &v));
	t_fill(data, sizeof data, 42);
	for (int i = 0; i < 4; i++) {
		char name[8];
		snprintf(name, sizeof name, "f%d", i);
		ino[i] = vt_file(v, name);
		CHECK_OK(vt_write(v, ino[i], data, sizeof data, 0));
	}
	CHECK_OK(volume_sync(v));
	int nobj = find_files(store, "*.p", objs, 16);
	REQUIRE(nobj == 1);
	/* the key is the path below the store's o/ (the first "v/" of the
	 * whole path may be in a directory name above the store) */
	const char *key = strstr(objs[0], "/o/v/");
	REQUIRE(key);
	key += 3;

	/* 1. A byte of the stored object, inside the first frame. */
	flip(objs[0], 64 + 32 + 100);
	CHECK_OK(volume_drop_cache(v));
	CHECK_RC(vt_read(v, ino[0], got, sizeof got, 0, &n), CAIRN_E_CORRUPT);
	CHECK_MSG(key);
	CHECK(log_has(key) && log_has("checksum mismatch"));
	/* The other files' frames are intact. */
	CHECK_OK(vt_read(v, ino[3], got, sizeof got, 0, &n));
	CHECK(n == sizeof data && !memcmp(got, data, n));
	flip(objs[0], 64 + 32 + 100);

	/* 2. A cache piece: dropped and fetched again. */
	CHECK_OK(volume_drop_cache(v));
	CHECK_OK(vt_read(v, ino[0], got, sizeof got, 0, &n));
	CHECK(n == sizeof data && !memcmp(got, data, n));
	int np = find_files(cache, "c-*", pieces, 64);
	CHECK(np >= 1);
	for (int i = 0; i < np; i++)
		flip(pieces[i], -1);
	CHECK_OK(vt_read(v, ino[0], got, sizeof got, 0, &n));
	CHECK(n == sizeof data && !memcmp(got, data, n));
	CHECK(log_has("cache"));
	/* Both copies bad: an error, never the bad bytes. */
	np = find_files(cache, "c-*", pieces, 64);
	CHECK(np >= 1);
	for (int i = 0; i < np; i++)
		flip(pieces[i], 64 + 32 + 100 >= 4096 ? 4096 : -1);
	flip(objs[0], 64 + 32 + 100);
	int rc = vt_read(v, ino[0], got, sizeof got, 0, &n);
	CHECK(rc == CAIRN_E_CORRUPT || (rc == 0 && !memcmp(got, data, sizeof data)));
	CHECK_OK(volume_drop_cache(v));
	CHECK_RC(vt_read(v, ino[0], got, sizeof got, 0, &n), CAIRN_E_CORRUPT);
	flip(objs[0], 64 + 32 + 100);

	/* 3. A truncated object. */
	struct stat st;
	REQUIRE(stat(objs[0], &st) == 0);
	REQUIRE(truncate(objs[0], st.st_size - 10) == 0);
	CHECK_OK(volume_drop_cache(v));
	CHECK_RC(vt_read(v, ino[1], got, sizeof got, 0, &n), CAIRN_E_CORRUPT);
	CHECK_MSG(key);
	CHECK_OK(volume_close(v));

	/* 4. A staging file that is the only copy. */
	vt_opts(&o);
	o.no_upload = 1;
	o.seal_age_ms = 100000;
	REQUIRE_OK(volume_open(dir, &o, &v));
	uint64_t s = vt_file(v, "staged");
	cairn_file *f;
	REQUIRE_OK(volume_file_open(v, s, &f));
	CHECK_OK(volume_file_write(f, data, sizeof data, 0));
	CHECK_OK(volume_file_fsync(f));
	CHECK_OK(volume_file_close(f));
	int ns = find_files(staging, "*.seg", objs, 16);
	REQUIRE(ns >= 1);
	/* The newest staging file holds the file's one frame. */
	flip(objs[ns - 1], 64 + 32 + 100);
	CHECK_RC(vt_read(v, s, got, sizeof got, 0, &n), CAIRN_E_CORRUPT);
	CHECK(log_has("checksum mismatch"));
	flip(objs[ns - 1], 64 + 32 + 100);
	CHECK_OK(vt_read(v, s, got, sizeof got, 0, &n));
	CHECK(n == sizeof data && !memcmp(got, data, n));
	CHECK_OK(volume_close(v));
	cairn_log_set_file(NULL);
	/* Show the log lines a user would see. */
	FILE *fp = fopen(logpath, "r");
	char line[1024];
	while (fp && fgets(line, sizeof line, fp))
		fputs(line, stdout);
	if (fp)
		fclose(fp);
	t_rmtree(base);
	return t_done();
}
