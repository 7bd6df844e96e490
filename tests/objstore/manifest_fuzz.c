/*
 * manifest_fuzz.c - the parser of the file:// store's multipart manifests
 * (objstore_file_manifest_parse, os_file.c): the layout written by the real
 * store against an independent encoder of the documented layout, a clear
 * error for each kind of bad manifest, and the fuzz entry point
 * (fuzz_manifest.c) replayed on seeds, on the corpus directories given as
 * arguments, and on thousands of random mutations (byte flips,
 * truncations, splices, and edits of the header and part fields with the
 * crc fixed up, so the checks behind the crc are reached).
 */
#include <dirent.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cairn/codec.h"
#include "cairn/runtime.h"
#include "os_file_int.h"
#include "t.h"

#define MIB (1024ULL * 1024ULL)
#define GIB (1024ULL * MIB)
#define ID "00112233445566778899aabbccddeeff"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void fix_crc(uint8_t *b, size_t len)
{
	if (len >= 4)
		le32(b + len - 4, cairn_crc32c(0, b, len - 4));
}

/* The layout documented at the top of os_file.c, written independently. */
static uint8_t *encode(const char *id, const char *key, const unsigned *nums,
		       const uint64_t *sizes, unsigned n, size_t *len)
{
	size_t klen = strlen(key);
	uint64_t total = 0;
	uint8_t *b;

	*len = 64 + klen + 16 * (size_t)n + 4;
	b = calloc(1, *len);
	REQUIRE(b);
	memcpy(b, "CAIRNMPU", 8);
	le32(b + 8, 1);
	le32(b + 12, n);
	le32(b + 24, (uint32_t)klen);
	memcpy(b + 32, id, 32);
	memcpy(b + 64, key, klen);
	for (unsigned i = 0; i < n; i++) {
		uint8_t *r = b + 64 + klen + 16 * (size_t)i;
		le32(r, nums[i]);
		le64(r + 8, sizes[i]);
		total += sizes[i];
	}
	le64(b + 16, total);
	fix_crc(b, *len);
	return b;
}

static uint8_t *slurp(const char *path, size_t *len)
{
	struct stat st;
	uint8_t *b;
	int fd = open(path, O_RDONLY);

	REQUIRE(fd >= 0 && fstat(fd, &st) == 0);
	b = malloc((size_t)st.st_size + 1);
	REQUIRE(b);
	REQUIRE(read(fd, b, (size_t)st.st_size) == st.st_size);
	close(fd);
	*len = (size_t)st.st_size;
	return b;
}

/* A manifest written by the store itself: 2 parts, the first of the
 * minimum size.  Returns its bytes; id gets the upload id. */
static uint8_t *store_manifest(const char *dir, const char *key, char *id,
			       size_t *len)
{
	char root[700], url[800], path[900];
	cairn_objstore *os;
	cairn_mpu_part parts[2];
	char *data = malloc(5 * MIB + 7);
	uint8_t *b, *want;
	size_t wlen;

	REQUIRE(data);
	t_fill(data, 5 * MIB + 7, 42);
	snprintf(root, sizeof root, "%s/store", dir);
	snprintf(url, sizeof url, "file://%s", root);
	REQUIRE_OK(objstore_open(url, NULL, &os));
	REQUIRE_OK(objstore_mpu_create(os, key, id));
	REQUIRE_OK(objstore_mpu_part(os, key, id, 3,
				     &(cairn_obj_src){.buf = data, .fd = -1,
						      .len = 5 * MIB},
				     &parts[0]));
	REQUIRE_OK(objstore_mpu_part(os, key, id, 9,
				     &(cairn_obj_src){.buf = data + 5 * MIB,
						      .fd = -1, .len = 7},
				     &parts[1]));
	REQUIRE_OK(objstore_mpu_complete(os, key, id, parts, 2));
	objstore_close(os);
	snprintf(path, sizeof path, "%s/mpu/%s/manifest", root, id);
	b = slurp(path, len);
	/* The store writes exactly the documented layout. */
	want = encode(id, key, (unsigned[]){3, 9},
		      (uint64_t[]){5 * MIB, 7}, 2, &wlen);
	CHECK(*len == wlen && memcmp(b, want, wlen) == 0);
	free(want);
	free(data);
	return b;
}

static void t_parse(const uint8_t *b, size_t len, const char *key)
{
	struct objstore_file_manifest m;

	CHECK_OK(objstore_file_manifest_parse(b, len, ID, key, &m));
	objstore_file_manifest_free(&m);
}

/* Each kind of bad manifest gets CAIRN_E_CORRUPT (or VERSION) and says
 * what is wrong. */
static void t_errors(void)
{
	struct objstore_file_manifest m;
	unsigned nums[3] = {1, 2, 5};
	uint64_t sizes[3] = {5 * MIB, 5 * MIB, 10};
	size_t len;
	uint8_t *good = encode(ID, "a/key", nums, sizes, 3, &len);
	uint8_t *b = malloc(len + 16);

	REQUIRE(b);
	t_parse(good, len, "a/key");
	CHECK_OK(objstore_file_manifest_parse(good, len, ID, NULL, &m));
	CHECK(m.n == 3 && m.total == 10 * MIB + 10 && m.parts &&
	      m.parts[2].number == 5 && m.parts[2].start == 10 * MIB &&
	      m.parts[2].size == 10 && !strcmp(m.id, ID));
	objstore_file_manifest_free(&m);
	CHECK(m.parts == NULL);

#define BAD(rc, needle)                                                   \
	do {                                                              \
		CHECK_RC(objstore_file_manifest_parse(b, len, ID, "a/key",  \
						      &m), rc);           \
		CHECK_MSG(needle);                                        \
		CHECK(m.parts == NULL);                                   \
		memcpy(b, good, len);                                     \
	} while (0)

	memcpy(b, good, len);
	b[0] = 'X';
	BAD(CAIRN_E_CORRUPT, "bad magic");
	b[20] ^= 1;
	BAD(CAIRN_E_CORRUPT, "checksum mismatch");
	le32(b + 8, 2);
	fix_crc(b, len);
	BAD(CAIRN_E_VERSION, "version 2");
	le32(b + 12, 0);
	fix_crc(b, len);
	BAD(CAIRN_E_CORRUPT, "part count out of range");
	le32(b + 12, 10001);
	fix_crc(b, len);
	BAD(CAIRN_E_CORRUPT, "part count out of range");
	le32(b + 12, 4);
	fix_crc(b, len);
	BAD(CAIRN_E_CORRUPT, "size does not match its part count");
	le32(b + 24, 0);
	fix_crc(b, len);
	BAD(CAIRN_E_CORRUPT, "key length out of range");
	le32(b + 24, 0xffffffffu);
	fix_crc(b, len);
	BAD(CAIRN_E_CORRUPT, "key length out of range");
	b[40] = 'f';
	fix_crc(b, len);
	BAD(CAIRN_E_CORRUPT, "upload id does not match");
	b[28] = 1;
	fix_crc(b, len);
	BAD(CAIRN_E_CORRUPT, "upload id does not match");
	b[64] = 'b';
	fix_crc(b, len);
	BAD(CAIRN_E_CORRUPT, "written for another key");
	le32(b + 64 + 5 + 16, 1); /* part 2 numbered 1 */
	fix_crc(b, len);
	BAD(CAIRN_E_CORRUPT, "part numbers out of order");
	le32(b + 64 + 5 + 4, 7); /* the zero field of part 1 */
	fix_crc(b, len);
	BAD(CAIRN_E_CORRUPT, "part numbers out of order");
	le32(b + 64 + 5 + 32, 10001);
	fix_crc(b, len);
	BAD(CAIRN_E_CORRUPT, "part numbers out of order");
	le64(b + 64 + 5 + 8, 5 * GIB + 1);
	fix_crc(b, len);
	BAD(CAIRN_E_CORRUPT, "larger than 5 GiB");
	le64(b + 16, 10 * MIB + 11);
	fix_crc(b, len);
	BAD(CAIRN_E_CORRUPT, "do not add up");
	/* a total that only wraps around to the sum */
	le64(b + 16, 10 * MIB + 10 + (1ULL << 63) * 2);
	le64(b + 64 + 5 + 40, UINT64_MAX - 10 * MIB + 11);
	fix_crc(b, len);
	BAD(CAIRN_E_CORRUPT, "larger than 5 GiB");
	CHECK_RC(objstore_file_manifest_parse(good, len - 1, ID, NULL, &m),
		 CAIRN_E_CORRUPT);
	CHECK_MSG("size does not match");
	CHECK_RC(objstore_file_manifest_parse(good, 50, ID, NULL, &m),
		 CAIRN_E_CORRUPT);
	CHECK_MSG("impossible size");
	CHECK_RC(objstore_file_manifest_parse(good, len, "nothex", NULL, &m),
		 CAIRN_E_INVAL);
	CHECK_MSG("not an upload id");
	CHECK(m.parts == NULL);
#undef BAD
	free(b);
	free(good);
}

/* 10000 parts of 5 GiB, the largest manifest: accepted, no overflow. */
static void t_largest(void)
{
	unsigned *nums = malloc(10000 * sizeof *nums);
	uint64_t *sizes = malloc(10000 * sizeof *sizes);
	struct objstore_file_manifest m;
	char key[1025];
	uint8_t *b;
	size_t len;

	REQUIRE(nums && sizes);
	memset(key, 'k', 1024);
	key[1024] = '\0';
	for (unsigned i = 0; i < 10000; i++) {
		nums[i] = i + 1;
		sizes[i] = 5 * GIB;
	}
	b = encode(ID, key, nums, sizes, 10000, &len);
	CHECK_OK(objstore_file_manifest_parse(b, len, ID, key, &m));
	CHECK(m.n == 10000 && m.total == 50000 * GIB &&
	      m.parts[9999].start == 49995 * GIB);
	objstore_file_manifest_free(&m);
	LLVMFuzzerTestOneInput(b, len);
	free(b);
	free(nums);
	free(sizes);
}

static size_t mutate(uint8_t *b, size_t len, size_t cap, uint64_t *s)
{
	uint64_t r = t_rand(s);
	size_t at = len ? (size_t)(t_rand(s) % len) : 0;

	switch (r % 6) {
	case 0: /* flip bits */
		for (int i = 0, n = 1 + (int)(r >> 8) % 4; i < n && len; i++)
			b[t_rand(s) % len] ^= (uint8_t)(1u << (t_rand(s) % 8));
		break;
	case 1: /* truncate */
		return at;
	case 2: /* duplicate a range (splice) */
		if (len && len < cap) {
			size_t n = (size_t)(t_rand(s) % (cap - len));
			if (n > len - at)
				n = len - at;
			memmove(b + at + n, b + at, len - at);
			return len + n;
		}
		break;
	case 3: /* an interesting value into a header field, crc fixed */
	case 4: { /* ... into a part record, crc fixed */
		static const uint64_t vals[] = {0, 1, 2, 15, 16, 0x3ff, 0x400,
						0x401, 0x2710, 0x2711, 0xffff,
						0x7fffffff, 0xffffffff,
						5ULL << 30, (5ULL << 30) + 1,
						UINT64_MAX};
		uint64_t v = vals[t_rand(s) % 16];
		size_t w = (size_t)1 << (t_rand(s) % 4);
		size_t pos = r % 6 == 3 ? 8 + (size_t)(t_rand(s) % 24)
					: 64 + (size_t)(t_rand(s) % 64);

		if (pos + w > len)
			break;
		for (size_t i = 0; i < w; i++)
			b[pos + i] = (uint8_t)(v >> (8 * i));
		fix_crc(b, len);
		break;
	}
	default: /* random bytes over a range */
		for (size_t i = at, n = 0; i < len && n < 16; i++, n++)
			b[i] = (uint8_t)t_rand(s);
		break;
	}
	return len;
}

static void replay_dir(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int n = 0;

	if (!d) {
		T_FAIL_("cannot open corpus %s", dir);
		return;
	}
	while ((de = readdir(d))) {
		char path[1200];
		size_t len;
		uint8_t *buf;

		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
		buf = slurp(path, &len);
		LLVMFuzzerTestOneInput(buf, len);
		free(buf);
		n++;
	}
	closedir(d);
	printf("replayed %d corpus files from %s\n", n, dir);
	CHECK(n > 0);
}

int main(int argc, char **argv)
{
	enum { NSEEDS = 4 };
	uint64_t seed = t_seed(), s = seed;
	const char *dir = t_tmpdir("objstore_manifest_fuzz");
	uint64_t iters = t_scaled(20000), accepted = 0;
	uint8_t *seeds[NSEEDS];
	size_t lens[NSEEDS];
	char id[CAIRN_UPLOAD_ID_MAX];

	seeds[0] = store_manifest(dir, "dir/obj", id, &lens[0]);
	seeds[1] = encode(ID, "k", (unsigned[]){1}, (uint64_t[]){0}, 1,
			  &lens[1]);
	seeds[2] = encode(ID, "a/b/c", (unsigned[]){2, 3, 10000},
			  (uint64_t[]){5 * MIB, 0, 1}, 3, &lens[2]);
	seeds[3] = encode(ID, "x/y", (unsigned[]){1, 2, 3, 4, 5, 6},
			  (uint64_t[]){5 * MIB, 6 * MIB, 5 * GIB, 5 * MIB,
				       5 * MIB, 3},
			  6, &lens[3]);
	t_parse(seeds[1], lens[1], "k");
	t_parse(seeds[2], lens[2], "a/b/c");
	t_parse(seeds[3], lens[3], "x/y");
	for (int i = 0; i < NSEEDS; i++) {
		LLVMFuzzerTestOneInput(seeds[i], lens[i]);
		/* CAIRN_MANIFEST_FUZZ_DUMP=dir writes the seeds out: how the
		 * checked-in corpus (tests/objstore/corpus-manifest) was
		 * made. */
		if (getenv("CAIRN_MANIFEST_FUZZ_DUMP")) {
			char p[700];
			int fd;
			snprintf(p, sizeof p, "%s/seed-%d.man",
				 getenv("CAIRN_MANIFEST_FUZZ_DUMP"), i);
			fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
			REQUIRE(fd >= 0 &&
				write(fd, seeds[i], lens[i]) == (ssize_t)lens[i]);
			close(fd);
		}
	}
	t_errors();
	t_largest();
	for (int i = 1; i < argc; i++)
		replay_dir(argv[i]);

	for (uint64_t it = 0; it < iters; it++) {
		int k = (int)(t_rand(&s) % NSEEDS);
		size_t cap = lens[k] * 2 + 64, len = lens[k];
		uint8_t *b = malloc(cap);
		struct objstore_file_manifest m;
		const char *mid = k == 0 ? id : ID;

		REQUIRE(b);
		memcpy(b, seeds[k], len);
		for (int j = 0, nm = 1 + (int)(t_rand(&s) % 3); j < nm; j++)
			len = mutate(b, len, cap, &s);
		LLVMFuzzerTestOneInput(b, len);
		if (objstore_file_manifest_parse(b, len, mid, NULL, &m) == 0) {
			accepted++;
			objstore_file_manifest_free(&m);
		}
		free(b);
	}
	printf("%llu mutations, %llu still valid\n", (unsigned long long)iters,
	       (unsigned long long)accepted);
	/* Most mutations must be rejected: some survive (a size moved from
	 * one part to another...), a parser that takes anything does not. */
	CHECK(accepted < iters / 2);
	for (int i = 0; i < NSEEDS; i++)
		free(seeds[i]);
	if (t_failures_ == 0)
		t_rmtree(dir);
	return t_done();
}
