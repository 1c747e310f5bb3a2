"""Memory benchmark: what the pipeline holds per distinct fingerprint, and that it keeps it.

A long-running daemon meets new fingerprints all the time (a new instance, a
label carrying a changing value). This feeds ``--alerts`` alerts through the
pipeline with the shipped rules, every one a new fingerprint (its own
``instance``), firing, then lets a day of event time pass so that every one
has resolved and every window has closed. It prints the bytes held per
distinct fingerprint by part, after the storm and again a day later: the
numpy arrays of the correlation state, of the second level (inhibit and
pair), of the first level and the normalizer (tables indexed by string id),
the vocabulary's buffers, and the rest of the process's resident growth
(the vocabulary's Python strings and dict, other Python objects, and what
the allocator keeps of arrays freed as tables doubled).

Nothing is released today: the state and the vocabulary are never compacted
(see issue 5's notes), so the second column equals the first.

    python benchmarks/memory_bench.py [--alerts 300000]
"""

from __future__ import annotations

import argparse
import gc
import os
import platform

import numpy as np
import pyarrow as pa

from correlator.pipeline import Pipeline, shipped_rules
from correlator.rules.load import load_rules

BATCH = 10_000
START = 1_800_000_000 * 10**9
STEP = 1_000_000  # 1 ms of event time between alerts
DAY = 86_400 * 10**9
LABELS = pa.map_(pa.string(), pa.string())


def resident() -> int:
    """This process's resident set size in bytes."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def array_bytes(root: object, seen: set[int]) -> int:
    """Bytes of the numpy arrays reachable from ``root`` through attributes and containers,
    leaving out (and adding to) ``seen``: parts share objects, each array counts once."""
    stack = [root]
    total = 0
    while stack:
        item = stack.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, np.ndarray):
            total += item.nbytes
        elif isinstance(item, dict):
            stack.extend(v for v in item.values() if isinstance(v, np.ndarray | list | tuple))
        elif isinstance(item, list | tuple):
            stack.extend(v for v in item if not isinstance(v, str | int | float | bytes))
        elif hasattr(item, "__dict__"):
            stack.extend(vars(item).values())
    return total


def batch(pipeline: Pipeline, first: int, count: int) -> None:
    """Alerts ``first`` to ``first + count``, each on a host of its own, through ``pipeline``."""
    numbers = np.arange(first, first + count)
    labels = pa.array(
        [
            [
                ("alertname", "HostDown"),
                ("instance", f"host-{n}.example.net:9100"),
                ("job", "node"),
                ("severity", "critical"),
            ]
            for n in numbers.tolist()
        ],
        LABELS,
    )
    times = pa.array(START + numbers * STEP, pa.int64()).cast(pa.timestamp("ns", tz="UTC"))
    table = pa.table(
        {"labels": labels, "startsAt": times, "receivedAt": times, "status": ["firing"] * count}
    )
    normalized, _ = pipeline.normalizer.normalize(table, numbers)
    pipeline.process(normalized)
    pipeline.advance(int(START + (first + count) * STEP))


def arrays(pipeline: Pipeline) -> dict[str, int]:
    """Bytes of the numpy arrays each part holds (capacity, as allocated).

    The vocabulary is counted first: every other part refers to it.
    """
    seen: set[int] = set()
    vocabulary = array_bytes(pipeline.vocab, seen)
    return {
        "correlation state": array_bytes(pipeline.correlator, seen),
        "second level": array_bytes(pipeline.second, seen),
        "first level and normalizer": array_bytes(pipeline.first, seen)
        + array_bytes(pipeline.normalizer, seen),
        "vocabulary buffers": vocabulary,
    }


def growth(pipeline: Pipeline, before: dict[str, int], base: int) -> dict[str, int]:
    """What each part grew by since ``before``, the resident growth since ``base`` split."""
    grown = {name: size - before[name] for name, size in arrays(pipeline).items()}
    grown["the rest (Python, allocator)"] = resident() - base - sum(grown.values())
    return grown


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, default=300_000)
    args = parser.parse_args()
    pipeline = Pipeline(None, rules=load_rules(shipped_rules()))
    batch(pipeline, -BATCH, BATCH)  # compile every kernel before measuring
    gc.collect()
    before, base = arrays(pipeline), resident()
    known = pipeline.correlator.memory()["tracked fingerprints"]
    for first in range(0, args.alerts, BATCH):
        batch(pipeline, first, min(BATCH, args.alerts - first))
    gc.collect()
    after_storm = growth(pipeline, before, base)
    tracked = pipeline.correlator.memory()["tracked fingerprints"] - known
    pipeline.advance(int(START + args.alerts * STEP + DAY))
    gc.collect()
    after_day = growth(pipeline, before, base)
    print(
        f"{platform.machine()}, {os.cpu_count()} cores; {args.alerts:,} alerts, "
        f"{tracked:,} new fingerprints tracked, {len(pipeline.vocab):,} strings interned, "
        f"{pipeline.correlator.open_incidents} incidents open a day later"
    )
    print(f"{'bytes per new fingerprint':<32} {'after the storm':>16} {'a day later':>12}")
    for name, value in after_storm.items():
        print(f"{name:<32} {value / tracked:>16,.0f} {after_day[name] / tracked:>12,.0f}")
    storm_total = sum(after_storm.values()) / tracked
    day_total = sum(after_day.values()) / tracked
    print(f"{'total (resident growth)':<32} {storm_total:>16,.0f} {day_total:>12,.0f}")


if __name__ == "__main__":
    main()
