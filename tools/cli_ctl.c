/*
 * cli_ctl.c - the mount daemon's control socket: CLI commands that need
 * the volume run inside the process that owns it (tools/cli.h).
 *
 * A mounted volume is owned by its mount daemon (one owner process per
 * volume, the lock file of core/volume/vol_open.c).  So that
 * `cairn --volume V ls /` works the same mounted or not, the daemon serves
 * <V>/control.sock (AF_UNIX, stream) and runs the very same command
 * function on a thread of its own:
 *
 *   client (cairn CMD ...)                  daemon (cli_ctl_start)
 *   ----------------------                  ----------------------------
 *   connect <V>/control.sock  ------------> accept; SO_PEERCRED: other
 *                                           uid and not root -> refused
 *   ctl_req + fds 0,1,2 (SCM_RIGHTS) -----> read, validate
 *   cwd\0 argv[0]\0 ... argv[n-1]\0  -----> find the CLI_VOLUME command,
 *                                           run it on a worker thread
 *                                           with out/err = the client's
 *                                           fds; watch the connection:
 *                                           hang-up -> ctx->cancel = 1
 *   <------------------------------------   ctl_resp {status, message}
 *   exit(status)
 *
 * Invariants:
 *   1. The daemon never runs a command for another uid unless the client
 *      is root (SO_PEERCRED, checked before anything is read).
 *   2. Every length read from a client is checked against a bound before
 *      use (request <= CTL_MAX_REQ bytes, argc <= CTL_MAX_ARGS).
 *   3. cli_ctl_stop cancels every running command and returns only after
 *      all of them have finished, so the volume closes with no command
 *      using it; the socket file is removed first, so no new one starts.
 *   4. A client whose daemon dies (kill -9) sees the connection close and
 *      reports it: it never hangs.  A socket nobody listens on
 *      (ECONNREFUSED: the daemon died) is removed and ignored.
 *   5. On a read-only mount (mount->read_only: -o ro, a follower) only the
 *      commands known to read alone run (reads_only); every other one is
 *      refused before it starts, with CLI_EXIT_ROFS.
 *   6. Every command gets the mount (ctx->mount), to tell its kernel
 *      caches what it changes (cli.h cli_mount_*).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "cli.h"

#define CTL_MAGIC 0x314e5243u  /* "CRN1" */
#define CTL_VERSION 1u
#define CTL_MAX_REQ (1u << 20)
#define CTL_MAX_ARGS 65536u
#define CTL_F_JSON 0x1u

struct ctl_req {
	uint32_t magic, version;
	uint32_t flags;     /* CTL_F_* */
	int32_t verbose;
	uint32_t argc;
	uint32_t len;       /* bytes that follow: cwd and argv, NUL-terminated */
};

struct ctl_resp {
	uint32_t magic;
	int32_t status;
	uint32_t msglen;    /* bytes of a message for the client's stderr */
};

struct conn {
	struct cli_ctl *srv;
	int fd;
	int fds[3];         /* client's stdin, stdout, stderr */
	volatile int cancel;
	struct conn *next;
};

struct cli_ctl {
	cairn_volume *vol;
	const cli_mount *mount;   /* may be NULL */
	char *volume_dir, *mountpoint;
	char path[PATH_MAX];
	int lfd;
	int stop_pipe[2];
	pthread_t thr;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct conn *conns; /* running, under mu */
	int nconns;
	int stopping;
};

/* A socket address for path; long paths go through /proc/self/fd of the
 * directory (sun_path holds 108 bytes).  *dirfd gets that fd or -1. */
static int sock_addr(const char *dir, struct sockaddr_un *sa, int *dirfd)
{
	int n;
	memset(sa, 0, sizeof *sa);
	sa->sun_family = AF_UNIX;
	*dirfd = -1;
	n = snprintf(sa->sun_path, sizeof sa->sun_path, "%s/%s", dir, CLI_CTL_SOCK);
	if (n > 0 && (size_t)n < sizeof sa->sun_path)
		return 0;
	*dirfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (*dirfd < 0)
		return cairn_errf(CAIRN_E_IO, "open %s: %s", dir, strerror(errno));
	snprintf(sa->sun_path, sizeof sa->sun_path, "/proc/self/fd/%d/%s", *dirfd,
		 CLI_CTL_SOCK);
	return 0;
}

static int write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;
	while (len) {
		ssize_t w = send(fd, p, len, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		len -= (size_t)w;
	}
	return 0;
}

static int read_all(int fd, void *buf, size_t len)
{
	char *p = buf;
	while (len) {
		ssize_t r = recv(fd, p, len, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		p += r;
		len -= (size_t)r;
	}
	return 0;
}

static void send_resp(int fd, int status, const char *msg)
{
	struct ctl_resp r = {CTL_MAGIC, status, msg ? (uint32_t)strlen(msg) : 0};
	/* the client may be gone: nothing to do about it */
	if (write_all(fd, &r, sizeof r) == 0 && r.msglen)
		(void)write_all(fd, msg, r.msglen);
}

/* ---- daemon ---- */

static const cli_command *volume_command(const char *name)
{
	const cli_command *const tables[] = {cli_fs_commands, cli_ckpt_commands,
					     cli_admin_commands};
	for (size_t t = 0; t < sizeof tables / sizeof tables[0]; t++)
		for (const cli_command *c = tables[t]; c->name; c++)
			if (strcmp(c->name, name) == 0)
				return (c->flags & CLI_VOLUME) ? c : NULL;
	return NULL;
}

/* Invariant 5: does argv only read the volume?  What is not listed here
 * is taken to change it.  Options are looked for up to "--". */
static int has_opt(int argc, char **argv, const char *lng, char shrt)
{
	for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++) {
		const char *a = argv[i];
		if (a[0] != '-' || !a[1])
			continue;
		if (a[1] == '-') {
			size_t n = strlen(lng);
			if (strncmp(a + 2, lng, n) == 0 && (a[2 + n] == 0 || a[2 + n] == '='))
				return 1;
		} else if (shrt && strchr(a + 1, shrt)) {
			return 1;
		}
	}
	return 0;
}

static int reads_only(int argc, char **argv)
{
	static const char *const always[] = {"ls", "stat", "cat", "get", "status", NULL};
	const char *cmd = argv[0], *sub = argc > 1 ? argv[1] : "";
	for (int i = 0; always[i]; i++)
		if (strcmp(cmd, always[i]) == 0)
			return 1;
	if (strcmp(cmd, "fsck") == 0)
		return !has_opt(argc, argv, "repair", 0);
	if (strcmp(cmd, "gc") == 0)
		return has_opt(argc, argv, "dry-run", 'n');
	if (strcmp(cmd, "ckpt") == 0) {
		/* restore writes outside the volume (never into its mount) */
		if (!strcmp(sub, "list") || !strcmp(sub, "diff") || !strcmp(sub, "restore"))
			return 1;
		if (!strcmp(sub, "prune"))
			return has_opt(argc - 1, argv + 1, "dry-run", 'n');
		return 0;
	}
	if (strcmp(cmd, "snapshot") == 0)
		return !strcmp(sub, "list");
	return 0;
}

struct job {
	struct conn *cn;
	cli_ctx ctx;
	const cli_command *cmd;
	int argc;
	char **argv;
	int status;
	int done_pipe[2];
};

static void *job_main(void *arg)
{
	struct job *j = arg;
	j->status = j->cmd->run(&j->ctx, j->argc, j->argv);
	fflush(j->ctx.out);
	fflush(j->ctx.err);
	char b = 1;
	while (write(j->done_pipe[1], &b, 1) < 0 && errno == EINTR)
		;
	return NULL;
}

/* Receive the request header with the client's three fds. */
static int recv_req(struct conn *cn, struct ctl_req *req)
{
	char cbuf[CMSG_SPACE(3 * sizeof(int))];
	struct iovec iov = {req, sizeof *req};
	struct msghdr mh = {0};
	struct cmsghdr *cm;
	ssize_t r;

	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	mh.msg_control = cbuf;
	mh.msg_controllen = sizeof cbuf;
	memset(cbuf, 0, sizeof cbuf);
	do
		r = recvmsg(cn->fd, &mh, MSG_CMSG_CLOEXEC | MSG_WAITALL);
	while (r < 0 && errno == EINTR);
	/* On failure (SO_RCVTIMEO: a client that sent nothing) the kernel
	 * leaves msg_controllen as given: cbuf holds no message then. */
	if (r < 0)
		return -1;
	for (cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		if (cm->cmsg_len < CMSG_LEN(0))
			continue;
		size_t n = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		int fds[3];
		memcpy(fds, CMSG_DATA(cm), (n < 3 ? n : 3) * sizeof(int));
		for (size_t i = 0; i < n && i < 3; i++)
			cn->fds[i] = fds[i];
		/* more than three: close the extra ones */
		for (size_t i = 3; i < n; i++) {
			int extra;
			memcpy(&extra, CMSG_DATA(cm) + i * sizeof(int), sizeof extra);
			close(extra);
		}
	}
	if (r != (ssize_t)sizeof *req || (mh.msg_flags & MSG_CTRUNC))
		return -1;
	return 0;
}

static void serve_conn(struct conn *cn)
{
	struct cli_ctl *s = cn->srv;
	struct ctl_req req;
	struct ucred cred;
	socklen_t cl = sizeof cred;
	struct job j;
	char *buf = NULL, **argv = NULL, msg[2048];
	pthread_t thr;

	memset(&j, 0, sizeof j);
	j.done_pipe[0] = j.done_pipe[1] = -1;
	if (getsockopt(cn->fd, SOL_SOCKET, SO_PEERCRED, &cred, &cl) != 0) {
		CAIRN_WARN("cli", "control socket: SO_PEERCRED: %s", strerror(errno));
		return;
	}
	if (cred.uid != geteuid() && cred.uid != 0) {
		snprintf(msg, sizeof msg, "cairn: volume %s is mounted by uid %ld; its mount "
			 "daemon runs commands only for that user or root\n",
			 s->volume_dir, (long)geteuid());
		send_resp(cn->fd, CLI_EXIT_FAIL, msg);
		return;
	}
	if (recv_req(cn, &req) || req.magic != CTL_MAGIC) {
		CAIRN_WARN("cli", "control socket: a malformed request from pid %ld",
			   (long)cred.pid);
		return;
	}
	if (req.version != CTL_VERSION) {
		snprintf(msg, sizeof msg, "cairn: the mount daemon of %s speaks control "
			 "protocol %u, this cairn %u; use the cairn binary that mounted it\n",
			 s->volume_dir, CTL_VERSION, req.version);
		send_resp(cn->fd, CLI_EXIT_FAIL, msg);
		return;
	}
	if (req.len == 0 || req.len > CTL_MAX_REQ || req.argc == 0 || req.argc > CTL_MAX_ARGS ||
	    cn->fds[0] < 0 || cn->fds[1] < 0 || cn->fds[2] < 0)
		goto bad;
	buf = malloc(req.len);
	argv = calloc(req.argc + 1, sizeof *argv);
	if (!buf || !argv) {
		send_resp(cn->fd, CLI_EXIT_FAIL, "cairn: the mount daemon is out of memory\n");
		goto out;
	}
	if (read_all(cn->fd, buf, req.len) || buf[req.len - 1] != 0)
		goto bad;
	{
		/* cwd, then argc strings, exactly filling len */
		char *p = buf, *end = buf + req.len;
		const char *cwd = p;
		p += strlen(p) + 1;
		for (uint32_t i = 0; i < req.argc; i++) {
			if (p >= end)
				goto bad;
			argv[i] = p;
			p += strlen(p) + 1;
		}
		if (p != end || cwd[0] != '/')
			goto bad;
		j.ctx.cwd = cwd;
	}
	j.cmd = volume_command(argv[0]);
	if (!j.cmd) {
		snprintf(msg, sizeof msg, "cairn: '%.100s' is not a command the mount daemon "
			 "runs\n", argv[0]);
		send_resp(cn->fd, CLI_EXIT_USAGE, msg);
		goto out;
	}
	if (s->mount && s->mount->read_only && !reads_only((int)req.argc, argv)) {
		/* invariant 5: refused before anything runs */
		char what[64];
		snprintf(what, sizeof what, "%.30s%s%.30s", argv[0], req.argc > 1 &&
			 (j.cmd->flags & CLI_GROUP) ? " " : "", req.argc > 1 &&
			 (j.cmd->flags & CLI_GROUP) ? argv[1] : "");
		snprintf(msg, sizeof msg, "cairn: %s: volume %s is mounted read-only at %s: "
			 "commands that change it are refused; to change it, unmount it "
			 "('cairn umount %s') and mount it without '-o ro' (a follower "
			 "stays read-only: change its writer's volume)\n",
			 what, s->volume_dir, s->mountpoint ? s->mountpoint : "?",
			 s->mountpoint ? s->mountpoint : "MOUNTPOINT");
		send_resp(cn->fd, CLI_EXIT_ROFS, msg);
		goto out;
	}
	j.cn = cn;
	j.argc = (int)req.argc;
	j.argv = argv;
	j.ctx.cmd = j.cmd->name;
	j.ctx.volume_dir = s->volume_dir;
	j.ctx.json = !!(req.flags & CTL_F_JSON);
	j.ctx.verbose = req.verbose;
	j.ctx.vol = s->vol;
	j.ctx.mountpoint = s->mountpoint;
	j.ctx.mount = s->mount;
	j.ctx.cancel = &cn->cancel;
	j.ctx.err_tty = isatty(cn->fds[2]);
	j.ctx.out = fdopen(cn->fds[1], "w");
	if (j.ctx.out)
		cn->fds[1] = -1;
	j.ctx.err = fdopen(cn->fds[2], "w");
	if (j.ctx.err)
		cn->fds[2] = -1;
	if (!j.ctx.out || !j.ctx.err || pipe2(j.done_pipe, O_CLOEXEC)) {
		send_resp(cn->fd, CLI_EXIT_FAIL, "cairn: the mount daemon is out of resources\n");
		goto out;
	}
	setvbuf(j.ctx.err, NULL, _IOLBF, 0);
	if (pthread_create(&thr, NULL, job_main, &j) != 0) {
		send_resp(cn->fd, CLI_EXIT_FAIL, "cairn: the mount daemon cannot start a thread\n");
		goto out;
	}
	/* Until the command ends: a hang-up of the client cancels it. */
	for (;;) {
		struct pollfd pf[2] = {{cn->fd, POLLRDHUP, 0}, {j.done_pipe[0], POLLIN, 0}};
		int n = poll(pf, 2, -1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 || (pf[1].revents & POLLIN))
			break;
		if (pf[0].revents & (POLLRDHUP | POLLHUP | POLLERR)) {
			cn->cancel = 1;
			break;
		}
	}
	pthread_join(thr, NULL);
	send_resp(cn->fd, j.status, NULL);
	goto out;
bad:
	CAIRN_WARN("cli", "control socket: a malformed request from pid %ld", (long)cred.pid);
	send_resp(cn->fd, CLI_EXIT_FAIL, "cairn: the mount daemon got a malformed request\n");
out:
	if (j.ctx.out)
		fclose(j.ctx.out);
	if (j.ctx.err)
		fclose(j.ctx.err);
	for (int i = 0; i < 2; i++)
		if (j.done_pipe[i] >= 0)
			close(j.done_pipe[i]);
	free(argv);
	free(buf);
}

static void *conn_main(void *arg)
{
	struct conn *cn = arg;
	struct cli_ctl *s = cn->srv;
	struct timeval tv = {10, 0};

	/* a client that connects and sends nothing does not hold us */
	(void)setsockopt(cn->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	serve_conn(cn);
	close(cn->fd);
	for (int i = 0; i < 3; i++)
		if (cn->fds[i] >= 0)
			close(cn->fds[i]);
	pthread_mutex_lock(&s->mu);
	for (struct conn **pp = &s->conns; *pp; pp = &(*pp)->next)
		if (*pp == cn) {
			*pp = cn->next;
			break;
		}
	s->nconns--;
	pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->mu);
	free(cn);
	return NULL;
}

static void *accept_main(void *arg)
{
	struct cli_ctl *s = arg;
	for (;;) {
		struct pollfd pf[2] = {{s->lfd, POLLIN, 0}, {s->stop_pipe[0], POLLIN, 0}};
		if (poll(pf, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			CAIRN_ERROR("cli", "control socket: poll: %s", strerror(errno));
			break;
		}
		if (pf[1].revents)
			break;
		if (!(pf[0].revents & POLLIN))
			continue;
		int fd = accept4(s->lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno != EINTR && errno != EAGAIN && errno != ECONNABORTED)
				CAIRN_WARN("cli", "control socket: accept: %s", strerror(errno));
			if (errno == EMFILE || errno == ENFILE)
				usleep(100000);
			continue;
		}
		struct conn *cn = calloc(1, sizeof *cn);
		pthread_t t;
		pthread_attr_t at;
		if (!cn) {
			close(fd);
			continue;
		}
		cn->srv = s;
		cn->fd = fd;
		cn->fds[0] = cn->fds[1] = cn->fds[2] = -1;
		pthread_mutex_lock(&s->mu);
		cn->next = s->conns;
		s->conns = cn;
		s->nconns++;
		pthread_mutex_unlock(&s->mu);
		pthread_attr_init(&at);
		pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
		if (pthread_create(&t, &at, conn_main, cn) != 0) {
			CAIRN_WARN("cli", "control socket: cannot start a thread");
			pthread_mutex_lock(&s->mu);
			s->conns = cn->next;
			s->nconns--;
			pthread_mutex_unlock(&s->mu);
			close(fd);
			free(cn);
		}
		pthread_attr_destroy(&at);
	}
	return NULL;
}

int cli_ctl_start(cairn_volume *vol, const char *volume_dir, const char *mountpoint,
		  const cli_mount *mount, cli_ctl **out)
{
	struct sockaddr_un sa;
	struct sigaction ign;
	cli_ctl *s;
	int dirfd, rc;

	*out = NULL;
	s = calloc(1, sizeof *s);
	if (!s)
		return cairn_errf(CAIRN_E_NOMEM, "control socket");
	s->vol = vol;
	s->mount = mount;
	s->lfd = -1;
	s->stop_pipe[0] = s->stop_pipe[1] = -1;
	s->volume_dir = strdup(volume_dir);
	s->mountpoint = mountpoint ? strdup(mountpoint) : NULL;
	pthread_mutex_init(&s->mu, NULL);
	pthread_cond_init(&s->cv, NULL);
	snprintf(s->path, sizeof s->path, "%s/%s", volume_dir, CLI_CTL_SOCK);
	if (!s->volume_dir || (mountpoint && !s->mountpoint)) {
		rc = cairn_errf(CAIRN_E_NOMEM, "control socket");
		goto fail;
	}
	/* Writes to a client that went away must fail, not kill the daemon. */
	memset(&ign, 0, sizeof ign);
	ign.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &ign, NULL);
	if ((rc = sock_addr(volume_dir, &sa, &dirfd)))
		goto fail;
	s->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s->lfd < 0) {
		rc = cairn_errf(CAIRN_E_IO, "control socket: %s", strerror(errno));
		goto fail_dir;
	}
	/* We own the volume lock: a socket file left here is a dead owner's. */
	if (unlink(s->path) != 0 && errno != ENOENT) {
		rc = cairn_errf(CAIRN_E_IO, "remove stale %s: %s", s->path, strerror(errno));
		goto fail_dir;
	}
	if (bind(s->lfd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
	    chmod(s->path, 0666) != 0 || listen(s->lfd, 64) != 0) {
		rc = cairn_errf(CAIRN_E_IO, "control socket %s: %s", s->path, strerror(errno));
		goto fail_dir;
	}
	if (dirfd >= 0)
		close(dirfd);
	dirfd = -1;
	if (pipe2(s->stop_pipe, O_CLOEXEC) != 0) {
		rc = cairn_errf(CAIRN_E_IO, "control socket: pipe: %s", strerror(errno));
		goto fail;
	}
	if (pthread_create(&s->thr, NULL, accept_main, s) != 0) {
		rc = cairn_errf(CAIRN_E_NOMEM, "control socket: thread");
		goto fail;
	}
	CAIRN_INFO("cli", "serving commands on %s", s->path);
	*out = s;
	return 0;
fail_dir:
	if (dirfd >= 0)
		close(dirfd);
fail:
	if (s->lfd >= 0) {
		close(s->lfd);
		unlink(s->path);
	}
	for (int i = 0; i < 2; i++)
		if (s->stop_pipe[i] >= 0)
			close(s->stop_pipe[i]);
	pthread_mutex_destroy(&s->mu);
	pthread_cond_destroy(&s->cv);
	free(s->volume_dir);
	free(s->mountpoint);
	free(s);
	return rc;
}

void cli_ctl_stop(cli_ctl *s)
{
	char b = 1;
	if (!s)
		return;
	/* No new commands: the file goes first, then the listener. */
	unlink(s->path);
	while (write(s->stop_pipe[1], &b, 1) < 0 && errno == EINTR)
		;
	pthread_join(s->thr, NULL);
	close(s->lfd);
	pthread_mutex_lock(&s->mu);
	s->stopping = 1;
	if (s->nconns)
		CAIRN_INFO("cli", "unmounting: cancelling %d running command(s)", s->nconns);
	for (struct conn *cn = s->conns; cn; cn = cn->next)
		cn->cancel = 1;
	while (s->nconns > 0)
		pthread_cond_wait(&s->cv, &s->mu);
	pthread_mutex_unlock(&s->mu);
	for (int i = 0; i < 2; i++)
		close(s->stop_pipe[i]);
	pthread_mutex_destroy(&s->mu);
	pthread_cond_destroy(&s->cv);
	free(s->volume_dir);
	free(s->mountpoint);
	free(s);
}

/* ---- client ---- */

int cli_ctl_try(cli_ctx *c, int argc, char **argv, int *status)
{
	struct sockaddr_un sa;
	struct stat st, st2;
	struct ctl_req req;
	struct ctl_resp resp;
	char path[PATH_MAX], cbuf[CMSG_SPACE(3 * sizeof(int))];
	char *payload = NULL;
	size_t len;
	int fd = -1, dirfd = -1, r = 0, nullfd[3] = {-1, -1, -1};

	*status = 0;
	snprintf(path, sizeof path, "%s/%s", c->volume_dir, CLI_CTL_SOCK);
	if (lstat(path, &st) != 0 || !S_ISSOCK(st.st_mode))
		return 0;
	if (sock_addr(c->volume_dir, &sa, &dirfd))
		return 0;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		goto out;
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
		/* Nobody listens: the daemon that made it died.  Remove it
		 * unless a new daemon has replaced it meanwhile. */
		if (errno == ECONNREFUSED && lstat(path, &st2) == 0 && st2.st_ino == st.st_ino)
			unlink(path);
		goto out;
	}
	if (dirfd >= 0)
		close(dirfd);
	dirfd = -1;
	{
		/* Our stdin/stdout/stderr go only to a daemon of our own uid
		 * or root's: a socket planted in a volume directory another
		 * user can write must not get our terminal. */
		struct ucred cred;
		socklen_t cl = sizeof cred;
		if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cl) != 0)
			goto out;
		if (cred.uid != geteuid() && cred.uid != 0 && geteuid() != 0) {
			fprintf(c->err, "cairn: volume %s is mounted by uid %ld; its mount daemon "
				"runs commands only for that user or root\n", c->volume_dir,
				(long)cred.uid);
			*status = CLI_EXIT_FAIL;
			r = 1;
			goto out;
		}
	}

	len = strlen(c->cwd ? c->cwd : "/") + 1;
	for (int i = 0; i < argc; i++)
		len += strlen(argv[i]) + 1;
	if (len > CTL_MAX_REQ || (unsigned)argc > CTL_MAX_ARGS) {
		fprintf(c->err, "cairn: %s: the command line is too long for the mount "
			"daemon's control socket\n", c->cmd);
		*status = CLI_EXIT_USAGE;
		r = -1;
		goto out;
	}
	payload = malloc(len);
	if (!payload) {
		fprintf(c->err, "cairn: %s: out of memory\n", c->cmd);
		*status = CLI_EXIT_FAIL;
		r = -1;
		goto out;
	}
	{
		char *p = payload;
		const char *cwd = c->cwd ? c->cwd : "/";
		memcpy(p, cwd, strlen(cwd) + 1);
		p += strlen(cwd) + 1;
		for (int i = 0; i < argc; i++) {
			memcpy(p, argv[i], strlen(argv[i]) + 1);
			p += strlen(argv[i]) + 1;
		}
	}
	memset(&req, 0, sizeof req);
	req.magic = CTL_MAGIC;
	req.version = CTL_VERSION;
	req.flags = c->json ? CTL_F_JSON : 0;
	req.verbose = c->verbose;
	req.argc = (uint32_t)argc;
	req.len = (uint32_t)len;
	fflush(c->out);
	fflush(c->err);
	{
		int fds[3] = {0, fileno(c->out), fileno(c->err)};
		/* a closed stdio fd cannot be passed: /dev/null stands in */
		for (int i = 0; i < 3; i++)
			if (fds[i] < 0 || fcntl(fds[i], F_GETFD) < 0) {
				fds[i] = open("/dev/null", O_RDWR | O_CLOEXEC);
				if (fds[i] < 0)
					goto gone;
				nullfd[i] = fds[i];
			}
		struct iovec iov = {&req, sizeof req};
		struct msghdr mh = {0};
		struct cmsghdr *cm;
		ssize_t w;
		mh.msg_iov = &iov;
		mh.msg_iovlen = 1;
		mh.msg_control = cbuf;
		mh.msg_controllen = sizeof cbuf;
		cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof fds);
		memcpy(CMSG_DATA(cm), fds, sizeof fds);
		do
			w = sendmsg(fd, &mh, MSG_NOSIGNAL);
		while (w < 0 && errno == EINTR);
		/* A refusal (another uid) is answered before the request is
		 * read: a failed send still reads the answer. */
		if (w == (ssize_t)sizeof req)
			(void)write_all(fd, payload, len);
		else if (w >= 0 || (errno != EPIPE && errno != ECONNRESET))
			goto gone;
	}
	if (read_all(fd, &resp, sizeof resp) || resp.magic != CTL_MAGIC)
		goto gone;
	if (resp.msglen) {
		char msg[4096];
		size_t n = resp.msglen < sizeof msg - 1 ? resp.msglen : sizeof msg - 1;
		if (read_all(fd, msg, n))
			goto gone;
		msg[n] = 0;
		fputs(msg, c->err);
	}
	*status = resp.status >= 0 && resp.status < 256 ? resp.status : CLI_EXIT_FAIL;
	r = 1;
	goto out;
gone:
	fprintf(c->err, "cairn: %s: the mount daemon of %s went away before the command "
		"finished (see %s/mount.log); what it did may be partly done\n", c->cmd,
		c->volume_dir, c->volume_dir);
	*status = CLI_EXIT_FAIL;
	r = -1;
out:
	for (int i = 0; i < 3; i++)
		if (nullfd[i] >= 0)
			close(nullfd[i]);
	if (dirfd >= 0)
		close(dirfd);
	if (fd >= 0)
		close(fd);
	free(payload);
	return r;
}
