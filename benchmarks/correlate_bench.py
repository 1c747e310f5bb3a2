"""Correlation-stage benchmark: a 1,000,000-alert storm over a 100,000-CI topology.

Times only the correlation stage (``Correlator.process`` plus the final
flush, incident events included) on an already normalized, time-ordered
batch, as the median of several runs after a warm-up, in wall-clock time and in
CPU time of the thread (steadier when other jobs share the machine). Also reports the
correlation state's memory per alert: the bytes allocated for every state
array (``Correlator.memory``) divided by the number of distinct fingerprints
the engine tracks.

    python benchmarks/correlate_bench.py [--alerts 1000000] [--cis 100000] [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

from correlator.batch import Normalizer
from correlator.correlate.engine import Correlator
from correlator.decode import CORRELATION_COLUMNS, read_recording
from correlator.topology import load_topology
from correlator.vocab import Vocabulary
from replay_bench import prepare


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, default=1_000_000)
    parser.add_argument("--cis", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    recording, cmdb = prepare(args.alerts, args.cis, args.seed)
    topology = load_topology(cmdb)
    decoded = read_recording(recording, columns=CORRELATION_COLUMNS)
    vocab = Vocabulary()
    batch, _ = Normalizer(vocab, topology).normalize(decoded.table, decoded.index)
    batch = batch.in_time_order()
    print(f"{os.cpu_count()} cores; {len(batch):,} alerts over {topology.n_cis:,} CIs")
    timings = []
    cpu = []
    for run in range(args.runs + 1):
        correlator = Correlator(vocab, topology)
        started, cpu_started = time.perf_counter(), time.thread_time()
        outcome = correlator.process(batch)
        events = outcome.events + correlator.flush()
        if run:
            timings.append(time.perf_counter() - started)
            cpu.append(time.thread_time() - cpu_started)
    median = statistics.median(timings)
    print(
        f"correlation: median {median:.3f} s over {args.runs} runs (min {min(timings):.3f}, "
        f"max {max(timings):.3f}) = {len(batch) / median:,.0f} alerts/s, "
        f"{len(events):,} incident events"
    )
    cpu_median = statistics.median(cpu)
    print(
        f"  thread CPU time: median {cpu_median:.3f} s (min {min(cpu):.3f}) = "
        f"{len(batch) / cpu_median:,.0f} alerts/s; load average {os.getloadavg()[0]:.2f}"
    )
    parts = correlator.memory()
    tracked = parts.pop("tracked fingerprints")
    per_ci = parts.pop("configuration items")
    allocated = sum(parts.values())
    print(
        f"state: {allocated / 1e6:.1f} MB allocated for {tracked:,} tracked fingerprints = "
        f"{allocated / tracked:.0f} bytes per alert, plus {per_ci / 1e6:.1f} MB "
        f"({per_ci / topology.n_cis:.0f} B per CI) for the topology's CI table"
    )
    for name, size in parts.items():
        print(f"  {name:<22} {size / 1e6:8.2f} MB  {size / tracked:6.0f} B/alert")


if __name__ == "__main__":
    main()
