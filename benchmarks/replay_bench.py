"""Storm-replay benchmark: a 1,000,000-alert storm over a 20,000-CI topology, file to incidents.

Generates the storm once (seeded) as Parquet plus its CMDB under
``benchmarks/.cache``, then replays it in process through the same code as
``correlator replay``: read Parquet, normalize to columns, correlate, build the
incident events. Reports the median of several timed runs after a warm-up
run (which also compiles or loads the numba kernels), and the stages.
``--rules PATH`` replays through a rule set's first and second level too
(e.g. the shipped ``rules/default.yaml``); the stage split is without rules.

    python benchmarks/replay_bench.py [--alerts 1000000] [--cis 20000] [--runs 5]
        [--rules rules/default.yaml]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from pathlib import Path

from correlator.batch import Normalizer
from correlator.correlate.engine import Correlator
from correlator.decode import CORRELATION_COLUMNS, read_recording
from correlator.replay import replay
from correlator.rules import load_rules
from correlator.scenarios import storm, write_cmdb, write_storm_parquet
from correlator.topology import load_topology
from correlator.vocab import Vocabulary

CACHE = Path(__file__).resolve().parent / ".cache"


def prepare(alerts: int, cis: int, seed: int) -> tuple[Path, Path]:
    """The storm's Parquet file and CMDB, generated on first use."""
    CACHE.mkdir(exist_ok=True)
    recording = CACHE / f"storm-{alerts}-{cis}-{seed}.parquet"
    cmdb = CACHE / f"cmdb-{cis}-{seed}.json"
    if not recording.exists() or not cmdb.exists():
        generated = storm(alerts, cis, seed)
        write_storm_parquet(recording, generated)
        write_cmdb(generated.cmdb, cmdb)
    return recording, cmdb


def stages(recording: Path, topology) -> dict[str, float]:
    """Seconds spent in each stage of one replay."""
    t0 = time.perf_counter()
    decoded = read_recording(recording, columns=CORRELATION_COLUMNS)
    t1 = time.perf_counter()
    vocab = Vocabulary()
    batch, _ = Normalizer(vocab, topology).normalize(decoded.table, decoded.index)
    batch = batch.in_time_order()
    t2 = time.perf_counter()
    correlator = Correlator(vocab, topology)
    outcome = correlator.process(batch)
    events = outcome.events + correlator.flush()
    t3 = time.perf_counter()
    return {"read": t1 - t0, "normalize": t2 - t1, "correlate": t3 - t2, "events": len(events)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, default=1_000_000)
    parser.add_argument("--cis", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--rules", type=Path, default=None, help="a rule file or folder")
    args = parser.parse_args()
    rules = load_rules(args.rules) if args.rules else None

    recording, cmdb = prepare(args.alerts, args.cis, args.seed)
    topology = load_topology(cmdb)
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}"
    )
    print(
        f"storm: {recording.name} ({recording.stat().st_size / 1e6:.1f} MB), "
        f"topology: {topology.n_cis:,} CIs"
    )
    print(f"rules: {args.rules or 'none (built-in first level)'}")
    replay(recording, topology=topology, rules=rules)
    timings = []
    for _ in range(args.runs):
        summary = replay(recording, topology=topology, rules=rules).summary
        timings.append(summary.seconds)
    median = statistics.median(timings)
    print(summary.render())
    print(
        f"\nfile to incidents: median {median:.3f} s over {args.runs} runs "
        f"(min {min(timings):.3f}, max {max(timings):.3f}) = "
        f"{summary.rows / median:,.0f} alerts/s"
    )
    split = stages(recording, topology)
    print(
        "stages of one run: "
        + ", ".join(
            f"{name} {seconds:.3f} s" for name, seconds in split.items() if name != "events"
        )
    )


if __name__ == "__main__":
    main()
