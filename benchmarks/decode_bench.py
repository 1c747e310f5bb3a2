"""Decode benchmark: what the decode process spends per alert of a JSON array, by body size.

The decode process is what limits the daemon's JSON intake, and part of
its cost is paid per body, not per alert. This decodes a seeded storm's
alerts (Alertmanager API objects, as ``ingest_bench`` sends them) as JSON
arrays of each size, the way the daemon's decode process does
(``decode_json`` with the wire ``LabelCoder``), in process, and reports
the median time per alert over several runs after a warm-up. Prometheus
sends bodies of up to 64 alerts (256 since its notifier's batch size became
configurable); ``ingest_bench`` sends 1,000.

    python benchmarks/decode_bench.py [--alerts 16000] [--sizes 64,256,1000,4000,16000]
        [--runs 5] [--max-row-bytes 1048576]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

from correlator.bench.storms import api_messages, build_storm
from correlator.daemon.wire import LabelCoder
from correlator.decode import DEFAULT_MAX_ROW_BYTES, decode_json


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, default=16_000)
    parser.add_argument("--cis", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sizes", default="64,256,1000,4000,16000")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--max-row-bytes", type=int, default=DEFAULT_MAX_ROW_BYTES)
    args = parser.parse_args()
    messages = api_messages(build_storm(args.alerts, args.cis, args.seed))
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}; {len(messages):,} storm alerts, "
        f"{sum(map(len, messages)) / len(messages):.0f} B each"
    )
    for size in (int(s) for s in args.sizes.split(",")):
        bodies = [
            b"[" + b",".join(messages[k : k + size]) + b"]" for k in range(0, len(messages), size)
        ]
        coder = LabelCoder()
        timings = []
        for run in range(args.runs + 1):
            started = time.perf_counter()
            rows = sum(
                decode_json(b, max_row_bytes=args.max_row_bytes, labels=coder).rows for b in bodies
            )
            if run:
                timings.append((time.perf_counter() - started) / rows)
        median = statistics.median(timings)
        print(
            f"  {size:>6,} alerts per body ({len(bodies[0]) / 1024:,.0f} KiB): median "
            f"{median * 1e6:.2f} us/alert (min {min(timings) * 1e6:.2f}, "
            f"max {max(timings) * 1e6:.2f}) = {1 / median:,.0f} alerts/s on one core"
        )


if __name__ == "__main__":
    main()
