/* test_err - error codes, names, messages and context across threads. */
#include <pthread.h>

#include "t.h"
#include "cairn/err.h"

static void *other_thread(void *arg)
{
	(void)arg;
	/* A fresh thread starts with no context, and its errors stay its own. */
	CHECK(cairn_errmsg()[0] == '\0');
	cairn_errf(CAIRN_E_IO, "thread-local failure");
	return NULL;
}

int main(void)
{
	pthread_t th;

	/* Every code has a distinct name and a non-empty message. */
	for (int i = 0; i < CAIRN_E__COUNT; i++) {
		CHECK(strlen(cairn_strerror(i)) > 0);
		CHECK(strncmp(cairn_rc_name(i), "CAIRN_", 6) == 0);
		for (int j = 0; j < i; j++)
			CHECK(strcmp(cairn_rc_name(i), cairn_rc_name(j)) != 0);
	}
	CHECK(strcmp(cairn_strerror(9999), "unknown error code") == 0);
	CHECK(strcmp(cairn_strerror(-1), "unknown error code") == 0);
	/* Codes are ABI: their numbers never change. */
	CHECK(CAIRN_E_NOMEM == 1 && CAIRN_E_STORE == 8 && CAIRN_E_MLINK == 30 && CAIRN_E_NXIO == 31);

	CHECK_RC(cairn_errf(CAIRN_E_NOTFOUND, "open %s", "/x/y"), CAIRN_E_NOTFOUND);
	CHECK(strcmp(cairn_errmsg(), "open /x/y") == 0);
	CHECK_RC(cairn_err_wrap(CAIRN_E_NOTFOUND, "segment %d", 7), CAIRN_E_NOTFOUND);
	CHECK(strcmp(cairn_errmsg(), "segment 7: open /x/y") == 0);

	/* Wrapping with no message falls back to the code's text. */
	cairn_err_clear();
	cairn_err_wrap(CAIRN_E_NOSPC, "put 'k'");
	CHECK(strcmp(cairn_errmsg(), "put 'k': no space left") == 0);

	/* Long messages are cut, never overflow. */
	char big[4000];
	memset(big, 'a', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	cairn_errf(CAIRN_E_IO, "%s", big);
	CHECK(strlen(cairn_errmsg()) < 1024);
	cairn_err_wrap(CAIRN_E_IO, "%s", big);
	CHECK(strlen(cairn_errmsg()) < 1024);

	char copy[16];
	cairn_errf(CAIRN_E_IO, "0123456789abcdefghij");
	cairn_err_copy(copy, sizeof copy);
	CHECK(strcmp(copy, "0123456789abcde") == 0);
	CHECK_RC(cairn_err_set(CAIRN_E_STORE, "from a worker"), CAIRN_E_STORE);
	CHECK(strcmp(cairn_errmsg(), "from a worker") == 0);

	REQUIRE(pthread_create(&th, NULL, other_thread, NULL) == 0);
	pthread_join(th, NULL);
	CHECK(strcmp(cairn_errmsg(), "from a worker") == 0);

	/* errno translation round-trips for the POSIX codes FUSE needs. */
	int errs[] = {ENOENT, EEXIST, ENOTDIR, EISDIR, ENOTEMPTY, ENAMETOOLONG,
		      ENODATA, EXDEV, ELOOP, EROFS, EINVAL, ENOSPC, EBADF,
		      EFBIG, EMLINK, ERANGE, EAGAIN, ENOMEM, EBUSY, ENXIO};
	for (size_t i = 0; i < sizeof errs / sizeof errs[0]; i++)
		CHECK(cairn_rc_to_errno(cairn_rc_from_errno(errs[i])) == errs[i]);
	CHECK(cairn_rc_to_errno(CAIRN_E_CORRUPT) == EIO);
	CHECK(cairn_rc_to_errno(CAIRN_E_STORE) == EIO);
	CHECK(cairn_rc_from_errno(EIO) == CAIRN_E_IO);
	CHECK(cairn_rc_to_errno(0) == 0);
	return t_done();
}
