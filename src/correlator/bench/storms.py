"""Generated storms and CMDBs for the suites, built once and cached on disk.

The storms are :func:`correlator.scenarios.storm` (switch failures in waves,
with their hosts' and services' alerts, re-sends, resolves and noise), the
same generator the single-purpose scripts in ``benchmarks/`` use. Files are
written under a temporary name and renamed, so an interrupted run never
leaves a half-written file in the cache.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import msgspec

from correlator.scenarios import Storm, storm, write_cmdb, write_storm_parquet

# CIs per switch in a generated network (the switch, 40 hosts, 2 services each), and
# messages per failed switch when it is down for the shortest time the generator allows.
_CIS_PER_SWITCH = 121
_MESSAGES_PER_FAILURE = 1300


def default_cache() -> Path:
    """``$XDG_CACHE_HOME/correlator/bench`` (``~/.cache/correlator/bench`` by default)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "correlator" / "bench"


def failure_share(alerts: int, cis: int) -> float:
    """The share of switches to fail so ``alerts`` messages fit a network of ``cis`` CIs.

    The generator's default (half the switches) needs more messages than a
    small storm over a large network has; then fewer switches fail, each for
    longer than the shortest outage.
    """
    switches = max(cis / _CIS_PER_SWITCH, 1.0)
    wanted = alerts * 0.95 / _MESSAGES_PER_FAILURE
    return min(0.5, max(wanted / switches, 1 / switches))


def build_storm(alerts: int, cis: int, seed: int = 0) -> Storm:
    """The seeded storm of about ``alerts`` messages over about ``cis`` CIs."""
    return storm(alerts, cis, seed, failure_share=failure_share(alerts, cis))


def prepare_storm(alerts: int, cis: int, seed: int, cache: Path) -> tuple[Path, Path]:
    """The storm's Parquet recording and its CMDB under ``cache``, generated on first use."""
    cache.mkdir(parents=True, exist_ok=True)
    recording = cache / f"storm-{alerts}-{cis}-{seed}.parquet"
    cmdb = cache / f"storm-cmdb-{alerts}-{cis}-{seed}.json"
    if not recording.exists() or not cmdb.exists():
        generated = build_storm(alerts, cis, seed)
        partial = recording.with_name(recording.name + ".partial")
        write_storm_parquet(partial, generated)
        partial.replace(recording)
        partial = cmdb.with_name(cmdb.name + ".partial")
        write_cmdb(generated.cmdb, partial)
        partial.replace(cmdb)
    return recording, cmdb


def _rfc3339(ns: int) -> str:
    """Nanoseconds since the epoch as RFC 3339 with milliseconds, as Prometheus writes it."""
    moment = datetime.fromtimestamp(ns / 1e9, tz=UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def api_bodies(generated: Storm, size: int) -> list[bytes]:
    """The storm as ``POST /api/v2/alerts`` bodies of up to ``size`` alerts, in send order."""
    singles = api_messages(generated)
    return [b"[" + b",".join(singles[i : i + size]) + b"]" for i in range(0, len(singles), size)]


def api_messages(generated: Storm) -> list[bytes]:
    """The storm's messages as Alertmanager API alert objects (JSON), in send order.

    A firing message carries no ``endsAt``; a resolve carries the past
    ``endsAt`` the storm gives it, so a receiver sees it resolved on arrival,
    as Alertmanager's API defines it.
    """
    encoder = msgspec.json.Encoder()
    firing: list[bytes] = []
    resolved: list[bytes] = []
    for i, alert in enumerate(generated.alerts):
        body = {
            "labels": alert.labels,
            "annotations": alert.annotations,
            "startsAt": _rfc3339(int(generated.sources.starts_at[i])),
            "generatorURL": alert.generator_url,
        }
        firing.append(encoder.encode(body))
        body["endsAt"] = _rfc3339(int(generated.sources.ends_at[i]))
        resolved.append(encoder.encode(body))
    source = generated.messages.source.tolist()
    is_resolved = generated.messages.resolved.tolist()
    return [resolved[s] if r else firing[s] for s, r in zip(source, is_resolved, strict=True)]
