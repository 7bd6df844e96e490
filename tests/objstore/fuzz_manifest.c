/*
 * fuzz_manifest.c - the libFuzzer entry point for the parser of the file://
 * store's multipart manifests (objstore_file_manifest_parse, os_file.c).
 *
 * Built as fuzz_manifest with -DCAIRN_FUZZ=ON (clang, -fsanitize=fuzzer):
 *     build/tests/objstore/fuzz_manifest -max_len=2048 \
 *         tests/objstore/corpus-manifest/
 * and linked into objstore_manifest_fuzz, which replays seeds, the corpus
 * and random mutations through the same function in every normal test run.
 *
 * Each input is parsed as it is and once more with its trailing crc32c
 * fixed up, so that mutations reach the checks behind the checksum (part
 * count, key length, part numbers and sizes).  The upload id the parser is
 * given is the one the bytes name (offset 32) when those are 32 hex digits,
 * for the same reason.  Besides "no crash, no sanitizer report", an
 * accepted manifest must satisfy what the reader (man_read) relies on; a
 * violation calls abort(): this is a test harness.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cairn/codec.h"
#include "cairn/err.h"
#include "os_file_int.h"

#define MAN_MAX_SIZE (64 + 1024 + 16 * 10000 + 4)
#define PART_MAX (5ULL << 30)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* What man_read needs: parts ascending in 1..10000, sizes <= 5 GiB, each
 * starting where the previous one ends, the last ending at the total. */
static void check_accepted(const struct objstore_file_manifest *m)
{
	uint64_t at = 0;

	if (m->n < 1 || m->n > 10000 || !m->parts)
		abort();
	for (unsigned i = 0; i < m->n; i++) {
		const struct objstore_file_man_part *p = &m->parts[i];

		if (p->number < 1 || p->number > 10000 ||
		    (i > 0 && p->number <= m->parts[i - 1].number) ||
		    p->size > PART_MAX || p->start != at ||
		    p->size > m->total - p->start)
			abort();
		at += p->size;
	}
	if (at != m->total)
		abort();
}

static void parse_one(const uint8_t *data, size_t size, const char *id)
{
	struct objstore_file_manifest m;
	char key[1025];
	size_t klen;
	int rc;

	rc = objstore_file_manifest_parse(data, size, id, NULL, &m);
	if (rc) {
		if (m.parts || (rc != CAIRN_E_CORRUPT && rc != CAIRN_E_VERSION &&
				rc != CAIRN_E_NOMEM))
			abort();
		return;
	}
	check_accepted(&m);
	objstore_file_manifest_free(&m);
	if (m.parts)
		abort();

	/* Accepted: the key it names must match, and another must not. */
	klen = (size_t)data[24] | (size_t)data[25] << 8 |
	       (size_t)data[26] << 16 | (size_t)data[27] << 24;
	if (klen < 1 || klen > 1024 || memchr(data + 64, '\0', klen))
		return;
	memcpy(key, data + 64, klen);
	key[klen] = '\0';
	if (objstore_file_manifest_parse(data, size, id, key, &m) != 0)
		abort();
	objstore_file_manifest_free(&m);
	key[klen - 1] ^= 1;
	if (key[klen - 1] &&
	    objstore_file_manifest_parse(data, size, id, key, &m) !=
		    CAIRN_E_CORRUPT)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char id[OBJSTORE_FILE_ID_LEN + 1] = "0123456789abcdef0123456789abcdef";
	uint8_t *fixed;
	uint32_t crc;
	int own = size >= 64;

	for (int i = 0; own && i < OBJSTORE_FILE_ID_LEN; i++) {
		uint8_t c = data[32 + i];
		own = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
	}
	if (own) {
		memcpy(id, data + 32, OBJSTORE_FILE_ID_LEN);
		id[OBJSTORE_FILE_ID_LEN] = '\0';
	}
	parse_one(data, size, id);

	if (size < 8 || size > MAN_MAX_SIZE)
		return 0;
	fixed = malloc(size);
	if (!fixed)
		return 0;
	memcpy(fixed, data, size);
	crc = cairn_crc32c(0, fixed, size - 4);
	for (int i = 0; i < 4; i++)
		fixed[size - 4 + i] = (uint8_t)(crc >> (8 * i));
	parse_one(fixed, size, id);
	free(fixed);
	return 0;
}
