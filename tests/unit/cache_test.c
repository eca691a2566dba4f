/*
 * Unit tests for src/cache.c against a stub of the layers below (db and
 * scoreboard, defined here): the cache off (token_cache_size = 0) stores,
 * finds and claims nothing and never divides by its zero sets, however its
 * callers drive it (issue 15: SIGFPE at a token's second last_used_at
 * write); every small size is a real cache of at least one set; a
 * revocation empties it.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "cache.h"
#include "db.h"
#include "scoreboard.h"
#include "token.h"

#define KEY_A "kg_1_AAAAAAAAAAAAAAAAAAAAAA"

/* The stubbed layers below. */
static struct {
	int listen;                 /* db_listen_for_revocations */
	unsigned long epoch;        /* scoreboard_epoch */
	int answer;                 /* what db_token_refresh_take hands out next */
	struct db_refresh refresh;
	int takes, sends;
} stub;

void
db_listen_for_revocations(int on)
{
	stub.listen = on;
}

int
db_revocations_pending(long long now_ms)
{
	(void)now_ms;
	return 0;
}

long long
db_listening_since(void)
{
	return 0;
}

int
db_token_refresh_take(struct db_refresh *out)
{
	int a = stub.answer;

	stub.takes++;
	if (a != DB_REFRESH_NONE)
		*out = stub.refresh;
	stub.answer = DB_REFRESH_NONE;
	return a;
}

void
db_token_refresh_finish(void)
{
}

enum kg_err
db_token_refresh_send(const char *key, int touch_interval, long long as_of_ms,
    unsigned long epoch)
{
	(void)key;
	(void)touch_interval;
	(void)as_of_ms;
	(void)epoch;
	stub.sends++;
	return KG_OK;
}

unsigned long
scoreboard_epoch(void)
{
	return stub.epoch;
}

void
scoreboard_epoch_bump(void)
{
	stub.epoch++;
}

/* A live row for user id. */
static struct db_token
row(long long id)
{
	struct db_token t;
	long long now = (long long)time(NULL);

	memset(&t, 0, sizeof(t));
	t.user_id = id;
	t.digest[0] = (unsigned char)id;
	(void)snprintf(t.username, sizeof(t.username), "user%lld", id);
	(void)snprintf(t.scopes, sizeof(t.scopes), "{*}");
	(void)snprintf(t.created_at, sizeof(t.created_at), "2026-01-01T00:00:00Z");
	t.expires_at = now + 3600;
	t.last_used_at = now;
	t.idle_s = 1800;
	return t;
}

/* A refresh answer for key, as db.c hands one out, trusted as of now. */
static void
answer(const char *key, long long id)
{
	memset(&stub.refresh, 0, sizeof(stub.refresh));
	(void)snprintf(stub.refresh.key, sizeof(stub.refresh.key), "%s", key);
	stub.refresh.row = row(id);
	stub.refresh.as_of_ms = kg_monotonic_ms();
	stub.refresh.epoch = stub.epoch;
	stub.answer = DB_REFRESH_ROW;
}

/* What auth_verify does on a miss: look up (sets the ticket), then store. */
static int
check(const char *key, long long id)
{
	struct db_token t = row(id), got;

	if (cache_lookup(key, &got))
		return (int)got.user_id;
	cache_store(key, &t);
	return 0;
}

static int
reset(void **state)
{
	(void)state;
	memset(&stub, 0, sizeof(stub));
	return 0;
}

static void
test_off_is_inert(void **state)
{
	struct db_token got;
	long long now = (long long)time(NULL);
	int i;

	(void)state;
	stub.listen = 1;
	assert_int_equal(cache_configure(0, 120), KG_OK);
	for (i = 0; i < 3; i++) {
		assert_int_equal(check(KEY_A, 7), 0);
		/* The second write's refresh used to land in cache_places(): SIGFPE. */
		answer(KEY_A, 7);
		assert_int_equal(cache_refresh_send(KEY_A, 60), KG_OK);
		assert_int_equal(stub.answer, DB_REFRESH_NONE);
		stub.answer = DB_REFRESH_GONE;
		assert_int_equal(cache_refresh_send(KEY_A, 60), KG_OK);
		assert_int_equal(stub.answer, DB_REFRESH_NONE);
	}
	assert_int_equal(stub.sends, 6);
	assert_int_equal(cache_lookup(KEY_A, &got), 0);
	assert_int_equal(cache_claim_refresh(KEY_A), 0);
	/* Nobody else could claim the write: the caller makes it. */
	assert_int_equal(cache_claim_touch(KEY_A, now - 120, now), 1);
	cache_forget(KEY_A);
	cache_revoked();
	assert_int_equal(cache_lookup(KEY_A, &got), 0);
	/* Nothing would read the notifications. */
	assert_int_equal(stub.listen, 0);
}

static void
test_small_sizes_cache(void **state)
{
	char keys[6][TOKEN_KEY_LEN + 1];
	struct db_token got;
	long long seen;
	size_t n;
	int i, found;

	(void)state;
	for (i = 0; i < 6; i++)
		(void)snprintf(keys[i], sizeof(keys[i]), "kg_1_%022d", i);
	for (n = 1; n <= 9; n++) {
		assert_int_equal(cache_configure(n, 120), KG_OK);
		assert_int_equal(stub.listen, 1);
		assert_int_equal(check(KEY_A, 7), 0);
		assert_int_equal(check(KEY_A, 7), 7);
		/* A refresh answer replaces the entry. */
		answer(KEY_A, 8);
		assert_int_equal(cache_refresh_send(KEY_A, 60), KG_OK);
		assert_int_equal(check(KEY_A, 7), 8);
		/* One worker claims a due write; the next finds it claimed. */
		assert_int_equal(cache_lookup(KEY_A, &got), 1);
		seen = got.last_used_at;
		assert_int_equal(cache_claim_touch(KEY_A, seen, seen + 60), 1);
		assert_int_equal(cache_claim_touch(KEY_A, seen, seen + 60), 0);
		/* More keys than entries: some are evicted, none is wrong. */
		for (i = 0; i < 6; i++)
			(void)check(keys[i], 100 + i);
		found = 0;
		for (i = 0; i < 6; i++) {
			if (cache_lookup(keys[i], &got)) {
				assert_int_equal(got.user_id, 100 + i);
				found++;
			}
		}
		assert_in_range(found, 1, n < 8 ? 4 : 6);
		cache_revoked();
		for (i = 0; i < 6; i++)
			assert_int_equal(cache_lookup(keys[i], &got), 0);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_off_is_inert, reset),
		cmocka_unit_test_setup(test_small_sizes_cache, reset),
		cmocka_unit_test_setup(test_off_is_inert, reset),
	};

	return cmocka_run_group_tests_name("cache", tests, NULL, NULL);
}
