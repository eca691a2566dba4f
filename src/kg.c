#include <string.h>
#include <time.h>

#include "kg.h"

static const char *const kg_errtext[KG_ERR__MAX] = {
	[KG_OK] = "success",
	[KG_ENOMEM] = "out of memory",
	[KG_EINPUT] = "invalid request",
	[KG_EJSON] = "invalid JSON",
	[KG_EAUTH] = "invalid credentials",
	[KG_ETOKEN] = "invalid token",
	[KG_EFORBIDDEN] = "forbidden",
	[KG_ECSRF] = "cross-site request refused",
	[KG_ESCOPE] = "insufficient scope",
	[KG_EBADSCOPE] = "scope not granted",
	[KG_ENAME_TAKEN] = "name taken",
	[KG_ETOOMANY] = "too many API tokens",
	[KG_ESESSION] = "a session is needed, not an API token",
	[KG_ENOTFOUND] = "not found",
	[KG_EMETHOD] = "method not allowed",
	[KG_EUSERNAME_TAKEN] = "username taken",
	[KG_EEMAIL_TAKEN] = "email taken",
	[KG_ECONFLICT] = "conflict",
	[KG_ETOOLARGE] = "payload too large",
	[KG_EMEDIA] = "unsupported media type",
	[KG_ETHROTTLED] = "too many requests",
	[KG_EDB] = "database unavailable",
	[KG_ESYS] = "internal error",
	[KG_ECONFIG] = "configuration error",
};

const char *
kg_strerror(enum kg_err err)
{
	if ((unsigned)err >= KG_ERR__MAX || kg_errtext[err] == NULL)
		return "unknown error";
	return kg_errtext[err];
}

long long
kg_monotonic_ms(void)
{
	struct timespec ts;

	(void)clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

size_t
kg_strlcpy(char *dst, const char *src, size_t dstsz)
{
	size_t len = strlen(src);

	if (dstsz > 0) {
		size_t n = len < dstsz ? len : dstsz - 1;

		memcpy(dst, src, n);
		dst[n] = '\0';
	}
	return len;
}
