/*
 * credential: what a request presents to say who it is, read in one
 * place for every handler: Authorization: Bearer, the Key and Secret
 * headers, a key and secret in the JSON body (where a handler accepts
 * them), or keygate's cookie when nothing else is presented. More than one
 * way at once is refused, and so is a cookie on a request a browser may
 * have sent on its own (CSRF). The domain then gets a parsed token,
 * never the request.
 */
#ifndef CREDENTIAL_H
#define CREDENTIAL_H

#include "kg.h"
#include "token.h"

struct conf;
struct request;

/* What credential_read found (holds a secret: credential_wipe when done). */
struct credential {
	struct token token;  /* valid when presented and KG_OK */
	int presented;       /* a credential was presented, valid or not */
	int by_cookie;       /* keygate's cookie, the only thing presented */
	const char *missing; /* "key" or "secret": half a pair in the body */
};

/* Take cookie_name and the parsed allowed_origins. KG_ECONFIG when the name is too long. */
enum kg_err credential_configure(const struct conf *c) KG_MUSTCHECK;

/*
 * Read req's credential; body_key and body_secret are the body's fields
 * (NULL: absent, or the handler takes none). KG_OK with c->presented 0
 * when there is none; KG_EINPUT when two ways are used, a header is
 * malformed, or half a pair is given (c->missing names the body field);
 * KG_ETOKEN when what is presented cannot be a token; KG_ECSRF when only
 * the cookie is presented on a method other than GET or HEAD and the
 * request does not come from an allowed page (credential_same_site).
 */
enum kg_err credential_read(const struct request *req, const char *body_key,
    const char *body_secret, struct credential *c) KG_MUSTCHECK;

/* 1 when req carries an Authorization, Key or Secret header (a token beside a password). */
int credential_in_headers(const struct request *req);

/* 1 when req carries keygate's cookie. */
int credential_has_cookie(const struct request *req);

/*
 * The origin verdict for a request a browser may have sent on its own:
 * 1 for an allowed Origin, else (no Origin) an allowed Referer or a custom
 * header that cross-site forms cannot send. A foreign Origin is always 0.
 */
int credential_same_site(const struct request *req);

/* 1 when origin (may be NULL) is one of allowed_origins. */
int credential_origin_allowed(const char *origin);

void credential_wipe(struct credential *c);

#endif
