"""Decoders: wire frames and recordings to canonical Arrow tables plus rejects.

Accepted inputs: one JSON alert, a JSON array of alerts (Alertmanager's API
v2 body), JSON lines, an Arrow IPC stream, and Parquet files. Every decoder
returns a ``Decoded``: the good rows as a table in ``correlator.schema``'s
shape, a ``Reject`` for every bad row, and the number of input rows, so that
``rows == table.num_rows + len(rejects)`` always holds. Nothing raises per
row; a whole file that cannot be opened raises ``SourceError``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import chain
from pathlib import Path

import msgspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from correlator.errors import SourceError
from correlator.rejects import Reject
from correlator.schema import ALERT_SCHEMA, LABELS, TIMESTAMP

DEFAULT_MAX_ROW_BYTES = 1 << 20
CORRELATION_COLUMNS = ["labels", "startsAt", "endsAt", "receivedAt", "status"]
_US_MIN = pa.scalar(-(2**63 - 1) // 1000, pa.int64())
_NULL_US = pa.scalar(None, pa.timestamp("us", tz="UTC"))
_MAX_SECONDS = (2**63 - 1) / 1e9  # int64 nanoseconds end in April 2262


class _Alert(msgspec.Struct):
    labels: dict[str, str]
    annotations: dict[str, str] | None = None
    startsAt: datetime | None = None
    endsAt: datetime | None = None
    generatorURL: str | None = None
    receivedAt: datetime | None = None
    status: str | None = None


_ONE = msgspec.json.Decoder(_Alert)
_MANY = msgspec.json.Decoder(list[_Alert])
_RAW_MANY = msgspec.json.Decoder(list[msgspec.Raw])


@dataclass(frozen=True)
class Decoded:
    """Good rows as a canonical table, the rejected rows, and how many rows came in.

    ``index[i]`` is the input position of the table's row ``i``.
    """

    table: pa.Table
    rejects: list[Reject]
    rows: int
    index: np.ndarray

    @classmethod
    def clean(cls, table: pa.Table, row_offset: int = 0) -> Decoded:
        """Every input row went through."""
        n = table.num_rows
        return cls(table, [], n, np.arange(row_offset, row_offset + n, dtype=np.int64))

    @classmethod
    def refused(cls, rejects: list[Reject]) -> Decoded:
        """No input row went through."""
        return cls(empty_table(), rejects, len(rejects), np.zeros(0, dtype=np.int64))


def _reason(exc: Exception) -> str:
    text = str(exc)
    if isinstance(exc, UnicodeDecodeError):
        return "invalid_utf8"
    if isinstance(exc, msgspec.DecodeError) and not isinstance(exc, msgspec.ValidationError):
        return "invalid_json"
    if "missing required field `labels`" in text or text.endswith("at `$.labels`"):
        return "no_labels"
    if "$.labels[" in text:
        return "label_not_string"
    if "RFC3339" in text or "datetime" in text:
        return "bad_timestamp"
    if text.startswith("Expected `object`") and "- at" not in text:
        return "not_an_object"
    return "bad_field"


def _timestamp_column(values: list[datetime | None]) -> pa.Array:
    """Datetimes to ns timestamps; Alertmanager's zero time (year 1) becomes null.

    A column with no time at all (``endsAt`` of firing alerts, ``receivedAt``
    from live producers) skips the conversion, which costs about half a
    microsecond per time.
    """
    if values.count(None) == len(values):
        return pa.nulls(len(values), TIMESTAMP)
    us = pa.array(values, type=pa.timestamp("us", tz="UTC"))
    raw = pc.cast(us, pa.int64())
    representable = pc.greater(raw, _US_MIN)
    return pc.cast(pc.if_else(representable, us, _NULL_US), TIMESTAMP)


def _map_column(maps: list[dict[str, str] | None]) -> pa.MapArray:
    sizes = np.fromiter((len(m) if m else 0 for m in maps), dtype=np.int32, count=len(maps))
    offsets = np.zeros(len(maps) + 1, dtype=np.int32)
    np.cumsum(sizes, out=offsets[1:])
    keys = pa.array(list(chain.from_iterable(m for m in maps if m)), pa.string())
    values = pa.array(list(chain.from_iterable(m.values() for m in maps if m)), pa.string())
    return pa.MapArray.from_arrays(pa.array(offsets), keys, values, type=LABELS)


def table_from_alerts(alerts: list[_Alert]) -> pa.Table:
    """Decoded JSON alerts as one canonical table (built column by column)."""
    return pa.Table.from_arrays(
        [
            _map_column([a.labels for a in alerts]),
            _map_column([a.annotations for a in alerts]),
            _timestamp_column([a.startsAt for a in alerts]),
            _timestamp_column([a.endsAt for a in alerts]),
            pa.array([a.generatorURL for a in alerts], pa.string()),
            _timestamp_column([a.receivedAt for a in alerts]),
            pa.array([a.status for a in alerts], pa.string()),
        ],
        schema=ALERT_SCHEMA,
    )


_EMPTY = ALERT_SCHEMA.empty_table()  # tables are immutable; making one costs ~60 us


def empty_table() -> pa.Table:
    """A canonical table with no rows."""
    return _EMPTY


def _too_late(alert: _Alert) -> str | None:
    """The first time field past what int64 nanoseconds hold (e.g. a garbled year 6026)."""
    for name in ("startsAt", "endsAt", "receivedAt"):
        value = getattr(alert, name)
        if value is not None:
            aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
            if aware.timestamp() > _MAX_SECONDS:
                return name
    return None


def _decode_rows(raws: list[bytes], row_offset: int, max_row_bytes: int) -> Decoded:
    good: list[_Alert] = []
    index: list[int] = []
    rejects: list[Reject] = []
    for i, raw in enumerate(raws, start=row_offset):
        if len(raw) > max_row_bytes:
            rejects.append(Reject(i, "too_large", f"{len(raw)} bytes", raw))
            continue
        try:
            alert = _ONE.decode(raw)
        except (msgspec.MsgspecError, UnicodeDecodeError) as exc:
            rejects.append(Reject(i, _reason(exc), str(exc), raw))
            continue
        late = _too_late(alert)
        if late is not None:
            rejects.append(Reject(i, "bad_timestamp", f"{late} is after 2262", raw))
            continue
        good.append(alert)
        index.append(i)
    # Building a table costs about half a millisecond even when empty; bad input
    # comes one rejected message at a time, so it must not pay that.
    table = table_from_alerts(good) if good else empty_table()
    return Decoded(table, rejects, len(raws), np.array(index, dtype=np.int64))


def decode_json(
    payload: bytes, *, row_offset: int = 0, max_row_bytes: int = DEFAULT_MAX_ROW_BYTES
) -> Decoded:
    """One JSON alert or a JSON array of alerts.

    The whole body is decoded in one call when it is clean; only a body with a
    bad row is taken apart row by row, so the good rows still go through.
    """
    if payload.lstrip()[:1] == b"[":
        try:
            alerts = _MANY.decode(payload)
        except (msgspec.MsgspecError, UnicodeDecodeError):
            pass
        else:
            if len(payload) <= max_row_bytes or all(
                len(raw) <= max_row_bytes for raw in _RAW_MANY.decode(payload)
            ):
                try:
                    return Decoded.clean(table_from_alerts(alerts), row_offset)
                except pa.ArrowInvalid:  # a time out of range: found row by row below
                    pass
        try:
            raws = [bytes(r) for r in _RAW_MANY.decode(payload)]
        except (msgspec.MsgspecError, UnicodeDecodeError) as exc:
            return Decoded.refused([Reject(row_offset, _reason(exc), str(exc), payload)])
        return _decode_rows(raws, row_offset, max_row_bytes)
    return _decode_rows([payload], row_offset, max_row_bytes)


def decode_json_lines(
    data: bytes, *, row_offset: int = 0, max_row_bytes: int = DEFAULT_MAX_ROW_BYTES
) -> Decoded:
    """JSON lines, one alert per non-blank line; a row is a line."""
    lines = [line for line in data.split(b"\n") if line.strip()]
    if not lines:
        return Decoded.refused([])
    if max(map(len, lines)) <= max_row_bytes:
        try:
            alerts = _MANY.decode(b"[" + b",".join(lines) + b"]")
        except (msgspec.MsgspecError, UnicodeDecodeError):
            pass
        else:
            if len(alerts) == len(lines):
                try:
                    return Decoded.clean(table_from_alerts(alerts), row_offset)
                except pa.ArrowInvalid:  # a time out of range: found row by row below
                    pass
    return _decode_rows(lines, row_offset, max_row_bytes)


def conform(table: pa.Table, *, row_offset: int = 0) -> Decoded:
    """An Arrow table from a producer or a file, cast to the canonical schema.

    Missing optional columns become nulls and extra columns are dropped; a
    table without labels, or whose columns cannot be cast, is rejected whole.
    """
    n = table.num_rows
    if "labels" not in table.column_names:
        detail = "no labels column"
        return Decoded.refused([Reject(row_offset + i, "bad_arrow", detail) for i in range(n)])
    columns = []
    for field in ALERT_SCHEMA:
        if field.name not in table.column_names:
            columns.append(pa.nulls(n, field.type))
            continue
        column = table.column(field.name)
        if pa.types.is_timestamp(column.type) and column.type.unit != "ns":
            column = _to_ns(column)
        if column.type != field.type and not _compatible(column.type, field.type):
            try:
                column = pc.cast(column, field.type)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                detail = f"column {field.name!r} of type {column.type}: {exc}"
                return Decoded.refused(
                    [Reject(row_offset + i, "bad_arrow", detail) for i in range(n)]
                )
        columns.append(column)
    schema = pa.schema([f.with_type(c.type) for f, c in zip(ALERT_SCHEMA, columns, strict=True)])
    return Decoded.clean(pa.Table.from_arrays(columns, schema=schema), row_offset)


def _to_ns(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """A timestamp column in s, ms or us as ns; a time ns cannot hold becomes null (unset).

    A plain cast would raise on such a time and take the daemon's loop down.
    """
    scale = {"s": 10**9, "ms": 10**6, "us": 10**3}[column.type.unit]
    limit = (2**63 - 1) // scale
    raw = pc.cast(column, pa.int64())
    low, high = pa.scalar(-limit, pa.int64()), pa.scalar(limit, pa.int64())
    inside = pc.and_(pc.greater(raw, low), pc.less(raw, high))
    kept = pc.if_else(inside, raw, pa.scalar(None, pa.int64()))
    return pc.multiply(kept, pa.scalar(scale, pa.int64())).cast(TIMESTAMP)


def _compatible(found: pa.DataType, wanted: pa.DataType) -> bool:
    """Types the normalizer reads as they are: any timestamp unit, dictionary strings."""
    if pa.types.is_timestamp(found) and pa.types.is_timestamp(wanted):
        return True
    if pa.types.is_map(found) and pa.types.is_map(wanted):
        return all(
            t == pa.string() or (pa.types.is_dictionary(t) and t.value_type == pa.string())
            for t in (found.key_type, found.item_type)
        )
    return False


_PARQUET_DICTIONARIES = ["labels.key_value.key", "labels.key_value.value"]


def read_parquet(path: str | Path, *, columns: list[str] | None = None) -> pa.Table:
    """A Parquet recording, label strings read as dictionaries (no per-row strings built)."""
    return pq.read_table(path, columns=columns, read_dictionary=_PARQUET_DICTIONARIES)


def decode_arrow_stream(payload: bytes, *, row_offset: int = 0) -> Decoded:
    """An Arrow IPC stream; an unreadable stream is one rejected row."""
    try:
        table = pa.ipc.open_stream(payload).read_all()
    except (pa.ArrowInvalid, pa.ArrowTypeError, OSError) as exc:
        return Decoded.refused([Reject(row_offset, "bad_arrow", str(exc), payload)])
    return conform(table, row_offset=row_offset)


def read_recording(path: str | Path, *, columns: list[str] | None = None) -> Decoded:
    """A recorded storm: JSON lines, a JSON array, Arrow IPC, Parquet, or a folder of Parquet.

    A folder is read as the daemon's event log: its ``*.parquet`` files in
    name order. ``columns`` limits what is read from Parquet (the others come
    back as nulls), e.g. ``CORRELATION_COLUMNS`` when annotations are not needed.
    """
    path = Path(path)
    try:
        if path.is_dir():
            files = sorted(path.glob("*.parquet"))
            if not files:
                msg = f"{path}: no *.parquet files in this folder"
                raise SourceError(msg)
            return conform(
                pa.concat_tables(
                    [read_parquet(f, columns=columns) for f in files], promote_options="permissive"
                )
            )
        suffix = path.suffix.lower()
        if suffix == ".parquet":
            return conform(read_parquet(path, columns=columns))
        if suffix in {".arrow", ".arrows", ".ipc"}:
            return decode_arrow_stream(path.read_bytes())
        data = path.read_bytes()
    except (OSError, pa.ArrowException) as exc:
        msg = f"{path}: cannot read recording: {exc}"
        raise SourceError(msg) from exc
    if suffix == ".json" and data.lstrip()[:1] == b"[":
        return decode_json(data)
    if suffix in {".jsonl", ".ndjson", ".json"}:
        return decode_json_lines(data)
    msg = f"{path}: unknown recording format {suffix!r} (use .jsonl, .json, .parquet or .arrow)"
    raise SourceError(msg)
