"""Fault injection against real loopback receivers: no lost and no duplicate ticket.

Every test drives the real dispatcher and sink over HTTP to a receiver on
127.0.0.1 (``receivers.py``) that fails on purpose, then checks at the
receiver: every incident event arrived, in order per incident, and each
incident made exactly one ticket (PagerDuty alert, ServiceNow record).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from correlator.incident import IncidentEvent
from correlator.metrics import Metrics
from correlator.replay import replay
from correlator.sinks import Dispatcher
from correlator.sinks.http import retry_after_seconds
from correlator.sinks.tickets import tickets_list_report
from correlator.topology import load_topology
from receivers import (
    PagerDutyReceiver,
    Receiver,
    ServiceNowReceiver,
    WebhookReceiver,
    storm_events,
)

ROOT = Path(__file__).resolve().parents[1]
FAST = {"backoff_initial": 0.01, "backoff_max": 0.1, "health_interval": 0.1}
TIMEOUT = 0.3  # the sinks' HTTP timeout; "delay" faults answer later than this
PD_KEY = "R0123456789ABCDEF0123456789ABCDE"


@pytest.fixture(autouse=True)
def _credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_PD_KEY", PD_KEY)
    monkeypatch.setenv("TEST_SN_USER", "correlator")
    monkeypatch.setenv("TEST_SN_PASSWORD", "s3cret")


def sink_config(kind: str, receiver: Receiver, name: str | None = None) -> dict[str, Any]:
    options: dict[str, Any] = {"timeout": TIMEOUT}
    if kind == "webhook":
        options["url"] = receiver.url + "/hook"
    elif kind == "pagerduty":
        options |= {"url": receiver.url + "/v2/enqueue", "routing_key_env": "TEST_PD_KEY"}
    else:
        options |= {
            "url": receiver.url,
            "username_env": "TEST_SN_USER",
            "password_env": "TEST_SN_PASSWORD",
        }
    return {"name": name or kind, "type": kind, "options": options, "delivery": FAST}


RECEIVERS: dict[str, Callable[[], Receiver]] = {
    "webhook": WebhookReceiver,
    "pagerduty": PagerDutyReceiver,
    "servicenow": ServiceNowReceiver,
}


def arrived(kind: str, receiver: Any) -> dict[str, list[int]]:
    """Incident id -> versions the receiver applied, in arrival order."""
    out: dict[str, list[int]] = defaultdict(list)
    if kind == "webhook":
        for body in receiver.bodies:
            out[body["id"]].append(body["version"])
    elif kind == "pagerduty":
        for key, action, version in receiver.log:
            out[key].append(version if action == "trigger" else 10**6)
    else:
        for incident, record in receiver.by_incident().items():
            out[incident] = record.versions
    return dict(out)


def assert_delivered(kind: str, receiver: Any, events: Sequence[IncidentEvent]) -> None:
    """Every event arrived, in order per incident; one ticket per incident, all resolved."""
    incidents = {e.id for e in events}
    got = arrived(kind, receiver)
    assert set(got) == incidents
    for incident, versions in got.items():
        assert versions == sorted(versions), f"{incident} out of order: {versions}"
        mine = [e for e in events if e.id == incident]
        if kind == "webhook":
            expected = {e.version for e in mine}
        elif kind == "pagerduty":
            expected = {e.version for e in mine if e.event != "resolve"} | {10**6}
        else:  # the open is the POST; updates and the resolve are PATCHes
            expected = {e.version for e in mine if e.event != "open"}
        assert set(versions) == expected, incident
    if kind == "pagerduty":
        assert dict(receiver.opened) == dict.fromkeys(incidents, 1)
        assert set(receiver.status.values()) == {"resolved"}
    elif kind == "servicenow":
        assert dict(receiver.posts) == dict.fromkeys(incidents, 1)
        assert len(receiver.records) == len(incidents)
        assert {r.fields["state"] for r in receiver.records.values()} == {"6"}


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.005)


def _faults_5xx(r: Receiver, emit: Callable[[], None]) -> None:
    r.fail_next(4, 500)
    r.fail_next(2, 503)
    emit()


def _faults_429(r: Receiver, emit: Callable[[], None]) -> None:
    r.fail_next(1, 429, retry_after=1)
    emit()


def _faults_timeout(r: Receiver, emit: Callable[[], None]) -> None:
    r.delay_next(1, TIMEOUT * 2)  # the first request (an open) is done, its answer lost
    emit()
    wait_for(lambda: len(r.requests) >= 20)
    r.delay_next(2, TIMEOUT * 2)


def _faults_refused(r: Receiver, emit: Callable[[], None]) -> None:
    r.stop()
    emit()
    time.sleep(0.4)
    r.start()


def _faults_restart(r: Receiver, emit: Callable[[], None]) -> None:
    r.delay_next(10_000, 0.002)  # slow answers, so the storm is still flowing at the restart
    emit()
    wait_for(lambda: len(r.requests) >= 40)
    r.restart(down_for=0.3)  # mid-storm: in-flight requests are reset


FAULTS = {
    "5xx": _faults_5xx,
    "429-retry-after": _faults_429,
    "timeout": _faults_timeout,
    "refused": _faults_refused,
    "restart": _faults_restart,
}


@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize("kind", RECEIVERS)
def test_no_lost_and_no_duplicate_ticket_under_faults(
    tmp_path: Path, kind: str, fault: str
) -> None:
    receiver = RECEIVERS[kind]()
    events = storm_events(25)
    metrics = Metrics()
    dispatcher = Dispatcher.from_config(
        [sink_config(kind, receiver)], tmp_path / "outbox.db", metrics=metrics, seed=3
    )
    dispatcher.start(healthcheck_timeout=2)
    try:
        FAULTS[fault](receiver, lambda: dispatcher.emit(events))
        assert dispatcher.drain(20)
    finally:
        dispatcher.close()
        receiver.stop()
    assert_delivered(kind, receiver, events)
    failures = metrics.registry.get_sample_value
    reasons = ["http_5xx", "http_429", "timeout", "connect", "network"]
    assert (
        sum(
            failures("correlator_sink_delivery_failures_total", {"sink": kind, "reason": r}) or 0
            for r in reasons
        )
        > 0
    )


def test_receivers_behind_one_outbox_fail_independently(tmp_path: Path) -> None:
    receivers = {kind: make() for kind, make in RECEIVERS.items()}
    config = [{**sink_config(k, r), "continue": True} for k, r in receivers.items()]
    events = storm_events(20)
    dispatcher = Dispatcher.from_config(config, tmp_path / "outbox.db", seed=5)
    dispatcher.start(healthcheck_timeout=2)
    receivers["pagerduty"].stop()
    try:
        dispatcher.emit(events)
        wait_for(lambda: dispatcher.health()["servicenow"].cursor == len(events))
        wait_for(lambda: dispatcher.health()["webhook"].cursor == len(events))
        assert dispatcher.health()["pagerduty"].healthy is False
        receivers["pagerduty"].start()
        assert dispatcher.drain(20)
    finally:
        dispatcher.close()
        for receiver in receivers.values():
            receiver.stop()
    for kind, receiver in receivers.items():
        assert_delivered(kind, receiver, events)


def test_a_rejected_event_is_dead_lettered_with_the_response(tmp_path: Path) -> None:
    receiver = PagerDutyReceiver()
    events = storm_events(5)
    bad = [e for e in events if e.event == "update"][3]
    receiver.reject(
        lambda body: (
            body.get("dedup_key") == bad.id
            and body.get("payload", {}).get("custom_details", {}).get("version") == bad.version
        )
    )
    metrics = Metrics()
    dispatcher = Dispatcher.from_config(
        [sink_config("pagerduty", receiver)], tmp_path / "outbox.db", metrics=metrics
    )
    with dispatcher:
        dispatcher.emit(events)
        assert dispatcher.drain(10)
        dead = dispatcher.outbox.dead_letters()
    receiver.stop()
    assert [(d.sink, d.incident, d.version, d.status) for d in dead] == [
        ("pagerduty", bad.id, bad.version, 400)
    ]
    assert "invalid event" in (dead[0].response or "")
    assert (
        metrics.registry.get_sample_value(
            "correlator_sink_dead_letters_total", {"sink": "pagerduty"}
        )
        == 1
    )
    assert_delivered("pagerduty", receiver, [e for e in events if e is not bad])


def test_rejected_credentials_are_retried_not_dead_lettered(tmp_path: Path, monkeypatch) -> None:
    receiver = ServiceNowReceiver()
    monkeypatch.setenv("TEST_SN_PASSWORD", "wrong")
    events = storm_events(3)
    dispatcher = Dispatcher.from_config(
        [sink_config("servicenow", receiver)], tmp_path / "outbox.db"
    )
    dispatcher.start(healthcheck_timeout=2)
    try:
        status = dispatcher.health()["servicenow"]
        assert status.healthy is False and "401" in (status.error or "")
        dispatcher.emit(events)
        assert not dispatcher.drain(0.3)
        monkeypatch.setenv("TEST_SN_PASSWORD", "s3cret")
        assert dispatcher.drain(10)
        assert dispatcher.outbox.dead_letters() == []
    finally:
        dispatcher.close()
        receiver.stop()
    assert_delivered("servicenow", receiver, events)


def test_alertmanager_payload_mode(tmp_path: Path) -> None:
    receiver = WebhookReceiver()
    config = sink_config("webhook", receiver)
    config["options"] |= {"format": "alertmanager", "max_alerts": 2, "external_url": "http://c"}
    events = storm_events(1)
    with Dispatcher.from_config([config], tmp_path / "outbox.db") as dispatcher:
        dispatcher.emit(events)
        assert dispatcher.drain(10)
    receiver.stop()
    first, last = receiver.bodies[0], receiver.bodies[-1]
    assert first["version"] == "4" and first["groupKey"] == events[0].id
    assert first["status"] == "firing" and last["status"] == "resolved"
    assert first["receiver"] == "webhook" and first["externalURL"] == "http://c"
    assert first["truncatedAlerts"] == 1 and len(first["alerts"]) == 2
    alert = first["alerts"][0]
    assert alert["labels"] == {
        "alertname": "SwitchDown",
        "ci": "sw-1",
        "incident": events[0].id,
        "severity": "critical",
    }
    assert alert["endsAt"] == "0001-01-01T00:00:00Z" and len(alert["fingerprint"]) == 16
    assert last["alerts"][0]["endsAt"] == events[-1].at
    assert first["commonLabels"]["incident"] == events[0].id


def test_a_correlated_storm_with_merges_makes_one_ticket_per_incident(tmp_path: Path) -> None:
    topology = load_topology(ROOT / "fixtures" / "network-small.cmdb.json")
    events = replay(ROOT / "fixtures" / "late-root-30s.jsonl", topology=topology).events
    assert any(e.reason == "merged_into" for e in events)
    sn, pd = ServiceNowReceiver(), PagerDutyReceiver()
    config = [
        {**sink_config("servicenow", sn), "continue": True},
        {**sink_config("pagerduty", pd), "continue": True},
        {"name": "tickets", "type": "sqlite", "options": {"path": str(tmp_path / "t.db")}},
    ]
    dispatcher = Dispatcher.from_config(config, tmp_path / "outbox.db", seed=9)
    dispatcher.start(healthcheck_timeout=2)
    try:
        for start in range(0, len(events), 10):
            dispatcher.emit(events[start : start + 10])
        wait_for(lambda: len(sn.requests) >= 30)
        sn.restart(down_for=0.2)
        pd.fail_next(3, 503, retry_after=0)
        assert dispatcher.drain(20)
    finally:
        dispatcher.close()
        sn.stop()
        pd.stop()
    assert_delivered("servicenow", sn, events)
    assert_delivered("pagerduty", pd, events)
    merged = [e for e in events if e.reason == "merged_into"]
    notes = {r.fields["correlation_id"]: r.fields["close_notes"] for r in sn.records.values()}
    assert all(notes[e.id].startswith(f"merged into {e.merged_into}") for e in merged)
    report = tickets_list_report(tmp_path / "t.db", limit=1000)
    assert len(report.splitlines()) == 1 + len({e.id for e in events})


_CRASHING_DAEMON = """
import sys, time
sys.path.insert(0, sys.argv[3])
from receivers import storm_events
from correlator.sinks import Dispatcher
from correlator.sinks.http import retry_after_seconds
config = [{"name": "webhook", "type": "webhook",
           "options": {"url": sys.argv[1], "timeout": 1}}]
dispatcher = Dispatcher.from_config(config, sys.argv[2])
dispatcher.start()
dispatcher.emit(storm_events(50))
print("emitted", flush=True)
time.sleep(60)
"""


def test_a_killed_daemon_loses_nothing_and_a_restart_resumes(tmp_path: Path) -> None:
    receiver = WebhookReceiver()
    receiver.delay_next(10_000, 0.005)  # slow enough to be killed mid-storm
    outbox = tmp_path / "outbox.db"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), *sys.path])}
    daemon = subprocess.Popen(
        [
            sys.executable,
            "-c",
            _CRASHING_DAEMON,
            receiver.url + "/hook",
            str(outbox),
            str(ROOT / "tests"),
        ],
        stdout=subprocess.PIPE,
        env=env,
    )
    try:
        assert daemon.stdout is not None and daemon.stdout.readline() == b"emitted\n"
        wait_for(lambda: len(receiver.bodies) >= 40)
    finally:
        daemon.send_signal(signal.SIGKILL)
        daemon.wait()
    before = len(receiver.bodies)
    assert before < 200
    receiver.clear_faults()
    config = [sink_config("webhook", receiver)]
    with Dispatcher.from_config(config, outbox) as dispatcher:
        assert dispatcher.drain(10)
    receiver.stop()
    assert_delivered("webhook", receiver, storm_events(50))
    assert len(receiver.bodies) - 200 <= 1  # at most the event in flight at the kill


def test_a_ticket_deleted_at_servicenow_is_made_anew(tmp_path: Path) -> None:
    receiver = ServiceNowReceiver()
    events = storm_events(1)
    config = [sink_config("servicenow", receiver)]
    with Dispatcher.from_config(config, tmp_path / "outbox.db") as dispatcher:
        dispatcher.emit(events[:1])
        assert dispatcher.drain(10)
        with receiver.lock:
            receiver.records.clear()  # someone deleted the ticket
        dispatcher.emit(events[1:])
        assert dispatcher.drain(10)
    receiver.stop()
    assert receiver.posts[events[0].id] == 2
    (record,) = receiver.records.values()
    assert record.versions == [2, 3, 4] and record.fields["state"] == "6"


def test_retry_after_reads_seconds_and_http_dates() -> None:
    assert retry_after_seconds("3") == 3.0
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:10 GMT", now=1445412480.0) == 10.0
    assert retry_after_seconds("soon") is None
    assert retry_after_seconds(None) is None
