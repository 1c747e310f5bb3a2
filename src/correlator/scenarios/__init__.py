"""Seeded CMDB topologies and alert-storm recordings with ground truth.

Tests, the demo and the benchmarks replay these. Everything is a pure
function of its seed and knobs: the same call gives the same bytes.

- :func:`generate_network` / :func:`network_size`: three-tier CMDB exports.
- Scenario builders (:func:`switch_failure`, :func:`router_failure`,
  :func:`overlapping_failures`, :func:`dual_homed_partial`, :func:`late_root`,
  :func:`silent_root`, :func:`link_flap`) return a :class:`Scenario`: the
  CMDB, the alerts as Alertmanager objects, and the ground truth.
- :func:`storm` builds a benchmark-sized :class:`Storm` as numpy columns;
  :func:`write_storm_parquet` writes it without per-alert objects.
- Writers: :func:`write_jsonl`, :func:`write_parquet`, :func:`write_truth`,
  :func:`write_cmdb`, :func:`write_scenario`.

Ground truth (``Scenario.truth``, written as ``NAME.truth.json``)::

    {"scenario": NAME, "seed": N,
     "causes": [{"id": "cause-1", "root_ci": "sw-3", "kind": "switch_failure",
                 "inferred": false, "fingerprints": ["<16 hex>", ...]}, ...],
     "noise": {"<16 hex>": "noise" | "informational"}}

Each cause lists the fingerprint of every alert it produced, the root's own
included; ``inferred`` is true when the root sent no alert (a silent root).
Every fingerprint of the recording is in exactly one cause or in ``noise``.
How an evaluator should score them: the alerts of one cause belong in one
incident, rooted at ``root_ci``; an ``informational`` noise alert is
expected to be dropped; every other ``noise`` alert is a cause of its own
(it should reach its own incident or notification, never one of the
failures' incidents).
"""

from __future__ import annotations

from correlator.scenarios.bulk import Storm, storm, storm_table, write_storm_parquet
from correlator.scenarios.network import generate_network, impacted, network_size
from correlator.scenarios.recording import (
    Scenario,
    alerts_table,
    read_jsonl,
    write_cmdb,
    write_jsonl,
    write_parquet,
    write_scenario,
    write_truth,
)
from correlator.scenarios.storms import (
    dual_homed_partial,
    late_root,
    link_flap,
    overlapping_failures,
    router_failure,
    silent_root,
    switch_failure,
)

__all__ = [
    "Scenario",
    "Storm",
    "alerts_table",
    "dual_homed_partial",
    "generate_network",
    "impacted",
    "late_root",
    "link_flap",
    "network_size",
    "overlapping_failures",
    "read_jsonl",
    "router_failure",
    "silent_root",
    "storm",
    "storm_table",
    "switch_failure",
    "write_cmdb",
    "write_jsonl",
    "write_parquet",
    "write_scenario",
    "write_storm_parquet",
    "write_truth",
]
