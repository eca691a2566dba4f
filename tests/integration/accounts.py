"""Clients for tests of limits and records: requests straight to a pool's
FastCGI socket as from any client address (fc, fc_join, fc_login), or
through its web server (http_*), checks of the 401 and 429 answers, the
throttle rows and audit events they leave, and the command line.

Every password, secret and token these helpers make or receive is noted
(credentials.note), so the log check after each test looks for it.
"""

import concurrent.futures
import os
import random
import subprocess
import threading
import uuid

import kgharness
from credentials import note
from replies import header_of, status_of

# keep unrelated limits out of the way where a test does not look at them
NO_ADDR_LIMITS = dict(login_max_per_address=1000000, join_max_per_address=1000000)
# Argon2 at its cheapest, for tests of throttling windows: a hash costs a
# second or more under the sanitizers on a busy machine, and a window that
# slow requests outlast would measure the machine, not the throttle.
CHEAP = dict(argon2_memory=1024, argon2_iterations=1)
TOO_MANY = {"success": False, "error": "too_many_requests",
            "message": "Too many attempts; retry later."}
INVALID_CREDENTIALS = {"success": False, "error": "invalid_credentials",
                       "message": "Invalid username or password."}


def uname(prefix="ab"):
    return "%s_%s" % (prefix, uuid.uuid4().hex[:16])


def pword():
    p = "abuse pass %s ~" % uuid.uuid4().hex
    note(p)
    return p


def rand_addr():
    """A random address in 10.0.0.0/8 (never 127.x, so never trusted)."""
    return "10.%d.%d.%d" % (random.randint(0, 255), random.randint(0, 255),
                            random.randint(1, 254))


def fc(kg, method, path, body=None, token=None, addr="127.0.0.1", ua=None, xff=None,
       timeout=30):
    """A direct FastCGI request to pool kg as from client address addr."""
    headers = {}
    if token is not None:
        headers["Authorization"] = "Bearer " + token
    if ua is not None:
        headers["User-Agent"] = ua
    if xff is not None:
        headers["X-Forwarded-For"] = xff
    kw = {}
    if body is not None:
        kw["body"] = body
    return kg.fcgi(method, path, headers=headers, remote_addr=addr, timeout=timeout, **kw)


def fc_join(kg, name=None, pw=None, addr=None, ua=None):
    name = name or uname()
    pw = pw or pword()
    r = fc(kg, "POST", "/join", {"username": name, "password": pw},
           addr=addr or rand_addr(), ua=ua)
    assert r.status == 201, r
    return name, pw, r.json()["user_id"]


def fc_login(kg, name, pw, addr=None, ua=None, xff=None):
    r = fc(kg, "POST", "/login", {"username": name, "password": pw},
           addr=addr or rand_addr(), ua=ua, xff=xff)
    if r.status == 200:
        b = r.json()
        note(b["secret"], b["token"])
    return r


def http_join(st, name=None, pw=None):
    name = name or uname()
    pw = pw or pword()
    r = st.post("/join", json={"username": name, "password": pw})
    assert r.status_code == 201, (r.status_code, r.text)
    return name, pw, r.json()["user_id"]


def http_login(st, name, pw, headers=None):
    r = st.post("/login", json={"username": name, "password": pw}, headers=headers)
    if r.status_code == 200:
        note(r.json()["secret"], r.json()["token"])
    return r


def http_me(st, token):
    return st.get("/me", headers={"Authorization": "Bearer " + token})


def assert_401(r):
    assert status_of(r) == 401, (status_of(r), r.text)
    assert r.json() == INVALID_CREDENTIALS, r.text
    assert header_of(r, "Retry-After") is None, r.text


def assert_429(r, max_wait):
    """429 too_many_requests with a Retry-After of 1..max_wait seconds."""
    assert status_of(r) == 429, (status_of(r), r.text)
    assert r.json() == TOO_MANY, r.text
    ra = header_of(r, "Retry-After")
    assert ra is not None and ra.isdigit(), ra
    assert 1 <= int(ra) <= max_wait, (ra, max_wait)
    return int(ra)


def throttle_row(pg, scope, subject):
    """(attempts, blocked, seconds until unblocked) or None."""
    rows = pg.query("SELECT attempts, blocked_until IS NOT NULL AND blocked_until > now(),"
                    " coalesce(extract(epoch FROM blocked_until - now()), 0)::float8"
                    " FROM throttle WHERE scope = %s AND subject = %s", (scope, subject))
    return rows[0] if rows else None


def events(pg, username=None, user_id=None, ip=None):
    """(event, user_id, username, ip, user_agent) rows in order."""
    where, args = [], []
    if username is not None:
        where.append("lower(username) = lower(%s)")
        args.append(username)
    if user_id is not None:
        where.append("user_id = %s")
        args.append(user_id)
    if ip is not None:
        where.append("ip = %s")
        args.append(ip)
    return pg.query("SELECT event, user_id, username, ip, user_agent FROM auth_events"
                    " WHERE " + " AND ".join(where) + " ORDER BY id", tuple(args))


def event_names(pg, **kw):
    return [e[0] for e in events(pg, **kw)]


def cli(pg, *args, input=None, overrides=None, timeout=60):
    """Run `keygate -c <empty file> ARGS` as the administrator would."""
    ini = os.path.join(os.path.dirname(pg.base), "abuse-cli.conf")
    if not os.path.exists(ini):
        kgharness.write_ini(ini, None)
    return subprocess.run([kgharness.KEYGATE_BIN, "-c", ini] + list(args),
                          input=input, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          env=kgharness.keygate_env(pg, overrides or {}),
                          universal_newlines=True, timeout=timeout,
                          start_new_session=True)


def parallel(n, fn):
    barrier = threading.Barrier(n)

    def run(i):
        barrier.wait(30)
        return fn(i)
    with concurrent.futures.ThreadPoolExecutor(max_workers=n) as ex:
        return list(ex.map(run, range(n)))


def nworkers(kg):
    return max(len(kg.worker_pids()), 1)


def cpu_seconds(pids):
    """utime + stime of the given processes, in seconds."""
    total = 0
    tck = os.sysconf("SC_CLK_TCK")
    for pid in pids:
        with open("/proc/%d/stat" % pid) as f:
            rest = f.read().rsplit(")", 1)[1].split()
        total += int(rest[11]) + int(rest[12])
    return total / tck
