"""The label-set fingerprint matches prometheus/common, in Python and in numba."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from correlator.fingerprint import fingerprint, fingerprint_columns, format_fingerprint
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
