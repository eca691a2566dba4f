"""Administration while the pool serves: a disabled account's live tokens
are refused by every worker at once, its login answers exactly as a wrong
password does and costs as much, enabling it brings no old session back;
`keygate prune` under load removes only expired tokens.
"""

import concurrent.futures
import threading
import time

import pytest
import requests

from accounts import (NO_ADDR_LIMITS, assert_401, cli, cpu_seconds, fc_join, fc_login,
                      http_join, http_login, http_me, nworkers)
from credentials import note

pytestmark = pytest.mark.usefixtures("fresh_throttle")


# ---------------------------------------------------------------------------
# disabled accounts


def test_disable_refuses_live_tokens_at_once_and_enable_allows_login(stack_factory, pg):
    st = stack_factory(workers=3, **NO_ADDR_LIMITS)
    name, pw, uid = http_join(st)
    tokens = [http_login(st, name, pw).json()["token"] for _ in range(2)]
    n = 4 * nworkers(st.kg)

    def me_all(token):
        with concurrent.futures.ThreadPoolExecutor(max_workers=8) as ex:
            return list(ex.map(
                lambda i: st.get("/me", headers={"Authorization": "Bearer " + token}),
                range(n)))
    for t in tokens:                       # every worker has them cached
        assert {r.status_code for r in me_all(t)} == {200}

    r = cli(pg, "user", "disable", name)
    assert r.returncode == 0 and r.stdout.strip() == "user %s disabled" % name, r
    for t in tokens:
        rs = me_all(t)
        assert {x.status_code for x in rs} == {401}, [(x.status_code, x.text) for x in rs]
        assert rs[0].json()["error"] == "invalid_token"
    # Login: exactly the wrong-password answer, right password or not.
    right, wrong = http_login(st, name, pw), http_login(st, name, "wrong " + pw)
    assert_401(right)
    assert_401(wrong)
    assert right.content == wrong.content
    assert right.headers.get("WWW-Authenticate") == wrong.headers.get("WWW-Authenticate")

    r = cli(pg, "user", "enable", name)
    assert r.returncode == 0 and r.stdout.strip() == "user %s enabled" % name, r
    r = http_login(st, name, pw)
    assert r.status_code == 200, r.text
    assert http_me(st, r.json()["token"]).status_code == 200


def test_tokens_from_before_a_disable_stay_dead_after_enable(stack_factory, pg):
    """Disabling is what an operator does to a compromised account: enabling
    it again must not bring the attacker's sessions back."""
    st = stack_factory(workers=2, **NO_ADDR_LIMITS)
    name, pw, uid = http_join(st)
    token = http_login(st, name, pw).json()["token"]
    assert cli(pg, "user", "disable", name).returncode == 0
    assert st.get("/me", headers={"Authorization": "Bearer " + token}).status_code == 401
    assert cli(pg, "user", "enable", name).returncode == 0
    r = st.get("/me", headers={"Authorization": "Bearer " + token})
    assert r.status_code == 401, (r.status_code, r.text)


def test_disabled_login_costs_the_same_as_a_wrong_password(keygate, pg):
    # One process (workers = 1), so its CPU time is the cost of the requests;
    # CPU time, unlike wall time, does not depend on what else the machine does.
    kg = keygate.start(workers=1, argon2_memory=65536, login_max_failures=1000,
                       log_level="warn", **NO_ADDR_LIMITS)
    a, apw, _ = fc_join(kg)
    b, bpw, _ = fc_join(kg)
    assert cli(pg, "user", "disable", b).returncode == 0
    cost = {"wrong": 0.0, "disabled": 0.0}
    for _ in range(6):                     # interleaved: drift hits both alike
        for what, fn in (("wrong", lambda: fc_login(kg, a, "wrong password here")),
                         ("disabled", lambda: fc_login(kg, b, bpw))):
            c0 = cpu_seconds([kg.pid])
            assert_401(fn())
            cost[what] += cpu_seconds([kg.pid]) - c0
    print("login CPU over 6 requests: wrong password %.3fs, disabled account %.3fs"
          % (cost["wrong"], cost["disabled"]))
    assert cost["wrong"] > 0.1, cost            # Argon2 did run
    assert 0.7 < cost["disabled"] / cost["wrong"] < 1.4, cost


# ---------------------------------------------------------------------------
# prune while the service is busy


def test_prune_under_load(stack_factory, pg):
    st = stack_factory(workers=3, token_lifetime=3, token_idle_timeout=3,
                       log_level="warn", **NO_ADDR_LIMITS)
    users = [http_join(st) for _ in range(3)]
    doomed = []
    for name, pw, uid in users:
        for _ in range(2):
            doomed.append(http_login(st, name, pw).json()["key"])
    assert pg.query("SELECT count(*) FROM api_keys WHERE key = ANY(%s)", (doomed,))[0][0] == 6
    t_doomed = time.monotonic()

    failures, done = [], threading.Event()
    counts = {"login": 0, "me": 0}
    lock = threading.Lock()

    def load(k):
        name, pw, _ = users[k]
        s = requests.Session()
        while not done.is_set():
            try:
                r = s.post(st.url("/login"), json={"username": name, "password": pw},
                           timeout=10)
                if r.status_code != 200:
                    failures.append(("login", r.status_code, r.text))
                    continue
                note(r.json()["secret"], r.json()["token"])
                h = {"Authorization": "Bearer " + r.json()["token"]}
                with lock:
                    counts["login"] += 1
                for _ in range(5):
                    r = s.get(st.url("/me"), headers=h, timeout=10)
                    if r.status_code != 200:
                        failures.append(("me", r.status_code, r.text))
                    with lock:
                        counts["me"] += 1
            except Exception as e:  # noqa: BLE001 - recorded
                failures.append(("exception", repr(e)))
        s.close()

    threads = [threading.Thread(target=load, args=(k,), daemon=True) for k in range(3)]
    for th in threads:
        th.start()
    prunes = []
    try:
        # for 3.5 s and at least 5 prunes, however long each takes
        deadline = time.monotonic() + 3.5
        while time.monotonic() < deadline or time.monotonic() < t_doomed + 3.5 \
                or len(prunes) < 5:
            prunes.append(cli(pg, "prune"))
            time.sleep(0.4)
        # One more now that the first tokens are surely past their lifetime.
        prunes.append(cli(pg, "prune"))
    finally:
        done.set()
        for th in threads:
            th.join(30)
    assert all(p.returncode == 0 for p in prunes), [(p.returncode, p.stderr) for p in prunes]
    assert len(prunes) >= 5
    assert all(p.stdout.startswith("pruned ") for p in prunes), [p.stdout for p in prunes]
    assert failures == [], failures[:10]
    assert counts["login"] >= 3 and counts["me"] >= 15, counts      # it was busy
    left = pg.query("SELECT count(*) FROM api_keys WHERE key = ANY(%s)", (doomed,))[0][0]
    assert left == 0
    # Nothing but expired tokens went: the pool still works for everyone.
    for name, pw, _ in users:
        r = http_login(st, name, pw)
        assert r.status_code == 200
        assert st.get("/me", headers={"Authorization": "Bearer " + r.json()["token"]}
                      ).status_code == 200
