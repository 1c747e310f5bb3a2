"""A compiled table from UTF-8 strings to ids, fed straight from Arrow string buffers.

The decode process codes every label name and value of every alert. Done
through Python (a ``str`` per label, a dict lookup each) or through Arrow
(hash the column, then a ``str`` per distinct string) that was the largest
part of its time once JSON bodies were scanned without Python objects. This
table hashes the bytes where they lie, in a numba loop; only a string seen
for the first time becomes a Python ``str``. Label names and values are
short (7.6 bytes on average in the storms of ``benchmarks/``), so they are
hashed and compared a word at a time: a string of up to eight bytes costs
one load and one multiply, where a byte at a time cost one per byte.
"""

from __future__ import annotations

import numba
import numpy as np

from correlator.words import load8

_SEED = np.uint64(0xCBF29CE484222325)
_MULTIPLIER = np.uint64(0x9E3779B97F4A7C15)  # odd: the multiply loses no bit of a word
_EMPTY = -1


@numba.njit(nogil=True, cache=True, inline="always")
def _word(data, k, count):
    """The ``count`` (1 to 8) bytes of ``data`` from ``k`` on as one little-endian word,
    the bytes above them zero; the word is loaded whole where ``data`` has room."""
    if k + 8 <= data.shape[0]:
        word = load8(data, k)
        return (
            word if count == 8 else word & ((np.uint64(1) << np.uint64(8 * count)) - np.uint64(1))
        )
    word = np.uint64(0)
    for b in range(count):
        word |= np.uint64(data[k + b]) << np.uint64(8 * b)
    return word


@numba.njit(nogil=True, cache=True, inline="always")
def _hash(data, s, e):
    """A 64-bit hash of ``data[s:e]``, a word at a time, mixed down to its low bits."""
    h = _SEED ^ np.uint64(e - s)
    for k in range(s, e, 8):
        h = (h ^ _word(data, k, min(8, e - k))) * _MULTIPLIER
        h ^= h >> np.uint64(32)
    return h


@numba.njit(nogil=True, cache=True, inline="always")
def _equal(arena, a, data, s, length):
    """Whether ``arena[a:a + length]`` holds the bytes ``data[s:s + length]``."""
    for k in range(0, length, 8):
        count = min(8, length - k)
        if _word(arena, a + k, count) != _word(data, s + k, count):
            return False
    return True


@numba.njit(nogil=True, cache=True, _nrt=False)
def _code(offsets, data, slots, hashes, starts, arena, counts, out):
    """Ids of the strings ``data[offsets[j]:offsets[j + 1]]`` into ``out``; a string not in
    the table takes the next id. The caller made room for every string being new."""
    mask = slots.shape[0] - 1
    n, used = counts[0], counts[1]
    for j in range(offsets.shape[0] - 1):
        s, e = offsets[j], offsets[j + 1]
        h = _hash(data, s, e)
        slot = np.int64(h & np.uint64(mask))
        while True:
            i = slots[slot]
            if i == _EMPTY:
                slots[slot] = n
                hashes[n] = h
                for k in range(s, e):
                    arena[used] = data[k]
                    used += 1
                starts[n + 1] = used
                out[j] = n
                n += 1
                break
            a = starts[i]
            if hashes[i] == h and starts[i + 1] - a == e - s and _equal(arena, a, data, s, e - s):
                out[j] = i
                break
            slot = (slot + 1) & mask
    counts[0], counts[1] = n, used


@numba.njit(nogil=True, cache=True, _nrt=False)
def _rehash(slots, hashes, n):
    mask = slots.shape[0] - 1
    for i in range(n):
        slot = np.int64(hashes[i] & np.uint64(mask))
        while slots[slot] != _EMPTY:
            slot = (slot + 1) & mask
        slots[slot] = i


class StringTable:
    """UTF-8 strings to ids 0, 1, 2, ... in the order they were first coded."""

    def __init__(self) -> None:
        self._slots = np.full(1 << 10, _EMPTY, dtype=np.int64)
        self._hashes = np.zeros(1 << 9, dtype=np.uint64)
        self._starts = np.zeros((1 << 9) + 1, dtype=np.int64)
        self._arena = np.zeros(1 << 16, dtype=np.uint8)
        self._counts = np.zeros(2, dtype=np.int64)

    def __len__(self) -> int:
        return int(self._counts[0])

    def code(self, offsets: np.ndarray, data: np.ndarray) -> np.ndarray:
        """The ids (int32) of the strings ``data[offsets[j]:offsets[j + 1]]``."""
        count = len(offsets) - 1
        size = int(offsets[-1] - offsets[0]) if count > 0 else 0
        self._reserve(count, size)
        out = np.empty(count, dtype=np.int32)
        _code(
            offsets, data, self._slots, self._hashes, self._starts, self._arena, self._counts, out
        )
        return out

    def strings(self, first: int) -> list[str]:
        """The strings of ids ``first`` and on, decoded (they were checked as UTF-8)."""
        n = len(self)
        arena, starts = self._arena, self._starts
        return [arena[starts[i] : starts[i + 1]].tobytes().decode() for i in range(first, n)]

    def _reserve(self, count: int, size: int) -> None:
        n, used = int(self._counts[0]), int(self._counts[1])
        if n + count > len(self._hashes):
            grown = max(2 * len(self._hashes), n + count)
            self._hashes = np.resize(self._hashes, grown)
            starts = np.zeros(grown + 1, dtype=np.int64)
            starts[: n + 1] = self._starts[: n + 1]
            self._starts = starts
        if used + size > len(self._arena):
            arena = np.zeros(max(2 * len(self._arena), used + size), dtype=np.uint8)
            arena[:used] = self._arena[:used]
            self._arena = arena
        if 2 * (n + count) > len(self._slots):
            slots = 1 << (4 * (n + count) - 1).bit_length()
            self._slots = np.full(slots, _EMPTY, dtype=np.int64)
            _rehash(self._slots, self._hashes, n)
