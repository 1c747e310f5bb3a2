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
from operator import attrgetter
from pathlib import Path
from typing import Protocol

import msgspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from correlator.errors import SourceError
from correlator.eventlog import read_log, segments
from correlator.jsonscan import scan_alerts
from correlator.rejects import Reject
from correlator.rfc3339 import parse_rfc3339, timestamps_of_us
from correlator.schema import ALERT_SCHEMA, LABEL_LEAVES, LABELS, TIMESTAMP

DEFAULT_MAX_ROW_BYTES = 1 << 20
CORRELATION_COLUMNS = ["labels", "startsAt", "endsAt", "receivedAt", "status"]
_US_MIN = pa.scalar(-(2**63 - 1) // 1000, pa.int64())
_NULL_US = pa.scalar(None, pa.timestamp("us", tz="UTC"))
_MAX_SECONDS = (2**63 - 1) / 1e9  # int64 nanoseconds end in April 2262


class _Alert(msgspec.Struct, gc=False):
    labels: dict[str, str]
    annotations: dict[str, str] | None = None
    startsAt: datetime | None = None
    endsAt: datetime | None = None
    generatorURL: str | None = None
    receivedAt: datetime | None = None
    status: str | None = None


class _TextTimesAlert(msgspec.Struct, gc=False):
    """``_Alert`` with its times left as text, for Arrow to parse a whole column at once."""

    labels: dict[str, str]
    annotations: dict[str, str] | None = None
    startsAt: str | None = None
    endsAt: str | None = None
    generatorURL: str | None = None
    receivedAt: str | None = None
    status: str | None = None


_ONE = msgspec.json.Decoder(_Alert)
_MANY = msgspec.json.Decoder(list[_Alert])
_MANY_TEXT_TIMES = msgspec.json.Decoder(list[_TextTimesAlert])
_RAW_MANY = msgspec.json.Decoder(list[msgspec.Raw])
_US_UTC = pa.timestamp("us", tz="UTC")


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
    # msgspec before 0.23 raised UnicodeDecodeError for bad UTF-8 in a string;
    # 0.23 raises its DecodeError ("Invalid UTF-8 encoded string").
    if isinstance(exc, UnicodeDecodeError) or (
        isinstance(exc, msgspec.DecodeError) and "UTF-8" in text
    ):
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
    return _us_to_ns(pa.array(values, type=_US_UTC))


def _text_timestamp_column(values: list[str | None]) -> pa.Array | None:
    """RFC 3339 texts to ns timestamps as ``_timestamp_column`` makes them from datetimes.

    The texts are parsed by one compiled loop over their bytes. None when a
    text is not in the plain form that loop reads (``_parse_rfc3339``) or
    is out of range: the caller then decodes the datetimes with msgspec.
    """
    text = pa.array(values, pa.string())
    if not isinstance(text, pa.StringArray):  # chunked: past 2 GiB of text
        return None
    return _timestamps_of_text(text)


def _timestamps_of_text(text: pa.StringArray) -> pa.Array | None:
    """``_text_timestamp_column`` of texts already in an Arrow array."""
    if text.null_count == len(text):
        return pa.nulls(len(text), TIMESTAMP)
    validity, offsets, data = text.buffers()
    present = (
        np.ones(len(text), dtype=np.bool_)
        if validity is None
        else np.unpackbits(np.frombuffer(validity, dtype=np.uint8), bitorder="little")[
            : len(text)
        ].astype(np.bool_)
    )
    bounds = np.frombuffer(offsets, dtype=np.int32, count=len(text) + 1)
    us = np.zeros(len(text), dtype=np.int64)
    ok = parse_rfc3339(
        bounds[:-1],
        bounds[1:],
        np.frombuffer(data, dtype=np.uint8) if data is not None else np.zeros(0, np.uint8),
        present,
        us,
    )
    return timestamps_of_us(us, present) if ok else None


def _us_to_ns(us: pa.Array) -> pa.Array:
    """Microsecond UTC times as ns; the zero time (and whatever else ns cannot hold
    before 1678) becomes null, a time after 2262 raises ``pa.ArrowInvalid``."""
    raw = pc.cast(us, pa.int64())
    representable = pc.greater(raw, _US_MIN)
    return pc.cast(pc.if_else(representable, us, _NULL_US), TIMESTAMP)


def _map_column(maps: list[dict[str, str] | None]) -> pa.MapArray:
    """String maps (None for an absent one, read as empty) as a map column.

    Every step iterates in C (``map``, ``filter``, ``chain``); only a
    column with absent maps sizes them in a Python generator.
    """
    present = list(filter(None, maps))
    if len(present) == len(maps):
        sizes = np.fromiter(map(len, maps), dtype=np.int32, count=len(maps))
    else:
        sizes = np.fromiter((len(m) if m else 0 for m in maps), dtype=np.int32, count=len(maps))
    offsets = np.zeros(len(maps) + 1, dtype=np.int32)
    np.cumsum(sizes, out=offsets[1:])
    keys = pa.array(list(chain.from_iterable(present)), pa.string())
    values = pa.array(list(chain.from_iterable(map(dict.values, present))), pa.string())
    return pa.MapArray.from_arrays(pa.array(offsets), keys, values, type=LABELS)


class LabelEncoder(Protocol):
    """How a decoder builds the ``labels`` column; ``STRING_LABELS`` (the default) keeps strings.

    Decoders hand every accepted alert's labels to ``from_dicts`` (JSON) or
    their conformed table to ``from_table`` (Arrow), and build their tables
    in ``schema``: ``ALERT_SCHEMA`` with the labels column as the encoder
    makes it. The daemon's ZeroMQ intake plugs in integer ids here
    (``correlator.daemon.wire.LabelCoder``), so the decode process never
    builds the label strings the correlation loop would only intern again.
    """

    schema: pa.Schema

    def from_dicts(self, maps: list[dict[str, str]]) -> pa.Array:
        """The labels column of alerts whose labels are ``maps``."""
        ...

    def from_table(self, table: pa.Table) -> pa.Table:
        """A conformed table (``conform``) in ``schema``; may raise ``pa.ArrowException``."""
        ...


class _StringLabels:
    """Labels as Arrow string maps: the canonical schema, unchanged."""

    schema = ALERT_SCHEMA

    def from_dicts(self, maps: list[dict[str, str]]) -> pa.Array:
        return _map_column(maps)

    def from_table(self, table: pa.Table) -> pa.Table:
        return table


STRING_LABELS: LabelEncoder = _StringLabels()
_LABELS_OF = attrgetter("labels")
_ANNOTATIONS_OF = attrgetter("annotations")
_STARTS_OF = attrgetter("startsAt")
_ENDS_OF = attrgetter("endsAt")
_URL_OF = attrgetter("generatorURL")
_RECEIVED_OF = attrgetter("receivedAt")
_STATUS_OF = attrgetter("status")


def table_from_alerts(alerts: list[_Alert], labels: LabelEncoder = STRING_LABELS) -> pa.Table:
    """Decoded JSON alerts as one table in ``labels.schema`` (built column by column)."""
    return pa.Table.from_arrays(
        [
            labels.from_dicts(list(map(_LABELS_OF, alerts))),
            _map_column(list(map(_ANNOTATIONS_OF, alerts))),
            _timestamp_column(list(map(_STARTS_OF, alerts))),
            _timestamp_column(list(map(_ENDS_OF, alerts))),
            pa.array(list(map(_URL_OF, alerts)), pa.string()),
            _timestamp_column(list(map(_RECEIVED_OF, alerts))),
            pa.array(list(map(_STATUS_OF, alerts)), pa.string()),
        ],
        schema=labels.schema,
    )


def _table_with_text_times(
    payload: bytes, labels: LabelEncoder, max_row_bytes: int = DEFAULT_MAX_ROW_BYTES
) -> pa.Table | None:
    """A clean JSON array whose times Arrow parses (a column at a time), as a table.

    A body in the plain form is read by ``correlator.jsonscan`` without any
    Python object per alert, whatever its size, as long as no alert in it is
    over ``max_row_bytes`` (the scan says where each lies). Otherwise msgspec
    decodes a body no larger than that with the times left as text (turning
    a datetime object into an Arrow time costs more than parsing the text).
    None when anything is off: the caller decodes the exact way.
    """
    scanned = _scanned_table(payload)
    if scanned is not None:
        table, elements = scanned
        if len(elements) and int((elements[:, 1] - elements[:, 0]).max()) > max_row_bytes:
            return None
        return labels.from_table(table)
    if len(payload) > max_row_bytes:
        return None
    try:
        alerts = _MANY_TEXT_TIMES.decode(payload)
    except (msgspec.MsgspecError, UnicodeDecodeError):
        return None
    times = []
    for of in (_STARTS_OF, _ENDS_OF, _RECEIVED_OF):
        column = _text_timestamp_column(list(map(of, alerts)))
        if column is None:
            return None
        times.append(column)
    return pa.Table.from_arrays(
        [
            labels.from_dicts(list(map(_LABELS_OF, alerts))),
            _map_column(list(map(_ANNOTATIONS_OF, alerts))),
            times[0],
            times[1],
            pa.array(list(map(_URL_OF, alerts)), pa.string()),
            times[2],
            pa.array(list(map(_STATUS_OF, alerts)), pa.string()),
        ],
        schema=labels.schema,
    )


def scan_json_array(
    payload: bytes, labels: LabelEncoder = STRING_LABELS
) -> tuple[pa.Table, np.ndarray] | None:
    """A JSON array of alerts in the plain form ``correlator.jsonscan`` reads: its table
    (labels built by ``labels``) and where each alert's object lies in ``payload``
    (start and end per row). None for any other body: ``decode_json`` decodes it."""
    scanned = _scanned_table(payload)
    if scanned is None:
        return None
    table, elements = scanned
    return labels.from_table(table), elements


def _scanned_table(payload: bytes) -> tuple[pa.Table, np.ndarray] | None:
    """``scan_json_array`` with the canonical string labels."""
    try:
        payload.decode()
    except UnicodeDecodeError:
        return None
    scanned = scan_alerts(payload)
    if scanned is None:
        return None
    *columns, elements = scanned
    return pa.Table.from_arrays(columns, schema=ALERT_SCHEMA), elements


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


def _decode_rows(
    raws: list[bytes], row_offset: int, max_row_bytes: int, labels: LabelEncoder
) -> Decoded:
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
    table = table_from_alerts(good, labels) if good else empty_table()
    return Decoded(table, rejects, len(raws), np.array(index, dtype=np.int64))


def decode_json(
    payload: bytes,
    *,
    row_offset: int = 0,
    max_row_bytes: int = DEFAULT_MAX_ROW_BYTES,
    labels: LabelEncoder = STRING_LABELS,
) -> Decoded:
    """One JSON alert or a JSON array of alerts, the labels built by ``labels``.

    The whole body is decoded in one call when it is clean; only a body with a
    bad row is taken apart row by row, so the good rows still go through.
    """
    if payload.lstrip()[:1] == b"[":
        try:
            table = _table_with_text_times(payload, labels, max_row_bytes)
        except pa.ArrowInvalid:  # a time out of range: found row by row below
            table = None
        if table is not None:
            return Decoded.clean(table, row_offset)
        try:
            alerts = _MANY.decode(payload)
        except (msgspec.MsgspecError, UnicodeDecodeError):
            pass
        else:
            if len(payload) <= max_row_bytes or all(
                len(raw) <= max_row_bytes for raw in _RAW_MANY.decode(payload)
            ):
                try:
                    return Decoded.clean(table_from_alerts(alerts, labels), row_offset)
                except pa.ArrowInvalid:  # a time out of range: found row by row below
                    pass
        try:
            raws = [bytes(r) for r in _RAW_MANY.decode(payload)]
        except (msgspec.MsgspecError, UnicodeDecodeError) as exc:
            return Decoded.refused([Reject(row_offset, _reason(exc), str(exc), payload)])
        return _decode_rows(raws, row_offset, max_row_bytes, labels)
    return _decode_rows([payload], row_offset, max_row_bytes, labels)


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
    return _decode_rows(lines, row_offset, max_row_bytes, STRING_LABELS)


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


def read_parquet(path: str | Path, *, columns: list[str] | None = None) -> pa.Table:
    """A Parquet recording, label strings read as dictionaries (no per-row strings built)."""
    return pq.read_table(path, columns=columns, read_dictionary=LABEL_LEAVES)


def decode_arrow_stream(
    payload: bytes, *, row_offset: int = 0, labels: LabelEncoder = STRING_LABELS
) -> Decoded:
    """An Arrow IPC stream, labels built by ``labels``; an unreadable stream is one rejected row."""
    try:
        table = pa.ipc.open_stream(payload).read_all()
    except (pa.ArrowInvalid, pa.ArrowTypeError, OSError) as exc:
        return Decoded.refused([Reject(row_offset, "bad_arrow", str(exc), payload)])
    decoded = conform(table, row_offset=row_offset)
    if labels is STRING_LABELS or decoded.table.num_rows == 0:
        return decoded
    try:
        return Decoded.clean(labels.from_table(decoded.table), row_offset)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
        detail = f"columns cannot be read as alerts: {exc}"
        n = decoded.table.num_rows
        return Decoded.refused([Reject(row_offset + i, "bad_arrow", detail) for i in range(n)])


def read_recording(path: str | Path, *, columns: list[str] | None = None) -> Decoded:
    """A recorded storm: JSON lines, a JSON array, Arrow IPC, Parquet, or a folder of Parquet.

    A folder holding a daemon's event log is read as that log: its sealed
    segments and the one still being written, in order. Any other folder is
    read as its ``*.parquet`` files in name order. ``columns`` limits what is
    read (the others come back as nulls), e.g. ``CORRELATION_COLUMNS`` when
    annotations are not needed.
    """
    path = Path(path)
    try:
        if path.is_dir() and segments(path):
            return conform(read_log(path, columns=columns))
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
