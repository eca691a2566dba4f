/*
 * Unit tests for src/conf.c: defaults, INI files with line-numbered errors,
 * environment overrides, durations, cross-key checks, and the shipped
 * conf/keygate.conf documenting every key.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "conf.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* Remove every KEYGATE_<KEY> variable so that the environment cannot leak in. */
static void
clear_env(void)
{
	const char *const *k;

	for (k = conf_keys(); *k != NULL; k++) {
		char name[128];
		size_t i;

		(void)snprintf(name, sizeof(name), "KEYGATE_%s", *k);
		for (i = 0; name[i] != '\0'; i++)
			name[i] = (char)toupper((unsigned char)name[i]);
		(void)unsetenv(name);
	}
	(void)unsetenv("KEYGATE_CONFIG");
}

static int
setup(void **state)
{
	(void)state;
	clear_env();
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	clear_env();
	return 0;
}

/* Write text into a fresh temporary file; its path goes into path. */
static void
write_temp(char *path, size_t pathsz, const char *text)
{
	const char *tmp = getenv("TMPDIR");
	size_t len = strlen(text);
	int fd, n;

	n = snprintf(path, pathsz, "%s/keygate-conf-test.XXXXXX",
	    tmp != NULL && *tmp != '\0' ? tmp : "/tmp");
	assert_true(n > 0 && (size_t)n < pathsz);
	fd = mkstemp(path);
	if (fd < 0)
		fail_msg("mkstemp %s: %s", path, strerror(errno));
	if (write(fd, text, len) != (ssize_t)len)
		fail_msg("write %s: %s", path, strerror(errno));
	assert_int_equal(close(fd), 0);
}

/* conf_load on a temporary file holding text; the file is removed again. */
static enum kg_err
load_text(const char *text, struct conf *c, char *err, size_t errsz, char *path, size_t pathsz)
{
	enum kg_err rc;

	write_temp(path, pathsz, text);
	err[0] = '\0';
	rc = conf_load(path, c, err, errsz);
	(void)unlink(path);
	return rc;
}

static void
test_defaults(void **state)
{
	struct conf c;
	char err[512] = "";

	(void)state;
	assert_int_equal(conf_load(NULL, &c, err, sizeof(err)), KG_OK);
	assert_string_equal(c.listen, "/run/keygate/keygate.sock");
	assert_int_equal(c.listen_mode, 0660);
	assert_string_equal(c.listen_group, "");
	assert_int_equal(c.backlog, 128);
	assert_string_equal(c.user, "");
	assert_int_equal(c.workers, 4);
	assert_int_equal(c.max_requests, 100000);
	assert_int_equal(c.request_timeout, 30);
	assert_int_equal(c.shutdown_timeout, 30);
	assert_int_equal(c.slow_request, 1000);
	assert_string_equal(c.status_allow, "127.0.0.0/8 ::1");
	assert_string_equal(c.base_path, "/api");
	assert_int_equal(c.max_body, 16384);
	assert_string_equal(c.log_target, "stderr");
	assert_string_equal(c.log_level, "info");
	assert_string_equal(c.database, "dbname=keygate");
	assert_int_equal(c.db_connect_timeout, 5);
	assert_int_equal(c.statement_timeout, 5000);
	assert_int_equal(c.db_retry_max, 5);
	assert_non_null(strstr(c.migrations_dir, "migrations"));
	assert_int_equal(c.password_min_length, 15);
	assert_non_null(strstr(c.common_passwords, "common-passwords.txt"));
	assert_int_equal(c.password_min_guesses_log10, 8);
	assert_int_equal(c.argon2_memory, 19456);
	assert_int_equal(c.argon2_iterations, 2);
	assert_int_equal(c.argon2_parallelism, 1);
	assert_int_equal(c.hash_concurrency, 0);
	assert_int_equal(c.max_tokens_per_user, 10);
	assert_int_equal(c.token_idle_timeout, 30 * 60);
	assert_int_equal(c.token_lifetime, 12 * 3600);
	assert_int_equal(c.remember_idle_timeout, 7 * 86400);
	assert_int_equal(c.remember_lifetime, 30 * 86400);
	assert_int_equal(c.touch_interval, 60);
	assert_int_equal(c.token_cache_size, 16384);
	assert_int_equal(c.token_cache_ttl, 120);
	assert_int_equal(c.login_max_failures, 5);
	assert_int_equal(c.login_failure_window, 15 * 60);
	assert_int_equal(c.login_delay, 30);
	assert_int_equal(c.login_max_delay, 15 * 60);
	assert_int_equal(c.login_max_per_address, 100);
	assert_int_equal(c.join_max_per_address, 20);
	assert_int_equal(c.throttle_ipv6_prefix, 64);
	assert_string_equal(c.trusted_proxies, "");
	assert_int_equal(c.audit_retention, 90 * 86400);
	assert_string_equal(c.cookie_name, "keygate_token");
	assert_int_equal(c.cookie_secure, 1);
	assert_string_equal(c.allowed_origins, "");
}

static void
test_file_valid(void **state)
{
	static const char text[] =
	    "; keygate test configuration\n"
	    "# comments of both kinds\n"
	    "\n"
	    "[keygate]\n"
	    "listen = 127.0.0.1:9000\n"
	    "listen_mode = 0600\n"
	    "listen_group = www-data\n"
	    "workers = 8\n"
	    "max_requests = 0\n"
	    "request_timeout = 2m\n"
	    "status_allow = 10.0.0.0/8, ::1\n"
	    "base_path = /auth/v1\n"
	    "max_body = 1024\n"
	    "log_target = syslog\n"
	    "log_level = debug\n"
	    "database = host=db.example dbname=kg user=keygate\n"
	    "statement_timeout   =   250   \n"
	    "token_idle_timeout = 15m\n"
	    "token_lifetime = 2h\n"
	    "remember_idle_timeout = 1d\n"
	    "remember_lifetime = 90d\n"
	    "touch_interval = 0\n"
	    "token_cache_size = 0\n"
	    "login_delay = 45s\n"
	    "login_max_delay = 1h\n"
	    "cookie_name = kg\n"
	    "cookie_secure = 0\n"
	    "allowed_origins = https://app.example https://admin.example\n"
	    "audit_retention = 1d\n";
	struct conf c;
	char err[512], path[256];

	(void)state;
	if (load_text(text, &c, err, sizeof(err), path, sizeof(path)) != KG_OK)
		fail_msg("conf_load: %s", err);
	assert_string_equal(c.listen, "127.0.0.1:9000");
	assert_int_equal(c.listen_mode, 0600);
	assert_string_equal(c.listen_group, "www-data");
	assert_int_equal(c.workers, 8);
	assert_int_equal(c.max_requests, 0);
	assert_int_equal(c.request_timeout, 120);
	assert_string_equal(c.status_allow, "10.0.0.0/8, ::1");
	assert_string_equal(c.base_path, "/auth/v1");
	assert_int_equal(c.max_body, 1024);
	assert_string_equal(c.log_target, "syslog");
	assert_string_equal(c.log_level, "debug");
	assert_string_equal(c.database, "host=db.example dbname=kg user=keygate");
	assert_int_equal(c.statement_timeout, 250);
	assert_int_equal(c.token_idle_timeout, 900);
	assert_int_equal(c.token_lifetime, 7200);
	assert_int_equal(c.remember_idle_timeout, 86400);
	assert_int_equal(c.remember_lifetime, 90 * 86400);
	assert_int_equal(c.touch_interval, 0);
	assert_int_equal(c.token_cache_size, 0);
	assert_int_equal(c.login_delay, 45);
	assert_int_equal(c.login_max_delay, 3600);
	assert_string_equal(c.cookie_name, "kg");
	assert_int_equal(c.cookie_secure, 0);
	assert_string_equal(c.allowed_origins, "https://app.example https://admin.example");
	assert_int_equal(c.audit_retention, 86400);
	/* keys not in the file keep their defaults */
	assert_int_equal(c.backlog, 128);
	assert_int_equal(c.argon2_memory, 19456);
	assert_string_equal(c.trusted_proxies, "");
}

static void
test_file_no_section(void **state)
{
	struct conf c;
	char err[512], path[256];

	(void)state;
	/* Keys before any section header are fine too. */
	if (load_text("workers = 2\nlog_level = warn\n", &c, err, sizeof(err), path,
	    sizeof(path)) != KG_OK)
		fail_msg("conf_load: %s", err);
	assert_int_equal(c.workers, 2);
	assert_string_equal(c.log_level, "warn");
	/* An empty file is the defaults. */
	if (load_text("", &c, err, sizeof(err), path, sizeof(path)) != KG_OK)
		fail_msg("conf_load: %s", err);
	assert_int_equal(c.workers, 4);
	/* CRLF line ends. */
	if (load_text("[keygate]\r\nworkers = 5\r\nlog_level = error\r\n", &c, err, sizeof(err),
	    path, sizeof(path)) != KG_OK)
		fail_msg("conf_load: %s", err);
	assert_int_equal(c.workers, 5);
	assert_string_equal(c.log_level, "error");
	/* The last of two settings wins. */
	if (load_text("[keygate]\nworkers = 2\nworkers = 3\n", &c, err, sizeof(err), path,
	    sizeof(path)) != KG_OK)
		fail_msg("conf_load: %s", err);
	assert_int_equal(c.workers, 3);
}

/* Files with one error each: the line it is on and words the message must contain. */
static const struct {
	const char *text;
	int line;
	const char *what;
} bad_files[] = {
	{ "nosuchkey = 1\n", 1, "nosuchkey: unknown key" },
	{ "[keygate]\nworkers = 4\nnosuchkey = 1\nbacklog = 5\n", 3, "nosuchkey: unknown key" },
	{ "# comment\n\n; comment\n[keygate]\n\n\nWorkers = 4\n", 7, "unknown key" },
	{ "[other]\nworkers = 4\n", 2, "other: unknown section" },
	{ "[keygate]\nworkers = 4\n[pgbouncer]\nbacklog = 5\n", 4, "unknown section" },
	/* bad integers */
	{ "workers = four\n", 1, "workers: not a number" },
	{ "[keygate]\nworkers = 4x\n", 2, "workers: not a number" },
	{ "[keygate]\n\nworkers =\n", 3, "workers: not a number" },
	{ "workers = 4.5\n", 1, "not a number" },
	{ "workers = 0x10\n", 1, "not a number" },
	{ "max_requests = 99999999999999999999999\n", 1, "max_requests: not a number" },
	{ "listen_mode = 0999\n", 1, "listen_mode: not a number" },
	/* out of range */
	{ "workers = 0\n", 1, "workers: out of range" },
	{ "[keygate]\nworkers = 257\n", 2, "workers: out of range" },
	{ "workers = -1\n", 1, "workers: out of range" },
	{ "workers = 4294967300\n", 1, "workers: out of range" },
	{ "max_body = 255\n", 1, "max_body: out of range" },
	{ "max_body = 1048577\n", 1, "max_body: out of range" },
	{ "listen_mode = 01000\n", 1, "listen_mode: out of range" },
	{ "cookie_secure = 2\n", 1, "cookie_secure: out of range" },
	{ "password_min_length = 7\n", 1, "password_min_length: out of range" },
	{ "password_min_guesses_log10 = 41\n", 1, "password_min_guesses_log10: out of range" },
	{ "password_min_guesses_log10 = -1\n", 1, "password_min_guesses_log10: out of range" },
	{ "audit_retention = 1h\n", 1, "audit_retention: out of range" },
	{ "token_lifetime = 400d\n", 1, "token_lifetime: out of range" },
	{ "request_timeout = 0\n", 1, "request_timeout: out of range" },
	/* bad durations */
	{ "[keygate]\ntoken_lifetime = 12x\n", 2, "token_lifetime: not a duration" },
	{ "token_lifetime = -1\n", 1, "token_lifetime: not a duration" },
	{ "token_lifetime = 1mm\n", 1, "token_lifetime: not a duration" },
	{ "token_lifetime = h\n", 1, "token_lifetime: not a duration" },
	{ "token_lifetime =\n", 1, "token_lifetime: not a duration" },
	{ "token_lifetime = 1.5h\n", 1, "token_lifetime: not a duration" },
	{ "token_lifetime = 12 h\n", 1, "token_lifetime: not a duration" },
	/* bad choices */
	{ "log_level = verbose\n", 1, "log_level: not one of the allowed values" },
	{ "[keygate]\n\nlog_target = file\n", 3, "log_target: not one of the allowed values" },
	{ "log_level = INFO\n", 1, "not one of the allowed values" },
	{ "log_level = inf\n", 1, "not one of the allowed values" },
	{ "log_level = info debug\n", 1, "not one of the allowed values" },
	{ "log_level =\n", 1, "not one of the allowed values" },
	/* strings too long for their buffers */
	{ "cookie_name = aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n", 1,
	  "cookie_name: value too long" },
	/* not INI */
	{ "[keygate]\nworkers 4\n", 2, "syntax error" },
	{ "[keygate\nworkers = 4\n", 1, "syntax error" },
	/* the first error is the one reported */
	{ "[keygate]\nworkers = 4\nworkers = zero\nlog_level = loud\nbogus = 1\n", 3,
	  "workers: not a number" },
	{ "[keygate]\nbogus = 1\nworkers = zero\n", 2, "bogus: unknown key" },
};

static void
test_file_errors(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < NELEM(bad_files); i++) {
		struct conf c;
		char err[512], path[256], prefix[300];
		enum kg_err rc = load_text(bad_files[i].text, &c, err, sizeof(err), path, sizeof(path));

		(void)snprintf(prefix, sizeof(prefix), "%s:%d: ", path, bad_files[i].line);
		if (rc != KG_ECONFIG)
			fail_msg("file %zu (%s): rc %d, want KG_ECONFIG", i, bad_files[i].text, (int)rc);
		if (strncmp(err, prefix, strlen(prefix)) != 0)
			fail_msg("file %zu: message \"%s\" does not start with \"%s\"", i, err, prefix);
		if (strstr(err, bad_files[i].what) == NULL)
			fail_msg("file %zu: message \"%s\" does not say \"%s\"", i, err, bad_files[i].what);
	}
}

/*
 * inih treats an indented line as a continuation of the previous value and
 * calls the handler again with the previous key: conf.c then silently
 * replaces that key's value with the whole indented line. An indented
 * "key = value" must either set key or be refused, never rewrite the key
 * above it.
 */
static void
test_indented_line(void **state)
{
	static const char text[] =
	    "[keygate]\n"
	    "database = dbname=keygate\n"
	    "  statement_timeout = 250\n";
	struct conf c;
	char err[512], path[256];
	enum kg_err rc;

	(void)state;
	rc = load_text(text, &c, err, sizeof(err), path, sizeof(path));
	if (rc == KG_OK && strcmp(c.database, "dbname=keygate") != 0)
		fail_msg("an indented line rewrote the key above it: database = \"%s\", "
		    "statement_timeout = %d", c.database, c.statement_timeout);
	if (rc == KG_OK)
		assert_int_equal(c.statement_timeout, 250);
	else
		assert_non_null(strstr(err, ":3: "));
}

/*
 * Debian's libinih reads lines into a 200-byte buffer and would split a
 * longer line, turning its tail into a bogus key, a syntax error on a line
 * that does not exist, or (when the tail starts with a blank) a silent
 * rewrite of the value. conf_load refuses such lines up front, naming the
 * line; long connection strings belong in a pg_service.conf service.
 */
static void
check_long_line(const char *what, const char *text, int line)
{
	char err[512], path[256], want[300];
	struct conf c;
	enum kg_err rc;

	rc = load_text(text, &c, err, sizeof(err), path, sizeof(path));
	(void)snprintf(want, sizeof(want), "%s:%d: line longer than", path, line);
	if (rc != KG_ECONFIG || strncmp(err, want, strlen(want)) != 0)
		fail_msg("%s: rc %d \"%s\", want KG_ECONFIG \"%s...\"", what, (int)rc,
		    rc == KG_OK ? "(loaded)" : err, want);
}

static void
test_long_lines(void **state)
{
	char text[4096], value[2048];
	size_t used = 0;
	int i;

	(void)state;
	(void)snprintf(text, sizeof(text), "# %0300d\nworkers = 2\n", 0);
	check_long_line("a 302-character comment", text, 1);

	value[0] = '\0';
	for (i = 0; i < 40; i++) {
		int n = snprintf(value + used, sizeof(value) - used, "%s10.0.%d.0/24", i ? ", " : "", i);

		assert_true(n > 0 && (size_t)n < sizeof(value) - used);
		used += (size_t)n;
	}
	(void)snprintf(text, sizeof(text), "[keygate]\nstatus_allow = %s\nworkers = 2\n", value);
	check_long_line("a 560-character status_allow", text, 2);

	(void)snprintf(text, sizeof(text), "database = %s\n",
	    "host=db.example.internal port=5432 dbname=keygate user=keygate sslmode=verify-full "
	    "sslrootcert=/etc/ssl/certs/internal-ca.pem sslcert=/etc/keygate/client.crt "
	    "sslkey=/etc/keygate/client.key connect_timeout=5 target_session_attrs=read-write");
	check_long_line("a 250-character database line", text, 1);

	/* Just under the limit still loads as written. */
	memset(value, 'a', 150);
	value[150] = '\0';
	(void)snprintf(text, sizeof(text), "database = dbname=%s\n", value);
	{
		struct conf c;
		char err[512], path[256];

		assert_int_equal(load_text(text, &c, err, sizeof(err), path, sizeof(path)), KG_OK);
		assert_int_equal(strlen(c.database), 157);
	}
}

/*
 * `keygate check-config` is conf_load, and conf_load is where the address
 * lists and origins are parsed, once, for everyone: a bad one is refused
 * here with its line, so check-config never calls a broken file valid.
 */
static const struct {
	const char *text;
	int line;
	const char *key;
} bad_lists[] = {
	{ "[keygate]\nstatus_allow = localhost\n", 2, "status_allow" },
	{ "status_allow = 10.0.0.0/33\n", 1, "status_allow" },
	{ "workers = 2\ntrusted_proxies = 10.0.0.1, proxy.example\n", 2, "trusted_proxies" },
	{ "allowed_origins = app.example\n", 1, "allowed_origins" },
};

static void
test_address_lists_validated(void **state)
{
	size_t i;
	int bad = 0;

	(void)state;
	for (i = 0; i < NELEM(bad_lists); i++) {
		struct conf c;
		char err[512], path[256], prefix[300];
		enum kg_err rc = load_text(bad_lists[i].text, &c, err, sizeof(err), path, sizeof(path));

		(void)snprintf(prefix, sizeof(prefix), "%s:%d: %s", path, bad_lists[i].line,
		    bad_lists[i].key);
		if (rc != KG_ECONFIG || strncmp(err, prefix, strlen(prefix)) != 0) {
			print_error("bad %s on line %d: rc %d \"%s\", want KG_ECONFIG \"%s...\"\n",
			    bad_lists[i].key, bad_lists[i].line, (int)rc, rc == KG_OK ? "" : err, prefix);
			bad++;
		}
	}
	if (bad > 0)
		fail_msg("%d of %zu invalid address lists or origins accepted", bad,
		    NELEM(bad_lists));
}

/* The lists come parsed with the configuration, from each source that sets them. */
static void
test_lists_parsed(void **state)
{
	struct conf c;
	char err[512], path[256];

	(void)state;
	assert_int_equal(conf_load(NULL, &c, err, sizeof(err)), KG_OK);
	assert_int_equal(c.status_allow_list.n, 2);
	assert_true(addr_list_match(&c.status_allow_list, "127.0.0.1"));
	assert_true(addr_list_match(&c.status_allow_list, "::1"));
	assert_false(addr_list_match(&c.status_allow_list, "192.0.2.1"));
	assert_int_equal(c.trusted_proxies_list.n, 0);
	assert_int_equal(c.origins.n, 0);

	if (load_text("status_allow = 10.0.0.0/8\ntrusted_proxies = 192.0.2.1, 2001:db8::/32\n"
	              "allowed_origins = https://app.example http://admin.example:8080/\n",
	        &c, err, sizeof(err), path, sizeof(path)) != KG_OK)
		fail_msg("conf_load: %s", err);
	assert_int_equal(c.status_allow_list.n, 1);
	assert_true(addr_list_match(&c.status_allow_list, "10.1.2.3"));
	assert_false(addr_list_match(&c.status_allow_list, "127.0.0.1"));
	assert_int_equal(c.trusted_proxies_list.n, 2);
	assert_true(addr_list_match(&c.trusted_proxies_list, "2001:db8:1::5"));
	assert_int_equal(c.origins.n, 2);
	assert_string_equal(c.origins.v[0], "https://app.example");
	assert_string_equal(c.origins.v[1], "http://admin.example:8080");

	/* The environment replaces the file's list, parsed list and all. */
	assert_int_equal(setenv("KEYGATE_STATUS_ALLOW", "192.0.2.0/24", 1), 0);
	assert_int_equal(setenv("KEYGATE_ALLOWED_ORIGINS", "", 1), 0);
	if (load_text("status_allow = 10.0.0.0/8\nallowed_origins = https://app.example\n", &c,
	        err, sizeof(err), path, sizeof(path)) != KG_OK)
		fail_msg("conf_load: %s", err);
	assert_int_equal(c.status_allow_list.n, 1);
	assert_true(addr_list_match(&c.status_allow_list, "192.0.2.9"));
	assert_false(addr_list_match(&c.status_allow_list, "10.1.2.3"));
	assert_int_equal(c.origins.n, 0);
}

/*
 * A reload keeps what only a restart changes: exactly the keys the table
 * marks RESTART (test_docs.py checks that the docs mark the same ones), and
 * names those the new file had changed.
 */
static void
test_keep_restart_keys(void **state)
{
	struct conf old, next;
	char err[512], path[256], changed[256];

	(void)state;
	assert_int_equal(conf_load(NULL, &old, err, sizeof(err)), KG_OK);
	if (load_text("listen = /tmp/elsewhere.sock\nlisten_mode = 0600\nlisten_group = www-data\n"
	              "backlog = 64\nuser = nobody\nhash_concurrency = 2\nworkers = 7\n"
	              "status_allow = 10.0.0.0/8\ntoken_cache_size = 0\n",
	        &next, err, sizeof(err), path, sizeof(path)) != KG_OK)
		fail_msg("conf_load: %s", err);
	assert_int_equal(conf_keep_restart_keys(&old, &next, changed, sizeof(changed)), 6);
	assert_string_equal(changed,
	    "listen, listen_mode, listen_group, backlog, user, hash_concurrency");
	assert_string_equal(next.listen, old.listen);
	assert_int_equal(next.listen_mode, old.listen_mode);
	assert_string_equal(next.listen_group, old.listen_group);
	assert_int_equal(next.backlog, old.backlog);
	assert_string_equal(next.user, old.user);
	assert_int_equal(next.hash_concurrency, old.hash_concurrency);
	/* The rest is the new file's. */
	assert_int_equal(next.workers, 7);
	assert_int_equal(next.token_cache_size, 0);
	assert_string_equal(next.status_allow, "10.0.0.0/8");
	assert_true(addr_list_match(&next.status_allow_list, "10.1.2.3"));
	assert_false(addr_list_match(&next.status_allow_list, "127.0.0.1"));

	/* Now nothing differs. */
	strcpy(changed, "junk");
	assert_int_equal(conf_keep_restart_keys(&old, &next, changed, sizeof(changed)), 0);
	assert_string_equal(changed, "");

	/* Bytes after a string's NUL are no change. */
	assert_int_equal(conf_load(NULL, &next, err, sizeof(err)), KG_OK);
	memset(next.user + 1, 'x', sizeof(next.user) - 1);
	next.user[0] = '\0';
	assert_int_equal(conf_keep_restart_keys(&old, &next, changed, sizeof(changed)), 0);

	/* A small buffer holds whole names only; the count is still all of them. */
	next.backlog = 1;
	next.hash_concurrency = 1;
	(void)snprintf(next.listen, sizeof(next.listen), "%s", "/tmp/x.sock");
	assert_int_equal(conf_keep_restart_keys(&old, &next, changed, 16), 3);
	assert_string_equal(changed, "listen, backlog");
	next.backlog = 1;
	next.hash_concurrency = 1;
	(void)snprintf(next.listen, sizeof(next.listen), "%s", "/tmp/x.sock");
	assert_int_equal(conf_keep_restart_keys(&old, &next, changed, 15), 3);
	assert_string_equal(changed, "listen");
	assert_int_equal(next.backlog, old.backlog);
}

static void
test_file_missing(void **state)
{
	struct conf c;
	char err[512] = "";

	(void)state;
	assert_int_equal(conf_load("/nonexistent/keygate-test/keygate.conf", &c, err, sizeof(err)),
	    KG_ECONFIG);
	assert_non_null(strstr(err, "/nonexistent/keygate-test/keygate.conf"));
	assert_non_null(strstr(err, "cannot open"));
}

/* Cross-key checks: each file is individually valid key by key. */
static const struct {
	const char *text;
	const char *what;
} bad_combinations[] = {
	{ "token_idle_timeout = 2h\ntoken_lifetime = 1h\n", "idle" },
	{ "token_idle_timeout = 12h1\n", "not a duration" },
	{ "token_lifetime = 10m\n", "idle" },      /* default idle timeout is 30m */
	{ "remember_idle_timeout = 31d\n", "idle" },
	{ "remember_lifetime = 1d\n", "idle" },
	{ "login_delay = 1h\nlogin_max_delay = 10m\n", "login_delay" },
	{ "base_path = api\n", "base_path" },
	{ "listen =\n", "listen" },
};

static void
test_cross_checks(void **state)
{
	size_t i;
	struct conf c;
	char err[512], path[256];

	(void)state;
	for (i = 0; i < NELEM(bad_combinations); i++) {
		enum kg_err rc = load_text(bad_combinations[i].text, &c, err, sizeof(err), path,
		    sizeof(path));

		if (rc != KG_ECONFIG || strstr(err, bad_combinations[i].what) == NULL)
			fail_msg("\"%s\": rc %d message \"%s\", want KG_ECONFIG saying \"%s\"",
			    bad_combinations[i].text, (int)rc, err, bad_combinations[i].what);
	}
	/* Equal is fine; so is an empty base_path. */
	if (load_text("token_idle_timeout = 1h\ntoken_lifetime = 1h\nremember_idle_timeout = 5d\n"
	    "remember_lifetime = 5d\nlogin_delay = 5m\nlogin_max_delay = 5m\nbase_path =\n", &c, err,
	    sizeof(err), path, sizeof(path)) != KG_OK)
		fail_msg("conf_load: %s", err);
	assert_int_equal(c.token_idle_timeout, c.token_lifetime);
	assert_string_equal(c.base_path, "");
}

static void
test_env_override(void **state)
{
	struct conf c;
	char err[512], path[256];

	(void)state;
	assert_int_equal(setenv("KEYGATE_WORKERS", "3", 1), 0);
	assert_int_equal(setenv("KEYGATE_TOKEN_LIFETIME", "1d", 1), 0);
	assert_int_equal(setenv("KEYGATE_LOG_LEVEL", "error", 1), 0);
	assert_int_equal(setenv("KEYGATE_STATUS_ALLOW", "192.0.2.0/24", 1), 0);
	if (load_text("[keygate]\nworkers = 8\ntoken_lifetime = 2h\nbacklog = 64\n", &c, err,
	    sizeof(err), path, sizeof(path)) != KG_OK)
		fail_msg("conf_load: %s", err);
	assert_int_equal(c.workers, 3);             /* environment over file */
	assert_int_equal(c.token_lifetime, 86400);
	assert_string_equal(c.log_level, "error");  /* environment over default */
	assert_string_equal(c.status_allow, "192.0.2.0/24");
	assert_int_equal(c.backlog, 64);            /* file over default */

	/* Without a file too. */
	assert_int_equal(conf_load(NULL, &c, err, sizeof(err)), KG_OK);
	assert_int_equal(c.workers, 3);

	/* Gone again: back to the file. */
	assert_int_equal(unsetenv("KEYGATE_WORKERS"), 0);
	if (load_text("workers = 8\n", &c, err, sizeof(err), path, sizeof(path)) != KG_OK)
		fail_msg("conf_load: %s", err);
	assert_int_equal(c.workers, 8);

	/* Only the upper-case name counts. */
	assert_int_equal(setenv("KEYGATE_workers", "5", 1), 0);
	assert_int_equal(conf_load(NULL, &c, err, sizeof(err)), KG_OK);
	assert_int_equal(c.workers, 4);
	assert_int_equal(unsetenv("KEYGATE_workers"), 0);
}

static const struct {
	const char *name;
	const char *value;
	const char *what;
} bad_env[] = {
	{ "KEYGATE_WORKERS", "abc", "KEYGATE_WORKERS: not a number" },
	{ "KEYGATE_WORKERS", "", "KEYGATE_WORKERS: not a number" },
	{ "KEYGATE_WORKERS", " 4", "KEYGATE_WORKERS: not a number" },
	{ "KEYGATE_WORKERS", "1000", "KEYGATE_WORKERS: out of range" },
	{ "KEYGATE_TOKEN_LIFETIME", "forever", "KEYGATE_TOKEN_LIFETIME: not a duration" },
	{ "KEYGATE_LOG_TARGET", "file", "KEYGATE_LOG_TARGET: not one of the allowed values" },
	{ "KEYGATE_STATUS_ALLOW", "localhost", "KEYGATE_STATUS_ALLOW: not a list of addresses" },
	{ "KEYGATE_TRUSTED_PROXIES", "10.0.0.0/33", "KEYGATE_TRUSTED_PROXIES: not a list of addresses" },
	{ "KEYGATE_ALLOWED_ORIGINS", "app.example", "KEYGATE_ALLOWED_ORIGINS: not a list of http(s)" },
	/* an override can break a cross-key rule as well */
	{ "KEYGATE_TOKEN_IDLE_TIMEOUT", "13h", "idle" },
};

static void
test_env_errors(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < NELEM(bad_env); i++) {
		struct conf c;
		char err[512] = "";
		enum kg_err rc;

		assert_int_equal(setenv(bad_env[i].name, bad_env[i].value, 1), 0);
		rc = conf_load(NULL, &c, err, sizeof(err));
		assert_int_equal(unsetenv(bad_env[i].name), 0);
		if (rc != KG_ECONFIG || strstr(err, bad_env[i].what) == NULL)
			fail_msg("%s=\"%s\": rc %d message \"%s\", want KG_ECONFIG saying \"%s\"",
			    bad_env[i].name, bad_env[i].value, (int)rc, err, bad_env[i].what);
	}
}

static const struct {
	const char *s;
	long want;
} durations[] = {
	{ "90", 90 },
	{ "90s", 90 },
	{ "0", 0 },
	{ "0s", 0 },
	{ "1", 1 },
	{ "15m", 900 },
	{ "1m", 60 },
	{ "12h", 43200 },
	{ "1h", 3600 },
	{ "30d", 2592000 },
	{ "1d", 86400 },
	{ "007", 7 },
	{ "", -1 },
	{ "x", -1 },
	{ "5x", -1 },
	{ "-1", -1 },
	{ "-1s", -1 },
	{ "+1", -1 },
	{ "1mm", -1 },
	{ "1ms", -1 },
	{ "1hs", -1 },
	{ "s", -1 },
	{ "m", -1 },
	{ " 5", -1 },
	{ "5 ", -1 },
	{ "5 m", -1 },
	{ "5M", -1 },
	{ "5H", -1 },
	{ "5S", -1 },
	{ "1.5h", -1 },
	{ "1w", -1 },
	{ "1y", -1 },
	{ "0x10", -1 },
	{ "99999999999999999999", -1 },
	{ "9223372036854775807", 9223372036854775807L },
	{ "9223372036854775807s", 9223372036854775807L },
	{ "9223372036854775807m", -1 },
	{ "153722867280912931m", -1 },
	{ "106751991167300d", 106751991167300L * 86400 },
	{ "106751991167301d", -1 },
};

static void
test_parse_duration(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < NELEM(durations); i++) {
		long got = conf_parse_duration(durations[i].s);

		if (got != durations[i].want)
			fail_msg("conf_parse_duration(\"%s\") = %ld, want %ld", durations[i].s, got,
			    durations[i].want);
	}
	assert_int_equal(conf_parse_duration(NULL), -1);
}

/* The fields of struct conf that are configuration keys, by name. */
static const char *const known_keys[] = {
	"listen",
	"listen_mode",
	"listen_group",
	"backlog",
	"user",
	"workers",
	"max_requests",
	"request_timeout",
	"shutdown_timeout",
	"slow_request",
	"status_allow",
	"base_path",
	"max_body",
	"log_target",
	"log_level",
	"database",
	"db_connect_timeout",
	"statement_timeout",
	"db_retry_max",
	"migrations_dir",
	"password_min_length",
	"common_passwords",
	"password_min_guesses_log10",
	"argon2_memory",
	"argon2_iterations",
	"argon2_parallelism",
	"hash_concurrency",
	"max_tokens_per_user",
	"default_scopes",
	"max_api_tokens_per_user",
	"api_token_max_lifetime",
	"token_idle_timeout",
	"token_lifetime",
	"remember_idle_timeout",
	"remember_lifetime",
	"touch_interval",
	"token_cache_size",
	"token_cache_ttl",
	"login_max_failures",
	"login_failure_window",
	"login_delay",
	"login_max_delay",
	"login_max_per_address",
	"join_max_per_address",
	"throttle_ipv6_prefix",
	"trusted_proxies",
	"audit_retention",
	"cookie_name",
	"cookie_secure",
	"allowed_origins",
};

static void
test_keys(void **state)
{
	const char *const *keys = conf_keys();
	size_t n, i, j;

	(void)state;
	assert_non_null(keys);
	for (n = 0; keys[n] != NULL; n++)
		;
	assert_int_equal(n, NELEM(known_keys));
	/* Every key of struct conf is listed ... */
	for (i = 0; i < NELEM(known_keys); i++) {
		for (j = 0; j < n; j++)
			if (strcmp(keys[j], known_keys[i]) == 0)
				break;
		if (j == n)
			fail_msg("conf_keys() does not list %s", known_keys[i]);
	}
	/* ... once, in lower case ... */
	for (i = 0; i < n; i++) {
		const char *p;

		for (p = keys[i]; *p != '\0'; p++)
			if (!(islower((unsigned char)*p) || isdigit((unsigned char)*p) || *p == '_'))
				fail_msg("key %s: not a lower-case name", keys[i]);
		for (j = i + 1; j < n; j++)
			if (strcmp(keys[i], keys[j]) == 0)
				fail_msg("key %s listed twice", keys[i]);
	}
	/* ... and a stable answer. */
	assert_ptr_equal(conf_keys(), keys);
}

/* Every listed key is one the parser knows (a bad value is fine, an unknown key not). */
static void
test_keys_parse(void **state)
{
	const char *const *k;

	(void)state;
	for (k = conf_keys(); *k != NULL; k++) {
		struct conf c;
		char text[256], err[512], path[256];

		(void)snprintf(text, sizeof(text), "[keygate]\n%s = \x01\n", *k);
		(void)load_text(text, &c, err, sizeof(err), path, sizeof(path));
		if (strstr(err, "unknown key") != NULL)
			fail_msg("conf_keys() lists %s but the parser refuses it: %s", *k, err);
	}
}

/* conf_dump(c) into a fresh string (caller frees), through a temporary file. */
static char *
dump_to_string(const struct conf *c)
{
	char path[256];
	FILE *f;
	char *buf;
	long size;
	int fd, saved;

	write_temp(path, sizeof(path), "");
	fd = open(path, O_WRONLY | O_TRUNC);
	assert_true(fd >= 0);
	assert_int_equal(fflush(stdout), 0);
	saved = dup(STDOUT_FILENO);
	assert_true(saved >= 0);
	assert_true(dup2(fd, STDOUT_FILENO) >= 0);
	assert_int_equal(close(fd), 0);
	conf_dump(c);
	assert_int_equal(fflush(stdout), 0);
	assert_true(dup2(saved, STDOUT_FILENO) >= 0);
	assert_int_equal(close(saved), 0);

	f = fopen(path, "r");
	assert_non_null(f);
	assert_int_equal(fseek(f, 0, SEEK_END), 0);
	size = ftell(f);
	assert_true(size >= 0);
	rewind(f);
	buf = malloc((size_t)size + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)size, f), (size_t)size);
	buf[size] = '\0';
	assert_int_equal(fclose(f), 0);
	(void)unlink(path);
	return buf;
}

/* Does text have a line "key =" or "# key =" (blanks around both optional)? */
static int
documents_key(const char *text, const char *key)
{
	size_t klen = strlen(key);
	const char *line = text;

	while (*line != '\0') {
		const char *p = line, *nl = strchr(line, '\n');

		while (*p == ' ' || *p == '\t')
			p++;
		if (*p == '#') {
			p++;
			while (*p == ' ' || *p == '\t')
				p++;
		}
		if (strncmp(p, key, klen) == 0) {
			p += klen;
			while (*p == ' ' || *p == '\t')
				p++;
			if (*p == '=')
				return 1;
		}
		if (nl == NULL)
			break;
		line = nl + 1;
	}
	return 0;
}

/* conf_dump writes INI that conf_load reads back to the same configuration. */
static void
test_dump_round_trip(void **state)
{
	static const char *const texts[] = {
		"",
		"listen = 127.0.0.1:9000\nlisten_mode = 0\nworkers = 1\nlog_level = error\n"
		"token_idle_timeout = 1m\ntoken_lifetime = 2m\naudit_retention = 3650d\n"
		"status_allow = 10.0.0.0/8, 192.168.0.0/16\nuser = keygate\ncookie_secure = 0\n"
		"max_requests = 9223372036854775807\n",
	};
	size_t i;

	(void)state;
	for (i = 0; i < NELEM(texts); i++) {
		struct conf a, b;
		char err[512], path[256];
		const char *const *k;
		char *dump;

		if (load_text(texts[i], &a, err, sizeof(err), path, sizeof(path)) != KG_OK)
			fail_msg("conf_load: %s", err);
		dump = dump_to_string(&a);
		/* one line per key, in table order */
		for (k = conf_keys(); *k != NULL; k++)
			if (!documents_key(dump, *k))
				fail_msg("conf_dump does not print %s:\n%s", *k, dump);
		if (load_text(dump, &b, err, sizeof(err), path, sizeof(path)) != KG_OK)
			fail_msg("conf_load of conf_dump output: %s\n%s", err, dump);
		if (memcmp(&a, &b, sizeof(a)) != 0)
			fail_msg("conf_dump output does not load back to the same values:\n%s", dump);
		free(dump);
	}
}

/* The shipped conf/keygate.conf, read whole (caller frees); fails the test when absent. */
static char *
read_shipped(char *path, size_t pathsz)
{
	const char *srcdir = getenv("KG_SRCDIR");
	FILE *f;
	char *buf;
	size_t cap = 65536, len;
	int n;

	n = snprintf(path, pathsz, "%s/conf/keygate.conf",
	    srcdir != NULL && *srcdir != '\0' ? srcdir : ".");
	assert_true(n > 0 && (size_t)n < pathsz);
	f = fopen(path, "r");
	if (f == NULL)
		fail_msg("cannot open the shipped configuration %s: %s (KG_SRCDIR=%s). "
		    "conf/keygate.conf must exist and document every key of conf_keys()",
		    path, strerror(errno), srcdir != NULL ? srcdir : "(unset)");
	buf = malloc(cap);
	assert_non_null(buf);
	len = fread(buf, 1, cap - 1, f);
	buf[len] = '\0';
	assert_int_equal(ferror(f), 0);
	assert_true(feof(f));
	assert_int_equal(fclose(f), 0);
	return buf;
}

/* Every key appears in the shipped conf/keygate.conf as "key =" or "# key =". */
static void
test_shipped_conf_documents_every_key(void **state)
{
	char path[1024], missing[2048] = "";
	const char *const *k;
	char *text;
	size_t used = 0;
	int nmissing = 0;

	(void)state;
	text = read_shipped(path, sizeof(path));
	for (k = conf_keys(); *k != NULL; k++) {
		if (documents_key(text, *k))
			continue;
		nmissing++;
		if (used < sizeof(missing)) {
			int n = snprintf(missing + used, sizeof(missing) - used, " %s", *k);
			if (n > 0)
				used += (size_t)n;
		}
	}
	free(text);
	if (nmissing > 0)
		fail_msg("%s does not document %d key(s) (want a line \"key =\" or \"# key =\"):%s",
		    path, nmissing, missing);
}

/* The shipped file loads, and says what the defaults are. */
static void
test_shipped_conf_loads(void **state)
{
	struct conf def, shipped;
	char path[1024], err[1024];
	char *text;

	(void)state;
	text = read_shipped(path, sizeof(path));
	free(text);
	if (conf_load(path, &shipped, err, sizeof(err)) != KG_OK)
		fail_msg("the shipped %s does not load: %s", path, err);
	assert_int_equal(conf_load(NULL, &def, err, sizeof(err)), KG_OK);
	/* Paths under the data directory depend on --prefix. */
	memcpy(shipped.migrations_dir, def.migrations_dir, sizeof(def.migrations_dir));
	memcpy(shipped.common_passwords, def.common_passwords, sizeof(def.common_passwords));
	if (memcmp(&def, &shipped, sizeof(def)) != 0) {
		char *a = dump_to_string(&def), *b = dump_to_string(&shipped);
		const char *p = a, *q = b;

		/* Name the first key whose value differs. */
		while (*p != '\0' && *q != '\0') {
			size_t la = strcspn(p, "\n"), lb = strcspn(q, "\n");

			if (la != lb || strncmp(p, q, la) != 0) {
				print_error("default:  %.*s\nshipped:  %.*s\n", (int)la, p, (int)lb, q);
				break;
			}
			p += la + (p[la] != '\0');
			q += lb + (q[lb] != '\0');
		}
		free(a);
		free(b);
		fail_msg("%s does not list the compiled-in defaults", path);
	}
}

static void
test_conf_path(void **state)
{
	const char *p;

	(void)state;
	assert_string_equal(conf_path("/x/y.conf"), "/x/y.conf");
	assert_int_equal(setenv("KEYGATE_CONFIG", "/from/env.conf", 1), 0);
	assert_string_equal(conf_path("/x/y.conf"), "/x/y.conf");   /* -c wins */
	assert_string_equal(conf_path(NULL), "/from/env.conf");
	assert_int_equal(setenv("KEYGATE_CONFIG", "", 1), 0);
	p = conf_path(NULL);
	assert_non_null(p);
	assert_true(strlen(p) > strlen("/keygate/keygate.conf"));
	assert_string_equal(p + strlen(p) - strlen("/keygate/keygate.conf"), "/keygate/keygate.conf");
	assert_int_equal(unsetenv("KEYGATE_CONFIG"), 0);
	assert_string_equal(conf_path(NULL), p);
}

/* A long error message is cut to the buffer and still terminated. */
static void
test_small_error_buffer(void **state)
{
	struct conf c;
	char err[16];
	char path[256];

	(void)state;
	assert_int_equal(load_text("nosuchkey_with_a_long_name = 1\n", &c, err, sizeof(err), path,
	    sizeof(path)), KG_ECONFIG);
	assert_int_equal(strlen(err), sizeof(err) - 1);
	assert_int_equal(strncmp(err, path, sizeof(err) - 1), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_defaults, setup, teardown),
		cmocka_unit_test_setup_teardown(test_file_valid, setup, teardown),
		cmocka_unit_test_setup_teardown(test_file_no_section, setup, teardown),
		cmocka_unit_test_setup_teardown(test_file_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_indented_line, setup, teardown),
		cmocka_unit_test_setup_teardown(test_long_lines, setup, teardown),
		cmocka_unit_test_setup_teardown(test_address_lists_validated, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lists_parsed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_keep_restart_keys, setup, teardown),
		cmocka_unit_test_setup_teardown(test_file_missing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cross_checks, setup, teardown),
		cmocka_unit_test_setup_teardown(test_env_override, setup, teardown),
		cmocka_unit_test_setup_teardown(test_env_errors, setup, teardown),
		cmocka_unit_test(test_parse_duration),
		cmocka_unit_test(test_keys),
		cmocka_unit_test_setup_teardown(test_keys_parse, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dump_round_trip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_shipped_conf_documents_every_key, setup, teardown),
		cmocka_unit_test_setup_teardown(test_shipped_conf_loads, setup, teardown),
		cmocka_unit_test_setup_teardown(test_conf_path, setup, teardown),
		cmocka_unit_test_setup_teardown(test_small_error_buffer, setup, teardown),
	};

	return cmocka_run_group_tests_name("conf", tests, NULL, NULL);
}
