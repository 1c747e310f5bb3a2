"""``Daemon``: the long-running correlator, from sockets to sinks.

Threads: one takes decoded bursts from the ZeroMQ intake (``Receiver``:
the sockets and the decoding live in a decode process unless configured
otherwise), one serves HTTP, one runs the correlation loop, and each sink
has a delivery thread (``Dispatcher``). Receivers hand over whole batches
through a bounded queue; the loop thread alone owns the correlation state,
so it needs no locks; other threads ask it for a reload, a snapshot or the
open incidents through a command queue served between two batches.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from correlator.batch import AlertBatch, concat_labels
from correlator.correlate.layout import DROP_DEDUPLICATED, DROP_INFORMATIONAL, DROP_ORPHAN_RESOLVE
from correlator.daemon import snapshot
from correlator.daemon.config import DaemonConfig
from correlator.daemon.deadletter import DeadLetters
from correlator.daemon.receiver import HTTP_SOURCE, Receiver, Verdict
from correlator.daemon.wire import LabelTranslator, WireDecoded
from correlator.decode import Decoded
from correlator.errors import CorrelatorError
from correlator.eventlog import EventLog, read_log
from correlator.incident import IncidentEvent
from correlator.metrics import Metrics
from correlator.pipeline import FATES, Pipeline, shipped_rules
from correlator.rejects import Reject
from correlator.rules import load_rules
from correlator.schema import TIMESTAMP, UNLABELLED
from correlator.sinks.delivery import Dispatcher
from correlator.threadnames import NamedThread
from correlator.topology import Topology, load_topology
from correlator.vocab import Vocabulary
from correlator.warmup import warm_kernels

log = logging.getLogger("correlator.daemon")


@dataclass
class _Arrival:
    """Decoded input from one source, stamped when it arrived."""

    decoded: Decoded
    received_ns: int
    source: str
    format: str


class _Wake:
    """Queued to make the loop look at its commands at once."""


_WAKE = _Wake()


@dataclass
class _Command:
    """Work for the loop thread, answered through ``done``."""

    action: Callable[[], Any]
    done: threading.Event = field(default_factory=threading.Event)
    result: Any = None
    error: BaseException | None = None


class _RateLimitedLog:
    """At most one warning per ``interval`` seconds per key, with a count of the rest."""

    def __init__(self, interval: float = 10.0) -> None:
        self.interval = interval
        self._last: dict[str, float] = {}
        self._muted: dict[str, int] = {}

    def warning(self, key: str, message: str) -> None:
        now = time.monotonic()
        if now - self._last.get(key, -self.interval) >= self.interval:
            muted = self._muted.pop(key, 0)
            suffix = f" ({muted} more since the last report)" if muted else ""
            log.warning("%s%s", message, suffix)
            self._last[key] = now
        else:
            self._muted[key] = self._muted.get(key, 0) + 1


class Daemon:
    """The correlator daemon; ``start`` it, feed it, ``stop`` it (or ``run`` until signalled)."""

    def __init__(
        self,
        config: DaemonConfig,
        *,
        metrics: Metrics | None = None,
        on_events: Callable[[list[IncidentEvent]], None] | None = None,
    ) -> None:
        self.config = config
        self.metrics = metrics or Metrics()
        self.on_events = on_events
        self.state_dir = config.state_path
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.topology = self._load_topology(config.topology)
        self.rules_path = config.rules or shipped_rules()
        self.vocab = Vocabulary()
        self._wire = LabelTranslator(self.vocab)
        loaded = snapshot.read(self.state_dir, config.topology)
        if loaded is not None:
            snapshot.restore_vocabulary(loaded, self.vocab)
        self.pipeline = Pipeline(
            self.topology,
            rules=load_rules(self.rules_path) if self.rules_path else None,
            settings=config.correlation,
            ci_labels=config.ci_labels,
            max_labels=config.max_labels,
            vocab=self.vocab,
            overrides=config.correlation_overrides(),
        )
        self.correlator = self.pipeline.correlator
        warm_kernels(self.pipeline.rules, self.pipeline.settings)
        restored = snapshot.apply(loaded, self.pipeline) if loaded is not None else None
        self.event_log = (
            EventLog(
                self.state_dir / "eventlog",
                self.vocab,
                max_file_bytes=config.event_log.max_file_bytes,
                max_file_age=config.event_log.max_file_age / 1e9,
                retention_bytes=config.event_log.retention_bytes,
            )
            if config.event_log.enabled
            else None
        )
        self.dead_letters = DeadLetters(
            self.state_dir,
            max_file_bytes=config.dead_letter.max_file_bytes,
            keep_files=config.dead_letter.keep_files,
        )
        self.dispatcher = Dispatcher.from_config(
            list(config.sinks),
            self.state_dir / "outbox.db",
            metrics=self.metrics,
            source=config.source,
        )
        self._queue: queue.Queue[_Arrival | _Wake | None] = queue.Queue(maxsize=1024)
        self._commands: queue.Queue[_Command] = queue.Queue()
        self._open: dict[str, IncidentEvent] = {
            event.id: event for event in (restored.open_incidents if restored else ())
        }
        self.metrics.incidents_open.set(len(self._open))
        self._by_significance = tuple(
            self.metrics.events_by_significance.labels(significance=name)
            for name in ("informational", "warning", "exception")
        )
        self._open_lock = threading.Lock()
        self._stopping = threading.Event()
        self._stopped = threading.Event()
        self._threads: list[threading.Thread] = []
        self._receiver = Receiver(
            config.zmq,
            lambda decoded, source: self.submit(
                decoded, source=source, fmt="json-array" if source == HTTP_SOURCE else "zmq"
            ),
            self._decode_failed,
            process=config.zmq.decode_process,
        )
        self.endpoints: list[str] = []
        self.http_address: tuple[str, int] | None = None
        self._http: ThreadingHTTPServer | None = None
        self._noisy = _RateLimitedLog()
        self._row = 0
        self.rows_processed = 0
        self._last_snapshot = time.monotonic()
        self.recovery_seconds = 0.0
        self._recover(restored.logged_rows if restored else 0, restored is not None)

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        """Bind sockets, start the HTTP server, the sinks and the correlation loop."""
        self.endpoints = self._receiver.start()
        self.dispatcher.start()
        if self.config.http_listen:
            from correlator.daemon.http import serve

            self._http = serve(self, self.config.http_listen)
            host, port = self._http.server_address[:2]
            self.http_address = (str(host), int(port))
        thread = NamedThread(target=self._loop, name="correlate", daemon=True)
        thread.start()
        self._threads.append(thread)
        self.metrics.up.set(1)
        log.info(
            "correlator started: zmq %s, http %s, state %s",
            ", ".join(self.endpoints),
            self.http_address,
            self.state_dir,
        )

    def stop(self, timeout: float = 30.0) -> None:
        """Stop intake, drain what was received, flush sinks, snapshot state, close."""
        if self._stopping.is_set():
            self._stopped.wait(timeout)
            return
        self._stopping.set()
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
        self._receiver.stop(timeout)
        self._queue.put(None)
        for thread in self._threads:
            thread.join(timeout)
        self.dispatcher.drain(timeout)
        self.dispatcher.close(timeout)
        if self.event_log is not None:
            self.event_log.close()
        self._snapshot()
        self.metrics.up.set(0)
        self._stopped.set()
        log.info("correlator stopped; state saved in %s", self.state_dir)

    def run(self) -> None:
        """Start, then block until ``stop`` is called (e.g. by a signal handler)."""
        self.start()
        while not self._stopping.is_set():
            self._stopping.wait(0.5)
        self._stopped.wait()

    # -- what other threads may ask ------------------------------------------------------

    def submit(self, decoded: Decoded, *, source: str, fmt: str) -> None:
        """Hand decoded input to the correlation loop (blocks while the queue is full)."""
        self._queue.put(_Arrival(decoded, time.time_ns(), source, fmt))
        self.metrics.ingest_queue_depth.set(self._queue.qsize())

    def post_alerts(self, body: bytes) -> Verdict:
        """Decode and submit an Alertmanager API body (``POST /api/v2/alerts``); its verdict.

        It is decoded where ZeroMQ input is, apart from the loop's interpreter
        by default. Raises ``SourceError`` when intake is stopping or does not
        answer in time.
        """
        return self._receiver.post(body)

    def call(self, action: Callable[[], Any], timeout: float = 30.0) -> Any:
        """Run ``action`` on the loop thread between two batches and return its result."""
        command = _Command(action)
        self._commands.put(command)
        # An idle loop waits for input: wake it rather than wait for the
        # heartbeat. A full queue means a busy loop, which serves commands anyway.
        with contextlib.suppress(queue.Full):
            self._queue.put_nowait(_WAKE)
        if not command.done.wait(timeout):
            msg = "the correlation loop did not answer in time"
            raise CorrelatorError(msg)
        if command.error is not None:
            raise command.error
        return command.result

    def reload(self) -> tuple[bool, str]:
        """Reload the topology file; a file that fails to load is refused, the old one kept."""
        try:
            message = self.call(self._reload)
        except CorrelatorError as exc:
            self.metrics.reloads.labels(result="failure").inc()
            self.metrics.reload_timestamp.labels(result="failure").set(time.time())
            log.error("reload refused, the running configuration stays: %s", exc)
            return False, str(exc)
        self.metrics.reloads.labels(result="success").inc()
        self.metrics.reload_timestamp.labels(result="success").set(time.time())
        return True, message

    def open_incidents(self) -> list[IncidentEvent]:
        """The latest event of every open incident."""
        with self._open_lock:
            return list(self._open.values())

    def ready(self) -> tuple[bool, list[str]]:
        """Whether the daemon takes traffic and every sink is healthy, and what is not."""
        problems = []
        if not any(t.is_alive() for t in self._threads if t.name == "correlate"):
            problems.append("the correlation loop is not running")
        if not self._receiver.alive():
            problems.append("alert intake (ZeroMQ and HTTP bodies) is not running")
        for name, status in self.dispatcher.health().items():
            if not status.healthy:
                problems.append(f"sink {name!r} is failing: {status.error}")
        return not problems, problems

    # -- internals -----------------------------------------------------------------------

    @staticmethod
    def _load_topology(path: str | None) -> Topology | None:
        return load_topology(path) if path else None

    def _reload(self) -> str:
        """Load the topology and rule files anew and switch between two batches.

        Both are loaded and compiled before anything changes, so a file that
        fails leaves the running set untouched.
        """
        topology = self._load_topology(self.config.topology)
        rules = load_rules(self.rules_path) if self.rules_path else None
        self.pipeline.reload(topology, rules)
        self.topology = self.pipeline.topology
        parts = []
        if topology is not None:
            parts.append(f"topology: {topology.n_cis} CIs")
        if rules is not None:
            parts.append(f"rules: {sum(rules.counts().values())} rules from {self.rules_path}")
        return "reloaded " + ("; ".join(parts) if parts else "nothing (no files configured)")

    def _decode_failed(self, message: str) -> None:
        self.metrics.errors.labels(stage="decode").inc()
        log.error("%s", message)

    def _loop(self) -> None:
        """Collect arrivals into batches and process them; serve commands and heartbeats.

        A batch closes at ``max_alerts`` rows or ``max_wait`` after its first
        arrival, whichever comes first; while waiting for either, commands
        (a reload, a snapshot) are served at once.
        """
        cfg = self.config
        max_wait = cfg.batch.max_wait / 1e9
        heartbeat = cfg.heartbeat / 1e9
        pending: list[_Arrival] = []
        rows = 0
        opened = 0.0
        last_tick = time.monotonic()
        while True:
            due = opened + max_wait if pending else last_tick + heartbeat
            try:
                arrival = self._queue.get(timeout=max(0.0, due - time.monotonic()))
            except queue.Empty:
                arrival = _WAKE
            if arrival is None:
                self._guarded(self._process, pending)
                break
            if isinstance(arrival, _Arrival):
                if not pending:
                    opened = time.monotonic()
                pending.append(arrival)
                rows += arrival.decoded.rows
            now = time.monotonic()
            if pending and (rows >= cfg.batch.max_alerts or now - opened >= max_wait):
                self._guarded(self._process, pending)
                pending, rows = [], 0
            if now - last_tick >= heartbeat:
                last_tick = now
                self._guarded(self._tick)
            self._serve_commands()
        self._serve_commands()

    def _guarded(self, step: Callable[..., None], *args: Any) -> None:
        """Run one step of the loop; a bug in it is logged and counted, the loop goes on."""
        try:
            step(*args)
        except Exception:
            self.metrics.errors.labels(stage="correlate").inc()
            log.exception("correlation step %s failed; its batch is lost", step.__name__)

    def _serve_commands(self) -> None:
        while True:
            try:
                command = self._commands.get_nowait()
            except queue.Empty:
                return
            try:
                command.result = command.action()
            except BaseException as exc:
                command.error = exc
            command.done.set()

    def _tick(self) -> None:
        """Heartbeat: let wall time close windows when alerts are quiet."""
        if self.config.event_time == "arrival":
            _, outcome = self.pipeline.advance(time.time_ns())
            self._deliver(outcome.events)
        if time.monotonic() - self._last_snapshot >= self.config.snapshot_interval / 1e9:
            self._snapshot()

    def _stamp(self, table: pa.Table, arrivals: Sequence[_Arrival]) -> pa.Table:
        """Every row's ``receivedAt`` set to when its arrival came in (one column for the batch).

        With ``event_time: source`` a producer's own ``receivedAt`` is kept where set.
        """
        sizes = [arrival.decoded.table.num_rows for arrival in arrivals]
        stamps = np.repeat(np.array([a.received_ns for a in arrivals], dtype=np.int64), sizes)
        column = pa.Array.from_buffers(TIMESTAMP, len(stamps), [None, pa.py_buffer(stamps)])
        if self.config.event_time == "source":
            column = pc.coalesce(table.column("receivedAt"), column)
        index = table.schema.get_field_index("receivedAt")
        return table.set_column(index, "receivedAt", column)

    def _process(self, arrivals: Sequence[_Arrival]) -> None:
        """Normalize, log and correlate the arrivals of one batch, all at once.

        Per-call costs of Arrow and numpy are paid once per batch, not once
        per message; rejects are traced back to their source by row range.
        Labels become vocabulary ids per arrival (a gather for the ZeroMQ
        intake's wire ids, interning for the rest), and the event log takes
        them as ids.
        """
        if not arrivals:
            return
        # New label strings first: should this batch fail, the ids of later
        # bursts still find their strings.
        for arrival in arrivals:
            if isinstance(arrival.decoded, WireDecoded):
                self._wire.learn(arrival.decoded.strings)
        started = time.perf_counter()
        tables, bounds, labels = [], [], []
        for arrival in arrivals:
            self._count_input(arrival)
            self._reject(arrival.decoded.rejects, arrival.source)
            table = arrival.decoded.table
            bounds.append(self._row)
            self._row += table.num_rows
            if table.num_rows == 0:
                continue
            column = table.column("labels")
            if isinstance(arrival.decoded, WireDecoded):
                labels.append(self._wire.labels(column))
            else:
                labels.append(self.pipeline.normalizer.intern_labels(column))
            rest = table.drop_columns(["labels"])
            tables.append(rest if rest.schema == UNLABELLED else rest.cast(UNLABELLED))
        table = self._stamp(
            pa.concat_tables(tables) if tables else UNLABELLED.empty_table(), arrivals
        )
        ptr, keys, values = concat_labels(labels)
        first = bounds[0]
        rows = np.arange(first, first + table.num_rows, dtype=np.int64)
        batch, rejects = self.pipeline.normalizer.normalize_interned(table, ptr, keys, values, rows)
        if rejects:  # the log holds accepted alerts only, as replay must see them
            rejected = np.array([r.row for r in rejects], dtype=np.int64)
            owner = np.searchsorted(np.asarray(bounds), rejected, side="right") - 1
            for k in np.unique(owner).tolist():
                mine = [rejects[m] for m in np.flatnonzero(owner == k).tolist()]
                self._reject(mine, arrivals[k].source)
            keep = np.ones(table.num_rows, dtype=bool)
            keep[rejected - first] = False
            table = table.filter(pa.array(keep))
        # Write-ahead: the log's write starts before correlating and ends before the
        # batch's effects are emitted (``_correlate``), so a crash can replay them.
        if self.event_log is not None and len(batch):
            try:
                self.event_log.append(table, batch.label_ptr, batch.label_key, batch.label_value)
            except Exception as exc:  # a log failure must not stop correlation
                self._log_failed(exc)
        self._correlate(batch)
        self.metrics.batch_seconds.observe(time.perf_counter() - started)
        self.metrics.ingest_queue_depth.set(self._queue.qsize())

    def _correlate(self, batch: AlertBatch) -> None:
        try:
            _, outcome = self.pipeline.process(batch)
        finally:  # even when correlating fails, the log's write ends with its batch
            self._logged()
        reasons = np.bincount(outcome.reason, minlength=len(FATES))
        self.metrics.deduplicated.inc(int(reasons[DROP_DEDUPLICATED]))
        for code in (DROP_INFORMATIONAL, DROP_ORPHAN_RESOLVE):
            if reasons[code]:
                self.metrics.dropped.labels(rule=FATES[code]).inc(int(reasons[code]))
        trace = self.pipeline.last_trace
        for (fate, rule), count in (trace.stopped() if trace is not None else {}).items():
            counter = self.metrics.dropped if fate == "dropped" else self.metrics.suppressed
            counter.labels(rule=rule).inc(count)
        # The batch's own alerts only: rows a pair rule brings back were counted when held.
        own = trace.first.significance if trace is not None else outcome.significance
        significance = np.bincount(own, minlength=3)
        for counter, count in zip(self._by_significance, significance.tolist(), strict=True):
            if count:
                counter.inc(count)
        self._deliver(outcome.events)

    def _logged(self) -> None:
        """Wait until the batch being correlated is in the event log."""
        if self.event_log is None:
            return
        try:
            self.event_log.sync()
        except Exception as exc:  # a log failure must not hold back incidents
            self._log_failed(exc)

    def _log_failed(self, exc: Exception) -> None:
        """A batch could not be logged: counted and reported (a full disk at most every
        few seconds; anything else, a bug, with its traceback). It is correlated and its
        effects go out all the same: the black box must not hold back incidents."""
        self.metrics.errors.labels(stage="eventlog").inc()
        if isinstance(exc, OSError):
            self._noisy.warning("eventlog", f"a batch of alerts could not be logged: {exc}")
        else:
            log.error("a batch of alerts could not be logged", exc_info=exc)

    def _deliver(self, events: list[IncidentEvent]) -> None:
        if not events:
            return
        self.dispatcher.emit(events)
        with self._open_lock:
            for event in events:
                if event.event == "resolve":
                    self._open.pop(event.id, None)
                else:
                    self._open[event.id] = event
            self.metrics.incidents_open.set(len(self._open))
        for event in events:
            self.metrics.incidents.labels(event=event.event).inc()
        if self.on_events is not None:
            self.on_events(events)

    def _count_input(self, arrival: _Arrival) -> None:
        self.rows_processed += arrival.decoded.rows
        self.metrics.received.labels(source=arrival.source, format=arrival.format).inc(
            arrival.decoded.rows
        )

    def _reject(self, rejects: Sequence[Reject], source: str) -> None:
        if not rejects:
            return
        by_reason: dict[str, int] = {}
        for reject in rejects:
            by_reason[reject.reason] = by_reason.get(reject.reason, 0) + 1
        for reason, count in by_reason.items():
            self.metrics.rejected.labels(reason=reason).inc(count)
            self._noisy.warning(reason, f"rejected {count} row(s) from {source}: {reason}")
        self.dead_letters.write(rejects, source)

    def _snapshot(self) -> None:
        logged = self.event_log.rows if self.event_log is not None else 0
        snapshot.save(
            self.state_dir, self.pipeline, logged, self.config.topology, self.open_incidents()
        )
        self._last_snapshot = time.monotonic()

    def _recover(self, logged_rows: int, restored: bool) -> None:
        """After an unclean stop: replay what the event log holds beyond the snapshot."""
        if self.event_log is None:
            return
        missing = self.event_log.rows - logged_rows
        if missing <= 0:
            return
        started = time.perf_counter()
        table = read_log(self.event_log.directory, after=logged_rows)
        rows = np.arange(table.num_rows, dtype=np.int64)
        batch, _ = self.pipeline.normalizer.normalize(table, rows)
        self._correlate(batch)
        log.warning(
            "recovered %d logged alert(s) beyond the %s in %.2f s",
            table.num_rows,
            "snapshot" if restored else "start of the log",
            time.perf_counter() - started,
        )
        self.recovery_seconds = time.perf_counter() - started


def run_daemon(config: DaemonConfig, stop_signals: Sequence[int] = ()) -> None:
    """Run until one of ``stop_signals`` arrives (SIGHUP reloads)."""
    import signal

    daemon = Daemon(config)
    # Everything built so far lives as long as the process: keep it out of the
    # collector's generations (once the warm-up's garbage is gone), and collect
    # less often under a storm's churn.
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)

    def _stop(signum: int, frame: object) -> None:
        threading.Thread(target=daemon.stop, name="stop", daemon=True).start()

    def _reload(signum: int, frame: object) -> None:
        threading.Thread(target=daemon.reload, name="reload", daemon=True).start()

    for signum in stop_signals:
        signal.signal(signum, _stop)
    signal.signal(signal.SIGHUP, _reload)
    daemon.run()
