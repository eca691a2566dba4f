/*
 * db_tokens.c: the tokens aggregate (api_keys). A login's token and what a
 * successful login writes with it, the lookup every request pays for, its
 * refresh, revocation, the session listing, pruning. Each statement is
 * written out as it would be typed into psql.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "db.h"
#include "db_conn.h"

/* The parameters of login_finish, by the name the function gives them. */
enum lf_param {
	LF_KEY,
	LF_USER_ID,
	LF_DIGEST_HEX,
	LF_SCOPES,
	LF_REMEMBER,
	LF_LIFETIME_S,
	LF_IDLE_S,
	LF_IP,
	LF_USER_AGENT,
	LF_SUBJECT,
	LF_ADDR_MAX,
	LF_MAX_TOKENS,
	LF_USERNAME,
	LF_EVENT_USER_AGENT,
	LF_GEN,
	LF_ADDR_SUBJECT,
	LF__MAX
};

/*
 * Everything a successful login writes, in one round trip and one
 * transaction, and only if the account still has the credential
 * generation p_gen its password was checked under: see
 * keygate_login_finish in db/migrations/0004_credential_generation.sql.
 * Named notation, so that each value goes to the parameter it names;
 * $n is enum lf_param + 1.
 */
/* clang-format off */
static const struct db_stmt st_login_finish = { "login_finish", LF__MAX,
	"SELECT f.outcome,\n"
	"       to_char(f.expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),\n"
	"       f.trimmed\n"
	"FROM keygate_login_finish(\n"
	"         p_key => $1,\n"
	"         p_user_id => $2::bigint,\n"
	"         p_digest_hex => $3,\n"
	"         p_scopes => $4::text[],\n"
	"         p_remember => $5::boolean,\n"
	"         p_lifetime_s => $6::integer,\n"
	"         p_idle_s => $7::integer,\n"
	"         p_ip => $8,\n"
	"         p_user_agent => $9,\n"
	"         p_subject => $10,\n"
	"         p_addr_max => $11::integer,\n"
	"         p_max_tokens => $12::integer,\n"
	"         p_username => $13,\n"
	"         p_event_user_agent => $14,\n"
	"         p_gen => $15::bigint,\n"
	"         p_addr_subject => $16) f" };
/* clang-format on */

_Static_assert(LF__MAX == 16, "keygate_login_finish takes 16 parameters");

/* A secret's digest as the hex text the token statements decode ($n::text -> bytea). */
static void
db_digest_hex(const unsigned char digest[CRYPTO_SHA256_LEN], char hex[CRYPTO_SHA256_LEN * 2 + 1])
{
	size_t i;

	for (i = 0; i < CRYPTO_SHA256_LEN; i++)
		(void)snprintf(hex + 2 * i, 3, "%02x", digest[i]);
}

enum kg_err
db_login_finish(const struct db_login_finish *l, enum db_login_outcome *outcome,
    char expires_at[DB_TS_LEN], long *trimmed)
{
	const struct db_token_new *t = l->token;
	char id[24], hex[CRYPTO_SHA256_LEN * 2 + 1], life[16], idle[16];
	char addr_max[24], max_tokens[24], gen[24];
	const char *params[LF__MAX];
	PGresult *res = NULL;
	const char *what;
	enum kg_err err;

	*outcome = DB_LOGIN_STALE;
	*trimmed = 0;
	db_fmt_ll(id, sizeof(id), t->user_id);
	db_digest_hex(t->digest, hex);
	db_fmt_ll(life, sizeof(life), t->lifetime_s);
	db_fmt_ll(idle, sizeof(idle), t->idle_s);
	db_fmt_ll(addr_max, sizeof(addr_max), l->addr_max);
	db_fmt_ll(max_tokens, sizeof(max_tokens), l->max_tokens);
	db_fmt_ll(gen, sizeof(gen), l->credential_gen);
	params[LF_KEY] = t->key;
	params[LF_USER_ID] = id;
	params[LF_DIGEST_HEX] = hex;
	params[LF_SCOPES] = t->scopes;
	params[LF_REMEMBER] = t->remember ? "true" : "false";
	params[LF_LIFETIME_S] = life;
	params[LF_IDLE_S] = idle;
	params[LF_IP] = t->ip;
	params[LF_USER_AGENT] = t->user_agent;
	params[LF_SUBJECT] = l->subject;
	params[LF_ADDR_MAX] = addr_max;
	params[LF_MAX_TOKENS] = max_tokens;
	params[LF_USERNAME] = l->username;
	params[LF_EVENT_USER_AGENT] = l->event_user_agent;
	params[LF_GEN] = gen;
	params[LF_ADDR_SUBJECT] = l->addr_subject;
	if ((err = db_exec(&st_login_finish, params, DB_ROWS, &res, NULL)) != KG_OK)
		goto out;
	if (PQntuples(res) != 1 || PQnfields(res) != 3) {
		err = KG_EDB;
		goto out;
	}
	what = PQgetvalue(res, 0, 0);
	if (strcmp(what, "ok") == 0) {
		*outcome = DB_LOGIN_OK;
		db_copy(expires_at, DB_TS_LEN, res, 0, 1);
		*trimmed = strtol(PQgetvalue(res, 0, 2), NULL, 10);
	} else if (strcmp(what, "collided") == 0)
		*outcome = DB_LOGIN_COLLIDED;
	else if (strcmp(what, "stale") != 0)
		err = KG_EDB;
out:
	PQclear(res);
	return err;
}

/*
 * Everything GET /me and the token cache need, in one indexed lookup: the
 * live token $1 of an enabled user, of the account's current credential
 * generation (migration 0004: one issued by a login that raced a
 * revocation of all sessions has an older one, and is dead whether or not
 * its row was seen by that revocation's DELETE), and whether its
 * last_used_at is older than $2 seconds. The columns of enum db_token_col.
 */
/* clang-format off */
static const struct db_stmt st_token_lookup = { "token_lookup", 2,
	"SELECT k.user_id, encode(k.secret_digest, 'hex'), u.username, k.scopes::text,\n"
	"       k.last_used_at < now() - make_interval(secs => $2),\n"
	"       extract(epoch FROM k.expires_at)::bigint,\n"
	"       extract(epoch FROM k.last_used_at)::bigint,\n"
	"       k.idle_timeout_s, u.email,\n"
	"       to_char(u.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),\n"
	"       u.scopes::text, k.kind = 'api'\n"
	"FROM api_keys k JOIN users u ON u.id = k.user_id\n"
	"WHERE k.key = $1 AND NOT u.disabled\n"
	"  AND k.credential_gen = CASE WHEN k.kind = 'api' THEN u.api_gen ELSE u.credential_gen END\n"
	"  AND k.expires_at > now()\n"
	"  AND k.last_used_at + make_interval(secs => k.idle_timeout_s) > now()" };

/*
 * The same row, read again before the cached one expires, with
 * last_used_at written in the same statement when it is due. It never
 * waits for a row lock (SKIP LOCKED): its worker takes no request while it
 * runs, and a locked token would hold up every worker in turn. The write
 * is then left to the next touch_interval. The SELECT sees the row as it
 * was before.
 */
static const struct db_stmt st_token_refresh = { "token_refresh", 2,
	"WITH l AS (SELECT key FROM api_keys k\n"
	"           WHERE k.key = $1 AND k.last_used_at < now() - make_interval(secs => $2)\n"
	"             AND k.expires_at > now()\n"
	"             AND k.last_used_at + make_interval(secs => k.idle_timeout_s) > now()\n"
	"           FOR UPDATE SKIP LOCKED),\n"
	"     t AS (UPDATE api_keys SET last_used_at = now() WHERE key IN (SELECT key FROM l))\n"
	"SELECT k.user_id, encode(k.secret_digest, 'hex'), u.username, k.scopes::text,\n"
	"       k.last_used_at < now() - make_interval(secs => $2),\n"
	"       extract(epoch FROM k.expires_at)::bigint,\n"
	"       extract(epoch FROM k.last_used_at)::bigint,\n"
	"       k.idle_timeout_s, u.email,\n"
	"       to_char(u.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),\n"
	"       u.scopes::text, k.kind = 'api'\n"
	"FROM api_keys k JOIN users u ON u.id = k.user_id\n"
	"WHERE k.key = $1 AND NOT u.disabled\n"
	"  AND k.credential_gen = CASE WHEN k.kind = 'api' THEN u.api_gen ELSE u.credential_gen END\n"
	"  AND k.expires_at > now()\n"
	"  AND k.last_used_at + make_interval(secs => k.idle_timeout_s) > now()" };
/* clang-format on */

/* The columns token_lookup and token_refresh select. */
enum db_token_col {
	TC_USER_ID,
	TC_DIGEST_HEX,
	TC_USERNAME,
	TC_SCOPES,
	TC_NEEDS_TOUCH,
	TC_EXPIRES_AT,
	TC_LAST_USED_AT,
	TC_IDLE_S,
	TC_EMAIL,
	TC_CREATED_AT,
	TC_GRANTED,
	TC_API,
	TC__MAX
};

static int
db_hex_decode(const char *hex, unsigned char *out, size_t outlen)
{
	size_t i;

	if (strlen(hex) != outlen * 2)
		return -1;
	for (i = 0; i < outlen; i++) {
		unsigned v;
		if (sscanf(hex + 2 * i, "%2x", &v) != 1)
			return -1;
		out[i] = (unsigned char)v;
	}
	return 0;
}

/* A token_lookup or token_refresh for key: KG_ENOTFOUND when it is not a live token. */
static enum kg_err
db_token_fetch(const struct db_stmt *st, const char *key, int touch_interval, struct db_token *t)
{
	char touch[16];
	const char *params[2] = { key, touch };
	PGresult *res = NULL;
	enum kg_err err;

	memset(t, 0, sizeof(*t));
	(void)snprintf(touch, sizeof(touch), "%d", touch_interval);
	if ((err = db_exec(st, params, DB_ROWS, &res, NULL)) != KG_OK)
		goto out;
	if (PQntuples(res) != 1) {
		err = KG_ENOTFOUND;
		goto out;
	}
	if (PQnfields(res) != TC__MAX ||
	    db_hex_decode(PQgetvalue(res, 0, TC_DIGEST_HEX), t->digest, sizeof(t->digest)) != 0) {
		err = KG_EDB;
		goto out;
	}
	t->user_id = strtoll(PQgetvalue(res, 0, TC_USER_ID), NULL, 10);
	db_copy(t->username, sizeof(t->username), res, 0, TC_USERNAME);
	db_copy(t->scopes, sizeof(t->scopes), res, 0, TC_SCOPES);
	t->needs_touch = PQgetvalue(res, 0, TC_NEEDS_TOUCH)[0] == 't';
	t->expires_at = strtoll(PQgetvalue(res, 0, TC_EXPIRES_AT), NULL, 10);
	t->last_used_at = strtoll(PQgetvalue(res, 0, TC_LAST_USED_AT), NULL, 10);
	t->idle_s = strtol(PQgetvalue(res, 0, TC_IDLE_S), NULL, 10);
	t->has_email = !PQgetisnull(res, 0, TC_EMAIL);
	db_copy(t->email, sizeof(t->email), res, 0, TC_EMAIL);
	db_copy(t->created_at, sizeof(t->created_at), res, 0, TC_CREATED_AT);
	db_copy(t->granted, sizeof(t->granted), res, 0, TC_GRANTED);
	t->api = PQgetvalue(res, 0, TC_API)[0] == 't';
out:
	if (err != KG_OK)
		memset(t, 0, sizeof(*t));
	PQclear(res);
	return err;
}

enum kg_err
db_token_lookup(const char *key, int touch_interval, struct db_token *t)
{
	return db_token_fetch(&st_token_lookup, key, touch_interval, t);
}

enum kg_err
db_token_refresh(const char *key, int touch_interval, struct db_token *t)
{
	return db_token_fetch(&st_token_refresh, key, touch_interval, t);
}

/*
 * Statements that end sessions tell every listening worker (on every
 * host) in the same statement, so that the notification is sent exactly
 * when the change commits. They answer the number of tokens removed.
 *
 * token_delete: user $1's token $2.
 */
/* clang-format off */
static const struct db_stmt st_token_delete = { "token_delete", 2,
	"WITH d AS (DELETE FROM api_keys WHERE user_id = $1 AND key = $2 RETURNING 1),\n"
	"     n AS (SELECT pg_notify('keygate_revoke', '') WHERE EXISTS (SELECT 1 FROM d))\n"
	"SELECT (SELECT count(*) FROM d) FROM n" };
/* clang-format on */

/* Run st, of parameters ($1 user_id, $2 key); *deleted = tokens removed. */
static enum kg_err
db_token_revoke(const struct db_stmt *st, long long user_id, const char *key, long *deleted)
{
	char idbuf[24];
	const char *params[2] = { idbuf, key };

	db_fmt_ll(idbuf, sizeof(idbuf), user_id);
	return db_revoke(st, params, deleted);
}

enum kg_err
db_token_delete(long long user_id, const char *key, long *deleted)
{
	return db_token_revoke(&st_token_delete, user_id, key, deleted);
}

/*
 * Every session of account $1 but the token $2 (NULL: all), and with $3
 * its API tokens too: a new credential generation of what ends (g;
 * api_gen only with $3), the session kept moved to it (kp), the others
 * deleted (d), and a notification whenever a generation moved, since a
 * racing login's token may be cached on another host although d did not
 * see its row. user_set_password (db_users.c) does the same with a new
 * hash, for both kinds.
 */
/* clang-format off */
static const struct db_stmt st_token_delete_all = { "token_delete_all", 3,
	"WITH g AS (UPDATE users SET credential_gen = credential_gen + 1,\n"
	"                            api_gen = api_gen + CASE WHEN $3::boolean THEN 1 ELSE 0 END\n"
	"           WHERE id = $1\n"
	"           RETURNING id, credential_gen),\n"
	"     kp AS (UPDATE api_keys SET credential_gen = g.credential_gen FROM g\n"
	"            WHERE api_keys.user_id = g.id AND api_keys.key = $2\n"
	"              AND api_keys.kind = 'session'),\n"
	"     d AS (DELETE FROM api_keys\n"
	"           WHERE user_id IN (SELECT id FROM g) AND key IS DISTINCT FROM $2\n"
	"             AND (kind = 'session' OR $3::boolean)\n"
	"           RETURNING 1),\n"
	"     n AS (SELECT pg_notify('keygate_revoke', '') FROM g)\n"
	"SELECT (SELECT count(*) FROM d) FROM n" };
/* clang-format on */

enum kg_err
db_token_delete_all(long long user_id, const char *keep_key, int api, long *deleted)
{
	char idbuf[24];
	const char *params[3] = { idbuf, keep_key, api ? "true" : "false" };

	db_fmt_ll(idbuf, sizeof(idbuf), user_id);
	return db_revoke(&st_token_delete_all, params, deleted);
}

/* The parameters of api_token_create, by the name the function gives them. */
enum at_param {
	AT_KEY,
	AT_USER_ID,
	AT_DIGEST_HEX,
	AT_SCOPES,
	AT_NAME,
	AT_LIFETIME_S,
	AT_IDLE_S,
	AT_IP,
	AT_USER_AGENT,
	AT_MAX,
	AT_GEN,
	AT_USERNAME,
	AT__MAX
};

/*
 * An API token, under the account's row lock, only if the account still
 * has the API-token generation p_gen its password was checked under, the
 * name is free and the cap p_max holds: see keygate_api_token_create in
 * db/migrations/0006_granted_scopes_and_api_tokens.sql. $n is enum
 * at_param + 1.
 */
/* clang-format off */
static const struct db_stmt st_api_token_create = { "api_token_create", AT__MAX,
	"SELECT f.outcome,\n"
	"       to_char(f.expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')\n"
	"FROM keygate_api_token_create(\n"
	"         p_key => $1,\n"
	"         p_user_id => $2::bigint,\n"
	"         p_digest_hex => $3,\n"
	"         p_scopes => $4::text[],\n"
	"         p_name => $5,\n"
	"         p_lifetime_s => $6::integer,\n"
	"         p_idle_s => $7::integer,\n"
	"         p_ip => $8,\n"
	"         p_user_agent => $9,\n"
	"         p_max => $10::integer,\n"
	"         p_gen => $11::bigint,\n"
	"         p_username => $12) f" };
/* clang-format on */

_Static_assert(AT__MAX == 12, "keygate_api_token_create takes 12 parameters");

enum kg_err
db_api_token_create(const struct db_api_token_new *t, enum db_api_token_outcome *outcome,
    char expires_at[DB_TS_LEN])
{
	static const struct {
		const char *name;
		enum db_api_token_outcome outcome;
	} outcomes[] = {
		{ "ok", DB_API_TOKEN_OK },
		{ "collided", DB_API_TOKEN_COLLIDED },
		{ "stale", DB_API_TOKEN_STALE },
		{ "limit", DB_API_TOKEN_LIMIT },
		{ "name_taken", DB_API_TOKEN_NAME_TAKEN },
	};
	char id[24], hex[CRYPTO_SHA256_LEN * 2 + 1], life[24], idle[24], max[24], gen[24];
	const char *params[AT__MAX];
	PGresult *res = NULL;
	enum kg_err err;
	size_t i;

	*outcome = DB_API_TOKEN_STALE;
	expires_at[0] = '\0';
	db_fmt_ll(id, sizeof(id), t->user_id);
	db_digest_hex(t->digest, hex);
	db_fmt_ll(life, sizeof(life), t->lifetime_s);
	db_fmt_ll(idle, sizeof(idle), t->idle_s);
	db_fmt_ll(max, sizeof(max), t->max);
	db_fmt_ll(gen, sizeof(gen), t->api_gen);
	params[AT_KEY] = t->key;
	params[AT_USER_ID] = id;
	params[AT_DIGEST_HEX] = hex;
	params[AT_SCOPES] = t->scopes;
	params[AT_NAME] = t->name;
	params[AT_LIFETIME_S] = life;
	params[AT_IDLE_S] = idle;
	params[AT_IP] = t->ip;
	params[AT_USER_AGENT] = t->user_agent;
	params[AT_MAX] = max;
	params[AT_GEN] = gen;
	params[AT_USERNAME] = t->username;
	if ((err = db_exec(&st_api_token_create, params, DB_ROWS, &res, NULL)) != KG_OK)
		goto out;
	if (PQntuples(res) != 1 || PQnfields(res) != 2) {
		err = KG_EDB;
		goto out;
	}
	err = KG_EDB;
	for (i = 0; i < sizeof(outcomes) / sizeof(outcomes[0]); i++)
		if (strcmp(PQgetvalue(res, 0, 0), outcomes[i].name) == 0) {
			*outcome = outcomes[i].outcome;
			err = KG_OK;
		}
	if (*outcome == DB_API_TOKEN_OK)
		db_copy(expires_at, DB_TS_LEN, res, 0, 1);
out:
	PQclear(res);
	return err;
}

/* User $1's live tokens of the current generation, newest use first. */
/* clang-format off */
static const struct db_stmt st_token_list = { "token_list", 1,
	"SELECT k.key,\n"
	"       to_char(k.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),\n"
	"       to_char(k.last_used_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),\n"
	"       to_char(k.expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),\n"
	"       coalesce(k.ip, ''), coalesce(k.user_agent, ''), k.scopes::text,\n"
	"       u.scopes::text, k.kind = 'api', coalesce(k.name, '')\n"
	"FROM api_keys k JOIN users u ON u.id = k.user_id\n"
	"WHERE k.user_id = $1\n"
	"  AND k.expires_at > now()\n"
	"  AND k.last_used_at + make_interval(secs => k.idle_timeout_s) > now()\n"
	"  AND k.credential_gen = CASE WHEN k.kind = 'api' THEN u.api_gen ELSE u.credential_gen END\n"
	"ORDER BY k.last_used_at DESC, k.created_at DESC\n"
	"LIMIT 1000" };
/* clang-format on */

enum kg_err
db_token_list(long long user_id, struct db_session **rows, size_t *n)
{
	char idbuf[24];
	const char *params[1] = { idbuf };
	struct db_session *r = NULL;
	PGresult *res = NULL;
	enum kg_err err;
	int i, nt;

	*rows = NULL;
	*n = 0;
	db_fmt_ll(idbuf, sizeof(idbuf), user_id);
	if ((err = db_exec(&st_token_list, params, DB_ROWS, &res, NULL)) != KG_OK)
		goto out;
	nt = PQntuples(res);
	r = calloc(nt > 0 ? (size_t)nt : 1, sizeof(*r));
	if (r == NULL) {
		err = KG_ENOMEM;
		goto out;
	}
	for (i = 0; i < nt; i++) {
		db_copy(r[i].key, sizeof(r[i].key), res, i, 0);
		db_copy(r[i].created_at, sizeof(r[i].created_at), res, i, 1);
		db_copy(r[i].last_used_at, sizeof(r[i].last_used_at), res, i, 2);
		db_copy(r[i].expires_at, sizeof(r[i].expires_at), res, i, 3);
		db_copy(r[i].ip, sizeof(r[i].ip), res, i, 4);
		db_copy(r[i].user_agent, sizeof(r[i].user_agent), res, i, 5);
		db_copy(r[i].scopes, sizeof(r[i].scopes), res, i, 6);
		db_copy(r[i].granted, sizeof(r[i].granted), res, i, 7);
		r[i].api = PQgetvalue(res, i, 8)[0] == 't';
		db_copy(r[i].name, sizeof(r[i].name), res, i, 9);
	}
	*rows = r;
	*n = (size_t)nt;
	r = NULL;
out:
	free(r);
	PQclear(res);
	return err;
}

/* Tokens that are dead, or of an older credential generation than their account's. */
/* clang-format off */
static const struct db_stmt st_token_prune = { "token_prune", 0,
	"DELETE FROM api_keys k\n"
	"WHERE NOT (k.expires_at > now()\n"
	"           AND k.last_used_at + make_interval(secs => k.idle_timeout_s) > now())\n"
	"   OR k.credential_gen <> (SELECT CASE WHEN k.kind = 'api' THEN cu.api_gen\n"
	"                                       ELSE cu.credential_gen END\n"
	"                           FROM users cu WHERE cu.id = k.user_id)" };
/* clang-format on */

enum kg_err
db_token_prune(long *count)
{
	return db_change(&st_token_prune, NULL, count);
}

const struct db_stmt *const db_tokens_stmts[] = { &st_login_finish, &st_token_lookup,
	&st_token_refresh, &st_token_delete, &st_token_delete_all, &st_token_list,
	&st_token_prune, &st_api_token_create, NULL };
