"""Scopes checked where requests arrive: the shipped /files/ folder of both
web servers, readable with files:read and writable (by a program there)
with files:write, through the real lighttpd (mod_fastcgi authorizer,
mod_setenv) and the real Apache (mod_fcgid's FcgidAccessChecker,
mod_setenvif), against a real keygate and PostgreSQL.

A valid token without the scope a location requires is refused with
WWW-Authenticate: Bearer error="insufficient_scope", scope="..." (RFC 6750
3.1): 403 from lighttpd, which passes keygate's status on; 401 from Apache,
whose mod_fcgid turns every refusal of an access checker into 401 (the
header still names the scope). The scopes come from the web server's
configuration only: a client header of the same name changes nothing.
"""

import os

import pytest

import kgharness as kh
import webservers as ws
from webservers import bearer

FILES_DIR = "/var/www/files/"
CGI_LIGHTTPD = """
server.modules += ( "mod_cgi" )
$HTTP["url"] =~ "^/(private|files)/.*\\.cgi$" {
	cgi.assign = ( ".cgi" => "" )
}
"""


def cgi_apache(*dirs):
    return "".join('<Directory "%s/">\n    Options +ExecCGI\n    AddHandler cgi-script .cgi\n'
                   '</Directory>\n' % d for d in dirs)


class Site:
    def __init__(self, kind, server, files, api):
        self.kind, self.server, self.files, self.api = kind, server, files, api
        # what a refusal for want of a scope looks like behind this server
        self.scope_status = 403 if kind == "lighttpd" else 401

    def get(self, path, **kw):
        return self.server.get(path, **kw)

    def post(self, path, **kw):
        kw.setdefault("timeout", ws.TIMEOUT)
        return ws.requests.post(self.server.url + path, **kw)

    def token(self, scopes=None, username=None, password=None):
        if username is None:
            username, password, _ = self.api.join()
        body = {"username": username, "password": password}
        if scopes is not None:
            body["scopes"] = scopes
        return self.api.ok(self.api.request("POST", "/login", body))["token"]


def folders(workdir):
    n = next(kh._serial)
    private = os.path.join(workdir, "scoped-private-%d" % n)
    files = os.path.join(workdir, "scoped-files-%d" % n)
    ws.make_private_dir(private)
    return private, files, ws.make_private_dir(files)


@pytest.fixture(scope="module", params=["lighttpd", "apache"])
def site(request, pg_session, kg_workdir):
    servers = ws.WebServers(kg_workdir)
    kgf = kh.KeygateFactory(kg_workdir, pg_session)
    try:
        private, files_dir, files = folders(kg_workdir)
        if request.param == "lighttpd":
            kg = kgf.start(**ws.RELAXED)
            server = servers.lighttpd([
                (os.path.join(ws.LIGHTTPD_CONF, "keygate.conf"), {ws.POOL_SOCKET: kg.socket}),
                (os.path.join(ws.LIGHTTPD_CONF, "keygate-authorizer.conf"),
                 {ws.PRIVATE_DIR: private + "/", FILES_DIR: files_dir + "/"}),
            ], extra_conf=CGI_LIGHTTPD)
        else:
            if not os.path.exists(ws.APACHE_BIN):
                pytest.fail("Apache is not installed: apt-get install apache2 "
                            "libapache2-mod-fcgid (scripts/test installs them as root)")
            ini = ws.keygate_ini(os.path.join(kg_workdir, "scoped-fcgid-%d.ini"
                                              % next(kh._serial)), pg_session)
            server = servers.apache([(os.path.join(ws.APACHE_CONF, "keygate.conf"), {
                ws.INSTALLED_BINARY: kh.KEYGATE_BIN, ws.INSTALLED_CONFIG: ini,
                ws.PRIVATE_DIR: private + "/", FILES_DIR: files_dir + "/"})],
                modules=["fcgid", "cgid"], extra_conf=cgi_apache(private, files_dir))
        s = Site(request.param, server, files, ws.Client(server.base_url))
        yield s
        s.api.close() if hasattr(s.api, "close") else None
    finally:
        servers.cleanup()
        kgf.cleanup()


def assert_scope_refused(site, r, scope, secret=None):
    assert r.status_code == site.scope_status, (r.status_code, r.headers, r.text[:300])
    want = 'Bearer realm="keygate", error="insufficient_scope", scope="%s"' % scope
    assert want in r.headers.get("WWW-Authenticate", ""), r.headers
    if secret is not None:
        assert secret not in r.text
    if site.kind == "lighttpd":      # keygate's own JSON error gets through
        b = r.json()
        assert b["error"] == "insufficient_scope" and b["scope"] == scope, b


def test_read_scope_reads_and_cannot_write(site):
    t = site.token(["files:read"])
    secret = site.files["secret.txt"]
    r = site.get("/files/secret.txt", headers=bearer(t))
    assert r.status_code == 200 and r.text == secret, (r.status_code, r.text[:200])
    assert site.get("/files/sub/deep.txt", headers=bearer(t)).text == site.files["sub/deep.txt"]
    # a read-only token on a POST: refused before the program runs
    r = site.post("/files/whoami.cgi", headers=bearer(t), data=b"x=1")
    assert_scope_refused(site, r, "files:write")
    assert "KEYGATE_USER_ID" not in r.text


def test_write_scope_writes_and_cannot_read(site):
    t = site.token(["files:write"])
    # No body: behind mod_fcgid's access checker, mod_cgid here breaks off a
    # CGI reply to a POST with a body ("Connection reset by peer", AH00574),
    # whatever keygate answered; the verdict needs only the method.
    r = site.post("/files/whoami.cgi", headers=bearer(t), data=b"")
    assert r.status_code == 200, (r.status_code, r.text[:300])
    env = r.json()
    assert env["KEYGATE_SCOPES"] == "files:write", env
    assert_scope_refused(site, site.get("/files/secret.txt", headers=bearer(t)), "files:read",
                         site.files["secret.txt"])


def test_a_broader_scope_implies_both(site):
    for scopes in (["files"], None):       # None: the login's default, all granted
        t = site.token(scopes)
        assert site.get("/files/secret.txt", headers=bearer(t)).status_code == 200
        assert site.post("/files/whoami.cgi", headers=bearer(t), data=b"").status_code == 200


def test_another_scope_is_refused(site):
    t = site.token(["notes", "files:readonly", "filesystem"])
    assert_scope_refused(site, site.get("/files/secret.txt", headers=bearer(t)), "files:read",
                         site.files["secret.txt"])
    # the folder without a required scope still takes any valid token
    assert site.get("/private/secret.txt", headers=bearer(t)).status_code == 200


def test_no_token_is_401_not_a_scope_refusal(site):
    r = site.get("/files/secret.txt")
    assert r.status_code == 401, r.status_code
    assert "insufficient_scope" not in r.headers.get("WWW-Authenticate", "")
    assert site.files["secret.txt"] not in r.text


def test_a_client_cannot_set_the_required_scope(site):
    # KEYGATE_REQUIRE_SCOPE* come from the server's configuration; headers
    # of those names become HTTP_* variables, which keygate ignores.
    t = site.token(["notes"])
    h = dict(bearer(t), **{"KEYGATE_REQUIRE_SCOPE_READ": "notes",
                           "Keygate-Require-Scope-Read": "notes",
                           "KEYGATE-REQUIRE-SCOPE": "notes"})
    assert_scope_refused(site, site.get("/files/secret.txt", headers=h), "files:read",
                         site.files["secret.txt"])


def test_ungranted_then_retried(site, pg_session, kg_workdir):
    """The owner's grant changes under a live token: the next request at the
    server is refused, and allowed again once the scope is granted back."""
    username, password, _ = site.api.join()
    t = site.token(["files:read"], username, password)
    assert site.get("/files/secret.txt", headers=bearer(t)).status_code == 200

    def cli(*args):
        r = kh.run_keygate(list(args), kg_workdir, pg=pg_session, timeout=30)
        assert r.returncode == 0, (args, r.stdout, r.stderr)
    cli("user", "ungrant", username, "*")
    cli("user", "grant", username, "notes")

    def refused():
        r = site.get("/files/secret.txt", headers=bearer(t))
        return r.status_code == site.scope_status
    # The command line is another process: the pools hear of it by NOTIFY.
    kh.wait_until(refused, 10, interval=0.05, what="the ungrant at the server")
    assert_scope_refused(site, site.get("/files/secret.txt", headers=bearer(t)), "files:read",
                         site.files["secret.txt"])
    # what the token's user is granted does not matter at /private/
    assert site.get("/private/secret.txt", headers=bearer(t)).status_code == 200
    cli("user", "grant", username, "files")
    kh.wait_until(lambda: site.get("/files/secret.txt", headers=bearer(t)).status_code == 200,
                  10, interval=0.05, what="the grant back at the server")
