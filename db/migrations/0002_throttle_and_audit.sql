-- Login throttling and the audit trail, shared by every worker and host.

-- One row per throttled subject: scope 'user' (lower(username), whether or
-- not the account exists), 'addr' (client address, failed logins) or 'join'
-- (client address, registrations). Attempts are counted before the password
-- is checked, in one statement, so that concurrent guesses cannot overrun
-- the limit.
CREATE TABLE throttle (
    scope         text NOT NULL CHECK (scope IN ('user', 'addr', 'join')),
    subject       text NOT NULL,
    attempts      integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    window_start  timestamptz NOT NULL DEFAULT now(),
    blocked_until timestamptz,
    PRIMARY KEY (scope, subject)
);
CREATE INDEX throttle_window_start ON throttle (window_start);

-- Who did what, from where. Never a password, secret or token.
CREATE TABLE auth_events (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    event       text NOT NULL CHECK (event IN ('join', 'login_ok', 'login_failed',
                    'login_throttled', 'logout', 'logout_all', 'token_revoked',
                    'password_changed', 'user_disabled', 'user_enabled')),
    user_id     bigint REFERENCES users (id) ON DELETE SET NULL,
    username    text,
    ip          text,
    user_agent  text
);
CREATE INDEX auth_events_at ON auth_events (at);
CREATE INDEX auth_events_user_id ON auth_events (user_id, at);
