#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cache.h"
#include "crypto.h"
#include "scoreboard.h"
#include "token.h"

#define CACHE_SCOPES_MAX 160   /* longer scope lists are simply not cached */
#define CACHE_WAYS 4           /* entries per set: keys that share a set do not evict each other */

struct cache_entry {
	char key[TOKEN_KEY_LEN + 1];
	unsigned char digest[CRYPTO_SHA256_LEN];
	long long user_id;
	long long expires_at;
	long long last_used_at;
	long long stored_ms;
	long idle_s;
	unsigned long epoch;       /* the pool's epoch when stored */
	unsigned long gen;         /* this process's generation when stored */
	int has_email;
	char username[DB_NAME_MAX];
	char created_at[DB_TS_LEN];
	char scopes[CACHE_SCOPES_MAX];
	char email[DB_EMAIL_MAX];
};

static struct cache_entry *cache;
static size_t cache_n;
static long long cache_ttl_ms;
static unsigned long cache_gen = 1;
/*
 * Epoch and generation as of the last lookup, taken before the database is
 * asked: a revocation that lands while the query runs then invalidates
 * what the query returned.
 */
static unsigned long ticket_epoch, ticket_gen;

enum kg_err
cache_configure(size_t entries, int ttl_s)
{
	struct cache_entry *c = NULL;

	entries -= entries % CACHE_WAYS;
	if (entries > 0 && (c = calloc(entries, sizeof(*c))) == NULL)
		return KG_ENOMEM;
	free(cache);
	cache = c;
	cache_n = entries;
	cache_ttl_ms = (long long)ttl_s * 1000;
	cache_gen++;
	return KG_OK;
}

/* The first entry of key's set (FNV-1a of the key: keys are random, any spread will do). */
static struct cache_entry *
cache_set(const char *key)
{
	unsigned long h = 2166136261UL;

	for (; *key != '\0'; key++)
		h = (h ^ (unsigned char)*key) * 16777619UL;
	return &cache[(h % (cache_n / CACHE_WAYS)) * CACHE_WAYS];
}

/* key's entry in its set, or NULL. */
static struct cache_entry *
cache_find(const char *key)
{
	struct cache_entry *set = cache_set(key);
	int i;

	for (i = 0; i < CACHE_WAYS; i++)
		if (strcmp(set[i].key, key) == 0)
			return &set[i];
	return NULL;
}

/* Where to store key: its own entry, else a dead one, else the oldest. */
static struct cache_entry *
cache_victim(const char *key)
{
	struct cache_entry *set = cache_set(key), *e = cache_find(key);
	int i;

	if (e != NULL)
		return e;
	e = &set[0];
	for (i = 0; i < CACHE_WAYS; i++) {
		if (set[i].gen != cache_gen || set[i].epoch != scoreboard_epoch())
			return &set[i];
		if (set[i].stored_ms < e->stored_ms)
			e = &set[i];
	}
	return e;
}

static long long
cache_now_ms(void)
{
	struct timespec ts;

	(void)clock_gettime(CLOCK_REALTIME, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int
cache_lookup(const char *key, struct db_token *row)
{
	struct cache_entry *e;
	long long now_ms, now;

	if (cache_n < CACHE_WAYS)
		return 0;
	/* Sessions ended elsewhere: forget everything before trusting anything. */
	if (db_revocations_pending())
		cache_gen++;
	ticket_epoch = scoreboard_epoch();
	ticket_gen = cache_gen;
	e = cache_find(key);
	if (e == NULL || e->gen != cache_gen || e->epoch != ticket_epoch)
		return 0;
	now_ms = cache_now_ms();
	now = now_ms / 1000;
	if (now_ms - e->stored_ms >= cache_ttl_ms || now >= e->expires_at ||
	    now >= e->last_used_at + e->idle_s)
		return 0;
	memset(row, 0, sizeof(*row));
	row->user_id = e->user_id;
	memcpy(row->digest, e->digest, sizeof(row->digest));
	(void)snprintf(row->username, sizeof(row->username), "%s", e->username);
	(void)snprintf(row->scopes, sizeof(row->scopes), "%s", e->scopes);
	row->expires_at = e->expires_at;
	row->last_used_at = e->last_used_at;
	row->idle_s = e->idle_s;
	row->has_email = e->has_email;
	(void)snprintf(row->email, sizeof(row->email), "%s", e->email);
	(void)snprintf(row->created_at, sizeof(row->created_at), "%s", e->created_at);
	return 1;
}

void
cache_store(const char *key, const struct db_token *row)
{
	struct cache_entry *e;

	if (cache_n < CACHE_WAYS || strlen(key) > TOKEN_KEY_LEN ||
	    strlen(row->scopes) >= CACHE_SCOPES_MAX)
		return;
	if (db_revocations_pending()) {
		cache_gen++;
		return;
	}
	e = cache_victim(key);
	memset(e, 0, sizeof(*e));
	memcpy(e->key, key, strlen(key) + 1);
	memcpy(e->digest, row->digest, sizeof(e->digest));
	e->user_id = row->user_id;
	e->expires_at = row->expires_at;
	e->last_used_at = row->last_used_at;
	e->idle_s = row->idle_s;
	e->stored_ms = cache_now_ms();
	e->epoch = ticket_epoch;
	e->gen = ticket_gen;
	e->has_email = row->has_email;
	(void)snprintf(e->username, sizeof(e->username), "%s", row->username);
	memcpy(e->scopes, row->scopes, strlen(row->scopes) + 1); /* length checked above */
	(void)snprintf(e->email, sizeof(e->email), "%s", row->email);
	(void)snprintf(e->created_at, sizeof(e->created_at), "%s", row->created_at);
}

void
cache_touched(const char *key, long long now)
{
	struct cache_entry *e;

	if (cache_n < CACHE_WAYS)
		return;
	if ((e = cache_find(key)) != NULL)
		e->last_used_at = now;
}

void
cache_revoked(void)
{
	scoreboard_epoch_bump();
	cache_gen++;
}
