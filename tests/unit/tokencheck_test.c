/*
 * Unit tests for src/tokencheck.c: each invariant its header lists (I1 to
 * I10), against a stub of the store defined here. The stub keeps a small
 * table of token rows, counts the statements, and can make a statement
 * "race": run a hook while it runs, as another worker or host would.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "db.h"
#include "token.h"
#include "tokencheck.h"

#define TOUCH 60
#define ROWS 16

/* The stubbed store. */
static struct {
	int listen;                /* db_listen_for_revocations */
	int down;                  /* the connection is down */
	int notify;                /* notifications waiting (db_revocations_read) */
	long long listening_since; /* db_listening_since */
	struct {
		char key[TOKEN_KEY_LEN + 1];
		struct db_token row;
		int live;
	} rows[ROWS];
	int nrows;
	int lookups, refreshes, reads;
	int store_due;        /* needs_touch: -1 by last_used_at, 0 never, 1 always */
	void (*during)(void); /* run inside the next statement, once */
} st;

void
db_listen_for_revocations(int on)
{
	st.listen = on;
}

enum db_revocations
db_revocations_read(int read_socket)
{
	(void)read_socket;
	st.reads++;
	if (st.down)
		return DB_REVOCATIONS_UNKNOWN;
	if (st.notify > 0) {
		st.notify = 0;
		return DB_REVOCATIONS_SOME;
	}
	return DB_REVOCATIONS_NONE;
}

/* Apart from st.down on purpose: the real store says LLONG_MAX when down too, but I3 must hold alone. */
long long
db_listening_since(void)
{
	return st.listening_since;
}

static int
st_find(const char *key)
{
	int i;

	for (i = 0; i < st.nrows; i++)
		if (strcmp(st.rows[i].key, key) == 0)
			return i;
	return -1;
}

/* A TOKEN_ROW statement: the row as it was, needs_touch by its last_used_at. */
static enum kg_err
st_statement(const char *key, int touch_interval, struct db_token *t, int write)
{
	long long now = (long long)time(NULL);
	void (*hook)(void) = st.during;
	int i;

	st.during = NULL;
	if (hook != NULL)
		hook();
	memset(t, 0, sizeof(*t));
	if (st.down)
		return KG_EDB;
	if ((i = st_find(key)) < 0 || !st.rows[i].live)
		return KG_ENOTFOUND;
	*t = st.rows[i].row;
	t->needs_touch = st.store_due >= 0 ? st.store_due : t->last_used_at < now - touch_interval;
	if (write && t->needs_touch)
		st.rows[i].row.last_used_at = now;
	return KG_OK;
}

enum kg_err
db_token_lookup(const char *key, int touch_interval, struct db_token *t)
{
	st.lookups++;
	return st_statement(key, touch_interval, t, 0);
}

enum kg_err
db_token_refresh(const char *key, int touch_interval, struct db_token *t)
{
	st.refreshes++;
	return st_statement(key, touch_interval, t, 1);
}

/* A new live token of user id in the stub's table, last used `ago` seconds ago. */
static struct token
st_token(long long id, long long ago)
{
	struct token t;
	struct db_token *r;
	long long now = (long long)time(NULL);

	assert_int_equal(token_generate(&t), KG_OK);
	assert_true(st.nrows < ROWS);
	(void)snprintf(st.rows[st.nrows].key, sizeof(st.rows[st.nrows].key), "%s", t.key);
	st.rows[st.nrows].live = 1;
	r = &st.rows[st.nrows].row;
	memset(r, 0, sizeof(*r));
	r->user_id = id;
	token_digest(&t, r->digest);
	(void)snprintf(r->username, sizeof(r->username), "user%lld", id);
	(void)snprintf(r->scopes, sizeof(r->scopes), "{*}");
	(void)snprintf(r->created_at, sizeof(r->created_at), "2026-01-01T00:00:00Z");
	r->expires_at = now + 3600;
	r->last_used_at = now - ago;
	r->idle_s = 1800;
	st.nrows++;
	return t;
}

static struct db_token *
st_row(const struct token *t)
{
	int i = st_find(t->key);

	assert_true(i >= 0);
	return &st.rows[i].row;
}

/* One request: the check, then what it left for after the response. */
static enum kg_err
request(const struct token *t, struct db_token *row)
{
	enum kg_err err = tokencheck_verify(t, row);

	tokencheck_after_response();
	return err;
}

/* Is t answered from the cache? One request; 1 when it cost no lookup. */
static int
hit(const struct token *t)
{
	struct db_token row;
	int before = st.lookups;

	assert_int_equal(request(t, &row), KG_OK);
	return st.lookups == before;
}

static int
setup(void **state)
{
	(void)state;
	memset(&st, 0, sizeof(st));
	st.listening_since = 0;
	st.store_due = -1;
	assert_int_equal(tokencheck_configure(64, 120, TOUCH), KG_OK);
	return 0;
}

static void
test_a_read_serves_the_next_checks(void **state)
{
	struct token t = st_token(7, 0);
	struct db_token row;

	(void)state;
	assert_int_equal(st.listen, 1);
	assert_int_equal(request(&t, &row), KG_OK);
	assert_int_equal(row.user_id, 7);
	assert_string_equal(row.username, "user7");
	assert_int_equal(st.lookups, 1);
	assert_true(hit(&t));
	assert_true(hit(&t));
	assert_int_equal(st.lookups, 1);
	assert_int_equal(st.refreshes, 0);
}

/* I1 */
static void
test_a_revocation_here_kills_every_entry(void **state)
{
	struct token a = st_token(1, 0), b = st_token(2, 0);

	(void)state;
	assert_false(hit(&a));
	assert_false(hit(&b));
	assert_true(hit(&a));
	tokencheck_revoked();
	assert_false(hit(&a));
	assert_false(hit(&b));
	assert_true(hit(&b));
	/* A revoked token is then refused by the store. */
	st.rows[st_find(a.key)].live = 0;
	tokencheck_revoked();
	assert_int_equal(tokencheck_verify(&a, &(struct db_token){ 0 }), KG_ETOKEN);
}

/* I2 */
static void
test_a_notification_moves_the_epoch_first(void **state)
{
	struct token t = st_token(3, 0), u = st_token(4, 0);

	(void)state;
	assert_false(hit(&t));
	assert_false(hit(&u));
	st.rows[st_find(t.key)].live = 0; /* revoked on another host */
	st.notify = 1;
	assert_int_equal(tokencheck_verify(&t, &(struct db_token){ 0 }), KG_ETOKEN);
	/* every entry died with it, not only the one checked */
	assert_false(hit(&u));
	assert_true(hit(&u));
}

/* I3 */
static void
test_nothing_is_served_while_the_store_cannot_tell(void **state)
{
	struct token t = st_token(5, 0);
	struct db_token row;

	(void)state;
	assert_false(hit(&t));
	assert_true(hit(&t));
	st.down = 1;
	assert_int_equal(request(&t, &row), KG_EDB);
	assert_int_equal(request(&t, &row), KG_EDB);
	st.down = 0;
	/* Back up: nothing it missed meanwhile is trusted (I4 does the rest). */
	assert_true(hit(&t));
}

/* I4 */
static void
test_only_reads_since_listening_are_served(void **state)
{
	struct token t = st_token(6, 0);

	(void)state;
	assert_false(hit(&t));
	assert_true(hit(&t));
	/* The connection was re-established: it listens only from now on. */
	/* Reconnecting: the connection does not listen yet. */
	st.listening_since = LLONG_MAX;
	assert_false(hit(&t));
	assert_false(hit(&t));
	/* It listens from now on: what was read before is not trusted. */
	usleep(2000);
	st.listening_since = kg_monotonic_ms();
	assert_false(hit(&t));
	assert_true(hit(&t));
}

static void
revoke_elsewhere_in_this_pool(void)
{
	tokencheck_revoked();
}

static void
notify_arrives(void)
{
	st.notify = 1;
}

/* I5 */
static void
test_an_answer_raced_by_a_revocation_is_not_kept(void **state)
{
	struct token t = st_token(8, 0);
	struct db_token row;

	(void)state;
	/* Another worker revokes while the lookup runs. */
	st.during = revoke_elsewhere_in_this_pool;
	assert_int_equal(request(&t, &row), KG_OK);
	assert_false(hit(&t));
	assert_true(hit(&t));
	/* A notification arrives while the lookup runs. */
	tokencheck_revoked();
	st.during = notify_arrives;
	assert_false(hit(&t));
	assert_false(hit(&t));
	assert_true(hit(&t));
}

/* I5, for a refresh: revoke during a refresh */
static void
test_a_refresh_raced_by_a_revocation_is_not_kept(void **state)
{
	struct token t = st_token(9, TOUCH), u = st_token(19, TOUCH);
	struct db_token row;

	(void)state;
	/* due for the check, not yet for the store's clock: the next hit claims it */
	st.store_due = 0;
	assert_false(hit(&t));
	assert_int_equal(st.refreshes, 0);
	/* the hit claims the write; another worker revokes while the refresh runs */
	st.during = revoke_elsewhere_in_this_pool;
	assert_int_equal(tokencheck_verify(&t, &row), KG_OK);
	assert_int_equal(st.refreshes, 0); /* not while the client waits */
	tokencheck_after_response();
	assert_int_equal(st.refreshes, 1);
	/* the refresh's answer was not kept, and the revocation killed the entry */
	assert_false(hit(&t));
	/* a notification read right after the refresh: not kept either */
	assert_false(hit(&u));
	st.during = notify_arrives;
	assert_int_equal(tokencheck_verify(&u, &row), KG_OK);
	tokencheck_after_response();
	assert_int_equal(st.refreshes, 2);
	assert_false(hit(&u));
}

/* I6 */
static void
test_no_entry_outlives_its_token_or_the_ttl(void **state)
{
	long long now = (long long)time(NULL);
	struct token e = st_token(10, 0), i = st_token(11, 0), l = st_token(12, 0);

	(void)state;
	/* a row the store still hands out but whose time is up by our clock */
	st_row(&e)->expires_at = now;
	assert_false(hit(&e));
	assert_false(hit(&e));
	st_row(&i)->idle_s = 1;
	st_row(&i)->last_used_at = now - 1;
	assert_false(hit(&i));
	assert_false(hit(&i));
	/* token_cache_ttl 1 s, the entry's life at most that */
	assert_int_equal(tokencheck_configure(64, 1, TOUCH), KG_OK);
	assert_false(hit(&l));
	assert_true(hit(&l));
	usleep(1100 * 1000);
	assert_false(hit(&l));
}

/* I7 */
static void
test_a_due_touch_is_claimed_once(void **state)
{
	struct token t = st_token(13, TOUCH), u = st_token(17, 2 * TOUCH);
	int i;

	(void)state;
	/* Not due by the store's clock, due by this host's: the miss stores it unclaimed. */
	st.store_due = 0;
	assert_false(hit(&t));
	assert_int_equal(st.refreshes, 0);
	/* The first hit claims the write (run after its response). */
	assert_true(hit(&t));
	assert_int_equal(st.refreshes, 1);
	/*
	 * The refresh's answer carries the store's older last_used_at: the
	 * entry keeps the claim, so no further hit claims it again.
	 */
	for (i = 0; i < 5; i++)
		assert_true(hit(&t));
	assert_int_equal(st.refreshes, 1);
	/* Due by the store's clock: the miss claims it, and the write happens once. */
	st.store_due = -1;
	assert_false(hit(&u));
	assert_int_equal(st.refreshes, 2);
	assert_true(st_row(&u)->last_used_at >= (long long)time(NULL) - 1);
	for (i = 0; i < 5; i++)
		assert_true(hit(&u));
	assert_int_equal(st.refreshes, 2);
}

/* What another worker (a child process: the cache is shared) reads and keeps. */
static struct token child_token;

static void
another_worker_reads_it(void)
{
	pid_t pid;
	int status;

	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct db_token row;

		(void)snprintf(st_row(&child_token)->username, DB_NAME_MAX, "%s", "renamed");
		/* its connection listens only from now: the cached entry is not for it */
		st.listening_since = LLONG_MAX;
		usleep(2000); /* a ticket later than the parent's, by the millisecond clock */
		_exit(tokencheck_verify(&child_token, &row) == KG_OK && st.lookups == 1 ? 0 : 1);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	st.listening_since = 0;
}

/* I8 */
static void
test_an_older_answer_never_replaces_a_newer_row(void **state)
{
	struct token t = st_token(14, TOUCH), g = st_token(18, TOUCH);
	struct db_token row;

	(void)state;
	st.store_due = 0;
	assert_false(hit(&t));
	/*
	 * The hit claims the write; while its refresh runs, another worker
	 * reads the row anew (a later ticket) and stores it.
	 */
	child_token = t;
	st.lookups = 0;
	st.during = another_worker_reads_it;
	assert_int_equal(tokencheck_verify(&t, &row), KG_OK);
	tokencheck_after_response();
	assert_int_equal(st.refreshes, 1);
	/* the refresh's answer, older than the child's row, did not replace it */
	assert_true(hit(&t));
	assert_int_equal(tokencheck_verify(&t, &row), KG_OK);
	assert_string_equal(row.username, "renamed");
	/* A refresh that finds the token gone removes its entry. */
	assert_false(hit(&g));            /* cached, due by this host's clock */
	st.rows[st_find(g.key)].live = 0; /* revoked, no notification yet */
	assert_int_equal(tokencheck_verify(&g, &row), KG_OK); /* a hit: claims the write */
	tokencheck_after_response();                          /* the refresh finds it gone */
	assert_int_equal(tokencheck_verify(&g, &row), KG_ETOKEN);
}

/* I9 */
static void
test_off_reads_the_store_every_time_and_writes_once_per_interval(void **state)
{
	struct token t = st_token(15, 2 * TOUCH);
	struct db_token row;
	int i;

	(void)state;
	st.listen = 1;
	assert_int_equal(tokencheck_configure(0, 120, TOUCH), KG_OK);
	assert_int_equal(st.listen, 0);
	st.reads = 0;
	for (i = 0; i < 5; i++) {
		assert_int_equal(request(&t, &row), KG_OK);
		assert_int_equal(row.user_id, 15);
	}
	assert_int_equal(st.lookups, 5);
	/* the first found it due and wrote it; the others found it written */
	assert_int_equal(st.refreshes, 1);
	/* nothing listens, so nothing reads notifications */
	assert_int_equal(st.reads, 0);
	tokencheck_revoked();
	assert_false(hit(&t));
}

/* I9 */
static void
test_every_size_is_a_real_cache(void **state)
{
	static const size_t sizes[] = { 1, 2, 3, 4, 5, 7, 8, 9, 12, 16, 4096 };
	struct token keys[8];
	struct db_token row;
	size_t s;
	int i, found;

	(void)state;
	for (i = 0; i < 8; i++)
		keys[i] = st_token(100 + i, 0);
	for (s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
		assert_int_equal(tokencheck_configure(sizes[s], 120, TOUCH), KG_OK);
		assert_int_equal(st.listen, 1);
		assert_false(hit(&keys[0]));
		assert_true(hit(&keys[0]));
		/* more keys than entries: some are evicted, none is served wrong */
		for (i = 0; i < 8; i++)
			(void)hit(&keys[i]);
		found = 0;
		for (i = 0; i < 8; i++) {
			int before = st.lookups;

			assert_int_equal(request(&keys[i], &row), KG_OK);
			assert_int_equal(row.user_id, 100 + i);
			found += st.lookups == before;
		}
		assert_in_range(found, 1, sizes[s] < 8 ? 4 : 8);
		tokencheck_revoked();
		for (i = 0; i < 8; i++)
			assert_false(hit(&keys[i]));
	}
}

/* I10 */
static void
test_a_wrong_secret_is_refused_cached_or_not(void **state)
{
	struct token t = st_token(16, 0), bad;
	struct db_token row;

	(void)state;
	bad = t;
	bad.secret[0] = bad.secret[0] == 'A' ? 'B' : 'A';
	assert_int_equal(tokencheck_verify(&bad, &row), KG_ETOKEN);
	assert_false(hit(&t));
	assert_true(hit(&t));
	assert_int_equal(tokencheck_verify(&bad, &row), KG_ETOKEN);
	assert_true(hit(&t));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_a_read_serves_the_next_checks, setup),
		cmocka_unit_test_setup(test_a_revocation_here_kills_every_entry, setup),
		cmocka_unit_test_setup(test_a_notification_moves_the_epoch_first, setup),
		cmocka_unit_test_setup(test_nothing_is_served_while_the_store_cannot_tell, setup),
		cmocka_unit_test_setup(test_only_reads_since_listening_are_served, setup),
		cmocka_unit_test_setup(test_an_answer_raced_by_a_revocation_is_not_kept, setup),
		cmocka_unit_test_setup(test_a_refresh_raced_by_a_revocation_is_not_kept, setup),
		cmocka_unit_test_setup(test_no_entry_outlives_its_token_or_the_ttl, setup),
		cmocka_unit_test_setup(test_a_due_touch_is_claimed_once, setup),
		cmocka_unit_test_setup(test_an_older_answer_never_replaces_a_newer_row, setup),
		cmocka_unit_test_setup(test_off_reads_the_store_every_time_and_writes_once_per_interval,
		    setup),
		cmocka_unit_test_setup(test_every_size_is_a_real_cache, setup),
		cmocka_unit_test_setup(test_a_wrong_secret_is_refused_cached_or_not, setup),
	};

	return cmocka_run_group_tests_name("tokencheck", tests, NULL, NULL);
}
