"""The shape of a rule file, section by section, read from YAML nodes into model records.

Every reader reports problems to the ``Source`` and returns ``None`` (or skips
the rule) instead of raising, so one pass finds every error. The accepted shape::

    version: 1
    ci_label: instance                      # or a list, tried in order
    classify:    [{name?, match, significance: informational|warning|exception}]
    drop:        [{name?, match}]
    dedup:       {window, key?: [labels]}
    threshold:   [{name?, match, count, within, key?: [labels]}]
    flap:        [{name?, match, changes, within, key?: [labels]}]
    maintenance: [{name?, match, from?, until?, weekly?: {days, from, until, timezone?} | [...]}]
    enrich:      [{name?, match?, attributes: [CMDB attribute names]}]
    correlate:
      topology: {window, settle, infer_silent_root?: {min_dependents, ratio}}
      inhibit:  [{name?, source, target, equal?: [label | {source: label, target: label}]}]
      pair:     [{name?, problem, recovery, equal?: [labels], within}]
      group:    [{name?, match?, group_by: [labels], within}]
    respond:     [{name?, match, action: incident|alert|auto|log, run?: automation}]

``match`` is one Prometheus matcher string or a list of them (any may hold).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import yaml

from correlator.rules.model import (
    ACTIONS,
    DERIVED_FIELDS,
    SIGNIFICANCE_NAMES,
    WEEKDAYS,
    AbsoluteWindow,
    ClassifyRule,
    Dedup,
    DropRule,
    EnrichRule,
    FlapRule,
    GroupRule,
    InhibitRule,
    MaintenanceRule,
    PairRule,
    RespondRule,
    Selector,
    SilentRoot,
    ThresholdRule,
    TopologySettings,
    WeeklyWindow,
)
from correlator.rules.source import Names, Source, compose, did_you_mean, parse_selector
from correlator.rules.values import (
    Entries,
    choice,
    clock,
    complete,
    duration,
    fraction,
    instant,
    integer,
    labels,
    mapping,
    rule_entries,
    scalar,
    timezone,
)

DAY_WORDS = {day: i for i, day in enumerate(WEEKDAYS)} | {
    name: i
    for i, name in enumerate(
        ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
    )
}
MAX_RING = 1000
"""Largest threshold ``count`` and flap ``changes``: the kernels keep that many times per key."""

TOP_KEYS = (
    "version",
    "ci_label",
    "classify",
    "drop",
    "dedup",
    "threshold",
    "flap",
    "maintenance",
    "enrich",
    "correlate",
    "respond",
)


def _sel(src: Source, e: Entries, key: str) -> Selector | None:
    return parse_selector(src, e[key][1], key) if key in e else None


def _optional(src: Source, e: Entries, key: str, read: Callable[..., Any]) -> Any:
    """``read``'s value for an optional key: ``()`` when absent, ``None`` when invalid."""
    return read(src, e[key][1], key) if key in e else ()


def _classify(src: Source, node: yaml.Node, names: Names) -> ClassifyRule | None:
    required = ("match", "significance")
    name, e = rule_entries(src, node, required, "classify", required, names)
    if e is None:
        return None
    match = _sel(src, e, "match")
    significance = choice(src, e["significance"][1], "significance", SIGNIFICANCE_NAMES)
    if name is None or match is None or significance is None:
        return None
    return ClassifyRule(name, src.position(node), match, SIGNIFICANCE_NAMES.index(significance))


def _drop(src: Source, node: yaml.Node, names: Names) -> DropRule | None:
    name, e = rule_entries(src, node, ("match",), "drop", ("match",), names)
    match = _sel(src, e, "match") if e is not None else None
    if name is None or match is None:
        return None
    return DropRule(name, src.position(node), match)


def _counted(
    src: Source, node: yaml.Node, names: Names, stage: str, count_key: str
) -> ThresholdRule | FlapRule | None:
    required = ("match", count_key, "within")
    name, e = rule_entries(src, node, (*required, "key"), stage, required, names)
    if e is None:
        return None
    match = _sel(src, e, "match")
    count = integer(src, e[count_key][1], count_key, 1, MAX_RING)
    within = duration(src, e["within"][1], "within")
    key = _optional(src, e, "key", labels)
    if name is None or match is None or count is None or within is None or key is None:
        return None
    cls = ThresholdRule if stage == "threshold" else FlapRule
    return cls(name, src.position(node), match, count, within, key)


def _weekly(src: Source, node: yaml.Node) -> WeeklyWindow | None:
    keys = ("days", "from", "until", "timezone")
    e = mapping(src, node, keys, "a weekly window", ("days", "from", "until"))
    if not complete(e, ("days", "from", "until")):
        return None
    assert e is not None
    day_node = e["days"][1]
    day_nodes = day_node.value if isinstance(day_node, yaml.SequenceNode) else [day_node]
    days = []
    for item in day_nodes:
        word = (scalar(src, item, "each day") or "").lower()
        if word and word not in DAY_WORDS:
            src.error(item, f"unknown day {word!r}{did_you_mean(word, DAY_WORDS)}")
        days.append(DAY_WORDS.get(word))
    if not day_nodes:
        src.error(day_node, "days is empty; list weekdays like [sat, sun]")
    start, end = clock(src, e["from"][1], "from"), clock(src, e["until"][1], "until")
    zone = timezone(src, e["timezone"][1]) if "timezone" in e else "UTC"
    if None in days or not days or start is None or end is None or zone is None:
        return None
    if start % 86400 == end % 86400:
        src.error(e["until"][1], "until equals from: the window would be empty")
        return None
    return WeeklyWindow(tuple(sorted({d for d in days if d is not None})), start, end, zone)


def _maintenance(src: Source, node: yaml.Node, names: Names) -> MaintenanceRule | None:
    keys = ("match", "from", "until", "weekly")
    name, e = rule_entries(src, node, keys, "maintenance", ("match",), names)
    if e is None:
        return None
    match = _sel(src, e, "match")
    windows: list[AbsoluteWindow | WeeklyWindow | None] = []
    if ("from" in e) != ("until" in e):
        src.error(node, "a maintenance window needs both 'from' and 'until'")
        windows.append(None)
    elif "from" in e:
        start, end = instant(src, e["from"][1], "from"), instant(src, e["until"][1], "until")
        if start is not None and end is not None and end <= start:
            src.error(e["until"][1], "until must be later than from")
            start = None
        windows.append(None if start is None or end is None else AbsoluteWindow(start, end))
    if "weekly" in e:
        weekly = e["weekly"][1]
        items = weekly.value if isinstance(weekly, yaml.SequenceNode) else [weekly]
        windows.extend(_weekly(src, item) for item in items)
    if not windows:
        src.error(node, "a maintenance rule needs 'from' and 'until', or 'weekly'")
    if name is None or match is None or not windows or None in windows:
        return None
    return MaintenanceRule(
        name, src.position(node), match, tuple(w for w in windows if w is not None)
    )


def _enrich(src: Source, node: yaml.Node, names: Names) -> EnrichRule | None:
    keys = ("match", "attributes")
    name, e = rule_entries(src, node, keys, "enrich", ("attributes",), names)
    if e is None:
        return None
    match = _sel(src, e, "match")
    attributes = labels(src, e["attributes"][1], "attributes")
    for derived in set(attributes or ()) & set(DERIVED_FIELDS):
        src.error(e["attributes"][1], f"enrich cannot set {derived!r}: it is a derived field")
        attributes = None
    if name is None or attributes is None or ("match" in e and match is None):
        return None
    return EnrichRule(name, src.position(node), match, attributes)


def _equal_pairs(src: Source, node: yaml.Node, what: str) -> tuple[tuple[str, str], ...] | None:
    items = node.value if isinstance(node, yaml.SequenceNode) else [node]
    pairs: list[tuple[str, str] | None] = []
    for item in items:
        if isinstance(item, yaml.MappingNode):
            keys = ("source", "target")
            e = mapping(src, item, keys, "an equal pair", keys)
            if not complete(e, keys):
                pairs.append(None)
                continue
            assert e is not None
            source, target = (
                scalar(src, e["source"][1], "source"),
                scalar(src, e["target"][1], "target"),
            )
            pairs.append((source, target) if source and target else None)
        else:
            single = labels(src, item, what)
            pairs.append((single[0], single[0]) if single else None)
    if None in pairs:
        return None
    return tuple(p for p in pairs if p is not None)


def _inhibit(src: Source, node: yaml.Node, names: Names) -> InhibitRule | None:
    required = ("source", "target")
    name, e = rule_entries(src, node, (*required, "equal"), "inhibit", required, names)
    if e is None:
        return None
    source, target = _sel(src, e, "source"), _sel(src, e, "target")
    equal = _optional(src, e, "equal", _equal_pairs)
    if name is None or source is None or target is None or equal is None:
        return None
    return InhibitRule(name, src.position(node), source, target, equal)


def _pair(src: Source, node: yaml.Node, names: Names) -> PairRule | None:
    required = ("problem", "recovery", "within")
    name, e = rule_entries(src, node, (*required, "equal"), "pair", required, names)
    if e is None:
        return None
    problem, recovery = _sel(src, e, "problem"), _sel(src, e, "recovery")
    equal = _optional(src, e, "equal", labels)
    within = duration(src, e["within"][1], "within")
    if None in (name, problem, recovery, equal, within):
        return None
    return PairRule(name, src.position(node), problem, recovery, equal, within)  # type: ignore[arg-type]


def _group(src: Source, node: yaml.Node, names: Names) -> GroupRule | None:
    required = ("group_by", "within")
    name, e = rule_entries(src, node, (*required, "match"), "group", required, names)
    if e is None:
        return None
    match = _sel(src, e, "match")
    group_by = labels(src, e["group_by"][1], "group_by")
    within = duration(src, e["within"][1], "within")
    if name is None or group_by is None or within is None or ("match" in e and match is None):
        return None
    return GroupRule(name, src.position(node), match, group_by, within)


def _respond(src: Source, node: yaml.Node, names: Names) -> RespondRule | None:
    required = ("match", "action")
    name, e = rule_entries(src, node, (*required, "run"), "respond", required, names)
    if e is None:
        return None
    match = _sel(src, e, "match")
    action = choice(src, e["action"][1], "action", ACTIONS)
    run = scalar(src, e["run"][1], "run") if "run" in e else None
    if action == "auto" and "run" not in e:
        src.error(e["action"][1], "action 'auto' needs 'run': the automation to start")
        return None
    if action not in (None, "auto") and "run" in e:
        src.error(e["run"][0], "'run' belongs to action 'auto' only")
        return None
    if name is None or match is None or action is None or ("run" in e and run is None):
        return None
    return RespondRule(name, src.position(node), match, action, run)


def _dedup(src: Source, node: yaml.Node) -> Dedup | None:
    e = mapping(src, node, ("window", "key"), "dedup", ("window",))
    if e is None or not complete(e, ("window",)):
        return None
    window = duration(src, e["window"][1], "window")
    key = _optional(src, e, "key", labels)
    return None if window is None or key is None else Dedup(src.position(node), window, key)


def _silent_root(src: Source, node: yaml.Node) -> SilentRoot | None:
    keys = ("min_dependents", "ratio")
    e = mapping(src, node, keys, "infer_silent_root", keys)
    if not complete(e, keys):
        return None
    assert e is not None
    least = integer(src, e["min_dependents"][1], "min_dependents", 1, 10**9)
    ratio = fraction(src, e["ratio"][1], "ratio")
    return None if least is None or ratio is None else SilentRoot(least, ratio)


def _topology(src: Source, node: yaml.Node) -> TopologySettings | None:
    keys = ("window", "settle", "infer_silent_root")
    e = mapping(src, node, keys, "correlate.topology", ("window", "settle"))
    if not complete(e, ("window", "settle")):
        return None
    assert e is not None
    window = duration(src, e["window"][1], "window")
    settle = duration(src, e["settle"][1], "settle")
    silent = _silent_root(src, e["infer_silent_root"][1]) if "infer_silent_root" in e else None
    if window is None or settle is None or ("infer_silent_root" in e and silent is None):
        return None
    if window < settle:
        src.error(e["window"][1], "window is shorter than settle: no alert would ever be settled")
        return None
    return TopologySettings(src.position(node), window, settle, silent)


RuleReader = Callable[[Source, yaml.Node, Names], object]
_LISTS: dict[str, RuleReader] = {
    "classify": _classify,
    "drop": _drop,
    "threshold": lambda s, n, names: _counted(s, n, names, "threshold", "count"),
    "flap": lambda s, n, names: _counted(s, n, names, "flap", "changes"),
    "maintenance": _maintenance,
    "enrich": _enrich,
    "inhibit": _inhibit,
    "pair": _pair,
    "group": _group,
    "respond": _respond,
}


def _rules(src: Source, node: yaml.Node, stage: str, names: Names) -> tuple[object, ...]:
    if isinstance(node, yaml.ScalarNode) and node.tag.endswith(":null"):
        return ()
    if not isinstance(node, yaml.SequenceNode):
        src.error(node, f"{stage} must be a list of rules")
        return ()
    read = _LISTS[stage]
    return tuple(rule for rule in (read(src, item, names) for item in node.value) if rule)


def read_file(src: Source, text: str, names: Names) -> dict[str, object]:
    """One file's sections as keyword arguments of ``RuleSet`` (problems go to ``src``)."""
    root = compose(src, text)
    if root is None or (isinstance(root, yaml.ScalarNode) and root.tag.endswith(":null")):
        return {}
    top = mapping(src, root, TOP_KEYS, "a rule file")
    if top is None:
        return {}
    out: dict[str, object] = {}
    if "version" in top and scalar(src, top["version"][1], "version") not in (None, "1"):
        src.error(top["version"][1], "unsupported version; this correlator reads version: 1")
    if "ci_label" in top:
        ci_labels = labels(src, top["ci_label"][1], "ci_label")
        if ci_labels:
            out["ci_labels"] = ci_labels
    for stage in _LISTS:
        if stage in top:
            out[stage] = _rules(src, top[stage][1], stage, names)
    if "dedup" in top:
        out["dedup"] = _dedup(src, top["dedup"][1])
    if "correlate" in top:
        inner = mapping(
            src, top["correlate"][1], ("topology", "inhibit", "pair", "group"), "correlate"
        )
        for stage, (_, node) in (inner or {}).items():
            if stage == "topology":
                out["topology"] = _topology(src, node)
            else:
                out[stage] = _rules(src, node, stage, names)
    return out
