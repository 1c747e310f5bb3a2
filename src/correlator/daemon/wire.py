"""Label strings as stable integer ids between the decode process and the correlation loop.

Interning every distinct label string of every batch (a hash of each
string in Arrow, then a Python dictionary lookup per distinct string) was a
third of the correlation loop's time, and building those strings as Arrow
columns was a quarter of the decode process's. Neither is needed: the
decode side keeps its own string-to-id maps (``LabelCoder``, one for label
names and one for values), builds the labels column as ``map<int32,
int32>`` of those *wire ids*, and ships beside each burst only the strings
first seen in it (``NewStrings``). The loop keeps, per decode stream, numpy
arrays from wire id to ``Vocabulary`` id (``LabelTranslator``), extended
only with new strings, so a batch's labels become vocabulary ids with one
gather each.

Wire ids are only meaningful within one stream: one ``LabelCoder`` feeding
one ``LabelTranslator``, every burst's ``NewStrings`` learned in the order
the coder made them. New strings are handed out once (``take_new``), with
the first id they take, so a gap (a burst lost on the way) is caught, never
silently misread.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import chain

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from correlator.daemon.strtable import StringTable
from correlator.decode import Decoded
from correlator.errors import CorrelatorError
from correlator.schema import ALERT_SCHEMA
from correlator.vocab import Vocabulary

WIRE_LABELS = pa.map_(pa.int32(), pa.int32())
WIRE_SCHEMA = ALERT_SCHEMA.set(0, pa.field("labels", WIRE_LABELS, nullable=False))
_NO_IDS = np.zeros(0, dtype=np.int32)


@dataclass(frozen=True)
class NewStrings:
    """The label names and values a coder met for the first time, with the first id of each."""

    first_key: int = 0
    keys: list[str] = field(default_factory=list)
    first_value: int = 0
    values: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class WireDecoded(Decoded):
    """A ``Decoded`` whose table is in ``WIRE_SCHEMA``, with the strings its ids may need."""

    strings: NewStrings = field(default_factory=NewStrings)


class _Ids(dict[str, int]):
    """Strings to ids, a new string taking the next id (and noted) on its first lookup.

    Python strings are looked up in the dict; Arrow string columns are coded by
    the compiled ``StringTable`` from their buffers. Both hand out the same ids:
    every string is in both, entered in id order.
    """

    def __init__(self) -> None:
        super().__init__()
        self.new: list[str] = []
        self._table = StringTable()

    def __missing__(self, text: str) -> int:
        data = np.frombuffer(text.encode("utf-8", "surrogatepass"), dtype=np.uint8)
        wire_id = int(self._table.code(np.array([0, len(data)], dtype=np.int64), data)[0])
        self[text] = wire_id
        self.new.append(text)
        return wire_id

    def of_strings(self, strings: pa.Array) -> np.ndarray:
        """The ids of an Arrow string array's values, a null as ``""``; ``pa.ArrowInvalid``
        when its bytes are not UTF-8."""
        if strings.null_count:
            strings = pc.fill_null(strings, "")
        strings.validate(full=True)
        _, offsets, data = strings.buffers()
        bounds = np.frombuffer(offsets, dtype=np.int32)[strings.offset :][: len(strings) + 1]
        text = np.frombuffer(data, dtype=np.uint8) if data is not None else np.zeros(0, np.uint8)
        first = len(self._table)
        ids = self._table.code(bounds, text)
        for wire_id, new in enumerate(self._table.strings(first), start=first):
            self[new] = wire_id
            self.new.append(new)
        return ids


class LabelCoder:
    """The decode side: label strings to wire ids (a ``correlator.decode.LabelEncoder``).

    The maps grow with every distinct label name and value, as the daemon's
    ``Vocabulary`` does; annotations are not coded (their texts are often
    unique), only labels.
    """

    schema = WIRE_SCHEMA

    def __init__(self) -> None:
        self._keys = _Ids()
        self._values = _Ids()

    def from_dicts(self, maps: list[dict[str, str]]) -> pa.Array:
        """The labels column of alerts whose labels are ``maps``, as wire ids.

        One C-level dictionary lookup per label (``map`` over the dicts, no
        Python loop per alert); only a string never seen before runs Python.
        """
        offsets = np.zeros(len(maps) + 1, dtype=np.int32)
        np.cumsum(np.fromiter(map(len, maps), dtype=np.int32, count=len(maps)), out=offsets[1:])
        total = int(offsets[-1])
        keys = np.fromiter(
            map(self._keys.__getitem__, chain.from_iterable(maps)), dtype=np.int32, count=total
        )
        values = np.fromiter(
            map(self._values.__getitem__, chain.from_iterable(map(dict.values, maps))),
            dtype=np.int32,
            count=total,
        )
        return pa.MapArray.from_arrays(offsets, keys, values, type=WIRE_LABELS)

    def from_table(self, table: pa.Table) -> pa.Table:
        """A conformed Arrow table in ``WIRE_SCHEMA``: its labels as wire ids, the rest cast.

        The strings are coded from the columns' buffers by a compiled table
        (``strtable``); only one never seen before becomes a Python string. A
        null label value reads as ``""``, as the normalizer reads it; label
        bytes that are not UTF-8 raise ``pa.ArrowInvalid``.
        """
        chunks = [self._chunk(chunk) for chunk in table.column("labels").chunks]
        labels = pa.chunked_array(chunks, type=WIRE_LABELS)
        if table.schema == ALERT_SCHEMA:  # the rest is as it should be: a tenth of the cost
            return table.set_column(0, WIRE_SCHEMA.field("labels"), labels)
        rest = [_as(table.column(f.name), f.type) for f in WIRE_SCHEMA if f.name != "labels"]
        return pa.Table.from_arrays([labels, *rest], schema=WIRE_SCHEMA)

    def _chunk(self, chunk: pa.Array) -> pa.MapArray:
        if not isinstance(chunk, pa.MapArray):
            chunk = pc.cast(chunk, ALERT_SCHEMA.field("labels").type)
        offsets = chunk.offsets.to_numpy().astype(np.int32)
        lo, hi = int(offsets[0]), int(offsets[-1])
        keys = _coded(self._keys, chunk.keys.slice(lo, hi - lo))
        values = _coded(self._values, chunk.items.slice(lo, hi - lo))
        return pa.MapArray.from_arrays(offsets - np.int32(lo), keys, values, type=WIRE_LABELS)

    def take_new(self) -> NewStrings:
        """The strings coded since the last call, with their first ids; handed out once."""
        keys, values = self._keys.new, self._values.new
        self._keys.new, self._values.new = [], []
        return NewStrings(
            len(self._keys) - len(keys), keys, len(self._values) - len(values), values
        )


def _as(column: pa.ChunkedArray, type_: pa.DataType) -> pa.ChunkedArray:
    """``column`` cast to ``type_`` (a cast to its own type still costs a few us a column)."""
    return column if column.type == type_ else column.cast(type_)


def _coded(ids: _Ids, strings: pa.Array) -> np.ndarray:
    """Wire ids of an Arrow string (or dictionary-of-string) array; nulls as ``""``."""
    if len(strings) == 0:
        return _NO_IDS
    if not pa.types.is_dictionary(strings.type):
        return ids.of_strings(strings)
    lut = np.append(ids.of_strings(strings.dictionary), np.int32(ids[""]))
    missing = pa.scalar(len(strings.dictionary), strings.indices.type)
    indices = pc.fill_null(strings.indices, missing).to_numpy(zero_copy_only=False)
    return lut[indices]


class LabelTranslator:
    """The loop side: wire ids of one decode stream to ``Vocabulary`` ids.

    Owned by the correlation loop, like the vocabulary it interns into.
    """

    def __init__(self, vocab: Vocabulary) -> None:
        self.vocab = vocab
        self._keys = np.zeros(0, dtype=np.int32)
        self._values = np.zeros(0, dtype=np.int32)

    def learn(self, strings: NewStrings) -> None:
        """Intern a burst's new strings; bursts must be learned in the order they were coded."""
        if strings.first_key != len(self._keys) or strings.first_value != len(self._values):
            msg = (
                f"label strings out of order: new ids from {strings.first_key}/"
                f"{strings.first_value}, {len(self._keys)}/{len(self._values)} known"
            )
            raise CorrelatorError(msg)
        if strings.keys:
            names = self.vocab.intern_many(strings.keys)
            self.vocab.name_rank(names)
            self._keys = np.concatenate([self._keys, names])
        if strings.values:
            self._values = np.concatenate([self._values, self.vocab.intern_many(strings.values)])

    def labels(self, column: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """A ``WIRE_LABELS`` column as CSR: per-alert offsets, name ids and value ids."""
        ptrs = [np.zeros(1, dtype=np.int64)]
        keys, values = [_NO_IDS], [_NO_IDS]
        base = 0
        for chunk in column.chunks:
            offsets = chunk.offsets.to_numpy().astype(np.int64)
            lo, hi = int(offsets[0]), int(offsets[-1])
            keys.append(self._keys[chunk.keys.slice(lo, hi - lo).to_numpy()])
            values.append(self._values[chunk.items.slice(lo, hi - lo).to_numpy()])
            ptrs.append(offsets[1:] - lo + base)
            base += hi - lo
        return np.concatenate(ptrs), np.concatenate(keys), np.concatenate(values)
