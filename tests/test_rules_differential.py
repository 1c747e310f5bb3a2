"""The compiled first level held to the reference interpreter, decision by decision.

Random rule files over a small label alphabet and random alert streams (resends,
resolves, equal and out-of-order times, unknown CIs, batches that go back in
time); every alert must get the same significance, classifying rule, fate,
deciding rule and enriched labels from both.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from unittest.mock import patch

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from correlator.batch import Normalizer
from correlator.matchers import parse_matcher_set
from correlator.rules import first_level
from correlator.rules.load import load_rules_text
from correlator.rules.model import Position, Selector, WeeklyWindow
from correlator.rules.reference import in_weekly_window
from correlator.rules.tables import LabelSpace, MatchProgram
from correlator.rules.testing import (
    BASE_NS,
    FIELD_VALUES,
    LABELS,
    TIMEZONES,
    Harness,
    alert_streams,
    matcher_texts,
    rule_documents,
    rules_yaml,
    sample_topology,
    to_batch,
)
from correlator.rules.windows import weekly_intervals
from correlator.vocab import Vocabulary

EXAMPLES = settings(
    max_examples=500,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
SCALES = st.sampled_from((1, 60, 3600))
HERE = Position("<test>", 1, 1)


@EXAMPLES
@given(data=st.data(), scale=SCALES, with_topology=st.booleans(), remember=st.booleans())
def test_compiled_first_level_matches_the_reference(
    data: st.DataObject, scale: int, with_topology: bool, remember: bool
) -> None:
    """With the memo of class combinations, and without it (every alert scanned)."""
    rules = load_rules_text(rules_yaml(data.draw(rule_documents(scale))))
    with patch.object(first_level, "MEMO_LIMIT", first_level.MEMO_LIMIT if remember else 0):
        harness = Harness(rules, sample_topology() if with_topology else None)
        for batch in data.draw(alert_streams(scale)):
            compiled, reference = harness.run(batch)
            assert compiled == reference


def _edit(rules: list[dict[str, Any]], field: str, choice: int) -> list[dict[str, Any]]:
    """Keep, retune, re-aim or remove each flap/threshold rule (by a drawn number)."""
    out = []
    for k, rule in enumerate(rules):
        action = (choice >> (2 * k)) & 3
        if action == 1:
            rule = {**rule, field: rule[field] % 4 + 1, "within": "7s"}
        elif action == 2:
            rule = {**rule, "match": "{}"}
        if action != 3:
            out.append(rule)
    return out


@EXAMPLES
@given(data=st.data(), scale=SCALES, choice=st.integers(0, 2**12), at=st.integers(0, 3))
def test_reload_keeps_state_like_the_reference(
    data: st.DataObject, scale: int, choice: int, at: int
) -> None:
    before = data.draw(rule_documents(scale))
    after = {
        **before,
        "classify": before["classify"][::-1],
        "flap": _edit(before["flap"], "changes", choice),
        "threshold": _edit(before["threshold"], "count", choice >> 6),
    }
    harness = Harness(load_rules_text(rules_yaml(before)), sample_topology())
    for k, batch in enumerate(data.draw(alert_streams(scale))):
        if k == at:
            harness.reload(load_rules_text(rules_yaml(after)), sample_topology())
        compiled, reference = harness.run(batch)
        assert compiled == reference


NAMES = tuple(FIELD_VALUES)


@EXAMPLES
@given(
    texts=st.lists(st.lists(matcher_texts(NAMES), min_size=1, max_size=2), max_size=90),
    alerts=st.lists(LABELS, min_size=1, max_size=20),
)
def test_match_tables_agree_with_matchers(texts: list[list[str]], alerts: list[dict]) -> None:
    """More than 64 clauses spread the bitset over several words."""
    selectors = [
        Selector(tuple(parse_matcher_set(t) for t in alt), tuple(alt), HERE) for alt in texts
    ]
    vocab = Vocabulary()
    space = LabelSpace(NAMES, vocab)
    program = MatchProgram(selectors, space)
    batch = to_batch(
        [{"labels": labels, "receivedAt": "2026-03-28T12:00:00Z"} for labels in alerts],
        Normalizer(vocab),
    )
    columns = space.columns(batch)
    first = program.first_match(columns)
    mask = program.match_mask(columns)
    for i in range(len(batch)):
        # No topology and no classification: both derived fields read as "".
        fields = {**batch.labels(i, vocab), "ci_type": "", "significance": ""}
        expected = [s.matches(fields) for s in selectors]
        assert mask[i].tolist() == expected
        assert first[i] == (expected.index(True) if any(expected) else -1)


@EXAMPLES
@given(
    days=st.lists(st.integers(0, 6), min_size=1, max_size=7, unique=True),
    start=st.integers(0, 47).map(lambda k: k * 1800),
    end=st.integers(1, 48).map(lambda k: k * 1800),
    zone=st.sampled_from(TIMEZONES),
    instants=st.lists(st.integers(-40 * 86400, 400 * 86400), min_size=1, max_size=30),
)
def test_weekly_intervals_agree_with_wall_clock_check(
    days: list[int], start: int, end: int, zone: str, instants: list[int]
) -> None:
    window = WeeklyWindow(tuple(sorted(days)), start, end, zone)
    if start % 86400 == end % 86400:
        return
    times = sorted(BASE_NS + s * 10**9 for s in instants)
    spans = weekly_intervals(window, times[0], times[-1])
    for t in times:
        inside = any(lo <= t < hi for lo, hi in spans)
        assert inside == in_weekly_window(window, t), datetime.fromtimestamp(t / 1e9, UTC)
