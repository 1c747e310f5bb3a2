"""``correlator demo``: the bundled storm replayed, its incidents shown.

The storm is a recorded switch failure over a small three-tier network,
with Prometheus-style resends and background noise (see ``fixtures/``).
"""

from __future__ import annotations

from importlib import resources
from typing import TextIO

from correlator.incident import IncidentEvent
from correlator.replay import replay
from correlator.topology import load_topology


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


def run_demo(out: TextIO) -> int:
    """Replay the bundled storm and print its incidents and the summary."""
    data = resources.files("correlator") / "data"
    with (
        resources.as_file(data / "demo-cmdb.json") as cmdb,
        resources.as_file(data / "demo-storm.jsonl") as storm,
    ):
        topology = load_topology(cmdb)
        result = replay(storm, topology=topology)
        summary, events = result.summary, result.events
    print(f"Replayed the bundled storm over a {topology.n_cis}-CI network.\n", file=out)
    print(render_incidents(events), file=out)
    top = max(_final_states(events), key=lambda e: e.alert_count, default=None)
    if top is not None:
        print(f"\nLargest incident: {top.explanation}.", file=out)
    print("\n" + summary.render(), file=out)
    return 0
