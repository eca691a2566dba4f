/*
 * fuzz_password: NFKC normalisation and the password policy.
 *
 * Input layout: byte 0 is the length L of a username that follows (0xff:
 * no username); the rest is the password, raw bytes. password_init runs once
 * with the smallest Argon2 parameters and a tiny common-password list; the
 * loop never hashes.
 *
 * Invariants:
 *  - password_normalize accepts exactly the inputs of at most
 *    PASSWORD_MAX_BYTES that are valid UTF-8 without NUL; what it returns
 *    is valid UTF-8, NUL-terminated, without an inner NUL, and normalising
 *    it again changes nothing (NFKC is idempotent); a refusal hands back
 *    NULL and 0;
 *  - password_check_policy gives the reason a re-implementation of the
 *    documented rules gives, in the same order (too_short, too_long,
 *    contains_username, too_common), for the normalised password and also
 *    for the raw bytes when they are valid UTF-8; where those rules accept,
 *    it says too_guessable exactly when strength_guesses_log10 (zxcvbn,
 *    not re-implemented here) puts the password, with "keygate" and the
 *    username as words, under 10^MIN_GUESSES_LOG10; and it gives the same
 *    answer when asked again;
 *  - password_needs_rehash says 0 only for a well-formed PHC string with
 *    the current parameters.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <unistr.h>

#include "crypto.h"
#include "fuzz.h"
#include "password.h"
#include "strength.h"

#define MIN_LENGTH 10
#define MIN_GUESSES_LOG10 8

/* The common list as written to the file; loaded lowercased by password.c. */
static const char *const common[] = {
	"password1234", "qwertyuiop", "Correct Horse", "ÄÖÜäöüß1234",
	"1234567890", "letmeinplease", "iloveyou123", "zzzzzzzzzz",
};
#define NCOMMON (sizeof(common) / sizeof(common[0]))

/* The current parameters, as password_needs_rehash should read them. */
#define CUR_V 19
#define CUR_M 8
#define CUR_T 1
#define CUR_P 1

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char path[] = "/tmp/fuzz_password.XXXXXX";
	struct password_params p = {
		.memory_kib = CUR_M, .iterations = CUR_T, .parallelism = CUR_P,
		.min_length = MIN_LENGTH, .common_path = path,
		.min_guesses_log10 = MIN_GUESSES_LOG10,
	};
	FILE *fp;
	size_t i;
	int fd;

	fd = mkstemp(path);
	FUZZ_CHECK(fd >= 0);
	fp = fdopen(fd, "w");
	FUZZ_CHECK(fp != NULL);
	fputs("#!comment: not an entry\n\n   \n", fp);
	for (i = 0; i < NCOMMON; i++)
		fprintf(fp, "%s%s", common[i], i % 2 ? "\r\n" : "\n");
	FUZZ_CHECK(fclose(fp) == 0);
	FUZZ_CHECK(password_init(&p) == KG_OK);
	unlink(path);
	return 0;
}

static int
ascii_eq_ci(const char *a, size_t alen, const char *b)
{
	size_t i;

	if (alen != strlen(b))
		return 0;
	for (i = 0; i < alen; i++)
		if (tolower((unsigned char)a[i]) != tolower((unsigned char)b[i]))
			return 0;
	return 1;
}

static int
contains_ci(const char *hay, size_t haylen, const char *needle, size_t nlen)
{
	size_t i;

	if (nlen == 0 || nlen > haylen)
		return 0;
	for (i = 0; i + nlen <= haylen; i++)
		if (strncasecmp(hay + i, needle, nlen) == 0)
			return 1;
	return 0;
}

/* The rules of password.h, written out again. pw has no NUL in len bytes. */
static const char *
ref_policy(const char *pw, size_t len, const char *username)
{
	size_t chars = u8_mbsnlen((const uint8_t *)pw, len), i;

	if (chars < MIN_LENGTH)
		return "too_short";
	if (chars > PASSWORD_MAX_CHARS)
		return "too_long";
	if (username != NULL && u8_mbsnlen((const uint8_t *)username, strlen(username)) >= 3 &&
	    contains_ci(pw, len, username, strlen(username)))
		return "contains_username";
	for (i = 0; i < NCOMMON; i++)
		if (ascii_eq_ci(pw, len, common[i]))
			return "too_common";
	return NULL;
}

/* Decimal at *sp equal to want (leading zeros allowed, as argon2 does). */
static int
ref_num(const char **sp, const char *lit, unsigned long want)
{
	const char *s = *sp;
	unsigned long long v = 0;

	if (strncmp(s, lit, strlen(lit)) != 0)
		return 0;
	s += strlen(lit);
	if (!isdigit((unsigned char)*s))
		return 0;
	for (; isdigit((unsigned char)*s); s++)
		if ((v = v * 10 + (unsigned long long)(*s - '0')) > 0xffffffffULL)
			return 0;
	*sp = s;
	return v == want;
}

/* 1 when s is "$argon2id$v=19$m=8,t=1,p=1$salt$hash" (both non-empty, no '$'). */
static int
ref_current_phc(const char *s)
{
	const char *salt, *hash;

	if (!ref_num(&s, "$argon2id$v=", CUR_V) || !ref_num(&s, "$m=", CUR_M) ||
	    !ref_num(&s, ",t=", CUR_T) || !ref_num(&s, ",p=", CUR_P) || *s != '$')
		return 0;
	salt = s + 1;
	hash = strchr(salt, '$');
	return hash != NULL && hash > salt && hash[1] != '\0' && strchr(hash + 1, '$') == NULL;
}

static int
same_reason(const char *a, const char *b)
{
	return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

/* What the estimate says where the other rules accept. */
static const char *
ref_estimate(const char *pw, size_t len, const char *username)
{
	const char *words[] = { "keygate", username, NULL };
	double g;

	FUZZ_CHECK(strength_guesses_log10(pw, len, words, &g) == KG_OK);
	return g < MIN_GUESSES_LOG10 ? "too_guessable" : NULL;
}

static void
check_policy(const char *pw, size_t len, const char *username)
{
	const char *got = password_check_policy(pw, len, username);
	const char *want = ref_policy(pw, len, username);

	FUZZ_CHECK(same_reason(got, password_check_policy(pw, len, username)));
	if (want == NULL)
		want = ref_estimate(pw, len, username);

	if (!same_reason(got, want)) {
		fprintf(stderr, "policy: got %s, want %s\n", got ? got : "(accept)",
		    want ? want : "(accept)");
		FUZZ_CHECK(!"password_check_policy follows its rules");
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *username = NULL, *norm = NULL, *again = NULL, *s;
	size_t ulen, len, normlen = 7, againlen = 0;
	const char *pw;
	enum kg_err err;
	int acceptable;

	if (size < 1)
		return 0;
	ulen = data[0];
	if (ulen != 0xff) {
		if (ulen > size - 1)
			ulen = size - 1;
		username = fuzz_strndup(data + 1, ulen);
	} else
		ulen = 0;
	pw = (const char *)data + 1 + ulen;
	len = size - 1 - ulen;

	acceptable = len <= PASSWORD_MAX_BYTES && memchr(pw, '\0', len) == NULL &&
	    u8_check((const uint8_t *)pw, len) == NULL;
	norm = (char *)&norm;
	err = password_normalize(pw, len, &norm, &normlen);
	FUZZ_CHECK(err == KG_OK || err == KG_EINPUT);
	FUZZ_CHECK((err == KG_OK) == acceptable);
	if (err != KG_OK) {
		FUZZ_CHECK(norm == NULL && normlen == 0);
	} else {
		FUZZ_CHECK(norm != NULL);
		FUZZ_CHECK(norm[normlen] == '\0' && strlen(norm) == normlen);
		FUZZ_CHECK(u8_check((const uint8_t *)norm, normlen) == NULL);
		/* NFKC(NFKC(x)) == NFKC(x) */
		FUZZ_CHECK(password_normalize(norm, normlen, &again, &againlen) == KG_OK ||
		    normlen > PASSWORD_MAX_BYTES);
		if (again != NULL) {
			FUZZ_CHECK(againlen == normlen && memcmp(again, norm, normlen) == 0);
			crypto_free_secret(again);
		}
		check_policy(norm, normlen, username);
		check_policy(pw, len, username);
		crypto_free_secret(norm);
	}

	/* The stored-hash parser: 0 exactly for our parameters. */
	s = fuzz_strndup((const uint8_t *)pw, len);
	FUZZ_CHECK(password_needs_rehash(s) == !ref_current_phc(s));
	free(s);
	free(username);
	return 0;
}
