/*
 * api: the endpoint handlers. Validated input -> auth_* -> response.
 * No SQL here and no cJSON calls.
 */
#ifndef API_H
#define API_H

#include "kg.h"

struct conf;
struct request;
struct response;

typedef enum kg_err (*api_handler)(struct request *req, struct response *resp);

/* Take the settings handlers need (status_allow, ...). KG_ECONFIG on a bad list. */
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
enum kg_err api_auth(struct request *req, struct response *resp);
/*
 * The FastCGI AUTHORIZER role: 200 with Variable-KEYGATE_* headers when the
 * token is good; any error becomes an explicit refusal (fail closed).
 */
enum kg_err api_authorize(struct request *req, struct response *resp);

#endif
