"""The daemon's YAML configuration: parsed into frozen records, every key checked.

An unknown key, a wrong type or a bad value is refused with the key's dotted
path and what is wrong (and a did-you-mean for typos). Every key has a
default, so ``correlator run`` with no file runs the built-in setup: ZeroMQ
PULL on tcp://127.0.0.1:5555, HTTP on 127.0.0.1:9095, the shipped rules, a
JSON-lines sink, and ``./state`` for snapshots, outbox and event log.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from correlator.batch import DEFAULT_CI_LABELS
from correlator.correlate.engine import CorrelationSettings
from correlator.errors import ConfigError
from correlator.timefmt import parse_duration

DEFAULT_SINKS: tuple[dict[str, Any], ...] = (
    {"name": "incidents", "type": "jsonl", "options": {"path": "incidents.jsonl"}},
)
_SIZE_UNITS = {
    "": 1,
    "b": 1,
    "kib": 1 << 10,
    "mib": 1 << 20,
    "gib": 1 << 30,
    "kb": 1000,
    "mb": 10**6,
    "gb": 10**9,
}


@dataclass(frozen=True)
class ZmqConfig:
    """ZeroMQ sources: PULL sockets bound here, SUB sockets connected there.

    ``decode_process`` receives and decodes in a process of its own, so
    decoding does not compete with the correlation loop for the GIL; bodies
    posted to the HTTP API are decoded there too. ``max_message_bytes``
    limits HTTP bodies as well.
    """

    pull: tuple[str, ...] = ("tcp://127.0.0.1:5555",)
    sub: tuple[str, ...] = ()
    sub_topic: str = ""
    hwm: int = 100_000
    max_message_bytes: int = 16 << 20
    decode_process: bool = True


@dataclass(frozen=True)
class BatchConfig:
    """Micro-batching: a batch closes at ``max_alerts`` alerts or after ``max_wait``."""

    max_alerts: int = 10_000
    max_wait: int = 5_000_000


@dataclass(frozen=True)
class EventLogConfig:
    """The black box: rotated Parquet files of every accepted alert."""

    enabled: bool = True
    max_file_bytes: int = 64 << 20
    max_file_age: int = 3600 * 10**9
    retention_bytes: int = 1 << 30


@dataclass(frozen=True)
class DeadLetterConfig:
    """Rejected input, with the reason, as rotated JSON lines."""

    max_file_bytes: int = 16 << 20
    keep_files: int = 5


@dataclass(frozen=True)
class DaemonConfig:
    """Everything ``correlator run`` needs; built by ``load_config``."""

    zmq: ZmqConfig = field(default_factory=ZmqConfig)
    http_listen: str = "127.0.0.1:9095"
    batch: BatchConfig = field(default_factory=BatchConfig)
    heartbeat: int = 10**9
    event_time: str = "arrival"
    topology: str | None = None
    rules: str | None = None
    correlation: CorrelationSettings = field(default_factory=CorrelationSettings)
    correlation_keys: tuple[str, ...] = ()
    ci_labels: tuple[str, ...] = DEFAULT_CI_LABELS
    max_labels: int = 256
    sinks: tuple[dict[str, Any], ...] = DEFAULT_SINKS
    state_dir: str = "state"
    snapshot_interval: int = 60 * 10**9
    event_log: EventLogConfig = field(default_factory=EventLogConfig)
    dead_letter: DeadLetterConfig = field(default_factory=DeadLetterConfig)
    source: str = field(default="built-in defaults", compare=False)

    def correlation_overrides(self) -> dict[str, Any]:
        """The correlation settings this config sets itself; they win over the rule files'."""
        return {
            _FIELD_OF_KEY.get(key, key): getattr(self.correlation, _FIELD_OF_KEY.get(key, key))
            for key in self.correlation_keys
        }

    @property
    def state_path(self) -> Path:
        """The state directory as a path."""
        return Path(self.state_dir)


def parse_size(value: Any, where: str) -> int:
    """``64MiB``, ``1GiB``, ``500kb`` or a plain number of bytes."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    text = str(value).strip().lower().replace(" ", "")
    number = text.rstrip("abcdefghijklmnopqrstuvwxyz")
    unit = text[len(number) :]
    if unit in _SIZE_UNITS and number.replace(".", "", 1).isdigit():
        return int(float(number) * _SIZE_UNITS[unit])
    msg = f"{where}: not a size: {value!r} (use e.g. 64MiB, 1GiB, 500kB or bytes)"
    raise ConfigError(msg)


def _duration(value: Any, where: str) -> int:
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc}") from exc


def _mapping(value: Any, where: str, allowed: tuple[str, ...]) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        msg = f"{where}: expected a mapping, got {type(value).__name__}"
        raise ConfigError(msg)
    for key in value:
        if key not in allowed:
            hint = difflib.get_close_matches(str(key), allowed, n=1)
            suggestion = f" (did you mean {hint[0]!r}?)" if hint else ""
            prefix = f"{where}." if where != "config" else ""
            msg = f"{prefix}{key}: unknown key{suggestion}; valid keys: {', '.join(allowed)}"
            raise ConfigError(msg)
    return value


def _typed(value: Any, kind: type | tuple[type, ...], where: str) -> Any:
    if isinstance(value, bool) and kind is not bool:
        msg = f"{where}: expected {getattr(kind, '__name__', kind)}, got a boolean"
        raise ConfigError(msg)
    if not isinstance(value, kind):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        msg = f"{where}: expected {names}, got {type(value).__name__} {value!r}"
        raise ConfigError(msg)
    return value


def _strings(value: Any, where: str) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    items = _typed(value, list, where)
    return tuple(_typed(item, str, f"{where}[{i}]") for i, item in enumerate(items))


def _positive(value: Any, where: str) -> int:
    number = _typed(value, int, where)
    if number < 1:
        msg = f"{where}: must be at least 1, got {number}"
        raise ConfigError(msg)
    return number


def _zmq(raw: Any) -> ZmqConfig:
    section = _mapping(raw, "zmq", tuple(f.name for f in fields(ZmqConfig)))
    base = ZmqConfig()
    return ZmqConfig(
        pull=_strings(section.get("pull", list(base.pull)), "zmq.pull"),
        sub=_strings(section.get("sub", list(base.sub)), "zmq.sub"),
        sub_topic=_typed(section.get("sub_topic", base.sub_topic), str, "zmq.sub_topic"),
        hwm=_positive(section.get("hwm", base.hwm), "zmq.hwm"),
        max_message_bytes=parse_size(
            section.get("max_message_bytes", base.max_message_bytes), "zmq.max_message_bytes"
        ),
        decode_process=_typed(
            section.get("decode_process", base.decode_process), bool, "zmq.decode_process"
        ),
    )


_CORRELATION_KEYS = (
    "window",
    "dedup",
    "settle",
    "update_interval",
    "resolve_timeout",
    "reopen_window",
    "infer_min_dependents",
    "infer_ratio",
    "drop_informational",
)
# Config keys whose CorrelationSettings field has another name.
_FIELD_OF_KEY = {"dedup": "dedup_window"}


def _correlation(raw: Any) -> CorrelationSettings:
    section = _mapping(raw, "correlation", _CORRELATION_KEYS)
    base = CorrelationSettings()
    where = "correlation."
    settings = CorrelationSettings(
        window=_duration(section.get("window", base.window / 1e9), where + "window"),
        dedup_window=_duration(section.get("dedup", base.dedup_window / 1e9), where + "dedup"),
        settle=_duration(section.get("settle", base.settle / 1e9), where + "settle"),
        update_interval=_duration(
            section.get("update_interval", base.update_interval / 1e9), where + "update_interval"
        ),
        resolve_timeout=_duration(
            section.get("resolve_timeout", base.resolve_timeout / 1e9), where + "resolve_timeout"
        ),
        reopen_window=_duration(
            section.get("reopen_window", base.reopen_window / 1e9), where + "reopen_window"
        ),
        infer_min_dependents=_typed(
            section.get("infer_min_dependents", base.infer_min_dependents),
            int,
            where + "infer_min_dependents",
        ),
        infer_ratio=float(
            _typed(
                section.get("infer_ratio", base.infer_ratio), (int, float), where + "infer_ratio"
            )
        ),
        drop_informational=_typed(
            section.get("drop_informational", base.drop_informational),
            bool,
            where + "drop_informational",
        ),
    )
    if settings.settle > settings.window:
        msg = "correlation.settle: must not be longer than correlation.window"
        raise ConfigError(msg)
    if not 0 < settings.infer_ratio <= 1:
        msg = f"correlation.infer_ratio: must be in (0, 1], got {settings.infer_ratio}"
        raise ConfigError(msg)
    return settings


def parse_config(raw: Any, source: str = "config") -> DaemonConfig:
    """A ``DaemonConfig`` from already-parsed YAML (a mapping, or None for all defaults)."""
    top = _mapping(
        raw,
        "config",
        (
            "zmq",
            "http",
            "batch",
            "heartbeat",
            "event_time",
            "topology",
            "rules",
            "correlation",
            "ci_labels",
            "max_labels",
            "sinks",
            "state_dir",
            "snapshot_interval",
            "event_log",
            "dead_letter",
        ),
    )
    base = DaemonConfig()
    http = _mapping(top.get("http"), "http", ("listen",))
    batch = _mapping(top.get("batch"), "batch", ("max_alerts", "max_wait"))
    log = _mapping(
        top.get("event_log"),
        "event_log",
        ("enabled", "max_file_bytes", "max_file_age", "retention_bytes"),
    )
    dead = _mapping(top.get("dead_letter"), "dead_letter", ("max_file_bytes", "keep_files"))
    event_time = _typed(top.get("event_time", base.event_time), str, "event_time")
    if event_time not in ("arrival", "source"):
        msg = f"event_time: must be 'arrival' or 'source', got {event_time!r}"
        raise ConfigError(msg)
    sinks = top.get("sinks", list(base.sinks))
    _typed(sinks, list, "sinks")
    optional = {}
    for key in ("topology", "rules"):
        value = top.get(key)
        optional[key] = None if value is None else _typed(value, str, key)
    return DaemonConfig(
        zmq=_zmq(top.get("zmq")),
        http_listen=_typed(http.get("listen", base.http_listen), str, "http.listen"),
        batch=BatchConfig(
            max_alerts=_positive(
                batch.get("max_alerts", base.batch.max_alerts), "batch.max_alerts"
            ),
            max_wait=_duration(batch.get("max_wait", "5ms"), "batch.max_wait"),
        ),
        heartbeat=_duration(top.get("heartbeat", "1s"), "heartbeat"),
        event_time=event_time,
        topology=optional["topology"],
        rules=optional["rules"],
        correlation=_correlation(top.get("correlation")),
        correlation_keys=tuple(_mapping(top.get("correlation"), "correlation", _CORRELATION_KEYS)),
        ci_labels=_strings(top.get("ci_labels", list(base.ci_labels)), "ci_labels"),
        max_labels=_positive(top.get("max_labels", base.max_labels), "max_labels"),
        sinks=tuple(sinks),
        state_dir=_typed(top.get("state_dir", base.state_dir), str, "state_dir"),
        snapshot_interval=_duration(top.get("snapshot_interval", "60s"), "snapshot_interval"),
        event_log=EventLogConfig(
            enabled=_typed(log.get("enabled", True), bool, "event_log.enabled"),
            max_file_bytes=parse_size(
                log.get("max_file_bytes", "64MiB"), "event_log.max_file_bytes"
            ),
            max_file_age=_duration(log.get("max_file_age", "1h"), "event_log.max_file_age"),
            retention_bytes=parse_size(
                log.get("retention_bytes", "1GiB"), "event_log.retention_bytes"
            ),
        ),
        dead_letter=DeadLetterConfig(
            max_file_bytes=parse_size(
                dead.get("max_file_bytes", "16MiB"), "dead_letter.max_file_bytes"
            ),
            keep_files=_positive(dead.get("keep_files", 5), "dead_letter.keep_files"),
        ),
        source=source,
    )


def load_config(path: str | Path | None) -> DaemonConfig:
    """The configuration in ``path``, or the built-in defaults when ``path`` is None."""
    if path is None:
        return parse_config(None, "built-in defaults")
    try:
        text = Path(path).read_text()
    except OSError as exc:
        msg = f"{path}: cannot read config: {exc}"
        raise ConfigError(msg) from exc
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        msg = f"{where}: invalid YAML: {getattr(exc, 'problem', exc)}"
        raise ConfigError(msg) from exc
    try:
        return parse_config(raw, str(path))
    except ConfigError as exc:
        msg = f"{path}: {exc}"
        raise ConfigError(msg) from exc
