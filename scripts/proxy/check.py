"""The checks of scripts/proxy-test, run against nginx (packaging/nginx/sealpost.conf) in front of
two `sealpost serve` nodes on one PostgreSQL database. Python 3.11 standard library only: the
HTTPS requests, a small WebSocket client (RFC 6455, just what a stream needs) and the scraping of
each node's /metrics are written here; accounts are registered and messages sealed and sent by
the real `sealpost` command line, through the proxy.

Every request to the proxy goes out from a loopback address of its own (127.0.0.2, 127.0.0.3 …),
so that the nodes, which trust only the proxy (127.0.0.1/32), can be seen keying their limits on
the address the proxy saw. Prints each check; exits non-zero at the first that fails.
"""

import argparse
import base64
import hashlib
import http.client
import json
import os
import queue
import re
import secrets
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time
import urllib.request


class CheckFailed(Exception):
    pass


def check(condition, what):
    if not condition:
        raise CheckFailed(what)
    print(f"  ok: {what}", flush=True)


def step(text):
    print(f"-- {text}", flush=True)


class Proxy:
    """HTTPS to the proxy, one connection per request, from a chosen source address."""

    def __init__(self, port, ca):
        self.port = port
        self.context = ssl.create_default_context(cafile=ca)

    def request(self, method, path, source="127.0.0.2", body=None, headers=None):
        conn = http.client.HTTPSConnection(
            "127.0.0.1", self.port, context=self.context, timeout=15, source_address=(source, 0)
        )
        try:
            h = dict(headers or {})
            if body is not None:
                h.setdefault("Content-Type", "application/json")
            conn.request(method, path, body=body, headers=h)
            response = conn.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        finally:
            conn.close()


def direct(node, method, path, source, body=None, headers=None):
    """Plain HTTP straight to a node, past the proxy, from `source`."""
    host, port = node.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=15, source_address=(source, 0))
    try:
        h = dict(headers or {})
        if body is not None:
            h.setdefault("Content-Type", "application/json")
        conn.request(method, path, body=body, headers=h)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def metrics(node):
    """A node's counters: {(name, labels): value}."""
    with urllib.request.urlopen(f"{node}/metrics", timeout=10) as r:
        text = r.read().decode()
    out = {}
    for line in text.splitlines():
        m = re.match(r"^([a-z_]+)(\{[^}]*\})? ([0-9.eE+-]+)$", line)
        if m:
            out[(m.group(1), m.group(2) or "")] = float(m.group(3))
    return out


def metric(node, name):
    return sum(v for (n, _), v in metrics(node).items() if n == name)


def requests_served(node):
    return metric(node, "sealpost_http_requests_total")


class WebSocket:
    """A WebSocket client over TLS: the handshake, masked text frames out, and a reader thread
    that answers pings at once (a node closes a stream that misses two) and queues the rest."""

    def __init__(self, port, ca, path, source, host_header):
        raw = socket.create_connection(("127.0.0.1", port), timeout=15, source_address=(source, 0))
        self.sock = ssl.create_default_context(cafile=ca).wrap_socket(raw, server_hostname="127.0.0.1")
        self.pings = 0
        self.buffer = b""
        self.frames = queue.Queue()
        self.send_lock = threading.Lock()
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            (
                f"GET {path} HTTP/1.1\r\nHost: {host_header}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        while b"\r\n\r\n" not in self.buffer:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise CheckFailed("the proxy closed the connection during the WebSocket handshake")
            self.buffer += chunk
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        self.status = int(lines[0].split(" ")[1])
        self.headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
        accept = base64.b64encode(
            hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()
        ).decode()
        self.accepted = self.headers.get("sec-websocket-accept") == accept
        if self.status == 101:
            self.sock.settimeout(None)
            threading.Thread(target=self._reader, daemon=True).start()

    def _read(self, n):
        while len(self.buffer) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("the stream's connection ended")
            self.buffer += chunk
        out, self.buffer = self.buffer[:n], self.buffer[n:]
        return out

    def _reader(self):
        try:
            while True:
                b0, b1 = self._read(2)
                opcode, n = b0 & 0x0F, b1 & 0x7F
                if n == 126:
                    (n,) = struct.unpack("!H", self._read(2))
                elif n == 127:
                    (n,) = struct.unpack("!Q", self._read(8))
                payload = self._read(n)
                if opcode == 0x9:
                    self._send(0xA, payload)
                    self.pings += 1
                elif opcode == 0x8:
                    code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
                    reason = payload[2:].decode(errors="replace")
                    self.frames.put(CheckFailed(f"the server closed the stream ({code} {reason})"))
                    return
                elif opcode == 0x1:
                    self.frames.put(json.loads(payload))
        except (OSError, ValueError) as e:
            self.frames.put(CheckFailed(f"the stream failed: {e}"))

    def _send(self, opcode, payload):
        mask = os.urandom(4)
        n = len(payload)
        if n < 126:
            header = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
        elif n < 65536:
            header = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
        else:
            header = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        with self.send_lock:
            self.sock.sendall(header + mask + masked)

    def send_json(self, value):
        self._send(0x1, json.dumps(value).encode())

    def next_frame(self, seconds=10):
        """The next text frame, as JSON."""
        try:
            frame = self.frames.get(timeout=seconds)
        except queue.Empty:
            raise CheckFailed(f"no frame arrived on the stream within {seconds} s") from None
        if isinstance(frame, Exception):
            raise frame
        return frame

    def wait_pings(self, count, seconds):
        """Waits (bounded) until `count` pings have been answered, failing if the stream ends."""
        deadline = time.monotonic() + seconds
        while self.pings < count:
            if time.monotonic() > deadline:
                raise CheckFailed(f"only {self.pings} ping(s) arrived within {seconds} s")
            try:
                frame = self.frames.get(timeout=0.2)
            except queue.Empty:
                continue
            raise frame if isinstance(frame, Exception) else CheckFailed(f"unexpected frame {frame}")

    def close(self):
        try:
            self._send(0x8, struct.pack("!H", 1000))
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


def cli(args, home, *rest, stdin=None):
    env = dict(os.environ, SEALPOST_HOME=home, SEALPOST_PASSWORD="correct horse battery staple")
    cmd = [args.bin, "--server", args.url, "--ca-cert", args.ca, *rest]
    done = subprocess.run(cmd, env=env, input=stdin, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise CheckFailed(f"`sealpost {' '.join(rest)}` failed ({done.returncode}):\n{done.stdout}{done.stderr}")
    return done.stdout


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--bin", required=True)
    p.add_argument("--proxy-port", type=int, required=True)
    p.add_argument("--ca", required=True)
    p.add_argument("--nodes", required=True, help="the two nodes' base URLs, comma-separated")
    p.add_argument("--rate", type=int, required=True, help="the nodes' --rate-per-address")
    p.add_argument("--max-body", type=int, required=True, help="the nodes' largest request body")
    p.add_argument("--ping-interval", type=int, required=True)
    p.add_argument("--access-log", required=True)
    p.add_argument("--home", required=True)
    args = p.parse_args()
    args.url = f"https://127.0.0.1:{args.proxy_port}"
    proxy = Proxy(args.proxy_port, args.ca)
    nodes = args.nodes.split(",")
    node_ports = [n.rsplit(":", 1)[1] for n in nodes]
    prelogin = lambda: json.dumps({"email": f"{secrets.token_hex(6)}@example.com"})  # noqa: E731
    spoof = lambda: f"203.0.113.{secrets.randbelow(254) + 1}"  # noqa: E731

    step("the proxy answers for the nodes, over TLS")
    status, _, body = proxy.request("GET", "/healthz")
    check(status == 200 and json.loads(body).get("protocol") == "1.1", "GET /healthz through the proxy: 200, protocol 1.1")
    status, _, _ = proxy.request("GET", "/readyz")
    check(status == 200, "GET /readyz through the proxy: 200")
    status, _, _ = proxy.request("GET", "/metrics")
    check(status == 404, "GET /metrics through the proxy: 404 (the nodes' metrics stay off the public side)")

    step("the Host header reaches the nodes unchanged (the origin rule of the web client)")
    own = f"https://127.0.0.1:{args.proxy_port}"
    status, _, _ = proxy.request("GET", "/healthz", source="127.0.0.7", headers={"Origin": own})
    check(status == 200, f"a request with Origin {own} (the proxy's own) is served")
    status, _, body = proxy.request("GET", "/healthz", source="127.0.0.7", headers={"Origin": "https://evil.example"})
    check(status == 403, "a request with a foreign Origin is refused 403 by the node")

    step("two accounts registered through the proxy by the sealpost CLI")
    alice, bob = os.path.join(args.home, "alice"), os.path.join(args.home, "bob")
    served_before = [requests_served(n) for n in nodes]
    cli(args, alice, "register", "alice@example.com")
    cli(args, bob, "register", "bob@example.com")
    check(True, "alice@example.com and bob@example.com registered")
    with open(os.path.join(bob, "state.json")) as f:
        bob_token = json.load(f)["account"]["session"]["access_token"]

    step("Bob's stream through the proxy: the WebSocket upgrade")
    ws = WebSocket(args.proxy_port, args.ca, "/v1/stream", "127.0.0.2", f"127.0.0.1:{args.proxy_port}")
    check(ws.status == 101 and ws.accepted, "GET /v1/stream answers 101 Switching Protocols with the right Sec-WebSocket-Accept")
    ws.send_json({"type": "auth", "access_token": bob_token, "after": 0})
    frame = ws.next_frame()
    check(frame.get("type") == "ready", f"the auth frame is answered with ready ({frame})")
    open_on = [metric(n, "sealpost_streams_open") for n in nodes]
    check(sorted(open_on) == [0, 1], f"exactly one node holds the stream (streams open per node: {open_on})")
    stream_node = open_on.index(1)
    other = 1 - stream_node
    print(f"  the stream is on node {'ab'[stream_node]} (port {node_ports[stream_node]})")

    step("Alice sends to Bob through the proxy; the push arrives on the stream, from either node")
    sent = []
    for attempt in range(8):
        stored_before = [metric(n, "sealpost_messages_stored_total") for n in nodes]
        text = f"Hello, Bob! ({attempt + 1})"
        out = cli(args, alice, "send", "bob@example.com", text)
        seq = int(re.search(r"\(#(\d+) in their mailbox\)", out).group(1))
        frame = ws.next_frame()
        check(
            frame.get("type") == "message" and frame["message"]["seq"] == seq,
            f"message #{seq} pushed on Bob's stream as soon as it was stored",
        )
        stored_after = [metric(n, "sealpost_messages_stored_total") for n in nodes]
        stored_on = [i for i in range(2) if stored_after[i] > stored_before[i]]
        print(f"  stored by node {'ab'[stored_on[0]] if stored_on else '?'}")
        sent.append((seq, text))
        if other in stored_on:
            check(True, f"a message stored by node {'ab'[other]} reached the stream held by node {'ab'[stream_node]} (LISTEN/NOTIFY)")
            break
        # Round robin: one more request moves the next send's POST to the other node.
        proxy.request("GET", "/healthz", source="127.0.0.8")
    else:
        raise CheckFailed("no send landed on the node without the stream in 8 tries: is the load spread?")

    step(f"the stream stays open through the proxy across pings (the nodes ping every {args.ping_interval} s)")
    ws.wait_pings(ws.pings + 2, 4 * args.ping_interval + 5)
    check(True, f"{ws.pings} pings arrived and were answered; the stream is still open")
    ws.close()

    step("Bob's CLI reads and opens every message through the proxy")
    out = cli(args, bob, "inbox", "--json")
    got = [(m["seq"], m.get("text")) for m in map(json.loads, (line for line in out.splitlines() if line.startswith("{")))]
    if not all(s in got for s in sent):
        raise CheckFailed(f"inbox --json does not show every message sent ({sent}):\n{out}")
    check(True, f"inbox --json shows the {len(sent)} message(s) sent, each opened and verified")

    step("requests were spread over both nodes")
    served = [requests_served(n) - b for n, b in zip(nodes, served_before)]
    check(all(s > 0 for s in served), f"requests served since registration began, node a: {int(served[0])}, node b: {int(served[1])}")
    with open(args.access_log) as f:
        upstreams = {line.split()[-1] for line in f if line.strip()}
    check(
        all(f"127.0.0.1:{port}" in upstreams for port in node_ports),
        f"the proxy's access log names both upstreams ({', '.join(sorted(u for u in upstreams if u != '-'))})",
    )

    step(f"the largest request the nodes take passes the proxy (client_max_body_size >= {args.max_body} bytes)")
    pad = lambda n: ('{"email":"' + "a" * (n - 12) + '"}').encode()  # noqa: E731
    status, _, body = proxy.request("POST", "/v1/accounts", source="127.0.0.6", body=pad(args.max_body))
    check(status == 400 and json.loads(body)["error"]["code"] == "invalid_request",
          f"a {args.max_body}-byte body reaches a node (its 400 invalid_request, not the proxy's 413)")
    status, _, body = proxy.request("POST", "/v1/accounts", source="127.0.0.6", body=pad(args.max_body + 1))
    check(status == 413 and json.loads(body)["error"]["code"] == "payload_too_large",
          f"a {args.max_body + 1}-byte body is refused by the node (413 payload_too_large in JSON)")

    step(f"X-Forwarded-For from the proxy: limits key on the client's address (--rate-per-address {args.rate} per node)")
    results = []
    for _ in range(4 * args.rate):
        status, _, _ = proxy.request("POST", "/v1/auth/prelogin", source="127.0.0.2", body=prelogin(),
                                     headers={"X-Forwarded-For": spoof()})
        results.append(status)
    ok, limited = results.count(200), results.count(429)
    check(ok == 2 * args.rate and limited == 2 * args.rate,
          f"127.0.0.2, each request with a different made-up X-Forwarded-For: {ok} answered, {limited} refused 429 "
          f"({args.rate} per node: the header a client sends is not believed)")
    for _ in range(2):
        status, _, _ = proxy.request("POST", "/v1/auth/prelogin", source="127.0.0.3", body=prelogin(),
                                     headers={"X-Forwarded-For": "127.0.0.2"})
        check(status == 200, "127.0.0.3 through the same proxy has its own budget: 200 (not keyed on the proxy's address)")
    for _ in range(2):
        status, _, _ = proxy.request("POST", "/v1/auth/prelogin", source="127.0.0.2", body=prelogin(),
                                     headers={"X-Forwarded-For": "127.0.0.3"})
        check(status == 429, "127.0.0.2 claiming to be 127.0.0.3 is still refused 429")

    step("a node believes X-Forwarded-For only from the trusted proxy")
    node = nodes[0]
    results = []
    for _ in range(args.rate + 1):
        status, _ = direct(node, "POST", "/v1/auth/prelogin", "127.0.0.4", body=prelogin(),
                           headers={"X-Forwarded-For": spoof()})
        results.append(status)
    check(results == [200] * args.rate + [429],
          f"127.0.0.4 straight to node a, each request with a different X-Forwarded-For: {args.rate} answered, then 429")
    status, _ = direct(node, "POST", "/v1/auth/prelogin", "127.0.0.5", body=prelogin())
    check(status == 200, "127.0.0.5 straight to node a: 200 (the limit was 127.0.0.4's own)")

    print("all proxy checks passed")


if __name__ == "__main__":
    try:
        main()
    except CheckFailed as e:
        print(f"FAILED: {e}", file=sys.stderr)
        sys.exit(1)
