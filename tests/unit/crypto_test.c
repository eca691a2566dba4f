/*
 * Unit tests for src/crypto.c: SHA-256 vectors, constant-time compare,
 * CSPRNG and wiping.
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

#include "crypto.h"

/* Lowercase hex of the len bytes at in into out (2 * len + 1 bytes). */
static void
hex(const unsigned char *in, size_t len, char *out)
{
	static const char digits[] = "0123456789abcdef";
	size_t i;

	for (i = 0; i < len; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 0x0f];
	}
	out[2 * len] = '\0';
}

/* FIPS 180-2 appendix B and the NIST example vectors. */
static const struct {
	const char *in;
	const char *sha256;
} sha256_vectors[] = {
	{ "", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" },
	{ "abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" },
	{ "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
	  "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1" },
	{ "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu",
	  "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1" },
	{ "The quick brown fox jumps over the lazy dog",
	  "d7a8fbb307d7809469ca9abcb0082e4f8d5651e46d3cdb762d02d0bf37c9e592" },
};

static void
test_sha256_vectors(void **state)
{
	unsigned char md[CRYPTO_SHA256_LEN];
	char got[2 * CRYPTO_SHA256_LEN + 1];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(sha256_vectors) / sizeof(sha256_vectors[0]); i++) {
		crypto_sha256(sha256_vectors[i].in, strlen(sha256_vectors[i].in), md);
		hex(md, sizeof(md), got);
		assert_string_equal(got, sha256_vectors[i].sha256);
	}
}

static void
test_sha256_million_a(void **state)
{
	unsigned char md[CRYPTO_SHA256_LEN];
	char got[2 * CRYPTO_SHA256_LEN + 1];
	char *buf;

	(void)state;
	buf = malloc(1000000);
	assert_non_null(buf);
	memset(buf, 'a', 1000000);
	crypto_sha256(buf, 1000000, md);
	free(buf);
	hex(md, sizeof(md), got);
	assert_string_equal(got,
	    "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

static void
test_sha256_binary(void **state)
{
	/* Embedded NULs are data, not terminators. */
	static const unsigned char zeros[3] = { 0, 0, 0 };
	unsigned char md[CRYPTO_SHA256_LEN];
	char got[2 * CRYPTO_SHA256_LEN + 1];

	(void)state;
	crypto_sha256(zeros, sizeof(zeros), md);
	hex(md, sizeof(md), got);
	assert_string_equal(got,
	    "709e80c88487a2411e1ee4dfb9f22a861492d20c4765150c0c794abd70f8147c");
}

static const struct {
	const char *name;
	const char *a;
	const char *b;
	size_t len;
	int equal;
} equal_cases[] = {
	{ "same", "secret-value", "secret-value", 12, 1 },
	{ "first byte differs", "secret-value", "Secret-value", 12, 0 },
	{ "last byte differs", "secret-value", "secret-valuE", 12, 0 },
	{ "middle bit differs", "secret-value", "secret-walue", 12, 0 },
	{ "differs after len", "secret-value", "secret-valuX", 11, 1 },
	{ "zero length", "a", "b", 0, 1 },
	{ "embedded NUL", "ab\0cd", "ab\0ce", 5, 0 },
	{ "embedded NUL same", "ab\0cd", "ab\0cd", 5, 1 },
};

static void
test_equal(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(equal_cases) / sizeof(equal_cases[0]); i++) {
		if (crypto_equal(equal_cases[i].a, equal_cases[i].b,
		    equal_cases[i].len) != equal_cases[i].equal)
			fail_msg("crypto_equal case \"%s\"", equal_cases[i].name);
	}
}

static void
test_random(void **state)
{
	unsigned char a[32], b[32], zero[32];
	unsigned char *big;
	size_t i, nonzero = 0;

	(void)state;
	memset(a, 0, sizeof(a));
	memset(b, 0, sizeof(b));
	memset(zero, 0, sizeof(zero));
	assert_int_equal(crypto_random(a, sizeof(a)), KG_OK);
	assert_int_equal(crypto_random(b, sizeof(b)), KG_OK);
	/* 2^-256 chance of a false failure. */
	assert_memory_not_equal(a, b, sizeof(a));
	assert_memory_not_equal(a, zero, sizeof(a));

	assert_int_equal(crypto_random(a, 0), KG_OK);
	assert_int_equal(crypto_random(NULL, 0), KG_OK);

	big = calloc(1, 1 << 20);
	assert_non_null(big);
	assert_int_equal(crypto_random(big, 1 << 20), KG_OK);
	for (i = 0; i < 1 << 20; i++)
		nonzero += big[i] != 0;
	free(big);
	/* Expected 1044480; far outside any plausible deviation otherwise. */
	assert_true(nonzero > 1040000);
}

static void
test_wipe(void **state)
{
	unsigned char buf[64], zero[64];

	(void)state;
	memset(buf, 0xa5, sizeof(buf));
	memset(zero, 0, sizeof(zero));
	crypto_wipe(buf, sizeof(buf));
	assert_memory_equal(buf, zero, sizeof(buf));

	memset(buf, 0xa5, sizeof(buf));
	crypto_wipe(buf + 8, 16);
	assert_int_equal(buf[7], 0xa5);
	assert_memory_equal(buf + 8, zero, 16);
	assert_int_equal(buf[24], 0xa5);

	crypto_wipe(NULL, 0);
	crypto_wipe(NULL, 10);
}

static void
test_free_secret(void **state)
{
	char *s;

	(void)state;
	crypto_free_secret(NULL);
	s = strdup("hunter2");
	assert_non_null(s);
	crypto_free_secret(s);      /* valgrind/ASan check the free */
	s = strdup("");
	assert_non_null(s);
	crypto_free_secret(s);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sha256_vectors),
		cmocka_unit_test(test_sha256_million_a),
		cmocka_unit_test(test_sha256_binary),
		cmocka_unit_test(test_equal),
		cmocka_unit_test(test_random),
		cmocka_unit_test(test_wipe),
		cmocka_unit_test(test_free_secret),
	};

	return cmocka_run_group_tests_name("crypto", tests, NULL, NULL);
}
