/*
 * token: generate, encode, parse and checksum API tokens.
 * The format is described in token.h.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <stdint.h>
#include <string.h>

#include "crypto.h"
#include "token.h"

#define KEY_RAW_LEN 16      /* random bytes behind the key body */
#define KEY_BODY_LEN 22     /* base64url of KEY_RAW_LEN bytes, unpadded */
#define SECRET_RAW_LEN 32   /* random bytes behind the secret body */
#define SECRET_BODY_LEN 43  /* base64url of SECRET_RAW_LEN bytes, unpadded */
#define CHECK_LEN 6         /* base64url of a 4-byte CRC32, unpadded */
#define PREFIX_LEN (sizeof(TOKEN_PREFIX) - 1)
#define KEY_HEAD_LEN (PREFIX_LEN + 2)   /* "kg_" VERSION "_" */

_Static_assert(KEY_HEAD_LEN + KEY_BODY_LEN == TOKEN_KEY_LEN, "key length");
_Static_assert(SECRET_BODY_LEN + CHECK_LEN == TOKEN_SECRET_LEN, "secret length");

static const char b64url[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/*
 * CRC32 (IEEE 802.3, reflected polynomial 0xEDB88320), the same value as
 * zlib's crc32(). The 16-entry table (four bits at a time) is small enough
 * to write down; every token check runs 71 bytes through it, so the byte
 * table built from it on first use halves the dependent steps.
 */
static const uint32_t crc_nibble[16] = {
	0x00000000, 0x1db71064, 0x3b6e20c8, 0x26d930ac,
	0x76dc4190, 0x6b6b51f4, 0x4db26158, 0x5005713c,
	0xedb88320, 0xf00f9344, 0xd6d6a3e8, 0xcb61b38c,
	0x9b64c2b0, 0x86d3d2d4, 0xa00ae278, 0xbdbdf21c,
};

static const uint32_t *
crc_table(void)
{
	static uint32_t t[256];
	static int built;
	uint32_t c;
	unsigned b;

	if (!built) {
		for (b = 0; b < 256; b++) {
			c = b;
			c = (c >> 4) ^ crc_nibble[c & 0x0f];
			t[b] = (c >> 4) ^ crc_nibble[c & 0x0f];
		}
		built = 1;
	}
	return t;
}

/* Continue crc (0 to start) over len bytes at buf, like zlib's crc32(). */
static uint32_t
crc32_update(uint32_t crc, const void *buf, size_t len)
{
	const uint32_t *t = crc_table();
	const unsigned char *p = buf;
	size_t i;

	crc = ~crc;
	for (i = 0; i < len; i++)
		crc = (crc >> 8) ^ t[(crc ^ p[i]) & 0xff];
	return ~crc;
}

static int
b64url_char_valid(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	    (c >= '0' && c <= '9') || c == '-' || c == '_';
}

static int
b64url_valid(const char *s, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		if (!b64url_char_valid(s[i]))
			return 0;
	return 1;
}

/*
 * Encode len bytes as unpadded base64url into out, which must have room
 * for (len * 4 + 2) / 3 characters; no NUL is written.
 */
static void
b64url_encode(const unsigned char *in, size_t len, char *out)
{
	uint32_t v;
	size_t i, o = 0;

	for (i = 0; i + 3 <= len; i += 3) {
		v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
		out[o++] = b64url[(v >> 18) & 0x3f];
		out[o++] = b64url[(v >> 12) & 0x3f];
		out[o++] = b64url[(v >> 6) & 0x3f];
		out[o++] = b64url[v & 0x3f];
	}
	if (len - i == 1) {
		v = (uint32_t)in[i] << 16;
		out[o++] = b64url[(v >> 18) & 0x3f];
		out[o++] = b64url[(v >> 12) & 0x3f];
	} else if (len - i == 2) {
		v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
		out[o++] = b64url[(v >> 18) & 0x3f];
		out[o++] = b64url[(v >> 12) & 0x3f];
		out[o++] = b64url[(v >> 6) & 0x3f];
	}
}

/* The CHECK_LEN checksum characters for key "." body. */
static void
checksum_encode(const char *key, const char *body, char out[CHECK_LEN])
{
	unsigned char be[4];
	uint32_t crc;

	crc = crc32_update(0, key, TOKEN_KEY_LEN);
	crc = crc32_update(crc, ".", 1);
	crc = crc32_update(crc, body, SECRET_BODY_LEN);
	be[0] = (unsigned char)(crc >> 24);
	be[1] = (unsigned char)(crc >> 16);
	be[2] = (unsigned char)(crc >> 8);
	be[3] = (unsigned char)crc;
	b64url_encode(be, sizeof(be), out);
}

int
token_key_valid(const char *key)
{
	if (key == NULL)
		return 0;
	/* strnlen: never look further than one byte past a valid key. */
	if (strnlen(key, TOKEN_KEY_LEN + 1) != TOKEN_KEY_LEN)
		return 0;
	if (memcmp(key, TOKEN_PREFIX, PREFIX_LEN) != 0)
		return 0;
	if (key[PREFIX_LEN] != TOKEN_VERSION || key[PREFIX_LEN + 1] != '_')
		return 0;
	/*
	 * The body is checked for its alphabet only: it is an opaque
	 * string that the database compares exactly, so a non-canonical
	 * last character can only fail to match.
	 */
	return b64url_valid(key + KEY_HEAD_LEN, KEY_BODY_LEN);
}

/*
 * The common part of token_parse and token_from_parts: key is
 * TOKEN_KEY_LEN characters (not necessarily NUL-terminated) and secret
 * is NUL-terminated.
 */
static enum kg_err
token_check(const char *key, const char *secret, struct token *t)
{
	char check[CHECK_LEN];
	char keybuf[TOKEN_KEY_LEN + 1];
	enum kg_err err = KG_ETOKEN;

	memcpy(keybuf, key, TOKEN_KEY_LEN);
	keybuf[TOKEN_KEY_LEN] = '\0';
	if (!token_key_valid(keybuf))
		goto out;
	if (strnlen(secret, TOKEN_SECRET_LEN + 1) != TOKEN_SECRET_LEN)
		goto out;
	if (!b64url_valid(secret, TOKEN_SECRET_LEN))
		goto out;

	/*
	 * Re-encode and compare the strings rather than decode, so that a
	 * non-canonical last character (which only carries two bits) is
	 * refused too. A checksum is not a secret; crypto_equal is used
	 * anyway since the bytes around it are.
	 */
	checksum_encode(keybuf, secret, check);
	if (!crypto_equal(check, secret + SECRET_BODY_LEN, CHECK_LEN))
		goto out;

	memcpy(t->key, keybuf, sizeof(t->key));
	memcpy(t->secret, secret, TOKEN_SECRET_LEN);
	t->secret[TOKEN_SECRET_LEN] = '\0';
	err = KG_OK;
out:
	crypto_wipe(check, sizeof(check));
	return err;
}

enum kg_err
token_generate(struct token *t)
{
	unsigned char raw[SECRET_RAW_LEN];
	enum kg_err err = KG_ESYS;

	if (t == NULL)
		return KG_ESYS;
	memset(t, 0, sizeof(*t));

	if ((err = crypto_random(raw, KEY_RAW_LEN)) != KG_OK)
		goto out;
	memcpy(t->key, TOKEN_PREFIX, PREFIX_LEN);
	t->key[PREFIX_LEN] = TOKEN_VERSION;
	t->key[PREFIX_LEN + 1] = '_';
	b64url_encode(raw, KEY_RAW_LEN, t->key + KEY_HEAD_LEN);
	t->key[TOKEN_KEY_LEN] = '\0';

	if ((err = crypto_random(raw, SECRET_RAW_LEN)) != KG_OK)
		goto out;
	b64url_encode(raw, SECRET_RAW_LEN, t->secret);
	checksum_encode(t->key, t->secret, t->secret + SECRET_BODY_LEN);
	t->secret[TOKEN_SECRET_LEN] = '\0';
	err = KG_OK;
out:
	crypto_wipe(raw, sizeof(raw));
	if (err != KG_OK)
		crypto_wipe(t, sizeof(*t));
	return err;
}

enum kg_err
token_parse(const char *s, struct token *t)
{
	enum kg_err err = KG_ETOKEN;

	if (t == NULL)
		return KG_ETOKEN;
	/* token_check fills *t only on success: a refused token leaves zeros. */
	memset(t, 0, sizeof(*t));
	if (s == NULL)
		goto out;
	/* strnlen stops at the NUL, so a short string is never over-read. */
	if (strnlen(s, TOKEN_LEN + 1) != TOKEN_LEN)
		goto out;
	if (s[TOKEN_KEY_LEN] != '.')
		goto out;
	err = token_check(s, s + TOKEN_KEY_LEN + 1, t);
out:
	return err;
}

enum kg_err
token_from_parts(const char *key, const char *secret, struct token *t)
{
	enum kg_err err = KG_ETOKEN;

	if (t == NULL)
		return KG_ETOKEN;
	memset(t, 0, sizeof(*t));
	if (key == NULL || secret == NULL)
		goto out;
	if (strnlen(key, TOKEN_KEY_LEN + 1) != TOKEN_KEY_LEN)
		goto out;
	err = token_check(key, secret, t);
out:
	return err;
}

void
token_format(const struct token *t, char *buf, size_t bufsz)
{
	if (buf == NULL || bufsz == 0)
		return;
	/* A cut-off token is useless and half a secret: write nothing. */
	if (t == NULL || bufsz < TOKEN_LEN + 1) {
		buf[0] = '\0';
		return;
	}
	memcpy(buf, t->key, TOKEN_KEY_LEN);
	buf[TOKEN_KEY_LEN] = '.';
	memcpy(buf + TOKEN_KEY_LEN + 1, t->secret, TOKEN_SECRET_LEN);
	buf[TOKEN_LEN] = '\0';
}

void
token_digest(const struct token *t, unsigned char out[CRYPTO_SHA256_LEN])
{
	crypto_sha256(t->secret, TOKEN_SECRET_LEN, out);
}

void
token_wipe(struct token *t)
{
	/* Only the secret: callers may still want the key, e.g. to log it. */
	if (t != NULL)
		crypto_wipe(t->secret, sizeof(t->secret));
}
