"""Side by side with Alertmanager: the same storm, over the same API, measured the same way.

Both systems run as child processes on 127.0.0.1 with free ports and
temporary storage, and get the same storm as ``POST /api/v2/alerts`` bodies
of 1,000 alerts over four keep-alive connections (each waits for its answer,
as Prometheus's notifier does):

- **correlator**: ``correlator run`` (see :mod:`correlator.bench.daemon`) with
  ``settle`` and ``update_interval`` set to Alertmanager's ``group_wait`` and
  ``group_interval``; a notification is an incident event (open, update,
  resolve) written by its JSON-lines sink.
- **Alertmanager**: ``alertmanager`` (Debian's ``prometheus-alertmanager``),
  clustering off, grouping by the ``switch`` label (the topology label the
  storm's host alerts carry), inhibiting every alert of a switch while its
  ``SwitchDown`` fires, and a webhook receiver in this process; a
  notification is one webhook request.

Figures: ingest throughput (alerts sent / time until the last request was
answered, and for correlator until ``/metrics`` counted every alert as
processed), time from the first request to the last notification (once no
notification has come for :data:`QUIET_S`), notifications a human receives,
incidents or groups notified, and the process's peak RSS (``VmHWM``).
"""

from __future__ import annotations

import http.client
import itertools
import json
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from correlator.bench.daemon import DaemonProcess, SinkTail, free_port, stop, wait_ready
from correlator.bench.figures import BenchError, Figure, repeat
from correlator.bench.machine import peak_rss_mib

GROUP_WAIT = "1s"
GROUP_INTERVAL = "1s"
REPEAT_INTERVAL = "24h"
QUIET_S = 3.0
MAX_WAIT_S = 180.0
CONNECTIONS = 4
BODY_ALERTS = 1_000


def alertmanager_binary() -> str | None:
    """The Alertmanager executable on PATH (Debian names it ``prometheus-alertmanager``)."""
    return shutil.which("alertmanager") or shutil.which("prometheus-alertmanager")


def alertmanager_version(binary: str) -> str:
    """The first line of ``alertmanager --version``."""
    done = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=30)
    return (done.stdout or done.stderr).strip().splitlines()[0]


class Webhook:
    """An HTTP receiver on 127.0.0.1 counting Alertmanager's webhook notifications."""

    def __init__(self) -> None:
        self.count = 0
        self.last = 0.0
        self.groups: set[str] = set()
        self._lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with owner._lock:
                    owner.count += 1
                    owner.last = time.perf_counter()
                    owner.groups.add(json.loads(body or b"{}").get("groupKey", ""))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop serving."""
        self.server.shutdown()
        self.server.server_close()


def post_all(port: int, bodies: list[bytes]) -> None:
    """POST every body to ``/api/v2/alerts``; :class:`BenchError` on any refusal."""
    errors: list[str] = []

    def worker(slot: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        headers = {"Content-Type": "application/json"}
        try:
            for body in itertools.islice(bodies, slot, None, CONNECTIONS):
                conn.request("POST", "/api/v2/alerts", body, headers)
                response = conn.getresponse()
                text = response.read()
                if response.status != 200:
                    errors.append(f"HTTP {response.status}: {text[:200]!r}")
                    return
        except (OSError, http.client.HTTPException) as exc:
            errors.append(f"{type(exc).__name__}: {exc}")
        finally:
            conn.close()

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(CONNECTIONS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        msg = f"POST /api/v2/alerts on port {port}: {errors[0]}"
        raise BenchError(msg)


def quiet(last: Callable[[], float], since: float) -> float:
    """The last notification's ``perf_counter``, once one came and then none for :data:`QUIET_S`."""
    deadline = time.perf_counter() + MAX_WAIT_S
    while time.perf_counter() < deadline:
        latest = last()
        if latest > 0 and time.perf_counter() - max(latest, since) >= QUIET_S:
            return latest
        time.sleep(0.05)
    msg = f"no notification, or notifications still arriving, after {MAX_WAIT_S:.0f} s"
    raise BenchError(msg)


def _figures(sent: int, start: float, ingested: float, last: float) -> dict[str, float]:
    return {
        "alerts_per_s": sent / (ingested - start),
        "last_notification_s": max(last, ingested) - start,
    }


def alertmanager_config(webhook_port: int) -> dict[str, Any]:
    """Group by the topology label, inhibit a down switch's alerts, notify the webhook."""
    return {
        "route": {
            "receiver": "bench",
            "group_by": ["switch"],
            "group_wait": GROUP_WAIT,
            "group_interval": GROUP_INTERVAL,
            "repeat_interval": REPEAT_INTERVAL,
        },
        "receivers": [
            {
                "name": "bench",
                "webhook_configs": [
                    {"url": f"http://127.0.0.1:{webhook_port}/", "send_resolved": True}
                ],
            }
        ],
        "inhibit_rules": [
            {
                "source_matchers": ['alertname="SwitchDown"'],
                "target_matchers": ['alertname!="SwitchDown"'],
                "equal": ["switch"],
            }
        ],
    }


def run_alertmanager(binary: str, bodies: list[bytes], sent: int) -> dict[str, float]:
    """One run of Alertmanager on the storm."""
    webhook = Webhook()
    with tempfile.TemporaryDirectory(prefix="bench-am-") as tmp:
        folder = Path(tmp)
        config = folder / "alertmanager.yml"
        config.write_text(json.dumps(alertmanager_config(webhook.port)))
        port = free_port()
        log = folder / "alertmanager.log"
        command = [
            binary,
            f"--config.file={config}",
            f"--storage.path={folder / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
            "--log.level=warn",
        ]
        with log.open("wb") as out:
            process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
        try:
            wait_ready(process, port, log, "alertmanager", 60)
            start = time.perf_counter()
            post_all(port, bodies)
            ingested = time.perf_counter()
            last = quiet(lambda: webhook.last, ingested)
            result = _figures(sent, start, ingested, last)
            result |= {
                "notifications": float(webhook.count),
                "incidents": float(len(webhook.groups)),
                "peak_rss_mib": peak_rss_mib(process.pid),
            }
        finally:
            stop(process)
            webhook.close()
    return result


def run_correlator(cmdb: Path, bodies: list[bytes], sent: int) -> dict[str, float]:
    """One run of the correlator daemon on the storm."""
    correlation = {"settle": GROUP_WAIT, "update_interval": GROUP_INTERVAL}
    with tempfile.TemporaryDirectory(prefix="bench-correlator-") as tmp:
        daemon = DaemonProcess(Path(tmp), cmdb, correlation)
        tail = SinkTail(daemon.sink_path)
        try:
            start = time.perf_counter()
            post_all(daemon.http_port, bodies)
            ingested = daemon.wait_processed(sent, MAX_WAIT_S)
            last = quiet(lambda: tail.last, ingested)
            result = _figures(sent, start, ingested, last)
            lines = daemon.sink_path.read_bytes().splitlines()
            events = [json.loads(line) for line in lines if line.strip()]
            opened = sum(e["event"] == "open" and e.get("version") == 1 for e in events)
            result |= {
                "notifications": float(len(events)),
                "incidents": float(opened),
                "peak_rss_mib": peak_rss_mib(daemon.pid),
            }
        finally:
            tail.close()
            daemon.stop()
    return result


def compare(
    binary: str, cmdb: Path, bodies: list[bytes], sent: int, runs: int
) -> dict[str, dict[str, Figure]]:
    """Both systems on the same storm, a warm-up and ``runs`` timed runs each."""
    return {
        "correlator": repeat(
            lambda: run_correlator(cmdb, bodies, sent), runs, what="peer run (correlator)"
        ),
        "alertmanager": repeat(
            lambda: run_alertmanager(binary, bodies, sent), runs, what="peer run (alertmanager)"
        ),
    }
