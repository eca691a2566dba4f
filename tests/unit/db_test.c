/*
 * Unit tests for the store's statements and the names it shares with the
 * schema, without a database: every statement a src/db*.c file defines is
 * registered (so that it is prepared), names are unique and parameter
 * counts match the SQL; the throttle scopes, audit events, NOTIFY channel
 * and unique constraints of the C code are those the migrations use; and
 * login_finish names only parameters keygate_login_finish has. The files
 * are read from the source tree (make check sets KG_SRCDIR).
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <ctype.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "db.h"
#include "db_conn.h"

/* A file of the source tree, read whole (caller frees); fails the test when absent. */
static char *
read_source(const char *rel)
{
	const char *srcdir = getenv("KG_SRCDIR");
	char path[1024];
	size_t cap = 1 << 20, len;
	FILE *f;
	char *buf;
	int n;

	n = snprintf(path, sizeof(path), "%s/%s",
	    srcdir != NULL && *srcdir != '\0' ? srcdir : ".", rel);
	assert_true(n > 0 && (size_t)n < sizeof(path));
	if ((f = fopen(path, "r")) == NULL)
		fail_msg("cannot open %s: %s (KG_SRCDIR=%s)", path, strerror(errno),
		    srcdir != NULL ? srcdir : "(unset)");
	buf = malloc(cap);
	assert_non_null(buf);
	len = fread(buf, 1, cap - 1, f);
	buf[len] = '\0';
	assert_true(feof(f));
	assert_int_equal(fclose(f), 0);
	return buf;
}

/* The registered statement called name, or NULL. */
static const struct db_stmt *
registered(const char *name, size_t len)
{
	const struct db_stmt *const *const *t;
	const struct db_stmt *const *s;

	for (t = db_registry; *t != NULL; t++)
		for (s = *t; *s != NULL; s++)
			if (strlen((*s)->name) == len && strncmp((*s)->name, name, len) == 0)
				return *s;
	return NULL;
}

/* The highest $n in sql (0: none). */
static int
highest_param(const char *sql)
{
	int max = 0;

	for (; *sql != '\0'; sql++)
		if (*sql == '$' && isdigit((unsigned char)sql[1])) {
			int n = atoi(sql + 1);

			if (n > max)
				max = n;
		}
	return max;
}

/* Each statement: a unique name, as many parameters as its SQL uses. */
static void
test_registry_names_and_params(void **state)
{
	const struct db_stmt *const *const *t;
	const struct db_stmt *const *s;
	size_t count = 0;

	(void)state;
	for (t = db_registry; *t != NULL; t++)
		for (s = *t; *s != NULL; s++) {
			count++;
			if (registered((*s)->name, strlen((*s)->name)) != *s)
				fail_msg("statement name %s is used twice", (*s)->name);
			if (highest_param((*s)->sql) != (*s)->nparams)
				fail_msg("%s: nparams %d, its SQL uses up to $%d", (*s)->name,
				    (*s)->nparams, highest_param((*s)->sql));
		}
	assert_true(count >= 20);
}

/*
 * Every "static const struct db_stmt NAME = { "name"," in the store's
 * files is in the registry: else it would never be prepared.
 */
static void
test_every_statement_is_registered(void **state)
{
	static const char *const files[] = { "src/db.c", "src/db_users.c", "src/db_tokens.c",
		"src/db_throttle.c", "src/db_audit.c" };
	static const char decl[] = "static const struct db_stmt ";
	size_t i, found = 0;

	(void)state;
	for (i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		char *text = read_source(files[i]);
		const char *p = text;

		while ((p = strstr(p, decl)) != NULL) {
			const char *q = strchr(p, '"'), *e;

			assert_non_null(q);
			e = strchr(q + 1, '"');
			assert_non_null(e);
			if (registered(q + 1, (size_t)(e - q - 1)) == NULL)
				fail_msg("%s: statement \"%.*s\" is not in its file's table",
				    files[i], (int)(e - q - 1), q + 1);
			found++;
			p = e;
		}
		free(text);
	}
	assert_true(found >= 20);
}

/* No statement spells a scope or event: they come in as parameters. */
static void
test_statements_take_names_as_parameters(void **state)
{
	const struct db_stmt *const *const *t;
	const struct db_stmt *const *s;
	char quoted[64];
	int i;

	(void)state;
	for (t = db_registry; *t != NULL; t++)
		for (s = *t; *s != NULL; s++) {
			for (i = 0; i < DB_SCOPE__MAX; i++) {
				(void)snprintf(quoted, sizeof(quoted), "'%s'", db_scope_name(i));
				if (strstr((*s)->sql, quoted) != NULL)
					fail_msg("%s spells the scope %s", (*s)->name, quoted);
			}
			for (i = 0; i < DB_EVENT__MAX; i++) {
				(void)snprintf(quoted, sizeof(quoted), "'%s'", db_event_name(i));
				if (strstr((*s)->sql, quoted) != NULL)
					fail_msg("%s spells the event %s", (*s)->name, quoted);
			}
		}
}

/*
 * The quoted words of the list after "CHECK (column IN (" in text, which
 * must be exactly the names of n for i < max.
 */
static void
check_in_list(const char *text, const char *column, const char *(*name)(int), int max)
{
	char head[64], word[64];
	const char *p, *end;
	int seen = 0, i;

	(void)snprintf(head, sizeof(head), "CHECK (%s IN (", column);
	p = strstr(text, head);
	if (p == NULL)
		fail_msg("0002: no %s", head);
	p += strlen(head);
	end = strstr(p, "))");
	assert_non_null(end);
	while ((p = strchr(p, '\'')) != NULL && p < end) {
		const char *q = strchr(p + 1, '\'');

		assert_non_null(q);
		assert_true((size_t)(q - p - 1) < sizeof(word));
		memcpy(word, p + 1, (size_t)(q - p - 1));
		word[q - p - 1] = '\0';
		for (i = 0; i < max && strcmp(name(i), word) != 0; i++)
			;
		if (i == max)
			fail_msg("0002: %s '%s' has no name in db.h", column, word);
		seen++;
		p = q + 1;
	}
	if (seen != max)
		fail_msg("0002: %s lists %d names, db.h %d", column, seen, max);
}

static const char *
scope_name(int i)
{
	return db_scope_name((enum db_scope)i);
}

static const char *
event_name(int i)
{
	return db_event_name((enum db_event)i);
}

/*
 * The CHECK constraints list exactly the names of db.h: the scopes' in
 * migration 0002, the events' as 0006 redefined it.
 */
static void
test_migration_lists_match(void **state)
{
	char *text = read_source("db/migrations/0002_throttle_and_audit.sql");

	(void)state;
	check_in_list(text, "scope", scope_name, DB_SCOPE__MAX);
	free(text);
	text = read_source("db/migrations/0006_granted_scopes_and_api_tokens.sql");
	check_in_list(text, "event", event_name, DB_EVENT__MAX);
	free(text);
}

/*
 * keygate_login_finish (0004) repeats three names in plpgsql: the scopes
 * it updates and the event it records, and the NOTIFY channel. They are
 * those of db.h; and every parameter login_finish names, it has.
 */
static void
test_login_finish_function_matches(void **state)
{
	char *text = read_source("db/migrations/0004_credential_generation.sql");
	const struct db_stmt *lf = registered("login_finish", strlen("login_finish"));
	char want[128];
	const char *p;

	(void)state;
	(void)snprintf(want, sizeof(want), "WHERE scope = '%s' AND subject = p_addr_subject",
	    db_scope_name(DB_SCOPE_ADDR));
	assert_non_null(strstr(text, want));
	(void)snprintf(want, sizeof(want), "WHERE scope = '%s' AND subject = p_subject",
	    db_scope_name(DB_SCOPE_USER));
	assert_non_null(strstr(text, want));
	(void)snprintf(want, sizeof(want), "VALUES ('%s', p_user_id",
	    db_event_name(DB_EVENT_LOGIN_OK));
	assert_non_null(strstr(text, want));
	(void)snprintf(want, sizeof(want), "pg_notify('%s', '')", DB_REVOKE_CHANNEL);
	assert_non_null(strstr(text, want));
	assert_non_null(lf);
	for (p = lf->sql; (p = strstr(p, "p_")) != NULL; p++) {
		size_t n = strcspn(p, " =");

		assert_true(n < sizeof(want) - 2);
		(void)snprintf(want, sizeof(want), "%.*s ", (int)n, p);
		if (strstr(text, want) == NULL)
			fail_msg("login_finish names %.*s, keygate_login_finish has none", (int)n, p);
		p += n;
	}
	free(text);
}

/* Every NOTIFY a statement sends goes to the channel db.c LISTENs on. */
static void
test_notify_channel(void **state)
{
	const struct db_stmt *const *const *t;
	const struct db_stmt *const *s;
	char want[64];
	int revoking = 0;

	(void)state;
	(void)snprintf(want, sizeof(want), "pg_notify('%s', '')", DB_REVOKE_CHANNEL);
	for (t = db_registry; *t != NULL; t++)
		for (s = *t; *s != NULL; s++) {
			const char *n = strstr((*s)->sql, "pg_notify(");

			if (n == NULL)
				continue;
			revoking++;
			if (strncmp(n, want, strlen(want)) != 0)
				fail_msg("%s notifies other than %s", (*s)->name, want);
		}
	assert_int_equal(revoking, 5);
}

/* The unique constraints db_user_insert tells apart exist under those names (0001). */
static void
test_conflicts(void **state)
{
	char *text = read_source("db/migrations/0001_users_and_api_keys.sql");

	(void)state;
	assert_int_equal(db_conflict_of("users_username_key"), DB_CONFLICT_USERNAME);
	assert_int_equal(db_conflict_of("users_email_key"), DB_CONFLICT_EMAIL);
	assert_int_equal(db_conflict_of("api_keys_pkey"), DB_CONFLICT_OTHER);
	assert_int_equal(db_conflict_of(NULL), DB_CONFLICT_OTHER);
	assert_non_null(strstr(text, "CREATE UNIQUE INDEX users_username_key ON users"));
	assert_non_null(strstr(text, "CREATE UNIQUE INDEX users_email_key ON users"));
	free(text);
}

/* Each name once, and none beyond the end. */
static void
test_name_tables(void **state)
{
	int i, j;

	(void)state;
	for (i = 0; i < DB_EVENT__MAX; i++) {
		assert_non_null(db_event_name(i));
		for (j = 0; j < i; j++)
			assert_string_not_equal(db_event_name(i), db_event_name(j));
	}
	for (i = 0; i < DB_SCOPE__MAX; i++) {
		assert_non_null(db_scope_name(i));
		for (j = 0; j < i; j++)
			assert_string_not_equal(db_scope_name(i), db_scope_name(j));
	}
	assert_null(db_event_name(DB_EVENT__MAX));
	assert_null(db_scope_name(DB_SCOPE__MAX));
	assert_string_equal(kg_strerror(KG_ECONFLICT), "conflict");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_registry_names_and_params),
		cmocka_unit_test(test_every_statement_is_registered),
		cmocka_unit_test(test_statements_take_names_as_parameters),
		cmocka_unit_test(test_migration_lists_match),
		cmocka_unit_test(test_login_finish_function_matches),
		cmocka_unit_test(test_notify_channel),
		cmocka_unit_test(test_conflicts),
		cmocka_unit_test(test_name_tables),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
