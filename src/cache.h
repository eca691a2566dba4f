/*
 * cache: the pool's cache of verified tokens, in memory shared by every
 * worker, so that most token checks cost no database round trip and a
 * token is read from the database once per host, not once per worker.
 * Safe against revocation:
 *  - a session ended through this host bumps the pool's shared epoch before
 *    the revoking request answers: every entry dies at once;
 *  - a session ended elsewhere (another host, the admin command line) is
 *    announced by PostgreSQL NOTIFY, which each worker checks (without
 *    blocking) before every cache hit, bumping the same epoch;
 *  - a worker trusts only entries read from the database after its own
 *    connection began listening: nothing it could have missed while it was
 *    not connected (starting, reconnecting) is ever served;
 *  - entries also expire after token_cache_ttl and never outlive the
 *    token's own expiry.
 * last_used_at lives in the entry too, so that the pool writes it once per
 * token and touch_interval, whichever worker sees the token first. A token
 * in use is read again ahead of its entry's end, in the same statement as
 * that write, without a request waiting for either.
 */
#ifndef CACHE_H
#define CACHE_H

#include <stddef.h>

#include "db.h"
#include "kg.h"

/*
 * Map a fresh cache, before the workers are forked: entries rounded down
 * to whole sets of 4, at least one set (1 to 3 give 4). 0 turns the cache
 * off: nothing is stored or found, every check reads the database, and
 * connections do not listen for revocations. KG_ENOMEM when the mapping
 * fails.
 */
enum kg_err cache_configure(size_t entries, int ttl_s) KG_MUSTCHECK;

/*
 * The cached row of key, if still trustworthy: 1 and *row filled, else 0.
 * The caller still compares the secret's digest.
 */
int cache_lookup(const char *key, struct db_token *row);

/* Remember a row just verified against the database. */
void cache_store(const char *key, const struct db_token *row);

/*
 * A cache hit found key's last_used_at (seen) over touch_interval old:
 * 1 when this worker is the one to write it (the entry now says now),
 * 0 when another worker already did or is doing it. 1 with the cache off.
 */
int cache_claim_touch(const char *key, long long seen, long long now);

/*
 * A cache hit on key, whose entry nears its end (the last quarter of
 * token_cache_ttl): 1 when this worker is the one to read it again ahead
 * of time (cache_refresh_send), so that active tokens are never read while
 * a request waits.
 */
int cache_claim_refresh(const char *key);

/*
 * Read key again and write its last_used_at if due, without waiting; the
 * answer replaces (or drops) the entry at a later lookup, trusted as of
 * this request's lookup. With the cache off only the write matters: the
 * answer is taken and dropped. KG_EDB when it could not be sent.
 */
enum kg_err cache_refresh_send(const char *key, int touch_interval) KG_MUSTCHECK;

/* Drop key's entry (its last_used_at could not be written). */
void cache_forget(const char *key);

/* This process ended one or more sessions: distrust every cached entry, pool-wide. */
void cache_revoked(void);

#endif
