"""keygate's benchmark: the token-check path and logins against their ceilings.

Run through bench/run (which installs the packages, builds keygate and the
two C helpers, then starts this under /usr/bin/python3). In one run, on one
machine, so that the figures are comparable on a noisy machine:

  * a throw-away PostgreSQL cluster, keygate's pool and lighttpd with the
    shipped conf/lighttpd/keygate.conf (tests/integration/kgharness.py);
  * 10,000 users with a live token each, inserted straight into PostgreSQL
    (one user is registered through the API; the others share its hash);
  * GET /api/me at 1, 8 and 64 connections (wrk + bench/load.lua), taking
    turns in short loads with the transport ceiling (bench/fcgi_hello.c
    behind the same lighttpd configuration, same number of workers; the
    ratio is the median of the pairs') and with fcgi_hello closing
    connections the way keygate does (prompt-close), then at the same connection counts
    `pgbench -S` and keygate's own token lookup as a pgbench script (the
    SQL of token_lookup, taken from src/db_tokens.c);
  * the resident size of every worker after warm-up and after N requests;
  * POST /api/login at 1, 2 and 8 connections against the Argon2id rate of
    libargon2 at the same parameters (bench/argon2_rate.c);
  * with --profile, perf record over the whole machine during a /me load.

Prints `name: value` lines and writes bench/out/results.txt, me.dat, me.png.
Every load is bounded in time; everything started is stopped on exit.
"""

import argparse
import codecs
import contextlib
import datetime
import hashlib
import os
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import time
import zlib
import base64

BENCH = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(BENCH)
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))
import kgharness  # noqa: E402

OUT = os.path.join(BENCH, "out")
LOAD_LUA = os.path.join(BENCH, "load.lua")
PLOT_GP = os.path.join(BENCH, "me.gp")
FCGI_HELLO = os.path.join(OUT, "fcgi_hello")
ARGON2_RATE = os.path.join(OUT, "argon2_rate")
PGBENCH = os.path.join(kgharness.PGBIN, "pgbench")

NCPU = os.cpu_count() or 1
CLK_TCK = os.sysconf("SC_CLK_TCK")
CONNS_ME = (1, 8, 64)
CONNS_LOGIN = (1, 2, 8)
USERS = 10000
PASSWORD = "bench-password-Quartz-Lantern-42"   # >= 15 chars, not common
TOUCH_INTERVAL = 60                              # keygate's default

# The token_lookup statement as of the commit this benchmark was written
# against; used only when it cannot be taken from src/db_tokens.c (bench/run
# says which it used).
FALLBACK_LOOKUP_SQL = (
    "SELECT k.user_id, encode(k.secret_digest, 'hex'), u.username, k.scopes::text,"
    " k.last_used_at < now() - make_interval(secs => $2),"
    " extract(epoch FROM k.expires_at)::bigint, extract(epoch FROM k.last_used_at)::bigint,"
    " k.idle_timeout_s, u.email,"
    " to_char((u.created_at) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"
    " FROM api_keys k JOIN users u ON u.id = k.user_id"
    " WHERE k.key = $1 AND NOT u.disabled AND (k.expires_at > now() AND"
    " k.last_used_at + make_interval(secs => k.idle_timeout_s) > now())")


class BenchError(Exception):
    pass


# --------------------------------------------------------------------------
# output

class Results:
    """Collects `name: value` lines, printing each as it comes."""

    def __init__(self):
        self.lines = []
        self.values = {}

    def put(self, name, value, fmt=None):
        if isinstance(value, float) and fmt is None:
            fmt = "%.1f" if abs(value) >= 100 else ("%.3f" if abs(value) < 10 else "%.2f")
        text = (fmt % value) if fmt else str(value)
        self.values[name] = value
        line = "%s: %s" % (name, text)
        self.lines.append(line)
        print(line, flush=True)

    def get(self, name):
        return self.values.get(name)

    def ratio(self, name, num, den):
        a, b = self.get(num), self.get(den)
        if isinstance(a, (int, float)) and isinstance(b, (int, float)) and b > 0:
            self.put(name, a / b, "%.3f")
        else:
            self.put(name, "n/a")


T0 = time.monotonic()


def median_load(rs):
    """The load with the median rate (the lower middle one of an even count)."""
    return sorted(rs, key=lambda x: x["rps"])[(len(rs) - 1) // 2]


def note(msg):
    print("# [%3.0fs] %s" % (time.monotonic() - T0, msg), file=sys.stderr, flush=True)


def run(argv, timeout, env=None, log=None, check=True):
    """Run to completion (bounded); return stdout as str."""
    p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       env=env, timeout=timeout, universal_newlines=True,
                       errors="replace")
    if log is not None:
        log.write("$ %s\n%s\n" % (" ".join(argv), p.stdout))
        log.flush()
    if check and p.returncode != 0:
        raise BenchError("%s exited %d:\n%s" % (" ".join(argv), p.returncode,
                                                p.stdout[-3000:]))
    return p.stdout


# --------------------------------------------------------------------------
# the machine

def machine_description():
    """(CPU description, MemTotal in KiB) from /proc."""
    info = {}
    with contextlib.suppress(OSError):
        with open("/proc/cpuinfo") as f:
            for line in f:
                k, _, v = line.partition(":")
                info.setdefault(k.strip(), v.strip())
    model = info.get("model name", "unknown")
    extra = ["family %s model %s stepping %s" % (info.get("cpu family", "?"),
                                                 info.get("model", "?"),
                                                 info.get("stepping", "?"))]
    if "cpu MHz" in info:
        extra.append("%.0f MHz" % float(info["cpu MHz"]))
    if "cache size" in info:
        extra.append(info["cache size"] + " cache")
    if " hypervisor" in " " + info.get("flags", ""):
        extra.append("virtual machine")
    model = "%s (%s)" % (model, ", ".join(extra))
    mem_kib = 0
    with contextlib.suppress(OSError):
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    mem_kib = int(line.split()[1])
    return model, mem_kib


def software_versions():
    """One line: the versions of what the figures depend on."""
    def first_line(argv, pattern):
        try:
            out = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                 universal_newlines=True, timeout=10).stdout
        except (OSError, subprocess.SubprocessError):
            return "?"
        m = re.search(pattern, out)
        return m.group(1) if m else "?"
    return "lighttpd %s, PostgreSQL %s, wrk %s, libargon2 %s, libfcgi %s" % (
        first_line([kgharness.LIGHTTPD_BIN, "-v"], r"lighttpd/(\S+)"),
        first_line([os.path.join(kgharness.PGBIN, "postgres"), "--version"], r"\) (\S+)"),
        first_line(["wrk", "--version"], r"wrk (\S+)"),
        first_line(["dpkg-query", "-W", "-f", "${Version}", "libargon2-1"], r"(\S+)"),
        first_line(["dpkg-query", "-W", "-f", "${Version}", "libfcgi0ldbl"], r"(\S+)"))


def git_describe():
    try:
        head = subprocess.run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                              universal_newlines=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", REPO, "status", "--porcelain", "--", "src"],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                               universal_newlines=True, timeout=10).stdout.strip()
        return head + ("+src-modified" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def configure_args():
    try:
        return subprocess.run([os.path.join(REPO, "config.status"), "--config"],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                              universal_newlines=True, timeout=10,
                              cwd=REPO).stdout.strip() or "(none)"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


# --------------------------------------------------------------------------
# processes: resident size and CPU time from /proc

def vmrss_kib(pid):
    rss, _ = kgharness.rss_and_fds(pid)
    if rss is None:
        raise BenchError("no VmRSS for pid %d" % pid)
    return rss


def proc_table():
    """{pid: (comm, ppid, cpu ticks, start time)} for every process."""
    out = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name, "rb") as f:
                stat = f.read().decode("ascii", "replace")
        except OSError:
            continue
        comm = stat[stat.find("(") + 1:stat.rfind(")")]
        rest = stat[stat.rfind(")") + 2:].split()
        # fields after comm: state(3) ppid(4) ... utime(14) stime(15) ... starttime(22)
        out[int(name)] = (comm, int(rest[1]), int(rest[11]) + int(rest[12]), int(rest[19]))
    return out


class CpuSplit:
    """CPU time by role (wrk, lighttpd, fastcgi, postgres, other) over an
    interval, as a percentage of one core (NCPU * 100 is the machine)."""

    def __init__(self, roles):
        # roles: {role: predicate(pid, comm, table) -> bool}
        self.roles = roles
        self.t0 = self.before = None

    def start(self):
        self.t0 = time.monotonic()
        self.before = proc_table()
        self.idle0 = self._idle()

    @staticmethod
    def _idle():
        with open("/proc/stat") as f:
            fields = f.readline().split()
        return int(fields[4]) + int(fields[5])   # idle + iowait

    def stop(self):
        wall = time.monotonic() - self.t0
        after = proc_table()
        idle = self._idle() - self.idle0
        used = {}
        for pid, (comm, _ppid, ticks, started) in after.items():
            # The same process, not a new one with a recycled pid (a
            # kernel worker's comm changes with its work: not a test).
            prev = self.before.get(pid)
            delta = ticks - (prev[2] if prev and prev[3] == started else 0)
            if delta <= 0:
                continue
            role = "other"
            for r, pred in self.roles.items():
                if pred(pid, comm, after):
                    role = r
                    break
            used[role] = used.get(role, 0) + delta
        scale = 100.0 / (CLK_TCK * wall)
        self.other_pct = used.get("other", 0) * scale
        parts = ["%s %.0f%%" % (r, used.get(r, 0) * scale)
                 for r in list(self.roles) + ["other"]]
        parts.append("idle %.0f%%" % (idle * scale))
        return "  ".join(parts) + "  (of %d%%)" % (NCPU * 100)


def descends_from(pid, root, table):
    seen = 0
    while pid and seen < 64:
        if pid == root:
            return True
        entry = table.get(pid)
        if entry is None:
            return False
        pid = entry[1]
        seen += 1
    return False


# --------------------------------------------------------------------------
# tokens (src/token.h)

def b64url(raw):
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def make_token():
    """(key, secret, token, sha256(secret)) in keygate's format."""
    key = "kg_1_" + b64url(secrets.token_bytes(16))
    body = b64url(secrets.token_bytes(32))
    crc = zlib.crc32((key + "." + body).encode("ascii")) & 0xFFFFFFFF
    secret = body + b64url(crc.to_bytes(4, "big"))
    assert len(key) == 27 and len(secret) == 49
    return key, secret, key + "." + secret, hashlib.sha256(secret.encode("ascii")).digest()


# --------------------------------------------------------------------------
# the token lookup, as keygate runs it

def lookup_sql_from_source():
    """The token_lookup statement's SQL and parameter count from
    src/db_tokens.c, where it is written out in full. Raises BenchError."""
    path = os.path.join(REPO, "src", "db_tokens.c")
    try:
        with open(path) as f:
            text = f.read()
    except OSError as e:
        raise BenchError("%s: %s" % (path, e))
    m = re.search(r'static const struct db_stmt st_token_lookup = \{\s*"[^"]*"\s*,\s*(\d+)\s*,'
                  r'((?:\s*"(?:[^"\\]|\\.)*")+)\s*\}', text)
    if not m:
        raise BenchError("st_token_lookup not found in src/db_tokens.c")
    parts = re.findall(r'"((?:[^"\\]|\\.)*)"', m.group(2))
    sql = "".join(codecs.decode(s, "unicode_escape") for s in parts)
    return sql, int(m.group(1))


def pgbench_quote(sql):
    """pgbench takes every ":name" in a script for a variable, also inside a
    string literal ('HH24:MI:SS'): write such literals as E'...' with each
    ':' as \\072, the same constant to PostgreSQL."""
    def lit(m):
        text = m.group(0)
        if ":" not in text:
            return text
        inner = text[1:-1].replace("\\", "\\\\").replace(":", "\\072")
        return "E'" + inner + "'"
    return re.sub(r"(?<![A-Za-z0-9_])'(?:[^']|'')*'", lit, sql)


def pgbench_lookup_script(sql, nparams):
    """The pgbench script: the lookup with $1 = a random seeded key (from
    bench_keys, inside the same statement) and $2 = touch_interval."""
    if nparams != 2 or set(re.findall(r"\$(\d+)", sql)) != {"1", "2"}:
        raise BenchError("the lookup takes %d parameters; this script knows 2" % nparams)
    body = pgbench_quote(sql)
    body = re.sub(r"\$1\b", "(SELECT key FROM bench_keys WHERE id = :id)", body)
    body = re.sub(r"\$2\b", ":touch", body)
    return ("\\set id random(1, %d)\n\\set touch %d\n%s;\n"
            % (USERS, TOUCH_INTERVAL, " ".join(body.split())))


# --------------------------------------------------------------------------
# lighttpd without the harness's access log: the shipped snippet, nothing else

class BenchLighttpd(kgharness.Lighttpd):
    """kgharness.Lighttpd with the same generated configuration minus
    mod_accesslog, which a production front would not be made to pay for
    in a benchmark of the application (and the harness adds for tests)."""

    ACCESS_LOG = False


class BenchPgCluster(kgharness.PgCluster):
    """kgharness.PgCluster with pg_stat_statements loaded, so that the run
    can count the statements keygate sends per request."""

    def _server_opts(self):
        return super()._server_opts() + " -c shared_preload_libraries=pg_stat_statements"


class Statements:
    """Counts keygate's statements (pg_stat_statements, database keygate)
    between start() and stop()."""

    QUERY = ("SELECT coalesce(sum(calls) FILTER (WHERE query ~* '^\\s*select'), 0),"
             " coalesce(sum(calls) FILTER (WHERE query !~* '^\\s*select'), 0)"
             " FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid"
             " WHERE d.datname = %s AND s.query NOT LIKE '%%pg_stat_statements%%'")

    def __init__(self, pg):
        self.pg = pg

    def start(self):
        self.pg.query("SELECT pg_stat_statements_reset()")

    def stop(self, log=None, what=""):
        """(reads, other statements) since start(); with log, write each
        statement's calls there too."""
        reads, other = self.pg.query(self.QUERY, (self.pg.dbname,))[0]
        if log is not None:
            rows = self.pg.query(
                "SELECT s.calls, left(regexp_replace(s.query, '\\s+', ' ', 'g'), 110)"
                " FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid"
                " WHERE d.datname = %s AND s.query NOT LIKE '%%pg_stat_statements%%'"
                " ORDER BY s.calls DESC LIMIT 12", (self.pg.dbname,))
            log.write("# keygate's statements during %s (calls, query):\n" % what)
            log.write("".join("#   %8d  %s\n" % (n, q) for n, q in rows))
            log.flush()
        return int(reads), int(other)


class HelloPool:
    """bench/out/fcgi_hello SOCKET WORKERS [prompt-close], in its own
    process group."""

    def __init__(self, workdir, workers, prompt_close=False):
        name = "hello-prompt" if prompt_close else "hello"
        self.socket = os.path.join(workdir, name + ".sock")
        self.log_path = os.path.join(workdir, name + ".log")
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([FCGI_HELLO, self.socket, str(workers)] +
                                     (["prompt-close"] if prompt_close else []),
                                     stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        kgharness._register(self)

        def up():
            if self.proc.poll() is not None:
                raise BenchError("fcgi_hello exited: %s" % kgharness.tail(self.log_path))
            return len(kgharness.children_of(self.proc.pid)) == workers and \
                kgharness.fcgi_request(self.socket, "GET", "/api/me", timeout=5).status == 200
        kgharness.wait_until(up, 15, what="fcgi_hello")

    def cleanup(self):
        kgharness.stop_group(self.proc)
        self._log.close()
        kgharness._unregister(self)


# --------------------------------------------------------------------------
# load generators

class Runner:
    """Runs the load generators, each bounded in time, logging their output
    to bench/out/bench.log."""

    def __init__(self, log):
        self.log = log
        self.other_max = 0.0     # the most CPU "other" processes took during a load

    def _load(self, argv, seconds, roles, env=None):
        """Run argv (which lasts about `seconds`); with roles, take a CpuSplit
        while it runs (from 0.5 s in to 0.5 s before its end). Returns
        (output, cpu split text or None)."""
        self.log.write("$ %s\n" % " ".join(argv))
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                env=env, universal_newlines=True, errors="replace")
        cpu = None
        try:
            if roles and seconds >= 2:
                time.sleep(0.5)
                split = CpuSplit(roles)
                split.start()
                time.sleep(seconds - 1.0)
                if proc.poll() is None:
                    cpu = split.stop()
                    self.other_max = max(self.other_max, split.other_pct)
            out, _ = proc.communicate(timeout=seconds + 60)
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        self.log.write(out + "\n")
        self.log.flush()
        if proc.returncode != 0:
            raise BenchError("%s exited %d:\n%s" % (" ".join(argv), proc.returncode,
                                                    out[-3000:]))
        return out, cpu

    def wrk(self, url, mode, path, conns, seconds, limit=None, roles=None):
        """wrk with bench/load.lua; returns a dict: rps, p50_ms, p99_ms,
        errors, requests, cpu."""
        threads = max(1, min(NCPU, conns))
        argv = ["wrk", "-t%d" % threads, "-c%d" % conns, "-d%ds" % seconds,
                "--timeout", "10s", "--latency", "-s", LOAD_LUA, url, "--",
                mode, path or "-", str(threads)]
        if limit:
            argv.append(str(int(limit)))
        out, cpu = self._load(argv, seconds, None if limit else roles)
        m = re.search(r"^BENCH requests=(\d+) duration_us=(\d+) p50_us=(\d+) p99_us=(\d+)"
                      r" non2xx=(\d+) socket_errors=(\d+)$", out, re.M)
        if not m:
            raise BenchError("no BENCH line from wrk:\n" + out[-2000:])
        req, dur, p50, p99, bad, sock = (int(x) for x in m.groups())
        return {"rps": req / (dur / 1e6) if dur else 0.0, "p50_ms": p50 / 1000.0,
                "p99_ms": p99 / 1000.0, "errors": bad + sock, "requests": req, "cpu": cpu}

    def pgbench(self, dsn_args, dbname, conns, seconds, extra, roles=None):
        """pgbench -M prepared; returns a dict: tps, lat_ms, failed, cpu."""
        threads = max(1, min(NCPU, conns))
        argv = [PGBENCH] + dsn_args + ["-n", "-M", "prepared", "-c", str(conns),
                                       "-j", str(threads), "-T", str(seconds)] + extra + [dbname]
        out, cpu = self._load(argv, seconds, roles, env=kgharness.clean_env())
        tps = re.search(r"^tps = ([0-9.]+)", out, re.M)
        lat = re.search(r"^latency average = ([0-9.]+) ms", out, re.M)
        failed = re.search(r"^number of failed transactions: (\d+)", out, re.M)
        if not tps:
            raise BenchError("no tps from pgbench:\n" + out[-2000:])
        return {"tps": float(tps.group(1)),
                "lat_ms": float(lat.group(1)) if lat else float("nan"),
                "failed": int(failed.group(1)) if failed else 0, "cpu": cpu}


# --------------------------------------------------------------------------
# the run

def seed(pg, stack, workdir):
    """10,000 users with the same known password and one live token each.
    Returns (tokens_path, users_path)."""
    import psycopg2.extras
    first = "bench%05d" % 1
    r = stack.post("/join", json={"username": first, "password": PASSWORD})
    if r.status_code not in (200, 201):
        raise BenchError("POST /join: %d %s" % (r.status_code, r.text[:300]))
    with contextlib.closing(pg.connect()) as c, c.cursor() as cur:
        cur.execute("SELECT password_hash FROM users WHERE username = %s", (first,))
        phc = cur.fetchone()[0]
        psycopg2.extras.execute_values(
            cur, "INSERT INTO users (username, password_hash) VALUES %s",
            [("bench%05d" % i, phc) for i in range(2, USERS + 1)], page_size=1000)
        cur.execute("SELECT id, username FROM users WHERE username LIKE 'bench%%' ORDER BY id")
        users = cur.fetchall()
        if len(users) != USERS:
            raise BenchError("expected %d users, have %d" % (USERS, len(users)))
        rows, keys, tokens = [], [], []
        for i, (uid, _name) in enumerate(users, 1):
            key, _secret, token, digest = make_token()
            rows.append((key, uid, psycopg2.Binary(digest)))
            keys.append((i, key))
            tokens.append(token)
        psycopg2.extras.execute_values(
            cur, "INSERT INTO api_keys (key, user_id, secret_digest, scopes, remember,"
            " last_used_at, expires_at, idle_timeout_s) VALUES %s", rows,
            # last_used_at spread over the last touch_interval, as in a
            # running system: the tokens do not all fall due at once.
            template="(%%s, %%s, %%s, '{*}', false, now() - random() * interval '%d seconds',"
                     " now() + interval '1 day', 86400)" % TOUCH_INTERVAL,
            page_size=1000)
        cur.execute("DROP TABLE IF EXISTS bench_keys")
        cur.execute("CREATE TABLE bench_keys (id integer PRIMARY KEY, key text NOT NULL)")
        psycopg2.extras.execute_values(cur, "INSERT INTO bench_keys (id, key) VALUES %s",
                                       keys, page_size=1000)
        cur.execute("VACUUM ANALYZE users")
        cur.execute("VACUUM ANALYZE api_keys")
        cur.execute("VACUUM ANALYZE bench_keys")
    tokens_path = os.path.join(workdir, "tokens.txt")
    users_path = os.path.join(workdir, "users.txt")
    with open(tokens_path, "w") as f:
        f.write("".join(t + "\n" for t in tokens))
    with open(users_path, "w") as f:
        f.write("".join("%s\t%s\n" % (u, PASSWORD) for _id, u in users))
    # The generated tokens must be what keygate accepts.
    for i in sorted({0, len(tokens) // 2, len(tokens) - 1}):
        r = stack.get("/me", headers={"Authorization": "Bearer " + tokens[i]})
        if r.status_code != 200 or r.json().get("username") != users[i][1]:
            raise BenchError("GET /me with seeded token %d: %d %s"
                             % (i, r.status_code, r.text[:300]))
    return tokens_path, users_path


def plot(res, dat_path, png_path, log):
    with open(dat_path, "w") as f:
        f.write("# connections keygate_me hello pgbench_select pgbench_lookup hello_prompt"
                " (requests/s)\n")
        for c in CONNS_ME:
            vals = [res.get(n % c) for n in ("me_rps_c%d", "hello_rps_c%d",
                                              "pgbench_select_tps_c%d",
                                              "pgbench_lookup_tps_c%d",
                                              "hello_prompt_rps_c%d")]
            f.write("%d %s\n" % (c, " ".join("%.1f" % v if isinstance(v, float) else "NaN"
                                               for v in vals)))
    if not shutil.which("gnuplot"):
        note("gnuplot not found: no plot")
        return False
    run(["gnuplot", "-e", "datafile='%s'; outfile='%s'; subtitle='%s'"
         % (dat_path, png_path, res.get("run_subtitle") or ""), PLOT_GP],
        timeout=60, log=log)
    return True


def main():
    ap = argparse.ArgumentParser(prog="bench/run", description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true",
                    help="short loads (under two minutes in all)")
    ap.add_argument("--profile", action="store_true",
                    help="also perf record the machine during a /me load")
    ap.add_argument("--workers", type=int, default=int(os.environ.get("KEYGATE_WORKERS", "4")),
                    help="workers of keygate and of fcgi_hello (default 4, keygate's default)")
    ap.add_argument("--seconds", type=int, help="length of each pgbench and login load "
                    "(default 4 with --quick, else 5; logins 5 and 6)")
    ap.add_argument("--rounds", type=int, help="rounds of loads (default 1 with --quick, "
                    "else 3); a pgbench or login figure is the best of its rounds")
    ap.add_argument("--pairs", type=int, help="turns of /me and the two fcgi_hello loads, per "
                    "round and connection count (default 3)")
    ap.add_argument("--slice", type=int, help="length of each of those loads "
                    "(default 2 with --quick, else 3)")
    ap.add_argument("--requests", type=int,
                    help="/me requests between the two resident-size readings")
    opts = ap.parse_args()

    quick = opts.quick
    rounds = opts.rounds or (1 if quick else 3)
    secs = opts.seconds or (4 if quick else 5)
    login_secs = opts.seconds or (5 if quick else 6)
    pairs = opts.pairs or 3
    slice_secs = opts.slice or (2 if quick else 3)
    warm_secs = 5 if quick else 20
    argon2_secs = 1.5 if quick else 3
    mem_requests = opts.requests or (100000 if quick else 1000000)

    # keygate's settings for the run; any KEYGATE_<KEY> in the environment
    # wins (e.g. KEYGATE_TOKEN_CACHE_TTL=300 bench/run --quick), except
    # those that say where things are, which the harness sets.
    kg_settings = {
        "log_level": "warn",            # no line per request
        "max_requests": 0,              # the same workers for the whole run
        "login_max_failures": 1000,     # every login comes from 127.0.0.1
        "login_max_per_address": 1000000,
        "join_max_per_address": 1000000,
        "max_tokens_per_user": 1000,
    }
    env_settings = {k[len("KEYGATE_"):].lower(): v for k, v in os.environ.items()
                    if k.startswith("KEYGATE_") and k[len("KEYGATE_"):].lower() not in (
                        "workers", "database", "listen", "migrations_dir",
                        "common_passwords", "log_target", "config")}
    kg_settings.update(env_settings)
    argon2 = {k: kg_settings.setdefault("argon2_" + k, d)
              for k, d in (("memory", "19456"), ("iterations", "2"), ("parallelism", "1"))}

    for tool in ("wrk", PGBENCH, FCGI_HELLO, ARGON2_RATE, kgharness.KEYGATE_BIN):
        if not shutil.which(tool):
            raise BenchError("%s not found (bench/run installs and builds what is needed)" % tool)

    os.makedirs(OUT, exist_ok=True)
    log = open(os.path.join(OUT, "bench.log"), "w")
    res = Results()
    runner = Runner(log)
    t_start = time.monotonic()
    model, mem_kib = machine_description()
    res.put("date", datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"))
    res.put("mode", "quick" if quick else "full")
    res.put("commit", git_describe())
    res.put("configure", configure_args())
    res.put("machine_nproc", NCPU)
    res.put("machine_cpu", model)
    res.put("machine_mem_mib", mem_kib // 1024)
    res.put("machine_kernel", os.uname().release)
    res.put("versions", software_versions())
    res.put("workers", opts.workers)
    res.put("seconds_per_load", secs)
    res.put("rounds", rounds)
    res.put("me_hello_pairs_per_round", pairs)
    res.put("me_hello_seconds_per_load", slice_secs)
    res.put("keygate_env", " ".join("KEYGATE_%s=%s" % (k.upper(), v)
                                    for k, v in sorted(env_settings.items())) or "(none)")
    res.put("argon2_params", "m=%(memory)s t=%(iterations)s p=%(parallelism)s" % argon2)
    res.values["run_subtitle"] = "%s, %d cores, %d workers, %s run, %s" % (
        model.split(" (")[0], NCPU, opts.workers, "quick" if quick else "full", res.get("date"))

    workdir = kgharness.make_workdir("kgbench-")
    pg = kgf = hello = hello_prompt = None
    try:
        # -- the stack -------------------------------------------------------
        note("PostgreSQL: initdb in %s" % workdir)
        pg = BenchPgCluster(workdir).init()
        pg.query("CREATE EXTENSION pg_stat_statements")
        stmts = Statements(pg)
        # A private copy: a rebuild of src/keygate during the run changes
        # neither the workers nor perf's view of their symbols.
        binary = os.path.join(workdir, "keygate")
        shutil.copy2(kgharness.KEYGATE_BIN, binary)
        r = kgharness.run_keygate(["migrate"], workdir, pg=pg, binary=binary)
        if r.returncode != 0:
            raise BenchError("keygate migrate: %s%s" % (r.stdout, r.stderr))
        kgf = kgharness.KeygateFactory(workdir, pg)
        kg = kgf.start(workers=opts.workers, binary=binary, **kg_settings)
        lt = BenchLighttpd(workdir, "lighttpd-kg", kg.socket)
        kgharness._register(lt)
        stack = kgharness.Stack(pg, kg, lt)
        note("seeding %d users with a live token each" % USERS)
        tokens_path, users_path = seed(pg, stack, workdir)
        stack.http.close()

        hello = HelloPool(workdir, opts.workers)
        lt_hello = BenchLighttpd(workdir, "lighttpd-hello", hello.socket)
        kgharness._register(lt_hello)
        hello_prompt = HelloPool(workdir, opts.workers, prompt_close=True)
        lt_prompt = BenchLighttpd(workdir, "lighttpd-hello-prompt", hello_prompt.socket)
        kgharness._register(lt_prompt)

        pg_args = ["-h", pg.host, "-p", str(pg.port), "-U", pg.superuser]
        pg.query("CREATE DATABASE pgbench", dbname="postgres")
        run([PGBENCH] + pg_args + ["-i", "-q", "-s", "1", "pgbench"], timeout=300,
            env=kgharness.clean_env(), log=log)
        try:
            sql, nparams = lookup_sql_from_source()
            script = pgbench_lookup_script(sql, nparams)
            res.put("pgbench_lookup_sql", "src/db_tokens.c st_token_lookup")
        except BenchError as e:
            note("token lookup SQL: %s; using the copy in bench/bench.py" % e)
            script = pgbench_lookup_script(FALLBACK_LOOKUP_SQL, 2)
            res.put("pgbench_lookup_sql", "bench/bench.py copy (%s)" % e)
        lookup_path = os.path.join(workdir, "lookup.sql")
        with open(lookup_path, "w") as f:
            f.write(script)
        with open(os.path.join(OUT, "lookup.sql"), "w") as f:
            f.write(script)
        # One run of the script must find the seeded key's row.
        check = script.splitlines()[2].rstrip(";").replace(
            ":id", "1").replace(":touch", str(TOUCH_INTERVAL))
        if len(pg.query(check)) != 1:
            raise BenchError("the lookup script finds no row for key 1:\n" + check)

        me_url = lt.base_url + "/me"
        hello_url = lt_hello.base_url + "/me"
        prompt_url = lt_prompt.base_url + "/me"
        pm = pg.postmaster_pid()
        roles_kg = {
            "wrk": lambda pid, comm, t: comm == "wrk",
            "lighttpd": lambda pid, comm, t: comm == "lighttpd",
            "keygate": lambda pid, comm, t: descends_from(pid, kg.pid, t),
            "postgres": lambda pid, comm, t: descends_from(pid, pm, t),
        }
        roles_hello = {"wrk": roles_kg["wrk"], "lighttpd": roles_kg["lighttpd"],
                       "fcgi_hello": lambda pid, comm, t: descends_from(pid, hello.proc.pid, t),
                       "postgres": roles_kg["postgres"]}
        roles_prompt = dict(roles_hello, fcgi_hello=lambda pid, comm, t: descends_from(
            pid, hello_prompt.proc.pid, t))
        roles_pgbench = {"pgbench": lambda pid, comm, t: comm == "pgbench",
                         "postgres": roles_kg["postgres"]}
        # Kernel threads (softirq work for loopback traffic lands partly in
        # ksoftirqd): part of the load's cost, not someone else's.
        kernel = lambda pid, comm, t: pid == 2 or t.get(pid, ("", 0))[1] == 2  # noqa: E731
        for roles in (roles_kg, roles_hello, roles_prompt, roles_pgbench):
            roles["kernel"] = kernel

        # -- warm-up, first resident size ----------------------------------------
        note("warm-up: GET /me at 8 connections for up to %ds" % warm_secs)
        r = runner.wrk(me_url, "me", tokens_path, 8, warm_secs,
                       limit=5 * USERS * opts.workers)
        res.put("me_warmup_requests", r["requests"])
        if r["errors"]:
            raise BenchError("warm-up: %d failed requests (see bench/out/bench.log)"
                             % r["errors"])
        pids = kg.worker_pids() or [kg.pid]
        rss_start = {p: vmrss_kib(p) for p in pids}
        me_requests = 0

        # -- GET /me and its ceilings, interleaved per connection count --------
        # keygate and the two fcgi_hello pools take turns in short loads (me,
        # hello, prompt; hello, prompt, me; ...): the machine's speed drifts (other guests, turbo),
        # and two loads side by side see the same drift. Each pair gives a
        # ratio; me_vs_transport is the median of them, and a rate the
        # median of its loads. pgbench (a different stack, no ratio taken
        # pairwise) keeps the best of its rounds: a busy neighbour only ever
        # makes a load slower.
        samples = {}
        pair_ratios = {}
        for rnd in range(1, rounds + 1):
            for c in CONNS_ME:
                note("round %d/%d, c=%d: keygate /me and hello in turn (%d x %ds each), "
                     "pgbench -S, pgbench lookup (%ds each)" % (rnd, rounds, c, pairs,
                                                                slice_secs, secs))
                for k in range(pairs):
                    order = [("me", me_url, roles_kg), ("hello", hello_url, roles_hello),
                             ("hello_prompt", prompt_url, roles_prompt)]
                    # Rotated turn by turn, so that each load is next to
                    # each other one as often.
                    order = order[k % 3:] + order[:k % 3]
                    pair = {}
                    for name, url, roles in order:
                        if name == "me":
                            stmts.start()
                        # The same requests (bearer tokens and all) to both:
                        # the ceiling differs from keygate only in what answers.
                        r = runner.wrk(url, "me", tokens_path, c, slice_secs, roles=roles)
                        if name == "me":
                            r["reads"], r["writes"] = stmts.stop(
                                log, "GET /me, c=%d, round %d, pair %d" % (c, rnd, k + 1))
                            me_requests += r["requests"]
                        samples.setdefault((name, c), []).append(r)
                        pair[name] = r
                    for ceiling in ("hello", "hello_prompt"):
                        if pair[ceiling]["rps"] > 0:
                            pair_ratios.setdefault((ceiling, c), []).append(
                                pair["me"]["rps"] / pair[ceiling]["rps"])
                for name, db, extra in (("select", "pgbench", ["-S"]),
                                        ("lookup", pg.dbname, ["-f", lookup_path])):
                    r = runner.pgbench(pg_args, db, c, secs, extra, roles=roles_pgbench)
                    samples.setdefault((name, c), []).append(r)
        for target in ("me", "hello", "hello_prompt"):
            for c in CONNS_ME:
                rs = samples[(target, c)]
                r = median_load(rs)
                res.put("%s_rps_c%d" % (target, c), r["rps"])
                res.put("%s_p50_ms_c%d" % (target, c), r["p50_ms"], "%.3f")
                res.put("%s_p99_ms_c%d" % (target, c), r["p99_ms"], "%.3f")
                res.put("%s_errors_c%d" % (target, c), sum(x["errors"] for x in rs))
                res.put("%s_cpu_c%d" % (target, c), r["cpu"] or "n/a")
                if target == "me":
                    n = max(1, sum(x["requests"] for x in rs))
                    res.put("me_db_reads_per_request_c%d" % c,
                            sum(x["reads"] for x in rs) / n, "%.4f")
                    res.put("me_db_writes_per_request_c%d" % c,
                            sum(x["writes"] for x in rs) / n, "%.4f")
                res.put("%s_rps_c%d_loads" % (target, c), " ".join("%.0f" % x["rps"] for x in rs))
        for name in ("select", "lookup"):
            for c in CONNS_ME:
                rs = samples[(name, c)]
                r = max(rs, key=lambda x: x["tps"])
                res.put("pgbench_%s_tps_c%d" % (name, c), r["tps"])
                res.put("pgbench_%s_lat_ms_c%d" % (name, c), r["lat_ms"], "%.3f")
                res.put("pgbench_%s_errors_c%d" % (name, c), sum(x["failed"] for x in rs))
                res.put("pgbench_%s_cpu_c%d" % (name, c), r["cpu"] or "n/a")
                if rounds > 1:
                    res.put("pgbench_%s_tps_c%d_rounds" % (name, c),
                            " ".join("%.0f" % x["tps"] for x in rs))

        # -- resident size after N requests ---------------------------------
        # In loads of at most a minute (wrk runs for its whole -d even when
        # the script has stopped sending), sized by the rate at 8
        # connections; the whole is bounded in time (20 s with --quick, so
        # that a busy machine gives fewer requests rather than a long run:
        # rss_requests says how many there were).
        left = mem_requests - me_requests
        if left > 0:
            budget = 20 if quick else min(1200, max(60, left // 500))
            deadline = time.monotonic() + budget
            note("GET /me at 8 connections until %d requests since warm-up "
                 "(%d more, at most %ds)" % (mem_requests, left, budget))
            soak_errors = 0
            rate = max(500.0, res.get("me_rps_c8") or 0)
            while left > 0 and time.monotonic() < deadline:
                chunk = int(min(60, max(2, left / rate * 1.05 + 1),
                                deadline - time.monotonic() + 1))
                r = runner.wrk(me_url, "me", tokens_path, 8, chunk, limit=left)
                me_requests += r["requests"]
                soak_errors += r["errors"]
                left = mem_requests - me_requests
                if r["requests"] and chunk > 1:
                    rate = max(500.0, r["requests"] / chunk)
            res.put("me_soak_errors", soak_errors)
        pids_end = kg.worker_pids() or [kg.pid]
        res.put("rss_requests", me_requests)
        res.put("rss_workers_same", "yes" if sorted(pids_end) == sorted(pids) else
                "no (workers were replaced: %s -> %s)" % (pids, pids_end))
        rss_end = {p: vmrss_kib(p) for p in pids_end}
        for i, p in enumerate(sorted(pids)):
            res.put("rss_kib_worker%d_start" % (i + 1), rss_start[p])
            if p in rss_end:
                res.put("rss_kib_worker%d_end" % (i + 1), rss_end[p])
        res.put("rss_kib_worker_start", max(rss_start.values()))
        res.put("rss_kib_worker_end", max(rss_end.values()))
        growth = [rss_end[p] - rss_start[p] for p in pids if p in rss_end]
        res.put("rss_kib_worker_growth", max(growth) if growth else "n/a")

        # -- logins against the Argon2 rate ----------------------------------
        # The ceiling is the best of the measurements before each round of
        # logins and after the last: a busy neighbour only makes one lower.
        env = dict(os.environ, **{"KEYGATE_ARGON2_" + k.upper(): v for k, v in argon2.items()})

        def argon2_rate():
            note("Argon2id rate (%gs on 1 thread, %gs on %d)" % (argon2_secs, argon2_secs, NCPU))
            out = run([ARGON2_RATE, str(argon2_secs)], timeout=4 * argon2_secs + 120,
                      env=env, log=log)
            rates = []
            for name in ("argon2_hps_1thread", "argon2_hps_allcores"):
                m = re.search(r"^%s: ([0-9.]+)$" % name, out, re.M)
                if not m:
                    raise BenchError("argon2_rate printed no %s:\n%s" % (name, out))
                rates.append(float(m.group(1)))
            return rates
        login_url = lt.base_url + "/login"
        samples = {}
        argon2_runs = []
        for rnd in range(1, rounds + 1):
            argon2_runs.append(argon2_rate())
            for c in CONNS_LOGIN:
                note("round %d/%d, c=%d: POST /login (%ds)" % (rnd, rounds, c, login_secs))
                stmts.start()
                r = runner.wrk(login_url, "login", users_path, c, login_secs, roles=roles_kg)
                r["reads"], r["writes"] = stmts.stop(log, "POST /login, c=%d, round %d"
                                                     % (c, rnd))
                samples.setdefault(c, []).append(r)
        for c in CONNS_LOGIN:
            rs = samples[c]
            r = max(rs, key=lambda x: x["rps"])
            res.put("login_rps_c%d" % c, r["rps"])
            res.put("login_p50_ms_c%d" % c, r["p50_ms"], "%.1f")
            res.put("login_p99_ms_c%d" % c, r["p99_ms"], "%.1f")
            res.put("login_errors_c%d" % c, sum(x["errors"] for x in rs))
            res.put("login_cpu_c%d" % c, r["cpu"] or "n/a")
            res.put("login_db_statements_per_login_c%d" % c,
                    (r["reads"] + r["writes"]) / max(1, r["requests"]), "%.2f")
            if rounds > 1:
                res.put("login_rps_c%d_rounds" % c, " ".join("%.1f" % x["rps"] for x in rs))
        argon2_runs.append(argon2_rate())
        res.put("argon2_hps_1thread", max(a[0] for a in argon2_runs))
        res.put("argon2_hps_allcores", max(a[1] for a in argon2_runs))
        res.put("argon2_hps_rounds", "1 thread: %s; %d threads: %s" % (
            " ".join("%.1f" % a[0] for a in argon2_runs), NCPU,
            " ".join("%.1f" % a[1] for a in argon2_runs)))
        res.put("rss_kib_worker_after_login",
                max(vmrss_kib(p) for p in (kg.worker_pids() or [kg.pid])))

        # -- profile ---------------------------------------------------------
        if opts.profile:
            profile(res, kg, roles_kg, me_url, tokens_path, log)

        # -- ratios ------------------------------------------------------------
        for ceiling, figure in (("hello", "me_vs_transport"),
                                ("hello_prompt", "me_vs_transport_prompt_close")):
            for c in CONNS_ME:
                rs = pair_ratios.get((ceiling, c), [])
                res.put("%s_c%d" % (figure, c), statistics.median(rs) if rs else "n/a", "%.3f"
                        if rs else None)
                res.put("%s_c%d_pairs" % (figure, c), " ".join("%.2f" % x for x in rs) or "n/a")
        for c in CONNS_ME:
            res.ratio("me_vs_pgbench_select_c%d" % c, "me_rps_c%d" % c,
                      "pgbench_select_tps_c%d" % c)
        for c in CONNS_ME:
            res.ratio("me_vs_pgbench_lookup_c%d" % c, "me_rps_c%d" % c,
                      "pgbench_lookup_tps_c%d" % c)
        for c in CONNS_LOGIN:
            res.ratio("login_vs_argon2_c%d" % c, "login_rps_c%d" % c,
                      "argon2_hps_1thread" if c == 1 else "argon2_hps_allcores")
        res.put("noise_other_cpu_pct_max", runner.other_max, "%.0f")
        if runner.other_max > 20:
            note("processes outside the benchmark took up to %.0f%% CPU during a load: "
                 "the machine was busy, figures are noisy" % runner.other_max)
        res.put("elapsed_s", time.monotonic() - t_start, "%.0f")

        if any(res.get(k) for k in res.values if k.endswith("_errors") or "_errors_c" in k):
            note("some requests failed: see bench/out/bench.log and the keygate log")
    finally:
        with open(os.path.join(OUT, "results.txt"), "w") as f:
            f.write("".join(line + "\n" for line in res.lines))
        try:
            if res.get("me_rps_c1") is not None and plot(
                    res, os.path.join(OUT, "me.dat"), os.path.join(OUT, "me.png"), log):
                note("wrote bench/out/results.txt, bench/out/me.png")
        except (BenchError, subprocess.SubprocessError) as e:
            note("plot failed: %s" % e)
        for obj in (hello_prompt, hello, kgf, pg):
            if obj is not None:
                with contextlib.suppress(Exception):
                    obj.cleanup()
        kgharness._cleanup_everything()
        if os.environ.get("KG_KEEP") == "1":
            note("kept %s" % workdir)
        kgharness.remove_workdir(workdir)
        log.close()


def profile(res, kg, roles, me_url, tokens_path, log):
    """Two perf recordings during a /me load at 8 connections: the whole
    machine (-a) for where the CPU goes by role, library and symbol, then
    keygate's workers alone with DWARF call graphs for the time spent under
    each of keygate's own functions. Processes are told apart by pid (this
    run's keygate, lighttpd, PostgreSQL and wrk), so that other programs of
    the same name on a shared machine do not count. Writes
    bench/out/profile.txt."""
    if not shutil.which("perf"):
        note("perf not found: no profile (apt-get install linux-perf)")
        return
    secs = 8
    data_all = os.path.join(OUT, "perf-all.data")
    data_kg = os.path.join(OUT, "perf-keygate.data")
    for f in (data_all, data_kg, data_all + ".old", data_kg + ".old"):
        with contextlib.suppress(OSError):
            os.remove(f)
    workers = kg.worker_pids() or [kg.pid]
    threads = min(NCPU, 8)
    wrk = subprocess.Popen(
        ["wrk", "-t%d" % threads, "-c8", "-d%ds" % (2 * secs + 6), "--timeout", "10s",
         "-s", LOAD_LUA, me_url, "--", "me", tokens_path, str(threads)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True)
    try:
        time.sleep(2)
        table = proc_table()
        role_of = {}
        for pid, (comm, _ppid, _t, _s) in table.items():
            for role, pred in roles.items():
                if pred(pid, comm, table):
                    # perf's "pid" is the thread's (wrk has several).
                    with contextlib.suppress(OSError):
                        for tid in os.listdir("/proc/%d/task" % pid):
                            role_of[int(tid)] = role
                    role_of[pid] = role
                    break
        note("perf record -a for %ds, then keygate's workers for %ds, "
             "during GET /me at 8 connections" % (secs, secs))
        run(["perf", "record", "-q", "-e", "cpu-clock", "-F", "999", "-a", "-o", data_all,
             "--", "sleep", str(secs)], timeout=secs + 120, log=log)
        run(["perf", "record", "-q", "-e", "cpu-clock", "-F", "499", "--call-graph",
             "dwarf,16384", "-p", ",".join(str(p) for p in workers), "-o", data_kg,
             "--", "sleep", str(secs)], timeout=secs + 120, log=log)
    finally:
        try:
            out, _ = wrk.communicate(timeout=2 * secs + 60)
            log.write(out)
        except subprocess.TimeoutExpired:
            wrk.kill()
            wrk.wait()

    def report(data, *args):
        return run(["perf", "report", "-i", data, "--stdio"] + list(args), timeout=600)

    lines = ["# bench/run --profile: perf record -e cpu-clock during GET /api/me at 8",
             "# connections (%d workers, tokens spread over %d users)." % (len(workers), USERS),
             ""]
    # Share of all samples by role; pids of other programs by name.
    by_role, others = {}, {}
    for pct, (key,) in perf_rows(report(data_all, "--no-children", "--sort", "pid",
                                        "-g", "none"), 1):
        pid_s, _, comm = key.partition(":")
        try:
            pid = int(pid_s)
        except ValueError:
            continue
        role = role_of.get(pid)
        if role is None and pid == 0:
            role = "idle"
        if role is None:
            others[comm] = others.get(comm, 0.0) + pct
            role = "other programs"
        by_role[role] = by_role.get(role, 0.0) + pct
    lines.append("## The whole machine (perf record -a, %ds): share of all CPU samples" % secs)
    lines += ["%7.2f%%  %s" % (v, k) for k, v in sorted(by_role.items(), key=lambda kv: -kv[1])]
    if others:
        lines.append("   other programs, by name: " + ", ".join(
            "%s %.1f%%" % (k, v) for k, v in sorted(others.items(), key=lambda kv: -kv[1])[:8]))
    for role in ("keygate", "lighttpd", "postgres", "wrk", "kernel"):
        pids = sorted(p for p, r in role_of.items() if r == role)
        if not pids:
            continue
        rows = perf_rows(report(data_all, "--no-children", "--pid", ",".join(map(str, pids)),
                                "--percentage", "relative", "--sort", "dso,sym",
                                "-g", "none"), 3)
        if not rows:
            continue
        by_dso = {}
        for pct, (dso, _k, _sym) in rows:
            by_dso[dso] = by_dso.get(dso, 0.0) + pct
        lines += ["", "## %s: its samples by library" % role]
        lines += ["%7.2f%%  %s" % (v, k) for k, v in
                  sorted(by_dso.items(), key=lambda kv: -kv[1]) if v >= 0.5]
        lines += ["", "## %s: hottest symbols (self time)" % role]
        lines += ["%7.2f%%  %-20s %s" % (pct, dso, sym) for pct, (dso, _k, sym) in rows[:25]]
    rows = perf_rows(report(data_kg, "--children", "--percentage", "relative",
                            "--sort", "sym", "-g", "none"), 2, children=True)
    # perf may list a function once per process: keep the largest share.
    incl = {}
    for pct, (kind, sym) in rows:
        if kind == "[.]" and not sym.startswith("0x"):
            incl[sym] = max(incl.get(sym, 0.0), pct)
    lines += ["", "## keygate's workers alone (perf record --call-graph dwarf -p, %ds):" % secs,
              "## share of the workers' samples spent in and under each user-space function"]
    lines += ["%7.2f%%  %s" % (pct, sym) for sym, pct in
              sorted(incl.items(), key=lambda kv: -kv[1])[:45] if pct >= 0.5]
    path = os.path.join(OUT, "profile.txt")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    for role, pct in sorted(by_role.items(), key=lambda kv: -kv[1]):
        res.put("profile_cpu_share_%s" % re.sub(r"\W+", "_", role), pct, "%.1f")
    res.put("profile", "bench/out/profile.txt")


def perf_rows(text, nkeys, children=False):
    """[(percent, (key, ...))] from perf report --stdio -g none output: the
    self (or, with children, the first: inclusive) percentage and nkeys
    sort keys: 1 (the rest of the line), 2 ("[k]" or "[.]", symbol) or 3
    (dso, "[k]" or "[.]", symbol)."""
    rows = []
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        parts = line.split()
        if not parts or not parts[0].endswith("%"):
            continue
        try:
            pct = float(parts[0].rstrip("%"))
        except ValueError:
            continue
        rest = parts[2:] if children and len(parts) > 1 and parts[1].endswith("%") else parts[1:]
        if nkeys == 1:
            rows.append((pct, (" ".join(rest),)))
        elif nkeys == 2 and len(rest) >= 2:
            rows.append((pct, (rest[0], " ".join(rest[1:]))))
        elif nkeys == 3 and len(rest) >= 3:
            rows.append((pct, (rest[0], rest[1], " ".join(rest[2:]))))
    return rows


if __name__ == "__main__":
    try:
        main()
    except (BenchError, kgharness.HarnessError, subprocess.TimeoutExpired) as e:
        print("bench/run: error: %s" % e, file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
