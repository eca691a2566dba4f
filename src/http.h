/*
 * http: struct request and struct response, status codes, and parsing of
 * the request headers keygate cares about.
 */
#ifndef HTTP_H
#define HTTP_H

#include <stddef.h>
#include <time.h>

#include "kg.h"

enum http_method {
	HTTP_GET, HTTP_POST, HTTP_DELETE, HTTP_PUT, HTTP_PATCH, HTTP_HEAD,
	HTTP_OPTIONS, HTTP_OTHER, HTTP_METHOD__MAX
};

#define HTTP_PATH_MAX 512
#define HTTP_MAX_HEADERS 16
/*
 * Room for the longest header keygate sends: the identity headers of a
 * token with the most and longest scopes (AUTH_MAX_SCOPES of AUTH_SCOPE_MAX
 * characters, space-separated: 1039 bytes and a NUL). api.c checks it.
 */
#define HTTP_HEADER_VALUE_MAX 1040

struct addr_origins;
struct json_obj;

/* One request. Strings point into the FastCGI parameters and live until request_free(). */
struct request {
	enum http_method method;
	const char *method_name;
	char path[HTTP_PATH_MAX];   /* route path, base_path stripped, no query */
	const char *path_param;     /* the trailing segment of a parametrised route */
	const char *query;          /* raw QUERY_STRING, may be NULL */
	const char *remote_addr;
	const char *content_type;
	long content_length;        /* -1 when absent */
	const char *authorization;
	const char *hdr_key;
	const char *hdr_secret;
	const char *user_agent;
	const char *forwarded_for;  /* X-Forwarded-For, trusted only from trusted_proxies */
	const char *cookie;
	const char *origin;
	const char *referer;
	const char *requested_with; /* X-Requested-With: a cross-site form cannot send it */
	const char *preflight_method; /* Access-Control-Request-Method */
	/*
	 * The scope a protected location requires (KEYGATE_REQUIRE_SCOPE), and
	 * for safe methods (GET, HEAD, OPTIONS: _READ) or the others (_WRITE)
	 * instead; set only by the web server's configuration. May be NULL.
	 */
	const char *require_scope;
	const char *require_scope_read;
	const char *require_scope_write;
	int authorizer;             /* FCGI_ROLE=AUTHORIZER */
	char *body;                 /* owned */
	size_t body_len;
	struct timespec start;
};

struct http_header {
	const char *name;           /* static string */
	char value[HTTP_HEADER_VALUE_MAX];
};

/* One response under construction; freed by response_free(). */
struct response {
	int status;
	struct json_obj *json;      /* body; error replies add to it */
	struct json_obj *fields;    /* per-field validation problems */
	unsigned nheaders;
	long retry_after;           /* seconds; > 0 adds Retry-After */
	int token_presented;        /* a 401 then says error="invalid_token" */
	const char *scope_needed; /* a 403 insufficient_scope names it (static or request-owned) */
	int no_body;                /* HEAD, 204, authorizer allow: headers only */
	int bare;                   /* authorizer allow: no Content-Type or cache headers either */
	/* Last: 16 KiB that response_init leaves alone; only [0, nheaders) is valid. */
	struct http_header headers[HTTP_MAX_HEADERS];
};

/* An empty response, without zeroing the header slots it has not used. */
void response_init(struct response *resp);

/* Reason phrase for a status code ("OK", "Not Found", ...). */
const char *http_status_text(int status);
/* "200 OK" for 200; NULL for a status keygate never sends. */
const char *http_status_line(int status);

/* Method from its name; HTTP_OTHER for anything unknown. */
enum http_method http_method_parse(const char *name);
const char *http_method_name(enum http_method m);

/*
 * Add a header; value is formatted with snprintf. KG_ESYS when the header
 * table is full or the value would be truncated: never send half a header.
 */
enum kg_err http_header_add(struct response *resp, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4))) KG_MUSTCHECK;

/*
 * Extract the credential from an Authorization header value. Only the
 * Bearer scheme (any case) is accepted; *token points into hdr and *len is
 * the credential's length without trailing blanks. KG_EINPUT on any other
 * scheme, an empty credential or inner white space.
 */
enum kg_err http_bearer(const char *hdr, const char **token, size_t *len) KG_MUSTCHECK;

/*
 * 1 when the query string carries a parameter whose name is one that holds
 * credentials (key, secret, token, access_token, api_key, password).
 */
int http_query_has_credentials(const char *query);

/*
 * Find cookie name in a Cookie header; val and len point into hdr. Returns how
 * many cookies of that name there are (more than one is ambiguous: a
 * sibling domain may have planted one).
 */
int http_cookie_get(const char *hdr, const char *name, const char **val, size_t *len);

/* Is this Content-Type application/json (parameters allowed)? */
int http_is_json(const char *content_type);

/* Compute req->path from REQUEST_URI (or SCRIPT_NAME + PATH_INFO), minus base. */
enum kg_err http_route_path(struct request *req, const char *request_uri,
    const char *script_name, const char *path_info, const char *base) KG_MUSTCHECK;

/* 1 when origin is exactly one of l (allowed_origins, read by addr_origins_parse). */
int http_origin_allowed(const struct addr_origins *l, const char *origin);
/* 1 when referer is a URL under one of l. */
int http_referer_allowed(const struct addr_origins *l, const char *referer);

void request_free(struct request *req);
void response_free(struct response *resp);

#endif
