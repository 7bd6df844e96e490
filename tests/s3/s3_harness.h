/*
 * s3_harness.h - start and stop the s3rver test server (and its fault
 * proxy) for one test, point the S3 backend at it, and arm proxy faults.
 *
 *   s3h h;
 *   s3h_start(&h, 1);          // s3rver + proxy on free loopback ports
 *   s3h_env(&h, h.proxy_port); // AWS_ENDPOINT_URL_S3, dummy credentials
 *   ...
 *   s3h_fault(&h, "mode=status&code=503&count=2&retry_after=1");
 *   ...
 *   s3h_stop(&h);
 *
 * The server is tests/s3/server/run.js (s3rver 3.7.1 with cairn's patch,
 * installed by tests/s3/server/install.sh).  When it is not installed the
 * test is skipped with the reason, visibly.  The server's data directory is
 * under $CAIRN_TEST_TMP and removed by s3h_stop.
 */
#ifndef CAIRN_S3_HARNESS_H
#define CAIRN_S3_HARNESS_H

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <curl/curl.h>

#include "t.h"

#ifndef CAIRN_S3_SERVER_DIR
#error "CAIRN_S3_SERVER_DIR must be defined (tests/s3/CMakeLists.txt)"
#endif

#define S3H_BUCKET "cairn-test"

typedef struct s3h {
	pid_t pid;
	int port;        /* s3rver */
	int proxy_port;  /* fault proxy, 0 if not started */
	char dir[600];   /* server data */
	int with_proxy;
	char tls_key[700];  /* HTTPS server: key and certificate (PEM), */
	char tls_cert[700]; /* set by s3h_start_tls */
} s3h;

static inline int s3h_installed(void)
{
	char p[700];

	snprintf(p, sizeof p, "%s/node_modules/s3rver/.cairn-patched",
		 CAIRN_S3_SERVER_DIR);
	return access(p, F_OK) == 0;
}

/* Start on the given port (0: any free one), keeping h->dir if set. */
static inline void s3h_launch(s3h *h, int port)
{
	int fds[2];
	char script[700], portbuf[16], line[128];
	FILE *f;
	pid_t pid;

	snprintf(script, sizeof script, "%s/run.js", CAIRN_S3_SERVER_DIR);
	snprintf(portbuf, sizeof portbuf, "%d", port);
	if (pipe(fds) != 0) {
		perror("pipe");
		exit(1);
	}
	pid = fork();
	if (pid < 0) {
		perror("fork");
		exit(1);
	}
	if (pid == 0) {
		const char *argv[14];
		int n = 0;
		dup2(fds[1], 1);
		close(fds[0]);
		close(fds[1]);
		setenv("NODE_OPTIONS", "--openssl-legacy-provider", 1);
		argv[n++] = "node";
		argv[n++] = script;
		argv[n++] = "--dir";
		argv[n++] = h->dir;
		argv[n++] = "--port";
		argv[n++] = portbuf;
		if (h->with_proxy)
			argv[n++] = "--proxy";
		if (h->tls_key[0]) {
			static const char *kc[4];
			kc[0] = "--key";
			kc[1] = h->tls_key;
			kc[2] = "--cert";
			kc[3] = h->tls_cert;
			for (int i = 0; i < 4; i++)
				argv[n++] = kc[i];
		}
		argv[n] = NULL;
		execvp("node", (char *const *)argv);
		perror("exec node");
		_exit(127);
	}
	close(fds[1]);
	f = fdopen(fds[0], "r");
	if (!f || !fgets(line, sizeof line, f) ||
	    sscanf(line, "READY %d %d", &h->port, &h->proxy_port) != 2) {
		fprintf(stderr, "s3 test server did not start (see stderr)\n");
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		exit(1);
	}
	fclose(f);
	h->pid = pid;
}

/* Start s3rver (HTTPS with key/cert PEM files when not NULL). */
static inline void s3h_start_tls(s3h *h, int with_proxy, const char *key,
				 const char *cert)
{
	const char *base = getenv("CAIRN_TEST_TMP");
	char cmd[700];

	memset(h, 0, sizeof *h);
	if (key && cert) {
		snprintf(h->tls_key, sizeof h->tls_key, "%s", key);
		snprintf(h->tls_cert, sizeof h->tls_cert, "%s", cert);
	}
	if (!s3h_installed())
		t_skip("s3rver is not installed: run tests/s3/server/install.sh "
		       "(build.sh does)");
	if (!base || !*base)
		base = "/tmp";
	mkdir(base, 0755);
	snprintf(h->dir, sizeof h->dir, "%s/s3rver.%d", base, (int)getpid());
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", h->dir);
	if (system(cmd) != 0 || mkdir(h->dir, 0755) != 0) {
		fprintf(stderr, "cannot make %s\n", h->dir);
		exit(1);
	}
	h->with_proxy = with_proxy;
	s3h_launch(h, 0);
	printf("s3rver on %s://127.0.0.1:%d, proxy on %d, data in %s\n",
	       h->tls_key[0] ? "https" : "http", h->port, h->proxy_port, h->dir);
	fflush(stdout);
}

static inline void s3h_start(s3h *h, int with_proxy)
{
	s3h_start_tls(h, with_proxy, NULL, NULL);
}

/* Kill the server at once (SIGKILL): the "store died" fault. */
static inline void s3h_kill(s3h *h)
{
	if (h->pid > 0) {
		kill(h->pid, SIGKILL);
		waitpid(h->pid, NULL, 0);
		h->pid = 0;
	}
}

/* Start it again on the same port with the same data.  The proxy is not
 * restarted (its port would change): tests talk to s3rver directly then. */
static inline void s3h_restart(s3h *h)
{
	s3h_kill(h);
	h->with_proxy = 0;
	s3h_launch(h, h->port);
}

static inline void s3h_stop(s3h *h)
{
	char cmd[700];

	if (h->pid > 0) {
		kill(h->pid, SIGTERM);
		waitpid(h->pid, NULL, 0);
		h->pid = 0;
	}
	if (h->dir[0]) {
		snprintf(cmd, sizeof cmd, "rm -rf '%s'", h->dir);
		if (system(cmd) != 0)
			fprintf(stderr, "warning: could not remove %s\n", h->dir);
	}
}

/* Point the AWS environment at port (s3rver's or the proxy's), with
 * s3rver's built-in credentials, and isolate from the user's ~/.aws. */
static inline void s3h_env(const s3h *h, int port)
{
	char ep[64];
	(void)h;

	snprintf(ep, sizeof ep, "http://127.0.0.1:%d", port);
	setenv("AWS_ENDPOINT_URL_S3", ep, 1);
	setenv("AWS_ACCESS_KEY_ID", "S3RVER", 1);
	setenv("AWS_SECRET_ACCESS_KEY", "S3RVER", 1);
	setenv("AWS_REGION", "us-east-1", 1);
	setenv("CAIRN_S3_ALLOW_HTTP", "1", 1);
	setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/cairn/credentials", 1);
	setenv("AWS_CONFIG_FILE", "/nonexistent/cairn/config", 1);
	unsetenv("AWS_SESSION_TOKEN");
	unsetenv("AWS_PROFILE");
	unsetenv("AWS_ENDPOINT_URL");
	unsetenv("AWS_CA_BUNDLE");
}

static size_t s3h_sink_(char *p, size_t s, size_t n, void *ud)
{
	(void)p;
	(void)ud;
	return s * n;
}

/* Arm a proxy fault rule (see server/run.js). */
static inline void s3h_fault(const s3h *h, const char *rule)
{
	char url[512];
	CURL *c = curl_easy_init();
	long st = 0;

	snprintf(url, sizeof url, "http://127.0.0.1:%d/__fault?%s",
		 h->proxy_port, rule);
	if (!c) {
		fprintf(stderr, "curl_easy_init failed\n");
		exit(1);
	}
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, s3h_sink_);
	if (curl_easy_perform(c) != CURLE_OK ||
	    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &st) != CURLE_OK ||
	    st != 200) {
		fprintf(stderr, "cannot arm the fault proxy (%s)\n", rule);
		exit(1);
	}
	curl_easy_cleanup(c);
}

#endif
