/*
 * t.h - the test harness every test file includes: checks that report
 * file:line and keep going or stop, a scale knob, seeded randomness and
 * scratch directories.
 *
 * A test is one executable; main() returns t_done(): 0 when every check
 * passed, 1 otherwise.  A test that cannot run here calls t_skip("why"),
 * which exits 77 (CTest reports it as skipped, with the reason on stdout).
 */
#ifndef CAIRN_T_H
#define CAIRN_T_H

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cairn/err.h"

static _Atomic int t_failures_;
static _Atomic int t_checks_;

#define T_FAIL_(...)                                                      \
	do {                                                              \
		fprintf(stderr, "%s:%d: FAIL: ", __FILE__, __LINE__);     \
		fprintf(stderr, __VA_ARGS__);                             \
		fputc('\n', stderr);                                      \
		t_failures_++;                                            \
	} while (0)

/* CHECK: record a failure and go on.  REQUIRE: record and stop the test. */
#define CHECK(cond)                                                       \
	do {                                                              \
		t_checks_++;                                              \
		if (!(cond))                                              \
			T_FAIL_("%s", #cond);                             \
	} while (0)
#define REQUIRE(cond)                                                     \
	do {                                                              \
		t_checks_++;                                              \
		if (!(cond)) {                                            \
			T_FAIL_("%s", #cond);                             \
			exit(1);                                          \
		}                                                         \
	} while (0)

/* Expect a cairn call to return rc; print the context message if not. */
#define CHECK_RC(call, want)                                              \
	do {                                                              \
		int t_rc_ = (call);                                       \
		t_checks_++;                                              \
		if (t_rc_ != (want))                                      \
			T_FAIL_("%s = %d (%s: %s), want %d (%s)", #call,  \
				t_rc_, cairn_rc_name(t_rc_),              \
				cairn_errmsg(), (int)(want),              \
				cairn_rc_name(want));                     \
	} while (0)
#define CHECK_OK(call) CHECK_RC(call, 0)
#define REQUIRE_OK(call)                                                  \
	do {                                                              \
		int t_rc_ = (call);                                       \
		t_checks_++;                                              \
		if (t_rc_ != 0) {                                         \
			T_FAIL_("%s = %d (%s: %s)", #call, t_rc_,         \
				cairn_rc_name(t_rc_), cairn_errmsg());    \
			exit(1);                                          \
		}                                                         \
	} while (0)

/* The context message of the last error must contain needle. */
#define CHECK_MSG(needle)                                                 \
	do {                                                              \
		t_checks_++;                                              \
		if (!strstr(cairn_errmsg(), (needle)))                    \
			T_FAIL_("message '%s' lacks '%s'", cairn_errmsg(), \
				(needle));                                \
	} while (0)

static inline int t_done(void)
{
	if (t_checks_ == 0) {
		fprintf(stderr, "FAIL: the test made no checks\n");
		return 1;
	}
	printf("%d checks, %d failed\n", t_checks_, t_failures_);
	return t_failures_ ? 1 : 0;
}

static inline void t_skip(const char *why)
{
	printf("SKIP: %s\n", why);
	exit(77);
}

/* CAIRN_TEST_SCALE (default 1.0, at least 0.01): multiply iteration
 * counts of long randomized and crash tests by it. */
static inline double t_scale(void)
{
	const char *s = getenv("CAIRN_TEST_SCALE");
	double v = s ? strtod(s, NULL) : 1.0;
	return v < 0.01 ? 0.01 : v;
}
static inline uint64_t t_scaled(uint64_t n)
{
	double v = (double)n * t_scale();
	return v < 1 ? 1 : (uint64_t)v;
}

/* Seeded PRNG (splitmix64).  t_seed() takes CAIRN_TEST_SEED if set, else
 * the time, and prints it so that a failure can be replayed. */
static inline uint64_t t_rand(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}
static inline uint64_t t_seed(void)
{
	const char *s = getenv("CAIRN_TEST_SEED");
	uint64_t v = s ? strtoull(s, NULL, 0) : (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 20);
	printf("seed: CAIRN_TEST_SEED=%" PRIu64 "\n", v);
	fflush(stdout);
	return v;
}
static inline void t_fill(void *buf, size_t len, uint64_t seed)
{
	uint8_t *p = (uint8_t *)buf;
	uint64_t s = seed;
	for (size_t i = 0; i < len; i += 8) {
		uint64_t r = t_rand(&s);
		size_t n = len - i < 8 ? len - i : 8;
		memcpy(p + i, &r, n);
	}
}

/* A fresh scratch directory under $CAIRN_TEST_TMP (or /tmp), named after
 * the test; removed by t_rmtree.  Returns a static buffer. */
static inline const char *t_tmpdir(const char *name)
{
	static char path[512];
	const char *base = getenv("CAIRN_TEST_TMP");
	char cmd[1100];
	if (!base || !*base)
		base = "/tmp";
	mkdir(base, 0755);
	snprintf(path, sizeof path, "%s/%s.%d", base, name, (int)getpid());
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", path);
	if (system(cmd) != 0 || mkdir(path, 0755) != 0) {
		fprintf(stderr, "cannot make scratch dir %s\n", path);
		exit(1);
	}
	return path;
}
static inline void t_rmtree(const char *path)
{
	char cmd[1100];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", path);
	if (system(cmd) != 0)
		fprintf(stderr, "warning: could not remove %s\n", path);
}

#endif
