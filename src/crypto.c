/*
 * crypto: the only file that includes OpenSSL headers, so that a change
 * of crypto library touches one place.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "crypto.h"

enum kg_err
crypto_random(void *buf, size_t len)
{
	unsigned char *p = buf;
	size_t chunk;

	if (len == 0)
		return KG_OK;
	if (buf == NULL)
		return KG_ESYS;

	/* RAND_bytes takes an int; feed it in pieces it can express. */
	while (len > 0) {
		chunk = len > INT_MAX ? INT_MAX : len;
		if (RAND_bytes(p, (int)chunk) != 1)
			return KG_ESYS;
		p += chunk;
		len -= chunk;
	}
	return KG_OK;
}

void
crypto_sha256(const void *data, size_t len, unsigned char out[CRYPTO_SHA256_LEN])
{
	/*
	 * Fetched and allocated once per process: every token check digests,
	 * and EVP_Digest() with EVP_sha256() looks the algorithm up and
	 * allocates a context on every call (a few per cent of a cached check).
	 */
	static EVP_MD *md;
	static EVP_MD_CTX *ctx;
	unsigned int outlen = 0;

	if (md == NULL)
		md = EVP_MD_fetch(NULL, "SHA256", NULL);
	if (ctx == NULL)
		ctx = EVP_MD_CTX_new();
	/*
	 * The interface cannot report failure, and a made-up digest (say,
	 * all zeros) would make every token hash alike: better to stop.
	 * These only fail when libcrypto itself is unusable (no default
	 * provider, no memory), which no request can recover from.
	 */
	if (md == NULL || ctx == NULL ||
	    EVP_DigestInit_ex2(ctx, md, NULL) != 1 ||
	    EVP_DigestUpdate(ctx, data, len) != 1 ||
	    EVP_DigestFinal_ex(ctx, out, &outlen) != 1 || outlen != CRYPTO_SHA256_LEN)
		abort();
}

int
crypto_equal(const void *a, const void *b, size_t len)
{
	if (len == 0)
		return 1;
	return CRYPTO_memcmp(a, b, len) == 0;
}

void
crypto_wipe(void *p, size_t len)
{
	if (p == NULL || len == 0)
		return;
	/* glibc's vectorised memset, behind a barrier the compiler keeps. */
	explicit_bzero(p, len);
}

void
crypto_free_secret(char *s)
{
	if (s == NULL)
		return;
	crypto_wipe(s, strlen(s) + 1);
	free(s);
}
