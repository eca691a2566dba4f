/*
 * Unit tests for src/json.c: request bodies parsed against field tables
 * (strictness: UTF-8, \u0000, surrogates, duplicate keys, depth, trailing
 * bytes; per-field errors) and the reply builder.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "json.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* A body with its exact length, so that embedded NUL bytes count. */
#define B(s) s, sizeof(s) - 1

/* The field table most cases use. */
static const struct json_field fields[] = {
	{ "username", JF_STRING, 8, 1 },
	{ "remember", JF_BOOL, 0, 0 },
	{ "scopes", JF_STRINGS, 5, 0 },
	{ "note", JF_STRING, 64, 0 },
};
enum { F_USERNAME, F_REMEMBER, F_SCOPES, F_NOTE, F__MAX };

/* Render o and compare with want; frees nothing. */
static void
assert_renders(const struct json_obj *o, const char *want)
{
	char *s = NULL;
	size_t len = 0;

	assert_int_equal(json_render(o, &s, &len), KG_OK);
	assert_non_null(s);
	if (strcmp(s, want) != 0) {
		print_error("rendered %s\n     want %s\n", s, want);
		free(s);
		fail();
	}
	assert_int_equal(len, strlen(want));
	free(s);
}

/* Printable form of a body for failure messages. */
static const char *
show(const char *body, size_t len, char *buf, size_t bufsz)
{
	size_t i, o = 0;

	for (i = 0; i < len && o + 5 < bufsz; i++) {
		unsigned char c = (unsigned char)body[i];

		if (c >= 0x20 && c < 0x7f)
			buf[o++] = (char)c;
		else
			o += (size_t)snprintf(buf + o, bufsz - o, "\\x%02X", c);
	}
	buf[o] = '\0';
	return buf;
}

/*
 * Whole-body acceptance: KG_OK, KG_EJSON, or KG_EINPUT (then errors is the
 * rendered per-field object).
 */
static const struct {
	const char *body;
	size_t len;
	enum kg_err err;
	const char *errors;
} body_cases[] = {
	/* valid objects */
	{ B("{\"username\":\"bob\"}"), KG_OK, NULL },
	{ B(" \t\r\n{\"username\":\"bob\"} \t\r\n"), KG_OK, NULL },
	{ B("{ \"username\" : \"bob\" , \"remember\" : true }"), KG_OK, NULL },
	/* unknown fields are ignored, whatever their type */
	{ B("{\"username\":\"bob\",\"extra\":{\"x\":[1,2,{\"y\":null}]},\"n\":1.5e3}"), KG_OK, NULL },
	/* not an object */
	{ B("[]"), KG_EJSON, NULL },
	{ B("[{\"username\":\"bob\"}]"), KG_EJSON, NULL },
	{ B("1"), KG_EJSON, NULL },
	{ B("\"s\""), KG_EJSON, NULL },
	{ B("null"), KG_EJSON, NULL },
	{ B("true"), KG_EJSON, NULL },
	{ B(" "), KG_EJSON, NULL },
	{ B("x"), KG_EJSON, NULL },
	/* truncated */
	{ B("{"), KG_EJSON, NULL },
	{ B("{\"username\""), KG_EJSON, NULL },
	{ B("{\"username\":"), KG_EJSON, NULL },
	{ B("{\"username\":\"bob"), KG_EJSON, NULL },
	{ B("{\"username\":\"bob\""), KG_EJSON, NULL },
	{ B("{\"username\":\"bob\","), KG_EJSON, NULL },
	{ B("{\"username\":\"b\\"), KG_EJSON, NULL },
	{ B("{\"username\":\"\\u00"), KG_EJSON, NULL },
	{ B("{\"username\":\"bob\",\"scopes\":[\"a\""), KG_EJSON, NULL },
	/* not JSON */
	{ B("{username:\"bob\"}"), KG_EJSON, NULL },
	{ B("{'username':'bob'}"), KG_EJSON, NULL },
	{ B("{\"username\":\"bob\",}"), KG_EJSON, NULL },
	{ B("{\"username\":\"b\\x\"}"), KG_EJSON, NULL },
	{ B("{\"username\":\"b\\uZZZZ\"}"), KG_EJSON, NULL },
	/* trailing garbage */
	{ B("{\"username\":\"bob\"}x"), KG_EJSON, NULL },
	{ B("{\"username\":\"bob\"}}"), KG_EJSON, NULL },
	{ B("{\"username\":\"bob\"}{}"), KG_EJSON, NULL },
	{ B("{\"username\":\"bob\"} {}"), KG_EJSON, NULL },
	{ B("{\"username\":\"bob\"} []"), KG_EJSON, NULL },
	{ B("{\"username\":\"bob\"}\n1"), KG_EJSON, NULL },
	{ B("{\"username\":\"bob\"}\0"), KG_EJSON, NULL },
	{ B("{\"username\":\"bob\"}\0{}"), KG_EJSON, NULL },
	/* duplicate keys, at any depth */
	{ B("{\"username\":\"bob\",\"username\":\"eve\"}"), KG_EJSON, NULL },
	{ B("{\"username\":\"bob\",\"a\":1,\"a\":2}"), KG_EJSON, NULL },
	{ B("{\"username\":\"bob\",\"a\":{\"b\":1,\"b\":2}}"), KG_EJSON, NULL },
	{ B("{\"username\":\"bob\",\"a\":[{\"b\":1},{\"c\":1,\"c\":1}]}"), KG_EJSON, NULL },
	{ B("{\"username\":\"bob\",\"a\":{\"b\":{\"c\":{\"d\":1,\"d\":1}}}}"), KG_EJSON, NULL },
	/* the same name written with an escape is the same name */
	{ B("{\"username\":\"bob\",\"\\u0075sername\":\"eve\"}"), KG_EJSON, NULL },
	/* not duplicates: other case, other object */
	{ B("{\"username\":\"bob\",\"Username\":\"eve\"}"), KG_OK, NULL },
	{ B("{\"username\":\"bob\",\"a\":{\"username\":1},\"b\":{\"username\":2}}"), KG_OK, NULL },
	{ B("{\"username\":\"bob\",\"a\":[{\"b\":1},{\"b\":1}]}"), KG_OK, NULL },
	/* \u0000 is refused, an escaped backslash before u0000 is not an escape */
	{ B("{\"username\":\"\\u0000\"}"), KG_EJSON, NULL },
	{ B("{\"username\":\"a\\u0000b\"}"), KG_EJSON, NULL },
	{ B("{\"\\u0000\":\"x\",\"username\":\"bob\"}"), KG_EJSON, NULL },
	{ B("{\"username\":\"\\\\\\u0000\"}"), KG_EJSON, NULL },
	{ B("{\"username\":\"\\\\u0000\"}"), KG_OK, NULL },
	/* raw NUL bytes anywhere */
	{ B("{\"username\":\"a\0b\"}"), KG_EJSON, NULL },
	{ B("{\0\"username\":\"bob\"}"), KG_EJSON, NULL },
	/* invalid UTF-8 */
	{ B("{\"username\":\"\xC0\x80\"}"), KG_EJSON, NULL },          /* overlong NUL */
	{ B("{\"username\":\"\xC1\xBF\"}"), KG_EJSON, NULL },          /* overlong */
	{ B("{\"username\":\"\xE0\x80\x80\"}"), KG_EJSON, NULL },      /* overlong, 3 bytes */
	{ B("{\"username\":\"\xE0\x9F\xBF\"}"), KG_EJSON, NULL },      /* overlong U+07FF */
	{ B("{\"username\":\"\xF0\x80\x80\x80\"}"), KG_EJSON, NULL },  /* overlong, 4 bytes */
	{ B("{\"username\":\"\xF0\x8F\xBF\xBF\"}"), KG_EJSON, NULL },  /* overlong U+FFFF */
	{ B("{\"username\":\"\x80\"}"), KG_EJSON, NULL },              /* lone continuation */
	{ B("{\"username\":\"a\xBF\"}"), KG_EJSON, NULL },
	{ B("{\"username\":\"\xED\xA0\x80\"}"), KG_EJSON, NULL },      /* U+D800 encoded */
	{ B("{\"username\":\"\xED\xBF\xBF\"}"), KG_EJSON, NULL },      /* U+DFFF encoded */
	{ B("{\"username\":\"\xF8\x88\x80\x80\x80\"}"), KG_EJSON, NULL }, /* 5 bytes */
	{ B("{\"username\":\"\xFC\x84\x80\x80\x80\x80\"}"), KG_EJSON, NULL }, /* 6 bytes */
	{ B("{\"username\":\"\xF4\x90\x80\x80\"}"), KG_EJSON, NULL },  /* U+110000 */
	{ B("{\"username\":\"\xF5\x80\x80\x80\"}"), KG_EJSON, NULL },
	{ B("{\"username\":\"\xFE\"}"), KG_EJSON, NULL },
	{ B("{\"username\":\"\xFF\"}"), KG_EJSON, NULL },
	{ B("{\"username\":\"\xE2\x82\"}"), KG_EJSON, NULL },          /* truncated */
	{ B("{\"username\":\"\xC3\"}"), KG_EJSON, NULL },
	{ B("{\"username\":\"\xF0\x9F\x98\"}"), KG_EJSON, NULL },
	{ B("{\"username\":\"\xE2\x82"), KG_EJSON, NULL },             /* truncated at the end */
	{ B("{\"username\":\"\xC3\xA9\xC3\"}"), KG_EJSON, NULL },
	{ B("{\"\xC0\x80\":1,\"username\":\"bob\"}"), KG_EJSON, NULL }, /* in a key */
	{ B("{\"username\":\"bob\",\"a\":[\"\x80\"]}"), KG_EJSON, NULL }, /* in an ignored field */
	/* valid UTF-8 */
	{ B("{\"username\":\"\xC3\xA9\"}"), KG_OK, NULL },               /* U+00E9 */
	{ B("{\"username\":\"\xE2\x82\xAC\"}"), KG_OK, NULL },           /* U+20AC */
	{ B("{\"username\":\"\xF0\x9F\x98\x80\"}"), KG_OK, NULL },       /* U+1F600 */
	{ B("{\"username\":\"\xF4\x8F\xBF\xBF\"}"), KG_OK, NULL },       /* U+10FFFF */
	{ B("{\"username\":\"\xEF\xBF\xBF\"}"), KG_OK, NULL },           /* U+FFFF */
	{ B("{\"username\":\"\xED\x9F\xBF\"}"), KG_OK, NULL },           /* U+D7FF */
	{ B("{\"username\":\"\xEE\x80\x80\"}"), KG_OK, NULL },           /* U+E000 */
	/* surrogate escapes: only a high-low pair */
	{ B("{\"username\":\"\\ud800\"}"), KG_EJSON, NULL },
	{ B("{\"username\":\"\\udc00\"}"), KG_EJSON, NULL },
	{ B("{\"username\":\"\\uDBFF\"}"), KG_EJSON, NULL },
	{ B("{\"username\":\"\\uDFFF\"}"), KG_EJSON, NULL },
	{ B("{\"username\":\"\\ud800x\"}"), KG_EJSON, NULL },
	{ B("{\"username\":\"\\ud800\\u0041\"}"), KG_EJSON, NULL },
	{ B("{\"username\":\"\\ud83d\\ud83d\"}"), KG_EJSON, NULL },
	{ B("{\"username\":\"\\ude00\\ud83d\"}"), KG_EJSON, NULL },
	{ B("{\"username\":\"\\ud800\\n\"}"), KG_EJSON, NULL },
	{ B("{\"username\":\"\\ud83d\\ude00\"}"), KG_OK, NULL },
	{ B("{\"username\":\"\\uD83D\\uDE00\"}"), KG_OK, NULL },
	{ B("{\"username\":\"\\udbff\\udfff\"}"), KG_OK, NULL },
	{ B("{\"username\":\"\\ud7ff\\ue000\"}"), KG_OK, NULL },
	/* brackets inside strings are not nesting */
	{ B("{\"username\":\"[[[[[[[[\",\"note\":\"{{{{{{{{{{{{{{{{{{{{\"}"), KG_OK, NULL },
	{ B("{\"username\":\"\\\"[[[[[[\",\"note\":\"\\\\\\\"]]]]]]]]]]]]]]]]\"}"), KG_OK, NULL },
	/* per-field problems */
	{ B("{}"), KG_EINPUT, "{\"username\":\"required\"}" },
	{ B("{\"username\":null}"), KG_EINPUT, "{\"username\":\"required\"}" },
	{ B("{\"Username\":\"bob\"}"), KG_EINPUT, "{\"username\":\"required\"}" },
	{ B("{\"username\":1}"), KG_EINPUT, "{\"username\":\"wrong_type\"}" },
	{ B("{\"username\":true}"), KG_EINPUT, "{\"username\":\"wrong_type\"}" },
	{ B("{\"username\":[\"bob\"]}"), KG_EINPUT, "{\"username\":\"wrong_type\"}" },
	{ B("{\"username\":{}}"), KG_EINPUT, "{\"username\":\"wrong_type\"}" },
	{ B("{\"username\":\"123456789\"}"), KG_EINPUT, "{\"username\":\"too_long\"}" },
	{ B("{\"username\":\"12345678\"}"), KG_OK, NULL },
	{ B("{\"username\":\"\"}"), KG_OK, NULL },
	/* lengths are bytes: 4 x U+00E9 is 8 bytes, 5 is 10 */
	{ B("{\"username\":\"\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\"}"), KG_OK, NULL },
	{ B("{\"username\":\"\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\"}"), KG_EINPUT,
	    "{\"username\":\"too_long\"}" },
	/* the length is that of the decoded string */
	{ B("{\"username\":\"\\u0041\\u0042\\u0043\\u0044\\u0045\\u0046\\u0047\\u0048\"}"), KG_OK,
	    NULL },
	{ B("{\"username\":\"bob\",\"remember\":\"yes\"}"), KG_EINPUT, "{\"remember\":\"wrong_type\"}" },
	{ B("{\"username\":\"bob\",\"remember\":1}"), KG_EINPUT, "{\"remember\":\"wrong_type\"}" },
	{ B("{\"username\":\"bob\",\"remember\":null}"), KG_OK, NULL },
	{ B("{\"username\":\"bob\",\"scopes\":\"a\"}"), KG_EINPUT, "{\"scopes\":\"wrong_type\"}" },
	{ B("{\"username\":\"bob\",\"scopes\":{}}"), KG_EINPUT, "{\"scopes\":\"wrong_type\"}" },
	{ B("{\"username\":\"bob\",\"scopes\":[\"a\",1]}"), KG_EINPUT, "{\"scopes\":\"wrong_type\"}" },
	{ B("{\"username\":\"bob\",\"scopes\":[null]}"), KG_EINPUT, "{\"scopes\":\"wrong_type\"}" },
	{ B("{\"username\":\"bob\",\"scopes\":[[\"a\"]]}"), KG_EINPUT, "{\"scopes\":\"wrong_type\"}" },
	{ B("{\"username\":\"bob\",\"scopes\":[\"abcdef\"]}"), KG_EINPUT, "{\"scopes\":\"too_long\"}" },
	{ B("{\"username\":\"bob\",\"scopes\":[\"abcde\"]}"), KG_OK, NULL },
	{ B("{\"username\":\"bob\",\"scopes\":null}"), KG_OK, NULL },
	/* every problem is reported, in field-table order */
	{ B("{\"remember\":\"x\",\"scopes\":[1],\"note\":false}"), KG_EINPUT,
	    "{\"username\":\"required\",\"remember\":\"wrong_type\",\"scopes\":\"wrong_type\","
	    "\"note\":\"wrong_type\"}" },
	{ B("{\"username\":\"123456789\",\"note\":\"x\",\"remember\":[]}"), KG_EINPUT,
	    "{\"username\":\"too_long\",\"remember\":\"wrong_type\"}" },
};

static void
test_bodies(void **state)
{
	static char sentinel;
	struct json_value v[F__MAX];
	char buf[512];
	size_t i;

	(void)state;
	for (i = 0; i < NELEM(body_cases); i++) {
		struct json_obj *errors = (struct json_obj *)(void *)&sentinel; /* must be reset */
		enum kg_err err = json_parse_fields(body_cases[i].body, body_cases[i].len, fields,
		    F__MAX, v, &errors);
		char *s = NULL;
		size_t len, j;

		if (err != body_cases[i].err)
			fail_msg("body %zu %s: err %d (%s), want %d (%s)", i,
			    show(body_cases[i].body, body_cases[i].len, buf, sizeof(buf)), (int)err,
			    kg_strerror(err), (int)body_cases[i].err, kg_strerror(body_cases[i].err));
		if (err != KG_EINPUT) {
			if (errors != NULL)
				fail_msg("body %zu: errors set with err %d", i, (int)err);
		} else {
			if (errors == NULL)
				fail_msg("body %zu: KG_EINPUT without errors", i);
			assert_int_equal(json_render(errors, &s, &len), KG_OK);
			if (strcmp(s, body_cases[i].errors) != 0) {
				print_error("body %zu %s:\n errors %s\n want   %s\n", i,
				    show(body_cases[i].body, body_cases[i].len, buf, sizeof(buf)), s,
				    body_cases[i].errors);
				free(s);
				json_free(errors);
				fail();
			}
			free(s);
			json_free(errors);
		}
		if (err != KG_OK) {
			/* Nothing is handed back on failure. */
			for (j = 0; j < F__MAX; j++)
				if (v[j].present || v[j].str != NULL || v[j].strv != NULL)
					fail_msg("body %zu: value %zu left set after err %d", i, j, (int)err);
			continue;
		}
		json_values_free(v, F__MAX);
	}
}

/*
 * RFC 8259 grammar that cJSON is lenient about: raw control characters in
 * strings (section 7: "MUST be escaped") and numbers with leading zeros or
 * a bare decimal point (section 6). The body must be JSON, not "what cJSON
 * happens to accept".
 */
static const struct {
	const char *body;
	size_t len;
} strict_cases[] = {
	{ B("{\"username\":\"a\tb\"}") },
	{ B("{\"username\":\"a\nb\"}") },
	{ B("{\"username\":\"a\rb\"}") },
	{ B("{\"username\":\"a\x01\"}") },
	{ B("{\"username\":\"\x1b[0m\"}") },
	{ B("{\"username\":\"a\x1f\"}") },
	{ B("{\"\x01\":1,\"username\":\"bob\"}") },
	{ B("{\"username\":\"bob\",\"n\":01}") },
	{ B("{\"username\":\"bob\",\"n\":-01}") },
	{ B("{\"username\":\"bob\",\"n\":1.}") },
	{ B("{\"username\":\"bob\",\"n\":1.e5}") },
};

static void
test_strict_grammar(void **state)
{
	struct json_value v[F__MAX];
	char buf[512];
	size_t i;
	int bad = 0;

	(void)state;
	/* Escaped control characters and a raw DEL are JSON. */
	{
		struct json_obj *errors = NULL;

		assert_int_equal(json_parse_fields(B("{\"username\":\"a\\tb\\u001f\x7f\"}"),
		    fields, F__MAX, v, &errors), KG_OK);
		assert_string_equal(v[F_USERNAME].str, "a\tb\x1f\x7f");
		json_values_free(v, F__MAX);
	}
	for (i = 0; i < NELEM(strict_cases); i++) {
		struct json_obj *errors = NULL;
		enum kg_err err = json_parse_fields(strict_cases[i].body, strict_cases[i].len,
		    fields, F__MAX, v, &errors);

		if (err == KG_OK)
			json_values_free(v, F__MAX);
		json_free(errors);
		if (err != KG_EJSON) {
			print_error("not JSON but accepted: %s -> err %d, want KG_EJSON\n",
			    show(strict_cases[i].body, strict_cases[i].len, buf, sizeof(buf)), (int)err);
			bad++;
		}
	}
	if (bad > 0)
		fail_msg("%d of %zu invalid JSON bodies accepted", bad, NELEM(strict_cases));
}

static void
test_empty_body(void **state)
{
	static const struct json_field optional[] = {
		{ "remember", JF_BOOL, 0, 0 },
		{ "note", JF_STRING, 10, 0 },
	};
	struct json_value v[F__MAX];
	struct json_obj *errors = NULL;
	char *s;
	size_t len;

	(void)state;
	/* Empty means {}: fine when nothing is required ... */
	assert_int_equal(json_parse_fields("", 0, optional, 2, v, &errors), KG_OK);
	assert_null(errors);
	assert_false(v[0].present);
	assert_false(v[1].present);
	json_values_free(v, 2);
	assert_int_equal(json_parse_fields(NULL, 0, optional, 2, v, &errors), KG_OK);
	json_values_free(v, 2);
	/* ... and the required fields are reported as for {}. */
	assert_int_equal(json_parse_fields("", 0, fields, F__MAX, v, &errors), KG_EINPUT);
	assert_non_null(errors);
	assert_int_equal(json_render(errors, &s, &len), KG_OK);
	assert_string_equal(s, "{\"username\":\"required\"}");
	free(s);
	json_free(errors);
	/* Only len counts: bytes beyond it are not read. */
	assert_int_equal(json_parse_fields("{\"username\":\"bob\"}garbage", 18, fields, F__MAX, v,
	    &errors), KG_OK);
	assert_string_equal(v[F_USERNAME].str, "bob");
	json_values_free(v, F__MAX);
	/* No fields at all: any object. */
	assert_int_equal(json_parse_fields(B("{\"a\":1}"), optional, 0, v, &errors), KG_OK);
	assert_int_equal(json_parse_fields(B("[]"), optional, 0, v, &errors), KG_EJSON);
}

static void
test_values(void **state)
{
	static const char body[] =
	    "{\"note\":\"a\\\"b\\\\c\\n\\u00e9\\ud83d\\ude00\",\"username\":\"bob\","
	    "\"remember\":true,\"scopes\":[\"read\",\"write\",\"\"]}";
	struct json_value v[F__MAX];
	struct json_obj *errors = NULL;

	(void)state;
	assert_int_equal(json_parse_fields(body, strlen(body), fields, F__MAX, v, &errors), KG_OK);
	assert_null(errors);
	assert_true(v[F_USERNAME].present);
	assert_string_equal(v[F_USERNAME].str, "bob");
	assert_int_equal(v[F_USERNAME].len, 3);
	assert_true(v[F_REMEMBER].present);
	assert_int_equal(v[F_REMEMBER].boolean, 1);
	assert_true(v[F_SCOPES].present);
	assert_int_equal(v[F_SCOPES].n, 3);
	assert_string_equal(v[F_SCOPES].strv[0], "read");
	assert_string_equal(v[F_SCOPES].strv[1], "write");
	assert_string_equal(v[F_SCOPES].strv[2], "");
	assert_null(v[F_SCOPES].strv[3]);
	assert_true(v[F_NOTE].present);
	assert_string_equal(v[F_NOTE].str, "a\"b\\c\n\xC3\xA9\xF0\x9F\x98\x80");
	assert_int_equal(v[F_NOTE].len, strlen("a\"b\\c\n\xC3\xA9\xF0\x9F\x98\x80"));
	json_values_free(v, F__MAX);
	assert_false(v[F_USERNAME].present);
	assert_null(v[F_USERNAME].str);
	assert_null(v[F_SCOPES].strv);
	json_values_free(v, F__MAX);    /* twice is harmless */
}

static void
test_values_optional_absent(void **state)
{
	struct json_value v[F__MAX];
	struct json_obj *errors = NULL;

	(void)state;
	assert_int_equal(json_parse_fields(B("{\"username\":\"bob\",\"remember\":false,"
	    "\"scopes\":[]}"), fields, F__MAX, v, &errors), KG_OK);
	assert_true(v[F_REMEMBER].present);
	assert_int_equal(v[F_REMEMBER].boolean, 0);
	/* An empty array is present, with an empty NULL-terminated vector. */
	assert_true(v[F_SCOPES].present);
	assert_int_equal(v[F_SCOPES].n, 0);
	assert_non_null(v[F_SCOPES].strv);
	assert_null(v[F_SCOPES].strv[0]);
	assert_false(v[F_NOTE].present);
	assert_null(v[F_NOTE].str);
	json_values_free(v, F__MAX);

	/* null is absent, like a missing member */
	assert_int_equal(json_parse_fields(B("{\"username\":\"bob\",\"note\":null,"
	    "\"remember\":null,\"scopes\":null}"), fields, F__MAX, v, &errors), KG_OK);
	assert_false(v[F_NOTE].present);
	assert_false(v[F_REMEMBER].present);
	assert_false(v[F_SCOPES].present);
	json_values_free(v, F__MAX);
}

static void
test_escaped_backslash_literal(void **state)
{
	struct json_value v[F__MAX];
	struct json_obj *errors = NULL;

	(void)state;
	/* JSON text "\\u0000" is a backslash followed by "u0000": six characters. */
	assert_int_equal(json_parse_fields(B("{\"username\":\"\\\\u0000\"}"), fields, F__MAX, v,
	    &errors), KG_OK);
	assert_string_equal(v[F_USERNAME].str, "\\u0000");
	assert_int_equal(v[F_USERNAME].len, 6);
	json_values_free(v, F__MAX);
}

static void
test_surrogate_pair_value(void **state)
{
	struct json_value v[F__MAX];
	struct json_obj *errors = NULL;

	(void)state;
	assert_int_equal(json_parse_fields(B("{\"username\":\"\\ud83d\\ude00\"}"), fields, F__MAX,
	    v, &errors), KG_OK);
	assert_string_equal(v[F_USERNAME].str, "\xF0\x9F\x98\x80");
	assert_int_equal(v[F_USERNAME].len, 4);
	json_values_free(v, F__MAX);
}

/* {"a":[[...[1]...]]} with depth brackets in all. */
static char *
nested_arrays(int depth)
{
	size_t len = 5 + 2 * (size_t)depth + 2;
	char *s = malloc(len), *p = s;
	int i;

	assert_non_null(s);
	p += sprintf(p, "{\"a\":");
	for (i = 1; i < depth; i++)
		*p++ = '[';
	*p++ = '1';
	for (i = 1; i < depth; i++)
		*p++ = ']';
	*p++ = '}';
	*p = '\0';
	return s;
}

/* {"a":{"a":...{"a":1}...}} with depth objects in all. */
static char *
nested_objects(int depth)
{
	size_t len = 6 * (size_t)depth + 2 + (size_t)depth + 1;
	char *s = malloc(len), *p = s;
	int i;

	assert_non_null(s);
	for (i = 0; i < depth; i++)
		p += sprintf(p, "{\"a\":");
	*p++ = '1';
	for (i = 0; i < depth; i++)
		*p++ = '}';
	*p = '\0';
	return s;
}

static void
test_depth(void **state)
{
	static const struct json_field none[] = { { "x", JF_STRING, 10, 0 } };
	char *(*const make[])(int) = { nested_arrays, nested_objects };
	struct json_value v[1];
	struct json_obj *errors = NULL;
	size_t k;

	(void)state;
	for (k = 0; k < NELEM(make); k++) {
		int depth;

		for (depth = 1; depth <= JSON_MAX_DEPTH + 3; depth++) {
			char *body = make[k](depth);
			enum kg_err want = depth <= JSON_MAX_DEPTH ? KG_OK : KG_EJSON;
			enum kg_err err = json_parse_fields(body, strlen(body), none, 1, v, &errors);

			if (err == KG_OK)
				json_values_free(v, 1);
			if (err != want)
				print_error("depth %d: %s\n", depth, body);
			free(body);
			if (err != want)
				fail_msg("depth %d: err %d, want %d", depth, (int)err, (int)want);
		}
	}
	/* Far deeper than cJSON's own limit: refused before parsing. */
	{
		char *body = nested_arrays(5000);

		assert_int_equal(json_parse_fields(body, strlen(body), none, 1, v, &errors), KG_EJSON);
		free(body);
	}
	/* Depth is nesting, not the number of containers. */
	assert_int_equal(json_parse_fields(B("{\"a\":[],\"b\":[],\"c\":{},\"d\":[],\"e\":[],"
	    "\"f\":{},\"g\":[],\"h\":[],\"i\":[],\"j\":{}}"), none, 1, v, &errors), KG_OK);
	json_values_free(v, 1);
}

/* {"username":"bob","scopes":["s0",...]} with n elements. */
static char *
scopes_body(size_t n)
{
	char *s = malloc(64 + 6 * n), *p = s;
	size_t i;

	assert_non_null(s);
	p += sprintf(p, "{\"username\":\"bob\",\"scopes\":[");
	for (i = 0; i < n; i++)
		p += sprintf(p, "%s\"s%zu\"", i ? "," : "", i);
	sprintf(p, "]}");
	return s;
}

static void
test_strings_limit(void **state)
{
	struct json_value v[F__MAX];
	struct json_obj *errors = NULL;
	char *body, *s;
	size_t len;

	(void)state;
	body = scopes_body(JSON_MAX_STRINGS);
	assert_int_equal(json_parse_fields(body, strlen(body), fields, F__MAX, v, &errors), KG_OK);
	assert_int_equal(v[F_SCOPES].n, JSON_MAX_STRINGS);
	assert_string_equal(v[F_SCOPES].strv[JSON_MAX_STRINGS - 1], "s15");
	assert_null(v[F_SCOPES].strv[JSON_MAX_STRINGS]);
	json_values_free(v, F__MAX);
	free(body);

	body = scopes_body(JSON_MAX_STRINGS + 1);
	assert_int_equal(json_parse_fields(body, strlen(body), fields, F__MAX, v, &errors),
	    KG_EINPUT);
	assert_int_equal(json_render(errors, &s, &len), KG_OK);
	assert_string_equal(s, "{\"scopes\":\"too_long\"}");
	free(s);
	json_free(errors);
	assert_null(v[F_SCOPES].strv);
	free(body);
}

static void
test_builder(void **state)
{
	struct json_obj *o = json_obj_new();

	(void)state;
	assert_non_null(o);
	assert_renders(o, "{}");
	json_set_str(o, "s", "x");
	json_set_int(o, "n", 42);
	json_set_bool(o, "t", 1);
	json_set_bool(o, "f", 0);
	json_set_str(o, "null", NULL);
	assert_renders(o, "{\"s\":\"x\",\"n\":42,\"t\":true,\"f\":false,\"null\":null}");
	json_free(o);
}

static const struct {
	long long n;
	const char *want;
} int_cases[] = {
	{ 0, "{\"n\":0}" },
	{ 1, "{\"n\":1}" },
	{ -1, "{\"n\":-1}" },
	{ 2147483647LL, "{\"n\":2147483647}" },
	{ -2147483648LL, "{\"n\":-2147483648}" },
	{ 1700000000LL, "{\"n\":1700000000}" },
	/* past 2038: more than an int */
	{ 4102444800LL, "{\"n\":4102444800}" },
	{ 1099511627776LL, "{\"n\":1099511627776}" },
	{ 999999999999999LL, "{\"n\":999999999999999}" },
	{ -999999999999999LL, "{\"n\":-999999999999999}" },
	{ 10, "{\"n\":10}" },
	{ 9223372036854775807LL, "{\"n\":9223372036854775807}" },
	{ -9223372036854775807LL - 1, "{\"n\":-9223372036854775808}" },
};

static void
test_builder_ints(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < NELEM(int_cases); i++) {
		struct json_obj *o = json_obj_new();
		char *s = NULL;
		size_t len;

		assert_non_null(o);
		json_set_int(o, "n", int_cases[i].n);
		assert_int_equal(json_render(o, &s, &len), KG_OK);
		if (strcmp(s, int_cases[i].want) != 0)
			fail_msg("json_set_int(%lld) renders %s, want %s", int_cases[i].n, s,
			    int_cases[i].want);
		free(s);
		json_free(o);
	}
}

/*
 * Integers up to 2^53 - 1 (RFC 8259 section 6's interoperable range) must
 * render exactly and as integers: a long long goes in, so a long long
 * should come out, not a rounded double in exponent form.
 */
static const struct {
	long long n;
	const char *want;
} int_precision_cases[] = {
	{ 1000000000000000LL, "{\"n\":1000000000000000}" },
	{ 9007199254740991LL, "{\"n\":9007199254740991}" },
	{ -9007199254740991LL, "{\"n\":-9007199254740991}" },
	{ 4503599627370497LL, "{\"n\":4503599627370497}" },
};

static void
test_builder_int_precision(void **state)
{
	size_t i;
	int bad = 0;

	(void)state;
	for (i = 0; i < NELEM(int_precision_cases); i++) {
		struct json_obj *o = json_obj_new();
		char *s = NULL;
		size_t len;

		assert_non_null(o);
		json_set_int(o, "n", int_precision_cases[i].n);
		assert_int_equal(json_render(o, &s, &len), KG_OK);
		if (strcmp(s, int_precision_cases[i].want) != 0) {
			print_error("json_set_int(%lld) renders %s, want %s\n",
			    int_precision_cases[i].n, s, int_precision_cases[i].want);
			bad++;
		}
		free(s);
		json_free(o);
	}
	if (bad > 0)
		fail_msg("%d of %zu integers rendered inexactly", bad, NELEM(int_precision_cases));
}

static void
test_builder_strings(void **state)
{
	struct json_obj *o = json_obj_new();

	(void)state;
	assert_non_null(o);
	json_set_str(o, "q", "a\"b\\c/d\n\t\x01");
	assert_renders(o, "{\"q\":\"a\\\"b\\\\c/d\\n\\t\\u0001\"}");
	json_set_str(o, "q", "\xC3\xA9\xF0\x9F\x98\x80");
	assert_renders(o, "{\"q\":\"\xC3\xA9\xF0\x9F\x98\x80\"}");
	json_set_str(o, "q", "");
	assert_renders(o, "{\"q\":\"\"}");
	json_free(o);
}

static void
test_builder_replace(void **state)
{
	struct json_obj *o = json_obj_new();

	(void)state;
	assert_non_null(o);
	json_set_str(o, "a", "1");
	json_set_str(o, "a", "2");
	assert_renders(o, "{\"a\":\"2\"}");
	/* a later set replaces the member, whatever the types */
	json_set_str(o, "b", "x");
	json_set_int(o, "a", 3);
	assert_renders(o, "{\"b\":\"x\",\"a\":3}");
	json_set_bool(o, "b", 1);
	json_set_str(o, "a", NULL);
	assert_renders(o, "{\"b\":true,\"a\":null}");
	json_set_str(o, "a", "again");
	assert_renders(o, "{\"b\":true,\"a\":\"again\"}");
	/* names are case-sensitive */
	json_set_str(o, "A", "upper");
	assert_renders(o, "{\"b\":true,\"a\":\"again\",\"A\":\"upper\"}");
	json_free(o);
}

static void
test_builder_strv(void **state)
{
	static const char *const v[] = { "read", "write", "a\"b" };
	struct json_obj *o = json_obj_new();

	(void)state;
	assert_non_null(o);
	json_set_strv(o, "scopes", v, 3);
	assert_renders(o, "{\"scopes\":[\"read\",\"write\",\"a\\\"b\"]}");
	json_set_strv(o, "scopes", v, 0);
	assert_renders(o, "{\"scopes\":[]}");
	json_set_strv(o, "scopes", NULL, 0);
	assert_renders(o, "{\"scopes\":[]}");
	json_free(o);
}

static void
test_builder_nested(void **state)
{
	struct json_obj *o = json_obj_new(), *child = json_obj_new(), *arr = json_arr_new();
	struct json_obj *e1 = json_obj_new(), *e2 = json_obj_new();

	(void)state;
	assert_non_null(o);
	assert_non_null(child);
	assert_non_null(arr);
	assert_non_null(e1);
	assert_non_null(e2);
	json_set_int(child, "x", 1);
	json_set_obj(o, "child", child);        /* o owns child now */
	json_set_str(e1, "id", "a");
	json_set_str(e2, "id", "b");
	json_set_obj(arr, NULL, e1);            /* appended */
	json_set_obj(arr, NULL, e2);
	json_set_obj(o, "list", arr);
	assert_renders(o, "{\"child\":{\"x\":1},\"list\":[{\"id\":\"a\"},{\"id\":\"b\"}]}");
	/* replacing a nested member frees the old one (valgrind) */
	child = json_obj_new();
	assert_non_null(child);
	json_set_obj(o, "child", child);
	assert_renders(o, "{\"list\":[{\"id\":\"a\"},{\"id\":\"b\"}],\"child\":{}}");
	/* an empty array renders as [] */
	arr = json_arr_new();
	assert_non_null(arr);
	assert_renders(arr, "[]");
	json_free(arr);
	json_free(o);
}

static void
test_builder_failures(void **state)
{
	struct json_obj *o, *child;
	char *s = (char *)"unset";
	size_t len = 99;

	(void)state;
	/* NULL objects are ignored; a child handed to NULL is freed (valgrind). */
	json_set_str(NULL, "a", "b");
	json_set_int(NULL, "a", 1);
	json_set_bool(NULL, "a", 1);
	json_set_strv(NULL, "a", NULL, 0);
	child = json_obj_new();
	assert_non_null(child);
	json_set_obj(NULL, "a", child);
	json_free(NULL);
	assert_null(json_get_str(NULL, "a"));
	assert_false(json_has(NULL, "a"));
	assert_int_equal(json_render(NULL, &s, &len), KG_ENOMEM);
	assert_null(s);
	assert_int_equal(len, 0);

	/* A missing child marks the object failed: it will not render half. */
	o = json_obj_new();
	assert_non_null(o);
	json_set_str(o, "a", "b");
	json_set_obj(o, "child", NULL);
	s = (char *)"unset";
	assert_int_equal(json_render(o, &s, &len), KG_ENOMEM);
	assert_null(s);
	json_free(o);
}

static void
test_get_and_has(void **state)
{
	struct json_obj *o = json_obj_new();

	(void)state;
	assert_non_null(o);
	json_set_str(o, "s", "val");
	json_set_int(o, "n", 7);
	json_set_str(o, "z", NULL);
	json_set_bool(o, "b", 0);
	assert_string_equal(json_get_str(o, "s"), "val");
	assert_null(json_get_str(o, "n"));
	assert_null(json_get_str(o, "z"));
	assert_null(json_get_str(o, "b"));
	assert_null(json_get_str(o, "missing"));
	assert_null(json_get_str(o, "S"));
	assert_true(json_has(o, "s"));
	assert_true(json_has(o, "n"));
	assert_true(json_has(o, "z"));      /* null members are members */
	assert_true(json_has(o, "b"));
	assert_false(json_has(o, "missing"));
	assert_false(json_has(o, "S"));
	assert_false(json_has(o, ""));
	json_free(o);
}

/* What the builder renders parses back through the field tables. */
static void
test_round_trip(void **state)
{
	static const char *const scopes[] = { "read", "\xC3\xA9t\xC3\xA9" };
	struct json_obj *o = json_obj_new();
	struct json_value v[F__MAX];
	struct json_obj *errors = NULL;
	char *s;
	size_t len;

	(void)state;
	assert_non_null(o);
	json_set_str(o, "username", "b\"\\\n\x7f");
	json_set_bool(o, "remember", 1);
	json_set_strv(o, "scopes", scopes, 2);
	json_set_str(o, "note", "\xF0\x9F\x98\x80");
	assert_int_equal(json_render(o, &s, &len), KG_OK);
	assert_int_equal(json_parse_fields(s, len, fields, F__MAX, v, &errors), KG_OK);
	assert_string_equal(v[F_USERNAME].str, "b\"\\\n\x7f");
	assert_int_equal(v[F_REMEMBER].boolean, 1);
	assert_int_equal(v[F_SCOPES].n, 2);
	assert_string_equal(v[F_SCOPES].strv[1], "\xC3\xA9t\xC3\xA9");
	assert_string_equal(v[F_NOTE].str, "\xF0\x9F\x98\x80");
	json_values_free(v, F__MAX);
	free(s);
	json_free(o);
}

/*
 * Replies come out of the arena until it is full and out of malloc after:
 * both render alike, into a buffer that fits and not into one that does
 * not; after json_arena_reset the arena serves again.
 */
static void
test_arena_and_render_buf(void **state)
{
	char small[16], big[65536], key[16], want_tail[64];
	struct json_obj *o;
	size_t len = 0, i;
	int round;

	(void)state;
	for (round = 0; round < 2; round++) {
		o = json_obj_new();
		assert_non_null(o);
		/* ~40 KiB of members: more than the 16 KiB arena. */
		for (i = 0; i < 1000; i++) {
			(void)snprintf(key, sizeof(key), "k%04zu", i);
			json_set_str(o, key, "0123456789abcdefghij");
		}
		assert_int_equal(json_render_buf(o, small, sizeof(small), &len), KG_ETOOLARGE);
		assert_int_equal(json_render_buf(o, big, sizeof(big), &len), KG_OK);
		assert_int_equal(len, strlen(big));
		assert_int_equal(len, 2 + 1000 * strlen("\"k0000\":\"0123456789abcdefghij\",") - 1);
		(void)snprintf(want_tail, sizeof(want_tail), "\"k0999\":\"0123456789abcdefghij\"}");
		assert_string_equal(big + len - strlen(want_tail), want_tail);
		assert_int_equal(strncmp(big, "{\"k0000\":", 9), 0);
		json_free(o);
		json_arena_reset();
	}
	assert_int_equal(json_render_buf(NULL, big, sizeof(big), &len), KG_ENOMEM);
}

/*
 * Allocation failures: this program is linked with --wrap=malloc and
 * --wrap=calloc (Makefile.am), so that the allocation numbered json_fail_at
 * (from 0, counted from when it is set) fails. -1: none fails.
 */
void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t size);
static long json_fail_at = -1;

static int
json_fail_now(void)
{
	if (json_fail_at < 0)
		return 0;
	return json_fail_at-- == 0;
}

void *
__wrap_malloc(size_t n)
{
	return json_fail_now() ? NULL : __real_malloc(n);
}

void *
__wrap_calloc(size_t n, size_t size)
{
	return json_fail_now() ? NULL : __real_calloc(n, size);
}

/*
 * Out of memory while copying the fields is KG_ENOMEM, whichever copy
 * fails: never a field problem (KG_EINPUT with an empty reason), never a
 * value left behind. Then, with memory, the same body parses.
 */
static void
test_parse_out_of_memory(void **state)
{
	static const struct json_field oom_fields[] = {
		{ "username", JF_STRING, 64, 1 },
		{ "scopes", JF_STRINGS, 32, 0 },
		{ "remember", JF_BOOL, 0, 0 },
	};
	static const char body[] = "{\"username\":\"alice\",\"scopes\":[\"read\",\"write\"],"
	                           "\"remember\":true}";
	struct json_value v[3];
	struct json_obj *errors;
	enum kg_err rc = KG_ENOMEM;
	long at, failures = 0;

	(void)state;
	for (at = 0; at < 100 && rc == KG_ENOMEM; at++) {
		json_arena_reset();
		json_fail_at = at;
		rc = json_parse_fields(body, strlen(body), oom_fields, 3, v, &errors);
		json_fail_at = -1;
		if (rc == KG_ENOMEM) {
			failures++;
			assert_null(errors);
			assert_int_equal(v[0].present, 0);
			assert_null(v[0].str);
			assert_null(v[1].strv);
		}
	}
	assert_int_equal(rc, KG_OK);
	/* username, the scopes array and its two strings: four copies that can fail. */
	assert_true(failures >= 4);
	assert_string_equal(v[0].str, "alice");
	assert_int_equal(v[1].n, 2);
	assert_string_equal(v[1].strv[1], "write");
	assert_true(v[2].boolean);
	json_values_free(v, 3);
	json_arena_reset();
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_arena_and_render_buf),
		cmocka_unit_test(test_bodies),
		cmocka_unit_test(test_strict_grammar),
		cmocka_unit_test(test_empty_body),
		cmocka_unit_test(test_values),
		cmocka_unit_test(test_values_optional_absent),
		cmocka_unit_test(test_escaped_backslash_literal),
		cmocka_unit_test(test_surrogate_pair_value),
		cmocka_unit_test(test_depth),
		cmocka_unit_test(test_strings_limit),
		cmocka_unit_test(test_builder),
		cmocka_unit_test(test_builder_ints),
		cmocka_unit_test(test_builder_int_precision),
		cmocka_unit_test(test_builder_strings),
		cmocka_unit_test(test_builder_replace),
		cmocka_unit_test(test_builder_strv),
		cmocka_unit_test(test_builder_nested),
		cmocka_unit_test(test_builder_failures),
		cmocka_unit_test(test_get_and_has),
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_parse_out_of_memory),
	};

	return cmocka_run_group_tests_name("json", tests, NULL, NULL);
}
