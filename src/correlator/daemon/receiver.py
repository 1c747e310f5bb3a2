"""ZeroMQ intake: receive bursts of messages, decode them, hand the results to the daemon.

Decoding JSON builds Python objects for every alert and holds the GIL while
it does; on the correlation loop's interpreter it would compete with that
loop for the GIL, and each small Arrow or numba call the loop makes (they
release the GIL) would wait for it again. So by default the sockets live in
a decode *process* (``Receiver(process=True)``): it binds or connects them,
receives and decodes bursts, and ships each burst's ``Decoded`` to the
daemon as an Arrow IPC stream plus its rejects, over a ZeroMQ Unix socket
in a folder private to the daemon's user, with a small high-water mark, so
backpressure still reaches the producers. The daemon side only maps the
stream (no copy) and submits it.
With ``process=False`` the same receive loop runs on a thread of the daemon.

Either way the labels travel as integer ids (``correlator.daemon.wire``):
what is submitted is a ``WireDecoded``, whose new strings the correlation
loop learns before it reads the ids.

Bodies posted to the HTTP API take the same path (``Receiver.post``): the
HTTP thread hands the body to the receive loop over a private socket and
waits for its verdict (were any alerts accepted, why were the others
rejected), so bodies are decoded beside the correlation loop, not on its
interpreter. Over four connections that took 1,000-alert bodies from
296-392 k alerts/s (decoded on the HTTP threads) to 412-511 k, and
Prometheus's 64-alert ones from 49-54 k to 73-91 k; the extra hop costs a
lone poster latency: one connection posting 64-alert bodies gets 44-50 k
alerts/s, against 66 k before (``benchmarks/ingest_bench.py``, 2 cores).

The decode process is ``correlator.daemon.worker``, started as a fresh
interpreter (it inherits no sockets or locks of the daemon, and does not
import the daemon's main script).
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pyarrow as pa
import zmq

from correlator.client import arrow_message
from correlator.daemon.config import ZmqConfig
from correlator.daemon.frames import (
    FORMAT_NAMES,
    Frame,
    decode_frames,
    frame_from_parts,
    merge_decoded,
)
from correlator.daemon.wire import WIRE_SCHEMA, LabelCoder, NewStrings, WireDecoded
from correlator.decode import STRING_LABELS, Decoded, LabelEncoder, decode_json, empty_table
from correlator.errors import SourceError
from correlator.rejects import Reject
from correlator.threadnames import NamedThread

log = logging.getLogger("correlator.daemon")
_RECEIVE_BURST = 4096
_BURST_BYTES = 32 << 20
_GATHER_BYTES = 256 << 10
_GATHER_SECONDS = 0.001
# Decoded bursts in flight between the decode process and the daemon: past
# this the decode process stops receiving and the producers' sockets fill.
RESULT_HWM = 8
_START_TIMEOUT = 120.0
HTTP_SOURCE = "http"
"""The source name of alerts posted to the HTTP API."""
REQUEST_TIMEOUT = 30.0
"""How long an HTTP body may wait for its verdict (the loop's backpressure included)."""
POSTERS = 16
"""Bodies in flight to the receive loop at once; more posts wait their turn. Each holds a
socket (a file descriptor here and one in the decode process), and one loop decodes them
all, so more would only cost descriptors."""


class Header(msgspec.Struct, array_like=True):
    """What travels beside a burst's Arrow stream: its source, counts, rejects, new strings."""

    kind: str
    source: str = ""
    rows: int = 0
    rejects: list[Reject] = []
    error: str = ""
    first_key: int = 0
    keys: list[str] = []
    first_value: int = 0
    values: list[str] = []


class Verdict(msgspec.Struct, array_like=True):
    """What the receive loop answers a posted body: whether any of its alerts was
    accepted, why the others were rejected, or the error that lost it."""

    accepted: bool
    reasons: list[str] = []
    error: str = ""


ENCODER = msgspec.msgpack.Encoder()
HEADER = msgspec.msgpack.Decoder(Header)
VERDICT = msgspec.msgpack.Decoder(Verdict)

Submit = Callable[[Decoded, str], None]
OnError = Callable[[str], None]


def bind_sockets(context: zmq.Context, cfg: ZmqConfig) -> list[tuple[zmq.Socket, str, str]]:
    """Bind the PULL sockets and connect the SUB ones: (socket, source name, endpoint) each.

    An endpoint ending in ``:0`` is bound to a free port, and named by it.
    """
    sockets = []
    try:
        for endpoint in cfg.pull:
            sock = context.socket(zmq.PULL)
            sock.setsockopt(zmq.RCVHWM, cfg.hwm)
            if endpoint.endswith(":0"):
                host = endpoint.rsplit(":", 1)[0]
                endpoint = f"{host}:{sock.bind_to_random_port(host)}"
            else:
                sock.bind(endpoint)
            sockets.append((sock, f"zmq-pull {endpoint}", endpoint))
        for endpoint in cfg.sub:
            sock = context.socket(zmq.SUB)
            sock.setsockopt(zmq.RCVHWM, cfg.hwm)
            sock.setsockopt(zmq.SUBSCRIBE, cfg.sub_topic.encode())
            sock.connect(endpoint)
            sockets.append((sock, f"zmq-sub {endpoint}", endpoint))
    except zmq.ZMQError as exc:
        for sock, _, _ in sockets:
            sock.close(linger=0)
        msg = f"zmq endpoint {endpoint!r}: {exc}"
        raise SourceError(msg) from exc
    return sockets


def receive_burst(sock: zmq.Socket, topic: str) -> list[Frame | Reject]:
    """Every message waiting on ``sock``, up to a burst (a count and a byte budget).

    Parts are received as frames and copied out: a frame says whether more
    parts follow, where ``recv_multipart`` asks the socket (a system call's
    worth of overhead per part, the most of a small message's cost). The
    usual ``[format, payload]`` message becomes its ``Frame`` at once.

    A burst smaller than ``_GATHER_BYTES`` waits up to ``_GATHER_SECONDS``
    for more: decoding has a fixed cost per call (about 0.3 ms), which a
    steady trickle of small messages would otherwise pay one message at a
    time. Arrays of 100 alerts every millisecond cost the daemon 1.00-1.07
    cores with this wait and 1.39-1.42 without, and p99 latency fell
    (``benchmarks/ingest_bench.py --modes latency``, 2 cores).
    """
    frames: list[Frame | Reject] = []
    size = 0
    strip_topic = sock.type == zmq.SUB and bool(topic)
    recv = sock.recv
    known = FORMAT_NAMES.get
    append = frames.append
    deadline = time.monotonic() + _GATHER_SECONDS
    for _ in range(_RECEIVE_BURST):
        try:
            part = recv(zmq.NOBLOCK, copy=False)
        except zmq.Again:
            left = deadline - time.monotonic()
            # zmq polls in whole milliseconds: a shorter timeout would not wait at all.
            if size >= _GATHER_BYTES or left <= 0 or not sock.poll(math.ceil(left * 1e3)):
                break
            continue
        parts = [part.bytes]
        if part.more:
            part = recv(copy=False)
            parts.append(part.bytes)
            name = known(parts[0])
            if not part.more and name is not None and not strip_topic:
                append(Frame(name, parts[1]))
                size += len(parts[0]) + len(parts[1])
                if size >= _BURST_BYTES:
                    break
                continue
        while part.more:
            part = recv(copy=False)
            parts.append(part.bytes)
        size += sum(map(len, parts))
        if strip_topic and len(parts) > 1:
            parts = parts[1:]
        append(frame_from_parts(parts))
        if size >= _BURST_BYTES:
            break
    return frames


def receive_requests(router: zmq.Socket) -> list[tuple[bytes, bytes]]:
    """The posted bodies waiting on ``router``, with who asked: ``(identity, body)`` each.

    No wait for more: each HTTP thread has one body in flight, so a burst is
    as large as the posts that came in meanwhile.
    """
    requests: list[tuple[bytes, bytes]] = []
    size = 0
    while len(requests) < _RECEIVE_BURST and size < _BURST_BYTES:
        try:
            parts = router.recv_multipart(zmq.NOBLOCK)
        except zmq.Again:
            break
        if len(parts) == 2:  # only ``Receiver.post`` connects, and sends one frame
            requests.append((parts[0], parts[1]))
            size += len(parts[1])
    return requests


def decode_requests(
    bodies: list[bytes], limit: int, on_error: OnError, labels: LabelEncoder
) -> tuple[Decoded | None, list[Verdict]]:
    """Posted bodies decoded as one burst, and each one's verdict.

    A burst without a rejected row accepts every body. Otherwise the bodies
    are decoded one by one, so each knows its own rejects.
    """
    frames: list[Frame | Reject] = [Frame("json-array", body) for body in bodies]
    failed = [Verdict(False, error="decoding failed")] * len(bodies)
    together = decode_burst(frames, limit, on_error, labels)
    if together is None:
        return None, failed
    if not together.rejects or len(bodies) == 1:
        return together, [_verdict(together)] * len(bodies)
    alone = [decode_burst([frame], limit, on_error, labels) for frame in frames]
    parts = [part for part in alone if part is not None]
    if len(parts) < len(frames):
        return None, failed
    return merge_decoded(parts), [_verdict(part) for part in parts]


def _verdict(decoded: Decoded) -> Verdict:
    accepted = decoded.table.num_rows > 0 or not decoded.rejects
    return Verdict(accepted, sorted({r.reason for r in decoded.rejects}))


def serve_requests(
    router: zmq.Socket,
    limit: int,
    on_error: OnError,
    coder: LabelCoder,
    send: Callable[[Decoded | None], bool],
) -> bool:
    """Decode the posted bodies waiting on ``router``, answer each, ``send`` them on.

    ``send`` gets None for a burst the decoder failed on (its error went to
    ``on_error``); it takes the coder's new strings with a burst it sends.
    The answers go out first: each HTTP thread waits for one, and answered
    before the alerts are sent on, it has written its reply before the
    daemon's threads that take the alerts wake up and compete with it for
    the GIL (one Prometheus posting 64-alert bodies: 41-44 k alerts/s the
    other way round, 49-50 k this way). No post is answered while the
    previous burst waits for room, so backpressure still reaches the
    posters. False when ``send`` could not.
    """
    requests = receive_requests(router)
    if not requests:
        return True
    decoded, verdicts = decode_requests([body for _, body in requests], limit, on_error, coder)
    for (who, _), verdict in zip(requests, verdicts, strict=True):
        router.send_multipart([who, ENCODER.encode(verdict)])
    return send(decoded)


def warm_decoders(max_bytes: int) -> None:
    """Decode a message of each format once, with a coder of its own, and drop the result.

    The decoders' kernels then compile (or load from numba's cache) now, not
    when the first storm arrives and would wait for them; the array's 600
    distinct label values make a string table grow once, as a storm soon does.
    """
    alerts = [
        {
            "labels": {"alertname": "Warm", "instance": f"warm-{k}:9100"},
            "annotations": {"summary": "warming the decoders"},
            "startsAt": "2026-01-01T00:00:00.000Z",
            "endsAt": "2026-01-01T00:05:00Z",
            "generatorURL": "http://localhost/warm",
        }
        for k in range(600)
    ]
    array = msgspec.json.encode(alerts)
    frames: list[Frame | Reject] = [
        Frame("json", msgspec.json.encode(alerts[0])),
        Frame("json-array", array),
        Frame("arrow", arrow_message(decode_json(array).table)),
    ]
    decode_frames(frames, max_bytes=max_bytes, labels=LabelCoder())


def decode_burst(
    frames: list[Frame | Reject],
    limit: int,
    on_error: OnError,
    labels: LabelEncoder = STRING_LABELS,
) -> Decoded | None:
    """A burst decoded; a decoder bug is reported and the burst dropped, never raised.

    With a ``LabelCoder`` the labels come out as wire ids; the strings it
    met stay with it until ``take_new``, so a dropped burst loses none.
    """
    try:
        return decode_frames(frames, max_bytes=limit, labels=labels)
    except Exception:  # a decoder bug must not stop intake
        on_error(
            f"decoding {len(frames)} message(s) failed; they are lost\n{traceback.format_exc()}"
        )
        return None


def encode_result(decoded: Decoded, source: str, strings: NewStrings | None = None) -> list[Any]:
    """A decoded burst as message parts: header, row index, Arrow stream (empty if no rows).

    ``strings`` are the coder's new strings when the labels are wire ids.
    """
    new = strings or NewStrings()
    header = ENCODER.encode(
        Header(
            "batch" if strings is None else "wire",
            source,
            decoded.rows,
            decoded.rejects,
            first_key=new.first_key,
            keys=new.keys,
            first_value=new.first_value,
            values=new.values,
        )
    )
    table = decoded.table
    if table.num_rows == 0:
        return [header, b"", b""]
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return [header, np.ascontiguousarray(decoded.index, dtype=np.int64), sink.getvalue()]


def decode_result(header: Header, index: memoryview, stream: memoryview) -> Decoded:
    """The ``Decoded`` that ``encode_result`` sent (a ``WireDecoded`` for wire ids).

    The Arrow columns are not copied.
    """
    if len(stream) == 0:
        table = empty_table()
    else:
        table = pa.ipc.open_stream(pa.py_buffer(stream)).read_all()
    rows = np.frombuffer(index, dtype=np.int64) if len(index) else np.zeros(0, dtype=np.int64)
    decoded = Decoded(table, header.rejects, header.rows, rows)
    if header.kind != "wire":
        return decoded
    return wire_decoded(
        decoded, NewStrings(header.first_key, header.keys, header.first_value, header.values)
    )


def wire_decoded(decoded: Decoded, strings: NewStrings) -> WireDecoded:
    """A burst decoded with a ``LabelCoder``, with the strings its ids need.

    A burst without a good row has the canonical empty table; it gets the
    wire schema's, so every ``WireDecoded`` table is in ``WIRE_SCHEMA``.
    """
    table = decoded.table if decoded.table.num_rows else WIRE_SCHEMA.empty_table()
    return WireDecoded(table, decoded.rejects, decoded.rows, decoded.index, strings)


class Receiver:
    """The ZeroMQ sources of one daemon: ``start`` them, and decoded bursts go to ``submit``.

    ``submit(decoded, source)`` is called from one thread of the daemon,
    which may block (the loop's queue is bounded); ``on_error(message)`` is
    called for a burst that could not be decoded.
    """

    def __init__(self, cfg: ZmqConfig, submit: Submit, on_error: OnError, *, process: bool) -> None:
        self.cfg = cfg
        self.process = process
        self.endpoints: list[str] = []
        self._submit = submit
        self._on_error = on_error
        self._context = zmq.Context()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._worker: subprocess.Popen[bytes] | None = None
        self._sockets: list[tuple[zmq.Socket, str, str]] = []
        self._private: Path | None = None
        self.results_endpoint = ""
        """Where the decode process sends decoded bursts (empty without one)."""
        self.requests_endpoint = ""
        """Where ``post`` sends bodies to the receive loop."""
        self._router: zmq.Socket | None = None  # thread mode: the loop's end of it
        self._idle: list[zmq.Socket] = []  # ``post``'s sockets, one per body in flight
        self._posting = threading.Condition()
        self._in_flight = 0

    def start(self) -> list[str]:
        """Bind and connect the sockets and start receiving; the endpoints as bound."""
        target: Callable[..., None]
        args: tuple[Any, ...]
        if self.process:
            results = self._context.socket(zmq.PULL)
            results.setsockopt(zmq.RCVHWM, RESULT_HWM)
            # The results socket trusts what arrives (label ids, their strings), so
            # only this user may connect: a Unix socket in a folder only they can
            # enter, not a port any local process could reach.
            self._private = Path(tempfile.mkdtemp(prefix="correlator-"))
            self.results_endpoint = f"ipc://{self._private / 'decoded'}"
            self.requests_endpoint = f"ipc://{self._private / 'posted'}"
            results.bind(self.results_endpoint)
            try:
                self._start_worker(self.results_endpoint, self.requests_endpoint)
            except SourceError:
                results.close(linger=0)
                shutil.rmtree(self._private, ignore_errors=True)
                raise
            target, args = self._forward, (results,)
        else:
            warm_decoders(self.cfg.max_message_bytes)
            self._sockets = bind_sockets(self._context, self.cfg)
            self.endpoints = [endpoint for _, _, endpoint in self._sockets]
            self.requests_endpoint = f"inproc://posted-{id(self)}"
            self._router = self._context.socket(zmq.ROUTER)
            self._router.bind(self.requests_endpoint)
            target, args = self._receive, ()
        self._thread = NamedThread(target=target, args=args, name="zmq-receive", daemon=True)
        self._thread.start()
        return self.endpoints

    def _start_worker(self, results: str, requests: str) -> None:
        worker = subprocess.Popen(
            [sys.executable, "-m", "correlator.daemon.worker", results, requests],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        )
        self._worker = worker
        assert worker.stdin is not None and worker.stdout is not None
        worker.stdin.write(msgspec.json.encode(self.cfg) + b"\n")
        worker.stdin.flush()
        answer: dict[str, Any] = {}
        stdout = worker.stdout
        reader = threading.Thread(
            target=lambda: answer.update(msgspec.json.decode(stdout.readline() or b"{}")),
            daemon=True,
        )
        reader.start()
        reader.join(_START_TIMEOUT)
        if "bound" not in answer:
            where = list(self.cfg.pull + self.cfg.sub)
            if worker.poll() is None:
                worker.kill()
                problem = f"did not bind {where} in {_START_TIMEOUT:.0f} s"
            else:
                problem = f"exited ({worker.returncode}) before binding {where}"
            worker.wait()
            raise SourceError(answer.get("error") or f"the decode process {problem}")
        self.endpoints = list(answer["bound"])

    def alive(self) -> bool:
        """Whether intake runs (the receiving thread, and the decode process if any)."""
        thread_ok = self._thread is not None and self._thread.is_alive()
        return thread_ok and (self._worker is None or self._worker.poll() is None)

    def post(self, body: bytes, timeout: float = REQUEST_TIMEOUT) -> Verdict:
        """Decode a body posted to the HTTP API on the receive loop; its verdict.

        The alerts are submitted (as ``HTTP_SOURCE``) right after the verdict
        is sent. Called from any thread; at most ``POSTERS`` bodies are in
        flight at once, the others wait for a turn. Raises ``SourceError``
        when intake is stopping, gone, too far behind to take the body, or
        gives no turn or no verdict within ``timeout`` seconds (each).
        """
        with self._posting:
            turn = self._posting.wait_for(
                lambda: self._in_flight < POSTERS or self._stopping.is_set(), timeout
            )
            if self._stopping.is_set() or not self.requests_endpoint:
                msg = "alert intake is not running"
                raise SourceError(msg)
            if not turn:
                msg = f"{POSTERS} bodies waited {timeout:.0f} s for alert intake; send again later"
                raise SourceError(msg)
            self._in_flight += 1
            sock = self._idle.pop() if self._idle else None
        answered = False
        try:
            if sock is None:
                sock = self._context.socket(zmq.DEALER)
                sock.connect(self.requests_endpoint)
            try:
                sock.send(body, zmq.NOBLOCK, copy=False)
            except zmq.Again:  # no room to queue it: the receive loop is gone or stuck
                msg = "alert intake is not taking bodies; send again later"
                raise SourceError(msg) from None
            deadline = time.monotonic() + timeout
            while not sock.poll(100):
                if self._stopping.is_set() or not self.alive() or time.monotonic() > deadline:
                    msg = "alert intake stopped or gave no answer in time; send again later"
                    raise SourceError(msg)
            verdict = VERDICT.decode(sock.recv())
            answered = True
            return verdict
        finally:
            with self._posting:
                if answered:
                    self._idle.append(sock)
                elif sock is not None:  # a verdict may still come: no other post may hear it
                    sock.close(linger=0)
                self._in_flight -= 1
                self._posting.notify_all()

    def stop(self, timeout: float) -> None:
        """Stop receiving; every burst decoded by now is submitted before this returns."""
        with self._posting:
            self._stopping.set()
            self._posting.notify_all()  # posts waiting for a turn give up now
        worker = self._worker
        if worker is not None and worker.stdin is not None and not worker.stdin.closed:
            try:
                worker.stdin.write(b"stop\n")
                worker.stdin.close()
            except OSError:  # it is gone already
                pass
        if self._thread is not None:
            self._thread.join(timeout)
        if worker is not None:
            try:
                worker.wait(timeout)
            except subprocess.TimeoutExpired:
                log.error("the decode process did not stop in %.0f s; killed", timeout)
                worker.kill()
                worker.wait()
            if worker.stdout is not None:
                worker.stdout.close()
        for sock, _, _ in self._sockets:
            sock.close(linger=0)
        with self._posting:  # posts in flight notice the stop within a poll
            self._posting.wait_for(lambda: self._in_flight == 0, timeout)
            for sock in self._idle:
                sock.close(linger=0)
            self._idle.clear()
        if self._router is not None:
            self._router.close(linger=0)
        self._context.term()
        if self._private is not None:
            shutil.rmtree(self._private, ignore_errors=True)

    def _receive(self) -> None:
        """Thread mode: receive and decode here, on the daemon's interpreter."""
        poller = zmq.Poller()
        names = {}
        for sock, name, _ in self._sockets:
            poller.register(sock, zmq.POLLIN)
            names[sock] = name
        router = self._router
        assert router is not None
        poller.register(router, zmq.POLLIN)
        limit = self.cfg.max_message_bytes
        coder = LabelCoder()

        def deliver(decoded: Decoded | None, source: str) -> bool:
            if decoded is not None:
                self._submit(wire_decoded(decoded, coder.take_new()), source)
            return True

        while not self._stopping.is_set():
            for sock, _ in poller.poll(100):
                if sock is router:
                    serve_requests(
                        router, limit, self._on_error, coder, lambda d: deliver(d, HTTP_SOURCE)
                    )
                    continue
                frames = receive_burst(sock, self.cfg.sub_topic)
                decoded = decode_burst(frames, limit, self._on_error, coder) if frames else None
                deliver(decoded, names[sock])

    def _forward(self, results: zmq.Socket) -> None:
        """Process mode: submit what the decode process sends, until its end marker."""
        worker = self._worker
        assert worker is not None
        try:
            while True:
                if not results.poll(100):
                    if worker.poll() is not None:
                        if not self._stopping.is_set():
                            self._on_error(f"the decode process exited ({worker.returncode})")
                        return
                    continue
                parts = results.recv_multipart(copy=False)
                header = HEADER.decode(parts[0].buffer)
                if header.kind == "end":
                    return
                if header.kind == "error":
                    self._on_error(header.error)
                    continue
                decoded = decode_result(header, parts[1].buffer, parts[2].buffer)
                self._submit(decoded, header.source)
        finally:
            results.close(linger=0)
