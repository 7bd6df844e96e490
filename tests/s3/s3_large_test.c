/*
 * s3_large_test.c - a large multipart upload round trip, byte for byte:
 * 256 MiB from a local file, parts uploaded in parallel through the store's
 * worker pool, read back with parallel ranged GETs and compared.  Then the
 * same object read through a prefix-less store as one stream of ranges of
 * odd sizes.  CAIRN_TEST_SCALE scales the size (at least 16 MiB).
 */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>

#include "cairn/runtime.h"
#include "s3_harness.h"

#define MIB (1024ull * 1024ull)
#define BLOCK MIB

/* Block b of the object: deterministic, so it can be regenerated. */
static void block_fill(char *p, uint64_t b, uint64_t seed)
{
	t_fill(p, BLOCK, seed ^ (b * 0x9e3779b97f4a7c15ull));
}

int main(void)
{
	uint64_t seed = t_seed();
	uint64_t total = t_scaled(256) * MIB, psz, nparts, got;
	const char *dir = t_tmpdir("s3_large");
	char path[700], upid[CAIRN_UPLOAD_ID_MAX];
	char *blk = malloc(BLOCK), *back;
	cairn_objstore *os = NULL;
	cairn_objstore_opts o = {0};
	cairn_obj_batch *b;
	cairn_obj_req *reqs;
	cairn_mpu_part *parts;
	cairn_obj_info info;
	int fd;
	s3h h;

	if (total < 16 * MIB)
		total = 16 * MIB;
	REQUIRE(blk != NULL);
	snprintf(path, sizeof path, "%s/big.bin", dir);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	REQUIRE(fd >= 0);
	for (uint64_t i = 0; i < total / BLOCK; i++) {
		block_fill(blk, i, seed);
		REQUIRE(pwrite(fd, blk, BLOCK, (off_t)(i * BLOCK)) == (ssize_t)BLOCK);
	}

	s3h_start(&h, 0);
	s3h_env(&h, h.port);
	o.max_inflight = 4;
	REQUIRE_OK(objstore_open("s3://" S3H_BUCKET "/large", &o, &os));

	psz = objstore_part_size(os, total, 1, 32 * MIB);
	CHECK(psz == 32 * MIB);
	nparts = (total + psz - 1) / psz;
	printf("%llu MiB in %llu parts of %llu MiB\n",
	       (unsigned long long)(total / MIB), (unsigned long long)nparts,
	       (unsigned long long)(psz / MIB));
	reqs = calloc(nparts, sizeof *reqs);
	parts = calloc(nparts, sizeof *parts);
	back = malloc(total);
	REQUIRE(reqs && parts && back);

	REQUIRE_OK(objstore_mpu_create(os, "ckpt/rank0", upid));
	REQUIRE_OK(objstore_batch_new(os, &b));
	for (uint64_t i = 0; i < nparts; i++) {
		uint64_t off = i * psz;
		reqs[i].op = OBJ_OP_MPU_PART;
		reqs[i].key = "ckpt/rank0";
		reqs[i].upload_id = upid;
		reqs[i].part_no = (unsigned)i + 1;
		reqs[i].src = (cairn_obj_src){.buf = NULL, .fd = fd, .off = off,
					      .len = total - off < psz ? total - off : psz};
		REQUIRE_OK(objstore_submit(b, &reqs[i]));
	}
	CHECK_OK(objstore_batch_wait(b));
	for (uint64_t i = 0; i < nparts; i++)
		parts[i] = reqs[i].part;
	CHECK_OK(objstore_mpu_complete(os, "ckpt/rank0", upid, parts, nparts));
	CHECK_OK(objstore_head(os, "ckpt/rank0", &info));
	CHECK(info.size == total);

	/* Parallel ranged GETs, 16 MiB each, into one buffer. */
	memset(reqs, 0, nparts * sizeof *reqs);
	{
		uint64_t n = total / (16 * MIB);
		cairn_obj_req *g = calloc(n, sizeof *g);
		REQUIRE(g != NULL);
		for (uint64_t i = 0; i < n; i++) {
			g[i].op = OBJ_OP_GET;
			g[i].key = "ckpt/rank0";
			g[i].off = i * 16 * MIB;
			g[i].len = 16 * MIB;
			g[i].buf = back + i * 16 * MIB;
			REQUIRE_OK(objstore_submit(b, &g[i]));
		}
		CHECK_OK(objstore_batch_wait(b));
		for (uint64_t i = 0; i < n; i++)
			CHECK(g[i].got == 16 * MIB);
		free(g);
	}
	for (uint64_t i = 0; i < total / BLOCK; i++) {
		block_fill(blk, i, seed);
		if (memcmp(blk, back + i * BLOCK, BLOCK)) {
			CHECK(!"block differs");
			printf("block %llu differs\n", (unsigned long long)i);
			break;
		}
	}
	objstore_batch_free(b);

	/* Odd-sized sequential ranges across part boundaries. */
	memset(back, 0, total);
	for (uint64_t off = 0, step = 7 * MIB + 12345; off < total; off += step) {
		uint64_t len = total - off < step ? total - off : step;
		CHECK_OK(objstore_get(os, "ckpt/rank0", off, back + off, len, &got));
		CHECK(got == len);
	}
	for (uint64_t i = 0; i < total / BLOCK; i++) {
		block_fill(blk, i, seed);
		if (memcmp(blk, back + i * BLOCK, BLOCK)) {
			CHECK(!"block differs (sequential ranges)");
			break;
		}
	}
	CHECK_OK(objstore_delete(os, "ckpt/rank0"));
	objstore_close(os);
	s3h_stop(&h);
	close(fd);
	t_rmtree(dir);
	free(blk);
	free(back);
	free(reqs);
	free(parts);
	return t_done();
}
