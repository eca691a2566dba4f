"""Hash slots: the pool hashes at most hash_concurrency passwords
at once, whichever workers take the logins, and a slot held by a worker
that dies comes back.

Argon2 is made slow here (about half a second a hash) so that a hash is
long enough to be seen in GET /status, which reports the slots: size, in
use, and workers waiting for one. Every wait is bounded.
"""

import os
import signal
import subprocess
import threading
import time
import uuid

import kgharness
from kgharness import wait_until

T = 30  # seconds: timeout of any single request
PASSWORD = "hash slot passphrase 4417"
# About 0.5 s a hash on the development machine; more under the sanitizers.
SLOW = dict(argon2_memory=65536, argon2_iterations=12, login_max_failures=1000,
            login_max_per_address=1000000, join_max_per_address=1000000)


def new_user(kg):
    name = "h%s" % uuid.uuid4().hex[:14]
    r = kg.fcgi("POST", "/join", body={"username": name, "password": PASSWORD}, timeout=T)
    assert r.status == 201, r.text
    return name


def slots(kg):
    r = kg.fcgi("GET", "/status", timeout=T)
    assert r.status == 200, r.text
    return r.json().get("hash_slots")


def logins_in_background(kg, names):
    """Start one login per name, each on its own connection; return
    (threads, results) where results fills with statuses or exceptions."""
    results = []

    def one(name):
        try:
            r = kg.fcgi("POST", "/login", body={"username": name, "password": PASSWORD},
                        timeout=T)
            results.append(r.status)
        except Exception as e:  # noqa: BLE001 - the caller decides
            results.append(e)
    threads = [threading.Thread(target=one, args=(n,), daemon=True) for n in names]
    for t in threads:
        t.start()
    return threads, results


def test_status_reports_one_slot_per_cpu_by_default(keygate):
    kg = keygate.start(workers=2)
    s = slots(kg)
    assert s == {"size": len(os.sched_getaffinity(0)), "in_use": 0, "waiting": 0}, s


def test_a_hash_of_several_lanes_takes_as_many_cpus(keygate):
    """argon2_parallelism = p runs p threads per hash: one slot per p CPUs."""
    kg = keygate.start(workers=2, argon2_parallelism=2)
    s = slots(kg)
    assert s["size"] == max(1, len(os.sched_getaffinity(0)) // 2), s
    kg.stop()
    kg = keygate.start(workers=2, argon2_parallelism=2, hash_concurrency=3)
    assert slots(kg)["size"] == 3


def test_slots_removed_from_outside_leave_logins_working(keygate):
    """ipcrm (or logind's RemoveIPC) takes the semaphore away: each worker
    says so once and hashes without a limit; nothing fails."""
    before = kgharness.sysv_semaphores()
    kg = keygate.start(workers=2, hash_concurrency=1, login_max_failures=1000,
                       login_max_per_address=1000000, join_max_per_address=1000000)
    (mine,) = kgharness.sysv_semaphores() - before
    subprocess.run(["ipcrm", "-s", str(mine)], check=True)
    name = new_user(kg)
    for _ in range(4):
        r = kg.fcgi("POST", "/login", body={"username": name, "password": PASSWORD}, timeout=T)
        assert r.status == 200, r.text
    assert "hash slots: semop" in kg.log()


def test_logins_beyond_hash_concurrency_wait_for_a_slot(keygate):
    """Two logins on three workers with one slot: one hashes while the
    other waits, never both at once, and both succeed."""
    kg = keygate.start(workers=3, hash_concurrency=1, **SLOW)
    names = [new_user(kg), new_user(kg)]
    assert slots(kg) == {"size": 1, "in_use": 0, "waiting": 0}
    threads, results = logins_in_background(kg, names)
    seen = []
    deadline = time.monotonic() + 60
    while any(t.is_alive() for t in threads) and time.monotonic() < deadline:
        seen.append(slots(kg))      # the third worker answers
        time.sleep(0.01)
    for t in threads:
        t.join(T)
    assert results == [200, 200], results
    assert all(s["in_use"] <= 1 for s in seen), seen
    # One login's hash was seen holding the slot while the other waited.
    assert {"size": 1, "in_use": 1, "waiting": 1} in seen, seen
    assert slots(kg) == {"size": 1, "in_use": 0, "waiting": 0}


def test_a_slot_held_by_a_killed_worker_comes_back(keygate):
    """SIGKILL (what the request_timeout watchdog sends) in the middle of a
    hash: the kernel gives the slot back (SEM_UNDO), the respawned pool has
    all its slots, and the next login is served."""
    kg = keygate.start(workers=2, hash_concurrency=1, **SLOW)
    name = new_user(kg)
    threads, results = logins_in_background(kg, [name])
    wait_until(lambda: slots(kg)["in_use"] == 1, timeout=T, interval=0.01,
               what="the login holding the slot")
    victims = kg.worker_pids()
    for pid in victims:
        os.kill(pid, signal.SIGKILL)
    threads[0].join(T)
    assert len(results) == 1 and results[0] != 200, results
    kg.wait_workers(exclude=victims, timeout=15)
    assert slots(kg) == {"size": 1, "in_use": 0, "waiting": 0}
    r = kg.fcgi("POST", "/login", body={"username": name, "password": PASSWORD}, timeout=T)
    assert r.status == 200, r.text


def test_a_single_process_pool_has_no_slots(keygate):
    """workers = 1 (mod_fcgid's processes): no master, nothing shared to limit."""
    kg = keygate.start(workers=1)
    assert slots(kg) is None


def test_the_master_removes_its_slots_when_it_stops(keygate):
    before = kgharness.sysv_semaphores()
    kg = keygate.start(workers=2)
    mine = kgharness.sysv_semaphores() - before
    assert len(mine) == 1, mine
    assert kg.stop() == 0
    assert not mine & kgharness.sysv_semaphores()
