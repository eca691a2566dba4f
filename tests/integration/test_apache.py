"""keygate behind a real Apache 2.4 with the shipped snippets.

  conf/apache2/keygate.conf        mod_fcgid starts keygate: /api/ (handler,
                                   CGIPassAuth) and /private/ guarded by
                                   FcgidAccessChecker (AUTHORIZER role)
  conf/apache2/keygate-proxy.conf  mod_proxy_fcgi to a keygate pool on its
                                   unix socket (what systemd runs)

Apache runs in the foreground as root with User/Group www-data, loading
only the modules it needs from /usr/lib/apache2/modules; the snippets are
included as shipped with only their installation paths replaced (the
binary, /etc/keygate/keygate.conf, the pool socket, the private folder).
keygate started by mod_fcgid gets nothing but what the snippet gives it
(KEYGATE_CONFIG, KEYGATE_WORKERS): the INI file names the test database.
A CGI program (mod_cgid) in the private folder echoes the request variables
it gets, standing for the protected application. Finally a2enconf and
"apache2ctl -t" run against a copy of Debian's /etc/apache2.
"""

import grp
import os
import pwd
import shutil
import signal
import subprocess

import pytest
import requests

import kgharness as kh
import webservers as ws
from webservers import REALM, bearer, assert_refused


@pytest.fixture(autouse=True, scope="module")
def _apache_installed():
    """Apache is part of the suite, not an optional extra: without it every
    test here fails with the command that installs it (as the browser test
    does), instead of a green run that never started Apache."""
    missing = [p for p in (ws.APACHE_BIN, os.path.join(ws.APACHE_MODULES, "mod_fcgid.so"))
               if not os.path.exists(p)]
    if missing:
        pytest.fail("Apache is not installed (missing %s): apt-get install apache2 "
                    "libapache2-mod-fcgid (scripts/test installs them as root)"
                    % ", ".join(missing))


def cgi_conf(private):
    return ('<Directory "%s/">\n'
            '    Options +ExecCGI\n'
            '    AddHandler cgi-script .cgi\n'
            '</Directory>\n' % private)


def fcgid_snippet(ini, private):
    return [(os.path.join(ws.APACHE_CONF, "keygate.conf"),
             {ws.INSTALLED_BINARY: kh.KEYGATE_BIN, ws.INSTALLED_CONFIG: ini,
              ws.PRIVATE_DIR: private + "/"})]


class Site:
    def __init__(self, ap, ini, private, files):
        self.ap, self.ini, self.private, self.files = ap, ini, private, files
        self.api = ws.Client(ap.base_url)

    def get(self, path, **kw):
        return self.ap.get(path, **kw)


def start_fcgid_site(servers, workdir, pg, **ini_overrides):
    n = next(kh._serial)
    ini = ws.keygate_ini(os.path.join(workdir, "fcgid%d.ini" % n), pg, **ini_overrides)
    private = os.path.join(workdir, "apache-private-%d" % n)
    files = ws.make_private_dir(private)
    ap = servers.apache(fcgid_snippet(ini, private), modules=["fcgid", "cgid"],
                        extra_conf=cgi_conf(private))
    return Site(ap, ini, private, files)


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


@pytest.fixture(scope="module")
def site(pg_session, kg_workdir, servers):
    s = start_fcgid_site(servers, kg_workdir, pg_session)
    yield s
    s.api.close()


def assert_401(r, content):
    """Apache's refusal: 401 with keygate's WWW-Authenticate (mod_fcgid
    replaces keygate's body by Apache's error page)."""
    assert_refused(r, content)
    assert r.headers.get("WWW-Authenticate", "").startswith(REALM), r.headers


# --------------------------------------------------------------------------
# /api/ through mod_fcgid


def test_account_api_through_mod_fcgid(site):
    site.api.account_flow()
    # what mod_fcgid started: single-process keygates, as www-data,
    # configured only by the snippet's InitialEnv
    procs = ws.keygate_processes(config=site.ini)
    assert 1 <= len(procs) <= 8, procs
    for pid, uid, env in procs:
        assert env.get("KEYGATE_WORKERS") == "1", env
        assert not kh.children_of(pid), "keygate under mod_fcgid forked workers"
        if os.geteuid() == 0:
            assert uid == pwd.getpwnam(ws.APACHE_USER).pw_uid, (pid, uid)
        assert not [k for k in env if k.startswith("KEYGATE_")
                    and k not in ("KEYGATE_CONFIG", "KEYGATE_WORKERS")], env


def test_authorization_header_reaches_keygate(site):
    # CGIPassAuth On: without it Apache drops Authorization and /me is 401
    _, username, b = site.api.session()
    r = site.api.request("GET", "/me", headers=bearer(b["token"]))
    assert site.api.ok(r)["username"] == username


# --------------------------------------------------------------------------
# /private/ behind FcgidAccessChecker


def test_private_refused_without_token(site):
    secret = site.files["secret.txt"]
    for path in ("/private/secret.txt", "/private/", "/private/sub/deep.txt",
                 "/private/no-such-file", "/private/whoami.cgi", "/private/noext",
                 "/private/%73ecret.txt", "/private/sub/../secret.txt"):
        assert_401(site.get(path), secret)
    for h in ({"Authorization": "Bearer nonsense"},
              {"Authorization": "Basic dXNlcjpwYXNz"},
              bearer("kg_1_" + "A" * 22 + "." + "B" * 49),
              {"Key": "kg_1_" + "A" * 22, "Secret": "B" * 49}):
        assert_401(site.get("/private/secret.txt", headers=h), secret)
    r = requests.post(site.ap.url + "/private/secret.txt", data=b"x" * 100000,
                      timeout=ws.TIMEOUT)
    assert_401(r, secret)


def test_private_served_with_valid_token(site):
    _, _, b = site.api.session()
    for h in (bearer(b["token"]), {"Key": b["key"], "Secret": b["secret"]}):
        r = site.get("/private/secret.txt", headers=h)
        assert r.status_code == 200, (r.status_code, r.text[:300])
        assert r.text == site.files["secret.txt"]
        assert r.headers["Content-Type"].startswith("text/plain"), r.headers
        r = site.get("/private/sub/deep.txt", headers=h)
        assert r.status_code == 200 and r.text == site.files["sub/deep.txt"], r.text[:300]
        r = site.get("/private/noext", headers=h)
        assert r.status_code == 200 and r.text == site.files["noext"], r.text[:300]
    r = site.get("/private/no-such-file", headers=bearer(b["token"]))
    assert r.status_code == 404, r.status_code


def test_private_file_keeps_its_own_content_type(site):
    _, _, b = site.api.session()
    r = site.get("/private/noext", headers=bearer(b["token"]))
    assert r.status_code == 200, r.status_code
    assert not r.headers.get("Content-Type", "").startswith("application/json"), r.headers


def test_private_refused_after_logout_and_session_delete(site):
    ws.check_refused_after_logout_and_session_delete(site, assert_401)


def test_backend_sees_keygate_variables(site):
    ws.check_backend_sees_keygate_variables(site)


def test_longest_scopes_reach_backend(site):
    ws.check_longest_scopes_delivered(site)


def test_database_down_never_the_file(pg, kg_workdir, fresh_servers):
    s = start_fcgid_site(fresh_servers, kg_workdir, pg)
    _, _, b = s.api.session()
    secret = s.files["secret.txt"]
    assert s.get("/private/secret.txt", headers=bearer(b["token"])).status_code == 200
    pg.stop()
    try:
        for h in (bearer(b["token"]), {"Key": b["key"], "Secret": b["secret"]}, {}):
            assert_refused(s.get("/private/secret.txt", headers=h), secret,
                           statuses=(401, 503))
        assert_refused(s.get("/private/whoami.cgi", headers=bearer(b["token"])),
                       "KEYGATE_USER_ID", statuses=(401, 503))
        r = s.api.me(b["token"])
        assert r.status_code == 503 and r.headers.get("Retry-After", "").isdigit(), r.headers
    finally:
        pg.start()

    def served():
        return s.get("/private/secret.txt", headers=bearer(b["token"])).status_code == 200
    kh.wait_until(served, 20, interval=0.3, what="the file after the database came back")


def test_keygate_that_cannot_start_never_the_file(pg, kg_workdir, fresh_servers):
    # a configuration keygate refuses: it exits at once, every time
    s = start_fcgid_site(fresh_servers, kg_workdir, pg, workers="lots")
    secret = s.files["secret.txt"]
    for h in ({}, bearer("kg_1_" + "A" * 22 + "." + "B" * 49)):
        r = s.get("/private/secret.txt", headers=h)
        assert_refused(r, secret, statuses=(401, 500, 503))
    assert s.api.request("GET", "/health").status_code in (500, 503)
    assert "workers" in kh.read_text(s.ap.error_log)     # keygate said why


def test_broken_configuration_under_mod_fcgid(pg, kg_workdir, fresh_servers):
    """DEPLOYMENT.md's order, edit -> check-config -> graceful, and what
    happens when it is not kept: the processes already running keep the
    configuration they started with; a graceful restart replaces them by
    processes that refuse the file, with one clear line in Apache's log
    and nothing served; the fixed file and another graceful bring the
    same token back."""
    s = start_fcgid_site(fresh_servers, kg_workdir, pg)
    _, _, b = s.api.session()
    token, secret = b["token"], s.files["secret.txt"]
    assert s.api.me(token).status_code == 200
    with open(s.ini, encoding="utf-8") as f:
        good = f.read()
    with open(s.ini, "a", encoding="utf-8") as f:
        f.write("request_timeout = soon\n")
    r = subprocess.run([kh.KEYGATE_BIN, "-c", s.ini, "check-config"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       universal_newlines=True, timeout=30)
    assert r.returncode == 1 and "request_timeout: not a duration" in r.stderr, r

    # not yet reloaded: the running keygate serves on with what it read
    for _ in range(5):
        assert s.api.me(token).status_code == 200
    assert s.get("/private/secret.txt", headers=bearer(token)).text == secret

    def graceful():
        os.kill(s.ap.proc.pid, signal.SIGUSR1)
    graceful()

    def refused():
        return s.api.request("GET", "/health").status_code in (500, 503)
    kh.wait_until(refused, 20, interval=0.3, what="the broken file to take effect")
    assert_refused(s.get("/private/secret.txt", headers=bearer(token)), secret,
                   statuses=(401, 500, 503))
    line = "keygate: not starting: %s:%d: request_timeout: not a duration" % (
        s.ini, good.count("\n") + 1)
    kh.wait_until(lambda: line in kh.read_text(s.ap.error_log), 10,
                  what="keygate's reason in Apache's log")

    with open(s.ini, "w", encoding="utf-8") as f:
        f.write(good)
    graceful()

    def served():
        return s.api.me(token).status_code == 200
    kh.wait_until(served, 20, interval=0.3, what="the fixed file after a graceful restart")
    assert s.get("/private/secret.txt", headers=bearer(token)).text == secret


def test_stopping_apache_stops_keygate(pg, kg_workdir, fresh_servers):
    s = start_fcgid_site(fresh_servers, kg_workdir, pg)
    s.api.ok(s.api.request("GET", "/health"))
    procs = ws.keygate_processes(config=s.ini)
    assert procs, "no keygate started by mod_fcgid"
    s.ap.stop()
    left = ws.wait_gone([p for p, _, _ in procs])
    assert not left, "keygate outlived Apache: %r" % left


# --------------------------------------------------------------------------
# mod_proxy_fcgi to the pool's socket


def test_proxy_fcgi_to_the_pool(pg, kg_workdir, keygate, fresh_servers):
    # as keygate.socket has it: mode 0660, group of the web server's user
    group = {}
    if os.geteuid() == 0:
        group["listen_group"] = grp.getgrgid(pwd.getpwnam(ws.APACHE_USER).pw_gid).gr_name
    kg = keygate.start(workers=2, **dict(ws.RELAXED, **group))
    st = os.stat(kg.socket)
    assert st.st_mode & 0o777 == 0o660, oct(st.st_mode)
    ap = fresh_servers.apache(
        [(os.path.join(ws.APACHE_CONF, "keygate-proxy.conf"), {ws.POOL_SOCKET: kg.socket})],
        modules=["proxy", "proxy_fcgi"])
    api = ws.Client(ap.base_url)
    api.account_flow()                      # Bearer included: CGIPassAuth On
    # keygate saw the client's REQUEST_URI and address through the proxy
    status = api.ok(api.request("GET", "/status"))
    assert status["pool"]["workers"] == 2, status
    # a path outside /api/ is not keygate's
    assert ap.get("/apix/health").status_code == 404
    assert kg.stop() == 0, kg.log()
    r = api.request("GET", "/health")
    assert r.status_code == 503, (r.status_code, r.text[:300])
    api.close()


# --------------------------------------------------------------------------
# installable with a2enconf


def test_a2enconf(kg_workdir):
    if not os.path.isfile("/etc/apache2/apache2.conf") or not shutil.which("a2enconf"):
        pytest.skip("Debian's Apache configuration is not installed")
    confdir = os.path.join(kg_workdir, "etc-apache2-%d" % next(kh._serial))
    ws.copy_etc("/etc/apache2", confdir)
    var = os.path.join(confdir, "var")
    for d in ("run", "lock", "log"):
        os.makedirs(os.path.join(var, d))
    with open(os.path.join(confdir, "envvars"), "w") as f:
        f.write("export APACHE_RUN_USER=www-data APACHE_RUN_GROUP=www-data\n"
                "export APACHE_PID_FILE=%(v)s/run/apache2.pid APACHE_RUN_DIR=%(v)s/run\n"
                "export APACHE_LOCK_DIR=%(v)s/lock APACHE_LOG_DIR=%(v)s/log LANG=C\n"
                % {"v": var})
    # mod_fcgid looks at the programs it is given while reading the
    # configuration: point them at the built binary
    for name in ("keygate.conf", "keygate-proxy.conf"):
        ws.render_snippet(os.path.join(ws.APACHE_CONF, name),
                          os.path.join(confdir, "conf-available", name),
                          {ws.INSTALLED_BINARY: kh.KEYGATE_BIN} if name == "keygate.conf" else {})
    env = kh.clean_env({"APACHE_CONFDIR": confdir})

    def run(*argv):
        return subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              env=env, timeout=60, universal_newlines=True)

    for m in ("fcgid", "alias"):
        r = run("a2enmod", "-q", m)
        assert r.returncode == 0, r.stdout
    r = run("a2enconf", "keygate")
    assert r.returncode == 0, r.stdout
    link = os.path.join(confdir, "conf-enabled", "keygate.conf")
    assert os.path.islink(link) and os.readlink(link) == "../conf-available/keygate.conf"
    r = run("apache2ctl", "-t")
    assert r.returncode == 0 and "Syntax OK" in r.stdout, r.stdout

    # without mod_fcgid the snippet says what is missing instead of
    # leaving /private/ unguarded
    r = run("a2dismod", "-q", "-f", "fcgid")
    assert r.returncode == 0, r.stdout
    r = run("apache2ctl", "-t")
    assert r.returncode != 0 and "needs mod_fcgid" in r.stdout, r.stdout

    # the proxy variant
    run("a2disconf", "-q", "keygate")
    for m in ("proxy", "proxy_fcgi"):
        assert run("a2enmod", "-q", m).returncode == 0
    r = run("a2enconf", "keygate-proxy")
    assert r.returncode == 0, r.stdout
    r = run("apache2ctl", "-t")
    assert r.returncode == 0 and "Syntax OK" in r.stdout, r.stdout
