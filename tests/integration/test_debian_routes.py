"""README.Debian's four routes, followed literally on this machine.

The commands come from the document itself (debian/README.Debian, the one
the package installs): for each route, section A (the database), the
route's own steps and section B (the check), in order, every line indented
by five spaces or more, run as root by one bash on a terminal -- the
"keygate user add" prompt is answered there, as a person would. Each
command must exit 0, and print what the "#" line after it says ("…"
stands for any text). The routes run against the installed .deb, the
system's PostgreSQL cluster (service postgresql start), and the system's
lighttpd and Apache on port 80, started by their init scripts as on a
machine without systemd as PID 1.

Steps that need systemd as PID 1 ("systemctl …") are not run as such:
each must be in PID1_STEPS, which checks the units it names with
`systemd-analyze verify` and runs what systemd would do instead. A
systemctl line the table does not know fails the test, so the document
cannot grow a step that nothing runs.

The machine is put back afterwards whatever happens: web servers stopped,
the snippets, modules and folders the routes enabled or made removed, the
keygate database and roles dropped, the cluster stopped if it was, the
package purged and its user deleted. Root only; about 4 minutes, most of
it the package build.
"""

import contextlib
import glob
import grp
import os
import pty
import re
import select
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import pytest

import kgharness
import test_package as tp

README = os.path.join(kgharness.REPO, "debian", "README.Debian")
ROUTES = ("Route 1", "Route 2", "Route 3", "Route 4")
PASSWORD = "a first account for the routes test"
KEYGATE = "/usr/bin/keygate"
UNITS = ["/lib/systemd/system/" + u for u in tp.UNITS]
ENABLE_DIRS = ("/etc/lighttpd/conf-enabled", "/etc/apache2/conf-enabled",
               "/etc/apache2/mods-enabled")
MADE_PATHS = ("/var/www/private", "/run/keygate", "/var/log/lighttpd/breakage.log",
              "/run/lighttpd/keygate.sock-0")
ROUTE_LOG = "/tmp/keygate-route1-keygate.log"

# What systemd would do for each PID-1 step of the document, as bash.
PID1_STEPS = {
    "systemctl enable --now keygate.socket keygate-prune.timer": """
test -z "$(systemd-analyze verify %(units)s 2>&1)" || { systemd-analyze verify %(units)s; false; }
mkdir -p -m 0755 /run/keygate
setsid systemd-socket-activate -l /run/keygate/keygate.sock \\
    setpriv --reuid=keygate --regid=keygate --init-groups %(bin)s serve \\
    </dev/null >>%(log)s 2>&1 &
for i in $(seq 100); do [ -S /run/keygate/keygate.sock ] && break; sleep 0.1; done
chgrp www-data /run/keygate/keygate.sock && chmod 0660 /run/keygate/keygate.sock
runuser -u keygate -- keygate prune >/dev/null
""" % {"units": " ".join(UNITS), "bin": KEYGATE, "log": ROUTE_LOG},
}


# --------------------------------------------------------------------------
# reading the document

def sections(text):
    """{title: body} of the sections (a title line underlined with dashes)."""
    lines = text.splitlines()
    out, title, body = {}, None, []
    for i, line in enumerate(lines):
        if i + 1 < len(lines) and re.fullmatch(r"-{3,}", lines[i + 1]) \
                and len(lines[i + 1]) == len(line):
            if title:
                out[title] = body
            title, body = line, []
        elif title and not re.fullmatch(r"-{3,}", line):
            body.append(line)
    if title:
        out[title] = body
    return out


def section(secs, prefix):
    found = [t for t in secs if t.startswith(prefix)]
    assert len(found) == 1, "README.Debian: no single section %r in %s" % (prefix, list(secs))
    return secs[found[0]]


def commands(body):
    """[(command, expected or None)]: lines indented by 5 or more, joined
    over trailing backslashes; a '#' line after one is what it prints."""
    out, cur = [], None
    for line in body:
        if not line.startswith("     ") or not line.strip():
            assert cur is None, "continued command ends in prose: %r" % cur
            continue
        text = line.strip()
        if cur is not None:
            cur += "\n" + line
        elif text.startswith("#"):
            assert out and out[-1][1] is None, "stray comment %r" % text
            out[-1] = (out[-1][0], text[1:].strip())
            continue
        else:
            cur = text
        if not cur.endswith("\\"):
            out.append((cur, None))
            cur = None
    assert cur is None, cur
    return out


def route_commands(route):
    with open(README, encoding="utf-8") as f:
        secs = sections(f.read())
    body = section(secs, route + ":")
    steps = "\n".join(body)
    assert "A above" in steps and "B below" in steps, \
        "%s does not start with A and end with B" % route
    return (commands(section(secs, "A. ")) + commands(body)
            + commands(section(secs, "B. ")))


def test_every_route_has_steps_and_the_shared_sections():
    with open(README, encoding="utf-8") as f:
        secs = sections(f.read())
    routes = sorted(t.split(":")[0] for t in secs if t.startswith("Route "))
    assert routes == list(ROUTES), routes
    for r in ROUTES:
        own = commands(section(secs, r + ":"))
        assert own, r
        for cmd, _ in own:
            if cmd.startswith("systemctl"):
                assert cmd in PID1_STEPS, "no non-systemd equivalent for %r" % cmd
    assert commands(section(secs, "A. "))
    check = "\n".join(c for c, _ in commands(section(secs, "B. ")))
    for what in ("/join", "/login", "/me", "/logout", "/private/"):
        assert what in check, what


# --------------------------------------------------------------------------
# running it

def script(cmds):
    """The bash script: each command between markers with its exit status."""
    lines = ["exec 2>&1", "export DEBIAN_FRONTEND=noninteractive"]
    for i, (cmd, _) in enumerate(cmds):
        if cmd.startswith("systemctl"):
            assert cmd in PID1_STEPS, "a PID-1 step with no equivalent: %r" % cmd
            cmd = PID1_STEPS[cmd]
        lines += ["echo '@@kg begin %d'" % i, cmd, "echo \"@@kg end %d $?\"" % i]
    return "\n".join(lines) + "\n"


def run_on_terminal(text, last, timeout=600):
    """bash -c text on a new terminal (its controlling tty); answers the
    password prompts; the output with \\r\\n made \\n, up to the marker
    after command `last` (a daemon started from the terminal, spawn-fcgi's
    keygate, may keep it open after bash has exited)."""
    pid, fd = pty.fork()
    if pid == 0:
        env = kgharness.clean_env({"TERM": "dumb", "LANG": "C.UTF-8",
                                   "HOME": "/root"})
        os.chdir("/")
        os.execve("/bin/bash", ["bash", "-c", text], env)
    out, answered, deadline = b"", 0, time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            r, _, _ = select.select([fd], [], [], 1)
            if not r:
                continue
            try:
                chunk = os.read(fd, 65536)
            except OSError:          # EIO: the terminal's last user left
                break
            if not chunk:
                break
            out += chunk
            prompts = out.count(b"New password: ") + out.count(b"Repeat it: ")
            if prompts > answered:
                os.write(fd, PASSWORD.encode() + b"\n")
                answered = prompts
            if re.search(rb"@@kg end %d \d+\r?\n" % last, out):
                break
        else:
            os.kill(pid, signal.SIGKILL)
            raise AssertionError("the route took over %d s:\n%s"
                                 % (timeout, out.decode(errors="replace")[-6000:]))
    finally:
        os.close(fd)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)
    return out.decode(errors="replace").replace("\r\n", "\n")


def check_outputs(cmds, out):
    for i, (cmd, expected) in enumerate(cmds):
        m = re.search(r"@@kg begin %d\n(.*?)@@kg end %d (\d+)\n" % (i, i), out, re.S)
        assert m, "command %d (%s) did not finish:\n%s" % (i, cmd, out[-6000:])
        printed, status = m.group(1), int(m.group(2))
        assert status == 0, "%s\nexit %d:\n%s\n(whole run:\n%s)" % (
            cmd, status, printed[-3000:], out[-8000:])
        if expected is not None:
            pattern = ".*".join(re.escape(p) for p in expected.split("…"))
            last = printed.strip().splitlines()[-1] if printed.strip() else ""
            assert re.fullmatch(pattern, last.strip()), \
                "%s\nprinted %r, README.Debian says %r" % (cmd, printed[-2000:], expected)


# --------------------------------------------------------------------------
# the machine

def psql(sql):
    return tp.run(["runuser", "-u", "postgres", "--", "psql", "-XAtq", "-c", sql],
                  check=False)


def cluster_online():
    return "online" in tp.run(["pg_lsclusters", "-h"], check=False).stdout


def port_taken(port):
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def installed_keygates():
    out = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            with contextlib.suppress(OSError):
                if os.readlink("/proc/%s/exe" % pid) == KEYGATE:
                    out.append(int(pid))
    return out


class Machine(tp.Purger):
    """Notes what the routes may change, and puts it back."""

    def __init__(self):
        super().__init__()
        self.links = {d: set(os.listdir(d)) if os.path.isdir(d) else set()
                      for d in ENABLE_DIRS}
        self.made = [p for p in MADE_PATHS if not os.path.lexists(p)]
        self.cluster_was_online = None
        self.roles = []

    def start_cluster(self):
        self.cluster_was_online = cluster_online()
        tp.run(["service", "postgresql", "start"])
        for role in ("keygate", "www-data"):
            r = psql("SELECT 1 FROM pg_roles WHERE rolname = '%s'" % role)
            assert r.returncode == 0, r.stdout
            if r.stdout.strip():
                pytest.fail("a PostgreSQL role %s exists in the system cluster; this "
                            "test creates and drops it: drop it first" % role)
        r = psql("SELECT 1 FROM pg_database WHERE datname = 'keygate'")
        if r.stdout.strip():
            pytest.fail("a database keygate exists in the system cluster; this test "
                        "creates and drops it: drop it first")
        self.roles = ["www-data", "keygate"]

    def cleanup(self):
        for svc in ("lighttpd", "apache2"):
            tp.run(["service", svc, "stop"], check=False)
        pids = installed_keygates()
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
            with contextlib.suppress(AssertionError):
                kgharness.wait_until(lambda: not installed_keygates(), 20,
                                     what="the installed keygate to exit")
        if self.cluster_was_online is not None:
            psql("DROP DATABASE IF EXISTS keygate")
            for role in self.roles:
                psql('DROP ROLE IF EXISTS "%s"' % role)
            if not self.cluster_was_online:
                tp.run(["service", "postgresql", "stop"], check=False)
        with contextlib.suppress(KeyError):
            if "www-data" in grp.getgrnam(tp.PKG).gr_mem:
                tp.run(["gpasswd", "-d", "www-data", tp.PKG], check=False)
        for d, before in self.links.items():
            if os.path.isdir(d):
                for name in set(os.listdir(d)) - before:
                    os.unlink(os.path.join(d, name))
        for p in self.made:
            if os.path.isdir(p) and not os.path.islink(p):
                tp.run(["rm", "-rf", "--one-file-system", p], check=False)
            elif os.path.lexists(p):
                os.unlink(p)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(ROUTE_LOG)
        super().cleanup()


@pytest.fixture(scope="module")
def deb():
    if os.geteuid() != 0:
        pytest.skip("needs root: installs the package, runs the system's "
                    "PostgreSQL, lighttpd and Apache")
    out = tempfile.mkdtemp(prefix="kg-routes-deb-", dir="/tmp")
    try:
        path, _ = tp.build_package(out)
        yield path
    finally:
        tp.run(["rm", "-rf", out], check=False)


@pytest.fixture
def machine(deb):
    for tool, package in [("service", "init-system-helpers"), ("pg_lsclusters", "postgresql-common"),
                          ("systemd-analyze", "systemd"),
                          ("systemd-socket-activate", "systemd"), ("setpriv", "util-linux"),
                          ("curl", "curl"), ("adduser", "adduser")]:
        if shutil.which(tool) is None:
            pytest.fail("%s not found: apt-get install %s" % (tool, package))
    if tp.dpkg_status():
        pytest.fail("the keygate package is installed: this test installs and purges "
                    "it, so purge it first")
    if tp.user_exists(tp.PKG) or tp.group_exists(tp.PKG):
        pytest.fail("a user or group named keygate exists without the package; "
                    "remove it first (deluser --system keygate)")
    if port_taken(80):
        pytest.fail("port 80 is taken: the routes run the system's web servers on it")
    m = Machine()
    try:
        tp.run(["apt-get", "install", "-y", "--no-install-recommends", deb], timeout=300)
        m.start_cluster()
        yield m
    finally:
        m.cleanup()


@pytest.mark.parametrize("route", ROUTES)
def test_route_as_written(route, machine):
    cmds = route_commands(route)
    out = run_on_terminal(script(cmds), len(cmds) - 1)
    check_outputs(cmds, out)
    if route == "Route 3":
        # lighttpd ran as a daemon: keygate's lines are in the breakage log
        log = kgharness.read_text("/var/log/lighttpd/breakage.log")
        assert "listening on the inherited socket (fd 0)" in log, log[-3000:]
    # every route served the check from the installed program
    assert installed_keygates(), "no /usr/bin/keygate process served the check"
    if route == "Route 4":
        # removing the package stops the pool spawn-fcgi started and takes
        # what it left in /run/keygate (socket, pid file), and the folder
        r = tp.run(["apt-get", "remove", "-y", tp.PKG], timeout=300)
        assert "stopping the pool of /run/keygate/keygate.pid" in r.stdout, r.stdout
        assert not installed_keygates(), "the spawn-fcgi pool outlived apt-get remove"
        assert not os.path.lexists("/run/keygate"), os.listdir("/run/keygate")
