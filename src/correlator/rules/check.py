"""The text of ``correlator rules check`` and ``correlator rules test``.

``check_paths`` loads and compiles each rule set (a file, or a directory of
files) and reports, like ``promtool check rules``, either the rules found per
stage or every error as ``file:line:col: message`` with the offending source
line and a caret under the column.

``test_rules`` runs a recording through the whole pipeline (first level,
second level, correlation, then a flush as at the end of a replay) and prints
each alert's fate, the rule that decided it and the incident it ended in
(after merges); with an expectations file it compares and fails on any
difference, like ``promtool test rules``. Fates are the pipeline's
(``correlator.pipeline.FATES``), ``passed`` for an alert that reached an
incident, and ``released`` for a problem a pair rule held and then let into
an incident. Expectations are a YAML list or JSON lines, one per alert::

    - {row: 0, fate: dropped, rule: watchdog}
    - {fingerprint: 3f0c2a9e1b7d4c55, at: "2026-11-27T10:00:05Z", fate: passed,
       significance: exception}

``row`` is the alert's 0-based position in the recording; ``fingerprint``
(optionally with ``at``, the event time) selects every alert it names. Every
other key is a result field compared as text (``RESULT_FIELDS``); ``rule``
and ``reason`` read as empty when absent. Every alert must be covered by
some expectation, so a new alert in the recording is a difference too.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from correlator.decode import Decoded, read_recording
from correlator.errors import CorrelatorError, RuleError
from correlator.fingerprint import format_fingerprint
from correlator.rules.first_level import CompiledRules
from correlator.rules.load import load_rules
from correlator.rules.model import (
    FATE_NAMES,
    SECOND_FATE_NAMES,
    SIGNIFICANCE_NAMES,
    STAGES,
    RuleSet,
)
from correlator.rules.source import RuleLoadError
from correlator.timefmt import format_ns
from correlator.topology import Topology, load_topology
from correlator.vocab import Vocabulary

RESULT_FIELDS = ("significance", "fate", "rule", "reason", "incident")
"""Fields of a result an expectation may state (besides ``row``, ``fingerprint``, ``at``)."""
_SELECTORS = ("row", "fingerprint", "at")
_RULE_FATES = frozenset(FATE_NAMES[1:] + SECOND_FATE_NAMES)
_COLUMNS = ("row", "at", "alertname", "fingerprint", "significance", "fate", "rule", "incident")


def check_paths(paths: Sequence[str | os.PathLike[str]]) -> tuple[str, bool]:
    """The report of ``rules check`` on each path, and whether every one is valid."""
    lines: list[str] = []
    ok = True
    for path in paths:
        lines.append(f"Checking {path}")
        try:
            rules = load_rules(path)
            CompiledRules(rules, Vocabulary(), None)
        except RuleLoadError as exc:
            ok = False
            count = len(exc.diagnostics)
            lines.append(f"  FAILED: {count} error{'s' if count != 1 else ''}")
            lines.extend(d.render() for d in exc.diagnostics)
            continue
        except RuleError as exc:
            ok = False
            lines.append(f"  FAILED: {exc}")
            continue
        counts = rules.counts()
        lines.append(f"  SUCCESS: {sum(counts.values())} rules found")
        lines.extend(f"    {stage:<12}{counts[stage]:>5}" for stage in STAGES)
        settings = []
        if rules.dedup is not None:
            settings.append("dedup")
        if rules.topology is not None:
            settings.append("correlate.topology")
        if settings:
            lines.append(f"    settings: {', '.join(settings)}")
    return "\n".join(lines), ok


def rule_results(
    rules: RuleSet, decoded: Decoded, topology: Topology | None
) -> list[dict[str, Any]]:
    """One result per input row, in row order: its fate, deciding rule and incident."""
    from correlator.pipeline import FATES, Pipeline  # the pipeline imports this package

    pipeline = Pipeline(topology, rules=rules)
    vocab = pipeline.vocab
    batch, rejects = pipeline.normalizer.normalize(decoded.table, decoded.index)
    parts = [pipeline.process(batch), pipeline.flush()]
    ids = pipeline.correlator.incident_ids()
    results: dict[int, dict[str, Any]] = {
        r.row: {"row": r.row, "fate": "rejected", "reason": r.reason}
        for r in (*decoded.rejects, *rejects)
    }
    trace = pipeline.last_trace
    names = trace.rule_names(rules) if trace is not None else {}
    for rows, outcome in parts:
        incident = pipeline.correlator.survivors(outcome.incident)
        for i in range(len(outcome.row)):
            row = int(outcome.row[i])
            if row < 0:
                continue
            fate = FATES[int(outcome.reason[i])] or "passed"
            rule = names.get(row, "") if fate in _RULE_FATES or fate == "passed" else ""
            earlier = results.get(row)
            if earlier is not None and earlier["fate"] == "held" and fate == "passed":
                fate, rule = "released", earlier["rule"]
            results[row] = {
                "row": row,
                "at": format_ns(int(rows.ts[i])),
                "alertname": vocab[int(rows.alertname[i])],
                "fingerprint": format_fingerprint(int(rows.fingerprint[i])),
                "significance": (earlier or {}).get(
                    "significance", SIGNIFICANCE_NAMES[int(outcome.significance[i])]
                ),
                "fate": fate,
                "rule": rule,
                "incident": ids[int(incident[i])] if incident[i] >= 0 else "",
            }
    return [results[row] for row in sorted(results)]


def render_results(results: Sequence[dict[str, Any]]) -> str:
    """The results as an aligned table."""
    rows = [list(_COLUMNS)]
    for result in results:
        cells = {**result, "rule": result.get("rule") or result.get("reason", "")}
        rows.append([str(cells.get(c, "")) for c in _COLUMNS])
    widths = [max(len(row[k]) for row in rows) for k in range(len(_COLUMNS))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


def read_expectations(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """An expectations file: JSON lines (``.jsonl``) or a YAML list of mappings."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
        if file.suffix == ".jsonl":
            items = [json.loads(line) for line in text.splitlines() if line.strip()]
        else:
            items = yaml.safe_load(text) or []
    except (OSError, UnicodeDecodeError, ValueError, yaml.YAMLError) as exc:
        msg = f"{path}: cannot read expectations: {exc}"
        raise RuleError(msg) from exc
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        msg = f"{path}: expectations must be a list of mappings"
        raise RuleError(msg)
    for n, item in enumerate(items, 1):
        unknown = set(item) - set(_SELECTORS) - set(RESULT_FIELDS)
        if unknown or ("row" in item) == ("fingerprint" in item):
            msg = (
                f"{path}: expectation {n}: give either 'row' or 'fingerprint', and only"
                f" fields of {', '.join(_SELECTORS + RESULT_FIELDS)}"
                + (f" (unknown: {', '.join(sorted(unknown))})" if unknown else "")
            )
            raise RuleError(msg)
    return items


def compare(results: Sequence[dict[str, Any]], expectations: Sequence[dict[str, Any]]) -> list[str]:
    """Every difference between results and expectations, one line each."""
    problems: list[str] = []
    covered: set[int] = set()
    for n, expected in enumerate(expectations, 1):
        chosen = [
            r
            for r in results
            if (r["row"] == expected["row"] if "row" in expected else True)
            and (r.get("fingerprint") == expected.get("fingerprint", r.get("fingerprint")))
            and (r.get("at") == expected.get("at", r.get("at")))
        ]
        if not chosen:
            problems.append(f"expectation {n} matches no alert: {expected}")
        for result in chosen:
            covered.add(result["row"])
            for field in RESULT_FIELDS:
                if field in expected and str(expected[field]) != str(result.get(field, "")):
                    problems.append(
                        f"row {result['row']} ({result.get('alertname', '')} at"
                        f" {result.get('at', '?')}): {field}: expected {expected[field]!r},"
                        f" got {result.get(field, '')!r}"
                    )
    problems.extend(
        f"row {r['row']} ({r.get('alertname', '')}): no expectation (got {r['fate']})"
        for r in results
        if r["row"] not in covered
    )
    return problems


def test_rules(
    rules_path: str | os.PathLike[str],
    alerts_path: str | os.PathLike[str],
    expect_path: str | os.PathLike[str] | None = None,
    topology_path: str | os.PathLike[str] | None = None,
) -> tuple[str, bool]:
    """The report of ``rules test``, and whether it passed (no load error, no difference)."""
    try:
        rules = load_rules(rules_path)
        topology = load_topology(topology_path) if topology_path else None
        results = rule_results(rules, read_recording(alerts_path), topology)
        expectations = read_expectations(expect_path) if expect_path else None
    except RuleLoadError as exc:
        return "\n".join(d.render() for d in exc.diagnostics), False
    except CorrelatorError as exc:
        return str(exc), False
    text = render_results(results)
    if expectations is None:
        return text, True
    problems = compare(results, expectations)
    if problems:
        return text + f"\n\nFAIL: {len(problems)} differences\n" + "\n".join(problems), False
    return text + f"\n\nPASS: {len(results)} alerts as expected", True


test_rules.__test__ = False  # type: ignore[attr-defined]  # a command, not a pytest test
