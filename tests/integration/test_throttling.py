"""Throttling: login attempts counted per account and per client address,
before any hashing (a throttled attempt costs no Argon2 time), counted
exactly under concurrency, blocks that double up to login_max_delay and
windows that expire; /join limited per address, a taken name found before
hashing; the client address taken from X-Forwarded-For only from trusted
proxies, IPv6 clients counted by their network (throttle_ipv6_prefix) and
requests without an address by one shared count.

Throttle counters live in the shared PostgreSQL database, which the whole
test session uses; the table is emptied before each test here
(fresh_throttle) so that attempts left by other modules (which raise the
limits instead) cannot block these. Per-address behaviour is driven with
direct FastCGI requests (accounts.fc(..., addr=...)) because through
lighttpd every client is 127.0.0.1; each test uses its own random addresses
and uuid-based names, and counts only its own rows.
"""

import random
import re
import time
import uuid

import pytest

from accounts import (CHEAP, NO_ADDR_LIMITS, assert_401, assert_429, cli, cpu_seconds,
                      event_names, events, fc, fc_join, fc_login, http_join, http_login,
                      http_me, parallel, pword, rand_addr, throttle_row, uname)

pytestmark = pytest.mark.usefixtures("fresh_throttle")


def rand_net6():
    """A random /64 of 2001:db8::/32 (documentation addresses), as its
    first four groups."""
    return "2001:db8:%x:%x" % (random.randint(1, 0xffff), random.randint(1, 0xffff))


def join_raw(kg, name, pw=None, addr=None, email=None):
    b = {"username": name, "password": pw or pword()}
    if email is not None:
        b["email"] = email
    return fc(kg, "POST", "/join", b, addr=addr or rand_addr())


# ---------------------------------------------------------------------------
# per account


def test_sixth_failed_login_is_429_even_with_the_right_password(stack_factory, pg):
    st = stack_factory(workers=2, login_delay=2, login_max_delay=4,
                       login_failure_window=60, **dict(NO_ADDR_LIMITS, **CHEAP))
    name, pw, uid = http_join(st)
    for i in range(5):
        assert_401(http_login(st, name, "wrong %d %s" % (i, pw)))
    assert throttle_row(pg, "user", name.lower())[:2] == (5, True)

    ra = assert_429(http_login(st, name, "wrong again " + pw), 2)
    assert_429(http_login(st, name, pw), 2)               # the right password
    assert_429(http_login(st, name.upper(), pw), 2)       # any case: same account
    # Throttled attempts are not counted: they cost nothing and extend nothing.
    assert throttle_row(pg, "user", name.lower())[:2] == (5, True)
    # One login_throttled row per block, counting its refusals.
    assert event_names(pg, username=name) == (
        ["join"] + ["login_failed"] * 5 + ["login_throttled"])
    assert pg.query("SELECT count FROM auth_events WHERE lower(username) = lower(%s)"
                    " AND event = 'login_throttled'", (name,)) == [(3,)]

    time.sleep(ra + 0.3)
    r = http_login(st, name, pw)
    assert r.status_code == 200, r.text
    assert http_me(st, r.json()["token"]).status_code == 200
    # A successful login clears the account's counter.
    assert throttle_row(pg, "user", name.lower()) is None
    assert_401(http_login(st, name, "wrong once more " + pw))
    assert throttle_row(pg, "user", name.lower())[:2] == (1, False)


def test_block_doubles_per_further_failure_up_to_login_max_delay(keygate, pg):
    kg = keygate.start(workers=2, login_delay=1, login_max_delay=3,
                       login_failure_window=120, **dict(NO_ADDR_LIMITS, **CHEAP))
    name, pw, _ = fc_join(kg)

    def blocked_until():
        return pg.query("SELECT extract(epoch FROM blocked_until)::float8 FROM throttle"
                        " WHERE scope = 'user' AND subject = %s", (name,))[0][0]
    for i in range(4):
        assert_401(fc_login(kg, name, "bad %d" % i))
    # The block a failure sets ends `expected` s after a moment inside that
    # request: after it was sent (t), before its answer came (t_end); same
    # clock as PostgreSQL's. 5th failure 1 s; 6th 2 s; 7th 4 s, capped at 3;
    # 8th 3. Bounded by both ends, so a slow request widens nothing.
    blocks = []
    t = time.time()
    assert_401(fc_login(kg, name, "bad 4"))
    t_end = time.time()
    for expected in (1, 2, 3, 3):
        until = blocked_until()
        blocks.append((expected, round(until - t, 2), round(until - t_end, 2)))
        assert_429(fc_login(kg, name, pw), expected)       # right password, blocked
        time.sleep(max(0.0, until - time.time()) + 0.15)
        t = time.time()
        assert_401(fc_login(kg, name, "bad again"))         # runs, and blocks again
        t_end = time.time()
    assert throttle_row(pg, "user", name)[0] == 9
    for expected, from_sent, from_answered in blocks:
        assert from_sent >= expected - 0.05 and from_answered <= expected + 0.05, blocks


def test_failure_window_expires(keygate, pg):
    kg = keygate.start(workers=2, login_max_failures=3, login_failure_window=2,
                       login_delay=30, login_max_delay=60, **dict(NO_ADDR_LIMITS, **CHEAP))
    name, pw, _ = fc_join(kg)
    assert_401(fc_login(kg, name, "bad 1"))
    assert_401(fc_login(kg, name, "bad 2"))
    time.sleep(2.3)
    # The old window is over: these start a new count.
    assert_401(fc_login(kg, name, "bad 3"))
    assert throttle_row(pg, "user", name)[:2] == (1, False)
    assert_401(fc_login(kg, name, "bad 4"))
    assert_401(fc_login(kg, name, "bad 5"))             # 3rd in this window
    assert_429(fc_login(kg, name, pw), 30)


def test_unknown_username_is_throttled_the_same_way(keygate, pg):
    kg = keygate.start(workers=2, **NO_ADDR_LIMITS)
    real, real_pw, _ = fc_join(kg)
    ghost = "Ghost_" + uuid.uuid4().hex[:12]
    for i in range(5):
        a = fc_login(kg, ghost, "guess %d" % i)
        b = fc_login(kg, real, "guess %d" % i)
        assert_401(a)
        assert_401(b)
        assert a.body == b.body
    a, b = fc_login(kg, ghost, "guess"), fc_login(kg, real, real_pw)
    assert_429(a, 30)
    assert_429(b, 30)
    assert a.body == b.body
    # Counted under the lowercased name, though the account does not exist.
    assert throttle_row(pg, "user", ghost.lower())[:2] == (5, True)
    assert throttle_row(pg, "user", ghost) is None
    assert event_names(pg, username=ghost) == ["login_failed"] * 5 + ["login_throttled"]
    assert {e[1] for e in events(pg, username=ghost)} == {None}


def test_password_change_attempts_count_against_the_account(keygate, pg):
    kg = keygate.start(workers=2, **NO_ADDR_LIMITS)
    name, pw, uid = fc_join(kg)
    token = fc_login(kg, name, pw).json()["token"]
    for i in range(5):
        r = fc(kg, "POST", "/password", {"current_password": "wrong %d" % i,
                                         "new_password": pword()}, token=token)
        assert_401(r)
    r = fc(kg, "POST", "/password", {"current_password": pw, "new_password": pword()},
           token=token)
    assert_429(r, 30)
    assert_429(fc_login(kg, name, pw), 30)
    # Nothing changed: the token still works, the password is the old one.
    assert fc(kg, "GET", "/me", token=token).status == 200
    assert event_names(pg, user_id=uid).count("password_changed") == 0


# ---------------------------------------------------------------------------
# per client address


def test_per_address_limit_across_accounts(keygate, pg):
    kg = keygate.start(workers=2, login_max_per_address=3, login_failure_window=60,
                       join_max_per_address=1000000)
    users = [fc_join(kg) for _ in range(5)]
    a, b = rand_addr(), rand_addr()
    for name, pw, _ in users[:3]:
        assert_401(fc_login(kg, name, "not " + pw, addr=a))
    assert throttle_row(pg, "addr", a)[:2] == (3, True)
    name, pw, _ = users[3]
    # A 4th account from the same address: refused, right password or not.
    assert_429(fc_login(kg, name, pw, addr=a), 60)
    assert_429(fc_login(kg, users[4][0], "nope", addr=a), 60)
    # Another address is unaffected.
    assert fc_login(kg, name, pw, addr=b).status == 200
    assert_401(fc_login(kg, users[4][0], "nope", addr=b))
    # The accounts themselves were not charged for the address's block.
    assert throttle_row(pg, "user", users[4][0])[:2] == (1, False)
    assert [e[:4] for e in events(pg, username=name)[-2:]] == [
        ("login_throttled", None, name, a),
        ("login_ok", users[3][2], name, b)]


def test_successful_logins_do_not_count_against_the_address(keygate, pg):
    kg = keygate.start(workers=2, login_max_per_address=3, login_failure_window=60,
                       join_max_per_address=1000000)
    name, pw, _ = fc_join(kg)
    c = rand_addr()
    assert_401(fc_login(kg, name, "bad 1", addr=c))
    assert_401(fc_login(kg, name, "bad 2", addr=c))
    for _ in range(4):
        assert fc_login(kg, name, pw, addr=c).status == 200
    assert throttle_row(pg, "addr", c)[:2] == (2, False)
    assert_401(fc_login(kg, uname(), "bad 3", addr=c))   # the 3rd failure
    assert_429(fc_login(kg, name, pw, addr=c), 60)


def test_a_blocked_account_does_not_count_against_the_address(keygate, pg):
    """The address is counted first, the account second, in one statement;
    an attempt the account's block refuses is given back to the address, so
    that guessing at one blocked account cannot lock its address out."""
    kg = keygate.start(workers=2, login_max_failures=2, login_max_per_address=4,
                       login_failure_window=60, join_max_per_address=1000000)
    name, pw, _ = fc_join(kg)
    other, other_pw, _ = fc_join(kg)
    c = rand_addr()
    assert_401(fc_login(kg, name, "bad 1", addr=c))
    assert_401(fc_login(kg, name, "bad 2", addr=c))
    assert throttle_row(pg, "user", name.lower())[:2] == (2, True)
    for _ in range(5):
        assert_429(fc_login(kg, name, pw, addr=c), 30)
    assert throttle_row(pg, "addr", c)[:2] == (2, False)
    assert fc_login(kg, other, other_pw, addr=c).status == 200


def test_a_login_sends_two_statements(keygate, pg):
    """Before its hash a login needs its attempt counted against the address
    and the account, and the account read: one statement (the round trips
    of the login's own time, not the hash's). After it, one more writes the
    token. PostgreSQL's statement log shows what each worker executed."""
    kg = None
    pg.query("ALTER DATABASE %s SET log_statement = 'all'" % pg.dbname)
    try:
        kg = keygate.start(workers=1, login_failure_window=60, **NO_ADDR_LIMITS)
        name, pw, _ = fc_join(kg)
        assert fc_login(kg, name, pw, addr=rand_addr()).status == 200
        start = len(pg.log())
        assert fc_login(kg, name, pw, addr=rand_addr()).status == 200
        assert_401(fc_login(kg, name, "not " + pw, addr=rand_addr()))
        assert_401(fc_login(kg, uname(), pw, addr=rand_addr()))
        executed = re.findall(r"LOG:  execute (\w+)", pg.log()[start:])
    finally:
        pg.query("ALTER DATABASE %s RESET log_statement" % pg.dbname)
        if kg is not None:
            kg.stop()
    # The good login, then two failures: the second statement of a failure
    # records its event (login_failed).
    assert executed == ["login_begin", "login_finish",
                        "login_begin", "event_insert",
                        "login_begin", "event_insert"], executed


def test_join_max_per_address(keygate, pg):
    kg = keygate.start(workers=2, join_max_per_address=3)
    a, b, c = rand_addr(), rand_addr(), rand_addr()
    for _ in range(3):
        fc_join(kg, addr=a)
    name = uname()
    r = fc(kg, "POST", "/join", {"username": name, "password": pword()}, addr=a)
    assert_429(r, 3600)
    assert int(r.header("Retry-After")) > 3500
    assert pg.query("SELECT count(*) FROM users WHERE username = %s", (name,))[0][0] == 0
    fc_join(kg, addr=b)                                   # another address
    # Registrations refused before the name is looked up do not use up the
    # allowance; a taken name does (test_joins_of_a_taken_name_run_into_the_limit).
    for bad in ("short", "password"):
        r = fc(kg, "POST", "/join", {"username": uname(), "password": bad}, addr=c)
        assert r.status == 400, r
    taken = fc_join(kg, addr=b)[0]
    r = fc(kg, "POST", "/join", {"username": taken, "password": pword()}, addr=c)
    assert r.status == 409, r
    for _ in range(2):
        fc_join(kg, addr=c)
    assert_429(fc(kg, "POST", "/join", {"username": uname(), "password": pword()}, addr=c),
               3600)
    # The CLI has no client address: never throttled.
    r = cli(pg, "user", "add", uname(), "--password-stdin", input=pword() + "\n",
            overrides=dict(join_max_per_address=1))
    assert r.returncode == 0, r.stderr


# ---------------------------------------------------------------------------
# atomic counting and cost


def test_concurrent_wrong_passwords_are_counted_exactly(keygate, pg):
    kg = keygate.start(workers=4, login_max_failures=100, **NO_ADDR_LIMITS)
    name, pw, _ = fc_join(kg)
    addr = rand_addr()
    rs = parallel(20, lambda i: fc_login(kg, name, "wrong %d" % i, addr=addr))
    assert [r.status for r in rs] == [401] * 20, rs
    assert throttle_row(pg, "user", name)[:2] == (20, False)
    assert throttle_row(pg, "addr", addr)[:2] == (20, False)
    assert event_names(pg, username=name).count("login_failed") == 20


def test_concurrent_wrong_passwords_stop_at_the_limit(keygate, pg):
    kg = keygate.start(workers=4, **NO_ADDR_LIMITS)          # login_max_failures = 5
    name, pw, _ = fc_join(kg)
    rs = parallel(20, lambda i: fc_login(kg, name, "wrong %d" % i))
    got = sorted(r.status for r in rs)
    assert got == [401] * 5 + [429] * 15, got
    assert throttle_row(pg, "user", name)[:2] == (5, True)
    names = event_names(pg, username=name)
    # Exactly five ran Argon2 (login_failed), the rest were turned away first.
    assert names.count("login_failed") == 5, names
    assert names.count("login_throttled") == 1, names            # one row per block
    assert pg.query("SELECT count FROM auth_events WHERE lower(username) = lower(%s)"
                    " AND event = 'login_throttled'", (name,)) == [(15,)]


def test_throttled_requests_spend_no_argon2_time(keygate, pg):
    # A costlier hash than the default widens the gap the test measures.
    kg = keygate.start(workers=2, argon2_memory=65536, argon2_iterations=3,
                       log_level="warn", **NO_ADDR_LIMITS)
    pids = kg.worker_pids()
    name, pw, _ = fc_join(kg)
    for i in range(5):
        assert_401(fc_login(kg, name, "wrong %d" % i))
    addr = rand_addr()

    cpu0, t0 = cpu_seconds(pids), time.monotonic()
    for _ in range(200):
        r = fc_login(kg, name, pw, addr=addr)
        assert r.status == 429, r
    throttled_s, throttled_cpu = time.monotonic() - t0, cpu_seconds(pids) - cpu0

    # Ten verifications of a hash of this cost: logins of an account of this
    # test. (Unknown usernames would be verified against a dummy of one of
    # the stored cost classes, and the session's database holds cheap ones
    # made by other tests: the measure would depend on what ran before.)
    other, other_pw, _ = fc_join(kg)
    cpu0, t0 = cpu_seconds(pids), time.monotonic()
    for _ in range(10):
        r = fc_login(kg, other, other_pw, addr=addr)
        assert r.status == 200, r
    hashes_s, hashes_cpu = time.monotonic() - t0, cpu_seconds(pids) - cpu0

    print("200 throttled: %.3fs wall, %.3fs worker CPU; 10 hashes: %.3fs wall, %.3fs CPU"
          % (throttled_s, throttled_cpu, hashes_s, hashes_cpu))
    assert throttled_s < hashes_s, (throttled_s, hashes_s)
    assert throttled_cpu < hashes_cpu, (throttled_cpu, hashes_cpu)


# ---------------------------------------------------------------------------
# client address: X-Forwarded-For


def _login_ip(st, pg, xff):
    """Log in through lighttpd with X-Forwarded-For: xff; return the address
    recorded in api_keys and in the login_ok event."""
    name, pw, uid = http_join(st)
    r = http_login(st, name, pw, headers={"X-Forwarded-For": xff} if xff else None)
    assert r.status_code == 200, r.text
    key = r.json()["key"]
    ip_key = pg.query("SELECT ip FROM api_keys WHERE key = %s", (key,))[0][0]
    ev = [e for e in events(pg, user_id=uid) if e[0] == "login_ok"]
    assert len(ev) == 1, ev
    sess = st.get("/sessions", headers={"Authorization": "Bearer " + r.json()["token"]})
    ip_listed = [s.get("ip") for s in sess.json()["sessions"]]
    assert ip_listed == [ip_key], (ip_listed, ip_key)
    assert ev[0][3] == ip_key, (ev, ip_key)
    return ip_key


def test_x_forwarded_for_ignored_from_an_untrusted_peer(stack_factory, pg):
    st = stack_factory(workers=2, **NO_ADDR_LIMITS)          # trusted_proxies empty
    assert _login_ip(st, pg, None) == "127.0.0.1"
    assert _login_ip(st, pg, "203.0.113.9") == "127.0.0.1"
    assert _login_ip(st, pg, "203.0.113.9, 198.51.100.4") == "127.0.0.1"


def test_x_forwarded_for_honoured_from_a_trusted_proxy(stack_factory, pg):
    st = stack_factory(workers=2, trusted_proxies="127.0.0.0/8", **NO_ADDR_LIMITS)
    assert _login_ip(st, pg, None) == "127.0.0.1"
    assert _login_ip(st, pg, "203.0.113.9") == "203.0.113.9"
    # A client can put anything on the left: only the right-most address
    # that is not a trusted proxy counts.
    assert _login_ip(st, pg, "6.6.6.6, 203.0.113.9") == "203.0.113.9"
    assert _login_ip(st, pg, "6.6.6.6,203.0.113.10, 127.0.0.5") == "203.0.113.10"
    assert _login_ip(st, pg, "2001:db8::7") == "2001:db8::7"
    # Not an address: never taken.
    assert _login_ip(st, pg, "not-an-address") == "127.0.0.1"


def test_x_forwarded_for_decides_the_throttled_address(keygate, pg):
    kg = keygate.start(workers=2, trusted_proxies="192.0.2.0/24 127.0.0.0/8",
                       login_max_per_address=2, join_max_per_address=1000000)
    name, pw, uid = fc_join(kg)
    proxy, outsider = "192.0.2.10", rand_addr()
    a, b = rand_addr(), rand_addr()
    for i in range(2):
        assert_401(fc_login(kg, uname(), "bad", addr=proxy, xff="6.6.6.6, " + a))
    assert throttle_row(pg, "addr", a)[:2] == (2, True)
    assert throttle_row(pg, "addr", proxy) is None
    assert_429(fc_login(kg, name, pw, addr=proxy, xff=a), 900)
    # Another client behind the same proxy is not blocked.
    assert fc_login(kg, name, pw, addr=proxy, xff=b).status == 200
    # An untrusted peer cannot pick its address with the header.
    for i in range(2):
        assert_401(fc_login(kg, uname(), "bad", addr=outsider, xff=b))
    assert throttle_row(pg, "addr", outsider)[:2] == (2, True)
    assert_429(fc_login(kg, name, pw, addr=outsider, xff=b), 900)
    assert fc_login(kg, name, pw, addr=proxy, xff=b).status == 200
    ips = {e[3] for e in events(pg, user_id=uid) if e[0] == "login_ok"}
    assert ips == {b}, ips


@pytest.mark.parametrize("value", ["not-an-address", "10.0.0.0/33", "127.0.0.1,,garbage"])
def test_check_config_refuses_a_bad_trusted_proxies(pg, value):
    # check-config validates without starting: what serve would refuse, it must refuse.
    r = cli(pg, "check-config", overrides=dict(trusted_proxies=value))
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    assert "trusted_proxies" in r.stderr.lower(), r.stderr


def test_serve_refuses_a_bad_trusted_proxies_and_names_it(keygate):
    kg = keygate.start(workers=2, wait=False, trusted_proxies="not-an-address")
    assert kg.wait(20) == 1
    assert "trusted_proxies" in kg.log().lower(), kg.log()


# ---------------------------------------------------------------------------
# /join: a taken name is found before hashing, and every probe counts


def test_joins_of_a_taken_name_run_into_the_limit(keygate, pg):
    kg = keygate.start(workers=2, join_max_per_address=5, login_max_per_address=1000000)
    taken, _, _ = fc_join(kg)
    email = "%s@example.org" % uuid.uuid4().hex[:12]
    assert join_raw(kg, uname(), email=email).status == 201
    a = rand_addr()
    # Each 409 counts: an address cannot list the names that exist at full speed.
    for name in (taken, taken.upper(), taken, taken):
        r = join_raw(kg, name, addr=a)
        assert r.status == 409 and r.json()["error"] == "username_taken", r
    r = join_raw(kg, uname(), addr=a, email=email.upper())
    assert r.status == 409 and r.json()["error"] == "email_taken", r
    assert throttle_row(pg, "join", a)[:2] == (5, True)
    # The limit is reached: taken or free, the next ones are refused.
    ra = assert_429(join_raw(kg, taken, addr=a), 3600)
    assert ra > 3500
    fresh = uname()
    assert_429(join_raw(kg, fresh, addr=a), 3600)
    assert pg.query("SELECT count(*) FROM users WHERE username = %s", (fresh,))[0][0] == 0
    # Refusals before the lookup (invalid fields, a refused password) say
    # nothing about who exists, and are not counted.
    b = rand_addr()
    for bad in ({"username": "no spaces here", "password": pword()},
                {"username": taken, "password": "short"},
                {"username": taken, "password": pword(), "email": "not-an-email"}):
        r = fc(kg, "POST", "/join", bad, addr=b)
        assert r.status == 400, r
    assert throttle_row(pg, "join", b) is None
    # Another address is not affected, and a success counts as before.
    assert join_raw(kg, uname(), addr=b).status == 201
    assert throttle_row(pg, "join", b)[:2] == (1, False)


def test_refused_joins_spend_no_argon2_time(keygate, pg):
    # One process (workers = 1): its CPU time is the cost of the requests,
    # whatever else the machine does. A costly hash widens the gap.
    kg = keygate.start(workers=1, argon2_memory=65536, argon2_iterations=3,
                       join_max_per_address=10, log_level="warn")
    taken, _, _ = fc_join(kg)
    a = rand_addr()
    cpu0 = cpu_seconds([kg.pid])
    statuses = [join_raw(kg, random.choice((taken, taken.upper())), addr=a).status
                for _ in range(20)]
    refused_cpu = cpu_seconds([kg.pid]) - cpu0
    assert statuses == [409] * 10 + [429] * 10, statuses

    cpu0 = cpu_seconds([kg.pid])
    for _ in range(4):
        fc_join(kg)                                   # each hashes once
    hashed_cpu = cpu_seconds([kg.pid]) - cpu0
    print("worker CPU: 20 refused joins %.3fs (%.4fs each), 4 registrations %.3fs (%.4fs each)"
          % (refused_cpu, refused_cpu / 20, hashed_cpu, hashed_cpu / 4))
    assert hashed_cpu > 0.1, hashed_cpu                 # Argon2 did run
    assert refused_cpu / 20 < (hashed_cpu / 4) / 10, (refused_cpu, hashed_cpu)


# ---------------------------------------------------------------------------
# IPv6 clients count as their network; no address is one shared count


def test_an_ipv6_client_cannot_rotate_through_its_64(keygate, pg):
    kg = keygate.start(workers=2, login_max_per_address=3, login_failure_window=60,
                       join_max_per_address=2)
    name, pw, _ = fc_join(kg)
    net, other = rand_net6(), rand_net6()
    for i in range(3):
        assert_401(fc_login(kg, uname(), "bad", addr="%s::%x" % (net, i + 1)))
    assert throttle_row(pg, "addr", net + "::/64")[:2] == (3, True)
    assert_429(fc_login(kg, name, pw, addr="%s:ffff:ffff:ffff:fff0" % net), 60)
    # Another /64 is another client.
    assert fc_login(kg, name, pw, addr=other + "::1").status == 200
    # Registrations alike.
    for i in range(2):
        assert join_raw(kg, uname(), addr="%s:%x::%x" % (other, i + 1, i + 7)).status == 201
    assert_429(join_raw(kg, uname(), addr=other + ":0:0:0:99"), 3600)
    # The addresses themselves are recorded as they were.
    ips = {e[3] for e in events(pg, username=name) if e[0] == "login_ok"}
    assert ips == {other + "::1"}, ips


def test_the_ipv6_prefix_is_configurable(keygate, pg):
    # /48: every /64 of a site is one client
    kg = keygate.start(workers=2, login_max_per_address=2, throttle_ipv6_prefix=48,
                       join_max_per_address=1000000)
    name, pw, _ = fc_join(kg)
    site = "2001:db8:%x" % random.randint(1, 0xffff)
    for i in range(2):
        assert_401(fc_login(kg, uname(), "bad", addr="%s:%x::1" % (site, i + 1)))
    assert throttle_row(pg, "addr", site + "::/48")[:2] == (2, True)
    assert_429(fc_login(kg, name, pw, addr=site + ":ffff::9"), 900)
    kg.stop()
    # /128: each address for itself
    kg = keygate.start(workers=2, login_max_per_address=2, throttle_ipv6_prefix=128,
                       join_max_per_address=1000000)
    net = rand_net6()
    for i in range(4):
        assert_401(fc_login(kg, uname(), "bad", addr="%s::%x" % (net, i + 1)))
    assert throttle_row(pg, "addr", "%s::1" % net)[:2] == (1, False)


def test_requests_without_an_address_share_one_count(keygate, pg):
    pg.query("DELETE FROM throttle WHERE subject = 'unknown'")
    try:
        kg = keygate.start(workers=2, login_max_per_address=3, login_failure_window=60,
                           join_max_per_address=1000000)
        name, pw, _ = fc_join(kg)

        def login(addr, password):
            extra = {"REMOTE_ADDR": None} if addr is None else {"REMOTE_ADDR": addr}
            return kg.fcgi("POST", "/login", body={"username": name, "password": password},
                           extra=extra)
        assert_401(login(None, "bad 1"))
        assert_401(login("", "bad 2"))
        assert_401(login("unix:", "bad 3"))
        assert throttle_row(pg, "addr", "unknown")[:2] == (3, True)
        assert_429(login(None, pw), 60)
        assert login(rand_addr(), pw).status == 200
    finally:
        pg.query("DELETE FROM throttle WHERE subject = 'unknown'")
