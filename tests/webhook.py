"""A guardrail webhook server for tests: answers by its query string, records what it saw.

``POST /check?verdict=block&delay_ms=300&text=...&reason=...`` waits, then answers
``{"verdict": ..., "reason": ..., "text": ...}``. ``status=500`` answers an error. Each
request's payload, arrival and departure are kept; `max_in_flight` tells whether checks ran
at the same time.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit


@dataclass
class Call:
    path: str
    payload: dict[str, Any]
    headers: dict[str, str]
    arrived: float
    finished: threading.Event = field(default_factory=threading.Event)


class WebhookServer:
    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Condition()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                payload = json.loads(self.rfile.read(length) or b"{}")
                query = {k: v[-1] for k, v in parse_qs(urlsplit(self.path).query).items()}
                call = Call(self.path, payload, dict(self.headers), time.monotonic())
                with server._lock:
                    server.calls.append(call)
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                    server._lock.notify_all()
                try:
                    time.sleep(int(query.get("delay_ms", "0")) / 1000)  # the scripted latency
                    status = int(query.get("status", "200"))
                    answer: dict[str, Any] = {"verdict": query.get("verdict", "pass")}
                    for key in ("reason", "text"):
                        if key in query:
                            answer[key] = query[key]
                    body = json.dumps(answer).encode()
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:
                    pass
                finally:
                    with server._lock:
                        server.in_flight -= 1
                        server._lock.notify_all()
                    call.finished.set()

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def reset(self) -> None:
        with self._lock:
            self.calls.clear()
            self.max_in_flight = 0

    def wait_calls(self, n: int, timeout: float = 10.0) -> list[Call]:
        with self._lock:
            self._lock.wait_for(lambda: len(self.calls) >= n, timeout)
            return list(self.calls)
