"""Personal access tokens (POST /tokens): named API tokens for scripts and CI.

Created by a session (a login) that confirms the password again, with
scopes within the session's own, an expiry bounded by
api_token_max_lifetime and no idle expiry; the secret is shown once. They
are listed and revoked with the sessions (GET /sessions, DELETE
/sessions/{key}), counted apart (max_api_tokens_per_user: refused past it,
nothing trimmed), left alone by a logout of every session unless asked
("include_api_tokens"), and ended by a password change. An API token
cannot mint tokens, change the password, list or revoke other tokens.
The races (concurrent creations against the cap, creations against a
password change) run many rounds with a verdict that does not depend on
timing.
"""

import datetime
import os
import threading
import time
import uuid

import pytest

import kgharness

T = 30
FAST = dict(argon2_memory=1024, argon2_iterations=1)
LIMITS = dict(FAST, login_max_failures=1000, login_max_per_address=1000000,
              join_max_per_address=1000000, max_tokens_per_user=1000)
PASSWORD = "api token passphrase for the tests 2026"
NEW_PASSWORD = "a newer api token passphrase for the tests"
ROUNDS = 3 if os.environ.get("KG_SANITIZERS") == "1" else 8


def bearer(token):
    return {"Authorization": "Bearer " + token}


def join(kg):
    name = "p%s" % uuid.uuid4().hex[:14]
    r = kg.fcgi("POST", "/join", body={"username": name, "password": PASSWORD}, timeout=T)
    assert r.status == 201, r.text
    return name


def login(kg, name, scopes=None, password=PASSWORD):
    body = {"username": name, "password": password}
    if scopes is not None:
        body["scopes"] = scopes
    r = kg.fcgi("POST", "/login", body=body, timeout=T)
    assert r.status == 200, r.text
    return r.json()["token"]


def create(kg, session, name="ci deploy", password=PASSWORD, **extra):
    body = dict({"name": name, "current_password": password}, **extra)
    return kg.fcgi("POST", "/tokens", body=body, headers=bearer(session), timeout=T)


def me(kg, token):
    return kg.fcgi("GET", "/me", headers=bearer(token), timeout=T)


def sessions(kg, token):
    r = kg.fcgi("GET", "/sessions", headers=bearer(token), timeout=T)
    assert r.status == 200, r.text
    return r.json()["sessions"]


def error(r, status, code):
    assert r.status == status, (r.status, r.text)
    b = r.json()
    assert b["success"] is False and b["error"] == code, b
    return b


def cli(pg, kg_workdir, *args):
    r = kgharness.run_keygate(list(args), kg_workdir, pg=pg, overrides=FAST, timeout=T)
    assert r.returncode == 0, (args, r.stdout, r.stderr)
    return r.stdout


def test_create_use_list_and_revoke(keygate, pg, kg_workdir):
    kg = keygate.start(**LIMITS)
    name = join(kg)
    s = login(kg, name)
    r = create(kg, s, scopes=["files:read", "notes"], expires_in=3600)
    assert r.status == 201, r.text
    b = r.json()
    assert b["success"] is True and b["kind"] == "api" and b["name"] == "ci deploy", b
    assert b["token"] == b["key"] + "." + b["secret"]
    assert sorted(b["scopes"]) == ["files:read", "notes"], b
    exp = datetime.datetime.strptime(b["expires_at"], "%Y-%m-%dT%H:%M:%SZ")
    left = (exp - datetime.datetime.utcnow()).total_seconds()
    assert 3500 < left <= 3601, left
    tok = b["token"]
    m = me(kg, tok).json()
    assert m["token_kind"] == "api" and sorted(m["scopes"]) == ["files:read", "notes"], m
    # only the digest is kept; no idle expiry (idle timeout = lifetime)
    row = pg.query("SELECT kind, name, idle_timeout_s, encode(secret_digest, 'hex')"
                   " FROM api_keys WHERE key = %s", (b["key"],))[0]
    assert row[0] == "api" and row[1] == "ci deploy" and row[2] == 3600, row
    assert b["secret"] not in row[3]
    listed = {x["key"]: x for x in sessions(kg, s)}
    assert listed[b["key"]]["kind"] == "api" and listed[b["key"]]["name"] == "ci deploy"
    assert sorted(listed[b["key"]]["scopes"]) == ["files:read", "notes"]
    own = [x for x in listed.values() if x["current"]]
    assert len(own) == 1 and own[0]["kind"] == "session" and own[0]["name"] is None
    assert "secret" not in str(listed)
    out = cli(pg, kg_workdir, "token", "list", name)
    line = [l for l in out.splitlines() if l.startswith(b["key"])]
    assert line and " api " in line[0] and "ci deploy" in line[0], out
    ev = cli(pg, kg_workdir, "events", "--user", name)
    assert "api_token_created" in ev and 'detail="ci deploy"' in ev, ev
    # revoked like a session; the name is free again
    r = kg.fcgi("DELETE", "/sessions/" + b["key"], headers=bearer(s), timeout=T)
    assert r.status == 200, r.text
    assert me(kg, tok).status == 401
    assert create(kg, s).status == 201


def test_defaults_and_bounds(keygate):
    kg = keygate.start(api_token_max_lifetime=7200, **LIMITS)
    name = join(kg)
    s = login(kg, name, ["files", "notes:read"])
    b = create(kg, s).json()
    # the session's scopes, the longest lifetime
    assert sorted(b["scopes"]) == ["files", "notes:read"], b
    exp = datetime.datetime.strptime(b["expires_at"], "%Y-%m-%dT%H:%M:%SZ")
    assert 7100 < (exp - datetime.datetime.utcnow()).total_seconds() <= 7201
    # within the session's scopes: below is fine, broader or other is not
    assert create(kg, s, name="below", scopes=["files:write", "notes:read:own"]).status == 201
    b = error(create(kg, s, name="wider", scopes=["notes", "files:read", "admin"]),
              400, "invalid_scope")
    assert b["scopes"] == ["notes", "admin"], b
    assert create(kg, s, name="all", scopes=["*"]).json()["scopes"] == ["files", "notes:read"]
    for body, field, why in (
            ({"expires_in": 7201}, "expires_in", "too_long"),
            ({"expires_in": 0}, "expires_in", "invalid"),
            ({"expires_in": -5}, "expires_in", "invalid"),
            ({"expires_in": 1.5}, "expires_in", "invalid"),
            ({"expires_in": "60"}, "expires_in", "wrong_type"),
            ({"name": ""}, "name", "invalid"),
            ({"name": " x"}, "name", "invalid"),
            ({"name": "a\tb"}, "name", "invalid"),
            ({"name": "x" * 65}, "name", "invalid"),
            ({"scopes": ["a::b"]}, "scopes", "invalid"),
            ({"scopes": []}, "scopes", "invalid")):
        fields = dict({"name": "bad %s" % field, "current_password": PASSWORD}, **body)
        r = kg.fcgi("POST", "/tokens", body=fields, headers=bearer(s), timeout=T)
        b = error(r, 400, "invalid_request")
        assert b["fields"].get(field) == why, (body, b)
    b = error(kg.fcgi("POST", "/tokens", body={"current_password": PASSWORD},
                      headers=bearer(s), timeout=T), 400, "invalid_request")
    assert b["fields"] == {"name": "required"}, b
    # a wrong password: 401 like POST /password, nothing made, the session lives
    before = len(sessions(kg, s))
    error(create(kg, s, name="nope", password="not " + PASSWORD), 401, "invalid_credentials")
    assert len(sessions(kg, s)) == before and me(kg, s).status == 200
    # a taken name
    error(create(kg, s, name="below"), 409, "name_taken")


def test_an_api_token_cannot_do_what_needs_a_session(keygate):
    kg = keygate.start(**LIMITS)
    name = join(kg)
    s = login(kg, name)
    other = login(kg, name)
    tok = create(kg, s).json()["token"]
    for method, path, body in (("POST", "/tokens", {"name": "x", "current_password": PASSWORD}),
                               ("POST", "/password", {"current_password": PASSWORD,
                                                      "new_password": NEW_PASSWORD}),
                               ("GET", "/sessions", None),
                               ("DELETE", "/sessions/" + other.split(".")[0], None),
                               ("POST", "/logout", {"all": True})):
        r = kg.fcgi(method, path, body=body if body is not None else b"",
                    headers=bearer(tok), timeout=T)
        error(r, 403, "session_required")
    assert me(kg, other).status == 200 and me(kg, tok).status == 200
    # ending itself is allowed, both ways
    tok2 = create(kg, s, name="second").json()["token"]
    r = kg.fcgi("DELETE", "/sessions/" + tok2.split(".")[0], headers=bearer(tok2), timeout=T)
    assert r.status == 200 and me(kg, tok2).status == 401
    r = kg.fcgi("POST", "/logout", body={}, headers=bearer(tok), timeout=T)
    assert r.status == 200 and r.json()["key_removed"] is True and me(kg, tok).status == 401


def test_counted_apart_refused_past_the_cap(keygate):
    kg = keygate.start(**dict(LIMITS, max_api_tokens_per_user=2, max_tokens_per_user=1))
    name = join(kg)
    s = login(kg, name)
    a = create(kg, s, name="a").json()["token"]
    b = create(kg, s, name="b").json()["token"]
    error(create(kg, s, name="c"), 409, "too_many_tokens")
    # logins trim sessions only: the cap of one session leaves API tokens alone
    s2 = login(kg, name)
    assert me(kg, s).status == 401 and me(kg, s2).status == 200
    assert me(kg, a).status == 200 and me(kg, b).status == 200
    # revoking one makes room
    assert kg.fcgi("DELETE", "/sessions/" + a.split(".")[0], headers=bearer(s2),
                   timeout=T).status == 200
    assert create(kg, s2, name="c").status == 201


def test_logout_all_and_password_change(keygate):
    kg = keygate.start(**LIMITS)
    name = join(kg)
    s, s_other = login(kg, name), login(kg, name)
    api = create(kg, s).json()["token"]
    r = kg.fcgi("POST", "/logout", body={"all": True}, headers=bearer(s), timeout=T)
    assert r.status == 200 and r.json()["keys_removed"] == 2, r.text
    assert me(kg, s_other).status == 401 and me(kg, api).status == 200
    s = login(kg, name)
    r = kg.fcgi("POST", "/logout", body={"all": True, "include_api_tokens": True},
                headers=bearer(s), timeout=T)
    assert r.status == 200 and r.json()["keys_removed"] == 2, r.text
    assert me(kg, api).status == 401
    s, s_other = login(kg, name), login(kg, name)
    api = create(kg, s).json()["token"]
    api2 = create(kg, s, name="two").json()["token"]
    r = kg.fcgi("POST", "/password", headers=bearer(s), timeout=T,
                body={"current_password": PASSWORD, "new_password": NEW_PASSWORD})
    assert r.status == 200, r.text
    assert r.json()["keys_removed"] == 3 and r.json()["api_tokens_removed"] == 2, r.text
    for t in (s_other, api, api2):
        assert me(kg, t).status == 401
    assert me(kg, s).status == 200


def test_concurrent_creations_keep_the_cap_exactly(keygate, pg):
    """Eight creations at once, cap 3, many rounds: exactly 3 made, the rest
    409 too_many_tokens. The account's row lock orders them; each counts
    after the others committed (keygate_api_token_create)."""
    kg = keygate.start(workers=4, **dict(LIMITS, max_api_tokens_per_user=3))
    for rnd in range(ROUNDS):
        name = join(kg)
        s = login(kg, name)
        results = []
        lock = threading.Lock()
        go = threading.Barrier(8)

        def one(i):
            go.wait(T)
            r = create(kg, s, name="t%d" % i)
            with lock:
                results.append((r.status, r.json().get("error")))
        threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(T)
        made = [x for x in results if x[0] == 201]
        assert len(made) == 3, (rnd, results)
        assert sorted(results)[3:] == [(409, "too_many_tokens")] * 5, (rnd, results)
        live = pg.query("SELECT count(*) FROM api_keys k JOIN users u ON u.id = k.user_id"
                        " WHERE u.username = %s AND k.kind = 'api'", (name,))[0][0]
        assert live == 3, (rnd, live)


def test_no_creation_in_flight_outlives_a_password_change(keygate):
    """Creations race a password change through the API; many rounds. Every
    token a creation got that checked the old password must be refused once
    the change has answered: it was written under the API-token generation
    the change moved, or not at all."""
    kg = keygate.start(workers=4, **dict(LIMITS, max_api_tokens_per_user=1000))
    survivors, made = [], 0
    for rnd in range(ROUNDS):
        name = join(kg)
        owner = login(kg, name)
        makers = [login(kg, name) for _ in range(4)]
        got, lock, stop = [], threading.Lock(), threading.Event()

        def loop(sess, k):
            for i in range(40):
                if stop.is_set():
                    return
                r = create(kg, sess, name="r%d-%d-%d" % (rnd, k, i))
                if r.status == 201:
                    with lock:
                        got.append(r.json()["token"])
        threads = [threading.Thread(target=loop, args=(m, k), daemon=True)
                   for k, m in enumerate(makers)]
        for t in threads:
            t.start()
        time.sleep(0.05 + 0.05 * (rnd % 4))
        r = kg.fcgi("POST", "/password", headers=bearer(owner), timeout=T,
                    body={"current_password": PASSWORD, "new_password": NEW_PASSWORD})
        assert r.status == 200, r.text
        stop.set()
        for t in threads:
            t.join(T)
        with lock:
            made += len(got)
            survivors += [t for t in got if me(kg, t).status == 200]
    assert made > 0, "no creation succeeded: the race did not run"
    assert not survivors, "%d of %d API tokens outlived the password change" % (
        len(survivors), made)
