/*
 * s3_fault_test.c - the s3:// backend when the store misbehaves, through
 * the fault proxy in front of s3rver (tests/s3/server/run.js): throttling
 * (503 SlowDown with Retry-After) and 500s are retried with backoff; a
 * non-idempotent request is not retried after a 500; stalls time out and
 * are retried; a dropped connection mid-body and a truncated answer are
 * retried; a body corrupted on the way is refused by the store (over
 * plain HTTP by the signed payload SHA-256, XAmzContentSHA256Mismatch:
 * docs/s3.md) and leaves no object, a put from memory as a part from a
 * file range; each S3 error code a user can act on
 * maps to one clear line.  Connections are reused across requests and
 * threads (counted at the proxy).  Then the store is killed mid-upload, and the
 * uploading process is killed with SIGKILL mid-upload: neither leaves a
 * visible partial object.
 */
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cairn/runtime.h"
#include "objstore_int.h"
#include "cairn/codec.h"
#include "s3_harness.h"

#define MIB (1024u * 1024u)

static s3h h;

/* A counter of the proxy's /__stats ("faulted": since the last arm;
 * "connections", "requests": since it started). */
static long proxy_stat(const char *name)
{
	char cmd[256], out[256] = "", field[64];
	FILE *p;
	long n = -1;

	snprintf(cmd, sizeof cmd, "curl -s http://127.0.0.1:%d/__stats",
		 h.proxy_port);
	snprintf(field, sizeof field, "\"%s\":", name);
	p = popen(cmd, "r");
	if (p) {
		if (fgets(out, sizeof out, p)) {
			const char *f = strstr(out, field);
			if (f)
				n = strtol(f + strlen(field), NULL, 10);
		}
		pclose(p);
	}
	return n;
}

static long proxy_faulted(void)
{
	return proxy_stat("faulted");
}

/* Connections are reused: sequential requests share one connection, and
 * parallel ones at most one per worker. */
static void reuse(cairn_objstore *os)
{
	long c0 = proxy_stat("connections"), r0 = proxy_stat("requests");
	cairn_obj_info info;
	cairn_obj_req reqs[64];
	cairn_obj_batch *b;

	CHECK_OK(objstore_put_buf(os, "f/reuse", "abc", 3));
	for (int i = 0; i < 30; i++)
		CHECK_OK(objstore_head(os, "f/reuse", &info));
	REQUIRE_OK(objstore_batch_new(os, &b));
	memset(reqs, 0, sizeof reqs);
	for (int i = 0; i < 64; i++) {
		reqs[i].op = OBJ_OP_HEAD;
		reqs[i].key = "f/reuse";
		REQUIRE_OK(objstore_submit(b, &reqs[i]));
	}
	CHECK_OK(objstore_batch_wait(b));
	objstore_batch_free(b);
	{
		long r1 = proxy_stat("requests"), c1 = proxy_stat("connections");
		/* Each /__stats query is a connection of its own: the two
		 * after c0 (r0's and c1's) are not the store's. */
		long conns = c1 - c0 - 2;
		printf("reuse: %ld requests over %ld new connections\n",
		       r1 - r0, conns);
		CHECK(r1 - r0 == 95);
		/* 4 workers (max_inflight) and the caller's thread. */
		CHECK(conns >= 1 && conns <= 5);
	}
}

static cairn_objstore *open_fast(const char *url, unsigned retries)
{
	cairn_objstore *os = NULL;
	cairn_objstore_opts o = {0};

	o.s3.max_retries = retries;
	o.s3.stall_timeout_ms = 1500;
	o.s3.connect_timeout_ms = 1000;
	o.max_inflight = 4;
	REQUIRE_OK(objstore_open(url, &o, &os));
	return os;
}

static void retries(cairn_objstore *os, uint64_t seed)
{
	char *buf = malloc(2 * MIB), *back = malloc(2 * MIB);
	uint64_t got;
	cairn_obj_info info;
	char upid[CAIRN_UPLOAD_ID_MAX];

	REQUIRE(buf && back);
	t_fill(buf, 2 * MIB, seed);

	/* Throttled twice, with Retry-After: retried, then it works. */
	s3h_fault(&h, "mode=status&code=503&s3code=SlowDown&count=2&retry_after=1");
	CHECK_OK(objstore_put_buf(os, "f/throttled", buf, 1000));
	CHECK(proxy_faulted() == 2);
	CHECK_OK(objstore_head(os, "f/throttled", &info));
	CHECK(info.size == 1000);

	/* 500 on a GET, twice: retried. */
	s3h_fault(&h, "mode=status&code=500&s3code=InternalError&count=2&method=GET");
	CHECK_OK(objstore_get(os, "f/throttled", 0, back, 1000, &got));
	CHECK(got == 1000 && !memcmp(back, buf, 1000));
	CHECK(proxy_faulted() == 2);

	/* 500 forever: gives up after max_retries with one clear line. */
	s3h_fault(&h, "mode=status&code=500&s3code=InternalError&count=0");
	CHECK_RC(objstore_head(os, "f/throttled", &info), CAIRN_E_STORE);
	CHECK_MSG("kept failing (HTTP 500");
	CHECK_MSG("4 attempts");
	CHECK(proxy_faulted() == 4);

	/* CreateMultipartUpload is not idempotent: a 500 is not retried... */
	s3h_fault(&h, "mode=status&code=500&s3code=InternalError&count=1&method=POST");
	CHECK_RC(objstore_mpu_create(os, "f/mpu", upid), CAIRN_E_STORE);
	CHECK(proxy_faulted() == 1);
	/* ...but a 503 (the store did not take it) is. */
	s3h_fault(&h, "mode=status&code=503&s3code=SlowDown&count=1&method=POST");
	CHECK_OK(objstore_mpu_create(os, "f/mpu", upid));
	CHECK(proxy_faulted() == 1);
	CHECK_OK(objstore_mpu_abort(os, "f/mpu", upid));

	/* A stalled answer: timed out after stall_timeout_ms, retried. */
	s3h_fault(&h, "mode=stall&count=1&method=GET");
	CHECK_OK(objstore_get(os, "f/throttled", 0, back, 1000, &got));
	CHECK(got == 1000 && !memcmp(back, buf, 1000));
	/* Stalled forever: a timeout error naming the endpoint. */
	s3h_fault(&h, "mode=stall&count=0&ms=60000");
	CHECK_RC(objstore_head(os, "f/throttled", &info), CAIRN_E_TIMEOUT);
	CHECK_MSG("stalled");
	s3h_fault(&h, "mode=none");

	/* Connection dropped mid-body: the PUT is retried whole. */
	s3h_fault(&h, "mode=reset&count=1&method=PUT");
	CHECK_OK(objstore_put_buf(os, "f/reset", buf, 2 * MIB));
	CHECK_OK(objstore_get(os, "f/reset", 0, back, 2 * MIB, &got));
	CHECK(got == 2 * MIB && !memcmp(back, buf, 2 * MIB));

	/* Answer cut short: detected and retried, never short data. */
	s3h_fault(&h, "mode=truncate&count=1&method=GET");
	memset(back, 0, 2 * MIB);
	CHECK_OK(objstore_get(os, "f/reset", 0, back, 2 * MIB, &got));
	CHECK(got == 2 * MIB && !memcmp(back, buf, 2 * MIB));

	/* A body corrupted on the way: the store refuses it (over HTTP by
	 * the signed payload SHA-256, the only digest sent with a PUT),
	 * nothing is stored. */
	s3h_fault(&h, "mode=corrupt&count=1&method=PUT");
	CHECK_RC(objstore_put_buf(os, "f/corrupt", buf, 100000), CAIRN_E_CORRUPT);
	CHECK_MSG("different bytes");
	CHECK_MSG("XAmzContentSHA256Mismatch");
	CHECK_RC(objstore_head(os, "f/corrupt", &info), CAIRN_E_NOTFOUND);

	/* The same for a part whose body comes from a file range (a stream
	 * segment's spool); the upload goes on with the part sent again. */
	{
		char dir[512], path[600];
		cairn_mpu_part part;
		int fd;

		snprintf(dir, sizeof dir, "%s", t_tmpdir("s3_fault"));
		snprintf(path, sizeof path, "%s/part.bin", dir);
		fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
		REQUIRE(fd >= 0);
		REQUIRE(pwrite(fd, buf, 2 * MIB, 0) == (ssize_t)(2 * MIB));
		cairn_obj_src src = {.fd = fd, .off = 4096,
				     .len = 2 * MIB - 8192};
		REQUIRE_OK(objstore_mpu_create(os, "f/cpart", upid));
		s3h_fault(&h, "mode=corrupt&count=1&method=PUT");
		CHECK_RC(objstore_mpu_part(os, "f/cpart", upid, 1, &src, &part),
			 CAIRN_E_CORRUPT);
		CHECK_MSG("XAmzContentSHA256Mismatch");
		/* With the payload hash given by the caller (the spool's,
		 * cairn_obj_src.sha256): sent instead of a hash of the file
		 * range, and checked by the store all the same: a wrong one
		 * is refused, so is a right one with a corrupted body. */
		uint8_t d[32];
		REQUIRE_OK(cairn_sha256(buf + 4096, src.len, d));
		d[7] ^= 1;
		src.sha256 = d;
		CHECK_RC(objstore_mpu_part(os, "f/cpart", upid, 1, &src, &part),
			 CAIRN_E_CORRUPT);
		CHECK_MSG("XAmzContentSHA256Mismatch");
		d[7] ^= 1;
		s3h_fault(&h, "mode=corrupt&count=1&method=PUT");
		CHECK_RC(objstore_mpu_part(os, "f/cpart", upid, 1, &src, &part),
			 CAIRN_E_CORRUPT);
		CHECK_OK(objstore_mpu_part(os, "f/cpart", upid, 1, &src, &part));
		src.sha256 = NULL;
		CHECK_OK(objstore_mpu_part(os, "f/cpart", upid, 1, &src, &part));
		CHECK_OK(objstore_mpu_complete(os, "f/cpart", upid, &part, 1));
		memset(back, 0, 2 * MIB);
		CHECK_OK(objstore_get(os, "f/cpart", 0, back, 2 * MIB, &got));
		CHECK(got == src.len && !memcmp(back, buf + 4096, src.len));
		close(fd);
		t_rmtree(dir);
	}
	free(buf);
	free(back);
}

static void error_lines(cairn_objstore *os)
{
	static const struct {
		const char *rule;
		int rc;
		const char *msg;
	} cases[] = {
		{"code=403&s3code=AccessDenied", CAIRN_E_PERM, "access denied"},
		{"code=403&s3code=SignatureDoesNotMatch", CAIRN_E_AUTH,
		 "secret key does not match"},
		{"code=403&s3code=InvalidAccessKeyId", CAIRN_E_AUTH,
		 "does not know the access key"},
		{"code=400&s3code=ExpiredToken", CAIRN_E_AUTH, "session token"},
		{"code=403&s3code=RequestTimeTooSkewed", CAIRN_E_AUTH,
		 "fix the system clock"},
		{"code=404&s3code=NoSuchBucket", CAIRN_E_NOTFOUND,
		 "bucket 'cairn-test' does not exist"},
		{"code=301&s3code=PermanentRedirect&header=x-amz-bucket-region:eu-west-1",
		 CAIRN_E_INVAL, "eu-west-1"},
		{"code=400&s3code=AuthorizationHeaderMalformed", CAIRN_E_INVAL,
		 "region eu-west-1"},
		{"code=400&s3code=InvalidArgument", CAIRN_E_INVAL, "InvalidArgument"},
	};
	char rule[256], b[16];
	uint64_t got;

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		snprintf(rule, sizeof rule, "mode=status&count=1&%s", cases[i].rule);
		s3h_fault(&h, rule);
		CHECK_RC(objstore_get(os, "f/some/key", 0, b, sizeof b, &got),
			 cases[i].rc);
		CHECK_MSG(cases[i].msg);
		printf("%s -> %s\n", cases[i].rule, cairn_errmsg());
		/* One line, and it names the object. */
		CHECK(strchr(cairn_errmsg(), '\n') == NULL);
		CHECK_MSG("f/some/key");
	}
	s3h_fault(&h, "mode=none");
}

/* The store dies mid-upload: the upload fails or completes, never a
 * partial object. */
static void store_killed(uint64_t seed)
{
	enum { LEN = 96 * MIB };
	char ep[64];
	char *buf = malloc(LEN), *back = malloc(LEN);
	cairn_objstore *os = NULL;
	cairn_objstore_opts o = {0};
	cairn_obj_batch *b;
	cairn_obj_req r = {0};
	cairn_obj_info info;
	uint64_t got;
	int rc;

	REQUIRE(buf && back);
	t_fill(buf, LEN, seed);
	snprintf(ep, sizeof ep, "http://127.0.0.1:%d", h.port);
	o.s3.endpoint = ep;
	o.s3.max_retries = 1;
	o.s3.connect_timeout_ms = 500;
	REQUIRE_OK(objstore_open("s3://" S3H_BUCKET, &o, &os));
	REQUIRE_OK(objstore_batch_new(os, &b));
	r.op = OBJ_OP_PUT;
	r.key = "killed/obj";
	r.src = (cairn_obj_src){.buf = buf, .fd = -1, .len = LEN};
	REQUIRE_OK(objstore_submit(b, &r));
	usleep(150 * 1000);
	s3h_kill(&h);
	rc = objstore_batch_wait(b);
	printf("put while the store died: %s (%s)\n", cairn_rc_name(rc),
	       rc ? cairn_errmsg() : "completed first");
	objstore_batch_free(b);
	s3h_restart(&h);
	rc = objstore_head(os, "killed/obj", &info);
	CHECK(rc == CAIRN_E_NOTFOUND || (rc == 0 && info.size == LEN));
	if (rc == 0) {
		CHECK_OK(objstore_get(os, "killed/obj", 0, back, LEN, &got));
		CHECK(got == LEN && !memcmp(buf, back, LEN));
	}
	/* And the store works again afterwards. */
	CHECK_OK(objstore_put_buf(os, "killed/after", buf, 1000));
	objstore_close(os);
	free(buf);
	free(back);
}

/* The uploading process is killed with SIGKILL mid-upload (a big PUT and
 * a multipart upload with parts done but no complete): no object. */
static void uploader_killed(uint64_t seed)
{
	enum { LEN = 64 * MIB };
	int pfd[2];
	pid_t pid;
	char c;
	cairn_objstore *os = NULL;
	cairn_obj_info info;

	REQUIRE(pipe(pfd) == 0);
	pid = fork();
	REQUIRE(pid >= 0);
	if (pid == 0) {
		char *buf = malloc(LEN), upid[CAIRN_UPLOAD_ID_MAX];
		cairn_obj_src src = {.buf = buf, .fd = -1, .len = 5 * MIB};
		cairn_mpu_part part;
		close(pfd[0]);
		if (!buf || objstore_open("s3://" S3H_BUCKET, NULL, &os))
			_exit(2);
		t_fill(buf, LEN, seed);
		if (objstore_mpu_create(os, "victim/mpu", upid) ||
		    objstore_mpu_part(os, "victim/mpu", upid, 1, &src, &part))
			_exit(3);
		if (write(pfd[1], "x", 1) != 1)
			_exit(4);
		for (;;) /* killed somewhere in here */
			objstore_put_buf(os, "victim/put", buf, LEN);
	}
	close(pfd[1]);
	CHECK(read(pfd[0], &c, 1) == 1);
	usleep(100 * 1000);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	close(pfd[0]);
	REQUIRE_OK(objstore_open("s3://" S3H_BUCKET, NULL, &os));
	CHECK_RC(objstore_head(os, "victim/mpu", &info), CAIRN_E_NOTFOUND);
	/* The loop may have completed puts before the kill; what is there
	 * must be whole. */
	{
		int rc = objstore_head(os, "victim/put", &info);
		CHECK(rc == CAIRN_E_NOTFOUND || (rc == 0 && info.size == LEN));
	}
	objstore_close(os);
}

int main(void)
{
	uint64_t seed = t_seed();
	cairn_objstore *os;

	s3h_start(&h, 1);
	s3h_env(&h, h.proxy_port);
	os = open_fast("s3://" S3H_BUCKET, 3);
	reuse(os);
	retries(os, seed);
	error_lines(os);
	objstore_close(os);

	s3h_env(&h, h.port);
	uploader_killed(seed + 1);
	store_killed(seed + 2);
	s3h_stop(&h);
	return t_done();
}
