"""Wire frames to decoded alerts: what ZeroMQ and HTTP producers send.

A ZeroMQ message is ``[format, payload]`` with format ``json`` (one alert),
``json-array`` (Alertmanager's API v2 body) or ``arrow`` (an Arrow IPC
stream); a single-frame message is sniffed as JSON. Many single-alert
messages are decoded together in one call, the way they arrive in a storm.
Every message ends as rows accepted or rejected with a reason, never as an
exception.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from correlator.decode import Decoded, decode_arrow_stream, decode_json, empty_table
from correlator.rejects import Reject

FORMATS = ("json", "json-array", "arrow")


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
    """Single-alert JSON messages, decoded in one call while they are all clean."""
    together = decode_json(b"[" + b",".join(payloads) + b"]", max_row_bytes=max_bytes)
    if together.rows == len(payloads) and not together.rejects:
        return together
    return _merge([decode_json(p, max_row_bytes=max_bytes) for p in payloads])


def decode_frames(frames: Sequence[Frame | Reject], *, max_bytes: int) -> Decoded:
    """Decode a run of received messages; one row per alert, a reject per bad one."""
    parts: list[Decoded] = []
    singles: list[bytes] = []

    def flush_singles() -> None:
        if singles:
            parts.append(_singles(singles, max_bytes))
            singles.clear()

    for frame in frames:
        if isinstance(frame, Reject):
            flush_singles()
            parts.append(Decoded.refused([frame]))
            continue
        if len(frame.payload) > max_bytes:
            flush_singles()
            detail = f"{len(frame.payload)} bytes, limit {max_bytes}"
            parts.append(Decoded.refused([Reject(0, "too_large", detail, frame.payload[:4096])]))
            continue
        kind = frame.format
        if kind is None:
            head = frame.payload.lstrip()[:1]
            kind = "json-array" if head == b"[" else "json"
        if kind == "json" and frame.payload.lstrip()[:1] == b"{":
            singles.append(frame.payload)
            continue
        flush_singles()
        if kind == "arrow":
            parts.append(decode_arrow_stream(frame.payload))
        else:
            parts.append(decode_json(frame.payload, max_row_bytes=max_bytes))
    flush_singles()
    return _merge(parts)
