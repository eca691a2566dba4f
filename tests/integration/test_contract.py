"""The API contract as a client reads it, through the
shipped lighttpd snippet (the `stack` fixture):

  - every 400 invalid_request about a body field names it in `fields`,
    half a key/secret pair included;
  - credentials presented in more than one way are 400, for every
    combination with a username/password login too; keygate's cookie is
    not a second way for a password login (a browser sends a leftover one
    on its own);
  - JSON replies say charset=utf-8, and carry Pragma: no-cache beside
    Cache-Control: no-store.
"""

import json
import uuid

import pytest

TIMEOUT = 60


def uname():
    return "c_" + uuid.uuid4().hex[:16]


def pword():
    return "contract %s phrase" % uuid.uuid4().hex


def post(stack, path, body=None, headers=None, raw=None):
    h = dict(headers or {})
    data = raw
    if body is not None:
        data = json.dumps(body).encode()
    if data is not None:
        h.setdefault("Content-Type", "application/json")
    return stack.http.post(stack.url(path), data=data, headers=h, timeout=TIMEOUT)


def err(r, status, code, fields=None):
    assert r.status_code == status, (r.status_code, r.text)
    b = r.json()
    assert b["success"] is False and b["error"] == code, b
    if fields is not None:
        assert b.get("fields") == fields, b
    return b


@pytest.fixture(scope="module")
def user(stack):
    name, pw = uname(), pword()
    r = post(stack, "/join", {"username": name, "password": pw})
    assert r.status_code == 201, r.text
    return name, pw


def login(stack, user):
    r = post(stack, "/login", {"username": user[0], "password": user[1]})
    assert r.status_code == 200, r.text
    return r.json()


def live(stack, token):
    return stack.http.get(stack.url("/me"), headers={"Authorization": "Bearer " + token},
                          timeout=TIMEOUT).status_code == 200


# ---------------------------------------------------------------------------
# fields on invalid_request


@pytest.mark.parametrize("path", ["/login", "/logout"])
def test_half_a_key_secret_pair_names_the_missing_field(stack, user, path):
    b = login(stack, user)
    key, secret = b["key"], b["secret"]
    cases = [
        ({"key": key}, {"secret": "required"}),
        ({"key": key, "secret": None}, {"secret": "required"}),
        ({"secret": secret}, {"key": "required"}),
        ({"key": None, "secret": secret}, {"key": "required"}),
    ]
    for body, fields in cases:
        err(post(stack, path, body), 400, "invalid_request", fields)
    # also beside a token header: still the body's missing field
    err(post(stack, path, {"key": key}, headers={"Authorization": "Bearer " + b["token"]}),
        400, "invalid_request", {"secret": "required"})
    assert live(stack, b["token"])          # nothing was logged out


# ---------------------------------------------------------------------------
# one way of presenting credentials


def ways(b):
    """Every way of presenting a token other than the cookie, as
    (name, extra body fields, headers)."""
    return {
        "bearer": ({}, {"Authorization": "Bearer " + b["token"]}),
        "key/secret headers": ({}, {"Key": b["key"], "Secret": b["secret"]}),
        "key header alone": ({}, {"Key": b["key"]}),
        "secret header alone": ({}, {"Secret": b["secret"]}),
        "malformed authorization": ({}, {"Authorization": "Basic dXNlcjpwYXNzd29yZA=="}),
        "body key/secret": ({"key": b["key"], "secret": b["secret"]}, {}),
    }


def test_password_login_with_any_second_way_is_refused(stack, user):
    """username/password plus any token way: 400, and no token issued."""
    b = login(stack, user)
    before = len(stack.http.get(stack.url("/sessions"),
                                headers={"Authorization": "Bearer " + b["token"]},
                                timeout=TIMEOUT).json()["sessions"])
    table = {}
    for name, (extra, headers) in ways(b).items():
        body = {"username": user[0], "password": user[1]}
        body.update(extra)
        r = post(stack, "/login", body, headers=headers)
        table[name] = (r.status_code, r.json().get("error"), "secret" in r.json())
    assert all(v == (400, "invalid_request", False) for v in table.values()), table
    after = len(stack.http.get(stack.url("/sessions"),
                               headers={"Authorization": "Bearer " + b["token"]},
                               timeout=TIMEOUT).json()["sessions"])
    assert after == before
    assert live(stack, b["token"])


def test_token_ways_two_at_a_time_are_refused(stack, user):
    """Every pair of token ways on the token endpoints: 400."""
    b = login(stack, user)
    w = {k: v for k, v in ways(b).items()
         if k in ("bearer", "key/secret headers", "body key/secret")}
    table = {}
    names = list(w)
    for i, first in enumerate(names):
        for second in names[i + 1:]:
            body = dict(w[first][0], **w[second][0])
            headers = dict(w[first][1], **w[second][1])
            for path in ("/login", "/logout"):
                r = post(stack, path, body or None, headers=headers)
                table[(path, first, second)] = r.status_code
            if not body:
                r = stack.http.get(stack.url("/me"), headers=headers, timeout=TIMEOUT)
                table[("/me", first, second)] = r.status_code
    assert table and all(v == 400 for v in table.values()), table
    assert live(stack, b["token"])


def test_each_way_alone_still_works(stack, user):
    b = login(stack, user)
    for name in ("bearer", "key/secret headers", "body key/secret"):
        extra, headers = ways(b)[name]
        r = post(stack, "/login", extra or None, headers=headers)
        assert r.status_code == 200 and r.json()["success"] is True, (name, r.text)


def test_password_login_with_a_leftover_cookie_works(stack, user):
    """A browser logging in again sends its old cookie on its own: the
    cookie is not a second way for a password login (API.md)."""
    old = login(stack, user)
    r = post(stack, "/login", {"username": user[0], "password": user[1]},
             headers={"Cookie": "keygate_token=" + old["token"]})
    assert r.status_code == 200, r.text
    assert r.json()["token"] != old["token"]


# ---------------------------------------------------------------------------
# response headers


def test_json_replies_say_charset_and_pragma(stack, user):
    b = login(stack, user)
    replies = {
        "login 200": post(stack, "/login", {"username": user[0], "password": user[1]}),
        "token login 200": post(stack, "/login", {"key": b["key"], "secret": b["secret"]}),
        "health 200": stack.http.get(stack.url("/health"), timeout=TIMEOUT),
        "me 401": stack.http.get(stack.url("/me"), timeout=TIMEOUT),
        "404": stack.http.get(stack.url("/no/such"), timeout=TIMEOUT),
        "405": stack.http.get(stack.url("/login"), timeout=TIMEOUT),
        "400 invalid_json": post(stack, "/login", raw=b"{"),
        "415": post(stack, "/login", raw=b"{}", headers={"Content-Type": "text/plain"}),
        "401 invalid_credentials": post(stack, "/login",
                                        {"username": user[0], "password": pword()}),
    }
    bad = {}
    for name, r in replies.items():
        r.json()
        if (r.headers.get("Content-Type") != "application/json; charset=utf-8" or
                r.headers.get("Pragma") != "no-cache" or
                r.headers.get("Cache-Control") != "no-store"):
            bad[name] = dict(r.headers)
    assert not bad, bad
