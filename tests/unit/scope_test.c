/*
 * Unit tests for src/scope.c: the scope rules as tables (validity,
 * implication, what a token may carry at issue, what it may do once its
 * user's grant changed).
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "scope.h"

static void
test_valid(void **state)
{
	static const struct {
		const char *s;
		int ok;
	} cases[] = {
		{ "files", 1 },
		{ "files:read", 1 },
		{ "notes:read:own", 1 },
		{ "a", 1 },
		{ "*", 1 },
		{ "Files_2.x-y:READ", 1 },
		{ "", 0 },
		{ ":read", 0 },
		{ "files:", 0 },
		{ "files::read", 0 },
		{ "files:*", 0 },
		{ "**", 0 },
		{ "fi les", 0 },
		{ "files,read", 0 },
		{ "files/read", 0 },
		{ "caf\xc3\xa9", 0 },
		{ "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", 1 },
		{ "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", 0 },
	};
	size_t i;

	(void)state;
	assert_false(scope_valid(NULL));
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		if (scope_valid(cases[i].s) != cases[i].ok)
			fail_msg("scope_valid(\"%s\") != %d", cases[i].s, cases[i].ok);
}

static void
test_implies(void **state)
{
	static const struct {
		const char *have, *want;
		int ok;
	} cases[] = {
		{ "files", "files", 1 },
		{ "files", "files:read", 1 },
		{ "files", "files:read:own", 1 },
		{ "files:read", "files:read:own", 1 },
		{ "files:read", "files", 0 },
		{ "files:read", "files:write", 0 },
		{ "files", "filesystem", 0 },
		{ "files", "filesystem:read", 0 },
		{ "files:re", "files:read", 0 },
		{ "*", "files", 1 },
		{ "*", "anything:at:all", 1 },
		{ "*", "*", 1 },
		{ "files", "*", 0 },
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		if (scope_implies(cases[i].have, cases[i].want) != cases[i].ok)
			fail_msg("scope_implies(\"%s\", \"%s\") != %d", cases[i].have,
			    cases[i].want, cases[i].ok);
}

/* "a b c" as a set (the test's own shorthand). */
static struct scope_set
set(const char *list)
{
	struct scope_set s;

	assert_int_equal(scope_set_parse_list(list, &s), KG_OK);
	return s;
}

static void
assert_set(const struct scope_set *got, const char *want)
{
	char text[SCOPE_TEXT_MAX], expect[SCOPE_TEXT_MAX];
	struct scope_set w = set(want);

	assert_int_equal(scope_set_to_text(got, text, sizeof(text)), KG_OK);
	assert_int_equal(scope_set_to_text(&w, expect, sizeof(expect)), KG_OK);
	assert_string_equal(text, expect);
}

static void
test_effective(void **state)
{
	static const struct {
		const char *own, *granted, *effective;
	} cases[] = {
		/* today's default: every user granted everything */
		{ "*", "*", "*" },
		{ "files:read", "*", "files:read" },
		/* "*" is the whole grant, as it is now */
		{ "*", "files:read notes", "files:read notes" },
		/* a grant implies what the token carries */
		{ "files:read", "files", "files:read" },
		{ "files:read notes:write", "files notes", "files:read notes:write" },
		/* ungranted: gone */
		{ "files:read", "notes", "" },
		{ "files:read notes", "notes", "notes" },
		/* broader than the grant now: narrowed to the grants below it */
		{ "files", "files:read", "files:read" },
		{ "files", "files:read files:write notes", "files:read files:write" },
		{ "files", "filesystem", "" },
		{ "", "*", "" },
		{ "*", "", "" },
		/* each once */
		{ "files files:read *", "files:read", "files:read" },
	};
	struct scope_set own, granted, out;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		own = set(cases[i].own);
		granted = set(cases[i].granted);
		scope_effective(&own, &granted, &out);
		assert_set(&out, cases[i].effective);
	}
}

static void
test_missing(void **state)
{
	static const struct {
		const char *have, *want, *missing;
	} cases[] = {
		{ "*", "files notes:read *", "" },
		{ "files", "files:read files:write", "" },
		{ "files:read", "files", "files" },
		{ "files:read", "files:read notes *", "notes" },
		{ "files notes", "*", "" },
		{ "", "*", "" },
		{ "", "files", "files" },
	};
	struct scope_set have, want, out;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		have = set(cases[i].have);
		want = set(cases[i].want);
		scope_set_missing(&have, &want, &out);
		assert_set(&out, cases[i].missing);
	}
}

static void
test_expand(void **state)
{
	struct scope_set want = set("* notes:read"), have = set("files:read notes"), out;

	(void)state;
	scope_set_expand(&want, &have, &out);
	assert_set(&out, "files:read notes notes:read");
}

static void
test_parse_and_text(void **state)
{
	const char *ok[] = { "files:read", "notes", "files:read" };
	const char *bad[] = { "files", "files::x" };
	const char *many[SCOPE_SET_MAX + 1];
	char names[SCOPE_SET_MAX + 1][8], text[SCOPE_TEXT_MAX];
	struct scope_set s, back;
	const char *which;
	size_t i;

	(void)state;
	assert_int_equal(scope_set_parse(ok, 3, &s, &which), KG_OK);
	assert_int_equal(s.n, 2);
	assert_int_equal(scope_set_parse(bad, 2, &s, &which), KG_EINPUT);
	assert_string_equal(which, "files::x");
	for (i = 0; i <= SCOPE_SET_MAX; i++) {
		(void)snprintf(names[i], sizeof(names[i]), "s%zu", i);
		many[i] = names[i];
	}
	assert_int_equal(scope_set_parse(many, SCOPE_SET_MAX, &s, NULL), KG_OK);
	assert_int_equal(scope_set_parse(many, SCOPE_SET_MAX + 1, &s, &which), KG_EINPUT);
	assert_string_equal(which, "s16");
	/* The largest set, each scope 64 bytes, fits SCOPE_TEXT_MAX and reads back. */
	memset(&s, 0, sizeof(s));
	for (i = 0; i < SCOPE_SET_MAX; i++) {
		memset(s.s[i], 'a' + (int)i, SCOPE_MAX);
		s.s[i][SCOPE_MAX] = '\0';
	}
	s.n = SCOPE_SET_MAX;
	assert_int_equal(scope_set_to_text(&s, text, sizeof(text)), KG_OK);
	assert_int_equal(strlen(text) + 1, SCOPE_TEXT_MAX);
	assert_int_equal(scope_set_to_text(&s, text, sizeof(text) - 1), KG_ESYS);
	scope_set_from_text(text, &back);
	assert_int_equal(memcmp(&back, &s, sizeof(s)), 0);
	assert_int_equal(scope_set_parse_list("files:read, notes  x", &s), KG_OK);
	assert_int_equal(s.n, 3);
	assert_int_equal(scope_set_parse_list("files, bad::one", &s), KG_EINPUT);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_valid),
		cmocka_unit_test(test_implies),
		cmocka_unit_test(test_effective),
		cmocka_unit_test(test_missing),
		cmocka_unit_test(test_expand),
		cmocka_unit_test(test_parse_and_text),
	};

	return cmocka_run_group_tests_name("scope", tests, NULL, NULL);
}
