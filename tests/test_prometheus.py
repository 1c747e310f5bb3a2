"""A real Prometheus delivers its alerts to the daemon through Alertmanager's API v2.

The test starts Debian's ``prometheus`` binary on 127.0.0.1 with a rule that
always fires, and points its ``alerting.alertmanagers`` at the daemon's HTTP
port, exactly as a user would point it at an Alertmanager. It passes when the
daemon has correlated the alert into an incident rooted at the CI the alert
names, and ``/metrics`` counted the alert under source ``http``. This is the
compatibility check that no hand-written request can give: whatever
Prometheus really sends (headers, batching, its timestamp format, the
``endsAt`` it sets on firing alerts) must be accepted unchanged.

Without the binary the test is skipped locally and fails under CI, where
``.ci/install-system-deps`` installs it.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from correlator.correlate.engine import CorrelationSettings
from correlator.daemon.config import ZmqConfig, load_config
from correlator.daemon.service import Daemon
from correlator.incident import IncidentEvent

DEADLINE_SECONDS = 30.0
ALERTNAME = "CorrelatorIntegrationAlwaysFiring"
ROOT_CI = "web-1"

# sw-1 -> web-1 -> checkout: the alert names web-1, whose failure takes down
# the checkout service; sw-1 is silent.
CMDB = {
    "cis": [
        {"id": "sw-1", "type": "switch"},
        {"id": ROOT_CI, "type": "host"},
        {"id": "checkout", "type": "business_service"},
    ],
    "relations": [
        {"from": ROOT_CI, "to": "sw-1", "type": "connected_to"},
        {"from": "checkout", "to": ROOT_CI, "type": "runs_on"},
    ],
}

RULES = f"""\
groups:
  - name: correlator-integration
    interval: 1s
    rules:
      - alert: {ALERTNAME}
        expr: vector(1)
        labels:
          instance: "{ROOT_CI}:9100"
          severity: critical
        annotations:
          summary: always firing, for the correlator integration test
"""


def _prometheus_binary() -> str:
    """The ``prometheus`` executable; skipped locally and failed under CI when missing."""
    path = shutil.which("prometheus")
    if path is None:
        reason = "the prometheus binary is not installed (run .ci/install-system-deps)"
        if os.environ.get("CI"):
            pytest.fail(f"under CI, {reason}")
        pytest.skip(reason)
    return path


def _free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (for Prometheus's own web listener)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _get(url: str) -> str:
    """The body of a GET, or the error as text (used in polling and diagnostics)."""
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.read().decode()
    except (urllib.error.URLError, OSError) as exc:
        return f"<GET {url} failed: {exc}>"


def _metric_total(text: str, name: str, **labels: str) -> float:
    """The sum of the samples of ``name`` whose labels include ``labels`` (exposition text)."""
    from prometheus_client.parser import text_string_to_metric_families

    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


def _wait_for(condition: Callable[[], bool], seconds: float) -> bool:
    """Poll ``condition`` every 100 ms until it holds or ``seconds`` pass."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


@pytest.fixture
def prometheus_binary() -> str:
    """The binary's path, looked up before anything is started (see ``_prometheus_binary``)."""
    return _prometheus_binary()


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[tuple[Daemon, list[IncidentEvent]]]:
    """A daemon on free loopback ports with the small topology, settle 0, events recorded."""
    cmdb = tmp_path / "cmdb.json"
    cmdb.write_text(json.dumps(CMDB))
    state = tmp_path / "state"
    config = replace(
        load_config(None),
        zmq=ZmqConfig(pull=("tcp://127.0.0.1:0",)),
        http_listen="127.0.0.1:0",
        topology=str(cmdb),
        state_dir=str(state),
        correlation=replace(CorrelationSettings(), settle=0),
        sinks=(
            {
                "name": "incidents",
                "type": "jsonl",
                "options": {"path": str(state / "incidents.jsonl")},
            },
        ),
    )
    events: list[IncidentEvent] = []
    instance = Daemon(config, on_events=events.extend)
    instance.start()
    try:
        yield instance, events
    finally:
        instance.stop()


@pytest.fixture
def prometheus(
    tmp_path: Path, prometheus_binary: str, daemon: tuple[Daemon, list[IncidentEvent]]
) -> Iterator[tuple[str, Path]]:
    """A real Prometheus whose alertmanager is the daemon; yields its URL and log file."""
    binary = prometheus_binary
    instance, _ = daemon
    assert instance.http_address is not None
    host, port = instance.http_address
    rules = tmp_path / "rules.yml"
    rules.write_text(RULES)
    config = tmp_path / "prometheus.yml"
    config.write_text(
        f"""\
global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files:
  - {rules}
alerting:
  alertmanagers:
    - api_version: v2
      static_configs:
        - targets: ['{host}:{port}']
"""
    )
    web_port = _free_port()
    log_path = tmp_path / "prometheus.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{web_port}",
                # The first notification can come before the alertmanager is
                # discovered and be dropped; resend every second, not every minute.
                "--rules.alert.resend-delay=1s",
                "--log.level=info",
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=tmp_path,
        )
    try:
        yield f"http://127.0.0.1:{web_port}", log_path
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def _diagnostics(daemon: Daemon, prometheus_url: str, log_path: Path) -> str:
    """What each side saw, for a failure message that says where the chain broke."""
    assert daemon.http_address is not None
    host, port = daemon.http_address
    metrics = _get(f"http://{host}:{port}/metrics")
    interesting = [
        line
        for line in metrics.splitlines()
        if line.startswith(("correlator_events_", "correlator_incident"))
    ]
    prom_metrics = [
        line
        for line in _get(f"{prometheus_url}/metrics").splitlines()
        if line.startswith("prometheus_notifications_")
    ]
    log_tail = log_path.read_text(errors="replace").splitlines()[-30:]
    return "\n".join(
        [
            "daemon metrics:",
            *interesting,
            "prometheus alertmanagers: " + _get(f"{prometheus_url}/api/v1/alertmanagers"),
            "prometheus alerts: " + _get(f"{prometheus_url}/api/v1/alerts"),
            "prometheus notifier metrics:",
            *prom_metrics,
            "prometheus log (last 30 lines):",
            *log_tail,
        ]
    )


def test_prometheus_alert_is_received_and_correlated(
    prometheus_binary: str,
    daemon: tuple[Daemon, list[IncidentEvent]],
    prometheus: tuple[str, Path],
) -> None:
    """Prometheus's own notification reaches the daemon and opens an incident rooted at web-1."""
    instance, events = daemon
    prometheus_url, log_path = prometheus

    def rooted_here() -> list[IncidentEvent]:
        return [
            e
            for e in instance.open_incidents()
            if e.root_cause.ci == ROOT_CI and e.root_cause.alertname == ALERTNAME
        ]

    found = _wait_for(lambda: bool(rooted_here()), DEADLINE_SECONDS)
    assert found, (
        f"no incident rooted at {ROOT_CI} within {DEADLINE_SECONDS:.0f} s; events seen: "
        f"{[(e.event, e.root_cause) for e in events]}\n"
        + _diagnostics(instance, prometheus_url, log_path)
    )
    incident: Any = rooted_here()[0]
    assert incident.root_cause.type == "host"
    assert incident.root_cause.inferred is False
    assert incident.severity == "critical"
    assert "checkout" in incident.affected_services
    assert any(e.event == "open" and e.id == incident.id for e in events)

    assert instance.http_address is not None
    host, port = instance.http_address
    metrics = _get(f"http://{host}:{port}/metrics")
    received = _metric_total(metrics, "correlator_events_received_total", source="http")
    rejected = _metric_total(metrics, "correlator_events_rejected_total")
    assert received >= 1, _diagnostics(instance, prometheus_url, log_path)
    assert rejected == 0, _diagnostics(instance, prometheus_url, log_path)
