-- Users and their API keys (tokens). The secret of a token is never stored:
-- only its SHA-256 digest. Passwords are stored as Argon2id PHC strings.

CREATE TABLE users (
    id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    username            text NOT NULL
                        CHECK (username ~ '^[A-Za-z0-9_.-]{3,64}$'),
    email               text CHECK (email IS NULL OR octet_length(email) <= 254),
    password_hash       text NOT NULL CHECK (password_hash LIKE '$argon2id$%'),
    disabled            boolean NOT NULL DEFAULT false,
    created_at          timestamptz NOT NULL DEFAULT now(),
    password_changed_at timestamptz NOT NULL DEFAULT now()
);

-- Usernames and emails are unique without regard to case; stored as given.
CREATE UNIQUE INDEX users_username_key ON users (lower(username));
CREATE UNIQUE INDEX users_email_key ON users (lower(email)) WHERE email IS NOT NULL;

CREATE TABLE api_keys (
    key             text PRIMARY KEY CHECK (key LIKE 'kg\_%'),
    user_id         bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    secret_digest   bytea NOT NULL CHECK (octet_length(secret_digest) = 32),
    scopes          text[] NOT NULL DEFAULT '{*}',
    remember        boolean NOT NULL DEFAULT false,
    created_at      timestamptz NOT NULL DEFAULT now(),
    last_used_at    timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz NOT NULL,
    idle_timeout_s  integer NOT NULL CHECK (idle_timeout_s > 0),
    ip              text,
    user_agent      text
);

CREATE INDEX api_keys_user_id ON api_keys (user_id, last_used_at);
CREATE INDEX api_keys_expires_at ON api_keys (expires_at);
