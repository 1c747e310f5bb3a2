"""The daemon's HTTP API: Alertmanager's ``POST /api/v2/alerts``, health, reload, metrics.

Prometheus pointed at this address through ``alerting.alertmanagers`` sends
its alerts here unchanged. Endpoints:

- ``POST /api/v2/alerts``: a JSON array of alerts; 200 when at least one was
  accepted (bad rows are rejected and dead-lettered), 400 when none was,
  503 when intake is stopping or too busy to answer in time. The body is
  decoded by the ZeroMQ intake's decode process (``Daemon.post_alerts``).
- ``GET /-/healthy``: 200 while the process runs.
- ``GET /-/ready``: 200 when the loop runs and every sink is healthy, else 503.
- ``POST /-/reload``: reload the topology; 200, or 500 with the reason.
- ``GET /metrics``: Prometheus metrics; ``?name[]=NAME`` (repeatable) only those
  series, as prometheus-client's own exporters take it, so a poller that
  needs one counter does not make the daemon render them all.
- ``GET /api/v1/incidents``: the open incidents (each one's latest event).
"""

from __future__ import annotations

from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING
from urllib.parse import parse_qs

import msgspec
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from correlator.errors import SourceError
from correlator.threadnames import NamedThread, name_this_thread

if TYPE_CHECKING:
    from correlator.daemon.service import Daemon

_ENCODER = msgspec.json.Encoder()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def _handler(daemon: Daemon) -> type[BaseHTTPRequestHandler]:
    limit = daemon.config.zmq.max_message_bytes

    class Handler(BaseHTTPRequestHandler):
        server_version = "correlator"
        protocol_version = "HTTP/1.1"
        # A reply goes out as two writes (headers, body): with Nagle's algorithm the
        # body waits for the client's delayed ACK of the headers, 40 ms on Linux.
        disable_nagle_algorithm = True

        def setup(self) -> None:
            name_this_thread("http-conn")  # one thread per connection, from ThreadingMixIn
            super().setup()

        def log_message(self, format: str, *args: object) -> None:
            """Requests are counted in metrics, not logged one by one."""

        def _reply(self, status: int, body: bytes, content_type: str = "application/json"):
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _error(self, status: int, message: str) -> None:
            self._reply(status, _ENCODER.encode({"status": "error", "error": message}))

        def _body(self) -> bytes | None:
            length = int(self.headers.get("Content-Length") or 0)
            if length > limit:
                self.rfile.read(length)
                self._error(
                    HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"body of {length} bytes exceeds {limit}"
                )
                return None
            return self.rfile.read(length)

        def do_GET(self) -> None:
            path, _, query = self.path.partition("?")
            if path == "/-/healthy":
                self._reply(HTTPStatus.OK, b"OK\n", "text/plain")
            elif path == "/-/ready":
                ok, problems = daemon.ready()
                text = "OK\n" if ok else "".join(p + "\n" for p in problems)
                status = HTTPStatus.OK if ok else HTTPStatus.SERVICE_UNAVAILABLE
                self._reply(status, text.encode(), "text/plain")
            elif path == "/metrics":
                registry = daemon.metrics.registry
                names = parse_qs(query).get("name[]")
                if names:
                    registry = registry.restricted_registry(names)
                self._reply(HTTPStatus.OK, generate_latest(registry), CONTENT_TYPE_LATEST)
            elif path == "/api/v1/incidents":
                incidents = sorted(daemon.open_incidents(), key=lambda e: (e.first_seen, e.id))
                self._reply(
                    HTTPStatus.OK, _ENCODER.encode({"status": "success", "data": incidents})
                )
            else:
                self._error(HTTPStatus.NOT_FOUND, f"no such endpoint: GET {path}")

        def do_POST(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/api/v2/alerts":
                body = self._body()
                if body is None:
                    return
                try:
                    verdict = daemon.post_alerts(body)
                except SourceError as exc:
                    self._error(HTTPStatus.SERVICE_UNAVAILABLE, str(exc))
                    return
                if verdict.error:
                    self._error(HTTPStatus.INTERNAL_SERVER_ERROR, verdict.error)
                elif not verdict.accepted:
                    text = "no valid alert: " + ", ".join(verdict.reasons)
                    self._error(HTTPStatus.BAD_REQUEST, text)
                else:
                    self._reply(HTTPStatus.OK, b"")
            elif path == "/-/reload":
                self._body()
                ok, message = daemon.reload()
                status = HTTPStatus.OK if ok else HTTPStatus.INTERNAL_SERVER_ERROR
                self._reply(status, (message + "\n").encode(), "text/plain")
            else:
                self._error(HTTPStatus.NOT_FOUND, f"no such endpoint: POST {path}")

    return Handler


def serve(daemon: Daemon, listen: str) -> ThreadingHTTPServer:
    """Start serving on ``host:port`` (port 0 picks a free one) in a background thread."""
    host, _, port = listen.rpartition(":")
    server = _Server((host or "127.0.0.1", int(port)), _handler(daemon))
    NamedThread(target=server.serve_forever, name="http", daemon=True).start()
    return server
