/*
 * auth: the rules. Registration, login, token verification, logout,
 * sessions and password changes. Used by the API handlers and the CLI.
 */
#ifndef AUTH_H
#define AUTH_H

#include <stddef.h>

#include "db.h"
#include "kg.h"
#include "token.h"

struct conf;
struct request;

#define AUTH_MAX_SCOPES 16
#define AUTH_SCOPE_MAX 64

/* A verified token: who is calling and with what scopes. */
struct auth_session {
	long long user_id;
	char username[DB_NAME_MAX];
	char key[TOKEN_KEY_LEN + 1];
	char scopes[AUTH_MAX_SCOPES][AUTH_SCOPE_MAX + 1];
	size_t nscopes;
	/* The user's profile, as GET /me shows it. */
	int has_email;
	char email[DB_EMAIL_MAX];
	char created_at[DB_TS_LEN];
};

/* A freshly issued token (holds a secret: auth_issued_wipe when done). */
struct auth_issued {
	long long user_id;
	struct token token;
	char expires_at[DB_TS_LEN];
	int idle_timeout;
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
/* 1 when each scope is 1..64 of A-Z a-z 0-9 : . _ * - and there are 1..16. */
int auth_scopes_valid(const char *const *scopes, size_t n);

/*
 * Find the credential a request presents: Authorization: Bearer, Key:+Secret:
 * headers, or (when body_key/body_secret are given) the JSON body.
 * *presented = 0 and KG_OK when there is none. KG_EINPUT when more than one
 * way is used or a header is malformed; KG_ETOKEN when it cannot be a token.
 */
enum kg_err auth_credentials(const struct request *req, const char *body_key,
    const char *body_secret, struct token *t, int *presented) KG_MUSTCHECK;

/* Fill s->scopes from PostgreSQL's text form of a text[] ("{a,b}"). */
void auth_scopes_from_text(const char *text, struct auth_session *s);

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
 * Check a password against the account a lookup found (lookup KG_OK, *u)
 * or did not (KG_ENOTFOUND); the same cost and the same KG_EAUTH whether
 * the user is unknown, disabled or the password is wrong (subject, the
 * username without case, picks the cost of an unknown one). Rehashes on
 * success when the parameters changed.
 */
enum kg_err auth_check_password(enum kg_err lookup, const char *subject, const char *password,
    size_t pwlen, struct db_user *u) KG_MUSTCHECK;

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
 * password, then issue a token for that user.
 */
enum kg_err auth_login(const char *username, const char *password, size_t pwlen, int remember,
    const char *const *scopes, size_t nscopes, struct auth_client *cl,
    struct auth_issued *out) KG_MUSTCHECK;

void auth_issued_wipe(struct auth_issued *i);

/* Revoke the session's own token, or (all) every token of its user. */
enum kg_err auth_logout(const struct auth_session *s, int all, const struct auth_client *cl,
    long *removed) KG_MUSTCHECK;

/* Revoke one of the user's tokens by key; KG_ENOTFOUND when not theirs. */
enum kg_err auth_revoke(long long user_id, const char *username, const char *key,
    const struct auth_client *cl) KG_MUSTCHECK;

/* Change a password after checking the current one; revokes all tokens but keep_key. */
enum kg_err auth_change_password(long long user_id, const char *current, size_t curlen,
    const char *newpw, size_t newlen, const char *keep_key, struct auth_client *cl,
    long *revoked, struct auth_field_error *fe) KG_MUSTCHECK;

/* Admin: set a user's password without the current one; revokes all tokens. */
enum kg_err auth_set_password(const char *username, const char *pw, size_t pwlen,
    const struct auth_client *cl, long *revoked, struct auth_field_error *fe) KG_MUSTCHECK;

/* Admin: revoke every token of a user. */
enum kg_err auth_revoke_all(long long user_id, const char *username,
    const struct auth_client *cl, long *revoked) KG_MUSTCHECK;

/* Disable (all tokens stop working at once) or enable an account. */
enum kg_err auth_set_disabled(const char *username, int disabled,
    const struct auth_client *cl) KG_MUSTCHECK;

/*
 * Record an audit event (failures are logged, not returned). A username
 * that cannot be one is recorded as AUTH_NAME_TAG_LEN characters: "#" and
 * hex digits of its digest (see auth_name_record).
 */
void auth_event(const char *event, long long user_id, const char *username,
    const struct auth_client *cl);

#endif
