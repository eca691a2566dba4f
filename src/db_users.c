/*
 * db_users.c: the users aggregate. Accounts: register, read, passwords,
 * disable, the admin listing, and the Argon2 parameter sets of the stored
 * hashes. Each statement is written out as it would be typed into psql.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "db.h"
#include "db_conn.h"

/* clang-format off */
static const struct db_stmt st_user_insert = { "user_insert", 4,
	"INSERT INTO users (username, email, password_hash, scopes)\n"
	"VALUES ($1, $2, $3, $4::text[])\n"
	"RETURNING id" };
/* clang-format on */

enum kg_err
db_user_insert(const char *username, const char *email, const char *hash, const char *scopes,
    long long *id)
{
	const char *params[4] = { username, email, hash, scopes };
	enum db_conflict conflict = DB_CONFLICT_OTHER;
	PGresult *res = NULL;
	enum kg_err err;

	err = db_exec(&st_user_insert, params, DB_ROWS, &res, &conflict);
	if (err == KG_ECONFLICT && conflict == DB_CONFLICT_USERNAME)
		err = KG_EUSERNAME_TAKEN;
	else if (err == KG_ECONFLICT && conflict == DB_CONFLICT_EMAIL)
		err = KG_EEMAIL_TAKEN;
	if (err != KG_OK)
		goto out;
	if (PQntuples(res) != 1) {
		err = KG_EDB;
		goto out;
	}
	*id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
out:
	PQclear(res);
	return err;
}

enum kg_err
db_user_row(const PGresult *res, int col, struct db_user *u)
{
	memset(u, 0, sizeof(*u));
	if (PQntuples(res) != 1 || PQnfields(res) < col + DB_USER_COLS)
		return KG_EDB;
	if (PQgetisnull(res, 0, col + DB_USER_ID))
		return KG_ENOTFOUND;
	u->id = strtoll(PQgetvalue(res, 0, col + DB_USER_ID), NULL, 10);
	db_copy(u->username, sizeof(u->username), res, 0, col + DB_USER_USERNAME);
	u->has_email = !PQgetisnull(res, 0, col + DB_USER_EMAIL);
	db_copy(u->email, sizeof(u->email), res, 0, col + DB_USER_EMAIL);
	db_copy(u->password_hash, sizeof(u->password_hash), res, 0, col + DB_USER_PASSWORD_HASH);
	u->disabled = PQgetvalue(res, 0, col + DB_USER_DISABLED)[0] == 't';
	db_copy(u->created_at, sizeof(u->created_at), res, 0, col + DB_USER_CREATED_AT);
	u->credential_gen = strtoll(PQgetvalue(res, 0, col + DB_USER_CREDENTIAL_GEN), NULL, 10);
	u->api_gen = strtoll(PQgetvalue(res, 0, col + DB_USER_API_GEN), NULL, 10);
	db_copy(u->scopes, sizeof(u->scopes), res, 0, col + DB_USER_SCOPES);
	return KG_OK;
}

/* A user's row by name, or by id: the columns db_user_row reads. */
/* clang-format off */
static const struct db_stmt st_user_by_name = { "user_by_name", 1,
	"SELECT u.id, u.username, u.email, u.password_hash, u.disabled,\n"
	"       to_char(u.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),\n"
	"       u.credential_gen, u.api_gen, u.scopes::text\n"
	"FROM users u\n"
	"WHERE lower(u.username) = lower($1)" };

static const struct db_stmt st_user_by_id = { "user_by_id", 1,
	"SELECT u.id, u.username, u.email, u.password_hash, u.disabled,\n"
	"       to_char(u.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),\n"
	"       u.credential_gen, u.api_gen, u.scopes::text\n"
	"FROM users u\n"
	"WHERE u.id = $1" };
/* clang-format on */

/* A user by st (one parameter): KG_ENOTFOUND when there is none. */
static enum kg_err
db_user_fetch(const struct db_stmt *st, const char *param, struct db_user *u)
{
	const char *params[1] = { param };
	PGresult *res = NULL;
	enum kg_err err;

	memset(u, 0, sizeof(*u));
	if ((err = db_exec(st, params, DB_ROWS, &res, NULL)) == KG_OK)
		err = PQntuples(res) == 0 ? KG_ENOTFOUND : db_user_row(res, 0, u);
	PQclear(res);
	return err;
}

enum kg_err
db_user_by_name(const char *username, struct db_user *u)
{
	return db_user_fetch(&st_user_by_name, username, u);
}

enum kg_err
db_user_by_id(long long id, struct db_user *u)
{
	char idbuf[24];

	db_fmt_ll(idbuf, sizeof(idbuf), id);
	return db_user_fetch(&st_user_by_id, idbuf, u);
}

/*
 * Per parameter set ("$argon2id$v=..$m=..,t=..,p=..$"): how many accounts,
 * the oldest one's hash, and the oldest account's hash of all.
 */
/* clang-format off */
static const struct db_stmt st_hash_classes = { "hash_classes", 0,
	"SELECT count(*),\n"
	"       (array_agg(password_hash ORDER BY id))[1],\n"
	"       (SELECT password_hash FROM users ORDER BY id LIMIT 1)\n"
	"FROM users\n"
	"WHERE password_hash LIKE '$argon2id$%'\n"
	"GROUP BY substring(password_hash FROM '^\\$argon2id\\$v=[0-9]+\\$m=[0-9]+,t=[0-9]+,p=[0-9]+\\$')\n"
	"ORDER BY 1 DESC, 2\n"
	"LIMIT 4" };
/* clang-format on */

_Static_assert(DB_HASH_CLASSES_MAX == 4, "hash_classes says LIMIT 4");

enum kg_err
db_hash_classes(struct db_hash_class *out, size_t max, size_t *n, char *key, size_t keysz)
{
	PGresult *res = NULL;
	enum kg_err err;
	size_t i, rows;

	*n = 0;
	if (keysz > 0)
		key[0] = '\0';
	if ((err = db_exec(&st_hash_classes, NULL, DB_ROWS, &res, NULL)) != KG_OK)
		goto out;
	rows = (size_t)PQntuples(res);
	for (i = 0; i < rows && *n < max; i++) {
		const char *hash = PQgetvalue(res, (int)i, 1);
		int w;

		if (strlen(hash) >= sizeof(out[*n].sample))
			continue;
		memcpy(out[*n].sample, hash, strlen(hash) + 1);
		out[*n].count = strtoll(PQgetvalue(res, (int)i, 0), NULL, 10);
		(*n)++;
		w = snprintf(key, keysz, "%s", PQgetvalue(res, (int)i, 2));
		if (w < 0 || (size_t)w >= keysz) {
			err = KG_ESYS;
			goto out;
		}
	}
out:
	PQclear(res);
	return err;
}

/*
 * A new hash for account $1 and the end of every one of its sessions but
 * the token $3 (NULL: all), in one statement, so that no old token
 * outlives a committed password change: a new credential generation (g),
 * which kills the tokens of logins still in flight, the token kept moved
 * to it (kp), the others deleted (d), and a notification to every
 * listening worker, since a racing login's token may be cached on another
 * host although d did not see its row. Answers the tokens deleted.
 * db_token_delete_all (db_tokens.c) is the same without the new hash.
 */
/* clang-format off */
static const struct db_stmt st_user_set_password = { "user_set_password", 3,
	"WITH g AS (UPDATE users\n"
	"           SET password_hash = $2, password_changed_at = now(),\n"
	"               credential_gen = credential_gen + 1, api_gen = api_gen + 1\n"
	"           WHERE id = $1\n"
	"           RETURNING id, credential_gen),\n"
	"     kp AS (UPDATE api_keys SET credential_gen = g.credential_gen FROM g\n"
	"            WHERE api_keys.user_id = g.id AND api_keys.key = $3\n"
	"              AND api_keys.kind = 'session'),\n"
	"     d AS (DELETE FROM api_keys\n"
	"           WHERE user_id IN (SELECT id FROM g) AND key IS DISTINCT FROM $3\n"
	"           RETURNING kind),\n"
	"     n AS (SELECT pg_notify('keygate_revoke', '') FROM g)\n"
	"SELECT (SELECT count(*) FROM d), (SELECT count(*) FROM d WHERE kind = 'api') FROM n" };
/* clang-format on */

enum kg_err
db_user_set_password(long long id, const char *hash, const char *keep_key, long *revoked,
    long *api_revoked)
{
	char idbuf[24];
	const char *params[3] = { idbuf, hash, keep_key };
	PGresult *res = NULL;
	enum kg_err err;

	*revoked = *api_revoked = 0;
	db_fmt_ll(idbuf, sizeof(idbuf), id);
	if ((err = db_exec(&st_user_set_password, params, DB_ROWS, &res, NULL)) != KG_OK)
		goto out;
	if (PQntuples(res) == 1 && PQnfields(res) == 2) {
		*revoked = strtol(PQgetvalue(res, 0, 0), NULL, 10);
		*api_revoked = strtol(PQgetvalue(res, 0, 1), NULL, 10);
	} else if (PQntuples(res) != 0)
		err = KG_EDB;
out:
	PQclear(res);
	return err;
}

/*
 * The granted scopes $3 for account $1 if it still has those it had when
 * read ($2, as text): a concurrent change comes first, and the caller reads
 * again. Tells every listening worker: cached tokens carry their effective
 * scopes, computed from the grant. Answers 1 row when it changed.
 */
/* clang-format off */
static const struct db_stmt st_user_set_scopes = { "user_set_scopes", 3,
	"WITH u AS (UPDATE users SET scopes = $3::text[]\n"
	"           WHERE id = $1 AND scopes::text = $2\n"
	"           RETURNING id),\n"
	"     n AS (SELECT pg_notify('keygate_revoke', '') FROM u)\n"
	"SELECT (SELECT count(*) FROM u) FROM n" };
/* clang-format on */

enum kg_err
db_user_set_scopes(long long id, const char *old, const char *scopes, long *changed)
{
	char idbuf[24];
	const char *params[3] = { idbuf, old, scopes };

	db_fmt_ll(idbuf, sizeof(idbuf), id);
	return db_revoke(&st_user_set_scopes, params, changed);
}

/* A new hash for account $1 only if it still has the hash $2. */
/* clang-format off */
static const struct db_stmt st_user_rehash = { "user_rehash", 3,
	"UPDATE users SET password_hash = $3\n"
	"WHERE id = $1 AND password_hash = $2" };
/* clang-format on */

enum kg_err
db_user_rehash(long long id, const char *old_hash, const char *hash)
{
	char idbuf[24];
	const char *params[3] = { idbuf, old_hash, hash };

	db_fmt_ll(idbuf, sizeof(idbuf), id);
	return db_change(&st_user_rehash, params, NULL);
}

/*
 * Disabling ($2 true) the account named $1 ends every session of it too,
 * and moves its credential generation, so that enabling it later brings
 * back no old token, not even one a login in flight wrote after the
 * DELETE. Answers the account's id (no row: no such account).
 */
/* clang-format off */
static const struct db_stmt st_user_set_disabled = { "user_set_disabled", 2,
	"WITH u AS (UPDATE users\n"
	"           SET disabled = $2,\n"
	"               credential_gen = credential_gen + CASE WHEN $2::boolean THEN 1 ELSE 0 END,\n"
	"               api_gen = api_gen + CASE WHEN $2::boolean THEN 1 ELSE 0 END\n"
	"           WHERE lower(username) = lower($1)\n"
	"           RETURNING id),\n"
	"     k AS (DELETE FROM api_keys WHERE $2::boolean AND user_id IN (SELECT id FROM u)),\n"
	"     n AS (SELECT pg_notify('keygate_revoke', '') FROM u WHERE $2::boolean)\n"
	"SELECT u.id, (SELECT count(*) FROM n) FROM u" };
/* clang-format on */

enum kg_err
db_user_set_disabled(const char *username, int disabled, long long *id)
{
	const char *params[2] = { username, disabled ? "true" : "false" };
	PGresult *res = NULL;
	enum kg_err err;

	if ((err = db_exec(&st_user_set_disabled, params, DB_ROWS, &res, NULL)) != KG_OK)
		goto out;
	if (PQntuples(res) != 1) {
		err = KG_ENOTFOUND;
		goto out;
	}
	*id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
out:
	PQclear(res);
	return err;
}

/* Every account with its count of live tokens of the current generation. */
/* clang-format off */
static const struct db_stmt st_user_list = { "user_list", 0,
	"SELECT u.id, u.username, coalesce(u.email, ''), u.disabled,\n"
	"       to_char(u.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),\n"
	"       (SELECT count(*) FROM api_keys k\n"
	"        WHERE k.user_id = u.id\n"
	"          AND k.credential_gen = CASE WHEN k.kind = 'api' THEN u.api_gen\n"
	"                                      ELSE u.credential_gen END\n"
	"          AND k.expires_at > now()\n"
	"          AND k.last_used_at + make_interval(secs => k.idle_timeout_s) > now())\n"
	"       , u.scopes::text\n"
	"FROM users u\n"
	"ORDER BY u.id" };
/* clang-format on */

enum kg_err
db_user_list(db_row_fn fn, void *arg)
{
	return db_each(&st_user_list, NULL, fn, arg);
}

const struct db_stmt *const db_users_stmts[] = { &st_user_insert, &st_user_by_name,
	&st_user_by_id, &st_hash_classes, &st_user_set_password, &st_user_rehash,
	&st_user_set_disabled, &st_user_list, &st_user_set_scopes, NULL };
