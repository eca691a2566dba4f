"""The Debian package, end to end, on this machine.

Build it from a clean copy of the tree (scripts/package-test: dpkg-buildpackage
-us -uc -b, then lintian, which must report no error and no warning), check
what it holds, install it with `apt-get install ./keygate_*.deb`, use the
installed /usr/bin/keygate -- its default configuration file, migrations and
password list -- as the `keygate` user against a throwaway PostgreSQL
database (migrate, user add, a login over FastCGI through spawn-fcgi), then
remove and purge it and check that nothing of it is left: no file it
shipped, no /etc/keygate, no systemd state. Kept: files the admin put in
/etc/keygate, the database, and the keygate system user and group (Debian
keeps system users, so the admin's files keep a live owner).

It needs root (it installs a package) and a machine where keygate is not
installed; it purges the package even when it fails. About 1-2 minutes,
most of it the build.
"""

import contextlib
import glob
import grp
import os
import pwd
import shutil
import signal
import stat
import subprocess
import tempfile
import uuid

import pytest

import kgharness

REPO = kgharness.REPO
PKG = "keygate"
APT_ENV = {"DEBIAN_FRONTEND": "noninteractive"}

UNITS = ("keygate.socket", "keygate.service", "keygate-prune.service",
         "keygate-prune.timer")
WEB_SNIPPETS = {
    "etc/lighttpd/conf-available/50-keygate.conf": "conf/lighttpd/keygate.conf",
    "etc/lighttpd/conf-available/50-keygate-spawn.conf": "conf/lighttpd/keygate-spawn.conf",
    "etc/lighttpd/conf-available/51-keygate-authorizer.conf":
        "conf/lighttpd/keygate-authorizer.conf",
    "etc/apache2/conf-available/keygate.conf": "conf/apache2/keygate.conf",
    "etc/apache2/conf-available/keygate-proxy.conf": "conf/apache2/keygate-proxy.conf",
}


def run(argv, timeout=120, env=None, check=True, **kw):
    e = dict(os.environ)
    e.update(APT_ENV)
    if env:
        e.update(env)
    p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       universal_newlines=True, errors="replace", env=e,
                       timeout=timeout, **kw)
    if check:
        assert p.returncode == 0, "%s: exit %d\n%s" % (" ".join(argv), p.returncode,
                                                      p.stdout[-6000:])
    return p


def dpkg_status():
    """'install ok installed', 'deinstall ok config-files', ... or '' if dpkg
    knows nothing of the package."""
    p = subprocess.run(["dpkg-query", "-W", "-f=${Status}", PKG],
                       stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                       universal_newlines=True)
    return p.stdout.strip() if p.returncode == 0 else ""


def user_exists(name):
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


def group_exists(name):
    try:
        grp.getgrnam(name)
        return True
    except KeyError:
        return False


def deb_contents(deb):
    """{path (no leading ./ or /): mode string} from dpkg-deb -c."""
    out = {}
    for line in run(["dpkg-deb", "-c", deb]).stdout.splitlines():
        fields = line.split(None, 5)
        path = fields[5].split(" -> ")[0]
        path = path[2:] if path.startswith("./") else path
        if path:
            out[path.rstrip("/")] = fields[0]
    return out


def systemd_leftovers():
    pats = ["/etc/systemd/system/**/*keygate*",
            "/var/lib/systemd/deb-systemd-helper-enabled/**/*keygate*",
            "/var/lib/systemd/deb-systemd-helper-masked/*keygate*",
            "/var/lib/systemd/deb-systemd-user-helper-enabled/**/*keygate*"]
    return sorted(p for pat in pats for p in glob.glob(pat, recursive=True))


def as_keygate(argv):
    """Run as the package's user, with its group only (as the units do)."""
    return ["setpriv", "--reuid=keygate", "--regid=keygate", "--clear-groups",
            "--"] + argv


class Purger:
    """Undo everything the test did to the machine, whatever happened."""

    def __init__(self):
        self.had_etc = os.path.lexists("/etc/keygate")
        self.lighttpd_links = []
        self.apache_confs = []
        self.procs = []

    def cleanup(self):
        for p in self.procs:
            if p.poll() is None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(p.pid, signal.SIGKILL)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    p.wait(timeout=10)
        if dpkg_status():
            p = run(["apt-get", "purge", "-y", PKG], check=False, timeout=300)
            if p.returncode != 0:
                run(["dpkg", "--purge", "--force-all", PKG], check=False)
        for link in self.lighttpd_links:
            if os.path.islink(link):
                os.unlink(link)
        for conf in self.apache_confs:
            if os.path.lexists("/etc/apache2/conf-enabled/%s.conf" % conf) or \
                    glob.glob("/var/lib/apache2/conf/*/" + conf):
                run(["a2disconf", "-q", "-p", "-f", conf], check=False)
        if user_exists(PKG):
            run(["deluser", "--system", "--quiet", PKG], check=False)
        if group_exists(PKG):
            run(["delgroup", "--system", "--quiet", PKG], check=False)
        if not self.had_etc and os.path.lexists("/etc/keygate"):
            shutil.rmtree("/etc/keygate", ignore_errors=True)


@pytest.fixture
def machine():
    if os.geteuid() != 0:
        pytest.skip("needs root: installs and purges the keygate package "
                    "(scripts/test runs as root in CI)")
    for tool, package in [("dpkg-buildpackage", "dpkg-dev"), ("lintian", "lintian"),
                          ("dh", "debhelper"), ("apt-get", "apt"),
                          ("spawn-fcgi", "spawn-fcgi"), ("setpriv", "util-linux"),
                          ("systemd-analyze", "systemd"), ("man", "man-db"),
                          ("git", "git")]:
        if shutil.which(tool) is None:
            pytest.fail("%s not found: apt-get install %s" % (tool, package))
    status = dpkg_status()
    if status:
        pytest.fail("the keygate package is on this machine (%s): this test "
                    "installs and purges it, so purge it first: apt-get purge "
                    "keygate" % status)
    if user_exists(PKG) or group_exists(PKG):
        pytest.fail("a user or group named keygate exists without the package; "
                    "remove it first (deluser --system keygate)")
    m = Purger()
    try:
        yield m
    finally:
        m.cleanup()


@pytest.fixture
def build_dir():
    d = tempfile.mkdtemp(prefix="kg-deb-", dir="/tmp")
    yield d
    if os.environ.get("KG_KEEP") != "1":
        shutil.rmtree(d, ignore_errors=True)


def build_package(out):
    """scripts/package-test -o out: build, lint; returns (deb, lintian log)."""
    p = subprocess.run([os.path.join(REPO, "scripts", "package-test"), "-o", out],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       universal_newlines=True, errors="replace", timeout=480,
                       env=kgharness.clean_env(APT_ENV))
    lintian = kgharness.read_text(os.path.join(out, "lintian.log"))
    assert p.returncode == 0, "package build or lintian failed:\n%s\n%s" % (
        p.stderr[-8000:], kgharness.tail(os.path.join(out, "build.log"), 4000))
    deb = p.stdout.strip().splitlines()[-1]
    assert os.path.isfile(deb) and os.path.basename(deb).startswith("keygate_"), p.stdout
    return deb, lintian


def check_contents(contents):
    missing = [p for p in (
        ["usr/bin/keygate", "etc/keygate/keygate.conf",
         "usr/share/keygate/common-passwords.txt",
         "usr/share/man/man8/keygate.8.gz", "usr/share/man/man5/keygate.conf.5.gz",
         "usr/share/doc/keygate/README.Debian.gz", "usr/share/doc/keygate/copyright"]
        + ["usr/share/keygate/migrations/" + os.path.basename(f)
           for f in glob.glob(os.path.join(REPO, "db", "migrations", "*.sql"))]
        + ["lib/systemd/system/" + u for u in UNITS]
        + list(WEB_SNIPPETS)) if p not in contents]
    assert not missing, "not in the package: %s" % missing
    # never world-readable, not even as unpacked
    assert contents["etc/keygate/keygate.conf"] == "-rw-r-----"


def check_installed():
    pw = pwd.getpwnam(PKG)
    assert pw.pw_uid < 1000, "keygate is not a system user: %r" % (pw,)
    assert pw.pw_shell in ("/usr/sbin/nologin", "/bin/false"), pw
    assert grp.getgrgid(pw.pw_gid).gr_name == PKG

    st = os.stat("/etc/keygate/keygate.conf")
    assert stat.S_IMODE(st.st_mode) == 0o640, oct(st.st_mode)
    assert st.st_uid == 0 and st.st_gid == pw.pw_gid, (st.st_uid, st.st_gid)
    with open("/etc/keygate/keygate.conf") as f, \
            open(os.path.join(REPO, "conf", "keygate.conf")) as g:
        assert f.read() == g.read()
    conffiles = run(["dpkg-query", "-W", "-f=${Conffiles}", PKG]).stdout
    for path in ["etc/keygate/keygate.conf"] + list(WEB_SNIPPETS):
        assert "/" + path + " " in conffiles, "%s is not a conffile:\n%s" % (path, conffiles)
    for path, src in WEB_SNIPPETS.items():
        with open("/" + path) as f, open(os.path.join(REPO, src)) as g:
            assert f.read() == g.read(), path

    # the units are installed, neither enabled nor started
    # (deb-systemd-helper's state files name the links that enabling would
    # make; the links themselves must not exist)
    assert not glob.glob("/etc/systemd/system/**/*keygate*", recursive=True)
    units = ["/lib/systemd/system/" + u for u in UNITS]
    # man: links checked too (the man pages are installed now)
    p = run(["systemd-analyze", "verify"] + units, check=False)
    assert p.returncode == 0 and p.stdout.strip() == "", p.stdout
    p = run(["systemd-analyze", "security", "--offline=true", "--no-pager",
             "/lib/systemd/system/keygate.service"])
    assert any(l.startswith("\u2192 Overall exposure level for keygate.service:")
               and l.split()[-2] in ("OK", "SAFE", "PERFECT")
               for l in p.stdout.splitlines()), p.stdout[-3000:]


def use_installed_keygate(pg, workdir, machine):
    """migrate, user add and a FastCGI login with the installed program, as
    the keygate user, with the installed configuration file and data."""
    db = "kgpkg_" + uuid.uuid4().hex[:8]
    pg.query("CREATE DATABASE %s" % db, dbname="postgres")
    # Only the database comes from the environment: the configuration file
    # (the default path, /etc/keygate/keygate.conf), the migrations and the
    # password list are the installed ones.
    env = kgharness.clean_env({"KEYGATE_DATABASE": pg.dsn_for(db),
                               "KEYGATE_LOG_TARGET": "stderr"})

    def keygate(*args, stdin=None):
        return subprocess.run(as_keygate(["/usr/bin/keygate"] + list(args)),
                              input=stdin, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, universal_newlines=True,
                              env=env, cwd="/", timeout=60)

    r = keygate("check-config")
    assert r.returncode == 0 and "/etc/keygate/keygate.conf" in r.stdout + r.stderr, r
    r = keygate("migrate")
    assert r.returncode == 0, r
    applied = pg.query("SELECT count(*) FROM schema_migrations", dbname=db)[0][0]
    assert applied == len(os.listdir("/usr/share/keygate/migrations")) > 0
    password = "package horse battery staple"
    r = keygate("user", "add", "pkguser", "--password-stdin", stdin=password + "\n")
    assert r.returncode == 0, r
    # the installed common-password list is loaded: a too-short one is refused
    r = keygate("user", "add", "pkgshort", "--password-stdin", stdin="short\n")
    assert r.returncode != 0, r

    sock = os.path.join(workdir, "pkg%d.sock" % os.getpid())
    logpath = os.path.join(workdir, "pkg-keygate.log")
    with open(logpath, "ab") as log:
        proc = subprocess.Popen(
            ["spawn-fcgi", "-s", sock, "-M", "0660", "-u", PKG, "-g", PKG, "-n",
             "--", "/usr/bin/keygate", "serve"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            env=dict(env, KEYGATE_WORKERS="2"), cwd="/", start_new_session=True)
    machine.procs.append(proc)

    def ready():
        if proc.poll() is not None:
            raise AssertionError("keygate exited (%s):\n%s"
                                 % (proc.returncode, kgharness.read_text(logpath)))
        return kgharness.fcgi_request(sock, "GET", "/api/health", timeout=5).status == 200
    kgharness.wait_until(ready, 20, what="the installed keygate to answer")
    assert pwd.getpwuid(os.stat("/proc/%d" % proc.pid).st_uid).pw_name == PKG

    r = kgharness.fcgi_request(sock, "POST", "/api/login",
                               body={"username": "pkguser", "password": password})
    assert r.status == 200, r
    token = r.json()["token"]
    r = kgharness.fcgi_request(sock, "GET", "/api/me",
                               headers={"Authorization": "Bearer " + token})
    assert r.status == 200 and r.json()["username"] == "pkguser", r
    os.kill(proc.pid, signal.SIGTERM)
    assert proc.wait(timeout=40) == 0, kgharness.read_text(logpath)
    return db


def test_package_build_lintian_install_use_purge(pg, kg_workdir, machine, build_dir):
    deb, lintian = build_package(build_dir)
    bad = [l for l in lintian.splitlines() if l[:3] in ("E: ", "W: ")]
    assert not bad, "lintian:\n" + lintian

    contents = deb_contents(deb)
    check_contents(contents)
    existed = {p for p in contents if os.path.lexists("/" + p)}

    run(["apt-get", "install", "-y", "--no-install-recommends", deb], timeout=300)
    assert dpkg_status() == "install ok installed"
    check_installed()
    db = use_installed_keygate(pg, kg_workdir, machine)

    # Web-server snippets the admin enabled are disabled when the program
    # goes away: lighttpd's conf-enabled link (lighty-enable-mod, or the
    # link it makes), Apache's through apache2-maintscript-helper.
    link = "/etc/lighttpd/conf-enabled/50-keygate.conf"
    machine.lighttpd_links.append(link)
    if shutil.which("lighty-enable-mod"):
        run(["lighty-enable-mod", "keygate"])
    else:
        os.makedirs(os.path.dirname(link), exist_ok=True)
        os.symlink("../conf-available/50-keygate.conf", link)
    assert os.path.islink(link)
    apache_link = None
    if shutil.which("a2enconf") and os.path.isdir("/etc/apache2/conf-enabled"):
        apache_link = "/etc/apache2/conf-enabled/keygate-proxy.conf"
        machine.apache_confs.append("keygate-proxy")
        run(["a2enconf", "-q", "keygate-proxy"])
        assert os.path.islink(apache_link)

    # remove: the program goes, the configuration and the user stay
    run(["apt-get", "remove", "-y", PKG], timeout=300)
    assert dpkg_status() == "deinstall ok config-files"
    assert not os.path.exists("/usr/bin/keygate")
    assert os.path.isfile("/etc/keygate/keygate.conf")
    assert user_exists(PKG)
    assert not os.path.lexists(link)
    if apache_link:
        assert not os.path.lexists(apache_link)

    # A file of the admin's own in /etc/keygate: not the package's to delete.
    # Given to the keygate user, as README.Debian has it for a pgpass.
    admin_file = "/etc/keygate/admin-pgpass"
    with open(admin_file, "w") as f:
        f.write("db.internal:5432:keygate:keygate:secret\n")
    keygate_uid, keygate_gid = pwd.getpwnam(PKG).pw_uid, grp.getgrnam(PKG).gr_gid
    os.chown(admin_file, keygate_uid, keygate_gid)
    os.chmod(admin_file, 0o600)

    # purge: nothing of the package is left
    p = run(["apt-get", "purge", "-y", PKG], timeout=300)
    assert dpkg_status() == "", dpkg_status()
    left = sorted(p for p in contents if p not in existed and os.path.lexists("/" + p)
                  and not (p == "etc/keygate" and os.listdir("/etc/keygate")))
    assert not left, "left after purge: %s" % left
    assert os.listdir("/etc/keygate") == ["admin-pgpass"], os.listdir("/etc/keygate")
    assert "/etc/keygate kept" in p.stdout
    # Debian practice: the system user and group stay, so the admin's file
    # keeps its owner instead of an orphaned uid; purging says nothing of them.
    assert user_exists(PKG) and group_exists(PKG), "purge removed the keygate user"
    st = os.stat(admin_file)
    assert (st.st_uid, st.st_gid) == (keygate_uid, keygate_gid)
    assert pwd.getpwuid(st.st_uid).pw_name == PKG
    assert "deluser" not in p.stdout and "delgroup" not in p.stdout, p.stdout
    assert not systemd_leftovers(), systemd_leftovers()
    assert not glob.glob("/var/lib/dpkg/info/keygate.*")
    if apache_link:
        # a2enconf's state markers, which the helper purges
        assert not glob.glob("/var/lib/apache2/conf/*/keygate-proxy"), \
            glob.glob("/var/lib/apache2/conf/*/keygate-proxy")

    # the database is the admin's: untouched
    assert pg.query("SELECT username FROM users", dbname=db) == [("pkguser",)]
    os.unlink(admin_file)
    os.rmdir("/etc/keygate")
