"""Decoding a run of messages together gives what decoding each message alone gives."""

from __future__ import annotations

import json

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from correlator.daemon.frames import Frame, decode_frames
from correlator.decode import Decoded, empty_table
from correlator.rejects import Reject

MAX_BYTES = 4096
GOOD = {
    "labels": {"alertname": "HostDown", "instance": "h1:9100"},
    "startsAt": "2026-11-27T10:00:00Z",
}

alerts = st.fixed_dictionaries(
    {
        "labels": st.dictionaries(
            st.sampled_from(["alertname", "instance", "a"]), st.text(max_size=4)
        )
    },
    optional={
        "startsAt": st.sampled_from(["2026-11-27T10:00:00Z", "0001-01-01T00:00:00Z", "soon", 7]),
        "endsAt": st.sampled_from(["2026-11-27T10:05:00.5+01:00", "9999-01-01T00:00:00Z"]),
        "status": st.sampled_from(["firing", "resolved", "odd"]),
    },
)


def _mutate(data: bytes, cut: int) -> bytes:
    return data[: cut % (len(data) + 1)]


good_payloads = alerts.map(lambda a: json.dumps(a).encode())
payloads = st.one_of(
    good_payloads,
    st.builds(_mutate, good_payloads, st.integers(0, 200)),
    st.lists(alerts, max_size=3).map(lambda a: json.dumps(a).encode()),
    st.sampled_from([b"", b"  ", b"{", b"}{", b"[", b"]", b",", b"\xff\xfe", b"null", b"{}"]),
    st.binary(max_size=40),
    st.just(b" " + json.dumps(GOOD).encode() + b"\n"),
    st.just(json.dumps(GOOD).encode() * 2),
    st.just(b"x" * (MAX_BYTES + 1)),
)
frames = st.builds(Frame, st.sampled_from([None, "json", "json-array"]), payloads)


def _alone(messages: list[Frame | Reject]) -> tuple[pa.Table, list[Reject], int]:
    """Every message decoded on its own, rows renumbered across them."""
    tables, rejects, offset = [empty_table()], [], 0
    for message in messages:
        part = decode_frames([message], max_bytes=MAX_BYTES)
        tables.append(part.table)
        rejects.extend(Reject(r.row + offset, r.reason, r.detail, r.raw) for r in part.rejects)
        offset += part.rows
    return pa.concat_tables(tables), rejects, offset


def _same(together: Decoded, alone: tuple[pa.Table, list[Reject], int]) -> None:
    table, rejects, rows = alone
    assert together.rows == rows
    assert together.table.equals(table)
    assert [(r.row, r.reason, r.raw) for r in together.rejects] == [
        (r.row, r.reason, r.raw) for r in rejects
    ]
    accepted = sorted(set(range(rows)) - {r.row for r in rejects})
    assert together.index.tolist() == accepted


@settings(max_examples=400, deadline=None)
@given(st.lists(frames, max_size=12))
def test_joined_messages_give_the_same_rows_and_rejects_as_one_by_one(
    messages: list[Frame],
) -> None:
    _same(decode_frames(messages, max_bytes=MAX_BYTES), _alone(messages))


def test_a_storm_of_single_alerts_is_decoded_in_one_call_with_bad_ones_in_between() -> None:
    good = json.dumps(GOOD).encode()
    messages: list[Frame | Reject] = [Frame("json", good) for _ in range(50)]
    messages[10] = Frame("json", good[:-1])
    messages[20] = Frame("json", b'{"labels": {"a": 1}}')
    messages[30] = Reject(0, "unknown_format", "format frame 'xml'")
    together = decode_frames(messages, max_bytes=MAX_BYTES)
    _same(together, _alone(messages))
    assert [(r.row, r.reason) for r in together.rejects] == [
        (10, "invalid_json"),
        (20, "label_not_string"),
        (30, "unknown_format"),
    ]
