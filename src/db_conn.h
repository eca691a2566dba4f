/*
 * db_conn: what the store's files share, and nothing outside them may
 * include. db.c owns the one connection; each aggregate file (db_users.c,
 * db_tokens.c, db_throttle.c, db_audit.c) writes its statements out in full
 * next to their wrappers and lists them in a table that db.c prepares on
 * every new connection; db_migrate.c runs the migration files on a
 * connection without prepared statements.
 *
 * Glossary:
 *   statement  a struct db_stmt: a name, its parameter count, its SQL text
 *              as one would type it into psql ($1... for the parameters)
 *   registry   the NULL-terminated tables of statements below, one per
 *              file; every statement a file runs must be in its table
 *              (tests/unit/db_test.c reads the files and checks)
 *   conflict   a unique violation: which constraint, as enum db_conflict
 */
#ifndef DB_CONN_H
#define DB_CONN_H

#include <stddef.h>

#include <libpq-fe.h>

#include "db.h"
#include "kg.h"

struct db_stmt {
	const char *name; /* the prepared statement's name, unique per connection */
	int nparams;
	const char *sql;
};

/* Each file's statements, NULL-terminated; db.c prepares them all. */
extern const struct db_stmt *const db_conn_stmts[];
extern const struct db_stmt *const db_users_stmts[];
extern const struct db_stmt *const db_tokens_stmts[];
extern const struct db_stmt *const db_throttle_stmts[];
extern const struct db_stmt *const db_audit_stmts[];

/* Every table above, NULL-terminated (for db.c and the unit test). */
extern const struct db_stmt *const *const db_registry[];

/* Which unique constraint a statement ran into (db_exec). */
enum db_conflict {
	DB_CONFLICT_USERNAME, /* users_username_key: lower(username) */
	DB_CONFLICT_EMAIL,    /* users_email_key: lower(email) */
	DB_CONFLICT_OTHER,    /* any other unique index */
	DB_CONFLICT__MAX
};

/* The conflict a unique constraint's name stands for (never fails: DB_CONFLICT_OTHER). */
enum db_conflict db_conflict_of(const char *constraint);

/* What a statement answers when it works: rows, or only a command tag. */
enum db_answer {
	DB_ROWS,    /* PGRES_TUPLES_OK: a SELECT, or RETURNING */
	DB_COMMAND, /* PGRES_COMMAND_OK: INSERT, UPDATE, DELETE without RETURNING */
};

/*
 * Run a prepared statement. A connection that broke since the last request
 * (a database restart) is re-established and the statement tried once more,
 * so that the first request after a restart does not fail. KG_OK with *out
 * (the caller PQclear()s it, also on error: NULL then); KG_EINPUT on a data
 * exception (class 22); KG_ECONFLICT on a unique violation, with *conflict
 * when conflict is not NULL (when it is, the conflict was not expected and
 * is logged); KG_EDB otherwise.
 */
enum kg_err db_exec(const struct db_stmt *s, const char *const *params, enum db_answer want,
    PGresult **out, enum db_conflict *conflict) KG_MUSTCHECK;

/* Run a statement that changes rows; *count = rows affected (count may be NULL). */
enum kg_err db_change(const struct db_stmt *s, const char *const *params, long *count) KG_MUSTCHECK;

/* db_change of a statement whose one parameter is the number n. */
enum kg_err db_change_n(const struct db_stmt *s, long long n, long *count) KG_MUSTCHECK;

/*
 * Run a statement that ends sessions and answers one row with the number
 * of tokens it removed, or no row for none; *count (may be NULL).
 */
enum kg_err db_revoke(const struct db_stmt *s, const char *const *params, long *count) KG_MUSTCHECK;

/* Run a query and hand each row's columns to fn as strings (never NULL). */
enum kg_err db_each(const struct db_stmt *s, const char *const *params, db_row_fn fn,
    void *arg) KG_MUSTCHECK;

/* The columns of a user's row, from its first, in the order statements select them. */
enum db_user_col {
	DB_USER_ID,
	DB_USER_USERNAME,
	DB_USER_EMAIL,
	DB_USER_PASSWORD_HASH,
	DB_USER_DISABLED,
	DB_USER_CREATED_AT, /* as text, KG_TS_LEN */
	DB_USER_CREDENTIAL_GEN,
	DB_USER_API_GEN,
	DB_USER_SCOPES, /* granted, as text "{a,b}" */
	DB_USER_COLS
};

/*
 * The user's row of res's only row from column col on into *u: KG_OK,
 * KG_ENOTFOUND when its id is NULL (a LEFT JOIN that found none), KG_EDB
 * when res is not one row with those columns. (db_users.c)
 */
enum kg_err db_user_row(const PGresult *res, int col, struct db_user *u) KG_MUSTCHECK;

/* Copy column col of row row ("" when NULL) into dst, cut to dstsz. */
void db_copy(char *dst, size_t dstsz, const PGresult *res, int row, int col);

/* A number as a statement parameter. */
void db_fmt_ll(char *buf, size_t sz, long long v);

/* A libpq message as one log line, "database: what: message". */
void db_log_error(const char *what, const char *msg);

/*
 * For db_migrate.c: connect without checking the schema or preparing any
 * statement (the tables they need may not exist yet), and the connection
 * (NULL when there is none).
 */
enum kg_err db_connect_bare(void) KG_MUSTCHECK;
PGconn *db_connection(void);

#endif
