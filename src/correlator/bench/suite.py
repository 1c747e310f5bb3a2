"""The suites and the user's own recordings, from start to report directory.

``quick`` (under 2 minutes) and ``full`` (under 20 minutes on a 2-core
machine) differ only in sizes. A suite measures, in order: the scaling
curves (storm size, then topology size), a generated storm replayed at full
speed and paced at x100 / x10 / x1, accuracy per scenario kind, and, with
``--peer alertmanager``, Alertmanager side by side. ``--recording`` replays
the user's recording instead (and ``--compare-rules`` two rule sets on it).
Every figure is the median of ``runs`` timed runs after a warm-up; any
failed run stops the bench with :class:`~correlator.bench.figures.BenchError`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from correlator.bench import accuracy, peer, scaling
from correlator.bench.charts import draw_charts
from correlator.bench.figures import MIN_RUNS, BenchError, repeat, summary
from correlator.bench.machine import describe, load_average
from correlator.bench.progress import Progress
from correlator.bench.replayer import read, replay_run
from correlator.bench.report import write_report
from correlator.bench.storms import api_bodies, build_storm, default_cache, prepare_storm
from correlator.rules import RuleSet, load_rules
from correlator.topology import Topology, load_topology


@dataclass(frozen=True)
class Suite:
    """The sizes one named suite measures."""

    name: str
    storm_sizes: tuple[int, ...]
    storm_cis: int
    topology_sizes: tuple[int, ...]
    topology_alerts: int
    replay_alerts: int
    replay_cis: int
    speeds: tuple[float, ...]
    max_seconds: float
    accuracy_seeds: int
    peer_alerts: int
    runs: int = MIN_RUNS


SUITES = {
    "quick": Suite(
        name="quick",
        storm_sizes=(10_000, 100_000),
        storm_cis=20_000,
        topology_sizes=(1_000, 10_000),
        topology_alerts=10_000,
        replay_alerts=20_000,
        replay_cis=20_000,
        speeds=(100.0, 10.0, 1.0),
        max_seconds=1.0,
        accuracy_seeds=1,
        peer_alerts=10_000,
    ),
    "full": Suite(
        name="full",
        storm_sizes=(10_000, 100_000, 1_000_000, 10_000_000),
        storm_cis=20_000,
        topology_sizes=(1_000, 10_000, 100_000, 1_000_000),
        topology_alerts=100_000,
        replay_alerts=100_000,
        replay_cis=20_000,
        speeds=(100.0, 10.0, 1.0),
        max_seconds=4.0,
        accuracy_seeds=3,
        peer_alerts=100_000,
    ),
}
RECORDING_SPEEDS = (100.0, 10.0, 1.0)
RECORDING_MAX_SECONDS = 10.0


@dataclass(frozen=True)
class Options:
    """What ``correlator bench`` was asked to do."""

    out: Path
    suite: str = "quick"
    runs: int | None = None
    max_seconds: float | None = None
    peer: str | None = None
    recording: Path | None = None
    topology: Path | None = None
    rules: Path | None = None
    compare_rules: tuple[Path, Path] | None = None
    cache: Path | None = None
    seed: int = 0


def _replay_section(
    label: str,
    recording: Path,
    topology: Topology | None,
    rules: RuleSet | None,
    speeds: Sequence[float],
    runs: int,
    max_seconds: float,
    progress: Progress,
) -> list[dict[str, Any]]:
    """Full speed and each paced speed, one entry each, with its figures."""
    entries = []
    for speed in (None, *speeds):
        name = "full speed" if speed is None else f"x{speed:g}"
        progress.step(f"replay {label} {name}")
        capped: list[bool] = []

        def once(speed: float | None = speed, capped: list[bool] = capped) -> dict[str, float]:
            t0 = time.perf_counter()
            decoded = read(recording)
            result = replay_run(
                decoded,
                topology,
                rules,
                speed=speed,
                max_seconds=None if speed is None else max_seconds,
                read_seconds=time.perf_counter() - t0,
            )
            capped.append(result.capped)
            return result.metrics() | {"alerts_fed": float(result.fed)}

        figures = repeat(once, runs, what=f"replay of {label} at {name}")
        entries.append(
            {
                "recording": label,
                "speed": name,
                "capped_at_s": max_seconds if speed is not None and any(capped) else None,
                "figures": summary(figures),
            }
        )
        progress.advance()
    return entries


def _load(options: Options) -> tuple[Topology | None, RuleSet | None]:
    topology = load_topology(options.topology) if options.topology else None
    rules = load_rules(options.rules) if options.rules else None
    return topology, rules


def _steps(suite: Suite, options: Options) -> int:
    if options.recording is not None:
        per = 1 + len(RECORDING_SPEEDS)
        return per * (2 if options.compare_rules else 1) + 1
    steps = len(suite.storm_sizes) + len(suite.topology_sizes) + 1 + len(suite.speeds)
    steps += len(accuracy.SCENARIOS) + 1
    return steps + (2 if options.peer else 0)


def run_bench(options: Options) -> dict[str, Any]:
    """Run what ``options`` ask for and write the report directory; the results as JSON data."""
    if options.suite not in SUITES:
        msg = f"unknown suite {options.suite!r} (choose from {', '.join(SUITES)})"
        raise BenchError(msg)
    suite = SUITES[options.suite]
    runs = options.runs if options.runs is not None else suite.runs
    if runs < 1:
        msg = f"--runs must be at least 1, got {runs}"
        raise BenchError(msg)
    if options.max_seconds is not None:
        suite = replace(suite, max_seconds=options.max_seconds)
    elif options.recording is not None:
        suite = replace(suite, max_seconds=RECORDING_MAX_SECONDS)
    if options.compare_rules is not None and options.recording is None:
        msg = "--compare-rules needs --recording: the rule sets are compared on a recording"
        raise BenchError(msg)
    if options.peer is not None and options.recording is not None:
        msg = "--peer runs with a suite's generated storm, not with --recording"
        raise BenchError(msg)
    binary = None
    if options.peer is not None:
        if options.peer != "alertmanager":
            msg = f"unknown peer {options.peer!r} (only alertmanager is supported)"
            raise BenchError(msg)
        binary = peer.alertmanager_binary()
        if binary is None:
            msg = "--peer alertmanager: no alertmanager on PATH (Debian: prometheus-alertmanager)"
            raise BenchError(msg)
    cache = options.cache or default_cache()
    options.out.mkdir(parents=True, exist_ok=True)
    started = time.time()
    results: dict[str, Any] = {
        "kind": "recording" if options.recording else "suite",
        "suite": asdict(suite) if options.recording is None else None,
        "runs": runs,
        "warmup_runs": 1,
        "started": datetime.fromtimestamp(started, UTC).isoformat(timespec="seconds"),
        "machine": describe(),
        "load_average": {"start": load_average()},
        "cpu_pressure": _cpu_pressure(),
    }
    progress = Progress(_steps(suite, options))
    try:
        if options.recording is not None:
            results |= _recording(options, options.recording, suite, runs, progress)
        else:
            results |= _suite(suite, runs, cache, options.seed, binary, progress)
        progress.step("report")
        results["load_average"]["end"] = load_average()
        results["seconds"] = time.time() - started
        results["charts"] = draw_charts(results, options.out)
        write_report(results, options.out)
        progress.advance()
    finally:
        progress.close()
    return results


def _cpu_pressure() -> str:
    """``/proc/pressure/cpu``'s first line, when the kernel has it: how contended the CPUs were."""
    try:
        return Path("/proc/pressure/cpu").read_text().splitlines()[0]
    except (OSError, IndexError):
        return "not available"


def _recording(
    options: Options, recording: Path, suite: Suite, runs: int, progress: Progress
) -> dict[str, Any]:
    if not recording.exists():
        msg = f"--recording {recording}: no such file or folder"
        raise BenchError(msg)
    topology, rules = _load(options)
    out: dict[str, Any] = {
        "recording": str(recording),
        "topology": str(options.topology) if options.topology else None,
        "rules": str(options.rules) if options.rules else None,
        "max_seconds": suite.max_seconds,
    }
    out["replay"] = _replay_section(
        recording.name,
        recording,
        topology,
        rules,
        RECORDING_SPEEDS,
        runs,
        suite.max_seconds,
        progress,
    )
    if options.compare_rules is not None:
        old, new = options.compare_rules
        sides = []
        for path in (old, new):
            progress.step(f"rules {path.name}")
            ruleset = load_rules(path)

            def once(ruleset: RuleSet = ruleset) -> dict[str, float]:
                t0 = time.perf_counter()
                decoded = read(recording)
                return replay_run(
                    decoded, topology, ruleset, read_seconds=time.perf_counter() - t0
                ).metrics()

            sides.append(
                {"rules": str(path), "figures": summary(repeat(once, runs, what=f"{path}"))}
            )
            progress.advance()
        out["compare_rules"] = sides
    return out


def _suite(
    suite: Suite, runs: int, cache: Path, seed: int, binary: str | None, progress: Progress
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    storm_points = []
    for alerts in suite.storm_sizes:
        progress.step(f"scaling: {alerts:,} alerts over {suite.storm_cis:,} CIs")
        storm_points.append(
            scaling.measure(alerts, suite.storm_cis, runs=runs, seed=seed, cache=cache)
        )
        progress.advance()
    topology_points = []
    for cis in suite.topology_sizes:
        progress.step(f"scaling: {suite.topology_alerts:,} alerts over {cis:,} CIs")
        topology_points.append(
            scaling.measure(suite.topology_alerts, cis, runs=runs, seed=seed, cache=cache)
        )
        progress.advance()
    out["scaling"] = {
        "threshold_elasticity": scaling.SUPER_LINEAR,
        "storm": [_point(p) for p in storm_points],
        "topology": [_point(p) for p in topology_points],
        "storm_growth": scaling.growth(storm_points, "alerts"),
        "topology_growth": scaling.growth(topology_points, "cis"),
    }
    recording, cmdb = prepare_storm(suite.replay_alerts, suite.replay_cis, seed, cache)
    topology = load_topology(cmdb)
    out["replay"] = _replay_section(
        recording.name, recording, topology, None, suite.speeds, runs, suite.max_seconds, progress
    )
    table = []
    for row in accuracy.rows(suite.accuracy_seeds):
        progress.step(f"accuracy: {row.scenario}")
        table.append(row)
        progress.advance()
    result = accuracy.verdict(table)
    out["accuracy"] = {
        "seeds": suite.accuracy_seeds,
        "rows": [row.as_json() for row in table],
        "verdict": asdict(result) | {"met": result.met},
    }
    if binary is not None:
        out["peer"] = _peer(binary, suite, runs, seed, cache, progress)
    return out


def _point(point: scaling.Point) -> dict[str, Any]:
    return {"alerts_requested": point.alerts, "cis_requested": point.cis, **point.result}


def _peer(
    binary: str, suite: Suite, runs: int, seed: int, cache: Path, progress: Progress
) -> dict[str, Any]:
    progress.step(f"peer: building {suite.peer_alerts:,}-alert storm")
    generated = build_storm(suite.peer_alerts, suite.storm_cis, seed)
    bodies = api_bodies(generated, peer.BODY_ALERTS)
    _, cmdb = prepare_storm(suite.peer_alerts, suite.storm_cis, seed, cache)
    progress.advance()
    progress.step("peer: correlator daemon and alertmanager")
    both = peer.compare(binary, cmdb, bodies, len(generated), runs)
    progress.advance()
    return {
        "alertmanager": peer.alertmanager_version(binary),
        "alerts": len(generated),
        "cis": suite.storm_cis,
        "knobs": {
            "group_wait": peer.GROUP_WAIT,
            "group_interval": peer.GROUP_INTERVAL,
            "repeat_interval": peer.REPEAT_INTERVAL,
            "correlator settle": peer.GROUP_WAIT,
            "correlator update_interval": peer.GROUP_INTERVAL,
            "quiet_s": peer.QUIET_S,
            "body_alerts": peer.BODY_ALERTS,
            "connections": peer.CONNECTIONS,
            "cpus": os.cpu_count(),
        },
        "figures": {name: summary(figures) for name, figures in both.items()},
    }
