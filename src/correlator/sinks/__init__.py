"""Incident sinks: where incident events go once correlation has formed them."""

from __future__ import annotations

from correlator.sinks.base import TicketSink
from correlator.sinks.jsonl import JsonlSink

__all__ = ["JsonlSink", "TicketSink"]
