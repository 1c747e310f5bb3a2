"""RFC 3339 times read from bytes where they lie, in one compiled loop per column.

Turning a ``datetime`` into an Arrow time costs more than parsing the text,
so both JSON decoders parse the texts Prometheus and Alertmanager write
themselves: ``correlator.jsonscan`` straight out of a body, ``correlator.decode``
out of a string column. What this loop does not read is left to msgspec.
"""

from __future__ import annotations

import numba
import numpy as np
import pyarrow as pa

from correlator.schema import TIMESTAMP

NS_MIN_US = -(2**63 - 1) // 1000  # the microseconds int64 nanoseconds hold
NS_MAX_US = (2**63 - 1) // 1000
YEAR_1_US = -62135596800 * 10**6  # 0001-01-01T00:00:00Z, Python's first datetime
YEAR_10000_US = 253402300800 * 10**6  # just past its last


@numba.njit(nogil=True, cache=True)
def _digits(data, start, count):
    """The number written in ``count`` ASCII digits from ``start``, or -1."""
    value = 0
    for k in range(start, start + count):
        d = data[k] - 48
        if d < 0 or d > 9:
            return -1
        value = value * 10 + d
    return value


@numba.njit(nogil=True, cache=True)
def _days_from_civil(year, month, day):
    """Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm)."""
    y = year - 1 if month <= 2 else year
    era = (y if y >= 0 else y - 399) // 400
    yoe = y - era * 400
    mp = month - 3 if month > 2 else month + 9
    doy = (153 * mp + 2) // 5 + day - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


@numba.njit(nogil=True, cache=True)
def parse_rfc3339(starts, ends, data, present, out):
    """Parse ``YYYY-MM-DDTHH:MM:SS[.f{1,6}](Z|+HH:MM|-HH:MM)`` texts into UTC microseconds.

    The plain form Prometheus and Alertmanager write, on which msgspec's
    parser gives the same instant: a valid calendar date and time, an
    offset below 24 h, six fractional digits at most (msgspec rounds any
    beyond, so those are left to it), the instant within Python's years
    1 to 9999. Text ``i`` is ``data[starts[i]:ends[i]]``, read where ``present[i]``;
    False at the first text that is not so.
    """
    month_days = np.array([31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31])
    for i in range(out.shape[0]):
        if not present[i]:
            continue
        s = starts[i]
        n = ends[i] - s
        if n < 20:
            return False
        if data[s + 4] != 45 or data[s + 7] != 45 or data[s + 10] != 84:  # - - T
            return False
        if data[s + 13] != 58 or data[s + 16] != 58:  # : :
            return False
        year = _digits(data, s, 4)
        month = _digits(data, s + 5, 2)
        day = _digits(data, s + 8, 2)
        hour = _digits(data, s + 11, 2)
        minute = _digits(data, s + 14, 2)
        second = _digits(data, s + 17, 2)
        if year < 1 or month < 1 or month > 12 or day < 1 or hour < 0 or hour > 23:
            return False
        if minute < 0 or minute > 59 or second < 0 or second > 59:
            return False
        leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
        if day > month_days[month - 1] + (1 if month == 2 and leap else 0):
            return False
        p = 19
        fraction = 0
        if data[s + p] == 46:  # .
            p += 1
            first = p
            while p < n and 48 <= data[s + p] <= 57:
                p += 1
            count = p - first
            if count < 1 or count > 6:
                return False
            fraction = _digits(data, s + first, count) * 10 ** (6 - count)
        offset = 0
        if p + 1 == n and data[s + p] == 90:  # Z
            offset = 0
        elif p + 6 == n and (data[s + p] == 43 or data[s + p] == 45) and data[s + p + 3] == 58:
            offset_hours = _digits(data, s + p + 1, 2)
            offset_minutes = _digits(data, s + p + 4, 2)
            if offset_hours < 0 or offset_hours > 23 or offset_minutes < 0 or offset_minutes > 59:
                return False
            offset = offset_hours * 60 + offset_minutes
            if data[s + p] == 45:
                offset = -offset
        else:
            return False
        seconds = _days_from_civil(year, month, day) * 86400 + hour * 3600 + minute * 60
        us = (seconds + second - offset * 60) * 1_000_000 + fraction
        if us < YEAR_1_US or us >= YEAR_10000_US:
            return False
        out[i] = us
    return True


@numba.njit(nogil=True, cache=True, _nrt=False)
def to_ns(us, present, ns, bits):
    """Parsed microseconds into nanoseconds ``ns`` and an Arrow validity bitmap ``bits``
    (zeroed by the caller): null where not ``present`` and where before 1678
    (Alertmanager's zero time, year 1, means unset). Returns how many are valid, or -1
    when a time is past 2262, which int64 nanoseconds do not hold (msgspec then says so)."""
    valid = 0
    for i in range(us.shape[0]):
        ns[i] = 0
        if not present[i]:
            continue
        if us[i] > NS_MAX_US:
            return -1
        if us[i] > NS_MIN_US:
            ns[i] = us[i] * 1000
            bits[i >> 3] |= np.uint8(1 << (i & 7))
            valid += 1
    return valid


def timestamp_column(ns: np.ndarray, bits: np.ndarray, valid: int) -> pa.Array:
    """The column ``to_ns`` filled (``valid`` of its times not null)."""
    n = len(ns)
    if valid == 0:
        return pa.nulls(n, TIMESTAMP)
    validity = None if valid == n else pa.py_buffer(bits)
    return pa.Array.from_buffers(TIMESTAMP, n, [validity, pa.py_buffer(ns)], n - valid)


def timestamps_of_us(us: np.ndarray, present: np.ndarray) -> pa.Array | None:
    """Parsed microseconds as a nanosecond timestamp column (see ``to_ns``); None when
    a time is past 2262."""
    ns = np.empty(len(us), dtype=np.int64)
    bits = np.zeros((len(us) + 7) // 8, dtype=np.uint8)
    valid = to_ns(us, present, ns, bits)
    return None if valid < 0 else timestamp_column(ns, bits, valid)
