"""The webhook receiver and the policy stub bench_gateway.py runs in threads.

L{Receiver} is the subscriptions' target: it records when each (subscription,
event id) arrives (the subscription from the URL's last segment, the event id
from the JSON body's C{id} or a C{ce-id} header) and answers 200. It can be
stopped and started again on the same port (the target-down scenario): stopped,
it closes its listening socket and every open connection, so a sender sees a
refused connection, not a slow one. L{PolicyStub} answers 200 to anything
(Pacifica asks a policy server for every match).
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

HOST = "127.0.0.1"


def read_body(handler: BaseHTTPRequestHandler) -> bytes:
    """The request's body, by Content-Length or chunked."""
    if handler.headers.get("Transfer-Encoding", "").lower() == "chunked":
        parts = []
        while True:
            size = int(handler.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while handler.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return b"".join(parts)
            parts.append(handler.rfile.read(size))
            handler.rfile.readline()
    return handler.rfile.read(int(handler.headers.get("Content-Length") or 0))


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True  # the same port again right after a stop

    def __init__(self, port: int, owner: Any, handler: type) -> None:
        self.owner = owner
        self.connections: set[socket.socket] = set()
        self.conn_lock = threading.Lock()
        super().__init__((HOST, port), handler)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as a real target would
    server: _Server

    def setup(self) -> None:
        super().setup()
        with self.server.conn_lock:
            self.server.connections.add(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            with self.server.conn_lock:
                self.server.connections.discard(self.connection)

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        body = read_body(self)
        self.server.owner.got(self, body)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()


class _Serving:
    """A ThreadingHTTPServer on a fixed port (0 at first: any), stoppable and restartable."""

    def __init__(self) -> None:
        self.port = 0
        self._server: _Server | None = None

    def start(self) -> None:
        self._server = _Server(self.port, self, _Handler)
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        with server.conn_lock:
            for conn in list(server.connections):  # keep-alive ones too: the target is gone
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def got(self, handler: _Handler, body: bytes) -> None:
        pass


class Receiver(_Serving):
    """Records each delivery's arrival: C{arrivals[(sub, event_id)]} = [monotonic times]."""

    def __init__(self) -> None:
        super().__init__()
        self.lock = threading.Lock()
        self.arrivals: dict[tuple[str, str], list[float]] = defaultdict(list)
        self.order: dict[str, list[str]] = defaultdict(list)  # event ids per sub, as they came
        self.count = 0
        self.last = 0.0

    def url(self, sub: str) -> str:
        return f"http://{HOST}:{self.port}/hook/{sub}"

    def got(self, handler: _Handler, body: bytes) -> None:
        now = time.monotonic()
        sub = handler.path.rstrip("/").rsplit("/", 1)[-1]
        event_id = handler.headers.get("ce-id")
        if event_id is None:
            try:
                event_id = str(json.loads(body)["id"])
            except (ValueError, KeyError, TypeError):
                event_id = "?"
        with self.lock:
            self.arrivals[sub, event_id].append(now)
            self.order[sub].append(event_id)
            self.count += 1
            self.last = now

    def distinct(self) -> int:
        with self.lock:
            return len(self.arrivals)


class PolicyStub(_Serving):
    """Answers 200 to every POST (Pacifica's policy server: /events/<user>)."""

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"
