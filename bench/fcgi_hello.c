/*
 * fcgi_hello: the transport ceiling for bench/run.
 *
 *   fcgi_hello SOCKET WORKERS [prompt-close]
 *
 * A minimal libfcgi responder pool: binds a unix socket, forks WORKERS
 * children that each accept FastCGI requests on it and answer every one
 * with the same small JSON body and the headers keygate sends, so that the
 * bytes on the wire match a GET /api/me reply. Nothing is parsed, looked up
 * or logged: what is left is the cost of lighttpd and FastCGI.
 *
 * With prompt-close, each connection is closed the way keygate closes one
 * on a unix socket (src/fcgi.c, fcgi_close_promptly): without libfcgi's
 * shutdown and wait for the web server to hang up first, when no input is
 * left. That pool is the ceiling of keygate's own work alone; the plain
 * one is the minimal responder issue 6 names.
 *
 * The master waits for SIGTERM or SIGINT, then stops the children and
 * removes the socket. Children ask for SIGTERM when the master dies.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fcgiapp.h>

#define MAX_WORKERS 256

/* What keygate answers GET /api/me with, give or take a digit. */
static const char reply[] =
    "Status: 200 OK\r\n"
    "Content-Type: application/json\r\n"
    "X-Content-Type-Options: nosniff\r\n"
    "Cache-Control: no-store\r\n"
    "\r\n"
    "{\"success\":true,\"user_id\":1234,\"username\":\"bench01234\","
    "\"email\":null,\"created_at\":\"2025-01-01T00:00:00Z\",\"scopes\":[\"*\"]}";

static volatile sig_atomic_t stop;

static void
on_signal(int sig)
{
	(void)sig;
	stop = 1;
	FCGX_ShutdownPending();
}

static int prompt_close;

static int
serve(int fd)
{
	FCGX_Request req;
	int c;

	if (prctl(PR_SET_PDEATHSIG, SIGTERM) != 0)
		return 1;
	if (getppid() == 1)
		return 1;
	if (FCGX_InitRequest(&req, fd, 0) != 0)
		return 1;
	while (!stop && FCGX_Accept_r(&req) >= 0) {
		FCGX_PutStr(reply, (int)sizeof(reply) - 1, req.out);
		/* As keygate: the end of the input read (lighttpd sent it with the parameters), then close. */
		if (prompt_close) {
			while ((c = FCGX_GetChar(req.in)) != EOF)
				;
			if (FCGX_GetError(req.in) == 0)
				(void)FCGX_Detach(&req);
		}
		FCGX_Finish_r(&req);
	}
	return 0;
}

int
main(int argc, char *argv[])
{
	pid_t pids[MAX_WORKERS];
	struct sigaction sa;
	sigset_t block, old;
	char *end;
	long n;
	int fd, i;

	if (argc == 4 && strcmp(argv[3], "prompt-close") == 0) {
		prompt_close = 1;
		argc--;
	}
	if (argc != 3) {
		fprintf(stderr, "usage: fcgi_hello SOCKET WORKERS [prompt-close]\n");
		return 2;
	}
	n = strtol(argv[2], &end, 10);
	if (*argv[2] == '\0' || *end != '\0' || n < 1 || n > MAX_WORKERS) {
		fprintf(stderr, "fcgi_hello: WORKERS must be 1..%d\n", MAX_WORKERS);
		return 2;
	}
	if (FCGX_Init() != 0) {
		fprintf(stderr, "fcgi_hello: FCGX_Init failed\n");
		return 1;
	}
	unlink(argv[1]);
	if ((fd = FCGX_OpenSocket(argv[1], 128)) < 0) {
		fprintf(stderr, "fcgi_hello: cannot listen on %s\n", argv[1]);
		return 1;
	}
	/* lighttpd may run as another user. */
	if (chmod(argv[1], 0666) != 0) {
		fprintf(stderr, "fcgi_hello: chmod %s: %s\n", argv[1], strerror(errno));
		return 1;
	}

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	/* Blocked until sigsuspend: a signal cannot slip in before the wait. */
	sigemptyset(&block);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGINT);
	sigprocmask(SIG_BLOCK, &block, &old);

	for (i = 0; i < n; i++) {
		pids[i] = fork();
		if (pids[i] < 0) {
			fprintf(stderr, "fcgi_hello: fork: %s\n", strerror(errno));
			n = i;
			stop = 1;
			break;
		}
		if (pids[i] == 0) {
			sigprocmask(SIG_SETMASK, &old, NULL);
			_exit(serve(fd));
		}
	}
	while (!stop)
		sigsuspend(&old);
	for (i = 0; i < n; i++)
		kill(pids[i], SIGKILL);
	for (i = 0; i < n; i++)
		waitpid(pids[i], NULL, 0);
	unlink(argv[1]);
	return 0;
}
