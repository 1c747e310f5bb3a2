"""The decode process: ZeroMQ sockets in, decoded bursts out, apart from the daemon's GIL.

``Receiver`` (``correlator.daemon.receiver``) runs ``python -m
correlator.daemon.worker RESULTS POSTED``. Standard input is the control
channel: the ``ZmqConfig`` comes in as one JSON line, and the bound
endpoints (or the error) go back as one JSON line on standard output. The
process then binds or connects the sockets, receives and decodes bursts and
pushes each to ``RESULTS``; bodies posted to the daemon's HTTP API come in
on ``POSTED``, and each gets its verdict back there as soon as it is
decoded, its alerts pushed right after. It ends when told ``stop`` (after
sending what it decoded and an end marker) or when its standard input
closes (the daemon died, e.g. ``kill -9``), so it never outlives the daemon.
"""

from __future__ import annotations

import gc
import os
import sys
from typing import IO, Any

import msgspec
import zmq

from correlator.daemon.config import ZmqConfig
from correlator.daemon.receiver import (
    ENCODER,
    HTTP_SOURCE,
    RESULT_HWM,
    Header,
    bind_sockets,
    decode_burst,
    encode_result,
    receive_burst,
    serve_requests,
    warm_decoders,
)
from correlator.daemon.wire import LabelCoder
from correlator.decode import Decoded
from correlator.errors import SourceError
from correlator.threadnames import name_this_thread


def _send(out: zmq.Socket, parts: list[Any], parent: int) -> bool:
    """Send ``parts`` once the daemon has room; False if the daemon died meanwhile.

    A daemon killed while this process waits for room must not leave it
    blocked forever: it then belongs to another parent, and gives up.
    """
    while not out.poll(100, zmq.POLLOUT):
        if os.getppid() != parent:
            return False
    out.send_multipart(parts, copy=False)
    return True


def serve(cfg: ZmqConfig, results: str, posted: str, control: int, answer: IO[str]) -> None:
    """Bind, receive and decode until told to stop on ``control`` or orphaned (its EOF)."""
    parent = os.getppid()
    context = zmq.Context()
    out = context.socket(zmq.PUSH)
    out.setsockopt(zmq.SNDHWM, RESULT_HWM)
    out.connect(results)
    router = context.socket(zmq.ROUTER)
    try:
        router.bind(posted)
        sockets = bind_sockets(context, cfg)
    except (SourceError, zmq.ZMQError) as exc:
        answer.write(msgspec.json.encode({"error": str(exc)}).decode() + "\n")
        answer.flush()
        router.close(linger=0)
        out.close(linger=0)
        context.term()
        return
    answer.write(msgspec.json.encode({"bound": [e for _, _, e in sockets]}).decode() + "\n")
    answer.flush()

    errors: list[str] = []

    poller = zmq.Poller()
    for sock, _, _ in sockets:
        poller.register(sock, zmq.POLLIN)
    poller.register(router, zmq.POLLIN)
    poller.register(control, zmq.POLLIN)
    names = {sock: name for sock, name, _ in sockets}
    coder = LabelCoder()

    def deliver(decoded: Decoded | None, source: str) -> bool:
        """Send the errors met so far, then ``decoded`` with the strings new to the daemon;
        False if the daemon died."""
        sent = True
        while errors and sent:
            sent = _send(out, [ENCODER.encode(Header("error", error=errors.pop(0)))], parent)
        if decoded is not None and sent:
            sent = _send(out, encode_result(decoded, source, coder.take_new()), parent)
        return sent

    orphaned = False
    while True:
        ready = dict(poller.poll())
        if control in ready:
            orphaned = os.read(control, 4096) == b""
            break
        for sock in ready:
            if sock is router:
                sent = serve_requests(
                    router,
                    cfg.max_message_bytes,
                    errors.append,
                    coder,
                    lambda decoded: deliver(decoded, HTTP_SOURCE),
                )
            else:
                frames = receive_burst(sock, cfg.sub_topic)
                decoded = (
                    decode_burst(frames, cfg.max_message_bytes, errors.append, coder)
                    if frames
                    else None
                )
                sent = deliver(decoded, names[sock])
            if not sent:
                orphaned = True
                break
        if orphaned:
            break
    for sock, _, _ in sockets:
        sock.close(linger=0)
    router.close(linger=0)
    if not orphaned:
        out.send(ENCODER.encode(Header("end")))
    out.close(linger=0 if orphaned else 10_000)
    context.term()


def main() -> None:
    """Read the config from standard input, warm the decoders, then run until stopped or
    orphaned."""
    gc.set_threshold(50_000, 20, 20)
    control = sys.stdin.fileno()
    line = b""
    while not line.endswith(b"\n"):
        chunk = os.read(control, 1)
        if not chunk:
            return
        line += chunk
    cfg = msgspec.json.decode(line, type=ZmqConfig)
    name_this_thread("decode")
    warm_decoders(cfg.max_message_bytes)
    # What is left now lives as long as the process: out of the collector's way.
    gc.collect()
    gc.freeze()
    serve(cfg, sys.argv[1], sys.argv[2], control, sys.stdout)


if __name__ == "__main__":
    main()
