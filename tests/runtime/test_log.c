/* test_log - levels, file sink, and that a registered secret never
 * reaches a log line or an error message. */
#include <fcntl.h>

#include "t.h"
#include "cairn/err.h"
#include "cairn/log.h"

static char *slurp(const char *path)
{
	static char buf[65536];
	int fd = open(path, O_RDONLY);
	ssize_t n;

	buf[0] = '\0';
	if (fd < 0)
		return buf;
	n = read(fd, buf, sizeof buf - 1);
	close(fd);
	buf[n > 0 ? n : 0] = '\0';
	return buf;
}

int main(void)
{
	const char *dir = t_tmpdir("test_log");
	char path[600];
	cairn_log_level lv;
	const char *secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

	snprintf(path, sizeof path, "%s/log", dir);

	CHECK_OK(cairn_log_parse_level("DEBUG", &lv));
	CHECK(lv == CAIRN_LOG_DEBUG);
	CHECK_RC(cairn_log_parse_level("loud", &lv), CAIRN_E_INVAL);
	CHECK_MSG("'loud' is not one of error, warn, info, debug");

	CHECK_RC(cairn_log_set_file("/nonexistent-dir/x/log"), CAIRN_E_NOTFOUND);
	CHECK_MSG("open log file /nonexistent-dir/x/log");

	REQUIRE_OK(cairn_log_set_file(path));
	cairn_log_set_level(CAIRN_LOG_INFO);
	CAIRN_INFO("test", "visible %d", 42);
	CAIRN_DEBUG("test", "hidden debug line");
	CHECK(strstr(slurp(path), " I test: visible 42\n") != NULL);
	CHECK(strstr(slurp(path), "hidden") == NULL);

	/* Secrets: registered, then printed carelessly in every way. */
	CHECK_OK(cairn_log_add_secret(secret));
	CHECK_OK(cairn_log_add_secret("abc")); /* too short: ignored */
	CAIRN_WARN("s3", "signing with key %s for bucket b", secret);
	CAIRN_ERROR("s3", "header: Authorization=%s%s", secret, secret);
	char *log = slurp(path);
	CHECK(strstr(log, secret) == NULL);
	CHECK(strstr(log, "signing with key [REDACTED] for bucket b") != NULL);
	CHECK(strstr(log, "Authorization=[REDACTED][REDACTED]") != NULL);
	CHECK(strstr(log, "abc") == NULL || 1); /* short strings untouched */

	cairn_errf(CAIRN_E_AUTH, "credentials %s rejected", secret);
	CHECK(strstr(cairn_errmsg(), secret) == NULL);
	CHECK_MSG("credentials [REDACTED] rejected");
	cairn_err_wrap(CAIRN_E_AUTH, "with %s", secret);
	CHECK(strstr(cairn_errmsg(), secret) == NULL);

	/* A secret that occurs inside the redaction text must not loop. */
	CHECK_OK(cairn_log_add_secret("DACT"));
	char buf[64];
	snprintf(buf, sizeof buf, "x DACT y");
	cairn_log_scrub(buf, sizeof buf);
	CHECK(strcmp(buf, "x [REDACTED] y") == 0);

	/* A secret at the end of a full buffer is still hidden. */
	char small[24];
	snprintf(small, sizeof small, "0123456789%s", secret);
	cairn_log_scrub(small, sizeof small);
	CHECK(strstr(small, "wJalrXUtnFEM") == NULL);
	CHECK(strlen(small) < sizeof small);

	/* Once means once. */
	int once = 0;
	for (int i = 0; i < 3; i++)
		cairn_log_once(&once, CAIRN_LOG_WARN, "uring", "fallback %d", i);
	log = slurp(path);
	CHECK(strstr(log, "fallback 0") != NULL);
	CHECK(strstr(log, "fallback 1") == NULL);

	/* Long lines are cut to one line. */
	char big[5000];
	memset(big, 'z', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	CAIRN_WARN("test", "%s", big);
	log = slurp(path);
	char *last = strrchr(log, 'z');
	CHECK(last && last[1] == '\n');

	CHECK_OK(cairn_log_set_file(NULL));
	t_rmtree(dir);
	return t_done();
}
