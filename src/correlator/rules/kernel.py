"""The first-level kernels: label columns, matching, and the per-alert stages.

Every numba function of the rules package is in this module, so numba's
cache (keyed on this file) never runs a stale copy of a function it inlines.
A batch runs in phases, each one loop over the alerts in the order given
(the driver sorts a batch by event time, ties in input order):

1. ``extract`` fills the label columns (see ``tables``).
2. ``match`` lists, per alert, the selectors of one program that hold; it
   runs for the enrich, classify and main programs in turn. Keeping the scan
   in one loop with the tables unpacked once matters: numba counts references
   to every array handed to a helper, and per alert that costs more than the
   scan itself.
3. ``enrich``: every matching enrich rule, in rule order, copies its CMDB
   attributes of the alert's CI into label columns the alert has empty, so
   the first rule to supply a label wins and the alert's own labels always win.
4. ``classify``: the first matching classify rule sets the significance;
   without one it follows the severity code.
5. ``run``, in event-time order: the first matching **drop** rule drops the
   alert; else the first matching **maintenance** rule with a window open at
   the alert's event time suppresses a firing alert; else the first matching
   **flap** rule tracks the key's status (a status unlike the key's previous
   one is a change) and holds a firing alert while more than ``changes``
   changes lie within ``within`` before it; else the first matching
   **threshold** rule counts the key's firing alerts and holds a firing alert
   until ``count`` of them lie within ``within`` before it.

Why this order: drop takes out noise before it costs anything; maintenance
comes before flap and threshold so that planned work never feeds their
windows (a reboot in a patch window is no flap, and its alerts are no first
occurrences for a threshold once the window closes); flap comes before
threshold because it reads the raw sequence of states, which threshold
(holding firing alerts back) would hide.

"Within ``w`` before ``t``" means at a time ``>= t - w``; a late alert also
counts the occurrences already seen at later times. Only drop rules stop a
resolved alert: maintenance, flap and threshold let it pass, because it
closes what opened (a resolve of something that never passed is dropped as
an orphan downstream), and it is no occurrence for threshold. Each stage's
state sees only the alerts that reached it: an alert dropped or suppressed
leaves no trace in flap or threshold state.

State lives in two arrays: an open-addressing table from a 64-bit key (a hash
of the rule and the fingerprint or ``key`` label values) to a record in a
pool, and per record the largest event times seen (changes for flap,
occurrences for threshold), sorted, at most ``changes + 1`` or ``count`` of
them. A key costs one table slot and one record, close together in memory.
That bounded set decides exactly: "at least k times >= t - w" holds iff the
k-th largest time is ``>= t - w``. A kernel that runs out of room, or meets
a label value no matcher has seen, returns the position it reached before
touching that alert and why; the driver grows the arrays or evaluates the
matchers and calls again from there.
"""

from __future__ import annotations

import numba
import numpy as np

from correlator.rules.model import BELOW_THRESHOLD, DROPPED, FLAPPING, IN_MAINTENANCE
from correlator.schema import FIRING

ZERO = np.uint64(0)
ONE = np.uint64(1)
DONE, NEED_STATE, NEED_LEARN, NEED_SPACE = 0, 1, 2, 3
DROP_STAGE, MAINTENANCE_STAGE, FLAP_STAGE, THRESHOLD_STAGE = range(4)
RECORD_HEADER = 4
FLAP_TAG, THRESHOLD_TAG = 1 << 32, 2 << 32
"""A state record's tag: its stage's tag plus the rule's index in that stage."""
_NONE = np.iinfo(np.int32).max


@numba.njit(nogil=True, cache=True, inline="always")
def _bit_index(low):
    """The index of the single set bit of ``low`` (a binary search, no loop)."""
    index = 0
    if low & np.uint64(0xFFFFFFFF) == ZERO:
        index += 32
        low >>= np.uint64(32)
    if low & np.uint64(0xFFFF) == ZERO:
        index += 16
        low >>= np.uint64(16)
    if low & np.uint64(0xFF) == ZERO:
        index += 8
        low >>= np.uint64(8)
    if low & np.uint64(0xF) == ZERO:
        index += 4
        low >>= np.uint64(4)
    if low & np.uint64(0x3) == ZERO:
        index += 2
        low >>= np.uint64(2)
    if low & ONE == ZERO:
        index += 1
    return index


@numba.njit(nogil=True, cache=True)
def extract(ptr, keys, values, ci, key_row, ci_type_row, ci_type_ids, cols):
    """Fill ``cols``: each row's label value id per alert (0 when absent), and ``ci_type``."""
    for i in range(ptr.shape[0] - 1):
        for r in range(cols.shape[0]):
            cols[r, i] = 0
        for j in range(ptr[i], ptr[i + 1]):
            k = keys[j]
            if k < key_row.shape[0] and key_row[k] >= 0:
                cols[key_row[k], i] = values[j]
        if ci_type_row >= 0 and ci[i] >= 0:
            cols[ci_type_row, i] = ci_type_ids[ci[i]]


@numba.njit(nogil=True, cache=True)
def collect_unseen(cols, start, seen, pend):
    """List the (row, id) pairs of ``cols[:, start:]`` not ``seen`` yet into ``pend``, marking
    them seen; returns how many, stopping early when ``pend`` is full (call again)."""
    found = 0
    for r in range(cols.shape[0]):
        for i in range(start, cols.shape[1]):
            v = cols[r, i]
            if seen[r, v] == 0:
                if found == pend.shape[0]:
                    return found
                seen[r, v] = 1
                pend[found, 0] = r
                pend[found, 1] = v
                found += 1
    return found


@numba.njit(nogil=True, cache=True)
def match(prog, cols, start, ptr, sel, scratch):
    """List the selectors that hold on each alert from ``start`` on: alert ``i``'s are
    ``sel[ptr[i]:ptr[i + 1]]``, unsorted, maybe repeated (``ptr[start]`` must be set).
    ``sure`` has one spare element at the end.

    Returns the position reached and ``DONE``, ``NEED_LEARN`` (a value there has no class
    yet) or ``NEED_SPACE`` (``sel`` may be too small for that alert).
    """
    label_rows, value_class, class_bits, prim_ptr, prim_words, selector, sure_ptr, sure = prog
    n_labels = label_rows.shape[0]
    for i in range(start, cols.shape[1]):
        for lab in range(n_labels):
            cls = value_class[lab, cols[label_rows[lab], i]]
            if cls < 0:
                return i, NEED_LEARN
            scratch[lab] = cls
        primary = scratch[0]
        found = ptr[i]
        first = sure_ptr[primary]
        n_sure = sure_ptr[primary + 1] - first
        if found + selector.shape[0] + n_sure + 1 > sel.shape[0]:
            return i, NEED_SPACE
        sel[found] = sure[first]  # no branch for the usual zero or one sure selector
        for k in range(1, n_sure):
            sel[found + k] = sure[first + k]
        found += n_sure
        for k in range(prim_ptr[primary], prim_ptr[primary + 1]):
            w = prim_words[k]
            acc = class_bits[0, primary, w]
            for lab in range(1, n_labels):
                acc &= class_bits[lab, scratch[lab], w]
                if acc == ZERO:
                    break
            while acc != ZERO:
                low = acc & (~acc + ONE)
                sel[found] = selector[w * 64 + _bit_index(low)]
                found += 1
                acc ^= low
        ptr[i + 1] = found
    return cols.shape[1], DONE


@numba.njit(nogil=True, cache=True)
def first_of(ptr, sel, n):
    """Per alert, its smallest listed selector, or -1."""
    first = np.full(n, -1, dtype=np.int32)
    for i in range(n):
        for k in range(ptr[i], ptr[i + 1]):
            if first[i] < 0 or sel[k] < first[i]:
                first[i] = sel[k]
    return first


@numba.njit(nogil=True, cache=True)
def mask_of(ptr, sel, n, n_selectors):
    """``mask[i, s]``: selector ``s`` is listed for alert ``i``."""
    mask = np.zeros((n, n_selectors), dtype=np.bool_)
    for i in range(n):
        for k in range(ptr[i], ptr[i + 1]):
            mask[i, sel[k]] = True
    return mask


@numba.njit(nogil=True, cache=True)
def enrich(ptr, sel, ci, rule_attr, attr_rows, values, cols, added, flags):
    """Copy the attributes of matching enrich rules (in rule order) into empty label columns;
    ``added[i]`` gets bit ``a`` for each attribute ``a`` it supplied."""
    for i in range(ci.shape[0]):
        c = ci[i]
        if c < 0 or ptr[i] == ptr[i + 1]:
            continue
        flags[:] = False
        for k in range(ptr[i], ptr[i + 1]):
            flags[sel[k]] = True
        for r in range(rule_attr.shape[0]):
            if not flags[r]:
                continue
            for a in range(rule_attr.shape[1]):
                row = attr_rows[a]
                if rule_attr[r, a] and values[a, c] != 0 and cols[row, i] == 0:
                    cols[row, i] = values[a, c]
                    added[i] |= ONE << np.uint64(a)


@numba.njit(nogil=True, cache=True)
def classify(ptr, sel, rule_sig, by_severity, severity, sig_row, sig_ids, cols, sig, by):
    """The first matching classify rule's significance, else by severity; fills the
    ``significance`` column (``sig_row``, when the rules read it)."""
    for i in range(severity.shape[0]):
        best = _NONE
        for k in range(ptr[i], ptr[i + 1]):
            best = min(best, sel[k])
        if best < _NONE:
            sig[i] = rule_sig[best]
            by[i] = best
        else:
            sig[i] = by_severity[severity[i]]
            by[i] = -1
        if sig_row >= 0:
            cols[sig_row, i] = sig_ids[sig[i]]


@numba.njit(nogil=True, cache=True, inline="always")
def mix(x):
    """The splitmix64 finalizer: a bijection on uint64 that spreads every input bit."""
    x ^= x >> np.uint64(30)
    x *= np.uint64(0xBF58476D1CE4E5B9)
    x ^= x >> np.uint64(27)
    x *= np.uint64(0x94D049BB133111EB)
    x ^= x >> np.uint64(31)
    return x


@numba.njit(nogil=True, cache=True)
def reinsert(table, keys, offsets):
    """Put ``keys`` with their record ``offsets`` into an empty table."""
    mask = table.shape[0] - 1
    for j in range(keys.shape[0]):
        s = np.int64(keys[j] & np.uint64(mask))
        while table[s, 1] != ZERO:
            s = (s + 1) & mask
        table[s, 0] = keys[j]
        table[s, 1] = np.uint64(offsets[j] + 1)


@numba.njit(nogil=True, cache=True, inline="always")
def _open(ptr, start, end, r, t):
    """Whether an interval of rule ``r`` (sorted, disjoint) contains ``t``."""
    lo, hi = ptr[r], ptr[r + 1]
    while lo < hi:
        mid = (lo + hi) // 2
        if start[mid] <= t:
            lo = mid + 1
        else:
            hi = mid
    return lo > ptr[r] and t < end[lo - 1]


@numba.njit(nogil=True, cache=True, inline="always")
def _key(rule_hash, key_ptr, key_rows, r, fingerprint, cols, i):
    """Alert ``i``'s state key under rule ``r``: by fingerprint, or by its key labels."""
    if key_ptr[r] == key_ptr[r + 1]:
        return mix(rule_hash[r] ^ fingerprint)
    key = rule_hash[r]
    for j in range(key_ptr[r], key_ptr[r + 1]):
        key = mix(key ^ np.uint64(cols[key_rows[j], i]))
    return key


@numba.njit(nogil=True, cache=True, inline="always")
def _record(table, pool, ctr, key, tag, size):
    """The offset of ``key``'s record in ``pool``, made (empty, no status) if it is new.

    A record is ``[tag, size, n, status, t_0 .. t_size-1]``: the rule's tag, how many
    times it keeps, how many it holds, the last status (-1: none yet), and the times
    held, ascending.
    """
    mask = table.shape[0] - 1
    s = np.int64(key & np.uint64(mask))
    while table[s, 1] != ZERO:
        if table[s, 0] == key:
            return np.int64(table[s, 1]) - 1
        s = (s + 1) & mask
    offset = ctr[1]
    ctr[0] += 1
    ctr[1] += RECORD_HEADER + size
    table[s, 0] = key
    table[s, 1] = np.uint64(offset + 1)
    pool[offset] = tag
    pool[offset + 1] = size
    pool[offset + 2] = 0
    pool[offset + 3] = -1
    return offset


@numba.njit(nogil=True, cache=True, inline="always")
def _add_time(pool, offset, t):
    """Add ``t`` to a record's sorted times, keeping its ``size`` largest."""
    size, n = pool[offset + 1], pool[offset + 2]
    base = offset + RECORD_HEADER
    if n < size:
        j = n
        while j > 0 and pool[base + j - 1] > t:
            pool[base + j] = pool[base + j - 1]
            j -= 1
        pool[base + j] = t
        pool[offset + 2] = n + 1
    elif t > pool[base]:
        j = 0
        while j + 1 < size and pool[base + j + 1] < t:
            pool[base + j] = pool[base + j + 1]
            j += 1
        pool[base + j] = t


@numba.njit(nogil=True, cache=True, inline="always")
def _full_within(pool, offset, t, window):
    """Whether the record holds all its times and the oldest is ``>= t - window``."""
    return pool[offset + 2] == pool[offset + 1] and pool[offset + RECORD_HEADER] >= t - window


@numba.njit(nogil=True, cache=True)
def run(
    start, ptr, sel, ts, fingerprint, status, cols, stages, windows, flap, threshold, state, out
):
    """Decide alerts ``start..`` from their main-program matches, in order.

    ``fate`` and ``rule`` must come in as passed / -1. Returns the position reached and
    ``DONE``, or ``NEED_STATE`` before an alert the state may have no room for.
    """
    main_stage, main_base = stages
    mw_ptr, mw_start, mw_end = windows
    f_hash, f_size, f_within, f_key_ptr, f_key_rows = flap
    t_hash, t_size, t_within, t_key_ptr, t_key_rows = threshold
    table, pool, ctr = state
    fate, rule = out
    room = RECORD_HEADER
    for k in range(f_size.shape[0]):
        room = max(room, RECORD_HEADER + f_size[k])
    for k in range(t_size.shape[0]):
        room = max(room, RECORD_HEADER + t_size[k])
    for i in range(start, ts.shape[0]):
        if ptr[i] == ptr[i + 1]:
            continue
        if 2 * (ctr[0] + 2) > table.shape[0] or ctr[1] + 2 * room > pool.shape[0]:
            return i, NEED_STATE
        t = ts[i]
        firing = status[i] == FIRING
        b_drop = b_maint = b_flap = b_thr = _NONE
        for k in range(ptr[i], ptr[i + 1]):
            stage = main_stage[sel[k]]
            loc = sel[k] - main_base[stage]
            if stage == DROP_STAGE:
                b_drop = min(b_drop, loc)
            elif stage == MAINTENANCE_STAGE:
                if loc < b_maint and firing and _open(mw_ptr, mw_start, mw_end, loc, t):
                    b_maint = loc
            elif stage == FLAP_STAGE:
                b_flap = min(b_flap, loc)
            else:
                b_thr = min(b_thr, loc)
        if b_drop < _NONE:
            fate[i] = DROPPED
            rule[i] = b_drop
            continue
        if b_maint < _NONE:
            fate[i] = IN_MAINTENANCE
            rule[i] = b_maint
            continue
        if b_flap < _NONE:
            f = b_flap
            key = _key(f_hash, f_key_ptr, f_key_rows, f, fingerprint[i], cols, i)
            at = _record(table, pool, ctr, key, FLAP_TAG + f, f_size[f])
            previous = pool[at + 3]
            pool[at + 3] = status[i]
            if previous >= 0 and previous != status[i]:
                _add_time(pool, at, t)
            if firing and _full_within(pool, at, t, f_within[f]):
                fate[i] = FLAPPING
                rule[i] = f
                continue
        if b_thr < _NONE and firing:
            r = b_thr
            key = _key(t_hash, t_key_ptr, t_key_rows, r, fingerprint[i], cols, i)
            at = _record(table, pool, ctr, key, THRESHOLD_TAG + r, t_size[r])
            _add_time(pool, at, t)
            if not _full_within(pool, at, t, t_within[r]):
                fate[i] = BELOW_THRESHOLD
                rule[i] = r
    return ts.shape[0], DONE


@numba.njit(nogil=True, cache=True)
def append_labels(ptr, keys, values, added, attr_names, attr_rows, cols):
    """The CSR labels with each alert's enriched labels (bits of ``added``) appended."""
    n = ptr.shape[0] - 1
    new_ptr = np.zeros(n + 1, dtype=np.int64)
    for i in range(n):
        extra = 0
        bits = added[i]
        while bits != ZERO:
            bits &= bits - ONE
            extra += 1
        new_ptr[i + 1] = new_ptr[i] + (ptr[i + 1] - ptr[i]) + extra
    new_keys = np.empty(new_ptr[n], dtype=keys.dtype)
    new_values = np.empty(new_ptr[n], dtype=values.dtype)
    for i in range(n):
        j = new_ptr[i]
        for k in range(ptr[i], ptr[i + 1]):
            new_keys[j] = keys[k]
            new_values[j] = values[k]
            j += 1
        for a in range(attr_names.shape[0]):
            if (added[i] >> np.uint64(a)) & ONE:
                new_keys[j] = attr_names[a]
                new_values[j] = cols[attr_rows[a], i]
                j += 1
    return new_ptr, new_keys, new_values
