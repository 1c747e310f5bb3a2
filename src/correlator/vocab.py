"""String interning: every label name and value becomes a small integer id.

Rules, topology lookups and severity codes are evaluated once per distinct
string and stored in tables indexed by these ids, so the per-alert hot path
only gathers integers. Ids are stable for the life of a ``Vocabulary``; id 0
is the empty string (a missing label reads as ``""``, as in Prometheus).
"""

from __future__ import annotations

from collections.abc import Iterable

import numba
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


class Vocabulary:
    """An append-only table of strings with their UTF-8 bytes in one buffer."""

    def __init__(self) -> None:
        self._ids: dict[str, int] = {"": 0}
        self._strings: list[str] = [""]
        self._chunks: list[bytes] = []  # UTF-8 of the strings not yet in the buffer
        # The buffer and offsets grow by doubling, so adding strings costs what they add,
        # not a copy of every string known; ``byte_buffer`` hands out the filled prefixes.
        self._bytes = np.zeros(0, dtype=np.uint8)
        self._bytes_offsets = np.zeros(2, dtype=np.int64)
        self._flushed = 1
        self._label_names: set[int] = set()
        self._is_name = np.zeros(0, dtype=np.bool_)
        self._name_rank = np.zeros(1, dtype=np.int64)

    def __len__(self) -> int:
        return len(self._strings)

    def __getitem__(self, string_id: int) -> str:
        return self._strings[string_id]

    def get(self, text: str) -> int:
        """The id of ``text``, or -1 when it was never interned."""
        return self._ids.get(text, -1)

    def intern(self, text: str) -> int:
        """The id of ``text``, adding it if it is new."""
        found = self._ids.get(text)
        if found is not None:
            return found
        new_id = len(self._strings)
        self._ids[text] = new_id
        self._strings.append(text)
        self._chunks.append(text.encode("utf-8", "surrogatepass"))
        return new_id

    def intern_many(self, texts: Iterable[str]) -> np.ndarray:
        """Ids of ``texts`` in order, as int32."""
        intern = self.intern
        return np.fromiter((intern(t) for t in texts), dtype=np.int32)

    def intern_arrow(self, strings: pa.Array) -> tuple[np.ndarray, np.ndarray]:
        """Ids of an Arrow string or dictionary-of-string array, and its distinct ids.

        Nulls read as ``""``. Only the distinct strings pass through Python: a
        plain array is dictionary-encoded in C++ first, and the ids are
        gathered with numpy.
        """
        if len(strings) == 0:
            empty = np.zeros(0, dtype=np.int32)
            return empty, empty
        if not pa.types.is_dictionary(strings.type):
            strings = pc.dictionary_encode(strings)
        lut = np.append(self.intern_many(strings.dictionary.to_pylist()), np.int32(0))
        missing = pa.scalar(len(strings.dictionary), strings.indices.type)
        indices = pc.fill_null(strings.indices, missing)
        return lut[indices.to_numpy(zero_copy_only=False)], lut

    def strings(self, ids: Iterable[int]) -> list[str]:
        """The strings behind ``ids``."""
        table = self._strings
        return [table[i] for i in ids]

    def byte_buffer(self) -> tuple[np.ndarray, np.ndarray]:
        """All strings as one UTF-8 buffer and offsets: string i is buf[off[i]:off[i+1]]."""
        count = len(self._strings)
        if self._flushed < count:
            added = np.frombuffer(b"".join(self._chunks), dtype=np.uint8)
            sizes = np.fromiter(map(len, self._chunks), dtype=np.int64, count=len(self._chunks))
            self._chunks.clear()
            used = int(self._bytes_offsets[self._flushed])
            self._bytes = _grown(self._bytes, used, used + len(added))
            self._bytes[used : used + len(added)] = added
            self._bytes_offsets = _grown(self._bytes_offsets, self._flushed + 1, count + 1)
            np.cumsum(sizes, out=self._bytes_offsets[self._flushed + 1 : count + 1])
            self._bytes_offsets[self._flushed + 1 : count + 1] += used
            self._flushed = count
        offsets = self._bytes_offsets[: count + 1]
        return self._bytes[: int(offsets[-1])], offsets

    def string_array(self, ids: np.ndarray) -> pa.StringArray:
        """The strings behind ``ids`` as an Arrow string array.

        The bytes are copied out of the byte buffer by one compiled loop, so
        no Python string is made per id.
        """
        buffer, offsets = self.byte_buffer()
        return _string_array(buffer, offsets, ids)

    def name_rank(self, label_names: np.ndarray) -> np.ndarray:
        """Ranks that order label-name ids as their strings sort.

        ``label_names`` holds (at least) every distinct name id in use; ids
        already ranked are sorted out with numpy, so passing every label's
        name id is cheap. The returned array is indexed by string id and is
        valid for every id seen as a label name so far; it is rebuilt only
        when a new name shows up.
        """
        ids = np.asarray(label_names, dtype=np.int64)
        if len(self._is_name) < len(self._strings):
            self._is_name = _grown(self._is_name, len(self._is_name), len(self._strings))
        fresh = ids[~self._is_name[ids]] if len(ids) else ids
        if not len(fresh):
            return self._name_rank
        new = set(np.unique(fresh).tolist()) - self._label_names
        self._is_name[fresh] = True
        if new:
            self._label_names |= new
            ordered = sorted(self._label_names, key=self._strings.__getitem__)
            rank = np.zeros(max(ordered) + 1, dtype=np.int64)
            rank[ordered] = np.arange(len(ordered), dtype=np.int64)
            self._name_rank = rank
        return self._name_rank


def _grown(array: np.ndarray, used: int, needed: int) -> np.ndarray:
    """``array`` with room for ``needed`` items (its first ``used`` kept), doubling as it grows."""
    if needed <= len(array):
        return array
    bigger = np.zeros(max(needed, 2 * len(array)), dtype=array.dtype)
    bigger[:used] = array[:used]
    return bigger


@numba.njit(nogil=True, cache=True)
def _gather_strings(buffer, offsets, ids):
    n = ids.shape[0]
    out_offsets = np.empty(n + 1, dtype=np.int64)
    out_offsets[0] = 0
    for i in range(n):
        out_offsets[i + 1] = out_offsets[i] + offsets[ids[i] + 1] - offsets[ids[i]]
    out = np.empty(out_offsets[n], dtype=np.uint8)
    for i in range(n):
        start = offsets[ids[i]]
        base = out_offsets[i]
        for k in range(out_offsets[i + 1] - base):
            out[base + k] = buffer[start + k]
    return out_offsets, out


def _string_array(buffer: np.ndarray, offsets: np.ndarray, ids: np.ndarray) -> pa.Array:
    """The strings behind ``ids`` as an Arrow string array, gathered from the byte buffer."""
    out_offsets, data = _gather_strings(buffer, offsets, np.asarray(ids, dtype=np.int64))
    if out_offsets[-1] < 2**31:
        return pa.StringArray.from_buffers(
            len(ids), pa.py_buffer(out_offsets.astype(np.int32)), pa.py_buffer(data)
        )
    large = pa.LargeStringArray.from_buffers(
        len(ids), pa.py_buffer(out_offsets), pa.py_buffer(data)
    )
    return large.cast(pa.string())  # refused by Arrow past 2 GiB, as the log's format is
