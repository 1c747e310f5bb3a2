"""Matchers compiled to per-string lookup tables, combined per alert by numba.

A ``LabelSpace`` names the label (and derived-field) columns a rule set
reads. For each batch it builds a column matrix with one numba pass over the
CSR labels: ``columns[r, i]`` is the string id of label ``names[r]`` on alert
``i`` (0, the empty string, when absent, as in Prometheus).

A ``MatchProgram`` compiles a list of selectors. Each alternative of a
selector is a *clause* (an AND of matchers); clause ``c`` is bit ``c`` of a
bitset. For each label the program reads, every distinct value is mapped to a
*class*: the set of clauses whose matchers on that label it satisfies
(clauses with no matcher on the label are always satisfied). So per alert,
the clauses that hold are the AND of one class bitset per label, and no regex
runs per alert. Values are evaluated lazily, once per (label, string id):
an unlearned value has class -1, a kernel that meets one stops, and the
space evaluates every value of the rest of the batch it has not seen yet.

Clauses that read only the program's *primary* label (the one most clauses
constrain, usually ``alertname``), like ``alertname="DiskFull"``, need no
bits: the primary class alone says whether they hold, so each primary class
lists their selectors. The other clauses are bits, ordered by their
constraint on the primary label so that clauses needing the same value share
words; each primary class keeps the list of its non-zero words and the scan
visits only those. That keeps 2,000 rules close to the cost of 200.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

import numpy as np

from correlator.batch import AlertBatch
from correlator.matchers import Matcher, MatcherSet
from correlator.rules import kernel
from correlator.rules.kernel import ONE
from correlator.rules.model import Selector
from correlator.vocab import Vocabulary

PENDING_CAPACITY = 1 << 16


class LabelColumns:
    """Per-alert string ids of the labels a rule set reads: ``values[row_of[name], i]``."""

    def __init__(self, names: Sequence[str], values: np.ndarray) -> None:
        self.names = tuple(names)
        self.row_of = {name: r for r, name in enumerate(self.names)}
        self.values = values

    def column(self, name: str) -> np.ndarray:
        """The string ids of ``name`` per alert (0 when absent)."""
        return self.values[self.row_of[name]]

    def take(self, index: np.ndarray) -> LabelColumns:
        """The columns of the alerts at ``index``, in that order."""
        return LabelColumns(self.names, np.ascontiguousarray(self.values[:, index]))


class LabelSpace:
    """The label and derived-field names a rule set reads, as rows of a column matrix.

    ``ci_type`` is filled from the alert's CI (``ci_type_ids[ci]``, the string id of
    its type name); ``significance`` is left 0 for the first-level kernel to fill.
    """

    def __init__(
        self, names: Iterable[str], vocab: Vocabulary, ci_type_ids: np.ndarray | None = None
    ) -> None:
        self.vocab = vocab
        self.names = tuple(sorted(set(names) | {"alertname"}))
        self.row_of = {name: r for r, name in enumerate(self.names)}
        self.ci_type_ids = (
            ci_type_ids if ci_type_ids is not None else np.zeros(0, dtype=np.int32)
        ).astype(np.int32)
        self.ci_type_row = self.row_of.get("ci_type", -1)
        self._name_ids = np.array([vocab.intern(n) for n in self.names], dtype=np.int64)
        self._raw = np.array([n not in ("ci_type", "significance") for n in self.names])
        self._capacity = 0
        self._key_row = np.zeros(0, dtype=np.int32)
        self._seen = np.zeros((len(self.names), 0), dtype=np.uint8)
        self._programs: list[MatchProgram] = []
        self._pend = np.zeros((PENDING_CAPACITY, 2), dtype=np.int64)

    @property
    def capacity(self) -> int:
        """How many string ids the per-id tables hold."""
        return self._capacity

    def seen_row(self, row: int) -> np.ndarray:
        """Which string ids were evaluated as values of row ``row`` (id 0 always is)."""
        return self._seen[row]

    def register(self, program: MatchProgram) -> None:
        """Let ``program`` learn every value this space sees from now on."""
        self._programs.append(program)

    def reserve(self) -> None:
        """Grow the per-id tables to cover the whole vocabulary."""
        size = len(self.vocab)
        if size <= self._capacity:
            return
        capacity = max(1024, self._capacity)
        while capacity < size:
            capacity *= 2
        seen = np.zeros((len(self.names), capacity), dtype=np.uint8)
        seen[:, : self._capacity] = self._seen
        seen[:, 0] = 1  # the empty string: every program classifies it when built
        self._seen = seen
        self._key_row = np.full(capacity, -1, dtype=np.int32)
        raw = self._name_ids[self._raw]
        self._key_row[raw] = np.flatnonzero(self._raw)
        for program in self._programs:
            program.grow(capacity)
        self._capacity = capacity

    def learn(self, name: str, ids: Iterable[int]) -> None:
        """Evaluate every program's matchers on ``ids`` as values of ``name`` now."""
        self.reserve()
        row = self.row_of.get(name)
        if row is None:
            return
        fresh = [i for i in dict.fromkeys(ids) if not self._seen[row, i]]
        self._seen[row, fresh] = 1
        self._teach(row, fresh)

    def _teach(self, row: int, ids: list[int]) -> None:
        if ids:
            strings = self.vocab.strings(ids)
            for program in self._programs:
                program.learn(row, ids, strings)

    def labels(self, batch: AlertBatch) -> tuple[object, ...]:
        """What the kernels read to fill a batch's columns (``kernel.extract``, ``decide``)."""
        self.reserve()
        return (
            batch.label_ptr,
            batch.label_key,
            batch.label_value,
            self._key_row,
            self.ci_type_row,
            self.ci_type_ids,
        )

    def columns(self, batch: AlertBatch) -> LabelColumns:
        """The batch's column matrix (values are learned lazily: see ``learn_unseen``)."""
        cols = np.empty((len(self.names), len(batch)), dtype=np.int32)
        kernel.extract(0, self.labels(batch), batch.ci, cols, np.zeros(len(cols), dtype=np.int32))
        return LabelColumns(self.names, cols)

    def learn_unseen(self, cols: np.ndarray, start: int = 0) -> None:
        """Evaluate every program's matchers on the values of ``cols[:, start:]`` not seen yet."""
        self.reserve()
        while True:
            found = kernel.collect_unseen(cols, start, self._seen, self._pend)
            pend = self._pend[:found]
            for row in np.unique(pend[:, 0]).tolist():
                self._teach(row, pend[pend[:, 0] == row, 1].tolist())
            if found < len(self._pend):
                return


def _sole_equality(matchers: tuple[Matcher, ...]) -> str | None:
    if len(matchers) == 1 and matchers[0].op == "=":
        return matchers[0].value
    return None


class _Constraints:
    """What some clauses require of one label: by equality value, or by matcher tests."""

    def __init__(self, clauses: Sequence[MatcherSet], name: str) -> None:
        self.equal: dict[str, list[int]] = {}
        self.general: list[tuple[int, tuple[Matcher, ...]]] = []
        self.free: list[int] = []
        for c, alternative in enumerate(clauses):
            on = tuple(m for m in alternative.matchers if m.name == name)
            value = _sole_equality(on)
            if not on:
                self.free.append(c)
            elif value is not None:
                self.equal.setdefault(value, []).append(c)
            else:
                self.general.append((c, on))

    def held(self, value: str) -> tuple[int, ...]:
        """The clauses whose matchers on this label ``value`` satisfies (free ones not listed)."""
        found = self.equal.get(value, [])
        found = found + [c for c, ms in self.general if all(m.matches(value) for m in ms)]
        return tuple(sorted(found))


class MatchProgram:
    """A list of selectors compiled to class tables over one ``LabelSpace``.

    Clauses that read only the primary label (or nothing) are *sure*: a primary
    class lists the selectors of the sure clauses it satisfies, no bits needed.
    The other clauses are bits, ANDed over the labels. ``arrays`` is the tuple the
    numba functions read.
    """

    def __init__(self, selectors: Sequence[Selector], space: LabelSpace) -> None:
        clauses = [(s, alt) for s, sel in enumerate(selectors) for alt in sel.alternatives]
        uses = Counter(name for _, alt in clauses for name in set(alt.names))
        primary = min(uses, key=lambda n: (-uses[n], n != "alertname", n), default="alertname")
        sure = [(s, alt) for s, alt in clauses if set(alt.names) <= {primary}]
        multi = [(s, alt) for s, alt in clauses if not set(alt.names) <= {primary}]

        def order(clause: tuple[int, MatcherSet]) -> tuple[int, str]:
            on_primary = tuple(m for m in clause[1].matchers if m.name == primary)
            value = _sole_equality(on_primary)
            return (2, "") if not on_primary else (0, value) if value is not None else (1, "")

        multi.sort(key=order)
        multi_uses = Counter(name for _, alt in multi for name in set(alt.names))
        others = sorted((n for n in uses if n != primary), key=lambda n: (-multi_uses[n], n))
        names = [primary, *others]
        self.n_selectors = len(selectors)
        self.n_clauses = len(clauses)
        self.words = max(1, -(-len(multi) // 64))
        self.clause_selector = np.array([s for s, _ in multi], dtype=np.int32)
        self.label_rows = np.array([space.row_of[n] for n in names], dtype=np.int64)
        self._row_labels = {int(r): k for k, r in enumerate(self.label_rows)}
        self._constraints = [_Constraints([alt for _, alt in multi], n) for n in names]
        self._sure = _Constraints([alt for _, alt in sure], primary)
        self._sure_selector = [s for s, _ in sure]
        self._signatures: list[dict[tuple[tuple[int, ...], ...], int]] = [{} for _ in names]
        self.value_class = np.full((len(names), 0), -1, dtype=np.int32)
        self.class_bits = np.zeros((len(names), 4, self.words), dtype=np.uint64)
        self._prim_ptr = np.zeros(1, dtype=np.int64)
        self._prim_words = np.zeros(0, dtype=np.int64)
        self._sure_ptr = np.zeros(1, dtype=np.int64)
        self._sure_sel = np.zeros(1, dtype=np.int32)
        self._space = space
        space.register(self)
        space.reserve()
        self.grow(space.capacity)
        for row in self._row_labels:
            known = [0, *np.flatnonzero(space.seen_row(row)).tolist()]
            self.learn(row, known, space.vocab.strings(known))

    @property
    def arrays(self) -> tuple[np.ndarray, ...]:
        """What the numba match functions read."""
        return (
            self.label_rows,
            self.value_class,
            self.class_bits,
            self._prim_ptr,
            self._prim_words,
            self.clause_selector,
            self._sure_ptr,
            self._sure_sel,
        )

    def class_counts(self) -> tuple[int, ...]:
        """How many classes each label the program reads has now (primary first)."""
        return tuple(len(signatures) for signatures in self._signatures)

    def buffers(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per-alert scratch for ``kernel._scan``: an alert's column of label ids, one class
        per label the program reads, and room for every selector that can hold on it."""
        return (
            np.zeros(len(self._space.names), dtype=np.int32),
            np.zeros(len(self.label_rows), dtype=np.int64),
            np.zeros(self.n_clauses + 1, dtype=np.int32),
        )

    def grow(self, capacity: int) -> None:
        """Cover string ids below ``capacity`` (new ids are not evaluated yet)."""
        old = self.value_class.shape[1]
        if capacity > old:
            grown = np.full((len(self.label_rows), capacity), -1, dtype=np.int32)
            grown[:, :old] = self.value_class
            self.value_class = grown

    def learn(self, row: int, ids: Sequence[int], strings: Sequence[str]) -> None:
        """Classify ``strings`` (string ids ``ids``) as values of the label in space row ``row``."""
        lab = self._row_labels.get(row)
        if lab is None:
            return
        constraints, signatures = self._constraints[lab], self._signatures[lab]
        for string_id, value in zip(ids, strings, strict=True):
            signature = (constraints.held(value),)
            if lab == 0:
                signature += (self._sure.held(value),)
            cls = signatures.get(signature)
            if cls is None:
                cls = signatures[signature] = self._new_class(lab, signature)
            self.value_class[lab, string_id] = cls

    def _new_class(self, lab: int, signature: tuple[tuple[int, ...], ...]) -> int:
        cls = len(self._signatures[lab])
        if cls == self.class_bits.shape[1]:
            grown = np.zeros((len(self.label_rows), 2 * cls, self.words), dtype=np.uint64)
            grown[:, :cls] = self.class_bits
            self.class_bits = grown
        bits = np.zeros(self.words, dtype=np.uint64)
        for c in (*self._constraints[lab].free, *signature[0]):
            bits[c // 64] |= ONE << np.uint64(c % 64)
        self.class_bits[lab, cls] = bits
        if lab == 0:
            rows = self.class_bits[0, : cls + 1] != 0
            self._prim_ptr = np.concatenate([[0], np.cumsum(rows.sum(axis=1))]).astype(np.int64)
            self._prim_words = np.nonzero(rows)[1].astype(np.int64)
            held = sorted({self._sure_selector[c] for c in (*self._sure.free, *signature[1])})
            end = int(self._sure_ptr[-1])
            spare = np.zeros(1, dtype=np.int32)  # the scan reads one past a class's list
            self._sure_sel = np.concatenate([self._sure_sel[:end], held, spare]).astype(np.int32)
            self._sure_ptr = np.append(self._sure_ptr, end + len(held))
        return cls

    def matches(self, columns: LabelColumns) -> tuple[np.ndarray, np.ndarray]:
        """Per alert, the selectors that hold: alert ``i``'s are ``sel[ptr[i]:ptr[i + 1]]``.

        Values not seen before are evaluated on the way.
        """
        cols = columns.values
        n = cols.shape[1]
        ptr = np.zeros(n + 1, dtype=np.int64)
        sel = np.zeros(max(1024, n), dtype=np.int32)
        buffers = self.buffers()
        position = 0
        while True:
            position, need = kernel.match(self.arrays, cols, position, ptr, sel, buffers)
            if need == kernel.DONE:
                return ptr, sel
            if need == kernel.NEED_LEARN:
                self._space.learn_unseen(cols, position)
            else:
                grown = np.zeros(2 * len(sel) + self.n_clauses + 1, dtype=np.int32)
                grown[: ptr[position]] = sel[: ptr[position]]
                sel = grown

    def first_match(self, columns: LabelColumns) -> np.ndarray:
        """Per alert, the index of the first selector that holds, or -1."""
        ptr, sel = self.matches(columns)
        return kernel.first_of(ptr, sel, columns.values.shape[1])

    def match_mask(self, columns: LabelColumns) -> np.ndarray:
        """``mask[i, s]``: selector ``s`` holds on alert ``i``."""
        ptr, sel = self.matches(columns)
        return kernel.mask_of(ptr, sel, columns.values.shape[1], self.n_selectors)
