"""The numba kernels of ``correlator.topology.graph`` against networkx and plain Python."""

from __future__ import annotations

import networkx as nx
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from correlator.topology import graph

# Small digraphs with self-loops, duplicate edges and cycles; up to 40 nodes so that random
# edges build nested cycles and several sweeps of the dominator algorithm.
digraphs = st.integers(min_value=0, max_value=40).flatmap(
    lambda n: st.tuples(
        st.just(n),
        st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, n - 1)), max_size=4 * n)
        if n
        else st.just([]),
    )
)


def as_csr(n: int, edges: list[tuple[int, int]]) -> tuple[np.ndarray, np.ndarray]:
    """The distinct edges of ``edges`` in CSR form, as ``compile_topology`` builds them."""
    pairs = sorted(set(edges))
    rows = np.array([u for u, _ in pairs], dtype=np.int64)
    cols = np.array([v for _, v in pairs], dtype=np.int64)
    return graph.csr(rows, cols, n)


def as_nx(n: int, edges: list[tuple[int, int]], roots: list[int] | None = None) -> nx.DiGraph:
    """The graph, plus virtual root ``n`` with an edge to each of ``roots`` if given."""
    g = nx.DiGraph(edges)
    g.add_nodes_from(range(n))
    if roots is not None:
        g.add_node(n)
        g.add_edges_from((n, v) for v in roots)
    return g


@settings(max_examples=300, deadline=None)
@given(digraphs)
def test_strong_components_agree_with_networkx(graph_: tuple[int, list[tuple[int, int]]]) -> None:
    n, edges = graph_
    ptr, idx = as_csr(n, edges)
    component, finished = graph.strong_components(ptr, idx)
    expected = sorted(sorted(c) for c in nx.strongly_connected_components(as_nx(n, edges)))
    groups: dict[int, list[int]] = {}
    for v in range(n):
        groups.setdefault(int(component[v]), []).append(v)
    assert sorted(groups.values()) == expected
    # Numbered in order of their first node.
    assert [members[0] for _, members in sorted(groups.items())] == [c[0] for c in expected]
    # ``finished``: every node once, components contiguous, each after all it reaches.
    assert sorted(finished.tolist()) == list(range(n))
    order = component[finished]
    starts = [k for k in range(n) if k == 0 or order[k] != order[k - 1]]
    assert len(starts) == len(expected)
    rank = {int(order[k]): j for j, k in enumerate(starts)}
    for u, v in edges:
        if component[u] != component[v]:
            assert rank[int(component[v])] < rank[int(component[u])]


@settings(max_examples=300, deadline=None)
@given(digraphs, st.data())
def test_immediate_dominators_agree_with_networkx(
    graph_: tuple[int, list[tuple[int, int]]], data: st.DataObject
) -> None:
    n, edges = graph_
    roots = data.draw(
        st.lists(st.integers(0, n - 1), unique=True, max_size=n) if n else st.just([])
    )
    roots.sort()
    ptr, idx = as_csr(n, edges)
    parent_ptr, parent_idx = as_csr(n, [(v, u) for u, v in edges])
    idom = graph.immediate_dominators(ptr, idx, parent_ptr, parent_idx, np.array(roots, np.int64))
    rooted = as_nx(n, edges, roots)
    expected = nx.immediate_dominators(rooted, n)
    for v in range(n):  # unreachable nodes, which compile_topology rules out, get -1
        assert idom[v] == (-1 if expected.get(v, n) == n else expected[v]), v
    assert idom.dtype == np.int32


@settings(max_examples=200, deadline=None)
@given(digraphs, st.data())
def test_bfs_depth_agrees_with_networkx(
    graph_: tuple[int, list[tuple[int, int]]], data: st.DataObject
) -> None:
    n, edges = graph_
    start = data.draw(st.lists(st.integers(0, n - 1), max_size=3) if n else st.just([]))
    ptr, idx = as_csr(n, edges)
    depth = graph.bfs_depth(ptr, idx, np.array(start, dtype=np.int64))
    rooted = as_nx(n, edges, start)
    lengths = nx.single_source_shortest_path_length(rooted, n)
    assert depth.tolist() == [lengths.get(v, 0) - 1 for v in range(n)]


def preorder_reference(parent: list[int]) -> tuple[list[int], list[int], list[int]]:
    """Depth, pre-order number and subtree end by recursion, children in node order."""
    n = len(parent)
    children: dict[int, list[int]] = {v: [] for v in [*range(n), -1]}
    for v, p in enumerate(parent):
        children[p].append(v)
    depth, tin, tout = [0] * n, [0] * n, [0] * n
    counter = 0

    def visit(v: int, d: int) -> None:
        nonlocal counter
        depth[v], tin[v] = d, counter
        counter += 1
        for c in children[v]:
            visit(c, d + 1)
        tout[v] = counter

    for top in children[-1]:
        visit(top, 0)
    return depth, tin, tout


forests = st.integers(min_value=0, max_value=60).flatmap(
    lambda n: st.permutations(range(n)).flatmap(
        # Each node's parent comes earlier in a random order (or is -1): a forest.
        lambda order: st.tuples(
            st.just(order),
            st.tuples(*(st.integers(-1, k - 1) for k in range(n))),
        )
    )
)


@settings(max_examples=200, deadline=None)
@given(forests)
def test_tree_intervals_agree_with_recursive_preorder(
    forest: tuple[list[int], tuple[int, ...]],
) -> None:
    order, picks = forest
    parent = [-1] * len(order)
    for k, pick in enumerate(picks):
        parent[order[k]] = -1 if pick < 0 else order[pick]
    depth, tin, tout = graph.tree_intervals(np.array(parent, dtype=np.int32))
    assert (depth.tolist(), tin.tolist(), tout.tolist()) == preorder_reference(parent)


@settings(max_examples=200, deadline=None)
@given(digraphs, st.data())
def test_fold_reach_gives_descendant_bits(
    graph_: tuple[int, list[tuple[int, int]]], data: st.DataObject
) -> None:
    n, edges = graph_
    marked = data.draw(
        st.lists(st.integers(0, n - 1), unique=True, max_size=n) if n else st.just([])
    )
    ptr, idx = as_csr(n, edges)
    component, finished = graph.strong_components(ptr, idx)
    reach = np.zeros((n, (len(marked) + 63) // 64), dtype=np.uint64)
    for j, v in enumerate(marked):
        reach[component[v], j // 64] |= np.uint64(1) << np.uint64(j % 64)
    graph.fold_reach(ptr, idx, component, finished, reach)
    g = as_nx(n, edges)
    for v in range(n):
        reached = nx.descendants(g, v) | {v}
        bits = {j for j in range(len(marked)) if int(reach[component[v], j // 64]) >> (j % 64) & 1}
        assert bits == {j for j, m in enumerate(marked) if m in reached}


def test_long_chain_with_a_cycle_needs_no_recursion() -> None:
    # 0 → 1 → ... → n-1, and n-1 → n-2: deep enough to break any recursive DFS.
    n = 50_000
    edges = [(v, v + 1) for v in range(n - 1)] + [(n - 1, n - 2)]
    ptr, idx = as_csr(n, edges)
    parent_ptr, parent_idx = as_csr(n, [(v, u) for u, v in edges])
    component, _ = graph.strong_components(ptr, idx)
    assert component[n - 1] == component[n - 2] == n - 2
    idom = graph.immediate_dominators(ptr, idx, parent_ptr, parent_idx, np.array([0]))
    assert idom.tolist() == [-1, *range(n - 1)]
    depth, tin, tout = graph.tree_intervals(idom)
    assert depth.tolist() == tin.tolist() == list(range(n))
    assert (tout == n).all()
    assert graph.bfs_depth(ptr, idx, np.array([0])).tolist() == list(range(n))


keys = st.lists(st.sampled_from(["a", "b", "", " a", "hôte-1", "交换机", "\x00", "ab", "\ud800"]))


@settings(max_examples=200, deadline=None)
@given(keys, keys)
def test_key_index_finds_the_first_equal_key(stored: list[str], queries: list[str]) -> None:
    index = graph.KeyIndex(stored)
    first: dict[str, int] = {}
    for i, key in enumerate(stored):
        first.setdefault(key, i)
    assert index.first.tolist() == [first[key] for key in stored]
    assert index.find(queries).tolist() == [first.get(q, -1) for q in queries]


def test_key_index_at_scale() -> None:
    stored = [f"host-{i}" for i in range(200_000)] + ["host-7"]
    index = graph.KeyIndex(stored)
    assert index.first[-1] == 7 and (index.first[:-1] == np.arange(200_000)).all()
    found = index.find(["host-199999", "host-200000", "host-0"])
    assert found.tolist() == [199_999, -1, 0]
