"""The compiled topology: dominators, intervals, service reachability, reports."""

from __future__ import annotations

import json
from pathlib import Path

import networkx as nx
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import correlator.topology as topology_package
from correlator.errors import TopologyError
from correlator.topology import (
    Cmdb,
    Topology,
    check_report,
    compile_topology,
    explain_report,
    load_topology,
)

SERVICE = "business_service"


def make_cmdb(n: int, edges: list[tuple[int, int]], types: list[str] | None = None) -> Cmdb:
    """A CMDB of CIs ``c0..c{n-1}`` with the given impact edges (u fails → v may fail)."""
    pairs = np.array(edges, dtype=np.int64).reshape(-1, 2)
    return Cmdb(
        source="test",
        ids=tuple(f"c{i}" for i in range(n)),
        types=tuple(types or ["host"] * n),
        names=tuple(f"c{i}" for i in range(n)),
        attributes=tuple({} for _ in range(n)),
        relation_count=len(edges),
        impact_src=pairs[:, 0],
        impact_dst=pairs[:, 1],
        warnings=(),
    )


def write_cmdb(path: Path, cis: list[tuple[str, str]], depends: list[tuple[str, str]]) -> Path:
    """A JSON export where each ``(a, b)`` of ``depends`` says a depends on b."""
    doc = {
        "cis": [{"id": i, "type": t} for i, t in cis],
        "relations": [{"from": a, "to": b, "type": "depends_on"} for a, b in depends],
    }
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


def network(tmp_path: Path) -> Topology:
    """Router above two switches; host-1 is dual-homed, host-2 is not."""
    cis = [
        ("core-1", "router"),
        ("sw-1", "switch"),
        ("sw-2", "switch"),
        ("host-1", "host"),
        ("host-2", "host"),
        ("svc-a", "service"),
        ("svc-b", "service"),
        ("checkout", SERVICE),
        ("search", SERVICE),
    ]
    depends = [
        ("sw-1", "core-1"),
        ("sw-2", "core-1"),
        ("host-1", "sw-1"),
        ("host-1", "sw-2"),
        ("host-2", "sw-2"),
        ("svc-a", "host-1"),
        ("svc-b", "host-2"),
        ("checkout", "svc-a"),
        ("search", "svc-b"),
    ]
    return load_topology(write_cmdb(tmp_path / "cmdb.json", cis, depends))


def with_virtual_root(n: int, edges: list[tuple[int, int]]) -> nx.DiGraph:
    """The impact graph plus root ``n`` → every CI of every source strongly connected component."""
    graph = nx.DiGraph(edges)
    graph.add_nodes_from(range(n))
    condensation = nx.condensation(graph)
    for component in condensation:
        if condensation.in_degree(component) == 0:
            graph.add_edges_from((n, v) for v in condensation.nodes[component]["members"])
    return graph


def brute_dominators(n: int, edges: list[tuple[int, int]]) -> set[tuple[int, int]]:
    """All (x, y) where removing x cuts y off the virtual root (x == y included)."""
    graph = with_virtual_root(n, edges)
    pairs = {(x, x) for x in range(n)}
    for x in range(n):
        cut = graph.copy()
        cut.remove_node(x)
        reachable = nx.descendants(cut, n)
        pairs.update((x, y) for y in range(n) if y != x and y not in reachable)
    return pairs


def test_dual_homed_host_is_dominated_by_the_router_not_a_switch(tmp_path: Path) -> None:
    topology = network(tmp_path)
    core, sw1, sw2, host1, host2 = (
        topology.lookup(k) for k in ["core-1", "sw-1", "sw-2", "host-1", "host-2"]
    )
    assert not topology.dominates(sw1, host1)
    assert not topology.dominates(sw2, host1)
    assert topology.dominates(core, host1)
    assert topology.idom[host1] == core
    assert topology.dominates(sw2, host2) and topology.idom[host2] == sw2
    assert topology.idom[core] == -1 and topology.dom_depth[core] == 0
    assert topology.depth.tolist() == [0, 1, 1, 2, 2, 3, 3, 4, 4]
    assert sorted(topology.dominated(core).tolist()) == list(range(topology.n_cis))
    assert topology.dominated(sw2)[0] == sw2


def test_dual_homed_host_under_two_routers_has_no_dominator(tmp_path: Path) -> None:
    cis = [("r1", "router"), ("r2", "router"), ("s1", "switch"), ("s2", "switch"), ("h", "host")]
    depends = [("s1", "r1"), ("s2", "r2"), ("h", "s1"), ("h", "s2")]
    topology = load_topology(write_cmdb(tmp_path / "cmdb.json", cis, depends))
    host = topology.lookup("h")
    assert topology.idom[host] == -1 and topology.dom_depth[host] == 0
    assert not any(topology.dominates(x, host) for x in range(topology.n_cis) if x != host)


def test_impact_separates_down_from_degraded(tmp_path: Path) -> None:
    topology = network(tmp_path)
    impact = topology.impact(topology.lookup("sw-2"))
    assert impact["down"] == {
        "count": 3,
        "by_type": {SERVICE: 1, "host": 1, "service": 1},
        "services": ["search"],
    }
    assert impact["degraded"] == {
        "count": 3,
        "by_type": {SERVICE: 1, "host": 1, "service": 1},
        "services": ["checkout"],
    }
    assert topology.impact(topology.lookup("search"))["down"]["count"] == 0


def test_cycles_are_warnings_and_dominators_still_compute() -> None:
    # 0 <-> 1 is a cycle nothing feeds; 2 is fed by both; 3 -> 4 -> 5 -> 3 hangs below 2.
    topology = compile_topology(
        make_cmdb(6, [(0, 1), (1, 0), (0, 2), (1, 2), (2, 3), (3, 4), (4, 5), (5, 3)])
    )
    assert (
        "impact cycle among 2 CIs (each can take the others down): 'c0', 'c1'" in topology.warnings
    )
    assert (
        "impact cycle among 3 CIs (each can take the others down): 'c3', 'c4', 'c5'"
        in topology.warnings
    )
    assert topology.idom.tolist() == [-1, -1, -1, 2, 3, 4]
    assert topology.depth.tolist() == [0, 0, 1, 2, 3, 4]
    assert topology.affected_services(np.array([0])) == []


def test_resolve_strips_a_port_and_lookup_uses_names() -> None:
    cmdb = make_cmdb(2, [(0, 1)])
    cmdb = Cmdb(**{**vars(cmdb), "names": ("web-1", "c1")})
    topology = compile_topology(cmdb)
    assert topology.resolve("c1:9100") == 1
    assert topology.resolve("c1") == topology.lookup("c1") == 1
    assert topology.resolve("web-1:443") == topology.lookup("web-1") == 0
    assert topology.lookup("c1:9100") == -1
    assert topology.resolve("c1:http") == -1
    assert topology.resolve("nope:9100") == -1


def test_compiled_arrays_are_read_only_and_typed(tmp_path: Path) -> None:
    topology = network(tmp_path)
    assert topology.child_ptr.dtype == topology.parent_ptr.dtype == np.int64
    for name in [
        "child_idx",
        "parent_idx",
        "depth",
        "idom",
        "dom_depth",
        "tin",
        "tout",
        "euler_order",
        "ci_type",
    ]:
        assert getattr(topology, name).dtype == np.int32, name
    with pytest.raises(ValueError, match="read-only"):
        topology.tin[0] = 5
    assert repr(topology) == "Topology(n_cis=9, impact_edges=9)"


def test_public_names_are_exported() -> None:
    for name in topology_package.__all__:
        assert hasattr(topology_package, name), name


def test_empty_cmdb_compiles() -> None:
    topology = compile_topology(make_cmdb(0, []))
    assert topology.n_cis == 0 and topology.child_ptr.tolist() == [0]
    assert topology.affected_services(np.array([], dtype=np.int64)) == []


graphs = st.integers(min_value=1, max_value=10).flatmap(
    lambda n: st.tuples(
        st.just(n),
        st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, n - 1)), max_size=3 * n),
    )
)


@settings(max_examples=100, deadline=None)
@given(graphs, st.booleans())
def test_intervals_agree_with_brute_force_dominance(
    graph: tuple[int, list[tuple[int, int]]], acyclic: bool
) -> None:
    n, edges = graph
    if acyclic:  # orient every edge from the smaller index: a DAG
        edges = [(min(u, v), max(u, v)) for u, v in edges if u != v]
    topology = compile_topology(make_cmdb(n, edges))
    expected = brute_dominators(n, [(u, v) for u, v in edges if u != v])
    actual = {(x, y) for x in range(n) for y in range(n) if topology.dominates(x, y)}
    assert actual == expected
    for x in range(n):
        assert set(topology.dominated(x).tolist()) == {y for (d, y) in expected if d == x}
        assert topology.euler_order[topology.tin[x]] == x
        parent = topology.idom[x]
        assert topology.dom_depth[x] == (0 if parent < 0 else topology.dom_depth[parent] + 1)
    root = with_virtual_root(n, edges)
    lengths = nx.single_source_shortest_path_length(root, n)
    assert topology.depth.tolist() == [lengths[v] - 1 for v in range(n)]
    idom = nx.immediate_dominators(root, n)
    assert topology.idom.tolist() == [-1 if idom[v] == n else idom[v] for v in range(n)]
    cycles = sorted(sorted(c) for c in nx.strongly_connected_components(root) if len(c) > 1)
    assert [w for w in topology.warnings if w.startswith("impact cycle among")] == [
        f"impact cycle among {len(c)} CIs (each can take the others down): "
        + ", ".join(f"'c{v}'" for v in c)
        for c in cycles
    ]
    for x in range(n):
        reached = nx.descendants(root, x) | {x}
        assert topology.reachable(x).tolist() == sorted(reached)
        impact = topology.impact(x)
        assert impact["down"]["count"] == len(topology.dominated(x)) - 1
        assert impact["down"]["count"] + impact["degraded"]["count"] == len(reached) - 1


def brute_services(topology: Topology, edges: list[tuple[int, int]], cis: list[int]) -> list[str]:
    graph = nx.DiGraph(edges)
    graph.add_nodes_from(range(topology.n_cis))
    reached = set(cis).union(*(nx.descendants(graph, c) for c in cis))
    return sorted(topology.ci_ids[v] for v in reached if topology.is_business_service[v])


@settings(max_examples=100, deadline=None)
@given(graphs, st.data())
def test_affected_services_equals_reachability(
    graph: tuple[int, list[tuple[int, int]]], data: st.DataObject
) -> None:
    n, edges = graph
    types = data.draw(st.lists(st.sampled_from(["host", SERVICE]), min_size=n, max_size=n))
    topology = compile_topology(make_cmdb(n, edges, types))
    cis = data.draw(st.lists(st.integers(0, n - 1), max_size=n))
    assert topology.affected_services(np.array(cis, dtype=np.int64)) == brute_services(
        topology, edges, cis
    )


def test_affected_services_beyond_one_bitset_word() -> None:
    rng = np.random.default_rng(7)
    n = 400
    edges = [(int(u), int(v)) for u, v in rng.integers(0, n, size=(700, 2)) if u < v]
    types = [SERVICE if i % 3 == 0 else "host" for i in range(n)]  # 134 services: 3 words
    topology = compile_topology(make_cmdb(n, edges, types))
    for size in (1, 5, 50):
        cis = rng.integers(0, n, size=size).tolist()
        assert topology.affected_services(np.array(cis)) == brute_services(topology, edges, cis)
    assert topology.affected_services(np.array([-1, -1])) == []


def test_check_report_success(tmp_path: Path) -> None:
    cis = [("core-1", "router"), ("sw-1", "switch"), ("h", "host"), ("lonely", "host")]
    path = write_cmdb(tmp_path / "cmdb.json", cis, [("sw-1", "core-1"), ("h", "sw-1")])
    text, ok = check_report(path)
    assert ok
    lines = text.splitlines()
    assert lines[0] == f"Checking {path}"
    assert "  SUCCESS: 4 CIs, 2 impact edges" in lines
    assert "  relations: 2 (2 distinct impact edges)" in lines
    assert "    host    2" in lines and "    router  1" in lines
    assert "  roots (depend on nothing): 2: core-1, lonely" in lines
    assert "  maximum depth: 2" in lines
    assert "  warnings: 1" in lines
    assert "    - 1 CI(s) have no relations at all: 'lonely'" in lines


def test_check_report_failure_lists_every_error(tmp_path: Path) -> None:
    cis = [("a", "host"), ("a", "host")]
    path = write_cmdb(tmp_path / "cmdb.json", cis, [("a", "b")])
    text, ok = check_report(path)
    assert not ok
    assert f"  FAILED: invalid CMDB {path}: 2 errors" in text
    assert "duplicate CI id 'a'" in text
    assert "relations[0]: to='b' is not a CI id or name" in text


def test_explain_report(tmp_path: Path) -> None:
    topology = network(tmp_path)
    text = explain_report(topology, "sw-2:9100")
    assert text.startswith("sw-2 (switch)\n  dominated by: core-1 (router)\n")
    assert "  down: 3 CIs (every impact path to them passes through sw-2)" in text
    assert "    business services down: search" in text
    assert "  degraded: 3 CIs (reachable from sw-2, but a redundant path exists)" in text
    assert "    business services degraded: checkout" in text
    leaf = explain_report(topology, "checkout")
    assert "dominated by: svc-a (service) <- host-1 (host) <- core-1 (router)" in leaf
    assert "  down: 0 CIs" in leaf
    with pytest.raises(TopologyError, match=r"unknown CI 'hots-1'.*did you mean 'host-1'"):
        explain_report(topology, "hots-1")
