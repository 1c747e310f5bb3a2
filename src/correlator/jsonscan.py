"""Alertmanager JSON arrays read straight into Arrow columns, with no Python object per alert.

Decoding with msgspec builds a dict for every alert's labels and a ``str``
for every label name and value, and the decoder then takes them apart again
into columns: that was most of the decode process's time. A body in the form
Prometheus and Alertmanager write is instead scanned by one compiled loop
over its bytes, which notes where every string lies; the columns are then
cut out of the body in one more pass, unescaping as they go, and the times
are parsed where they lie (``correlator.rfc3339``).

The scan accepts a JSON array of alert objects whose fields are among
``labels`` (required), ``annotations``, ``startsAt``, ``endsAt``,
``generatorURL``, ``receivedAt`` and ``status``, each at most once; labels
and annotations are objects of strings (annotations may be ``null``), the
other fields strings or ``null``, the times in the plain RFC 3339 form and
before 2262. Anything else (an unknown or repeated field, a repeated or
escaped label or annotation name, a number where a string belongs, a lone
surrogate, an escape or anything unusual in a time, broken syntax) ends the
scan with no result, and the caller decodes the body with msgspec, which
also says what is wrong. So for every body the scan accepts, both give the
same columns.
The caller checks that the body is UTF-8 first.
"""

from __future__ import annotations

from typing import NamedTuple

import numba
import numpy as np
import pyarrow as pa
from numba.cpython.unsafe.numbers import trailing_zeros

from correlator.rfc3339 import parse_rfc3339, timestamp_column, to_ns
from correlator.schema import LABELS
from correlator.words import load8, store8

FIELDS = ("labels", "annotations", "startsAt", "endsAt", "generatorURL", "receivedAt", "status")
"""The fields an alert may have, in the order of their codes."""
_TEXT_FIELDS = 5  # the string fields after labels and annotations
# Of those, in ``texts`` order: the times (startsAt, endsAt, receivedAt) and the rest.
_TIMES = (0, 1, 3)
_STRINGS = (2, 4)
_NAMES = np.zeros((len(FIELDS), max(map(len, FIELDS))), dtype=np.uint8)
for _k, _name in enumerate(FIELDS):
    _NAMES[_k, : len(_name)] = np.frombuffer(_name.encode(), dtype=np.uint8)
_NAME_LENGTHS = np.array([len(f) for f in FIELDS], dtype=np.int64)
_FAILED = -1
_PAD = 8
"""Zero bytes after the body: the first ends every scan, all let a word be read at it."""
# Per byte of a word, 0x01 and 0x80; and a quote, a backslash, a space in every byte.
_ONES = np.uint64(0x0101010101010101)
_HIGHS = np.uint64(0x8080808080808080)
_QUOTES = np.uint64(0x2222222222222222)
_SLASHES = np.uint64(0x5C5C5C5C5C5C5C5C)
_SPACES = np.uint64(0x2020202020202020)


class ScannedAlerts(NamedTuple):
    """The columns of a scanned body (null where a field is null or absent, a time also
    where it is Alertmanager's zero time).

    ``elements[i]`` is where alert ``i``'s object starts and ends in the body.
    """

    labels: pa.MapArray
    annotations: pa.MapArray
    starts_at: pa.TimestampArray
    ends_at: pa.TimestampArray
    generator_url: pa.StringArray
    received_at: pa.TimestampArray
    status: pa.StringArray
    elements: np.ndarray


@numba.njit(nogil=True, cache=True, inline="always")
def _blank(data, p):
    """The first position from ``p`` that is not JSON whitespace."""
    while data[p] == 32 or data[p] == 10 or data[p] == 13 or data[p] == 9:
        p += 1
    return p


@numba.njit(nogil=True, cache=True, inline="always")
def _stops(word):
    """The high bit of each byte of ``word`` that may end a run of plain string bytes:
    a quote, a backslash or a control character (the zero past the body too). Bytes
    above a marked one may be marked falsely; the lowest mark is exact."""
    quote = word ^ _QUOTES
    slash = word ^ _SLASHES
    marks = ((quote - _ONES) & ~quote) | ((slash - _ONES) & ~slash) | ((word - _SPACES) & ~word)
    return marks & _HIGHS


@numba.njit(nogil=True, cache=True, inline="always")
def _plain_run_end(data, p):
    """The first position from ``p`` whose byte is a quote, a backslash or a control
    character, eight bytes at a time."""
    marks = _stops(load8(data, p))
    while marks == 0:
        p += 8
        marks = _stops(load8(data, p))
    return p + np.int64(trailing_zeros(marks) >> np.uint64(3))


@numba.njit(nogil=True, cache=True, inline="always")
def _string_end(data, p):
    """``data[p]`` opens a string: (the position of its closing quote, whether it has
    escapes), or ``_FAILED`` for a control character, a bad escape or the end."""
    p += 1
    escaped = False
    while True:
        p = _plain_run_end(data, p)
        c = data[p]
        if c == 34:
            return p, escaped
        if c < 32:  # a control character, or the sentinel past the end
            return _FAILED, escaped
        if c == 92:
            e = data[p + 1]
            escaped = True
            if e == 117:  # \uXXXX
                for k in range(p + 2, p + 6):
                    h = data[k]
                    if not (48 <= h <= 57 or 65 <= h <= 70 or 97 <= h <= 102):
                        return _FAILED, escaped
                p += 6
                continue
            if e not in (34, 92, 47, 98, 102, 110, 114, 116):
                return _FAILED, escaped
            p += 2
            continue
        p += 1


@numba.njit(nogil=True, cache=True, inline="always")
def _same(data, a, a_end, b, b_end):
    """Whether ``data[a:a_end]`` and ``data[b:b_end]`` are the same bytes."""
    same = a_end - a == b_end - b
    k = 0
    while same and k < a_end - a:
        same = data[a + k] == data[b + k]
        k += 1
    return same


@numba.njit(nogil=True, cache=True, inline="always")
def _pairs(data, p, spans, escapes, count):
    """An object of strings at ``p`` into ``spans`` (name and value start and end) from
    entry ``count`` on: (the position after it, the new count), or ``_FAILED``."""
    if data[p] != 123:
        return _FAILED, count
    first = count
    p = _blank(data, p + 1)
    if data[p] == 125:
        return p + 1, count
    while True:
        if data[p] != 34 or count == spans.shape[0]:
            return _FAILED, count
        key_end, key_escaped = _string_end(data, p)
        if key_end < 0 or key_escaped:
            return _FAILED, count
        key_start = p + 1
        for k in range(first, count):
            if _same(data, spans[k, 0], spans[k, 1], key_start, key_end):
                return _FAILED, count
        p = _blank(data, key_end + 1)
        if data[p] != 58:
            return _FAILED, count
        p = _blank(data, p + 1)
        if data[p] != 34:
            return _FAILED, count
        value_end, escaped = _string_end(data, p)
        if value_end < 0:
            return _FAILED, count
        spans[count, 0] = key_start
        spans[count, 1] = key_end
        spans[count, 2] = p + 1
        spans[count, 3] = value_end
        escapes[count] = escaped
        count += 1
        p = _blank(data, value_end + 1)
        if data[p] == 44:
            p = _blank(data, p + 1)
        elif data[p] == 125:
            return p + 1, count
        else:
            return _FAILED, count


@numba.njit(nogil=True, cache=True, inline="always")
def _field(data, start, end, names, lengths):
    """The code of the field named ``data[start:end]``, or -1."""
    for f in range(names.shape[0]):
        if end - start == lengths[f]:
            same = True
            for k in range(lengths[f]):
                if data[start + k] != names[f, k]:
                    same = False
                    break
            if same:
                return f
    return -1


@numba.njit(nogil=True, cache=True, inline="always")
def _null(data, p):
    """Whether ``null`` is written at ``p``."""
    return data[p] == 110 and data[p + 1] == 117 and data[p + 2] == 108 and data[p + 3] == 108


@numba.njit(nogil=True, cache=True, _nrt=False)
def scan(data, names, lengths, label_ptr, label_spans, label_escapes, note_ptr, note_spans,
         note_escapes, texts, text_escapes, objects):  # fmt: skip
    """Scan a JSON array of alerts (``data`` is the body and ``_PAD`` zero bytes).

    Per alert ``i``: its labels are entries ``label_ptr[i]:label_ptr[i + 1]`` of
    ``label_spans`` (name start, name end, value start, value end) and its
    annotations likewise; ``texts[i, f]`` is the start and end of its string field
    ``f`` (-1 where null or absent), and ``objects[i]`` of its whole object. Returns
    the number of alerts, or ``_FAILED`` when the body is not in the plain form or a
    buffer is too small.
    """
    n = data.shape[0] - _PAD
    p = _blank(data, 0)
    if data[p] != 91:
        return _FAILED
    p = _blank(data, p + 1)
    alerts = 0
    labels = 0
    notes = 0
    if data[p] == 93:
        p = _blank(data, p + 1)
        return 0 if p == n else _FAILED
    while True:
        if data[p] != 123 or alerts == texts.shape[0]:
            return _FAILED
        for f in range(texts.shape[1]):
            texts[alerts, f, 0] = -1
            texts[alerts, f, 1] = -1
        objects[alerts, 0] = p
        seen = 0
        p = _blank(data, p + 1)
        while True:
            if data[p] != 34:
                return _FAILED
            end, escaped = _string_end(data, p)
            if end < 0 or escaped:
                return _FAILED
            f = _field(data, p + 1, end, names, lengths)
            if f < 0 or (seen >> f) & 1:
                return _FAILED
            seen |= 1 << f
            p = _blank(data, end + 1)
            if data[p] != 58:
                return _FAILED
            p = _blank(data, p + 1)
            if f == 0:
                p, labels = _pairs(data, p, label_spans, label_escapes, labels)
            elif f == 1 and _null(data, p):
                p += 4
            elif f == 1:
                p, notes = _pairs(data, p, note_spans, note_escapes, notes)
            elif _null(data, p):
                p += 4
            elif data[p] == 34:
                end, escaped = _string_end(data, p)
                if end < 0:
                    return _FAILED
                texts[alerts, f - 2, 0] = p + 1
                texts[alerts, f - 2, 1] = end
                text_escapes[alerts, f - 2] = escaped
                p = end + 1
            else:
                return _FAILED
            if p < 0:
                return _FAILED
            p = _blank(data, p)
            if data[p] == 44:
                p = _blank(data, p + 1)
            elif data[p] == 125:
                break
            else:
                return _FAILED
        if seen & 1 == 0:
            return _FAILED
        objects[alerts, 1] = p + 1
        alerts += 1
        label_ptr[alerts] = labels
        note_ptr[alerts] = notes
        p = _blank(data, p + 1)
        if data[p] == 44:
            p = _blank(data, p + 1)
        elif data[p] == 93:
            p = _blank(data, p + 1)
            return alerts if p == n else _FAILED
        else:
            return _FAILED


@numba.njit(nogil=True, cache=True, inline="always")
def _hex(data, p):
    """The value of the four hex digits at ``p`` (checked by the scan)."""
    value = 0
    for k in range(p, p + 4):
        h = data[k]
        if h <= 57:
            d = h - 48
        elif h <= 70:
            d = h - 55
        else:
            d = h - 87
        value = value * 16 + d
    return value


@numba.njit(nogil=True, cache=True, _nrt=False)
def cut(data, starts, ends, escapes, offsets, base, out, w):
    """Copy the strings ``data[starts[j]:ends[j]]`` one after another into ``out`` from
    byte ``w`` on, unescaping those ``escapes`` marks, with ``offsets[base + j]`` where
    each begins (a string with ``starts[j] < 0`` is empty). Returns where the bytes
    written end, or ``_FAILED`` for an escape that is no character (a lone surrogate).
    A plain string is copied a word at a time, so up to seven bytes past its end are
    read from ``data`` and written to ``out`` (then overwritten by the next string):
    both need that much room after the last string.
    """
    for j in range(starts.shape[0]):
        offsets[base + j] = w
        s, e = starts[j], ends[j]
        if not escapes[j]:
            for k in range(0, e - s, 8):
                store8(out, w + k, load8(data, s + k))
            w += e - s
            continue
        k = s
        while k < e:
            c = data[k]
            if c != 92:
                out[w] = c
                w += 1
                k += 1
                continue
            c = data[k + 1]
            k += 2
            if c == 117:
                code = _hex(data, k)
                k += 4
                if 0xDC00 <= code <= 0xDFFF:
                    return _FAILED
                if 0xD800 <= code <= 0xDBFF:
                    if k + 6 > e or data[k] != 92 or data[k + 1] != 117:
                        return _FAILED
                    low = _hex(data, k + 2)
                    if not 0xDC00 <= low <= 0xDFFF:
                        return _FAILED
                    code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                    k += 6
                if code < 0x80:
                    out[w] = code
                    w += 1
                elif code < 0x800:
                    out[w] = 0xC0 | (code >> 6)
                    out[w + 1] = 0x80 | (code & 0x3F)
                    w += 2
                elif code < 0x10000:
                    out[w] = 0xE0 | (code >> 12)
                    out[w + 1] = 0x80 | ((code >> 6) & 0x3F)
                    out[w + 2] = 0x80 | (code & 0x3F)
                    w += 3
                else:
                    out[w] = 0xF0 | (code >> 18)
                    out[w + 1] = 0x80 | ((code >> 12) & 0x3F)
                    out[w + 2] = 0x80 | ((code >> 6) & 0x3F)
                    out[w + 3] = 0x80 | (code & 0x3F)
                    w += 4
            else:
                if c == 98:
                    c = 8
                elif c == 102:
                    c = 12
                elif c == 110:
                    c = 10
                elif c == 114:
                    c = 13
                elif c == 116:
                    c = 9
                out[w] = c  # ", \ and / stand for themselves
                w += 1
    offsets[base + starts.shape[0]] = w
    return w


@numba.njit(nogil=True, cache=True)
def _read(data, names, lengths):
    """``scan``, ``cut`` and the times parsed, in one call: (alerts, label offsets,
    annotation offsets, per string column its count, string offsets, string bytes,
    which text fields are present, per time column its nanoseconds, validity bitmap
    and count of valid times, the alerts' objects); alerts is ``_FAILED`` when the
    body is not in the plain form or a time is not.

    The columns' strings are cut into one buffer in column order (label names,
    label values, annotation names, annotation values, ``generatorURL``,
    ``status``), every column with its stretch of ``offsets``. The times are read
    where they lie in the body (``times[t]`` for ``_TIMES[t]``), as
    ``correlator.rfc3339`` reads a string column: an escape in one makes it not plain.
    """
    quotes = 0
    braces = 0
    for c in data:
        quotes += c == 34
        braces += c == 123
    alerts = braces // 2 + 1  # an alert opens itself and its labels
    pairs = quotes // 4 + 1  # a name and a value
    label_ptr = np.zeros(alerts + 1, dtype=np.int64)
    note_ptr = np.zeros(alerts + 1, dtype=np.int64)
    label_spans = np.empty((pairs, 4), dtype=np.int64)
    note_spans = np.empty((pairs, 4), dtype=np.int64)
    label_escapes = np.zeros(pairs, dtype=np.bool_)
    note_escapes = np.zeros(pairs, dtype=np.bool_)
    texts = np.empty((alerts, _TEXT_FIELDS, 2), dtype=np.int64)
    text_escapes = np.zeros((alerts, _TEXT_FIELDS), dtype=np.bool_)
    objects = np.empty((alerts, 2), dtype=np.int64)
    n = scan(
        data, names, lengths, label_ptr, label_spans, label_escapes,
        note_ptr, note_spans, note_escapes, texts, text_escapes, objects,
    )  # fmt: skip
    counts = np.zeros(4 + len(_STRINGS), dtype=np.int64)
    read = max(n, 0)
    presence = texts[:read, :, 0] >= 0
    us = np.zeros(read, dtype=np.int64)
    times = np.empty((len(_TIMES), read), dtype=np.int64)
    bits = np.zeros((len(_TIMES), (read + 7) // 8), dtype=np.uint8)
    valid = np.zeros(len(_TIMES), dtype=np.int64)
    strings = 2 * (label_ptr[read] + note_ptr[read]) + len(_STRINGS) * read
    offsets = np.empty(1 + strings, dtype=np.int32)
    # Strings are disjoint parts of the body: they fit, with the room ``cut`` needs.
    out = np.empty(data.shape[0], dtype=np.uint8)
    for t in range(len(_TIMES)):
        f = _TIMES[t]
        if n >= 0 and not parse_rfc3339(texts[:n, f, 0], texts[:n, f, 1], data, presence[:, f], us):
            n = _FAILED
        if n >= 0:
            valid[t] = to_ns(us, presence[:, f], times[t], bits[t])
            if valid[t] < 0:
                n = _FAILED
    if n < 0:
        return (
            n, label_ptr[:1], note_ptr[:1], counts, offsets, out, presence, times, bits, valid,
            objects[:0],
        )  # fmt: skip
    m, k = label_ptr[n], note_ptr[n]
    counts[0], counts[1], counts[2], counts[3] = m, m, k, k
    counts[4:] = n
    plain = np.zeros(max(m, k), dtype=np.bool_)  # names: the scan refuses escaped ones
    w, base = 0, 0
    for spans, escapes, count in ((label_spans, label_escapes, m), (note_spans, note_escapes, k)):
        w = cut(data, spans[:count, 0], spans[:count, 1], plain, offsets, base, out, w)
        base += count
        if w >= 0:
            w = cut(data, spans[:count, 2], spans[:count, 3], escapes, offsets, base, out, w)
        base += count
    for f in _STRINGS:
        if w >= 0:
            w = cut(
                data, texts[:n, f, 0], texts[:n, f, 1], text_escapes[:n, f], offsets, base, out, w
            )
        base += n
    if w < 0:
        n = _FAILED
    return (
        n, label_ptr[: n + 1], note_ptr[: n + 1], counts, offsets, out[:w], presence, times,
        bits, valid, objects[:n],
    )  # fmt: skip


def _column(
    count: int, offsets: np.ndarray, text: pa.Buffer, present: np.ndarray | None = None
) -> pa.Array:
    """A string column cut by ``_read``; ``present`` marks its non-null rows (None: all)."""
    validity = None if present is None else pa.py_buffer(np.packbits(present, bitorder="little"))
    return pa.StringArray.from_buffers(count, pa.py_buffer(offsets), text, validity)


def scan_alerts(payload: bytes) -> ScannedAlerts | None:
    """The columns of a JSON array of alerts in the plain form (see above), or None."""
    if len(payload) >= 1 << 31:  # Arrow string offsets are 32-bit
        return None
    data = np.empty(len(payload) + _PAD, dtype=np.uint8)
    data[: len(payload)] = np.frombuffer(payload, dtype=np.uint8)
    data[len(payload) :] = 0
    n, label_ptr, note_ptr, counts, offsets, out, presence, times, bits, valid, objects = _read(
        data, _NAMES, _NAME_LENGTHS
    )
    if n < 0:
        return None
    stamps = [timestamp_column(times[t], bits[t], v) for t, v in enumerate(valid.tolist())]
    text = pa.py_buffer(out)
    columns = []
    base = 0
    # A string field is mostly in every alert of a body or in none: no bitmap for those.
    filled = [-1] * 4 + presence[:, _STRINGS].sum(axis=0).tolist()  # -1: labels, annotations
    for c, count in enumerate(counts.tolist()):
        if filled[c] == 0:
            columns.append(pa.nulls(count, pa.string()))
        else:
            present = presence[:, _STRINGS[c - 4]] if 0 <= filled[c] < count else None
            columns.append(_column(count, offsets[base : base + count + 1], text, present))
        base += count
    labels = pa.MapArray.from_arrays(label_ptr.astype(np.int32), *columns[:2], type=LABELS)
    annotations = pa.MapArray.from_arrays(note_ptr.astype(np.int32), *columns[2:4], type=LABELS)
    return ScannedAlerts(
        labels, annotations, *stamps[:2], columns[4], stamps[2], columns[5], objects
    )
