"""The first level's decisions on hand-made streams, reload, growth and the match tables."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pytest

from correlator.batch import Normalizer
from correlator.errors import RuleError
from correlator.rules.first_level import CompiledRules, FirstLevel
from correlator.rules.load import load_rules_text
from correlator.rules.model import BELOW_THRESHOLD, DROPPED, FLAPPING, PASSED
from correlator.rules.testing import BASE_NS, Harness, sample_topology, to_batch
from correlator.timefmt import format_ns
from correlator.vocab import Vocabulary

SECOND = 10**9


def alert(at: float, name: str = "A", status: str = "firing", **labels: str) -> dict[str, Any]:
    """An alert received ``at`` seconds after the test's base time."""
    return {
        "labels": {"alertname": name, **labels},
        "receivedAt": format_ns(BASE_NS + int(at * SECOND)),
        "status": status,
    }


def decide(rules_text: str, *batches: list[dict[str, Any]], topology: Any = None) -> list:
    """Every batch through the compiled first level, checked against the reference."""
    harness = Harness(load_rules_text(rules_text), topology)
    out = []
    for batch in batches:
        compiled, reference = harness.run(batch)
        assert compiled == reference
        out.extend(compiled)
    return out


def fates(decisions: list) -> list[tuple[str, str | None]]:
    return [(d.fate, d.rule) for d in decisions]


def test_first_matching_classify_rule_wins_else_severity_decides() -> None:
    decisions = decide(
        "classify:\n"
        "  - {name: db, match: 'job=\"db\"', significance: exception}\n"
        "  - {name: all-warn, match: 'severity=\"warning\"', significance: informational}\n",
        [
            alert(0, job="db", severity="warning"),
            alert(1, severity="warning"),
            alert(2, severity="critical"),
            alert(3),
        ],
    )
    assert [(d.significance, d.classified_by) for d in decisions] == [
        ("exception", "db"),
        ("informational", "all-warn"),
        ("exception", None),
        ("warning", None),
    ]


def test_drop_comes_first_and_matchers_see_the_significance() -> None:
    decisions = decide(
        "drop: [{name: quiet, match: 'significance=\"informational\"'}]\n"
        "threshold: [{name: t, match: '{}', count: 5, within: 1m}]\n",
        [alert(0, severity="info"), alert(1, severity="critical")],
    )
    assert fates(decisions) == [("dropped", "quiet"), ("below_threshold", "t")]


@pytest.mark.parametrize("drop_reads", ["significance", "job"])
def test_classify_shares_the_main_memo_unless_a_main_rule_reads_the_significance(
    drop_reads: str,
) -> None:
    rules_text = (
        "classify:\n"
        "  - {name: db, match: 'job=\"db\"', significance: informational}\n"
        "  - {name: web, match: 'alertname=\"Web\"', significance: exception}\n"
        f"drop: [{{name: quiet, match: '{drop_reads}=\"informational\"'}}]\n"
        "threshold: [{name: t, match: 'alertname=\"Web\"', count: 2, within: 1m}]\n"
    )
    compiled = CompiledRules(load_rules_text(rules_text), Vocabulary(), None)
    assert compiled.classify_folded == (drop_reads != "significance")
    stream = [alert(k, name=("Web", "Db")[k % 2], job=("db", "web")[k // 2 % 2]) for k in range(8)]
    decisions = decide(rules_text, stream, stream)
    assert {d.classified_by for d in decisions} == {"db", "web", None}


def test_threshold_counts_by_key_and_never_holds_a_resolve() -> None:
    rules = "threshold: [{name: t, match: '{}', count: 3, within: 10s, key: [instance]}]\n"
    decisions = decide(
        rules,
        [
            alert(0, instance="h1", job="a"),
            alert(1, instance="h1", job="b"),
            alert(2, instance="h2"),
            alert(3, status="resolved", instance="h1"),
            alert(10, instance="h1", job="c"),
            alert(30, instance="h1"),
        ],
    )
    assert fates(decisions) == [
        ("below_threshold", "t"),
        ("below_threshold", "t"),
        ("below_threshold", "t"),
        ("passed", None),
        ("passed", None),  # 0, 1, 10: three within 10 s (the window is inclusive)
        ("below_threshold", "t"),
    ]


def test_flap_holds_firing_alerts_while_changes_exceed_the_limit() -> None:
    rules = "flap: [{name: f, match: '{}', changes: 2, within: 60s}]\n"
    stream = [
        alert(0),
        alert(10, status="resolved"),
        alert(20),
        alert(30, status="resolved"),
        alert(40),
        alert(50),
        alert(100),
    ]
    assert fates(decide(rules, stream)) == [
        ("passed", None),
        ("passed", None),
        ("passed", None),
        ("passed", None),  # a resolve is never held
        ("flapping", "f"),  # changes at 10, 20, 30, 40: more than 2 within 60 s
        ("flapping", "f"),  # a resend while it flaps
        ("passed", None),  # only the change at 40 is within 60 s of 100
    ]


def test_maintenance_suppresses_firing_alerts_only() -> None:
    start, end = format_ns(BASE_NS + 10 * SECOND), format_ns(BASE_NS + 20 * SECOND)
    rules = f"maintenance: [{{name: m, match: 'job=\"db\"', from: '{start}', until: '{end}'}}]\n"
    decisions = decide(
        rules,
        [
            alert(9, job="db"),
            alert(10, job="db"),
            alert(15, status="resolved", job="db"),
            alert(19.5, job="web"),
            alert(20, job="db"),
        ],
    )
    assert fates(decisions) == [
        ("passed", None),
        ("in_maintenance", "m"),
        ("passed", None),
        ("passed", None),
        ("passed", None),
    ]


def test_remembered_matches_still_check_each_alerts_own_maintenance_window() -> None:
    """Alerts with the same label classes share remembered matches, not window decisions:
    with one maintenance rule or two (the first closed, the second open), in one batch
    and across batches."""
    at = [format_ns(BASE_NS + k * SECOND) for k in (10, 20, 30, 40)]
    rules = (
        "maintenance:\n"
        f"  - {{name: early, match: 'job=\"db\"', from: '{at[0]}', until: '{at[1]}'}}\n"
        f"  - {{name: late, match: 'job=~\"d.*\"', from: '{at[2]}', until: '{at[3]}'}}\n"
        f"  - {{name: web, match: 'job=\"web\"', from: '{at[0]}', until: '{at[1]}'}}\n"
    )
    stream = [alert(t, job=job) for t in (5, 15, 25, 35) for job in ("db", "web")]
    decisions = decide(rules, stream, [alert(36, job="db"), alert(16, job="web")])
    assert fates(decisions) == [
        ("passed", None),
        ("passed", None),
        ("in_maintenance", "early"),
        ("in_maintenance", "web"),
        ("passed", None),
        ("passed", None),
        ("in_maintenance", "late"),
        ("passed", None),
        ("in_maintenance", "web"),  # the second batch, in event-time order
        ("in_maintenance", "late"),
    ]


def test_alerts_are_taken_in_event_time_order_ties_in_input_order() -> None:
    rules = "threshold: [{name: t, match: '{}', count: 2, within: 5s}]\n"
    decisions = decide(rules, [alert(7), alert(5), alert(5, job="x"), alert(6)])
    assert [d.row for d in decisions] == [1, 2, 3, 0]
    assert fates(decisions) == [
        ("below_threshold", "t"),
        ("below_threshold", "t"),  # another fingerprint
        ("passed", None),
        ("passed", None),
    ]


def test_a_late_batch_counts_occurrences_already_seen_at_later_times() -> None:
    rules = "threshold: [{name: t, match: '{}', count: 2, within: 5s}]\n"
    decisions = decide(rules, [alert(100)], [alert(98)], [alert(90)])
    assert fates(decisions) == [("below_threshold", "t"), ("passed", None), ("passed", None)]


def test_enrichment_fills_missing_labels_from_the_cmdb_only() -> None:
    rules = (
        "enrich:\n"
        "  - {match: 'ci_type=\"host\"', attributes: [owner]}\n"
        "  - {attributes: [owner, location, service]}\n"
        "classify: [{match: 'owner=\"team-a\"', significance: exception}]\n"
    )
    decisions = decide(
        rules,
        [
            alert(0, instance="h1:9100", severity="info"),
            alert(1, instance="h2", owner="mine"),
            alert(2, instance="sw-1"),
            alert(3, instance="nowhere"),
        ],
        topology=sample_topology(),
    )
    assert [d.labels for d in decisions] == [
        {
            "alertname": "A",
            "instance": "h1:9100",
            "severity": "info",
            "owner": "team-a",
            "location": "fra1",
            "service": "shop",
        },
        {"alertname": "A", "instance": "h2", "owner": "mine"},
        {"alertname": "A", "instance": "sw-1", "owner": "team-net", "location": "fra1"},
        {"alertname": "A", "instance": "nowhere"},
    ]
    assert decisions[0].significance == "exception"


def test_derived_fields_shadow_labels_of_the_same_name() -> None:
    decisions = decide(
        "drop: [{match: 'ci_type=\"host\"'}]\n",
        [alert(0, instance="sw-1", ci_type="host"), alert(1, instance="h1")],
        topology=sample_topology(),
    )
    assert fates(decisions) == [("passed", None), ("dropped", "drop#1")]


def test_state_grows_past_its_first_capacity() -> None:
    rules = (
        "flap: [{name: f, match: 'job=\"x\"', changes: 1, within: 1h}]\n"
        "threshold: [{name: t, match: '{}', count: 2, within: 1h}]\n"
    )
    keys = [f"h{k}" for k in range(3000)]
    stream = [alert(k % 97, instance=keys[k % 3000], job="xy"[k % 2]) for k in range(7000)]
    stream += [
        alert(200 + k % 50, status="resolved", instance=h, job="x") for k, h in enumerate(keys)
    ]
    stream += [alert(300 + k % 50, instance=h, job="x") for k, h in enumerate(keys)]
    decisions = decide(rules, stream[:5000], stream[5000:])
    assert {d.fate for d in decisions} == {"passed", "below_threshold", "flapping"}


def test_reload_refuses_a_rule_set_that_does_not_compile() -> None:
    vocab = Vocabulary()
    first = FirstLevel(load_rules_text("drop: [{name: d, match: 'job=\"x\"'}]"), vocab)
    too_many = ", ".join(f"a{k}" for k in range(65))
    with pytest.raises(RuleError, match="at most 64"):
        first.reload(load_rules_text(f"enrich: [{{attributes: [{too_many}]}}]"), None)
    outcome = first.process(to_batch([alert(0, job="x")], Normalizer(vocab)))
    assert outcome.fate.tolist() == [DROPPED]
    assert first.rules.drop[0].name == "d"


def test_reload_keeps_the_state_of_unchanged_rules_only() -> None:
    vocab = Vocabulary()
    normalizer = Normalizer(vocab)
    rules = "threshold: [{name: t, match: '{}', count: 2, within: 1h}]\n"
    first = FirstLevel(load_rules_text(rules), vocab)
    first.process(to_batch([alert(0)], normalizer))
    first.reload(load_rules_text(rules + "drop: [{match: 'job=\"z\"'}]"), None)
    assert first.process(to_batch([alert(1)], normalizer)).fate.tolist() == [PASSED]
    first.reload(load_rules_text(rules.replace("count: 2", "count: 3")), None)
    assert first.state_entries == 0
    assert first.process(to_batch([alert(2)], normalizer)).fate.tolist() == [BELOW_THRESHOLD]


def test_outcome_explains_decisions_and_carries_columns_for_the_second_level() -> None:
    vocab = Vocabulary()
    rules = load_rules_text(
        "classify: [{name: c, match: 'alertname=\"SwitchDown\"', significance: exception}]\n"
        "flap: [{name: f, match: '{}', changes: 1, within: 1h}]\n"
        "correlate:\n  inhibit:\n"
        "    - {source: 'alertname=\"SwitchDown\"', target: 'alertname=\"HostDown\"',"
        " equal: [{source: hostname, target: remote}]}\n"
        'respond:\n  - {match: \'significance="exception", cluster="a"\', action: incident}\n'
        "  - {match: '{}', action: log}\n"
    )
    first = FirstLevel(rules, vocab)
    batch = to_batch(
        [
            alert(0, "SwitchDown", hostname="sw", cluster="a"),
            alert(1, "HostDown", remote="sw"),
            alert(2, "HostDown", "resolved", remote="sw"),
            alert(3, "HostDown", remote="sw"),
        ],
        Normalizer(vocab),
    )
    outcome = first.process(batch)
    assert outcome.fate.tolist() == [PASSED, PASSED, PASSED, FLAPPING]
    assert outcome.passed.tolist() == [True, True, True, False]
    assert outcome.explain(0) == ("exception (by classify rule 'c' (<rules>:1:12)); passed")
    assert outcome.explain(3) == ("warning (by severity); flapping by flap rule 'f' (<rules>:2:8)")
    assert first.programs["respond"].first_match(outcome.columns).tolist() == [0, 1, 1, 1]
    source = first.programs["inhibit.source"].match_mask(outcome.columns)[:, 0]
    target = first.programs["inhibit.target"].match_mask(outcome.columns)[:, 0]
    assert source.tolist() == [True, False, False, False]
    assert target.tolist() == [False, True, True, True]
    remote = outcome.columns.column("remote")
    assert [vocab[int(v)] for v in remote] == ["", "sw", "sw", "sw"]
    passed = np.flatnonzero(outcome.passed)
    assert outcome.columns.take(passed).values.shape[1] == 3


def test_exported_window_state_resumes_where_it_stopped() -> None:
    rules = load_rules_text(
        "flap: [{name: f, match: 'job=\"x\"', changes: 1, within: 1h}]\n"
        "threshold:\n"
        "  - {name: t, match: 'job=\"y\"', count: 3, within: 1h, key: [instance]}\n"
        "  - {name: u, match: '{}', count: 2, within: 1h}\n"
    )
    keys = [f"h{k}" for k in range(301)]  # enough that the import rehashes past 1,024 slots
    stream = [
        alert(k, status="resolved" if k % 7 == 3 else "firing", instance=f"f{k % 10}", job="x")
        if k % 3 == 0
        else alert(k, instance=keys[k % 301], job="yz"[k % 2])
        for k in range(2400)
    ]
    vocab = Vocabulary()
    normalizer = Normalizer(vocab)
    halves = [to_batch(stream[:1200], normalizer), to_batch(stream[1200:], normalizer)]
    whole = FirstLevel(rules, vocab)
    expected = [whole.process(half).fate.tolist() for half in halves]

    first = FirstLevel(rules, vocab)
    assert first.process(halves[0]).fate.tolist() == expected[0]
    saved = io.BytesIO()
    np.savez(saved, **first.export_state())
    saved.seek(0)
    restored = vocab_restored(vocab)
    resumed = FirstLevel(rules, restored)
    resumed.import_state(dict(np.load(saved)))
    assert resumed.state_entries == first.state_entries
    second = to_batch(stream[1200:], Normalizer(restored))
    assert resumed.process(second).fate.tolist() == expected[1]
    assert set(expected[1]) == {PASSED, FLAPPING, BELOW_THRESHOLD}


def test_imported_window_state_keeps_only_rules_that_reload_would_keep() -> None:
    vocab = Vocabulary()
    normalizer = Normalizer(vocab)
    rules = "threshold: [{name: t, match: '{}', count: 2, within: 1h}]\n"
    first = FirstLevel(load_rules_text(rules), vocab)
    first.process(to_batch([alert(0)], normalizer))
    kept = FirstLevel(load_rules_text("drop: [{match: 'job=\"z\"'}]\n" + rules), vocab)
    kept.import_state(first.export_state())
    assert kept.process(to_batch([alert(1)], normalizer)).fate.tolist() == [PASSED]
    resized = FirstLevel(load_rules_text(rules.replace("count: 2", "count: 3")), vocab)
    resized.import_state(first.export_state())
    assert resized.state_entries == 0


def vocab_restored(vocab: Vocabulary) -> Vocabulary:
    """A fresh vocabulary with ``vocab``'s strings interned in order, as a restart makes it."""
    fresh = Vocabulary()
    for text in vocab.strings(range(1, len(vocab))):
        fresh.intern(text)
    return fresh
