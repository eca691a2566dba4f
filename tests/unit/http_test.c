/*
 * Unit tests for src/http.c: Authorization parsing, credentials in query
 * strings, Content-Type, route paths, status texts, methods, response
 * headers and cookies.
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

#include <cmocka.h>

#include "http.h"
#include "json.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

static const char *
str_or_null(const char *s)
{
	return s != NULL ? s : "(null)";
}

/*
 * http_bearer: the accepted headers with the credential they carry. The
 * token points into the header, so trailing blanks are compared separately
 * (test_bearer_trailing_blanks).
 */
static const struct {
	const char *hdr;
	const char *token;  /* NULL: refused with KG_EINPUT */
} bearer_cases[] = {
	{ "Bearer abc", "abc" },
	{ "bearer abc", "abc" },
	{ "BEARER abc", "abc" },
	{ "BeArEr abc", "abc" },
	{ "Bearer   abc", "abc" },
	{ "Bearer\tabc", "abc" },
	{ "Bearer \t abc", "abc" },
	{ "Bearer kg_abc.DEF-123_x=", "kg_abc.DEF-123_x=" },
	{ "Basic x", NULL },
	{ "Basic dXNlcjpwYXNz", NULL },
	{ "Bearer", NULL },
	{ "Bearer ", NULL },
	{ "Bearer    ", NULL },
	{ "Bearer\t", NULL },
	{ "Bearerx", NULL },
	{ "Bearerx abc", NULL },
	{ "Bearer a b", NULL },
	{ "Bearer a\tb", NULL },
	{ "Bearer a  b  ", NULL },
	{ " Bearer abc", NULL },
	{ "Bear abc", NULL },
	{ "Token abc", NULL },
	{ "", NULL },
	{ "abc", NULL },
	{ NULL, NULL },
};

static void
test_bearer(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < NELEM(bearer_cases); i++) {
		const char *hdr = bearer_cases[i].hdr, *want = bearer_cases[i].token;
		const char *tok = "unset";
		size_t len = 99;
		enum kg_err err = http_bearer(hdr, &tok, &len);

		if (want == NULL) {
			if (err != KG_EINPUT || tok != NULL)
				fail_msg("http_bearer(\"%s\"): err %d token \"%s\", want KG_EINPUT, NULL",
				    str_or_null(hdr), (int)err, str_or_null(tok));
			continue;
		}
		if (err != KG_OK || tok == NULL || len != strlen(want) || strncmp(tok, want, len) != 0)
			fail_msg("http_bearer(\"%s\"): err %d token \"%s\", want KG_OK \"%s\"",
			    str_or_null(hdr), (int)err, str_or_null(tok), want);
		/* The token points into the header: nothing was copied. */
		if (tok < hdr || tok >= hdr + strlen(hdr))
			fail_msg("http_bearer(\"%s\"): token does not point into the header", hdr);
	}
}

/*
 * Trailing blanks after the credential are accepted; the length handed
 * back must then be that of the credential alone.
 */
static const struct {
	const char *hdr;
	const char *token;
} bearer_trailing[] = {
	{ "Bearer abc ", "abc" },
	{ "Bearer abc  ", "abc" },
	{ "bearer abc\t", "abc" },
	{ "Bearer  abc \t ", "abc" },
};

static void
test_bearer_trailing_blanks(void **state)
{
	size_t i;
	int bad = 0;

	(void)state;
	for (i = 0; i < NELEM(bearer_trailing); i++) {
		const char *tok = NULL;
		size_t len = 0;
		enum kg_err err = http_bearer(bearer_trailing[i].hdr, &tok, &len);

		if (err != KG_OK || tok == NULL) {
			print_error("http_bearer(\"%s\"): err %d, want KG_OK\n",
			    bearer_trailing[i].hdr, (int)err);
			bad++;
			continue;
		}
		if (len != strlen(bearer_trailing[i].token) ||
		    strncmp(tok, bearer_trailing[i].token, len) != 0) {
			print_error("http_bearer(\"%s\"): token \"%.*s\" (%zu bytes), want \"%s\"\n",
			    bearer_trailing[i].hdr, (int)len, tok, len, bearer_trailing[i].token);
			bad++;
		}
	}
	if (bad > 0)
		fail_msg("%d of %zu headers with trailing blanks gave a wrong credential", bad,
		    NELEM(bearer_trailing));
}

static const struct {
	const char *query;
	int has;
} query_cases[] = {
	{ "key=abc", 1 },
	{ "secret=abc", 1 },
	{ "token=abc", 1 },
	{ "access_token=abc", 1 },
	{ "api_key=abc", 1 },
	{ "password=abc", 1 },
	{ "key=", 1 },
	{ "key", 1 },
	{ "token", 1 },
	{ "%6Bey=1", 1 },
	{ "%6bey=1", 1 },
	{ "ke%79=1", 1 },
	{ "%6B%65%79=1", 1 },
	{ "api%5Fkey=1", 1 },
	{ "access%5ftoken=1", 1 },
	{ "KEY=1", 1 },
	{ "Token=1", 1 },
	{ "PassWord=1", 1 },
	{ "ACCESS_TOKEN=1", 1 },
	{ "x=1&token=2", 1 },
	{ "x=1;token=2", 1 },
	{ "x=1&&key=2", 1 },
	{ "a=1&b=2&c=3&secret=4", 1 },
	{ "token=1&x=2", 1 },
	{ "monkey=1", 0 },
	{ "keys=1", 0 },
	{ "tokens=1", 0 },
	{ "passwords=1", 0 },
	{ "my_token=1", 0 },
	{ "ke=y", 0 },
	{ "a=key", 0 },
	{ "a=token&b=secret", 0 },
	{ "a=1&b=key=2", 0 },
	{ "x=1", 0 },
	{ "pass+word=1", 0 },
	{ "%6Bey2=1", 0 },
	{ "ke%7=1", 0 },
	{ "&&&", 0 },
	{ "=key", 0 },
	{ "", 0 },
	{ NULL, 0 },
};

static void
test_query_credentials(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < NELEM(query_cases); i++) {
		int got = http_query_has_credentials(query_cases[i].query);

		if (got != query_cases[i].has)
			fail_msg("http_query_has_credentials(\"%s\") = %d, want %d",
			    str_or_null(query_cases[i].query), got, query_cases[i].has);
	}
}

static const struct {
	const char *ct;
	int json;
} json_ct_cases[] = {
	{ "application/json", 1 },
	{ "application/json; charset=utf-8", 1 },
	{ "application/json;charset=UTF-8", 1 },
	{ "application/json ; charset=utf-8", 1 },
	{ "Application/JSON", 1 },
	{ "APPLICATION/JSON; charset=utf-8", 1 },
	{ " application/json", 1 },
	{ "application/json ", 1 },
	{ "application/jsonx", 0 },
	{ "application/json-patch+json", 0 },
	{ "application/jso", 0 },
	{ "application/", 0 },
	{ "text/plain", 0 },
	{ "text/json", 0 },
	{ "application/x-www-form-urlencoded", 0 },
	{ "multipart/form-data; boundary=x", 0 },
	{ "xapplication/json", 0 },
	{ "", 0 },
	{ NULL, 0 },
};

static void
test_is_json(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < NELEM(json_ct_cases); i++) {
		int got = http_is_json(json_ct_cases[i].ct);

		if (got != json_ct_cases[i].json)
			fail_msg("http_is_json(\"%s\") = %d, want %d", str_or_null(json_ct_cases[i].ct),
			    got, json_ct_cases[i].json);
	}
}

static const struct {
	const char *uri;
	const char *script;
	const char *info;
	const char *base;
	enum kg_err err;
	const char *path;
} route_cases[] = {
	/* REQUEST_URI with the base path */
	{ "/api/health", NULL, NULL, "/api", KG_OK, "/health" },
	{ "/api/sessions/abc", NULL, NULL, "/api", KG_OK, "/sessions/abc" },
	{ "/api", NULL, NULL, "/api", KG_OK, "/" },
	{ "/api/", NULL, NULL, "/api", KG_OK, "/" },
	{ "/api/v1/health", NULL, NULL, "/api/v1", KG_OK, "/health" },
	/* without the base: unchanged */
	{ "/health", NULL, NULL, "/api", KG_OK, "/health" },
	{ "/", NULL, NULL, "/api", KG_OK, "/" },
	/* base with trailing slashes */
	{ "/api/health", NULL, NULL, "/api/", KG_OK, "/health" },
	{ "/api/health", NULL, NULL, "/api//", KG_OK, "/health" },
	{ "/api", NULL, NULL, "/api/", KG_OK, "/" },
	/* no base at all */
	{ "/health", NULL, NULL, "", KG_OK, "/health" },
	{ "/health", NULL, NULL, NULL, KG_OK, "/health" },
	{ "/health", NULL, NULL, "/", KG_OK, "/health" },
	{ "/api/health", NULL, NULL, "", KG_OK, "/api/health" },
	/* the query string is not part of the path */
	{ "/api/health?x=1", NULL, NULL, "/api", KG_OK, "/health" },
	{ "/api/health?", NULL, NULL, "/api", KG_OK, "/health" },
	{ "/api?token=x", NULL, NULL, "/api", KG_OK, "/" },
	{ "/api/health/?a=/b/", NULL, NULL, "/api", KG_OK, "/health" },
	/* trailing slashes are removed */
	{ "/api/health/", NULL, NULL, "/api", KG_OK, "/health" },
	{ "/api/health///", NULL, NULL, "/api", KG_OK, "/health" },
	{ "/health/", NULL, NULL, "", KG_OK, "/health" },
	{ "///", NULL, NULL, "", KG_OK, "/" },
	/* a base is a whole segment: /apix is not under /api */
	{ "/apix/health", NULL, NULL, "/api", KG_OK, "/apix/health" },
	{ "/apihealth", NULL, NULL, "/api", KG_OK, "/apihealth" },
	{ "/ap", NULL, NULL, "/api", KG_OK, "/ap" },
	/* fallback: SCRIPT_NAME + PATH_INFO */
	{ NULL, "/api", "/health", "/api", KG_OK, "/health" },
	{ "", "/api", "/me", "/api", KG_OK, "/me" },
	{ NULL, "/api", NULL, "/api", KG_OK, "/" },
	{ NULL, NULL, "/health", "/api", KG_OK, "/health" },
	{ NULL, "/api/health", "", "/api", KG_OK, "/health" },
	{ NULL, "/apix", "/health", "/api", KG_OK, "/apix/health" },
	{ NULL, "/api", "/health/", "/api", KG_OK, "/health" },
	{ NULL, NULL, NULL, "/api", KG_OK, "/" },
	{ NULL, NULL, NULL, NULL, KG_OK, "/" },
};

static void
test_route_path(void **state)
{
	struct request req;
	size_t i;

	(void)state;
	for (i = 0; i < NELEM(route_cases); i++) {
		enum kg_err err;

		memset(&req, 0, sizeof(req));
		err = http_route_path(&req, route_cases[i].uri, route_cases[i].script,
		    route_cases[i].info, route_cases[i].base);
		if (err != route_cases[i].err ||
		    (err == KG_OK && strcmp(req.path, route_cases[i].path) != 0))
			fail_msg("http_route_path(uri \"%s\", script \"%s\", info \"%s\", base \"%s\"): "
			    "err %d path \"%s\", want err %d path \"%s\"",
			    str_or_null(route_cases[i].uri), str_or_null(route_cases[i].script),
			    str_or_null(route_cases[i].info), str_or_null(route_cases[i].base),
			    (int)err, req.path, (int)route_cases[i].err, route_cases[i].path);
	}
}

/* A string of n characters: "/" then 'a's. */
static char *
long_path(size_t n)
{
	char *s = malloc(n + 1);

	assert_non_null(s);
	memset(s, 'a', n);
	s[0] = '/';
	s[n] = '\0';
	return s;
}

static void
test_route_path_length(void **state)
{
	struct request req;
	char *p, *q;

	(void)state;
	/* The longest path that fits. */
	p = long_path(HTTP_PATH_MAX - 1);
	memset(&req, 0, sizeof(req));
	assert_int_equal(http_route_path(&req, p, NULL, NULL, "/api"), KG_OK);
	assert_string_equal(req.path, p);
	free(p);

	/* One more byte: no such route rather than a truncated one. */
	p = long_path(HTTP_PATH_MAX);
	memset(&req, 0, sizeof(req));
	assert_int_equal(http_route_path(&req, p, NULL, NULL, "/api"), KG_ENOTFOUND);
	assert_int_equal(http_route_path(&req, NULL, p, NULL, "/api"), KG_ENOTFOUND);
	assert_int_equal(http_route_path(&req, NULL, NULL, p, "/api"), KG_ENOTFOUND);
	free(p);

	p = long_path(4096);
	assert_int_equal(http_route_path(&req, p, NULL, NULL, "/api"), KG_ENOTFOUND);
	free(p);

	/* SCRIPT_NAME and PATH_INFO that only together are too long. */
	p = long_path(HTTP_PATH_MAX / 2);
	q = long_path(HTTP_PATH_MAX / 2);
	assert_int_equal(http_route_path(&req, NULL, p, q, "/api"), KG_ENOTFOUND);
	free(p);
	free(q);

	/* A long query string does not count: only the path does. */
	p = long_path(4096);
	memcpy(p, "/api/me?", 8);
	memset(&req, 0, sizeof(req));
	assert_int_equal(http_route_path(&req, p, NULL, NULL, "/api"), KG_OK);
	assert_string_equal(req.path, "/me");
	free(p);
}

static const struct {
	int status;
	const char *text;
} status_cases[] = {
	{ 200, "OK" },
	{ 201, "Created" },
	{ 204, "No Content" },
	{ 400, "Bad Request" },
	{ 401, "Unauthorized" },
	{ 403, "Forbidden" },
	{ 404, "Not Found" },
	{ 405, "Method Not Allowed" },
	{ 409, "Conflict" },
	{ 413, "Payload Too Large" },
	{ 415, "Unsupported Media Type" },
	{ 429, "Too Many Requests" },
	{ 500, "Internal Server Error" },
	{ 503, "Service Unavailable" },
	{ 0, "Unknown" },
	{ -1, "Unknown" },
	{ 302, "Unknown" },
	{ 999, "Unknown" },
};

static void
test_status_text(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < NELEM(status_cases); i++) {
		const char *got = http_status_text(status_cases[i].status);

		if (got == NULL || strcmp(got, status_cases[i].text) != 0)
			fail_msg("http_status_text(%d) = \"%s\", want \"%s\"", status_cases[i].status,
			    str_or_null(got), status_cases[i].text);
	}
}

static const struct {
	const char *name;
	enum http_method m;
} method_cases[] = {
	{ "GET", HTTP_GET },
	{ "POST", HTTP_POST },
	{ "DELETE", HTTP_DELETE },
	{ "PUT", HTTP_PUT },
	{ "PATCH", HTTP_PATCH },
	{ "HEAD", HTTP_HEAD },
	{ "OPTIONS", HTTP_OPTIONS },
	/* methods are case-sensitive (RFC 9110 9.1) */
	{ "get", HTTP_OTHER },
	{ "Post", HTTP_OTHER },
	{ "GET ", HTTP_OTHER },
	{ " GET", HTTP_OTHER },
	{ "GETS", HTTP_OTHER },
	{ "TRACE", HTTP_OTHER },
	{ "CONNECT", HTTP_OTHER },
	{ "OTHER", HTTP_OTHER },
	{ "", HTTP_OTHER },
	{ NULL, HTTP_OTHER },
};

static void
test_method_parse(void **state)
{
	size_t i;
	int m;

	(void)state;
	for (i = 0; i < NELEM(method_cases); i++) {
		enum http_method got = http_method_parse(method_cases[i].name);

		if (got != method_cases[i].m)
			fail_msg("http_method_parse(\"%s\") = %d, want %d",
			    str_or_null(method_cases[i].name), (int)got, (int)method_cases[i].m);
	}
	/* The names round-trip. */
	for (m = HTTP_GET; m < HTTP_OTHER; m++)
		assert_int_equal(http_method_parse(http_method_name((enum http_method)m)), m);
	assert_string_equal(http_method_name(HTTP_GET), "GET");
	assert_string_equal(http_method_name(HTTP_OPTIONS), "OPTIONS");
	assert_string_equal(http_method_name(HTTP_OTHER), "OTHER");
	assert_string_equal(http_method_name(HTTP_METHOD__MAX), "OTHER");
	assert_string_equal(http_method_name((enum http_method)1000), "OTHER");
}

static void
test_header_add(void **state)
{
	struct response resp;
	char big[HTTP_HEADER_VALUE_MAX + 1];

	(void)state;
	memset(&resp, 0, sizeof(resp));
	assert_int_equal(http_header_add(&resp, "Allow", "%s, %s", "GET", "POST"), KG_OK);
	assert_int_equal(resp.nheaders, 1);
	assert_string_equal(resp.headers[0].name, "Allow");
	assert_string_equal(resp.headers[0].value, "GET, POST");
	assert_int_equal(http_header_add(&resp, "Retry-After", "%ld", 42L), KG_OK);
	assert_string_equal(resp.headers[1].name, "Retry-After");
	assert_string_equal(resp.headers[1].value, "42");
	assert_int_equal(http_header_add(&resp, "X-Empty", "%s", ""), KG_OK);
	assert_string_equal(resp.headers[2].value, "");
	assert_int_equal(resp.nheaders, 3);

	/* CR or LF would split the header block: refused, nothing added. */
	assert_int_equal(http_header_add(&resp, "X-Evil", "a\r\nSet-Cookie: x=1"), KG_ESYS);
	assert_int_equal(http_header_add(&resp, "X-Evil", "%s", "a\nb"), KG_ESYS);
	assert_int_equal(http_header_add(&resp, "X-Evil", "%s", "a\rb"), KG_ESYS);
	assert_int_equal(http_header_add(&resp, "X-Evil", "%s", "\n"), KG_ESYS);
	assert_int_equal(http_header_add(&resp, "X-Evil", "%s", "value\r"), KG_ESYS);
	assert_int_equal(resp.nheaders, 3);

	/* A value that would be truncated is refused. */
	memset(big, 'v', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(http_header_add(&resp, "X-Big", "%s", big), KG_ESYS);
	assert_int_equal(resp.nheaders, 3);
	/* The largest value that fits is accepted. */
	big[HTTP_HEADER_VALUE_MAX - 1] = '\0';
	assert_int_equal(http_header_add(&resp, "X-Big", "%s", big), KG_OK);
	assert_int_equal(strlen(resp.headers[3].value), HTTP_HEADER_VALUE_MAX - 1);
	assert_int_equal(resp.nheaders, 4);
}

static void
test_header_add_full(void **state)
{
	struct response resp;
	unsigned i;

	(void)state;
	memset(&resp, 0, sizeof(resp));
	for (i = 0; i < HTTP_MAX_HEADERS; i++)
		assert_int_equal(http_header_add(&resp, "X-N", "%u", i), KG_OK);
	assert_int_equal(resp.nheaders, HTTP_MAX_HEADERS);
	assert_int_equal(http_header_add(&resp, "X-N", "%s", "one too many"), KG_ESYS);
	assert_int_equal(resp.nheaders, HTTP_MAX_HEADERS);
	for (i = 0; i < HTTP_MAX_HEADERS; i++) {
		char want[16];

		(void)snprintf(want, sizeof(want), "%u", i);
		assert_string_equal(resp.headers[i].value, want);
	}
}

static const struct {
	const char *hdr;
	const char *name;
	int count;
	const char *val;  /* first value, when count > 0 */
} cookie_cases[] = {
	{ "keygate_token=abc", "keygate_token", 1, "abc" },
	{ "a=1; keygate_token=abc", "keygate_token", 1, "abc" },
	{ "a=1;keygate_token=abc;b=2", "keygate_token", 1, "abc" },
	{ "a=1; keygate_token=abc ; b=2", "keygate_token", 1, "abc" },
	{ "keygate_token=", "keygate_token", 1, "" },
	{ "keygate_token=a=b", "keygate_token", 1, "a=b" },
	/* two cookies of the name: ambiguous, the caller refuses */
	{ "keygate_token=one; keygate_token=two", "keygate_token", 2, "one" },
	/* names must match exactly */
	{ "keygate_token2=abc", "keygate_token", 0, NULL },
	{ "xkeygate_token=abc", "keygate_token", 0, NULL },
	{ "keygate_tok=abc", "keygate_token", 0, NULL },
	{ "keygate_token", "keygate_token", 0, NULL },
	{ "a=keygate_token=abc", "keygate_token", 0, NULL },
	{ "KEYGATE_TOKEN=abc", "keygate_token", 0, NULL },
	{ "", "keygate_token", 0, NULL },
	{ ";;; ", "keygate_token", 0, NULL },
};

static void
test_cookie_get(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < NELEM(cookie_cases); i++) {
		const char *val = "unset";
		size_t len = 12345;
		int n = http_cookie_get(cookie_cases[i].hdr, cookie_cases[i].name, &val, &len);

		if (n != cookie_cases[i].count)
			fail_msg("http_cookie_get(\"%s\", \"%s\") = %d, want %d", cookie_cases[i].hdr,
			    cookie_cases[i].name, n, cookie_cases[i].count);
		if (cookie_cases[i].val == NULL) {
			if (val != NULL || len != 0)
				fail_msg("http_cookie_get(\"%s\"): value set without a cookie",
				    cookie_cases[i].hdr);
			continue;
		}
		if (val == NULL || len != strlen(cookie_cases[i].val) ||
		    strncmp(val, cookie_cases[i].val, len) != 0)
			fail_msg("http_cookie_get(\"%s\", \"%s\"): value \"%.*s\", want \"%s\"",
			    cookie_cases[i].hdr, cookie_cases[i].name, (int)len, val ? val : "",
			    cookie_cases[i].val);
	}
}

static void
test_request_response_free(void **state)
{
	struct request req;
	struct response resp;

	(void)state;
	request_free(NULL);
	response_free(NULL);

	memset(&req, 0, sizeof(req));
	req.body = strdup("{\"password\":\"hunter2\"}");
	assert_non_null(req.body);
	req.body_len = strlen(req.body);
	req.path[0] = '/';
	request_free(&req);      /* valgrind checks the free */
	assert_null(req.body);
	assert_int_equal(req.body_len, 0);
	assert_int_equal(req.path[0], '\0');
	request_free(&req);      /* twice is harmless */

	memset(&resp, 0, sizeof(resp));
	resp.json = json_obj_new();
	resp.fields = json_obj_new();
	assert_non_null(resp.json);
	assert_non_null(resp.fields);
	json_set_str(resp.json, "a", "b");
	resp.status = 200;
	assert_int_equal(http_header_add(&resp, "X-A", "b"), KG_OK);
	response_free(&resp);
	assert_null(resp.json);
	assert_null(resp.fields);
	assert_int_equal(resp.status, 0);
	assert_int_equal(resp.nheaders, 0);
	response_free(&resp);
}

/* response_init leaves the header slots alone, so response_free wipes the used ones. */
static void
test_response_wipes_headers(void **state)
{
	static const char zero[HTTP_HEADER_VALUE_MAX];
	struct response resp;

	(void)state;
	memset(&resp, 0xa5, sizeof(resp));
	response_init(&resp);
	assert_null(resp.json);
	assert_int_equal(resp.nheaders, 0);
	assert_int_equal(resp.no_body, 0);
	assert_int_equal(http_header_add(&resp, "Set-Cookie", "kg=%s", "kg_1_secretsecret"), KG_OK);
	assert_int_equal(http_header_add(&resp, "X-B", "%s", "c"), KG_OK);
	/* Refused (it would split the header block): its slot is wiped at once. */
	assert_int_equal(http_header_add(&resp, "X-C", "secret%s", "\r\nX-D: 1"), KG_ESYS);
	assert_int_equal(resp.nheaders, 2);
	assert_memory_equal(resp.headers[2].value, zero, sizeof(zero));
	response_free(&resp);
	assert_int_equal(resp.nheaders, 0);
	assert_memory_equal(resp.headers[0].value, zero, sizeof(zero));
	assert_memory_equal(resp.headers[1].value, zero, sizeof(zero));
}

static void
test_status_line(void **state)
{
	(void)state;
	assert_string_equal(http_status_line(200), "200 OK");
	assert_string_equal(http_status_line(401), "401 Unauthorized");
	assert_string_equal(http_status_line(503), "503 Service Unavailable");
	assert_null(http_status_line(302));
	assert_null(http_status_line(0));
}

static void
test_strlcpy(void **state)
{
	char buf[6];

	(void)state;
	memset(buf, 'x', sizeof(buf));
	assert_int_equal(kg_strlcpy(buf, "abc", sizeof(buf)), 3);
	assert_string_equal(buf, "abc");
	assert_int_equal(kg_strlcpy(buf, "abcdef", sizeof(buf)), 6);
	assert_string_equal(buf, "abcde");
	assert_int_equal(kg_strlcpy(buf, "", sizeof(buf)), 0);
	assert_string_equal(buf, "");
	buf[0] = 'q';
	assert_int_equal(kg_strlcpy(buf, "abc", 0), 3);
	assert_int_equal(buf[0], 'q');
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bearer),
		cmocka_unit_test(test_bearer_trailing_blanks),
		cmocka_unit_test(test_query_credentials),
		cmocka_unit_test(test_is_json),
		cmocka_unit_test(test_route_path),
		cmocka_unit_test(test_route_path_length),
		cmocka_unit_test(test_status_text),
		cmocka_unit_test(test_method_parse),
		cmocka_unit_test(test_header_add),
		cmocka_unit_test(test_header_add_full),
		cmocka_unit_test(test_cookie_get),
		cmocka_unit_test(test_request_response_free),
		cmocka_unit_test(test_response_wipes_headers),
		cmocka_unit_test(test_status_line),
		cmocka_unit_test(test_strlcpy),
	};

	return cmocka_run_group_tests_name("http", tests, NULL, NULL);
}
