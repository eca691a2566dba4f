"""Migrations: `keygate migrate` applies db/migrations/*.sql once, also when
run three times at once on a fresh database, and fails cleanly without one;
a database it has not brought up to date is named as such: in the server's
log (its requests get 503, as while the database is down) and by every
command of the CLI, instead of "database unreachable" or a missing
relation."""

import glob
import os
import re
import subprocess
import uuid

import kgharness
from kgharness import run_keygate, wait_until

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
HINT = "schema not migrated: run `keygate migrate`"
PASSWORD = "schema check passphrase 3317"


def newest_migration():
    files = sorted(os.path.basename(f)
                   for f in glob.glob(os.path.join(ROOT, "db", "migrations", "*.sql")))
    return files[-1][:4]


def test_the_build_needs_the_newest_migration():
    """DB_SCHEMA_VERSION follows db/migrations: a new migration without it
    would let a keygate start on a schema its statements do not fit."""
    with open(os.path.join(ROOT, "src", "db.h")) as f:
        m = re.search(r'#define DB_SCHEMA_VERSION "(\d{4})"', f.read())
    assert m and m.group(1) == newest_migration(), (m and m.group(1), newest_migration())


def test_an_unmigrated_database_is_named_in_the_log_and_the_cli(keygate, pg, kg_workdir):
    with kgharness.scratch_database(pg, "sch") as db:
        dsn = pg.dsn_for(db)
        kg = keygate.start(workers=2, database=dsn, db_retry_max=1)
        r = kg.fcgi("GET", "/health")
        assert r.status == 503, r.text
        assert r.json()["error"] == "unavailable"
        assert "Retry-After" in dict(r.headers)
        wait_until(lambda: HINT in kg.log(), timeout=20, what="the schema hint in the log")
        assert "(the database is at none, this keygate needs %s)" % newest_migration() in kg.log()
        assert "database not reachable yet" not in kg.log()
        for args in (["user", "list"], ["events"], ["prune"], ["token", "list", "nobody"]):
            c = kgharness.run_keygate(args, kg_workdir, overrides={"database": dsn})
            assert c.returncode == 2, (args, c.stdout, c.stderr)
            assert HINT in c.stderr, (args, c.stderr)
            assert "unreachable" not in c.stderr, (args, c.stderr)
        # Migrating is all it takes: the pool serves without a restart.
        m = kgharness.run_keygate(["migrate"], kg_workdir, overrides={"database": dsn})
        assert m.returncode == 0, m.stderr
        wait_until(lambda: kg.fcgi("GET", "/health").status == 200, timeout=20,
                   what="/health once migrated")
        r = kg.fcgi("POST", "/join", body={"username": "s" + uuid.uuid4().hex[:10],
                                           "password": PASSWORD})
        assert r.status == 201, r.text
        kg.stop()


def test_an_outdated_schema_is_named_with_its_version(pg, kg_workdir):
    with kgharness.scratch_database(pg, "sch") as db:
        dsn = pg.dsn_for(db)
        m = kgharness.run_keygate(["migrate"], kg_workdir, overrides={"database": dsn})
        assert m.returncode == 0, m.stderr
        newest = newest_migration()
        pg.query("DELETE FROM schema_migrations WHERE version = %s", (newest,), dbname=db)
        c = kgharness.run_keygate(["user", "list"], kg_workdir, overrides={"database": dsn})
        assert c.returncode == 2, (c.stdout, c.stderr)
        assert HINT in c.stderr
        assert "this keygate needs %s" % newest in c.stderr
        before = "%04d" % (int(newest) - 1)
        assert "the database is at %s" % before in c.stderr, c.stderr


def test_a_database_that_is_down_is_still_called_unreachable(kg_workdir):
    c = kgharness.run_keygate(
        ["user", "list"], kg_workdir,
        overrides={"database": "host=127.0.0.1 port=%d dbname=keygate user=postgres "
                   "connect_timeout=2" % kgharness.free_port()})
    assert c.returncode == 2, (c.stdout, c.stderr)
    assert "database unreachable" in c.stderr and HINT not in c.stderr, c.stderr


def schema_versions(pg, dbname=None):
    return pg.query("SELECT version FROM schema_migrations ORDER BY 1", dbname=dbname)


def migration_files():
    return sorted(glob.glob(os.path.join(kgharness.MIGRATIONS_DIR, "*.sql")))


# ---------------------------------------------------------------------------
# keygate migrate: idempotent, safe when run concurrently, clean without a database


def test_migrate_is_idempotent(pg, kg_workdir):
    files = migration_files()
    assert files, "no db/migrations/*.sql"
    before = schema_versions(pg)
    assert len(before) == len(files), (before, files)
    r = run_keygate(["migrate"], kg_workdir, pg=pg)
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert schema_versions(pg) == before


def test_concurrent_migrate_on_a_fresh_database(pg, kg_workdir):
    db = "mig_%s" % uuid.uuid4().hex[:12]
    pg.query("CREATE DATABASE %s" % db, dbname="postgres")
    try:
        env = kgharness.keygate_env(overrides={"database": pg.dsn_for(db)})
        ini = kgharness.write_ini(os.path.join(kg_workdir, db + ".conf"), None)
        procs = [subprocess.Popen([kgharness.KEYGATE_BIN, "-c", ini, "migrate"],
                                  env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT)
                 for _ in range(3)]
        outs = []
        for p in procs:
            out, _ = p.communicate(timeout=60)
            outs.append((p.returncode, out.decode("utf-8", "replace")))
        assert all(rc == 0 for rc, _ in outs), outs
        versions = schema_versions(pg, dbname=db)
        assert len(versions) == len(migration_files()), versions
        assert len(set(versions)) == len(versions), versions
        # and once more: a no-op
        r = run_keygate(["migrate"], kg_workdir, overrides={"database": pg.dsn_for(db)})
        assert r.returncode == 0, (r.stdout, r.stderr)
        assert schema_versions(pg, dbname=db) == versions
    finally:
        pg.query("DROP DATABASE IF EXISTS %s WITH (FORCE)" % db, dbname="postgres")


def test_migrate_fails_cleanly_without_database(pg, kg_workdir):
    r = run_keygate(["migrate"], kg_workdir,
                    overrides={"database": "host=127.0.0.1 port=%d dbname=keygate "
                               "user=postgres connect_timeout=2" % kgharness.free_port()},
                    timeout=60)
    assert r.returncode != 0
