"""The outbox and the dispatcher: durability, cursors, order, retries, dead letters, health."""

from __future__ import annotations

import random
import sqlite3
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from correlator.errors import SinkError
from correlator.incident import IncidentEvent
from correlator.metrics import Metrics
from correlator.sinks import DeliveryError, Dispatcher, Outbox, Router, TicketSink
from correlator.sinks.delivery import backoff_delay
from correlator.sinks.routing import DeliveryPolicy, parse_sink_specs
from receivers import incident_event, storm_events

FAST = {"backoff_initial": 0.005, "backoff_max": 0.05, "health_interval": 0.05}


class MemorySink(TicketSink):
    """Keeps what it is given; ``failures`` is a queue of errors to raise, one per call."""

    def __init__(self) -> None:
        self.name = "memory"
        self.events: list[IncidentEvent] = []
        self.failures: list[BaseException] = []
        self.healthy = True
        self.closed = 0
        self.threads: set[str] = set()
        self.lock = threading.Lock()

    def healthcheck(self) -> None:
        if not self.healthy:
            raise SinkError("memory sink is down")

    def write_batch(self, events: Sequence[IncidentEvent]) -> None:
        self.threads.add(threading.current_thread().name)
        with self.lock:
            if self.failures:
                raise self.failures.pop(0)
            self.events.extend(events)

    def close(self) -> None:
        self.closed += 1

    def keys(self) -> list[tuple[str, int]]:
        return [(e.id, e.version) for e in self.events]


def _dispatcher(
    path: Path, sinks: dict[str, TicketSink], config: list[dict] | None = None, **kwargs
) -> Dispatcher:
    config = config or [{"name": name, "continue": True, "delivery": FAST} for name in sinks]
    specs = parse_sink_specs(config)
    metrics = kwargs.pop("metrics", None) or Metrics()
    outbox = Outbox(path, router=Router(specs), metrics=metrics)
    return Dispatcher(outbox, sinks, metrics=metrics, poll_interval=0.05, seed=7, **kwargs)


def test_append_is_one_transaction_in_wal_mode_and_read_follows_seq(tmp_path: Path) -> None:
    specs = parse_sink_specs([{"name": "a"}])
    outbox = Outbox(tmp_path / "o.db", router=Router(specs))
    events = storm_events(3)
    assert outbox.append(events) == len(events)
    rows, horizon = outbox.read("a", 0, 5)
    assert [r.seq for r in rows] == [1, 2, 3, 4, 5] and horizon == 5
    rows, horizon = outbox.read("a", 5, 100)
    assert len(rows) == len(events) - 5 and horizon == len(events)
    assert outbox.read("a", horizon, 100) == ([], horizon)
    conn = sqlite3.connect(tmp_path / "o.db")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    outbox.close()


def test_seq_never_goes_back_after_compaction(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "o.db", router=Router(parse_sink_specs([{"name": "a"}])))
    outbox.append(storm_events(2))
    outbox.advance("a", outbox.last_seq())
    assert outbox.compact(["a"]) == 8
    assert outbox.append([incident_event("inc-new", "open", 1)]) == 9
    outbox.close()
    reopened = Outbox(tmp_path / "o.db", router=Router(parse_sink_specs([{"name": "a"}])))
    assert reopened.cursor("a") == 8 and reopened.last_seq() == 9
    assert [r.incident for r in reopened.read("a", 8, 10)[0]] == ["inc-new"]
    reopened.close()


def test_an_incident_keeps_the_route_of_its_first_event_until_resolved(tmp_path: Path) -> None:
    specs = parse_sink_specs(
        [
            {"name": "netops", "match": 'root_type="switch"'},
            {"name": "dba", "match": 'root_type="database"'},
        ]
    )
    path = tmp_path / "o.db"
    outbox = Outbox(path, router=Router(specs))
    outbox.append([incident_event("inc-1", "open", 1, root_type="switch")])
    outbox.close()
    outbox = Outbox(path, router=Router(specs))  # the route survives a restart
    later = incident_event("inc-1", "update", 2, root_type="database")
    outbox.append([later, incident_event("inc-1", "resolve", 3, root_type="database")])
    assert [r.version for r in outbox.read("netops", 0, 10)[0]] == [1, 2, 3]
    assert outbox.read("dba", 0, 10)[0] == []
    assert outbox.pending("netops") == 3
    routes = sqlite3.connect(path).execute("SELECT count(*) FROM routes").fetchone()[0]
    assert routes == 0  # a resolve ends the route
    outbox.close()


def test_every_event_arrives_in_order_once_per_sink(tmp_path: Path) -> None:
    a, b = MemorySink(), MemorySink()
    events = storm_events(40)
    with _dispatcher(tmp_path / "o.db", {"a": a, "b": b}) as dispatcher:
        for start in range(0, len(events), 7):
            dispatcher.emit(events[start : start + 7])
        assert dispatcher.drain(10)
    expected = [(e.id, e.version) for e in events]
    assert a.keys() == expected and b.keys() == expected
    assert a.closed == b.closed == 1
    assert a.threads == {"sink-a"} and b.threads == {"sink-b"}


def test_retryable_failures_back_off_and_deliver_the_rest_of_a_batch_once(tmp_path: Path) -> None:
    sink = MemorySink()
    sink.failures = [
        DeliveryError("down", retryable=True, reason="http_5xx"),
        DeliveryError("timeout", retryable=True, reason="timeout"),
        RuntimeError("a plugin bug"),
    ]
    events = storm_events(5)
    metrics = Metrics()
    with _dispatcher(tmp_path / "o.db", {"a": sink}, metrics=metrics) as dispatcher:
        dispatcher.emit(events)
        assert dispatcher.drain(10)
    assert sink.keys() == [(e.id, e.version) for e in events]
    sample = metrics.registry.get_sample_value
    assert sample("correlator_sink_delivery_failures_total", {"sink": "a", "reason": "http_5xx"})
    assert sample(
        "correlator_sink_delivery_failures_total", {"sink": "a", "reason": "RuntimeError"}
    )
    assert sample("correlator_sink_events_delivered_total", {"sink": "a"}) == len(events)
    assert sample("correlator_sink_delivery_attempts_total", {"sink": "a"}) == 4
    assert sample("correlator_outbox_events_total") == len(events)
    assert sample("correlator_sink_up", {"sink": "a"}) == 1


class PartialSink(MemorySink):
    """Takes ``take`` events of the first batch, then fails as ``error`` says."""

    def __init__(self, take: int, error: DeliveryError) -> None:
        super().__init__()
        self.take, self.error = take, error

    def write_batch(self, events: Sequence[IncidentEvent]) -> None:
        if self.error is not None:
            self.events.extend(events[: self.take])
            error, self.error = self.error, None
            error.delivered = self.take
            raise error
        self.events.extend(events)


def test_a_partial_batch_is_not_resent(tmp_path: Path) -> None:
    sink = PartialSink(3, DeliveryError("429", retryable=True, reason="http_429", retry_after=0))
    events = storm_events(4)
    with _dispatcher(tmp_path / "o.db", {"a": sink}) as dispatcher:
        dispatcher.emit(events)
        assert dispatcher.drain(10)
    assert sink.keys() == [(e.id, e.version) for e in events]


def test_a_rejected_event_is_dead_lettered_and_later_events_flow(tmp_path: Path) -> None:
    rejection = DeliveryError(
        "HTTP 400", retryable=False, reason="http_4xx", status=400, response='{"errors":["bad"]}'
    )
    sink = PartialSink(2, rejection)
    events = storm_events(3)
    metrics = Metrics()
    with _dispatcher(tmp_path / "o.db", {"a": sink}, metrics=metrics) as dispatcher:
        dispatcher.emit(events)
        assert dispatcher.drain(10)
        dead = dispatcher.outbox.dead_letters("a")
        assert dispatcher.health()["a"].dead_letters == 1
    rejected = events[2]
    assert [(d.incident, d.version, d.status, d.response) for d in dead] == [
        (rejected.id, rejected.version, 400, '{"errors":["bad"]}')
    ]
    assert sink.keys() == [(e.id, e.version) for e in events if e is not rejected]
    assert (
        metrics.registry.get_sample_value("correlator_sink_dead_letters_total", {"sink": "a"}) == 1
    )


def test_a_failing_sink_does_not_hold_up_another_and_shows_in_health(tmp_path: Path) -> None:
    good, bad = MemorySink(), MemorySink()
    bad.healthy = False
    bad.failures = [DeliveryError("refused", retryable=True, reason="connect")] * 1000
    metrics = Metrics()
    events = storm_events(20)
    dispatcher = _dispatcher(tmp_path / "o.db", {"good": good, "bad": bad}, metrics=metrics)
    dispatcher.start()
    dispatcher.emit(events)
    assert not dispatcher.drain(0.5)
    assert good.keys() == [(e.id, e.version) for e in events]
    health = dispatcher.health()
    assert health["good"].healthy and not health["bad"].healthy
    assert "refused" in (health["bad"].error or "")
    assert not dispatcher.ready()
    assert metrics.registry.get_sample_value("correlator_sink_up", {"sink": "bad"}) == 0
    assert metrics.registry.get_sample_value("correlator_sink_queue_depth", {"sink": "bad"}) == len(
        events
    )
    with bad.lock:  # the sink comes back: it catches up, in order
        bad.failures.clear()
        bad.healthy = True
    assert dispatcher.drain(10)
    dispatcher.close()
    assert bad.keys() == good.keys()
    assert dispatcher.health()["bad"].healthy


def test_healthchecks_run_at_start_and_again_while_unhealthy(tmp_path: Path) -> None:
    sink = MemorySink()
    sink.healthy = False
    dispatcher = _dispatcher(tmp_path / "o.db", {"a": sink})
    dispatcher.start()
    status = dispatcher.health()["a"]
    assert status.healthy is False and status.error == "memory sink is down"
    sink.healthy = True
    for _ in range(100):
        if dispatcher.health()["a"].healthy:
            break
        time.sleep(0.02)
    assert dispatcher.ready()
    dispatcher.close()


def test_a_restart_resumes_from_the_cursors(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    events = storm_events(30)
    first = MemorySink()
    first.failures = [DeliveryError("down", retryable=True, reason="connect")] * 10_000
    dispatcher = _dispatcher(path, {"a": first, "b": MemorySink()})
    dispatcher.start()
    dispatcher.emit(events[:50])
    for _ in range(500):
        if dispatcher.health()["b"].cursor == 50:
            break
        time.sleep(0.01)
    dispatcher.close()  # "a" got nothing, "b" all 50
    second_a, second_b = MemorySink(), MemorySink()
    dispatcher = _dispatcher(path, {"a": second_a, "b": second_b})
    dispatcher.start()
    dispatcher.emit(events[50:])
    assert dispatcher.drain(10)
    dispatcher.close()
    assert second_a.keys() == [(e.id, e.version) for e in events]
    assert second_b.keys() == [(e.id, e.version) for e in events[50:]]


def test_stop_before_start_closes_the_sinks(tmp_path: Path) -> None:
    sink = MemorySink()
    _dispatcher(tmp_path / "o.db", {"a": sink}).close()
    assert sink.closed == 1


def test_unrouted_events_are_stored_and_counted(tmp_path: Path) -> None:
    sink, metrics = MemorySink(), Metrics()
    config = [{"name": "a", "match": 'severity="critical"', "delivery": FAST}]
    dispatcher = _dispatcher(tmp_path / "o.db", {"a": sink}, config, metrics=metrics)
    with dispatcher:
        dispatcher.emit([incident_event("inc-w", "open", 1, severity="warning")])
        dispatcher.emit([incident_event("inc-c", "open", 1)])
        assert dispatcher.drain(10)
    assert sink.keys() == [("inc-c", 1)]
    assert metrics.registry.get_sample_value("correlator_outbox_unrouted_events_total") == 1


def test_delivered_events_are_compacted_away(tmp_path: Path) -> None:
    sink = MemorySink()
    dispatcher = _dispatcher(tmp_path / "o.db", {"a": sink}, compact_interval=0.0)
    with dispatcher:
        dispatcher.emit(storm_events(10))
        assert dispatcher.drain(10)
        dispatcher.maybe_compact()
        left = dispatcher.outbox.read("a", 0, 100)[0]
    assert left == []


def test_sink_state_is_durable_per_sink(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "o.db")
    state = outbox.state("sn")
    state.put("inc-1", "sys-1")
    assert outbox.state("other").get("inc-1") is None
    outbox.close()
    state = Outbox(tmp_path / "o.db").state("sn")
    assert state.get("inc-1") == "sys-1"
    state.delete("inc-1")
    assert state.get("inc-1") is None


def test_backoff_is_capped_jittered_and_honours_retry_after() -> None:
    policy = DeliveryPolicy(backoff_initial=0.5, backoff_max=60.0, retry_after_max=600.0)
    rng = random.Random(1)
    delays = [backoff_delay(a, policy, rng) for a in range(200)]
    assert all(0 <= d <= 60.0 for d in delays)
    assert max(delays[:3]) <= 2.0 and max(delays[10:]) > 30  # grows, then the cap holds
    assert backoff_delay(5, policy, rng, retry_after=7) == 7
    assert backoff_delay(5, policy, rng, retry_after=10_000) == 600.0
    # A ten-minute outage: the waits never exceed the cap, so delivery resumes within
    # backoff_max of the receiver coming back.
    waited, attempt = 0.0, 0
    while waited < 600:
        waited += backoff_delay(attempt, policy, rng)
        attempt += 1
    assert attempt < 100


def test_a_bad_synchronous_mode_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SinkError, match="synchronous"):
        Outbox(tmp_path / "o.db", synchronous="SOMETIMES")


def test_an_undecodable_stored_event_is_dead_lettered_not_a_poison_pill(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    sink = MemorySink()
    dispatcher = _dispatcher(path, {"a": sink})
    events = storm_events(2)
    dispatcher.emit(events[:2])
    conn = sqlite3.connect(path)
    conn.execute(  # as an older version without today's fields might have written it
        "INSERT INTO events (incident, version, targets, body) VALUES (?, ?, ?, ?)",
        ("inc-old", 1, ",a,", b'{"id": "inc-old"}'),
    )
    conn.commit()
    dispatcher.emit(events[2:])
    with dispatcher:
        assert dispatcher.drain(10)
        dead = dispatcher.outbox.dead_letters("a")
    assert [(d.incident, d.reason) for d in dead] == [("inc-old", "decode")]
    assert sink.keys() == [(e.id, e.version) for e in events]
