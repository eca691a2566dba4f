"""The configuration table is the single source (STYLE.md, PgBouncer's
optscan): every key in src/conf.c's conf_table must appear in the shipped
conf/keygate.conf and in keygate.conf(5), with the same default, and
`keygate check-config -v` must report the shipped file's values. Also: the
man pages format without warnings and keygate(8) names every command.

No server is started here.
"""

import glob
import os
import re
import shutil
import subprocess

import pytest

import kgharness
from kgharness import run_keygate

REPO = kgharness.REPO
CONF_C = os.path.join(REPO, "src", "conf.c")
CONF_FILE = os.path.join(REPO, "conf", "keygate.conf")
MAN5 = os.path.join(REPO, "man", "keygate.conf.5")
MAN8 = os.path.join(REPO, "man", "keygate.8")
OPERATIONS = os.path.join(REPO, "docs", "OPERATIONS.md")

# defaults that are build paths ($(pkgdatadir)/...): compared by file name
PATH_KEYS = {"migrations_dir", "common_passwords"}


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def table_keys():
    """[(name, type)] from conf_table, in order."""
    text = read(CONF_C)
    start = text.index("conf_table[]")
    end = text.index("};", start)
    keys = re.findall(r'\{\s*"([a-z0-9_]+)",\s*(CT_[A-Z]+)', text[start:end])
    assert len(keys) >= 40, keys
    return keys


KEYS = [k for k, _ in table_keys()]
TYPES = dict(table_keys())


def table_restart_keys():
    """The keys whose conf_table row ends in RESTART: a reload keeps them."""
    text = read(CONF_C)
    start = text.index("conf_table[]")
    end = text.index("};", start)
    rows = re.findall(r'\{\s*"([a-z0-9_]+)",[^\n]*?,\s*(RELOAD|RESTART|LIST\(\w+\))\s*\},',
                      text[start:end])
    assert [k for k, _ in rows] == KEYS, "a conf_table row without RELOAD, RESTART or LIST()"
    return {k for k, how in rows if how == "RESTART"}


def shipped_values():
    """{key: value} from the `key = value` lines of conf/keygate.conf."""
    values = {}
    for line in read(CONF_FILE).splitlines():
        m = re.match(r"^([a-z0-9_]+)\s*=\s*(.*?)\s*$", line)
        if m:
            assert m.group(1) not in values, "%s set twice in %s" % (m.group(1), CONF_FILE)
            values[m.group(1)] = m.group(2)
    return values


def seconds(v):
    m = re.match(r"^(\d+)([smhd]?)$", v)
    assert m, v
    return int(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]


def normalise(key, value):
    """A value as check-config -v prints it."""
    if TYPES[key] == "CT_DURATION":
        return str(seconds(value))
    return value


def check_config_v(conf_path):
    env = kgharness.clean_env()                  # no KEYGATE_* from outside
    r = subprocess.run([kgharness.KEYGATE_BIN, "-c", conf_path, "check-config", "-v"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                       universal_newlines=True, timeout=30)
    assert r.returncode == 0, (r.returncode, r.stdout, r.stderr)
    out = {}
    for line in r.stdout.splitlines():
        m = re.match(r"^([a-z0-9_]+) = ?(.*)$", line)
        if m:
            out[m.group(1)] = m.group(2)
    return out, r.stdout


def man_items(text):
    """{key: text of its .It Ic block} from keygate.conf(5)."""
    items = {}
    parts = re.split(r"^(?=\.It |\.El\b|\.Ss |\.Sh )", text, flags=re.M)
    for p in parts:
        m = re.match(r"^\.It Ic ([a-z0-9_]+)\b", p)
        if m:
            assert m.group(1) not in items, "%s documented twice" % m.group(1)
            items[m.group(1)] = p
    return items


def man_default(block):
    """The default a man page item states: 'The default is empty.' or
    'The default is\\n.Ql VALUE' (VALUE possibly quoted)."""
    if re.search(r"The default is empty\.", block):
        return ""
    m = re.search(r'The default is\n\.Ql (?:"([^"]*)"|(\S+))', block)
    assert m, block
    return m.group(1) if m.group(1) is not None else m.group(2)


# ---------------------------------------------------------------------------


def test_every_key_is_in_the_shipped_file():
    values = shipped_values()
    missing = [k for k in KEYS if k not in values]
    assert not missing, "not in conf/keygate.conf: %s" % missing
    unknown = [k for k in values if k not in KEYS]
    assert not unknown, "in conf/keygate.conf but not in conf_table: %s" % unknown


def test_every_key_is_in_the_man_page():
    items = man_items(read(MAN5))
    missing = [k for k in KEYS if k not in items]
    assert not missing, "not in man/keygate.conf.5: %s" % missing
    unknown = [k for k in items if k not in KEYS]
    assert not unknown, "in man/keygate.conf.5 but not in conf_table: %s" % unknown
    # In the order of the shipped file, so that the two read side by side.
    assert list(items) == list(shipped_values()), \
        "keygate.conf(5) and conf/keygate.conf list the keys in different orders"


def test_man_page_defaults_match_the_shipped_file():
    items, values = man_items(read(MAN5)), shipped_values()
    wrong = []
    for k in KEYS:
        d = man_default(items[k])
        if d != values[k]:
            wrong.append("%s: man page %r, conf/keygate.conf %r" % (k, d, values[k]))
    assert not wrong, "\n".join(wrong)


def shipped_comments():
    """{key: the comment lines just above it} from conf/keygate.conf."""
    comments, block = {}, []
    for line in read(CONF_FILE).splitlines():
        m = re.match(r"^([a-z0-9_]+)\s*=", line)
        if m:
            comments[m.group(1)] = "\n".join(block)
            block = []
        elif line.startswith("#"):
            block.append(line)
        else:
            block = []
    return comments


def test_restart_keys_are_the_tables():
    """[restart] in both documents marks exactly the keys the table marks
    RESTART, the ones a reload keeps (conf_keep_restart_keys)."""
    want = table_restart_keys()
    assert {"listen", "backlog", "user", "hash_concurrency"} <= want, want
    items = man_items(read(MAN5))
    man = {k for k in KEYS if ".Sy [restart]" in items[k]}
    assert man == want, "keygate.conf(5) marks %s, conf_table %s" % (sorted(man), sorted(want))
    comments = shipped_comments()
    shipped = {k for k in KEYS if "[restart]" in comments.get(k, "")}
    assert shipped == want, \
        "conf/keygate.conf marks %s, conf_table %s" % (sorted(shipped), sorted(want))


def test_man_page_types_match_the_table():
    items = man_items(read(MAN5))
    expect = {"CT_STR": {"string", "list"}, "CT_CHOICE": {"string"}, "CT_INT": {"number"},
              "CT_LONG": {"number"}, "CT_OCTAL": {"mode"}, "CT_DURATION": {"duration"},
              "CT_CIDRS": {"list"}, "CT_ORIGINS": {"list"}, "CT_SCOPES": {"list"}}
    known = {"string", "list", "number", "mode", "duration"}
    wrong = []
    for k in KEYS:
        m = re.match(r"^\.It Ic %s Ar (\w+)" % k, items[k])
        # A type the table gained later: any of the documented type words.
        if not m or m.group(1) not in expect.get(TYPES[k], known):
            wrong.append("%s (%s): %s" % (k, TYPES[k], items[k].splitlines()[0]))
    assert not wrong, "\n".join(wrong)


def test_check_config_reports_the_shipped_values():
    values = shipped_values()
    got, raw = check_config_v(CONF_FILE)
    assert list(got) == KEYS, raw
    wrong = ["%s: check-config %r, file %r" % (k, got[k], values[k])
             for k in KEYS if got[k] != normalise(k, values[k])]
    assert not wrong, "\n".join(wrong)


def test_the_shipped_values_are_the_defaults(tmp_path):
    empty = tmp_path / "empty.conf"
    empty.write_text("# nothing: every key at its default\n")
    got, raw = check_config_v(str(empty))
    values = shipped_values()
    assert list(got) == KEYS, raw
    wrong = []
    for k in KEYS:
        want = normalise(k, values[k])
        if k in PATH_KEYS:
            # $(pkgdatadir) differs between a source build and the package.
            ok = os.path.basename(got[k]) == os.path.basename(want) and \
                got[k].endswith("/keygate/" + os.path.basename(want))
        else:
            ok = got[k] == want
        if not ok:
            wrong.append("%s: default %r, conf/keygate.conf %r" % (k, got[k], values[k]))
    assert not wrong, "\n".join(wrong)


# ---------------------------------------------------------------------------
# the man pages themselves


@pytest.mark.parametrize("page", [MAN5, MAN8], ids=os.path.basename)
def test_man_page_formats_without_warnings(page):
    groff = shutil.which("groff")
    if groff is None:
        pytest.skip("groff not installed")
    r = subprocess.run([groff, "-mdoc", "-ww", "-z", page], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, universal_newlines=True, timeout=60)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    mandoc = shutil.which("mandoc")
    if mandoc is not None:
        r = subprocess.run([mandoc, "-T", "lint", "-W", "warning", page],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           universal_newlines=True, timeout=60)
        assert r.returncode == 0, r.stdout


def test_keygate_8_names_every_command_and_option():
    text = read(MAN8)
    usage = subprocess.run([kgharness.KEYGATE_BIN, "--help"], stdout=subprocess.PIPE,
                           env=kgharness.clean_env(), universal_newlines=True,
                           timeout=30).stdout
    for cmd in ("serve", "migrate", "check-config"):
        assert re.search(r"\bCm %s\b" % cmd, text), cmd
    # Every admin command line of `keygate --help`, as .Cm words in the page.
    for line in usage.splitlines():
        m = re.match(r"^\s+keygate ((?:[a-z]+ ?)+)", line)
        if not m:
            continue
        words = m.group(1).split()
        assert re.search(r"\bCm %s\b" % re.escape(" ".join(words)), text), line
        for opt in re.findall(r"--([a-z-]+)", line):
            assert "Fl -%s" % opt in text, (opt, line)
    for sec in ("ENVIRONMENT", "FILES", "EXIT STATUS", "SIGNALS", "SEE ALSO"):
        assert re.search(r"^\.S[hs] %s$" % sec, text, re.M | re.I), sec
    for sig in ("SIGHUP", "SIGTERM"):
        assert "Dv %s" % sig in text


def test_operations_guide_covers_every_admin_command_and_throttle_key():
    text = read(OPERATIONS)
    for cmd in ("keygate user add", "keygate user passwd", "keygate user disable",
                "keygate user enable", "keygate user list", "keygate token list",
                "keygate token revoke", "keygate events", "keygate prune",
                "keygate migrate", "keygate check-config", "SIGHUP", "SIGTERM", "/status"):
        assert cmd in text, cmd
    for key in ("login_max_failures", "login_failure_window", "login_delay",
                "login_max_delay", "login_max_per_address", "join_max_per_address",
                "trusted_proxies", "audit_retention"):
        assert "`%s`" % key in text, key


def test_shipped_config_lists_every_key(tmp_path, kg_workdir):
    """conf/keygate.conf and keygate.conf(5) document every key the parser
    knows (check-config -v prints them all)."""
    shipped = os.path.join(kgharness.REPO, "conf", "keygate.conf")
    empty = tmp_path / "empty.conf"
    empty.write_text("")
    r = run_keygate(["check-config", "-v"], kg_workdir, config_path=str(empty),
                    timeout=30)
    assert r.returncode == 0, (r.stdout, r.stderr)
    keys = [line.split("=", 1)[0].strip() for line in r.stdout.splitlines()
            if re.match(r"^[a-z0-9_]+\s*=", line)]
    assert len(keys) >= 20, r.stdout
    with open(shipped) as f:
        text = f.read()
    missing = [k for k in keys
               if not re.search(r"^[#;]?\s*%s\s*=" % re.escape(k), text, re.M)]
    assert not missing, "keys missing from conf/keygate.conf: %s" % missing
    man = [p for d in ("docs", "man", "doc")
           for p in glob.glob(os.path.join(kgharness.REPO, d, "keygate.conf.5*"))]
    assert man, "no keygate.conf(5) under man/"
    for page in man:
        with open(page) as f:
            mtext = f.read()
        missing = [k for k in keys if not re.search(r"\b%s\b" % re.escape(k), mtext)]
        assert not missing, "keys missing from %s: %s" % (page, missing)
