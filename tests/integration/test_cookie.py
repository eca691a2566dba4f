"""Browsers: cookie mode, the CSRF check and CORS.

Through lighttpd (a module stack with cookie_secure = 0 and two allowed
origins) and, for settings that need their own pool, straight over FastCGI:

- POST /login {"cookie": true}: the token in an HttpOnly, SameSite=Strict
  cookie with Path = the API mount and Max-Age = the token's lifetime
  (Secure unless cookie_secure = 0), and no secret or token in the body;
  refused (403 csrf_failed) from a foreign Origin;
- the cookie authenticates when nothing else is presented; two cookies of
  our name are 400;
- cookie-authenticated POST/DELETE need an allowed Origin, or without Origin
  an allowed Referer or X-Requested-With, else 403 csrf_failed (and nothing
  happens); GET needs none; header-token clients are never CSRF-checked;
- logout clears the cookie (Max-Age=0) whenever the request carried it, and
  the token is dead afterwards;
- CORS: Access-Control-Allow-Origin (never "*", never with credentials) only
  for allowed origins; preflights from them get 204, others 403.

Requests are sent without a cookie jar: every Cookie header is explicit.
"""

import json
import re
import uuid

import pytest
import requests

import kgharness

TIMEOUT = 20
COOKIE = "keygate_token"
APP = "http://app.example"
DEV = "http://127.0.0.1:8080"
ORIGINS = APP + " " + DEV
EVIL = "http://evil.example"
TOKEN_RE = re.compile(r"^kg_1_[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{49}$")
REALM = 'Bearer realm="keygate"'
TOKEN_LIFETIME = 43200
REMEMBER_LIFETIME = 2592000
ALLOW_HEADERS = "Authorization, Content-Type, Key, Secret, X-Requested-With"

RELAXED = {
    "login_max_failures": 1000,
    "login_max_per_address": 1000000,
    "join_max_per_address": 1000000,
}
BROWSER = dict(RELAXED, cookie_secure=0, allowed_origins=ORIGINS)


@pytest.fixture(scope="module")
def st(pg_session, kg_workdir):
    """PostgreSQL + keygate (cookie_secure = 0, allowed_origins = ORIGINS) + lighttpd."""
    with kgharness.stack_context(pg_session, kg_workdir, **BROWSER) as s:
        yield s


# ---------------------------------------------------------------------------
# helpers


def call(st, method, path, body=None, headers=None, cookie=None):
    """One request to the API; body (dict) is sent as JSON; cookie is the
    value of our cookie or a whole Cookie header (when it contains '=')."""
    h = dict(headers or {})
    if cookie is not None:
        h["Cookie"] = cookie if "=" in cookie else "%s=%s" % (COOKIE, cookie)
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        h.setdefault("Content-Type", "application/json")
    return requests.request(method, st.base + path, data=data, headers=h, timeout=TIMEOUT)


def fcgi(kg, method, path, body=None, headers=None, cookie=None):
    """The same, straight to a keygate pool over FastCGI."""
    h = dict(headers or {})
    if cookie is not None:
        h["Cookie"] = cookie if "=" in cookie else "%s=%s" % (COOKIE, cookie)
    return kg.fcgi(method, path, headers=h, body=body if body is not None else b"")


def status(r):
    return getattr(r, "status_code", None) or r.status


def header(r, name):
    if hasattr(r, "header"):
        return r.header(name)
    return r.headers.get(name)


def set_cookies(r):
    """Every Set-Cookie header of r (requests or FCGIResponse)."""
    if hasattr(r, "raw"):
        return r.raw.headers.getlist("Set-Cookie")
    return [v for k, v in r.headers if k.lower() == "set-cookie"]


def parse_cookie(value):
    """'n=v; Path=/api; Max-Age=1; HttpOnly' -> (n, v, {path:..., max-age:...}, {httponly})."""
    parts = [p.strip() for p in value.split(";")]
    name, _, val = parts[0].partition("=")
    attrs, flags = {}, set()
    for p in parts[1:]:
        if not p:
            continue
        k, eq, v = p.partition("=")
        if eq:
            attrs[k.strip().lower()] = v.strip()
        else:
            flags.add(k.strip().lower())
    return name, val, attrs, flags


def body_of(r):
    b = r.json()
    assert isinstance(b, dict) and isinstance(b.get("success"), bool), b
    return b


def ok(r, code=200):
    assert status(r) == code, (status(r), r.text)
    b = body_of(r)
    assert b["success"] is True, b
    return b


def err(r, code, error):
    assert status(r) == code, (status(r), r.text)
    b = body_of(r)
    assert b["success"] is False and b["error"] == error, b
    assert isinstance(b.get("message"), str) and b["message"], b
    return b


def uname(prefix="ck"):
    return "%s_%s" % (prefix, uuid.uuid4().hex[:16])


def pword():
    return "cookie pw %s !" % uuid.uuid4().hex


def join(st, username=None, password=None):
    username, password = username or uname(), password or pword()
    b = ok(call(st, "POST", "/join", {"username": username, "password": password}), 201)
    return username, password, b["user_id"]


def cookie_login(st, username, password, headers=None, **extra):
    """POST /login in cookie mode; returns (response, token from the cookie, body)."""
    body = {"username": username, "password": password, "cookie": True}
    body.update(extra)
    r = call(st, "POST", "/login", body, headers=headers)
    b = ok(r)
    cs = set_cookies(r)
    assert len(cs) == 1, cs
    name, token, _, _ = parse_cookie(cs[0])
    assert name == COOKIE and TOKEN_RE.match(token), cs
    return r, token, b


def header_login(st, username, password):
    r = call(st, "POST", "/login", {"username": username, "password": password})
    assert set_cookies(r) == [], r.headers
    return ok(r)


def browser_user(st):
    """A fresh user with a cookie session and a header-token session:
    (username, password, user_id, cookie token, header login body)."""
    username, password, uid = join(st)
    _, token, _ = cookie_login(st, username, password)
    other = header_login(st, username, password)
    return username, password, uid, token, other


def bearer(token):
    return {"Authorization": "Bearer " + token}


def alive(st, token):
    """Does token still authenticate (checked with the Bearer header)?"""
    r = call(st, "GET", "/me", headers=bearer(token))
    assert status(r) in (200, 401), (status(r), r.text)
    return status(r) == 200


def assert_cleared(r):
    cs = set_cookies(r)
    assert len(cs) == 1, cs
    name, val, attrs, flags = parse_cookie(cs[0])
    assert name == COOKIE and val == "", cs
    assert attrs.get("max-age") == "0", cs
    assert attrs.get("path") == "/api", cs
    assert {"httponly"} <= flags and attrs.get("samesite") == "Strict", cs


def assert_no_cors(r):
    for h in ("Access-Control-Allow-Origin", "Access-Control-Allow-Credentials",
              "Access-Control-Allow-Methods", "Access-Control-Allow-Headers"):
        assert header(r, h) is None, (h, r.headers)


def assert_cors(r, origin):
    assert header(r, "Access-Control-Allow-Origin") == origin, r.headers
    assert "origin" in [v.strip().lower() for v in (header(r, "Vary") or "").split(",")], r.headers
    assert header(r, "Access-Control-Allow-Credentials") is None, r.headers


# ---------------------------------------------------------------------------
# cookie mode: the login


def test_cookie_login_sets_httponly_cookie_and_no_secret(st):
    username, password, uid = join(st)
    r, token, b = cookie_login(st, username, password)
    name, val, attrs, flags = parse_cookie(set_cookies(r)[0])
    assert attrs == {"path": "/api", "max-age": str(TOKEN_LIFETIME), "samesite": "Strict"}, attrs
    assert flags == {"httponly"}, flags          # cookie_secure = 0: no Secure
    # the body: who and until when, but nothing that authenticates
    assert b["user_id"] == uid, b
    assert "secret" not in b and "token" not in b, b
    assert token.startswith(b["key"] + "."), (token, b)
    assert token.split(".")[1] not in r.text, r.text
    for k in ("expires_at", "idle_timeout", "scopes"):
        assert k in b, b
    assert b["scopes"] == ["*"], b
    assert r.headers.get("Cache-Control") == "no-store", r.headers


def test_cookie_login_remember_lives_as_long_as_the_token(st):
    username, password, _ = join(st)
    r, _, b = cookie_login(st, username, password, remember=True)
    _, _, attrs, _ = parse_cookie(set_cookies(r)[0])
    assert attrs["max-age"] == str(REMEMBER_LIFETIME), attrs
    assert "secret" not in b and "token" not in b, b


def test_plain_login_is_unchanged(st):
    username, password, _ = join(st)
    for extra in ({}, {"cookie": False}):
        r = call(st, "POST", "/login", dict(username=username, password=password, **extra))
        b = ok(r)
        assert set_cookies(r) == [], r.headers
        assert b["token"] == b["key"] + "." + b["secret"], b


def test_cookie_flag_must_be_a_boolean(st):
    username, password, _ = join(st)
    r = call(st, "POST", "/login", {"username": username, "password": password, "cookie": "yes"})
    b = err(r, 400, "invalid_request")
    assert b["fields"] == {"cookie": "wrong_type"}, b
    assert set_cookies(r) == []


def test_cookie_login_from_a_foreign_origin_is_refused(st):
    username, password, uid = join(st)
    before = st.pg.query("SELECT count(*) FROM api_keys WHERE user_id = %s", (uid,))[0][0]
    for origin in (EVIL, "null", APP + ".evil.example", APP + ":8443"):
        r = call(st, "POST", "/login", {"username": username, "password": password,
                                        "cookie": True}, headers={"Origin": origin})
        err(r, 403, "csrf_failed")
        assert set_cookies(r) == [], (origin, r.headers)
        assert_no_cors(r)
    after = st.pg.query("SELECT count(*) FROM api_keys WHERE user_id = %s", (uid,))[0][0]
    assert after == before, "a refused cookie login issued a token"
    # from an allowed origin, or without Origin (a same-origin page may omit it)
    for h in ({"Origin": APP}, {"Origin": DEV}, {}):
        r, _, _ = cookie_login(st, username, password, headers=h)
        if h:
            assert_cors(r, h["Origin"])
    # a header-token client on another origin is not a browser session: allowed
    r = call(st, "POST", "/login", {"username": username, "password": password},
             headers={"Origin": EVIL})
    assert "secret" in ok(r), r.text
    assert_no_cors(r)


# ---------------------------------------------------------------------------
# cookie authentication


def test_cookie_authenticates_get_me_and_sessions(st):
    username, password, uid = join(st)
    _, token, b = cookie_login(st, username, password)
    me = ok(call(st, "GET", "/me", cookie=token))
    assert me["user_id"] == uid and me["username"] == username, me
    sessions = ok(call(st, "GET", "/sessions", cookie=token))["sessions"]
    current = [s for s in sessions if s["current"]]
    assert len(current) == 1 and current[0]["key"] == b["key"], sessions
    # GET is not state-changing: no CSRF check, whatever the Origin (but no CORS)
    r = call(st, "GET", "/me", cookie=token, headers={"Origin": EVIL})
    assert ok(r)["user_id"] == uid
    assert_no_cors(r)
    # the cookie among others
    r = call(st, "GET", "/me", cookie="theme=dark; %s=%s; lang=en" % (COOKIE, token))
    assert ok(r)["user_id"] == uid


def test_bad_or_missing_cookie_is_401(st):
    username, password, _ = join(st)
    _, token, _ = cookie_login(st, username, password)
    tampered = token[:-1] + ("A" if token[-1] != "A" else "B")
    for value in (tampered, "garbage", "", "kg_1_" + "A" * 22 + "." + "B" * 49, token + "x"):
        r = call(st, "GET", "/me", cookie="%s=%s" % (COOKIE, value))
        err(r, 401, "invalid_token")
        assert r.headers["WWW-Authenticate"] == REALM + ', error="invalid_token"', (value, r.headers)
    # someone else's cookie name is no token at all
    r = call(st, "GET", "/me", cookie="other_cookie=%s" % token)
    err(r, 401, "invalid_token")
    assert r.headers["WWW-Authenticate"] == REALM, r.headers


def test_two_cookies_of_our_name_are_400(st):
    username, password, _ = join(st)
    _, t1, _ = cookie_login(st, username, password)
    _, t2, _ = cookie_login(st, username, password)
    for hdr in ("%s=%s; %s=%s" % (COOKIE, t1, COOKIE, t2),
                "%s=%s; %s=%s" % (COOKIE, t1, COOKIE, t1),
                "a=1; %s=%s; b=2; %s=garbage" % (COOKIE, t1, COOKIE)):
        err(call(st, "GET", "/me", cookie=hdr), 400, "invalid_request")
        r = call(st, "POST", "/logout", cookie=hdr, headers={"X-Requested-With": "fetch"})
        assert status(r) == 400, (status(r), r.text)
    assert alive(st, t1) and alive(st, t2)


def test_another_credential_wins_over_the_cookie(st):
    ua, pa, uida = join(st)
    ub, pb, uidb = join(st)
    a = header_login(st, ua, pa)
    _, cookie_b, _ = cookie_login(st, ub, pb)
    # the Bearer token is the credential; a broken cookie beside it is ignored
    assert ok(call(st, "GET", "/me", headers=bearer(a["token"]), cookie="junk"))["user_id"] == uida
    assert ok(call(st, "GET", "/me", headers=bearer(a["token"]), cookie=cookie_b))["user_id"] == uida
    assert ok(call(st, "GET", "/me", headers={"Key": a["key"], "Secret": a["secret"]},
                   cookie=cookie_b))["user_id"] == uida


# ---------------------------------------------------------------------------
# the CSRF check

# (extra request headers, expected status) for a cookie-authenticated DELETE
CSRF_CASES = [
    ({}, 403),                                                  # nothing: a cross-site form?
    ({"Origin": EVIL}, 403),
    ({"Origin": "null"}, 403),                                  # sandboxed/opaque origin
    ({"Origin": EVIL, "X-Requested-With": "fetch"}, 403),       # a foreign Origin always loses
    ({"Origin": EVIL, "Referer": APP + "/page"}, 403),
    ({"Origin": APP + "/"}, 403),                               # exact match only
    ({"Origin": "http://127.0.0.1:8081"}, 403),
    ({"Origin": "https://app.example"}, 403),
    ({"Origin": APP + ".evil.example"}, 403),
    ({"Referer": EVIL + "/"}, 403),
    ({"Referer": APP + ".evil.example/x"}, 403),                # prefix of another host
    ({"Referer": EVIL + "/?r=" + APP + "/"}, 403),
    ({"Origin": APP}, 200),
    ({"Origin": DEV}, 200),
    ({"X-Requested-With": "fetch"}, 200),
    ({"X-Requested-With": "XMLHttpRequest"}, 200),
    ({"Referer": APP + "/account/settings?x=1"}, 200),
    ({"Referer": DEV + "/"}, 200),
    ({"Referer": APP}, 200),
]


@pytest.mark.parametrize("headers,expected", CSRF_CASES,
                         ids=["%s-%d" % ("+".join("%s=%s" % kv for kv in h.items()) or "none", e)
                              for h, e in CSRF_CASES])
def test_csrf_check_on_cookie_delete(st, headers, expected):
    _, _, _, token, other = browser_user(st)
    r = call(st, "DELETE", "/sessions/" + other["key"], cookie=token, headers=headers)
    if expected == 200:
        assert ok(r)["key_removed"] is True
        assert not alive(st, other["token"])
    else:
        err(r, 403, "csrf_failed")
        assert alive(st, other["token"]), "a refused request revoked the session"
        assert set_cookies(r) == [], r.headers
    assert alive(st, token)


def test_csrf_check_on_cookie_password_change(st):
    username, password, _, token, other = browser_user(st)
    new = pword()
    body = {"current_password": password, "new_password": new}
    for h in ({}, {"Origin": EVIL}, {"Referer": EVIL + "/x"}):
        err(call(st, "POST", "/password", body, cookie=token, headers=h), 403, "csrf_failed")
    # nothing changed: the old password logs in, the other session lives
    header_login(st, username, password)
    assert alive(st, other["token"])
    b = ok(call(st, "POST", "/password", body, cookie=token, headers={"Origin": APP}))
    assert b["keys_removed"] >= 2, b                 # `other` and the login just above
    assert not alive(st, other["token"]) and alive(st, token)
    header_login(st, username, new)


def test_csrf_check_on_cookie_logout_all(st):
    _, _, _, token, other = browser_user(st)
    r = call(st, "POST", "/logout", {"all": True}, cookie=token, headers={"Origin": EVIL})
    err(r, 403, "csrf_failed")
    assert set_cookies(r) == [], "a refused logout cleared the cookie"
    assert alive(st, token) and alive(st, other["token"])
    r = call(st, "POST", "/logout", {"all": True}, cookie=token, headers={"Origin": DEV})
    assert ok(r)["keys_removed"] == 2
    assert_cleared(r)
    assert_cors(r, DEV)
    assert not alive(st, token) and not alive(st, other["token"])


def test_header_token_clients_are_not_csrf_checked(st):
    username, password, _ = join(st)
    evil = {"Origin": EVIL, "Referer": EVIL + "/"}
    a = header_login(st, username, password)
    b = header_login(st, username, password)
    c = header_login(st, username, password)
    d = header_login(st, username, password)
    # Authorization: Bearer, from a foreign origin, no custom header
    r = call(st, "DELETE", "/sessions/" + b["key"], headers=dict(evil, **bearer(a["token"])))
    assert ok(r)["key_removed"] is True
    assert_no_cors(r)
    # Key/Secret headers
    r = call(st, "POST", "/logout", headers=dict(evil, Key=c["key"], Secret=c["secret"]))
    assert ok(r)["key_removed"] is True
    # key/secret in the body, the original client's logout
    r = call(st, "POST", "/logout", {"key": d["key"], "secret": d["secret"]}, headers=evil)
    assert ok(r)["key_removed"] is True
    # a Bearer token with a (stale) cookie beside it: the token decides, no CSRF check
    _, cookie, _ = cookie_login(st, username, password)
    r = call(st, "POST", "/logout", headers=dict(evil, **bearer(a["token"])), cookie=cookie)
    assert ok(r)["key_removed"] is True
    assert not alive(st, a["token"]) and alive(st, cookie)


# ---------------------------------------------------------------------------
# logout


def test_logout_clears_the_cookie_and_kills_the_token(st):
    _, _, _, token, other = browser_user(st)
    r = call(st, "POST", "/logout", cookie=token, headers={"X-Requested-With": "fetch"})
    assert ok(r)["key_removed"] is True
    assert_cleared(r)
    assert not alive(st, token) and alive(st, other["token"])
    r = call(st, "GET", "/me", cookie=token)
    err(r, 401, "invalid_token")
    assert 'error="invalid_token"' in r.headers["WWW-Authenticate"]
    # logging out with the dead cookie: 401, and the cookie is cleared again
    r = call(st, "POST", "/logout", cookie=token, headers={"Origin": APP})
    b = err(r, 401, "invalid_token")
    assert b["key_removed"] is False, b
    assert_cleared(r)
    # a garbage cookie is cleared too
    assert_cleared(call(st, "POST", "/logout", cookie="garbage", headers={"Origin": APP}))


def test_logout_refused_by_csrf_keeps_cookie_and_session(st):
    _, _, _, token, _ = browser_user(st)
    for h in ({}, {"Origin": EVIL}, {"Referer": EVIL + "/"}):
        r = call(st, "POST", "/logout", cookie=token, headers=h)
        err(r, 403, "csrf_failed")
        assert set_cookies(r) == [], (h, r.headers)
    assert alive(st, token)


def test_logout_without_cookie_sets_no_cookie(st):
    username, password, _ = join(st)
    a = header_login(st, username, password)
    r = call(st, "POST", "/logout", headers=bearer(a["token"]))
    ok(r)
    assert set_cookies(r) == []
    r = call(st, "POST", "/logout")
    err(r, 401, "invalid_token")
    assert set_cookies(r) == []


# ---------------------------------------------------------------------------
# CORS


@pytest.mark.parametrize("origin", [APP, DEV])
def test_preflight_from_an_allowed_origin(st, origin):
    for path, method in (("/login", "POST"), ("/me", "GET"),
                         ("/sessions/kg_1_AAAAAAAAAAAAAAAAAAAAAA", "DELETE")):
        r = call(st, "OPTIONS", path, headers={
            "Origin": origin, "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": "authorization, content-type"})
        assert r.status_code == 204, (path, r.status_code, r.text)
        assert r.content == b"", r.content
        assert_cors(r, origin)
        assert r.headers["Access-Control-Allow-Methods"] == "GET, POST, DELETE", r.headers
        assert r.headers["Access-Control-Allow-Headers"] == ALLOW_HEADERS, r.headers
        assert r.headers["Access-Control-Max-Age"] == "600", r.headers


@pytest.mark.parametrize("headers", [
    {"Origin": EVIL, "Access-Control-Request-Method": "POST"},
    {"Origin": "null", "Access-Control-Request-Method": "POST"},
    {"Origin": APP + ".evil.example", "Access-Control-Request-Method": "POST"},
    {"Origin": APP + "/", "Access-Control-Request-Method": "POST"},
    {"Access-Control-Request-Method": "POST"},
], ids=["foreign", "null", "suffix", "slash", "no-origin"])
def test_preflight_refused(st, headers):
    r = call(st, "OPTIONS", "/login", headers=headers)
    err(r, 403, "forbidden")
    assert_no_cors(r)
    assert header(r, "Access-Control-Max-Age") is None


def test_options_without_request_method_is_no_preflight(st):
    r = call(st, "OPTIONS", "/login", headers={"Origin": APP})
    err(r, 403, "forbidden")
    # an answer to an allowed origin like any other, but it allows nothing
    assert_cors(r, APP)
    for h in ("Access-Control-Allow-Methods", "Access-Control-Allow-Headers",
              "Access-Control-Max-Age"):
        assert header(r, h) is None, (h, r.headers)


def test_acao_only_for_allowed_origins(st):
    username, password, _ = join(st)
    tok = header_login(st, username, password)["token"]
    requests_to_try = [
        ("GET", "/health", None, {}),                                     # 200
        ("GET", "/me", None, bearer(tok)),                                # 200
        ("GET", "/me", None, {}),                                         # 401
        ("POST", "/login", {"username": username, "password": "wrong password here"}, {}),  # 401
        ("POST", "/join", {}, {}),                                        # 400
        ("GET", "/nowhere", None, {}),                                    # 404
        ("PUT", "/me", None, {}),                                         # 405
    ]
    seen = set()
    for method, path, body, h in requests_to_try:
        for origin in (APP, DEV):
            r = call(st, method, path, body, headers=dict(h, Origin=origin))
            seen.add(r.status_code)
            assert_cors(r, origin)
        for origin in (EVIL, "null", APP.upper(), DEV + "/", None):
            r = call(st, method, path, body, headers=dict(h, Origin=origin) if origin else h)
            assert_no_cors(r)
    assert {200, 400, 401, 404, 405} <= seen, seen


# ---------------------------------------------------------------------------
# settings: Secure, the cookie's name and path, no allowed origins


def test_secure_by_default_custom_name_and_path(keygate):
    kg = keygate.start(workers=1, cookie_name="sid", base_path="/auth", **RELAXED)
    username, password = uname(), pword()
    ok(fcgi(kg, "POST", "/join", {"username": username, "password": password}), 201)
    r = fcgi(kg, "POST", "/login", {"username": username, "password": password, "cookie": True})
    b = ok(r)
    assert "secret" not in b and "token" not in b, b
    cs = set_cookies(r)
    assert len(cs) == 1, cs
    name, token, attrs, flags = parse_cookie(cs[0])
    assert name == "sid" and TOKEN_RE.match(token), cs
    assert flags == {"httponly", "secure"}, cs
    assert attrs == {"path": "/auth", "max-age": str(TOKEN_LIFETIME), "samesite": "Strict"}, cs
    assert ok(fcgi(kg, "GET", "/me", cookie="sid=" + token))["username"] == username
    # the default name means nothing to this pool
    r = fcgi(kg, "GET", "/me", cookie=token)
    err(r, 401, "invalid_token")
    assert r.header("WWW-Authenticate") == REALM
    r = fcgi(kg, "POST", "/logout", cookie="sid=" + token, headers={"X-Requested-With": "x"})
    ok(r)
    name, val, attrs, flags = parse_cookie(set_cookies(r)[0])
    assert (name, val, attrs["max-age"], attrs["path"]) == ("sid", "", "0", "/auth"), attrs
    assert {"httponly", "secure"} <= flags


def test_no_allowed_origins_means_no_cross_origin_at_all(keygate):
    kg = keygate.start(workers=1, cookie_secure=0, **RELAXED)     # allowed_origins empty
    username, password = uname(), pword()
    ok(fcgi(kg, "POST", "/join", {"username": username, "password": password}), 201)
    body = {"username": username, "password": password, "cookie": True}
    err(fcgi(kg, "POST", "/login", body, headers={"Origin": DEV}), 403, "csrf_failed")
    r = fcgi(kg, "POST", "/login", body)
    ok(r)
    _, token, _, flags = parse_cookie(set_cookies(r)[0])
    assert "secure" not in flags
    for origin in (DEV, APP):
        err(fcgi(kg, "POST", "/logout", cookie=token, headers={"Origin": origin}), 403, "csrf_failed")
        r = fcgi(kg, "OPTIONS", "/login", headers={"Origin": origin,
                                                  "Access-Control-Request-Method": "POST"})
        err(r, 403, "forbidden")
        assert_no_cors(r)
        r = fcgi(kg, "GET", "/health", headers={"Origin": origin})
        assert r.status == 200
        assert_no_cors(r)
    # a same-origin page's fetch without Origin, with the custom header: fine
    r = fcgi(kg, "POST", "/logout", cookie=token, headers={"X-Requested-With": "fetch"})
    assert ok(r)["key_removed"] is True
    assert_cleared(r)
