"""A progress bar on stderr, hand-written so the benchmarks need no extra dependency."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    """Counts finished steps of a known total and redraws one line on a terminal.

    When the stream is not a terminal (CI logs) each step prints its own line
    instead, so the log still shows where a slow or failing run was.
    """

    def __init__(self, total: int, stream: TextIO | None = None, width: int = 30) -> None:
        self.total = max(total, 1)
        self.done = 0
        self.stream = stream or sys.stderr
        self.width = width
        self.started = time.monotonic()
        self._tty = self.stream.isatty()

    def step(self, label: str) -> None:
        """Announce the step about to run as ``label``."""
        self._draw(label)

    def advance(self, label: str = "") -> None:
        """Mark one step finished."""
        self.done = min(self.done + 1, self.total)
        if self._tty:
            self._draw(label)

    def close(self) -> None:
        """End the bar's line."""
        if self._tty:
            self.stream.write("\n")
        self.stream.flush()

    def _draw(self, label: str) -> None:
        filled = round(self.width * self.done / self.total)
        bar = "#" * filled + "-" * (self.width - filled)
        elapsed = time.monotonic() - self.started
        text = f"[{bar}] {self.done}/{self.total} {elapsed:5.0f}s {label}"
        if self._tty:
            self.stream.write("\r" + text[:150].ljust(150))
        else:
            self.stream.write(text + "\n")
        self.stream.flush()
