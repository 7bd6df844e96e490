/*
 * s3_xml.c - bounded parsers of the XML documents S3 answers with, on expat.
 *
 * One small walker (xml_walk) runs expat and keeps the path of open
 * elements and the text of the innermost one; each document type is a
 * callback invoked at every element's end with that path and text.
 *
 * Invariants (the answers come from the network: trust nothing)
 *   1. Bounded: a body larger than S3_XML_MAX_BODY, nesting deeper than
 *      XML_DEPTH_MAX, an element text longer than XML_TEXT_MAX, or more list
 *      entries than the caller allows is CAIRN_E_CORRUPT, never unbounded
 *      memory.
 *   2. No DTD: a document with a DOCTYPE is refused before any entity can
 *      be declared (no entity expansion attacks, no external entities).
 *   3. A parse either succeeds with every output filled and validated
 *      (sizes are numbers, keys lie under the store's prefix), or fails
 *      with CAIRN_E_CORRUPT and the output freed; never a partial success.
 *   4. The parsers are pure functions of their input: tests/s3 replays a
 *      corpus of malformed documents through them and fuzz/ fuzzes them.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <expat.h>

#include "cairn/err.h"
#include "s3_int.h"

#define XML_DEPTH_MAX 8
#define XML_NAME_MAX 48
#define XML_TEXT_MAX 4096

typedef struct xml_walk xml_walk;
typedef int (*xml_end_fn)(xml_walk *w, const char *text, size_t len);

struct xml_walk {
	XML_Parser p;
	int depth;
	char path[XML_DEPTH_MAX][XML_NAME_MAX];
	char text[XML_TEXT_MAX + 1];
	size_t tlen;
	xml_end_fn on_end;
	void *ctx;
	int rc;
	char why[96];
};

static void walk_fail(xml_walk *w, int rc, const char *why)
{
	if (!w->rc) {
		w->rc = rc;
		snprintf(w->why, sizeof w->why, "%s", why);
	}
	XML_StopParser(w->p, XML_FALSE);
}

static void XMLCALL on_start(void *ud, const XML_Char *name,
			     const XML_Char **attrs)
{
	xml_walk *w = ud;
	(void)attrs;

	if (w->rc)
		return;
	if (w->depth >= XML_DEPTH_MAX) {
		walk_fail(w, CAIRN_E_CORRUPT, "nested too deep");
		return;
	}
	if (strlen(name) >= XML_NAME_MAX) {
		walk_fail(w, CAIRN_E_CORRUPT, "element name too long");
		return;
	}
	snprintf(w->path[w->depth], XML_NAME_MAX, "%s", name);
	w->depth++;
	w->tlen = 0;
	w->text[0] = '\0';
}

static void XMLCALL on_end(void *ud, const XML_Char *name)
{
	xml_walk *w = ud;
	int rc;
	(void)name;

	if (w->rc)
		return;
	rc = w->on_end(w, w->text, w->tlen);
	if (rc) {
		walk_fail(w, rc, "unexpected content");
		return;
	}
	w->depth--;
	w->tlen = 0;
	w->text[0] = '\0';
}

static void XMLCALL on_text(void *ud, const XML_Char *s, int len)
{
	xml_walk *w = ud;

	if (w->rc || len <= 0)
		return;
	if (w->tlen + (size_t)len > XML_TEXT_MAX) {
		walk_fail(w, CAIRN_E_CORRUPT, "element text too long");
		return;
	}
	memcpy(w->text + w->tlen, s, (size_t)len);
	w->tlen += (size_t)len;
	w->text[w->tlen] = '\0';
}

static void XMLCALL on_doctype(void *ud, const XML_Char *name,
			       const XML_Char *sysid, const XML_Char *pubid,
			       int has_internal)
{
	(void)name;
	(void)sysid;
	(void)pubid;
	(void)has_internal;
	walk_fail(ud, CAIRN_E_CORRUPT, "DOCTYPE not allowed");
}

/* Is the open-element path exactly the given names? */
static int at(const xml_walk *w, int n, const char *a, const char *b,
	      const char *c)
{
	const char *v[3] = {a, b, c};

	if (w->depth != n)
		return 0;
	for (int i = 0; i < n && i < 3; i++)
		if (strcmp(w->path[i], v[i]) != 0)
			return 0;
	return 1;
}

static int walk_run(xml_walk *w, const char *body, size_t len,
		    const char *what)
{
	int rc = 0;

	if (len > S3_XML_MAX_BODY)
		return cairn_errf(CAIRN_E_CORRUPT,
				  "s3 %s answer of %zu bytes is larger than %u",
				  what, len, S3_XML_MAX_BODY);
	w->p = XML_ParserCreate("UTF-8");
	if (!w->p)
		return cairn_errf(CAIRN_E_NOMEM, "s3: out of memory (XML parser)");
	XML_SetUserData(w->p, w);
	XML_SetElementHandler(w->p, on_start, on_end);
	XML_SetCharacterDataHandler(w->p, on_text);
	XML_SetStartDoctypeDeclHandler(w->p, on_doctype);
	if (XML_Parse(w->p, body, (int)len, XML_TRUE) != XML_STATUS_OK) {
		if (w->rc)
			rc = cairn_errf(w->rc, "s3 %s answer is malformed: %s",
					what, w->why);
		else
			rc = cairn_errf(CAIRN_E_CORRUPT,
					"s3 %s answer is not well-formed XML: "
					"%s at line %lu",
					what,
					XML_ErrorString(XML_GetErrorCode(w->p)),
					(unsigned long)XML_GetCurrentLineNumber(w->p));
	} else if (w->rc) {
		rc = cairn_errf(w->rc, "s3 %s answer is malformed: %s", what,
				w->why);
	}
	XML_ParserFree(w->p);
	w->p = NULL;
	return rc;
}

static void copy_text(char *dst, size_t size, const char *s, size_t len)
{
	if (len >= size)
		len = size - 1;
	memcpy(dst, s, len);
	dst[len] = '\0';
}

/* ---- <Error> ---- */

typedef struct err_ctx {
	s3_xml_error *e;
	int root_ok;
} err_ctx;

static int error_field(s3_xml_error *e, const char *name, const char *t,
		       size_t n)
{
	if (!strcmp(name, "Code"))
		copy_text(e->code, sizeof e->code, t, n);
	else if (!strcmp(name, "Message"))
		copy_text(e->message, sizeof e->message, t, n);
	else if (!strcmp(name, "Key"))
		copy_text(e->key, sizeof e->key, t, n);
	else if (!strcmp(name, "BucketName"))
		copy_text(e->bucket, sizeof e->bucket, t, n);
	else if (!strcmp(name, "Region"))
		copy_text(e->region, sizeof e->region, t, n);
	else if (!strcmp(name, "Endpoint"))
		copy_text(e->endpoint, sizeof e->endpoint, t, n);
	else if (!strcmp(name, "RequestId"))
		copy_text(e->request_id, sizeof e->request_id, t, n);
	else if (!strcmp(name, "ServerTime"))
		copy_text(e->server_time, sizeof e->server_time, t, n);
	return 0;
}

static int error_end(xml_walk *w, const char *t, size_t n)
{
	err_ctx *c = w->ctx;

	if (w->depth == 1)
		c->root_ok = strcmp(w->path[0], "Error") == 0;
	else if (w->depth == 2 && strcmp(w->path[0], "Error") == 0)
		return error_field(c->e, w->path[1], t, n);
	return 0;
}

int s3_xml_parse_error(const char *body, size_t len, s3_xml_error *e)
{
	err_ctx c = {e, 0};
	xml_walk w = {.on_end = error_end, .ctx = &c};
	int rc;

	memset(e, 0, sizeof *e);
	if ((rc = walk_run(&w, body, len, "error")))
		return rc;
	if (!c.root_ok || !e->code[0])
		return cairn_errf(CAIRN_E_CORRUPT,
				  "s3 error answer has no <Error><Code>");
	return 0;
}

/* ---- ListObjectsV2 ---- */

typedef struct list_ctx {
	const char *strip;
	size_t strip_len;
	size_t max;
	cairn_obj_list *out;
	size_t cap;
	cairn_obj_entry cur;
	int has_key, has_size;
	int truncated, root_ok;
	char *next;
} list_ctx;

static int parse_u64(const char *t, size_t n, uint64_t *out)
{
	char tmp[32], *end;
	unsigned long long v;

	if (n == 0 || n >= sizeof tmp)
		return -1;
	memcpy(tmp, t, n);
	tmp[n] = '\0';
	if (tmp[0] < '0' || tmp[0] > '9')
		return -1;
	errno = 0;
	v = strtoull(tmp, &end, 10);
	if (errno || *end)
		return -1;
	*out = v;
	return 0;
}

/* "2009-10-12T17:50:30.000Z" -> seconds since the epoch. */
static int parse_iso8601(const char *t, size_t n, int64_t *out)
{
	char tmp[40];
	struct tm tm = {0};
	int y, mo, d, h, mi, s;

	if (n >= sizeof tmp)
		return -1;
	memcpy(tmp, t, n);
	tmp[n] = '\0';
	if (sscanf(tmp, "%4d-%2d-%2dT%2d:%2d:%2d", &y, &mo, &d, &h, &mi, &s) != 6)
		return -1;
	if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 ||
	    s > 60 || y < 1970 || y > 9999)
		return -1;
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = s;
	*out = (int64_t)timegm(&tm);
	return 0;
}

static int list_end(xml_walk *w, const char *t, size_t n)
{
	list_ctx *c = w->ctx;

	if (w->depth == 1) {
		c->root_ok = strcmp(w->path[0], "ListBucketResult") == 0;
		return 0;
	}
	if (strcmp(w->path[0], "ListBucketResult") != 0)
		return 0;
	if (at(w, 2, "ListBucketResult", "IsTruncated", NULL)) {
		c->truncated = n == 4 && memcmp(t, "true", 4) == 0;
	} else if (at(w, 2, "ListBucketResult", "NextContinuationToken", NULL)) {
		free(c->next);
		c->next = strndup(t, n);
		if (!c->next)
			return CAIRN_E_NOMEM;
	} else if (at(w, 3, "ListBucketResult", "Contents", "Key")) {
		if (c->has_key || n < c->strip_len ||
		    memcmp(t, c->strip, c->strip_len) != 0 ||
		    n == c->strip_len || memchr(t, '\0', n))
			return CAIRN_E_CORRUPT;
		c->cur.key = strndup(t + c->strip_len, n - c->strip_len);
		if (!c->cur.key)
			return CAIRN_E_NOMEM;
		c->has_key = 1;
	} else if (at(w, 3, "ListBucketResult", "Contents", "Size")) {
		if (parse_u64(t, n, &c->cur.size))
			return CAIRN_E_CORRUPT;
		c->has_size = 1;
	} else if (at(w, 3, "ListBucketResult", "Contents", "LastModified")) {
		if (parse_iso8601(t, n, &c->cur.mtime))
			return CAIRN_E_CORRUPT;
	} else if (at(w, 2, "ListBucketResult", "Contents", NULL)) {
		if (!c->has_key || !c->has_size)
			return CAIRN_E_CORRUPT;
		if (c->out->n >= c->max)
			return CAIRN_E_CORRUPT;
		if (c->out->n == c->cap) {
			size_t cap = c->cap ? c->cap * 2 : 64;
			cairn_obj_entry *v = realloc(c->out->v, cap * sizeof *v);
			if (!v)
				return CAIRN_E_NOMEM;
			c->out->v = v;
			c->cap = cap;
		}
		c->out->v[c->out->n++] = c->cur;
		memset(&c->cur, 0, sizeof c->cur);
		c->has_key = c->has_size = 0;
	}
	return 0;
}

static void list_free_entries(cairn_obj_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i].key);
	free(l->v);
	free(l->next);
	memset(l, 0, sizeof *l);
}

int s3_xml_parse_list(const char *body, size_t len, const char *strip,
		      size_t max_entries, cairn_obj_list *out)
{
	list_ctx c = {.strip = strip, .strip_len = strlen(strip),
		      .max = max_entries, .out = out};
	xml_walk w = {.on_end = list_end, .ctx = &c};
	int rc;

	memset(out, 0, sizeof *out);
	rc = walk_run(&w, body, len, "list");
	free(c.cur.key);
	if (!rc && !c.root_ok)
		rc = cairn_errf(CAIRN_E_CORRUPT,
				"s3 list answer is not a <ListBucketResult>");
	if (!rc && c.truncated && (!c.next || !*c.next))
		rc = cairn_errf(CAIRN_E_CORRUPT,
				"s3 list answer is truncated but has no "
				"NextContinuationToken");
	/* Keys must come in byte order and be unique: the contract promises it
	 * and the caller pages on it. */
	for (size_t i = 1; !rc && i < out->n; i++)
		if (strcmp(out->v[i - 1].key, out->v[i].key) >= 0)
			rc = cairn_errf(CAIRN_E_CORRUPT,
					"s3 list answer is not sorted at entry %zu",
					i);
	if (rc) {
		free(c.next);
		list_free_entries(out);
		return rc;
	}
	if (c.truncated)
		out->next = c.next;
	else
		free(c.next);
	return 0;
}

/* ---- InitiateMultipartUploadResult ---- */

typedef struct upid_ctx {
	char *id;
	int found, root_ok;
} upid_ctx;

static int upid_end(xml_walk *w, const char *t, size_t n)
{
	upid_ctx *c = w->ctx;

	if (w->depth == 1)
		c->root_ok = !strcmp(w->path[0], "InitiateMultipartUploadResult");
	else if (at(w, 2, "InitiateMultipartUploadResult", "UploadId", NULL)) {
		if (n == 0 || n >= CAIRN_UPLOAD_ID_MAX || memchr(t, '\0', n))
			return CAIRN_E_CORRUPT;
		memcpy(c->id, t, n);
		c->id[n] = '\0';
		c->found = 1;
	}
	return 0;
}

int s3_xml_parse_upload_id(const char *body, size_t len,
			   char upload_id[CAIRN_UPLOAD_ID_MAX])
{
	upid_ctx c = {upload_id, 0, 0};
	xml_walk w = {.on_end = upid_end, .ctx = &c};
	int rc;

	upload_id[0] = '\0';
	if ((rc = walk_run(&w, body, len, "create-multipart-upload")))
		return rc;
	if (!c.root_ok || !c.found) {
		upload_id[0] = '\0';
		return cairn_errf(CAIRN_E_CORRUPT,
				  "s3 create-multipart-upload answer has no UploadId");
	}
	return 0;
}

/* ---- CompleteMultipartUploadResult ---- */

typedef struct complete_ctx {
	s3_xml_error *e;
	int is_result, is_error;
} complete_ctx;

static int complete_end(xml_walk *w, const char *t, size_t n)
{
	complete_ctx *c = w->ctx;

	if (w->depth == 1) {
		c->is_result = !strcmp(w->path[0], "CompleteMultipartUploadResult");
		c->is_error = !strcmp(w->path[0], "Error");
	} else if (w->depth == 2 && !strcmp(w->path[0], "Error")) {
		return error_field(c->e, w->path[1], t, n);
	}
	return 0;
}

int s3_xml_parse_complete(const char *body, size_t len, int *is_error,
			  s3_xml_error *e)
{
	complete_ctx c = {e, 0, 0};
	xml_walk w = {.on_end = complete_end, .ctx = &c};
	int rc;

	memset(e, 0, sizeof *e);
	*is_error = 0;
	if ((rc = walk_run(&w, body, len, "complete-multipart-upload")))
		return rc;
	if (c.is_error && e->code[0]) {
		*is_error = 1;
		return 0;
	}
	if (!c.is_result)
		return cairn_errf(CAIRN_E_CORRUPT,
				  "s3 complete-multipart-upload answer is neither "
				  "a result nor an error");
	return 0;
}

/* ---- DeleteResult ---- */

typedef struct del_ctx {
	const char *strip;
	size_t strip_len;
	const char *const *keys;
	size_t n;
	int *rcs;
	char key[CAIRN_KEY_MAX + 1];
	char code[64];
	int root_ok;
	size_t errors;
} del_ctx;

static int s3_code_rc(const char *code)
{
	if (!strcmp(code, "AccessDenied") || !strcmp(code, "AllAccessDisabled"))
		return CAIRN_E_PERM;
	if (!strcmp(code, "NoSuchKey") || !strcmp(code, "NoSuchBucket"))
		return CAIRN_E_NOTFOUND;
	if (!strcmp(code, "InvalidAccessKeyId") ||
	    !strcmp(code, "SignatureDoesNotMatch") ||
	    !strcmp(code, "ExpiredToken") || !strcmp(code, "InvalidToken"))
		return CAIRN_E_AUTH;
	if (!strcmp(code, "SlowDown") || !strcmp(code, "InternalError") ||
	    !strcmp(code, "ServiceUnavailable"))
		return CAIRN_E_AGAIN;
	return CAIRN_E_STORE;
}

static int del_end(xml_walk *w, const char *t, size_t n)
{
	del_ctx *c = w->ctx;

	if (w->depth == 1) {
		c->root_ok = !strcmp(w->path[0], "DeleteResult");
	} else if (at(w, 3, "DeleteResult", "Error", "Key")) {
		if (n > CAIRN_KEY_MAX)
			return CAIRN_E_CORRUPT;
		copy_text(c->key, sizeof c->key, t, n);
	} else if (at(w, 3, "DeleteResult", "Error", "Code")) {
		copy_text(c->code, sizeof c->code, t, n);
	} else if (at(w, 2, "DeleteResult", "Error", NULL)) {
		const char *k = c->key;
		int found = 0;

		if (strncmp(k, c->strip, c->strip_len) != 0)
			return CAIRN_E_CORRUPT;
		k += c->strip_len;
		for (size_t i = 0; i < c->n; i++) {
			if (!strcmp(c->keys[i], k)) {
				if (c->rcs)
					c->rcs[i] = s3_code_rc(c->code);
				found = 1;
			}
		}
		if (!found)
			return CAIRN_E_CORRUPT;
		c->errors++;
		c->key[0] = c->code[0] = '\0';
	}
	return 0;
}

int s3_xml_parse_delete(const char *body, size_t len, const char *strip,
			const char *const *keys, size_t n, int *rcs)
{
	del_ctx c = {.strip = strip, .strip_len = strlen(strip), .keys = keys,
		     .n = n, .rcs = rcs};
	xml_walk w = {.on_end = del_end, .ctx = &c};
	int rc;

	if ((rc = walk_run(&w, body, len, "delete-objects")))
		return rc;
	if (!c.root_ok)
		return cairn_errf(CAIRN_E_CORRUPT,
				  "s3 delete-objects answer is not a <DeleteResult>");
	return 0;
}
