/*
 * ckpt_chunks.c - print the content-defined chunks of a file as the
 * volume's stream path cuts them (seg_cdc_next, default options: what a
 * large file saved by `cairn ckpt save` is stored as), one "offset length"
 * line each.  ckpt_incr.sh uses it to change exactly 10% of the chunks.
 *
 *   ckpt_chunks FILE
 */
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cairn/segment.h"

int main(int argc, char **argv)
{
	seg_stream_opts o;
	struct stat st;
	const unsigned char *p;
	uint64_t off = 0;
	int fd;

	if (argc != 2) {
		fprintf(stderr, "usage: ckpt_chunks FILE\n");
		return 2;
	}
	memset(&o, 0, sizeof o);
	if (seg_stream_opts_check(&o)) {
		fprintf(stderr, "ckpt_chunks: default stream options refused\n");
		return 1;
	}
	fd = open(argv[1], O_RDONLY);
	if (fd < 0 || fstat(fd, &st) != 0) {
		perror(argv[1]);
		return 1;
	}
	if (st.st_size == 0)
		return 0;
	p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	if (p == MAP_FAILED) {
		perror("mmap");
		return 1;
	}
	while (off < (uint64_t)st.st_size) {
		size_t n = seg_cdc_next(&o, p + off, (size_t)((uint64_t)st.st_size - off));
		if (n == 0) {
			fprintf(stderr, "ckpt_chunks: empty chunk at %" PRIu64 "\n", off);
			return 1;
		}
		printf("%" PRIu64 " %zu\n", off, n);
		off += n;
	}
	munmap((void *)p, (size_t)st.st_size);
	close(fd);
	return 0;
}
