"""Data structures of the correlation state, for numba: tables, lists, queues and a heap.

Open-addressing hash tables map 64-bit keys to row numbers; member lists are
singly linked nodes in one pool array (an incident's list only grows at its
tail, so a prefix of it is what the list was at an earlier event); timer
queues are arrays with a head and a tail; alert expiry is a binary heap
ordered by (due time, item) so equal times pop in a fixed order.
"""

from __future__ import annotations

import numba
import numpy as np

from correlator.correlate.layout import N_POOL, XQ_SIZE

_MIX = np.uint64(0x9E3779B97F4A7C15)
_EMPTY = -1


@numba.njit(nogil=True, cache=True, inline="always")
def _slot(key, mask):
    return np.int64((key * _MIX) >> np.uint64(20)) & mask


@numba.njit(nogil=True, cache=True)
def table_find(keys, vals, key):
    """The value stored under ``key`` in an open-addressing table, or -1."""
    mask = keys.shape[0] - 1
    s = _slot(key, mask)
    while vals[s] != _EMPTY:
        if keys[s] == key:
            return vals[s]
        s = (s + 1) & mask
    return _EMPTY


@numba.njit(nogil=True, cache=True)
def table_put(keys, vals, key, value):
    """Store ``value`` under ``key``; returns True when the key was new."""
    mask = keys.shape[0] - 1
    s = _slot(key, mask)
    while vals[s] != _EMPTY:
        if keys[s] == key:
            vals[s] = value
            return False
        s = (s + 1) & mask
    keys[s] = key
    vals[s] = value
    return True


@numba.njit(nogil=True, cache=True)
def table_rehash(keys, vals, new_keys, new_vals):
    """Move every entry of one table into a larger empty one."""
    for s in range(keys.shape[0]):
        if vals[s] != _EMPTY:
            table_put(new_keys, new_vals, keys[s], vals[s])


@numba.njit(nogil=True, cache=True)
def collect_after(pool, head, node, count):
    """The ``count`` values after ``node`` (from ``head`` when -1), and the last node read."""
    out = np.empty(count, dtype=np.int64)
    for k in range(count):
        node = head if node < 0 else pool[node, 1]
        out[k] = pool[node, 0]
    return out, node


@numba.njit(nogil=True, cache=True)
def append(pool, ctr, inc, j, value, head_col, tail_col, len_col):
    node = ctr[N_POOL]
    ctr[N_POOL] += 1
    pool[node, 0] = value
    pool[node, 1] = -1
    if inc[j, head_col] < 0:
        inc[j, head_col] = node
    else:
        pool[inc[j, tail_col], 1] = node
    inc[j, tail_col] = node
    inc[j, len_col] += 1


@numba.njit(nogil=True, cache=True)
def splice(pool, inc, survivor, victim, head_col, tail_col, len_col):
    if inc[victim, head_col] < 0:
        return
    if inc[survivor, head_col] < 0:
        inc[survivor, head_col] = inc[victim, head_col]
    else:
        pool[inc[survivor, tail_col], 1] = inc[victim, head_col]
    inc[survivor, tail_col] = inc[victim, tail_col]
    inc[survivor, len_col] += inc[victim, len_col]


@numba.njit(nogil=True, cache=True)
def push(queue, ctr, tail_col, due, item):
    q = ctr[tail_col]
    ctr[tail_col] += 1
    queue[q, 0] = due
    queue[q, 1] = item


@numba.njit(nogil=True, cache=True, inline="always")
def _before(heap, a, b):
    return heap[a, 0] < heap[b, 0] or (heap[a, 0] == heap[b, 0] and heap[a, 1] < heap[b, 1])


@numba.njit(nogil=True, cache=True)
def heap_push(heap, ctr, due, item):
    k = ctr[XQ_SIZE]
    ctr[XQ_SIZE] += 1
    heap[k, 0] = due
    heap[k, 1] = item
    while k > 0:
        parent = (k - 1) // 2
        if not _before(heap, k, parent):
            break
        for col in range(2):
            heap[k, col], heap[parent, col] = heap[parent, col], heap[k, col]
        k = parent


@numba.njit(nogil=True, cache=True)
def heap_pop(heap, ctr):
    ctr[XQ_SIZE] -= 1
    size = ctr[XQ_SIZE]
    heap[0, 0] = heap[size, 0]
    heap[0, 1] = heap[size, 1]
    k = 0
    while True:
        smallest = k
        for child in (2 * k + 1, 2 * k + 2):
            if child < size and _before(heap, child, smallest):
                smallest = child
        if smallest == k:
            return
        for col in range(2):
            heap[k, col], heap[smallest, col] = heap[smallest, col], heap[k, col]
        k = smallest
