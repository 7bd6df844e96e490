/*
 * s3_xml_fuzz.c - libFuzzer target for the S3 XML parsers (built with
 * -DCAIRN_FUZZ=ON and clang).  Seed corpus: tests/s3/xml_corpus.
 *
 *   ./s3_xml_fuzz -max_total_time=60 ../tests/s3/xml_corpus
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "s3_xml_all.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	(void)s3_xml_all((const char *)data, size);
	return 0;
}
