"""The topology: a CMDB export loaded, validated and compiled for the correlation engine.

``load_cmdb`` reads a JSON, ServiceNow CSV pair or GraphML export into a validated ``Cmdb``;
``compile_topology`` (or ``load_topology`` for both steps) builds the ``Topology`` arrays the
kernels read: the impact graph, its dominator tree and pre-order intervals, and the business
services each CI can reach. ``check_report`` and ``explain_report`` give the CLI's text.
"""

from __future__ import annotations

from correlator.topology.cmdb import (
    FORWARD,
    RELATION_DIRECTIONS,
    REVERSE,
    Cmdb,
    load_cmdb,
    relation_direction,
)
from correlator.topology.compiled import (
    DEFAULT_BUSINESS_SERVICE_TYPES,
    Topology,
    compile_topology,
    load_topology,
)
from correlator.topology.report import check_report, explain_report

__all__ = [
    "DEFAULT_BUSINESS_SERVICE_TYPES",
    "FORWARD",
    "RELATION_DIRECTIONS",
    "REVERSE",
    "Cmdb",
    "Topology",
    "check_report",
    "compile_topology",
    "explain_report",
    "load_cmdb",
    "load_topology",
    "relation_direction",
]
