"""Delivery: one thread per sink drains the outbox into it, in order, at least once.

A delivery thread reads the events after its sink's cursor, hands them to
``write_batch`` and moves the cursor only once they went through. On a
retryable failure (timeout, refused connection, 5xx, 429) it waits with
capped exponential backoff and full jitter, or the receiver's
``Retry-After``, and offers the same events again; a rejection for good (a
4xx) moves that one event to the dead letters, with the response, and
delivery goes on. A sink that is down only falls behind: its events wait in
the outbox, and the other sinks and correlation are not held up.

Each sink is health-checked when its thread starts (``start`` waits for
these first checks, up to a timeout) and again while it is unhealthy and
idle; ``health`` reports every sink for ``/-/ready``, and ``correlator_sink_up``
shows it in metrics.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import msgspec

from correlator.errors import SinkError
from correlator.incident import IncidentEvent
from correlator.metrics import Metrics
from correlator.sinks.base import DeliveryError, TicketSink
from correlator.sinks.outbox import Outbox, OutboxRow
from correlator.sinks.registry import build_sinks
from correlator.sinks.routing import DeliveryPolicy, Router, SinkSpec, parse_sink_specs
from correlator.threadnames import NamedThread

log = logging.getLogger("correlator.sinks")
_DECODER = msgspec.json.Decoder(IncidentEvent)
_DEPTH_EVERY = 1.0  # seconds between queue-depth gauge refreshes per sink


def backoff_delay(
    attempt: int, policy: DeliveryPolicy, rng: random.Random, retry_after: float | None = None
) -> float:
    """Seconds to wait before retry number ``attempt`` (0-based).

    The receiver's ``Retry-After`` wins (capped at ``retry_after_max``);
    otherwise full jitter over ``min(backoff_max, backoff_initial * 2**attempt)``.
    """
    if retry_after is not None:
        return min(max(retry_after, 0.0), policy.retry_after_max)
    ceiling = min(policy.backoff_max, policy.backoff_initial * 2.0 ** min(attempt, 62))
    return rng.uniform(0.0, ceiling)


@dataclass(frozen=True)
class SinkStatus:
    """One sink as ``/-/ready`` shows it. ``healthy`` is None until the first check ends."""

    name: str
    type: str
    healthy: bool | None
    error: str | None
    cursor: int
    dead_letters: int
    last_success: float | None


class _Worker:
    """The delivery thread of one sink and the status it reports."""

    def __init__(self, spec: SinkSpec, sink: TicketSink, dispatcher: Dispatcher) -> None:
        self.spec = spec
        self.sink = sink
        self.name = spec.name
        self.policy = spec.delivery
        self.batch_size = spec.delivery.batch_size or sink.batch_size
        self.dispatcher = dispatcher
        self.outbox = dispatcher.outbox
        self.metrics = dispatcher.metrics
        self.rng = random.Random(dispatcher.seed)
        self.wake = threading.Event()
        self.checked = threading.Event()
        self.thread = NamedThread(target=self._run, name=f"sink-{self.name}", daemon=True)
        self.healthy: bool | None = None
        self.error: str | None = None
        self.cursor = 0
        self.dead = 0
        self.last_success: float | None = None
        self._last_check = 0.0
        self._last_depth = 0.0

    def status(self) -> SinkStatus:
        return SinkStatus(
            self.name,
            self.spec.type,
            self.healthy,
            self.error,
            self.cursor,
            self.dead,
            self.last_success,
        )

    def _set_health(self, healthy: bool, error: str | None) -> None:
        if healthy != self.healthy:
            if healthy:
                log.info("sink %r is healthy", self.name)
            else:
                log.warning("sink %r is unhealthy: %s", self.name, error)
        self.healthy, self.error = healthy, error
        self.metrics.sink_up.labels(self.name).set(1 if healthy else 0)

    def _check_health(self) -> None:
        self._last_check = time.monotonic()
        try:
            self.sink.healthcheck()
        except Exception as exc:  # a plugin's failure is the sink's, not the dispatcher's
            self._set_health(False, str(exc) or type(exc).__name__)
        else:
            self._set_health(True, None)

    def _refresh_depth(self, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self._last_depth >= _DEPTH_EVERY:
            self._last_depth = now
            self.metrics.sink_queue_depth.labels(self.name).set(self.outbox.pending(self.name))

    def _run(self) -> None:
        stop = self.dispatcher.stopping
        try:
            self._check_health()
            self.checked.set()
            self.cursor = self.outbox.cursor(self.name)
            attempt = 0
            while not stop.is_set():
                try:
                    attempt = self._step(attempt)
                except Exception as exc:  # the outbox failing (disk full, locked): wait, retry
                    log.exception("sink %r: delivery loop failed", self.name)
                    self._set_health(False, f"outbox: {exc}")
                    stop.wait(backoff_delay(attempt, self.policy, self.rng))
                    attempt += 1
        finally:
            self.checked.set()
            try:
                self.sink.close()
            except Exception:
                log.exception("sink %r: close failed", self.name)

    def _step(self, attempt: int) -> int:
        """Deliver one batch, or wait for events; returns the next retry attempt number."""
        stop = self.dispatcher.stopping
        self.wake.clear()
        rows, horizon = self.outbox.read(self.name, self.cursor, self.batch_size)
        if not rows:
            if horizon > self.cursor:
                self._advance(horizon)
            self._refresh_depth()
            self.dispatcher.maybe_compact()
            if not self.healthy and time.monotonic() - self._last_check >= (
                self.policy.health_interval
            ):
                self._check_health()
            self.wake.wait(self.dispatcher.poll_interval)
            return attempt
        failure = self._deliver(rows, horizon)
        self._refresh_depth(force=failure is not None)  # failures are paced by the backoff
        if failure is None:
            return 0
        stop.wait(backoff_delay(attempt, self.policy, self.rng, failure.retry_after))
        return attempt + 1

    def _advance(self, seq: int) -> None:
        self.outbox.advance(self.name, seq)
        self.cursor = seq

    def _deliver(self, rows: list[OutboxRow], horizon: int) -> DeliveryError | None:
        """Offer ``rows`` once; returns the retryable failure to back off on, if any."""
        events: list[IncidentEvent] = []
        for row in rows:
            try:
                events.append(_DECODER.decode(row.body))
            except msgspec.MsgspecError as exc:  # e.g. written by an incompatible version
                if not events:
                    error = f"cannot decode the stored event: {exc}"
                    self._dead_letter(row, DeliveryError(error, retryable=False, reason="decode"))
                    return None
                rows, horizon = rows[: len(events)], rows[len(events) - 1].seq
                break
        self.metrics.sink_attempts.labels(self.name).inc()
        started = time.perf_counter()
        try:
            self.sink.write_batch(events)
        except DeliveryError as exc:
            failure = exc
        except Exception as exc:  # SinkError, or a plugin's own bug: retry, never lose
            reason = "error" if isinstance(exc, SinkError) else type(exc).__name__
            failure = DeliveryError(str(exc) or reason, retryable=True, reason=reason)
        else:
            self._advance(horizon)
            self._delivered(len(rows), time.perf_counter() - started)
            return None
        done = min(max(failure.delivered, 0), len(rows) - 1)
        if done:
            self._advance(rows[done - 1].seq)
            self._delivered(done, None)
        if failure.retryable:
            self.metrics.sink_failures.labels(self.name, failure.reason).inc()
            log.warning("sink %r: delivery failed, will retry: %s", self.name, failure)
            self._set_health(False, str(failure))
            return failure
        self._dead_letter(rows[done], failure)
        return None

    def _dead_letter(self, row: OutboxRow, failure: DeliveryError) -> None:
        log.error(
            "sink %r: rejected %s version %d for good, dead-lettered: %s",
            self.name,
            row.incident,
            row.version,
            failure,
        )
        self.outbox.dead_letter(
            self.name,
            row,
            reason=failure.reason,
            error=str(failure),
            status=failure.status,
            response=failure.response,
        )
        self.cursor = row.seq
        self.dead += 1
        self.metrics.sink_failures.labels(self.name, failure.reason).inc()
        self.metrics.sink_dead_letters.labels(self.name).inc()

    def _delivered(self, count: int, seconds: float | None) -> None:
        self.metrics.sink_delivered.labels(self.name).inc(count)
        if seconds is not None:
            self.metrics.sink_batch_seconds.labels(self.name).observe(seconds)
        self.last_success = time.time()
        self.metrics.sink_last_success.labels(self.name).set(self.last_success)
        self._set_health(True, None)


class Dispatcher:
    """Emits incident events into the outbox and runs one delivery thread per sink.

    ``emit`` is what the correlation loop calls: it only writes the outbox
    and wakes the threads. Constructing a dispatcher on an existing outbox
    resumes every sink from its cursor.
    """

    def __init__(
        self,
        outbox: Outbox,
        sinks: Mapping[str, TicketSink],
        *,
        metrics: Metrics | None = None,
        poll_interval: float = 1.0,
        compact_interval: float = 30.0,
        seed: int | None = None,
    ) -> None:
        self.outbox = outbox
        self.metrics = metrics or outbox.metrics or Metrics()
        self.poll_interval = poll_interval
        self.compact_interval = compact_interval
        self.seed = seed
        self.stopping = threading.Event()
        self._compact_lock = threading.Lock()
        self._last_compact = time.monotonic()
        specs = outbox.router.specs
        missing = [s.name for s in specs if s.name not in sinks]
        if missing:
            msg = f"no sink built for {', '.join(map(repr, missing))}"
            raise SinkError(msg)
        self._workers = [_Worker(spec, sinks[spec.name], self) for spec in specs]
        self._started = False

    @classmethod
    def from_config(
        cls,
        raw_sinks: Any,
        outbox_path: str | Path,
        *,
        metrics: Metrics | None = None,
        synchronous: str = "NORMAL",
        source: str = "config",
        **options: Any,
    ) -> Self:
        """Validate the ``sinks:`` list, build its sinks and open the outbox at ``outbox_path``.

        ``options`` go to the constructor (``poll_interval``, ``compact_interval``, ``seed``).
        """
        metrics = metrics or Metrics()
        specs = parse_sink_specs(raw_sinks, source=source)
        sinks = build_sinks(specs)
        try:
            outbox = Outbox(
                outbox_path, router=Router(specs), synchronous=synchronous, metrics=metrics
            )
        except BaseException:
            for sink in sinks.values():
                sink.close()
            raise
        return cls(outbox, sinks, metrics=metrics, **options)

    def start(self, *, healthcheck_timeout: float = 10.0) -> None:
        """Start the delivery threads; wait up to ``healthcheck_timeout`` s for the first checks."""
        if self._started:
            return
        self._started = True
        for worker in self._workers:
            worker.sink.bind_state(self.outbox.state(worker.name))
            worker.thread.start()
        deadline = time.monotonic() + healthcheck_timeout
        for worker in self._workers:
            worker.checked.wait(max(0.0, deadline - time.monotonic()))

    def emit(self, events: Sequence[IncidentEvent]) -> int:
        """Store ``events`` in the outbox (they are then emitted) and wake delivery; last seq."""
        last = self.outbox.append(events)
        if events:
            for worker in self._workers:
                worker.wake.set()
        return last

    def maybe_compact(self) -> None:
        """Drop delivered events from the outbox, at most once per ``compact_interval``."""
        now = time.monotonic()
        if now - self._last_compact < self.compact_interval:
            return
        with self._compact_lock:
            if now - self._last_compact < self.compact_interval:
                return
            self._last_compact = now
            self.outbox.compact(w.name for w in self._workers)

    def drain(self, timeout: float) -> bool:
        """Wait until every sink has passed every event emitted so far; False on timeout."""
        target = self.outbox.last_seq()
        deadline = time.monotonic() + timeout
        while any(w.cursor < target for w in self._workers):
            if time.monotonic() >= deadline:
                return False
            for worker in self._workers:
                worker.wake.set()
            time.sleep(0.01)
        return True

    def health(self) -> dict[str, SinkStatus]:
        """Every sink's status, by name, in config order."""
        return {w.name: w.status() for w in self._workers}

    def ready(self) -> bool:
        """Whether every sink passed its last healthcheck or delivery."""
        return all(w.healthy for w in self._workers)

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the threads (a batch in flight finishes), join them; sinks are closed.

        Events not yet delivered stay in the outbox for the next start.
        """
        self.stopping.set()
        for worker in self._workers:
            worker.wake.set()
        if not self._started:
            for worker in self._workers:
                worker.sink.close()
            self._started = True
            return
        deadline = time.monotonic() + timeout
        for worker in self._workers:
            worker.thread.join(max(0.0, deadline - time.monotonic()))
            if worker.thread.is_alive():
                log.error("sink %r: delivery thread did not stop in %.0f s", worker.name, timeout)

    def close(self, timeout: float = 30.0) -> None:
        """``stop``, then close the outbox."""
        self.stop(timeout)
        self.outbox.close()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
