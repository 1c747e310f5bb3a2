"""Rejected input rows: the reasons, and the record a decoder returns for each.

Bad events are data, not exceptions: every stage that can refuse a row
returns it as a ``Reject`` beside the good rows, and the caller counts it
(``correlator_events_rejected_total{reason}``) and writes it to the
dead-letter file. ``REASONS`` is the closed set of reason codes, so metric
labels stay bounded.
"""

from __future__ import annotations

import msgspec

REASONS: dict[str, str] = {
    "invalid_json": "the frame or line is not valid JSON",
    "invalid_utf8": "the frame or line is not valid UTF-8",
    "not_an_object": "the alert is not a JSON object",
    "no_labels": "the alert has no labels",
    "label_not_string": "a label name or value is not a string",
    "invalid_label_name": "a label name is not a valid Prometheus label name",
    "duplicate_label": "a label name appears twice in one alert",
    "too_many_labels": "the alert has more labels than the configured limit",
    "bad_timestamp": "startsAt, endsAt or receivedAt is not an RFC 3339 time",
    "no_timestamp": "the alert has no time to order it by",
    "bad_status": "status is neither firing nor resolved",
    "bad_field": "a field has the wrong type",
    "too_large": "the row is larger than the configured limit",
    "bad_arrow": "the Arrow data cannot be read or lacks a labels column",
    "unknown_format": "the frame's format is not one correlator accepts",
}


class Reject(msgspec.Struct, frozen=True):
    """One refused input row: where it was, why, and the bytes as received."""

    row: int
    reason: str
    detail: str = ""
    raw: bytes = b""
