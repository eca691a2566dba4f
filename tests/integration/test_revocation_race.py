"""A login in flight cannot outlive the revocation it raced.

A login reads the account, spends Argon2 time on the password, then writes
its token. A password change, logout-all, revoke-all or disable that
commits in between must still end that login's session: the token is
written only if the account's credential generation and enabled state are
what the password was checked under (db/migrations/0004), and a token is
valid only under the generation it was issued in.

The races are made certain rather than likely, so that each verdict is the
same on a fast or a loaded machine:

* The pool gets one hash slot (hash_concurrency = 1), which this test takes
  itself (the System V semaphore, as a worker does). Every login then
  stops at its Argon2 call, after it has read the account; GET /status
  counts them waiting. The revocation runs while all of them wait, the slot
  is given back, and every token those logins got must be refused: a
  token that works is a survivor. Before the fix every one of them
  survived.
* For the cap on a user's tokens, the test holds the account's row lock in
  PostgreSQL while the logins arrive, so that they all write at once when
  it lets go.

A third test follows the reported reproduction as it was seen black-box:
clients logging in in a loop with the old password while the owner changes
it through POST /password. Its verdict is exact too: every token an
old-password login received must be refused once the change has answered.
"""

import ctypes
import os
import threading
import time
import uuid

import pytest

import kgharness
from kgharness import wait_until

T = 60          # seconds: any single request
# Per kind of revocation. Each round holds its race open (see above), so
# a round proves as much on any build; the ASan pass runs fewer.
ROUNDS = 5 if os.environ.get("KG_SANITIZERS") == "1" else 20
LOGINS = 6      # logins in flight in each round
PASSWORD = "race passphrase for the old credential 71"
NEW_PASSWORD = "race passphrase for the new credential 72"
# Cheap hashes: the races are held open by the test, not by Argon2's cost.
FAST = dict(argon2_memory=1024, argon2_iterations=1)
LIMITS = dict(FAST, login_max_failures=1000, login_max_per_address=1000000,
              join_max_per_address=1000000, max_tokens_per_user=1000)

SEM_UNDO = 0x1000
IPC_NOWAIT = 0o4000


class _Sembuf(ctypes.Structure):
    _fields_ = [("sem_num", ctypes.c_ushort), ("sem_op", ctypes.c_short),
                ("sem_flg", ctypes.c_short)]


_libc = ctypes.CDLL(None, use_errno=True)


def _semop(semid, delta, flags):
    op = _Sembuf(0, delta, flags)
    return _libc.semop(ctypes.c_int(semid), ctypes.byref(op), ctypes.c_size_t(1)) == 0


def slots(kg):
    r = kg.fcgi("GET", "/status", timeout=T)
    assert r.status == 200, r.text
    return r.json()["hash_slots"]


class HashSlots:
    """The pool's hash slots, taken and given back by this process."""

    def __init__(self, kg, candidates):
        self.kg = kg
        self.semid = None
        self.n = 0
        self.size = slots(kg)["size"]
        # Other pools may run on this machine: the set is the one whose
        # slots GET /status sees taken when this process takes them.
        for semid in sorted(candidates):
            if not _semop(semid, -self.size, IPC_NOWAIT | SEM_UNDO):
                continue
            if slots(kg)["in_use"] == self.size:
                self.semid, self.n = semid, self.size
                break
            assert _semop(semid, self.size, SEM_UNDO)
        assert self.semid is not None, "the pool's hash slots were not found"

    def give_back(self):
        if self.n:
            assert _semop(self.semid, self.n, SEM_UNDO)
            self.n = 0


def start_pool(keygate, workers, **overrides):
    before = kgharness.sysv_semaphores()
    kg = keygate.start(workers=workers, **dict(LIMITS, **overrides))
    return kg, kgharness.sysv_semaphores() - before


def new_user(kg, password=PASSWORD):
    name = "r%s" % uuid.uuid4().hex[:14]
    r = kg.fcgi("POST", "/join", body={"username": name, "password": password}, timeout=T)
    assert r.status == 201, r.text
    return name


def login(kg, name, password=PASSWORD):
    return kg.fcgi("POST", "/login", body={"username": name, "password": password}, timeout=T)


def logins_in_background(kg, name, n):
    """n logins of name, each on its own connection; results fill with
    (status, token or None) or the exception."""
    results = []
    lock = threading.Lock()

    def one():
        try:
            r = login(kg, name)
            tok = r.json().get("token") if r.status == 200 else None
            item = (r.status, tok)
        except Exception as e:  # noqa: BLE001 - judged by the caller
            item = e
        with lock:
            results.append(item)
    threads = [threading.Thread(target=one, daemon=True) for _ in range(n)]
    for t in threads:
        t.start()
    return threads, results


def valid(kg, token):
    r = kg.fcgi("GET", "/me", headers={"Authorization": "Bearer " + token}, timeout=T)
    assert r.status in (200, 401), (r.status, r.text)
    return r.status == 200


def cli(pg, kg_workdir, *args, stdin=None):
    r = kgharness.run_keygate(list(args), kg_workdir, pg=pg, overrides=FAST, input=stdin,
                              timeout=T)
    assert r.returncode == 0, (args, r.stdout, r.stderr)
    return r


def revoke(kind, kg, pg, kg_workdir, name, owner_token):
    if kind == "password":
        cli(pg, kg_workdir, "user", "passwd", name, "--password-stdin",
            stdin=NEW_PASSWORD + "\n")
    elif kind == "logout_all":
        r = kg.fcgi("POST", "/logout", body={"all": True},
                    headers={"Authorization": "Bearer " + owner_token}, timeout=T)
        assert r.status == 200, r.text
    elif kind == "revoke_all":
        cli(pg, kg_workdir, "token", "revoke", name, "--all")
    elif kind == "disable":
        cli(pg, kg_workdir, "user", "disable", name)
    else:
        raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["password", "logout_all", "revoke_all", "disable"])
def test_no_login_in_flight_survives_a_revocation(keygate, pg, kg_workdir, kind):
    kg, sems = start_pool(keygate, workers=LOGINS + 2, hash_concurrency=1)
    survivors, issued, refused = [], 0, 0
    for rnd in range(ROUNDS):
        name = new_user(kg)
        r = login(kg, name)
        assert r.status == 200, r.text
        owner = r.json()["token"]
        held = HashSlots(kg, sems)
        try:
            threads, results = logins_in_background(kg, name, LOGINS)
            # Every login has read the account and waits for the slot.
            wait_until(lambda: slots(kg)["waiting"] == LOGINS, timeout=T, interval=0.01,
                       what="%d logins waiting for the hash slot" % LOGINS)
            revoke(kind, kg, pg, kg_workdir, name, owner)
        finally:
            held.give_back()
        for t in threads:
            t.join(T)
        assert len(results) == LOGINS, results
        assert all(isinstance(x, tuple) and x[0] in (200, 401) for x in results), results
        if kind == "disable":
            # Enabling must not bring back a token written during the race.
            cli(pg, kg_workdir, "user", "enable", name)
        assert not valid(kg, owner)
        for status, tok in results:
            if status == 200:
                issued += 1
                if valid(kg, tok):
                    survivors.append((rnd, tok.split(".")[0]))
            else:
                refused += 1
    assert survivors == [], "%d of %d tokens outlived the %s (%d logins refused)" % (
        len(survivors), issued, kind, refused)
    # The pool answered every login: none died on the way.
    assert "killed by signal" not in kg.log()


def test_logins_racing_a_password_change_through_the_api(keygate, pg):
    """The reported reproduction: six clients log in with the old password
    in a loop while the owner changes it with POST /password; once the
    change has answered, no token from an old-password login works."""
    kg, _ = start_pool(keygate, workers=LOGINS + 2)
    survivors, issued = [], 0
    for rnd in range(ROUNDS):
        name = new_user(kg)
        r = login(kg, name)
        assert r.status == 200, r.text
        owner = r.json()["token"]
        stop = threading.Event()
        got, errors = [], []

        def client():
            for _ in range(200):        # bounded; stop ends it sooner
                if stop.is_set():
                    return
                try:
                    r = login(kg, name)
                except Exception as e:  # noqa: BLE001
                    errors.append(e)
                    return
                if r.status == 200:
                    got.append(r.json()["token"])
                elif r.status != 401:
                    errors.append((r.status, r.text))
                    return
        threads = [threading.Thread(target=client, daemon=True) for _ in range(LOGINS)]
        for t in threads:
            t.start()
        time.sleep(0.05)    # let the loops get going; the verdict does not depend on it
        r = kg.fcgi("POST", "/password", headers={"Authorization": "Bearer " + owner},
                    body={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
                    timeout=T)
        assert r.status == 200, r.text
        # Logins that are still running may finish later: whatever they
        # were given must not work either (they checked the old password).
        stop.set()
        for t in threads:
            t.join(T)
        assert errors == [], errors
        for tok in got:
            issued += 1
            if valid(kg, tok):
                survivors.append((rnd, tok.split(".")[0]))
        # The owner's own session is the one a change keeps.
        assert valid(kg, owner)
    assert survivors == [], "%d of %d old-password tokens outlived the change" % (
        len(survivors), issued)


def test_max_tokens_per_user_holds_under_concurrent_logins(keygate, pg):
    """Eight logins of one user write at the same moment, with
    max_tokens_per_user = 3: exactly three tokens are left, the newest."""
    cap, n = 3, 8
    kg, _ = start_pool(keygate, workers=n + 1, max_tokens_per_user=cap)
    for rnd in range(10):
        name = new_user(kg)
        uid = pg.query("SELECT id FROM users WHERE username = %s", (name,))[0][0]
        conn = pg.connect()
        try:
            conn.autocommit = False
            cur = conn.cursor()
            # Held while the logins hash and try to write.
            cur.execute("SELECT 1 FROM users WHERE id = %s FOR UPDATE", (uid,))
            threads, results = logins_in_background(kg, name, n)

            def writers_waiting():
                return pg.query(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                    " AND datname = current_database() AND pid <> pg_backend_pid()")[0][0]
            wait_until(lambda: writers_waiting() == n, timeout=T, interval=0.01,
                       what="%d logins waiting to write" % n)
            conn.commit()
        finally:
            conn.close()
        for t in threads:
            t.join(T)
        assert sorted(x[0] for x in results) == [200] * n, results
        live = [tok for _, tok in results if valid(kg, tok)]
        assert len(live) == cap, "round %d: %d live tokens, cap %d" % (rnd, len(live), cap)
        r = kg.fcgi("GET", "/sessions", headers={"Authorization": "Bearer " + live[0]},
                    timeout=T)
        assert r.status == 200, r.text
        assert len(r.json()["sessions"]) == cap, r.text


# --------------------------------------------------------------------------
# Token checks racing a revocation through this pool

CHECKERS = 6        # clients checking the victim token, each on its own connection
CHECK_ROUNDS = 3 if os.environ.get("KG_SANITIZERS") == "1" else 6


def revoke_through_the_api(kind, kg, name, victim, owner):
    """Revoke the victim token by kind through the pool; returns once answered."""
    auth = {"Authorization": "Bearer " + (victim if kind == "logout" else owner)}
    if kind == "logout":
        r = kg.fcgi("POST", "/logout", body={}, headers=auth, timeout=T)
        ok = r.status == 200 and r.json()["key_removed"] is True
    elif kind == "session_delete":
        r = kg.fcgi("DELETE", "/sessions/" + victim.split(".")[0], headers=auth, timeout=T)
        ok = r.status == 200
    elif kind == "logout_all":
        r = kg.fcgi("POST", "/logout", body={"all": True}, headers=auth, timeout=T)
        ok = r.status == 200
    elif kind == "password":
        r = kg.fcgi("POST", "/password", headers=auth, timeout=T,
                    body={"current_password": PASSWORD, "new_password": NEW_PASSWORD})
        ok = r.status == 200
    else:
        raise AssertionError(kind)
    assert ok, (kind, r.status, r.text)


@pytest.mark.parametrize("kind", ["logout", "session_delete", "logout_all", "password"])
def test_no_check_after_a_revocation_answers_accepts_the_token(keygate, kind):
    """Clients check a token from every worker, from the shared cache, with
    last_used_at writes and refreshes claimed and run after responses
    (touch_interval and token_cache_ttl at their smallest), while the owner
    revokes it through the pool. Whatever the interleaving, no check that
    started after the revocation answered may accept the token: the
    revoking worker moves the pool's epoch before it answers. The verdict
    compares each check's start with that answer, not durations."""
    kg = keygate.start(workers=4, token_cache_ttl=1, touch_interval=1, log_level="debug",
                       **LIMITS)
    late_accepts, checks_after = [], 0
    for rnd in range(CHECK_ROUNDS):
        name = new_user(kg)
        r1, r2 = login(kg, name), login(kg, name)
        assert r1.status == 200 and r2.status == 200, (r1.text, r2.text)
        victim, owner = r1.json()["token"], r2.json()["token"]
        stop = threading.Event()
        seen = [[] for _ in range(CHECKERS)]

        def check(out):
            for _ in range(20000):                  # bounded, stops by itself
                if stop.is_set():
                    return
                t0 = time.monotonic()
                r = kg.fcgi("GET", "/me", headers={"Authorization": "Bearer " + victim},
                            timeout=T)
                out.append((t0, r.status))
        threads = [threading.Thread(target=check, args=(seen[i],), daemon=True)
                   for i in range(CHECKERS)]
        for t in threads:
            t.start()
        # Past touch_interval (1 s, the token's age counted in whole
        # seconds) and into the entries' last quarter, whatever the build's
        # speed: the after-response path then surely runs in this round;
        # the revocation lands at a different moment of it each round.
        time.sleep(1.6 + 0.15 * (rnd % 4))
        revoke_through_the_api(kind, kg, name, victim, owner)
        answered = time.monotonic()
        time.sleep(0.3)
        stop.set()
        for t in threads:
            t.join(T)
        assert not any(t.is_alive() for t in threads)
        for out in seen:
            assert {s for _, s in out} <= {200, 401}, {s for _, s in out}
            after = [s for t0, s in out if t0 > answered]
            checks_after += len(after)
            late_accepts += [(rnd, s) for s in after if s == 200]
        assert not valid(kg, victim)
    assert not late_accepts, "%d checks accepted the token after its revocation answered" \
        % len(late_accepts)
    assert checks_after >= CHECK_ROUNDS * CHECKERS, checks_after
    # The race covered the work left for after the response, not just plain hits.
    log = kg.log()
    assert ": last_used_at write claimed" in log and "cache hit" in log, log[-3000:]
