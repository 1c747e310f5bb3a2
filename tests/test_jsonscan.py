"""The compiled JSON scan held to msgspec: the same table for every body it reads, and
no result (msgspec decides) for every body it does not."""

from __future__ import annotations

import json
from typing import Any
from unittest.mock import patch

import msgspec
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from correlator import decode
from correlator.decode import Decoded, decode_json
from correlator.jsonscan import _PAD, _plain_run_end, scan_alerts

EXAMPLES = settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
PLAIN_TIMES = (
    "2026-03-02T09:00:04.151Z",
    "2026-03-02T10:00:04+02:00",
    "0001-01-01T00:00:00Z",  # Alertmanager's zero time: unset
)
TIMES = (
    *PLAIN_TIMES,
    "2026-03-02T09:00:04.1234567Z",  # more digits than the compiled parser reads
    "not a time",
)
TEXT = st.text(st.characters(codec="utf-8"), max_size=12)
# The bytes a run stops at, and bytes one bit or one borrow away from them.
STOPS_AND_NEIGHBOURS = b'"\\\x00\x1f !#[]\xa2\xdc\xff'
PLAIN_NAME = st.text("abcdefghijklmnopqrstuvwxyz_ABC019", min_size=1, max_size=10)


def _alerts(
    names: st.SearchStrategy[str], times: tuple[str, ...] = TIMES
) -> st.SearchStrategy[list[dict[str, Any]]]:
    maybe_text = st.none() | TEXT
    alert = st.fixed_dictionaries(
        {"labels": st.dictionaries(names, TEXT, max_size=6)},
        optional={
            "annotations": st.none() | st.dictionaries(names, TEXT, max_size=3),
            "startsAt": st.none() | st.sampled_from(times),
            "endsAt": st.none() | st.sampled_from(times),
            "receivedAt": st.none() | st.sampled_from(times),
            "generatorURL": maybe_text,
            "status": st.none() | st.sampled_from(("firing", "resolved")) | TEXT,
        },
    )
    return st.lists(alert, max_size=8)


def _encodings(alerts: list[dict[str, Any]]) -> list[bytes]:
    """The body as msgspec writes it, as Python writes it escaping everything past
    ASCII, and spaced out."""
    return [
        msgspec.json.encode(alerts),
        json.dumps(alerts).encode(),
        json.dumps(alerts, ensure_ascii=False, indent="\t", separators=(" , ", " :\r\n")).encode(),
    ]


def _without_scan(payload: bytes) -> Decoded:
    with patch.object(decode, "_scanned_table", lambda _: None):
        return decode_json(payload)


def _same(a: Decoded, b: Decoded) -> None:
    assert a.table.equals(b.table)
    assert a.rows == b.rows
    assert a.rejects == b.rejects
    assert a.index.tolist() == b.index.tolist()


@EXAMPLES
@given(alerts=_alerts(PLAIN_NAME, PLAIN_TIMES))
def test_plain_bodies_are_scanned_into_the_table_msgspec_gives(alerts: list) -> None:
    for body in _encodings(alerts):
        assert scan_alerts(body) is not None
        _same(decode_json(body), _without_scan(body))


@EXAMPLES
@given(alerts=_alerts(TEXT))
def test_any_label_names_give_the_table_msgspec_gives(alerts: list) -> None:
    for body in _encodings(alerts):
        _same(decode_json(body), _without_scan(body))


@EXAMPLES
@given(alerts=_alerts(PLAIN_NAME), data=st.data())
def test_mutated_bodies_give_what_msgspec_gives(alerts: list, data: st.DataObject) -> None:
    body = bytearray(data.draw(st.sampled_from(_encodings(alerts))))
    for _ in range(data.draw(st.integers(1, 3))):
        at = data.draw(st.integers(0, len(body)))
        edit = data.draw(st.sampled_from(("flip", "insert", "delete")))
        byte = data.draw(st.sampled_from(b'"\\{}[],:nu0 \x00\x1f\xc3\xa9\xff'))
        if edit == "insert":
            body[at:at] = bytes([byte])
        elif at < len(body):
            body[at : at + 1] = b"" if edit == "delete" else bytes([byte])
    _same(decode_json(bytes(body)), _without_scan(bytes(body)))


@EXAMPLES
@given(
    body=st.binary(max_size=40)
    | st.lists(st.sampled_from(STOPS_AND_NEIGHBOURS), max_size=40).map(bytes)
)
def test_plain_runs_end_where_a_byte_by_byte_look_ends_them(body: bytes) -> None:
    """A word at a time, the run ends at the first quote, backslash or control
    character, or at the zero past the body, from every start."""
    data = np.zeros(len(body) + _PAD, dtype=np.uint8)
    data[: len(body)] = np.frombuffer(body, dtype=np.uint8)
    for start in range(len(body) + 1):
        stops = [k for k in range(start, len(body)) if body[k] in b'"\\' or body[k] < 32]
        assert _plain_run_end(data, start) == (stops[0] if stops else len(body))


@EXAMPLES
@given(body=st.binary(max_size=200))
def test_arbitrary_bytes_never_break_the_scan(body: bytes) -> None:
    scan_alerts(body)
    scan_alerts(b"[" + body)
    scan_alerts(b'[{"labels":{"a":"' + body)


def test_a_prometheus_body_with_escaped_characters_is_scanned() -> None:
    body = (
        b'[{"labels":{"alertname":"Up","job":"a \\"quoted\\" \\u00e9"},'
        b'"annotations":{"summary":"line\\nbreak \\ud83d\\ude00"},'
        b'"startsAt":"2026-03-02T09:00:04.151Z","endsAt":"0001-01-01T00:00:00Z",'
        b'"generatorURL":"http://p:9090/graph?g0.expr=up\\u0026g0.tab=1"}]'
    )
    assert scan_alerts(body) is not None
    row = decode_json(body).table.to_pylist()[0]
    assert row["labels"] == [("alertname", "Up"), ("job", 'a "quoted" \u00e9')]
    assert row["annotations"] == [("summary", "line\nbreak \U0001f600")]
    assert row["generatorURL"] == "http://p:9090/graph?g0.expr=up&g0.tab=1"
    assert row["endsAt"] is None
    _same(decode_json(body), _without_scan(body))


def test_bodies_outside_the_plain_form_are_left_to_msgspec() -> None:
    for body in (
        b'[{"labels":{"a":"1","a":"2"}}]',  # a repeated label: the last one wins
        b'[{"labels":{"a":"1"},"labels":{"b":"2"}}]',
        b'[{"labels":{"a":"1"},"fingerprint":"x"}]',  # an unknown field is ignored
        b'[{"labels":{"a":"\\ud83d"}}]',  # a lone surrogate
        b'[{"labels":{"a":1}}]',
        b'[{"annotations":{}}]',
        b'[{"labels":{"a":"1"}}] x',
        b'[{"labels":{"a":"1"},"startsAt":"2026-03-02T09:00:04\\u002e151Z"}]',  # an escaped time
        b'[{"labels":{"a":"1"},"endsAt":"2263-01-01T00:00:00Z"}]',  # past int64 nanoseconds
    ):
        assert scan_alerts(body) is None
        _same(decode_json(body), _without_scan(body))
