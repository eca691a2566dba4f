/*
 * tokencheck: whether a presented token is valid, answered by the pool's
 * shared cache where it can and by the store where it must. Everything
 * that decides it lives here: the cache, the revocation epoch, the
 * notifications of revocations elsewhere and the last-used write policy.
 * It calls the store through explicit functions (db.h); the store calls
 * nothing back.
 *
 * Glossary (each term is used in this sense only, here and in the .c):
 *
 *   entry     A verified token's row held in the cache, shared by every
 *             worker of the pool (one mapping, inherited across fork).
 *   epoch     The pool's revocation counter, in a shared segment of its
 *             own that lives as long as the pool (a reload maps a new
 *             cache but keeps the epoch). An entry carries the epoch of
 *             its read; it is dead once the epoch has moved.
 *   revoked   This process ended one or more sessions: it moves the epoch
 *             before the request that ended them answers.
 *   notified  The store reports a revocation elsewhere (PostgreSQL NOTIFY
 *             from another host or the command line): the epoch moves
 *             before anything is served. The store "cannot tell" while its
 *             connection is down: then nothing is served from the cache.
 *   listening since
 *             The monotonic time since which this worker's connection has
 *             listened for notifications. Only entries read at or after it
 *             are served: nothing a worker could have missed while it was
 *             not connected (starting, reconnecting) is trusted.
 *   ticket    The epoch and monotonic time taken before the store is
 *             asked. What the store answers is kept under the ticket, so a
 *             revocation that lands while the statement runs makes the
 *             answer dead on arrival, and so does a notification that
 *             arrives meanwhile (it moves the epoch at the next ticket,
 *             before anything is served).
 *   touch     Writing a token's last_used_at. At most once per token and
 *             touch_interval for the whole pool: a worker that finds it due
 *             claims it in the entry, and a second one finds it claimed.
 *   refresh   Reading a cached token's row again in the last quarter of
 *             its entry's life (token_cache_ttl), in the same statement as
 *             a due touch, so that a token in use is never read while a
 *             request waits. One worker claims it, as for a touch.
 *   after the response
 *             A due touch or refresh runs once the response is out
 *             (tokencheck_after_response), not while the client waits; the
 *             worker takes its next request after it.
 *
 * Invariants (tests/unit/tokencheck_test.c checks each, against a stub of
 * the store):
 *   I1 an entry is served only while the epoch is the one it was read in;
 *   I2 a notification moves the epoch before the next entry is served;
 *   I3 while the store cannot tell, nothing is served from the cache;
 *   I4 only entries read since the connection began listening are served;
 *   I5 an answer of the store is kept under the ticket taken before it was
 *      asked: a revocation or notification meanwhile makes it dead;
 *   I6 an entry is never served past the token's expiry or idle timeout,
 *      nor past token_cache_ttl after its read;
 *   I7 a due touch is claimed by one worker only; the entry keeps the
 *      claim even when an older answer arrives later;
 *   I8 an answer read before the entry's current row never replaces it;
 *      a refresh that finds the token gone removes its entry;
 *   I9 the cache off (size 0) stores, finds and claims nothing, never
 *      listens, and still writes last_used_at once per touch_interval;
 *      every other size is a real cache of whole sets of 4 (1-7: one set);
 *   I10 a token whose secret does not match is refused, cached or not.
 */
#ifndef TOKENCHECK_H
#define TOKENCHECK_H

#include <stddef.h>

#include "db.h"
#include "kg.h"
#include "token.h"

/*
 * Before the workers are forked: map a fresh cache of entries (rounded
 * down to whole sets of 4, at least one set; 0 = off) living ttl_s at
 * most, and (the first time only) the epoch's segment; touches are due
 * touch_interval_s after the last one. KG_ENOMEM when a mapping fails.
 */
enum kg_err tokencheck_configure(size_t entries, int ttl_s, int touch_interval_s) KG_MUSTCHECK;

/*
 * Is t a live token? KG_OK with *row (its user, scopes and profile),
 * KG_ETOKEN when it is not (unknown, expired, revoked, wrong secret),
 * KG_EDB when the store cannot say. May leave a touch or refresh for
 * tokencheck_after_response.
 */
enum kg_err tokencheck_verify(const struct token *t, struct db_token *row) KG_MUSTCHECK;

/*
 * The response is out: run the touch or refresh the last check left, if
 * any, and keep its answer. Failures are logged (a touch is written again
 * next touch_interval).
 */
void tokencheck_after_response(void);

/* This process ended one or more sessions: every entry dies, pool-wide. */
void tokencheck_revoked(void);

#endif
