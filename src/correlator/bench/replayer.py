"""A recording through the pipeline in micro-batches, at full speed or paced, with latencies.

This is the measurement every suite and ``--recording`` shares. The recording
is read and normalized once, put in event-time order, then fed to a fresh
:class:`~correlator.pipeline.Pipeline` in batches the size of the daemon's
(``batch.max_alerts``, 10,000):

- **full speed**: the next batch as soon as the last one is done. An alert's
  latency runs from the moment its batch is handed over.
- **paced** (``speed`` x real time): the alerts before the busiest minute of
  the recording go in at full speed, unmeasured (a long quiet lead-in would
  otherwise use up ``max_seconds``); from there an alert is due ``(event
  time - busiest minute's first event time) / speed`` after the start of
  pacing; each round feeds every alert that
  is due, and between rounds event time advances with the wall clock (as the
  daemon's heartbeat does), so settle and update timers fire on time. An
  alert's latency runs from when it was due. ``max_seconds`` stops feeding a
  long replay early (the result says so); the clock then runs on, feeding
  nothing, for the settle time (scaled) plus a second but at most
  ``max_seconds`` (and at least a second), so the alerts already fed can
  reach their incidents. Nothing is flushed at the end.

In both, an alert is *covered* when an incident event of its incident (or of
the incident it was merged into) has been emitted and its own batch is done:
the moment a human could see it in a ticket. Alerts that never reach an
incident (dropped, deduplicated, held by rules) have no latency; alerts
placed in an incident that had no event by the end are counted as
``uncovered`` and enter the percentiles as infinitely late (a percentile
that lands on them is infinite: "more than the run lasted").
"""

from __future__ import annotations

import time
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from correlator.batch import AlertBatch
from correlator.decode import CORRELATION_COLUMNS, Decoded, read_recording
from correlator.incident import IncidentEvent
from correlator.pipeline import Pipeline
from correlator.rules import RuleSet
from correlator.topology import Topology

BATCH_ALERTS = 10_000
HEARTBEAT_S = 0.05
DRAIN_S = 1.0


@dataclass(frozen=True)
class RunResult:
    """One replay: how much went in, how long it took, what came out, and latencies.

    ``fed`` counts the alerts measured (the paced ones, in a paced run);
    ``processed`` also counts those fast-forwarded before pacing began.
    ``setup`` is the wall and CPU seconds spent building the pipeline (its
    state is sized by the topology), part of ``seconds`` at full speed.
    """

    alerts: int
    fed: int
    processed: int
    seconds: float
    setup: tuple[float, float]
    incidents: int
    events: int
    latencies: np.ndarray
    capped: bool

    def metrics(self) -> dict[str, float]:
        """The figures of this run (latencies in milliseconds, infinite when uncovered)."""
        placed = self.latencies[~np.isnan(self.latencies)]
        if len(placed):
            p50, p99 = np.percentile(placed, [50, 99], method="inverted_cdf") * 1e3
        else:
            p50, p99 = np.nan, np.nan
        return {
            "alerts_per_s": self.fed / self.seconds if self.seconds > 0 else float("inf"),
            "seconds": self.seconds,
            "setup_seconds": self.setup[0],
            "setup_cpu_seconds": self.setup[1],
            "p50_ms": float(p50),
            "p99_ms": float(p99),
            "incidents": float(self.incidents),
            "compression": self.processed / max(self.incidents, 1),
            "events": float(self.events),
            "uncovered": float(np.isinf(self.latencies).sum()),
        }


def read(recording: str | Path) -> Decoded:
    """A recording (file or event-log folder) with the columns correlation needs."""
    return read_recording(recording, columns=CORRELATION_COLUMNS)


class _Coverage:
    """When each incident first had an event emitted, and which alerts went where."""

    def __init__(self, rows: int) -> None:
        self.due = np.full(rows, np.nan)
        self.done = np.full(rows, np.nan)
        self.incident = np.full(rows, -1, dtype=np.int64)
        self.first_emit: dict[str, float] = {}
        self.opened = 0
        self.events = 0

    def emitted(self, events: list[IncidentEvent], at: float) -> None:
        """Note ``events`` as emitted at ``at`` (``perf_counter``)."""
        for event in events:
            self.first_emit.setdefault(event.id, at)
            self.opened += event.event == "open" and event.version == 1
        self.events += len(events)

    def placed(self, rows: np.ndarray, incident: np.ndarray, at: float) -> None:
        """Note the incident index (or -1) of each input row of a batch done at ``at``.

        Rows -1 (a resolve a pair rule made, no input alert's) are skipped; a held
        problem's row comes again when released, and the later placement counts.
        """
        own = rows >= 0
        self.incident[rows[own]] = incident[own]
        self.done[rows[own]] = at

    def waiting(self, pipeline: Pipeline) -> bool:
        """Whether a fed, placed alert still has no incident event."""
        late = self.latencies(pipeline)
        return bool(np.any(np.isinf(late) & ~np.isnan(self.due)))

    def latencies(self, pipeline: Pipeline) -> np.ndarray:
        """Seconds from due to covered per input row: NaN if not placed, inf if not covered."""
        ids = pipeline.correlator.incident_ids()
        emit = np.array([self.first_emit.get(i, np.inf) for i in ids] + [np.inf])
        placed = self.incident >= 0
        own = np.where(placed, self.incident, len(ids))
        final = own.copy()
        final[placed] = pipeline.correlator.survivors(self.incident[placed])
        covered = np.maximum(self.done, np.minimum(emit[own], emit[final]))
        return np.where(placed, covered - self.due, np.nan)


def replay_run(
    decoded: Decoded,
    topology: Topology | None,
    rules: RuleSet | None = None,
    *,
    speed: float | None = None,
    max_seconds: float | None = None,
    batch_alerts: int = BATCH_ALERTS,
    read_seconds: float = 0.0,
) -> RunResult:
    """Replay ``decoded`` once through a fresh pipeline; ``speed`` None is full speed.

    ``read_seconds`` (the time it took to read the recording) is added to a
    full-speed run's wall time, so its throughput is file to incidents. A
    paced run's wall time and ``fed`` count cover the paced part only.
    """
    started = time.perf_counter()
    started_cpu = time.process_time()
    pipeline = Pipeline(topology, rules=rules)
    setup = (time.perf_counter() - started, time.process_time() - started_cpu)
    alerts, _ = pipeline.normalizer.normalize(decoded.table, decoded.index)
    alerts = alerts.in_time_order()
    coverage = _Coverage(max(decoded.rows, int(decoded.index.max(initial=-1)) + 1))
    n = len(alerts)
    if speed is None:
        for start in range(0, n, batch_alerts):
            part = _rows(alerts, start, min(start + batch_alerts, n))
            coverage.due[part.row] = time.perf_counter()
            _feed(pipeline, part, coverage)
        _, outcome = pipeline.flush()
        now = time.perf_counter()
        coverage.emitted(outcome.events, now)
        coverage.placed(outcome.row, outcome.incident, now)
        skipped, fed, capped = 0, n, False
        seconds = time.perf_counter() - started + read_seconds
    else:
        skipped, fed, seconds, capped = _paced(
            pipeline, alerts, coverage, speed, max_seconds, batch_alerts
        )
    latencies = coverage.latencies(pipeline)
    return RunResult(
        alerts=decoded.rows,
        fed=fed,
        processed=skipped + fed,
        seconds=seconds,
        setup=setup,
        incidents=coverage.opened,
        events=coverage.events,
        latencies=latencies[~np.isnan(coverage.due)],
        capped=capped,
    )


def _rows(alerts: AlertBatch, start: int, stop: int) -> AlertBatch:
    """Alerts ``start:stop`` as views, in time that does not grow with the whole batch.

    ``AlertBatch.take`` gathers any index, so it works over every alert's
    label count each call; feeding a 10,000,000-alert recording in 1,000
    batches through it costs more than correlating it.
    """
    lo, hi = int(alerts.label_ptr[start]), int(alerts.label_ptr[stop])
    columns = {}
    for column in fields(alerts):
        values = getattr(alerts, column.name)
        if column.name == "label_ptr":
            columns[column.name] = values[start : stop + 1] - lo
        elif column.name in ("label_key", "label_value"):
            columns[column.name] = values[lo:hi]
        else:
            columns[column.name] = values[start:stop]
    return AlertBatch(**columns)


def _feed(pipeline: Pipeline, part: AlertBatch, coverage: _Coverage) -> None:
    _, outcome = pipeline.process(part)
    now = time.perf_counter()
    coverage.emitted(outcome.events, now)
    coverage.placed(outcome.row, outcome.incident, now)


def busiest_minute(ts: np.ndarray) -> int:
    """Index of the first alert of the minute (from the first event) holding the most alerts."""
    minute = (ts - ts[0]) // (60 * 10**9)
    busiest = int(np.argmax(np.bincount(minute)))
    return int(np.searchsorted(minute, busiest, side="left"))


def _paced(
    pipeline: Pipeline,
    alerts: AlertBatch,
    coverage: _Coverage,
    speed: float,
    max_seconds: float | None,
    batch_alerts: int,
) -> tuple[int, int, float, bool]:
    """Feed ``alerts`` as they fall due at ``speed`` x real time from the busiest minute on.

    The alerts before the busiest minute go in first at full speed, unmeasured,
    so the state is what it would have been. Returns how many alerts were
    fast-forwarded and how many paced, the paced wall time, and whether
    ``max_seconds`` cut it short.
    """
    n = len(alerts)
    if n == 0:
        return 0, 0, 0.0, False
    ts = alerts.ts.astype(np.int64)
    begin = busiest_minute(ts)
    for start in range(0, begin, batch_alerts):
        _feed(pipeline, _rows(alerts, start, min(start + batch_alerts, begin)), coverage)
    first = int(ts[begin])
    offset = (ts - first) / 1e9 / speed
    t0 = time.perf_counter()
    coverage.due[alerts.row[begin:]] = t0 + offset[begin:]
    pos = begin
    capped = False
    while pos < n:
        now = time.perf_counter() - t0
        if max_seconds is not None and now >= max_seconds:
            capped = True
            break
        end = min(int(np.searchsorted(offset, now, side="right")), pos + batch_alerts)
        if end > pos:
            _feed(pipeline, _rows(alerts, pos, end), coverage)
            pos = end
            continue
        _tick(pipeline, coverage, first, speed, t0)
        wait = offset[pos] - (time.perf_counter() - t0)
        if wait > 0:
            time.sleep(min(wait, HEARTBEAT_S))
    paced = time.perf_counter() - t0
    drain = pipeline.settings.settle / 1e9 / speed + DRAIN_S
    if max_seconds is not None:
        drain = min(drain, max(max_seconds, DRAIN_S))
    drain_until = time.perf_counter() + drain
    while time.perf_counter() < drain_until and coverage.waiting(pipeline):
        _tick(pipeline, coverage, first, speed, t0)
        time.sleep(HEARTBEAT_S)
    return begin, pos - begin, paced, capped


def _tick(pipeline: Pipeline, coverage: _Coverage, first: int, speed: float, t0: float) -> None:
    """Advance event time to where the wall clock says it is, as the daemon's heartbeat does."""
    watermark = first + int((time.perf_counter() - t0) * speed * 1e9)
    _, outcome = pipeline.advance(watermark)
    now = time.perf_counter()
    coverage.emitted(outcome.events, now)
    coverage.placed(outcome.row, outcome.incident, now)
