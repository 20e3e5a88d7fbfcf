#!/usr/bin/env python3
"""fake_llm.py - a fake LLM provider for the gateway's integration tests.

One process speaks the wire formats of four providers, as the real APIs do:

  OpenAI     POST /v1/chat/completions
  Anthropic  POST /v1/messages
  Gemini     POST /v1beta/models/MODEL:generateContent
             POST /v1beta/models/MODEL:streamGenerateContent?alt=sse
  Ollama     POST /api/chat

Every path may be prefixed by /s/NAME: a scope with its own behaviour config
and stats, so one process can play several providers at once. The behaviour
(latency, injected failures, stalls, cut streams, reply text, usage) is
switched at run time with POST /_fake/config; GET /_fake/stats tells what the
fake saw. See README.md next to this file for the whole interface.

Usage: python3 fake_llm.py [--host 127.0.0.1] [--port 0] [--parent-pid PID]
                           [--ttl SECONDS] [--verbose]
Once listening it prints "ready PORT" on stdout. It exits by itself when the
parent process is gone, when a piped stdin reaches EOF, and after --ttl
seconds; SIGTERM and SIGINT end it at once.

Python 3 standard library only. The HTTP/1.1 server is hand-written on
asyncio streams: keep-alive, Content-Length or chunked request bodies,
Expect: 100-continue, responses with Content-Length and streams with
Transfer-Encoding: chunked.
"""

import argparse
import asyncio
import email.utils
import json
import os
import random
import re
import resource
import select
import signal
import stat
import string
import sys
import time
import traceback
from datetime import datetime, timezone
from http import HTTPStatus
from urllib.parse import parse_qsl, unquote, urlsplit

# ---------------------------------------------------------------------------
# Limits and small helpers
# ---------------------------------------------------------------------------

MAX_HEAD = 64 * 1024          # request line + headers
MAX_LINE = 8 * 1024           # one chunk-size or trailer line
MAX_BODY = 64 * 1024 * 1024   # request body
READ_SIZE = 64 * 1024
LISTEN_BACKLOG = 4096         # 2,000+ clients may connect at once

VERBOSE = False

_ALNUM = string.ascii_letters + string.digits


def log(msg):
    """One line on stderr (stdout carries only the "ready" line)."""
    try:
        sys.stderr.write("fake_llm: %s\n" % msg)
        sys.stderr.flush()
    except (OSError, ValueError):
        pass


def rand_id(n, alphabet=_ALNUM):
    return "".join(random.choice(alphabet) for _ in range(n))


def dumps(obj, indent=None):
    """JSON as the providers send it: UTF-8 (not \\u escapes), compact unless
    indented (Gemini pretty-prints whole responses)."""
    if indent is None:
        return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
    return json.dumps(obj, ensure_ascii=False, indent=indent)


def _reject_constant(name):
    raise ValueError("invalid JSON constant %s" % name)


def parse_json(raw):
    """(value, None) or (None, reason). Like the real APIs, NaN/Infinity and
    invalid UTF-8 are errors, and so is an empty body."""
    if not raw:
        return None, "empty body"
    try:
        return json.loads(raw.decode("utf-8"), parse_constant=_reject_constant), None
    except (UnicodeDecodeError, ValueError) as e:
        return None, str(e)


def split_pieces(text):
    """The reply cut into stream pieces: words with the spaces after them
    (leading whitespace is its own piece), so "".join(pieces) == text."""
    return re.findall(r"\S+\s*|\s+", text)


def now_rfc3339():
    """Ollama's created_at: RFC 3339 in UTC with sub-second digits."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def reason_phrase(status):
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return {529: "Overloaded"}.get(status, "Unknown")


# ---------------------------------------------------------------------------
# HTTP/1.1 server side of one connection
# ---------------------------------------------------------------------------


class HttpError(Exception):
    """A request we cannot parse: answered in plain text, then closed."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status = status
        self.message = message


class ClientGone(Exception):
    """The client closed the connection mid-request."""


class Request:
    __slots__ = ("method", "target", "version", "headers", "path", "query",
                 "raw_query", "body")

    def __init__(self, method, target, version, headers, body):
        self.method = method
        self.target = target
        self.version = version
        self.headers = headers            # lower-case name -> value
        parts = urlsplit(target)
        self.path = unquote(parts.path) or "/"
        self.raw_query = parts.query
        self.query = dict(parse_qsl(parts.query, keep_blank_values=True))
        self.body = body

    @property
    def keep_alive(self):
        conn = self.headers.get("connection", "").lower()
        tokens = {t.strip() for t in conn.split(",")}
        if self.version == "HTTP/1.0":
            return "keep-alive" in tokens
        return "close" not in tokens


class Conn:
    """One client connection: a read buffer over the StreamReader (so that a
    watcher can read ahead while a response is being produced without losing
    a pipelined request), request parsing and response writing."""

    def __init__(self, reader, writer):
        self.reader = reader
        self.writer = writer
        self.buf = bytearray()
        self.eof = False
        self.closed = False

    # ---- reading ----

    async def fill(self):
        """Reads more bytes into buf; False at EOF (or a reset)."""
        if self.eof:
            return False
        try:
            data = await self.reader.read(READ_SIZE)
        except (ConnectionError, OSError):
            data = b""
        if not data:
            self.eof = True
            return False
        self.buf += data
        return True

    async def _need(self, n):
        while len(self.buf) < n:
            if not await self.fill():
                raise ClientGone()

    async def _line(self):
        """One CRLF-terminated line (without the CRLF)."""
        while True:
            i = self.buf.find(b"\r\n")
            if i >= 0:
                line = bytes(self.buf[:i])
                del self.buf[:i + 2]
                return line
            if len(self.buf) > MAX_LINE:
                raise HttpError(400, "line too long")
            if not await self.fill():
                raise ClientGone()

    async def read_request(self):
        """The next request, or None when the client closed between
        requests."""
        while True:
            # RFC 9112 2.2: ignore empty lines before a request line.
            while self.buf[:2] == b"\r\n":
                del self.buf[:2]
            end = self.buf.find(b"\r\n\r\n")
            if end >= 0:
                break
            if len(self.buf) > MAX_HEAD:
                raise HttpError(431, "request header fields too large")
            if not await self.fill():
                if self.buf:
                    raise ClientGone()
                return None
        head = bytes(self.buf[:end]).decode("latin-1")
        del self.buf[:end + 4]
        if len(head) > MAX_HEAD:
            raise HttpError(431, "request header fields too large")
        lines = head.split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3 or parts[2] not in ("HTTP/1.1", "HTTP/1.0") or not parts[1]:
            raise HttpError(400, "malformed request line")
        method, target, version = parts
        headers = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if not sep or not name or name != name.strip():
                raise HttpError(400, "malformed header line")
            name = name.lower()
            value = value.strip(" \t")
            headers[name] = headers[name] + ", " + value if name in headers else value

        te = headers.get("transfer-encoding")
        cl = headers.get("content-length")
        expect = headers.get("expect", "").lower() == "100-continue"
        if te is not None:
            # Chunked wins over Content-Length (RFC 9112 6.3).
            if te.lower().split(",")[-1].strip() != "chunked":
                raise HttpError(501, "unsupported transfer-encoding")
            await self._continue(expect, version)
            body = await self._read_chunked()
        elif cl is not None:
            if not re.fullmatch(r"[0-9]{1,18}", cl):
                raise HttpError(400, "bad content-length")
            n = int(cl)
            if n > MAX_BODY:
                raise HttpError(413, "request body too large")
            if n:
                await self._continue(expect, version)
            await self._need(n)
            body = bytes(self.buf[:n])
            del self.buf[:n]
        else:
            body = b""
        return Request(method, target, version, headers, body)

    async def _continue(self, expect, version):
        """Answers Expect: 100-continue (libcurl sends it for big bodies)
        unless the body is already on its way."""
        if expect and version == "HTTP/1.1" and not self.buf:
            await self.send(b"HTTP/1.1 100 Continue\r\n\r\n")

    async def _read_chunked(self):
        body = bytearray()
        while True:
            line = await self._line()
            size_s = line.split(b";", 1)[0].strip()
            if not re.fullmatch(rb"[0-9A-Fa-f]{1,16}", size_s):
                raise HttpError(400, "bad chunk size")
            size = int(size_s, 16)
            if size == 0:
                break
            if len(body) + size > MAX_BODY:
                raise HttpError(413, "request body too large")
            await self._need(size + 2)
            if self.buf[size:size + 2] != b"\r\n":
                raise HttpError(400, "chunk not followed by CRLF")
            body += self.buf[:size]
            del self.buf[:size + 2]
        while await self._line():   # trailer fields, up to the empty line
            pass
        return bytes(body)

    async def wait_gone(self):
        """Returns once the client has closed (EOF or reset). Bytes that
        arrive meanwhile (a pipelined request) stay in buf."""
        while await self.fill():
            if len(self.buf) > MAX_BODY:   # a runaway client; stop buffering
                self.buf.clear()

    async def watched(self, coro):
        """Runs coro (which produces one response) while watching the reader:
        if the client goes away first, coro is cancelled (a stream counts it
        as aborted) and False is returned. Else coro's result (keep-alive)."""
        work = asyncio.ensure_future(coro)
        watch = asyncio.ensure_future(self.wait_gone())
        try:
            await asyncio.wait({work, watch}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            work.cancel()
            watch.cancel()
            raise
        if work.done():
            watch.cancel()
            try:
                await watch
            except asyncio.CancelledError:
                pass
            try:
                return work.result()
            except (ConnectionError, ClientGone):
                return False
        work.cancel()
        try:
            await work
        except (asyncio.CancelledError, ConnectionError, ClientGone):
            pass
        return False

    # ---- writing ----

    async def send(self, data):
        if self.closed or self.writer.transport.is_closing():
            raise ConnectionResetError("client connection closed")
        self.writer.write(data)
        await self.writer.drain()

    def close(self):
        """Flushes what is buffered, then FIN."""
        if not self.closed:
            self.closed = True
            self.writer.close()

    @staticmethod
    def head(status, headers):
        lines = ["HTTP/1.1 %d %s" % (status, reason_phrase(status)),
                 "Date: " + email.utils.formatdate(usegmt=True)]
        lines += ["%s: %s" % kv for kv in headers]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    async def respond(self, req, status, ctype, body, extra=(), keep=True):
        """A whole response with Content-Length. Returns keep-alive."""
        keep = keep and req.keep_alive
        headers = [("Content-Type", ctype), ("Content-Length", str(len(body))),
                   ("Connection", "keep-alive" if keep else "close")]
        headers += list(extra)
        await self.send(self.head(status, headers) + body)
        return keep


class BodyStream:
    """A streamed response: Transfer-Encoding: chunked for HTTP/1.1 (one
    chunk per write), or raw bytes until close for an HTTP/1.0 client."""

    def __init__(self, conn, req):
        self.conn = conn
        self.chunked = req.version == "HTTP/1.1"
        self.keep = self.chunked and req.keep_alive

    async def start(self, ctype, extra=()):
        headers = [("Content-Type", ctype)]
        if self.chunked:
            headers.append(("Transfer-Encoding", "chunked"))
        headers.append(("Connection", "keep-alive" if self.keep else "close"))
        headers += list(extra)
        await self.conn.send(self.conn.head(200, headers))

    async def write(self, data):
        if not data:
            return                     # an empty chunk would end the body
        if self.chunked:
            data = b"%x\r\n%s\r\n" % (len(data), data)
        await self.conn.send(data)

    async def finish(self):
        if self.chunked:
            await self.conn.send(b"0\r\n\r\n")


# ---------------------------------------------------------------------------
# Scopes: behaviour config and stats
# ---------------------------------------------------------------------------

KINDS = ("openai", "anthropic", "gemini", "ollama")

DEFAULT_CONFIG = {
    "latency_ms": 0,          # delay before the response headers
    "chunk_delay_ms": 0,      # delay before each stream piece
    "keepalive_ms": 0,        # during that delay, an SSE comment (": keep-alive") this often
    "fail_status": None,      # injected failure status (400..599)
    "fail_count": 0,          # how many next requests fail; -1 = all
    "retry_after": None,      # Retry-After on injected failures (seconds)
    "stall": False,           # read the request, never answer
    "raw_answer": None,       # answer with these bytes verbatim (latin-1), then close: a broken peer
    "cut_after": None,        # close the connection after N stream pieces
    "end_after": None,        # end the body cleanly after N stream pieces, without the stream's end
    "reply": None,            # None: "Hello from MODEL."
    "reply_bytes": None,      # a reply of this many ASCII bytes instead
    "piece_bytes": None,      # stream pieces of this many bytes (not words)
    "usage_in": 10,           # token counts: numbers (even absurd) or strings
    "usage_out": 20,
    "stream_usage": True,     # false: streams report no usage
    "corrupt": None,          # "json" | "utf8": the answer's body is not valid
    "expect_key": None,       # required API key (not for Ollama)
}

# What a reply_bytes reply is made of (ASCII, so any slice is whole text).
REPLY_PATTERN = "The quick brown fox jumps over the lazy dog. "


def _count_ok(v):
    """A usage count the fake may send: any number (absurd or negative ones
    too: a broken provider) or a string (a provider that sends its counts as
    text)."""
    return _is_num(v) or isinstance(v, str)


def total_count(a, b):
    """total_tokens for counts a and b: their sum, as text when they are."""
    if _is_num(a) and _is_num(b):
        return a + b
    if isinstance(a, str) and isinstance(b, str) and a.isdigit() and b.isdigit():
        return str(int(a) + int(b))
    return a


def count_num(v):
    """A count as a number, for the durations derived from it."""
    return v if _is_num(v) else 0


def corrupt_body(data, mode, text):
    """data (an answer or one stream event) made invalid as mode says, the
    framing around it kept: "json" drops the last closing brace, "utf8" puts
    a 0xFF byte (never valid UTF-8) into the text."""
    if mode == "json":
        i = data.rfind(b"}")
        return data[:i] + data[i + 1:] if i >= 0 else data + b"{"
    i = data.find(text.encode("utf-8")[:8]) if text else -1
    if i < 0:
        i = data.find(b'":"')
        i = i + 2 if i >= 0 else 0
    return data[:i + 1] + b"\xff" + data[i + 1:]


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


# key -> (check, what a valid value is)
CONFIG_CHECKS = {
    "latency_ms": (lambda v: _is_num(v) and v >= 0, "a number >= 0"),
    "chunk_delay_ms": (lambda v: _is_num(v) and v >= 0, "a number >= 0"),
    "keepalive_ms": (lambda v: _is_num(v) and v >= 0, "a number >= 0"),
    "fail_status": (lambda v: v is None or (_is_int(v) and 400 <= v <= 599),
                    "null or an HTTP status 400..599"),
    "fail_count": (lambda v: _is_int(v) and v >= -1, "an integer >= -1"),
    "retry_after": (lambda v: v is None or (_is_num(v) and v >= 0) or isinstance(v, str),
                    "null, a number of seconds or a string"),
    "stall": (lambda v: isinstance(v, bool), "a boolean"),
    "raw_answer": (lambda v: v is None or isinstance(v, str), "null or a string"),
    "cut_after": (lambda v: v is None or (_is_int(v) and v >= 0), "null or an integer >= 0"),
    "end_after": (lambda v: v is None or (_is_int(v) and v >= 0), "null or an integer >= 0"),
    "reply": (lambda v: v is None or isinstance(v, str), "null or a string"),
    "reply_bytes": (lambda v: v is None or (_is_int(v) and v >= 0),
                    "null or an integer >= 0"),
    "piece_bytes": (lambda v: v is None or (_is_int(v) and v >= 1),
                    "null or an integer >= 1"),
    "usage_in": (_count_ok, "a number or a string"),
    "usage_out": (_count_ok, "a number or a string"),
    "stream_usage": (lambda v: isinstance(v, bool), "a boolean"),
    "corrupt": (lambda v: v in (None, "json", "utf8"), 'null, "json" or "utf8"'),
    "expect_key": (lambda v: v is None or isinstance(v, str), "null or a string"),
}


def check_config(update):
    """None, or why the update is refused (nothing is applied then)."""
    if not isinstance(update, dict):
        return "config must be a JSON object"
    for key, value in update.items():
        if key not in CONFIG_CHECKS:
            return "unknown config key %r (known: %s)" % (key, ", ".join(sorted(CONFIG_CHECKS)))
        check, what = CONFIG_CHECKS[key]
        if not check(value):
            return "config key %r must be %s" % (key, what)
    return None


class Scope:
    def __init__(self, name):
        self.name = name
        self.active = 0   # live gauge of open streams; a reset keeps it
        self.reset()

    def reset(self):
        self.config = dict(DEFAULT_CONFIG)
        self.stats = {
            "requests": 0,
            "by_kind": {k: 0 for k in KINDS},
            "failed": 0,
            "completed_streams": 0,
            "aborted_streams": 0,
            "peak_active_streams": self.active,
            "cut": 0,
            "stalled": 0,
            "stall_released": 0,
            "last": None,
        }

    def stats_json(self):
        out = {"scope": self.name}
        out.update(self.stats)
        out["active_streams"] = self.active
        return out

    def record(self, kind, req, path, body):
        s = self.stats
        s["requests"] += 1
        s["by_kind"][kind] += 1
        # path: within the scope (no /s/NAME); target: as the client sent it.
        s["last"] = {"method": req.method, "path": path, "query": req.query,
                     "target": req.target, "headers": dict(req.headers), "body": body}

    def stream_started(self):
        self.active += 1
        if self.active > self.stats["peak_active_streams"]:
            self.stats["peak_active_streams"] = self.active

    def take_failure(self):
        """The injected failure status for this request, or None. Counts
        fail_count down (-1 never runs out)."""
        cfg = self.config
        status = cfg["fail_status"]
        if status is None or cfg["fail_count"] == 0:
            return None
        if cfg["fail_count"] > 0:
            cfg["fail_count"] -= 1
        self.stats["failed"] += 1
        return status


# ---------------------------------------------------------------------------
# Provider kinds: the wire formats
# ---------------------------------------------------------------------------


class Reply:
    """A whole response to send: status, content type, body, headers."""

    __slots__ = ("status", "ctype", "body", "headers")

    def __init__(self, status, ctype, body, headers=()):
        self.status = status
        self.ctype = ctype
        self.body = body.encode("utf-8") if isinstance(body, str) else body
        self.headers = list(headers)


def pattern_text(start, n):
    """n bytes of REPLY_PATTERN repeated, from offset start of the repetition."""
    k = len(REPLY_PATTERN)
    return (REPLY_PATTERN * ((start % k + n) // k + 1))[start % k:start % k + n]


class PatternPieces:
    """The pieces of a reply_bytes reply, made when asked for: a stream of
    many megabytes to many clients holds no copy of them all."""

    def __init__(self, n, size):
        self.n, self.size = n, size

    def __len__(self):
        return (self.n + self.size - 1) // self.size

    def __getitem__(self, i):
        if not 0 <= i < len(self):
            raise IndexError(i)
        return pattern_text(i * self.size, min(self.size, self.n - i * self.size))


class Ctx:
    """What one successful answer is made of."""

    def __init__(self, model, cfg, include_usage):
        self.model = model
        self._reply = cfg["reply"] if cfg["reply"] is not None else "Hello from %s." % model
        n = cfg["reply_bytes"]
        size = cfg["piece_bytes"]
        if n is not None:
            self._reply = None               # made only if a whole answer needs it
            self.pieces = PatternPieces(n, size or n or 1)
            self._reply_bytes = n
        elif size is None:
            self.pieces = split_pieces(self._reply)
        else:
            self.pieces = [self._reply[i:i + size] for i in range(0, len(self._reply), size)]
        self.usage_in = cfg["usage_in"]
        self.usage_out = cfg["usage_out"]
        self.stream_usage = cfg["stream_usage"]
        self.include_usage = include_usage
        self.created = int(time.time())
        self.t0 = time.monotonic()

    @property
    def reply(self):
        if self._reply is None:
            self._reply = pattern_text(0, self._reply_bytes)
        return self._reply


def sse(data, event=None, eol="\n"):
    """One server-sent event: [event: NAME] data: JSON, blank line."""
    text = "" if event is None else "event: %s%s" % (event, eol)
    text += "data: %s%s%s" % (data if isinstance(data, str) else dumps(data), eol, eol)
    return text.encode("utf-8")


class Kind:
    """One provider's wire format. Subclasses fill in the details."""

    name = ""
    json_ctype = "application/json"
    stream_ctype = "text/event-stream"

    # -- errors --
    def error(self, status, message, etype=None, code=None, param=None):
        raise NotImplementedError

    def failure(self, status):
        """The body of an injected fail_status failure."""
        raise NotImplementedError

    def bad_json(self, reason):
        raise NotImplementedError

    # -- requests --
    def auth_error(self, req, key):
        return None

    def validate(self, req, body, route):
        """A Reply for an invalid request, or None."""
        return None

    def model(self, body, route):
        return body.get("model") if isinstance(body.get("model"), str) else ""

    def is_stream(self, body, route):
        return body.get("stream") is True

    def include_usage(self, body):
        return False

    def headers(self):
        return []

    # -- answers --
    def response(self, ctx):
        raise NotImplementedError

    def stream_ctype_for(self, route):
        return self.stream_ctype

    def stream_pieces(self, ctx):
        return ctx.pieces

    def stream_open(self, ctx, route):
        return []

    def stream_piece(self, ctx, route, index, text, final):
        raise NotImplementedError

    def stream_close(self, ctx, route):
        return []


class OpenAI(Kind):
    name = "openai"
    stream_ctype = "text/event-stream; charset=utf-8"
    fingerprint = "fp_fake0000"

    def error(self, status, message, etype="invalid_request_error", code=None, param=None):
        body = {"error": {"message": message, "type": etype, "param": param, "code": code}}
        return Reply(status, self.json_ctype, dumps(body, indent=4) + "\n", self.headers())

    def failure(self, status):
        if status == 429:
            return self.error(429, "Rate limit reached for requests. Please try again later.",
                              "rate_limit_exceeded", "rate_limit_exceeded")
        if status == 401:
            return self.error(401, "Incorrect API key provided.", "invalid_request_error",
                              "invalid_api_key")
        if status == 404:
            return self.error(404, "The model does not exist or you do not have access to it.",
                              "invalid_request_error", "model_not_found")
        if status >= 500:
            msg = ("The server is overloaded or not ready yet." if status == 503 else
                   "The server had an error while processing your request. Sorry about that!")
            return self.error(status, msg, "server_error")
        return self.error(status, "Injected failure (status %d)." % status)

    def bad_json(self, reason):
        return self.error(400, "We could not parse the JSON body of your request. (HINT: This "
                          "likely means you aren't using your HTTP library correctly. The "
                          "OpenAI API expects a JSON payload, but what was sent was not valid "
                          "JSON.)")

    def auth_error(self, req, key):
        auth = req.headers.get("authorization")
        if auth is None:
            return self.error(401, "You didn't provide an API key. You need to provide your "
                              "API key in an Authorization header using Bearer auth (i.e. "
                              "Authorization: Bearer YOUR_KEY).")
        if auth != "Bearer " + key:
            return self.error(401, "Incorrect API key provided.", code="invalid_api_key")
        return None

    def validate(self, req, body, route):
        if not isinstance(body.get("model"), str) or not body["model"]:
            return self.error(400, "you must provide a model parameter")
        msgs = body.get("messages")
        if msgs is None:
            return self.error(400, "Missing required parameter: 'messages'.", param="messages",
                              code="missing_required_parameter")
        if not isinstance(msgs, list):
            return self.error(400, "Invalid type for 'messages': expected an array.",
                              param="messages", code="invalid_type")
        if not msgs:
            return self.error(400, "Invalid 'messages': empty array. Expected an array with "
                              "minimum length 1, but got an empty array instead.",
                              param="messages", code="empty_array")
        if body.get("stream_options") is not None and body.get("stream") is not True:
            return self.error(400, "The 'stream_options' parameter is only allowed when "
                              "'stream' is enabled.", param="stream_options")
        return None

    def include_usage(self, body):
        opts = body.get("stream_options")
        return isinstance(opts, dict) and opts.get("include_usage") is True

    def headers(self):
        return [("x-request-id", "req_" + rand_id(32, "0123456789abcdef")),
                ("openai-processing-ms", "1")]

    def _usage(self, ctx):
        return {"prompt_tokens": ctx.usage_in, "completion_tokens": ctx.usage_out,
                "total_tokens": total_count(ctx.usage_in, ctx.usage_out),
                "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
                "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                              "accepted_prediction_tokens": 0,
                                              "rejected_prediction_tokens": 0}}

    def response(self, ctx):
        body = {"id": "chatcmpl-" + rand_id(29), "object": "chat.completion",
                "created": ctx.created, "model": ctx.model,
                "choices": [{"index": 0,
                             "message": {"role": "assistant", "content": ctx.reply,
                                         "refusal": None, "annotations": []},
                             "logprobs": None, "finish_reason": "stop"}],
                "usage": self._usage(ctx), "service_tier": "default",
                "system_fingerprint": self.fingerprint}
        return Reply(200, self.json_ctype, dumps(body, indent=2), self.headers())

    def _chunk(self, ctx, choices, usage=False):
        chunk = {"id": ctx.id, "object": "chat.completion.chunk", "created": ctx.created,
                 "model": ctx.model, "service_tier": "default",
                 "system_fingerprint": self.fingerprint, "choices": choices}
        if ctx.include_usage and ctx.stream_usage:
            # With include_usage every chunk carries "usage": null but the last.
            chunk["usage"] = self._usage(ctx) if usage else None
        return sse(chunk)

    def _choice(self, delta, finish=None):
        return [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]

    def stream_open(self, ctx, route):
        ctx.id = "chatcmpl-" + rand_id(29)
        return [self._chunk(ctx, self._choice({"role": "assistant", "content": "",
                                               "refusal": None}))]

    def stream_piece(self, ctx, route, index, text, final):
        return self._chunk(ctx, self._choice({"content": text}))

    def stream_close(self, ctx, route):
        out = [self._chunk(ctx, self._choice({}, "stop"))]
        if ctx.include_usage and ctx.stream_usage:
            out.append(self._chunk(ctx, [], usage=True))
        out.append(b"data: [DONE]\n\n")
        return out


class Anthropic(Kind):
    name = "anthropic"
    stream_ctype = "text/event-stream; charset=utf-8"

    ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error",
                   402: "billing_error", 403: "permission_error", 404: "not_found_error",
                   413: "request_too_large", 429: "rate_limit_error",
                   504: "timeout_error", 529: "overloaded_error"}

    def error(self, status, message, etype=None, code=None, param=None):
        etype = etype or self.ERROR_TYPES.get(status, "api_error" if status >= 500
                                              else "invalid_request_error")
        body = {"type": "error", "error": {"type": etype, "message": message}}
        return Reply(status, self.json_ctype, dumps(body), self.headers())

    def failure(self, status):
        msg = {429: "Number of requests has exceeded your rate limit. Please try again later.",
               529: "Overloaded", 401: "invalid x-api-key"}.get(
                   status, "Internal server error" if status >= 500
                   else "Injected failure (status %d)." % status)
        return self.error(status, msg)

    def bad_json(self, reason):
        return self.error(400, "There was an error parsing the body: %s" % reason)

    def auth_error(self, req, key):
        got = req.headers.get("x-api-key")
        if got is None:
            return self.error(401, "x-api-key header is required")
        if got != key:
            return self.error(401, "invalid x-api-key")
        return None

    def validate(self, req, body, route):
        if "anthropic-version" not in req.headers:
            return self.error(400, "anthropic-version: header is required")
        if not isinstance(body.get("model"), str) or not body["model"]:
            return self.error(400, "model: Field required")
        if "max_tokens" not in body:
            return self.error(400, "max_tokens: Field required")
        if not _is_int(body["max_tokens"]) or body["max_tokens"] < 1:
            return self.error(400, "max_tokens: Input should be a valid integer >= 1")
        msgs = body.get("messages")
        if not isinstance(msgs, list):
            return self.error(400, "messages: Field required" if msgs is None
                              else "messages: Input should be a valid list")
        if not msgs:
            return self.error(400, "messages: at least one message is required")
        return None

    def headers(self):
        return [("request-id", "req_" + rand_id(24))]

    def _usage(self, ctx, output):
        return {"input_tokens": ctx.usage_in, "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0, "output_tokens": output}

    def _message(self, ctx, content, stop_reason, output):
        return {"id": ctx.id, "type": "message", "role": "assistant", "model": ctx.model,
                "content": content, "stop_reason": stop_reason, "stop_sequence": None,
                "usage": self._usage(ctx, output)}

    def response(self, ctx):
        ctx.id = "msg_01" + rand_id(22)
        body = self._message(ctx, [{"type": "text", "text": ctx.reply}], "end_turn",
                             ctx.usage_out)
        return Reply(200, self.json_ctype, dumps(body), self.headers())

    def stream_open(self, ctx, route):
        ctx.id = "msg_01" + rand_id(22)
        return [
            sse({"type": "message_start", "message": self._message(ctx, [], None, 1)},
                "message_start"),
            sse({"type": "content_block_start", "index": 0,
                 "content_block": {"type": "text", "text": ""}}, "content_block_start"),
            sse('{"type": "ping"}', "ping"),
        ]

    def stream_piece(self, ctx, route, index, text, final):
        return sse({"type": "content_block_delta", "index": 0,
                    "delta": {"type": "text_delta", "text": text}}, "content_block_delta")

    def stream_close(self, ctx, route):
        delta = {"type": "message_delta",
                 "delta": {"stop_reason": "end_turn", "stop_sequence": None}}
        if ctx.stream_usage:
            delta["usage"] = {"output_tokens": ctx.usage_out}
        return [sse({"type": "content_block_stop", "index": 0}, "content_block_stop"),
                sse(delta, "message_delta"),
                sse({"type": "message_stop"}, "message_stop")]


class Gemini(Kind):
    name = "gemini"
    json_ctype = "application/json; charset=UTF-8"
    stream_ctype = "text/event-stream"

    STATUSES = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED",
                404: "NOT_FOUND", 409: "ABORTED", 429: "RESOURCE_EXHAUSTED",
                499: "CANCELLED", 500: "INTERNAL", 501: "UNIMPLEMENTED", 503: "UNAVAILABLE",
                504: "DEADLINE_EXCEEDED"}

    def error(self, status, message, etype=None, code=None, param=None):
        st = etype or self.STATUSES.get(status, "INTERNAL" if status >= 500
                                        else "FAILED_PRECONDITION")
        err = {"code": status, "message": message, "status": st}
        if code:   # an ErrorInfo reason, as Google APIs attach them
            err["details"] = [{"@type": "type.googleapis.com/google.rpc.ErrorInfo",
                               "reason": code, "domain": "googleapis.com",
                               "metadata": {"service": "generativelanguage.googleapis.com"}}]
        return Reply(status, self.json_ctype, dumps({"error": err}, indent=2) + "\n")

    def failure(self, status):
        msg = {429: "Resource has been exhausted (e.g. check quota).",
               500: "An internal error has occurred. Please retry or report in "
                    "https://developers.generativeai.google/guide/troubleshooting",
               503: "The model is overloaded. Please try again later."}.get(
                   status, "Injected failure (status %d)." % status)
        return self.error(status, msg)

    def bad_json(self, reason):
        return self.error(400, "Invalid JSON payload received. %s" % reason)

    def auth_error(self, req, key):
        got = req.headers.get("x-goog-api-key", req.query.get("key"))
        if got != key:
            return self.error(401, "API key not valid. Please pass a valid API key.",
                              code="API_KEY_INVALID")
        return None

    def validate(self, req, body, route):
        if not isinstance(body.get("contents"), list) or not body["contents"]:
            return self.error(400, "* GenerateContentRequest.contents: contents is not "
                              "specified\n")
        return None

    def model(self, body, route):
        return route["model"]

    def is_stream(self, body, route):
        return route["method"] == "streamGenerateContent"

    def _response(self, ctx, text, final):
        cand = {"content": {"parts": [{"text": text}], "role": "model"}}
        if final:
            cand["finishReason"] = "STOP"
        cand["index"] = 0
        body = {"candidates": [cand]}
        if final and ctx.stream_usage:
            body["usageMetadata"] = {
                "promptTokenCount": ctx.usage_in, "candidatesTokenCount": ctx.usage_out,
                "totalTokenCount": total_count(ctx.usage_in, ctx.usage_out),
                "promptTokensDetails": [{"modality": "TEXT", "tokenCount": ctx.usage_in}]}
        body["modelVersion"] = ctx.model
        body["responseId"] = ctx.id
        return body

    def response(self, ctx):
        ctx.id = rand_id(22)
        ctx.stream_usage = True        # usage is always in a whole response
        return Reply(200, self.json_ctype, dumps(self._response(ctx, ctx.reply, True),
                                                  indent=2) + "\n")

    def _sse(self, route):
        return route["query"].get("alt") == "sse"

    def stream_ctype_for(self, route):
        # Without alt=sse the stream is one JSON array, sent element by element.
        return self.stream_ctype if self._sse(route) else self.json_ctype

    def stream_pieces(self, ctx):
        return ctx.pieces or [""]      # the finishReason needs a piece to ride on

    def stream_open(self, ctx, route):
        ctx.id = rand_id(22)
        return [] if self._sse(route) else [b"["]

    def stream_piece(self, ctx, route, index, text, final):
        body = self._response(ctx, text, final)
        if self._sse(route):
            return sse(body, eol="\r\n")
        return ((",\r\n" if index else "") + dumps(body, indent=2)).encode("utf-8")

    def stream_close(self, ctx, route):
        return [] if self._sse(route) else [b"]"]


class Ollama(Kind):
    name = "ollama"
    json_ctype = "application/json; charset=utf-8"
    stream_ctype = "application/x-ndjson"

    def error(self, status, message, etype=None, code=None, param=None):
        return Reply(status, self.json_ctype, dumps({"error": message}))

    def failure(self, status):
        msg = {429: "server busy, please try again.  maximum pending requests exceeded",
               503: "server busy, please try again.  maximum pending requests exceeded",
               500: "an error was encountered while running the model"}.get(
                   status, "injected failure (status %d)" % status)
        return self.error(status, msg)

    def bad_json(self, reason):
        return self.error(400, "missing request body" if reason == "empty body"
                          else "invalid character in JSON body: %s" % reason)

    def validate(self, req, body, route):
        if not isinstance(body.get("model"), str) or not body["model"]:
            return self.error(400, "model is required")
        return None

    def is_stream(self, body, route):
        return body.get("stream") is not False     # Ollama streams by default

    def _final(self, ctx, content, counts):
        out = {"model": ctx.model, "created_at": now_rfc3339(),
               "message": {"role": "assistant", "content": content},
               "done_reason": "stop", "done": True}
        total = int((time.monotonic() - ctx.t0) * 1e9) + 1000
        out["total_duration"] = total
        out["load_duration"] = min(total, 1_000_000)
        if counts:
            out["prompt_eval_count"] = ctx.usage_in
        out["prompt_eval_duration"] = count_num(ctx.usage_in) * 100_000
        if counts:
            out["eval_count"] = ctx.usage_out
        out["eval_duration"] = count_num(ctx.usage_out) * 1_000_000
        return out

    def response(self, ctx):
        return Reply(200, self.json_ctype, dumps(self._final(ctx, ctx.reply, True)))

    def stream_piece(self, ctx, route, index, text, final):
        line = {"model": ctx.model, "created_at": now_rfc3339(),
                "message": {"role": "assistant", "content": text}, "done": False}
        return (dumps(line) + "\n").encode("utf-8")

    def stream_close(self, ctx, route):
        return [(dumps(self._final(ctx, "", ctx.stream_usage)) + "\n").encode("utf-8")]


OPENAI, ANTHROPIC, GEMINI, OLLAMA = OpenAI(), Anthropic(), Gemini(), Ollama()

GEMINI_PATH = re.compile(r"/(v1beta|v1)/models/([^/]+?):(generateContent|streamGenerateContent)")
SCOPE_PATH = re.compile(r"/s/([A-Za-z0-9_-]+)(/.*)?")


def route_provider(path):
    """(kind, route info) for a provider path, or (None, None)."""
    if path == "/v1/chat/completions":
        return OPENAI, {}
    if path == "/v1/messages":
        return ANTHROPIC, {}
    if path == "/api/chat":
        return OLLAMA, {}
    m = GEMINI_PATH.fullmatch(path)
    if m:
        return GEMINI, {"model": m.group(2), "method": m.group(3)}
    return None, None


def not_found(req, path):
    """404 for an unknown path, in the format of the provider it looks like."""
    if path.startswith("/api/"):
        return Reply(404, "text/plain", "404 page not found")          # Ollama (Go)
    if path.startswith("/v1beta/") or path.startswith("/v1/models/"):
        return GEMINI.error(404, "Requested entity was not found.")
    if "anthropic-version" in req.headers:
        return ANTHROPIC.error(404, "Not Found")
    return OPENAI.error(404, "Invalid URL (%s %s)" % (req.method, path))


# ---------------------------------------------------------------------------
# The server
# ---------------------------------------------------------------------------


class FakeServer:
    def __init__(self):
        self.scopes = {}

    def scope(self, name):
        sc = self.scopes.get(name)
        if sc is None:
            sc = self.scopes[name] = Scope(name)
        return sc

    async def handle_conn(self, reader, writer):
        conn = Conn(reader, writer)
        try:
            while not conn.closed:
                req = await conn.read_request()
                if req is None:
                    break
                if VERBOSE:
                    log("%s %s" % (req.method, req.target))
                if not await self.dispatch(conn, req):
                    break
        except HttpError as e:
            try:
                await conn.send(conn.head(e.status, [
                    ("Content-Type", "text/plain"),
                    ("Content-Length", str(len(e.message) + 1)),
                    ("Connection", "close")]) + e.message.encode() + b"\n")
            except (ConnectionError, OSError):
                pass
        except (ClientGone, ConnectionError, OSError):
            pass
        except Exception as e:     # a bug: say so, drop the connection
            log("internal error: %r" % (e,))
            traceback.print_exc(file=sys.stderr)
        finally:
            conn.close()

    async def dispatch(self, conn, req):
        """Answers one request; returns whether to keep the connection."""
        path, name = req.path, "default"
        m = SCOPE_PATH.fullmatch(path)
        if m:
            name, path = m.group(1), m.group(2) or "/"
        if path.startswith("/_fake/"):
            return await self.control(conn, req, name, path)
        kind, route = route_provider(path)
        if kind is None:
            return await self.send_reply(conn, req, not_found(req, path))
        if req.method != "POST":
            r = kind.error(405, "Invalid method for URL (%s %s)" % (req.method, path))
            r.headers.append(("Allow", "POST"))
            return await self.send_reply(conn, req, r)
        route["query"] = req.query
        route["path"] = path
        return await self.provider(conn, req, self.scope(name), kind, route)

    async def send_reply(self, conn, req, r, keep=True):
        return await conn.respond(req, r.status, r.ctype, r.body, r.headers, keep)

    # ---- control endpoints ----

    async def control(self, conn, req, name, path):
        def js(status, obj):
            return conn.respond(req, status, "application/json", (dumps(obj) + "\n").encode())

        if path == "/_fake/config" and req.method in ("GET", "POST"):
            sc = self.scope(name)
            if req.method == "POST":
                update, err = parse_json(req.body)
                err = "malformed JSON: " + err if err else check_config(update)
                if err:
                    return await js(400, {"error": err})
                sc.config.update(update)
            return await js(200, sc.config)
        if path == "/_fake/reset" and req.method == "POST":
            if req.query.get("all") in ("1", "true"):
                for sc in self.scopes.values():
                    sc.reset()
            else:
                self.scope(name).reset()
            return await js(200, {"ok": True})
        if path == "/_fake/stats" and req.method == "GET":
            return await js(200, self.scope(name).stats_json())
        if path == "/_fake/health" and req.method == "GET":
            return await js(200, {"ok": True, "pid": os.getpid()})
        return await js(404, {"error": "no control endpoint %s %s" % (req.method, path)})

    # ---- provider endpoints ----

    async def provider(self, conn, req, scope, kind, route):
        body, parse_err = parse_json(req.body)
        scope.record(kind.name, req, route["path"], body)
        if scope.config["stall"]:
            scope.stats["stalled"] += 1
            await conn.wait_gone()
            scope.stats["stall_released"] += 1  # the client gave up on it
            return False
        if scope.config["raw_answer"] is not None:
            await conn.send(scope.config["raw_answer"].encode("latin-1", "replace"))
            conn.close()
            return False
        return await conn.watched(self.answer(conn, req, scope, kind, route, body, parse_err))

    async def answer(self, conn, req, scope, kind, route, body, parse_err):
        """Latency, then the first error that applies (auth, malformed or
        invalid request, injected failure), else the answer."""
        cfg = dict(scope.config)       # a snapshot: a config change mid-stream waits
        if cfg["latency_ms"]:
            await asyncio.sleep(cfg["latency_ms"] / 1000)
        err = None
        if cfg["expect_key"] is not None:
            err = kind.auth_error(req, cfg["expect_key"])
        if err is None and parse_err is not None:
            err = kind.bad_json(parse_err)
        if err is None and not isinstance(body, dict):
            err = kind.bad_json("the body is not a JSON object")
        if err is None:
            err = kind.validate(req, body, route)
        if err is None:
            status = scope.take_failure()
            if status is not None:
                err = kind.failure(status)
                if cfg["retry_after"] is not None:
                    ra = cfg["retry_after"]
                    ra = str(int(ra)) if _is_num(ra) and ra == int(ra) else str(ra)
                    err.headers.append(("Retry-After", ra))
        if err is not None:
            return await self.send_reply(conn, req, err)

        ctx = Ctx(kind.model(body, route), cfg, kind.include_usage(body))
        stream = kind.is_stream(body, route)
        if cfg["cut_after"] is not None and not stream:
            scope.stats["cut"] += 1        # close without answering
            conn.close()
            return False
        if not stream:
            reply = kind.response(ctx)
            if cfg["corrupt"]:
                reply.body = corrupt_body(reply.body, cfg["corrupt"], ctx.reply)
            return await self.send_reply(conn, req, reply)
        return await self.stream(conn, req, scope, kind, route, ctx, cfg)

    async def wait_piece(self, out, delay, cfg, ctype):
        """Waits delay seconds before a stream piece; an SSE stream gets a
        comment line every keepalive_ms meanwhile (what proxies send to keep
        a quiet stream open: bytes, no event)."""
        every = cfg["keepalive_ms"] / 1000
        if not every or not ctype.startswith("text/event-stream"):
            await asyncio.sleep(delay)
            return
        left = delay
        while left > 0:
            step = min(every, left)
            await asyncio.sleep(step)
            left -= step
            if left > 0:
                await out.write(b": keep-alive\n\n")

    async def stream(self, conn, req, scope, kind, route, ctx, cfg):
        out = BodyStream(conn, req)
        delay = cfg["chunk_delay_ms"] / 1000
        cut = cfg["cut_after"]
        started = False
        try:
            ctype = kind.stream_ctype_for(route)
            extra = kind.headers()
            if ctype.startswith("text/event-stream"):
                extra.insert(0, ("Cache-Control", "no-cache"))
            await out.start(ctype, extra)
            started = True
            scope.stream_started()
            for event in kind.stream_open(ctx, route):
                await out.write(event)
            pieces = kind.stream_pieces(ctx)
            end_after = cfg["end_after"]
            for i, text in enumerate(pieces):
                if cut is not None and i >= cut:
                    break
                if end_after is not None and i >= end_after:
                    break
                if delay:
                    await self.wait_piece(out, delay, cfg, ctype)
                final = cut is None and end_after is None and i == len(pieces) - 1
                data = kind.stream_piece(ctx, route, i, text, final)
                if cfg["corrupt"] and i == 0:
                    data = corrupt_body(data, cfg["corrupt"], text)
                await out.write(data)
            if cut is not None:
                # Close without the stream's end or the terminal chunk.
                scope.stats["cut"] += 1
                conn.close()
                return False
            if cfg["end_after"] is not None:
                # A well-formed HTTP body that stops mid-answer: no finish
                # reason, no end event, no [DONE].
                await out.finish()
                scope.stats["cut"] += 1
                return out.keep
            for event in kind.stream_close(ctx, route):
                await out.write(event)
            await out.finish()
            scope.stats["completed_streams"] += 1
            return out.keep
        except (asyncio.CancelledError, ConnectionError):
            if started:
                scope.stats["aborted_streams"] += 1
            raise
        finally:
            if started:
                scope.active -= 1


# ---------------------------------------------------------------------------
# Process lifecycle
# ---------------------------------------------------------------------------


def quit_now(why):
    log("exiting: %s" % why)
    os._exit(0)


def raise_nofile_limit():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = 1 << 20
    if soft == resource.RLIM_INFINITY or soft >= hard:
        return
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError) as e:
        log("cannot raise RLIMIT_NOFILE to %d: %s" % (hard, e))


def process_gone(pid, original_ppid):
    """Whether pid no longer runs (gone, or a zombie nobody reaped yet)."""
    if pid == original_ppid and os.getppid() != pid:
        return True                    # our parent died: we were re-parented
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False


async def watch_parent(pid):
    original_ppid = os.getppid()
    while True:
        await asyncio.sleep(0.5)
        if process_gone(pid, original_ppid):
            quit_now("parent process %d is gone" % pid)


def watch_stdin(loop):
    """Exits when a piped stdin reaches EOF. A pipe already at EOF when we
    start (an inherited, closed pipe) is not a control channel: ignored."""
    try:
        if not stat.S_ISFIFO(os.fstat(0).st_mode):
            return
        if select.select([0], [], [], 0)[0] and os.read(0, 4096) == b"":
            return
    except OSError:
        return

    def readable():
        try:
            data = os.read(0, 4096)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            quit_now("stdin closed")

    loop.add_reader(0, readable)


async def amain(args):
    loop = asyncio.get_running_loop()
    fake = FakeServer()
    server = await asyncio.start_server(fake.handle_conn, args.host, args.port,
                                        backlog=LISTEN_BACKLOG, reuse_address=True)
    port = server.sockets[0].getsockname()[1]
    sys.stdout.write("ready %d\n" % port)
    sys.stdout.flush()
    if args.parent_pid:
        loop.create_task(watch_parent(args.parent_pid))
    if args.ttl > 0:
        loop.call_later(args.ttl, quit_now, "ttl of %gs reached" % args.ttl)
    watch_stdin(loop)
    await asyncio.Event().wait()       # forever; every exit is os._exit


def main():
    global VERBOSE
    ap = argparse.ArgumentParser(description="Fake OpenAI/Anthropic/Gemini/Ollama server.")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0, help="0 = pick a free port")
    ap.add_argument("--parent-pid", type=int, default=0,
                    help="exit when this process is gone (checked every 0.5 s)")
    ap.add_argument("--ttl", type=float, default=600,
                    help="exit after this many seconds (default 600, 0 = never)")
    ap.add_argument("-v", "--verbose", action="store_true", help="log requests on stderr")
    args = ap.parse_args()
    VERBOSE = args.verbose
    # SIGTERM/SIGINT: the default action, i.e. exit at once, whatever the
    # parent left us with (SIG_IGN is inherited across exec).
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    raise_nofile_limit()
    asyncio.run(amain(args))


if __name__ == "__main__":
    main()
