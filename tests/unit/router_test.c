/*
 * Unit tests for src/router.c: routing by (method, path), the checks made
 * before any handler runs (credentials in the query, media type), and the
 * mapping of every error code to a status, error body and headers. Only
 * handlers that need no database are reached.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cmocka.h>

#include "api.h"
#include "conf.h"
#include "http.h"
#include "json.h"
#include "router.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/*
 * Configure the handlers from the defaults, with status_allow and
 * allowed_origins set (NULL: the default) as the environment sets them,
 * so that conf_load parses them as for the service.
 */
static void
configure(const char *status_allow, const char *origins)
{
	struct conf c;
	char err[512] = "";
	enum kg_err rc;

	if (status_allow != NULL)
		assert_int_equal(setenv("KEYGATE_STATUS_ALLOW", status_allow, 1), 0);
	if (origins != NULL)
		assert_int_equal(setenv("KEYGATE_ALLOWED_ORIGINS", origins, 1), 0);
	rc = conf_load(NULL, &c, err, sizeof(err));
	(void)unsetenv("KEYGATE_STATUS_ALLOW");
	(void)unsetenv("KEYGATE_ALLOWED_ORIGINS");
	if (rc != KG_OK)
		fail_msg("conf_load: %s", err);
	assert_int_equal(api_configure(&c), KG_OK);
	/* The configuration goes away: the handlers must have copied what they use. */
	explicit_bzero(&c, sizeof(c));
}

static int
setup(void **state)
{
	(void)state;
	configure(NULL, NULL);
	return 0;
}

static void
request_init(struct request *req, enum http_method m, const char *path, const char *remote)
{
	memset(req, 0, sizeof(*req));
	req->method = m;
	req->method_name = http_method_name(m);
	(void)snprintf(req->path, sizeof(req->path), "%s", path);
	req->remote_addr = remote;
	req->content_length = -1;
}

/* The value of header name in resp, or NULL. */
static const char *
header(const struct response *resp, const char *name)
{
	unsigned i;

	for (i = 0; i < resp->nheaders; i++)
		if (strcasecmp(resp->headers[i].name, name) == 0)
			return resp->headers[i].value;
	return NULL;
}

static unsigned
header_count(const struct response *resp, const char *name)
{
	unsigned i, n = 0;

	for (i = 0; i < resp->nheaders; i++)
		if (strcasecmp(resp->headers[i].name, name) == 0)
			n++;
	return n;
}

/* resp->json rendered (caller frees). */
static char *
render(const struct response *resp)
{
	char *s = NULL;
	size_t len;

	assert_non_null(resp->json);
	assert_int_equal(json_render(resp->json, &s, &len), KG_OK);
	return s;
}

static void
assert_body(const struct response *resp, const char *want)
{
	char *s = render(resp);

	if (strcmp(s, want) != 0) {
		print_error("body %s\nwant %s\n", s, want);
		free(s);
		fail();
	}
	free(s);
}

static void
assert_error(const struct response *resp, int status, const char *code)
{
	const char *got;

	if (resp->status != status)
		fail_msg("status %d, want %d", resp->status, status);
	assert_non_null(resp->json);
	got = json_get_str(resp->json, "error");
	if (got == NULL || strcmp(got, code) != 0)
		fail_msg("error \"%s\", want \"%s\"", got ? got : "(none)", code);
	assert_true(json_has(resp->json, "success"));
	assert_non_null(json_get_str(resp->json, "message"));
}

static const struct {
	enum http_method m;
	const char *path;
} unknown_routes[] = {
	{ HTTP_GET, "/" },
	{ HTTP_GET, "/nope" },
	{ HTTP_POST, "/nope" },
	{ HTTP_GET, "/HEALTH" },
	{ HTTP_GET, "/health/extra" },
	{ HTTP_GET, "/healthz" },
	{ HTTP_GET, "/healt" },
	{ HTTP_DELETE, "/sessions/" },
	{ HTTP_DELETE, "/sessions/a/b" },
	{ HTTP_GET, "/sessionsx" },
	{ HTTP_GET, "/api/health" },
	{ HTTP_GET, "" },
	{ HTTP_OTHER, "/nope" },
};

static void
test_not_found(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < NELEM(unknown_routes); i++) {
		struct request req;
		struct response resp;

		request_init(&req, unknown_routes[i].m, unknown_routes[i].path, "127.0.0.1");
		memset(&resp, 0, sizeof(resp));
		router_handle(&req, &resp);
		if (resp.status != 404)
			fail_msg("%s %s: status %d, want 404", http_method_name(unknown_routes[i].m),
			    unknown_routes[i].path, resp.status);
		assert_body(&resp, "{\"success\":false,\"error\":\"not_found\",\"message\":\"Not found.\"}");
		assert_null(header(&resp, "Allow"));
		assert_null(header(&resp, "WWW-Authenticate"));
		response_free(&resp);
	}
}

static const struct {
	enum http_method m;
	const char *path;
	const char *allow;
} wrong_methods[] = {
	{ HTTP_POST, "/health", "GET" },
	{ HTTP_DELETE, "/health", "GET" },
	{ HTTP_PUT, "/status", "GET" },
	{ HTTP_GET, "/join", "POST" },
	{ HTTP_GET, "/login", "POST" },
	{ HTTP_PUT, "/logout", "POST" },
	{ HTTP_DELETE, "/me", "GET" },
	{ HTTP_POST, "/sessions", "GET" },
	{ HTTP_GET, "/sessions/abc", "DELETE" },
	{ HTTP_POST, "/sessions/abc", "DELETE" },
	{ HTTP_PATCH, "/password", "POST" },
	{ HTTP_POST, "/auth", "GET" },
	{ HTTP_OTHER, "/auth", "GET" },
};

static void
test_wrong_method(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < NELEM(wrong_methods); i++) {
		struct request req;
		struct response resp;
		const char *allow;

		request_init(&req, wrong_methods[i].m, wrong_methods[i].path, "127.0.0.1");
		memset(&resp, 0, sizeof(resp));
		router_handle(&req, &resp);
		if (resp.status != 405)
			fail_msg("%s %s: status %d, want 405", http_method_name(wrong_methods[i].m),
			    wrong_methods[i].path, resp.status);
		assert_error(&resp, 405, "method_not_allowed");
		allow = header(&resp, "Allow");
		if (allow == NULL || strcmp(allow, wrong_methods[i].allow) != 0)
			fail_msg("%s %s: Allow \"%s\", want \"%s\"", http_method_name(wrong_methods[i].m),
			    wrong_methods[i].path, allow ? allow : "(none)", wrong_methods[i].allow);
		assert_int_equal(header_count(&resp, "Allow"), 1);
		response_free(&resp);
	}
}

static const struct {
	enum http_method m;
	const char *path;
	const char *query;
} query_credentials[] = {
	{ HTTP_GET, "/health", "token=abc" },
	{ HTTP_GET, "/me", "access_token=abc" },
	{ HTTP_GET, "/auth", "x=1&key=abc" },
	{ HTTP_POST, "/login", "password=hunter2" },
	{ HTTP_POST, "/join", "%6Bey=1" },
	{ HTTP_GET, "/nope", "secret=1" },       /* before routing: even unknown paths */
	{ HTTP_DELETE, "/health", "API_KEY=1" }, /* and wrong methods */
};

static void
test_query_credentials(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < NELEM(query_credentials); i++) {
		struct request req;
		struct response resp;
		const char *msg;

		request_init(&req, query_credentials[i].m, query_credentials[i].path, "127.0.0.1");
		req.query = query_credentials[i].query;
		memset(&resp, 0, sizeof(resp));
		router_handle(&req, &resp);
		if (resp.status != 400)
			fail_msg("%s %s?%s: status %d, want 400", http_method_name(query_credentials[i].m),
			    query_credentials[i].path, query_credentials[i].query, resp.status);
		assert_error(&resp, 400, "invalid_request");
		msg = json_get_str(resp.json, "message");
		assert_non_null(strstr(msg, "query string"));
		response_free(&resp);
	}
}

static void
test_query_without_credentials(void **state)
{
	struct request req;
	struct response resp;

	(void)state;
	/* Harmless parameters change nothing. */
	request_init(&req, HTTP_GET, "/status", "127.0.0.1");
	req.query = "monkey=1&a=key";
	memset(&resp, 0, sizeof(resp));
	router_handle(&req, &resp);
	assert_int_equal(resp.status, 200);
	response_free(&resp);
}

static const struct {
	enum http_method m;
	const char *path;
	const char *content_type;
	int status;
	const char *code;
} media_cases[] = {
	{ HTTP_POST, "/login", "text/plain", 415, "unsupported_media_type" },
	{ HTTP_POST, "/login", NULL, 415, "unsupported_media_type" },
	{ HTTP_POST, "/join", "application/x-www-form-urlencoded", 415, "unsupported_media_type" },
	{ HTTP_POST, "/join", "application/jsonx", 415, "unsupported_media_type" },
	{ HTTP_POST, "/logout", "multipart/form-data; boundary=x", 415, "unsupported_media_type" },
	{ HTTP_GET, "/nope", "text/plain", 415, "unsupported_media_type" },
	/* JSON bodies go on to routing */
	{ HTTP_POST, "/nope", "application/json", 404, "not_found" },
	{ HTTP_POST, "/nope", "application/json; charset=utf-8", 404, "not_found" },
	{ HTTP_PUT, "/login", "Application/JSON", 405, "method_not_allowed" },
};

static void
test_media_type(void **state)
{
	char body[] = "{\"username\":\"bob\"}";
	size_t i;

	(void)state;
	for (i = 0; i < NELEM(media_cases); i++) {
		struct request req;
		struct response resp;

		request_init(&req, media_cases[i].m, media_cases[i].path, "127.0.0.1");
		req.content_type = media_cases[i].content_type;
		req.body = body;         /* not owned here: no request_free */
		req.body_len = strlen(body);
		req.content_length = (long)req.body_len;
		memset(&resp, 0, sizeof(resp));
		router_handle(&req, &resp);
		if (resp.status != media_cases[i].status)
			fail_msg("%s %s (%s): status %d, want %d", http_method_name(media_cases[i].m),
			    media_cases[i].path,
			    media_cases[i].content_type ? media_cases[i].content_type : "no type",
			    resp.status, media_cases[i].status);
		assert_error(&resp, media_cases[i].status, media_cases[i].code);
		response_free(&resp);
	}
}

/* What router_error does with each code. */
static const struct {
	enum kg_err err;
	int status;
	const char *code;
} error_map[] = {
	{ KG_EINPUT, 400, "invalid_request" },
	{ KG_EJSON, 400, "invalid_json" },
	{ KG_EAUTH, 401, "invalid_credentials" },
	{ KG_ETOKEN, 401, "invalid_token" },
	{ KG_EFORBIDDEN, 403, "forbidden" },
	{ KG_ECSRF, 403, "csrf_failed" },
	{ KG_ESCOPE, 403, "insufficient_scope" },
	{ KG_EBADSCOPE, 400, "invalid_scope" },
	{ KG_ENAME_TAKEN, 409, "name_taken" },
	{ KG_ETOOMANY, 409, "too_many_tokens" },
	{ KG_ESESSION, 403, "session_required" },
	{ KG_ENOTFOUND, 404, "not_found" },
	{ KG_EMETHOD, 405, "method_not_allowed" },
	{ KG_EUSERNAME_TAKEN, 409, "username_taken" },
	{ KG_EEMAIL_TAKEN, 409, "email_taken" },
	{ KG_ECONFLICT, 409, "conflict" },
	{ KG_ETOOLARGE, 413, "payload_too_large" },
	{ KG_EMEDIA, 415, "unsupported_media_type" },
	{ KG_ETHROTTLED, 429, "too_many_requests" },
	{ KG_EDB, 503, "unavailable" },
	{ KG_ESYS, 500, "internal" },
	{ KG_ENOMEM, 500, "internal" },
	{ KG_ECONFIG, 500, "internal" },
	/* not errors: never a silent success */
	{ KG_OK, 500, "internal" },
	{ KG_ERR__MAX, 500, "internal" },
	{ (enum kg_err)1000, 500, "internal" },
};

static void
test_error_map(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < NELEM(error_map); i++) {
		struct response resp;
		const char *code, *www, *retry;

		memset(&resp, 0, sizeof(resp));
		router_error(&resp, error_map[i].err);
		code = json_get_str(resp.json, "error");
		if (resp.status != error_map[i].status || code == NULL ||
		    strcmp(code, error_map[i].code) != 0)
			fail_msg("router_error(%d): status %d error \"%s\", want %d \"%s\"",
			    (int)error_map[i].err, resp.status, code ? code : "(none)",
			    error_map[i].status, error_map[i].code);
		assert_non_null(json_get_str(resp.json, "message"));
		assert_true(json_has(resp.json, "success"));
		assert_false(json_has(resp.json, "fields"));
		www = header(&resp, "WWW-Authenticate");
		retry = header(&resp, "Retry-After");
		if ((resp.status == 401) != (www != NULL))
			fail_msg("router_error(%d): status %d with WWW-Authenticate \"%s\"",
			    (int)error_map[i].err, resp.status, www ? www : "(none)");
		if (www != NULL)
			assert_string_equal(www, "Bearer realm=\"keygate\"");
		if ((resp.status == 503 || resp.status == 429) != (retry != NULL))
			fail_msg("router_error(%d): status %d with Retry-After \"%s\"",
			    (int)error_map[i].err, resp.status, retry ? retry : "(none)");
		if (retry != NULL)
			assert_true(atol(retry) >= 1);
		response_free(&resp);
	}
}

static void
test_error_body(void **state)
{
	struct response resp;

	(void)state;
	memset(&resp, 0, sizeof(resp));
	router_error(&resp, KG_ENOTFOUND);
	assert_body(&resp, "{\"success\":false,\"error\":\"not_found\",\"message\":\"Not found.\"}");
	response_free(&resp);

	memset(&resp, 0, sizeof(resp));
	router_error(&resp, KG_EDB);
	assert_body(&resp, "{\"success\":false,\"error\":\"unavailable\","
	    "\"message\":\"The service is temporarily unavailable.\"}");
	response_free(&resp);
}

static void
test_error_keeps_message_and_fields(void **state)
{
	struct response resp;

	(void)state;
	memset(&resp, 0, sizeof(resp));
	resp.json = json_obj_new();
	json_set_str(resp.json, "message", "Pick another name.");
	resp.fields = json_obj_new();
	json_set_str(resp.fields, "username", "required");
	json_set_str(resp.fields, "password", "too_long");
	router_error(&resp, KG_EINPUT);
	assert_int_equal(resp.status, 400);
	assert_null(resp.fields);    /* moved into the body */
	assert_body(&resp, "{\"message\":\"Pick another name.\",\"success\":false,"
	    "\"error\":\"invalid_request\",\"fields\":{\"username\":\"required\","
	    "\"password\":\"too_long\"}}");
	response_free(&resp);

	/* A body that claimed success is corrected, not duplicated. */
	memset(&resp, 0, sizeof(resp));
	resp.json = json_obj_new();
	json_set_bool(resp.json, "success", 1);
	json_set_str(resp.json, "error", "stale");
	router_error(&resp, KG_EFORBIDDEN);
	assert_body(&resp, "{\"success\":false,\"error\":\"forbidden\",\"message\":\"Not allowed.\"}");
	response_free(&resp);
}

static const struct {
	enum kg_err err;
	int presented;
	const char *www;
} www_cases[] = {
	{ KG_ETOKEN, 0, "Bearer realm=\"keygate\"" },
	{ KG_ETOKEN, 1, "Bearer realm=\"keygate\", error=\"invalid_token\"" },
	{ KG_EAUTH, 0, "Bearer realm=\"keygate\"" },
	{ KG_EAUTH, 1, "Bearer realm=\"keygate\"" },
	{ KG_EFORBIDDEN, 1, NULL },
	{ KG_EINPUT, 1, NULL },
};

static void
test_www_authenticate(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < NELEM(www_cases); i++) {
		struct response resp;
		const char *www;

		memset(&resp, 0, sizeof(resp));
		resp.token_presented = www_cases[i].presented;
		router_error(&resp, www_cases[i].err);
		www = header(&resp, "WWW-Authenticate");
		if (www_cases[i].www == NULL ? www != NULL :
		    (www == NULL || strcmp(www, www_cases[i].www) != 0))
			fail_msg("router_error(%d), token presented %d: WWW-Authenticate \"%s\", want \"%s\"",
			    (int)www_cases[i].err, www_cases[i].presented, www ? www : "(none)",
			    www_cases[i].www ? www_cases[i].www : "(none)");
		assert_true(header_count(&resp, "WWW-Authenticate") <= 1);
		response_free(&resp);
	}
}

static void
test_retry_after(void **state)
{
	struct response resp;

	(void)state;
	/* 503 without a database ever tried: retry in a second. */
	memset(&resp, 0, sizeof(resp));
	router_error(&resp, KG_EDB);
	assert_int_equal(resp.status, 503);
	assert_string_equal(header(&resp, "Retry-After"), "1");
	response_free(&resp);

	/* A handler's own delay wins. */
	memset(&resp, 0, sizeof(resp));
	resp.retry_after = 42;
	router_error(&resp, KG_ETHROTTLED);
	assert_int_equal(resp.status, 429);
	assert_string_equal(header(&resp, "Retry-After"), "42");
	assert_int_equal(header_count(&resp, "Retry-After"), 1);
	response_free(&resp);

	memset(&resp, 0, sizeof(resp));
	resp.retry_after = 900;
	router_error(&resp, KG_EDB);
	assert_string_equal(header(&resp, "Retry-After"), "900");
	response_free(&resp);

	/* Nothing else gets one. */
	memset(&resp, 0, sizeof(resp));
	resp.retry_after = 42;
	router_error(&resp, KG_EAUTH);
	assert_null(header(&resp, "Retry-After"));
	response_free(&resp);
}

static void
test_status_codes(void **state)
{
	size_t i;

	(void)state;
	assert_int_equal(router_status(KG_OK), 200);
	for (i = 0; i < NELEM(error_map); i++) {
		if (error_map[i].err == KG_OK)
			continue;
		if (router_status(error_map[i].err) != error_map[i].status)
			fail_msg("router_status(%d) = %d, want %d", (int)error_map[i].err,
			    router_status(error_map[i].err), error_map[i].status);
	}
}

static const struct {
	const char *allow;
	const char *remote;
	int status;
} status_cases[] = {
	/* the default status_allow: 127.0.0.0/8 ::1 */
	{ NULL, "127.0.0.1", 200 },
	{ NULL, "127.9.9.9", 200 },
	{ NULL, "::1", 200 },
	{ NULL, "::ffff:127.0.0.1", 200 },
	{ NULL, "10.0.0.1", 403 },
	{ NULL, "192.0.2.1", 403 },
	{ NULL, "2001:db8::1", 403 },
	{ NULL, "", 403 },
	{ NULL, "unix:", 403 },
	{ NULL, NULL, 403 },
	/* a configured list */
	{ "10.0.0.0/8, 2001:db8::/32", "10.1.2.3", 200 },
	{ "10.0.0.0/8, 2001:db8::/32", "2001:db8::5", 200 },
	{ "10.0.0.0/8, 2001:db8::/32", "127.0.0.1", 403 },
	{ "10.0.0.0/8, 2001:db8::/32", "::1", 403 },
	/* an empty list: nobody */
	{ "", "127.0.0.1", 403 },
};

static void
test_status(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < NELEM(status_cases); i++) {
		struct request req;
		struct response resp;

		configure(status_cases[i].allow, NULL);
		request_init(&req, HTTP_GET, "/status", status_cases[i].remote);
		memset(&resp, 0, sizeof(resp));
		router_handle(&req, &resp);
		if (resp.status != status_cases[i].status)
			fail_msg("GET /status from %s (status_allow \"%s\"): %d, want %d",
			    status_cases[i].remote ? status_cases[i].remote : "(null)",
			    status_cases[i].allow ? status_cases[i].allow : "(default)", resp.status,
			    status_cases[i].status);
		if (resp.status == 200) {
			assert_non_null(resp.json);
			assert_true(json_has(resp.json, "success"));
			assert_false(json_has(resp.json, "error"));
		} else
			assert_error(&resp, 403, "forbidden");
		response_free(&resp);
	}
	configure(NULL, NULL);
}

/* Token checks that fail before the database is asked. */
static const struct {
	const char *authorization;
	int status;
	const char *code;
	const char *www;
} auth_cases[] = {
	{ NULL, 401, "invalid_token", "Bearer realm=\"keygate\"" },
	{ "Bearer not-a-token", 401, "invalid_token",
	  "Bearer realm=\"keygate\", error=\"invalid_token\"" },
	{ "Bearer kg_xxxxxxxxxxxxxxxxxxxxxxxx.yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy", 401,
	  "invalid_token", "Bearer realm=\"keygate\", error=\"invalid_token\"" },
	{ "Basic dXNlcjpwYXNz", 400, "invalid_request", NULL },
	{ "Bearer", 400, "invalid_request", NULL },
};

static void
test_auth_without_database(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < NELEM(auth_cases); i++) {
		struct request req;
		struct response resp;
		const char *www;

		request_init(&req, HTTP_GET, "/auth", "127.0.0.1");
		req.authorization = auth_cases[i].authorization;
		memset(&resp, 0, sizeof(resp));
		router_handle(&req, &resp);
		if (resp.status != auth_cases[i].status)
			fail_msg("GET /auth with \"%s\": status %d, want %d",
			    auth_cases[i].authorization ? auth_cases[i].authorization : "(none)",
			    resp.status, auth_cases[i].status);
		assert_error(&resp, auth_cases[i].status, auth_cases[i].code);
		www = header(&resp, "WWW-Authenticate");
		if (auth_cases[i].www == NULL)
			assert_null(www);
		else {
			assert_non_null(www);
			assert_string_equal(www, auth_cases[i].www);
		}
		assert_null(header(&resp, "X-Keygate-User-Id"));
		response_free(&resp);
	}
}

/* The FastCGI authorizer role: every refusal is an explicit 401, never a silent 200. */
static void
test_authorizer_without_database(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < NELEM(auth_cases); i++) {
		struct request req;
		struct response resp;

		request_init(&req, HTTP_GET, "/anything/at/all", "127.0.0.1");
		req.authorizer = 1;
		req.authorization = auth_cases[i].authorization;
		memset(&resp, 0, sizeof(resp));
		router_handle(&req, &resp);
		if (resp.status != 401)
			fail_msg("authorizer with \"%s\": status %d, want 401",
			    auth_cases[i].authorization ? auth_cases[i].authorization : "(none)",
			    resp.status);
		assert_error(&resp, 401, "invalid_token");
		assert_false(resp.no_body);
		assert_null(header(&resp, "Variable-KEYGATE_USER_ID"));
		assert_non_null(header(&resp, "WWW-Authenticate"));
		response_free(&resp);
	}
}

static void
test_preflight(void **state)
{
	struct request req;
	struct response resp;

	(void)state;
	/* No allowed origins: refused. */
	request_init(&req, HTTP_OPTIONS, "/login", "127.0.0.1");
	req.origin = "https://app.example";
	req.preflight_method = "POST";
	memset(&resp, 0, sizeof(resp));
	router_handle(&req, &resp);
	assert_error(&resp, 403, "forbidden");
	assert_null(header(&resp, "Access-Control-Allow-Origin"));
	response_free(&resp);

	configure(NULL, "https://app.example https://admin.example/");
	/* An allowed origin asking: 204 with the CORS headers. */
	memset(&resp, 0, sizeof(resp));
	router_handle(&req, &resp);
	assert_int_equal(resp.status, 204);
	assert_true(resp.no_body);
	assert_string_equal(header(&resp, "Access-Control-Allow-Origin"), "https://app.example");
	assert_string_equal(header(&resp, "Vary"), "Origin");
	assert_non_null(header(&resp, "Access-Control-Allow-Methods"));
	assert_non_null(strstr(header(&resp, "Access-Control-Allow-Headers"), "Authorization"));
	assert_null(header(&resp, "Access-Control-Allow-Credentials"));
	response_free(&resp);

	/* The trailing slash of a configured origin does not matter. */
	req.origin = "https://admin.example";
	memset(&resp, 0, sizeof(resp));
	router_handle(&req, &resp);
	assert_int_equal(resp.status, 204);
	response_free(&resp);

	/* Another origin, or no Access-Control-Request-Method: refused. */
	req.origin = "https://evil.example";
	memset(&resp, 0, sizeof(resp));
	router_handle(&req, &resp);
	assert_error(&resp, 403, "forbidden");
	assert_null(header(&resp, "Access-Control-Allow-Origin"));
	response_free(&resp);

	req.origin = "https://app.example.evil.example";
	memset(&resp, 0, sizeof(resp));
	router_handle(&req, &resp);
	assert_int_equal(resp.status, 403);
	response_free(&resp);

	req.origin = "https://app.example";
	req.preflight_method = NULL;
	memset(&resp, 0, sizeof(resp));
	router_handle(&req, &resp);
	assert_int_equal(resp.status, 403);
	response_free(&resp);
	configure(NULL, NULL);
}

static void
test_cors_on_errors(void **state)
{
	struct request req;
	struct response resp;

	(void)state;
	configure(NULL, "https://app.example");
	/* An allowed origin sees the error (it is not credentialed). */
	request_init(&req, HTTP_GET, "/nope", "127.0.0.1");
	req.origin = "https://app.example";
	memset(&resp, 0, sizeof(resp));
	router_handle(&req, &resp);
	assert_int_equal(resp.status, 404);
	assert_string_equal(header(&resp, "Access-Control-Allow-Origin"), "https://app.example");
	response_free(&resp);

	/* Another origin gets no CORS headers. */
	req.origin = "https://evil.example";
	memset(&resp, 0, sizeof(resp));
	router_handle(&req, &resp);
	assert_int_equal(resp.status, 404);
	assert_null(header(&resp, "Access-Control-Allow-Origin"));
	response_free(&resp);

	/* Nor does a request without Origin. */
	req.origin = NULL;
	memset(&resp, 0, sizeof(resp));
	router_handle(&req, &resp);
	assert_null(header(&resp, "Access-Control-Allow-Origin"));
	response_free(&resp);
	configure(NULL, NULL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_not_found),
		cmocka_unit_test(test_wrong_method),
		cmocka_unit_test(test_query_credentials),
		cmocka_unit_test(test_query_without_credentials),
		cmocka_unit_test(test_media_type),
		cmocka_unit_test(test_error_map),
		cmocka_unit_test(test_error_body),
		cmocka_unit_test(test_error_keeps_message_and_fields),
		cmocka_unit_test(test_www_authenticate),
		cmocka_unit_test(test_retry_after),
		cmocka_unit_test(test_status_codes),
		cmocka_unit_test(test_status),
		cmocka_unit_test(test_auth_without_database),
		cmocka_unit_test(test_authorizer_without_database),
		cmocka_unit_test(test_preflight),
		cmocka_unit_test(test_cors_on_errors),
	};

	return cmocka_run_group_tests_name("router", tests, setup, NULL);
}
