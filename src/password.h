/*
 * password: NFKC normalisation, the password policy and Argon2id hashing.
 * The only includer of argon2.h and of libunistring's headers.
 */
#ifndef PASSWORD_H
#define PASSWORD_H

#include <stddef.h>
#include <stdint.h>

#include "kg.h"

#define PASSWORD_MAX_BYTES 1024   /* refused before any other work */
#define PASSWORD_MAX_CHARS 128    /* code points after NFKC */
#define PASSWORD_MIN_FLOOR 8      /* password_min_length is never below this */
#define PASSWORD_HASH_MAX 256     /* room for an encoded PHC string */
#define PASSWORD_GUESSES_LOG10_MAX 40 /* password_min_guesses_log10 is never above this */
/* Counts as a dictionary word in every password, like the username. */
#define PASSWORD_SERVICE_WORD "keygate"

struct password_params {
	uint32_t memory_kib;     /* argon2 m */
	uint32_t iterations;     /* argon2 t */
	uint32_t parallelism;    /* argon2 p */
	unsigned min_length;     /* code points, >= PASSWORD_MIN_FLOOR */
	const char *common_path; /* list of common passwords, one per line; NULL or "" = none */
	unsigned min_guesses_log10; /* estimated guesses floor, 10^n; 0 = no estimate */
};

/*
 * Set parameters, load the common-password list and make the dummy hash
 * used to equalise timing for unknown users. Call once per process (again
 * on reload). KG_ECONFIG when the list cannot be read, KG_ESYS on hashing
 * failure.
 */
enum kg_err password_init(const struct password_params *p) KG_MUSTCHECK;

/* Free what password_init loaded. */
void password_shutdown(void);

/*
 * Normalise in (len bytes) to NFKC into a fresh NUL-terminated buffer *out
 * (caller frees with crypto_free_secret). KG_EINPUT when in is over
 * PASSWORD_MAX_BYTES, not valid UTF-8, or contains U+0000.
 */
enum kg_err password_normalize(const char *in, size_t len, char **out, size_t *outlen) KG_MUSTCHECK;

/*
 * Check a normalised password against the policy. Returns NULL when
 * acceptable, else the first of these static reasons that applies:
 * "too_short", "too_long", "contains_username", "too_common" (on the
 * list), "too_guessable" (zxcvbn estimates fewer than
 * 10^min_guesses_log10 guesses, counting the username and
 * PASSWORD_SERVICE_WORD as dictionary words). username may be NULL.
 */
const char *password_check_policy(const char *pw, size_t len, const char *username);

/* Argon2id hash of pw as a PHC string into out (outsz >= PASSWORD_HASH_MAX). */
enum kg_err password_hash(const char *pw, size_t len, char *out, size_t outsz) KG_MUSTCHECK;

/* KG_OK when pw matches hash, KG_EAUTH when not (or hash unparsable). */
enum kg_err password_verify(const char *hash, const char *pw, size_t len) KG_MUSTCHECK;

/*
 * Dummy hashes for unknown usernames, one per cost class: after the Argon2
 * parameters change, accounts that have not logged in since keep hashes of
 * the old cost, and a dummy of the new cost alone would tell an unknown name
 * from such a dormant account. A class is given by one stored hash (its
 * sample) and how many stored hashes share its parameters.
 */
#define PASSWORD_DUMMY_CLASSES 4
struct password_class {
	const char *sample;     /* a stored PHC string with the class's parameters */
	long long count;        /* stored hashes with these parameters, > 0 */
};

/*
 * Make one dummy hash per class (the first PASSWORD_DUMMY_CLASSES; a sample
 * that does not parse, or whose parameters are beyond the configuration's
 * limits, is left out) and key the choice among them with key (key_len
 * bytes: a secret every process of every host reads alike). n = 0 goes back
 * to the one dummy of the current parameters. *made = classes kept.
 * KG_ENOMEM/KG_ESYS when hashing fails (the old classes stay).
 */
enum kg_err password_dummy_classes(const struct password_class *c, size_t n,
    const void *key, size_t key_len, size_t *made) KG_MUSTCHECK;

/*
 * Spend the time password_verify spends on a real hash; always KG_EAUTH.
 * name (the username as typed, without case; NULL = none) picks the cost
 * class: the same name always the same class, names spread over the
 * classes like the stored hashes are, so an unknown name costs what the
 * account of some class would.
 */
enum kg_err password_verify_dummy(const char *name, const char *pw, size_t len) KG_MUSTCHECK;

/* "m=M,t=T,p=P" of the dummy password_verify_dummy uses for name, into out. */
void password_dummy_params(const char *name, char *out, size_t outsz);

/* 1 when hash was made with other parameters than the current ones. */
int password_needs_rehash(const char *hash);

#endif
