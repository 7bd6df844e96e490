/*
 * fuzz_logobj.c - the libFuzzer entry point for the log object decoder
 * (meta_logobj_decode, meta_ship.c), which reads bytes from the object
 * store.
 *
 * Built as fuzz_logobj with -DCAIRN_FUZZ=ON (clang, -fsanitize=fuzzer):
 *     build-fuzz/tests/meta/fuzz_logobj -max_len=4096 tests/meta/corpus-logobj/
 * and linked into meta_ship, which replays the seed corpus and random
 * mutations through the same function in every normal test run.
 *
 * Each input is decoded as it is and once more with its crc32c (header
 * bytes 76..79) fixed up, so that mutations reach the checks behind the
 * checksum (counts, LSNs, record framing, each record's own checks).
 * Besides "no crash, no sanitizer report", an accepted object must have
 * handed out exactly nrec records with LSNs first..last, each of which
 * meta_wal_decode accepts, and a refused one none; a violation calls
 * abort(): this is a test harness.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cairn/codec.h"
#include "cairn/meta.h"
#include "cairn/err.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct st { uint64_t next; uint32_t n; } st;

static int cb(uint64_t lsn, const void *rec, size_t len, void *arg)
{
	st *s = arg;
	uint64_t rl;
	if (lsn != s->next || meta_wal_decode(rec, len, &rl, NULL, NULL) || rl != lsn)
		abort();
	s->next++;
	s->n++;
	return 0;
}

static void one(const uint8_t *p, size_t len)
{
	meta_logobj_hdr h;
	memset(&h, 0, sizeof h);
	/* cb must see LSNs from h.first, which is unknown before the call:
	 * decode without cb first (it must agree), then with cb */
	int rc = meta_logobj_decode(p, len, &h, NULL, NULL);
	st s = { h.first, 0 };
	int rc2 = meta_logobj_decode(p, len, NULL, cb, &s);
	if (rc != rc2)
		abort();
	if (rc) {
		if (s.n)
			abort();
		return;
	}
	if (h.nrec == 0 || h.last < h.first || h.last - h.first + 1 != h.nrec || s.n != h.nrec)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	one(data, size);
	if (size >= 80 && size <= (1u << 20)) {
		uint8_t *c = malloc(size);
		if (!c)
			return 0;
		memcpy(c, data, size);
		uint32_t crc = cairn_crc32c(cairn_crc32c(0, c, 76), c + 80, size - 80);
		for (int i = 0; i < 4; i++)
			c[76 + i] = (uint8_t)(crc >> (8 * i));
		one(c, size);
		free(c);
	}
	cairn_err_clear();
	return 0;
}
