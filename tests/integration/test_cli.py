"""The administration command line: keygate user|token|events|prune.

Each subcommand is run as a real process against the session's PostgreSQL
(config from KEYGATE_* in the environment, as kgharness.keygate_env sets
it), its effect checked in the database and through a running keygate pool,
and every error exit checked: 1 with a one-line message for a usage or data
error, 2 when the database cannot be reached.
"""

import json
import os
import pty
import re
import select
import signal
import subprocess
import time
import uuid

import pytest

import kgharness

RELAXED = dict(login_max_failures=1000, login_max_per_address=1000000,
               join_max_per_address=1000000, log_level="warn")
USAGE_LINES = [
    "keygate user add NAME [--email E] [--password-stdin]",
    "keygate user passwd NAME [--password-stdin]",
    "keygate user disable NAME",
    "keygate user enable NAME",
    "keygate user list [--json]",
    "keygate user grant NAME SCOPE...",
    "keygate user ungrant NAME SCOPE...",
    "keygate token list NAME",
    "keygate token revoke NAME (--key KEY | --all)",
    "keygate events [--user NAME] [--since TIME] [--limit N]",
    "keygate prune",
]
EVENT_LINE = re.compile(r'^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ) (\S+)\s+user_id=(\S+) '
                        r'username=(\S+) ip=(\S+) ua="(.*)"$')
TS_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


# ---------------------------------------------------------------------------
# helpers


def uname(prefix="cli"):
    return "%s_%s" % (prefix, uuid.uuid4().hex[:14])


def pword():
    return "cli passphrase %s" % uuid.uuid4().hex[:20]


class Cli:
    """Runs `keygate -c <empty file> ARGS` with the test environment."""

    def __init__(self, pg, workdir):
        self.pg = pg
        self.ini = kgharness.write_ini(os.path.join(workdir, "cli-test.conf"), None)

    def __call__(self, *args, input=None, overrides=None, env=None, timeout=60):
        return subprocess.run([kgharness.KEYGATE_BIN, "-c", self.ini] + list(args),
                              input=input, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              env=kgharness.keygate_env(self.pg, overrides or {}, env),
                              universal_newlines=True, timeout=timeout,
                              start_new_session=True)     # no controlling terminal

    def ok(self, *args, **kw):
        r = self(*args, **kw)
        assert r.returncode == 0, (args, r.returncode, r.stdout, r.stderr)
        return r

    def fails(self, *args, **kw):
        """Exit 1 with exactly one line on stderr, starting 'keygate: '."""
        r = self(*args, **kw)
        assert r.returncode == 1, (args, r.returncode, r.stdout, r.stderr)
        lines = r.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("keygate: "), (args, r.stderr)
        return lines[0]

    def usage_error(self, *args, **kw):
        """Exit 1 for bad usage: a message or the usage text on stderr, nothing
        on stdout."""
        r = self(*args, **kw)
        assert r.returncode == 1, (args, r.returncode, r.stdout, r.stderr)
        assert r.stderr.strip(), args
        assert r.stdout == "", (args, r.stdout)
        return r.stderr

    def add(self, name=None, pw=None, email=None):
        name, pw = name or uname(), pw or pword()
        args = ["user", "add", name, "--password-stdin"]
        if email:
            args += ["--email", email]
        r = self.ok(*args, input=pw + "\n")
        m = re.match(r"^user (\S+) added with id (\d+)\n$", r.stdout)
        assert m and m.group(1) == name, r.stdout
        return name, pw, int(m.group(2))


@pytest.fixture(scope="module")
def cli(pg_session, kg_workdir):
    return Cli(pg_session, kg_workdir)


@pytest.fixture(scope="module")
def pool(pg_session, kg_workdir):
    """One keygate pool for the module, to see the CLI's effect on the API."""
    f = kgharness.KeygateFactory(kg_workdir, pg_session)
    try:
        yield f.start(workers=2, **RELAXED)
    finally:
        f.cleanup()


@pytest.fixture
def db(pg):
    return pg


def users_since(db, since=None):
    """With no `since`: the database's clock now. With one: how many users
    were made since then. The database is shared by the session: a
    whole-table count would also see what other tests do to it."""
    if since is None:
        return db.query("SELECT clock_timestamp()")[0][0]
    return db.query("SELECT count(*) FROM users WHERE created_at >= %s", (since,))[0][0]


def login(pool, name, pw, addr="127.0.0.1"):
    return pool.fcgi("POST", "/login", body={"username": name, "password": pw},
                     remote_addr=addr)


def token_for(pool, name, pw):
    r = login(pool, name, pw)
    assert r.status == 200, r
    return r.json()["token"]


def me(pool, token):
    return pool.fcgi("GET", "/me", headers={"Authorization": "Bearer " + token}).status


def dead_env():
    port = kgharness.free_port()               # nothing listens there
    return {"KEYGATE_DATABASE": "host=127.0.0.1 port=%d dbname=keygate user=postgres" % port,
            "KEYGATE_DB_CONNECT_TIMEOUT": "2"}


# ---------------------------------------------------------------------------
# --help


HELP_ARGS = [
    ["user", "--help"],
    ["user", "add", "--help"],
    ["user", "passwd", "--help"],
    ["user", "disable", "--help"],
    ["user", "enable", "--help"],
    ["user", "list", "--help"],
    ["token", "--help"],
    ["token", "list", "--help"],
    ["token", "revoke", "--help"],
    ["events", "--help"],
    ["prune", "--help"],
]


@pytest.mark.parametrize("args", HELP_ARGS, ids=lambda a: " ".join(a))
def test_help_on_each_subcommand(cli, args):
    r = cli(*args)
    assert r.returncode == 0, (r.returncode, r.stdout, r.stderr)
    assert r.stdout.startswith("usage:"), r.stdout
    # that command's own lines, not the others'
    own = "keygate " + " ".join(a for a in args if a != "--help")
    for line in USAGE_LINES:
        assert (line in r.stdout) == (line + " ").startswith(own + " "), (line, r.stdout)
    assert "Exit status" in r.stdout


@pytest.mark.parametrize("args", HELP_ARGS, ids=lambda a: " ".join(a))
def test_help_needs_no_database(cli, args):
    r = cli(*args, env=dead_env())
    assert r.returncode == 0, (r.returncode, r.stdout, r.stderr)
    assert r.stdout.startswith("usage:"), r.stdout


@pytest.mark.parametrize("args", [
    ["serve", "--help"], ["migrate", "--help"], ["check-config", "--help"],
    ["check-config", "-h"], ["check-config", "-v", "--help"], ["migrate", "-h"],
], ids=lambda a: " ".join(a))
def test_help_on_each_main_command(cli, args):
    """serve, migrate and check-config answer --help with their own usage,
    on stdout, exit 0, without touching the database or serving."""
    r = cli(*args, env=dead_env(), timeout=30)
    assert r.returncode == 0, (r.returncode, r.stdout, r.stderr)
    assert r.stdout.startswith("usage: keygate [-c file] %s" % args[0]), r.stdout
    others = {"serve", "migrate", "check-config"} - {args[0]}
    assert not [o for o in others if "] %s" % o in r.stdout], r.stdout
    assert r.stderr == "", r.stderr


@pytest.mark.parametrize("args", [
    ["migrate", "--bogus"], ["check-config", "-x"], ["check-config", "-v", "extra"],
    ["serve", "--nope"], ["migrate", "now"],
], ids=lambda a: " ".join(a))
def test_unknown_option_of_a_main_command(cli, args):
    err = cli.usage_error(*args, env=dead_env(), timeout=30)
    assert err.startswith("usage: keygate [-c file] %s" % args[0]), err


@pytest.mark.parametrize("flag", ["-h", "--help"])
def test_top_level_help(cli, flag):
    r = cli(flag)
    assert r.returncode == 0, (r.returncode, r.stdout, r.stderr)
    assert r.stdout.startswith("usage: keygate"), r.stdout
    for cmd in ("serve", "migrate", "check-config", "user", "token", "events", "prune"):
        assert cmd in r.stdout


@pytest.mark.parametrize("args", [
    ["frobnicate"], ["user"], ["user", "frobnicate"], ["token"], ["token", "frob", "x"],
    ["token", "list"], ["token", "revoke"],
], ids=lambda a: " ".join(a))
def test_unknown_or_incomplete_commands(cli, args):
    cli.usage_error(*args)


# ---------------------------------------------------------------------------
# user add


def test_user_add(cli, pool, db):
    name, pw = uname(), pword()
    email = name + "@example.org"
    name, pw, uid = cli.add(name, pw, email)
    row = db.query("SELECT username, email, disabled, password_hash FROM users WHERE id = %s",
                   (uid,))[0]
    assert row[:3] == (name, email, False)
    assert row[3].startswith("$argon2id$") and pw not in row[3]
    # The API accepts the account at once; the trailing newline is not part of it.
    assert me(pool, token_for(pool, name, pw)) == 200
    assert login(pool, name, pw + "\n").status == 401
    ev = db.query("SELECT event, user_id, username, ip, user_agent FROM auth_events"
                  " WHERE user_id = %s ORDER BY id", (uid,))
    assert ev[0] == ("join", uid, name, None, "keygate-cli"), ev


def test_user_add_without_email_and_crlf_line(cli, pool, db):
    name, pw = uname(), pword()
    r = cli.ok("user", "add", "--password-stdin", name, input=pw + "\r\n")
    uid = int(r.stdout.split()[-1])
    assert db.query("SELECT email FROM users WHERE id = %s", (uid,))[0][0] is None
    assert me(pool, token_for(pool, name, pw)) == 200


def test_user_add_refuses_what_the_api_refuses(cli, db):
    name, pw, _ = cli.add(email=None)
    email = uname() + "@example.org"
    cli.add(email=email)
    since = users_since(db)

    def add(n, p, *extra):
        return cli.fails("user", "add", n, "--password-stdin", *extra, input=p + "\n")

    assert add(uname(), "short") == "keygate: password: too_short"
    u = uname()
    assert add(u, "x" + u + "yz passphrase") == "keygate: password: contains_username"
    assert add(uname(), "basketball") == "keygate: password: too_short"
    assert cli.fails("user", "add", uname(), "--password-stdin", input="basketball\n",
                     overrides=dict(password_min_length=8)) == "keygate: password: too_common"
    assert add(uname(), "p" * 1025) == "keygate: password: too_long"
    assert add("a!", pword()) == "keygate: username: invalid"
    assert add("ab", pword()) == "keygate: username: invalid"
    assert add(uname(), pword(), "--email", "not-an-address") == "keygate: email: invalid"
    # Taken, in any case.
    assert "taken" in add(name, pword())
    assert "taken" in add(name.upper(), pword())
    assert "taken" in add(uname(), pword(), "--email", email.upper())
    assert users_since(db, since) == 0


def test_user_add_refuses_guessable_passwords(cli, db):
    # The API's zxcvbn floor holds for the command line too.
    before = db.query("SELECT count(*) FROM users")[0][0]
    for pw in ("passwordpassword", "qwertyuiopasdfgh", "keygatekeygate1234"):
        assert cli.fails("user", "add", uname(), "--password-stdin",
                         input=pw + "\n") == "keygate: password: too_guessable", pw
    assert db.query("SELECT count(*) FROM users")[0][0] == before


def test_user_add_usage_errors(cli, db):
    since = users_since(db)
    cli.usage_error("user", "add", "--password-stdin", input=pword() + "\n")
    cli.usage_error("user", "add", uname(), uname(), "--password-stdin", input=pword() + "\n")
    cli.usage_error("user", "add", uname(), "--bogus", "--password-stdin", input=pword() + "\n")
    cli.usage_error("user", "add", uname(), "--password-stdin", "--email")
    assert users_since(db, since) == 0


def test_user_add_without_a_terminal_or_password(cli, db):
    name = uname()
    # No --password-stdin and no terminal: refused, nothing read from stdin,
    # and the message spells out the command that works.
    err = cli.fails("user", "add", name, input=pword() + "\n")
    assert "no terminal" in err
    assert "| keygate user add %s --password-stdin" % name in err, err
    err = cli.fails("user", "passwd", name, input=pword() + "\n")
    assert "| keygate user passwd %s --password-stdin" % name in err, err
    # --password-stdin but nothing on stdin.
    cli.fails("user", "add", name, "--password-stdin", input="")
    assert db.query("SELECT count(*) FROM users WHERE username = %s", (name,))[0][0] == 0


def on_terminal(argv, env, answer, timeout=30):
    """argv on a new terminal; answer each password prompt the moment it
    shows, as a script driving the terminal would. (output, exit status)."""
    pid, fd = pty.fork()
    if pid == 0:
        os.execve(argv[0], argv, env)
    out, answered = b"", 0
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            r, _, _ = select.select([fd], [], [], 0.5)
            if not r:
                continue
            try:
                chunk = os.read(fd, 4096)
            except OSError:          # EIO: the command is done with the terminal
                break
            if not chunk:
                break
            out += chunk
            prompts = out.count(b"New password: ") + out.count(b"Repeat it: ")
            if prompts > answered:
                os.write(fd, answer.encode() + b"\n")
                answered = prompts
        else:
            os.kill(pid, signal.SIGKILL)
            raise AssertionError("no answer after %d s, the answer lost: %r" % (timeout, out))
    finally:
        os.close(fd)
    _, status = os.waitpid(pid, 0)
    return out.decode(errors="replace"), os.WEXITSTATUS(status)


def test_password_prompt_takes_an_answer_sent_as_it_shows(cli, db):
    """The prompt is written only once echo is off: an answer sent the
    moment the prompt shows is read, never flushed away with the earlier
    typeahead (which had a driven terminal wait forever, one run in a few)."""
    env = kgharness.keygate_env(cli.pg, {}, None)
    for _ in range(15):
        name = uname()
        out, rc = on_terminal([kgharness.KEYGATE_BIN, "-c", cli.ini, "user", "add", name],
                              env, pword())
        assert rc == 0 and "user %s added" % name in out, out
        assert "passphrase" not in out           # echo was off
    assert db.query("SELECT count(*) FROM users WHERE username = %s", (name,))[0][0] == 1


# ---------------------------------------------------------------------------
# user passwd


def test_user_passwd(cli, pool, db):
    name, old, uid = cli.add()
    t1, t2 = token_for(pool, name, old), token_for(pool, name, old)
    new = pword()
    r = cli.ok("user", "passwd", name, "--password-stdin", input=new + "\n")
    assert r.stdout == "password of %s changed; 2 token(s) revoked\n" % name
    assert me(pool, t1) == 401 and me(pool, t2) == 401
    assert login(pool, name, old).status == 401
    assert me(pool, token_for(pool, name, new)) == 200
    # The username in any case names the account.
    newer = pword()
    cli.ok("user", "passwd", "--password-stdin", name.upper(), input=newer + "\n")
    assert login(pool, name, newer).status == 200
    events = [e[0] for e in db.query("SELECT event FROM auth_events WHERE user_id = %s"
                                     " ORDER BY id", (uid,))]
    assert events.count("password_changed") == 2


def test_user_passwd_errors(cli, pool, db):
    name, pw, uid = cli.add()
    token = token_for(pool, name, pw)
    h = db.query("SELECT password_hash FROM users WHERE id = %s", (uid,))[0][0]
    assert cli.fails("user", "passwd", name, "--password-stdin",
                     input="short\n") == "keygate: password: too_short"
    assert cli.fails("user", "passwd", name, "--password-stdin",
                     input="my %s passphrase\n" % name) == "keygate: password: contains_username"
    ghost = uname("ghost")
    assert cli.fails("user", "passwd", ghost, "--password-stdin",
                     input=pword() + "\n") == "keygate: no such user: %s" % ghost
    assert "terminal" in cli.fails("user", "passwd", name, input=pword() + "\n")
    cli.usage_error("user", "passwd", "--password-stdin", input=pword() + "\n")
    cli.usage_error("user", "passwd", name, name, "--password-stdin", input=pword() + "\n")
    cli.usage_error("user", "passwd", name, "--bogus", input=pword() + "\n")
    # Nothing changed.
    assert db.query("SELECT password_hash FROM users WHERE id = %s", (uid,))[0][0] == h
    assert me(pool, token) == 200


# ---------------------------------------------------------------------------
# user disable / enable / list


def test_user_disable_and_enable(cli, pool, db):
    name, pw, uid = cli.add()
    token = token_for(pool, name, pw)
    r = cli.ok("user", "disable", name)
    assert r.stdout == "user %s disabled\n" % name
    assert db.query("SELECT disabled FROM users WHERE id = %s", (uid,))[0][0] is True
    assert me(pool, token) == 401
    assert login(pool, name, pw).status == 401
    # Disabling twice is not an error; the name in any case works.
    cli.ok("user", "disable", name.upper())
    r = cli.ok("user", "enable", name)
    assert r.stdout == "user %s enabled\n" % name
    assert db.query("SELECT disabled FROM users WHERE id = %s", (uid,))[0][0] is False
    assert me(pool, token_for(pool, name, pw)) == 200


@pytest.mark.parametrize("verb", ["disable", "enable"])
def test_user_disable_enable_errors(cli, verb):
    ghost = uname("ghost")
    assert cli.fails("user", verb, ghost) == "keygate: no such user: %s" % ghost
    cli.usage_error("user", verb)
    cli.usage_error("user", verb, uname(), uname())
    cli.usage_error("user", verb, "--bogus")


def test_user_list(cli, pool, db):
    name, pw, uid = cli.add(email=None)
    other, opw, oid = cli.add(email=uname() + "@example.org")
    token_for(pool, name, pw)
    token_for(pool, name, pw)
    cli.ok("user", "disable", other)

    r = cli.ok("user", "list")
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["ID", "USERNAME", "EMAIL", "STATE", "CREATED", "TOKENS",
                                "GRANTED"]
    rows = {l.split()[1]: l.split() for l in lines[1:]}
    assert rows[name][0] == str(uid)
    assert rows[name][2:4] == ["-", "active"]
    assert TS_RE.match(rows[name][4]) and rows[name][5] == "2" and rows[name][6] == "*"
    assert rows[other][2:4] == [other_email(db, oid), "disabled"] and rows[other][5] == "0"

    r = cli.ok("user", "list", "--json")
    data = json.loads(r.stdout)
    assert isinstance(data, list)
    byname = {u["username"]: u for u in data}
    assert byname[name] == {"id": uid, "username": name, "email": None, "disabled": False,
                            "created_at": byname[name]["created_at"], "tokens": 2,
                            "granted_scopes": ["*"]}
    assert TS_RE.match(byname[name]["created_at"])
    assert byname[other]["disabled"] is True and byname[other]["email"] == other_email(db, oid)
    # every user, whatever other tests left in the shared table: the same ids
    # as the table's, read after the listing (nothing runs alongside a test)
    assert sorted(u["id"] for u in data) == [r[0] for r in
                                             db.query("SELECT id FROM users ORDER BY id")]
    # No password hash, ever.
    assert "$argon2" not in r.stdout

    cli.usage_error("user", "list", "--bogus")
    cli.usage_error("user", "list", "--json", "--json")


def other_email(db, uid):
    return db.query("SELECT email FROM users WHERE id = %s", (uid,))[0][0]


# ---------------------------------------------------------------------------
# token list / revoke


def test_token_list(cli, pool, db):
    name, pw, uid = cli.add()
    r = cli.ok("token", "list", name)
    assert r.stdout.splitlines() == [r.stdout.splitlines()[0]]       # header only
    assert r.stdout.split() == ["KEY", "KIND", "NAME", "CREATED", "LAST", "USED", "EXPIRES",
                                "IP"]
    tokens = [token_for(pool, name, pw) for _ in range(3)]
    lines = cli.ok("token", "list", name.upper()).stdout.splitlines()
    keys = {l.split()[0] for l in lines[1:]}
    assert keys == {t.split(".")[0] for t in tokens}
    for l in lines[1:]:
        f = l.split()
        assert f[1:3] == ["session", "-"], l
        assert all(TS_RE.match(x) for x in f[3:6]), l
        assert f[6] == "127.0.0.1", l
    # Secrets are never shown (keygate does not have them).
    out = "\n".join(lines)
    assert not [t for t in tokens if t.split(".")[1] in out]
    ghost = uname("ghost")
    assert cli.fails("token", "list", ghost) == "keygate: no such user: %s" % ghost
    cli.usage_error("token", "list")
    cli.usage_error("token", "list", name, "extra")


def test_token_revoke(cli, pool, db):
    name, pw, uid = cli.add()
    other, opw, _ = cli.add()
    t1, t2, t3 = (token_for(pool, name, pw) for _ in range(3))
    ot = token_for(pool, other, opw)
    k1 = t1.split(".")[0]

    r = cli.ok("token", "revoke", name, "--key", k1)
    assert r.stdout == "token %s of %s revoked\n" % (k1, name)
    assert me(pool, t1) == 401 and me(pool, t2) == 200
    assert cli.fails("token", "revoke", name, "--key", k1) == \
        "keygate: %s has no token %s" % (name, k1)
    # Another user's key is not this user's token: nothing happens to it.
    ok_ = ot.split(".")[0]
    assert cli.fails("token", "revoke", name, "--key", ok_) == \
        "keygate: %s has no token %s" % (name, ok_)
    assert me(pool, ot) == 200
    cli.fails("token", "revoke", name, "--key", "not-a-key")
    ghost = uname("ghost")
    assert cli.fails("token", "revoke", ghost, "--all") == "keygate: no such user: %s" % ghost

    r = cli.ok("token", "revoke", name, "--all")
    assert r.stdout == "2 token(s) of %s revoked\n" % name
    assert me(pool, t2) == 401 and me(pool, t3) == 401 and me(pool, ot) == 200
    r = cli.ok("token", "revoke", name, "--all")
    assert r.stdout == "0 token(s) of %s revoked\n" % name
    ev = [e[0] for e in db.query("SELECT event FROM auth_events WHERE user_id = %s"
                                 " ORDER BY id", (uid,))]
    assert ev.count("token_revoked") == 2, ev     # one per revoking command that revoked

    cli.usage_error("token", "revoke", name)
    cli.usage_error("token", "revoke", name, "--key")
    cli.usage_error("token", "revoke", name, "--all", "--key", k1)
    cli.usage_error("token", "revoke", name, "--bogus")


# ---------------------------------------------------------------------------
# events


def test_events(cli, pool, db):
    name, pw, uid = cli.add()
    token_for(pool, name, pw)
    assert login(pool, name, "wrong password", addr="192.0.2.77").status == 401
    cli.ok("user", "disable", name)
    cli.ok("user", "enable", name)
    expected = db.query("SELECT event, coalesce(ip, '-') FROM auth_events"
                        " WHERE lower(username) = lower(%s) ORDER BY id", (name,))
    assert [e[0] for e in expected] == ["join", "login_ok", "login_failed", "user_disabled",
                                        "user_enabled"]

    lines = cli.ok("events", "--user", name.upper()).stdout.splitlines()
    parsed = [EVENT_LINE.match(l) for l in lines]
    assert all(parsed), lines
    assert [(m.group(2), m.group(5)) for m in parsed] == [tuple(e) for e in expected]
    assert {m.group(3) for m in parsed} == {str(uid)}
    assert {m.group(4) for m in parsed} == {name}
    assert parsed[0].group(6) == "keygate-cli" and parsed[2].group(5) == "192.0.2.77"

    assert len(cli.ok("events", "--user", name, "--limit", "2").stdout.splitlines()) == 2
    # --since: events at or after that time.
    at = db.query("SELECT at FROM auth_events WHERE lower(username) = lower(%s)"
                  " AND event = 'user_disabled'", (name,))[0][0]
    since = cli.ok("events", "--user", name, "--since", at.isoformat()).stdout.splitlines()
    assert [EVENT_LINE.match(l).group(2) for l in since] == ["user_disabled", "user_enabled"]
    assert cli.ok("events", "--user", name, "--since", "2999-01-01").stdout == ""
    assert cli.ok("events", "--user", uname("nobody")).stdout == ""
    r = cli.ok("events", "--limit", "5")
    assert len(r.stdout.splitlines()) == 5 and all(EVENT_LINE.match(l)
                                                   for l in r.stdout.splitlines())

    cli.usage_error("events", "--limit", "0")
    cli.usage_error("events", "--limit", "-1")
    cli.usage_error("events", "--limit", "abc")
    cli.usage_error("events", "--user")
    cli.usage_error("events", "extra")
    cli.usage_error("events", "--bogus")


def test_events_since_not_a_time(cli):
    assert "--since" in cli.fails("events", "--since", "not a time")


# ---------------------------------------------------------------------------
# prune


def test_prune(cli, pool, db):
    name, pw, uid = cli.add()
    live, expired, idle = (token_for(pool, name, pw).split(".")[0] for _ in range(3))
    db.query("UPDATE api_keys SET expires_at = now() - interval '1 second' WHERE key = %s",
             (expired,))
    db.query("UPDATE api_keys SET last_used_at = now() - interval '1 hour' WHERE key = %s",
             (idle,))        # idle timeout 30m
    tag = uuid.uuid4().hex[:10]
    db.query("INSERT INTO throttle (scope, subject, attempts, window_start, blocked_until)"
             " VALUES ('user', %s, 3, now() - interval '2 hours', NULL),"
             "        ('user', %s, 9, now() - interval '2 hours', now() + interval '1 hour'),"
             "        ('addr', %s, 1, now(), NULL)",
             ("old-" + tag, "blocked-" + tag, "new-" + tag))
    db.query("INSERT INTO auth_events (at, event, username) VALUES"
             " (now() - interval '91 days', 'login_failed', %s),"
             " (now() - interval '89 days', 'login_failed', %s),"
             " (now() - interval '2 days', 'login_failed', %s)",
             ("ev91-" + tag, "ev89-" + tag, "ev2-" + tag))

    r = cli.ok("prune")
    m = re.match(r"^pruned (\d+) expired token\(s\), (\d+) throttle row\(s\), "
                 r"(\d+) old event\(s\)\n$", r.stdout)
    assert m, r.stdout
    assert int(m.group(1)) >= 2 and int(m.group(2)) >= 1 and int(m.group(3)) >= 1

    keys = {k for (k,) in db.query("SELECT key FROM api_keys WHERE user_id = %s", (uid,))}
    assert keys == {live}
    subjects = {s for (s,) in db.query("SELECT subject FROM throttle WHERE subject LIKE %s",
                                       ("%-" + tag,))}
    assert subjects == {"blocked-" + tag, "new-" + tag}
    names = {n for (n,) in db.query("SELECT username FROM auth_events WHERE username LIKE %s",
                                    ("%-" + tag,))}
    assert names == {"ev89-" + tag, "ev2-" + tag}

    # A shorter retention takes more; below a day is refused as a config error.
    cli.ok("prune", overrides=dict(audit_retention="1d"))
    names = {n for (n,) in db.query("SELECT username FROM auth_events WHERE username LIKE %s",
                                    ("%-" + tag,))}
    assert names == set()
    r = cli("prune", overrides=dict(audit_retention="1h"))
    assert r.returncode == 1 and "audit_retention" in r.stderr.lower(), r
    # Live tokens are untouched.
    assert me(pool, token_for(pool, name, pw)) == 200
    cli.usage_error("prune", "extra")


# ---------------------------------------------------------------------------
# the database cannot be reached: exit 2


DB_COMMANDS = [
    (["user", "add", "u_dead_db", "--password-stdin"], "a long enough passphrase\n"),
    (["user", "passwd", "u_dead_db", "--password-stdin"], "a long enough passphrase\n"),
    (["user", "disable", "u_dead_db"], None),
    (["user", "enable", "u_dead_db"], None),
    (["user", "list"], None),
    (["user", "list", "--json"], None),
    (["token", "list", "u_dead_db"], None),
    (["token", "revoke", "u_dead_db", "--all"], None),
    (["token", "revoke", "u_dead_db", "--key", "kg_1_AAAAAAAAAAAAAAAAAAAAAA"], None),
    (["events"], None),
    (["events", "--user", "u_dead_db", "--since", "2020-01-01"], None),
    (["prune"], None),
]


@pytest.mark.parametrize("args,stdin", DB_COMMANDS, ids=lambda a: " ".join(a or []))
def test_database_unreachable_exits_2(cli, args, stdin):
    r = cli(*args, input=stdin, env=dead_env(), timeout=30)
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert r.stdout == ""
    last = r.stderr.splitlines()[-1]
    assert re.match(r"^keygate: \S+: database unreachable$", last), r.stderr


def test_migrate_database_unreachable_exits_2(cli):
    r = cli("migrate", env=dead_env(), timeout=30)
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
