"""Accuracy benchmark: grouping and root-cause accuracy against generated ground truth.

A thin wrapper: the scenarios and scoring live in ``correlator.bench.accuracy``
(``correlator bench`` reports the same table). Each scenario is generated from
a seed, replayed with the default settings and scored with
``correlator.evaluate``: pairwise precision / recall / F1 of the grouping,
root-cause accuracy, and compression.

    python benchmarks/accuracy.py [--seeds 3]

Targets (issue 4): mean F1 >= 0.97, mean root-cause accuracy >= 0.95, no
scenario below 0.90, at least 99% compression on a 1,000+-alert single-switch storm.
"""

from __future__ import annotations

import argparse
import sys

from correlator.bench.accuracy import closing, header, line, rows, verdict


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3, help="scenarios per kind (default 3)")
    args = parser.parse_args()
    print(header())
    print("-" * len(header()))
    table = []
    for row in rows(args.seeds):
        print(line(row))
        table.append(row)
    result = verdict(table)
    print(closing(result))
    return 0 if result.met else 1


if __name__ == "__main__":
    sys.exit(main())
