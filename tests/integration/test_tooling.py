"""The repository's own checks: scripts/check-format (the C lines changed
since .clang-format-base are formatted) and scripts/check-layers (src/
keeps to its layers). Each runs against a copy in a temporary directory,
never the work tree. No server is started here.
"""

import os
import shutil
import subprocess
import time

import kgharness

REPO = kgharness.REPO
CHECK_FORMAT = os.path.join(REPO, "scripts", "check-format")
CHECK_LAYERS = os.path.join(REPO, "scripts", "check-layers")

GIT_ENV = dict(os.environ, GIT_AUTHOR_NAME="test", GIT_AUTHOR_EMAIL="test@invalid",
               GIT_COMMITTER_NAME="test", GIT_COMMITTER_EMAIL="test@invalid",
               GIT_CONFIG_NOSYSTEM="1", HOME="/nonexistent")


def git(repo, *args):
    r = subprocess.run(["git", "-C", str(repo)] + list(args), env=GIT_ENV,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, (args, r.stderr)
    return r.stdout


def run(argv, cwd=None):
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=120)


# --- scripts/check-format -------------------------------------------------

def clone(tmp_path):
    """A clone of the repository at HEAD, with the work tree's versions of
    the format check and its configuration committed on top, and that
    commit as the baseline: the test's own edits are then the only change."""
    dest = tmp_path / "repo"
    head = git(REPO, "rev-parse", "HEAD").strip()
    subprocess.run(["git", "clone", "-q", "--no-checkout", REPO, str(dest)], env=GIT_ENV,
                   check=True, capture_output=True, timeout=300)
    git(dest, "checkout", "-q", head)
    for f in ("scripts/check-format", ".clang-format"):
        shutil.copy2(os.path.join(REPO, f), dest / f)
    git(dest, "add", "scripts/check-format", ".clang-format")
    git(dest, "commit", "-q", "--allow-empty", "-m", "tools under test")
    (dest / ".clang-format-base").write_text(
        "# baseline of the test\n%s\n" % git(dest, "rev-parse", "HEAD").strip())
    return dest


def a_src_file(repo):
    """A C file of src/ to edit: token.c, a leaf, while there is one."""
    if (repo / "src" / "token.c").exists():
        return "src/token.c"
    return "src/" + sorted(f for f in os.listdir(repo / "src") if f.endswith(".c"))[0]


def append(repo, rel, text):
    """Append text to a file; returns the number of the first appended line."""
    path = repo / rel
    old = path.read_text()
    if not old.endswith("\n"):
        old += "\n"
    path.write_text(old + text)
    return old.count("\n") + 1


def test_check_format_names_an_unformatted_line_and_fixes_it(tmp_path):
    repo = clone(tmp_path)
    rel = a_src_file(repo)
    line = append(repo, rel, "\nstatic int tooling_probe(int a,int b) { return a+b; }\n") + 1
    git(repo, "commit", "-q", "-am", "badly formatted")
    r = run([str(repo / "scripts" / "check-format")])
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert "%s:%d: not formatted" % (rel, line) in r.stderr, r.stderr
    assert "tooling_probe(int a, int b)" in r.stdout, r.stdout   # the diff that fixes it
    # only the changed lines: nothing else of the file is named
    named = [l for l in r.stderr.splitlines() if ": not formatted" in l]
    assert named == ["%s:%d: not formatted as .clang-format says" % (rel, line)], named

    r = run([str(repo / "scripts" / "check-format"), "--fix"])
    assert r.returncode == 0, r.stderr
    assert "static int\ntooling_probe(int a, int b)\n{\n\treturn a + b;\n}\n" in \
        (repo / rel).read_text()
    r = run([str(repo / "scripts" / "check-format")])
    assert r.returncode == 0, (r.stdout, r.stderr)


def test_check_format_passes_a_formatted_change_and_sees_new_files(tmp_path):
    repo = clone(tmp_path)
    rel = a_src_file(repo)
    append(repo, rel, "\nstatic int\ntooling_probe(int a, int b)\n{\n"
           "\tif (a > b)\n\t\treturn a - b;\n\treturn a + b;\n}\n")
    git(repo, "commit", "-q", "-am", "well formatted")
    r = run([str(repo / "scripts" / "check-format")])
    assert r.returncode == 0, (r.stdout, r.stderr)

    # a file git does not know yet is checked whole
    (repo / "src" / "tooling_new.c").write_text("int\nf(void){return 0;}\n")
    r = run([str(repo / "scripts" / "check-format")])
    assert r.returncode == 1 and "src/tooling_new.c:2: not formatted" in r.stderr, r.stderr
    # and so is an uncommitted change
    (repo / "src" / "tooling_new.c").unlink()
    append(repo, rel, "int   tooling_x;\n")
    r = run([str(repo / "scripts" / "check-format")])
    assert r.returncode == 1 and rel + ":" in r.stderr, r.stderr


def test_check_format_baseline_is_a_commit_of_the_history():
    """.clang-format-base names a commit that HEAD descends from (the one
    that added .clang-format, whose id a merge keeps)."""
    words = [w for l in open(os.path.join(REPO, ".clang-format-base"))
             for w in l.split("#")[0].split()]
    assert len(words) == 1, words
    r = subprocess.run(["git", "-C", REPO, "merge-base", "--is-ancestor", words[0], "HEAD"],
                       capture_output=True, text=True)
    assert r.returncode == 0, (words[0], r.stderr)
    r = subprocess.run(["git", "-C", REPO, "show", "--name-only", "--format=", words[0]],
                       capture_output=True, text=True, check=True)
    assert ".clang-format" in r.stdout.split(), r.stdout


# --- scripts/check-layers -------------------------------------------------

def src_copy(tmp_path):
    dest = tmp_path / "src"
    shutil.copytree(os.path.join(REPO, "src"), dest,
                    ignore=shutil.ignore_patterns("*.o", ".deps", ".dirstamp", "keygate"))
    return dest


def layers(src, *args):
    started = time.monotonic()
    r = run([CHECK_LAYERS, "--src", str(src)] + list(args))
    r.took = time.monotonic() - started
    return r


def prepend(path, line):
    path.write_text(line + "\n" + path.read_text())


def test_check_layers_names_planted_includes_and_calls(tmp_path):
    src = src_copy(tmp_path)
    prepend(src / "api.c", '#include "db.h"')            # Routing -> Store
    prepend(src / "auth.c", '#include "http.h"')         # Domain -> HTTP
    prepend(src / "kg.c", '#include <libpq-fe.h>')       # libpq outside Store
    call_line = 1 + (src / "auth.c").read_text().count("\n")
    with open(src / "auth.c", "a") as f:
        f.write("void\ntooling_probe(void)\n{\n"
                "\t/* router_in_comment() */ (void)\"router_in_string()\";\n"
                "\trouter_tooling_call();\n}\n")
    call_line += 4
    r = layers(src)
    assert r.returncode == 1, (r.stdout, r.stderr)
    out = r.stdout
    assert "api.c:1: includes db.h: Routing never includes db.h or calls db_* " \
        "(Routing -> Store)" in out, out
    assert "auth.c:1: includes http.h of http, a layer above (Domain -> HTTP)" in out, out
    assert "kg.c:1: includes <libpq-fe.h>: only Store may use libpq (Base -> libpq)" in out, out
    assert "auth.c:%d: calls router_tooling_call() of router, a layer above " \
        "(Domain -> Routing)" % call_line in out, out
    assert "router_in_comment" not in out and "router_in_string" not in out, out
    assert r.took < 2, r.took

    # --list prints the same and does not fail
    r2 = layers(src, "--list")
    assert r2.returncode == 0 and r2.stdout == out, r2.stderr


def test_check_layers_knows_every_file_or_says_so(tmp_path):
    src = src_copy(tmp_path)
    (src / "foo.c").write_text('#include "kg.h"\n')
    (src / "db_tooling.c").write_text('#include "db.h"\n#include "auth.h"\n'
                                      'void\ndb_tooling(void)\n{\n\tauth_tooling();\n}\n')
    (src / "credential.c").write_text('#include "auth.h"\n')
    r = layers(src)
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert "%s: not in any layer: add it to the table" % (src / "foo.c") in r.stdout, r.stdout
    # db_*.c is the store: it may include db.h but knows no Domain
    assert "db_tooling.c:2: includes auth.h of auth, a layer above (Store -> Domain)" in r.stdout
    assert "db_tooling.c:6: calls auth_tooling() of auth, a layer above (Store -> Domain)" \
        in r.stdout, r.stdout
    assert "db_tooling.c:1:" not in r.stdout
    # credential*.c is Routing, which may use the domain
    assert "credential.c" not in r.stdout, r.stdout


def test_check_layers_passes_a_tree_that_keeps_the_layers(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    files = {
        "main.c": '#include "admin.h"\n#include "master.h"\n#include "db.h"\n'
                  'int\nmain(void)\n{\n\treturn admin_main() + master_run() + db_ping();\n}\n',
        "admin.h": "int admin_main(void);\n",
        "master.h": '#include "conf.h"\nint master_run(void);\n',
        "api.c": '#include "http.h"\n#include "auth.h"\n#include "json.h"\n'
                 'static int\napi_x(void)\n{\n\treturn http_header_add() + auth_login() + '
                 'json_parse() + x.db_field(1);\n}\n',
        "http.h": "int http_header_add(void);\n",
        "auth.h": '#include "db.h"\nint auth_login(void);\n',
        "db_users.c": '#include <libpq-fe.h>\n#include "db.h"\n#include "log.h"\n'
                      'int\ndb_user(void)\n{\n\treturn PQping("") + log_warnx("db_x()");\n}\n',
        "db.h": "int db_ping(void);\n",
        "json.c": "#include <cjson/cJSON.h>\n",
        "json.h": "int json_parse(void);\n",
        "conf.h": '#include "config.h"\n#include "log.h"\n',
        "log.h": "int log_warnx(const char *);\n",
    }
    for name, text in files.items():
        (src / name).write_text(text)
    r = layers(src)
    assert r.returncode == 0 and r.stdout == "", (r.stdout, r.stderr)
