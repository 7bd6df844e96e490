/*
 * fuzz_segment.c - the libFuzzer entry point for every parser of segment
 * bytes: header, footer, index, frame header, frame decode, whole-object
 * verification, and keys.
 *
 * Built as fuzz_segment with -DCAIRN_FUZZ=ON (clang, -fsanitize=fuzzer):
 *     build/tests/segments/fuzz_segment -max_len=4096 corpus/
 * and linked into test_seg_fuzz, which replays seeds and random mutations
 * through the same function in every normal test run.
 *
 * Besides "no crash, no sanitizer report", it checks that the parsers agree
 * with one another: a buffer seg_verify_buf accepts must also pass the
 * volume's path (footer, index, each frame) with the lengths the index
 * states.  A disagreement calls abort(): this is a test harness.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cairn/segment.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* libFuzzer calls this once: checksum mismatches are logged, and a log
 * line per input would slow the fuzzer down to the speed of stderr. */
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	return cairn_log_set_file("/dev/null") ? 1 : 0;
}

/* The volume's read path over an object held in memory.  Returns 0 when
 * every frame decoded. */
static int fuzz_read_path(const uint8_t *data, size_t size)
{
	seg_footer f;
	seg_index *ix = NULL;
	uint8_t *dst = NULL;
	int rc;

	if (size < SEG_FOOTER_SIZE)
		return CAIRN_E_CORRUPT;
	rc = seg_footer_parse("fuzz", data, size, size, NULL, &f);
	if (rc)
		return rc;
	/* The footer promised its index lies inside the buffer. */
	if (f.index_off + f.index_len > size)
		abort();
	rc = seg_index_parse("fuzz", &f, data + f.index_off, f.index_len, &ix);
	if (rc)
		return rc;
	for (size_t i = 0; i < seg_index_count(ix); i++) {
		seg_frame e;
		size_t got = 0;

		if (seg_index_get(ix, i, &e) != 0)
			abort();
		/* The index promised the frame lies inside the data area. */
		if (e.off < SEG_HEADER_SIZE ||
		    e.off + seg_frame_span(&e) > f.index_off)
			abort();
		dst = malloc(e.raw_len ? e.raw_len : 1);
		if (!dst)
			abort();
		rc = seg_frame_decode("fuzz", &e, data + e.off,
				      seg_frame_span(&e), dst, e.raw_len, &got);
		if (rc == 0 && got != e.raw_len)
			abort();
		free(dst);
		if (rc)
			break;
	}
	seg_index_free(ix);
	return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	seg_id id;
	seg_frame fr;
	char key[200];
	uint8_t *dst;
	size_t got = 0;
	int whole, path;

	whole = seg_verify_buf("fuzz", data, size, NULL);
	path = fuzz_read_path(data, size);
	if (whole == 0 && path != 0)
		abort();
	(void)seg_header_parse("fuzz", data, size, NULL, &id);

	/* The buffer as one frame fetched by a ranged GET. */
	if (seg_frame_hdr_parse("fuzz", data, size, &fr) == 0) {
		if (fr.raw_len > SEG_FRAME_MAX_RAW)
			abort();
		dst = malloc(fr.raw_len ? fr.raw_len : 1);
		if (!dst)
			abort();
		if (seg_frame_decode("fuzz", NULL, data, size, dst, fr.raw_len,
				     &got) == 0 && got != fr.raw_len)
			abort();
		free(dst);
	}

	/* The buffer as a key. */
	if (size < sizeof key) {
		memcpy(key, data, size);
		key[size] = '\0';
		if (seg_key_parse(key, &id) == 0) {
			char back[SEG_KEY_MAX];
			if (seg_key_format(&id, back, sizeof back) != 0 ||
			    strcmp(back, key) != 0)
				abort();
		}
	}
	return 0;
}
