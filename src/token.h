/*
 * token: the API token format.
 *
 *   token  = key "." secret
 *   key    = "kg_" VERSION "_" 22 base64url chars   (128 random bits, public)
 *   secret = 43 base64url chars (256 random bits) + 6 base64url chars of the
 *            big-endian CRC32 of everything before them (key "." secret-body)
 *
 * VERSION is one character ('1' today) so that a later format can live next
 * to this one. The checksum lets typos and garbage be refused without a
 * database query; it is not a security measure. The database keeps the key
 * and SHA-256(secret), never the secret.
 */
#ifndef TOKEN_H
#define TOKEN_H

#include "crypto.h"
#include "kg.h"

#define TOKEN_PREFIX "kg_"
#define TOKEN_VERSION '1'
#define TOKEN_KEY_LEN 27     /* "kg_1_" + 22 */
#define TOKEN_SECRET_LEN 49  /* 43 + 6 */
#define TOKEN_LEN (TOKEN_KEY_LEN + 1 + TOKEN_SECRET_LEN)

struct token {
	char key[TOKEN_KEY_LEN + 1];
	char secret[TOKEN_SECRET_LEN + 1];
};

/* Make a fresh random token. KG_ESYS when the CSPRNG fails. */
enum kg_err token_generate(struct token *t) KG_MUSTCHECK;

/* Parse "key.secret". KG_ETOKEN on any format, version or checksum error. */
enum kg_err token_parse(const char *s, struct token *t) KG_MUSTCHECK;

/* Build from separate key and secret (Key:/Secret: headers, JSON body). */
enum kg_err token_from_parts(const char *key, const char *secret, struct token *t) KG_MUSTCHECK;

/* 1 when key has the shape of a key of a known version, else 0. */
int token_key_valid(const char *key);

/* Write "key.secret" into buf (at least TOKEN_LEN + 1 bytes). */
void token_format(const struct token *t, char *buf, size_t bufsz);

/* SHA-256 of the secret: what the database stores. */
void token_digest(const struct token *t, unsigned char out[CRYPTO_SHA256_LEN]);

/* Wipe the secret from memory. */
void token_wipe(struct token *t);

#endif
