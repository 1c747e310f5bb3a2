"""Label ids on the wire: the loop reads what string decoding would have given it."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import label_pairs
from correlator.batch import Normalizer
from correlator.client import arrow_message
from correlator.daemon.frames import Frame, decode_frames
from correlator.daemon.receiver import HEADER, decode_result, encode_result
from correlator.daemon.strtable import StringTable
from correlator.daemon.wire import (
    WIRE_SCHEMA,
    LabelCoder,
    LabelTranslator,
    NewStrings,
    WireDecoded,
)
from correlator.decode import decode_arrow_stream
from correlator.errors import CorrelatorError
from correlator.schema import ALERT_SCHEMA
from correlator.vocab import Vocabulary

MAX_BYTES = 1 << 20
label_maps = st.dictionaries(
    st.sampled_from(["alertname", "instance", "job", "severity", "ci", "é", "0bad"]),
    st.text(max_size=6),
    max_size=5,
)
alerts = st.builds(
    lambda labels, start: {"labels": labels, "startsAt": start},
    label_maps,
    st.sampled_from(["2026-11-27T10:00:00Z", "2026-11-27T10:00:01.5+01:00", "never"]),
)


def _frames(bursts: list[list[dict]]) -> list[list[Frame]]:
    return [[Frame("json", json.dumps(a).encode()) for a in burst] for burst in bursts]


def _through_the_wire(coder: LabelCoder, frames: list[Frame]) -> WireDecoded:
    """A burst as the decode process ships it and the daemon reads it back."""
    decoded = decode_frames(frames, max_bytes=MAX_BYTES, labels=coder)
    header, index, stream = encode_result(decoded, "s", coder.take_new())
    back = decode_result(HEADER.decode(header), memoryview(index), memoryview(stream))
    assert isinstance(back, WireDecoded)
    assert back.table.schema == WIRE_SCHEMA
    return back


@settings(max_examples=150, deadline=None)
@given(st.lists(st.lists(alerts, max_size=6), min_size=1, max_size=4))
def test_wire_ids_give_the_batches_string_labels_give(bursts: list[list[dict]]) -> None:
    coder = LabelCoder()
    wire_vocab, string_vocab = Vocabulary(), Vocabulary()
    translator = LabelTranslator(wire_vocab)
    by_ids, by_strings = Normalizer(wire_vocab), Normalizer(string_vocab)
    for frames in _frames(bursts):
        plain = decode_frames(frames, max_bytes=MAX_BYTES)
        wired = _through_the_wire(coder, frames)
        assert wired.rows == plain.rows and wired.rejects == plain.rejects
        assert wired.table.drop_columns(["labels"]).equals(plain.table.drop_columns(["labels"]))
        translator.learn(wired.strings)
        ptr, keys, values = translator.labels(wired.table.column("labels"))
        assert label_pairs(wire_vocab, ptr, keys, values) == (
            plain.table.column("labels").to_pylist()
        )
        a, a_rejects = by_ids.normalize_interned(wired.table, ptr, keys, values, wired.index)
        b, b_rejects = by_strings.normalize(plain.table, plain.index)
        assert a_rejects == b_rejects
        assert np.array_equal(a.fingerprint, b.fingerprint)
        assert np.array_equal(a.severity, b.severity) and np.array_equal(a.ts, b.ts)
        assert [a.labels(i, wire_vocab) for i in range(len(a))] == [
            b.labels(i, string_vocab) for i in range(len(b))
        ]


def test_arrow_frames_are_coded_too_nulls_reading_as_empty() -> None:
    labels = pa.array(
        [[("alertname", "A"), ("instance", None)], [("alertname", "A")]],
        type=pa.map_(pa.string(), pa.string()),
    )
    table = pa.table(
        {"labels": labels.cast(pa.map_(pa.dictionary(pa.int8(), pa.string()), pa.string()))}
    )
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    coder = LabelCoder()
    decoded = decode_arrow_stream(sink.getvalue().to_pybytes(), labels=coder)
    assert decoded.table.schema == WIRE_SCHEMA and not decoded.rejects
    vocab = Vocabulary()
    translator = LabelTranslator(vocab)
    translator.learn(coder.take_new())
    ptr, keys, values = translator.labels(decoded.table.column("labels"))
    assert label_pairs(vocab, ptr, keys, values) == [
        [("alertname", "A"), ("instance", "")],
        [("alertname", "A")],
    ]


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.one_of(st.none(), label_maps), min_size=1, max_size=12),
    st.integers(0, 12),
    st.integers(0, 12),
)
def test_the_clients_arrow_messages_read_as_the_plain_table(
    maps: list[dict[str, str] | None], start: int, length: int
) -> None:
    """Dictionary-encoded labels (``arrow_message``) of any slice, null maps and values
    included, give the loop the labels the plain table has."""
    pairs = [None if m is None else [(k, v or None) for k, v in m.items()] for m in maps]
    table = pa.table({"labels": pa.array(pairs, ALERT_SCHEMA.field("labels").type)})
    part = table.slice(start, length)
    payload = arrow_message(part)
    assert pa.types.is_dictionary(pa.ipc.open_stream(payload).schema.field("labels").type.key_type)
    coder = LabelCoder()
    decoded = decode_arrow_stream(payload, labels=coder)
    assert decoded.rows == part.num_rows and not decoded.rejects
    vocab = Vocabulary()
    translator = LabelTranslator(vocab)
    translator.learn(coder.take_new())
    ptr, keys, values = translator.labels(decoded.table.column("labels"))
    assert label_pairs(vocab, ptr, keys, values) == [
        [(k, v or "") for k, v in row or []] for row in part.column("labels").to_pylist()
    ]


def test_new_strings_are_handed_out_once_and_a_gap_is_refused() -> None:
    coder = LabelCoder()
    coder.from_dicts([{"a": "x"}])
    first = coder.take_new()
    coder.from_dicts([{"a": "y", "b": "x"}])
    second = coder.take_new()
    assert first == NewStrings(0, ["a"], 0, ["x"])
    assert second == NewStrings(1, ["b"], 1, ["y"])
    translator = LabelTranslator(Vocabulary())
    with pytest.raises(CorrelatorError, match="out of order"):
        translator.learn(second)
    translator.learn(first)
    translator.learn(second)


def test_string_arrays_copy_strings_out_of_a_growing_vocabulary() -> None:
    vocab = Vocabulary()
    expected = []
    for round_ in range(50):  # the buffer grows many times, some ids already handed out
        texts = [f"s{round_}-{k}-ü" * (k % 3) for k in range(round_ % 7 + 1)]
        ids = vocab.intern_many(texts)
        vocab.byte_buffer()
        expected.extend(texts)
        assert [vocab[i] for i in ids] == texts
    ids = vocab.intern_many(expected)
    assert vocab.string_array(ids).to_pylist() == expected
    assert vocab.string_array(ids[::-1].copy()).to_pylist() == expected[::-1]
    buffer, offsets = vocab.byte_buffer()
    assert [bytes(buffer[offsets[i] : offsets[i + 1]]).decode() for i in ids] == expected


def test_name_ranks_order_names_as_strings_sort_whatever_ids_are_passed() -> None:
    vocab = Vocabulary()
    ids = vocab.intern_many(["zeta", "alpha", "mid", "value"])
    rank = vocab.name_rank(np.array([ids[0], ids[1], ids[0], ids[0]]))
    assert rank[ids[1]] < rank[ids[0]]
    rank = vocab.name_rank(np.array([ids[2], ids[1]]))
    assert rank[ids[1]] < rank[ids[2]] < rank[ids[0]]
    assert vocab.name_rank(np.zeros(0, dtype=np.int32)) is rank


def test_the_wire_schema_differs_from_the_canonical_one_only_in_labels() -> None:
    assert WIRE_SCHEMA.remove(0) == ALERT_SCHEMA.remove(0)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.booleans(), st.lists(st.dictionaries(st.text(max_size=3), st.text(max_size=3)))
        ),
        max_size=6,
    )
)
def test_python_lookups_and_arrow_columns_hand_out_the_same_ids(
    steps: list[tuple[bool, list[dict[str, str]]]],
) -> None:
    """Labels coded from dicts (JSON decoded by msgspec) and from Arrow columns (scanned
    JSON, Arrow frames) share one sequence of ids, each string with one id."""
    coder = LabelCoder()
    keys: list[str] = []
    values: list[str] = []
    for from_arrow, maps in steps:
        if from_arrow:
            table = pa.Table.from_pylist(
                [{"labels": list(m.items())} for m in maps], schema=ALERT_SCHEMA
            )
            column = coder.from_table(table).column("labels").combine_chunks()
        else:
            column = coder.from_dicts(maps)
        new = coder.take_new()
        assert (new.first_key, new.first_value) == (len(keys), len(values))
        keys += new.keys
        values += new.values
        assert len(set(keys)) == len(keys) and len(set(values)) == len(values)
        decoded = [{keys[k]: values[v] for k, v in pairs} for pairs in column.to_pylist()]
        assert decoded == maps


def test_the_compiled_string_table_grows_past_its_first_capacity() -> None:
    coder = LabelCoder()
    values = [f"value-{k}-" * (1 + k % 7) for k in range(5000)]
    table = pa.Table.from_pylist([{"labels": [("k", v)]} for v in values], schema=ALERT_SCHEMA)
    first = coder.from_table(table).column("labels").combine_chunks()
    again = coder.from_table(table).column("labels").combine_chunks()
    assert coder.take_new().values == values
    assert first.to_pylist() == again.to_pylist() == [[(0, k)] for k in range(5000)]


@settings(max_examples=300, deadline=None)
@given(
    batches=st.lists(
        st.lists(st.text("ab\u00e9", max_size=20), max_size=12), min_size=1, max_size=6
    ),
    lead=st.integers(0, 9),
)
def test_the_string_table_numbers_strings_in_order_of_first_sight(
    batches: list[list[str]], lead: int
) -> None:
    """Strings that share long prefixes, end at a buffer's last byte or straddle its
    words: each gets one id, the next free one when first seen."""
    table = StringTable()
    seen: dict[str, int] = {}
    for batch in batches:
        encoded = [text.encode() for text in batch]
        data = np.frombuffer(b"x" * lead + b"".join(encoded), dtype=np.uint8)
        offsets = np.cumsum([lead, *map(len, encoded)], dtype=np.int64)
        ids = table.code(offsets, data)
        assert ids.tolist() == [seen.setdefault(text, len(seen)) for text in batch]
    assert table.strings(0) == list(seen)


def test_arrow_label_bytes_that_are_not_utf8_refuse_the_stream() -> None:
    bad = pa.array([b"\xff\xfe"], pa.binary()).cast(pa.string(), safe=False)
    labels = pa.MapArray.from_arrays(pa.array([0, 1], pa.int32()), pa.array(["k"]), bad)
    table = pa.table({"labels": labels})
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    decoded = decode_arrow_stream(sink.getvalue().to_pybytes(), labels=LabelCoder())
    assert decoded.table.num_rows == 0
    assert [r.reason for r in decoded.rejects] == ["bad_arrow"]
