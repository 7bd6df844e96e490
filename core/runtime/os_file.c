/*
 * os_file.c - the file:// object store: objects are files under a local
 * directory.  It is the embedded default store, and the local stand-in for
 * S3 in tests, so it enforces S3's limits (5 MiB minimum part, 5 GiB largest
 * part and single put, 10000 parts, 5 TiB objects) and S3's semantics
 * (atomic puts, invisible uploads until complete) to make client bugs show
 * up locally.  All data I/O goes through the io_uring engine (cairn/uring.h);
 * metadata (open, rename, mkdir, symlink) uses the *at() syscalls.
 *
 * The URL is file://<root>, <root> an absolute path used as it is (no
 * percent-decoding); the directory is created when missing.
 *
 * On-disk layout (layout version 1), under the root directory <root>:
 *
 *   <root>/CAIRN_OBJSTORE        marker: "cairn objstore layout 1\n"; written
 *                                last when a store is created (via
 *                                CAIRN_OBJSTORE.tmp + rename), so a directory
 *                                without it is not a store.  A version other
 *                                than 1 is refused (CAIRN_E_VERSION).
 *   <root>/o/<key>               the object named <key>; '/' in a key makes
 *                                directories.  A regular file is a plain
 *                                object; a symbolic link is a composite
 *                                object made by a multipart upload, pointing
 *                                (relatively) at <root>/mpu/<id>/manifest.
 *   <root>/tmp/                  temporaries, all removed by the sweep:
 *                                put-*, part-*, man-* (files being written),
 *                                lnk-* (links being published), up-* (upload
 *                                directories being created), dead-* (upload
 *                                directories being removed), trash-* (links
 *                                of composite objects being retired).
 *   <root>/mpu/<id>/             one multipart upload; <id> is 32 lower-case
 *                                hex digits (random).
 *   <root>/mpu/<id>/key          the key the upload was created for.
 *   <root>/mpu/<id>/part.NNNNN   part NNNNN (5 digits, 00001..10000).
 *   <root>/mpu/<id>/manifest     written by complete (binary, little-endian):
 *       0  8  magic "CAIRNMPU"
 *       8  4  version (1)
 *      12  4  nparts (1..10000)
 *      16  8  total size (sum of the part sizes)
 *      24  4  key length klen (1..1024)
 *      28  4  zero
 *      32 32  upload id (the directory's name)
 *      64 klen key
 *       then nparts records of 16 bytes: u32 part number (strictly
 *       ascending), u32 zero, u64 part size (<= 5 GiB)
 *       then u32 crc32c of every byte before it.
 *
 * Guarantees and invariants
 *   1. Atomic put: the bytes go to tmp/put-<random>, are fsynced, the parent
 *      directories under o/ are made (each new directory and its parent
 *      fsynced), the file is renamed over o/<key> and the parent directory is
 *      fsynced.  A reader sees the old object, the new one, or nothing.
 *   2. Complete never copies part bytes: it writes the manifest (tmp, fsync,
 *      rename into the upload directory, fsync) and then renames a symlink
 *      to it over o/<key>.  A part file is never written once it is listed
 *      by a linked manifest.
 *   3. An upload directory referenced by a link in o/ is complete and
 *      consistent.  Before a link in o/ stops pointing at an upload (delete
 *      or overwrite), a tmp/trash-* link to the same manifest exists; the
 *      upload directory is then moved to tmp/dead-* and removed, and the
 *      trash link removed last.  So a crash at any step leaves either the old
 *      object whole, or no object, plus debris in tmp/ only.
 *   4. open() sweeps tmp/ when no other handle has the store open (flock on
 *      the marker): dead-*, put-*, ... are removed; for a trash-* link the
 *      upload it names is removed unless o/<its key> still links to it.
 *      Uploads in mpu/ are never swept: as on S3, an unfinished upload stays
 *      until it is completed or aborted (the volume's recovery does that).
 *   5. Keys map to paths: every segment is at most 255 bytes (NAME_MAX),
 *      else CAIRN_E_NAMETOOLONG for writes (reads answer CAIRN_E_NOTFOUND,
 *      deletes succeed: such a key cannot exist).  A key that is both an
 *      object and a directory ("a" and "a/b") cannot be stored: the second
 *      put is CAIRN_E_EXISTS with a message saying so.
 *   6. list walks o/ in byte order of keys: in one directory, entries sort
 *      by name, a directory's name followed by '/'.  Directories that cannot
 *      hold keys matching the prefix or following the page token are not
 *      opened, and only one directory at a time is read into memory.
 *   7. Readers (get, head, list) take no lock.  When a delete or an
 *      overwrite retires the upload behind a link while a reader follows
 *      it, the reader sees the link gone or changed and looks again: it
 *      returns the old object, the new one or CAIRN_E_NOTFOUND, never
 *      CAIRN_E_CORRUPT (that is kept for a link whose upload is broken).
 *   8. The state changes of one upload are serialized by flock() on its
 *      mpu/<id>/key: a part upload holds it shared (from its check until
 *      the part is renamed in), complete and abort hold it exclusively, and
 *      each judges the upload's state (still there, not completed) only once
 *      it holds the lock.  So no part is replaced under a complete that
 *      checked it (invariant 2), and no abort removes a completed upload.
 *   9. put_if_absent publishes with link(2) instead of rename(2): a
 *      complete, fsynced tmp/put-* file is linked to o/<key>, which fails
 *      with EEXIST when any object (plain or composite) has the key, so of
 *      racing creators in any number of threads or processes on this file
 *      system exactly one wins.  The temporary name is then unlinked and
 *      the parent directory fsynced, as for a put.
 *
 * Upload states (mpu/<id>):
 *
 *   mpu_create        mpu_part*          mpu_complete
 *   ----------> open ---------> open ----------------> completed (linked)
 *                 |                                      |  delete / overwrite:
 *                 | mpu_abort                            v  trash link, dead-*
 *                 +------------> dead-* in tmp/ ----> removed
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cairn/codec.h"
#include "cairn/err.h"
#include "cairn/log.h"
#include "objstore_int.h"
#include "os_file_int.h"

#define MIB (1024ULL * 1024ULL)
#define GIB (1024ULL * MIB)
#define TIB (1024ULL * GIB)

#define LAYOUT_VERSION 1
#define MARKER "CAIRN_OBJSTORE"
#define MARKER_TMP "CAIRN_OBJSTORE.tmp"
#define MARKER_FMT "cairn objstore layout %u\n"
#define SEG_MAX 255
#define ID_LEN OBJSTORE_FILE_ID_LEN
#define COPY_CHUNK (1u << 20)
#define COPY_SLOTS 4
#define MAN_MAGIC "CAIRNMPU"
#define MAN_VERSION 1
#define MAN_HDR 64
#define MAN_REC 16
#define PATH_BUF (CAIRN_KEY_MAX + 64)
#define READ_TRIES 16 /* a reader looks again when the object changed */
/* A link target in o/ climbs one "../" per '/' of the key, and a valid key
 * has at most CAIRN_KEY_MAX / 2 of them: 3 bytes per level, so a target can
 * be half as long again as the longest key ("../mpu/<id>/manifest" and the
 * NUL fit in the 64 bytes left). */
#define LINK_BUF (3 * (CAIRN_KEY_MAX / 2) + 3 + 64)

struct fstore {
	char *root;
	int root_fd, o_fd, tmp_fd, mpu_fd, lock_fd;
	cairn_uring *u;
	int own_u;
	int dio_off;  /* atomic: O_DIRECT was refused here, reads are buffered */
};

/* ------------------------------------------------------------- helpers */

static int sys_err(const char *what, const char *path)
{
	int e = errno;
	return cairn_errf(cairn_rc_from_errno(e), "%s %s: %s", what, path,
			  strerror(e));
}

static void rand_hex(char *out, size_t nbytes)
{
	static const char hx[] = "0123456789abcdef";
	unsigned char r[32];
	static uint64_t ctr;

	if (nbytes > sizeof r)
		nbytes = sizeof r;
	if (getrandom(r, nbytes, 0) != (ssize_t)nbytes) {
		/* No entropy source: still unique within the process, which
		 * with O_EXCL is all temporaries need. */
		uint64_t v = __atomic_add_fetch(&ctr, 1, __ATOMIC_RELAXED) ^
			     ((uint64_t)getpid() << 32) ^ (uint64_t)time(NULL);
		for (size_t i = 0; i < nbytes; i++)
			r[i] = (unsigned char)(v >> ((i % 8) * 8)) ^ (unsigned char)i;
	}
	for (size_t i = 0; i < nbytes; i++) {
		out[2 * i] = hx[r[i] >> 4];
		out[2 * i + 1] = hx[r[i] & 15];
	}
	out[2 * nbytes] = '\0';
}

static void put_le32(unsigned char *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static void put_le64(unsigned char *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t get_le32(const unsigned char *p)
{
	uint32_t v = 0;
	for (int i = 3; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

static uint64_t get_le64(const unsigned char *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

static int id_valid(const char *id)
{
	if (strlen(id) != ID_LEN)
		return 0;
	for (int i = 0; i < ID_LEN; i++)
		if (!((id[i] >= '0' && id[i] <= '9') ||
		      (id[i] >= 'a' && id[i] <= 'f')))
			return 0;
	return 1;
}

/* Longest path segment of key (keys are validated: no empty segments). */
static size_t key_seg_max(const char *key)
{
	size_t best = 0, cur = 0;

	for (const char *p = key; *p; p++) {
		if (*p == '/') {
			cur = 0;
		} else if (++cur > best) {
			best = cur;
		}
	}
	return best;
}

static int key_fits(const char *key)
{
	size_t m = key_seg_max(key);

	if (m > SEG_MAX)
		return cairn_errf(CAIRN_E_NAMETOOLONG, "a key segment of %zu "
				  "bytes is longer than %d bytes, the longest "
				  "name a file:// store can hold (NAME_MAX)",
				  m, SEG_MAX);
	return 0;
}

static int fsync_fd(struct fstore *fs, int fd, const char *what)
{
	int rc = uring_fsync(fs->u, fd);
	if (rc)
		return cairn_err_wrap(rc, "fsync %s", what);
	return 0;
}

/* fsync the directory rel (relative to dirfd; "" is dirfd itself). */
static int fsync_dir(struct fstore *fs, int dirfd, const char *rel)
{
	int fd, rc;

	if (!rel[0])
		return fsync_fd(fs, dirfd, "directory");
	fd = openat(dirfd, rel, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return sys_err("open directory", rel);
	rc = fsync_fd(fs, fd, rel);
	close(fd);
	return rc;
}

/* The parent of key under o/ ("" for a top-level key) into buf. */
static void key_parent(const char *key, char *buf, size_t size)
{
	const char *slash = strrchr(key, '/');
	size_t n = slash ? (size_t)(slash - key) : 0;

	snprintf(buf, size, "%.*s", (int)n, key);
}

/* Remove the tree rel under dirfd (files and directories), best effort
 * as far as the caller is concerned; returns the first failure. */
static int rm_tree(int dirfd, const char *rel, int depth)
{
	int fd, rc = 0;
	DIR *d;
	struct dirent *de;

	if (unlinkat(dirfd, rel, 0) == 0 || errno == ENOENT)
		return 0;
	if (errno != EISDIR && errno != EPERM)
		return sys_err("remove", rel);
	if (depth > 8)
		return cairn_errf(CAIRN_E_IO, "remove %s: too deep", rel);
	fd = openat(dirfd, rel, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : sys_err("open directory", rel);
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return sys_err("fdopendir", rel);
	}
	while ((de = readdir(d)) != NULL) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		int r = rm_tree(fd, de->d_name, depth + 1);
		if (r && !rc)
			rc = r;
	}
	closedir(d);
	if (unlinkat(dirfd, rel, AT_REMOVEDIR) != 0 && errno != ENOENT && !rc)
		rc = sys_err("rmdir", rel);
	return rc;
}

/* ------------------------------------------------------- data transfer */

struct copy_slot {
	uring_op op;
	char *buf;
	uint64_t dst_off;
	int writing;
	struct copy_slot *next;
};

/* Write src's bytes to dfd at offset 0, COPY_SLOTS 1 MiB transfers in flight
 * (a file range: read then write each chunk). */
static int copy_src(struct fstore *fs, const cairn_obj_src *src, int dfd)
{
	struct copy_slot slots[COPY_SLOTS], *free_list = NULL;
	char msg[1024];
	cairn_uring_q *q = NULL;
	uint64_t next = 0;
	unsigned nslots;
	int rc = 0;

	if (src->len == 0)
		return 0;
	memset(slots, 0, sizeof slots);
	if ((rc = uring_q_get(fs->u, &q)) != 0)
		return rc;
	nslots = uring_q_depth(q) < COPY_SLOTS ? uring_q_depth(q) : COPY_SLOTS;
	if (nslots == 0)
		nslots = 1;
	for (unsigned i = 0; i < nslots; i++) {
		if (!src->buf) {
			size_t n = src->len < COPY_CHUNK ? src->len : COPY_CHUNK;
			slots[i].buf = malloc(n);
			if (!slots[i].buf) {
				rc = cairn_errf(CAIRN_E_NOMEM, "copy buffer");
				goto out;
			}
		}
		slots[i].op.user = &slots[i];
		slots[i].next = free_list;
		free_list = &slots[i];
	}
	msg[0] = '\0';
	for (;;) {
		uring_op *done;
		struct copy_slot *s;
		int r;

		while (!rc && next < src->len && free_list) {
			size_t n = src->len - next < COPY_CHUNK
					   ? (size_t)(src->len - next)
					   : COPY_CHUNK;
			s = free_list;
			free_list = s->next;
			memset(&s->op, 0, sizeof s->op);
			s->op.user = s;
			s->op.len = n;
			s->dst_off = next;
			if (src->buf) {
				s->op.op = URING_OP_WRITE;
				s->op.fd = dfd;
				s->op.buf = (void *)((const char *)src->buf + next);
				s->op.off = next;
				s->writing = 1;
			} else {
				s->op.op = URING_OP_READ;
				s->op.fd = src->fd;
				s->op.buf = s->buf;
				s->op.off = src->off + next;
				s->writing = 0;
			}
			if ((r = uring_q_submit(q, &s->op)) != 0) {
				rc = r;
				cairn_err_copy(msg, sizeof msg);
				s->next = free_list;
				free_list = s;
				break;
			}
			next += n;
		}
		if (uring_q_inflight(q) == 0)
			break;
		r = uring_q_reap(q, &done);
		if (!done) {
			/* The engine itself failed: nothing to recycle. */
			if (!rc) {
				rc = r;
				cairn_err_copy(msg, sizeof msg);
			}
			break;
		}
		s = done->user;
		if (r) {
			if (!rc) {
				rc = r;
				cairn_err_copy(msg, sizeof msg);
			}
		} else if (!s->writing && !rc) {
			if (done->done < done->len) {
				rc = cairn_errf(CAIRN_E_INVAL, "source file (fd %d) "
						"ends at %llu, before the %llu "
						"bytes the source names",
						src->fd,
						(unsigned long long)(done->off +
								     done->done),
						(unsigned long long)(src->off +
								     src->len));
				cairn_err_copy(msg, sizeof msg);
			} else {
				size_t n = done->len;
				memset(&s->op, 0, sizeof s->op);
				s->op.user = s;
				s->op.op = URING_OP_WRITE;
				s->op.fd = dfd;
				s->op.buf = s->buf;
				s->op.len = n;
				s->op.off = s->dst_off;
				s->writing = 1;
				if ((r = uring_q_submit(q, &s->op)) == 0)
					continue;
				rc = r;
				cairn_err_copy(msg, sizeof msg);
			}
		}
		s->next = free_list;
		free_list = s;
	}
	if (rc)
		cairn_err_set(rc, msg);
out:
	uring_q_put(q);
	for (unsigned i = 0; i < COPY_SLOTS; i++)
		free(slots[i].buf);
	return rc;
}

/* A put of a whole regular file on the store's file system takes the file
 * by a hard link instead of copying its bytes (objstore.h: the caller does
 * not change a file's bytes once it has put it).  0: linked and synced
 * (name and st set); 1: not possible here (another file system, a range,
 * a special file, a failed sync): the caller copies instead. */
static int tmp_link(struct fstore *fs, const char *prefix,
		    const cairn_obj_src *src, char name[64], struct stat *st)
{
	char proc[64], rnd[17];
	struct stat ss;

	if (src->buf || src->fd < 0 || src->off != 0 || src->len == 0)
		return 1;
	if (fstat(src->fd, &ss) != 0 || !S_ISREG(ss.st_mode) ||
	    (uint64_t)ss.st_size != src->len)
		return 1;
	snprintf(proc, sizeof proc, "/proc/self/fd/%d", src->fd);
	for (int tries = 0; tries < 8; tries++) {
		rand_hex(rnd, 8);
		snprintf(name, 64, "%s-%s", prefix, rnd);
		if (linkat(AT_FDCWD, proc, fs->tmp_fd, name, AT_SYMLINK_FOLLOW) == 0)
			break;
		if (errno != EEXIST)
			return 1;  /* EXDEV, no /proc, ...: copy */
		name[0] = '\0';
	}
	if (!name[0])
		return 1;
	/* The bytes must be durable before the object becomes visible, as
	 * for a copy (the caller usually synced them already: cheap then). */
	if (fsync_fd(fs, src->fd, name) != 0) {
		cairn_err_clear();
		unlinkat(fs->tmp_fd, name, 0);
		return 1;
	}
	if (st)
		*st = ss;
	return 0;
}

/* Write src into a new fsynced file tmp/<prefix>-<random>; name out. */
static int tmp_write(struct fstore *fs, const char *prefix,
		     const cairn_obj_src *src, char name[64], struct stat *st)
{
	char rnd[17];
	int fd = -1, rc;

	if ((rc = tmp_link(fs, prefix, src, name, st)) <= 0)
		return rc;
	for (int tries = 0; fd < 0 && tries < 8; tries++) {
		rand_hex(rnd, 8);
		snprintf(name, 64, "%s-%s", prefix, rnd);
		fd = openat(fs->tmp_fd, name,
			    O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
		if (fd < 0 && errno != EEXIST)
			return sys_err("create", name);
	}
	if (fd < 0)
		return cairn_errf(CAIRN_E_IO, "create tmp/%s-*: names taken",
				  prefix);
	rc = copy_src(fs, src, fd);
	if (rc) {
		rc = cairn_err_wrap(rc, "write tmp/%s", name);
		goto fail;
	}
	if ((rc = fsync_fd(fs, fd, name)) != 0)
		goto fail;
	if (st && fstat(fd, st) != 0) {
		rc = sys_err("fstat", name);
		goto fail;
	}
	close(fd);
	return 0;
fail:
	close(fd);
	unlinkat(fs->tmp_fd, name, 0);
	return rc;
}

/* --------------------------------------------------------- namespace */

static int conflict(const char *key, const char *other, const char *how)
{
	char a[160], b[160];

	objstore_key_escape(key, a, sizeof a);
	objstore_key_escape(other, b, sizeof b);
	return cairn_errf(CAIRN_E_EXISTS, "'%s' %s, and a file:// store cannot "
			  "hold both a key and keys below it ('%s' and "
			  "'%s/...') [putting '%s']", b, how, b, b, a);
}

/* mkdir -p of key's parent directories under o/.  A concurrent delete may
 * prune a directory between our steps (ENOENT): start over then. */
static int ensure_parents(struct fstore *fs, const char *key)
{
	char path[PATH_BUF];
	size_t len = strlen(key);
	int rc, tries = 0;

again:
	if (++tries > 64)
		return cairn_errf(CAIRN_E_AGAIN, "mkdir o/ for %s: parent "
				  "directories keep vanishing", key);
	for (size_t i = 0; i < len; i++) {
		struct stat st;

		if (key[i] != '/')
			continue;
		snprintf(path, sizeof path, "%.*s", (int)i, key);
		if (mkdirat(fs->o_fd, path, 0755) == 0) {
			char parent[PATH_BUF];
			/* A new directory entry is durable only once its
			 * parent is synced; sync the new one too, as the
			 * objects it will hold are linked from it. */
			rc = fsync_dir(fs, fs->o_fd, path);
			if (!rc) {
				key_parent(path, parent, sizeof parent);
				rc = fsync_dir(fs, fs->o_fd, parent);
			}
			if (rc == CAIRN_E_NOTFOUND)
				goto again;
			if (rc)
				return rc;
			continue;
		}
		if (errno == ENOENT)
			goto again;
		if (errno == ENOTDIR)
			goto clash;
		if (errno != EEXIST)
			return sys_err("mkdir o/", path);
		if (fstatat(fs->o_fd, path, &st, AT_SYMLINK_NOFOLLOW) != 0) {
			if (errno == ENOENT)
				goto again;
			return sys_err("stat o/", path);
		}
		if (!S_ISDIR(st.st_mode))
			goto clash;
	}
	return 0;
clash:
	/* Find the shortest prefix that is an object, for the message. */
	for (size_t i = 0; i < len; i++) {
		struct stat st;
		if (key[i] != '/')
			continue;
		snprintf(path, sizeof path, "%.*s", (int)i, key);
		if (fstatat(fs->o_fd, path, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		    !S_ISDIR(st.st_mode))
			break;
	}
	return conflict(key, path, "is an object");
}

/* Remove the now-empty parent directories of key, best effort. */
static void prune_parents(struct fstore *fs, const char *key)
{
	char path[PATH_BUF];
	size_t i = strlen(key);

	while (i > 0) {
		while (i > 0 && key[i - 1] != '/')
			i--;
		if (i == 0)
			break;
		i--;
		snprintf(path, sizeof path, "%.*s", (int)i, key);
		if (unlinkat(fs->o_fd, path, AT_REMOVEDIR) != 0)
			break;
	}
}

/* The link target o/<key> holds for upload id (size >= LINK_BUF: never cut). */
static void link_target(const char *key, const char *id, char *buf,
			size_t size)
{
	size_t o = 0;

	/* One "../" per directory level of the key, and one to leave o/. */
	for (const char *p = key; *p; p++)
		if (*p == '/' && o + 3 < size) {
			memcpy(buf + o, "../", 3);
			o += 3;
		}
	snprintf(buf + o, size - o, "../mpu/%s/manifest", id);
}

/* Upload id named by a link target "../../mpu/<id>/manifest". */
static int target_id(const char *target, char id[ID_LEN + 1])
{
	const char *p = target;
	size_t n;

	while (strncmp(p, "../", 3) == 0)
		p += 3;
	if (p == target || strncmp(p, "mpu/", 4) != 0)
		return 0;
	p += 4;
	n = strlen(p);
	if (n != ID_LEN + strlen("/manifest") ||
	    strcmp(p + ID_LEN, "/manifest") != 0)
		return 0;
	memcpy(id, p, ID_LEN);
	id[ID_LEN] = '\0';
	return id_valid(id);
}

/* readlink o/<key> (or rel under dirfd) into buf; -1 with errno. */
static ssize_t read_link(int dirfd, const char *rel, char *buf, size_t size)
{
	ssize_t n = readlinkat(dirfd, rel, buf, size - 1);
	if (n < 0)
		return -1;
	if ((size_t)n >= size - 1) {
		errno = ENAMETOOLONG;
		return -1;
	}
	buf[n] = '\0';
	return n;
}

/* ----------------------------------------------------------- manifests */

static int man_corrupt(const char *id, const char *what)
{
	return cairn_errf(CAIRN_E_CORRUPT, "manifest mpu/%s/manifest is corrupt: "
			  "%s", id, what);
}

void objstore_file_manifest_free(struct objstore_file_manifest *m)
{
	free(m->parts);
	m->parts = NULL;
}

static void man_free(struct objstore_file_manifest *m)
{
	objstore_file_manifest_free(m);
}

/* The checks of a manifest's bytes, apart from the file (tests and the
 * fuzzer call it directly): nothing is used before it is validated. */
int objstore_file_manifest_parse(const void *data, size_t len, const char *id,
				 const char *key,
				 struct objstore_file_manifest *m)
{
	const unsigned char *buf = data;
	size_t klen, need;
	uint64_t sum = 0;
	int rc = 0;

	memset(m, 0, sizeof *m);
	if (!id || !id_valid(id))
		return cairn_errf(CAIRN_E_INVAL, "manifest of '%.64s': not an "
				  "upload id", id ? id : "(null)");
	snprintf(m->id, sizeof m->id, "%s", id);
	if (len < MAN_HDR + MAN_REC + 4 ||
	    len > MAN_HDR + CAIRN_KEY_MAX + (size_t)MAN_REC * CAIRN_MPU_MAX_PARTS + 4)
		return man_corrupt(id, "impossible size");
	if (memcmp(buf, MAN_MAGIC, 8) != 0)
		return man_corrupt(id, "bad magic");
	if (get_le32(buf + 8) != MAN_VERSION)
		return cairn_errf(CAIRN_E_VERSION, "manifest mpu/%s/manifest has "
				  "version %u; this build reads version %u", id,
				  get_le32(buf + 8), MAN_VERSION);
	m->n = get_le32(buf + 12);
	m->total = get_le64(buf + 16);
	klen = get_le32(buf + 24);
	if (m->n < 1 || m->n > CAIRN_MPU_MAX_PARTS)
		return man_corrupt(id, "part count out of range");
	if (klen < 1 || klen > CAIRN_KEY_MAX)
		return man_corrupt(id, "key length out of range");
	need = MAN_HDR + klen + (size_t)m->n * MAN_REC + 4;
	if (need != len)
		return man_corrupt(id, "size does not match its part count");
	m->crc = cairn_crc32c(0, buf, need - 4);
	if (m->crc != get_le32(buf + need - 4))
		return man_corrupt(id, "checksum mismatch");
	if (get_le32(buf + 28) != 0 || memcmp(buf + 32, id, ID_LEN) != 0)
		return man_corrupt(id, "upload id does not match its directory");
	if (key && (strlen(key) != klen || memcmp(buf + MAN_HDR, key, klen)))
		return man_corrupt(id, "written for another key");
	m->parts = calloc(m->n, sizeof *m->parts);
	if (!m->parts)
		return cairn_errf(CAIRN_E_NOMEM, "manifest parts");
	for (unsigned i = 0; i < m->n; i++) {
		const unsigned char *r = buf + MAN_HDR + klen + (size_t)i * MAN_REC;
		struct objstore_file_man_part *p = &m->parts[i];

		p->number = get_le32(r);
		p->size = get_le64(r + 8);
		if (p->number < 1 || p->number > CAIRN_MPU_MAX_PARTS ||
		    (i > 0 && p->number <= m->parts[i - 1].number) ||
		    get_le32(r + 4) != 0) {
			rc = man_corrupt(id, "part numbers out of order");
			goto out;
		}
		if (p->size > 5 * GIB) {
			rc = man_corrupt(id, "part larger than 5 GiB");
			goto out;
		}
		/* <= 10000 parts of <= 5 GiB: the sum cannot overflow. */
		p->start = sum;
		sum += p->size;
	}
	if (sum != m->total)
		rc = man_corrupt(id, "part sizes do not add up to the total");
out:
	if (rc)
		man_free(m);
	return rc;
}

/* Load and validate mpu/<id>/manifest.  key (may be NULL) must match. */
static int man_load(struct fstore *fs, const char *id, const char *key,
		    struct objstore_file_manifest *m)
{
	char rel[ID_LEN + 16];
	unsigned char *buf = NULL;
	struct stat st;
	size_t got = 0;
	int fd, rc = 0;

	memset(m, 0, sizeof *m);
	snprintf(rel, sizeof rel, "%s/manifest", id);
	fd = openat(fs->mpu_fd, rel, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT)
			return cairn_errf(CAIRN_E_CORRUPT, "composite object "
					  "points at mpu/%s/manifest, which "
					  "does not exist", id);
		return sys_err("open mpu/", rel);
	}
	if (fstat(fd, &st) != 0) {
		rc = sys_err("fstat mpu/", rel);
		goto out;
	}
	/* Bound the allocation before trusting the size. */
	if (st.st_size < MAN_HDR + MAN_REC + 4 ||
	    st.st_size > MAN_HDR + CAIRN_KEY_MAX +
				 (off_t)MAN_REC * CAIRN_MPU_MAX_PARTS + 4) {
		rc = man_corrupt(id, "impossible size");
		goto out;
	}
	buf = malloc((size_t)st.st_size);
	if (!buf) {
		rc = cairn_errf(CAIRN_E_NOMEM, "manifest buffer");
		goto out;
	}
	rc = uring_read(fs->u, fd, buf, (size_t)st.st_size, 0, &got);
	if (rc) {
		rc = cairn_err_wrap(rc, "read mpu/%s", rel);
		goto out;
	}
	if (got != (size_t)st.st_size) {
		rc = man_corrupt(id, "shorter than its size");
		goto out;
	}
	rc = objstore_file_manifest_parse(buf, got, id, key, m);
out:
	free(buf);
	close(fd);
	return rc;
}

/* Readers take no lock: a delete or an overwrite may retire the upload
 * behind o/<key> while a reader follows the link, so that its manifest or
 * a part is gone by the time the reader opens it.  That is not corruption:
 * the reader looks again, up to READ_TRIES times, and finds the new object
 * or none (rule 1 of cairn/objstore.h).  Whether o/<key> has stopped
 * linking to upload id: */
static int link_moved(struct fstore *fs, const char *key, const char *id)
{
	char target[LINK_BUF], cur[ID_LEN + 1];

	if (read_link(fs->o_fd, key, target, sizeof target) < 0)
		return errno == ENOENT || errno == ENOTDIR || errno == EINVAL;
	return !target_id(target, cur) || strcmp(cur, id) != 0;
}

/* Manifest of the composite object o/<key> (already known to be a link).
 * *changed is set when o/<key> changed while it was read: look again. */
static int man_of_key(struct fstore *fs, const char *key,
		      struct objstore_file_manifest *m, int *changed)
{
	char target[LINK_BUF], id[ID_LEN + 1];
	int rc;

	memset(m, 0, sizeof *m);
	*changed = 0;
	if (read_link(fs->o_fd, key, target, sizeof target) < 0) {
		if (errno == ENOENT || errno == ENOTDIR)
			return cairn_errf(CAIRN_E_NOTFOUND, "no such key");
		if (errno == EINVAL) {
			/* Replaced by a plain object since the caller saw
			 * the link. */
			*changed = 1;
			return cairn_errf(CAIRN_E_AGAIN, "o/ entry changed");
		}
		return sys_err("readlink o/", key);
	}
	if (!target_id(target, id))
		return cairn_errf(CAIRN_E_CORRUPT, "o/ entry is a link to '%.200s',"
				  " which is not a multipart manifest", target);
	rc = man_load(fs, id, key, m);
	if (rc == CAIRN_E_CORRUPT && link_moved(fs, key, id))
		*changed = 1;
	return rc;
}

static int changed_too_often(void)
{
	return cairn_errf(CAIRN_E_AGAIN, "the object changed %d times while "
			  "it was read", READ_TRIES);
}

/* ------------------------------------------------- uploads and retiring */

/* After o/ stopped pointing at upload id: remove its directory (through
 * tmp/dead-*), then the trash link (may be NULL).  Failures only leave
 * debris in tmp/ for the next sweep, so they are logged, not returned. */
static void retire_upload(struct fstore *fs, const char *id, const char *trash)
{
	char dead[64], rnd[17];
	int rc;

	rand_hex(rnd, 8);
	snprintf(dead, sizeof dead, "dead-%s", rnd);
	if (renameat(fs->mpu_fd, id, fs->tmp_fd, dead) == 0) {
		rc = rm_tree(fs->tmp_fd, dead, 0);
		if (rc)
			CAIRN_WARN("objstore", "%s: removing old upload %s: %s",
				   fs->root, id, cairn_errmsg());
	} else if (errno != ENOENT) {
		CAIRN_WARN("objstore", "%s: retiring upload %s: %s", fs->root,
			   id, strerror(errno));
		return; /* keep the trash link: the sweep finishes the job */
	}
	if (trash && unlinkat(fs->tmp_fd, trash, 0) != 0 && errno != ENOENT)
		CAIRN_WARN("objstore", "%s: removing tmp/%s: %s", fs->root,
			   trash, strerror(errno));
}

/* If o/<key> is a composite object, make a tmp/trash-* link to its
 * manifest (invariant 3) and return its id in old_id ("" otherwise). */
static int trash_old(struct fstore *fs, const char *key, char old_id[ID_LEN + 1],
		     char trash[64])
{
	char target[LINK_BUF], t2[64 + ID_LEN], rnd[17];
	int rc;

	old_id[0] = '\0';
	trash[0] = '\0';
	if (read_link(fs->o_fd, key, target, sizeof target) < 0)
		return 0; /* no link: nothing to retire (ENOENT, EINVAL) */
	if (!target_id(target, old_id)) {
		old_id[0] = '\0';
		return 0;
	}
	rand_hex(rnd, 8);
	snprintf(trash, 64, "trash-%s", rnd);
	snprintf(t2, sizeof t2, "../mpu/%s/manifest", old_id);
	if (symlinkat(t2, fs->tmp_fd, trash) != 0) {
		rc = sys_err("symlink tmp/", trash);
		trash[0] = '\0';
		old_id[0] = '\0';
		return rc;
	}
	if ((rc = fsync_fd(fs, fs->tmp_fd, "tmp/")) != 0) {
		unlinkat(fs->tmp_fd, trash, 0);
		trash[0] = '\0';
		old_id[0] = '\0';
		return rc;
	}
	return 0;
}

/* Rename tmp/<name> over o/<key>: parents made, composite predecessor
 * trashed and retired, parent directory synced.  self_id (may be NULL) is
 * the upload being completed: if o/<key> already links to it (a concurrent
 * retry of the same complete), it is the same object and must not be
 * retired. */
static int publish(struct fstore *fs, const char *name, const char *key,
		   const char *self_id)
{
	char old_id[ID_LEN + 1], trash[64], parent[PATH_BUF];
	int rc = 0;

	if ((rc = trash_old(fs, key, old_id, trash)) != 0)
		return rc;
	if (old_id[0] && self_id && strcmp(old_id, self_id) == 0) {
		unlinkat(fs->tmp_fd, trash, 0);
		old_id[0] = '\0';
		trash[0] = '\0';
	}
	for (int tries = 0;; tries++) {
		if ((rc = ensure_parents(fs, key)) != 0)
			goto fail;
		if (renameat(fs->tmp_fd, name, fs->o_fd, key) == 0)
			break;
		/* A concurrent delete may prune a parent we just made. */
		if (errno == ENOENT && tries < 16)
			continue;
		if (errno == EISDIR || errno == ENOTEMPTY || errno == EEXIST) {
			rc = conflict(key, key, "is a prefix of other keys "
				      "(a directory)");
			goto fail;
		}
		if (errno == ENOTDIR) {
			rc = conflict(key, key, "has an object as a prefix");
			goto fail;
		}
		rc = sys_err("rename into o/", key);
		goto fail;
	}
	key_parent(key, parent, sizeof parent);
	rc = fsync_dir(fs, fs->o_fd, parent);
	if (rc == CAIRN_E_NOTFOUND) {
		/* Deleted (and pruned) by a concurrent delete of the key. */
		cairn_err_clear();
		rc = 0;
	}
	if (old_id[0])
		retire_upload(fs, old_id, trash);
	return rc;
fail:
	if (trash[0])
		unlinkat(fs->tmp_fd, trash, 0);
	return rc;
}

/* The upload mpu/<id> exists and was created for key (and, with
 * refuse_completed, is not completed yet).  Its key file is left open in
 * *lock_fd and flock()ed with lock (invariant 8): the caller holds it until
 * it is done with the upload, and closes it. */
static int upload_check(struct fstore *fs, const char *key, const char *id,
			int refuse_completed, int lock, int *lock_fd)
{
	char rel[ID_LEN + 8], buf[CAIRN_KEY_MAX + 2];
	struct stat st, now;
	size_t got = 0;
	int fd, rc;

	*lock_fd = -1;
	if (!id_valid(id))
		return cairn_errf(CAIRN_E_NOTFOUND, "no such upload '%.64s' (not "
				  "an upload id of this store)", id);
	snprintf(rel, sizeof rel, "%s/key", id);
	fd = openat(fs->mpu_fd, rel, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT)
			return cairn_errf(CAIRN_E_NOTFOUND, "no such upload %s "
					  "(never created, aborted or "
					  "completed)", id);
		return sys_err("open mpu/", rel);
	}
	while ((rc = flock(fd, lock)) != 0 && errno == EINTR)
		;
	if (rc) {
		rc = sys_err("lock mpu/", rel);
		goto fail;
	}
	/* Whoever held the lock before may have aborted or completed (and
	 * since retired) the upload: judge its state only now. */
	if (fstat(fd, &st) != 0) {
		rc = sys_err("fstat mpu/", rel);
		goto fail;
	}
	if (fstatat(fs->mpu_fd, rel, &now, 0) != 0 || now.st_ino != st.st_ino ||
	    now.st_dev != st.st_dev) {
		rc = cairn_errf(CAIRN_E_NOTFOUND, "no such upload %s (aborted "
				"or completed meanwhile)", id);
		goto fail;
	}
	rc = uring_read(fs->u, fd, buf, sizeof buf, 0, &got);
	if (rc) {
		rc = cairn_err_wrap(rc, "read mpu/%s", rel);
		goto fail;
	}
	if (got != strlen(key) || memcmp(buf, key, got) != 0) {
		rc = cairn_errf(CAIRN_E_NOTFOUND, "no such upload %s for this "
				"key (it was created for another key)", id);
		goto fail;
	}
	if (refuse_completed) {
		char target[LINK_BUF], want[LINK_BUF];
		link_target(key, id, want, sizeof want);
		if (read_link(fs->o_fd, key, target, sizeof target) >= 0 &&
		    strcmp(target, want) == 0) {
			rc = cairn_errf(CAIRN_E_NOTFOUND, "no such upload %s "
					"(already completed)", id);
			goto fail;
		}
	}
	*lock_fd = fd;
	return 0;
fail:
	close(fd); /* drops the lock */
	return rc;
}

/* ------------------------------------------------------------ backend */

static int file_put(void *impl, const char *key, const cairn_obj_src *src)
{
	struct fstore *fs = impl;
	char name[64];
	int rc;

	if ((rc = key_fits(key)) != 0)
		return rc;
	if ((rc = tmp_write(fs, "put", src, name, NULL)) != 0)
		return rc;
	rc = publish(fs, name, key, NULL);
	if (rc)
		unlinkat(fs->tmp_fd, name, 0);
	return rc;
}

/* Create o/<key> only if no object has that key (invariant 9): the bytes
 * go to a complete, fsynced tmp/put-* file, which link(2) then gives the
 * final name.  link never replaces a name, so of racing creators (threads
 * or processes) exactly one wins and the others get EEXIST, having written
 * nothing visible.  The temporary name is removed in every case (a crash
 * leaves it to the sweep; the object, once linked, is unaffected). */
static int file_put_if_absent(void *impl, const char *key, const void *buf,
			      size_t len)
{
	struct fstore *fs = impl;
	cairn_obj_src src = {.buf = buf, .fd = -1, .off = 0, .len = len};
	char name[64], parent[PATH_BUF];
	struct stat st;
	int rc = 0;

	if ((rc = key_fits(key)) != 0)
		return rc;
	if ((rc = tmp_write(fs, "put", &src, name, NULL)) != 0)
		return rc;
	for (int tries = 0;; tries++) {
		if ((rc = ensure_parents(fs, key)) != 0)
			goto out;
		if (linkat(fs->tmp_fd, name, fs->o_fd, key, 0) == 0)
			break;
		/* A concurrent delete may prune a parent we just made. */
		if (errno == ENOENT && tries < 16)
			continue;
		if (errno == EEXIST) {
			if (fstatat(fs->o_fd, key, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
			    S_ISDIR(st.st_mode)) {
				rc = conflict(key, key, "is a prefix of other "
					      "keys (a directory)");
				goto out;
			}
			rc = cairn_errf(CAIRN_E_EXISTS, "an object with this key "
					"exists already (nothing written)");
			goto out;
		}
		if (errno == ENOTDIR) {
			rc = conflict(key, key, "has an object as a prefix");
			goto out;
		}
		rc = sys_err("link into o/", key);
		goto out;
	}
	key_parent(key, parent, sizeof parent);
	rc = fsync_dir(fs, fs->o_fd, parent);
	if (rc == CAIRN_E_NOTFOUND) {
		/* Deleted (and pruned) by a concurrent delete of the key. */
		cairn_err_clear();
		rc = 0;
	}
out:
	if (unlinkat(fs->tmp_fd, name, 0) != 0 && errno != ENOENT)
		CAIRN_WARN("objstore", "%s: cannot remove tmp/%s: %s (the "
			   "sweep will)", fs->root, name, strerror(errno));
	return rc;
}

/* ---------------------------------------------------------- direct reads
 *
 * A read of at least DIO_MIN bytes of an object file bypasses the page
 * cache: O_DIRECT reads of the aligned span into the thread's bounce
 * buffer, then one copy into the caller's buffer.  Object files never
 * change once visible, so nothing is lost by not caching them here: the
 * volume keeps its own cache and readahead, and a cold 4 MiB chunk read
 * that way costs the disk's DMA and one memcpy instead of page cache
 * allocation, insertion and the kernel's copy (on the 2-core VM, 16
 * concurrent 4 MiB reads: 1.1-1.35 GB/s direct against 0.8-0.95
 * buffered, fio).  Smaller reads (packed small files, windows of the
 * segment reader, metadata objects) stay buffered and keep the page
 * cache's readahead.  The last bytes past the last aligned block are read
 * buffered, so a direct read never meets the end of the file.  Where the
 * file system refuses O_DIRECT (EINVAL: tmpfs, some FUSE) the store falls
 * back to buffered reads for good. */
#define DIO_MIN (1u << 20)
#define DIO_ALIGN 4096u
#define DIO_PIECE ((4u << 20) + (64u << 10))  /* a 4 MiB chunk, unaligned */

static uring_tbuf dio_buf = URING_TBUF_INIT(DIO_PIECE, DIO_ALIGN);

/* O_DIRECT refused (EINVAL) on this store: buffered reads from now on. */
static void dio_refused(struct fstore *fs, const char *how)
{
	if (!__atomic_exchange_n(&fs->dio_off, 1, __ATOMIC_RELAXED))
		CAIRN_INFO("objstore", "%s: O_DIRECT reads refused (%s), reading "
			   "through the page cache", fs->root, how);
}

/* A direct read was refused (EINVAL: by the file system, or an alignment
 * it wants larger): the descriptor's flags back to fl, and the whole range
 * again, buffered; from now on this store reads buffered. */
static int dio_again(struct fstore *fs, int fd, int fl, void *buf, size_t n,
		     uint64_t off, size_t *done)
{
	cairn_err_clear();
	dio_refused(fs, "read");
	*done = 0;
	if (fcntl(fd, F_SETFL, fl) != 0)
		return sys_err("fcntl of an object file in", fs->root);
	return uring_read(fs->u, fd, buf, n, off, done);
}

/* Read [off, off+n) of fd into buf; cap (>= n) is how many bytes buf
 * holds.  When buf and off are aligned and cap holds n rounded up to the
 * alignment, the read goes straight into buf as one O_DIRECT request (the
 * block layer splits it and sends the pieces at once; at the end of the
 * file the read stops there): no bounce copy.  Callers that want this
 * (the volume's readahead) ask for aligned ranges into aligned buffers. */
static int dio_read(struct fstore *fs, int fd, void *buf, size_t n,
		    size_t cap, uint64_t off, size_t *done)
{
	uint64_t end = off + n, p = off & ~(uint64_t)(DIO_ALIGN - 1);
	uint64_t a1 = end & ~(uint64_t)(DIO_ALIGN - 1);
	size_t up = (n + DIO_ALIGN - 1) & ~(size_t)(DIO_ALIGN - 1);
	int straight = ((uintptr_t)buf | off) % DIO_ALIGN == 0 && up <= cap;
	char *b = NULL;
	int fl, rc = 0;

	*done = 0;
	if (n < DIO_MIN || __atomic_load_n(&fs->dio_off, __ATOMIC_RELAXED) ||
	    (!straight && !(b = uring_tbuf_get(&dio_buf))) ||
	    (fl = fcntl(fd, F_GETFL)) < 0)
		return uring_read(fs->u, fd, buf, n, off, done);
	if (fcntl(fd, F_SETFL, fl | O_DIRECT) != 0) {
		if (errno == EINVAL)
			dio_refused(fs, "fcntl");
		return uring_read(fs->u, fd, buf, n, off, done);
	}
	if (straight) {
		size_t got = 0;
		rc = uring_read(fs->u, fd, buf, up, off, &got);
		if (rc == CAIRN_E_INVAL)
			return dio_again(fs, fd, fl, buf, n, off, done);
		*done = got < n ? got : n;
		if (fcntl(fd, F_SETFL, fl) != 0 && !rc)
			rc = sys_err("fcntl of an object file in", fs->root);
		return rc;
	}
	/* n >= DIO_MIN, so a1 > off: every piece holds wanted bytes. */
	while (p < a1) {
		size_t len = a1 - p < DIO_PIECE ? (size_t)(a1 - p) : DIO_PIECE;
		size_t got = 0;
		uint64_t from = p > off ? p : off;

		rc = uring_read(fs->u, fd, b, len, p, &got);
		if (rc == CAIRN_E_INVAL)
			return dio_again(fs, fd, fl, buf, n, off, done);
		if (rc || p + got <= from)
			break;
		memcpy((char *)buf + (from - off), b + (from - p), p + got - from);
		*done = (size_t)(p + got - off);
		if (got < len)
			break;  /* end of file: the caller sees the short count */
		p += len;
	}
	if (fcntl(fd, F_SETFL, fl) != 0 && !rc)
		rc = sys_err("fcntl of an object file in", fs->root);
	if (!rc && p >= a1 && a1 < end) {
		size_t got = 0;
		rc = uring_read(fs->u, fd, (char *)buf + (a1 - off),
				(size_t)(end - a1), a1, &got);
		*done += got;
	}
	return rc;
}

/* Read [off, off+len) of a composite object. */
static int man_read(struct fstore *fs, const struct objstore_file_manifest *m,
		    uint64_t off, void *buf, uint64_t len, uint64_t *got)
{
	enum { BATCH = 16 };
	uring_op ops[BATCH];
	int fds[BATCH];
	unsigned lo = 0, hi = m->n, i;
	uint64_t end, pos;
	int rc = 0;

	*got = 0;
	if (off >= m->total || len == 0)
		return 0;
	end = m->total - off < len ? m->total : off + len;
	/* First part whose end is past off. */
	while (lo < hi) {
		unsigned mid = lo + (hi - lo) / 2;
		if (m->parts[mid].start + m->parts[mid].size <= off)
			lo = mid + 1;
		else
			hi = mid;
	}
	pos = off;
	i = lo;
	while (pos < end && !rc) {
		size_t nops = 0;

		for (; i < m->n && pos < end && nops < BATCH; i++) {
			const struct objstore_file_man_part *p = &m->parts[i];
			char rel[ID_LEN + 16];
			struct stat st;
			uint64_t in_off, n;

			if (p->size == 0)
				continue;
			in_off = pos - p->start;
			n = p->size - in_off;
			if (n > end - pos)
				n = end - pos;
			snprintf(rel, sizeof rel, "%s/part.%05u", m->id,
				 p->number);
			fds[nops] = openat(fs->mpu_fd, rel, O_RDONLY | O_CLOEXEC);
			if (fds[nops] < 0) {
				rc = errno == ENOENT
					     ? cairn_errf(CAIRN_E_CORRUPT,
							  "part file mpu/%s of "
							  "a composite object "
							  "is missing", rel)
					     : sys_err("open mpu/", rel);
				break;
			}
			if (fstat(fds[nops], &st) != 0 ||
			    (uint64_t)st.st_size != p->size) {
				close(fds[nops]);
				rc = cairn_errf(CAIRN_E_CORRUPT, "part file mpu/%s "
						"is not the %llu bytes its "
						"manifest says", rel,
						(unsigned long long)p->size);
				break;
			}
			memset(&ops[nops], 0, sizeof ops[nops]);
			ops[nops].op = URING_OP_READ;
			ops[nops].fd = fds[nops];
			ops[nops].buf = (char *)buf + (pos - off);
			ops[nops].len = n;
			ops[nops].off = in_off;
			nops++;
			pos += n;
		}
		if (!rc && nops && end - off >= DIO_MIN) {
			/* One part after the other, each direct if large. */
			for (size_t j = 0; !rc && j < nops; j++)
				rc = dio_read(fs, ops[j].fd, ops[j].buf,
					      ops[j].len, ops[j].len,
					      ops[j].off, &ops[j].done);
		} else if (!rc && nops) {
			rc = uring_run(fs->u, ops, nops);
		}
		for (size_t j = 0; !rc && j < nops; j++)
			if (ops[j].done != ops[j].len)
				rc = cairn_errf(CAIRN_E_CORRUPT, "part file of "
						"upload %s ended early", m->id);
		for (size_t j = 0; j < nops; j++)
			close(fds[j]);
	}
	if (!rc)
		*got = end - off;
	return rc;
}

/* One try of file_get; *changed as man_of_key says. */
static int get_once(struct fstore *fs, const char *key, uint64_t off,
		    void *buf, uint64_t len, uint64_t *got, int *changed)
{
	struct objstore_file_manifest m;
	struct stat st;
	int fd, rc;

	*got = 0;
	*changed = 0;
	fd = openat(fs->o_fd, key, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT || errno == ENOTDIR)
			return cairn_errf(CAIRN_E_NOTFOUND, "no such key");
		if (errno != ELOOP)
			return sys_err("open o/", key);
		if ((rc = man_of_key(fs, key, &m, changed)) != 0)
			return rc;
		rc = man_read(fs, &m, off, buf, len, got);
		if (rc == CAIRN_E_CORRUPT && link_moved(fs, key, m.id))
			*changed = 1;
		man_free(&m);
		return rc;
	}
	if (fstat(fd, &st) != 0) {
		rc = sys_err("fstat o/", key);
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		rc = cairn_errf(CAIRN_E_NOTFOUND, "no such key (only keys "
				"below it exist)");
		goto out;
	}
	rc = 0;
	if (off < (uint64_t)st.st_size && len > 0) {
		size_t n = (uint64_t)st.st_size - off < len
				   ? (size_t)((uint64_t)st.st_size - off)
				   : (size_t)len;
		size_t done = 0;
		rc = dio_read(fs, fd, buf, n, (size_t)len, off, &done);
		if (rc)
			rc = cairn_err_wrap(rc, "read object file");
		else
			*got = done;
	}
out:
	close(fd);
	return rc;
}

static int file_get(void *impl, const char *key, uint64_t off, void *buf,
		    uint64_t len, uint64_t *got)
{
	struct fstore *fs = impl;
	int rc, changed;

	*got = 0;
	if (key_seg_max(key) > SEG_MAX)
		return cairn_errf(CAIRN_E_NOTFOUND, "no such key");
	for (int tries = 0; tries < READ_TRIES; tries++) {
		rc = get_once(fs, key, off, buf, len, got, &changed);
		if (!changed)
			return rc;
		cairn_err_clear();
	}
	*got = 0;
	return changed_too_often();
}

static int file_head(void *impl, const char *key, cairn_obj_info *out)
{
	struct fstore *fs = impl;
	struct stat st;
	int rc, changed, tries = 0;

	if (key_seg_max(key) > SEG_MAX)
		return cairn_errf(CAIRN_E_NOTFOUND, "no such key");
again:
	if (fstatat(fs->o_fd, key, &st, AT_SYMLINK_NOFOLLOW) != 0) {
		if (errno == ENOENT || errno == ENOTDIR)
			return cairn_errf(CAIRN_E_NOTFOUND, "no such key");
		return sys_err("stat o/", key);
	}
	out->mtime = st.st_mtim.tv_sec;
	if (S_ISREG(st.st_mode)) {
		out->size = (uint64_t)st.st_size;
		snprintf(out->etag, sizeof out->etag, "%llx-%llx",
			 (unsigned long long)st.st_ino,
			 (unsigned long long)st.st_mtim.tv_sec * 1000000000ULL +
				 (unsigned long long)st.st_mtim.tv_nsec);
		return 0;
	}
	if (S_ISLNK(st.st_mode)) {
		struct objstore_file_manifest m;
		if ((rc = man_of_key(fs, key, &m, &changed)) != 0) {
			if (!changed)
				return rc;
			if (++tries == READ_TRIES)
				return changed_too_often();
			cairn_err_clear();
			goto again;
		}
		out->size = m.total;
		snprintf(out->etag, sizeof out->etag, "%08x-%u", m.crc, m.n);
		man_free(&m);
		return 0;
	}
	if (S_ISDIR(st.st_mode))
		return cairn_errf(CAIRN_E_NOTFOUND, "no such key (only keys "
				  "below it exist)");
	return cairn_errf(CAIRN_E_CORRUPT, "o/ entry is neither a file nor a "
			  "link");
}

static int file_del(void *impl, const char *key)
{
	struct fstore *fs = impl;
	char target[LINK_BUF], id[ID_LEN + 1], trash[64], rnd[17];
	char parent[PATH_BUF];
	struct stat st;
	int rc;

	if (key_seg_max(key) > SEG_MAX)
		return 0; /* cannot exist: deleting a missing key succeeds */
	if (fstatat(fs->o_fd, key, &st, AT_SYMLINK_NOFOLLOW) != 0) {
		if (errno == ENOENT || errno == ENOTDIR)
			return 0;
		return sys_err("stat o/", key);
	}
	if (S_ISDIR(st.st_mode))
		return 0; /* only keys below it: this key does not exist */
	key_parent(key, parent, sizeof parent);
	if (!S_ISLNK(st.st_mode)) {
		if (unlinkat(fs->o_fd, key, 0) != 0) {
			if (errno == ENOENT)
				return 0;
			return sys_err("unlink o/", key);
		}
		rc = fsync_dir(fs, fs->o_fd, parent);
		if (rc == CAIRN_E_NOTFOUND) {
			/* A concurrent delete of the last sibling pruned the
			 * directory: our entry is gone with it. */
			cairn_err_clear();
			rc = 0;
		}
		prune_parents(fs, key);
		return rc;
	}
	/* Composite: move the link out of sight first, so that no reader
	 * ever finds a link to a half-removed upload (invariant 3). */
	if (read_link(fs->o_fd, key, target, sizeof target) < 0) {
		if (errno == ENOENT)
			return 0;
		return sys_err("readlink o/", key);
	}
	rand_hex(rnd, 8);
	snprintf(trash, sizeof trash, "trash-%s", rnd);
	if (renameat(fs->o_fd, key, fs->tmp_fd, trash) != 0) {
		if (errno == ENOENT)
			return 0;
		return sys_err("rename to tmp/ of o/", key);
	}
	if ((rc = fsync_dir(fs, fs->o_fd, parent)) != 0 &&
	    rc != CAIRN_E_NOTFOUND)
		return rc;
	if ((rc = fsync_fd(fs, fs->tmp_fd, "tmp/")) != 0)
		return rc;
	prune_parents(fs, key);
	if (target_id(target, id))
		retire_upload(fs, id, trash);
	else if (unlinkat(fs->tmp_fd, trash, 0) != 0)
		CAIRN_WARN("objstore", "%s: removing tmp/%s: %s", fs->root,
			   trash, strerror(errno));
	return 0;
}

/* ----------------------------------------------------------------- list */

struct lent {
	char *name; /* sort key: the name, plus '/' for a directory */
	int dir;
};

struct lister {
	struct fstore *fs;
	const char *prefix;
	size_t plen;
	const char *token;
	unsigned max;
	cairn_obj_list *out;
	size_t cap;
};

static int lent_cmp(const void *a, const void *b)
{
	return strcmp(((const struct lent *)a)->name,
		      ((const struct lent *)b)->name);
}

static int starts_with(const char *s, const char *p, size_t plen)
{
	return strncmp(s, p, plen) == 0;
}

static int list_emit(struct lister *L, const char *key)
{
	cairn_obj_list *out = L->out;
	cairn_obj_entry *e;
	struct stat st;
	int rc, changed, tries = 0;

again:
	if (fstatat(L->fs->o_fd, key, &st, AT_SYMLINK_NOFOLLOW) != 0) {
		if (errno == ENOENT)
			return 0; /* deleted meanwhile */
		return sys_err("stat o/", key);
	}
	if (out->n == L->cap) {
		size_t ncap = L->cap ? L->cap * 2 : 64;
		cairn_obj_entry *v = realloc(out->v, ncap * sizeof *v);
		if (!v)
			return cairn_errf(CAIRN_E_NOMEM, "list: out of memory");
		out->v = v;
		L->cap = ncap;
	}
	e = &out->v[out->n];
	memset(e, 0, sizeof *e);
	e->mtime = st.st_mtim.tv_sec;
	if (S_ISLNK(st.st_mode)) {
		struct objstore_file_manifest m;
		if ((rc = man_of_key(L->fs, key, &m, &changed)) != 0) {
			if (rc == CAIRN_E_NOTFOUND)
				return 0;
			if (changed && ++tries < READ_TRIES) {
				cairn_err_clear();
				goto again;
			}
			if (changed)
				rc = changed_too_often();
			char esc[160];
			objstore_key_escape(key, esc, sizeof esc);
			return cairn_err_wrap(rc, "key '%s'", esc);
		}
		e->size = m.total;
		man_free(&m);
	} else if (S_ISREG(st.st_mode)) {
		e->size = (uint64_t)st.st_size;
	} else {
		return 0;
	}
	e->key = strdup(key);
	if (!e->key)
		return cairn_errf(CAIRN_E_NOMEM, "list: out of memory");
	out->n++;
	return 0;
}

/* List directory dir (a key prefix ending in '/', or "" for o/). Stops
 * once max+1 keys were found (one more than a page, to know if there is a
 * next page). */
static int list_dir(struct lister *L, char *dir, size_t dlen)
{
	struct lent *ents = NULL;
	size_t n = 0, cap = 0;
	struct dirent *de;
	DIR *d = NULL;
	int fd, rc = 0;

	if (dlen) {
		dir[dlen - 1] = '\0';
		fd = openat(L->fs->o_fd, dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		dir[dlen - 1] = '/';
	} else {
		fd = openat(L->fs->o_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	}
	if (fd < 0) {
		if (errno == ENOENT || errno == ENOTDIR ||
		    errno == ENAMETOOLONG)
			return 0; /* removed meanwhile, or cannot hold keys */
		return sys_err("open o/", dlen ? dir : ".");
	}
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return sys_err("fdopendir o/", dir);
	}
	while ((de = readdir(d)) != NULL) {
		size_t nl = strlen(de->d_name);
		int isdir;
		char *full;

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (dlen + nl > CAIRN_KEY_MAX)
			continue; /* longer than any key: not ours */
		isdir = de->d_type == DT_DIR;
		if (de->d_type == DT_UNKNOWN) {
			struct stat st;
			if (fstatat(fd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0)
				continue;
			isdir = S_ISDIR(st.st_mode);
		}
		memcpy(dir + dlen, de->d_name, nl);
		dir[dlen + nl] = '/';
		dir[dlen + nl + 1] = '\0';
		full = dir;
		if (isdir) {
			size_t fl = dlen + nl + 1;
			/* Keys below start with full: skip the subtree when the
			 * prefix rules them all out, or when they all sort at
			 * or before the token. */
			if (!starts_with(full, L->prefix,
					 fl < L->plen ? fl : L->plen))
				continue;
			if (L->token && !starts_with(L->token, full, fl) &&
			    strcmp(full, L->token) < 0)
				continue;
		} else {
			full[dlen + nl] = '\0';
			if (!starts_with(full, L->prefix, L->plen))
				continue;
			if (L->token && strcmp(full, L->token) <= 0)
				continue;
		}
		if (n == cap) {
			size_t ncap = cap ? cap * 2 : 32;
			struct lent *v = realloc(ents, ncap * sizeof *v);
			if (!v) {
				rc = cairn_errf(CAIRN_E_NOMEM, "list: out of memory");
				goto out;
			}
			ents = v;
			cap = ncap;
		}
		ents[n].name = malloc(nl + 2);
		if (!ents[n].name) {
			rc = cairn_errf(CAIRN_E_NOMEM, "list: out of memory");
			goto out;
		}
		memcpy(ents[n].name, de->d_name, nl);
		ents[n].name[nl] = isdir ? '/' : '\0';
		ents[n].name[nl + 1] = '\0';
		ents[n].dir = isdir;
		n++;
	}
	closedir(d);
	d = NULL;
	if (n > 1)
		qsort(ents, n, sizeof *ents, lent_cmp);
	for (size_t i = 0; i < n && L->out->n <= L->max; i++) {
		size_t nl = strlen(ents[i].name);
		memcpy(dir + dlen, ents[i].name, nl + 1);
		if (ents[i].dir) {
			rc = list_dir(L, dir, dlen + nl);
		} else if (objstore_key_check(dir) == 0) {
			rc = list_emit(L, dir);
		} else {
			cairn_err_clear(); /* not a key cairn could have made */
		}
		if (rc)
			break;
	}
	dir[dlen] = '\0';
out:
	if (d)
		closedir(d);
	for (size_t i = 0; i < n; i++)
		free(ents[i].name);
	free(ents);
	return rc;
}

static int file_list(void *impl, const char *prefix, const char *token,
		     unsigned max_keys, cairn_obj_list *out)
{
	struct lister L = {.fs = impl, .prefix = prefix,
			   .plen = strlen(prefix), .token = token,
			   .max = max_keys, .out = out};
	char *dir;
	const char *slash = strrchr(prefix, '/');
	size_t dlen = slash ? (size_t)(slash - prefix) + 1 : 0;
	int rc;

	dir = malloc(CAIRN_KEY_MAX + SEG_MAX + 4);
	if (!dir)
		return cairn_errf(CAIRN_E_NOMEM, "list: out of memory");
	/* Start in the deepest directory the prefix names: nothing outside
	 * it can match. */
	memcpy(dir, prefix, dlen);
	dir[dlen] = '\0';
	rc = list_dir(&L, dir, dlen);
	free(dir);
	if (rc)
		return rc;
	if (out->n > max_keys) {
		free(out->v[max_keys].key);
		out->n = max_keys;
		out->next = strdup(out->v[max_keys - 1].key);
		if (!out->next)
			return cairn_errf(CAIRN_E_NOMEM, "list: out of memory");
	}
	return 0;
}

/* ------------------------------------------------------------ multipart */

static int file_mpu_create(void *impl, const char *key,
			   char upload_id[CAIRN_UPLOAD_ID_MAX])
{
	struct fstore *fs = impl;
	char id[ID_LEN + 1], stage[64];
	cairn_obj_src src = {.buf = key, .fd = -1, .len = strlen(key)};
	int fd = -1, dfd = -1, rc;

	if ((rc = key_fits(key)) != 0)
		return rc;
	/* Build the upload directory in tmp/ and rename it into mpu/, so an
	 * upload is visible only whole (with its key file). */
	rand_hex(id, ID_LEN / 2);
	snprintf(stage, sizeof stage, "up-%s", id);
	if (mkdirat(fs->tmp_fd, stage, 0755) != 0)
		return sys_err("mkdir tmp/", stage);
	dfd = openat(fs->tmp_fd, stage, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0) {
		rc = sys_err("open tmp/", stage);
		goto fail;
	}
	fd = openat(dfd, "key", O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0) {
		rc = sys_err("create key file in tmp/", stage);
		goto fail;
	}
	if ((rc = copy_src(fs, &src, fd)) != 0 ||
	    (rc = fsync_fd(fs, fd, "upload key file")) != 0 ||
	    (rc = fsync_fd(fs, dfd, "upload directory")) != 0)
		goto fail;
	if (renameat(fs->tmp_fd, stage, fs->mpu_fd, id) != 0) {
		rc = sys_err("rename into mpu/", id);
		goto fail;
	}
	if ((rc = fsync_fd(fs, fs->mpu_fd, "mpu/")) != 0)
		goto fail_moved;
	close(fd);
	close(dfd);
	snprintf(upload_id, CAIRN_UPLOAD_ID_MAX, "%s", id);
	return 0;
fail_moved:
	snprintf(stage, sizeof stage, "%s", id);
	(void)rm_tree(fs->mpu_fd, stage, 0);
	stage[0] = '\0';
fail:
	if (fd >= 0)
		close(fd);
	if (dfd >= 0)
		close(dfd);
	if (stage[0])
		(void)rm_tree(fs->tmp_fd, stage, 0);
	return rc;
}

static void part_etag(const struct stat *st, char *out, size_t size)
{
	snprintf(out, size, "%llx-%llx-%llx", (unsigned long long)st->st_ino,
		 (unsigned long long)st->st_mtim.tv_sec * 1000000000ULL +
			 (unsigned long long)st->st_mtim.tv_nsec,
		 (unsigned long long)st->st_size);
}

static int file_mpu_part(void *impl, const char *key, const char *upload_id,
			 unsigned part_no, const cairn_obj_src *src,
			 cairn_mpu_part *out)
{
	struct fstore *fs = impl;
	char name[64], rel[ID_LEN + 16];
	struct stat st;
	int rc, lfd = -1;

	/* Shared lock: parts go in side by side, but not while the upload
	 * is completed or aborted (invariant 8). */
	if ((rc = key_fits(key)) != 0 ||
	    (rc = upload_check(fs, key, upload_id, 1, LOCK_SH, &lfd)) != 0)
		return rc;
	if ((rc = tmp_write(fs, "part", src, name, &st)) != 0)
		goto out;
	snprintf(rel, sizeof rel, "%s/part.%05u", upload_id, part_no);
	if (renameat(fs->tmp_fd, name, fs->mpu_fd, rel) != 0) {
		rc = errno == ENOENT
			     ? cairn_errf(CAIRN_E_NOTFOUND, "no such upload %s "
					  "(aborted meanwhile)", upload_id)
			     : sys_err("rename into mpu/", rel);
		unlinkat(fs->tmp_fd, name, 0);
		goto out;
	}
	if ((rc = fsync_dir(fs, fs->mpu_fd, upload_id)) != 0)
		goto out;
	out->number = part_no;
	out->size = src->len;
	part_etag(&st, out->etag, sizeof out->etag);
out:
	if (lfd >= 0)
		close(lfd);
	return rc;
}

static int file_mpu_complete(void *impl, const char *key,
			     const char *upload_id,
			     const cairn_mpu_part *parts, size_t n)
{
	struct fstore *fs = impl;
	char rel[ID_LEN + 16], name[64], lnk[64], target[LINK_BUF], cur[LINK_BUF];
	char rnd[17];
	unsigned char *man = NULL;
	size_t klen = strlen(key), mlen;
	cairn_obj_src src;
	uint64_t total = 0;
	int rc, lfd = -1;

	/* Exclusive lock: no part changes and no abort while the parts are
	 * checked and linked (invariant 8). */
	if ((rc = key_fits(key)) != 0 ||
	    (rc = upload_check(fs, key, upload_id, 0, LOCK_EX, &lfd)) != 0)
		return rc;
	for (size_t i = 0; i < n; i++) {
		struct stat st;
		char etag[CAIRN_ETAG_MAX];

		snprintf(rel, sizeof rel, "%s/part.%05u", upload_id,
			 parts[i].number);
		if (fstatat(fs->mpu_fd, rel, &st, AT_SYMLINK_NOFOLLOW) != 0) {
			if (errno == ENOENT)
				rc = cairn_errf(CAIRN_E_INVAL, "part %u of "
						"upload %s was never uploaded",
						parts[i].number, upload_id);
			else
				rc = sys_err("stat mpu/", rel);
			goto out;
		}
		part_etag(&st, etag, sizeof etag);
		if ((uint64_t)st.st_size != parts[i].size ||
		    strcmp(etag, parts[i].etag) != 0) {
			rc = cairn_errf(CAIRN_E_INVAL, "part %u of upload %s "
					"does not match the list (size %llu, "
					"etag '%.40s'; the stored part has "
					"size %llu, etag %s)",
					parts[i].number, upload_id,
					(unsigned long long)parts[i].size,
					parts[i].etag,
					(unsigned long long)st.st_size, etag);
			goto out;
		}
		total += parts[i].size;
	}
	link_target(key, upload_id, target, sizeof target);
	/* A retried complete whose first try took effect: done already. */
	if (read_link(fs->o_fd, key, cur, sizeof cur) >= 0 &&
	    strcmp(cur, target) == 0)
		goto out;

	mlen = MAN_HDR + klen + n * MAN_REC + 4;
	man = calloc(1, mlen);
	if (!man) {
		rc = cairn_errf(CAIRN_E_NOMEM, "manifest buffer");
		goto out;
	}
	memcpy(man, MAN_MAGIC, 8);
	put_le32(man + 8, MAN_VERSION);
	put_le32(man + 12, (uint32_t)n);
	put_le64(man + 16, total);
	put_le32(man + 24, (uint32_t)klen);
	memcpy(man + 32, upload_id, ID_LEN);
	memcpy(man + MAN_HDR, key, klen);
	for (size_t i = 0; i < n; i++) {
		unsigned char *r = man + MAN_HDR + klen + i * MAN_REC;
		put_le32(r, parts[i].number);
		put_le64(r + 8, parts[i].size);
	}
	put_le32(man + mlen - 4, cairn_crc32c(0, man, mlen - 4));
	src = (cairn_obj_src){.buf = man, .fd = -1, .len = mlen};
	if ((rc = tmp_write(fs, "man", &src, name, NULL)) != 0)
		goto out;
	snprintf(rel, sizeof rel, "%s/manifest", upload_id);
	if (renameat(fs->tmp_fd, name, fs->mpu_fd, rel) != 0) {
		rc = errno == ENOENT
			     ? cairn_errf(CAIRN_E_NOTFOUND, "no such upload %s "
					  "(aborted meanwhile)", upload_id)
			     : sys_err("rename into mpu/", rel);
		unlinkat(fs->tmp_fd, name, 0);
		goto out;
	}
	if ((rc = fsync_dir(fs, fs->mpu_fd, upload_id)) != 0)
		goto out;
	rand_hex(rnd, 8);
	snprintf(lnk, sizeof lnk, "lnk-%s", rnd);
	if (symlinkat(target, fs->tmp_fd, lnk) != 0) {
		rc = sys_err("symlink tmp/", lnk);
		goto out;
	}
	if ((rc = publish(fs, lnk, key, upload_id)) != 0) {
		unlinkat(fs->tmp_fd, lnk, 0);
		goto out;
	}
	/* Parts uploaded but left out of the list are discarded, as S3
	 * does; best effort (they are only wasted space). */
	{
		int dfd = openat(fs->mpu_fd, upload_id,
				 O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
		struct dirent *de;

		if (!d && dfd >= 0)
			close(dfd);
		while (d && (de = readdir(d)) != NULL) {
			unsigned num;
			int used = 0;
			if (sscanf(de->d_name, "part.%5u", &num) != 1)
				continue;
			for (size_t i = 0; i < n && !used; i++)
				used = parts[i].number == num;
			if (!used)
				unlinkat(dfd, de->d_name, 0);
		}
		if (d)
			closedir(d);
	}
out:
	free(man);
	if (lfd >= 0)
		close(lfd);
	return rc;
}

static int file_mpu_abort(void *impl, const char *key, const char *upload_id)
{
	struct fstore *fs = impl;
	char dead[64], rnd[17];
	int rc, lfd = -1;

	if (key_seg_max(key) > SEG_MAX)
		return cairn_errf(CAIRN_E_NOTFOUND, "no such upload");
	/* Exclusive lock: not while a part goes in or the upload is
	 * completed (invariant 8). */
	if ((rc = upload_check(fs, key, upload_id, 1, LOCK_EX, &lfd)) != 0)
		return rc;
	rand_hex(rnd, 8);
	snprintf(dead, sizeof dead, "dead-%s", rnd);
	if (renameat(fs->mpu_fd, upload_id, fs->tmp_fd, dead) != 0) {
		rc = errno == ENOENT
			     ? cairn_errf(CAIRN_E_NOTFOUND, "no such upload %s "
					  "(aborted meanwhile)", upload_id)
			     : sys_err("rename to tmp/ of mpu/", upload_id);
		goto out;
	}
	if ((rc = fsync_fd(fs, fs->mpu_fd, "mpu/")) != 0)
		goto out;
	if (rm_tree(fs->tmp_fd, dead, 0) != 0)
		CAIRN_WARN("objstore", "%s: removing aborted upload %s: %s",
			   fs->root, upload_id, cairn_errmsg());
	cairn_err_clear();
out:
	if (lfd >= 0)
		close(lfd);
	return rc;
}

/* ------------------------------------------------------- open / close */

static void file_limits(void *impl, cairn_objstore_limits *out)
{
	(void)impl;
	out->min_part_size = 5 * MIB;
	out->max_part_size = 5 * GIB;
	out->max_parts = CAIRN_MPU_MAX_PARTS;
	out->max_object_size = 5 * TIB;
	out->max_put_size = 5 * GIB;
	out->link_puts = 1;
	out->put_if_absent = 1;
}

/* Sweep tmp/ (invariant 4).  Called with the store locked exclusively. */
static void sweep(struct fstore *fs)
{
	DIR *d;
	struct dirent *de;
	int fd = dup(fs->tmp_fd);
	unsigned removed = 0;

	if (fd < 0 || !(d = fdopendir(fd))) {
		if (fd >= 0)
			close(fd);
		CAIRN_WARN("objstore", "%s: cannot sweep tmp/: %s", fs->root,
			   strerror(errno));
		return;
	}
	rewinddir(d);
	while ((de = readdir(d)) != NULL) {
		char target[LINK_BUF], id[ID_LEN + 1];

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (strncmp(de->d_name, "trash-", 6) == 0 &&
		    read_link(fs->tmp_fd, de->d_name, target, sizeof target) >= 0 &&
		    target_id(target, id)) {
			/* Still linked from o/ (an overwrite that did not
			 * happen): keep the upload, drop the trash link. */
			char rel[ID_LEN + 8], key[CAIRN_KEY_MAX + 2];
			char want[LINK_BUF], cur[LINK_BUF];
			size_t got = 0;
			int kfd, linked = 0;

			snprintf(rel, sizeof rel, "%s/key", id);
			kfd = openat(fs->mpu_fd, rel, O_RDONLY | O_CLOEXEC);
			if (kfd >= 0) {
				if (uring_read(fs->u, kfd, key, sizeof key - 1, 0,
					       &got) == 0 && got > 0) {
					key[got] = '\0';
					link_target(key, id, want, sizeof want);
					linked = objstore_key_check(key) == 0 &&
						 read_link(fs->o_fd, key, cur,
							   sizeof cur) >= 0 &&
						 strcmp(cur, want) == 0;
				}
				close(kfd);
			}
			if (!linked)
				retire_upload(fs, id, NULL);
		}
		if (rm_tree(fs->tmp_fd, de->d_name, 0) == 0)
			removed++;
	}
	closedir(d);
	cairn_err_clear();
	if (removed) {
		CAIRN_INFO("objstore", "%s: swept %u leftover temporaries",
			   fs->root, removed);
		(void)fsync_fd(fs, fs->tmp_fd, "tmp/");
	}
}

static int mkdir_p(const char *path)
{
	char buf[4096];
	size_t len = strlen(path);

	if (len >= sizeof buf)
		return cairn_errf(CAIRN_E_NAMETOOLONG, "path %s is too long",
				  path);
	memcpy(buf, path, len + 1);
	for (size_t i = 1; i <= len; i++) {
		if (buf[i] != '/' && buf[i] != '\0')
			continue;
		buf[i] = '\0';
		if (mkdir(buf, 0755) != 0 && errno != EEXIST)
			return sys_err("mkdir", buf);
		buf[i] = path[i];
	}
	return 0;
}

/* Make the layout in an empty (or half-made) root. */
static int layout_create(struct fstore *fs)
{
	static const char *const dirs[] = {"o", "tmp", "mpu"};
	char text[64];
	cairn_obj_src src;
	int fd, rc;

	for (size_t i = 0; i < 3; i++)
		if (mkdirat(fs->root_fd, dirs[i], 0755) != 0 && errno != EEXIST)
			return sys_err("mkdir in", fs->root);
	snprintf(text, sizeof text, MARKER_FMT, LAYOUT_VERSION);
	fd = openat(fs->root_fd, MARKER_TMP,
		    O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return sys_err("create marker in", fs->root);
	src = (cairn_obj_src){.buf = text, .fd = -1, .len = strlen(text)};
	rc = copy_src(fs, &src, fd);
	if (!rc)
		rc = fsync_fd(fs, fd, MARKER_TMP);
	close(fd);
	if (rc)
		return rc;
	/* The marker appears last and atomically: a directory with it has the
	 * whole layout. */
	if (renameat(fs->root_fd, MARKER_TMP, fs->root_fd, MARKER) != 0)
		return sys_err("rename marker in", fs->root);
	return fsync_fd(fs, fs->root_fd, fs->root);
}

static int layout_check(struct fstore *fs)
{
	char buf[128];
	size_t got = 0;
	unsigned version;
	int fd, rc, n;

	fd = openat(fs->root_fd, MARKER, O_RDONLY | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT) {
		/* Empty, or made by an interrupted layout_create: create. */
		DIR *d;
		struct dirent *de;
		int dfd = dup(fs->root_fd), foreign = 0;

		if (dfd < 0 || !(d = fdopendir(dfd))) {
			if (dfd >= 0)
				close(dfd);
			return sys_err("read directory", fs->root);
		}
		while ((de = readdir(d)) != NULL) {
			const char *nm = de->d_name;
			if (!strcmp(nm, ".") || !strcmp(nm, "..") ||
			    !strcmp(nm, "o") || !strcmp(nm, "tmp") ||
			    !strcmp(nm, "mpu") || !strcmp(nm, MARKER_TMP))
				continue;
			foreign = 1;
		}
		closedir(d);
		if (foreign)
			return cairn_errf(CAIRN_E_INVAL, "%s is not empty and is "
					  "not a cairn object store (it has no "
					  "%s marker); refusing to use it",
					  fs->root, MARKER);
		return layout_create(fs);
	}
	if (fd < 0)
		return sys_err("open", MARKER);
	rc = uring_read(fs->u, fd, buf, sizeof buf - 1, 0, &got);
	close(fd);
	if (rc)
		return cairn_err_wrap(rc, "read %s/%s", fs->root, MARKER);
	buf[got] = '\0';
	n = -1;
	if (sscanf(buf, "cairn objstore layout %u\n%n", &version, &n) != 1 ||
	    n != (int)got)
		return cairn_errf(CAIRN_E_CORRUPT, "%s/%s is malformed (want "
				  "'cairn objstore layout N')", fs->root,
				  MARKER);
	if (version != LAYOUT_VERSION)
		return cairn_errf(CAIRN_E_VERSION, "%s has object store layout "
				  "version %u; this build reads version %u",
				  fs->root, version, LAYOUT_VERSION);
	return 0;
}

static void file_close(void *impl)
{
	struct fstore *fs = impl;

	if (!fs)
		return;
	if (fs->lock_fd >= 0)
		close(fs->lock_fd); /* drops the flock */
	if (fs->o_fd >= 0)
		close(fs->o_fd);
	if (fs->tmp_fd >= 0)
		close(fs->tmp_fd);
	if (fs->mpu_fd >= 0)
		close(fs->mpu_fd);
	if (fs->root_fd >= 0)
		close(fs->root_fd);
	if (fs->own_u)
		uring_close(fs->u);
	free(fs->root);
	free(fs);
}

static int open_sub(struct fstore *fs, const char *name, int *out)
{
	*out = openat(fs->root_fd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (*out < 0)
		return cairn_errf(errno == ENOENT ? CAIRN_E_CORRUPT
						  : cairn_rc_from_errno(errno),
				  "object store %s lacks its %s/ directory: %s",
				  fs->root, name, strerror(errno));
	return 0;
}

static int file_open(const char *url, const cairn_objstore_opts *opts,
		     void **impl)
{
	struct fstore *fs;
	const char *path = url + strlen("file://");
	size_t len;
	int rc;

	*impl = NULL;
	len = strlen(path);
	while (len > 1 && path[len - 1] == '/')
		len--;
	if (path[0] != '/' || len >= 4000)
		return cairn_errf(CAIRN_E_INVAL, "a file:// URL needs an "
				  "absolute path, as file:///abs/dir");
	fs = calloc(1, sizeof *fs);
	if (!fs)
		return cairn_errf(CAIRN_E_NOMEM, "out of memory");
	fs->root_fd = fs->o_fd = fs->tmp_fd = fs->mpu_fd = fs->lock_fd = -1;
	fs->root = strndup(path, len);
	if (!fs->root) {
		free(fs);
		return cairn_errf(CAIRN_E_NOMEM, "out of memory");
	}
	if (opts->uring) {
		fs->u = opts->uring;
	} else {
		if ((rc = uring_open(NULL, &fs->u)) != 0)
			goto fail;
		fs->own_u = 1;
	}
	if ((rc = mkdir_p(fs->root)) != 0)
		goto fail;
	fs->root_fd = open(fs->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fs->root_fd < 0) {
		rc = sys_err("open", fs->root);
		goto fail;
	}
	if ((rc = layout_check(fs)) != 0)
		goto fail;
	if ((rc = open_sub(fs, "o", &fs->o_fd)) != 0 ||
	    (rc = open_sub(fs, "tmp", &fs->tmp_fd)) != 0 ||
	    (rc = open_sub(fs, "mpu", &fs->mpu_fd)) != 0)
		goto fail;
	fs->lock_fd = openat(fs->root_fd, MARKER, O_RDONLY | O_CLOEXEC);
	if (fs->lock_fd < 0) {
		rc = sys_err("open", MARKER);
		goto fail;
	}
	/* Only the sole user of a store may sweep: another handle's puts
	 * have their temporaries in tmp/. */
	if (flock(fs->lock_fd, LOCK_EX | LOCK_NB) == 0)
		sweep(fs);
	if (flock(fs->lock_fd, LOCK_SH) != 0) {
		rc = sys_err("lock", MARKER);
		goto fail;
	}
	*impl = fs;
	return 0;
fail:
	file_close(fs);
	return rc;
}

const struct objstore_backend objstore_file = {
	.scheme = "file",
	.open = file_open,
	.close = file_close,
	.limits = file_limits,
	.put = file_put,
	.put_if_absent = file_put_if_absent,
	.get = file_get,
	.head = file_head,
	.del = file_del,
	.del_batch = NULL,
	.list = file_list,
	.mpu_create = file_mpu_create,
	.mpu_part = file_mpu_part,
	.mpu_complete = file_mpu_complete,
	.mpu_abort = file_mpu_abort,
};
