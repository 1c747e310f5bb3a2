"""``SecondLevel``: a rule set's inhibit and pair rules run batch by batch; ``Grouping``:
its group rules' keys for alerts outside the CMDB.

It runs between the first level and topology correlation, on the alerts the
first level passed. Inhibit rules mute target alerts while a source alert
with equal labels fires (Alertmanager's inhibition, plus ``equal`` pairs of
different label names); pair rules hold a problem alert for ``within`` and
cancel it when its recovery comes in time. ``second_reference`` states the
semantics in plain Python; ``second_kernel`` runs them.

A held problem that outlives its window is *released*: it enters
correlation at its deadline (event time), so the incident's first event is
when the problem was known not to be transient. The problem rows are stored
here until their episode ends, because a release (or the resolve a late
recovery makes of a released problem) may come batches later.

Rule state is keyed by the rule's stage and name, so a reload keeps the
sources and episodes of rules that keep their name. Used by one thread.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields, replace

import numpy as np

from correlator.batch import AlertBatch, concat_batches
from correlator.rules import second_kernel as kernel
from correlator.rules.first_level import rule_hash
from correlator.rules.model import GroupRule, InhibitRule, PairRule, RuleSet
from correlator.rules.tables import LabelColumns, MatchProgram
from correlator.schema import RESOLVED
from correlator.vocab import Vocabulary

# Positions in the state list (the order ``second_kernel.run`` unpacks).
SRC_KEYS, _, KEY_KEYS, _, SRC, SRC_FP, EP_KEYS, _, EP, HEAP, CTR, _ = range(12)


def _table(slots: int) -> tuple[np.ndarray, np.ndarray]:
    return np.zeros(slots, dtype=np.uint64), np.full(slots, -1, dtype=np.int64)


@dataclass(frozen=True)
class Injected:
    """Alerts the pair rules bring back: ``batch`` (with its significance and columns)
    are stored problems released into correlation (with their original ``row``) or
    resolved by a late recovery (``row`` -1: no input row of its own); ``before[k]``
    is the position in the decided alerts that row ``k`` goes before. ``paired`` are
    the original rows of held problems a recovery cancelled, with their significance."""

    batch: AlertBatch
    significance: np.ndarray
    columns: LabelColumns
    before: np.ndarray
    paired: AlertBatch
    paired_significance: np.ndarray


@dataclass(frozen=True)
class SecondLevelOutcome:
    """Per alert (in the order given): a ``SECOND_FATE_NAMES`` code and the rule's index
    in its stage (inhibit or pair; -1 when passed), and what the pair rules inject."""

    fate: np.ndarray
    rule: np.ndarray
    injected: Injected


class _Store:
    """Stored problem rows by slot: the alert, its significance and its label columns."""

    def __init__(self, names: tuple[str, ...]) -> None:
        self.names = names
        self.batches: list[AlertBatch] = []
        self.significance: list[np.ndarray] = []
        self.columns: list[np.ndarray] = []
        self._joined: tuple[AlertBatch, np.ndarray, np.ndarray] | None = None

    def add(self, batch: AlertBatch, significance: np.ndarray, columns: np.ndarray) -> None:
        if len(batch):
            self.batches.append(batch)
            self.significance.append(significance)
            self.columns.append(columns)
            self._joined = None

    def take(self, slots: np.ndarray) -> tuple[AlertBatch, np.ndarray, np.ndarray]:
        if self._joined is None:
            width = len(self.names)
            self._joined = (
                concat_batches(self.batches),
                np.concatenate([np.zeros(0, dtype=np.int8), *self.significance]),
                np.concatenate([np.zeros((width, 0), dtype=np.int32), *self.columns], axis=1),
            )
            self.batches = [self._joined[0]]
            self.significance = [self._joined[1]]
            self.columns = [self._joined[2]]
        batch, significance, columns = self._joined
        return batch.take(slots), significance[slots], columns[:, slots]


@dataclass(frozen=True)
class _KeyPlan:
    """What keys a rule set's state over label columns ``names``: each rule's seed (its
    stage and name hashed), and which label rows its ``equal`` keys mix, in order
    (``ptr``, ``rows``: rule ``r`` mixes ``rows[ptr[r]:ptr[r + 1]]``)."""

    rules: RuleSet
    names: tuple[str, ...]
    inhibit: np.ndarray
    source: tuple[np.ndarray, np.ndarray]
    target: tuple[np.ndarray, np.ndarray]
    pair: np.ndarray
    pair_equal: tuple[np.ndarray, np.ndarray]
    within: np.ndarray

    @classmethod
    def of(cls, rules: RuleSet, names: tuple[str, ...]) -> _KeyPlan:
        row_of = {name: r for r, name in enumerate(names)}

        def rows(lists: list[list[str]]) -> tuple[np.ndarray, np.ndarray]:
            ptr = np.zeros(len(lists) + 1, dtype=np.int64)
            np.cumsum(np.array([len(labels) for labels in lists], dtype=np.int64), out=ptr[1:])
            flat = [row_of[label] for labels in lists for label in labels]
            return ptr, np.array(flat, dtype=np.int64)

        def seeds(stage: str, named: Sequence[InhibitRule] | Sequence[PairRule]) -> np.ndarray:
            return np.array([rule_hash(stage, r.name) for r in named], dtype=np.uint64)

        return cls(
            rules,
            names,
            seeds("inhibit", rules.inhibit),
            rows([[source for source, _ in r.equal] for r in rules.inhibit]),
            rows([[target for _, target in r.equal] for r in rules.inhibit]),
            seeds("pair", rules.pair),
            rows([list(r.equal) for r in rules.pair]),
            np.array([r.within for r in rules.pair], dtype=np.int64),
        )


class SecondLevel:
    """Inhibit and pair rules over a stream of first-level-passed alerts."""

    def __init__(
        self, rules: RuleSet, programs: dict[str, MatchProgram], resolve_timeout: int
    ) -> None:
        self.resolve_timeout = resolve_timeout
        self._rules = rules
        self._programs = programs
        src_keys, src_vals = _table(1024)
        key_keys, key_vals = _table(1024)
        ep_keys, ep_vals = _table(1024)
        self._state = [
            src_keys,
            src_vals,
            key_keys,
            key_vals,
            np.zeros((256, kernel.SRC_NF), dtype=np.int64),
            np.zeros(256, dtype=np.uint64),
            ep_keys,
            ep_vals,
            np.zeros((256, kernel.EP_NF), dtype=np.int64),
            np.zeros((256, 2), dtype=np.int64),
            np.zeros(kernel.C_NF, dtype=np.int64),
            np.zeros(kernel.FILTER_BITS // 64, dtype=np.uint64),
        ]
        self._store: _Store | None = None
        self._plan: _KeyPlan | None = None

    @property
    def rules(self) -> RuleSet:
        """The rule set running now."""
        return self._rules

    @property
    def active(self) -> bool:
        """Whether there is anything to do: rules to run or problems still held."""
        return bool(self._rules.inhibit or self._rules.pair or self._held())

    def reload(self, rules: RuleSet, programs: dict[str, MatchProgram]) -> None:
        """Use a new rule set from the next batch on, keeping the state of same-named rules."""
        self._rules = rules
        self._programs = programs

    def process(
        self,
        batch: AlertBatch,
        columns: LabelColumns,
        significance: np.ndarray,
        positions: np.ndarray | None = None,
    ) -> SecondLevelOutcome:
        """Decide a time-ordered batch of alerts the first level passed: all of ``batch``, or
        the alerts at ``positions`` (which spares copying the others' labels); the outcome
        has one entry per alert decided."""
        if positions is None:
            positions = np.arange(len(batch), dtype=np.int64)
        n = len(positions)
        ts, fingerprint = batch.ts[positions], batch.fingerprint[positions]
        full = columns
        columns = columns.take(positions)
        inhibit, pair = self._inputs(fingerprint, columns)
        fate = np.zeros(n, dtype=np.int8)
        rule = np.full(n, -1, dtype=np.int32)
        slot_of = np.full(n, -1, dtype=np.int64)
        inj = np.zeros((2 * n + int(self._state[CTR][kernel.C_HEAP]) + 1, kernel.J_NF), np.int64)
        n_inj = 0
        position = 0
        while True:
            position, need, n_inj = kernel.run(
                position,
                ts,
                fingerprint,
                batch.status[positions],
                inhibit,
                pair,
                self.resolve_timeout,
                tuple(self._state),
                inj,
                n_inj,
                fate,
                rule,
                slot_of,
            )
            if need == kernel.DONE:
                break
            self._grow(need)
        stored = positions[slot_of >= 0]
        if len(stored):
            self._storage(columns.names).add(
                batch.take(stored), significance[stored], full.values[:, stored]
            )
        return SecondLevelOutcome(fate, rule, self._injected(inj[:n_inj], columns.names))

    def export_state(self) -> dict[str, np.ndarray]:
        """The state as named arrays (for a snapshot): sources, episodes and stored rows."""
        out = {f"state{k}": array for k, array in enumerate(self._state)}
        if self._store is not None and self._store.batches:
            everything = np.arange(sum(len(b) for b in self._store.batches), dtype=np.int64)
            batch, significance, columns = self._store.take(everything)
            out.update({f"store.{f.name}": getattr(batch, f.name) for f in fields(batch)})
            out["store.significance"] = significance
            out["store.columns"] = columns
            out["store.names"] = np.array(self._store.names, dtype=object)
        return out

    def import_state(self, arrays: dict[str, np.ndarray]) -> None:
        """Take over a state from ``export_state`` (over the same vocabulary)."""
        self._state = [np.ascontiguousarray(arrays[f"state{k}"]) for k in range(len(self._state))]
        self._store = None
        if "store.names" in arrays:
            names = tuple(str(n) for n in arrays["store.names"])
            batch = AlertBatch(
                **{f.name: np.asarray(arrays[f"store.{f.name}"]) for f in fields(AlertBatch)}
            )
            self._store = _Store(names)
            self._store.add(batch, arrays["store.significance"], arrays["store.columns"])

    def release(self, until: int, names: tuple[str, ...], *, inclusive: bool = False) -> Injected:
        """Release the held problems whose deadline is before ``until`` (a watermark), with
        label columns ``names`` (the first level's now)."""
        state = self._state
        inj = np.zeros((int(state[CTR][kernel.C_HEAP]) + 1, kernel.J_NF), dtype=np.int64)
        n_inj = kernel.release_due(until, inclusive, state[EP], state[HEAP], state[CTR], inj, 0, 0)
        if self._store is not None:
            self._storage(names)
        return self._injected(inj[:n_inj], names)

    def _held(self) -> int:
        return int(self._state[CTR][kernel.C_HEAP])

    def _storage(self, names: tuple[str, ...]) -> _Store:
        if self._store is None or self._store.names != names:
            previous = self._store
            self._store = _Store(names)
            if previous is not None and previous.batches:
                self._restore_columns(previous)
        return self._store

    def _restore_columns(self, previous: _Store) -> None:
        """Carry stored rows over to a new label space (after a reload), by label name."""
        everything = np.arange(sum(len(b) for b in previous.batches), dtype=np.int64)
        batch, significance, old = previous.take(everything)
        assert self._store is not None
        width = len(self._store.names)
        columns = np.zeros((width, len(batch)), dtype=np.int32)
        for row, name in enumerate(self._store.names):
            if name in previous.names:
                columns[row] = old[previous.names.index(name)]
        self._store.add(batch, significance, columns)

    def _injected(self, inj: np.ndarray, names: tuple[str, ...]) -> Injected:
        kinds = inj[:, kernel.J_KIND]
        moved = np.flatnonzero(kinds != kernel.INJ_PAIRED)
        paired = np.flatnonzero(kinds == kernel.INJ_PAIRED)
        if self._store is None or len(inj) == 0:
            empty = concat_batches([])
            return Injected(
                empty,
                np.zeros(0, dtype=np.int8),
                LabelColumns(names, np.zeros((len(names), 0), dtype=np.int32)),
                np.zeros(0, dtype=np.int64),
                empty,
                np.zeros(0, dtype=np.int8),
            )
        batch, significance, columns = self._store.take(inj[moved, kernel.J_SLOT])
        resolves = kinds[moved] == kernel.INJ_RESOLVE
        status = batch.status.copy()
        status[resolves] = RESOLVED
        row = np.where(resolves, -1, batch.row)
        ts = inj[moved, kernel.J_TS].astype(batch.ts.dtype)
        batch = replace(batch, ts=ts, status=status, row=row)
        paired_rows, paired_significance, _ = self._store.take(inj[paired, kernel.J_SLOT])
        return Injected(
            batch,
            significance,
            LabelColumns(names, columns),
            inj[moved, kernel.J_BEFORE],
            paired_rows,
            paired_significance,
        )

    def _inputs(self, fingerprint: np.ndarray, columns: LabelColumns) -> tuple[tuple, tuple]:
        rules, programs = self._rules, self._programs
        n = len(fingerprint)
        plan = self._plan_for(columns.names)
        if rules.inhibit:
            src_mask = programs["inhibit.source"].match_mask(columns)
            tgt_mask = programs["inhibit.target"].match_mask(columns)
        else:
            src_mask = tgt_mask = np.zeros((n, 0), dtype=np.bool_)
        src_key = kernel.label_keys(plan.inhibit, columns.values, *plan.source)
        tgt_key = kernel.label_keys(plan.inhibit, columns.values, *plan.target)
        entry_key = kernel.fingerprint_keys(plan.inhibit, fingerprint)
        if rules.pair:
            prob_mask = programs["pair.problem"].match_mask(columns)
            rec_mask = programs["pair.recovery"].match_mask(columns)
        else:
            prob_mask = rec_mask = np.zeros((n, 0), dtype=np.bool_)
        pair_key = kernel.label_keys(plan.pair, columns.values, *plan.pair_equal)
        return (
            (src_mask, tgt_mask, src_key, tgt_key, entry_key),
            (prob_mask, rec_mask, pair_key, plan.within),
        )

    def _plan_for(self, names: tuple[str, ...]) -> _KeyPlan:
        """The key plan of the running rules over label columns ``names``, made once."""
        plan = self._plan
        if plan is None or plan.rules is not self._rules or plan.names != names:
            plan = self._plan = _KeyPlan.of(self._rules, names)
        return plan

    def _grow(self, need: int) -> None:
        state = self._state
        if need == kernel.NEED_SRC:
            state[SRC] = _grown(state[SRC])
            state[SRC_FP] = _grown(state[SRC_FP])
        elif need == kernel.NEED_EP:
            state[EP] = _grown(state[EP])
            state[HEAP] = _grown(state[HEAP])
        else:
            for k in (SRC_KEYS, KEY_KEYS, EP_KEYS):
                keys, vals = _table(2 * len(state[k]))
                kernel.reinsert(state[k], state[k + 1], keys, vals)
                state[k], state[k + 1] = keys, vals


def _grown(array: np.ndarray) -> np.ndarray:
    grown = np.zeros((2 * len(array), *array.shape[1:]), dtype=array.dtype)
    grown[: len(array)] = array
    return grown


@dataclass(frozen=True)
class GroupKeys:
    """Per alert: its group's (name id, value id), how long after the group's last alert a
    new one still joins it, and the group rule that chose the key (-1: the default)."""

    name: np.ndarray
    value: np.ndarray
    within: np.ndarray
    rule: np.ndarray


class Grouping:
    """``correlate.group``: the group key of each alert outside the CMDB.

    Correlation groups an alert whose CI is unknown by a pair of string ids,
    (alertname, CI label) by default. An alert matching a group rule is grouped
    by that rule's ``group_by`` labels instead: the pair becomes (its alertname
    when ``alertname`` is among them, else the rule's name; the other labels as
    ``name=value`` text), and the rule's ``within`` is how long after a group's
    last alert a new one still joins it. The text is built once per distinct
    combination of values, never per alert.
    """

    def __init__(
        self, rules: Sequence[GroupRule], program: MatchProgram | None, vocab: Vocabulary
    ) -> None:
        self.rules = tuple(rules)
        self.program = program
        self.vocab = vocab
        self._names = np.array([vocab.intern(r.name) for r in self.rules], dtype=np.int32)
        self._within = np.array([r.within for r in self.rules], dtype=np.int64)

    def keys(self, batch: AlertBatch, columns: LabelColumns, index: np.ndarray | None) -> GroupKeys:
        """Each alert's group key (the default key has no ``within`` limit); alert ``k``'s
        labels are column ``index[k]`` of ``columns`` (``index`` None: column ``k``)."""
        name = batch.alertname
        value = batch.ci_label
        within = np.full(len(batch), np.iinfo(np.int64).max, dtype=np.int64)
        rule = np.full(len(batch), -1, dtype=np.int32)
        outside = np.flatnonzero(batch.ci < 0)
        if self.program is None or not self.rules or len(outside) == 0:
            return GroupKeys(name, value, within, rule)
        columns = columns.take(outside if index is None else index[outside])
        matched = self.program.first_match(columns)
        rule[outside] = matched
        name, value = name.copy(), value.copy()
        for r, group in enumerate(self.rules):
            local = np.flatnonzero(matched == r)
            chosen = outside[local]
            if len(chosen) == 0:
                continue
            within[chosen] = self._within[r]
            if "alertname" not in group.group_by:
                name[chosen] = self._names[r]
            shown = [label for label in group.group_by if label != "alertname"]
            if not shown:
                value[chosen] = 0
                continue
            ids = np.stack([columns.column(label)[local] for label in shown])
            combos, inverse = np.unique(ids, axis=1, return_inverse=True)
            texts = [
                ",".join(
                    f"{label}={self.vocab[int(v)]}" for label, v in zip(shown, combo, strict=True)
                )
                for combo in combos.T.tolist()
            ]
            value[chosen] = np.array(self.vocab.intern_many(texts), dtype=value.dtype)[
                inverse.reshape(-1)
            ]
        return GroupKeys(name, value, within, rule)
