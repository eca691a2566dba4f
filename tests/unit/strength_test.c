/*
 * Unit tests for src/strength.c, the zxcvbn-c wrapper. Its place in the
 * password policy ("too_guessable") is tested in password_test.c.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "strength.h"

/* A string literal and its length. */
#define S(x) x, sizeof(x) - 1

static double
estimate(const char *pw, const char *word)
{
	const char *words[] = { word, NULL };
	double g = -1.0;

	assert_int_equal(strength_guesses_log10(pw, strlen(pw), words, &g), KG_OK);
	return g;
}

/* ---- strength_guesses_log10 ---- */

static void
test_strength_inputs(void **state)
{
	char big[STRENGTH_MAX_BYTES + 1];
	const char *many[STRENGTH_MAX_WORDS + 2];
	const char *enough[STRENGTH_MAX_WORDS + 1];
	double g;
	size_t i;

	(void)state;
	assert_int_equal(strength_guesses_log10(S("abc"), NULL, NULL), KG_EINPUT);
	g = -1.0;
	assert_int_equal(strength_guesses_log10(NULL, 3, NULL, &g), KG_EINPUT);
	assert_true(g == 0.0);
	/* An inner NUL would hide the rest of the password from zxcvbn. */
	assert_int_equal(strength_guesses_log10(S("correct\0horse battery"), NULL, &g),
	    KG_EINPUT);
	/* The empty password needs no guess: 10^0. */
	assert_int_equal(strength_guesses_log10(NULL, 0, NULL, &g), KG_OK);
	assert_true(g == 0.0);

	memset(big, 'x', sizeof(big));
	assert_int_equal(strength_guesses_log10(big, STRENGTH_MAX_BYTES, NULL, &g), KG_OK);
	assert_int_equal(strength_guesses_log10(big, STRENGTH_MAX_BYTES + 1, NULL, &g),
	    KG_EINPUT);

	for (i = 0; i < STRENGTH_MAX_WORDS; i++)
		enough[i] = many[i] = "word";
	enough[STRENGTH_MAX_WORDS] = NULL;
	many[STRENGTH_MAX_WORDS] = "one too many";
	many[STRENGTH_MAX_WORDS + 1] = NULL;
	assert_int_equal(strength_guesses_log10(S("correct horse battery staple"), enough, &g),
	    KG_OK);
	assert_int_equal(strength_guesses_log10(S("correct horse battery staple"), many, &g),
	    KG_EINPUT);
	/* An empty word ends the list, as NULL does. */
	many[1] = "";
	assert_int_equal(strength_guesses_log10(S("correct horse battery staple"), many, &g),
	    KG_OK);
}

static void
test_strength_estimates(void **state)
{
	char buf[64];
	double a, b;

	(void)state;
	/* Deterministic. */
	a = estimate("Tr0ub4dor&3 is long", "alice");
	b = estimate("Tr0ub4dor&3 is long", "alice");
	assert_true(a == b);
	/* The length is what counts: no NUL needed after it. */
	memcpy(buf, "correct horse battery stapleXXXX", 32);
	assert_int_equal(strength_guesses_log10(buf, 28, NULL, &a), KG_OK);
	assert_true(a == estimate("correct horse battery staple", NULL));
	/* A user word makes a password built from it much weaker, in any case. */
	assert_true(estimate("zqxjvkzqxjvkzqxjvk", "zqxjvk") < 3.0);
	assert_true(estimate("ZQXJVKzqxjvkZqXjVk", "zqxjvk") < 3.0);
	assert_true(estimate("zqxjvkzqxjvkzqxjvk", NULL) > estimate("zqxjvkzqxjvkzqxjvk", "zqxjvk"));
	/* Strong and weak, far apart. */
	assert_true(estimate("correct horse battery staple", NULL) > 15.0);
	assert_true(estimate("passwordpassword", NULL) < 2.0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_strength_inputs),
		cmocka_unit_test(test_strength_estimates),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
