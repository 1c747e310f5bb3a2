"""``Responder``: the ``respond`` section, choosing what happens to each incident.

Response is decided per correlated group, not per alert: each incident event
is matched against the ``respond`` rules on the fields of the group, which
are the labels of the alert that opened it plus the incident's current
``significance`` (it rises with its members) and ``ci_type`` (the root CI's
type, ``""`` outside the CMDB). The first matching rule's action and ``run``
go on the event; with no match the action is ``incident``, so nothing a rule
set forgot is silently reduced to a log line. Sinks route on ``action``
(``action="incident"`` for ticket systems, ``action="alert"`` for chat or
paging, ``action="auto"`` for an automation webhook, ``action="log"`` for the
archive). Events are few (one per incident change), so this runs in Python.
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from correlator.incident import IncidentEvent
from correlator.rules.model import RespondRule

DEFAULT_ACTION = "incident"


class Responder:
    """Sets ``action`` and ``run`` on incident events by the first matching respond rule."""

    def __init__(self, rules: Sequence[RespondRule]) -> None:
        self.rules = tuple(rules)
        # An incident's labels and root never change; its significance may rise.
        self._chosen: dict[tuple[str, str], RespondRule | None] = {}

    def choose(self, event: IncidentEvent) -> RespondRule | None:
        """The first rule that holds on the event's group, or None."""
        fields = {
            **event.labels,
            "significance": event.significance,
            "ci_type": event.root_cause.type or "",
        }
        return next((rule for rule in self.rules if rule.match.matches(fields)), None)

    def apply(self, events: Sequence[IncidentEvent]) -> list[IncidentEvent]:
        """The events with the chosen action (unchanged when no rule set one)."""
        if not self.rules:
            return list(events)
        out = []
        for event in events:
            key = (event.id, event.significance)
            if key not in self._chosen:
                self._chosen[key] = self.choose(event)
            rule = self._chosen[key]
            action, run = (rule.action, rule.run) if rule is not None else (DEFAULT_ACTION, None)
            if (action, run) != (event.action, event.run):
                event = msgspec.structs.replace(event, action=action, run=run)
            out.append(event)
        return out
