"""PagerDuty, through the Events API v2 (``POST /v2/enqueue``).

An incident's ``open`` and ``update`` events are sent as ``trigger`` and its
``resolve`` as ``resolve``, all with ``dedup_key`` = incident id: PagerDuty
keeps one alert per dedup key and treats a later trigger as an update of it,
so a redelivered event never opens a second alert. 202 means accepted, 400
an invalid event (dead-lettered), 429 and 5xx are retried.

Options: ``routing_key_env`` (the environment variable holding the
integration's routing key; default ``PAGERDUTY_ROUTING_KEY``), ``url``
(default ``https://events.pagerduty.com/v2/enqueue``), ``timeout`` (seconds,
default 10), ``client``/``client_url`` (shown in PagerDuty as the event's
origin), ``severity_map`` (incident severity to PagerDuty's ``critical``,
``error``, ``warning`` or ``info``, merged over the built-in one).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any, Self

import msgspec

from correlator.errors import ConfigError, SinkError
from correlator.incident import IncidentEvent
from correlator.sinks.base import SinkOptions, TicketSink, deliver_each
from correlator.sinks.http import HttpClient, check_status

DEFAULT_URL = "https://events.pagerduty.com/v2/enqueue"
PD_SEVERITIES = ("critical", "error", "warning", "info")
SEVERITY_MAP = {
    "critical": "critical",
    "page": "critical",
    "emergency": "critical",
    "error": "error",
    "major": "error",
    "high": "error",
    "warning": "warning",
    "minor": "warning",
    "info": "info",
    "informational": "info",
    "none": "info",
}
_SUMMARY_MAX = 1024


def pagerduty_event(
    event: IncidentEvent,
    routing_key: str,
    *,
    severity_map: Mapping[str, str] = SEVERITY_MAP,
    client: str = "correlator",
    client_url: str | None = None,
) -> dict[str, Any]:
    """The Events API v2 body for one incident event."""
    if event.event == "resolve":
        return {"routing_key": routing_key, "event_action": "resolve", "dedup_key": event.id}
    root = event.root_cause
    cause = root.ci or root.alertname or "unknown CI"
    summary = f"{cause}: {event.explanation}" if event.explanation else cause
    body: dict[str, Any] = {
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": event.id,
        "client": client,
        "payload": {
            "summary": summary[:_SUMMARY_MAX],
            "source": root.ci or "correlator",
            "severity": severity_map.get(event.severity.lower(), "error"),
            "timestamp": event.first_seen,
            "component": root.ci or "",
            "group": ", ".join(event.affected_services) or (root.type or ""),
            "class": root.alertname or "",
            "custom_details": msgspec.to_builtins(event),
        },
    }
    if client_url:
        body["client_url"] = client_url
    return body


class PagerDutySink(TicketSink):
    """Triggers and resolves PagerDuty alerts, one per incident."""

    batch_size = 1  # one request per event

    def __init__(
        self,
        *,
        name: str = "pagerduty",
        url: str = DEFAULT_URL,
        routing_key_env: str = "PAGERDUTY_ROUTING_KEY",
        timeout: float = 10.0,
        client: str = "correlator",
        client_url: str | None = None,
        severity_map: Mapping[str, str] | None = None,
    ) -> None:
        self.name = name
        self.routing_key_env = routing_key_env
        self.client_name = client
        self.client_url = client_url
        self.severity_map = {
            **SEVERITY_MAP,
            **{k.lower(): v for k, v in (severity_map or {}).items()},
        }
        bad = sorted({v for v in self.severity_map.values() if v not in PD_SEVERITIES})
        if bad:
            msg = (
                f"sink {name!r} (pagerduty): option 'severity_map' maps to {bad[0]!r}"
                f" (PagerDuty severities: {', '.join(PD_SEVERITIES)})"
            )
            raise ConfigError(msg)
        self.client = HttpClient(url, timeout=timeout, headers={}, what=f"pagerduty sink {name!r}")

    @classmethod
    def from_config(cls, name: str, options: Mapping[str, Any]) -> Self:
        """Validate the options listed in the module docstring and build the sink."""
        opts = SinkOptions(name, "pagerduty", options)
        sink = cls(
            name=name,
            url=opts.text("url", DEFAULT_URL),
            routing_key_env=opts.text("routing_key_env", "PAGERDUTY_ROUTING_KEY"),
            timeout=opts.number("timeout", 10.0, minimum=0.001),
            client=opts.text("client", "correlator"),
            client_url=opts.optional_text("client_url"),
            severity_map=opts.text_map("severity_map"),
        )
        opts.done()
        return sink

    def _routing_key(self) -> str:
        key = os.environ.get(self.routing_key_env)
        if not key:
            msg = (
                f"pagerduty sink {self.name!r}: environment variable {self.routing_key_env}"
                " (the routing key) is unset"
            )
            raise SinkError(msg)
        return key

    def healthcheck(self) -> None:
        """The routing key is set and the Events API host accepts a connection.

        The Events API has no read-only endpoint, so nothing is sent.
        """
        self._routing_key()
        self.client.probe()

    def _send(self, event: IncidentEvent, routing_key: str) -> None:
        body = pagerduty_event(
            event,
            routing_key,
            severity_map=self.severity_map,
            client=self.client_name,
            client_url=self.client_url,
        )
        response = self.client.request("POST", body=body)
        check_status(response, f"{self.client.what}: {body['event_action']} {event.id}")

    def write_batch(self, events: Sequence[IncidentEvent]) -> None:
        """Send the events one by one, in order."""
        key = self._routing_key()
        deliver_each(events, lambda e: self._send(e, key))

    def close(self) -> None:
        """Close the connection."""
        self.client.close()
