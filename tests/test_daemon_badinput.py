"""Bad input is data, not a crash (issue 9): 100,000 hostile frames, then a normal storm.

A running daemon (small limits: 64 KiB messages, 64 labels, 256 KiB
dead-letter files) gets 100,000 seeded random and mutated ZeroMQ messages and
a few hundred HTTP bodies: random bytes and JSON-ish noise, truncated and
bit-flipped alerts, invalid UTF-8, unknown and malformed format frames,
broken Arrow streams, oversized messages, alerts with thousands of labels,
single alerts with one bad field each, and arrays mixing good and bad alerts.
Then it must still be up and ready, have counted every rejected row under
its reason, have written them to rotated dead-letter files, have logged
only a rate-limited few warnings, and correlate the recorded switch storm
exactly as if nothing had happened.

The oracle for the counts is the same decoding and normalizing code, run
here on bursts of 1,000 messages while the daemon's bursts are whatever
arrived together: agreeing with it row for row and reason for reason shows
that a bad message never takes good neighbours down with it.

Alerts that survive a mutation are real alerts, and on source event time
one dated after the storm would legitimately move the clock past it. So
every good alert sent here is dated the day before the storm, and a message
that may still hold an alert is kept only if that alert's ``receivedAt`` is
before the storm (and after 1678: earlier reads as unset, and the daemon
then stamps the arrival time); otherwise another message is drawn.
"""

from __future__ import annotations

import collections
import json
import logging
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import numpy as np
import pyarrow as pa
import pytest

from correlator.batch import Normalizer
from correlator.daemon.config import DeadLetterConfig, ZmqConfig
from correlator.daemon.frames import FORMATS, decode_frames, frame_from_parts
from correlator.decode import Decoded, decode_arrow_stream, decode_json
from correlator.incident import IncidentEvent, encode_event
from correlator.rejects import REASONS, Reject
from correlator.topology import load_topology
from correlator.vocab import Vocabulary
from daemon_helpers import (
    CMDB,
    daemon_config,
    decode_events,
    expected_stream,
    final_states,
    fixture_lines,
    http,
    metric,
    push_socket,
    read_sink,
    running_daemon,
    scrape,
    send_lines,
    truth,
    wait_rows,
)

FRAMES = 100_000
HTTP_BODIES = 300
MAX_BYTES = 64 << 10
MAX_LABELS = 64
DEAD_LETTER_BYTES = 256 << 10
KEEP_FILES = 3
SEED = 20260302
STORM = "switch-failure"
_STORM_DAY = datetime(2026, 3, 2, tzinfo=UTC)
_STORM_NS = int(np.datetime64("2026-03-02T00:00:00", "ns").astype(np.int64))
_EARLIEST = datetime(1678, 1, 1, tzinfo=UTC)
_PAST_SECONDS = int(np.datetime64("2026-03-01T12:00:00", "s").astype(np.int64))
_MAP = pa.map_(pa.string(), pa.string())
Parts = list[bytes]


class Fuzzer:
    """Seeded hostile messages; every good alert in them is dated the day before the storm."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        lines = fixture_lines("router-failure")[:400]
        self.past = [line.replace(b"2026-03-02", b"2026-03-01") for line in lines]
        # Weights: the kinds that build a table (anything with a good row) cost
        # a quarter to one millisecond each to decode, the others microseconds.
        self.kinds: list[tuple[Callable[[], Parts], float]] = [
            (self.random_bytes, 24),
            (self.random_with_format, 10),
            (self.json_noise, 12),
            (self.bogus_format, 6),
            (self.too_many_frames, 2),
            (self.truncated, 18),
            (self.bit_flipped, 6),
            (self.invalid_utf8, 6),
            (self.bad_field, 6),
            (self.mixed_array, 2.5),
            (self.bad_arrow, 1),
            (self.empty, 0.5),
            (self.oversized, 0.3),
            (self.thousands_of_labels, 0.2),
        ]
        self._choices = [kind for kind, _ in self.kinds]
        self._weights = [weight for _, weight in self.kinds]

    def frame(self) -> Parts:
        """One message, of a kind drawn by weight."""
        return self.rng.choices(self._choices, self._weights)[0]()

    def alert(self) -> bytes:
        return self.rng.choice(self.past)

    def random_bytes(self) -> Parts:
        return [self.rng.randbytes(self.rng.randint(1, 300))]

    def random_with_format(self) -> Parts:
        fmt = self.rng.choice(FORMATS).encode()
        return [fmt, self.rng.randbytes(self.rng.randint(0, 300))]

    def json_noise(self) -> Parts:
        alphabet = '{}[]":,0123456789 truefalsnabcxyz\\-.eE'
        text = "".join(self.rng.choices(alphabet, k=self.rng.randint(1, 120)))
        return [text.encode()]

    def bogus_format(self) -> Parts:
        name = self.rng.choice([b"xml", b"protobuf", b"JSON-LINES", b"", self.rng.randbytes(6)])
        return [name, self.alert()]

    def too_many_frames(self) -> Parts:
        return [b"json", self.alert(), *[self.rng.randbytes(8)] * self.rng.randint(1, 3)]

    def truncated(self) -> Parts:
        line = self.alert()
        return [b"json", line[: self.rng.randrange(len(line))]]

    def bit_flipped(self) -> Parts:
        data = bytearray(self.alert())
        for _ in range(self.rng.randint(1, 4)):
            data[self.rng.randrange(len(data))] ^= 1 << self.rng.randrange(8)
        return [self.rng.choice([b"json", b"json-array"]), bytes(data)]

    def invalid_utf8(self) -> Parts:
        line = self.alert()
        cut = line.index(b'"alertname":"') + len(b'"alertname":"')
        bad = self.rng.choice([b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80"])
        return [b"json", line[:cut] + bad + line[cut:]]

    def bad_row(self) -> bytes:
        """One alert, well-formed JSON, with one thing wrong."""
        alert = json.loads(self.alert())
        choice = self.rng.randrange(8)
        if choice == 0:
            return self.rng.choice([b"42", b'"alert"', b"null", b"[1, 2]"])
        if choice == 1:
            del alert["labels"]
        elif choice == 2:
            alert["labels"]["instance"] = self.rng.choice([7, None, True, {"a": "b"}])
        elif choice == 3:
            alert["labels"][self.rng.choice(["0day", "a-b", "", "ü"])] = "x"
        elif choice == 4:
            alert["startsAt"] = self.rng.choice(["yesterday", "2026-13-01T00:00:00Z", 12])
        elif choice == 5:
            alert["status"] = self.rng.choice(["maybe", "FIRING", ""])
        elif choice == 6:
            alert["generatorURL"] = self.rng.choice([5, [], {"u": 1}])
        else:
            alert["labels"] = [["alertname", "x"]]
        return json.dumps(alert).encode()

    def bad_field(self) -> Parts:
        return [self.rng.choice([b"json", b"json-array"]), self.bad_row()]

    def mixed_array(self) -> Parts:
        rows = [
            self.alert() if self.rng.random() < 0.5 else self.bad_row()
            for _ in range(self.rng.randint(2, 12))
        ]
        body = b"[" + b",".join(rows) + b"]"
        return [body] if self.rng.random() < 0.3 else [b"json-array", body]

    def bad_arrow(self) -> Parts:
        """Arrow streams: no labels, labels of the wrong type, torn, or far-future times."""
        choice = self.rng.randrange(4)
        labels = pa.array([[("alertname", "Fuzz"), ("ci", "fuzz-1")]], _MAP)
        if choice == 0:
            table = pa.table({"alertname": ["x"] * 3})
        elif choice == 1:
            table = pa.table({"labels": [1, 2, 3]})
        elif choice == 2:
            table = pa.table({"labels": labels})
        else:  # in seconds and microseconds: beyond what nanoseconds hold
            table = pa.table(
                {
                    "labels": labels,
                    "startsAt": pa.array([10**17], pa.timestamp("us", tz="UTC")),
                    "receivedAt": pa.array([_PAST_SECONDS], pa.timestamp("s", tz="UTC")),
                    "endsAt": pa.array([10**12], pa.timestamp("s")),
                }
            )
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
        stream = sink.getvalue().to_pybytes()
        if choice == 2:
            stream = stream[: self.rng.randrange(8, len(stream) - 8)]
        return [b"arrow", stream]

    def empty(self) -> Parts:
        return self.rng.choice([[b""], [b"json", b""], [b"json-array", b"  "], [b"arrow", b""]])

    def oversized(self) -> Parts:
        size = MAX_BYTES + self.rng.randint(1, 8 << 10)
        padding = b" " * (size - 2)
        return self.rng.choice([[b"[" + padding + b"]"], [b"json", padding + b"{}"]])

    def thousands_of_labels(self) -> Parts:
        alert = json.loads(self.alert())
        count = self.rng.randint(1000, 4000)
        alert["labels"].update({f"l{k}": "v" for k in range(count)})
        return [b"json", json.dumps(alert, separators=(",", ":")).encode()]


class _Probe(msgspec.Struct):
    """An Alertmanager alert, to tell whether a mutant still decodes as one."""

    labels: dict[str, str]
    annotations: dict[str, str] | None = None
    startsAt: datetime | None = None
    endsAt: datetime | None = None
    generatorURL: str | None = None
    receivedAt: datetime | None = None
    status: str | None = None


_PROBE = msgspec.json.Decoder(_Probe)
_RAW_ARRAY = msgspec.json.Decoder(list[msgspec.Raw])


def harmless(parts: Parts) -> bool:
    """Whether every alert the message may hold has a ``receivedAt`` before the storm.

    What does not decode as an alert is harmless (it is rejected). An alert
    without a usable ``receivedAt`` is not: the daemon stamps it on arrival.
    """
    frame = frame_from_parts(parts)
    if isinstance(frame, Reject) or len(frame.payload) > MAX_BYTES:
        return True
    if frame.format == "arrow":
        received = decode_arrow_stream(frame.payload).table.column("receivedAt")
        stamps = received.cast(pa.int64()).to_numpy(zero_copy_only=False)
        return received.null_count == 0 and bool((stamps < _STORM_NS).all())
    try:
        items = _RAW_ARRAY.decode(frame.payload) if frame.payload.lstrip()[:1] == b"[" else None
    except (msgspec.MsgspecError, UnicodeDecodeError):
        return True
    for raw in items if items is not None else [frame.payload]:
        try:
            alert = _PROBE.decode(raw)
        except (msgspec.MsgspecError, UnicodeDecodeError):
            continue
        when = alert.receivedAt  # before 1678 it is read as unset, like the zero time
        if when is None or not _EARLIEST <= when.replace(tzinfo=when.tzinfo or UTC) < _STORM_DAY:
            return False
    return True


class Oracle:
    """What the daemon should make of the messages: rows in, rejects by reason.

    The same decoding and normalizing code, run here on other bursts than
    the daemon's: the verdict on each row must not depend on its neighbours.
    """

    def __init__(self) -> None:
        self.rows = 0
        self.rejected: collections.Counter[str] = collections.Counter()
        self._tables: list[pa.Table] = []

    def count(self, decoded: Decoded) -> None:
        self.rows += decoded.rows
        self.rejected.update(r.reason for r in decoded.rejects)
        if decoded.table.num_rows:
            self._tables.append(decoded.table)

    def finish(self) -> None:
        """Normalize the decoded rows and count what the normalizer rejects."""
        table = pa.concat_tables(self._tables).combine_chunks()
        normalizer = Normalizer(Vocabulary(), load_topology(CMDB), max_labels=MAX_LABELS)
        _, rejects = normalizer.normalize(table, np.arange(table.num_rows, dtype=np.int64))
        self.rejected.update(r.reason for r in rejects)
        self._tables = []


def _frames(fuzzer: Fuzzer, oracle: Oracle) -> list[Parts]:
    frames: list[Parts] = []
    while len(frames) < FRAMES:
        parts = fuzzer.frame()
        if harmless(parts):
            frames.append(parts)
    for start in range(0, FRAMES, 1000):
        burst = [frame_from_parts(parts) for parts in frames[start : start + 1000]]
        oracle.count(decode_frames(burst, max_bytes=MAX_BYTES))
    return frames


def _bodies(fuzzer: Fuzzer, oracle: Oracle) -> list[tuple[bytes, int]]:
    """HTTP bodies and the status each should get."""
    bodies = []
    makers = (fuzzer.mixed_array, fuzzer.random_bytes, fuzzer.invalid_utf8, fuzzer.oversized)
    while len(bodies) < HTTP_BODIES:
        body = fuzzer.rng.choice(makers)()[-1]
        if len(body) > MAX_BYTES:
            bodies.append((body, 413))
        elif harmless([body]):
            decoded = decode_json(body, max_row_bytes=MAX_BYTES)
            oracle.count(decoded)
            status = 400 if decoded.table.num_rows == 0 and decoded.rejects else 200
            bodies.append((body, status))
    return bodies


@pytest.fixture(scope="module")
def hostile() -> tuple[list[Parts], list[tuple[bytes, int]], Oracle]:
    fuzzer, oracle = Fuzzer(SEED), Oracle()
    frames = _frames(fuzzer, oracle)
    bodies = _bodies(fuzzer, oracle)
    oracle.finish()
    return frames, bodies, oracle


def test_hostile_input_is_counted_dead_lettered_and_survived(
    hostile: tuple[list[Parts], list[tuple[bytes, int]], Oracle],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """100,000 bad ZeroMQ messages and 300 HTTP bodies, then the switch storm (see module doc).

    Every HTTP body gets the documented status (200 with a good row, 400
    without, 413 over the limit); every reason the oracle expects is counted
    exactly; every reason that live input can produce was sent.
    """
    frames, bodies, oracle = hostile
    config = daemon_config(
        tmp_path,
        zmq=ZmqConfig(pull=("tcp://127.0.0.1:0",), max_message_bytes=MAX_BYTES),
        max_labels=MAX_LABELS,
        dead_letter=DeadLetterConfig(max_file_bytes=DEAD_LETTER_BYTES, keep_files=KEEP_FILES),
    )
    storm = fixture_lines(STORM)
    caplog.set_level(logging.WARNING, logger="correlator.daemon")
    started = time.monotonic()
    with running_daemon(config) as daemon:
        address = daemon.http_address
        assert address is not None
        with push_socket(daemon.endpoints[0]) as sock:
            for parts in frames:
                sock.send_multipart(parts)
        for body, status in bodies:
            assert http(address, "POST", "/api/v2/alerts", body)[0] == status
        wait_rows(daemon, oracle.rows, timeout=90)
        assert daemon.rows_processed == oracle.rows

        assert http(address, "GET", "/-/healthy") == (200, b"OK\n")
        assert http(address, "GET", "/-/ready") == (200, b"OK\n")
        text = scrape(address)
        counted = {
            reason: metric(text, "correlator_events_rejected_total", reason=reason)
            for reason in REASONS
        }
        assert {k: v for k, v in counted.items() if v} == dict(oracle.rejected)
        sent_kinds = set(REASONS) - {"duplicate_label", "no_timestamp"}
        assert sent_kinds <= set(oracle.rejected), sent_kinds - set(oracle.rejected)

        send_lines(daemon.endpoints[0], storm)
        wait_rows(daemon, oracle.rows + len(storm))
        assert http(address, "GET", "/-/ready")[0] == 200
    elapsed = time.monotonic() - started

    # At most one warning per reason per 10 s, however many rows were rejected.
    warnings = [r for r in caplog.records if r.getMessage().startswith("rejected ")]
    assert 0 < len(warnings) <= len(REASONS) * (elapsed // 10 + 2), len(warnings)
    _check_dead_letters(tmp_path)
    _check_storm(read_sink(tmp_path / "incidents.jsonl"))


def _check_dead_letters(folder: Path) -> None:
    """Rotated files of JSON lines, each a known reason with the raw input."""
    current = folder / "dead-letter.jsonl"
    rotated = [folder / f"dead-letter.jsonl.{k}" for k in range(1, KEEP_FILES + 1)]
    assert all(path.exists() for path in rotated), "the dead letters should have rotated"
    assert not (folder / f"dead-letter.jsonl.{KEEP_FILES + 1}").exists()
    decoder = msgspec.json.Decoder(dict[str, object])
    reasons: set[object] = set()
    for path in [current, *rotated]:
        if path is not current:
            assert path.stat().st_size >= DEAD_LETTER_BYTES
        elif not path.exists():  # just rotated away; the next reject starts it again
            continue
        for line in path.read_bytes().splitlines():
            record = decoder.decode(line)
            assert record["reason"] in REASONS
            assert record["raw_encoding"] in ("utf-8", "base64")
            reasons.add(record["reason"])
    assert len(reasons) >= 3


def _check_storm(events: list[IncidentEvent]) -> None:
    """The switch storm after the fuzz: one incident rooted at the switch, as without the fuzz.

    The fuzz's alerts come from the same network a day earlier, so the same
    fingerprints appear in its incidents too; only incidents first seen on
    the storm's day count. Every event of the storm's incidents is the same
    as a daemon that never saw the fuzz emits, byte for byte.
    """
    (cause,) = truth(STORM)["causes"]
    latest = {
        incident: event
        for incident, event in final_states(events).items()
        if event.first_seen >= "2026-03-02" and event.reason != "merged_into"
    }
    holding = {
        incident
        for incident, event in latest.items()
        if set(cause["fingerprints"]) & set(event.fingerprints)
    }
    assert len(holding) == 1, holding
    (incident,) = holding
    assert latest[incident].root_cause.ci == cause["root_ci"]
    assert set(cause["fingerprints"]) <= set(latest[incident].fingerprints)
    expected = expected_stream(STORM)
    storm_ids = {event.id for event in decode_events(expected)}
    seen = b"".join(encode_event(e) + b"\n" for e in events if e.id in storm_ids)
    assert seen == expected


def test_fuzzer_is_seeded() -> None:
    """The same seed gives the same frames (a failure can be replayed)."""
    first, second = Fuzzer(7), Fuzzer(7)
    assert [first.frame() for _ in range(200)] == [second.frame() for _ in range(200)]
