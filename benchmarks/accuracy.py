"""Accuracy benchmark: grouping and root-cause accuracy against generated ground truth.

Each scenario is generated from a seed by ``correlator.scenarios`` (the same
generator as the committed fixtures), replayed through ``correlator.replay``
with the default settings and the assignments written as
``correlator replay --assignments`` writes them, and scored with
``correlator.evaluate``: pairwise precision / recall / F1 of the grouping,
root-cause accuracy, and compression.

    python benchmarks/accuracy.py [--seeds 3]

Targets (issue 4): mean F1 >= 0.97, mean root-cause accuracy >= 0.95, no
scenario below 0.90, at least 99% compression on a 1,000+-alert single-switch storm.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from correlator.evaluate import Score, read_assignments, score
from correlator.replay import replay
from correlator.scenarios import (
    Scenario,
    dual_homed_partial,
    generate_network,
    late_root,
    link_flap,
    overlapping_failures,
    router_failure,
    silent_root,
    switch_failure,
    write_cmdb,
    write_jsonl,
)
from correlator.topology import load_topology

SCENARIOS: dict[str, Callable[[int], Scenario]] = {
    "switch failure": lambda seed: switch_failure(seed=seed),
    "core router failure": lambda seed: router_failure(seed=seed),
    "dual-homed partial failure": lambda seed: dual_homed_partial(seed=seed),
    "2 overlapping failures": lambda seed: overlapping_failures(2, seed=seed),
    "5 overlapping failures": lambda seed: overlapping_failures(
        5,
        seed=seed,
        router_failures=1,
        cmdb=generate_network(routers=4, hosts_per_switch=20, dual_homed_share=0.02, seed=seed),
    ),
    "root late by 1 s": lambda seed: late_root(1, seed=seed),
    "root late by 10 s": lambda seed: late_root(10, seed=seed),
    "root late by 30 s": lambda seed: late_root(30, seed=seed),
    "silent root": lambda seed: silent_root(seed=seed),
    "flapping link": lambda seed: link_flap(seed=seed),
}


def run(scenario: Scenario, workdir: Path) -> Score:
    """Replay one scenario and score it."""
    cmdb = workdir / "cmdb.json"
    recording = workdir / "storm.jsonl"
    fates = workdir / "fates.jsonl"
    write_cmdb(scenario.cmdb, cmdb)
    write_jsonl(scenario.alerts, recording)
    result = replay(recording, topology=load_topology(cmdb), assignments=fates)
    return score(read_assignments(fates), result.events, scenario.truth)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3, help="scenarios per kind (default 3)")
    args = parser.parse_args()
    header = (
        f"{'scenario':<28} {'alerts':>7} {'incidents':>9} {'compression':>11} "
        f"{'precision':>9} {'recall':>7} {'F1':>6} {'root cause':>10}"
    )
    print(header)
    print("-" * len(header))
    f1s, rcas, worst = [], [], 1.0
    single_switch_reduction = 1.0
    with tempfile.TemporaryDirectory() as tmp:
        for name, build in SCENARIOS.items():
            scores = [run(build(seed), Path(tmp)) for seed in range(args.seeds)]
            alerts = sum(s.alerts for s in scores)
            incidents = sum(s.incidents for s in scores)
            precision = statistics.mean(s.precision for s in scores)
            recall = statistics.mean(s.recall for s in scores)
            f1 = statistics.mean(s.f1 for s in scores)
            rca = sum(s.roots_right for s in scores) / max(sum(s.causes for s in scores), 1)
            reduction = 1 - incidents / max(alerts, 1)
            if name == "switch failure":
                single_switch_reduction = reduction
            f1s.append(f1)
            rcas.append(rca)
            worst = min(worst, f1, rca)
            print(
                f"{name:<28} {alerts:>7,} {incidents:>9,} {alerts / max(incidents, 1):>10.1f}x "
                f"{precision:>9.3f} {recall:>7.3f} {f1:>6.3f} {rca:>10.2f}"
            )
    mean_f1, mean_rca = statistics.mean(f1s), statistics.mean(rcas)
    print(
        f"\nmean F1 {mean_f1:.3f} (target >= 0.97), mean root-cause accuracy {mean_rca:.3f} "
        f"(target >= 0.95), worst scenario figure {worst:.3f} (target >= 0.90)"
    )
    print(
        f"single-switch storm: {single_switch_reduction:.2%} fewer incidents than alerts "
        "(target >= 99%)"
    )
    met = mean_f1 >= 0.97 and mean_rca >= 0.95 and worst >= 0.90
    met = met and single_switch_reduction >= 0.99
    print("targets met" if met else "TARGETS NOT MET")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
