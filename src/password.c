/*
 * password: NFKC normalisation, the password policy and Argon2id hashing.
 * The only includer of argon2.h and of libunistring's headers.
 *
 * Passwords are normalised to NFKC before anything else looks at them,
 * so that the same password typed on different keyboards or input
 * methods (composed or decomposed accents, full-width letters,
 * ligatures) hashes alike.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include <argon2.h>
#include <uninorm.h>
#include <unistr.h>

#include "crypto.h"
#include "hashslot.h"
#include "log.h"
#include "password.h"
#include "strength.h"

#define SALT_LEN 16
#define HASH_LEN 32
#define DUMMY_PW_LEN 32

/*
 * The largest growth of a UTF-8 string under NFKC (Unicode FAQ on
 * normalisation: U+FDFA, 3 bytes, becomes 33). Sizing the output buffer
 * for it lets u8_normalize write straight into memory we wipe.
 */
#define NFKC_UTF8_GROWTH 11

/* A dummy hash of one cost class of the stored hashes. */
struct pw_dummy {
	char hash[PASSWORD_HASH_MAX];
	uint32_t m, t, p;
	long long count;
};

struct pw_state {
	uint32_t memory_kib;
	uint32_t iterations;
	uint32_t parallelism;
	unsigned min_length;
	char **common;              /* lowercased, sorted by strcmp */
	size_t ncommon;
	unsigned min_guesses_log10; /* 0: no estimate */
	char dummy[PASSWORD_HASH_MAX];
	/* Per cost class of the stored hashes (password_dummy_classes); none: dummy. */
	struct pw_dummy classes[PASSWORD_DUMMY_CLASSES];
	size_t nclasses;
	long long total;            /* sum of the classes' counts */
	unsigned char class_key[CRYPTO_SHA256_LEN];
	int ready;
};

static struct pw_state state = { .min_length = PASSWORD_MIN_FLOOR };

/* A password being looked up in the common list (not NUL-terminated). */
struct pw_key {
	const char *s;
	size_t len;
};

/* ASCII-only: other letters were already folded as far as NFKC goes. */
static unsigned char
ascii_lower(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') ? (unsigned char)(c - 'A' + 'a') : c;
}

static void
common_free(char **list, size_t n)
{
	size_t i;

	if (list == NULL)
		return;
	for (i = 0; i < n; i++)
		free(list[i]);
	free(list);
}

static void
state_free(struct pw_state *s)
{
	common_free(s->common, s->ncommon);
	crypto_wipe(s->dummy, sizeof(s->dummy));
	crypto_wipe(s->class_key, sizeof(s->class_key));
	memset(s, 0, sizeof(*s));
	s->min_length = PASSWORD_MIN_FLOOR;
}

static int
strptr_cmp(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Same order as strptr_cmp, lowercasing the key on the fly (no copy of it). */
static int
common_cmp(const void *k, const void *e)
{
	const struct pw_key *key = k;
	const unsigned char *ent = *(const unsigned char *const *)e;
	unsigned char c;
	size_t i;

	for (i = 0; i < key->len; i++) {
		c = ascii_lower((unsigned char)key->s[i]);
		if (ent[i] == '\0')
			return 1;
		if (c != ent[i])
			return c < ent[i] ? -1 : 1;
	}
	return ent[i] == '\0' ? 0 : -1;
}

/* Blank lines, "#!comment:" lines and other "#" lines are not entries. */
static int
line_ignored(const char *line, size_t len)
{
	size_t i;

	if (len > 0 && line[0] == '#')
		return 1;
	for (i = 0; i < len; i++)
		if (line[i] != ' ' && line[i] != '\t')
			return 0;
	return 1;
}

/*
 * Read the common-password list at path into a fresh sorted array of
 * lowercased strings (*listp, *np); free with common_free.
 */
static enum kg_err
common_load(const char *path, char ***listp, size_t *np)
{
	FILE *fp = NULL;
	char *line = NULL, *entry;
	char **list = NULL, **grown;
	size_t linecap = 0, n = 0, cap = 0, len, i;
	ssize_t got;
	enum kg_err err = KG_ECONFIG;

	*listp = NULL;
	*np = 0;
	if ((fp = fopen(path, "r")) == NULL)
		goto out;
	errno = 0;
	while ((got = getline(&line, &linecap, fp)) != -1) {
		len = (size_t)got;
		while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
			len--;
		/* An entry with a NUL could never match a normalised password. */
		if (line_ignored(line, len) || memchr(line, '\0', len) != NULL)
			continue;
		if (n == cap) {
			cap = cap == 0 ? 1024 : cap * 2;
			if (cap > SIZE_MAX / sizeof(*list)) {
				err = KG_ENOMEM;
				goto out;
			}
			if ((grown = realloc(list, cap * sizeof(*list))) == NULL) {
				err = KG_ENOMEM;
				goto out;
			}
			list = grown;
		}
		if ((entry = malloc(len + 1)) == NULL) {
			err = KG_ENOMEM;
			goto out;
		}
		for (i = 0; i < len; i++)
			entry[i] = (char)ascii_lower((unsigned char)line[i]);
		entry[len] = '\0';
		list[n++] = entry;
	}
	/* getline also returns -1 on errors, which need not set ferror. */
	if (ferror(fp) || !feof(fp)) {
		err = errno == ENOMEM ? KG_ENOMEM : KG_ECONFIG;
		goto out;
	}
	if (n > 0)
		qsort(list, n, sizeof(*list), strptr_cmp);
	*listp = list;
	*np = n;
	list = NULL;
	n = 0;
	err = KG_OK;
out:
	common_free(list, n);
	free(line);
	if (fp != NULL)
		fclose(fp);
	return err;
}

enum kg_err
password_init(const struct password_params *p)
{
	struct pw_state next;
	unsigned char rnd[DUMMY_PW_LEN], salt[SALT_LEN];
	enum kg_err err = KG_ECONFIG;
	int rc;

	/* Build the new state aside: a failed reload keeps the old one. */
	memset(&next, 0, sizeof(next));
	if (p == NULL)
		goto out;
	/* A minimum above the maximum would refuse every password. */
	if (p->min_length < PASSWORD_MIN_FLOOR || p->min_length > PASSWORD_MAX_CHARS)
		goto out;
	if (p->min_guesses_log10 > PASSWORD_GUESSES_LOG10_MAX)
		goto out;
	/* What libargon2 would refuse, refused here as configuration errors. */
	if (p->iterations < ARGON2_MIN_TIME || p->parallelism < ARGON2_MIN_LANES ||
	    p->parallelism > ARGON2_MAX_LANES || p->memory_kib < ARGON2_MIN_MEMORY ||
	    p->memory_kib < 8 * p->parallelism)
		goto out;
	next.memory_kib = p->memory_kib;
	next.iterations = p->iterations;
	next.parallelism = p->parallelism;
	next.min_length = p->min_length;
	next.min_guesses_log10 = p->min_guesses_log10;

	if (p->common_path != NULL && p->common_path[0] != '\0' &&
	    (err = common_load(p->common_path, &next.common, &next.ncommon)) != KG_OK)
		goto out;

	/*
	 * The dummy hash has the current parameters, so verifying against it
	 * costs what verifying against a real user's hash costs; its
	 * password is random and forgotten, so nothing ever matches it.
	 */
	if ((err = crypto_random(rnd, sizeof(rnd))) != KG_OK ||
	    (err = crypto_random(salt, sizeof(salt))) != KG_OK)
		goto out;
	rc = argon2id_hash_encoded(next.iterations, next.memory_kib, next.parallelism,
	    rnd, sizeof(rnd), salt, sizeof(salt), HASH_LEN, next.dummy, sizeof(next.dummy));
	if (rc != ARGON2_OK) {
		err = rc == ARGON2_MEMORY_ALLOCATION_ERROR ? KG_ENOMEM : KG_ESYS;
		goto out;
	}
	next.ready = 1;

	state_free(&state);
	state = next;
	memset(&next, 0, sizeof(next));
	err = KG_OK;
out:
	crypto_wipe(rnd, sizeof(rnd));
	state_free(&next);
	return err;
}

void
password_shutdown(void)
{
	state_free(&state);
}

enum kg_err
password_normalize(const char *in, size_t len, char **out, size_t *outlen)
{
	uint8_t *buf = NULL, *res, *extra = NULL;
	size_t cap = 0, nlen = 0;
	enum kg_err err = KG_EINPUT;

	if (out == NULL || outlen == NULL)
		return KG_EINPUT;
	*out = NULL;
	*outlen = 0;

	/* Cheap refusals first, before any allocation or Unicode work. */
	if (len > PASSWORD_MAX_BYTES || (in == NULL && len > 0))
		goto out;
	if (len > 0 && memchr(in, '\0', len) != NULL)
		goto out;
	if (len > 0 && u8_check((const uint8_t *)in, len) != NULL)
		goto out;

	cap = len * NFKC_UTF8_GROWTH + 1;
	if ((buf = malloc(cap)) == NULL) {
		err = KG_ENOMEM;
		goto out;
	}
	/* One byte kept back for the NUL. */
	nlen = cap - 1;
	res = u8_normalize(UNINORM_NFKC, (const uint8_t *)(len > 0 ? in : ""), len,
	    buf, &nlen);
	if (res == NULL) {
		err = errno == ENOMEM ? KG_ENOMEM : KG_EINPUT;
		goto out;
	}
	if (res != buf) {
		/*
		 * Grew beyond the documented maximum (a newer Unicode?), so
		 * libunistring allocated the result itself. Move it into a
		 * buffer with room for the NUL; out: wipes both old ones.
		 */
		extra = res;
		crypto_wipe(buf, cap);
		free(buf);
		cap = nlen + 1;
		if ((buf = malloc(cap)) == NULL) {
			err = KG_ENOMEM;
			goto out;
		}
		memcpy(buf, extra, nlen);
	}
	buf[nlen] = '\0';
	*out = (char *)buf;
	*outlen = nlen;
	buf = NULL;
	err = KG_OK;
out:
	if (extra != NULL) {
		crypto_wipe(extra, nlen);
		free(extra);
	}
	if (buf != NULL) {
		crypto_wipe(buf, cap);
		free(buf);
	}
	return err;
}

/* 1 when needle (nlen bytes) occurs in hay (haylen bytes), ignoring ASCII case. */
static int
contains_ci(const char *hay, size_t haylen, const char *needle, size_t nlen)
{
	size_t i, j;

	if (nlen == 0 || nlen > haylen)
		return 0;
	for (i = 0; i + nlen <= haylen; i++) {
		for (j = 0; j < nlen; j++)
			if (ascii_lower((unsigned char)hay[i + j]) !=
			    ascii_lower((unsigned char)needle[j]))
				break;
		if (j == nlen)
			return 1;
	}
	return 0;
}

/* Every password that passes too_long fits what the estimator takes. */
_Static_assert(PASSWORD_MAX_CHARS * 4 <= STRENGTH_MAX_BYTES,
    "strength_guesses_log10 takes every password of PASSWORD_MAX_CHARS");

/*
 * 1 when zxcvbn estimates fewer guesses than the floor. The service name
 * goes first: an empty or NULL username ends the word list after it.
 * An estimate that cannot be made refuses the password, never admits it.
 */
static int
too_guessable(const char *pw, size_t len, const char *username)
{
	const char *words[] = { PASSWORD_SERVICE_WORD, username, NULL };
	double guesses_log10;

	if (state.min_guesses_log10 == 0)
		return 0;
	if (strength_guesses_log10(pw, len, words, &guesses_log10) != KG_OK)
		return 1;
	return guesses_log10 < (double)state.min_guesses_log10;
}

const char *
password_check_policy(const char *pw, size_t len, const char *username)
{
	struct pw_key key;
	size_t chars, ulen;

	if (pw == NULL)
		len = 0;
	chars = len > 0 ? u8_mbsnlen((const uint8_t *)pw, len) : 0;
	if (chars < state.min_length)
		return "too_short";
	if (chars > PASSWORD_MAX_CHARS)
		return "too_long";
	if (username != NULL) {
		ulen = strlen(username);
		/* Below three characters a match says nothing about the password. */
		if (u8_mbsnlen((const uint8_t *)username, ulen) >= 3 &&
		    contains_ci(pw, len, username, ulen))
			return "contains_username";
	}
	if (state.ncommon > 0) {
		key.s = pw;
		key.len = len;
		if (bsearch(&key, state.common, state.ncommon, sizeof(*state.common),
		    common_cmp) != NULL)
			return "too_common";
	}
	if (too_guessable(pw, len, username))
		return "too_guessable";
	return NULL;
}

enum kg_err
password_hash(const char *pw, size_t len, char *out, size_t outsz)
{
	unsigned char salt[SALT_LEN];
	enum kg_err err = KG_ESYS;
	int rc;

	if (out == NULL || outsz == 0)
		return KG_ESYS;
	out[0] = '\0';
	if (!state.ready)
		goto out;
	if (pw == NULL && len > 0) {
		err = KG_EINPUT;
		goto out;
	}
	if (outsz < argon2_encodedlen(state.iterations, state.memory_kib,
	    state.parallelism, SALT_LEN, HASH_LEN, Argon2_id))
		goto out;
	if ((err = crypto_random(salt, sizeof(salt))) != KG_OK)
		goto out;
	hashslot_take();
	rc = argon2id_hash_encoded(state.iterations, state.memory_kib, state.parallelism,
	    pw, len, salt, sizeof(salt), HASH_LEN, out, outsz);
	hashslot_give();
	if (rc != ARGON2_OK) {
		err = rc == ARGON2_MEMORY_ALLOCATION_ERROR ? KG_ENOMEM : KG_ESYS;
		goto out;
	}
	err = KG_OK;
out:
	if (err != KG_OK)
		crypto_wipe(out, outsz);
	return err;
}

enum kg_err
password_verify(const char *hash, const char *pw, size_t len)
{
	int rc;

	if (hash == NULL || (pw == NULL && len > 0))
		return KG_EAUTH;
	hashslot_take();
	rc = argon2id_verify(hash, pw, len);
	hashslot_give();
	if (rc == ARGON2_OK)
		return KG_OK;
	/* Our failure, not the caller's: do not call it a wrong password. */
	if (rc == ARGON2_MEMORY_ALLOCATION_ERROR)
		return KG_ENOMEM;
	return KG_EAUTH;
}

/* Parse a decimal uint32_t at *sp and move *sp past it; -1 when there is none. */
static int
parse_u32(const char **sp, uint32_t *out)
{
	const char *s = *sp;
	uint64_t v = 0;

	if (*s < '0' || *s > '9')
		return -1;
	for (; *s >= '0' && *s <= '9'; s++) {
		v = v * 10 + (uint64_t)(*s - '0');
		if (v > UINT32_MAX)
			return -1;
	}
	*out = (uint32_t)v;
	*sp = s;
	return 0;
}

/* Move *sp past the literal lit; -1 when it is not there. */
static int
skip_literal(const char **sp, const char *lit)
{
	size_t n = strlen(lit);

	/* strncmp stops at the NUL of *sp, so a short hash is not over-read. */
	if (strncmp(*sp, lit, n) != 0)
		return -1;
	*sp += n;
	return 0;
}

/* Move *sp past "$argon2id$v=V$m=M,t=T,p=P$", reading the numbers; -1 when it is not there. */
static int
phc_params(const char **sp, uint32_t *v, uint32_t *m, uint32_t *t, uint32_t *p)
{
	if (skip_literal(sp, "$argon2id$v=") != 0 || parse_u32(sp, v) != 0 ||
	    skip_literal(sp, "$m=") != 0 || parse_u32(sp, m) != 0 ||
	    skip_literal(sp, ",t=") != 0 || parse_u32(sp, t) != 0 ||
	    skip_literal(sp, ",p=") != 0 || parse_u32(sp, p) != 0 ||
	    skip_literal(sp, "$") != 0)
		return -1;
	return 0;
}

int
password_needs_rehash(const char *hash)
{
	const char *s = hash, *dollar;
	uint32_t v, m, t, p;

	if (hash == NULL || phc_params(&s, &v, &m, &t, &p) != 0)
		return 1;
	/* Then salt "$" hash, both non-empty. */
	dollar = strchr(s, '$');
	if (dollar == NULL || dollar == s || dollar[1] == '\0' ||
	    strchr(dollar + 1, '$') != NULL)
		return 1;
	if (!state.ready || v != ARGON2_VERSION_NUMBER)
		return 1;
	return m != state.memory_kib || t != state.iterations ||
	    p != state.parallelism;
}

/* What libargon2 and keygate's configuration accept (conf.c's bounds). */
static int
params_allowed(uint32_t m, uint32_t t, uint32_t p)
{
	return t >= ARGON2_MIN_TIME && t <= 64 && p >= ARGON2_MIN_LANES && p <= 64 &&
	    m >= ARGON2_MIN_MEMORY && m >= 8 * p && m <= 4194304;
}

/* A hash of a random, forgotten password with parameters m, t, p into out. */
static enum kg_err
dummy_make(uint32_t m, uint32_t t, uint32_t p, char *out, size_t outsz)
{
	unsigned char rnd[DUMMY_PW_LEN], salt[SALT_LEN];
	enum kg_err err;
	int rc;

	if ((err = crypto_random(rnd, sizeof(rnd))) != KG_OK ||
	    (err = crypto_random(salt, sizeof(salt))) != KG_OK)
		goto out;
	/* Start-up work, like password_init's dummy: not counted in the request slots. */
	rc = argon2id_hash_encoded(t, m, p, rnd, sizeof(rnd), salt, sizeof(salt), HASH_LEN,
	    out, outsz);
	if (rc != ARGON2_OK)
		err = rc == ARGON2_MEMORY_ALLOCATION_ERROR ? KG_ENOMEM : KG_ESYS;
out:
	crypto_wipe(rnd, sizeof(rnd));
	return err;
}

enum kg_err
password_dummy_classes(const struct password_class *c, size_t n, const void *key,
    size_t key_len, size_t *made)
{
	struct pw_dummy next[PASSWORD_DUMMY_CLASSES];
	size_t i, k = 0;
	long long total = 0;
	enum kg_err err = KG_OK;

	*made = 0;
	if (!state.ready)
		return KG_ESYS;
	for (i = 0; i < n && k < PASSWORD_DUMMY_CLASSES; i++) {
		const char *s = c[i].sample;
		uint32_t v, m, t, p;

		if (s == NULL || c[i].count <= 0 || c[i].count > LLONG_MAX / 4 ||
		    phc_params(&s, &v, &m, &t, &p) != 0 || v != ARGON2_VERSION_NUMBER ||
		    !params_allowed(m, t, p))
			continue;
		if ((err = dummy_make(m, t, p, next[k].hash, sizeof(next[k].hash))) != KG_OK)
			goto out;
		next[k].m = m;
		next[k].t = t;
		next[k].p = p;
		next[k].count = c[i].count;
		total += c[i].count;
		k++;
	}
	memcpy(state.classes, next, sizeof(next));
	state.nclasses = k;
	state.total = total;
	crypto_sha256(key != NULL ? key : "", key != NULL ? key_len : 0, state.class_key);
	*made = k;
out:
	crypto_wipe(next, sizeof(next));
	return err;
}

/*
 * The class for name: a keyed digest of it, taken modulo the number of
 * stored hashes and looked up among the classes' counts, so that names
 * spread over the classes as the accounts do; NULL when there are none.
 */
static const struct pw_dummy *
dummy_class(const char *name)
{
	unsigned char buf[2 * CRYPTO_SHA256_LEN], d[CRYPTO_SHA256_LEN];
	uint64_t x = 0;
	long long r;
	size_t i;

	if (state.nclasses == 0 || state.total <= 0)
		return NULL;
	if (name == NULL)
		name = "";
	memcpy(buf, state.class_key, CRYPTO_SHA256_LEN);
	crypto_sha256(name, strlen(name), buf + CRYPTO_SHA256_LEN);
	crypto_sha256(buf, sizeof(buf), d);
	for (i = 0; i < sizeof(x); i++)
		x = x << 8 | d[i];
	r = (long long)(x % (uint64_t)state.total);
	for (i = 0; i + 1 < state.nclasses && r >= state.classes[i].count; i++)
		r -= state.classes[i].count;
	return &state.classes[i];
}

enum kg_err
password_verify_dummy(const char *name, const char *pw, size_t len)
{
	const struct pw_dummy *cl;
	enum kg_err err;

	if (state.ready) {
		char params[64];

		cl = dummy_class(name);
		/* Which class: docs/OPERATIONS.md, checking the cost classes. */
		password_dummy_params(name, params, sizeof(params));
		log_debug("unknown user: dummy verify with %s", params);
		/* The outcome is irrelevant; only the time spent matters. */
		err = password_verify(cl != NULL ? cl->hash : state.dummy, pw, len);
		(void)err;
	}
	return KG_EAUTH;
}

void
password_dummy_params(const char *name, char *out, size_t outsz)
{
	const struct pw_dummy *cl = dummy_class(name);
	int n;

	if (outsz == 0)
		return;
	n = cl != NULL ? snprintf(out, outsz, "m=%u,t=%u,p=%u", (unsigned)cl->m, (unsigned)cl->t,
	    (unsigned)cl->p) : snprintf(out, outsz, "m=%u,t=%u,p=%u", (unsigned)state.memory_kib,
	    (unsigned)state.iterations, (unsigned)state.parallelism);
	if (n < 0 || (size_t)n >= outsz)
		out[0] = '\0';
}
