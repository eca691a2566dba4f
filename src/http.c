#include <ctype.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "addr.h"
#include "crypto.h"
#include "http.h"
#include "json.h"

/* The Status line's text, "NNN Reason", so that a reply needs no formatting. */
static const struct {
	int status;
	const char *line;
} http_statuses[] = {
	{ 200, "200 OK" }, { 201, "201 Created" }, { 204, "204 No Content" },
	{ 400, "400 Bad Request" }, { 401, "401 Unauthorized" }, { 403, "403 Forbidden" },
	{ 404, "404 Not Found" }, { 405, "405 Method Not Allowed" }, { 409, "409 Conflict" },
	{ 413, "413 Payload Too Large" }, { 415, "415 Unsupported Media Type" },
	{ 429, "429 Too Many Requests" }, { 500, "500 Internal Server Error" },
	{ 503, "503 Service Unavailable" },
};

static const char *const http_methods[HTTP_METHOD__MAX] = {
	"GET", "POST", "DELETE", "PUT", "PATCH", "HEAD", "OPTIONS", "OTHER"
};

const char *
http_status_line(int status)
{
	size_t i;

	for (i = 0; i < sizeof(http_statuses) / sizeof(http_statuses[0]); i++)
		if (http_statuses[i].status == status)
			return http_statuses[i].line;
	return NULL;
}

const char *
http_status_text(int status)
{
	const char *line = http_status_line(status);

	return line != NULL ? line + 4 : "Unknown";
}

enum http_method
http_method_parse(const char *name)
{
	int i;

	if (name == NULL)
		return HTTP_OTHER;
	for (i = 0; i < HTTP_OTHER; i++)
		if (strcmp(name, http_methods[i]) == 0)
			return (enum http_method)i;
	return HTTP_OTHER;
}

const char *
http_method_name(enum http_method m)
{
	return (unsigned)m < HTTP_METHOD__MAX ? http_methods[m] : "OTHER";
}

enum kg_err
http_header_add(struct response *resp, const char *name, const char *fmt, ...)
{
	struct http_header *h;
	va_list ap;
	int n;

	if (resp->nheaders >= HTTP_MAX_HEADERS)
		return KG_ESYS;
	h = &resp->headers[resp->nheaders];
	va_start(ap, fmt);
	n = vsnprintf(h->value, sizeof(h->value), fmt, ap);
	va_end(ap);
	/* A CR or LF in a value would split the header block. */
	if (n < 0 || (size_t)n >= sizeof(h->value) || strpbrk(h->value, "\r\n") != NULL) {
		/* Outside [0, nheaders): response_free would not wipe it. */
		crypto_wipe(h->value, sizeof(h->value));
		return KG_ESYS;
	}
	h->name = name;
	resp->nheaders++;
	return KG_OK;
}

enum kg_err
http_bearer(const char *hdr, const char **token, size_t *len)
{
	const char *p;
	size_t n;

	*token = NULL;
	*len = 0;
	if (hdr == NULL || strncasecmp(hdr, "Bearer", 6) != 0 || (hdr[6] != ' ' && hdr[6] != '\t'))
		return KG_EINPUT;
	p = hdr + 6;
	while (*p == ' ' || *p == '\t')
		p++;
	if (*p == '\0')
		return KG_EINPUT;
	/* RFC 6750 b64token: one token, no inner white space; trailing blanks are not part of it. */
	n = strcspn(p, " \t\r\n\v\f");
	if (p[n + strspn(p + n, " \t")] != '\0')
		return KG_EINPUT;
	*token = p;
	*len = n;
	return KG_OK;
}

/* Decode the %XX escapes of a query-string name into out; -1 when it does not fit. */
static int
http_unescape_name(const char *s, size_t len, char *out, size_t outsz)
{
	size_t i, o = 0;

	for (i = 0; i < len; i++) {
		char c = s[i];

		if (c == '%' && i + 2 < len && isxdigit((unsigned char)s[i + 1]) &&
		    isxdigit((unsigned char)s[i + 2])) {
			char hex[3] = { s[i + 1], s[i + 2], '\0' };
			c = (char)strtol(hex, NULL, 16);
			i += 2;
		} else if (c == '+')
			c = ' ';
		if (o + 1 >= outsz)
			return -1;
		out[o++] = c;
	}
	out[o] = '\0';
	return 0;
}

int
http_query_has_credentials(const char *query)
{
	static const char *const names[] = {
		"key", "secret", "token", "access_token", "api_key", "password",
	};
	const char *p = query;

	if (query == NULL)
		return 0;
	while (*p != '\0') {
		size_t seg = strcspn(p, "&;");
		size_t nlen = strcspn(p, "=&;");
		char name[32];
		size_t i;

		if (nlen > seg)
			nlen = seg;
		if (http_unescape_name(p, nlen, name, sizeof(name)) == 0)
			for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
				if (strcasecmp(name, names[i]) == 0)
					return 1;
		p += seg;
		if (*p != '\0')
			p++;
	}
	return 0;
}

int
http_cookie_get(const char *hdr, const char *name, const char **val, size_t *len)
{
	size_t nlen = strlen(name);
	const char *p = hdr;
	int found = 0;

	*val = NULL;
	*len = 0;
	while (p != NULL && *p != '\0') {
		size_t seg;

		while (*p == ' ' || *p == ';')
			p++;
		seg = strcspn(p, ";");
		if (seg > nlen && strncmp(p, name, nlen) == 0 && p[nlen] == '=') {
			if (found++ == 0) {
				*val = p + nlen + 1;
				*len = seg - nlen - 1;
				while (*len > 0 && (*val)[*len - 1] == ' ')
					(*len)--;
			}
		}
		p += seg;
	}
	return found;
}

int
http_is_json(const char *ct)
{
	size_t n = strlen("application/json");

	if (ct == NULL)
		return 0;
	while (*ct == ' ')
		ct++;
	if (strncasecmp(ct, "application/json", n) != 0)
		return 0;
	ct += n;
	while (*ct == ' ')
		ct++;
	return *ct == '\0' || *ct == ';';
}

enum kg_err
http_route_path(struct request *req, const char *request_uri, const char *script_name,
    const char *path_info, const char *base)
{
	char full[HTTP_PATH_MAX];
	size_t blen = base == NULL ? 0 : strlen(base);
	const char *p;
	int n;

	if (request_uri != NULL && request_uri[0] != '\0') {
		size_t len = strcspn(request_uri, "?");
		if (len >= sizeof(full))
			return KG_ENOTFOUND;
		memcpy(full, request_uri, len);
		full[len] = '\0';
	} else {
		n = snprintf(full, sizeof(full), "%s%s", script_name ? script_name : "",
		    path_info ? path_info : "");
		if (n < 0 || (size_t)n >= sizeof(full))
			return KG_ENOTFOUND;
	}
	p = full;
	while (blen > 0 && base[blen - 1] == '/')
		blen--;
	if (blen > 0 && strncmp(p, base, blen) == 0 && (p[blen] == '/' || p[blen] == '\0'))
		p += blen;
	if (*p == '\0')
		p = "/";
	if (kg_strlcpy(req->path, p, sizeof(req->path)) >= sizeof(req->path))
		return KG_ENOTFOUND;
	/* "/health/" and "/health" are one route. */
	n = (int)strlen(req->path);
	while (n > 1 && req->path[n - 1] == '/')
		req->path[--n] = '\0';
	return KG_OK;
}

int
http_origin_allowed(const struct addr_origins *l, const char *origin)
{
	size_t i;

	for (i = 0; origin != NULL && i < l->n; i++)
		if (strcmp(origin, l->v[i]) == 0)
			return 1;
	return 0;
}

int
http_referer_allowed(const struct addr_origins *l, const char *referer)
{
	size_t i, n;

	for (i = 0; referer != NULL && i < l->n; i++) {
		n = strlen(l->v[i]);
		if (strncmp(referer, l->v[i], n) == 0 && (referer[n] == '/' || referer[n] == '\0'))
			return 1;
	}
	return 0;
}

void
request_free(struct request *req)
{
	if (req == NULL)
		return;
	if (req->body != NULL) {
		/* The body may hold a password. */
		crypto_wipe(req->body, req->body_len);
		free(req->body);
	}
	memset(req, 0, sizeof(*req));
}

void
response_free(struct response *resp)
{
	unsigned i;

	if (resp == NULL)
		return;
	json_free(resp->json);
	json_free(resp->fields);
	/* Set-Cookie may carry a token secret. */
	for (i = 0; i < resp->nheaders && i < HTTP_MAX_HEADERS; i++)
		crypto_wipe(resp->headers[i].value, sizeof(resp->headers[i].value));
	response_init(resp);
}

void
response_init(struct response *resp)
{
	memset(resp, 0, offsetof(struct response, headers));
}
