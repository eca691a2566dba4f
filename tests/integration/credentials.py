"""The credentials a test used, and the check that none of them reached a
log.

Tests, and the helpers that make or receive credentials, note() every
password, secret and token they use. conftest.py's autouse fixture
`_credentials_stay_out_of_logs` empties the record before every test of the
session and, after a test that passed, looks for each noted value in the
logs of every keygate pool started during that test and of the servers the
test's fixtures watch() (a module's long-lived stack, say). The record
belongs to one test: nothing one test notes is checked, or missed, in
another, whatever ran before.
"""

import kgharness

_noted = set()          # this test's passwords, secrets, tokens
_in_query = set()       # those of them it sent in a query string
_watched = []           # (name, fn -> text or None, query_ok) for this test


def note(*values):
    """Remember values (strings of 8 characters or more) for the check."""
    for v in values:
        if isinstance(v, str) and len(v) >= 8:
            _noted.add(v)


def note_in_query(*values):
    """As note(), for values sent in a query string: a web server's access
    log records request lines, so watch(..., query_ok=True) logs may hold
    them; keygate's log may not."""
    note(*values)
    _in_query.update(v for v in values if isinstance(v, str) and len(v) >= 8)


def forget(*values):
    """Take values out of the record again (a test of the check itself)."""
    _noted.difference_update(values)
    _in_query.difference_update(values)


def noted():
    """What this test has noted so far (a copy)."""
    return set(_noted)


def watch(name, text, query_ok=False):
    """Also search text() (a log's contents, or None when it is gone) after
    this test."""
    _watched.append((name, text, query_ok))


def reset():
    _noted.clear()
    _in_query.clear()
    del _watched[:]


def leaks(pools):
    """[(where, value)] for every noted value found in the logs of the
    keygate pools (stopped or not) and the watched logs."""
    found = []
    for kg in pools:
        text = kgharness.read_text(kg.log_path)
        found.extend(("keygate log %s" % kg.name, s) for s in sorted(_noted) if s in text)
    for name, text_fn, query_ok in _watched:
        text = text_fn()
        if text is None:
            continue
        look = _noted - _in_query if query_ok else _noted
        found.extend((name, s) for s in sorted(look) if s in text)
    return found
