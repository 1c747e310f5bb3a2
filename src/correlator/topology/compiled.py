"""The compiled topology: a validated CMDB as the arrays the correlation kernels read.

``compile_topology`` turns the impact edges of a ``Cmdb`` (u→v: "a failure of u can take v
down") into numpy arrays indexed by CI index, in CMDB order:

* the impact graph in CSR form, both ways (``child_ptr``/``child_idx``, ``parent_ptr``/
  ``parent_idx``), without duplicate edges or self-loops;
* ``depth``, the BFS distance from a virtual root;
* the dominator tree of the impact graph from that root (``idom``, ``dom_depth``) and its
  pre-order intervals (``tin``, ``tout``, ``euler_order``), so "x explains y" is two integer
  comparisons;
* per strongly connected component, a bitset of the business services it reaches.

The virtual root has an edge to every CI of every *source* strongly connected component (one
no impact edge enters from outside): each CI without impact parents, and each CI of a cycle
nothing else feeds. Every CI is therefore reachable from the root, and x *dominates* y when
every impact path from the root to y passes through x: when x fails, y is certainly down.

Every per-level loop is vectorized over the whole level (BFS frontier, tree level, or
topological level of the condensation), so the cost is linear in the size of the graph plus
a small numpy overhead per level; networkx computes the strongly connected components and
the immediate dominators.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any

import networkx as nx
import numpy as np

from correlator.topology.cmdb import Cmdb, format_preview, load_cmdb

DEFAULT_BUSINESS_SERVICE_TYPES: frozenset[str] = frozenset({"business_service", "cmdb_ci_service"})
"""CI types that count as business services unless the caller names others."""

_PORT = re.compile(r":\d+$")
_CYCLE_PREVIEW = 10


@dataclass(frozen=True, eq=False, repr=False)
class Topology:
    """A CMDB compiled for the correlation engine; arrays are read-only.

    CIs are numbered 0..n_cis-1 in CMDB order. The impact graph is in CSR form: the impact
    children of CI i are ``child_idx[child_ptr[i]:child_ptr[i + 1]]``, its parents
    ``parent_idx[parent_ptr[i]:parent_ptr[i + 1]]``, both in increasing order.

    ``depth`` is the BFS distance from the virtual root (0 for its children); ``idom`` the
    immediate dominator (-1 for the virtual root) and ``dom_depth`` the depth in the dominator
    tree (0 for children of the virtual root). ``tin`` is the pre-order number of a CI in the
    dominator tree and ``tout`` the exclusive end of its subtree, so x dominates y (x == y
    included) iff ``tin[x] <= tin[y] < tout[x]``, and ``euler_order[tin[x]:tout[x]]`` are the
    CIs x dominates. ``is_business_service`` marks CIs whose type is a business-service type.
    """

    n_cis: int
    ci_ids: list[str]
    ci_names: list[str]
    type_names: list[str]
    ci_type: np.ndarray
    attributes: list[dict[str, str]]
    warnings: list[str]
    child_ptr: np.ndarray
    child_idx: np.ndarray
    parent_ptr: np.ndarray
    parent_idx: np.ndarray
    depth: np.ndarray
    idom: np.ndarray
    dom_depth: np.ndarray
    tin: np.ndarray
    tout: np.ndarray
    euler_order: np.ndarray
    is_business_service: np.ndarray
    _keys: dict[str, int]
    _component: np.ndarray
    _service_reach: np.ndarray
    _service_ids: list[str]

    def __repr__(self) -> str:
        return f"Topology(n_cis={self.n_cis}, impact_edges={self.n_impact_edges})"

    @property
    def n_impact_edges(self) -> int:
        """Number of distinct impact edges (self-loops dropped)."""
        return int(self.child_idx.size)

    def lookup(self, key: str) -> int:
        """Index of the CI with id ``key``, else the first with name ``key``, else -1."""
        return self._keys.get(key, -1)

    def resolve(self, value: str) -> int:
        """``lookup(value)``, then retried without a trailing ``:<port>`` (``host-1:9100``)."""
        found = self._keys.get(value, -1)
        if found < 0 and _PORT.search(value):
            found = self._keys.get(_PORT.sub("", value), -1)
        return found

    def dominates(self, x: int, y: int) -> bool:
        """Whether every impact path to ``y`` passes through ``x`` (true when x == y)."""
        return bool(self.tin[x] <= self.tin[y] < self.tout[x])

    def dominated(self, x: int) -> np.ndarray:
        """Indices of the CIs ``x`` dominates, ``x`` first, in dominator-tree pre-order."""
        return self.euler_order[self.tin[x] : self.tout[x]]

    def reachable(self, x: int) -> np.ndarray:
        """Indices of the CIs a failure of ``x`` can reach in the impact graph, ``x`` included."""
        seen = np.zeros(self.n_cis, dtype=bool)
        frontier = np.array([x], dtype=np.int64)
        while frontier.size:
            seen[frontier] = True
            children, _ = _gather(self.child_ptr, self.child_idx, frontier)
            frontier = np.unique(children[~seen[children]])
        return np.flatnonzero(seen)

    def affected_services(self, cis: np.ndarray) -> list[str]:
        """Sorted ids of the business services impact-reachable from any of ``cis``.

        A CI that is itself a business service counts; negative entries (alerts whose CI is
        not in the CMDB) are ignored. Costs one bitset row per CI, however large the graph.
        """
        cis = np.asarray(cis, dtype=np.int64)
        rows = self._service_reach[self._component[cis[cis >= 0]]]
        words = np.bitwise_or.reduce(rows, axis=0).astype("<u8")
        bits = np.unpackbits(words.view(np.uint8), bitorder="little")
        return sorted(self._service_ids[j] for j in np.flatnonzero(bits))

    def impact(self, x: int) -> dict[str, Any]:
        """What a failure of ``x`` takes down, ``x`` itself not counted.

        ``down``: the CIs ``x`` dominates, certainly down since every path to them passes
        through ``x``. ``degraded``: CIs reachable from ``x`` that also have a path around it.
        Each is ``{"count", "by_type": {type: count}, "services": [business service ids]}``.
        """
        dominated = self.dominated(x)  # x first: pre-order
        degraded = np.zeros(self.n_cis, dtype=bool)
        degraded[self.reachable(x)] = True
        degraded[dominated] = False
        return {
            "ci": self.ci_ids[x],
            "type": self.type_names[self.ci_type[x]],
            "down": self._summary(np.sort(dominated[1:])),
            "degraded": self._summary(np.flatnonzero(degraded)),
        }

    def _summary(self, cis: np.ndarray) -> dict[str, Any]:
        """Count and types of a set of CIs, and the business services among them."""
        counts = np.bincount(self.ci_type[cis], minlength=len(self.type_names))
        return {
            "count": int(cis.size),
            "by_type": {self.type_names[t]: int(counts[t]) for t in np.flatnonzero(counts)},
            "services": sorted(self.ci_ids[i] for i in cis[self.is_business_service[cis]]),
        }


def load_topology(
    path: str | os.PathLike[str],
    relations: str | os.PathLike[str] | None = None,
    business_service_types: frozenset[str] = DEFAULT_BUSINESS_SERVICE_TYPES,
) -> Topology:
    """Load a CMDB export (see ``load_cmdb``) and compile it."""
    return compile_topology(load_cmdb(path, relations), business_service_types)


def compile_topology(
    cmdb: Cmdb, business_service_types: frozenset[str] = DEFAULT_BUSINESS_SERVICE_TYPES
) -> Topology:
    """Compile a validated CMDB into the arrays of a ``Topology``.

    Impact cycles become warnings (listing their CIs); they do not stop the compile, since
    the virtual root reaches every cycle and dominance stays well defined.
    """
    n = cmdb.n_cis
    warnings = list(cmdb.warnings)
    src, dst = cmdb.impact_src.astype(np.int64), cmdb.impact_dst.astype(np.int64)
    loops = np.unique(src[src == dst])
    warnings.extend(f"impact cycle: {cmdb.ids[i]!r} impacts itself" for i in loops)
    keep = src != dst
    src, dst = np.divmod(np.unique(src[keep] * n + dst[keep]), max(n, 1))  # no edges if n == 0
    by_parent = np.lexsort((src, dst))

    graph = nx.DiGraph()
    graph.add_nodes_from(range(n + 1))  # node n is the virtual root
    graph.add_edges_from(zip(src.tolist(), dst.tolist(), strict=True))
    component, n_components, cycles = _components(graph, n)
    for members in cycles:
        ids = format_preview((repr(cmdb.ids[i]) for i in members), len(members), _CYCLE_PREVIEW)
        warnings.append(
            f"impact cycle among {len(members)} CIs (each can take the others down): {ids}"
        )
    crossing = component[src] != component[dst]
    entered = np.zeros(n_components, dtype=bool)
    entered[component[dst[crossing]]] = True
    root_children = np.flatnonzero(~entered[component])
    graph.add_edges_from((n, v) for v in root_children.tolist())
    idom = _immediate_dominators(graph, n)

    child_ptr = _ptr(src, n)
    type_names = sorted(set(cmdb.types))
    type_index = {name: t for t, name in enumerate(type_names)}
    ci_type = np.fromiter((type_index[t] for t in cmdb.types), np.int32, n)
    service_types = [t for t, name in enumerate(type_names) if name in business_service_types]
    is_service = np.isin(ci_type, service_types)
    services = np.flatnonzero(is_service)
    dom_depth, tin, tout = _dominator_intervals(idom, n)
    euler_order = np.empty(n, dtype=np.int32)
    euler_order[tin] = np.arange(n, dtype=np.int32)
    keys = dict(zip(reversed(cmdb.names), range(n - 1, -1, -1), strict=True))
    keys.update(zip(cmdb.ids, range(n), strict=True))

    topology = Topology(
        n_cis=n,
        ci_ids=list(cmdb.ids),
        ci_names=list(cmdb.names),
        type_names=type_names,
        ci_type=ci_type,
        attributes=list(cmdb.attributes),
        warnings=warnings,
        child_ptr=child_ptr,
        child_idx=dst.astype(np.int32),
        parent_ptr=_ptr(dst[by_parent], n),
        parent_idx=src[by_parent].astype(np.int32),
        depth=_bfs_depth(child_ptr, dst, root_children, n),
        idom=idom,
        dom_depth=dom_depth,
        tin=tin,
        tout=tout,
        euler_order=euler_order,
        is_business_service=is_service,
        _keys=keys,
        _component=component,
        _service_reach=_service_reach(component, n_components, src, dst, services),
        _service_ids=[cmdb.ids[i] for i in services],
    )
    for value in vars(topology).values():
        if isinstance(value, np.ndarray):
            value.flags.writeable = False
    return topology


def _ptr(sorted_keys: np.ndarray, n: int) -> np.ndarray:
    """CSR row pointer (int64[n + 1]) of rows given by sorted row keys."""
    ptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(sorted_keys, minlength=n), out=ptr[1:])
    return ptr


def _gather(ptr: np.ndarray, idx: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Concatenated CSR rows ``rows`` (row by row) and the length of each."""
    starts = ptr[rows]
    counts = ptr[rows + 1] - starts
    offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    return idx[np.repeat(starts, counts) + offsets], counts


def _components(graph: nx.DiGraph, n: int) -> tuple[np.ndarray, int, list[list[int]]]:
    """Strongly connected components: each CI's (int32[n]), their number, and the cycles.

    Components are numbered in order of their first CI; a cycle is the sorted members of a
    component larger than one CI.
    """
    label = np.arange(n, dtype=np.int64)
    cycles = sorted(sorted(c) for c in nx.strongly_connected_components(graph) if len(c) > 1)
    for members in cycles:
        label[members] = members[0]
    unique, component = np.unique(label, return_inverse=True)
    return component.astype(np.int32), int(unique.size), cycles


def _immediate_dominators(graph: nx.DiGraph, root: int) -> np.ndarray:
    """int32[n] immediate dominator of each CI from ``root`` (-1 where it is the root)."""
    found = nx.immediate_dominators(graph, root)
    found.pop(root, None)  # networkx < 3.5 maps the start node to itself
    nodes = np.fromiter(found.keys(), np.int64, len(found))
    parents = np.fromiter(found.values(), np.int64, len(found))
    idom = np.empty(root, dtype=np.int32)
    idom[nodes] = np.where(parents == root, -1, parents)
    return idom


def _bfs_depth(ptr: np.ndarray, idx: np.ndarray, start: np.ndarray, n: int) -> np.ndarray:
    """int32[n] BFS distance from the ``start`` CIs (0) along the CSR graph."""
    depth = np.full(n, -1, dtype=np.int32)
    frontier, level = start, 0
    while frontier.size:
        depth[frontier] = level
        nxt, _ = _gather(ptr, idx, frontier)
        frontier, level = np.unique(nxt[depth[nxt] < 0]), level + 1
    return depth


def _dominator_intervals(idom: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Depth, pre-order number and exclusive subtree end of each CI in the dominator tree.

    Iterative by tree level: subtree sizes are summed bottom-up, then a child's pre-order
    number is its parent's plus one plus the sizes of its earlier siblings. Children of a
    node are visited in CI order, the virtual root's children numbered from 0.
    """
    parent = np.where(idom < 0, n, idom).astype(np.int64)
    tree_idx = np.argsort(parent, kind="stable")
    tree_ptr = _ptr(parent[tree_idx], n + 1)
    levels = [tree_idx[tree_ptr[n] : tree_ptr[n + 1]]]
    while levels[-1].size:
        levels.append(_gather(tree_ptr, tree_idx, levels[-1])[0])
    levels.pop()

    dom_depth = np.empty(n, dtype=np.int32)
    size = np.ones(n + 1, dtype=np.int64)
    for depth, level in enumerate(levels):
        dom_depth[level] = depth
    for level in reversed(levels):
        np.add.at(size, parent[level], size[level])

    tin = np.empty(n + 1, dtype=np.int64)
    tin[n] = -1  # so the root's first child gets pre-order number 0
    for level in levels:
        # ``level`` lists siblings contiguously; offset each by its earlier siblings' sizes.
        before = np.cumsum(size[level]) - size[level]
        first = np.r_[True, parent[level][1:] != parent[level][:-1]]
        group_start = np.maximum.accumulate(np.where(first, np.arange(level.size), 0))
        tin[level] = tin[parent[level]] + 1 + before - before[group_start]
    return dom_depth, tin[:n].astype(np.int32), (tin[:n] + size[:n]).astype(np.int32)


def _service_reach(
    component: np.ndarray, n_components: int, src: np.ndarray, dst: np.ndarray, services: np.ndarray
) -> np.ndarray:
    """Bitsets of the business services each strongly connected component reaches.

    Row c of the uint64[n_components, words] result has bit j set when ``services[j]`` is
    impact-reachable from component c (or in it). The rows are propagated over the
    condensation DAG from its sinks upwards, a topological level at a time: a component's
    row is final once every child's row has been OR-ed into it.
    """
    bit = np.arange(services.size)
    reach = np.zeros((n_components, (services.size + 63) // 64), dtype=np.uint64)
    one_bits = np.left_shift(np.uint64(1), (bit % 64).astype(np.uint64))
    np.bitwise_or.at(reach, (component[services], bit // 64), one_bits)
    if not services.size:
        return reach
    child, parent = np.divmod(
        np.unique(component[dst] * np.int64(n_components) + component[src]), n_components
    )
    crossing = child != parent
    child, parent = child[crossing], parent[crossing]
    parent_ptr = _ptr(child, n_components)
    pending = np.bincount(parent, minlength=n_components)
    ready = np.flatnonzero(pending == 0)
    while ready.size:
        parents, counts = _gather(parent_ptr, parent, ready)
        np.bitwise_or.at(reach, parents, reach[np.repeat(ready, counts)])
        np.subtract.at(pending, parents, 1)
        ready = np.unique(parents[pending[parents] == 0])
    return reach
