-- keygate 0005: a throttled client cannot grow the audit trail without bound.
--
-- Each login refused with 429 used to add one login_throttled row, so one
-- client could add rows as fast as it could send requests (they cost no
-- Argon2). Now a block -- one throttle row (scope, subject) until its
-- blocked_until -- has one login_throttled row, and every further refusal
-- during that block only counts it up. The row keeps the first refusal's
-- time, username, address and user agent. Every other event stays one row
-- per occurrence (count 1).

ALTER TABLE auth_events
    ADD COLUMN count integer NOT NULL DEFAULT 1 CHECK (count >= 1),
    ADD COLUMN throttle_scope text,
    ADD COLUMN throttle_subject text,
    ADD COLUMN blocked_until timestamptz;

CREATE UNIQUE INDEX auth_events_block ON auth_events
    (throttle_scope, throttle_subject, blocked_until) WHERE blocked_until IS NOT NULL;
