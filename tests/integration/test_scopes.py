"""Granted scopes: what a user's tokens may carry, and what a token may do.

Each user has a granted set (users.scopes); new users get default_scopes.
`keygate user grant/ungrant` changes it. A login asks for a subset
(400 invalid_scope names the rest, and nothing is issued); without
`scopes` the token gets "*", every scope granted. What a token may do is
its own set within the grant as it is now, so ungranting narrows every
live token at once: on the pool that ungranted nothing (the command line
is elsewhere), within a second through NOTIFY; the same on a second pool,
standing for another host.

Real keygate pools and the command line against the session's PostgreSQL.
"""

import os
import subprocess
import threading
import time
import uuid

import pytest

import kgharness

T = 30
FAST = dict(argon2_memory=1024, argon2_iterations=1)
LIMITS = dict(FAST, login_max_failures=1000, login_max_per_address=1000000,
              join_max_per_address=1000000, max_tokens_per_user=1000)
PASSWORD = "scopes passphrase for the tests 2026"


def cli(pg, kg_workdir, *args, overrides=None):
    return kgharness.run_keygate(list(args), kg_workdir, pg=pg,
                                 overrides=dict(FAST, **(overrides or {})), timeout=T)


def ok_cli(pg, kg_workdir, *args, **kw):
    r = cli(pg, kg_workdir, *args, **kw)
    assert r.returncode == 0, (args, r.stdout, r.stderr)
    return r


def join(kg):
    name = "s%s" % uuid.uuid4().hex[:14]
    r = kg.fcgi("POST", "/join", body={"username": name, "password": PASSWORD}, timeout=T)
    assert r.status == 201, r.text
    return name


def login(kg, name, scopes=None):
    body = {"username": name, "password": PASSWORD}
    if scopes is not None:
        body["scopes"] = scopes
    return kg.fcgi("POST", "/login", body=body, timeout=T)


def me(kg, token):
    return kg.fcgi("GET", "/me", headers={"Authorization": "Bearer " + token}, timeout=T)


def auth(kg, token, need):
    """GET /auth as a location requiring `need` would ask (nginx's auth_request)."""
    return kg.fcgi("GET", "/auth", headers={"Authorization": "Bearer " + token},
                   extra={"KEYGATE_REQUIRE_SCOPE": need}, timeout=T)


def test_default_grant_keeps_todays_behaviour(keygate):
    kg = keygate.start(**LIMITS)
    name = join(kg)
    r = login(kg, name)
    assert r.status == 200 and r.json()["scopes"] == ["*"], r.text
    m = me(kg, r.json()["token"]).json()
    assert m["scopes"] == ["*"] and m["granted_scopes"] == ["*"], m
    assert m["token_kind"] == "session"
    r = login(kg, name, ["anything:at:all", "notes"])
    assert r.status == 200 and sorted(r.json()["scopes"]) == ["anything:at:all", "notes"]


def test_locked_down_default_and_grants(keygate, pg, kg_workdir):
    kg = keygate.start(default_scopes="files:read notes", **LIMITS)
    name = join(kg)
    # asking for more than granted: 400 naming the rest, nothing issued
    r = login(kg, name, ["files:read", "files:write", "admin"])
    assert r.status == 400, r.text
    b = r.json()
    assert b["error"] == "invalid_scope" and b["scopes"] == ["files:write", "admin"], b
    assert "token" not in b and "key" not in b
    sessions = pg.query("SELECT count(*) FROM api_keys k JOIN users u ON u.id = k.user_id"
                        " WHERE u.username = %s", (name,))[0][0]
    assert sessions == 0
    # a scope below a grant is within it
    r = login(kg, name, ["notes:read:own"])
    assert r.status == 200 and r.json()["scopes"] == ["notes:read:own"], r.text
    # without scopes: the whole grant
    r = login(kg, name)
    assert r.status == 200 and sorted(r.json()["scopes"]) == ["files:read", "notes"], r.text
    m = me(kg, r.json()["token"]).json()
    assert sorted(m["granted_scopes"]) == ["files:read", "notes"], m
    # the wrong password says nothing of scopes, granted or not
    r = kg.fcgi("POST", "/login", body={"username": name, "password": "wrong " + PASSWORD,
                                        "scopes": ["admin"]}, timeout=T)
    assert r.status == 401 and r.json()["error"] == "invalid_credentials", r.text
    # grant, then the login works
    out = ok_cli(pg, kg_workdir, "user", "grant", name, "files:write", "admin")
    assert "now granted" in out.stdout, out.stdout
    r = login(kg, name, ["files:write", "admin"])
    assert r.status == 200, r.text
    # audited, with what was granted
    ev = ok_cli(pg, kg_workdir, "events", "--user", name).stdout
    assert "scope_granted" in ev and 'detail="{files:write,admin}"' in ev, ev
    # listed
    lst = ok_cli(pg, kg_workdir, "user", "list").stdout
    line = [l for l in lst.splitlines() if " %s " % name in l]
    assert line and "files:read notes files:write admin" in line[0], lst


def test_cli_refuses_bad_grants(keygate, pg, kg_workdir):
    kg = keygate.start(default_scopes="files", **LIMITS)
    name = join(kg)
    for args in (["files::x"], ["*:x"], []):
        r = cli(pg, kg_workdir, "user", "grant", name, *args)
        assert r.returncode == 1, (args, r.stdout, r.stderr)
    r = cli(pg, kg_workdir, "user", "grant", "nobody_%s" % uuid.uuid4().hex[:8], "notes")
    assert r.returncode == 1 and "no such user" in r.stderr, r.stderr
    # files:read is granted only through files: ungranting it would change nothing
    r = cli(pg, kg_workdir, "user", "ungrant", name, "files:read")
    assert r.returncode == 1 and "granted through a broader scope" in r.stderr, r.stderr
    assert pg.query("SELECT scopes::text FROM users WHERE username = %s", (name,))[0][0] == \
        "{files}"


def test_ungrant_narrows_live_tokens_on_every_pool_within_a_second(keygate, pg, kg_workdir):
    """Two pools on one database: two hosts. Tokens cached on both."""
    a = keygate.start(workers=2, **LIMITS)
    b = keygate.start(workers=2, **LIMITS)
    name = join(a)
    ok_cli(pg, kg_workdir, "user", "ungrant", name, "*")
    ok_cli(pg, kg_workdir, "user", "grant", name, "files", "notes")
    narrow = login(a, name, ["files:write"]).json()["token"]
    broad = login(a, name, ["files"]).json()["token"]
    star = login(a, name).json()["token"]
    for kg in (a, b):
        for _ in range(6):        # into every worker's view of the shared cache
            assert auth(kg, narrow, "files:write").status == 200
            assert auth(kg, broad, "files:read").status == 200
            assert auth(kg, star, "notes").status == 200
    ok_cli(pg, kg_workdir, "user", "ungrant", name, "files")
    ok_cli(pg, kg_workdir, "user", "grant", name, "files:read")
    done = time.monotonic()
    for kg in (a, b):
        def narrowed():
            return (auth(kg, narrow, "files:write").status == 403 and
                    auth(kg, broad, "files:write").status == 403 and
                    auth(kg, broad, "files:read").status == 200 and
                    auth(kg, star, "files:write").status == 403)
        kgharness.wait_until(narrowed, 10, interval=0.02, what="the ungrant to reach the pool")
    took = time.monotonic() - done
    assert took < 1.0, "the ungrant took %.2f s to reach both pools" % took
    # what each token may do now, as /me says
    assert me(a, broad).json()["scopes"] == ["files:read"]
    assert sorted(me(b, star).json()["scopes"]) == ["files:read", "notes"]
    assert me(b, narrow).json()["scopes"] == []
    r = auth(a, broad, "files:write")
    assert (r.header("WWW-Authenticate") or "").endswith(
        'error="insufficient_scope", scope="files:write"'), r.headers
    ev = ok_cli(pg, kg_workdir, "events", "--user", name).stdout
    assert "scope_ungranted" in ev and 'detail="{files}"' in ev, ev


def test_no_login_gets_a_scope_ungranted_while_it_ran(keygate, pg, kg_workdir):
    """Logins asking for a scope race its ungrant; many rounds. Whatever the
    interleaving, once the ungrant has answered no token may carry the
    scope: a login that read the old grant wrote a token whose effective
    scopes are computed from the grant as it is at each check."""
    kg = keygate.start(workers=4, **LIMITS)
    name = join(kg)
    ok_cli(pg, kg_workdir, "user", "ungrant", name, "*")
    tokens, errors = [], []
    lock = threading.Lock()
    for rnd in range(8 if os.environ.get("KG_SANITIZERS") != "1" else 3):
        ok_cli(pg, kg_workdir, "user", "grant", name, "reports")
        stop = threading.Event()

        def logins():
            for _ in range(200):
                if stop.is_set():
                    return
                try:
                    r = login(kg, name, ["reports"])
                    if r.status == 200:
                        with lock:
                            tokens.append(r.json()["token"])
                    elif r.status != 400:
                        errors.append((r.status, r.text))
                except Exception as e:  # noqa: BLE001 - judged below
                    errors.append(e)
        threads = [threading.Thread(target=logins, daemon=True) for _ in range(4)]
        for t in threads:
            t.start()
        time.sleep(0.05 * (rnd % 4))
        ok_cli(pg, kg_workdir, "user", "ungrant", name, "reports")
        stop.set()
        for t in threads:
            t.join(T)
        # after the ungrant answered: no token of any round carries it
        time.sleep(1.0)       # the ungrant came from the command line: NOTIFY
        with lock:
            issued = list(tokens)
        for tok in issued:
            r = auth(kg, tok, "reports")
            assert r.status in (401, 403), (rnd, r.status, r.text)
    assert not errors, errors[:5]
    assert len(tokens) >= 8, "the logins never got a token: the race was not run"
