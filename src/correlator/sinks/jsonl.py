"""The JSON-lines sink: one incident event per line, to a file or stdout."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

from correlator.errors import SinkError
from correlator.incident import IncidentEvent, encode_event
from correlator.sinks.base import TicketSink


class JsonlSink(TicketSink):
    """Appends events as JSON lines to ``path`` (``-`` or None for stdout)."""

    def __init__(self, path: str | Path | None = None, *, append: bool = True) -> None:
        self._owned = path not in (None, "-")
        try:
            if self._owned:
                target = Path(path)  # type: ignore[arg-type]
                target.parent.mkdir(parents=True, exist_ok=True)
                self._out: BinaryIO = target.open("ab" if append else "wb")
            else:
                self._out = sys.stdout.buffer
        except OSError as exc:
            msg = f"jsonl sink: cannot open {path}: {exc}"
            raise SinkError(msg) from exc

    def write_batch(self, events: Sequence[IncidentEvent]) -> None:
        """Write and flush the events, one line each."""
        if not events:
            return
        try:
            self._out.write(b"".join(encode_event(e) + b"\n" for e in events))
            self._out.flush()
        except OSError as exc:
            msg = f"jsonl sink: write failed: {exc}"
            raise SinkError(msg) from exc

    def close(self) -> None:
        """Close the file (stdout is left open)."""
        if self._owned:
            self._out.close()
