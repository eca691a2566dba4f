"""keygate behind a real Apache 2.4 with the shipped snippets: what only
Apache has. The guarded folder's promises, which lighttpd keeps too, are
tested against both in test_authorizer.py.

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
Here: mod_fcgid's processes and the Authorization header, a broken
configuration and a graceful restart, stopping Apache, mod_proxy_fcgi to a
pool. Finally a2enconf and
"apache2ctl -t" run against a copy of Debian's /etc/apache2.
"""

import os
import pwd
import shutil
import signal
import subprocess

import pytest

import kgharness as kh
import webservers as ws
from webservers import assert_refused, bearer


@pytest.fixture(autouse=True, scope="module")
def _apache_installed():
    ws.require_apache()


@pytest.fixture(scope="module")
def site(pg_session, kg_workdir, servers):
    with ws.module_site("apache", servers, pg_session, kg_workdir) as s:
        yield s


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


def test_broken_configuration_under_mod_fcgid(pg, kg_workdir, fresh_servers):
    """DEPLOYMENT.md's order, edit -> check-config -> graceful, and what
    happens when it is not kept: the processes already running keep the
    configuration they started with; a graceful restart replaces them by
    processes that refuse the file, with one clear line in Apache's log
    and nothing served; the fixed file and another graceful bring the
    same token back."""
    s = ws.start_apache_site(fresh_servers, kg_workdir, pg)
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
        os.kill(s.web.proc.pid, signal.SIGUSR1)
    graceful()

    def refused():
        return s.api.request("GET", "/health").status_code in (500, 503)
    kh.wait_until(refused, 20, interval=0.3, what="the broken file to take effect")
    assert_refused(s.get("/private/secret.txt", headers=bearer(token)), secret,
                   statuses=(401, 500, 503))
    line = "keygate: not starting: %s:%d: request_timeout: not a duration" % (
        s.ini, good.count("\n") + 1)
    kh.wait_until(lambda: line in kh.read_text(s.web.error_log), 10,
                  what="keygate's reason in Apache's log")

    with open(s.ini, "w", encoding="utf-8") as f:
        f.write(good)
    graceful()

    def served():
        return s.api.me(token).status_code == 200
    kh.wait_until(served, 20, interval=0.3, what="the fixed file after a graceful restart")
    assert s.get("/private/secret.txt", headers=bearer(token)).text == secret


def test_stopping_apache_stops_keygate(pg, kg_workdir, fresh_servers):
    s = ws.start_apache_site(fresh_servers, kg_workdir, pg)
    s.api.ok(s.api.request("GET", "/health"))
    procs = ws.keygate_processes(config=s.ini)
    assert procs, "no keygate started by mod_fcgid"
    s.web.stop()
    left = ws.wait_gone([p for p, _, _ in procs])
    assert not left, "keygate outlived Apache: %r" % left


# --------------------------------------------------------------------------
# mod_proxy_fcgi to the pool's socket


def test_proxy_fcgi_to_the_pool(pg, kg_workdir, keygate, fresh_servers):
    kg = ws.start_pool_for_apache(keygate, workers=2)
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
