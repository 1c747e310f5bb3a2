"""PNG charts of the scaling curves, paced replay and the Alertmanager comparison.

matplotlib is the optional ``bench`` extra (``pip install 'correlator[bench]'``).
Without it no chart is drawn and the report says so; every figure is still
in the tables and in ``results.json``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

MISSING = (
    "Charts skipped: matplotlib is not installed "
    "(`pip install 'correlator[bench]'` adds it). Every figure is in the tables above."
)


def draw_charts(results: Mapping[str, Any], out: Path) -> list[str] | str:
    """Draw the charts the results have data for into ``out``; their file names.

    Returns :data:`MISSING` instead when matplotlib cannot be imported. The
    latency chart leaves out replays with no finite p99 (nothing covered).
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return MISSING
    drawn = []
    scaling = results.get("scaling")
    if scaling:
        for axis, key, label in (
            ("storm", "alerts", "alerts in the storm"),
            ("topology", "cis", "CIs in the topology"),
        ):
            name = f"scaling-{axis}.png"
            _scaling_chart(plt, scaling[axis], key, label, out / name)
            drawn.append(name)
    replay = [e for e in results.get("replay", []) if _positive(e, "p99_ms")]
    if replay:
        _replay_chart(plt, replay, out / "replay-latency.png")
        drawn.append("replay-latency.png")
    if results.get("peer"):
        _peer_chart(plt, results["peer"], out / "alertmanager.png")
        drawn.append("alertmanager.png")
    return drawn


def _median(entry: Mapping[str, Any], name: str) -> float:
    return _value(entry, name, "median")


def _spread(
    points: Sequence[Mapping[str, Any]], name: str
) -> tuple[list[float], list[list[float]]]:
    """Medians, and the distances down to the min and up to the max, for error bars."""
    medians = [_median(p, name) for p in points]
    low = [m - _value(p, name, "min") for m, p in zip(medians, points, strict=True)]
    high = [_value(p, name, "max") - m for m, p in zip(medians, points, strict=True)]
    return medians, [low, high]


def _value(entry: Mapping[str, Any], name: str, which: str) -> float:
    value = entry["figures"][name][which]
    return float(value) if value is not None and math.isfinite(value) else math.nan


def _positive(entry: Mapping[str, Any], name: str) -> bool:
    return _median(entry, name) > 0


def _scaling_chart(
    plt: Any, points: Sequence[Mapping[str, Any]], key: str, label: str, path: Path
) -> None:
    xs = [p[key] for p in points]
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    axes[0].errorbar(xs, *_spread(points, "alerts_per_s"), fmt="o-", capsize=3)
    axes[0].set_ylabel("alerts/s (file to incidents), min-max bars")
    axes[1].errorbar(xs, *_spread(points, "p50_ms"), fmt="o-", capsize=3, label="p50")
    axes[1].errorbar(xs, *_spread(points, "p99_ms"), fmt="s-", capsize=3, label="p99")
    axes[1].set_ylabel("latency (ms), min-max bars")
    axes[1].legend()
    axes[2].plot(xs, [p["peak_rss_mib"] for p in points], "o-")
    axes[2].set_ylabel("peak RSS (MiB)")
    for ax in axes:
        ax.set_xscale("log")
        ax.set_xlabel(label)
        ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _replay_chart(plt: Any, entries: Sequence[Mapping[str, Any]], path: Path) -> None:
    labels = [f"{e['recording']}\n{e['speed']}" for e in entries]
    xs = range(len(entries))
    fig, ax = plt.subplots(figsize=(max(6, 1.6 * len(entries)), 4))
    ax.bar([x - 0.2 for x in xs], [_median(e, "p50_ms") for e in entries], 0.4, label="p50")
    ax.bar([x + 0.2 for x in xs], [_median(e, "p99_ms") for e in entries], 0.4, label="p99")
    ax.set_xticks(list(xs), labels, fontsize=8)
    ax.set_yscale("log")
    ax.set_ylabel("alert → incident event latency (ms)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _peer_chart(plt: Any, peer: Mapping[str, Any], path: Path) -> None:
    names = [
        ("alerts_per_s", "ingest alerts/s"),
        ("last_notification_s", "s to last notification"),
        ("notifications", "notifications"),
        ("peak_rss_mib", "peak RSS MiB"),
    ]
    ours, theirs = peer["figures"]["correlator"], peer["figures"]["alertmanager"]
    fig, axes = plt.subplots(1, len(names), figsize=(14, 3.5))
    for ax, (name, label) in zip(axes, names, strict=True):
        values = [ours[name]["median"], theirs[name]["median"]]
        ax.bar(["correlator", "Alertmanager"], values, color=["tab:blue", "tab:orange"])
        ax.set_title(label)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
