/*
 * test_large_roundtrip.c - large files on the file:// store: the round trip
 * of large_rt.h (sizes from empty to 128 MiB around the threshold, part and
 * chunk boundaries; 256 MiB at CAIRN_TEST_SCALE >= 2, 3 GiB at >= 8).
 */
#include "large_rt.h"

int main(void)
{
	lt_roundtrip("large_roundtrip", NULL, 0);
	return t_done();
}
