/*
 * vol_test.h - helpers shared by the volume tests: a fresh formatted volume
 * in a scratch directory, small file helpers over the volume API.
 */
#ifndef CAIRN_VOL_TEST_H
#define CAIRN_VOL_TEST_H

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cairn/volume.h"
#include "t.h"

/* Small sizes so that tests seal, upload and read back many segments. */
static inline void vt_opts(cairn_volume_opts *o)
{
	memset(o, 0, sizeof *o);
	o->seal_age_ms = 200;
	o->commit_interval_ms = 50;
	o->upload_wait_ms = 5000;
	o->read_window = 64 << 10;
	o->inode_dirty_max = 256 << 10;
	o->pending_max = 1 << 20;
}

static inline void vt_format(const char *dir, uint64_t segsize)
{
	cairn_format_opts fo = { 0 };
	fo.segment_size = segsize ? segsize : (1u << 20);
	if (volume_format(dir, &fo) != 0) {
		fprintf(stderr, "format %s: %s\n", dir, cairn_errmsg());
		exit(1);
	}
}

/* Create (or open, if it exists) /name and return its inode. */
static inline uint64_t vt_file(cairn_volume *v, const char *name)
{
	cairn_attr a;
	int rc = volume_lookup(v, CAIRN_ROOT_INO, name, &a);
	if (rc == CAIRN_E_NOTFOUND)
		rc = volume_create(v, CAIRN_ROOT_INO, name, 0100644, 0, 0, &a);
	if (rc) {
		fprintf(stderr, "create %s: %s\n", name, cairn_errmsg());
		exit(1);
	}
	return a.ino;
}

static inline int vt_write(cairn_volume *v, uint64_t ino, const void *buf,
			   size_t len, uint64_t off)
{
	cairn_file *f;
	int rc = volume_file_open(v, ino, &f);
	if (rc)
		return rc;
	rc = volume_file_write(f, buf, len, off);
	int r = volume_file_close(f);
	return rc ? rc : r;
}

static inline int vt_read(cairn_volume *v, uint64_t ino, void *buf,
			  size_t len, uint64_t off, size_t *got)
{
	cairn_file *f;
	int rc = volume_file_open(v, ino, &f);
	if (rc)
		return rc;
	rc = volume_file_read(f, buf, len, off, got);
	volume_file_close(f);
	return rc;
}

#endif
