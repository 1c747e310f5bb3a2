"""The dead-letter file: every rejected input row with its reason, as rotated JSON lines."""

from __future__ import annotations

import base64
import time
from collections.abc import Sequence
from pathlib import Path

import msgspec

from correlator.rejects import Reject


class _Line(msgspec.Struct):
    at: float
    source: str
    reason: str
    detail: str
    raw: str
    raw_encoding: str


class DeadLetters:
    """Appends rejects to ``dead-letter.jsonl``, rotating to ``.1`` … ``.N`` by size."""

    def __init__(self, directory: str | Path, *, max_file_bytes: int, keep_files: int) -> None:
        self.path = Path(directory) / "dead-letter.jsonl"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.max_file_bytes = max_file_bytes
        self.keep_files = keep_files
        self._encoder = msgspec.json.Encoder()

    def write(self, rejects: Sequence[Reject], source: str) -> None:
        """Record ``rejects`` (the raw bytes as text when UTF-8, else base64)."""
        if not rejects:
            return
        now = time.time()
        lines = []
        for reject in rejects:
            try:
                raw, encoding = reject.raw.decode("utf-8"), "utf-8"
            except UnicodeDecodeError:
                raw, encoding = base64.b64encode(reject.raw).decode("ascii"), "base64"
            line = _Line(now, source, reject.reason, reject.detail, raw, encoding)
            lines.append(self._encoder.encode(line) + b"\n")
        with self.path.open("ab") as out:
            out.write(b"".join(lines))
            size = out.tell()
        if size >= self.max_file_bytes:
            self._rotate()

    def _rotate(self) -> None:
        for k in range(self.keep_files - 1, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{k}")
            if older.exists():
                older.replace(self.path.with_name(f"{self.path.name}.{k + 1}"))
        self.path.replace(self.path.with_name(f"{self.path.name}.1"))
        excess = self.path.with_name(f"{self.path.name}.{self.keep_files + 1}")
        excess.unlink(missing_ok=True)
