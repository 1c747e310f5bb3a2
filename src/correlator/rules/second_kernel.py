"""Numba kernel of the second level's inhibit and pair rules (semantics: ``second_reference``).

One pass over a time-ordered batch decides, per alert, whether an inhibit
rule mutes it or a pair rule holds, cancels or consumes it, and lists the
alerts the pair rules inject into correlation (a held problem released at
its deadline, or the resolve a late recovery makes of a released problem).

State, all in arrays the driver owns and grows:

* inhibit sources: one entry per (rule, fingerprint) that ever matched a
  rule's ``source``, found through ``src_tab`` (keyed by rule and
  fingerprint) and chained per ``equal`` key from ``key_tab``; an entry
  holds the source's last firing time, whether it fires, and whether it
  matches the rule's target too (Alertmanager's two-sided case); a bitset of
  the ``equal`` keys that have any source (``FILTER_BITS`` bits, by the key's
  top bits) lets most targets skip the key table, whose misses cost a cache
  miss each;
* pair episodes: one per (rule, ``equal`` key), found through ``ep_tab``,
  with its state (none, held, released), since, deadline and the slot of the
  stored problem row; held episodes wait in a heap ordered by (deadline,
  episode) so releases happen in a fixed order.
"""

from __future__ import annotations

import numba
import numpy as np

from correlator.correlate.structures import table_find, table_put
from correlator.fingerprint import FNV_PRIME
from correlator.schema import FIRING

# Second-level fates, after the first level's: see ``model.SECOND_FATE_NAMES``.
PASSED, INHIBITED, HELD, PAIRED, RECOVERY = 0, 1, 2, 3, 4

# Episode states.
EP_NONE, EP_HELD, EP_RELEASED = 0, 1, 2

# Source entries.
SRC_LAST, SRC_FIRING, SRC_BOTH, SRC_NEXT, SRC_NF = range(5)
# Pair episodes.
EP_STATE, EP_SINCE, EP_DEADLINE, EP_SLOT, EP_NF = range(5)
# Counters.
C_SRC, C_EP, C_HEAP, C_SLOT, C_NF = range(5)
# Injected records: what enters correlation besides the batch's own alerts (a
# released problem, or the resolve of one), and held problems that were paired.
INJ_RELEASE, INJ_RESOLVE, INJ_PAIRED = 0, 1, 2
J_KIND, J_SLOT, J_TS, J_BEFORE, J_NF = range(5)

DONE, NEED_SRC, NEED_EP, NEED_TAB = range(4)

FILTER_SHIFT = 44
FILTER_BITS = 1 << (64 - FILTER_SHIFT)


@numba.njit(nogil=True, cache=True, inline="always")
def _filter_bit(key):
    bit = np.int64(key >> np.uint64(FILTER_SHIFT))
    return bit >> 6, np.uint64(1) << np.uint64(bit & 63)


@numba.njit(nogil=True, cache=True)
def _heap_push(heap, ctr, due, item):
    k = ctr[C_HEAP]
    ctr[C_HEAP] += 1
    heap[k, 0] = due
    heap[k, 1] = item
    while k > 0:
        parent = (k - 1) // 2
        if (heap[parent, 0], heap[parent, 1]) <= (heap[k, 0], heap[k, 1]):
            break
        for c in range(2):
            heap[parent, c], heap[k, c] = heap[k, c], heap[parent, c]
        k = parent


@numba.njit(nogil=True, cache=True)
def _heap_pop(heap, ctr):
    ctr[C_HEAP] -= 1
    last = ctr[C_HEAP]
    for c in range(2):
        heap[0, c] = heap[last, c]
    k = 0
    while True:
        left, right, smallest = 2 * k + 1, 2 * k + 2, k
        if left < last and (heap[left, 0], heap[left, 1]) < (heap[smallest, 0], heap[smallest, 1]):
            smallest = left
        if right < last and (heap[right, 0], heap[right, 1]) < (
            heap[smallest, 0],
            heap[smallest, 1],
        ):
            smallest = right
        if smallest == k:
            return
        for c in range(2):
            heap[smallest, c], heap[k, c] = heap[k, c], heap[smallest, c]
        k = smallest


@numba.njit(nogil=True, cache=True)
def release_due(until, inclusive, ep, heap, ctr, inj, n_inj, before):
    """Release every held episode whose deadline is before ``until`` (or at it, when
    ``inclusive``), in (deadline, episode) order; returns the new injection count."""
    while ctr[C_HEAP] > 0:
        due, e = heap[0, 0], heap[0, 1]
        if due > until or (due == until and not inclusive):
            break
        _heap_pop(heap, ctr)
        if ep[e, EP_STATE] != EP_HELD or ep[e, EP_DEADLINE] != due:
            continue
        ep[e, EP_STATE] = EP_RELEASED
        n_inj = _injection(inj, n_inj, INJ_RELEASE, ep[e, EP_SLOT], due, before)
    return n_inj


@numba.njit(nogil=True, cache=True, inline="always")
def _injection(inj, n_inj, kind, slot, t, before):
    inj[n_inj, J_KIND] = kind
    inj[n_inj, J_SLOT] = slot
    inj[n_inj, J_TS] = t
    inj[n_inj, J_BEFORE] = before
    return n_inj + 1


@numba.njit(nogil=True, cache=True)
def _inhibited(i, r, ts, fp, both, tgt_key, key_keys, key_vals, src, src_fp, timeout):
    head = table_find(key_keys, key_vals, tgt_key[i, r])
    e = head
    while e >= 0:
        if (
            src[e, SRC_FIRING] != 0
            and ts[i] < src[e, SRC_LAST] + timeout
            and src_fp[e] != fp[i]
            and not (both and src[e, SRC_BOTH] != 0)
        ):
            return True
        e = src[e, SRC_NEXT]
    return False


@numba.njit(nogil=True, cache=True)
def run(
    start,
    ts,
    fp,
    status,
    inhibit,
    pair,
    timeout,
    state,
    inj,
    n_inj,
    fate,
    rule,
    slot_of,
):
    """Decide alerts ``start:``; returns (position, stop code, injection count).

    ``inhibit`` is (source mask, target mask, source key, target key, entry
    key) per alert and rule; ``pair`` is (problem mask, recovery mask, key,
    within per rule). ``slot_of[i]`` is set to the store slot of each alert
    that starts an episode (the driver stores those rows).
    """
    src_mask, tgt_mask, src_key, tgt_key, entry_key = inhibit
    prob_mask, rec_mask, pair_key, within = pair
    src_keys, src_vals, key_keys, key_vals, src, src_fp, ep_keys, ep_vals, ep, heap, ctr, seen = (
        state
    )
    n_inhibit = src_mask.shape[1]
    n_pair = prob_mask.shape[1]
    for i in range(start, ts.shape[0]):
        if ctr[C_SRC] + n_inhibit >= src.shape[0]:
            return i, NEED_SRC, n_inj
        if ctr[C_EP] + n_pair >= ep.shape[0] or ctr[C_HEAP] + n_pair >= heap.shape[0]:
            return i, NEED_EP, n_inj
        if (
            2 * (ctr[C_SRC] + n_inhibit) >= min(src_keys.shape[0], key_keys.shape[0])
            or 2 * (ctr[C_EP] + n_pair) >= ep_keys.shape[0]
        ):
            return i, NEED_TAB, n_inj
        t = ts[i]
        if ctr[C_HEAP] > 0 and heap[0, 0] < t:
            n_inj = release_due(t, False, ep, heap, ctr, inj, n_inj, i)
        fate[i] = PASSED
        rule[i] = -1
        slot_of[i] = -1
        firing = status[i] == FIRING
        for r in range(n_inhibit):
            if not src_mask[i, r]:
                continue
            e = table_find(src_keys, src_vals, entry_key[i, r])
            if e < 0:
                e = ctr[C_SRC]
                ctr[C_SRC] += 1
                table_put(src_keys, src_vals, entry_key[i, r], e)
                src_fp[e] = fp[i]
                src[e, SRC_BOTH] = 1 if tgt_mask[i, r] else 0
                src[e, SRC_NEXT] = table_find(key_keys, key_vals, src_key[i, r])
                src[e, SRC_LAST] = t
                table_put(key_keys, key_vals, src_key[i, r], e)
                word, bit = _filter_bit(src_key[i, r])
                seen[word] |= bit
            src[e, SRC_FIRING] = 1 if firing else 0
            if firing:
                src[e, SRC_LAST] = t
        if firing:
            for r in range(n_inhibit):
                if not tgt_mask[i, r]:
                    continue
                word, bit = _filter_bit(tgt_key[i, r])
                if seen[word] & bit != 0 and _inhibited(
                    i, r, ts, fp, src_mask[i, r], tgt_key, key_keys, key_vals, src, src_fp, timeout
                ):
                    fate[i] = INHIBITED
                    rule[i] = r
                    break
            if fate[i] == INHIBITED:
                continue
        for r in range(n_pair):
            problem = prob_mask[i, r]
            if not (problem or rec_mask[i, r]):
                continue
            e = table_find(ep_keys, ep_vals, pair_key[i, r])
            if e < 0:
                e = ctr[C_EP]
                ctr[C_EP] += 1
                table_put(ep_keys, ep_vals, pair_key[i, r], e)
                ep[e, EP_STATE] = EP_NONE
                ep[e, EP_SLOT] = -1
            held = ep[e, EP_STATE] == EP_HELD
            released = ep[e, EP_STATE] == EP_RELEASED
            if problem and firing:
                if held:
                    fate[i], rule[i] = HELD, r
                elif not released:
                    ep[e, EP_STATE] = EP_HELD
                    ep[e, EP_SINCE] = t
                    ep[e, EP_DEADLINE] = t + within[r]
                    ep[e, EP_SLOT] = ctr[C_SLOT]
                    slot_of[i] = ctr[C_SLOT]
                    ctr[C_SLOT] += 1
                    _heap_push(heap, ctr, t + within[r], e)
                    fate[i], rule[i] = HELD, r
            elif problem:
                if held:
                    fate[i], rule[i] = PAIRED, r
                    n_inj = _injection(inj, n_inj, INJ_PAIRED, ep[e, EP_SLOT], t, i)
                ep[e, EP_STATE] = EP_NONE
            else:
                fate[i], rule[i] = (PAIRED if held else RECOVERY), r
                if held:
                    n_inj = _injection(inj, n_inj, INJ_PAIRED, ep[e, EP_SLOT], t, i)
                if released:
                    n_inj = _injection(inj, n_inj, INJ_RESOLVE, ep[e, EP_SLOT], t, i)
                ep[e, EP_STATE] = EP_NONE
            break
    return ts.shape[0], DONE, n_inj


@numba.njit(nogil=True, cache=True)
def reinsert(keys, vals, new_keys, new_vals):
    """Move a table's entries into a larger empty one."""
    for s in range(keys.shape[0]):
        if vals[s] >= 0:
            table_put(new_keys, new_vals, keys[s], vals[s])


@numba.njit(nogil=True, cache=True, inline="always")
def _mix(h, value):
    h = (h ^ value) * FNV_PRIME
    return h ^ (h >> np.uint64(29))


@numba.njit(nogil=True, cache=True)
def label_keys(seeds, values, ptr, rows):
    """Per alert ``i`` and rule ``r``, a 64-bit FNV-1a-style mix of ``seeds[r]`` and the
    label ids ``values[rows[k], i]`` for ``k`` in ``ptr[r]:ptr[r + 1]``, in that order."""
    n = values.shape[1]
    out = np.empty((n, seeds.shape[0]), dtype=np.uint64)
    for r in range(seeds.shape[0]):
        for i in range(n):
            h = seeds[r]
            for k in range(ptr[r], ptr[r + 1]):
                h = _mix(h, np.uint64(values[rows[k], i]))
            out[i, r] = h
    return out


@numba.njit(nogil=True, cache=True)
def fingerprint_keys(seeds, fingerprint):
    """Per alert ``i`` and rule ``r``, ``seeds[r]`` mixed with the alert's fingerprint."""
    out = np.empty((fingerprint.shape[0], seeds.shape[0]), dtype=np.uint64)
    for r in range(seeds.shape[0]):
        for i in range(fingerprint.shape[0]):
            out[i, r] = _mix(seeds[r], fingerprint[i])
    return out
