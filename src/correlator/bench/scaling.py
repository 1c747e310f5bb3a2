"""Scaling curves: throughput, latency and peak RSS against storm size and topology size.

Each size runs in its own process (``python -m correlator.bench.scaling``),
first to generate its storm into the cache, then to measure it, so the peak
RSS (``ru_maxrss`` of the measuring process) belongs to that size alone and
includes no generator memory. The measuring process loads the CMDB, then
replays the Parquet recording at full speed (read, normalize, correlate, in
the daemon's batch size) once to warm up and ``runs`` times more.

Growth is judged on the cost per alert (median seconds, less the pipeline's
setup, whose state is sized by the topology, / alerts): between
two neighbouring sizes its elasticity ``log(c2/c1) / log(x2/x1)`` is 0 when
the cost per alert is flat (linear total time) and 1 when the total time grows
with the square of the size. Both wall time and CPU time (all threads of the
measuring process) are reported; a step whose CPU-time elasticity is above
:data:`SUPER_LINEAR` is flagged, because on a shared machine wall time also
measures the neighbours.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import correlator
from correlator.bench.figures import BenchError, repeat, summary
from correlator.bench.machine import peak_rss_mib
from correlator.bench.replayer import read, replay_run
from correlator.bench.storms import prepare_storm

SUPER_LINEAR = 0.15
WORKER_TIMEOUT_S = 900


@dataclass(frozen=True)
class Point:
    """One size's measurement, as the worker reported it."""

    alerts: int
    cis: int
    result: dict[str, Any]

    def median(self, name: str) -> float:
        """The median of figure ``name``."""
        return float(self.result["figures"][name]["median"])

    @property
    def peak_rss_mib(self) -> float:
        """The measuring process's peak resident memory."""
        return float(self.result["peak_rss_mib"])

    @property
    def us_per_alert(self) -> float:
        """Median wall time per alert read, pipeline setup left out, in microseconds."""
        spent = self.median("seconds") - self.median("setup_seconds")
        return spent / max(self.result["alerts"], 1) * 1e6

    @property
    def cpu_us_per_alert(self) -> float:
        """Median CPU time (all threads) per alert read, pipeline setup left out, in µs."""
        spent = self.median("cpu_seconds") - self.median("setup_cpu_seconds")
        return spent / max(self.result["alerts"], 1) * 1e6


def child_env() -> dict[str, str]:
    """This environment, with the installed ``correlator`` package importable in a child."""
    env = dict(os.environ)
    package_root = str(Path(correlator.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    return env


def _worker(args: list[str], what: str) -> dict[str, Any]:
    """Run the worker with ``args``; its JSON answer, or :class:`BenchError` with its stderr."""
    command = [sys.executable, "-m", "correlator.bench.scaling", *args]
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, env=child_env(), timeout=WORKER_TIMEOUT_S
        )
    except subprocess.TimeoutExpired as exc:
        msg = f"{what}: worker took over {WORKER_TIMEOUT_S} s"
        raise BenchError(msg) from exc
    if done.returncode != 0:
        msg = f"{what}: worker exited {done.returncode}:\n{done.stderr[-3000:]}"
        raise BenchError(msg)
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure(alerts: int, cis: int, *, runs: int, seed: int, cache: Path) -> Point:
    """Generate (if not cached) and measure one size, each in a fresh process."""
    common = ["--alerts", str(alerts), "--cis", str(cis), "--seed", str(seed)]
    common += ["--cache", str(cache)]
    what = f"scaling {alerts:,} alerts over {cis:,} CIs"
    _worker([*common, "--prepare"], what + " (generating)")
    return Point(alerts, cis, _worker([*common, "--runs", str(runs)], what))


def _elasticity(ratio: float, x1: float, x2: float) -> float:
    return math.log(ratio) / math.log(x2 / x1) if x2 != x1 else 0.0


def growth(points: Sequence[Point], axis: str) -> list[dict[str, Any]]:
    """Cost per alert from each size to the next along ``axis`` ("alerts" or "cis")."""
    steps = []
    for a, b in itertools.pairwise(points):
        x1, x2 = getattr(a, axis), getattr(b, axis)
        ratio = b.us_per_alert / a.us_per_alert
        cpu_ratio = b.cpu_us_per_alert / a.cpu_us_per_alert
        steps.append(
            {
                "from": x1,
                "to": x2,
                "us_per_alert": [a.us_per_alert, b.us_per_alert],
                "cpu_us_per_alert": [a.cpu_us_per_alert, b.cpu_us_per_alert],
                "cost_ratio": ratio,
                "elasticity": _elasticity(ratio, x1, x2),
                "cpu_elasticity": _elasticity(cpu_ratio, x1, x2),
                "rss_ratio": b.peak_rss_mib / max(a.peak_rss_mib, 1e-9),
                "super_linear": _elasticity(cpu_ratio, x1, x2) > SUPER_LINEAR,
            }
        )
    return steps


def _main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="one size of the scaling curves")
    parser.add_argument("--alerts", type=int, required=True)
    parser.add_argument("--cis", type=int, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache", type=Path, required=True)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--prepare", action="store_true", help="only generate the storm")
    args = parser.parse_args(argv)
    recording, cmdb = prepare_storm(args.alerts, args.cis, args.seed, args.cache)
    if args.prepare:
        print(json.dumps({"recording": str(recording), "cmdb": str(cmdb)}))
        return 0
    from correlator.topology import load_topology

    started = time.perf_counter()
    topology = load_topology(cmdb)
    topology_seconds = time.perf_counter() - started
    rows = 0

    def once() -> dict[str, float]:
        nonlocal rows
        cpu = time.process_time()
        t0 = time.perf_counter()
        decoded = read(recording)
        rows = decoded.rows
        result = replay_run(decoded, topology, read_seconds=time.perf_counter() - t0)
        return result.metrics() | {"cpu_seconds": time.process_time() - cpu}

    figures = repeat(once, args.runs, what=f"{args.alerts:,} alerts over {args.cis:,} CIs")
    answer = {
        "alerts": rows,
        "cis": topology.n_cis,
        "topology_load_s": topology_seconds,
        "peak_rss_mib": peak_rss_mib(),
        "figures": summary(figures),
    }
    print(json.dumps(answer))
    return 0


if __name__ == "__main__":
    sys.exit(_main())
