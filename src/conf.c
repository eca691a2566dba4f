#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ini.h>

#include "addr.h"
#include "conf.h"
#include "scope.h"

#ifndef KG_SYSCONFDIR
#define KG_SYSCONFDIR "/etc"
#endif
#ifndef KG_DATADIR
#define KG_DATADIR "/usr/share/keygate"
#endif

enum conf_type {
	CT_STR,
	CT_INT,
	CT_LONG,
	CT_DURATION,
	CT_OCTAL,
	CT_CHOICE,
	CT_CIDRS,   /* string: addresses and CIDR networks */
	CT_ORIGINS, /* string: http(s)://host[:port] origins */
	CT_SCOPES,  /* string: scopes (src/scope.h), space- or comma-separated */
};

struct conf_key {
	const char *name;
	enum conf_type type;
	size_t off;
	size_t size;        /* CT_STR: buffer size */
	const char *def;
	long min, max;      /* numeric bounds */
	const char *choices; /* CT_CHOICE: space-separated */
	size_t parsed;       /* CT_CIDRS, CT_ORIGINS: offset of the parsed list */
	int restart;         /* 1: a reload keeps the running value (conf_keep_restart_keys) */
};

/* inih's line buffer is INI_MAX_LINE (200) bytes with its newline and NUL. */
#define CONF_LINE_MAX (INI_MAX_LINE - 2)

#define O(f) offsetof(struct conf, f)
#define S(f) sizeof(((struct conf *)0)->f)
/* How a key ends its row: reloadable, only on restart, a parsed list (reloadable). */
#define RELOAD 0, 0
#define RESTART 0, 1
#define LIST(f) O(f), 0

/*
 * The single source of truth for configuration keys: the shipped
 * conf/keygate.conf and keygate.conf(5) document exactly these, and mark
 * [restart] exactly the RESTART ones (test_docs.py compares them).
 */
/* One key a line reads as a table: */
/* clang-format off */
static const struct conf_key conf_table[] = {
	{ "listen", CT_STR, O(listen), S(listen), "/run/keygate/keygate.sock", 0, 0, NULL, RESTART },
	{ "listen_mode", CT_OCTAL, O(listen_mode), 0, "0660", 0, 0777, NULL, RESTART },
	{ "listen_group", CT_STR, O(listen_group), S(listen_group), "", 0, 0, NULL, RESTART },
	{ "backlog", CT_INT, O(backlog), 0, "128", 1, 65535, NULL, RESTART },
	{ "user", CT_STR, O(user), S(user), "", 0, 0, NULL, RESTART },
	{ "workers", CT_INT, O(workers), 0, "4", 1, 256, NULL, RELOAD },
	{ "max_requests", CT_LONG, O(max_requests), 0, "100000", 0, LONG_MAX, NULL, RELOAD },
	{ "request_timeout", CT_DURATION, O(request_timeout), 0, "30", 1, 86400, NULL, RELOAD },
	{ "shutdown_timeout", CT_DURATION, O(shutdown_timeout), 0, "30", 1, 3600, NULL, RELOAD },
	{ "slow_request", CT_INT, O(slow_request), 0, "1000", 1, 3600000, NULL, RELOAD },
	{ "status_allow", CT_CIDRS, O(status_allow), S(status_allow), "127.0.0.0/8 ::1", 0, 0, NULL, LIST(status_allow_list) },
	{ "base_path", CT_STR, O(base_path), S(base_path), "/api", 0, 0, NULL, RELOAD },
	{ "max_body", CT_LONG, O(max_body), 0, "16384", 256, 1048576, NULL, RELOAD },
	{ "log_target", CT_CHOICE, O(log_target), S(log_target), "stderr", 0, 0, "stderr syslog", RELOAD },
	{ "log_level", CT_CHOICE, O(log_level), S(log_level), "info", 0, 0, "debug info warn error", RELOAD },
	{ "database", CT_STR, O(database), S(database), "dbname=keygate", 0, 0, NULL, RELOAD },
	{ "db_connect_timeout", CT_DURATION, O(db_connect_timeout), 0, "5", 1, 600, NULL, RELOAD },
	{ "statement_timeout", CT_INT, O(statement_timeout), 0, "5000", 0, 3600000, NULL, RELOAD },
	{ "db_retry_max", CT_DURATION, O(db_retry_max), 0, "5", 1, 600, NULL, RELOAD },
	{ "migrations_dir", CT_STR, O(migrations_dir), S(migrations_dir), KG_DATADIR "/migrations", 0, 0, NULL, RELOAD },
	{ "password_min_length", CT_INT, O(password_min_length), 0, "15", 8, 128, NULL, RELOAD },
	{ "common_passwords", CT_STR, O(common_passwords), S(common_passwords), KG_DATADIR "/common-passwords.txt", 0, 0, NULL, RELOAD },
	{ "password_min_guesses_log10", CT_INT, O(password_min_guesses_log10), 0, "8", 0, 40, NULL, RELOAD },
	{ "argon2_memory", CT_LONG, O(argon2_memory), 0, "19456", 8, 4194304, NULL, RELOAD },
	{ "argon2_iterations", CT_INT, O(argon2_iterations), 0, "2", 1, 64, NULL, RELOAD },
	{ "argon2_parallelism", CT_INT, O(argon2_parallelism), 0, "1", 1, 64, NULL, RELOAD },
	{ "hash_concurrency", CT_INT, O(hash_concurrency), 0, "0", 0, 1024, NULL, RESTART },
	{ "max_tokens_per_user", CT_INT, O(max_tokens_per_user), 0, "10", 1, 10000, NULL, RELOAD },
	{ "default_scopes", CT_SCOPES, O(default_scopes), S(default_scopes), "*", 0, 0, NULL, RELOAD },
	{ "max_api_tokens_per_user", CT_INT, O(max_api_tokens_per_user), 0, "10", 1, 1000, NULL, RELOAD },
	{ "api_token_max_lifetime", CT_DURATION, O(api_token_max_lifetime), 0, "90d", 60, 315360000, NULL, RELOAD },
	{ "token_idle_timeout", CT_DURATION, O(token_idle_timeout), 0, "30m", 1, 31536000, NULL, RELOAD },
	{ "token_lifetime", CT_DURATION, O(token_lifetime), 0, "12h", 1, 31536000, NULL, RELOAD },
	{ "remember_idle_timeout", CT_DURATION, O(remember_idle_timeout), 0, "7d", 1, 31536000, NULL, RELOAD },
	{ "remember_lifetime", CT_DURATION, O(remember_lifetime), 0, "30d", 1, 31536000, NULL, RELOAD },
	{ "touch_interval", CT_DURATION, O(touch_interval), 0, "60", 0, 86400, NULL, RELOAD },
	{ "token_cache_size", CT_LONG, O(token_cache_size), 0, "16384", 0, 1048576, NULL, RELOAD },
	{ "token_cache_ttl", CT_DURATION, O(token_cache_ttl), 0, "120", 1, 3600, NULL, RELOAD },
	{ "login_max_failures", CT_INT, O(login_max_failures), 0, "5", 1, 1000, NULL, RELOAD },
	{ "login_failure_window", CT_DURATION, O(login_failure_window), 0, "15m", 1, 86400, NULL, RELOAD },
	{ "login_delay", CT_DURATION, O(login_delay), 0, "30", 1, 86400, NULL, RELOAD },
	{ "login_max_delay", CT_DURATION, O(login_max_delay), 0, "15m", 1, 86400, NULL, RELOAD },
	{ "login_max_per_address", CT_INT, O(login_max_per_address), 0, "100", 1, 1000000, NULL, RELOAD },
	{ "join_max_per_address", CT_INT, O(join_max_per_address), 0, "20", 1, 1000000, NULL, RELOAD },
	{ "throttle_ipv6_prefix", CT_INT, O(throttle_ipv6_prefix), 0, "64", 1, 128, NULL, RELOAD },
	{ "trusted_proxies", CT_CIDRS, O(trusted_proxies), S(trusted_proxies), "", 0, 0, NULL, LIST(trusted_proxies_list) },
	{ "cookie_name", CT_STR, O(cookie_name), S(cookie_name), "keygate_token", 0, 0, NULL, RELOAD },
	{ "cookie_secure", CT_INT, O(cookie_secure), 0, "1", 0, 1, NULL, RELOAD },
	{ "allowed_origins", CT_ORIGINS, O(allowed_origins), S(allowed_origins), "", 0, 0, NULL, LIST(origins) },
	{ "audit_retention", CT_DURATION, O(audit_retention), 0, "90d", 86400, 315360000, NULL, RELOAD },
};
/* clang-format on */

#define CONF_NKEYS (sizeof(conf_table) / sizeof(conf_table[0]))

struct conf_parse {
	struct conf *c;
	char why[512];   /* first error, without its line: ini_parse returns that */
	int failed;
};

long
conf_parse_duration(const char *s)
{
	char *end;
	long v, mult = 1;

	if (s == NULL || !isdigit((unsigned char)*s))
		return -1;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || v < 0)
		return -1;
	switch (*end) {
	case '\0': case 's': mult = 1; break;
	case 'm': mult = 60; break;
	case 'h': mult = 3600; break;
	case 'd': mult = 86400; break;
	default: return -1;
	}
	if (*end != '\0' && end[1] != '\0')
		return -1;
	if (v > LONG_MAX / mult)
		return -1;
	return v * mult;
}

static int
conf_parse_long(const char *s, int base, long *out)
{
	char *end;
	long v;

	if (s == NULL || *s == '\0' || isspace((unsigned char)*s))
		return -1;
	errno = 0;
	v = strtol(s, &end, base);
	if (errno != 0 || *end != '\0')
		return -1;
	*out = v;
	return 0;
}

static int
conf_choice_ok(const char *choices, const char *v)
{
	size_t n = strlen(v);
	const char *p = choices;

	while (n > 0 && *p != '\0') {
		size_t w = strcspn(p, " ");
		if (w == n && strncmp(p, v, n) == 0)
			return 1;
		p += w;
		while (*p == ' ')
			p++;
	}
	return 0;
}

/*
 * Store value for key k into c (a list also parsed, into its k->parsed);
 * writes the reason into why on failure, leaving c as it was.
 */
static int
conf_set(struct conf *c, const struct conf_key *k, const char *value, const char **why)
{
	char *base = (char *)c + k->off;
	struct addr_list cidrs;
	struct addr_origins origins;
	long v;

	switch (k->type) {
	case CT_STR:
	case CT_CHOICE:
	case CT_CIDRS:
	case CT_ORIGINS:
	case CT_SCOPES:
		if ((k->type == CT_CIDRS || k->type == CT_ORIGINS) && k->parsed == 0) {
			*why = "internal error: a list without LIST() in conf_table";
			return -1;
		}
		if (k->type == CT_CHOICE && !conf_choice_ok(k->choices, value)) {
			*why = "not one of the allowed values";
			return -1;
		}
		/* Zeroed first: equal configurations are equal bytes (conf_test compares them). */
		memset(&cidrs, 0, sizeof(cidrs));
		memset(&origins, 0, sizeof(origins));
		if (k->type == CT_CIDRS && addr_list_parse(value, &cidrs) != KG_OK) {
			*why = "not a list of addresses or CIDR networks";
			return -1;
		}
		if (k->type == CT_ORIGINS && addr_origins_parse(value, &origins) != KG_OK) {
			*why = "not a list of http(s)://host[:port] origins";
			return -1;
		}
		if (k->type == CT_SCOPES) {
			struct scope_set set;

			if (scope_set_parse_list(value, &set) != KG_OK) {
				*why = "not a list of at most 16 scopes (e.g. files:read notes, or *)";
				return -1;
			}
		}
		if (strlen(value) >= k->size) {
			*why = "value too long";
			return -1;
		}
		memcpy(base, value, strlen(value) + 1);
		if (k->type == CT_CIDRS)
			memcpy((char *)c + k->parsed, &cidrs, sizeof(cidrs));
		else if (k->type == CT_ORIGINS)
			memcpy((char *)c + k->parsed, &origins, sizeof(origins));
		return 0;
	case CT_INT:
	case CT_LONG:
	case CT_OCTAL:
		if (conf_parse_long(value, k->type == CT_OCTAL ? 8 : 10, &v) != 0) {
			*why = "not a number";
			return -1;
		}
		break;
	case CT_DURATION:
		v = conf_parse_duration(value);
		if (v < 0) {
			*why = "not a duration (e.g. 90, 90s, 15m, 12h, 30d)";
			return -1;
		}
		break;
	default:
		*why = "internal error";
		return -1;
	}
	if (v < k->min || v > k->max) {
		*why = "out of range";
		return -1;
	}
	if (k->type == CT_LONG)
		*(long *)(void *)base = v;
	else if (k->type == CT_OCTAL)
		*(unsigned *)(void *)base = (unsigned)v;
	else
		*(int *)(void *)base = (int)v;
	return 0;
}

static const struct conf_key *
conf_find(const char *name)
{
	size_t i;

	for (i = 0; i < CONF_NKEYS; i++)
		if (strcmp(conf_table[i].name, name) == 0)
			return &conf_table[i];
	return NULL;
}

static void
conf_fail(struct conf_parse *p, const char *key, const char *why)
{
	if (p->failed)
		return; /* keep the first error: ini_parse reports its line */
	p->failed = 1;
	(void)snprintf(p->why, sizeof(p->why), "%s: %s", key, why);
}

static int
conf_ini_handler(void *user, const char *section, const char *name, const char *value
#if INI_HANDLER_LINENO
    , int lineno
#endif
)
{
	struct conf_parse *p = user;
	const struct conf_key *k;
	const char *why = NULL;

	if (section[0] != '\0' && strcmp(section, "keygate") != 0) {
		conf_fail(p, section, "unknown section (use [keygate] or none)");
		return 0;
	}
	k = conf_find(name);
	if (k == NULL) {
		conf_fail(p, name, "unknown key");
		return 0;
	}
	if (conf_set(p->c, k, value, &why) != 0) {
		conf_fail(p, name, why);
		return 0;
	}
	return 1;
}

static int
conf_check(struct conf *c, char *err, size_t errsz)
{
	if (c->token_idle_timeout > c->token_lifetime ||
	    c->remember_idle_timeout > c->remember_lifetime) {
		(void)snprintf(err, errsz, "idle timeouts must not exceed the lifetimes");
		return -1;
	}
	if (c->base_path[0] != '\0' && c->base_path[0] != '/') {
		(void)snprintf(err, errsz, "base_path must start with '/'");
		return -1;
	}
	if (c->login_delay > c->login_max_delay) {
		(void)snprintf(err, errsz, "login_delay must not exceed login_max_delay");
		return -1;
	}
	for (const char *p = c->cookie_name; *p != '\0'; p++)
		if (!isalnum((unsigned char)*p) && *p != '_' && *p != '-') {
			(void)snprintf(err, errsz, "cookie_name: only letters, digits, _ and -");
			return -1;
		}
	if (c->cookie_name[0] == '\0') {
		(void)snprintf(err, errsz, "cookie_name must not be empty");
		return -1;
	}
	if (c->listen[0] == '\0') {
		(void)snprintf(err, errsz, "listen must not be empty");
		return -1;
	}
	return 0;
}

/*
 * Debian's libinih reads lines into a 200-byte buffer and treats indented
 * lines as continuations of the previous value: either would silently
 * change a value. Refuse both, with the line number.
 */
static enum kg_err
conf_prescan(const char *path, char *err, size_t errsz)
{
	FILE *f = fopen(path, "r");
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	int lineno = 0;
	enum kg_err rc = KG_OK;

	if (f == NULL) {
		(void)snprintf(err, errsz, "%s: cannot open: %s", path, strerror(errno));
		return KG_ECONFIG;
	}
	while ((n = getline(&line, &cap, f)) >= 0) {
		lineno++;
		while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
			line[--n] = '\0';
		if (n > CONF_LINE_MAX) {
			(void)snprintf(err, errsz, "%s:%d: line longer than %d characters (put a long "
			    "database connection string in a pg_service.conf service)", path, lineno,
			    CONF_LINE_MAX);
			rc = KG_ECONFIG;
			break;
		}
		if (n > 0 && (line[0] == ' ' || line[0] == '\t')) {
			const char *p = line + strspn(line, " \t");
			if (*p != '\0' && *p != '#' && *p != ';') {
				(void)snprintf(err, errsz, "%s:%d: indented line: continuation lines are "
				    "not supported", path, lineno);
				rc = KG_ECONFIG;
				break;
			}
		}
	}
	free(line);
	fclose(f);
	return rc;
}

enum kg_err
conf_load(const char *path, struct conf *c, char *err, size_t errsz)
{
	struct conf_parse p = { .c = c };
	const char *why = NULL;
	char envname[128];
	size_t i, j;
	int rc;

	memset(c, 0, sizeof(*c));
	for (i = 0; i < CONF_NKEYS; i++)
		if (conf_set(c, &conf_table[i], conf_table[i].def, &why) != 0) {
			(void)snprintf(err, errsz, "default of %s: %s", conf_table[i].name, why);
			return KG_ECONFIG;
		}
	if (path != NULL) {
		if (conf_prescan(path, err, errsz) != KG_OK)
			return KG_ECONFIG;
		rc = ini_parse(path, conf_ini_handler, &p);
		if (rc == -1) {
			(void)snprintf(err, errsz, "%s: cannot open: %s", path, strerror(errno));
			return KG_ECONFIG;
		}
		if (rc == -2) {
			(void)snprintf(err, errsz, "%s: out of memory", path);
			return KG_ECONFIG;
		}
		if (rc > 0) {
			(void)snprintf(err, errsz, "%s:%d: %s", path, rc,
			    p.failed ? p.why : "syntax error");
			return KG_ECONFIG;
		}
	}
	for (i = 0; i < CONF_NKEYS; i++) {
		const char *v;
		int n = snprintf(envname, sizeof(envname), "KEYGATE_%s", conf_table[i].name);

		if (n < 0 || (size_t)n >= sizeof(envname))
			continue;
		for (j = 8; envname[j] != '\0'; j++)
			envname[j] = (char)toupper((unsigned char)envname[j]);
		v = getenv(envname);
		if (v == NULL)
			continue;
		if (conf_set(c, &conf_table[i], v, &why) != 0) {
			(void)snprintf(err, errsz, "environment: %s: %s", envname, why);
			return KG_ECONFIG;
		}
	}
	if (conf_check(c, err, errsz) != 0)
		return KG_ECONFIG;
	return KG_OK;
}

/* Bytes of k's value in struct conf. */
static size_t
conf_value_size(const struct conf_key *k)
{
	switch (k->type) {
	case CT_STR:
	case CT_CHOICE:
	case CT_CIDRS:
	case CT_ORIGINS:
	case CT_SCOPES:
		return k->size;
	case CT_LONG:
		return sizeof(long);
	case CT_OCTAL:
		return sizeof(unsigned);
	default:
		return sizeof(int);
	}
}

/* 1 when k has the same value in a and b (a string up to its NUL). */
static int
conf_value_equal(const struct conf *a, const struct conf *b, const struct conf_key *k)
{
	const char *va = (const char *)a + k->off, *vb = (const char *)b + k->off;

	if (k->size > 0)
		return strcmp(va, vb) == 0;
	return memcmp(va, vb, conf_value_size(k)) == 0;
}

int
conf_keep_restart_keys(const struct conf *old, struct conf *next, char *changed, size_t changedsz)
{
	size_t i, used = 0;
	int n = 0, cut = 0;

	if (changedsz > 0)
		changed[0] = '\0';
	for (i = 0; i < CONF_NKEYS; i++) {
		const struct conf_key *k = &conf_table[i];

		if (!k->restart)
			continue;
		if (!conf_value_equal(old, next, k)) {
			int w = snprintf(changed + used, changedsz - used, "%s%s",
			    n > 0 ? ", " : "", k->name);

			if (!cut && w > 0 && used + (size_t)w < changedsz) {
				used += (size_t)w;
			} else {
				cut = 1;
				if (changedsz > 0)
					changed[used] = '\0'; /* no half a name */
			}
			n++;
		}
		memcpy((char *)next + k->off, (const char *)old + k->off, conf_value_size(k));
		if (k->type == CT_CIDRS)
			memcpy((char *)next + k->parsed, (const char *)old + k->parsed,
			    sizeof(struct addr_list));
		else if (k->type == CT_ORIGINS)
			memcpy((char *)next + k->parsed, (const char *)old + k->parsed,
			    sizeof(struct addr_origins));
	}
	return n;
}

const char *
conf_path(const char *arg)
{
	const char *env;

	if (arg != NULL)
		return arg;
	env = getenv("KEYGATE_CONFIG");
	if (env != NULL && *env != '\0')
		return env;
	return KG_SYSCONFDIR "/keygate/keygate.conf";
}

void
conf_dump(const struct conf *c)
{
	size_t i;

	for (i = 0; i < CONF_NKEYS; i++) {
		const struct conf_key *k = &conf_table[i];
		const char *base = (const char *)c + k->off;

		switch (k->type) {
		case CT_STR:
		case CT_CHOICE:
		case CT_CIDRS:
		case CT_ORIGINS:
		case CT_SCOPES:
			printf("%s = %s\n", k->name, base);
			break;
		case CT_LONG:
			printf("%s = %ld\n", k->name, *(const long *)(const void *)base);
			break;
		case CT_OCTAL:
			printf("%s = 0%o\n", k->name, *(const unsigned *)(const void *)base);
			break;
		default:
			printf("%s = %d\n", k->name, *(const int *)(const void *)base);
			break;
		}
	}
}

/* 1 when a libpq conninfo (key=value or URI) carries a password. */
static int
conf_conninfo_has_password(const char *ci)
{
	const char *p, *at, *slash;

	if (strncmp(ci, "postgresql://", 13) == 0 || strncmp(ci, "postgres://", 11) == 0) {
		p = strstr(ci, "://") + 3;
		at = strchr(p, '@');
		slash = strchr(p, '/');
		if (at != NULL && (slash == NULL || at < slash) && memchr(p, ':', (size_t)(at - p)))
			return 1;
		return strstr(ci, "password=") != NULL;
	}
	/* A key is a word at the start or after white space, then '='. */
	for (p = ci; (p = strstr(p, "password")) != NULL; p += 8) {
		const char *q = p + 8;

		if (p != ci && !isspace((unsigned char)p[-1]))
			continue;
		while (isspace((unsigned char)*q))
			q++;
		if (*q == '=')
			return 1;
	}
	return 0;
}

int
conf_warnings(const struct conf *c, FILE *f)
{
	int n = 0;

	if (conf_conninfo_has_password(c->database)) {
		fprintf(f, "keygate: warning: database: holds a password, readable by whoever reads"
		    " this configuration; use a password file instead (passfile=, or ~/.pgpass)\n");
		n++;
	}
	return n;
}

const char *const *
conf_keys(void)
{
	static const char *names[CONF_NKEYS + 1];
	size_t i;

	for (i = 0; i < CONF_NKEYS; i++)
		names[i] = conf_table[i].name;
	names[CONF_NKEYS] = NULL;
	return names;
}
