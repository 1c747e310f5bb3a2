"""The JSON-lines sink: one incident event per line, to a file or stdout.

Options: ``path`` (a file, or ``-`` for stdout; default ``-``) and ``append``
(default true; false truncates the file when the sink first writes).
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, BinaryIO, Self

from correlator.errors import SinkError
from correlator.incident import IncidentEvent, encode_event
from correlator.sinks.base import SinkOptions, TicketSink


class JsonlSink(TicketSink):
    """Appends events as JSON lines to ``path`` (``-`` or None for stdout).

    The file is opened on the first healthcheck or write, so building the
    sink does no I/O.
    """

    def __init__(self, path: str | Path | None = None, *, append: bool = True) -> None:
        self.name = "jsonl"
        self._path = None if path is None or path == "-" else Path(path)
        self._append = append
        self._out: BinaryIO | None = None

    @classmethod
    def from_config(cls, name: str, options: Mapping[str, Any]) -> Self:
        """Options: ``path`` (default ``-``, stdout), ``append`` (default true)."""
        opts = SinkOptions(name, "jsonl", options)
        sink = cls(opts.text("path", "-"), append=opts.flag("append", True))
        opts.done()
        sink.name = name
        return sink

    def _open(self) -> BinaryIO:
        if self._out is None:
            if self._path is None:
                self._out = sys.stdout.buffer
            else:
                try:
                    self._path.parent.mkdir(parents=True, exist_ok=True)
                    self._out = self._path.open("ab" if self._append else "wb")
                except OSError as exc:
                    msg = f"jsonl sink {self.name!r}: cannot open {self._path}: {exc}"
                    raise SinkError(msg) from exc
        return self._out

    def healthcheck(self) -> None:
        """Open the file (creating its folder), so a bad path shows before traffic."""
        self._open()

    def write_batch(self, events: Sequence[IncidentEvent]) -> None:
        """Write and flush the events, one line each."""
        if not events:
            return
        out = self._open()
        try:
            out.write(b"".join(encode_event(e) + b"\n" for e in events))
            out.flush()
        except OSError as exc:
            msg = f"jsonl sink {self.name!r}: write to {self._path or 'stdout'} failed: {exc}"
            raise SinkError(msg) from exc

    def close(self) -> None:
        """Close the file (stdout is left open)."""
        if self._out is not None and self._path is not None:
            self._out.close()
        self._out = None
