/*
 * seg_test.h - helpers shared by the segments/ tests: chunk contents of a
 * chosen compressibility, and building a whole segment in memory with the
 * real staging writer.
 */
#ifndef CAIRN_SEG_TEST_H
#define CAIRN_SEG_TEST_H

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cairn/segment.h"
#include "t.h"

/* Fill buf: kind 0 random (incompressible), 1 text-like (compressible),
 * 2 zeros. */
static inline void st_chunk(uint8_t *buf, size_t len, int kind, uint64_t seed)
{
	static const char *words[] = {"tensor ", "epoch ", "gradient ",
				      "shard ", "loss=0.25 ", "{\"id\": 17} "};
	uint64_t s = seed;

	if (kind == 0) {
		t_fill(buf, len, seed);
	} else if (kind == 1) {
		size_t i = 0;
		while (i < len) {
			const char *w = words[t_rand(&s) % 6];
			size_t n = strlen(w);
			if (n > len - i)
				n = len - i;
			memcpy(buf + i, w, n);
			i += n;
		}
	} else {
		memset(buf, 0, len);
	}
}

static inline void st_id(seg_id *id, uint64_t epoch, uint64_t seq)
{
	memset(id, 0, sizeof *id);
	for (int i = 0; i < 16; i++)
		id->uuid[i] = (uint8_t)(0x10 + i * 7);
	id->epoch = epoch;
	id->seq = seq;
	id->kind = SEG_KIND_PACKED;
}

/* Read a whole local file into a malloc'd buffer. */
static inline uint8_t *st_slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf;
	long n;

	REQUIRE(f != NULL);
	REQUIRE(fseek(f, 0, SEEK_END) == 0);
	n = ftell(f);
	REQUIRE(n >= 0);
	rewind(f);
	buf = malloc((size_t)n + 1);
	REQUIRE(buf != NULL);
	REQUIRE(fread(buf, 1, (size_t)n, f) == (size_t)n);
	fclose(f);
	*len = (size_t)n;
	return buf;
}

static inline void st_spit(const char *path, const void *buf, size_t len)
{
	FILE *f = fopen(path, "wb");

	REQUIRE(f != NULL);
	REQUIRE(fwrite(buf, 1, len, f) == len);
	REQUIRE(fclose(f) == 0);
}

#endif
