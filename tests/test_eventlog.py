"""The event log seals full segments as Parquet, paced, and reads back what was appended."""

from __future__ import annotations

import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from correlator.eventlog import _SEAL_ROWS, EventLog, read_log
from correlator.schema import ALERT_SCHEMA, LABELS


def _alerts(n: int, first: int = 0) -> pa.Table:
    labels = pa.array(
        [[("alertname", "HostDown"), ("instance", f"h{first + i}")] for i in range(n)], LABELS
    )
    starts = pa.array(range(first, first + n), pa.int64()).cast(ALERT_SCHEMA.field("startsAt").type)
    columns = [labels, pa.nulls(n, LABELS), starts] + [
        pa.nulls(n, f.type) for f in list(ALERT_SCHEMA)[3:]
    ]
    return pa.Table.from_arrays(columns, schema=ALERT_SCHEMA)


def test_sealed_segments_hold_every_row_in_row_groups_of_the_sealing_unit(tmp_path: Path) -> None:
    log = EventLog(tmp_path, max_file_bytes=1 << 20)
    appended = [_alerts(5_000, k * 5_000) for k in range(20)]
    for table in appended:
        log.append(table)
    log.close()
    assert read_log(tmp_path).equals(pa.concat_tables(appended))
    sealed = sorted(tmp_path.glob("*.parquet"))
    assert len(sealed) > 1 and not list(tmp_path.glob("*.arrows"))
    for path in sealed:
        meta = pq.ParquetFile(path).metadata
        groups = [meta.row_group(g).num_rows for g in range(meta.num_row_groups)]
        assert max(groups) <= _SEAL_ROWS
        labels = meta.row_group(0).column(0)
        assert labels.path_in_schema == "labels.key_value.key" and not labels.is_stats_set


def test_a_rotation_hurries_the_sealing_still_at_work(tmp_path: Path) -> None:
    log = EventLog(tmp_path, max_file_bytes=64 << 20)
    log.append(_alerts(4 * _SEAL_ROWS))
    log.rotate()  # sealed in the background, paced
    log.append(_alerts(10, 4 * _SEAL_ROWS))
    started = time.perf_counter()
    log.close()  # rotates again: waits for the first sealing, which stops resting
    assert time.perf_counter() - started < 30
    assert read_log(tmp_path).num_rows == 4 * _SEAL_ROWS + 10
