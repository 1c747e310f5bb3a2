"""The first level in plain Python: the semantics of ``rules.kernel`` in the most obvious code.

One alert at a time, one rule at a time, with dicts and lists, no tables and
no bit tricks. It is slow on purpose; the property tests hold the compiled
pipeline (``FirstLevel``) to it, decision by decision. The rules, restated:

* Alerts of a batch are taken in event-time order, ties in input order.
* The fields a matcher reads are the labels plus the derived fields
  ``ci_type`` (the type of the alert's CI, ``""`` when unknown) and, after
  classification, ``significance``; derived fields shadow labels.
* enrich: every matching rule, in order, copies its CI attributes into labels
  the alert has empty (so the first rule to supply one wins).
* classify: the first matching rule's significance, else by severity.
* drop, then maintenance (the first matching rule with a window open at the
  alert's time), then flap, then threshold, each by its first matching rule.
* Only drop stops a resolved alert; maintenance, flap and threshold let it pass.
* flap: a status unlike the key's previous status is a change at the alert's
  time; a firing alert is held while more than ``changes`` changes have times
  ``>= t - within``.
* threshold: firing alerts are occurrences; a firing alert is held until at
  least ``count`` occurrences have times ``>= t - within``.
* Resolved alerts are no threshold occurrences.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from correlator.batch import SEVERITY_CODES
from correlator.rules.model import (
    SIGNIFICANCE_NAMES,
    AbsoluteWindow,
    MaintenanceRule,
    RuleSet,
    WeeklyWindow,
)
from correlator.topology import Topology

BY_SEVERITY = {0: "warning", 1: "informational", 2: "warning", 3: "exception", 4: "exception"}


@dataclass(frozen=True)
class RefAlert:
    """One alert as the reference reads it."""

    row: int
    ts: int
    status: str
    fingerprint: int
    ci: int
    labels: dict[str, str]


@dataclass(frozen=True)
class RefDecision:
    """What the reference decided for one alert; rule names instead of indices."""

    row: int
    significance: str
    classified_by: str | None
    fate: str
    rule: str | None
    labels: dict[str, str]


def in_weekly_window(window: WeeklyWindow, ts: int) -> bool:
    """Whether the instant ``ts`` (ns) lies in an occurrence of ``window``."""
    zone = ZoneInfo(window.timezone)
    today = datetime.fromtimestamp(ts // 10**9, zone).date()
    for back in (2, 1, 0):
        day = today - timedelta(days=back)
        if day.weekday() not in window.days:
            continue
        midnight = datetime(day.year, day.month, day.day, tzinfo=zone)
        opens = midnight + timedelta(seconds=window.start)
        until = window.end if window.end > window.start else window.end + 86400
        closes = midnight + timedelta(seconds=until)
        if opens.timestamp() * 10**9 <= ts < closes.timestamp() * 10**9:
            return True
    return False


def in_maintenance(rule: MaintenanceRule, ts: int) -> bool:
    """Whether any window of ``rule`` is open at ``ts``."""
    for window in rule.windows:
        if isinstance(window, AbsoluteWindow) and window.start <= ts < window.end:
            return True
        if isinstance(window, WeeklyWindow) and in_weekly_window(window, ts):
            return True
    return False


class Reference:
    """The first level as an interpreter; keeps flap and threshold state across calls."""

    def __init__(self, rules: RuleSet, topology: Topology | None = None) -> None:
        self.rules = rules
        self.topology = topology
        self.last_status: dict[tuple[object, ...], str] = {}
        self.changes: dict[tuple[object, ...], list[int]] = {}
        self.occurrences: dict[tuple[object, ...], list[int]] = {}

    def reload(self, rules: RuleSet, topology: Topology | None) -> None:
        """Switch rules, keeping the state of flap/threshold rules with the same name and size."""
        kept = {
            ("flap", new.name)
            for new in rules.flap
            for old in self.rules.flap
            if (old.name, old.changes) == (new.name, new.changes)
        }
        kept |= {
            ("threshold", new.name)
            for new in rules.threshold
            for old in self.rules.threshold
            if (old.name, old.count) == (new.name, new.count)
        }
        for table in (self.last_status, self.changes, self.occurrences):
            for key in [k for k in table if k[:2] not in kept]:
                del table[key]
        self.rules = rules
        self.topology = topology

    def process(self, alerts: Iterable[RefAlert]) -> list[RefDecision]:
        """Decide a batch: its alerts in event-time order (ties in the order given)."""
        return [self.decide(alert) for alert in sorted(alerts, key=lambda a: a.ts)]

    def _ci_type(self, ci: int) -> str:
        if ci < 0 or self.topology is None:
            return ""
        return self.topology.type_names[int(self.topology.ci_type[ci])]

    def _key(self, stage: str, rule: object, alert: RefAlert, fields: dict[str, str]) -> tuple:
        key = rule.key  # type: ignore[attr-defined]
        identity = tuple(fields.get(k, "") for k in key) if key else alert.fingerprint
        return (stage, rule.name, identity)  # type: ignore[attr-defined]

    def decide(self, alert: RefAlert) -> RefDecision:
        """Decide one alert and update the state."""
        rules = self.rules
        labels = dict(alert.labels)
        ci_type = self._ci_type(alert.ci)
        if alert.ci >= 0 and self.topology is not None:
            attributes = self.topology.attributes[alert.ci]
            for rule in rules.enrich:
                if rule.match is None or rule.match.matches({**alert.labels, "ci_type": ci_type}):
                    for name in rule.attributes:
                        if not labels.get(name) and attributes.get(name):
                            labels[name] = attributes[name]

        fields = {**labels, "ci_type": ci_type}
        significance, classified_by = None, None
        for rule in rules.classify:
            if rule.match.matches(fields):
                significance = SIGNIFICANCE_NAMES[rule.significance]
                classified_by = rule.name
                break
        if significance is None:
            code = SEVERITY_CODES.get(alert.labels.get("severity", "").lower(), 0)
            significance = BY_SEVERITY[code]
        fields["significance"] = significance

        def decision(fate: str, rule: str | None = None) -> RefDecision:
            return RefDecision(alert.row, significance, classified_by, fate, rule, labels)

        for rule in rules.drop:
            if rule.match.matches(fields):
                return decision("dropped", rule.name)
        for rule in rules.maintenance:
            if (
                alert.status == "firing"
                and rule.match.matches(fields)
                and in_maintenance(rule, alert.ts)
            ):
                return decision("in_maintenance", rule.name)
        for rule in rules.flap:
            if rule.match.matches(fields):
                key = self._key("flap", rule, alert, fields)
                previous = self.last_status.get(key)
                self.last_status[key] = alert.status
                if previous is not None and previous != alert.status:
                    self.changes.setdefault(key, []).append(alert.ts)
                recent = [t for t in self.changes.get(key, []) if t >= alert.ts - rule.within]
                if alert.status == "firing" and len(recent) > rule.changes:
                    return decision("flapping", rule.name)
                break
        for rule in rules.threshold:
            if rule.match.matches(fields):
                if alert.status == "resolved":
                    break
                key = self._key("threshold", rule, alert, fields)
                self.occurrences.setdefault(key, []).append(alert.ts)
                recent = [t for t in self.occurrences[key] if t >= alert.ts - rule.within]
                if len(recent) < rule.count:
                    return decision("below_threshold", rule.name)
                break
        return decision("passed")
