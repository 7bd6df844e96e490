/*
 * test_large_s3.c - the large-file round trip of large_rt.h on s3rver (the
 * patched test server of tests/s3, started by s3_harness.h; skipped with
 * the reason when it is not installed): multipart uploads from the spool,
 * parallel ranged GETs, byte for byte.
 */
#include "large_rt.h"
#include "s3_harness.h"

int main(void)
{
	s3h h;
	cairn_objstore_opts so;
	cairn_objstore *os;

	if (!s3h_installed())
		t_skip("s3rver is not installed (tests/s3/server/install.sh)");
	memset(&h, 0, sizeof h);
	memset(&so, 0, sizeof so);
	s3h_start(&h, 0);
	s3h_env(&h, h.port);
	REQUIRE_OK(objstore_open("s3://" S3H_BUCKET "/large", &so, &os));
	lt_roundtrip("large_s3", os, 1);
	objstore_close(os);
	s3h_stop(&h);
	return t_done();
}
