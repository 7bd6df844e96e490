/*
 * cairn/log.h - leveled logging to stderr or a file, with secret scrubbing.
 *
 * One line per message: "2026-11-21T09:40:09.123Z W objstore: message".
 * The logger is thread-safe; each line is written with a single write(2) so
 * lines from several threads never interleave.
 *
 * Secrets.  Code that holds a secret (an access key, a secret key, a session
 * token) registers it with cairn_log_add_secret() as soon as it is read.  Every
 * formatted line is scrubbed before it is written: each registered secret is
 * replaced by "[REDACTED]".  So even a careless "%s" of a header or a URL
 * cannot print a secret.  cairn_errf() messages are scrubbed the same way
 * (err.c calls cairn_log_scrub()), because the CLI prints them.
 */
#ifndef CAIRN_LOG_H
#define CAIRN_LOG_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum cairn_log_level {
	CAIRN_LOG_ERROR = 0,
	CAIRN_LOG_WARN = 1,
	CAIRN_LOG_INFO = 2,
	CAIRN_LOG_DEBUG = 3,
} cairn_log_level;

/* Messages above this level are dropped. Default: CAIRN_LOG_WARN, or the
 * level named by the CAIRN_LOG environment variable (error|warn|info|debug). */
void cairn_log_set_level(cairn_log_level level);
cairn_log_level cairn_log_get_level(void);

/* Parse "error|warn|info|debug". Returns CAIRN_E_INVAL on anything else. */
int cairn_log_parse_level(const char *name, cairn_log_level *out);

/* Log to the file at path (appended, created 0600) instead of stderr.
 * NULL goes back to stderr. Errors: CAIRN_E_IO (with context). */
int cairn_log_set_file(const char *path);

/* Register a secret so that no log line or error message can show it.
 * Secrets shorter than 4 bytes are ignored (they would scrub ordinary text).
 * Errors: CAIRN_E_NOMEM, CAIRN_E_RANGE (more than 64 secrets). */
int cairn_log_add_secret(const char *secret);

/* Replace every registered secret in buf (NUL-terminated, in place).
 * Never makes the string longer than size-1. */
void cairn_log_scrub(char *buf, size_t size);

void cairn_log(cairn_log_level level, const char *module, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Log at most once per process for the given flag (e.g. "io_uring is
 * unavailable, using the thread pool"). *once must start at 0. */
void cairn_log_once(int *once, cairn_log_level level, const char *module,
		    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

#define CAIRN_ERROR(mod, ...) cairn_log(CAIRN_LOG_ERROR, mod, __VA_ARGS__)
#define CAIRN_WARN(mod, ...)  cairn_log(CAIRN_LOG_WARN, mod, __VA_ARGS__)
#define CAIRN_INFO(mod, ...)  cairn_log(CAIRN_LOG_INFO, mod, __VA_ARGS__)
#define CAIRN_DEBUG(mod, ...)                                          \
	do {                                                           \
		if (cairn_log_get_level() >= CAIRN_LOG_DEBUG)          \
			cairn_log(CAIRN_LOG_DEBUG, mod, __VA_ARGS__);  \
	} while (0)

#ifdef __cplusplus
}
#endif
#endif
