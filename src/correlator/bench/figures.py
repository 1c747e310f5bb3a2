"""A figure is the median of repeated runs after a warm-up, with its min and max.

A run that raises, or a worker process that exits non-zero, is never turned
into a number: :func:`repeat` lets the error through as :class:`BenchError`,
and the whole bench fails.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from correlator.errors import CorrelatorError

MIN_RUNS = 5


class BenchError(CorrelatorError):
    """A benchmark run failed; no figure is reported from it."""


@dataclass(frozen=True)
class Figure:
    """One measured quantity over the timed runs (the warm-up is not among them)."""

    values: tuple[float, ...]

    @property
    def median(self) -> float:
        """The reported value."""
        return statistics.median(self.values)

    @property
    def low(self) -> float:
        """The smallest run's value."""
        return min(self.values)

    @property
    def high(self) -> float:
        """The largest run's value."""
        return max(self.values)

    def as_json(self) -> dict[str, Any]:
        """Median, min, max and every run's value."""
        return {
            "median": self.median,
            "min": self.low,
            "max": self.high,
            "runs": list(self.values),
        }


def figures(runs: list[Mapping[str, float]]) -> dict[str, Figure]:
    """Each metric the runs measured, as a figure over those runs."""
    if not runs:
        msg = "no timed run to report"
        raise BenchError(msg)
    return {name: Figure(tuple(float(run[name]) for run in runs)) for name in runs[0]}


def repeat(
    measure: Callable[[], Mapping[str, float]], runs: int, *, what: str, warmup: bool = True
) -> dict[str, Figure]:
    """Call ``measure`` once to warm up (unless ``warmup`` is false), then ``runs`` times.

    Any exception from a run becomes :class:`BenchError` naming ``what``, so a
    figure is never reported from a run that errored.
    """
    results = []
    for k in range(runs + int(warmup)):
        try:
            result = measure()
        except Exception as exc:
            run = "warm-up run" if warmup and k == 0 else f"run {k + 1 - int(warmup)}"
            msg = f"{what}: {run} failed: {type(exc).__name__}: {exc}"
            raise BenchError(msg) from exc
        if k or not warmup:
            results.append(result)
    return figures(results)


def summary(figure_map: Mapping[str, Figure]) -> dict[str, Any]:
    """Figures as ``results.json`` holds them."""
    return {name: figure.as_json() for name, figure in figure_map.items()}
