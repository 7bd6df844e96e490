/*
 * vol_storeutil.c - small object-store helpers that both sides of log
 * shipping use (vol_ship.c writes and checks v/<uuid>/meta/, vol_rebuild.c
 * and vol_follow.c read it): listing a prefix, reading a whole object of
 * bounded size, the 16-hex-digit numbers in key names, and the versioned
 * "key = value" text objects (docs/log-shipping.md "What is in the
 * store").  Every length and number read from the store is checked here
 * before use.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "vol_int.h"

int64_t vol_wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- listing ---- */

int vol_store_list(cairn_objstore *os, const char *prefix, vol_list_fn cb, void *arg)
{
	char *token = NULL;
	int rc = 0;
	do {
		cairn_obj_list l = { 0 };
		rc = objstore_list(os, prefix, token, 1000, &l);
		free(token);
		token = NULL;
		if (rc)
			return cairn_err_wrap(rc, "list %s", prefix);
		for (size_t i = 0; !rc && i < l.n; i++)
			rc = cb(&l.v[i], arg);
		if (!rc && l.next) {
			token = strdup(l.next);
			if (!token)
				rc = cairn_errf(CAIRN_E_NOMEM, "list %s", prefix);
		}
		objstore_list_free(&l);
	} while (!rc && token);
	free(token);
	return rc;
}

void vol_keys_free(vkeys *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->k[i]);
	free(l->k);
	memset(l, 0, sizeof *l);
}

typedef struct keys_ctx {
	vkeys *out;
	const char *prefix;
} keys_ctx;

static int keys_cb(const cairn_obj_entry *e, void *arg)
{
	keys_ctx *c = arg;
	vkeys *out = c->out;
	if (out->n == out->cap) {
		size_t nc = out->cap ? out->cap * 2 : 64;
		char **nk = realloc(out->k, nc * sizeof *nk);
		if (!nk)
			return cairn_errf(CAIRN_E_NOMEM, "list %s", c->prefix);
		out->k = nk;
		out->cap = nc;
	}
	if (!(out->k[out->n] = strdup(e->key)))
		return cairn_errf(CAIRN_E_NOMEM, "list %s", c->prefix);
	out->n++;
	return 0;
}

static int kcmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int vol_store_keys(cairn_objstore *os, const char *prefix, vkeys *out)
{
	keys_ctx c = { out, prefix };
	int rc;
	memset(out, 0, sizeof *out);
	if ((rc = vol_store_list(os, prefix, keys_cb, &c))) {
		vol_keys_free(out);
		return rc;
	}
	if (out->n)  /* qsort(NULL, 0, ...) is undefined */
		qsort(out->k, out->n, sizeof *out->k, kcmp);
	return 0;
}

/* ---- numbers in key names ---- */

int vol_hex16(const char *s, size_t n, uint64_t *out)
{
	uint64_t v = 0;
	if (n != 16)
		return -1;
	for (size_t i = 0; i < 16; i++) {
		char c = s[i];
		int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
		if (d < 0)
			return -1;
		v = v << 4 | (uint64_t)d;
	}
	*out = v;
	return 0;
}

int vol_key_hex(const char *key, const char *prefix, uint64_t *out)
{
	size_t pl = strlen(prefix);
	if (strncmp(key, prefix, pl) != 0)
		return -1;
	return vol_hex16(key + pl, strlen(key + pl), out);
}

/* ---- whole objects ---- */

int vol_shipped_get(cairn_objstore *os, const char *key, uint64_t max, uint8_t **buf,
		    size_t *len)
{
	cairn_obj_info inf;
	uint64_t got = 0;
	uint8_t *b;
	int rc;

	*buf = NULL;
	*len = 0;
	if ((rc = objstore_head(os, key, &inf)))
		return rc;
	if (inf.size > max)
		return cairn_errf(CAIRN_E_CORRUPT, "object %s is %" PRIu64 " bytes, more than "
				  "the %" PRIu64 " such an object may have", key, inf.size, max);
	/* one byte more than the listing said: an object that grew between
	 * the head and the get is seen as such */
	b = malloc(inf.size + 1);
	if (!b)
		return cairn_errf(CAIRN_E_NOMEM, "object %s of %" PRIu64 " bytes", key, inf.size);
	if ((rc = objstore_get(os, key, 0, b, inf.size + 1, &got))) {
		free(b);
		return rc;
	}
	if (got != inf.size) {
		free(b);
		return cairn_errf(CAIRN_E_CORRUPT, "object %s: read %" PRIu64 " bytes, its "
				  "size is %" PRIu64, key, got, inf.size);
	}
	b[got] = 0;  /* text objects read as strings */
	*buf = b;
	*len = (size_t)got;
	return 0;
}

/* ---- versioned text objects ---- */

int vol_text_parse(const char *objkey, const uint8_t *buf, size_t len, const char *magic,
		   vtkv *kv, size_t nkv)
{
	char text[VOL_TEXT_MAX + 1], *save = NULL;
	int have_magic = 0, lineno = 0;

	if (len > VOL_TEXT_MAX)
		return cairn_errf(CAIRN_E_CORRUPT, "%s: %zu bytes, too long", objkey, len);
	memcpy(text, buf, len);
	text[len] = 0;
	if (strlen(text) != len)
		return cairn_errf(CAIRN_E_CORRUPT, "%s: a NUL byte in a text object", objkey);
	for (char *ln = strtok_r(text, "\n", &save); ln; ln = strtok_r(NULL, "\n", &save)) {
		lineno++;
		if (!ln[0] || ln[0] == '#')
			continue;
		if (!have_magic) {
			size_t ml = strlen(magic);
			char *end;
			if (strncmp(ln, magic, ml) != 0 || ln[ml] != ' ')
				return cairn_errf(CAIRN_E_CORRUPT, "%s: not a '%s' object", objkey,
						  magic);
			errno = 0;
			unsigned long v = strtoul(ln + ml + 1, &end, 10);
			if (errno || *end || end == ln + ml + 1)
				return cairn_errf(CAIRN_E_CORRUPT, "%s:%d: bad version", objkey,
						  lineno);
			if (v != 1)
				return cairn_errf(CAIRN_E_VERSION, "%s: %s version %lu is unknown "
						  "(this cairn reads version 1)", objkey, magic, v);
			have_magic = 1;
			continue;
		}
		char *eq = strstr(ln, " = ");
		if (!eq)
			return cairn_errf(CAIRN_E_CORRUPT, "%s:%d: expected 'key = value'",
					  objkey, lineno);
		*eq = 0;
		size_t i;
		for (i = 0; i < nkv && strcmp(kv[i].key, ln) != 0; i++)
			;
		if (i == nkv)
			return cairn_errf(CAIRN_E_CORRUPT, "%s:%d: unknown key '%s'", objkey,
					  lineno, ln);
		if (kv[i].have)
			return cairn_errf(CAIRN_E_CORRUPT, "%s:%d: '%s' given twice", objkey,
					  lineno, ln);
		if (strlen(eq + 3) >= sizeof kv[i].val)
			return cairn_errf(CAIRN_E_CORRUPT, "%s:%d: value of '%s' too long",
					  objkey, lineno, ln);
		snprintf(kv[i].val, sizeof kv[i].val, "%s", eq + 3);
		kv[i].have = 1;
	}
	if (!have_magic)
		return cairn_errf(CAIRN_E_CORRUPT, "%s: empty", objkey);
	return 0;
}

int vol_text_u64(const char *objkey, const vtkv *kv, int base, uint64_t *out)
{
	char *end;
	if (!kv->have)
		return cairn_errf(CAIRN_E_CORRUPT, "%s: '%s' missing", objkey, kv->key);
	errno = 0;
	unsigned long long v = strtoull(kv->val, &end, base);
	if (errno || *end || end == kv->val || kv->val[0] == '-' || kv->val[0] == '+')
		return cairn_errf(CAIRN_E_CORRUPT, "%s: bad %s '%s'", objkey, kv->key, kv->val);
	*out = v;
	return 0;
}
