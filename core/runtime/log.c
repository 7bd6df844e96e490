/*
 * log.c - leveled logging with secret scrubbing.
 *
 * Invariants
 *   1. A registered secret never reaches the log sink: every line is
 *      formatted into a bounded buffer, scrubbed, then written with one
 *      write(2) (lines of several threads never interleave).
 *   2. The secret table only grows (a secret stays secret for the life of
 *      the process); it is guarded by a mutex, and scrubbing copies nothing
 *      of a secret anywhere but the caller's buffer, which it overwrites.
 *   3. Logging never fails its caller: a write error to the sink is dropped
 *      (there is nowhere to report it), and the sink falls back to stderr.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "cairn/err.h"
#include "cairn/log.h"

#define LOG_LINE_MAX 2048
#define SECRETS_MAX 64
#define SECRET_MIN 4

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static atomic_int log_level = -1;  /* -1: not yet read from $CAIRN_LOG */
static int log_fd = 2;
static char *secrets[SECRETS_MAX];
static size_t nsecrets;
static const char redacted[] = "[REDACTED]";

int cairn_log_parse_level(const char *name, cairn_log_level *out)
{
	static const char *const names[] = {"error", "warn", "info", "debug"};

	for (int i = 0; i < 4; i++) {
		if (name && strcasecmp(name, names[i]) == 0) {
			*out = (cairn_log_level)i;
			return CAIRN_OK;
		}
	}
	return cairn_errf(CAIRN_E_INVAL,
			  "log level '%s' is not one of error, warn, info, debug",
			  name ? name : "");
}

cairn_log_level cairn_log_get_level(void)
{
	int lv = atomic_load(&log_level);
	if (lv < 0) {
		cairn_log_level parsed = CAIRN_LOG_WARN;
		const char *env = getenv("CAIRN_LOG");
		if (env && cairn_log_parse_level(env, &parsed) != CAIRN_OK)
			parsed = CAIRN_LOG_WARN;
		lv = (int)parsed;
		atomic_store(&log_level, lv);
	}
	return (cairn_log_level)lv;
}

void cairn_log_set_level(cairn_log_level level)
{
	atomic_store(&log_level, (int)level);
}

int cairn_log_set_file(const char *path)
{
	int fd = 2;

	if (path) {
		fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
		if (fd < 0)
			return cairn_errf(cairn_rc_from_errno(errno),
					  "open log file %s: %s", path,
					  strerror(errno));
	}
	pthread_mutex_lock(&log_lock);
	if (log_fd != 2)
		close(log_fd);
	log_fd = fd;
	pthread_mutex_unlock(&log_lock);
	return CAIRN_OK;
}

int cairn_log_add_secret(const char *secret)
{
	int rc = CAIRN_OK;

	if (!secret || strlen(secret) < SECRET_MIN)
		return CAIRN_OK;
	pthread_mutex_lock(&log_lock);
	for (size_t i = 0; i < nsecrets; i++)
		if (strcmp(secrets[i], secret) == 0)
			goto out;
	if (nsecrets == SECRETS_MAX) {
		rc = CAIRN_E_RANGE;
		goto out;
	}
	secrets[nsecrets] = strdup(secret);
	if (!secrets[nsecrets]) {
		rc = CAIRN_E_NOMEM;
		goto out;
	}
	nsecrets++;
out:
	pthread_mutex_unlock(&log_lock);
	/* cairn_errf scrubs under log_lock: report only after releasing it. */
	if (rc == CAIRN_E_RANGE)
		return cairn_errf(rc, "more than %d secrets registered",
				  SECRETS_MAX);
	if (rc == CAIRN_E_NOMEM)
		return cairn_errf(rc, "register secret: out of memory");
	return rc;
}

/* Caller holds log_lock.  Searching resumes after each replacement, so a
 * secret that occurs inside the redaction text cannot loop. */
static void scrub_locked(char *buf, size_t size)
{
	for (size_t i = 0; i < nsecrets; i++) {
		size_t slen = strlen(secrets[i]);
		size_t rlen = sizeof redacted - 1;
		char *from = buf;
		char *p;

		while ((p = strstr(from, secrets[i])) != NULL) {
			size_t used = (size_t)(p - buf);
			size_t tail = strlen(p + slen) + 1;

			if (used + rlen >= size - 1) {
				/* No room for the redaction: cut the line. */
				memset(p, '*', size - 1 - used);
				buf[size - 1] = '\0';
				break;
			}
			if (used + rlen + tail > size)
				tail = size - used - rlen;
			memmove(p + rlen, p + slen, tail);
			memcpy(p, redacted, rlen);
			buf[size - 1] = '\0';
			from = p + rlen;
		}
		/* A line cut short by its buffer may end in the first bytes of
		 * a secret: mask such a tail too. */
		size_t blen = strlen(buf);
		for (size_t k = slen - 1 < blen ? slen - 1 : blen; k >= SECRET_MIN; k--) {
			if (memcmp(buf + blen - k, secrets[i], k) == 0) {
				memset(buf + blen - k, '*', k);
				break;
			}
		}
	}
}

void cairn_log_scrub(char *buf, size_t size)
{
	if (!buf || size == 0)
		return;
	pthread_mutex_lock(&log_lock);
	scrub_locked(buf, size);
	pthread_mutex_unlock(&log_lock);
}

static void log_va(cairn_log_level level, const char *module, const char *fmt,
		   va_list ap)
{
	static const char letters[] = "EWID";
	char line[LOG_LINE_MAX];
	struct timeval tv;
	struct tm tm;
	size_t n;
	int saved = errno;

	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	n = strftime(line, sizeof line, "%Y-%m-%dT%H:%M:%S", &tm);
	n += (size_t)snprintf(line + n, sizeof line - n, ".%03dZ %c %s: ",
			      (int)(tv.tv_usec / 1000),
			      letters[level <= CAIRN_LOG_DEBUG ? level : 3],
			      module ? module : "cairn");
	if (n < sizeof line - 2)
		vsnprintf(line + n, sizeof line - n - 1, fmt, ap);
	line[sizeof line - 2] = '\0';
	pthread_mutex_lock(&log_lock);
	scrub_locked(line, sizeof line - 1);
	n = strlen(line);
	line[n++] = '\n';
	/* One write per line; a failing sink has nowhere to report to. */
	if (write(log_fd, line, n) < 0 && log_fd != 2)
		log_fd = 2;
	pthread_mutex_unlock(&log_lock);
	errno = saved;
}

void cairn_log(cairn_log_level level, const char *module, const char *fmt, ...)
{
	va_list ap;

	if (level > cairn_log_get_level())
		return;
	va_start(ap, fmt);
	log_va(level, module, fmt, ap);
	va_end(ap);
}

void cairn_log_once(int *once, cairn_log_level level, const char *module,
		    const char *fmt, ...)
{
	va_list ap;

	if (__atomic_exchange_n(once, 1, __ATOMIC_ACQ_REL))
		return;
	if (level > cairn_log_get_level())
		return;
	va_start(ap, fmt);
	log_va(level, module, fmt, ap);
	va_end(ap);
}
