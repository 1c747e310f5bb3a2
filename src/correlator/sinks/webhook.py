"""The generic webhook: each incident event POSTed as JSON.

``format: correlator`` (the default) posts the incident event itself; its
``id`` and ``version`` let the receiver drop redeliveries (delivery is at
least once), and the ``Idempotency-Key`` header carries ``<id>/<version>``.
``format: alertmanager`` posts Alertmanager's webhook payload (version "4"),
so anything that consumes Alertmanager webhooks works unchanged: the group
is the incident (``groupKey`` = incident id), and its alerts are the
incident's affected CIs, one alert each (``labels``: the root alertname,
``ci``, ``severity``, ``incident``), the root CI first, at most
``max_alerts`` of them (the rest counted in ``truncatedAlerts``).

Options: ``url`` (required), ``format``, ``headers`` (extra HTTP headers),
``bearer_token_env`` (an environment variable holding a bearer token),
``timeout`` (seconds, default 10), ``external_url`` (Alertmanager
``externalURL``), ``max_alerts`` (default 100, 0 for no limit),
``health_url`` (GET for the healthcheck; without it the healthcheck only
opens a TCP connection to the URL's host).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any, Self
from urllib.parse import urlsplit

from correlator.errors import SinkError
from correlator.fingerprint import fingerprint, format_fingerprint
from correlator.incident import IncidentEvent, encode_event
from correlator.sinks.base import SinkOptions, TicketSink, deliver_each
from correlator.sinks.http import HttpClient, check_status

FORMATS = ("correlator", "alertmanager")
ZERO_TIME = "0001-01-01T00:00:00Z"


def alertmanager_payload(
    event: IncidentEvent, *, receiver: str, external_url: str = "", max_alerts: int = 100
) -> dict[str, Any]:
    """The Alertmanager webhook body (version "4") that stands for one incident event."""
    resolved = event.event == "resolve"
    status = "resolved" if resolved else "firing"
    root = event.root_cause
    alertname = root.alertname or "CorrelatedIncident"
    common = {"alertname": alertname, "incident": event.id, "severity": event.severity}
    annotations = {
        "summary": f"{event.ci_count} CIs affected, root cause {root.ci or alertname}",
        "description": event.explanation,
    }
    if event.affected_services:
        annotations["services"] = ", ".join(event.affected_services)
    cis = list(event.affected_cis)
    if root.ci:
        cis = [root.ci, *(ci for ci in cis if ci != root.ci)]
    limit = len(cis) if max_alerts == 0 else max_alerts
    alerts = []
    for ci in cis[:limit] or [root.ci or ""]:
        labels = {**common, "ci": ci} if ci else dict(common)
        alerts.append(
            {
                "status": status,
                "labels": labels,
                "annotations": annotations,
                "startsAt": event.first_seen,
                "endsAt": event.at if resolved else ZERO_TIME,
                "generatorURL": "",
                "fingerprint": format_fingerprint(fingerprint(labels)),
            }
        )
    return {
        "version": "4",
        "groupKey": event.id,
        "truncatedAlerts": max(0, len(cis) - limit),
        "status": status,
        "receiver": receiver,
        "groupLabels": {"incident": event.id},
        "commonLabels": common,
        "commonAnnotations": annotations,
        "externalURL": external_url,
        "alerts": alerts,
    }


class WebhookSink(TicketSink):
    """POSTs every incident event to one URL."""

    batch_size = 1  # one request per event

    def __init__(
        self,
        url: str,
        *,
        name: str = "webhook",
        format: str = "correlator",
        headers: Mapping[str, str] | None = None,
        bearer_token_env: str | None = None,
        timeout: float = 10.0,
        external_url: str = "",
        max_alerts: int = 100,
        health_url: str | None = None,
    ) -> None:
        self.name = name
        self.format = format
        self.external_url = external_url
        self.max_alerts = max_alerts
        self.bearer_token_env = bearer_token_env
        what = f"webhook sink {name!r}"
        self.client = HttpClient(url, timeout=timeout, headers=headers or {}, what=what)
        self.health = (
            HttpClient(health_url, timeout=timeout, headers=headers or {}, what=what)
            if health_url
            else None
        )

    @classmethod
    def from_config(cls, name: str, options: Mapping[str, Any]) -> Self:
        """Validate the options listed in the module docstring and build the sink."""
        opts = SinkOptions(name, "webhook", options)
        sink = cls(
            opts.text("url"),
            name=name,
            format=opts.choice("format", "correlator", FORMATS),
            headers=opts.text_map("headers"),
            bearer_token_env=opts.optional_text("bearer_token_env"),
            timeout=opts.number("timeout", 10.0, minimum=0.001),
            external_url=opts.text("external_url", ""),
            max_alerts=opts.integer("max_alerts", 100),
            health_url=opts.optional_text("health_url"),
        )
        opts.done()
        return sink

    def _auth(self) -> dict[str, str]:
        if self.bearer_token_env is None:
            return {}
        token = os.environ.get(self.bearer_token_env)
        if not token:
            msg = (
                f"webhook sink {self.name!r}: environment variable {self.bearer_token_env} is unset"
            )
            raise SinkError(msg)
        return {"Authorization": f"Bearer {token}"}

    def healthcheck(self) -> None:
        """GET ``health_url`` (2xx expected), or else open a TCP connection to the URL's host."""
        self._auth()
        if self.health is None:
            self.client.probe()
            return
        try:
            check_status(self.health.request("GET", headers=self._auth()), self.health.what)
        finally:
            self.health.close()

    def _send(self, event: IncidentEvent) -> None:
        if self.format == "alertmanager":
            body: Any = alertmanager_payload(
                event,
                receiver=self.name,
                external_url=self.external_url,
                max_alerts=self.max_alerts,
            )
        else:
            body = encode_event(event)
        headers = {"Idempotency-Key": f"{event.id}/{event.version}", **self._auth()}
        response = self.client.request("POST", body=body, headers=headers)
        check_status(response, f"{self.client.what}: POST {urlsplit(self.client.url).path or '/'}")

    def write_batch(self, events: Sequence[IncidentEvent]) -> None:
        """POST the events one by one, in order."""
        deliver_each(events, self._send)

    def close(self) -> None:
        """Close the connection."""
        self.client.close()
