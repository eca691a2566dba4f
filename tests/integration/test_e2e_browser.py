"""The reference web client (www/) in headless Chromium, end to end.

Starts its own stack the way scripts/run serves it: PostgreSQL, a keygate
pool in cookie mode for plain HTTP (cookie_secure = 0, the page's origin in
allowed_origins), and lighttpd with the shipped conf/lighttpd/keygate.conf
(the API at /api/) and conf/lighttpd/keygate-www.conf (www/ at /), on a free
port of 127.0.0.1. Then runs tests/e2e/flow.mjs against it with Node.js:
playwright-core driving Debian's /usr/bin/chromium (see tests/e2e/README.md
for what the flow does). The test passes when the flow exits 0.

Screenshots are kept in pytest's temporary directory (the last runs of
pytest-of-<user> survive) and their directory is printed; KG_E2E_SHOTS=DIR
puts them in DIR instead.

Needs: chromium (Debian package), node, and tests/e2e/node_modules
(`npm ci` in tests/e2e). A missing piece fails the test with the command that
installs it: the browser test is part of the suite, not an optional extra.
"""

import contextlib
import os
import shutil
import signal
import subprocess

import pytest
import requests

import kgharness

E2E_DIR = os.path.join(kgharness.REPO, "tests", "e2e")
FLOW = os.path.join(E2E_DIR, "flow.mjs")
WWW_DIR = os.path.join(kgharness.REPO, "www")
WWW_SNIPPET = os.path.join(kgharness.REPO, "conf", "lighttpd", "keygate-www.conf")
WWW_INSTALLED = "/usr/share/keygate/www"      # what the snippet names
CHROMIUM = os.environ.get("KG_CHROMIUM") or "/usr/bin/chromium"
FLOW_TIMEOUT = 240      # flow.mjs gives up by itself after 180 s

# keygate for the page: plain HTTP on 127.0.0.1, so no Secure cookie; the
# throttling step of the flow needs a 429 after a few failed logins.
E2E_SETTINGS = {
    "cookie_secure": 0,
    "login_max_failures": 3,
    "login_delay": 30,
    "login_max_per_address": 1000000,
    "join_max_per_address": 1000000,
}


def _prerequisites():
    """What is missing to run the browser, as an install hint ('' if none)."""
    missing = []
    if not os.access(CHROMIUM, os.X_OK):
        missing.append("%s (apt-get install chromium)" % CHROMIUM)
    if shutil.which("node") is None:
        missing.append("node (Node.js 20 or later)")
    if not os.path.isdir(os.path.join(E2E_DIR, "node_modules", "playwright-core")):
        missing.append("tests/e2e/node_modules/playwright-core "
                       "(cd tests/e2e && npm ci)")
    return ", ".join(missing)


def _www_conf(workdir, name):
    """conf/lighttpd/keygate-www.conf with the checkout's www/ as document root."""
    with open(WWW_SNIPPET) as f:
        text = f.read()
    assert WWW_INSTALLED in text, "%s does not mention %s" % (WWW_SNIPPET, WWW_INSTALLED)
    path = os.path.join(workdir, name + "-keygate-www.conf")
    with open(path, "w") as f:
        f.write(text.replace(WWW_INSTALLED, WWW_DIR))
    return path


def _start_stack(keygate, lighttpd, workdir):
    """keygate + lighttpd on a port chosen first, because keygate must know
    the page's origin; retried if the port is taken meanwhile."""
    conf = _www_conf(workdir, "e2e")
    last = None
    for _ in range(3):
        port = kgharness.free_port()
        origins = "http://127.0.0.1:%d http://localhost:%d" % (port, port)
        kg = keygate.start(allowed_origins=origins, **E2E_SETTINGS)
        try:
            lt = lighttpd.start(kg, port=port, extra_conf='include "%s"' % conf)
            return kg, lt
        except kgharness.HarnessError as e:
            last = e
            kg.cleanup()
    raise last


def test_reference_client_in_chromium(keygate, lighttpd, kg_workdir, tmp_path, capsys):
    missing = _prerequisites()
    if missing:
        pytest.fail("the browser test needs: " + missing)
    shots = os.environ.get("KG_E2E_SHOTS") or str(tmp_path / "screenshots")
    os.makedirs(shots, exist_ok=True)
    kg, lt = _start_stack(keygate, lighttpd, kg_workdir)

    # The stack serves what the flow expects before a browser is started.
    page = requests.get(lt.url + "/", timeout=10)
    assert page.status_code == 200 and "app.js" in page.text, (page.status_code, page.text[:300])
    assert "script-src 'self'" in page.headers.get("Content-Security-Policy", ""), page.headers
    assert requests.get(lt.url + "/api/health", timeout=10).json()["status"] == "ok"

    env = dict(os.environ, KG_CHROMIUM=CHROMIUM, PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD="1")
    # Its own process group: on a timeout, Chromium goes with node.
    p = subprocess.Popen(["node", FLOW, lt.url + "/", shots], cwd=E2E_DIR, env=env,
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, start_new_session=True)
    try:
        raw, _ = p.communicate(timeout=FLOW_TIMEOUT)
        rc = p.returncode
    except subprocess.TimeoutExpired:
        raw = b""
        rc = "timeout after %d s" % FLOW_TIMEOUT
    finally:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(p.pid, signal.SIGKILL)
        if p.poll() is None or rc != p.returncode:
            more, _ = p.communicate(timeout=10)
            raw += more or b""
    out = raw.decode("utf-8", "replace")
    print(out)
    with capsys.disabled():     # the artifacts' place, also in a passing run
        print("\n    browser screenshots: %s" % shots)
    assert rc == 0, "tests/e2e/flow.mjs failed (%s); screenshots in %s\n%s" % (rc, shots, out)
    assert os.listdir(shots), "no screenshots in %s" % shots
