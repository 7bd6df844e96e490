/*
 * os_s3.c - the s3:// object-store backend: Amazon S3 and S3-compatible
 * stores (MinIO, Ceph RGW, Cloudflare R2, GCS interoperability) over
 * libcurl, signed with AWS Signature V4.
 *
 * URL: s3://BUCKET[/PREFIX].  Object key K is stored as PREFIX/K.  The
 * endpoint, region, credentials and CA bundle are resolved by s3_creds.c in
 * the AWS CLI's order.  Addressing: path-style (http://host/BUCKET/KEY) for
 * custom endpoints, virtual-hosted (https://BUCKET.host/KEY) for AWS, or as
 * forced by opts.addressing.
 *
 * Requests.  Every backend call is synchronous and thread-safe: it takes a
 * curl easy handle from a small pool (one per concurrent caller), all of
 * them attached to one CURLSH that shares the connection cache and DNS, so
 * connections are reused across calls and threads; objstore.c's worker pool
 * gives the parallelism.  A request body comes from memory or from a local
 * file range read through the io_uring engine in curl-sized pieces, so
 * memory stays bounded whatever the part size.  GET writes straight into
 * the caller's buffer; every other answer body is capped (64 KiB for
 * errors, S3_XML_MAX_BODY for XML results).
 *
 * One request, with retries:
 *
 *        +-----------> sign (clock now) --> perform --> 2xx/3xx/4xx --> done
 *        |                                    |
 *        |  sleep: exponential backoff        | 5xx, 429, 400 RequestTimeout,
 *        |  with jitter, >= Retry-After       | connection error, stall
 *        +------------------------------------+  (idempotent requests only;
 *                                                 others only if surely not
 *                                                 processed: connect failed,
 *                                                 503/429)
 *
 * Invariants
 *   1. No secret reaches a message or log line: secrets are registered with
 *      cairn_log_add_secret() when read (s3_creds.c), messages are built
 *      from the bucket, key, endpoint, S3 error code and curl's error text.
 *   2. Every upload carries a digest of its body that the store checks, so
 *      a body corrupted on the way is refused instead of stored: over plain
 *      HTTP the payload's SHA-256, signed (x-amz-content-sha256;
 *      XAmzContentSHA256Mismatch), as the AWS CLI does there; over HTTPS
 *      UNSIGNED-PAYLOAD (TLS protects it, as the AWS CLI does) with
 *      Content-MD5 (BadDigest).  A source that comes with its SHA-256
 *      (cairn_obj_src.sha256: a stream's part, hashed as the spool was
 *      written) is sent with that one instead of a hash of a second read
 *      of the bytes; the store checks it just the same.  A PUT body (object, part) carries one
 *      digest, never both: each is a pass over every byte, on the same
 *      cores as a local store server.  POST bodies (small XML) always carry
 *      Content-MD5, which DeleteObjects requires.
 *   3. Only idempotent requests are retried after they may have reached the
 *      store.  CreateMultipartUpload is not idempotent (a retry would leak an
 *      upload); CompleteMultipartUpload is retried, and a retry that finds
 *      the upload gone (NoSuchUpload) checks with HEAD whether the first try
 *      completed it.  A put-if-absent (If-None-Match: *) is retried like a
 *      put, and also on 409 ConditionalRequestConflict (a concurrent
 *      conditional write; this one took no effect); a retry whose first
 *      try did land gets 412, CAIRN_E_EXISTS, as objstore.h documents.
 *   4. A GET never returns more bytes than asked for, and returns exactly
 *      the range the store says it sent (Content-Range checked).
 *   5. A failure gives one line that names the bucket or key, what went
 *      wrong, and what to check (credentials and where they came from, the
 *      bucket name, the region, the endpoint, the clock).
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <openssl/evp.h>

#include "cairn/err.h"
#include "cairn/log.h"
#include "cairn/uring.h"
#include "objstore_int.h"
#include "s3_int.h"

#define S3_MIN_PART (5ull << 20)
#define S3_MAX_PART (5ull << 30)
#define S3_MAX_OBJECT (5ull << 40)
#define S3_ERR_BODY_MAX (64u << 10)
#define S3_DELETE_BATCH 1000
#define S3_HASH_CHUNK (1u << 20)
#define S3_BACKOFF_BASE_MS 100
#define S3_BACKOFF_CAP_MS 5000
#define S3_RETRY_AFTER_CAP_S 30

volatile long s3_test_clock_skew;

static pthread_once_t s3_global_once = PTHREAD_ONCE_INIT;
static CURLcode s3_global_rc;

static void s3_global_init(void)
{
	s3_global_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

typedef struct s3_store {
	s3_config cfg;
	char *bucket;
	char *prefix;     /* "" or "some/prefix/" (with the trailing '/') */
	char *url;        /* s3://bucket[/prefix], for messages */
	char *base;       /* scheme://host[:port] requests go to */
	char *host;       /* Host header (signed) */
	char *path_base;  /* "/bucket" (path-style) or "" (virtual-hosted) */
	int https;
	unsigned connect_ms, stall_ms, max_retries;
	CURLSH *share;
	pthread_mutex_t share_mu[CURL_LOCK_DATA_LAST];
	pthread_mutex_t pool_mu;
	CURL **pool;
	size_t npool, cap_pool;
	cairn_uring *u;
	int own_u;
} s3_store;

/* One HTTP exchange, described by the caller, filled by s3_do. */
typedef struct s3_rq {
	const char *op;          /* "put", "get", ... for messages */
	const char *method;
	const char *key;         /* user key (without prefix) or NULL: bucket */
	const char *query;       /* canonical query, "" for none */
	int idempotent;
	/* body */
	const void *body;
	uint64_t body_len;
	const cairn_obj_src *src; /* body from a source instead */
	const char *content_type;
	const char *range;
	const char *if_none_match; /* "*": create only (put_if_absent) */
	/* response */
	void *dst;               /* 2xx body sink (GET) */
	uint64_t dst_cap, dst_len;
	s3_buf resp;             /* other bodies */
	size_t resp_max;
	long status;
	char etag[CAIRN_ETAG_MAX];
	uint64_t clen;
	int has_clen;
	char crange[128];
	int64_t mtime;
	long retry_after;
	char region_hdr[64];
	unsigned attempts;
	/* transfer state */
	s3_store *s;
	uint64_t pos;
	int overflow, read_err;
	char read_msg[200];
	CURLcode cc;
	char errbuf[CURL_ERROR_SIZE];
} s3_rq;

/* ---- small helpers ---- */

static uint64_t s3_rand(void)
{
	static _Thread_local uint64_t x;
	struct timespec ts;

	if (!x) {
		clock_gettime(CLOCK_MONOTONIC, &ts);
		x = ((uint64_t)ts.tv_nsec << 20) ^ (uint64_t)ts.tv_sec ^
		    ((uint64_t)pthread_self() << 1) ^ 0x9e3779b97f4a7c15ull;
	}
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return x;
}

/* CAIRN_S3_ALLOW_HTTP=1 is the environment's form of the allow-http flag,
 * for programs (tests) that open stores with default options. */
static int env_true(const char *name)
{
	const char *v = getenv(name);

	return v && (!strcmp(v, "1") || !strcasecmp(v, "true"));
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

static int src_read(s3_store *s, const cairn_obj_src *src, uint64_t off,
		    void *buf, size_t n)
{
	size_t got = 0;
	int rc;

	if (src->buf) {
		memcpy(buf, (const char *)src->buf + off, n);
		return 0;
	}
	rc = uring_read(s->u, src->fd, buf, n, src->off + off, &got);
	if (rc)
		return rc;
	if (got != n)
		return cairn_errf(CAIRN_E_IO,
				  "source file ends at %" PRIu64 ", before the %"
				  PRIu64 " bytes to upload",
				  src->off + off + got, src->len);
	return 0;
}

/* ---- curl plumbing ---- */

static void share_lock(CURL *h, curl_lock_data d, curl_lock_access a, void *ud)
{
	s3_store *s = ud;
	(void)h;
	(void)a;
	pthread_mutex_lock(&s->share_mu[d]);
}

static void share_unlock(CURL *h, curl_lock_data d, void *ud)
{
	s3_store *s = ud;
	(void)h;
	pthread_mutex_unlock(&s->share_mu[d]);
}

static CURL *handle_get(s3_store *s)
{
	CURL *h = NULL;

	pthread_mutex_lock(&s->pool_mu);
	if (s->npool)
		h = s->pool[--s->npool];
	pthread_mutex_unlock(&s->pool_mu);
	if (!h)
		h = curl_easy_init();
	return h;
}

static void handle_put(s3_store *s, CURL *h)
{
	pthread_mutex_lock(&s->pool_mu);
	if (s->npool == s->cap_pool) {
		size_t cap = s->cap_pool ? s->cap_pool * 2 : 16;
		CURL **p = realloc(s->pool, cap * sizeof *p);
		if (!p) {
			pthread_mutex_unlock(&s->pool_mu);
			curl_easy_cleanup(h);
			return;
		}
		s->pool = p;
		s->cap_pool = cap;
	}
	s->pool[s->npool++] = h;
	pthread_mutex_unlock(&s->pool_mu);
}

static size_t on_read(char *ptr, size_t size, size_t nmemb, void *ud)
{
	s3_rq *r = ud;
	uint64_t left = r->body_len - r->pos;
	size_t n = size * nmemb;

	if (n > left)
		n = (size_t)left;
	if (!n)
		return 0;
	if (r->src) {
		if (src_read(r->s, r->src, r->pos, ptr, n)) {
			r->read_err = 1;
			cairn_err_copy(r->read_msg, sizeof r->read_msg);
			return CURL_READFUNC_ABORT;
		}
	} else {
		memcpy(ptr, (const char *)r->body + r->pos, n);
	}
	r->pos += n;
	return n;
}

static int on_seek(void *ud, curl_off_t off, int origin)
{
	s3_rq *r = ud;

	if (origin != SEEK_SET || off < 0 || (uint64_t)off > r->body_len)
		return CURL_SEEKFUNC_FAIL;
	r->pos = (uint64_t)off;
	return CURL_SEEKFUNC_OK;
}

static size_t on_write(char *ptr, size_t size, size_t nmemb, void *ud)
{
	s3_rq *r = ud;
	size_t n = size * nmemb;

	if (r->dst && r->status >= 200 && r->status < 300) {
		if (n > r->dst_cap - r->dst_len) {
			r->overflow = 1;
			return 0;
		}
		memcpy((char *)r->dst + r->dst_len, ptr, n);
		r->dst_len += n;
		return n;
	}
	if (r->resp.len + n > r->resp_max) {
		r->overflow = 1;
		return 0;
	}
	s3_buf_add(&r->resp, ptr, n);
	return r->resp.oom ? 0 : n;
}

static int hdr_is(const char *line, size_t n, const char *name, const char **v,
		  size_t *vlen)
{
	size_t k = strlen(name);
	const char *p, *e;

	if (n <= k || strncasecmp(line, name, k) != 0 || line[k] != ':')
		return 0;
	p = line + k + 1;
	e = line + n;
	while (p < e && (*p == ' ' || *p == '\t'))
		p++;
	while (e > p && (e[-1] == '\r' || e[-1] == '\n' || e[-1] == ' '))
		e--;
	*v = p;
	*vlen = (size_t)(e - p);
	return 1;
}

static void copy_hdr(char *dst, size_t size, const char *v, size_t n)
{
	if (n >= size)
		n = size - 1;
	memcpy(dst, v, n);
	dst[n] = '\0';
}

static size_t on_header(char *line, size_t size, size_t nmemb, void *ud)
{
	s3_rq *r = ud;
	size_t n = size * nmemb;
	const char *v;
	size_t vl;
	char tmp[128];

	if (n > 5 && strncmp(line, "HTTP/", 5) == 0) {
		const char *sp = memchr(line, ' ', n);
		long st = 0;
		/* A new status line (after 100 Continue): forget the old one. */
		if (sp && sp + 4 <= line + n && sp[1] >= '1' && sp[1] <= '5')
			st = (sp[1] - '0') * 100 + (sp[2] - '0') * 10 +
			     (sp[3] - '0');
		r->status = st;
		r->etag[0] = r->crange[0] = r->region_hdr[0] = '\0';
		r->has_clen = 0;
		r->retry_after = 0;
		r->mtime = 0;
		return n;
	}
	if (hdr_is(line, n, "ETag", &v, &vl)) {
		if (vl >= 2 && v[0] == '"' && v[vl - 1] == '"') {
			v++;
			vl -= 2;
		}
		copy_hdr(r->etag, sizeof r->etag, v, vl);
	} else if (hdr_is(line, n, "Content-Length", &v, &vl)) {
		char *end;
		copy_hdr(tmp, sizeof tmp, v, vl);
		errno = 0;
		r->clen = strtoull(tmp, &end, 10);
		r->has_clen = !errno && end != tmp && !*end;
	} else if (hdr_is(line, n, "Content-Range", &v, &vl)) {
		copy_hdr(r->crange, sizeof r->crange, v, vl);
	} else if (hdr_is(line, n, "Last-Modified", &v, &vl)) {
		time_t t;
		copy_hdr(tmp, sizeof tmp, v, vl);
		t = curl_getdate(tmp, NULL);
		r->mtime = t > 0 ? (int64_t)t : 0;
	} else if (hdr_is(line, n, "Retry-After", &v, &vl)) {
		char *end;
		long ra;
		copy_hdr(tmp, sizeof tmp, v, vl);
		errno = 0;
		ra = strtol(tmp, &end, 10);
		if (!errno && end != tmp && !*end && ra >= 0)
			r->retry_after = ra;
		else {
			/* An HTTP date instead of seconds. */
			time_t t = curl_getdate(tmp, NULL);
			if (t > 0 && t > time(NULL))
				r->retry_after = (long)(t - time(NULL));
		}
	} else if (hdr_is(line, n, "x-amz-bucket-region", &v, &vl)) {
		copy_hdr(r->region_hdr, sizeof r->region_hdr, v, vl);
	}
	return n;
}

/* ---- payload hashes ---- */

/* What an upload's body is checked by (invariant 2): the store verifies
 * a signed SHA-256 (plain HTTP) or Content-MD5 (HTTPS, where the payload
 * is UNSIGNED-PAYLOAD); POST bodies (CompleteMultipartUpload,
 * DeleteObjects, which S3 refuses without it) always carry Content-MD5. */
static void body_checks(const s3_store *s, const s3_rq *r, int *want_md5,
			int *want_sha)
{
	*want_sha = !s->https;
	*want_md5 = s->https || !strcmp(r->method, "POST");
}

static void sha_hex_of(const uint8_t d[32], char out[65])
{
	static const char hex[] = "0123456789abcdef";

	for (int i = 0; i < 32; i++) {
		out[2 * i] = hex[d[i] >> 4];
		out[2 * i + 1] = hex[d[i] & 15];
	}
	out[64] = '\0';
}

/* One pass over the body for the hashes asked for: md5_b64 is "" when
 * want_md5 is 0, sha_hex is left alone when want_sha is 0. */
static int body_hashes(s3_store *s, s3_rq *r, int want_md5, int want_sha,
		       char md5_b64[25], char sha_hex[65])
{
	EVP_MD_CTX *m = want_md5 ? EVP_MD_CTX_new() : NULL;
	EVP_MD_CTX *h = want_sha ? EVP_MD_CTX_new() : NULL;
	uint8_t dm[16], dh[32];
	uint8_t *tmp = NULL;
	int rc = 0;

	md5_b64[0] = '\0';
	if (!m && !h)
		return 0;
	if ((want_md5 && !m) || (want_sha && !h)) {
		rc = cairn_errf(CAIRN_E_NOMEM, "s3: out of memory (hash)");
		goto out;
	}
	if ((m && !EVP_DigestInit_ex(m, EVP_md5(), NULL)) ||
	    (h && !EVP_DigestInit_ex(h, EVP_sha256(), NULL))) {
		rc = cairn_errf(CAIRN_E_INTERNAL, "s3: OpenSSL digest init failed");
		goto out;
	}
	if (r->src && !r->src->buf) {
		tmp = malloc(S3_HASH_CHUNK);
		if (!tmp) {
			rc = cairn_errf(CAIRN_E_NOMEM, "s3: out of memory (hash)");
			goto out;
		}
		for (uint64_t off = 0; off < r->body_len;) {
			size_t n = r->body_len - off < S3_HASH_CHUNK
				? (size_t)(r->body_len - off) : S3_HASH_CHUNK;
			if ((rc = src_read(s, r->src, off, tmp, n)))
				goto out;
			if ((m && !EVP_DigestUpdate(m, tmp, n)) ||
			    (h && !EVP_DigestUpdate(h, tmp, n))) {
				rc = cairn_errf(CAIRN_E_INTERNAL,
						"s3: OpenSSL digest failed");
				goto out;
			}
			off += n;
		}
	} else {
		const void *p = r->src ? r->src->buf : r->body;
		if ((m && !EVP_DigestUpdate(m, p, r->body_len)) ||
		    (h && !EVP_DigestUpdate(h, p, r->body_len))) {
			rc = cairn_errf(CAIRN_E_INTERNAL, "s3: OpenSSL digest failed");
			goto out;
		}
	}
	if ((m && !EVP_DigestFinal_ex(m, dm, NULL)) ||
	    (h && !EVP_DigestFinal_ex(h, dh, NULL))) {
		rc = cairn_errf(CAIRN_E_INTERNAL, "s3: OpenSSL digest failed");
		goto out;
	}
	if (m)
		s3_base64(dm, 16, md5_b64);
	if (h)
		sha_hex_of(dh, sha_hex);
out:
	free(tmp);
	EVP_MD_CTX_free(m);
	EVP_MD_CTX_free(h);
	return rc;
}

/* ---- error mapping (invariant 5) ---- */

/* The IAM action a refused request needed, for "check that ... may X". */
static const char *s3_action(const char *op)
{
	if (!strcmp(op, "get") || !strcmp(op, "head"))
		return "s3:GetObject";
	if (!strcmp(op, "delete") || !strcmp(op, "delete-objects"))
		return "s3:DeleteObject";
	if (!strcmp(op, "list"))
		return "s3:ListBucket";
	if (!strcmp(op, "abort-multipart-upload"))
		return "s3:AbortMultipartUpload";
	return "s3:PutObject";
}

/* Messages do not repeat the key: objstore.c prefixes "<op> '<key>' on
 * s3://bucket/prefix: ".  They name the bucket where it is the problem. */
static int map_http_error(s3_store *s, s3_rq *r)
{
	s3_xml_error e;
	const char *code = "", *msg = "";
	int have = 0;

	if (r->resp.len && !s3_xml_parse_error(r->resp.p, r->resp.len, &e)) {
		have = 1;
		code = e.code;
		msg = e.message;
	}
	cairn_err_clear();

	if (!strcmp(code, "NoSuchBucket") ||
	    (r->status == 404 && !r->key && !have))
		return cairn_errf(CAIRN_E_NOTFOUND,
				  "bucket '%s' does not exist at %s (NoSuchBucket); "
				  "check the bucket name and the endpoint",
				  s->bucket, s->cfg.endpoint);
	if (!strcmp(code, "NoSuchKey") || (r->status == 404 && !have))
		return cairn_errf(CAIRN_E_NOTFOUND, "no such key");
	if (!strcmp(code, "NoSuchUpload"))
		return cairn_errf(CAIRN_E_NOTFOUND,
				  "no such multipart upload (NoSuchUpload: "
				  "aborted, completed, or never created)");
	if (!strcmp(code, "InvalidAccessKeyId"))
		return cairn_errf(CAIRN_E_AUTH,
				  "the store does not know the access key "
				  "(InvalidAccessKeyId); check the credentials from "
				  "%s and the endpoint %s",
				  s->cfg.source, s->cfg.endpoint);
	if (!strcmp(code, "SignatureDoesNotMatch"))
		return cairn_errf(CAIRN_E_AUTH,
				  "the secret key does not match the access key "
				  "(SignatureDoesNotMatch); check the secret key from "
				  "%s", s->cfg.source);
	if (!strcmp(code, "ExpiredToken") || !strcmp(code, "InvalidToken") ||
	    !strcmp(code, "TokenRefreshRequired"))
		return cairn_errf(CAIRN_E_AUTH,
				  "the session token was refused (%s); get fresh "
				  "temporary credentials (now from %s)",
				  code, s->cfg.source);
	if (!strcmp(code, "RequestTimeTooSkewed"))
		return cairn_errf(CAIRN_E_AUTH,
				  "the local clock differs from the store's by more "
				  "than 15 minutes (RequestTimeTooSkewed, server "
				  "time %s); fix the system clock (NTP)",
				  have && e.server_time[0] ? e.server_time : "?");
	if (!strcmp(code, "AuthorizationHeaderMalformed") && e.region[0])
		return cairn_errf(CAIRN_E_INVAL,
				  "bucket '%s' is in region %s, not %s; set the "
				  "region (flag or AWS_REGION=%s)",
				  s->bucket, e.region, s->cfg.region, e.region);
	if (!strcmp(code, "PermanentRedirect") || r->status == 301) {
		const char *reg = r->region_hdr[0] ? r->region_hdr
				  : have && e.region[0] ? e.region
				  : "another region";
		return cairn_errf(CAIRN_E_INVAL,
				  "bucket '%s' is in %s, not %s (PermanentRedirect); "
				  "set the region (flag or AWS_REGION)",
				  s->bucket, reg, s->cfg.region);
	}
	if (!strcmp(code, "AccessDenied") || !strcmp(code, "AllAccessDisabled") ||
	    (r->status == 403 && !have))
		return cairn_errf(CAIRN_E_PERM,
				  "access denied to bucket '%s' (%s); check that the "
				  "credentials from %s may %s there%s",
				  s->bucket, have ? code : "HTTP 403", s->cfg.source,
				  s3_action(r->op),
				  have ? "" : " (a HEAD answer has no detail: the "
				  "credentials may also be wrong)");
	if (!strcmp(code, "BadDigest") || !strcmp(code, "InvalidDigest") ||
	    !strcmp(code, "XAmzContentSHA256Mismatch") ||
	    !strcmp(code, "IncompleteBody"))
		return cairn_errf(CAIRN_E_CORRUPT,
				  "the store received different bytes than were "
				  "sent (%s); the upload was refused", code);
	if (!strcmp(code, "EntityTooSmall") || !strcmp(code, "EntityTooLarge") ||
	    !strcmp(code, "InvalidPart") || !strcmp(code, "InvalidPartOrder") ||
	    !strcmp(code, "InvalidArgument") || !strcmp(code, "KeyTooLongError"))
		return cairn_errf(CAIRN_E_INVAL, "%s: %s", code, msg);
	if ((!strcmp(code, "PreconditionFailed") || r->status == 412) &&
	    r->if_none_match)
		return cairn_errf(CAIRN_E_EXISTS, "an object with this key exists "
				  "already (PreconditionFailed on If-None-Match: "
				  "*)%s", r->attempts > 1
				  ? "; answered to a retry: an earlier attempt "
				    "whose answer was lost may have created it"
				  : "");
	if (!strcmp(code, "PreconditionFailed") || r->status == 412)
		return cairn_errf(CAIRN_E_EXISTS, "precondition failed (%s)",
				  have ? msg : "HTTP 412");
	if (r->if_none_match && (r->status == 501 ||
				 !strcmp(code, "NotImplemented")))
		return cairn_errf(CAIRN_E_UNSUPPORTED,
				  "the store at %s does not implement conditional "
				  "writes (If-None-Match: *, HTTP %ld%s%s)",
				  s->cfg.endpoint, r->status, have ? " " : "",
				  code);
	if (r->status == 429 || r->status >= 500 || !strcmp(code, "SlowDown"))
		return cairn_errf(CAIRN_E_STORE,
				  "the store kept failing (HTTP %ld%s%s) after %u "
				  "attempts; check the store's health at %s",
				  r->status, have ? " " : "", code, r->attempts,
				  s->cfg.endpoint);
	return cairn_errf(CAIRN_E_STORE, "%s refused (HTTP %ld%s%s%s%s)", r->op,
			  r->status, have ? " " : "", code,
			  have && msg[0] ? ": " : "", msg);
}

static int map_curl_error(s3_store *s, s3_rq *r)
{
	const char *detail = r->errbuf[0] ? r->errbuf : curl_easy_strerror(r->cc);

	if (r->read_err)
		return cairn_errf(CAIRN_E_IO, "reading the data to upload: %s",
				  r->read_msg);
	if (r->overflow)
		return cairn_errf(CAIRN_E_CORRUPT,
				  "the store sent more bytes than asked for "
				  "(%" PRIu64 ")",
				  r->dst ? r->dst_cap : (uint64_t)r->resp_max);
	switch (r->cc) {
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
		return cairn_errf(CAIRN_E_NET,
				  "cannot resolve the endpoint %s (%s); check the "
				  "endpoint URL and DNS", s->base, detail);
	case CURLE_COULDNT_CONNECT:
		return cairn_errf(CAIRN_E_NET,
				  "cannot connect to the endpoint %s after %u "
				  "attempts (%s); check that the store runs there",
				  s->base, r->attempts, detail);
	case CURLE_OPERATION_TIMEDOUT:
		return cairn_errf(CAIRN_E_TIMEOUT,
				  "the endpoint %s stalled after %u attempts (%s); "
				  "check the network and the store",
				  s->base, r->attempts, detail);
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_CERTPROBLEM:
		return cairn_errf(CAIRN_E_NET,
				  "the TLS certificate of %s is not trusted (%s); "
				  "give the CA bundle (flag or AWS_CA_BUNDLE)",
				  s->base, detail);
	default:
		return cairn_errf(CAIRN_E_NET, "%s to %s failed after %u "
				  "attempts: %s", r->op, s->base, r->attempts,
				  detail);
	}
}

/* ---- one request ---- */

static int build_target(s3_store *s, s3_rq *r, s3_buf *path, s3_buf *url)
{
	s3_buf_adds(path, s->path_base);
	s3_buf_adds(path, "/");
	if (r->key) {
		s3_buf_add_uri(path, s->prefix, 1);
		s3_buf_add_uri(path, r->key, 1);
	}
	s3_buf_adds(url, s->base);
	if (path->p)
		s3_buf_add(url, path->p, path->len);
	if (r->query[0]) {
		s3_buf_adds(url, "?");
		s3_buf_adds(url, r->query);
	}
	if (s3_buf_check(path) || s3_buf_check(url))
		return CAIRN_E_NOMEM;
	return 0;
}

static int retryable(const s3_rq *r)
{
	if (r->cc != CURLE_OK) {
		if (r->read_err || r->overflow)
			return 0;
		switch (r->cc) {
		case CURLE_COULDNT_RESOLVE_HOST:
		case CURLE_COULDNT_CONNECT:
			return 1; /* never reached the store: safe for all */
		case CURLE_OPERATION_TIMEDOUT:
		case CURLE_SEND_ERROR:
		case CURLE_RECV_ERROR:
		case CURLE_GOT_NOTHING:
		case CURLE_PARTIAL_FILE:
		case CURLE_SSL_CONNECT_ERROR:
		case CURLE_HTTP2:
		case CURLE_HTTP2_STREAM:
			return r->idempotent;
		default:
			return 0;
		}
	}
	if (r->status == 503 || r->status == 429)
		return 1; /* throttled: the store did not process it */
	/* A conditional write that raced another one on the same key: S3
	 * asks for a retry, and this one did not take effect. */
	if (r->status == 409 && r->if_none_match && r->resp.p &&
	    strstr(r->resp.p, "<Code>ConditionalRequestConflict</Code>"))
		return 1;
	/* A store that does not implement the condition will not later. */
	if (r->status == 501 && r->if_none_match)
		return 0;
	if (r->status >= 500)
		return r->idempotent;
	if (r->status == 400 && r->resp.p &&
	    strstr(r->resp.p, "<Code>RequestTimeout</Code>"))
		return r->idempotent;
	return 0;
}

static int s3_do(s3_store *s, s3_rq *r)
{
	s3_buf path = {0}, url = {0}, auth = {0}, hv = {0};
	struct curl_slist *hl = NULL;
	char md5[25] = "", sha[65] = "", date[17];
	const char *payload;
	uint64_t body = r->body || r->src ? r->body_len : 0;
	int has_body = !strcmp(r->method, "PUT") || !strcmp(r->method, "POST");
	CURL *h = NULL;
	int rc;

	r->s = s;
	if (r->src)
		r->body_len = r->src->len, body = r->body_len;
	if (!r->resp_max)
		r->resp_max = S3_ERR_BODY_MAX;
	if ((rc = build_target(s, r, &path, &url)))
		goto out;
	if (has_body) {
		int want_md5, want_sha, known;
		body_checks(s, r, &want_md5, &want_sha);
		/* A payload hash the caller computed as it wrote the bytes
		 * (cairn_obj_src.sha256) saves reading them once more; the
		 * store checks it against what it receives all the same. */
		known = want_sha && r->src && r->src->sha256;
		if (known)
			sha_hex_of(r->src->sha256, sha);
		if ((rc = body_hashes(s, r, want_md5, want_sha && !known, md5, sha)))
			goto out;
		payload = want_sha ? sha : S3_UNSIGNED;
	} else {
		payload = S3_EMPTY_SHA256;
	}
	h = handle_get(s);
	if (!h) {
		rc = cairn_errf(CAIRN_E_NOMEM, "s3: curl_easy_init failed");
		goto out;
	}

	for (r->attempts = 1;; r->attempts++) {
		s3_hdr sh[8];
		size_t nsh = 0;
		unsigned delay;

		curl_slist_free_all(hl);
		hl = NULL;
		auth.len = 0;
		r->pos = 0;
		r->dst_len = 0;
		r->resp.len = 0;
		if (r->resp.p)
			r->resp.p[0] = '\0';
		r->status = 0;
		r->overflow = r->read_err = 0;
		r->errbuf[0] = '\0';
		r->etag[0] = r->crange[0] = r->region_hdr[0] = '\0';
		r->has_clen = 0;
		r->retry_after = 0;

		s3_amz_date(time(NULL) + s3_test_clock_skew, date);
		sh[nsh++] = (s3_hdr){"host", s->host};
		sh[nsh++] = (s3_hdr){"x-amz-date", date};
		sh[nsh++] = (s3_hdr){"x-amz-content-sha256", payload};
		if (md5[0])
			sh[nsh++] = (s3_hdr){"content-md5", md5};
		if (r->range)
			sh[nsh++] = (s3_hdr){"range", r->range};
		if (r->if_none_match)
			sh[nsh++] = (s3_hdr){"if-none-match", r->if_none_match};
		if (s->cfg.session_token)
			sh[nsh++] = (s3_hdr){"x-amz-security-token",
					     s->cfg.session_token};
		for (size_t i = 0; i < nsh; i++) {
			if (!strcmp(sh[i].name, "host"))
				continue; /* curl sends Host from the URL */
			hv.len = 0;
			s3_buf_addf(&hv, "%s: %s", sh[i].name, sh[i].value);
			if ((rc = s3_buf_check(&hv)))
				goto out;
			struct curl_slist *n = curl_slist_append(hl, hv.p);
			if (!n) {
				rc = cairn_errf(CAIRN_E_NOMEM, "s3: out of memory");
				goto out;
			}
			hl = n;
		}
		if (s->cfg.access_key) {
			s3_sign_in in = {
				.method = r->method, .canon_uri = path.p,
				.canon_query = r->query, .hdrs = sh, .nhdrs = nsh,
				.payload_hash = payload, .service = "s3",
				.region = s->cfg.region, .amz_date = date,
				.access_key = s->cfg.access_key,
				.secret_key = s->cfg.secret_key,
			};
			s3_buf_adds(&auth, "Authorization: ");
			if ((rc = s3_sigv4_sign(&in, &auth, NULL)))
				goto out;
			struct curl_slist *n = curl_slist_append(hl, auth.p);
			OPENSSL_cleanse(auth.p, auth.len);
			if (!n) {
				rc = cairn_errf(CAIRN_E_NOMEM, "s3: out of memory");
				goto out;
			}
			hl = n;
		}
		{
			/* curl would add these on its own; S3 does not want a
			 * form content type, and 100-continue only pays off for
			 * large bodies. */
			const char *extra[3] = {
				r->content_type ? NULL : "Content-Type:",
				body >= (1u << 20) ? NULL : "Expect:",
				NULL};
			char ct[96];
			if (r->content_type) {
				snprintf(ct, sizeof ct, "Content-Type: %s",
					 r->content_type);
				extra[2] = ct;
			}
			for (int i = 0; i < 3; i++) {
				struct curl_slist *n;
				if (!extra[i])
					continue;
				n = curl_slist_append(hl, extra[i]);
				if (!n) {
					rc = cairn_errf(CAIRN_E_NOMEM,
							"s3: out of memory");
					goto out;
				}
				hl = n;
			}
		}

		curl_easy_reset(h);
		curl_easy_setopt(h, CURLOPT_SHARE, s->share);
		curl_easy_setopt(h, CURLOPT_URL, url.p);
		curl_easy_setopt(h, CURLOPT_PATH_AS_IS, 1L);
		curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
		curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
		curl_easy_setopt(h, CURLOPT_ERRORBUFFER, r->errbuf);
		curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)s->connect_ms);
		curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
		curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME,
				 (long)((s->stall_ms + 999) / 1000));
		curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR,
				 s->https ? "https" : "http,https");
		curl_easy_setopt(h, CURLOPT_BUFFERSIZE, 512L * 1024);
		curl_easy_setopt(h, CURLOPT_UPLOAD_BUFFERSIZE, 1024L * 1024);
		curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
		curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
		curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
		if (s->cfg.ca_bundle)
			curl_easy_setopt(h, CURLOPT_CAINFO, s->cfg.ca_bundle);
		curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
		curl_easy_setopt(h, CURLOPT_HEADERDATA, r);
		curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_write);
		curl_easy_setopt(h, CURLOPT_WRITEDATA, r);
		if (!strcmp(r->method, "PUT")) {
			curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
			curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE,
					 (curl_off_t)body);
		} else if (!strcmp(r->method, "POST")) {
			curl_easy_setopt(h, CURLOPT_POST, 1L);
			curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE,
					 (curl_off_t)body);
		} else if (!strcmp(r->method, "HEAD")) {
			curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
		} else if (strcmp(r->method, "GET") != 0) {
			curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, r->method);
		}
		if (has_body) {
			curl_easy_setopt(h, CURLOPT_READFUNCTION, on_read);
			curl_easy_setopt(h, CURLOPT_READDATA, r);
			curl_easy_setopt(h, CURLOPT_SEEKFUNCTION, on_seek);
			curl_easy_setopt(h, CURLOPT_SEEKDATA, r);
		}

		r->cc = curl_easy_perform(h);
		if (r->cc == CURLE_OK) {
			long st = 0;
			curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &st);
			r->status = st;
		}
		if (r->attempts > s->max_retries || !retryable(r))
			break;

		delay = S3_BACKOFF_BASE_MS << (r->attempts - 1 < 10 ? r->attempts - 1 : 10);
		if (delay > S3_BACKOFF_CAP_MS)
			delay = S3_BACKOFF_CAP_MS;
		delay = delay / 2 + (unsigned)(s3_rand() % (delay / 2 + 1));
		if (r->retry_after > 0) {
			long ra = r->retry_after > S3_RETRY_AFTER_CAP_S
				  ? S3_RETRY_AFTER_CAP_S : r->retry_after;
			if ((unsigned)ra * 1000u > delay)
				delay = (unsigned)ra * 1000u;
		}
		CAIRN_DEBUG("s3", "%s %s: attempt %u failed (%s, HTTP %ld); "
			    "retrying in %u ms", r->op, r->key ? r->key : s->bucket,
			    r->attempts, curl_easy_strerror(r->cc), r->status,
			    delay);
		sleep_ms(delay);
	}

	if (r->cc != CURLE_OK)
		rc = map_curl_error(s, r);
	else if (r->status < 200 || r->status >= 300)
		rc = map_http_error(s, r);
	else
		rc = 0;
out:
	if (h)
		handle_put(s, h);
	curl_slist_free_all(hl);
	if (auth.p)
		OPENSSL_cleanse(auth.p, auth.cap);
	s3_buf_free(&auth);
	s3_buf_free(&hv);
	s3_buf_free(&path);
	s3_buf_free(&url);
	return rc;
}

/* ---- open / close ---- */

static int parse_url(s3_store *s, const char *url)
{
	const char *b = url + 5, *slash;
	size_t blen, plen;

	if (strncmp(url, "s3://", 5) != 0)
		return cairn_errf(CAIRN_E_INVAL, "'%s' is not an s3:// URL", url);
	slash = strchr(b, '/');
	blen = slash ? (size_t)(slash - b) : strlen(b);
	if (blen < 3 || blen > 63)
		return cairn_errf(CAIRN_E_INVAL,
				  "'%s': a bucket name has 3 to 63 characters", url);
	for (size_t i = 0; i < blen; i++) {
		char c = b[i];
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '-' || c == '_' || (c >= 'A' && c <= 'Z')))
			return cairn_errf(CAIRN_E_INVAL,
					  "'%s': bucket names use a-z, 0-9, '.' and "
					  "'-' only", url);
	}
	s->bucket = strndup(b, blen);
	if (!s->bucket)
		return cairn_errf(CAIRN_E_NOMEM, "s3: out of memory");
	if (slash) {
		const char *p = slash + 1;
		plen = strlen(p);
		while (plen && p[plen - 1] == '/')
			plen--;
		if (plen && (p[0] == '/' || strstr(p, "//") ||
			     memchr(p, '?', plen) || memchr(p, '#', plen)))
			return cairn_errf(CAIRN_E_INVAL,
					  "'%s': the prefix must not have empty "
					  "segments, '?' or '#'", url);
		if (plen > 512)
			return cairn_errf(CAIRN_E_NAMETOOLONG,
					  "'%s': prefix longer than 512 bytes", url);
		s->prefix = malloc(plen + 2);
		if (!s->prefix)
			return cairn_errf(CAIRN_E_NOMEM, "s3: out of memory");
		memcpy(s->prefix, p, plen);
		if (plen)
			s->prefix[plen++] = '/';
		s->prefix[plen] = '\0';
	} else {
		s->prefix = strdup("");
		if (!s->prefix)
			return cairn_errf(CAIRN_E_NOMEM, "s3: out of memory");
	}
	s->url = strdup(url);
	if (!s->url)
		return cairn_errf(CAIRN_E_NOMEM, "s3: out of memory");
	return 0;
}

static void s3_close(void *impl)
{
	s3_store *s = impl;

	if (!s)
		return;
	for (size_t i = 0; i < s->npool; i++)
		curl_easy_cleanup(s->pool[i]);
	free(s->pool);
	if (s->share)
		curl_share_cleanup(s->share);
	for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_destroy(&s->share_mu[i]);
	pthread_mutex_destroy(&s->pool_mu);
	if (s->own_u)
		uring_close(s->u);
	s3_config_free(&s->cfg);
	free(s->bucket);
	free(s->prefix);
	free(s->url);
	free(s->base);
	free(s->host);
	free(s->path_base);
	free(s);
}

/* Does the bucket exist, and do the credentials work?  A one-key listing
 * under the prefix answers both, with an error body to explain a refusal.
 * AccessDenied is accepted: a writer may lack s3:ListBucket. */
static int s3_probe(s3_store *s)
{
	s3_buf q = {0};
	s3_rq r = {.op = "list", .method = "GET", .idempotent = 1,
		   .resp_max = S3_XML_MAX_BODY};
	int rc;

	s3_buf_adds(&q, "list-type=2&max-keys=1&prefix=");
	s3_buf_add_uri(&q, s->prefix, 0);
	if ((rc = s3_buf_check(&q)))
		return rc;
	r.query = q.p;
	rc = s3_do(s, &r);
	if (rc == CAIRN_E_PERM) {
		CAIRN_INFO("s3", "%s: listing refused (%s); going on without it",
			   s->url, cairn_errmsg());
		cairn_err_clear();
		rc = 0;
	}
	s3_buf_free(&r.resp);
	s3_buf_free(&q);
	return rc;
}

static int s3_open(const char *url, const cairn_objstore_opts *opts,
		   void **impl)
{
	const cairn_s3_opts *o = &opts->s3;
	s3_store *s;
	const char *hp;
	int rc, path_style;

	pthread_once(&s3_global_once, s3_global_init);
	if (s3_global_rc != CURLE_OK)
		return cairn_errf(CAIRN_E_INTERNAL, "curl_global_init failed: %s",
				  curl_easy_strerror(s3_global_rc));
	s = calloc(1, sizeof *s);
	if (!s)
		return cairn_errf(CAIRN_E_NOMEM, "s3: out of memory");
	for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_init(&s->share_mu[i], NULL);
	pthread_mutex_init(&s->pool_mu, NULL);
	s->connect_ms = o->connect_timeout_ms ? o->connect_timeout_ms : 5000;
	s->stall_ms = o->stall_timeout_ms ? o->stall_timeout_ms : 30000;
	s->max_retries = o->max_retries ? o->max_retries : 8;
	if (o->max_retries == (unsigned)-1)
		s->max_retries = 0;

	if ((rc = parse_url(s, url)) || (rc = s3_config_resolve(o, &s->cfg)))
		goto fail;
	s->https = strncmp(s->cfg.endpoint, "https://", 8) == 0;
	if (!s->https && !o->allow_http && !env_true("CAIRN_S3_ALLOW_HTTP")) {
		rc = cairn_errf(CAIRN_E_INVAL,
				"s3 endpoint %s is plain http: refused unless "
				"allow-http is set (flag, or CAIRN_S3_ALLOW_HTTP=1; "
				"e.g. for a loopback test server)", s->cfg.endpoint);
		goto fail;
	}
	hp = s->cfg.endpoint + (s->https ? 8 : 7);
	if (o->addressing == 1)
		path_style = 1;
	else if (o->addressing == 2)
		path_style = 0;
	else /* auto: like the AWS CLI, virtual-hosted on AWS when the bucket
	      * name is a valid DNS label (no dots under TLS) */
		path_style = s->cfg.endpoint_custom ||
			     (s->https && strchr(s->bucket, '.')) ||
			     strchr(s->bucket, '_') ||
			     strpbrk(s->bucket, "ABCDEFGHIJKLMNOPQRSTUVWXYZ");
	if (path_style) {
		s->host = strdup(hp);
		s->base = strdup(s->cfg.endpoint);
		s->path_base = malloc(strlen(s->bucket) * 3 + 2);
		if (s->path_base) {
			s3_buf pb = {0};
			s3_buf_adds(&pb, "/");
			s3_buf_add_uri(&pb, s->bucket, 0);
			if (pb.oom) {
				s3_buf_free(&pb);
				free(s->path_base);
				s->path_base = NULL;
			} else {
				snprintf(s->path_base, strlen(s->bucket) * 3 + 2,
					 "%s", pb.p);
				s3_buf_free(&pb);
			}
		}
	} else {
		s3_buf b = {0};
		s3_buf_addf(&b, "%s.%s", s->bucket, hp);
		s->host = b.p;
		b = (s3_buf){0};
		s3_buf_addf(&b, "%s%s.%s", s->https ? "https://" : "http://",
			    s->bucket, hp);
		s->base = b.p;
		s->path_base = strdup("");
	}
	if (!s->host || !s->base || !s->path_base) {
		rc = cairn_errf(CAIRN_E_NOMEM, "s3: out of memory");
		goto fail;
	}

	s->share = curl_share_init();
	if (!s->share) {
		rc = cairn_errf(CAIRN_E_NOMEM, "s3: curl_share_init failed");
		goto fail;
	}
	curl_share_setopt(s->share, CURLSHOPT_LOCKFUNC, share_lock);
	curl_share_setopt(s->share, CURLSHOPT_UNLOCKFUNC, share_unlock);
	curl_share_setopt(s->share, CURLSHOPT_USERDATA, s);
	curl_share_setopt(s->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT);
	curl_share_setopt(s->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
	curl_share_setopt(s->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);

	if (opts->uring) {
		s->u = opts->uring;
	} else {
		if ((rc = uring_open(NULL, &s->u)))
			goto fail;
		s->own_u = 1;
	}
	if ((rc = s3_probe(s)))
		goto fail;
	CAIRN_INFO("s3", "opened %s at %s (region %s, %s addressing, "
		   "credentials from %s)", s->url, s->cfg.endpoint,
		   s->cfg.region, path_style ? "path-style" : "virtual-hosted",
		   s->cfg.source);
	*impl = s;
	return 0;
fail:
	s3_close(s);
	return rc;
}

static void s3_limits(void *impl, cairn_objstore_limits *out)
{
	(void)impl;
	out->min_part_size = S3_MIN_PART;
	out->max_part_size = S3_MAX_PART;
	out->max_parts = CAIRN_MPU_MAX_PARTS;
	out->max_object_size = S3_MAX_OBJECT;
	out->max_put_size = S3_MAX_PART;
	/* S3 honours If-None-Match: * on PutObject (since 2024-08), as do
	 * MinIO, R2 and the patched test server; a store that ignores the
	 * header would break the guarantee silently (docs/s3.md). */
	out->put_if_absent = 1;
}

static int key_fits(s3_store *s, const char *key)
{
	if (strlen(s->prefix) + strlen(key) > CAIRN_KEY_MAX)
		return cairn_errf(CAIRN_E_NAMETOOLONG,
				  "s3://%s/%s%s: prefix and key together exceed "
				  "%d bytes", s->bucket, s->prefix, key,
				  CAIRN_KEY_MAX);
	return 0;
}

/* ---- object operations ---- */

static int s3_put(void *impl, const char *key, const cairn_obj_src *src)
{
	s3_store *s = impl;
	s3_rq r = {.op = "put", .method = "PUT", .key = key, .query = "",
		   .idempotent = 1, .src = src,
		   .content_type = "application/octet-stream"};
	int rc;

	if ((rc = key_fits(s, key)))
		return rc;
	if (src->len > S3_MAX_PART)
		return cairn_errf(CAIRN_E_INVAL,
				  "s3://%s/%s%s: a single put is at most 5 GiB "
				  "(%" PRIu64 " bytes given); use a multipart "
				  "upload", s->bucket, s->prefix, key, src->len);
	rc = s3_do(s, &r);
	s3_buf_free(&r.resp);
	return rc;
}

/* PUT with If-None-Match: * (objstore.h).  Retried like a put: a retry
 * after a lost answer may find its own first attempt's object and answer
 * CAIRN_E_EXISTS, as objstore.h documents. */
static int s3_put_if_absent(void *impl, const char *key, const void *buf,
			    size_t len)
{
	s3_store *s = impl;
	cairn_obj_src src = {.buf = buf, .fd = -1, .off = 0, .len = len};
	s3_rq r = {.op = "put", .method = "PUT", .key = key, .query = "",
		   .idempotent = 1, .src = &src, .if_none_match = "*",
		   .content_type = "application/octet-stream"};
	int rc;

	if ((rc = key_fits(s, key)))
		return rc;
	if (len > S3_MAX_PART)
		return cairn_errf(CAIRN_E_INVAL,
				  "s3://%s/%s%s: a single put is at most 5 GiB "
				  "(%zu bytes given)", s->bucket, s->prefix, key,
				  len);
	rc = s3_do(s, &r);
	s3_buf_free(&r.resp);
	return rc;
}

static int s3_get(void *impl, const char *key, uint64_t off, void *buf,
		  uint64_t len, uint64_t *got)
{
	s3_store *s = impl;
	char range[64];
	s3_rq r = {.op = "get", .method = "GET", .key = key, .query = "",
		   .idempotent = 1, .dst = buf, .dst_cap = len, .range = range};
	unsigned long long a, b, total;
	int rc;

	*got = 0;
	if ((rc = key_fits(s, key)))
		return rc;
	if (len == 0) {
		/* Nothing to read, but a missing key is still an error. */
		r.method = "HEAD";
		r.op = "head";
		r.range = NULL;
		r.dst = NULL;
		rc = s3_do(s, &r);
		s3_buf_free(&r.resp);
		return rc;
	}
	snprintf(range, sizeof range, "bytes=%" PRIu64 "-%" PRIu64, off,
		 off + len - 1);
	rc = s3_do(s, &r);
	if (rc == CAIRN_E_STORE && r.status == 416) {
		/* Range past the end (or an empty object): nothing there. */
		cairn_err_clear();
		s3_buf_free(&r.resp);
		return 0;
	}
	s3_buf_free(&r.resp);
	if (rc)
		return rc;
	if (r.status == 206) {
		if (sscanf(r.crange, "bytes %llu-%llu/%llu", &a, &b, &total) != 3 ||
		    a != off || b < a || b - a + 1 != r.dst_len || b >= total)
			return cairn_errf(CAIRN_E_CORRUPT,
					  "the store sent Content-Range '%s' and "
					  "%" PRIu64 " bytes for range %s",
					  r.crange, r.dst_len, range);
	} else if (r.status == 200) {
		/* The whole object (a store that ignores Range): only usable
		 * when we asked from 0 and it fits, which on_write checked. */
		if (off != 0)
			return cairn_errf(CAIRN_E_CORRUPT,
					  "the store ignored the range %s", range);
	}
	if (r.has_clen && r.clen != r.dst_len)
		return cairn_errf(CAIRN_E_CORRUPT,
				  "short body: %" PRIu64 " of %" PRIu64
				  " bytes", r.dst_len, r.clen);
	*got = r.dst_len;
	return 0;
}

static int s3_head(void *impl, const char *key, cairn_obj_info *out)
{
	s3_store *s = impl;
	s3_rq r = {.op = "head", .method = "HEAD", .key = key, .query = "",
		   .idempotent = 1};
	int rc;

	if ((rc = key_fits(s, key)))
		return rc;
	rc = s3_do(s, &r);
	s3_buf_free(&r.resp);
	if (rc)
		return rc;
	if (!r.has_clen)
		return cairn_errf(CAIRN_E_CORRUPT,
				  "s3://%s/%s%s: HEAD answer without Content-Length",
				  s->bucket, s->prefix, key);
	memset(out, 0, sizeof *out);
	out->size = r.clen;
	out->mtime = r.mtime;
	snprintf(out->etag, sizeof out->etag, "%s", r.etag);
	return 0;
}

static int s3_del(void *impl, const char *key)
{
	s3_store *s = impl;
	s3_rq r = {.op = "delete", .method = "DELETE", .key = key, .query = "",
		   .idempotent = 1};
	int rc;

	if ((rc = key_fits(s, key)))
		return rc;
	rc = s3_do(s, &r);
	if (rc == CAIRN_E_NOTFOUND && r.status == 404 && r.resp.p &&
	    strstr(r.resp.p, "NoSuchKey")) {
		/* Some stores answer 404 for a missing key: still deleted. */
		cairn_err_clear();
		rc = 0;
	}
	s3_buf_free(&r.resp);
	return rc;
}

static int del_chunk(s3_store *s, const char *const *keys, size_t n, int *rcs)
{
	s3_buf body = {0};
	s3_rq r = {.op = "delete-objects", .method = "POST", .key = NULL,
		   .query = "delete=", .idempotent = 1,
		   .content_type = "application/xml",
		   .resp_max = S3_XML_MAX_BODY};
	int rc;

	s3_buf_adds(&body, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>"
		    "<Delete><Quiet>true</Quiet>");
	for (size_t i = 0; i < n; i++) {
		if ((rc = key_fits(s, keys[i])))
			goto out;
		s3_buf_adds(&body, "<Object><Key>");
		s3_buf_add_xml(&body, s->prefix);
		s3_buf_add_xml(&body, keys[i]);
		s3_buf_adds(&body, "</Key></Object>");
	}
	s3_buf_adds(&body, "</Delete>");
	if ((rc = s3_buf_check(&body)))
		goto out;
	r.body = body.p;
	r.body_len = body.len;
	if ((rc = s3_do(s, &r)))
		goto out;
	if (rcs)
		for (size_t i = 0; i < n; i++)
			rcs[i] = 0;
	rc = s3_xml_parse_delete(r.resp.p ? r.resp.p : "", r.resp.len,
				 s->prefix, keys, n, rcs);
out:
	s3_buf_free(&body);
	s3_buf_free(&r.resp);
	return rc;
}

static int s3_del_batch(void *impl, const char *const *keys, size_t n,
			int *rcs)
{
	s3_store *s = impl;
	int first = 0;

	for (size_t i = 0; i < n; i += S3_DELETE_BATCH) {
		size_t m = n - i < S3_DELETE_BATCH ? n - i : S3_DELETE_BATCH;
		int rc = del_chunk(s, keys + i, m, rcs ? rcs + i : NULL);
		if (rc) {
			if (rcs)
				for (size_t j = i; j < i + m; j++)
					rcs[j] = rc;
			return rc;
		}
		for (size_t j = i; !first && rcs && j < i + m; j++) {
			if (rcs[j]) {
				first = cairn_errf(rcs[j],
						   "s3://%s/%s%s: delete refused",
						   s->bucket, s->prefix, keys[j]);
			}
		}
	}
	return first;
}

static int s3_list(void *impl, const char *prefix, const char *token,
		   unsigned max_keys, cairn_obj_list *out)
{
	s3_store *s = impl;
	s3_buf q = {0}, full = {0};
	s3_rq r = {.op = "list", .method = "GET", .key = NULL, .idempotent = 1,
		   .resp_max = S3_XML_MAX_BODY};
	int rc;

	memset(out, 0, sizeof *out);
	if (max_keys == 0 || max_keys > 1000)
		max_keys = 1000;
	s3_buf_adds(&full, s->prefix);
	s3_buf_adds(&full, prefix ? prefix : "");
	/* Canonical order: continuation-token, list-type, max-keys, prefix. */
	if (token && *token) {
		s3_buf_adds(&q, "continuation-token=");
		s3_buf_add_uri(&q, token, 0);
		s3_buf_adds(&q, "&");
	}
	s3_buf_addf(&q, "list-type=2&max-keys=%u&prefix=", max_keys);
	if (full.p)
		s3_buf_add_uri(&q, full.p, 0);
	if ((rc = s3_buf_check(&q)) || (rc = s3_buf_check(&full)))
		goto out;
	r.query = q.p;
	if ((rc = s3_do(s, &r)))
		goto out;
	rc = s3_xml_parse_list(r.resp.p ? r.resp.p : "", r.resp.len, s->prefix,
			       max_keys, out);
	if (rc)
		rc = cairn_err_wrap(rc, "s3://%s/%s (list)", s->bucket,
				    full.p ? full.p : "");
out:
	s3_buf_free(&q);
	s3_buf_free(&full);
	s3_buf_free(&r.resp);
	return rc;
}

/* ---- multipart ---- */

static int s3_mpu_create(void *impl, const char *key,
			 char upload_id[CAIRN_UPLOAD_ID_MAX])
{
	s3_store *s = impl;
	s3_rq r = {.op = "create-multipart-upload", .method = "POST", .key = key,
		   .query = "uploads=", .idempotent = 0, .body = "",
		   .body_len = 0, .content_type = "application/octet-stream",
		   .resp_max = S3_XML_MAX_BODY};
	int rc;

	if ((rc = key_fits(s, key)))
		return rc;
	if (!(rc = s3_do(s, &r)))
		rc = s3_xml_parse_upload_id(r.resp.p ? r.resp.p : "", r.resp.len,
					    upload_id);
	s3_buf_free(&r.resp);
	return rc;
}

static int upload_query(s3_buf *q, unsigned part_no, const char *upload_id)
{
	if (part_no)
		s3_buf_addf(q, "partNumber=%u&", part_no);
	s3_buf_adds(q, "uploadId=");
	s3_buf_add_uri(q, upload_id, 0);
	return s3_buf_check(q);
}

static int s3_mpu_part(void *impl, const char *key, const char *upload_id,
		       unsigned part_no, const cairn_obj_src *src,
		       cairn_mpu_part *out)
{
	s3_store *s = impl;
	s3_buf q = {0};
	s3_rq r = {.op = "upload-part", .method = "PUT", .key = key,
		   .idempotent = 1, .src = src};
	int rc;

	if ((rc = key_fits(s, key)))
		return rc;
	if (part_no < 1 || part_no > CAIRN_MPU_MAX_PARTS)
		return cairn_errf(CAIRN_E_INVAL,
				  "s3://%s/%s%s: part number %u is outside "
				  "1..%d", s->bucket, s->prefix, key, part_no,
				  CAIRN_MPU_MAX_PARTS);
	if (src->len > S3_MAX_PART)
		return cairn_errf(CAIRN_E_INVAL,
				  "s3://%s/%s%s: part %u of %" PRIu64 " bytes "
				  "exceeds S3's 5 GiB part limit", s->bucket,
				  s->prefix, key, part_no, src->len);
	if ((rc = upload_query(&q, part_no, upload_id)))
		goto out;
	r.query = q.p;
	if ((rc = s3_do(s, &r)))
		goto out;
	if (!r.etag[0]) {
		rc = cairn_errf(CAIRN_E_CORRUPT,
				"s3://%s/%s%s: upload of part %u answered "
				"without an ETag", s->bucket, s->prefix, key,
				part_no);
		goto out;
	}
	memset(out, 0, sizeof *out);
	out->number = part_no;
	out->size = src->len;
	snprintf(out->etag, sizeof out->etag, "%s", r.etag);
out:
	s3_buf_free(&q);
	s3_buf_free(&r.resp);
	return rc;
}

static int s3_mpu_complete(void *impl, const char *key, const char *upload_id,
			   const cairn_mpu_part *parts, size_t n)
{
	s3_store *s = impl;
	s3_buf q = {0}, body = {0};
	s3_rq r = {.op = "complete-multipart-upload", .method = "POST",
		   .key = key, .idempotent = 1, .content_type = "application/xml",
		   .resp_max = S3_XML_MAX_BODY};
	s3_xml_error e;
	uint64_t total = 0;
	int rc, is_err;

	if ((rc = key_fits(s, key)))
		return rc;
	if (n == 0 || n > CAIRN_MPU_MAX_PARTS)
		return cairn_errf(CAIRN_E_INVAL,
				  "s3://%s/%s%s: %zu parts; a multipart upload "
				  "has 1..%d", s->bucket, s->prefix, key, n,
				  CAIRN_MPU_MAX_PARTS);
	for (size_t i = 0; i < n; i++) {
		if (i && parts[i].number <= parts[i - 1].number)
			return cairn_errf(CAIRN_E_INVAL,
					  "s3://%s/%s%s: parts must be sorted by "
					  "number (part %u after %u)", s->bucket,
					  s->prefix, key, parts[i].number,
					  parts[i - 1].number);
		if (i + 1 < n && parts[i].size < S3_MIN_PART)
			return cairn_errf(CAIRN_E_INVAL,
					  "s3://%s/%s%s: part %u has %" PRIu64
					  " bytes; every part but the last needs "
					  "at least 5 MiB", s->bucket, s->prefix,
					  key, parts[i].number, parts[i].size);
		total += parts[i].size;
	}
	if ((rc = upload_query(&q, 0, upload_id)))
		goto out;
	s3_buf_adds(&body, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>"
		    "<CompleteMultipartUpload>");
	for (size_t i = 0; i < n; i++) {
		s3_buf_addf(&body, "<Part><PartNumber>%u</PartNumber><ETag>\"",
			    parts[i].number);
		s3_buf_add_xml(&body, parts[i].etag);
		s3_buf_adds(&body, "\"</ETag></Part>");
	}
	s3_buf_adds(&body, "</CompleteMultipartUpload>");
	if ((rc = s3_buf_check(&body)))
		goto out;
	r.query = q.p;
	r.body = body.p;
	r.body_len = body.len;
	rc = s3_do(s, &r);
	if (rc == CAIRN_E_NOTFOUND && r.attempts > 1) {
		/* Invariant 3: an earlier attempt may have completed it. */
		cairn_obj_info info;
		int hrc = s3_head(s, key, &info);
		if (hrc == 0 && info.size == total) {
			cairn_err_clear();
			rc = 0;
			goto out;
		}
		cairn_err_clear();
		rc = cairn_errf(CAIRN_E_NOTFOUND,
				"s3://%s/%s%s: the multipart upload vanished "
				"while completing it (NoSuchUpload)", s->bucket,
				s->prefix, key);
	}
	if (rc)
		goto out;
	if ((rc = s3_xml_parse_complete(r.resp.p ? r.resp.p : "", r.resp.len,
					&is_err, &e)))
		goto out;
	if (is_err) {
		/* 200 with an <Error> inside: map it like any error answer. */
		r.status = !strcmp(e.code, "InternalError") ? 500 : 400;
		rc = map_http_error(s, &r);
	}
out:
	s3_buf_free(&q);
	s3_buf_free(&body);
	s3_buf_free(&r.resp);
	return rc;
}

static int s3_mpu_abort(void *impl, const char *key, const char *upload_id)
{
	s3_store *s = impl;
	s3_buf q = {0};
	s3_rq r = {.op = "abort-multipart-upload", .method = "DELETE",
		   .key = key, .idempotent = 1};
	int rc;

	if ((rc = key_fits(s, key)))
		return rc;
	if ((rc = upload_query(&q, 0, upload_id)))
		goto out;
	r.query = q.p;
	rc = s3_do(s, &r);
out:
	s3_buf_free(&q);
	s3_buf_free(&r.resp);
	return rc;
}

const struct objstore_backend objstore_s3 = {
	.scheme = "s3",
	.open = s3_open,
	.close = s3_close,
	.limits = s3_limits,
	.put = s3_put,
	.put_if_absent = s3_put_if_absent,
	.get = s3_get,
	.head = s3_head,
	.del = s3_del,
	.del_batch = s3_del_batch,
	.list = s3_list,
	.mpu_create = s3_mpu_create,
	.mpu_part = s3_mpu_part,
	.mpu_complete = s3_mpu_complete,
	.mpu_abort = s3_mpu_abort,
};
