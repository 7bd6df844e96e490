/*
 * test_follow_fuse.c - a follower mounted with FUSE through the cairn
 * binary (`cairn --volume FDIR mount --follow --store URL MNT`) while a
 * writer in this process goes on: a file the writer creates after the
 * mount appears in the mount with its bytes (polled, generous bound), a
 * file rewritten by the writer is read with its new bytes (the kernel's
 * cache is not kept across changes), writes are refused (EROFS),
 * `cairn stats` and `cairn status` (through the mount's control socket)
 * show the follower's lines, and a writer's directory is refused as a
 * follower's.  Skips without a usable /dev/fuse.
 */
#include <time.h>

#include "fuse/fuse_t.h"
#include "recover_t.h"

#define BOUND_MS 60000

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Wait until path in the mount holds exactly size bytes of seed. */
static int wait_file(const char *path, uint64_t size, uint64_t seed)
{
	uint8_t *want = malloc(size + 1), *got = malloc(size + 1);
	int64_t t0 = now_ms();
	int ok = 0;
	REQUIRE(want && got);
	t_fill(want, size, seed);
	while (!ok && now_ms() - t0 < BOUND_MS) {
		int fd = open(path, O_RDONLY);
		if (fd >= 0) {
			size_t n = 0;
			ssize_t r;
			while (n <= size && (r = read(fd, got + n, size + 1 - n)) > 0)
				n += (size_t)r;
			close(fd);
			ok = n == size && memcmp(want, got, size) == 0;
		}
		if (!ok) {
			struct timespec ts = { 0, 50 * 1000000 };
			nanosleep(&ts, NULL);
		}
	}
	free(want);
	free(got);
	return ok ? 0 : -1;
}

int main(void)
{
	char fdir[700], url[800], out[8192], path[900];
	cairn_volume_opts vo;
	cairn_volume *v;

	ft_setup("follow_fuse");
	snprintf(fdir, sizeof fdir, "%s/follower", ft_root);
	snprintf(url, sizeof url, "file://%s/store", ft_vol);
	memset(&vo, 0, sizeof vo);
	vo.ship_interval_ms = 100;
	REQUIRE_OK(volume_open(ft_vol, &vo, &v));
	rt_write(v, "before.txt", 1000, 1);
	REQUIRE_OK(volume_sync_durable(v, CAIRN_DUR_REMOTE));
	REQUIRE_OK(volume_ship_flush(v));

	/* a writer's directory is no follower's */
	int rc = ft_sh(out, sizeof out, "'%s' --volume '%s' mount --follow --store '%s' '%s' 2>&1",
		       CAIRN_BIN, ft_vol, url, ft_mnt);
	CHECK(rc == 1);
	CHECK(strstr(out, "writer volume") != NULL);
	rc = ft_sh(out, sizeof out, "'%s' --volume '%s' mount --follow --store '%s' '%s' 2>&1",
		   CAIRN_BIN, fdir, url, ft_mnt);
	if (rc)
		fprintf(stderr, "mount --follow: %s", out);
	REQUIRE(rc == 0);
	ft_mounted = 1;

	snprintf(path, sizeof path, "%s/before.txt", ft_mnt);
	CHECK(wait_file(path, 1000, 1) == 0);
	/* created after the mount */
	rt_write(v, "dir/after.bin", 300000, 2);
	REQUIRE_OK(volume_sync_durable(v, CAIRN_DUR_REMOTE));
	REQUIRE_OK(volume_ship_flush(v));
	snprintf(path, sizeof path, "%s/dir/after.bin", ft_mnt);
	CHECK(wait_file(path, 300000, 2) == 0);
	/* rewritten by the writer: new bytes, not the kernel's old pages */
	rt_write(v, "dir/after.bin", 200000, 3);
	REQUIRE_OK(volume_sync_durable(v, CAIRN_DUR_REMOTE));
	REQUIRE_OK(volume_ship_flush(v));
	CHECK(wait_file(path, 200000, 3) == 0);

	/* read-only */
	snprintf(path, sizeof path, "%s/new.txt", ft_mnt);
	errno = 0;
	int fd = open(path, O_WRONLY | O_CREAT, 0644);
	CHECK(fd < 0 && errno == EROFS);
	if (fd >= 0)
		close(fd);
	snprintf(path, sizeof path, "%s/newdir", ft_mnt);
	CHECK(mkdir(path, 0755) != 0 && errno == EROFS);

	/* stats and status */
	rc = ft_sh(out, sizeof out, "'%s' stats '%s' 2>&1", CAIRN_BIN, ft_mnt);
	CHECK(rc == 0);
	CHECK(strstr(out, "follower 1") != NULL);
	CHECK(strstr(out, "follow_lag_ms") != NULL);
	rc = ft_sh(out, sizeof out, "'%s' --json stats '%s' 2>&1", CAIRN_BIN, ft_mnt);
	CHECK(rc == 0);
	CHECK(strstr(out, "\"follow_applied_objects\":") != NULL);
	rc = ft_sh(out, sizeof out, "'%s' --volume '%s' status 2>&1", CAIRN_BIN, fdir);
	CHECK(rc == 0);
	CHECK(strstr(out, "read-only follower") != NULL);
	CHECK(strstr(out, "following:") != NULL);
	rc = ft_sh(out, sizeof out, "'%s' --json --volume '%s' status 2>&1", CAIRN_BIN, fdir);
	CHECK(rc == 0);
	CHECK(strstr(out, "\"follower\":true") != NULL);
	if (!t_failures_ && strstr(out, "\"follower\":true") == NULL)
		fprintf(stderr, "status --json: %s\n", out);
	/* the writer's status shows its shipping */
	REQUIRE_OK(volume_close(v));
	CHECK(ft_umount() == 0);
	rc = ft_sh(out, sizeof out, "'%s' --volume '%s' status 2>&1", CAIRN_BIN, ft_vol);
	CHECK(rc == 0);
	CHECK(strstr(out, "log shipping:    shipped LSN") != NULL);
	/* the fstab form: -o follow=URL */
	rc = ft_sh(out, sizeof out, "'%s' --volume '%s' mount -o follow='%s' '%s' 2>&1",
		   CAIRN_BIN, fdir, url, ft_mnt);
	CHECK(rc == 0);
	if (rc == 0) {
		ft_mounted = 1;
		snprintf(path, sizeof path, "%s/dir/after.bin", ft_mnt);
		CHECK(wait_file(path, 200000, 3) == 0);
		snprintf(path, sizeof path, "%s/new2.txt", ft_mnt);
		errno = 0;
		fd = open(path, O_WRONLY | O_CREAT, 0644);
		CHECK(fd < 0 && errno == EROFS);
		if (fd >= 0)
			close(fd);
		CHECK(ft_umount() == 0);
	} else {
		fprintf(stderr, "mount -o follow=: %s", out);
	}
	/* an unmounted follower directory opens as a follower */
	rc = ft_sh(out, sizeof out, "'%s' --volume '%s' ls /dir 2>&1", CAIRN_BIN, fdir);
	CHECK(rc == 0);
	CHECK(strstr(out, "after.bin") != NULL);
	rc = ft_sh(out, sizeof out, "'%s' --volume '%s' mkdir /x 2>&1", CAIRN_BIN, fdir);
	CHECK(rc == 1);
	CHECK(strstr(out, "read-only follower") != NULL);
	/* the follower daemon's log (its stderr) holds no sanitizer report */
	snprintf(ft_vol, sizeof ft_vol, "%s", fdir);
	ft_check_log();
	return t_done();
}
