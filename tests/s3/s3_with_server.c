/*
 * s3_with_server.c - run a program against a fresh s3rver on loopback.
 *
 *   s3_with_server PROGRAM [ARGS...]
 *
 * Starts s3rver (tests/s3/server/run.js) on a free port, points the AWS
 * environment at it (AWS_ENDPOINT_URL_S3, s3rver's credentials,
 * CAIRN_S3_ALLOW_HTTP=1), sets CAIRN_TEST_STORE_URL=s3://cairn-test,
 * runs PROGRAM and returns its exit status (77 passes through as a skip),
 * then stops the server.  CTest runs tests/objstore's conformance suite
 * through it, unchanged.
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "s3_harness.h"

int main(int argc, char **argv)
{
	s3h h;
	pid_t pid;
	int st = 0;

	if (argc < 2) {
		fprintf(stderr, "usage: s3_with_server PROGRAM [ARGS...]\n");
		return 2;
	}
	s3h_start(&h, 0);
	s3h_env(&h, h.port);
	/* No prefix: the suite stores 1024-byte keys, S3's limit, which a
	 * store prefix would push past it. */
	setenv("CAIRN_TEST_STORE_URL", "s3://" S3H_BUCKET, 1);
	fflush(stdout);
	pid = fork();
	if (pid < 0) {
		perror("fork");
		s3h_stop(&h);
		return 1;
	}
	if (pid == 0) {
		execv(argv[1], argv + 1);
		perror("exec");
		_exit(127);
	}
	while (waitpid(pid, &st, 0) < 0)
		;
	s3h_stop(&h);
	if (WIFEXITED(st))
		return WEXITSTATUS(st);
	fprintf(stderr, "%s died of signal %d\n", argv[1], WTERMSIG(st));
	return 1;
}
