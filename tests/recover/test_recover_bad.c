/*
 * test_recover_bad.c - recovery refuses a store it cannot trust, with the
 * error docs/log-shipping.md promises, and never leaves a half-built
 * volume behind:
 *   - a writer's fresh lease: CAIRN_E_BUSY naming it (unless force);
 *   - a log object deleted in the middle: CAIRN_E_CORRUPT naming the
 *     missing LSN and key (a gap, never a silently shorter namespace);
 *   - a flipped byte in a log object: CAIRN_E_CORRUPT naming the key;
 *   - a log object under another object's name (its first LSN is not the
 *     key's): CAIRN_E_CORRUPT naming the key (it used to be skipped over,
 *     and at the end of the log fetched again and again forever);
 *   - a flipped byte in the only image: CAIRN_E_CORRUPT;
 *   - no image at all: CAIRN_E_NOTFOUND;
 *   - two volumes in one store and no uuid: CAIRN_E_INVAL; with the uuid
 *     the right one is rebuilt;
 *   - a target that holds a volume: CAIRN_E_EXISTS.
 * Each case works on a copy of one store, changed through the objstore
 * API (delete, get + change + put): on file://, and on s3rver with
 * argument "s3" (recover_bad_s3).
 */
#include "recover_t.h"
#include "t_store.h"

static char tmp[600];
static t_store ts;
static cairn_objstore *os;   /* the original store */

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Names of the objects under prefix (the part after it), sorted (at
 * most 64). */
static size_t names(const char *prefix, char *out[64])
{
	size_t nk, n = 0;
	char **k = t_store_keys(os, prefix, &nk);
	for (size_t i = 0; i < nk && n < 64; i++) {
		REQUIRE(strncmp(k[i], prefix, strlen(prefix)) == 0);
		out[n++] = strdup(k[i] + strlen(prefix));
	}
	t_store_keys_free(k, nk);
	qsort(out, n, sizeof *out, cmp_str);
	return n;
}

/* A copy of the store (a new prefix, or tmp/<name> on file://); its URL
 * in url, opened in *out. */
static void store_copy(const char *name, char *url, size_t size, cairn_objstore **out)
{
	t_store_new_url(&ts, tmp, name, url, size);
	t_store_copy(os, url);
	REQUIRE_OK(objstore_open(url, NULL, out));
}

static int try_recover(const char *store_url, const char *uuid, const char *into)
{
	char dir[700];
	cairn_recover_opts o = { .store_url = store_url, .uuid = uuid };
	cairn_recover_result r;
	snprintf(dir, sizeof dir, "%s/%s", tmp, into);
	int rc = volume_recover_store(dir, &o, &r);
	if (rc) {
		/* nothing that looks like a volume is left behind */
		char conf[800];
		struct stat st;
		snprintf(conf, sizeof conf, "%s/volume.conf", dir);
		CHECK(stat(conf, &st) != 0);
	}
	return rc;
}

int main(int argc, char **argv)
{
	cairn_format_opts fo = { 0 };
	cairn_volume_opts vo;
	cairn_volume *v;
	cairn_objstore *cs;
	char vol[700], url[800], curl[800], uuid[37], uuid2[37], wal[200], img[200];
	char *w[64], *im[64];
	rt_model m = { 0 };

	snprintf(tmp, sizeof tmp, "%s", t_tmpdir("recover_bad"));
	snprintf(vol, sizeof vol, "%s/vol", tmp);
	if (!t_store_s3(&ts, argc, argv, "recover_bad", url, sizeof url))
		snprintf(url, sizeof url, "file://%s/store", tmp);
	fo.store_url = url;
	REQUIRE_OK(volume_format(vol, &fo));
	memset(&vo, 0, sizeof vo);
	vo.ship_interval_ms = 3600 * 1000;  /* only our flushes ship */
	REQUIRE_OK(volume_open(vol, &vo, &v));
	volume_uuid(v, uuid);
	for (int i = 0; i < 5; i++) {
		char path[64];
		snprintf(path, sizeof path, "dir%d/file%d", i, i);
		rt_write(v, path, 1000 + (uint64_t)i, (uint64_t)i);
		rt_set(&m, path, 1000 + (uint64_t)i, (uint64_t)i);
		REQUIRE_OK(volume_sync(v));
		REQUIRE_OK(volume_ship_flush(v));
	}
	/* the writer is alive: its lease is fresh */
	{
		char dir[700];
		cairn_recover_opts o = { .store_url = url };
		cairn_recover_result r;
		snprintf(dir, sizeof dir, "%s/busy", tmp);
		CHECK_RC(volume_recover_store(dir, &o, &r), CAIRN_E_BUSY);
		CHECK_MSG("pid");
		CHECK_MSG("--force");
		o.force = 1;
		snprintf(dir, sizeof dir, "%s/forced", tmp);
		CHECK_OK(volume_recover_store(dir, &o, &r));
		CHECK(r.fsck_problems == 0);
		/* the target holds a volume now */
		CHECK_RC(volume_recover_store(dir, &o, &r), CAIRN_E_EXISTS);
	}
	REQUIRE_OK(volume_close(v));

	REQUIRE_OK(objstore_open(url, NULL, &os));
	snprintf(wal, sizeof wal, "v/%s/meta/wal/", uuid);
	snprintf(img, sizeof img, "v/%s/meta/image/", uuid);
	size_t nw = names(wal, w), ni = names(img, im);
	printf("%zu log objects, %zu image files\n", nw, ni);
	REQUIRE(nw >= 4);
	REQUIRE(ni >= 2);

	/* the untouched store recovers */
	CHECK_OK(try_recover(url, NULL, "good"));

	/* a gap: the second object after the image is gone */
	{
		char path[300], key[200];
		store_copy("s_gap", curl, sizeof curl, &cs);
		snprintf(path, sizeof path, "%s%s", wal, w[2]);
		REQUIRE_OK(objstore_delete(cs, path));
		objstore_close(cs);
		CHECK_RC(try_recover(curl, NULL, "gap"), CAIRN_E_CORRUPT);
		snprintf(key, sizeof key, "meta/wal/%s", w[2]);
		CHECK_MSG(key);
		snprintf(key, sizeof key, "LSN %llu", (unsigned long long)strtoull(w[2], NULL, 16));
		CHECK_MSG(key);
		CHECK_MSG("gap");
		/* what the failed recovery left does not stand in the way */
		CHECK_OK(try_recover(url, NULL, "gap"));
	}
	/* a flipped byte in a log object */
	{
		char path[300], key[200];
		store_copy("s_flip", curl, sizeof curl, &cs);
		snprintf(path, sizeof path, "%s%s", wal, w[nw - 2]);
		t_store_flip(cs, path, -7);
		objstore_close(cs);
		CHECK_RC(try_recover(curl, NULL, "flip"), CAIRN_E_CORRUPT);
		snprintf(key, sizeof key, "meta/wal/%s", w[nw - 2]);
		CHECK_MSG(key);
	}
	/* a log object under another object's name (its first LSN is not
	 * the key's): the last object copied to the key after its own.
	 * Applying it would skip every record (all at or below the applied
	 * LSN) and look for the same key again: it must be refused */
	{
		char path[300], key[200];
		size_t len;
		store_copy("s_misnamed", curl, sizeof curl, &cs);
		snprintf(path, sizeof path, "%s%s", wal, w[nw - 1]);
		uint8_t *obj = t_store_get(cs, path, &len);
		snprintf(key, sizeof key, "%016llx",
			 (unsigned long long)strtoull(w[nw - 1], NULL, 16) + 1);
		snprintf(path, sizeof path, "%s%s", wal, key);
		REQUIRE_OK(objstore_put_buf(cs, path, obj, len));
		free(obj);
		objstore_close(cs);
		CHECK_RC(try_recover(curl, NULL, "misnamed"), CAIRN_E_CORRUPT);
		CHECK_MSG(key);
		CHECK_MSG("its key names");
	}
	/* a flipped byte in the image (the only one) */
	{
		char path[300];
		const char *mdb = NULL;
		for (size_t i = 0; i < ni; i++)
			if (strstr(im[i], ".mdb"))
				mdb = im[i];
		REQUIRE(mdb != NULL);
		store_copy("s_img", curl, sizeof curl, &cs);
		snprintf(path, sizeof path, "%s%s", img, mdb);
		t_store_flip(cs, path, 100);
		objstore_close(cs);
		int rc = try_recover(curl, NULL, "img");
		/* with an older image still there, that one may serve, as long as
		 * the log after it is complete; the newest one must never */
		if (ni == 2)
			CHECK_RC(rc, CAIRN_E_CORRUPT);
	}
	/* a manifest that does not parse, and one of an unknown version */
	{
		char path[300];
		const char *man = NULL;
		for (size_t i = 0; i < ni; i++)
			if (!strstr(im[i], ".mdb"))
				man = im[i];
		REQUIRE(man != NULL);
		static const char *const texts[] = {
			"cairn-image 1\nlsn = x\n", "cairn-image 2\nlsn = 1\n",
			"cairn-image 1\nlsn = 6\nepoch = 1\nsize = 99999999999999999999\n",
			"cairn-image 1\nbogus = 1\n",
		};
		static const int want[] = { CAIRN_E_CORRUPT, CAIRN_E_VERSION, CAIRN_E_CORRUPT,
					    CAIRN_E_CORRUPT };
		for (int k = 0; k < 4; k++) {
			char name[32];
			snprintf(name, sizeof name, "s_man%d", k);
			store_copy(name, curl, sizeof curl, &cs);
			snprintf(path, sizeof path, "%s%s", img, man);
			REQUIRE_OK(objstore_put_buf(cs, path, texts[k], strlen(texts[k])));
			objstore_close(cs);
			snprintf(name, sizeof name, "man%d", k);
			if (ni == 2)
				CHECK_RC(try_recover(curl, NULL, name), want[k]);
		}
	}
	/* no image */
	{
		store_copy("s_noimg", curl, sizeof curl, &cs);
		t_store_delete_all(cs, img);
		objstore_close(cs);
		CHECK_RC(try_recover(curl, NULL, "noimg"), CAIRN_E_NOTFOUND);
		CHECK_MSG("image");
	}
	/* a store without meta/volume (a volume that never shipped) */
	{
		char path[300];
		store_copy("s_nometa", curl, sizeof curl, &cs);
		snprintf(path, sizeof path, "v/%s/meta/volume", uuid);
		REQUIRE_OK(objstore_delete(cs, path));
		objstore_close(cs);
		CHECK_RC(try_recover(curl, NULL, "nometa"), CAIRN_E_NOTFOUND);
		CHECK_MSG("meta/volume");
	}
	/* two volumes in one store */
	{
		char vol2[700];
		snprintf(vol2, sizeof vol2, "%s/vol2", tmp);
		REQUIRE_OK(volume_format(vol2, &fo));
		REQUIRE_OK(volume_open(vol2, &vo, &v));
		volume_uuid(v, uuid2);
		rt_write(v, "other", 10, 10);
		REQUIRE_OK(volume_sync(v));
		REQUIRE_OK(volume_ship_flush(v));
		REQUIRE_OK(volume_close(v));
		CHECK_RC(try_recover(url, NULL, "two"), CAIRN_E_INVAL);
		CHECK_MSG("--uuid");
		CHECK_MSG(uuid);
		CHECK_MSG(uuid2);
		CHECK_RC(try_recover(url, "not-a-uuid", "two"), CAIRN_E_INVAL);
		CHECK_RC(try_recover(url, "00000000-0000-4000-8000-000000000000", "two"),
			 CAIRN_E_NOTFOUND);
		CHECK_MSG("holds no volume 00000000-0000-4000-8000-000000000000");
		CHECK_OK(try_recover(url, uuid, "two"));
		{
			/* a follower needs a store with one volume */
			char fdir[700];
			cairn_volume *f = NULL;
			snprintf(fdir, sizeof fdir, "%s/follower", tmp);
			CHECK_RC(volume_open_follower(fdir, url, NULL, &f), CAIRN_E_INVAL);
			CHECK_MSG("one volume");
			CHECK(f == NULL);
		}
		char dir[700];
		snprintf(dir, sizeof dir, "%s/two", tmp);
		memset(&vo, 0, sizeof vo);
		REQUIRE_OK(volume_open(dir, &vo, &v));
		CHECK(rt_check_tree(v, CAIRN_ROOT_INO, &m, "two") == 0);
		CHECK(rt_fsck(v) == 0);
		REQUIRE_OK(volume_close(v));
	}
	for (size_t i = 0; i < nw; i++)
		free(w[i]);
	for (size_t i = 0; i < ni; i++)
		free(im[i]);
	rt_free(&m);
	objstore_close(os);
	t_store_stop(&ts);
	if (!getenv("CAIRN_TEST_KEEP"))
		t_rmtree(tmp);
	return t_done();
}
