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
from typing import NamedTuple

import msgspec
import numpy as np
import pyarrow as pa

from correlator.decode import (
    STRING_LABELS,
    Decoded,
    LabelEncoder,
    decode_arrow_stream,
    decode_json,
    empty_table,
    scan_json_array,
)
from correlator.rejects import Reject

FORMATS = ("json", "json-array", "arrow")
# Format frames as producers send them, to their names.
FORMAT_NAMES = {name.encode(): name for name in FORMATS}
# Arrays up to this size are decoded together with their neighbours. Checking
# each one first costs a raw parse (about 0.2 us per alert), which pays for
# itself against the per-call cost below roughly a thousand alerts a message.
_SMALL_ARRAY_BYTES = 256 << 10
# At most this much JSON (about 3,000 alerts) goes into one decode call: past
# that the decoded objects of one call make the garbage collector's passes
# cost more per alert than the call's fixed cost saves, and a burst of
# thousands of messages never holds millions of alert objects at once.
_GROUP_BYTES = 1 << 20
_RAW_ARRAY = msgspec.json.Decoder(list[msgspec.Raw])


class Frame(NamedTuple):
    """One received message: its declared format (None when sniffed) and payload.

    A tuple, not a dataclass: a storm of single-alert messages makes one per
    alert, and a tuple costs a fraction of a frozen dataclass to build.
    """

    format: str | None
    payload: bytes


def frame_from_parts(parts: Sequence[bytes]) -> Frame | Reject:
    """A ZeroMQ multipart message as a ``Frame``, or a reject for a malformed envelope."""
    if len(parts) == 1:
        return Frame(None, parts[0])
    if len(parts) == 2:
        exact = FORMAT_NAMES.get(parts[0])  # what producers send, without the clean-up
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


def merge_decoded(parts: Sequence[Decoded]) -> Decoded:
    """Decoded inputs as one, rows numbered in order across them.

    Tables without rows are left out: a part with no good row has the
    canonical empty table, whatever schema the others' labels have.
    """
    tables, rejects, index = [], [], []
    offset = 0
    for part in parts:
        if part.table.num_rows:
            tables.append(part.table)
        index.append(part.index + offset)
        rejects.extend(Reject(r.row + offset, r.reason, r.detail, r.raw) for r in part.rejects)
        offset += part.rows
    table = pa.concat_tables(tables) if tables else empty_table()
    all_index = np.concatenate(index) if index else np.zeros(0, dtype=np.int64)
    return Decoded(table, rejects, offset, all_index)


def _one_by_one(payloads: list[bytes], max_bytes: int, labels: LabelEncoder) -> Decoded:
    """Messages decoded each on its own, rows numbered across them."""
    return merge_decoded([decode_json(p, max_row_bytes=max_bytes, labels=labels) for p in payloads])


def _singles(payloads: list[bytes], max_bytes: int, labels: LabelEncoder) -> Decoded:
    """Single-alert JSON messages, decoded in one call while they are all clean.

    The joined array is used only if its elements are exactly the messages:
    as many, each where its message lies (the compiled scan says where), or
    each as long as its message (a raw parse, no objects built, when the scan
    does not read it). The joined text has no byte to spare beside the
    brackets and commas then, so every element is one whole message and two
    malformed messages can never join into valid alerts.
    """
    joined = b"[" + b",".join(payloads) + b"]"
    scanned = scan_json_array(joined, labels)
    if scanned is not None and len(scanned[1]) == len(payloads):
        lengths = np.fromiter(map(len, payloads), dtype=np.int64, count=len(payloads))
        ends = np.cumsum(lengths + 1)
        if np.array_equal(scanned[1], np.stack([ends - lengths, ends], axis=1)):
            return Decoded.clean(scanned[0])
    try:
        elements = _RAW_ARRAY.decode(joined)
    except (msgspec.MsgspecError, UnicodeDecodeError):
        return _one_by_one(payloads, max_bytes, labels)
    if len(elements) != len(payloads) or list(map(len, elements)) != list(map(len, payloads)):
        return _one_by_one(payloads, max_bytes, labels)
    together = decode_json(joined, max_row_bytes=max_bytes, labels=labels)
    if together.rows == len(payloads) and not together.rejects:
        return together
    return _one_by_one(payloads, max_bytes, labels)


def _arrays(payloads: list[bytes], max_bytes: int, labels: LabelEncoder) -> Decoded:
    """Small JSON-array messages, decoded together where that changes nothing.

    Each message is parsed raw first (no objects built). Only arrays that are
    valid JSON on their own are joined, so the joined array's elements are
    exactly theirs, in order; one that is not is decoded alone (and
    rejected). If the joined array has a bad row, its messages are decoded
    one by one after all, so rejects keep their own message's rows and
    reasons.
    """
    if len(payloads) == 1:
        return decode_json(payloads[0], max_row_bytes=max_bytes, labels=labels)
    parts: list[Decoded] = []
    run: list[bytes] = []
    counts: list[int] = []
    for payload in payloads:
        try:
            count = len(_RAW_ARRAY.decode(payload))
        except (msgspec.MsgspecError, UnicodeDecodeError):
            if run:
                parts.append(_joined(run, counts, max_bytes, labels))
                run, counts = [], []
            parts.append(decode_json(payload, max_row_bytes=max_bytes, labels=labels))
            continue
        run.append(payload)
        counts.append(count)
    if run:
        parts.append(_joined(run, counts, max_bytes, labels))
    return parts[0] if len(parts) == 1 else merge_decoded(parts)


def _joined(
    payloads: list[bytes], counts: list[int], max_bytes: int, labels: LabelEncoder
) -> Decoded:
    """Valid JSON arrays of ``counts`` elements each, decoded as one when all rows are good."""
    if len(payloads) > 1:
        inner = [p.strip()[1:-1] for p, n in zip(payloads, counts, strict=True) if n]
        together = decode_json(
            b"[" + b",".join(inner) + b"]", max_row_bytes=max_bytes, labels=labels
        )
        if together.rows == sum(counts) and not together.rejects:
            return together
    return _one_by_one(payloads, max_bytes, labels)


_BLANK = frozenset(b" \t\n\r\x0b\x0c")  # what bytes.lstrip strips


def _head(payload: bytes) -> bytes:
    """The first byte that is not whitespace (without copying a large payload)."""
    if payload and payload[0] not in _BLANK:
        return payload[:1]
    head = payload[:64].lstrip()[:1]
    return head if head or len(payload) <= 64 else payload.lstrip()[:1]


def decode_frames(
    frames: Sequence[Frame | Reject], *, max_bytes: int, labels: LabelEncoder = STRING_LABELS
) -> Decoded:
    """Decode a run of received messages; one row per alert, a reject per bad one.

    ``labels`` builds the labels column (see ``correlator.decode.LabelEncoder``).
    """
    parts: list[Decoded] = []
    singles: list[bytes] = []
    arrays: list[bytes] = []
    pending = 0  # bytes in singles or arrays

    def flush() -> None:
        nonlocal pending
        if singles:
            parts.append(_singles(singles, max_bytes, labels))
            singles.clear()
        if arrays:
            parts.append(_arrays(arrays, max_bytes, labels))
            arrays.clear()
        pending = 0

    singles_limit = min(max_bytes, _GROUP_BYTES)
    for frame in frames:
        # What a storm of single alerts is made of, taken first and cheaply:
        # what the general path below does with it, but for the flush.
        if (
            frame.__class__ is Frame
            and frame.format == "json"
            and frame.payload[:1] == b"{"
            and not arrays
            and pending + len(frame.payload) <= singles_limit
        ):
            singles.append(frame.payload)
            pending += len(frame.payload)
            continue
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
            parts.append(decode_arrow_stream(frame.payload, labels=labels))
        else:
            parts.append(decode_json(frame.payload, max_row_bytes=max_bytes, labels=labels))
    flush()
    return merge_decoded(parts) if len(parts) != 1 else parts[0]
