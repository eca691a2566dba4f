#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "crypto.h"
#include "log.h"
#include "token.h"
#include "tokencheck.h"

#define CACHE_WAYS 4      /* entries per set: see cache_places() */
#define CACHE_PLACES (2 * CACHE_WAYS)
#define CACHE_STRS 248 /* username, created_at, scopes, email and granted, each NUL-ended */
/* A refresh claimed this long ago (its worker died, the statement failed) may be claimed again. */
#define CACHE_REFRESH_RETRY_MS 1000

/*
 * One entry, shared by the pool. A seqlock guards it: a writer makes seq
 * odd, writes, makes it even again; a reader copies the entry and keeps
 * the copy only if seq was even and unchanged across the copy. Writers
 * only try the lock: a busy entry is simply not cached this time, so no
 * worker ever waits for another (or for one that died holding it: that
 * entry stays unusable until the cache is remapped on reload).
 */
struct cache_entry {
	atomic_uint seq;
	uint64_t tag;             /* the key's hash: compared before the key itself */
	char key[TOKEN_KEY_LEN + 1];
	unsigned char digest[CRYPTO_SHA256_LEN];
	unsigned char has_email;
	unsigned char api; /* an API token, not a session */
	long long user_id;
	long long expires_at;     /* unix seconds */
	long long last_used_at;   /* unix seconds, as written to the database */
	long long as_of_ms;       /* monotonic ms before the row was read */
	long long until_ms;       /* monotonic ms after which the entry is read again */
	long long refresh_ms;     /* monotonic ms a worker sent a refresh of it; 0: none */
	long idle_s;
	unsigned long epoch;      /* the pool's revocation epoch before the row was read */
	char strs[CACHE_STRS];
};

static struct cache_entry *cache;   /* MAP_SHARED: inherited by every worker */
/*
 * Each entry's tag again, packed: a lookup reads the eight candidates'
 * tags from two cache lines instead of touching eight entries. A hint
 * only; the entry's own tag and key, read under its seqlock, decide.
 */
static atomic_uint_least64_t *cache_tags;
static size_t cache_n, cache_bytes;
static long long cache_ttl_ms;
static int touch_interval;

/* The epoch's segment: mapped once, for the life of the pool (reloads keep it). */
struct tokencheck_shared {
	atomic_ulong epoch;
};
static struct tokencheck_shared *shared;

/* The ticket of the current check (see the glossary). */
static struct {
	unsigned long epoch;
	long long ms;
} ticket;

/* When this worker last had the store read its socket for notifications. */
static long long heard_ms = -1;

/* The touch or refresh the last check left for after its response. */
static struct {
	char key[TOKEN_KEY_LEN + 1];
	int due;
} later;

static unsigned long
epoch_now(void)
{
	return shared != NULL ? atomic_load(&shared->epoch) : 0;
}

void
tokencheck_revoked(void)
{
	if (shared != NULL)
		atomic_fetch_add(&shared->epoch, 1);
}

enum kg_err
tokencheck_configure(size_t entries, int ttl_s, int touch_interval_s)
{
	void *p = NULL;
	size_t bytes;

	if (shared == NULL) {
		p = mmap(NULL, sizeof(*shared), PROT_READ | PROT_WRITE,
		    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
		if (p == MAP_FAILED)
			return KG_ENOMEM;
		shared = p;
		atomic_init(&shared->epoch, 0);
		p = NULL;
	}
	/*
	 * Whole sets: cache_places() divides by their number. 0 is off; any
	 * other size keeps at least one set, so that a small size is a small
	 * cache, never a cache of no sets.
	 */
	if (entries > 0 && entries < CACHE_WAYS)
		entries = CACHE_WAYS;
	entries -= entries % CACHE_WAYS;
	bytes = entries * (sizeof(struct cache_entry) + sizeof(*cache_tags));
	/*
	 * A fresh mapping for every configuration: workers forked before keep
	 * the old one until they leave, so nobody resizes memory in use. The
	 * epoch stays: a revocation by one of them still kills what the new
	 * workers cache.
	 */
	if (entries > 0) {
		p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
		if (p == MAP_FAILED)
			return KG_ENOMEM;
	}
	if (cache != NULL)
		(void)munmap(cache, cache_bytes);
	cache = p;
	cache_tags = p != NULL ? (atomic_uint_least64_t *)(cache + entries) : NULL;
	cache_n = entries;
	cache_bytes = bytes;
	cache_ttl_ms = (long long)ttl_s * 1000;
	touch_interval = touch_interval_s;
	later.due = 0;
	/* Only the cache needs to hear of revocations: unread notifications pile up. */
	db_listen_for_revocations(cache_n > 0);
	return KG_OK;
}

/*
 * Is the cache off (no sets)? Every function that reaches cache_places()
 * asks first: with the cache off nothing is stored, found or claimed.
 */
static int
cache_off(void)
{
	return cache_n == 0;
}

/*
 * The places key may live in: two sets of CACHE_WAYS entries, chosen by
 * two halves of a 64-bit FNV-1a hash of the key (keys are random, any
 * spread will do). Two choices, because clients cycle through their
 * tokens: a set holding one key more than it has ways misses on every
 * request. With 10,000 tokens in 16,384 entries, one 4-way set per key
 * left a fifth of the tokens in such sets, one 8-way set a tenth; two
 * 4-way sets leave next to none. Only with the cache on: there is at
 * least one set then (tokencheck_configure), and a single set is both choices.
 */
static uint64_t
cache_places(const char *key, struct cache_entry *places[CACHE_PLACES])
{
	uint64_t h = 14695981039346656037ULL;
	size_t nsets = cache_n / CACHE_WAYS, a, b;
	int i;

	for (; *key != '\0'; key++)
		h = (h ^ (unsigned char)*key) * 1099511628211ULL;
	a = (size_t)(h % nsets);
	b = (size_t)((h >> 32) % nsets);
	if (b == a)
		b = (a + 1) % nsets;
	for (i = 0; i < CACHE_WAYS; i++) {
		places[i] = &cache[a * CACHE_WAYS + (size_t)i];
		places[CACHE_WAYS + i] = &cache[b * CACHE_WAYS + (size_t)i];
	}
	return h;
}

/*
 * Is e key's entry? The tag first: every key starts "kg_1_", so comparing
 * the strings of the eight candidates cost more than the rest of a hit.
 */
static int
cache_may_be(const struct cache_entry *e, uint64_t tag)
{
	return atomic_load_explicit(&cache_tags[e - cache], memory_order_relaxed) == tag;
}

static void
cache_set_tag(struct cache_entry *e, uint64_t tag)
{
	e->tag = tag;
	atomic_store_explicit(&cache_tags[e - cache], tag, memory_order_relaxed);
}

static int
cache_is(const struct cache_entry *e, uint64_t tag, const char *key)
{
	return e->tag == tag && strncmp(e->key, key, sizeof(e->key)) == 0;
}

/*
 * Copy key's entry into *out: 1 when a consistent copy of it was read.
 * The copy races with writers by design; seq tells a torn copy apart.
 */
static int
cache_read(const char *key, struct cache_entry *out)
{
	struct cache_entry *p[CACHE_PLACES];
	unsigned int s1, s2;
	uint64_t tag;
	int i;

	tag = cache_places(key, p);
	for (i = 0; i < CACHE_PLACES; i++) {
		if (!cache_may_be(p[i], tag))
			continue;
		s1 = atomic_load_explicit(&p[i]->seq, memory_order_acquire);
		if ((s1 & 1) != 0 || !cache_is(p[i], tag, key))
			continue;
		memcpy(out, p[i], sizeof(*out));
		atomic_thread_fence(memory_order_acquire);
		s2 = atomic_load_explicit(&p[i]->seq, memory_order_relaxed);
		return s1 == s2 && cache_is(out, tag, key);
	}
	return 0;
}

/* Take e's write lock if nobody holds it; returns the even seq it had, or -1. */
static long
cache_lock(struct cache_entry *e)
{
	unsigned int s = atomic_load_explicit(&e->seq, memory_order_relaxed);

	if ((s & 1) != 0 || !atomic_compare_exchange_strong_explicit(&e->seq, &s, s + 1,
	    memory_order_acquire, memory_order_relaxed))
		return -1;
	/* The odd seq must be visible before any of the writes that follow. */
	atomic_thread_fence(memory_order_release);
	return (long)s;
}

static void
cache_unlock(struct cache_entry *e, long s)
{
	atomic_store_explicit(&e->seq, (unsigned int)s + 2, memory_order_release);
}

/* Is a copied entry still to be trusted now? */
static int
cache_fresh(const struct cache_entry *e, long long now_ms)
{
	long long now = (long long)time(NULL);

	return e->epoch == ticket.epoch &&
	    /* Read after this worker began listening: no revocation since could pass it by. */
	    e->as_of_ms >= db_listening_since() && now_ms < e->until_ms &&
	    now < e->expires_at && now < e->last_used_at + e->idle_s;
}

/* Copy the next NUL-ended string of strs at *off into dst (both bounded). */
static void
cache_unpack(char *dst, size_t dstsz, const char *strs, size_t *off)
{
	size_t n = 0, len = 0;

	if (*off < CACHE_STRS) {
		len = strnlen(strs + *off, CACHE_STRS - *off);
		n = len < dstsz ? len : dstsz - 1;
		memcpy(dst, strs + *off, n);
	}
	dst[n] = '\0';
	*off += len + 1;
}

/*
 * Take the ticket: the store's notifications first (I2), then the epoch
 * and the time. 1 when the cache may be trusted now (I3): the store could
 * tell, and nothing arrived. The socket is read once per millisecond at
 * most: a worker answering thousands of checks a second from the cache
 * would otherwise spend a system call on each, and a notification is
 * already milliseconds on its way.
 */
static int
tokencheck_ticket(void)
{
	long long now = kg_monotonic_ms();
	enum db_revocations r = db_revocations_read(now != heard_ms);

	heard_ms = now;
	if (r == DB_REVOCATIONS_SOME)
		tokencheck_revoked();
	ticket.epoch = epoch_now();
	ticket.ms = now;
	return r == DB_REVOCATIONS_NONE;
}

/* key's entry as a row, if it may be served under the ticket (I1, I4, I6): 1 and *row. */
static int
cache_lookup(const char *key, struct db_token *row)
{
	struct cache_entry e;
	size_t off = 0;

	if (!cache_read(key, &e) || !cache_fresh(&e, ticket.ms))
		return 0;
	memset(row, 0, sizeof(*row));
	row->user_id = e.user_id;
	memcpy(row->digest, e.digest, sizeof(row->digest));
	row->expires_at = e.expires_at;
	row->last_used_at = e.last_used_at;
	row->idle_s = e.idle_s;
	row->has_email = e.has_email;
	cache_unpack(row->username, sizeof(row->username), e.strs, &off);
	cache_unpack(row->created_at, sizeof(row->created_at), e.strs, &off);
	cache_unpack(row->scopes, sizeof(row->scopes), e.strs, &off);
	cache_unpack(row->email, sizeof(row->email), e.strs, &off);
	cache_unpack(row->granted, sizeof(row->granted), e.strs, &off);
	row->api = e.api;
	return 1;
}

/* Pack the row's strings; 0 when they do not fit (the row is then not cached). */
static int
cache_pack(char strs[CACHE_STRS], const struct db_token *row)
{
	const char *f[5] = { row->username, row->created_at, row->scopes, row->email, row->granted };
	size_t off = 0, n;
	int i;

	for (i = 0; i < 5; i++) {
		n = strlen(f[i]) + 1;
		if (n > CACHE_STRS - off)
			return 0;
		memcpy(strs + off, f[i], n);
		off += n;
	}
	return 1;
}

/*
 * key's entry, found without the lock (callers lock and check again with
 * *tag), or NULL; p gets key's places either way.
 */
static struct cache_entry *
cache_find(const char *key, struct cache_entry *p[CACHE_PLACES], uint64_t *tag)
{
	int i;

	*tag = cache_places(key, p);
	for (i = 0; i < CACHE_PLACES; i++)
		if (cache_may_be(p[i], *tag) && cache_is(p[i], *tag, key))
			return p[i];
	return NULL;
}

/* Where to store key: its own entry, else a dead one, else the one read longest ago. */
static struct cache_entry *
cache_victim(const char *key, uint64_t *tag)
{
	struct cache_entry *p[CACHE_PLACES], *e;
	int i;

	/* Unlocked reads: a wrong guess only evicts a less suitable entry. */
	if ((e = cache_find(key, p, tag)) != NULL)
		return e;
	e = p[0];
	for (i = 0; i < CACHE_PLACES; i++) {
		if (p[i]->epoch != ticket.epoch || p[i]->key[0] == '\0')
			return p[i];
		if (p[i]->as_of_ms < e->as_of_ms)
			e = p[i];
	}
	return e;
}

/* Store row as key's entry, read from the database at as_of_ms in epoch. */
static void
cache_put(const char *key, const struct db_token *row, long long as_of_ms, unsigned long epoch)
{
	char strs[CACHE_STRS];
	struct cache_entry *e;
	long long last_used_at;
	uint64_t tag;
	long s;

	memset(strs, 0, sizeof(strs));
	if (cache_off() || strlen(key) > TOKEN_KEY_LEN || !cache_pack(strs, row))
		return;
	e = cache_victim(key, &tag);
	if ((s = cache_lock(e)) < 0)
		return;
	last_used_at = row->last_used_at;
	if (cache_is(e, tag, key)) {
		/* A refresh answered late must not replace a row read since. */
		if (e->as_of_ms > as_of_ms) {
			cache_unlock(e, s);
			return;
		}
		/*
		 * Nor take back a write claimed since it was sent
		 * (cache_claim_touch): the next hit would claim it again.
		 */
		if (e->last_used_at > last_used_at)
			last_used_at = e->last_used_at;
	}
	cache_set_tag(e, tag);
	memset(e->key, 0, sizeof(e->key));
	memcpy(e->key, key, strlen(key));
	memcpy(e->digest, row->digest, sizeof(e->digest));
	e->has_email = row->has_email != 0;
	e->api = row->api != 0;
	e->user_id = row->user_id;
	e->expires_at = row->expires_at;
	e->last_used_at = last_used_at;
	e->as_of_ms = as_of_ms;
	/*
	 * Entries live token_cache_ttl less up to a quarter, varying by
	 * token (the digest's first bytes are as good as random): tokens
	 * cached together are then read again over a quarter of the TTL, not
	 * all in the same second.
	 */
	e->until_ms = as_of_ms + cache_ttl_ms -
	    (long long)((row->digest[0] << 8 | row->digest[1]) % (cache_ttl_ms / 4 + 1));
	e->refresh_ms = 0;
	e->idle_s = row->idle_s;
	e->epoch = epoch;
	memcpy(e->strs, strs, sizeof(e->strs));
	cache_unlock(e, s);
}

/* Is e in the last quarter of its life, and not claimed for a refresh lately? */
static int
cache_refresh_due(const struct cache_entry *e)
{
	return ticket.ms >= e->until_ms - cache_ttl_ms / 4 &&
	    (e->refresh_ms == 0 || ticket.ms - e->refresh_ms >= CACHE_REFRESH_RETRY_MS);
}

static int
cache_claim_refresh(const char *key)
{
	struct cache_entry *p[CACHE_PLACES], *e;
	uint64_t tag;
	int claimed = 0;
	long s;

	if ((e = cache_find(key, p, &tag)) == NULL)
		return 0;
	/*
	 * Unlocked first: most hits are far from their entry's end, and the
	 * lock would make concurrent readers of the entry miss.
	 */
	if (!cache_refresh_due(e) || (s = cache_lock(e)) < 0)
		return 0;
	if (cache_is(e, tag, key) && cache_refresh_due(e)) {
		e->refresh_ms = ticket.ms;
		claimed = 1;
	}
	cache_unlock(e, s);
	return claimed;
}

static int
cache_claim_touch(const char *key, long long seen, long long now)
{
	struct cache_entry *p[CACHE_PLACES], *e;
	uint64_t tag;
	int claimed = 0;
	long s;

	if ((e = cache_find(key, p, &tag)) == NULL || (s = cache_lock(e)) < 0)
		return 0;
	/*
	 * Under the lock: still this key, and no other worker claimed the write.
	 * The write's answer renews the entry as a refresh's would: it counts
	 * as the entry's refresh out (cache_refresh_due), so that a request on
	 * another worker in the meantime, finding the entry in its last
	 * quarter, does not send a second statement for it.
	 */
	if (cache_is(e, tag, key) && e->last_used_at == seen) {
		e->last_used_at = now;
		e->refresh_ms = ticket.ms;
		claimed = 1;
	}
	cache_unlock(e, s);
	return claimed;
}

static void
cache_forget(const char *key)
{
	struct cache_entry *p[CACHE_PLACES], *e;
	uint64_t tag;
	long s;

	if (cache_off() || (e = cache_find(key, p, &tag)) == NULL ||
	    (s = cache_lock(e)) < 0)
		return;
	if (cache_is(e, tag, key)) {
		cache_set_tag(e, 0);
		memset(e->key, 0, sizeof(e->key));
	}
	cache_unlock(e, s);
}

/* Leave key's touch or refresh for after the response. */
static void
tokencheck_later(const char *key, const char *what)
{
	(void)kg_strlcpy(later.key, key, sizeof(later.key));
	later.due = 1;
	log_debug("token %s: %s claimed", key, what);
}

enum kg_err
tokencheck_verify(const struct token *t, struct db_token *row)
{
	unsigned char digest[CRYPTO_SHA256_LEN];
	enum kg_err err;
	long long now;
	int cached = 0;

	later.due = 0;
	if (!cache_off() && tokencheck_ticket())
		cached = cache_lookup(t->key, row);
	log_debug("token %s: cache %s", t->key, cached ? "hit" : "miss");
	if (!cached) {
		err = db_token_lookup(t->key, touch_interval, row);
		if (err == KG_ENOTFOUND)
			return KG_ETOKEN;
		if (err != KG_OK)
			return err;
	}
	token_digest(t, digest);
	if (!crypto_equal(digest, row->digest, sizeof(digest)))
		return KG_ETOKEN;
	if (!cached) {
		/*
		 * Due by the store's clock: the entry says written now, so that
		 * no other worker claims it meanwhile (I7). With the cache off
		 * every worker may find it due; the statement writes it once.
		 */
		if (row->needs_touch) {
			row->last_used_at = (long long)time(NULL);
			tokencheck_later(t->key, "last_used_at write");
		}
		if (!cache_off())
			cache_put(t->key, row, ticket.ms, ticket.epoch);
		return KG_OK;
	}
	now = (long long)time(NULL);
	if (now - row->last_used_at >= touch_interval &&
	    cache_claim_touch(t->key, row->last_used_at, now))
		tokencheck_later(t->key, "last_used_at write");
	else if (cache_claim_refresh(t->key))
		tokencheck_later(t->key, "refresh");
	return KG_OK;
}

void
tokencheck_after_response(void)
{
	struct db_token row;
	enum kg_err err;

	if (!later.due)
		return;
	later.due = 0;
	/* A ticket of its own: the answer is as old as this statement, not the request. */
	if (!cache_off())
		(void)tokencheck_ticket();
	err = db_token_refresh(later.key, touch_interval, &row);
	if (err != KG_OK) {
		/* Gone (I8), or not written: the next check reads it from the store. */
		if (err != KG_ENOTFOUND)
			log_warnx("could not record token use");
		if (!cache_off())
			cache_forget(later.key);
		return;
	}
	/* Due: written now, or skipped (row locked) until the next touch_interval. */
	if (row.needs_touch)
		row.last_used_at = (long long)time(NULL);
	if (!cache_off())
		cache_put(later.key, &row, ticket.ms, ticket.epoch);
}
