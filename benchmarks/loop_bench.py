"""Correlation-loop benchmark: what one step of the daemon's loop costs, per batch and per alert.

The daemon's loop thread alone owns the correlation state, so its step
(``Daemon._process``: wire ids to vocabulary ids, normalization, the event
log's append, both rule levels, correlation, the outbox and the metrics) caps
what the whole daemon can take. A step has a fixed cost per batch besides its
cost per alert, and at moderate rates batches are small (the loop closes one
every ``batch.max_wait``, 5 ms by default), so both are measured here, in
process, without the sockets and thread hand-offs of ``ingest_bench.py``.

A seeded storm over a generated 20,000-CI topology is sent through the
decode process's own code (``correlator.client``'s Arrow messages, decoded
with wire label ids) in bursts of each ``--sizes`` alerts, decoded before the
clock starts. A daemon built as ``ingest_bench.py`` configures it (shipped
rules, settle 0, event time on arrival, the event log on, a JSON-lines sink,
no sockets) then runs one step per burst, event time advancing 1 ms per
burst; the first pass over the storm warms the kernels and is not timed.
Small bursts go over the storm's head only (``--max-batches`` of them per
pass). It prints, per burst size, the median over ``--runs`` passes of the loop's
time per batch and per alert; then what fingerprinting the whole storm in
batches of each size costs per alert, hashing every label set's strings and
through the normalizer's memo of the label sets seen before.

With ``--parts``, the step's parts (``PARTS``: the wire-id translation,
normalization, the event log's append, both rule levels, grouping,
correlation, delivery, and the kernels inside them) are timed in the timed
passes of the largest size and printed in ms per batch. A part's time
includes the parts it calls; the timing wrappers add a few microseconds.

    python benchmarks/loop_bench.py [--alerts 200000] [--sizes 10,100,1000,10000]
        [--runs 3] [--max-batches 2000] [--no-event-log] [--parts]
"""

from __future__ import annotations

import argparse
import importlib
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path

import numpy as np
import pyarrow as pa

from correlator.batch import Normalizer
from correlator.client import arrow_message
from correlator.daemon.config import parse_config
from correlator.daemon.frames import decode_frames, frame_from_parts
from correlator.daemon.receiver import wire_decoded
from correlator.daemon.service import Daemon, _Arrival
from correlator.daemon.wire import LabelCoder
from correlator.decode import Decoded
from correlator.fingerprint import FingerprintMemo, fingerprint_columns
from correlator.scenarios import storm, storm_table, write_cmdb
from correlator.vocab import Vocabulary

STEP_NS = 1_000_000  # event time between two bursts
PARTS = (
    ("correlator.daemon.wire", "LabelTranslator.labels"),
    ("correlator.batch", "Normalizer.normalize_interned"),
    ("correlator.fingerprint", "FingerprintMemo.fingerprints"),
    ("correlator.batch", "_label_fields"),
    ("correlator.eventlog", "EventLog.append"),
    ("correlator.rules.first_level", "FirstLevel.process"),
    ("correlator.rules.second_level", "SecondLevel.process"),
    ("correlator.rules.tables", "MatchProgram.match_mask"),
    ("correlator.rules.second_kernel", "run"),
    ("correlator.rules.second_level", "Grouping.keys"),
    ("correlator.correlate.engine", "Correlator.process"),
    ("correlator.correlate.kernel", "correlate"),
    ("correlator.daemon.service", "Daemon._logged"),
    ("correlator.daemon.service", "Daemon._deliver"),
)
"""The loop step's parts ``--parts`` times: (module, function or Class.method)."""


def bursts(table: pa.Table, size: int, coder: LabelCoder) -> list[Decoded]:
    """``table`` as the decode process hands it to the loop: bursts of ``size`` alerts
    with wire label ids, each carrying the strings new to the loop."""
    out = []
    for start in range(0, table.num_rows - size + 1, size):
        frame = frame_from_parts([b"arrow", arrow_message(table.slice(start, size))])
        decoded = decode_frames([frame], max_bytes=1 << 30, labels=coder)
        out.append(wire_decoded(decoded, coder.take_new()))
    return out


def daemon(folder: Path, cmdb: dict, *, event_log: bool) -> Daemon:
    """A daemon configured as ``ingest_bench.py``'s, never started: its loop step is
    called here directly."""
    write_cmdb(cmdb, folder / "cmdb.json")
    config = parse_config(
        {
            "zmq": {"pull": []},
            "http": {"listen": ""},
            "event_time": "arrival",
            "topology": str(folder / "cmdb.json"),
            "correlation": {"settle": "0s"},
            "state_dir": str(folder / "state"),
            "event_log": {"enabled": event_log},
            "sinks": [
                {"name": "incidents", "type": "jsonl", "options": {"path": str(folder / "i.jsonl")}}
            ],
        }
    )
    return Daemon(config)


def part_label(module_name: str, name: str) -> str:
    """``Class.method``, or ``module.function`` for a module's function."""
    return name if "." in name else f"{module_name.rsplit('.', 1)[-1]}.{name}"


@contextmanager
def timed_parts(parts: tuple[tuple[str, str], ...], totals: dict[str, float]) -> Iterator[None]:
    """While the block runs, every call of each part adds its wall time to ``totals``.

    A module's functions are looked up when called, so replacing the module's
    attribute catches the calls from other modules (not those from compiled code).
    """
    undo = []
    for module_name, name in parts:
        label = part_label(module_name, name)
        owner = importlib.import_module(module_name)
        *path, attribute = name.split(".")
        for step in path:
            owner = getattr(owner, step)
        original = owner.__dict__[attribute]

        def timed(*args, _original=original, _label=label, **kwargs):
            started = time.perf_counter()
            try:
                return _original(*args, **kwargs)
            finally:
                totals[_label] = totals.get(_label, 0.0) + time.perf_counter() - started

        setattr(owner, attribute, timed)
        undo.append((owner, attribute, original))
    try:
        yield
    finally:
        for owner, attribute, original in reversed(undo):
            setattr(owner, attribute, original)


def measure(
    table: pa.Table,
    cmdb: dict,
    size: int,
    runs: int,
    *,
    event_log: bool,
    parts: dict[str, float] | None = None,
) -> list[float]:
    """Seconds of loop time per pass over ``table`` in bursts of ``size``, one per run
    (after an untimed first pass); with ``parts``, the timed passes' time in each of
    ``PARTS`` is added to it."""
    coder = LabelCoder()
    passes = [bursts(table, size, coder) for _ in range(runs + 1)]
    with tempfile.TemporaryDirectory(prefix="correlator-loop-") as folder:
        target = daemon(Path(folder), cmdb, event_log=event_log)
        clock = time.time_ns()
        seconds = []
        try:
            for number, work in enumerate(passes):
                arrivals = []
                for decoded in work:
                    clock += STEP_NS
                    arrivals.append(_Arrival(decoded, clock, "zmq", "arrow"))
                with timed_parts(PARTS, parts) if number and parts is not None else nullcontext():
                    started = time.perf_counter()
                    for arrival in arrivals:
                        target._process([arrival])
                    if number:
                        seconds.append(time.perf_counter() - started)
        finally:
            if target.event_log is not None:
                target.event_log.close()
            target.dispatcher.close()
    return seconds


def fingerprint_costs(table: pa.Table, size: int) -> tuple[float, float]:
    """Seconds per alert to fingerprint ``table`` in batches of ``size``: hashing every
    label set's strings (``fingerprint_columns``), and through the normalizer's memo
    (warmed by one pass, as a daemon's is by the alerts it saw before)."""
    vocab = Vocabulary()
    ptr, keys, values = Normalizer(vocab).intern_labels(table.column("labels"))
    rank = vocab.name_rank(keys)
    text, offsets = vocab.byte_buffer()
    memo = FingerprintMemo()
    rows = len(ptr) - 1

    def seconds(fingerprints: Callable[..., np.ndarray]) -> float:
        started = time.perf_counter()
        for lo in range(0, rows - size + 1, size):
            a, b = ptr[lo], ptr[lo + size]
            fingerprints(ptr[lo : lo + size + 1] - a, keys[a:b], values[a:b], rank, text, offsets)
        return (time.perf_counter() - started) / (rows - rows % size)

    seconds(fingerprint_columns)
    seconds(memo.fingerprints)
    return seconds(fingerprint_columns), seconds(memo.fingerprints)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, default=200_000, help="storm size")
    parser.add_argument("--cis", type=int, default=20_000, help="topology size")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sizes", default="10,100,1000,10000", help="alerts per burst")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--max-batches", type=int, default=2_000, help="bursts per pass, at most")
    parser.add_argument("--no-event-log", action="store_true", help="turn the event log off")
    parser.add_argument(
        "--parts", action="store_true", help="time the step's parts at the largest size"
    )
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]

    generated = storm(args.alerts, args.cis, args.seed)
    table = storm_table(generated).drop_columns(["receivedAt", "status"])
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    print(
        f"storm: {table.num_rows:,} alerts over {args.cis:,} CIs, shipped rules, "
        f"event log {'off' if args.no_event_log else 'on'}; medians of {args.runs} passes"
    )
    print(f"{'alerts per batch':>16}  {'ms per batch':>12}  {'us per alert':>12}")
    parts: dict[str, float] = {}
    parts_batches = 0  # batches timed with their parts
    for size in sizes:
        # Small bursts over the storm's head only: a pass stays a few seconds long.
        part = table.slice(0, min(table.num_rows, size * args.max_batches))
        timings = measure(
            part,
            generated.cmdb,
            size,
            args.runs,
            event_log=not args.no_event_log,
            parts=parts if args.parts and size == max(sizes) else None,
        )
        seconds = statistics.median(timings)
        batches = part.num_rows // size
        if args.parts and size == max(sizes):
            parts_batches = batches * len(timings)
        print(
            f"{size:>16,}  {seconds / batches * 1e3:>12.3f}  "
            f"{seconds / (batches * size) * 1e6:>12.3f}",
            flush=True,
        )
    if parts:
        print(f"\nparts of the step at {max(sizes):,} alerts per batch, ms per batch (all runs)")
        for module_name, name in PARTS:
            label = part_label(module_name, name)
            if label in parts:
                print(f"{label:>36}  {parts[label] / parts_batches * 1e3:>8.3f}")
    print("\nfingerprints, us per alert (one core): hashing the strings each time / memo")
    for size in sizes:
        hashed, memo = fingerprint_costs(table, size)
        print(f"{size:>16,}  {hashed * 1e6:>12.3f}  {memo * 1e6:>12.3f}")


if __name__ == "__main__":
    sys.exit(main())
