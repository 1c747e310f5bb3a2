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


MEMO_SETS = 1 << 17
"""At most this many label sets are remembered by a ``FingerprintMemo``; then it starts over."""
MEMO_IDS_PER_SET = 32
"""Its arena holds at most this many label ids per set of the limit (33 MiB at the default)."""
_MEMO_START = 1 << 12
_MEMO_FIRST_IDS_PER_SET = 8


@numba.njit(nogil=True, cache=True)
def _id_hash(keys, values, lo, hi):
    h = np.uint64(hi - lo)
    for k in range(lo, hi):
        h = (h ^ np.uint64(keys[k])) * FNV_PRIME
        h = (h ^ np.uint64(values[k])) * FNV_PRIME
    return h ^ (h >> np.uint64(31))


@numba.njit(nogil=True, cache=True)
def _memo_fingerprints(ptr, keys, values, key_rank, string_bytes, string_offsets,
                       slots, hashes, fps, starts, arena_keys, arena_values, counts):  # fmt: skip
    """``fingerprint_columns`` through a memo of the label sets seen before.

    The memo: ``slots``, an open-addressing table of entry numbers keyed by a
    hash of the id sequence, and per entry that hash, its fingerprint and its
    ids (``starts[e]:starts[e + 1]`` of the arena); ``counts`` holds the entries
    and arena ids in use, updated here. It must have room for every row of the
    batch (entries and ids), so a batch's repeats are found in it too. A set
    found is compared id by id, so a hash collision never mixes two sets up.
    """
    n = ptr.shape[0] - 1
    out = np.empty(n, dtype=np.uint64)
    mask = slots.shape[0] - 1
    widest = 0
    for i in range(n):
        widest = max(widest, ptr[i + 1] - ptr[i])
    order = np.empty(widest, dtype=np.int64)
    entries, used = counts[0], counts[1]
    for i in range(n):
        lo, hi = ptr[i], ptr[i + 1]
        h = _id_hash(keys, values, lo, hi)
        s = np.int64(h >> np.uint64(20)) & mask
        while True:
            e = slots[s]
            if e < 0:
                fp = _fingerprint_row(
                    ptr, keys, values, key_rank, string_bytes, string_offsets, i, order
                )
                out[i] = fp
                slots[s] = entries
                hashes[entries] = h
                fps[entries] = fp
                for k in range(lo, hi):
                    arena_keys[used] = keys[k]
                    arena_values[used] = values[k]
                    used += 1
                entries += 1
                starts[entries] = used
                break
            if hashes[e] == h and starts[e + 1] - starts[e] == hi - lo:
                a = starts[e]
                same = True
                for k in range(hi - lo):
                    if arena_keys[a + k] != keys[lo + k] or arena_values[a + k] != values[lo + k]:
                        same = False
                        break
                if same:
                    out[i] = fps[e]
                    break
            s = (s + 1) & mask
    counts[0], counts[1] = entries, used
    return out


@numba.njit(nogil=True, cache=True)
def _rehash(hashes, entries, slots):
    mask = slots.shape[0] - 1
    for e in range(entries):
        s = np.int64(hashes[e] >> np.uint64(20)) & mask
        while slots[s] >= 0:
            s = (s + 1) & mask
        slots[s] = e


class FingerprintMemo:
    """Fingerprints of the label sets seen before, by their sequence of string ids.

    An alert is resent every few minutes while it fires, so most alerts of a
    storm carry a label set seen before: this spares hashing their strings
    byte by byte again. At most ``limit`` sets and ``MEMO_IDS_PER_SET`` label
    ids per set of the limit are kept (32 bytes per set and 8 per label): a
    batch that would not fit beside what is kept starts the memo over, and one
    larger than the memo can hold (a whole recording replayed at once) is
    hashed as it comes, so memory stays bounded however many fingerprints a
    daemon sees. Ids are those of one vocabulary, which never renumbers them;
    the same sequence in another order is another entry (and the same
    fingerprint).
    """

    def __init__(self, limit: int = MEMO_SETS) -> None:
        self.limit = limit
        self.max_ids = limit * MEMO_IDS_PER_SET
        sets = min(limit, _MEMO_START)
        self._start_over(sets, sets * _MEMO_FIRST_IDS_PER_SET)
        # Compile (or load) the growing kernel now: numba holds the GIL while it
        # compiles, which at the memo's first growth would stall a storm.
        _rehash(self._memo[1], 0, self._memo[0])

    def __len__(self) -> int:
        return int(self._counts[0])

    def fingerprints(
        self,
        ptr: np.ndarray,
        keys: np.ndarray,
        values: np.ndarray,
        key_rank: np.ndarray,
        string_bytes: np.ndarray,
        string_offsets: np.ndarray,
    ) -> np.ndarray:
        """``fingerprint_columns`` of a batch, through the memo."""
        rows, ids = len(ptr) - 1, len(keys)
        if rows > self.limit or ids > self.max_ids:
            return fingerprint_columns(ptr, keys, values, key_rank, string_bytes, string_offsets)
        self._make_room(rows, ids)
        return _memo_fingerprints(
            ptr, keys, values, key_rank, string_bytes, string_offsets, *self._memo, self._counts
        )

    def _start_over(self, sets: int, ids: int) -> None:
        self._memo = (
            _slots(sets),
            np.zeros(sets, dtype=np.uint64),
            np.zeros(sets, dtype=np.uint64),
            np.zeros(sets + 1, dtype=np.int64),
            np.zeros(ids, dtype=np.int32),
            np.zeros(ids, dtype=np.int32),
        )
        self._counts = np.zeros(2, dtype=np.int64)

    def _make_room(self, rows: int, ids: int) -> None:
        """Room for ``rows`` more sets of ``ids`` label ids in all: the arrays doubled as
        needed, or a fresh start when the limits would be passed."""
        _, hashes, fps, starts, arena_keys, arena_values = self._memo
        entries, used = (int(c) for c in self._counts)
        if entries + rows > self.limit or used + ids > self.max_ids:
            entries = used = 0
        sets, room = len(hashes), len(arena_keys)
        while sets < entries + rows:
            sets = min(2 * sets, self.limit)
        while room < used + ids:
            room = min(2 * room, self.max_ids)
        if not entries:
            self._start_over(sets, room)
            return
        if (sets, room) == (len(hashes), len(arena_keys)):
            return
        slots = self._memo[0]
        if sets != len(hashes):
            slots = _slots(sets)
            _rehash(hashes, entries, slots)
        self._memo = (
            slots,
            _grown(hashes, entries, sets),
            _grown(fps, entries, sets),
            _grown(starts, entries + 1, sets + 1),
            _grown(arena_keys, used, room),
            _grown(arena_values, used, room),
        )


def _slots(sets: int) -> np.ndarray:
    """An empty slot table for ``sets`` entries: a power of two, at most half full."""
    return np.full(1 << (2 * sets - 1).bit_length(), -1, dtype=np.int32)


def _grown(array: np.ndarray, used: int, size: int) -> np.ndarray:
    out = np.zeros(size, dtype=array.dtype)
    out[:used] = array[:used]
    return out
