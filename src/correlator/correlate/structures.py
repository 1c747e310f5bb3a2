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

from correlator.correlate.layout import (
    EV_RESOLVE,
    N_POOL,
    V_CI_HEAD,
    V_CI_LEN,
    V_FP_HEAD,
    V_FP_LEN,
    V_INC,
    V_KIND,
    XQ_SIZE,
)

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
def _read_after(pool, head, node, count, out, used):
    """The ``count`` values after ``node`` (from ``head`` when -1), written to ``out`` from
    ``used`` on (grown when full); returns ``(out, used, last node read)``."""
    if used + count > out.shape[0]:
        grown = np.empty(max(2 * out.shape[0], used + count), dtype=np.int64)
        grown[:used] = out[:used]
        out = grown
    for k in range(count):
        node = head if node < 0 else pool[node, 1]
        out[used + k] = pool[node, 0]
    return out, used + count, node


@numba.njit(nogil=True, cache=True)
def collect_events(pool, events, cursors):
    """The members each event adds to its incident's lists since the incident's last event.

    ``cursors[j]`` is how far incident ``j``'s lists were read: (last fingerprint node,
    fingerprints read, last CI node, CIs read), nodes -1 before the first; a ``resolve``
    resets it, so a reopened incident is read from its head again. Returns the entity
    numbers and their ``ptr`` (event ``e`` adds ``fps[fp_ptr[e]:fp_ptr[e + 1]]``), then the
    CI numbers and theirs.
    """
    n = events.shape[0]
    fp_ptr = np.zeros(n + 1, dtype=np.int64)
    ci_ptr = np.zeros(n + 1, dtype=np.int64)
    fps = np.empty(max(16, n), dtype=np.int64)
    cis = np.empty(max(16, n), dtype=np.int64)
    n_fp = n_ci = 0
    for e in range(n):
        j = events[e, V_INC]
        fps, n_fp, cursors[j, 0] = _read_after(
            pool,
            events[e, V_FP_HEAD],
            cursors[j, 0],
            events[e, V_FP_LEN] - cursors[j, 1],
            fps,
            n_fp,
        )
        cursors[j, 1] = events[e, V_FP_LEN]
        cis, n_ci, cursors[j, 2] = _read_after(
            pool,
            events[e, V_CI_HEAD],
            cursors[j, 2],
            events[e, V_CI_LEN] - cursors[j, 3],
            cis,
            n_ci,
        )
        cursors[j, 3] = events[e, V_CI_LEN]
        if events[e, V_KIND] == EV_RESOLVE:
            cursors[j, 0] = cursors[j, 2] = -1
            cursors[j, 1] = cursors[j, 3] = 0
        fp_ptr[e + 1] = n_fp
        ci_ptr[e + 1] = n_ci
    return fps[:n_fp], fp_ptr, cis[:n_ci], ci_ptr


@numba.njit(nogil=True, cache=True)
def reach_events(events, ci_ptr, cis, component, reach, words):
    """The business-service bits each event's new CIs add to its incident's.

    ``reach[component[c]]`` are the bits of the services CI ``c`` reaches (negative
    ``c``: none); ``words[j]`` the bits incident ``j``'s events listed so far, updated
    here and cleared after a ``resolve`` (as ``collect_events`` resets its cursor).
    """
    n = events.shape[0]
    added = np.zeros((n, reach.shape[1]), dtype=np.uint64)
    for e in range(n):
        j = events[e, V_INC]
        for k in range(ci_ptr[e], ci_ptr[e + 1]):
            c = cis[k]
            if c >= 0:
                row = component[c]
                for w in range(reach.shape[1]):
                    fresh = reach[row, w] & ~words[j, w]
                    added[e, w] |= fresh
                    words[j, w] |= fresh
        if events[e, V_KIND] == EV_RESOLVE:
            words[j, :] = 0
    return added


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
def _earlier(due_a, item_a, due_b, item_b):
    return due_a < due_b or (due_a == due_b and item_a < item_b)


@numba.njit(nogil=True, cache=True)
def heap_push(heap, ctr, due, item):
    k = ctr[XQ_SIZE]
    ctr[XQ_SIZE] += 1
    while k > 0:  # move parents down into the hole until (due, item) fits
        parent = (k - 1) // 2
        if not _earlier(due, item, heap[parent, 0], heap[parent, 1]):
            break
        heap[k, 0] = heap[parent, 0]
        heap[k, 1] = heap[parent, 1]
        k = parent
    heap[k, 0] = due
    heap[k, 1] = item


@numba.njit(nogil=True, cache=True)
def heap_pop(heap, ctr):
    ctr[XQ_SIZE] -= 1
    size = ctr[XQ_SIZE]
    _replace_top(heap, size, heap[size, 0], heap[size, 1])


@numba.njit(nogil=True, cache=True)
def heap_replace_top(heap, ctr, due, item):
    """Pop the top and push ``(due, item)`` in one pass (a timer re-armed as it fires).

    Entries are distinct (due, item) pairs in a total order, so the heap pops the same
    sequence as after ``heap_pop`` and ``heap_push``.
    """
    _replace_top(heap, ctr[XQ_SIZE], due, item)


@numba.njit(nogil=True, cache=True, inline="always")
def _replace_top(heap, size, due, item):
    """Put ``(due, item)`` at the top of a heap of ``size`` entries and sift it down."""
    k = 0
    while True:  # move the earlier child up into the hole until (due, item) fits
        child = 2 * k + 1
        if child >= size:
            break
        if child + 1 < size and _earlier(
            heap[child + 1, 0], heap[child + 1, 1], heap[child, 0], heap[child, 1]
        ):
            child += 1
        if not _earlier(heap[child, 0], heap[child, 1], due, item):
            break
        heap[k, 0] = heap[child, 0]
        heap[k, 1] = heap[child, 1]
        k = child
    heap[k, 0] = due
    heap[k, 1] = item
