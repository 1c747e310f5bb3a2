"""``Correlator``: owns the correlation state and turns batches into incident events.

The state is a set of numpy arrays (see ``layout``) mutated by the numba
kernel; this class grows them when the kernel reports one is full, and turns
the kernel's event rows into ``IncidentEvent`` records. It is used by one
thread (the correlation loop), so it takes no locks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from correlator.batch import SEVERITY_NAMES, AlertBatch
from correlator.correlate import kernel
from correlator.correlate.layout import (
    C_NF,
    CI_MEMBER_INC,
    CI_NF,
    CI_ROOT_INC,
    DONE,
    E_NF,
    EVENT_NAMES,
    EXCEPTION,
    I_GROUP_ALERTNAME,
    I_GROUP_VALUE,
    I_ID_ROOT,
    I_ID_TS,
    I_MERGED_INTO,
    I_NF,
    INFORMATIONAL,
    N_EV,
    N_INC,
    N_OPEN,
    NEED_ENT,
    NEED_EV,
    NEED_FPTAB,
    NEED_GRPTAB,
    NEED_INC,
    NEED_POOL,
    NEED_QUEUE,
    Q_HEAD,
    Q_TAIL,
    S_DEDUP,
    S_DROP_INFO,
    S_NF,
    S_UPDATE_INTERVAL,
    S_WINDOW,
    SIGNIFICANCE_NAMES,
    V_ALERTS,
    V_CI_HEAD,
    V_CI_LEN,
    V_FIRING,
    V_FIRST,
    V_FP_HEAD,
    V_FP_LEN,
    V_INC,
    V_KIND,
    V_LAST,
    V_MERGED_INTO,
    V_NF,
    V_ROOT,
    V_ROOT_ALERTNAME,
    V_SEVERITY,
    V_SIGNIFICANCE,
    V_TS,
    V_VERSION,
    WARNING_SIG,
)
from correlator.fingerprint import format_fingerprint
from correlator.incident import IncidentEvent, RootCause, incident_id
from correlator.timefmt import format_ns, format_span
from correlator.topology import Topology
from correlator.vocab import Vocabulary

SECOND = 10**9
# Significance by severity code (unknown, info, warning, error, critical).
SIGNIFICANCE_BY_SEVERITY = np.array(
    [WARNING_SIG, INFORMATIONAL, WARNING_SIG, EXCEPTION, EXCEPTION], dtype=np.int8
)


@dataclass(frozen=True)
class CorrelationSettings:
    """Windows of the first- and second-level stages, in nanoseconds of event time."""

    window: int = 300 * SECOND
    dedup_window: int = 300 * SECOND
    update_interval: int = 30 * SECOND
    drop_informational: bool = True

    def vector(self) -> np.ndarray:
        """The settings as the kernel reads them."""
        out = np.zeros(S_NF, dtype=np.int64)
        out[S_WINDOW] = self.window
        out[S_DEDUP] = self.dedup_window
        out[S_UPDATE_INTERVAL] = self.update_interval
        out[S_DROP_INFO] = int(self.drop_informational)
        return out


@dataclass
class Outcome:
    """What one batch did: the events emitted, and each alert's incident or drop reason.

    The arrays are in event-time order; ``row[i]`` is the alert's input row.
    ``incident[i]`` is an incident index (see ``Correlator.incident_ids``) or
    -1, in which case ``reason[i]`` names the drop (``layout.DROP_REASONS``).
    """

    events: list[IncidentEvent]
    row: np.ndarray
    incident: np.ndarray
    reason: np.ndarray


def _empty_table(capacity: int) -> tuple[np.ndarray, np.ndarray]:
    return np.zeros(capacity, dtype=np.uint64), np.full(capacity, -1, dtype=np.int64)


def _grow_rows(array: np.ndarray, rows: int, fill: int = 0) -> np.ndarray:
    grown = np.full((rows, *array.shape[1:]), fill, dtype=array.dtype)
    grown[: len(array)] = array
    return grown


class Correlator:
    """First-level filtering and topology collapse over a stream of alert batches."""

    def __init__(
        self,
        vocab: Vocabulary,
        topology: Topology | None = None,
        settings: CorrelationSettings | None = None,
        *,
        capacity: int = 1024,
    ) -> None:
        self.vocab = vocab
        self.topology = topology
        self.settings = settings or CorrelationSettings()
        self._settings = self.settings.vector()
        n_cis = topology.n_cis if topology is not None else 0
        if topology is not None:
            self._idom = topology.idom.astype(np.int64)
            self._tin = topology.tin.astype(np.int64)
            self._tout = topology.tout.astype(np.int64)
        else:
            self._idom = self._tin = self._tout = np.zeros(0, dtype=np.int64)
        self._ctr = np.zeros(C_NF, dtype=np.int64)
        self._fp_keys, self._fp_vals = _empty_table(2 * capacity)
        self._grp_keys, self._grp_vals = _empty_table(2 * capacity)
        self._ent = np.zeros((capacity, E_NF), dtype=np.int64)
        self._ent_fp = np.zeros(capacity, dtype=np.uint64)
        self._cis = np.zeros((n_cis, CI_NF), dtype=np.int64)
        self._cis[:, CI_ROOT_INC] = -1
        self._cis[:, CI_MEMBER_INC] = -1
        self._inc = np.zeros((capacity, I_NF), dtype=np.int64)
        self._open = np.zeros(capacity, dtype=np.int64)
        self._pool = np.zeros((2 * capacity, 2), dtype=np.int64)
        self._ev = np.zeros((capacity, V_NF), dtype=np.int64)
        self._queue = np.zeros((capacity, 2), dtype=np.int64)
        self._ids: list[str] = []

    @property
    def open_incidents(self) -> int:
        """How many incidents are open now."""
        return int(self._ctr[N_OPEN])

    @property
    def incidents_created(self) -> int:
        """How many incidents were ever opened."""
        return int(self._ctr[N_INC])

    def process(self, batch: AlertBatch) -> Outcome:
        """Correlate one batch (sorted into event-time order first)."""
        batch = batch.in_time_order()
        n = len(batch)
        significance = SIGNIFICANCE_BY_SEVERITY[batch.severity]
        out_inc = np.full(n, -1, dtype=np.int64)
        out_reason = np.zeros(n, dtype=np.int8)
        events: list[IncidentEvent] = []
        position = 0
        while True:
            position, need = kernel.correlate(
                position,
                batch.ts,
                batch.fingerprint,
                batch.ci,
                batch.alertname,
                batch.ci_label,
                batch.severity,
                significance,
                batch.status,
                self._idom,
                self._tin,
                self._tout,
                self._settings,
                self._ctr,
                self._fp_keys,
                self._fp_vals,
                self._ent,
                self._ent_fp,
                self._cis,
                self._inc,
                self._open,
                self._pool,
                self._grp_keys,
                self._grp_vals,
                self._ev,
                self._queue,
                out_inc,
                out_reason,
            )
            events.extend(self._drain_events())
            if need == DONE:
                break
            self._grow(need)
        return Outcome(events, batch.row, out_inc, out_reason)

    def advance(self, watermark: int) -> list[IncidentEvent]:
        """Let event time reach ``watermark`` (ns): emit the updates due by then."""
        self._grow(NEED_EV, self._ctr[N_OPEN] + 4)
        self._grow(NEED_QUEUE, self._ctr[N_OPEN] + 4)
        kernel.fire_timers(self._inc, self._ev, self._ctr, self._queue, self._settings, watermark)
        return self._drain_events()

    def flush(self) -> list[IncidentEvent]:
        """Emit every pending coalesced update (at the end of a replay)."""
        return self.advance(np.iinfo(np.int64).max)

    def incident_ids(self) -> list[str]:
        """Ids of every incident created so far, by incident index."""
        self._name_incidents()
        return self._ids

    def survivors(self, incidents: np.ndarray) -> np.ndarray:
        """Each incident index mapped to the incident it was (transitively) merged into."""
        created = int(self._ctr[N_INC])
        merged = self._inc[:created, I_MERGED_INTO]
        target = np.where(merged >= 0, merged, np.arange(created))
        while True:
            hop = target[target]
            if np.array_equal(hop, target):
                break
            target = hop
        if created == 0:
            return np.asarray(incidents).copy()
        return np.where(incidents >= 0, target[np.maximum(incidents, 0)], -1)

    def _name_incidents(self) -> None:
        created = int(self._ctr[N_INC])
        for j in range(len(self._ids), created):
            row = self._inc[j]
            root = int(row[I_ID_ROOT])
            if root >= 0 and self.topology is not None:
                key = self.topology.ci_ids[root]
            else:
                alertname = self.vocab[int(row[I_GROUP_ALERTNAME])]
                key = f"{alertname}/{self.vocab[int(row[I_GROUP_VALUE])]}"
            self._ids.append(incident_id(key, int(row[I_ID_TS])))

    def _grow(self, need: int, extra: int = 0) -> None:
        ctr = self._ctr
        if need == NEED_ENT:
            size = 2 * len(self._ent)
            self._ent = _grow_rows(self._ent, size)
            self._ent_fp = _grow_rows(self._ent_fp, size)
        elif need == NEED_INC:
            size = 2 * len(self._inc)
            self._inc = _grow_rows(self._inc, size)
            self._open = _grow_rows(self._open, size)
        elif need == NEED_POOL:
            self._pool = _grow_rows(self._pool, 2 * len(self._pool))
        elif need == NEED_EV:
            wanted = int(2 * ctr[N_OPEN] + 4 + extra)
            if ctr[N_EV] + wanted > len(self._ev):
                self._ev = _grow_rows(self._ev, max(2 * len(self._ev), int(ctr[N_EV]) + wanted))
        elif need == NEED_QUEUE:
            head, tail = int(ctr[Q_HEAD]), int(ctr[Q_TAIL])
            wanted = int(2 * ctr[N_OPEN] + 4 + extra)
            live = self._queue[head:tail].copy()
            size = len(self._queue)
            while len(live) + wanted > size:
                size *= 2
            self._queue = np.zeros((size, 2), dtype=np.int64)
            self._queue[: len(live)] = live
            ctr[Q_HEAD], ctr[Q_TAIL] = 0, len(live)
        elif need == NEED_FPTAB:
            self._fp_keys, self._fp_vals = self._rehash(self._fp_keys, self._fp_vals)
        elif need == NEED_GRPTAB:
            self._grp_keys, self._grp_vals = self._rehash(self._grp_keys, self._grp_vals)

    @staticmethod
    def _rehash(keys: np.ndarray, vals: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        new_keys, new_vals = _empty_table(2 * len(keys))
        kernel.table_rehash(keys, vals, new_keys, new_vals)
        return new_keys, new_vals

    def _drain_events(self) -> list[IncidentEvent]:
        count = int(self._ctr[N_EV])
        self._ctr[N_EV] = 0
        if count == 0:
            return []
        self._name_incidents()
        return [self._materialize(self._ev[e]) for e in range(count)]

    def _materialize(self, row: np.ndarray) -> IncidentEvent:
        topology = self.topology
        vocab = self.vocab
        j = int(row[V_INC])
        entities = kernel.collect(self._pool, int(row[V_FP_HEAD]), int(row[V_FP_LEN]))
        fingerprints = sorted(format_fingerprint(int(f)) for f in self._ent_fp[entities])
        cis = np.unique(kernel.collect(self._pool, int(row[V_CI_HEAD]), int(row[V_CI_LEN])))
        root = int(row[V_ROOT])
        root_alertname = int(row[V_ROOT_ALERTNAME])
        if root >= 0 and topology is not None:
            root_cause = RootCause(
                ci=topology.ci_ids[root],
                type=topology.type_names[topology.ci_type[root]],
                alertname=vocab[root_alertname] if root_alertname >= 0 else None,
            )
            affected = sorted(topology.ci_ids[c] for c in cis)
            services = topology.affected_services(cis)
        else:
            inc_row = self._inc[j]
            value = vocab[int(inc_row[I_GROUP_VALUE])]
            root_cause = RootCause(
                ci=value or None, type=None, alertname=vocab[int(inc_row[I_GROUP_ALERTNAME])]
            )
            affected, services = [], []
        kind = EVENT_NAMES[int(row[V_KIND])]
        merged = int(row[V_MERGED_INTO])
        merged_id = self._ids[merged] if merged >= 0 else None
        first, last = int(row[V_FIRST]), int(row[V_LAST])
        return IncidentEvent(
            id=self._ids[j],
            event=kind,
            version=int(row[V_VERSION]),
            at=format_ns(int(row[V_TS])),
            root_cause=root_cause,
            severity=SEVERITY_NAMES[int(row[V_SEVERITY])],
            significance=SIGNIFICANCE_NAMES[int(row[V_SIGNIFICANCE])],
            first_seen=format_ns(first),
            last_seen=format_ns(last),
            alert_count=int(row[V_ALERTS]),
            firing_count=int(row[V_FIRING]),
            ci_count=len(cis),
            affected_cis=affected,
            affected_services=services,
            fingerprints=fingerprints,
            explanation=_explain(root_cause, len(cis), len(fingerprints), last - first, merged_id),
            reason=("merged_into" if merged_id else "resolved") if kind == "resolve" else None,
            merged_into=merged_id,
        )


def _explain(
    root: RootCause, ci_count: int, alerts: int, span: int, merged_into: str | None
) -> str:
    if merged_into is not None:
        return f"merged into {merged_into}, whose root cause dominates this incident's root"
    if root.type is None:
        where = f"on {root.ci}" if root.ci else "without a CI label"
        return (
            f"{alerts} alert(s) {root.alertname} {where}: the CI is not in the CMDB, "
            "so they are grouped by alertname and CI label"
        )
    if ci_count <= 1:
        return f"{root.alertname or 'alert'} on {root.ci}; no alerting CI above it explains it"
    return (
        f"{ci_count} CIs behind {root.ci} alerted within {format_span(span)}; "
        f"{root.ci} dominates all of them"
    )
