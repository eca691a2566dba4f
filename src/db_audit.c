/*
 * db_audit.c: the audit aggregate (auth_events). Recording events, the
 * one row per block of refused logins, the listing, pruning. Each
 * statement is written out as it would be typed into psql.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "db.h"
#include "db_conn.h"

/* The events, as migration 0002's CHECK (auth_events.event) lists them. */
static const char *const db_event_names[DB_EVENT__MAX] = {
	[DB_EVENT_JOIN] = "join",
	[DB_EVENT_LOGIN_OK] = "login_ok",
	[DB_EVENT_LOGIN_FAILED] = "login_failed",
	[DB_EVENT_LOGIN_THROTTLED] = "login_throttled",
	[DB_EVENT_LOGOUT] = "logout",
	[DB_EVENT_LOGOUT_ALL] = "logout_all",
	[DB_EVENT_TOKEN_REVOKED] = "token_revoked",
	[DB_EVENT_PASSWORD_CHANGED] = "password_changed",
	[DB_EVENT_USER_DISABLED] = "user_disabled",
	[DB_EVENT_USER_ENABLED] = "user_enabled",
	[DB_EVENT_SCOPE_GRANTED] = "scope_granted",
	[DB_EVENT_SCOPE_UNGRANTED] = "scope_ungranted",
	[DB_EVENT_API_TOKEN_CREATED] = "api_token_created",
};

const char *
db_event_name(enum db_event event)
{
	return (unsigned)event < DB_EVENT__MAX ? db_event_names[event] : NULL;
}

/* clang-format off */
static const struct db_stmt st_event_insert = { "event_insert", 6,
	"INSERT INTO auth_events (event, user_id, username, ip, user_agent, detail)\n"
	"VALUES ($1, $2, $3, $4, $5, $6)" };
/* clang-format on */

enum kg_err
db_event_insert(enum db_event event, long long user_id, const char *username, const char *ip,
    const char *user_agent, const char *detail)
{
	char idbuf[24];
	const char *params[6] = { db_event_name(event), user_id > 0 ? idbuf : NULL, username,
		ip, user_agent, detail };

	db_fmt_ll(idbuf, sizeof(idbuf), user_id);
	return db_change(&st_event_insert, params, NULL);
}

/* The parameters of event_throttled ($n is the index + 1). */
enum et_param {
	ET_ADDR,    /* the address's throttle key (NULL: none) */
	ET_SUBJECT, /* the account's throttle key */
	ET_USERNAME,
	ET_IP,
	ET_USER_AGENT,
	ET_ADDR_SCOPE, /* DB_SCOPE_ADDR */
	ET_USER_SCOPE, /* DB_SCOPE_USER */
	ET_EVENT,      /* DB_EVENT_LOGIN_THROTTLED */
	ET__MAX
};

/*
 * A login refused by a block: the block (of the address $1, else of the
 * account $2, as login_begin checks them) has one login_throttled row,
 * counted up by each further refusal, so that a client cannot grow the
 * table by being refused. $3 username, $4 address, $5 user agent. A block
 * that ended meanwhile gets a row of its own.
 */
/* clang-format off */
static const struct db_stmt st_event_throttled = { "event_throttled", ET__MAX,
	"WITH b AS (SELECT scope, subject, blocked_until\n"
	"           FROM throttle\n"
	"           WHERE ((scope = $6 AND subject = $1) OR (scope = $7 AND subject = $2))\n"
	"             AND blocked_until > now()\n"
	"           ORDER BY scope = $6 DESC\n"
	"           LIMIT 1)\n"
	"INSERT INTO auth_events AS e (event, username, ip, user_agent,\n"
	"                              throttle_scope, throttle_subject, blocked_until)\n"
	"SELECT $8::text, $3, $4, $5, b.scope, b.subject, b.blocked_until\n"
	"FROM (SELECT 1) o LEFT JOIN b ON true\n"
	"ON CONFLICT (throttle_scope, throttle_subject, blocked_until) WHERE blocked_until IS NOT NULL\n"
	"DO UPDATE SET count = e.count + 1" };
/* clang-format on */

enum kg_err
db_event_throttled(const char *addr, const char *subject, const char *username, const char *ip,
    const char *user_agent)
{
	const char *params[ET__MAX];

	params[ET_ADDR] = addr;
	params[ET_SUBJECT] = subject;
	params[ET_USERNAME] = username;
	params[ET_IP] = ip;
	params[ET_USER_AGENT] = user_agent;
	params[ET_ADDR_SCOPE] = db_scope_name(DB_SCOPE_ADDR);
	params[ET_USER_SCOPE] = db_scope_name(DB_SCOPE_USER);
	params[ET_EVENT] = db_event_name(DB_EVENT_LOGIN_THROTTLED);
	return db_change(&st_event_throttled, params, NULL);
}

/* Events of username $1 (NULL: all) since $2 (NULL: all), oldest first, at most $3. */
/* clang-format off */
static const struct db_stmt st_events = { "events", 3,
	"SELECT to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), event,\n"
	"       coalesce(user_id::text, ''), coalesce(username, ''),\n"
	"       coalesce(ip, ''), coalesce(user_agent, ''), count, coalesce(detail, '')\n"
	"FROM auth_events\n"
	"WHERE ($1::text IS NULL OR lower(username) = lower($1))\n"
	"  AND at >= coalesce($2::timestamptz, '-infinity')\n"
	"ORDER BY at, id\n"
	"LIMIT $3" };
/* clang-format on */

enum kg_err
db_events(const char *username, const char *since, long limit, db_row_fn fn, void *arg)
{
	char lim[24];
	const char *params[3] = { username, since, lim };

	db_fmt_ll(lim, sizeof(lim), limit);
	return db_each(&st_events, params, fn, arg);
}

/* clang-format off */
static const struct db_stmt st_event_prune = { "event_prune", 1,
	"DELETE FROM auth_events WHERE at < now() - make_interval(secs => $1)" };
/* clang-format on */

enum kg_err
db_event_prune(long retention_s, long *count)
{
	return db_change_n(&st_event_prune, retention_s, count);
}

const struct db_stmt *const db_audit_stmts[] = { &st_event_insert, &st_event_throttled,
	&st_events, &st_event_prune, NULL };
