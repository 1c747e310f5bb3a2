"""``Pipeline``: normalization, first level, second level and correlation, as one unit.

Replay and the daemon run the same pipeline, so a recording replayed against
a rule set gives what the daemon gave. Without a rule set the first level is
the built-in one (significance by severity, informational alerts dropped).
Rule-file settings for dedup and topology collapse override the engine's
defaults. Every alert ends with one fate: an incident, or the name of why not
(``FATES``), and the rule that decided it.

Pair rules hold problem alerts, so an alert's final fate can come in a later
batch (or at ``advance``/``flush``): those alerts come back as extra rows
after a batch's own, with their original ``row``; the last row for an input
row is its fate. The resolve a late recovery makes of a released problem is
a row too, with ``row`` -1 (it is no input alert's fate).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from correlator.batch import DEFAULT_CI_LABELS, AlertBatch, Normalizer, concat_batches
from correlator.correlate.engine import CorrelationSettings, Correlator, Outcome
from correlator.correlate.layout import DROP_REASONS
from correlator.incident import IncidentEvent
from correlator.rules.first_level import FirstLevel, FirstLevelOutcome
from correlator.rules.load import load_rules
from correlator.rules.model import FATE_NAMES, SECOND_FATE_NAMES, RuleSet
from correlator.rules.respond import Responder
from correlator.rules.second_kernel import INHIBITED
from correlator.rules.second_level import Grouping, Injected, SecondLevel, SecondLevelOutcome
from correlator.rules.tables import LabelColumns
from correlator.topology import Topology
from correlator.vocab import Vocabulary

# Why an alert joined no incident: the correlation kernel's reasons, then the
# first level's fates (``passed`` excluded), then the second level's.
FATES = DROP_REASONS + FATE_NAMES[1:] + SECOND_FATE_NAMES
_FIRST_LEVEL_OFFSET = len(DROP_REASONS) - 1
_SECOND_LEVEL_OFFSET = len(DROP_REASONS) + len(FATE_NAMES) - 2
PAIRED_FATE = FATES.index("paired")
_STAGE_OF_FATE = {
    "dropped": "drop",
    "in_maintenance": "maintenance",
    "flapping": "flap",
    "below_threshold": "threshold",
    "inhibited": "inhibit",
    "held": "pair",
    "paired": "pair",
    "recovery": "pair",
}


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


@dataclass(frozen=True)
class Trace:
    """The stages' own records of the last batch, for tools that name the deciding rule:
    the first level's outcome, the positions in it that passed, the second level's
    outcome for those (None when no second-level rule ran), and the (input row, group
    rule) of each alert a group rule keyed."""

    first: FirstLevelOutcome
    passed: np.ndarray
    second: SecondLevelOutcome | None
    grouped: tuple[np.ndarray, np.ndarray]

    def stopped(self) -> dict[tuple[str, str], int]:
        """How many alerts each rule stopped, by (fate, rule name); counted without a loop
        over alerts, for metrics."""
        rules = self.first.rules
        out: dict[tuple[str, str], int] = {}
        parts = [(self.first.fate, self.first.rule, FATE_NAMES)]
        if self.second is not None:
            parts.append((self.second.fate, self.second.rule, ("passed", *SECOND_FATE_NAMES)))
        for fates, rule_index, names in parts:
            stopped = np.flatnonzero(fates != 0)
            if not len(stopped):
                continue
            pairs = fates[stopped].astype(np.int64) << 32 | rule_index[stopped].astype(np.int64)
            found, counts = np.unique(pairs, return_counts=True)
            for pair, count in zip(found.tolist(), counts.tolist(), strict=True):
                fate = names[pair >> 32]
                stage = getattr(rules, _STAGE_OF_FATE[fate])
                out[(fate, stage[pair & 0xFFFFFFFF].name)] = count
        return out

    def rule_names(self, rules: RuleSet) -> dict[int, str]:
        """Input row to the name of the rule that stopped or grouped it."""
        rows, group_rules = self.grouped
        out = {
            row: rules.group[r].name
            for row, r in zip(rows.tolist(), group_rules.tolist(), strict=True)
        }
        first = self.first
        for i in np.flatnonzero(~first.passed).tolist():
            out[int(first.batch.row[i])] = first.rule_name(i) or ""
        if self.second is not None:
            for k in np.flatnonzero(self.second.rule >= 0).tolist():
                stage = rules.inhibit if self.second.fate[k] == INHIBITED else rules.pair
                out[int(first.batch.row[self.passed[k]])] = stage[int(self.second.rule[k])].name
        return out


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
        self.last_trace: Trace | None = None
        self._column_names: tuple[str, ...] = ()
        self._grouped = (np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int32))
        self.responder = Responder(rules.respond if rules is not None else ())
        self.max_labels = max_labels
        self._ci_labels = ci_labels
        self.normalizer = self._normalizer()
        self.first = FirstLevel(rules, self.vocab, topology) if rules is not None else None
        self.second = (
            SecondLevel(rules, self.first.programs, self.settings.resolve_timeout)
            if rules is not None and self.first is not None
            else None
        )
        self.grouping = self._grouping()

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

    def _grouping(self) -> Grouping:
        if self.rules is None or self.first is None:
            return Grouping((), None, self.vocab)
        return Grouping(self.rules.group, self.first.programs["group"], self.vocab)

    def _normalizer(self) -> Normalizer:
        labels = self.rules.ci_labels if self.rules is not None else self._ci_labels
        return Normalizer(self.vocab, self.topology, ci_labels=labels, max_labels=self.max_labels)

    def process(self, batch: AlertBatch) -> tuple[AlertBatch, Outcome]:
        """Run one normalized batch through both levels, correlation and response.

        Returns the batch in event-time order (with enriched labels), then the
        alerts pair rules brought back (see the module docstring), and each
        row's fate; ``Outcome.reason`` indexes ``FATES``. Events carry the
        action the ``respond`` rules chose.
        """
        rows, outcome = self._correlate(batch)
        return rows, self._respond(outcome)

    def _respond(self, outcome: Outcome) -> Outcome:
        if not self.responder.rules or not outcome.events:
            return outcome
        return replace(outcome, events=self.responder.apply(outcome.events))

    def _correlate(self, batch: AlertBatch) -> tuple[AlertBatch, Outcome]:
        if self.first is None:
            batch = batch.in_time_order()
            return batch, self.correlator.process(batch)
        first = self.first.process(batch)
        self._column_names = first.columns.names
        n = len(first.batch)
        passed = np.flatnonzero(first.passed)
        reason = (first.fate.astype(np.int8) + _FIRST_LEVEL_OFFSET).astype(np.int8)
        reason[first.passed] = 0
        significance = first.significance
        if self.second is None or not self.second.active:
            inner = self._correlation(
                first.batch.take(passed), first.columns, passed, significance[passed]
            )
            self.last_trace = Trace(first, passed, None, self._grouped)
            return first.batch, _combine(inner, first.batch.row, reason, significance, passed)
        level = self.second.process(first.batch, first.columns, significance, passed)
        stopped = level.fate != 0
        reason[passed[stopped]] = level.fate[stopped] + _SECOND_LEVEL_OFFSET
        go = passed[~stopped]
        injected = level.injected
        if len(injected.batch) == 0:
            where = go
            inner = self._correlation(first.batch.take(go), first.columns, go, significance[go])
        else:
            order = np.argsort(
                np.concatenate([2 * np.flatnonzero(~stopped) + 1, 2 * injected.before]),
                kind="stable",
            )
            where = np.concatenate([go, n + np.arange(len(injected.batch))])[order]
            inputs = concat_batches([first.batch.take(go), injected.batch]).take(order)
            values = np.concatenate([first.columns.values[:, go], injected.columns.values], axis=1)
            inner = self._correlation(
                inputs,
                LabelColumns(first.columns.names, values[:, order]),
                None,
                np.concatenate([significance[go], injected.significance])[order],
            )
        self.last_trace = Trace(first, passed, level, self._grouped)
        return self._with_injected(first.batch, reason, significance, inner, where, injected)

    def _correlation(
        self,
        batch: AlertBatch,
        columns: LabelColumns,
        index: np.ndarray | None,
        significance: np.ndarray,
    ) -> Outcome:
        """Correlate alerts both levels passed, alerts outside the CMDB keyed by group rules.

        Alert ``k`` of ``batch`` has the label columns ``columns`` give at ``index[k]``
        (``index`` None: at ``k``).
        """
        keys = self.grouping.keys(batch, columns, index)
        keyed = np.flatnonzero(keys.rule >= 0)
        self._grouped = (batch.row[keyed], keys.rule[keyed])
        if len(keyed):
            batch = replace(batch, alertname=keys.name, ci_label=keys.value)
        return self.correlator.process(batch, significance=significance, group_within=keys.within)

    def advance(self, watermark: int, *, expire: bool = True) -> tuple[AlertBatch, Outcome]:
        """Let event time reach ``watermark``: release held problems due before it, then
        fire correlation's timers. Returns the released rows and their fates."""
        return self._release(watermark, inclusive=False, expire=expire)

    def flush(self) -> tuple[AlertBatch, Outcome]:
        """At the end of a replay: release every held problem at its deadline, then send
        what is still settling and every pending update (alerts are not expired)."""
        return self._release(np.iinfo(np.int64).max, inclusive=True, expire=False)

    def _release(self, until: int, *, inclusive: bool, expire: bool) -> tuple[AlertBatch, Outcome]:
        empty = concat_batches([])
        events: list[IncidentEvent] = []
        batch, outcome = empty, None
        if self.second is not None:
            injected = self.second.release(until, self._column_names, inclusive=inclusive)
            if len(injected.batch) or len(injected.paired):
                inner = self._correlation(
                    injected.batch, injected.columns, None, injected.significance
                )
                events = inner.events
                where = np.arange(len(injected.batch), dtype=np.int64)
                no = np.zeros(0, dtype=np.int8)
                batch, outcome = self._with_injected(empty, no, no, inner, where, injected)
        events = events + self.correlator.advance(until, expire=expire)
        if outcome is None:
            none = np.zeros(0, dtype=np.int64)
            small = np.zeros(0, dtype=np.int8)
            outcome = Outcome(events, none, none, small, small, none, small)
        else:
            outcome = replace(outcome, events=events)
        return batch, self._respond(outcome)

    def _with_injected(
        self,
        own: AlertBatch,
        reason: np.ndarray,
        significance: np.ndarray,
        inner: Outcome,
        where: np.ndarray,
        injected: Injected,
    ) -> tuple[AlertBatch, Outcome]:
        """The batch's own rows, then the injected ones, then the cancelled problems."""
        n, m, k = len(own), len(injected.batch), len(injected.paired)
        total = n + m + k
        incident = np.full(total, -1, dtype=np.int64)
        why = np.zeros(total, dtype=np.int8)
        via = np.full(total, -1, dtype=np.int64)
        reasons = np.concatenate(
            [reason, np.zeros(m, dtype=np.int8), np.full(k, PAIRED_FATE, dtype=np.int8)]
        )
        incident[where] = inner.incident
        reasons[where] = inner.reason
        why[where] = inner.why
        via[where] = inner.via
        batch = concat_batches([own, injected.batch, injected.paired]) if m or k else own
        outcome = Outcome(
            inner.events,
            batch.row,
            incident,
            reasons.astype(np.int8),
            why,
            via,
            np.concatenate([significance, injected.significance, injected.paired_significance]),
        )
        return batch, outcome

    def export_state(self) -> dict[str, np.ndarray]:
        """Everything a restart needs as named arrays (for a snapshot): correlation, and the
        rule stages' window state (``first.*``: flap, threshold; ``second.*``: inhibit
        sources, pair episodes and their held problems)."""
        out = self.correlator.export_state()
        if self.first is not None:
            out.update({f"first.{k}": v for k, v in self.first.export_state().items()})
        if self.second is not None:
            out.update({f"second.{k}": v for k, v in self.second.export_state().items()})
        return out

    def import_state(self, arrays: dict[str, np.ndarray]) -> None:
        """Take over a state from ``export_state`` (the vocabulary restored first). Rule-stage
        state is taken only when the snapshot has it and this pipeline runs a rule set."""
        self.correlator.import_state(arrays)
        for prefix, stage in (("first.", self.first), ("second.", self.second)):
            mine = {k[len(prefix) :]: v for k, v in arrays.items() if k.startswith(prefix)}
            if mine and stage is not None:
                stage.import_state(mine)

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
            self.responder = Responder(rules.respond)
            self.grouping = self._grouping()
            if self.second is None:
                self.second = SecondLevel(rules, self.first.programs, self.settings.resolve_timeout)
            else:
                self.second.reload(rules, self.first.programs)
                self.second.resolve_timeout = self.settings.resolve_timeout
        self.normalizer = self._normalizer()


def _combine(
    inner: Outcome,
    row: np.ndarray,
    reason: np.ndarray,
    significance: np.ndarray,
    passed: np.ndarray,
) -> Outcome:
    """The fates of a whole batch from the first level's and correlation's of its passed part."""
    n = len(row)
    incident = np.full(n, -1, dtype=np.int64)
    why = np.zeros(n, dtype=np.int8)
    via = np.full(n, -1, dtype=np.int64)
    incident[passed] = inner.incident
    reason[passed] = inner.reason
    why[passed] = inner.why
    via[passed] = inner.via
    return Outcome(inner.events, row, incident, reason, why, via, significance)
