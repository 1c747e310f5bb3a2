"""A small producer API: send alerts to a running correlator over ZeroMQ.

    with Client("tcp://127.0.0.1:5555") as client:
        client.send(alerts)          # dicts in Alertmanager's shape, batched as JSON arrays
        client.send_table(table)     # an Arrow table in correlator.schema's shape

Messages are ``[format, payload]`` frames on a PUSH socket; ``close`` waits
(up to ``linger`` seconds) until queued messages are handed to the daemon.
An Arrow message's label names and values are dictionary-encoded
(``arrow_message``): the daemon then codes each distinct string once per
message instead of once per alert, and the message is a quarter smaller
(``benchmarks/ingest_bench.py --modes arrow [--plain-arrow]`` compares).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from itertools import islice
from typing import Any, Self

import msgspec
import pyarrow as pa
import zmq

from correlator.errors import SourceError


def arrow_message(table: pa.Table) -> bytes:
    """The payload of one ``arrow`` message: ``table`` (in ``correlator.schema``'s shape)
    as an Arrow IPC stream, its label names and values dictionary-encoded.

    A storm repeats a few thousand label strings across all its alerts; as
    dictionaries each travels once per message. Any other labels column
    (already dictionaries, or not a map) is sent as it is.
    """
    if "labels" in table.column_names:
        index = table.schema.get_field_index("labels")
        labels = table.column(index).combine_chunks()
        if isinstance(labels, pa.MapArray) and not pa.types.is_dictionary(labels.type.key_type):
            table = table.set_column(index, "labels", _dictionary_labels(labels))
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def _dictionary_labels(labels: pa.MapArray) -> pa.MapArray:
    offsets = labels.offsets.to_numpy()
    lo, hi = int(offsets[0]), int(offsets[-1])
    return pa.MapArray.from_arrays(
        offsets - offsets[0],
        labels.keys.slice(lo, hi - lo).dictionary_encode(),
        labels.items.slice(lo, hi - lo).dictionary_encode(),
        mask=labels.is_null() if labels.null_count else None,
    )


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
        """Send an Arrow table as messages of up to ``batch_size`` rows (``arrow_message``)."""
        for start in range(0, table.num_rows, self.batch_size):
            self._socket.send_multipart(
                [b"arrow", arrow_message(table.slice(start, self.batch_size))]
            )
        self.sent += table.num_rows
        return table.num_rows

    def close(self) -> None:
        """Flush queued messages (up to the linger time) and close the socket."""
        self._socket.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
