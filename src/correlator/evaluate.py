"""Grouping accuracy against ground truth: what the accuracy benchmark and tests measure.

Scoring follows ``correlator.scenarios``' truth format. Each fingerprint the
engine placed is assigned the incident its first placed alert ended in
(after merges); each non-informational fingerprint has a true cause (noise
alerts are causes of their own). Pairwise precision is the share of
fingerprint pairs grouped together that truly belong together; recall is
the share of truly related pairs that were grouped together. Root-cause
accuracy is the share of failure causes whose incident (the one holding most
of their fingerprints) names the true root CI.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from correlator.incident import IncidentEvent


@dataclass(frozen=True)
class Score:
    """How well one replay's incidents match one scenario's ground truth."""

    alerts: int
    incidents: int
    precision: float
    recall: float
    roots_right: int
    causes: int

    @property
    def f1(self) -> float:
        """Harmonic mean of pairwise precision and recall."""
        total = self.precision + self.recall
        return 2 * self.precision * self.recall / total if total else 0.0

    @property
    def compression(self) -> float:
        """Alerts in per incident opened."""
        return self.alerts / max(self.incidents, 1)

    @property
    def root_cause_accuracy(self) -> float:
        """Share of failure causes whose incident names the right root CI."""
        return self.roots_right / self.causes if self.causes else 1.0


def _pairs(sizes: Iterable[int]) -> int:
    return sum(n * (n - 1) // 2 for n in sizes)


def read_assignments(path: str | Path) -> list[dict[str, Any]]:
    """The lines ``correlator replay --assignments`` wrote."""
    with Path(path).open("rb") as lines:
        return [json.loads(line) for line in lines if line.strip()]


def placements(assignments: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """Fingerprint → incident id, from each fingerprint's first placed alert."""
    placed: dict[str, str] = {}
    for line in assignments:
        incident = line.get("incident")
        if incident is not None:
            placed.setdefault(line["fingerprint"], incident)
    return placed


def score(
    assignments: Iterable[Mapping[str, Any]],
    events: Iterable[IncidentEvent],
    truth: Mapping[str, Any],
) -> Score:
    """Score one replay (its assignments and incident events) against ``truth``."""
    rows = list(assignments)
    placed = placements(rows)
    events = list(events)
    root_of = {e.id: e.root_cause.ci for e in events}
    opened = {e.id for e in events if e.event == "open"}

    cause_of: dict[str, str] = {}
    for cause in truth["causes"]:
        for fp in cause["fingerprints"]:
            cause_of[fp] = cause["id"]
    for fp, kind in truth.get("noise", {}).items():
        if kind != "informational":
            cause_of[fp] = f"noise-{fp}"

    scored = [fp for fp in placed if fp in cause_of]
    together = Counter((placed[fp], cause_of[fp]) for fp in scored)
    by_incident = Counter(placed[fp] for fp in scored)
    by_cause = Counter(cause_of[fp] for fp in scored)
    both = _pairs(together.values())
    grouped = _pairs(by_incident.values())
    related = _pairs(by_cause.values())

    holders: dict[str, Counter[str]] = defaultdict(Counter)
    for fp in scored:
        holders[cause_of[fp]][placed[fp]] += 1
    right = 0
    for cause in truth["causes"]:
        votes = holders.get(cause["id"])
        if votes and root_of.get(votes.most_common(1)[0][0]) == cause["root_ci"]:
            right += 1
    return Score(
        alerts=len(rows),
        incidents=len(opened),
        precision=both / grouped if grouped else 1.0,
        recall=both / related if related else 1.0,
        roots_right=right,
        causes=len(truth["causes"]),
    )
