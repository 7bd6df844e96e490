/*
 * s3_tls_test.c - HTTPS with certificate verification, on by default:
 * s3rver serves TLS with a self-signed certificate made for 127.0.0.1.
 * Without the CA bundle the store refuses to talk (one line naming the
 * fix); with it - as a flag or as AWS_CA_BUNDLE - requests work (with
 * UNSIGNED-PAYLOAD, the HTTPS signing mode); a name the certificate does
 * not carry (localhost) is refused even with the bundle.
 */
#include <stdlib.h>
#include <string.h>

#include "cairn/runtime.h"
#include "s3_harness.h"

int main(void)
{
	const char *dir = t_tmpdir("s3_tls");
	char key[700], cert[700], cmd[2200], ep[64];
	cairn_objstore *os = NULL;
	cairn_objstore_opts o = {0};
	char buf[16];
	uint64_t got;
	s3h h;

	snprintf(key, sizeof key, "%s/key.pem", dir);
	snprintf(cert, sizeof cert, "%s/cert.pem", dir);
	snprintf(cmd, sizeof cmd,
		 "openssl req -x509 -newkey rsa:2048 -nodes -days 2 "
		 "-subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 "
		 "-keyout '%s' -out '%s' >/dev/null 2>&1", key, cert);
	if (system(cmd) != 0)
		t_skip("the openssl command cannot make a test certificate");

	s3h_start_tls(&h, 0, key, cert);
	s3h_env(&h, h.port);
	unsetenv("CAIRN_S3_ALLOW_HTTP");
	snprintf(ep, sizeof ep, "https://127.0.0.1:%d", h.port);
	setenv("AWS_ENDPOINT_URL_S3", ep, 1);
	o.s3.max_retries = 1;

	/* Verification is on: an unknown CA is refused, with the fix. */
	CHECK_RC(objstore_open("s3://" S3H_BUCKET, &o, &os), CAIRN_E_NET);
	CHECK_MSG("not trusted");
	CHECK_MSG("AWS_CA_BUNDLE");

	/* The bundle as a flag. */
	o.s3.ca_bundle = cert;
	REQUIRE_OK(objstore_open("s3://" S3H_BUCKET "/tls", &o, &os));
	CHECK_OK(objstore_put_buf(os, "k", "secure", 6));
	CHECK_OK(objstore_get(os, "k", 0, buf, sizeof buf, &got));
	CHECK(got == 6 && !memcmp(buf, "secure", 6));
	CHECK_OK(objstore_delete(os, "k"));
	objstore_close(os);
	os = NULL;

	/* The bundle from AWS_CA_BUNDLE, as the AWS CLI reads it. */
	o.s3.ca_bundle = NULL;
	setenv("AWS_CA_BUNDLE", cert, 1);
	REQUIRE_OK(objstore_open("s3://" S3H_BUCKET, &o, &os));
	objstore_close(os);
	os = NULL;

	/* The host name is checked too: the certificate names 127.0.0.1. */
	snprintf(ep, sizeof ep, "https://localhost:%d", h.port);
	setenv("AWS_ENDPOINT_URL_S3", ep, 1);
	CHECK_RC(objstore_open("s3://" S3H_BUCKET, &o, &os), CAIRN_E_NET);
	CHECK_MSG("not trusted");

	s3h_stop(&h);
	t_rmtree(dir);
	return t_done();
}
