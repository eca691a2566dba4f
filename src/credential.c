#include <string.h>

#include "addr.h"
#include "conf.h"
#include "credential.h"
#include "crypto.h"
#include "http.h"

static struct {
	char cookie_name[64];
	struct addr_origins origins;
} cred_conf = { .cookie_name = "keygate_token" };

enum kg_err
credential_configure(const struct conf *c)
{
	if (kg_strlcpy(cred_conf.cookie_name, c->cookie_name, sizeof(cred_conf.cookie_name)) >=
	    sizeof(cred_conf.cookie_name))
		return KG_ECONFIG;
	/* conf_load parsed the list: a copy, so that c may go. */
	cred_conf.origins = c->origins;
	return KG_OK;
}

int
credential_origin_allowed(const char *origin)
{
	return http_origin_allowed(&cred_conf.origins, origin);
}

int
credential_same_site(const struct request *req)
{
	if (req->origin != NULL)
		return credential_origin_allowed(req->origin);
	return http_referer_allowed(&cred_conf.origins, req->referer) || req->requested_with != NULL;
}

int
credential_in_headers(const struct request *req)
{
	return req->authorization != NULL || req->hdr_key != NULL || req->hdr_secret != NULL;
}

int
credential_has_cookie(const struct request *req)
{
	const char *val;
	size_t len;

	return req->cookie != NULL &&
	    http_cookie_get(req->cookie, cred_conf.cookie_name, &val, &len) > 0;
}

/* A token in a header or cookie value of len bytes; longer than any token is none. */
static enum kg_err
credential_parse(const char *val, size_t len, struct token *t)
{
	char buf[TOKEN_LEN + 1];
	enum kg_err err;

	if (len >= sizeof(buf))
		return KG_ETOKEN;
	memcpy(buf, val, len);
	buf[len] = '\0';
	err = token_parse(buf, t);
	crypto_wipe(buf, sizeof(buf));
	return err;
}

/* The cookie, when nothing else was presented. */
static enum kg_err
credential_cookie(const struct request *req, struct credential *c)
{
	const char *val;
	size_t len;
	enum kg_err err;
	int n;

	if (req->cookie == NULL)
		return KG_OK;
	n = http_cookie_get(req->cookie, cred_conf.cookie_name, &val, &len);
	/* Two of ours: a sibling domain may have planted one; which is ours is unknowable. */
	if (n > 1)
		return KG_EINPUT;
	if (n == 0)
		return KG_OK;
	c->presented = 1;
	c->by_cookie = 1;
	if ((err = credential_parse(val, len, &c->token)) != KG_OK)
		return err;
	/* A browser sends cookies on cross-site requests too. */
	if (req->method != HTTP_GET && req->method != HTTP_HEAD && !credential_same_site(req))
		return KG_ECSRF;
	return KG_OK;
}

enum kg_err
credential_read(const struct request *req, const char *body_key, const char *body_secret,
    struct credential *c)
{
	const char *bearer = NULL;
	size_t len = 0;
	int ways = 0;

	memset(c, 0, sizeof(*c));
	/* Half a pair in the body is a missing field, named as for any field. */
	if ((body_key == NULL) != (body_secret == NULL)) {
		c->missing = body_key == NULL ? "key" : "secret";
		return KG_EINPUT;
	}
	if (req->authorization != NULL) {
		if (http_bearer(req->authorization, &bearer, &len) != KG_OK)
			return KG_EINPUT;
		ways++;
	}
	if (req->hdr_key != NULL || req->hdr_secret != NULL) {
		if (req->hdr_key == NULL || req->hdr_secret == NULL)
			return KG_EINPUT;
		ways++;
	}
	if (body_key != NULL)
		ways++;
	if (ways > 1)
		return KG_EINPUT;
	if (ways == 0)
		return credential_cookie(req, c);
	c->presented = 1;
	if (bearer != NULL)
		return credential_parse(bearer, len, &c->token);
	if (req->hdr_key != NULL)
		return token_from_parts(req->hdr_key, req->hdr_secret, &c->token);
	return token_from_parts(body_key, body_secret, &c->token);
}

void
credential_wipe(struct credential *c)
{
	token_wipe(&c->token);
	crypto_wipe(c, sizeof(*c));
}
