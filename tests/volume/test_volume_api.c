/*
 * test_volume_api - the volume API's success and error cases: format, open
 * (missing, unformatted, unknown config version, second owner), epochs,
 * namespace passthrough, the file write path (overwrites, sparse files,
 * truncation, append, shared buffers of two handles), persistence across
 * reopen, upload and reads from the store after a cache drop.
 */
#include "vol_test.h"

static void test_format_open_errors(const char *base)
{
	char dir[1024], path[1200];
	cairn_volume *v = NULL, *v2 = NULL;

	snprintf(dir, sizeof dir, "%s/none", base);
	CHECK_RC(volume_open(dir, NULL, &v), CAIRN_E_NOTFOUND);
	CHECK_MSG("not a cairn volume");

	snprintf(dir, sizeof dir, "%s/v1", base);
	vt_format(dir, 0);
	CHECK_RC(volume_format(dir, NULL), CAIRN_E_EXISTS);
	CHECK_MSG("already holds a cairn volume");
	cairn_format_opts bad = { .segment_size = 100 };
	snprintf(path, sizeof path, "%s/v-bad", base);
	CHECK_RC(volume_format(path, &bad), CAIRN_E_INVAL);
	CHECK_MSG("segment size");

	cairn_volume_opts o;
	vt_opts(&o);
	REQUIRE_OK(volume_open(dir, &o, &v));
	cairn_volume_stats st;
	volume_stats(v, &st);
	CHECK(st.epoch == 1);
	/* A second owner is refused with the first one's pid. */
	char pid[32];
	snprintf(pid, sizeof pid, "process %ld", (long)getpid());
	CHECK_RC(volume_open(dir, &o, &v2), CAIRN_E_BUSY);
	CHECK_MSG(pid);
	/* An owner note travels into the refusal; a bad note is refused. */
	CHECK_RC(volume_set_owner_note(v, "two\nlines"), CAIRN_E_INVAL);
	CHECK_MSG("owner note must be one line");
	CHECK_OK(volume_set_owner_note(v, "mounted at /mnt/t"));
	CHECK_RC(volume_open(dir, &o, &v2), CAIRN_E_BUSY);
	CHECK_MSG("mounted at /mnt/t");
	CHECK_MSG(pid);
	CHECK_OK(volume_close(v));
	REQUIRE_OK(volume_open(dir, &o, &v));
	volume_stats(v, &st);
	CHECK(st.epoch == 2);
	CHECK_OK(volume_close(v));

	/* An unknown config version. */
	snprintf(path, sizeof path, "%s/volume.conf", dir);
	FILE *fp = fopen(path, "r");
	REQUIRE(fp);
	char text[4096];
	size_t n = fread(text, 1, sizeof text - 1, fp);
	fclose(fp);
	text[n] = 0;
	char *p = strstr(text, "cairn-volume-config 1");
	REQUIRE(p);
	p[strlen("cairn-volume-config ")] = '9';
	fp = fopen(path, "w");
	REQUIRE(fp);
	fputs(text, fp);
	fclose(fp);
	CHECK_RC(volume_open(dir, &o, &v), CAIRN_E_VERSION);
	CHECK_MSG("config version 9");
	/* A mangled one. */
	fp = fopen(path, "w");
	REQUIRE(fp);
	fputs("cairn-volume-config 1\nuuid = nope\n", fp);
	fclose(fp);
	CHECK_RC(volume_open(dir, &o, &v), CAIRN_E_CORRUPT);
	CHECK_MSG("bad uuid");
}

static int count_cb(const char *name, size_t namelen, uint64_t ino, uint32_t type,
		    uint64_t cookie, void *arg)
{
	(void)name; (void)namelen; (void)ino; (void)type; (void)cookie;
	(*(int *)arg)++;
	return 0;
}

static void test_namespace(cairn_volume *v)
{
	cairn_attr d, a, b;
	char buf[64];
	size_t len;
	int n = 0;

	CHECK_OK(volume_mkdir(v, CAIRN_ROOT_INO, "dir", 040755, 1, 2, &d));
	CHECK(d.uid == 1 && d.gid == 2);
	CHECK_RC(volume_mkdir(v, CAIRN_ROOT_INO, "dir", 040755, 0, 0, NULL), CAIRN_E_EXISTS);
	CHECK_OK(volume_create(v, d.ino, "f", 0100600, 0, 0, &a));
	CHECK_OK(volume_lookup(v, d.ino, "f", &b));
	CHECK(b.ino == a.ino);
	CHECK_RC(volume_lookup(v, d.ino, "nope", &b), CAIRN_E_NOTFOUND);
	CHECK_OK(volume_link(v, a.ino, CAIRN_ROOT_INO, "hard", &b));
	CHECK(b.nlink == 2);
	CHECK_OK(volume_symlink(v, CAIRN_ROOT_INO, "sym", "dir/f", 0, 0, &b));
	CHECK_OK(volume_readlink(v, b.ino, buf, sizeof buf, &len));
	CHECK(len == 5 && !memcmp(buf, "dir/f", 5));
	CHECK_OK(volume_rename(v, d.ino, "f", d.ino, "g", 0));
	CHECK_RC(volume_lookup(v, d.ino, "f", &b), CAIRN_E_NOTFOUND);
	CHECK_OK(volume_xattr_set(v, a.ino, "user.k", "val", 3, 0));
	CHECK_OK(volume_xattr_get(v, a.ino, "user.k", buf, sizeof buf, &len));
	CHECK(len == 3 && !memcmp(buf, "val", 3));
	CHECK_OK(volume_xattr_list(v, a.ino, buf, sizeof buf, &len));
	CHECK(len == 7);
	CHECK_OK(volume_xattr_remove(v, a.ino, "user.k"));
	CHECK_RC(volume_xattr_get(v, a.ino, "user.k", buf, sizeof buf, &len), CAIRN_E_NODATA);
	CHECK_OK(volume_readdir(v, CAIRN_ROOT_INO, 0, count_cb, &n));
	CHECK(n == 3);
	CHECK_RC(volume_rmdir(v, CAIRN_ROOT_INO, "dir"), CAIRN_E_NOTEMPTY);
	CHECK_OK(volume_unlink(v, d.ino, "g"));
	CHECK_OK(volume_rmdir(v, CAIRN_ROOT_INO, "dir"));
	CHECK_OK(volume_unlink(v, CAIRN_ROOT_INO, "sym"));
	cairn_file *f;
	CHECK_RC(volume_file_open(v, CAIRN_ROOT_INO, &f), CAIRN_E_ISDIR);
	cairn_sattr sa = { .mask = CAIRN_SET_MODE | CAIRN_SET_SIZE, .mode = 0640, .size = 10 };
	CHECK_OK(volume_setattr(v, a.ino, &sa, &b));
	CHECK(b.size == 10 && (b.mode & 0777) == 0640);
	cairn_statfs sf;
	CHECK_OK(volume_statfs(v, &sf));
	CHECK(sf.inodes >= 2);
	CHECK_OK(volume_unlink(v, CAIRN_ROOT_INO, "hard"));
}

static void test_files(cairn_volume *v)
{
	static uint8_t big[300000], got[300000], ref[300000];
	cairn_file *f1, *f2;
	cairn_attr a;
	size_t n;
	uint64_t ino = vt_file(v, "data");

	t_fill(big, sizeof big, 7);
	REQUIRE_OK(volume_file_open(v, ino, &f1));
	REQUIRE_OK(volume_file_open(v, ino, &f2));
	/* Sparse: a write at 100000 leaves a hole of zeros before it. */
	CHECK_OK(volume_file_write(f1, big, 1000, 100000));
	CHECK_OK(volume_file_read(f2, got, sizeof got, 0, &n));
	CHECK(n == 101000);
	memset(ref, 0, sizeof ref);
	memcpy(ref + 100000, big, 1000);
	CHECK(!memcmp(got, ref, n));
	CHECK_OK(volume_getattr(v, ino, &a));
	CHECK(a.size == 101000);
	/* Overwrite through the other handle, spanning the buffer's edge. */
	CHECK_OK(volume_file_write(f2, big + 5000, 2000, 100500));
	memcpy(ref + 100500, big + 5000, 2000);
	CHECK_OK(volume_file_fsync(f2));
	CHECK_OK(volume_file_read(f1, got, sizeof got, 0, &n));
	CHECK(n == 102500 && !memcmp(got, ref, n));
	/* Overwrite committed data with buffered data, then truncate. */
	CHECK_OK(volume_file_write(f1, big, 300, 100100));
	memcpy(ref + 100100, big, 300);
	CHECK_OK(volume_file_truncate(f1, 100200));
	memset(ref + 100200, 0, sizeof ref - 100200);
	CHECK_OK(volume_file_read(f2, got, sizeof got, 0, &n));
	CHECK(n == 100200 && !memcmp(got, ref, n));
	/* Extend by truncate: zeros. */
	CHECK_OK(volume_file_truncate(f2, 150000));
	CHECK_OK(volume_file_read(f1, got, sizeof got, 0, &n));
	CHECK(n == 150000 && !memcmp(got, ref, n));
	uint64_t at;
	CHECK_OK(volume_file_append(f1, big, 150000, &at));
	CHECK(at == 150000);
	memcpy(ref + 150000, big, 150000);
	CHECK_OK(volume_file_close(f1));
	CHECK_OK(volume_file_read(f2, got, sizeof got, 0, &n));
	CHECK(n == 300000 && !memcmp(got, ref, n));
	CHECK_OK(volume_file_read(f2, got, 10, 300000, &n));
	CHECK(n == 0);
	CHECK_OK(volume_file_close(f2));
	/* Many small files. */
	for (int i = 0; i < 200; i++) {
		char name[32];
		snprintf(name, sizeof name, "small%03d", i);
		uint64_t s = vt_file(v, name);
		CHECK_OK(vt_write(v, s, big + i, 1000 + (size_t)i * 10, 0));
	}
	CHECK_OK(volume_sync(v));
}

static void check_files(cairn_volume *v)
{
	static uint8_t big[300000], got[300000];
	size_t n;
	cairn_attr a;
	t_fill(big, sizeof big, 7);
	REQUIRE_OK(volume_lookup(v, CAIRN_ROOT_INO, "data", &a));
	CHECK(a.size == 300000);
	CHECK_OK(vt_read(v, a.ino, got, sizeof got, 0, &n));
	CHECK(n == 300000 && !memcmp(got + 150000, big, 150000));
	for (int i = 0; i < 200; i++) {
		char name[32];
		snprintf(name, sizeof name, "small%03d", i);
		REQUIRE_OK(volume_lookup(v, CAIRN_ROOT_INO, name, &a));
		CHECK(a.size == 1000 + (size_t)i * 10);
		CHECK_OK(vt_read(v, a.ino, got, sizeof got, 0, &n));
		CHECK(n == a.size && !memcmp(got, big + i, n));
	}
}

/* An explicit mtime set after a write (cp -p, tar) survives the later
 * commit of that write's data: set while the data is buffered (handle
 * open) and after close (data staged, not committed). */
static void test_explicit_mtime(cairn_volume *v)
{
	const int64_t when = 1000000000LL * 1600000000LL + 123;
	cairn_sattr sa = { .mask = CAIRN_SET_MTIME, .mtime_ns = when };
	cairn_attr a;
	cairn_file *f;
	uint64_t closed = vt_file(v, "mtime-closed");
	uint64_t open_ = vt_file(v, "mtime-open");

	CHECK_OK(vt_write(v, closed, "abc", 3, 0));
	CHECK_OK(volume_setattr(v, closed, &sa, &a));
	CHECK(a.mtime_ns == when);

	REQUIRE_OK(volume_file_open(v, open_, &f));
	CHECK_OK(volume_file_write(f, "defg", 4, 0));
	CHECK_OK(volume_setattr(v, open_, &sa, &a));
	CHECK_OK(volume_getattr(v, open_, &a));
	CHECK(a.mtime_ns == when && a.size == 4);
	CHECK_OK(volume_file_close(f));

	CHECK_OK(volume_sync(v));
	CHECK_OK(volume_getattr(v, closed, &a));
	CHECK(a.mtime_ns == when && a.size == 3);
	CHECK_OK(volume_getattr(v, open_, &a));
	CHECK(a.mtime_ns == when && a.size == 4);

	/* A write after the explicit time moves it again. */
	CHECK_OK(vt_write(v, closed, "x", 1, 3));
	CHECK_OK(volume_sync(v));
	CHECK_OK(volume_getattr(v, closed, &a));
	CHECK(a.mtime_ns > when && a.size == 4);
}

int main(void)
{
	const char *base = t_tmpdir("volume_api");
	char dir[1024];
	cairn_volume *v;
	cairn_volume_opts o;
	cairn_volume_stats st;

	test_format_open_errors(base);

	snprintf(dir, sizeof dir, "%s/v2", base);
	vt_format(dir, 0);
	vt_opts(&o);
	REQUIRE_OK(volume_open(dir, &o, &v));
	test_namespace(v);
	test_files(v);
	check_files(v);
	test_explicit_mtime(v);
	CHECK_OK(volume_close(v));

	/* Reopen: everything reads back; then from the store only. */
	o.durability = CAIRN_DUR_REMOTE;
	REQUIRE_OK(volume_open(dir, &o, &v));
	check_files(v);
	CHECK_OK(volume_sync(v));
	volume_stats(v, &st);
	CHECK(st.unuploaded_bytes == 0);
	CHECK_OK(volume_drop_cache(v));
	check_files(v);
	volume_stats(v, &st);
	CHECK(st.reads_store > 0);
	printf("segments uploaded %llu, store reads %llu, local reads %llu\n",
	       (unsigned long long)st.segments_uploaded,
	       (unsigned long long)st.reads_store, (unsigned long long)st.reads_local);
	/* Remote fsync returns with the data in the store. */
	uint64_t ino = vt_file(v, "remote");
	cairn_file *f;
	REQUIRE_OK(volume_file_open(v, ino, &f));
	CHECK_OK(volume_file_write(f, "hello", 5, 0));
	CHECK_OK(volume_file_fsync(f));
	CHECK_OK(volume_file_close(f));
	volume_stats(v, &st);
	CHECK(st.unuploaded_bytes == 0);
	CHECK_OK(volume_close(v));
	t_rmtree(base);
	return t_done();
}
