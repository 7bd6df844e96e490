/*
 * fuse_t.h - helpers of the FUSE tests: a scratch area with a formatted
 * volume, a native directory and a mount point; mounting and unmounting
 * through the real `cairn` binary (CAIRN_BIN, set by CMake); cleanup that
 * always unmounts, even when a REQUIRE fails (atexit).
 *
 * Skips (exit 77) when /dev/fuse is unusable or, for a non-root user,
 * fusermount3 is missing.
 */
#ifndef CAIRN_FUSE_T_H
#define CAIRN_FUSE_T_H

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cairn/volume.h"
#include "t.h"

#ifndef CAIRN_BIN
#error "CAIRN_BIN must name the cairn binary"
#endif

static char ft_root[512], ft_vol[600], ft_mnt[600], ft_nat[600];
static int ft_mounted;

/* Run a shell command, output captured into out (may be NULL); returns
 * the exit status (-1 if it did not exit normally). */
static inline int ft_sh(char *out, size_t size, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static inline int ft_sh(char *out, size_t size, const char *fmt, ...)
{
	char cmd[4096];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(cmd, sizeof cmd, fmt, ap);
	va_end(ap);
	FILE *p = popen(cmd, "r");
	if (!p)
		return -1;
	size_t n = 0;
	char tmp[512];
	size_t r;
	while ((r = fread(tmp, 1, sizeof tmp, p)) > 0) {
		if (out && n + 1 < size) {
			size_t k = r < size - 1 - n ? r : size - 1 - n;
			memcpy(out + n, tmp, k);
			n += k;
		}
	}
	if (out && size)
		out[n] = 0;
	int st = pclose(p);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Mount the test volume (extra -o options may be NULL); exit status. */
static inline int ft_mount(const char *opts)
{
	char out[2048];
	int rc = ft_sh(out, sizeof out, "'%s' --volume '%s' mount %s%s '%s' 2>&1", CAIRN_BIN,
		       ft_vol, opts ? "-o " : "", opts ? opts : "", ft_mnt);
	if (rc)
		fprintf(stderr, "cairn mount: status %d: %s", rc, out);
	else
		ft_mounted = 1;
	return rc;
}

static inline int ft_umount(void)
{
	char out[2048];
	int rc = ft_sh(out, sizeof out, "'%s' umount '%s' 2>&1", CAIRN_BIN, ft_mnt);
	if (rc)
		fprintf(stderr, "cairn umount: status %d: %s", rc, out);
	else
		ft_mounted = 0;
	return rc;
}

/* One counter of the mount's control file (a "key value" line);
 * UINT64_MAX if the file or the key is missing. */
static inline uint64_t ft_stat(const char *name)
{
	char path[700], buf[8192], key[64];
	snprintf(path, sizeof path, "%s/.cairn-stats", ft_mnt);
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		return UINT64_MAX;
	ssize_t n = read(fd, buf + 1, sizeof buf - 2);
	close(fd);
	if (n <= 0)
		return UINT64_MAX;
	buf[0] = '\n';   /* the first line matches like the others */
	buf[n + 1] = 0;
	snprintf(key, sizeof key, "\n%s ", name);
	char *p = strstr(buf, key);
	return p ? strtoull(p + strlen(key), NULL, 10) : UINT64_MAX;
}

static inline void ft_sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

/* name's path in the mount. */
static inline void ft_path(char *out, size_t size, const char *name)
{
	snprintf(out, size, "%s/%s", ft_mnt, name);
}

/* The daemon's pid, from the control file; 0 if unreadable. */
static inline long ft_daemon_pid(void)
{
	uint64_t pid = ft_stat("pid");
	return pid == UINT64_MAX ? 0 : (long)pid;
}

/* Alive, or still exiting: a killed daemon's main thread is a zombie
 * ('Z') as soon as it exits, while its other threads may still be
 * exiting and holding the file table (/dev/fuse open: the mount still
 * connected); it is gone once the leader is the only task left and a
 * zombie (an orphaned daemon may wait for a reaper). */
static inline int ft_pid_alive(long pid)
{
	char path[64], buf[512];
	snprintf(path, sizeof path, "/proc/%ld/stat", pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return 0;
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = 0;
	char *rp = strrchr(buf, ')');
	if (!rp || rp[1] != ' ')
		return 0;
	if (rp[2] != 'Z' && rp[2] != 'X')
		return 1;
	/* field 20 of stat: num_threads (rp + 2 is field 3) */
	char *p = rp + 2;
	for (int field = 3; field < 20 && p; field++)
		if ((p = strchr(p, ' ')))
			p++;
	return p && strtol(p, NULL, 10) > 1;
}

/* The daemon's log must hold no sanitizer report (its stderr goes there). */
static inline void ft_check_log(void)
{
	char path[700], line[1024];
	snprintf(path, sizeof path, "%s/mount.log", ft_vol);
	FILE *f = fopen(path, "r");
	int bad = 0;
	if (!f)
		return;
	while (fgets(line, sizeof line, f)) {
		if (strstr(line, "Sanitizer") || strstr(line, "runtime error")) {
			fprintf(stderr, "daemon log: %s", line);
			bad = 1;
		}
	}
	fclose(f);
	CHECK(!bad);
}

static inline void ft_cleanup(void)
{
	if (!ft_root[0])
		return;
	/* Whatever state the test left: unmount (the daemon flushes), then
	 * detach anything still there, so no stale mount survives. */
	if (ft_mounted && ft_umount() != 0)
		umount2(ft_mnt, MNT_DETACH);
	umount2(ft_mnt, MNT_DETACH);
	if (!getenv("CAIRN_TEST_KEEP"))
		t_rmtree(ft_root);
}

/* Scratch area <tmp>/<name>.<pid>/{vol,mnt,native}; formats the volume. */
static inline void ft_setup(const char *name)
{
	if (access("/dev/fuse", R_OK | W_OK) != 0)
		t_skip("/dev/fuse is missing or not usable");
	if (geteuid() != 0 && access("/usr/bin/fusermount3", X_OK) != 0 &&
	    access("/bin/fusermount3", X_OK) != 0)
		t_skip("fusermount3 is not installed (needed without root)");
	snprintf(ft_root, sizeof ft_root, "%s", t_tmpdir(name));
	chmod(ft_root, 0755);
	snprintf(ft_vol, sizeof ft_vol, "%s/vol", ft_root);
	snprintf(ft_mnt, sizeof ft_mnt, "%s/mnt", ft_root);
	snprintf(ft_nat, sizeof ft_nat, "%s/native", ft_root);
	REQUIRE(mkdir(ft_mnt, 0755) == 0);
	REQUIRE(mkdir(ft_nat, 0755) == 0);
	REQUIRE_OK(volume_format(ft_vol, NULL));
	atexit(ft_cleanup);
}

#endif
