"""Numba kernels over flat arrays for loading and compiling the topology.

A graph of ``n`` nodes is a CSR pair: the successors of node v are
``idx[ptr[v]:ptr[v + 1]]``. Every kernel is iterative (explicit stacks and queues sized
from ``n``), so a 1,000,000-CI chain needs no recursion, and linear or near-linear in the
size of the graph; none allocates per-node Python objects, which is what made the networkx
compile of a 1,000,000-CI CMDB slow (graph dicts, then millions of objects for the
collector to walk). ``KeyIndex`` resolves relation endpoints to CI indices the same way,
from strings packed into one byte buffer.

Each kernel has a plain reference the tests compare it with on random inputs:
``strong_components`` ↔ ``networkx.strongly_connected_components``,
``immediate_dominators`` ↔ ``networkx.immediate_dominators``, ``bfs_depth`` ↔
``networkx.single_source_shortest_path_length``, ``tree_intervals`` ↔ a recursive
pre-order, ``fold_reach`` ↔ ``networkx.descendants``, ``KeyIndex`` ↔ a dict. The kernels
are plain Python under ``NUMBA_DISABLE_JIT=1``, so the suite also runs them uncompiled.
"""

from __future__ import annotations

import numba
import numpy as np


def csr(rows: np.ndarray, cols: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """CSR form (int64[n + 1] pointer, int32 indices) of the edges ``rows[k] → cols[k]``.

    The sort is stable, so each row keeps its columns in the given order.
    """
    order = np.argsort(rows, kind="stable")
    ptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=n), out=ptr[1:])
    return ptr, cols[order].astype(np.int32)


@numba.njit(nogil=True, cache=True)
def strong_components(ptr, idx):
    """Tarjan's strongly connected components.

    Returns ``(component, finished)``: ``component`` (int32[n]) numbers the components in
    order of their first (lowest) node; ``finished`` (int32[n]) lists the nodes component
    by component in the order Tarjan completes them. That order is a reverse topological
    order of the condensation: every component comes after all the components it reaches,
    so a pass over ``finished`` can fold reachability bottom-up.
    """
    n = ptr.shape[0] - 1
    index = np.full(n, -1, dtype=np.int64)  # discovery number
    low = np.empty(n, dtype=np.int64)
    on_stack = np.zeros(n, dtype=np.bool_)
    stack = np.empty(n, dtype=np.int64)  # Tarjan's stack of open nodes
    call = np.empty(n, dtype=np.int64)  # DFS path: node and its next edge
    edge = np.empty(n, dtype=np.int64)
    found = np.empty(n, dtype=np.int64)  # component, in completion order
    finished = np.empty(n, dtype=np.int32)
    counter = 0
    top = 0
    done = 0
    n_found = 0
    for s in range(n):
        if index[s] >= 0:
            continue
        index[s] = counter
        low[s] = counter
        counter += 1
        stack[top] = s
        top += 1
        on_stack[s] = True
        depth = 0
        call[0] = s
        edge[0] = ptr[s]
        while depth >= 0:
            v = call[depth]
            e = edge[depth]
            if e < ptr[v + 1]:
                edge[depth] = e + 1
                w = idx[e]
                if index[w] < 0:
                    index[w] = counter
                    low[w] = counter
                    counter += 1
                    stack[top] = w
                    top += 1
                    on_stack[w] = True
                    depth += 1
                    call[depth] = w
                    edge[depth] = ptr[w]
                elif on_stack[w]:
                    low[v] = min(low[v], index[w])
                continue
            if low[v] == index[v]:  # v is the first node of a component: pop it
                while True:
                    top -= 1
                    w = stack[top]
                    on_stack[w] = False
                    found[w] = n_found
                    finished[done] = w
                    done += 1
                    if w == v:
                        break
                n_found += 1
            depth -= 1
            if depth >= 0:
                u = call[depth]
                low[u] = min(low[u], low[v])
    number = np.full(n_found, -1, dtype=np.int64)
    component = np.empty(n, dtype=np.int32)
    next_number = 0
    for v in range(n):
        c = found[v]
        if number[c] < 0:
            number[c] = next_number
            next_number += 1
        component[v] = number[c]
    return component, finished


@numba.njit(nogil=True, cache=True)
def immediate_dominators(child_ptr, child_idx, parent_ptr, parent_idx, root_children):
    """Immediate dominators from a virtual root with an edge to each of ``root_children``.

    Cooper, Harvey and Kennedy, "A Simple, Fast Dominance Algorithm" (2001): number the
    nodes in post-order of a DFS from the root, then sweep them in reverse post-order,
    setting each node's dominator to the meet of its processed predecessors' (walking up
    the current tree by post-order number), until a sweep changes nothing. An acyclic
    graph settles in one sweep plus the one that confirms it. networkx uses the same
    algorithm; the result is unique, so the DFS order does not show in it.

    Returns int32[n]: the immediate dominator of each node, -1 where it is the virtual
    root (and for a node the root does not reach, which the caller rules out).
    """
    n = child_ptr.shape[0] - 1
    root = n
    from_root = np.zeros(n + 1, dtype=np.bool_)
    for v in root_children:
        from_root[v] = True
    post = np.full(n + 1, -1, dtype=np.int64)  # post-order number
    by_post = np.empty(n + 1, dtype=np.int64)
    seen = np.zeros(n + 1, dtype=np.bool_)
    call = np.empty(n + 1, dtype=np.int64)
    edge = np.empty(n + 1, dtype=np.int64)
    n_post = 0
    for s in root_children:  # the root's DFS, one child subtree at a time
        if seen[s]:
            continue
        seen[s] = True
        depth = 0
        call[0] = s
        edge[0] = child_ptr[s]
        while depth >= 0:
            v = call[depth]
            e = edge[depth]
            if e < child_ptr[v + 1]:
                edge[depth] = e + 1
                w = child_idx[e]
                if not seen[w]:
                    seen[w] = True
                    depth += 1
                    call[depth] = w
                    edge[depth] = child_ptr[w]
                continue
            post[v] = n_post
            by_post[n_post] = v
            n_post += 1
            depth -= 1
    post[root] = n_post
    dom = np.full(n + 1, -1, dtype=np.int64)
    dom[root] = root
    changed = True
    while changed:
        changed = False
        for j in range(n_post - 1, -1, -1):  # reverse post-order, the root excluded
            b = by_post[j]
            new = root if from_root[b] else -1
            for k in range(parent_ptr[b], parent_ptr[b + 1]):
                p = parent_idx[k]
                if dom[p] < 0:  # not processed yet in this sweep order
                    continue
                if new < 0:
                    new = p
                    continue
                x = p
                while x != new:  # meet of x and new in the current dominator tree
                    while post[x] < post[new]:
                        x = dom[x]
                    while post[new] < post[x]:
                        new = dom[new]
            if dom[b] != new:
                dom[b] = new
                changed = True
    idom = np.empty(n, dtype=np.int32)
    for v in range(n):
        idom[v] = -1 if dom[v] == root else dom[v]
    return idom


@numba.njit(nogil=True, cache=True)
def bfs_depth(ptr, idx, start):
    """int32[n] BFS distance from the ``start`` nodes (0), -1 where none reaches."""
    n = ptr.shape[0] - 1
    depth = np.full(n, -1, dtype=np.int32)
    queue = np.empty(n, dtype=np.int64)
    tail = 0
    for s in start:
        if depth[s] < 0:
            depth[s] = 0
            queue[tail] = s
            tail += 1
    head = 0
    while head < tail:
        v = queue[head]
        head += 1
        for e in range(ptr[v], ptr[v + 1]):
            w = idx[e]
            if depth[w] < 0:
                depth[w] = depth[v] + 1
                queue[tail] = w
                tail += 1
    return depth


@numba.njit(nogil=True, cache=True)
def tree_intervals(parent):
    """Depth, pre-order number and exclusive subtree end of each node of a forest.

    ``parent`` is int32[n], -1 for a top node (a child of the virtual root). Children are
    visited in increasing node order and top nodes numbered from 0, so x is an ancestor of
    y (or y itself) iff ``tin[x] <= tin[y] < tout[x]``. Returns three int32[n] arrays.
    """
    n = parent.shape[0]
    root = n
    ptr = np.zeros(n + 2, dtype=np.int64)  # children of each node, the root's last
    for v in range(n):
        ptr[(root if parent[v] < 0 else parent[v]) + 1] += 1
    for v in range(n + 1):
        ptr[v + 1] += ptr[v]
    fill = ptr[:-1].copy()
    children = np.empty(n, dtype=np.int64)
    for v in range(n):  # increasing v: each node's children in node order
        p = root if parent[v] < 0 else parent[v]
        children[fill[p]] = v
        fill[p] += 1
    depth = np.empty(n, dtype=np.int32)
    tin = np.empty(n, dtype=np.int32)
    tout = np.empty(n, dtype=np.int32)
    call = np.empty(n + 1, dtype=np.int64)
    edge = np.empty(n + 1, dtype=np.int64)
    call[0] = root
    edge[0] = ptr[root]
    top = 0
    counter = 0
    while top >= 0:
        v = call[top]
        e = edge[top]
        if e < ptr[v + 1]:
            edge[top] = e + 1
            c = children[e]
            tin[c] = counter
            depth[c] = top
            counter += 1
            top += 1
            call[top] = c
            edge[top] = ptr[c]
            continue
        if v != root:
            tout[v] = counter
        top -= 1
    return depth, tin, tout


@numba.njit(nogil=True, cache=True)
def fold_reach(ptr, idx, component, finished, reach):
    """OR into each component's row of ``reach`` the rows of every component it reaches.

    ``reach`` is uint64[n_components, words], each row starting with the bits of the
    component's own members; ``finished`` comes from ``strong_components``, so a
    component's row is final before any edge into it is folded. Updates ``reach`` in place.
    """
    words = reach.shape[1]
    for v in finished:
        c = component[v]
        for e in range(ptr[v], ptr[v + 1]):
            d = component[idx[e]]
            if d != c:
                for k in range(words):
                    reach[c, k] |= reach[d, k]


class KeyIndex:
    """Where each of many strings first occurs among ``keys``, found in bulk.

    The keys' UTF-8 bytes go into one buffer and an open-addressing table (FNV-1a over the
    bytes, linear probing) is built and probed by numba, so resolving the two endpoints of
    a million relations costs a few list passes rather than millions of dict probes on
    freshly decoded strings, which miss the CPU caches. ``first[i]`` is the position of the
    first key equal to ``keys[i]`` (``i`` itself unless it repeats an earlier key).
    """

    def __init__(self, keys: list[str]) -> None:
        self._data, self._offsets = _encode(keys)
        self._table, self.first = _key_table(self._data, self._offsets)

    def find(self, strings: list[str]) -> np.ndarray:
        """int64 position of the first key equal to each string, -1 where none is."""
        data, offsets = _encode(strings)
        return _find_keys(self._table, self._data, self._offsets, data, offsets)


def _encode(strings: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """The strings' UTF-8 bytes in one uint8 buffer and the int64[m + 1] offsets into it.

    One join and one encode; the offsets come from the string lengths, which are the byte
    lengths when every character is ASCII (the buffer is then exactly as long as they add
    up to); otherwise each string is measured encoded.
    """
    data = "".join(strings).encode("utf-8", "surrogatepass")
    lengths = np.fromiter(map(len, strings), np.int64, len(strings))
    if lengths.sum() != len(data):
        encoded = (s.encode("utf-8", "surrogatepass") for s in strings)
        lengths = np.fromiter(map(len, encoded), np.int64, len(strings))
    offsets = np.zeros(len(strings) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return np.frombuffer(data, dtype=np.uint8), offsets


_FNV_OFFSET = np.uint64(14695981039346656037)
_FNV_PRIME = np.uint64(1099511628211)
_MIX = np.uint64(0xFF51AFD7ED558CCD)
_MIX_SHIFT = np.uint64(33)


@numba.njit(nogil=True, cache=True)
def _slot(data, lo, hi, shift):
    """Table slot of ``data[lo:hi]``: the top bits of its FNV-1a hash, mixed.

    The mixing step (half of MurmurHash3's finalizer) spreads keys that differ only in
    their last bytes (``host-1``, ``host-2``) over the top bits; without it linear probing
    walks ten times further on such ids.
    """
    h = _FNV_OFFSET
    for k in range(lo, hi):
        h = (h ^ np.uint64(data[k])) * _FNV_PRIME
    h = (h ^ (h >> _MIX_SHIFT)) * _MIX
    return np.int64((h ^ (h >> _MIX_SHIFT)) >> shift)


@numba.njit(nogil=True, cache=True)
def _same(a, a_lo, a_hi, b, b_lo, b_hi):
    """Whether ``a[a_lo:a_hi]`` and ``b[b_lo:b_hi]`` hold the same bytes."""
    size = a_hi - a_lo
    if b_hi - b_lo != size:
        return False
    k = 0
    while k < size and a[a_lo + k] == b[b_lo + k]:
        k += 1
    return k == size


@numba.njit(nogil=True, cache=True)
def _key_table(data, offsets):
    """The table (key positions, -1 for free slots; at most half full) and each key's first."""
    m = offsets.shape[0] - 1
    bits = 1
    while (1 << bits) < 2 * m:
        bits += 1
    mask = (1 << bits) - 1
    shift = np.uint64(64 - bits)
    table = np.full(1 << bits, -1, dtype=np.int64)
    first = np.empty(m, dtype=np.int64)
    for k in range(m):
        lo = offsets[k]
        hi = offsets[k + 1]
        s = _slot(data, lo, hi, shift)
        while True:
            j = table[s]
            if j < 0:
                table[s] = k
                first[k] = k
                break
            if _same(data, offsets[j], offsets[j + 1], data, lo, hi):
                first[k] = j
                break
            s = (s + 1) & mask
    return table, first


@numba.njit(nogil=True, cache=True)
def _find_keys(table, data, offsets, q_data, q_offsets):
    """Position of the first key equal to each query string, -1 where none is."""
    mask = table.shape[0] - 1
    bits = 0
    while (1 << bits) < table.shape[0]:
        bits += 1
    shift = np.uint64(64 - bits)
    m = q_offsets.shape[0] - 1
    found = np.empty(m, dtype=np.int64)
    for k in range(m):
        lo = q_offsets[k]
        hi = q_offsets[k + 1]
        s = _slot(q_data, lo, hi, shift)
        while True:
            j = table[s]
            if j < 0 or _same(data, offsets[j], offsets[j + 1], q_data, lo, hi):
                found[k] = j
                break
            s = (s + 1) & mask
    return found
