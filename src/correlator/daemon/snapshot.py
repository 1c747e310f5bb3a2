"""Snapshots of the correlation state, so a restart loses no open incident.

A snapshot is the pipeline's arrays (correlation, and the rule stages' window
state: flap and threshold counts, inhibit sources, pair episodes with their
held problems), the string vocabulary they refer to, the latest event of
each open incident (what ``/api/v1/incidents`` shows), and
how many alerts of the event log it covers. It is written to a temporary
name and renamed, so a crash mid-write leaves the previous snapshot intact.
After a crash, the daemon restores the last snapshot and replays the event
log from the alert the snapshot ends at (at-least-once: some incident events
may be emitted twice; sinks deduplicate them by incident id and version).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import msgspec
import numpy as np

from correlator.incident import IncidentEvent
from correlator.pipeline import Pipeline
from correlator.vocab import Vocabulary

SNAPSHOT = "snapshot.npz"
_META = "snapshot.json"
_META_KEY = "_meta"


class _Meta(msgspec.Struct):
    logged_rows: int
    topology: str | None
    strings: list[str]
    open_incidents: list[IncidentEvent] = []
    ci_ids: list[str] | None = None


@dataclass(frozen=True)
class Restored:
    """What a snapshot gave back."""

    logged_rows: int
    open_incidents: list[IncidentEvent] = field(default_factory=list)


def save(
    directory: Path,
    pipeline: Pipeline,
    logged_rows: int,
    topology: str | None,
    open_incidents: Sequence[IncidentEvent] = (),
) -> None:
    """Write a snapshot of ``pipeline`` covering the first ``logged_rows`` logged alerts.

    The arrays and the metadata go into one file, renamed into place: two
    files renamed one after the other could be torn by a crash between the
    renames (new arrays, old vocabulary). ``snapshot.json`` is a readable
    copy of the metadata, written after.
    """
    directory.mkdir(parents=True, exist_ok=True)
    arrays = pipeline.export_state()
    strings = pipeline.vocab.strings(range(len(pipeline.vocab)))
    ci_ids = list(pipeline.topology.ci_ids) if pipeline.topology is not None else None
    meta = msgspec.json.encode(_Meta(logged_rows, topology, strings, list(open_incidents), ci_ids))
    partial = directory / (SNAPSHOT + ".tmp")
    with partial.open("wb") as out:
        np.savez(out, **arrays, **{_META_KEY: np.frombuffer(meta, dtype=np.uint8)})
    os.replace(partial, directory / SNAPSHOT)
    meta_partial = directory / (_META + ".tmp")
    meta_partial.write_bytes(meta)
    os.replace(meta_partial, directory / _META)


@dataclass(frozen=True)
class Loaded:
    """A snapshot read from disk, not yet applied."""

    meta: _Meta
    arrays: dict[str, np.ndarray]


def read(directory: Path, topology: str | None) -> Loaded | None:
    """The snapshot in ``directory``, or None if there is none or it is for another topology.

    A snapshot taken with another topology file is ignored (its CI numbers
    would not match); the event log then rebuilds what it can.
    """
    data_path = directory / SNAPSHOT
    if not data_path.exists():
        return None
    with np.load(data_path, allow_pickle=True) as data:
        if _META_KEY in data.files:
            raw = data[_META_KEY].tobytes()
        elif (directory / _META).exists():  # written before the metadata moved into the file
            raw = (directory / _META).read_bytes()
        else:
            return None
        meta = msgspec.json.decode(raw, type=_Meta)
        if meta.topology != topology:
            return None
        arrays = {name: data[name] for name in data.files if name != _META_KEY}
    return Loaded(meta, arrays)


def restore_vocabulary(loaded: Loaded, vocab: Vocabulary) -> None:
    """Intern the snapshot's strings, in order, into a fresh vocabulary (ids then match)."""
    if len(vocab) != 1:
        msg = "a snapshot's strings must go into a fresh vocabulary"
        raise ValueError(msg)
    for text in loaded.meta.strings:
        vocab.intern(text)


def apply(loaded: Loaded, pipeline: Pipeline) -> Restored:
    """Put the snapshot's state into ``pipeline`` (whose vocabulary was restored first).

    When the topology file is the same but its content changed since (a
    reload), the state is carried over to the current CIs by id.
    """
    meta = loaded.meta
    pipeline.import_state(loaded.arrays)
    correlator = pipeline.correlator
    current = correlator.topology
    if current is not None and meta.ci_ids is not None and meta.ci_ids != list(current.ci_ids):
        correlator.retarget(current, previous_ids=meta.ci_ids)
    return Restored(meta.logged_rows, meta.open_incidents)
