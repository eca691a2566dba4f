"""Checks of keygate's JSON replies, the same for a reply through a web
server (requests.Response) and one straight over FastCGI
(kgharness.FCGIResponse), and of its request log."""


def status_of(r):
    return r.status_code if hasattr(r, "status_code") else r.status


def header_of(r, name):
    return r.headers.get(name) if hasattr(r, "status_code") else r.header(name)


def js(r, status):
    """Check status, Content-Type and nosniff; return the JSON body."""
    text = r.text
    assert status_of(r) == status, (status_of(r), text[:500])
    ct = header_of(r, "Content-Type") or ""
    assert ct.split(";")[0].strip().lower() == "application/json", (ct, text[:200])
    assert (header_of(r, "X-Content-Type-Options") or "").lower() == "nosniff"
    body = r.json()
    assert isinstance(body, dict), body
    return body


def error_body(r, status, code):
    b = js(r, status)
    assert b.get("success") is False, b
    assert b.get("error") == code, b
    assert isinstance(b.get("message"), str) and b["message"], b
    return b


def health_ok(r):
    b = js(r, 200)
    assert b.get("success") is True and b.get("status") == "ok", b


def log_lines_with(kg, needle):
    return [line for line in kg.log().splitlines() if needle in line]
