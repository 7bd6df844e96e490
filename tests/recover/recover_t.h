/*
 * recover_t.h - helpers of the recovery and follower tests: a model of a
 * volume's files (path, size, content seed: the bytes are t_fill(seed)),
 * writing it through the volume API, and checking a tree of a volume (the
 * live tree or a snapshot) against it byte for byte.
 */
#ifndef CAIRN_RECOVER_T_H
#define CAIRN_RECOVER_T_H

#include <sys/stat.h>

#include "cairn/volume.h"
#include "t.h"

#define RT_PATH_MAX 200

typedef struct rt_file {
	char path[RT_PATH_MAX];   /* "a/b/c", relative to the tree's root */
	uint64_t size, seed;
} rt_file;

typedef struct rt_model {
	rt_file *f;
	size_t n, cap;
} rt_model;

static inline rt_file *rt_find(rt_model *m, const char *path)
{
	for (size_t i = 0; i < m->n; i++)
		if (strcmp(m->f[i].path, path) == 0)
			return &m->f[i];
	return NULL;
}

static inline void rt_set(rt_model *m, const char *path, uint64_t size, uint64_t seed)
{
	rt_file *f = rt_find(m, path);
	if (!f) {
		if (m->n == m->cap) {
			m->cap = m->cap ? m->cap * 2 : 64;
			m->f = realloc(m->f, m->cap * sizeof *m->f);
			REQUIRE(m->f != NULL);
		}
		f = &m->f[m->n++];
		snprintf(f->path, sizeof f->path, "%s", path);
	}
	f->size = size;
	f->seed = seed;
}

static inline void rt_del(rt_model *m, const char *path)
{
	rt_file *f = rt_find(m, path);
	if (f)
		*f = m->f[--m->n];
}

/* The files under prefix ("dir/"), paths made relative to it. */
static inline void rt_subtree(const rt_model *m, const char *prefix, rt_model *out)
{
	size_t pl = strlen(prefix);
	memset(out, 0, sizeof *out);
	for (size_t i = 0; i < m->n; i++)
		if (strncmp(m->f[i].path, prefix, pl) == 0)
			rt_set(out, m->f[i].path + pl, m->f[i].size, m->f[i].seed);
}

static inline void rt_free(rt_model *m)
{
	free(m->f);
	memset(m, 0, sizeof *m);
}

/* Inode of path under root; with mk, missing directories are created. */
static inline int rt_walk(cairn_volume *v, uint64_t root, const char *path, int mk,
			  int parent_only, uint64_t *ino, char leaf[256])
{
	char buf[RT_PATH_MAX], *save = NULL;
	uint64_t cur = root;
	snprintf(buf, sizeof buf, "%s", path);
	char *tok = strtok_r(buf, "/", &save);
	while (tok) {
		char *next = strtok_r(NULL, "/", &save);
		if (!next && parent_only) {
			snprintf(leaf, 256, "%s", tok);
			break;
		}
		cairn_attr a;
		int rc = volume_lookup(v, cur, tok, &a);
		if (rc == CAIRN_E_NOTFOUND && mk)
			rc = volume_mkdir(v, cur, tok, 0755, 0, 0, &a);
		if (rc)
			return rc;
		cur = a.ino;
		tok = next;
	}
	*ino = cur;
	return 0;
}

/* Write the model's file at path (created or replaced) with its bytes. */
static inline void rt_write(cairn_volume *v, const char *path, uint64_t size, uint64_t seed)
{
	uint64_t dir;
	char leaf[256];
	cairn_attr a;
	cairn_file *f;
	REQUIRE_OK(rt_walk(v, CAIRN_ROOT_INO, path, 1, 1, &dir, leaf));
	int rc = volume_lookup(v, dir, leaf, &a);
	if (rc == CAIRN_E_NOTFOUND)
		rc = volume_create(v, dir, leaf, 0100644, 0, 0, &a);
	REQUIRE_OK(rc);
	REQUIRE_OK(volume_file_open(v, a.ino, &f));
	REQUIRE_OK(volume_file_truncate(f, 0));
	size_t piece = 1u << 20;
	/* t_fill's stream is defined by the seed from byte 0: write it in
	 * pieces of the whole-file fill */
	uint8_t *all = malloc(size ? size : 1);
	REQUIRE(all != NULL);
	t_fill(all, size, seed);
	for (uint64_t off = 0; off < size; off += piece) {
		uint64_t n = size - off < piece ? size - off : piece;
		REQUIRE_OK(volume_file_write(f, all + off, n, off));
	}
	free(all);
	REQUIRE_OK(volume_file_close(f));
}

/* Compare the file at ino with the model's bytes; 0 if equal. */
static inline int rt_file_equal(cairn_volume *v, uint64_t ino, const rt_file *m)
{
	cairn_attr a;
	cairn_file *f;
	int bad = 0;
	if (volume_getattr(v, ino, &a) || a.size != m->size) {
		fprintf(stderr, "%s: size %llu, model %llu\n", m->path,
			(unsigned long long)a.size, (unsigned long long)m->size);
		return -1;
	}
	if (volume_file_open(v, ino, &f)) {
		fprintf(stderr, "%s: open: %s\n", m->path, cairn_errmsg());
		return -1;
	}
	uint8_t *want = malloc(m->size ? m->size : 1), *got = malloc(m->size ? m->size : 1);
	REQUIRE(want && got);
	t_fill(want, m->size, m->seed);
	uint64_t off = 0;
	while (off < m->size) {
		size_t n = 0;
		if (volume_file_read(f, got + off, m->size - off, off, &n) || n == 0) {
			fprintf(stderr, "%s: read at %llu: %s\n", m->path, (unsigned long long)off,
				cairn_errmsg());
			bad = 1;
			break;
		}
		off += n;
	}
	if (!bad && memcmp(want, got, m->size) != 0) {
		fprintf(stderr, "%s: content differs from the model\n", m->path);
		bad = 1;
	}
	free(want);
	free(got);
	if (volume_file_close(f))
		bad = 1;
	return bad ? -1 : 0;
}

typedef struct rt_count {
	cairn_volume *v;
	uint64_t files;
	int rc;
} rt_count;

static inline int rt_count_cb(const char *name, size_t namelen, uint64_t ino, uint32_t type,
			      uint64_t cookie, void *arg);

static inline void rt_count_tree(cairn_volume *v, uint64_t dir, rt_count *c)
{
	c->v = v;
	int rc = volume_readdir(v, dir, 0, rt_count_cb, c);
	if (rc && !c->rc)
		c->rc = rc;
}

static inline int rt_count_cb(const char *name, size_t namelen, uint64_t ino, uint32_t type,
			      uint64_t cookie, void *arg)
{
	rt_count *c = arg;
	(void)name;
	(void)namelen;
	(void)cookie;
	cairn_attr a;
	if (volume_getattr(c->v, ino, &a)) {
		c->rc = -1;
		return 1;
	}
	(void)type;
	if (S_ISDIR(a.mode))
		rt_count_tree(c->v, ino, c);
	else
		c->files++;
	return 0;
}

/* Every model file under root with its exact bytes, and no other file.
 * Returns the number of differences (reported on stderr). */
static inline int rt_check_tree(cairn_volume *v, uint64_t root, const rt_model *m,
				const char *what)
{
	int bad = 0;
	for (size_t i = 0; i < m->n; i++) {
		uint64_t ino;
		char leaf[256];
		if (rt_walk(v, root, m->f[i].path, 0, 0, &ino, leaf)) {
			fprintf(stderr, "%s: %s missing: %s\n", what, m->f[i].path, cairn_errmsg());
			bad++;
			continue;
		}
		if (rt_file_equal(v, ino, &m->f[i])) {
			fprintf(stderr, "%s: %s differs\n", what, m->f[i].path);
			bad++;
		}
	}
	rt_count c = { 0 };
	rt_count_tree(v, root, &c);
	if (c.rc || c.files != m->n) {
		fprintf(stderr, "%s: %llu files in the tree, the model has %zu (rc %d)\n", what,
			(unsigned long long)c.files, m->n, c.rc);
		bad++;
	}
	return bad;
}

/* fsck with a report on stderr; the number of problems. */
static inline uint64_t rt_fsck(cairn_volume *v)
{
	cairn_fsck_result r;
	if (volume_fsck(v, 0, stderr, &r)) {
		fprintf(stderr, "fsck: %s\n", cairn_errmsg());
		return 1;
	}
	return r.problems;
}

#endif
