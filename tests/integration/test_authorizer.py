"""/private/ guarded by keygate in the FastCGI AUTHORIZER role, behind each
web server keygate ships a snippet for: lighttpd (keygate-authorizer.conf
beside the pool's keygate.conf) and Apache (mod_fcgid's FcgidAccessChecker
in keygate.conf). Every test runs against both, so the two fronts keep the
same promises:

  - a valid token (Bearer, or Key and Secret) is served the file, and
    keygate's own headers stay between keygate and the web server;
  - no token, a malformed or unknown one, a POST with a body: 401, never
    the file, for every path under /private/;
  - a token stops working the moment its session ends (logout, or
    DELETE /sessions/{key} from another session);
  - the program behind the folder sees keygate's KEYGATE_* variables and
    never ones a client sent, and the longest scope set reaches it whole;
  - with the database down, or a keygate that cannot start, the file is
    never served.

The snippets are included as shipped, with only their installation paths
replaced (webservers.py). A CGI program in the private folder echoes the
request variables it gets, standing for the protected application. What
only one server has (lighttpd spawning keygate, mod_fcgid's process model,
mod_proxy_fcgi, installing the snippets) is in test_lighttpd.py and
test_apache.py.
"""

import pytest
import requests

import kgharness as kh
import webservers as ws
from webservers import assert_refused, bearer

SERVERS = ws.SERVERS
FORGED_TOKEN = "kg_1_" + "A" * 22 + "." + "B" * 49


@pytest.fixture(scope="module", params=SERVERS)
def site(request, pg_session, kg_workdir, servers):
    """One site per server for the module: lighttpd in front of a keygate
    pool, or Apache starting keygate through mod_fcgid."""
    with ws.module_site(request.param, servers, pg_session, kg_workdir) as s:
        yield s


def test_private_served_with_valid_token(site):
    _, _, b = site.api.session()
    for h in (bearer(b["token"]), {"Key": b["key"], "Secret": b["secret"]}):
        r = site.get("/private/secret.txt", headers=h)
        assert r.status_code == 200, (r.status_code, r.text[:300])
        assert r.text == site.files["secret.txt"]
        assert r.headers["Content-Type"].startswith("text/plain"), r.headers
        # nothing secret reaches the client in a header
        assert not [v for v in r.headers.values()
                    if b["secret"] in v or b["token"] in v], r.headers
        if site.kind == "lighttpd":
            # keygate's own headers stay between keygate and lighttpd;
            # Apache sends them on (Variable-* included: DEPLOYMENT.md),
            # so keygate puts nothing secret in them
            for name in ("Variable-KEYGATE_USER_ID", "WWW-Authenticate", "Cache-Control"):
                assert name not in r.headers, r.headers
        r = site.get("/private/sub/deep.txt", headers=h)
        assert r.status_code == 200 and r.text == site.files["sub/deep.txt"], r.text[:300]
        r = site.get("/private/noext", headers=h)
        assert r.status_code == 200 and r.text == site.files["noext"], r.text[:300]
        # the file's own type, not keygate's JSON
        assert not r.headers.get("Content-Type", "").startswith("application/json"), r.headers
    # an allowed request for a missing file is the web server's 404
    r = site.get("/private/no-such-file", headers=bearer(b["token"]))
    assert r.status_code == 404, r.status_code


def test_private_refused_without_token(site):
    secret = site.files["secret.txt"]
    for path in ("/private/secret.txt", "/private/", "/private/sub/deep.txt",
                 "/private/no-such-file", "/private/whoami.cgi", "/private/noext",
                 "/private/%73ecret.txt", "/private/sub/../secret.txt"):
        site.assert_401(site.get(path), secret)
    # a malformed or unknown token is no better
    for h in ({"Authorization": "Bearer nonsense"},
              {"Authorization": "Basic dXNlcjpwYXNz"},
              bearer(FORGED_TOKEN),
              {"Key": "kg_1_" + "A" * 22, "Secret": "B" * 49}):
        site.assert_401(site.get("/private/secret.txt", headers=h), secret)
    # POST with a body: the authorizer never gets the body, still refuses
    r = requests.post(site.web.url + "/private/secret.txt", data=b"x" * 100000,
                      timeout=ws.TIMEOUT)
    site.assert_401(r, secret)


def test_private_refused_after_logout_and_session_delete(site):
    ws.check_refused_after_logout_and_session_delete(site, site.assert_401)


def test_backend_sees_keygate_variables(site):
    ws.check_backend_sees_keygate_variables(site)


def test_longest_scopes_reach_backend(site):
    ws.check_longest_scopes_delivered(site)


@pytest.mark.parametrize("server", SERVERS)
def test_database_down_never_the_file(server, pg, kg_workdir, keygate, fresh_servers):
    s = ws.start_site(server, fresh_servers, keygate, kg_workdir, pg)
    _, _, b = s.api.session()
    secret = s.files["secret.txt"]
    assert s.get("/private/secret.txt", headers=bearer(b["token"])).status_code == 200
    pg.stop()
    try:
        for h in (bearer(b["token"]), {"Key": b["key"], "Secret": b["secret"]}, {}):
            r = s.get("/private/secret.txt", headers=h)
            assert_refused(r, secret, statuses=(401, 503))
            if r.status_code == 503:
                assert r.headers.get("Retry-After", "").isdigit(), r.headers
        r = s.get("/private/whoami.cgi", headers=bearer(b["token"]))
        assert_refused(r, "KEYGATE_USER_ID", statuses=(401, 503))
        r = s.api.me(b["token"])
        assert r.status_code == 503 and r.headers.get("Retry-After", "").isdigit(), r.headers
    finally:
        pg.start()

    # and back once the database is
    def served():
        return s.get("/private/secret.txt", headers=bearer(b["token"])).status_code == 200
    kh.wait_until(served, 20, interval=0.3, what="the file after the database came back")


@pytest.mark.parametrize("server", SERVERS)
def test_keygate_that_cannot_start_never_the_file(server, pg, kg_workdir, fresh_servers):
    s = ws.start_site_whose_keygate_cannot_start(server, fresh_servers, kg_workdir, pg)
    secret = s.files["secret.txt"]
    for h in ({}, bearer(FORGED_TOKEN)):
        r = s.get("/private/secret.txt", headers=h)
        assert_refused(r, secret, statuses=(401, 500, 503))
    r = s.get("/private/whoami.cgi", headers=bearer(FORGED_TOKEN))
    assert_refused(r, "KEYGATE_USER_ID", statuses=(401, 500, 503))
    assert s.api.request("GET", "/health").status_code in (500, 503)
    # keygate said why, where the web server keeps its lines
    kh.wait_until(lambda: "workers" in kh.read_text(s.keygate_log), 20,
                  what="keygate's configuration error in %s" % s.keygate_log)
