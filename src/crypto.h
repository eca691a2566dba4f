/*
 * crypto: the only includer of OpenSSL headers. CSPRNG, SHA-256,
 * constant-time comparison and wiping of secrets.
 */
#ifndef CRYPTO_H
#define CRYPTO_H

#include <stddef.h>
#include <stdint.h>

#include "kg.h"

#define CRYPTO_SHA256_LEN 32

/*
 * Fill buf with len bytes from OpenSSL's CSPRNG (RAND_bytes), which seeds
 * itself from the kernel (getrandom). KG_ESYS on failure.
 */
enum kg_err crypto_random(void *buf, size_t len) KG_MUSTCHECK;

/* SHA-256 of data into out. */
void crypto_sha256(const void *data, size_t len, unsigned char out[CRYPTO_SHA256_LEN]);

/* 1 when the len bytes at a and b are equal, 0 otherwise; time depends only on len. */
int crypto_equal(const void *a, const void *b, size_t len);

/* Overwrite len bytes at p with zeros in a way the compiler cannot drop. */
void crypto_wipe(void *p, size_t len);

/* Wipe the NUL-terminated string s (if not NULL) and free it. */
void crypto_free_secret(char *s);

#endif
