"""Event-time helpers: durations in rule/config syntax and RFC 3339 output."""

from __future__ import annotations

import functools
import re
from datetime import UTC, datetime

_UNITS_NS = {"ms": 10**6, "s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9, "d": 86400 * 10**9}
_DURATION = re.compile(r"(\d+)(ms|s|m|h|d)")


def parse_duration(text: str | int | float) -> int:
    """A Prometheus-style duration (``90s``, ``5m``, ``1h30m``) in nanoseconds.

    A bare number is seconds. Raises ``ValueError`` with the text on failure.
    """
    if isinstance(text, bool):
        msg = f"not a duration: {text!r}"
        raise ValueError(msg)
    if isinstance(text, int | float):
        return int(text * 10**9)
    parts = _DURATION.findall(text)
    if not parts or "".join(a + b for a, b in parts) != text:
        msg = f"not a duration: {text!r} (use e.g. 30s, 5m, 1h30m)"
        raise ValueError(msg)
    return sum(int(amount) * _UNITS_NS[unit] for amount, unit in parts)


@functools.lru_cache(maxsize=1 << 16)
def format_ns(ns: int) -> str:
    """An event time as RFC 3339 UTC with nanoseconds, e.g. ``2026-11-27T10:00:00.5Z``."""
    seconds, frac = divmod(int(ns), 10**9)
    stamp = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    if frac:
        stamp += "." + f"{frac:09d}".rstrip("0")
    return stamp + "Z"


def format_span(ns: int) -> str:
    """A duration for humans: ``40 s``, ``3 min``, ``2 h``."""
    seconds = ns / 10**9
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
