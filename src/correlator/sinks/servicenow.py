"""ServiceNow, through the Table API (``/api/now/table/incident``).

One ServiceNow incident per correlator incident, keyed by ``correlation_id``
= incident id:

- ``open``: ``POST /api/now/table/incident`` with ``short_description``
  (root cause and explanation), ``description``, ``urgency`` and ``impact``
  from the severity (critical 1, error 2, anything else 3), ``cmdb_ci``
  (the root CI, matched by ServiceNow on its display value) and
  ``correlation_id``;
- ``update``: ``PATCH /api/now/table/incident/{sys_id}`` with ``work_notes``
  (the new counts and explanation) and the current urgency and impact;
- ``resolve``: a ``PATCH`` with ``state`` (default 6, Resolved),
  ``close_code`` (default "Solved (Permanently)") and ``close_notes``.

Before creating, the sink looks the incident up by ``correlation_id``, so an
``open`` redelivered after a crash or a lost response never makes a second
ticket; the sys_id found or created is kept in the outbox (``bind_state``)
so later events need no lookup. An update or resolve of an incident with no
ticket yet (its open was dead-lettered) creates the ticket first.

Options: ``url`` (the instance, e.g. ``https://acme.service-now.com``;
required), ``table`` (default ``incident``), ``username_env`` /
``password_env`` (environment variables holding the basic-auth credentials;
defaults ``SERVICENOW_USERNAME`` / ``SERVICENOW_PASSWORD``), ``timeout``
(seconds, default 10), ``resolve_state`` (default ``"6"``), ``close_code``,
``fields`` (extra fields for a new ticket, e.g. ``assignment_group``,
``category``, ``caller_id``), ``set_cmdb_ci`` (default true).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any, Self
from urllib.parse import quote, urlencode

from correlator.errors import SinkError
from correlator.incident import IncidentEvent
from correlator.sinks.base import (
    DeliveryError,
    MemoryState,
    SinkOptions,
    SinkState,
    TicketSink,
    deliver_each,
)
from correlator.sinks.http import HttpClient, HttpResponse, basic_auth, check_status

URGENCY = {"critical": "1", "page": "1", "error": "2", "major": "2", "high": "2"}
_SHORT_MAX = 160
_LISTED_CIS = 50


def _urgency(event: IncidentEvent) -> str:
    return URGENCY.get(event.severity.lower(), "3")


def _cause(event: IncidentEvent) -> str:
    root = event.root_cause
    return root.ci or root.alertname or "unknown CI"


def _summary(event: IncidentEvent) -> str:
    return f"correlator incident {event.id} version {event.version} ({event.event}): " + (
        f"{event.alert_count} alerts on {event.ci_count} CIs; "
        f"services: {', '.join(event.affected_services) or '-'}. {event.explanation}"
    )


def ticket_fields(
    event: IncidentEvent, extra: Mapping[str, str], *, cmdb_ci: bool
) -> dict[str, str]:
    """The fields of a new ticket for ``event``'s incident."""
    root = event.root_cause
    cis = ", ".join(event.affected_cis[:_LISTED_CIS])
    if len(event.affected_cis) > _LISTED_CIS:
        cis += f" and {len(event.affected_cis) - _LISTED_CIS} more"
    short = f"{_cause(event)}: {event.explanation}" if event.explanation else _cause(event)
    fields = {
        **extra,
        "short_description": short[:_SHORT_MAX],
        "description": "\n".join(
            [
                f"Root cause: {_cause(event)} ({root.type or 'not in CMDB'})"
                + (" [inferred]" if root.inferred else ""),
                f"Alert: {root.alertname or '-'}",
                f"Severity: {event.severity} ({event.significance})",
                f"First seen: {event.first_seen}",
                f"Alerts: {event.alert_count} on {event.ci_count} CIs ("
                + ", ".join(f"{n} {kind}" for kind, n in sorted(event.affected_by_type.items()))
                + ")",
                f"Affected services: {', '.join(event.affected_services) or '-'}",
                f"Affected CIs: {cis or '-'}",
                "",
                event.explanation,
            ]
        ),
        "urgency": _urgency(event),
        "impact": _urgency(event),
        "correlation_id": event.id,
        "correlation_display": "correlator",
    }
    if cmdb_ci and root.ci:
        fields["cmdb_ci"] = root.ci
    return fields


class ServiceNowSink(TicketSink):
    """Opens, updates and resolves ServiceNow incidents, one per correlator incident."""

    batch_size = 1  # one request per event

    def __init__(
        self,
        url: str,
        *,
        name: str = "servicenow",
        table: str = "incident",
        username_env: str = "SERVICENOW_USERNAME",
        password_env: str = "SERVICENOW_PASSWORD",
        timeout: float = 10.0,
        resolve_state: str = "6",
        close_code: str = "Solved (Permanently)",
        fields: Mapping[str, str] | None = None,
        set_cmdb_ci: bool = True,
    ) -> None:
        self.name = name
        self.username_env = username_env
        self.password_env = password_env
        self.resolve_state = resolve_state
        self.close_code = close_code
        self.fields = dict(fields or {})
        self.set_cmdb_ci = set_cmdb_ci
        self.path = f"/api/now/table/{quote(table)}"
        self.client = HttpClient(
            url.rstrip("/"),
            timeout=timeout,
            headers={"Accept": "application/json"},
            what=f"servicenow sink {name!r}",
        )
        self.state: SinkState = MemoryState()

    @classmethod
    def from_config(cls, name: str, options: Mapping[str, Any]) -> Self:
        """Validate the options listed in the module docstring and build the sink."""
        opts = SinkOptions(name, "servicenow", options)
        sink = cls(
            opts.text("url"),
            name=name,
            table=opts.text("table", "incident"),
            username_env=opts.text("username_env", "SERVICENOW_USERNAME"),
            password_env=opts.text("password_env", "SERVICENOW_PASSWORD"),
            timeout=opts.number("timeout", 10.0, minimum=0.001),
            resolve_state=opts.text("resolve_state", "6"),
            close_code=opts.text("close_code", "Solved (Permanently)"),
            fields=opts.text_map("fields"),
            set_cmdb_ci=opts.flag("set_cmdb_ci", True),
        )
        opts.done()
        return sink

    def bind_state(self, state: SinkState) -> None:
        """Keep incident id -> sys_id in the outbox, so a restart needs no lookups."""
        self.state = state

    def _auth(self) -> dict[str, str]:
        username = os.environ.get(self.username_env)
        password = os.environ.get(self.password_env)
        if not username or password is None:
            msg = (
                f"servicenow sink {self.name!r}: set the credentials in environment variables"
                f" {self.username_env} and {self.password_env}"
            )
            raise SinkError(msg)
        return {"Authorization": basic_auth(username, password)}

    def _call(self, method: str, path: str, what: str, body: Any = None) -> HttpResponse:
        response = self.client.request(method, path, body=body, headers=self._auth())
        check_status(response, f"{self.client.what}: {what}")
        return response

    def healthcheck(self) -> None:
        """Credentials are set and the instance answers a one-row read of the table."""
        query = urlencode({"sysparm_limit": "1", "sysparm_fields": "sys_id"})
        try:
            self._call("GET", f"{self.path}?{query}", "healthcheck")
        except DeliveryError as exc:
            raise SinkError(str(exc)) from exc

    def _result(self, response: HttpResponse, what: str) -> Any:
        body = response.json()
        if not isinstance(body, dict) or "result" not in body:
            msg = f"{self.client.what}: {what}: no 'result' in the response"
            raise DeliveryError(msg, retryable=True, reason="bad_response", status=response.status)
        return body["result"]

    def _lookup(self, incident: str) -> str | None:
        query = urlencode(
            {
                "sysparm_query": f"correlation_id={incident}",
                "sysparm_fields": "sys_id,number",
                "sysparm_limit": "1",
            }
        )
        what = f"look up {incident}"
        found = self._result(self._call("GET", f"{self.path}?{query}", what), what)
        return found[0]["sys_id"] if isinstance(found, list) and found else None

    def _ticket(self, event: IncidentEvent) -> str:
        """The sys_id of the incident's ticket, created if none exists."""
        known = self.state.get(event.id)
        if known:
            return known
        known = self._lookup(event.id)
        if not known:
            fields = ticket_fields(event, self.fields, cmdb_ci=self.set_cmdb_ci)
            what = f"open {event.id}"
            created = self._result(self._call("POST", self.path, what, fields), what)
            known = str(created["sys_id"])
        self.state.put(event.id, known)
        return known

    def _patch(self, event: IncidentEvent, fields: dict[str, str]) -> None:
        for attempt in (1, 2):
            sys_id = self._ticket(event)
            try:
                self._call("PATCH", f"{self.path}/{sys_id}", f"{event.event} {event.id}", fields)
                return
            except DeliveryError as exc:
                if exc.status != 404 or attempt == 2:
                    raise
                self.state.delete(event.id)  # the cached ticket is gone: find or make it anew

    def _send(self, event: IncidentEvent) -> None:
        if event.event == "open":
            self._ticket(event)
            return
        notes = _summary(event)
        if event.event == "resolve":
            closing = f"merged into {event.merged_into}. " if event.merged_into else ""
            self._patch(
                event,
                {
                    "state": self.resolve_state,
                    "close_code": self.close_code,
                    "close_notes": closing + notes,
                },
            )
            self.state.delete(event.id)
        else:
            urgency = _urgency(event)
            self._patch(event, {"work_notes": notes, "urgency": urgency, "impact": urgency})

    def write_batch(self, events: Sequence[IncidentEvent]) -> None:
        """Send the events one by one, in order."""
        deliver_each(events, self._send)

    def close(self) -> None:
        """Close the connection."""
        self.client.close()
