"""The second level's inhibit and pair rules in plain Python: the semantics of
``second_kernel`` in the most obvious code. The rules, restated:

* It sees the alerts the first level passed, in event-time order, with the
  fields the first level's matchers see (labels, ``ci_type``, ``significance``).
* inhibit: an alert matching a rule's ``source`` becomes, or stays, that rule's
  source; it is *active* while its last event was firing and less than
  ``resolve_timeout`` ago. A firing alert matching a rule's ``target`` is
  inhibited (fate ``inhibited``) when an active source of the rule with
  another fingerprint has, for each ``equal`` pair, the same value in its
  source label as the alert has in its target label (absent reads ``""``), and
  not both the alert and that source match the rule's source and target
  (Alertmanager's rule against two-sided self-inhibition). Sources are
  updated before targets are checked; the first inhibiting rule is named.
  Resolved alerts are never inhibited, so resolves always reach incidents.
* pair (alerts not inhibited): the first rule whose ``problem`` or
  ``recovery`` matches decides, with an episode per (rule, ``equal`` values):
  - a firing problem with no episode starts one: the alert is stored and
    held (fate ``held``) until its deadline, ``within`` after it; further
    firing problems of a held episode are held too, of a released one pass;
  - a resolved problem ends the episode; it is ``paired`` if the episode was
    held (the problem cancelled out), else it passes;
  - a recovery ends the episode and is consumed: ``paired`` if it was held,
    else ``recovery``; if the episode was released, the stored problem is
    resolved in correlation at the recovery's time;
  - before each alert at time ``t``, every held episode with a deadline
    before ``t`` is released: its stored problem enters correlation at the
    deadline. Releases go in (deadline, episode creation) order; ``flush``
    releases every held episode, ``advance(w)`` those with deadline before w.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from correlator.rules.model import RuleSet
from correlator.rules.reference import RefAlert

_HELD, _RELEASED = "held", "released"


@dataclass(frozen=True)
class SecondDecision:
    """The reference's decision for one alert: fate and rule name (None when passed)."""

    row: int
    fate: str
    rule: str | None


@dataclass(frozen=True)
class Injection:
    """What a pair rule does with a stored problem (its ``row`` and ``fingerprint``) at
    ``ts``: ``release`` it into correlation, ``resolve`` it there, or report it ``paired``."""

    row: int
    fingerprint: int
    ts: int
    kind: str


@dataclass
class _Episode:
    state: str | None = None
    deadline: int = 0
    stored: int = -1
    fingerprint: int = 0
    order: int = 0


@dataclass
class SecondOutput:
    """A batch's decisions and the injections, in the order they happened."""

    decisions: list[SecondDecision] = field(default_factory=list)
    injections: list[Injection] = field(default_factory=list)


class SecondReference:
    """The inhibit and pair rules as an interpreter; keeps its state across calls.

    ``fields`` of an alert must include the derived fields the first level gave it.
    """

    def __init__(self, rules: RuleSet, resolve_timeout: int) -> None:
        self.rules = rules
        self.resolve_timeout = resolve_timeout
        # (rule name, fingerprint) -> [equal-key, firing, last firing ts, two-sided]
        self.sources: dict[tuple[str, int], list] = {}
        self.episodes: dict[tuple[str, tuple[str, ...]], _Episode] = {}

    def process(
        self, alerts: Iterable[tuple[RefAlert, dict[str, str]]], output: SecondOutput
    ) -> None:
        """Decide time-ordered (alert, fields) pairs, appending to ``output``."""
        for alert, fields in alerts:
            self._release(lambda deadline, t=alert.ts: deadline < t, output)
            output.decisions.append(self.decide(alert, fields, output))

    def flush(self, output: SecondOutput) -> None:
        """Release every held episode."""
        self._release(lambda deadline: True, output)

    def _release(self, due: Callable[[int], bool], output: SecondOutput) -> None:
        held = [e for e in self.episodes.values() if e.state == _HELD and due(e.deadline)]
        for episode in sorted(held, key=lambda e: (e.deadline, e.order)):
            episode.state = _RELEASED
            output.injections.append(
                Injection(episode.stored, episode.fingerprint, episode.deadline, "release")
            )

    def decide(
        self, alert: RefAlert, fields: dict[str, str], output: SecondOutput
    ) -> SecondDecision:
        """One alert: update inhibit sources, then inhibit, then pair."""
        firing = alert.status == "firing"
        for rule in self.rules.inhibit:
            if rule.source.matches(fields):
                key = tuple(fields.get(s, "") for s, _ in rule.equal)
                entry = self.sources.setdefault(
                    (rule.name, alert.fingerprint),
                    [key, False, alert.ts, rule.target.matches(fields)],
                )
                entry[1] = firing
                if firing:
                    entry[2] = alert.ts
        if firing:
            for rule in self.rules.inhibit:
                if not rule.target.matches(fields):
                    continue
                key = tuple(fields.get(t, "") for _, t in rule.equal)
                two_sided = rule.source.matches(fields)
                for (name, fingerprint), (k, on, last, both) in self.sources.items():
                    if (
                        name == rule.name
                        and k == key
                        and on
                        and alert.ts < last + self.resolve_timeout
                        and fingerprint != alert.fingerprint
                        and not (two_sided and both)
                    ):
                        return SecondDecision(alert.row, "inhibited", rule.name)
        for rule in self.rules.pair:
            problem = rule.problem.matches(fields)
            if not (problem or rule.recovery.matches(fields)):
                continue
            key = (rule.name, tuple(fields.get(k, "") for k in rule.equal))
            if key not in self.episodes:
                self.episodes[key] = _Episode(order=len(self.episodes))
            episode = self.episodes[key]
            was = episode.state
            if problem and firing:
                if was == _HELD:
                    return SecondDecision(alert.row, "held", rule.name)
                if was == _RELEASED:
                    return SecondDecision(alert.row, "passed", None)
                episode.state = _HELD
                episode.deadline = alert.ts + rule.within
                episode.stored = alert.row
                episode.fingerprint = alert.fingerprint
                return SecondDecision(alert.row, "held", rule.name)
            episode.state = None
            if was == _HELD:
                output.injections.append(
                    Injection(episode.stored, episode.fingerprint, alert.ts, "paired")
                )
                return SecondDecision(alert.row, "paired", rule.name)
            if problem:
                return SecondDecision(alert.row, "passed", None)
            if was == _RELEASED:
                output.injections.append(
                    Injection(episode.stored, episode.fingerprint, alert.ts, "resolve")
                )
            return SecondDecision(alert.row, "recovery", rule.name)
        return SecondDecision(alert.row, "passed", None)
