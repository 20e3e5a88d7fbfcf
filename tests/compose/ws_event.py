#!/usr/bin/env python3
"""ws_event.py - waits for one event on the backend's live updates (GET /ws).

    ws_event.py HOST:PORT TOKEN PROJECT_ID TYPE TITLE [TIMEOUT]

Opens the WebSocket as a browser would (token in Authorization, the
project_id filter), prints "open" once the server has answered 101, then
reads text frames until an event of TYPE (e.g. task.created) whose task
title is TITLE arrives: prints that event's JSON on one line, closes the
socket properly and exits 0. Exits 1 on a refused upgrade, a close from the
server or TIMEOUT seconds (default 20) without the event. Standard library
only (tests/compose/run.sh runs it on the host).
"""
import base64
import hashlib
import json
import os
import socket
import struct
import sys
import time

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def fail(msg):
    print("ws_event: " + msg, file=sys.stderr)
    sys.exit(1)


def recv_exact(sock, buf, n):
    """Returns (n bytes, rest), reading from sock as needed."""
    while len(buf) < n:
        chunk = sock.recv(65536)
        if not chunk:
            fail("connection closed by the server")
        buf += chunk
    return buf[:n], buf[n:]


def read_frame(sock, buf):
    """One server frame (unmasked): returns (fin, opcode, payload, rest)."""
    head, buf = recv_exact(sock, buf, 2)
    fin, opcode, n = head[0] & 0x80, head[0] & 0x0F, head[1] & 0x7F
    if n == 126:
        ext, buf = recv_exact(sock, buf, 2)
        n = struct.unpack("!H", ext)[0]
    elif n == 127:
        ext, buf = recv_exact(sock, buf, 8)
        n = struct.unpack("!Q", ext)[0]
    if head[1] & 0x80:
        fail("the server masked a frame")
    payload, buf = recv_exact(sock, buf, n)
    return fin, opcode, payload, buf


def send_frame(sock, opcode, payload=b""):
    """A client frame: FIN set, masked as RFC 6455 requires (payload < 126)."""
    mask = os.urandom(4)
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    sock.sendall(bytes([0x80 | opcode, 0x80 | len(payload)]) + mask + body)


def handshake(sock, addr, token, project):
    key = base64.b64encode(os.urandom(16))
    sock.sendall(
        (f"GET /ws?project_id={project} HTTP/1.1\r\nHost: {addr}\r\n"
         "Upgrade: websocket\r\nConnection: Upgrade\r\n"
         f"Sec-WebSocket-Key: {key.decode()}\r\nSec-WebSocket-Version: 13\r\n"
         f"Authorization: Bearer {token}\r\n\r\n").encode())
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(4096)
        if not chunk:
            fail("connection closed during the upgrade")
        buf += chunk
    head, rest = buf.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    if not lines[0].startswith("HTTP/1.1 101"):
        fail("upgrade refused: " + lines[0])
    accept = base64.b64encode(hashlib.sha1(key + GUID).digest()).decode()
    headers = {k.strip().lower(): v.strip() for k, v in
               (line.split(":", 1) for line in lines[1:] if ":" in line)}
    if headers.get("sec-websocket-accept") != accept:
        fail("wrong Sec-WebSocket-Accept")
    return rest


def wait_event(sock, buf, etype, title, deadline):
    message, msg_op = b"", 0
    while time.monotonic() < deadline:
        sock.settimeout(max(0.1, deadline - time.monotonic()))
        try:
            fin, opcode, payload, buf = read_frame(sock, buf)
        except socket.timeout:
            break
        if opcode == 9:
            send_frame(sock, 10, payload[:125])
            continue
        if opcode == 8:
            fail("closed by the server")
        if opcode in (1, 2):
            message, msg_op = payload, opcode
        elif opcode == 0:
            message += payload
        if not fin or msg_op != 1:
            continue
        event = json.loads(message)
        data = event.get("data") or {}
        if event.get("type") == etype and data.get("title") == title:
            return event
    fail(f"no {etype} event for {title!r} in time")


def main():
    if len(sys.argv) not in (6, 7):
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        sys.exit(2)
    addr, token, project, etype, title = sys.argv[1:6]
    timeout = float(sys.argv[6]) if len(sys.argv) == 7 else 20.0
    deadline = time.monotonic() + timeout
    host, port = addr.rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=timeout)
    buf = handshake(sock, addr, token, project)
    print("open", flush=True)
    event = wait_event(sock, buf, etype, title, deadline)
    print(json.dumps(event), flush=True)
    send_frame(sock, 8, struct.pack("!H", 1000))
    sock.close()


if __name__ == "__main__":
    main()
