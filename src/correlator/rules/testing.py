"""Hypothesis strategies for rule files and alert streams, and a harness that runs the
compiled first level and the reference interpreter side by side.

For tests and for authors of rule tooling; it needs ``hypothesis`` (the
``test`` extra). Rule files are drawn as YAML documents (so the loader is
exercised too) over a small label alphabet, which makes matches, resends and
key collisions frequent; streams have resends, resolves, equal and
out-of-order timestamps, alerts on unknown CIs and batches that go back in time.
"""

from __future__ import annotations

import json
import re
import tempfile
from functools import cache
from itertools import combinations
from pathlib import Path
from typing import Any

import yaml
from hypothesis import strategies as st

from correlator.batch import AlertBatch, Normalizer
from correlator.decode import decode_json_lines
from correlator.rules.first_level import FirstLevel, FirstLevelOutcome
from correlator.rules.model import FATE_NAMES, SIGNIFICANCE_NAMES, WEEKDAYS, RuleSet
from correlator.rules.reference import RefAlert, RefDecision, Reference
from correlator.schema import STATUS_NAMES
from correlator.timefmt import format_ns
from correlator.topology import Topology, load_topology
from correlator.vocab import Vocabulary

BASE_NS = 1_774_699_200 * 10**9
"""2026-03-28T12:00:00Z: a day before Europe's clocks spring forward."""

LABEL_VALUES: dict[str, tuple[str, ...]] = {
    "alertname": ("A", "B", "C"),
    "severity": ("critical", "warning", "info", "page"),
    "instance": ("h1", "h2", "sw-1", "x9", "h1:9100"),
    "job": ("j1", "j2"),
}
FIELD_VALUES: dict[str, tuple[str, ...]] = {
    **LABEL_VALUES,
    "significance": SIGNIFICANCE_NAMES,
    "ci_type": ("host", "switch"),
    "owner": ("team-a", "team-b"),
    "location": ("fra1", "ams1"),
}
ENRICHED = ("owner", "location", "service")
TIMEZONES = ("UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe")

TEST_CMDB = {
    "cis": [
        {"id": "sw-1", "type": "switch", "location": "fra1", "owner": "team-net"},
        {"id": "h1", "type": "host", "location": "fra1", "owner": "team-a", "service": "shop"},
        {"id": "h2", "type": "host", "owner": "team-b"},
    ],
    "relations": [
        {"from": "h1", "to": "sw-1", "type": "connected_to"},
        {"from": "h2", "to": "sw-1", "type": "connected_to"},
    ],
}


@cache
def sample_topology() -> Topology:
    """A three-CI topology whose CIs carry ``location``, ``owner`` and ``service``."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "cmdb.json"
        path.write_text(json.dumps(TEST_CMDB))
        return load_topology(path)


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


@cache
def _matcher(name: str) -> st.SearchStrategy[str]:
    values = FIELD_VALUES[name]
    patterns = (
        ".*",
        ".+",
        "[a-h].*",
        *sorted({v[:1] + ".*" for v in values}),
        *("|".join(map(re.escape, pair)) for pair in combinations(values, 2)),
    )
    equality = st.tuples(st.sampled_from(("=", "!=")), st.sampled_from((*values, "")))
    regex = st.tuples(st.sampled_from(("=~", "!~")), st.sampled_from(patterns))
    return st.one_of(equality, regex).map(lambda pair: f"{name}{pair[0]}{_quote(pair[1])}")


def _join(parts: tuple[int, list[str], bool]) -> str:
    roll, matchers, braced = parts
    body = ", ".join(matchers)
    if roll == 0:
        return "{}"
    return "{" + body + "}" if braced or not matchers else body


@cache
def matcher_texts(names: tuple[str, ...], least: int = 1) -> st.SearchStrategy[str]:
    """One matcher set string over ``names``, e.g. ``{job!="j1", alertname=~"A|B"}``.

    It has ``least`` to 3 matchers, and now and then none (``{}`` matches everything).
    """
    one = st.one_of(*map(_matcher, names))
    some = st.lists(one, min_size=least, max_size=max(least, 3))
    return st.tuples(st.integers(0, 9), some, st.booleans()).map(_join)


@cache
def selectors(names: tuple[str, ...], least: int = 1) -> st.SearchStrategy[Any]:
    """A ``match`` value: one matcher string or a list of them."""
    one = matcher_texts(names, least)
    return st.one_of(one, st.lists(one, min_size=1, max_size=3))


_CLOCK = st.tuples(st.integers(0, 23), st.sampled_from((0, 30))).map(
    lambda hm: f"{hm[0]:02d}:{hm[1]:02d}"
)


def _weekly(parts: tuple[str, str, list[str], str]) -> dict[str, Any]:
    start, end, days, zone = parts
    if start == end or {start, end} == {"00:00", "24:00"}:
        end = "12:15" if start != "12:15" else "12:45"
    return {"weekly": {"days": days, "from": start, "until": end, "timezone": zone}}


_WEEKLY = st.tuples(
    _CLOCK,
    st.one_of(_CLOCK, st.just("24:00")),
    st.lists(st.sampled_from(WEEKDAYS), min_size=1, max_size=4, unique=True),
    st.sampled_from(TIMEZONES),
).map(_weekly)


@cache
def _windows(scale: int) -> st.SearchStrategy[dict[str, Any]]:
    def absolute(parts: tuple[int, int]) -> dict[str, Any]:
        start = BASE_NS + parts[0] * scale * 10**9
        return {"from": format_ns(start), "until": format_ns(start + parts[1] * scale * 10**9)}

    return st.one_of(st.tuples(st.integers(-5, 40), st.integers(1, 20)).map(absolute), _WEEKLY)


def _maintenance_rule(parts: tuple[Any, list[dict[str, Any]]]) -> dict[str, Any]:
    rule: dict[str, Any] = {"match": parts[0]}
    for window in parts[1]:
        if "weekly" in window:
            rule.setdefault("weekly", []).append(window["weekly"])
        else:
            rule.update(window)
    return rule


def _named(stage: str) -> Any:
    def name(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{"name": f"{stage}-{k}", **item} if k % 3 else item for k, item in enumerate(items)]

    return name


_PLAIN = (*sorted(LABEL_VALUES), "ci_type")
_EVERYTHING = (*_PLAIN, "significance", "owner", "location")


@cache
def rule_documents(scale: int = 60) -> st.SearchStrategy[dict[str, Any]]:
    """A rule file as a YAML-able dict; ``scale`` (seconds) sizes windows."""
    key = st.one_of(st.just([]), st.lists(st.sampled_from(_EVERYTHING), min_size=1, max_size=2))
    within = st.sampled_from((1, 2, 3, 5, 10, 40)).map(lambda k: f"{k * scale}s")

    def counted(field: str, most: int, size: int) -> st.SearchStrategy[list[dict[str, Any]]]:
        rule = st.fixed_dictionaries(
            {
                "match": selectors(_EVERYTHING),
                field: st.integers(1, most),
                "within": within,
                "key": key,
            }
        )
        return st.lists(rule, max_size=size)

    enrich = st.fixed_dictionaries(
        {"attributes": st.lists(st.sampled_from(ENRICHED), min_size=1, unique=True)},
        optional={"match": selectors(_PLAIN)},
    )
    classify = st.fixed_dictionaries(
        {
            "match": selectors((*_PLAIN, "owner", "location")),
            "significance": st.sampled_from(SIGNIFICANCE_NAMES),
        }
    )
    maintenance = st.tuples(
        selectors(_EVERYTHING, 2), st.lists(_windows(scale), min_size=1, max_size=2)
    ).map(_maintenance_rule)
    return st.fixed_dictionaries(
        {
            "version": st.just(1),
            "ci_label": st.just("instance"),
            "enrich": st.lists(enrich, max_size=2).map(_named("enrich")),
            "classify": st.lists(classify, max_size=3).map(_named("classify")),
            "drop": st.lists(
                st.fixed_dictionaries({"match": selectors(_EVERYTHING, 2)}), max_size=2
            ).map(_named("drop")),
            "maintenance": st.lists(maintenance, max_size=2).map(_named("maintenance")),
            "flap": counted("changes", 2, 2).map(_named("flap")),
            "threshold": counted("count", 4, 3).map(_named("threshold")),
        }
    )


def _with_own(parts: tuple[dict[str, str], tuple[str, str] | None]) -> dict[str, str]:
    labels, own = parts
    return {**labels, own[0]: own[1]} if own else labels


_OWN = st.tuples(
    st.sampled_from(("owner", "ci_type", "significance")),
    st.sampled_from(("team-a", "switch", "warning", "")),
)
LABELS = st.tuples(
    st.fixed_dictionaries(
        {"alertname": st.sampled_from(LABEL_VALUES["alertname"])},
        optional={n: st.sampled_from(LABEL_VALUES[n]) for n in ("severity", "instance", "job")},
    ),
    st.one_of(st.none(), st.none(), st.none(), _OWN),
).map(_with_own)
"""Label sets of drawn alerts: the small alphabet, now and then a label that enrichment
would add or that a derived field shadows."""


@st.composite
def alert_streams(draw: st.DrawFn, scale: int = 60) -> list[list[dict[str, Any]]]:
    """Batches of Alertmanager-shaped alerts (with ``receivedAt`` and ``status``).

    Most alerts are resends of a few label sets, so windows and keys fill up.
    """
    known = draw(st.lists(LABELS, min_size=1, max_size=5))
    flips = draw(st.booleans())
    statuses = ("firing", "resolved") if flips else ("firing",) * 3 + ("resolved",)
    alert = st.tuples(
        st.one_of(st.sampled_from(known), LABELS),
        st.integers(0, 40),
        st.sampled_from((0, 0, 0, 500_000_000)),
        st.sampled_from(statuses),
    )
    batches = []
    for size in draw(st.lists(st.integers(0, 25), min_size=1, max_size=3)):
        drawn = draw(st.lists(alert, min_size=size, max_size=size))
        batches.append(
            [
                {
                    "labels": labels,
                    "startsAt": format_ns(BASE_NS),
                    "receivedAt": format_ns(BASE_NS + step * scale * 10**9 + extra),
                    "status": status,
                }
                for labels, step, extra, status in drawn
            ]
        )
    return batches


def rules_yaml(doc: dict[str, Any]) -> str:
    """A drawn rule document as YAML text."""
    return yaml.dump(doc, Dumper=getattr(yaml, "CSafeDumper", yaml.SafeDumper), sort_keys=False)


def to_batch(alerts: list[dict[str, Any]], normalizer: Normalizer) -> AlertBatch:
    """Alertmanager-shaped dicts to a batch; every alert must be accepted."""
    decoded = decode_json_lines(b"\n".join(json.dumps(a).encode() for a in alerts))
    batch, rejects = normalizer.normalize(decoded.table, decoded.index)
    if rejects or decoded.rejects:
        msg = f"alerts rejected: {[*decoded.rejects, *rejects]}"
        raise ValueError(msg)
    return batch


class Harness:
    """Feeds the same normalized batches to ``FirstLevel`` and ``Reference``."""

    def __init__(self, rules: RuleSet, topology: Topology | None = None) -> None:
        self.vocab = Vocabulary()
        self.normalizer = Normalizer(self.vocab, topology, ci_labels=rules.ci_labels)
        self.compiled = FirstLevel(rules, self.vocab, topology)
        self.reference = Reference(rules, topology)

    def reload(self, rules: RuleSet, topology: Topology | None = None) -> None:
        """Reload both sides."""
        self.compiled.reload(rules, topology)
        self.reference.reload(rules, topology)

    def run(self, alerts: list[dict[str, Any]]) -> tuple[list[RefDecision], list[RefDecision]]:
        """One batch through both sides: (compiled decisions, reference decisions)."""
        batch = to_batch(alerts, self.normalizer)
        refs = [
            RefAlert(
                row=int(batch.row[i]),
                ts=int(batch.ts[i]),
                status=STATUS_NAMES[int(batch.status[i])],
                fingerprint=int(batch.fingerprint[i]),
                ci=int(batch.ci[i]),
                labels=batch.labels(i, self.vocab),
            )
            for i in range(len(batch))
        ]
        return decisions(self.compiled.process(batch), self.vocab), self.reference.process(refs)


def decisions(outcome: FirstLevelOutcome, vocab: Vocabulary) -> list[RefDecision]:
    """A compiled outcome in the reference's terms."""
    rules = outcome.rules
    out = []
    for i in range(len(outcome.batch)):
        by = int(outcome.classified_by[i])
        out.append(
            RefDecision(
                row=int(outcome.batch.row[i]),
                significance=SIGNIFICANCE_NAMES[int(outcome.significance[i])],
                classified_by=rules.classify[by].name if by >= 0 else None,
                fate=FATE_NAMES[int(outcome.fate[i])],
                rule=outcome.rule_name(i),
                labels=outcome.batch.labels(i, vocab),
            )
        )
    return out


_EQUAL_NAMES = (*sorted(LABEL_VALUES), "owner")


def _equal_item(parts: tuple[str, str, bool]) -> Any:
    source, target, same = parts
    return source if same else {"source": source, "target": target}


@cache
def second_level_documents(scale: int = 60) -> st.SearchStrategy[dict[str, Any]]:
    """A rule file with inhibit and pair rules (and a classify rule or two, so
    ``significance`` varies), as a YAML-able dict; ``scale`` (seconds) sizes windows."""
    within = st.sampled_from((1, 2, 3, 5, 10)).map(lambda k: f"{k * scale}s")
    equal_item = st.tuples(
        st.sampled_from(_EQUAL_NAMES), st.sampled_from(_EQUAL_NAMES), st.booleans()
    ).map(_equal_item)
    inhibit = st.fixed_dictionaries(
        {
            "source": selectors(_EVERYTHING),
            "target": selectors(_EVERYTHING),
            "equal": st.lists(equal_item, max_size=2),
        }
    )
    pair = st.fixed_dictionaries(
        {
            "problem": selectors(_EVERYTHING),
            "recovery": selectors(_EVERYTHING),
            "equal": st.lists(st.sampled_from(_EQUAL_NAMES), max_size=2, unique=True),
            "within": within,
        }
    )
    classify = st.fixed_dictionaries(
        {
            "match": selectors(_PLAIN),
            "significance": st.sampled_from(SIGNIFICANCE_NAMES),
        }
    )
    return st.fixed_dictionaries(
        {
            "version": st.just(1),
            "ci_label": st.just("instance"),
            "enrich": st.just([{"name": "enrich-owner", "attributes": ["owner"]}]),
            "classify": st.lists(classify, max_size=2).map(_named("classify")),
            "correlate": st.fixed_dictionaries(
                {
                    "inhibit": st.lists(inhibit, max_size=3).map(_named("inhibit")),
                    "pair": st.lists(pair, max_size=3).map(_named("pair")),
                }
            ),
        }
    )
