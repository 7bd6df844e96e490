/*
 * ship_t.h - helpers of the log-shipping tests (tests/ship): volume
 * options with short intervals, a workload, the store's keys, and a
 * replica rebuilt from the store alone (an image + every later log
 * object, applied with meta_wal_apply) whose digest is compared with the
 * writer's (docs/log-shipping.md).
 */
#ifndef CAIRN_SHIP_T_H
#define CAIRN_SHIP_T_H

#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cairn/meta.h"
#include "cairn/objstore.h"
#include "cairn/volume.h"
#include "t.h"

static inline void sh_opts(cairn_volume_opts *o)
{
	memset(o, 0, sizeof *o);
	o->seal_age_ms = 200;
	o->commit_interval_ms = 50;
	o->upload_wait_ms = 20000;
	o->read_window = 64 << 10;
	o->inode_dirty_max = 256 << 10;
	o->pending_max = 1 << 20;
	o->ship_interval_ms = 50;
	o->lease_ttl_ms = 3000;
}

static inline void sh_format(const char *dir, const char *url)
{
	cairn_format_opts fo = { 0 };
	fo.segment_size = 1 << 20;
	fo.store_url = url;
	if (volume_format(dir, &fo) != 0) {
		fprintf(stderr, "format %s: %s\n", dir, cairn_errmsg());
		exit(1);
	}
}

static inline void sh_store_open(const char *dir, cairn_objstore **os)
{
	char url[1024];
	snprintf(url, sizeof url, "file://%s/store", dir);
	REQUIRE_OK(objstore_open(url, NULL, os));
}

static inline void sh_write(cairn_volume *v, uint64_t ino, size_t len, uint64_t seed)
{
	uint8_t *buf = malloc(len ? len : 1);
	cairn_file *f;
	REQUIRE(buf != NULL);
	t_fill(buf, len, seed);
	REQUIRE_OK(volume_file_open(v, ino, &f));
	CHECK_OK(volume_file_write(f, buf, len, 0));
	CHECK_OK(volume_file_close(f));
	free(buf);
}

/* Creates, writes, renames, a snapshot, a clone, deletes; tag makes the
 * names of several calls differ. */
static inline void sh_workload(cairn_volume *v, int tag, int nfiles)
{
	cairn_attr d, a, c;
	char name[64], nn[64];
	snprintf(name, sizeof name, "d%d", tag);
	REQUIRE_OK(volume_mkdir(v, CAIRN_ROOT_INO, name, 040755, 0, 0, &d));
	for (int i = 0; i < nfiles; i++) {
		snprintf(name, sizeof name, "f%d", i);
		REQUIRE_OK(volume_create(v, d.ino, name, 0100644, 0, 0, &a));
		sh_write(v, a.ino, 1000 + (size_t)i * 3000, (uint64_t)(tag * 1000 + i));
	}
	for (int i = 0; i < nfiles; i += 3) {
		snprintf(name, sizeof name, "f%d", i);
		snprintf(nn, sizeof nn, "r%d", i);
		CHECK_OK(volume_rename(v, d.ino, name, d.ino, nn, 0));
	}
	CHECK_OK(volume_sync(v));
	snprintf(name, sizeof name, "snap%d", tag);
	CHECK_OK(volume_snapshot_create(v, d.ino, name, NULL));
	snprintf(name, sizeof name, "clone%d", tag);
	CHECK_OK(volume_clone(v, d.ino, CAIRN_ROOT_INO, name, &c));
	for (int i = 1; i < nfiles; i += 3) {
		snprintf(name, sizeof name, "f%d", i);
		CHECK_OK(volume_unlink(v, d.ino, name));
	}
}

/* ---- the store ---- */

typedef struct sh_keys {
	char **k;
	size_t n;
} sh_keys;

static inline void sh_keys_free(sh_keys *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->k[i]);
	free(l->k);
	memset(l, 0, sizeof *l);
}

static inline int sh_kcmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static inline void sh_list(cairn_objstore *os, const char *prefix, sh_keys *out)
{
	char *token = NULL;
	memset(out, 0, sizeof *out);
	do {
		cairn_obj_list l;
		memset(&l, 0, sizeof l);
		REQUIRE_OK(objstore_list(os, prefix, token, 0, &l));
		free(token);
		token = NULL;
		for (size_t i = 0; i < l.n; i++) {
			out->k = realloc(out->k, (out->n + 1) * sizeof *out->k);
			REQUIRE(out->k != NULL);
			out->k[out->n++] = strdup(l.v[i].key);
		}
		if (l.next)
			token = strdup(l.next);
		objstore_list_free(&l);
	} while (token);
	qsort(out->k, out->n, sizeof *out->k, sh_kcmp);
}

static inline uint64_t sh_hex(const char *s)
{
	return strtoull(s, NULL, 16);
}

static inline uint8_t *sh_get(cairn_objstore *os, const char *key, size_t *len)
{
	cairn_obj_info info;
	uint64_t got = 0;
	REQUIRE_OK(objstore_head(os, key, &info));
	uint8_t *buf = malloc(info.size + 1);
	REQUIRE(buf != NULL);
	if (info.size)
		REQUIRE_OK(objstore_get(os, key, 0, buf, info.size, &got));
	REQUIRE(got == info.size);
	buf[info.size] = 0;
	*len = info.size;
	return buf;
}

/* Image manifests (LSNs, sorted) of volume uuid. */
static inline size_t sh_images(cairn_objstore *os, const char *uuid, uint64_t *lsn, size_t max)
{
	char pfx[128];
	sh_keys l;
	size_t n = 0;
	snprintf(pfx, sizeof pfx, "v/%s/meta/image/", uuid);
	sh_list(os, pfx, &l);
	for (size_t i = 0; i < l.n; i++) {
		const char *k = l.k[i] + strlen(pfx);
		if (strlen(k) == 16 && n < max)
			lsn[n++] = sh_hex(k);
	}
	sh_keys_free(&l);
	return n;
}

typedef struct sh_apply {
	cairn_meta *m;
	uint64_t next;          /* next LSN to apply */
	uint64_t records;
	int rc;
} sh_apply;

static inline int sh_apply_cb(uint64_t lsn, const void *rec, size_t len, void *arg)
{
	sh_apply *a = arg;
	if (lsn < a->next)
		return 0;
	if (lsn != a->next) {
		a->rc = cairn_errf(CAIRN_E_CORRUPT, "gap: LSN %" PRIu64 " after %" PRIu64, lsn,
				   a->next - 1);
		return 1;
	}
	if ((a->rc = meta_wal_apply(a->m, rec, len)))
		return 1;
	a->next++;
	a->records++;
	return 0;
}

/* A replica of volume uuid from the store alone: image LSN image_lsn
 * (0: the newest), then every log object after it.  *last gets the last
 * LSN applied, dig its digest; work is a scratch directory. */
static inline void sh_replica(cairn_objstore *os, const char *uuid, const char *work,
			      uint64_t image_lsn, uint8_t dig[32], uint64_t *last)
{
	char key[256], path[4096], rdir[4096], pfx[128];
	uint64_t imgs[256];
	size_t n = sh_images(os, uuid, imgs, 256), len;
	cairn_meta *m;
	meta_opts mo;
	sh_keys l;

	REQUIRE(n > 0);
	if (!image_lsn)
		image_lsn = imgs[n - 1];
	snprintf(key, sizeof key, "v/%s/meta/image/%016" PRIx64 ".mdb", uuid, image_lsn);
	uint8_t *img = sh_get(os, key, &len);
	t_rmtree(work);
	REQUIRE(mkdir(work, 0755) == 0);
	snprintf(path, sizeof path, "%s/image.mdb", work);
	FILE *fp = fopen(path, "wb");
	REQUIRE(fp != NULL);
	REQUIRE(fwrite(img, 1, len, fp) == len);
	REQUIRE(fclose(fp) == 0);
	free(img);
	uint64_t il = 0;
	REQUIRE_OK(meta_image_lsn(path, &il));
	CHECK(il == image_lsn);
	snprintf(rdir, sizeof rdir, "%s/rep", work);
	REQUIRE_OK(meta_image_install(path, rdir));
	meta_opts_init(&mo);
	mo.replica = 1;
	REQUIRE_OK(meta_open(rdir, &mo, &m));
	sh_apply a = { .m = m, .next = image_lsn + 1 };
	snprintf(pfx, sizeof pfx, "v/%s/meta/wal/", uuid);
	sh_list(os, pfx, &l);
	for (size_t i = 0; i < l.n; i++) {
		meta_logobj_hdr h;
		uint8_t *buf = sh_get(os, l.k[i], &len);
		CHECK_OK(meta_logobj_decode(buf, len, &h, sh_apply_cb, &a));
		CHECK(h.first == sh_hex(l.k[i] + strlen(pfx)));
		CHECK_OK(a.rc);
		free(buf);
	}
	sh_keys_free(&l);
	REQUIRE_OK(meta_digest(m, dig));
	*last = a.next - 1;
	REQUIRE_OK(meta_close(m));
}

/* The writer's metadata (volume closed): digest and last LSN. */
static inline void sh_writer_digest(const char *dir, uint8_t dig[32], uint64_t *last)
{
	char path[4096];
	cairn_meta *m;
	uint64_t first;
	snprintf(path, sizeof path, "%s/meta", dir);
	REQUIRE_OK(meta_open(path, NULL, &m));
	REQUIRE_OK(meta_digest(m, dig));
	REQUIRE_OK(meta_wal_bounds(m, &first, last));
	REQUIRE_OK(meta_close(m));
}

#endif
