"""The audit trail: every event once, with the right fields and no secret;
bounded under throttled floods (one row per block, with a count, however
many attempts or usernames); usernames never stored raw, more than a
username could be, nor printed unescaped by `keygate events` and `user
list`; and no password, secret or token of an account's life in the log.

Requests go straight to the FastCGI socket with the client address each
test picks (accounts.py), and each test counts only its own rows in the
shared database.
"""

import concurrent.futures
import re
import uuid

import pytest

from accounts import (NO_ADDR_LIMITS, assert_401, assert_429, cli, events, fc, fc_join,
                      fc_login, pword, rand_addr, uname)
import credentials
from credentials import note

pytestmark = pytest.mark.usefixtures("fresh_throttle")


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
    leaked = [s for s in set(secrets) | credentials.noted() if s in text]
    assert not leaked, leaked
    # ...and the secrets of this test are not in keygate's log either.
    log = kg.log()
    assert not [s for s in secrets if s in log]


# ---------------------------------------------------------------------------
# the audit trail stays bounded under throttled floods


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
# usernames: stored no more than a username could be, shown escaped

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
# credentials stay out of the log


def test_no_credential_of_an_accounts_life_in_the_log(keygate, pg):
    """Passwords (right, wrong, throttled), secrets and tokens of one
    account's life stay out of the log. Self-contained: the same check runs
    after every test (conftest's _credentials_stay_out_of_logs); this one
    makes sure there is something to find and that the check sees it."""
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
    assert len(credentials.noted()) >= 5, credentials.noted()
    assert not credentials.leaks([kg]), credentials.leaks([kg])[:5]
    # The check can fail: a noted value that is in the log (the socket
    # path, logged at start-up) is found.
    assert kg.socket in kg.log()
    credentials.note(kg.socket)
    assert [v for _where, v in credentials.leaks([kg])] == [kg.socket]
    credentials.forget(kg.socket)
