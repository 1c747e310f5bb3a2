"""Correlation: what incidents a sink receives for hand-built storms."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import SMALL_CMDB, alert
from correlator.batch import Normalizer
from correlator.correlate import structures
from correlator.correlate.engine import CorrelationSettings, Correlator
from correlator.correlate.layout import C_NF, DROP_REASONS, XQ_SIZE
from correlator.decode import decode_json
from correlator.incident import IncidentEvent
from correlator.topology import Topology, load_topology
from correlator.vocab import Vocabulary

SECOND = 10**9


def run(rows: list[dict], topology, batches: int = 1, **overrides):
    overrides.setdefault("settle", 0)
    vocab = Vocabulary()
    normalizer = Normalizer(vocab, topology)
    correlator = Correlator(vocab, topology, CorrelationSettings(**overrides), capacity=4)
    events: list[IncidentEvent] = []
    placed: dict[int, tuple[int, int]] = {}
    for part in np.array_split(np.arange(len(rows)), batches):
        chunk = [rows[i] for i in part]
        decoded = decode_json(
            json.dumps(chunk).encode(), row_offset=int(part[0]) if len(part) else 0
        )
        batch, rejects = normalizer.normalize(decoded.table, decoded.index)
        assert rejects == []
        outcome = correlator.process(batch)
        events += outcome.events
        for row, j, reason in zip(outcome.row, outcome.incident, outcome.reason, strict=True):
            placed[int(row)] = (int(j), int(reason))
    events += correlator.flush()
    ids = correlator.incident_ids()
    rows_in = sorted(placed)
    final = correlator.survivors(np.array([placed[r][0] for r in rows_in], dtype=np.int64))
    fates = {
        r: ids[j] if j >= 0 else DROP_REASONS[placed[r][1]]
        for r, j in zip(rows_in, final, strict=True)
    }
    return events, fates, correlator


def final_states(events: list[IncidentEvent]) -> dict[str, IncidentEvent]:
    latest: dict[str, IncidentEvent] = {}
    for event in events:
        latest[event.id] = event
    return latest


def test_symptoms_join_the_incident_of_an_alerting_switch(small_topology) -> None:
    rows = [
        alert(0, "SwitchDown", instance="sw-1:161"),
        alert(2, "HostDown", instance="h1:9100"),
        alert(3, "HostDown", instance="h2:9100"),
        alert(4, "ServiceDown", ci="svc1"),
    ]
    events, fates, _ = run(rows, small_topology)
    assert len(set(fates.values())) == 1
    opened = [e for e in events if e.event == "open"]
    assert len(opened) == 1
    last = final_states(events)[opened[0].id]
    assert last.root_cause.ci == "sw-1" and last.root_cause.alertname == "SwitchDown"
    assert last.alert_count == 4 and last.ci_count == 4
    assert last.affected_services == ["shop"]
    assert "sw-1 dominates all of them" in last.explanation
    assert last.labels["alertname"] == "SwitchDown"  # the alert that opened it


def test_a_late_root_takes_over_instead_of_opening_a_second_ticket(small_topology) -> None:
    rows = [
        alert(0, "HostDown", instance="h1:9100"),
        alert(1, "HostDown", instance="h2:9100"),
        alert(6, "SwitchDown", instance="sw-1:161"),
    ]
    events, fates, _ = run(rows, small_topology)
    assert len(set(fates.values())) == 1
    survivor = fates[0]
    assert [(e.event, e.id == survivor) for e in events] == [
        ("open", True),
        ("open", False),
        ("resolve", False),
        ("update", True),
    ]
    merged = events[2]
    assert merged.reason == "merged_into" and merged.merged_into == survivor
    assert events[3].root_cause.ci == "sw-1" and events[3].alert_count == 3


def test_a_dual_homed_host_is_not_absorbed_by_one_failed_switch(small_topology) -> None:
    rows = [
        alert(0, "SwitchDown", instance="sw-1:161"),
        alert(2, "HostDown", instance="h1:9100"),
        alert(3, "HostDown", instance="hd:9100"),
    ]
    _, fates, _ = run(rows, small_topology)
    assert fates[1] == fates[0]
    assert fates[2] != fates[0]


def test_independent_failures_stay_apart_and_nested_ones_join(small_topology) -> None:
    rows = [
        alert(0, "SwitchDown", instance="sw-1:161"),
        alert(1, "HostDown", instance="h3:9100"),
        alert(2, "HostDown", instance="h2:9100"),
    ]
    _, fates, _ = run(rows, small_topology)
    assert fates[0] == fates[2] != fates[1]


def test_a_root_no_longer_alerting_explains_nothing(small_topology) -> None:
    rows = [
        alert(0, "SwitchDown", instance="sw-1:161"),
        alert(1, "HostDown", instance="h1:9100"),
        alert(400, "HostDown", instance="h2:9100"),
    ]
    _, fates, _ = run(rows, small_topology, window=300 * SECOND)
    assert fates[0] == fates[1] != fates[2]


def test_dedup_informational_and_orphan_resolves(small_topology) -> None:
    rows = [
        alert(0, "HostDown", instance="h1:9100"),
        alert(30, "HostDown", instance="h1:9100"),
        alert(400, "HostDown", instance="h1:9100"),
        alert(401, "Chatty", severity="info", instance="h1:9100"),
        alert(402, "Gone", status="resolved", instance="h2:9100"),
        alert(403, "HostDown", status="resolved", instance="h1:9100"),
        alert(404, "HostDown", status="resolved", instance="h1:9100"),
    ]
    events, fates, _ = run(rows, small_topology)
    incident = fates[0]
    assert [fates[i] for i in range(1, 7)] == [
        "deduplicated",
        incident,
        "informational",
        "orphan_resolve",
        incident,
        "deduplicated",
    ]
    last = events[-1]
    assert (last.event, last.reason, last.alert_count, last.firing_count) == (
        "resolve",
        "resolved",
        3,
        0,
    )


def test_alerts_outside_the_cmdb_group_by_alertname_and_ci_label(small_topology) -> None:
    rows = [
        alert(0, "DiskFull", instance="lab-1:9100", device="sda"),
        alert(1, "DiskFull", instance="lab-1:9100", device="sdb"),
        alert(2, "DiskFull", instance="lab-2:9100"),
        alert(3, "CPU", instance="lab-1:9100"),
    ]
    events, fates, _ = run(rows, small_topology)
    assert fates[0] == fates[1]
    assert len({fates[0], fates[2], fates[3]}) == 3
    first = final_states(events)[fates[0]]
    assert first.root_cause.ci == "lab-1:9100" and first.root_cause.type is None


def test_updates_are_coalesced_per_interval(small_topology) -> None:
    rows = [alert(0, "SwitchDown", instance="sw-1:161")]
    rows += [alert(1 + k * 0.01, "HostDown", instance="h1:9100", n=str(k)) for k in range(500)]
    events, _, _ = run(rows, small_topology, update_interval=30 * SECOND)
    assert [e.event for e in events] == ["open", "update"]
    assert events[-1].alert_count == 501
    assert events[-1].at == "2026-11-27T10:00:30Z"


def test_resolve_then_reopen_within_the_window_then_a_new_incident(small_topology) -> None:
    rows = [
        alert(0, "HostDown", instance="h3:9100"),
        alert(60, "HostDown", status="resolved", instance="h3:9100"),
        alert(120, "HostDown", instance="h3:9100"),
        alert(180, "HostDown", status="resolved", instance="h3:9100"),
        alert(900, "HostDown", instance="h3:9100"),
    ]
    events, fates, _ = run(rows, small_topology, reopen_window=300 * SECOND)
    assert fates[0] == fates[1] == fates[2] == fates[3] != fates[4]
    assert [(e.event, e.version, e.reason) for e in events] == [
        ("open", 1, None),
        ("resolve", 2, "resolved"),
        ("open", 3, "reopened"),
        ("resolve", 4, "resolved"),
        ("open", 1, None),
    ]


def test_settle_lets_a_late_root_absorb_its_symptoms_before_any_ticket(small_topology) -> None:
    rows = [
        alert(0, "HostDown", instance="h1:9100"),
        alert(1, "HostDown", instance="h2:9100"),
        alert(6, "SwitchDown", instance="sw-1:161"),
    ]
    events, fates, _ = run(rows, small_topology, settle=10 * SECOND)
    assert len(set(fates.values())) == 1
    assert [(e.event, e.at, e.root_cause.ci, e.alert_count) for e in events] == [
        ("open", "2026-11-27T10:00:10Z", "sw-1", 3)
    ]


def test_a_silent_switch_is_inferred_from_its_hosts(small_topology) -> None:
    rows = [
        alert(0, "HostDown", instance="h1:9100"),
        alert(1, "HostDown", instance="h2:9100"),
        alert(2, "ServiceDown", ci="svc1"),
    ]
    events, fates, _ = run(rows, small_topology, infer_min_dependents=2, infer_ratio=0.8)
    assert len(set(fates.values())) == 1
    last = events[-1]
    assert last.root_cause.ci == "sw-1" and last.root_cause.inferred
    assert "inferred" in last.explanation
    assert last.affected_by_type == {"host": 2, "service": 1}
    late = [*rows, alert(3, "SwitchDown", instance="sw-1:161")]
    events, _, _ = run(late, small_topology, infer_min_dependents=2, infer_ratio=0.8)
    assert not events[-1].root_cause.inferred
    assert events[-1].root_cause.alertname == "SwitchDown"


def test_no_inference_when_too_few_dependents_alert(small_topology) -> None:
    rows = [alert(0, "HostDown", instance="h1:9100")]
    events, _, _ = run(rows, small_topology, infer_min_dependents=2, infer_ratio=0.5)
    assert events[-1].root_cause.ci == "h1"


def test_alerts_that_are_not_resent_expire_and_resolve_the_incident(small_topology) -> None:
    rows = [
        alert(0, "HostDown", instance="h3:9100"),
        alert(30, "HostDown", instance="h3:9100"),
        alert(1000, "Other", instance="h1:9100"),
    ]
    events, _, _ = run(rows, small_topology, resolve_timeout=300 * SECOND)
    resolve = next(e for e in events if e.event == "resolve")
    assert resolve.root_cause.ci == "h3"
    assert resolve.at == "2026-11-27T10:05:30Z"


def test_severity_rises_to_the_highest_member(small_topology) -> None:
    rows = [
        alert(0, "HostDegraded", severity="warning", instance="h1:9100"),
        alert(100, "HostDown", severity="critical", instance="h1:9100"),
    ]
    events, _, _ = run(rows, small_topology)
    assert [(e.event, e.severity, e.significance) for e in events] == [
        ("open", "warning", "warning"),
        ("update", "critical", "exception"),
    ]


def test_a_warning_on_a_switch_explains_nothing_below_it(small_topology) -> None:
    rows = [
        alert(0, "LinkDown", severity="warning", instance="sw-1:161", ifName="eth1"),
        alert(5, "DiskSpaceLow", severity="warning", instance="h1:9100"),
        alert(10, "LinkUp", severity="warning", instance="sw-1:161", ifName="eth1"),
    ]
    _, fates, _ = run(rows, small_topology)
    assert fates[0] == fates[2] != fates[1]


def test_ids_are_stable_and_batching_does_not_change_the_output(small_topology) -> None:
    rows = [
        alert(k * 0.5, "HostDown", instance=f"h{1 + k % 3}:9100", k=str(k % 7)) for k in range(200)
    ]
    rows.insert(50, alert(25.1, "SwitchDown", instance="sw-1:161"))
    one, fates_one, _ = run(rows, small_topology)
    many, fates_many, _ = run(rows, small_topology, batches=9)
    assert one == many
    assert fates_one == fates_many


names = st.sampled_from(["HostDown", "SwitchDown", "ServiceDown", "Chatty"])
places = st.sampled_from(["rt-1", "sw-1", "sw-2", "h1", "h2", "h3", "hd", "svc1", "lab-1"])
storms = st.lists(
    st.tuples(
        st.integers(0, 900),
        names,
        places,
        st.sampled_from(["critical", "info"]),
        st.sampled_from(["firing", "firing", "resolved"]),
    ),
    max_size=60,
)


@pytest.fixture(scope="module")
def shared_topology(tmp_path_factory) -> Topology:
    path = tmp_path_factory.mktemp("cmdb") / "cmdb.json"
    path.write_text(json.dumps(SMALL_CMDB))
    return load_topology(path)


@settings(max_examples=150, deadline=None)
@given(storm=storms, batches=st.integers(1, 4))
def test_every_alert_ends_in_one_incident_or_one_drop_reason(
    shared_topology, storm, batches
) -> None:
    rows = [
        alert(at, name, severity=sev, status=status, instance=f"{place}:1")
        for at, name, place, sev, status in sorted(storm, key=lambda s: s[0])
    ]
    events, fates, correlator = run(rows, shared_topology, batches=batches)
    assert sorted(fates) == list(range(len(rows)))
    ids = set(correlator.incident_ids())
    assert all(f in ids or f in DROP_REASONS[1:] for f in fates.values())
    history: dict[str, list[IncidentEvent]] = {}
    for event in events:
        history.setdefault(event.id, []).append(event)
    assert set(history) == ids
    for stream in history.values():
        assert [e.version for e in stream] == list(range(1, len(stream) + 1))
        assert stream[0].event == "open"
        for before, after in itertools.pairwise(stream):
            assert (after.event == "open") == (after.reason == "reopened")
            assert after.event != "open" or before.event == "resolve"


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 50), st.booleans()), max_size=60))
def test_the_expiry_heap_pops_by_due_time_then_item(steps: list[tuple[int, bool]]) -> None:
    heap = np.zeros((64, 2), dtype=np.int64)
    ctr = np.zeros(C_NF, dtype=np.int64)
    model: set[tuple[int, int]] = set()
    for item, (delay, rearm) in enumerate(steps):
        if rearm and model:  # the top fires and is armed again later, as re-sent alerts are
            due, top = min(model)
            model.remove((due, top))
            model.add((due + delay, top))
            structures.heap_replace_top(heap, ctr, due + delay, top)
        else:
            model.add((delay, item))
            structures.heap_push(heap, ctr, delay, item)
        assert (int(heap[0, 0]), int(heap[0, 1])) == min(model)
    popped = []
    while ctr[XQ_SIZE]:
        popped.append((int(heap[0, 0]), int(heap[0, 1])))
        structures.heap_pop(heap, ctr)
    assert popped == sorted(model)
