/*
 * Unit tests for src/strength.c (the zxcvbn-c wrapper) and for the
 * estimate's place in password_check_policy ("too_guessable").
 *
 * The policy cases run with the shipped defaults of the two settings
 * that matter here: password_min_length = 15 and
 * password_min_guesses_log10 = 8. The weak passwords are those of issue
 * 15, all accepted before zxcvbn; the strong ones are every password the
 * README and docs/ show being registered or set, and those the tests use.
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
#include <unistd.h>

#include <cmocka.h>

#include "password.h"
#include "strength.h"

/* A string literal and its length. */
#define S(x) x, sizeof(x) - 1

#define DEFAULT_MIN_LENGTH 15
#define DEFAULT_FLOOR 8

static int
shutdown_after(void **state)
{
	(void)state;
	password_shutdown();
	return 0;
}

/* Small Argon2 parameters: nothing here hashes, password_init does once. */
static void
init_policy(unsigned min_length, unsigned floor_log10, const char *common)
{
	struct password_params p;

	memset(&p, 0, sizeof(p));
	p.memory_kib = 1024;
	p.iterations = 1;
	p.parallelism = 1;
	p.min_length = min_length;
	p.min_guesses_log10 = floor_log10;
	p.common_path = common;
	assert_int_equal(password_init(&p), KG_OK);
}

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

/* ---- the estimate in password_check_policy ---- */

static const struct {
	const char *name;
	const char *pw;         /* already NFKC */
	const char *username;
	const char *reason;     /* NULL = acceptable */
} policy_cases[] = {
	/* Issue 15: 15 characters or more, yet guessed at once. */
	{ "word repeated", "passwordpassword", "alice", "too_guessable" },
	{ "digit sequence", "123456789012345", "alice", "too_guessable" },
	{ "one letter", "aaaaaaaaaaaaaaaa", "alice", "too_guessable" },
	{ "keyboard rows", "qwertyuiopasdfgh", "alice", "too_guessable" },
	{ "keyboard rows, bottom", "zxcvbnmasdfghjkl", "alice", "too_guessable" },
	{ "common plus sequence", "password1234567", "alice", "too_guessable" },
	{ "common, capitalised", "Password123456!", "alice", "too_guessable" },
	{ "common repeated", "iloveyouiloveyou", "alice", "too_guessable" },
	{ "alphabet", "abcdefghijklmnop", "alice", "too_guessable" },
	/* The username: contained is refused as before, in l33t by zxcvbn. */
	{ "username repeated", "alicealicealice", "alice", "contains_username" },
	{ "username repeated, no username given", "alicealicealice", NULL, "too_guessable" },
	{ "username in l33t, repeated", "qu1nt4xqu1nt4xqu1nt4x", "quintax", "too_guessable" },
	{ "username in l33t, other user", "qu1nt4xqu1nt4xqu1nt4x", "bob", NULL },
	{ "username in l33t, no username given", "qu1nt4xqu1nt4xqu1nt4x", NULL, NULL },
	{ "username, case differs", "QUINTAX-quintax-99", "Quintax", "contains_username" },
	{ "username in l33t, case differs", "QU1NT4Xqu1nt4x99", "Quintax", "too_guessable" },
	/* The service name is a dictionary word for everybody. */
	{ "service name repeated", "keygatekeygate1234", "alice", "too_guessable" },
	{ "service name, capitalised", "Keygate2024keygate", NULL, "too_guessable" },
	{ "service name and a common word", "keygate-password-1", "alice", "too_guessable" },
	/* Accepted: what README.md and docs/ register and set, with alice. */
	{ "README.md, docs/API.md /join", "correct horse battery staple", "alice", NULL },
	{ "docs/API.md /password", "a much longer and newer passphrase", "alice", NULL },
	/* and what the tests and the fuzz corpus use as good passwords. */
	{ "test_api.py", "a long enough password 123", "alice", NULL },
	{ "test_api.py, shorter", "long enough password", "alice", NULL },
	{ "fuzz corpus /password", "a new password, long", "alice", NULL },
	{ "fuzz corpus /join", "Tr0ub4dor&3 is long", "alice", NULL },
	{ "fuzz corpus, other username", "someone-someone-someone", "alice", NULL },
	{ "NFKC of a test_api.py password", "final Fullwidth caf\xc3\xa9 caf\xc3\xa9", "alice",
	  NULL },
	{ "test_package.py", "package horse battery staple", "alice", NULL },
	{ "test_soak.py", "soak passphrase of reasonable length 42", "alice", NULL },
	{ "bench.py", "bench-password-Quartz-Lantern-42", "alice", NULL },
	/* Order: too_short, too_long, contains_username, too_common, too_guessable. */
	{ "short beats guessable", "aaaaaaaa", NULL, "too_short" },
	{ "username beats guessable", "alicealicealice1", "alice", "contains_username" },
};

static void
test_policy_guessable(void **state)
{
	const char *got;
	size_t i;

	(void)state;
	init_policy(DEFAULT_MIN_LENGTH, DEFAULT_FLOOR, NULL);
	for (i = 0; i < sizeof(policy_cases) / sizeof(policy_cases[0]); i++) {
		got = password_check_policy(policy_cases[i].pw, strlen(policy_cases[i].pw),
		    policy_cases[i].username);
		if (policy_cases[i].reason == NULL ? got != NULL :
		    got == NULL || strcmp(got, policy_cases[i].reason) != 0)
			fail_msg("policy case \"%s\" (%s): got %s", policy_cases[i].name,
			    policy_cases[i].pw, got ? got : "(acceptable)");
	}
	/* Too long is still too long, not too guessable. */
	{
		char buf[PASSWORD_MAX_CHARS + 1];

		memset(buf, 'a', sizeof(buf));
		assert_string_equal(password_check_policy(buf, sizeof(buf), NULL), "too_long");
		assert_string_equal(password_check_policy(buf, sizeof(buf) - 1, NULL),
		    "too_guessable");
	}
}

static void
test_policy_floor(void **state)
{
	struct password_params p;
	char list[] = "/tmp/kg-strength-test-XXXXXX";
	FILE *fp;
	int fd;

	(void)state;
	/* Floor 0: no estimate, as before zxcvbn. */
	init_policy(DEFAULT_MIN_LENGTH, 0, NULL);
	assert_null(password_check_policy(S("passwordpassword"), NULL));
	assert_null(password_check_policy(S("qwertyuiopasdfgh"), NULL));
	/* The floor is what decides: "qwertyuiopasdfgh" is about 10^5.4. */
	init_policy(DEFAULT_MIN_LENGTH, 5, NULL);
	assert_null(password_check_policy(S("qwertyuiopasdfgh"), NULL));
	init_policy(DEFAULT_MIN_LENGTH, 6, NULL);
	assert_string_equal(password_check_policy(S("qwertyuiopasdfgh"), NULL), "too_guessable");
	/* A floor nobody reaches refuses everything past the other rules. */
	init_policy(DEFAULT_MIN_LENGTH, PASSWORD_GUESSES_LOG10_MAX, NULL);
	assert_string_equal(password_check_policy(S("correct horse battery staple"), NULL),
	    "too_guessable");

	/* Above the maximum: a configuration error, the old state kept. */
	memset(&p, 0, sizeof(p));
	p.memory_kib = 1024;
	p.iterations = 1;
	p.parallelism = 1;
	p.min_length = DEFAULT_MIN_LENGTH;
	p.min_guesses_log10 = PASSWORD_GUESSES_LOG10_MAX + 1;
	assert_int_equal(password_init(&p), KG_ECONFIG);
	assert_string_equal(password_check_policy(S("correct horse battery staple"), NULL),
	    "too_guessable");

	/* A listed password says too_common, before the estimate is asked. */
	fd = mkstemp(list);
	assert_true(fd >= 0);
	fp = fdopen(fd, "w");
	assert_non_null(fp);
	assert_true(fputs("passwordpassword\n", fp) >= 0);
	assert_int_equal(fclose(fp), 0);
	init_policy(DEFAULT_MIN_LENGTH, DEFAULT_FLOOR, list);
	assert_int_equal(unlink(list), 0);
	assert_string_equal(password_check_policy(S("passwordpassword"), NULL), "too_common");
	assert_string_equal(password_check_policy(S("aaaaaaaaaaaaaaaa"), NULL), "too_guessable");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_strength_inputs),
		cmocka_unit_test(test_strength_estimates),
		cmocka_unit_test_teardown(test_policy_guessable, shutdown_after),
		cmocka_unit_test_teardown(test_policy_floor, shutdown_after),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
