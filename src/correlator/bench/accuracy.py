"""Grouping and root-cause accuracy against generated ground truth, per scenario kind.

Each scenario is generated from a seed by :mod:`correlator.scenarios` (the
same generator as the committed fixtures), replayed through
:func:`correlator.replay.replay` with the default settings, its assignments
written as ``correlator replay --assignments`` writes them, and scored with
:mod:`correlator.evaluate`: pairwise precision / recall / F1 of the grouping,
root-cause accuracy, and compression. Replay is deterministic, so these
figures need one run per seed, not a median.

Targets (issue 4): mean F1 >= 0.97, mean root-cause accuracy >= 0.95, no
scenario below 0.90, at least 99% compression on a 1,000+-alert
single-switch storm.
"""

from __future__ import annotations

import statistics
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

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
TARGET_F1 = 0.97
TARGET_RCA = 0.95
TARGET_WORST = 0.90
TARGET_SWITCH_REDUCTION = 0.99


@dataclass(frozen=True)
class Row:
    """One scenario kind's scores, over its seeds."""

    scenario: str
    seeds: int
    alerts: int
    incidents: int
    precision: float
    recall: float
    f1: float
    root_cause_accuracy: float

    @property
    def compression(self) -> float:
        """Alerts in per incident opened."""
        return self.alerts / max(self.incidents, 1)

    @property
    def reduction(self) -> float:
        """Share of alerts that did not become an incident of their own."""
        return 1 - self.incidents / max(self.alerts, 1)

    def as_json(self) -> dict[str, Any]:
        """The row with its derived figures."""
        return asdict(self) | {"compression": self.compression, "reduction": self.reduction}


@dataclass(frozen=True)
class Verdict:
    """The means across scenario kinds and whether the accuracy targets are met."""

    mean_f1: float
    mean_rca: float
    worst: float
    switch_reduction: float

    @property
    def met(self) -> bool:
        """All four targets met."""
        return (
            self.mean_f1 >= TARGET_F1
            and self.mean_rca >= TARGET_RCA
            and self.worst >= TARGET_WORST
            and self.switch_reduction >= TARGET_SWITCH_REDUCTION
        )


def run_scenario(scenario: Scenario, workdir: Path) -> Score:
    """Replay one scenario and score it."""
    cmdb = workdir / "cmdb.json"
    recording = workdir / "storm.jsonl"
    fates = workdir / "fates.jsonl"
    write_cmdb(scenario.cmdb, cmdb)
    write_jsonl(scenario.alerts, recording)
    result = replay(recording, topology=load_topology(cmdb), assignments=fates)
    return score(read_assignments(fates), result.events, scenario.truth)


def rows(seeds: int) -> Iterator[Row]:
    """Each scenario kind scored over seeds ``0 .. seeds - 1``, as it is done."""
    with tempfile.TemporaryDirectory() as tmp:
        for name, build in SCENARIOS.items():
            scores = [run_scenario(build(seed), Path(tmp)) for seed in range(seeds)]
            yield Row(
                scenario=name,
                seeds=seeds,
                alerts=sum(s.alerts for s in scores),
                incidents=sum(s.incidents for s in scores),
                precision=statistics.mean(s.precision for s in scores),
                recall=statistics.mean(s.recall for s in scores),
                f1=statistics.mean(s.f1 for s in scores),
                root_cause_accuracy=sum(s.roots_right for s in scores)
                / max(sum(s.causes for s in scores), 1),
            )


def verdict(table: list[Row]) -> Verdict:
    """Means, the worst figure, and the single-switch storm's reduction."""
    switch = next((r.reduction for r in table if r.scenario == "switch failure"), 1.0)
    return Verdict(
        mean_f1=statistics.mean(r.f1 for r in table),
        mean_rca=statistics.mean(r.root_cause_accuracy for r in table),
        worst=min(min(r.f1, r.root_cause_accuracy) for r in table),
        switch_reduction=switch,
    )


def header() -> str:
    """The terminal table's heading line."""
    return (
        f"{'scenario':<28} {'alerts':>7} {'incidents':>9} {'compression':>11} "
        f"{'precision':>9} {'recall':>7} {'F1':>6} {'root cause':>10}"
    )


def line(row: Row) -> str:
    """One scenario kind as a terminal table line."""
    return (
        f"{row.scenario:<28} {row.alerts:>7,} {row.incidents:>9,} {row.compression:>10.1f}x "
        f"{row.precision:>9.3f} {row.recall:>7.3f} {row.f1:>6.3f} {row.root_cause_accuracy:>10.2f}"
    )


def closing(result: Verdict) -> str:
    """The terminal summary under the table: means against the targets."""
    return "\n".join(
        [
            f"\nmean F1 {result.mean_f1:.3f} (target >= {TARGET_F1}), mean root-cause accuracy "
            f"{result.mean_rca:.3f} (target >= {TARGET_RCA}), worst scenario figure "
            f"{result.worst:.3f} (target >= {TARGET_WORST:.2f})",
            f"single-switch storm: {result.switch_reduction:.2%} fewer incidents than alerts "
            "(target >= 99%)",
            "targets met" if result.met else "TARGETS NOT MET",
        ]
    )
