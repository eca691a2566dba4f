"""The pool's shared token cache never outlives a revocation (within the bounds docs/API.md gives),
reads a token from the database once per host and writes last_used_at once
per host and touch_interval.

Each keygate pool (master + workers, one shared-memory epoch) stands for one
host; two pools on the same database are two hosts. Caches are warmed by
sending each token many times, so every worker has seen it, before the
revocation; the bounds are then checked against every worker.
"""
import re
import subprocess
import threading
import time
import uuid

import pytest

from kgharness import KEYGATE_BIN, keygate_env

PASSWORD = "cache test passphrase 9471"
LIMITS = dict(login_max_failures=1000, login_max_per_address=1000000,
              join_max_per_address=1000000, log_level="warn")


def _user(kg, n_tokens=1):
    name = "c" + uuid.uuid4().hex[:12]
    r = kg.fcgi("POST", "/join", body={"username": name, "password": PASSWORD})
    assert r.status == 201, r.text
    tokens = []
    for _ in range(n_tokens):
        r = kg.fcgi("POST", "/login", body={"username": name, "password": PASSWORD})
        assert r.status == 200, r.text
        tokens.append(r.json()["token"])
    return name, tokens


def _me(kg, token):
    return kg.fcgi("GET", "/me", headers={"Authorization": "Bearer " + token})


def _refused_after(kg, token, start, streak=20, cap=15.0):
    """Seconds from `start` (monotonic) to the sending of the first request
    of a run of `streak` refusals (401) of token in a row, or None if no such
    run began within `cap` seconds. Timed by when the refusal began, not by
    how long the run takes: on a slow machine (sanitizers, load) the run
    takes longer, but the first refused request is still sent as soon as
    the previous one was answered."""
    first, n = None, 0
    while n < streak:
        t = time.monotonic()
        if n == 0 and t - start > cap:
            return None
        if _me(kg, token).status == 401:
            first = t if n == 0 else first
            n += 1
        else:
            n = 0
    return first - start


def _warm(kg, token, n=40):
    for _ in range(n):
        assert _me(kg, token).status == 200


@pytest.fixture
def pool(keygate):
    return keygate.start(workers=3, **LIMITS)


def test_logout_is_refused_by_every_worker_at_once(pool):
    _, (token, other) = _user(pool, 2)
    _warm(pool, token)
    _warm(pool, other)
    r = pool.fcgi("POST", "/logout", headers={"Authorization": "Bearer " + token})
    assert r.status == 200 and r.json()["key_removed"] is True
    # Straight after the revoking request returned: no worker may still say yes.
    statuses = [_me(pool, token).status for _ in range(60)]
    assert set(statuses) == {401}, statuses
    # The user's other token is unaffected.
    assert _me(pool, other).status == 200


def test_session_delete_and_password_change_are_refused_at_once(pool):
    name, (a, b, c) = _user(pool, 3)
    for t in (a, b, c):
        _warm(pool, t)
    key_b = b.split(".")[0]
    r = pool.fcgi("DELETE", "/sessions/" + key_b, headers={"Authorization": "Bearer " + a})
    assert r.status == 200
    assert {_me(pool, b).status for _ in range(45)} == {401}
    r = pool.fcgi("POST", "/password", headers={"Authorization": "Bearer " + a},
                  body={"current_password": PASSWORD,
                        "new_password": "a brand new cache passphrase 5"})
    assert r.status == 200, r.text
    assert {_me(pool, c).status for _ in range(45)} == {401}
    assert _me(pool, a).status == 200


def test_token_trimmed_by_max_tokens_is_refused_at_once(keygate):
    kg = keygate.start(workers=3, max_tokens_per_user=2, **LIMITS)
    name, (t1, t2) = _user(kg, 2)
    _warm(kg, t1)
    _warm(kg, t2)
    time.sleep(1.1)  # t2 must be the more recently used one when trimming
    _warm(kg, t2, 3)
    r = kg.fcgi("POST", "/login", body={"username": name, "password": PASSWORD})
    assert r.status == 200
    assert {_me(kg, t1).status for _ in range(45)} == {401}


def test_revocation_on_another_host_is_seen_within_one_second(keygate, pg):
    host_a = keygate.start(workers=2, **LIMITS)
    host_b = keygate.start(workers=2, **LIMITS)
    _, (token,) = _user(host_a, 1)
    _warm(host_a, token)
    _warm(host_b, token)
    r = host_a.fcgi("POST", "/logout", headers={"Authorization": "Bearer " + token})
    assert r.status == 200
    took = _refused_after(host_b, token, time.monotonic())
    # NOTIFY takes milliseconds; without it the entry would live 120 s
    assert took is not None and took < 1.0, "host B refused the token after %s s" % took
    # And it stays refused on every worker of host B.
    assert {_me(host_b, token).status for _ in range(40)} == {401}


def test_disable_from_the_command_line_is_seen_within_one_second(pool, pg):
    name, (token,) = _user(pool, 1)
    _warm(pool, token)
    env = keygate_env(pg)
    # Timed from the command's exit (the disable is committed by then), not
    # its start: the command's own start-up is slow under the sanitizers.
    subprocess.run([KEYGATE_BIN, "user", "disable", name], env=env,
                   check=True, capture_output=True, timeout=30)
    took = _refused_after(pool, token, time.monotonic())
    assert took is not None and took < 1.0, (
        "disabled user's token refused %s s after the command" % took)
    subprocess.run([KEYGATE_BIN, "user", "enable", name], env=env,
                   check=True, capture_output=True, timeout=30)
    # Disabling ended the sessions: enabling does not bring them back.
    assert _me(pool, token).status == 401


def test_database_down_means_no_cached_answers(pool, pg):
    _, (token,) = _user(pool, 1)
    _warm(pool, token)
    pg.stop()
    try:
        # Revocations cannot be heard while the database is away: fail closed.
        statuses = {_me(pool, token).status for _ in range(12)}
        assert statuses == {503}, statuses
    finally:
        pg.start()


def test_cache_is_used(keygate):
    """Most token checks must not reach the database (the point of the cache)."""
    kg = keygate.start(workers=2, **dict(LIMITS, log_level="debug"))
    _, (token,) = _user(kg, 1)
    for _ in range(300):
        assert _me(kg, token).status == 200
    log = kg.log()
    hits = log.count("cache hit")
    misses = log.count("cache miss")
    assert hits >= 250 and misses <= 50, (hits, misses)


def test_cache_off_still_serves(keygate):
    kg = keygate.start(workers=2, token_cache_size=0, **dict(LIMITS, log_level="debug"))
    _, (token,) = _user(kg, 1)
    for _ in range(20):
        assert _me(kg, token).status == 200
    assert "cache hit" not in kg.log()


def _cache_lines(kg):
    """(pid, "hit"|"miss") for every token check in kg's debug log."""
    return re.findall(r"keygate\[(\d+)\] debug: token kg_1_\S+: cache (hit|miss)", kg.log())


def test_pool_reads_a_token_from_the_database_once(keygate):
    """The cache is shared: one worker's database read serves them all."""
    kg = keygate.start(workers=3, **dict(LIMITS, log_level="debug"))
    _, (token,) = _user(kg, 1)
    _warm(kg, token, 90)
    lines = _cache_lines(kg)
    misses = [pid for pid, what in lines if what == "miss"]
    hit_pids = {pid for pid, what in lines if what == "hit"}
    assert len(lines) == 90
    # Without sharing, every worker would read the token once for itself.
    assert len(misses) == 1, lines
    assert len(hit_pids - set(misses)) >= 1, "one worker served every request: %s" % lines


def test_token_in_use_is_read_again_before_its_entry_ends(keygate, pg):
    """A token in steady use is never read from the database while a request
    waits: in the last quarter of token_cache_ttl one worker sends a refresh
    (no request waits for it) whose answer renews the entry. Used every
    0.2 s for three TTLs, the token misses the cache once, at first."""
    kg = keygate.start(workers=2, token_cache_ttl=4, **dict(LIMITS, log_level="debug"))
    _, (token,) = _user(kg, 1)
    # At least 12 s (three TTLs) and at least 45 checks, however slow each is.
    start = time.monotonic()
    checks = 0
    while time.monotonic() < start + 12 or checks < 45:
        assert _me(kg, token).status == 200
        checks += 1
        time.sleep(0.2)
    elapsed = time.monotonic() - start
    lines = _cache_lines(kg)
    misses = [pid for pid, what in lines if what == "miss"]
    assert len(lines) == checks, lines
    assert len(misses) == 1, "%d misses in %d checks" % (len(misses), len(lines))
    refreshes = kg.log().count(": refresh claimed")
    # One per entry's life (3 to 4 s here), not one per worker or request:
    # 2 to 6 in 12 s, more only if the loop took longer.
    assert 2 <= refreshes <= elapsed / 3 + 2, (refreshes, elapsed)
    assert "could not record token use" not in kg.log()


def test_token_in_use_costs_one_statement_per_touch_interval(keygate, pg):
    """With token_cache_ttl at twice touch_interval (120 s and 60 s by
    default), a token in use falls due for its last_used_at write before
    its entry reaches its last quarter: the write's answer renews the entry,
    and no separate refresh goes out. (At token_cache_ttl = touch_interval,
    the old default, every touch_interval cost a refresh and a write.)"""
    kg = keygate.start(workers=2, token_cache_ttl=4, touch_interval=2,
                       **dict(LIMITS, log_level="debug"))
    _, (token,) = _user(kg, 1)
    end = time.monotonic() + 10
    while time.monotonic() < end:
        assert _me(kg, token).status == 200
        time.sleep(0.1)
    log = kg.log()
    writes = log.count(": last_used_at write claimed")
    refreshes = log.count(": refresh claimed")
    misses = [pid for pid, what in _cache_lines(kg) if what == "miss"]
    assert len(misses) == 1, misses
    assert writes >= 3, "%d writes in 10 s at touch_interval 2" % writes
    # At most one, before the first write: the first entry comes from the
    # login's row, whose last_used_at the database keeps rounded to the second.
    assert refreshes <= 1, "%d refreshes besides %d writes" % (refreshes, writes)
    assert "could not record token use" not in log


def _due_token(kg):
    """A token cached by kg's workers and due for its last_used_at write."""
    _, (token,) = _user(kg, 1)
    _warm(kg, token, 6)
    time.sleep(1 + 1.6)   # touch_interval 1; last_used_at is kept in whole seconds
    return token


def test_last_used_at_write_is_not_waited_for_but_never_deafens(keygate, pg):
    """A request does not wait for its last_used_at write: the write runs
    after the response is out (tokencheck_after_response). Its worker takes
    no further request while the write runs, so it never answers from its
    cache while the server holds its connection's notifications back (it
    does, while a statement runs): here the write waits behind a lock on
    the whole table, and the next request waits with it."""
    kg = keygate.start(workers=1, touch_interval=1, **dict(LIMITS, log_level="debug"))
    token = _due_token(kg)
    locked_at = pg.query("SELECT clock_timestamp()")[0][0]
    locker = pg.connect()
    locker.autocommit = False
    result = {}
    waiter = threading.Thread(target=lambda: result.setdefault("r", _me(kg, token)))
    try:
        with locker.cursor() as cur:
            cur.execute("LOCK TABLE api_keys IN ACCESS EXCLUSIVE MODE")
        start = time.monotonic()
        assert _me(kg, token).status == 200
        took = time.monotonic() - start
        # A request that waited for its write would hang until the lock went
        # (here: until the client's 10 s timeout); any slow machine is faster.
        assert took < 5.0, "the due request took %.1fs" % took
        assert kg.log().count(": last_used_at write claimed") == 1
        time.sleep(0.3)
        waiter.start()
        waiter.join(1.0)
        assert waiter.is_alive(), "answered from the cache while its notifications were held"
    finally:
        locker.rollback()
        locker.close()
    waiter.join(10)
    assert result["r"].status == 200
    assert "could not record token use" not in kg.log()
    # written by now, once the lock went: not older than the lock (the
    # database keeps last_used_at rounded to the second)
    stale = pg.query("SELECT last_used_at < %s - interval '1 second' FROM api_keys"
                     " WHERE key = %s", (locked_at, token.split(".")[0]))[0][0]
    assert not stale


def test_a_locked_token_row_holds_up_no_worker(keygate, pg):
    """The refresh skips a row somebody holds locked (SKIP LOCKED) instead
    of waiting for it: waiting would hold its worker, and every worker
    claiming that token's refresh in turn would follow."""
    kg = keygate.start(workers=2, touch_interval=1, **dict(LIMITS, log_level="debug"))
    token = _due_token(kg)
    key = token.split(".")[0]
    before = pg.query("SELECT last_used_at FROM api_keys WHERE key = %s", (key,))[0][0]
    locker = pg.connect()
    locker.autocommit = False
    try:
        with locker.cursor() as cur:
            cur.execute("SELECT 1 FROM api_keys WHERE key = %s FOR UPDATE", (key,))
        start = time.monotonic()
        slowest = 0.0
        for i in range(21):
            t = time.monotonic()
            assert _me(kg, token).status == 200      # the first sends the refresh
            slowest = max(slowest, time.monotonic() - t)
            if i == 0:
                time.sleep(0.3)                      # the write ran meanwhile
        took = time.monotonic() - start
        # A worker that waited for the row would hang until the lock went
        # (the client's 10 s timeout): each request, not the sum, is bounded.
        assert slowest < 5.0, "a request took %.1fs with the row locked" % slowest
        # Once per touch_interval (1 s here) the loop lasted, not per request.
        writes = kg.log().count(": last_used_at write claimed")
        assert 1 <= writes <= took + 2, (writes, took)
    finally:
        locker.rollback()
        locker.close()
    # The write was skipped, not lost for good: the row is unchanged ...
    assert pg.query("SELECT last_used_at FROM api_keys WHERE key = %s", (key,))[0][0] == before
    assert "could not record token use" not in kg.log()
    # ... and the next touch_interval writes it.
    time.sleep(1 + 1.6)
    assert _me(kg, token).status == 200
    deadline = time.monotonic() + 10     # the write is not waited for
    while pg.query("SELECT last_used_at FROM api_keys WHERE key = %s", (key,))[0][0] == before:
        assert time.monotonic() < deadline, "last_used_at never written after the lock"
        time.sleep(0.05)


def test_last_used_at_is_written_once_per_pool(keygate, pg):
    """When a cached token falls due, one worker writes last_used_at, not each."""
    touch = 4
    kg = keygate.start(workers=3, touch_interval=touch, **dict(LIMITS, log_level="debug"))
    _, (token,) = _user(kg, 1)
    _warm(kg, token, 45)
    assert len({pid for pid, _ in _cache_lines(kg)}) >= 2, "a single worker served"
    before = kg.log().count(": last_used_at write claimed")
    # Due in every worker's view: last_used_at is kept in whole seconds
    # (rounded), so a token falls due up to 1.5 s after touch_interval.
    time.sleep(touch + 2.1)
    start = time.monotonic()
    started_db = pg.query("SELECT clock_timestamp()")[0][0]
    _warm(kg, token, 30)
    took = time.monotonic() - start
    log = kg.log()
    writes = log.count(": last_used_at write claimed") - before
    # With each worker deciding for itself, every worker that served would
    # write. A loop slower than touch_interval (4 s for 30 requests) makes
    # the token due again: one write per touch_interval it spans.
    assert 1 <= writes <= 1 + int(took / touch), (
        "%d writes of last_used_at for one due token in %.1f s" % (writes, took))
    assert "could not record token use" not in log
    # And it was written: the database's last_used_at is fresh (the write
    # goes out without the request waiting for it, so give it a moment).
    deadline = time.monotonic() + 10
    while True:
        stale = pg.query("SELECT last_used_at < %s - interval '1 second' FROM api_keys"
                         " WHERE key = %s", (started_db, token.split(".")[0]))[0][0]
        if not stale or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert not stale, "last_used_at not written since the 30 requests began"
