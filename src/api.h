/*
 * api: the endpoint handlers. Validated input -> auth_* -> response.
 * No SQL here and no cJSON calls.
 */
#ifndef API_H
#define API_H

#include <stddef.h>

#include "json.h"
#include "kg.h"

struct conf;
struct request;
struct response;

/* Each endpoint's body fields, by index into its field table (api.c). */
enum api_join_field { JOIN_USERNAME, JOIN_PASSWORD, JOIN_EMAIL, JOIN__MAX };
enum api_login_field {
	LOGIN_USERNAME,
	LOGIN_PASSWORD,
	LOGIN_REMEMBER,
	LOGIN_SCOPES,
	LOGIN_KEY,
	LOGIN_SECRET,
	LOGIN_COOKIE,
	LOGIN__MAX
};
enum api_logout_field {
	LOGOUT_KEY,
	LOGOUT_SECRET,
	LOGOUT_ALL,
	LOGOUT_INCLUDE_API_TOKENS,
	LOGOUT__MAX
};
enum api_password_field { PWCHANGE_CURRENT, PWCHANGE_NEW, PWCHANGE__MAX };
enum api_tokens_field {
	TOKENS_NAME,
	TOKENS_CURRENT,
	TOKENS_SCOPES,
	TOKENS_EXPIRES_IN,
	TOKENS__MAX
};

/* The fields each endpoint accepts in its JSON body, indexed by the enums above. */
extern const struct json_field api_join_fields[], api_login_fields[], api_logout_fields[],
    api_password_fields[], api_tokens_fields[];
extern const size_t api_join_nfields, api_login_nfields, api_logout_nfields,
    api_password_nfields, api_tokens_nfields;

typedef enum kg_err (*api_handler)(struct request *req, struct response *resp);

/*
 * Take the settings handlers need (the lists conf_load parsed, cookie mode),
 * as copies: c may go. KG_ECONFIG when base_path is too long for a cookie Path.
 */
enum kg_err api_configure(const struct conf *c) KG_MUSTCHECK;

/* OPTIONS preflight from an allowed origin: 204 with the allowed methods and headers. */
enum kg_err api_preflight(struct request *req, struct response *resp);
/* CORS headers on a response to an allowed origin. */
void api_cors(const struct request *req, struct response *resp);

enum kg_err api_health(struct request *req, struct response *resp);
enum kg_err api_status(struct request *req, struct response *resp);
enum kg_err api_join(struct request *req, struct response *resp);
enum kg_err api_login(struct request *req, struct response *resp);
enum kg_err api_logout(struct request *req, struct response *resp);
enum kg_err api_me(struct request *req, struct response *resp);
enum kg_err api_sessions(struct request *req, struct response *resp);
enum kg_err api_session_delete(struct request *req, struct response *resp);
enum kg_err api_password(struct request *req, struct response *resp);
/* POST /tokens: a personal access token for scripts and CI (a session only). */
enum kg_err api_tokens(struct request *req, struct response *resp);
enum kg_err api_auth(struct request *req, struct response *resp);
/*
 * The FastCGI AUTHORIZER role: 200 with Variable-KEYGATE_* headers when the
 * token is good; any error becomes an explicit refusal (fail closed).
 */
enum kg_err api_authorize(struct request *req, struct response *resp);

#endif
