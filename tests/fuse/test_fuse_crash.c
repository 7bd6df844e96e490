/*
 * test_fuse_crash - the mount's life cycle and failures, through the cairn
 * binary as a user runs it:
 *   - command-line errors: one line, the right exit status (2 usage, 1
 *     failure) and a message naming the problem;
 *   - a second mount of the same volume is refused naming the owner pid;
 *   - SIGKILL of the daemon in the middle of writes: the mount point
 *     reports "transport endpoint is not connected", `cairn mount` there
 *     refuses with that, `cairn umount` cleans it up, and after a remount
 *     every byte that was fsynced before the kill is intact;
 *   - SIGTERM: the daemon flushes, unmounts and exits; un-fsynced but
 *     closed files survive the remount.
 */
#include <inttypes.h>
#include <signal.h>
#include <sys/statvfs.h>
#include <time.h>

#include "fuse_t.h"

static uint64_t seed;

static size_t csize(unsigned i)
{
	return 1000 + (size_t)(i % 7) * 9000;
}

/* Writer: files c/<i> (fsync every other one) and appends to "log" with
 * an fsync every 4 pieces; reports "f <i>" / "l <bytes>" once durable. */
static void writer(int out)
{
	char path[800], msg[64];
	uint8_t *b = malloc(64 << 10);
	if (!b)
		_exit(2);
	snprintf(path, sizeof path, "%s/log", ft_mnt);
	int lfd = open(path, O_CREAT | O_WRONLY | O_APPEND, 0644);
	if (lfd < 0)
		_exit(3);
	uint64_t logged = 0;
	for (unsigned i = 0;; i++) {
		size_t sz = csize(i);
		t_fill(b, sz, seed + i);
		snprintf(path, sizeof path, "%s/c/%u", ft_mnt, i);
		int fd = open(path, O_CREAT | O_WRONLY | O_TRUNC, 0644);
		if (fd < 0)
			_exit(0);
		if (write(fd, b, sz) != (ssize_t)sz)
			_exit(0);
		int synced = i % 2 == 0;
		if (synced && fsync(fd))
			_exit(0);
		close(fd);
		if (synced) {
			int n = snprintf(msg, sizeof msg, "f %u\n", i);
			if (write(out, msg, (size_t)n) != n)
				_exit(0);
		}
		t_fill(b, 16384, seed ^ (logged / 16384));
		if (write(lfd, b, 16384) != 16384)
			_exit(0);
		logged += 16384;
		if (i % 4 == 3) {
			if (fsync(lfd))
				_exit(0);
			int n = snprintf(msg, sizeof msg, "l %" PRIu64 "\n", logged);
			if (write(out, msg, (size_t)n) != n)
				_exit(0);
		}
	}
}

static int file_ok(unsigned i)
{
	char path[800];
	size_t sz = csize(i);
	uint8_t *w = malloc(sz), *g = malloc(sz + 1);
	int ok = 0;
	REQUIRE(w && g);
	t_fill(w, sz, seed + i);
	snprintf(path, sizeof path, "%s/c/%u", ft_mnt, i);
	int fd = open(path, O_RDONLY);
	if (fd >= 0) {
		ssize_t n = 0, r;
		while ((r = read(fd, g + n, sz + 1 - (size_t)n)) > 0)
			n += r;
		close(fd);
		ok = n == (ssize_t)sz && memcmp(w, g, sz) == 0;
	}
	if (!ok)
		fprintf(stderr, "file c/%u lost or damaged\n", i);
	free(w);
	free(g);
	return ok;
}

static int log_ok(uint64_t durable)
{
	char path[800];
	uint8_t w[16384], g[16384];
	snprintf(path, sizeof path, "%s/log", ft_mnt);
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		return 0;
	int ok = 1;
	for (uint64_t off = 0; ok && off < durable; off += 16384) {
		t_fill(w, sizeof w, seed ^ (off / 16384));
		ok = pread(fd, g, sizeof g, (off_t)off) == (ssize_t)sizeof g &&
		     memcmp(w, g, sizeof g) == 0;
		if (!ok)
			fprintf(stderr, "log: block at %" PRIu64 " of %" PRIu64 " bad\n", off, durable);
	}
	close(fd);
	return ok;
}

static int cli(char *out, size_t size, const char *args)
{
	return ft_sh(out, size, "'%s' %s 2>&1", CAIRN_BIN, args);
}

static void cli_errors(void)
{
	char out[2048], args[2048];

	snprintf(args, sizeof args, "--volume '%s' mount -o bogus_opt '%s'", ft_vol, ft_mnt);
	CHECK(cli(out, sizeof out, args) == 2);
	CHECK(strstr(out, "cairn: mount: unknown mount option 'bogus_opt'"));
	snprintf(args, sizeof args, "--volume '%s' mount -o durability=sometimes '%s'", ft_vol, ft_mnt);
	CHECK(cli(out, sizeof out, args) == 2);
	CHECK(strstr(out, "durability 'sometimes'"));
	snprintf(args, sizeof args, "--volume '%s' mount", ft_vol);
	CHECK(cli(out, sizeof out, args) == 2);
	CHECK(strstr(out, "missing MOUNTPOINT"));
	snprintf(args, sizeof args, "--volume '%s' mount '%s/no-such-dir'", ft_vol, ft_root);
	CHECK(cli(out, sizeof out, args) == 1);
	CHECK(strstr(out, "no-such-dir: No such file or directory"));
	snprintf(args, sizeof args, "--volume '%s' mount '%s'", ft_nat, ft_mnt);
	CHECK(cli(out, sizeof out, args) == 1);
	CHECK(strstr(out, "not a cairn volume"));
	/* one line only */
	CHECK(strchr(out, '\n') == out + strlen(out) - 1);
	snprintf(args, sizeof args, "umount '%s'", ft_nat);
	CHECK(cli(out, sizeof out, args) == 1);
	CHECK(strstr(out, "is not a cairn mount"));
	snprintf(args, sizeof args, "stats '%s'", ft_nat);
	CHECK(cli(out, sizeof out, args) == 1);
	CHECK(strstr(out, "is not a cairn mount"));
	CHECK(cli(out, sizeof out, "umount") == 2);
	CHECK(cli(out, sizeof out, "mount --help") == 0 && strstr(out, "usage: cairn"));
}

static long wait_reports(FILE *f, unsigned want_files, unsigned *last_file,
			 uint64_t *last_log)
{
	char line[64];
	unsigned files = 0;
	while (files < want_files && fgets(line, sizeof line, f)) {
		if (line[0] == 'f') {
			*last_file = (unsigned)strtoul(line + 2, NULL, 10);
			files++;
		} else if (line[0] == 'l') {
			*last_log = strtoull(line + 2, NULL, 10);
		}
	}
	return files;
}

int main(void)
{
	char out[2048], args[2048], path[800];
	ft_setup("fuse_crash");
	seed = t_seed();

	cli_errors();

	REQUIRE(ft_mount(NULL) == 0);
	/* the same volume elsewhere, and the same mount point again */
	snprintf(path, sizeof path, "%s/mnt2", ft_root);
	REQUIRE(mkdir(path, 0755) == 0);
	snprintf(args, sizeof args, "--volume '%s' mount '%s'", ft_vol, path);
	CHECK(cli(out, sizeof out, args) == 1);
	CHECK(strstr(out, "is in use by process"));
	long pid = ft_daemon_pid();
	REQUIRE(pid > 0);
	snprintf(path, sizeof path, "process %ld", pid);
	CHECK(strstr(out, path));
	/* ... and names the mount point and what to do */
	snprintf(path, sizeof path, "mounted at %s; unmount it with 'cairn umount %s'",
		 ft_mnt, ft_mnt);
	CHECK(strstr(out, path));
	snprintf(args, sizeof args, "--volume '%s' mount '%s'", ft_vol, ft_mnt);
	CHECK(cli(out, sizeof out, args) == 1);
	CHECK(strstr(out, "already a cairn mount"));

	/* ---- SIGKILL in the middle of writes ---- */
	snprintf(path, sizeof path, "%s/c", ft_mnt);
	REQUIRE(mkdir(path, 0755) == 0);
	int p[2];
	REQUIRE(pipe(p) == 0);
	pid_t w = fork();
	REQUIRE(w >= 0);
	if (w == 0) {
		close(p[0]);
		signal(SIGPIPE, SIG_IGN);
		writer(p[1]);
		_exit(0);
	}
	close(p[1]);
	FILE *rf = fdopen(p[0], "r");
	REQUIRE(rf);
	unsigned last_file = 0;
	uint64_t last_log = 0;
	unsigned want = (unsigned)t_scaled(60);
	CHECK(wait_reports(rf, want, &last_file, &last_log) == (long)want);
	REQUIRE(kill((pid_t)pid, SIGKILL) == 0);
	for (int i = 0; i < 3000 && ft_pid_alive(pid); i++) {
		struct timespec ts = { 0, 10000000 };
		nanosleep(&ts, NULL);
	}
	CHECK(!ft_pid_alive(pid));
	/* drain the reports that were already durable before the kill */
	wait_reports(rf, UINT32_MAX, &last_file, &last_log);
	fclose(rf);
	int st;
	REQUIRE(waitpid(w, &st, 0) == w);
	printf("killed the daemon after file %u, log %" PRIu64 " bytes durable\n",
	       last_file, last_log);
	struct stat sb;
	struct statvfs sv;  /* stat may answer from the kernel's cache */
	CHECK(statvfs(ft_mnt, &sv) == -1 && errno == ENOTCONN);
	snprintf(args, sizeof args, "--volume '%s' mount '%s'", ft_vol, ft_mnt);
	CHECK(cli(out, sizeof out, args) == 1);
	CHECK(strstr(out, "transport endpoint is not connected"));
	CHECK(ft_umount() == 0);
	CHECK(stat(ft_mnt, &sb) == 0);
	REQUIRE(ft_mount(NULL) == 0);
	int lost = 0;
	for (unsigned i = 0; i <= last_file; i += 2)
		lost += !file_ok(i);
	CHECK(lost == 0);
	CHECK(log_ok(last_log));

	/* ---- mount(8)'s helper form: mount.fuse.cairn SOURCE DIR -o OPTS ---- */
	REQUIRE(ft_umount() == 0);
	snprintf(path, sizeof path, "%s/mount.fuse.cairn", ft_root);
	REQUIRE(symlink(CAIRN_BIN, path) == 0);
	CHECK(ft_sh(out, sizeof out, "'%s' '%s' '%s' -o ro,noatime,_netdev,noauto 2>&1", path,
		    ft_vol, ft_mnt) == 0);
	ft_mounted = 1;
	CHECK(ft_sh(NULL, 0, "grep -q ' %s ro,.* - fuse.cairn ' /proc/self/mountinfo", ft_mnt) == 0);
	CHECK(file_ok(0));
	CHECK(ft_sh(out, sizeof out, "'%s' '%s' '%s' -o bogus 2>&1", path, ft_vol, ft_mnt) == 2);
	CHECK(strstr(out, "mount.fuse.cairn: unknown mount option 'bogus'"));
	REQUIRE(ft_umount() == 0);
	REQUIRE(ft_mount(NULL) == 0);

	/* ---- SIGTERM: flush, unmount, exit ---- */
	for (unsigned i = 1; i < 40; i += 2) {
		uint8_t b[64 << 10];
		size_t sz = csize(i);
		t_fill(b, sz, seed + i);
		snprintf(path, sizeof path, "%s/c/%u", ft_mnt, i);
		int fd = open(path, O_CREAT | O_WRONLY | O_TRUNC, 0644);
		REQUIRE(fd >= 0);
		CHECK(write(fd, b, sz) == (ssize_t)sz);
		close(fd);  /* no fsync */
	}
	pid = ft_daemon_pid();
	REQUIRE(pid > 0);
	REQUIRE(kill((pid_t)pid, SIGTERM) == 0);
	for (int i = 0; i < 3000 && ft_pid_alive(pid); i++) {
		struct timespec ts = { 0, 10000000 };
		nanosleep(&ts, NULL);
	}
	CHECK(!ft_pid_alive(pid));
	CHECK(ft_sh(NULL, 0, "grep -q ' %s .* - fuse.cairn ' /proc/self/mountinfo", ft_mnt) == 1);
	ft_mounted = 0;
	REQUIRE(ft_mount(NULL) == 0);
	lost = 0;
	for (unsigned i = 1; i < 40; i += 2)
		lost += !file_ok(i);
	CHECK(lost == 0);
	REQUIRE(ft_umount() == 0);
	ft_check_log();
	return t_done();
}
