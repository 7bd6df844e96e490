/*
 * s3_xml_test.c - the S3 XML parsers: values of well-formed answers, and a
 * replay of the corpus in tests/s3/xml_corpus (argv[1]) through every
 * parser: each "bad-*" document must be refused by all of them with an
 * error (never a crash, never a partial result), each "good-*" document
 * accepted by at least one.  The same corpus seeds the libFuzzer target.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "t.h"
#include "cairn/err.h"
#include "s3_xml_all.h"

static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	long n;

	REQUIRE(f != NULL);
	REQUIRE(fseek(f, 0, SEEK_END) == 0);
	n = ftell(f);
	REQUIRE(n >= 0);
	rewind(f);
	buf = malloc((size_t)n + 1);
	REQUIRE(buf != NULL);
	REQUIRE(fread(buf, 1, (size_t)n, f) == (size_t)n);
	fclose(f);
	*len = (size_t)n;
	return buf;
}

static char *corpus_file(const char *dir, const char *name, size_t *len)
{
	char path[1024];

	snprintf(path, sizeof path, "%s/%s", dir, name);
	return slurp(path, len);
}

int main(int argc, char **argv)
{
	const char *dir = argc > 1 ? argv[1] : "xml_corpus";
	s3_xml_error e;
	cairn_obj_list l;
	char upid[CAIRN_UPLOAD_ID_MAX];
	size_t len;
	char *b;
	int is_err;

	b = corpus_file(dir, "good-list.xml", &len);
	REQUIRE_OK(s3_xml_parse_list(b, len, "p/", 1000, &l));
	CHECK(l.n == 2);
	if (l.n == 2) {
		CHECK(!strcmp(l.v[0].key, "a&b"));
		CHECK(l.v[0].size == 434234);
		CHECK(l.v[0].mtime == 1255369830);
		CHECK(!strcmp(l.v[1].key, "c") && l.v[1].size == 0);
	}
	CHECK(l.next && !strcmp(l.next, "1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM="));
	for (size_t i = 0; i < l.n; i++)
		free(l.v[i].key);
	free(l.v);
	free(l.next);
	/* max_entries is enforced. */
	CHECK_RC(s3_xml_parse_list(b, len, "p/", 1, &l), CAIRN_E_CORRUPT);
	CHECK(l.v == NULL && l.n == 0);
	free(b);

	b = corpus_file(dir, "good-error.xml", &len);
	REQUIRE_OK(s3_xml_parse_error(b, len, &e));
	CHECK(!strcmp(e.code, "NoSuchKey") && !strcmp(e.key, "p/a"));
	free(b);

	b = corpus_file(dir, "good-upload-id.xml", &len);
	REQUIRE_OK(s3_xml_parse_upload_id(b, len, upid));
	CHECK(!strcmp(upid, "VXBsb2FkIElE"));
	free(b);

	b = corpus_file(dir, "good-complete.xml", &len);
	CHECK_OK(s3_xml_parse_complete(b, len, &is_err, &e));
	CHECK(!is_err);
	free(b);
	b = corpus_file(dir, "good-complete-error.xml", &len);
	CHECK_OK(s3_xml_parse_complete(b, len, &is_err, &e));
	CHECK(is_err && !strcmp(e.code, "InternalError"));
	free(b);

	b = corpus_file(dir, "good-delete.xml", &len);
	{
		const char *keys[] = {"a", "b"};
		int rcs[2] = {0, 0};
		CHECK_OK(s3_xml_parse_delete(b, len, "p/", keys, 2, rcs));
		CHECK(rcs[0] == 0 && rcs[1] == CAIRN_E_PERM);
	}
	free(b);

	/* Messages say what was wrong. */
	b = corpus_file(dir, "bad-doctype-entities.xml", &len);
	CHECK_RC(s3_xml_parse_list(b, len, "", 1000, &l), CAIRN_E_CORRUPT);
	CHECK_MSG("DOCTYPE not allowed");
	free(b);
	b = corpus_file(dir, "bad-list-unclosed.xml", &len);
	CHECK_RC(s3_xml_parse_list(b, len, "p/", 1000, &l), CAIRN_E_CORRUPT);
	CHECK_MSG("not well-formed");
	free(b);
	b = corpus_file(dir, "bad-list-unsorted.xml", &len);
	CHECK_RC(s3_xml_parse_list(b, len, "p/", 1000, &l), CAIRN_E_CORRUPT);
	CHECK_MSG("not sorted");
	free(b);

	/* The corpus replay. */
	{
		DIR *d = opendir(dir);
		struct dirent *de;
		int files = 0;

		REQUIRE(d != NULL);
		while ((de = readdir(d))) {
			int ok;
			if (de->d_name[0] == '.')
				continue;
			b = corpus_file(dir, de->d_name, &len);
			ok = s3_xml_all(b, len);
			if (!strncmp(de->d_name, "bad-", 4)) {
				CHECK(ok == 0);
				if (ok)
					printf("accepted: %s\n", de->d_name);
			} else {
				CHECK(ok > 0);
				if (!ok)
					printf("refused: %s\n", de->d_name);
			}
			/* Every prefix of a document (a cut-off answer) must
			 * be handled without a crash or a leak. */
			for (size_t cut = 0; cut < len; cut += 1 + len / 64)
				(void)s3_xml_all(b, cut);
			free(b);
			files++;
		}
		closedir(d);
		CHECK(files >= 20);
		printf("%d corpus files replayed\n", files);
	}
	return t_done();
}
