"""Ingest benchmark: the running daemon, driven over loopback from a separate process.

Spawns ``python -m correlator.cli run --config <tmp config>`` (settle 0,
event time on arrival, a generated 20,000-CI topology, a JSON-lines sink in
a temporary folder, the event log on as in production) and drives it from
this process, the way producers would:

- ``json``: one Alertmanager alert per ZeroMQ message (``[b"json", payload]``);
- ``json-array``: JSON arrays of 1,000 alerts per ZeroMQ message;
- ``arrow``: Arrow IPC streams of 10,000 alerts per ZeroMQ message, as
  ``correlator.client`` sends them (label strings dictionary-encoded;
  ``--plain-arrow`` sends plain string maps instead);
- ``http``: ``POST /api/v2/alerts`` with 1,000-alert bodies over a few
  keep-alive connections (``http.client``, one thread each);
- ``http-64``: the same with 64-alert bodies, what Prometheus sends (no
  target in issue 5; measured because it is how Prometheus users feed us);
- ``latency``: JSON arrays of 100 alerts every millisecond (100,000 alerts/s
  offered). One alert per message is a probe on a CI never seen before, so
  it opens an incident at once (settle 0); its send time is kept here and
  the incident's line is watched for in the sink file. p50/p99 are from
  send to the incident event written by the sink: decode, correlation,
  outbox and delivery all included.

The alerts are a seeded storm over the topology (switch failures with their
hosts' and services' alerts, resends, resolves and noise) from
``correlator.scenarios``, sent in a loop. A throughput mode sends for a
fixed time and stops the clock when ``correlator_events_received_total``
(counted by the correlation loop once a batch is processed, and read from
``/metrics`` asked for that counter alone) has reached everything sent.
Peak RSS is the ``VmHWM`` of the daemon's processes (the daemon, its
decode process and the fork server), summed, and CPU is theirs too.

    python benchmarks/ingest_bench.py [--seconds 8] [--latency-seconds 6]
        [--latency-batch 100] [--latency-rate 100000]
        [--modes latency,json,json-array,arrow,http,http-64]
        [--backlog 0.25] [--no-event-log] [--plain-arrow] [--keep-state DIR]
        [--py-spy PATH] [--threads]

Before the daemon starts, the ``json`` mode's messages are also sent to a
bare receiver in another process (``zmq_floor``): how many pyzmq carries per
second when nothing is done with them. That floor moves with the host's
speed from hour to hour, and one alert per message cannot go faster, so it
is printed beside the results.

Once the daemon is warm, the median round trip of ``GET /-/healthy`` and
``GET /metrics`` on it, idle, is printed: what a health probe or a scrape
waits for.

``--py-spy PATH`` samples the daemon with that py-spy binary during every
mode and prints, per thread, the functions holding the most samples (the
collapsed stacks stay in the state folder with ``--keep-state``).
``--threads`` prints, per mode, the cores each of the daemon's threads used
(by the names the daemon gives them: ``correlate``, ``decode``,
``eventlog-seal`` ...) and the cores' worth of time each was runnable but
waiting for a CPU: on two cores, what the correlation loop loses to the
others.
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import json
import multiprocessing
import multiprocessing.queues
import os
import platform
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import numpy as np
import pyarrow as pa
import zmq

ROOT = Path(__file__).resolve().parents[1]
if (ROOT / "src" / "correlator").is_dir() and str(ROOT / "src") not in sys.path:
    sys.path.insert(0, str(ROOT / "src"))

from correlator.bench.daemon import metric_total  # noqa: E402
from correlator.bench.storms import api_messages  # noqa: E402
from correlator.client import arrow_message  # noqa: E402
from correlator.scenarios import storm, storm_table, write_cmdb  # noqa: E402

# (mode, what the target is, target alerts/s) from issue 5.
TARGETS: dict[str, tuple[str, float | None]] = {
    "json": ("one JSON alert per message", 200_000),
    "json-array": ("JSON arrays of 1,000", 500_000),
    "arrow": ("Arrow batches of 10,000", 3_000_000),
    "http": ("HTTP POST, 1,000-alert bodies", 100_000),
    "http-64": ("HTTP POST, 64-alert bodies", None),
}
LATENCY_TARGET_MS = 50.0
LATENCY_RATE = 100_000
LATENCY_BATCH = 100
ARRAY_SIZE = 1_000
PROMETHEUS_SIZE = 64  # the most alerts Prometheus's notifier puts in one request
ARROW_SIZE = 10_000
HTTP_CONNECTIONS = 4
# The HTTP senders wait for each answer, so they need no backlog gate; this only sizes it.
HTTP_UNGATED = 100_000
SNDHWM = 10_000
RECEIVED = "correlator_events_received_total"  # counted once the loop processed a batch


# -- the workload ----------------------------------------------------------------------------


@dataclass
class Workload:
    """Pre-encoded messages of every mode, cut from one storm, and its CMDB."""

    cmdb: dict
    singles: list[bytes]
    arrays: list[bytes]
    prometheus: list[bytes]
    arrow: list[bytes]
    alerts: int = field(init=False)

    def __post_init__(self) -> None:
        self.alerts = len(self.singles)


def _rfc3339(ns: int) -> str:
    """Nanoseconds since the epoch as RFC 3339 with milliseconds, the way Prometheus writes."""
    moment = datetime.fromtimestamp(ns / 1e9, tz=UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def build_workload(alerts: int, cis: int, seed: int, *, plain_arrow: bool = False) -> Workload:
    """A seeded storm as Alertmanager API bodies: single alerts, arrays and Arrow streams.

    The Arrow messages are what ``correlator.client`` sends (labels as
    dictionaries), or with ``plain_arrow`` plain string maps.

    Firing messages carry no ``endsAt``; a resolve carries the past ``endsAt``
    the storm gives it, so the daemon sees it resolved, as Alertmanager would.
    """
    generated = storm(alerts, cis, seed)
    singles = api_messages(generated)
    arrays, prometheus = (
        [
            b"[" + b",".join(singles[i : i + size]) + b"]"
            for i in range(0, len(singles) - size + 1, size)
        ]
        for size in (ARRAY_SIZE, PROMETHEUS_SIZE)
    )
    table = storm_table(generated).drop_columns(["receivedAt", "status"])
    arrow = []
    for start in range(0, table.num_rows - ARROW_SIZE + 1, ARROW_SIZE):
        part = table.slice(start, ARROW_SIZE)
        if plain_arrow:
            sink = pa.BufferOutputStream()
            with pa.ipc.new_stream(sink, part.schema) as writer:
                writer.write_table(part)
            arrow.append(sink.getvalue().to_pybytes())
        else:
            arrow.append(arrow_message(part))
    return Workload(generated.cmdb, singles, arrays, prometheus, arrow)


# -- the daemon process ----------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _cpu_seconds(stat: Path) -> float:
    """User plus system CPU seconds from a ``/proc`` ``stat`` file (a process's or a thread's)."""
    fields = stat.read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class DaemonProcess:
    """``correlator run`` in a child process, with its metrics and memory readable from here."""

    def __init__(self, folder: Path, cmdb: dict, *, event_log: bool) -> None:
        self.folder = folder
        self.zmq_port = _free_port()
        self.http_port = _free_port()
        self.sink_path = folder / "incidents.jsonl"
        self._conn: http.client.HTTPConnection | None = None
        self._lock = threading.Lock()
        cmdb_path = folder / "cmdb.json"
        write_cmdb(cmdb, cmdb_path)
        config = {
            "zmq": {"pull": [self.endpoint]},
            "http": {"listen": f"127.0.0.1:{self.http_port}"},
            "event_time": "arrival",
            "topology": str(cmdb_path),
            "correlation": {"settle": "0s"},
            "state_dir": str(folder / "state"),
            "event_log": {"enabled": event_log},
            "sinks": [
                {"name": "incidents", "type": "jsonl", "options": {"path": str(self.sink_path)}}
            ],
        }
        self.config_path = folder / "correlator.yaml"
        self.config_path.write_text(json.dumps(config, indent=2))  # JSON is YAML
        self.log_path = folder / "daemon.log"
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(ROOT / "src"), env.get("PYTHONPATH")) if p
        )
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "correlator.cli",
                    "run",
                    "--config",
                    str(self.config_path),
                    "--log-level",
                    "warning",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=folder,
            )

    @property
    def endpoint(self) -> str:
        return f"tcp://127.0.0.1:{self.zmq_port}"

    @property
    def pid(self) -> int:
        return self.process.pid

    def _get(self, path: str) -> tuple[int, str]:
        """GET ``path`` over one kept-alive connection (polling must not cost a thread each)."""
        with self._lock:
            for attempt in range(2):
                if self._conn is None:
                    self._conn = http.client.HTTPConnection("127.0.0.1", self.http_port, timeout=10)
                try:
                    self._conn.request("GET", path)
                    response = self._conn.getresponse()
                    return response.status, response.read().decode(errors="replace")
                except (OSError, http.client.HTTPException) as exc:
                    self._conn.close()
                    self._conn = None
                    if attempt:
                        return 0, str(exc)
        return 0, "unreachable"

    def round_trip(self, path: str, requests: int = 20) -> float:
        """Median milliseconds of ``GET path`` over the kept-alive connection: what a
        health probe or a scrape waits for its answer."""
        seconds = []
        for _ in range(requests):
            started = time.perf_counter()
            status, _ = self._get(path)
            seconds.append(time.perf_counter() - started)
            if status != 200:
                msg = f"GET {path} answered {status}"
                raise RuntimeError(msg)
        return 1e3 * statistics.median(seconds)

    def wait_ready(self, timeout: float = 120.0) -> None:
        """Block until ``/-/ready`` answers 200; fail with the daemon's log otherwise."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            if self._get("/-/ready")[0] == 200:
                return
            time.sleep(0.1)
        tail = self.log_path.read_text(errors="replace")[-3000:]
        msg = f"daemon not ready after {timeout:.0f} s (exit {self.process.poll()}):\n{tail}"
        raise RuntimeError(msg)

    def counter(self, name: str) -> float:
        """The sum of every sample of the counter ``name`` on ``/metrics``.

        Only that counter is asked for (``name[]``): the whole page costs the
        daemon about a millisecond of CPU, and the backlog gate polls every 10 ms.
        """
        status, text = self._get(f"/metrics?name[]={name}")
        if status != 200:
            msg = f"GET /metrics answered {status}: {text[:200]}"
            raise RuntimeError(msg)
        return metric_total(text, name)

    def received(self) -> int:
        return int(self.counter(RECEIVED))

    def rejected(self) -> int:
        return int(self.counter("correlator_events_rejected_total"))

    def wait_received(self, target: int, timeout: float) -> float | None:
        """``perf_counter`` when the daemon has processed ``target`` alerts, None on timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.received() >= target:
                return time.perf_counter()
            time.sleep(0.01)
        return None

    def pids(self) -> list[int]:
        """The daemon and every process under it (its decode process and the fork server)."""
        children: dict[int, list[int]] = {}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            with suppress(OSError, IndexError, ValueError):
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                children.setdefault(int(stat[1]), []).append(int(entry.name))
        found, todo = [], [self.pid]
        while todo:
            pid = todo.pop()
            found.append(pid)
            todo.extend(children.get(pid, ()))
        return found

    def status_kb(self, key: str) -> int:
        """A ``/proc/<pid>/status`` figure in kB summed over the daemon's processes."""
        total = 0
        for pid in self.pids():
            with suppress(OSError):
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith(key + ":"):
                        total += int(line.split()[1])
        return total

    def reset_peak_rss(self) -> None:
        """Restart ``VmHWM`` from the current RSS (``clear_refs`` 5): each mode gets its own.

        Where that is not permitted, a mode's peak covers every mode before it.
        """
        for pid in self.pids():
            with suppress(OSError):
                Path(f"/proc/{pid}/clear_refs").write_text("5")

    def peak_rss_mib(self) -> float:
        """The peak resident memory since start or the last reset, in MiB, of all its processes."""
        return self.status_kb("VmHWM") / 1024

    def cpu_seconds(self) -> float:
        """User plus system CPU time so far of the daemon's processes (all their threads).

        A process that ended is not counted (the decode process lives as long as the daemon).
        """
        total = 0.0
        for pid in self.pids():
            with suppress(OSError, IndexError):
                total += _cpu_seconds(Path(f"/proc/{pid}/stat"))
        return total

    def thread_times(self) -> dict[tuple[int, int], tuple[str, float, float]]:
        """Per OS thread of the daemon's processes: its name (the daemon names its threads,
        ``correlator.threadnames``), CPU seconds so far and seconds spent runnable but
        waiting for a CPU (``/proc/<pid>/task/<tid>/schedstat``)."""
        out = {}
        for pid in self.pids():
            tids: list[int] = []
            with suppress(OSError):  # a process that ended meanwhile
                tids = [int(t) for t in os.listdir(f"/proc/{pid}/task")]
            for tid in tids:
                task = Path(f"/proc/{pid}/task/{tid}")
                with suppress(OSError, IndexError, ValueError):
                    cpu = _cpu_seconds(task / "stat")
                    waited = int((task / "schedstat").read_text().split()[1]) / 1e9
                    out[pid, tid] = ((task / "comm").read_text().strip(), cpu, waited)
        return out

    def stop(self) -> None:
        """SIGTERM (drain, flush, snapshot), then SIGKILL if it does not exit in time."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@contextmanager
def py_spy(daemon: DaemonProcess, binary: str | None, name: str) -> Iterator[None]:
    """Sample the daemon with py-spy while the block runs (a no-op without a binary).

    Writes collapsed stacks (``profile-<mode>.txt``, one line per stack with
    its sample count, thread names included) for ``summarize_profile``.
    """
    if not binary:
        yield
        return
    out = daemon.folder / f"profile-{name}.txt"
    recorder = subprocess.Popen(
        [
            binary,
            "record",
            "--pid",
            str(daemon.pid),
            "--threads",
            "--subprocesses",
            "--nonblocking",
            "--rate",
            "200",
            "--format",
            "raw",
            "-o",
            str(out),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(0.5)  # let py-spy attach before the traffic starts
    try:
        yield
    finally:
        recorder.send_signal(signal.SIGINT)
        recorder.wait(timeout=60)
        if out.exists():
            print(summarize_profile(out), file=sys.stderr)


@contextmanager
def thread_report(daemon: DaemonProcess, enabled: bool) -> Iterator[None]:
    """Print, per thread name, the cores the daemon's threads used while the block ran and
    the cores' worth of time they were runnable but waited for a CPU (a no-op unless
    ``enabled``). Threads of one name (the HTTP connections) are summed."""
    if not enabled:
        yield
        return
    before, started = daemon.thread_times(), time.perf_counter()
    yield
    after, seconds = daemon.thread_times(), time.perf_counter() - started
    used: dict[str, list[float]] = {}
    for key, (name, cpu, waited) in after.items():
        _, cpu_before, waited_before = before.get(key, (name, 0.0, 0.0))
        totals = used.setdefault(name, [0.0, 0.0])
        totals[0] += (cpu - cpu_before) / seconds
        totals[1] += (waited - waited_before) / seconds
    shown = sorted(((c, w, n) for n, (c, w) in used.items() if c >= 0.005), reverse=True)
    parts = ", ".join(f"{n} {c:.2f} (waited {w:.2f})" for c, w, n in shown)
    print(f"  threads, cores (runqueue wait): {parts}", file=sys.stderr)


def _frame_function(frame: str) -> str:
    """``func (file.py:123)`` as ``func (file.py)``: samples add up per function, not per line."""
    name, _, where = frame.partition(" (")
    return f"{name} ({where.rsplit(':', 1)[0]})" if where else name


def _thread_name(frame: str) -> str:
    """py-spy's ``thread (1234): Thread-7 (process_request_thread)`` without the numbers."""
    name = frame.split("): ", 1)[-1]
    return re.sub(r"Thread-\d+", "Thread-N", name)


def summarize_profile(path: Path, top: int = 12) -> str:
    """Busy samples per thread, and the functions with the most inclusive samples in each.

    py-spy samples only threads that are running (not idle in a wait), at a
    fixed rate, so a thread's share of all samples is its share of the CPU
    the process used.
    """
    per_thread: dict[str, int] = {}
    inclusive: dict[str, dict[str, int]] = {}
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        thread = _thread_name(frames[0])
        per_thread[thread] = per_thread.get(thread, 0) + count
        functions = inclusive.setdefault(thread, {})
        for function in {_frame_function(frame) for frame in frames[1:]}:
            functions[function] = functions.get(function, 0) + count
    grand = sum(per_thread.values()) or 1
    lines = [f"  profile {path.name}: {grand} busy samples"]
    for thread, total in sorted(per_thread.items(), key=lambda kv: -kv[1]):
        if total < 0.03 * grand:
            continue
        lines.append(f"    {thread}: {100 * total / grand:.0f}% of busy samples")
        ranked = sorted(inclusive[thread].items(), key=lambda kv: -kv[1])
        shown = [(f, n) for f, n in ranked if n < total or not f.startswith("Thread.")][:top]
        lines.extend(f"      {100 * n / total:5.1f}%  {function}" for function, n in shown)
    return "\n".join(lines)


# -- the modes -------------------------------------------------------------------------------


@dataclass
class Result:
    """One throughput mode's figures."""

    mode: str
    alerts: int
    seconds: float
    cpu: float
    sender_cpu: float
    complete: bool
    peak_rss: float = 0.0

    @property
    def rate(self) -> float:
        return self.alerts / self.seconds if self.seconds > 0 else 0.0

    @property
    def cpu_per_alert(self) -> float:
        """Daemon CPU microseconds per alert: what a busy machine distorts least."""
        return 1e6 * self.cpu / self.alerts if self.alerts else 0.0


def _own_cpu() -> float:
    """User plus system CPU seconds of this (the sending) process so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _push_socket(context: zmq.Context, endpoint: str) -> zmq.Socket:
    sock = context.socket(zmq.PUSH)
    sock.setsockopt(zmq.SNDHWM, SNDHWM)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(endpoint)
    return sock


class Backlog:
    """Keeps what was sent but not yet processed under ``limit`` alerts.

    Without it a fast sender fills the socket buffers and the daemon's
    queue with seconds of traffic, and the mode measures how long the
    daemon takes to dig out rather than its steady rate. Polls ``/metrics``
    at most every 10 ms, and only when the limit may have been reached.
    """

    def __init__(self, daemon: DaemonProcess, limit: int) -> None:
        self.daemon = daemon
        self.limit = limit
        self.base = daemon.received()
        self.processed = 0

    def wait(self, sent: int, deadline: float) -> None:
        """Block while more than ``limit`` of ``sent`` alerts are unprocessed."""
        while sent - self.processed > self.limit and time.perf_counter() < deadline:
            self.processed = self.daemon.received() - self.base
            if sent - self.processed > self.limit:
                time.sleep(0.01)


def _throughput(
    daemon: DaemonProcess,
    mode: str,
    seconds: float,
    send: Callable[[float, Backlog], int],
    backlog: int,
) -> Result:
    """Run ``send`` until its deadline, then wait until the daemon processed all it sent."""
    before = daemon.received()
    gate = Backlog(daemon, backlog)
    cpu_before = daemon.cpu_seconds()
    own_before = _own_cpu()
    started = time.perf_counter()
    sent = send(started + seconds, gate)
    done = daemon.wait_received(before + sent, timeout=max(30.0, 3 * seconds))
    cpu = daemon.cpu_seconds() - cpu_before
    own = _own_cpu() - own_before
    if done is None:
        processed = daemon.received() - before
        elapsed = time.perf_counter() - started
        return Result(mode, processed, elapsed, cpu, own, complete=False)
    return Result(mode, sent, done - started, cpu, own, complete=True)


def send_zmq(
    context: zmq.Context, endpoint: str, fmt: bytes, payloads: list[bytes], per_message: int
) -> Callable[[float, Backlog], int]:
    """A sender of ``[fmt, payload]`` messages, cycling through ``payloads`` until a deadline."""
    burst = max(1, min(256, 10_000 // per_message))

    def send(deadline: float, gate: Backlog) -> int:
        sock = _push_socket(context, endpoint)
        sent = 0
        cycle = itertools.cycle(payloads)
        send_part = sock.send
        more = zmq.SNDMORE
        clock = time.perf_counter
        try:
            while clock() < deadline:
                for _ in range(burst):
                    send_part(fmt, more)
                    send_part(next(cycle), copy=per_message < 100)
                sent += burst * per_message
                gate.wait(sent, deadline)
        finally:
            sock.close(linger=-1)
        return sent

    return send


def send_http(
    port: int, bodies: list[bytes], per_body: int, connections: int
) -> Callable[[float, Backlog], int]:
    """A sender of ``POST /api/v2/alerts`` over ``connections`` keep-alive connections.

    Each connection waits for its answer before the next request, as
    Prometheus's notifier does, so the HTTP mode needs no backlog gate.
    """

    def send(deadline: float, gate: Backlog) -> int:
        counts = [0] * connections
        errors: list[str] = []

        def worker(slot: int) -> None:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            headers = {"Content-Type": "application/json"}
            try:
                for body in itertools.islice(itertools.cycle(bodies), slot, None, connections):
                    if time.perf_counter() >= deadline:
                        return
                    conn.request("POST", "/api/v2/alerts", body, headers)
                    response = conn.getresponse()
                    response.read()
                    if response.status != 200:
                        errors.append(f"HTTP {response.status}")
                        return
                    counts[slot] += per_body
            finally:
                conn.close()

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(connections)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            msg = f"http sender: {errors[0]} ({len(errors)} failed connection(s))"
            raise RuntimeError(msg)
        return sum(counts)

    return send


@dataclass
class Latency:
    """Send-to-incident latencies of the probes, in milliseconds."""

    offered: float
    probes: int
    seen: list[float]
    cpu: float
    seconds: float
    peak_rss: float = 0.0

    def percentile(self, q: float) -> float:
        return float(np.percentile(self.seen, q)) if self.seen else float("nan")


class _SinkTail:
    """Follows the sink file in a thread, noting when each probe's incident appears."""

    def __init__(self, path: Path, prefix: bytes) -> None:
        self.path = path
        self.prefix = prefix
        self.seen: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sink-tail", daemon=True)
        self._decoder = msgspec.json.Decoder()

    def __enter__(self) -> _SinkTail:
        self._offset = self.path.stat().st_size if self.path.exists() else 0
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self.path.exists() and not self._stop.is_set():
            time.sleep(0.001)
        with self.path.open("rb") as file:
            file.seek(self._offset)
            rest = b""
            while not self._stop.is_set():
                chunk = file.read()
                if not chunk:
                    time.sleep(0.0005)
                    continue
                now = time.perf_counter()
                lines = (rest + chunk).split(b"\n")
                rest = lines.pop()
                for line in lines:
                    if self.prefix not in line:
                        continue
                    event = self._decoder.decode(line)
                    ci = event.get("labels", {}).get("instance", "")
                    if event["event"] == "open" and ci.startswith(self.prefix.decode()):
                        self.seen.setdefault(ci, now)


def measure_latency(
    daemon: DaemonProcess,
    background: list[bytes],
    seconds: float,
    run_id: str,
    batch: int = LATENCY_BATCH,
    rate: float = LATENCY_RATE,
) -> Latency:
    """Offer ``rate`` alerts/s as JSON arrays of ``batch``, one probe in each.

    Each probe names a CI never seen (``instance: probe-<run>-<n>``, and the same
    ``job``, so the shipped rules' group rule for CIs outside the CMDB, which
    groups by alertname, job and cluster, keys it apart), so with settle 0 it
    opens its own incident as soon as its batch is correlated; the incident's
    opener labels name the probe.
    Latency runs from just before the probe's message is handed to ZeroMQ to
    when its ``open`` line is read from the sink file.
    """
    filler = batch - 1
    chunks = [
        b",".join(background[i : i + filler])
        for i in range(0, len(background) - filler + 1, filler)
    ]
    prefix = f"probe-{run_id}-"
    interval = batch / rate
    context = zmq.Context.instance()
    sock = _push_socket(context, daemon.endpoint)
    sent_at: dict[str, float] = {}
    encoder = msgspec.json.Encoder()
    stamp = _rfc3339(time.time_ns())
    cpu_before = daemon.cpu_seconds()
    with _SinkTail(daemon.sink_path, prefix.encode()) as tail:
        started = time.perf_counter()
        messages = int(seconds / interval)
        for n in range(messages):
            due = started + n * interval
            pause = due - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
            ci = f"{prefix}{n}"
            probe = encoder.encode(
                {
                    "labels": {
                        "alertname": "LatencyProbe",
                        "instance": ci,
                        "job": ci,
                        "severity": "critical",
                    },
                    "annotations": {"summary": "ingest benchmark latency probe"},
                    "startsAt": stamp,
                }
            )
            payload = b"[" + chunks[n % len(chunks)] + b"," + probe + b"]"
            sent_at[ci] = time.perf_counter()
            sock.send_multipart([b"json-array", payload])
        elapsed = time.perf_counter() - started
        offered = messages * batch / elapsed
        deadline = time.monotonic() + 10
        while len(tail.seen) < messages and time.monotonic() < deadline:
            time.sleep(0.01)
    sock.close(linger=-1)
    cpu = daemon.cpu_seconds() - cpu_before
    latencies = [1000 * (tail.seen[ci] - t) for ci, t in sent_at.items() if ci in tail.seen]
    return Latency(offered, messages, latencies, cpu, elapsed)


# -- the run ---------------------------------------------------------------------------------


def _receive_floor(endpoint: str, messages: int, answer: multiprocessing.queues.Queue) -> None:
    """Child of ``zmq_floor``: receive ``messages`` two-part messages, doing nothing else,
    and report how many per second arrived after the first."""
    context = zmq.Context()
    sock = context.socket(zmq.PULL)
    sock.bind(endpoint)
    answer.put("bound")
    sock.recv(copy=False)
    sock.recv(copy=False)
    started = time.perf_counter()
    for _ in range(messages - 1):
        part = sock.recv(copy=False)
        while part.more:
            part = sock.recv(copy=False)
    answer.put((messages - 1) / (time.perf_counter() - started))
    sock.close(linger=0)
    context.term()


def zmq_floor(payload: bytes, messages: int = 300_000) -> float:
    """Messages per second pyzmq carries here and now from one process to another when
    the receiver does nothing with them: the ceiling on one-alert-per-message intake,
    which moves with the host's speed (the ``json`` mode's sender and messages)."""
    endpoint = f"tcp://127.0.0.1:{_free_port()}"
    spawn = multiprocessing.get_context("spawn")
    answer = spawn.Queue()
    child = spawn.Process(target=_receive_floor, args=(endpoint, messages, answer), daemon=True)
    child.start()
    try:
        if answer.get(timeout=60) != "bound":
            raise RuntimeError("the ZeroMQ floor's receiver did not start")
        context = zmq.Context()
        sock = _push_socket(context, endpoint)
        try:
            message = [b"json", payload]
            for _ in range(messages):
                sock.send_multipart(message)
            rate = float(answer.get(timeout=120))
        finally:
            sock.close(linger=0)
            context.term()
    finally:
        child.join(5)
        if child.is_alive():
            child.kill()
    return rate


def cpu_pressure() -> str:
    """Load average and the kernel's CPU pressure: how much others competed for the cores."""
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    try:
        some = Path("/proc/pressure/cpu").read_text().splitlines()[0]
        avg10 = some.split()[1].split("=")[1]
    except (OSError, IndexError):
        return f"load average {load}"
    return f"load average {load}, CPU pressure {avg10}% (10 s)"


def _fmt_rate(value: float) -> str:
    return f"{value:,.0f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0, help="send time per mode")
    parser.add_argument("--latency-seconds", type=float, default=6.0)
    parser.add_argument(
        "--latency-batch",
        type=int,
        default=LATENCY_BATCH,
        help="alerts per message in the latency mode (default 100, one message a ms)",
    )
    parser.add_argument(
        "--latency-rate",
        type=float,
        default=LATENCY_RATE,
        help="alerts/s offered in the latency mode (the target is at 100,000)",
    )
    parser.add_argument("--alerts", type=int, default=200_000, help="storm size (messages)")
    parser.add_argument("--cis", type=int, default=20_000, help="topology size")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--modes",
        default="latency,json,json-array,arrow,http,http-64",
        help="comma-separated subset of latency,json,json-array,arrow,http,http-64",
    )
    parser.add_argument(
        "--backlog",
        type=float,
        default=0.25,
        help="most unprocessed alerts allowed while sending, in seconds of the mode's target",
    )
    parser.add_argument("--no-event-log", action="store_true", help="turn the event log off")
    parser.add_argument(
        "--plain-arrow",
        action="store_true",
        help="Arrow labels as plain string maps, not dictionaries as correlator.client sends",
    )
    parser.add_argument("--keep-state", metavar="DIR", help="run in DIR and keep it")
    parser.add_argument(
        "--py-spy", metavar="PATH", help="py-spy binary: record a flame graph per mode"
    )
    parser.add_argument(
        "--threads",
        action="store_true",
        help="print per mode the cores each of the daemon's threads used, and waited for",
    )
    args = parser.parse_args()
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]

    wall = time.perf_counter()
    pressure_before = cpu_pressure()
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, pyzmq {zmq.pyzmq_version()}",
        file=sys.stderr,
    )
    t0 = time.perf_counter()
    work = build_workload(args.alerts, args.cis, args.seed, plain_arrow=args.plain_arrow)
    print(
        f"workload: {work.alerts:,} storm alerts over {args.cis:,} CIs, "
        f"{len(work.arrays)} arrays, {len(work.arrow)} Arrow streams "
        f"({time.perf_counter() - t0:.1f} s to build)",
        file=sys.stderr,
    )
    floor = zmq_floor(work.singles[0]) if "json" in modes else None
    if floor is not None:
        print(f"ZeroMQ floor: {floor:,.0f} messages/s (receiving only)", file=sys.stderr)
    folder = Path(args.keep_state or tempfile.mkdtemp(prefix="correlator-ingest-"))
    folder.mkdir(parents=True, exist_ok=True)
    daemon = DaemonProcess(folder, work.cmdb, event_log=not args.no_event_log)
    results: list[Result] = []
    latency: Latency | None = None
    try:
        t0 = time.perf_counter()
        daemon.wait_ready()
        # Warm-up: every decoder and kernel once, so no mode pays for compiling.
        context = zmq.Context.instance()
        warm = _push_socket(context, daemon.endpoint)
        for payload in work.singles[:2000]:
            warm.send_multipart([b"json", payload])
        for payload in work.arrays[:5]:
            warm.send_multipart([b"json-array", payload])
        warm.send_multipart([b"arrow", work.arrow[0]])
        warm.close(linger=-1)
        warm_count = 2000 + 5 * ARRAY_SIZE + ARROW_SIZE
        if daemon.wait_received(warm_count, timeout=120) is None:
            msg = f"warm-up: daemon processed {daemon.received()} of {warm_count} alerts"
            raise RuntimeError(msg)
        print(
            f"daemon {daemon.pid} up and warm in {time.perf_counter() - t0:.1f} s", file=sys.stderr
        )
        trips = ", ".join(
            f"{path} {daemon.round_trip(path):.2f} ms"
            for path in ("/-/healthy", "/metrics", f"/metrics?name[]={RECEIVED}")
        )
        print(f"API round trips on the idle daemon (median of 20): {trips}", file=sys.stderr)

        senders: dict[str, Callable[[float, Backlog], int]] = {
            "json": send_zmq(context, daemon.endpoint, b"json", work.singles, 1),
            "json-array": send_zmq(
                context, daemon.endpoint, b"json-array", work.arrays, ARRAY_SIZE
            ),
            "arrow": send_zmq(context, daemon.endpoint, b"arrow", work.arrow, ARROW_SIZE),
            "http": send_http(daemon.http_port, work.arrays, ARRAY_SIZE, HTTP_CONNECTIONS),
            "http-64": send_http(
                daemon.http_port, work.prometheus, PROMETHEUS_SIZE, HTTP_CONNECTIONS
            ),
        }
        for mode in modes:
            daemon.reset_peak_rss()
            with py_spy(daemon, args.py_spy, mode), thread_report(daemon, args.threads):
                if mode == "latency":
                    latency = measure_latency(
                        daemon,
                        work.singles,
                        args.latency_seconds,
                        str(os.getpid()),
                        batch=args.latency_batch,
                        rate=args.latency_rate,
                    )
                    latency.peak_rss = daemon.peak_rss_mib()
                    print(
                        f"  latency: {len(latency.seen)}/{latency.probes} probes, "
                        f"p50 {latency.percentile(50):.1f} ms, p99 {latency.percentile(99):.1f} ms"
                        f" (daemon CPU {latency.cpu / latency.seconds:.2f} cores)",
                        file=sys.stderr,
                    )
                    continue
                target = TARGETS[mode][1] or HTTP_UNGATED
                result = _throughput(
                    daemon, mode, args.seconds, senders[mode], backlog=int(target * args.backlog)
                )
                result.peak_rss = daemon.peak_rss_mib()
            results.append(result)
            print(
                f"  {mode}: {_fmt_rate(result.rate)} alerts/s "
                f"({result.alerts:,} in {result.seconds:.2f} s; CPU: daemon "
                f"{result.cpu / result.seconds:.2f} cores, {result.cpu_per_alert:.2f} us/alert; "
                "sender "
                f"{result.sender_cpu / result.seconds:.2f})",
                file=sys.stderr,
            )
        rejected = daemon.rejected()
        peaks = [r.peak_rss for r in results] + ([latency.peak_rss] if latency else [])
        peak_rss = max([daemon.peak_rss_mib(), *peaks])
    finally:
        daemon.stop()
        if not args.keep_state:
            shutil.rmtree(folder, ignore_errors=True)

    print()
    print(
        f"correlator ingest benchmark: {os.cpu_count()} cores, daemon in its own process, "
        f"event log {'off' if args.no_event_log else 'on'}"
    )
    header = (
        f"{'mode':<36} {'measured':>14} {'target':>16}  {'':4}  {'CPU':>5} {'us/alert':>8}"
        f" {'peak RSS':>9}"
    )
    print(header)
    print("-" * len(header))
    for result in results:
        label, target = TARGETS[result.mode]
        if target is None:
            ok, target_text = "", "measure"
        else:
            ok = "ok" if result.rate >= target and result.complete else "MISS"
            target_text = ">= " + _fmt_rate(target) + " /s"
        note = "" if result.complete else "  (daemon did not catch up)"
        print(
            f"{label:<36} {_fmt_rate(result.rate) + ' /s':>14} "
            f"{target_text:>16}  {ok:<4}  "
            f"{result.cpu / result.seconds:>5.2f} {result.cpu_per_alert:>8.2f}"
            f" {result.peak_rss:>5,.0f} MiB{note}"
        )
    if latency is not None:
        for q in (50, 99):
            value = latency.percentile(q)
            target_text = f"<= {LATENCY_TARGET_MS:.0f} ms" if q == 99 else ""
            ok = "" if q == 50 else ("ok" if value <= LATENCY_TARGET_MS else "MISS")
            if q == 99 and latency.offered < 0.95 * LATENCY_RATE:
                ok = "n/a"  # the target is set at 100,000 alerts/s offered
            label = f"latency p{q} at {latency.offered:,.0f} alerts/s"
            extra = ""
            if q == 99:
                cores = latency.cpu / latency.seconds
                extra = f"  {cores:>5.2f} {'':>8} {latency.peak_rss:>5,.0f} MiB"
            print(f"{label:<36} {value:>11.1f} ms {target_text:>16}  {ok:<4}{extra}")
        lost = latency.probes - len(latency.seen)
        if lost:
            print(f"  ({lost} of {latency.probes} probes saw no incident within 10 s)")
    print(f"{'daemon peak RSS, whole run':<36} {peak_rss:>10,.0f} MiB")
    print(f"{'rejected rows':<36} {rejected:>14,}")
    if "arrow" in modes:
        labels = "plain string maps" if args.plain_arrow else "dictionaries, as correlator.client"
        print(f"{'Arrow label strings':<36} {labels}")
    print(
        "CPU: cores the daemon used in the mode (user + system, all its processes and threads), "
        "and its CPU microseconds per alert; "
        "peak RSS: their VmHWM summed, reset at each mode's start to the RSS they then had"
    )
    if floor is not None:
        print(
            f"{'ZeroMQ floor':<36} {_fmt_rate(floor) + ' /s':>14}  two-part messages of "
            f"{len(work.singles[0])} B from one process to another, received and dropped "
            "(the host's ceiling on one JSON alert per message, measured before the daemon started)"
        )
    print(f"machine before: {pressure_before}; after: {cpu_pressure()}")
    print(f"total run time {time.perf_counter() - wall:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
