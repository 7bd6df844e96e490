/*
 * s3_creds.c - where the S3 backend's credentials and settings come from.
 *
 * The order is the AWS CLI's (botocore's credential chain and config
 * lookup), so that a user's existing setup works unchanged:
 *
 *   credentials   1. flags (opts.access_key/secret_key/session_token)
 *                 2. AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY /
 *                    AWS_SESSION_TOKEN - skipped when a profile was named by
 *                    flag (as `aws --profile x` skips them)
 *                 3. the profile's section of the credentials file
 *                    ($AWS_SHARED_CREDENTIALS_FILE, ~/.aws/credentials)
 *                 4. the profile's section of the config file
 *                    ($AWS_CONFIG_FILE, ~/.aws/config; "[profile x]", or
 *                    "[default]")
 *                 none: requests go unsigned (public buckets)
 *   profile       flag, $AWS_PROFILE, $AWS_DEFAULT_PROFILE, "default"
 *   region        flag, $AWS_REGION, $AWS_DEFAULT_REGION, config "region",
 *                 us-east-1
 *   endpoint      flag, $AWS_ENDPOINT_URL_S3, $AWS_ENDPOINT_URL, config
 *                 "endpoint_url" (the env and config ones are ignored when
 *                 $AWS_IGNORE_CONFIGURED_ENDPOINT_URLS is true), else
 *                 https://s3.REGION.amazonaws.com
 *   CA bundle     flag, $AWS_CA_BUNDLE, config "ca_bundle", system store
 *
 * Not implemented (said in docs/s3.md): credential_process, SSO, assume
 * role, container and instance metadata credentials.
 *
 * Invariants
 *   1. Every secret (secret key, session token) and the access key id are
 *      registered with cairn_log_add_secret() the moment they are read, so no
 *      log line or error message can show them.
 *   2. No message built here contains a value read from a credentials file,
 *      only file names, profile names and variable names.
 *   3. A named profile that exists in neither file is an error, not a
 *      silent fall-through to anonymous access.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cairn/err.h"
#include "cairn/log.h"
#include "s3_int.h"

#define INI_LINE_MAX 4096

typedef struct ini_vals {
	int found;          /* the section exists */
	char *access_key, *secret_key, *session_token;
	char *region, *endpoint, *ca_bundle;
} ini_vals;

static void free_secret(char *s)
{
	if (s) {
		memset(s, 0, strlen(s));
		free(s);
	}
}

static void ini_vals_free(ini_vals *v)
{
	free_secret(v->access_key);
	free_secret(v->secret_key);
	free_secret(v->session_token);
	free(v->region);
	free(v->endpoint);
	free(v->ca_bundle);
	memset(v, 0, sizeof *v);
}

static char *trim(char *s)
{
	char *e;

	while (*s == ' ' || *s == '\t')
		s++;
	e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r' ||
			 e[-1] == '\n'))
		*--e = '\0';
	return s;
}

static int set_dup(char **dst, const char *v)
{
	char *d = strdup(v);

	if (!d)
		return cairn_errf(CAIRN_E_NOMEM, "s3 config: out of memory");
	free(*dst);
	*dst = d;
	return 0;
}

/* Read section `want` of an INI file (botocore's format: "[name]", "k = v",
 * '#' or ';' comments, indented lines continue a nested block and are
 * ignored here).  A missing file is not an error. */
static int ini_read(const char *path, const char *want, ini_vals *v)
{
	char line[INI_LINE_MAX];
	int in = 0, rc = 0;
	FILE *f = fopen(path, "r");

	if (!f) {
		if (errno == ENOENT || errno == ENOTDIR)
			return 0;
		return cairn_errf(CAIRN_E_IO, "s3 config: open %s: %s", path,
				  strerror(errno));
	}
	while (fgets(line, sizeof line, f)) {
		char *s, *eq, *k, *val;

		if (line[0] == ' ' || line[0] == '\t')
			continue; /* nested block ("s3 =\n  addressing_style = x") */
		s = trim(line);
		if (!*s || *s == '#' || *s == ';')
			continue;
		if (*s == '[') {
			char *e = strchr(s, ']');
			if (!e) {
				in = 0;
				continue;
			}
			*e = '\0';
			in = strcmp(trim(s + 1), want) == 0;
			if (in)
				v->found = 1;
			continue;
		}
		if (!in || !(eq = strchr(s, '=')))
			continue;
		*eq = '\0';
		k = trim(s);
		val = trim(eq + 1);
		if (strcmp(k, "aws_access_key_id") == 0)
			rc = set_dup(&v->access_key, val);
		else if (strcmp(k, "aws_secret_access_key") == 0)
			rc = set_dup(&v->secret_key, val);
		else if (strcmp(k, "aws_session_token") == 0 ||
			 strcmp(k, "aws_security_token") == 0)
			rc = set_dup(&v->session_token, val);
		else if (strcmp(k, "region") == 0)
			rc = set_dup(&v->region, val);
		else if (strcmp(k, "endpoint_url") == 0)
			rc = set_dup(&v->endpoint, val);
		else if (strcmp(k, "ca_bundle") == 0)
			rc = set_dup(&v->ca_bundle, val);
		if (rc)
			break;
	}
	/* Scrub the line buffer: it may hold a secret (invariant 1). */
	memset(line, 0, sizeof line);
	fclose(f);
	return rc;
}

static const char *env(const char *name)
{
	const char *v = getenv(name);

	return v && *v ? v : NULL;
}

static int home_path(const char *envname, const char *rel, char *out,
		     size_t size)
{
	const char *p = env(envname), *home;

	if (p) {
		if (p[0] == '~' && p[1] == '/' && (home = env("HOME")))
			snprintf(out, size, "%s/%s", home, p + 2);
		else
			snprintf(out, size, "%s", p);
		return 0;
	}
	home = env("HOME");
	if (!home) {
		out[0] = '\0';
		return 0;
	}
	if ((size_t)snprintf(out, size, "%s/%s", home, rel) >= size)
		return cairn_errf(CAIRN_E_NAMETOOLONG, "s3 config: $HOME too long");
	return 0;
}

static int register_secrets(const s3_config *c)
{
	int rc = 0;

	/* The access key id is not secret to AWS, but keeping it out of logs
	 * costs nothing and avoids handing out half of a pair. */
	if (c->access_key && (rc = cairn_log_add_secret(c->access_key)))
		return rc;
	if (c->secret_key && (rc = cairn_log_add_secret(c->secret_key)))
		return rc;
	if (c->session_token && (rc = cairn_log_add_secret(c->session_token)))
		return rc;
	return 0;
}

static int take_creds(s3_config *c, const char *ak, const char *sk,
		      const char *tok, const char *what)
{
	int rc;

	if ((rc = set_dup(&c->access_key, ak)) ||
	    (rc = set_dup(&c->secret_key, sk)))
		return rc;
	if (tok && (rc = set_dup(&c->session_token, tok)))
		return rc;
	snprintf(c->source, sizeof c->source, "%s", what);
	return register_secrets(c);
}

static int endpoint_check(const char *ep, char **out)
{
	size_t n;

	if (strncmp(ep, "http://", 7) != 0 && strncmp(ep, "https://", 8) != 0)
		return cairn_errf(CAIRN_E_INVAL,
				  "s3 endpoint '%s' must start with https:// "
				  "(or http:// with allow-http)", ep);
	n = strlen(ep);
	while (n > 8 && ep[n - 1] == '/')
		n--;
	*out = strndup(ep, n);
	if (!*out)
		return cairn_errf(CAIRN_E_NOMEM, "s3 config: out of memory");
	if (strchr(*out + 8, '/') || strchr(*out, '?'))
		return cairn_errf(CAIRN_E_INVAL,
				  "s3 endpoint '%s': give scheme://host[:port] "
				  "without a path", ep);
	return 0;
}

int s3_config_resolve(const cairn_s3_opts *o, s3_config *c)
{
	char cred_path[1024], conf_path[1024], section[300];
	ini_vals cv = {0}, fv = {0};
	const char *p, *profile;
	int rc, profile_flag = o->profile && *o->profile, ignore_ep;

	memset(c, 0, sizeof *c);
	profile = profile_flag ? o->profile
		: env("AWS_PROFILE") ? env("AWS_PROFILE")
		: env("AWS_DEFAULT_PROFILE") ? env("AWS_DEFAULT_PROFILE")
		: "default";
	if ((rc = set_dup(&c->profile, profile)))
		goto fail;

	if ((rc = home_path("AWS_SHARED_CREDENTIALS_FILE", ".aws/credentials",
			    cred_path, sizeof cred_path)) ||
	    (rc = home_path("AWS_CONFIG_FILE", ".aws/config", conf_path,
			    sizeof conf_path)))
		goto fail;
	if (cred_path[0] && (rc = ini_read(cred_path, profile, &cv)))
		goto fail;
	snprintf(section, sizeof section, "%s%s",
		 strcmp(profile, "default") ? "profile " : "", profile);
	if (conf_path[0] && (rc = ini_read(conf_path, section, &fv)))
		goto fail;
	/* Secrets read from the files are registered at once (invariant 1),
	 * whether or not they end up used. */
	{
		const char *s[] = {cv.access_key, cv.secret_key, cv.session_token,
				   fv.access_key, fv.secret_key, fv.session_token};
		for (size_t i = 0; i < sizeof s / sizeof s[0]; i++)
			if (s[i] && (rc = cairn_log_add_secret(s[i])))
				goto fail;
	}

	/* Credentials, in order. */
	if (o->access_key || o->secret_key) {
		if (!o->access_key || !o->secret_key) {
			rc = cairn_errf(CAIRN_E_AUTH,
					"s3: an access key flag needs its secret key "
					"flag and vice versa");
			goto fail;
		}
		rc = take_creds(c, o->access_key, o->secret_key,
				o->session_token, "flags");
	} else if (!profile_flag && (env("AWS_ACCESS_KEY_ID") ||
				     env("AWS_SECRET_ACCESS_KEY"))) {
		if (!env("AWS_ACCESS_KEY_ID") || !env("AWS_SECRET_ACCESS_KEY")) {
			rc = cairn_errf(CAIRN_E_AUTH,
					"s3: %s is set but %s is not; set both or "
					"neither",
					env("AWS_ACCESS_KEY_ID") ? "AWS_ACCESS_KEY_ID"
					: "AWS_SECRET_ACCESS_KEY",
					env("AWS_ACCESS_KEY_ID") ? "AWS_SECRET_ACCESS_KEY"
					: "AWS_ACCESS_KEY_ID");
			goto fail;
		}
		rc = take_creds(c, env("AWS_ACCESS_KEY_ID"),
				env("AWS_SECRET_ACCESS_KEY"),
				env("AWS_SESSION_TOKEN"),
				"environment (AWS_ACCESS_KEY_ID, "
				"AWS_SECRET_ACCESS_KEY)");
	} else if (cv.access_key && cv.secret_key) {
		char what[sizeof c->source];
		snprintf(what, sizeof what, "profile '%s' in %.250s", profile,
			 cred_path);
		rc = take_creds(c, cv.access_key, cv.secret_key,
				cv.session_token, what);
	} else if (fv.access_key && fv.secret_key) {
		char what[sizeof c->source];
		snprintf(what, sizeof what, "profile '%s' in %.250s", profile,
			 conf_path);
		rc = take_creds(c, fv.access_key, fv.secret_key,
				fv.session_token, what);
	} else if ((cv.access_key || cv.secret_key || fv.access_key ||
		    fv.secret_key)) {
		rc = cairn_errf(CAIRN_E_AUTH,
				"s3: profile '%s' has only one of "
				"aws_access_key_id and aws_secret_access_key "
				"(%s, %s)", profile, cred_path, conf_path);
	} else if (strcmp(profile, "default") != 0 && !cv.found && !fv.found) {
		rc = cairn_errf(CAIRN_E_AUTH,
				"s3: profile '%s' not found in %s or %s",
				profile, cred_path[0] ? cred_path : "(no $HOME)",
				conf_path[0] ? conf_path : "(no $HOME)");
	} else {
		snprintf(c->source, sizeof c->source,
			 "none (anonymous requests; set AWS_ACCESS_KEY_ID and "
			 "AWS_SECRET_ACCESS_KEY, or a profile)");
	}
	if (rc)
		goto fail;

	/* Region. */
	p = o->region && *o->region ? o->region
		: env("AWS_REGION") ? env("AWS_REGION")
		: env("AWS_DEFAULT_REGION") ? env("AWS_DEFAULT_REGION")
		: fv.region ? fv.region : "us-east-1";
	if ((rc = set_dup(&c->region, p)))
		goto fail;

	/* Endpoint. */
	p = env("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS");
	ignore_ep = p && strcasecmp(p, "true") == 0;
	p = o->endpoint && *o->endpoint ? o->endpoint
		: ignore_ep ? NULL
		: env("AWS_ENDPOINT_URL_S3") ? env("AWS_ENDPOINT_URL_S3")
		: env("AWS_ENDPOINT_URL") ? env("AWS_ENDPOINT_URL")
		: fv.endpoint;
	if (p) {
		c->endpoint_custom = 1;
		if ((rc = endpoint_check(p, &c->endpoint)))
			goto fail;
	} else {
		char ep[300];
		snprintf(ep, sizeof ep, "https://s3.%s.amazonaws.com", c->region);
		if ((rc = set_dup(&c->endpoint, ep)))
			goto fail;
	}

	/* CA bundle. */
	p = o->ca_bundle && *o->ca_bundle ? o->ca_bundle
		: env("AWS_CA_BUNDLE") ? env("AWS_CA_BUNDLE") : fv.ca_bundle;
	if (p && (rc = set_dup(&c->ca_bundle, p)))
		goto fail;
	if (o->session_token && *o->session_token && c->session_token == NULL &&
	    (rc = cairn_log_add_secret(o->session_token)))
		goto fail;
	rc = 0;
	goto out;
fail:
	s3_config_free(c);
out:
	ini_vals_free(&cv);
	ini_vals_free(&fv);
	return rc;
}

void s3_config_free(s3_config *c)
{
	free_secret(c->access_key);
	free_secret(c->secret_key);
	free_secret(c->session_token);
	free(c->region);
	free(c->endpoint);
	free(c->ca_bundle);
	free(c->profile);
	memset(c, 0, sizeof *c);
}
