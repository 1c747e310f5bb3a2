"""The Alertmanager / Prometheus label-set fingerprint.

FNV-1a 64 over the label names in sorted order, each name and each value
followed by the byte 0xff; the empty label set hashes to the offset basis.
This is ``model.LabelSet.Fingerprint()`` of prometheus/common, so our
fingerprints equal the ones Alertmanager shows for the same alert.
"""

from __future__ import annotations

from collections.abc import Mapping

import numba
import numpy as np

FNV_OFFSET = np.uint64(14695981039346656037)
FNV_PRIME = np.uint64(1099511628211)
_SEPARATOR = 0xFF


def fingerprint(labels: Mapping[str, str]) -> int:
    """Fingerprint of one label set (the plain-Python reference)."""
    h = int(FNV_OFFSET)
    prime = int(FNV_PRIME)
    for name in sorted(labels):
        for part in (name, labels[name]):
            for byte in part.encode():
                h = ((h ^ byte) * prime) & 0xFFFFFFFFFFFFFFFF
            h = ((h ^ _SEPARATOR) * prime) & 0xFFFFFFFFFFFFFFFF
    return h


def format_fingerprint(value: int) -> str:
    """The 16-lowercase-hex-digit form Alertmanager prints."""
    return f"{value:016x}"


@numba.njit(nogil=True, cache=True)
def _fnv_string(h, buf, start, stop):
    for k in range(start, stop):
        h = (h ^ np.uint64(buf[k])) * FNV_PRIME
    return (h ^ np.uint64(_SEPARATOR)) * FNV_PRIME


@numba.njit(nogil=True, cache=True)
def _same_labels(ptr, keys, values, a, b):
    if ptr[a + 1] - ptr[a] != ptr[b + 1] - ptr[b]:
        return False
    offset = ptr[b] - ptr[a]
    for k in range(ptr[a], ptr[a + 1]):
        if keys[k] != keys[k + offset] or values[k] != values[k + offset]:
            return False
    return True


@numba.njit(nogil=True, cache=True)
def _fingerprint_row(ptr, keys, values, key_rank, string_bytes, string_offsets, i, order):
    lo = ptr[i]
    m = ptr[i + 1] - lo
    for j in range(m):
        order[j] = lo + j
    for j in range(1, m):
        cur = order[j]
        r = key_rank[keys[cur]]
        k = j - 1
        while k >= 0 and key_rank[keys[order[k]]] > r:
            order[k + 1] = order[k]
            k -= 1
        order[k + 1] = cur
    h = FNV_OFFSET
    for j in range(m):
        p = order[j]
        kid = keys[p]
        vid = values[p]
        h = _fnv_string(h, string_bytes, string_offsets[kid], string_offsets[kid + 1])
        h = _fnv_string(h, string_bytes, string_offsets[vid], string_offsets[vid + 1])
    return h


@numba.njit(nogil=True, cache=True)
def fingerprint_columns(ptr, keys, values, key_rank, string_bytes, string_offsets):
    """Fingerprints of a batch whose labels are in CSR form.

    ``ptr`` delimits each alert's labels in ``keys``/``values`` (string ids);
    ``key_rank[id]`` orders label names as sorted strings do; string ``id``
    is ``string_bytes[string_offsets[id]:string_offsets[id + 1]]``. A storm
    repeats few label sets many times (every resend), so rows are first
    matched on their id sequence and each distinct set is hashed once.
    """
    n = ptr.shape[0] - 1
    out = np.empty(n, dtype=np.uint64)
    size = 1
    while size < 2 * n:
        size *= 2
    mask = size - 1
    first = np.full(size, -1, dtype=np.int64)
    widest = 0
    for i in range(n):
        widest = max(widest, ptr[i + 1] - ptr[i])
    order = np.empty(widest, dtype=np.int64)
    for i in range(n):
        h = np.uint64(ptr[i + 1] - ptr[i])
        for k in range(ptr[i], ptr[i + 1]):
            h = (h ^ np.uint64(keys[k])) * FNV_PRIME
            h = (h ^ np.uint64(values[k])) * FNV_PRIME
        s = np.int64(h >> np.uint64(24)) & mask
        while True:
            seen = first[s]
            if seen < 0:
                first[s] = i
                out[i] = _fingerprint_row(
                    ptr, keys, values, key_rank, string_bytes, string_offsets, i, order
                )
                break
            if _same_labels(ptr, keys, values, seen, i):
                out[i] = out[seen]
                break
            s = (s + 1) & mask
    return out
