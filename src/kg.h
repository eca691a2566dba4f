/*
 * keygate: the one error vocabulary shared by every module.
 * Functions return enum kg_err; results come back through out-parameters.
 */
#ifndef KG_H
#define KG_H

#include <stddef.h>

#define KG_MUSTCHECK __attribute__((warn_unused_result))

/* Sizes every layer shares, NUL included. */
#define KG_NAME_MAX 65   /* a username: 3 to 64 bytes */
#define KG_EMAIL_MAX 255 /* an email address: up to 254 bytes */
#define KG_TS_LEN 32     /* a UTC timestamp, "2026-11-28T12:00:00Z" */

/* clang-format off */
enum kg_err {
	KG_OK = 0,
	KG_ENOMEM,          /* allocation failed */
	KG_EINPUT,          /* request failed validation (400 invalid_request) */
	KG_EJSON,           /* body is not acceptable JSON (400 invalid_json) */
	KG_EBADSCOPE,       /* scopes asked for beyond those allowed (400 invalid_scope) */
	KG_EAUTH,           /* wrong username/password (401 invalid_credentials) */
	KG_ETOKEN,          /* missing, malformed, unknown, expired token (401) */
	KG_EFORBIDDEN,      /* caller may not do this (403) */
	KG_ECSRF,           /* cookie-authenticated request failed the CSRF check (403) */
	KG_ESCOPE,          /* the token lacks the scope the request needs (403) */
	KG_ESESSION,        /* an API token where a session is needed (403) */
	KG_ENOTFOUND,       /* no such route or object (404) */
	KG_EMETHOD,         /* route exists, method does not (405) */
	KG_EUSERNAME_TAKEN, /* 409 */
	KG_EEMAIL_TAKEN,    /* 409 */
	KG_ENAME_TAKEN,     /* an API token of that name is live (409) */
	KG_ETOOMANY,        /* max_api_tokens_per_user live already (409) */
	KG_ECONFLICT,       /* a unique constraint other than those above (409 conflict) */
	KG_ETOOLARGE,       /* body over max_body (413) */
	KG_EMEDIA,          /* body is not application/json (415) */
	KG_ETHROTTLED,      /* too many attempts (429) */
	KG_EDB,             /* database unreachable or failed (503) */
	KG_ESYS,            /* anything else (500) */
	KG_ECONFIG,         /* configuration error (start-up, check-config) */
	KG_ERR__MAX
};
/* clang-format on */

/* Milliseconds on the monotonic clock: for intervals and deadlines. */
long long kg_monotonic_ms(void);

/*
 * Copy the string src into dst (dstsz bytes), cut short if need be; dst is
 * always NUL-terminated when dstsz > 0. Returns strlen(src) (>= dstsz: cut),
 * as OpenBSD's strlcpy. For the hot path, where snprintf("%s") costs a
 * format parse per copy.
 */
size_t kg_strlcpy(char *dst, const char *src, size_t dstsz);

/* Short English text for an error code; never NULL, static storage. */
const char *kg_strerror(enum kg_err err);

#endif
