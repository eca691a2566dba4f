#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fcgiapp.h>

#include "conf.h"
#include "crypto.h"
#include "fcgi.h"
#include "http.h"
#include "json.h"
#include "log.h"
#include "router.h"
#include "scoreboard.h"
#include "tokencheck.h"

/*
 * libfcgi reads a request's parameters inside FCGX_Accept_r, before the
 * worker can mark itself busy for the master's request_timeout. A client
 * that stalls there would hold the worker forever, so a once-a-second
 * tick watches the connection libfcgi has open outside fcgi_handle() and
 * shuts it down after request_timeout; libfcgi then drops it and accepts
 * the next one.
 *
 * The tick runs in a thread of its own (SIGEV_THREAD; glibc's timer threads
 * block every signal), not as a signal to the worker: a signal interrupts
 * the select() with which libfcgi waits for a new connection's first bytes,
 * and libfcgi then drops that connection unanswered (the web server answers
 * 5xx). shutdown() from the tick's thread wakes a read blocked in this one.
 * A connection is told from the next one on the same fd number by
 * watch_done, which the worker bumps as each connection's request ends.
 */
static FCGX_Request *watch_req;
static atomic_int watch_busy;
static atomic_ulong watch_done;
/* The tick threads' own (one a second; atomic should two ever overlap). */
static atomic_ulong watch_seen_done;
static atomic_int watch_fd = -1;
static atomic_int watch_ticks;
static int watch_limit = 30;

static void
fcgi_on_tick(union sigval unused)
{
	/* ipcFd is libfcgi's, written by the worker: one aligned int, read once. */
	int fd = *(volatile int *)&watch_req->ipcFd;
	unsigned long done = atomic_load(&watch_done);

	(void)unused;
	/* Only one connection, idle outside fcgi_handle() at every tick, counts. */
	if (fd < 0 || atomic_load(&watch_busy) || fd != atomic_load(&watch_fd) ||
	    done != atomic_load(&watch_seen_done)) {
		atomic_store(&watch_fd, fd);
		atomic_store(&watch_seen_done, done);
		atomic_store(&watch_ticks, 0);
		return;
	}
	/* Checked again last: the worker may have moved on since fd was read. */
	if (atomic_fetch_add(&watch_ticks, 1) + 1 > watch_limit &&
	    atomic_load(&watch_done) == done && !atomic_load(&watch_busy)) {
		(void)shutdown(fd, SHUT_RDWR);
		atomic_store(&watch_ticks, 0);
	}
}

static int
fcgi_watch_start(FCGX_Request *r, int limit)
{
	struct sigevent sev;
	struct itimerspec its = { { 1, 0 }, { 1, 0 } };
	timer_t timer;

	watch_limit = limit;
	watch_req = r;
	memset(&sev, 0, sizeof(sev));
	sev.sigev_notify = SIGEV_THREAD;
	sev.sigev_notify_function = fcgi_on_tick;
	if (timer_create(CLOCK_MONOTONIC, &sev, &timer) != 0)
		return -1;
	return timer_settime(timer, 0, &its, NULL);
}

enum kg_err
fcgi_init(void)
{
	return FCGX_Init() == 0 ? KG_OK : KG_ESYS;
}

void
fcgi_shutdown_pending(void)
{
	FCGX_ShutdownPending();
}


static long
fcgi_content_length(const char *s)
{
	char *end;
	long v;

	if (s == NULL || *s == '\0')
		return -1;
	if (*s < '0' || *s > '9')
		return -2;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < 0)
		return -2;
	return v;
}

/* The request parameters keygate reads, in one pass over them (see fcgi_params). */
/* clang-format off */
#define FCGI_PARAMS(X) \
	X(REQUEST_METHOD) X(QUERY_STRING) X(REMOTE_ADDR) X(CONTENT_TYPE) \
	X(CONTENT_LENGTH) X(REQUEST_URI) X(SCRIPT_NAME) X(PATH_INFO) X(FCGI_ROLE) \
	X(HTTP_AUTHORIZATION) X(HTTP_KEY) X(HTTP_SECRET) X(HTTP_USER_AGENT) \
	X(HTTP_X_FORWARDED_FOR) X(HTTP_COOKIE) X(HTTP_ORIGIN) X(HTTP_REFERER) \
	X(HTTP_X_REQUESTED_WITH) X(HTTP_ACCESS_CONTROL_REQUEST_METHOD) \
	X(KEYGATE_REQUIRE_SCOPE) X(KEYGATE_REQUIRE_SCOPE_READ) X(KEYGATE_REQUIRE_SCOPE_WRITE)
/* clang-format on */

#define FCGI_PARAM_ENUM(n) P_##n,
enum fcgi_param { FCGI_PARAMS(FCGI_PARAM_ENUM) P__MAX };

#define FCGI_PARAM_NAME(n) { #n, sizeof(#n) - 1 },
static const struct {
	const char *name;
	size_t len;
} fcgi_param_names[P__MAX] = { FCGI_PARAMS(FCGI_PARAM_NAME) };

/*
 * v[i] = the value of parameter i, or NULL; the first of duplicates wins,
 * as with FCGX_GetParam. One pass: FCGX_GetParam scans every parameter
 * with strncmp for each name asked: several hundred calls per request for 19
 * names, the largest cost of a cached token check after the transport.
 */
static void
fcgi_params(char **envp, const char *v[P__MAX])
{
	const char *eq;
	size_t n;
	int i;

	for (i = 0; i < P__MAX; i++)
		v[i] = NULL;
	for (; envp != NULL && *envp != NULL; envp++) {
		if ((eq = strchr(*envp, '=')) == NULL)
			continue;
		n = (size_t)(eq - *envp);
		for (i = 0; i < P__MAX; i++)
			if (fcgi_param_names[i].len == n && v[i] == NULL &&
			    memcmp(*envp, fcgi_param_names[i].name, n) == 0) {
				v[i] = eq + 1;
				break;
			}
	}
}

/* Fill req from the FastCGI parameters; KG_EINPUT/KG_ETOOLARGE/KG_ENOTFOUND on bad input. */
static enum kg_err
fcgi_read_params(FCGX_Request *r, const struct conf *c, struct request *req)
{
	const char *v[P__MAX];
	const char *role;

	fcgi_params(r->envp, v);
	req->method_name = v[P_REQUEST_METHOD];
	req->method = http_method_parse(req->method_name);
	req->query = v[P_QUERY_STRING];
	req->remote_addr = v[P_REMOTE_ADDR];
	req->content_type = v[P_CONTENT_TYPE];
	req->authorization = v[P_HTTP_AUTHORIZATION];
	req->hdr_key = v[P_HTTP_KEY];
	req->hdr_secret = v[P_HTTP_SECRET];
	req->user_agent = v[P_HTTP_USER_AGENT];
	req->forwarded_for = v[P_HTTP_X_FORWARDED_FOR];
	req->cookie = v[P_HTTP_COOKIE];
	req->origin = v[P_HTTP_ORIGIN];
	req->referer = v[P_HTTP_REFERER];
	req->requested_with = v[P_HTTP_X_REQUESTED_WITH];
	req->preflight_method = v[P_HTTP_ACCESS_CONTROL_REQUEST_METHOD];
	/* Set by the web server's configuration per location; no header can set them. */
	req->require_scope = v[P_KEYGATE_REQUIRE_SCOPE];
	req->require_scope_read = v[P_KEYGATE_REQUIRE_SCOPE_READ];
	req->require_scope_write = v[P_KEYGATE_REQUIRE_SCOPE_WRITE];
	role = v[P_FCGI_ROLE];
	req->authorizer = role != NULL && strcmp(role, "AUTHORIZER") == 0;
	req->content_length = fcgi_content_length(v[P_CONTENT_LENGTH]);
	if (http_route_path(req, v[P_REQUEST_URI], v[P_SCRIPT_NAME], v[P_PATH_INFO],
		c->base_path) != KG_OK)
		return KG_ENOTFOUND;
	if (req->content_length == -2)
		return KG_EINPUT;
	if (req->authorizer)
		return KG_OK;
	/* Refuse an oversized body before reading a byte of it. */
	if (req->content_length > c->max_body)
		return KG_ETOOLARGE;
	return KG_OK;
}

static enum kg_err
fcgi_read_body(FCGX_Request *r, struct request *req)
{
	size_t want, got = 0;

	if (req->content_length <= 0)
		return KG_OK;
	want = (size_t)req->content_length;
	req->body = malloc(want + 1);
	if (req->body == NULL)
		return KG_ENOMEM;
	while (got < want) {
		int n = FCGX_GetStr(req->body + got, (int)(want - got), r->in);
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	req->body_len = got;
	req->body[got] = '\0';
	/* A body shorter than its Content-Length is a broken request, not a short one. */
	return got == want ? KG_OK : KG_EINPUT;
}

static int
fcgi_put(FCGX_Stream *out, const char *s, size_t len)
{
	return FCGX_PutStr(s, (int)len, out) == (int)len ? 0 : -1;
}

static int
fcgi_header(FCGX_Stream *out, const char *name, const char *value)
{
	if (fcgi_put(out, name, strlen(name)) != 0 || fcgi_put(out, ": ", 2) != 0 ||
	    fcgi_put(out, value, strlen(value)) != 0 || fcgi_put(out, "\r\n", 2) != 0)
		return -1;
	return 0;
}

/*
 * Every reply but an allowing authorizer's: JSON in UTF-8, never sniffed,
 * never cached (Pragma for HTTP/1.0 caches, which ignore Cache-Control:
 * a login's reply carries a token).
 */
#define FCGI_JSON_HEADERS "Content-Type: application/json; charset=utf-8\r\n" \
	"X-Content-Type-Options: nosniff\r\n" "Cache-Control: no-store\r\n" \
	"Pragma: no-cache\r\n"

/* Write status, headers and body. Every response names its status explicitly. */
static void
fcgi_respond(FCGX_Request *r, struct response *resp)
{
	/* Replies are small: one static buffer, json_render's heap copy past it. */
	static char reply[8192];
	char status[64];
	const char *line, *text = NULL;
	char *body = NULL;
	size_t len = 0, i;
	enum kg_err err;
	int n;

	if (resp->json != NULL) {
		err = json_render_buf(resp->json, reply, sizeof(reply), &len);
		if (err == KG_OK)
			text = reply;
		else if (err == KG_ETOOLARGE && json_render(resp->json, &body, &len) == KG_OK)
			text = body;
		else {
			json_free(resp->json);
			resp->json = NULL;
			resp->fields = NULL;
			router_error(resp, KG_ENOMEM);
			if (json_render_buf(resp->json, reply, sizeof(reply), &len) == KG_OK)
				text = reply;
		}
	}
	if ((line = http_status_line(resp->status)) == NULL) {
		n = snprintf(status, sizeof(status), "%d Unknown", resp->status);
		if (n < 0 || (size_t)n >= sizeof(status))
			goto out;
		line = status;
	}
	if (fcgi_header(r->out, "Status", line) != 0)
		goto out;
	/* mod_fcgid keeps an allowing authorizer's headers for the protected file's reply. */
	if (!resp->bare && fcgi_put(r->out, FCGI_JSON_HEADERS, sizeof(FCGI_JSON_HEADERS) - 1) != 0)
		goto out;
	for (i = 0; i < resp->nheaders; i++)
		if (fcgi_header(r->out, resp->headers[i].name, resp->headers[i].value) != 0)
			goto out;
	if (fcgi_put(r->out, "\r\n", 2) != 0)
		goto out;
	if (text != NULL && !resp->no_body && fcgi_put(r->out, text, len) != 0)
		goto out;
out:
	/* A login's reply carries a token secret. */
	if (text == reply)
		crypto_wipe(reply, len);
	if (body != NULL) {
		crypto_wipe(body, len);
		free(body);
	}
}

/* Handle one request; nonzero when its body was read whole (only the end-of-input record may be left). */
static int
fcgi_handle(FCGX_Request *r, const struct conf *c)
{
	struct request req;
	struct response resp;
	enum kg_err err;
	long long start = kg_monotonic_ms(), ms;
	int read_whole;

	memset(&req, 0, sizeof(req));
	response_init(&resp);
	scoreboard_request_begin(start);
	err = fcgi_read_params(r, c, &req);
	/* An authorizer gets the original request's parameters but never its body. */
	if (req.authorizer && (err == KG_ETOOLARGE || err == KG_EINPUT))
		err = KG_OK;
	else if (err == KG_OK)
		err = fcgi_read_body(r, &req);
	if (err != KG_OK)
		router_error(&resp, err);
	else
		router_handle(&req, &resp);
	fcgi_respond(r, &resp);
	ms = kg_monotonic_ms() - start;
	scoreboard_request_end(ms >= c->slow_request);
	/* Never the query string or a header: they may carry credentials. */
	if (ms >= c->slow_request)
		log_warnx("slow request: %s %s %d %lldms", req.method_name ? req.method_name : "-",
		    req.path, resp.status, ms);
	else
		log_info("%s %s %d %lldms", req.method_name ? req.method_name : "-", req.path,
		    resp.status, ms);
	/* -1: no Content-Length, no body; -2: a broken one, whose body is left. */
	read_whole = req.content_length == 0 || req.content_length == -1 ||
	    (req.content_length > 0 && req.body_len == (size_t)req.content_length);
	request_free(&req);
	response_free(&resp);
	json_arena_reset();
	return read_whole;
}

/*
 * libfcgi ends every connection with shutdown(SHUT_WR) and then waits, up
 * to 2 s, for the web server to close its end, reading whatever it still
 * sends: on TCP, closing with input unread sends a reset, which can make
 * the peer drop the reply. On a unix socket what was sent is always read
 * (closing with input unread only makes the peer's next read after it
 * fail), so there, once the input is read to its end, the worker closes
 * at once and takes the next connection, instead of sleeping until the web
 * server has read the reply. FCGX_Detach is what makes FCGX_Finish_r close
 * without the shutdown and the wait (libfcgi 2.4: OS_IpcClose(fd,
 * !detached)); FCGX_Attach undoes it for the next request on a connection
 * the web server keeps (FCGI_KEEP_CONN).
 *
 * Only a responder whose body was read whole: a request answered before
 * its body was read (413, a broken Content-Length) keeps the lingering
 * close, and so do an authorizer's and a filter's. The reply goes out
 * first; then the end of the input is read: from lighttpd it came with the
 * parameters and is in libfcgi's buffer already, other clients send it a
 * moment later (closing before it came would make their write of it fail),
 * and one that never sends it is cut off by the tick (fcgi_on_tick).
 */
#define FCGI_ROLE_RESPONDER 1   /* FastCGI 1.0, section 5.1 (fastcgi.h clashes with our names) */

static void
fcgi_close_promptly(FCGX_Request *r, int unix_socket, int read_whole)
{
	int i;

	if (!unix_socket || !read_whole || r->role != FCGI_ROLE_RESPONDER || r->ipcFd < 0)
		return;
	/* The reply and END_REQUEST, as FCGX_Finish_r would write them (it closes each once). */
	if (FCGX_FClose(r->err) != 0 || FCGX_FClose(r->out) != 0)
		return;
	/* A few bytes more than the body announced are read and dropped; more, and we linger. */
	for (i = 0; i < 64; i++) {
		if (FCGX_GetChar(r->in) == EOF) {
			if (FCGX_GetError(r->in) == 0)
				(void)FCGX_Detach(r);
			return;
		}
	}
}

/* Is fd a unix-domain socket? */
static int
fcgi_is_unix(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	return getsockname(fd, (struct sockaddr *)&ss, &len) == 0 && ss.ss_family == AF_UNIX;
}

/*
 * Take the next connection with our own accept() and let libfcgi read its
 * request as on a connection it kept open. libfcgi's accept goes on to
 * wait for the connection's first bytes in a select() that any signal
 * interrupts, and then drops the connection unanswered: a SIGTERM retiring
 * this worker at that moment (a reload, a drain) cost the web server a
 * 5xx. accept() is restarted after the SIGTERM handler (SA_RESTART) and
 * fails once the handler has closed fd 0, so an idle worker still leaves.
 * The stop signals (term) are let in only while accept() waits: once a
 * connection is accepted they wait until its request is answered, since
 * libfcgi refuses to read at all once told to shut down, and a signal
 * between accept() and its first read dropped the connection just as
 * well. A client slow with its first bytes is cut off by the tick
 * (fcgi_on_tick), after request_timeout. On a connection the web server
 * keeps open, a stop may end the wait for its next request: the server
 * then opens a new connection to another worker.
 */
static int
fcgi_accept(FCGX_Request *r, const sigset_t *term)
{
	int fd, rc;

	(void)sigprocmask(SIG_UNBLOCK, term, NULL);
	if (r->ipcFd >= 0) {
		rc = FCGX_Accept_r(r);
		(void)sigprocmask(SIG_BLOCK, term, NULL);
		return rc;
	}
	fd = accept4(r->listen_sock, NULL, NULL, SOCK_CLOEXEC);
	rc = fd < 0 ? -errno : 0;
	(void)sigprocmask(SIG_BLOCK, term, NULL);
	if (fd < 0)
		return rc;
	r->ipcFd = fd;
	/* So that FCGX_Accept_r keeps it; BEGIN_REQUEST's flags set this anew. */
	r->keepConnection = 1;
	return FCGX_Accept_r(r);
}

long
fcgi_serve(const struct conf *c, volatile sig_atomic_t *stop)
{
	/* Static: the tick's thread may look at it until the process ends. */
	static FCGX_Request r;
	sigset_t term;
	long served = 0;
	int unix_socket = fcgi_is_unix(0);

	sigemptyset(&term);
	sigaddset(&term, SIGTERM);
	sigaddset(&term, SIGINT);
	sigaddset(&term, SIGHUP);
	if (FCGX_InitRequest(&r, 0, FCGI_FAIL_ACCEPT_ON_INTR) != 0) {
		log_warnx("FCGX_InitRequest failed");
		return 0;
	}
	if (fcgi_watch_start(&r, c->request_timeout) != 0)
		log_warn("cannot start the request-parameter watchdog");
	while (!*stop && (c->max_requests == 0 || served < c->max_requests)) {
		int rc, read_whole;

		rc = *stop ? -1 : fcgi_accept(&r, &term);
		if (rc < 0) {
			if (*stop)
				break;
			/* EAGAIN: the listening socket's receive timeout passed with no client. */
			/* ECONNABORTED, EPROTO: a client gone before it was accepted. */
			if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK ||
			    rc == -EAGAIN || rc == -EWOULDBLOCK || rc == -EINTR ||
			    rc == -ECONNABORTED || rc == -EPROTO)
				continue;
			log_warnx("accept failed (%d)", rc);
			break;
		}
		(void)FCGX_Attach(&r);
		atomic_store(&watch_busy, 1);
		read_whole = fcgi_handle(&r, c);
		atomic_store(&watch_busy, 0);
		fcgi_close_promptly(&r, unix_socket, read_whole);
		FCGX_Finish_r(&r);
		atomic_fetch_add(&watch_done, 1);
		/* A due last_used_at write or refresh: the client does not wait for it. */
		tokencheck_after_response();
		served++;
	}
	FCGX_Free(&r, 1);
	return served;
}
