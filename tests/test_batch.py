"""Normalization: event time, status, CI, severity and fingerprint as columns."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa

from conftest import alert
from correlator.batch import CRITICAL, INFO, UNKNOWN_SEVERITY, Normalizer, concat_batches
from correlator.decode import decode_json
from correlator.fingerprint import fingerprint
from correlator.schema import FIRING, RESOLVED
from correlator.vocab import Vocabulary


def _normalize(rows: list[dict], topology=None, **kwargs):
    decoded = decode_json(json.dumps(rows).encode())
    vocab = Vocabulary()
    batch, rejects = Normalizer(vocab, topology).normalize(decoded.table, decoded.index, **kwargs)
    return batch, rejects, vocab


def test_ci_from_labels_in_priority_order_with_port_stripped(small_topology) -> None:
    rows = [
        {"labels": {"instance": "h1:9100"}, "startsAt": "2026-11-27T10:00:00Z"},
        {"labels": {"instance": "h1:9100", "ci": "svc1"}, "startsAt": "2026-11-27T10:00:00Z"},
        {"labels": {"host": "nowhere", "node": "h2"}, "startsAt": "2026-11-27T10:00:00Z"},
        {"labels": {"instance": "lab-1:9100"}, "startsAt": "2026-11-27T10:00:00Z"},
    ]
    batch, _, vocab = _normalize(rows, small_topology)
    ids = [small_topology.ci_ids[c] if c >= 0 else None for c in batch.ci]
    assert ids == ["h1", "svc1", "h2", None]
    assert vocab[int(batch.ci_label[3])] == "lab-1:9100"


def test_severity_codes_and_fingerprints() -> None:
    rows = [
        alert(0, "A", severity="Critical"),
        alert(0, "B", severity="info"),
        alert(0, "C", severity="whatever"),
    ]
    batch, _, vocab = _normalize(rows)
    assert list(batch.severity) == [CRITICAL, INFO, UNKNOWN_SEVERITY]
    assert int(batch.fingerprint[0]) == fingerprint(rows[0]["labels"])
    assert vocab[int(batch.alertname[1])] == "B"


def test_event_time_and_status_rules() -> None:
    rows = [
        # receivedAt is the event time; endsAt after it: still firing.
        {
            "labels": {"a": "1"},
            "startsAt": "2026-11-27T10:00:00Z",
            "endsAt": "2026-11-27T10:05:00Z",
            "receivedAt": "2026-11-27T10:01:00Z",
        },
        # endsAt not after receivedAt: resolved.
        {
            "labels": {"a": "2"},
            "startsAt": "2026-11-27T10:00:00Z",
            "endsAt": "2026-11-27T10:01:00Z",
            "receivedAt": "2026-11-27T10:01:00Z",
        },
        # no receivedAt: endsAt set means resolved, and endsAt is the event time.
        {
            "labels": {"a": "3"},
            "startsAt": "2026-11-27T10:00:00Z",
            "endsAt": "2026-11-27T10:09:00Z",
        },
        # an explicit status wins.
        {
            "labels": {"a": "4"},
            "startsAt": "2026-11-27T10:00:00Z",
            "endsAt": "2026-11-27T10:09:00Z",
            "status": "firing",
        },
    ]
    batch, rejects, _ = _normalize(rows)
    assert rejects == []
    assert list(batch.status) == [FIRING, RESOLVED, RESOLVED, FIRING]
    base = np.datetime64("2026-11-27T10:00:00", "ns").astype(np.int64)
    minutes = (batch.ts - base) // (60 * 10**9)
    assert list(minutes) == [1, 1, 9, 0]


def test_live_stamp_overrides_event_time() -> None:
    now = 1_800_000_000 * 10**9
    batch, _, _ = _normalize([alert(3, "A")], received_at=now)
    assert list(batch.ts) == [now]


def test_rows_the_normalizer_refuses() -> None:
    rows = [
        {"labels": {}, "startsAt": "2026-11-27T10:00:00Z"},
        {"labels": {"a": "1"}},
        {"labels": {"a": "1"}, "startsAt": "2026-11-27T10:00:00Z", "status": "pending"},
        {"labels": {"bad-name": "1"}, "startsAt": "2026-11-27T10:00:00Z"},
        {"labels": {"a": "ok"}, "startsAt": "2026-11-27T10:00:00Z"},
    ]
    batch, rejects, _ = _normalize(rows)
    assert [(r.row, r.reason) for r in rejects] == [
        (0, "no_labels"),
        (1, "no_timestamp"),
        (2, "bad_status"),
        (3, "invalid_label_name"),
    ]
    assert list(batch.row) == [4]


def test_duplicate_and_too_many_labels_from_arrow() -> None:
    labels = pa.array(
        [[("a", "1"), ("a", "2")], [(f"l{i}", "v") for i in range(300)]],
        type=pa.map_(pa.string(), pa.string()),
    )
    stamp = pa.array([10**18, 10**18], type=pa.timestamp("ns", tz="UTC"))
    table = pa.table({"labels": labels, "startsAt": stamp})
    _, rejects = Normalizer(Vocabulary()).normalize(table, np.arange(2))
    assert [r.reason for r in rejects] == ["duplicate_label", "too_many_labels"]


def test_time_order_and_concat_keep_labels_with_their_alerts() -> None:
    rows = [alert(5, "late", instance="x"), alert(1, "early", instance="y")]
    batch, _, vocab = _normalize(rows)
    ordered = concat_batches([batch, batch]).in_time_order()
    assert [vocab[int(a)] for a in ordered.alertname] == ["early", "early", "late", "late"]
    assert ordered.labels(0, vocab)["instance"] == "y"
    assert list(ordered.row) == [1, 1, 0, 0]
