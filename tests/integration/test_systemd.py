"""systemd: the shipped units (conf/systemd/) and the two ways a listening
socket reaches keygate from outside.

- `systemd-analyze verify` accepts the four units (ExecStart pointed at the
  built binary; man: links are checked on the installed units by
  test_package.py, where the man pages exist);
- `systemd-analyze security --offline=true` puts keygate.service and
  keygate-prune.service in its "OK" band or better;
- the units say what the deployment depends on (socket path, mode, group;
  StandardInput=socket; SIGHUP reload; KillMode=mixed; the sandbox), and
  the web-server snippets use the same socket path;
- systemd-socket-activate (socket on fd 3, LISTEN_FDS/LISTEN_PID) and
  spawn-fcgi (socket on fd 0) both get a pool that serves requests, reloads
  on SIGHUP and drains on SIGTERM.

systemd does not need to be PID 1 for any of this (nor is it in CI):
verify and the offline security analysis read the unit files, and the two
launchers are stand-alone programs.
"""

import contextlib
import os
import re
import shutil
import socket
import signal
import subprocess
import uuid

import pytest

import kgharness

REPO = kgharness.REPO
UNIT_DIR = os.path.join(REPO, "conf", "systemd")
UNITS = ("keygate.socket", "keygate.service", "keygate-prune.service",
         "keygate-prune.timer")
INSTALLED_BIN = "/usr/bin/keygate"
SOCKET_PATH = "/run/keygate/keygate.sock"

# Exposure bands of systemd-analyze security, best first.
GOOD_BANDS = ("PERFECT", "SAFE", "OK")


def need_tool(name, package):
    path = shutil.which(name)
    if path is None:
        pytest.fail("%s not found: apt-get install %s" % (name, package))
    return path


def parse_unit(path):
    """{section: {key: [values...]}} of a unit file (every assignment kept,
    in order; an empty assignment is kept as '')."""
    out, section = {}, None
    with open(path) as f:
        for raw in f:
            line = raw.strip()
            if not line or line[0] in "#;":
                continue
            if line.startswith("[") and line.endswith("]"):
                section = out.setdefault(line[1:-1], {})
                continue
            key, sep, value = line.partition("=")
            assert sep, "%s: not key=value: %r" % (path, raw)
            assert not value.endswith("\\"), "%s: continuation lines not expected" % path
            section.setdefault(key.strip(), []).append(value.strip())
    return out


def one(unit, section, key):
    values = unit.get(section, {}).get(key)
    assert values, "[%s] %s= missing" % (section, key)
    return values[-1]


@pytest.fixture
def unit_copies(tmp_path):
    """The units in a temporary directory with ExecStart= pointing at the
    built binary (verify checks that the program exists)."""
    if not os.access(kgharness.KEYGATE_BIN, os.X_OK):
        pytest.fail("keygate binary %s not built" % kgharness.KEYGATE_BIN)
    for name in UNITS:
        with open(os.path.join(UNIT_DIR, name)) as f:
            text = f.read()
        (tmp_path / name).write_text(text.replace(INSTALLED_BIN, kgharness.KEYGATE_BIN))
    return tmp_path


def test_units_pass_systemd_analyze_verify(unit_copies):
    need_tool("systemd-analyze", "systemd")
    paths = [str(unit_copies / n) for n in UNITS]
    p = subprocess.run(["systemd-analyze", "verify", "--man=no"] + paths,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       universal_newlines=True, timeout=60, cwd=str(unit_copies))
    assert p.returncode == 0, p.stdout
    # verify reports most problems as warnings with exit status 0: none allowed
    assert p.stdout.strip() == "", p.stdout


def security_exposure(unit_path):
    p = subprocess.run(["systemd-analyze", "security", "--offline=true",
                        "--no-pager", unit_path],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       universal_newlines=True, timeout=60,
                       cwd=os.path.dirname(unit_path))
    assert p.returncode == 0, p.stdout + p.stderr
    name = os.path.basename(unit_path)
    m = re.search(r"Overall exposure level for %s: ([0-9.]+) (\w+)" % re.escape(name),
                  p.stdout)
    assert m, p.stdout + p.stderr
    return float(m.group(1)), m.group(2), p.stdout


@pytest.mark.parametrize("name", ["keygate.service", "keygate-prune.service"])
def test_security_score_is_ok_or_better(unit_copies, name):
    need_tool("systemd-analyze", "systemd")
    score, band, report = security_exposure(str(unit_copies / name))
    print("systemd-analyze security %s: %.1f %s" % (name, score, band))
    failing = "\n".join(l for l in report.splitlines() if l.startswith("\u2717"))
    assert band in GOOD_BANDS and score < 5.0, (
        "%s: exposure %.1f %s, want OK or better; open points:\n%s"
        % (name, score, band, failing))


def test_socket_unit():
    u = parse_unit(os.path.join(UNIT_DIR, "keygate.socket"))
    assert u["Socket"]["ListenStream"] == [SOCKET_PATH]
    mode = int(one(u, "Socket", "SocketMode"), 8)
    assert mode == 0o660
    assert mode & 0o007 == 0, "the socket must never be reachable by other users"
    assert one(u, "Socket", "SocketGroup") == "www-data"
    assert one(u, "Socket", "Accept").lower() in ("no", "false")
    assert "sockets.target" in one(u, "Install", "WantedBy").split()


def test_service_unit():
    u = parse_unit(os.path.join(UNIT_DIR, "keygate.service"))
    s = u["Service"]
    assert one(u, "Service", "ExecStart").split() == [INSTALLED_BIN, "serve"]
    assert "keygate.socket" in one(u, "Unit", "Requires").split()
    assert one(u, "Service", "StandardInput") == "socket"
    assert one(u, "Service", "StandardOutput") == "journal"
    assert one(u, "Service", "StandardError") == "journal"
    assert one(u, "Service", "ExecReload") == "/bin/kill -HUP $MAINPID"
    assert one(u, "Service", "KillMode") == "mixed"
    # systemd must wait longer than keygate's own drain (shutdown_timeout, 30 s)
    assert int(one(u, "Service", "TimeoutStopSec")) > 30
    assert one(u, "Service", "User") == "keygate" or \
        s.get("DynamicUser", ["no"])[-1] == "yes"
    for key, value in [("NoNewPrivileges", "yes"), ("ProtectSystem", "strict"),
                       ("ProtectHome", "yes"), ("PrivateTmp", "yes"),
                       ("PrivateDevices", "yes"), ("CapabilityBoundingSet", "")]:
        assert one(u, "Service", key) == value, key
    assert one(u, "Service", "RestrictAddressFamilies").split() == \
        ["AF_UNIX", "AF_INET", "AF_INET6"]
    assert "@system-service" in s["SystemCallFilter"]


def test_prune_units():
    svc = parse_unit(os.path.join(UNIT_DIR, "keygate-prune.service"))
    assert one(svc, "Service", "Type") == "oneshot"
    assert one(svc, "Service", "ExecStart").split() == [INSTALLED_BIN, "prune"]
    assert one(svc, "Service", "User") == "keygate"
    timer = parse_unit(os.path.join(UNIT_DIR, "keygate-prune.timer"))
    assert one(timer, "Timer", "OnCalendar")
    # no Unit=: the timer starts the service of the same name
    assert "Unit" not in timer["Timer"]
    assert "timers.target" in one(timer, "Install", "WantedBy").split()


@pytest.mark.parametrize("snippet", [
    "conf/lighttpd/keygate.conf",
    "conf/apache2/keygate-proxy.conf",
])
def test_web_server_snippets_use_the_unit_socket(snippet):
    with open(os.path.join(REPO, snippet)) as f:
        text = f.read()
    assert SOCKET_PATH in text, "%s does not name %s" % (snippet, SOCKET_PATH)


def test_lighttpd_authorizer_uses_the_api_snippets_socket():
    """51-keygate-authorizer.conf names no socket of its own: it takes
    var.keygate_socket from whichever API snippet is enabled, the unit's
    socket in 50-keygate.conf, the one lighttpd makes in the spawn one."""
    def text(name):
        with open(os.path.join(REPO, "conf", "lighttpd", name)) as f:
            return f.read()
    assert re.search(r'"socket"\s*=>\s*var\.keygate_socket,', text("keygate-authorizer.conf"))
    assert SOCKET_PATH not in text("keygate-authorizer.conf")
    assert 'var.keygate_socket = "%s"' % SOCKET_PATH in text("keygate.conf")
    assert re.search(r'var\.keygate_socket = var\.keygate_spawn_socket \+ "-0"',
                     text("keygate-spawn.conf"))


# --------------------------------------------------------------------------
# keygate under the two launchers

def add_user(pg, workdir):
    """A fresh user through the CLI of the built binary; (name, password)."""
    name = "sd_" + uuid.uuid4().hex[:10]
    password = "systemd socket activation " + uuid.uuid4().hex[:8]
    ini = kgharness.write_ini(os.path.join(workdir, name + ".conf"), None)
    p = subprocess.run([kgharness.KEYGATE_BIN, "-c", ini, "user", "add", name,
                        "--password-stdin"], input=password + "\n",
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       universal_newlines=True, env=kgharness.keygate_env(pg),
                       timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr
    return name, password


def sighup_replaces_the_workers(master, timeout):
    """SIGHUP to master; wait until both its workers are new ones."""
    before = set(kgharness.children_of(master))
    os.kill(master, signal.SIGHUP)
    kgharness.wait_until(
        lambda: (len(kgharness.children_of(master)) == 2
                 and not before & set(kgharness.children_of(master))),
        timeout, what="workers replaced after SIGHUP")


def serves_a_login(address, name, password):
    """health, login, me and logout over FastCGI on address."""
    r = kgharness.fcgi_request(address, "GET", "/api/health")
    assert r.status == 200, r
    r = kgharness.fcgi_request(address, "POST", "/api/login",
                               body={"username": name, "password": password},
                               remote_addr="192.0.2.%d" % (os.getpid() % 250 + 1))
    assert r.status == 200, r
    token = r.json()["token"]
    auth = {"Authorization": "Bearer " + token}
    r = kgharness.fcgi_request(address, "GET", "/api/me", headers=auth)
    assert r.status == 200, r
    assert r.json()["username"] == name
    r = kgharness.fcgi_request(address, "POST", "/api/logout", headers=auth)
    assert r.status == 200, r


class Launched:
    """keygate started by a launcher that execs it in place (same pid)."""

    def __init__(self, argv, env, log_path):
        self.log_path = log_path
        self._logf = open(log_path, "ab")
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                     stdout=self._logf, stderr=subprocess.STDOUT,
                                     env=env, start_new_session=True)

    def log(self):
        return kgharness.read_text(self.log_path)

    def cleanup(self):
        kgharness.stop_group(self.proc)
        self._logf.close()


@pytest.fixture
def launch(kg_workdir):
    started = []

    def start(argv, env, name):
        la = Launched(argv, env, os.path.join(kg_workdir, name + ".log"))
        started.append(la)
        return la
    yield start
    for la in started:
        la.cleanup()


def launcher_env(pg, workdir):
    """keygate's environment; `listen` names a directory that does not
    exist, so binding its own socket instead of using the one handed over
    fails loudly."""
    return kgharness.keygate_env(pg, {
        "workers": 2,
        "listen": os.path.join(workdir, "no-such-dir", "must-not-bind.sock"),
    })


def exercise_pool(la, sock, name, password, expect_log):
    pid = la.proc.pid

    def ready():
        if la.proc.poll() is not None:
            raise AssertionError("keygate exited (%s):\n%s" % (la.proc.returncode, la.log()))
        return kgharness.fcgi_request(sock, "GET", "/api/health", timeout=5).status == 200
    kgharness.wait_until(ready, 20, what="keygate to answer on %s" % sock)
    # the launcher exec'd keygate in place: the master is the launched pid
    with open("/proc/%d/cmdline" % pid, "rb") as f:
        assert os.path.basename(f.read().split(b"\0")[0]) == b"keygate"
    kgharness.wait_until(lambda: len(kgharness.children_of(pid)) == 2, 15,
                         what="2 workers")
    assert expect_log in la.log()
    serves_a_login(sock, name, password)

    # ExecReload: SIGHUP replaces the workers, the socket keeps serving
    sighup_replaces_the_workers(pid, 20)
    serves_a_login(sock, name, password)

    # KillMode=mixed: SIGTERM to the master alone drains and exits 0
    os.kill(pid, signal.SIGTERM)
    assert la.proc.wait(timeout=40) == 0, la.log()


def test_systemd_socket_activate_fd3(pg, kg_workdir, launch):
    """The socket arrives as systemd passes it: fd 3, LISTEN_FDS=1,
    LISTEN_PID=keygate's pid (systemd-socket-activate execs keygate in
    place on the first connection)."""
    tool = need_tool("systemd-socket-activate", "systemd")
    name, password = add_user(pg, kg_workdir)
    sock = os.path.join(kg_workdir, "sa%d.sock" % os.getpid())
    env = launcher_env(pg, kg_workdir)
    ini = kgharness.write_ini(os.path.join(kg_workdir, "sa.conf"), None)
    # systemd-socket-activate passes on only the variables named with -E
    argv = [tool, "-l", sock]
    for k in sorted(env):
        if k.startswith("KEYGATE_") or k in ("LANG", "PATH"):
            argv += ["-E", k]
    argv += [kgharness.KEYGATE_BIN, "-c", ini, "serve"]
    la = launch(argv, env, "socket-activate")
    kgharness.wait_until(lambda: os.path.exists(sock), 10, what="the socket")
    exercise_pool(la, sock, name, password, "listening on the socket passed by systemd")


def test_spawn_fcgi_fd0(pg, kg_workdir, launch):
    """The socket arrives the FastCGI way: on fd 0 (spawn-fcgi -n execs
    keygate in place with the bound socket as standard input)."""
    tool = need_tool("spawn-fcgi", "spawn-fcgi")
    name, password = add_user(pg, kg_workdir)
    sock = os.path.join(kg_workdir, "sf%d.sock" % os.getpid())
    env = launcher_env(pg, kg_workdir)
    ini = kgharness.write_ini(os.path.join(kg_workdir, "sf.conf"), None)
    la = launch([tool, "-s", sock, "-M", "0660", "-n", "--",
                 kgharness.KEYGATE_BIN, "-c", ini, "serve"], env, "spawn-fcgi")
    kgharness.wait_until(lambda: os.path.exists(sock), 10, what="the socket")
    assert os.stat(sock).st_mode & 0o777 == 0o660
    exercise_pool(la, sock, name, password, "listening on the inherited socket (fd 0)")


def test_prune_command_runs(pg, kg_workdir):
    """What keygate-prune.service runs."""
    r = kgharness.run_keygate(["prune"], kg_workdir, pg=pg)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.startswith("pruned "), r.stdout


# --------------------------------------------------------------------------
# the units' system-call filter against what keygate really calls

_groups = {}


def syscall_set(item):
    """The system calls a SystemCallFilter= item stands for: a @group
    (expanded recursively by systemd-analyze syscall-filter) or one name."""
    if not item.startswith("@"):
        return {item}
    if item not in _groups:
        p = subprocess.run(["systemd-analyze", "syscall-filter", "--no-pager", item],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           universal_newlines=True, timeout=30)
        assert p.returncode == 0, p.stdout
        names = set()
        for line in p.stdout.splitlines()[1:]:
            word = line.strip()
            if not word or word.startswith("#"):
                continue
            names |= syscall_set(word)
        _groups[item] = names
    return _groups[item]


def unit_allowed_syscalls(name):
    """The allow-list that the unit's SystemCallFilter= lines build, in
    order: the first plain line starts it, plain lines add, ~ lines remove."""
    values = parse_unit(os.path.join(UNIT_DIR, name))["Service"]["SystemCallFilter"]
    allowed = None
    for v in values:
        names = set()
        for item in v.lstrip("~").split():
            names |= syscall_set(item)
        if v.startswith("~"):
            assert allowed is not None, "%s: deny-list filters not handled here" % name
            allowed -= names
        elif allowed is None:
            allowed = names
        else:
            allowed |= names
    return allowed


def traced_syscalls(path):
    """Names of the system calls in an `strace -f -o path` log."""
    used = set()
    with open(path) as f:
        for line in f:
            m = re.match(r"\d+\s+([a-z0-9_]+)\(", line)
            if m:
                used.add(m.group(1))
    return used


def test_syscalls_stay_within_the_units_filter(pg, kg_workdir):
    """Every system call keygate makes while starting, serving logins,
    reloading and draining -- and `keygate prune` -- is one the unit's
    SystemCallFilter= allows. (Under SystemCallErrorNumber=EPERM a call
    outside it would not kill keygate but fail quietly.) The pool gets its
    socket on fd 0, as from StandardInput=socket."""
    strace = need_tool("strace", "strace")
    need_tool("systemd-analyze", "systemd")
    serve_allowed = unit_allowed_syscalls("keygate.service")
    prune_allowed = unit_allowed_syscalls("keygate-prune.service")
    name, password = add_user(pg, kg_workdir)
    ini = kgharness.write_ini(os.path.join(kg_workdir, "strace.conf"), None)
    sock_path = os.path.join(kg_workdir, "st%d.sock" % os.getpid())
    trace = os.path.join(kg_workdir, "strace-serve.txt")
    log_path = os.path.join(kg_workdir, "strace-keygate.log")
    env = launcher_env(pg, kg_workdir)

    lsock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    lsock.bind(sock_path)
    lsock.listen(128)
    with open(log_path, "ab") as log:
        proc = subprocess.Popen([strace, "-f", "-qq", "-o", trace, "--",
                                 kgharness.KEYGATE_BIN, "-c", ini, "serve"],
                                stdin=lsock.fileno(), stdout=log,
                                stderr=subprocess.STDOUT, env=env,
                                start_new_session=True)
    lsock.close()
    try:
        master = kgharness.wait_until(lambda: kgharness.children_of(proc.pid), 15,
                                      what="keygate under strace")[0]
        kgharness.wait_until(lambda: len(kgharness.children_of(master)) == 2, 30,
                             what="2 workers under strace")
        serves_a_login(sock_path, name, password)
        r = kgharness.fcgi_request(sock_path, "POST", "/api/login",
                                   body={"username": name, "password": "wrong " * 4},
                                   remote_addr="198.51.100.7")
        assert r.status == 401, r
        sighup_replaces_the_workers(master, 30)
        serves_a_login(sock_path, name, password)
        os.kill(master, signal.SIGTERM)
        proc.wait(timeout=60)
    finally:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=10)
    used = traced_syscalls(trace)
    # the trace saw the pool at work: workers forked, connections accepted
    assert used & {"clone", "clone3", "fork"} and used & {"accept", "accept4"}, used
    assert not used - serve_allowed, (
        "keygate serve makes system calls keygate.service forbids: %s"
        % sorted(used - serve_allowed))

    trace = os.path.join(kg_workdir, "strace-prune.txt")
    p = subprocess.run([strace, "-f", "-qq", "-o", trace, "--",
                        kgharness.KEYGATE_BIN, "-c", ini, "prune"],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       universal_newlines=True, env=kgharness.keygate_env(pg),
                       timeout=60)
    assert p.returncode == 0, p.stdout
    used = traced_syscalls(trace)
    assert not used - prune_allowed, (
        "keygate prune makes system calls keygate-prune.service forbids: %s"
        % sorted(used - prune_allowed))
