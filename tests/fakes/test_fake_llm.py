#!/usr/bin/env python3
"""test_fake_llm.py - self-check of fake_llm.py (plain unittest, stdlib only).

    python3 tests/fakes/test_fake_llm.py [-v] [TestClass.test_name ...]

Starts the fake as a subprocess (one shared instance; every test works in its
own scope, named after the test) and checks each provider's wire format,
streaming and not, the behaviour switches, scopes, the HTTP/1.1 details,
2,000 concurrent slow streams, and the process lifecycle.
"""

import asyncio
import http.client
import json
import os
import re
import resource
import select
import signal
import socket
import subprocess
import sys
import time
import unittest

FAKE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fake_llm.py")
HOST = "127.0.0.1"
PORT = None          # of the shared fake
PROC = None

OPENAI_REQ = {"model": "gpt-test", "messages": [{"role": "user", "content": "hi"}]}
ANTHROPIC_REQ = {"model": "claude-test", "max_tokens": 64,
                 "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]}
ANTHROPIC_HDR = {"anthropic-version": "2023-06-01"}
GEMINI_REQ = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
OLLAMA_REQ = {"model": "llama-test", "messages": [{"role": "user", "content": "hi"}]}


def start_fake(*args, stdin=subprocess.DEVNULL, parent=None):
    """(process, port) of a new fake; waits for its "ready PORT" line."""
    cmd = [sys.executable, FAKE, "--parent-pid", str(parent or os.getpid())] + list(args)
    p = subprocess.Popen(cmd, stdin=stdin, stdout=subprocess.PIPE)
    ready, _, _ = select.select([p.stdout], [], [], 10)
    if not ready:
        p.kill()
        raise RuntimeError("fake did not print its ready line")
    line = p.stdout.readline()
    m = re.fullmatch(rb"ready (\d+)\n", line)
    if not m:
        p.kill()
        raise RuntimeError("bad ready line %r" % line)
    return p, int(m.group(1))


def wait_exit(p, timeout):
    """The exit code, or None if p still runs after timeout seconds."""
    try:
        return p.wait(timeout)
    except subprocess.TimeoutExpired:
        return None


def setUpModule():
    global PROC, PORT
    # The 2,000-stream test needs as many sockets in this process too.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    PROC, PORT = start_fake("--ttl", "600")


def tearDownModule():
    if PROC:
        PROC.terminate()
        PROC.wait(5)
        PROC.stdout.close()


def sse_events(body, sep=b"\n\n"):
    """[(event name or None, data string)] of an SSE body."""
    out = []
    for block in body.split(sep):
        if not block.strip():
            continue
        event, data = None, []
        for line in block.decode("utf-8").splitlines():
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                data.append(line[6:])
        out.append((event, "\n".join(data)))
    return out


def dechunk(raw):
    """(body, complete) of a chunked body; complete = the 0 chunk was seen."""
    body, pos = bytearray(), 0
    while True:
        end = raw.find(b"\r\n", pos)
        if end < 0:
            return bytes(body), False
        size = int(raw[pos:end].split(b";")[0], 16)
        if size == 0:
            return bytes(body), raw[end:end + 4] == b"\r\n\r\n"
        if end + 2 + size + 2 > len(raw):
            body += raw[end + 2:end + 2 + size]
            return bytes(body), False
        body += raw[end + 2:end + 2 + size]
        pos = end + 2 + size + 2


def raw_request(method, path, body=b"", headers=None, version="HTTP/1.1"):
    hdr = {"Host": "%s:%d" % (HOST, PORT), "Content-Type": "application/json"}
    if body:
        hdr["Content-Length"] = str(len(body))
    hdr.update(headers or {})
    head = "%s %s %s\r\n" % (method, path, version)
    head += "".join("%s: %s\r\n" % kv for kv in hdr.items()) + "\r\n"
    return head.encode() + body


def read_to_eof(sock, timeout=10):
    sock.settimeout(timeout)
    data = bytearray()
    while True:
        try:
            b = sock.recv(65536)
        except ConnectionResetError:
            break
        if not b:
            break
        data += b
    return bytes(data)


class FakeTest(unittest.TestCase):
    """Helpers; every test runs in its own scope /s/<Class-test_name>."""

    def setUp(self):
        self.scope = "/s/" + "-".join(self.id().split(".")[-2:])
        self.request("POST", self.scope + "/_fake/reset")

    def request(self, method, path, body=None, headers=None, conn=None, timeout=10):
        """(status, headers with lower-case names, body bytes)."""
        own = conn is None
        if own:
            conn = http.client.HTTPConnection(HOST, PORT, timeout=timeout)
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
        hdr = {"Content-Type": "application/json"}
        hdr.update(headers or {})
        try:
            conn.request(method, path, body=body, headers=hdr)
            resp = conn.getresponse()
            data = resp.read()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
        finally:
            if own:
                conn.close()

    def post(self, path, body, headers=None, **kw):
        return self.request("POST", self.scope + path, body, headers, **kw)

    def config(self, **cfg):
        st, _, body = self.request("POST", self.scope + "/_fake/config", cfg)
        self.assertEqual(st, 200, body)
        return json.loads(body)

    def stats(self):
        st, _, body = self.request("GET", self.scope + "/_fake/stats")
        self.assertEqual(st, 200)
        return json.loads(body)

    def wait_stats(self, pred, timeout=5):
        """Polls the stats until pred(stats) holds; returns them."""
        deadline = time.monotonic() + timeout
        while True:
            s = self.stats()
            if pred(s) or time.monotonic() > deadline:
                return s
            time.sleep(0.05)


class TestOpenAI(FakeTest):
    def test_non_stream(self):
        st, hdr, body = self.post("/v1/chat/completions", OPENAI_REQ)
        self.assertEqual(st, 200)
        self.assertEqual(hdr["content-type"], "application/json")
        self.assertIn("content-length", hdr)
        r = json.loads(body)
        self.assertTrue(r["id"].startswith("chatcmpl-"))
        self.assertEqual(r["object"], "chat.completion")
        self.assertIsInstance(r["created"], int)
        self.assertEqual(r["model"], "gpt-test")
        ch = r["choices"][0]
        self.assertEqual(ch["index"], 0)
        self.assertEqual(ch["message"]["role"], "assistant")
        self.assertEqual(ch["message"]["content"], "Hello from gpt-test.")
        self.assertIsNone(ch["message"]["refusal"])
        self.assertIsNone(ch["logprobs"])
        self.assertEqual(ch["finish_reason"], "stop")
        u = r["usage"]
        self.assertEqual((u["prompt_tokens"], u["completion_tokens"], u["total_tokens"]),
                         (10, 20, 30))

    def _stream(self, req):
        st, hdr, body = self.post("/v1/chat/completions", dict(req, stream=True))
        self.assertEqual(st, 200)
        self.assertTrue(hdr["content-type"].startswith("text/event-stream"))
        self.assertEqual(hdr["transfer-encoding"], "chunked")
        events = sse_events(body)
        self.assertEqual(events[-1], (None, "[DONE]"))
        return [json.loads(d) for _, d in events[:-1]]

    def test_stream_with_usage(self):
        self.config(reply="One two  three!\n")
        chunks = self._stream(dict(OPENAI_REQ, stream_options={"include_usage": True}))
        for c in chunks:
            self.assertEqual(c["object"], "chat.completion.chunk")
            self.assertEqual(c["id"], chunks[0]["id"])
            self.assertEqual(c["model"], "gpt-test")
        self.assertEqual(chunks[0]["choices"][0]["delta"]["role"], "assistant")
        self.assertEqual(chunks[0]["choices"][0]["delta"]["content"], "")
        pieces = [c["choices"][0]["delta"]["content"] for c in chunks[1:-2]]
        self.assertEqual(pieces, ["One ", "two  ", "three!\n"])
        self.assertEqual(chunks[-2]["choices"][0]["delta"], {})
        self.assertEqual(chunks[-2]["choices"][0]["finish_reason"], "stop")
        self.assertEqual(chunks[-1]["choices"], [])
        self.assertEqual(chunks[-1]["usage"]["total_tokens"], 30)
        self.assertTrue(all(c["usage"] is None for c in chunks[:-1]))

    def test_stream_without_usage(self):
        chunks = self._stream(OPENAI_REQ)
        self.assertEqual("".join(c["choices"][0]["delta"].get("content", "")
                                 for c in chunks), "Hello from gpt-test.")
        self.assertEqual(chunks[-1]["choices"][0]["finish_reason"], "stop")
        self.assertTrue(all("usage" not in c for c in chunks))

    def test_stream_usage_off(self):
        self.config(stream_usage=False)
        chunks = self._stream(dict(OPENAI_REQ, stream_options={"include_usage": True}))
        self.assertEqual(chunks[-1]["choices"][0]["finish_reason"], "stop")
        self.assertTrue(all("usage" not in c for c in chunks))

    def test_errors(self):
        st, _, body = self.post("/v1/chat/completions", b"{not json")
        self.assertEqual(st, 400)
        e = json.loads(body)["error"]
        self.assertEqual(e["type"], "invalid_request_error")
        self.assertEqual(set(e), {"message", "type", "param", "code"})
        st, _, body = self.post("/v1/chat/completions", {"model": "m"})
        self.assertEqual(st, 400)
        self.assertEqual(json.loads(body)["error"]["param"], "messages")
        st, _, body = self.post("/v1/chat/completions", dict(OPENAI_REQ, stream_options={}))
        self.assertEqual(st, 400)

    def test_expect_key(self):
        self.config(expect_key="sk-1")
        st, _, body = self.post("/v1/chat/completions", OPENAI_REQ)
        self.assertEqual(st, 401)
        self.assertIn("error", json.loads(body))
        st, _, _ = self.post("/v1/chat/completions", OPENAI_REQ,
                             {"Authorization": "Bearer sk-2"})
        self.assertEqual(st, 401)
        st, _, _ = self.post("/v1/chat/completions", OPENAI_REQ,
                             {"Authorization": "Bearer sk-1"})
        self.assertEqual(st, 200)


class TestAnthropic(FakeTest):
    def test_non_stream(self):
        st, hdr, body = self.post("/v1/messages", ANTHROPIC_REQ, ANTHROPIC_HDR)
        self.assertEqual(st, 200)
        r = json.loads(body)
        self.assertTrue(r["id"].startswith("msg_"))
        self.assertEqual((r["type"], r["role"], r["model"]),
                         ("message", "assistant", "claude-test"))
        self.assertEqual(r["content"], [{"type": "text", "text": "Hello from claude-test."}])
        self.assertEqual(r["stop_reason"], "end_turn")
        self.assertIsNone(r["stop_sequence"])
        self.assertEqual((r["usage"]["input_tokens"], r["usage"]["output_tokens"]), (10, 20))

    def test_stream(self):
        self.config(usage_in=7, usage_out=3)
        st, hdr, body = self.post("/v1/messages", dict(ANTHROPIC_REQ, stream=True),
                                  ANTHROPIC_HDR)
        self.assertEqual(st, 200)
        self.assertTrue(hdr["content-type"].startswith("text/event-stream"))
        events = sse_events(body)
        names = [e for e, _ in events]
        self.assertEqual(names, ["message_start", "content_block_start", "ping"]
                         + ["content_block_delta"] * 3
                         + ["content_block_stop", "message_delta", "message_stop"])
        data = [json.loads(d) for _, d in events]
        for name, d in zip(names, data):
            self.assertEqual(d["type"], name)
        msg = data[0]["message"]
        self.assertEqual((msg["content"], msg["usage"]["input_tokens"],
                          msg["usage"]["output_tokens"]), ([], 7, 1))
        self.assertEqual(data[1]["content_block"], {"type": "text", "text": ""})
        text = "".join(d["delta"]["text"] for d in data[3:6])
        self.assertEqual(text, "Hello from claude-test.")
        self.assertEqual(data[3]["delta"]["type"], "text_delta")
        self.assertEqual(data[7]["delta"], {"stop_reason": "end_turn", "stop_sequence": None})
        self.assertEqual(data[7]["usage"], {"output_tokens": 3})

    def test_stream_usage_off(self):
        self.config(stream_usage=False)
        _, _, body = self.post("/v1/messages", dict(ANTHROPIC_REQ, stream=True),
                               ANTHROPIC_HDR)
        delta = [json.loads(d) for e, d in sse_events(body) if e == "message_delta"][0]
        self.assertNotIn("usage", delta)

    def test_errors(self):
        def check(st, body, status, etype):
            self.assertEqual(st, status)
            r = json.loads(body)
            self.assertEqual(r["type"], "error")
            self.assertEqual(r["error"]["type"], etype)
            self.assertTrue(r["error"]["message"])

        no_max = dict(ANTHROPIC_REQ)
        del no_max["max_tokens"]
        check(*self.post("/v1/messages", no_max, ANTHROPIC_HDR)[::2], 400,
              "invalid_request_error")
        check(*self.post("/v1/messages", ANTHROPIC_REQ)[::2], 400, "invalid_request_error")
        check(*self.post("/v1/messages", b"[1,", ANTHROPIC_HDR)[::2], 400,
              "invalid_request_error")
        self.config(expect_key="k")
        check(*self.post("/v1/messages", ANTHROPIC_REQ, ANTHROPIC_HDR)[::2], 401,
              "authentication_error")
        st, _, _ = self.post("/v1/messages", ANTHROPIC_REQ, dict(ANTHROPIC_HDR, **{"x-api-key": "k"}))
        self.assertEqual(st, 200)


class TestGemini(FakeTest):
    PATH = "/v1beta/models/gemini-test:"

    def test_non_stream(self):
        st, hdr, body = self.post(self.PATH + "generateContent", GEMINI_REQ)
        self.assertEqual(st, 200)
        self.assertTrue(hdr["content-type"].startswith("application/json"))
        r = json.loads(body)
        c = r["candidates"][0]
        self.assertEqual(c["content"], {"parts": [{"text": "Hello from gemini-test."}],
                                        "role": "model"})
        self.assertEqual((c["finishReason"], c["index"]), ("STOP", 0))
        u = r["usageMetadata"]
        self.assertEqual((u["promptTokenCount"], u["candidatesTokenCount"],
                          u["totalTokenCount"]), (10, 20, 30))
        self.assertEqual(r["modelVersion"], "gemini-test")

    def test_stream_sse(self):
        st, hdr, body = self.post(self.PATH + "streamGenerateContent?alt=sse", GEMINI_REQ)
        self.assertEqual(st, 200)
        self.assertTrue(hdr["content-type"].startswith("text/event-stream"))
        self.assertTrue(body.endswith(b"\r\n\r\n"))
        events = [json.loads(d) for _, d in sse_events(body, b"\r\n\r\n")]
        self.assertEqual(len(events), 3)
        text = "".join(e["candidates"][0]["content"]["parts"][0]["text"] for e in events)
        self.assertEqual(text, "Hello from gemini-test.")
        for e in events[:-1]:
            self.assertNotIn("finishReason", e["candidates"][0])
            self.assertNotIn("usageMetadata", e)
            self.assertEqual(e["candidates"][0]["content"]["role"], "model")
        self.assertEqual(events[-1]["candidates"][0]["finishReason"], "STOP")
        self.assertEqual(events[-1]["usageMetadata"]["totalTokenCount"], 30)

    def test_stream_json_array(self):
        # Without alt=sse the real API streams one JSON array.
        st, _, body = self.post(self.PATH + "streamGenerateContent", GEMINI_REQ)
        self.assertEqual(st, 200)
        arr = json.loads(body)
        self.assertEqual(arr[-1]["candidates"][0]["finishReason"], "STOP")

    def test_stream_usage_off_and_empty_reply(self):
        self.config(stream_usage=False, reply="")
        _, _, body = self.post(self.PATH + "streamGenerateContent?alt=sse", GEMINI_REQ)
        events = [json.loads(d) for _, d in sse_events(body, b"\r\n\r\n")]
        self.assertEqual(len(events), 1)
        self.assertEqual(events[0]["candidates"][0]["finishReason"], "STOP")
        self.assertNotIn("usageMetadata", events[0])

    def test_errors_and_key(self):
        st, _, body = self.post(self.PATH + "generateContent", b"nope")
        self.assertEqual(st, 400)
        e = json.loads(body)["error"]
        self.assertEqual((e["code"], e["status"]), (400, "INVALID_ARGUMENT"))
        self.config(expect_key="g")
        st, _, body = self.post(self.PATH + "generateContent", GEMINI_REQ)
        self.assertEqual(st, 401)
        self.assertEqual(json.loads(body)["error"]["code"], 401)
        st, _, _ = self.post(self.PATH + "generateContent", GEMINI_REQ, {"x-goog-api-key": "g"})
        self.assertEqual(st, 200)
        st, _, _ = self.post(self.PATH + "generateContent?key=g", GEMINI_REQ)
        self.assertEqual(st, 200)
        st, _, _ = self.post(self.PATH + "generateContent?key=x", GEMINI_REQ)
        self.assertEqual(st, 401)


class TestOllama(FakeTest):
    def test_streams_by_default(self):
        st, hdr, body = self.post("/api/chat", OLLAMA_REQ)
        self.assertEqual(st, 200)
        self.assertEqual(hdr["content-type"], "application/x-ndjson")
        self.assertEqual(hdr["transfer-encoding"], "chunked")
        lines = [json.loads(l) for l in body.decode().splitlines()]
        self.assertEqual(len(lines), 4)
        for l in lines[:-1]:
            self.assertEqual((l["model"], l["done"], l["message"]["role"]),
                             ("llama-test", False, "assistant"))
            self.assertIn("created_at", l)
        self.assertEqual("".join(l["message"]["content"] for l in lines),
                         "Hello from llama-test.")
        last = lines[-1]
        self.assertEqual((last["done"], last["done_reason"], last["message"]["content"]),
                         (True, "stop", ""))
        self.assertEqual((last["prompt_eval_count"], last["eval_count"]), (10, 20))

    def test_non_stream(self):
        st, hdr, body = self.post("/api/chat", dict(OLLAMA_REQ, stream=False))
        self.assertEqual(st, 200)
        r = json.loads(body)
        self.assertEqual(r["message"], {"role": "assistant", "content": "Hello from llama-test."})
        self.assertEqual((r["done"], r["done_reason"]), (True, "stop"))
        self.assertEqual((r["prompt_eval_count"], r["eval_count"]), (10, 20))
        for k in ("total_duration", "load_duration", "prompt_eval_duration", "eval_duration"):
            self.assertIsInstance(r[k], int)

    def test_stream_usage_off(self):
        self.config(stream_usage=False)
        _, _, body = self.post("/api/chat", OLLAMA_REQ)
        last = json.loads(body.decode().splitlines()[-1])
        self.assertTrue(last["done"])
        self.assertNotIn("eval_count", last)
        self.assertNotIn("prompt_eval_count", last)

    def test_errors(self):
        st, _, body = self.post("/api/chat", b"{")
        self.assertEqual(st, 400)
        self.assertIsInstance(json.loads(body)["error"], str)
        st, _, body = self.post("/api/chat", {"messages": []})
        self.assertEqual((st, json.loads(body)), (400, {"error": "model is required"}))


class TestSwitches(FakeTest):
    def test_fail_count_then_success(self):
        self.config(fail_status=500, fail_count=1)
        st, _, body = self.post("/v1/chat/completions", OPENAI_REQ)
        self.assertEqual(st, 500)
        self.assertEqual(json.loads(body)["error"]["type"], "server_error")
        st, _, _ = self.post("/v1/chat/completions", OPENAI_REQ)
        self.assertEqual(st, 200)
        s = self.stats()
        self.assertEqual((s["requests"], s["failed"], s["by_kind"]["openai"]), (2, 1, 2))

    def test_429_retry_after(self):
        self.config(fail_status=429, fail_count=-1, retry_after=7)
        st, hdr, body = self.post("/v1/chat/completions", OPENAI_REQ)
        self.assertEqual((st, hdr["retry-after"]), (429, "7"))
        self.assertEqual(json.loads(body)["error"]["type"], "rate_limit_exceeded")
        st, hdr, body = self.post("/v1/messages", ANTHROPIC_REQ, ANTHROPIC_HDR)
        self.assertEqual((st, hdr["retry-after"]), (429, "7"))
        self.assertEqual(json.loads(body)["error"]["type"], "rate_limit_error")
        st, hdr, body = self.post("/v1beta/models/g:generateContent", GEMINI_REQ)
        self.assertEqual((st, hdr["retry-after"]), (429, "7"))
        self.assertEqual(json.loads(body)["error"]["status"], "RESOURCE_EXHAUSTED")
        st, hdr, body = self.post("/api/chat", OLLAMA_REQ)
        self.assertEqual(st, 429)
        self.assertIsInstance(json.loads(body)["error"], str)
        self.assertEqual(self.stats()["failed"], 4)
        self.request("POST", self.scope + "/_fake/reset")
        st, hdr, _ = self.post("/v1/chat/completions", OPENAI_REQ)
        self.assertEqual(st, 200)
        self.assertNotIn("retry-after", hdr)

    def test_5xx_formats(self):
        self.config(fail_status=503, fail_count=-1)
        _, _, body = self.post("/v1/messages", ANTHROPIC_REQ, ANTHROPIC_HDR)
        self.assertEqual(json.loads(body)["error"]["type"], "api_error")
        self.config(fail_status=500)
        _, _, body = self.post("/v1beta/models/g:streamGenerateContent?alt=sse", GEMINI_REQ)
        self.assertEqual(json.loads(body)["error"]["status"], "INTERNAL")

    def test_latency(self):
        self.config(latency_ms=300)
        t0 = time.monotonic()
        st, _, _ = self.post("/api/chat", dict(OLLAMA_REQ, stream=False))
        self.assertEqual(st, 200)
        self.assertGreaterEqual(time.monotonic() - t0, 0.29)

    def test_cut_after_stream(self):
        self.config(cut_after=2, reply="a b c d e")
        body = json.dumps(dict(OPENAI_REQ, stream=True)).encode()
        with socket.create_connection((HOST, PORT)) as s:
            s.sendall(raw_request("POST", self.scope + "/v1/chat/completions", body))
            raw = read_to_eof(s)
        head, _, rest = raw.partition(b"\r\n\r\n")
        self.assertIn(b"Transfer-Encoding: chunked", head)
        data, complete = dechunk(rest)
        self.assertFalse(complete)
        events = sse_events(data)
        # the role chunk, then 2 pieces; no finish, no [DONE]
        self.assertEqual(len(events), 3)
        self.assertNotIn(b"[DONE]", data)
        self.assertNotIn(b'"finish_reason":"stop"', data)
        # http.client sees an incomplete body too
        conn = http.client.HTTPConnection(HOST, PORT, timeout=10)
        conn.request("POST", self.scope + "/v1/chat/completions", body)
        with self.assertRaises(http.client.IncompleteRead):
            conn.getresponse().read()
        conn.close()
        self.assertEqual(self.stats()["cut"], 2)

    def test_cut_after_non_stream(self):
        self.config(cut_after=0)
        with self.assertRaises(http.client.RemoteDisconnected):
            self.post("/v1/chat/completions", OPENAI_REQ)

    def test_stall(self):
        self.config(stall=True)
        t0 = time.monotonic()
        with self.assertRaises(socket.timeout):
            self.post("/v1/chat/completions", OPENAI_REQ, timeout=1)
        self.assertGreaterEqual(time.monotonic() - t0, 0.9)
        s = self.stats()
        self.assertEqual((s["stalled"], s["requests"]), (1, 1))
        self.config(stall=False)
        st, _, _ = self.post("/v1/chat/completions", OPENAI_REQ)
        self.assertEqual(st, 200)

    def test_aborted_stream_detected_while_idle(self):
        # 5 s between pieces: the close must be seen by watching the reader,
        # long before the next write would fail.
        self.config(chunk_delay_ms=5000)
        body = json.dumps(dict(OLLAMA_REQ)).encode()
        s = socket.create_connection((HOST, PORT))
        s.sendall(raw_request("POST", self.scope + "/api/chat", body))
        s.settimeout(5)
        self.assertTrue(s.recv(4096).startswith(b"HTTP/1.1 200 OK"))
        self.assertEqual(self.stats()["active_streams"], 1)
        t0 = time.monotonic()
        s.close()
        st = self.wait_stats(lambda x: x["aborted_streams"] == 1 and x["active_streams"] == 0)
        self.assertEqual((st["aborted_streams"], st["active_streams"],
                          st["completed_streams"]), (1, 0, 0))
        self.assertLess(time.monotonic() - t0, 2)

    def test_aborted_stream_mid_pieces(self):
        self.config(chunk_delay_ms=100, reply=" ".join(["w"] * 50))
        body = json.dumps(dict(OPENAI_REQ, stream=True)).encode()
        s = socket.create_connection((HOST, PORT))
        s.sendall(raw_request("POST", self.scope + "/v1/chat/completions", body))
        s.settimeout(5)
        got = b""
        while got.count(b'"content":"w') < 3:
            got += s.recv(65536)
        s.close()
        st = self.wait_stats(lambda x: x["aborted_streams"] == 1)
        self.assertEqual((st["aborted_streams"], st["active_streams"],
                          st["completed_streams"]), (1, 0, 0))

    def test_config_validation_and_reset(self):
        st, _, body = self.request("POST", self.scope + "/_fake/config", {"nope": 1})
        self.assertEqual(st, 400)
        self.assertIn("nope", json.loads(body)["error"])
        st, _, _ = self.request("POST", self.scope + "/_fake/config", {"fail_count": "x"})
        self.assertEqual(st, 400)
        st, _, _ = self.request("POST", self.scope + "/_fake/config", b"{")
        self.assertEqual(st, 400)
        cfg = self.config(reply="x")
        self.assertEqual(cfg["reply"], "x")
        self.post("/api/chat", OLLAMA_REQ)
        st, _, _ = self.request("POST", self.scope + "/_fake/reset")
        self.assertEqual(st, 200)
        st, _, body = self.request("GET", self.scope + "/_fake/config")
        self.assertIsNone(json.loads(body)["reply"])
        self.assertEqual(self.stats()["requests"], 0)


class TestMisbehaviour(FakeTest):
    """The switches that make an answer wrong on purpose: absurd or textual
    token counts, corrupt JSON or UTF-8, a fast stream of many bytes."""

    def test_usage_counts_as_given(self):
        self.config(usage_in=1e30, usage_out="20")
        st, _, body = self.post("/v1/chat/completions", OPENAI_REQ)
        u = json.loads(body)["usage"]
        self.assertEqual((u["prompt_tokens"], u["completion_tokens"]), (1e30, "20"))
        self.config(usage_in="10", usage_out="20")
        _, _, body = self.post("/v1beta/models/g:generateContent", GEMINI_REQ)
        self.assertEqual(json.loads(body)["usageMetadata"]["totalTokenCount"], "30")
        _, _, body = self.post("/api/chat", dict(OLLAMA_REQ, stream=False))
        self.assertEqual(json.loads(body)["prompt_eval_count"], "10")
        st, _, _ = self.request("POST", self.scope + "/_fake/config", {"usage_in": -1})
        self.assertEqual(st, 400)

    def test_corrupt_json_and_utf8_whole(self):
        for kind, path, req, hdr in (
                ("openai", "/v1/chat/completions", OPENAI_REQ, None),
                ("anthropic", "/v1/messages", ANTHROPIC_REQ, ANTHROPIC_HDR),
                ("gemini", "/v1beta/models/g:generateContent", GEMINI_REQ, None),
                ("ollama", "/api/chat", dict(OLLAMA_REQ, stream=False), None)):
            self.config(corrupt="json")
            st, hdr_, body = self.post(path, req, hdr)
            self.assertEqual(st, 200, kind)
            self.assertEqual(int(hdr_["content-length"]), len(body), kind)
            with self.assertRaises(ValueError, msg=kind):
                json.loads(body)
            self.config(corrupt="utf8")
            _, _, body = self.post(path, req, hdr)
            self.assertIn(b"\xff", body, kind)
            with self.assertRaises(UnicodeDecodeError, msg=kind):
                body.decode("utf-8")
            self.config(corrupt=None)

    def test_corrupt_stream_event(self):
        self.config(corrupt="json")
        st, _, body = self.post("/v1/chat/completions", dict(OPENAI_REQ, stream=True))
        datas = [d for _, d in sse_events(body)]
        self.assertEqual(datas[-1], "[DONE]")
        bad = [d for d in datas[:-1] if not self._is_json(d)]
        self.assertEqual(len(bad), 1, datas)
        self.config(corrupt="utf8")
        st, _, body = self.post("/v1/chat/completions", dict(OPENAI_REQ, stream=True))
        self.assertEqual(body.count(b"\xff"), 1)

    @staticmethod
    def _is_json(text):
        try:
            json.loads(text)
            return True
        except ValueError:
            return False

    def test_reply_bytes_in_fixed_pieces(self):
        self.config(reply_bytes=100000, piece_bytes=4096)
        st, _, body = self.post("/v1/chat/completions", dict(OPENAI_REQ, stream=True))
        chunks = [json.loads(d) for _, d in sse_events(body)[:-1]]
        pieces = [c["choices"][0]["delta"].get("content", "") for c in chunks[1:-1]]
        self.assertEqual(len(pieces), 25)
        self.assertTrue(all(len(p) == 4096 for p in pieces[:-1]))
        text = "".join(pieces)
        self.assertEqual(len(text), 100000)
        self.assertTrue(text.startswith("The quick brown fox"))
        _, _, body = self.post("/v1/chat/completions", OPENAI_REQ)
        self.assertEqual(json.loads(body)["choices"][0]["message"]["content"], text)


class TestScopesAndStats(FakeTest):
    def test_scopes_are_independent(self):
        a, b = self.scope + "_a", self.scope + "_b"
        self.request("POST", a + "/_fake/config", {"fail_status": 503, "fail_count": -1})
        self.request("POST", b + "/_fake/config", {"reply": "I am B"})
        st, _, _ = self.request("POST", a + "/v1/chat/completions", OPENAI_REQ)
        self.assertEqual(st, 503)
        st, _, body = self.request("POST", b + "/v1/chat/completions", OPENAI_REQ)
        self.assertEqual(json.loads(body)["choices"][0]["message"]["content"], "I am B")
        st, _, body = self.request("POST", b + "/v1/messages", ANTHROPIC_REQ, ANTHROPIC_HDR)
        self.assertEqual(json.loads(body)["content"][0]["text"], "I am B")
        sa = json.loads(self.request("GET", a + "/_fake/stats")[2])
        sb = json.loads(self.request("GET", b + "/_fake/stats")[2])
        self.assertEqual((sa["requests"], sa["failed"]), (1, 1))
        self.assertEqual((sb["requests"], sb["failed"], sb["by_kind"]["anthropic"]), (2, 0, 1))
        # no prefix = scope "default", untouched by the above
        d = json.loads(self.request("GET", "/_fake/config")[2])
        self.assertIsNone(d["fail_status"])

    def test_last_request(self):
        self.post("/v1beta/models/gm:generateContent?key=abc", GEMINI_REQ,
                  {"X-Goog-Api-Client": "t/1"})
        last = self.stats()["last"]
        self.assertEqual(last["method"], "POST")
        self.assertEqual(last["path"], "/v1beta/models/gm:generateContent")
        self.assertEqual(last["query"], {"key": "abc"})
        self.assertEqual(last["headers"]["x-goog-api-client"], "t/1")
        self.assertEqual(last["body"], GEMINI_REQ)
        self.post("/v1/chat/completions", b"garbage")
        self.assertIsNone(self.stats()["last"]["body"])

    def test_unknown_path_and_method(self):
        st, _, body = self.post("/v1/nothing", OPENAI_REQ)
        self.assertEqual(st, 404)
        self.assertIn("error", json.loads(body))
        st, _, _ = self.request("GET", "/nowhere")
        self.assertEqual(st, 404)
        st, hdr, _ = self.request("GET", self.scope + "/v1/chat/completions")
        self.assertEqual((st, hdr["allow"]), (405, "POST"))
        self.assertEqual(self.stats()["requests"], 0)


class TestHttp(FakeTest):
    def test_keep_alive(self):
        conn = http.client.HTTPConnection(HOST, PORT, timeout=10)
        conn.connect()
        sock = conn.sock
        for req in (OPENAI_REQ, dict(OPENAI_REQ, stream=True), OPENAI_REQ):
            st, hdr, _ = self.post("/v1/chat/completions", req, conn=conn)
            self.assertEqual(st, 200)
            self.assertEqual(hdr["connection"], "keep-alive")
            self.assertIs(conn.sock, sock)
        conn.close()

    def test_chunked_request_body(self):
        conn = http.client.HTTPConnection(HOST, PORT, timeout=10)
        data = json.dumps(OPENAI_REQ).encode()
        parts = iter([data[:5], data[5:17], data[17:]])
        conn.request("POST", self.scope + "/v1/chat/completions", body=parts,
                     headers={"Content-Type": "application/json"}, encode_chunked=True)
        resp = conn.getresponse()
        self.assertEqual(resp.status, 200, resp.read())
        resp.read()
        self.assertEqual(self.stats()["last"]["headers"]["transfer-encoding"], "chunked")
        conn.close()

    def test_expect_continue_and_pipelining(self):
        body = json.dumps(OPENAI_REQ).encode()
        with socket.create_connection((HOST, PORT)) as s:
            s.settimeout(5)
            s.sendall(raw_request("POST", self.scope + "/v1/chat/completions", b"",
                                  {"Content-Length": str(len(body)),
                                   "Expect": "100-continue"}))
            self.assertEqual(s.recv(100), b"HTTP/1.1 100 Continue\r\n\r\n")
            # the body, then two more requests at once; the last closes
            req = raw_request("POST", self.scope + "/v1/chat/completions", body)
            s.sendall(body + req + raw_request("POST", self.scope + "/v1/chat/completions",
                                               body, {"Connection": "close"}))
            raw = read_to_eof(s)
        self.assertEqual(raw.count(b"HTTP/1.1 200 OK\r\n"), 3)
        self.assertEqual(raw.count(b'"chat.completion"'), 3)

    def test_http10_stream(self):
        body = json.dumps(OLLAMA_REQ).encode()
        with socket.create_connection((HOST, PORT)) as s:
            s.sendall(raw_request("POST", self.scope + "/api/chat", body, version="HTTP/1.0"))
            raw = read_to_eof(s)
        head, _, rest = raw.partition(b"\r\n\r\n")
        self.assertNotIn(b"Transfer-Encoding", head)
        self.assertTrue(json.loads(rest.splitlines()[-1])["done"])

    def test_bad_request_line(self):
        with socket.create_connection((HOST, PORT)) as s:
            s.sendall(b"NONSENSE\r\n\r\n")
            raw = read_to_eof(s)
        self.assertTrue(raw.startswith(b"HTTP/1.1 400 "))


class TestConcurrency(FakeTest):
    N = 2000

    def test_2000_concurrent_slow_streams(self):
        words = 30
        self.config(chunk_delay_ms=100, reply=" ".join("w%d" % i for i in range(words)))
        expect = " ".join("w%d" % i for i in range(words))
        body = json.dumps(dict(OPENAI_REQ, stream=True)).encode()
        req = raw_request("POST", self.scope + "/v1/chat/completions", body,
                          {"Connection": "close"})

        async def one():
            r, w = await asyncio.open_connection(HOST, PORT)
            w.write(req)
            data = await r.read()          # to EOF: Connection: close
            w.close()
            return data

        async def all_streams():
            return await asyncio.gather(*[one() for _ in range(self.N)],
                                        return_exceptions=True)

        t0 = time.monotonic()
        results = asyncio.run(all_streams())
        elapsed = time.monotonic() - t0
        errors = [r for r in results if isinstance(r, BaseException)]
        self.assertEqual(errors, [])
        done = 0
        for raw in results:
            head, _, rest = raw.partition(b"\r\n\r\n")
            self.assertTrue(head.startswith(b"HTTP/1.1 200 OK"))
            data, complete = dechunk(rest)
            self.assertTrue(complete)
            events = sse_events(data)
            self.assertEqual(events[-1], (None, "[DONE]"))
            text = "".join(json.loads(d)["choices"][0]["delta"].get("content", "")
                           for _, d in events[:-1])
            self.assertEqual(text, expect)
            done += 1
        self.assertEqual(done, self.N)
        s = self.stats()
        self.assertEqual((s["completed_streams"], s["aborted_streams"], s["active_streams"]),
                         (self.N, 0, 0))
        self.assertEqual(s["peak_active_streams"], self.N)
        print("\n  %d streams of ~3 s each, all complete, in %.1f s" % (self.N, elapsed),
              file=sys.stderr)
        self.assertLess(elapsed, 15)


class TestLifecycle(unittest.TestCase):
    def test_ttl(self):
        p, _ = start_fake("--ttl", "1")
        self.assertEqual(wait_exit(p, 5), 0)
        self.assertEqual(p.stdout.read(), b"")      # nothing after the ready line
        p.stdout.close()

    def test_parent_pid(self):
        parent = subprocess.Popen(["sleep", "60"])
        p, _ = start_fake("--ttl", "60", parent=parent.pid)
        time.sleep(0.7)
        self.assertIsNone(p.poll())
        parent.kill()                 # left a zombie until we reap it: still "gone"
        self.assertEqual(wait_exit(p, 3), 0)
        parent.wait()
        p.stdout.close()

    def test_sigterm(self):
        p, port = start_fake("--ttl", "60")
        c = socket.create_connection((HOST, port))   # an open connection does not delay it
        p.send_signal(signal.SIGTERM)
        self.assertEqual(wait_exit(p, 2), -signal.SIGTERM)
        c.close()
        p.stdout.close()

    def test_stdin_eof(self):
        p, _ = start_fake("--ttl", "60", stdin=subprocess.PIPE)
        time.sleep(0.3)
        self.assertIsNone(p.poll())
        p.stdin.close()
        self.assertEqual(wait_exit(p, 3), 0)
        p.stdout.close()


if __name__ == "__main__":
    unittest.main()
