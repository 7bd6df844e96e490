/*
 * space_t.h - helpers of the gc/compaction tests (tests/space): volume
 * options with small segments and streams, an in-memory model of a set of
 * files (name -> bytes) checked byte for byte against the volume, and a
 * view of the store's objects under the volume's segment prefix (listed
 * with a separate store handle, so the check does not trust the volume).
 */
#ifndef CAIRN_SPACE_T_H
#define CAIRN_SPACE_T_H

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cairn/volume.h"
#include "t.h"

#define SP_MIB (1ull << 20)

/* Small segments, streams past 1 MiB, no grace: every pass reclaims. */
static inline void sp_opts(cairn_volume_opts *o)
{
	memset(o, 0, sizeof *o);
	o->seal_age_ms = 200;
	o->commit_interval_ms = 50;
	o->upload_wait_ms = 20000;
	o->read_window = 64 << 10;
	o->inode_dirty_max = 256 << 10;
	o->pending_max = 1 << 20;
	o->stream_threshold = SP_MIB;
	o->stream_part_size = 5 * SP_MIB;
	o->stream_inflight = 2;
	o->stream_chunk_avg = 256u << 10;
	o->stream_commit_bytes = 4 * SP_MIB;
	o->gc_grace_ms = CAIRN_GC_GRACE_NONE;
}

static inline void sp_format(const char *dir)
{
	cairn_format_opts fo = { 0 };
	fo.segment_size = SP_MIB;
	if (volume_format(dir, &fo) != 0) {
		fprintf(stderr, "format %s: %s\n", dir, cairn_errmsg());
		exit(1);
	}
}

/* gc options: no grace, compaction of anything not fully live. */
static inline void sp_gc_opts(cairn_gc_opts *g)
{
	volume_gc_opts_init(g);
	g->grace_ms = 0;
	g->compact_below = 0.99;
}

/* n files /f0../f<n-1> of len bytes of t_fill(seed + i); their inodes in
 * inos unless NULL. */
static inline void sp_put_files(cairn_volume *v, int n, size_t len, uint64_t seed,
				uint64_t *inos)
{
	uint8_t *buf = malloc(len);
	REQUIRE(buf != NULL);
	for (int i = 0; i < n; i++) {
		char name[32];
		cairn_attr a;
		cairn_file *f;
		snprintf(name, sizeof name, "f%d", i);
		t_fill(buf, len, seed + (uint64_t)i);
		REQUIRE_OK(volume_create(v, CAIRN_ROOT_INO, name, 0100644, 0, 0, &a));
		REQUIRE_OK(volume_file_open(v, a.ino, &f));
		CHECK_OK(volume_file_write(f, buf, len, 0));
		CHECK_OK(volume_file_close(f));
		if (inos)
			inos[i] = a.ino;
	}
	free(buf);
}

/* ---- the store, seen from outside ---- */

typedef struct sp_objs {
	uint64_t n, bytes;
} sp_objs;

static inline int sp_store_open(const char *dir, cairn_objstore **os)
{
	char url[1024];
	snprintf(url, sizeof url, "file://%s/store", dir);
	return objstore_open(url, NULL, os);
}

static inline void sp_prefix(cairn_volume *v, char *buf, size_t size)
{
	char u[37];
	volume_uuid(v, u);
	snprintf(buf, size, "v/%s/seg/", u);
}

/* Count the objects under prefix. */
static inline int sp_list(cairn_objstore *os, const char *prefix, sp_objs *out)
{
	char *token = NULL;
	int rc = 0;
	memset(out, 0, sizeof *out);
	do {
		cairn_obj_list l;
		memset(&l, 0, sizeof l);
		rc = objstore_list(os, prefix, token, 0, &l);
		free(token);
		token = NULL;
		if (rc)
			return rc;
		for (size_t i = 0; i < l.n; i++) {
			out->n++;
			out->bytes += l.v[i].size;
		}
		if (l.next)
			token = strdup(l.next);
		objstore_list_free(&l);
	} while (token);
	return 0;
}

/* ---- the model ---- */

#define SP_MAXF 64
typedef struct sp_file {
	char name[64];
	uint8_t *data;
	uint64_t size, cap;
} sp_file;

typedef struct sp_model {
	sp_file f[SP_MAXF];
	int n;
} sp_model;

static inline sp_file *sp_find(sp_model *m, const char *name)
{
	for (int i = 0; i < m->n; i++)
		if (!strcmp(m->f[i].name, name))
			return &m->f[i];
	return NULL;
}

static inline void sp_reserve(sp_file *f, uint64_t size)
{
	if (size <= f->cap)
		return;
	uint64_t nc = size + (size >> 1) + 4096;
	uint8_t *p = realloc(f->data, nc);
	REQUIRE(p != NULL);
	memset(p + f->cap, 0, nc - f->cap);
	f->data = p;
	f->cap = nc;
}

static inline sp_file *sp_add(sp_model *m, const char *name)
{
	REQUIRE(m->n < SP_MAXF);
	sp_file *f = &m->f[m->n++];
	memset(f, 0, sizeof *f);
	snprintf(f->name, sizeof f->name, "%s", name);
	return f;
}

static inline void sp_del(sp_model *m, sp_file *f)
{
	free(f->data);
	*f = m->f[--m->n];
}

static inline void sp_set_size(sp_file *f, uint64_t size)
{
	sp_reserve(f, size);
	if (size < f->size)
		memset(f->data + size, 0, f->size - size);
	f->size = size;
}

static inline void sp_model_copy(sp_model *dst, const sp_model *src)
{
	dst->n = 0;
	for (int i = 0; i < src->n; i++) {
		sp_file *f = sp_add(dst, src->f[i].name);
		sp_reserve(f, src->f[i].size);
		memcpy(f->data, src->f[i].data, src->f[i].size);
		f->size = src->f[i].size;
	}
}

static inline void sp_model_free(sp_model *m)
{
	for (int i = 0; i < m->n; i++)
		free(m->f[i].data);
	m->n = 0;
}

static inline uint64_t sp_ino(cairn_volume *v, const char *name)
{
	cairn_attr a;
	int rc = volume_lookup(v, CAIRN_ROOT_INO, name, &a);
	return rc ? 0 : a.ino;
}

/* Random bytes, half compressible runs and half noise, so that both
 * codecs are used. */
static inline void sp_fill(uint8_t *p, size_t n, uint64_t *rng)
{
	if (t_rand(rng) & 1) {
		t_fill(p, n, t_rand(rng));
	} else {
		uint8_t c = (uint8_t)t_rand(rng);
		for (size_t i = 0; i < n; i++)
			p[i] = (uint8_t)(c + (i / 512));
	}
}

/* Write len new bytes at off of /name (created if missing) through one
 * handle, piece bytes per call, into the volume and the model. */
static inline void sp_write(cairn_volume *v, sp_model *m, const char *name, uint64_t off,
			    uint64_t len, size_t piece, uint64_t *rng)
{
	sp_file *f = sp_find(m, name);
	uint64_t ino = sp_ino(v, name);
	cairn_file *h;
	if (!f) {
		cairn_attr a;
		REQUIRE_OK(volume_create(v, CAIRN_ROOT_INO, name, 0100644, 0, 0, &a));
		ino = a.ino;
		f = sp_add(m, name);
	}
	REQUIRE(ino != 0);
	REQUIRE_OK(volume_file_open(v, ino, &h));
	sp_reserve(f, off + len);
	for (uint64_t pos = off; pos < off + len;) {
		size_t n = piece < off + len - pos ? piece : (size_t)(off + len - pos);
		sp_fill(f->data + pos, n, rng);
		CHECK_OK(volume_file_write(h, f->data + pos, n, pos));
		pos += n;
	}
	if (off + len > f->size)
		f->size = off + len;
	CHECK_OK(volume_file_close(h));
}

/* Compare every file of m with the files of directory dir; returns the
 * number of files that differ or fail to read. */
static inline int sp_verify(cairn_volume *v, uint64_t dir, const sp_model *m, const char *what)
{
	int bad = 0;
	for (int i = 0; i < m->n; i++) {
		const sp_file *f = &m->f[i];
		cairn_attr a;
		cairn_file *h;
		int rc = volume_lookup(v, dir, f->name, &a);
		if (rc || a.size != f->size) {
			fprintf(stderr, "%s/%s: lookup rc %d (%s) size %" PRIu64 ", want %" PRIu64 "\n",
				what, f->name, rc, rc ? cairn_errmsg() : "", rc ? 0 : a.size, f->size);
			bad++;
			continue;
		}
		if ((rc = volume_file_open(v, a.ino, &h))) {
			fprintf(stderr, "%s/%s: open: %s\n", what, f->name, cairn_errmsg());
			bad++;
			continue;
		}
		uint8_t *buf = malloc(f->size + 1);
		size_t got = 0;
		REQUIRE(buf != NULL);
		rc = volume_file_read(h, buf, f->size + 1, 0, &got);
		volume_file_close(h);
		if (rc || got != f->size || memcmp(buf, f->data, f->size)) {
			size_t at = 0;
			while (!rc && at < got && at < f->size && buf[at] == f->data[at])
				at++;
			fprintf(stderr, "%s/%s: read rc %d (%s), got %zu of %" PRIu64
				", first difference at %zu\n", what, f->name, rc,
				rc ? cairn_errmsg() : "", got, f->size, at);
			bad++;
		}
		free(buf);
	}
	return bad;
}

/* fsck clean, and volume_space agrees with fsck's recount. */
static inline void sp_check_accounting(cairn_volume *v)
{
	cairn_fsck_result fr;
	cairn_space sp;
	CHECK_OK(volume_fsck(v, 0, stderr, &fr));
	CHECK(fr.problems == 0);
	CHECK_OK(volume_space(v, &sp));
	CHECK(sp.live_bytes == fr.live_bytes);
	CHECK(sp.referenced_bytes == fr.referenced_bytes);
	CHECK(sp.chunks == fr.chunks);
	CHECK(sp.segments == fr.segments);
	CHECK(sp.stored_bytes >= sp.live_bytes);
	CHECK(sp.reclaimable_bytes == sp.stored_bytes - sp.live_bytes);
	if (sp.live_bytes != fr.live_bytes || sp.referenced_bytes != fr.referenced_bytes)
		fprintf(stderr, "space live %" PRIu64 " ref %" PRIu64 " vs fsck live %" PRIu64
			" ref %" PRIu64 "\n", sp.live_bytes, sp.referenced_bytes, fr.live_bytes,
			fr.referenced_bytes);
}

/* After a pass with no grace on a quiet, fully uploaded volume: the store
 * holds exactly the segments metadata knows, and nothing is dead. */
static inline void sp_check_store_matches(cairn_volume *v, cairn_objstore *os)
{
	char prefix[128];
	cairn_space sp;
	sp_objs ob;
	sp_prefix(v, prefix, sizeof prefix);
	CHECK_OK(volume_space(v, &sp));
	CHECK_OK(sp_list(os, prefix, &ob));
	CHECK(sp.segments_dead == 0);
	CHECK(ob.n == sp.segments);
	CHECK(ob.bytes == sp.stored_bytes);
	if (ob.n != sp.segments || ob.bytes != sp.stored_bytes || sp.segments_dead)
		fprintf(stderr, "store: %" PRIu64 " objects, %" PRIu64 " bytes; metadata: %"
			PRIu64 " segments (%" PRIu64 " dead), %" PRIu64 " bytes\n", ob.n, ob.bytes,
			sp.segments, sp.segments_dead, sp.stored_bytes);
}

#endif
