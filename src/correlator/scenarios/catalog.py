"""The alerts a scenario can raise, shaped like real Prometheus alerts.

Each alert name has a fixed severity, the PromQL expression its
``generatorURL`` links to, and a summary template; the labels depend on
what fired it: SNMP targets (routers, switches) carry ``instance=<id>:161``,
node exporters ``instance=<id>:9100`` and the ``switch`` they hang off,
blackbox probes of services ``ci`` and ``service``.
"""

from __future__ import annotations

from typing import NamedTuple
from urllib.parse import quote_plus

PROMETHEUS_URL = "http://prometheus:9090"


class AlertKind(NamedTuple):
    """What one alert name looks like wherever it fires."""

    severity: str
    expr: str
    summary: str


KINDS: dict[str, AlertKind] = {
    "RouterDown": AlertKind("critical", 'up{job="snmp"} == 0', "Router {ci} is unreachable"),
    "SwitchDown": AlertKind("critical", 'up{job="snmp"} == 0', "Switch {ci} is unreachable"),
    "HostDown": AlertKind("critical", 'up{job="node"} == 0', "Host {ci} is down"),
    "NodeExporterDown": AlertKind(
        "critical", 'absent_over_time(up{job="node"}[2m])', "Node exporter on {ci} is gone"
    ),
    "ServiceDown": AlertKind("critical", "probe_success == 0", "Service {ci} is down"),
    "ProbeFailed": AlertKind(
        "critical", "probe_http_status_code >= 500", "Health probe of {ci} fails"
    ),
    "HighErrorRate": AlertKind(
        "warning",
        'sum by (ci) (rate(http_requests_total{code=~"5.."}[5m])) > 5',
        "Service {ci} answers with errors",
    ),
    "LinkDown": AlertKind("warning", "ifOperStatus == 2", "Interface {ifName} on {ci} is down"),
    "LinkUp": AlertKind(
        "warning", "changes(ifOperStatus[2m]) > 0", "Interface {ifName} on {ci} is up"
    ),
    "DiskSpaceLow": AlertKind(
        "warning",
        "node_filesystem_avail_bytes / node_filesystem_size_bytes < 0.1",
        "Filesystem {mountpoint} on {ci} is almost full",
    ),
    "HighCPU": AlertKind(
        "warning",
        'avg by (instance) (rate(node_cpu_seconds_total{mode!="idle"}[5m])) > 0.9',
        "CPU of {ci} is saturated",
    ),
    "MemoryPressure": AlertKind(
        "critical",
        "node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes < 0.05",
        "Memory of {ci} is nearly exhausted",
    ),
    "CertificateExpiring": AlertKind(
        "warning",
        "probe_ssl_earliest_cert_expiry - time() < 86400 * 14",
        "Certificate of {ci} expires within 14 days",
    ),
    "HighLatency": AlertKind(
        "warning", "probe_duration_seconds > 2", "Service {ci} answers slowly"
    ),
    "PackageUpdatesAvailable": AlertKind(
        "info", "apt_upgrades_pending > 0", "Package updates are pending on {ci}"
    ),
    "ConfigReloaded": AlertKind(
        "info", "changes(process_start_time_seconds[10m]) > 0", "Configuration of {ci} reloaded"
    ),
}

# Alert names fired by a CI of each type when it is down because of a
# failure, with their relative weights.
SYMPTOMS: dict[str, tuple[tuple[str, ...], tuple[float, ...]]] = {
    "switch": (("SwitchDown",), (1.0,)),
    "host": (("HostDown", "NodeExporterDown"), (0.7, 0.3)),
    "service": (("ServiceDown", "ProbeFailed", "HighErrorRate"), (0.5, 0.25, 0.25)),
}
# The alert a failed root CI fires itself.
ROOT_ALERTS = {"router": "RouterDown", "switch": "SwitchDown", "host": "HostDown"}
# Background noise by target: alert names unrelated to any failure.
HOST_NOISE = ("DiskSpaceLow", "HighCPU", "MemoryPressure")
SERVICE_NOISE = ("CertificateExpiring", "HighLatency")
INFO_NOISE = ("PackageUpdatesAvailable", "ConfigReloaded")
UNKNOWN_NOISE = ("HostDown", "DiskSpaceLow", "HighCPU")
MOUNTPOINTS = ("/", "/var", "/srv", "/home")


class Alert(NamedTuple):
    """The constant part of an alert: what every re-send of it repeats."""

    labels: dict[str, str]
    annotations: dict[str, str]
    generator_url: str


def make_alert(
    alertname: str,
    ci: str,
    ci_type: str,
    *,
    switch: str | None = None,
    extra: dict[str, str] | None = None,
) -> Alert:
    """The alert ``alertname`` fired about CI ``ci`` of type ``ci_type``.

    ``switch`` is a host's primary uplink (node exporter targets carry it as
    a label); ``extra`` adds alert-specific labels such as ``mountpoint``.
    """
    kind = KINDS[alertname]
    labels = {"alertname": alertname}
    if ci_type == "service":
        labels |= {"ci": ci, "service": ci, "job": "blackbox"}
    elif ci_type == "host":
        labels |= {"instance": f"{ci}:9100", "job": "node"}
        if switch is not None:
            labels["switch"] = switch
    else:
        labels |= {"instance": f"{ci}:161", "job": "snmp"}
        if ci_type == "switch":
            labels["switch"] = ci
    labels["severity"] = kind.severity
    if extra:
        labels |= extra
    summary = kind.summary.format(ci=ci, **(extra or {}))
    return Alert(labels, {"summary": summary}, generator_url(kind.expr))


def link_alert(alertname: str, switch: str, if_name: str) -> Alert:
    """A LinkDown or LinkUp trap of interface ``if_name`` on ``switch``."""
    kind = KINDS[alertname]
    labels = {
        "alertname": alertname,
        "instance": f"{switch}:161",
        "ifName": if_name,
        "severity": kind.severity,
    }
    summary = kind.summary.format(ci=switch, ifName=if_name)
    return Alert(labels, {"summary": summary}, generator_url(kind.expr))


def generator_url(expr: str) -> str:
    """The Prometheus graph link Alertmanager shows as an alert's source."""
    return f"{PROMETHEUS_URL}/graph?g0.expr={quote_plus(expr)}&g0.tab=1"
