"""``FirstLevel``: a rule set's first-level stages compiled and run batch by batch.

The driver owns a compiled rule set (label space, match programs, rule
parameters as arrays) and the flap/threshold state, and runs the numba
kernels (``rules.kernel``, which states the per-alert semantics) over each
batch in event-time order. It runs before the correlation kernel: the alerts
whose fate is ``passed`` go on, with the significance decided here. The
second level's selectors are compiled here too (``FirstLevel.programs``), over
the same label columns, so the correlation kernel gets per-string tables
without compiling anything itself.

``reload`` swaps in a new rule set between two batches. The new set is
compiled completely before anything changes, so a set that fails to compile
leaves the old one running; flap and threshold state carries over for rules
that keep their stage, name and window size (``count``, ``changes``).

The driver is used by one thread (the correlation loop) and takes no locks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from correlator.batch import AlertBatch
from correlator.correlate.engine import SIGNIFICANCE_BY_SEVERITY
from correlator.errors import RuleError
from correlator.matchers import MatcherSet
from correlator.rules import kernel
from correlator.rules.model import (
    BELOW_THRESHOLD,
    DROPPED,
    FATE_NAMES,
    FLAPPING,
    IN_MAINTENANCE,
    PASSED,
    SIGNIFICANCE_NAMES,
    RuleSet,
    Selector,
)
from correlator.rules.tables import LabelColumns, LabelSpace, MatchProgram
from correlator.rules.windows import rule_intervals
from correlator.topology import Topology
from correlator.vocab import Vocabulary

MAX_ENRICH_ATTRIBUTES = 64
MEMO_LIMIT = 1 << 18
"""At most this many combinations of label classes are remembered (4 MiB)."""
_FNV_OFFSET, _FNV_PRIME = 0xCBF29CE484222325, 0x100000001B3


def rule_hash(stage: str, name: str) -> int:
    """FNV-1a 64 of ``stage:name``: what keys a rule's state, stable across reloads."""
    h = _FNV_OFFSET
    for byte in f"{stage}:{name}".encode():
        h = ((h ^ byte) * _FNV_PRIME) & 0xFFFFFFFFFFFFFFFF
    return h


def catch_all(position: Any) -> Selector:
    """A selector that holds on every alert (for rules whose ``match`` is optional)."""
    return Selector((MatcherSet(()),), ("{}",), position)


@dataclass(frozen=True)
class FirstLevelOutcome:
    """What the first level decided for each alert of a batch, in event-time order.

    ``batch`` is the input sorted by event time (ties in input order) with enriched
    labels appended; ``batch.row`` maps back to input rows. ``significance`` is a
    code of ``SIGNIFICANCE_NAMES``; ``classified_by`` the classify rule that set it
    (-1: by severity). ``fate`` is a code of ``FATE_NAMES`` and ``rule`` the index of
    the deciding rule in its stage's tuple (-1 when passed). ``columns`` holds the
    string ids of every label the rule set reads, after enrichment and
    classification, for the second level to match on.
    """

    batch: AlertBatch
    significance: np.ndarray
    classified_by: np.ndarray
    fate: np.ndarray
    rule: np.ndarray
    columns: LabelColumns
    rules: RuleSet

    @property
    def passed(self) -> np.ndarray:
        """Mask of the alerts that go on to correlation."""
        return self.fate == PASSED

    def rule_name(self, i: int) -> str | None:
        """The name of the rule that stopped alert ``i``, or ``None`` when it passed."""
        stage = _STAGE_OF_FATE.get(int(self.fate[i]))
        return getattr(self.rules, stage)[int(self.rule[i])].name if stage else None

    def explain(self, i: int) -> str:
        """One line on alert ``i``: its significance and fate, naming rules and positions."""
        significance = SIGNIFICANCE_NAMES[int(self.significance[i])]
        by = int(self.classified_by[i])
        source = (
            f"classify rule {self.rules.classify[by].name!r} ({self.rules.classify[by].position})"
            if by >= 0
            else "severity"
        )
        text = f"{significance} (by {source}); {FATE_NAMES[int(self.fate[i])]}"
        stage = _STAGE_OF_FATE.get(int(self.fate[i]))
        if stage:
            rule = getattr(self.rules, stage)[int(self.rule[i])]
            text += f" by {stage} rule {rule.name!r} ({rule.position})"
        return text


_STAGE_OF_FATE = {
    DROPPED: "drop",
    IN_MAINTENANCE: "maintenance",
    FLAPPING: "flap",
    BELOW_THRESHOLD: "threshold",
}


def _counted_arrays(rules: Any, size_of: Any, stage: str, space: LabelSpace) -> tuple[Any, ...]:
    keys = [[space.row_of[k] for k in r.key] for r in rules]
    ptr = np.zeros(len(rules) + 1, dtype=np.int64)
    np.cumsum([len(k) for k in keys], out=ptr[1:])
    return (
        np.array([rule_hash(stage, r.name) for r in rules], dtype=np.uint64),
        np.array([size_of(r) for r in rules], dtype=np.int64),
        np.array([r.within for r in rules], dtype=np.int64),
        ptr,
        np.array([row for k in keys for row in k], dtype=np.int64),
    )


class _Memo:
    """The main program's first selector per stage, by combination of label classes.

    An alert's selectors depend only on the class of each label the program reads, so
    ``kernel.decide`` remembers what it found for each combination it meets, at the
    row the classes give in mixed radix. New classes change the radix and start an
    empty table; a program whose combinations could exceed ``MEMO_LIMIT`` scans every
    alert. (A memo of their own gains classify rules nothing, their scan being as cheap
    as a lookup; folded into the main program they share this one.)
    """

    def __init__(self, program: MatchProgram) -> None:
        self._program = program
        self._counts: tuple[int, ...] = ()
        self._table = np.zeros((0, kernel.STAGES), dtype=np.int32)

    def arrays(self) -> tuple[bool, np.ndarray, np.ndarray]:
        """Whether to use it, the radix, and the table (``kernel.UNKNOWN`` where unseen)."""
        counts = self._program.class_counts()
        if counts != self._counts:
            size = math.prod(counts)
            rows = size if size <= MEMO_LIMIT else 0
            self._table = np.full((rows, kernel.STAGES), kernel.UNKNOWN, dtype=np.int32)
            self._counts = counts
        return len(self._table) > 0, np.array(counts, dtype=np.int64), self._table


class CompiledRules:
    """A rule set compiled against a vocabulary and a topology, ready for the kernel.

    ``programs`` also holds the second level's selectors compiled over the same
    columns, by ``stage.field`` (``inhibit.source``, ``inhibit.target``,
    ``pair.problem``, ``pair.recovery``, ``group``, ``respond``); selector k is
    rule k of that stage. ``classify_folded`` says whether the classify rules are
    the main program's last stage (no main rule reads ``significance``; see
    ``kernel``) rather than a program of their own.
    """

    def __init__(self, rules: RuleSet, vocab: Vocabulary, topology: Topology | None) -> None:
        self.rules = rules
        attributes = list(dict.fromkeys(a for r in rules.enrich for a in r.attributes))
        if len(attributes) > MAX_ENRICH_ATTRIBUTES:
            msg = f"enrich copies {len(attributes)} attributes; at most {MAX_ENRICH_ATTRIBUTES}"
            raise RuleError(msg)
        ci_type_ids = None
        if topology is not None:
            type_ids = np.array([vocab.intern(t) for t in topology.type_names], dtype=np.int32)
            ci_type_ids = type_ids[topology.ci_type] if len(type_ids) else None
        names = rules.label_names() | set(attributes)
        space = self.space = LabelSpace(names, vocab, ci_type_ids)

        def program(selectors: list[Selector]) -> MatchProgram:
            return MatchProgram(selectors, space)

        enrich = program([r.match or catch_all(r.position) for r in rules.enrich])
        stages = (rules.drop, rules.maintenance, rules.flap, rules.threshold)
        self.classify_folded = bool(rules.classify) and not any(
            "significance" in alternative.names
            for stage in stages
            for r in stage
            for alternative in r.match.alternatives
        )
        if self.classify_folded:
            classify = program([])
            stages = (*stages, rules.classify)
        else:
            classify = program([r.match for r in rules.classify])
            stages = (*stages, ())
        main = program([r.match for stage in stages for r in stage])
        self.programs = {
            "inhibit.source": program([r.source for r in rules.inhibit]),
            "inhibit.target": program([r.target for r in rules.inhibit]),
            "pair.problem": program([r.problem for r in rules.pair]),
            "pair.recovery": program([r.recovery for r in rules.pair]),
            "group": program([r.match or catch_all(r.position) for r in rules.group]),
            "respond": program([r.match for r in rules.respond]),
        }
        sig_ids = np.array([vocab.intern(s) for s in SIGNIFICANCE_NAMES], dtype=np.int32)
        space.learn("significance", sig_ids.tolist())
        if ci_type_ids is not None:
            space.learn("ci_type", np.unique(ci_type_ids).tolist())

        cis = topology.attributes if topology is not None else []
        values = np.zeros((len(attributes), len(cis)), dtype=np.int32)
        for a, attribute in enumerate(attributes):
            values[a] = vocab.intern_many(ci.get(attribute, "") for ci in cis)
            space.learn(attribute, np.unique(values[a]).tolist())
        self.rule_attributes = np.array(
            [[a in r.attributes for a in attributes] for r in rules.enrich], dtype=np.bool_
        ).reshape(len(rules.enrich), len(attributes))
        self.attribute_rows = np.array([space.row_of[a] for a in attributes], dtype=np.int64)
        self.attribute_ids = np.array([vocab.intern(a) for a in attributes], dtype=np.int32)
        self.attribute_values = values
        self.rule_significance = np.array([r.significance for r in rules.classify], dtype=np.int8)
        self.significance_ids = sig_ids
        starts = np.cumsum([0, *map(len, stages)])[: kernel.STAGES].astype(np.int64)
        stage_of = np.repeat(np.arange(kernel.STAGES, dtype=np.int64), [len(s) for s in stages])
        self.stages = (stage_of, starts)
        self.flap = _counted_arrays(rules.flap, lambda r: r.changes + 1, "flap", space)
        self.threshold = _counted_arrays(rules.threshold, lambda r: r.count, "threshold", space)
        self.largest = int(max(self.flap[1].max(initial=0), self.threshold[1].max(initial=0)))
        self.enrich_program, self.classify_program, self.main_program = enrich, classify, main
        # Per program its scan scratch and hits; ``process`` owns the alert's label column.
        self._buffers = [p.buffers()[1:] for p in (enrich, classify, main)]
        self._enrich_flags = np.zeros(len(rules.enrich), dtype=np.bool_)
        self._stage_first = np.zeros(kernel.STAGES, dtype=np.int64)
        self._main_memo = _Memo(main)

    def kernel_inputs(self, windows: tuple[np.ndarray, ...]) -> tuple[tuple[Any, ...], ...]:
        """The enrich, classify and main arguments of ``kernel.decide``, as the programs'
        tables are now (learning new values may replace them), with the maintenance
        ``windows`` of the batch."""
        enrich, classify, main = self.enrich_program, self.classify_program, self.main_program
        enrich_buffers, classify_buffers, main_buffers = self._buffers
        return (
            (
                enrich.n_clauses > 0,
                enrich.arrays,
                *enrich_buffers,
                self.rule_attributes,
                self.attribute_rows,
                self.attribute_values,
                self._enrich_flags,
            ),
            (
                classify.n_clauses > 0,
                self.classify_folded,
                classify.arrays,
                *classify_buffers,
                self.rule_significance,
                SIGNIFICANCE_BY_SEVERITY,
                self.space.row_of.get("significance", -1),
                self.significance_ids,
            ),
            (
                main.arrays,
                *main_buffers,
                self._stage_first,
                *self._main_memo.arrays(),
                self.stages,
                windows,
            ),
        )


class _State:
    """Flap and threshold state: a table from keys to records in a pool (see ``kernel``)."""

    def __init__(self, slots: int = 1024, pool: int = 8192) -> None:
        self.table = np.zeros((slots, 2), dtype=np.uint64)
        self.pool = np.zeros(pool, dtype=np.int64)
        self.ctr = np.zeros(2, dtype=np.int64)  # records, pool slots used

    def arrays(self) -> tuple[np.ndarray, ...]:
        """What the kernel reads and writes."""
        return (self.table, self.pool, self.ctr)

    def grow(self, largest: int) -> None:
        """Make room for two more records of up to ``largest`` times each."""
        records, used = int(self.ctr[0]), int(self.ctr[1])
        room = 2 * (kernel.RECORD_HEADER + largest)
        if used + room > len(self.pool):
            grown = np.zeros(max(2 * len(self.pool), used + room), dtype=np.int64)
            grown[:used] = self.pool[:used]
            self.pool = grown
        slots = len(self.table)
        while 2 * (records + 2) > slots:
            slots *= 2
        if slots > len(self.table):
            keys, offsets = self._occupied()
            self.table = np.zeros((slots, 2), dtype=np.uint64)
            kernel.reinsert(self.table, keys, offsets)

    def _occupied(self) -> tuple[np.ndarray, np.ndarray]:
        used = self.table[:, 1] != 0
        return self.table[used, 0], self.table[used, 1].astype(np.int64) - 1

    def carried(self, tags: dict[int, int]) -> _State:
        """A new state with the records whose tag is in ``tags``, retagged as it says."""
        keys, offsets = self._occupied()
        keep = np.isin(self.pool[offsets], np.array(list(tags), dtype=np.int64))
        keys, offsets = keys[keep], offsets[keep]
        lengths = kernel.RECORD_HEADER + self.pool[offsets + 1]
        starts = (np.cumsum(lengths) - lengths).astype(np.int64)
        total = int(lengths.sum())
        slots = 1 << max(10, (4 * len(keys) - 1).bit_length())  # a power of two: see kernel
        new = _State(slots, max(8192, 2 * total))
        inside = np.arange(total, dtype=np.int64) - np.repeat(starts, lengths)
        new.pool[:total] = self.pool[np.repeat(offsets, lengths) + inside]
        new.pool[starts] = [tags[int(t)] for t in self.pool[offsets].tolist()]
        new.ctr[:] = (len(keys), total)
        kernel.reinsert(new.table, keys, starts)
        return new


def _rule_sizes(compiled: CompiledRules) -> dict[str, np.ndarray]:
    """Per flap and threshold rule, in order: its state key hash and how many times it keeps."""
    return {
        stage: np.stack([rules[0], rules[1].astype(np.uint64)])
        for stage, rules in (("flap", compiled.flap), ("threshold", compiled.threshold))
    }


def _carried_tags(old: dict[str, np.ndarray], new: dict[str, np.ndarray]) -> dict[int, int]:
    """Old record tag to new one, for flap/threshold rules that keep stage, name and size
    (both sides as ``_rule_sizes`` gives them)."""
    bases = {"flap": kernel.FLAP_TAG, "threshold": kernel.THRESHOLD_TAG}
    now = {}
    for stage, base in bases.items():
        for k, (h, size) in enumerate(new[stage].T.tolist()):
            now[h] = (base + k, size)
    tags = {}
    for stage, base in bases.items():
        for k, (h, size) in enumerate(old[stage].T.tolist()):
            if h in now and now[h][1] == size:
                tags[base + k] = now[h][0]
    return tags


class FirstLevel:
    """Classify, drop, maintenance, flap, threshold and enrich over a stream of batches."""

    def __init__(self, rules: RuleSet, vocab: Vocabulary, topology: Topology | None = None) -> None:
        self.vocab = vocab
        self._compiled = CompiledRules(rules, vocab, topology)
        self._state = _State()
        self._pending_rows = np.zeros(0, dtype=np.int64)
        self._pending_rules = np.zeros((2, 0), dtype=np.int32)
        self._pending_keys = np.zeros((2, 0), dtype=np.uint64)
        self._pending_count = np.zeros(1, dtype=np.int64)

    @property
    def rules(self) -> RuleSet:
        """The rule set running now."""
        return self._compiled.rules

    @property
    def programs(self) -> dict[str, MatchProgram]:
        """The second level's selectors compiled over ``FirstLevelOutcome.columns``."""
        return self._compiled.programs

    @property
    def state_entries(self) -> int:
        """How many flap/threshold keys the state holds."""
        return int(self._state.ctr[0])

    def reload(self, rules: RuleSet, topology: Topology | None) -> None:
        """Replace the rule set (and topology) between batches; on error the old one stays."""
        compiled = CompiledRules(rules, self.vocab, topology)
        tags = _carried_tags(_rule_sizes(self._compiled), _rule_sizes(compiled))
        self._state = self._state.carried(tags)
        self._compiled = compiled

    def export_state(self) -> dict[str, np.ndarray]:
        """The flap and threshold window state as named arrays (for a snapshot).

        A key hashes the rule with the alert's fingerprint or with the string ids of the
        rule's ``key`` labels, so the state must go back into a ``FirstLevel`` whose
        vocabulary gives the same ids (one restored from the same snapshot, as the
        correlator's is). ``flap_rules`` and ``threshold_rules`` say which rules the
        records belong to, so an import under another rule set keeps what ``reload``
        would keep.
        """
        state = self._state
        used = int(state.ctr[1])
        return {
            "table": state.table.copy(),
            "pool": state.pool[:used].copy(),
            "counters": state.ctr.copy(),
            **{f"{stage}_rules": sizes for stage, sizes in _rule_sizes(self._compiled).items()},
        }

    def import_state(self, arrays: dict[str, np.ndarray]) -> None:
        """Take over the window state of ``export_state`` (see there), replacing this one's."""
        table = np.ascontiguousarray(arrays["table"], dtype=np.uint64)
        pool = np.asarray(arrays["pool"], dtype=np.int64)
        exported = _State(len(table), max(8192, 2 * len(pool)))
        exported.table[:] = table
        exported.pool[: len(pool)] = pool
        exported.ctr[:] = np.asarray(arrays["counters"], dtype=np.int64)
        old = {stage: np.asarray(arrays[f"{stage}_rules"]) for stage in ("flap", "threshold")}
        self._state = exported.carried(_carried_tags(old, _rule_sizes(self._compiled)))

    def process(self, batch: AlertBatch) -> FirstLevelOutcome:
        """Decide every alert of ``batch`` (sorted into event-time order first)."""
        compiled = self._compiled
        batch = batch.in_time_order()
        n = len(batch)
        space = compiled.space
        labels = space.labels(batch)
        cols = np.empty((len(space.names), n), dtype=np.int32)
        vals = np.zeros(len(space.names), dtype=np.int32)
        lo, hi = (int(batch.ts[0]), int(batch.ts[-1])) if n else (0, 0)
        windows = rule_intervals(compiled.rules.maintenance, lo, hi)
        fate = np.empty(n, dtype=np.int8)
        rule = np.empty(n, dtype=np.int32)
        significance = np.empty(n, dtype=np.int8)
        classified = np.empty(n, dtype=np.int32)
        added = np.zeros(n if compiled.rules.enrich else 0, dtype=np.uint64)
        out = (fate, rule, significance, classified, added)
        alerts = (batch.ts, batch.status, batch.severity, batch.ci)
        pending = self._pending(n)
        position = 0
        while True:
            inputs = compiled.kernel_inputs(windows)
            position, need = kernel.decide(
                position, alerts, labels, cols, vals, *inputs, out, pending
            )
            if need == kernel.DONE:
                break
            kernel.extract(position, labels, batch.ci, cols, vals)
            space.learn_unseen(cols, position)
        position = 0
        while True:
            position, need = kernel.settle(
                position,
                pending,
                (batch.ts, batch.fingerprint, batch.status),
                cols,
                compiled.flap,
                compiled.threshold,
                self._state.arrays(),
                (fate, rule),
            )
            if need == kernel.DONE:
                break
            self._state.grow(compiled.largest)
        if added.any():
            ptr, keys, values = kernel.append_labels(
                batch.label_ptr,
                batch.label_key,
                batch.label_value,
                added,
                compiled.attribute_ids,
                compiled.attribute_rows,
                cols,
            )
            batch = replace(batch, label_ptr=ptr, label_key=keys, label_value=values)
        columns = LabelColumns(space.names, cols)
        return FirstLevelOutcome(
            batch, significance, classified, fate, rule, columns, compiled.rules
        )

    def _pending(self, n: int) -> tuple[np.ndarray, ...]:
        """The ``pending`` buffers of ``kernel.decide`` for ``n`` alerts, emptied; kept
        across batches, because fresh pages cost more than the stages that use them."""
        if len(self._pending_rows) < n:
            self._pending_rows = np.zeros(n, dtype=np.int64)
            self._pending_rules = np.zeros((2, n), dtype=np.int32)
            self._pending_keys = np.zeros((2, n), dtype=np.uint64)
        self._pending_count[0] = 0
        return (
            self._pending_rows,
            self._pending_rules[0],
            self._pending_rules[1],
            self._pending_keys[0],
            self._pending_keys[1],
            self._pending_count,
        )
