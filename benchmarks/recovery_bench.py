"""Crash-recovery benchmark: how long a daemon takes to come back after ``kill -9``.

Builds the state folder a crashed daemon leaves behind, on the 20,000-CI
benchmark network: a snapshot covering the first ``--covered`` alerts of a
seeded storm (taken by a real daemon's clean stop), then ``--alerts`` more
alerts in the event log beyond it, written the way the daemon writes them
(batches of 10,000, segments rotated to Parquet at 64 MiB) with the last
segment left open, as a kill leaves it. Then it times ``Daemon(config)``,
which restores the snapshot, seals the torn segment and replays every logged
alert beyond the snapshot through normalize and correlate, emitting the
incident events again into the outbox (at-least-once).

Each run works on a fresh copy of that folder. The first construction in
the process also loads the numba kernels, so a warm-up run comes first.

    python benchmarks/recovery_bench.py [--alerts 1000000] [--covered 100000] [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from correlator.batch import Normalizer
from correlator.daemon.config import ZmqConfig, load_config
from correlator.daemon.service import Daemon
from correlator.eventlog import EventLog, segments
from correlator.schema import ALERT_SCHEMA
from correlator.vocab import Vocabulary

sys.path.insert(0, str(Path(__file__).resolve().parent))
from replay_bench import prepare  # the storm cache shared with replay_bench

BATCH = 10_000


def _config(state: Path, cmdb: Path):
    """The daemon's defaults on free loopback ports, source event time, state in ``state``."""
    return replace(
        load_config(None),
        zmq=ZmqConfig(pull=("tcp://127.0.0.1:0",)),
        http_listen="127.0.0.1:0",
        event_time="source",
        topology=str(cmdb),
        state_dir=str(state),
        sinks=(
            {"name": "incidents", "type": "jsonl", "options": {"path": str(state / "out.jsonl")}},
        ),
    )


def _append(log: EventLog, table: pa.Table) -> None:
    """Log ``table`` in the daemon's batches, its labels interned as the daemon does."""
    normalizer = Normalizer(log.vocab)
    for start in range(0, table.num_rows, BATCH):
        part = table.slice(start, BATCH)
        ptr, keys, values = normalizer.intern_labels(part.column("labels"))
        log.append(part.drop_columns(["labels"]), ptr, keys, values)
    log.sync()


def build_state(state: Path, cmdb: Path, table: pa.Table, covered: int) -> None:
    """A crashed daemon's folder: a snapshot of ``covered`` alerts, the rest only logged."""
    log = EventLog(state / "eventlog", Vocabulary())
    _append(log, table.slice(0, covered))
    log.close()
    daemon = Daemon(_config(state, cmdb))  # replays the covered part (no snapshot yet)
    daemon.start()
    daemon.stop()  # drains the sink and writes the snapshot
    log = EventLog(state / "eventlog", Vocabulary())
    _append(log, table.slice(covered))
    # No close: the open segment stays an Arrow stream, as after kill -9.


def recover(state: Path, cmdb: Path) -> tuple[float, Daemon]:
    """Seconds for ``Daemon(config)`` on ``state``, and the daemon (not started)."""
    started = time.perf_counter()
    daemon = Daemon(_config(state, cmdb))
    return time.perf_counter() - started, daemon


def discard(daemon: Daemon) -> None:
    """Release a daemon that was never started, without writing a snapshot."""
    daemon.dispatcher.close()
    if daemon.event_log is not None:
        daemon.event_log.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, default=1_000_000, help="logged beyond the snapshot")
    parser.add_argument("--covered", type=int, default=100_000, help="alerts the snapshot covers")
    parser.add_argument("--cis", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    recording, cmdb = prepare(args.alerts + args.covered, args.cis, args.seed)
    table = pq.read_table(recording).cast(ALERT_SCHEMA)
    # The generator hits its target count only roughly: the snapshot covers
    # what comes before the last ``--alerts`` alerts, so exactly that many are logged.
    table = table.slice(0, args.alerts + args.covered)
    total = table.num_rows
    covered = max(0, total - args.alerts)
    cores = os.cpu_count()
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else cores
    print(
        f"machine: {platform.processor() or platform.machine()}, {cores} cores "
        f"({usable} usable), Python {platform.python_version()}"
    )
    with tempfile.TemporaryDirectory(prefix="correlator-recovery-") as scratch:
        template = Path(scratch) / "template"
        started = time.perf_counter()
        build_state(template, cmdb, table, covered)
        logged = sum(1 for _ in segments(template / "eventlog"))
        print(
            f"state: snapshot of {covered:,} alerts + {total - covered:,} logged "
            f"beyond it in {logged} segments ({recording.name}); "
            f"built in {time.perf_counter() - started:.1f} s"
        )
        timings, replays = [], []
        for run in range(args.runs + 1):
            state = Path(scratch) / f"run-{run}"
            shutil.copytree(template, state)
            seconds, daemon = recover(state, cmdb)
            recovered = daemon.event_log.rows - covered if daemon.event_log else 0
            events = sum(daemon.correlator.events_by_kind.values())
            discard(daemon)
            shutil.rmtree(state)
            label = "warm-up" if run == 0 else f"run {run}"
            print(
                f"  {label}: Daemon() in {seconds:.2f} s, of which log replay "
                f"{daemon.recovery_seconds:.2f} s; {recovered:,} alerts recovered, "
                f"{events:,} incident events re-emitted"
            )
            if run:
                timings.append(seconds)
                replays.append(daemon.recovery_seconds)
    median = statistics.median(timings)
    print(
        f"\nrecovery of {recovered:,} logged alerts: median {median:.2f} s over {args.runs} runs "
        f"(min {min(timings):.2f}, max {max(timings):.2f}) = {recovered / median:,.0f} alerts/s "
        f"on {usable} cores; log replay alone median {statistics.median(replays):.2f} s"
    )


if __name__ == "__main__":
    main()
