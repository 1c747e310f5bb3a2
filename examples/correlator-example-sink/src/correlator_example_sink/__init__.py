"""An example correlator sink plugin: incident events as logfmt lines in a file."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Self

from correlator.errors import SinkError
from correlator.incident import IncidentEvent
from correlator.sinks import SinkOptions, TicketSink

__all__ = ["LogfmtSink", "logfmt_line"]


def _value(text: str) -> str:
    if text and not any(c in text for c in ' "=\\'):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def logfmt_line(event: IncidentEvent) -> str:
    """One event as ``key=value`` pairs."""
    pairs = {
        "incident": event.id,
        "event": event.event,
        "version": str(event.version),
        "severity": event.severity,
        "root_ci": event.root_cause.ci or "",
        "alerts": str(event.alert_count),
        "services": ",".join(event.affected_services),
    }
    return " ".join(f"{k}={_value(v)}" for k, v in pairs.items())


class LogfmtSink(TicketSink):
    """Appends one logfmt line per incident event to ``path``."""

    def __init__(self, name: str, path: Path) -> None:
        self.name = name
        self.path = path

    @classmethod
    def from_config(cls, name: str, options: Mapping[str, Any]) -> Self:
        """Option: ``path`` (required)."""
        opts = SinkOptions(name, "logfmt", options)
        sink = cls(name, Path(opts.text("path")))
        opts.done()
        return sink

    def healthcheck(self) -> None:
        """The file's folder exists."""
        if not self.path.parent.is_dir():
            msg = f"logfmt sink {self.name!r}: folder {self.path.parent} does not exist"
            raise SinkError(msg)

    def write_batch(self, events: Sequence[IncidentEvent]) -> None:
        """Append the lines and flush; the file is opened per batch, so nothing is held open."""
        try:
            with self.path.open("a", encoding="utf-8") as out:
                out.writelines(logfmt_line(e) + "\n" for e in events)
        except OSError as exc:
            msg = f"logfmt sink {self.name!r}: cannot write {self.path}: {exc}"
            raise SinkError(msg) from exc
