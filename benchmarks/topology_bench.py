"""Topology benchmark: load and compile 100,000- and 1,000,000-CI JSON CMDBs.

Generates each CMDB once (``generate_network(**network_size(cis), seed=0)``, seeded) under
``benchmarks/.cache``, then times ``load_cmdb`` (read, decode, validate) and
``compile_topology`` (CSR, strongly connected components, dominator tree, intervals,
service bitsets) separately. A warm-up run first compiles or loads the numba kernels and
warms the page cache; the median of ``--runs`` timed runs is reported per size (issue 4
asks for a 1,000,000-CI compile in at most 10 s on a 2-core machine).

    python benchmarks/topology_bench.py [--sizes 100000 1000000] [--runs 3 1]
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import statistics
import time
from pathlib import Path

from correlator.scenarios import generate_network, network_size, write_cmdb
from correlator.topology import compile_topology, load_cmdb

CACHE = Path(__file__).resolve().parent / ".cache"


def prepare(cis: int, seed: int) -> Path:
    """The CMDB export of about ``cis`` CIs, generated on first use."""
    CACHE.mkdir(exist_ok=True)
    path = CACHE / f"cmdb-{cis}-{seed}.json"
    if not path.exists():
        partial = path.with_suffix(".json.partial")
        write_cmdb(generate_network(**network_size(cis), seed=seed), partial)
        partial.replace(path)
    return path


def timed_run(path: Path) -> tuple[float, float, float, float, int]:
    """Wall and CPU seconds to load and to compile ``path`` once, and its CI count.

    CPU time is reported beside wall time because the machine may be shared: on 2 cores
    another busy process can nearly double the wall time of a single-threaded step.
    """
    gc.collect()
    w0, c0 = time.perf_counter(), time.process_time()
    cmdb = load_cmdb(path)
    w1, c1 = time.perf_counter(), time.process_time()
    topology = compile_topology(cmdb)
    w2, c2 = time.perf_counter(), time.process_time()
    return w1 - w0, c1 - c0, w2 - w1, c2 - c1, topology.n_cis


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument(
        "--runs", type=int, nargs="+", default=[3, 1], help="timed runs per size (last repeats)"
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}"
    )
    for k, cis in enumerate(args.sizes):
        runs = args.runs[min(k, len(args.runs) - 1)]
        path = prepare(cis, args.seed)
        timed_run(path)  # warm-up: numba kernels and page cache
        results = [timed_run(path) for _ in range(runs)]
        load, load_cpu, build, build_cpu = (
            statistics.median(r[j] for r in results) for j in range(4)
        )
        print(
            f"{results[0][4]:>9,} CIs ({path.stat().st_size / 1e6:.0f} MB JSON), "
            f"median of {runs}: load {load:.2f} s (CPU {load_cpu:.2f} s), "
            f"compile {build:.2f} s (CPU {build_cpu:.2f} s), total {load + build:.2f} s; "
            f"load average {os.getloadavg()[0]:.1f}"
        )


if __name__ == "__main__":
    main()
