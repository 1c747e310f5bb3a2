"""Compiling the kernels before traffic comes, on a throwaway pipeline.

Numba compiles a kernel at its first call (or loads it from its cache),
holding the GIL meanwhile. Left to the first storm, that stalls it: on a
fresh install the state's first growth, the first incident events and the
black box's first append each cost a compile of a second or more, and even
from the cache the first calls pay for loading. ``warm_kernels`` runs a
small generated storm of the same shape through a pipeline of its own (own
vocabulary, generated topology, the caller's rules and settings) and an
event log in a temporary folder, so every kernel a storm reaches is ready;
kernels compile per argument type, not per data, so what is warmed here is
what the daemon calls. Nothing of it touches the caller's state.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from correlator.correlate.engine import CorrelationSettings
from correlator.eventlog import EventLog
from correlator.pipeline import Pipeline
from correlator.rules.model import RuleSet
from correlator.scenarios import storm, storm_table, write_cmdb
from correlator.topology import load_topology
from correlator.vocab import Vocabulary

WARM_ALERTS = 20_000
"""Alerts of the warming storm: more distinct fingerprints than the state's first capacity."""
WARM_CIS = 5_000
BATCH = 500

_warmed: set[bool] = set()  # with rules, without


def warm_kernels(rules: RuleSet | None, settings: CorrelationSettings) -> None:
    """Run every kernel a storm reaches once, in this process; later calls (with rules or
    without, as the first) return at once."""
    if (rules is not None) in _warmed:
        return
    generated = storm(WARM_ALERTS, WARM_CIS, seed=0)
    table = storm_table(generated)
    with tempfile.TemporaryDirectory(prefix="correlator-warm-") as folder:
        cmdb = Path(folder) / "cmdb.json"
        write_cmdb(generated.cmdb, cmdb)
        vocab = Vocabulary()
        pipeline = Pipeline(load_topology(cmdb), rules=rules, settings=settings, vocab=vocab)
        log = EventLog(Path(folder) / "eventlog", vocab)
        try:
            for start in range(0, table.num_rows, BATCH):
                part = table.slice(start, BATCH)
                rows = np.arange(start, start + part.num_rows, dtype=np.int64)
                batch, _ = pipeline.normalizer.normalize(part, rows)
                log.append(
                    part.drop_columns(["labels"]),
                    batch.label_ptr,
                    batch.label_key,
                    batch.label_value,
                )
                pipeline.process(batch)
            last = int(batch.ts.max()) if len(batch) else 0
            pipeline.advance(last + 86_400 * 10**9)
            pipeline.flush()
        finally:
            log.close()
    _warmed.add(rules is not None)
