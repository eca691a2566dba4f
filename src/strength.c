/*
 * strength: password strength estimation by zxcvbn-c. The only includer
 * of zxcvbn.h.
 *
 * Debian's libzxcvbn is built without USE_DICT_FILE: its dictionaries are
 * compiled in, ZxcvbnInit/ZxcvbnUnInit are no-ops, nothing is loaded or
 * kept between calls, and ZxcvbnMatch with a NULL Info frees all it
 * allocates before returning. It reads only constant tables, so calling it
 * from any process of the pool needs no set-up.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <string.h>

#include <zxcvbn.h>

#include "strength.h"

/* zxcvbn returns bits, log2 of the guesses; log10(2) turns them into digits. */
#define LOG10_2 0.30102999566398119521

enum kg_err
strength_guesses_log10(const char *pw, size_t len, const char *const *words, double *out)
{
	/* ZxcvbnMatch wants a NUL-terminated copy; it holds a password, so wiped. */
	char buf[STRENGTH_MAX_BYTES + 1];
	const char *dict[STRENGTH_MAX_WORDS + 1];
	size_t n = 0;
	enum kg_err err = KG_EINPUT;

	if (out == NULL)
		return KG_EINPUT;
	*out = 0.0;
	if ((pw == NULL && len > 0) || len > STRENGTH_MAX_BYTES)
		goto out;
	/* A NUL would end the password early and make it look weaker than it is. */
	if (len > 0 && memchr(pw, '\0', len) != NULL)
		goto out;
	for (; words != NULL && words[n] != NULL && words[n][0] != '\0'; n++) {
		if (n == STRENGTH_MAX_WORDS)
			goto out;
		dict[n] = words[n];
	}
	dict[n] = NULL;
	if (len > 0)
		memcpy(buf, pw, len);
	buf[len] = '\0';
	*out = ZxcvbnMatch(buf, dict, NULL) * LOG10_2;
	err = KG_OK;
out:
	explicit_bzero(buf, sizeof(buf));
	return err;
}
