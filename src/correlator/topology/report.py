"""Text for ``correlator topology check`` and ``correlator topology explain``.

The CLI prints these strings as they are; the tone follows ``promtool check``: a ``Checking``
line, then ``SUCCESS`` or ``FAILED`` with the details a user acts on.
"""

from __future__ import annotations

import difflib
import os
from typing import Any

import numpy as np

from correlator.errors import TopologyError
from correlator.topology.cmdb import format_preview, load_cmdb
from correlator.topology.compiled import Topology, compile_topology

_ROOT_PREVIEW = 10
_SERVICE_PREVIEW = 20


def check_report(
    path: str | os.PathLike[str], relations: str | os.PathLike[str] | None = None
) -> tuple[str, bool]:
    """Load and compile a CMDB export; return the report and whether it is usable.

    On success the report gives CI counts by type, relations and impact edges, the roots
    (CIs that depend on nothing), the maximum depth and every warning; on failure, every
    error.
    """
    lines = [f"Checking {path}" + (f" with {relations}" if relations is not None else "")]
    try:
        cmdb = load_cmdb(path, relations)
        topology = compile_topology(cmdb)
    except TopologyError as exc:
        first, *rest = str(exc).splitlines()
        lines.append(f"  FAILED: {first}")
        lines.extend(f"  {line}" for line in rest)
        return "\n".join(lines) + "\n", False

    counts = np.bincount(topology.ci_type, minlength=len(topology.type_names))
    width = max((len(name) for name in topology.type_names), default=0)
    roots = np.flatnonzero(np.diff(topology.parent_ptr) == 0)
    max_depth = int(topology.depth.max()) if topology.n_cis else 0
    lines += [
        f"  SUCCESS: {topology.n_cis} CIs, {topology.n_impact_edges} impact edges",
        f"  relations: {cmdb.relation_count} ({topology.n_impact_edges} distinct impact edges)",
        "  CIs by type:",
        *(
            f"    {name:<{width}}  {count}"
            for name, count in zip(topology.type_names, counts, strict=True)
        ),
        f"  roots (depend on nothing): {roots.size}: "
        + format_preview((topology.ci_ids[i] for i in roots), roots.size, _ROOT_PREVIEW),
        f"  maximum depth: {max_depth}",
        f"  warnings: {len(topology.warnings)}",
        *(f"    - {warning}" for warning in topology.warnings),
    ]
    return "\n".join(lines) + "\n", True


def explain_report(topology: Topology, ci_key: str) -> str:
    """Describe what a failure of one CI takes down, for ``topology explain``.

    ``ci_key`` is resolved like an alert label (id, name, then without a ``:port``). The
    report separates CIs certainly *down* (the CI dominates them) from CIs *degraded*
    (reachable, but a redundant path around the CI exists) and names the business services
    in each. An unknown key raises ``TopologyError`` with the closest ids and names.
    """
    x = topology.resolve(ci_key)
    if x < 0:
        close = difflib.get_close_matches(ci_key, {*topology.ci_ids, *topology.ci_names}, n=3)
        hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
        raise TopologyError(f"unknown CI {ci_key!r}: not a CI id or name in the topology{hint}")
    impact = topology.impact(x)
    name = topology.ci_names[x]
    title = f"{impact['ci']} ({impact['type']}" + (f", {name!r})" if name != impact["ci"] else ")")
    chain = []
    up = int(topology.idom[x])
    while up >= 0:
        chain.append(f"{topology.ci_ids[up]} ({topology.type_names[topology.ci_type[up]]})")
        up = int(topology.idom[up])
    lines = [
        f"{title}",
        "  dominated by: " + (" <- ".join(chain) if chain else "nothing (a root of the tree)"),
        *_group(
            impact["down"],
            "down",
            f"every impact path to them passes through {impact['ci']}",
        ),
        *_group(
            impact["degraded"],
            "degraded",
            f"reachable from {impact['ci']}, but a redundant path exists",
        ),
    ]
    return "\n".join(lines) + "\n"


def _group(summary: dict[str, Any], label: str, meaning: str) -> list[str]:
    """Lines for one impact group: count, CIs by type and business services."""
    count = summary["count"]
    lines = [f"  {label}: {count} CI{'' if count == 1 else 's'} ({meaning})"]
    width = max((len(name) for name in summary["by_type"]), default=0)
    lines += [f"    {name:<{width}}  {count}" for name, count in summary["by_type"].items()]
    services = summary["services"]
    if services:
        preview = format_preview(services, len(services), _SERVICE_PREVIEW)
        lines.append(f"    business services {label}: {preview}")
    return lines
