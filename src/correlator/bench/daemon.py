"""The real daemon (``correlator run``) in a child process, fed over HTTP and watched from here.

Our side of the Alertmanager comparison runs through the daemon exactly as
a user deploys it: a config file, ``POST /api/v2/alerts`` with
1,000-alert bodies, ``/metrics`` to see what was processed, a JSON-lines sink
whose lines are the notifications, and ``VmHWM`` for its peak memory. The
approach is the one ``benchmarks/ingest_bench.py`` uses.
"""

from __future__ import annotations

import http.client
import json
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from correlator.bench.figures import BenchError
from correlator.bench.scaling import child_env


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http_get(port: int, path: str, timeout: float = 10.0) -> tuple[int, str]:
    """GET ``path`` from 127.0.0.1:``port``; status 0 when nothing answers."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read().decode(errors="replace")
    except (OSError, http.client.HTTPException) as exc:
        return 0, str(exc)
    finally:
        conn.close()


def wait_ready(process: subprocess.Popen, port: int, log: Path, what: str, timeout: float) -> None:
    """Block until ``/-/ready`` answers 200; :class:`BenchError` with the log's tail otherwise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        if http_get(port, "/-/ready", timeout=2)[0] == 200:
            return
        time.sleep(0.05)
    tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
    msg = f"{what} not ready after {timeout:.0f} s (exit {process.poll()}):\n{tail}"
    raise BenchError(msg)


def stop(process: subprocess.Popen) -> None:
    """SIGTERM, then SIGKILL if it has not exited within 60 s."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class SinkTail:
    """Counts the sink file's lines in a thread, noting when the count last changed."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.count = 0
        self.last = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.01):
            try:
                count = self.path.read_bytes().count(b"\n")
            except OSError:
                continue
            if count != self.count:
                self.count, self.last = count, time.perf_counter()

    def close(self) -> None:
        """Stop following the file."""
        self._stop.set()
        self._thread.join()


class DaemonProcess:
    """``correlator run`` on free loopback ports with a temporary state folder."""

    def __init__(self, folder: Path, cmdb: Path, correlation: dict[str, str]) -> None:
        self.folder = folder
        self.http_port = free_port()
        self.sink_path = folder / "incidents.jsonl"
        config = {
            "zmq": {"pull": [f"tcp://127.0.0.1:{free_port()}"]},
            "http": {"listen": f"127.0.0.1:{self.http_port}"},
            "event_time": "arrival",
            "topology": str(cmdb),
            "correlation": correlation,
            "state_dir": str(folder / "state"),
            "sinks": [
                {"name": "incidents", "type": "jsonl", "options": {"path": str(self.sink_path)}}
            ],
        }
        config_path = folder / "correlator.yaml"
        config_path.write_text(json.dumps(config, indent=2))  # JSON is YAML
        self.log_path = folder / "daemon.log"
        command = [sys.executable, "-m", "correlator.cli", "run", "--config", str(config_path)]
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [*command, "--log-level", "warning"],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=child_env(),
                cwd=folder,
            )
        wait_ready(self.process, self.http_port, self.log_path, "correlator daemon", 120)

    @property
    def pid(self) -> int:
        """The daemon's process id."""
        return self.process.pid

    def counter(self, name: str) -> float:
        """The sum of every sample of counter ``name`` on ``/metrics``."""
        status, text = http_get(self.http_port, "/metrics")
        if status != 200:
            msg = f"correlator daemon: GET /metrics answered {status}: {text[:200]}"
            raise BenchError(msg)
        return metric_total(text, name)

    def wait_processed(self, target: int, timeout: float) -> float:
        """``perf_counter`` once the pipeline counted ``target`` alerts, received or rejected."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            done = self.counter("correlator_events_received_total")
            done += self.counter("correlator_events_rejected_total")
            if done >= target:
                return time.perf_counter()
            if self.process.poll() is not None:
                break
            time.sleep(0.01)
        msg = f"correlator daemon processed fewer than {target:,} alerts within {timeout:.0f} s"
        raise BenchError(msg)

    def stop(self) -> None:
        """Drain and exit."""
        stop(self.process)


def metric_total(text: str, name: str) -> float:
    """The sum of every sample of the counter ``name`` in a ``/metrics`` text."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and line[len(name) : len(name) + 1] in ("{", " "):
            total += float(line.rsplit(" ", 1)[1])
    return total
