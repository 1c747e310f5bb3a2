"""Decoders accept every wire format, reject bad rows with a reason, and never raise."""

from __future__ import annotations

import json
from pathlib import Path
from unittest.mock import patch

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from correlator import decode
from correlator.decode import (
    conform,
    decode_arrow_stream,
    decode_json,
    decode_json_lines,
    read_recording,
)
from correlator.errors import SourceError
from correlator.rejects import REASONS

GOOD = {
    "labels": {"alertname": "HostDown", "instance": "h1:9100"},
    "startsAt": "2026-11-27T10:00:00Z",
}


def _counted(decoded) -> None:
    assert decoded.rows == decoded.table.num_rows + len(decoded.rejects)
    assert len(decoded.index) == decoded.table.num_rows
    assert all(r.reason in REASONS for r in decoded.rejects)


def test_one_alert_and_an_api_v2_array() -> None:
    one = decode_json(json.dumps(GOOD).encode())
    assert one.rows == 1 and one.table.num_rows == 1
    many = decode_json(json.dumps([GOOD, GOOD, GOOD]).encode())
    assert many.rows == 3 and many.table.num_rows == 3
    assert many.table.column("labels")[0].as_py() == [
        ("alertname", "HostDown"),
        ("instance", "h1:9100"),
    ]


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        ({"annotations": {}}, "no_labels"),
        ({"labels": None}, "no_labels"),
        ({"labels": {"a": 1}}, "label_not_string"),
        ({"labels": {"a": "b"}, "startsAt": "yesterday"}, "bad_timestamp"),
        ({"labels": {"a": "b"}, "generatorURL": 5}, "bad_field"),
        (7, "not_an_object"),
        ("text", "not_an_object"),
    ],
)
def test_bad_rows_are_rejected_with_a_reason_and_good_rows_go_through(row, reason) -> None:
    decoded = decode_json(json.dumps([GOOD, row, GOOD]).encode())
    _counted(decoded)
    assert decoded.table.num_rows == 2
    assert [(r.row, r.reason) for r in decoded.rejects] == [(1, reason)]
    assert list(decoded.index) == [0, 2]


def test_malformed_and_invalid_utf8_frames() -> None:
    assert decode_json(b"[{").rejects[0].reason == "invalid_json"
    assert decode_json(b'{"labels": {"a": "\xff"}}').rejects[0].reason == "invalid_utf8"


def test_oversized_rows_are_rejected() -> None:
    big = dict(GOOD, annotations={"description": "x" * 5000})
    decoded = decode_json(json.dumps([GOOD, big]).encode(), max_row_bytes=1000)
    assert [(r.row, r.reason) for r in decoded.rejects] == [(1, "too_large")]


def test_a_body_over_the_row_limit_is_scanned_whole_when_no_row_is_over_it() -> None:
    body = json.dumps([GOOD] * 50).encode()
    limit = len(body) // 10
    with patch.object(decode, "_MANY", None):  # no msgspec decode of the whole body
        scanned = decode_json(body, max_row_bytes=limit)
    one = decode_json(json.dumps(GOOD).encode()).table
    assert scanned.table.equals(pa.concat_tables([one] * 50)) and not scanned.rejects
    big = dict(GOOD, annotations={"description": "x" * limit})
    mixed = decode_json(json.dumps([GOOD, big, GOOD]).encode(), max_row_bytes=limit)
    assert [(r.row, r.reason) for r in mixed.rejects] == [(1, "too_large")]
    assert list(mixed.index) == [0, 2]


def test_zero_time_means_not_set() -> None:
    decoded = decode_json(json.dumps(dict(GOOD, endsAt="0001-01-01T00:00:00Z")).encode())
    assert decoded.table.column("endsAt")[0].as_py() is None


def test_json_lines_count_lines_and_skip_blank_ones() -> None:
    data = (json.dumps(GOOD) + "\n\n" + "{bad\n" + json.dumps(GOOD) + "\n").encode()
    decoded = decode_json_lines(data)
    _counted(decoded)
    assert decoded.rows == 3
    assert [r.reason for r in decoded.rejects] == ["invalid_json"]


def test_arrow_stream_and_parquet_round_trip(tmp_path: Path) -> None:
    table = decode_json(json.dumps([GOOD, GOOD]).encode()).table
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    assert decode_arrow_stream(sink.getvalue().to_pybytes()).table.equals(table)
    pq.write_table(table, tmp_path / "r.parquet")
    assert read_recording(tmp_path / "r.parquet").table.to_pylist() == table.to_pylist()
    assert read_recording(tmp_path).table.to_pylist() == table.to_pylist()


def test_arrow_without_labels_or_with_garbage_is_rejected() -> None:
    assert decode_arrow_stream(b"not arrow").rejects[0].reason == "bad_arrow"
    refused = conform(pa.table({"x": [1, 2]}))
    assert refused.rows == 2 and [r.reason for r in refused.rejects] == ["bad_arrow"] * 2


def test_unknown_recording_format_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "storm.txt").write_text("")
    with pytest.raises(SourceError, match="unknown recording format"):
        read_recording(tmp_path / "storm.txt")


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_raise(data: bytes) -> None:
    _counted(decode_json(data))
    _counted(decode_json_lines(data))
    _counted(decode_arrow_stream(data))


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(["labels", "startsAt", "endsAt", "status", "a", "b"]),
            children,
            max_size=4,
        )
    ),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(st.lists(json_values, max_size=6))
def test_arbitrary_json_arrays_count_every_row(rows: list) -> None:
    decoded = decode_json(json.dumps(rows).encode())
    _counted(decoded)
    assert decoded.rows == len(rows)
