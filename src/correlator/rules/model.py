"""The parsed rule set: frozen records, one tuple of rules per stage.

``load`` builds a ``RuleSet`` from YAML; ``first_level`` compiles its first-level
stages (``classify``, ``drop``, ``maintenance``, ``flap``, ``threshold``,
``enrich``) into numba kernels; the correlation kernel reads the second-level
settings (``dedup``, ``topology``, ``inhibit``, ``pair``, ``group``) and
``respond``. Every rule keeps its name and the ``Position`` it was written at,
so any decision can be explained as "rule X at file:line".

Durations and instants are int nanoseconds of event time. Matchers are
``Selector``s: a list of matcher sets, any of which may hold (an OR of ANDs).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields

from correlator.matchers import MatcherSet

SIGNIFICANCE_NAMES = ("informational", "warning", "exception")
"""Significance codes 0, 1, 2 (ITIL): what ``classify`` decides."""

INFORMATIONAL, WARNING, EXCEPTION = range(3)

ACTIONS = ("incident", "alert", "auto", "log")
"""What ``respond`` can do with a correlated group."""

DERIVED_FIELDS = ("significance", "ci_type")
"""Fields matchers can read besides labels; they shadow labels of the same name."""

FATE_NAMES = ("passed", "dropped", "in_maintenance", "flapping", "below_threshold")
"""First-level fates, by code: what stopped an alert, or ``passed``."""

PASSED, DROPPED, IN_MAINTENANCE, FLAPPING, BELOW_THRESHOLD = range(5)

SECOND_FATE_NAMES = ("inhibited", "held", "paired", "recovery")
"""Second-level fates (codes 1..4 of ``second_kernel``; 0 is passed): muted by an inhibit
rule; a problem held by a pair rule; a problem and its recovery that cancelled out; a
recovery, which a pair rule consumes (it resolves its problem when that was released)."""

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True)
class Position:
    """Where something was written: file and 1-based line and column."""

    file: str
    line: int
    col: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


@dataclass(frozen=True)
class Selector:
    """A ``match`` value: the alert matches when any of the matcher sets holds."""

    alternatives: tuple[MatcherSet, ...]
    texts: tuple[str, ...]
    position: Position

    def matches(self, fields: Mapping[str, str]) -> bool:
        """Whether any alternative holds on ``fields`` (labels plus derived fields)."""
        return any(alternative.matches(fields) for alternative in self.alternatives)

    @property
    def names(self) -> frozenset[str]:
        """Every label or derived-field name the matchers read."""
        return frozenset(name for a in self.alternatives for name in a.names)

    def __str__(self) -> str:
        return " or ".join(self.texts)


@dataclass(frozen=True)
class ClassifyRule:
    """Sets the significance of matching alerts; the first matching rule wins."""

    name: str
    position: Position
    match: Selector
    significance: int


@dataclass(frozen=True)
class DropRule:
    """Drops matching alerts before anything else looks at them."""

    name: str
    position: Position
    match: Selector


@dataclass(frozen=True)
class AbsoluteWindow:
    """A maintenance window ``[start, end)`` in ns since the epoch."""

    start: int
    end: int


@dataclass(frozen=True)
class WeeklyWindow:
    """A recurring window on weekdays (0 = Monday), local time ``[start, end)`` in seconds.

    ``end <= start`` means the window runs past midnight into the next day.
    """

    days: tuple[int, ...]
    start: int
    end: int
    timezone: str


@dataclass(frozen=True)
class MaintenanceRule:
    """Suppresses matching alerts while any of its windows is open."""

    name: str
    position: Position
    match: Selector
    windows: tuple[AbsoluteWindow | WeeklyWindow, ...]


@dataclass(frozen=True)
class FlapRule:
    """Holds matching firing alerts while their key changed state more than ``changes`` times
    within ``within``; ``key`` labels group alerts (empty: by fingerprint)."""

    name: str
    position: Position
    match: Selector
    changes: int
    within: int
    key: tuple[str, ...]


@dataclass(frozen=True)
class ThresholdRule:
    """Holds matching firing alerts until ``count`` occurrences of their key fall within
    ``within``; ``key`` labels group alerts (empty: by fingerprint)."""

    name: str
    position: Position
    match: Selector
    count: int
    within: int
    key: tuple[str, ...]


@dataclass(frozen=True)
class EnrichRule:
    """Copies CMDB attributes of the alert's CI into labels the alert does not have."""

    name: str
    position: Position
    match: Selector | None
    attributes: tuple[str, ...]


@dataclass(frozen=True)
class Dedup:
    """Resends of one alert within ``window`` are duplicates; ``key`` labels (empty:
    fingerprint) say which alerts are the same."""

    position: Position
    window: int
    key: tuple[str, ...]


@dataclass(frozen=True)
class SilentRoot:
    """Name a silent CI as root cause when at least ``min_dependents`` of its dependents,
    and at least ``ratio`` of them, alert together."""

    min_dependents: int
    ratio: float


@dataclass(frozen=True)
class TopologySettings:
    """Storm collapse: how long an alerting CI explains the alerts below it (``window``),
    how long to wait for a late root before opening (``settle``), silent-root inference."""

    position: Position
    window: int
    settle: int
    infer_silent_root: SilentRoot | None


@dataclass(frozen=True)
class InhibitRule:
    """Alertmanager inhibition: a firing ``source`` alert suppresses ``target`` alerts whose
    labels agree; ``equal`` pairs are (source label, target label), usually the same name."""

    name: str
    position: Position
    source: Selector
    target: Selector
    equal: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class PairRule:
    """A ``problem`` followed by its ``recovery`` (equal ``equal`` labels) within ``within``
    cancels out instead of opening an incident."""

    name: str
    position: Position
    problem: Selector
    recovery: Selector
    equal: tuple[str, ...]
    within: int


@dataclass(frozen=True)
class GroupRule:
    """Alerts whose CI is not in the CMDB group by ``group_by`` labels within ``within``."""

    name: str
    position: Position
    match: Selector | None
    group_by: tuple[str, ...]
    within: int


@dataclass(frozen=True)
class RespondRule:
    """What happens to a correlated group that matches: one of ``ACTIONS``; ``run`` names
    the configured automation of an ``auto`` action."""

    name: str
    position: Position
    match: Selector
    action: str
    run: str | None


Rule = (
    ClassifyRule
    | DropRule
    | MaintenanceRule
    | FlapRule
    | ThresholdRule
    | EnrichRule
    | InhibitRule
    | PairRule
    | GroupRule
    | RespondRule
)

STAGES = (
    "classify",
    "drop",
    "maintenance",
    "flap",
    "threshold",
    "enrich",
    "inhibit",
    "pair",
    "group",
    "respond",
)
"""The stages that hold lists of rules, in the order ``rules check`` reports them."""


@dataclass(frozen=True)
class RuleSet:
    """A whole rule set, merged from one file or a directory of files.

    ``dedup`` and ``topology`` are ``None`` when no file sets them (the engine's
    defaults apply). ``ci_labels`` are the labels that name an alert's CI, in order.
    """

    files: tuple[str, ...]
    ci_labels: tuple[str, ...]
    classify: tuple[ClassifyRule, ...] = ()
    drop: tuple[DropRule, ...] = ()
    maintenance: tuple[MaintenanceRule, ...] = ()
    flap: tuple[FlapRule, ...] = ()
    threshold: tuple[ThresholdRule, ...] = ()
    enrich: tuple[EnrichRule, ...] = ()
    inhibit: tuple[InhibitRule, ...] = ()
    pair: tuple[PairRule, ...] = ()
    group: tuple[GroupRule, ...] = ()
    respond: tuple[RespondRule, ...] = ()
    dedup: Dedup | None = None
    topology: TopologySettings | None = None

    def counts(self) -> dict[str, int]:
        """Number of rules per stage, in ``STAGES`` order."""
        return {stage: len(getattr(self, stage)) for stage in STAGES}

    def rules(self) -> list[Rule]:
        """Every rule, stage by stage."""
        return [rule for stage in STAGES for rule in getattr(self, stage)]

    def label_names(self) -> frozenset[str]:
        """Every label or derived-field name any rule reads (matchers, keys, equal, group_by)."""
        names: set[str] = set()
        for rule in self.rules():
            for f in fields(rule):
                value = getattr(rule, f.name)
                if isinstance(value, Selector):
                    names |= value.names
                elif f.name in ("key", "equal", "group_by", "attributes"):
                    for item in value:
                        names |= {item} if isinstance(item, str) else set(item)
        if self.dedup is not None:
            names |= set(self.dedup.key)
        return frozenset(names)
