"""Maintenance windows as UTC instants, computed once per batch time range.

An absolute window is ``[from, until)``. A weekly window opens on each listed
weekday at ``from`` local time in its time zone and closes at ``until`` (the
next day when ``until`` is not after ``from``). A local time is turned into
an instant the way ``zoneinfo`` resolves it with ``fold=0``: a time skipped by
a spring-forward gap takes the offset from before the gap, a time repeated by
a fall-back takes its first occurrence. So a window 01:00-03:00 lasts one
hour on the night clocks spring forward and three on the night they fall back.

The kernel never converts per alert: ``rule_intervals`` lists, for a batch's
time range, each rule's open intervals merged and sorted, and the kernel
binary-searches them.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, timedelta
from functools import cache
from zoneinfo import ZoneInfo

import numpy as np

from correlator.rules.model import AbsoluteWindow, MaintenanceRule, WeeklyWindow

SECOND = 10**9


@cache
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def _local_instant(day: date, seconds: int, zone: ZoneInfo) -> int:
    """The instant (ns) of ``seconds`` after local midnight of ``day`` (24:00 is next day)."""
    extra, seconds = divmod(seconds, 86400)
    start = day + timedelta(days=extra)
    hours, rest = divmod(seconds, 3600)
    local = datetime(start.year, start.month, start.day, hours, rest // 60, rest % 60, tzinfo=zone)
    return int(local.timestamp()) * SECOND


def weekly_intervals(window: WeeklyWindow, lo: int, hi: int) -> list[tuple[int, int]]:
    """The occurrences of ``window`` that can contain an instant in ``[lo, hi]`` (ns)."""
    zone = _zone(window.timezone)
    first = datetime.fromtimestamp(lo // SECOND, zone).date() - timedelta(days=2)
    last = datetime.fromtimestamp(hi // SECOND, zone).date()
    end_offset = window.end if window.end > window.start else window.end + 86400
    out = []
    day = first
    while day <= last:
        if day.weekday() in window.days:
            start = _local_instant(day, window.start, zone)
            end = _local_instant(day, end_offset, zone)
            if start < end and end > lo and start <= hi:
                out.append((start, end))
        day += timedelta(days=1)
    return out


def rule_intervals(
    rules: Sequence[MaintenanceRule], lo: int, hi: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per rule, its open intervals for a batch spanning ``[lo, hi]``, merged, in CSR form.

    Rule ``r``'s intervals are ``[start[k], end[k])`` for ``k`` in ``ptr[r]:ptr[r + 1]``.
    """
    ptr = [0]
    starts: list[int] = []
    ends: list[int] = []
    for rule in rules:
        spans: list[tuple[int, int]] = []
        for window in rule.windows:
            if isinstance(window, AbsoluteWindow):
                spans.append((window.start, window.end))
            else:
                spans.extend(weekly_intervals(window, lo, hi))
        merged: list[list[int]] = []
        for start, end in sorted(spans):
            if merged and start <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], end)
            else:
                merged.append([start, end])
        starts.extend(s for s, _ in merged)
        ends.extend(e for _, e in merged)
        ptr.append(len(starts))
    return (
        np.array(ptr, dtype=np.int64),
        np.array(starts, dtype=np.int64),
        np.array(ends, dtype=np.int64),
    )
