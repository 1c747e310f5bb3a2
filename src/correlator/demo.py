"""``correlator demo``: the bundled storm sent through the real daemon, its incidents shown.

The storm is a recorded switch failure over a small three-tier network,
with Prometheus-style resends and background noise (see ``fixtures/``). The
demo starts the daemon in process (ZeroMQ and HTTP on free loopback ports, a
temporary state folder), sends the storm over ZeroMQ the way producers do,
prints incidents as they form, and the metrics at the end. The daemon runs
on the recording's own event times, so the incidents equal a replay's.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import replace
from importlib import resources
from pathlib import Path
from typing import TextIO

import msgspec

from correlator.client import Client
from correlator.daemon.config import ZmqConfig, load_config
from correlator.daemon.service import Daemon
from correlator.incident import IncidentEvent


def _final_states(events: list[IncidentEvent]) -> list[IncidentEvent]:
    latest: dict[str, IncidentEvent] = {}
    for event in events:
        latest[event.id] = event
    return [e for e in latest.values() if e.reason != "merged_into"]


def render_incidents(events: list[IncidentEvent], *, limit: int = 12) -> str:
    """The incidents' last states, largest first, as a table for a terminal."""
    final = sorted(_final_states(events), key=lambda e: (-e.alert_count, e.first_seen, e.id))
    lines = [
        f"{'incident':<21} {'state':<8} {'root cause':<28} {'alerts':>6} {'CIs':>4}  "
        "business services"
    ]
    for event in final[:limit]:
        root = event.root_cause
        cause = f"{root.ci or '?'} ({root.type or 'not in CMDB'})"
        state = "resolved" if event.event == "resolve" else "open"
        services = ", ".join(event.affected_services) or "-"
        lines.append(
            f"{event.id:<21} {state:<8} {cause:<28} {event.alert_count:>6} "
            f"{event.ci_count:>4}  {services}"
        )
    if len(final) > limit:
        lines.append(f"... and {len(final) - limit} smaller incidents")
    return "\n".join(lines)


def _live_line(event: IncidentEvent) -> str | None:
    root = event.root_cause
    cause = f"{root.ci} ({root.type or 'not in CMDB'})"
    if event.event == "open":
        return f"  {event.at}  OPEN     {event.id}  {cause}: {event.alert_count} alert(s)"
    if event.event == "resolve" and event.reason == "merged_into":
        return f"  {event.at}  MERGED   {event.id}  into {event.merged_into}"
    if event.event == "resolve":
        return f"  {event.at}  RESOLVED {event.id}  {cause} after {event.alert_count} alerts"
    return None


def run_demo(out: TextIO) -> int:
    """Send the bundled storm through an in-process daemon; print incidents and metrics."""
    data = resources.files("correlator") / "data"
    events: list[IncidentEvent] = []

    def show(batch: list[IncidentEvent]) -> None:
        events.extend(batch)
        for event in batch:
            line = _live_line(event)
            if line:
                print(line, file=out, flush=True)

    with (
        resources.as_file(data / "demo-cmdb.json") as cmdb,
        resources.as_file(data / "demo-storm.jsonl") as storm,
        tempfile.TemporaryDirectory(prefix="correlator-demo-") as state,
    ):
        config = replace(
            load_config(None),
            zmq=ZmqConfig(pull=("tcp://127.0.0.1:0",)),
            http_listen="127.0.0.1:0",
            event_time="source",
            topology=str(cmdb),
            state_dir=state,
            sinks=(
                {
                    "name": "incidents",
                    "type": "jsonl",
                    "options": {"path": str(Path(state) / "incidents.jsonl")},
                },
            ),
        )
        alerts = [msgspec.json.decode(line) for line in Path(storm).read_bytes().splitlines()]
        daemon = Daemon(config, on_events=show)
        daemon.start()
        print(
            f"daemon up: ZeroMQ {daemon.endpoints[0]}, HTTP {daemon.http_address}; "
            f"sending {len(alerts):,} recorded alerts\n",
            file=out,
        )
        started = time.perf_counter()
        with Client(daemon.endpoints[0]) as client:
            client.send(alerts)
        deadline = time.monotonic() + 60
        while daemon.rows_processed < len(alerts) and time.monotonic() < deadline:
            time.sleep(0.01)
        seconds = time.perf_counter() - started
        daemon.stop()
        n_cis = daemon.topology.n_cis if daemon.topology else 0
    print(f"\nThe storm over a {n_cis}-CI network, as incidents:\n", file=out)
    print(render_incidents(events), file=out)
    top = max(_final_states(events), key=lambda e: e.alert_count, default=None)
    if top is not None:
        print(f"\nLargest incident: {top.explanation}.", file=out)
    print("\n" + _metrics_summary(daemon, len(alerts), seconds), file=out)
    return 0


def _metrics_summary(daemon: Daemon, sent: int, seconds: float) -> str:
    registry = daemon.metrics.registry

    def total(name: str, **labels: str) -> int:
        value = 0.0
        for metric in registry.collect():
            for sample in metric.samples:
                matches = all(sample.labels.get(k) == v for k, v in labels.items())
                if sample.name == name and matches:
                    value += sample.value
        return int(value)

    opened = total("correlator_incident_events_total", event="open")
    lines = [
        "metrics:",
        f"  alerts received        {total('correlator_events_received_total'):>8,}",
        f"  rejected               {total('correlator_events_rejected_total'):>8,}",
        f"  dropped (informational){total('correlator_events_dropped_total'):>8,}",
        f"  deduplicated           {total('correlator_events_deduplicated_total'):>8,}",
        f"  incident events        {opened:>8,} open, "
        f"{total('correlator_incident_events_total', event='update'):,} update, "
        f"{total('correlator_incident_events_total', event='resolve'):,} resolve",
        f"  compression            {sent / max(opened, 1):>8,.1f} alerts per incident",
        f"  {sent:,} alerts sent over ZeroMQ and correlated in {seconds:.2f} s "
        "(see benchmarks/ for throughput figures)",
    ]
    return "\n".join(lines)
