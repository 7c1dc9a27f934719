"""Real HTTP endpoints on 127.0.0.1 for delivery tests: each behaves one way."""

from __future__ import annotations

import json
import socket
import ssl
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from .schema import validated


class Endpoint(ThreadingHTTPServer):
    """Answers POSTs from a script of status codes, recording what arrived.

    ``script`` is consumed one request at a time; when it runs out, requests get 200.
    Each entry is a status code, or ``(status, headers)``, or one of these hostile
    answers (each lasts until the client hangs up or the server is closed):

    - ``"slow"``: nothing for 30 s, then 200;
    - ``"endless"`` / ``"endless-503"``: that status, then a chunked body that never
      ends, written as fast as the client takes it (``streamed`` counts its bytes);
    - ``"trickle"``: 200, then a chunked body of one byte every 0.5 s, forever;
    - ``"trickle-headers"``: a status line, then one header byte every 0.5 s;
    - ``"endless-headers"``: a status line, then headers as fast as they are taken;
    - ``"continue-flood"``: ``100 Continue`` answers, as fast as they are taken.

    ``all_headers`` has the headers of every request; ``bodies`` only those answered 200.
    """

    daemon_threads = True

    def __init__(
        self, script: list[Any] | None = None, tls: tuple[str, str] | None = None, port: int = 0
    ) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self.scheme = "http"
        if tls is not None:  # (certificate file, key file)
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)
            self.socket = context.wrap_socket(self.socket, server_side=True)
            self.scheme = "https"
        self.script = list(script or [])
        self.bodies: list[bytes] = []
        self.headers_seen: list[dict[str, str]] = []
        self.all_headers: list[dict[str, str]] = []
        self.streamed = 0
        self.closing = threading.Event()
        self.paths: list[str] = []
        self.request_times: list[float] = []
        self.connections = 0
        self.lock = threading.Lock()
        self.received = threading.Condition(self.lock)
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.server_address[1]}/api/v1/event"

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.lock:
            self.connections += 1
        super().process_request(request, client_address)

    def payloads(self) -> list[dict[str, Any]]:
        """What arrived, each payload checked against the shipped schema."""
        with self.lock:
            return [validated(json.loads(body)) for body in self.bodies]

    def wait_for(self, count: int, timeout: float = 10.0) -> bool:
        with self.received:
            return self.received.wait_for(lambda: len(self.bodies) >= count, timeout)

    def close(self) -> None:
        self.closing.set()
        self.shutdown()
        self.server_close()


class _Handler(BaseHTTPRequestHandler):
    server: Endpoint

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        with self.server.lock:
            self.server.request_times.append(time.monotonic())
            self.server.all_headers.append(dict(self.headers))
            step = self.server.script.pop(0) if self.server.script else 200
        if step == "slow":
            self.server.closing.wait(30)
            step = 200
        if isinstance(step, str):
            self.close_connection = True
            try:
                self._hostile(step)
            except OSError:  # the client hung up: what it is expected to do
                pass
            return
        status, headers = step if isinstance(step, tuple) else (step, {})
        if status == 200:
            with self.server.received:
                self.server.bodies.append(body)
                self.server.headers_seen.append(dict(self.headers))
                self.server.paths.append(self.path)
                self.server.received.notify_all()
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _hostile(self, step: str) -> None:
        closing = self.server.closing
        if step == "continue-flood":
            while not closing.is_set():
                self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n" * 512)
            return
        if step.endswith("headers"):
            self.wfile.write(b"HTTP/1.1 200 OK\r\n")
            line = b"X-Slow: " if step == "trickle-headers" else b"X-Many: header\r\n" * 64
            while not closing.is_set():
                self.wfile.write(line[:1] if step == "trickle-headers" else line)
                line = line[1:] or b"x"
                if step == "trickle-headers":
                    closing.wait(0.5)
            return
        self.send_response(503 if step == "endless-503" else 200)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        chunk = b"x" if step == "trickle" else b"x" * 65536
        frame = b"%x\r\n%s\r\n" % (len(chunk), chunk)
        while not closing.is_set():
            self.wfile.write(frame)
            with self.server.lock:
                self.server.streamed += len(chunk)
            if step == "trickle":
                closing.wait(0.5)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass


class BlackHole:
    """Accepts TCP connections (through the backlog) and never answers."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}/api/v1/event"

    def close(self) -> None:
        self.sock.close()


def refused_url() -> str:
    """A loopback port with nobody listening: connections are refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/api/v1/event"


def self_signed_certificate(folder: Path) -> tuple[str, str]:
    """A certificate for 127.0.0.1 that no certificate authority vouches for."""
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    return str(cert), str(key)
