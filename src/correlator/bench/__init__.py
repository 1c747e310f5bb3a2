"""Storm-replay benchmarks: ``correlator bench`` and ``benchmarks/suite.py``.

One suite, one report. :func:`~correlator.bench.suite.run_bench` runs a named
suite (``quick`` or ``full``) or replays a user's recording, and writes a
report directory: ``report.md``, ``results.json`` and PNG charts (when
matplotlib, the ``bench`` extra, is installed).

Modules, each owning one thing:

- ``suite``: the suites, the options, and the run from start to report.
- ``figures``: a figure as the median, min and max of repeated runs; failing loudly.
- ``storms``: generated storms and CMDBs, cached on disk.
- ``replayer``: a recording through the pipeline, at full speed or paced, with latencies.
- ``scaling``: throughput, latency and peak RSS against storm and topology size,
  each size in its own process.
- ``accuracy``: grouping and root-cause accuracy against generated ground truth.
- ``daemon`` / ``peer``: the real daemon and Alertmanager fed the same storm over HTTP.
- ``machine``: what the figures were measured on.
- ``report`` / ``charts`` / ``progress``: the outputs.
"""

from __future__ import annotations

from correlator.bench.figures import BenchError

__all__ = ["BenchError"]
