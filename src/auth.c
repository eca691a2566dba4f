#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth.h"
#include "conf.h"
#include "crypto.h"
#include "log.h"
#include "password.h"
#include "scope.h"
#include "tokencheck.h"

static struct {
	int touch_interval;
	int max_tokens;
	int idle, lifetime;
	int remember_idle, remember_lifetime;
	struct db_throttle_rule user, addr, join;
	long prune_throttle_s; /* throttle rows older than any rule's window and block */
	long audit_retention_s;
	char default_scopes[SCOPE_TEXT_MAX]; /* granted to a new account, "{a,b}" */
	int max_api_tokens;
	int api_token_max_lifetime;
} auth_conf;

void
auth_configure(const struct conf *c)
{
	auth_conf.touch_interval = c->touch_interval;
	auth_conf.max_tokens = c->max_tokens_per_user;
	auth_conf.idle = c->token_idle_timeout;
	auth_conf.lifetime = c->token_lifetime;
	auth_conf.remember_idle = c->remember_idle_timeout;
	auth_conf.remember_lifetime = c->remember_lifetime;
	auth_conf.user = (struct db_throttle_rule){ c->login_failure_window, c->login_max_failures,
		c->login_delay, c->login_max_delay };
	/* Past the per-address limit an address waits out the window. */
	auth_conf.addr = (struct db_throttle_rule){ c->login_failure_window,
		c->login_max_per_address, c->login_failure_window, c->login_failure_window };
	auth_conf.join = (struct db_throttle_rule){ 3600, c->join_max_per_address, 3600, 3600 };
	auth_conf.prune_throttle_s = c->login_failure_window > c->login_max_delay ?
	    c->login_failure_window :
	    c->login_max_delay;
	auth_conf.audit_retention_s = c->audit_retention;
	auth_conf.max_api_tokens = c->max_api_tokens_per_user;
	auth_conf.api_token_max_lifetime = c->api_token_max_lifetime;
	{
		struct scope_set d;

		/* conf_load validated it: a bad list cannot get here; "*" if it did. */
		if (scope_set_parse_list(c->default_scopes, &d) != KG_OK ||
		    scope_set_to_text(&d, auth_conf.default_scopes,
		        sizeof(auth_conf.default_scopes)) != KG_OK)
			(void)kg_strlcpy(auth_conf.default_scopes, "{*}",
			    sizeof(auth_conf.default_scopes));
	}
}

static int
auth_has_ip(const struct auth_client *cl)
{
	return cl != NULL && cl->ip != NULL && cl->ip[0] != '\0';
}

/* The key per-address limits count the client under; NULL: none apply. */
static const char *
auth_addr_key(const struct auth_client *cl)
{
	return cl != NULL ? cl->throttle_addr : NULL;
}

/*
 * What is kept of a username as typed, in the audit trail and as the
 * account's throttle key (fold: without case). A name that could be one is
 * kept; anything else -- control characters, a password typed into the
 * wrong field -- only as "#" and 4 hex digits of the SHA-256 of its
 * lowercase form: enough to tell repeated attempts apart (and to throttle
 * them), too few bits to recover or confirm what was typed.
 */
static void
auth_name_record(const char *typed, int fold, char *out, size_t outsz)
{
	char low[257];
	unsigned char digest[CRYPTO_SHA256_LEN];
	size_t i;
	int valid = auth_username_valid(typed);

	for (i = 0; typed[i] != '\0' && i + 1 < sizeof(low); i++)
		low[i] = (typed[i] >= 'A' && typed[i] <= 'Z') ? (char)(typed[i] + 32) : typed[i];
	low[i] = '\0';
	if (valid) {
		(void)kg_strlcpy(out, fold ? low : typed, outsz);
		return;
	}
	crypto_sha256(low, i, digest);
	(void)snprintf(out, outsz, "#%02x%02x", digest[0], digest[1]);
	crypto_wipe(low, sizeof(low));
}

/*
 * Record an audit event (failures are logged, not returned). A username
 * that cannot be one is recorded as AUTH_NAME_TAG_LEN characters: "#" and
 * hex digits of its digest (see auth_name_record).
 */
/* Record event, with detail (NULL: none): what a grant or an API token was about. */
static void
auth_event_about(enum db_event event, long long user_id, const char *username,
    const struct auth_client *cl, const char *detail)
{
	char name[DB_NAME_MAX];
	const char *ip = auth_has_ip(cl) ? cl->ip : NULL;
	const char *ua = cl != NULL && cl->user_agent != NULL && cl->user_agent[0] != '\0' ?
	    cl->user_agent : NULL;

	if (username != NULL)
		auth_name_record(username, 0, name, sizeof(name));
	if (db_event_insert(event, user_id, username != NULL ? name : NULL, ip, ua, detail) != KG_OK)
		log_warnx("audit: could not record %s", db_event_name(event));
}

static void
auth_event(enum db_event event, long long user_id, const char *username, const struct auth_client *cl)
{
	auth_event_about(event, user_id, username, cl, NULL);
}

/* A login refused by the block of subject or of the client's address: one row per block. */
static void
auth_event_throttled(const char *username, const char *subject, const struct auth_client *cl)
{
	char name[DB_NAME_MAX];
	const char *ua = cl != NULL && cl->user_agent != NULL && cl->user_agent[0] != '\0' ?
	    cl->user_agent : NULL;

	auth_name_record(username, 0, name, sizeof(name));
	if (db_event_throttled(auth_addr_key(cl), subject, name, auth_has_ip(cl) ? cl->ip : NULL,
	    ua) != KG_OK)
		log_warnx("audit: could not record %s", db_event_name(DB_EVENT_LOGIN_THROTTLED));
}

static int
auth_chars_ok(const char *s, const char *extra)
{
	for (; *s != '\0'; s++) {
		char c = *s;
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		    strchr(extra, c) != NULL))
			return 0;
	}
	return 1;
}

int
auth_username_valid(const char *name)
{
	size_t n = name == NULL ? 0 : strlen(name);

	return n >= 3 && n <= 64 && auth_chars_ok(name, "_.-");
}

int
auth_email_valid(const char *email)
{
	const char *at;
	size_t n = email == NULL ? 0 : strlen(email);

	if (n == 0 || n > 254)
		return 0;
	at = strchr(email, '@');
	if (at == NULL || at == email || at[1] == '\0' || strchr(at + 1, '@') != NULL)
		return 0;
	/* No whitespace or control characters anywhere in an address. */
	for (const char *p = email; *p != '\0'; p++)
		if ((unsigned char)*p <= ' ' || *p == 0x7f)
			return 0;
	return 1;
}

int
auth_token_name_valid(const char *name)
{
	size_t n = name == NULL ? 0 : strlen(name);

	return n >= 1 && n <= AUTH_TOKEN_NAME_MAX && auth_chars_ok(name, " _.-") &&
	    name[0] != ' ' && name[n - 1] != ' ';
}

int
auth_session_allows(const struct auth_session *s, const char *scope)
{
	return scope_set_allows(&s->scopes, scope);
}

/* What a token may do: own ("{a,b}") within granted ("{a,b}"), as the grant is now. */
static void
auth_effective(const char *own, const char *granted, struct scope_set *out, struct scope_set *g)
{
	struct scope_set o;

	scope_set_from_text(own, &o);
	scope_set_from_text(granted, g);
	scope_effective(&o, g, out);
}

enum kg_err
auth_verify(const struct token *t, struct auth_session *s)
{
	struct db_token row;
	enum kg_err err;

	memset(s, 0, sizeof(*s));
	if ((err = tokencheck_verify(t, &row)) != KG_OK)
		return err;
	s->user_id = row.user_id;
	(void)kg_strlcpy(s->username, row.username, sizeof(s->username));
	(void)kg_strlcpy(s->key, t->key, sizeof(s->key));
	s->has_email = row.has_email;
	(void)kg_strlcpy(s->email, row.email, sizeof(s->email));
	(void)kg_strlcpy(s->created_at, row.created_at, sizeof(s->created_at));
	auth_effective(row.scopes, row.granted, &s->scopes, &s->granted);
	s->api = row.api;
	return KG_OK;
}

/*
 * Normalise and check a new password, without hashing it; fe names field on
 * a policy failure. *norm (a secret: crypto_free_secret) is set on KG_OK.
 */
static enum kg_err
auth_password_prepare(const char *field, const char *username, const char *pw, size_t pwlen,
    char **norm, size_t *normlen, struct auth_field_error *fe)
{
	const char *why;
	enum kg_err err;

	*norm = NULL;
	*normlen = 0;
	if (pwlen > PASSWORD_MAX_BYTES) {
		fe->field = field;
		fe->reason = "too_long";
		return KG_EINPUT;
	}
	if ((err = password_normalize(pw, pwlen, norm, normlen)) != KG_OK) {
		if (err == KG_EINPUT) {
			fe->field = field;
			fe->reason = "invalid";
		}
		return err;
	}
	if ((why = password_check_policy(*norm, *normlen, username)) != NULL) {
		fe->field = field;
		fe->reason = why;
		crypto_free_secret(*norm);
		*norm = NULL;
		return KG_EINPUT;
	}
	return KG_OK;
}

/* Normalise, check and hash a new password; fe names field on a policy failure. */
static enum kg_err
auth_new_password(const char *field, const char *username, const char *pw, size_t pwlen,
    char *hash, size_t hashsz, struct auth_field_error *fe)
{
	char *norm = NULL;
	size_t normlen = 0;
	enum kg_err err;

	if ((err = auth_password_prepare(field, username, pw, pwlen, &norm, &normlen, fe)) != KG_OK)
		return err;
	err = password_hash(norm, normlen, hash, hashsz);
	crypto_free_secret(norm);
	return err;
}

enum kg_err
auth_register(const char *username, const char *email, const char *password, size_t pwlen,
    struct auth_client *cl, long long *user_id, struct auth_field_error *fe)
{
	char hash[PASSWORD_HASH_MAX];
	char *norm = NULL;
	size_t normlen = 0;
	enum kg_err err;

	fe->field = NULL;
	fe->reason = NULL;
	if (!auth_username_valid(username)) {
		fe->field = "username";
		fe->reason = "invalid";
		return KG_EINPUT;
	}
	if (email != NULL && !auth_email_valid(email)) {
		fe->field = "email";
		fe->reason = "invalid";
		return KG_EINPUT;
	}
	/* A password the policy refuses is refused first, uncounted: it says nothing about who exists. */
	err = auth_password_prepare("password", username, password, pwlen, &norm, &normlen, fe);
	if (err != KG_OK)
		goto out;
	/*
	 * From here every attempt counts against the address, whatever its
	 * outcome: a taken name or email is found by a lookup in the same
	 * statement, before any hashing, so a flood of registrations and a
	 * scan for existing names both cost no Argon2 time and both run into
	 * join_max_per_address. A race with another registration of the same
	 * name is still settled by the unique index: 409, counted.
	 */
	err = db_join_begin(auth_addr_key(cl), &auth_conf.join, username, email, &cl->retry_after);
	if (err == KG_OK)
		err = password_hash(norm, normlen, hash, sizeof(hash));
	if (err == KG_OK)
		err = db_user_insert(username, email, hash, auth_conf.default_scopes, user_id);
	if (err == KG_OK)
		auth_event(DB_EVENT_JOIN, *user_id, username, cl);
out:
	crypto_free_secret(norm);
	return err;
}

enum kg_err
auth_load_dummies(void)
{
	struct db_hash_class dc[DB_HASH_CLASSES_MAX];
	struct password_class pc[DB_HASH_CLASSES_MAX];
	char key[DB_HASH_MAX];
	size_t i, n = 0, made = 0;
	enum kg_err err;

	_Static_assert(DB_HASH_CLASSES_MAX <= PASSWORD_DUMMY_CLASSES, "a dummy per class");
	if ((err = db_hash_classes(dc, DB_HASH_CLASSES_MAX, &n, key, sizeof(key))) != KG_OK)
		goto out;
	for (i = 0; i < n; i++) {
		pc[i].sample = dc[i].sample;
		pc[i].count = dc[i].count;
	}
	if ((err = password_dummy_classes(pc, n, key, strlen(key), &made)) != KG_OK)
		goto out;
	log_debug("dummy hashes for unknown users: %zu cost classes of the stored hashes", made);
out:
	crypto_wipe(key, sizeof(key));
	crypto_wipe(dc, sizeof(dc));
	return err;
}

/*
 * Check a password against the account a lookup found (lookup KG_OK, *u)
 * or did not (KG_ENOTFOUND); the same cost and the same KG_EAUTH whether
 * the user is unknown, disabled or the password is wrong (subject, the
 * username without case, picks the cost of an unknown one). Rehashes on
 * success when the parameters changed.
 */
static enum kg_err
auth_check_password(enum kg_err lookup, const char *subject, const char *password, size_t pwlen,
    struct db_user *u)
{
	char *norm = NULL;
	size_t normlen = 0;
	char newhash[PASSWORD_HASH_MAX];
	enum kg_err err;

	if (pwlen > PASSWORD_MAX_BYTES)
		return KG_EINPUT;
	if ((err = password_normalize(password, pwlen, &norm, &normlen)) != KG_OK)
		goto out;
	err = lookup;
	if (err == KG_ENOTFOUND) {
		/*
		 * The Argon2 cost of a real account, of the cost class the name
		 * maps to: timing says nothing about existence, also while
		 * dormant accounts keep hashes of older parameters.
		 */
		err = password_verify_dummy(subject, norm, normlen);
		goto out;
	}
	if (err != KG_OK)
		goto out;
	err = password_verify(u->password_hash, norm, normlen);
	if (err != KG_OK)
		goto out;
	if (u->disabled) {
		err = KG_EAUTH;
		goto out;
	}
	if (password_needs_rehash(u->password_hash) &&
	    password_hash(norm, normlen, newhash, sizeof(newhash)) == KG_OK) {
		if (db_user_rehash(u->id, u->password_hash, newhash) == KG_OK)
			(void)snprintf(u->password_hash, sizeof(u->password_hash), "%s", newhash);
		else
			log_warnx("could not store the rehashed password of user %lld", u->id);
	}
out:
	crypto_free_secret(norm);
	if (err == KG_EAUTH || err == KG_ENOTFOUND)
		err = KG_EAUTH;
	return err;
}

/* The account's throttle key: the username without case, as typed (exists or not). */
static void
auth_subject(const char *username, char *out, size_t outsz)
{
	auth_name_record(username, 1, out, outsz);
}

/*
 * Count this attempt against the address, then the account, and look the
 * account up, in one statement. Returns the lookup's result for
 * auth_check_password, KG_OK with *u or KG_ENOTFOUND; anything else
 * (KG_ETHROTTLED, KG_EDB, ...) leaves nothing to check.
 */
static enum kg_err
auth_login_begin(const char *username, const char *subject, struct auth_client *cl,
    struct db_user *u)
{
	return db_login_begin(auth_addr_key(cl), subject, &auth_conf.addr,
	    &auth_conf.user, auth_username_valid(username) ? username : NULL, u, &cl->retry_after);
}

enum kg_err
auth_login(const char *username, const char *password, size_t pwlen, int remember,
    const struct scope_set *scopes, struct auth_client *cl, struct auth_issued *out,
    struct scope_set *missing)
{
	char subject[DB_NAME_MAX * 4];
	unsigned char digest[CRYPTO_SHA256_LEN];
	char scopes_lit[SCOPE_TEXT_MAX];
	struct scope_set own, granted;
	enum db_login_outcome outcome = DB_LOGIN_COLLIDED;
	struct db_login_finish fin;
	struct db_token_new nt;
	struct db_user u;
	enum kg_err err;
	long trimmed = 0;
	int attempt;

	memset(out, 0, sizeof(*out));
	memset(&u, 0, sizeof(u));
	memset(missing, 0, sizeof(*missing));
	if (pwlen > PASSWORD_MAX_BYTES)
		return KG_EINPUT;
	auth_subject(username, subject, sizeof(subject));
	err = auth_login_begin(username, subject, cl, &u);
	if (err == KG_ETHROTTLED)
		auth_event_throttled(username, subject, cl);
	if (err != KG_OK && err != KG_ENOTFOUND)
		return err;
	err = auth_check_password(err, subject, password, pwlen, &u);
	if (err == KG_EAUTH)
		auth_event(DB_EVENT_LOGIN_FAILED, u.id, username, cl);
	if (err != KG_OK)
		return err;
	/* Without scopes, "*": every scope granted, as the grant is at each check. */
	memset(&own, 0, sizeof(own));
	if (scopes != NULL && scopes->n > 0)
		own = *scopes;
	else
		(void)scope_set_add(&own, "*");
	scope_set_from_text(u.scopes, &granted);
	scope_set_missing(&granted, &own, missing);
	if (missing->n > 0) {
		/* Asked for more than is granted: refused with the password right, nothing issued. */
		err = KG_EBADSCOPE;
		goto out;
	}
	scope_effective(&own, &granted, &out->scopes);
	if ((err = scope_set_to_text(&own, scopes_lit, sizeof(scopes_lit))) != KG_OK)
		goto out;
	memset(&nt, 0, sizeof(nt));
	nt.user_id = u.id;
	nt.scopes = scopes_lit;
	nt.remember = remember;
	nt.lifetime_s = remember ? auth_conf.remember_lifetime : auth_conf.lifetime;
	nt.idle_s = remember ? auth_conf.remember_idle : auth_conf.idle;
	nt.ip = auth_has_ip(cl) ? cl->ip : NULL;
	nt.user_agent = cl != NULL ? cl->user_agent : NULL;
	/*
	 * One statement writes the token and everything a success changes
	 * (throttle rows, trimming, the login_ok event): with login_begin, a
	 * login costs the database two round trips, not eight.
	 */
	memset(&fin, 0, sizeof(fin));
	fin.token = &nt;
	fin.subject = subject;
	fin.addr_subject = auth_addr_key(cl);
	fin.addr_max = auth_conf.addr.max;
	fin.max_tokens = auth_conf.max_tokens;
	fin.username = u.username;
	fin.event_user_agent = cl != NULL && cl->user_agent != NULL && cl->user_agent[0] != '\0' ?
	    cl->user_agent : NULL;
	/* The generation the password was checked under: the token is written only if it holds. */
	fin.credential_gen = u.credential_gen;
	/* 128 random bits make a collision all but impossible; the unique key still decides. */
	for (attempt = 0; attempt < 3 && outcome == DB_LOGIN_COLLIDED; attempt++) {
		if ((err = token_generate(&out->token)) != KG_OK)
			goto out;
		token_digest(&out->token, digest);
		nt.key = out->token.key;
		nt.digest = digest;
		if ((err = db_login_finish(&fin, &outcome, out->expires_at, &trimmed)) != KG_OK)
			goto out;
	}
	if (outcome == DB_LOGIN_STALE) {
		/*
		 * A password change, logout-all, revoke-all or disable committed
		 * while the password was being checked: the login answers as if
		 * the password were wrong, which after a change it is.
		 */
		auth_event(DB_EVENT_LOGIN_FAILED, u.id, u.username, cl);
		err = KG_EAUTH;
		goto out;
	}
	if (outcome != DB_LOGIN_OK) {
		err = KG_ESYS;
		goto out;
	}
	if (trimmed > 0)
		tokencheck_revoked();
	out->user_id = u.id;
	out->idle_timeout = nt.idle_s;
out:
	if (err != KG_OK)
		auth_issued_wipe(out);
	return err;
}

void
auth_issued_wipe(struct auth_issued *i)
{
	token_wipe(&i->token);
	crypto_wipe(i, sizeof(*i));
}

/*
 * Check the current password of user_id before a change it asks for, as a
 * login would check it (counted against the account and the address, the
 * same cost and answer for every failure), and clear the attempts it
 * counted when it is right. *u is the account as read with the password.
 */
static enum kg_err
auth_recheck_password(long long user_id, const char *field, const char *current, size_t curlen,
    struct auth_client *cl, struct db_user *u, struct auth_field_error *fe)
{
	char name[DB_NAME_MAX], subject[DB_NAME_MAX * 4];
	enum kg_err err;

	if (curlen > PASSWORD_MAX_BYTES) {
		fe->field = field;
		fe->reason = "too_long";
		return KG_EINPUT;
	}
	if ((err = db_user_by_id(user_id, u)) != KG_OK)
		return err == KG_ENOTFOUND ? KG_ETOKEN : err;
	/* A stolen token must not become a way to guess the password. */
	(void)kg_strlcpy(name, u->username, sizeof(name));
	auth_subject(name, subject, sizeof(subject));
	err = auth_login_begin(name, subject, cl, u);
	if (err != KG_OK && err != KG_ENOTFOUND)
		return err;
	if ((err = auth_check_password(err, subject, current, curlen, u)) != KG_OK) {
		if (err == KG_EAUTH)
			auth_event(DB_EVENT_LOGIN_FAILED, user_id, name, cl);
		return err;
	}
	if (db_throttle_clear(DB_SCOPE_USER, subject) != KG_OK ||
	    (auth_addr_key(cl) != NULL &&
	        db_throttle_release(DB_SCOPE_ADDR, auth_addr_key(cl), (int)auth_conf.addr.max) != KG_OK))
		log_warnx("could not clear login attempts");
	return KG_OK;
}

enum kg_err
auth_api_token_create(const struct auth_session *s, const char *name, const char *current,
    size_t curlen, const struct scope_set *scopes, long expires_in, struct auth_client *cl,
    struct auth_issued *out, struct scope_set *missing, struct auth_field_error *fe)
{
	unsigned char digest[CRYPTO_SHA256_LEN];
	char scopes_lit[SCOPE_TEXT_MAX];
	enum db_api_token_outcome outcome = DB_API_TOKEN_COLLIDED;
	struct db_api_token_new nt;
	struct scope_set want;
	struct db_user u;
	enum kg_err err;
	int attempt;

	memset(out, 0, sizeof(*out));
	memset(missing, 0, sizeof(*missing));
	fe->field = NULL;
	fe->reason = NULL;
	/* A token cannot mint tokens: a stolen one must not outlive its own revocation. */
	if (s->api)
		return KG_ESESSION;
	if (!auth_token_name_valid(name)) {
		fe->field = "name";
		fe->reason = "invalid";
		return KG_EINPUT;
	}
	if (expires_in < 0 || expires_in > auth_conf.api_token_max_lifetime) {
		fe->field = "expires_in";
		fe->reason = expires_in < 0 ? "invalid" : "too_long";
		return KG_EINPUT;
	}
	if (expires_in == 0)
		expires_in = auth_conf.api_token_max_lifetime;
	/* Within the calling session's own scopes ("*": all of them). */
	if (scopes != NULL && scopes->n > 0) {
		scope_set_missing(&s->scopes, scopes, missing);
		if (missing->n > 0)
			return KG_EBADSCOPE;
		scope_set_expand(scopes, &s->scopes, &want);
	} else
		want = s->scopes;
	if (want.n == 0) {
		/* The session itself may do nothing: neither may a token it makes. */
		missing->n = 0;
		return KG_EBADSCOPE;
	}
	if ((err = auth_recheck_password(s->user_id, "current_password", current, curlen, cl,
	         &u, fe)) != KG_OK)
		return err;
	if ((err = scope_set_to_text(&want, scopes_lit, sizeof(scopes_lit))) != KG_OK)
		return err;
	memset(&nt, 0, sizeof(nt));
	nt.user_id = u.id;
	nt.scopes = scopes_lit;
	nt.name = name;
	nt.lifetime_s = (int)expires_in;
	/* No idle expiry: a script may run monthly. */
	nt.idle_s = (int)expires_in;
	nt.ip = auth_has_ip(cl) ? cl->ip : NULL;
	nt.user_agent = cl != NULL && cl->user_agent != NULL && cl->user_agent[0] != '\0' ?
	    cl->user_agent :
	    NULL;
	nt.max = auth_conf.max_api_tokens;
	nt.api_gen = u.api_gen;
	nt.username = u.username;
	for (attempt = 0; attempt < 3 && outcome == DB_API_TOKEN_COLLIDED; attempt++) {
		if ((err = token_generate(&out->token)) != KG_OK)
			goto out;
		token_digest(&out->token, digest);
		nt.key = out->token.key;
		nt.digest = digest;
		if ((err = db_api_token_create(&nt, &outcome, out->expires_at)) != KG_OK)
			goto out;
	}
	switch (outcome) {
	case DB_API_TOKEN_OK:
		break;
	case DB_API_TOKEN_LIMIT:
		err = KG_ETOOMANY;
		goto out;
	case DB_API_TOKEN_NAME_TAKEN:
		err = KG_ENAME_TAKEN;
		goto out;
	case DB_API_TOKEN_STALE:
		/* Revoked (password changed, every token revoked, disabled) while checking. */
		err = KG_EAUTH;
		goto out;
	default:
		err = KG_ESYS;
		goto out;
	}
	out->user_id = u.id;
	out->idle_timeout = nt.idle_s;
	/* What it may do now: its own scopes within the grant, as every check computes. */
	auth_effective(scopes_lit, u.scopes, &out->scopes, &want);
out:
	crypto_wipe(&u, sizeof(u));
	if (err != KG_OK)
		auth_issued_wipe(out);
	return err;
}

enum kg_err
auth_logout(const struct auth_session *s, int all, int api, const struct auth_client *cl, long *removed)
{
	enum kg_err err;

	*removed = 0;
	if (all)
		err = db_token_delete_all(s->user_id, NULL, api, removed);
	else
		err = db_token_delete(s->user_id, s->key, removed);
	/* A new credential generation ends tokens that no row count shows. */
	if (*removed > 0 || (all && err == KG_OK))
		tokencheck_revoked();
	if (err == KG_OK)
		auth_event(all ? DB_EVENT_LOGOUT_ALL : DB_EVENT_LOGOUT, s->user_id, s->username, cl);
	return err;
}

enum kg_err
auth_revoke(long long user_id, const char *username, const char *key,
    const struct auth_client *cl)
{
	long removed = 0;
	enum kg_err err;

	if (!token_key_valid(key))
		return KG_ENOTFOUND;
	if ((err = db_token_delete(user_id, key, &removed)) != KG_OK)
		return err;
	if (removed != 1)
		return KG_ENOTFOUND;
	tokencheck_revoked();
	auth_event(DB_EVENT_TOKEN_REVOKED, user_id, username, cl);
	return KG_OK;
}

enum kg_err
auth_set_disabled(const char *username, int disabled, const struct auth_client *cl)
{
	long long id = 0;
	enum kg_err err;

	if ((err = db_user_set_disabled(username, disabled, &id)) != KG_OK)
		return err;
	tokencheck_revoked();
	auth_event(disabled ? DB_EVENT_USER_DISABLED : DB_EVENT_USER_ENABLED, id, username, cl);
	return KG_OK;
}

enum kg_err
auth_change_password(long long user_id, const char *current, size_t curlen, const char *newpw,
    size_t newlen, const char *keep_key, struct auth_client *cl, long *revoked,
    long *api_revoked, struct auth_field_error *fe)
{
	char hash[PASSWORD_HASH_MAX];
	struct db_user u;
	enum kg_err err;

	*revoked = *api_revoked = 0;
	fe->field = NULL;
	fe->reason = NULL;
	err = auth_recheck_password(user_id, "current_password", current, curlen, cl, &u, fe);
	if (err == KG_OK)
		err = auth_new_password("new_password", u.username, newpw, newlen, hash,
		    sizeof(hash), fe);
	if (err == KG_OK)
		err = db_user_set_password(user_id, hash, keep_key, revoked, api_revoked);
	if (err == KG_OK) {
		tokencheck_revoked();
		auth_event(DB_EVENT_PASSWORD_CHANGED, user_id, u.username, cl);
	}
	crypto_wipe(hash, sizeof(hash));
	crypto_wipe(&u, sizeof(u));
	return err;
}

enum kg_err
auth_set_password(const char *username, const char *pw, size_t pwlen,
    const struct auth_client *cl, long *revoked, struct auth_field_error *fe)
{
	char hash[PASSWORD_HASH_MAX];
	struct db_user u;
	long api_revoked = 0;
	enum kg_err err;

	*revoked = 0;
	fe->field = NULL;
	fe->reason = NULL;
	if ((err = db_user_by_name(username, &u)) != KG_OK)
		return err;
	err = auth_new_password("password", u.username, pw, pwlen, hash, sizeof(hash), fe);
	if (err != KG_OK)
		return err;
	if ((err = db_user_set_password(u.id, hash, NULL, revoked, &api_revoked)) != KG_OK)
		return err;
	tokencheck_revoked();
	auth_event(DB_EVENT_PASSWORD_CHANGED, u.id, u.username, cl);
	return KG_OK;
}

enum kg_err
auth_revoke_all(long long user_id, const char *username, const struct auth_client *cl,
    long *revoked)
{
	enum kg_err err;

	if ((err = db_token_delete_all(user_id, NULL, 1, revoked)) != KG_OK)
		return err;
	tokencheck_revoked();
	if (*revoked > 0)
		auth_event(DB_EVENT_TOKEN_REVOKED, user_id, username, cl);
	return KG_OK;
}

enum kg_err
auth_grant(const char *username, const struct scope_set *scopes, int grant,
    const struct auth_client *cl, struct scope_set *now, const char **bad)
{
	char old[SCOPE_TEXT_MAX], lit[SCOPE_TEXT_MAX], detail[SCOPE_TEXT_MAX];
	struct scope_set cur, next;
	struct db_user u;
	enum kg_err err = KG_OK;
	long changed = 0;
	size_t i, j;
	int attempt;

	*bad = NULL;
	memset(now, 0, sizeof(*now));
	/* Read, change, write if unchanged meanwhile: a concurrent grant is not lost. */
	for (attempt = 0; attempt < 5 && changed == 0; attempt++) {
		if ((err = db_user_by_name(username, &u)) != KG_OK)
			goto out;
		(void)kg_strlcpy(old, u.scopes, sizeof(old));
		scope_set_from_text(old, &cur);
		memset(&next, 0, sizeof(next));
		if (grant) {
			next = cur;
			for (i = 0; i < scopes->n; i++)
				if (!scope_set_add(&next, scopes->s[i])) {
					*bad = scopes->s[i];
					err = KG_EINPUT;
					goto out;
				}
		} else {
			for (i = 0; i < cur.n; i++) {
				for (j = 0; j < scopes->n && strcmp(cur.s[i], scopes->s[j]) != 0; j++)
					;
				if (j == scopes->n)
					(void)scope_set_add(&next, cur.s[i]);
			}
			/* Granted through a broader one: removing nothing would mislead. */
			for (j = 0; j < scopes->n; j++)
				if (scope_set_allows(&next, scopes->s[j])) {
					*bad = scopes->s[j];
					err = KG_EINPUT;
					goto out;
				}
		}
		if ((err = scope_set_to_text(&next, lit, sizeof(lit))) != KG_OK)
			goto out;
		if ((err = db_user_set_scopes(u.id, old, lit, &changed)) != KG_OK)
			goto out;
	}
	if (changed == 0) {
		err = KG_EDB;
		goto out;
	}
	*now = next;
	/* Cached tokens carry effective scopes: forget them, here at once (NOTIFY elsewhere). */
	tokencheck_revoked();
	if (scope_set_to_text(scopes, detail, sizeof(detail)) != KG_OK)
		detail[0] = '\0';
	auth_event_about(grant ? DB_EVENT_SCOPE_GRANTED : DB_EVENT_SCOPE_UNGRANTED, u.id,
	    u.username, cl, detail);
out:
	crypto_wipe(&u, sizeof(u));
	return err;
}

enum kg_err
auth_store_ready(void)
{
	return db_ready();
}

enum kg_err
auth_store_ping(void)
{
	return db_ping();
}

void
auth_store_close(void)
{
	db_close();
}

long
auth_retry_after(void)
{
	return db_retry_after();
}

enum auth_store_problem
auth_store_problem(void)
{
	if (db_schema_missing())
		return AUTH_STORE_UNMIGRATED;
	if (db_role_missing())
		return AUTH_STORE_NO_ROLE;
	return AUTH_STORE_FINE;
}

enum kg_err
auth_user_find(const char *username, struct auth_user *u)
{
	struct db_user row;
	enum kg_err err;

	memset(u, 0, sizeof(*u));
	if ((err = db_user_by_name(username, &row)) == KG_OK) {
		u->id = row.id;
		(void)kg_strlcpy(u->username, row.username, sizeof(u->username));
	}
	crypto_wipe(&row, sizeof(row));
	return err;
}

enum kg_err
auth_tokens(long long user_id, struct auth_token_info **rows, size_t *n)
{
	struct db_session *db_rows = NULL;
	struct auth_token_info *r = NULL;
	size_t i, count = 0;
	enum kg_err err;

	*rows = NULL;
	*n = 0;
	if ((err = db_token_list(user_id, &db_rows, &count)) != KG_OK)
		goto out;
	if ((r = calloc(count > 0 ? count : 1, sizeof(*r))) == NULL) {
		err = KG_ENOMEM;
		goto out;
	}
	for (i = 0; i < count; i++) {
		(void)kg_strlcpy(r[i].key, db_rows[i].key, sizeof(r[i].key));
		(void)kg_strlcpy(r[i].created_at, db_rows[i].created_at, sizeof(r[i].created_at));
		(void)kg_strlcpy(r[i].last_used_at, db_rows[i].last_used_at,
		    sizeof(r[i].last_used_at));
		(void)kg_strlcpy(r[i].expires_at, db_rows[i].expires_at, sizeof(r[i].expires_at));
		(void)kg_strlcpy(r[i].ip, db_rows[i].ip, sizeof(r[i].ip));
		(void)kg_strlcpy(r[i].user_agent, db_rows[i].user_agent, sizeof(r[i].user_agent));
		{
			struct scope_set g;

			auth_effective(db_rows[i].scopes, db_rows[i].granted, &r[i].scopes, &g);
		}
		r[i].api = db_rows[i].api;
		(void)kg_strlcpy(r[i].name, db_rows[i].name, sizeof(r[i].name));
	}
	*rows = r;
	*n = count;
	r = NULL;
out:
	free(r);
	free(db_rows);
	return err;
}

enum kg_err
auth_user_list(auth_row_fn fn, void *arg)
{
	return db_user_list(fn, arg);
}

enum kg_err
auth_events(const char *username, const char *since, long limit, auth_row_fn fn, void *arg)
{
	return db_events(username, since, limit, fn, arg);
}

enum kg_err
auth_prune(long counts[3])
{
	enum kg_err err;

	if ((err = db_token_prune(&counts[0])) != KG_OK)
		return err;
	if ((err = db_throttle_prune(auth_conf.prune_throttle_s, &counts[1])) != KG_OK)
		return err;
	return db_event_prune(auth_conf.audit_retention_s, &counts[2]);
}
