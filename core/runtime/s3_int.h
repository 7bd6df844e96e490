/*
 * s3_int.h - the pieces of the s3:// backend (private to core/runtime).
 *
 *   s3_sigv4.c  AWS Signature Version 4 (OpenSSL HMAC/SHA-256), URI
 *               encoding, a growable string buffer, MD5/base64 helpers.
 *   s3_creds.c  where credentials, region, endpoint and CA bundle come from:
 *               flags, environment, ~/.aws/credentials and ~/.aws/config, in
 *               the order the AWS CLI uses.
 *   s3_xml.c    bounded expat parsers of S3's XML answers (errors, listings,
 *               multipart results, batch delete results).
 *   os_s3.c     the backend itself: libcurl requests, retries, error
 *               mapping; exports objstore_s3.
 *
 * They are split so that each can be unit-tested without a server
 * (tests/s3/s3_sigv4_test.c, s3_creds_test.c, s3_xml_test.c).
 */
#ifndef CAIRN_S3_INT_H
#define CAIRN_S3_INT_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "cairn/objstore.h"

/* ---- growable string (s3_sigv4.c) ---- */

typedef struct s3_buf {
	char *p;      /* always NUL-terminated when non-NULL */
	size_t len;
	size_t cap;
	int oom;      /* sticky: an append failed; p holds what fit */
} s3_buf;

void s3_buf_add(s3_buf *b, const void *data, size_t n);
void s3_buf_adds(s3_buf *b, const char *s);
void s3_buf_addf(s3_buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Append s percent-encoded as SigV4 wants: every byte but A-Z a-z 0-9
 * - . _ ~ becomes %XX (upper-case hex); '/' is kept when keep_slash. */
void s3_buf_add_uri(s3_buf *b, const char *s, int keep_slash);
/* Append s with XML's five special characters escaped. */
void s3_buf_add_xml(s3_buf *b, const char *s);
void s3_buf_free(s3_buf *b);
/* CAIRN_E_NOMEM (with context) if an append failed, else 0. */
int s3_buf_check(const s3_buf *b);

/* ---- Signature V4 (s3_sigv4.c) ---- */

typedef struct s3_hdr {
	const char *name;   /* any case; signed lower-cased */
	const char *value;  /* leading/trailing blanks are trimmed when signed */
} s3_hdr;

typedef struct s3_sign_in {
	const char *method;       /* "GET" */
	const char *canon_uri;    /* already URI-encoded path, "/" at least */
	const char *canon_query;  /* already canonical (sorted, encoded), "" */
	const s3_hdr *hdrs;       /* the headers to sign (host, x-amz-date, ...) */
	size_t nhdrs;
	const char *payload_hash; /* hex SHA-256 of the body, or UNSIGNED-PAYLOAD */
	const char *service;      /* "s3" */
	const char *region;
	const char *amz_date;     /* "20130524T000000Z" */
	const char *access_key;
	const char *secret_key;
} s3_sign_in;

#define S3_EMPTY_SHA256 \
	"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define S3_UNSIGNED "UNSIGNED-PAYLOAD"

/* Compute the Authorization header value ("AWS4-HMAC-SHA256 Credential=...,
 * SignedHeaders=..., Signature=...") into *auth (appended).  If creq is
 * not NULL the canonical request is appended to it (tests, debugging).
 * Errors: CAIRN_E_NOMEM, CAIRN_E_INTERNAL (OpenSSL), CAIRN_E_INVAL (more
 * than 32 headers). */
int s3_sigv4_sign(const s3_sign_in *in, s3_buf *auth, s3_buf *creq);

/* "YYYYMMDDTHHMMSSZ" of t (UTC). */
void s3_amz_date(time_t t, char out[17]);

/* base64 of len bytes into out (NUL-terminated), out needs 4*ceil(len/3)+1. */
void s3_base64(const uint8_t *in, size_t len, char *out);

/* ---- configuration and credentials (s3_creds.c) ---- */

typedef struct s3_config {
	char *access_key;      /* NULL: anonymous requests (unsigned) */
	char *secret_key;
	char *session_token;
	char *region;
	char *endpoint;        /* scheme://host[:port], no trailing '/' */
	int endpoint_custom;   /* endpoint came from a flag, env or profile */
	char *ca_bundle;       /* NULL: the system store */
	char *profile;         /* the profile name in effect */
	char source[320];      /* where the credentials came from, for messages:
				  "flags", "environment (AWS_ACCESS_KEY_ID)",
				  "profile 'x' in /root/.aws/credentials" */
} s3_config;

/* Resolve o (flags) plus the environment and the shared files, in the AWS
 * CLI's order.  Every secret found is registered with cairn_log_add_secret.
 * Errors: CAIRN_E_NOMEM, CAIRN_E_IO (unreadable file other than ENOENT),
 * CAIRN_E_AUTH (an access key without its secret, a named profile that
 * does not exist), CAIRN_E_INVAL (a malformed endpoint). */
int s3_config_resolve(const cairn_s3_opts *o, s3_config *out);
void s3_config_free(s3_config *c);

/* ---- XML answers (s3_xml.c) ---- */

#define S3_XML_MAX_BODY (32u << 20) /* larger answers are refused */

typedef struct s3_xml_error {
	char code[64];
	char message[256];
	char key[256];
	char bucket[128];
	char region[64];       /* AuthorizationHeaderMalformed, redirects */
	char endpoint[256];    /* PermanentRedirect */
	char request_id[96];
	char server_time[64];  /* RequestTimeTooSkewed */
} s3_xml_error;

/* Parse an <Error> document.  Returns 0 and fills *e when body is one;
 * CAIRN_E_CORRUPT when it is not well-formed or not an <Error>. */
int s3_xml_parse_error(const char *body, size_t len, s3_xml_error *e);

/* Parse a ListObjectsV2 answer.  Keys must start with strip (the store's
 * prefix, "" for none), which is removed.  *out is filled (caller frees with
 * objstore_list_free); out->next is NextContinuationToken when
 * IsTruncated is true.  Errors: CAIRN_E_CORRUPT (malformed, more than
 * max_entries entries, a key outside strip, truncated without a token),
 * CAIRN_E_NOMEM. */
int s3_xml_parse_list(const char *body, size_t len, const char *strip,
		      size_t max_entries, cairn_obj_list *out);

/* InitiateMultipartUploadResult -> UploadId.  CAIRN_E_CORRUPT if missing
 * or too long. */
int s3_xml_parse_upload_id(const char *body, size_t len,
			   char upload_id[CAIRN_UPLOAD_ID_MAX]);

/* A CompleteMultipartUpload answer may be 200 with an <Error> inside.
 * *is_error is set and *e filled then; otherwise the result must be a
 * CompleteMultipartUploadResult.  CAIRN_E_CORRUPT when neither. */
int s3_xml_parse_complete(const char *body, size_t len, int *is_error,
			  s3_xml_error *e);

/* DeleteResult: for each <Error> whose <Key> is keys[i], rcs[i] receives
 * a code (mapped from the S3 code) and, if msgs is not NULL, a message.
 * strip is removed from the keys first. */
int s3_xml_parse_delete(const char *body, size_t len, const char *strip,
			const char *const *keys, size_t n, int *rcs);

/* ---- the backend (os_s3.c) ---- */

/* Testing hook: seconds added to the clock used for signing (simulates a
 * skewed local clock).  0 in production. */
extern volatile long s3_test_clock_skew;

#endif
