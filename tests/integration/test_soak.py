"""Soak: steady mixed traffic for a while; nothing leaks, nothing
fails that should not, and the audit trail counts every event.

One run starts its own pool (2 workers, default Argon2 parameters,
throttling limits raised, max_requests = 0 so no worker is recycled) behind
lighttpd and sends, from `threads` threads at a steady total `rate`
(requests per second; a thread that falls behind skips ahead rather than
bursting), a weighted mix of

  good: POST /join, POST /login, GET /me, POST /logout, GET /health
  bad:  wrong password (401), unknown user (401), invalid JSON (400),
        a too-short password at /join (400), a made-up token (401),
        an unknown path (404), a wrong method (405)

Every request has one expected status (and error code); anything else --
including a bad input that gets the wrong 4xx -- is a failure. Each thread
owns its users, keeps at most 5 live tokens per user (below
max_tokens_per_user, so no token is revoked behind its back) and checks
them with GET /me.

Every `sample_every` seconds the resident size (VmRSS) of each worker is
sampled, and its open fds (/proc/PID/fd) are counted every 50 ms in
between: the fewest in a window is the worker's idle count (a count taken
mid-request also sees that request's connection). The first `warmup`
seconds (a quarter of the run, at least 5 s, at most 30 s) let the
allocator settle (Argon2's 19 MiB block moves from mmap to the heap after
the first hash) and are not judged. The run passes when

  * no request failed, the master is alive and the workers are the ones
    that started (none crashed, none was replaced);
  * per worker, RSS grew by less than 2 MiB between the median of the first
    three and of the last three samples after the warm-up;
  * per worker, the idle fd count does not go up: neither the idle count
    of any window of the second half after the warm-up nor the count once
    the traffic has stopped (the fewest over 1 s of polling) is above the
    lowest idle count of the first half. An fd leaked on any path adds up
    at idle; a request in flight does not;
  * the auth_events rows of this run's users (join, login_ok,
    login_failed, logout) equal the requests sent that should record them,
    and no other event was recorded for them.

Run it as `scripts/soak SECONDS` (own PostgreSQL and stack, prints a
report), or through pytest: 20 s in the default run, 120 s with KG_LONG=1
(scripts/test --long); KG_SOAK_SECONDS overrides both.
"""

import argparse
import json
import os
import random
import statistics
import sys
import threading
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import kgharness  # noqa: E402

SOAK_CONFIG = dict(
    workers=2,
    max_requests=0,                 # no recycling: the same workers all along
    login_max_failures=1000,
    login_max_per_address=1000000,
    join_max_per_address=1000000,
    log_level="warn",               # one line per request would be noise here
    # The token cache is one calloc'd table whose pages become resident as
    # tokens land in them (16384 entries of ~650 bytes by default): that
    # bounded growth would hide a leak. 64 entries are resident within the
    # warm-up and still exercise the cache, its collisions and evictions.
    token_cache_size=64,
)
PASSWORD = "soak passphrase of reasonable length 42"
TOKENS_PER_USER = 5
RSS_LIMIT_KIB = 2048
FD_POLL = 0.05          # seconds between fd counts within a sampling window
FD_IDLE_AFTER = 1.0     # seconds of fd counts once the traffic has stopped
AUDITED = ("join", "login_ok", "login_failed", "logout")

# operation: (weight, expected status, expected error code or None, audit event)
OPS = {
    "me":            (30, 200, None, None),
    "login":         (12, 200, None, "login_ok"),
    "logout":        (8, 200, None, "logout"),
    "join":          (4, 201, None, "join"),
    "health":        (5, 200, None, None),
    "login_wrong":   (8, 401, "invalid_credentials", "login_failed"),
    "login_unknown": (4, 401, "invalid_credentials", "login_failed"),
    "me_bad_token":  (8, 401, "invalid_token", None),
    "invalid_json":  (8, 400, "invalid_json", None),
    "join_weak":     (3, 400, "invalid_request", None),
    "unknown_path":  (5, 404, "not_found", None),
    "wrong_method":  (5, 405, "method_not_allowed", None),
}
BAD_OPS = {name for name, (_w, status, _c, _e) in OPS.items() if status >= 400}


def default_seconds():
    if os.environ.get("KG_SOAK_SECONDS"):
        return float(os.environ["KG_SOAK_SECONDS"])
    return 120.0 if os.environ.get("KG_LONG") == "1" else 20.0


def worker_usage(pid):
    """(VmRSS KiB, open fds) of pid, or None if it is gone."""
    try:
        return kgharness.rss_and_fds(pid)
    except (OSError, ValueError):
        return None


def fewest_fds(pids, until):
    """{pid: the fewest open fds counted every FD_POLL seconds until `until`
    (monotonic), at least once}: a worker between two requests holds only
    its idle fds."""
    fewest = {}
    while True:
        for p in pids:
            u = worker_usage(p)
            if u is not None:
                fewest[p] = min(fewest.get(p, u[1]), u[1])
        left = until - time.monotonic()
        if left <= 0:
            return fewest
        time.sleep(min(FD_POLL, left))


class Traffic(threading.Thread):
    """One client: its own HTTP session, users and tokens, paced at `rate`."""

    def __init__(self, soak, index, rate):
        super().__init__(daemon=True)
        self.soak = soak
        self.index = index
        self.interval = 1.0 / rate
        self.rng = random.Random(soak.seed * 1000 + index)
        self.users = []             # [name, [tokens]]
        self.serial = 0
        self.sent = {op: 0 for op in OPS}
        self.events = {e: 0 for e in AUDITED}
        self.failures = []
        self.latencies = []
        self.lagged = 0
        import requests
        self.http = requests.Session()
        names = list(OPS)
        self.choices, self.weights = names, [OPS[n][0] for n in names]

    def _new_username(self):
        self.serial += 1
        return "%st%du%d" % (self.soak.prefix, self.index, self.serial)

    def _request(self, method, path, **kw):
        kw.setdefault("timeout", 30)
        return self.http.request(method, self.soak.base + path, **kw)

    def _pick(self):
        op = self.rng.choices(self.choices, self.weights)[0]
        tokens = [(u, t) for u in self.users for t in u[1]]
        if op in ("me", "logout") and not tokens:
            op = "login"
        if op in ("login", "login_wrong") and not self.users:
            op = "join"
        if op == "login" and all(len(u[1]) >= TOKENS_PER_USER for u in self.users):
            op = "join"
        return op, tokens

    def _one(self):
        op, tokens = self._pick()
        rng = self.rng
        user = token = None
        if op == "join":
            user = [self._new_username(), []]
            r = self._request("POST", "/join", json={"username": user[0], "password": PASSWORD})
        elif op == "join_weak":
            r = self._request("POST", "/join", json={"username": self._new_username(),
                                                     "password": "short"})
        elif op == "login":
            user = rng.choice([u for u in self.users if len(u[1]) < TOKENS_PER_USER])
            r = self._request("POST", "/login", json={"username": user[0], "password": PASSWORD})
        elif op == "login_wrong":
            r = self._request("POST", "/login", json={"username": rng.choice(self.users)[0],
                                                      "password": "not " + PASSWORD})
        elif op == "login_unknown":
            r = self._request("POST", "/login", json={"username": self._new_username() + "x",
                                                      "password": PASSWORD})
        elif op == "me":
            user, token = rng.choice(tokens)
            r = self._request("GET", "/me", headers={"Authorization": "Bearer " + token})
        elif op == "logout":
            user, token = rng.choice(tokens)
            r = self._request("POST", "/logout", headers={"Authorization": "Bearer " + token})
        elif op == "me_bad_token":
            fake = "kg_1_%s.%s" % (uuid.uuid4().hex[:22], uuid.uuid4().hex + "abcdefghijklmnopq")
            r = self._request("GET", "/me", headers={"Authorization": "Bearer " + fake})
        elif op == "invalid_json":
            r = self._request("POST", "/login", data=b'{"username": "x", "password": ',
                              headers={"Content-Type": "application/json"})
        elif op == "unknown_path":
            r = self._request("GET", "/no-such-%d" % rng.randrange(1000))
        elif op == "wrong_method":
            r = self._request("GET", "/login")
        else:
            r = self._request("GET", "/health")
        return op, r, user, token

    def _check(self, op, r, user, token):
        _w, status, code, event = OPS[op]
        try:
            body = r.json()
        except ValueError:
            body = None
        problem = None
        if r.status_code != status:
            problem = "status %d, expected %d" % (r.status_code, status)
        elif not isinstance(body, dict):
            problem = "not a JSON object"
        elif code is not None and body.get("error") != code:
            problem = "error %r, expected %r" % (body.get("error"), code)
        elif status < 400 and body.get("success") is not True:
            problem = "success is not true"
        if problem:
            self.failures.append((op, problem, r.text[:200]))
        elif op == "join":
            self.users.append(user)
        elif op == "login":
            user[1].append(body["token"])
        elif op == "logout":
            user[1].remove(token)
        # An event is recorded when the request got its expected answer.
        if problem is None and event is not None:
            self.events[event] += 1

    def run(self):
        soak = self.soak
        nxt = time.monotonic()
        while True:
            now = time.monotonic()
            if now >= soak.deadline or soak.stop.is_set():
                return
            if nxt > now:
                time.sleep(min(nxt - now, soak.deadline - now))
                continue
            if now - nxt > 1.0:     # fell behind: skip ahead, do not burst
                self.lagged += 1
                nxt = now
            nxt += self.interval
            t0 = time.monotonic()
            try:
                op, r, user, token = self._one()
            except Exception as e:  # noqa: BLE001 - a failed request
                self.failures.append(("exception", repr(e)[:200], ""))
                continue
            self.latencies.append(time.monotonic() - t0)
            self.sent[op] += 1
            self._check(op, r, user, token)


class Soak:
    """Run the soak against a Stack (kgharness.Stack); see the module
    docstring for what is sent and what passes."""

    def __init__(self, stack, seconds, rate=20.0, threads=2, sample_every=None,
                 warmup=None, seed=None):
        self.stack = stack
        self.kg = stack.kg
        self.pg = stack.pg
        self.base = stack.base
        self.seconds = float(seconds)
        self.rate = float(rate)
        self.nthreads = int(threads)
        self.sample_every = sample_every or (2.0 if seconds <= 60 else 5.0)
        self.warmup = warmup if warmup is not None else min(30.0, max(5.0, seconds / 4.0))
        self.seed = seed if seed is not None else random.randrange(1 << 30)
        self.prefix = "sk%s" % uuid.uuid4().hex[:8]
        self.stop = threading.Event()
        self.samples = []           # (t since start, {pid: (rss, idle fds)})
        self.fds_after = {}         # {pid: idle fds once the traffic stopped}

    def _sample(self, t0, until):
        """RSS of each worker now, and the fewest open fds counted every
        FD_POLL seconds until `until` (monotonic): the idle count, unless
        the worker was busy at every count of the window."""
        pids = self.kg.worker_pids()
        t = time.monotonic() - t0
        usage = {p: worker_usage(p) for p in pids}
        fds = fewest_fds(pids, until)
        self.samples.append((t, {p: (u[0], min(u[1], fds.get(p, u[1])))
                                 for p, u in usage.items() if u}))

    def run(self):
        if self.warmup + 3 * self.sample_every > self.seconds:
            raise ValueError("%.0f s is too short: the warm-up alone is %.0f s"
                             % (self.seconds, self.warmup))
        kg = self.kg
        pids = sorted(kg.wait_workers())
        t0 = time.monotonic()
        self.deadline = t0 + self.seconds
        clients = [Traffic(self, i, self.rate / self.nthreads) for i in range(self.nthreads)]
        for c in clients:
            c.start()
        try:
            nxt = t0
            while time.monotonic() < self.deadline:
                nxt += self.sample_every
                self._sample(t0, min(nxt, self.deadline))
            self._sample(t0, time.monotonic())
        finally:
            self.stop.set()
            for c in clients:
                c.join(60)
        elapsed = time.monotonic() - t0
        # no request in flight any more: the idle count itself
        self.fds_after = fewest_fds(pids, time.monotonic() + FD_IDLE_AFTER)
        return self._report(clients, pids, elapsed)

    def _audit(self):
        rows = self.pg.query(
            "SELECT event, count(*) FROM auth_events WHERE left(username, %s) = %s "
            "GROUP BY event", (len(self.prefix), self.prefix))
        return {e: int(n) for e, n in rows}

    def _report(self, clients, pids, elapsed):
        problems = []
        sent = {op: sum(c.sent[op] for c in clients) for op in OPS}
        expected_events = {e: sum(c.events[e] for c in clients) for e in AUDITED}
        failures = [f for c in clients for f in c.failures]
        total = sum(sent.values())
        lat = sorted(x for c in clients for x in c.latencies)
        if failures:
            problems.append("%d request(s) failed, e.g. %s" % (len(failures), failures[:5]))
        if total < self.rate * self.seconds * 0.25:
            problems.append("only %d requests in %.0f s (rate %.0f/s asked): the box is "
                            "too busy for the figures to mean much" % (total, elapsed, self.rate))
        # the pool
        if not self.kg.alive():
            problems.append("the master exited")
        now_pids = sorted(self.kg.worker_pids())
        if now_pids != pids:
            problems.append("workers changed: %s -> %s" % (pids, now_pids))
        crashes = [ln for ln in self.kg.log().splitlines()
                   if "killed by signal" in ln or "exited with status" in ln]
        if crashes:
            problems.append("crashes in the log: %s" % crashes[:5])
        # resources
        judged = [(t, s) for t, s in self.samples if t >= self.warmup]
        workers = {}
        for pid in pids:
            series = [(t, s.get(pid)) for t, s in judged if s.get(pid)]
            if len(series) < 4:
                problems.append("worker %d: only %d samples after the warm-up"
                                % (pid, len(series)))
                continue
            rss = [u[0] for _t, u in series]
            fds = [u[1] for _t, u in series]
            half = len(fds) // 2
            idle = min(fds[:half])
            w = {
                "rss_kib_warmup_start": next((s[pid][0] for _t, s in self.samples
                                              if s.get(pid)), None),
                "rss_kib_first": statistics.median(rss[:3]),
                "rss_kib_last": statistics.median(rss[-3:]),
                "rss_kib_max": max(rss),
                "fds_first_half_min": idle,
                "fds_second_half_max": max(fds[half:]),
                "fds_after": self.fds_after.get(pid),
                "samples": len(series),
                "rss_kib_series": rss,
                "fds_series": fds,
            }
            w["rss_growth_kib"] = w["rss_kib_last"] - w["rss_kib_first"]
            workers[pid] = w
            if w["rss_growth_kib"] >= RSS_LIMIT_KIB:
                problems.append("worker %d: RSS grew by %d KiB after the warm-up (limit %d)"
                                % (pid, w["rss_growth_kib"], RSS_LIMIT_KIB))
            # An upward trend at idle, not constancy: a window whose every
            # count caught a request is one above idle and proves nothing.
            if w["fds_after"] is None:
                problems.append("worker %d: gone when the traffic stopped" % pid)
            elif w["fds_after"] > idle or w["fds_second_half_max"] > idle + 1:
                problems.append("worker %d: idle open fds went up from %d: windows %s, "
                                "%d after the traffic" % (pid, idle, fds, w["fds_after"]))
        # the audit trail
        audit = self._audit()
        for e in AUDITED:
            if audit.get(e, 0) != expected_events[e]:
                problems.append("auth_events %s: %d recorded, %d expected"
                                % (e, audit.get(e, 0), expected_events[e]))
        others = {e: n for e, n in audit.items() if e not in AUDITED}
        if others:
            problems.append("unexpected auth_events: %s" % others)
        return {
            "ok": not problems,
            "problems": problems,
            "seconds": round(elapsed, 1),
            "warmup": self.warmup,
            "sample_every": self.sample_every,
            "rate_asked": self.rate,
            "rate_achieved": round(total / elapsed, 1) if elapsed else 0,
            "requests": total,
            "bad_requests": sum(sent[o] for o in BAD_OPS),
            "lagged": sum(c.lagged for c in clients),
            "latency_ms": {
                "p50": round(1000 * lat[len(lat) // 2], 1) if lat else None,
                "p99": round(1000 * lat[int(len(lat) * 0.99)], 1) if lat else None,
                "max": round(1000 * lat[-1], 1) if lat else None,
            },
            "sent": sent,
            "events_expected": expected_events,
            "events_recorded": audit,
            "workers": workers,
            "seed": self.seed,
            "prefix": self.prefix,
        }


def format_report(rep):
    lines = ["soak: %s after %.0f s (warm-up %.0f s, samples every %.0f s, seed %d)"
             % ("PASS" if rep["ok"] else "FAIL", rep["seconds"], rep["warmup"],
                rep["sample_every"], rep["seed"]),
             "  requests: %d (%d deliberately bad), %.1f/s (asked %.0f/s), lagged %d; "
             "latency p50 %s ms, p99 %s ms, max %s ms"
             % (rep["requests"], rep["bad_requests"], rep["rate_achieved"],
                rep["rate_asked"], rep["lagged"], rep["latency_ms"]["p50"],
                rep["latency_ms"]["p99"], rep["latency_ms"]["max"]),
             "  sent: " + ", ".join("%s %d" % kv for kv in rep["sent"].items()),
             "  auth_events expected %s, recorded %s"
             % (json.dumps(rep["events_expected"], sort_keys=True),
                json.dumps(rep["events_recorded"], sort_keys=True))]
    for pid, w in rep["workers"].items():
        lines.append("  worker %d: RSS %s KiB at start, %s -> %s KiB after warm-up "
                     "(growth %+d KiB, max %s), idle fds %d, at most %d in the second "
                     "half, %s after the traffic, %d samples"
                     % (pid, w["rss_kib_warmup_start"], w["rss_kib_first"],
                        w["rss_kib_last"], w["rss_growth_kib"], w["rss_kib_max"],
                        w["fds_first_half_min"], w["fds_second_half_max"],
                        w["fds_after"], w["samples"]))
    for p in rep["problems"]:
        lines.append("  PROBLEM: " + p)
    return "\n".join(lines)


# ---------------------------------------------------------------------------
# pytest


def test_soak(stack_factory):
    seconds = default_seconds()
    st = stack_factory(**SOAK_CONFIG)
    rep = Soak(st, seconds).run()
    print("\n" + format_report(rep))
    assert rep["ok"], "\n".join(rep["problems"])


# ---------------------------------------------------------------------------
# scripts/soak


def main(argv=None):
    ap = argparse.ArgumentParser(
        prog="scripts/soak",
        description="Run keygate under steady mixed traffic for SECONDS and check "
                    "that nothing leaks, fails or goes unaudited.")
    ap.add_argument("seconds", type=float, help="duration, warm-up included")
    ap.add_argument("--rate", type=float, default=20.0, help="requests/s in total (20)")
    ap.add_argument("--threads", type=int, default=2, help="client threads (2)")
    ap.add_argument("--workers", type=int, default=2, help="keygate workers (2)")
    ap.add_argument("--sample-every", type=float, default=None,
                    help="seconds between samples (2, or 5 above 60 s)")
    ap.add_argument("--seed", type=int, default=None, help="traffic mix seed")
    ap.add_argument("--json", action="store_true", help="print the report as JSON too")
    args = ap.parse_args(argv)

    workdir = kgharness.make_workdir("kg-soak-")
    pg = None
    kgf = ltf = None
    try:
        print("soak: PostgreSQL in %s" % workdir, file=sys.stderr, flush=True)
        pg = kgharness.PgCluster(workdir).init()
        r = kgharness.run_keygate(["migrate"], workdir, pg=pg)
        if r.returncode != 0:
            print("keygate migrate failed:\n%s%s" % (r.stdout, r.stderr), file=sys.stderr)
            return 2
        kgf = kgharness.KeygateFactory(workdir, pg)
        ltf = kgharness.LighttpdFactory(workdir)
        config = dict(SOAK_CONFIG, workers=args.workers)
        st = kgharness.start_stack(kgf, ltf, **config)
        print("soak: %d workers behind lighttpd at %s; %.0f s at %.0f requests/s"
              % (args.workers, st.base, args.seconds, args.rate), file=sys.stderr, flush=True)
        rep = Soak(st, args.seconds, rate=args.rate, threads=args.threads,
                   sample_every=args.sample_every, seed=args.seed).run()
        st.http.close()
        print(format_report(rep))
        if args.json:
            print(json.dumps(rep, indent=1, default=str))
        if not rep["ok"]:
            print("--- keygate log (end) ---\n%s" % kgharness.tail(st.kg.log_path, 4000),
                  file=sys.stderr, flush=True)
        return 0 if rep["ok"] else 1
    finally:
        if ltf is not None:
            ltf.cleanup()
        if kgf is not None:
            kgf.cleanup()
        if pg is not None:
            pg.cleanup()
        kgharness.remove_workdir(workdir)


if __name__ == "__main__":
    sys.exit(main())
