/*
 * Unit tests for src/token.c: generation, formatting, parsing, the
 * checksum, and every way a token is refused.
 *
 * Inputs are handed to the parser in heap copies of exactly their size,
 * so that valgrind or ASan catch any read past the terminating NUL.
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
#include "token.h"

/*
 * A token computed independently (Python: base64.urlsafe_b64encode and
 * zlib.crc32): key body = bytes 0x00..0x0f, secret body = bytes 0x80..0x9f,
 * CRC32("kg_1_AAECAwQFBgcICQoLDA0ODw.gIGC...nnp8") = 0x8bb4c076 = "i7TAdg".
 */
#define KNOWN_KEY "kg_1_AAECAwQFBgcICQoLDA0ODw"
#define KNOWN_BODY "gIGCg4SFhoeIiYqLjI2Oj5CRkpOUlZaXmJmam5ydnp8"
#define KNOWN_CHECK "i7TAdg"
#define KNOWN_SECRET KNOWN_BODY KNOWN_CHECK
#define KNOWN_TOKEN KNOWN_KEY "." KNOWN_SECRET
#define KNOWN_DIGEST "d6609f1a8907e816f4875c7137b08b2fe512b7a92c07e773f83ba79e3dec001d"

/* The same for key bytes fb ef be x5, ff and secret bytes fb ff bf x10, fe fe. */
#define VALID2_KEY "kg_1_--------------------_w"
#define VALID2_SECRET "-_-_-_-_-_-_-_-_-_-_-_-_-_-_-_-_-_-_-_-__v4d8xCNw"
#define VALID2_TOKEN VALID2_KEY "." VALID2_SECRET

#define ALPHABET "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

#define NKEYS 10000

static char *
xstrdup(const char *s)
{
	size_t n = strlen(s) + 1;
	char *p = malloc(n);

	assert_non_null(p);
	memcpy(p, s, n);
	return p;
}

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

static int
in_alphabet(char c)
{
	return c != '\0' && strchr(ALPHABET, c) != NULL;
}

/* token_parse on a heap copy of exactly strlen(s) + 1 bytes. */
static enum kg_err
parse_copy(const char *s, struct token *t)
{
	char *copy = xstrdup(s);
	enum kg_err err = token_parse(copy, t);

	free(copy);
	return err;
}

static void
assert_token_zero(const struct token *t)
{
	static const struct token zero;

	assert_memory_equal(t, &zero, sizeof(zero));
}

static void
test_known_token(void **state)
{
	struct token t;
	unsigned char md[CRYPTO_SHA256_LEN];
	char buf[TOKEN_LEN + 1], got[2 * CRYPTO_SHA256_LEN + 1];

	(void)state;
	assert_int_equal(strlen(KNOWN_TOKEN), TOKEN_LEN);
	/* The checksum is zlib's CRC32: a 4-bit table bug would show here. */
	assert_int_equal(parse_copy(KNOWN_TOKEN, &t), KG_OK);
	assert_string_equal(t.key, KNOWN_KEY);
	assert_string_equal(t.secret, KNOWN_SECRET);

	token_format(&t, buf, sizeof(buf));
	assert_string_equal(buf, KNOWN_TOKEN);

	token_digest(&t, md);
	hex(md, sizeof(md), got);
	assert_string_equal(got, KNOWN_DIGEST);
}

static void
test_generate_shape(void **state)
{
	struct token t;
	size_t i;
	int round;

	(void)state;
	for (round = 0; round < 100; round++) {
		assert_int_equal(token_generate(&t), KG_OK);
		assert_int_equal(strlen(t.key), TOKEN_KEY_LEN);
		assert_int_equal(strlen(t.secret), TOKEN_SECRET_LEN);
		assert_memory_equal(t.key, "kg_1_", 5);
		for (i = 5; i < TOKEN_KEY_LEN; i++)
			assert_true(in_alphabet(t.key[i]));
		for (i = 0; i < TOKEN_SECRET_LEN; i++)
			assert_true(in_alphabet(t.secret[i]));
		/* Canonical unpadded base64url: unused low bits are zero. */
		assert_non_null(strchr("AQgw", t.key[TOKEN_KEY_LEN - 1]));
		assert_non_null(strchr("AEIMQUYcgkosw048", t.secret[42]));
		assert_non_null(strchr("AQgw", t.secret[TOKEN_SECRET_LEN - 1]));
		assert_int_equal(token_key_valid(t.key), 1);
		token_wipe(&t);
	}
}

static void
test_roundtrip(void **state)
{
	struct token t, u, v;
	unsigned char d1[CRYPTO_SHA256_LEN], d2[CRYPTO_SHA256_LEN];
	char buf[TOKEN_LEN + 1];
	int round;

	(void)state;
	for (round = 0; round < 200; round++) {
		assert_int_equal(token_generate(&t), KG_OK);
		token_format(&t, buf, sizeof(buf));
		assert_int_equal(strlen(buf), TOKEN_LEN);
		assert_int_equal(buf[TOKEN_KEY_LEN], '.');

		assert_int_equal(parse_copy(buf, &u), KG_OK);
		assert_string_equal(u.key, t.key);
		assert_string_equal(u.secret, t.secret);

		assert_int_equal(token_from_parts(t.key, t.secret, &v), KG_OK);
		assert_memory_equal(&v, &t, sizeof(t));

		token_digest(&t, d1);
		crypto_sha256(t.secret, TOKEN_SECRET_LEN, d2);
		assert_memory_equal(d1, d2, sizeof(d1));
		token_digest(&u, d2);
		assert_memory_equal(d1, d2, sizeof(d1));
	}
	token_wipe(&t);
	token_wipe(&u);
	token_wipe(&v);
}

static int
cmp_key(const void *a, const void *b)
{
	return strcmp(((const struct token *)a)->key, ((const struct token *)b)->key);
}

static int
cmp_secret(const void *a, const void *b)
{
	return strcmp(((const struct token *)a)->secret, ((const struct token *)b)->secret);
}

static void
test_unique(void **state)
{
	struct token *t;
	size_t i;

	(void)state;
	t = calloc(NKEYS, sizeof(*t));
	assert_non_null(t);
	for (i = 0; i < NKEYS; i++)
		assert_int_equal(token_generate(&t[i]), KG_OK);
	qsort(t, NKEYS, sizeof(*t), cmp_key);
	for (i = 1; i < NKEYS; i++)
		assert_string_not_equal(t[i - 1].key, t[i].key);
	qsort(t, NKEYS, sizeof(*t), cmp_secret);
	for (i = 1; i < NKEYS; i++)
		assert_string_not_equal(t[i - 1].secret, t[i].secret);
	crypto_wipe(t, NKEYS * sizeof(*t));
	free(t);
}

/*
 * Each case changes one thing of KNOWN_TOKEN: the byte at pos becomes c,
 * or, when c is 0, the byte at pos is removed (pos == TOKEN_LEN with
 * c != 0 appends c).
 *
 *   0         1         2         3         4         5         6         7
 *   0123456789012345678901234567890123456789012345678901234567890123456789012345
 *   kg_1_AAECAwQFBgcICQoLDA0ODw.gIGCg4SFhoeIiYqLjI2Oj5CRkpOUlZaXmJmam5ydnp8i7TAdg
 */
static const struct {
	const char *name;
	size_t pos;
	char c;
} bad_edits[] = {
	{ "length -1 (last char removed)", TOKEN_LEN - 1, 0 },
	{ "length -1 (key char removed)", 10, 0 },
	{ "length +1 (char appended)", TOKEN_LEN, 'A' },
	{ "dot removed", TOKEN_KEY_LEN, 0 },
	{ "dot replaced by a letter", TOKEN_KEY_LEN, 'A' },
	{ "dot replaced by '_'", TOKEN_KEY_LEN, '_' },
	{ "dot replaced by ':'", TOKEN_KEY_LEN, ':' },
	{ "prefix kh_", 1, 'h' },
	{ "prefix Kg_", 0, 'K' },
	{ "prefix kG_", 1, 'G' },
	{ "prefix kg-", 2, '-' },
	{ "version '2'", 3, '2' },
	{ "version '0'", 3, '0' },
	{ "version 'a'", 3, 'a' },
	{ "version separator '-'", 4, '-' },
	{ "key body '+' (base64, not base64url)", 10, '+' },
	{ "key body '/'", 26, '/' },
	{ "key body '='", 26, '=' },
	{ "key body space", 5, ' ' },
	{ "key body '.'", 20, '.' },
	{ "key body 8-bit byte", 12, '\xc3' },
	{ "secret body '+'", 28, '+' },
	{ "secret body '/'", 40, '/' },
	{ "secret body '.'", 50, '.' },
	{ "secret body '%'", 70, '%' },
	{ "secret body 8-bit byte", 60, '\xe9' },
	{ "checksum '='", 76, '=' },
	{ "checksum '+'", 71, '+' },
	{ "single-char typo in secret body (checksum)", 59, 'b' },
	{ "case flip in secret body (checksum)", 28, 'G' },
	{ "single-char typo in key body (checksum)", 22, 'B' },
	{ "key body last char made non-canonical (checksum)", 26, 'x' },
	{ "typo in checksum", 73, 'B' },
	{ "non-canonical checksum, same 32 bits", 76, 'h' },
};

/* Whole strings that are not one edit away from KNOWN_TOKEN. */
static const struct {
	const char *name;
	const char *token;
} bad_tokens[] = {
	{ "empty", "" },
	{ "secret only", KNOWN_SECRET },
	{ "key only", KNOWN_KEY },
	{ "key and dot", KNOWN_KEY "." },
	{ "two tokens", KNOWN_TOKEN KNOWN_TOKEN },
	{ "key one short, secret one long", "kg_1_AAECAwQFBgcICQoLDA0OD.w" KNOWN_SECRET },
	{ "transposition in secret body (checksum)",
	  KNOWN_KEY ".IgGCg4SFhoeIiYqLjI2Oj5CRkpOUlZaXmJmam5ydnp8" KNOWN_CHECK },
	{ "checksum of another key", KNOWN_KEY "." KNOWN_BODY "AAAAAA" },
	{ "secret of another token", KNOWN_KEY "." VALID2_SECRET },
	/*
	 * The checksum covers the key, so the edits above are also caught by
	 * it. These carry a checksum recomputed over the edited text (Python,
	 * zlib.crc32), so that only the format check itself can refuse them.
	 */
	{ "version '2', valid checksum",
	  "kg_2_AAECAwQFBgcICQoLDA0ODw.gIGCg4SFhoeIiYqLjI2Oj5CRkpOUlZaXmJmam5ydnp8JPJoEA" },
	{ "version '0', valid checksum",
	  "kg_0_AAECAwQFBgcICQoLDA0ODw.gIGCg4SFhoeIiYqLjI2Oj5CRkpOUlZaXmJmam5ydnp87olYVA" },
	{ "prefix kh_, valid checksum",
	  "kh_1_AAECAwQFBgcICQoLDA0ODw.gIGCg4SFhoeIiYqLjI2Oj5CRkpOUlZaXmJmam5ydnp8eFWmvQ" },
	{ "prefix KG_, valid checksum",
	  "KG_1_AAECAwQFBgcICQoLDA0ODw.gIGCg4SFhoeIiYqLjI2Oj5CRkpOUlZaXmJmam5ydnp8OjJKjA" },
	{ "version separator '-', valid checksum",
	  "kg_1-AAECAwQFBgcICQoLDA0ODw.gIGCg4SFhoeIiYqLjI2Oj5CRkpOUlZaXmJmam5ydnp800wYZg" },
	{ "key body '+', valid checksum",
	  "kg_1_AAECA+QFBgcICQoLDA0ODw.gIGCg4SFhoeIiYqLjI2Oj5CRkpOUlZaXmJmam5ydnp857h8Vg" },
	{ "key body '=', valid checksum",
	  "kg_1_AAECAwQFBgcICQoLDA0OD=.gIGCg4SFhoeIiYqLjI2Oj5CRkpOUlZaXmJmam5ydnp87D1KMA" },
	{ "key body space, valid checksum",
	  "kg_1_ AECAwQFBgcICQoLDA0ODw.gIGCg4SFhoeIiYqLjI2Oj5CRkpOUlZaXmJmam5ydnp8hKbyHA" },
	{ "secret body '+', valid checksum",
	  "kg_1_AAECAwQFBgcICQoLDA0ODw.+IGCg4SFhoeIiYqLjI2Oj5CRkpOUlZaXmJmam5ydnp83HBC2w" },
	{ "secret body '/', valid checksum",
	  "kg_1_AAECAwQFBgcICQoLDA0ODw.gIGCg4SFhoeI/YqLjI2Oj5CRkpOUlZaXmJmam5ydnp8ovyKUg" },
	{ "secret body '=', valid checksum",
	  "kg_1_AAECAwQFBgcICQoLDA0ODw.gIGCg4SFhoeIiYqLjI2Oj5CRkpOUlZaXmJmam5ydnp=-940-Q" },
	{ "trailing newline", KNOWN_TOKEN "\n" },
	{ "leading space", " " KNOWN_TOKEN },
	{ "Bearer scheme left on", "Bearer " KNOWN_TOKEN },
};

/* KNOWN_TOKEN with bad_edits[i] applied, into buf (TOKEN_LEN + 2 bytes). */
static void
apply_edit(size_t i, char *buf)
{
	size_t pos = bad_edits[i].pos;

	memcpy(buf, KNOWN_TOKEN, TOKEN_LEN + 1);
	if (bad_edits[i].c == 0) {
		memmove(buf + pos, buf + pos + 1, TOKEN_LEN - pos);
	} else if (pos == TOKEN_LEN) {
		buf[pos] = bad_edits[i].c;
		buf[pos + 1] = '\0';
	} else {
		/* A case that changes nothing would test nothing. */
		assert_int_not_equal(buf[pos], bad_edits[i].c);
		buf[pos] = bad_edits[i].c;
	}
}

static void
test_parse_refusals(void **state)
{
	char buf[TOKEN_LEN + 2];
	struct token t;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad_edits) / sizeof(bad_edits[0]); i++) {
		apply_edit(i, buf);
		memset(&t, 0x5a, sizeof(t));
		if (parse_copy(buf, &t) != KG_ETOKEN)
			fail_msg("token_parse accepted case \"%s\"", bad_edits[i].name);
		/* A refused token leaves nothing behind, in particular no secret. */
		assert_token_zero(&t);
	}
	for (i = 0; i < sizeof(bad_tokens) / sizeof(bad_tokens[0]); i++) {
		memset(&t, 0x5a, sizeof(t));
		if (parse_copy(bad_tokens[i].token, &t) != KG_ETOKEN)
			fail_msg("token_parse accepted case \"%s\"", bad_tokens[i].name);
		assert_token_zero(&t);
	}
	memset(&t, 0x5a, sizeof(t));
	assert_int_equal(token_parse(NULL, &t), KG_ETOKEN);
	assert_token_zero(&t);
	assert_int_equal(token_parse(KNOWN_TOKEN, NULL), KG_ETOKEN);
}

/*
 * CRC32 catches every burst error of up to 32 bits, so every single-byte
 * change anywhere in a token must be refused: in the prefix, version or
 * dots by the format checks, in the bodies by the checksum, in the
 * checksum itself by comparison (also non-canonical last characters).
 */
static void
test_parse_every_substitution(void **state)
{
	char buf[TOKEN_LEN + 1];
	struct token t;
	size_t pos;
	int c, refused = 0;

	(void)state;
	for (pos = 0; pos < TOKEN_LEN; pos++) {
		for (c = 1; c < 256; c++) {
			if (c == (unsigned char)KNOWN_TOKEN[pos])
				continue;
			memcpy(buf, KNOWN_TOKEN, sizeof(buf));
			buf[pos] = (char)c;
			if (parse_copy(buf, &t) != KG_ETOKEN)
				fail_msg("accepted byte 0x%02x at position %zu", c, pos);
			refused++;
		}
	}
	assert_int_equal(refused, TOKEN_LEN * 254);
}

/* Every length from 0 to TOKEN_LEN + 2 other than TOKEN_LEN: refused, never over-read. */
static void
test_parse_every_length(void **state)
{
	char buf[TOKEN_LEN + 3];
	struct token t;
	size_t len;

	(void)state;
	for (len = 0; len <= TOKEN_LEN + 2; len++) {
		if (len == TOKEN_LEN)
			continue;
		memcpy(buf, KNOWN_TOKEN "AA", len);
		buf[len] = '\0';
		assert_int_equal(parse_copy(buf, &t), KG_ETOKEN);
	}
}

static void
test_parse_valid_variants(void **state)
{
	struct token t;

	(void)state;
	/* '-' and '_', the two characters base64url adds, everywhere they fit. */
	assert_int_equal(parse_copy(VALID2_TOKEN, &t), KG_OK);
	assert_string_equal(t.key, VALID2_KEY);
	assert_string_equal(t.secret, VALID2_SECRET);
	assert_int_equal(token_from_parts(VALID2_KEY, VALID2_SECRET, &t), KG_OK);
}

static const struct {
	const char *name;
	const char *key;
	const char *secret;
	enum kg_err err;
} parts_cases[] = {
	{ "valid", KNOWN_KEY, KNOWN_SECRET, KG_OK },
	{ "NULL key", NULL, KNOWN_SECRET, KG_ETOKEN },
	{ "NULL secret", KNOWN_KEY, NULL, KG_ETOKEN },
	{ "both NULL", NULL, NULL, KG_ETOKEN },
	{ "empty key", "", KNOWN_SECRET, KG_ETOKEN },
	{ "empty secret", KNOWN_KEY, "", KG_ETOKEN },
	{ "key one short", "kg_1_AAECAwQFBgcICQoLDA0OD", KNOWN_SECRET, KG_ETOKEN },
	{ "key one long", KNOWN_KEY "A", KNOWN_SECRET, KG_ETOKEN },
	{ "secret one short", KNOWN_KEY, KNOWN_BODY "i7TAd", KG_ETOKEN },
	{ "secret one long", KNOWN_KEY, KNOWN_SECRET "A", KG_ETOKEN },
	{ "key version 2", "kg_2_AAECAwQFBgcICQoLDA0ODw", KNOWN_SECRET, KG_ETOKEN },
	{ "key bad prefix", "xx_1_AAECAwQFBgcICQoLDA0ODw", KNOWN_SECRET, KG_ETOKEN },
	{ "key bad alphabet", "kg_1_AAECAwQFBgcICQoLDA0OD/", KNOWN_SECRET, KG_ETOKEN },
	{ "secret bad alphabet", KNOWN_KEY,
	  "gIGCg4SFhoeIiYqLjI2Oj5CRkpOUlZaXmJmam5ydnp=i7TAdg", KG_ETOKEN },
	{ "secret typo", KNOWN_KEY,
	  "gIGCg4SFhoeIiYqLjI2Oj5CRkpOUlZaXmJmam5ydnp9i7TAdg", KG_ETOKEN },
	{ "secret of another key", "kg_1_AAECAwQFBgcICQoLDA0OEA", KNOWN_SECRET, KG_ETOKEN },
	{ "whole token as key", KNOWN_TOKEN, KNOWN_SECRET, KG_ETOKEN },
	{ "whole token as secret", KNOWN_KEY, KNOWN_TOKEN, KG_ETOKEN },
	{ "dot left on secret", KNOWN_KEY, "." KNOWN_SECRET, KG_ETOKEN },
};

static void
test_from_parts(void **state)
{
	struct token t;
	char *key, *secret;
	enum kg_err err;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(parts_cases) / sizeof(parts_cases[0]); i++) {
		key = parts_cases[i].key ? xstrdup(parts_cases[i].key) : NULL;
		secret = parts_cases[i].secret ? xstrdup(parts_cases[i].secret) : NULL;
		memset(&t, 0x5a, sizeof(t));
		err = token_from_parts(key, secret, &t);
		free(key);
		free(secret);
		if (err != parts_cases[i].err)
			fail_msg("token_from_parts case \"%s\": %d", parts_cases[i].name, err);
		if (err == KG_OK) {
			assert_string_equal(t.key, parts_cases[i].key);
			assert_string_equal(t.secret, parts_cases[i].secret);
		} else {
			assert_token_zero(&t);
		}
	}
	assert_int_equal(token_from_parts(KNOWN_KEY, KNOWN_SECRET, NULL), KG_ETOKEN);
}

static const struct {
	const char *key;
	int valid;
} key_cases[] = {
	{ KNOWN_KEY, 1 },
	/* Shape only: a key without a matching secret is still a valid key. */
	{ "kg_1_AAAAAAAAAAAAAAAAAAAAAA", 1 },
	{ "kg_1_-_-_-_-_-_-_-_-_-_-_-_", 1 },
	{ "kg_1_zzzzzzzzzz9999999999zz", 1 },
	{ NULL, 0 },
	{ "", 0 },
	{ "kg_1_", 0 },
	{ "kg_1_AAECAwQFBgcICQoLDA0OD", 0 },
	{ KNOWN_KEY "A", 0 },
	{ KNOWN_TOKEN, 0 },
	{ "kg_2_AAECAwQFBgcICQoLDA0ODw", 0 },
	{ "kg_a_AAECAwQFBgcICQoLDA0ODw", 0 },
	{ "kg_1-AAECAwQFBgcICQoLDA0ODw", 0 },
	{ "kg-1_AAECAwQFBgcICQoLDA0ODw", 0 },
	{ "Kg_1_AAECAwQFBgcICQoLDA0ODw", 0 },
	{ "xx_1_AAECAwQFBgcICQoLDA0ODw", 0 },
	{ "kg_1_AAECAwQFBgcICQoLDA0OD+", 0 },
	{ "kg_1_AAECAwQFBgcICQoLDA0OD=", 0 },
	{ "kg_1_AAECAwQFBgcICQoLDA0OD.", 0 },
	{ "kg_1_AAECAwQFBgcICQoLDA0OD ", 0 },
	{ "kg_1_AAECAwQFBgcICQoLDA0OD\x80", 0 },
};

static void
test_key_valid(void **state)
{
	char *key;
	size_t i;
	int got;

	(void)state;
	for (i = 0; i < sizeof(key_cases) / sizeof(key_cases[0]); i++) {
		key = key_cases[i].key ? xstrdup(key_cases[i].key) : NULL;
		got = token_key_valid(key);
		free(key);
		if (got != key_cases[i].valid)
			fail_msg("token_key_valid(\"%s\") = %d", key_cases[i].key ?
			    key_cases[i].key : "(null)", got);
	}
}

static void
test_format(void **state)
{
	struct token t;
	char buf[TOKEN_LEN + 8];
	char small[TOKEN_LEN];

	(void)state;
	assert_int_equal(parse_copy(KNOWN_TOKEN, &t), KG_OK);

	memset(buf, 'x', sizeof(buf));
	token_format(&t, buf, TOKEN_LEN + 1);
	assert_string_equal(buf, KNOWN_TOKEN);
	assert_int_equal(buf[TOKEN_LEN + 1], 'x');

	/* Too small: an empty string, never a truncated secret. */
	memset(small, 'x', sizeof(small));
	token_format(&t, small, sizeof(small));
	assert_int_equal(small[0], '\0');
	assert_int_equal(small[1], 'x');

	token_format(&t, small, 0);
	assert_int_equal(small[1], 'x');
	token_format(&t, NULL, 0);
}

static void
test_digest_differs(void **state)
{
	struct token a, b;
	unsigned char da[CRYPTO_SHA256_LEN], db[CRYPTO_SHA256_LEN];

	(void)state;
	assert_int_equal(token_generate(&a), KG_OK);
	assert_int_equal(token_generate(&b), KG_OK);
	token_digest(&a, da);
	token_digest(&b, db);
	assert_memory_not_equal(da, db, sizeof(da));
	token_wipe(&a);
	token_wipe(&b);
}

static void
test_wipe(void **state)
{
	struct token t;
	char zero[TOKEN_SECRET_LEN + 1];

	(void)state;
	memset(zero, 0, sizeof(zero));
	assert_int_equal(token_generate(&t), KG_OK);
	token_wipe(&t);
	assert_memory_equal(t.secret, zero, sizeof(zero));
	/* The key is public and stays for logging. */
	assert_int_equal(token_key_valid(t.key), 1);
	token_wipe(NULL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_known_token),
		cmocka_unit_test(test_generate_shape),
		cmocka_unit_test(test_roundtrip),
		cmocka_unit_test(test_unique),
		cmocka_unit_test(test_parse_refusals),
		cmocka_unit_test(test_parse_every_substitution),
		cmocka_unit_test(test_parse_every_length),
		cmocka_unit_test(test_parse_valid_variants),
		cmocka_unit_test(test_from_parts),
		cmocka_unit_test(test_key_valid),
		cmocka_unit_test(test_format),
		cmocka_unit_test(test_digest_differs),
		cmocka_unit_test(test_wipe),
	};

	return cmocka_run_group_tests_name("token", tests, NULL, NULL);
}
