#!/usr/bin/env python3
"""seeds.py - writes the seed corpora of the fuzz targets (tests/fuzz/corpus/)
from what the tests already use, so a fuzzer starts from real requests,
answers, streams and configs rather than from nothing.

  python3 tests/fuzz/seeds.py [--fake]

Sources:
  - the string literals of the unit and integration tests (adjacent literals
    joined, the few literal macros the tests use expanded), sorted by shape:
    HTTP requests, JSON bodies (requests, provider answers, API bodies),
    SSE / NDJSON streams, INI configs;
  - the shipped config (etc/vapora.conf);
  - with --fake, the answers and streams of the fake LLM provider
    (tests/fakes/fake_llm.py) for each provider kind;
  - a few hand-made inputs where the tests have none in the target's shape
    (WebSocket frames, cursors).

Each seed is one file named by the first 16 hex digits of its SHA-1, as
libFuzzer names what it adds; files over 16 KiB are left out. The script
only adds files: run it, look at `git status`, commit what is worth it.
"""

import base64
import hashlib
import json
import os
import re
import struct
import subprocess
import sys
import urllib.request

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
CORPUS = os.path.join(ROOT, "tests", "fuzz", "corpus")
MAX_SEED = 16 * 1024

# Literal macros of the tests, expanded where they appear next to literals.
HFIX_TAIL = " HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"


def write_seed(target, data):
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogateescape")
    if not data or len(data) > MAX_SEED:
        return
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    name = hashlib.sha1(data).hexdigest()[:16]
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# ---- C string literals ----

ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "0": "\0", "\\": "\\", '"': '"', "'": "'",
           "a": "\a", "b": "\b", "f": "\f", "v": "\v", "?": "?"}


def decode_literal(body):
    out, i = [], 0
    while i < len(body):
        c = body[i]
        if c != "\\":
            out.append(c)
            i += 1
            continue
        n = body[i + 1]
        if n == "x":
            m = re.match(r"[0-9a-fA-F]{1,2}", body[i + 2:])
            out.append(chr(int(m.group(0), 16)))
            i += 2 + len(m.group(0))
        elif n in "01234567" and re.match(r"[0-7]{1,3}", body[i + 1:]).group(0) != "0":
            m = re.match(r"[0-7]{1,3}", body[i + 1:])
            out.append(chr(int(m.group(0), 8)))
            i += 1 + len(m.group(0))
        else:
            out.append(ESCAPES.get(n, n))
            i += 2
    # Sources are read as latin-1: one character per byte, so UTF-8 in the
    # source and \x escapes both come out as the bytes they are.
    return "".join(out).encode("latin-1")


LIT = r'"(?:[^"\\\n]|\\.)*"'
RUN = re.compile(r"(?:%s)(?:\s*%s)*" % (LIT, LIT))


def strip_comments(src):
    out, i = [], 0
    while i < len(src):
        if src.startswith("/*", i):
            j = src.find("*/", i + 2)
            i = len(src) if j < 0 else j + 2
            out.append(" ")
        elif src.startswith("//", i):
            j = src.find("\n", i)
            i = len(src) if j < 0 else j
        elif src[i] == '"':
            m = re.compile(LIT).match(src, i)
            if not m:
                out.append(src[i])
                i += 1
                continue
            out.append(m.group(0))
            i = m.end()
        elif src[i] == "'":
            m = re.compile(r"'(?:[^'\\\n]|\\.)*'").match(src, i)
            j = m.end() if m else i + 1
            out.append(src[i:j])
            i = j
        else:
            out.append(src[i])
            i += 1
    return "".join(out)


def expand_macros(src, macros):
    """Replaces each literal macro name by its literal run, and HFIX_REQ /
    REQ calls by the request they build."""
    tail = '"%s"' % HFIX_TAIL.replace("\r", "\\r").replace("\n", "\\n")

    def req(m):
        return "%s %s %s \"\\r\\n\"" % (m.group(1), tail, m.group(2))
    src = re.sub(r"\b(?:HFIX_REQ|REQ)\(\s*(%s)\s*,\s*((?:%s\s*)*)\)" % (RUN.pattern, LIT), req, src)
    for name, value in macros.items():
        src = re.sub(r"\b%s\b" % re.escape(name), " " + value + " ", src)
    return src


def literal_macros(src):
    macros = {}
    for m in re.finditer(r"^#define\s+(\w+)\s+((?:%s\s*(?:\\\n\s*)?)+)$" % LIT, src, re.M):
        macros[m.group(1)] = m.group(2).replace("\\\n", " ")
    return macros


def literals(path, macros):
    src = strip_comments(open(path, encoding="latin-1").read())
    src = re.sub(r"\\\n", " ", src)
    src = expand_macros(src, macros)
    for m in RUN.finditer(src):
        parts = re.findall(LIT, m.group(0))
        yield b"".join(decode_literal(p[1:-1]) for p in parts)


# ---- sorting literals into targets ----

KIND_BYTE = {"openai": 0, "anthropic": 1, "gemini": 2, "ollama": 3}


def json_object(data):
    try:
        v = json.loads(data.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        return None
    return v if isinstance(v, dict) else None


def answer_kinds(v):
    if "candidates" in v or "promptFeedback" in v or "usageMetadata" in v:
        return ["gemini"]
    if v.get("type") == "message" or (isinstance(v.get("content"), list) and "role" in v):
        return ["anthropic"]
    if "done" in v or "eval_count" in v:
        return ["ollama"]
    if "choices" in v:
        return ["openai"]
    if "error" in v:
        return list(KIND_BYTE)
    return []


def stream_kind(data):
    if b"message_start" in data or b"content_block" in data:
        return "anthropic"
    if b"candidates" in data:
        return "gemini"
    if b"data:" not in data and b"\"done\"" in data:
        return "ollama"
    return "openai"


# fuzz_backend.c's requests, by the fields a body names.
BACKEND_ROUTES = [
    ({"name", "description"}, (0, 1)),          # create / patch a project
    ({"title", "type", "priority", "estimated_hours", "blocked_by"}, (2, 3)),
    ({"status", "progress", "actual_hours", "result", "assigned_role",
      "assigned_agent"}, (3,)),                 # patch a task
    ({"role"}, (4,)),                           # assign a task
]


def backend_routes(v):
    routes = set()
    for keys, rs in BACKEND_ROUTES:
        if set(v) & keys:
            routes.update(rs)
    return sorted(routes)


def sort_literal(data):
    if len(data) < 2:
        return
    if re.match(rb"^[A-Z]+ \S* HTTP/1\.[01]\r\n", data) and b"%" not in data.split(b"\r\n")[0]:
        write_seed("http", data)
        if b"Upgrade: websocket" in data:
            write_seed("ws", b"\1" + data)  # the upgrade request itself fuzzed
        return
    if b"data:" in data and (b"\n\n" in data or b"\r\n\r\n" in data):
        kind = KIND_BYTE[stream_kind(data)]
        for out in (0, 4):
            write_seed("wire_stream", bytes([kind | out, 7]) + data)
        return
    if data.count(b"\n") >= 1 and b"\"done\"" in data and data.lstrip().startswith(b"{"):
        write_seed("wire_stream", bytes([3, 7]) + data)
        write_seed("wire_stream", bytes([7, 7]) + data)
    if re.search(rb"^\s*\[[A-Za-z0-9:_.-]+\]\s*$", data, re.M) and b"=" in data:
        write_seed("cfg", data)
        return
    v = json_object(data)
    if v is None:
        return
    if "messages" in v:
        write_seed("wire_request", data)
    for kind in answer_kinds(v):
        write_seed("wire_response", bytes([KIND_BYTE[kind]]) + data)
    if "messages" not in v and "username" not in v:
        for route in backend_routes(v):
            write_seed("backend", bytes([route]) + data)


def from_tests():
    files = []
    for base in ("tests/unit", "tests/integration"):
        for dirpath, _, names in os.walk(os.path.join(ROOT, base)):
            files += [os.path.join(dirpath, n) for n in names if n.endswith((".c", ".h"))]
    macros = {}
    for f in files:
        macros.update(literal_macros(open(f, encoding="latin-1").read()))
    for f in sorted(files):
        for data in literals(f, macros):
            sort_literal(data)
    write_seed("cfg", open(os.path.join(ROOT, "etc", "vapora.conf"), "rb").read())


# ---- hand-made seeds ----

def ws_frame(opcode, payload, fin=True, mask=b"\0\0\0\0"):
    head = bytes([(0x80 if fin else 0) | opcode])
    n = len(payload)
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 65536:
        head += bytes([0x80 | 126]) + struct.pack(">H", n)
    else:
        head += bytes([0x80 | 127]) + struct.pack(">Q", n)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return head + mask + masked


def hand_made():
    # WebSocket: a 0 byte, then the frames after the handshake (the target
    # sends that).
    write_seed("ws", b"\0" + ws_frame(1, b"hello"))
    write_seed("ws", b"\0" + ws_frame(1, b"hel", fin=False) + ws_frame(0, b"lo"))
    write_seed("ws", b"\0" + ws_frame(9, b"ping") + ws_frame(1, b"{\"a\":1}"))
    write_seed("ws", b"\0" + ws_frame(2, bytes(range(256))))
    write_seed("ws", b"\0" + ws_frame(8, struct.pack(">H", 1000) + b"bye"))
    write_seed("ws", b"\0" + ws_frame(1, b"x" * 300, mask=b"\x01\x02\x03\x04"))
    write_seed("ws", b"\0" + ws_frame(10, b"") + ws_frame(1, "caf\u00e9".encode()))
    write_seed("ws", b"\0" + ws_frame(1, b"close:bye"))
    # List queries of the backend (fuzz_backend.c: 5 tasks, 6 projects, 7 board).
    for route, q in ((5, b"limit=1"), (5, b"status=todo&priority=high&assigned_role=tester"),
                     (5, b"project_id=p&limit=500&cursor=dC4x"), (6, b"limit=2&cursor=cC4y"),
                     (7, b"")):
        write_seed("backend", bytes([route]) + q)
    # Cursors: the encoding of kind "." position.
    for raw in (b"t.1", b"p.42", b"t.9223372036854775807", b"p.0", b"t.-1", b"x.5"):
        write_seed("cursor", base64.urlsafe_b64encode(raw).rstrip(b"="))


# ---- the fake LLM provider ----

FAKE_CALLS = [
    ("openai", "/s/oai/v1/chat/completions", {"model": "m", "messages": [{"role": "user", "content": "hi"}]}),
    ("anthropic", "/s/claude/v1/messages", {"model": "m", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}),
    ("gemini", "/s/gem/v1beta/models/m:generateContent", {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}),
    ("ollama", "/s/llama/api/chat", {"model": "m", "messages": [{"role": "user", "content": "hi"}]}),
]


def fake_post(port, path, body):
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path), data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.read()
    except urllib.error.HTTPError as e:
        return e.read()


def from_fake():
    p = subprocess.Popen([sys.executable, os.path.join(ROOT, "tests", "fakes", "fake_llm.py"), "--ttl", "60"],
                         stdout=subprocess.PIPE, stdin=subprocess.PIPE, text=True)
    try:
        port = int(p.stdout.readline().split()[1])
        for cfg in ({}, {"reply": "caf\u00e9 \"quoted\"\nline", "usage_in": 7, "usage_out": 0},
                    {"stream_usage": False}, {"fail_status": 429, "fail_count": 1}):
            for kind, path, body in FAKE_CALLS:
                scope = path.split("/")[2]
                fake_post(port, "/s/%s/_fake/config" % scope, cfg)
                whole = fake_post(port, path, body)
                write_seed("wire_response", bytes([KIND_BYTE[kind]]) + whole)
                if kind == "gemini":
                    spath = path.replace(":generateContent", ":streamGenerateContent?alt=sse")
                    sbody = body
                else:
                    spath, sbody = path, dict(body, stream=True)
                    if kind == "openai":
                        sbody["stream_options"] = {"include_usage": True}
                stream = fake_post(port, spath, sbody)
                for out in (0, 4):
                    write_seed("wire_stream", bytes([KIND_BYTE[kind] | out, 7]) + stream)
    finally:
        p.stdin.close()
        p.terminate()
        p.wait()


def main():
    from_tests()
    hand_made()
    if "--fake" in sys.argv:
        from_fake()
    for t in sorted(os.listdir(CORPUS)):
        print("%-14s %4d seeds" % (t, len(os.listdir(os.path.join(CORPUS, t)))))


if __name__ == "__main__":
    main()
