"""pytest fixtures for keygate's integration tests.

Real servers in a temporary directory under /tmp, cleaned up also when a
test fails (process groups killed, PostgreSQL stopped). The classes behind
the fixtures live in kgharness.py (importable from tests: `import kgharness`),
whose docstrings are the detailed reference.

Fixtures
--------
pg              (function scope; one cluster per session underneath)
                A PostgreSQL 15 cluster, migrated once per session with
                `keygate migrate`. Attributes/methods:
                  .host ('127.0.0.1'), .port, .sockdir, .dsn (libpq conninfo
                  of database keygate), .dsn_for(dbname)
                  .connect(dbname=None) -> psycopg2 connection, autocommit
                  .query(sql, args=None) -> list of rows
                  .stop(mode='fast'), .start(), .restart(mode='fast'),
                  .running(), .reset() (truncate all but schema_migrations),
                  .log()
                A test may stop it: it is started again after the test.
                Data is NOT reset between tests; call pg.reset() if needed.
pg_session      (session scope) the same object, without the restart guard.
kg_workdir      (session scope) the temporary directory (str).

keygate         (function scope) factory:
                  keygate.start(workers=2, config=None, env=None, args=(),
                                wait=True, listen_socket=None,
                                listen_fds=False, **overrides) -> Keygate
                Every config key can be passed as an override and becomes
                KEYGATE_<KEY> (e.g. start(workers=1, status_allow="10.0.0.0/8");
                None unsets). By default it listens on its own unix socket
                and uses pg's database, the repo's db/migrations and
                data/common-passwords.txt, log_target=stderr; config=
                gives the contents of its -c INI file (str or dict).
                start() returns when the pool answers and all workers are up.
                Keygate: .socket, .address, .proc (Popen of the master),
                  .pid, .conf_path, .log_path, .worker_pids(), .log(),
                  .signal(sig), .wait(timeout), .stop(sig=SIGTERM,
                  timeout=20) -> exit status, .kill(), .alive(),
                  .wait_workers(n=None, timeout=15, exclude=()),
                  .fcgi(method='GET', path='/health', headers=None, body=b'',
                        remote_addr='127.0.0.1', ...) -> FCGIResponse
                All pools started by the factory stop after the test.

lighttpd        (function scope) factory:
                  lighttpd.start(socket_path_or_Keygate, port=None,
                                 extra_conf='') -> Lighttpd
                /usr/sbin/lighttpd -D on 127.0.0.1:<free port> with a config
                that includes conf/lighttpd/keygate.conf, socket substituted.
                Lighttpd: .base_url ('http://127.0.0.1:PORT/api'), .url,
                  .port, .log(), .stop()

stack           (module scope) pg + keygate pool (workers=2) + lighttpd:
                  .base ('http://127.0.0.1:PORT/api'), .kg (Keygate), .pg,
                  .lighttpd/.lt, .http/.session (requests.Session),
                  .url(path), .get(path, **kw), .post(path, **kw),
                  .put/.patch/.delete/.request(method, path, **kw)
                  (10 s default timeout)
                Shared by the tests of one module: do not kill or reconfigure
                it; use stack_factory/make_stack for that.
stack_factory   (function scope) stack_factory(**overrides) -> Stack with a
                private pool started as keygate.start(**overrides); stopped
                after the test.
make_stack      (function scope) make_stack(**overrides) -> context manager:
                  with make_stack(workers=1, token_lifetime=5) as s: ...
                the stack is torn down when the block ends.
fresh_throttle  (function scope) no throttle rows before and after the test.
servers         (module scope) webservers.WebServers: .lighttpd(snippets, ...),
                .apache(snippets, modules, ...); stopped after the module.
fresh_servers   (function scope) the same, stopped after the test.

Credentials: every test starts with an empty record (credentials.py); what
it note()s must not appear, after the test passed, in the log of a keygate
pool it started or of a log its fixtures watch() (per test, so no test
depends on what ran before it).

Also importable: kgharness.fcgi_request(address, method, uri, ...),
kgharness.FCGIConnection (send a request piece by piece),
kgharness.RequestLoop (threads firing requests), kgharness.run_keygate(
args, workdir, pg=..., config=..., overrides=...) (keygate migrate,
check-config ...), kgharness.wait_until(pred, timeout).

Markers: @pytest.mark.long -- run only with KG_LONG=1 (scripts/test --long).

Skips: with KG_STRICT_SKIPS=1 (scripts/test, scripts/check-sanitizers) the
run fails when a test skips that skip-allowlist.txt does not allow in this
kind of run (--long or not, sanitizers or not, root or not).

On failure the end of every involved log (keygate, lighttpd, PostgreSQL) is
printed with the test report. KG_KEEP=1 keeps the temporary directory.
"""

import fnmatch
import os

import pytest

import credentials
import kgharness


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "long: slow test, runs only with KG_LONG=1 (scripts/test --long)")


def pytest_collection_modifyitems(config, items):
    if os.environ.get("KG_LONG") == "1":
        return
    skip = pytest.mark.skip(reason="long test: run scripts/test --long (KG_LONG=1)")
    for item in items:
        if "long" in item.keywords:
            item.add_marker(skip)


SKIP_ALLOWLIST = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                              "skip-allowlist.txt")
_skipped = []       # (node id, reason) of every skipped test of this session


def skip_contexts():
    """The kinds of run this one is, as named in skip-allowlist.txt."""
    ctx = set()
    if os.environ.get("KG_SANITIZERS") == "1":
        ctx.add("sanitizers")
    if os.geteuid() != 0:
        ctx.add("nonroot")
    return ctx


def read_skip_allowlist(path=SKIP_ALLOWLIST):
    """[(node id pattern, when, why)] from skip-allowlist.txt."""
    entries = []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            parts = line.split(None, 2)
            if len(parts) < 3 or parts[1] not in ("sanitizers", "nonroot"):
                raise ValueError("%s:%d: want: TEST-ID WHEN WHY" % (path, n))
            entries.append(tuple(parts))
    return entries


def disallowed_skips(skipped, entries, contexts):
    """The (node id, reason) pairs of `skipped` no entry allows in `contexts`."""
    return [(nodeid, reason) for nodeid, reason in skipped
            if not any(fnmatch.fnmatchcase(nodeid, pat) and when in contexts
                       for pat, when, _why in entries)]


def pytest_runtest_logreport(report):
    # Tests marked long are skipped unless --long: allowed, not listed.
    if report.skipped and not hasattr(report, "wasxfail") and not (
            "long" in report.keywords and os.environ.get("KG_LONG") != "1"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        _skipped.append((report.nodeid, reason))


def pytest_collectreport(report):
    # a module-level skip skips every test of the module at collection
    if report.skipped:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        _skipped.append((report.nodeid, reason))


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session, exitstatus):
    if os.environ.get("KG_STRICT_SKIPS") != "1":
        return
    bad = disallowed_skips(_skipped, read_skip_allowlist(), skip_contexts())
    if not bad:
        return
    tr = session.config.pluginmanager.get_plugin("terminalreporter")
    lines = ["", "KG_STRICT_SKIPS: %d skipped test(s) that %s does not allow in this run "
             "(%s):" % (len(bad), os.path.basename(SKIP_ALLOWLIST),
                        ", ".join(sorted(skip_contexts())) or "root, no sanitizers")]
    lines += ["  SKIPPED %s: %s" % (nodeid, reason) for nodeid, reason in bad]
    for line in lines:
        if tr is not None:
            tr.write_line(line, red=True)
        else:
            print(line)
    if session.exitstatus == 0:
        session.exitstatus = 1


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


@pytest.fixture(autouse=True)
def _loopback_not_throttled(request):
    """Every test starts with no throttle on the loopback addresses.

    The session's tests share one database, and most of them log in from
    127.0.0.1 (lighttpd, Apache, the FastCGI client): failed logins of one
    test (a timing test makes hundreds) would otherwise count towards the
    per-address limit of the next, and a block set under a test's small
    limit outlives it by login_failure_window. Tests of the address rules
    use addresses of their own.
    """
    if "pg_session" in request.fixturenames:
        pg = request.getfixturevalue("pg_session")
        if pg.running() and pg.query("SELECT to_regclass('throttle') IS NOT NULL")[0][0]:
            # (::1 is counted as its network, ::/64: throttle_ipv6_prefix)
            pg.query("DELETE FROM throttle WHERE scope IN ('addr', 'join')"
                     " AND subject IN ('127.0.0.1', '::1', '::/64')")
    yield


@pytest.fixture(autouse=True)
def _credentials_stay_out_of_logs(request):
    """Each test starts with nothing noted (credentials.py); after a test
    that passed, none of what it noted is in the log of a keygate pool it
    started or of a server its fixtures watch."""
    credentials.reset()
    mark = len(kgharness._created)
    yield
    rep = getattr(request.node, "rep_call", None)
    if rep is None or not rep.passed:
        return
    pools = [o for o in kgharness._created[mark:] if isinstance(o, kgharness.Keygate)]
    found = credentials.leaks(pools)
    assert not found, "credentials in logs: %r" % found[:5]


@pytest.fixture
def fresh_throttle(pg):
    """No throttle rows at all before and after the test: for tests of the
    limits themselves, whose small limits any leftover attempt would meet."""
    pg.query("DELETE FROM throttle")
    yield
    if pg.running():
        pg.query("DELETE FROM throttle")


@pytest.fixture(autouse=True)
def _logs_on_failure(request):
    """Print the end of every log involved when a test fails."""
    mark = len(kgharness._created)
    yield
    rep = getattr(request.node, "rep_call", None)
    setup = getattr(request.node, "rep_setup", None)
    if (rep is not None and rep.failed) or (setup is not None and setup.failed):
        objs = list(dict.fromkeys(kgharness._created[mark:] + list(kgharness._live)))
        text = kgharness.log_tails(objs)
        if text:
            print("\n==== server logs ====\n" + text)


@pytest.fixture(scope="session")
def kg_workdir():
    d = kgharness.make_workdir()
    yield d
    kgharness.remove_workdir(d)


@pytest.fixture(scope="session")
def pg_session(kg_workdir):
    cluster = kgharness.PgCluster(kg_workdir)
    try:
        cluster.init()
        if os.environ.get("KG_NO_MIGRATE") != "1":
            if not os.access(kgharness.KEYGATE_BIN, os.X_OK):
                pytest.fail("keygate binary %s not built" % kgharness.KEYGATE_BIN)
            r = kgharness.run_keygate(["migrate"], kg_workdir, pg=cluster)
            if r.returncode != 0:
                pytest.fail("keygate migrate failed (%d):\n%s%s"
                            % (r.returncode, r.stdout, r.stderr))
        yield cluster
    finally:
        cluster.cleanup()


@pytest.fixture
def pg(pg_session):
    yield pg_session
    if not pg_session.running():
        pg_session.start()


@pytest.fixture
def keygate(pg_session, kg_workdir):
    f = kgharness.KeygateFactory(kg_workdir, pg_session)
    yield f
    f.cleanup()


@pytest.fixture
def lighttpd(kg_workdir):
    f = kgharness.LighttpdFactory(kg_workdir)
    yield f
    f.cleanup()


@pytest.fixture(scope="module")
def stack(pg_session, kg_workdir):
    with kgharness.stack_context(pg_session, kg_workdir) as s:
        yield s


@pytest.fixture
def stack_factory(pg, kg_workdir):
    kgf = kgharness.KeygateFactory(kg_workdir, pg)
    ltf = kgharness.LighttpdFactory(kg_workdir)
    stacks = []

    def start(**overrides):
        s = kgharness.start_stack(kgf, ltf, **overrides)
        stacks.append(s)
        return s
    yield start
    for s in stacks:
        s.http.close()
    ltf.cleanup()
    kgf.cleanup()


@pytest.fixture(scope="module")
def servers(kg_workdir):
    """webservers.WebServers for the module: lighttpd and Apache instances
    its tests share; all stopped after the module."""
    import webservers
    f = webservers.WebServers(kg_workdir)
    yield f
    f.cleanup()


@pytest.fixture
def fresh_servers(kg_workdir):
    """webservers.WebServers for one test, stopped after it."""
    import webservers
    f = webservers.WebServers(kg_workdir)
    yield f
    f.cleanup()


@pytest.fixture
def make_stack(pg, kg_workdir):
    def make(**overrides):
        return kgharness.stack_context(pg, kg_workdir, **overrides)
    return make
