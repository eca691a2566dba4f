/*
 * db_migrate.c: the store's side of `keygate migrate` (migrate.c reads
 * the files). Migrations run with plain PQexec/PQexecParams on a
 * connection without prepared statements: the application's statements
 * cannot be prepared before the tables they use exist. The migration
 * files are trusted input from the package, never request data.
 */
#include <libpq-fe.h>

#include "db.h"
#include "db_conn.h"

#define MIGRATE_LOCK_ID "7310413127405543" /* arbitrary, fixed: "keygate migrate" */

/* One statement of the migration machinery; KG_EDB (logged) when it fails. */
static enum kg_err
db_migrate_sql(const char *sql, int nparams, const char *const *params)
{
	PGresult *res;
	ExecStatusType st;
	enum kg_err err = KG_OK;

	res = PQexecParams(db_connection(), sql, nparams, NULL, params, NULL, NULL, 0);
	st = PQresultStatus(res);
	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
		db_log_error("migrate", PQresultErrorMessage(res));
		err = KG_EDB;
	}
	PQclear(res);
	return err;
}

enum kg_err
db_migrate_begin(void)
{
	enum kg_err err;

	if ((err = db_connect_bare()) != KG_OK)
		return err;
	/* Serialises concurrent `keygate migrate` runs; released with the session. */
	if ((err = db_migrate_sql("SELECT pg_advisory_lock(" MIGRATE_LOCK_ID ")", 0, NULL)) != KG_OK)
		return err;
	return db_migrate_sql("CREATE TABLE IF NOT EXISTS schema_migrations ("
	                      " version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())",
	    0, NULL);
}

enum kg_err
db_migrate_applied(const char *version, int *applied)
{
	const char *params[1] = { version };
	PGresult *res;
	enum kg_err err = KG_OK;

	res = PQexecParams(db_connection(), "SELECT 1 FROM schema_migrations WHERE version = $1",
	    1, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		db_log_error("migrate", PQresultErrorMessage(res));
		err = KG_EDB;
	} else
		*applied = PQntuples(res) > 0;
	PQclear(res);
	return err;
}

enum kg_err
db_migrate_apply(const char *version, const char *migration_sql)
{
	const char *params[1] = { version };
	PGresult *res;
	enum kg_err err = KG_EDB;

	if (db_migrate_sql("BEGIN", 0, NULL) != KG_OK)
		return KG_EDB;
	/* A migration file holds several statements: only PQexec runs those. */
	res = PQexec(db_connection(), migration_sql);
	if (PQresultStatus(res) != PGRES_COMMAND_OK && PQresultStatus(res) != PGRES_TUPLES_OK) {
		db_log_error(version, PQresultErrorMessage(res));
		goto out;
	}
	if (db_migrate_sql("INSERT INTO schema_migrations (version) VALUES ($1)", 1, params) != KG_OK)
		goto out;
	err = db_migrate_sql("COMMIT", 0, NULL);
out:
	PQclear(res);
	if (err != KG_OK)
		(void)db_migrate_sql("ROLLBACK", 0, NULL);
	return err;
}

void
db_migrate_end(void)
{
	db_close();
}
