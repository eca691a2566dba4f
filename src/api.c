#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"
#include "api.h"
#include "auth.h"
#include "conf.h"
#include "credential.h"
#include "hashslot.h"
#include "http.h"
#include "json.h"
#include "log.h"
#include "password.h"
#include "scope.h"
#include "scoreboard.h"

#define API_UA_MAX 255

static struct addr_list api_status_allow;
static struct addr_list api_trusted_proxies;
static unsigned api_ipv6_prefix;

/* Browser settings: the cookie keygate sets (credential.c reads it back). */
static struct {
	char cookie_name[64];
	int cookie_secure;
	char cookie_path[256];
	int lifetime, remember_lifetime;
} api_web;

enum kg_err
api_configure(const struct conf *c)
{
	enum kg_err err;
	int n;

	/* conf_load parsed the lists: copies, so that c may go. */
	api_status_allow = c->status_allow_list;
	api_trusted_proxies = c->trusted_proxies_list;
	api_ipv6_prefix = (unsigned)c->throttle_ipv6_prefix;
	if ((err = credential_configure(c)) != KG_OK)
		return err;
	(void)snprintf(api_web.cookie_name, sizeof(api_web.cookie_name), "%s", c->cookie_name);
	api_web.cookie_secure = c->cookie_secure;
	n = snprintf(api_web.cookie_path, sizeof(api_web.cookie_path), "%s",
	    c->base_path[0] != '\0' ? c->base_path : "/");
	if (n < 0 || (size_t)n >= sizeof(api_web.cookie_path))
		return KG_ECONFIG;
	api_web.lifetime = c->token_lifetime;
	api_web.remember_lifetime = c->remember_lifetime;
	return KG_OK;
}

static enum kg_err
api_set_cookie(struct response *resp, const char *value, long max_age)
{
	return http_header_add(resp, "Set-Cookie", "%s=%s; Path=%s; Max-Age=%ld; HttpOnly;%s SameSite=Strict",
	    api_web.cookie_name, value, api_web.cookie_path, max_age,
	    api_web.cookie_secure ? " Secure;" : "");
}

/* Who is asking, for throttling, sessions and the audit trail. */
struct api_client {
	struct auth_client cl;
	char ip[64];
	char throttle_addr[ADDR_KEY_MAX];
	char ua[API_UA_MAX + 1];
};

static struct auth_client *
api_client(const struct request *req, struct api_client *ac)
{
	size_t i;
	const char *ua = req->user_agent;

	memset(ac, 0, sizeof(*ac));
	addr_client(req->remote_addr, req->forwarded_for, &api_trusted_proxies, ac->ip,
	    sizeof(ac->ip));
	/*
	 * Requests without a usable address share one key rather than
	 * escape the per-address limits; an IPv6 client counts as its network.
	 */
	addr_throttle_key(ac->ip, api_ipv6_prefix, ac->throttle_addr, sizeof(ac->throttle_addr));
	/* Fit for a text column and a log: printable ASCII, bounded. */
	for (i = 0; ua != NULL && ua[i] != '\0' && i < API_UA_MAX; i++)
		ac->ua[i] = (ua[i] >= 0x20 && ua[i] < 0x7f) ? ua[i] : '?';
	ac->ua[i] = '\0';
	ac->cl.ip = ac->ip;
	ac->cl.user_agent = ac->ua;
	ac->cl.throttle_addr = ac->throttle_addr;
	return &ac->cl;
}

#define NFIELDS(f) (sizeof(f) / sizeof((f)[0]))

/*
 * The body of each endpoint, read by name: each table's index enum, with
 * designated initializers and a count checked at compile time, so that
 * reordering a table cannot make a handler read the wrong field. Also fed
 * to the fuzzer (tests/fuzz/fuzz_body.c).
 */
const struct json_field api_join_fields[] = {
	[JOIN_USERNAME] = { "username", JF_STRING, 256, 1 },
	[JOIN_PASSWORD] = { "password", JF_STRING, PASSWORD_MAX_BYTES, 1 },
	[JOIN_EMAIL] = { "email", JF_STRING, 254, 0 },
};
_Static_assert(NFIELDS(api_join_fields) == JOIN__MAX, "a join field per name");
const size_t api_join_nfields = NFIELDS(api_join_fields);

const struct json_field api_login_fields[] = {
	[LOGIN_USERNAME] = { "username", JF_STRING, 256, 0 },
	[LOGIN_PASSWORD] = { "password", JF_STRING, PASSWORD_MAX_BYTES, 0 },
	[LOGIN_REMEMBER] = { "remember", JF_BOOL, 0, 0 },
	[LOGIN_SCOPES] = { "scopes", JF_STRINGS, SCOPE_MAX, 0 },
	[LOGIN_KEY] = { "key", JF_STRING, 256, 0 },
	[LOGIN_SECRET] = { "secret", JF_STRING, 256, 0 },
	[LOGIN_COOKIE] = { "cookie", JF_BOOL, 0, 0 },
};
_Static_assert(NFIELDS(api_login_fields) == LOGIN__MAX, "a login field per name");
const size_t api_login_nfields = NFIELDS(api_login_fields);

const struct json_field api_logout_fields[] = {
	[LOGOUT_KEY] = { "key", JF_STRING, 256, 0 },
	[LOGOUT_SECRET] = { "secret", JF_STRING, 256, 0 },
	[LOGOUT_ALL] = { "all", JF_BOOL, 0, 0 },
	[LOGOUT_INCLUDE_API_TOKENS] = { "include_api_tokens", JF_BOOL, 0, 0 },
};
_Static_assert(NFIELDS(api_logout_fields) == LOGOUT__MAX, "a logout field per name");
const size_t api_logout_nfields = NFIELDS(api_logout_fields);

const struct json_field api_password_fields[] = {
	[PWCHANGE_CURRENT] = { "current_password", JF_STRING, PASSWORD_MAX_BYTES, 1 },
	[PWCHANGE_NEW] = { "new_password", JF_STRING, PASSWORD_MAX_BYTES, 1 },
};
_Static_assert(NFIELDS(api_password_fields) == PWCHANGE__MAX, "a password field per name");

const struct json_field api_tokens_fields[] = {
	[TOKENS_NAME] = { "name", JF_STRING, 256, 1 },
	[TOKENS_CURRENT] = { "current_password", JF_STRING, PASSWORD_MAX_BYTES, 1 },
	[TOKENS_SCOPES] = { "scopes", JF_STRINGS, SCOPE_MAX, 0 },
	/* seconds; bounded again by api_token_max_lifetime */
	[TOKENS_EXPIRES_IN] = { "expires_in", JF_INT, 315360000, 0 },
};
_Static_assert(NFIELDS(api_tokens_fields) == TOKENS__MAX, "a tokens field per name");
const size_t api_tokens_nfields = NFIELDS(api_tokens_fields);
const size_t api_password_nfields = NFIELDS(api_password_fields);

/* Parse the body against fields; on failure resp carries the field problems. */
static enum kg_err
api_body(const struct request *req, struct response *resp, const struct json_field *fields,
    size_t n, struct json_value *vals)
{
	return json_parse_fields(req->body, req->body_len, fields, n, vals, &resp->fields);
}

static void
api_field_error(struct response *resp, const char *field, const char *reason)
{
	if (resp->fields == NULL)
		resp->fields = json_obj_new();
	json_set_str(resp->fields, field, reason);
}

/*
 * The token a request presents, verified. Not presenting one is KG_ETOKEN
 * too; resp remembers whether one was presented for WWW-Authenticate.
 */
static enum kg_err
api_authenticate(const struct request *req, struct response *resp, const char *body_key,
    const char *body_secret, struct auth_session *s)
{
	struct credential cr;
	enum kg_err err;

	err = credential_read(req, body_key, body_secret, &cr);
	if (err == KG_EINPUT && cr.missing != NULL)
		api_field_error(resp, cr.missing, "required");
	resp->token_presented = cr.presented;
	if (err == KG_OK && !cr.presented)
		err = KG_ETOKEN;
	if (err == KG_OK)
		err = auth_verify(&cr.token, s);
	credential_wipe(&cr);
	return err;
}

static void
api_set_scopes(struct json_obj *o, const char *key, const struct scope_set *set)
{
	const char *v[SCOPE_SET_MAX];
	size_t i;

	for (i = 0; i < set->n; i++)
		v[i] = set->s[i];
	json_set_strv(o, key, v, set->n);
}

/*
 * The JSON strings of a scopes field as a set; fe_field "scopes" and the
 * reason in resp on failure (an invalid scope, too many, a repeat is fine).
 */
static enum kg_err
api_scopes_field(struct response *resp, const struct json_value *v, struct scope_set *set)
{
	if (scope_set_parse((const char *const *)v->strv, v->n, set, NULL) == KG_OK && set->n > 0)
		return KG_OK;
	api_field_error(resp, "scopes", "invalid");
	return KG_EINPUT;
}

/* 400 invalid_scope: which of the scopes asked for are not the caller's to ask for. */
static enum kg_err
api_bad_scope(struct response *resp, const struct scope_set *missing)
{
	if (resp->json == NULL)
		resp->json = json_obj_new();
	api_set_scopes(resp->json, "scopes", missing);
	return KG_EBADSCOPE;
}

static struct json_obj *
api_ok(struct response *resp, int status)
{
	resp->status = status;
	resp->json = json_obj_new();
	json_set_bool(resp->json, "success", 1);
	return resp->json;
}

enum kg_err
api_health(struct request *req, struct response *resp)
{
	enum kg_err err = auth_store_ping();

	if (err != KG_OK)
		return err;
	json_set_str(api_ok(resp, 200), "status", "ok");
	return KG_OK;
}

enum kg_err
api_status(struct request *req, struct response *resp)
{
	struct json_obj *o;

	if (!addr_list_match(&api_status_allow, req->remote_addr))
		return KG_EFORBIDDEN;
	o = api_ok(resp, 200);
	scoreboard_report(o);
	hashslot_report(o);
	return KG_OK;
}

enum kg_err
api_join(struct request *req, struct response *resp)
{
	struct json_value v[NFIELDS(api_join_fields)];
	struct auth_field_error fe = { NULL, NULL };
	struct api_client ac;
	struct auth_client *cl = api_client(req, &ac);
	long long user_id = 0;
	enum kg_err err;

	if ((err = api_body(req, resp, api_join_fields, NFIELDS(api_join_fields), v)) != KG_OK)
		return err;
	err = auth_register(v[JOIN_USERNAME].str, v[JOIN_EMAIL].present ? v[JOIN_EMAIL].str : NULL,
	    v[JOIN_PASSWORD].str, v[JOIN_PASSWORD].len, cl, &user_id, &fe);
	resp->retry_after = cl->retry_after;
	if (err == KG_EINPUT && fe.field != NULL)
		api_field_error(resp, fe.field, fe.reason);
	if (err == KG_OK)
		json_set_int(api_ok(resp, 201), "user_id", user_id);
	json_values_free(v, NFIELDS(api_join_fields));
	return err;
}

/* POST /login with key+secret: the original client's "am I still logged in?" */
static enum kg_err
api_login_token(struct request *req, struct response *resp, const char *key, const char *secret)
{
	struct auth_session s;
	enum kg_err err;

	if ((err = api_authenticate(req, resp, key, secret, &s)) != KG_OK)
		return err;
	json_set_int(api_ok(resp, 200), "user_id", s.user_id);
	api_set_scopes(resp->json, "scopes", &s.scopes);
	return KG_OK;
}

enum kg_err
api_login(struct request *req, struct response *resp)
{
	struct json_value v[NFIELDS(api_login_fields)];
	struct auth_issued issued;
	struct api_client ac;
	struct auth_client *cl = api_client(req, &ac);
	char token[TOKEN_LEN + 1] = "";
	struct scope_set want, missing;
	struct json_obj *o;
	enum kg_err err;
	int cookie, remember;

	memset(&issued, 0, sizeof(issued));
	memset(&want, 0, sizeof(want));
	if ((err = api_body(req, resp, api_login_fields, NFIELDS(api_login_fields), v)) != KG_OK) {
		/* Too many or too long scopes are just invalid scopes to the client. */
		const char *why = json_get_str(resp->fields, "scopes");
		if (why != NULL && strcmp(why, "too_long") == 0)
			json_set_str(resp->fields, "scopes", "invalid");
		return err;
	}
	if (!v[LOGIN_USERNAME].present && !v[LOGIN_PASSWORD].present) {
		if (v[LOGIN_KEY].present || v[LOGIN_SECRET].present || credential_in_headers(req)) {
			err = api_login_token(req, resp, v[LOGIN_KEY].str, v[LOGIN_SECRET].str);
			goto out;
		}
	}
	/* A username/password login. */
	err = KG_EINPUT;
	if (!v[LOGIN_USERNAME].present)
		api_field_error(resp, "username", "required");
	if (!v[LOGIN_PASSWORD].present)
		api_field_error(resp, "password", "required");
	if (v[LOGIN_KEY].present || v[LOGIN_SECRET].present)
		api_field_error(resp, v[LOGIN_KEY].present ? "key" : "secret", "not_with_password");
	if (v[LOGIN_SCOPES].present)
		(void)api_scopes_field(resp, &v[LOGIN_SCOPES], &want);
	if (resp->fields != NULL)
		goto out;
	/*
	 * A token header beside the password is a second way of presenting
	 * credentials (API.md): refused, never guessed at. keygate's cookie is
	 * not one: a browser sends a leftover cookie on its own, and logging in
	 * again must work (the login replaces it).
	 */
	if (credential_in_headers(req))
		goto out;
	cookie = v[LOGIN_COOKIE].boolean;
	remember = v[LOGIN_REMEMBER].boolean;
	/* A login that sets a cookie must come from a page we trust (login CSRF). */
	if (cookie && req->origin != NULL && !credential_origin_allowed(req->origin)) {
		err = KG_ECSRF;
		goto out;
	}
	err = auth_login(v[LOGIN_USERNAME].str, v[LOGIN_PASSWORD].str, v[LOGIN_PASSWORD].len,
	    remember, &want, cl, &issued, &missing);
	resp->retry_after = cl->retry_after;
	if (err == KG_EINPUT)
		api_field_error(resp, "password", "too_long");
	if (err == KG_EBADSCOPE)
		err = api_bad_scope(resp, &missing);
	if (err != KG_OK)
		goto out;
	token_format(&issued.token, token, sizeof(token));
	if (cookie &&
	    (err = api_set_cookie(resp, token,
	         remember ? api_web.remember_lifetime : api_web.lifetime)) != KG_OK)
		goto out;
	o = api_ok(resp, 200);
	json_set_int(o, "user_id", issued.user_id);
	json_set_str(o, "key", issued.token.key);
	/* In cookie mode no script ever sees the secret. */
	if (!cookie) {
		json_set_str(o, "secret", issued.token.secret);
		json_set_str(o, "token", token);
	}
	json_set_str(o, "expires_at", issued.expires_at);
	json_set_int(o, "idle_timeout", issued.idle_timeout);
	/* What the token may do: what it asked for, within the grant. */
	api_set_scopes(o, "scopes", &issued.scopes);
out:
	/* On every path: a failure after the token was formatted must not leave it. */
	crypto_wipe(token, sizeof(token));
	auth_issued_wipe(&issued);
	json_values_free(v, NFIELDS(api_login_fields));
	return err;
}

enum kg_err
api_logout(struct request *req, struct response *resp)
{
	struct json_value v[NFIELDS(api_logout_fields)];
	struct auth_session s;
	struct api_client ac;
	long removed = 0;
	enum kg_err err;

	if ((err = api_body(req, resp, api_logout_fields, NFIELDS(api_logout_fields), v)) != KG_OK)
		return err;
	err = api_authenticate(req, resp, v[LOGOUT_KEY].str, v[LOGOUT_SECRET].str, &s);
	/* Whatever happens, a browser that sent our cookie loses it (not on a CSRF refusal). */
	if (err != KG_ECSRF && credential_has_cookie(req) && api_set_cookie(resp, "", 0) != KG_OK)
		err = KG_ESYS;
	if (err == KG_ETOKEN) {
		/* The original client reads key_removed on failure too. */
		resp->json = json_obj_new();
		json_set_bool(resp->json, "key_removed", 0);
	}
	/* Any token may end itself; ending others takes a session. */
	if (err == KG_OK && v[LOGOUT_ALL].boolean && s.api)
		err = KG_ESESSION;
	if (err == KG_OK)
		err = auth_logout(&s, v[LOGOUT_ALL].boolean,
		    v[LOGOUT_INCLUDE_API_TOKENS].boolean, api_client(req, &ac), &removed);
	if (err == KG_OK) {
		if (v[LOGOUT_ALL].boolean)
			json_set_int(api_ok(resp, 200), "keys_removed", removed);
		else
			json_set_bool(api_ok(resp, 200), "key_removed", removed == 1);
	}
	json_values_free(v, NFIELDS(api_logout_fields));
	return err;
}

static const char *
api_kind(int api)
{
	return api ? "api" : "session";
}

enum kg_err
api_me(struct request *req, struct response *resp)
{
	struct auth_session s;
	struct json_obj *o;
	enum kg_err err;

	/* The token check already brought the profile: no second query. */
	if ((err = api_authenticate(req, resp, NULL, NULL, &s)) != KG_OK)
		return err;
	o = api_ok(resp, 200);
	json_set_int(o, "user_id", s.user_id);
	json_set_str(o, "username", s.username);
	json_set_str(o, "email", s.has_email ? s.email : NULL);
	json_set_str(o, "created_at", s.created_at);
	api_set_scopes(o, "scopes", &s.scopes);
	api_set_scopes(o, "granted_scopes", &s.granted);
	json_set_str(o, "token_kind", api_kind(s.api));
	return KG_OK;
}

/* A session, for what only a session may do (API.md, "What each endpoint needs"). */
static enum kg_err
api_authenticate_session(const struct request *req, struct response *resp, struct auth_session *s)
{
	enum kg_err err = api_authenticate(req, resp, NULL, NULL, s);

	return err == KG_OK && s->api ? KG_ESESSION : err;
}

enum kg_err
api_sessions(struct request *req, struct response *resp)
{
	struct auth_session s;
	struct auth_token_info *rows = NULL;
	struct json_obj *arr;
	size_t i, n = 0;
	enum kg_err err;

	if ((err = api_authenticate_session(req, resp, &s)) != KG_OK)
		return err;
	if ((err = auth_tokens(s.user_id, &rows, &n)) != KG_OK)
		return err;
	arr = json_arr_new();
	for (i = 0; i < n; i++) {
		struct json_obj *o = json_obj_new();
		json_set_str(o, "key", rows[i].key);
		json_set_str(o, "kind", api_kind(rows[i].api));
		json_set_str(o, "name", rows[i].api ? rows[i].name : NULL);
		json_set_str(o, "created_at", rows[i].created_at);
		json_set_str(o, "last_used_at", rows[i].last_used_at);
		json_set_str(o, "expires_at", rows[i].expires_at);
		json_set_str(o, "ip", rows[i].ip[0] != '\0' ? rows[i].ip : NULL);
		json_set_str(o, "user_agent", rows[i].user_agent[0] != '\0' ? rows[i].user_agent : NULL);
		json_set_bool(o, "current", strcmp(rows[i].key, s.key) == 0);
		api_set_scopes(o, "scopes", &rows[i].scopes);
		json_set_obj(arr, NULL, o);
	}
	json_set_obj(api_ok(resp, 200), "sessions", arr);
	free(rows);
	return KG_OK;
}

enum kg_err
api_session_delete(struct request *req, struct response *resp)
{
	struct auth_session s;
	struct api_client ac;
	enum kg_err err;

	if ((err = api_authenticate(req, resp, NULL, NULL, &s)) != KG_OK)
		return err;
	/* An API token may revoke itself, no other token. */
	if (s.api && strcmp(req->path_param, s.key) != 0)
		return KG_ESESSION;
	if ((err = auth_revoke(s.user_id, s.username, req->path_param, api_client(req, &ac))) != KG_OK)
		return err;
	json_set_bool(api_ok(resp, 200), "key_removed", 1);
	return KG_OK;
}

enum kg_err
api_password(struct request *req, struct response *resp)
{
	struct json_value v[NFIELDS(api_password_fields)];
	struct auth_field_error fe = { NULL, NULL };
	struct auth_session s;
	struct api_client ac;
	struct auth_client *cl = api_client(req, &ac);
	long revoked = 0, api_revoked = 0;
	enum kg_err err;

	if ((err = api_authenticate_session(req, resp, &s)) != KG_OK)
		return err;
	if ((err = api_body(req, resp, api_password_fields, NFIELDS(api_password_fields), v)) != KG_OK)
		return err;
	err = auth_change_password(s.user_id, v[PWCHANGE_CURRENT].str, v[PWCHANGE_CURRENT].len,
	    v[PWCHANGE_NEW].str, v[PWCHANGE_NEW].len, s.key, cl, &revoked, &api_revoked, &fe);
	resp->retry_after = cl->retry_after;
	if (err == KG_EINPUT && fe.field != NULL)
		api_field_error(resp, fe.field, fe.reason);
	if (err == KG_OK) {
		struct json_obj *o = api_ok(resp, 200);

		json_set_int(o, "keys_removed", revoked);
		json_set_int(o, "api_tokens_removed", api_revoked);
	}
	json_values_free(v, NFIELDS(api_password_fields));
	return err;
}

enum kg_err
api_tokens(struct request *req, struct response *resp)
{
	struct json_value v[NFIELDS(api_tokens_fields)];
	struct auth_field_error fe = { NULL, NULL };
	struct auth_session s;
	struct auth_issued issued;
	struct api_client ac;
	struct auth_client *cl = api_client(req, &ac);
	struct scope_set want, missing;
	char token[TOKEN_LEN + 1] = "";
	struct json_obj *o;
	enum kg_err err;

	memset(&issued, 0, sizeof(issued));
	memset(&want, 0, sizeof(want));
	if ((err = api_authenticate_session(req, resp, &s)) != KG_OK)
		return err;
	if ((err = api_body(req, resp, api_tokens_fields, NFIELDS(api_tokens_fields), v)) != KG_OK) {
		const char *why = json_get_str(resp->fields, "scopes");
		if (why != NULL && strcmp(why, "too_long") == 0)
			json_set_str(resp->fields, "scopes", "invalid");
		return err;
	}
	if (v[TOKENS_SCOPES].present && api_scopes_field(resp, &v[TOKENS_SCOPES], &want) != KG_OK) {
		err = KG_EINPUT;
		goto out;
	}
	if (v[TOKENS_EXPIRES_IN].present && v[TOKENS_EXPIRES_IN].num == 0) {
		api_field_error(resp, "expires_in", "invalid");
		err = KG_EINPUT;
		goto out;
	}
	err = auth_api_token_create(&s, v[TOKENS_NAME].str, v[TOKENS_CURRENT].str,
	    v[TOKENS_CURRENT].len, v[TOKENS_SCOPES].present ? &want : NULL,
	    v[TOKENS_EXPIRES_IN].present ? (long)v[TOKENS_EXPIRES_IN].num : 0, cl, &issued,
	    &missing, &fe);
	resp->retry_after = cl->retry_after;
	if (err == KG_EINPUT && fe.field != NULL)
		api_field_error(resp, fe.field, fe.reason);
	if (err == KG_EBADSCOPE)
		err = api_bad_scope(resp, &missing);
	if (err != KG_OK)
		goto out;
	token_format(&issued.token, token, sizeof(token));
	o = api_ok(resp, 201);
	json_set_str(o, "kind", "api");
	json_set_str(o, "name", v[TOKENS_NAME].str);
	json_set_int(o, "user_id", issued.user_id);
	json_set_str(o, "key", issued.token.key);
	/* Shown once: only its digest is kept. */
	json_set_str(o, "secret", issued.token.secret);
	json_set_str(o, "token", token);
	json_set_str(o, "expires_at", issued.expires_at);
	api_set_scopes(o, "scopes", &issued.scopes);
out:
	crypto_wipe(token, sizeof(token));
	auth_issued_wipe(&issued);
	json_values_free(v, NFIELDS(api_tokens_fields));
	return err;
}

/*
 * Identity headers for the protected application. Only the user id, name
 * and scopes: Apache forwards authorizer headers to the client, so nothing
 * secret may ever go here.
 */
/* Every scope set a login accepts fits one header: never a 500 for it. */
_Static_assert(SCOPE_SET_MAX *(SCOPE_MAX + 1) <= HTTP_HEADER_VALUE_MAX,
    "the longest scope list must fit one header value");

static enum kg_err
api_identity_headers(struct response *resp, const struct auth_session *s, const char *prefix)
{
	char scopes[SCOPE_SET_MAX * (SCOPE_MAX + 1) + 1] = "";
	size_t i, used = 0;
	enum kg_err err;

	for (i = 0; i < s->scopes.n; i++) {
		int n = snprintf(scopes + used, sizeof(scopes) - used, "%s%s", i ? " " : "",
		    s->scopes.s[i]);
		if (n < 0 || (size_t)n >= sizeof(scopes) - used)
			return KG_ESYS;
		used += (size_t)n;
	}
	if ((err = http_header_add(resp, prefix[0] == 'V' ? "Variable-KEYGATE_USER_ID" :
	    "X-Keygate-User-Id", "%lld", s->user_id)) != KG_OK)
		return err;
	if ((err = http_header_add(resp, prefix[0] == 'V' ? "Variable-KEYGATE_USERNAME" :
	    "X-Keygate-Username", "%s", s->username)) != KG_OK)
		return err;
	return http_header_add(resp, prefix[0] == 'V' ? "Variable-KEYGATE_SCOPES" :
	    "X-Keygate-Scopes", "%s", scopes);
}

/*
 * The scope the web server's configuration requires of req's method at
 * this location (KEYGATE_REQUIRE_SCOPE_READ for GET, HEAD and OPTIONS,
 * _WRITE for the others, else KEYGATE_REQUIRE_SCOPE), or NULL for none.
 */
static const char *
api_required_scope(const struct request *req)
{
	int safe = req->method == HTTP_GET || req->method == HTTP_HEAD || req->method == HTTP_OPTIONS;
	const char *by_method = safe ? req->require_scope_read : req->require_scope_write;

	if (by_method != NULL && by_method[0] != '\0')
		return by_method;
	if (req->require_scope != NULL && req->require_scope[0] != '\0')
		return req->require_scope;
	return NULL;
}

/* Does the session carry the scope req's location requires? KG_ESCOPE naming it if not. */
static enum kg_err
api_check_scope(const struct request *req, struct response *resp, const struct auth_session *s)
{
	const char *need = api_required_scope(req);

	if (need == NULL)
		return KG_OK;
	/* A misconfigured location fails closed, and says why in the log. */
	if (!scope_valid(need)) {
		log_warnx("KEYGATE_REQUIRE_SCOPE for %s is not a scope: every request there is refused",
		    req->path);
		return KG_ESYS;
	}
	if (auth_session_allows(s, need))
		return KG_OK;
	resp->scope_needed = need;
	return KG_ESCOPE;
}

enum kg_err
api_auth(struct request *req, struct response *resp)
{
	struct auth_session s;
	struct json_obj *o;
	enum kg_err err;

	if ((err = api_authenticate(req, resp, NULL, NULL, &s)) != KG_OK)
		return err;
	if ((err = api_check_scope(req, resp, &s)) != KG_OK)
		return err;
	if ((err = api_identity_headers(resp, &s, "X-")) != KG_OK)
		return err;
	o = api_ok(resp, 200);
	json_set_int(o, "user_id", s.user_id);
	json_set_str(o, "username", s.username);
	api_set_scopes(o, "scopes", &s.scopes);
	return KG_OK;
}

enum kg_err
api_authorize(struct request *req, struct response *resp)
{
	struct auth_session s;
	enum kg_err err;

	if ((err = api_authenticate(req, resp, NULL, NULL, &s)) != KG_OK)
		return err;
	if ((err = api_check_scope(req, resp, &s)) != KG_OK)
		return err;
	if ((err = api_identity_headers(resp, &s, "Variable-")) != KG_OK)
		return err;
	resp->status = 200;
	resp->no_body = 1;
	resp->bare = 1;
	return KG_OK;
}

enum kg_err
api_preflight(struct request *req, struct response *resp)
{
	if (!credential_origin_allowed(req->origin) || req->preflight_method == NULL)
		return KG_EFORBIDDEN;
	if (http_header_add(resp, "Access-Control-Allow-Methods", "GET, POST, DELETE") != KG_OK ||
	    http_header_add(resp, "Access-Control-Allow-Headers",
		"Authorization, Content-Type, Key, Secret, X-Requested-With") != KG_OK ||
	    http_header_add(resp, "Access-Control-Max-Age", "600") != KG_OK)
		return KG_ESYS;
	resp->status = 204;
	resp->no_body = 1;
	return KG_OK;
}

void
api_cors(const struct request *req, struct response *resp)
{
	/* Only ever the one allowed origin asking, never "*", never credentials. */
	if (!credential_origin_allowed(req->origin))
		return;
	if (http_header_add(resp, "Access-Control-Allow-Origin", "%s", req->origin) != KG_OK ||
	    http_header_add(resp, "Access-Control-Expose-Headers", "Retry-After, WWW-Authenticate") != KG_OK ||
	    http_header_add(resp, "Vary", "Origin") != KG_OK)
		log_warnx("cannot add CORS headers");
}
