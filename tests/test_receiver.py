"""ZeroMQ intake in a decode process gives what decoding on a thread gives; posted
HTTP bodies go the same way and each gets its own verdict."""

from __future__ import annotations

import json
import stat
import threading
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import zmq
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import label_pairs
from correlator.daemon.config import ZmqConfig
from correlator.daemon.frames import Frame, decode_frames, frame_from_parts
from correlator.daemon.receiver import (
    HEADER,
    HTTP_SOURCE,
    POSTERS,
    Receiver,
    Verdict,
    decode_requests,
    decode_result,
    encode_result,
)
from correlator.daemon.wire import LabelTranslator, WireDecoded
from correlator.decode import STRING_LABELS, Decoded, decode_json
from correlator.errors import SourceError
from correlator.rejects import Reject
from correlator.vocab import Vocabulary

GOOD = json.dumps(
    {"labels": {"alertname": "HostDown", "instance": "h1:9100"}, "startsAt": "2026-11-27T10:00:00Z"}
).encode()
MESSAGES = [
    [b"json", GOOD],
    [GOOD],
    [b"json-array", b"[" + b",".join([GOOD] * 3) + b"]"],
    [b"json", GOOD[:-2]],
    [b"xml", b"<alert/>"],
    [b"json", b'{"labels": {"a": 1}}'],
    [b"arrow", b"not arrow"],
    [b"json", b"\xff" * 10],
]


def test_a_decoded_burst_crosses_the_process_boundary_unchanged() -> None:
    decoded = decode_frames([frame_from_parts(parts) for parts in MESSAGES], max_bytes=1 << 20)
    assert decoded.rejects and decoded.table.num_rows
    header, index, stream = encode_result(decoded, "zmq-pull x")
    back = decode_result(HEADER.decode(header), memoryview(index), memoryview(stream))
    assert back.table.equals(decoded.table)
    assert back.rejects == decoded.rejects
    assert back.rows == decoded.rows
    assert np.array_equal(back.index, decoded.index)


def test_an_empty_burst_crosses_too() -> None:
    decoded = Decoded.refused([Reject(0, "invalid_json", "x", b"{")])
    header, index, stream = encode_result(decoded, "s")
    back = decode_result(HEADER.decode(header), memoryview(index), memoryview(stream))
    assert back.table.num_rows == 0 and back.rejects == decoded.rejects and back.rows == 1


def _collect(process: bool, repeat: int) -> list[tuple[Decoded, str]]:
    """Send MESSAGES ``repeat`` times to a receiver; what it submitted, once all rows came."""
    got: list[tuple[Decoded, str]] = []
    errors: list[str] = []
    lock = threading.Lock()

    def submit(decoded: Decoded, source: str) -> None:
        with lock:
            got.append((decoded, source))

    receiver = Receiver(
        ZmqConfig(pull=("tcp://127.0.0.1:0",)), submit, errors.append, process=process
    )
    (endpoint,) = receiver.start()
    try:
        assert receiver.alive()
        sock = zmq.Context.instance().socket(zmq.PUSH)
        sock.connect(endpoint)
        expected = repeat * sum(
            decode_frames([frame_from_parts(m)], max_bytes=1 << 20).rows for m in MESSAGES
        )
        for _ in range(repeat):
            for parts in MESSAGES:
                sock.send_multipart(parts)
        deadline = time.monotonic() + 30
        while sum(d.rows for d, _ in got) < expected and time.monotonic() < deadline:
            time.sleep(0.01)
        sock.close(linger=1000)
    finally:
        receiver.stop(10)
    assert not errors
    assert sum(d.rows for d, _ in got) == expected
    assert {source for _, source in got} == {f"zmq-pull {endpoint}"}
    return got


def _label_strings(got: list[tuple[Decoded, str]]) -> list[list[tuple[str, str]]]:
    """The labels of every submitted row as strings, read the way the loop reads wire ids."""
    vocab = Vocabulary()
    wire = LabelTranslator(vocab)
    labels: list[list[tuple[str, str]]] = []
    for decoded, _ in got:
        assert isinstance(decoded, WireDecoded)
        wire.learn(decoded.strings)
        if decoded.table.num_rows:
            ptr, keys, values = wire.labels(decoded.table.column("labels"))
            labels.extend(label_pairs(vocab, ptr, keys, values))
    return labels


@pytest.mark.parametrize("process", [True, False], ids=["decode-process", "thread"])
def test_intake_submits_every_row_accepted_or_rejected_with_its_reason(process: bool) -> None:
    got = _collect(process, repeat=20)
    table = pa.concat_tables([d.table for d, _ in got])
    reasons = sorted(r.reason for d, _ in got for r in d.rejects)
    alone = [decode_frames([frame_from_parts(m)], max_bytes=1 << 20) for m in MESSAGES]
    assert table.num_rows == 20 * sum(d.table.num_rows for d in alone)
    assert reasons == sorted(20 * [r.reason for d in alone for r in d.rejects])
    expected = pa.concat_tables([d.table for d in alone]).column("labels").to_pylist()
    assert _label_strings(got) == 20 * expected
    assert expected[0] == decode_json(GOOD).table.column("labels").to_pylist()[0]


def test_only_the_daemons_user_can_reach_the_decoded_bursts() -> None:
    receiver = Receiver(
        ZmqConfig(pull=("tcp://127.0.0.1:0",)), lambda d, s: None, print, process=True
    )
    receiver.start()
    try:
        socket_path = Path(receiver.results_endpoint.removeprefix("ipc://"))
        assert receiver.results_endpoint.startswith("ipc://") and socket_path.is_socket()
        assert stat.S_IMODE(socket_path.parent.stat().st_mode) == 0o700
    finally:
        receiver.stop(10)
    assert not socket_path.parent.exists()


def test_the_decode_process_ends_when_the_daemon_goes_away() -> None:
    receiver = Receiver(
        ZmqConfig(pull=("tcp://127.0.0.1:0",)), lambda d, s: None, print, process=True
    )
    receiver.start()
    worker = receiver._worker
    assert worker is not None and worker.stdin is not None
    worker.stdin.close()  # what the daemon's death (kill -9) does to the pipe
    worker.wait(30)
    assert worker.returncode == 0
    receiver.stop(10)
    assert not receiver.alive()


@pytest.mark.parametrize("process", [True, False], ids=["decode-process", "thread"])
def test_an_endpoint_that_cannot_be_bound_is_refused_by_name(process: bool) -> None:
    holder = zmq.Context.instance().socket(zmq.PULL)
    port = holder.bind_to_random_port("tcp://127.0.0.1")
    endpoint = f"tcp://127.0.0.1:{port}"
    receiver = Receiver(ZmqConfig(pull=(endpoint,)), lambda d, s: None, print, process=process)
    try:
        with pytest.raises(SourceError, match=endpoint):
            receiver.start()
    finally:
        receiver.stop(5)
        holder.close(linger=0)


# -- bodies posted to the HTTP API ---------------------------------------------------------

BAD = b'{"labels": {"a": 1}}'
BODIES = {
    "good": b"[" + b",".join([GOOD] * 3) + b"]",
    "mixed": b"[" + GOOD + b"," + BAD + b"]",
    "all bad": b"[" + BAD + b"," + BAD + b"]",
    "not json": b"[{",
    "empty": b"[]",
    "one object": GOOD,
    "invalid utf-8": b"[\xff]",
}


def _verdict_alone(body: bytes) -> Verdict:
    """The verdict a body gets by the HTTP API's rule: accepted unless it has rejects and no row."""
    decoded = decode_frames([Frame("json-array", body)], max_bytes=1 << 20)
    accepted = decoded.table.num_rows > 0 or not decoded.rejects
    return Verdict(accepted, sorted({r.reason for r in decoded.rejects}))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(sorted(BODIES)), min_size=1, max_size=8))
def test_posted_bodies_decoded_together_get_each_its_own_verdict(kinds: list[str]) -> None:
    bodies = [BODIES[kind] for kind in kinds]
    errors: list[str] = []
    decoded, verdicts = decode_requests(bodies, 1 << 20, errors.append, STRING_LABELS)
    assert decoded is not None and not errors
    assert verdicts == [_verdict_alone(body) for body in bodies]
    alone = [decode_frames([Frame("json-array", body)], max_bytes=1 << 20) for body in bodies]
    assert decoded.rows == sum(d.rows for d in alone)
    assert sorted(r.reason for r in decoded.rejects) == sorted(
        r.reason for d in alone for r in d.rejects
    )
    expected = [row for d in alone for row in d.table.column("labels").to_pylist()]
    assert decoded.table.column("labels").to_pylist() == expected


def test_a_decoder_failure_is_every_posted_bodys_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object, **kwargs: object) -> Decoded:
        raise RuntimeError("decoder bug")

    monkeypatch.setattr("correlator.daemon.receiver.decode_frames", broken)
    errors: list[str] = []
    decoded, verdicts = decode_requests([BODIES["good"]] * 2, 1 << 20, errors.append, STRING_LABELS)
    assert decoded is None and len(errors) == 1 and "decoder bug" in errors[0]
    assert [v.error for v in verdicts] == ["decoding failed"] * 2


@pytest.mark.parametrize("process", [True, False], ids=["decode-process", "thread"])
def test_concurrent_posts_are_submitted_and_answered_each_by_its_own_verdict(
    process: bool,
) -> None:
    got: list[tuple[Decoded, str]] = []
    lock = threading.Lock()

    def submit(decoded: Decoded, source: str) -> None:
        with lock:
            got.append((decoded, source))

    errors: list[str] = []
    receiver = Receiver(ZmqConfig(pull=()), submit, errors.append, process=process)
    receiver.start()
    kinds = sorted(BODIES) * 6
    answers: dict[int, Verdict] = {}
    posters = POSTERS + 4  # some wait for a turn

    def poster(slot: int) -> None:
        for k in range(slot, len(kinds), posters):
            answers[k] = receiver.post(BODIES[kinds[k]])

    try:
        threads = [threading.Thread(target=poster, args=(slot,)) for slot in range(posters)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert len(receiver._idle) <= POSTERS  # never more sockets than turns
    finally:
        receiver.stop(10)
    assert not errors
    assert [answers[k] for k in range(len(kinds))] == [_verdict_alone(BODIES[k]) for k in kinds]
    assert {source for _, source in got} == {HTTP_SOURCE}
    expected = sum(_rows_alone(BODIES[k]) for k in kinds)
    assert sum(d.rows for d, _ in got) == expected
    with pytest.raises(SourceError, match="not running"):
        receiver.post(BODIES["good"])


def test_a_post_to_a_dead_decode_process_is_refused_not_left_hanging() -> None:
    receiver = Receiver(ZmqConfig(pull=()), lambda d, s: None, lambda m: None, process=True)
    receiver.start()
    try:
        worker = receiver._worker
        assert worker is not None
        worker.kill()
        worker.wait(30)
        with pytest.raises(SourceError, match="no answer"):
            receiver.post(BODIES["good"], timeout=30)
    finally:
        receiver.stop(10)


def _rows_alone(body: bytes) -> int:
    return decode_frames([Frame("json-array", body)], max_bytes=1 << 20).rows
