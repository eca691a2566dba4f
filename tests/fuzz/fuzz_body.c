/*
 * fuzz_body: request bodies. The input is one request body; it is parsed
 * with json_parse_fields against the field table of every endpoint that
 * takes a body (POST /join, /login, /logout, /password; copied from
 * src/api.c), and what parses is put through the checks the handlers and
 * auth_* apply before any database work: auth_username_valid,
 * auth_email_valid, scope_set_parse, auth_token_name_valid, credential_read with body
 * key/secret, password_normalize and password_check_policy.
 *
 * Invariants:
 *  - the result is KG_OK, KG_EINPUT or KG_EJSON; the errors object exists
 *    exactly on KG_EINPUT and maps only field names of the table to
 *    "required", "wrong_type" or "too_long" ("required" only for required
 *    fields);
 *  - on KG_OK every required field is present; every string is valid
 *    UTF-8, has no NUL before len and len <= max_len; arrays have at most
 *    JSON_MAX_STRINGS elements, NULL-terminated; absent fields are zero;
 *  - on failure every value is zero (nothing half-filled to leak);
 *  - a parsed string rendered with json_set_str/json_render and parsed
 *    again comes back byte for byte (the reply builder and the parser
 *    agree);
 *  - the validators agree with straightforward re-implementations of their
 *    documented rules;
 *  - everything is freed (LeakSanitizer runs at the end of each input).
 */
#include <string.h>
#include <unistr.h>

#include "auth.h"
#include "credential.h"
#include "scope.h"
#include "api.h"
#include "fuzz.h"
#include "http.h"
#include "json.h"
#include "password.h"


/* The endpoints' own tables (src/api.c), so the fuzzer follows every change. */
#define MAX_FIELDS 7

static int
is_zero(const struct json_value *v)
{
	static const struct json_value zero;

	return memcmp(v, &zero, sizeof(zero)) == 0;
}

static int
valid_utf8(const char *s, size_t len)
{
	return u8_check((const uint8_t *)s, len) == NULL;
}

/* A parsed string survives rendering into a reply and parsing again. */
static void
check_roundtrip(const struct json_field *f, const struct json_value *v)
{
	struct json_field one = *f;
	struct json_value back;
	struct json_obj *o, *errs = NULL;
	char *text = NULL;
	size_t len = 0, i;
	enum kg_err err;

	o = json_obj_new();
	FUZZ_CHECK(o != NULL);
	if (f->type == JF_STRING)
		json_set_str(o, f->name, v->str);
	else if (f->type == JF_STRINGS)
		json_set_strv(o, f->name, (const char *const *)v->strv, v->n);
	else if (f->type == JF_INT)
		json_set_int(o, f->name, v->num);
	else
		json_set_bool(o, f->name, v->boolean);
	FUZZ_CHECK(json_render(o, &text, &len) == KG_OK);
	json_free(o);

	one.required = 1;
	err = json_parse_fields(text, len, &one, 1, &back, &errs);
	FUZZ_CHECK(err == KG_OK);
	FUZZ_CHECK(errs == NULL);
	FUZZ_CHECK(back.present);
	switch (f->type) {
	case JF_STRING:
		FUZZ_CHECK(back.len == v->len && memcmp(back.str, v->str, v->len) == 0);
		break;
	case JF_STRINGS:
		FUZZ_CHECK(back.n == v->n);
		for (i = 0; i < v->n; i++)
			FUZZ_CHECK(strcmp(back.strv[i], v->strv[i]) == 0);
		break;
	case JF_BOOL:
		FUZZ_CHECK(back.boolean == v->boolean);
		break;
	case JF_INT:
		FUZZ_CHECK(back.num == v->num);
		break;
	}
	json_values_free(&back, 1);
	free(text);
}

static void
check_values(const struct json_field *fields, size_t n, const struct json_value *v)
{
	size_t i, j;

	for (i = 0; i < n; i++) {
		const struct json_field *f = &fields[i];

		if (!v[i].present) {
			FUZZ_CHECK(!f->required);
			FUZZ_CHECK(is_zero(&v[i]));
			continue;
		}
		switch (f->type) {
		case JF_STRING:
			FUZZ_CHECK(v[i].str != NULL);
			FUZZ_CHECK(v[i].len <= f->max_len);
			FUZZ_CHECK(memchr(v[i].str, '\0', v[i].len) == NULL);
			FUZZ_CHECK(v[i].str[v[i].len] == '\0');
			FUZZ_CHECK(valid_utf8(v[i].str, v[i].len));
			FUZZ_CHECK(v[i].strv == NULL);
			break;
		case JF_STRINGS:
			FUZZ_CHECK(v[i].str == NULL);
			FUZZ_CHECK(v[i].strv != NULL);
			FUZZ_CHECK(v[i].n <= JSON_MAX_STRINGS);
			FUZZ_CHECK(v[i].strv[v[i].n] == NULL);
			for (j = 0; j < v[i].n; j++) {
				size_t l = strlen(v[i].strv[j]);
				FUZZ_CHECK(l <= f->max_len);
				FUZZ_CHECK(valid_utf8(v[i].strv[j], l));
			}
			break;
		case JF_BOOL:
			FUZZ_CHECK(v[i].boolean == 0 || v[i].boolean == 1);
			FUZZ_CHECK(v[i].str == NULL && v[i].strv == NULL);
			break;
		case JF_INT:
			/* A whole number within the field's bound, never negative. */
			FUZZ_CHECK(v[i].num >= 0 && (size_t)v[i].num <= f->max_len);
			FUZZ_CHECK(v[i].str == NULL && v[i].strv == NULL);
			break;
		}
		check_roundtrip(f, &v[i]);
	}
}

static void
check_errors(const struct json_field *fields, size_t n, const struct json_obj *errs)
{
	size_t i, nerr = 0;

	for (i = 0; i < n; i++) {
		const char *why = json_get_str(errs, fields[i].name);

		if (why == NULL) {
			FUZZ_CHECK(!json_has(errs, fields[i].name));
			continue;
		}
		nerr++;
		FUZZ_CHECK(strcmp(why, "required") == 0 || strcmp(why, "wrong_type") == 0 ||
		    strcmp(why, "too_long") == 0);
		if (strcmp(why, "required") == 0)
			FUZZ_CHECK(fields[i].required);
	}
	FUZZ_CHECK(nerr > 0);
}

/* auth.h's documented rules, written out again. */
static int
ref_chars(const char *s, const char *extra)
{
	for (; *s != '\0'; s++)
		if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') ||
		    (*s >= '0' && *s <= '9') || strchr(extra, *s) != NULL))
			return 0;
	return 1;
}

static int
ref_username_valid(const char *s)
{
	size_t n = strlen(s);

	return n >= 3 && n <= 64 && ref_chars(s, "_.-");
}

static int
ref_email_valid(const char *s)
{
	size_t n = strlen(s), i, ats = 0, at = 0;

	if (n == 0 || n > 254)
		return 0;
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c <= ' ' || c == 0x7f)
			return 0;
		if (c == '@') {
			ats++;
			at = i;
		}
	}
	return ats == 1 && at > 0 && at < n - 1;
}

/* One scope: "*", or colon-joined non-empty segments of A-Z a-z 0-9 _ . -; 1..64 bytes. */
static int
ref_scope_valid(const char *s)
{
	size_t l = strlen(s), i;

	if (l < 1 || l > 64)
		return 0;
	if (strcmp(s, "*") == 0)
		return 1;
	if (s[0] == ':' || s[l - 1] == ':' || strstr(s, "::") != NULL)
		return 0;
	for (i = 0; i < l; i++)
		if (s[i] != ':' && !ref_chars((char[]){ s[i], '\0' }, "._-"))
			return 0;
	return 1;
}

/* 1..16 distinct valid scopes (repeats count once). */
static int
ref_scopes_valid(char *const *v, size_t n)
{
	size_t i, j, distinct = 0;

	if (n < 1)
		return 0;
	for (i = 0; i < n; i++) {
		if (!ref_scope_valid(v[i]))
			return 0;
		for (j = 0; j < i && strcmp(v[i], v[j]) != 0; j++)
			;
		distinct += j == i;
	}
	return distinct <= 16;
}

/* An API token's name: 1..64 of A-Z a-z 0-9 space _ . -, no space at either end. */
static int
ref_token_name_valid(const char *s)
{
	size_t l = s == NULL ? 0 : strlen(s);

	return l >= 1 && l <= 64 && ref_chars(s, " _.-") && s[0] != ' ' && s[l - 1] != ' ';
}

/* What auth_new_password does before hashing. */
static void
check_new_password(const char *pw, size_t len, const char *username)
{
	char *norm = NULL;
	size_t normlen = 0;
	enum kg_err err;
	const char *why;

	err = password_normalize(pw, len, &norm, &normlen);
	/* The body parser hands over valid UTF-8 without NUL, at most 1024 bytes. */
	FUZZ_CHECK(err == KG_OK);
	FUZZ_CHECK(norm != NULL && strlen(norm) == normlen);
	why = password_check_policy(norm, normlen, username);
	FUZZ_CHECK(why == NULL || strcmp(why, "too_short") == 0 || strcmp(why, "too_long") == 0 ||
	    strcmp(why, "too_common") == 0 || strcmp(why, "contains_username") == 0);
	crypto_free_secret(norm);
}

/* Body key/secret as the login and logout handlers pass them on. */
static void
check_body_credentials(const struct json_value *key, const struct json_value *secret)
{
	struct request req;
	struct credential c;
	enum kg_err err;

	memset(&req, 0, sizeof(req));
	req.content_length = -1;
	err = credential_read(&req, key->str, secret->str, &c);
	if (key->str == NULL && secret->str == NULL) {
		FUZZ_CHECK(err == KG_OK && c.presented == 0);
		goto out;
	}
	if (key->str == NULL || secret->str == NULL) {
		FUZZ_CHECK(err == KG_EINPUT && c.missing != NULL);
		goto out;
	}
	FUZZ_CHECK(c.presented == 1);
	FUZZ_CHECK(err == KG_OK || err == KG_ETOKEN);
	if (err == KG_OK) {
		FUZZ_CHECK(strcmp(c.token.key, key->str) == 0);
		FUZZ_CHECK(strcmp(c.token.secret, secret->str) == 0);
	}
out:
	credential_wipe(&c);
}

static void
check_handler(const struct json_field *fields, const struct json_value *v)
{
	if (fields == api_join_fields) {
		FUZZ_CHECK(auth_username_valid(v[JOIN_USERNAME].str) ==
		    ref_username_valid(v[JOIN_USERNAME].str));
		if (v[JOIN_EMAIL].present)
			FUZZ_CHECK(auth_email_valid(v[JOIN_EMAIL].str) ==
			    ref_email_valid(v[JOIN_EMAIL].str));
		check_new_password(v[JOIN_PASSWORD].str, v[JOIN_PASSWORD].len, v[JOIN_USERNAME].str);
	} else if (fields == api_login_fields) {
		if (v[LOGIN_USERNAME].present)
			FUZZ_CHECK(auth_username_valid(v[LOGIN_USERNAME].str) ==
			    ref_username_valid(v[LOGIN_USERNAME].str));
		if (v[LOGIN_SCOPES].present) {
			struct scope_set set;

			FUZZ_CHECK((scope_set_parse((const char *const *)v[LOGIN_SCOPES].strv,
			    v[LOGIN_SCOPES].n, &set, NULL) == KG_OK && set.n > 0) ==
			    ref_scopes_valid(v[LOGIN_SCOPES].strv, v[LOGIN_SCOPES].n));
		}
		if (!v[LOGIN_USERNAME].present && !v[LOGIN_PASSWORD].present)
			check_body_credentials(&v[LOGIN_KEY], &v[LOGIN_SECRET]);
	} else if (fields == api_logout_fields) {
		check_body_credentials(&v[LOGOUT_KEY], &v[LOGOUT_SECRET]);
	} else if (fields == api_tokens_fields) {
		FUZZ_CHECK(auth_token_name_valid(v[TOKENS_NAME].str) ==
		    ref_token_name_valid(v[TOKENS_NAME].str));
		if (v[TOKENS_SCOPES].present) {
			struct scope_set set;
			const char *bad = NULL;

			if (scope_set_parse((const char *const *)v[TOKENS_SCOPES].strv,
			    v[TOKENS_SCOPES].n, &set, &bad) == KG_OK)
				FUZZ_CHECK(set.n <= v[TOKENS_SCOPES].n);
			else
				FUZZ_CHECK(bad != NULL || v[TOKENS_SCOPES].n > SCOPE_SET_MAX);
		}
	} else if (fields == api_password_fields) {
		char *norm = NULL;
		size_t normlen = 0;

		FUZZ_CHECK(password_normalize(v[PWCHANGE_CURRENT].str, v[PWCHANGE_CURRENT].len,
		    &norm, &normlen) == KG_OK);
		crypto_free_secret(norm);
		check_new_password(v[PWCHANGE_NEW].str, v[PWCHANGE_NEW].len, "someone");
	}
}

static void
parse_with(const uint8_t *data, size_t size, const struct json_field *fields, size_t n)
{
	struct json_value v[MAX_FIELDS];
	struct json_obj *errs = (struct json_obj *)&errs; /* must be overwritten */
	enum kg_err err;
	size_t i;

	FUZZ_CHECK(n <= MAX_FIELDS);
	memset(v, 0xa5, sizeof(v));
	err = json_parse_fields((const char *)data, size, fields, n, v, &errs);
	FUZZ_CHECK(err == KG_OK || err == KG_EINPUT || err == KG_EJSON);
	FUZZ_CHECK((errs != NULL) == (err == KG_EINPUT));
	if (err == KG_OK) {
		check_values(fields, n, v);
		check_handler(fields, v);
		json_values_free(v, n);
	} else {
		for (i = 0; i < n; i++)
			FUZZ_CHECK(is_zero(&v[i]));
		if (err == KG_EINPUT)
			check_errors(fields, n, errs);
	}
	json_free(errs);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* An empty body means {} to the handlers; keep the size as given. */
	parse_with(data, size, api_join_fields, api_join_nfields);
	parse_with(data, size, api_login_fields, api_login_nfields);
	parse_with(data, size, api_logout_fields, api_logout_nfields);
	parse_with(data, size, api_password_fields, api_password_nfields);
	parse_with(data, size, api_tokens_fields, api_tokens_nfields);
	return 0;
}
