-- keygate 0006: scopes a user is granted, and personal access tokens.
--
-- * users.scopes is what the account's tokens may carry (docs/API.md,
--   "Scopes"). '{*}' grants everything, which is what every account had
--   before; new accounts get default_scopes from the configuration. A
--   token's effective scopes are its own within this set as it is now, so
--   ungranting narrows every live token at once (keygate user ungrant).
-- * api_keys.kind tells a session (a login) from an API token (POST
--   /tokens: named, for scripts and CI). Logins trim a user's sessions to
--   max_tokens_per_user and never touch API tokens, whose number is
--   capped by max_api_tokens_per_user at creation instead: nothing is
--   trimmed silently.
-- * users.api_gen is to API tokens what credential_gen (0004) is to
--   sessions: a logout of every session moves credential_gen only, and
--   leaves the account's API tokens alone; a password change, disabling
--   the account or revoking every token moves both. A token is live only
--   under the generation of its kind.
-- * auth_events.detail says what a grant, an ungrant or an API token's
--   creation was about (scopes, a token's name).

ALTER TABLE users
    ADD COLUMN scopes text[] NOT NULL DEFAULT '{*}',
    ADD COLUMN api_gen bigint NOT NULL DEFAULT 0;

ALTER TABLE api_keys
    ADD COLUMN kind text NOT NULL DEFAULT 'session' CHECK (kind IN ('session', 'api')),
    ADD COLUMN name text,
    ADD CONSTRAINT api_keys_named_api CHECK ((kind = 'api') = (name IS NOT NULL));
CREATE UNIQUE INDEX api_keys_api_name ON api_keys (user_id, name) WHERE kind = 'api';

ALTER TABLE auth_events
    ADD COLUMN detail text,
    DROP CONSTRAINT auth_events_event_check,
    ADD CONSTRAINT auth_events_event_check CHECK (event IN ('join', 'login_ok',
        'login_failed', 'login_throttled', 'logout', 'logout_all', 'token_revoked',
        'password_changed', 'user_disabled', 'user_enabled', 'scope_granted',
        'scope_ungranted', 'api_token_created'));

-- As in 0004, but the trim keeps to sessions: API tokens are counted
-- apart, and never ended by a login.
CREATE OR REPLACE FUNCTION keygate_login_finish(
    p_key text, p_user_id bigint, p_digest_hex text, p_scopes text[],
    p_remember boolean, p_lifetime_s integer, p_idle_s integer,
    p_ip text, p_user_agent text, p_subject text, p_addr_max integer,
    p_max_tokens integer, p_username text, p_event_user_agent text,
    p_gen bigint, p_addr_subject text,
    OUT outcome text, OUT expires_at timestamptz, OUT trimmed bigint)
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    trimmed := 0;
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
    UPDATE throttle SET attempts = greatest(attempts - 1, 0),
            blocked_until = CASE WHEN attempts - 1 < p_addr_max THEN NULL
                ELSE blocked_until END
        WHERE scope = 'addr' AND subject = p_addr_subject;
    DELETE FROM throttle WHERE scope = 'user' AND subject = p_subject;
    WITH d AS (
        DELETE FROM api_keys k WHERE k.user_id = p_user_id AND k.key <> p_key
            AND k.kind = 'session'
            AND (k.credential_gen <> p_gen
                OR NOT (k.expires_at > now()
                    AND k.last_used_at + make_interval(secs => k.idle_timeout_s) > now())
                OR k.key NOT IN (
                    SELECT o.key FROM api_keys o
                        WHERE o.user_id = p_user_id AND o.key <> p_key
                            AND o.kind = 'session'
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

-- An API token (POST /tokens), once the caller's password checked out
-- against API-token generation p_gen (users.api_gen). Under the account's row lock, as a login, so
-- that concurrent creations count each other: the cap p_max holds
-- exactly. Dead API tokens of the same name give way to the new one.
--
-- outcome: 'ok' (expires_at), 'collided' (the key exists: try another),
-- 'stale' (disabled, or every API token revoked, meanwhile), 'limit' (p_max
-- live API tokens already) or 'name_taken' (a live one has that name).
CREATE FUNCTION keygate_api_token_create(
    p_key text, p_user_id bigint, p_digest_hex text, p_scopes text[], p_name text,
    p_lifetime_s integer, p_idle_s integer, p_ip text, p_user_agent text,
    p_max integer, p_gen bigint, p_username text,
    OUT outcome text, OUT expires_at timestamptz)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    live bigint;
BEGIN
    PERFORM 1 FROM users u
        WHERE u.id = p_user_id AND u.api_gen = p_gen AND NOT u.disabled
        FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        outcome := 'stale';
        RETURN;
    END IF;
    DELETE FROM api_keys k WHERE k.user_id = p_user_id AND k.kind = 'api' AND k.name = p_name
        AND (k.credential_gen <> p_gen OR NOT (k.expires_at > now()
            AND k.last_used_at + make_interval(secs => k.idle_timeout_s) > now()));
    IF EXISTS (SELECT 1 FROM api_keys k
            WHERE k.user_id = p_user_id AND k.kind = 'api' AND k.name = p_name) THEN
        outcome := 'name_taken';
        RETURN;
    END IF;
    SELECT count(*) INTO live FROM api_keys k
        WHERE k.user_id = p_user_id AND k.kind = 'api' AND k.credential_gen = p_gen
            AND k.expires_at > now()
            AND k.last_used_at + make_interval(secs => k.idle_timeout_s) > now();
    IF live >= p_max THEN
        outcome := 'limit';
        RETURN;
    END IF;
    INSERT INTO api_keys AS k (key, user_id, secret_digest, scopes, remember,
            expires_at, idle_timeout_s, ip, user_agent, credential_gen, kind, name)
        VALUES (p_key, p_user_id, decode(p_digest_hex, 'hex'), p_scopes, false,
            now() + make_interval(secs => p_lifetime_s), p_idle_s, p_ip, p_user_agent,
            p_gen, 'api', p_name)
        ON CONFLICT (key) DO NOTHING
        RETURNING k.expires_at INTO expires_at;
    IF NOT FOUND THEN
        outcome := 'collided';
        RETURN;
    END IF;
    INSERT INTO auth_events (event, user_id, username, ip, user_agent, detail)
        VALUES ('api_token_created', p_user_id, p_username, p_ip, p_user_agent, p_name);
    outcome := 'ok';
END;
$$;
