"""Alert recordings: how alert sources turn into messages, and the files they go to.

An alert *source* is one label set as Prometheus sees it: it starts firing
at ``startsAt``, is first received a little later, is re-sent on its own
interval while its condition holds and, when the condition clears at
``endsAt``, is sent once more as resolved. :func:`expand` turns a table of
sources into the messages a receiver gets, in ``receivedAt`` order, with
pure integer numpy arithmetic, so a 1,000,000-alert storm and a small
fixture come out of the same code and a fixture is the same on every
machine. The jitter of re-sends is a hash of the source's salt and the
re-send number, not a random draw, for the same reason.

Recordings are written as JSON lines (Alertmanager's API v2 alert objects
plus ``receivedAt`` and ``status``, sorted keys) or as Parquet with
:data:`correlator.schema.ALERT_SCHEMA`; ground truth and CMDB exports as
indented JSON with sorted keys, so every file is deterministic.
"""

from __future__ import annotations

import calendar
import json
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from correlator.schema import ALERT_SCHEMA, LABELS, TIMESTAMP
from correlator.timefmt import format_ns

NS = 1_000_000_000
MS = 1_000_000
# Every recording starts here: fixed, so recordings are reproducible.
START_NS = calendar.timegm((2026, 3, 2, 9, 0, 0)) * NS
# Go's zero time, which Alertmanager sends as "endsAt not set".
ZERO_TIME = "0001-01-01T00:00:00Z"
# Re-sends arrive up to this late after their nominal tick; resolves after endsAt.
RESEND_JITTER_NS = 250 * MS
RESOLVE_JITTER_NS = 1500 * MS

_RFC3339 = re.compile(
    r"(\d{4})-(\d\d)-(\d\d)[Tt ](\d\d):(\d\d):(\d\d)(?:\.(\d+))?(?:([Zz])|([+-])(\d\d):(\d\d))"
)


@dataclass(frozen=True)
class Scenario:
    """A recorded alert storm over a CMDB, with the ground truth of what caused it.

    ``alerts`` are Alertmanager API v2 alert objects plus ``receivedAt`` and
    ``status``, in ``receivedAt`` order; ``truth`` is described in
    :mod:`correlator.scenarios`.
    """

    name: str
    cmdb: dict[str, Any]
    alerts: list[dict[str, Any]]
    truth: dict[str, Any]


@dataclass(frozen=True, eq=False)
class Sources:
    """Timing columns of alert sources, one row per label set (int64 ns, bool, uint64).

    A source is sent at ``first_received`` and every ``interval`` after it
    while the send time is before ``ends_at``; if ``resolves``, it is sent
    resolved just after ``ends_at``. ``salt`` seeds its re-send jitter.
    """

    starts_at: np.ndarray
    first_received: np.ndarray
    interval: np.ndarray
    ends_at: np.ndarray
    resolves: np.ndarray
    salt: np.ndarray

    def __post_init__(self) -> None:
        if np.any(self.first_received < self.starts_at):
            raise ValueError("a source is received before it starts")
        if np.any(self.first_received >= self.ends_at):
            raise ValueError("a source ends before it is first received")
        if np.any(self.interval <= 0):
            raise ValueError("a source has a non-positive re-send interval")

    def __len__(self) -> int:
        return len(self.starts_at)


@dataclass(frozen=True, eq=False)
class Messages:
    """The messages sources send, in ``receivedAt`` order (ties by source, firing first)."""

    source: np.ndarray
    received_at: np.ndarray
    resolved: np.ndarray

    def __len__(self) -> int:
        return len(self.source)


def expand(sources: Sources) -> Messages:
    """Every firing re-send and resolve of ``sources``, sorted by receive time."""
    sends = (sources.ends_at - sources.first_received - 1) // sources.interval + 1
    source = np.repeat(np.arange(len(sources), dtype=np.int64), sends)
    nth = np.arange(len(source), dtype=np.int64) - np.repeat(np.cumsum(sends) - sends, sends)
    received = sources.first_received[source] + nth * sources.interval[source]
    jitter = _jitter(sources.salt[source] + nth.astype(np.uint64), RESEND_JITTER_NS)
    received += np.where(nth > 0, jitter, 0)
    keep = received < sources.ends_at[source]
    source, received = source[keep], received[keep]
    fired = len(source)

    resolving = np.flatnonzero(sources.resolves)
    resolved_at = sources.ends_at[resolving] + _jitter(~sources.salt[resolving], RESOLVE_JITTER_NS)
    source = np.concatenate([source, resolving])
    received = np.concatenate([received, resolved_at])
    resolved = np.arange(len(source)) >= fired
    order = np.lexsort((resolved, source, received))
    return Messages(source[order], received[order], resolved[order])


def render(
    alerts: Sequence[tuple[dict[str, str], dict[str, str], str]],
    sources: Sources,
    messages: Messages,
) -> list[dict[str, Any]]:
    """Alertmanager alert objects (plus ``receivedAt``, ``status``) for ``messages``.

    ``alerts[i]`` is source i's labels, annotations and generator URL.
    ``startsAt`` and ``endsAt`` are printed like Go's RFC3339Nano (trailing
    zeros trimmed), ``receivedAt`` with nine fractional digits, as the
    daemon stamps it.
    """
    out = []
    rows = zip(
        messages.source.tolist(),
        messages.received_at.tolist(),
        messages.resolved.tolist(),
        strict=True,
    )
    for src, received, resolved in rows:
        labels, annotations, url = alerts[src]
        out.append(
            {
                "labels": dict(labels),
                "annotations": dict(annotations),
                "startsAt": format_time(int(sources.starts_at[src])),
                "endsAt": format_time(int(sources.ends_at[src])) if resolved else ZERO_TIME,
                "generatorURL": url,
                "receivedAt": format_time(received, fixed=True),
                "status": "resolved" if resolved else "firing",
            }
        )
    return out


def format_time(ns: int, *, fixed: bool = False) -> str:
    """RFC 3339 UTC text of ``ns``: Go's RFC3339Nano style, or nine digits if ``fixed``."""
    if not fixed:
        return format_ns(ns)
    seconds, fraction = divmod(ns, NS)
    return f"{time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime(seconds))}.{fraction:09d}Z"


def parse_time(text: str) -> int | None:
    """Nanoseconds since the epoch of RFC 3339 ``text``; None for Go's zero time."""
    match = _RFC3339.fullmatch(text)
    if match is None:
        msg = f"not an RFC 3339 time: {text!r}"
        raise ValueError(msg)
    year, month, day, hour, minute, second, digits, zulu, sign, off_h, off_m = match.groups()
    if year == "0001":
        return None
    seconds = calendar.timegm(
        (int(year), int(month), int(day), int(hour), int(minute), int(second))
    )
    if not zulu:
        offset = int(off_h) * 3600 + int(off_m) * 60
        seconds -= offset if sign == "+" else -offset
    return seconds * NS + int(((digits or "") + "000000000")[:9])


def write_jsonl(alerts: Iterable[Mapping[str, Any]], path: str | Path) -> None:
    """Write one alert per line, keys sorted, no spaces: the replayable JSON recording."""
    lines = (json.dumps(alert, sort_keys=True, separators=(",", ":")) + "\n" for alert in alerts)
    Path(path).write_text("".join(lines), encoding="utf-8", newline="\n")


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """The alerts of a JSON-lines recording."""
    with Path(path).open(encoding="utf-8") as lines:
        return [json.loads(line) for line in lines if line.strip()]


def alerts_table(alerts: Sequence[Mapping[str, Any]]) -> pa.Table:
    """Alert objects as a table with the canonical schema (Go's zero time becomes null)."""

    def times(field: str) -> pa.Array:
        values = [parse_time(a[field]) if a.get(field) else None for a in alerts]
        return pa.array(values, type=pa.int64()).cast(TIMESTAMP)

    def maps(field: str) -> pa.Array:
        values = [list(a[field].items()) if a.get(field) is not None else None for a in alerts]
        return pa.array(values, type=LABELS)

    columns = {
        "labels": maps("labels"),
        "annotations": maps("annotations"),
        "startsAt": times("startsAt"),
        "endsAt": times("endsAt"),
        "generatorURL": pa.array([a.get("generatorURL") for a in alerts], pa.string()),
        "receivedAt": times("receivedAt"),
        "status": pa.array([a.get("status") for a in alerts], pa.string()),
    }
    return pa.table(columns, schema=ALERT_SCHEMA)


def write_parquet(alerts: Sequence[Mapping[str, Any]], path: str | Path) -> None:
    """Write alert objects as Parquet with :data:`correlator.schema.ALERT_SCHEMA`."""
    pq.write_table(alerts_table(alerts), Path(path), compression="zstd")


def write_truth(truth: Mapping[str, Any], path: str | Path) -> None:
    """Write a ground-truth document (``NAME.truth.json``)."""
    _write_json(truth, path)


def write_cmdb(cmdb: Mapping[str, Any], path: str | Path) -> None:
    """Write a CMDB export in the JSON shape the topology loader reads."""
    _write_json(cmdb, path)


def write_scenario(scenario: Scenario, directory: str | Path) -> list[Path]:
    """Write ``NAME.jsonl`` and ``NAME.truth.json`` into ``directory``; return their paths.

    The CMDB is not written: recordings usually share one, see :func:`write_cmdb`.
    """
    directory = Path(directory)
    recording = directory / f"{scenario.name}.jsonl"
    truth = directory / f"{scenario.name}.truth.json"
    write_jsonl(scenario.alerts, recording)
    write_truth(scenario.truth, truth)
    return [recording, truth]


def _write_json(document: Mapping[str, Any], path: str | Path) -> None:
    text = json.dumps(document, sort_keys=True, indent=1) + "\n"
    Path(path).write_text(text, encoding="utf-8", newline="\n")


def _jitter(keys: np.ndarray, bound: int) -> np.ndarray:
    """Pseudo-random offsets in [0, bound) ns: the splitmix64 finalizer of ``keys``."""
    x = keys.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    x ^= x >> np.uint64(31)
    return (x % np.uint64(bound)).astype(np.int64)
