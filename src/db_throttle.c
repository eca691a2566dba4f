/*
 * db_throttle.c: the throttle aggregate. Attempts counted in one statement
 * before any hash (registrations, logins), blocks, giving an attempt back,
 * pruning. Each statement is written out as it would be typed into psql.
 *
 * Counting an attempt against a throttle row (scope, subject), with a rule
 * of window w seconds, limit m, first delay b and longest delay x: the
 * first attempt inserts the row (blocked at once when m is 1); on the row
 * already there, unless it is blocked, the attempt is counted (from 1
 * again when the window has passed) and, from the m-th on, the row is
 * blocked for b seconds doubling with each attempt past the limit, at most
 * x. A blocked row is left alone, and the statement's RETURNING says
 * whether the attempt was counted.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "db.h"
#include "db_conn.h"
#include "log.h"

/* The scopes, as migration 0002's CHECK (throttle.scope) lists them. */
static const char *const db_scope_names[DB_SCOPE__MAX] = {
	[DB_SCOPE_USER] = "user",
	[DB_SCOPE_ADDR] = "addr",
	[DB_SCOPE_JOIN] = "join",
};

const char *
db_scope_name(enum db_scope scope)
{
	return (unsigned)scope < DB_SCOPE__MAX ? db_scope_names[scope] : NULL;
}

/* A rule's four parameters as text, in the order the statements take them. */
struct db_rule_params {
	char window_s[24], max[24], delay_s[24], max_delay_s[24];
};

static void
db_rule_params(const struct db_throttle_rule *r, struct db_rule_params *p)
{
	db_fmt_ll(p->window_s, sizeof(p->window_s), r->window_s);
	db_fmt_ll(p->max, sizeof(p->max), r->max);
	db_fmt_ll(p->delay_s, sizeof(p->delay_s), r->delay_s);
	db_fmt_ll(p->max_delay_s, sizeof(p->max_delay_s), r->max_delay_s);
}

/* The seconds left of the block of (scope $1, subject $2); no row: not blocked. */
/* clang-format off */
static const struct db_stmt st_throttle_wait = { "throttle_wait", 2,
	"SELECT greatest(1, ceil(extract(epoch FROM blocked_until - now())))::bigint\n"
	"FROM throttle\n"
	"WHERE scope = $1 AND subject = $2 AND blocked_until > now()" };
/* clang-format on */

/* (scope, subject) is blocked: KG_ETHROTTLED, with the seconds left (at least 1). */
static enum kg_err
db_throttled(enum db_scope scope, const char *subject, long *retry_after)
{
	const char *params[2] = { db_scope_name(scope), subject };
	PGresult *res = NULL;

	*retry_after = 1;
	if (db_exec(&st_throttle_wait, params, DB_ROWS, &res, NULL) == KG_OK && PQntuples(res) == 1)
		*retry_after = strtol(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	return KG_ETHROTTLED;
}

/* The parameters of join_begin ($n is the index + 1). */
enum jb_param {
	JB_ADDR,     /* the client's address (NULL: none, nothing counted) */
	JB_WINDOW_S, /* the rule: window, limit, first and longest delay */
	JB_MAX,
	JB_DELAY_S,
	JB_MAX_DELAY_S,
	JB_USERNAME,
	JB_EMAIL, /* NULL: none */
	JB_SCOPE, /* DB_SCOPE_JOIN */
	JB__MAX
};

/*
 * Everything a registration needs before its hash, in one statement: an
 * attempt counted against the address $1 (see the top of this file), so
 * that concurrent registrations cannot overrun the limit, and whether the
 * username $6 and the email $7 are taken. Answers whether the attempt was
 * counted (or there was none to count), and the two.
 */
/* clang-format off */
static const struct db_stmt st_join_begin = { "join_begin", JB__MAX,
	"WITH a AS (\n"
	"    INSERT INTO throttle AS t (scope, subject, attempts, window_start, blocked_until)\n"
	"    SELECT $8::text, $1, 1, now(),\n"
	"           CASE WHEN 1 >= $3::int THEN now() + make_interval(secs => $4) END\n"
	"    WHERE $1::text IS NOT NULL\n"
	"    ON CONFLICT (scope, subject) DO UPDATE SET\n"
	"        attempts = CASE WHEN t.window_start <= now() - make_interval(secs => $2)\n"
	"                        THEN 1 ELSE t.attempts + 1 END,\n"
	"        window_start = CASE WHEN t.window_start <= now() - make_interval(secs => $2)\n"
	"                            THEN now() ELSE t.window_start END,\n"
	"        blocked_until = CASE\n"
	"            WHEN (CASE WHEN t.window_start <= now() - make_interval(secs => $2)\n"
	"                       THEN 1 ELSE t.attempts + 1 END) >= $3::int\n"
	"            THEN now() + least(make_interval(secs => $5),\n"
	"                make_interval(secs => $4) * power(2, least(\n"
	"                    (CASE WHEN t.window_start <= now() - make_interval(secs => $2)\n"
	"                          THEN 1 ELSE t.attempts + 1 END) - $3::int, 30)))\n"
	"            END\n"
	"    WHERE t.blocked_until IS NULL OR t.blocked_until <= now()\n"
	"    RETURNING 1)\n"
	"SELECT $1::text IS NULL OR EXISTS (SELECT 1 FROM a),\n"
	"       EXISTS (SELECT 1 FROM users WHERE lower(username) = lower($6)),\n"
	"       $7::text IS NOT NULL\n"
	"           AND EXISTS (SELECT 1 FROM users WHERE email IS NOT NULL AND lower(email) = lower($7))" };
/* clang-format on */

enum kg_err
db_join_begin(const char *addr, const struct db_throttle_rule *rule, const char *username,
    const char *email, long *retry_after)
{
	struct db_rule_params r;
	const char *params[JB__MAX];
	PGresult *res = NULL;
	enum kg_err err;

	*retry_after = 0;
	db_rule_params(rule, &r);
	params[JB_ADDR] = addr;
	params[JB_WINDOW_S] = r.window_s;
	params[JB_MAX] = r.max;
	params[JB_DELAY_S] = r.delay_s;
	params[JB_MAX_DELAY_S] = r.max_delay_s;
	params[JB_USERNAME] = username;
	params[JB_EMAIL] = email;
	params[JB_SCOPE] = db_scope_name(DB_SCOPE_JOIN);
	if ((err = db_exec(&st_join_begin, params, DB_ROWS, &res, NULL)) != KG_OK)
		goto out;
	if (PQntuples(res) != 1 || PQnfields(res) != 3) {
		err = KG_EDB;
		goto out;
	}
	if (PQgetvalue(res, 0, 0)[0] != 't')
		err = db_throttled(DB_SCOPE_JOIN, addr, retry_after);
	else if (PQgetvalue(res, 0, 1)[0] == 't')
		err = KG_EUSERNAME_TAKEN;
	else if (PQgetvalue(res, 0, 2)[0] == 't')
		err = KG_EEMAIL_TAKEN;
out:
	PQclear(res);
	return err;
}

/* The parameters of login_begin ($n is the index + 1). */
enum lb_param {
	LB_ADDR,          /* the client address's throttle key (NULL: none) */
	LB_SUBJECT,       /* the account's throttle key */
	LB_ADDR_WINDOW_S, /* the address's rule */
	LB_ADDR_MAX,
	LB_ADDR_DELAY_S,
	LB_ADDR_MAX_DELAY_S,
	LB_USER_WINDOW_S, /* the account's rule */
	LB_USER_MAX,
	LB_USER_DELAY_S,
	LB_USER_MAX_DELAY_S,
	LB_USERNAME,   /* NULL: none to read */
	LB_ADDR_SCOPE, /* DB_SCOPE_ADDR */
	LB_USER_SCOPE, /* DB_SCOPE_USER */
	LB__MAX
};

/*
 * Everything a login needs before its hash, in one statement (one round
 * trip, one commit): an attempt counted against the address $1 (rule
 * $3-$6), then, only if the address was not blocked, against the account
 * $2 (rule $7-$10), and the user $11 read. Answers whether each was
 * counted, and the user's row (NULLs when there is none) in the columns
 * of enum db_user_col.
 */
/* clang-format off */
static const struct db_stmt st_login_begin = { "login_begin", LB__MAX,
	"WITH a AS (\n"
	"    INSERT INTO throttle AS t (scope, subject, attempts, window_start, blocked_until)\n"
	"    SELECT $12::text, $1, 1, now(),\n"
	"           CASE WHEN 1 >= $4::int THEN now() + make_interval(secs => $5) END\n"
	"    WHERE $1::text IS NOT NULL\n"
	"    ON CONFLICT (scope, subject) DO UPDATE SET\n"
	"        attempts = CASE WHEN t.window_start <= now() - make_interval(secs => $3)\n"
	"                        THEN 1 ELSE t.attempts + 1 END,\n"
	"        window_start = CASE WHEN t.window_start <= now() - make_interval(secs => $3)\n"
	"                            THEN now() ELSE t.window_start END,\n"
	"        blocked_until = CASE\n"
	"            WHEN (CASE WHEN t.window_start <= now() - make_interval(secs => $3)\n"
	"                       THEN 1 ELSE t.attempts + 1 END) >= $4::int\n"
	"            THEN now() + least(make_interval(secs => $6),\n"
	"                make_interval(secs => $5) * power(2, least(\n"
	"                    (CASE WHEN t.window_start <= now() - make_interval(secs => $3)\n"
	"                          THEN 1 ELSE t.attempts + 1 END) - $4::int, 30)))\n"
	"            END\n"
	"    WHERE t.blocked_until IS NULL OR t.blocked_until <= now()\n"
	"    RETURNING 1),\n"
	"c AS (\n"
	"    INSERT INTO throttle AS t (scope, subject, attempts, window_start, blocked_until)\n"
	"    SELECT $13::text, $2, 1, now(),\n"
	"           CASE WHEN 1 >= $8::int THEN now() + make_interval(secs => $9) END\n"
	"    WHERE $1::text IS NULL OR EXISTS (SELECT 1 FROM a)\n"
	"    ON CONFLICT (scope, subject) DO UPDATE SET\n"
	"        attempts = CASE WHEN t.window_start <= now() - make_interval(secs => $7)\n"
	"                        THEN 1 ELSE t.attempts + 1 END,\n"
	"        window_start = CASE WHEN t.window_start <= now() - make_interval(secs => $7)\n"
	"                            THEN now() ELSE t.window_start END,\n"
	"        blocked_until = CASE\n"
	"            WHEN (CASE WHEN t.window_start <= now() - make_interval(secs => $7)\n"
	"                       THEN 1 ELSE t.attempts + 1 END) >= $8::int\n"
	"            THEN now() + least(make_interval(secs => $10),\n"
	"                make_interval(secs => $9) * power(2, least(\n"
	"                    (CASE WHEN t.window_start <= now() - make_interval(secs => $7)\n"
	"                          THEN 1 ELSE t.attempts + 1 END) - $8::int, 30)))\n"
	"            END\n"
	"    WHERE t.blocked_until IS NULL OR t.blocked_until <= now()\n"
	"    RETURNING 1)\n"
	"SELECT $1::text IS NULL OR EXISTS (SELECT 1 FROM a),\n"
	"       EXISTS (SELECT 1 FROM c),\n"
	"       u.id, u.username, u.email, u.password_hash, u.disabled,\n"
	"       to_char(u.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),\n"
	"       u.credential_gen, u.api_gen, u.scopes::text\n"
	"FROM (SELECT 1) o LEFT JOIN users u ON lower(u.username) = lower($11)" };
/* clang-format on */

enum kg_err
db_login_begin(const char *addr, const char *subject, const struct db_throttle_rule *addr_rule,
    const struct db_throttle_rule *user_rule, const char *username, struct db_user *u,
    long *retry_after)
{
	struct db_rule_params ar, ur;
	const char *params[LB__MAX];
	PGresult *res = NULL;
	enum kg_err err;

	*retry_after = 0;
	memset(u, 0, sizeof(*u));
	db_rule_params(addr_rule, &ar);
	db_rule_params(user_rule, &ur);
	params[LB_ADDR] = addr;
	params[LB_SUBJECT] = subject;
	params[LB_ADDR_WINDOW_S] = ar.window_s;
	params[LB_ADDR_MAX] = ar.max;
	params[LB_ADDR_DELAY_S] = ar.delay_s;
	params[LB_ADDR_MAX_DELAY_S] = ar.max_delay_s;
	params[LB_USER_WINDOW_S] = ur.window_s;
	params[LB_USER_MAX] = ur.max;
	params[LB_USER_DELAY_S] = ur.delay_s;
	params[LB_USER_MAX_DELAY_S] = ur.max_delay_s;
	params[LB_USERNAME] = username;
	params[LB_ADDR_SCOPE] = db_scope_name(DB_SCOPE_ADDR);
	params[LB_USER_SCOPE] = db_scope_name(DB_SCOPE_USER);
	if ((err = db_exec(&st_login_begin, params, DB_ROWS, &res, NULL)) != KG_OK)
		goto out;
	if (PQntuples(res) != 1 || PQnfields(res) != 2 + DB_USER_COLS) {
		err = KG_EDB;
		goto out;
	}
	if (PQgetvalue(res, 0, 0)[0] != 't') {
		err = db_throttled(DB_SCOPE_ADDR, addr, retry_after);
		goto out;
	}
	if (PQgetvalue(res, 0, 1)[0] != 't') {
		/* The account is blocked: this was no attempt against the address. */
		if (addr != NULL &&
		    db_throttle_release(DB_SCOPE_ADDR, addr, (int)addr_rule->max) != KG_OK)
			log_warnx("could not release a login attempt");
		err = db_throttled(DB_SCOPE_USER, subject, retry_after);
		goto out;
	}
	err = username != NULL ? db_user_row(res, 2, u) : KG_ENOTFOUND;
out:
	PQclear(res);
	return err;
}

/* clang-format off */
static const struct db_stmt st_throttle_clear = { "throttle_clear", 2,
	"DELETE FROM throttle WHERE scope = $1 AND subject = $2" };
/* clang-format on */

enum kg_err
db_throttle_clear(enum db_scope scope, const char *subject)
{
	const char *params[2] = { db_scope_name(scope), subject };

	return db_change(&st_throttle_clear, params, NULL);
}

/* Give back an attempt of (scope $1, subject $2) that turned out not to be a failure. */
/* clang-format off */
static const struct db_stmt st_throttle_release = { "throttle_release", 3,
	"UPDATE throttle\n"
	"SET attempts = greatest(attempts - 1, 0),\n"
	"    blocked_until = CASE WHEN attempts - 1 < $3::int THEN NULL ELSE blocked_until END\n"
	"WHERE scope = $1 AND subject = $2" };
/* clang-format on */

enum kg_err
db_throttle_release(enum db_scope scope, const char *subject, int max)
{
	char m[16];
	const char *params[3] = { db_scope_name(scope), subject, m };

	db_fmt_ll(m, sizeof(m), max);
	return db_change(&st_throttle_release, params, NULL);
}

/* Rows whose window began more than $1 seconds ago and that are not blocked. */
/* clang-format off */
static const struct db_stmt st_throttle_prune = { "throttle_prune", 1,
	"DELETE FROM throttle\n"
	"WHERE window_start < now() - make_interval(secs => $1)\n"
	"  AND (blocked_until IS NULL OR blocked_until < now())" };
/* clang-format on */

enum kg_err
db_throttle_prune(long window_s, long *count)
{
	return db_change_n(&st_throttle_prune, window_s, count);
}

const struct db_stmt *const db_throttle_stmts[] = { &st_throttle_wait, &st_join_begin,
	&st_login_begin, &st_throttle_clear, &st_throttle_release, &st_throttle_prune, NULL };
