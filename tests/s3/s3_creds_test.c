/*
 * s3_creds_test.c - where credentials, region, endpoint and CA bundle come
 * from, in the AWS CLI's order: flags, environment, ~/.aws/credentials,
 * ~/.aws/config; named profiles; errors for half-given keys and unknown
 * profiles; and that secrets never show in messages (they are registered
 * with the log scrubber).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "t.h"
#include "cairn/err.h"
#include "cairn/log.h"
#include "s3_int.h"

static char dir[600], cred[700], conf[700];

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	REQUIRE(f != NULL);
	fputs(text, f);
	fclose(f);
}

static void clean_env(void)
{
	const char *v[] = {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
			   "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_PROFILE",
			   "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL",
			   "AWS_ENDPOINT_URL_S3", "AWS_CA_BUNDLE",
			   "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS"};
	for (size_t i = 0; i < sizeof v / sizeof v[0]; i++)
		unsetenv(v[i]);
	setenv("AWS_SHARED_CREDENTIALS_FILE", cred, 1);
	setenv("AWS_CONFIG_FILE", conf, 1);
}

int main(void)
{
	cairn_s3_opts o;
	s3_config c;

	snprintf(dir, sizeof dir, "%s", t_tmpdir("s3_creds"));
	snprintf(cred, sizeof cred, "%s/credentials", dir);
	snprintf(conf, sizeof conf, "%s/config", dir);
	write_file(cred,
		   "# comment\n"
		   "[default]\n"
		   "aws_access_key_id = AKIDFILEDEFAULT\n"
		   "aws_secret_access_key = secretFileDefault\n"
		   "\n"
		   "[work]\n"
		   "aws_access_key_id=AKIDWORK\n"
		   "aws_secret_access_key=secretWork\n"
		   "aws_session_token = tokenWork123\n"
		   "[half]\n"
		   "aws_access_key_id = AKIDHALF\n");
	write_file(conf,
		   "[default]\n"
		   "region = eu-central-1\n"
		   "s3 =\n"
		   "  addressing_style = path\n"
		   "[profile work]\n"
		   "region = ap-south-1\n"
		   "endpoint_url = https://minio.example:9000/\n"
		   "ca_bundle = /etc/work-ca.pem\n"
		   "[profile cfgonly]\n"
		   "aws_access_key_id = AKIDCFG\n"
		   "aws_secret_access_key = secretCfg\n");

	/* 1. Nothing but the files: the default profile. */
	clean_env();
	memset(&o, 0, sizeof o);
	REQUIRE_OK(s3_config_resolve(&o, &c));
	CHECK(c.access_key && !strcmp(c.access_key, "AKIDFILEDEFAULT"));
	CHECK(c.secret_key && !strcmp(c.secret_key, "secretFileDefault"));
	CHECK(!strcmp(c.region, "eu-central-1"));
	CHECK(!strcmp(c.endpoint, "https://s3.eu-central-1.amazonaws.com"));
	CHECK(!c.endpoint_custom);
	CHECK(strstr(c.source, "profile 'default'") && strstr(c.source, cred));
	s3_config_free(&c);

	/* 2. Environment beats the files; AWS_REGION beats the config. */
	setenv("AWS_ACCESS_KEY_ID", "AKIDENV", 1);
	setenv("AWS_SECRET_ACCESS_KEY", "secretEnv", 1);
	setenv("AWS_SESSION_TOKEN", "tokenEnv123", 1);
	setenv("AWS_DEFAULT_REGION", "us-west-1", 1);
	setenv("AWS_REGION", "us-west-2", 1);
	REQUIRE_OK(s3_config_resolve(&o, &c));
	CHECK(!strcmp(c.access_key, "AKIDENV"));
	CHECK(c.session_token && !strcmp(c.session_token, "tokenEnv123"));
	CHECK(!strcmp(c.region, "us-west-2"));
	CHECK(strstr(c.source, "environment") != NULL);
	s3_config_free(&c);

	/* 3. Flags beat the environment. */
	o.access_key = "AKIDFLAG";
	o.secret_key = "secretFlag";
	o.region = "sa-east-1";
	o.endpoint = "http://127.0.0.1:9000/";
	REQUIRE_OK(s3_config_resolve(&o, &c));
	CHECK(!strcmp(c.access_key, "AKIDFLAG"));
	CHECK(c.session_token == NULL);
	CHECK(!strcmp(c.region, "sa-east-1"));
	CHECK(!strcmp(c.endpoint, "http://127.0.0.1:9000"));
	CHECK(c.endpoint_custom);
	CHECK(!strcmp(c.source, "flags"));
	s3_config_free(&c);

	/* 4. A profile named by flag skips the environment (aws --profile). */
	memset(&o, 0, sizeof o);
	unsetenv("AWS_REGION");
	unsetenv("AWS_DEFAULT_REGION");
	o.profile = "work";
	REQUIRE_OK(s3_config_resolve(&o, &c));
	CHECK(!strcmp(c.access_key, "AKIDWORK"));
	CHECK(c.session_token && !strcmp(c.session_token, "tokenWork123"));
	CHECK(!strcmp(c.region, "ap-south-1"));
	CHECK(!strcmp(c.endpoint, "https://minio.example:9000"));
	CHECK(c.ca_bundle && !strcmp(c.ca_bundle, "/etc/work-ca.pem"));
	s3_config_free(&c);

	/* 5. AWS_PROFILE selects a profile but the env keys still win. */
	memset(&o, 0, sizeof o);
	setenv("AWS_PROFILE", "work", 1);
	REQUIRE_OK(s3_config_resolve(&o, &c));
	CHECK(!strcmp(c.access_key, "AKIDENV"));
	CHECK(!strcmp(c.region, "ap-south-1"));
	s3_config_free(&c);

	/* 6. Endpoint: AWS_ENDPOINT_URL_S3 > AWS_ENDPOINT_URL > config; all
	 *    ignored with AWS_IGNORE_CONFIGURED_ENDPOINT_URLS. CA bundle env. */
	setenv("AWS_ENDPOINT_URL", "https://generic.example", 1);
	REQUIRE_OK(s3_config_resolve(&o, &c));
	CHECK(!strcmp(c.endpoint, "https://generic.example"));
	s3_config_free(&c);
	setenv("AWS_ENDPOINT_URL_S3", "https://s3only.example", 1);
	setenv("AWS_CA_BUNDLE", "/tmp/ca.pem", 1);
	REQUIRE_OK(s3_config_resolve(&o, &c));
	CHECK(!strcmp(c.endpoint, "https://s3only.example"));
	CHECK(c.ca_bundle && !strcmp(c.ca_bundle, "/tmp/ca.pem"));
	s3_config_free(&c);
	setenv("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "true", 1);
	REQUIRE_OK(s3_config_resolve(&o, &c));
	CHECK(!strcmp(c.endpoint, "https://s3.ap-south-1.amazonaws.com"));
	s3_config_free(&c);

	/* 7. Credentials only in the config file. */
	clean_env();
	setenv("AWS_PROFILE", "cfgonly", 1);
	REQUIRE_OK(s3_config_resolve(&o, &c));
	CHECK(!strcmp(c.access_key, "AKIDCFG"));
	CHECK(strstr(c.source, conf) != NULL);
	CHECK(!strcmp(c.region, "us-east-1"));
	s3_config_free(&c);

	/* 8. Errors, each one line saying what to fix. */
	setenv("AWS_PROFILE", "nosuch", 1);
	CHECK_RC(s3_config_resolve(&o, &c), CAIRN_E_AUTH);
	CHECK_MSG("profile 'nosuch' not found");
	setenv("AWS_PROFILE", "half", 1);
	CHECK_RC(s3_config_resolve(&o, &c), CAIRN_E_AUTH);
	CHECK_MSG("only one of aws_access_key_id and aws_secret_access_key");
	clean_env();
	setenv("AWS_ACCESS_KEY_ID", "AKIDONLY", 1);
	CHECK_RC(s3_config_resolve(&o, &c), CAIRN_E_AUTH);
	CHECK_MSG("AWS_SECRET_ACCESS_KEY is not");
	clean_env();
	o.access_key = "AKIDX";
	CHECK_RC(s3_config_resolve(&o, &c), CAIRN_E_AUTH);
	CHECK_MSG("secret key flag");
	memset(&o, 0, sizeof o);
	o.endpoint = "ftp://x";
	CHECK_RC(s3_config_resolve(&o, &c), CAIRN_E_INVAL);
	CHECK_MSG("must start with https://");
	o.endpoint = "https://host/path";
	CHECK_RC(s3_config_resolve(&o, &c), CAIRN_E_INVAL);
	CHECK_MSG("without a path");

	/* 9. No credentials at all: anonymous, said so. */
	memset(&o, 0, sizeof o);
	setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/x", 1);
	setenv("AWS_CONFIG_FILE", "/nonexistent/y", 1);
	REQUIRE_OK(s3_config_resolve(&o, &c));
	CHECK(c.access_key == NULL);
	CHECK(strstr(c.source, "anonymous") != NULL);
	s3_config_free(&c);

	/* 10. Every secret read was registered: no message can show it. */
	{
		const char *secrets[] = {"secretFileDefault", "secretEnv",
					 "tokenEnv123", "secretFlag", "secretWork",
					 "tokenWork123", "secretCfg"};
		for (size_t i = 0; i < sizeof secrets / sizeof secrets[0]; i++) {
			cairn_errf(CAIRN_E_AUTH, "leak %s here", secrets[i]);
			CHECK(strstr(cairn_errmsg(), secrets[i]) == NULL);
			CHECK_MSG("[REDACTED]");
		}
	}

	t_rmtree(dir);
	return t_done();
}
