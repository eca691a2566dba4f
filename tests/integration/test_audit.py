"""Abuse limits that must hold whatever a client sends (issue 15, parts 3
and 5): /join counted before any hashing, a bounded audit trail under
throttled floods, usernames never stored or shown raw, IPv6 clients
counted by their network and requests without an address by one shared
count.

Like test_abuse.py (whose helpers these tests use), requests go straight
to the FastCGI socket with the client address each test picks, and each
test counts only its own rows in the shared database.
"""

import concurrent.futures
import random
import re
import uuid

from test_abuse import (NO_ADDR_LIMITS, assert_401, assert_429, cli, cpu_seconds, events,
                        fc, fc_join, fc_login, note, pword, rand_addr, throttle_row, uname)


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
# 3. /join: a taken name is found before hashing, and every probe counts


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
# 5. the audit trail stays bounded under throttled floods


def own_rows(pg, name, addrs):
    return pg.query("SELECT id, event FROM auth_events"
                    " WHERE lower(username) = lower(%s) OR ip = ANY(%s) ORDER BY id",
                    (name, list(addrs)))


def flood(n, fn, threads=4):
    """Call fn(i) for i in range(n) over a few threads; the statuses seen."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=threads) as ex:
        return list(ex.map(fn, range(n), chunksize=50))


def test_ten_thousand_throttled_logins_keep_one_audit_row(keygate, pg):
    kg = keygate.start(workers=3, login_max_failures=3, login_delay=900,
                       login_max_delay=900, log_level="warn", **NO_ADDR_LIMITS)
    name, pw, uid = fc_join(kg)
    addrs = [rand_addr() for _ in range(4)]
    for i in range(3):
        assert_401(fc_login(kg, name, "wrong %d" % i, addr=addrs[0]))
    before = own_rows(pg, name, addrs)

    def attempt(i):
        # any address, any case, right password or not: one account's block
        r = fc(kg, "POST", "/login", {"username": (name, name.upper())[i % 2],
                                      "password": (pw, "guess %d" % i)[i % 3 == 0]},
               addr=addrs[i % len(addrs)])
        return r.status
    statuses = flood(1000, attempt)
    assert set(statuses) == {429}, sorted(set(statuses))
    after_1k = own_rows(pg, name, addrs)
    statuses = flood(9000, attempt)
    assert set(statuses) == {429}, sorted(set(statuses))
    after_10k = own_rows(pg, name, addrs)

    print("audit rows of this account and its addresses: %d before, %d after 1,000"
          " throttled logins, %d after 10,000" % (len(before), len(after_1k), len(after_10k)))
    assert len(after_1k) == len(after_10k) == len(before) + 1, (len(before), len(after_10k))
    assert [r[1] for r in after_10k] == ["join"] + ["login_failed"] * 3 + ["login_throttled"], \
        after_10k
    assert pg.query("SELECT count FROM auth_events WHERE id = %s",
                    (after_10k[-1][0],)) == [(10000,)]
    # The administrator sees the count.
    r = cli(pg, "events", "--user", name)
    assert r.returncode == 0, r.stderr
    lines = [l for l in r.stdout.splitlines() if " login_throttled " in l]
    assert len(lines) == 1 and lines[0].endswith(" count=10000"), r.stdout


def test_a_blocked_address_keeps_one_audit_row_whatever_the_usernames(keygate, pg):
    kg = keygate.start(workers=2, login_max_per_address=2, login_failure_window=600,
                       join_max_per_address=1000000)
    a = rand_addr()
    for i in range(2):
        assert_401(fc_login(kg, uname(), "bad %d" % i, addr=a))
    names = [uname() for _ in range(300)] + ["not valid %d" % i for i in range(100)]
    statuses = flood(len(names), lambda i: fc_login(kg, names[i], "guess", addr=a).status)
    assert set(statuses) == {429}, sorted(set(statuses))
    rows = pg.query("SELECT event FROM auth_events WHERE ip = %s ORDER BY id", (a,))
    assert rows == [("login_failed",)] * 2 + [("login_throttled",)], len(rows)
    rows = pg.query("SELECT event, count FROM auth_events WHERE ip = %s ORDER BY id", (a,))
    assert rows == [("login_failed", 1)] * 2 + [("login_throttled", 400)], rows
    # A new block is a new row.
    pg.query("UPDATE throttle SET blocked_until = now() - interval '1 second'"
             " WHERE scope = 'addr' AND subject = %s", (a,))
    assert_401(fc_login(kg, uname(), "bad again", addr=a))
    for _ in range(3):
        assert_429(fc_login(kg, uname(), "guess", addr=a), 600)
    rows = pg.query("SELECT event, count FROM auth_events WHERE ip = %s ORDER BY id", (a,))
    assert rows[-2:] == [("login_failed", 1), ("login_throttled", 3)], rows


# ---------------------------------------------------------------------------
# 5. usernames: stored no more than a username could be, shown escaped

CONTROL = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f]")


def test_typed_usernames_are_not_stored_raw(keygate, pg):
    kg = keygate.start(workers=2, login_max_failures=3, **NO_ADDR_LIMITS)
    a = rand_addr()
    mark = uuid.uuid4().hex[:10]
    evil = "adm\x1b]0;%s\x07\x1b[2J\x1b[31min\r\n\x7f" % mark
    typed_pw = "my password went here " + uuid.uuid4().hex     # the wrong field
    note(typed_pw)
    for i in range(3):
        assert_401(fc_login(kg, evil, "guess %d" % i, addr=a))
    # Still throttled as one name, though it is none.
    assert_429(fc_login(kg, evil, "guess", addr=a), 30)
    assert_401(fc_login(kg, typed_pw, "x", addr=a))
    assert_401(fc_login(kg, "Ok_Name_" + uuid.uuid4().hex[:8], "x", addr=a))

    rows = pg.query("SELECT event, username FROM auth_events WHERE ip = %s ORDER BY id", (a,))
    assert [r[0] for r in rows] == ["login_failed"] * 3 + ["login_throttled"] + \
        ["login_failed"] * 2, rows
    stored = [r[1] for r in rows]
    tag = stored[0]
    assert re.fullmatch(r"#[0-9a-f]{4}", tag), stored
    assert stored[:4] == [tag] * 4, stored
    assert re.fullmatch(r"#[0-9a-f]{4}", stored[4]) and stored[4] != tag, stored
    assert stored[5].startswith("Ok_Name_"), stored          # a valid name, as typed
    subjects = [s for (s,) in pg.query("SELECT subject FROM throttle WHERE scope = 'user'")]
    assert tag in subjects
    dump = "\n".join(t for (t,) in pg.query("SELECT t::text FROM auth_events t") +
                     pg.query("SELECT t::text FROM throttle t"))
    assert typed_pw not in dump and mark not in dump


def test_events_and_user_list_escape_what_they_print(keygate, pg):
    kg = keygate.start(workers=2, **NO_ADDR_LIMITS)
    # A row as an older keygate stored it: the name and user agent raw.
    raw = "x\x1b[2J\x1b]0;t\x07\x9b1m\\\"" + uuid.uuid4().hex[:8]
    pg.query("INSERT INTO auth_events (event, username, ip, user_agent)"
             " VALUES ('login_failed', %s, '192.0.2.1', %s)", (raw, "ua\x1b[5m\"q\""))
    # An email may hold any byte but blanks and ASCII controls, C1 controls included.
    email = "c1\u009b2J\u0085%s@example.org" % uuid.uuid4().hex[:8]
    r = fc(kg, "POST", "/join", {"username": uname(), "password": pword(), "email": email},
           addr=rand_addr())
    assert r.status == 201, r

    ev = cli(pg, "events", "--user", raw)
    assert ev.returncode == 0, ev.stderr
    assert not CONTROL.search(ev.stdout), repr(ev.stdout)
    assert ev.stdout.count("\n") == 1, repr(ev.stdout)
    assert "username=x\\x1b[2J\\x1b]0;t\\x07\\xc2\\x9b1m\\\\\\\"" in ev.stdout, ev.stdout
    assert 'ua="ua\\x1b[5m\\"q\\""' in ev.stdout, ev.stdout
    users = cli(pg, "user", "list")
    assert users.returncode == 0, users.stderr
    assert not CONTROL.search(users.stdout)
    assert "c1\\xc2\\x9b2J\\xc2\\x85" in users.stdout


# ---------------------------------------------------------------------------
# 5. IPv6 clients count as their network; no address is one shared count


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
