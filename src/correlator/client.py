"""A small producer API: send alerts to a running correlator over ZeroMQ.

    with Client("tcp://127.0.0.1:5555") as client:
        client.send(alerts)          # dicts in Alertmanager's shape, batched as JSON arrays
        client.send_table(table)     # an Arrow table in correlator.schema's shape

Messages are ``[format, payload]`` frames on a PUSH socket; ``close`` waits
(up to ``linger`` seconds) until queued messages are handed to the daemon.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from itertools import islice
from typing import Any, Self

import msgspec
import pyarrow as pa
import zmq

from correlator.errors import SourceError


class Client:
    """Sends alerts to ``endpoint`` (a daemon's PULL socket) in batches of ``batch_size``."""

    def __init__(self, endpoint: str, *, batch_size: int = 1000, linger: float = 30.0) -> None:
        self.endpoint = endpoint
        self.batch_size = batch_size
        self._context = zmq.Context.instance()
        self._socket = self._context.socket(zmq.PUSH)
        self._socket.setsockopt(zmq.LINGER, int(linger * 1000))
        self._socket.setsockopt(zmq.SNDHWM, 100_000)
        try:
            self._socket.connect(endpoint)
        except zmq.ZMQError as exc:
            self._socket.close(linger=0)
            msg = f"cannot connect to {endpoint}: {exc}"
            raise SourceError(msg) from exc
        self._encoder = msgspec.json.Encoder()
        self.sent = 0

    def send(self, alerts: Iterable[Mapping[str, Any]]) -> int:
        """Send alerts as JSON arrays of up to ``batch_size``; returns how many were sent."""
        count = 0
        iterator = iter(alerts)
        while chunk := list(islice(iterator, self.batch_size)):
            self._socket.send_multipart([b"json-array", self._encoder.encode(chunk)])
            count += len(chunk)
        self.sent += count
        return count

    def send_raw(self, payload: bytes, fmt: str = "json") -> None:
        """Send one already-encoded message (``json``, ``json-array`` or ``arrow``)."""
        self._socket.send_multipart([fmt.encode(), payload])

    def send_table(self, table: pa.Table) -> int:
        """Send an Arrow table as IPC streams of up to ``batch_size`` rows each."""
        for start in range(0, table.num_rows, self.batch_size):
            part = table.slice(start, self.batch_size)
            sink = pa.BufferOutputStream()
            with pa.ipc.new_stream(sink, part.schema) as writer:
                writer.write_table(part)
            self._socket.send_multipart([b"arrow", sink.getvalue().to_pybytes()])
        self.sent += table.num_rows
        return table.num_rows

    def close(self) -> None:
        """Flush queued messages (up to the linger time) and close the socket."""
        self._socket.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
