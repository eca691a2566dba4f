"""Shared helpers for keygate's integration tests (and scripts/run).

Everything here starts real programs in a temporary directory and knows how
to stop them again: a throw-away PostgreSQL cluster (PgCluster), the keygate
pool (Keygate), a lighttpd front (Lighttpd), the three together (Stack), and
a small FastCGI client (FCGIConnection, fcgi_request) that talks to the
keygate socket directly, byte by byte if a test needs to.

scripts/run uses the PostgreSQL part as a program (main() at the end):
  /usr/bin/python3 tests/integration/kgharness.py pg-start DIR [--fresh]
prints the conninfo of the cluster in DIR/pg; pg-stop DIR stops it.

The fixtures in conftest.py wrap these classes; the class and function
docstrings below are the reference for what the fixtures hand out.

Environment knobs (all optional):
  KG_KEYGATE   keygate binary           (default <repo>/src/keygate)
  KG_PGBIN     PostgreSQL bin directory (default /usr/lib/postgresql/15/bin)
  KG_LIGHTTPD  lighttpd binary          (default /usr/sbin/lighttpd)
  KG_PG_USER   unprivileged user that runs PostgreSQL when we are root
               (default nobody)
  KG_KEEP=1    keep the temporary directory (logs, cluster) after the run
"""

import atexit
import contextlib
import itertools
import json
import os
import pwd
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
KEYGATE_BIN = os.environ.get("KG_KEYGATE") or os.path.join(REPO, "src", "keygate")
PGBIN = os.environ.get("KG_PGBIN") or "/usr/lib/postgresql/15/bin"
LIGHTTPD_BIN = os.environ.get("KG_LIGHTTPD") or "/usr/sbin/lighttpd"
LIGHTTPD_SNIPPET = os.path.join(REPO, "conf", "lighttpd", "keygate.conf")
SNIPPET_SOCKET = "/run/keygate/keygate.sock"  # what the shipped snippet names
MIGRATIONS_DIR = os.path.join(REPO, "db", "migrations")
COMMON_PASSWORDS = os.path.join(REPO, "data", "common-passwords.txt")


class HarnessError(Exception):
    """A server could not be started or stopped as the harness expected."""


# --------------------------------------------------------------------------
# small utilities

_live = []            # objects with .cleanup(), killed at interpreter exit
_created = []         # every server object ever started (for failure logs)
_live_lock = threading.Lock()
_serial = itertools.count(1)   # names unique per process: kg1, kg2, lighttpd3...


def _register(obj):
    with _live_lock:
        if obj not in _live:
            _live.append(obj)
        if obj not in _created:
            _created.append(obj)


def log_tails(objs, nbytes=6000):
    """'--- name ---' + the end of each object's log, for failure reports."""
    parts = []
    for obj in objs:
        for attr in ("log_path", "logfile", "error_log"):
            path = getattr(obj, attr, None)
            if path:
                parts.append("--- %r: %s ---\n%s" % (obj, path, tail(path, nbytes)))
    return "\n".join(parts)


def _unregister(obj):
    with _live_lock:
        if obj in _live:
            _live.remove(obj)


@atexit.register
def _cleanup_everything():
    # Last resort (e.g. KeyboardInterrupt between fixtures): newest first.
    for obj in reversed(list(_live)):
        try:
            obj.cleanup()
        except Exception:
            pass


def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(pred, timeout, interval=0.05, what="condition"):
    """Call pred() until it returns something truthy; return that value.

    Raises HarnessError after `timeout` seconds. Exceptions from pred count
    as "not yet" (the last one is reported)."""
    deadline = time.monotonic() + timeout
    last_exc = None
    while True:
        try:
            v = pred()
            if v:
                return v
        except Exception as e:  # noqa: BLE001 - reported below
            last_exc = e
        if time.monotonic() >= deadline:
            msg = "timed out after %.1fs waiting for %s" % (timeout, what)
            if last_exc is not None:
                msg += " (last error: %r)" % (last_exc,)
            raise HarnessError(msg)
        time.sleep(interval)


def tail(path, nbytes=8000):
    """The last nbytes of a text file ('' if it does not exist)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - nbytes))
            return f.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return ""


def read_text(path):
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return ""


def stop_group(proc, timeout=10):
    """Stop a process started in its own session: SIGTERM and up to
    `timeout` seconds to leave, then SIGKILL to whatever is left of its
    process group (workers, spawned children)."""
    if proc is None:
        return
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=timeout)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=10)


def rss_and_fds(pid):
    """(VmRSS in KiB or None, number of open fds) of pid, from /proc.
    OSError when pid is gone."""
    rss = None
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
    return rss, len(os.listdir("/proc/%d/fd" % pid))


def live_processes():
    """(pid, ppid, pgrp) of every live (non-zombie) process, from /proc."""
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name, "rb") as f:
                stat = f.read().decode("ascii", "replace")
        except OSError:
            continue
        # comm may contain spaces and parentheses: split after the last ')'
        rest = stat[stat.rfind(")") + 2:].split()
        if len(rest) < 3 or rest[0] in ("Z", "X"):
            continue
        yield int(name), int(rest[1]), int(rest[2])


def children_of(pid):
    """Live (non-zombie) processes whose parent is pid, sorted."""
    return sorted(p for p, ppid, _ in live_processes() if ppid == pid)


def sysv_semaphores():
    """Ids of the System V semaphore sets on the machine (/proc/sysvipc/sem)."""
    with open("/proc/sysvipc/sem") as f:
        return {int(line.split()[1]) for line in f.readlines()[1:] if line.strip()}


def pid_alive(pid):
    """True while pid exists and is not a zombie."""
    try:
        with open("/proc/%d/stat" % pid, "rb") as f:
            stat = f.read().decode("ascii", "replace")
    except OSError:
        return False
    return stat[stat.rfind(")") + 2:].split()[0] not in ("Z", "X")


def clean_env(extra=None):
    """os.environ without KEYGATE_* and PG* variables, plus extra."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("KEYGATE_") and not k.startswith("PG")}
    env.setdefault("LANG", "C.UTF-8")
    if extra:
        for k, v in extra.items():
            if v is None:
                env.pop(k, None)
            else:
                env[k] = str(v)
    return env


def conf_value(v):
    """Render a Python value the way keygate's config expects it."""
    if v is True:
        return "true"
    if v is False:
        return "false"
    return str(v)


def overrides_env(overrides):
    """{'workers': 2, 'status_allow': '10.0.0.0/8'} ->
    {'KEYGATE_WORKERS': '2', 'KEYGATE_STATUS_ALLOW': '10.0.0.0/8'}.
    A value of None removes the variable (the file or the default applies)."""
    return {"KEYGATE_" + k.upper(): (None if v is None else conf_value(v))
            for k, v in overrides.items()}


def make_workdir(prefix="kg-"):
    """A fresh temporary directory that an unprivileged user can traverse.

    Short (under /tmp) so that unix socket paths stay below 108 bytes."""
    d = tempfile.mkdtemp(prefix=prefix, dir="/tmp")
    os.chmod(d, 0o711)
    return d


def remove_workdir(d):
    if os.environ.get("KG_KEEP") == "1":
        return
    shutil.rmtree(d, ignore_errors=True)


# --------------------------------------------------------------------------
# PostgreSQL

class PgCluster:
    """A throw-away PostgreSQL cluster in <workdir>/pg.

    When running as root the server runs as an unprivileged user (KG_PG_USER,
    default nobody) because initdb refuses root. It listens on 127.0.0.1 on a
    free port and on a unix socket in <workdir>/pg/sock; authentication is
    trust; the database `keygate` exists after start-up.

    Attributes: host ('127.0.0.1'), port, sockdir, dsn (libpq conninfo for
    the keygate database), datadir, logfile.
    Methods: connect(dbname='keygate') -> psycopg2 connection (autocommit),
    stop(mode='fast'), start(), restart(mode='fast'), running(),
    reset() (truncate every table but schema_migrations), log(),
    cleanup() (stop immediately and forget; the directory goes with workdir).
    """

    def __init__(self, workdir, port=None, user=None, tcp=True, sockdir=None):
        self.base = os.path.join(workdir, "pg")
        self.datadir = os.path.join(self.base, "data")
        self.sockdir = sockdir or os.path.join(self.base, "sock")
        self.logfile = os.path.join(self.base, "postgresql.log")
        # tcp=False (scripts/run): the unix socket only, so the port is a
        # name in sockdir and the default one never clashes.
        self.tcp = tcp
        self.host = "127.0.0.1" if tcp else self.sockdir
        self.port = port or (free_port() if tcp else 5432)
        self.dbname = "keygate"
        self.superuser = "postgres"
        if user is None and os.geteuid() == 0:
            user = os.environ.get("KG_PG_USER") or "nobody"
        self.runas = user if os.geteuid() == 0 else None
        self._started = False

    def __repr__(self):
        return "<PgCluster port=%d %s>" % (self.port, self.datadir)

    @property
    def dsn(self):
        return self.dsn_for(self.dbname)

    def dsn_for(self, dbname):
        return "host=%s port=%d dbname=%s user=%s" % (
            self.host, self.port, dbname, self.superuser)

    # -- running commands as the cluster owner

    def _cmd(self, argv):
        if self.runas:
            return ["runuser", "-u", self.runas, "--"] + argv
        return argv

    def _run(self, argv, timeout=120):
        p = subprocess.run(self._cmd(argv), stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, env=clean_env(),
                           cwd=self.base, timeout=timeout)
        if p.returncode != 0:
            raise HarnessError("%s failed (%d):\n%s\n--- server log ---\n%s" % (
                " ".join(argv), p.returncode,
                p.stdout.decode("utf-8", "replace"), tail(self.logfile)))
        return p

    def _server_opts(self):
        return " ".join([
            "-c listen_addresses=%s" % (self.host if self.tcp else "''"),
            "-c port=%d" % self.port,
            "-c unix_socket_directories=%s" % self.sockdir,
            "-c fsync=off",
            "-c synchronous_commit=off",
            "-c full_page_writes=off",
            "-c max_connections=100",
            "-c shared_buffers=32MB",
            "-c log_min_messages=warning",
            "-c log_line_prefix='%m [%p] '",
        ])

    # -- life cycle

    def init(self):
        """initdb, start, create the keygate database."""
        os.makedirs(self.sockdir)
        _register(self)
        self._initdb()
        self.start()
        self._create_database()
        return self

    def open(self, fresh=False):
        """For scripts/run: the cluster kept in base between runs. Made by
        initdb if missing (or if fresh), restarted if an earlier run left
        it up, else started; the keygate database created if missing. Not
        registered for clean-up at exit: stop() it (pg-stop)."""
        if fresh and os.path.isdir(self.datadir):
            with contextlib.suppress(HarnessError):
                self.stop(mode="immediate", timeout=30)
            shutil.rmtree(self.datadir)
        os.makedirs(self.base, exist_ok=True)
        os.makedirs(self.sockdir, exist_ok=True)
        if not os.path.exists(os.path.join(self.datadir, "PG_VERSION")):
            self._initdb()
        elif self.running():
            self.stop()
        self.start()
        self._create_database()
        return self

    def _initdb(self):
        if self.runas:
            pw = pwd.getpwnam(self.runas)
            for d in (self.base, self.sockdir):
                os.chown(d, pw.pw_uid, pw.pw_gid)
        os.chmod(self.base, 0o700)
        self._run([os.path.join(PGBIN, "initdb"), "-D", self.datadir,
                   "-U", self.superuser, "-A", "trust", "-E", "UTF8",
                   "--no-locale", "-N"])

    def _create_database(self):
        """CREATE DATABASE keygate unless it exists (psql: no psycopg2
        needed, so scripts/run can use this too)."""
        psql = [os.path.join(PGBIN, "psql"), "-X", "-q", "-h", self.sockdir,
                "-p", str(self.port), "-U", self.superuser, "-d", "postgres"]
        have = self._run(psql + ["-tAc", "SELECT 1 FROM pg_database WHERE datname = '%s'"
                                 % self.dbname]).stdout.strip()
        if have != b"1":
            self._run(psql + ["-c", "CREATE DATABASE %s" % self.dbname])

    def start(self, timeout=60):
        self._run([os.path.join(PGBIN, "pg_ctl"), "-D", self.datadir,
                   "-l", self.logfile, "-w", "-t", str(timeout),
                   "-o", self._server_opts(), "start"], timeout=timeout + 30)
        self._started = True

    def stop(self, mode="fast", timeout=60):
        self._run([os.path.join(PGBIN, "pg_ctl"), "-D", self.datadir,
                   "-m", mode, "-w", "-t", str(timeout), "stop"],
                  timeout=timeout + 30)

    def restart(self, mode="fast", timeout=60):
        self._run([os.path.join(PGBIN, "pg_ctl"), "-D", self.datadir,
                   "-l", self.logfile, "-m", mode, "-w", "-t", str(timeout),
                   "-o", self._server_opts(), "restart"], timeout=timeout + 30)

    def running(self):
        p = subprocess.run(self._cmd([os.path.join(PGBIN, "pg_ctl"), "-D",
                                      self.datadir, "status"]),
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           env=clean_env(), cwd=self.base, timeout=30)
        return p.returncode == 0

    def ensure_running(self):
        if not self.running():
            self.start()

    def postmaster_pid(self):
        try:
            with open(os.path.join(self.datadir, "postmaster.pid")) as f:
                return int(f.readline().strip())
        except (OSError, ValueError):
            return None

    def cleanup(self):
        _unregister(self)
        if not os.path.isdir(self.datadir):
            return
        try:
            if self.running():
                self.stop(mode="immediate", timeout=30)
        except Exception:
            pid = self.postmaster_pid()
            if pid:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)

    # -- using it

    def connect(self, dbname=None, **kw):
        """A psycopg2 connection (autocommit) to dbname (default keygate)."""
        import psycopg2
        kw.setdefault("connect_timeout", 5)
        c = psycopg2.connect(self.dsn_for(dbname or self.dbname), **kw)
        c.autocommit = True
        return c

    def query(self, sql, args=None, dbname=None):
        """Run one statement; return all rows (or [] if it returns none)."""
        with contextlib.closing(self.connect(dbname)) as c:
            with c.cursor() as cur:
                cur.execute(sql, args)
                return cur.fetchall() if cur.description else []

    def reset(self):
        """Empty every table in schema public except schema_migrations."""
        rows = self.query("SELECT quote_ident(tablename) FROM pg_tables "
                          "WHERE schemaname = 'public' "
                          "AND tablename <> 'schema_migrations'")
        if rows:
            self.query("TRUNCATE %s RESTART IDENTITY CASCADE"
                       % ", ".join(r[0] for r in rows))

    def log(self):
        return read_text(self.logfile)


# --------------------------------------------------------------------------
# keygate

@contextlib.contextmanager
def scratch_database(pg, prefix="db"):
    """A new, empty database in pg's cluster for the with-block (its name
    is yielded), dropped afterwards, connections and all."""
    db = "%s_%s" % (prefix, os.urandom(6).hex())
    pg.query("CREATE DATABASE %s" % db, dbname="postgres")
    try:
        yield db
    finally:
        pg.query("DROP DATABASE IF EXISTS %s WITH (FORCE)" % db, dbname="postgres")


def write_ini(path, config):
    """Write a keygate INI file. config: None, a str (written as is) or a
    dict {key: value} (one `key = value` line each, in order)."""
    if config is None:
        text = "# written by the test harness; settings come from KEYGATE_* env\n"
    elif isinstance(config, str):
        text = config
    else:
        text = "".join("%s = %s\n" % (k, conf_value(v)) for k, v in config.items())
    with open(path, "w") as f:
        f.write(text)
    return path


def keygate_env(pg=None, overrides=None, extra_env=None):
    """The environment keygate runs with in tests: no inherited KEYGATE_* or
    PG* variables; database (if pg given), migrations_dir and
    common_passwords pointing into the repository; as root, user = root
    (keygate refuses to serve as root without `user`); then overrides."""
    base = {
        "KEYGATE_MIGRATIONS_DIR": MIGRATIONS_DIR,
        "KEYGATE_COMMON_PASSWORDS": COMMON_PASSWORDS,
        "KEYGATE_LOG_TARGET": "stderr",
    }
    if os.geteuid() == 0:
        base["KEYGATE_USER"] = "root"
    if pg is not None:
        base["KEYGATE_DATABASE"] = pg.dsn
    base.update(overrides_env(overrides or {}))
    if extra_env:
        base.update(extra_env)
    return clean_env(base)


def run_keygate(args, workdir, pg=None, config=None, config_path=None,
                overrides=None, env=None, timeout=60, binary=None, input=None):
    """Run `keygate -c <ini> ARGS...` to completion (migrate, check-config...).

    config: contents of a temporary -c file (see write_ini); or config_path:
    an existing file to pass instead. overrides: config keys set through
    KEYGATE_* (database defaults to pg's). input: its standard input (str).
    Returns
    subprocess.CompletedProcess with .stdout and .stderr as str."""
    if config_path is not None:
        ini = config_path
    else:
        fd, ini = tempfile.mkstemp(prefix="run-", suffix=".conf", dir=workdir)
        os.close(fd)
        write_ini(ini, config)
    argv = [binary or KEYGATE_BIN, "-c", ini] + list(args)
    return subprocess.run(argv, input=input, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          env=keygate_env(pg, overrides, env), timeout=timeout,
                          universal_newlines=True, errors="replace")


class Keygate:
    """One running keygate master (plus its workers).

    Created by KeygateFactory.start(); see there for the arguments.
    Attributes:
      socket    path of the unix socket it serves on (None for host:port)
      proc      subprocess.Popen of the master (own session: pgid == pid)
      pid       the master's pid
      conf_path the INI file it was started with (rewrite + SIGHUP to reload)
      log_path  file receiving its stdout and stderr
      env       the environment it was started with
      workers   the configured number of workers
    Methods: worker_pids(), log(), signal(sig), wait(timeout), stop(...),
      kill(), alive(), fcgi(method, path, ...) (direct FastCGI request),
      wait_workers(n), wait_ready().
    """

    def __init__(self, workdir, name, pg, workers, config, overrides,
                 extra_env, args, listen_socket, listen_fds, binary):
        self.workdir = workdir
        self.name = name
        self.pg = pg
        self.workers = workers
        self.binary = binary or KEYGATE_BIN
        self.conf_path = os.path.join(workdir, name + ".conf")
        self.log_path = os.path.join(workdir, name + ".log")
        write_ini(self.conf_path, config)
        ov = {"workers": workers}
        if listen_socket is None:
            ov["listen"] = os.path.join(workdir, name + ".sock")
        ov.update(overrides)
        self.overrides = ov
        self.env = keygate_env(pg, ov, extra_env)
        listen = self.env.get("KEYGATE_LISTEN", "")
        if listen_socket is not None:
            name = listen_socket.getsockname()
            self.socket = name if isinstance(name, str) else None
            self.address = name[:2] if isinstance(name, tuple) else name
        elif listen.startswith("/"):
            self.socket = self.address = listen
        else:
            host, _, port = listen.rpartition(":")
            self.socket = None
            self.address = (host.strip("[]") or "127.0.0.1", int(port))
        self.base_path = self.env.get("KEYGATE_BASE_PATH", "/api")
        if self.base_path == "/":
            self.base_path = ""
        argv = [self.binary, "-c", self.conf_path] + list(args or [])
        stdin = subprocess.DEVNULL
        if listen_socket is not None and not listen_fds:
            stdin = listen_socket.fileno()          # FastCGI convention: fd 0
        elif listen_socket is not None:
            # systemd convention: the socket on fd 3, LISTEN_PID = our pid.
            stdin = listen_socket.fileno()
            argv = ["/bin/sh", "-c",
                    'exec 3<&0 </dev/null; LISTEN_PID=$$ LISTEN_FDS=1; '
                    'export LISTEN_PID LISTEN_FDS; exec "$0" "$@"'] + argv
        self._logf = open(self.log_path, "ab")
        self.proc = subprocess.Popen(argv, stdin=stdin, stdout=self._logf,
                                     stderr=subprocess.STDOUT, env=self.env,
                                     cwd=workdir, start_new_session=True)
        self.pid = self.proc.pid
        _register(self)

    def __repr__(self):
        return "<Keygate %s pid=%s socket=%s>" % (self.name, self.pid, self.socket)

    # -- observing

    def log(self):
        """Everything the master and workers wrote to stderr so far."""
        return read_text(self.log_path)

    def alive(self):
        return self.proc.poll() is None

    def worker_pids(self):
        """Pids of the master's live children (empty with workers = 1)."""
        if not self.alive():
            return []
        return children_of(self.pid)

    def wait_workers(self, n=None, timeout=15, exclude=()):
        """Wait until n workers (default: configured) are alive, none of
        them in exclude; return their pids."""
        n = self.workers if n is None else n
        if n is None or n <= 1:        # unknown (workers=None: from the file)
            return []

        def ready():
            if not self.alive():
                raise HarnessError("keygate exited (%s):\n%s" % (
                    self.proc.returncode, tail(self.log_path)))
            pids = self.worker_pids()
            if len(pids) == n and not set(pids) & set(exclude):
                return pids
            return None
        return wait_until(ready, timeout, what="%d keygate workers" % n)

    def fcgi(self, method="GET", path="/health", **kw):
        """A direct FastCGI request to this pool (see fcgi_request); path is
        relative to base_path."""
        return fcgi_request(self.address, method, self.base_path + path, **kw)

    def wait_ready(self, timeout=20):
        """Wait until the socket answers a FastCGI request (any status) and
        all workers are up."""
        def answers():
            if not self.alive():
                raise _Exited()
            self.fcgi("GET", "/health", timeout=5)
            return True
        try:
            wait_until(answers, timeout, interval=0.05, what="%r to answer" % self)
        except _Exited:
            raise HarnessError("keygate exited during start-up (status %s):\n%s"
                               % (self.proc.returncode, tail(self.log_path)))
        except HarnessError as e:
            raise HarnessError("%s\n--- keygate log ---\n%s" % (e, tail(self.log_path)))
        self.wait_workers()
        return self

    # -- controlling

    def signal(self, sig):
        """Send sig to the master."""
        os.kill(self.pid, sig)

    def wait(self, timeout):
        """Wait for the master to exit; return its status (negative = signal).
        Raises subprocess.TimeoutExpired."""
        return self.proc.wait(timeout=timeout)

    def stop(self, sig=None, timeout=20):
        """Send sig (SIGTERM: graceful) and wait up to timeout seconds for the
        master to exit, then SIGKILL whatever is left of its process group.
        Returns the master's exit status (None if it had to be killed)."""
        rc = self.proc.poll()
        if rc is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGTERM if sig is None else sig)
            try:
                rc = self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                rc = None
        self.kill()
        return rc

    def kill(self):
        """SIGKILL the whole process group (master and workers)."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)
        if not self._logf.closed:
            self._logf.close()
        _unregister(self)

    def cleanup(self):
        if self.proc.poll() is None:
            self.stop(timeout=5)
        else:
            self.kill()


class _Exited(Exception):
    pass


class KeygateFactory:
    """Starts keygate pools against a PgCluster; stops them all in cleanup().

    start(workers=2, config=None, env=None, args=(), wait=True,
          listen_socket=None, listen_fds=False, binary=None, **overrides)
      workers       KEYGATE_WORKERS (None: not set, the -c file decides)
      **overrides   any config key: start(status_allow="10.0.0.0/8") sets
                    KEYGATE_STATUS_ALLOW (env wins over the file); None unsets
      config        contents of the -c INI file (str or dict); default: a
                    comment only, so defaults + env apply
      env           extra environment variables, raw
      args          extra command-line arguments after -c FILE (e.g. ["serve"])
      listen_socket a bound, listening socket.socket handed over on fd 0
                    (or on fd 3 with LISTEN_FDS/LISTEN_PID if listen_fds=True);
                    `listen` is then not set
      wait          wait until the pool answers and all workers are up
    Every pool listens on its own socket <workdir>/kgN.sock unless `listen`
    is overridden. Returns a Keygate.
    """

    def __init__(self, workdir, pg):
        self.workdir = workdir
        self.pg = pg
        self.started = []

    def start(self, workers=2, config=None, env=None, args=(), wait=True,
              listen_socket=None, listen_fds=False, binary=None, **overrides):
        binary = binary or KEYGATE_BIN
        if not os.access(binary, os.X_OK):
            raise HarnessError("keygate binary %s not found: build first "
                               "(scripts/test does)" % binary)
        kg = Keygate(self.workdir, "kg%d" % next(_serial), self.pg, workers, config,
                     overrides, env, args, listen_socket, listen_fds, binary)
        self.started.append(kg)
        if wait:
            try:
                kg.wait_ready()
            except Exception:
                kg.cleanup()
                raise
        return kg

    def cleanup(self):
        for kg in reversed(self.started):
            kg.cleanup()


# --------------------------------------------------------------------------
# lighttpd

class Lighttpd:
    """A real lighttpd in the foreground (-D) on 127.0.0.1:port with a
    generated config that includes the shipped conf/lighttpd/keygate.conf,
    its socket path replaced by the pool's.

    Attributes: port, base_url ('http://127.0.0.1:PORT/api'), url
    ('http://127.0.0.1:PORT'), conf_path, snippet_path, error_log,
    access_log, proc. Methods: log() (error log), stop(), cleanup()."""

    ACCESS_LOG = True  # tests read it; a benchmark leaves it out

    def __init__(self, workdir, name, socket_path, port=None, extra_conf="",
                 snippet=LIGHTTPD_SNIPPET):
        self.workdir = workdir
        self.name = name
        self.docroot = os.path.join(workdir, name + "-www")
        os.makedirs(self.docroot, exist_ok=True)
        self.snippet_path = os.path.join(workdir, name + "-keygate.conf")
        with open(snippet) as f:
            text = f.read()
        if SNIPPET_SOCKET not in text:
            raise HarnessError("%s does not mention %s" % (snippet, SNIPPET_SOCKET))
        with open(self.snippet_path, "w") as f:
            f.write(text.replace(SNIPPET_SOCKET, socket_path))
        self.conf_path = os.path.join(workdir, name + ".conf")
        self.error_log = os.path.join(workdir, name + "-error.log")
        self.access_log = os.path.join(workdir, name + "-access.log")
        self.out_log = os.path.join(workdir, name + "-stdout.log")
        self.extra_conf = extra_conf
        self.proc = None
        _register(self)
        last = None
        for _ in range(5):              # a free port can be taken meanwhile
            self.port = port or free_port()
            try:
                self._start()
                break
            except HarnessError as e:
                last = e
                if port:
                    raise
        else:
            raise last
        self.url = "http://127.0.0.1:%d" % self.port
        self.base_url = self.url + "/api"

    def __repr__(self):
        return "<Lighttpd %s port=%s>" % (self.name, getattr(self, "port", None))

    def _write_conf(self):
        with open(self.conf_path, "w") as f:
            f.write(
                'server.document-root = "%(docroot)s"\n'
                'server.bind = "127.0.0.1"\n'
                'server.port = %(port)d\n'
                'server.errorlog = "%(error_log)s"\n'
                'server.upload-dirs = ( "%(workdir)s" )\n'
                '%(accesslog)s'
                '%(extra)s\n'
                'include "%(snippet)s"\n' % {
                    "accesslog": ('server.modules += ( "mod_accesslog" )\n'
                                  'accesslog.filename = "%s"\n' % self.access_log
                                  if self.ACCESS_LOG else ""),
                    "docroot": self.docroot, "port": self.port,
                    "error_log": self.error_log, "workdir": self.workdir,
                    "extra": self.extra_conf,
                    "snippet": self.snippet_path})

    def _start(self):
        self._write_conf()
        out = open(self.out_log, "ab")
        self.proc = subprocess.Popen([LIGHTTPD_BIN, "-D", "-f", self.conf_path],
                                     stdin=subprocess.DEVNULL, stdout=out,
                                     stderr=subprocess.STDOUT, env=clean_env(),
                                     start_new_session=True)
        out.close()

        def listening():
            if self.proc.poll() is not None:
                raise _Exited()
            with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return True
        try:
            wait_until(listening, 15, what="lighttpd on port %d" % self.port)
        except (_Exited, HarnessError):
            self.stop()
            raise HarnessError("lighttpd did not start:\n%s\n%s" % (
                tail(self.out_log), tail(self.error_log)))

    def log(self):
        return read_text(self.error_log) + read_text(self.out_log)

    def stop(self):
        stop_group(self.proc)

    def cleanup(self):
        self.stop()
        _unregister(self)


class LighttpdFactory:
    """start(socket_path, port=None, extra_conf='') -> Lighttpd; cleanup()
    stops all of them."""

    def __init__(self, workdir):
        self.workdir = workdir
        self.started = []

    def start(self, socket_path, port=None, extra_conf=""):
        if hasattr(socket_path, "socket"):      # a Keygate
            socket_path = socket_path.socket
        lt = Lighttpd(self.workdir, "lighttpd%d" % next(_serial), socket_path,
                      port=port, extra_conf=extra_conf)
        self.started.append(lt)
        return lt

    def cleanup(self):
        for lt in reversed(self.started):
            lt.cleanup()


# --------------------------------------------------------------------------
# the whole stack

class Stack:
    """PostgreSQL + keygate pool + lighttpd in front.

    Attributes: base ('http://127.0.0.1:PORT/api'), kg (Keygate), pg
    (PgCluster), lighttpd (Lighttpd, also .lt), http (a requests.Session,
    also .session).
    Methods: url(path), request(method, path, **kw), get(path, **kw),
    post(path, **kw), ... -- requests through lighttpd with a default
    timeout of 10 s; close()."""

    def __init__(self, pg, kg, lt):
        import requests
        self.pg = pg
        self.kg = kg
        self.lighttpd = self.lt = lt
        self.base = lt.base_url
        self.http = self.session = requests.Session()

    def url(self, path):
        return self.base + path

    def request(self, method, path, **kw):
        kw.setdefault("timeout", 10)
        return self.http.request(method, self.base + path, **kw)

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, **kw):
        return self.request("POST", path, **kw)

    def put(self, path, **kw):
        return self.request("PUT", path, **kw)

    def patch(self, path, **kw):
        return self.request("PATCH", path, **kw)

    def delete(self, path, **kw):
        return self.request("DELETE", path, **kw)

    def close(self):
        self.http.close()
        self.lt.cleanup()
        self.kg.cleanup()


def start_stack(kg_factory, lt_factory, **overrides):
    """Start a keygate pool (start(**overrides), workers default 2) and a
    lighttpd in front of it; return a Stack."""
    kg = kg_factory.start(**overrides)
    if kg.socket is None:
        raise HarnessError("a stack needs keygate on a unix socket")
    lt = lt_factory.start(kg.socket)
    return Stack(kg_factory.pg, kg, lt)


@contextlib.contextmanager
def stack_context(pg, workdir, **overrides):
    """with stack_context(pg, workdir, workers=1) as s: ... -- a private
    stack that is torn down on leaving the block, also on failure."""
    kgf = KeygateFactory(workdir, pg)
    ltf = LighttpdFactory(workdir)
    s = None
    try:
        s = start_stack(kgf, ltf, **overrides)
        yield s
    finally:
        if s is not None:
            s.http.close()
        ltf.cleanup()
        kgf.cleanup()


# --------------------------------------------------------------------------
# FastCGI client

FCGI_BEGIN_REQUEST = 1
FCGI_ABORT_REQUEST = 2
FCGI_END_REQUEST = 3
FCGI_PARAMS = 4
FCGI_STDIN = 5
FCGI_STDOUT = 6
FCGI_STDERR = 7
FCGI_GET_VALUES = 9
FCGI_GET_VALUES_RESULT = 10
FCGI_RESPONDER = 1
FCGI_AUTHORIZER = 2
FCGI_KEEP_CONN = 1


class FCGIError(Exception):
    """The FastCGI conversation broke (EOF before END_REQUEST, bad record)."""


def fcgi_record(rtype, content=b"", req_id=1):
    """One or more FastCGI records of type rtype carrying content (an empty
    content gives one empty record: the end-of-stream marker)."""
    if not content:
        return struct.pack(">BBHHBB", 1, rtype, req_id, 0, 0, 0)
    out = []
    for i in range(0, len(content), 65535):
        chunk = content[i:i + 65535]
        pad = (-len(chunk)) % 8
        out.append(struct.pack(">BBHHBB", 1, rtype, req_id, len(chunk), pad, 0))
        out.append(chunk + b"\0" * pad)
    return b"".join(out)


def _nv_len(n):
    return bytes([n]) if n < 128 else struct.pack(">I", n | 0x80000000)


def fcgi_encode_params(params):
    """Name-value pairs in FastCGI encoding; params: dict or list of pairs."""
    items = params.items() if isinstance(params, dict) else params
    out = []
    for k, v in items:
        k = k.encode() if isinstance(k, str) else k
        v = v.encode() if isinstance(v, str) else v
        out.append(_nv_len(len(k)) + _nv_len(len(v)) + k + v)
    return b"".join(out)


def cgi_params(method="GET", uri="/api/health", headers=None, body=b"",
               remote_addr="127.0.0.1", script_name="/api", content_type=None,
               extra=None):
    """The CGI parameters lighttpd would send for this request."""
    path, _, query = uri.partition("?")
    p = {
        "GATEWAY_INTERFACE": "CGI/1.1",
        "SERVER_SOFTWARE": "kgharness",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_ADDR": "127.0.0.1",
        "SERVER_PORT": "80",
        "REQUEST_SCHEME": "http",
        "REQUEST_METHOD": method,
        "REQUEST_URI": uri,
        "QUERY_STRING": query,
        "SCRIPT_NAME": script_name,
        "PATH_INFO": path[len(script_name):] if path.startswith(script_name) else path,
        "REMOTE_ADDR": remote_addr,
        "REMOTE_PORT": "40000",
        "CONTENT_LENGTH": str(len(body)),
        "HTTP_HOST": "127.0.0.1",
    }
    if content_type is not None:
        p["CONTENT_TYPE"] = content_type
    for k, v in (headers or {}).items():
        name = k.upper().replace("-", "_")
        if name in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            p[name] = v
        else:
            p["HTTP_" + name] = v
    if extra:
        for k, v in extra.items():
            if v is None:
                p.pop(k, None)
            else:
                p[k] = v
    return p


class FCGIResponse:
    """status (int), reason, headers (list of (name, value)), body (bytes),
    text, json(), header(name) (case-insensitive, None if absent),
    stderr (bytes), app_status, protocol_status, raw_stdout."""

    def __init__(self, stdout, stderr, app_status, protocol_status):
        self.raw_stdout = stdout
        self.stderr = stderr
        self.app_status = app_status
        self.protocol_status = protocol_status
        head, sep, body = stdout.partition(b"\r\n\r\n")
        if not sep:
            head, sep, body = stdout.partition(b"\n\n")
        if not sep:
            raise FCGIError("response has no header/body separator: %r" % stdout[:300])
        self.body = body
        self.headers = []
        self.status, self.reason = 200, "OK"
        for line in head.decode("latin-1").replace("\r\n", "\n").split("\n"):
            if not line:
                continue
            name, _, value = line.partition(":")
            name, value = name.strip(), value.strip()
            self.headers.append((name, value))
            if name.lower() == "status":
                code, _, reason = value.partition(" ")
                self.status, self.reason = int(code), reason

    @property
    def text(self):
        return self.body.decode("utf-8", "replace")

    def json(self):
        return json.loads(self.body.decode("utf-8"))

    def header(self, name):
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    def __repr__(self):
        return "<FCGIResponse %d %r>" % (self.status, self.body[:200])


class FCGIConnection:
    """A FastCGI client connection that can send a request piece by piece.

        c = FCGIConnection(sock_path)          # or ("127.0.0.1", port)
        c.begin()                              # BEGIN_REQUEST (responder)
        c.params(cgi_params("GET", "/api/health"), end=False)
        ...                                    # the worker waits here
        c.end_params(); c.stdin(b"")           # finish the request
        r = c.read_response()                  # FCGIResponse

    request(params, body) does all of it at once."""

    def __init__(self, address, timeout=10, req_id=1):
        self.req_id = req_id
        fam = socket.AF_UNIX if isinstance(address, str) else socket.AF_INET
        self.sock = socket.socket(fam, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        try:
            self.sock.connect(address)
        except Exception:
            self.sock.close()
            raise

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        self.sock.close()

    def send_raw(self, data):
        self.sock.sendall(data)

    def begin(self, role=FCGI_RESPONDER, flags=0):
        self.send_raw(fcgi_record(FCGI_BEGIN_REQUEST,
                                  struct.pack(">HB5x", role, flags), self.req_id))

    def params(self, params, end=True):
        data = fcgi_encode_params(params)
        if data:
            self.send_raw(fcgi_record(FCGI_PARAMS, data, self.req_id))
        if end:
            self.end_params()

    def end_params(self):
        self.send_raw(fcgi_record(FCGI_PARAMS, b"", self.req_id))

    def stdin(self, data=b"", end=True):
        if data:
            self.send_raw(fcgi_record(FCGI_STDIN, data, self.req_id))
        if end:
            self.send_raw(fcgi_record(FCGI_STDIN, b"", self.req_id))

    def abort(self):
        self.send_raw(fcgi_record(FCGI_ABORT_REQUEST, b"", self.req_id))

    def _recv_exact(self, n):
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise FCGIError("connection closed after %d of %d bytes" % (len(buf), n))
            buf += chunk
        return buf

    def read_records(self):
        """Yield (type, req_id, content) until END_REQUEST (included)."""
        while True:
            try:
                hdr = self._recv_exact(8)
            except FCGIError:
                raise FCGIError("connection closed before END_REQUEST")
            _ver, rtype, rid, clen, plen, _ = struct.unpack(">BBHHBB", hdr)
            content = self._recv_exact(clen) if clen else b""
            if plen:
                self._recv_exact(plen)
            yield rtype, rid, content
            if rtype == FCGI_END_REQUEST:
                return

    def read_response(self, timeout=None):
        if timeout is not None:
            self.sock.settimeout(timeout)
        out, err = [], []
        app_status = proto = None
        for rtype, _rid, content in self.read_records():
            if rtype == FCGI_STDOUT:
                out.append(content)
            elif rtype == FCGI_STDERR:
                err.append(content)
            elif rtype == FCGI_END_REQUEST:
                app_status, proto = struct.unpack(">IB3x", content[:8])
        return FCGIResponse(b"".join(out), b"".join(err), app_status, proto)

    def request(self, params, body=b"", role=FCGI_RESPONDER):
        self.begin(role)
        self.params(params)
        self.stdin(body)
        return self.read_response()


def fcgi_request(address, method="GET", uri="/api/health", headers=None,
                 body=b"", remote_addr="127.0.0.1", content_type=None,
                 extra=None, timeout=10, role=FCGI_RESPONDER):
    """One complete FastCGI request straight to the keygate socket (or
    (host, port)); returns an FCGIResponse. body may be bytes, str or a
    dict/list (sent as JSON with content_type application/json)."""
    if isinstance(body, (dict, list)):
        body = json.dumps(body).encode()
        if content_type is None:
            content_type = "application/json"
    elif isinstance(body, str):
        body = body.encode()
    params = cgi_params(method, uri, headers, body, remote_addr,
                        content_type=content_type, extra=extra)
    if role == FCGI_AUTHORIZER:
        pass  # the role travels in BEGIN_REQUEST; libfcgi sets FCGI_ROLE
    with FCGIConnection(address, timeout=timeout) as c:
        return c.request(params, body, role=role)


# --------------------------------------------------------------------------
# load helpers

class RequestLoop:
    """Fire requests from `threads` threads until stop() (or `max_requests`
    each / `max_seconds`), recording every outcome.

        loop = RequestLoop(lambda: stack.get("/health"), threads=2)
        loop.start(); ...; loop.stop()
        assert loop.failures == []

    fn() returns a response object with .status_code or .status; an
    outcome is a failure when check(response) is False (default: status
    200) or fn raised. results: list of (t, ok, detail)."""

    def __init__(self, fn, threads=2, check=None, max_requests=100000,
                 max_seconds=120, pause=0.0):
        self.fn = fn
        self.check = check or (lambda r: getattr(r, "status_code",
                                                 getattr(r, "status", None)) == 200)
        self.nthreads = threads
        self.max_requests = max_requests
        self.max_seconds = max_seconds
        self.pause = pause
        self.results = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = []

    def _run(self):
        deadline = time.monotonic() + self.max_seconds
        for _ in range(self.max_requests):
            if self._stop.is_set() or time.monotonic() > deadline:
                return
            t = time.monotonic()
            try:
                r = self.fn()
                ok = bool(self.check(r))
                detail = None if ok else _describe(r)
            except Exception as e:  # noqa: BLE001 - recorded as a failure
                ok, detail = False, repr(e)
            with self._lock:
                self.results.append((t, ok, detail))
            if self.pause:
                time.sleep(self.pause)

    def start(self):
        for _ in range(self.nthreads):
            th = threading.Thread(target=self._run, daemon=True)
            th.start()
            self._threads.append(th)
        return self

    def join(self, timeout=60):
        """Wait for the threads to finish on their own (max_requests or
        max_seconds), then stop them."""
        deadline = time.monotonic() + timeout
        for th in self._threads:
            th.join(max(0.0, deadline - time.monotonic()))
        return self.stop()

    def stop(self, timeout=30):
        self._stop.set()
        for th in self._threads:
            th.join(timeout)
        return self

    @property
    def count(self):
        return len(self.results)

    @property
    def failures(self):
        return [(t, d) for t, ok, d in self.results if not ok]


def _describe(r):
    code = getattr(r, "status_code", getattr(r, "status", None))
    body = getattr(r, "text", "")
    return "%s %s" % (code, body[:200])


# --------------------------------------------------------------------------
# command line, for scripts/run: the same cluster code as the tests

def main(argv):
    """kgharness.py pg-start DIR [--fresh] [--sockdir SOCKDIR]
         the cluster in DIR/pg (unix socket only, in DIR/pg/sock or SOCKDIR),
         made if missing and started; prints its libpq conninfo
       kgharness.py pg-stop DIR [--sockdir SOCKDIR]
         stops it (fast) if it runs"""
    import argparse
    ap = argparse.ArgumentParser(prog="kgharness.py", description=main.__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("command", choices=["pg-start", "pg-stop"])
    ap.add_argument("dir")
    ap.add_argument("--fresh", action="store_true", help="start with an empty cluster")
    ap.add_argument("--sockdir")
    a = ap.parse_args(argv)
    pg = PgCluster(a.dir, tcp=False, sockdir=a.sockdir)
    try:
        if a.command == "pg-start":
            pg.open(fresh=a.fresh)
            print(pg.dsn)
        elif os.path.isdir(pg.datadir) and pg.running():
            pg.stop()
    except HarnessError as e:
        print("kgharness.py %s: %s" % (a.command, e), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
