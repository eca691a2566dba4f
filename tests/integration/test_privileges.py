"""keygate and root: privileges dropped, sockets owned safely.

  - `keygate serve` as root refuses to start unless `user` says whom to
    become (user = root keeps root, deliberately); with `user` set it drops
    to that user and gives the socket to it.
  - The socket it binds gets its mode from the umask at bind and its owner
    through a descriptor of the file bind made: never chmod/chown by path,
    which would follow a symlink put there between bind and chmod. A shim
    (LD_PRELOAD, wrapping bind) plays the attacker deterministically: right
    after bind it renames a symlink to a victim file over the socket.
"""

import grp
import os
import pwd
import subprocess

import pytest

import kgharness as kh

ROOT_ONLY = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")

SWAP_SHIM = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>

/* After a successful bind of a unix socket, rename $KG_SWAP_IN over it. */
int
bind(int fd, const struct sockaddr *sa, socklen_t len)
{
	int (*real)(int, const struct sockaddr *, socklen_t) =
	    (int (*)(int, const struct sockaddr *, socklen_t))dlsym(RTLD_NEXT, "bind");
	const char *swap = getenv("KG_SWAP_IN");
	int rc = real(fd, sa, len);

	if (rc == 0 && swap != NULL && sa->sa_family == AF_UNIX &&
	    rename(swap, ((const struct sockaddr_un *)sa)->sun_path) != 0)
		abort();
	return rc;
}
"""


def build_shim(workdir):
    src = os.path.join(workdir, "swapshim.c")
    lib = os.path.join(workdir, "swapshim.so")
    if not os.path.exists(lib):
        with open(src, "w") as f:
            f.write(SWAP_SHIM)
        subprocess.run(["gcc", "-shared", "-fPIC", "-O1", "-o", lib, src, "-ldl"],
                       check=True, timeout=60)
    return lib


def preload_env(lib, swap_in):
    # An ASan build insists on coming first among the loaded libraries.
    asan = os.environ.get("ASAN_OPTIONS", "")
    return {"LD_PRELOAD": lib, "KG_SWAP_IN": swap_in,
            "ASAN_OPTIONS": (asan + ":" if asan else "") + "verify_asan_link_order=0"}


def victim_file(workdir, name):
    path = os.path.join(workdir, name)
    with open(path, "w") as f:
        f.write("not keygate's\n")
    os.chmod(path, 0o604)
    return path


def start_failing(keygate, **kw):
    kg = keygate.start(wait=False, **kw)
    rc = kg.wait(30)
    return kg, rc


def test_socket_swapped_for_symlink_after_bind_is_left_alone(kg_workdir, keygate):
    lib = build_shim(kg_workdir)
    victim = victim_file(kg_workdir, "victim-%d" % next(kh._serial))
    before = os.stat(victim)
    sock = os.path.join(kg_workdir, "swap%d.sock" % next(kh._serial))
    link = sock + ".planted"
    os.symlink(victim, link)
    group = {}
    if os.geteuid() == 0:
        group["listen_group"] = grp.getgrgid(pwd.getpwnam("nobody").pw_gid).gr_name
    kg, rc = start_failing(keygate, listen=sock, listen_mode="0660",
                           env=preload_env(lib, link), **group)
    after = os.stat(victim)
    assert not os.path.lexists(link), "the shim did not swap the socket"
    assert (after.st_mode, after.st_uid, after.st_gid) == \
        (before.st_mode, before.st_uid, before.st_gid), \
        "keygate changed %s through the symlink: %o -> %o\n%s" % (
            victim, before.st_mode, after.st_mode, kg.log())
    assert os.readlink(sock) == victim      # left where the attacker put it
    assert rc != 0, kg.log()
    assert "was replaced right after bind" in kg.log(), kg.log()


def test_symlink_at_listen_path_is_refused(kg_workdir, keygate):
    victim = victim_file(kg_workdir, "victim-%d" % next(kh._serial))
    before = os.stat(victim)
    sock = os.path.join(kg_workdir, "planted%d.sock" % next(kh._serial))
    os.symlink(victim, sock)
    kg, rc = start_failing(keygate, listen=sock)
    assert rc != 0, kg.log()
    assert "exists and is not a socket" in kg.log(), kg.log()
    after = os.stat(victim)
    assert (after.st_mode, after.st_uid, after.st_gid) == \
        (before.st_mode, before.st_uid, before.st_gid)
    assert os.readlink(sock) == victim


@pytest.mark.parametrize("mode", ["0600", "0640", "0660"])
def test_socket_mode_from_umask(kg_workdir, keygate, mode):
    kg = keygate.start(workers=1, listen_mode=mode)
    assert os.lstat(kg.socket).st_mode & 0o777 == int(mode, 8)
    assert kg.stop() == 0, kg.log()


@ROOT_ONLY
def test_root_without_user_refuses_to_serve(kg_workdir, keygate):
    sock = os.path.join(kg_workdir, "root%d.sock" % next(kh._serial))
    kg, rc = start_failing(keygate, listen=sock, user=None)
    assert rc == 1, kg.log()
    assert "refusing to serve as root" in kg.log(), kg.log()
    assert not os.path.exists(sock)
    # an empty `user` is no better than none
    kg, rc = start_failing(keygate, listen=sock, user="")
    assert rc == 1 and "refusing to serve as root" in kg.log(), kg.log()


@ROOT_ONLY
def test_root_with_user_drops_to_it(kg_workdir, keygate):
    nobody = pwd.getpwnam("nobody")
    kg = keygate.start(workers=2, user="nobody")
    assert kg.fcgi("GET", "/health").status == 200
    for pid in [kg.pid] + kg.worker_pids():
        st = os.stat("/proc/%d" % pid)
        assert (st.st_uid, st.st_gid) == (nobody.pw_uid, nobody.pw_gid), pid
    # the socket is the user's, with listen_mode from the umask
    st = os.lstat(kg.socket)
    assert (st.st_uid, st.st_gid) == (nobody.pw_uid, nobody.pw_gid)
    assert st.st_mode & 0o777 == 0o660
    assert "serving as root" not in kg.log()
    kg.stop()


@ROOT_ONLY
def test_user_root_is_a_deliberate_choice(kg_workdir, keygate):
    kg = keygate.start(workers=1, user="root")
    assert kg.fcgi("GET", "/health").status == 200
    assert os.stat("/proc/%d" % kg.pid).st_uid == 0
    assert "user = root: serving as root" in kg.log(), kg.log()
    assert kg.stop() == 0, kg.log()
