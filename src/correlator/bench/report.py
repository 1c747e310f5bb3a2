"""``report.md`` and ``results.json``: the figures as tables a human reads, and every number.

The Markdown is rendered from the same JSON data that ``results.json``
holds, so the two never disagree.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

BUSY_LOAD = 0.5


def _rate(value: float) -> str:
    if not math.isfinite(value):
        return "n/a"
    if value >= 1e6:
        return f"{value / 1e6:.2f} M/s"
    if value >= 1e3:
        return f"{value / 1e3:.1f} k/s"
    return f"{value:.0f}/s"


def _ms(value: float | None) -> str:
    if value is None or math.isnan(value):
        return "n/a"
    if math.isinf(value):
        return "uncovered"
    return f"{value / 1e3:.2f} s" if value >= 1e4 else f"{value:.1f} ms"


def _num(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


def _figure(figure: Mapping[str, Any], fmt: Any = _num) -> str:
    """``median (min to max)``."""
    return f"{fmt(figure['median'])} ({fmt(figure['min'])} to {fmt(figure['max'])})"


def _table(head: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return [*lines, ""]


def _machine(results: Mapping[str, Any]) -> list[str]:
    m = results["machine"]
    load = results["load_average"]
    versions = ", ".join(f"{k} {v}" for k, v in m["versions"].items())
    busy = max(load["start"], load.get("end", 0.0)) / max(m["cores"] or 1, 1) >= BUSY_LOAD
    lines = [
        "## Machine",
        "",
        f"- CPU: {m['cpu_model']}, {m['cores']} cores; memory {m['memory_gib']} GiB; {m['os']}",
        f"- Software: {versions}",
        f"- Load average (1 min) at start {load['start']:.2f}, at end {load.get('end', 0):.2f}; "
        f"CPU pressure: `{results['cpu_pressure']}`",
    ]
    if busy:
        lines.append(
            "- **The machine was shared and busy during this run**: other jobs competed for "
            "the cores, so throughputs are lower bounds and latencies upper bounds."
        )
    return [*lines, ""]


def _per_alert(point: Mapping[str, Any], total: str, setup: str) -> str:
    f = point["figures"]
    spent = f[total]["median"] - f[setup]["median"]
    return f"{spent / max(point['alerts'], 1) * 1e6:.2f}"


def _scaling_rows(points: list[Mapping[str, Any]]) -> list[list[str]]:
    rows = []
    for p in points:
        f = p["figures"]
        rows.append(
            [
                f"{p['alerts']:,}",
                f"{p['cis']:,}",
                _figure(f["alerts_per_s"], _rate),
                _per_alert(p, "seconds", "setup_seconds"),
                _per_alert(p, "cpu_seconds", "setup_cpu_seconds"),
                f"{f['setup_seconds']['median']:.3f}",
                _figure(f["p50_ms"], _ms),
                _figure(f["p99_ms"], _ms),
                f"{p['peak_rss_mib']:,.0f}",
                f"{f['incidents']['median']:,.0f}",
            ]
        )
    return rows


def _growth(steps: list[Mapping[str, Any]], unit: str, threshold: float) -> list[str]:
    lines = []
    for s in steps:
        flag = " **super-linear step**" if s["super_linear"] else ""
        lines.append(
            f"- {s['from']:,} → {s['to']:,} {unit}: cost per alert "
            f"{s['us_per_alert'][0]:.2f} → {s['us_per_alert'][1]:.2f} µs wall "
            f"(x{s['cost_ratio']:.2f}, elasticity {s['elasticity']:+.2f}), "
            f"{s['cpu_us_per_alert'][0]:.2f} → {s['cpu_us_per_alert'][1]:.2f} µs CPU "
            f"(elasticity {s['cpu_elasticity']:+.2f}); peak RSS x{s['rss_ratio']:.2f}{flag}"
        )
    flagged = [s for s in steps if s["super_linear"]]
    verdict = (
        f"**{len(flagged)} super-linear step(s)** (CPU-time elasticity above {threshold})."
        if flagged
        else f"Cost per alert stays flat or falls: no step above CPU-time elasticity {threshold}."
    )
    return [*lines, "", verdict, ""]


def _scaling(results: Mapping[str, Any]) -> list[str]:
    s = results["scaling"]
    head = [
        "alerts",
        "CIs",
        "throughput",
        "µs/alert",
        "CPU µs/alert",
        "setup s",
        "p50 latency",
        "p99 latency",
        "peak RSS MiB",
        "incidents",
    ]
    lines = [
        "## Scaling",
        "",
        "Each size in its own process: load the CMDB, then replay the Parquet storm at full "
        "speed (read, normalize, first level, correlate, incident events) in batches of "
        "10,000 alerts. Throughput is alerts read per second of wall time, file to incidents. "
        "Latency is per alert, from its batch being handed to the pipeline to an incident "
        "event of its incident being emitted (so it includes the 10 s settle, in event time, "
        "which at full speed passes within a few batches). Peak RSS is the measuring "
        "process's `ru_maxrss`. Setup is building the pipeline, whose state is sized by "
        "the topology; it is in the throughput but left out of µs/alert (wall) and CPU "
        "µs/alert (every thread of the process), the cost per alert the growth is judged on. The "
        "elasticity of the cost per alert is log(c₂/c₁)/log(x₂/x₁): 0 is linear total time, "
        "1 quadratic; a step is flagged on CPU time, since wall time on a shared machine also "
        "measures the neighbours.",
        "",
        "### Against storm size",
        "",
        *_table(head, _scaling_rows(s["storm"])),
        *_growth(s["storm_growth"], "alerts", s["threshold_elasticity"]),
        "### Against topology size",
        "",
        *_table(head, _scaling_rows(s["topology"])),
        *_growth(s["topology_growth"], "CIs", s["threshold_elasticity"]),
    ]
    return lines


def _replay(entries: list[Mapping[str, Any]], title: str) -> list[str]:
    rows = []
    capped = []
    for e in entries:
        f = e["figures"]
        rows.append(
            [
                e["recording"],
                e["speed"],
                _figure(f["alerts_fed"]),
                _figure(f["alerts_per_s"], _rate),
                _figure(f["p50_ms"], _ms),
                _figure(f["p99_ms"], _ms),
                _figure(f["incidents"]),
                f"{f['compression']['median']:.1f}",
            ]
        )
        if e["capped_at_s"] is not None:
            capped.append(f"{e['speed']} (after {e['capped_at_s']:g} s)")
    head = ["recording", "speed", "alerts", "alerts/s", "p50", "p99", "incidents", "compr."]
    lines = [
        f"## {title}",
        "",
        "Full speed feeds the next 10,000-alert batch as soon as the last is done "
        "(alerts/s is file to incidents). Paced (xN) first feeds the alerts before the "
        "recording's busiest minute at full speed, unmeasured, then feeds each alert when "
        "(its event time - the busiest minute's start) / N has passed since pacing began "
        "(alerts and alerts/s count the paced alerts), and advances event time with the wall "
        "clock between batches, as "
        "the daemon's heartbeat does; latency runs from when the alert was due to the first "
        "incident event covering it; an alert whose incident had no event by the end of the "
        "run (`--max-seconds` of feeding, then at most as long again for events) counts as "
        "infinitely late, and a percentile landing on such alerts shows as *uncovered*. "
        "Normalization happens once, before pacing starts. Settle is the engine's default "
        "10 s of event time: an alert that opens a new incident waits 10 s / N of wall time "
        "for it by design, while one that joins an incident already notified waits only for "
        "its batch; which of the two dominates depends on the part of the recording replayed.",
        "",
        *_table(head, rows),
    ]
    if capped:
        lines += [
            "Paced runs stopped early by `--max-seconds`: "
            + ", ".join(capped)
            + ". Their figures cover the alerts fed until then.",
            "",
        ]
    return lines


def _compare(sides: list[Mapping[str, Any]]) -> list[str]:
    old, new = (s["figures"] for s in sides)
    rows = []
    for name, label, fmt in (
        ("incidents", "incidents opened", _num),
        ("compression", "compression (alerts per incident)", _num),
        ("p50_ms", "p50 latency", _ms),
        ("p99_ms", "p99 latency", _ms),
        ("alerts_per_s", "throughput", _rate),
    ):
        a, b = old[name]["median"], new[name]["median"]
        change = f"{(b - a) / a:+.1%}" if a else "n/a"
        rows.append([label, fmt(a), fmt(b), change])
    return [
        "## Rule sets compared",
        "",
        f"Old: `{sides[0]['rules']}`; new: `{sides[1]['rules']}`; same recording, full speed.",
        "",
        *_table(["figure", "old", "new", "change"], rows),
    ]


def _accuracy(acc: Mapping[str, Any]) -> list[str]:
    rows = [
        [
            r["scenario"],
            f"{r['alerts']:,}",
            f"{r['incidents']:,}",
            f"{r['compression']:.1f}x",
            f"{r['precision']:.3f}",
            f"{r['recall']:.3f}",
            f"{r['f1']:.3f}",
            f"{r['root_cause_accuracy']:.2f}",
        ]
        for r in acc["rows"]
    ]
    v = acc["verdict"]
    head = ["scenario", "alerts", "incidents", "compression", "precision", "recall", "F1", "RCA"]
    return [
        "## Accuracy",
        "",
        f"Generated scenarios with ground truth, {acc['seeds']} seed(s) each, replayed with "
        "the default settings (`correlator.bench.accuracy`, also `benchmarks/accuracy.py`). "
        "Pairwise precision/recall/F1 of the grouping; RCA is root-cause accuracy. "
        "Replay is deterministic, so one run per seed.",
        "",
        *_table(head, rows),
        f"Mean F1 {v['mean_f1']:.3f} (target ≥ 0.97), mean RCA {v['mean_rca']:.3f} "
        f"(target ≥ 0.95), worst {v['worst']:.3f} (target ≥ 0.90), single-switch storm "
        f"{v['switch_reduction']:.2%} fewer incidents than alerts (target ≥ 99%): "
        + ("**targets met**." if v["met"] else "**targets not met**."),
        "",
    ]


def _peer(p: Mapping[str, Any]) -> list[str]:
    ours, theirs = p["figures"]["correlator"], p["figures"]["alertmanager"]
    rows = []
    for name, label, fmt, better in (
        ("alerts_per_s", "ingest throughput", _rate, "higher"),
        ("last_notification_s", "first request → last notification (s)", _num, "lower"),
        ("notifications", "notifications a human receives", _num, "lower"),
        ("incidents", "incidents (correlator) / groups notified (Alertmanager)", _num, "lower"),
        ("peak_rss_mib", "peak RSS (MiB)", _num, "lower"),
    ):
        a, b = ours[name]["median"], theirs[name]["median"]
        ratio = f"{a / b:.2f}x" if b else "n/a"
        rows.append([label, _figure(ours[name], fmt), _figure(theirs[name], fmt), ratio, better])
    k = p["knobs"]
    return [
        "## Side by side with Alertmanager",
        "",
        f"{p['alerts']:,} alerts of a generated storm over {p['cis']:,} CIs, sent to each "
        f"system in the same run as `POST /api/v2/alerts` bodies of {k['body_alerts']:,} over "
        f"{k['connections']} keep-alive connections, as fast as each system answers (so the "
        "storm's hour of event time arrives within seconds, and many alerts fire and resolve "
        "before a group or incident is first notified). correlator runs as the real daemon "
        "(`correlator run`, event time on arrival, JSON-lines sink, event log on); "
        f"{p['alertmanager']} runs with clustering off, `group_by: [switch]`, an inhibit rule "
        "muting every alert of a switch while its `SwitchDown` fires, and a webhook receiver "
        "in the bench process. Timing knobs: Alertmanager `group_wait` "
        f"{k['group_wait']}, `group_interval` {k['group_interval']}, `repeat_interval` "
        f"{k['repeat_interval']}; correlator `settle` {k['correlator settle']}, "
        f"`update_interval` {k['correlator update_interval']}. The last notification is the "
        f"last one before {k['quiet_s']:g} s without any. Ingest for correlator ends when its "
        "`/metrics` counted every alert as processed; for Alertmanager when the last request "
        "was answered. A notification is an incident event (open/update/resolve) for "
        "correlator and a webhook request for Alertmanager. Ratio = correlator / Alertmanager.",
        "",
        *_table(["figure", "correlator", "Alertmanager", "ratio", "better"], rows),
    ]


def render(results: Mapping[str, Any]) -> str:
    """The Markdown report."""
    runs = results["runs"]
    title = "suite " + results["suite"]["name"] if results["suite"] else "recording"
    lines = [
        f"# correlator bench: {title}",
        "",
        f"Started {results['started']}, took {results['seconds']:.0f} s. Every figure is the "
        f"median of {runs} timed run(s) after {results['warmup_runs']} warm-up run, shown as "
        "median (min to max); `results.json` has every run's value.",
        "",
    ]
    if runs < 5:
        lines += [f"**Fewer than 5 runs ({runs}): a smoke test, not figures to quote.**", ""]
    lines += _machine(results)
    if "scaling" in results:
        lines += _scaling(results)
    if "replay" in results:
        lines += _replay(results["replay"], "Replay: full speed and paced")
    if "compare_rules" in results:
        lines += _compare(results["compare_rules"])
    if "accuracy" in results:
        lines += _accuracy(results["accuracy"])
    if "peer" in results:
        lines += _peer(results["peer"])
    elif results["kind"] == "suite":
        lines += [
            "## Side by side with Alertmanager",
            "",
            "Not run: pass `--peer alertmanager` (needs `alertmanager` on PATH).",
            "",
        ]
    lines += ["## Charts", ""]
    charts = results["charts"]
    if isinstance(charts, str):
        lines += [charts, ""]
    else:
        lines += [f"![{Path(c).stem}]({c})" for c in charts] + [""]
    return "\n".join(lines)


def _finite(value: Any) -> Any:
    """``value`` with every NaN or infinity replaced by None, so the JSON is standard."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def write_report(results: Mapping[str, Any], out: Path) -> None:
    """Write ``report.md`` and ``results.json`` into ``out``."""
    document = json.dumps(_finite(results), indent=2, default=str, allow_nan=False)
    (out / "results.json").write_text(document + "\n")
    (out / "report.md").write_text(render(results))
