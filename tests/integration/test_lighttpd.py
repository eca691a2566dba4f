"""keygate behind a real lighttpd (1.4.69, Debian) with the shipped snippets.

  conf/lighttpd/keygate.conf             /api/ to the keygate pool's socket
  conf/lighttpd/keygate-authorizer.conf  /private/ guarded by keygate in the
                                         FastCGI AUTHORIZER role
  conf/lighttpd/keygate-spawn.conf       /api/ with lighttpd starting keygate
                                         itself (bin-path, bin-environment)

Each is included as shipped, with only its installation paths replaced (the
pool socket, the private folder, the binary, /etc/keygate/keygate.conf).
Behind the authorizer, a CGI program (mod_cgi) in the private folder echoes
the request variables it gets, standing for the protected application.
Finally lighty-enable-mod is run against a copy of Debian's /etc/lighttpd
(in a private mount namespace) to show the snippets install as modules.
"""

import os
import shutil
import subprocess

import pytest
import requests

import kgharness as kh
import webservers as ws
from webservers import REALM, bearer, assert_refused


CGI_CONF = """
server.modules += ( "mod_cgi" )
$HTTP["url"] =~ "^/private/.*\\.cgi$" {
	cgi.assign = ( ".cgi" => "" )
}
"""


@pytest.fixture(scope="module")
def servers(kg_workdir):
    f = ws.WebServers(kg_workdir)
    yield f
    f.cleanup()


@pytest.fixture
def fresh_servers(kg_workdir):
    f = ws.WebServers(kg_workdir)
    yield f
    f.cleanup()


def private_dir(workdir):
    path = os.path.join(workdir, "private-%d" % next(kh._serial))
    files = ws.make_private_dir(path)
    return path, files


def authorizer_snippets(socket_path, private):
    return [
        (os.path.join(ws.LIGHTTPD_CONF, "keygate.conf"), {ws.POOL_SOCKET: socket_path}),
        (os.path.join(ws.LIGHTTPD_CONF, "keygate-authorizer.conf"),
         {ws.PRIVATE_DIR: private + "/"}),
    ]


class Site:
    """A keygate pool and a lighttpd with /api/ and /private/ in front."""

    def __init__(self, kg, lt, private, files):
        self.kg, self.lt, self.private, self.files = kg, lt, private, files
        self.api = ws.Client(lt.base_url)

    def get(self, path, **kw):
        return self.lt.get(path, **kw)


def start_site(kgf, servers, workdir, **overrides):
    kg = kgf.start(**dict(ws.RELAXED, **overrides))
    private, files = private_dir(workdir)
    lt = servers.lighttpd(authorizer_snippets(kg.socket, private), extra_conf=CGI_CONF)
    return Site(kg, lt, private, files)


@pytest.fixture(scope="module")
def site(pg_session, kg_workdir, servers):
    kgf = kh.KeygateFactory(kg_workdir, pg_session)
    try:
        s = start_site(kgf, servers, kg_workdir)
        yield s
        s.api.close()
    finally:
        kgf.cleanup()


def assert_401(r, content):
    assert_refused(r, content)
    assert r.headers.get("WWW-Authenticate", "").startswith(REALM), r.headers
    b = r.json()
    assert b["success"] is False and b["error"] == "invalid_token", b


# --------------------------------------------------------------------------
# /api/


def test_account_api_through_lighttpd(site):
    site.api.account_flow()


# --------------------------------------------------------------------------
# /private/ behind the authorizer


def test_private_refused_without_token(site):
    secret = site.files["secret.txt"]
    for path in ("/private/secret.txt", "/private/", "/private/sub/deep.txt",
                 "/private/no-such-file", "/private/whoami.cgi",
                 "/private/%73ecret.txt", "/private/sub/../secret.txt"):
        r = site.get(path)
        assert_401(r, secret)
    # a malformed or unknown token is no better
    for h in ({"Authorization": "Bearer nonsense"},
              {"Authorization": "Basic dXNlcjpwYXNz"},
              bearer("kg_1_" + "A" * 22 + "." + "B" * 49),
              {"Key": "kg_1_" + "A" * 22, "Secret": "B" * 49}):
        assert_401(site.get("/private/secret.txt", headers=h), secret)
    # POST with a body: the authorizer never gets the body, still refuses
    r = requests.post(site.lt.url + "/private/secret.txt", data=b"x" * 100000,
                      timeout=ws.TIMEOUT)
    assert_401(r, secret)


def test_private_served_with_valid_token(site):
    user_id, username, b = site.api.session()
    for h in (bearer(b["token"]), {"Key": b["key"], "Secret": b["secret"]}):
        r = site.get("/private/secret.txt", headers=h)
        assert r.status_code == 200, (r.status_code, r.text[:300])
        assert r.text == site.files["secret.txt"]
        assert r.headers["Content-Type"].startswith("text/plain"), r.headers
        # keygate's own headers stay between keygate and lighttpd
        for name in ("Variable-KEYGATE_USER_ID", "WWW-Authenticate", "Cache-Control"):
            assert name not in r.headers, r.headers
        r = site.get("/private/sub/deep.txt", headers=h)
        assert r.status_code == 200 and r.text == site.files["sub/deep.txt"], r.text[:300]
    # an allowed request for a missing file is lighttpd's 404
    r = site.get("/private/no-such-file", headers=bearer(b["token"]))
    assert r.status_code == 404, r.status_code


def test_private_refused_after_logout_and_session_delete(site):
    ws.check_refused_after_logout_and_session_delete(site, assert_401)


def test_backend_sees_keygate_variables(site):
    ws.check_backend_sees_keygate_variables(site)


def test_longest_scopes_reach_backend(site):
    ws.check_longest_scopes_delivered(site)


def test_pool_down_means_503_never_the_file(pg, kg_workdir, keygate, fresh_servers):
    s = start_site(keygate, fresh_servers, kg_workdir, workers=1)
    _, _, b = s.api.session()
    secret = s.files["secret.txt"]
    assert s.get("/private/secret.txt", headers=bearer(b["token"])).status_code == 200
    assert s.kg.stop() == 0, s.kg.log()
    for h in (bearer(b["token"]), {}):
        r = s.get("/private/secret.txt", headers=h)
        assert_refused(r, secret, statuses=(503,))
    r = s.api.request("GET", "/health")
    assert r.status_code == 503, r.status_code


def test_database_down_means_503_never_the_file(pg, kg_workdir, keygate, fresh_servers):
    s = start_site(keygate, fresh_servers, kg_workdir, workers=1)
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
    finally:
        pg.start()
    # and back once the database is
    def served():
        return s.get("/private/secret.txt", headers=bearer(b["token"])).status_code == 200
    kh.wait_until(served, 20, interval=0.3, what="the file after the database came back")


# --------------------------------------------------------------------------
# lighttpd starts keygate itself (bin-path)


def test_spawned_by_lighttpd(pg, kg_workdir, fresh_servers):
    name = "spawn%d" % next(kh._serial)
    ini = ws.keygate_ini(os.path.join(kg_workdir, name + ".ini"), pg,
                         listen=os.path.join(kg_workdir, name + "-unused.sock"))
    sock = os.path.join(kg_workdir, name + ".sock")
    breakage = os.path.join(kg_workdir, name + "-breakage.log")
    private, files = private_dir(kg_workdir)
    lt = fresh_servers.lighttpd([
        (os.path.join(ws.LIGHTTPD_CONF, "keygate-spawn.conf"),
         {ws.INSTALLED_BINARY: kh.KEYGATE_BIN, ws.INSTALLED_CONFIG: ini,
          ws.SPAWN_SOCKET: sock, ws.BREAKAGE_LOG: breakage}),
        # the authorizer on the socket lighttpd made ("socket" plus "-0"),
        # named by the spawn snippet's var.keygate_socket
        (os.path.join(ws.LIGHTTPD_CONF, "keygate-authorizer.conf"),
         {ws.PRIVATE_DIR: private + "/"}),
    ], extra_conf=CGI_CONF)
    api = ws.Client(lt.base_url)

    # lighttpd started one keygate master with KEYGATE_WORKERS=4 workers,
    # configured through bin-environment only
    def spawned():
        procs = ws.keygate_processes(config=ini)
        return procs if len(procs) == 5 else None
    procs = kh.wait_until(spawned, 15, what="keygate master + 4 workers started by lighttpd")
    for pid, _, env in procs:
        assert env.get("KEYGATE_CONFIG") == ini, env
        assert env.get("KEYGATE_WORKERS") == "4", env
        assert not [k for k in env if k.startswith("KEYGATE_")
                    and k not in ("KEYGATE_CONFIG", "KEYGATE_WORKERS")], env
    assert not os.path.exists(os.path.join(kg_workdir, name + "-unused.sock"))
    status = api.ok(api.request("GET", "/status"))
    assert status["pool"]["workers"] == 4, status["pool"]

    api.account_flow()
    user_id, username, b = api.session()
    r = lt.get("/private/secret.txt", headers=bearer(b["token"]))
    assert r.status_code == 200 and r.text == files["secret.txt"], (r.status_code, r.text[:300])
    r = lt.get("/private/whoami.cgi", headers=bearer(b["token"]))
    assert r.status_code == 200 and r.json().get("KEYGATE_USER_ID") == str(user_id), r.text[:300]
    assert_401(lt.get("/private/secret.txt"), files["secret.txt"])
    api.ok(api.logout(b["token"]))
    assert_401(lt.get("/private/secret.txt", headers=bearer(b["token"])), files["secret.txt"])
    api.close()

    # keygate's log lines go to the snippet's server.breakagelog, whatever
    # lighttpd's own standard error is (/dev/null once it is a daemon)
    log = kh.read_text(breakage)
    assert "listening on the inherited socket (fd 0)" in log, log[-2000:]
    assert "starting 4 workers" in log, log[-2000:]

    # stopping lighttpd stops the keygate it started
    lt.stop()
    left = ws.wait_gone([p for p, _, _ in procs])
    assert not left, "keygate processes outlived lighttpd: %r" % left


def test_spawned_keygate_config_error_reaches_the_breakage_log(pg, kg_workdir,
                                                               fresh_servers):
    """A keygate that lighttpd starts with a broken configuration exits;
    its one line saying why must be in the breakage log, not lost with
    lighttpd's standard error."""
    name = "spawnbad%d" % next(kh._serial)
    ini = ws.keygate_ini(os.path.join(kg_workdir, name + ".ini"), pg)
    with open(ini, "a") as f:
        f.write("workers = many\n")
    sock = os.path.join(kg_workdir, name + ".sock")
    breakage = os.path.join(kg_workdir, name + "-breakage.log")
    lt = fresh_servers.lighttpd([
        (os.path.join(ws.LIGHTTPD_CONF, "keygate-spawn.conf"),
         {ws.INSTALLED_BINARY: kh.KEYGATE_BIN, ws.INSTALLED_CONFIG: ini,
          ws.SPAWN_SOCKET: sock, ws.BREAKAGE_LOG: breakage}),
    ])
    # lighttpd's own answer: 503 while it cannot connect, 500 when the
    # process died under the request
    r = lt.get("/api/health")
    assert r.status_code in (500, 503), (r.status_code, r.text[:300])
    expected = "%s:%d: workers: not a number" % (ini, len(kh.read_text(ini).splitlines()))

    def logged():
        return expected in kh.read_text(breakage)
    kh.wait_until(logged, 20, what="keygate's configuration error in the breakage log")
    # and nothing of keygate's went to lighttpd's own standard error
    assert "workers" not in kh.read_text(lt.out_log), kh.read_text(lt.out_log)[-2000:]


# --------------------------------------------------------------------------
# installable as conf-available snippets


def in_private_etc(tmp_etc, script):
    """Run a shell script in a private mount namespace in which tmp_etc is
    mounted over /etc/lighttpd (the real one is never touched)."""
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("needs root and unshare(1) for a private mount namespace")
    return subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-ec",
         'mount --bind "$0" /etc/lighttpd\n' + script, tmp_etc],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60,
        universal_newlines=True, env=kh.clean_env())


def test_lighty_enable_mod(kg_workdir):
    if not os.path.isfile("/etc/lighttpd/lighttpd.conf"):
        pytest.skip("Debian's lighttpd configuration is not installed")
    etc = os.path.join(kg_workdir, "etc-lighttpd-%d" % next(kh._serial))
    ws.copy_etc("/etc/lighttpd", etc)
    avail = os.path.join(etc, "conf-available")
    enabled = os.path.join(etc, "conf-enabled")
    # where the Debian package installs them
    for src, dst in (("keygate.conf", "50-keygate.conf"),
                     ("keygate-spawn.conf", "50-keygate-spawn.conf"),
                     ("keygate-authorizer.conf", "51-keygate-authorizer.conf")):
        shutil.copy(os.path.join(ws.LIGHTTPD_CONF, src), os.path.join(avail, dst))

    r = in_private_etc(etc, "lighty-enable-mod keygate keygate-authorizer\n"
                            "lighttpd -tt -f /etc/lighttpd/lighttpd.conf\n"
                            "lighttpd -p -f /etc/lighttpd/lighttpd.conf\n")
    assert r.returncode == 0, r.stdout
    for f in ("50-keygate.conf", "51-keygate-authorizer.conf"):
        link = os.path.join(enabled, f)
        assert os.path.islink(link) and os.readlink(link) == "../conf-available/" + f, r.stdout
    # the printed configuration has both mappings
    assert '"/api/"' in r.stdout and '"/private/"' in r.stdout, r.stdout
    assert '"mode"' in r.stdout and '"authorizer"' in r.stdout, r.stdout

    # the pool and the spawning variant exclude each other
    r = in_private_etc(etc, "lighty-enable-mod keygate-spawn\n")
    assert r.returncode != 0 and "conflict" in r.stdout.lower(), r.stdout
    assert not os.path.exists(os.path.join(enabled, "50-keygate-spawn.conf"))
    r = in_private_etc(etc, "lighty-disable-mod keygate\n"
                            "lighty-enable-mod keygate-spawn\n"
                            "lighttpd -tt -f /etc/lighttpd/lighttpd.conf\n")
    assert r.returncode == 0, r.stdout
    assert os.path.islink(os.path.join(enabled, "50-keygate-spawn.conf")), r.stdout
    assert not os.path.exists(os.path.join(enabled, "50-keygate.conf")), r.stdout
