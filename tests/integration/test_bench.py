"""bench/run works from a clean clone: its helpers build from the
committed files alone, and (scripts/test --long) a quick run finishes with
every figure and no failed request.

The default check compiles bench/'s two helpers from `git ls-files bench`
copied to a temporary directory: a file the benchmark needs but git ignores
(bench/Makefile once was, under a blanket `Makefile` pattern) fails it.
"""

import os
import re
import shutil
import subprocess

import pytest

import kgharness

REPO = kgharness.REPO


def committed_files(under):
    if shutil.which("git") is None or not os.path.exists(os.path.join(REPO, ".git")):
        pytest.skip("not a git checkout")
    out = subprocess.run(["git", "-C", REPO, "ls-files", "--", under], check=True,
                         stdout=subprocess.PIPE, universal_newlines=True).stdout
    return [line for line in out.splitlines() if line]


def test_the_benchmark_builds_from_the_committed_files(tmp_path):
    files = committed_files("bench")
    assert "bench/run" in files and "bench/Makefile" in files, files
    for f in files:
        dst = tmp_path / f
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(os.path.join(REPO, f), dst)
    r = subprocess.run(["make", "-s", "-C", str(tmp_path / "bench")], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, universal_newlines=True, timeout=120)
    assert r.returncode == 0, r.stdout
    for helper in ("fcgi_hello", "argon2_rate"):
        assert os.access(tmp_path / "bench" / "out" / helper, os.X_OK), helper


@pytest.mark.long
def test_a_quick_benchmark_run_completes():
    """`bench/run --quick` against the tree scripts/test built: exit 0 within
    its two minutes (five allowed here), every ratio printed, no failed
    request. It measures, it does not judge: no figure is held to a target."""
    if os.environ.get("KG_SANITIZERS"):
        pytest.skip("the benchmark measures the plain build")
    env = dict(os.environ, KG_BENCH_NO_BUILD="1")
    r = subprocess.run([os.path.join(REPO, "bench", "run"), "--quick"], cwd=REPO, env=env,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       universal_newlines=True, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:]
    with open(os.path.join(REPO, "bench", "out", "results.txt")) as f:
        results = f.read()
    for name in ("me_vs_transport_c8", "me_vs_transport_c64", "me_vs_pgbench_select_c8",
                 "login_vs_argon2_c2", "login_vs_argon2_c8", "rss_kib_worker_after_login"):
        assert re.search(r"^%s: [0-9.]+$" % name, results, re.M), name
    errors = re.findall(r"^\w+_errors_c\d+: (\d+)$", results, re.M)
    assert errors and all(e == "0" for e in errors), errors
