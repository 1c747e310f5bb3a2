"""Large alert storms for benchmarks, built as columns rather than alert objects.

:func:`storm` fails many switches of a generated network in waves (the
switches of a wave within five minutes of each other), keeps them down long
enough to reach the requested number of messages, and adds noise; the
per-message columns come from the same
:func:`~correlator.scenarios.recording.expand` as the small scenarios.
Only the distinct label sets (one per alert source, tens of thousands for a
million messages) are Python objects; their fingerprints give the ground
truth. :func:`write_storm_parquet` writes the canonical Arrow schema
straight from the columns.

Switches that share a dual-homed host are never down at the same time, so
each down CI has exactly one cause. Randomness is numpy's ``default_rng(seed)``: reproducible on one
numpy version, not promised across versions, which is fine for benchmarks
(no committed fixture depends on it).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from correlator.fingerprint import fingerprint, format_fingerprint
from correlator.scenarios.catalog import (
    HOST_NOISE,
    INFO_NOISE,
    MOUNTPOINTS,
    SERVICE_NOISE,
    SYMPTOMS,
    UNKNOWN_NOISE,
    Alert,
    make_alert,
)
from correlator.scenarios.network import CmdbIndex, generate_network, network_size
from correlator.scenarios.recording import MS, NS, START_NS, Messages, Sources, expand
from correlator.scenarios.storms import INFO_NOISE_SHARE, SYMPTOM_ALERT_SHARE, UNKNOWN_NOISE_SHARE
from correlator.schema import ALERT_SCHEMA, LABELS, TIMESTAMP

_ONSET_S = (60, 360)  # failures start within these seconds of the recording start
_MIN_DURATION_S = 60
_NOISE_DURATION_S = (60, 1800)
_WAVE_GAP_S = 420  # beyond the longest failure: onset spread, resolve delay, margin


@dataclass(frozen=True, eq=False)
class Storm:
    """A columnar alert storm: per-source alerts and timing, per-message columns.

    ``alerts[i]`` is source i's labels, annotations and generator URL;
    ``messages.source`` indexes it for every message, in ``receivedAt`` order.
    """

    name: str
    cmdb: dict[str, Any]
    truth: dict[str, Any]
    alerts: list[Alert]
    sources: Sources
    messages: Messages

    def __len__(self) -> int:
        return len(self.messages)


def storm(
    total_alerts: int = 1_000_000,
    ci_count: int = 20_000,
    seed: int = 0,
    *,
    noise_share: float = 0.05,
    failure_share: float = 0.5,
) -> Storm:
    """About ``total_alerts`` messages over a generated network of about ``ci_count`` CIs.

    ``failure_share`` of the switches fail, in waves: the switches of one
    wave share no host and fail within five minutes of each other; the next
    wave starts after the previous one has resolved. (Two switches that
    share a dual-homed host must not be down together, or that host would
    be down by neither alone.) Fewer switches fail when failing them for a
    minute would already exceed the budget. The failure duration is solved
    so that failure alerts, re-sends and resolves make up ``1 - noise_share``
    of the total; noise makes up the rest.
    """
    if total_alerts < 1 or not 0 <= noise_share < 1 or not 0 < failure_share <= 1:
        msg = (
            "storm: need total_alerts >= 1, 0 <= noise_share < 1, 0 < failure_share <= 1; "
            f"got {total_alerts}, {noise_share}, {failure_share}"
        )
        raise ValueError(msg)
    cmdb = generate_network(**network_size(ci_count), seed=seed)
    idx = CmdbIndex(cmdb)
    rng = np.random.default_rng(seed)
    roots, waves = _waves(idx, rng, failure_share)
    budget = round(total_alerts * (1 - noise_share))
    alerts, causes, is_root = _failure_alerts(idx, rng, roots)

    n = len(alerts)
    base = rng.uniform(*_ONSET_S, len(roots)) * NS
    stretch = rng.uniform(0.75, 1.25, len(roots))
    delay = np.where(is_root, rng.uniform(5, 20, n), rng.uniform(10, 60, n)) * NS
    receive = rng.integers(0, 1500 * MS, n)
    interval = rng.integers(15_000, 60_001, n) * MS
    clear = rng.uniform(5, 45, n) * NS

    def timing(duration: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Onset per failure; startsAt, first receive and endsAt per source."""
        onset = START_NS + base + waves * (1.25 * duration + _WAVE_GAP_S * NS)
        starts_at = _ms(onset[causes] + delay)
        ends_at = _ms(onset[causes] + stretch[causes] * duration + clear)
        return onset, starts_at, starts_at + receive, ends_at

    def messages(duration: int) -> np.ndarray:
        _, _, first, ends_at = timing(duration)
        return (ends_at - first - 1) // interval + 2

    shortest = _MIN_DURATION_S * NS
    per_failure = np.bincount(causes, messages(shortest), len(roots))
    keep = max(1, int(np.searchsorted(np.cumsum(per_failure), budget, side="right")))
    if keep < len(roots):
        kept = causes < keep
        roots, waves, base, stretch = roots[:keep], waves[:keep], base[:keep], stretch[:keep]
        alerts = [alert for alert, k in zip(alerts, kept, strict=True) if k]
        causes, delay, receive, interval, clear = (
            column[kept] for column in (causes, delay, receive, interval, clear)
        )
    low, high = shortest, 30 * 86_400 * NS
    while high - low > NS:
        mid = (low + high) // 2
        low, high = (mid, high) if messages(mid).sum() < budget else (low, mid)
    onset, starts_at, first, ends_at = timing(high)

    down_all = set().union(*(idx.down([root]) for root in roots))
    noise_budget = total_alerts - int(messages(high).sum())
    noise = _noise(idx, rng, down_all, noise_budget, (START_NS, int(ends_at.max())))
    count = len(alerts) + len(noise.alerts)
    sources = Sources(
        starts_at=np.concatenate([starts_at, noise.starts_at]),
        first_received=np.concatenate([first, noise.first_received]),
        interval=np.concatenate([interval, noise.interval]),
        ends_at=np.concatenate([ends_at, noise.ends_at]),
        resolves=np.ones(count, bool),
        salt=rng.integers(0, 2**63, count, dtype=np.uint64),
    )
    order = sorted(range(len(roots)), key=lambda c: (int(onset[c]), roots[c]))
    name = f"storm-{total_alerts}-{ci_count}"
    truth = _truth(name, seed, alerts, causes, roots, order, noise)
    return Storm(name, cmdb, truth, alerts + noise.alerts, sources, expand(sources))


def _failure_alerts(
    idx: CmdbIndex, rng: np.random.Generator, roots: list[str]
) -> tuple[list[Alert], np.ndarray, np.ndarray]:
    """Each root's SwitchDown and its down hosts' and services' alerts (95% of them).

    Returns the alerts, the index of the root each belongs to, and which are roots.
    """
    alerts: list[Alert] = []
    cause_of: list[int] = []
    position = {ci: i for i, ci in enumerate(idx.cis)}
    for cause, root in enumerate(roots):
        down = [ci for ci in idx.down([root]) if idx.cis[ci]["type"] in ("host", "service")]
        down.sort(key=position.__getitem__)
        draws = rng.random(len(down))
        alerts.append(make_alert("SwitchDown", root, "switch"))
        cause_of.append(cause)
        for ci, draw in zip(down, draws.tolist(), strict=True):
            if draw >= SYMPTOM_ALERT_SHARE:
                continue
            ci_type = idx.cis[ci]["type"]
            names, weights = SYMPTOMS[ci_type]
            alertname = names[rng.choice(len(names), p=weights)]
            switch = idx.deps[ci][0] if ci_type == "host" else None
            alerts.append(make_alert(alertname, ci, ci_type, switch=switch))
            cause_of.append(cause)
    causes = np.array(cause_of, dtype=np.int64)
    is_root = np.r_[True, causes[1:] != causes[:-1]]
    return alerts, causes, is_root


def storm_table(storm: Storm) -> pa.Table:
    """The storm's messages as a table with :data:`correlator.schema.ALERT_SCHEMA`."""
    src = storm.messages.source
    resolved = storm.messages.resolved
    sources = storm.sources
    urls = pa.array([alert.generator_url for alert in storm.alerts], pa.string())
    columns = {
        "labels": _map_column([alert.labels for alert in storm.alerts], src),
        "annotations": _map_column([alert.annotations for alert in storm.alerts], src),
        "startsAt": pa.array(sources.starts_at[src]).cast(TIMESTAMP),
        "endsAt": pa.array(sources.ends_at[src], mask=~resolved).cast(TIMESTAMP),
        "generatorURL": urls.take(pa.array(src)),
        "receivedAt": pa.array(storm.messages.received_at).cast(TIMESTAMP),
        "status": pa.array(["firing", "resolved"]).take(pa.array(resolved.astype(np.int8))),
    }
    return pa.table(columns, schema=ALERT_SCHEMA)


def write_storm_parquet(path: str | Path, storm: Storm) -> None:
    """Write the storm as Parquet with the canonical schema, straight from its columns."""
    pq.write_table(storm_table(storm), Path(path), compression="zstd")


@dataclass(frozen=True, eq=False)
class _Noise:
    alerts: list[Alert]
    informational: np.ndarray
    starts_at: np.ndarray
    first_received: np.ndarray
    interval: np.ndarray
    ends_at: np.ndarray


def _noise(
    idx: CmdbIndex, rng: np.random.Generator, down: set[str], budget: int, span: tuple[int, int]
) -> _Noise:
    """Distinct noise alerts with about ``budget`` messages in all, spread over ``span``."""
    length = span[1] - span[0] - _MIN_DURATION_S * NS
    lasting = np.array(_NOISE_DURATION_S) * NS
    per_source = min(lasting.mean(), length) / (32.5 * NS) + 2  # over the mean re-send interval
    count = int(max(0, budget) / per_source * 1.5) + 8
    hosts = [ci for ci in idx.of_type("host") if ci not in down]
    services = [ci for ci in idx.of_type("service") if ci not in down]

    shares = [UNKNOWN_NOISE_SHARE, INFO_NOISE_SHARE, 1 - UNKNOWN_NOISE_SHARE - INFO_NOISE_SHARE]
    kinds = rng.choice(3, count, p=shares)
    # Unknown CIs get distinct lab-N ids (the CMDB has none); their alert name is drawn below.
    pools: list[list[tuple[str, str, str]]] = [
        [(f"lab-{i}", "host", "") for i in range(1, 1 + count)],
        [(ci, idx.cis[ci]["type"], name) for ci in hosts + services for name in INFO_NOISE],
        [(ci, "host", name) for ci in hosts for name in HOST_NOISE]
        + [(ci, "service", name) for ci in services for name in SERVICE_NOISE],
    ]
    picks: list[tuple[str, str, str]] = []
    informational = []
    for kind, pool in enumerate(pools):
        wanted = min(int((kinds == kind).sum()), len(pool))
        for p in rng.choice(len(pool), wanted, replace=False):
            ci, ci_type, name = pool[p]
            if kind == 0:
                name = UNKNOWN_NOISE[rng.integers(len(UNKNOWN_NOISE))]
            picks.append((ci, ci_type, name))
            informational.append(kind == 1)
    shuffle = rng.permutation(len(picks))
    picks = [picks[i] for i in shuffle]
    n = len(picks)
    fired = span[0] + rng.uniform(0, 1, n) * length
    starts_at = _ms(fired + rng.uniform(0, 5, n) * NS)
    first = starts_at + rng.integers(0, 1500 * MS, n)
    interval = rng.integers(15_000, 60_001, n) * MS
    ends_at = _ms(np.minimum(fired + rng.uniform(*lasting, n), span[1]) + 5 * NS)
    cut = int(np.searchsorted(np.cumsum((ends_at - first - 1) // interval + 2), budget)) + 1
    cut = min(n, cut) if budget > 0 else 0
    alerts = []
    for ci, ci_type, name in picks[:cut]:
        extra = None
        if name == "DiskSpaceLow":
            extra = {"mountpoint": MOUNTPOINTS[rng.integers(len(MOUNTPOINTS))]}
        switch = idx.deps[ci][0] if ci in idx.cis and ci_type == "host" else None
        alerts.append(make_alert(name, ci, ci_type, switch=switch, extra=extra))
    return _Noise(
        alerts,
        np.array(informational, bool)[shuffle][:cut],
        starts_at[:cut],
        first[:cut],
        interval[:cut],
        ends_at[:cut],
    )


def _waves(
    idx: CmdbIndex, rng: np.random.Generator, failure_share: float
) -> tuple[list[str], np.ndarray]:
    """``failure_share`` of the switches, wave by wave; no two in a wave share a host."""
    switches = idx.of_type("switch")
    wanted = max(1, round(failure_share * len(switches)))
    wave_of: dict[str, int] = {}
    for i in rng.permutation(len(switches))[:wanted].tolist():
        switch = switches[i]
        peers = {dep for host in idx.dependents[switch] for dep in idx.deps[host]}
        busy = {wave_of[peer] for peer in peers if peer in wave_of}
        wave_of[switch] = min(set(range(len(busy) + 1)) - busy)
    roots = sorted(wave_of, key=wave_of.__getitem__)
    return roots, np.array([wave_of[root] for root in roots], dtype=np.int64)


def _truth(
    name: str,
    seed: int,
    alerts: list[Alert],
    causes: np.ndarray,
    roots: list[str],
    order: list[int],
    noise: _Noise,
) -> dict[str, Any]:
    fingerprints: list[list[str]] = [[] for _ in roots]
    for alert, cause in zip(alerts, causes.tolist(), strict=True):
        fingerprints[cause].append(format_fingerprint(fingerprint(alert.labels)))
    listed = [
        {
            "id": f"cause-{rank + 1}",
            "root_ci": roots[c],
            "inferred": False,
            "kind": "switch_failure",
            "fingerprints": sorted(fingerprints[c]),
        }
        for rank, c in enumerate(order)
    ]
    classes = np.where(noise.informational, "informational", "noise").tolist()
    noise_map = {
        format_fingerprint(fingerprint(alert.labels)): cls
        for alert, cls in zip(noise.alerts, classes, strict=True)
    }
    return {"scenario": name, "seed": seed, "causes": listed, "noise": noise_map}


def _map_column(maps: list[dict[str, str]], index: np.ndarray) -> pa.MapArray:
    """A map column whose row i is ``maps[index[i]]``, gathered without Python loops."""
    lengths = np.array([len(m) for m in maps], dtype=np.int64)
    starts = np.cumsum(lengths) - lengths
    keys = pa.array([k for m in maps for k in m], pa.string())
    values = pa.array([v for m in maps for v in m.values()], pa.string())
    row_lengths = lengths[index]
    offsets = np.zeros(len(index) + 1, dtype=np.int32)
    np.cumsum(row_lengths, out=offsets[1:])
    flat = np.repeat(starts[index] - offsets[:-1], row_lengths) + np.arange(offsets[-1])
    take = pa.array(flat)
    return pa.MapArray.from_arrays(
        pa.array(offsets), keys.take(take), values.take(take), type=LABELS
    )


def _ms(ns: np.ndarray) -> np.ndarray:
    return (np.asarray(ns).astype(np.int64) // MS) * MS
