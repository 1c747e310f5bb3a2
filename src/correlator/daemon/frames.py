"""Wire frames to decoded alerts: what ZeroMQ and HTTP producers send.

A ZeroMQ message is ``[format, payload]`` with format ``json`` (one alert),
``json-array`` (Alertmanager's API v2 body) or ``arrow`` (an Arrow IPC
stream); a single-frame message is sniffed as JSON. Many single-alert
messages are decoded together in one call, the way they arrive in a storm,
and so are runs of small JSON arrays: building a table has a fixed cost
(about a quarter of a millisecond) that a 100-alert array would otherwise
pay on its own. Every message ends as rows accepted or rejected with a
reason, never as an exception, and the rows and rejects are the same as if
each message had been decoded alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import msgspec
import numpy as np
import pyarrow as pa

from correlator.decode import Decoded, decode_arrow_stream, decode_json, empty_table
from correlator.rejects import Reject

FORMATS = ("json", "json-array", "arrow")
_FORMAT_NAMES = {name.encode(): name for name in FORMATS}
# Arrays up to this size are decoded together with their neighbours. Checking
# each one first costs a raw parse (about 0.2 us per alert), which pays for
# itself against the per-call cost below roughly a thousand alerts a message.
_SMALL_ARRAY_BYTES = 256 << 10
# At most this much JSON (about 3,000 alerts) goes into one decode call: past
# that the decoded objects of one call make the garbage collector's passes
# cost more per alert than the call's fixed cost saves, and a burst of
# thousands of messages never holds millions of alert objects at once.
_GROUP_BYTES = 1 << 20
_RAW_ONE = msgspec.json.Decoder(msgspec.Raw)
_RAW_ARRAY = msgspec.json.Decoder(list[msgspec.Raw])


@dataclass(frozen=True)
class Frame:
    """One received message: its declared format (None when sniffed) and payload."""

    format: str | None
    payload: bytes


def frame_from_parts(parts: Sequence[bytes]) -> Frame | Reject:
    """A ZeroMQ multipart message as a ``Frame``, or a reject for a malformed envelope."""
    if len(parts) == 1:
        return Frame(None, parts[0])
    if len(parts) == 2:
        exact = _FORMAT_NAMES.get(parts[0])  # what producers send, without the clean-up
        if exact is not None:
            return Frame(exact, parts[1])
        name = parts[0].decode("ascii", "replace").strip().lower()
        if name in FORMATS:
            return Frame(name, parts[1])
        shown = parts[0][:40].decode("utf-8", "replace")
        return Reject(
            0, "unknown_format", f"format frame {shown!r}; use one of {FORMATS}", parts[1][:4096]
        )
    return Reject(
        0, "unknown_format", f"{len(parts)} frames; send [format, payload]", b"".join(parts)[:4096]
    )


def _merge(parts: Sequence[Decoded]) -> Decoded:
    """Decoded inputs as one, rows numbered in order across them."""
    tables, rejects, index = [], [], []
    offset = 0
    for part in parts:
        tables.append(part.table)
        index.append(part.index + offset)
        rejects.extend(Reject(r.row + offset, r.reason, r.detail, r.raw) for r in part.rejects)
        offset += part.rows
    table = pa.concat_tables(tables) if tables else empty_table()
    all_index = np.concatenate(index) if index else np.zeros(0, dtype=np.int64)
    return Decoded(table, rejects, offset, all_index)


def _singles(payloads: list[bytes], max_bytes: int) -> Decoded:
    """Single-alert JSON messages, decoded in one call while they are all clean.

    Each message is first checked to be one whole JSON value on its own, so
    two malformed messages can never join into valid alerts.
    """
    for payload in payloads:
        try:
            _RAW_ONE.decode(payload)
        except (msgspec.MsgspecError, UnicodeDecodeError):
            return _merge([decode_json(p, max_row_bytes=max_bytes) for p in payloads])
    together = decode_json(b"[" + b",".join(payloads) + b"]", max_row_bytes=max_bytes)
    if together.rows == len(payloads) and not together.rejects:
        return together
    return _merge([decode_json(p, max_row_bytes=max_bytes) for p in payloads])


def _arrays(payloads: list[bytes], max_bytes: int) -> Decoded:
    """Small JSON-array messages, decoded together where that changes nothing.

    Each message is parsed raw first (no objects built). Only arrays that are
    valid JSON on their own are joined, so the joined array's elements are
    exactly theirs, in order; one that is not is decoded alone (and
    rejected). If the joined array has a bad row, its messages are decoded
    one by one after all, so rejects keep their own message's rows and
    reasons.
    """
    if len(payloads) == 1:
        return decode_json(payloads[0], max_row_bytes=max_bytes)
    parts: list[Decoded] = []
    run: list[bytes] = []
    counts: list[int] = []
    for payload in payloads:
        try:
            count = len(_RAW_ARRAY.decode(payload))
        except (msgspec.MsgspecError, UnicodeDecodeError):
            if run:
                parts.append(_joined(run, counts, max_bytes))
                run, counts = [], []
            parts.append(decode_json(payload, max_row_bytes=max_bytes))
            continue
        run.append(payload)
        counts.append(count)
    if run:
        parts.append(_joined(run, counts, max_bytes))
    return parts[0] if len(parts) == 1 else _merge(parts)


def _joined(payloads: list[bytes], counts: list[int], max_bytes: int) -> Decoded:
    """Valid JSON arrays of ``counts`` elements each, decoded as one when all rows are good."""
    if len(payloads) > 1:
        inner = [p.strip()[1:-1] for p, n in zip(payloads, counts, strict=True) if n]
        together = decode_json(b"[" + b",".join(inner) + b"]", max_row_bytes=max_bytes)
        if together.rows == sum(counts) and not together.rejects:
            return together
    return _merge([decode_json(p, max_row_bytes=max_bytes) for p in payloads])


def _head(payload: bytes) -> bytes:
    """The first byte that is not whitespace (without copying a large payload)."""
    head = payload[:64].lstrip()[:1]
    return head if head or len(payload) <= 64 else payload.lstrip()[:1]


def decode_frames(frames: Sequence[Frame | Reject], *, max_bytes: int) -> Decoded:
    """Decode a run of received messages; one row per alert, a reject per bad one."""
    parts: list[Decoded] = []
    singles: list[bytes] = []
    arrays: list[bytes] = []
    pending = 0  # bytes in singles or arrays

    def flush() -> None:
        nonlocal pending
        if singles:
            parts.append(_singles(singles, max_bytes))
            singles.clear()
        if arrays:
            parts.append(_arrays(arrays, max_bytes))
            arrays.clear()
        pending = 0

    for frame in frames:
        if isinstance(frame, Reject):
            flush()
            parts.append(Decoded.refused([frame]))
            continue
        size = len(frame.payload)
        if size > max_bytes:
            flush()
            detail = f"{size} bytes, limit {max_bytes}"
            parts.append(Decoded.refused([Reject(0, "too_large", detail, frame.payload[:4096])]))
            continue
        kind = frame.format
        head = _head(frame.payload) if kind != "arrow" else b""
        if kind is None:
            kind = "json-array" if head == b"[" else "json"
        run = singles if kind == "json" and head == b"{" else None
        if run is None and kind != "arrow" and head == b"[" and size <= _SMALL_ARRAY_BYTES:
            run = arrays
        if run is not None:
            other = arrays if run is singles else singles
            if other or pending + size > min(max_bytes, _GROUP_BYTES):
                flush()
            run.append(frame.payload)
            pending += size
            continue
        flush()
        if kind == "arrow":
            parts.append(decode_arrow_stream(frame.payload))
        else:
            parts.append(decode_json(frame.payload, max_row_bytes=max_bytes))
    flush()
    return _merge(parts) if len(parts) != 1 else parts[0]
