#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>

#include "conf.h"
#include "db.h"
#include "db_conn.h"
#include "log.h"

/*
 * db.c: the connection. Configure, connect with back-off, check the
 * schema, prepare every registered statement (db_conn.h), run them with
 * one retry on a broken connection, LISTEN and read notifications, close.
 * The statements themselves live with their aggregates: db_users.c,
 * db_tokens.c, db_throttle.c, db_audit.c; migrations in db_migrate.c.
 */

/* The connection's own statements. */
/* clang-format off */
static const struct db_stmt st_ping = { "ping", 0,
	"SELECT 1" };

/*
 * What this role may not do of what keygate does (PREPARE checks no
 * privilege: a statement fails only when it runs).
 */
static const struct db_stmt st_privileges = { "privileges", 0,
	"SELECT string_agg(what, ', ' ORDER BY what)\n"
	"FROM (\n"
	"    SELECT 'table ' || t AS what\n"
	"    FROM unnest(ARRAY['users', 'api_keys', 'throttle', 'auth_events']) t\n"
	"    WHERE NOT has_table_privilege(t, 'SELECT, INSERT, UPDATE, DELETE')\n"
	"    UNION ALL\n"
	"    SELECT 'function keygate_login_finish'\n"
	"    FROM pg_proc p\n"
	"    WHERE p.proname = 'keygate_login_finish'\n"
	"      AND NOT has_function_privilege(p.oid, 'EXECUTE')\n"
	") m" };

static const struct db_stmt st_set_timeout = { "set_timeout", 1,
	"SELECT set_config('statement_timeout', $1, false)" };
/* clang-format on */

const struct db_stmt *const db_conn_stmts[] = { &st_ping, &st_privileges, &st_set_timeout, NULL };

const struct db_stmt *const *const db_registry[] = { db_conn_stmts, db_users_stmts,
	db_tokens_stmts, db_throttle_stmts, db_audit_stmts, NULL };

static struct {
	PGconn *conn;
	char conninfo[CONF_STR_MAX];
	char connect_timeout[16];
	char statement_timeout[16];
	int retry_max_ms;
	int backoff_ms;          /* current reconnect back-off */
	long long next_try_ms;   /* monotonic time before which we do not retry */
	int prepare;             /* prepare the application statements */
	int schema_old;          /* the schema is older than DB_SCHEMA_VERSION (said once) */
	int no_role;             /* the last connection was refused: no such role */
	int listen;              /* LISTEN for revocations (db_listen_for_revocations) */
	long long listening_ms;  /* monotonic, when LISTEN took effect; LLONG_MAX without */
} db;

void
db_configure(const struct conf *c)
{
	(void)snprintf(db.conninfo, sizeof(db.conninfo), "%s", c->database);
	(void)snprintf(db.connect_timeout, sizeof(db.connect_timeout), "%d", c->db_connect_timeout);
	(void)snprintf(db.statement_timeout, sizeof(db.statement_timeout), "%d", c->statement_timeout);
	db.retry_max_ms = c->db_retry_max * 1000;
	db.prepare = 1;
}

void
db_close(void)
{
	if (db.conn != NULL)
		PQfinish(db.conn);
	db.conn = NULL;
}

/*
 * A libpq message as one log line (they span lines, and must never reach
 * clients): its lines joined, so that a hint such as "Is the server
 * running locally and accepting connections on that socket?" stays.
 */
void
db_log_error(const char *what, const char *msg)
{
	char line[512];
	size_t i, n = 0;

	for (i = 0; msg != NULL && msg[i] != '\0' && n + 1 < sizeof(line); i++) {
		char ch = msg[i] == '\t' ? ' ' : msg[i];

		if (ch == '\n') {
			if (msg[i + 1] == '\0')
				break;
			ch = ' ';
		}
		/* One space where a line break and its indent were. */
		if (ch == ' ' && n > 0 && line[n - 1] == ' ')
			continue;
		line[n++] = ch;
	}
	line[n] = '\0';
	log_warnx("database: %s: %s", what, line);
}

static void
db_schedule_retry(void)
{
	db.backoff_ms = db.backoff_ms == 0 ? 250 : db.backoff_ms * 2;
	if (db.backoff_ms > db.retry_max_ms)
		db.backoff_ms = db.retry_max_ms;
	db.next_try_ms = kg_monotonic_ms() + db.backoff_ms;
}

long
db_retry_after(void)
{
	long long left = db.next_try_ms - kg_monotonic_ms();

	if (left <= 1000)
		return 1;
	return (long)((left + 999) / 1000);
}

/*
 * The application's statements need the schema of DB_SCHEMA_VERSION:
 * without it every one of them fails to prepare, with a message about a
 * missing relation or function that says nothing of the cause. Say it.
 */
static enum kg_err
db_schema_check(void)
{
	PGresult *res = PQexec(db.conn, "SELECT coalesce(max(version), 'none') FROM schema_migrations");
	const char *state, *have = "none";
	enum kg_err err = KG_EDB;

	if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1)
		have = PQgetvalue(res, 0, 0);
	else {
		/* 42P01 undefined_table: keygate migrate never ran here. */
		state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
		if (state == NULL || strcmp(state, "42P01") != 0) {
			db_log_error("schema version", PQresultErrorMessage(res));
			goto out;
		}
	}
	if (strcmp(have, "none") != 0 && strcmp(have, DB_SCHEMA_VERSION) >= 0) {
		db.schema_old = 0;
		err = KG_OK;
		goto out;
	}
	if (!db.schema_old)
		log_warnx("database: schema not migrated: run `keygate migrate`"
		    " (the database is at %s, this keygate needs %s)", have, DB_SCHEMA_VERSION);
	db.schema_old = 1;
out:
	PQclear(res);
	return err;
}

int
db_schema_missing(void)
{
	return db.schema_old;
}

int
db_role_missing(void)
{
	return db.no_role;
}

/* Prepare every registered statement on the new connection. */
static enum kg_err
db_prepare_all(void)
{
	const struct db_stmt *const *const *t;
	const struct db_stmt *const *s;

	for (t = db_registry; *t != NULL; t++)
		for (s = *t; *s != NULL; s++) {
			PGresult *res =
			    PQprepare(db.conn, (*s)->name, (*s)->sql, (*s)->nparams, NULL);
			int ok = PQresultStatus(res) == PGRES_COMMAND_OK;

			if (!ok)
				db_log_error((*s)->name, PQresultErrorMessage(res));
			PQclear(res);
			if (!ok)
				return KG_EDB;
		}
	return KG_OK;
}

static enum kg_err
db_connect(void)
{
	const char *const keys[] = { "application_name", "connect_timeout", "dbname", NULL };
	const char *const vals[] = { "keygate", db.connect_timeout, db.conninfo, NULL };
	const char *params[1];
	PGresult *res = NULL;
	enum kg_err err = KG_EDB;

	db_close();
	/* The conninfo comes last so that what the admin wrote wins. */
	db.conn = PQconnectdbParams(keys, vals, 1);
	if (db.conn == NULL) {
		err = KG_ENOMEM;
		goto out;
	}
	if (PQstatus(db.conn) != CONNECTION_OK) {
		const char *m = PQerrorMessage(db.conn);

		db_log_error("connect", m);
		/* 'FATAL:  role "root" does not exist': the command line run as the wrong user. */
		db.no_role = strstr(m, "role \"") != NULL && strstr(m, "\" does not exist") != NULL;
		goto out;
	}
	db.no_role = 0;
	if (!db.prepare) {
		err = KG_OK;
		goto out;
	}
	if ((err = db_schema_check()) != KG_OK)
		goto out;
	if ((err = db_prepare_all()) != KG_OK)
		goto out;
	err = KG_EDB;
	/* Learn of sessions ended by other workers, hosts and the admin command line. */
	if (db.listen) {
		res = PQexec(db.conn, "LISTEN " DB_REVOKE_CHANNEL);
		if (PQresultStatus(res) != PGRES_COMMAND_OK) {
			db_log_error("listen", PQresultErrorMessage(res));
			goto out;
		}
		PQclear(res);
	}
	params[0] = db.statement_timeout;
	res = PQexecPrepared(db.conn, st_set_timeout.name, 1, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		db_log_error("statement_timeout", PQresultErrorMessage(res));
		goto out;
	}
	err = KG_OK;
out:
	PQclear(res);
	if (err != KG_OK) {
		db_close();
		db_schedule_retry();
	} else {
		if (db.backoff_ms != 0)
			log_info("database: connected");
		db.backoff_ms = 0;
		db.next_try_ms = 0;
		db.listening_ms = db.listen ? kg_monotonic_ms() : LLONG_MAX;
	}
	return err;
}

enum kg_err
db_connect_bare(void)
{
	db.prepare = 0;
	return db_connect();
}

PGconn *
db_connection(void)
{
	return db.conn;
}

void
db_listen_for_revocations(int on)
{
	db.listen = on;
}

enum db_revocations
db_revocations_read(int read_socket)
{
	PGnotify *n;
	int any = 0, i;

	if (db.conn == NULL || PQstatus(db.conn) != CONNECTION_OK)
		return DB_REVOCATIONS_UNKNOWN;
	/*
	 * Read only what has arrived (poll with no timeout): notifications, or
	 * the server going away, which must end trust in the cache too.
	 */
	for (i = 0; read_socket && i < 8; i++) {
		struct pollfd p = { PQsocket(db.conn), POLLIN, 0 };

		if (poll(&p, 1, 0) <= 0)
			break;
		if (!PQconsumeInput(db.conn) || PQstatus(db.conn) != CONNECTION_OK)
			return DB_REVOCATIONS_UNKNOWN;
	}
	while ((n = PQnotifies(db.conn)) != NULL) {
		any = 1;
		PQfreemem(n);
	}
	return any ? DB_REVOCATIONS_SOME : DB_REVOCATIONS_NONE;
}

long long
db_listening_since(void)
{
	if (db.conn == NULL || PQstatus(db.conn) != CONNECTION_OK)
		return LLONG_MAX;
	return db.listening_ms;
}

enum kg_err
db_ready(void)
{
	if (db.conn != NULL && PQstatus(db.conn) == CONNECTION_OK)
		return KG_OK;
	if (db.conn != NULL) {
		db_close();
		db.next_try_ms = 0;
	}
	if (kg_monotonic_ms() < db.next_try_ms)
		return KG_EDB;
	return db_connect();
}

/* The unique constraints a statement may run into, by name (migration 0001). */
static const char *const db_conflict_names[DB_CONFLICT__MAX] = {
	[DB_CONFLICT_USERNAME] = "users_username_key",
	[DB_CONFLICT_EMAIL] = "users_email_key",
};

enum db_conflict
db_conflict_of(const char *constraint)
{
	int i;

	for (i = 0; i < DB_CONFLICT__MAX; i++)
		if (constraint != NULL && db_conflict_names[i] != NULL &&
		    strcmp(constraint, db_conflict_names[i]) == 0)
			return (enum db_conflict)i;
	return DB_CONFLICT_OTHER;
}

enum kg_err
db_exec(const struct db_stmt *s, const char *const *params, enum db_answer want, PGresult **out,
    enum db_conflict *conflict)
{
	PGresult *res = NULL;
	enum kg_err err = KG_EDB;
	int attempt;

	*out = NULL;
	for (attempt = 0; attempt < 2; attempt++) {
		int was_up = db.conn != NULL;
		ExecStatusType st;
		const char *state;

		if ((err = db_ready()) != KG_OK)
			return err;
		res = PQexecPrepared(db.conn, s->name, s->nparams, params, NULL, NULL, 0);
		st = PQresultStatus(res);
		if (st == (want == DB_ROWS ? PGRES_TUPLES_OK : PGRES_COMMAND_OK)) {
			*out = res;
			return KG_OK;
		}
		if (PQstatus(db.conn) == CONNECTION_BAD) {
			db_log_error(s->name, PQerrorMessage(db.conn));
			PQclear(res);
			res = NULL;
			db_close();
			db.next_try_ms = 0;
			if (was_up && attempt == 0)
				continue;
			db_schedule_retry();
			return KG_EDB;
		}
		state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
		/* Class 22, data exception: the input (say, a --since time) is the problem. */
		if (state != NULL && strncmp(state, "22", 2) == 0) {
			PQclear(res);
			return KG_EINPUT;
		}
		/* 23505 unique_violation: the caller says what it means, if it expects one. */
		if (state != NULL && strcmp(state, "23505") == 0) {
			if (conflict != NULL)
				*conflict = db_conflict_of(PQresultErrorField(res,
				    PG_DIAG_CONSTRAINT_NAME));
			else
				db_log_error(s->name, PQresultErrorMessage(res));
			PQclear(res);
			return KG_ECONFLICT;
		}
		db_log_error(s->name, PQresultErrorMessage(res));
		PQclear(res);
		return KG_EDB;
	}
	return err;
}

void
db_copy(char *dst, size_t dstsz, const PGresult *res, int row, int col)
{
	(void)kg_strlcpy(dst, PQgetisnull(res, row, col) ? "" : PQgetvalue(res, row, col), dstsz);
}

void
db_fmt_ll(char *buf, size_t sz, long long v)
{
	(void)snprintf(buf, sz, "%lld", v);
}

enum kg_err
db_change(const struct db_stmt *s, const char *const *params, long *count)
{
	PGresult *res = NULL;
	enum kg_err err;

	if ((err = db_exec(s, params, DB_COMMAND, &res, NULL)) == KG_OK && count != NULL)
		*count = strtol(PQcmdTuples(res), NULL, 10);
	PQclear(res);
	return err;
}

enum kg_err
db_change_n(const struct db_stmt *s, long long n, long *count)
{
	char buf[24];
	const char *params[1] = { buf };

	db_fmt_ll(buf, sizeof(buf), n);
	return db_change(s, params, count);
}

enum kg_err
db_revoke(const struct db_stmt *s, const char *const *params, long *count)
{
	PGresult *res = NULL;
	enum kg_err err;

	if ((err = db_exec(s, params, DB_ROWS, &res, NULL)) == KG_OK && count != NULL)
		*count = PQntuples(res) == 1 ? strtol(PQgetvalue(res, 0, 0), NULL, 10) : 0;
	PQclear(res);
	return err;
}

enum kg_err
db_each(const struct db_stmt *s, const char *const *params, db_row_fn fn, void *arg)
{
	const char *cols[16];
	PGresult *res = NULL;
	enum kg_err err;
	int i, j, nf;

	if ((err = db_exec(s, params, DB_ROWS, &res, NULL)) != KG_OK)
		goto out;
	nf = PQnfields(res);
	if (nf > 16)
		nf = 16;
	for (i = 0; i < PQntuples(res); i++) {
		for (j = 0; j < nf; j++)
			cols[j] = PQgetvalue(res, i, j);
		fn(arg, cols, (size_t)nf);
	}
out:
	PQclear(res);
	return err;
}

enum kg_err
db_privileges_missing(char *missing, size_t missingsz)
{
	PGresult *res;
	enum kg_err err = db_exec(&st_privileges, NULL, DB_ROWS, &res, NULL);

	if (err == KG_OK && PQntuples(res) == 1)
		db_copy(missing, missingsz, res, 0, 0);
	else if (err == KG_OK)
		err = KG_EDB;
	PQclear(res);
	return err;
}

enum kg_err
db_ping(void)
{
	PGresult *res;
	enum kg_err err = db_exec(&st_ping, NULL, DB_ROWS, &res, NULL);

	PQclear(res);
	return err;
}
