"""Shared test helpers: a small hand-drawn network, an alert builder, labels as strings."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from correlator.topology import Topology, load_topology
from correlator.vocab import Vocabulary

BASE = "2026-11-27T10:00:00Z"

# rt-1 -> sw-1 -> {h1, h2, hd}; rt-1 -> sw-2 -> {h3, hd}; h1 -> svc1 -> shop.
# hd is dual-homed: neither switch alone takes it down.
SMALL_CMDB = {
    "cis": [
        {"id": "rt-1", "type": "router"},
        {"id": "sw-1", "type": "switch"},
        {"id": "sw-2", "type": "switch"},
        {"id": "h1", "type": "host"},
        {"id": "h2", "type": "host"},
        {"id": "h3", "type": "host"},
        {"id": "hd", "type": "host"},
        {"id": "svc1", "type": "service"},
        {"id": "shop", "type": "business_service"},
    ],
    "relations": [
        {"from": "sw-1", "to": "rt-1", "type": "connected_to"},
        {"from": "sw-2", "to": "rt-1", "type": "connected_to"},
        {"from": "h1", "to": "sw-1", "type": "connected_to"},
        {"from": "h2", "to": "sw-1", "type": "connected_to"},
        {"from": "hd", "to": "sw-1", "type": "connected_to"},
        {"from": "hd", "to": "sw-2", "type": "connected_to"},
        {"from": "h3", "to": "sw-2", "type": "connected_to"},
        {"from": "svc1", "to": "h1", "type": "runs_on"},
        {"from": "shop", "to": "svc1", "type": "depends_on"},
    ],
}


@pytest.fixture
def small_cmdb_path(tmp_path: Path) -> Path:
    path = tmp_path / "cmdb.json"
    path.write_text(json.dumps(SMALL_CMDB))
    return path


@pytest.fixture
def small_topology(small_cmdb_path: Path) -> Topology:
    return load_topology(small_cmdb_path)


def stamp(seconds: float) -> str:
    """RFC 3339 time ``seconds`` after 2026-11-27T10:00:00Z."""
    whole = int(seconds)
    minutes, secs = divmod(whole, 60)
    hours, minutes = divmod(minutes, 60)
    frac = f".{round((seconds - whole) * 1000):03d}" if seconds != whole else ""
    return f"2026-11-27T{10 + hours:02d}:{minutes:02d}:{secs:02d}{frac}Z"


def alert(
    at: float, alertname: str, severity: str = "critical", status: str = "firing", **labels: str
) -> dict:
    """An Alertmanager-shaped alert received ``at`` seconds after BASE."""
    body = {
        "labels": {"alertname": alertname, "severity": severity, **labels},
        "annotations": {},
        "startsAt": BASE,
        "receivedAt": stamp(at),
        "status": status,
    }
    if status == "resolved":
        body["endsAt"] = stamp(at)
    return body


def label_pairs(
    vocab: Vocabulary, ptr: np.ndarray, keys: np.ndarray, values: np.ndarray
) -> list[list[tuple[str, str]]]:
    """Labels in CSR form (vocabulary ids) as (name, value) pairs per alert."""
    names, texts = vocab.string_array(keys).to_pylist(), vocab.string_array(values).to_pylist()
    return [
        list(zip(names[a:b], texts[a:b], strict=True))
        for a, b in zip(ptr[:-1] - ptr[0], ptr[1:] - ptr[0], strict=True)
    ]
