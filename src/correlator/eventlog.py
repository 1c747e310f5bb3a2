"""The event log ("black box"): every accepted alert, in order, as it was received.

Segments are named by the number of the first alert they hold
(``events-000000001234.parquet``), so the log is one numbered sequence. The
segment being written is an Arrow IPC stream (``.arrows``), flushed after
every batch: a crash loses at most the batch being written, and a truncated
stream still reads up to its last whole batch. A large batch is written
on a thread of its own while the correlation loop correlates it, and the
loop waits for it (``sync``) before emitting what it caused. When a
segment reaches its size or age limit it is rewritten as Parquet and a new
one starts; the oldest Parquet segments are deleted once the log exceeds
its retention.
Sealing runs on its own thread. While it keeps up it is paced: a burst of
a tenth of a CPU second every few seconds of a storm delays the alerts
behind it, so the thread rests between row groups. Once a second full
segment waits, resting would only make the loop wait later, so it stops
resting; and only when more than ``SEAL_BACKLOG`` full segments are
unsealed does a rotation wait for it. (When every rotation waited for the
previous sealing, the loop spent a quarter of its time waiting at 800 k
Arrow alerts/s.) On Linux the thread also runs at a lower priority
(``SEAL_NICE``): on two cores under an Arrow storm, the correlation loop
spent 20-35 % of its time runnable but waiting for a CPU, 17-18 % with
sealing yielding to it.
``correlator replay`` reads a log folder directly.

Label strings are written once per segment, not once per alert. The
correlation loop holds every label as a ``Vocabulary`` id; copying those
strings out again for every logged alert was a quarter of the loop's time.
So the stream stores labels as ``map<int32, int32>`` of segment-local
string ids, and each batch carries, in its custom metadata, the strings
first used by it (a batch is written whole or not at all, so its strings
come with it). Sealing writes each row group's labels as dictionary
columns over the strings that row group uses: Parquet's dictionary
encoding, so readers see ordinary string maps.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numba
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from correlator.schema import ALERT_SCHEMA, LABEL_LEAVES, UNLABELLED
from correlator.threadnames import NamedThread, name_this_thread
from correlator.vocab import Vocabulary

log = logging.getLogger("correlator.eventlog")
_PREFIX = "events-"
# Column statistics are kept where a reader can prune by them (times, status);
# on the label and annotation maps they cost a fifth of the sealing time and
# say nothing (min and max of every label value).
_STATISTICS = ["startsAt", "endsAt", "receivedAt", "status"]
# Dictionary encoding where values repeat. The arrival stamp only grows: stored
# as deltas, the sealed file is a quarter smaller and sealing an eighth to a
# quarter cheaper than when a dictionary is tried first
# (``benchmarks/eventlog_bench.py``).
_DICTIONARY_COLUMNS = [
    *LABEL_LEAVES,
    "annotations.key_value.key",
    "annotations.key_value.value",
    "startsAt",
    "endsAt",
    "generatorURL",
    "status",
]
_ENCODINGS = {"receivedAt": "DELTA_BINARY_PACKED"}
# Rows per row group when sealing: the unit of work between two rests.
_SEAL_ROWS = 32_768
WRITE_ASIDE_ROWS = 4096
"""Batches of at least this many alerts are written on the log's writer thread while the
loop correlates them; smaller ones at once. Handing a batch over costs about 0.3 ms of
thread wake-ups, more than writing a small batch takes (``benchmarks/loop_bench.py``)."""
SEAL_NICE = 10
"""The sealing thread's nice value: it yields the CPU to the correlation loop and the decode
process, whose wait is the daemon's, and takes what they leave."""
SEAL_BACKLOG = 4
"""Full segments, the one being sealed included, that may await sealing before a rotation
waits for it: 256 MiB of streams at the default segment size."""
# The open segment's labels: segment-local string ids.
_ID_LABELS = pa.map_(pa.int32(), pa.int32())
_STREAM_SCHEMA = ALERT_SCHEMA.set(0, pa.field("labels", _ID_LABELS, nullable=False))
_DICTIONARY = pa.dictionary(pa.int32(), pa.string())
LOG_SCHEMA = ALERT_SCHEMA.set(
    0, pa.field("labels", pa.map_(_DICTIONARY, _DICTIONARY), nullable=False)
)
"""The log's columns as sealed and as read: canonical, label strings dictionary-encoded."""
# A batch's new strings, as the offsets and UTF-8 bytes of an Arrow string array.
_OFFSETS, _DATA = b"correlator.strings.offsets", b"correlator.strings.data"
_NO_STRINGS = pa.array([], pa.string())
_WARM = pa.array([""], pa.string())


def _first_row(path: Path) -> int:
    return int(path.stem.removeprefix(_PREFIX))


def segments(directory: str | Path) -> list[Path]:
    """The log's segments in order (Parquet and the open stream alike).

    While a stream is being sealed both forms exist for a moment; the
    Parquet one is complete by then and is the one listed. Only names the
    log gives (``events-`` and the first alert's number) count.
    """
    folder = Path(directory)
    found: dict[str, Path] = {}
    for path in folder.glob(f"{_PREFIX}*"):
        if not path.stem.removeprefix(_PREFIX).isdigit():
            continue
        if path.suffix == ".parquet" or (path.suffix == ".arrows" and path.stem not in found):
            found[path.stem] = path
    return sorted(found.values(), key=_first_row)


def _read_stream(path: Path) -> tuple[pa.Table, pa.StringArray]:
    """The whole batches of a stream segment, and the strings its label ids name.

    Reading stops quietly at a torn tail; a stream that is gone raises
    ``FileNotFoundError``. A stream written before labels were stored as ids
    (string maps, no strings) reads as it is.
    """
    batches, strings = [], [_NO_STRINGS]
    schema = _STREAM_SCHEMA
    try:
        reader = pa.ipc.open_stream(pa.memory_map(str(path)))
    except FileNotFoundError:
        raise
    except (pa.ArrowInvalid, OSError):
        return schema.empty_table(), _NO_STRINGS
    schema = reader.schema
    while True:
        try:
            batch, metadata = reader.read_next_batch_with_custom_metadata()
        except (StopIteration, pa.ArrowInvalid, OSError):
            break
        batches.append(batch)
        if metadata is not None and _OFFSETS in metadata:
            offsets, data = pa.py_buffer(metadata[_OFFSETS]), pa.py_buffer(metadata[_DATA])
            count = len(offsets) // 4 - 1
            strings.append(pa.StringArray.from_buffers(count, offsets, data))
    return pa.Table.from_batches(batches, schema=schema), pa.concat_arrays(strings)


def _labels_of_ids(
    labels: pa.ChunkedArray, strings: pa.StringArray, start: int, stop: int
) -> pa.MapArray:
    """Rows ``start:stop`` of a label-id column as a map of dictionary strings.

    Each dictionary holds only the strings those rows use, so a row group
    stores its own strings and no more.
    """
    chunk = labels.slice(start, stop - start).combine_chunks()
    offsets = chunk.offsets.to_numpy()
    lo, hi = int(offsets[0]), int(offsets[-1])
    slot = np.full(len(strings), -1, dtype=np.int32)
    children = []
    for ids in (chunk.keys, chunk.items):
        ids = ids.slice(lo, hi - lo).to_numpy()
        indices = np.empty(len(ids), dtype=np.int32)
        used = np.empty(len(ids), dtype=np.int32)
        count = _first_use(ids, slot, indices, used)
        children.append(pa.DictionaryArray.from_arrays(indices, strings.take(used[:count])))
    return pa.MapArray.from_arrays(offsets - np.int32(lo), *children)


@numba.njit(nogil=True, cache=True, _nrt=False)
def _first_use(ids, slot, indices, used):
    """``ids`` renumbered in order of first use into ``indices``, the ids so used in
    ``used``; returns how many. ``slot`` (all -1) is left as it was found."""
    count = 0
    for i in range(ids.shape[0]):
        k = slot[ids[i]]
        if k < 0:
            k = count
            slot[ids[i]] = k
            used[k] = ids[i]
            count += 1
        indices[i] = k
    for k in range(count):
        slot[used[k]] = -1
    return count


def _write(
    writer: pa.ipc.RecordBatchStreamWriter,
    sink: pa.BufferedOutputStream,
    batches: list[pa.RecordBatch],
    metadata: dict[bytes, bytes] | None,
) -> None:
    """One appended batch into its segment, flushed (on the writer thread, or at once
    for a small batch); its new strings ride on its first record batch."""
    for k, batch in enumerate(batches):
        writer.write_batch(batch, custom_metadata=metadata if k == 0 else None)
    sink.flush()


@numba.njit(nogil=True, cache=True, _nrt=False)
def _localized(local, known, ids, out, fresh):
    """``ids`` as local ids into ``out``; an id new to the segment takes the next local
    id and is noted in ``fresh``, in order of first use. Returns the ids known after."""
    n = 0
    for i in range(ids.shape[0]):
        x = local[ids[i]]
        if x < 0:
            x = known + n
            local[ids[i]] = x
            fresh[n] = ids[i]
            n += 1
        out[i] = x
    return known + n


def _log_schema(columns: list[str] | None) -> pa.Schema:
    return pa.schema([LOG_SCHEMA.field(c) for c in columns]) if columns else LOG_SCHEMA


def read_segment(path: Path, *, columns: list[str] | None = None) -> pa.Table:
    """One segment in ``LOG_SCHEMA``, or only its ``columns``.

    A stream sealed since it was listed is read from its Parquet file, so a
    reader beside a running log never misses a segment.
    """
    schema = _log_schema(columns)
    if path.suffix == ".arrows":
        try:
            table, strings = _read_stream(path)
        except FileNotFoundError:
            path = path.with_suffix(".parquet")
        else:
            if table.schema.field("labels").type == _ID_LABELS:
                labels = _labels_of_ids(table.column("labels"), strings, 0, table.num_rows)
                table = table.set_column(0, LOG_SCHEMA.field("labels"), labels)
            return table.select(schema.names).cast(schema)
    return pq.read_table(path, columns=columns, read_dictionary=LABEL_LEAVES).cast(schema)


def read_log(
    directory: str | Path, *, after: int = 0, columns: list[str] | None = None
) -> pa.Table:
    """Every logged alert from number ``after`` on (0: the whole log), in ``LOG_SCHEMA``
    (or only its ``columns``), as one table."""
    tables = []
    for path in segments(directory):
        table = read_segment(path, columns=columns)
        first = _first_row(path)
        if first + table.num_rows <= after:
            continue
        tables.append(table.slice(max(0, after - first)))
    if not tables:
        return _log_schema(columns).empty_table()
    return pa.concat_tables(tables)


class EventLog:
    """Appends accepted alerts to the log folder; one writer (the correlation loop).

    Labels come as ids of ``vocab``, the vocabulary the writer interns into.
    """

    def __init__(
        self,
        directory: str | Path,
        vocab: Vocabulary,
        *,
        max_file_bytes: int = 64 << 20,
        max_file_age: float = 3600.0,
        retention_bytes: int = 1 << 30,
    ) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.vocab = vocab
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
        self._writes: ThreadPoolExecutor | None = None  # the writer thread, from the first append
        self._pending: Future[None] | None = None  # the last append's write
        self._pending_rows = 0
        self._path: Path | None = None
        self._opened = 0.0
        # Vocabulary id to segment-local id (-1: not yet in this segment).
        self._local = np.full(0, -1, dtype=np.int32)
        self._known = 0
        self._unsealed: deque[Path] = deque()  # the first is being sealed
        self._sealed = threading.Condition()
        self._sealer: threading.Thread | None = None
        self._hurry = threading.Event()  # set: sealing does not rest
        self._closing = False
        # Compile (or load) the sealing kernel now: numba holds the GIL while it
        # compiles, which on the sealing thread would stall the loop mid-storm.
        _labels_of_ids(pa.chunked_array([pa.array([[(0, 0)]], _ID_LABELS)]), _WARM, 0, 1)

    def append(
        self, table: pa.Table, ptr: np.ndarray, keys: np.ndarray, values: np.ndarray
    ) -> None:
        """Log the alerts of ``table`` (the canonical columns but labels, ``receivedAt``
        set); their labels are the CSR ``ptr``/``keys``/``values`` of vocabulary ids, as
        in an ``AlertBatch``.

        A batch of ``WRITE_ASIDE_ROWS`` or more is written and flushed on the log's
        writer thread while the caller goes on (the correlation loop correlates it
        meanwhile: the write was a tenth of the loop's time at 10,000 alerts), a
        smaller one at once. Either is in the log once ``sync``, the next ``append``,
        ``rotate`` or ``close`` returns, and a failed write is raised there.
        """
        if table.num_rows == 0:
            return
        self.sync()
        if self._writer is None:
            self._open()
        assert self._writer is not None and self._sink is not None
        local_keys, local_values, metadata = self._localize(keys, values)
        labels = pa.MapArray.from_arrays(
            np.asarray(ptr, dtype=np.int32) - np.int32(ptr[0]), local_keys, local_values
        )
        rest = table if table.schema == UNLABELLED else table.cast(UNLABELLED)
        whole = rest.add_column(0, _STREAM_SCHEMA.field("labels"), labels)
        work = (self._writer, self._sink, whole.to_batches(), metadata)
        if table.num_rows >= WRITE_ASIDE_ROWS:
            if self._writes is None:
                self._writes = ThreadPoolExecutor(
                    1, thread_name_prefix="eventlog-write", initializer=name_this_thread
                )
            self._pending = self._writes.submit(_write, *work)
        else:
            self._pending = Future()
            try:
                _write(*work)
            except Exception as exc:  # raised by sync, as from the writer thread
                self._pending.set_exception(exc)
            else:
                self._pending.set_result(None)
        self._pending_rows = table.num_rows

    def sync(self) -> None:
        """Wait until the last appended batch is written and flushed, then start a new
        segment if this one is full.

        Raises what made the write fail (an ``OSError``: a full disk): that batch is
        not in the log. The segment it broke reads to its last whole batch and is
        sealed, and the next append starts a new one.
        """
        pending, self._pending = self._pending, None
        if pending is None:
            return
        try:
            pending.result()
        except Exception:
            self._retire(broken=True)
            raise
        self.rows += self._pending_rows
        assert self._sink is not None
        too_big = self._sink.tell() >= self.max_file_bytes
        if too_big or time.monotonic() - self._opened >= self.max_file_age:
            self._retire()

    def _localize(
        self, keys: np.ndarray, values: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, dict[bytes, bytes] | None]:
        """Label ids as segment-local ids, and the metadata naming the strings new to it."""
        if len(self._local) < len(self.vocab):
            grown = np.full(max(len(self.vocab), 2 * len(self._local)), -1, dtype=np.int32)
            grown[: len(self._local)] = self._local
            self._local = grown
        local_keys = np.empty(len(keys), dtype=np.int32)
        local_values = np.empty(len(values), dtype=np.int32)
        fresh = np.empty(len(keys) + len(values), dtype=np.int32)
        known = _localized(self._local, self._known, keys, local_keys, fresh)
        known = _localized(self._local, known, values, local_values, fresh[known - self._known :])
        new, self._known = fresh[: known - self._known], known
        if not len(new):
            return local_keys, local_values, None
        _, offsets, data = self.vocab.string_array(new).buffers()
        metadata = {_OFFSETS: offsets.to_pybytes(), _DATA: data.to_pybytes() if data else b""}
        return local_keys, local_values, metadata

    def rotate(self) -> None:
        """Start a new segment; the full one is sealed as Parquet in the background.

        Rewriting a large segment takes a fraction of a second, which the
        correlation loop must not wait for, unless more than ``SEAL_BACKLOG``
        full segments would then await sealing: then it waits until one is
        sealed, so a storm the sealing cannot keep up with does not fill the disk.
        """
        self.sync()
        self._retire()

    def _retire(self, *, broken: bool = False) -> None:
        """Close the open segment and queue it for sealing (see ``rotate``); a ``broken``
        one (its write failed) is closed as far as it still can be."""
        if self._writer is None:
            return
        assert self._sink is not None and self._path is not None
        with contextlib.suppress(Exception) if broken else contextlib.nullcontext():
            self._writer.close()
            self._sink.close()
        self._writer = self._sink = None
        with self._sealed:
            self._unsealed.append(self._path)
            self._pace()
            self._sealed.notify_all()
            if self._sealer is None:
                self._sealer = NamedThread(
                    target=self._seal_queued, name="eventlog-seal", daemon=True
                )
                self._sealer.start()
            while len(self._unsealed) > SEAL_BACKLOG:
                self._sealed.wait()

    def wait(self) -> None:
        """Wait until every full segment is sealed."""
        with self._sealed:
            while self._unsealed:
                self._sealed.wait()

    def close(self) -> None:
        """Seal the open segment and every one waiting, unpaced (on a clean shutdown), and
        end the writer and sealing threads; an append after this starts a new segment and
        threads."""
        with self._sealed:
            self._closing = True
            self._pace()
        try:
            self.rotate()
        finally:
            self.wait()
            with self._sealed:
                self._closing = False
                self._pace()
                sealer, self._sealer = self._sealer, None
                self._sealed.notify_all()
            if sealer is not None:
                sealer.join()
            if self._writes is not None:
                self._writes.shutdown()
                self._writes = None

    def _pace(self) -> None:
        """Let sealing rest only while it keeps up (called holding ``_sealed``)."""
        if self._closing or len(self._unsealed) > 1:
            self._hurry.set()
        else:
            self._hurry.clear()

    def _seal_queued(self) -> None:
        """The sealing thread: seal the queued segments in order, then apply retention.

        A segment that fails to seal (a full disk) stays a stream, which
        reads as well and is sealed on the next start.
        """
        me = threading.current_thread()
        if sys.platform == "linux":  # where a thread has a nice value of its own
            with contextlib.suppress(OSError):  # a sandbox may refuse it: seal unniced
                os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), SEAL_NICE)
        while True:
            with self._sealed:
                while not self._unsealed and self._sealer is me:
                    self._sealed.wait()
                if not self._unsealed:
                    return
                path = self._unsealed[0]
            try:
                self._seal(path, self._hurry)
                self._retain()
            except Exception:  # whatever it was, the loop must not wait for this segment forever
                log.exception("sealing %s failed; it stays a stream until the next start", path)
            with self._sealed:
                self._unsealed.popleft()
                self._pace()
                self._sealed.notify_all()

    def _open(self) -> None:
        self._path = self.directory / f"{_PREFIX}{self.rows:012d}.arrows"
        # One write call per batch instead of one per column buffer.
        self._sink = pa.BufferedOutputStream(pa.OSFile(str(self._path), "wb"), 1 << 20)
        self._writer = pa.ipc.new_stream(self._sink, _STREAM_SCHEMA)
        self._opened = time.monotonic()
        self._local[:] = -1
        self._known = 0

    @staticmethod
    def _seal(path: Path, hurry: threading.Event | None = None) -> None:
        """Rewrite a stream segment as Parquet, then remove the stream.

        With ``hurry``, the thread rests after each row group as long as
        writing it took (half a CPU at most), while ``hurry`` is not set.
        """
        table, strings = _read_stream(path)
        if table.num_rows:
            ids = table.schema.field("labels").type == _ID_LABELS
            schema = LOG_SCHEMA if ids else ALERT_SCHEMA
            target = path.with_suffix(".parquet")
            partial = target.with_suffix(".parquet.tmp")
            with pq.ParquetWriter(
                partial,
                schema,
                write_statistics=_STATISTICS,
                use_dictionary=_DICTIONARY_COLUMNS,
                column_encoding=_ENCODINGS,
            ) as writer:
                for start in range(0, table.num_rows, _SEAL_ROWS):
                    began = time.perf_counter()
                    stop = min(start + _SEAL_ROWS, table.num_rows)
                    part = table.slice(start, stop - start)
                    if ids:
                        labels = _labels_of_ids(table.column("labels"), strings, start, stop)
                        part = part.set_column(0, schema.field("labels"), labels)
                    writer.write_table(part.cast(schema))
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
