"""Real lighttpd and Apache in front of keygate, with the shipped snippets.

test_authorizer.py (the guarded folder behind either server),
test_lighttpd.py and test_apache.py start the web servers through this
module. Each server gets its own directory under the session's workdir, a
generated main configuration for 127.0.0.1:<free port>, and the shipped
snippets from conf/lighttpd/ or conf/apache2/ *included* after their
installation paths have been replaced by the test's (render_snippet: every
path to replace must occur in the snippet, so a renamed path fails loudly
instead of silently testing something else).

Servers are registered with kgharness, so their logs are printed when a test
fails and they are killed at interpreter exit in the worst case; the
WebServers factory stops everything it started (the whole process group:
the server, the keygate processes it spawned, CGI programs).

  LighttpdServer(workdir, name, snippets, extra_conf='')
      /usr/sbin/lighttpd -D; snippets: [(path, {old: new})]
  Apache(workdir, name, snippets, modules, extra_conf='', user='www-data')
      /usr/sbin/apache2 -DFOREGROUND as root with User/Group, loading only
      the given modules from /usr/lib/apache2/modules
  WebServers(workdir).lighttpd(...) / .apache(...) / .cleanup()

Helpers for the tests: keygate_ini(), make_private_dir(), Client (the
account API over HTTP), uname()/pword(); Site and start_*_site(): /api/
and /private/ behind lighttpd or Apache as the snippets set them up.

Environment knobs: KG_APACHE (default /usr/sbin/apache2),
KG_APACHE_MODULES (default /usr/lib/apache2/modules), KG_APACHE_USER
(default www-data), KG_LIGHTTPD (kgharness).
"""

import contextlib
import json
import grp
import os
import pwd
import shutil
import socket
import subprocess
import time
import uuid

import requests

import kgharness as kh

CONF_DIR = os.path.join(kh.REPO, "conf")
LIGHTTPD_CONF = os.path.join(CONF_DIR, "lighttpd")
APACHE_CONF = os.path.join(CONF_DIR, "apache2")
APACHE_BIN = os.environ.get("KG_APACHE") or "/usr/sbin/apache2"
APACHE_MODULES = os.environ.get("KG_APACHE_MODULES") or "/usr/lib/apache2/modules"
APACHE_USER = os.environ.get("KG_APACHE_USER") or "www-data"

# What the shipped snippets name, replaced by the tests' paths.
INSTALLED_BINARY = "/usr/bin/keygate"
INSTALLED_CONFIG = "/etc/keygate/keygate.conf"
POOL_SOCKET = "/run/keygate/keygate.sock"
SPAWN_SOCKET = "/run/lighttpd/keygate.sock"
BREAKAGE_LOG = "/var/log/lighttpd/breakage.log"
PRIVATE_DIR = "/var/www/private/"

TIMEOUT = 20

# Throttling is counted in PostgreSQL per client address, and every test of
# the session comes from 127.0.0.1: raise the limits (as test_api.py does).
RELAXED = {
    "login_max_failures": 1000,
    "login_max_per_address": 1000000,
    "join_max_per_address": 1000000,
}

WHOAMI_CGI = """#!/usr/bin/python3
# Echo the request variables a protected application gets.
import json, os
wanted = ("KEYGATE_", "HTTP_", "REMOTE_USER", "AUTH_TYPE")
env = {k: v for k, v in os.environ.items() if k.startswith(wanted)}
body = json.dumps(env, sort_keys=True)
print("Content-Type: application/json")
print("Content-Length: %d" % len(body.encode()))
print()
print(body, end="")
"""


class HarnessError(kh.HarnessError):
    pass


def render_snippet(src, dst, subs):
    """Copy snippet src to dst with every {old: new} replaced; each old
    must occur in src. Returns dst."""
    with open(src) as f:
        text = f.read()
    for old, new in subs.items():
        if old not in text:
            raise HarnessError("%s does not mention %s" % (src, old))
        text = text.replace(old, new)
    with open(dst, "w") as f:
        f.write(text)
    os.chmod(dst, 0o644)
    return dst


def keygate_ini(path, pg, **overrides):
    """An INI file for a keygate that the web server starts itself (no
    environment from the harness): database, repository paths, stderr
    logging, relaxed throttling, user = root (for a web server that starts
    it as root), then overrides."""
    conf = {
        "database": pg.dsn,
        "migrations_dir": kh.MIGRATIONS_DIR,
        "common_passwords": kh.COMMON_PASSWORDS,
        "log_target": "stderr",
        "log_level": "info",
        "user": "root",
    }
    conf.update(RELAXED)
    conf.update(overrides)
    text = "[keygate]\n" + "".join("%s = %s\n" % (k, kh.conf_value(v))
                                   for k, v in conf.items() if v is not None)
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, 0o644)
    return path


def make_private_dir(path):
    """The folder to guard: a text file, a file without extension, a
    subdirectory and a CGI program that echoes its KEYGATE_* and HTTP_*
    variables. Readable by the web server's user."""
    os.makedirs(os.path.join(path, "sub"), exist_ok=True)
    files = {
        "secret.txt": "the protected content %s\n" % uuid.uuid4().hex,
        "noext": "raw bytes without an extension %s\n" % uuid.uuid4().hex,
        "sub/deep.txt": "deeper protected content %s\n" % uuid.uuid4().hex,
    }
    for name, text in files.items():
        with open(os.path.join(path, name), "w") as f:
            f.write(text)
        os.chmod(os.path.join(path, name), 0o644)
    cgi = os.path.join(path, "whoami.cgi")
    with open(cgi, "w") as f:
        f.write(WHOAMI_CGI)
    os.chmod(cgi, 0o755)
    for d in (path, os.path.join(path, "sub")):
        os.chmod(d, 0o755)
    return files


def _wait_listening(proc, port, timeout, what):
    """True once 127.0.0.1:port accepts connections, False if proc exited
    first; HarnessError after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            return False
        with contextlib.suppress(OSError):
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return True
        if time.monotonic() >= deadline:
            raise HarnessError("timed out after %ds waiting for %s" % (timeout, what))
        time.sleep(0.05)


class _Server:
    """Common part: a process in its own session, started on a free port
    (retried if the port was taken meanwhile), stopped with SIGTERM and then
    SIGKILL to the whole process group."""

    kind = "server"

    def __init__(self, workdir, name):
        self.workdir = workdir
        self.name = name
        self.root = os.path.join(workdir, name)
        os.makedirs(self.root)
        os.chmod(self.root, 0o755)
        self.proc = None
        self.port = None
        self.out_log = os.path.join(self.root, "stdout.log")

    def _argv(self):
        raise NotImplementedError

    def _render(self, snippets):
        """Render (template, substitutions) pairs into numbered files under
        root, in order; their paths, for the configuration to include."""
        return [render_snippet(src, os.path.join(self.root, "%02d-%s" % (i, os.path.basename(src))),
                               subs)
                for i, (src, subs) in enumerate(snippets)]

    def _write_conf(self):
        raise NotImplementedError

    def _start(self, port=None):
        kh._register(self)
        for _ in range(5):                  # a free port can be taken meanwhile
            self.port = port or kh.free_port()
            self._write_conf()
            out = open(self.out_log, "ab")
            try:
                self.proc = subprocess.Popen(
                    self._argv(), stdin=subprocess.DEVNULL, stdout=out,
                    stderr=subprocess.STDOUT, env=kh.clean_env(),
                    cwd=self.root, start_new_session=True)
            finally:
                out.close()
            what = "%s on port %d" % (self.kind, self.port)
            try:
                if _wait_listening(self.proc, self.port, 20, what):
                    break
            except HarnessError:
                self.stop()
                raise HarnessError("%s did not answer:\n%s" % (what, self.log()))
            self.stop()
            if port or "in use" not in self.log():
                raise HarnessError("%s exited during start-up:\n%s" % (what, self.log()))
        else:
            raise HarnessError("%s: no free port after 5 tries:\n%s" % (self.kind, self.log()))
        self.url = "http://127.0.0.1:%d" % self.port
        self.base_url = self.url + "/api"
        return self

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def log(self):
        return kh.read_text(self.error_log) + kh.read_text(self.out_log)

    def stop(self, timeout=10):
        # and whatever is left of the group: workers, spawned keygate, CGI
        kh.stop_group(self.proc, timeout)

    def group_pids(self):
        """Live processes in the server's process group (its session)."""
        if self.proc is None:
            return []
        return sorted(p for p, _, group in kh.live_processes() if group == self.proc.pid)

    def cleanup(self):
        self.stop()
        kh._unregister(self)

    def get(self, path, **kw):
        kw.setdefault("timeout", TIMEOUT)
        return requests.get(self.url + path, **kw)

    def __repr__(self):
        return "<%s %s port=%s>" % (type(self).__name__, self.name, self.port)


class LighttpdServer(_Server):
    """lighttpd -D with a generated lighttpd.conf that includes each of
    `snippets` ([(snippet_path, {old: new})]) after extra_conf.

    Attributes: root, docroot, conf_path, error_log, access_log, port, url,
    base_url (url + '/api'), proc; log(), stop(), group_pids()."""

    kind = "lighttpd"

    def __init__(self, workdir, name, snippets, extra_conf="", port=None):
        super().__init__(workdir, name)
        self.docroot = os.path.join(self.root, "htdocs")
        os.makedirs(self.docroot)
        self.conf_path = os.path.join(self.root, "lighttpd.conf")
        self.error_log = os.path.join(self.root, "error.log")
        self.access_log = os.path.join(self.root, "access.log")
        self.extra_conf = extra_conf
        self.includes = self._render(snippets)
        self._start(port)

    def _argv(self):
        return [kh.LIGHTTPD_BIN, "-D", "-f", self.conf_path]

    def _write_conf(self):
        lines = [
            'server.document-root = "%s"' % self.docroot,
            'server.bind = "127.0.0.1"',
            "server.port = %d" % self.port,
            'server.errorlog = "%s"' % self.error_log,
            'server.upload-dirs = ( "%s" )' % self.root,
            'server.pid-file = "%s"' % os.path.join(self.root, "lighttpd.pid"),
            'server.modules += ( "mod_accesslog" )',
            'accesslog.filename = "%s"' % self.access_log,
            # 1.4.69 has no built-in MIME table (Debian's main config
            # generates one); the files the tests serve:
            'mimetype.assign = ( ".txt" => "text/plain; charset=utf-8" )',
            self.extra_conf,
        ]
        lines += ['include "%s"' % p for p in self.includes]
        with open(self.conf_path, "w") as f:
            f.write("\n".join(lines) + "\n")


DEFAULT_APACHE_MODULES = ("mpm_event", "authz_core", "mime", "alias", "dir", "setenvif")


class Apache(_Server):
    """Apache 2.4 in the foreground (-DFOREGROUND), started as root with
    User/Group `user` (when we are root), from a generated httpd.conf in
    its own ServerRoot that loads `modules` (names as in
    /usr/lib/apache2/modules/mod_NAME.so) and includes each of `snippets`
    ([(snippet_path, {old: new})]) after extra_conf, at server level;
    requests are served by a VirtualHost defined after them, as in Debian's
    layout (conf-enabled/, then sites-enabled/000-default.conf). mod_fcgid's
    and mod_cgid's sockets and tables live in the ServerRoot.

    Attributes: root, docroot, conf_path, error_log, access_log, port, url,
    base_url, proc; log(), stop(), group_pids()."""

    kind = "apache"

    def __init__(self, workdir, name, snippets, modules=(), extra_conf="",
                 user=APACHE_USER, port=None, loglevel=None):
        super().__init__(workdir, name)
        self.docroot = os.path.join(self.root, "htdocs")
        self.rundir = os.path.join(self.root, "run")
        self.ipcdir = os.path.join(self.root, "fcgid")
        for d in (self.docroot, self.rundir, self.ipcdir):
            os.makedirs(d)
            os.chmod(d, 0o755)
        self.user = user if os.geteuid() == 0 else None
        if self.user:
            pw = pwd.getpwnam(self.user)
            self.group = grp.getgrgid(pw.pw_gid).gr_name
            os.chown(self.ipcdir, pw.pw_uid, pw.pw_gid)
        self.conf_path = os.path.join(self.root, "httpd.conf")
        self.error_log = os.path.join(self.root, "error.log")
        self.access_log = os.path.join(self.root, "access.log")
        self.modules = list(dict.fromkeys(list(DEFAULT_APACHE_MODULES) + list(modules)))
        self.extra_conf = extra_conf
        if loglevel is None:
            loglevel = "notice fcgid:info" if "fcgid" in self.modules else "notice"
        self.loglevel = loglevel
        self.includes = self._render(snippets)
        self._start(port)

    def _argv(self):
        return [APACHE_BIN, "-d", self.root, "-f", self.conf_path, "-DFOREGROUND"]

    def _write_conf(self):
        mods = []
        for m in self.modules:
            so = os.path.join(APACHE_MODULES, "mod_%s.so" % m)
            if not os.path.exists(so):
                raise HarnessError("Apache module %s not installed" % so)
            mods.append("LoadModule %s_module %s" % (m, so))
        lines = [
            'ServerRoot "%s"' % self.root,
            "ServerName 127.0.0.1",
            "Listen 127.0.0.1:%d" % self.port,
            'PidFile "%s"' % os.path.join(self.rundir, "httpd.pid"),
            'DefaultRuntimeDir "%s"' % self.rundir,
            "Mutex file:%s default" % self.rundir,
            'ErrorLog "%s"' % self.error_log,
            "LogLevel %s" % self.loglevel,
            'LogFormat "%h \\"%r\\" %>s %b" kg',
            'CustomLog "%s" kg' % self.access_log,
            "Timeout 30",
            "KeepAlive On",
            "StartServers 1",
            "ServerLimit 2",
            "ThreadsPerChild 16",
            "MaxRequestWorkers 32",
            "MinSpareThreads 4",
            "MaxSpareThreads 32",
        ]
        if self.user:
            lines += ["User %s" % self.user, "Group %s" % self.group]
        lines += mods
        lines += [
            "TypesConfig /etc/mime.types",
            'DocumentRoot "%s"' % self.docroot,
            "<Directory />",
            "    AllowOverride None",
            "    Require all denied",
            "</Directory>",
            '<Directory "%s">' % self.docroot,
            "    Require all granted",
            "</Directory>",
            "<IfModule mod_fcgid.c>",
            '    FcgidIPCDir "%s"' % self.ipcdir,
            '    FcgidProcessTableFile "%s"' % os.path.join(self.rundir, "fcgid_shm"),
            "</IfModule>",
            "<IfModule mod_cgid.c>",
            '    ScriptSock "%s"' % os.path.join(self.rundir, "cgisock"),
            "</IfModule>",
            self.extra_conf,
        ]
        lines += ['Include "%s"' % p for p in self.includes]
        # Debian's layout: conf-enabled/ at server level, then the sites
        # as virtual hosts (000-default), which inherit the snippets
        lines += [
            "<VirtualHost 127.0.0.1:%d>" % self.port,
            "    ServerName 127.0.0.1",
            '    DocumentRoot "%s"' % self.docroot,
            "</VirtualHost>",
        ]
        with open(self.conf_path, "w") as f:
            f.write("\n".join(lines) + "\n")


class WebServers:
    """Starts web servers in workdir; cleanup() stops all of them."""

    def __init__(self, workdir):
        self.workdir = workdir
        self.started = []

    def _name(self, kind):
        return "%s%d" % (kind, next(kh._serial))

    def lighttpd(self, snippets, extra_conf="", port=None):
        s = LighttpdServer(self.workdir, self._name("lt"), snippets,
                           extra_conf=extra_conf, port=port)
        self.started.append(s)
        return s

    def apache(self, snippets, modules=(), extra_conf="", **kw):
        s = Apache(self.workdir, self._name("apache"), snippets, modules=modules,
                   extra_conf=extra_conf, **kw)
        self.started.append(s)
        return s

    def cleanup(self):
        for s in reversed(self.started):
            with contextlib.suppress(Exception):
                s.cleanup()


# --------------------------------------------------------------------------
# processes

def keygate_processes(config=None, binary=kh.KEYGATE_BIN):
    """[(pid, uid, environ dict)] of live processes running `binary`, only
    those with KEYGATE_CONFIG=config if given (other test runs may have
    keygate processes of their own on the machine)."""
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            exe = os.readlink("/proc/%s/exe" % name)
            st = os.stat("/proc/%s" % name)
            with open("/proc/%s/environ" % name, "rb") as f:
                raw = f.read()
        except OSError:
            continue
        # " (deleted)": the binary was rebuilt since the process started
        if exe not in (os.path.realpath(binary), os.path.realpath(binary) + " (deleted)"):
            continue
        env = {}
        for item in raw.split(b"\0"):
            k, sep, v = item.partition(b"=")
            if sep:
                env[k.decode("latin-1")] = v.decode("latin-1")
        if config is not None and env.get("KEYGATE_CONFIG") != config:
            continue
        if not kh.pid_alive(int(name)):
            continue
        out.append((int(name), st.st_uid, env))
    return out


def wait_gone(pids, timeout=15):
    """Wait until none of pids is alive; return the ones still alive."""
    deadline = time.monotonic() + timeout
    left = list(pids)
    while left and time.monotonic() < deadline:
        left = [p for p in left if kh.pid_alive(p)]
        if left:
            time.sleep(0.05)
    return left


# --------------------------------------------------------------------------
# the account API over HTTP

def uname(prefix="w"):
    return "%s_%s" % (prefix, uuid.uuid4().hex[:16])


def pword():
    return "web %s server!" % uuid.uuid4().hex


REALM = 'Bearer realm="keygate"'


def bearer(token):
    return {"Authorization": "Bearer " + token}


class Client:
    """The keygate API under base_url ('http://127.0.0.1:PORT/api')."""

    def __init__(self, base_url):
        self.base = base_url
        self.http = requests.Session()

    def request(self, method, path, body=None, headers=None, **kw):
        kw.setdefault("timeout", TIMEOUT)
        h = dict(headers or {})
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            h.setdefault("Content-Type", "application/json")
        return self.http.request(method, self.base + path, data=data, headers=h, **kw)

    def ok(self, r, status=200):
        assert r.status_code == status, (r.status_code, r.headers, r.text[:500])
        assert r.headers.get("Content-Type", "").startswith("application/json"), r.headers
        b = r.json()
        assert b.get("success") is True, b
        return b

    def join(self, username=None, password=None):
        username = username or uname()
        password = password or pword()
        b = self.ok(self.request("POST", "/join", {"username": username,
                                                   "password": password}), 201)
        return username, password, b["user_id"]

    def login(self, username, password):
        b = self.ok(self.request("POST", "/login", {"username": username,
                                                    "password": password}))
        assert b["token"] == b["key"] + "." + b["secret"], b
        return b

    def me(self, token):
        return self.request("GET", "/me", headers=bearer(token))

    def logout(self, token):
        return self.request("POST", "/logout", headers=bearer(token))

    def account_flow(self):
        """join, login, me, logout, me again: what every front must carry.
        Returns (user_id, username)."""
        r = self.request("GET", "/health")
        assert self.ok(r)["status"] == "ok"
        username, password, user_id = self.join()
        b = self.login(username, password)
        m = self.ok(self.me(b["token"]))
        assert m["user_id"] == user_id and m["username"] == username, m
        # the Key and Secret headers too
        m = self.ok(self.request("GET", "/me", headers={"Key": b["key"],
                                                        "Secret": b["secret"]}))
        assert m["user_id"] == user_id, m
        r = self.me("kg_1_" + "A" * 22 + "." + "B" * 49)
        assert r.status_code == 401, (r.status_code, r.text)
        assert r.headers.get("WWW-Authenticate", "").startswith('Bearer realm="keygate"'), r.headers
        out = self.ok(self.logout(b["token"]))
        assert out.get("key_removed") is True, out
        r = self.me(b["token"])
        assert r.status_code == 401, (r.status_code, r.text)
        return user_id, username

    def session(self):
        """A fresh user logged in: (user_id, username, login body)."""
        username, password, user_id = self.join()
        return user_id, username, self.login(username, password)

    def close(self):
        self.http.close()


def check_refused_after_logout_and_session_delete(site, assert_401):
    """The guarded folder of `site` refuses a token from the moment its
    session ends, by logout or from another session."""
    _, _, b = site.api.session()
    secret = site.files["secret.txt"]
    assert site.get("/private/secret.txt", headers=bearer(b["token"])).status_code == 200
    site.api.ok(site.api.logout(b["token"]))
    assert_401(site.get("/private/secret.txt", headers=bearer(b["token"])), secret)
    assert_401(site.get("/private/secret.txt",
                        headers={"Key": b["key"], "Secret": b["secret"]}), secret)

    # a session ended from another one (DELETE /sessions/{key})
    username, password, _ = site.api.join()
    first = site.api.login(username, password)
    second = site.api.login(username, password)
    assert site.get("/private/secret.txt", headers=bearer(first["token"])).status_code == 200
    site.api.ok(site.api.request("DELETE", "/sessions/" + first["key"],
                                 headers=bearer(second["token"])))
    assert_401(site.get("/private/secret.txt", headers=bearer(first["token"])), secret)
    assert site.get("/private/secret.txt", headers=bearer(second["token"])).status_code == 200


def check_backend_sees_keygate_variables(site):
    """The program behind the guarded folder gets the authorizer's
    KEYGATE_* variables, never ones a client sent."""
    user_id, username, b = site.api.session()
    r = site.get("/private/whoami.cgi", headers=bearer(b["token"]))
    assert r.status_code == 200, (r.status_code, r.text[:500])
    env = r.json()
    assert env.get("KEYGATE_USER_ID") == str(user_id), env
    assert env.get("KEYGATE_USERNAME") == username, env
    assert env.get("KEYGATE_SCOPES") == "*", env

    # what a client sends cannot pose as the authorizer's variables
    forged = dict(bearer(b["token"]))
    forged.update({"Variable-KEYGATE_USER_ID": "999999",
                   "Keygate-User-Id": "999999",
                   "X-Keygate-User-Id": "999999"})
    r = site.get("/private/whoami.cgi", headers=forged)
    assert r.status_code == 200, (r.status_code, r.text[:500])
    env = r.json()
    assert env.get("KEYGATE_USER_ID") == str(user_id), env
    assert not [k for k, v in env.items() if k.startswith("KEYGATE_") and v == "999999"], env

    # and without a token the program does not run at all
    r = site.get("/private/whoami.cgi")
    assert r.status_code == 401 and "KEYGATE_USER_ID" not in r.text, r.text[:300]


def longest_scopes():
    """The largest scope set a login accepts: 16 scopes of 64 characters."""
    return ["s%02d:" % i + "x" * 60 for i in range(16)]


def check_longest_scopes_delivered(site):
    """A token with the largest scope set passes /auth and the guarded
    folder with every scope, never a 500 (a 511-byte cap on header values
    once made both fail)."""
    username, password, user_id = site.api.join()
    scopes = longest_scopes()
    assert len(" ".join(scopes)) == 16 * 64 + 15
    b = site.api.ok(site.api.request("POST", "/login", {
        "username": username, "password": password, "scopes": scopes}))
    assert b["scopes"] == scopes, b
    r = site.api.request("GET", "/auth", headers=bearer(b["token"]))
    assert site.api.ok(r)["scopes"] == scopes
    assert r.headers.get("X-Keygate-Scopes") == " ".join(scopes), r.headers
    r = site.get("/private/whoami.cgi", headers=bearer(b["token"]))
    assert r.status_code == 200, (r.status_code, r.text[:500])
    env = r.json()
    assert env.get("KEYGATE_USER_ID") == str(user_id), env
    assert env.get("KEYGATE_SCOPES") == " ".join(scopes), env
    r = site.get("/private/secret.txt", headers=bearer(b["token"]))
    assert r.status_code == 200 and r.text == site.files["secret.txt"], r.status_code


def assert_refused(r, content, statuses=(401,)):
    """r is a refusal (one of statuses) and does not carry content."""
    assert r.status_code in statuses, (r.status_code, r.headers, r.text[:500])
    assert content not in r.text, r.text[:500]
    return r


# --------------------------------------------------------------------------
# a site: /api/ and /private/ (guarded by keygate as FastCGI authorizer)
# behind lighttpd or Apache, as the shipped snippets set them up

SERVERS = ("lighttpd", "apache")

LIGHTTPD_CGI_CONF = """
server.modules += ( "mod_cgi" )
$HTTP["url"] =~ "^/private/.*\\.cgi$" {
	cgi.assign = ( ".cgi" => "" )
}
"""


def apache_cgi_conf(private):
    return ('<Directory "%s/">\n'
            '    Options +ExecCGI\n'
            '    AddHandler cgi-script .cgi\n'
            '</Directory>\n' % private)


def require_apache():
    """Apache is part of the suite, not an optional extra: without it a test
    that needs it fails with the command that installs it (as the browser
    test does), instead of a green run that never started Apache."""
    import pytest
    missing = [p for p in (APACHE_BIN, os.path.join(APACHE_MODULES, "mod_fcgid.so"))
               if not os.path.exists(p)]
    if missing:
        pytest.fail("Apache is not installed (missing %s): apt-get install apache2 "
                    "libapache2-mod-fcgid (scripts/test installs them as root)"
                    % ", ".join(missing))


def new_private_dir(workdir, kind):
    """A fresh guarded folder (make_private_dir): (path, files)."""
    path = os.path.join(workdir, "%s-private-%d" % (kind, next(kh._serial)))
    return path, make_private_dir(path)


def lighttpd_authorizer_snippets(socket_path, private):
    return [
        (os.path.join(LIGHTTPD_CONF, "keygate.conf"), {POOL_SOCKET: socket_path}),
        (os.path.join(LIGHTTPD_CONF, "keygate-authorizer.conf"),
         {PRIVATE_DIR: private + "/"}),
    ]


def lighttpd_spawn_snippet(ini, sock, breakage):
    return (os.path.join(LIGHTTPD_CONF, "keygate-spawn.conf"),
            {INSTALLED_BINARY: kh.KEYGATE_BIN, INSTALLED_CONFIG: ini,
             SPAWN_SOCKET: sock, BREAKAGE_LOG: breakage})


def apache_fcgid_snippet(ini, private):
    return [(os.path.join(APACHE_CONF, "keygate.conf"),
             {INSTALLED_BINARY: kh.KEYGATE_BIN, INSTALLED_CONFIG: ini,
              PRIVATE_DIR: private + "/"})]


class Site:
    """/api/ and /private/ behind one web server.

    kind ('lighttpd' or 'apache'), web (the server), private, files (as
    make_private_dir), api (Client on /api/), kg (the pool, for lighttpd in
    front of a pool), ini (keygate's INI file, where the web server starts
    keygate), keygate_log (file where keygate's own lines end up)."""

    def __init__(self, kind, web, private, files, kg=None, ini=None, keygate_log=None):
        self.kind, self.web, self.private, self.files = kind, web, private, files
        self.kg, self.ini, self.keygate_log = kg, ini, keygate_log
        self.api = Client(web.base_url)

    def get(self, path, **kw):
        return self.web.get(path, **kw)

    def assert_401(self, r, content):
        """The web server's refusal: 401 with keygate's WWW-Authenticate,
        and not content. lighttpd passes keygate's JSON body on; mod_fcgid
        replaces it by Apache's error page."""
        assert_refused(r, content)
        assert r.headers.get("WWW-Authenticate", "").startswith(REALM), r.headers
        if self.kind == "lighttpd":
            b = r.json()
            assert b["success"] is False and b["error"] == "invalid_token", b


def start_lighttpd_site(servers, kgf, workdir, **overrides):
    """A keygate pool (kgf.start) and lighttpd with the pool snippet and the
    authorizer snippet."""
    kg = kgf.start(**dict(RELAXED, **overrides))
    private, files = new_private_dir(workdir, "lighttpd")
    lt = servers.lighttpd(lighttpd_authorizer_snippets(kg.socket, private),
                          extra_conf=LIGHTTPD_CGI_CONF)
    return Site("lighttpd", lt, private, files, kg=kg, keygate_log=kg.log_path)


def start_apache_site(servers, workdir, pg, snippets_before=(), modules=(), extra_conf="",
                      **ini_overrides):
    """Apache with the mod_fcgid snippet: it starts keygate itself. Further
    snippets before it, modules and configuration may be given."""
    require_apache()
    n = next(kh._serial)
    ini = keygate_ini(os.path.join(workdir, "fcgid%d.ini" % n), pg, **ini_overrides)
    private, files = new_private_dir(workdir, "apache")
    ap = servers.apache(list(snippets_before) + apache_fcgid_snippet(ini, private),
                        modules=["fcgid", "cgid"] + list(modules),
                        extra_conf=extra_conf + apache_cgi_conf(private))
    return Site("apache", ap, private, files, ini=ini, keygate_log=ap.error_log)


def start_pool_for_apache(kgf, **overrides):
    """A keygate pool whose socket Apache's user may use, as keygate.socket
    has it: mode 0660, group of the web server's user (when root)."""
    group = {}
    if os.geteuid() == 0:
        group["listen_group"] = grp.getgrgid(pwd.getpwnam(APACHE_USER).pw_gid).gr_name
    return kgf.start(**dict(RELAXED, **dict(group, **overrides)))


@contextlib.contextmanager
def module_site(kind, servers, pg, workdir):
    """A site for a module's tests to share (lighttpd in front of its own
    pool, or Apache starting keygate), torn down after the with-block."""
    kgf = kh.KeygateFactory(workdir, pg)
    try:
        if kind == "lighttpd":
            s = start_lighttpd_site(servers, kgf, workdir)
        else:
            s = start_apache_site(servers, workdir, pg)
        yield s
        s.api.close()
    finally:
        kgf.cleanup()


def start_site(kind, servers, kgf, workdir, pg):
    if kind == "lighttpd":
        return start_lighttpd_site(servers, kgf, workdir, workers=1)
    return start_apache_site(servers, workdir, pg)


def start_site_whose_keygate_cannot_start(kind, servers, workdir, pg):
    """The web server starts keygate with a configuration keygate refuses
    (it exits at once, every time): lighttpd through the spawn snippet (with
    the authorizer on its socket), Apache through mod_fcgid."""
    if kind == "apache":
        return start_apache_site(servers, workdir, pg, workers="lots")
    name = "spawnbad%d" % next(kh._serial)
    ini = keygate_ini(os.path.join(workdir, name + ".ini"), pg, workers="lots")
    breakage = os.path.join(workdir, name + "-breakage.log")
    private, files = new_private_dir(workdir, "lighttpd")
    lt = servers.lighttpd([
        lighttpd_spawn_snippet(ini, os.path.join(workdir, name + ".sock"), breakage),
        (os.path.join(LIGHTTPD_CONF, "keygate-authorizer.conf"), {PRIVATE_DIR: private + "/"}),
    ], extra_conf=LIGHTTPD_CGI_CONF)
    return Site("lighttpd", lt, private, files, ini=ini, keygate_log=breakage)


def copy_etc(src, dst, tries=3):
    """Copy a configuration tree (/etc/lighttpd, /etc/apache2) keeping
    symlinks and leaving out anything of keygate's: a keygate package may be
    installed or purged on this machine meanwhile, so a file that vanishes
    during the copy makes it start again (at most `tries` times)."""
    def ignore(_dir, names):
        return [n for n in names if "keygate" in n]
    for attempt in range(tries):
        try:
            shutil.copytree(src, dst, symlinks=True, ignore=ignore)
            return dst
        except (shutil.Error, OSError):
            shutil.rmtree(dst, ignore_errors=True)
            if attempt == tries - 1:
                raise
            time.sleep(0.5)
    return dst
