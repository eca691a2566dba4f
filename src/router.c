#include <stdio.h>
#include <string.h>

#include "api.h"
#include "auth.h"
#include "http.h"
#include "json.h"
#include "log.h"
#include "router.h"

struct route {
	enum http_method method;
	const char *path;      /* ends in "/" "*" to match one more segment */
	api_handler fn;
};

static const struct route routes[] = {
	{ HTTP_GET, "/health", api_health },
	{ HTTP_GET, "/status", api_status },
	{ HTTP_POST, "/join", api_join },
	{ HTTP_POST, "/login", api_login },
	{ HTTP_POST, "/logout", api_logout },
	{ HTTP_GET, "/me", api_me },
	{ HTTP_GET, "/sessions", api_sessions },
	{ HTTP_DELETE, "/sessions/*", api_session_delete },
	{ HTTP_POST, "/password", api_password },
	{ HTTP_POST, "/tokens", api_tokens },
	{ HTTP_GET, "/auth", api_auth },
};

static const struct {
	int status;
	const char *code;
	const char *message;
} router_errors[KG_ERR__MAX] = {
	[KG_OK] = { 200, NULL, NULL },
	[KG_ENOMEM] = { 500, "internal", "Internal error." },
	[KG_EINPUT] = { 400, "invalid_request", "The request is not valid." },
	[KG_EJSON] = { 400, "invalid_json", "The body must be one JSON object in UTF-8." },
	[KG_EAUTH] = { 401, "invalid_credentials", "Invalid username or password." },
	[KG_ETOKEN] = { 401, "invalid_token", "The token is missing, invalid or expired." },
	[KG_EFORBIDDEN] = { 403, "forbidden", "Not allowed." },
	[KG_ECSRF] = { 403, "csrf_failed",
	    "Cross-site request refused: send it from an allowed origin." },
	[KG_ESCOPE] = { 403, "insufficient_scope", "The token does not carry the scope this needs." },
	[KG_EBADSCOPE] = { 400, "invalid_scope", "Those scopes are not yours to ask for." },
	[KG_ENAME_TAKEN] = { 409, "name_taken", "You have an API token of that name." },
	[KG_ETOOMANY] = { 409, "too_many_tokens",
	    "You have as many API tokens as allowed: revoke one first." },
	[KG_ESESSION] = { 403, "session_required",
	    "This needs a session token (a login), not an API token." },
	[KG_ENOTFOUND] = { 404, "not_found", "Not found." },
	[KG_EMETHOD] = { 405, "method_not_allowed", "Method not allowed on this path." },
	[KG_EUSERNAME_TAKEN] = { 409, "username_taken", "That username is taken." },
	[KG_EEMAIL_TAKEN] = { 409, "email_taken", "That email address is taken." },
	[KG_ECONFLICT] = { 409, "conflict", "That conflicts with what exists already." },
	[KG_ETOOLARGE] = { 413, "payload_too_large", "The request body is too large." },
	[KG_EMEDIA] = { 415, "unsupported_media_type", "The body must be application/json." },
	[KG_ETHROTTLED] = { 429, "too_many_requests", "Too many attempts; retry later." },
	[KG_EDB] = { 503, "unavailable", "The service is temporarily unavailable." },
	[KG_ESYS] = { 500, "internal", "Internal error." },
	[KG_ECONFIG] = { 500, "internal", "Internal error." },
};

int
router_status(enum kg_err err)
{
	if ((unsigned)err >= KG_ERR__MAX)
		return 500;
	return router_errors[err].status;
}

void
router_error(struct response *resp, enum kg_err err)
{
	if ((unsigned)err >= KG_ERR__MAX || err == KG_OK)
		err = KG_ESYS;
	resp->status = router_errors[err].status;
	if (resp->json == NULL)
		resp->json = json_obj_new();
	json_set_bool(resp->json, "success", 0);
	json_set_str(resp->json, "error", router_errors[err].code);
	if (!json_has(resp->json, "message"))
		json_set_str(resp->json, "message", router_errors[err].message);
	if (resp->fields != NULL) {
		json_set_obj(resp->json, "fields", resp->fields);
		resp->fields = NULL;
	}
	if (resp->status == 401 &&
	    http_header_add(resp, "WWW-Authenticate", "Bearer realm=\"keygate\"%s",
		resp->token_presented && err == KG_ETOKEN ? ", error=\"invalid_token\"" : "") != KG_OK)
		log_warnx("cannot add WWW-Authenticate");
	/* RFC 6750 3.1: which scope; the scope syntax needs no escaping in a quoted string. */
	if (err == KG_ESCOPE && resp->scope_needed != NULL) {
		json_set_str(resp->json, "scope", resp->scope_needed);
		if (http_header_add(resp, "WWW-Authenticate",
		        "Bearer realm=\"keygate\", error=\"insufficient_scope\", scope=\"%s\"",
		        resp->scope_needed) != KG_OK)
			log_warnx("cannot add WWW-Authenticate");
	}
	if (resp->status == 503 || resp->status == 429) {
		long after = resp->retry_after > 0 ? resp->retry_after : auth_retry_after();
		if (http_header_add(resp, "Retry-After", "%ld", after) != KG_OK)
			log_warnx("cannot add Retry-After");
	}
}

/* Does path match pattern? Sets *param for a pattern ending in a wildcard segment. */
static int
router_match(const char *pattern, const char *path, const char **param)
{
	size_t plen = strlen(pattern);

	*param = NULL;
	if (plen >= 2 && strcmp(pattern + plen - 2, "/*") == 0) {
		const char *seg;
		if (strncmp(path, pattern, plen - 1) != 0)
			return 0;
		seg = path + plen - 1;
		if (*seg == '\0' || strchr(seg, '/') != NULL)
			return 0;
		*param = seg;
		return 1;
	}
	return strcmp(pattern, path) == 0;
}

static enum kg_err
router_dispatch(struct request *req, struct response *resp)
{
	char allow[128] = "";
	const char *param;
	size_t i, used = 0;
	int n;

	for (i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
		if (!router_match(routes[i].path, req->path, &param))
			continue;
		if (routes[i].method == req->method) {
			req->path_param = param;
			return routes[i].fn(req, resp);
		}
		/* HEAD is GET without the body. */
		if (routes[i].method == HTTP_GET && req->method == HTTP_HEAD) {
			req->path_param = param;
			resp->no_body = 1;
			return routes[i].fn(req, resp);
		}
		n = snprintf(allow + used, sizeof(allow) - used, "%s%s", used > 0 ? ", " : "",
		    http_method_name(routes[i].method));
		if (n > 0 && (size_t)n < sizeof(allow) - used)
			used += (size_t)n;
	}
	if (used == 0)
		return KG_ENOTFOUND;
	if (http_header_add(resp, "Allow", "%s", allow) != KG_OK)
		return KG_ESYS;
	return KG_EMETHOD;
}

void
router_handle(struct request *req, struct response *resp)
{
	enum kg_err err;

	if (req->authorizer) {
		/* Whatever the error, an explicit non-200 status: a silent reply would mean "allowed". */
		if ((err = api_authorize(req, resp)) != KG_OK)
			router_error(resp, err == KG_EINPUT ? KG_ETOKEN : err);
		if (resp->status == 0)
			router_error(resp, KG_ESYS);
		return;
	}
	if (req->method == HTTP_OPTIONS) {
		if ((err = api_preflight(req, resp)) != KG_OK)
			router_error(resp, err);
		api_cors(req, resp);
		return;
	}
	if (http_query_has_credentials(req->query)) {
		resp->json = json_obj_new();
		json_set_str(resp->json, "message",
		    "Credentials must not be sent in the query string.");
		err = KG_EINPUT;
	} else if (req->body_len > 0 && !http_is_json(req->content_type))
		err = KG_EMEDIA;
	else
		err = router_dispatch(req, resp);
	if (err != KG_OK)
		router_error(resp, err);
	else if (resp->status == 0)
		resp->status = 200;
	api_cors(req, resp);
}
