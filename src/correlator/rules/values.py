"""Readers for the values of a rule file: mappings, scalars, durations, names, times.

Each reads one YAML node, reports what is wrong with it to the ``Source`` and
returns ``None`` instead of raising, so a file's every problem is found in one
pass. Scalars are read from their source text, so YAML 1.1's implicit types
(``no`` as false, ``1:30`` as a number) never surprise a rule author.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

import yaml

from correlator.rules.source import Names, Source, did_you_mean
from correlator.timefmt import parse_duration

Entries = dict[str, tuple[yaml.Node, yaml.Node]]
_LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_RULE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:-]*")
_CLOCK = re.compile(r"(\d\d?):(\d\d)(?::(\d\d))?")


def mapping(
    src: Source, node: yaml.Node, allowed: Sequence[str], what: str, required: Sequence[str] = ()
) -> Entries | None:
    """A mapping's entries by key; unknown, duplicate and missing keys are reported.

    ``None`` when ``node`` is not a mapping; otherwise every known key found, even
    when a required one is missing (so the rest can still be checked).
    """
    if not isinstance(node, yaml.MappingNode):
        src.error(node, f"{what} must be a mapping with keys: {', '.join(allowed)}")
        return None
    entries: Entries = {}
    for key, value in node.value:
        if not isinstance(key, yaml.ScalarNode):
            src.error(key, f"keys of {what} must be plain words")
        elif key.value in entries:
            src.error(key, f"duplicate key {key.value!r} in {what}")
        elif key.value not in allowed:
            hint = did_you_mean(key.value, allowed)
            src.error(key, f"unknown key {key.value!r} in {what}{hint}")
        else:
            entries[key.value] = (key, value)
    for key in required:
        if key not in entries:
            src.error(node, f"{what} is missing {key!r}")
    return entries


def complete(e: Entries | None, required: Sequence[str]) -> bool:
    """Whether ``e`` is a mapping holding every required key (missing ones are reported)."""
    return e is not None and all(k in e for k in required)


def scalar(src: Source, node: yaml.Node, what: str) -> str | None:
    """The source text of a non-empty scalar."""
    if not isinstance(node, yaml.ScalarNode) or node.tag.endswith(":null"):
        src.error(node, f"{what} must be a single value")
        return None
    return str(node.value)


def integer(src: Source, node: yaml.Node, what: str, low: int, high: int) -> int | None:
    """A whole number in ``[low, high]``."""
    text = scalar(src, node, what)
    if text is None:
        return None
    if not re.fullmatch(r"[+-]?\d+", text):
        src.error(node, f"{what} must be a whole number, got {text!r}")
        return None
    value = int(text)
    if not low <= value <= high:
        src.error(node, f"{what} must be between {low} and {high}, got {value}")
        return None
    return value


def duration(src: Source, node: yaml.Node, what: str) -> int | None:
    """A positive duration (``30s``, ``5m``, ``1h30m``; a bare number is seconds) in ns."""
    text = scalar(src, node, what)
    if text is None:
        return None
    try:
        numeric = node.tag.endswith((":int", ":float"))
        value = parse_duration(float(text) if numeric else text)
    except ValueError as exc:
        src.error(node, f"{what}: {exc}")
        return None
    if value <= 0:
        src.error(node, f"{what} must be longer than zero")
        return None
    return value


def labels(src: Source, node: yaml.Node, what: str) -> tuple[str, ...] | None:
    """A label name, or a list of them."""
    items = node.value if isinstance(node, yaml.SequenceNode) else [node]
    names = []
    for item in items:
        name = scalar(src, item, f"each entry of {what}")
        if name is not None and not _LABEL.fullmatch(name):
            src.error(item, f"{what}: {name!r} is not a label name")
            name = None
        names.append(name)
    if None in names:
        return None
    return tuple(n for n in names if n is not None)


def choice(src: Source, node: yaml.Node, what: str, choices: Sequence[str]) -> str | None:
    """One of ``choices``; anything else is reported with the closest choice."""
    text = scalar(src, node, what)
    if text is not None and text not in choices:
        hint = did_you_mean(text, choices) or f" (one of: {', '.join(choices)})"
        src.error(node, f"{what}: unknown value {text!r}{hint}")
        return None
    return text


def rule_name(src: Source, e: Entries, stage: str, names: Names) -> str | None:
    """The rule's ``name`` (checked unique across the rule set) or its automatic name."""
    if "name" not in e:
        return names.next_auto(stage)
    node = e["name"][1]
    name = scalar(src, node, "name")
    if name is None:
        return None
    if not _RULE_NAME.fullmatch(name):
        src.error(node, f"rule name {name!r} may use only letters, digits and _ . : -")
        return None
    if name in names.seen:
        src.error(node, f"duplicate rule name {name!r} (first defined at {names.seen[name]})")
        return None
    names.seen[name] = src.position(node)
    return name


def fraction(src: Source, node: yaml.Node, what: str) -> float | None:
    """A number above 0 and at most 1."""
    text = scalar(src, node, what)
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value <= 1:
        src.error(node, f"{what} must be a number above 0 and at most 1, got {text!r}")
        return None
    return value


def rule_entries(
    src: Source,
    node: yaml.Node,
    keys: Sequence[str],
    stage: str,
    required: Sequence[str],
    names: Names,
) -> tuple[str | None, Entries | None]:
    """A rule mapping's name and entries; entries are ``None`` when a required key is missing.

    The name is read (and registered) even then, so a duplicate name is still reported.
    """
    what = f"{'an' if stage[0] in 'aeiou' else 'a'} {stage} rule"
    e = mapping(src, node, ("name", *keys), what, required)
    if e is None:
        return None, None
    name = rule_name(src, e, stage, names)
    return name, e if complete(e, required) else None


def instant(src: Source, node: yaml.Node, what: str) -> int | None:
    text = scalar(src, node, what)
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        src.error(node, f"{what}: not a time {text!r} (use RFC 3339, e.g. 2026-11-28T01:00:00Z)")
        return None
    if moment.tzinfo is None:
        src.error(node, f"{what}: {text!r} has no time zone; add Z or an offset like +01:00")
        return None
    return int(moment.timestamp()) * 10**9 + moment.microsecond * 1000


def clock(src: Source, node: yaml.Node, what: str) -> int | None:
    text = scalar(src, node, what)
    found = _CLOCK.fullmatch(text or "")
    if text is None:
        return None
    seconds = -1
    if found:
        hours, minutes, secs = int(found[1]), int(found[2]), int(found[3] or 0)
        seconds = hours * 3600 + minutes * 60 + secs if minutes < 60 and secs < 60 else -1
    if not 0 <= seconds <= 86400:
        src.error(node, f"{what}: not a time of day {text!r} (use HH:MM, 00:00 to 24:00)")
        return None
    return seconds


def timezone(src: Source, node: yaml.Node) -> str | None:
    name = scalar(src, node, "timezone")
    if name is None:
        return None
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        src.error(node, f"unknown time zone {name!r}{did_you_mean(name, available_timezones())}")
        return None
    return name
