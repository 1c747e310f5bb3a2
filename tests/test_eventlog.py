"""The event log stores label strings once per segment, seals Parquet paced, and reads back
exactly what was appended, torn tails included."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from correlator import eventlog
from correlator.batch import Normalizer
from correlator.decode import CORRELATION_COLUMNS, read_recording
from correlator.eventlog import (
    _SEAL_ROWS,
    LOG_SCHEMA,
    SEAL_BACKLOG,
    EventLog,
    read_log,
    read_segment,
    segments,
)
from correlator.schema import ALERT_SCHEMA, LABELS
from correlator.vocab import Vocabulary


def _alerts(n: int, first: int = 0) -> pa.Table:
    labels = pa.array(
        [[("alertname", "HostDown"), ("instance", f"h{first + i}")] for i in range(n)], LABELS
    )
    return _table(labels, first)


def _table(labels: pa.Array, first: int = 0) -> pa.Table:
    n = len(labels)
    starts = pa.array(range(first, first + n), pa.int64()).cast(ALERT_SCHEMA.field("startsAt").type)
    columns = [labels, pa.nulls(n, LABELS), starts] + [
        pa.nulls(n, f.type) for f in list(ALERT_SCHEMA)[3:]
    ]
    return pa.Table.from_arrays(columns, schema=ALERT_SCHEMA)


def _canonical(table: pa.Table) -> pa.Table:
    """A table read from the log (label strings dictionary-encoded) as plain strings."""
    assert table.schema == LOG_SCHEMA
    return table.cast(ALERT_SCHEMA)


def _append(log: EventLog, table: pa.Table, *, sync: bool = True) -> None:
    """Log a canonical table, its labels interned into the log's vocabulary first, and
    (with ``sync``) wait until it is written."""
    ptr, keys, values = Normalizer(log.vocab).intern_labels(table.column("labels"))
    log.append(table.drop_columns(["labels"]), ptr, keys, values)
    if sync:
        log.sync()


def test_a_large_append_is_written_while_the_caller_goes_on_and_is_in_the_log_once_synced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    release = threading.Event()
    writers: list[threading.Thread] = []
    write = eventlog._write

    def held(*args: object) -> None:
        writers.append(threading.current_thread())
        release.wait(60)
        write(*args)

    monkeypatch.setattr(eventlog, "_write", held)
    monkeypatch.setattr(eventlog, "WRITE_ASIDE_ROWS", 10)
    log = EventLog(tmp_path, Vocabulary())
    _append(log, _alerts(10), sync=False)  # returns with the write still held
    assert log.rows == 0 and read_log(tmp_path).num_rows == 0
    release.set()
    log.sync()
    assert writers and threading.current_thread() not in writers
    assert log.rows == 10
    assert _canonical(read_log(tmp_path)).equals(_alerts(10))
    log.close()


def test_a_small_append_is_written_at_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    writers: list[threading.Thread] = []
    write = eventlog._write

    def noted(*args: object) -> None:
        writers.append(threading.current_thread())
        write(*args)

    monkeypatch.setattr(eventlog, "_write", noted)
    log = EventLog(tmp_path, Vocabulary())
    _append(log, _alerts(eventlog.WRITE_ASIDE_ROWS - 1), sync=False)
    assert writers == [threading.current_thread()]
    assert read_log(tmp_path).num_rows == eventlog.WRITE_ASIDE_ROWS - 1
    log.close()


@pytest.mark.parametrize("aside", [False, True], ids=["at-once", "on-the-writer-thread"])
def test_a_failed_write_is_raised_by_sync_and_the_log_goes_on_in_a_new_segment(
    aside: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The batch whose write failed is not in the log (nor counted); the rest is, and the
    segments stay numbered by their first alert."""
    if aside:
        monkeypatch.setattr(eventlog, "WRITE_ASIDE_ROWS", 1)
    write = eventlog._write
    calls: list[int] = []

    def second_fails(*args: object) -> None:
        calls.append(1)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        write(*args)

    monkeypatch.setattr(eventlog, "_write", second_fails)
    log = EventLog(tmp_path, Vocabulary())
    first, lost, third = _alerts(10), _alerts(10, 10), _alerts(10, 20)
    _append(log, first)
    with pytest.raises(OSError, match="No space left"):
        _append(log, lost)
    _append(log, third)
    assert log.rows == 20
    log.close()
    assert [p.name for p in segments(tmp_path)] == [
        "events-000000000000.parquet",
        "events-000000000010.parquet",
    ]
    assert _canonical(read_log(tmp_path)).equals(pa.concat_tables([first, third]))


def test_sealed_segments_hold_every_row_in_row_groups_of_the_sealing_unit(tmp_path: Path) -> None:
    log = EventLog(tmp_path, Vocabulary(), max_file_bytes=1 << 20)
    appended = [_alerts(5_000, k * 5_000) for k in range(20)]
    for table in appended:
        _append(log, table)
    log.close()
    assert _canonical(read_log(tmp_path)).equals(pa.concat_tables(appended))
    sealed = sorted(tmp_path.glob("*.parquet"))
    assert len(sealed) > 1 and not list(tmp_path.glob("*.arrows"))
    for path in sealed:
        meta = pq.ParquetFile(path).metadata
        groups = [meta.row_group(g).num_rows for g in range(meta.num_row_groups)]
        assert max(groups) <= _SEAL_ROWS
        labels = meta.row_group(0).column(0)
        assert labels.path_in_schema == "labels.key_value.key" and not labels.is_stats_set


def test_closing_hurries_the_sealing_still_at_work(tmp_path: Path) -> None:
    log = EventLog(tmp_path, Vocabulary(), max_file_bytes=64 << 20)
    _append(log, _alerts(4 * _SEAL_ROWS))
    log.rotate()  # sealed in the background, paced
    _append(log, _alerts(10, 4 * _SEAL_ROWS))
    started = time.perf_counter()
    log.close()  # seals the rest and waits: the first sealing stops resting
    assert time.perf_counter() - started < 30
    assert read_log(tmp_path).num_rows == 4 * _SEAL_ROWS + 10
    assert not list(tmp_path.glob("*.arrows"))


def test_closing_ends_the_sealing_thread_and_a_later_append_starts_another(
    tmp_path: Path,
) -> None:
    log = EventLog(tmp_path, Vocabulary())
    _append(log, _alerts(10))
    log.rotate()
    sealer = log._sealer
    assert sealer is not None and sealer.is_alive()
    log.close()
    assert not sealer.is_alive()
    _append(log, _alerts(10, 10))
    log.close()
    assert _canonical(read_log(tmp_path)).equals(pa.concat_tables([_alerts(10), _alerts(10, 10)]))
    assert not list(tmp_path.glob("*.arrows"))


def test_sealing_goes_on_where_lowering_its_priority_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refused(*args: object) -> None:
        raise PermissionError("setpriority refused")

    monkeypatch.setattr(os, "setpriority", refused)
    log = EventLog(tmp_path, Vocabulary())
    _append(log, _alerts(10))
    log.rotate()
    waiting = threading.Thread(target=log.wait, daemon=True)
    waiting.start()
    waiting.join(timeout=60)
    assert not waiting.is_alive(), "the sealing thread died"
    assert [p.suffix for p in sorted(tmp_path.iterdir())] == [".parquet"]
    log.close()


def test_sealed_arrival_times_are_delta_encoded_and_read_back(tmp_path: Path) -> None:
    log = EventLog(tmp_path, Vocabulary())
    table = _alerts(1_000)
    stamps = pa.array(range(10**18, 10**18 + 1_000), pa.int64()).cast(
        ALERT_SCHEMA.field("receivedAt").type
    )
    table = table.set_column(table.schema.get_field_index("receivedAt"), "receivedAt", stamps)
    _append(log, table)
    log.close()
    assert _canonical(read_log(tmp_path)).equals(table)
    (path,) = tmp_path.glob("*.parquet")
    meta = pq.ParquetFile(path).metadata.row_group(0)
    (received,) = [
        meta.column(c)
        for c in range(meta.num_columns)
        if meta.column(c).path_in_schema == "receivedAt"
    ]
    assert "DELTA_BINARY_PACKED" in received.encodings


def _held_sealing(monkeypatch: pytest.MonkeyPatch) -> tuple[threading.Event, threading.Event]:
    """Make every sealing wait until the first returned event is set; the second is set
    once a sealing waits (the sealing thread may start late on a busy machine)."""
    release, entered = threading.Event(), threading.Event()
    seal = EventLog._seal

    def held(path: Path, hurry: threading.Event | None = None) -> None:
        entered.set()
        release.wait()
        seal(path, hurry)

    monkeypatch.setattr(EventLog, "_seal", staticmethod(held))
    return release, entered


def test_rotations_wait_only_once_the_sealing_backlog_is_full(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    release, _ = _held_sealing(monkeypatch)
    log = EventLog(tmp_path, Vocabulary())
    for k in range(SEAL_BACKLOG):
        _append(log, _alerts(10, 10 * k))
        log.rotate()  # returns at once though nothing gets sealed
        assert log._hurry.is_set() == (k > 0)  # rests only while no other segment waits
    _append(log, _alerts(10, 10 * SEAL_BACKLOG))
    rotating = threading.Thread(target=log.rotate)
    rotating.start()
    rotating.join(0.5)
    assert rotating.is_alive()  # one segment too many: the loop waits for the sealing
    assert [p.suffix for p in segments(tmp_path)] == [".arrows"] * (SEAL_BACKLOG + 1)
    release.set()
    rotating.join(30)
    assert not rotating.is_alive()
    log.wait()
    assert not log._hurry.is_set()  # caught up: paced again
    log.close()
    assert [p.suffix for p in segments(tmp_path)] == [".parquet"] * (SEAL_BACKLOG + 1)
    assert read_log(tmp_path).num_rows == 10 * (SEAL_BACKLOG + 1)


def test_segments_awaiting_sealing_at_a_crash_are_read_and_sealed_on_the_next_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Never released: the process "dies" with all of them unsealed.
    _, entered = _held_sealing(monkeypatch)
    log = EventLog(tmp_path, Vocabulary())
    tables = [_alerts(10, 10 * k) for k in range(SEAL_BACKLOG)]
    for table in tables[:-1]:
        _append(log, table)
        log.rotate()
    _append(log, tables[-1])  # the open segment
    assert [p.suffix for p in segments(tmp_path)] == [".arrows"] * SEAL_BACKLOG
    assert _canonical(read_log(tmp_path)).equals(pa.concat_tables(tables))
    # Held before the patch goes: a sealing thread started late would seal for real.
    assert entered.wait(10)
    monkeypatch.undo()
    reopened = EventLog(tmp_path, Vocabulary())
    assert reopened.rows == 10 * SEAL_BACKLOG
    assert [p.suffix for p in segments(tmp_path)] == [".parquet"] * SEAL_BACKLOG
    assert _canonical(read_log(tmp_path)).equals(pa.concat_tables(tables))


def test_a_segment_that_fails_to_seal_stays_readable_and_is_sealed_on_the_next_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    seal = EventLog._seal
    failures = iter([OSError(28, "No space left on device")])

    def failing_once(path: Path, hurry: threading.Event | None = None) -> None:
        if (error := next(failures, None)) is not None:
            raise error
        seal(path, hurry)

    monkeypatch.setattr(EventLog, "_seal", staticmethod(failing_once))
    log = EventLog(tmp_path, Vocabulary())
    first, second = _alerts(10), _alerts(10, 10)
    _append(log, first)
    log.rotate()
    _append(log, second)
    log.close()  # does not wait forever for the segment that failed
    assert [p.suffix for p in segments(tmp_path)] == [".arrows", ".parquet"]
    assert "No space left on device" in caplog.text
    assert _canonical(read_log(tmp_path)).equals(pa.concat_tables([first, second]))
    monkeypatch.undo()
    assert EventLog(tmp_path, Vocabulary()).rows == 20
    assert [p.suffix for p in segments(tmp_path)] == [".parquet", ".parquet"]


def test_each_segment_names_its_own_strings_and_row_groups_store_only_theirs(
    tmp_path: Path,
) -> None:
    vocab = Vocabulary()
    vocab.intern_many([f"unused-{k}" for k in range(1_000)])  # ids no segment should carry
    log = EventLog(tmp_path, vocab)
    first = _alerts(3 * _SEAL_ROWS)
    _append(log, first)
    log.rotate()
    second = _alerts(5, 0)  # strings the first segment had: the second names them again
    _append(log, second)
    log.close()
    one, two = segments(tmp_path)
    assert _canonical(read_segment(one)).equals(first)
    assert _canonical(read_segment(two)).equals(second)
    parquet = pq.ParquetFile(one, read_dictionary=["labels.key_value.value"])
    for group in range(parquet.metadata.num_row_groups):
        column = parquet.metadata.row_group(group).column(1)
        assert column.path_in_schema == "labels.key_value.value" and column.has_dictionary_page
        values = parquet.read_row_group(group, columns=["labels"]).column(0).chunk(0).items
        assert len(values.dictionary) == len(set(values.to_pylist())) == _SEAL_ROWS + 1


def test_a_torn_stream_reads_to_its_last_whole_batch_and_is_sealed_on_the_next_start(
    tmp_path: Path,
) -> None:
    log = EventLog(tmp_path, Vocabulary())
    batches = [_alerts(100, 100 * k) for k in range(5)]  # new strings in every batch
    for table in batches:
        _append(log, table)
    (stream,) = tmp_path.glob("*.arrows")
    data = stream.read_bytes()
    stream.write_bytes(data[: len(data) - 300])  # the last batch torn, as after kill -9
    assert _canonical(read_log(tmp_path)).equals(pa.concat_tables(batches[:4]))
    reopened = EventLog(tmp_path, Vocabulary())
    assert reopened.rows == 400 and not list(tmp_path.glob("*.arrows"))
    assert _canonical(read_log(tmp_path)).equals(pa.concat_tables(batches[:4]))


def test_a_stream_sealed_after_it_was_listed_is_read_from_its_parquet(tmp_path: Path) -> None:
    log = EventLog(tmp_path, Vocabulary())
    table = _alerts(20)
    _append(log, table)
    (listed,) = segments(tmp_path)
    log.close()  # sealed: the stream is gone, the Parquet file took its place
    assert listed.suffix == ".arrows" and not listed.exists()
    assert _canonical(read_segment(listed)).equals(table)


def test_replay_reads_a_running_log_with_its_open_segment(tmp_path: Path) -> None:
    log = EventLog(tmp_path, Vocabulary())
    sealed, still_open = _alerts(30), _alerts(20, 30)
    _append(log, sealed)
    log.rotate()
    log.wait()
    _append(log, still_open)  # not sealed: the storm that just happened
    expected = pa.concat_tables([sealed, still_open])
    assert [p.suffix for p in segments(tmp_path)] == [".parquet", ".arrows"]
    assert read_recording(tmp_path).table.cast(ALERT_SCHEMA).equals(expected)
    narrow = read_recording(tmp_path, columns=CORRELATION_COLUMNS).table
    assert narrow.column("labels").to_pylist() == expected.column("labels").to_pylist()
    assert narrow.column("annotations").null_count == expected.num_rows
    assert read_log(tmp_path, after=50, columns=["startsAt"]).num_rows == 0


def test_a_folder_of_other_parquet_files_is_read_as_it_always_was(tmp_path: Path) -> None:
    table = _alerts(10)
    pq.write_table(table.select(["labels", "startsAt"]), tmp_path / "events-final.parquet")
    pq.write_table(table.select(["labels", "startsAt"]), tmp_path / "more.parquet")
    assert segments(tmp_path) == []
    read = read_recording(tmp_path).table
    assert read.num_rows == 20 and read.column("annotations").null_count == 20


def test_a_stream_of_string_labels_from_an_older_version_still_reads_and_seals(
    tmp_path: Path,
) -> None:
    table = _alerts(50)
    with pa.ipc.new_stream(str(tmp_path / "events-000000000000.arrows"), ALERT_SCHEMA) as writer:
        writer.write_table(table)
    assert _canonical(read_log(tmp_path)).equals(table)
    log = EventLog(tmp_path, Vocabulary())
    assert log.rows == 50 and _canonical(read_log(tmp_path)).equals(table)


label_sets = st.lists(
    st.dictionaries(
        st.sampled_from(["alertname", "instance", "é", ""]),
        st.text(alphabet=st.sampled_from("ab\u00e9\u4e2d\0"), max_size=4),
        max_size=4,
    ),
    min_size=1,
    max_size=30,
)


@settings(max_examples=40, deadline=None)
@given(st.lists(label_sets, min_size=1, max_size=6), st.data())
def test_what_is_appended_is_read_back_across_rotations(
    tmp_path_factory, batches: list[list[dict[str, str]]], data: st.DataObject
) -> None:
    folder = tmp_path_factory.mktemp("log")
    log = EventLog(folder, Vocabulary())
    tables = []
    for k, maps in enumerate(batches):
        table = _table(pa.array([list(m.items()) for m in maps], LABELS), 100 * k)
        _append(log, table, sync=data.draw(st.booleans(), label="sync"))
        tables.append(table)
        if data.draw(st.booleans(), label="rotate"):
            log.rotate()
    if data.draw(st.booleans(), label="seal the last segment"):
        log.close()
    else:
        log.sync()
    expected = pa.concat_tables(tables)
    assert _canonical(read_log(folder)).equals(expected)
    after = data.draw(st.integers(0, expected.num_rows), label="after")
    assert _canonical(read_log(folder, after=after)).equals(expected.slice(after))
