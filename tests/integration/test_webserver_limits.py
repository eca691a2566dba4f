"""Request bodies and server names at the web server, with the shipped
snippets in real lighttpd and Apache:

  - an API request whose Content-Length exceeds max_body (16384) gets 413
    as soon as its headers arrive: no body is sent, the socket waits at
    most SOCKET_WAIT seconds for the answer;
  - a client that sends part of a body and stalls is dropped within
    STALL_BOUND seconds (lighttpd: server.max-read-idle 5 in the snippets,
    under /api/ and /private/; Apache: Debian's reqtimeout.conf, body=10,
    which the snippets rely on and document);
  - replies under /api/ and /private/ name no server version where the
    snippet can say so (lighttpd server.tag; Apache ServerSignature, with
    Debian's "ServerSignature On" from security.conf set around it).

The verdicts are "answered / closed before a generous bound", never a
measured duration compared with another.
"""

import os
import socket
import time

import pytest

import kgharness as kh
import webservers as ws
from webservers import bearer

SOCKET_WAIT = 5        # for the 413: the server answers on the headers alone
STALL_BOUND = 25       # lighttpd drops after 5 s idle, Apache (reqtimeout) after 10 s
OVER = 10 * 1000 * 1000
DEBIAN_REQTIMEOUT = "/etc/apache2/mods-available/reqtimeout.conf"


def send_headers(port, path, content_length, body=b"", extra=""):
    s = socket.create_connection(("127.0.0.1", port), timeout=SOCKET_WAIT)
    s.sendall(("POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
               "Content-Type: application/json\r\nContent-Length: %d\r\n%s\r\n"
               % (path, content_length, extra)).encode() + body)
    return s


def read_reply(s, wait):
    """Everything the server sends until it closes or `wait` seconds pass
    without a byte: (bytes, closed)."""
    s.settimeout(wait)
    data = b""
    while True:
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            return data, False
        except ConnectionResetError:
            return data, True
        if not chunk:
            return data, True
        data += chunk
        if b"\r\n\r\n" in data and data.startswith(b"HTTP/1.1 413"):
            return data, False


def assert_413_before_body(port, path):
    s = send_headers(port, path, OVER)
    try:
        data, _ = read_reply(s, SOCKET_WAIT)
    finally:
        s.close()
    assert data.startswith(b"HTTP/1.1 413"), data[:300]
    return data


def assert_stall_dropped(port, path, extra=""):
    s = send_headers(port, path, 100, body=b'{"username":', extra=extra)
    start = time.monotonic()
    try:
        data, closed = read_reply(s, STALL_BOUND)
    finally:
        s.close()
    assert closed, ("still connected after %ds" % STALL_BOUND, data[:300])
    # it was dropped for its stall, not answered as if the body were whole
    assert not data.startswith(b"HTTP/1.1 2"), data[:300]
    assert time.monotonic() - start < STALL_BOUND + SOCKET_WAIT


def no_version(headers_and_body):
    assert b"lighttpd/" not in headers_and_body and b"Apache/" not in headers_and_body, \
        headers_and_body[:600]


# --------------------------------------------------------------------------
# lighttpd


@pytest.fixture
def lt_site(keygate, fresh_servers, kg_workdir):
    """lighttpd with the pool and authorizer snippets (the protected
    application behind the guarded folder reads its body)."""
    return ws.start_lighttpd_site(fresh_servers, keygate, kg_workdir).web


def test_lighttpd_refuses_an_oversized_body_before_it_arrives(lt_site):
    data = assert_413_before_body(lt_site.port, "/api/join")
    no_version(data)
    # max_body itself still reaches keygate (its JSON, not lighttpd's page)
    api = ws.Client(lt_site.base_url)
    r = api.request("POST", "/join", body={"pad": "x" * (16384 - 11)})
    assert len(r.request.body) == 16384
    assert r.status_code == 400 and r.json()["error"] == "invalid_request", r.text[:300]
    # and the rest of the site keeps lighttpd's default (no limit)
    s = send_headers(lt_site.port, "/elsewhere", OVER)
    try:
        data, _ = read_reply(s, 2)
    finally:
        s.close()
    assert not data.startswith(b"HTTP/1.1 413"), data[:300]


@pytest.mark.parametrize("path", ["/api/login", "/private/whoami.cgi"])
def test_lighttpd_drops_a_stalled_body(lt_site, path):
    # with a valid token, so that the guarded folder's request goes on to
    # the program behind it (a static file is served without the body)
    _, _, b = ws.Client(lt_site.base_url).session()
    assert_stall_dropped(lt_site.port, path, extra="Authorization: Bearer %s\r\n" % b["token"])


def test_lighttpd_names_no_version_under_api_and_private(lt_site):
    _, _, b = ws.Client(lt_site.base_url).session()
    for path, headers in (("/api/health", {}), ("/api/me", {}),
                          ("/private/secret.txt", {}),
                          ("/private/secret.txt", bearer(b["token"]))):
        r = lt_site.get(path, headers=headers)
        assert "Server" not in r.headers, (path, r.status_code, r.headers)


def test_lighttpd_www_snippet_names_no_version(keygate, fresh_servers):
    kg = keygate.start(**ws.RELAXED)
    lt = fresh_servers.lighttpd([
        (os.path.join(ws.LIGHTTPD_CONF, "keygate.conf"), {ws.POOL_SOCKET: kg.socket}),
        (os.path.join(ws.LIGHTTPD_CONF, "keygate-www.conf"),
         {"/usr/share/keygate/www": os.path.join(kh.REPO, "www")}),
    ])
    for path in ("/", "/app.js", "/no-such-file", "/api/health"):
        r = lt.get(path)
        assert r.status_code in (200, 404), (path, r.status_code)
        assert "Server" not in r.headers, (path, r.headers)


def test_lighttpd_spawn_snippet_has_the_same_limits():
    """keygate-spawn.conf is the alternative to keygate.conf: the same
    block for /api/ (the server tests run keygate.conf's)."""
    def block(name):
        with open(os.path.join(ws.LIGHTTPD_CONF, name)) as f:
            text = f.read()
        start = text.index('$HTTP["url"] =~ "^/api(/|$)" {')
        return text[start:text.index("}", start) + 1]
    assert block("keygate-spawn.conf") == block("keygate.conf")
    assert "server.max-request-size = 16" in block("keygate.conf")


# --------------------------------------------------------------------------
# Apache

needs_apache = pytest.mark.skipif(not os.access(ws.APACHE_BIN, os.X_OK),
                                  reason="Apache is not installed")

# Debian's security.conf defaults, which the snippets must not rely on
DEBIAN_SECURITY = "ServerTokens OS\nServerSignature On\n"


def reqtimeout_snippet():
    if not os.path.exists(DEBIAN_REQTIMEOUT):
        pytest.skip("no %s" % DEBIAN_REQTIMEOUT)
    return [(DEBIAN_REQTIMEOUT, {})]


@needs_apache
def test_apache_fcgid_limits(pg, fresh_servers, kg_workdir):
    site = ws.start_apache_site(fresh_servers, kg_workdir, pg,
                                snippets_before=reqtimeout_snippet(),
                                modules=["reqtimeout"], extra_conf=DEBIAN_SECURITY)
    ap, api = site.web, site.api
    api.account_flow()
    data = assert_413_before_body(ap.port, "/api/join")
    body = data.split(b"\r\n\r\n", 1)[-1]
    assert b"Apache/" not in body, body[:600]      # ServerSignature Off
    # max_body itself still reaches keygate
    r = api.request("POST", "/join", body={"pad": "x" * (16384 - 11)})
    assert len(r.request.body) == 16384
    assert r.status_code == 400 and r.json()["error"] == "invalid_request", r.text[:300]
    assert_stall_dropped(ap.port, "/api/login")
    # the program behind the guarded folder, with a valid token
    _, _, b = api.session()
    assert_stall_dropped(ap.port, "/private/whoami.cgi",
                         extra="Authorization: Bearer %s\r\n" % b["token"])


@needs_apache
def test_apache_proxy_fcgi_limits(keygate, fresh_servers):
    kg = ws.start_pool_for_apache(keygate)
    ap = fresh_servers.apache(
        reqtimeout_snippet() +
        [(os.path.join(ws.APACHE_CONF, "keygate-proxy.conf"), {ws.POOL_SOCKET: kg.socket})],
        modules=["proxy", "proxy_fcgi", "reqtimeout"], extra_conf=DEBIAN_SECURITY)
    ws.Client(ap.base_url).account_flow()
    data = assert_413_before_body(ap.port, "/api/join")
    assert b"Apache/" not in data.split(b"\r\n\r\n", 1)[-1], data[:600]
    assert_stall_dropped(ap.port, "/api/login")
