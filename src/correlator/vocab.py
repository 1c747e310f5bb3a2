"""String interning: every label name and value becomes a small integer id.

Rules, topology lookups and severity codes are evaluated once per distinct
string and stored in tables indexed by these ids, so the per-alert hot path
only gathers integers. Ids are stable for the life of a ``Vocabulary``; id 0
is the empty string (a missing label reads as ``""``, as in Prometheus).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


class Vocabulary:
    """An append-only table of strings with their UTF-8 bytes in one buffer."""

    def __init__(self) -> None:
        self._ids: dict[str, int] = {"": 0}
        self._strings: list[str] = [""]
        self._chunks: list[bytes] = []
        self._offsets: list[int] = [0, 0]
        self._bytes = np.zeros(0, dtype=np.uint8)
        self._bytes_offsets = np.zeros(2, dtype=np.int64)
        self._flushed = 1
        self._label_names: set[int] = set()
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
        encoded = text.encode("utf-8", "surrogatepass")
        self._chunks.append(encoded)
        self._offsets.append(self._offsets[-1] + len(encoded))
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
        if self._flushed < len(self._strings):
            self._bytes = np.concatenate(
                [self._bytes, np.frombuffer(b"".join(self._chunks), dtype=np.uint8)]
            )
            self._chunks.clear()
            self._bytes_offsets = np.asarray(self._offsets, dtype=np.int64)
            self._flushed = len(self._strings)
        return self._bytes, self._bytes_offsets

    def name_rank(self, label_names: np.ndarray) -> np.ndarray:
        """Ranks that order label-name ids as their strings sort.

        ``label_names`` holds (at least) every distinct name id in use. The
        returned array is indexed by string id and is valid for every id seen
        as a label name so far; it is rebuilt only when a new name shows up.
        """
        new = set(label_names.tolist()) - self._label_names
        if new:
            self._label_names |= new
            ordered = sorted(self._label_names, key=self._strings.__getitem__)
            rank = np.zeros(max(ordered) + 1, dtype=np.int64)
            rank[ordered] = np.arange(len(ordered), dtype=np.int64)
            self._name_rank = rank
        return self._name_rank
