#!/usr/bin/env python3
"""Write the seed corpora of the fuzz targets into tests/fuzz/corpus/<name>/.

    tests/fuzz/gen-corpus.py          (re)write the generated seeds

Seeds are small valid and invalid examples of each input format; libFuzzer
mutates from there. Generated files are named gen-*; regression inputs
(crashes once found, see README.md) are named regress-* and are never
touched by this script. Tokens are computed here with the format of
src/token.h (CRC32 check characters), so the valid ones really parse.
"""

import base64
import os
import shutil
import struct
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
CORPUS = os.path.join(HERE, "corpus")


def b64url(raw):
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def make_token(seed):
    key = "kg_1_" + b64url(bytes((seed + i) % 256 for i in range(16)))
    body = b64url(bytes((seed * 7 + i) % 256 for i in range(32)))
    crc = zlib.crc32((key + "." + body).encode()) & 0xFFFFFFFF
    return key, body + b64url(struct.pack(">I", crc))


KEY, SECRET = make_token(1)
TOKEN = KEY + "." + SECRET
KEY2, SECRET2 = make_token(2)


def write(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, "gen-" + name), "wb") as f:
        f.write(data)


def clear(target):
    d = os.path.join(CORPUS, target)
    if os.path.isdir(d):
        for n in os.listdir(d):
            if n.startswith("gen-"):
                os.unlink(os.path.join(d, n))


def body():
    seeds = {
        "empty": "",
        "empty-object": "{}",
        "join": '{"username":"alice","password":"correct horse battery staple"}',
        "join-email": '{"username":"bob.b-1","password":"Tr0ub4dor&3 is long","email":"bob@example.org"}',
        "join-bad-email": '{"username":"bob","password":"long enough password","email":"a@b@c"}',
        "join-bad-username": '{"username":"no spaces allowed","password":"long enough password"}',
        "join-missing": '{"username":"alice"}',
        "join-wrong-type": '{"username":42,"password":["x"],"email":true}',
        "join-null": '{"username":null,"password":null}',
        "join-long-username": '{"username":"%s","password":"p"}' % ("u" * 257),
        "join-long-password": '{"username":"alice","password":"%s"}' % ("p" * 1025),
        "join-unicode": '{"username":"alice","password":"ﬁnal Ｆｕｌｌｗｉｄｔｈ café café"}',
        "join-escapes": '{"username":"al\\u0069ce","password":"\\ud83d\\ude00\\t\\"\\\\\\/ \\u00e9t\\u00e9 long"}',
        "join-fdfa": '{"username":"alice","password":"\ufdfa\ufdfa"}',
        "login": '{"username":"alice","password":"correct horse battery staple","remember":true}',
        "login-scopes": '{"username":"alice","password":"pw pw pw pw","scopes":["read","write:all","admin.*"]}',
        "login-scopes-bad": '{"username":"alice","password":"pw","scopes":["", "sp ace", "%s"]}' % ("s" * 65),
        "login-scopes-many": '{"username":"a","password":"b","scopes":[%s]}' % ",".join('"s%d"' % i for i in range(17)),
        "login-scopes-type": '{"scopes":"read","remember":"yes","cookie":1}',
        "login-token": '{"key":"%s","secret":"%s"}' % (KEY, SECRET),
        "login-token-bad": '{"key":"%s","secret":"%s"}' % (KEY, SECRET2),
        "login-key-only": '{"key":"%s"}' % KEY,
        "login-cookie": '{"username":"alice","password":"pw pw pw pw pw","cookie":true,"remember":false}',
        "logout": '{"key":"%s","secret":"%s","all":true}' % (KEY, SECRET),
        "logout-all": '{"all":false}',
        "password": '{"current_password":"old password here","new_password":"a new password, long"}',
        "password-same-user": '{"current_password":"x","new_password":"someone-someone-someone"}',
        "dup-keys": '{"username":"a","username":"b","password":"c"}',
        "dup-nested": '{"username":"alice","password":"p","x":{"a":1,"a":2}}',
        "depth-8": '{"a":' * 7 + '{}' + '}' * 7,
        "depth-9": '{"a":' * 8 + '{}' + '}' * 8,
        "nul-escape": '{"username":"al\\u0000ice","password":"x"}',
        "lone-surrogate": '{"username":"alice","password":"\\ud800 x"}',
        "lone-low-surrogate": '{"username":"alice","password":"\\udc00 x"}',
        "trailing-garbage": '{"username":"alice","password":"p"} x',
        "trailing-space": '{"username":"alice","password":"p"} \r\n\t',
        "two-objects": '{}{}',
        "array": '[{"username":"alice"}]',
        "string": '"alice"',
        "numbers": '{"username":1e400,"password":-0.0,"remember":123456789012345678901234567890}',
        "whitespace": ' \n { "username" : "alice" , "password" : "pw" } ',
        "bom": '\ufeff{"username":"alice","password":"pw"}',
        "comment": '{"username":"alice"/* c */,"password":"pw"}',
        "unterminated": '{"username":"alice","password":"pw',
        "control-char": '{"username":"ali\x01ce","password":"p\x7fw"}',
    }
    for name, text in seeds.items():
        write("body", name, text)
    write("body", "invalid-utf8", b'{"username":"alice","password":"\xc3\x28\xff\xed\xa0\x80"}')
    write("body", "overlong-utf8", b'{"username":"\xc0\xafalice","password":"\xe0\x80\xaf"}')
    write("body", "nul-byte", b'{"username":"alice\x00","password":"pw"}')


def credentials():
    parts = ["authorization", "key", "secret", "query", "cookie", "body_key",
             "body_secret", "request_uri", "script_name", "path_info", "base",
             "content_type", "method"]

    def rec(**kw):
        flags = 0
        vals = []
        for i, p in enumerate(parts):
            v = kw.get(p)
            if v is not None:
                flags |= 1 << i
            vals.append(v or "")
        while vals and vals[-1] == "":
            vals.pop()
        return struct.pack("<H", flags) + b"\0".join(
            v.encode() if isinstance(v, str) else v for v in vals)

    seeds = {
        "none": rec(),
        "bearer": rec(authorization="Bearer " + TOKEN, method="GET", request_uri="/api/me", base="/api"),
        "bearer-lower-tab": rec(authorization="bearer\t" + TOKEN + " \t", method="POST"),
        "bearer-bad-crc": rec(authorization="Bearer " + KEY + "." + SECRET2),
        "bearer-inner-space": rec(authorization="Bearer " + KEY + " ." + SECRET),
        "bearer-empty": rec(authorization="Bearer   "),
        "basic": rec(authorization="Basic YWxpY2U6cHc="),
        "bearer-newline": rec(authorization="Bearer " + TOKEN + "\n"),
        "key-secret": rec(key=KEY, secret=SECRET, method="DELETE", request_uri="/api/sessions/" + KEY),
        "key-only": rec(key=KEY),
        "key-secret-bad": rec(key=KEY2, secret=SECRET),
        "two-ways": rec(authorization="Bearer " + TOKEN, key=KEY, secret=SECRET),
        "body-key-secret": rec(body_key=KEY, body_secret=SECRET, method="POST", content_type="application/json"),
        "body-and-header": rec(body_key=KEY, body_secret=SECRET, authorization="Bearer " + TOKEN),
        "query-key": rec(query="key=" + KEY + "&secret=" + SECRET),
        "query-encoded": rec(query="a=1;%6Bey=x&%73ecret=y"),
        "query-plus": rec(query="access+token=1&api%5Fkey=2&Token=3"),
        "query-harmless": rec(query="page=2&sort=name&keyword=x&tokens"),
        "query-long-name": rec(query="x" * 40 + "=1&password"),
        "query-percent-end": rec(query="ke%7=1&secret%"),
        "cookie": rec(cookie="keygate_token=" + TOKEN, method="GET"),
        "cookie-many": rec(cookie="a=b; keygate_token=" + TOKEN + "; c=d;; keygate_token=x"),
        "cookie-spaces": rec(cookie="  keygate_token=" + TOKEN + "   ;other=1"),
        "cookie-prefix": rec(cookie="xkeygate_token=1; keygate_tokenx=2; keygate_token"),
        "cookie-empty": rec(cookie="keygate_token=;"),
        "route-script": rec(script_name="/api", path_info="/login/", base="/api/"),
        "route-root": rec(request_uri="/api?x=1", base="/api"),
        "route-slashes": rec(request_uri="////", base="/"),
        "route-long": rec(request_uri="/" + "a" * 600, base="/api"),
        "route-long-base": rec(script_name="/b" * 200, path_info="/c" * 100, base="/b"),
        "content-types": rec(content_type=" Application/JSON ; charset=utf-8", method="OPTIONS"),
        "content-type-bad": rec(content_type="application/jsonp", method="PATCH"),
        "all": rec(**{p: "x" for p in parts}),
    }
    for name, data in seeds.items():
        write("credentials", name, data)


def conf():
    with open(os.path.join(ROOT, "conf", "keygate.conf"), "rb") as f:
        write("conf", "shipped", f.read())
    seeds = {
        "empty": "",
        "section-only": "[keygate]\n",
        "minimal": "workers = 2\nlisten = 127.0.0.1:9000\ndatabase = host=/tmp dbname=keygate\n",
        "no-section": "log_level = debug\nlog_target: syslog\n",
        "durations": "token_idle_timeout = 15m\ntoken_lifetime = 12h\nremember_lifetime = 30d\nlogin_delay = 90s\n",
        "octal": "listen_mode = 0770\n",
        "octal-bad": "listen_mode = 0999\n",
        "unknown-key": "[keygate]\nworkerz = 2\n",
        "unknown-section": "[other]\nworkers = 2\n",
        "out-of-range": "workers = 100000\n",
        "not-a-number": "backlog = 12x\n",
        "negative": "max_requests = -1\n",
        "space-number": "backlog =  12 \n",
        "bad-choice": "log_level = verbose\n",
        "idle-over-lifetime": "token_idle_timeout = 2d\ntoken_lifetime = 1d\n",
        "base-path-relative": "base_path = api\n",
        "empty-listen": "listen =\n",
        "delay-over-max": "login_delay = 1h\nlogin_max_delay = 15m\n",
        "comments": "; comment\n# comment\nworkers = 3 ; inline\ndatabase = password=a#b\n",
        "continuation": "allowed_origins = https://a.example\n  https://b.example\n",
        "no-equals": "[keygate]\nworkers\n",
        "crlf": "[keygate]\r\nworkers = 2\r\nlog_level = warn\r\n",
        "bom": "\ufeff[keygate]\nworkers = 2\n",
        "too-long-value": "cookie_name = " + "c" * 70 + "\n",
        "long-line": "database = host=db.example.org " + "x" * 180 + " port=5432\n",
        "long-comment": "#" + "c" * 150 + " workers = 7\n",
        "duplicate": "workers = 2\nworkers = 3\n",
        "overflow": "max_requests = 99999999999999999999\naudit_retention = 9223372036854775807d\n",
        "unclosed-section": "[keygate\nworkers = 2\n",
        "duration-plain": "90",
        "duration-s": "90s",
        "duration-d": "30d",
        "duration-bad": "12x",
        "duration-two-units": "1hm",
        "duration-overflow": "9223372036854775807d",
    }
    for name, text in seeds.items():
        write("conf", name, text)


def password():
    def rec(username, pw):
        if isinstance(pw, str):
            pw = pw.encode()
        if username is None:
            return b"\xff" + pw
        u = username.encode()
        return bytes([len(u)]) + u + pw

    seeds = {
        "plain": rec(None, "correct horse battery staple"),
        "short": rec(None, "short"),
        "common": rec(None, "Password1234"),
        "common-qwerty": rec("bob", "QWERTYUIOP"),
        "common-unicode": rec(None, "ÄÖÜäöüß1234"),
        "contains-username": rec("alice", "my name is ALICE, hi"),
        "username-short": rec("al", "al al al al al al"),
        "username-unicode": rec("äöü", "xxäöüxxxxxxxx"),
        "fullwidth": rec(None, "Ｐａｓｓｗｏｒｄ１２３４"),
        "ligature": rec(None, "ﬁﬂﬃ ligatures here"),
        "decomposed": rec(None, "cafe\u0301 cafe\u0301 cafe\u0301"),
        "composed": rec(None, "café café café"),
        "fdfa": rec(None, "\ufdfa" * 4),
        "hangul": rec(None, "\u1100\u1161\u11a8" * 5),
        "emoji": rec(None, "😀😃😄😁😆😅😂🤣"),
        "128-chars": rec(None, "a" * 128),
        "129-chars": rec(None, "a" * 129),
        "1024-bytes": rec(None, "é" * 512),
        "1025-bytes": rec(None, "a" * 1025),
        "nfkc-grows": rec(None, "\u3392" * 100),
        "invalid-utf8": rec(None, b"password\xff\xfe1234"),
        "surrogate-utf8": rec(None, b"password\xed\xa0\x801234"),
        "nul": rec(None, b"pass\x00word1234"),
        "empty": rec(None, b""),
        "phc-current": rec(None, "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2g"),
        "phc-other": rec(None, "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2g"),
        "phc-bad": rec(None, "$argon2id$v=19$m=8,t=1,p=1$$"),
        "phc-overflow": rec(None, "$argon2id$v=19$m=99999999999,t=1,p=1$a$b"),
        "phc-argon2i": rec(None, "$argon2i$v=19$m=8,t=1,p=1$c2FsdA$aGFzaA"),
    }
    for name, data in seeds.items():
        write("password", name, data)


def main():
    for t, fn in (("body", body), ("credentials", credentials), ("conf", conf),
                  ("password", password)):
        clear(t)
        fn()
        print("%-12s %3d files" % (t, len(os.listdir(os.path.join(CORPUS, t)))))


if __name__ == "__main__":
    main()
