/*
 * db: the store, and with its parts (db_*.c) the only includer of
 * libpq-fe.h. One connection per process (db.c), every statement prepared
 * once per connection, typed wrappers per query, one file per aggregate:
 * users (db_users.c), tokens (db_tokens.c), throttle (db_throttle.c),
 * audit (db_audit.c), migrations (db_migrate.c). No SQL is ever assembled
 * from request data.
 */
#ifndef DB_H
#define DB_H

#include <stddef.h>

#include "crypto.h"
#include "kg.h"

struct conf;

#define DB_TS_LEN KG_TS_LEN
#define DB_NAME_MAX KG_NAME_MAX
#define DB_EMAIL_MAX KG_EMAIL_MAX
#define DB_HASH_MAX 256
#define DB_SCOPES_MAX 1100  /* text form of text[] */
#define DB_KEY_MAX 64
#define DB_REVOKE_CHANNEL "keygate_revoke"  /* NOTIFY channel: some session ended */
/* The newest migration (db/migrations/NNNN_*.sql) this build's statements need. */
#define DB_SCHEMA_VERSION "0006"

/*
 * Names the schema shares with the C code, defined here once: C passes
 * them to the statements as parameters. The SQL of the migrations repeats
 * them in two places only, checked against these by tests/unit/db_test.c:
 * the CHECK constraints of throttle.scope and auth_events.event
 * (0002_throttle_and_audit.sql) and the body of keygate_login_finish
 * (0004_credential_generation.sql: 'addr', 'user', 'login_ok'), since a
 * migration once applied is never edited.
 */

/* A throttle row's scope: whose attempts it counts. */
enum db_scope {
	DB_SCOPE_USER, /* "user": an account's failed logins, by lower(username) */
	DB_SCOPE_ADDR, /* "addr": a client address's failed logins */
	DB_SCOPE_JOIN, /* "join": a client address's registrations */
	DB_SCOPE__MAX
};

/* An audit event (auth_events.event). */
enum db_event {
	DB_EVENT_JOIN,             /* "join" */
	DB_EVENT_LOGIN_OK,         /* "login_ok" (written by keygate_login_finish) */
	DB_EVENT_LOGIN_FAILED,     /* "login_failed" */
	DB_EVENT_LOGIN_THROTTLED,  /* "login_throttled" (db_event_throttled) */
	DB_EVENT_LOGOUT,           /* "logout" */
	DB_EVENT_LOGOUT_ALL,       /* "logout_all" */
	DB_EVENT_TOKEN_REVOKED,    /* "token_revoked" */
	DB_EVENT_PASSWORD_CHANGED, /* "password_changed" */
	DB_EVENT_USER_DISABLED,    /* "user_disabled" */
	DB_EVENT_USER_ENABLED,     /* "user_enabled" */
	DB_EVENT_SCOPE_GRANTED,    /* "scope_granted" (detail: the scopes) */
	DB_EVENT_SCOPE_UNGRANTED,  /* "scope_ungranted" (detail: the scopes) */
	DB_EVENT_API_TOKEN_CREATED, /* "api_token_created" (keygate_api_token_create; detail: its name) */
	DB_EVENT__MAX
};

/* The name the schema knows a scope or event by; NULL for none. Static storage. */
const char *db_scope_name(enum db_scope scope);
const char *db_event_name(enum db_event event);

struct db_user {
	long long id;
	char username[DB_NAME_MAX];
	char email[DB_EMAIL_MAX];
	int has_email;
	char password_hash[DB_HASH_MAX];
	int disabled;
	char created_at[DB_TS_LEN];
	long long credential_gen;  /* moves with each revocation of all sessions */
	long long api_gen;         /* moves with each revocation of all API tokens */
	char scopes[DB_SCOPES_MAX]; /* granted: "{a,b}" */
};

/* What verifying a token needs, in one indexed lookup. */
struct db_token {
	long long user_id;
	unsigned char digest[CRYPTO_SHA256_LEN];
	char username[DB_NAME_MAX];
	char scopes[DB_SCOPES_MAX];  /* "{a,b}" */
	int needs_touch;
	long long expires_at;        /* unix seconds, absolute */
	long long last_used_at;      /* unix seconds */
	long idle_s;
	int has_email;
	char email[DB_EMAIL_MAX];
	char created_at[DB_TS_LEN];  /* of the user */
	char granted[DB_SCOPES_MAX]; /* the user's granted scopes, "{a,b}" */
	int api;                     /* an API token (POST /tokens), not a session */
};

struct db_session {
	char key[DB_KEY_MAX];
	char created_at[DB_TS_LEN];
	char last_used_at[DB_TS_LEN];
	char expires_at[DB_TS_LEN];
	char ip[64];
	char user_agent[256];
	char scopes[DB_SCOPES_MAX];
	char granted[DB_SCOPES_MAX]; /* the user's, for the token's effective scopes */
	int api;                     /* an API token, not a session */
	char name[DB_NAME_MAX];      /* an API token's name ("" for a session) */
};

struct db_token_new {
	const char *key;
	const unsigned char *digest;
	long long user_id;
	const char *scopes;          /* "{a,b}", validated by the caller */
	int remember;
	int lifetime_s;
	int idle_s;
	const char *ip;
	const char *user_agent;
};

/* Remember connection settings; nothing connects yet. */
void db_configure(const struct conf *c);

/* Connect now if not connected (honouring back-off). KG_EDB when down. */
enum kg_err db_ready(void) KG_MUSTCHECK;

/* Seconds a client should wait before retrying while the database is down (>= 1). */
long db_retry_after(void);

/*
 * 1 when the last connection found the schema older than DB_SCHEMA_VERSION
 * (then db_ready and every statement give KG_EDB, and the log says to run
 * keygate migrate).
 */
int db_schema_missing(void);
/* 1 when the last connection was refused because PostgreSQL has no such role. */
int db_role_missing(void);

/* Close the connection (before fork, at exit). */
void db_close(void);

enum kg_err db_ping(void) KG_MUSTCHECK;
/* What of keygate's work this role may not do ("" when nothing), for check-config --connect. */
enum kg_err db_privileges_missing(char *missing, size_t missingsz) KG_MUSTCHECK;

/*
 * Whether connections opened from now on LISTEN for sessions ended
 * elsewhere (off by default): only the token check reads the
 * notifications, and unread ones would pile up in the connection.
 */
void db_listen_for_revocations(int on);

enum db_revocations {
	DB_REVOCATIONS_NONE,    /* no session ended elsewhere since the last call */
	DB_REVOCATIONS_SOME,    /* one or more did */
	DB_REVOCATIONS_UNKNOWN, /* the connection is down: nobody can tell */
};

/*
 * The notifications of sessions ended elsewhere that arrived since the
 * last call, without blocking; read_socket: look at the socket for new
 * input first (one poll(2)), else only at what the last statement
 * brought in.
 */
enum db_revocations db_revocations_read(int read_socket);

/*
 * Monotonic ms since which the current connection has been listening for
 * revocations (LLONG_MAX while there is none): rows read before then may
 * predate a revocation this process never heard of.
 */
long long db_listening_since(void);

/*
 * KG_EUSERNAME_TAKEN / KG_EEMAIL_TAKEN when the username or email is taken
 * (a race with another registration), KG_ECONFLICT for any other unique
 * violation.
 */
enum kg_err db_user_insert(const char *username, const char *email, const char *hash,
    const char *scopes, long long *id) KG_MUSTCHECK;
/* KG_ENOTFOUND when there is no such user (case-insensitive). */
enum kg_err db_user_by_name(const char *username, struct db_user *u) KG_MUSTCHECK;
enum kg_err db_user_by_id(long long id, struct db_user *u) KG_MUSTCHECK;
/*
 * Set a new hash and revoke every token of the user, sessions and API
 * tokens, but keep_key (NULL: all), moving both credential generations: no
 * login or token creation in flight that checked the old hash can write a
 * token afterwards. *revoked counts them all, *api_revoked the API tokens.
 */
enum kg_err db_user_set_password(long long id, const char *hash, const char *keep_key,
    long *revoked, long *api_revoked) KG_MUSTCHECK;
/*
 * Replace the granted scopes of account id by scopes ("{a,b}") if they are
 * still old (as read): *changed 0 when another change came first. Tells
 * every listening worker, since cached tokens carry effective scopes.
 */
enum kg_err db_user_set_scopes(long long id, const char *old, const char *scopes,
    long *changed) KG_MUSTCHECK;
/* Replace the hash only if it is still old_hash (a concurrent change wins). */
enum kg_err db_user_rehash(long long id, const char *old_hash, const char *hash) KG_MUSTCHECK;

/* One Argon2 parameter set of the stored password hashes (db_hash_classes). */
#define DB_HASH_CLASSES_MAX 4
struct db_hash_class {
	char sample[DB_HASH_MAX];   /* the hash of the class's oldest account */
	long long count;            /* accounts whose hash has these parameters */
};

/*
 * The (at most max) most common Argon2id parameter sets among the stored
 * hashes, most common first, into out[0..*n), and the hash of the oldest
 * account into key (keysz bytes; "" without accounts): a secret every host
 * reads alike. One sequential read of users.
 */
enum kg_err db_hash_classes(struct db_hash_class *out, size_t max, size_t *n,
    char *key, size_t keysz) KG_MUSTCHECK;

/* What a successful login writes besides its token (see db_login_finish). */
struct db_login_finish {
	const struct db_token_new *token;
	const char *subject;           /* the account's throttle key */
	const char *addr_subject;      /* the address's throttle key (NULL: none) */
	long addr_max;                 /* the address rule's limit (the attempt given back) */
	int max_tokens;                /* the user's live tokens kept, the new one included */
	const char *username;          /* as stored, for the login_ok event */
	const char *event_user_agent;  /* NULL when the client sent none */
	long long credential_gen;      /* the account's, read with the hash checked */
};

enum db_login_outcome {
	DB_LOGIN_OK,        /* token written */
	DB_LOGIN_COLLIDED,  /* the key exists already: nothing written */
	DB_LOGIN_STALE,     /* disabled, or every session revoked, since credential_gen: nothing written */
};

/*
 * Finish a login in one round trip: under the account's row lock, and only
 * if it is enabled and still at l->credential_gen, insert the token, clear
 * the account's failed attempts, give the address its attempt back, trim
 * the user's tokens to max_tokens exactly (*trimmed ended) and record
 * login_ok. *outcome says which happened (expires_at only with DB_LOGIN_OK).
 */
enum kg_err db_login_finish(const struct db_login_finish *l, enum db_login_outcome *outcome,
    char expires_at[DB_TS_LEN], long *trimmed) KG_MUSTCHECK;
/* A live token of an enabled user; KG_ENOTFOUND otherwise. */
enum kg_err db_token_lookup(const char *key, int touch_interval, struct db_token *t) KG_MUSTCHECK;
/*
 * The same row read again, with last_used_at = now() written in the same
 * statement if it is older than touch_interval (skipped, not waited for,
 * while somebody holds the row locked). KG_ENOTFOUND: no longer live.
 */
enum kg_err db_token_refresh(const char *key, int touch_interval, struct db_token *t) KG_MUSTCHECK;
/* Delete one of user_id's tokens; *deleted = rows removed (0 or 1). */
enum kg_err db_token_delete(long long user_id, const char *key, long *deleted) KG_MUSTCHECK;
/*
 * Delete all of user_id's sessions except keep_key (NULL: all), and with
 * api its API tokens too, moving the credential generation of what is
 * ended, so that no login (or token creation) in flight writes one
 * afterwards.
 */
enum kg_err db_token_delete_all(long long user_id, const char *keep_key, int api,
    long *deleted) KG_MUSTCHECK;

/* A new API token (POST /tokens): what keygate_api_token_create writes. */
struct db_api_token_new {
	const char *key;
	const unsigned char *digest;
	long long user_id;
	const char *scopes; /* "{a,b}", validated by the caller */
	const char *name;
	int lifetime_s;
	int idle_s;
	const char *ip;         /* may be NULL */
	const char *user_agent; /* may be NULL */
	int max;                /* the user's live API tokens allowed, the new one included */
	long long api_gen;      /* the account's, read with the password checked */
	const char *username;   /* as stored, for the event */
};

enum db_api_token_outcome {
	DB_API_TOKEN_OK,         /* written */
	DB_API_TOKEN_COLLIDED,   /* the key exists: nothing written */
	DB_API_TOKEN_STALE,      /* disabled or every API token revoked since api_gen */
	DB_API_TOKEN_LIMIT,      /* max live API tokens already */
	DB_API_TOKEN_NAME_TAKEN, /* a live one has that name */
};

/* Create an API token under the account's row lock: *outcome, and expires_at with OK. */
enum kg_err db_api_token_create(const struct db_api_token_new *t,
    enum db_api_token_outcome *outcome, char expires_at[DB_TS_LEN]) KG_MUSTCHECK;
/* Live tokens of a user, newest use first; *rows is malloc'd (caller frees). */
enum kg_err db_token_list(long long user_id, struct db_session **rows, size_t *n) KG_MUSTCHECK;

/* One throttling rule: at most max attempts per window, then blocked for delay_s doubling up to max_delay_s. */
struct db_throttle_rule {
	long window_s;
	long max;
	long delay_s;
	long max_delay_s;
};

/*
 * Before a registration's hash, in one statement: count the attempt against
 * the address addr (NULL: none) and look for username and email (NULL:
 * none) among the users, without case. KG_ETHROTTLED with *retry_after when
 * the address is blocked (nothing counted); else the attempt is counted and
 * KG_EUSERNAME_TAKEN / KG_EEMAIL_TAKEN say what is taken, KG_OK neither.
 */
enum kg_err db_join_begin(const char *addr, const struct db_throttle_rule *rule,
    const char *username, const char *email, long *retry_after) KG_MUSTCHECK;
/*
 * Before a login's hash, in one statement: count the attempt against the
 * address addr (NULL: none), then, unless that is blocked, against the
 * account subject, and read the user username (NULL: none). KG_ETHROTTLED
 * with *retry_after when either is blocked (an attempt counted against the
 * address is then given back); KG_ENOTFOUND when counted but there is no
 * such user; KG_OK with *u.
 */
enum kg_err db_login_begin(const char *addr, const char *subject,
    const struct db_throttle_rule *addr_rule, const struct db_throttle_rule *user_rule,
    const char *username, struct db_user *u, long *retry_after) KG_MUSTCHECK;
/* Forget a subject's attempts (a successful login clears its account). */
enum kg_err db_throttle_clear(enum db_scope scope, const char *subject) KG_MUSTCHECK;
/* Give back one attempt that was not a failure. */
enum kg_err db_throttle_release(enum db_scope scope, const char *subject, int max) KG_MUSTCHECK;

/* Record an audit event; user_id <= 0 and NULL strings are stored as NULL. */
enum kg_err db_event_insert(enum db_event event, long long user_id, const char *username,
    const char *ip, const char *user_agent, const char *detail) KG_MUSTCHECK;
/*
 * Record a login refused by a block: of the address's throttle key addr
 * (NULL: none) if that is blocked, else of the account subject. One row per
 * block, its count raised by each further refusal.
 */
enum kg_err db_event_throttled(const char *addr, const char *subject, const char *username,
    const char *ip, const char *user_agent) KG_MUSTCHECK;

/* Disable or enable a user by name; KG_ENOTFOUND when there is none. */
enum kg_err db_user_set_disabled(const char *username, int disabled, long long *id) KG_MUSTCHECK;

/* Row callback for listings: column values as strings (never NULL). */
typedef void (*db_row_fn)(void *arg, const char *const *cols, size_t ncols);
/* id, username, email, disabled (t/f), created_at, live tokens. */
enum kg_err db_user_list(db_row_fn fn, void *arg) KG_MUSTCHECK;
/* at, event, user_id, username, ip, user_agent, count; filters may be NULL. */
enum kg_err db_events(const char *username, const char *since, long limit, db_row_fn fn,
    void *arg) KG_MUSTCHECK;
/* Delete dead tokens (*count: how many). */
enum kg_err db_token_prune(long *count) KG_MUSTCHECK;
/* Delete throttle rows older than window_s and not blocked (*count: how many). */
enum kg_err db_throttle_prune(long window_s, long *count) KG_MUSTCHECK;
/* Delete events older than retention_s (*count: how many). */
enum kg_err db_event_prune(long retention_s, long *count) KG_MUSTCHECK;

/* Migrations (keygate migrate). */
enum kg_err db_migrate_begin(void) KG_MUSTCHECK;   /* advisory lock + bookkeeping table */
enum kg_err db_migrate_applied(const char *version, int *applied) KG_MUSTCHECK;
enum kg_err db_migrate_apply(const char *version, const char *migration_sql) KG_MUSTCHECK;
void db_migrate_end(void);

#endif
