"""The process pool, end to end: a master and its workers on one listening
socket (inherited on fd 0, from systemd, bound to a path or a TCP port),
workers respawned after a crash and recycled after max_requests, SIGTERM
draining the requests in flight, SIGHUP re-reading the configuration and
replacing the workers without dropping a request, single-process mode, and
a stuck request killed after request_timeout.

Every wait is bounded by a count and a time; everything is on loopback.
"""

import os
import re
import signal
import socket
import struct
import threading
import time
import uuid

import pytest
import requests

import kgharness
from kgharness import (FCGIConnection, RequestLoop, cgi_params, fcgi_request,
                       wait_until)
from replies import error_body, health_ok, js, log_lines_with, status_of

T = 10  # seconds: timeout of any single request


def thread_session_getter(url):
    """fn() doing GET url with one requests.Session per thread."""
    local = threading.local()

    def fn():
        s = getattr(local, "s", None)
        if s is None:
            s = local.s = requests.Session()
        return s.get(url, timeout=T)
    return fn


def test_socket_mode(keygate):
    kg = keygate.start()
    assert os.stat(kg.socket).st_mode & 0o777 == 0o660
    kg2 = keygate.start(listen_mode="0600")
    assert os.stat(kg2.socket).st_mode & 0o777 == 0o600



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
