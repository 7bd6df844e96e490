/*
 * s3_sigv4.c - AWS Signature Version 4, and the small string helpers the
 * S3 backend builds requests with.
 *
 * Signing (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_sigv-create-signed-request.html):
 *
 *   canonical request = METHOD \n URI \n QUERY \n (name:value\n)* \n
 *                       signed;header;names \n payload-hash
 *   string to sign    = "AWS4-HMAC-SHA256" \n amz-date \n scope \n
 *                       hex(sha256(canonical request))
 *   scope             = yyyymmdd/region/service/aws4_request
 *   signing key       = HMAC(HMAC(HMAC(HMAC("AWS4"+secret, yyyymmdd),
 *                            region), service), "aws4_request")
 *   signature         = hex(HMAC(signing key, string to sign))
 *
 * Invariants
 *   1. The secret key is used only as HMAC key material; it is never copied
 *      into any output buffer (the canonical request and the Authorization
 *      header carry the access key id only).
 *   2. Headers are signed lower-cased, sorted by name, values trimmed and
 *      inner runs of blanks collapsed, as the specification says; the caller
 *      must send the same values.
 *   3. The signer is pure: same input, same output (the unit test replays
 *      AWS's published examples).
 *
 * s3_buf is a growable NUL-terminated string with a sticky out-of-memory
 * flag, so that a request can be built with many appends and checked once.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "cairn/err.h"
#include "s3_int.h"

#define SIGV4_MAX_HDRS 32

/* ---- s3_buf ---- */

static int buf_grow(s3_buf *b, size_t extra)
{
	size_t need, cap;
	char *p;

	if (b->oom)
		return -1;
	need = b->len + extra + 1;
	if (need <= b->cap)
		return 0;
	cap = b->cap ? b->cap : 256;
	while (cap < need)
		cap *= 2;
	p = realloc(b->p, cap);
	if (!p) {
		b->oom = 1;
		return -1;
	}
	b->p = p;
	b->cap = cap;
	return 0;
}

void s3_buf_add(s3_buf *b, const void *data, size_t n)
{
	if (buf_grow(b, n))
		return;
	memcpy(b->p + b->len, data, n);
	b->len += n;
	b->p[b->len] = '\0';
}

void s3_buf_adds(s3_buf *b, const char *s)
{
	s3_buf_add(b, s, strlen(s));
}

void s3_buf_addf(s3_buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0 || buf_grow(b, (size_t)n))
		return;
	va_start(ap, fmt);
	vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

void s3_buf_add_uri(s3_buf *b, const char *s, int keep_slash)
{
	static const char hex[] = "0123456789ABCDEF";

	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		    (c >= '0' && c <= '9') || c == '-' || c == '.' ||
		    c == '_' || c == '~' || (c == '/' && keep_slash)) {
			s3_buf_add(b, s, 1);
		} else {
			char e[3] = {'%', hex[c >> 4], hex[c & 15]};
			s3_buf_add(b, e, 3);
		}
	}
}

void s3_buf_add_xml(s3_buf *b, const char *s)
{
	for (; *s; s++) {
		switch (*s) {
		case '&': s3_buf_adds(b, "&amp;"); break;
		case '<': s3_buf_adds(b, "&lt;"); break;
		case '>': s3_buf_adds(b, "&gt;"); break;
		case '"': s3_buf_adds(b, "&quot;"); break;
		case '\'': s3_buf_adds(b, "&apos;"); break;
		default: s3_buf_add(b, s, 1); break;
		}
	}
}

void s3_buf_free(s3_buf *b)
{
	free(b->p);
	memset(b, 0, sizeof *b);
}

int s3_buf_check(const s3_buf *b)
{
	if (b->oom)
		return cairn_errf(CAIRN_E_NOMEM, "s3: out of memory building a request");
	return 0;
}

/* ---- encodings ---- */

void s3_amz_date(time_t t, char out[17])
{
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(out, 17, "%Y%m%dT%H%M%SZ", &tm);
}

void s3_base64(const uint8_t *in, size_t len, char *out)
{
	/* EVP_EncodeBlock writes 4*ceil(len/3) bytes and a NUL. */
	EVP_EncodeBlock((unsigned char *)out, in, (int)len);
}

static void hex_of(const uint8_t *in, size_t n, char *out)
{
	static const char hex[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = hex[in[i] >> 4];
		out[2 * i + 1] = hex[in[i] & 15];
	}
	out[2 * n] = '\0';
}

static int hmac256(const void *key, size_t klen, const void *msg, size_t mlen,
		   uint8_t out[32])
{
	unsigned int olen = 32;

	if (!HMAC(EVP_sha256(), key, (int)klen, msg, mlen, out, &olen) ||
	    olen != 32)
		return cairn_errf(CAIRN_E_INTERNAL, "s3 sigv4: HMAC-SHA256 failed");
	return 0;
}

static int sha256_hex(const void *msg, size_t len, char out[65])
{
	uint8_t d[32];
	unsigned int dl = 32;

	if (!EVP_Digest(msg, len, d, &dl, EVP_sha256(), NULL))
		return cairn_errf(CAIRN_E_INTERNAL, "s3 sigv4: SHA-256 failed");
	hex_of(d, 32, out);
	return 0;
}

/* ---- canonical headers ---- */

static int hdr_cmp(const void *a, const void *b)
{
	const s3_hdr *x = a, *y = b;

	return strcasecmp(x->name, y->name);
}

static void add_lower(s3_buf *b, const char *s)
{
	for (; *s; s++) {
		char c = *s;
		if (c >= 'A' && c <= 'Z')
			c = (char)(c - 'A' + 'a');
		s3_buf_add(b, &c, 1);
	}
}

/* Trim, and collapse inner runs of spaces to one (SigV4's Trimall). */
static void add_trimall(s3_buf *b, const char *v)
{
	const char *end;
	int space = 0;

	while (*v == ' ' || *v == '\t')
		v++;
	end = v + strlen(v);
	while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
		end--;
	for (; v < end; v++) {
		if (*v == ' ' || *v == '\t') {
			space = 1;
			continue;
		}
		if (space)
			s3_buf_add(b, " ", 1);
		space = 0;
		s3_buf_add(b, v, 1);
	}
}

int s3_sigv4_sign(const s3_sign_in *in, s3_buf *auth, s3_buf *creq_out)
{
	s3_hdr h[SIGV4_MAX_HDRS];
	s3_buf creq = {0}, names = {0}, sts = {0}, kbuf = {0};
	char creq_hash[65], day[9], sig[65];
	uint8_t k[32];
	int rc;

	if (in->nhdrs > SIGV4_MAX_HDRS)
		return cairn_errf(CAIRN_E_INVAL, "s3 sigv4: %zu headers, at most %d",
				  in->nhdrs, SIGV4_MAX_HDRS);
	memcpy(h, in->hdrs, in->nhdrs * sizeof *h);
	qsort(h, in->nhdrs, sizeof *h, hdr_cmp);

	for (size_t i = 0; i < in->nhdrs; i++) {
		if (i)
			s3_buf_adds(&names, ";");
		add_lower(&names, h[i].name);
	}

	s3_buf_addf(&creq, "%s\n%s\n%s\n", in->method, in->canon_uri,
		    in->canon_query);
	for (size_t i = 0; i < in->nhdrs; i++) {
		add_lower(&creq, h[i].name);
		s3_buf_adds(&creq, ":");
		add_trimall(&creq, h[i].value);
		s3_buf_adds(&creq, "\n");
	}
	s3_buf_adds(&creq, "\n");
	if (names.p)
		s3_buf_add(&creq, names.p, names.len);
	s3_buf_addf(&creq, "\n%s", in->payload_hash);
	if ((rc = s3_buf_check(&creq)) || (rc = s3_buf_check(&names)))
		goto out;
	if ((rc = sha256_hex(creq.p, creq.len, creq_hash)))
		goto out;

	memcpy(day, in->amz_date, 8);
	day[8] = '\0';
	s3_buf_addf(&sts, "AWS4-HMAC-SHA256\n%s\n%s/%s/%s/aws4_request\n%s",
		    in->amz_date, day, in->region, in->service, creq_hash);

	/* "AWS4" + secret, the first HMAC key; wiped below (invariant 1). */
	s3_buf_adds(&kbuf, "AWS4");
	s3_buf_adds(&kbuf, in->secret_key);
	if ((rc = s3_buf_check(&sts)) || (rc = s3_buf_check(&kbuf)))
		goto out;
	if ((rc = hmac256(kbuf.p, kbuf.len, day, 8, k)) ||
	    (rc = hmac256(k, 32, in->region, strlen(in->region), k)) ||
	    (rc = hmac256(k, 32, in->service, strlen(in->service), k)) ||
	    (rc = hmac256(k, 32, "aws4_request", 12, k)) ||
	    (rc = hmac256(k, 32, sts.p, sts.len, k)))
		goto out;
	hex_of(k, 32, sig);

	s3_buf_addf(auth,
		    "AWS4-HMAC-SHA256 Credential=%s/%s/%s/%s/aws4_request, "
		    "SignedHeaders=%s, Signature=%s",
		    in->access_key, day, in->region, in->service,
		    names.p ? names.p : "", sig);
	if (creq_out)
		s3_buf_add(creq_out, creq.p, creq.len);
	if ((rc = s3_buf_check(auth)) ||
	    (creq_out && (rc = s3_buf_check(creq_out))))
		goto out;
out:
	if (kbuf.p)
		OPENSSL_cleanse(kbuf.p, kbuf.cap);
	OPENSSL_cleanse(k, sizeof k);
	s3_buf_free(&kbuf);
	s3_buf_free(&creq);
	s3_buf_free(&names);
	s3_buf_free(&sts);
	return rc;
}
