/*
 * os_file_int.h - internals of the file:// store (os_file.c) that its tests
 * and its fuzzer reach: the parser of a multipart manifest
 * (mpu/<id>/manifest, layout in os_file.c).  Private to core/runtime and
 * tests/objstore.
 *
 * The parser trusts nothing in the bytes: on success every field was
 * checked (magic, version, sizes, crc, upload id, key, part numbers strictly
 * ascending in 1..10000, part sizes <= 5 GiB adding up to the total), so
 * parts[i].start + parts[i].size <= total for every part.
 */
#ifndef CAIRN_OS_FILE_INT_H
#define CAIRN_OS_FILE_INT_H

#include <stddef.h>
#include <stdint.h>

#define OBJSTORE_FILE_ID_LEN 32 /* hex digits of an upload id */

struct objstore_file_man_part {
	unsigned number;
	uint64_t size;
	uint64_t start; /* offset of the part in the object */
};

struct objstore_file_manifest {
	char id[OBJSTORE_FILE_ID_LEN + 1];
	unsigned n;
	uint64_t total;
	uint32_t crc;
	struct objstore_file_man_part *parts; /* n of them */
};

/* Parse and validate the len bytes of the manifest of upload id (32
 * lower-case hex digits); key (may be NULL) must be the key it was written
 * for.  On failure *m holds nothing to free.
 * Errors: CAIRN_E_CORRUPT (context says what is wrong), CAIRN_E_VERSION,
 * CAIRN_E_INVAL (id malformed), CAIRN_E_NOMEM. */
int objstore_file_manifest_parse(const void *buf, size_t len, const char *id,
				 const char *key,
				 struct objstore_file_manifest *m);
void objstore_file_manifest_free(struct objstore_file_manifest *m);

#endif
