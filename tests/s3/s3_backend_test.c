/*
 * s3_backend_test.c - the s3:// backend through the public object-store API
 * against s3rver on loopback: every operation (put, ranged get, head,
 * delete, batch delete, paged listing past 1,000 keys, multipart with
 * parallel parts, abort), sources in memory and in files, awkward keys,
 * and the one-line errors a user acts on: plain http refused, missing
 * bucket, unknown access key, wrong secret key, unreachable endpoint,
 * skewed clock, missing key - none of which may show a secret.  Every
 * request is signature-checked by the patched server, so awkward keys
 * also test the signer's URI encoding end to end.
 */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>

#include "cairn/runtime.h"
#include "objstore_int.h"
#include "s3_harness.h"
#include "s3_int.h"

#define MIB (1024u * 1024u)

static cairn_objstore *open_store(const char *url)
{
	cairn_objstore *os = NULL;
	cairn_objstore_opts o = {0};

	o.max_inflight = 8;
	REQUIRE_OK(objstore_open(url, &o, &os));
	return os;
}

static void roundtrip(cairn_objstore *os, uint64_t seed)
{
	static const char *const keys[] = {
		"plain", "dir/sub/file.bin", "space and+plus&amp=eq",
		"unicode-\xc3\xa9\xe2\x82\xac", "percent%41tilde~star*",
		"semi;colon:comma,quote'bang!paren()",
	};
	char *buf = malloc(3 * MIB), *back = malloc(3 * MIB);
	uint64_t got;
	cairn_obj_info info;

	REQUIRE(buf && back);
	t_fill(buf, 3 * MIB, seed);
	for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
		size_t len = i == 0 ? 3 * MIB : 1000 + i;
		CHECK_OK(objstore_put_buf(os, keys[i], buf, len));
		memset(back, 0, len);
		CHECK_OK(objstore_get(os, keys[i], 0, back, len, &got));
		CHECK(got == len && memcmp(buf, back, len) == 0);
		CHECK_OK(objstore_head(os, keys[i], &info));
		CHECK(info.size == len);
		CHECK(info.mtime > 1500000000);
		CHECK(info.etag[0] != '\0');
	}
	/* Ranges: inside, crossing the end, past the end, asking for more. */
	CHECK_OK(objstore_get(os, "plain", 12345, back, 1000, &got));
	CHECK(got == 1000 && memcmp(back, buf + 12345, 1000) == 0);
	CHECK_OK(objstore_get(os, "plain", 3 * MIB - 10, back, 100, &got));
	CHECK(got == 10 && memcmp(back, buf + 3 * MIB - 10, 10) == 0);
	CHECK_OK(objstore_get(os, "plain", 3 * MIB, back, 100, &got));
	CHECK(got == 0);
	CHECK_OK(objstore_get(os, "plain", 5 * MIB, back, 100, &got));
	CHECK(got == 0);
	/* Empty object. */
	CHECK_OK(objstore_put_buf(os, "empty", buf, 0));
	CHECK_OK(objstore_head(os, "empty", &info));
	CHECK(info.size == 0);
	CHECK_OK(objstore_get(os, "empty", 0, back, 10, &got));
	CHECK(got == 0);
	/* Overwrite. */
	CHECK_OK(objstore_put_buf(os, "plain", buf + 1, 5000));
	CHECK_OK(objstore_get(os, "plain", 0, back, 3 * MIB, &got));
	CHECK(got == 5000 && memcmp(back, buf + 1, 5000) == 0);
	/* Missing key: NOTFOUND, naming the key. */
	CHECK_RC(objstore_get(os, "nope", 0, back, 10, &got), CAIRN_E_NOTFOUND);
	CHECK_MSG("nope");
	CHECK_RC(objstore_head(os, "nope", &info), CAIRN_E_NOTFOUND);
	CHECK_MSG("no such key");
	/* Delete: present and missing both succeed. */
	CHECK_OK(objstore_delete(os, "empty"));
	CHECK_OK(objstore_delete(os, "empty"));
	CHECK_RC(objstore_head(os, "empty", &info), CAIRN_E_NOTFOUND);
	for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
		CHECK_OK(objstore_delete(os, keys[i]));
	free(buf);
	free(back);
}

static void file_source(cairn_objstore *os, const char *dir, uint64_t seed)
{
	char path[700];
	char *buf = malloc(6 * MIB), *back = malloc(6 * MIB);
	cairn_obj_src src;
	uint64_t got;
	int fd;

	REQUIRE(buf && back);
	t_fill(buf, 6 * MIB, seed);
	snprintf(path, sizeof path, "%s/src.bin", dir);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	REQUIRE(fd >= 0);
	REQUIRE(write(fd, buf, 6 * MIB) == (ssize_t)(6 * MIB));
	src = (cairn_obj_src){.buf = NULL, .fd = fd, .off = 777, .len = 4 * MIB + 3};
	CHECK_OK(objstore_put(os, "fromfile", &src));
	CHECK_OK(objstore_get(os, "fromfile", 0, back, 6 * MIB, &got));
	CHECK(got == 4 * MIB + 3 && memcmp(back, buf + 777, got) == 0);
	/* A range past the file's end: a clear local error, nothing stored. */
	src.off = 5 * MIB;
	src.len = 2 * MIB;
	CHECK(objstore_put(os, "shortfile", &src) != 0);
	CHECK(objstore_head(os, "shortfile", &(cairn_obj_info){0}) ==
	      CAIRN_E_NOTFOUND);
	close(fd);
	free(buf);
	free(back);
}

static void listing(cairn_objstore *os)
{
	enum { N = 1100 };
	static char names[N][32];
	const char *keys[N];
	cairn_obj_batch *b;
	cairn_obj_req *reqs = calloc(N, sizeof *reqs);
	cairn_obj_list l;
	char *token = NULL;
	size_t total = 0, pages = 0;
	char last[64] = "";
	int rcs[N];

	REQUIRE(reqs);
	REQUIRE_OK(objstore_batch_new(os, &b));
	for (int i = 0; i < N; i++) {
		snprintf(names[i], sizeof names[i], "ls/k%05d", i);
		keys[i] = names[i];
		reqs[i].op = OBJ_OP_PUT;
		reqs[i].key = names[i];
		reqs[i].src = (cairn_obj_src){.buf = names[i], .fd = -1,
					      .len = strlen(names[i])};
		REQUIRE_OK(objstore_submit(b, &reqs[i]));
	}
	CHECK_OK(objstore_batch_wait(b));
	objstore_batch_free(b);

	/* Small pages. */
	CHECK_OK(objstore_list(os, "ls/", NULL, 7, &l));
	CHECK(l.n == 7 && l.next != NULL);
	if (l.n == 7)
		CHECK(!strcmp(l.v[0].key, "ls/k00000") && l.v[0].size == 9);
	objstore_list_free(&l);
	/* Every key once, in order, over pages of the default 1000 (s3rver
	 * needs the legacy OpenSSL provider for the continuation token). */
	do {
		CHECK_OK(objstore_list(os, "ls/", token, 0, &l));
		free(token);
		token = l.next ? strdup(l.next) : NULL;
		for (size_t i = 0; i < l.n; i++) {
			CHECK(strcmp(last, l.v[i].key) < 0);
			snprintf(last, sizeof last, "%s", l.v[i].key);
		}
		total += l.n;
		pages++;
		objstore_list_free(&l);
	} while (token && pages < 10);
	CHECK(total == N);
	CHECK(pages == 2);
	/* A prefix that matches nothing. */
	CHECK_OK(objstore_list(os, "nothing/", NULL, 0, &l));
	CHECK(l.n == 0 && l.next == NULL);
	objstore_list_free(&l);

	/* Batch delete, more than one request's 1000 keys. */
	memset(rcs, 0xff, sizeof rcs);
	CHECK_OK(objstore_delete_batch(os, keys, N, rcs));
	for (int i = 0; i < N; i++)
		CHECK(rcs[i] == 0);
	CHECK_OK(objstore_list(os, "ls/", NULL, 0, &l));
	CHECK(l.n == 0);
	objstore_list_free(&l);
	free(reqs);
}

static void multipart(cairn_objstore *os, uint64_t seed)
{
	enum { PARTS = 3 };
	uint64_t psz = 5 * MIB, last = 123457, total = 2 * psz + last, got;
	char *buf = malloc(total), *back = malloc(total);
	char upid[CAIRN_UPLOAD_ID_MAX];
	cairn_obj_req reqs[PARTS];
	cairn_mpu_part parts[PARTS];
	cairn_obj_batch *b;
	cairn_obj_info info;

	REQUIRE(buf && back);
	t_fill(buf, total, seed);
	REQUIRE_OK(objstore_mpu_create(os, "mpu/obj", upid));
	CHECK(upid[0] != '\0');
	REQUIRE_OK(objstore_batch_new(os, &b));
	memset(reqs, 0, sizeof reqs);
	for (int i = 0; i < PARTS; i++) {
		reqs[i].op = OBJ_OP_MPU_PART;
		reqs[i].key = "mpu/obj";
		reqs[i].upload_id = upid;
		reqs[i].part_no = (unsigned)i + 1;
		reqs[i].src = (cairn_obj_src){.buf = buf + i * psz, .fd = -1,
					      .len = i == PARTS - 1 ? last : psz};
		REQUIRE_OK(objstore_submit(b, &reqs[i]));
	}
	CHECK_OK(objstore_batch_wait(b));
	objstore_batch_free(b);
	for (int i = 0; i < PARTS; i++)
		parts[i] = reqs[i].part;
	/* Not visible before complete. */
	CHECK_RC(objstore_head(os, "mpu/obj", &info), CAIRN_E_NOTFOUND);
	CHECK_OK(objstore_mpu_complete(os, "mpu/obj", upid, parts, PARTS));
	CHECK_OK(objstore_head(os, "mpu/obj", &info));
	CHECK(info.size == total);
	CHECK_OK(objstore_get(os, "mpu/obj", 0, back, total, &got));
	CHECK(got == total && memcmp(buf, back, total) == 0);

	/* Abort: the parts go, the upload id is then unknown. */
	REQUIRE_OK(objstore_mpu_create(os, "mpu/aborted", upid));
	CHECK_OK(objstore_mpu_part(os, "mpu/aborted", upid, 1,
				   &(cairn_obj_src){.buf = buf, .fd = -1, .len = psz},
				   &parts[0]));
	CHECK_OK(objstore_mpu_abort(os, "mpu/aborted", upid));
	CHECK_RC(objstore_mpu_part(os, "mpu/aborted", upid, 2,
				   &(cairn_obj_src){.buf = buf, .fd = -1, .len = 10},
				   &parts[1]), CAIRN_E_NOTFOUND);
	CHECK_MSG("NoSuchUpload");
	CHECK_RC(objstore_mpu_complete(os, "mpu/aborted", upid, parts, 1),
		 CAIRN_E_NOTFOUND);
	CHECK_RC(objstore_head(os, "mpu/aborted", &info), CAIRN_E_NOTFOUND);
	/* A made-up upload id. */
	CHECK_RC(objstore_mpu_abort(os, "mpu/x", "0123abcd"), CAIRN_E_NOTFOUND);

	/* Limits, enforced locally with a clear message. */
	{
		cairn_objstore_limits lim;
		objstore_limits(os, &lim);
		CHECK(lim.min_part_size == 5 * MIB);
		CHECK(lim.max_part_size == 5ull << 30);
		CHECK(lim.max_parts == 10000);
		CHECK(lim.max_object_size == 5ull << 40);
		/* Part sizes fit the largest object in 10,000 parts, known
		 * length or not. */
		uint64_t sum = 0;
		for (unsigned p = 1; p <= lim.max_parts; p++) {
			uint64_t sz = objstore_part_size(os, 0, p, 0);
			CHECK(sz >= lim.min_part_size && sz <= lim.max_part_size);
			sum += sz;
		}
		CHECK(sum >= lim.max_object_size);
		uint64_t sz = objstore_part_size(os, lim.max_object_size, 1, 0);
		CHECK(sz * lim.max_parts >= lim.max_object_size);
	}
	objstore_delete(os, "mpu/obj");
	free(buf);
	free(back);
}

static void errors(const s3h *h, uint64_t seed)
{
	cairn_objstore *os = NULL;
	cairn_objstore_opts o = {0};
	char ep[64];
	(void)seed;

	/* Plain http without allow-http. */
	unsetenv("CAIRN_S3_ALLOW_HTTP");
	CHECK_RC(objstore_open("s3://" S3H_BUCKET, &o, &os), CAIRN_E_INVAL);
	CHECK_MSG("plain http");
	setenv("CAIRN_S3_ALLOW_HTTP", "1", 1);

	/* Bad URLs. */
	CHECK_RC(objstore_open("s3://", &o, &os), CAIRN_E_INVAL);
	CHECK_MSG("bucket name");
	CHECK_RC(objstore_open("s3://bucket//x", &o, &os), CAIRN_E_INVAL);

	/* Missing bucket. */
	CHECK_RC(objstore_open("s3://no-such-bucket-here", &o, &os),
		 CAIRN_E_NOTFOUND);
	CHECK_MSG("bucket 'no-such-bucket-here' does not exist");

	/* Unknown access key: names it as the problem and where it came
	 * from, without showing the secret. */
	setenv("AWS_ACCESS_KEY_ID", "AKIDWRONGWRONG", 1);
	setenv("AWS_SECRET_ACCESS_KEY", "VerySecretValue42", 1);
	CHECK_RC(objstore_open("s3://" S3H_BUCKET, &o, &os), CAIRN_E_AUTH);
	CHECK_MSG("InvalidAccessKeyId");
	CHECK_MSG("AWS_ACCESS_KEY_ID");
	CHECK(strstr(cairn_errmsg(), "VerySecretValue42") == NULL);
	/* The right access key with a wrong secret: the (patched) server
	 * checks SigV4 signatures. */
	setenv("AWS_ACCESS_KEY_ID", "S3RVER", 1);
	CHECK_RC(objstore_open("s3://" S3H_BUCKET, &o, &os), CAIRN_E_AUTH);
	CHECK_MSG("secret key does not match");
	CHECK(strstr(cairn_errmsg(), "VerySecretValue42") == NULL);
	s3h_env(h, h->port);

	/* Flags with a session token: sent, never shown. */
	o.s3.access_key = "S3RVER";
	o.s3.secret_key = "S3RVER";
	o.s3.session_token = "SessionTokenSecret99";
	CHECK_OK(objstore_open("s3://" S3H_BUCKET "/tok", &o, &os));
	CHECK_OK(objstore_put_buf(os, "k", "x", 1));
	CHECK_OK(objstore_delete(os, "k"));
	objstore_close(os);
	os = NULL;
	memset(&o, 0, sizeof o);

	/* Unreachable endpoint (nothing listens on a just-closed port). */
	snprintf(ep, sizeof ep, "http://127.0.0.1:%d", 1);
	o.s3.endpoint = ep;
	o.s3.max_retries = 2;
	o.s3.connect_timeout_ms = 1000;
	CHECK_RC(objstore_open("s3://" S3H_BUCKET, &o, &os), CAIRN_E_NET);
	CHECK_MSG("cannot connect to the endpoint http://127.0.0.1:1");
	CHECK_MSG("3 attempts");
	memset(&o, 0, sizeof o);

	/* Unresolvable host. */
	o.s3.endpoint = "http://no-such-host.invalid:9000";
	o.s3.max_retries = 1;
	CHECK_RC(objstore_open("s3://" S3H_BUCKET, &o, &os), CAIRN_E_NET);
	CHECK_MSG("cannot resolve");
	memset(&o, 0, sizeof o);

	/* A clock an hour off. */
	s3_test_clock_skew = 3600;
	CHECK_RC(objstore_open("s3://" S3H_BUCKET, &o, &os), CAIRN_E_AUTH);
	CHECK_MSG("RequestTimeTooSkewed");
	CHECK_MSG("fix the system clock");
	s3_test_clock_skew = 0;

	/* HTTPS with verification on by default: a bad CA bundle path is an
	 * error that names the fix (the loopback server speaks http, so this
	 * only checks the message path). */
	o.s3.endpoint = "https://127.0.0.1:1";
	o.s3.ca_bundle = "/nonexistent/ca.pem";
	o.s3.max_retries = 1;
	CHECK(objstore_open("s3://" S3H_BUCKET, &o, &os) != 0);
	CHECK(os == NULL);
}

int main(void)
{
	uint64_t seed = t_seed();
	const char *dir = t_tmpdir("s3_backend");
	cairn_objstore *os;
	s3h h;

	s3h_start(&h, 0);
	s3h_env(&h, h.port);

	os = open_store("s3://" S3H_BUCKET "/bt");
	CHECK(!strcmp(objstore_scheme(os), "s3"));
	roundtrip(os, seed);
	file_source(os, dir, seed + 1);
	listing(os);
	multipart(os, seed + 2);
	objstore_close(os);

	/* No prefix: keys at the bucket's root. */
	os = open_store("s3://" S3H_BUCKET);
	CHECK_OK(objstore_put_buf(os, "rootkey", "abc", 3));
	{
		char b[8];
		uint64_t got;
		CHECK_OK(objstore_get(os, "rootkey", 0, b, 8, &got));
		CHECK(got == 3 && !memcmp(b, "abc", 3));
	}
	CHECK_OK(objstore_delete(os, "rootkey"));
	objstore_close(os);

	errors(&h, seed);
	s3h_stop(&h);
	t_rmtree(dir);
	return t_done();
}
