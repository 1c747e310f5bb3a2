"""Snapshots of the correlation state, so a restart loses no open incident.

A snapshot is the engine's arrays, the string vocabulary they refer to, and
how many alerts of the event log it covers. It is written to a temporary
name and renamed, so a crash mid-write leaves the previous snapshot intact.
After a crash, the daemon restores the last snapshot and replays the event
log from the alert the snapshot ends at (at-least-once: some incident events
may be emitted twice; sinks deduplicate them by incident id and version).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import msgspec
import numpy as np

from correlator.correlate.engine import Correlator
from correlator.vocab import Vocabulary

SNAPSHOT = "snapshot.npz"
_META = "snapshot.json"


class _Meta(msgspec.Struct):
    logged_rows: int
    topology: str | None
    strings: list[str]


@dataclass(frozen=True)
class Restored:
    """What a snapshot gave back."""

    logged_rows: int


def save(directory: Path, correlator: Correlator, logged_rows: int, topology: str | None) -> None:
    """Write a snapshot of ``correlator`` covering the first ``logged_rows`` logged alerts."""
    directory.mkdir(parents=True, exist_ok=True)
    arrays = correlator.export_state()
    partial = directory / (SNAPSHOT + ".tmp")
    with partial.open("wb") as out:
        np.savez(out, **arrays)
    meta = _Meta(logged_rows, topology, correlator.vocab.strings(range(len(correlator.vocab))))
    meta_partial = directory / (_META + ".tmp")
    meta_partial.write_bytes(msgspec.json.encode(meta))
    os.replace(partial, directory / SNAPSHOT)
    os.replace(meta_partial, directory / _META)


def load(directory: Path, correlator: Correlator, topology: str | None) -> Restored | None:
    """Restore the snapshot in ``directory`` into a fresh ``correlator``; None if there is none.

    A snapshot taken with another topology file is ignored (its CI numbers
    would not match); the event log then rebuilds what it can.
    """
    data_path, meta_path = directory / SNAPSHOT, directory / _META
    if not data_path.exists() or not meta_path.exists():
        return None
    meta = msgspec.json.decode(meta_path.read_bytes(), type=_Meta)
    if meta.topology != topology:
        return None
    vocab: Vocabulary = correlator.vocab
    for text in meta.strings:
        vocab.intern(text)
    with np.load(data_path, allow_pickle=True) as data:
        correlator.import_state({name: data[name] for name in data.files})
    return Restored(meta.logged_rows)
