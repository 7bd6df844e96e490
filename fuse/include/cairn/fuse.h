/*
 * cairn/fuse.h - the FUSE mount of a volume (library cairn_fuse), what the
 * `cairn mount`, `cairn umount` and `cairn stats` commands call.
 *
 * The mount daemon is the volume's owner process.  cairn_mount() either
 * serves the mount in the calling process (foreground) or forks a daemon
 * and returns once the mount is live (or with the daemon's error).  Only
 * the volume API (cairn/volume.h) is used: never LMDB or segments.
 *
 * Guarantees (docs/fuse.md):
 *   1. The volume is opened only after daemonizing, so the owner lock
 *      names the daemon's pid.
 *   2. cairn_mount() in background mode returns 0 only after the kernel
 *      mount exists; otherwise it returns the daemon's error with the
 *      daemon's message (cairn_errmsg()).
 *   3. SIGTERM, SIGINT, SIGHUP and an unmount end the session; the daemon
 *      then closes every open file, commits everything (volume_close) and
 *      exits 0 if all of it succeeded.
 *   4. cairn_umount() flushes (a synced commit through the control file),
 *      unmounts, and waits until the daemon has closed the volume, so a
 *      remount right after it succeeds.  A mount whose daemon died
 *      ("transport endpoint is not connected") is detached.
 */
#ifndef CAIRN_FUSE_H
#define CAIRN_FUSE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct cairn_volume;
/* The serving mount, as its own process sees it (the on_open hook). */
typedef struct cairn_mount_live cairn_mount_live;

/* Name of the hidden control file at the root of every mount (not listed
 * by readdir).  Reading it gives the statistics ("key value" lines);
 * fsync of it commits everything (volume_sync). */
#define CAIRN_FUSE_CTL_NAME ".cairn-stats"

typedef struct cairn_mount_opts {
	const char *volume_dir;   /* the volume (required) */
	const char *mountpoint;   /* an existing directory (required) */
	int foreground;           /* 1: serve in this process */
	int read_only;
	int allow_other;
	int debug;                /* libfuse request tracing (foreground) */
	int durability;           /* -1: volume default; CAIRN_DUR_* */
	uint64_t cache_size;      /* 0: volume default */
	double entry_timeout;     /* seconds; < 0: default 10 */
	double attr_timeout;      /* seconds; < 0: default 10 */
	const char *log_file;     /* background daemon's log; NULL:
				     <volume_dir>/mount.log */
	char fuse_opts[512];      /* extra comma-separated mount options
				     (nosuid, nodev, noexec, ...) */
	const char *follow_store; /* non-NULL: a read-only follower of the
				     volume in this store (docs/log-shipping.md);
				     volume_dir is the follower's own
				     directory; timeouts default to 1 s */
	char follow_url[1024];    /* -o follow=URL keeps the URL here (and
				     points follow_store at it) */
	/* Hooks of the serving process (the CLI's control socket): on_open
	 * runs once the volume is open and the kernel mount is live (an error
	 * ends the mount with it), with the mount for the cairn_mount_live_*
	 * calls below (valid until on_close returns); on_close runs before
	 * the volume is closed.  Both may be NULL. */
	int (*on_open)(struct cairn_volume *vol, cairn_mount_live *m, void *arg);
	void (*on_close)(void *arg);
	void *hook_arg;
} cairn_mount_opts;

/* Defaults: durability -1, timeouts -1, everything else 0/NULL. */
void cairn_mount_opts_init(cairn_mount_opts *o);

/* Parse one -o list ("ro,allow_other,durability=remote,...") into o.
 * Standard mount(8)/fstab options that mean nothing here (defaults,
 * auto, noauto, user, nofail, _netdev, x-*, ...) are accepted and
 * ignored.  Errors: CAIRN_E_INVAL naming the option. */
int cairn_mount_opts_parse(cairn_mount_opts *o, const char *list);

/* Mount (see the guarantees above).  Foreground: returns when the session
 * ends, with the first error of the shutdown.  Errors: CAIRN_E_INVAL
 * (bad mount point), CAIRN_E_BUSY (volume in use: the message names the
 * pid), the errors of volume_open, CAIRN_E_IO (the kernel mount failed). */
int cairn_mount(const cairn_mount_opts *o);

/* Flush and unmount mountpoint, then wait up to wait_ms for the daemon to
 * exit.  Errors: CAIRN_E_INVAL (not a cairn mount), CAIRN_E_BUSY (files
 * open on the mount), CAIRN_E_TIMEOUT (the daemon did not exit), CAIRN_E_IO. */
int cairn_umount(const char *mountpoint, unsigned wait_ms);

/* Changes the serving process makes to the volume outside FUSE requests
 * (commands of the CLI's control socket, docs/fuse.md "Commands through
 * the control socket") do not pass through the kernel, whose caches know
 * nothing of them: the caller tells the mount.  Never call these while holding a lock a FUSE
 * request may need, nor from a FUSE request handler.
 *
 * read_only: 1 for a read-only mount (-o ro, followers), whose serving
 * process must not change the volume.
 * pin: before (parent, name) is removed or replaced: a regular file there
 * that the kernel holds (looked up, not forgotten) gets a handle kept
 * until the kernel forgets the inode, so a process that has it open keeps
 * reading it.  0, or the volume's error.
 * inval_entry: after (parent, name) was created, removed or replaced: the
 * kernel drops its entry (a negative one too) and parent's attributes.
 * inval_inode: after ino's data or attributes changed: the kernel drops
 * its cached pages and attributes.  Both best effort (nothing to report:
 * an entry the kernel does not hold needs nothing). */
int cairn_mount_live_read_only(const cairn_mount_live *m);
int cairn_mount_live_pin(cairn_mount_live *m, uint64_t parent, const char *name);
void cairn_mount_live_inval_entry(cairn_mount_live *m, uint64_t parent, const char *name);
void cairn_mount_live_inval_inode(cairn_mount_live *m, uint64_t ino);

/* Read the statistics of the mount at mountpoint into buf ("key value"
 * lines, NUL-terminated).  Errors: CAIRN_E_INVAL (not a cairn mount),
 * CAIRN_E_IO (the daemon is gone). */
int cairn_mount_stats(const char *mountpoint, char *buf, size_t size);

#ifdef __cplusplus
}
#endif
#endif
