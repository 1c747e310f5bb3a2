"""Shared helpers for the daemon tests: start daemons on free loopback ports, feed, observe.

In process, ``running_daemon`` starts a ``Daemon`` on ``tcp://127.0.0.1:0``
and ``127.0.0.1:0`` with its state (event log, outbox, snapshot, dead
letters, the JSON-lines sink) in one folder, and always stops it. As a
subprocess, ``DaemonProcess`` runs ``python -m correlator.cli run --config``
the way an operator would, learns its ports from its startup log line, and
is killed if a test leaves it running. Both run on the recordings' own event
times (``event_time: source``), so their incident streams are deterministic.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import yaml
import zmq
from prometheus_client.parser import text_string_to_metric_families

import correlator
from correlator.daemon.config import DaemonConfig, ZmqConfig, load_config
from correlator.daemon.service import Daemon
from correlator.decode import read_recording
from correlator.incident import IncidentEvent, encode_event
from correlator.pipeline import Pipeline, shipped_rules
from correlator.topology import load_topology

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
CMDB = FIXTURES / "network-small.cmdb.json"
SINK_FILE = "incidents.jsonl"
_EVENT = msgspec.json.Decoder(IncidentEvent)
_STARTED = re.compile(r"correlator started: zmq (\S+), http \('([\d.]+)', (\d+)\)")


# -- recordings and sink output ------------------------------------------------------------


def fixture_lines(name: str) -> list[bytes]:
    """The recorded alerts of ``fixtures/NAME.jsonl``, one JSON object (as bytes) each."""
    return [line for line in (FIXTURES / f"{name}.jsonl").read_bytes().splitlines() if line]


def truth(name: str) -> dict[str, Any]:
    """The ground truth of ``fixtures/NAME.jsonl``."""
    return json.loads((FIXTURES / f"{name}.truth.json").read_text())


def expected_stream(name: str, count: int | None = None) -> bytes:
    """What a daemon's jsonl sink holds once it was fed ``fixtures/NAME.jsonl`` and stopped.

    The recording correlated in one batch with the daemon's default (shipped)
    rules, as replay does, but without the
    final flush: a stop leaves settling incidents and coalesced updates in
    the snapshot instead of forcing them out. Correlation does not depend on
    batch boundaries, so the daemon's stream must equal this byte for byte.
    ``count`` takes only the first alerts of the recording.
    """
    topology = load_topology(CMDB)
    table = read_recording(FIXTURES / f"{name}.jsonl").table
    if count is not None:
        table = table.slice(0, count)
    pipeline = Pipeline.from_paths(topology, shipped_rules())
    rows = np.arange(table.num_rows, dtype=np.int64)
    batch, _ = pipeline.normalizer.normalize(table, rows)
    events = pipeline.process(batch)[1].events
    return b"".join(encode_event(event) + b"\n" for event in events)


def decode_events(data: bytes) -> list[IncidentEvent]:
    """JSON-lines incident events, decoded."""
    return [_EVENT.decode(line) for line in data.splitlines() if line]


def read_sink(path: Path) -> list[IncidentEvent]:
    """The incident events a JSON-lines sink wrote, in order (none if the file is missing)."""
    return decode_events(path.read_bytes()) if path.exists() else []


def event_key(event: IncidentEvent) -> tuple[str, str, int]:
    """What identifies one incident event for a receiver: id, kind and version."""
    return (event.id, event.event, event.version)


def final_states(events: Sequence[IncidentEvent]) -> dict[str, IncidentEvent]:
    """Each incident's last event, by id."""
    latest: dict[str, IncidentEvent] = {}
    for event in events:
        latest[event.id] = event
    return latest


# -- configuration -------------------------------------------------------------------------


def daemon_config(state_dir: Path, **overrides: Any) -> DaemonConfig:
    """Defaults on free loopback ports, source event time, the small CMDB, one jsonl sink.

    Everything the daemon writes lives in ``state_dir``; the sink writes
    ``state_dir / SINK_FILE``. The 50 ms heartbeat keeps the idle loop quick
    to serve ``Daemon.call`` (a reload, ``wait_rows``'s barrier), which it
    does only between two waits. ``overrides`` replace ``DaemonConfig`` fields.
    """
    base = replace(
        load_config(None),
        zmq=ZmqConfig(pull=("tcp://127.0.0.1:0",)),
        http_listen="127.0.0.1:0",
        heartbeat=50_000_000,
        event_time="source",
        topology=str(CMDB),
        state_dir=str(state_dir),
        sinks=(
            {
                "name": "incidents",
                "type": "jsonl",
                "options": {"path": str(state_dir / SINK_FILE)},
            },
        ),
    )
    return replace(base, **overrides)


def config_yaml(state_dir: Path, **sections: Any) -> dict[str, Any]:
    """The YAML mapping equivalent of ``daemon_config`` (for ``correlator run --config``)."""
    raw: dict[str, Any] = {
        "zmq": {"pull": ["tcp://127.0.0.1:0"]},
        "http": {"listen": "127.0.0.1:0"},
        "heartbeat": "50ms",
        "event_time": "source",
        "topology": str(CMDB),
        "state_dir": str(state_dir),
        "sinks": [
            {"name": "incidents", "type": "jsonl", "options": {"path": str(state_dir / SINK_FILE)}}
        ],
    }
    raw.update(sections)
    return raw


def write_config(path: Path, raw: dict[str, Any]) -> Path:
    """Write ``raw`` as YAML to ``path`` and return the path."""
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


# -- waiting -------------------------------------------------------------------------------


def wait_for(condition: Callable[[], bool], timeout: float = 30.0, what: str = "condition") -> None:
    """Poll ``condition`` every 10 ms until it holds; fail the test after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            msg = f"timed out after {timeout:.0f} s waiting for {what}"
            raise AssertionError(msg)
        time.sleep(0.01)


def wait_rows(daemon: Daemon, rows: int, timeout: float = 30.0) -> None:
    """Wait until the in-process daemon has correlated ``rows`` input rows (good and bad).

    ``rows_processed`` counts a batch when the loop takes it up, before it is
    correlated; a no-op run on the loop thread then waits for that batch to end.
    """
    wait_for(lambda: daemon.rows_processed >= rows, timeout, f"{rows} rows processed")
    daemon.call(lambda: None)


# -- in-process daemon ---------------------------------------------------------------------


@contextlib.contextmanager
def running_daemon(config: DaemonConfig, **kwargs: Any) -> Iterator[Daemon]:
    """A started ``Daemon``; stopped on exit (drain, flush, snapshot), even if the test fails."""
    daemon = Daemon(config, **kwargs)
    try:
        daemon.start()
        yield daemon
    finally:
        daemon.stop()


@contextlib.contextmanager
def push_socket(endpoint: str, hwm: int = 200_000) -> Iterator[zmq.Socket]:
    """A ZeroMQ PUSH socket connected to ``endpoint``; closed (with 5 s linger) on exit."""
    context = zmq.Context.instance()
    sock = context.socket(zmq.PUSH)
    sock.setsockopt(zmq.SNDHWM, hwm)
    sock.setsockopt(zmq.LINGER, 5000)
    sock.connect(endpoint)
    try:
        yield sock
    finally:
        sock.close()


def send_lines(endpoint: str, lines: Sequence[bytes], fmt: str = "json") -> None:
    """Send each recorded alert as its own ``[fmt, line]`` message, the way a producer
    forwarding alerts one at a time would; returns once all are handed to ZeroMQ."""
    with push_socket(endpoint) as sock:
        for line in lines:
            sock.send_multipart([fmt.encode(), line])


# -- HTTP ----------------------------------------------------------------------------------


def http(
    address: tuple[str, int], method: str, path: str, body: bytes | None = None
) -> tuple[int, bytes]:
    """One request to the daemon's HTTP API: the status and body (errors included)."""
    host, port = address
    request = urllib.request.Request(f"http://{host}:{port}{path}", data=body, method=method)
    if body is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def metric(text: str, name: str, **labels: str) -> float:
    """The sum of the samples called ``name`` whose labels include ``labels``."""
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


def scrape(address: tuple[str, int]) -> str:
    """The daemon's ``/metrics`` page."""
    status, body = http(address, "GET", "/metrics")
    assert status == 200, body
    return body.decode()


def open_incidents(address: tuple[str, int]) -> list[IncidentEvent]:
    """``GET /api/v1/incidents``: the latest event of each open incident."""
    status, body = http(address, "GET", "/api/v1/incidents")
    assert status == 200, body
    reply = msgspec.json.decode(body, type=dict[str, Any])
    return [msgspec.convert(item, IncidentEvent) for item in reply["data"]]


# -- subprocess daemon ---------------------------------------------------------------------


class DaemonProcess:
    """``correlator run --config CONFIG`` as a child process, its log in ``log_path``.

    ``start`` waits for the startup line and reads the bound ZeroMQ endpoint
    and HTTP address from it (the config asks for port 0, so parallel tests
    never collide). ``terminate``/``kill`` send SIGTERM/SIGKILL and reap the
    child; ``close`` kills whatever is still running.
    """

    def __init__(self, config_path: Path, log_path: Path) -> None:
        self.config_path = config_path
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None
        self.endpoint = ""
        self.http_address: tuple[str, int] = ("127.0.0.1", 0)

    def start(self, timeout: float = 60.0) -> DaemonProcess:
        """Spawn the daemon and wait until it is listening."""
        src = str(Path(correlator.__file__).resolve().parents[1])
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
        command = [sys.executable, "-m", "correlator.cli", "run", "--config"]
        with self.log_path.open("ab") as log:
            offset = log.tell()
            self.process = subprocess.Popen(
                [*command, str(self.config_path), "--log-level", "info"],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )
        found: list[re.Match[str]] = []

        def started() -> bool:
            assert self.process is not None
            if self.process.poll() is not None:
                msg = f"daemon exited with {self.process.returncode}:\n{self.log()}"
                raise AssertionError(msg)
            text = self.log_path.read_bytes()[offset:].decode(errors="replace")
            found.extend(m for m in [_STARTED.search(text)] if m)
            return bool(found)

        wait_for(started, timeout, "the daemon to start")
        match = found[0]
        self.endpoint = match.group(1).rstrip(",")
        self.http_address = (match.group(2), int(match.group(3)))
        return self

    def log(self) -> str:
        """Everything the daemon logged so far."""
        return self.log_path.read_text(errors="replace")

    def received(self) -> float:
        """``correlator_events_received_total`` (every input row, good or bad)."""
        return metric(scrape(self.http_address), "correlator_events_received_total")

    def wait_received(self, rows: int, timeout: float = 30.0) -> None:
        """Wait until the daemon has taken up ``rows`` input rows.

        The counter moves when the loop takes a batch up, before it is
        correlated; a stop drains it, and a reload (served between two
        batches) waits for it.
        """
        wait_for(lambda: self.received() >= rows, timeout, f"{rows} rows received")

    def _signal(self, signum: int, timeout: float) -> int:
        assert self.process is not None
        self.process.send_signal(signum)
        return self.process.wait(timeout)

    def terminate(self, timeout: float = 60.0) -> int:
        """SIGTERM (drain, flush, snapshot) and wait for the exit status."""
        return self._signal(signal.SIGTERM, timeout)

    def kill(self) -> int:
        """SIGKILL: no drain, no flush, no snapshot."""
        return self._signal(signal.SIGKILL, 30.0)

    def close(self) -> None:
        """Kill the child if it still runs (a failed test must not leave it behind)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(30)


@contextlib.contextmanager
def daemon_process(config_path: Path, log_path: Path) -> Iterator[DaemonProcess]:
    """A started ``DaemonProcess``, killed on exit if still running."""
    child = DaemonProcess(config_path, log_path)
    try:
        yield child.start()
    finally:
        child.close()
