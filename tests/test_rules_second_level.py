"""Second-level rules (inhibit, pair): the kernel against the reference, and what sinks see."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from correlator.batch import Normalizer
from correlator.correlate.engine import CorrelationSettings
from correlator.pipeline import FATES, Pipeline
from correlator.rules import (
    FirstLevel,
    SecondLevel,
    SecondReference,
    check,
    load_rules_text,
    second_kernel,
)
from correlator.rules.model import SECOND_FATE_NAMES, SIGNIFICANCE_NAMES
from correlator.rules.reference import RefAlert
from correlator.rules.second_reference import SecondOutput
from correlator.rules.testing import (
    alert_streams,
    rules_yaml,
    sample_topology,
    second_level_documents,
    to_batch,
)
from correlator.schema import STATUS_NAMES
from correlator.vocab import Vocabulary

TIMEOUT = 300 * 10**9


class SecondHarness:
    """The compiled first level, then the second level and its reference side by side."""

    def __init__(self, text: str) -> None:
        self.rules = load_rules_text(text, "drawn.yaml")
        self.topology = sample_topology()
        self.vocab = Vocabulary()
        self.normalizer = Normalizer(self.vocab, self.topology, ci_labels=self.rules.ci_labels)
        self.first = FirstLevel(self.rules, self.vocab, self.topology)
        self.second = SecondLevel(self.rules, self.first.programs, TIMEOUT)
        self.reference = SecondReference(self.rules, TIMEOUT)
        self.names: tuple[str, ...] = ()

    def run(self, alerts: list[dict[str, Any]]) -> tuple[list, list]:
        """One batch through both: each side's (decisions, injections)."""
        first = self.first.process(to_batch(alerts, self.normalizer))
        self.names = first.columns.names
        passed = np.flatnonzero(first.passed)
        batch = first.batch.take(passed)
        outcome = self.second.process(batch, first.columns.take(passed), first.significance[passed])
        compiled = self._decisions(batch, outcome.fate, outcome.rule)
        out = SecondOutput()
        self.reference.process(self._ref_inputs(batch, first.significance[passed]), out)
        expected = [(d.row, d.fate, d.rule) for d in out.decisions]
        return (compiled, _injections(outcome.injected)), (expected, _ref_injections(out))

    def restart(self) -> None:
        """Carry the compiled side's state over to a fresh ``SecondLevel`` (a snapshot)."""
        fresh = SecondLevel(self.rules, self.first.programs, TIMEOUT)
        fresh.import_state(self.second.export_state())
        self.second = fresh

    def flush(self) -> tuple[list, list]:
        """Both sides release everything still held."""
        out = SecondOutput()
        self.reference.flush(out)
        return _injections(self.second.release(2**62, self.names, inclusive=True)), _ref_injections(
            out
        )

    def _decisions(self, batch: Any, fate: np.ndarray, rule: np.ndarray) -> list:
        names = ("passed", *SECOND_FATE_NAMES)
        out = []
        for k in range(len(batch)):
            code = int(fate[k])
            stage = self.rules.inhibit if names[code] == "inhibited" else self.rules.pair
            name = stage[int(rule[k])].name if rule[k] >= 0 else None
            out.append((int(batch.row[k]), names[code], name))
        return out

    def _ref_inputs(self, batch: Any, significance: np.ndarray) -> list:
        inputs = []
        for k in range(len(batch)):
            ci = int(batch.ci[k])
            ci_type = self.topology.type_names[int(self.topology.ci_type[ci])] if ci >= 0 else ""
            labels = batch.labels(k, self.vocab)
            fields = {
                **labels,
                "ci_type": ci_type,
                "significance": SIGNIFICANCE_NAMES[int(significance[k])],
            }
            alert = RefAlert(
                row=int(batch.row[k]),
                ts=int(batch.ts[k]),
                status=STATUS_NAMES[int(batch.status[k])],
                fingerprint=int(batch.fingerprint[k]),
                ci=ci,
                labels=labels,
            )
            inputs.append((alert, fields))
        return inputs


def _injections(injected: Any) -> list:
    moved = [
        ("resolve" if injected.batch.row[k] < 0 else "release", int(injected.batch.ts[k]), fp)
        for k, fp in enumerate(injected.batch.fingerprint.tolist())
    ]
    return [*moved, *(("paired", fp) for fp in injected.paired.fingerprint.tolist())]


def _ref_injections(out: SecondOutput) -> list:
    moved = [(i.kind, i.ts, i.fingerprint) for i in out.injections if i.kind != "paired"]
    paired = [("paired", i.fingerprint) for i in out.injections if i.kind == "paired"]
    return [*moved, *paired]


@settings(
    max_examples=500,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(doc=second_level_documents(), stream=alert_streams(), restart=st.booleans())
def test_compiled_second_level_agrees_with_the_reference(
    doc: dict[str, Any], stream: list[list[dict[str, Any]]], restart: bool
) -> None:
    """Decision by decision, and across a snapshot and restore between batches."""
    harness = SecondHarness(rules_yaml(doc))
    for alerts in stream:
        compiled, expected = harness.run(alerts)
        assert compiled == expected
        if restart:
            harness.restart()
    compiled, expected = harness.flush()
    assert compiled == expected


def _alert(name: str, at: int, status: str = "firing", **labels: str) -> dict[str, Any]:
    stamp = f"2026-11-27T08:{at // 60:02d}:{at % 60:02d}Z"
    return {
        "labels": {"alertname": name, "severity": "critical", **labels},
        "startsAt": "2026-11-27T08:00:00Z",
        "receivedAt": stamp,
        "status": status,
    }


def _run(rules: str, batches: list[list[dict[str, Any]]], settle: int = 0) -> tuple[list, list]:
    pipeline = Pipeline(
        None,
        rules=load_rules_text(rules, "test.yaml"),
        settings=CorrelationSettings(settle=settle, update_interval=0),
        overrides={"settle": settle},
    )
    events, fates = [], []
    for alerts in batches:
        batch = to_batch(alerts, pipeline.normalizer)
        _, outcome = pipeline.process(batch)
        events += outcome.events
        fates += [FATES[int(r)] or "passed" for r in outcome.reason]
    _, outcome = pipeline.flush()
    events += outcome.events
    fates += [FATES[int(r)] or "passed" for r in outcome.reason]
    return events, fates


INHIBIT = """
correlate:
  inhibit:
    - name: switch-mutes-hosts
      source: 'alertname="SwitchDown"'
      target: 'alertname="HostDown"'
      equal: [{source: instance, target: uplink}]
"""


def test_an_inhibited_alert_opens_no_incident_but_its_resolve_still_closes_one() -> None:
    stream = [
        [_alert("HostDown", 0, instance="h1", uplink="sw1")],
        [
            _alert("SwitchDown", 10, instance="sw1"),
            _alert("HostDown", 20, instance="h2", uplink="sw1"),
        ],
        [_alert("HostDown", 30, instance="h1", uplink="sw1")],
        [_alert("HostDown", 40, "resolved", instance="h1", uplink="sw1")],
    ]
    events, fates = _run(INHIBIT, stream)
    assert fates == ["passed", "passed", "inhibited", "inhibited", "passed"]
    by_root = {}
    for event in events:
        by_root.setdefault(event.labels.get("instance"), []).append(event.event)
    # h2 never had an incident; h1's incident, opened before the switch went
    # down, still gets its resolve although its resend was inhibited.
    assert by_root == {"h1": ["open", "resolve"], "sw1": ["open"]}


def test_inhibition_ends_when_the_source_resolves_or_expires() -> None:
    stream = [
        [_alert("SwitchDown", 0, instance="sw1")],
        [_alert("SwitchDown", 30, "resolved", instance="sw1")],
        [_alert("HostDown", 40, instance="h1", uplink="sw1")],
        [_alert("SwitchDown", 50, instance="sw2")],
        # sw2 was last seen at 08:00:50; 5 minutes later it has expired.
        [_alert("HostDown", 349, instance="h2", uplink="sw2")],
        [_alert("HostDown", 351, instance="h3", uplink="sw2")],
    ]
    _, fates = _run(INHIBIT, stream)
    assert fates == ["passed", "passed", "passed", "passed", "inhibited", "passed"]


PAIR = """
correlate:
  pair:
    - name: link
      problem: 'alertname="LinkDown"'
      recovery: 'alertname="LinkUp"'
      equal: [instance, ifName]
      within: 2m
"""


def test_a_problem_and_its_recovery_within_the_window_cancel_out() -> None:
    stream = [
        [_alert("LinkDown", 0, instance="sw1", ifName="e1")],
        [_alert("LinkUp", 60, instance="sw1", ifName="e1")],
        [_alert("Other", 400, instance="x")],
    ]
    events, fates = _run(PAIR, stream)
    assert fates[:2] == ["held", "paired"]
    assert all(e.labels.get("alertname") == "Other" for e in events)


def test_an_unrecovered_problem_opens_at_its_deadline_and_a_late_recovery_resolves_it() -> None:
    stream = [
        [_alert("LinkDown", 0, instance="sw1", ifName="e1")],
        [_alert("LinkDown", 30, instance="sw1", ifName="e1")],
        [_alert("Other", 121, instance="x")],
        [_alert("LinkUp", 200, instance="sw1", ifName="e1")],
    ]
    events, fates = _run(PAIR, stream)
    # held, held resend, then at 08:02:01 the problem is released (an extra
    # row, before Other), and the recovery is consumed (plus its resolve row).
    assert fates == ["held", "held", "passed", "passed", "recovery", "passed"]
    link = [e for e in events if e.labels.get("alertname") == "LinkDown"]
    assert [(e.event, e.first_seen) for e in link] == [
        ("open", "2026-11-27T08:02:00Z"),
        ("resolve", "2026-11-27T08:02:00Z"),
    ]
    assert link[1].at == "2026-11-27T08:03:20Z"


def test_held_problems_are_released_by_flush_and_batching_does_not_matter() -> None:
    alerts = [
        _alert("LinkDown", 0, instance="sw1", ifName="e1"),
        _alert("LinkDown", 10, instance="sw1", ifName="e2"),
        _alert("LinkUp", 20, instance="sw1", ifName="e2"),
        _alert("LinkDown", 200, instance="sw1", ifName="e3"),
    ]
    whole, _ = _run(PAIR, [alerts])
    split, _ = _run(PAIR, [[a] for a in alerts])
    assert [json.dumps(e.labels) + e.event + e.at for e in whole] == [
        json.dumps(e.labels) + e.event + e.at for e in split
    ]
    # e2 cancelled out; e1 and e3 (released by the flush) share the group of
    # LinkDown on sw1, the CI outside the CMDB.
    assert [e.labels["ifName"] for e in whole if e.event == "open"] == ["e1"]
    assert (whole[-1].alert_count, len(whole[-1].fingerprints)) == (2, 2)


def test_rules_test_shows_second_level_fates(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(PAIR)
    alerts = tmp_path / "alerts.jsonl"
    alerts.write_text(
        json.dumps(_alert("LinkDown", 0, instance="sw1", ifName="e1"))
        + "\n"
        + json.dumps(_alert("LinkUp", 30, instance="sw1", ifName="e1"))
        + "\n"
    )
    text, ok = check.test_rules(rules, alerts)
    assert ok
    lines = text.splitlines()
    assert lines[1].split()[-2:] == ["paired", "link"]
    assert lines[2].split()[-2:] == ["paired", "link"]


def test_fate_names_line_up_with_the_kernel_codes() -> None:
    codes = (
        second_kernel.INHIBITED,
        second_kernel.HELD,
        second_kernel.PAIRED,
        second_kernel.RECOVERY,
    )
    assert [SECOND_FATE_NAMES[c - 1] for c in codes] == list(SECOND_FATE_NAMES)


GROUP = """
correlate:
  group:
    - name: by-cluster
      match: 'cluster!=""'
      group_by: [cluster]
      within: 5m
"""


def test_group_rules_key_alerts_outside_the_cmdb_by_their_labels() -> None:
    stream = [
        [
            _alert("DiskFull", 0, instance="db-1", cluster="orders"),
            _alert("ReplicationLag", 5, instance="db-2", cluster="orders"),
            _alert("DiskFull", 6, instance="db-9", cluster="billing"),
            _alert("DiskFull", 7, instance="web-1"),
            _alert("DiskFull", 8, instance="web-1", job="other"),
        ]
    ]
    events, _ = _run(GROUP, stream)
    latest = {e.id: e for e in events}
    roots = sorted(
        (e.root_cause.alertname, e.root_cause.ci, e.alert_count) for e in latest.values()
    )
    # No cluster: the default key (alertname and CI label) groups web-1's two alerts.
    assert roots == [
        ("DiskFull", "web-1", 2),
        ("by-cluster", "cluster=billing", 1),
        ("by-cluster", "cluster=orders", 2),
    ]


MAINTENANCE = """
maintenance:
  - name: patching
    match: 'instance="h1"'
    from: 2026-11-27T08:01:00Z
    until: 2026-11-27T09:00:00Z
"""


def test_a_resolve_inside_a_maintenance_window_still_closes_the_incident() -> None:
    stream = [
        [_alert("HostDown", 0, instance="h1")],
        [_alert("HostDown", 90, instance="h1")],
        [_alert("HostDown", 120, "resolved", instance="h1")],
    ]
    events, fates = _run(MAINTENANCE, stream)
    assert fates == ["passed", "in_maintenance", "passed"]
    assert [(e.event, e.reason) for e in events] == [("open", None), ("resolve", "resolved")]


def test_rules_test_names_the_group_rule(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(GROUP)
    alerts = tmp_path / "alerts.jsonl"
    alerts.write_text(
        json.dumps(_alert("DiskFull", 0, instance="db-1", cluster="orders"))
        + "\n"
        + json.dumps(_alert("DiskFull", 1, instance="web-1"))
        + "\n"
    )
    text, ok = check.test_rules(rules, alerts)
    assert ok
    lines = [line.split() for line in text.splitlines()]
    assert lines[1][-3:-1] == ["passed", "by-cluster"]
    assert lines[2][-2] == "passed"
    assert lines[2][-1].startswith("inc-")


def test_a_restored_pipeline_keeps_held_problems_and_inhibit_sources() -> None:
    rules = INHIBIT + PAIR.replace("correlate:\n", "")
    before = [
        _alert("SwitchDown", 0, instance="sw1"),
        _alert("LinkDown", 5, instance="sw1", ifName="e1"),
        _alert("LinkDown", 6, instance="sw1", ifName="e2"),
    ]
    after = [
        _alert("LinkUp", 60, instance="sw1", ifName="e1"),
        _alert("HostDown", 70, instance="h1", uplink="sw1"),
        _alert("Other", 300, instance="x"),
    ]
    straight, fates = _run(rules, [before, after])

    def pipeline() -> Pipeline:
        return Pipeline(
            None,
            rules=load_rules_text(rules, "test.yaml"),
            settings=CorrelationSettings(settle=0, update_interval=0),
            overrides={"settle": 0},
        )

    first = pipeline()
    _, outcome = first.process(to_batch(before, first.normalizer))
    events = list(outcome.events)
    restored = pipeline()
    for text in first.vocab.strings(range(1, len(first.vocab))):
        restored.vocab.intern(text)
    restored.import_state(first.export_state())
    _, outcome = restored.process(to_batch(after, restored.normalizer))
    events += outcome.events
    _, outcome = restored.flush()
    events += outcome.events
    assert fates[:6] == ["passed", "held", "held", "paired", "inhibited", "passed"]
    assert [(e.id, e.event, e.at) for e in events] == [(e.id, e.event, e.at) for e in straight]
    assert {e.labels.get("ifName") for e in events} == {None, "e2"}


def test_a_group_takes_joiners_only_within_its_window() -> None:
    stream = [
        [_alert("DiskFull", 0, instance="db-1", cluster="orders")],
        [_alert("DiskFull", 240, instance="db-1", cluster="orders")],  # a resend keeps it open
        # The group's last new alert came at 08:00:00; 5m 30s later is too late to join.
        [_alert("DiskFull", 330, instance="db-3", cluster="orders")],
        [_alert("DiskFull", 331, instance="db-4", cluster="orders")],
    ]
    events, fates = _run(GROUP, stream)
    assert fates == ["passed", "deduplicated", "passed", "passed"]
    latest = {e.id: e for e in events}
    assert sorted(len(e.fingerprints) for e in latest.values()) == [1, 2]
    assert {e.root_cause.ci for e in latest.values()} == {"cluster=orders"}


def test_the_trace_counts_what_each_rule_stopped() -> None:
    rules = (
        INHIBIT
        + PAIR.replace("correlate:\n", "")
        + "drop: [{name: hb, match: 'alertname=\"Watchdog\"'}]\n"
    )
    pipeline = Pipeline(None, rules=load_rules_text(rules, "test.yaml"))
    alerts = [
        _alert("Watchdog", 0),
        _alert("Watchdog", 1),
        _alert("SwitchDown", 2, instance="sw1"),
        _alert("HostDown", 3, instance="h1", uplink="sw1"),
        _alert("LinkDown", 4, instance="sw1", ifName="e1"),
    ]
    pipeline.process(to_batch(alerts, pipeline.normalizer))
    assert pipeline.last_trace is not None
    assert pipeline.last_trace.stopped() == {
        ("dropped", "hb"): 2,
        ("inhibited", "switch-mutes-hosts"): 1,
        ("held", "link"): 1,
    }
