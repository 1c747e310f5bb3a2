"""``AlertBatch``, the columnar form every stage after decoding works on.

A batch is struct-of-arrays: one numpy array per field, labels in CSR form
(``label_ptr`` delimits each alert's ids in ``label_key``/``label_value``),
strings interned in a ``Vocabulary``. ``Normalizer`` turns an Arrow table in
the canonical schema (``correlator.schema``) into a batch: event time and
status by the rules of DESIGN.md, the Alertmanager fingerprint, the
configuration item found from the CI labels, and a severity code; rows it
cannot use come back as ``Reject`` records.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numba
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from correlator.fingerprint import FingerprintMemo
from correlator.rejects import Reject
from correlator.schema import ALERT_SCHEMA, FIRING, RESOLVED
from correlator.vocab import Vocabulary

SEVERITY_NAMES = ("unknown", "info", "warning", "error", "critical")
UNKNOWN_SEVERITY, INFO, WARNING, ERROR, CRITICAL = range(5)
_SEVERITY_WORDS = {
    INFO: ("info", "informational", "none", "debug", "notice", "ok"),
    WARNING: ("warning", "warn", "minor", "low", "average"),
    ERROR: ("error", "err", "major", "high"),
    CRITICAL: ("critical", "crit", "page", "fatal", "emergency", "disaster", "alert"),
}
SEVERITY_CODES = {word: code for code, words in _SEVERITY_WORDS.items() for word in words}

DEFAULT_CI_LABELS = ("ci", "instance", "host", "hostname", "node")
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_CHECK_OK, _CHECK_DUPLICATE, _CHECK_BAD_NAME = 0, 1, 2
# Arrow scalars built once: pyarrow converts a bare Python value on every call,
# which costs far more than the computation on a small batch.
_ZERO = pa.scalar(0, pa.int64())
_FALSE = pa.scalar(False)
_FIRING = pa.scalar("firing")
_RESOLVED = pa.scalar("resolved")
# Rows the normalizer refuses, in increasing precedence (the last that applies is reported).
_NORMALIZE_REJECTS = (
    "no_timestamp",
    "bad_status",
    "invalid_label_name",
    "duplicate_label",
    "too_many_labels",
    "no_labels",
)


@dataclass(frozen=True)
class AlertBatch:
    """Alerts as columns; ``row`` is each alert's position in the input."""

    ts: np.ndarray
    fingerprint: np.ndarray
    ci: np.ndarray
    ci_label: np.ndarray
    alertname: np.ndarray
    severity: np.ndarray
    status: np.ndarray
    label_ptr: np.ndarray
    label_key: np.ndarray
    label_value: np.ndarray
    row: np.ndarray

    def __len__(self) -> int:
        return len(self.ts)

    def take(self, index: np.ndarray) -> AlertBatch:
        """The alerts at ``index``, in that order (labels gathered too)."""
        counts = np.diff(self.label_ptr)[index]
        ptr = np.zeros(len(index) + 1, dtype=np.int64)
        np.cumsum(counts, out=ptr[1:])
        flat = _gather_ranges(self.label_ptr, index, ptr)
        return AlertBatch(
            ts=self.ts[index],
            fingerprint=self.fingerprint[index],
            ci=self.ci[index],
            ci_label=self.ci_label[index],
            alertname=self.alertname[index],
            severity=self.severity[index],
            status=self.status[index],
            label_ptr=ptr,
            label_key=self.label_key[flat],
            label_value=self.label_value[flat],
            row=self.row[index],
        )

    def in_time_order(self) -> AlertBatch:
        """The batch sorted by event time, ties kept in input order."""
        if len(self) < 2 or bool(np.all(self.ts[:-1] <= self.ts[1:])):
            return self
        return self.take(np.argsort(self.ts, kind="stable"))

    def labels(self, i: int, vocab: Vocabulary) -> dict[str, str]:
        """The labels of alert ``i`` as strings (for messages and tests)."""
        lo, hi = self.label_ptr[i], self.label_ptr[i + 1]
        return {
            vocab[int(k)]: vocab[int(v)]
            for k, v in zip(self.label_key[lo:hi], self.label_value[lo:hi], strict=True)
        }


@numba.njit(nogil=True, cache=True)
def _gather_ranges(ptr, index, out_ptr):
    flat = np.empty(out_ptr[-1], dtype=np.int64)
    for j in range(index.shape[0]):
        lo = ptr[index[j]]
        base = out_ptr[j]
        for k in range(out_ptr[j + 1] - base):
            flat[base + k] = lo + k
    return flat


@numba.njit(nogil=True, cache=True)
def _label_fields(
    ptr, keys, values, alertname_key, severity_key, ci_priority, ci_lut, severity_lut, name_ok
):
    n = ptr.shape[0] - 1
    alertname = np.zeros(n, dtype=np.int32)
    severity = np.zeros(n, dtype=np.int8)
    ci = np.full(n, -1, dtype=np.int32)
    ci_label = np.zeros(n, dtype=np.int32)
    check = np.zeros(n, dtype=np.int8)
    for i in range(n):
        best = ci_priority.shape[0]
        best_label = ci_priority.shape[0]
        for j in range(ptr[i], ptr[i + 1]):
            k = keys[j]
            v = values[j]
            if not name_ok[k]:
                check[i] = _CHECK_BAD_NAME
            for p in range(ptr[i], j):
                if keys[p] == k:
                    check[i] = _CHECK_DUPLICATE
            if k == alertname_key:
                alertname[i] = v
            elif k == severity_key:
                severity[i] = severity_lut[v]
            for p in range(ci_priority.shape[0]):
                if ci_priority[p] == k:
                    if p < best_label:
                        best_label = p
                        ci_label[i] = v
                    if p < best and ci_lut[v] >= 0:
                        best = p
                        ci[i] = ci_lut[v]
    return alertname, severity, ci, ci_label, check


class CIResolver(Protocol):
    """What the normalizer needs of a topology: a label value to a CI index or -1."""

    def resolve(self, value: str) -> int: ...


def _timestamps(table: pa.Table, name: str) -> tuple[np.ndarray, np.ndarray]:
    """A timestamp column as int64 ns plus a 'set' mask (null and year < 1678 are unset).

    A column with no nulls or only nulls (``startsAt``, and ``endsAt`` or
    ``receivedAt`` of live alerts) skips the null handling, and one of
    nanoseconds without nulls is read in place: on a batch of a few hundred
    alerts those calls cost more than the data.
    """
    n = table.num_rows
    index = table.schema.get_field_index(name)
    if index < 0:
        return np.zeros(n, dtype=np.int64), np.zeros(n, dtype=bool)
    column = table.column(index)
    if column.null_count == n:
        return np.zeros(n, dtype=np.int64), np.zeros(n, dtype=bool)
    if pa.types.is_timestamp(column.type) and column.type.unit == "ns" and not column.null_count:
        return column.to_numpy().view(np.int64), np.ones(n, dtype=bool)
    column = column.combine_chunks()
    if pa.types.is_timestamp(column.type) and column.type.unit != "ns":
        raw = pc.cast(column, pa.int64()).to_numpy(zero_copy_only=False)
        scale = {"s": 10**9, "ms": 10**6, "us": 10**3}[column.type.unit]
        valid = ~np.asarray(column.is_null().to_numpy(zero_copy_only=False))
        limit = np.iinfo(np.int64).max // scale
        valid &= (raw > -limit) & (raw < limit)
        ns = np.where(valid, raw, 0) * scale
        return ns, valid
    column = pc.cast(column, pa.int64())
    if column.null_count == 0:
        return column.to_numpy(), np.ones(n, dtype=bool)
    valid = ~np.asarray(column.is_null().to_numpy(zero_copy_only=False))
    ns = pc.fill_null(column, _ZERO).to_numpy()
    return ns, valid


class Normalizer:
    """Turns canonical Arrow tables into ``AlertBatch``es, interning as it goes.

    It keeps per-string lookup tables (severity code, CI index, label-name
    validity) that grow with the vocabulary, so each distinct string is
    examined once for the life of the normalizer, and a bounded memo of the
    label sets it fingerprinted, so a resent alert's strings are not hashed again.
    """

    def __init__(
        self,
        vocab: Vocabulary,
        resolver: CIResolver | None = None,
        *,
        ci_labels: Sequence[str] = DEFAULT_CI_LABELS,
        max_labels: int = 256,
    ) -> None:
        self.vocab = vocab
        self._resolver = resolver
        self.max_labels = max_labels
        self._alertname = vocab.intern("alertname")
        self._severity = vocab.intern("severity")
        self._ci_priority = np.array([vocab.intern(name) for name in ci_labels], dtype=np.int32)
        self._severity_lut = np.zeros(0, dtype=np.int8)
        self._ci_lut = np.zeros(0, dtype=np.int32)
        self._name_ok = np.zeros(0, dtype=np.bool_)
        self._fingerprints = FingerprintMemo()

    def _extend_tables(self) -> None:
        start = len(self._ci_lut)
        end = len(self.vocab)
        if start == end:
            return
        texts = self.vocab.strings(range(start, end))
        self._severity_lut = np.concatenate(
            [
                self._severity_lut,
                np.array([SEVERITY_CODES.get(t.lower(), 0) for t in texts], dtype=np.int8),
            ]
        )
        resolve = self._resolver.resolve if self._resolver is not None else None
        cis = [resolve(t) for t in texts] if resolve is not None else [-1] * len(texts)
        self._ci_lut = np.concatenate([self._ci_lut, np.array(cis, dtype=np.int32)])
        self._name_ok = np.concatenate(
            [
                self._name_ok,
                np.array([_LABEL_NAME.fullmatch(t) is not None for t in texts], dtype=np.bool_),
            ]
        )

    def intern_labels(self, column: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """A label-map column as CSR: per-alert offsets, name ids and value ids.

        Every distinct string is interned; the name ranks the fingerprint
        needs are brought up to date with every label name in the column.
        """
        ptr_parts = [np.zeros(1, dtype=np.int64)]
        key_parts = []
        value_parts = []
        names = [np.zeros(0, dtype=np.int32)]
        base = 0
        for chunk in column.chunks:
            if not isinstance(chunk, pa.MapArray):
                chunk = pc.cast(chunk, ALERT_SCHEMA.field("labels").type)
            offsets = chunk.offsets.to_numpy().astype(np.int64)
            lo, hi = int(offsets[0]), int(offsets[-1])
            keys, distinct = self.vocab.intern_arrow(chunk.keys.slice(lo, hi - lo))
            key_parts.append(keys)
            names.append(distinct)
            value_parts.append(self.vocab.intern_arrow(chunk.items.slice(lo, hi - lo))[0])
            ptr_parts.append(offsets[1:] - lo + base)
            base += hi - lo
        self.vocab.name_rank(np.concatenate(names))
        empty = np.zeros(0, dtype=np.int32)
        return (
            np.concatenate(ptr_parts),
            np.concatenate(key_parts) if key_parts else empty,
            np.concatenate(value_parts) if value_parts else empty,
        )

    def normalize(
        self, table: pa.Table, rows: np.ndarray, *, received_at: int | None = None
    ) -> tuple[AlertBatch, list[Reject]]:
        """The usable rows of a canonical ``table`` as a batch, and a reject for each other row.

        ``rows[i]`` is the input position of table row ``i``. ``received_at``
        (ns) stamps every row's event time, as the live daemon does on arrival;
        without it the rows' own ``receivedAt`` or ``startsAt``/``endsAt`` decide.
        """
        ptr, keys, values = self.intern_labels(table.column("labels"))
        return self.normalize_interned(table, ptr, keys, values, rows, received_at=received_at)

    def normalize_interned(
        self,
        table: pa.Table,
        ptr: np.ndarray,
        keys: np.ndarray,
        values: np.ndarray,
        rows: np.ndarray,
        *,
        received_at: int | None = None,
    ) -> tuple[AlertBatch, list[Reject]]:
        """``normalize`` for a table whose labels are already vocabulary ids.

        ``ptr``/``keys``/``values`` are the labels in CSR form (as
        ``intern_labels`` gives them); ``table``'s own labels column, if any,
        is not read. This is how the daemon skips interning: its decode
        stream ships label ids (``correlator.daemon.wire``).
        """
        n = table.num_rows
        name_rank = self.vocab.name_rank(keys)
        self._extend_tables()

        alertname, severity, ci, ci_label, check = _label_fields(
            ptr,
            keys,
            values,
            self._alertname,
            self._severity,
            self._ci_priority,
            self._ci_lut,
            self._severity_lut,
            self._name_ok,
        )
        starts, starts_set = _timestamps(table, "startsAt")
        ends, ends_set = _timestamps(table, "endsAt")
        if received_at is None:
            recv, recv_set = _timestamps(table, "receivedAt")
        else:
            recv, recv_set = np.full(n, received_at, dtype=np.int64), np.ones(n, dtype=bool)

        status_known = np.zeros(n, dtype=bool)
        status_resolved = np.zeros(n, dtype=bool)
        bad_status = np.zeros(n, dtype=bool)
        if "status" in table.column_names and table.column("status").null_count < n:
            status = table.column("status").combine_chunks()
            present = ~np.asarray(status.is_null().to_numpy(zero_copy_only=False))
            firing = np.asarray(pc.fill_null(pc.equal(status, _FIRING), _FALSE))
            resolved = np.asarray(pc.fill_null(pc.equal(status, _RESOLVED), _FALSE))
            status_known = firing | resolved
            status_resolved = resolved
            bad_status = present & ~status_known

        by_time = np.where(recv_set, ends_set & (ends <= recv), ends_set)
        is_resolved = np.where(status_known, status_resolved, by_time)
        ts = np.where(recv_set, recv, np.where(is_resolved & ends_set, ends, starts))
        ts_set = recv_set | np.where(is_resolved & ends_set, ends_set, starts_set)

        counts = np.diff(ptr)
        reason = np.zeros(n, dtype=np.int8)
        for code, failed in enumerate(
            (
                ~ts_set,
                bad_status,
                check == _CHECK_BAD_NAME,
                check == _CHECK_DUPLICATE,
                counts > self.max_labels,
                counts == 0,
            ),
            start=1,
        ):
            reason[failed] = code
        bad = np.flatnonzero(reason)
        rejects = [Reject(int(rows[i]), _NORMALIZE_REJECTS[reason[i] - 1]) for i in bad]

        string_bytes, string_offsets = self.vocab.byte_buffer()
        batch = AlertBatch(
            ts=ts.astype(np.int64),
            fingerprint=self._fingerprints.fingerprints(
                ptr, keys, values, name_rank, string_bytes, string_offsets
            ),
            ci=ci,
            ci_label=ci_label,
            alertname=alertname,
            severity=severity,
            status=np.where(is_resolved, RESOLVED, FIRING).astype(np.int8),
            label_ptr=ptr,
            label_key=keys,
            label_value=values,
            row=np.asarray(rows, dtype=np.int64),
        )
        if len(bad):
            batch = batch.take(np.flatnonzero(reason == 0))
        return batch, rejects


def _empty_batch() -> AlertBatch:
    empty32 = np.zeros(0, dtype=np.int32)
    return AlertBatch(
        ts=np.zeros(0, dtype=np.int64),
        fingerprint=np.zeros(0, dtype=np.uint64),
        ci=empty32,
        ci_label=empty32,
        alertname=empty32,
        severity=np.zeros(0, dtype=np.int8),
        status=np.zeros(0, dtype=np.int8),
        label_ptr=np.zeros(1, dtype=np.int64),
        label_key=empty32,
        label_value=empty32,
        row=np.zeros(0, dtype=np.int64),
    )


def concat_labels(
    parts: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Labels in CSR form (offsets, name ids, value ids), one after the other, as one."""
    if len(parts) == 1:
        return parts[0]
    if not parts:
        empty = np.zeros(0, dtype=np.int32)
        return np.zeros(1, dtype=np.int64), empty, empty
    bases = np.cumsum([0] + [int(ptr[-1]) for ptr, _, _ in parts[:-1]])
    ptr = np.concatenate(
        [np.zeros(1, dtype=np.int64)]
        + [part[1:] + base for (part, _, _), base in zip(parts, bases, strict=True)]
    )
    keys = np.concatenate([k for _, k, _ in parts])
    values = np.concatenate([v for _, _, v in parts])
    return ptr, keys, values


def concat_batches(batches: Sequence[AlertBatch]) -> AlertBatch:
    """One batch holding ``batches`` in order (ids must come from one vocabulary)."""
    if not batches:
        return _empty_batch()
    if len(batches) == 1:
        return batches[0]
    ptr, keys, values = concat_labels([(b.label_ptr, b.label_key, b.label_value) for b in batches])
    return AlertBatch(
        ts=np.concatenate([b.ts for b in batches]),
        fingerprint=np.concatenate([b.fingerprint for b in batches]),
        ci=np.concatenate([b.ci for b in batches]),
        ci_label=np.concatenate([b.ci_label for b in batches]),
        alertname=np.concatenate([b.alertname for b in batches]),
        severity=np.concatenate([b.severity for b in batches]),
        status=np.concatenate([b.status for b in batches]),
        label_ptr=ptr,
        label_key=keys,
        label_value=values,
        row=np.concatenate([b.row for b in batches]),
    )
