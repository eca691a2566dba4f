-- keygate 0003: let the last_used_at write rewrite the row in place.
--
-- Every token is written once per touch_interval (see docs/API.md). With
-- last_used_at in the index api_keys_user_id, each such write was a
-- non-HOT update: a new row version plus an entry in every index of
-- api_keys. A user's tokens are few (max_tokens_per_user), so sorting them
-- by last_used_at needs no index; with the column in none and room left on
-- each page (fillfactor), PostgreSQL updates the row on its page (HOT) and
-- touches no index. The fillfactor applies to pages written from now on:
-- rows on full pages move once, then stay put.
--
-- The index is rebuilt in the migration's transaction, holding a lock that
-- makes statements on api_keys wait meanwhile (about a second per million
-- tokens): CREATE INDEX CONCURRENTLY cannot run in a transaction.

DROP INDEX api_keys_user_id;
CREATE INDEX api_keys_user_id ON api_keys (user_id);
ALTER TABLE api_keys SET (fillfactor = 80);
