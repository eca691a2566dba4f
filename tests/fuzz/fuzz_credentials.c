/*
 * fuzz_credentials: finding the token in a request's FastCGI parameters.
 *
 * Input layout: two bytes of flags, then up to NPARTS NUL-separated
 * strings, in the order of enum part. Part i is passed as NULL (parameter
 * absent) unless flag bit i is set; a set bit with no part left gives "".
 * The parts fill a struct request (src/http.h) the way fcgi.c does and go
 * through what the handlers call: credential_read (Authorization: Bearer,
 * Key:+Secret:, body key/secret, the cookie when nothing else is
 * presented), http_cookie_get, http_bearer, http_query_has_credentials,
 * http_route_path, http_is_json, http_method_parse, token_parse,
 * token_from_parts and token_key_valid.
 *
 * Invariants:
 *  - a KG_OK token formats back (token_format) to a string that token_parse
 *    accepts, giving the same token; token_parse of a string that parsed
 *    gives back exactly that string; a refused token leaves zeros;
 *  - credential_read presents nothing only when no way was used (the cookie
 *    counts only alone), refuses two ways at once, and returns only
 *    KG_OK/KG_EINPUT/KG_ETOKEN/KG_ECSRF (the last for the cookie alone);
 *  - http_bearer's token lies inside the header, is not empty, has no white
 *    space and is followed by blanks only;
 *  - http_query_has_credentials never misses a parameter whose decoded name
 *    is a credential name (false positives are allowed: they only refuse);
 *  - http_cookie_get's value lies inside the header, after "name=", holds no
 *    ';' and no trailing space, and the count matches a re-implementation;
 *  - http_route_path yields a NUL-terminated path in bounds, never empty,
 *    without a trailing '/' (except "/") and without the query.
 */
#include <ctype.h>
#include <string.h>
#include <strings.h>

#include "credential.h"
#include "fuzz.h"
#include "http.h"
#include "token.h"

enum part {
	P_AUTHORIZATION, P_KEY, P_SECRET, P_QUERY, P_COOKIE, P_BODY_KEY, P_BODY_SECRET,
	P_REQUEST_URI, P_SCRIPT_NAME, P_PATH_INFO, P_BASE, P_CONTENT_TYPE, P_METHOD,
	NPARTS
};

#define COOKIE_NAME "keygate_token"   /* the default cookie_name */

static int
token_is_zero(const struct token *t)
{
	static const struct token zero;

	return memcmp(t, &zero, sizeof(zero)) == 0;
}

/* A token that parsed: check it formats back and parses to itself. */
static void
check_token(const struct token *t)
{
	char buf[TOKEN_LEN + 1];
	struct token again;

	FUZZ_CHECK(strlen(t->key) == TOKEN_KEY_LEN);
	FUZZ_CHECK(strlen(t->secret) == TOKEN_SECRET_LEN);
	FUZZ_CHECK(token_key_valid(t->key));
	token_format(t, buf, sizeof(buf));
	FUZZ_CHECK(strlen(buf) == TOKEN_LEN);
	FUZZ_CHECK(token_parse(buf, &again) == KG_OK);
	FUZZ_CHECK(memcmp(&again, t, sizeof(again)) == 0);
	FUZZ_CHECK(token_from_parts(t->key, t->secret, &again) == KG_OK);
	FUZZ_CHECK(memcmp(&again, t, sizeof(again)) == 0);
	/* Too small a buffer gets nothing, not half a secret. */
	token_format(t, buf, TOKEN_LEN);
	FUZZ_CHECK(buf[0] == '\0');
}

static void
check_token_parse(const char *s)
{
	struct token t;
	char buf[TOKEN_LEN + 1];
	enum kg_err err;

	memset(&t, 0x5a, sizeof(t));
	err = token_parse(s, &t);
	FUZZ_CHECK(err == KG_OK || err == KG_ETOKEN);
	if (err != KG_OK) {
		FUZZ_CHECK(token_is_zero(&t));
		return;
	}
	check_token(&t);
	token_format(&t, buf, sizeof(buf));
	FUZZ_CHECK(strcmp(buf, s) == 0);
}

static void
check_token_parts(const char *key, const char *secret)
{
	struct token t;
	enum kg_err err;

	memset(&t, 0x5a, sizeof(t));
	err = token_from_parts(key, secret, &t);
	FUZZ_CHECK(err == KG_OK || err == KG_ETOKEN);
	if (err != KG_OK) {
		FUZZ_CHECK(token_is_zero(&t));
		return;
	}
	FUZZ_CHECK(strcmp(t.key, key) == 0 && strcmp(t.secret, secret) == 0);
	check_token(&t);
}

static void
check_bearer(const char *hdr)
{
	const char *tok = (const char *)&tok;
	size_t len = 12345;
	enum kg_err err = http_bearer(hdr, &tok, &len);

	FUZZ_CHECK(err == KG_OK || err == KG_EINPUT);
	if (err != KG_OK) {
		FUZZ_CHECK(tok == NULL && len == 0);
		return;
	}
	FUZZ_CHECK(hdr != NULL && strncasecmp(hdr, "bearer", 6) == 0);
	FUZZ_CHECK(tok > hdr + 6 && tok + len <= hdr + strlen(hdr));
	FUZZ_CHECK(len > 0);
	/* One b64token: no white space in it, only blanks after it. */
	FUZZ_CHECK(strcspn(tok, " \t\n\v\f\r") == len);
	FUZZ_CHECK(tok[len + strspn(tok + len, " \t")] == '\0');
	if (len <= TOKEN_LEN) {
		char buf[TOKEN_LEN + 1];

		memcpy(buf, tok, len);
		buf[len] = '\0';
		check_token_parse(buf);
	}
}

/* Decode name[0..len) like a web framework would: %XX and '+'. */
static size_t
ref_unescape(const char *s, size_t len, char *out)
{
	size_t i, o = 0;

	for (i = 0; i < len; i++) {
		if (s[i] == '%' && i + 2 < len && isxdigit((unsigned char)s[i + 1]) &&
		    isxdigit((unsigned char)s[i + 2])) {
			char hex[3] = { s[i + 1], s[i + 2], '\0' };
			out[o++] = (char)strtol(hex, NULL, 16);
			i += 2;
		} else
			out[o++] = s[i] == '+' ? ' ' : s[i];
	}
	out[o] = '\0';
	return o;
}

/* 1 when some parameter's decoded name is a credential name. */
static int
ref_query_has_credentials(const char *q)
{
	static const char *const names[] = {
		"key", "secret", "token", "access_token", "api_key", "password",
	};
	char *name = malloc(strlen(q) + 1);
	int found = 0;
	size_t i;

	FUZZ_CHECK(name != NULL);
	while (!found) {
		size_t seg = strcspn(q, "&;"), nlen = strcspn(q, "=&;"), dlen;

		if (nlen > seg)
			nlen = seg;
		dlen = ref_unescape(q, nlen, name);
		for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
			if (dlen == strlen(names[i]) && strcasecmp(name, names[i]) == 0)
				found = 1;
		q += seg;
		if (*q == '\0')
			break;
		q++;
	}
	free(name);
	return found;
}

static int
ref_cookie_count(const char *hdr, const char *name)
{
	size_t nlen = strlen(name);
	int n = 0;

	while (*hdr != '\0') {
		size_t seg;

		hdr += strspn(hdr, " ;");
		seg = strcspn(hdr, ";");
		if (seg > nlen && strncmp(hdr, name, nlen) == 0 && hdr[nlen] == '=')
			n++;
		hdr += seg;
	}
	return n;
}

static void
check_cookie(const char *hdr, const struct request *req)
{
	const char *val = (const char *)&val;
	size_t len = 12345;
	int n = http_cookie_get(hdr, COOKIE_NAME, &val, &len);

	FUZZ_CHECK(n == ref_cookie_count(hdr, COOKIE_NAME));
	if (n == 0) {
		FUZZ_CHECK(val == NULL && len == 0);
		return;
	}
	FUZZ_CHECK(val >= hdr + strlen(COOKIE_NAME) + 1 && val + len <= hdr + strlen(hdr));
	FUZZ_CHECK(val[-1] == '=');
	FUZZ_CHECK(strncmp(val - 1 - strlen(COOKIE_NAME), COOKIE_NAME, strlen(COOKIE_NAME)) == 0);
	FUZZ_CHECK(memchr(val, ';', len) == NULL);
	FUZZ_CHECK(len == 0 || val[len - 1] != ' ');
	/* What api_authenticate then does with a single cookie. */
	if (n == 1) {
		char buf[TOKEN_LEN + 1];
		struct token t;

		if (len < sizeof(buf)) {
			memcpy(buf, val, len);
			buf[len] = '\0';
			check_token_parse(buf);
			(void)token_parse(buf, &t);
			token_wipe(&t);
		}
	}
	(void)req;
}

static void
check_credentials(const struct request *req, const char *bkey, const char *bsecret)
{
	struct credential c;
	int ways;
	enum kg_err err;

	err = credential_read(req, bkey, bsecret, &c);
	FUZZ_CHECK(err == KG_OK || err == KG_EINPUT || err == KG_ETOKEN || err == KG_ECSRF);
	FUZZ_CHECK(c.presented == 0 || c.presented == 1);
	ways = (req->authorization != NULL) + (req->hdr_key != NULL || req->hdr_secret != NULL) +
	    (bkey != NULL || bsecret != NULL);
	if (ways > 1)
		FUZZ_CHECK(err == KG_EINPUT);
	if (ways > 0)
		FUZZ_CHECK(!c.by_cookie);
	if (err == KG_ECSRF)
		FUZZ_CHECK(c.by_cookie && req->method != HTTP_GET && req->method != HTTP_HEAD);
	if (err == KG_OK && c.presented)
		check_token(&c.token);
	if (err == KG_OK && !c.presented)
		FUZZ_CHECK(ways == 0);
	if ((bkey == NULL) != (bsecret == NULL))
		FUZZ_CHECK(err == KG_EINPUT && c.missing != NULL);
	credential_wipe(&c);
}

static void
check_route(const char *uri, const char *script, const char *info, const char *base)
{
	struct request req;
	enum kg_err err;
	size_t n;

	memset(&req, 0x5a, sizeof(req));
	err = http_route_path(&req, uri, script, info, base);
	FUZZ_CHECK(err == KG_OK || err == KG_ENOTFOUND);
	if (err != KG_OK)
		return;
	n = strnlen(req.path, sizeof(req.path));
	FUZZ_CHECK(n > 0 && n < sizeof(req.path));
	FUZZ_CHECK(n == 1 || req.path[n - 1] != '/');
	if (uri != NULL && uri[0] != '\0')
		FUZZ_CHECK(strchr(req.path, '?') == NULL);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *part[NPARTS];
	char *buf, *p, *end;
	unsigned flags;
	struct request req;
	size_t i;

	if (size < 2)
		return 0;
	flags = (unsigned)data[0] | (unsigned)data[1] << 8;
	/* NUL-separated parts; one extra NUL so the last part is terminated. */
	buf = malloc(size - 2 + 1);
	FUZZ_CHECK(buf != NULL);
	memcpy(buf, data + 2, size - 2);
	buf[size - 2] = '\0';
	p = buf;
	end = buf + size - 2;
	for (i = 0; i < NPARTS; i++) {
		const char *s = "";

		if (p <= end) {
			s = p;
			p += strlen(p) + 1;
		}
		part[i] = (flags & (1u << i)) ? s : NULL;
	}

	memset(&req, 0, sizeof(req));
	req.content_length = -1;
	req.authorization = part[P_AUTHORIZATION];
	req.hdr_key = part[P_KEY];
	req.hdr_secret = part[P_SECRET];
	req.query = part[P_QUERY];
	req.cookie = part[P_COOKIE];
	req.content_type = part[P_CONTENT_TYPE];
	req.method_name = part[P_METHOD];
	req.method = http_method_parse(part[P_METHOD]);
	FUZZ_CHECK((unsigned)req.method < HTTP_METHOD__MAX);
	FUZZ_CHECK(req.method_name == NULL || req.method == HTTP_OTHER ||
	    strcmp(http_method_name(req.method), req.method_name) == 0);

	check_credentials(&req, part[P_BODY_KEY], part[P_BODY_SECRET]);
	check_credentials(&req, NULL, NULL);
	if (req.authorization != NULL)
		check_bearer(req.authorization);
	if (req.query != NULL) {
		int got = http_query_has_credentials(req.query);
		FUZZ_CHECK(got == 0 || got == 1);
		if (ref_query_has_credentials(req.query))
			FUZZ_CHECK(got == 1);
	} else
		FUZZ_CHECK(http_query_has_credentials(NULL) == 0);
	if (req.cookie != NULL)
		check_cookie(req.cookie, &req);
	if (req.content_type != NULL)
		(void)http_is_json(req.content_type);
	check_route(part[P_REQUEST_URI], part[P_SCRIPT_NAME], part[P_PATH_INFO], part[P_BASE]);
	/* Every string is also tried as a whole token and as key + secret. */
	for (i = 0; i < NPARTS; i++)
		check_token_parse(part[i]);
	check_token_parts(part[P_KEY], part[P_SECRET]);
	check_token_parts(part[P_BODY_KEY], part[P_BODY_SECRET]);
	for (i = 0; i < NPARTS; i++)
		(void)token_key_valid(part[i]);

	crypto_wipe(buf, size - 2);
	free(buf);
	return 0;
}
