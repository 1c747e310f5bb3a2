"""Times parsed by Arrow from text give what msgspec's datetimes give, or step aside."""

from __future__ import annotations

import json

import msgspec
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from correlator.decode import (
    _MANY,
    STRING_LABELS,
    _table_with_text_times,
    decode_json,
    table_from_alerts,
)

digits = st.integers(0, 9).map(str)
texts = st.builds(
    lambda year, month, day, hour, minute, second, fraction, zone, sep: (
        f"{year:04d}-{month:02d}-{day:02d}{sep}{hour:02d}:{minute:02d}:{second:02d}{fraction}{zone}"
    ),
    st.sampled_from([1, 1677, 1678, 1970, 2026, 2262, 2263, 9999]),
    st.integers(0, 13),
    st.integers(0, 32),
    st.integers(0, 25),
    st.integers(0, 60),
    st.integers(0, 61),
    st.one_of(
        st.just(""), st.lists(digits, min_size=0, max_size=10).map(lambda d: "." + "".join(d))
    ),
    st.sampled_from(["Z", "z", "", "+01:00", "-23:59", "+24:00", "+00:60", "+0100"]),
    st.sampled_from(["T", "t", " "]),
)

valid_texts = st.builds(
    lambda moment, fraction, zone: (
        moment.strftime("%Y-%m-%dT%H:%M:%S").rjust(19, "0") + fraction + zone
    ),
    st.datetimes(),
    st.one_of(
        st.just(""), st.lists(digits, min_size=1, max_size=7).map(lambda d: "." + "".join(d))
    ),
    st.one_of(
        st.just("Z"),
        st.builds(
            lambda sign, h, m: f"{sign}{h:02d}:{m:02d}",
            st.sampled_from("+-"),
            st.integers(0, 23),
            st.integers(0, 59),
        ),
    ),
)


@settings(max_examples=500, deadline=None)
@given(st.lists(st.one_of(st.none(), texts, valid_texts, valid_texts), min_size=1, max_size=4))
def test_text_times_equal_msgspec_datetimes_or_are_refused(starts: list[str | None]) -> None:
    alerts = [{"labels": {"a": "b"}} | ({"startsAt": s} if s else {}) for s in starts]
    payload = json.dumps(alerts).encode()
    try:
        fast = _table_with_text_times(payload, STRING_LABELS)
    except pa.ArrowInvalid:
        fast = None
    try:
        exact = table_from_alerts(_MANY.decode(payload))
    except (msgspec.MsgspecError, pa.ArrowInvalid):
        assert fast is None
        return
    if fast is not None:
        assert fast.equals(exact)


def test_a_clean_array_of_prometheus_times_takes_the_text_path() -> None:
    payload = json.dumps(
        [
            {"labels": {"a": "b"}, "startsAt": "2026-11-27T10:00:00.123Z"},
            {"labels": {"a": "c"}, "startsAt": "2026-11-27T10:00:00+01:00", "endsAt": None},
        ]
    ).encode()
    fast = _table_with_text_times(payload, STRING_LABELS)
    assert fast is not None
    assert fast.equals(decode_json(payload).table)
    assert fast.equals(table_from_alerts(_MANY.decode(payload)))


@settings(max_examples=300, deadline=None)
@given(valid_texts)
def test_plain_times_take_the_text_path_and_land_where_msgspec_puts_them(text: str) -> None:
    payload = json.dumps([{"labels": {"a": "b"}, "startsAt": text}]).encode()
    try:
        exact = table_from_alerts(_MANY.decode(payload))
    except (msgspec.MsgspecError, pa.ArrowInvalid, OverflowError):
        return
    fast = _table_with_text_times(payload, STRING_LABELS)
    fraction = text[19:].split("Z")[0].split("+")[0].split("-")[0]
    if len(fraction) <= 7:  # a dot and up to six digits
        assert fast is not None
    if fast is not None:
        assert fast.equals(exact)
