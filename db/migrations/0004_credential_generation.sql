-- keygate 0004: a login in flight cannot outlive the revocation it raced.
--
-- A login reads the account, spends tens of milliseconds in Argon2, then
-- inserts its token. A password change, logout-all, revoke-all or disable
-- that commits in between deleted the tokens that existed, but not the one
-- inserted just after it. Now:
--
-- * users.credential_gen counts the account's revocations of every
--   session: each of those statements adds one, in the statement that
--   deletes the tokens.
-- * A login remembers the generation it read with the password hash, and
--   keygate_login_finish inserts the token only if the account still has
--   that generation and is enabled, holding the account's row lock while
--   it writes: revocations and the account's other logins wait for it, and
--   it for them, so the cap on a user's tokens holds exactly too.
-- * api_keys.credential_gen records the generation a token was issued
--   under, and a token counts as live only while it equals the account's:
--   a token is never valid across a generation it did not see, however the
--   statements interleave.

ALTER TABLE users ADD COLUMN credential_gen bigint NOT NULL DEFAULT 0;
ALTER TABLE api_keys ADD COLUMN credential_gen bigint NOT NULL DEFAULT 0;

-- Everything a successful login writes, once its password checked out
-- against generation p_gen. A function, not one statement: in READ
-- COMMITTED each statement of a volatile function takes a new snapshot, so
-- the statements after the row lock see every token that a login or
-- revocation holding the lock before committed. One statement's snapshot
-- is taken before it waits for the lock, and would not.
--
-- outcome: 'ok' (expires_at, trimmed = tokens ended to keep the cap),
-- 'collided' (the key exists: nothing written, try another key) or
-- 'stale' (the account was disabled, or a revocation of all its sessions
-- committed, since the password was checked: nothing written).
CREATE FUNCTION keygate_login_finish(
    p_key text, p_user_id bigint, p_digest_hex text, p_scopes text[],
    p_remember boolean, p_lifetime_s integer, p_idle_s integer,
    p_ip text, p_user_agent text, p_subject text, p_addr_max integer,
    p_max_tokens integer, p_username text, p_event_user_agent text,
    p_gen bigint, p_addr_subject text,
    OUT outcome text, OUT expires_at timestamptz, OUT trimmed bigint)
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    trimmed := 0;
    -- FOR NO KEY UPDATE: waits for (and makes wait) the UPDATE of users that
    -- every revocation of all sessions runs, and the account's other
    -- logins; not the foreign-key checks of inserts elsewhere.
    PERFORM 1 FROM users u
        WHERE u.id = p_user_id AND u.credential_gen = p_gen AND NOT u.disabled
        FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        outcome := 'stale';
        RETURN;
    END IF;
    INSERT INTO api_keys AS k (key, user_id, secret_digest, scopes, remember,
            expires_at, idle_timeout_s, ip, user_agent, credential_gen)
        VALUES (p_key, p_user_id, decode(p_digest_hex, 'hex'), p_scopes, p_remember,
            now() + make_interval(secs => p_lifetime_s), p_idle_s, p_ip, p_user_agent,
            p_gen)
        ON CONFLICT (key) DO NOTHING
        RETURNING k.expires_at INTO expires_at;
    IF NOT FOUND THEN
        outcome := 'collided';
        RETURN;
    END IF;
    -- A success gives the address its attempt back and clears the
    -- account's failed attempts: in login_begin's order (address, then
    -- account), so that the two never wait for each other in a cycle.
    UPDATE throttle SET attempts = greatest(attempts - 1, 0),
            blocked_until = CASE WHEN attempts - 1 < p_addr_max THEN NULL
                ELSE blocked_until END
        WHERE scope = 'addr' AND subject = p_addr_subject;
    DELETE FROM throttle WHERE scope = 'user' AND subject = p_subject;
    -- Keep the new token and the p_max_tokens - 1 others used last; end
    -- the rest, and any that are dead or of an older generation.
    WITH d AS (
        DELETE FROM api_keys k WHERE k.user_id = p_user_id AND k.key <> p_key
            AND (k.credential_gen <> p_gen
                OR NOT (k.expires_at > now()
                    AND k.last_used_at + make_interval(secs => k.idle_timeout_s) > now())
                OR k.key NOT IN (
                    SELECT o.key FROM api_keys o
                        WHERE o.user_id = p_user_id AND o.key <> p_key
                            AND o.credential_gen = p_gen AND o.expires_at > now()
                            AND o.last_used_at + make_interval(secs => o.idle_timeout_s) > now()
                        ORDER BY o.last_used_at DESC, o.created_at DESC
                        LIMIT greatest(p_max_tokens - 1, 0)))
        RETURNING 1)
    SELECT count(*) INTO trimmed FROM d;
    IF trimmed > 0 THEN
        PERFORM pg_notify('keygate_revoke', '');
    END IF;
    INSERT INTO auth_events (event, user_id, username, ip, user_agent)
        VALUES ('login_ok', p_user_id, p_username, p_ip, p_event_user_agent);
    outcome := 'ok';
END;
$$;
