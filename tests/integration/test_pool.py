"""The foundation (issue 2), end to end.

Real PostgreSQL, the real keygate binary, real lighttpd (fixtures in
conftest.py): health, status, 404/405, logging, the database going away and
coming back, the process pool (respawn, recycling, graceful SIGTERM, SIGHUP
reload, single-process mode, inherited sockets), a real FastCGI client
(cgi-fcgi), check-config and migrations.

Every wait is bounded by a count and a time; everything is on loopback.
"""

import glob
import json
import os
import re
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
from kgharness import (FCGIConnection, RequestLoop, cgi_params, fcgi_request,
                       run_keygate, wait_until)

T = 10  # seconds: timeout of any single request

# ---------------------------------------------------------------------------
# helpers


def status_of(r):
    return r.status_code if hasattr(r, "status_code") else r.status


def header_of(r, name):
    return r.headers.get(name) if hasattr(r, "status_code") else r.header(name)


def js(r, status):
    """Check status, Content-Type and nosniff; return the JSON body."""
    text = r.text
    assert status_of(r) == status, (status_of(r), text[:500])
    ct = header_of(r, "Content-Type") or ""
    assert ct.split(";")[0].strip().lower() == "application/json", (ct, text[:200])
    assert (header_of(r, "X-Content-Type-Options") or "").lower() == "nosniff"
    body = r.json()
    assert isinstance(body, dict), body
    return body


def error_body(r, status, code):
    b = js(r, status)
    assert b.get("success") is False, b
    assert b.get("error") == code, b
    assert isinstance(b.get("message"), str) and b["message"], b
    return b


def health_ok(r):
    b = js(r, 200)
    assert b.get("success") is True and b.get("status") == "ok", b


def thread_session_getter(url):
    """fn() doing GET url with one requests.Session per thread."""
    local = threading.local()

    def fn():
        s = getattr(local, "s", None)
        if s is None:
            s = local.s = requests.Session()
        return s.get(url, timeout=T)
    return fn


def log_lines_with(kg, needle):
    return [line for line in kg.log().splitlines() if needle in line]


def schema_versions(pg, dbname=None):
    return pg.query("SELECT version FROM schema_migrations ORDER BY 1", dbname=dbname)


def migration_files():
    return sorted(glob.glob(os.path.join(kgharness.MIGRATIONS_DIR, "*.sql")))


# ---------------------------------------------------------------------------
# endpoints through lighttpd


def test_health(stack):
    r = stack.get("/health")
    health_ok(r)
    assert r.json() == {"success": True, "status": "ok"}


def test_health_ignores_query_string(stack):
    health_ok(stack.get("/health?x=1&y=%20"))


def test_status_shape_and_counters(stack):
    s1 = js(stack.get("/status"), 200)
    assert s1["success"] is True
    pool = s1["pool"]
    for k in ("accepted", "active", "idle", "max_active", "respawns",
              "slow_requests", "workers"):
        assert isinstance(pool.get(k), int) and not isinstance(pool[k], bool), (k, pool)
        assert pool[k] >= 0, (k, pool)
    assert "start_time" in pool, pool
    assert pool["workers"] == 2, pool
    assert pool["active"] + pool["idle"] == pool["workers"], pool
    assert pool["active"] >= 1, pool          # the worker answering this
    assert pool["max_active"] >= pool["active"], pool
    workers = s1["workers"]
    assert isinstance(workers, list) and len(workers) == 2, workers
    assert {w["pid"] for w in workers} == set(stack.kg.worker_pids()), workers
    for w in workers:
        assert w["state"] in ("idle", "busy"), w
        assert isinstance(w["requests"], int) and w["requests"] >= 0, w
        assert "request_start" in w, w
    assert any(w["state"] == "busy" for w in workers), workers

    for _ in range(5):
        health_ok(stack.get("/health"))
    s2 = js(stack.get("/status"), 200)
    assert s2["pool"]["accepted"] >= pool["accepted"] + 6, (pool, s2["pool"])
    served1 = sum(w["requests"] for w in workers)
    served2 = sum(w["requests"] for w in s2["workers"])
    assert served2 >= served1 + 6, (workers, s2["workers"])
    assert s2["pool"]["start_time"] == pool["start_time"]


def test_status_refused_outside_status_allow(stack_factory):
    st = stack_factory(status_allow="10.0.0.0/8")
    error_body(st.get("/status"), 403, "forbidden")
    # lighttpd passes the peer address; a forged header changes nothing
    error_body(st.get("/status", headers={"X-Forwarded-For": "10.1.2.3"}), 403,
               "forbidden")
    health_ok(st.get("/health"))


def test_status_allow_checks_remote_addr(stack):
    kg = stack.kg
    js(kg.fcgi("GET", "/status", remote_addr="127.0.0.1"), 200)
    js(kg.fcgi("GET", "/status", remote_addr="127.0.0.2"), 200)
    js(kg.fcgi("GET", "/status", remote_addr="::1"), 200)
    for addr in ("10.1.2.3", "192.0.2.1", "2001:db8::1", "::ffff:10.0.0.1", "",
                 "not-an-address"):
        error_body(kg.fcgi("GET", "/status", remote_addr=addr), 403, "forbidden")
    # a spoofed header through the web server does not get in either
    r = stack.get("/status", headers={"X-Forwarded-For": "10.9.9.9",
                                      "X-Real-IP": "10.9.9.9"})
    js(r, 200)


@pytest.mark.parametrize("path", ["/no-such-route", "/health/extra", "/healthz",
                                  "/", "/STATUS", "/api/health"])
def test_unknown_path_is_404(stack, path):
    error_body(stack.get(path), 404, "not_found")


def test_path_outside_base_path_is_404(stack):
    r = fcgi_request(stack.kg.socket, "GET", "/elsewhere/health")
    error_body(r, 404, "not_found")


@pytest.mark.parametrize("method,path", [("POST", "/health"), ("PUT", "/health"),
                                         ("DELETE", "/health"), ("POST", "/status"),
                                         ("PATCH", "/status")])
def test_wrong_method_is_405_with_allow(stack, method, path):
    r = stack.request(method, path)
    error_body(r, 405, "method_not_allowed")
    allow = [m.strip() for m in (r.headers.get("Allow") or "").split(",")]
    assert "GET" in allow, r.headers


def test_one_log_line_per_request_without_credentials(stack):
    marker = "/no-such-%s" % uuid.uuid4().hex
    secret = "s3cr3t-" + uuid.uuid4().hex
    r = stack.get(marker, headers={"Authorization": "Bearer " + secret,
                                   "Cookie": "kg=" + secret})
    error_body(r, 404, "not_found")
    lines = wait_until(lambda: log_lines_with(stack.kg, marker), 5,
                       what="a log line for %s" % marker)
    assert len(lines) == 1, lines
    line = lines[0]
    assert "GET" in line and "404" in line, line
    assert any(str(p) in line for p in stack.kg.worker_pids()), (line, stack.kg.worker_pids())
    assert secret not in stack.kg.log()


def test_socket_mode(keygate):
    kg = keygate.start()
    assert os.stat(kg.socket).st_mode & 0o777 == 0o660
    kg2 = keygate.start(listen_mode="0600")
    assert os.stat(kg2.socket).st_mode & 0o777 == 0o600


# ---------------------------------------------------------------------------
# the database going away


def _expect_unavailable(st, n):
    for _ in range(n):
        t0 = time.monotonic()
        r = st.get("/health", timeout=20)
        took = time.monotonic() - t0
        b = error_body(r, 503, "unavailable")
        assert b["success"] is False
        ra = r.headers.get("Retry-After")
        assert ra is not None and ra.strip().isdigit(), r.headers
        # not a hang: the client would give up after 20 s
        assert took < 15, "503 took %.1fs" % took


def _recovered(st, consecutive=10, timeout=30):
    """Wait until `consecutive` health checks in a row answer 200."""
    deadline = time.monotonic() + timeout
    streak, seen = 0, []
    while time.monotonic() < deadline:
        r = st.get("/health", timeout=20)
        seen.append(r.status_code)
        if r.status_code == 200:
            health_ok(r)
            streak += 1
            if streak >= consecutive:
                return seen
        else:
            assert r.status_code == 503, (r.status_code, r.text)
            streak = 0
            time.sleep(0.2)
    pytest.fail("no recovery within %ds: %r" % (timeout, seen[-40:]))


def test_database_down_503_then_recovers(stack_factory, pg):
    st = stack_factory(workers=2)
    for _ in range(4):
        health_ok(st.get("/health"))
    pg.stop(mode="fast")
    _expect_unavailable(st, 6)          # every worker sees the outage
    assert st.kg.alive() and len(st.kg.worker_pids()) == 2
    pg.start()
    _recovered(st)
    assert st.kg.alive()


def test_start_with_database_down(keygate, lighttpd, pg):
    pg.stop(mode="fast")
    kg = keygate.start(workers=2)
    lt = lighttpd.start(kg)
    st = kgharness.Stack(pg, kg, lt)
    _expect_unavailable(st, 4)
    pg.start()
    _recovered(st)


def test_database_restart_while_serving(stack_factory, pg):
    st = stack_factory(workers=2)
    health_ok(st.get("/health"))
    pg.restart(mode="fast")
    _recovered(st)


# ---------------------------------------------------------------------------
# the process pool


def test_worker_kill9_is_respawned(stack_factory):
    st = stack_factory(workers=2)
    kg = st.kg
    before = js(st.get("/status"), 200)["pool"]["respawns"]
    victim, survivor = kg.wait_workers()
    os.kill(victim, signal.SIGKILL)
    pids = kg.wait_workers(exclude=[victim], timeout=15)
    assert survivor in pids, (survivor, pids)
    assert kg.alive()
    bad = []
    for _ in range(100):
        r = st.get("/health")
        if r.status_code != 200:
            bad.append((r.status_code, r.text[:200]))
    assert not bad, bad
    after = js(st.get("/status"), 200)["pool"]["respawns"]
    assert after >= before + 1, (before, after)
    # the master says which worker died and why
    lines = wait_until(lambda: log_lines_with(kg, str(victim)), 5,
                       what="a log line about worker %d" % victim)
    assert any(re.search(r"signal\s*9|SIGKILL|killed", line, re.I) for line in lines), lines


def test_crafted_params_record_does_not_take_down_the_pool(stack_factory):
    """CVE-2025-23016 shape: name and value lengths of 0x7ffffffe."""
    st = stack_factory(workers=2)
    kg = st.kg
    for _ in range(3):
        evil = struct.pack(">II", 0x7ffffffe | 0x80000000, 0x7ffffffe | 0x80000000)
        with FCGIConnection(kg.socket, timeout=5) as c:
            try:
                c.begin()
                c.send_raw(kgharness.fcgi_record(kgharness.FCGI_PARAMS, evil + b"A" * 64))
                c.end_params()
                c.stdin(b"")
                c.read_response(timeout=3)
            except (OSError, kgharness.FCGIError):
                pass                    # the worker may drop us or die: fine
    kg.wait_workers(timeout=15)
    assert kg.alive()
    bad = [r.status_code for r in (st.get("/health") for _ in range(50))
           if r.status_code != 200]
    assert not bad, bad


def test_max_requests_recycles_workers(keygate):
    kg = keygate.start(workers=2, max_requests=5)
    first = set(kg.worker_pids())
    for _ in range(30):
        health_ok(kg.fcgi("GET", "/health"))
    wait_until(lambda: not first & set(kg.worker_pids()), 10,
               what="workers recycled after max_requests")
    kg.wait_workers()
    health_ok(kg.fcgi("GET", "/health"))


def _sockets(kg):
    """The sockets the serving processes (workers, or the single process)
    hold, as 'socket:[inode]' strings: each accepted connection adds one."""
    out = set()
    for pid in kg.worker_pids() or [kg.pid]:
        try:
            fds = os.listdir("/proc/%d/fd" % pid)
        except OSError:
            continue
        for fd in fds:
            try:
                link = os.readlink("/proc/%d/fd/%s" % (pid, fd))
            except OSError:
                continue
            if link.startswith("socket:"):
                out.add(link)
    return out


def _wait_accepted(kg, before, n):
    """Wait until the pool holds n sockets that were not in `before`."""
    wait_until(lambda: len(_sockets(kg) - before) >= n, 10,
               what="keygate to accept %d connection(s)" % n)


def _hold_requests(kg, n):
    """n connections that each have sent BEGIN_REQUEST and part of PARAMS:
    each has been accepted by a worker, which now waits for the rest."""
    before = _sockets(kg)
    conns = []
    for _ in range(n):
        c = FCGIConnection(kg.socket, timeout=20)
        c.begin()
        c.params(cgi_params("GET", kg.base_path + "/health"), end=False)
        conns.append(c)
    _wait_accepted(kg, before, n)
    return conns


def _finish_held(conns):
    out = []
    for c in conns:
        try:
            c.end_params()
            c.stdin(b"")
            out.append(c.read_response(timeout=15))
        finally:
            c.close()
    return out


@pytest.mark.parametrize("workers", [2, 1])
def test_sigterm_lets_requests_in_flight_complete(keygate, workers):
    kg = keygate.start(workers=workers, shutdown_timeout=15)
    held = _hold_requests(kg, workers)
    kg.signal(signal.SIGTERM)
    time.sleep(1.0)
    assert kg.alive(), "the master must wait for requests in flight"
    for r in _finish_held(held):
        health_ok(r)
    assert kg.wait(timeout=15) == 0
    assert not os.path.exists(kg.socket) or not _accepts(kg.socket)


def _accepts(path):
    try:
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(2)
            s.connect(path)
        return True
    except OSError:
        return False


def test_sigterm_with_body_in_flight(keygate):
    """A request whose body is still arriving when SIGTERM comes."""
    kg = keygate.start(workers=2, shutdown_timeout=15)
    c, rest = _partial_body_request(kg)
    try:
        kg.signal(signal.SIGTERM)
        time.sleep(1.0)
        assert kg.alive()
        c.stdin(rest)
        r = c.read_response(timeout=15)
    finally:
        c.close()
    assert status_of(r) < 500, (r.status, r.text)
    js(r, status_of(r))
    assert kg.wait(timeout=15) == 0


def _partial_body_request(kg, held=10):
    """A POST whose body stops after `held` bytes: the worker that took it
    is busy reading until we send the rest. Returns (connection, rest of
    the body). POST /login must read a body: a missing route fails here."""
    probe = kg.fcgi("POST", "/login", body={})
    assert probe.status not in (404, 405), ("POST /login does not take a body",
                                            probe.status, probe.body[:200])
    body = b'{"username": "nobody-%s", "password": "not the password"}' % (
        uuid.uuid4().hex.encode())
    before = _sockets(kg)
    c = FCGIConnection(kg.socket, timeout=20)
    c.begin()
    c.params(cgi_params("POST", kg.base_path + "/login", body=body,
                        content_type="application/json"))
    c.stdin(body[:held], end=False)
    _wait_accepted(kg, before, 1)
    time.sleep(0.2)                     # let it reach the body read
    return c, body[held:]


def test_slow_requests_are_counted(keygate):
    kg = keygate.start(workers=2, slow_request=200)
    before = js(kg.fcgi("GET", "/status"), 200)["pool"]["slow_requests"]
    c, rest = _partial_body_request(kg)
    try:
        time.sleep(0.6)
        c.stdin(rest)
        r = c.read_response(timeout=15)
    finally:
        c.close()
    assert status_of(r) < 500, r
    after = js(kg.fcgi("GET", "/status"), 200)["pool"]["slow_requests"]
    assert after >= before + 1, (before, after)
    wait_until(lambda: log_lines_with(kg, "slow"), 5, what="a slow-request log line")


def test_stuck_request_is_killed_after_request_timeout(keygate):
    kg = keygate.start(workers=2, request_timeout=2)
    pids = set(kg.wait_workers())
    c, _rest = _partial_body_request(kg)
    try:
        # the worker holding our request is replaced...
        wait_until(lambda: (lambda p: len(p) == 2 and len(p & pids) == 1)(
            set(kg.worker_pids())), 15, what="the stuck worker to be replaced")
        # ...and our connection is dropped without a response
        with pytest.raises((OSError, kgharness.FCGIError)):
            c.read_response(timeout=10)
    finally:
        c.close()
    victim = (pids - set(kg.worker_pids())).pop()
    assert log_lines_with(kg, str(victim)), kg.log()[-2000:]
    for _ in range(20):
        health_ok(kg.fcgi("GET", "/health"))


def test_recycling_under_load_drops_nothing(stack_factory):
    st = stack_factory(workers=2, max_requests=25)
    old = set(st.kg.wait_workers())
    loop = RequestLoop(thread_session_getter(st.url("/health")), threads=2,
                       max_requests=150, max_seconds=30).start()
    loop.join(timeout=60)
    assert loop.count == 300, loop.count
    assert loop.failures == [], loop.failures[:10]
    assert not old & set(st.kg.worker_pids())


@pytest.mark.long
def test_repeated_sighup_under_load(stack_factory):
    st = stack_factory(workers=2)
    kg = st.kg
    loop = RequestLoop(thread_session_getter(st.url("/health")), threads=2,
                       max_requests=100000, max_seconds=120).start()
    try:
        for _ in range(10):
            old = set(kg.wait_workers(timeout=20))
            kg.signal(signal.SIGHUP)
            wait_until(lambda: (lambda p: len(p) == 2 and not p & old)(
                set(kg.worker_pids())), 20, what="workers replaced")
            time.sleep(0.5)
    finally:
        loop.stop()
    assert kg.alive()
    assert loop.failures == [], loop.failures[:10]


def test_sigint_exits_zero_and_leaves_no_worker(keygate):
    kg = keygate.start(workers=2)
    workers = kg.worker_pids()
    kg.signal(signal.SIGINT)
    assert kg.wait(timeout=20) == 0
    wait_until(lambda: not any(kgharness.pid_alive(p) for p in workers), 5,
               what="workers gone")


def test_workers_exit_when_master_is_killed(keygate):
    kg = keygate.start(workers=2)
    workers = kg.worker_pids()
    os.kill(kg.pid, signal.SIGKILL)
    kg.proc.wait(timeout=10)
    wait_until(lambda: not any(kgharness.pid_alive(p) for p in workers), 10,
               what="workers to follow the master (PR_SET_PDEATHSIG)")


def test_sighup_under_load_drops_nothing(stack_factory):
    st = stack_factory(workers=2)
    kg = st.kg
    old = set(kg.wait_workers())
    loop = RequestLoop(thread_session_getter(st.url("/health")), threads=2,
                       max_requests=5000, max_seconds=30).start()
    try:
        # under load before, during and after: counted requests, not seconds
        wait_until(lambda: loop.count >= 30, 30, what="30 requests before the reload")
        kg.signal(signal.SIGHUP)
        new = wait_until(lambda: (lambda p: len(p) == 2 and not p & old and p)(
            set(kg.worker_pids())), 20, what="all workers replaced after SIGHUP")
        n = loop.count
        wait_until(lambda: loop.count >= n + 70, 30, what="70 requests after the reload")
    finally:
        loop.stop()
    assert kg.alive()
    assert loop.count >= 100, loop.count
    assert loop.failures == [], loop.failures[:10]
    assert not new & old


def test_sighup_rereads_the_config_file(keygate):
    kg = keygate.start(workers=2)
    js(kg.fcgi("GET", "/status"), 200)
    old = set(kg.worker_pids())
    kgharness.write_ini(kg.conf_path, "# reloaded\nstatus_allow = 10.0.0.0/8\n")
    kg.signal(signal.SIGHUP)
    wait_until(lambda: not old & set(kg.worker_pids()), 20, what="workers replaced")
    kg.wait_workers()
    wait_until(lambda: kg.fcgi("GET", "/status").status == 403, 10,
               what="status_allow from the reloaded file")
    error_body(kg.fcgi("GET", "/status"), 403, "forbidden")
    health_ok(kg.fcgi("GET", "/health"))


def test_sighup_changes_the_number_of_workers(keygate):
    kg = keygate.start(workers=None, config="workers = 2\n")
    kg.wait_workers(2)
    kgharness.write_ini(kg.conf_path, "workers = 3\n")
    kg.signal(signal.SIGHUP)
    kg.wait_workers(3, timeout=20)
    # During the rolling replacement an old worker may still be finishing
    # (the pool never drops below its size); it settles at exactly 3.
    def settled():
        st = js(kg.fcgi("GET", "/status"), 200)
        return st if st["pool"]["workers"] == 3 and len(st["workers"]) == 3 else None
    status = wait_until(settled, 20, interval=0.1, what="/status to report 3 workers")
    assert status["pool"]["workers"] == 3, status
    kgharness.write_ini(kg.conf_path, "workers = 2\n")
    kg.signal(signal.SIGHUP)
    kg.wait_workers(2, timeout=20)
    health_ok(kg.fcgi("GET", "/health"))


def test_sighup_with_broken_config_keeps_serving(keygate):
    kg = keygate.start(workers=2)
    kgharness.write_ini(kg.conf_path, "# broken\n\nworkers = many\n")
    kg.signal(signal.SIGHUP)
    lines = wait_until(lambda: log_lines_with(kg, kg.conf_path + ":3:"), 10,
                       what="the line-numbered reload error in the log")
    assert lines
    for _ in range(20):
        health_ok(kg.fcgi("GET", "/health"))
    assert kg.alive() and len(kg.worker_pids()) == 2


def test_single_process_mode(keygate):
    kg = keygate.start(workers=1)
    for _ in range(20):
        health_ok(kg.fcgi("GET", "/health"))
    assert kg.worker_pids() == [], "workers = 1 forks no worker"
    marker = "/no-such-%s" % uuid.uuid4().hex
    error_body(kg.fcgi("GET", marker), 404, "not_found")
    lines = wait_until(lambda: log_lines_with(kg, marker), 5, what="request log line")
    assert str(kg.pid) in lines[0], lines
    assert kg.stop(timeout=15) == 0


@pytest.mark.parametrize("workers", [1, 2])
def test_listening_socket_on_fd0(keygate, kg_workdir, workers):
    """The FastCGI convention (spawn-fcgi, mod_fcgid, lighttpd bin-path)."""
    path = os.path.join(kg_workdir, "fd0-%s.sock" % uuid.uuid4().hex[:8])
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(path)
        s.listen(64)
        kg = keygate.start(workers=workers, listen_socket=s)
    for _ in range(10):
        health_ok(fcgi_request(path, "GET", "/api/health"))
    assert len(kg.worker_pids()) == (workers if workers > 1 else 0)


def test_listening_socket_from_systemd(keygate, kg_workdir):
    """LISTEN_FDS=1, LISTEN_PID=<pid>, the socket on fd 3."""
    path = os.path.join(kg_workdir, "sd-%s.sock" % uuid.uuid4().hex[:8])
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(path)
        s.listen(64)
        keygate.start(workers=2, listen_socket=s, listen_fds=True)
    for _ in range(10):
        health_ok(fcgi_request(path, "GET", "/api/health"))


def test_listen_on_tcp(keygate):
    port = kgharness.free_port()
    kg = keygate.start(workers=2, listen="127.0.0.1:%d" % port)
    assert kg.address == ("127.0.0.1", port)
    for _ in range(10):
        health_ok(fcgi_request(("127.0.0.1", port), "GET", "/api/health"))


def test_base_path_is_configurable(keygate):
    kg = keygate.start(workers=1, base_path="/auth/v1")
    health_ok(fcgi_request(kg.socket, "GET", "/auth/v1/health"))
    error_body(fcgi_request(kg.socket, "GET", "/api/health"), 404, "not_found")


# ---------------------------------------------------------------------------
# a real FastCGI client


def _cgi_fcgi(sock, uri, method="GET", remote_addr="127.0.0.1"):
    path, _, query = uri.partition("?")
    env = {
        "PATH": "/usr/bin:/bin",
        "GATEWAY_INTERFACE": "CGI/1.1",
        "REQUEST_METHOD": method,
        "REQUEST_URI": uri,
        "SCRIPT_NAME": "/api",
        "PATH_INFO": path[len("/api"):],
        "QUERY_STRING": query,
        "SERVER_PROTOCOL": "HTTP/1.1",
        "SERVER_NAME": "localhost",
        "SERVER_PORT": "80",
        "REMOTE_ADDR": remote_addr,
        "CONTENT_LENGTH": "0",
    }
    p = subprocess.run(["cgi-fcgi", "-bind", "-connect", sock], env=env,
                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=20)
    return p


def _parse_cgi(out):
    head, sep, body = out.partition(b"\r\n\r\n")
    assert sep, out[:300]
    headers = {}
    for line in head.decode("latin-1").split("\r\n"):
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    status = int(headers.get("status", "200").split()[0])
    return status, headers, body


def test_cgi_fcgi_client(stack):
    p = _cgi_fcgi(stack.kg.socket, "/api/health")
    assert p.returncode == 0, (p.returncode, p.stderr)
    status, headers, body = _parse_cgi(p.stdout)
    assert status == 200, p.stdout
    assert headers["content-type"].split(";")[0] == "application/json"
    assert json.loads(body) == {"success": True, "status": "ok"}

    p = _cgi_fcgi(stack.kg.socket, "/api/status")
    status, headers, body = _parse_cgi(p.stdout)
    assert status == 200 and json.loads(body)["success"] is True, p.stdout

    p = _cgi_fcgi(stack.kg.socket, "/api/nothing-here")
    status, headers, body = _parse_cgi(p.stdout)
    assert status == 404 and json.loads(body)["error"] == "not_found", p.stdout


# ---------------------------------------------------------------------------
# check-config


def _check(tmp_path, kg_workdir, text, name="keygate.conf"):
    path = tmp_path / name
    path.write_text(text)
    r = run_keygate(["check-config"], kg_workdir, config_path=str(path), timeout=30)
    return str(path), r


def test_check_config_accepts_a_valid_file(tmp_path, kg_workdir):
    _, r = _check(tmp_path, kg_workdir, "# ok\nworkers = 3\nlog_level = debug\n")
    assert r.returncode == 0, (r.stdout, r.stderr)


def test_check_config_unknown_key(tmp_path, kg_workdir):
    path, r = _check(tmp_path, kg_workdir, "# a comment\nworkers = 2\nno_such_key = 1\n")
    assert r.returncode != 0
    out = r.stdout + r.stderr
    assert path + ":3:" in out, out
    assert "no_such_key" in out, out


@pytest.mark.parametrize("line", ["workers = many", "workers = 0", "listen_mode = 999",
                                  "log_level = loud", "token_lifetime = 5x",
                                  "max_body = -1"])
def test_check_config_bad_value(tmp_path, kg_workdir, line):
    path, r = _check(tmp_path, kg_workdir, "[keygate]\n\n%s\n" % line)
    assert r.returncode != 0, (line, r.stdout, r.stderr)
    out = r.stdout + r.stderr
    assert path + ":3:" in out, out


def test_check_config_bad_environment_value(tmp_path, kg_workdir):
    path = tmp_path / "ok.conf"
    path.write_text("workers = 2\n")
    r = run_keygate(["check-config"], kg_workdir, config_path=str(path),
                    overrides={"workers": "lots"}, timeout=30)
    assert r.returncode != 0
    assert "KEYGATE_WORKERS" in r.stdout + r.stderr


def test_check_config_missing_file(tmp_path, kg_workdir):
    r = run_keygate(["check-config"], kg_workdir,
                    config_path=str(tmp_path / "absent.conf"), timeout=30)
    assert r.returncode != 0
    assert "absent.conf" in r.stdout + r.stderr


def test_check_config_shipped_file(kg_workdir):
    shipped = os.path.join(kgharness.REPO, "conf", "keygate.conf")
    r = run_keygate(["check-config"], kg_workdir, config_path=shipped, timeout=30)
    assert r.returncode == 0, (r.stdout, r.stderr)


# ---------------------------------------------------------------------------
# migrations


def test_migrate_is_idempotent(pg, kg_workdir):
    files = migration_files()
    assert files, "no db/migrations/*.sql"
    before = schema_versions(pg)
    assert len(before) == len(files), (before, files)
    r = run_keygate(["migrate"], kg_workdir, pg=pg)
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert schema_versions(pg) == before


def test_concurrent_migrate_on_a_fresh_database(pg, kg_workdir):
    db = "mig_%s" % uuid.uuid4().hex[:12]
    pg.query("CREATE DATABASE %s" % db, dbname="postgres")
    try:
        env = kgharness.keygate_env(overrides={"database": pg.dsn_for(db)})
        ini = kgharness.write_ini(os.path.join(kg_workdir, db + ".conf"), None)
        procs = [subprocess.Popen([kgharness.KEYGATE_BIN, "-c", ini, "migrate"],
                                  env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT)
                 for _ in range(3)]
        outs = []
        for p in procs:
            out, _ = p.communicate(timeout=60)
            outs.append((p.returncode, out.decode("utf-8", "replace")))
        assert all(rc == 0 for rc, _ in outs), outs
        versions = schema_versions(pg, dbname=db)
        assert len(versions) == len(migration_files()), versions
        assert len(set(versions)) == len(versions), versions
        # and once more: a no-op
        r = run_keygate(["migrate"], kg_workdir, overrides={"database": pg.dsn_for(db)})
        assert r.returncode == 0, (r.stdout, r.stderr)
        assert schema_versions(pg, dbname=db) == versions
    finally:
        pg.query("DROP DATABASE IF EXISTS %s WITH (FORCE)" % db, dbname="postgres")


def test_migrate_fails_cleanly_without_database(pg, kg_workdir):
    r = run_keygate(["migrate"], kg_workdir,
                    overrides={"database": "host=127.0.0.1 port=%d dbname=keygate "
                               "user=postgres connect_timeout=2" % kgharness.free_port()},
                    timeout=60)
    assert r.returncode != 0


def test_shipped_config_lists_every_key(tmp_path, kg_workdir):
    """conf/keygate.conf and keygate.conf(5) document every key the parser
    knows (check-config -v prints them all)."""
    shipped = os.path.join(kgharness.REPO, "conf", "keygate.conf")
    empty = tmp_path / "empty.conf"
    empty.write_text("")
    r = run_keygate(["check-config", "-v"], kg_workdir, config_path=str(empty),
                    timeout=30)
    assert r.returncode == 0, (r.stdout, r.stderr)
    keys = [line.split("=", 1)[0].strip() for line in r.stdout.splitlines()
            if re.match(r"^[a-z0-9_]+\s*=", line)]
    assert len(keys) >= 20, r.stdout
    with open(shipped) as f:
        text = f.read()
    missing = [k for k in keys
               if not re.search(r"^[#;]?\s*%s\s*=" % re.escape(k), text, re.M)]
    assert not missing, "keys missing from conf/keygate.conf: %s" % missing
    man = [p for d in ("docs", "man", "doc")
           for p in glob.glob(os.path.join(kgharness.REPO, d, "keygate.conf.5*"))]
    assert man, "no keygate.conf(5) under man/"
    for page in man:
        with open(page) as f:
            mtext = f.read()
        missing = [k for k in keys if not re.search(r"\b%s\b" % re.escape(k), mtext)]
        assert not missing, "keys missing from %s: %s" % (page, missing)
