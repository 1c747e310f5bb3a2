"""Incident sinks: where incident events go once correlation has formed them.

Events are emitted into a durable outbox (``Dispatcher.emit``) and delivered
to each sink by its own thread, in order, at least once; see ``delivery``.
Sink types come from the registry (built-ins, and the ``correlator.sinks``
entry-point group); a plugin subclasses ``TicketSink``.
"""

from __future__ import annotations

from correlator.sinks.base import DeliveryError, SinkOptions, SinkState, TicketSink
from correlator.sinks.delivery import Dispatcher, SinkStatus
from correlator.sinks.jsonl import JsonlSink
from correlator.sinks.outbox import Outbox
from correlator.sinks.registry import available_sinks, sink_class
from correlator.sinks.routing import Router, SinkSpec, parse_sink_specs

__all__ = [
    "DeliveryError",
    "Dispatcher",
    "JsonlSink",
    "Outbox",
    "Router",
    "SinkOptions",
    "SinkSpec",
    "SinkState",
    "SinkStatus",
    "TicketSink",
    "available_sinks",
    "parse_sink_specs",
    "sink_class",
]
