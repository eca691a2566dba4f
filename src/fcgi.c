#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fcgiapp.h>

#include "conf.h"
#include "fcgi.h"
#include "http.h"
#include "json.h"
#include "log.h"
#include "router.h"
#include "scoreboard.h"

/*
 * libfcgi reads a request's parameters inside FCGX_Accept_r, before the
 * worker can mark itself busy for the master's request_timeout. A client
 * that stalls there would hold the worker forever, so a once-a-second
 * tick watches the connection libfcgi has open outside fcgi_handle() and
 * shuts it down after request_timeout; libfcgi then drops it and accepts
 * the next one.
 */
static FCGX_Request *volatile watch_req;
static volatile sig_atomic_t watch_busy;
static volatile sig_atomic_t watch_ticks;
static int watch_limit = 30;

static void
fcgi_on_tick(int sig)
{
	FCGX_Request *r = watch_req;
	int fd = r != NULL ? r->ipcFd : -1;

	(void)sig;
	if (fd < 0 || watch_busy) {
		watch_ticks = 0;
		return;
	}
	if (++watch_ticks > watch_limit) {
		(void)shutdown(fd, SHUT_RDWR);
		watch_ticks = 0;
	}
}

static int
fcgi_watch_start(FCGX_Request *r, int limit)
{
	struct sigevent sev;
	struct itimerspec its = { { 1, 0 }, { 1, 0 } };
	struct sigaction sa;
	timer_t timer;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = fcgi_on_tick;
	sa.sa_flags = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGRTMIN, &sa, NULL) != 0)
		return -1;
	memset(&sev, 0, sizeof(sev));
	sev.sigev_notify = SIGEV_SIGNAL;
	sev.sigev_signo = SIGRTMIN;
	if (timer_create(CLOCK_MONOTONIC, &sev, &timer) != 0)
		return -1;
	watch_limit = limit;
	watch_req = r;
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

/* Fill req from the FastCGI parameters; KG_EINPUT/KG_ETOOLARGE/KG_ENOTFOUND on bad input. */
static enum kg_err
fcgi_read_params(FCGX_Request *r, const struct conf *c, struct request *req)
{
	char **env = r->envp;
	const char *role;

	req->method_name = FCGX_GetParam("REQUEST_METHOD", env);
	req->method = http_method_parse(req->method_name);
	req->query = FCGX_GetParam("QUERY_STRING", env);
	req->remote_addr = FCGX_GetParam("REMOTE_ADDR", env);
	req->content_type = FCGX_GetParam("CONTENT_TYPE", env);
	req->authorization = FCGX_GetParam("HTTP_AUTHORIZATION", env);
	req->hdr_key = FCGX_GetParam("HTTP_KEY", env);
	req->hdr_secret = FCGX_GetParam("HTTP_SECRET", env);
	req->user_agent = FCGX_GetParam("HTTP_USER_AGENT", env);
	req->forwarded_for = FCGX_GetParam("HTTP_X_FORWARDED_FOR", env);
	req->cookie = FCGX_GetParam("HTTP_COOKIE", env);
	req->origin = FCGX_GetParam("HTTP_ORIGIN", env);
	req->referer = FCGX_GetParam("HTTP_REFERER", env);
	req->requested_with = FCGX_GetParam("HTTP_X_REQUESTED_WITH", env);
	req->preflight_method = FCGX_GetParam("HTTP_ACCESS_CONTROL_REQUEST_METHOD", env);
	role = FCGX_GetParam("FCGI_ROLE", env);
	req->authorizer = role != NULL && strcmp(role, "AUTHORIZER") == 0;
	req->content_length = fcgi_content_length(FCGX_GetParam("CONTENT_LENGTH", env));
	if (http_route_path(req, FCGX_GetParam("REQUEST_URI", env), FCGX_GetParam("SCRIPT_NAME", env),
		FCGX_GetParam("PATH_INFO", env), c->base_path) != KG_OK)
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

/* Write status, headers and body. Every response names its status explicitly. */
static void
fcgi_respond(FCGX_Request *r, struct response *resp)
{
	char status[64];
	char *body = NULL;
	size_t len = 0, i;
	int n;

	if (resp->json != NULL && json_render(resp->json, &body, &len) != KG_OK) {
		json_free(resp->json);
		resp->json = NULL;
		resp->fields = NULL;
		router_error(resp, KG_ENOMEM);
		if (json_render(resp->json, &body, &len) != KG_OK)
			len = 0;
	}
	n = snprintf(status, sizeof(status), "%d %s", resp->status, http_status_text(resp->status));
	if (n < 0 || (size_t)n >= sizeof(status))
		goto out;
	if (fcgi_header(r->out, "Status", status) != 0)
		goto out;
	/* mod_fcgid keeps an allowing authorizer's headers for the protected file's reply. */
	if (!resp->bare &&
	    (fcgi_header(r->out, "Content-Type", "application/json") != 0 ||
	    fcgi_header(r->out, "X-Content-Type-Options", "nosniff") != 0 ||
	    fcgi_header(r->out, "Cache-Control", "no-store") != 0))
		goto out;
	for (i = 0; i < resp->nheaders; i++)
		if (fcgi_header(r->out, resp->headers[i].name, resp->headers[i].value) != 0)
			goto out;
	if (fcgi_put(r->out, "\r\n", 2) != 0)
		goto out;
	if (body != NULL && !resp->no_body && fcgi_put(r->out, body, len) != 0)
		goto out;
out:
	free(body);
}

static void
fcgi_handle(FCGX_Request *r, const struct conf *c)
{
	struct request req;
	struct response resp;
	enum kg_err err;
	long long start = kg_monotonic_ms(), ms;

	memset(&req, 0, sizeof(req));
	memset(&resp, 0, sizeof(resp));
	scoreboard_request_begin();
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
	scoreboard_request_end(ms, ms >= c->slow_request);
	/* Never the query string or a header: they may carry credentials. */
	if (ms >= c->slow_request)
		log_warnx("slow request: %s %s %d %lldms", req.method_name ? req.method_name : "-",
		    req.path, resp.status, ms);
	else
		log_info("%s %s %d %lldms", req.method_name ? req.method_name : "-", req.path,
		    resp.status, ms);
	request_free(&req);
	response_free(&resp);
}

long
fcgi_serve(const struct conf *c, volatile sig_atomic_t *stop)
{
	FCGX_Request r;
	sigset_t term, old;
	long served = 0;

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
		int rc;

		(void)sigprocmask(SIG_UNBLOCK, &term, &old);
		rc = *stop ? -1 : FCGX_Accept_r(&r);
		(void)sigprocmask(SIG_BLOCK, &term, NULL);
		if (rc < 0) {
			if (*stop)
				break;
			/* EAGAIN: the listening socket's receive timeout passed with no client. */
			if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK ||
			    rc == -EAGAIN || rc == -EWOULDBLOCK || rc == -EINTR)
				continue;
			log_warnx("accept failed (%d)", rc);
			break;
		}
		watch_busy = 1;
		fcgi_handle(&r, c);
		FCGX_Finish_r(&r);
		watch_busy = 0;
		served++;
	}
	watch_req = NULL;
	FCGX_Free(&r, 1);
	return served;
}
