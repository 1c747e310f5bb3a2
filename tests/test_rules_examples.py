"""The shipped rules: they check clean, and every example meets its expectations."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from correlator.rules import check
from correlator.rules.load import load_rules, load_rules_text

ROOT = Path(__file__).resolve().parents[1]
RULES = ROOT / "rules"
EXAMPLES = sorted(p.stem for p in (RULES / "examples").glob("*.yaml"))


def test_the_examples_are_the_four_the_issue_asks_for() -> None:
    assert EXAMPLES == [
        "inhibit-across-labels",
        "link-flap",
        "maintenance-window",
        "network-storm",
    ]


@pytest.mark.parametrize("path", [RULES, RULES / "default.yaml", RULES / "examples"])
def test_shipped_rule_files_check_clean(path: Path) -> None:
    text, ok = check.check_paths([path])
    assert ok, text
    assert "SUCCESS" in text


def test_default_rules_cover_every_stage_that_makes_sense_by_default() -> None:
    counts = load_rules(RULES / "default.yaml").counts()
    assert all(counts[s] for s in ("classify", "drop", "flap", "threshold", "enrich"))
    assert all(counts[s] for s in ("inhibit", "group", "respond"))


@pytest.mark.parametrize("name", EXAMPLES)
def test_example_meets_its_expectations(name: str) -> None:
    folder = RULES / "examples" / name
    topology = folder / "cmdb.json"
    text, ok = check.test_rules(
        RULES / "examples" / f"{name}.yaml",
        folder / "alerts.jsonl",
        folder / "expect.yaml",
        topology if topology.exists() else None,
    )
    assert ok, text
    assert text.endswith("alerts as expected")


def test_a_wrong_expectation_is_a_difference(tmp_path: Path) -> None:
    folder = RULES / "examples" / "link-flap"
    expect = tmp_path / "expect.jsonl"
    lines = [
        {"row": 0, "fate": "passed"},
        {"row": 4, "fate": "passed"},
        {"fingerprint": "0000000000000000", "fate": "passed"},
    ]
    expect.write_text("".join(json.dumps(x) + "\n" for x in lines))
    text, ok = check.test_rules(
        RULES / "examples" / "link-flap.yaml", folder / "alerts.jsonl", expect
    )
    assert not ok
    problems = text.split("FAIL: ")[1].splitlines()
    assert problems[1].startswith(
        "row 4 (InterfaceDown at 2026-03-02T09:04:00Z): fate: expected 'passed', got 'flapping'"
    )
    assert problems[2].startswith("expectation 3 matches no alert")
    assert problems[3] == "row 1 (InterfaceDown): no expectation (got passed)"


def test_rules_test_prints_fates_and_rejected_rows(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text("drop: [{name: hb, match: 'alertname=\"Watchdog\"'}]\n")
    alerts = tmp_path / "alerts.jsonl"
    alerts.write_text(
        '{"labels": {"alertname": "Watchdog"}, "receivedAt": "2026-01-01T00:00:00Z"}\n'
        '{"labels": {}, "receivedAt": "2026-01-01T00:00:01Z"}\n'
        '{"labels": {"alertname": "X", "severity": "page"}, "startsAt": "2026-01-01T00:00:02Z"}\n'
    )
    text, ok = check.test_rules(rules, alerts)
    assert ok
    rows = [line.split() for line in text.splitlines()]
    header = ["row", "at", "alertname", "fingerprint", "significance", "fate", "rule"]
    assert rows[0] == [*header, "incident"]
    assert rows[1][2:] == ["Watchdog", rows[1][3], "warning", "dropped", "hb"]
    assert rows[2] == ["1", "rejected", "no_labels"]
    assert rows[3][-3:-1] == ["exception", "passed"]
    assert rows[3][-1].startswith("inc-")


def test_rules_test_reports_a_broken_rule_file(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text("drop: [{match: 'alertname=~\"(\"'}]\n")
    text, ok = check.test_rules(rules, RULES / "examples" / "link-flap" / "alerts.jsonl")
    assert not ok
    assert text.startswith(f"{rules}:1:30: match: invalid regular expression")


def test_the_readme_rule_file_loads() -> None:
    readme = (RULES.parent / "README.md").read_text(encoding="utf-8")
    block = readme.split("## Rule files", 1)[1].split("```yaml", 1)[1].split("```", 1)[0]
    rules = load_rules_text(block, "README.md")
    assert all(rules.counts()[stage] for stage in ("inhibit", "pair", "group", "respond"))
