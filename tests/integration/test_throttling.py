"""Abuse resistance and account lifecycle (issue 5), end to end.

Login throttling per account and per client address, registration
throttling, atomic counting, no Argon2 for throttled requests,
X-Forwarded-For from trusted proxies only, the audit trail, disabled
accounts, and `keygate prune` while the service is busy.

Throttle counters live in the shared PostgreSQL database, which the whole
test session uses; the table is emptied before each test here so that
attempts left by other modules (which raise the limits instead) cannot
block these. Per-address behaviour is driven with direct FastCGI requests
(kg.fcgi(..., remote_addr=...)) because through lighttpd every client is
127.0.0.1; each test uses its own random addresses and uuid-based names.
"""

import concurrent.futures
import os
import random
import re
import subprocess
import threading
import time
import uuid

import pytest
import requests

import kgharness

# every password, secret and token the current test used (emptied before
# each test by _no_secret_in_this_tests_logs); the audit table and the logs
# are scanned for them
SENSITIVE = set()

# keep unrelated limits out of the way where a test does not look at them
NO_ADDR_LIMITS = dict(login_max_per_address=1000000, join_max_per_address=1000000)
# Argon2 at its cheapest, for tests of throttling windows: a hash costs a
# second or more under the sanitizers on a busy machine, and a window that
# slow requests outlast would measure the machine, not the throttle.
CHEAP = dict(argon2_memory=1024, argon2_iterations=1)
TOO_MANY = {"success": False, "error": "too_many_requests",
            "message": "Too many attempts; retry later."}
INVALID_CREDENTIALS = {"success": False, "error": "invalid_credentials",
                       "message": "Invalid username or password."}


# ---------------------------------------------------------------------------
# helpers


def note(*values):
    for v in values:
        if isinstance(v, str) and len(v) >= 8:
            SENSITIVE.add(v)


def uname(prefix="ab"):
    return "%s_%s" % (prefix, uuid.uuid4().hex[:16])


def pword():
    p = "abuse pass %s ~" % uuid.uuid4().hex
    note(p)
    return p


def rand_addr():
    """A random address in 10.0.0.0/8 (never 127.x, so never trusted)."""
    return "10.%d.%d.%d" % (random.randint(0, 255), random.randint(0, 255),
                            random.randint(1, 254))


def fc(kg, method, path, body=None, token=None, addr="127.0.0.1", ua=None, xff=None,
       timeout=30):
    """A direct FastCGI request to pool kg as from client address addr."""
    headers = {}
    if token is not None:
        headers["Authorization"] = "Bearer " + token
    if ua is not None:
        headers["User-Agent"] = ua
    if xff is not None:
        headers["X-Forwarded-For"] = xff
    kw = {}
    if body is not None:
        kw["body"] = body
    return kg.fcgi(method, path, headers=headers, remote_addr=addr, timeout=timeout, **kw)


def fc_join(kg, name=None, pw=None, addr=None, ua=None):
    name = name or uname()
    pw = pw or pword()
    r = fc(kg, "POST", "/join", {"username": name, "password": pw},
           addr=addr or rand_addr(), ua=ua)
    assert r.status == 201, r
    return name, pw, r.json()["user_id"]


def fc_login(kg, name, pw, addr=None, ua=None, xff=None):
    r = fc(kg, "POST", "/login", {"username": name, "password": pw},
           addr=addr or rand_addr(), ua=ua, xff=xff)
    if r.status == 200:
        b = r.json()
        note(b["secret"], b["token"])
    return r


def http_join(st, name=None, pw=None):
    name = name or uname()
    pw = pw or pword()
    r = st.post("/join", json={"username": name, "password": pw})
    assert r.status_code == 201, (r.status_code, r.text)
    return name, pw, r.json()["user_id"]


def http_login(st, name, pw, headers=None):
    r = st.post("/login", json={"username": name, "password": pw}, headers=headers)
    if r.status_code == 200:
        note(r.json()["secret"], r.json()["token"])
    return r


def http_me(st, token):
    return st.get("/me", headers={"Authorization": "Bearer " + token})


def status(r):
    return getattr(r, "status_code", getattr(r, "status", None))


def header(r, name):
    if hasattr(r, "header"):
        return r.header(name)
    return r.headers.get(name)


def body(r):
    return r.json()


def assert_401(r):
    assert status(r) == 401, (status(r), r.text)
    assert body(r) == INVALID_CREDENTIALS, r.text
    assert header(r, "Retry-After") is None, r.text


def assert_429(r, max_wait):
    """429 too_many_requests with a Retry-After of 1..max_wait seconds."""
    assert status(r) == 429, (status(r), r.text)
    assert body(r) == TOO_MANY, r.text
    ra = header(r, "Retry-After")
    assert ra is not None and ra.isdigit(), ra
    assert 1 <= int(ra) <= max_wait, (ra, max_wait)
    return int(ra)


def throttle_row(pg, scope, subject):
    """(attempts, blocked, seconds until unblocked) or None."""
    rows = pg.query("SELECT attempts, blocked_until IS NOT NULL AND blocked_until > now(),"
                    " coalesce(extract(epoch FROM blocked_until - now()), 0)::float8"
                    " FROM throttle WHERE scope = %s AND subject = %s", (scope, subject))
    return rows[0] if rows else None


def events(pg, username=None, user_id=None, ip=None):
    """(event, user_id, username, ip, user_agent) rows in order."""
    where, args = [], []
    if username is not None:
        where.append("lower(username) = lower(%s)")
        args.append(username)
    if user_id is not None:
        where.append("user_id = %s")
        args.append(user_id)
    if ip is not None:
        where.append("ip = %s")
        args.append(ip)
    return pg.query("SELECT event, user_id, username, ip, user_agent FROM auth_events"
                    " WHERE " + " AND ".join(where) + " ORDER BY id", tuple(args))


def event_names(pg, **kw):
    return [e[0] for e in events(pg, **kw)]


def cli(pg, *args, input=None, overrides=None, timeout=60):
    """Run `keygate -c <empty file> ARGS` as the administrator would."""
    ini = os.path.join(os.path.dirname(pg.base), "abuse-cli.conf")
    if not os.path.exists(ini):
        kgharness.write_ini(ini, None)
    return subprocess.run([kgharness.KEYGATE_BIN, "-c", ini] + list(args),
                          input=input, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          env=kgharness.keygate_env(pg, overrides or {}),
                          universal_newlines=True, timeout=timeout,
                          start_new_session=True)


def parallel(n, fn):
    barrier = threading.Barrier(n)

    def run(i):
        barrier.wait(30)
        return fn(i)
    with concurrent.futures.ThreadPoolExecutor(max_workers=n) as ex:
        return list(ex.map(run, range(n)))


def nworkers(kg):
    return max(len(kg.worker_pids()), 1)


def cpu_seconds(pids):
    """utime + stime of the given processes, in seconds."""
    total = 0
    tck = os.sysconf("SC_CLK_TCK")
    for pid in pids:
        with open("/proc/%d/stat" % pid) as f:
            rest = f.read().rsplit(")", 1)[1].split()
        total += int(rest[11]) + int(rest[12])
    return total / tck


@pytest.fixture(autouse=True)
def _fresh_throttle(pg):
    """No attempts left over from other tests or modules, and none left for
    the modules after this one."""
    pg.query("DELETE FROM throttle")
    yield
    if pg.running():
        pg.query("DELETE FROM throttle")


def secrets_in_logs(pools, secrets):
    """The secrets found in the logs of the keygate pools (gone or not)."""
    leaked = []
    for kg in pools:
        text = kgharness.read_text(kg.log_path)
        leaked.extend(s for s in secrets if s in text)
    return leaked


@pytest.fixture(autouse=True)
def _no_secret_in_this_tests_logs(request):
    """After each test, the logs of the pools it started hold none of the
    secrets it used. Per test, so that the check neither depends on which
    tests ran before nor misses a test run alone."""
    SENSITIVE.clear()
    mark = len(kgharness._created)
    yield
    rep = getattr(request.node, "rep_call", None)
    if rep is None or not rep.passed:
        return
    pools = [o for o in kgharness._created[mark:] if isinstance(o, kgharness.Keygate)]
    leaked = secrets_in_logs(pools, set(SENSITIVE))
    assert not leaked, "secrets in the keygate log: %r" % leaked[:5]


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
    # allowance; a taken name does (see test_abuse_limits.py).
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

    cpu0, t0 = cpu_seconds(pids), time.monotonic()
    for _ in range(10):
        assert_401(fc_login(kg, uname("new"), "some wrong password", addr=addr))
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
# the audit trail


def test_every_audited_event_once_with_the_right_fields_and_no_secret(keygate, pg):
    kg = keygate.start(workers=2, login_max_failures=3, **NO_ADDR_LIMITS)
    ip, ua = rand_addr(), "abuse-audit/1.0 (%s)" % uuid.uuid4().hex[:8]
    name, pw, uid = fc_join(kg, addr=ip, ua=ua)
    secrets = [pw]

    def login(password=pw, who=name):
        r = fc_login(kg, who, password, addr=ip, ua=ua)
        if r.status == 200:
            secrets.extend([r.json()["secret"], r.json()["token"]])
        return r

    t1, t2, t3, t4 = (login().json()["token"] for _ in range(4))
    wrong = "this is not it " + uuid.uuid4().hex
    note(wrong)
    secrets.append(wrong)
    assert_401(login(wrong))
    assert fc(kg, "POST", "/logout", token=t1, addr=ip, ua=ua).status == 200
    r = fc(kg, "DELETE", "/sessions/" + t2.split(".")[0], token=t3, addr=ip, ua=ua)
    assert r.status == 200, r
    new_pw = pword()
    secrets.append(new_pw)
    r = fc(kg, "POST", "/password", {"current_password": wrong, "new_password": new_pw},
           token=t3, addr=ip, ua=ua)
    assert_401(r)
    r = fc(kg, "POST", "/password", {"current_password": pw, "new_password": new_pw},
           token=t3, addr=ip, ua=ua)
    assert r.status == 200, r
    t5 = login(new_pw).json()["token"]
    r = fc(kg, "POST", "/logout", {"all": True}, token=t5, addr=ip, ua=ua)
    assert r.status == 200, r
    # Throttled: three failures (limit 3 here), then a refused attempt.
    for i in range(3):
        assert_401(login("wrong %d" % i, name.upper()))
    assert_429(login(new_pw), 30)
    # Lift the block (no admin command does that: it expires) and go on
    # with the command line.
    pg.query("DELETE FROM throttle WHERE scope = 'user' AND subject = %s", (name,))
    t6 = login(new_pw).json()["token"]
    cli_pw = pword()
    secrets.append(cli_pw)
    # (disabling deletes the account's tokens, so revoke t6 before it)
    for args, inp in ((["token", "revoke", name, "--key", t6.split(".")[0]], None),
                      (["user", "disable", name], None), (["user", "enable", name], None),
                      (["user", "passwd", name, "--password-stdin"], cli_pw + "\n")):
        r = cli(pg, *args, input=inp)
        assert r.returncode == 0, (args, r.stderr)
    t7 = login(cli_pw).json()["token"]
    assert cli(pg, "token", "revoke", name, "--all").returncode == 0
    assert fc(kg, "GET", "/me", token=t7).status == 401

    web = (ip, ua)
    cmd = (None, "keygate-cli")
    expected = [
        ("join", uid, name) + web,
        ("login_ok", uid, name) + web,
        ("login_ok", uid, name) + web,
        ("login_ok", uid, name) + web,
        ("login_ok", uid, name) + web,
        ("login_failed", uid, name) + web,
        ("logout", uid, name) + web,
        ("token_revoked", uid, name) + web,
        ("login_failed", uid, name) + web,       # wrong current_password
        ("password_changed", uid, name) + web,
        ("login_ok", uid, name) + web,
        ("logout_all", uid, name) + web,
        ("login_failed", uid, name.upper()) + web,
        ("login_failed", uid, name.upper()) + web,
        ("login_failed", uid, name.upper()) + web,
        ("login_throttled", None, name) + web,
        ("login_ok", uid, name) + web,
        ("token_revoked", uid, name) + cmd,
        ("user_disabled", uid, name) + cmd,
        ("user_enabled", uid, name) + cmd,
        ("password_changed", uid, name) + cmd,
        ("login_ok", uid, name) + web,
        ("token_revoked", uid, name) + cmd,
    ]
    got = events(pg, username=name)
    assert got == expected, "\n".join("%r" % (e,) for e in got)
    # Every event has its time.
    assert pg.query("SELECT count(*) FROM auth_events WHERE lower(username) = lower(%s)"
                    " AND (at IS NULL OR at > now() OR at < now() - interval '5 minutes')",
                    (name,))[0][0] == 0
    # Nothing secret of this test anywhere in the audit table (in any row).
    text = "\n".join(r[0] for r in pg.query("SELECT t::text FROM auth_events t"))
    leaked = [s for s in set(secrets) | SENSITIVE if s in text]
    assert not leaked, leaked
    # ...and the secrets of this test are not in keygate's log either.
    log = kg.log()
    assert not [s for s in secrets if s in log]


# ---------------------------------------------------------------------------
# disabled accounts


def test_disable_refuses_live_tokens_at_once_and_enable_allows_login(stack_factory, pg):
    st = stack_factory(workers=3, **NO_ADDR_LIMITS)
    name, pw, uid = http_join(st)
    tokens = [http_login(st, name, pw).json()["token"] for _ in range(2)]
    n = 4 * nworkers(st.kg)

    def me_all(token):
        with concurrent.futures.ThreadPoolExecutor(max_workers=8) as ex:
            return list(ex.map(
                lambda i: st.get("/me", headers={"Authorization": "Bearer " + token}),
                range(n)))
    for t in tokens:                       # every worker has them cached
        assert {r.status_code for r in me_all(t)} == {200}

    r = cli(pg, "user", "disable", name)
    assert r.returncode == 0 and r.stdout.strip() == "user %s disabled" % name, r
    for t in tokens:
        rs = me_all(t)
        assert {x.status_code for x in rs} == {401}, [(x.status_code, x.text) for x in rs]
        assert rs[0].json()["error"] == "invalid_token"
    # Login: exactly the wrong-password answer, right password or not.
    right, wrong = http_login(st, name, pw), http_login(st, name, "wrong " + pw)
    assert_401(right)
    assert_401(wrong)
    assert right.content == wrong.content
    assert right.headers.get("WWW-Authenticate") == wrong.headers.get("WWW-Authenticate")

    r = cli(pg, "user", "enable", name)
    assert r.returncode == 0 and r.stdout.strip() == "user %s enabled" % name, r
    r = http_login(st, name, pw)
    assert r.status_code == 200, r.text
    assert http_me(st, r.json()["token"]).status_code == 200


def test_tokens_from_before_a_disable_stay_dead_after_enable(stack_factory, pg):
    """Disabling is what an operator does to a compromised account: enabling
    it again must not bring the attacker's sessions back."""
    st = stack_factory(workers=2, **NO_ADDR_LIMITS)
    name, pw, uid = http_join(st)
    token = http_login(st, name, pw).json()["token"]
    assert cli(pg, "user", "disable", name).returncode == 0
    assert st.get("/me", headers={"Authorization": "Bearer " + token}).status_code == 401
    assert cli(pg, "user", "enable", name).returncode == 0
    r = st.get("/me", headers={"Authorization": "Bearer " + token})
    assert r.status_code == 401, (r.status_code, r.text)


def test_disabled_login_costs_the_same_as_a_wrong_password(keygate, pg):
    # One process (workers = 1), so its CPU time is the cost of the requests;
    # CPU time, unlike wall time, does not depend on what else the machine does.
    kg = keygate.start(workers=1, argon2_memory=65536, login_max_failures=1000,
                       log_level="warn", **NO_ADDR_LIMITS)
    a, apw, _ = fc_join(kg)
    b, bpw, _ = fc_join(kg)
    assert cli(pg, "user", "disable", b).returncode == 0
    cost = {"wrong": 0.0, "disabled": 0.0}
    for _ in range(6):                     # interleaved: drift hits both alike
        for what, fn in (("wrong", lambda: fc_login(kg, a, "wrong password here")),
                         ("disabled", lambda: fc_login(kg, b, bpw))):
            c0 = cpu_seconds([kg.pid])
            assert_401(fn())
            cost[what] += cpu_seconds([kg.pid]) - c0
    print("login CPU over 6 requests: wrong password %.3fs, disabled account %.3fs"
          % (cost["wrong"], cost["disabled"]))
    assert cost["wrong"] > 0.1, cost            # Argon2 did run
    assert 0.7 < cost["disabled"] / cost["wrong"] < 1.4, cost


# ---------------------------------------------------------------------------
# prune while the service is busy


def test_prune_under_load(stack_factory, pg):
    st = stack_factory(workers=3, token_lifetime=3, token_idle_timeout=3,
                       log_level="warn", **NO_ADDR_LIMITS)
    users = [http_join(st) for _ in range(3)]
    doomed = []
    for name, pw, uid in users:
        for _ in range(2):
            doomed.append(http_login(st, name, pw).json()["key"])
    assert pg.query("SELECT count(*) FROM api_keys WHERE key = ANY(%s)", (doomed,))[0][0] == 6
    t_doomed = time.monotonic()

    failures, done = [], threading.Event()
    counts = {"login": 0, "me": 0}
    lock = threading.Lock()

    def load(k):
        name, pw, _ = users[k]
        s = requests.Session()
        while not done.is_set():
            try:
                r = s.post(st.url("/login"), json={"username": name, "password": pw},
                           timeout=10)
                if r.status_code != 200:
                    failures.append(("login", r.status_code, r.text))
                    continue
                note(r.json()["secret"], r.json()["token"])
                h = {"Authorization": "Bearer " + r.json()["token"]}
                with lock:
                    counts["login"] += 1
                for _ in range(5):
                    r = s.get(st.url("/me"), headers=h, timeout=10)
                    if r.status_code != 200:
                        failures.append(("me", r.status_code, r.text))
                    with lock:
                        counts["me"] += 1
            except Exception as e:  # noqa: BLE001 - recorded
                failures.append(("exception", repr(e)))
        s.close()

    threads = [threading.Thread(target=load, args=(k,), daemon=True) for k in range(3)]
    for th in threads:
        th.start()
    prunes = []
    try:
        # for 3.5 s and at least 5 prunes, however long each takes
        deadline = time.monotonic() + 3.5
        while time.monotonic() < deadline or time.monotonic() < t_doomed + 3.5 \
                or len(prunes) < 5:
            prunes.append(cli(pg, "prune"))
            time.sleep(0.4)
        # One more now that the first tokens are surely past their lifetime.
        prunes.append(cli(pg, "prune"))
    finally:
        done.set()
        for th in threads:
            th.join(30)
    assert all(p.returncode == 0 for p in prunes), [(p.returncode, p.stderr) for p in prunes]
    assert len(prunes) >= 5
    assert all(p.stdout.startswith("pruned ") for p in prunes), [p.stdout for p in prunes]
    assert failures == [], failures[:10]
    assert counts["login"] >= 3 and counts["me"] >= 15, counts      # it was busy
    left = pg.query("SELECT count(*) FROM api_keys WHERE key = ANY(%s)", (doomed,))[0][0]
    assert left == 0
    # Nothing but expired tokens went: the pool still works for everyone.
    for name, pw, _ in users:
        r = http_login(st, name, pw)
        assert r.status_code == 200
        assert st.get("/me", headers={"Authorization": "Bearer " + r.json()["token"]}
                      ).status_code == 200


def test_no_secret_in_keygate_logs_of_this_module(keygate, pg):
    """Passwords (right, wrong, throttled), secrets and tokens of one
    account's life stay out of the log. Self-contained: the same check runs
    after every test of this module (_no_secret_in_this_tests_logs)."""
    kg = keygate.start(workers=1, login_max_failures=2, **NO_ADDR_LIMITS)
    name, pw, _uid = fc_join(kg)
    r = fc_login(kg, name, pw)
    assert r.status == 200, r
    tok = r.json()["token"]
    assert fc(kg, "GET", "/me", token=tok).status == 200
    assert fc(kg, "POST", "/logout", token=tok).status == 200
    assert fc(kg, "GET", "/me", token=tok).status == 401
    for i in range(2):
        wrong = "wrong %d %s" % (i, pw)
        note(wrong)
        assert fc_login(kg, name, wrong).status == 401
    assert fc_login(kg, name, pw).status == 429
    assert len(SENSITIVE) >= 5, SENSITIVE
    leaked = secrets_in_logs([kg], set(SENSITIVE))
    assert not leaked, leaked[:5]
