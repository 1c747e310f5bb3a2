"""Sink-path benchmark: the outbox's write rate, and that a slow sink never slows correlation.

1. Outbox append: incident events of realistic size (the events a correlated
   storm emits, their ids varied, replicated to ``--events``) appended in
   batches of ``--append-batch``, for ``synchronous=NORMAL`` and ``FULL``;
   events per second, encoding and routing included.
2. Correlation with and without a sink: a ``--alerts`` storm (from
   ``correlator.scenarios.bulk``) normalized and correlated in batches of
   ``--batch`` alerts, as the daemon's loop does: (a) with the events
   dropped, (b) emitted into the outbox with no sink (the append cost
   alone), (c) emitted into the outbox while a webhook sink delivers them to
   a receiver on 127.0.0.1 (another process) that answers in ``--latency``
   ms. Median and minimum over ``--runs`` runs of each, alternated. The
   delivery thread's backlog at the end shows the outbox absorbing what the
   receiver could not take yet.

    python benchmarks/sink_bench.py [--alerts 100000] [--events 100000] [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import socket
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from multiprocessing.connection import Connection
from pathlib import Path

import msgspec
import numpy as np

from correlator.batch import Normalizer
from correlator.correlate.engine import Correlator
from correlator.incident import IncidentEvent
from correlator.scenarios.bulk import storm, storm_table
from correlator.sinks import Dispatcher, Outbox, Router, parse_sink_specs
from correlator.sinks.registry import build_sinks
from correlator.topology import Topology, load_topology
from correlator.vocab import Vocabulary


def serve_slowly(latency: float, port: Connection) -> None:
    """A webhook receiver on 127.0.0.1 answering every POST after ``latency`` seconds.

    It runs in its own process, as a real receiver would, so its threads do
    not compete with correlation for this process's interpreter lock.
    """

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self) -> None:
            super().setup()
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            time.sleep(latency)
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            """Quiet."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    port.send(server.server_port)
    server.serve_forever()


def correlate(
    table, topology: Topology, batch: int, emit: Callable[[Sequence[IncidentEvent]], object]
) -> tuple[float, int]:
    """Correlate ``table`` batch by batch, emitting each batch's events; (seconds, events)."""
    vocab = Vocabulary()
    normalizer = Normalizer(vocab, topology)
    correlator = Correlator(vocab, topology)
    rows = np.arange(table.num_rows, dtype=np.int64)
    count = 0
    started = time.perf_counter()
    for start in range(0, table.num_rows, batch):
        alerts, _ = normalizer.normalize(table.slice(start, batch), rows[start : start + batch])
        events = correlator.process(alerts).events + correlator.advance(int(alerts.ts.max()))
        emit(events)
        count += len(events)
    events = correlator.flush()
    emit(events)
    return time.perf_counter() - started, count + len(events)


def realistic_events(sample: list[IncidentEvent], total: int) -> list[IncidentEvent]:
    """``total`` events cycling through ``sample``, each copy of an incident with its own id."""
    return [
        msgspec.structs.replace(
            sample[i % len(sample)], id=f"{sample[i % len(sample)].id}-{i // len(sample)}"
        )
        for i in range(total)
    ]


def bench_outbox(events: list[IncidentEvent], append_batch: int, synchronous: str) -> float:
    """Events per second appended to a new outbox routing everything to one sink."""
    with tempfile.TemporaryDirectory() as folder:
        router = Router(parse_sink_specs([{"name": "tickets"}]))
        outbox = Outbox(Path(folder) / "outbox.db", router=router, synchronous=synchronous)
        started = time.perf_counter()
        for start in range(0, len(events), append_batch):
            outbox.append(events[start : start + append_batch])
        seconds = time.perf_counter() - started
        outbox.close()
    return len(events) / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, default=100_000)
    parser.add_argument("--cis", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--batch", type=int, default=1_000, help="alerts per correlation batch")
    parser.add_argument("--events", type=int, default=100_000, help="events for the outbox run")
    parser.add_argument("--append-batch", type=int, default=500, help="events per append")
    parser.add_argument("--latency", type=float, default=50.0, help="receiver latency, ms")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    scenario = storm(args.alerts, args.cis, seed=args.seed)
    table = storm_table(scenario)
    with tempfile.TemporaryDirectory() as folder:
        cmdb = Path(folder) / "cmdb.json"
        cmdb.write_text(json.dumps(scenario.cmdb))
        topology = load_topology(cmdb)
    sample: list[IncidentEvent] = []
    correlate(table, topology, args.batch, sample.extend)  # warm-up, and the realistic events
    sizes = [len(msgspec.json.encode(e)) for e in sample]
    print(
        f"{os.cpu_count()} cores; storm of {table.num_rows:,} alerts over {topology.n_cis:,} CIs"
        f" -> {len(sample):,} incident events (JSON {statistics.median(sizes):,.0f} B median,"
        f" {statistics.fmean(sizes):,.0f} B mean, {max(sizes):,} B max)"
    )

    events = realistic_events(sample, args.events)
    for synchronous in ("NORMAL", "FULL"):
        rates = [bench_outbox(events, args.append_batch, synchronous) for _ in range(args.runs)]
        print(
            f"outbox append, synchronous={synchronous}: median {statistics.median(rates):,.0f}"
            f" events/s (min {min(rates):,.0f}) for {len(events):,} events in batches of"
            f" {args.append_batch}"
        )

    parent, child = multiprocessing.Pipe()
    receiver = multiprocessing.Process(
        target=serve_slowly, args=(args.latency / 1000, child), daemon=True
    )
    receiver.start()
    url = f"http://127.0.0.1:{parent.recv()}/hook"
    modes = {
        "no sink": None,
        "outbox, no sink": [],
        f"outbox + webhook answering in {args.latency:g} ms": [
            {"name": "hook", "type": "webhook", "options": {"url": url}}
        ],
    }
    timings: dict[str, list[float]] = {mode: [] for mode in modes}
    backlogs: list[int] = []
    for _ in range(args.runs):
        for mode, config in modes.items():
            if config is None:
                seconds, emitted = correlate(table, topology, args.batch, lambda events: None)
                timings[mode].append(seconds)
                continue
            with tempfile.TemporaryDirectory() as folder:
                specs = parse_sink_specs(config) if config else []
                outbox = Outbox(Path(folder) / "outbox.db", router=Router(specs))
                dispatcher = Dispatcher(outbox, build_sinks(specs))
                dispatcher.start()
                seconds, emitted = correlate(table, topology, args.batch, dispatcher.emit)
                timings[mode].append(seconds)
                if config:
                    backlogs.append(emitted - dispatcher.health()["hook"].cursor)
                dispatcher.close()
    receiver.terminate()
    for mode, values in timings.items():
        print(
            f"correlation, {mode}: median {statistics.median(values):.3f} s"
            f" (min {min(values):.3f}, max {max(values):.3f}) for {table.num_rows:,} alerts,"
            f" {emitted:,} events"
        )
    print(
        f"webhook backlog when correlation ended: {statistics.median(backlogs):,.0f} events,"
        f" drained afterwards (delivering inline would take {emitted * args.latency / 1000:,.1f} s)"
    )


if __name__ == "__main__":
    main()
