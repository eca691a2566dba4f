"""README.md's quick start, run as typed against a scripts/run-like stack
(PostgreSQL, a keygate pool and lighttpd with the shipped snippet), and
against Apache with the shipped mod_fcgid snippet.

The block after "With `scripts/run` running" is taken from README.md
literally and each of its commands runs with bash. Only two things are
replaced: the address on the `API=` line (the stack's port instead of
8080), and the `TOKEN=…` placeholder, by the "token" of the login reply
before it, as the reader would paste it. Every command must print one JSON
object, with "success": true, and with the fields of the `# {...}` comment
that follows it. The stack has a fresh database of its own, so that the
README's user "alice" is new, as on a fresh `scripts/run`.
"""

import json
import os
import re
import subprocess
import uuid

import pytest
import requests

import kgharness
import webservers as ws

README = os.path.join(kgharness.REPO, "README.md")


def sh_block(path, after):
    """The first ```sh block of the file at path after the text `after`."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    start = text.index(after)
    m = re.search(r"```sh\n(.*?)```", text[start:], re.S)
    assert m, "no sh block after %r in %s" % (after, path)
    return m.group(1)


def quick_start_block():
    return sh_block(README, "With `scripts/run` running")


def commands(block):
    """[(command, comment after it or '')], continuation lines (after a
    backslash, a pipe or &&) joined."""
    out, cur = [], ""
    for line in block.splitlines():
        if cur:
            cur += "\n" + line
        elif line.startswith("#"):
            if out and not out[-1][1]:
                out[-1] = (out[-1][0], line)
            continue
        elif line.strip():
            cur = line
        if cur and not cur.rstrip().endswith(("\\", "|", "&&")):
            out.append((cur, ""))
            cur = ""
    assert not cur, cur
    return out


class ApacheSite:
    """Apache with the shipped mod_fcgid snippet, shaped like a Stack."""

    def __init__(self, ap):
        self.ap = ap
        self.base = ap.base_url

    def get(self, path, **kw):
        kw.setdefault("timeout", 30)
        return requests.get(self.base + path, **kw)


@pytest.fixture(params=["lighttpd", "apache"])
def fresh_stack(request, pg, make_stack, kg_workdir):
    db = "readme_%s" % uuid.uuid4().hex[:12]
    pg.query("CREATE DATABASE %s" % db, dbname="postgres")
    dsn = pg.dsn_for(db)
    r = kgharness.run_keygate(["migrate"], kg_workdir, pg=pg, overrides={"database": dsn})
    assert r.returncode == 0, (r.stdout, r.stderr)
    try:
        if request.param == "lighttpd":
            with make_stack(database=dsn) as st:
                yield st
        else:
            if not os.access(ws.APACHE_BIN, os.X_OK):
                pytest.skip("Apache is not installed")
            n = next(kgharness._serial)
            ini = ws.keygate_ini(os.path.join(kg_workdir, "readme%d.ini" % n), pg,
                                 database=dsn)
            private = os.path.join(kg_workdir, "readme-private-%d" % n)
            ws.make_private_dir(private)
            servers = ws.WebServers(kg_workdir)
            try:
                yield ApacheSite(servers.apache(
                    [(os.path.join(ws.APACHE_CONF, "keygate.conf"),
                      {ws.INSTALLED_BINARY: kgharness.KEYGATE_BIN,
                       ws.INSTALLED_CONFIG: ini, ws.PRIVATE_DIR: private + "/"})],
                    modules=["fcgid"]))
            finally:
                servers.cleanup()
    finally:
        pg.query("DROP DATABASE IF EXISTS %s WITH (FORCE)" % db, dbname="postgres")


def test_readme_quick_start_runs_as_typed(fresh_stack):
    cmds = commands(quick_start_block())
    assert any(c.startswith("API=") for c, _ in cmds), cmds
    env = dict(os.environ)
    last_login = None
    ran = []
    for cmd, comment in cmds:
        if cmd.startswith("API="):
            assert cmd.split()[0] == "API=http://127.0.0.1:8080/api", cmd
            env["API"] = fresh_stack.base
            continue
        if cmd.startswith("TOKEN="):
            assert last_login is not None, "TOKEN= before a login"
            env["TOKEN"] = last_login["token"]
            continue
        assert cmd.startswith("curl "), cmd
        r = subprocess.run(["bash", "-c", cmd], env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, universal_newlines=True, timeout=60)
        assert r.returncode == 0, (cmd, r.returncode, r.stderr)
        try:
            body = json.loads(r.stdout)
        except ValueError:
            raise AssertionError("not JSON: %s\n%s" % (cmd, r.stdout[:500]))
        assert body.get("success") is True, (cmd, body)
        if comment.startswith("# {"):
            for key in re.findall(r'"(\w+)":', comment):
                assert key in body, (cmd, key, body)
        if cmd.rstrip().endswith("$API/login"):
            last_login = body
        ran.append(cmd.split("$API")[-1].strip())
    # the block still covers the whole account flow
    for path in ("/health", "/join", "/login", "/me", "/sessions", "/logout", "/status"):
        assert any(p.startswith(path) for p in ran), (path, ran)
    # and the logout revoked the token
    r = fresh_stack.get("/me", headers={"Authorization": "Bearer " + env["TOKEN"]})
    assert r.status_code == 401, r.text


# ---------------------------------------------------------------------------
# docs/DEPLOYMENT.md, "Checking a deployment"

DEPLOYMENT = os.path.join(kgharness.REPO, "docs", "DEPLOYMENT.md")


def deployment_check_block():
    return sh_block(DEPLOYMENT, "## Checking a deployment")


def test_deployment_check_runs_as_typed(pg, keygate, kg_workdir):
    """The block against lighttpd with keygate.conf and
    keygate-authorizer.conf; only http://localhost becomes the server's
    address, and the guarded folder gets the hello.txt the block reads."""
    db = "deploy_%s" % uuid.uuid4().hex[:12]
    pg.query("CREATE DATABASE %s" % db, dbname="postgres")
    servers = ws.WebServers(kg_workdir)
    try:
        dsn = pg.dsn_for(db)
        r = kgharness.run_keygate(["migrate"], kg_workdir, pg=pg,
                                  overrides={"database": dsn})
        assert r.returncode == 0, (r.stdout, r.stderr)
        kg = keygate.start(database=dsn, **ws.RELAXED)
        private = os.path.join(kg_workdir, "deploy-private-%d" % next(kgharness._serial))
        ws.make_private_dir(private)
        with open(os.path.join(private, "hello.txt"), "w") as f:
            f.write("hello from the guarded folder\n")
        os.chmod(os.path.join(private, "hello.txt"), 0o644)
        lt = servers.lighttpd([
            (os.path.join(ws.LIGHTTPD_CONF, "keygate.conf"), {ws.POOL_SOCKET: kg.socket}),
            (os.path.join(ws.LIGHTTPD_CONF, "keygate-authorizer.conf"),
             {ws.PRIVATE_DIR: private + "/"}),
        ])
        env = dict(os.environ)
        for cmd, comment in commands(deployment_check_block()):
            cmd = cmd.replace("http://localhost", lt.url)
            m = re.match(r"^([A-Z]+)=", cmd)
            if m:
                # an assignment: keep the value for the commands after it
                r = subprocess.run(["bash", "-c", '%s\nprintf %%s "$%s"' % (cmd, m.group(1))],
                                   env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   universal_newlines=True, timeout=60)
                assert r.returncode == 0 and r.stdout, (cmd, r.stdout, r.stderr)
                env[m.group(1)] = r.stdout
                continue
            r = subprocess.run(["bash", "-c", cmd], env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, universal_newlines=True, timeout=60)
            assert r.returncode == 0, (cmd, r.returncode, r.stderr)
            want = re.search(r"#\s*(\d{3})\b", cmd)
            if "| head -1" in cmd:
                assert want, cmd
                assert r.stdout.startswith("HTTP/1.1 %s" % want.group(1)), (cmd, r.stdout)
            else:
                body = json.loads(r.stdout)
                assert body.get("success") is True, (cmd, body)
    finally:
        servers.cleanup()
        pg.query("DROP DATABASE IF EXISTS %s WITH (FORCE)" % db, dbname="postgres")
