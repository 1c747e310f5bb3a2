"""Replay: a recorded storm through the same pipeline the daemon runs, on event time.

Replay needs no wall clock: windows, settle and update timers run on the
events' own times, so the same recording, topology and settings always give
byte-identical incident events.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import msgspec
import numpy as np

from correlator.batch import DEFAULT_CI_LABELS, AlertBatch, concat_batches
from correlator.correlate.engine import CorrelationSettings, Outcome
from correlator.correlate.layout import (
    DROP_DEDUPLICATED,
    DROP_INFORMATIONAL,
    DROP_ORPHAN_RESOLVE,
    DROP_REASONS,
    WHY_DOMINATOR,
    WHY_GROUPED,
    WHY_MEMBER,
    WHY_OPENED,
    WHY_REOPENED,
    WHY_TOOK_OVER,
)
from correlator.decode import CORRELATION_COLUMNS, Decoded, read_recording
from correlator.fingerprint import format_fingerprint
from correlator.incident import IncidentEvent
from correlator.pipeline import FATES, Pipeline
from correlator.rejects import Reject
from correlator.rules import RuleSet
from correlator.sinks.base import TicketSink
from correlator.timefmt import format_ns
from correlator.topology import Topology


@dataclass(frozen=True)
class ReplaySummary:
    """Counts and speed of one replay."""

    rows: int
    rejected: int
    informational: int
    deduplicated: int
    orphan_resolves: int
    held: int
    incidents_opened: int
    updates: int
    resolves: int
    seconds: float

    @property
    def compression(self) -> float:
        """Alerts in per incident opened."""
        return self.rows / max(self.incidents_opened, 1)

    @property
    def alerts_per_second(self) -> float:
        """Input rows per second of wall time, file read included."""
        return self.rows / self.seconds if self.seconds > 0 else float("inf")

    def render(self) -> str:
        """A few lines for a terminal."""
        return "\n".join(
            [
                f"alerts read        {self.rows:>12,}",
                f"  rejected         {self.rejected:>12,}",
                f"  dropped (info)   {self.informational:>12,}",
                f"  deduplicated     {self.deduplicated:>12,}",
                f"  orphan resolves  {self.orphan_resolves:>12,}",
                f"  stopped by rules {self.held:>12,}   (drop, maintenance, flap, threshold,"
                " inhibit, pair)",
                f"incidents opened   {self.incidents_opened:>12,}"
                f"   ({self.updates:,} updates, {self.resolves:,} resolves)",
                f"compression        {self.compression:>12,.1f} alerts per incident",
                f"speed              {self.alerts_per_second:>12,.0f} alerts/s"
                f" ({self.seconds:.3f} s)",
            ]
        )


class _Assignment(msgspec.Struct, omit_defaults=True):
    row: int
    fingerprint: str | None = None
    ts: str | None = None
    incident: str | None = None
    dropped: str | None = None
    rejected: str | None = None


def write_assignments(
    path: str | Path,
    outcome: Outcome,
    fingerprints: np.ndarray,
    ts: np.ndarray,
    rejects: Sequence[Reject],
    incident_ids: Sequence[str],
) -> None:
    """One JSON line per input row, in input order: its incident, drop or reject reason.

    ``outcome.incident`` should already name surviving incidents, so an alert
    whose incident was merged shows the incident it ended in.
    """
    lines: list[_Assignment] = [_Assignment(row=r.row, rejected=r.reason) for r in rejects]
    for k in range(len(outcome.row)):
        j = int(outcome.incident[k])
        lines.append(
            _Assignment(
                row=int(outcome.row[k]),
                fingerprint=format_fingerprint(int(fingerprints[k])),
                ts=format_ns(int(ts[k])),
                incident=incident_ids[j] if j >= 0 else None,
                dropped=FATES[int(outcome.reason[k])] if j < 0 else None,
            )
        )
    lines.sort(key=lambda a: a.row)
    encoder = msgspec.json.Encoder()
    with Path(path).open("wb") as out:
        out.write(b"".join(encoder.encode(a) + b"\n" for a in lines))


@dataclass(frozen=True)
class ReplayResult:
    """A replay's summary and events, and each alert's fate for explanations.

    ``outcome`` is in event-time order; its ``incident`` column already names
    the incident each alert ended in (after merges).
    """

    summary: ReplaySummary
    events: list[IncidentEvent]
    outcome: Outcome
    fingerprints: np.ndarray
    ts: np.ndarray
    ci: np.ndarray
    incident_ids: list[str]
    topology: Topology | None

    def explain(self, fingerprint: str) -> str:
        """Why each alert of one fingerprint (16 hex digits) went where it went."""
        try:
            wanted = np.uint64(int(fingerprint, 16))
        except ValueError:
            return f"{fingerprint!r} is not a fingerprint (16 hex digits)"
        hits = np.flatnonzero(self.fingerprints == wanted)
        if len(hits) == 0:
            return f"no accepted alert has fingerprint {fingerprint}"
        names = self.topology.ci_ids if self.topology is not None else []
        lines = [f"fingerprint {fingerprint}: {len(hits)} alert(s)"]
        for k in hits:
            when = format_ns(int(self.ts[k]))
            j = int(self.outcome.incident[k])
            if j < 0:
                reason = FATES[int(self.outcome.reason[k])]
                lines.append(f"  {when}  row {self.outcome.row[k]}: dropped ({reason})")
                continue
            ci = int(self.ci[k])
            via = int(self.outcome.via[k])
            what = _WHY[int(self.outcome.why[k])].format(
                ci=names[ci] if ci >= 0 else "its CI label",
                via=names[via] if via >= 0 else "?",
            )
            lines.append(f"  {when}  row {self.outcome.row[k]}: {self.incident_ids[j]}: {what}")
        return "\n".join(lines)


_WHY = {
    WHY_MEMBER: "its fingerprint was already a member of this incident",
    WHY_DOMINATOR: "{via} was alerting and dominates {ci}, so it joined {via}'s incident",
    WHY_OPENED: "no alerting CI above {ci} explains it, so it opened an incident",
    WHY_TOOK_OVER: "{ci} dominates open incidents, so its incident took them over",
    WHY_REOPENED: "it fired again soon after the incident resolved, so the incident reopened",
    WHY_GROUPED: (
        "{ci} is not in the CMDB, so it was grouped by alertname and CI label,"
        " or by a group rule's labels"
    ),
}


def replay(
    recording: str | Path | Decoded,
    *,
    topology: Topology | None,
    sinks: Sequence[TicketSink] = (),
    settings: CorrelationSettings | None = None,
    rules: RuleSet | None = None,
    ci_labels: Sequence[str] = DEFAULT_CI_LABELS,
    assignments: str | Path | None = None,
) -> ReplayResult:
    """Replay a recording (a path, or already decoded rows) and deliver its incident events."""
    started = time.perf_counter()
    if isinstance(recording, Decoded):
        decoded = recording
    else:
        decoded = read_recording(recording, columns=CORRELATION_COLUMNS)
    pipeline = Pipeline(topology, rules=rules, settings=settings, ci_labels=tuple(ci_labels))
    batch, rejects = pipeline.normalizer.normalize(decoded.table, decoded.index)
    batch, outcome = pipeline.process(batch)
    released, last = pipeline.flush()
    correlator = pipeline.correlator
    events = outcome.events + last.events
    if len(released.row):
        batch, outcome = _final_rows(
            concat_batches([batch, released]), _concat_outcomes(outcome, last)
        )
    for sink in sinks:
        sink.write_batch(events)
    seconds = time.perf_counter() - started
    all_rejects = [*decoded.rejects, *rejects]
    final = replace(outcome, incident=correlator.survivors(outcome.incident))
    ids = correlator.incident_ids()
    if assignments is not None:
        write_assignments(assignments, final, batch.fingerprint, batch.ts, all_rejects, ids)
    reasons = np.bincount(outcome.reason, minlength=len(FATES))
    summary = ReplaySummary(
        rows=decoded.rows,
        rejected=len(all_rejects),
        informational=int(reasons[DROP_INFORMATIONAL]),
        deduplicated=int(reasons[DROP_DEDUPLICATED]),
        orphan_resolves=int(reasons[DROP_ORPHAN_RESOLVE]),
        held=int(reasons[len(DROP_REASONS) :].sum()),
        incidents_opened=sum(e.event == "open" and e.version == 1 for e in events),
        updates=sum(e.event == "update" for e in events),
        resolves=sum(e.event == "resolve" for e in events),
        seconds=seconds,
    )
    return ReplayResult(
        summary, events, final, batch.fingerprint, batch.ts, batch.ci, ids, topology
    )


def _concat_outcomes(first: Outcome, second: Outcome) -> Outcome:
    return Outcome(
        first.events + second.events,
        *(
            np.concatenate([getattr(first, name), getattr(second, name)])
            for name in ("row", "incident", "reason", "why", "via", "significance")
        ),
    )


def _final_rows(batch: AlertBatch, outcome: Outcome) -> tuple[AlertBatch, Outcome]:
    """One row per input alert: the last one the pipeline gave for it (a held problem
    is listed again when released or paired), without the rows of no input alert."""
    rows = outcome.row
    keep = np.flatnonzero(rows >= 0)
    _, last = np.unique(rows[keep][::-1], return_index=True)
    chosen = np.sort(keep[len(keep) - 1 - last])
    return batch.take(chosen), Outcome(
        outcome.events,
        *(
            getattr(outcome, name)[chosen]
            for name in ("row", "incident", "reason", "why", "via", "significance")
        ),
    )
