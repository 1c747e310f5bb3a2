"""Where sink types come from: built-ins by lazy ``"module:Attr"`` name, plugins by entry point.

A third-party package registers a sink in its ``pyproject.toml``::

    [project.entry-points."correlator.sinks"]
    logfmt = "correlator_example_sink:LogfmtSink"

Nothing is imported until a sink of that type is built. A plugin cannot
replace a built-in: on a name clash the built-in wins and ``correlator
plugins`` shows the plugin as shadowed.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.metadata import entry_points

from correlator.errors import ConfigError
from correlator.sinks.base import TicketSink
from correlator.sinks.routing import SinkSpec

GROUP = "correlator.sinks"
BUILTIN = "correlator"

BUILTINS = {
    "jsonl": "correlator.sinks.jsonl:JsonlSink",
    "pagerduty": "correlator.sinks.pagerduty:PagerDutySink",
    "servicenow": "correlator.sinks.servicenow:ServiceNowSink",
    "sqlite": "correlator.sinks.sqlite:SqliteSink",
    "webhook": "correlator.sinks.webhook:WebhookSink",
}


@dataclass(frozen=True)
class SinkEntry:
    """A sink type found: its name, ``module:Attr`` target and the distribution providing it."""

    name: str
    target: str
    distribution: str
    version: str = ""
    shadowed: bool = False


def _plugins() -> list[SinkEntry]:
    found = []
    for ep in entry_points(group=GROUP):
        dist = ep.dist
        found.append(
            SinkEntry(
                name=ep.name,
                target=ep.value,
                distribution=dist.name if dist is not None else "?",
                version=dist.version if dist is not None else "",
                shadowed=ep.name in BUILTINS,
            )
        )
    return found


def sink_entries() -> list[SinkEntry]:
    """Every sink type found, built-ins first, then plugins by name (shadowed ones included)."""
    builtins = [SinkEntry(name, target, BUILTIN) for name, target in BUILTINS.items()]
    return builtins + sorted(_plugins(), key=lambda e: (e.name, e.distribution))


def available_sinks() -> dict[str, SinkEntry]:
    """The usable sink types by name: built-ins, then plugins that do not clash with them."""
    found: dict[str, SinkEntry] = {}
    for entry in sink_entries():
        if not entry.shadowed:
            found.setdefault(entry.name, entry)
    return found


def _load(entry: SinkEntry) -> type[TicketSink]:
    module_name, _, attr = entry.target.partition(":")
    try:
        obj: object = importlib.import_module(module_name)
        for part in attr.split(".") if attr else ():
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        msg = f"sink type {entry.name!r} ({entry.distribution}): cannot load {entry.target}: {exc}"
        raise ConfigError(msg) from exc
    if not (isinstance(obj, type) and issubclass(obj, TicketSink)):
        msg = (
            f"sink type {entry.name!r} ({entry.distribution}): {entry.target} is not a"
            " TicketSink subclass"
        )
        raise ConfigError(msg)
    return obj


def sink_class(name: str) -> type[TicketSink]:
    """The sink class registered as ``name``; ``ConfigError`` lists the valid names if unknown."""
    found = available_sinks()
    entry = found.get(name)
    if entry is None:
        msg = f"unknown sink type {name!r} (valid: {', '.join(sorted(found))})"
        raise ConfigError(msg)
    return _load(entry)


def build_sinks(specs: Sequence[SinkSpec]) -> dict[str, TicketSink]:
    """Build (validate, not connect) the sink of every spec, by sink name.

    Sinks built before a failing one are closed before the error propagates.
    """
    built: dict[str, TicketSink] = {}
    try:
        for spec in specs:
            try:
                cls = sink_class(spec.type)
            except ConfigError as exc:
                msg = f"sink {spec.name!r}: {exc}"
                raise ConfigError(msg) from exc
            built[spec.name] = cls.from_config(spec.name, spec.options)
    except BaseException:
        for sink in built.values():
            sink.close()
        raise
    return built
