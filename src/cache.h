/*
 * cache: each worker's cache of verified tokens, so that most token checks
 * cost no database round trip. Safe against revocation:
 *  - a session ended through this host bumps the pool's shared epoch before
 *    the revoking request answers: every worker's entries die at once;
 *  - a session ended elsewhere (another host, the admin command line) is
 *    announced by PostgreSQL NOTIFY, which a worker checks (without
 *    blocking) before every cache hit; a lost connection empties the cache;
 *  - entries also expire after token_cache_ttl and never outlive the
 *    token's own expiry.
 */
#ifndef CACHE_H
#define CACHE_H

#include <stddef.h>

#include "db.h"
#include "kg.h"

/* Size the cache (0 entries disables it). KG_ENOMEM on allocation failure. */
enum kg_err cache_configure(size_t entries, int ttl_s) KG_MUSTCHECK;

/*
 * The cached row of key, if still trustworthy: 1 and *row filled, else 0.
 * The caller still compares the secret's digest.
 */
int cache_lookup(const char *key, struct db_token *row);

/* Remember a row just verified against the database. */
void cache_store(const char *key, const struct db_token *row);

/* last_used_at of key was written now (unix seconds). */
void cache_touched(const char *key, long long now);

/* This process ended one or more sessions: distrust every cached entry, pool-wide. */
void cache_revoked(void);

#endif
