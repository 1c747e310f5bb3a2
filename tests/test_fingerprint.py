"""The label-set fingerprint matches prometheus/common, in Python and in numba."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from correlator.fingerprint import (
    FingerprintMemo,
    fingerprint,
    fingerprint_columns,
    format_fingerprint,
)
from correlator.vocab import Vocabulary


def test_prometheus_common_vectors() -> None:
    assert fingerprint({}) == 14695981039346656037
    assert fingerprint({"name": "garland, briggs", "fear": "love is not enough"}) == (
        5799056148416392346
    )


def test_hex_form_is_sixteen_lowercase_digits() -> None:
    assert format_fingerprint(5799056148416392346) == "507a62d79ee76c9a"
    assert format_fingerprint(1) == "0000000000000001"


label_sets = st.lists(
    st.dictionaries(st.text(min_size=1, max_size=6), st.text(max_size=8), max_size=6),
    min_size=1,
    max_size=20,
)


@settings(max_examples=200, deadline=None)
@given(label_sets)
def test_columnar_kernel_equals_reference(sets: list[dict[str, str]]) -> None:
    vocab = Vocabulary()
    ptr = np.zeros(len(sets) + 1, dtype=np.int64)
    keys: list[int] = []
    values: list[int] = []
    for i, labels in enumerate(sets):
        for name, value in reversed(list(labels.items())):
            keys.append(vocab.intern(name))
            values.append(vocab.intern(value))
        ptr[i + 1] = len(keys)
    key_ids = np.array(keys, dtype=np.int32)
    buf, offsets = vocab.byte_buffer()
    got = fingerprint_columns(
        ptr, key_ids, np.array(values, dtype=np.int32), vocab.name_rank(key_ids), buf, offsets
    )
    assert [int(x) for x in got] == [fingerprint(labels) for labels in sets]


@settings(max_examples=100, deadline=None)
@given(
    pool=st.lists(
        st.dictionaries(st.text(min_size=1, max_size=4), st.text(max_size=4), max_size=5),
        min_size=1,
        max_size=12,
    ),
    batches=st.lists(
        st.lists(st.tuples(st.integers(0, 11), st.booleans()), max_size=12), max_size=8
    ),
    limit=st.integers(1, 6),
)
def test_memo_gives_the_fingerprints_of_the_kernel_while_it_grows_and_starts_over(
    pool: list[dict[str, str]], batches: list[list[tuple[int, bool]]], limit: int
) -> None:
    """Batches drawing again and again on a few label sets, each in either order of its
    labels, through a memo small enough to grow and start over, give the reference
    fingerprints (the same set in another order is another entry, and the same print)."""
    vocab = Vocabulary()
    memo = FingerprintMemo(limit=limit)
    for picks in batches:
        sets = [pool[i % len(pool)] for i, _ in picks]
        ptr = np.zeros(len(sets) + 1, dtype=np.int64)
        keys: list[int] = []
        values: list[int] = []
        for i, (labels, (_, backwards)) in enumerate(zip(sets, picks, strict=True)):
            items = list(labels.items())
            for name, value in reversed(items) if backwards else items:
                keys.append(vocab.intern(name))
                values.append(vocab.intern(value))
            ptr[i + 1] = len(keys)
        key_ids = np.array(keys, dtype=np.int32)
        buf, offsets = vocab.byte_buffer()
        got = memo.fingerprints(
            ptr, key_ids, np.array(values, dtype=np.int32), vocab.name_rank(key_ids), buf, offsets
        )
        assert [int(x) for x in got] == [fingerprint(labels) for labels in sets]
        assert len(memo) <= limit
