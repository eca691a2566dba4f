/*
 * fuzz_conf: the configuration parser. The input is written to a memfd and
 * loaded with conf_load("/proc/self/fd/N"), the way `keygate check-config`
 * and a SIGHUP reload read the file; the input (up to its first NUL) is
 * also given to conf_parse_duration.
 *
 * Invariants:
 *  - conf_load returns KG_OK or KG_ECONFIG; an error always comes with a
 *    non-empty message, NUL-terminated within the buffer;
 *  - on KG_OK every string is NUL-terminated inside its buffer, every
 *    number lies within the bounds of the key table, and conf_check's
 *    rules hold (idle <= lifetime, base_path empty or "/...",
 *    login_delay <= login_max_delay, listen not empty, cookie_name of
 *    letters, digits, '_' and '-');
 *  - a file with a line over 198 bytes (inih's buffer) or an indented line
 *    that is not a comment (inih would take it as a continuation) is
 *    refused, never half-read;
 *  - when every line of the input is a plain `key = value`, a comment, a
 *    blank line or a section header, a successful load holds, for every
 *    string key, exactly the value of its last assignment (nothing lost,
 *    cut off or taken from elsewhere), and every key the file does not
 *    assign keeps its default (no comment or tail of a line sets a key);
 *  - conf_parse_duration agrees with a re-implementation of its
 *    documented grammar: digits, then at most one of s/m/h/d; -1 on
 *    anything else or on overflow.
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <sys/mman.h>
#include <unistd.h>

#include "conf.h"
#include "fuzz.h"

static int conf_fd = -1;
static char conf_file[64];
static struct conf defaults;

/* The numeric keys and their bounds, copied from conf_table in src/conf.c. */
enum kind { K_INT, K_LONG, K_UNSIGNED };
#define N(f, k, lo, hi) { #f, offsetof(struct conf, f), k, lo, hi }
static const struct {
	const char *name;
	size_t off;
	enum kind kind;
	long min, max;
} numeric[] = {
	N(listen_mode, K_UNSIGNED, 0, 0777),
	N(backlog, K_INT, 1, 65535),
	N(workers, K_INT, 1, 256),
	N(max_requests, K_LONG, 0, LONG_MAX),
	N(request_timeout, K_INT, 1, 86400),
	N(shutdown_timeout, K_INT, 1, 3600),
	N(slow_request, K_INT, 1, 3600000),
	N(max_body, K_LONG, 256, 1048576),
	N(db_connect_timeout, K_INT, 1, 600),
	N(statement_timeout, K_INT, 0, 3600000),
	N(db_retry_max, K_INT, 1, 600),
	N(password_min_length, K_INT, 8, 128),
	N(argon2_memory, K_LONG, 8, 4194304),
	N(argon2_iterations, K_INT, 1, 64),
	N(argon2_parallelism, K_INT, 1, 64),
	N(max_tokens_per_user, K_INT, 1, 10000),
	N(token_idle_timeout, K_INT, 1, 31536000),
	N(token_lifetime, K_INT, 1, 31536000),
	N(remember_idle_timeout, K_INT, 1, 31536000),
	N(remember_lifetime, K_INT, 1, 31536000),
	N(touch_interval, K_INT, 0, 86400),
	N(token_cache_size, K_LONG, 0, 1048576),
	N(token_cache_ttl, K_INT, 1, 3600),
	N(login_max_failures, K_INT, 1, 1000),
	N(login_failure_window, K_INT, 1, 86400),
	N(login_delay, K_INT, 1, 86400),
	N(login_max_delay, K_INT, 1, 86400),
	N(login_max_per_address, K_INT, 1, 1000000),
	N(join_max_per_address, K_INT, 1, 1000000),
	N(cookie_secure, K_INT, 0, 1),
	N(audit_retention, K_INT, 86400, 315360000),
};
#undef N
#define NNUMERIC (sizeof(numeric) / sizeof(numeric[0]))

/* The string keys (CT_STR and CT_CHOICE). */
#define S(f) { #f, offsetof(struct conf, f), sizeof(((struct conf *)0)->f) }
static const struct {
	const char *name;
	size_t off, size;
} strings[] = {
	S(listen), S(listen_group), S(user), S(status_allow), S(base_path),
	S(log_target), S(log_level), S(database), S(migrations_dir),
	S(common_passwords), S(trusted_proxies), S(cookie_name), S(allowed_origins),
};
#undef S
#define NSTRINGS (sizeof(strings) / sizeof(strings[0]))

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	extern char **environ;
	char **e;

	/* conf_load lets KEYGATE_* override the file: none may leak in. */
	for (e = environ; *e != NULL;) {
		if (strncmp(*e, "KEYGATE_", 8) == 0) {
			char name[256];
			size_t n = strcspn(*e, "=");
			FUZZ_CHECK(n < sizeof(name));
			memcpy(name, *e, n);
			name[n] = '\0';
			unsetenv(name);
			e = environ;
		} else
			e++;
	}
	{
		char err[512];
		FUZZ_CHECK(conf_load(NULL, &defaults, err, sizeof(err)) == KG_OK);
	}
	conf_fd = memfd_create("fuzz_conf", 0);
	FUZZ_CHECK(conf_fd >= 0);
	(void)snprintf(conf_file, sizeof(conf_file), "/proc/self/fd/%d", conf_fd);
	return 0;
}

static long
ref_duration(const char *s)
{
	long v = 0, mult = 1;
	const char *p = s;

	if (!isdigit((unsigned char)*p))
		return -1;
	for (; isdigit((unsigned char)*p); p++)
		if (__builtin_mul_overflow(v, 10, &v) || __builtin_add_overflow(v, *p - '0', &v))
			return -1;
	switch (*p) {
	case '\0': break;
	case 's': mult = 1; p++; break;
	case 'm': mult = 60; p++; break;
	case 'h': mult = 3600; p++; break;
	case 'd': mult = 86400; p++; break;
	default: return -1;
	}
	if (*p != '\0' || __builtin_mul_overflow(v, mult, &v))
		return -1;
	return v;
}

static int
line_blank(const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (!isspace((unsigned char)s[i]))
			return 0;
	return 1;
}

/*
 * Expected values of the string keys when the input is "plain": only lines
 * that are blank, comments ('#' or ';' first), "[keygate]", or
 * "name = value" with name in [a-z_], a value of printable ASCII without
 * ';', and no line starting with white space (a continuation). Returns 0
 * when the input is not plain; exp[i] is NULL for keys never assigned.
 */
static int
plain_expectations(const char *in, size_t size, char *exp[NSTRINGS], int num_set[NNUMERIC])
{
	const char *p = in, *end = in + size;

	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = nl != NULL ? (size_t)(nl - p) : (size_t)(end - p);
		size_t i, k, vstart, vend;

		if (line_blank(p, n))
			goto next;
		for (i = 0; i < n; i++)
			if (p[i] < 0x20 || p[i] > 0x7e)
				return 0;
		if (p[0] == '#' || p[0] == ';')
			goto next;
		if (n == 9 && memcmp(p, "[keygate]", 9) == 0)
			goto next;
		for (k = 0; k < n && ((p[k] >= 'a' && p[k] <= 'z') || p[k] == '_'); k++)
			;
		if (k == 0)
			return 0;
		i = k;
		while (i < n && p[i] == ' ')
			i++;
		if (i == n || (p[i] != '=' && p[i] != ':'))
			return 0;
		if (memchr(p + i, ';', n - i) != NULL)
			return 0;
		vstart = i + 1;
		while (vstart < n && p[vstart] == ' ')
			vstart++;
		vend = n;
		while (vend > vstart && p[vend - 1] == ' ')
			vend--;
		for (i = 0; i < NSTRINGS; i++)
			if (strlen(strings[i].name) == k && memcmp(strings[i].name, p, k) == 0) {
				free(exp[i]);
				exp[i] = fuzz_strndup((const uint8_t *)p + vstart, vend - vstart);
			}
		for (i = 0; i < NNUMERIC; i++)
			if (strlen(numeric[i].name) == k && memcmp(numeric[i].name, p, k) == 0)
				num_set[i] = 1;
next:
		p += n + 1;
	}
	return 1;
}

/*
 * 1 when inih cannot read the file as written: a line (without its line
 * end) longer than its buffer allows, or an indented line that is not
 * blank or a comment (a continuation).
 */
static int
has_unreadable_line(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data, *end = p + size;

	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = nl != NULL ? (size_t)(nl - p) : (size_t)(end - p), k;

		while (n > 0 && p[n - 1] == '\r')
			n--;
		if (n > 198)
			return 1;
		for (k = 0; k < n && (p[k] == ' ' || p[k] == '\t'); k++)
			;
		/* (inih stops reading a line at a NUL) */
		if (k > 0 && k < n && p[k] != '#' && p[k] != ';' && p[k] != '\0')
			return 1;
		p += (nl != NULL ? (size_t)(nl - p) : (size_t)(end - p)) + 1;
	}
	return 0;
}

static void
check_loaded(const struct conf *c, const uint8_t *data, size_t size)
{
	char *exp[NSTRINGS] = { NULL };
	int num_set[NNUMERIC] = { 0 };
	size_t i;

	for (i = 0; i < NSTRINGS; i++)
		FUZZ_CHECK(strnlen((const char *)c + strings[i].off, strings[i].size) <
		    strings[i].size);
	for (i = 0; i < NNUMERIC; i++) {
		const char *base = (const char *)c + numeric[i].off;
		long v;

		switch (numeric[i].kind) {
		case K_INT: v = *(const int *)(const void *)base; break;
		case K_LONG: v = *(const long *)(const void *)base; break;
		default: v = (long)*(const unsigned *)(const void *)base; break;
		}
		if (v < numeric[i].min || v > numeric[i].max) {
			fprintf(stderr, "%s = %ld out of [%ld, %ld]\n", numeric[i].name, v,
			    numeric[i].min, numeric[i].max);
			FUZZ_CHECK(!"numeric value in bounds");
		}
	}
	FUZZ_CHECK(c->token_idle_timeout <= c->token_lifetime);
	FUZZ_CHECK(c->remember_idle_timeout <= c->remember_lifetime);
	FUZZ_CHECK(c->base_path[0] == '\0' || c->base_path[0] == '/');
	FUZZ_CHECK(c->login_delay <= c->login_max_delay);
	FUZZ_CHECK(c->listen[0] != '\0');
	FUZZ_CHECK(strcmp(c->log_target, "stderr") == 0 || strcmp(c->log_target, "syslog") == 0);
	FUZZ_CHECK(c->cookie_name[0] != '\0');
	for (i = 0; c->cookie_name[i] != '\0'; i++)
		FUZZ_CHECK(isalnum((unsigned char)c->cookie_name[i]) || c->cookie_name[i] == '_' ||
		    c->cookie_name[i] == '-');

	if (plain_expectations((const char *)data, size, exp, num_set)) {
		for (i = 0; i < NSTRINGS; i++) {
			const char *got = (const char *)c + strings[i].off;
			const char *want = exp[i] != NULL ? exp[i] :
			    (const char *)&defaults + strings[i].off;
			if (strcmp(want, got) != 0) {
				fprintf(stderr, "%s: file says \"%s\", loaded \"%s\"\n",
				    strings[i].name, exp[i] != NULL ? exp[i] : "(default)", got);
				FUZZ_CHECK(!"a plain file is loaded as written");
			}
		}
		for (i = 0; i < NNUMERIC; i++) {
			size_t sz = numeric[i].kind == K_LONG ? sizeof(long) : sizeof(int);
			if (!num_set[i] && memcmp((const char *)c + numeric[i].off,
			    (const char *)&defaults + numeric[i].off, sz) != 0) {
				fprintf(stderr, "%s: not in the file, yet not the default\n",
				    numeric[i].name);
				FUZZ_CHECK(!"a key the file does not set keeps its default");
			}
		}
	}
	for (i = 0; i < NSTRINGS; i++)
		free(exp[i]);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct conf c;
	char err[512];
	char *s;
	enum kg_err rc;

	FUZZ_CHECK(ftruncate(conf_fd, 0) == 0);
	FUZZ_CHECK(size == 0 || pwrite(conf_fd, data, size, 0) == (ssize_t)size);
	memset(err, 0x5a, sizeof(err));
	rc = conf_load(conf_file, &c, err, sizeof(err));
	FUZZ_CHECK(rc == KG_OK || rc == KG_ECONFIG);
	if (has_unreadable_line(data, size))
		FUZZ_CHECK(rc == KG_ECONFIG);
	if (rc == KG_OK)
		check_loaded(&c, data, size);
	else {
		FUZZ_CHECK(strnlen(err, sizeof(err)) < sizeof(err));
		FUZZ_CHECK(err[0] != '\0');
	}

	s = fuzz_strndup(data, size);
	FUZZ_CHECK(conf_parse_duration(s) == ref_duration(s));
	free(s);
	return 0;
}
