"""``Pipeline``: normalization, first level (rule files) and correlation, as one unit.

Replay and the daemon run the same pipeline, so a recording replayed against
a rule set gives what the daemon gave. Without a rule set the first level is
the built-in one (significance by severity, informational alerts dropped).
Rule-file settings for dedup and topology collapse override the engine's
defaults. Every alert ends with one fate: an incident, or the name of why not
(``FATES``), and the rule that decided it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from correlator.batch import DEFAULT_CI_LABELS, AlertBatch, Normalizer
from correlator.correlate.engine import CorrelationSettings, Correlator, Outcome
from correlator.correlate.layout import DROP_REASONS
from correlator.rules import FATE_NAMES, FirstLevel, RuleSet, load_rules
from correlator.topology import Topology
from correlator.vocab import Vocabulary

# Why an alert joined no incident: the correlation kernel's reasons, then the
# first level's fates (``passed`` excluded).
FATES = DROP_REASONS + FATE_NAMES[1:]
_FIRST_LEVEL_OFFSET = len(DROP_REASONS) - 1


def shipped_rules() -> Path | None:
    """``rules/default.yaml`` of the source tree (an editable install), if present."""
    candidate = Path(__file__).resolve().parents[2] / "rules" / "default.yaml"
    return candidate if candidate.exists() else None


def settings_from_rules(rules: RuleSet | None, base: CorrelationSettings) -> CorrelationSettings:
    """``base`` with the dedup and topology settings a rule set makes."""
    if rules is None:
        return base
    settings = base
    if rules.dedup is not None:
        settings = replace(settings, dedup_window=rules.dedup.window)
    if rules.topology is not None:
        settings = replace(settings, window=rules.topology.window, settle=rules.topology.settle)
        silent = rules.topology.infer_silent_root
        if silent is None:
            settings = replace(settings, infer_min_dependents=0)
        else:
            settings = replace(
                settings, infer_min_dependents=silent.min_dependents, infer_ratio=silent.ratio
            )
    return settings


class Pipeline:
    """Turns canonical Arrow tables into incident events, keeping all state between batches.

    Correlation settings come from ``settings``, then the rule set's
    ``dedup`` and ``correlate.topology`` sections, then ``overrides`` (what an
    operator's daemon config sets explicitly).
    """

    def __init__(
        self,
        topology: Topology | None,
        *,
        rules: RuleSet | None = None,
        settings: CorrelationSettings | None = None,
        ci_labels: tuple[str, ...] = DEFAULT_CI_LABELS,
        max_labels: int = 256,
        vocab: Vocabulary | None = None,
        overrides: Mapping[str, Any] | None = None,
    ) -> None:
        self.vocab = vocab or Vocabulary()
        self.topology = topology
        self.rules = rules
        self._base = settings or CorrelationSettings()
        self._overrides = dict(overrides or {})
        self.settings = self._settings(rules)
        self.correlator = Correlator(self.vocab, topology, self.settings)
        self.max_labels = max_labels
        self._ci_labels = ci_labels
        self.normalizer = self._normalizer()
        self.first = FirstLevel(rules, self.vocab, topology) if rules is not None else None

    @classmethod
    def from_paths(
        cls,
        topology: Topology | None,
        rules_path: str | Path | None,
        **options: object,
    ) -> Pipeline:
        """A pipeline over the rule file or folder at ``rules_path`` (None: built-in rules)."""
        rules = load_rules(rules_path) if rules_path else None
        return cls(topology, rules=rules, **options)  # type: ignore[arg-type]

    def _settings(self, rules: RuleSet | None) -> CorrelationSettings:
        return replace(settings_from_rules(rules, self._base), **self._overrides)

    def _normalizer(self) -> Normalizer:
        labels = self.rules.ci_labels if self.rules is not None else self._ci_labels
        return Normalizer(self.vocab, self.topology, ci_labels=labels, max_labels=self.max_labels)

    def process(self, batch: AlertBatch) -> tuple[AlertBatch, Outcome]:
        """Run one normalized batch through the first level and correlation.

        Returns the batch in event-time order (with enriched labels) and each
        of its alerts' fate; ``Outcome.reason`` indexes ``FATES``.
        """
        if self.first is None:
            batch = batch.in_time_order()
            return batch, self.correlator.process(batch)
        first = self.first.process(batch)
        passed = np.flatnonzero(first.passed)
        inner = self.correlator.process(
            first.batch.take(passed), significance=first.significance[passed]
        )
        n = len(first.batch)
        incident = np.full(n, -1, dtype=np.int64)
        reason = (first.fate.astype(np.int8) + _FIRST_LEVEL_OFFSET).astype(np.int8)
        why = np.zeros(n, dtype=np.int8)
        via = np.full(n, -1, dtype=np.int64)
        incident[passed] = inner.incident
        reason[passed] = inner.reason
        why[passed] = inner.why
        via[passed] = inner.via
        outcome = Outcome(
            inner.events, first.batch.row, incident, reason, why, via, first.significance
        )
        return first.batch, outcome

    def reload(self, topology: Topology | None, rules: RuleSet | None) -> None:
        """Switch to a new topology and rule set between two batches, keeping the state."""
        if topology is not None and topology is not self.topology:
            self.correlator.retarget(topology)
            self.topology = topology
        if rules is not None:
            if self.first is None:
                self.first = FirstLevel(rules, self.vocab, self.topology)
            else:
                self.first.reload(rules, self.topology)
            self.rules = rules
            self.settings = self._settings(rules)
            self.correlator.update_settings(self.settings)
        self.normalizer = self._normalizer()
