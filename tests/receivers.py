"""Real HTTP receivers on 127.0.0.1 for the sink tests, and the incident traffic they are fed.

Each receiver is a ``ThreadingHTTPServer`` speaking HTTP/1.1 (keep-alive)
with the documented request and response shapes of the system it stands
for, state that survives a restart (as the real system's database would),
and programmable faults applied to the next requests in order:

- ``fail_next(n, status=500)``: answer ``status`` without doing anything
  (``retry_after=`` adds a ``Retry-After`` header, for 429 and 503);
- ``delay_next(n, seconds)``: do the work, then answer only after
  ``seconds`` (longer than the client's timeout, the client gives up while
  the work is done: the case idempotency keys exist for);
- ``reject(predicate)``: answer 400 to every request whose JSON body
  satisfies ``predicate`` (a non-retryable rejection);
- ``stop()`` / ``start()``: take the server down (connections reset,
  connections refused) and back up on the same port.
"""

from __future__ import annotations

import base64
import contextlib
import json
import re
import socket
import threading
import time
import uuid
from collections import Counter, defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from correlator.incident import IncidentEvent, RootCause

Reply = tuple[int, dict[str, str], Any]


@dataclass(frozen=True)
class Request:
    """One request as a receiver sees it."""

    method: str
    path: str
    query: dict[str, str]
    headers: Any
    body: Any


@dataclass
class _Fault:
    kind: str  # "status" or "delay"
    status: int = 500
    seconds: float = 0.0
    retry_after: float | None = None


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self) -> None:
            super().setup()
            # Headers and body go out in two writes: without this, Nagle's algorithm and
            # the client's delayed ACK add 40 ms to every response.
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            receiver._track(self.connection, add=True)

        def finish(self) -> None:
            receiver._track(self.connection, add=False)
            with contextlib.suppress(OSError):
                super().finish()

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: the tests read the receiver's own records."""

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            if len(raw) < length:  # the connection was reset mid-request: nothing happened
                self.close_connection = True
                return
            status, headers, body = receiver._dispatch(self.command, self.path, self.headers, raw)
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            try:
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except OSError:
                self.close_connection = True

        do_GET = do_POST = do_PATCH = do_PUT = _serve

    return Handler


class Receiver:
    """A loopback HTTP server with faults; subclasses implement ``handle``."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.port = 0
        self.requests: list[tuple[str, str]] = []
        self._faults: deque[_Fault] = deque()
        self._reject: Callable[[Any], bool] | None = None
        self._connections: set[socket.socket] = set()
        self._server: _Server | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self._server = _Server(("127.0.0.1", self.port), _handler(self))
        self.port = self._server.server_port
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()

    def stop(self) -> None:
        """Reset every open connection and close the listening socket."""
        assert self._server is not None
        self._reset_connections()  # keep-alive connections would otherwise go on serving
        self._server.shutdown()
        self._server.server_close()
        self._reset_connections()  # and any accepted meanwhile
        self._server = None

    def _reset_connections(self) -> None:
        with self.lock:
            for conn in list(self._connections):
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)

    def restart(self, down_for: float = 0.0) -> None:
        self.stop()
        time.sleep(down_for)
        self.start()

    def _track(self, conn: socket.socket, *, add: bool) -> None:
        with self.lock:
            if add:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)

    def fail_next(self, n: int, status: int = 500, retry_after: float | None = None) -> None:
        with self.lock:
            self._faults.extend(_Fault("status", status, retry_after=retry_after) for _ in range(n))

    def delay_next(self, n: int, seconds: float) -> None:
        with self.lock:
            self._faults.extend(_Fault("delay", seconds=seconds) for _ in range(n))

    def clear_faults(self) -> None:
        with self.lock:
            self._faults.clear()

    def reject(self, predicate: Callable[[Any], bool] | None) -> None:
        with self.lock:
            self._reject = predicate

    def _dispatch(self, method: str, target: str, headers: Any, raw: bytes) -> Reply:
        parts = urlsplit(target)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        body = json.loads(raw) if raw else None
        with self.lock:
            self.requests.append((method, parts.path))
            fault = self._faults.popleft() if self._faults else None
            if fault is not None and fault.kind == "status":
                extra = {}
                if fault.retry_after is not None:
                    extra["Retry-After"] = f"{fault.retry_after:g}"
                return fault.status, extra, {"error": f"injected {fault.status}"}
            if self._reject is not None and body is not None and self._reject(body):
                return 400, {}, self.rejection(body)
            reply = self.handle(Request(method, parts.path, query, headers, body))
        if fault is not None:  # "delay": the work is done, the answer comes too late
            time.sleep(fault.seconds)
        return reply

    def rejection(self, body: Any) -> Any:
        return {"error": "rejected"}

    def handle(self, req: Request) -> Reply:
        raise NotImplementedError


class WebhookReceiver(Receiver):
    """Accepts any JSON POST with 200 and keeps the bodies."""

    def __init__(self) -> None:
        self.bodies: list[Any] = []
        super().__init__()

    def handle(self, req: Request) -> Reply:
        if req.method == "POST":
            self.bodies.append(req.body)
        return 200, {}, {"status": "ok"}

    def versions(self) -> dict[str, list[int]]:
        """Incident id -> the versions received, in arrival order (correlator format)."""
        out: dict[str, list[int]] = defaultdict(list)
        for body in self.bodies:
            out[body["id"]].append(body["version"])
        return dict(out)


_PD_SEVERITIES = {"critical", "error", "warning", "info"}


class PagerDutyReceiver(Receiver):
    """The Events API v2: ``POST /v2/enqueue``, one alert per open dedup key.

    A trigger for a dedup key with an open alert updates it; a trigger after
    the alert was resolved opens a new one (as PagerDuty does), which the
    tests count as a duplicate ticket.
    """

    def __init__(self, routing_key: str = "R0123456789ABCDEF0123456789ABCDE") -> None:
        self.routing_key = routing_key
        self.status: dict[str, str] = {}  # dedup_key -> triggered | resolved
        self.opened: Counter[str] = Counter()
        self.log: list[tuple[str, str, int | None]] = []  # dedup_key, action, version
        super().__init__()

    def rejection(self, body: Any) -> Any:
        return {"status": "invalid event", "message": "Event object is invalid", "errors": ["x"]}

    def _invalid(self, error: str) -> Reply:
        body = {"status": "invalid event", "message": "Event object is invalid", "errors": [error]}
        return 400, {}, body

    def handle(self, req: Request) -> Reply:
        body = req.body
        if req.method != "POST" or req.path != "/v2/enqueue":
            return 404, {}, {"status": "not found"}
        if not isinstance(body, dict) or body.get("routing_key") != self.routing_key:
            return self._invalid("Invalid routing key")
        action, key = body.get("event_action"), body.get("dedup_key")
        if action not in ("trigger", "acknowledge", "resolve") or not key:
            return self._invalid("'event_action' is invalid or 'dedup_key' missing")
        version = None
        if action == "trigger":
            payload = body.get("payload") or {}
            if not payload.get("summary") or not payload.get("source"):
                return self._invalid("'payload.summary' and 'payload.source' are required")
            if payload.get("severity") not in _PD_SEVERITIES:
                return self._invalid("'payload.severity' is invalid")
            version = payload.get("custom_details", {}).get("version")
            if self.status.get(key) != "triggered":
                self.opened[key] += 1
            self.status[key] = "triggered"
        elif action == "resolve" and self.status.get(key) == "triggered":
            self.status[key] = "resolved"
        self.log.append((key, action, version))
        return 202, {}, {"status": "success", "message": "Event processed", "dedup_key": key}


@dataclass
class _Record:
    fields: dict[str, Any]
    versions: list[int] = field(default_factory=list)


_VERSION = re.compile(r"version (\d+)")


class ServiceNowReceiver(Receiver):
    """The Table API on ``/api/now/table/incident``: POST, GET (by sys_id or query), PATCH."""

    def __init__(self, username: str = "correlator", password: str = "s3cret") -> None:
        self.auth = "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()
        self.records: dict[str, _Record] = {}
        self.posts: Counter[str] = Counter()  # correlation_id -> records created
        super().__init__()

    def rejection(self, body: Any) -> Any:
        return {"error": {"message": "Invalid field", "detail": "rejected"}, "status": "failure"}

    @staticmethod
    def _not_found() -> Reply:
        detail = "Record doesn't exist or ACL restricts the record retrieval"
        error = {"message": "No Record found", "detail": detail}
        return 404, {}, {"error": error, "status": "failure"}

    def handle(self, req: Request) -> Reply:
        if req.headers.get("Authorization") != self.auth:
            error = {"message": "User Not Authenticated", "detail": "Required to provide Auth"}
            return 401, {}, {"error": error, "status": "failure"}
        method, path, query, body = req.method, req.path, req.query, req.body
        base = "/api/now/table/incident"
        if path == base and method == "POST":
            sys_id = uuid.uuid4().hex
            number = f"INC{len(self.records) + 10001:07d}"
            fields = {**body, "sys_id": sys_id, "number": number, "state": "1"}
            self.records[sys_id] = _Record(fields)
            self.posts[body.get("correlation_id", "")] += 1
            return 201, {"Location": f"{self.url}{base}/{sys_id}"}, {"result": fields}
        if path == base and method == "GET":
            terms = [t.split("=", 1) for t in query.get("sysparm_query", "").split("^") if t]
            found = [
                r.fields
                for r in self.records.values()
                if all(str(r.fields.get(k, "")) == v for k, v in terms)
            ][: int(query.get("sysparm_limit", "10000"))]
            wanted = query.get("sysparm_fields")
            if wanted:
                names = wanted.split(",")
                found = [{k: f.get(k, "") for k in names} for f in found]
            return 200, {}, {"result": found}
        if not path.startswith(base + "/"):
            return 400, {}, {"error": {"message": "Invalid table"}, "status": "failure"}
        record = self.records.get(path.rsplit("/", 1)[1])
        if record is None:
            return self._not_found()
        if method == "GET":
            return 200, {}, {"result": record.fields}
        if method in ("PATCH", "PUT"):
            for key, value in body.items():
                if key == "work_notes":
                    record.fields.setdefault("work_notes_journal", []).append(value)
                else:
                    record.fields[key] = value
            notes = body.get("work_notes") or body.get("close_notes") or ""
            found_version = _VERSION.search(notes)
            if found_version:
                record.versions.append(int(found_version.group(1)))
            return 200, {}, {"result": record.fields}
        return 405, {}, {"error": {"message": "Method not allowed"}, "status": "failure"}

    def by_incident(self) -> dict[str, _Record]:
        return {r.fields["correlation_id"]: r for r in self.records.values()}


# What the receivers are fed: incident traffic with the shape correlation emits.


def incident_event(
    incident: str,
    event: str,
    version: int,
    *,
    root_ci: str = "sw-1",
    root_type: str = "switch",
    severity: str = "critical",
    services: tuple[str, ...] = ("checkout",),
    cis: int = 3,
    reason: str | None = None,
) -> IncidentEvent:
    """One incident event with a plausible snapshot."""
    second = 10 + version
    return IncidentEvent(
        id=incident,
        event=event,
        version=version,
        at=f"2026-11-27T10:00:{second:02d}Z",
        root_cause=RootCause(ci=root_ci, type=root_type, alertname="SwitchDown"),
        severity=severity,
        significance="exception",
        first_seen="2026-11-27T10:00:00Z",
        last_seen=f"2026-11-27T10:00:{second:02d}Z",
        alert_count=version * 10,
        firing_count=0 if event == "resolve" else version * 10,
        ci_count=cis,
        affected_cis=[root_ci, *(f"{root_ci}-h{i}" for i in range(cis - 1))],
        affected_by_type={root_type: 1, "host": cis - 1},
        affected_services=list(services),
        fingerprints=[f"{version:016x}"],
        explanation=f"{cis} CIs behind {root_ci} alerted; {root_ci} dominates all of them",
        reason=reason,
    )


def storm_events(incidents: int, updates: int = 2, **snapshot: Any) -> list[IncidentEvent]:
    """``incidents`` incidents, each open, ``updates`` updates and a resolve, interleaved.

    Incident k opens at step k, so the events of different incidents mix as
    they do when a storm is correlated.
    """
    steps: list[tuple[int, int, IncidentEvent]] = []
    for k in range(incidents):
        incident = f"inc-{k:016x}"
        kinds = ["open", *["update"] * updates, "resolve"]
        for v, kind in enumerate(kinds, start=1):
            steps.append((k + v, k, incident_event(incident, kind, v, **snapshot)))
    return [e for _, _, e in sorted(steps, key=lambda s: (s[0], s[1]))]
