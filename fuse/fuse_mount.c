/*
 * fuse_mount.c - mounting a volume: mount options, the daemon, the FUSE
 * session, and the client side of umount and stats.
 *
 * Background mount:
 *
 *   cairn mount (parent)              daemon (child, setsid)
 *   ---------------------             ----------------------------------
 *   check paths, pipe, fork  ------>  chdir /, log to <vol>/mount.log
 *   read the pipe ...                 volume_open    (owner lock: this pid)
 *                                     fuse_session_new + mount
 *                                     on_open hook (CLI control socket)
 *   <------ "0" or "<rc> <message>"   report, stdio -> /dev/null
 *   exit 0, or the error, 1           serve (multi-threaded loop) ...
 *                                     SIGTERM/SIGINT/SIGHUP or unmount:
 *                                     unmount, on_close hook, close
 *                                     handles, volume_close
 *
 *   daemon states:  OPENING --mounted--> SERVING --signal/unmount--> CLOSING
 *                   OPENING --error--> (reports, exits 1)
 *
 * Invariants:
 *   1. The volume is opened in the process that serves it, after the
 *      fork (no threads or io_uring instances cross a fork).
 *   2. The parent reports success only after fuse_session_mount returned,
 *      i.e. the kernel mount exists; a daemon that dies before reporting
 *      is an error naming its exit status and log file.
 *   3. cairn_umount waits for the daemon's exit (its volume_close), so the
 *      owner lock is free when it returns 0.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fuse_priv.h"

void cairn_mount_opts_init(cairn_mount_opts *o)
{
	memset(o, 0, sizeof *o);
	o->durability = -1;
	o->entry_timeout = -1;
	o->attr_timeout = -1;
}

static int parse_size(const char *s, uint64_t *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || end == s || *s == '-')
		return -1;
	uint64_t mul = 1;
	switch (*end) {
	case 0: break;
	case 'k': case 'K': mul = 1ull << 10; end++; break;
	case 'm': case 'M': mul = 1ull << 20; end++; break;
	case 'g': case 'G': mul = 1ull << 30; end++; break;
	case 't': case 'T': mul = 1ull << 40; end++; break;
	default: return -1;
	}
	if (*end == 'i' || *end == 'B')
		end += (*end == 'i' && end[1] == 'B') ? 2 : 1;
	if (*end || (v && mul > UINT64_MAX / v))
		return -1;
	*out = v * mul;
	return 0;
}

static int parse_secs(const char *s, double *out)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (errno || end == s || *end || v < 0 || v > 86400 * 365)
		return -1;
	*out = v;
	return 0;
}

/* Options passed to the kernel mount as they are. */
static const char *const pass_opts[] = {
	"nosuid", "suid", "nodev", "dev", "noexec", "exec", "noatime",
	"atime", "relatime", "norelatime", "strictatime", "nodiratime",
	"diratime", "sync", "async", "dirsync", NULL,
};

/* mount(8)/fstab options with no meaning here. */
static const char *const ignored_opts[] = {
	"defaults", "auto", "noauto", "user", "nouser", "users", "owner",
	"group", "nofail", "_netdev", "comment", "loud", "silent", "rw",
	"default_permissions", NULL,
};

static int in_list(const char *const *l, const char *s)
{
	for (; *l; l++)
		if (strcmp(*l, s) == 0)
			return 1;
	return 0;
}

static int opt_one(cairn_mount_opts *o, char *opt)
{
	char *val = strchr(opt, '=');
	if (val)
		*val++ = 0;
	if (!*opt)
		return 0;
	if (strcmp(opt, "ro") == 0 && !val) {
		o->read_only = 1;
	} else if (strcmp(opt, "allow_other") == 0 && !val) {
		o->allow_other = 1;
	} else if (strcmp(opt, "debug") == 0 && !val) {
		o->debug = 1;
	} else if (strcmp(opt, "durability") == 0 && val) {
		if (strcmp(val, "local") == 0)
			o->durability = CAIRN_DUR_LOCAL;
		else if (strcmp(val, "remote") == 0)
			o->durability = CAIRN_DUR_REMOTE;
		else
			return cairn_errf(CAIRN_E_INVAL, "durability '%s': "
					  "expected local or remote", val);
	} else if (strcmp(opt, "cache_size") == 0 && val) {
		if (parse_size(val, &o->cache_size) || !o->cache_size)
			return cairn_errf(CAIRN_E_INVAL, "cache_size '%s': expected "
					  "a size such as 512M or 4G", val);
	} else if (strcmp(opt, "follow") == 0 && val) {
		/* a follower (fstab: "DIR MNT fuse.cairn follow=URL"): the URL
		 * of the store its writer ships to */
		if (!*val || strlen(val) >= sizeof o->follow_url)
			return cairn_errf(CAIRN_E_INVAL, "follow: expected a store URL of at "
					  "most %zu bytes", sizeof o->follow_url - 1);
		snprintf(o->follow_url, sizeof o->follow_url, "%s", val);
		o->follow_store = o->follow_url;
		o->read_only = 1;
	} else if (strcmp(opt, "cache_dir") == 0 && val) {
		return cairn_errf(CAIRN_E_UNSUPPORTED, "cache_dir: the cache lives "
				  "in <volume>/cache (a separate directory is "
				  "not supported yet)");
	} else if ((strcmp(opt, "entry_timeout") == 0 || strcmp(opt, "attr_timeout") == 0)
		   && val) {
		double *d = opt[0] == 'e' ? &o->entry_timeout : &o->attr_timeout;
		if (parse_secs(val, d))
			return cairn_errf(CAIRN_E_INVAL, "%s '%s': expected seconds "
					  "(e.g. 1 or 0.5)", opt, val);
	} else if (in_list(pass_opts, opt) && !val) {
		size_t n = strlen(o->fuse_opts);
		int w = snprintf(o->fuse_opts + n, sizeof o->fuse_opts - n, ",%s", opt);
		if (w < 0 || (size_t)w >= sizeof o->fuse_opts - n)
			return cairn_errf(CAIRN_E_INVAL, "too many mount options");
	} else if (in_list(ignored_opts, opt) || strncmp(opt, "x-", 2) == 0) {
		/* fstab bookkeeping */
	} else {
		return cairn_errf(CAIRN_E_INVAL, "unknown mount option '%s%s%s'",
				  opt, val ? "=" : "", val ? val : "");
	}
	return 0;
}

int cairn_mount_opts_parse(cairn_mount_opts *o, const char *list)
{
	char *copy = strdup(list ? list : "");
	char *save = NULL;
	int rc = 0;
	if (!copy)
		return cairn_errf(CAIRN_E_NOMEM, "mount options");
	for (char *p = strtok_r(copy, ",", &save); p && !rc; p = strtok_r(NULL, ",", &save))
		rc = opt_one(o, p);
	free(copy);
	return rc;
}

/* dir made absolute without following a dead FUSE mount at its end. */
static int abs_path(const char *p, char *out, size_t size)
{
	char buf[PATH_MAX];
	if (realpath(p, buf)) {
		snprintf(out, size, "%s", buf);
		return 0;
	}
	if (errno != ENOTCONN)
		return -1;
	/* realpath of the parent, then the last component as given */
	char tmp[PATH_MAX];
	snprintf(tmp, sizeof tmp, "%s", p);
	size_t n = strlen(tmp);
	while (n > 1 && tmp[n - 1] == '/')
		tmp[--n] = 0;
	char *slash = strrchr(tmp, '/');
	const char *base = slash ? slash + 1 : tmp;
	const char *dir = ".";
	if (slash == tmp)
		dir = "/";
	else if (slash) {
		*slash = 0;
		dir = tmp;
	}
	if (!realpath(dir, buf))
		return -1;
	snprintf(out, size, "%s%s%s", buf, strcmp(buf, "/") ? "/" : "", base);
	return 0;
}

/* Escape ',' and '\' for libfuse's option parser. */
static void opt_escape(const char *s, char *out, size_t size)
{
	size_t n = 0;
	for (; *s && n + 2 < size; s++) {
		if (*s == ',' || *s == '\\')
			out[n++] = '\\';
		out[n++] = *s;
	}
	out[n] = 0;
}

static void notify(int fd, int rc, const char *msg)
{
	char line[1200];
	if (fd < 0)
		return;
	int n = snprintf(line, sizeof line, "%d %s\n", rc, msg ? msg : "");
	if (n < 0)
		return;
	if ((size_t)n >= sizeof line)
		n = sizeof line - 1;
	/* The parent reads until EOF; a short or failed write shows up there
	 * as "exited without a word". */
	if (write(fd, line, (size_t)n) < 0)
		CAIRN_WARN(FUSE_MOD, "reporting to the parent: %s", strerror(errno));
	close(fd);
}

/* The kernel's readahead window for the mount (its bdi), 128 KiB by
 * default, is what sizes sequential read requests: raise it to one
 * volume chunk so that a sequential reader asks in 1 MiB requests
 * (max_pages) that each hit a chunk once.  Runs in its own thread: the
 * stat of the mount point is answered by the session loop.  Root only
 * (sysfs); a failure costs speed, nothing else. */
static void *readahead_thread(void *arg)
{
	const char *mp = arg;
	struct stat st;
	char path[128];
	if (stat(mp, &st))
		return NULL;
	snprintf(path, sizeof path, "/sys/class/bdi/%u:%u/read_ahead_kb",
		 major(st.st_dev), minor(st.st_dev));
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0 || write(fd, "4096", 4) != 4)
		CAIRN_DEBUG(FUSE_MOD, "readahead of %s not raised: %s", mp, strerror(errno));
	if (fd >= 0)
		close(fd);
	return NULL;
}

/* The session loop has ended (a signal) while a notification of a
 * control-socket command is still in the kernel (fuse_priv.h invariant
 * 7): it waits for a directory lock (or a page lock) held by a process
 * whose request (LOOKUP, UNLINK, READ ...) is queued and that no worker
 * reads any more.  The unmount does not end that wait: the notification's
 * write holds /dev/fuse open, and the kernel aborts the connection only
 * once the device's last file is released, so daemon and process would
 * wait for each other forever.  Answer the queued requests here until
 * the notification is through. */
static void serve_until_quiet(cfs *fs, struct fuse_session *se)
{
	struct fuse_buf fb;
	memset(&fb, 0, sizeof fb);
	CAIRN_INFO(FUSE_MOD, "a command's notification waits for a queued request: "
		   "answering requests until it is through");
	fuse_session_reset(se);
	while (cfs_notify_stop(fs, 100) != 0) {
		struct pollfd p = { .fd = fuse_session_fd(se), .events = POLLIN };
		if (poll(&p, 1, 0) != 1 || !(p.revents & POLLIN))
			continue;
		int r = fuse_session_receive_buf(se, &fb);
		if (r == -EINTR || r == -EAGAIN || r == -ENOENT)
			continue;
		if (r <= 0) {
			/* the connection is gone, and with it the wait */
			(void)cfs_notify_stop(fs, 0);
			break;
		}
		fuse_session_process_buf(se, &fb);
	}
	fuse_session_exit(se);
	free(fb.mem);
}

/* Serve the mount in this process.  notify_fd >= 0: a background daemon
 * reporting to its parent. */
static int serve(const cairn_mount_opts *o, const char *voldir, const char *mp,
		 int notify_fd, const char *logf)
{
	cairn_volume_opts vo;
	cairn_volume *vol = NULL;
	struct fuse_session *se = NULL;
	struct fuse_loop_config *lc = NULL;
	struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
	cfs *fs = NULL;
	char esc[PATH_MAX * 2], optstr[PATH_MAX * 2 + 700];
	int rc, mounted = 0, fs_ok = 0, ra = 0, hooked = 0, quiet = 1;
	pthread_t ra_thr;

	memset(&vo, 0, sizeof vo);
	if (o->durability >= 0)
		vo.durability = o->durability;
	vo.cache_size = o->cache_size;
	if (o->follow_store) {
		/* A follower: the volume's replica in voldir, kept up to date
		 * from the store's log; read-only (docs/log-shipping.md). */
		if ((rc = volume_open_follower(voldir, o->follow_store, &vo, &vol)))
			goto fail;
	} else {
		/* A mount reclaims space in the background at a gentle rate
		 * (docs/space.md); `cairn gc` runs a pass on demand. */
		vo.gc_interval_ms = 5 * 60 * 1000;
		if ((rc = volume_open(voldir, &vo, &vol)))
			goto fail;
	}
	{
		char note[PATH_MAX * 2 + 64];
		snprintf(note, sizeof note, "%smounted at %s; unmount it with 'cairn umount %s'",
			 o->follow_store ? "follower " : "", mp, mp);
		/* Only a clearer message for a second opener: not fatal. */
		if (volume_set_owner_note(vol, note))
			CAIRN_WARN(FUSE_MOD, "%s", cairn_errmsg());
	}
	fs = malloc(sizeof *fs);
	if (!fs) {
		rc = cairn_errf(CAIRN_E_NOMEM, "mount state");
		goto fail;
	}
	if ((rc = cfs_init(fs, vol, o, voldir, mp)))
		goto fail;
	fs_ok = 1;
	opt_escape(voldir, esc, sizeof esc);
	snprintf(optstr, sizeof optstr, "fsname=%s,subtype=cairn,default_permissions"
		 "%s%s%s", esc, o->allow_other ? ",allow_other" : "",
		 o->read_only || o->follow_store ? ",ro" : "", o->fuse_opts);
	if (fuse_opt_add_arg(&args, "cairn") || fuse_opt_add_arg(&args, "-o") ||
	    fuse_opt_add_arg(&args, optstr) || (o->debug && fuse_opt_add_arg(&args, "-d"))) {
		rc = cairn_errf(CAIRN_E_NOMEM, "mount arguments");
		goto fail;
	}
	se = fuse_session_new(&args, &cfs_ops, sizeof cfs_ops, fs);
	if (!se) {
		rc = cairn_errf(CAIRN_E_INVAL, "libfuse refused the options '%s'", optstr);
		goto fail;
	}
	fs->se = se;   /* the control file's cache invalidation */
	if (fuse_set_signal_handlers(se)) {
		rc = cairn_errf(CAIRN_E_INTERNAL, "installing signal handlers");
		goto fail;
	}
	if (fuse_session_mount(se, mp)) {
		rc = cairn_errf(CAIRN_E_IO, "mounting on %s failed (is /dev/fuse usable, "
				"and fusermount3 installed for non-root users?)", mp);
		goto fail;
	}
	mounted = 1;
	/* The caller's hook (the CLI's control socket) is up before the
	 * parent hears "mounted", so a command right after the mount finds it. */
	if (o->on_open) {
		if ((rc = o->on_open(vol, (cairn_mount_live *)(void *)fs, o->hook_arg)))
			goto fail;
		hooked = 1;
	}
	CAIRN_INFO(FUSE_MOD, "volume %s mounted on %s (pid %ld)", voldir, mp, (long)getpid());
	if (notify_fd >= 0) {
		notify(notify_fd, 0, "mounted");
		notify_fd = -1;
		/* Detach from the terminal; whatever still writes to stdout or
		 * stderr (libfuse, a sanitizer report) lands in the log. */
		int nul = open("/dev/null", O_RDONLY | O_CLOEXEC);
		int lfd = open(logf, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
		if (nul >= 0)
			dup2(nul, 0);
		if (lfd >= 0) {
			dup2(lfd, 1);
			dup2(lfd, 2);
		}
		if (nul >= 0)
			close(nul);
		if (lfd >= 0)
			close(lfd);
	}
	lc = fuse_loop_cfg_create();
	if (!lc) {
		rc = cairn_errf(CAIRN_E_NOMEM, "loop configuration");
		goto fail;
	}
	if (geteuid() == 0)
		ra = pthread_create(&ra_thr, NULL, readahead_thread, (void *)mp) == 0;
	fuse_loop_cfg_set_clone_fd(lc, 1);
	/* Workers are kept once started (idle limit = maximum): with 8, a
	 * sequential reader's bursts of 1 MiB READs ended and started a
	 * worker every 20 requests or so (a /dev/fuse clone, a stack and
	 * the 1 MiB buffers faulted in again each time).  At most 32
	 * workers, each holding about 2 MiB of buffers once used. */
	fuse_loop_cfg_set_idle_threads(lc, 32);
	fuse_loop_cfg_set_max_threads(lc, 32);
	if (fuse_session_loop_mt(se, lc) < 0)
		CAIRN_WARN(FUSE_MOD, "session loop ended with an error");
	rc = 0;
fail:
	if (lc)
		fuse_loop_cfg_destroy(lc);
	/* Commands of the control socket may still be sending notifications
	 * (fuse_priv.h invariant 7): none starts from here on.  One that the
	 * kernel blocks (a directory lock held by a request nobody answers
	 * any more, after a signal) ends once that request is answered
	 * (serve_until_quiet): the unmount would not abort the connection
	 * while the notification holds the device open. */
	if (fs_ok)
		quiet = cfs_notify_stop(fs, 2000) == 0;
	if (se) {
		if (!quiet)
			serve_until_quiet(fs, se);
		if (mounted)
			fuse_session_unmount(se);
		if (ra)  /* its stat has failed by now if it was still waiting */
			pthread_join(ra_thr, NULL);
		fuse_remove_signal_handlers(se);
		fuse_session_destroy(se);
	}
	fuse_opt_free_args(&args);
	if (rc)
		notify(notify_fd, rc, cairn_errmsg());
	else if (notify_fd >= 0)
		close(notify_fd);
	if (hooked && o->on_close)
		o->on_close(o->hook_arg);  /* waits for the commands it runs */
	if (vol) {
		/* The per-inode file handles (opens send no message, so
		 * they live until FORGET or an idle period) may hold
		 * buffered data: close them first. */
		int r = fs_ok ? cfs_close_all(fs) : 0;
		if (r && !rc)
			rc = r;
		r = volume_close(vol);
		if (r && !rc)
			rc = r;
		if (rc && mounted)
			CAIRN_ERROR(FUSE_MOD, "closing volume %s: %s", voldir, cairn_errmsg());
		else if (mounted)
			CAIRN_INFO(FUSE_MOD, "volume %s unmounted from %s", voldir, mp);
	}
	if (fs_ok)
		cfs_destroy(fs);
	free(fs);
	return rc;
}

/* Read the daemon's report; 0 once it has mounted. */
static int await_daemon(pid_t pid, int fd, const char *logf)
{
	char buf[1200];
	size_t n = 0;
	for (;;) {
		ssize_t r = read(fd, buf + n, sizeof buf - 1 - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		n += (size_t)r;
		if (n == sizeof buf - 1)
			break;
	}
	close(fd);
	buf[n] = 0;
	if (n) {
		char *end;
		long rc = strtol(buf, &end, 10);
		char *nl = strchr(end, '\n');
		if (nl)
			*nl = 0;
		if (*end == ' ')
			end++;
		if (rc == 0)
			return 0;
		if (rc < 0 || rc >= CAIRN_E__COUNT)
			rc = CAIRN_E_INTERNAL;
		int st;
		while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
			;
		return cairn_errf((int)rc, "%s", end);
	}
	int st = 0;
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	if (WIFSIGNALED(st))
		return cairn_errf(CAIRN_E_INTERNAL, "the mount daemon was killed by signal %d "
				  "before mounting; see %s", WTERMSIG(st), logf);
	return cairn_errf(CAIRN_E_INTERNAL, "the mount daemon exited with status %d "
			  "before mounting; see %s", WEXITSTATUS(st), logf);
}

static int is_cairn_mount(const char *mp);
static int read_ctl(const char *mp, char *buf, size_t size, int do_sync, int *err);

int cairn_mount(const cairn_mount_opts *o)
{
	char voldir[PATH_MAX], mp[PATH_MAX], logf[PATH_MAX + 16];
	struct stat st;
	int p[2];
	pid_t pid;

	if (!o->volume_dir || !o->mountpoint)
		return cairn_errf(CAIRN_E_INVAL, "mount needs a volume and a mount point");
	if (!realpath(o->volume_dir, voldir))
		return cairn_errf(errno == ENOENT ? CAIRN_E_NOTFOUND : CAIRN_E_IO,
				  "volume %s: %s", o->volume_dir, strerror(errno));
	if (stat(o->mountpoint, &st)) {
		if (errno == ENOTCONN)
			return cairn_errf(CAIRN_E_BUSY, "mount point %s: transport endpoint "
					  "is not connected (its mount daemon died); run "
					  "'cairn umount %s' first", o->mountpoint, o->mountpoint);
		return cairn_errf(errno == ENOENT ? CAIRN_E_NOTFOUND : CAIRN_E_IO,
				  "mount point %s: %s", o->mountpoint, strerror(errno));
	}
	if (!S_ISDIR(st.st_mode))
		return cairn_errf(CAIRN_E_NOTDIR, "mount point %s is not a directory",
				  o->mountpoint);
	if (abs_path(o->mountpoint, mp, sizeof mp))
		return cairn_errf(CAIRN_E_IO, "mount point %s: %s", o->mountpoint,
				  strerror(errno));
	if (is_cairn_mount(mp)) {
		/* stat may have answered from the kernel's cache: ask it. */
		char buf[64];
		int err = 0;
		if (read_ctl(mp, buf, sizeof buf, 0, &err) && err == ENOTCONN)
			return cairn_errf(CAIRN_E_BUSY, "mount point %s: transport endpoint "
					  "is not connected (its mount daemon died); run "
					  "'cairn umount %s' first", o->mountpoint, o->mountpoint);
		return cairn_errf(CAIRN_E_BUSY, "%s is already a cairn mount; run 'cairn "
				  "umount %s' first", o->mountpoint, o->mountpoint);
	}
	if (o->foreground)
		return serve(o, voldir, mp, -1, NULL);

	if (o->log_file)
		snprintf(logf, sizeof logf, "%s", o->log_file);
	else
		snprintf(logf, sizeof logf, "%s/mount.log", voldir);
	if (pipe2(p, O_CLOEXEC))
		return cairn_errf(CAIRN_E_IO, "pipe: %s", strerror(errno));
	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid < 0) {
		int e = errno;
		close(p[0]);
		close(p[1]);
		return cairn_errf(CAIRN_E_IO, "fork: %s", strerror(e));
	}
	if (pid == 0) {
		close(p[0]);
		setsid();
		if (chdir("/"))
			_exit(1);
		umask(022);
		if (cairn_log_set_file(logf)) {
			notify(p[1], CAIRN_E_IO, cairn_errmsg());
			_exit(1);
		}
		int rc = serve(o, voldir, mp, p[1], logf);
		/* exit, not _exit: stdio flushed, sanitizers' exit checks run */
		exit(rc ? 1 : 0);
	}
	close(p[1]);
	int rc = await_daemon(pid, p[0], logf);
	/* The daemon raises the mount's readahead from a thread of its own,
	 * which may run late; a file takes the window at its open, so a file
	 * opened right after `cairn mount` returned could still read in
	 * 128 KiB requests.  Raise it here too, before returning. */
	if (!rc && geteuid() == 0)
		readahead_thread(mp);
	return rc;
}

/* ---- client side: umount, stats ---- */

/* Is there a fuse.cairn mount at abs path mp (mountinfo escapes \040 etc)? */
static int is_cairn_mount(const char *mp)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	char line[8192];
	int found = 0;
	if (!f)
		return 0;
	while (!found && fgets(line, sizeof line, f)) {
		char *save = NULL, *tok, *mpt = NULL;
		int i = 0;
		for (tok = strtok_r(line, " ", &save); tok; tok = strtok_r(NULL, " ", &save), i++) {
			if (i == 4)
				mpt = tok;
			if (strcmp(tok, "-") == 0) {
				tok = strtok_r(NULL, " ", &save);
				break;
			}
		}
		if (!mpt || !tok || strcmp(tok, "fuse.cairn") != 0)
			continue;
		/* unescape octal sequences */
		char un[PATH_MAX];
		size_t n = 0;
		for (const char *s = mpt; *s && n + 1 < sizeof un; s++) {
			if (s[0] == '\\' && s[1] >= '0' && s[1] <= '7' && s[2] && s[3]) {
				un[n++] = (char)(((s[1] - '0') << 6) | ((s[2] - '0') << 3) | (s[3] - '0'));
				s += 3;
			} else {
				un[n++] = *s;
			}
		}
		un[n] = 0;
		found = strcmp(un, mp) == 0;
	}
	fclose(f);
	return found;
}

static int read_ctl(const char *mp, char *buf, size_t size, int do_sync, int *err)
{
	char path[PATH_MAX + 32];
	size_t n = 0;
	int fd;

	snprintf(path, sizeof path, "%s/%s", mp, CAIRN_FUSE_CTL_NAME);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		*err = errno;
		return -1;
	}
	while (n + 1 < size) {
		ssize_t r = read(fd, buf + n, size - 1 - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			*err = errno;
			close(fd);
			return -1;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	buf[n] = 0;
	if (do_sync && fsync(fd)) {
		*err = errno;
		close(fd);
		return -2;
	}
	close(fd);
	return 0;
}

int cairn_mount_stats(const char *mountpoint, char *buf, size_t size)
{
	char mp[PATH_MAX];
	int err = 0;
	if (abs_path(mountpoint, mp, sizeof mp))
		return cairn_errf(CAIRN_E_NOTFOUND, "%s: %s", mountpoint, strerror(errno));
	if (!is_cairn_mount(mp))
		return cairn_errf(CAIRN_E_INVAL, "%s is not a cairn mount", mountpoint);
	if (read_ctl(mp, buf, size, 0, &err))
		return cairn_errf(CAIRN_E_IO, "reading the statistics of %s: %s%s", mountpoint,
				  strerror(err), err == ENOTCONN ?
				  " (the mount daemon died; run 'cairn umount')" : "");
	return 0;
}

static int run_fusermount(const char *mp, int lazy)
{
	pid_t pid = fork();
	int st;
	if (pid < 0)
		return cairn_errf(CAIRN_E_IO, "fork: %s", strerror(errno));
	if (pid == 0) {
		if (lazy)
			execlp("fusermount3", "fusermount3", "-u", "-z", "--", mp, (char *)NULL);
		else
			execlp("fusermount3", "fusermount3", "-u", "--", mp, (char *)NULL);
		_exit(127);
	}
	while (waitpid(pid, &st, 0) < 0) {
		if (errno != EINTR)
			return cairn_errf(CAIRN_E_IO, "waitpid: %s", strerror(errno));
	}
	if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
		return 0;
	if (WIFEXITED(st) && WEXITSTATUS(st) == 127)
		return cairn_errf(CAIRN_E_UNSUPPORTED, "fusermount3 is not installed");
	return cairn_errf(CAIRN_E_BUSY, "fusermount3 -u %s failed (busy? a process may "
			  "have files open or its working directory there)", mp);
}

static int do_unmount(const char *mp, int dead)
{
	if (geteuid() != 0)
		return run_fusermount(mp, dead);
	if (umount2(mp, 0) == 0)
		return 0;
	if (errno == EBUSY && dead && umount2(mp, MNT_DETACH) == 0)
		return 0;
	if (errno == EBUSY)
		return cairn_errf(CAIRN_E_BUSY, "%s is busy: a process has files open or its "
				  "working directory there; close them and retry", mp);
	return cairn_errf(CAIRN_E_IO, "umount %s: %s", mp, strerror(errno));
}

static int pid_alive(long pid)
{
	char path[64], buf[512];
	snprintf(path, sizeof path, "/proc/%ld/stat", pid);
	FILE *f = fopen(path, "re");
	if (!f)
		return 0;
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = 0;
	/* "pid (comm) S ...": comm may hold spaces and parentheses */
	char *rp = strrchr(buf, ')');
	if (!rp || rp[1] != ' ')
		return 1;
	return rp[2] != 'Z' && rp[2] != 'X';
}

int cairn_umount(const char *mountpoint, unsigned wait_ms)
{
	char mp[PATH_MAX], stats[8192];
	long pid = 0;
	int err = 0, rc, r;

	if (abs_path(mountpoint, mp, sizeof mp))
		return cairn_errf(CAIRN_E_NOTFOUND, "%s: %s", mountpoint, strerror(errno));
	if (!is_cairn_mount(mp))
		return cairn_errf(CAIRN_E_INVAL, "%s is not a cairn mount", mountpoint);
	r = read_ctl(mp, stats, sizeof stats, 1, &err);
	if (r == -1 && err == ENOTCONN) {
		/* The daemon died: nothing to flush, only the mount to clean. */
		return do_unmount(mp, 1);
	}
	if (r == -1)
		return cairn_errf(CAIRN_E_IO, "reading the control file of %s: %s",
				  mountpoint, strerror(err));
	if (r == -2)
		CAIRN_WARN(FUSE_MOD, "flush of %s before unmounting failed: %s "
			   "(the daemon commits again at unmount)", mountpoint, strerror(err));
	const char *p = strstr(stats, "pid ");
	if (p)
		pid = strtol(p + 4, NULL, 10);
	if ((rc = do_unmount(mp, 0)))
		return rc;
	if (pid <= 0)
		return 0;
	for (unsigned waited = 0; pid_alive(pid); waited += 10) {
		if (waited >= wait_ms)
			return cairn_errf(CAIRN_E_TIMEOUT, "%s is unmounted but its daemon "
					  "(pid %ld) is still closing the volume after %u ms",
					  mountpoint, pid, wait_ms);
		struct timespec ts = { 0, 10 * 1000000 };
		nanosleep(&ts, NULL);
	}
	return 0;
}
