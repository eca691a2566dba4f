"""What a client of any deployment meets first, end to end through real
lighttpd (fixtures in conftest.py) and straight over FastCGI: /health and
/status (and who may read it), 404 and 405, one log line per request and no
credential in it, base_path, a stock FastCGI client (cgi-fcgi), and 503
with Retry-After while the database is away, then recovery.

Every wait is bounded by a count and a time; everything is on loopback.
"""

import json
import subprocess
import time
import uuid

import pytest

import kgharness
from kgharness import fcgi_request, wait_until
from replies import error_body, health_ok, js, log_lines_with

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
