"""Event-log benchmark: what the black box costs per alert, appended and sealed.

Reads the seeded 1,000,000-alert storm of ``replay_bench`` (generated once,
cached), interns its labels as the daemon's loop holds them, then:

- **append**: logs it in batches of 10,000, as the correlation loop does
  (labels as vocabulary ids, flushed per batch); the time is split into
  the loop's (``append``: the batch made ready) and the write's (waited
  for in ``sync``: the log's writer thread, which in the daemon writes
  while the loop correlates the batch);
- **seal**: rewrites the segment as Parquet, as the sealing thread does, its
  rests left out; the time is that thread's.

It prints both, the bytes per alert of the stream and of the Parquet
segments, and what sealing alone would take of the machine at the ingest
targets of issue 5.

    python benchmarks/eventlog_bench.py [--alerts 1000000] [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from correlator.batch import Normalizer
from correlator.eventlog import EventLog, segments
from correlator.schema import ALERT_SCHEMA
from correlator.vocab import Vocabulary

sys.path.insert(0, str(Path(__file__).resolve().parent))
from replay_bench import prepare  # the storm cache shared with replay_bench

BATCH = 10_000
RATES = (500_000, 3_000_000)


def _batches(table: pa.Table, vocab: Vocabulary) -> list[tuple[pa.Table, tuple]]:
    """The storm cut into the loop's batches: columns but labels, and labels as ids."""
    normalizer = Normalizer(vocab)
    out = []
    for start in range(0, table.num_rows, BATCH):
        part = table.slice(start, BATCH)
        labels = normalizer.intern_labels(part.column("labels"))
        out.append((part.drop_columns(["labels"]).combine_chunks(), labels))
    return out


def run(folder: Path, batches: list[tuple[pa.Table, tuple]], vocab: Vocabulary) -> dict:
    """Append every batch to one segment, then seal it (``close``: unpaced).

    One segment, so no sealing runs beside the appends; a row group is the
    sealing unit whatever the segment size, so the cost per alert is the same.
    """
    log = EventLog(folder, vocab, max_file_bytes=1 << 40, max_file_age=1e9)
    appended = written = 0.0
    for rest, (ptr, keys, values) in batches:
        started = time.perf_counter()
        log.append(rest, ptr, keys, values)
        ready = time.perf_counter()
        log.sync()
        appended += ready - started
        written += time.perf_counter() - ready
    (stream,) = segments(folder)
    stream_bytes = stream.stat().st_size
    started = time.perf_counter()
    log.close()
    sealed = time.perf_counter() - started
    (parquet,) = segments(folder)
    return {
        "append": appended,
        "write": written,
        "seal": sealed,
        "rows": pq.ParquetFile(parquet).metadata.num_rows,
        "stream_bytes": stream_bytes,
        "parquet_bytes": parquet.stat().st_size,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, default=1_000_000)
    parser.add_argument("--cis", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    recording, _ = prepare(args.alerts, args.cis, args.seed)
    table = pq.read_table(recording).cast(ALERT_SCHEMA)
    vocab = Vocabulary()
    batches = _batches(table, vocab)
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, pyarrow {pa.__version__}"
    )
    print(f"storm: {table.num_rows:,} alerts ({recording.name}), batches of {BATCH:,}")
    results = []
    for k in range(args.runs + 1):
        with tempfile.TemporaryDirectory(prefix="correlator-eventlog-") as scratch:
            result = run(Path(scratch), batches, vocab)
        n = result["rows"]
        label = "warm-up" if k == 0 else f"run {k}"
        print(
            f"  {label}: append {1e6 * result['append'] / n:.3f} us/alert, "
            f"write {1e6 * result['write'] / n:.3f} us/alert, "
            f"seal {1e6 * result['seal'] / n:.3f} us/alert; "
            f"{result['stream_bytes'] / n:.0f} B/alert as stream, "
            f"{result['parquet_bytes'] / n:.0f} B/alert as Parquet"
        )
        if k:
            results.append(result)
    append, write, seal = (
        statistics.median(1e6 * r[part] / r["rows"] for r in results)
        for part in ("append", "write", "seal")
    )
    print(f"\nmedian of {args.runs}: append {append:.3f} us/alert (the correlation loop),")
    print(f"  write {write:.3f} us/alert (the log's writer thread, beside the loop)")
    print(f"  seal {seal:.3f} us/alert (the sealing thread)")
    for rate in RATES:
        print(
            f"  at {rate:,} alerts/s: appending takes {append * rate / 1e6:.2f} cores, "
            f"writing {write * rate / 1e6:.2f}, sealing {seal * rate / 1e6:.2f}"
        )


if __name__ == "__main__":
    main()
