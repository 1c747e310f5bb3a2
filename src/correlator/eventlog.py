"""The event log ("black box"): every accepted alert, in order, as it was received.

Segments are named by the number of the first alert they hold
(``events-000000001234.parquet``), so the log is one numbered sequence. The
segment being written is an Arrow IPC stream (``.arrows``), flushed after
every batch: a crash loses at most the batch being written, and a truncated
stream still reads up to its last whole batch. When a segment reaches its
size or age limit it is rewritten as Parquet and a new one starts; the
oldest Parquet segments are deleted once the log exceeds its retention.
Sealing is paced: a burst of a tenth of a CPU second every few seconds of
a storm delays the alerts behind it, so the thread rests between row
groups, unless the next rotation waits for it.
``correlator replay`` reads a log folder directly.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from correlator.schema import ALERT_SCHEMA

_PREFIX = "events-"
# Column statistics are kept where a reader can prune by them (times, status);
# on the label and annotation maps they cost a fifth of the sealing time and
# say nothing (min and max of every label value).
_STATISTICS = ["startsAt", "endsAt", "receivedAt", "status"]
# Rows per row group when sealing: the unit of work between two rests.
_SEAL_ROWS = 32_768


def _first_row(path: Path) -> int:
    return int(path.stem.removeprefix(_PREFIX))


def segments(directory: str | Path) -> list[Path]:
    """The log's segments in order (Parquet and the open stream alike).

    While a stream is being sealed both forms exist for a moment; the
    Parquet one is complete by then and is the one listed.
    """
    folder = Path(directory)
    found: dict[str, Path] = {}
    for path in folder.glob(f"{_PREFIX}*"):
        if path.suffix == ".parquet" or (path.suffix == ".arrows" and path.stem not in found):
            found[path.stem] = path
    return sorted(found.values(), key=_first_row)


def _read_stream(path: Path) -> Iterator[pa.RecordBatch]:
    """The whole batches of a stream segment, stopping quietly at a torn tail."""
    try:
        reader = pa.ipc.open_stream(pa.memory_map(str(path)))
    except (pa.ArrowInvalid, OSError):
        return
    while True:
        try:
            yield reader.read_next_batch()
        except StopIteration:
            return
        except (pa.ArrowInvalid, OSError):
            return


def read_segment(path: Path) -> pa.Table:
    """One segment as a canonical table."""
    if path.suffix == ".parquet":
        return pq.read_table(path).cast(ALERT_SCHEMA)
    return pa.Table.from_batches(list(_read_stream(path)), schema=ALERT_SCHEMA)


def read_log(directory: str | Path, *, after: int = 0) -> pa.Table:
    """Every logged alert from number ``after`` on (0: the whole log), as one table."""
    tables = []
    for path in segments(directory):
        table = read_segment(path)
        first = _first_row(path)
        if first + table.num_rows <= after:
            continue
        tables.append(table.slice(max(0, after - first)))
    if not tables:
        return ALERT_SCHEMA.empty_table()
    return pa.concat_tables(tables)


class EventLog:
    """Appends accepted alerts to the log folder; one writer (the correlation loop)."""

    def __init__(
        self,
        directory: str | Path,
        *,
        max_file_bytes: int = 64 << 20,
        max_file_age: float = 3600.0,
        retention_bytes: int = 1 << 30,
    ) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.max_file_bytes = max_file_bytes
        self.max_file_age = max_file_age
        self.retention_bytes = retention_bytes
        existing = segments(self.directory)
        for path in existing:
            if path.suffix == ".arrows":
                self._seal(path)
        existing = segments(self.directory)
        self.rows = 0
        if existing:
            last = existing[-1]
            self.rows = _first_row(last) + pq.ParquetFile(last).metadata.num_rows
        self._writer: pa.ipc.RecordBatchStreamWriter | None = None
        self._sink: pa.BufferedOutputStream | None = None
        self._path: Path | None = None
        self._opened = 0.0
        self._sealing: threading.Thread | None = None
        self._hurry = threading.Event()

    def append(self, table: pa.Table) -> None:
        """Log ``table`` (canonical columns, ``receivedAt`` set) and flush it."""
        if table.num_rows == 0:
            return
        if self._writer is None:
            self._open()
        assert self._writer is not None and self._sink is not None
        self._writer.write_table(
            table if table.schema == ALERT_SCHEMA else table.cast(ALERT_SCHEMA)
        )
        self._sink.flush()
        self.rows += table.num_rows
        too_big = self._sink.tell() >= self.max_file_bytes
        if too_big or time.monotonic() - self._opened >= self.max_file_age:
            self.rotate()

    def rotate(self) -> None:
        """Start a new segment; the full one is sealed as Parquet in the background.

        Rewriting a large segment takes a fraction of a second, which the
        correlation loop must not wait for.
        """
        if self._writer is None:
            return
        assert self._sink is not None and self._path is not None
        self._writer.close()
        self._sink.close()
        self._writer = self._sink = None
        self._hurry.set()  # a sealing still at work finishes unpaced: the loop waits for it
        self.wait()
        self._hurry.clear()
        self._sealing = threading.Thread(
            target=self._seal_and_retain,
            args=(self._path, self._hurry),
            name="eventlog-seal",
            daemon=True,
        )
        self._sealing.start()

    def wait(self) -> None:
        """Wait until the last sealing finished."""
        if self._sealing is not None:
            self._sealing.join()
            self._sealing = None

    def close(self) -> None:
        """Seal the open segment and wait for it (on a clean shutdown)."""
        self.rotate()
        self._hurry.set()
        self.wait()

    def _seal_and_retain(self, path: Path, hurry: threading.Event) -> None:
        self._seal(path, hurry)
        self._retain()

    def _open(self) -> None:
        self._path = self.directory / f"{_PREFIX}{self.rows:012d}.arrows"
        # One write call per batch instead of one per column buffer.
        self._sink = pa.BufferedOutputStream(pa.OSFile(str(self._path), "wb"), 1 << 20)
        self._writer = pa.ipc.new_stream(self._sink, ALERT_SCHEMA)
        self._opened = time.monotonic()

    @staticmethod
    def _seal(path: Path, hurry: threading.Event | None = None) -> None:
        """Rewrite a stream segment as Parquet, then remove the stream.

        With ``hurry``, the thread rests after each row group as long as
        writing it took (half a CPU at most), until ``hurry`` is set.
        """
        table = pa.Table.from_batches(list(_read_stream(path)), schema=ALERT_SCHEMA)
        if table.num_rows:
            target = path.with_suffix(".parquet")
            partial = target.with_suffix(".parquet.tmp")
            with pq.ParquetWriter(partial, ALERT_SCHEMA, write_statistics=_STATISTICS) as writer:
                for start in range(0, table.num_rows, _SEAL_ROWS):
                    began = time.perf_counter()
                    writer.write_table(table.slice(start, _SEAL_ROWS))
                    if hurry is not None:
                        hurry.wait(time.perf_counter() - began)
            os.replace(partial, target)
        path.unlink()

    def _retain(self) -> None:
        sealed = [p for p in segments(self.directory) if p.suffix == ".parquet"]
        total = sum(p.stat().st_size for p in sealed)
        while len(sealed) > 1 and total > self.retention_bytes:
            oldest = sealed.pop(0)
            total -= oldest.stat().st_size
            oldest.unlink()
