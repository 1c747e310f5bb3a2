"""A small HTTP/1.1 client for the HTTP sinks, on the standard library's ``http.client``.

One keep-alive connection per sink (a sink is driven by one delivery thread).
Network failures and HTTP statuses become :class:`DeliveryError` here, the
boundary: timeouts, refused connections and 5xx/408/429 are retryable, other
4xx are not (the event is dead-lettered with the response body), except
401/403/407: rejected credentials are retried, as the sink is at fault.
"""

from __future__ import annotations

import base64
import email.utils
import http.client
import json
import selectors
import socket
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from correlator.errors import ConfigError, SinkError
from correlator.sinks.base import DeliveryError

_RESPONSE_KEEP = 4096  # bytes of a response body kept for dead letters and messages
_RETRYABLE_4XX = frozenset({408, 425, 429})
# Rejected credentials say the sink is misconfigured, not that the event is bad: the
# events wait in the outbox (the sink shows unhealthy) instead of all being dead-lettered.
_AUTH = frozenset({401, 403, 407})


@dataclass(frozen=True)
class HttpResponse:
    """A response: status, lower-cased headers, and the body."""

    status: int
    headers: dict[str, str]
    body: bytes

    def text(self) -> str:
        """The body as text (first few KB), for messages and dead letters."""
        return self.body[:_RESPONSE_KEEP].decode("utf-8", "replace")

    def json(self) -> Any:
        """The body parsed as JSON; a ``DeliveryError`` (retryable) if it is not JSON."""
        try:
            return json.loads(self.body)
        except ValueError as exc:
            msg = f"HTTP {self.status}: response is not JSON: {self.text()[:200]!r}"
            raise DeliveryError(
                msg, retryable=True, reason="bad_response", status=self.status
            ) from exc


def basic_auth(username: str, password: str) -> str:
    """The value of an ``Authorization`` header for HTTP basic auth."""
    token = base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
    return f"Basic {token}"


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """``Retry-After`` as seconds from now: delta-seconds or an HTTP date; None if unusable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def check_status(response: HttpResponse, what: str) -> None:
    """Raise the ``DeliveryError`` a non-2xx ``response`` to ``what`` stands for."""
    status = response.status
    if 200 <= status < 300:
        return
    body = response.text()
    msg = f"{what}: HTTP {status}: {body[:300]}"
    if status in _RETRYABLE_4XX or status in _AUTH or status >= 500:
        if status == 429:
            reason = "http_429"
        elif status in _AUTH:
            reason = "http_auth"
        else:
            reason = "http_5xx" if status >= 500 else "http_4xx"
        raise DeliveryError(
            msg,
            retryable=True,
            reason=reason,
            retry_after=retry_after_seconds(response.headers.get("retry-after")),
            status=status,
            response=body,
        )
    raise DeliveryError(msg, retryable=False, reason="http_4xx", status=status, response=body)


def _dropped(sock: socket.socket | None) -> bool:
    """Whether an idle keep-alive connection was closed by the server (it reads as ready)."""
    if sock is None:
        return False
    try:
        with selectors.DefaultSelector() as selector:
            selector.register(sock, selectors.EVENT_READ)
            return bool(selector.select(0))
    except (OSError, ValueError):
        return True


class HttpClient:
    """Requests to one origin over a reused connection.

    ``url`` names the origin (and a base path the request paths are joined
    to); ``headers`` go with every request. An idle connection the server has
    closed is replaced before a request goes out; a request that failed once
    sent is never resent here (it may have been applied): the failure goes
    to the dispatcher, which redelivers through the sink's idempotent path.
    """

    def __init__(self, url: str, *, timeout: float, headers: Mapping[str, str], what: str) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            msg = f"{what}: URL must be http:// or https:// with a host, got {url!r}"
            raise ConfigError(msg)
        self.what = what
        self.url = url
        self.https = parts.scheme == "https"
        self.host = parts.hostname
        self.port = parts.port or (443 if self.https else 80)
        self.base_path = parts.path.rstrip("/")
        self.query = parts.query
        self.timeout = timeout
        self.headers = {"User-Agent": "correlator", **headers}
        self._conn: http.client.HTTPConnection | None = None

    def _connect(self) -> http.client.HTTPConnection:
        if self._conn is not None and _dropped(self._conn.sock):
            self.close()
        if self._conn is None:
            if self.https:
                self._conn = http.client.HTTPSConnection(
                    self.host, self.port, timeout=self.timeout, context=ssl.create_default_context()
                )
            else:
                self._conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        return self._conn

    def target(self, path: str = "") -> str:
        """The request target for ``path`` under the base path (the URL's own query kept)."""
        target = (self.base_path + path) or "/"
        if self.query:
            target += ("&" if "?" in target else "?") + self.query
        return target

    def request(
        self,
        method: str,
        path: str = "",
        body: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> HttpResponse:
        """Send one request (``body`` is JSON-encoded unless it is bytes) and read the response."""
        payload = body if body is None or isinstance(body, bytes) else json.dumps(body).encode()
        sent = dict(self.headers)
        if payload is not None:
            sent.setdefault("Content-Type", "application/json")
        sent.update(headers or {})
        conn = self._connect()
        try:
            conn.request(method, self.target(path), body=payload, headers=sent)
            raw = conn.getresponse()
            data = raw.read()
        except (OSError, http.client.HTTPException) as exc:
            self.close()
            raise self._network_error(exc) from exc
        if raw.will_close:
            self.close()
        return HttpResponse(raw.status, {k.lower(): v for k, v in raw.getheaders()}, data)

    def _network_error(self, exc: BaseException) -> DeliveryError:
        if isinstance(exc, TimeoutError | socket.timeout):
            reason = f"no response within {self.timeout:g} s"
            label = "timeout"
        elif isinstance(exc, ConnectionRefusedError):
            reason, label = "connection refused", "connect"
        else:
            reason, label = f"{type(exc).__name__}: {exc}", "network"
        msg = f"{self.what}: {reason} ({self.host}:{self.port})"
        return DeliveryError(msg, retryable=True, reason=label)

    def probe(self) -> None:
        """Raise ``SinkError`` unless a TCP connection to the origin opens (a cheap healthcheck)."""
        try:
            socket.create_connection((self.host, self.port), timeout=self.timeout).close()
        except OSError as exc:
            msg = f"{self.what}: cannot connect to {self.host}:{self.port}: {exc}"
            raise SinkError(msg) from exc

    def close(self) -> None:
        """Drop the connection (the next request opens a new one)."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None
