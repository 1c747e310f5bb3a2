"""Sink configuration and routing: which sinks receive an incident's events.

The config lists sinks in order, as Alertmanager lists routes::

    sinks:
      - name: netops                    # unique; names the delivery cursor too
        type: pagerduty                 # registry name; defaults to the name
        match: 'root_type=~"switch|router"'
        options: {routing_key_env: NETOPS_PD_KEY}
      - name: dba
        type: servicenow
        match: ['root_type="database"', 'service="billing"']   # a list is ORed
        continue: true
        options: {url: https://example.service-now.com}
      - name: archive
        type: sqlite
        delivery: {batch_size: 500}

An incident goes to the first sink whose ``match`` holds, and on down the list
while the matched sinks say ``continue: true``; a sink without ``match``
matches everything. Matchers read these incident fields: ``severity``,
``significance``, ``event``, ``root_ci``, ``root_type``, ``root_alertname``,
``inferred`` (``true``/``false``), ``action`` (what the rule set's
``respond`` section chose: ``incident``, ``alert``, ``auto``, ``log``), and
the many-valued ``service`` (affected business services) and ``ci``
(affected CIs). A matcher set holds on a
many-valued field when one value satisfies all of the set's matchers on that
field (as if the incident were tried once per value); an empty list reads as
``""``. Any other name is read from the labels of the alert that opened
the incident.

Routing is decided on an incident's first event and remembered (see
``outbox``), so every event of one incident goes to the same sinks, in order,
even when a later update names another root.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from correlator.errors import ConfigError
from correlator.incident import IncidentEvent
from correlator.matchers import Matcher, MatcherError, MatcherSet, parse_matcher_set

SINGLE_FIELDS = (
    "severity",
    "significance",
    "event",
    "root_ci",
    "root_type",
    "root_alertname",
    "inferred",
    "action",
)
MULTI_FIELDS = ("service", "ci")
_NAME = re.compile(r"[A-Za-z0-9_.-]+")
_SPEC_KEYS = ("name", "type", "match", "continue", "options", "delivery")


@dataclass(frozen=True)
class DeliveryPolicy:
    """How a sink's delivery thread batches and retries (seconds).

    ``batch_size`` None means the sink type's own ``TicketSink.batch_size``.
    """

    batch_size: int | None = None
    backoff_initial: float = 0.5
    backoff_max: float = 60.0
    retry_after_max: float = 600.0
    health_interval: float = 30.0


@dataclass(frozen=True)
class _Route:
    """One alternative of a ``match`` list: matchers on single and on many-valued fields."""

    single: tuple[Matcher, ...]
    multi: tuple[tuple[str, tuple[Matcher, ...]], ...]

    def holds(self, fields: Mapping[str, str], many: Mapping[str, Sequence[str]]) -> bool:
        if not all(m.matches(fields.get(m.name, "")) for m in self.single):
            return False
        for name, matchers in self.multi:
            values = many.get(name) or ("",)
            if not any(all(m.matches(v) for m in matchers) for v in values):
                return False
        return True


def _route(matchers: MatcherSet) -> _Route:
    multi: dict[str, list[Matcher]] = {}
    for m in matchers.matchers:
        if m.name in MULTI_FIELDS:
            multi.setdefault(m.name, []).append(m)
    return _Route(
        single=tuple(m for m in matchers.matchers if m.name not in MULTI_FIELDS),
        multi=tuple((name, tuple(ms)) for name, ms in multi.items()),
    )


@dataclass(frozen=True)
class SinkSpec:
    """One validated sink entry of the config; ``routes`` empty means match everything."""

    name: str
    type: str
    options: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    match: tuple[str, ...] = ()
    continue_: bool = False
    delivery: DeliveryPolicy = DeliveryPolicy()
    routes: tuple[_Route, ...] = field(default=(), compare=False, repr=False)

    def matches(self, fields: Mapping[str, str], many: Mapping[str, Sequence[str]]) -> bool:
        """Whether this sink's ``match`` holds on an incident's fields."""
        return not self.routes or any(r.holds(fields, many) for r in self.routes)


def _fail(where: str, problem: str) -> ConfigError:
    return ConfigError(f"{where}: {problem}")


def _parse_match(value: Any, where: str) -> tuple[tuple[str, ...], tuple[_Route, ...]]:
    texts = [value] if isinstance(value, str) else value
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
        raise _fail(where, f"'match' must be a matcher string or a list of them, got {value!r}")
    routes = []
    for text in texts:
        try:
            matchers = parse_matcher_set(text)
        except MatcherError as exc:
            raise _fail(where, f"'match': {exc}") from exc
        routes.append(_route(matchers))
    return tuple(texts), tuple(routes)


def _parse_delivery(value: Any, where: str) -> DeliveryPolicy:
    if value is None:
        return DeliveryPolicy()
    if not isinstance(value, Mapping):
        raise _fail(where, f"'delivery' must be a mapping, got {value!r}")
    defaults = DeliveryPolicy()
    known = tuple(defaults.__dataclass_fields__)
    unknown = sorted(set(value) - set(known))
    if unknown:
        raise _fail(where, f"unknown 'delivery' key {unknown[0]!r} (known: {', '.join(known)})")
    values: dict[str, Any] = {}
    for key in known:
        item: Any = value.get(key, getattr(defaults, key))
        if item is None and key == "batch_size":
            continue
        kinds = (int,) if key == "batch_size" else (int, float)
        if isinstance(item, bool) or not isinstance(item, kinds) or item <= 0:
            raise _fail(where, f"'delivery.{key}' must be a positive number, got {item!r}")
        values[key] = item
    if values["backoff_max"] < values["backoff_initial"]:
        raise _fail(where, "'delivery.backoff_max' is below 'delivery.backoff_initial'")
    return DeliveryPolicy(**values)


def parse_sink_specs(raw: Any, *, source: str = "config") -> list[SinkSpec]:
    """Validate the ``sinks:`` list of a config; errors name the entry, the key and ``source``."""
    if not isinstance(raw, list) or not raw:
        msg = f"{source}: 'sinks' must be a non-empty list of sink entries"
        raise ConfigError(msg)
    specs: list[SinkSpec] = []
    seen: set[str] = set()
    for i, entry in enumerate(raw):
        where = f"{source}: sinks[{i}]"
        if not isinstance(entry, Mapping):
            raise _fail(where, f"must be a mapping, got {entry!r}")
        name = entry.get("name")
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise _fail(where, f"'name' must be letters, digits, '_', '.' or '-', got {name!r}")
        where = f"{source}: sink {name!r}"
        if name in seen:
            raise _fail(where, "the name is used twice")
        seen.add(name)
        unknown = sorted(set(entry) - set(_SPEC_KEYS))
        if unknown:
            raise _fail(where, f"unknown key {unknown[0]!r} (known: {', '.join(_SPEC_KEYS)})")
        kind = entry.get("type", name)
        if not isinstance(kind, str) or not kind:
            raise _fail(where, f"'type' must be a sink type name, got {kind!r}")
        options = entry.get("options") or {}
        if not isinstance(options, Mapping):
            raise _fail(where, f"'options' must be a mapping, got {options!r}")
        cont = entry.get("continue", False)
        if not isinstance(cont, bool):
            raise _fail(where, f"'continue' must be true or false, got {cont!r}")
        match: tuple[str, ...] = ()
        routes: tuple[_Route, ...] = ()
        if entry.get("match") is not None:
            match, routes = _parse_match(entry["match"], where)
        specs.append(
            SinkSpec(
                name=name,
                type=kind,
                options=MappingProxyType(dict(options)),
                match=match,
                continue_=cont,
                delivery=_parse_delivery(entry.get("delivery"), where),
                routes=routes,
            )
        )
    return specs


def incident_fields(event: IncidentEvent) -> tuple[dict[str, str], dict[str, list[str]]]:
    """The single-valued and many-valued fields routes match on.

    Any other name a route matches is read from the labels of the alert that
    opened the incident (absent: ``""``, as in Alertmanager).
    """
    root = event.root_cause
    single = {
        **event.labels,
        "severity": event.severity,
        "significance": event.significance,
        "event": event.event,
        "root_ci": root.ci or "",
        "root_type": root.type or "",
        "root_alertname": root.alertname or "",
        "inferred": "true" if root.inferred else "false",
        "action": event.action,
    }
    return single, {"service": event.affected_services, "ci": event.affected_cis}


class Router:
    """Alertmanager-style routing over the sink list: first match, then on while ``continue``."""

    def __init__(self, specs: Sequence[SinkSpec]) -> None:
        self.specs = tuple(specs)

    def targets(self, event: IncidentEvent) -> tuple[str, ...]:
        """The names of the sinks this event (an incident's first) should go to, in config order."""
        single, many = incident_fields(event)
        chosen: list[str] = []
        for spec in self.specs:
            if spec.matches(single, many):
                chosen.append(spec.name)
                if not spec.continue_:
                    break
        return tuple(chosen)
