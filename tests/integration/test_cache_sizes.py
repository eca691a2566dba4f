"""Every token_cache_size from 0 (the cache off) to 5 serves a token in use
across its last_used_at writes without a worker dying.

With the cache off, the answer to a token's last_used_at write (sent
without the request waiting for it) used to be stored into a cache of no
sets at the token's next write, the second time it fell due: a division
by zero, SIGFPE, every time. Sizes 1 to 3 rounded down to the same.

Each combination of size and touch_interval starts its own pool of two
workers and checks one token every 50 ms for more than one touch_interval,
until the database has shown two writes of its last_used_at, or three with
the cache off: with two workers, one of them has then sent two (the second
of which crashed).
Every answer must be 200, no worker may die or be replaced, last_used_at
is written about once per touch_interval, and the token's logout is
refused by every worker straight away.
"""
import os
import time
import uuid

import pytest

from kgharness import FCGIError

PASSWORD = "cache size test passphrase 5123"
LIMITS = dict(login_max_failures=1000, login_max_per_address=1000000,
              join_max_per_address=1000000, argon2_memory=1024, argon2_iterations=1)
WORKERS = 2
GAP = 0.05             # between checks
ROUNDING = 1.6         # last_used_at is kept in whole seconds: due up to 1.5 s late
WRITE_WAIT = 15.0      # generous, for loaded machines and sanitizers


def _user(kg):
    name = "z" + uuid.uuid4().hex[:12]
    r = kg.fcgi("POST", "/join", body={"username": name, "password": PASSWORD})
    assert r.status == 201, r.text
    r = kg.fcgi("POST", "/login", body={"username": name, "password": PASSWORD})
    assert r.status == 200, r.text
    return r.json()["token"]


def _me(kg, token):
    """The status, or how the connection failed (a worker dying mid-request)."""
    try:
        return kg.fcgi("GET", "/me", headers={"Authorization": "Bearer " + token}).status
    except (OSError, FCGIError) as e:
        return type(e).__name__


def _respawns(kg):
    return kg.fcgi("GET", "/status").json()["pool"]["respawns"]


def _last_used(pg, key):
    return pg.query("SELECT last_used_at FROM api_keys WHERE key = %s", (key,))[0][0]


# Under the sanitizers (scripts/check-sanitizers) every size at one
# interval: the crash was in the refresh path, reached at any interval.
TOUCHES = [1] if os.environ.get("KG_SANITIZERS") == "1" else [0, 1, 2]


@pytest.mark.parametrize("touch", TOUCHES, ids=lambda t: "touch%d" % t)
@pytest.mark.parametrize("size", range(6), ids=lambda s: "size%d" % s)
def test_cache_size_survives_last_used_at_writes(keygate, pg, size, touch):
    kg = keygate.start(workers=WORKERS, token_cache_size=size, touch_interval=touch,
                       token_cache_ttl=2, log_level="debug", **LIMITS)
    pids = sorted(kg.worker_pids())
    respawns = _respawns(kg)
    token = _user(kg)
    key = token.split(".")[0]
    seen = [_last_used(pg, key)]
    # With the cache off each worker writes for itself: one has written twice.
    writes_wanted = WORKERS + 1 if size == 0 else 2

    # Past one touch_interval (and the rounding), then until the writes show
    # (at least a second apart: polled often enough to see each).
    start = time.monotonic()
    least = start + touch + ROUNDING
    deadline = start + writes_wanted * (touch + ROUNDING) + WRITE_WAIT
    statuses = []
    while time.monotonic() < deadline and (
            time.monotonic() < least or len(seen) <= writes_wanted):
        statuses.append(_me(kg, token))
        now = _last_used(pg, key)
        if now != seen[-1]:
            seen.append(now)
        time.sleep(GAP)
    elapsed = time.monotonic() - start

    log = kg.log()
    assert "killed by signal" not in log, [ln for ln in log.splitlines() if "signal" in ln]
    assert set(statuses) == {200}, statuses
    assert kg.alive() and sorted(kg.worker_pids()) == pids
    assert _respawns(kg) == respawns
    # Written, and each time a touch_interval after the last (whole seconds).
    assert len(seen) > writes_wanted, \
        "last_used_at %s in %.1fs at touch_interval %d" % (seen, elapsed, touch)
    assert all((b - a).total_seconds() >= touch for a, b in zip(seen, seen[1:])), seen
    assert "could not record token use" not in log
    if touch > 0:
        # Sent once per touch_interval and pool (by each worker for itself
        # with the cache off), not once per check. (With the cache on, a
        # refresh in the entry's last quarter may do the write instead.)
        writes = log.count(": last_used_at write claimed")
        bound = WORKERS * (int(elapsed / touch) + 2)
        assert writes <= bound, "%d writes in %.1fs (%d checks)" % (
            writes, elapsed, len(statuses))
    # 0 is off; any other size caches (at least one set of 4 entries).
    assert ("cache hit" in log) == (size > 0)

    r = kg.fcgi("POST", "/logout", headers={"Authorization": "Bearer " + token})
    assert r.status == 200 and r.json()["key_removed"] is True, r.text
    refused = [_me(kg, token) for _ in range(10 * WORKERS)]
    assert set(refused) == {401}, refused
    assert "killed by signal" not in kg.log()
    assert sorted(kg.worker_pids()) == pids and _respawns(kg) == respawns
