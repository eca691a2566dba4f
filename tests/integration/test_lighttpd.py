"""keygate behind a real lighttpd (1.4.69, Debian) with the shipped
snippets: what only lighttpd has. The guarded folder's promises, which
Apache keeps too, are tested against both in test_authorizer.py.

  conf/lighttpd/keygate.conf             /api/ to the keygate pool's socket
  conf/lighttpd/keygate-authorizer.conf  /private/ guarded by keygate in the
                                         FastCGI AUTHORIZER role
  conf/lighttpd/keygate-spawn.conf       /api/ with lighttpd starting keygate
                                         itself (bin-path, bin-environment)

Each is included as shipped, with only its installation paths replaced (the
pool socket, the private folder, the binary, /etc/keygate/keygate.conf).
Here: the account API through the pool snippet, a stopped pool behind the
authorizer, lighttpd spawning keygate (and keygate's lines in the breakage
log). Finally lighty-enable-mod is run against a copy of Debian's /etc/lighttpd
(in a private mount namespace) to show the snippets install as modules.
"""

import os
import shutil
import subprocess

import pytest

import kgharness as kh
import webservers as ws
from webservers import assert_refused, bearer


@pytest.fixture(scope="module")
def site(pg_session, kg_workdir, servers):
    with ws.module_site("lighttpd", servers, pg_session, kg_workdir) as s:
        yield s


# --------------------------------------------------------------------------
# /api/


def test_account_api_through_lighttpd(site):
    site.api.account_flow()


# --------------------------------------------------------------------------
# /private/ behind the authorizer, with the pool stopped


def test_pool_down_means_503_never_the_file(pg, kg_workdir, keygate, fresh_servers):
    s = ws.start_lighttpd_site(fresh_servers, keygate, kg_workdir, workers=1)
    _, _, b = s.api.session()
    secret = s.files["secret.txt"]
    assert s.get("/private/secret.txt", headers=bearer(b["token"])).status_code == 200
    assert s.kg.stop() == 0, s.kg.log()
    for h in (bearer(b["token"]), {}):
        r = s.get("/private/secret.txt", headers=h)
        assert_refused(r, secret, statuses=(503,))
    r = s.api.request("GET", "/health")
    assert r.status_code == 503, r.status_code


# --------------------------------------------------------------------------
# lighttpd starts keygate itself (bin-path)


def test_spawned_by_lighttpd(pg, kg_workdir, fresh_servers):
    name = "spawn%d" % next(kh._serial)
    ini = ws.keygate_ini(os.path.join(kg_workdir, name + ".ini"), pg,
                         listen=os.path.join(kg_workdir, name + "-unused.sock"))
    sock = os.path.join(kg_workdir, name + ".sock")
    breakage = os.path.join(kg_workdir, name + "-breakage.log")
    private, files = ws.new_private_dir(kg_workdir, "lighttpd")
    lt = fresh_servers.lighttpd([
        ws.lighttpd_spawn_snippet(ini, sock, breakage),
        # the authorizer on the socket lighttpd made ("socket" plus "-0"),
        # named by the spawn snippet's var.keygate_socket
        (os.path.join(ws.LIGHTTPD_CONF, "keygate-authorizer.conf"),
         {ws.PRIVATE_DIR: private + "/"}),
    ], extra_conf=ws.LIGHTTPD_CGI_CONF)
    site = ws.Site("lighttpd", lt, private, files, ini=ini, keygate_log=breakage)
    api = site.api

    # lighttpd started one keygate master with KEYGATE_WORKERS=4 workers,
    # configured through bin-environment only
    def spawned():
        procs = ws.keygate_processes(config=ini)
        return procs if len(procs) == 5 else None
    procs = kh.wait_until(spawned, 15, what="keygate master + 4 workers started by lighttpd")
    for pid, _, env in procs:
        assert env.get("KEYGATE_CONFIG") == ini, env
        assert env.get("KEYGATE_WORKERS") == "4", env
        assert not [k for k in env if k.startswith("KEYGATE_")
                    and k not in ("KEYGATE_CONFIG", "KEYGATE_WORKERS")], env
    assert not os.path.exists(os.path.join(kg_workdir, name + "-unused.sock"))
    status = api.ok(api.request("GET", "/status"))
    assert status["pool"]["workers"] == 4, status["pool"]

    api.account_flow()
    user_id, username, b = api.session()
    r = lt.get("/private/secret.txt", headers=bearer(b["token"]))
    assert r.status_code == 200 and r.text == files["secret.txt"], (r.status_code, r.text[:300])
    r = lt.get("/private/whoami.cgi", headers=bearer(b["token"]))
    assert r.status_code == 200 and r.json().get("KEYGATE_USER_ID") == str(user_id), r.text[:300]
    site.assert_401(lt.get("/private/secret.txt"), files["secret.txt"])
    api.ok(api.logout(b["token"]))
    site.assert_401(lt.get("/private/secret.txt", headers=bearer(b["token"])),
                    files["secret.txt"])
    api.close()

    # keygate's log lines go to the snippet's server.breakagelog, whatever
    # lighttpd's own standard error is (/dev/null once it is a daemon)
    log = kh.read_text(breakage)
    assert "listening on the inherited socket (fd 0)" in log, log[-2000:]
    assert "starting 4 workers" in log, log[-2000:]

    # stopping lighttpd stops the keygate it started
    lt.stop()
    left = ws.wait_gone([p for p, _, _ in procs])
    assert not left, "keygate processes outlived lighttpd: %r" % left


def test_spawned_keygate_config_error_reaches_the_breakage_log(pg, kg_workdir,
                                                               fresh_servers):
    """A keygate that lighttpd starts with a broken configuration exits;
    its one line saying why must be in the breakage log, not lost with
    lighttpd's standard error."""
    name = "spawnbad%d" % next(kh._serial)
    ini = ws.keygate_ini(os.path.join(kg_workdir, name + ".ini"), pg)
    with open(ini, "a") as f:
        f.write("workers = many\n")
    sock = os.path.join(kg_workdir, name + ".sock")
    breakage = os.path.join(kg_workdir, name + "-breakage.log")
    lt = fresh_servers.lighttpd([ws.lighttpd_spawn_snippet(ini, sock, breakage)])
    # lighttpd's own answer: 503 while it cannot connect, 500 when the
    # process died under the request
    r = lt.get("/api/health")
    assert r.status_code in (500, 503), (r.status_code, r.text[:300])
    expected = "%s:%d: workers: not a number" % (ini, len(kh.read_text(ini).splitlines()))

    def logged():
        return expected in kh.read_text(breakage)
    kh.wait_until(logged, 20, what="keygate's configuration error in the breakage log")
    # and nothing of keygate's went to lighttpd's own standard error
    assert "workers" not in kh.read_text(lt.out_log), kh.read_text(lt.out_log)[-2000:]


# --------------------------------------------------------------------------
# installable as conf-available snippets


def in_private_etc(tmp_etc, script):
    """Run a shell script in a private mount namespace in which tmp_etc is
    mounted over /etc/lighttpd (the real one is never touched)."""
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("needs root and unshare(1) for a private mount namespace")
    return subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-ec",
         'mount --bind "$0" /etc/lighttpd\n' + script, tmp_etc],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60,
        universal_newlines=True, env=kh.clean_env())


def test_lighty_enable_mod(kg_workdir):
    if not os.path.isfile("/etc/lighttpd/lighttpd.conf"):
        pytest.skip("Debian's lighttpd configuration is not installed")
    etc = os.path.join(kg_workdir, "etc-lighttpd-%d" % next(kh._serial))
    ws.copy_etc("/etc/lighttpd", etc)
    avail = os.path.join(etc, "conf-available")
    enabled = os.path.join(etc, "conf-enabled")
    # where the Debian package installs them
    for src, dst in (("keygate.conf", "50-keygate.conf"),
                     ("keygate-spawn.conf", "50-keygate-spawn.conf"),
                     ("keygate-authorizer.conf", "51-keygate-authorizer.conf")):
        shutil.copy(os.path.join(ws.LIGHTTPD_CONF, src), os.path.join(avail, dst))

    r = in_private_etc(etc, "lighty-enable-mod keygate keygate-authorizer\n"
                            "lighttpd -tt -f /etc/lighttpd/lighttpd.conf\n"
                            "lighttpd -p -f /etc/lighttpd/lighttpd.conf\n")
    assert r.returncode == 0, r.stdout
    for f in ("50-keygate.conf", "51-keygate-authorizer.conf"):
        link = os.path.join(enabled, f)
        assert os.path.islink(link) and os.readlink(link) == "../conf-available/" + f, r.stdout
    # the printed configuration has both mappings
    assert '"/api/"' in r.stdout and '"/private/"' in r.stdout, r.stdout
    assert '"mode"' in r.stdout and '"authorizer"' in r.stdout, r.stdout

    # the pool and the spawning variant exclude each other
    r = in_private_etc(etc, "lighty-enable-mod keygate-spawn\n")
    assert r.returncode != 0 and "conflict" in r.stdout.lower(), r.stdout
    assert not os.path.exists(os.path.join(enabled, "50-keygate-spawn.conf"))
    r = in_private_etc(etc, "lighty-disable-mod keygate\n"
                            "lighty-enable-mod keygate-spawn\n"
                            "lighttpd -tt -f /etc/lighttpd/lighttpd.conf\n")
    assert r.returncode == 0, r.stdout
    assert os.path.islink(os.path.join(enabled, "50-keygate-spawn.conf")), r.stdout
    assert not os.path.exists(os.path.join(enabled, "50-keygate.conf")), r.stdout
