"""``Correlator``: owns the correlation state and turns batches into incident events.

The state is a tuple of numpy arrays (see ``layout``) mutated by the numba
kernel; this class grows them when the kernel reports one is full, and turns
the kernel's event rows into ``IncidentEvent`` records. It is used by one
thread (the correlation loop), so it takes no locks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import msgspec
import numpy as np

from correlator.batch import SEVERITY_NAMES, AlertBatch
from correlator.correlate import kernel, structures
from correlator.correlate.layout import (
    C_NF,
    CI_DOM_CHILDREN,
    CI_LAST_INC,
    CI_MEMBER_INC,
    CI_NF,
    CI_ROOT_INC,
    DONE,
    E_CI,
    E_NF,
    EV_RESOLVE,
    EVENT_NAMES,
    EXCEPTION,
    I_GROUP_ALERTNAME,
    I_GROUP_VALUE,
    I_ID_ROOT,
    I_ID_TS,
    I_MERGED_INTO,
    I_NF,
    I_ROOT,
    I_STATE,
    I_VERSION,
    INFORMATIONAL,
    N_ENT,
    N_EV,
    N_INC,
    N_OPEN,
    NEED_ENT,
    NEED_EV,
    NEED_FPTAB,
    NEED_GRPTAB,
    NEED_INC,
    NEED_POOL,
    NEED_SQ,
    NEED_UQ,
    NEED_XQ,
    OPEN,
    S_DEDUP,
    S_DROP_INFO,
    S_INFER_MIN,
    S_INFER_PERMILLE,
    S_NF,
    S_REOPEN,
    S_RESOLVE_TIMEOUT,
    S_SETTLE,
    S_UPDATE_INTERVAL,
    S_WINDOW,
    SIGNIFICANCE_NAMES,
    SQ_HEAD,
    SQ_TAIL,
    ST_CIS,
    ST_CTR,
    ST_ENT,
    ST_ENT_FP,
    ST_EV,
    ST_FP_KEYS,
    ST_FP_VALS,
    ST_GRP_KEYS,
    ST_GRP_VALS,
    ST_IDOM,
    ST_INC,
    ST_OPENSET,
    ST_POOL,
    ST_SETTINGS,
    ST_SQ,
    ST_TIN,
    ST_TOUT,
    ST_UQ,
    ST_XQ,
    UQ_HEAD,
    UQ_TAIL,
    V_ALERTS,
    V_FIRING,
    V_FIRST,
    V_INC,
    V_INFERRED,
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
from correlator.incident import IncidentEvent, RootCause, incident_id
from correlator.timefmt import format_ns, format_span
from correlator.topology import Topology
from correlator.vocab import Vocabulary

SECOND = 10**9
# Significance by severity code (unknown, info, warning, error, critical).
SIGNIFICANCE_BY_SEVERITY = np.array(
    [WARNING_SIG, INFORMATIONAL, WARNING_SIG, EXCEPTION, EXCEPTION], dtype=np.int8
)
_QUEUES = {
    NEED_UQ: (UQ_HEAD, UQ_TAIL, ST_UQ),
    NEED_SQ: (SQ_HEAD, SQ_TAIL, ST_SQ),
}


@dataclass(frozen=True)
class CorrelationSettings:
    """Windows and thresholds of correlation, in nanoseconds of event time.

    ``settle`` holds a new incident back (like Alertmanager's group_wait) so
    a root that arrives a little after its symptoms absorbs them before any
    ticket exists. ``resolve_timeout`` expires a firing alert that is not
    re-sent. An incident that fires again within ``reopen_window`` of its
    resolution is reopened. A silent CI is inferred as the root when at least
    ``infer_min_dependents`` and ``infer_ratio`` of its dominator-tree
    children alert (``infer_min_dependents=0`` turns inference off).
    """

    window: int = 300 * SECOND
    dedup_window: int = 300 * SECOND
    update_interval: int = 60 * SECOND
    settle: int = 10 * SECOND
    resolve_timeout: int = 300 * SECOND
    reopen_window: int = 300 * SECOND
    infer_min_dependents: int = 5
    infer_ratio: float = 0.8
    drop_informational: bool = True

    def vector(self) -> np.ndarray:
        """The settings as the kernel reads them."""
        out = np.zeros(S_NF, dtype=np.int64)
        out[S_WINDOW] = self.window
        out[S_DEDUP] = self.dedup_window
        out[S_UPDATE_INTERVAL] = self.update_interval
        out[S_DROP_INFO] = int(self.drop_informational)
        out[S_SETTLE] = self.settle
        out[S_RESOLVE_TIMEOUT] = self.resolve_timeout
        out[S_REOPEN] = self.reopen_window
        out[S_INFER_MIN] = self.infer_min_dependents
        out[S_INFER_PERMILLE] = round(self.infer_ratio * 1000)
        return out


@dataclass
class Outcome:
    """What one batch did: the events emitted, and each alert's incident or drop reason.

    The arrays are in event-time order; ``row[i]`` is the alert's input row.
    ``incident[i]`` is an incident index (see ``Correlator.incident_ids``) or
    -1, in which case ``reason[i]`` names the drop (``layout.DROP_REASONS``).
    ``why[i]`` and ``via[i]`` say how a placed alert was placed
    (``layout.WHY_*``) and through which CI index; ``significance[i]`` is the
    alert's significance code.
    """

    events: list[IncidentEvent]
    row: np.ndarray
    incident: np.ndarray
    reason: np.ndarray
    why: np.ndarray
    via: np.ndarray
    significance: np.ndarray


class _Snapshot:
    """What an incident's events list of its members, kept sorted between events.

    Each list and dict is replaced, never changed in place, when members are
    added, so events share the ones that did not change instead of copying
    them (as they share the incident's ``labels``): fewer objects per event,
    and fewer garbage collections. ``by_type`` and ``service_list`` are
    rebuilt only when new CIs arrive.
    """

    def __init__(self, n_types: int) -> None:
        self.fingerprints: list[str] = []
        self.cis: set[int] = set()
        self.ci_ids: list[str] = []
        self.service_list: list[str] = []
        self.by_type: dict[str, int] = {}
        self.type_counts = [0] * n_types

    def add_fingerprints(self, hexes: list[str]) -> None:
        """Add member fingerprints (their hex forms); the list stays sorted."""
        merged = self.fingerprints + hexes
        merged.sort()
        self.fingerprints = merged

    def add_cis(self, cis: list[int], topology: Topology, ci_type: list[int]) -> None:
        """Count the CIs not seen before (``ci_type`` is the topology's, as a list)."""
        fresh = sorted(set(cis) - self.cis)
        if not fresh:
            return
        self.cis.update(fresh)
        ci_ids = topology.ci_ids
        merged = self.ci_ids + [ci_ids[c] for c in fresh]
        merged.sort()
        self.ci_ids = merged
        counts = self.type_counts
        for c in fresh:
            counts[ci_type[c]] += 1
        names = topology.type_names
        self.by_type = {names[k]: n for k, n in enumerate(counts) if n}

    def add_services(self, names: list[str]) -> None:
        """Add affected business services not listed yet; the list stays sorted."""
        merged = self.service_list + names
        merged.sort()
        self.service_list = merged


def _service_words(topology: Topology | None) -> int:
    """How many 64-bit words the topology's business-service bitsets take."""
    return topology.service_reach.shape[1] if topology is not None else 0


def _bit_names(words: list[int], names: list[str]) -> list[str]:
    """The names of the bits set in ``words`` (bit ``b`` of word ``w`` is ``64 * w + b``)."""
    out = []
    for w, word in enumerate(words):
        while word:
            low = word & -word
            out.append(names[64 * w + low.bit_length() - 1])
            word ^= low
    return out


def _fresh_cursors(rows: int) -> np.ndarray:
    """Member-list cursors of incidents never read (see ``structures.collect_events``)."""
    cursors = np.zeros((rows, 4), dtype=np.int64)
    cursors[:, 0] = cursors[:, 2] = -1
    return cursors


def _empty_table(capacity: int) -> tuple[np.ndarray, np.ndarray]:
    return np.zeros(capacity, dtype=np.uint64), np.full(capacity, -1, dtype=np.int64)


def _grow_rows(array: np.ndarray, rows: int) -> np.ndarray:
    grown = np.zeros((rows, *array.shape[1:]), dtype=array.dtype)
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
        n_cis = topology.n_cis if topology is not None else 0
        if topology is not None:
            idom = topology.idom.astype(np.int64)
            tin = topology.tin.astype(np.int64)
            tout = topology.tout.astype(np.int64)
        else:
            idom = tin = tout = np.zeros(0, dtype=np.int64)
        cis = np.zeros((n_cis, CI_NF), dtype=np.int64)
        cis[:, CI_ROOT_INC] = -1
        cis[:, CI_MEMBER_INC] = -1
        cis[:, CI_LAST_INC] = -1
        parents = idom[idom >= 0]
        cis[:, CI_DOM_CHILDREN] = np.bincount(parents, minlength=n_cis)[:n_cis]
        fp_keys, fp_vals = _empty_table(2 * capacity)
        grp_keys, grp_vals = _empty_table(2 * capacity)
        self._state: list[np.ndarray] = [
            self.settings.vector(),
            np.zeros(C_NF, dtype=np.int64),
            idom,
            tin,
            tout,
            fp_keys,
            fp_vals,
            np.zeros((capacity, E_NF), dtype=np.int64),
            np.zeros(capacity, dtype=np.uint64),
            cis,
            np.zeros((capacity, I_NF), dtype=np.int64),
            np.zeros(capacity, dtype=np.int64),
            np.zeros((2 * capacity, 2), dtype=np.int64),
            grp_keys,
            grp_vals,
            np.zeros((capacity, V_NF), dtype=np.int64),
            np.zeros((capacity, 2), dtype=np.int64),
            np.zeros((capacity, 2), dtype=np.int64),
            np.zeros((capacity, 2), dtype=np.int64),
        ]
        self._ids: list[str] = []
        # Incidents whose id may still change: open and never sent (see _name_incidents).
        self._provisional: set[int] = set()
        self._fp_hex: list[str] = []
        self._snapshots: dict[int, _Snapshot] = {}
        self._cursors = _fresh_cursors(capacity)
        # Per incident, the business services its events listed so far, as bits of the
        # topology's service bitsets (structures.reach_events).
        self._service_words = np.zeros((capacity, _service_words(topology)), dtype=np.uint64)
        self._ci_type: list[int] | None = None  # the topology's CI types as a list
        self._root_causes: dict[tuple[int, int, int], RootCause] = {}
        self._labels: dict[int, dict[str, str]] = {}
        self._labelled = 0  # incidents below this index have their labels
        self.events_by_kind = dict.fromkeys(EVENT_NAMES, 0)

    def update_settings(self, settings: CorrelationSettings) -> None:
        """Use new windows and thresholds from the next alert on (a rules reload)."""
        self.settings = settings
        self._state[ST_SETTINGS][:] = settings.vector()

    def export_state(self) -> dict[str, np.ndarray]:
        """The correlation state as named arrays (for a snapshot), settings excluded."""
        out = {f"state{k}": array for k, array in enumerate(self._state) if k != ST_SETTINGS}
        out["ids"] = np.array(self.incident_ids(), dtype=object)
        labels = [[j, self._labels[j]] for j in sorted(self._labels)]
        out["labels"] = np.frombuffer(msgspec.json.encode(labels), dtype=np.uint8)
        return out

    def import_state(self, arrays: dict[str, np.ndarray]) -> None:
        """Take over a state from ``export_state`` of an engine with the same topology."""
        for k in range(len(self._state)):
            if k != ST_SETTINGS:
                self._state[k] = np.ascontiguousarray(arrays[f"state{k}"])
        self._ids = [str(i) for i in arrays["ids"]]
        self._labels = {}
        self._labelled = len(self._ids)
        if "labels" in arrays:
            for j, labels in msgspec.json.decode(arrays["labels"].tobytes()):
                self._labels[j] = labels
        inc = self._state[ST_INC][: len(self._ids)]
        unsent = (inc[:, I_VERSION] == 0) & (inc[:, I_STATE] == OPEN)
        self._provisional = set(np.flatnonzero(unsent).tolist())
        self._forget_snapshots()
        self._fp_hex.clear()

    def retarget(self, topology: Topology, *, previous_ids: Sequence[str] | None = None) -> None:
        """Carry the state over to a new topology (a CMDB reload), matching CIs by id.

        Open incidents stay open with the same ids. Alerts on CIs that left the
        CMDB keep their incidents but no longer explain anything; counters that
        follow the dominator tree are rebuilt for the new tree. ``previous_ids``
        names the CIs the state refers to when that is not ``self.topology``
        (a snapshot taken before the CMDB file changed).
        """
        self._name_incidents(previous_ids)
        state = self._state
        if previous_ids is not None:
            old_ids = list(previous_ids)
        else:
            old_ids = self.topology.ci_ids if self.topology is not None else []
        new_index = {ci_id: k for k, ci_id in enumerate(topology.ci_ids)}
        index_map = np.array([new_index.get(i, -1) for i in old_ids] + [-1], dtype=np.int64)
        ent = state[ST_ENT]
        ent[:, E_CI] = index_map[ent[:, E_CI]]
        inc = state[ST_INC]
        created = int(state[ST_CTR][N_INC])
        inc[:created, I_ROOT] = index_map[inc[:created, I_ROOT]]
        inc[:created, I_ID_ROOT] = index_map[inc[:created, I_ID_ROOT]]
        kernel.remap_ci_lists(state[ST_POOL], inc, created, index_map)
        cis = np.zeros((topology.n_cis, CI_NF), dtype=np.int64)
        cis[:, CI_ROOT_INC] = cis[:, CI_MEMBER_INC] = cis[:, CI_LAST_INC] = -1
        kept = np.flatnonzero(index_map[:-1] >= 0)
        cis[index_map[kept]] = state[ST_CIS][kept]
        state[ST_IDOM] = topology.idom.astype(np.int64)
        state[ST_TIN] = topology.tin.astype(np.int64)
        state[ST_TOUT] = topology.tout.astype(np.int64)
        state[ST_CIS] = cis
        kernel.recount(cis, inc, state[ST_OPENSET], int(state[ST_CTR][N_OPEN]), state[ST_IDOM])
        self.topology = topology
        self._forget_snapshots()

    def _forget_snapshots(self) -> None:
        """Drop what events were built from, so the next ones read the state afresh."""
        self._snapshots.clear()
        self._cursors = _fresh_cursors(len(self._cursors))
        self._service_words = np.zeros(
            (len(self._cursors), _service_words(self.topology)), dtype=np.uint64
        )
        self._ci_type = None
        self._root_causes.clear()

    def memory(self) -> dict[str, int]:
        """Bytes allocated for each part of the correlation state, and what it tracks."""
        names = ("fingerprint table", "alerts", "incidents", "member lists", "timers")
        groups = (
            (ST_FP_KEYS, ST_FP_VALS),
            (ST_ENT, ST_ENT_FP),
            (ST_INC, ST_OPENSET, ST_EV, ST_GRP_KEYS, ST_GRP_VALS),
            (ST_POOL,),
            (ST_UQ, ST_SQ, ST_XQ),
        )
        out = {
            name: sum(self._state[k].nbytes for k in group)
            for name, group in zip(names, groups, strict=True)
        }
        out["configuration items"] = self._state[ST_CIS].nbytes
        out["tracked fingerprints"] = int(self._state[ST_CTR][N_ENT])
        return out

    @property
    def open_incidents(self) -> int:
        """How many incidents are open now (sent or still settling)."""
        return int(self._state[ST_CTR][N_OPEN])

    @property
    def incidents_created(self) -> int:
        """How many incidents were ever formed (some may never have been sent)."""
        return int(self._state[ST_CTR][N_INC])

    def process(
        self,
        batch: AlertBatch,
        significance: np.ndarray | None = None,
        group_within: np.ndarray | None = None,
    ) -> Outcome:
        """Correlate one batch (sorted into event-time order first).

        ``significance`` (one code per alert, in the batch's order) is what the
        first level decided; without it, significance follows severity. An
        alert outside the CMDB groups by its ``alertname`` and ``ci_label`` ids;
        ``group_within`` (ns per alert, default unlimited) is how long after its
        group's last alert it still joins the group's open incident.
        """
        if significance is None:
            significance = SIGNIFICANCE_BY_SEVERITY[batch.severity]
        if group_within is None:
            group_within = np.full(len(batch), np.iinfo(np.int64).max, dtype=np.int64)
        if len(batch) > 1 and not bool(np.all(batch.ts[:-1] <= batch.ts[1:])):
            order = np.argsort(batch.ts, kind="stable")
            batch = batch.take(order)
            significance = significance[order]
            group_within = group_within[order]
        n = len(batch)
        out_inc = np.full(n, -1, dtype=np.int64)
        out_reason = np.zeros(n, dtype=np.int8)
        out_why = np.zeros(n, dtype=np.int8)
        out_via = np.full(n, -1, dtype=np.int64)
        events: list[IncidentEvent] = []
        position = 0
        while True:
            start = position
            position, need = kernel.correlate(
                position,
                batch.ts,
                batch.fingerprint,
                batch.ci,
                batch.alertname,
                batch.ci_label,
                group_within,
                batch.severity,
                significance,
                batch.status,
                tuple(self._state),
                out_inc,
                out_reason,
                out_why,
                out_via,
            )
            self._learn_labels(batch, out_inc, start, position)
            events.extend(self._drain_events())
            if need == DONE:
                break
            self._grow(need)
        return Outcome(events, batch.row, out_inc, out_reason, out_why, out_via, significance)

    def _learn_labels(self, batch: AlertBatch, incidents: np.ndarray, start: int, stop: int):
        """Give each new incident the labels of the alert that opened it.

        The opener is processed before any event of its incident is emitted,
        so every event carries the same labels however the stream was batched;
        only first occurrences are looked at, so the work is per incident.
        """
        fresh = self._labelled
        self._labelled = int(self._state[ST_CTR][N_INC])
        if self._labelled == fresh:
            return
        placed = np.flatnonzero(incidents[start:stop] >= fresh) + start
        chosen, first = np.unique(incidents[placed], return_index=True)
        openers = placed[first]
        if len(openers) == 0:
            return
        lo, hi = batch.label_ptr[openers], batch.label_ptr[openers + 1]
        ends = np.cumsum(hi - lo)
        flat = np.arange(int(ends[-1]), dtype=np.int64) + np.repeat(lo - ends + (hi - lo), hi - lo)
        names = self.vocab.strings(batch.label_key[flat].tolist())
        values = self.vocab.strings(batch.label_value[flat].tolist())
        bounds = [0, *ends.tolist()]
        for k, j in enumerate(chosen.tolist()):
            a, b = bounds[k], bounds[k + 1]
            self._labels[j] = dict(zip(names[a:b], values[a:b], strict=True))

    def advance(self, watermark: int, *, expire: bool = True) -> list[IncidentEvent]:
        """Let event time reach ``watermark`` (ns): fire the timers due by then.

        With ``expire=False`` alerts that were not re-sent are left firing.
        """
        events: list[IncidentEvent] = []
        while True:
            need = kernel.shortage(tuple(self._state), int(self._state[ST_CTR][N_OPEN]))
            if need == DONE:
                break
            self._grow(need)
        kernel.fire_timers(watermark, expire, tuple(self._state))
        events.extend(self._drain_events())
        return events

    def flush(self) -> list[IncidentEvent]:
        """At the end of a replay: send what is still settling and every pending update.

        Alerts are not expired: a recording that ends mid-storm leaves its
        incidents open, as they were when it ended.
        """
        return self.advance(np.iinfo(np.int64).max, expire=False)

    def incident_ids(self) -> list[str]:
        """Ids of every incident created so far, by incident index."""
        self._name_incidents()
        return self._ids

    def survivors(self, incidents: np.ndarray) -> np.ndarray:
        """Each incident index mapped to the incident it was (transitively) merged into."""
        created = int(self._state[ST_CTR][N_INC])
        if created == 0:
            return np.asarray(incidents).copy()
        merged = self._state[ST_INC][:created, I_MERGED_INTO]
        target = np.where(merged >= 0, merged, np.arange(created))
        while True:
            hop = target[target]
            if np.array_equal(hop, target):
                break
            target = hop
        return np.where(incidents >= 0, target[np.maximum(incidents, 0)], -1)

    def _name_incidents(self, ci_ids: Sequence[str] | None = None) -> None:
        """Name the incidents created since the last call, and rename the provisional ones.

        An id comes from the incident's id root and creation time, and a
        take-over may still re-root an incident that was never sent; so the
        name of an open, unsent incident is recomputed on every call and only
        fixed once the incident is sent (or merged or resolved unsent). A name
        cached earlier would depend on where batch boundaries fell, and a
        daemon, a restarted daemon and a replay would disagree on ids. ``ci_ids``
        are the CIs the state's CI numbers refer to (default: the topology's).
        """
        if ci_ids is None:
            ci_ids = self.topology.ci_ids if self.topology is not None else []
        inc = self._state[ST_INC]
        for j in range(len(self._ids), int(self._state[ST_CTR][N_INC])):
            self._ids.append("")
            self._provisional.add(j)
        for j in list(self._provisional):
            self._ids[j] = self._name(j, ci_ids)
            if inc[j, I_VERSION] > 0 or inc[j, I_STATE] != OPEN:
                self._provisional.discard(j)

    def _name(self, j: int, ci_ids: Sequence[str]) -> str:
        row = self._state[ST_INC][j]
        root = int(row[I_ID_ROOT])
        if root >= 0 and self.topology is not None:
            key = ci_ids[root]
        else:
            alertname = self.vocab[int(row[I_GROUP_ALERTNAME])]
            key = f"{alertname}/{self.vocab[int(row[I_GROUP_VALUE])]}"
        return incident_id(key, int(row[I_ID_TS]))

    def _grow(self, need: int) -> None:
        state = self._state
        ctr = state[ST_CTR]
        margin = int(2 * ctr[N_OPEN] + 4)
        if need == NEED_ENT:
            state[ST_ENT] = _grow_rows(state[ST_ENT], 2 * len(state[ST_ENT]))
            state[ST_ENT_FP] = _grow_rows(state[ST_ENT_FP], 2 * len(state[ST_ENT_FP]))
        elif need == NEED_INC:
            state[ST_INC] = _grow_rows(state[ST_INC], 2 * len(state[ST_INC]))
            state[ST_OPENSET] = _grow_rows(state[ST_OPENSET], 2 * len(state[ST_OPENSET]))
        elif need == NEED_POOL:
            state[ST_POOL] = _grow_rows(state[ST_POOL], 2 * len(state[ST_POOL]))
        elif need == NEED_EV:
            state[ST_EV] = _grow_rows(
                state[ST_EV], max(2 * len(state[ST_EV]), int(ctr[N_EV]) + margin)
            )
        elif need == NEED_XQ:
            state[ST_XQ] = _grow_rows(state[ST_XQ], 2 * len(state[ST_XQ]))
        elif need in _QUEUES:
            head_col, tail_col, index = _QUEUES[need]
            live = state[index][ctr[head_col] : ctr[tail_col]]
            size = len(state[index])
            while len(live) + margin + 2 > size // 2:
                size *= 2
            queue = np.zeros((size, 2), dtype=np.int64)
            queue[: len(live)] = live
            state[index] = queue
            ctr[head_col], ctr[tail_col] = 0, len(live)
        elif need == NEED_FPTAB:
            state[ST_FP_KEYS], state[ST_FP_VALS] = self._rehash(
                state[ST_FP_KEYS], state[ST_FP_VALS]
            )
        elif need == NEED_GRPTAB:
            state[ST_GRP_KEYS], state[ST_GRP_VALS] = self._rehash(
                state[ST_GRP_KEYS], state[ST_GRP_VALS]
            )

    @staticmethod
    def _rehash(keys: np.ndarray, vals: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        new_keys, new_vals = _empty_table(2 * len(keys))
        structures.table_rehash(keys, vals, new_keys, new_vals)
        return new_keys, new_vals

    def _drain_events(self) -> list[IncidentEvent]:
        """The kernel's pending event rows as ``IncidentEvent`` records, in order.

        One kernel call reads what each event added to its incident's member lists
        (``structures.collect_events``); the rows are turned into Python ints at once,
        so the per-event work is list and dict operations on cached strings.
        """
        state = self._state
        count = int(state[ST_CTR][N_EV])
        state[ST_CTR][N_EV] = 0
        if count == 0:
            return []
        self._name_incidents()
        rows = state[ST_EV][:count]
        self._reserve_incidents(int(state[ST_CTR][N_INC]))
        fps, fp_ptr, cis, ci_ptr = structures.collect_events(state[ST_POOL], rows, self._cursors)
        hexes = self._fingerprint_hexes(int(fps.max()) + 1 if len(fps) else 0)
        fps_list, fp_ptr_list = fps.tolist(), fp_ptr.tolist()
        cis_list, ci_ptr_list = cis.tolist(), ci_ptr.tolist()
        topology = self.topology
        services: dict[int, list[int]] = {}
        if topology is not None:
            if self._ci_type is None:
                self._ci_type = topology.ci_type.tolist()
            added = structures.reach_events(
                rows,
                ci_ptr,
                cis,
                topology.component,
                topology.service_reach,
                self._service_words,
            )
            grew = np.flatnonzero(added.any(axis=1))
            services = dict(zip(grew.tolist(), added[grew].tolist(), strict=True))
        n_types = len(topology.type_names) if topology is not None else 0
        snapshots = self._snapshots
        events = []
        for e, row in enumerate(rows.tolist()):
            j = row[V_INC]
            snap = snapshots.get(j)
            if snap is None:
                snap = snapshots[j] = _Snapshot(n_types)
            lo, hi = fp_ptr_list[e], fp_ptr_list[e + 1]
            if hi > lo:
                snap.add_fingerprints([hexes[x] for x in fps_list[lo:hi]])
            lo, hi = ci_ptr_list[e], ci_ptr_list[e + 1]
            if hi > lo and topology is not None and self._ci_type is not None:
                snap.add_cis(cis_list[lo:hi], topology, self._ci_type)
                if e in services:
                    snap.add_services(_bit_names(services[e], topology.service_ids))
            if row[V_KIND] == EV_RESOLVE:
                del snapshots[j]
            events.append(self._materialize(row, snap))
        by_kind = self.events_by_kind
        for event in events:
            by_kind[event.event] += 1
        return events

    def _reserve_incidents(self, created: int) -> None:
        """Room for the per-incident rows of the first ``created`` incidents."""
        rows = len(self._cursors)
        if rows < created:
            rows = max(created, 2 * rows)
            cursors = _fresh_cursors(rows)
            cursors[: len(self._cursors)] = self._cursors
            self._cursors = cursors
            self._service_words = _grow_rows(self._service_words, rows)

    def _fingerprint_hexes(self, entities: int) -> list[str]:
        """The hex form of every fingerprint entity below ``entities``, formatted once.

        ``format_fingerprint`` (16 lowercase hex digits) of a whole run at once: the
        big-endian bytes of the run in one ``hex()`` call, cut every 16 digits.
        """
        hexes = self._fp_hex
        done = len(hexes)
        if entities > done:
            digits = self._state[ST_ENT_FP][done:entities].astype(">u8").tobytes().hex()
            hexes.extend([digits[k : k + 16] for k in range(0, len(digits), 16)])
        return hexes

    def _root_cause(self, j: int, root: int, alertname: int, inferred: int) -> RootCause:
        """Incident ``j``'s root cause as of an event; one shared record per distinct one."""
        topology = self.topology
        if root >= 0 and topology is not None:
            key = (root, alertname, inferred)
            found = self._root_causes.get(key)
            if found is None:
                found = self._root_causes[key] = RootCause(
                    ci=topology.ci_ids[root],
                    type=topology.type_names[topology.ci_type[root]],
                    alertname=self.vocab[alertname] if alertname >= 0 else None,
                    inferred=bool(inferred),
                )
            return found
        vocab = self.vocab
        inc_row = self._state[ST_INC][j]
        value, name = int(inc_row[I_GROUP_VALUE]), int(inc_row[I_GROUP_ALERTNAME])
        return RootCause(
            ci=(vocab[value] or None) if value >= 0 else None,
            type=None,
            alertname=vocab[name] if name >= 0 else None,
        )

    def _materialize(self, row: list[int], snap: _Snapshot) -> IncidentEvent:
        j = row[V_INC]
        root_cause = self._root_cause(j, row[V_ROOT], row[V_ROOT_ALERTNAME], row[V_INFERRED])
        kind = EVENT_NAMES[row[V_KIND]]
        version = row[V_VERSION]
        merged = row[V_MERGED_INTO]
        merged_id = self._ids[merged] if merged >= 0 else None
        first, last = row[V_FIRST], row[V_LAST]
        reason = None
        if kind == "resolve":
            reason = "merged_into" if merged_id else "resolved"
        elif kind == "open" and version > 1:
            reason = "reopened"
        ci_count = len(snap.cis)
        return IncidentEvent(
            id=self._ids[j],
            event=kind,
            version=version,
            at=format_ns(row[V_TS]),
            root_cause=root_cause,
            severity=SEVERITY_NAMES[row[V_SEVERITY]],
            significance=SIGNIFICANCE_NAMES[row[V_SIGNIFICANCE]],
            first_seen=format_ns(first),
            last_seen=format_ns(last),
            alert_count=row[V_ALERTS],
            firing_count=row[V_FIRING],
            ci_count=ci_count,
            affected_cis=snap.ci_ids,
            affected_by_type=snap.by_type,
            affected_services=snap.service_list,
            fingerprints=snap.fingerprints,
            labels=self._labels.get(j, {}),
            explanation=_explain(
                root_cause, ci_count, len(snap.fingerprints), last - first, merged_id
            ),
            reason=reason,
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
            "so they are grouped by alertname and CI label, or by a group rule's labels"
        )
    if root.inferred:
        return (
            f"{ci_count} CIs behind {root.ci} alerted within {format_span(span)} while "
            f"{root.ci} itself sent nothing; {root.ci} dominates all of them, so it is the "
            "inferred cause"
        )
    if ci_count <= 1:
        return f"{root.alertname or 'alert'} on {root.ci}; no alerting CI above it explains it"
    return (
        f"{ci_count} CIs behind {root.ci} alerted within {format_span(span)}; "
        f"{root.ci} dominates all of them"
    )
