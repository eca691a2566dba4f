"""Unknown usernames after an Argon2 parameter change.

Accounts that have not logged in since argon2_memory/argon2_iterations
changed keep hashes of the old cost; an unknown username verified against a
dummy of the new cost alone answers in a different time. keygate keeps a
dummy hash per cost class of the stored hashes (read when a worker starts)
and picks one by a keyed digest of the name. Checked without timing: the
debug line each dummy verification writes names the parameters it used.

Each test has a database of its own, so that the cost classes are exactly
the ones it made.
"""

import os
import re
import subprocess
import uuid

import pytest

import kgharness as kh
import webservers as ws

CLASS_A = {"argon2_memory": 512, "argon2_iterations": 1}      # two accounts
CLASS_B = {"argon2_memory": 768, "argon2_iterations": 2}      # two accounts
CURRENT = {"argon2_memory": 1024, "argon2_iterations": 1}     # none stored
PARAMS = {"m=512,t=1,p=1", "m=768,t=2,p=1"}
LINE = re.compile(r"unknown user: dummy verify with (m=\d+,t=\d+,p=\d+)")


@pytest.fixture
def classes_db(pg, kg_workdir):
    db = "dummy_%s" % uuid.uuid4().hex[:12]
    pg.query("CREATE DATABASE %s" % db, dbname="postgres")
    dsn = pg.dsn_for(db)
    try:
        r = kh.run_keygate(["migrate"], kg_workdir, overrides={"database": dsn})
        assert r.returncode == 0, r.stdout + r.stderr
        ini = kh.write_ini(os.path.join(kg_workdir, db + ".conf"), None)
        for cost in (CLASS_A, CLASS_A, CLASS_B, CLASS_B):
            name = "acct_" + uuid.uuid4().hex[:10]
            r = subprocess.run([kh.KEYGATE_BIN, "-c", ini, "user", "add", name,
                                "--password-stdin"],
                               input="a long passphrase, %s\n" % uuid.uuid4().hex,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               env=kh.keygate_env(None, dict(cost, database=dsn)),
                               universal_newlines=True, timeout=60)
            assert r.returncode == 0, r.stdout + r.stderr
        stored = {row[0] for row in pg.query(
            "SELECT substring(password_hash FROM 'm=[0-9]+,t=[0-9]+,p=[0-9]+')"
            " FROM users", dbname=db)}
        assert stored == PARAMS, stored
        yield dsn
    finally:
        pg.query("DROP DATABASE IF EXISTS %s WITH (FORCE)" % db, dbname="postgres")


def dummy_params(kg, name):
    """Log in as the unknown name; the parameters the dummy verify used."""
    before = len(LINE.findall(kg.log()))
    r = kg.fcgi("POST", "/login", body={"username": name,
                                        "password": "no such account, no such luck"})
    assert r.status == 401, (r.status, r.text[:300])
    found = kh.wait_until(lambda: LINE.findall(kg.log())[before:] or None, 10,
                          what="the dummy verify's debug line")
    assert len(found) == 1, found
    return found[0]


def start(keygate, dsn):
    return keygate.start(workers=2, database=dsn, log_level="debug",
                         **dict(ws.RELAXED, **CURRENT))


def test_unknown_names_cost_what_stored_classes_cost(classes_db, keygate):
    kg = start(keygate, classes_db)
    assert "2 cost classes of the stored hashes" in kg.log(), kg.log()
    names = ["ghost_%02d_%s" % (i, uuid.uuid4().hex[:6]) for i in range(24)]
    seen = {}
    for name in names:
        seen[name] = dummy_params(kg, name)
        assert seen[name] in PARAMS, (name, seen[name])   # never the current cost alone
    # the names spread over both classes (2 accounts each)
    assert set(seen.values()) == PARAMS, seen
    # the same name, the same cost, whichever worker answers (and without case)
    for name in names[:4]:
        for _ in range(3):
            assert dummy_params(kg, name) == seen[name]
        assert dummy_params(kg, name.upper()) == seen[name]
    kg.stop()
    # and after a restart: the key comes from the database, not the process
    kg = start(keygate, classes_db)
    for name in names[:6]:
        assert dummy_params(kg, name) == seen[name]
    kg.stop()


def test_no_accounts_means_the_current_cost(pg, kg_workdir, keygate):
    db = "dummy_%s" % uuid.uuid4().hex[:12]
    pg.query("CREATE DATABASE %s" % db, dbname="postgres")
    try:
        dsn = pg.dsn_for(db)
        r = kh.run_keygate(["migrate"], kg_workdir, overrides={"database": dsn})
        assert r.returncode == 0, r.stdout + r.stderr
        kg = start(keygate, dsn)
        assert "0 cost classes of the stored hashes" in kg.log(), kg.log()
        assert dummy_params(kg, "ghost_" + uuid.uuid4().hex[:6]) == "m=1024,t=1,p=1"
        kg.stop()
    finally:
        pg.query("DROP DATABASE IF EXISTS %s WITH (FORCE)" % db, dbname="postgres")
