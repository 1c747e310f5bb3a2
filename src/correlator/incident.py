"""What sinks receive: incident events (open, update, resolve) as in DESIGN.md.

An incident id is derived from the incident's first root (the CI, or the
alertname and CI label for alerts outside the CMDB) and its first event time,
so a replay of the same recording yields the same ids.
"""

from __future__ import annotations

import hashlib

import msgspec


class RootCause(msgspec.Struct, frozen=True):
    """The probable cause: a CI of the CMDB, or the label that named an unknown one."""

    ci: str | None
    type: str | None
    alertname: str | None
    inferred: bool = False


class IncidentEvent(msgspec.Struct, frozen=True):
    """One change of an incident, with a full snapshot of it at that moment.

    ``version`` counts the events of this incident from 1; a receiver keeps
    the highest version it has seen. ``labels`` are those of the alert that
    opened the incident (routes can match them). ``merged_into`` is set on
    the ``resolve`` of an incident that was folded into another
    (``reason: merged_into``). ``action`` is what the rule set's ``respond``
    section chose (``incident``, ``alert``, ``auto``, ``log``) and ``run`` the
    automation an ``auto`` action names.
    """

    id: str
    event: str
    version: int
    at: str
    root_cause: RootCause
    severity: str
    significance: str
    first_seen: str
    last_seen: str
    alert_count: int
    firing_count: int
    ci_count: int
    affected_cis: list[str]
    affected_by_type: dict[str, int]
    affected_services: list[str]
    fingerprints: list[str]
    explanation: str
    reason: str | None = None
    merged_into: str | None = None
    labels: dict[str, str] = {}
    action: str = "incident"
    run: str | None = None


def incident_id(root_key: str, first_ns: int) -> str:
    """The stable id of an incident first rooted at ``root_key`` at ``first_ns``."""
    digest = hashlib.blake2b(f"{root_key}\x00{first_ns}".encode(), digest_size=8)
    return "inc-" + digest.hexdigest()


_ENCODER = msgspec.json.Encoder()


def encode_event(event: IncidentEvent) -> bytes:
    """The JSON form of one event (no trailing newline); field order is fixed."""
    return _ENCODER.encode(event)
