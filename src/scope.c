#include <stdio.h>
#include <string.h>

#include "scope.h"

static int
scope_char(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	    c == '_' || c == '.' || c == '-';
}

int
scope_valid(const char *s)
{
	size_t n = s == NULL ? 0 : strlen(s), seg = 0, i;

	if (n == 0 || n > SCOPE_MAX)
		return 0;
	if (strcmp(s, "*") == 0)
		return 1;
	for (i = 0; i < n; i++) {
		if (s[i] == ':') {
			if (seg == 0)
				return 0;
			seg = 0;
		} else if (scope_char(s[i]))
			seg++;
		else
			return 0;
	}
	return seg > 0;
}

int
scope_implies(const char *have, const char *want)
{
	size_t n = strlen(have);

	if (strcmp(have, "*") == 0)
		return 1;
	/* "files" allows "files" and "files:...", never "filesystem". */
	return strncmp(have, want, n) == 0 && (want[n] == '\0' || want[n] == ':');
}

int
scope_set_allows(const struct scope_set *set, const char *want)
{
	size_t i;

	for (i = 0; i < set->n; i++)
		if (scope_implies(set->s[i], want))
			return 1;
	return 0;
}

static int
scope_set_has(const struct scope_set *set, const char *s)
{
	size_t i;

	for (i = 0; i < set->n; i++)
		if (strcmp(set->s[i], s) == 0)
			return 1;
	return 0;
}

int
scope_set_add(struct scope_set *set, const char *s)
{
	if (scope_set_has(set, s))
		return 1;
	if (set->n >= SCOPE_SET_MAX || strlen(s) > SCOPE_MAX)
		return 0;
	(void)kg_strlcpy(set->s[set->n++], s, sizeof(set->s[0]));
	return 1;
}

enum kg_err
scope_set_parse(const char *const *v, size_t n, struct scope_set *out, const char **bad)
{
	size_t i;

	memset(out, 0, sizeof(*out));
	if (bad != NULL)
		*bad = NULL;
	for (i = 0; i < n; i++) {
		if (!scope_valid(v[i]) || !scope_set_add(out, v[i])) {
			if (bad != NULL)
				*bad = v[i];
			return KG_EINPUT;
		}
	}
	return KG_OK;
}

enum kg_err
scope_set_parse_list(const char *list, struct scope_set *out)
{
	char one[SCOPE_MAX + 2];
	const char *p = list;

	memset(out, 0, sizeof(*out));
	while (*p != '\0') {
		size_t w;

		p += strspn(p, " ,\t");
		w = strcspn(p, " ,\t");
		if (w == 0)
			break;
		if (w > SCOPE_MAX)
			return KG_EINPUT;
		memcpy(one, p, w);
		one[w] = '\0';
		if (!scope_valid(one) || !scope_set_add(out, one))
			return KG_EINPUT;
		p += w;
	}
	return KG_OK;
}

void
scope_set_from_text(const char *text, struct scope_set *out)
{
	char one[SCOPE_MAX + 1];
	const char *p = text;

	memset(out, 0, sizeof(*out));
	if (*p == '{')
		p++;
	/* Elements never need quoting: every stored scope was validated. */
	while (*p != '\0' && *p != '}') {
		size_t w = strcspn(p, ",}");

		if (w > 0 && w <= SCOPE_MAX) {
			memcpy(one, p, w);
			one[w] = '\0';
			(void)scope_set_add(out, one);
		}
		p += w;
		if (*p == ',')
			p++;
	}
}

enum kg_err
scope_set_to_text(const struct scope_set *set, char *buf, size_t bufsz)
{
	size_t i, used;
	int w;

	if (bufsz < 3)
		return KG_ESYS;
	buf[0] = '{';
	used = 1;
	for (i = 0; i < set->n; i++) {
		w = snprintf(buf + used, bufsz - used, "%s%s", i > 0 ? "," : "", set->s[i]);
		if (w < 0 || (size_t)w >= bufsz - used)
			return KG_ESYS;
		used += (size_t)w;
	}
	if (used + 2 > bufsz)
		return KG_ESYS;
	buf[used++] = '}';
	buf[used] = '\0';
	return KG_OK;
}

void
scope_set_missing(const struct scope_set *have, const struct scope_set *want, struct scope_set *missing)
{
	size_t i;

	memset(missing, 0, sizeof(*missing));
	for (i = 0; i < want->n; i++) {
		const char *w = want->s[i];

		/* "*" asks for whatever have allows: never more. */
		if (strcmp(w, "*") != 0 && !scope_set_allows(have, w))
			(void)scope_set_add(missing, w);
	}
}

void
scope_effective(const struct scope_set *own, const struct scope_set *granted, struct scope_set *out)
{
	size_t i, j;

	memset(out, 0, sizeof(*out));
	for (i = 0; i < own->n; i++) {
		const char *t = own->s[i];

		if (strcmp(t, "*") == 0) {
			for (j = 0; j < granted->n; j++)
				(void)scope_set_add(out, granted->s[j]);
		} else if (scope_set_allows(granted, t))
			(void)scope_set_add(out, t);
		else {
			/* Broader than what is granted now: the grants below it remain. */
			for (j = 0; j < granted->n; j++)
				if (scope_implies(t, granted->s[j]))
					(void)scope_set_add(out, granted->s[j]);
		}
	}
}

void
scope_set_expand(const struct scope_set *want, const struct scope_set *have, struct scope_set *out)
{
	size_t i, j;

	memset(out, 0, sizeof(*out));
	for (i = 0; i < want->n; i++) {
		if (strcmp(want->s[i], "*") == 0)
			for (j = 0; j < have->n; j++)
				(void)scope_set_add(out, have->s[j]);
		else
			(void)scope_set_add(out, want->s[i]);
	}
}
