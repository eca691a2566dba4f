/*
 * auth: the rules. Registration, login, token verification, logout,
 * sessions and password changes. Used by the API handlers and the CLI.
 */
#ifndef AUTH_H
#define AUTH_H

#include <stddef.h>

#include "kg.h"
#include "scope.h"
#include "token.h"

struct conf;

/* An API token's name: 1 to 64 of A-Z a-z 0-9 space _ . - (auth_token_name_valid). */
#define AUTH_TOKEN_NAME_MAX 64

/* A verified token: who is calling and with what scopes. */
struct auth_session {
	long long user_id;
	char username[KG_NAME_MAX];
	char key[TOKEN_KEY_LEN + 1];
	/* What this token may do: its own scopes within the user's grant, as it is now. */
	struct scope_set scopes;
	struct scope_set granted; /* what the user's tokens may carry */
	int api;                  /* an API token (POST /tokens), not a session (a login) */
	/* The user's profile, as GET /me shows it. */
	int has_email;
	char email[KG_EMAIL_MAX];
	char created_at[KG_TS_LEN];
};

/* A freshly issued token (holds a secret: auth_issued_wipe when done). */
struct auth_issued {
	long long user_id;
	struct token token;
	char expires_at[KG_TS_LEN];
	int idle_timeout;
	struct scope_set scopes; /* effective when issued */
};

/* Who is asking: recorded with tokens and audit events, used for throttling. */
struct auth_client {
	const char *ip;          /* may be NULL or "" (command line) */
	const char *user_agent;  /* printable ASCII, may be NULL */
	long retry_after;        /* out: seconds, with KG_ETHROTTLED */
	/* The key per-address limits count it under (addr_throttle_key); NULL: none (command line). */
	const char *throttle_addr;
};

/* Where a failed check went wrong, for the 400 "fields" map. */
struct auth_field_error {
	const char *field;   /* NULL when none */
	const char *reason;
};

/* Use these settings for everything that follows (start-up and reload). */
void auth_configure(const struct conf *c);

/* 1 when name is 3..64 chars of A-Z a-z 0-9 _ . - */
int auth_username_valid(const char *name);
/* 1 when email is at most 254 bytes with one '@' between non-empty parts. */
int auth_email_valid(const char *email);
/* 1 when name is an API token's name (AUTH_TOKEN_NAME_MAX). */
int auth_token_name_valid(const char *name);

/* 1 when the session's scopes allow scope (a scope implies those below it: src/scope.h). */
int auth_session_allows(const struct auth_session *s, const char *scope);

/* Verify a token against the database. KG_ETOKEN when not live. */
enum kg_err auth_verify(const struct token *t, struct auth_session *s) KG_MUSTCHECK;

/*
 * Register a user. KG_EINPUT with fe set; KG_EUSERNAME_TAKEN / KG_EEMAIL_TAKEN
 * (found before any hashing); KG_ETHROTTLED. Every attempt with a valid name,
 * email and password counts against the client's address, whatever its
 * outcome; those refused before are not counted.
 */
enum kg_err auth_register(const char *username, const char *email, const char *password,
    size_t pwlen, struct auth_client *cl, long long *user_id,
    struct auth_field_error *fe) KG_MUSTCHECK;

/*
 * Read the cost classes of the stored hashes and make a dummy hash for
 * each (password_dummy_classes), so that an unknown username costs what
 * an account costs even while dormant accounts keep older parameters. A
 * worker calls it once when it starts; on failure the dummy of the current
 * parameters serves alone.
 */
enum kg_err auth_load_dummies(void) KG_MUSTCHECK;

/*
 * Log in: count the attempt against the username and the client address
 * (KG_ETHROTTLED without hashing anything when either is blocked), check the
 * password, then issue a session token for that user with scopes (NULL or
 * empty: "*", every scope granted). KG_EBADSCOPE, with the scopes the user
 * is not granted in *missing, issues nothing; it is told only once the
 * password checked out, so the grant is told to its owner alone.
 */
enum kg_err auth_login(const char *username, const char *password, size_t pwlen, int remember,
    const struct scope_set *scopes, struct auth_client *cl, struct auth_issued *out,
    struct scope_set *missing) KG_MUSTCHECK;

/*
 * An API token for the session's user (POST /tokens): s must be a session
 * (KG_ESESSION), current the user's password (KG_EAUTH, throttled as a
 * login), name free (KG_ENAME_TAKEN), fewer than max_api_tokens_per_user
 * live API tokens (KG_ETOOMANY), scopes (NULL: the session's) within the
 * session's (KG_EBADSCOPE, *missing), expires_in seconds (0: the longest,
 * api_token_max_lifetime; more: KG_EINPUT with fe). No idle expiry.
 */
enum kg_err auth_api_token_create(const struct auth_session *s, const char *name,
    const char *current, size_t curlen, const struct scope_set *scopes, long expires_in,
    struct auth_client *cl, struct auth_issued *out, struct scope_set *missing,
    struct auth_field_error *fe) KG_MUSTCHECK;

void auth_issued_wipe(struct auth_issued *i);

/*
 * Revoke the session's own token, or (all) every session of its user, and
 * with api its API tokens too.
 */
enum kg_err auth_logout(const struct auth_session *s, int all, int api,
    const struct auth_client *cl, long *removed) KG_MUSTCHECK;

/* Revoke one of the user's tokens by key; KG_ENOTFOUND when not theirs. */
enum kg_err auth_revoke(long long user_id, const char *username, const char *key,
    const struct auth_client *cl) KG_MUSTCHECK;

/*
 * Change a password after checking the current one; revokes every token,
 * sessions and API tokens, but keep_key (*revoked all, *api_revoked the API ones).
 */
enum kg_err auth_change_password(long long user_id, const char *current, size_t curlen,
    const char *newpw, size_t newlen, const char *keep_key, struct auth_client *cl,
    long *revoked, long *api_revoked, struct auth_field_error *fe) KG_MUSTCHECK;

/* Admin: set a user's password without the current one; revokes all tokens. */
enum kg_err auth_set_password(const char *username, const char *pw, size_t pwlen,
    const struct auth_client *cl, long *revoked, struct auth_field_error *fe) KG_MUSTCHECK;

/*
 * Admin: grant (grant 1) or ungrant the scopes to the user named username;
 * *now is the grant after it. Ungranting a scope that is granted only
 * through a broader one (files:read under files) is KG_EINPUT with *bad
 * naming it: ungrant the broader one. Every token narrows at once.
 */
enum kg_err auth_grant(const char *username, const struct scope_set *scopes, int grant,
    const struct auth_client *cl, struct scope_set *now, const char **bad) KG_MUSTCHECK;

/* Admin: revoke every token of a user, sessions and API tokens. */
enum kg_err auth_revoke_all(long long user_id, const char *username,
    const struct auth_client *cl, long *revoked) KG_MUSTCHECK;

/* Disable (all tokens stop working at once) or enable an account. */
enum kg_err auth_set_disabled(const char *username, int disabled,
    const struct auth_client *cl) KG_MUSTCHECK;

/*
 * The store behind the rules, for GET /health and the command line:
 * connect now if not connected (KG_EDB when it cannot be), close, how long
 * a client should wait while it is down (seconds, >= 1), and what the last
 * connection found wrong.
 */
enum kg_err auth_store_ready(void) KG_MUSTCHECK;
/* Run a statement: KG_OK only when the store answers now (GET /health). */
enum kg_err auth_store_ping(void) KG_MUSTCHECK;
void auth_store_close(void);
long auth_retry_after(void);
enum auth_store_problem {
	AUTH_STORE_FINE,
	AUTH_STORE_UNMIGRATED, /* the schema is older than this keygate: run keygate migrate */
	AUTH_STORE_NO_ROLE,    /* PostgreSQL has no role for the user keygate runs as */
};
enum auth_store_problem auth_store_problem(void);

/* An account, as the command line names it. */
struct auth_user {
	long long id;
	char username[KG_NAME_MAX];
};

/* The account named username (without case); KG_ENOTFOUND when there is none. */
enum kg_err auth_user_find(const char *username, struct auth_user *u) KG_MUSTCHECK;

/* One live token of a user, as GET /sessions and `keygate token list` show it. */
struct auth_token_info {
	int api;                            /* an API token, not a session */
	char name[AUTH_TOKEN_NAME_MAX + 1]; /* an API token's name; "" for a session */
	struct scope_set scopes;            /* effective: its own within the grant */
	char key[64];
	char created_at[KG_TS_LEN];
	char last_used_at[KG_TS_LEN];
	char expires_at[KG_TS_LEN];
	char ip[64];
	char user_agent[256];
};

/* The user's live tokens, newest use first; *rows is malloc'd (caller frees). */
enum kg_err auth_tokens(long long user_id, struct auth_token_info **rows, size_t *n) KG_MUSTCHECK;

/* Row callback for listings: column values as strings (never NULL). */
typedef void (*auth_row_fn)(void *arg, const char *const *cols, size_t ncols);
/* Every account: id, username, email, disabled (t/f), created_at, live tokens, granted scopes ("{a,b}"). */
enum kg_err auth_user_list(auth_row_fn fn, void *arg) KG_MUSTCHECK;
/* The audit trail: at, event, user_id, username, ip, user_agent, count, detail; filters may be NULL. */
enum kg_err auth_events(const char *username, const char *since, long limit, auth_row_fn fn,
    void *arg) KG_MUSTCHECK;
/*
 * Delete dead tokens, throttle rows no rule can still need and audit
 * events past audit_retention: counts[0..2] of each.
 */
enum kg_err auth_prune(long counts[3]) KG_MUSTCHECK;

#endif
