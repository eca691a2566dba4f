"""Fault injection: keygate keeps serving what it can, answers the
rest with a clear error, and never lets anyone in, while the database
restarts, a query hangs on a lock, connections run out, a worker or the
master is killed, a client sends garbage or hangs up, a reload fails, or a
logout-all races with logins.

What test_pool.py and test_service.py already cover is not repeated here
(worker kill -9 with respawn, SIGTERM drain, SIGHUP under load, database
down -> 503 and recovery); these tests add harder faults and check them harder:
request-by-request timing and status, every worker individually, and the
log for crashes and prepared-statement errors.

"Every worker" is made deterministic with held requests: N connections each
send BEGIN_REQUEST and part of PARAMS, so each pins one worker (a worker
reads one connection at a time); once all N workers hold one (seen in
/proc), the requests are completed and each is answered by a different
worker.

Every wait is bounded; everything is on loopback. Throttling limits are
raised and Argon2 made cheap where a test logs in many times (the abuse and
password tests cover those settings).
"""

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import threading
import time
import uuid

import pytest
import requests

import kgharness
from kgharness import (FCGI_PARAMS, FCGI_STDIN, FCGIConnection, FCGIError,
                       RequestLoop, cgi_params, fcgi_record, fcgi_request,
                       wait_until)
from replies import header_of, status_of

T = 10  # seconds: timeout of any single request

LIMITS = dict(login_max_failures=1000, login_max_per_address=1000000,
              join_max_per_address=1000000)
# Argon2 at its cheapest: these tests are about faults, not hashing cost.
CHEAP = dict(LIMITS, argon2_memory=1024, argon2_iterations=1)
PASSWORD = "fault injection passphrase 5821"


# ---------------------------------------------------------------------------
# helpers


def body_of(r):
    try:
        return r.json()
    except ValueError:
        return None


def assert_unavailable(r):
    """503 unavailable with a numeric Retry-After (the API's promise)."""
    assert status_of(r) == 503, (status_of(r), r.text[:300])
    b = body_of(r)
    assert isinstance(b, dict) and b.get("error") == "unavailable", r.text[:300]
    ra = header_of(r, "Retry-After")
    assert ra is not None and ra.strip().isdigit() and int(ra) >= 1, ra


def crash_lines(kg):
    return [ln for ln in kg.log().splitlines()
            if "killed by signal" in ln or "exited with status" in ln]


def prepared_statement_errors(kg):
    return [ln for ln in kg.log().splitlines()
            if re.search(r"prepared statement|does not exist", ln, re.I)]


def new_user(kg, prefix="f"):
    name = "%s%s" % (prefix, uuid.uuid4().hex[:14])
    r = kg.fcgi("POST", "/join", body={"username": name, "password": PASSWORD}, timeout=T)
    assert r.status == 201, r.text
    return name


def login(kg, name, password=PASSWORD, timeout=T):
    return kg.fcgi("POST", "/login", body={"username": name, "password": password},
                   timeout=timeout)


def token_for(kg, name):
    r = login(kg, name)
    assert r.status == 200, r.text
    return r.json()["token"]


def bearer(token):
    return {"Authorization": "Bearer " + token}


def me(kg, token, timeout=T):
    return kg.fcgi("GET", "/me", headers=bearer(token), timeout=timeout)


def _unix_inodes():
    """Inodes of all unix sockets (from /proc/net/unix)."""
    out = set()
    with open("/proc/net/unix") as f:
        next(f)
        for line in f:
            parts = line.split()
            if len(parts) >= 7:
                out.add(parts[6])
    return out


def held_connection(pid):
    """True when worker pid holds an accepted FastCGI connection: a unix
    socket on an fd other than 0 (fd 0 is the listening socket; the
    database connection is TCP)."""
    unix = _unix_inodes()
    try:
        fds = os.listdir("/proc/%d/fd" % pid)
    except OSError:
        return False
    for fd in fds:
        if fd == "0":
            continue
        try:
            link = os.readlink("/proc/%d/fd/%s" % (pid, fd))
        except OSError:
            continue
        m = re.match(r"socket:\[(\d+)\]$", link)
        if m and m.group(1) in unix:
            return True
    return False


def on_every_worker(kg, method, path, body=b"", headers=None, content_type=None,
                    timeout=T):
    """Send the same request once to each worker of kg; return the
    responses (one per worker, in no particular order)."""
    if isinstance(body, (dict, list)):
        body = json.dumps(body).encode()
        content_type = content_type or "application/json"
    pids = kg.wait_workers(timeout=15)
    params = cgi_params(method, kg.base_path + path, headers, body,
                        content_type=content_type)
    conns = []
    try:
        for _ in pids:
            c = FCGIConnection(kg.socket, timeout=timeout)
            conns.append(c)
            c.begin()
            c.params(params, end=False)
        wait_until(lambda: all(held_connection(p) for p in pids), 15,
                   what="each of %d workers to hold one request" % len(pids))
        out = []
        for c in conns:
            c.end_params()
            c.stdin(body)
        for c in conns:
            out.append(c.read_response(timeout=timeout))
        return out
    finally:
        for c in conns:
            c.close()


worker_usage = kgharness.rss_and_fds


def pool_processes(pgid):
    """Pids of live processes in process group pgid (the master's session)."""
    return [p for p, _, group in kgharness.live_processes() if group == pgid]


def socket_accepts(path):
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(2)
        try:
            s.connect(path)
            return True
        except OSError:
            return False


class Timeline:
    """Threads calling named request functions until stopped; records
    (start, end, name, status, response or exception) for each request."""

    def __init__(self, fns, pause=0.0):
        self.fns = fns              # list of (name, fn)
        self.pause = pause
        self.records = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = []

    def _run(self, name, fn):
        while not self._stop.is_set():
            t0 = time.monotonic()
            try:
                r, exc = fn(), None
            except Exception as e:  # noqa: BLE001 - recorded
                r, exc = None, e
            t1 = time.monotonic()
            with self._lock:
                self.records.append((t0, t1, name, None if r is None else status_of(r),
                                     r if exc is None else exc))
            if self.pause:
                time.sleep(self.pause)

    def start(self):
        for name, fn in self.fns:
            th = threading.Thread(target=self._run, args=(name, fn), daemon=True)
            th.start()
            self._threads.append(th)
        return self

    def stop(self):
        self._stop.set()
        for th in self._threads:
            th.join(60)
        return self


def session_fn(method, url, **kw):
    """fn() doing one HTTP request with a requests.Session per thread."""
    local = threading.local()

    def fn():
        s = getattr(local, "s", None)
        if s is None:
            s = local.s = requests.Session()
        return s.request(method, url, timeout=30, **kw)
    return fn


# ---------------------------------------------------------------------------
# the database restarts under load


def test_database_restart_fast_under_load(stack_factory, pg):
    """pg_ctl restart -m fast while GET /me and POST /login run: no crash,
    503 + Retry-After (quickly) during the outage, 200 after it, and no
    prepared-statement error after the reconnect."""
    connect_timeout, retry_max = 2, 1
    st = stack_factory(workers=2, db_connect_timeout=connect_timeout,
                       db_retry_max=retry_max, **CHEAP)
    kg = st.kg
    me_user, login_user = new_user(kg), new_user(kg)
    token = token_for(kg, me_user)
    pids = set(kg.wait_workers())
    loop = Timeline([
        ("me", session_fn("GET", st.url("/me"), headers=bearer(token))),
        ("me", session_fn("GET", st.url("/me"), headers=bearer(token))),
        ("login", session_fn("POST", st.url("/login"),
                             json={"username": login_user, "password": PASSWORD})),
    ], pause=0.02).start()
    try:
        time.sleep(1.0)
        t_down = time.monotonic()
        pg.restart(mode="fast")
        t_up = time.monotonic()
        # Long enough for every worker's back-off (db_retry_max) to run out,
        # and then some: the requests after `settle` below are judged.
        time.sleep(retry_max + 5.0)
    finally:
        loop.stop()
    recs = loop.records
    summary = {}
    for t0, t1, name, status, _ in recs:
        key = (name, "before" if t1 < t_down else "during" if t0 < t_up else "after", status)
        summary[key] = summary.get(key, 0) + 1
    last_503 = max([t1 - t_up for _t0, t1, _n, s, _r in recs if s == 503], default=None)
    print("restart took %.2fs; last 503 answered %s s after it; outcomes: %s"
          % (t_up - t_down, None if last_503 is None else round(last_503, 2),
             sorted(summary.items(), key=str)))

    bad = []
    for t0, t1, name, status, r in recs:
        if status is None:
            bad.append(("exception", name, round(t0 - t_down, 2), repr(r)))
        elif status == 503:
            try:
                assert_unavailable(r)
            except AssertionError as e:
                bad.append(("bad 503", name, str(e)))
            # "quickly": within db_connect_timeout, plus slack for a busy box
            if t1 - t0 > connect_timeout + 3:
                bad.append(("slow 503", name, round(t1 - t0, 2)))
        elif status != 200:
            bad.append(("status", name, status, round(t0 - t_down, 2), r.text[:200]))
    assert not bad, bad[:10]
    # Before the restart and once the back-off has run out (plus 2 s for a
    # slow reconnect under the sanitizers): every request succeeds.
    settle = t_up + retry_max + 2.0
    late = [(name, status) for t0, _t1, name, status, _ in recs if t0 >= settle]
    early = [(name, status) for _t0, t1, name, status, _ in recs if t1 < t_down]
    assert early and all(s == 200 for _, s in early), early
    assert len(late) >= 10, ("too few requests after the restart", len(late))
    assert all(s == 200 for _, s in late), [x for x in late if x[1] != 200][:10]
    assert {n for n, _ in late} == {"me", "login"}, late[:5]
    # Nothing crashed, nothing was replaced.
    assert kg.alive()
    assert set(kg.worker_pids()) == pids, (pids, kg.worker_pids())
    assert not crash_lines(kg), crash_lines(kg)
    assert not prepared_statement_errors(kg), prepared_statement_errors(kg)[:5]
    # Every worker still verifies the token.
    assert [r.status for r in on_every_worker(kg, "GET", "/me", headers=bearer(token))] \
        == [200, 200]


# ---------------------------------------------------------------------------
# a query blocked by a lock


def test_query_blocked_by_lock_ends_at_statement_timeout(keygate, pg):
    timeout_ms = 1000
    kg = keygate.start(workers=2, statement_timeout=timeout_ms, token_cache_size=0, **CHEAP)
    token = token_for(kg, new_user(kg))
    pids = set(kg.wait_workers())
    assert me(kg, token).status == 200
    locker = pg.connect()
    try:
        locker.autocommit = False
        with locker.cursor() as cur:
            cur.execute("LOCK TABLE api_keys IN ACCESS EXCLUSIVE MODE")
        # Every worker meets the lock once, each on its own connection.
        t0 = time.monotonic()
        rs = on_every_worker(kg, "GET", "/me", headers=bearer(token), timeout=30)
        took = time.monotonic() - t0
        print("blocked requests answered 503 after %.2fs" % took)
        for r in rs:
            assert_unavailable(r)
        # Blocked, then released by statement_timeout (not by the lock going
        # away, which happens only after 30 s, the client's timeout).
        assert took >= timeout_ms / 1000.0 * 0.8, took
        assert took < timeout_ms / 1000.0 + 10, took
        # A login also needs the table: same answer, same bound.
        t0 = time.monotonic()
        r = login(kg, new_user(kg), timeout=30)
        took = time.monotonic() - t0
        assert_unavailable(r)
        assert took < timeout_ms / 1000.0 + 10, took
    finally:
        locker.rollback()
        locker.close()
    # The workers survived and serve at once.
    for r in on_every_worker(kg, "GET", "/me", headers=bearer(token)):
        assert r.status == 200, r.text
    for _ in range(10):
        assert me(kg, token).status == 200
    assert set(kg.worker_pids()) == pids
    assert not crash_lines(kg), crash_lines(kg)
    assert re.search(r"statement timeout|canceling statement", kg.log()), kg.log()[-2000:]


# ---------------------------------------------------------------------------
# fewer database connections than workers


def test_fewer_connections_than_workers(keygate, pg):
    retry_max = 2
    role = "kg_lim_%s" % uuid.uuid4().hex[:8]
    pg.query("CREATE ROLE %s LOGIN CONNECTION LIMIT 1" % role)
    kg = None
    try:
        pg.query("GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO %s"
                 % role)
        pg.query("GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO %s" % role)
        dsn = "host=%s port=%d dbname=%s user=%s" % (pg.host, pg.port, pg.dbname, role)
        kg = keygate.start(workers=3, database=dsn, db_retry_max=retry_max,
                           db_connect_timeout=2, **CHEAP)
        pids = set(kg.wait_workers())

        def round_of_statuses():
            rs = on_every_worker(kg, "GET", "/health")
            for r in rs:
                if r.status != 200:
                    assert_unavailable(r)
            return sorted(r.status for r in rs)

        # One worker gets the only connection; the other two answer 503. At
        # once, or after a back-off: the master's own connection (it reads
        # the stored hashes' cost classes before it forks) is closed by then,
        # but its server process may still count against the limit for a
        # moment, and then every worker's first try fails.
        wait_until(lambda: round_of_statuses() == [200, 503, 503], retry_max + 10,
                   what="one worker connected")
        time.sleep(retry_max + 0.5)     # they retry, fail again, stay up
        assert round_of_statuses() == [200, 503, 503]
        assert set(kg.worker_pids()) == pids and not crash_lines(kg)
        # Slots free up: within db_retry_max every worker connects.
        pg.query("ALTER ROLE %s CONNECTION LIMIT -1" % role)
        # after db_retry_max, at once on a quiet machine; bounded, not timed
        wait_until(lambda: round_of_statuses() == [200, 200, 200], retry_max + 10,
                   what="every worker connected")
        for _ in range(20):
            assert kg.fcgi("GET", "/health").status == 200
        n = pg.query("SELECT count(*) FROM pg_stat_activity WHERE usename = %s", (role,))[0][0]
        assert n == 3, n
        # ... and they do real work on those connections.
        name = new_user(kg)
        token = token_for(kg, name)
        assert [r.status for r in on_every_worker(kg, "GET", "/me", headers=bearer(token))] \
            == [200, 200, 200]
        assert set(kg.worker_pids()) == pids
        assert not crash_lines(kg), crash_lines(kg)
        assert re.search(r"too many connections", kg.log()), kg.log()[-2000:]
    finally:
        if kg is not None:
            kg.stop(timeout=10)
        pg.query("ALTER ROLE %s CONNECTION LIMIT -1" % role)
        pg.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s",
                 (role,))
        pg.query("DROP OWNED BY %s" % role)
        pg.query("DROP ROLE %s" % role)


# ---------------------------------------------------------------------------
# crafted FastCGI records


def _nv4(n):
    """A FastCGI name/value length in its 4-byte form (high bit set)."""
    return struct.pack(">I", 0x80000000 | n)


def _hdr(rtype, clen, plen=0, req_id=1, version=1):
    return struct.pack(">BBHHBB", version, rtype, req_id, clen, plen, 0)


def _begin():
    return fcgi_record(kgharness.FCGI_BEGIN_REQUEST,
                       struct.pack(">HB5x", kgharness.FCGI_RESPONDER, 0))


def _good_params(extra=None):
    return kgharness.fcgi_encode_params(cgi_params("GET", "/api/health", extra=extra))


def _end():
    return fcgi_record(FCGI_PARAMS, b"") + fcgi_record(FCGI_STDIN, b"")


def _big_value_params(size):
    """A complete request whose PARAMS stream carries one value of `size`
    bytes, spread over many records."""
    pair = kgharness.fcgi_encode_params([("HTTP_X_BIG", b"v" * size)])
    return _begin() + fcgi_record(FCGI_PARAMS, _good_params() + pair) + _end()


CRAFTED = {
    # CVE-2025-23016: name and value lengths of 0x7ffffffe
    "cve_both_lengths": _begin() + fcgi_record(
        FCGI_PARAMS, _nv4(0x7ffffffe) + _nv4(0x7ffffffe) + b"A" * 64) + _end(),
    "cve_name_length": _begin() + fcgi_record(
        FCGI_PARAMS, _nv4(0x7ffffffe) + b"\x01" + b"B" * 64) + _end(),
    "cve_value_length": _begin() + fcgi_record(
        FCGI_PARAMS, b"\x04" + _nv4(0x7ffffffe) + b"NAME" + b"C" * 64) + _end(),
    "max_lengths_after_good_params": _begin() + fcgi_record(
        FCGI_PARAMS, _good_params() + _nv4(0x7fffffff) + _nv4(0x7fffffff) + b"D" * 8) + _end(),
    # a pair longer than what follows it in the stream
    "pair_longer_than_stream": _begin() + fcgi_record(
        FCGI_PARAMS, _nv4(200) + b"\x0a" + b"E" * 20) + _end(),
    # half a length at the end of the stream
    "length_cut_in_half": _begin() + fcgi_record(FCGI_PARAMS, b"\x85\x00") + _end(),
    # truncated records, then close
    "truncated_header": _begin() + _hdr(FCGI_PARAMS, 100)[:5],
    "content_shorter_than_claimed": _begin() + _hdr(FCGI_PARAMS, 1000) + b"F" * 100,
    "padding_missing": _begin() + _hdr(FCGI_PARAMS, 16, 200) + _good_params()[:16],
    "begin_request_truncated": _hdr(kgharness.FCGI_BEGIN_REQUEST, 8) + b"\x00\x01",
    # records out of order or for another request
    "params_for_unknown_request": _begin() + fcgi_record(FCGI_PARAMS, _good_params(),
                                                         req_id=7) + _end(),
    "stdin_before_params_end": _begin() + fcgi_record(FCGI_PARAMS, _good_params())
    + fcgi_record(FCGI_STDIN, b"x" * 32) + _end(),
    "bad_version": _hdr(kgharness.FCGI_BEGIN_REQUEST, 8, version=9)
    + struct.pack(">HB5x", 1, 0) + fcgi_record(FCGI_PARAMS, _good_params()) + _end(),
    "unknown_record_type": _begin() + _hdr(42, 8) + b"G" * 8
    + fcgi_record(FCGI_PARAMS, _good_params()) + _end(),
    # oversized PARAMS streams
    "params_value_4MiB": _big_value_params(4 << 20),
    "params_100k_pairs": _begin() + fcgi_record(
        FCGI_PARAMS, _good_params() + kgharness.fcgi_encode_params(
            [("HTTP_X_%06d" % i, "v") for i in range(100000)])) + _end(),
}


def _send_crafted(address, data):
    """Send data, half-close, read whatever comes back (bounded), close.
    Returns a short description of the outcome."""
    with FCGIConnection(address, timeout=5) as c:
        try:
            c.send_raw(data)
            with contextlib.suppress(OSError):
                c.sock.shutdown(socket.SHUT_WR)
            got = b""
            while len(got) < 1 << 20:
                chunk = c.sock.recv(65536)
                if not chunk:
                    break
                got += chunk
        except OSError as e:
            return "error %s" % e.__class__.__name__
    m = re.search(rb"Status: (\d+)", got)
    return "status %s" % m.group(1).decode() if m else "closed, %d bytes" % len(got)


def test_crafted_params_records(keygate):
    """Each crafted stream goes to one worker: at most that worker dies, it is
    respawned, and the pool then serves a request loop without a failure."""
    n = 2
    kg = keygate.start(workers=n, request_timeout=10)
    outcomes, deaths = {}, {}
    for name, data in CRAFTED.items():
        before = set(kg.wait_workers(timeout=20))
        outcomes[name] = _send_crafted(kg.socket, data)
        time.sleep(0.2)
        gone = before - set(kg.worker_pids())
        assert kg.alive(), (name, kgharness.tail(kg.log_path))
        assert len(gone) <= 1, (name, gone)
        if gone:
            deaths[name] = gone
        kg.wait_workers(timeout=20)
        try:
            r = kg.fcgi("GET", "/health", timeout=T)
        except OSError:
            # The worker that took the crafted stream may still have been
            # dying when it accepted this one; the next request must work.
            time.sleep(0.5)
            kg.wait_workers(timeout=20)
            r = kg.fcgi("GET", "/health", timeout=T)
        assert r.status == 200, (name, r)
    print("crafted records:", json.dumps(outcomes, indent=1))
    for name, gone in deaths.items():
        pid = gone.pop()
        why = [ln for ln in crash_lines(kg) if "worker %d " % pid in ln]
        assert why, (name, pid, crash_lines(kg))
        print("worker died on %s: %s" % (name, why[0]))
    kg.wait_workers(timeout=20)
    loop = RequestLoop(lambda: kg.fcgi("GET", "/health", timeout=T), threads=2,
                       max_requests=100, max_seconds=60).start()
    loop.join(timeout=90)
    assert loop.count == 200, loop.count
    assert loop.failures == [], loop.failures[:10]
    assert kg.alive() and len(kg.worker_pids()) == n


# ---------------------------------------------------------------------------
# kill -9


def _stalled_login(kg, sent=10):
    """A POST /login whose body stops after `sent` bytes: the worker that
    took it is busy reading until the connection ends."""
    body = json.dumps({"username": "stall" + uuid.uuid4().hex[:8],
                       "password": PASSWORD}).encode()
    c = FCGIConnection(kg.socket, timeout=30)
    c.begin()
    c.params(cgi_params("POST", kg.base_path + "/login", body=body,
                        content_type="application/json"))
    c.stdin(body[:sent], end=False)
    return c


def _busy_worker(kg, min_ms=300):
    """The pid of the worker busy for at least min_ms (GET /status), i.e.
    not the one answering the /status request."""
    def find():
        workers = kg.fcgi("GET", "/status", timeout=T).json()["workers"]
        busy = [w for w in workers if w["state"] == "busy" and w.get("request_ms", 0) >= min_ms]
        return busy[0]["pid"] if len(busy) == 1 else None
    return wait_until(find, 15, interval=0.1, what="one worker busy for %dms" % min_ms)


def test_worker_kill9_mid_request(keygate):
    kg = keygate.start(workers=2, **CHEAP)
    before = kg.fcgi("GET", "/status").json()["pool"]["respawns"]
    c = _stalled_login(kg)
    try:
        victim = _busy_worker(kg)
        assert victim in kg.worker_pids()
        os.kill(victim, signal.SIGKILL)
        with pytest.raises((OSError, FCGIError)):
            c.read_response(timeout=10)   # EOF or reset, never a response
    finally:
        c.close()
    kg.wait_workers(exclude=[victim], timeout=15)
    assert any(str(victim) in ln and "signal 9" in ln for ln in crash_lines(kg)), \
        crash_lines(kg)
    loop = RequestLoop(lambda: fcgi_request(kg.socket, "GET", "/api/health", timeout=T),
                       threads=2, max_requests=500, max_seconds=120).start()
    t0 = time.monotonic()
    loop.join(timeout=150)
    print("1000 requests after the respawn in %.1fs" % (time.monotonic() - t0))
    assert loop.count == 1000, loop.count
    assert loop.failures == [], loop.failures[:10]
    after = kg.fcgi("GET", "/status").json()["pool"]["respawns"]
    assert after == before + 1, (before, after)


def test_worker_kill9_mid_request_behind_lighttpd(stack_factory, pg):
    """The same through the web server: the client gets an error from
    lighttpd (at once, not after a timeout) and the next requests succeed.
    lighttpd collects the whole request before it calls keygate, so the
    worker is held inside the request by a lock on api_keys instead."""
    st = stack_factory(workers=2, statement_timeout=30000, token_cache_size=0, **CHEAP)
    kg = st.kg
    token = token_for(kg, new_user(kg))
    assert st.get("/me", headers=bearer(token)).status_code == 200
    result = {}
    locker = pg.connect()
    try:
        locker.autocommit = False
        with locker.cursor() as cur:
            cur.execute("LOCK TABLE api_keys IN ACCESS EXCLUSIVE MODE")

        def call():
            t0 = time.monotonic()
            try:
                result["r"] = requests.get(st.url("/me"), headers=bearer(token), timeout=30)
            except Exception as e:  # noqa: BLE001 - checked below
                result["r"] = e
            result["t"] = time.monotonic() - t0
        th = threading.Thread(target=call, daemon=True)
        th.start()
        victim = _busy_worker(kg)
        t_kill = time.monotonic()
        os.kill(victim, signal.SIGKILL)
        th.join(30)
        waited = time.monotonic() - t_kill
    finally:
        locker.rollback()
        locker.close()
    r = result.get("r")
    assert isinstance(r, requests.Response), r
    print("lighttpd answered %d %.2fs after the kill" % (r.status_code, waited))
    assert 500 <= r.status_code < 600, (r.status_code, r.text[:200])
    assert r.status_code != 200
    # at once: a web server that waited for its backend would wait for the
    # 30 s timeout; 10 s leaves room for a slow machine
    assert waited < 10, waited
    kg.wait_workers(exclude=[victim], timeout=15)
    bad = []
    for _ in range(200):
        x = st.get("/me", headers=bearer(token))
        if x.status_code != 200:
            bad.append((x.status_code, x.text[:100]))
    assert not bad, bad[:10]


def _wait_pool_gone(pgid, workers, timeout):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        left = set(pool_processes(pgid)) | {p for p in workers if kgharness.pid_alive(p)}
        if not left:
            return time.monotonic() - t0
        time.sleep(0.05)
    return None


def test_master_kill9_idle_workers_exit(keygate):
    kg = keygate.start(workers=3)
    workers = kg.wait_workers()
    path = kg.socket
    os.kill(kg.pid, signal.SIGKILL)
    kg.proc.wait(timeout=10)
    took = _wait_pool_gone(kg.pid, workers, 5.0)      # 0.05 s on a quiet machine
    assert took is not None, ("pool processes left 5s after the master died",
                              pool_processes(kg.pid))
    print("workers gone %.2fs after the master" % took)
    # No orphan holds the socket: the stale path refuses connections.
    assert os.path.exists(path)
    assert not socket_accepts(path)
    # A new pool binds the same path cleanly and serves.
    kg2 = keygate.start(workers=2, listen=path)
    for _ in range(20):
        assert kg2.fcgi("GET", "/health").status == 200
    assert "listening on %s" % path in kg2.log(), kg2.log()[-1000:]


def test_master_kill9_with_a_stalled_request_leaves_no_orphan(keygate):
    """A worker busy with a client that stopped sending when the master dies
    must not outlive the master by more than its time limits
    (request_timeout, shutdown_timeout); while it lives it keeps the
    listening socket open, and new clients of the stale socket hang."""
    limit = 3
    kg = keygate.start(workers=2, request_timeout=limit, shutdown_timeout=limit, **CHEAP)
    workers = kg.wait_workers()
    path = kg.socket
    c = _stalled_login(kg)
    try:
        _busy_worker(kg)
        os.kill(kg.pid, signal.SIGKILL)
        kg.proc.wait(timeout=10)
        took = _wait_pool_gone(kg.pid, workers, limit + 6.0)
        left = pool_processes(kg.pid)
        stale_accepts = socket_accepts(path)
    finally:
        c.close()
    assert took is not None, (
        "pool process(es) %s still alive %ds after the master was killed (a worker "
        "waiting for a stalled client; the stale socket accepts connections: %s)"
        % (left, limit + 6, stale_accepts))
    assert not stale_accepts
    kg2 = keygate.start(workers=2, listen=path)
    for _ in range(10):
        assert kg2.fcgi("GET", "/health").status == 200


# ---------------------------------------------------------------------------
# clients that hang up


def _hangup_params_only(kg):
    with FCGIConnection(kg.socket, timeout=5) as c:
        c.begin()
        data = kgharness.fcgi_encode_params(cgi_params("GET", "/api/health"))
        c.send_raw(fcgi_record(FCGI_PARAMS, data[:len(data) // 2]))


def _short_body_request(kg, end_stdin):
    body = json.dumps({"username": "nobody" + uuid.uuid4().hex[:8],
                       "password": "not the password at all"}).encode()
    with FCGIConnection(kg.socket, timeout=10) as c:
        c.begin()
        c.params(cgi_params("POST", "/api/login", body=body, content_type="application/json"))
        c.stdin(body[:len(body) // 3], end=end_stdin)
        if end_stdin:
            # The stream ended early: a broken request, 400, not a short one.
            r = c.read_response(timeout=T)
            assert r.status == 400, r
            assert r.json()["error"] == "invalid_request", r.text


def _hangup_after_begin(kg):
    with FCGIConnection(kg.socket, timeout=5) as c:
        c.begin()


def _abort_mid_request(kg):
    with FCGIConnection(kg.socket, timeout=5) as c:
        c.begin()
        c.params(cgi_params("POST", "/api/login", body=b"x" * 40,
                            content_type="application/json"))
        c.stdin(b"{", end=False)
        c.abort()


HANGUPS = [
    ("params_then_close", _hangup_params_only),
    ("short_body_then_close", lambda kg: _short_body_request(kg, False)),
    ("short_body_stdin_ended", lambda kg: _short_body_request(kg, True)),
    ("begin_then_close", _hangup_after_begin),
    ("abort_mid_body", _abort_mid_request),
]


def test_clients_stalled_in_params_do_not_block_the_pool(keygate):
    """Clients that send BEGIN_REQUEST and half the PARAMS, then nothing,
    one per worker: request_timeout bounds them like any stuck request, so
    after it a new request is served again (today libfcgi reads PARAMS
    inside FCGX_Accept_r, before the worker marks itself busy, so the
    master never sees these workers as stuck)."""
    limit = 2
    kg = keygate.start(workers=2, request_timeout=limit)
    pids = kg.wait_workers()
    stalled = []
    try:
        for _ in pids:
            c = FCGIConnection(kg.socket, timeout=30)
            stalled.append(c)
            c.begin()
            data = kgharness.fcgi_encode_params(cgi_params("GET", "/api/health"))
            c.send_raw(fcgi_record(FCGI_PARAMS, data[:len(data) // 2]))
        wait_until(lambda: all(held_connection(p) for p in pids), 15,
                   what="every worker to hold a stalled client")
        t0 = time.monotonic()
        try:
            r = kg.fcgi("GET", "/health", timeout=limit + 12)
            took = time.monotonic() - t0
        except OSError as e:
            pytest.fail("no answer %.1fs after request_timeout=%ds while %d clients stall "
                        "in PARAMS (%r); /status would show the workers idle"
                        % (time.monotonic() - t0, limit, len(stalled), e))
    finally:
        for c in stalled:
            c.close()
    assert r.status == 200, r
    assert took < limit + 12, took
    assert kg.alive()


def _settled_usage(kg, pids):
    """Per-worker (RSS KiB, fds) measured while the pool is idle: RSS after
    1 s, and the fewest fds counted every 50 ms in that second (a worker
    still closing a connection holds one more)."""
    for _ in range(4):
        assert kg.fcgi("GET", "/health").status == 200
    fds = {}
    end = time.monotonic() + 1.0
    while time.monotonic() < end:
        for p in pids:
            fds[p] = min(fds.get(p, 1 << 30), worker_usage(p)[1])
        time.sleep(0.05)
    return {p: (worker_usage(p)[0], fds[p]) for p in pids}


def test_clients_that_hang_up_leak_nothing(keygate):
    kg = keygate.start(workers=2, **CHEAP)
    pids = kg.wait_workers()
    token = token_for(kg, new_user(kg))
    # Warm up: every path once per worker, so allocator caches settle.
    for _ in range(40):
        for _name, fn in HANGUPS:
            fn(kg)
        assert me(kg, token).status == 200
    base = _settled_usage(kg, pids)
    kinds = {}
    for i in range(500):
        name, fn = HANGUPS[i % len(HANGUPS)]
        fn(kg)
        kinds[name] = kinds.get(name, 0) + 1
        if i % 5 == 4:
            r = me(kg, token)
            assert r.status == 200, (i, name, r)
    after = _settled_usage(kg, pids)
    print("hang-ups sent: %s\nper worker (RSS KiB, fds): before %s after %s"
          % (kinds, base, after))
    assert set(kg.worker_pids()) == set(pids), "a worker died"
    assert not crash_lines(kg), crash_lines(kg)
    for p in pids:
        rss0, fd0 = base[p]
        rss1, fd1 = after[p]
        assert fd1 == fd0, ("fd count of worker %d grew" % p, fd0, fd1)
        assert rss1 - rss0 < 512, ("RSS of worker %d grew by %d KiB" % (p, rss1 - rss0))


def test_a_connection_slow_to_send_its_first_bytes_is_served(keygate):
    """libfcgi waits up to 2 s for a new connection's first bytes (a select()
    in OS_Accept) and drops the connection unanswered if a signal interrupts
    that wait. The once-a-second watchdog tick was such a signal (about one
    request in 600,000 failed under load); it runs in a thread of its own
    now. A client that connects and waits 1.2 s, so that a tick falls into
    the wait, must be served."""
    kg = keygate.start(workers=1)
    for _ in range(2):
        with FCGIConnection(kg.address, timeout=10) as conn:
            time.sleep(1.2)
            r = conn.request(cgi_params("GET", kg.base_path + "/health", None, b"",
                                        "127.0.0.1"))
        assert r.status == 200 and r.json()["status"] == "ok", r


def test_sigterm_while_a_connection_waits_for_its_first_bytes_serves_it(keygate):
    """A worker told to stop (SIGTERM: a reload retiring it, a drain) just
    after it accepted a connection whose first bytes have not come yet
    serves that connection, then leaves. libfcgi's own accept waited for
    those bytes in a select() the signal interrupted and dropped the
    connection (a reload under load cost the web server a 5xx now and then);
    keygate accepts connections itself now."""
    kg = keygate.start(workers=1)
    with FCGIConnection(kg.address, timeout=10) as conn:
        wait_until(lambda: held_connection(kg.pid), 10, interval=0.01,
                   what="the worker holding the new connection")
        os.kill(kg.pid, signal.SIGTERM)
        time.sleep(0.3)
        r = conn.request(cgi_params("GET", kg.base_path + "/health", None, b"", "127.0.0.1"))
    assert r.status == 200 and r.json()["status"] == "ok", r
    assert kg.proc.wait(timeout=15) == 0


def test_the_reply_does_not_wait_for_the_end_of_input(keygate):
    """Before closing promptly the worker reads the end of the input (the
    empty STDIN record); the reply goes out before it waits for that, so a
    client that sends it late, or never, still has its answer."""
    kg = keygate.start(workers=1)
    with FCGIConnection(kg.address, timeout=10) as conn:
        conn.begin()
        conn.params(cgi_params("GET", kg.base_path + "/health", None, b"", "127.0.0.1"))
        # request_timeout is 30 s: without the reply first, this read times out.
        r = conn.read_response(timeout=5)
    assert r.status == 200 and r.json()["status"] == "ok", r


def test_a_kept_connection_keeps_the_lingering_close_for_an_unread_body(keygate):
    """On a connection the client keeps (FCGI_KEEP_CONN), a request closed
    promptly must not leave the next one closed promptly too: a 413,
    answered before its 400 kB body is read, keeps libfcgi's lingering
    close, so the client can finish writing the body."""
    kg = keygate.start(workers=1)
    body = b"x" * 400000
    errors = []
    with FCGIConnection(kg.address, timeout=10) as conn:
        conn.begin(flags=1)
        conn.params(cgi_params("GET", kg.base_path + "/health", None, b"", "127.0.0.1"))
        conn.stdin(b"")
        assert conn.read_response().status == 200
        conn.begin(flags=1)
        conn.params(cgi_params("POST", kg.base_path + "/login", None, body, "127.0.0.1",
                               content_type="application/json"))

        def write_body():
            try:
                for i in range(0, len(body), 32768):
                    conn.send_raw(fcgi_record(FCGI_STDIN, body[i:i + 32768], conn.req_id))
                conn.send_raw(fcgi_record(FCGI_STDIN, b"", conn.req_id))
            except OSError as e:
                errors.append(repr(e))
        writer = threading.Thread(target=write_body)
        writer.start()
        r = conn.read_response()
        writer.join(timeout=15)
    assert r.status == 413, r
    assert errors == [], errors


def test_short_connections_on_one_fd_are_not_taken_for_a_stalled_one(keygate):
    """The watchdog cuts a connection idle outside a request for longer than
    request_timeout. Each new connection gets the same fd number, so it
    must tell connections apart, not fds: a stream of connections that each
    pause 0.6 s before their parameters, with request_timeout = 2, must all
    be served (10 of them: 6 s on one fd number, three times the limit;
    each pause 1.4 s below it, for a slow machine)."""
    kg = keygate.start(workers=1, request_timeout=2)
    params = cgi_params("GET", kg.base_path + "/health", None, b"", "127.0.0.1")
    failed = []
    for i in range(10):
        try:
            with FCGIConnection(kg.address, timeout=5) as conn:
                conn.begin()
                time.sleep(0.6)
                conn.params(params)
                conn.stdin(b"")
                r = conn.read_response()
                assert r.status == 200, r
        except OSError as e:
            failed.append((i, repr(e)))
    assert failed == [], failed


@pytest.mark.skipif(os.environ.get("KG_SANITIZERS") == "1",
                    reason="LeakSanitizer cannot work under ptrace")
def test_unix_socket_connections_close_without_lingering(keygate):
    """On a unix socket, a connection whose request was read to the end is
    closed at once: no shutdown(2), no wait for the web server to hang up
    first (libfcgi's lingering close, which put the worker to sleep until
    the web server had read the reply). One answered before its body was
    read (413) keeps the lingering close: the web server may still be
    writing. Every reply arrives whole either way."""
    strace = shutil.which("strace")
    if strace is None:
        pytest.fail("strace not found: apt-get install strace")
    kg = keygate.start(workers=1, max_body=512)
    trace = os.path.join(kg.workdir, "close-%d.trace" % kg.pid)
    tracer = subprocess.Popen([strace, "-qq", "-e", "trace=shutdown", "-o", trace,
                               "-p", str(kg.pid)])
    try:
        def traced():
            with open("/proc/%d/status" % kg.pid) as f:
                return re.search(r"TracerPid:\s+(\d+)", f.read()).group(1) != "0"
        kgharness.wait_until(traced, 10, what="strace attached")
        for _ in range(20):
            r = kg.fcgi("GET", "/health")
            assert r.status == 200 and r.json()["status"] == "ok", r
        # A client whose end of input comes late: the worker waits for it
        # before closing (closing first would fail the client's write of it).
        with FCGIConnection(kg.address, timeout=10) as conn:
            conn.begin()
            conn.params(cgi_params("GET", kg.base_path + "/health", None, b"", "127.0.0.1"))
            time.sleep(0.3)
            conn.stdin(b"")
            r = conn.read_response()
        assert r.status == 200 and r.json()["status"] == "ok", r
        quiet = open(trace).read().count("shutdown(")
        r = kg.fcgi("POST", "/login", body="x" * 4096, content_type="application/json")
        assert r.status == 413, r
        kgharness.wait_until(lambda: "shutdown(" in open(trace).read(), 5,
                             what="the 413's lingering close")
    finally:
        tracer.terminate()
        tracer.wait(timeout=10)
    assert quiet == 0, "%d shutdown(2) calls for 21 requests read to the end" % quiet


# ---------------------------------------------------------------------------
# reload with a broken configuration file


def test_sighup_with_broken_config_keeps_old_config_under_load(keygate):
    good = "# first version\nstatus_allow = 10.0.0.0/8\nmax_body = 512\n"
    kg = keygate.start(workers=2, config=good)
    pids = set(kg.wait_workers())
    assert kg.fcgi("GET", "/status").status == 403      # from the file
    loop = RequestLoop(lambda: kg.fcgi("GET", "/health", timeout=T), threads=2,
                       max_requests=100000, max_seconds=60, pause=0.005).start()
    broken = [
        # valid lines before the bad one must not be applied either
        ("status_allow = 127.0.0.0/8\nmax_body = 4096\nno_such_key = 1\n", 3),
        ("status_allow = 127.0.0.0/8\n\n\nworkers = many\n", 4),
        ("[keygate]\nstatus_allow = 127.0.0.0/8\nmax_body = 99999999999\n", 3),
        ("status_allow = 127.0.0.0/8\nthis line is not ini\n", 2),
    ]
    try:
        for text, line in broken:
            kgharness.write_ini(kg.conf_path, text)
            kg.signal(signal.SIGHUP)
            needle = "%s:%d:" % (kg.conf_path, line)
            wait_until(lambda: needle in kg.log(), 10,
                       what="the error %s... in the log" % needle)
            # The old configuration still applies, on every worker.
            for r in on_every_worker(kg, "GET", "/status"):
                assert r.status == 403, r
            big = {"username": "x", "password": "y" * 600}
            for r in on_every_worker(kg, "POST", "/login", body=big):
                assert r.status == 413, r
        # The file disappears: also a failed reload.
        os.unlink(kg.conf_path)
        kg.signal(signal.SIGHUP)
        wait_until(lambda: kg.log().count("reload failed") >= len(broken) + 1, 10,
                   what="the missing-file reload error")
        time.sleep(0.5)
        assert set(kg.worker_pids()) == pids, "a failed reload replaced workers"
        for r in on_every_worker(kg, "GET", "/status"):
            assert r.status == 403, r
        # A good file afterwards is picked up: reloading still works.
        kgharness.write_ini(kg.conf_path, "status_allow = 127.0.0.0/8\n")
        kg.signal(signal.SIGHUP)
        wait_until(lambda: not pids & set(kg.worker_pids()), 20, what="workers replaced")
        kg.wait_workers()
        wait_until(lambda: all(r.status == 200 for r in on_every_worker(kg, "GET", "/status")),
                   10, what="the new status_allow on every worker")
    finally:
        loop.stop()
    print("requests during the reloads: %d, failed: %d" % (loop.count, len(loop.failures)))
    assert kg.alive()
    assert loop.count >= 100, loop.count
    assert loop.failures == [], loop.failures[:10]
    assert not crash_lines(kg), crash_lines(kg)


# ---------------------------------------------------------------------------
# logout-all racing with logins


def test_logout_all_racing_with_logins(keygate):
    """No token whose login returned before a logout-all started survives
    that logout-all, on any worker (with the token cache on)."""
    kg = keygate.start(workers=3, max_tokens_per_user=10000, **CHEAP)
    name = new_user(kg, "race")
    issued = []                 # (login start, login end, token)
    lock = threading.Lock()
    stop = threading.Event()
    errors = []
    raced = []                  # logins refused: a logout-all came while they hashed

    def login_loop():
        while not stop.is_set():
            t0 = time.monotonic()
            try:
                r = login(kg, name)
                t1 = time.monotonic()
                if r.status == 401:
                    raced.append(t1)
                    continue
                if r.status != 200:
                    errors.append(("login", r.status, r.text[:200]))
                    continue
                tok = r.json()["token"]
                with lock:
                    issued.append((t0, t1, tok))
                # Use it at once: puts it in some worker's cache.
                s = me(kg, tok).status
                if s not in (200, 401):
                    errors.append(("me", s))
                time.sleep(0.05)
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append(repr(e))

    threads = [threading.Thread(target=login_loop, daemon=True) for _ in range(2)]
    for th in threads:
        th.start()
    checked = 0
    try:
        for _ in range(4):
            # at least 2 logins since the last round, however slow they are
            with lock:
                n = len(issued)
            wait_until(lambda: len(issued) >= n + 2, 30, what="2 more logins")
            own = token_for(kg, name)
            with lock:
                issued.append((0, time.monotonic(), own))
            t_start = time.monotonic()
            r = kg.fcgi("POST", "/logout", headers=bearer(own), body={"all": True})
            assert r.status == 200, r.text
            assert r.json()["keys_removed"] >= 1, r.text
            # While the logins go on: the newest tokens from before this
            # logout-all are refused by every worker at once.
            with lock:
                before = [tok for _t0, t1, tok in issued if t1 < t_start]
            for tok in before[-3:]:
                statuses = [x.status for x in on_every_worker(kg, "GET", "/me",
                                                              headers=bearer(tok))]
                assert statuses == [401] * 3, statuses
                checked += 1
    finally:
        stop.set()
        for th in threads:
            th.join(30)
    assert not errors, errors[:10]
    # A login whose password check a logout-all overtook is refused
    # (test_revocation_race.py): at most the two loops' logins in flight at
    # each of the four logout-alls.
    assert len(raced) <= 2 * 4, len(raced)
    before = [tok for _t0, t1, tok in issued if t1 < t_start]
    assert len(before) >= 8, len(before)
    survivors = []
    for tok in before:
        statuses = [x.status for x in on_every_worker(kg, "GET", "/me", headers=bearer(tok))]
        if statuses != [401] * 3:
            survivors.append((tok.split(".")[0], statuses))
        checked += 1
    print("logins: %d, tokens checked on every worker: %d" % (len(issued), checked))
    assert not survivors, survivors[:10]
    # A login afterwards works everywhere.
    tok = token_for(kg, name)
    assert [x.status for x in on_every_worker(kg, "GET", "/me", headers=bearer(tok))] \
        == [200] * 3
    assert not crash_lines(kg), crash_lines(kg)
