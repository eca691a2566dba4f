"""keygate check-config beyond syntax: a warning for a password in the
configuration, and --connect, which tries as the invoking user what keygate
will need (the database, its schema, the role's privileges, the socket's
folder), one line per finding, exit 0 / 1 / 2. And the CLI's words when it
is run as root without a PostgreSQL role, or when PostgreSQL is down."""

import os
import uuid

import pytest

import kgharness
from kgharness import run_keygate

WARNING = "warning: database: holds a password"


def check(kg_workdir, *args, **overrides):
    return kgharness.run_keygate(["check-config"] + list(args), kg_workdir,
                                 overrides=overrides)


def test_a_password_in_database_is_warned_about(kg_workdir):
    for dsn in ("host=db.example password=hunter2 dbname=keygate",
                "dbname=keygate password = 'x y'",
                "postgresql://keygate:hunter2@db.example/keygate"):
        r = check(kg_workdir, database=dsn)
        assert r.returncode == 0, r.stderr
        assert "is valid" in r.stdout and WARNING in r.stdout, (dsn, r.stdout)
        # The warning names the key, never the password.
        assert "hunter2" not in r.stdout + r.stderr
    for dsn in ("dbname=keygate passfile=/etc/keygate/pgpass",
                "postgresql://keygate@db.example/keygate", "dbname=keygate"):
        r = check(kg_workdir, database=dsn)
        assert r.returncode == 0 and WARNING not in r.stdout, (dsn, r.stdout)


def test_connect_reports_every_check_ok(pg, kg_workdir, tmp_path):
    r = check(kg_workdir, "--connect", database=pg.dsn, listen=str(tmp_path / "kg.sock"))
    assert r.returncode == 0, (r.stdout, r.stderr)
    lines = r.stdout.splitlines()
    assert lines[0].startswith("keygate: configuration") and "is valid" in lines[0]
    assert [l.split(":")[1].strip() for l in lines[1:]] == ["listen", "database", "database"]
    assert all(l.startswith("ok: ") for l in lines[1:]), lines
    # -v and --connect go together, in either order.
    r = check(kg_workdir, "--connect", "-v", database=pg.dsn, listen=str(tmp_path / "kg.sock"))
    assert r.returncode == 0 and "ok: database" in r.stdout, (r.stdout, r.stderr)


def test_connect_names_an_unmigrated_schema(pg, kg_workdir, tmp_path):
    with kgharness.scratch_database(pg, "cc") as db:
        r = check(kg_workdir, "--connect", database=pg.dsn_for(db),
                  listen=str(tmp_path / "kg.sock"))
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert "error: database: schema not migrated: run `keygate migrate`" in r.stdout


def test_connect_keeps_libpqs_hint_when_postgresql_is_down(kg_workdir, tmp_path):
    r = check(kg_workdir, "--connect", listen=str(tmp_path / "kg.sock"),
              database="host=127.0.0.1 port=%d dbname=keygate user=postgres "
              "connect_timeout=2" % kgharness.free_port())
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert "error: database: unreachable as this user" in r.stdout
    # libpq's second line, which says what to look at, is kept.
    assert "Is the server running on that host and accepting TCP/IP connections?" in r.stderr, \
        r.stderr


def test_connect_finds_a_missing_socket_folder(pg, kg_workdir, tmp_path):
    r = check(kg_workdir, "--connect", database=pg.dsn,
              listen=str(tmp_path / "absent" / "kg.sock"))
    # a warning only: a keygate given its socket never binds one
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert "warning: listen: folder %s: No such file or directory" % (tmp_path / "absent") \
        in r.stdout, r.stdout
    assert "ok: database" in r.stdout


def test_connect_finds_a_role_without_privileges(pg, kg_workdir, tmp_path):
    role = "kgro_%s" % uuid.uuid4().hex[:8]
    pg.query("CREATE ROLE %s LOGIN" % role)
    try:
        dsn = "host=%s port=%d dbname=keygate user=%s" % (pg.host, pg.port, role)
        r = check(kg_workdir, "--connect", database=dsn, listen=str(tmp_path / "kg.sock"))
        # Not even the schema's version is readable: PostgreSQL's reason is logged.
        assert r.returncode == 2, (r.stdout, r.stderr)
        assert "permission denied for table schema_migrations" in r.stderr, r.stderr
        pg.query("GRANT SELECT ON schema_migrations TO %s" % role)
        r = check(kg_workdir, "--connect", database=dsn, listen=str(tmp_path / "kg.sock"))
        assert r.returncode == 1, (r.stdout, r.stderr)
        line = [l for l in r.stdout.splitlines() if l.startswith("error: database")]
        assert line and "may not use" in line[0], r.stdout
        for t in ("table api_keys", "table auth_events", "table throttle", "table users"):
            assert t in line[0], line
        pg.query("GRANT SELECT, INSERT, UPDATE, DELETE ON users, api_keys, throttle,"
                 " auth_events TO %s" % role)
        r = check(kg_workdir, "--connect", database=dsn, listen=str(tmp_path / "kg.sock"))
        assert r.returncode == 0, (r.stdout, r.stderr)
    finally:
        pg.query("DROP OWNED BY %s" % role)
        pg.query("DROP ROLE %s" % role)


def test_the_cli_says_which_user_to_run_as(pg, kg_workdir):
    """As root, PostgreSQL has no role of that name: say how to run it."""
    r = kgharness.run_keygate(["user", "list"], kg_workdir,
                              overrides={"database": "host=%s port=%d dbname=keygate"
                                         % (pg.host, pg.port)})
    assert r.returncode == 2, (r.stdout, r.stderr)
    if os.geteuid() == 0:
        assert "run as the keygate user: runuser -u keygate -- keygate user" in r.stderr, \
            r.stderr
    else:
        assert "run as the keygate user" not in r.stderr, r.stderr


# ---------------------------------------------------------------------------
# syntax: the line of the error, the variable, the file


def _check(tmp_path, kg_workdir, text, name="keygate.conf"):
    path = tmp_path / name
    path.write_text(text)
    r = run_keygate(["check-config"], kg_workdir, config_path=str(path), timeout=30)
    return str(path), r


def test_check_config_accepts_a_valid_file(tmp_path, kg_workdir):
    _, r = _check(tmp_path, kg_workdir, "# ok\nworkers = 3\nlog_level = debug\n")
    assert r.returncode == 0, (r.stdout, r.stderr)


def test_check_config_unknown_key(tmp_path, kg_workdir):
    path, r = _check(tmp_path, kg_workdir, "# a comment\nworkers = 2\nno_such_key = 1\n")
    assert r.returncode != 0
    out = r.stdout + r.stderr
    assert path + ":3:" in out, out
    assert "no_such_key" in out, out


@pytest.mark.parametrize("line", ["workers = many", "workers = 0", "listen_mode = 999",
                                  "log_level = loud", "token_lifetime = 5x",
                                  "max_body = -1"])
def test_check_config_bad_value(tmp_path, kg_workdir, line):
    path, r = _check(tmp_path, kg_workdir, "[keygate]\n\n%s\n" % line)
    assert r.returncode != 0, (line, r.stdout, r.stderr)
    out = r.stdout + r.stderr
    assert path + ":3:" in out, out


def test_check_config_bad_environment_value(tmp_path, kg_workdir):
    path = tmp_path / "ok.conf"
    path.write_text("workers = 2\n")
    r = run_keygate(["check-config"], kg_workdir, config_path=str(path),
                    overrides={"workers": "lots"}, timeout=30)
    assert r.returncode != 0
    assert "KEYGATE_WORKERS" in r.stdout + r.stderr


def test_check_config_missing_file(tmp_path, kg_workdir):
    r = run_keygate(["check-config"], kg_workdir,
                    config_path=str(tmp_path / "absent.conf"), timeout=30)
    assert r.returncode != 0
    assert "absent.conf" in r.stdout + r.stderr


def test_check_config_shipped_file(kg_workdir):
    shipped = os.path.join(kgharness.REPO, "conf", "keygate.conf")
    r = run_keygate(["check-config"], kg_workdir, config_path=shipped, timeout=30)
    assert r.returncode == 0, (r.stdout, r.stderr)
