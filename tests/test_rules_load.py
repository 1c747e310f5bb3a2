"""Rule files: the shape the loader accepts, merging, and errors with their exact place."""

from __future__ import annotations

from pathlib import Path

import pytest

from correlator.rules.check import check_paths
from correlator.rules.load import load_rules, load_rules_text
from correlator.rules.model import EXCEPTION, AbsoluteWindow, WeeklyWindow
from correlator.rules.source import RuleLoadError

MINUTE = 60 * 10**9

DESIGN_EXAMPLE = """\
version: 1
ci_label: instance
classify:
  - {match: 'severity=~"info|none"', significance: informational}
  - {match: 'severity="warning"',    significance: warning}
  - {match: 'severity=~"critical|error|page"', significance: exception}
drop:      [{name: watchdog, match: 'alertname="Watchdog"'}]
dedup:     {window: 5m}
threshold: [{name: flaky-disk, match: 'alertname="DiskLatencyHigh"', count: 3, within: 10m}]
maintenance: [{name: db-patching, match: 'instance=~"db-.*"', from: 2026-11-28T01:00:00Z, until: 2026-11-28T03:00:00Z}]
correlate:
  topology: {window: 5m, settle: 10s, infer_silent_root: {min_dependents: 5, ratio: 0.8}}
  inhibit:  [{source: 'alertname="SwitchDown"', target: 'alertname=~"HostDown|ServiceDown"', equal: [switch]}]
  pair:     [{name: link-flap, problem: 'alertname="LinkDown"', recovery: 'alertname="LinkUp"', equal: [instance, ifName], within: 2m}]
respond:
  - {match: 'significance="exception"', action: incident}
  - {match: 'significance="warning"',   action: alert}
"""  # noqa: E501  (the design's example, verbatim)


def errors(text: str) -> list[str]:
    """Each diagnostic as ``line:col: message``."""
    with pytest.raises(RuleLoadError) as caught:
        load_rules_text(text, "r.yaml")
    return [f"{d.position.line}:{d.position.col}: {d.message}" for d in caught.value.diagnostics]


def test_the_design_example_loads_into_every_stage() -> None:
    rules = load_rules_text(DESIGN_EXAMPLE)
    assert rules.ci_labels == ("instance",)
    assert [r.name for r in rules.classify] == ["classify#1", "classify#2", "classify#3"]
    assert rules.classify[2].significance == EXCEPTION
    assert rules.drop[0].match.matches({"alertname": "Watchdog"})
    assert rules.dedup is not None and rules.dedup.window == 5 * MINUTE
    assert (rules.threshold[0].count, rules.threshold[0].within) == (3, 10 * MINUTE)
    assert rules.maintenance[0].windows == (
        AbsoluteWindow(1_795_827_600 * 10**9, 1_795_834_800 * 10**9),
    )
    topology = rules.topology
    assert topology is not None and topology.settle == 10 * 10**9
    assert topology.infer_silent_root is not None and topology.infer_silent_root.ratio == 0.8
    assert rules.inhibit[0].equal == (("switch", "switch"),)
    assert rules.pair[0].equal == ("instance", "ifName")
    assert [r.action for r in rules.respond] == ["incident", "alert"]
    assert rules.counts()["respond"] == 2


def test_positions_point_at_each_rule_and_its_matcher() -> None:
    rules = load_rules_text(DESIGN_EXAMPLE, "d.yaml")
    drop = rules.drop[0]
    assert (drop.position.line, drop.position.col) == (7, 13)
    assert (drop.match.position.line, drop.match.position.col) == (7, 37)
    assert str(drop.match.position) == "d.yaml:7:37"


def test_inhibit_equal_pairs_different_label_names() -> None:
    rules = load_rules_text(
        "correlate:\n  inhibit:\n"
        "    - source: 'alertname=\"HostDown\"'\n"
        "      target: 'alertname=\"ReplicationBroken\"'\n"
        "      equal: [cluster, {source: hostname, target: remote}]\n"
    )
    assert rules.inhibit[0].equal == (("cluster", "cluster"), ("hostname", "remote"))


def test_weekly_windows_read_days_clock_times_and_zone() -> None:
    rules = load_rules_text(
        "maintenance:\n  - name: nightly\n    match: 'job=\"backup\"'\n"
        "    weekly: [{days: [Sat, sunday], from: '22:00', until: '04:00',"
        " timezone: Europe/Berlin}, {days: mon, from: 01:30, until: '24:00'}]\n"
    )
    assert rules.maintenance[0].windows == (
        WeeklyWindow((5, 6), 22 * 3600, 4 * 3600, "Europe/Berlin"),
        WeeklyWindow((0,), 5400, 86400, "UTC"),
    )


def test_match_lists_are_ored_and_durations_accept_bare_seconds() -> None:
    rules = load_rules_text(
        'threshold:\n  - match: [\'alertname="A"\', \'alertname="B", job="x"\']\n'
        "    count: 2\n    within: 90\n    key: [instance]\n"
    )
    rule = rules.threshold[0]
    assert rule.match.matches({"alertname": "A"})
    assert rule.match.matches({"alertname": "B", "job": "x"})
    assert not rule.match.matches({"alertname": "B"})
    assert (rule.within, rule.key) == (90 * 10**9, ("instance",))


def test_a_directory_merges_in_name_order(tmp_path: Path) -> None:
    (tmp_path / "10-base.yaml").write_text(
        "dedup: {window: 5m}\ndrop: [{match: 'alertname=\"A\"'}]\n"
        "classify: [{name: first, match: 'job=\"a\"', significance: exception}]\n"
    )
    (tmp_path / "20-site.yml").write_text(
        "dedup: {window: 1m}\ndrop: [{match: 'alertname=\"B\"'}]\n"
        "classify: [{name: second, match: 'job=\"b\"', significance: warning}]\n"
    )
    (tmp_path / "notes.txt").write_text("not a rule file")
    rules = load_rules(tmp_path)
    assert [r.name for r in rules.classify] == ["first", "second"]
    assert [r.name for r in rules.drop] == ["drop#1", "drop#2"]
    assert rules.dedup is not None and rules.dedup.window == MINUTE
    assert [Path(f).name for f in rules.files] == ["10-base.yaml", "20-site.yml"]


def test_rule_names_are_unique_across_files(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("drop: [{name: noise, match: 'alertname=\"A\"'}]\n")
    (tmp_path / "b.yaml").write_text(
        "flap:\n  - {name: noise, match: '{}', changes: 2, within: 1m}\n"
    )
    with pytest.raises(RuleLoadError) as caught:
        load_rules(tmp_path)
    [diagnostic] = caught.value.diagnostics
    assert diagnostic.render() == (
        f"{tmp_path / 'b.yaml'}:2:12: duplicate rule name 'noise'"
        f" (first defined at {tmp_path / 'a.yaml'}:1:15)\n"
        "    - {name: noise, match: '{}', changes: 2, within: 1m}\n"
        "             ^"
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("drop: [{match: [1, 2}]\n", "1:21: YAML syntax error: did not find expected ',' or ']'"),
        ("drpo: []\n", "1:1: unknown key 'drpo' in a rule file (did you mean 'drop'?)"),
        (
            "drop: [{mach: 'alertname=\"A\"'}]\n",
            "1:9: unknown key 'mach' in a drop rule (did you mean 'match'?)",
        ),
        ("drop: [{match: 'alertname=A\"'}]\n", "1:28: match: expected ',' between matchers"),
        (
            "drop: [{match: 'job=~\"(a\"'}]\n",
            "1:25: match: invalid regular expression '(a': missing ), unterminated subpattern",
        ),
        (
            'drop: [{match: "job=\\"a\\" x"}]\n',
            "1:27: match: expected ',' between matchers",
        ),
        ("dedup: {window: 5 min}\n", "1:17: window: not a duration: '5 min'"),
        (
            "threshold: [{match: '{}', count: 0, within: 1m}]\n",
            "1:34: count must be between 1 and 1000, got 0",
        ),
        (
            "correlate: {topology: {window: 5s, settle: 10s}}\n",
            "1:32: window is shorter than settle: no alert would ever be settled",
        ),
        (
            "classify: [{match: 'significance=\"warning\"', significance: exception}]\n",
            "1:20: classify cannot match on 'significance': it is what classify decides",
        ),
        (
            "enrich: [{match: 'owner=\"x\"', attributes: [owner]}]\n",
            "1:18: enrich cannot match on 'owner': it is not known before enrichment",
        ),
        (
            "classify: [{match: '{}', significance: critical}]\n",
            "1:40: significance: unknown value",
        ),
        ("drop: [{name: x}]\n", "1:8: a drop rule is missing 'match'"),
        (
            "maintenance: [{match: '{}', weekly: {days: [sat], from: '01:00', until: '01:00'}}]\n",
            "1:73: until equals from: the window would be empty",
        ),
        (
            "maintenance: [{match: '{}', from: 2026-01-02T00:00:00,"
            " until: 2026-01-03T00:00:00Z}]\n",
            "1:35: from: '2026-01-02T00:00:00' has no time zone",
        ),
        (
            "maintenance: [{match: '{}', from: 2026-01-02T00:00:00Z,"
            " until: 2026-01-01T00:00:00Z}]\n",
            "1:64: until must be later than from",
        ),
        (
            "maintenance: [{match: '{}', weekly: {days: [sat], from: '1:00', until: '2:00',"
            " timezone: Mars/Olympus}}]\n",
            "1:90: unknown time zone 'Mars/Olympus'",
        ),
        ("respond: [{match: '{}', action: auto}]\n", "1:33: action 'auto' needs 'run'"),
        ("version: 2\n", "1:10: unsupported version"),
        ("drop: [{name: 'a b', match: '{}'}]\n", "1:15: rule name 'a b' may use only"),
    ],
)
def test_each_kind_of_error_names_its_place(text: str, expected: str) -> None:
    found = errors(text)
    assert any(e.startswith(expected) for e in found), found


def test_every_error_is_reported_not_only_the_first() -> None:
    found = errors(
        "drop:\n"
        "  - {name: a, match: 'alertname=='}\n"
        "  - {name: a, match: '{}'}\n"
        "threshold:\n"
        "  - {match: '{}', count: -1, within: 0s}\n"
    )
    assert [e.split(":")[0] for e in found] == ["2", "3", "5", "5"]


def test_check_paths_reports_errors_with_source_and_caret(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("drop:\n  - {name: x, match: 'instance=~\"db-(\"'}\n")
    text, ok = check_paths([bad])
    assert not ok
    assert text.splitlines() == [
        f"Checking {bad}",
        "  FAILED: 1 error",
        f"{bad}:2:38: match: invalid regular expression 'db-(': missing ),"
        " unterminated subpattern at position 3",
        "    - {name: x, match: 'instance=~\"db-(\"'}",
        "                                       ^",
    ]


def test_check_paths_counts_rules_per_stage(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(DESIGN_EXAMPLE)
    text, ok = check_paths([good, tmp_path / "missing.yaml"])
    assert not ok
    lines = text.splitlines()
    assert lines[:3] == [f"Checking {good}", "  SUCCESS: 10 rules found", "    classify        3"]
    assert "    settings: dedup, correlate.topology" in lines
    assert lines[-3:] == [
        f"Checking {tmp_path / 'missing.yaml'}",
        "  FAILED: 1 error",
        f"{tmp_path / 'missing.yaml'}: no such file or directory",
    ]
