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
#include "log.h"

#define TS(x) "to_char((" x ") AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"

#define LIVE(k) "(" k ".expires_at > now() AND " k ".last_used_at + make_interval(secs => " k ".idle_timeout_s) > now())"
/* A token's row as db_token_row() reads it; $1 = key, $2 = touch_interval. */
#define TOKEN_ROW \
	"k.user_id, encode(k.secret_digest, 'hex'), u.username, k.scopes::text," \
	" k.last_used_at < now() - make_interval(secs => $2)," \
	" extract(epoch FROM k.expires_at)::bigint," \
	" extract(epoch FROM k.last_used_at)::bigint," \
	" k.idle_timeout_s, u.email, " TS("u.created_at") \
	" FROM api_keys k JOIN users u ON u.id = k.user_id" \
	" WHERE k.key = $1 AND NOT u.disabled AND k.credential_gen = u.credential_gen AND " LIVE("k")
/*
 * A token issued under the account's current credential generation
 * (migration 0004): one issued by a login that raced a revocation of all
 * sessions has an older one, and is dead whether or not its row was seen
 * by that revocation's DELETE.
 */
#define CURRENT(k) "(" k ".credential_gen = (SELECT cu.credential_gen FROM users cu" \
	" WHERE cu.id = " k ".user_id))"
/*
 * Counting an attempt against a throttle row: the first attempt (blocked at
 * once when the limit is 1), then, on the row already there, attempts
 * (window w, limit m, first delay b, longest delay x: parameters) unless
 * the row is blocked. The delay doubles with each attempt past the limit.
 */
#define THROTTLE_FIRST(m, b) "CASE WHEN 1 >= " m "::int THEN now() + make_interval(secs => " b ") END"
#define THROTTLE_EXPIRED(w) "t.window_start <= now() - make_interval(secs => " w ")"
#define THROTTLE_NEXT(w) "(CASE WHEN " THROTTLE_EXPIRED(w) " THEN 1 ELSE t.attempts + 1 END)"
#define THROTTLE_COUNT(w, m, b, x) \
	" ON CONFLICT (scope, subject) DO UPDATE SET" \
	"  attempts = " THROTTLE_NEXT(w) "," \
	"  window_start = CASE WHEN " THROTTLE_EXPIRED(w) " THEN now() ELSE t.window_start END," \
	"  blocked_until = CASE WHEN " THROTTLE_NEXT(w) " >= " m "::int THEN now() + least(" \
	"   make_interval(secs => " x "), make_interval(secs => " b ")" \
	"   * power(2, least(" THROTTLE_NEXT(w) " - " m "::int, 30))) END" \
	" WHERE t.blocked_until IS NULL OR t.blocked_until <= now()"
#define THROTTLE_INSERT "INSERT INTO throttle AS t (scope, subject, attempts, window_start, blocked_until)"
#define USER_ROW(u) u ".id, " u ".username, " u ".email, " u ".password_hash, " u ".disabled, " \
	TS(u ".created_at") ", " u ".credential_gen"
/*
 * Statements that end sessions tell every listening worker (on every host)
 * in the same statement, so the notification is sent exactly when the
 * change commits. They return the number of rows removed.
 */
#define REVOKED_COUNT ", n AS (SELECT pg_notify('" DB_REVOKE_CHANNEL "', '')" \
	" WHERE EXISTS (SELECT 1 FROM d)) SELECT (SELECT count(*) FROM d) FROM n"
/*
 * Ending every session of an account: a new credential generation (g),
 * which kills the tokens of logins still in flight, the tokens deleted
 * (d), the token kept ($k, when given) moved to the new generation, and a
 * notification whenever the generation moved, since a racing login's
 * token may be cached on another host although d did not see its row.
 */
#define REVOKED_ALL(k) \
	" kp AS (UPDATE api_keys SET credential_gen = g.credential_gen FROM g" \
	" WHERE api_keys.user_id = g.id AND api_keys.key = " k ")," \
	" d AS (DELETE FROM api_keys WHERE user_id IN (SELECT id FROM g)" \
	" AND key IS DISTINCT FROM " k " RETURNING 1)," \
	" n AS (SELECT pg_notify('" DB_REVOKE_CHANNEL "', '') FROM g)" \
	" SELECT (SELECT count(*) FROM d) FROM n"
#define MIGRATE_LOCK_ID "7310413127405543"   /* arbitrary, fixed: "keygate migrate" */

enum db_stmt {
	ST_PING,
	ST_PRIVILEGES,
	ST_SET_TIMEOUT,
	ST_USER_INSERT,
	ST_USER_BY_NAME,
	ST_USER_BY_ID,
	ST_USER_SET_PASSWORD,
	ST_USER_REHASH,
	ST_HASH_CLASSES,
	ST_LOGIN_FINISH,
	ST_TOKEN_LOOKUP,
	ST_TOKEN_REFRESH,
	ST_TOKEN_DELETE,
	ST_TOKEN_DELETE_ALL,
	ST_TOKEN_LIST,
	ST_JOIN_BEGIN,
	ST_LOGIN_BEGIN,
	ST_THROTTLE_WAIT,
	ST_THROTTLE_CLEAR,
	ST_THROTTLE_RELEASE,
	ST_EVENT_INSERT,
	ST_EVENT_THROTTLED,
	ST_USER_SET_DISABLED,
	ST_USER_LIST,
	ST_EVENTS,
	ST_PRUNE_TOKENS,
	ST_PRUNE_THROTTLE,
	ST_PRUNE_EVENTS,
	ST__MAX
};

/* SQL laid out as SQL: */
/* clang-format off */
static const struct {
	const char *name;
	int nparams;
	const char *sql;
} db_stmts[ST__MAX] = {
	[ST_PING] = { "ping", 0, "SELECT 1" },
	/*
	 * What this role may not do of what keygate does (PREPARE checks no
	 * privilege: a statement fails only when it runs).
	 */
	[ST_PRIVILEGES] = { "privileges", 0,
	    "SELECT string_agg(what, ', ' ORDER BY what) FROM ("
	    " SELECT 'table ' || t AS what"
	    " FROM unnest(ARRAY['users', 'api_keys', 'throttle', 'auth_events']) t"
	    " WHERE NOT has_table_privilege(t, 'SELECT, INSERT, UPDATE, DELETE')"
	    " UNION ALL SELECT 'function keygate_login_finish'"
	    " FROM pg_proc p WHERE p.proname = 'keygate_login_finish'"
	    " AND NOT has_function_privilege(p.oid, 'EXECUTE')) m" },
	[ST_SET_TIMEOUT] = { "set_timeout", 1,
	    "SELECT set_config('statement_timeout', $1, false)" },
	[ST_USER_INSERT] = { "user_insert", 3,
	    "INSERT INTO users (username, email, password_hash) VALUES ($1, $2, $3) RETURNING id" },
	[ST_USER_BY_NAME] = { "user_by_name", 1,
	    "SELECT " USER_ROW("u") " FROM users u WHERE lower(u.username) = lower($1)" },
	[ST_USER_BY_ID] = { "user_by_id", 1,
	    "SELECT " USER_ROW("u") " FROM users u WHERE u.id = $1" },
	/* One statement, so that no old token outlives a committed password change. */
	[ST_USER_SET_PASSWORD] = { "user_set_password", 3,
	    "WITH g AS (UPDATE users SET password_hash = $2, password_changed_at = now(),"
	    " credential_gen = credential_gen + 1 WHERE id = $1 RETURNING id, credential_gen),"
	    REVOKED_ALL("$3") },
	[ST_USER_REHASH] = { "user_rehash", 3,
	    "UPDATE users SET password_hash = $3 WHERE id = $1 AND password_hash = $2" },
	/* Per parameter set ("$argon2id$v=..$m=..,t=..,p=..$"): count, oldest account's hash. */
	[ST_HASH_CLASSES] = { "hash_classes", 0,
	    "SELECT count(*), (array_agg(password_hash ORDER BY id))[1],"
	    " (SELECT password_hash FROM users ORDER BY id LIMIT 1)"
	    " FROM users WHERE password_hash LIKE '$argon2id$%'"
	    " GROUP BY substring(password_hash FROM '^\\$argon2id\\$v=[0-9]+\\$m=[0-9]+,t=[0-9]+,p=[0-9]+\\$')"
	    " ORDER BY 1 DESC, 2 LIMIT 4" },
	/*
	 * Everything a successful login writes, in one round trip and one
	 * transaction, and only if the account still has the credential
	 * generation $15 its password was checked under ($16: the address's
	 * throttle key, $8 the address as recorded): see
	 * keygate_login_finish in db/migrations/0004_credential_generation.sql.
	 */
	[ST_LOGIN_FINISH] = { "login_finish", 16,
	    "SELECT f.outcome, " TS("f.expires_at") ", f.trimmed FROM keygate_login_finish("
	    "$1, $2::bigint, $3, $4::text[], $5::boolean, $6::integer, $7::integer, $8, $9, $10,"
	    " $11::integer, $12::integer, $13, $14, $15::bigint, $16) f" },
	/* Everything GET /me and the token cache need, in one indexed lookup. */
	[ST_TOKEN_LOOKUP] = { "token_lookup", 2,
	    "SELECT " TOKEN_ROW },
	/*
	 * The same row, read again before the cached one expires, with
	 * last_used_at written in the same statement when it is due. It never
	 * waits for a row lock (SKIP LOCKED): its worker takes no request
	 * while it runs, and a locked token would hold up every worker in
	 * turn. The write is then left to the next touch_interval. The SELECT
	 * sees the row as it was before.
	 */
	[ST_TOKEN_REFRESH] = { "token_refresh", 2,
	    "WITH l AS (SELECT key FROM api_keys k WHERE k.key = $1"
	    " AND k.last_used_at < now() - make_interval(secs => $2) AND " LIVE("k")
	    " FOR UPDATE SKIP LOCKED),"
	    " t AS (UPDATE api_keys SET last_used_at = now() WHERE key IN (SELECT key FROM l))"
	    " SELECT " TOKEN_ROW },
	[ST_TOKEN_DELETE] = { "token_delete", 2,
	    "WITH d AS (DELETE FROM api_keys WHERE user_id = $1 AND key = $2 RETURNING 1)"
	    REVOKED_COUNT },
	[ST_TOKEN_DELETE_ALL] = { "token_delete_all", 2,
	    "WITH g AS (UPDATE users SET credential_gen = credential_gen + 1 WHERE id = $1"
	    " RETURNING id, credential_gen)," REVOKED_ALL("$2") },
	[ST_TOKEN_LIST] = { "token_list", 1,
	    "SELECT k.key, " TS("k.created_at") ", " TS("k.last_used_at") ", " TS("k.expires_at") ","
	    " coalesce(k.ip, ''), coalesce(k.user_agent, ''), k.scopes::text"
	    " FROM api_keys k WHERE k.user_id = $1 AND " LIVE("k") " AND " CURRENT("k")
	    " ORDER BY k.last_used_at DESC, k.created_at DESC LIMIT 1000" },
	/*
	 * Everything a registration needs before its hash, in one statement:
	 * an attempt counted against the address $1 (none when NULL; rule
	 * $2-$5: window, limit, first and longest delay), so that concurrent
	 * registrations cannot overrun the limit, and whether the username $6 and the email $7 (may be NULL)
	 * are taken. Returns whether the attempt was counted and the two.
	 */
	[ST_JOIN_BEGIN] = { "join_begin", 7,
	    "WITH a AS (" THROTTLE_INSERT
	    " SELECT 'join', $1, 1, now(), " THROTTLE_FIRST("$3", "$4") " WHERE $1::text IS NOT NULL"
	    THROTTLE_COUNT("$2", "$3", "$4", "$5") " RETURNING 1)"
	    " SELECT $1::text IS NULL OR EXISTS (SELECT 1 FROM a),"
	    " EXISTS (SELECT 1 FROM users WHERE lower(username) = lower($6)),"
	    " $7::text IS NOT NULL AND EXISTS (SELECT 1 FROM users"
	    "  WHERE email IS NOT NULL AND lower(email) = lower($7))" },
	/*
	 * Everything a login needs before its hash, in one statement (one
	 * round trip, one commit): an attempt counted against the address $1
	 * (none when NULL; rule $3-$6), then, only if the address was not
	 * blocked, against the account $2 (rule $7-$10), and the user $11 read.
	 * Returns whether each was counted, and the user's row (NULLs when
	 * there is none).
	 */
	[ST_LOGIN_BEGIN] = { "login_begin", 11,
	    "WITH a AS (" THROTTLE_INSERT
	    " SELECT 'addr', $1, 1, now(), " THROTTLE_FIRST("$4", "$5") " WHERE $1::text IS NOT NULL"
	    THROTTLE_COUNT("$3", "$4", "$5", "$6") " RETURNING 1),"
	    " c AS (" THROTTLE_INSERT
	    " SELECT 'user', $2, 1, now(), " THROTTLE_FIRST("$8", "$9")
	    " WHERE $1::text IS NULL OR EXISTS (SELECT 1 FROM a)"
	    THROTTLE_COUNT("$7", "$8", "$9", "$10") " RETURNING 1)"
	    " SELECT $1::text IS NULL OR EXISTS (SELECT 1 FROM a), EXISTS (SELECT 1 FROM c), "
	    USER_ROW("u") " FROM (SELECT 1) o LEFT JOIN users u ON lower(u.username) = lower($11)" },
	[ST_THROTTLE_WAIT] = { "throttle_wait", 2,
	    "SELECT greatest(1, ceil(extract(epoch FROM blocked_until - now())))::bigint"
	    " FROM throttle WHERE scope = $1 AND subject = $2 AND blocked_until > now()" },
	[ST_THROTTLE_CLEAR] = { "throttle_clear", 2,
	    "DELETE FROM throttle WHERE scope = $1 AND subject = $2" },
	/* Give back an attempt that turned out not to be a failure. */
	[ST_THROTTLE_RELEASE] = { "throttle_release", 3,
	    "UPDATE throttle SET attempts = greatest(attempts - 1, 0),"
	    " blocked_until = CASE WHEN attempts - 1 < $3::int THEN NULL ELSE blocked_until END"
	    " WHERE scope = $1 AND subject = $2" },
	[ST_EVENT_INSERT] = { "event_insert", 5,
	    "INSERT INTO auth_events (event, user_id, username, ip, user_agent)"
	    " VALUES ($1, $2, $3, $4, $5)" },
	/*
	 * A login refused by a block: the block (of the address $1, else of
	 * the account $2, as login_begin checks them) has one login_throttled
	 * row, counted up by each further refusal, so that a client cannot
	 * grow the table by being refused. $3 username, $4 address, $5 user
	 * agent. A block that ended meanwhile gets a row of its own.
	 */
	[ST_EVENT_THROTTLED] = { "event_throttled", 5,
	    "WITH b AS (SELECT scope, subject, blocked_until FROM throttle"
	    " WHERE ((scope = 'addr' AND subject = $1) OR (scope = 'user' AND subject = $2))"
	    " AND blocked_until > now() ORDER BY scope = 'addr' DESC LIMIT 1)"
	    " INSERT INTO auth_events AS e (event, username, ip, user_agent, throttle_scope,"
	    " throttle_subject, blocked_until)"
	    " SELECT 'login_throttled', $3, $4, $5, b.scope, b.subject, b.blocked_until"
	    " FROM (SELECT 1) o LEFT JOIN b ON true"
	    " ON CONFLICT (throttle_scope, throttle_subject, blocked_until)"
	    " WHERE blocked_until IS NOT NULL DO UPDATE SET count = e.count + 1" },
	/*
	 * Disabling ends every session of the account too, and moves its
	 * credential generation, so that enabling it later brings back no old
	 * token, not even one a login in flight wrote after the DELETE.
	 */
	[ST_USER_SET_DISABLED] = { "user_set_disabled", 2,
	    "WITH u AS (UPDATE users SET disabled = $2,"
	    " credential_gen = credential_gen + CASE WHEN $2::boolean THEN 1 ELSE 0 END"
	    " WHERE lower(username) = lower($1) RETURNING id),"
	    " k AS (DELETE FROM api_keys WHERE $2::boolean AND user_id IN (SELECT id FROM u)),"
	    " n AS (SELECT pg_notify('" DB_REVOKE_CHANNEL "', '') FROM u WHERE $2::boolean)"
	    " SELECT u.id, (SELECT count(*) FROM n) FROM u" },
	[ST_USER_LIST] = { "user_list", 0,
	    "SELECT u.id, u.username, coalesce(u.email, ''), u.disabled, " TS("u.created_at") ","
	    " (SELECT count(*) FROM api_keys k WHERE k.user_id = u.id AND " LIVE("k")
	    " AND k.credential_gen = u.credential_gen)"
	    " FROM users u ORDER BY u.id" },
	[ST_EVENTS] = { "events", 3,
	    "SELECT " TS("at") ", event, coalesce(user_id::text, ''), coalesce(username, ''),"
	    " coalesce(ip, ''), coalesce(user_agent, ''), count FROM auth_events"
	    " WHERE ($1::text IS NULL OR lower(username) = lower($1))"
	    " AND at >= coalesce($2::timestamptz, '-infinity') ORDER BY at, id LIMIT $3" },
	[ST_PRUNE_TOKENS] = { "prune_tokens", 0,
	    "DELETE FROM api_keys k WHERE NOT " LIVE("k") " OR NOT " CURRENT("k") },
	[ST_PRUNE_THROTTLE] = { "prune_throttle", 1,
	    "DELETE FROM throttle WHERE window_start < now() - make_interval(secs => $1)"
	    " AND (blocked_until IS NULL OR blocked_until < now())" },
	[ST_PRUNE_EVENTS] = { "prune_events", 1,
	    "DELETE FROM auth_events WHERE at < now() - make_interval(secs => $1)" },
};
/* clang-format on */

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
static void
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

static enum kg_err
db_connect(void)
{
	const char *const keys[] = { "application_name", "connect_timeout", "dbname", NULL };
	const char *const vals[] = { "keygate", db.connect_timeout, db.conninfo, NULL };
	const char *params[1];
	PGresult *res = NULL;
	enum kg_err err = KG_EDB;
	int i;

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
	err = KG_EDB;
	for (i = 0; i < ST__MAX; i++) {
		res = PQprepare(db.conn, db_stmts[i].name, db_stmts[i].sql, db_stmts[i].nparams, NULL);
		if (PQresultStatus(res) != PGRES_COMMAND_OK) {
			db_log_error(db_stmts[i].name, PQresultErrorMessage(res));
			goto out;
		}
		PQclear(res);
		res = NULL;
	}
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
	res = PQexecPrepared(db.conn, db_stmts[ST_SET_TIMEOUT].name, 1, params, NULL, NULL, 0);
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

/*
 * Run a prepared statement. A connection that broke since the last request
 * (a database restart) is re-established and the statement tried once more,
 * so that the first request after a restart does not fail.
 * On a unique violation returns KG_EUSERNAME_TAKEN with the constraint name
 * in constraint (when given); the caller maps it.
 */
static enum kg_err
db_exec(enum db_stmt s, const char *const *params, int want_rows, PGresult **out,
    char *constraint, size_t constraint_sz)
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
		res = PQexecPrepared(db.conn, db_stmts[s].name, db_stmts[s].nparams, params, NULL, NULL, 0);
		st = PQresultStatus(res);
		if (st == (want_rows ? PGRES_TUPLES_OK : PGRES_COMMAND_OK)) {
			*out = res;
			return KG_OK;
		}
		if (PQstatus(db.conn) == CONNECTION_BAD) {
			db_log_error(db_stmts[s].name, PQerrorMessage(db.conn));
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
		if (state != NULL && strcmp(state, "23505") == 0 && constraint != NULL) {
			const char *name = PQresultErrorField(res, PG_DIAG_CONSTRAINT_NAME);
			(void)snprintf(constraint, constraint_sz, "%s", name != NULL ? name : "");
			PQclear(res);
			return KG_EUSERNAME_TAKEN;
		}
		db_log_error(db_stmts[s].name, PQresultErrorMessage(res));
		PQclear(res);
		return KG_EDB;
	}
	return err;
}

static void
db_copy(char *dst, size_t dstsz, const PGresult *res, int row, int col)
{
	(void)kg_strlcpy(dst, PQgetisnull(res, row, col) ? "" : PQgetvalue(res, row, col), dstsz);
}

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

enum kg_err
db_privileges_missing(char *missing, size_t missingsz)
{
	PGresult *res;
	enum kg_err err = db_exec(ST_PRIVILEGES, NULL, 1, &res, NULL, 0);

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
	enum kg_err err = db_exec(ST_PING, NULL, 1, &res, NULL, 0);

	PQclear(res);
	return err;
}

enum kg_err
db_user_insert(const char *username, const char *email, const char *hash, long long *id)
{
	const char *params[3] = { username, email, hash };
	char constraint[128] = "";
	PGresult *res = NULL;
	enum kg_err err;

	err = db_exec(ST_USER_INSERT, params, 1, &res, constraint, sizeof(constraint));
	if (err == KG_EUSERNAME_TAKEN) {
		if (strcmp(constraint, "users_email_key") == 0)
			err = KG_EEMAIL_TAKEN;
		goto out;
	}
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

/* A USER_ROW() from column col of res's first row; KG_ENOTFOUND when it is NULL. */
static enum kg_err
db_user_row(const PGresult *res, int col, struct db_user *u)
{
	memset(u, 0, sizeof(*u));
	if (PQntuples(res) != 1 || PQnfields(res) < col + 7 || PQgetisnull(res, 0, col))
		return KG_ENOTFOUND;
	u->id = strtoll(PQgetvalue(res, 0, col), NULL, 10);
	db_copy(u->username, sizeof(u->username), res, 0, col + 1);
	u->has_email = !PQgetisnull(res, 0, col + 2);
	db_copy(u->email, sizeof(u->email), res, 0, col + 2);
	db_copy(u->password_hash, sizeof(u->password_hash), res, 0, col + 3);
	u->disabled = PQgetvalue(res, 0, col + 4)[0] == 't';
	db_copy(u->created_at, sizeof(u->created_at), res, 0, col + 5);
	u->credential_gen = strtoll(PQgetvalue(res, 0, col + 6), NULL, 10);
	return KG_OK;
}

static enum kg_err
db_user_fetch(enum db_stmt s, const char *param, struct db_user *u)
{
	const char *params[1] = { param };
	PGresult *res = NULL;
	enum kg_err err;

	memset(u, 0, sizeof(*u));
	if ((err = db_exec(s, params, 1, &res, NULL, 0)) == KG_OK)
		err = db_user_row(res, 0, u);
	PQclear(res);
	return err;
}

enum kg_err
db_user_by_name(const char *username, struct db_user *u)
{
	return db_user_fetch(ST_USER_BY_NAME, username, u);
}

enum kg_err
db_user_by_id(long long id, struct db_user *u)
{
	char idbuf[24];

	(void)snprintf(idbuf, sizeof(idbuf), "%lld", id);
	return db_user_fetch(ST_USER_BY_ID, idbuf, u);
}

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
	if ((err = db_exec(ST_HASH_CLASSES, NULL, 1, &res, NULL, 0)) != KG_OK)
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

/* Run a statement that changes rows; *count = rows affected (may be NULL). */
static enum kg_err
db_change(enum db_stmt s, const char *const *params, long *count)
{
	PGresult *res = NULL;
	enum kg_err err;

	if ((err = db_exec(s, params, 0, &res, NULL, 0)) == KG_OK && count != NULL)
		*count = strtol(PQcmdTuples(res), NULL, 10);
	PQclear(res);
	return err;
}

/* Run a revoking statement (REVOKED_COUNT); *count = tokens removed (may be NULL). */
static enum kg_err
db_revoke(enum db_stmt s, const char *const *params, long *count)
{
	PGresult *res = NULL;
	enum kg_err err;

	if ((err = db_exec(s, params, 1, &res, NULL, 0)) == KG_OK && count != NULL)
		*count = PQntuples(res) == 1 ? strtol(PQgetvalue(res, 0, 0), NULL, 10) : 0;
	PQclear(res);
	return err;
}

enum kg_err
db_user_set_password(long long id, const char *hash, const char *keep_key, long *revoked)
{
	char idbuf[24];
	const char *params[3] = { idbuf, hash, keep_key };

	(void)snprintf(idbuf, sizeof(idbuf), "%lld", id);
	return db_revoke(ST_USER_SET_PASSWORD, params, revoked);
}

enum kg_err
db_user_rehash(long long id, const char *old_hash, const char *hash)
{
	char idbuf[24];
	const char *params[3] = { idbuf, old_hash, hash };

	(void)snprintf(idbuf, sizeof(idbuf), "%lld", id);
	return db_change(ST_USER_REHASH, params, NULL);
}

/* The token's numeric and binary parameters as text, for the statements that insert one. */
struct db_token_params {
	char id[24], hex[CRYPTO_SHA256_LEN * 2 + 1], life[16], idle[16];
};

static void
db_token_params(const struct db_token_new *t, struct db_token_params *p)
{
	size_t i;

	(void)snprintf(p->id, sizeof(p->id), "%lld", t->user_id);
	(void)snprintf(p->life, sizeof(p->life), "%d", t->lifetime_s);
	(void)snprintf(p->idle, sizeof(p->idle), "%d", t->idle_s);
	for (i = 0; i < CRYPTO_SHA256_LEN; i++)
		(void)snprintf(p->hex + 2 * i, 3, "%02x", t->digest[i]);
}

enum kg_err
db_login_finish(const struct db_login_finish *l, enum db_login_outcome *outcome,
    char expires_at[DB_TS_LEN], long *trimmed)
{
	const struct db_token_new *t = l->token;
	struct db_token_params tp;
	char addr_max[16], max_tokens[16], gen[24];
	const char *params[16] = { t->key, tp.id, tp.hex, t->scopes, t->remember ? "true" : "false",
		tp.life, tp.idle, t->ip, t->user_agent, l->subject, addr_max, max_tokens,
		l->username, l->event_user_agent, gen, l->addr_subject };
	PGresult *res = NULL;
	const char *what;
	enum kg_err err;

	*outcome = DB_LOGIN_STALE;
	*trimmed = 0;
	db_token_params(t, &tp);
	(void)snprintf(addr_max, sizeof(addr_max), "%ld", l->addr_max);
	(void)snprintf(max_tokens, sizeof(max_tokens), "%d", l->max_tokens);
	(void)snprintf(gen, sizeof(gen), "%lld", l->credential_gen);
	if ((err = db_exec(ST_LOGIN_FINISH, params, 1, &res, NULL, 0)) != KG_OK)
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

/* Row 0 of a TOKEN_ROW result into *t. */
static enum kg_err
db_token_row(const PGresult *res, struct db_token *t)
{
	memset(t, 0, sizeof(*t));
	t->user_id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	if (db_hex_decode(PQgetvalue(res, 0, 1), t->digest, sizeof(t->digest)) != 0)
		return KG_EDB;
	db_copy(t->username, sizeof(t->username), res, 0, 2);
	db_copy(t->scopes, sizeof(t->scopes), res, 0, 3);
	t->needs_touch = PQgetvalue(res, 0, 4)[0] == 't';
	t->expires_at = strtoll(PQgetvalue(res, 0, 5), NULL, 10);
	t->last_used_at = strtoll(PQgetvalue(res, 0, 6), NULL, 10);
	t->idle_s = strtol(PQgetvalue(res, 0, 7), NULL, 10);
	t->has_email = !PQgetisnull(res, 0, 8);
	db_copy(t->email, sizeof(t->email), res, 0, 8);
	db_copy(t->created_at, sizeof(t->created_at), res, 0, 9);
	return KG_OK;
}

/* A TOKEN_ROW statement for key: KG_ENOTFOUND when it is not a live token. */
static enum kg_err
db_token_fetch(enum db_stmt st, const char *key, int touch_interval, struct db_token *t)
{
	char touch[16];
	const char *params[2] = { key, touch };
	PGresult *res = NULL;
	enum kg_err err;

	memset(t, 0, sizeof(*t));
	(void)snprintf(touch, sizeof(touch), "%d", touch_interval);
	if ((err = db_exec(st, params, 1, &res, NULL, 0)) != KG_OK)
		goto out;
	if (PQntuples(res) != 1) {
		err = KG_ENOTFOUND;
		goto out;
	}
	err = db_token_row(res, t);
out:
	PQclear(res);
	return err;
}

enum kg_err
db_token_lookup(const char *key, int touch_interval, struct db_token *t)
{
	return db_token_fetch(ST_TOKEN_LOOKUP, key, touch_interval, t);
}

enum kg_err
db_token_refresh(const char *key, int touch_interval, struct db_token *t)
{
	return db_token_fetch(ST_TOKEN_REFRESH, key, touch_interval, t);
}

enum kg_err
db_token_delete(long long user_id, const char *key, long *deleted)
{
	char idbuf[24];
	const char *params[2] = { idbuf, key };

	(void)snprintf(idbuf, sizeof(idbuf), "%lld", user_id);
	return db_revoke(ST_TOKEN_DELETE, params, deleted);
}

enum kg_err
db_token_delete_all(long long user_id, const char *keep_key, long *deleted)
{
	char idbuf[24];
	const char *params[2] = { idbuf, keep_key };

	(void)snprintf(idbuf, sizeof(idbuf), "%lld", user_id);
	return db_revoke(ST_TOKEN_DELETE_ALL, params, deleted);
}

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
	(void)snprintf(idbuf, sizeof(idbuf), "%lld", user_id);
	if ((err = db_exec(ST_TOKEN_LIST, params, 1, &res, NULL, 0)) != KG_OK)
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
	}
	*rows = r;
	*n = (size_t)nt;
	r = NULL;
out:
	free(r);
	PQclear(res);
	return err;
}

static void
db_fmt_ll(char *buf, size_t sz, long long v)
{
	(void)snprintf(buf, sz, "%lld", v);
}

/* A rule as the four text parameters of THROTTLE_COUNT; buf holds them. */
static void
db_throttle_params(const struct db_throttle_rule *r, char buf[4][24], const char **params)
{
	db_fmt_ll(buf[0], sizeof(buf[0]), r->window_s);
	db_fmt_ll(buf[1], sizeof(buf[1]), r->max);
	db_fmt_ll(buf[2], sizeof(buf[2]), r->delay_s);
	db_fmt_ll(buf[3], sizeof(buf[3]), r->max_delay_s);
	params[0] = buf[0];
	params[1] = buf[1];
	params[2] = buf[2];
	params[3] = buf[3];
}

/* (scope, subject) is blocked: KG_ETHROTTLED, with the seconds left (at least 1). */
static enum kg_err
db_throttled(const char *scope, const char *subject, long *retry_after)
{
	const char *params[2] = { scope, subject };
	PGresult *res = NULL;

	*retry_after = 1;
	if (db_exec(ST_THROTTLE_WAIT, params, 1, &res, NULL, 0) == KG_OK && PQntuples(res) == 1)
		*retry_after = strtol(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	return KG_ETHROTTLED;
}

enum kg_err
db_join_begin(const char *addr, const struct db_throttle_rule *rule, const char *username,
    const char *email, long *retry_after)
{
	char r[4][24];
	const char *params[7] = { addr };
	PGresult *res = NULL;
	enum kg_err err;

	*retry_after = 0;
	db_throttle_params(rule, r, params + 1);
	params[5] = username;
	params[6] = email;
	if ((err = db_exec(ST_JOIN_BEGIN, params, 1, &res, NULL, 0)) != KG_OK)
		goto out;
	if (PQntuples(res) != 1) {
		err = KG_ESYS;
		goto out;
	}
	if (PQgetvalue(res, 0, 0)[0] != 't')
		err = db_throttled("join", addr, retry_after);
	else if (PQgetvalue(res, 0, 1)[0] == 't')
		err = KG_EUSERNAME_TAKEN;
	else if (PQgetvalue(res, 0, 2)[0] == 't')
		err = KG_EEMAIL_TAKEN;
out:
	PQclear(res);
	return err;
}

enum kg_err
db_login_begin(const char *addr, const char *subject, const struct db_throttle_rule *addr_rule,
    const struct db_throttle_rule *user_rule, const char *username, struct db_user *u,
    long *retry_after)
{
	char arule[4][24], urule[4][24];
	const char *params[11] = { addr, subject };
	PGresult *res = NULL;
	enum kg_err err;

	*retry_after = 0;
	memset(u, 0, sizeof(*u));
	db_throttle_params(addr_rule, arule, params + 2);
	db_throttle_params(user_rule, urule, params + 6);
	params[10] = username;
	if ((err = db_exec(ST_LOGIN_BEGIN, params, 1, &res, NULL, 0)) != KG_OK)
		goto out;
	if (PQntuples(res) != 1) {
		err = KG_ESYS;
		goto out;
	}
	if (PQgetvalue(res, 0, 0)[0] != 't') {
		err = db_throttled("addr", addr, retry_after);
		goto out;
	}
	if (PQgetvalue(res, 0, 1)[0] != 't') {
		/* The account is blocked: this was no attempt against the address. */
		if (addr != NULL && db_throttle_release("addr", addr, (int)addr_rule->max) != KG_OK)
			log_warnx("could not release a login attempt");
		err = db_throttled("user", subject, retry_after);
		goto out;
	}
	err = username != NULL ? db_user_row(res, 2, u) : KG_ENOTFOUND;
out:
	PQclear(res);
	return err;
}

enum kg_err
db_throttle_clear(const char *scope, const char *subject)
{
	const char *params[2] = { scope, subject };

	return db_change(ST_THROTTLE_CLEAR, params, NULL);
}

enum kg_err
db_throttle_release(const char *scope, const char *subject, int max)
{
	char m[16];
	const char *params[3] = { scope, subject, m };

	(void)snprintf(m, sizeof(m), "%d", max);
	return db_change(ST_THROTTLE_RELEASE, params, NULL);
}

enum kg_err
db_event_insert(const char *event, long long user_id, const char *username, const char *ip,
    const char *user_agent)
{
	char idbuf[24];
	const char *params[5] = { event, user_id > 0 ? idbuf : NULL, username, ip, user_agent };

	db_fmt_ll(idbuf, sizeof(idbuf), user_id);
	return db_change(ST_EVENT_INSERT, params, NULL);
}

enum kg_err
db_event_throttled(const char *addr, const char *subject, const char *username,
    const char *ip, const char *user_agent)
{
	const char *params[5] = { addr, subject, username, ip, user_agent };

	return db_change(ST_EVENT_THROTTLED, params, NULL);
}

enum kg_err
db_user_set_disabled(const char *username, int disabled, long long *id)
{
	const char *params[2] = { username, disabled ? "true" : "false" };
	PGresult *res = NULL;
	enum kg_err err;

	if ((err = db_exec(ST_USER_SET_DISABLED, params, 1, &res, NULL, 0)) != KG_OK)
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

/* Run a query and hand each row's columns to fn as strings. */
static enum kg_err
db_each(enum db_stmt s, const char *const *params, db_row_fn fn, void *arg)
{
	const char *cols[16];
	PGresult *res = NULL;
	enum kg_err err;
	int i, j, nf;

	if ((err = db_exec(s, params, 1, &res, NULL, 0)) != KG_OK)
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
db_user_list(db_row_fn fn, void *arg)
{
	return db_each(ST_USER_LIST, NULL, fn, arg);
}

enum kg_err
db_events(const char *username, const char *since, long limit, db_row_fn fn, void *arg)
{
	char lim[24];
	const char *params[3] = { username, since, lim };

	db_fmt_ll(lim, sizeof(lim), limit);
	return db_each(ST_EVENTS, params, fn, arg);
}

enum kg_err
db_prune(long throttle_window_s, long retention_s, long counts[3])
{
	char w[24], r[24];
	const char *pt[1] = { w }, *pe[1] = { r };
	enum kg_err err;

	db_fmt_ll(w, sizeof(w), throttle_window_s);
	db_fmt_ll(r, sizeof(r), retention_s);
	if ((err = db_change(ST_PRUNE_TOKENS, NULL, &counts[0])) != KG_OK)
		return err;
	if ((err = db_change(ST_PRUNE_THROTTLE, pt, &counts[1])) != KG_OK)
		return err;
	return db_change(ST_PRUNE_EVENTS, pe, &counts[2]);
}

/*
 * Migrations run with plain PQexecParams: the application statements cannot
 * be prepared before the tables they use exist. The migration files are
 * trusted input from the package, never request data.
 */
static enum kg_err
db_migrate_sql(const char *migration_sql, int nparams, const char *const *params)
{
	PGresult *res;
	ExecStatusType st;
	enum kg_err err = KG_OK;

	res = PQexecParams(db.conn, migration_sql, nparams, NULL, params, NULL, NULL, 0);
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

	db.prepare = 0;
	if ((err = db_connect()) != KG_OK)
		return err;
	/* Serialises concurrent `keygate migrate` runs; released with the session. */
	if ((err = db_migrate_sql("SELECT pg_advisory_lock(" MIGRATE_LOCK_ID ")", 0, NULL)) != KG_OK)
		return err;
	return db_migrate_sql("CREATE TABLE IF NOT EXISTS schema_migrations ("
	    " version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())", 0, NULL);
}

enum kg_err
db_migrate_applied(const char *version, int *applied)
{
	const char *params[1] = { version };
	PGresult *res;
	enum kg_err err = KG_OK;

	res = PQexecParams(db.conn, "SELECT 1 FROM schema_migrations WHERE version = $1", 1, NULL,
	    params, NULL, NULL, 0);
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
	res = PQexec(db.conn, migration_sql);
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
