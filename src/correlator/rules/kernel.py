"""The first-level kernels: label columns, matching, and the per-alert stages.

Every numba function of the rules package is in this module, so numba's
cache (keyed on this file) never runs a stale copy of a function it inlines.
A batch runs in two passes over the alerts in the order given (the driver
sorts a batch by event time, ties in input order):

1. ``decide``, per alert: fill its column of label ids (see ``tables``);
   **enrich**: every matching enrich rule, in rule order, copies its CMDB
   attributes of the alert's CI into labels the alert has empty, so the
   first rule to supply a label wins and the alert's own labels always win;
   **classify**: the first matching classify rule sets the significance,
   without one it follows the severity code; then the main program's
   matches: the first matching **drop** rule drops the alert, else the
   first matching **maintenance** rule with a window open at the alert's
   event time suppresses a firing alert, else an alert a flap or threshold
   rule matches is listed as *pending*. Decisions are written as selects, not
   branches: which stage decides varies from alert to alert, and mispredicted
   branches cost more than the work.
2. ``settle``, over the pending alerts in order: their state keys, then the
   first matching **flap**
   rule tracks the key's status (a status unlike the key's previous one is a
   change) and holds a firing alert while more than ``changes`` changes lie
   within ``within`` before it; else the first matching **threshold** rule
   counts the key's firing alerts and holds a firing alert until ``count``
   of them lie within ``within`` before it.

Only ``settle`` touches state, so splitting there changes no decision; it
pays because a short loop over the few pending alerts keeps many state
fetches in flight (``AHEAD``), where the long per-alert loop waited for each.

The main program's matches depend only on the class of each label it reads
(``tables``), so ``decide`` remembers the first selector per stage for each
combination of classes it meets (``memo``, indexed by the classes in mixed
radix) and scans the clause bits only for a combination it has not seen.
When no drop, maintenance, flap or threshold rule reads ``significance``, the
classify rules are folded into the main program as its last stage
(``CLASSIFY_STAGE``), so the same lookup also gives the classifying rule.

The kernels are compiled without numba's reference counting (``_nrt=False``:
they allocate nothing). With it, every array a helper touches inside the
loop was counted up and down per alert, and that cost more than the work.

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
them. A key costs one table slot and one record.
That bounded set decides exactly: "at least k times >= t - w" holds iff the
k-th largest time is ``>= t - w``. A kernel that runs out of room, or meets
a label value no matcher has seen, returns the position it reached before
touching that alert and why; the driver grows the arrays or evaluates the
matchers and calls again from there.
"""

from __future__ import annotations

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from correlator.rules.model import BELOW_THRESHOLD, DROPPED, FLAPPING, IN_MAINTENANCE, PASSED
from correlator.schema import FIRING

ZERO = np.uint64(0)
ONE = np.uint64(1)
DONE, NEED_STATE, NEED_LEARN, NEED_SPACE = 0, 1, 2, 3
DROP_STAGE, MAINTENANCE_STAGE, FLAP_STAGE, THRESHOLD_STAGE, CLASSIFY_STAGE = range(5)
STAGES = 5
"""The main program's stages: classify is one when it is folded in (see above)."""
RECORD_HEADER = 4
AHEAD = 16
"""How many pending entries ahead ``settle`` starts fetching state."""
UNKNOWN, MANY = -1, -2
"""Memo marks: a combination not seen yet; one with several maintenance rules."""
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


@numba.njit(nogil=True, cache=True, inline="always")
def _extract_one(labels, ci, i, vals):
    """Alert ``i``'s label value ids (0 when absent) and ``ci_type`` into ``vals``."""
    ptr, keys, values, key_row, ci_type_row, ci_type_ids = labels
    for r in range(vals.shape[0]):
        vals[r] = 0
    for j in range(ptr[i], ptr[i + 1]):
        k = keys[j]
        if k < key_row.shape[0] and key_row[k] >= 0:
            vals[key_row[k]] = values[j]
    if ci_type_row >= 0 and ci[i] >= 0:
        vals[ci_type_row] = ci_type_ids[ci[i]]


@numba.njit(nogil=True, cache=True, _nrt=False)
def extract(start, labels, ci, cols, vals):
    """Fill ``cols`` from alert ``start`` on (``labels`` as ``decide`` takes them)."""
    for i in range(start, ci.shape[0]):
        _extract_one(labels, ci, i, vals)
        for r in range(vals.shape[0]):
            cols[r, i] = vals[r]


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


@numba.njit(nogil=True, cache=True, inline="always")
def _scan(prog, vals, scratch, hits):
    """Put the selectors of ``prog`` that hold on an alert (its label ids in ``vals``) into
    ``hits``, unsorted, maybe repeated; returns how many, or -1 when a value it needs has
    no class yet. ``hits`` holds at least the program's clause count plus one.

    Only the primary label is read unless the primary class has clause bits, and the AND
    over the labels stops at the first empty word: most alerts stop early.
    """
    label_rows, value_class, class_bits, prim_ptr, prim_words, selector, sure_ptr, sure = prog
    primary = value_class[0, vals[label_rows[0]]]
    found = -1
    if primary >= 0:
        first = sure_ptr[primary]
        found = sure_ptr[primary + 1] - first
        hits[0] = sure[first]  # no branch for the usual zero or one sure selector
        for k in range(1, found):
            hits[k] = sure[first + k]
        if prim_ptr[primary] < prim_ptr[primary + 1]:
            for lab in range(1, label_rows.shape[0]):
                cls = value_class[lab, vals[label_rows[lab]]]
                scratch[lab] = cls
                if cls < 0:
                    found = -1
        if found >= 0:
            for k in range(prim_ptr[primary], prim_ptr[primary + 1]):
                w = prim_words[k]
                acc = class_bits[0, primary, w]
                for lab in range(1, label_rows.shape[0]):
                    acc &= class_bits[lab, scratch[lab], w]
                    if acc == ZERO:
                        break
                while acc != ZERO:
                    low = acc & (~acc + ONE)
                    hits[found] = selector[w * 64 + _bit_index(low)]
                    found += 1
                    acc ^= low
    return found


@numba.njit(nogil=True, cache=True, _nrt=False)
def match(prog, cols, start, ptr, sel, buffers):
    """List the selectors that hold on each alert from ``start`` on: alert ``i``'s are
    ``sel[ptr[i]:ptr[i + 1]]``, unsorted, maybe repeated (``ptr[start]`` must be set).
    ``buffers`` are ``MatchProgram.buffers()``.

    Returns the position reached and ``DONE``, ``NEED_LEARN`` (a value there has no class
    yet) or ``NEED_SPACE`` (``sel`` may be too small for that alert).
    """
    vals, scratch, hits = buffers
    for i in range(start, cols.shape[1]):
        found = ptr[i]
        if found + hits.shape[0] > sel.shape[0]:
            return i, NEED_SPACE
        for r in range(vals.shape[0]):
            vals[r] = cols[r, i]
        n_hits = _scan(prog, vals, scratch, hits)
        if n_hits < 0:
            return i, NEED_LEARN
        for k in range(n_hits):
            sel[found + k] = hits[k]
        ptr[i + 1] = found + n_hits
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
    """Alert ``i``'s state key under rule ``r``: by fingerprint, or by its key labels
    (its label ids in ``cols``)."""
    if key_ptr[r] == key_ptr[r + 1]:
        key = mix(rule_hash[r] ^ fingerprint)
    else:
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
    while table[s, 1] != ZERO and table[s, 0] != key:
        s = (s + 1) & mask
    if table[s, 1] != ZERO:
        offset = np.int64(table[s, 1]) - 1
    else:
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


@numba.njit(nogil=True, cache=True, inline="always")
def _classified(i, best, severity, rule_sig, by_severity, sig, by, sig_row, sig_ids, vals):
    """Set alert ``i``'s significance by classify rule ``best`` (``_NONE``: by its
    severity), in the outputs and, when rules read it, in its label column ``vals``."""
    if best < _NONE:
        sig[i] = rule_sig[best]
        by[i] = best
    else:
        sig[i] = by_severity[severity[i]]
        by[i] = -1
    if sig_row >= 0:
        vals[sig_row] = sig_ids[sig[i]]


@numba.njit(nogil=True, cache=True, _nrt=False)
def decide(start, alerts, labels, cols, vals, enrich, classify, main, out, pending):
    """Extract, enrich and classify alerts ``start..``, and decide what needs no state.

    ``out`` is (fate, rule, significance, classified_by, added), written for every alert
    (``added`` only with enrich rules). A drop or maintenance rule decides here; an alert a
    flap or threshold rule may hold is appended to ``pending`` (row, flap rule and threshold
    rule, ``_NONE`` for none; ``count[0]`` entries so far) for ``settle``, which also fills
    the entries' state keys.
    Returns the position reached and ``DONE`` or ``NEED_LEARN`` (a value of that alert
    has no class yet: extract and learn from there, then call again from it).
    """
    ts, status, severity, ci = alerts
    e_on, e_prog, e_scratch, e_hits, rule_attr, attr_rows, attr_values, flags = enrich
    c_on, folded, c_prog, c_scratch, c_hits, rule_sig, by_severity, sig_row, sig_ids = classify
    m_prog, m_scratch, m_hits, first, memo_on, radix, memo, stages, windows = main
    m_rows, m_class = m_prog[0], m_prog[1]
    main_stage, main_base = stages
    mw_ptr, mw_start, mw_end = windows
    fate, rule, sig, by, added = out
    p_row, p_flap, p_thr, _, _, count = pending
    for i in range(start, ts.shape[0]):
        _extract_one(labels, ci, i, vals)
        c = ci[i]
        if e_on and c >= 0:
            added[i] = ZERO
            n_hits = _scan(e_prog, vals, e_scratch, e_hits)
            if n_hits < 0:
                return i, NEED_LEARN
            for k in range(n_hits):
                flags[e_hits[k]] = True
            for r in range(rule_attr.shape[0]):
                if flags[r]:
                    flags[r] = False
                    for a in range(rule_attr.shape[1]):
                        row = attr_rows[a]
                        if rule_attr[r, a] and attr_values[a, c] != 0 and vals[row] == 0:
                            vals[row] = attr_values[a, c]
                            added[i] |= ONE << np.uint64(a)
        best = _NONE
        if c_on:
            n_hits = _scan(c_prog, vals, c_scratch, c_hits)
            if n_hits < 0:
                return i, NEED_LEARN
            for k in range(n_hits):
                best = min(best, c_hits[k])
        if not folded:
            _classified(i, best, severity, rule_sig, by_severity, sig, by, sig_row, sig_ids, vals)
        combo = 0
        if memo_on:
            bad = False
            for lab in range(m_rows.shape[0]):
                cls = m_class[lab, vals[m_rows[lab]]]
                bad |= cls < 0
                combo = combo * radix[lab] + cls
            if bad:
                return i, NEED_LEARN
        n_hits = -1
        known = memo_on and memo[combo, DROP_STAGE] != UNKNOWN
        if known and memo[combo, MAINTENANCE_STAGE] != MANY:
            for k in range(STAGES):
                first[k] = memo[combo, k]
        else:
            n_hits = _scan(m_prog, vals, m_scratch, m_hits)
            if n_hits < 0:
                return i, NEED_LEARN
            for k in range(STAGES):
                first[k] = _NONE
            maintenance = 0
            for k in range(n_hits):
                stage = main_stage[m_hits[k]]
                first[stage] = min(first[stage], m_hits[k])
                maintenance += stage == MAINTENANCE_STAGE
            if memo_on:
                for k in range(STAGES):
                    memo[combo, k] = first[k]
                if maintenance > 1:
                    memo[combo, MAINTENANCE_STAGE] = MANY
        if folded:
            best = first[CLASSIFY_STAGE]
            best = best - main_base[CLASSIFY_STAGE] if best < _NONE else _NONE
            _classified(i, best, severity, rule_sig, by_severity, sig, by, sig_row, sig_ids, vals)
        for r in range(vals.shape[0]):
            cols[r, i] = vals[r]
        firing = status[i] == FIRING
        b_drop = first[DROP_STAGE] - main_base[DROP_STAGE]
        b_flap = first[FLAP_STAGE] - main_base[FLAP_STAGE]
        b_thr = first[THRESHOLD_STAGE] - main_base[THRESHOLD_STAGE]
        b_maint = _NONE
        if first[MAINTENANCE_STAGE] < _NONE and firing:
            if n_hits < 0:  # from the memo: its only maintenance rule
                m_hits[0] = first[MAINTENANCE_STAGE]
                n_hits = 1
            for k in range(n_hits):
                loc = m_hits[k] - main_base[MAINTENANCE_STAGE]
                candidate = main_stage[m_hits[k]] == MAINTENANCE_STAGE and loc < b_maint
                if candidate and _open(mw_ptr, mw_start, mw_end, loc, ts[i]):
                    b_maint = loc
        dropped = first[DROP_STAGE] < _NONE
        suppressed = not dropped and b_maint < _NONE
        fate[i] = DROPPED if dropped else (IN_MAINTENANCE if suppressed else PASSED)
        rule[i] = b_drop if dropped else (b_maint if suppressed else -1)
        flaps = first[FLAP_STAGE] < _NONE
        counts = first[THRESHOLD_STAGE] < _NONE and firing
        at = count[0]
        p_row[at] = i
        p_flap[at] = b_flap if flaps else _NONE
        p_thr[at] = b_thr if first[THRESHOLD_STAGE] < _NONE else _NONE
        count[0] = at + (not dropped and not suppressed and (flaps or counts))
    return ts.shape[0], DONE


@intrinsic
def _prefetch(typingctx, array, index):
    """Ask the CPU to start loading element ``index`` (counted flat) of a C-contiguous
    ``array``; numba has no prefetch of its own."""

    def codegen(context, builder, signature, args):
        array_type = signature.args[0]
        data = context.make_array(array_type)(context, builder, args[0]).data
        width = context.get_abi_sizeof(context.get_data_type(array_type.dtype))
        offset = builder.mul(args[1], ir.Constant(args[1].type, width))
        address = builder.gep(builder.bitcast(data, ir.IntType(8).as_pointer()), [offset])
        i32 = ir.IntType(32)
        function = cgutils.get_or_insert_function(
            builder.module,
            ir.FunctionType(ir.VoidType(), [address.type, i32, i32, i32]),
            "llvm.prefetch.p0",
        )
        # read, high temporal locality, data cache
        builder.call(function, [address, i32(0), i32(3), i32(1)])
        return context.get_dummy_value()

    return types.void(array, index), codegen


@numba.njit(nogil=True, cache=True, inline="always")
def _slot(table, key):
    """The first slot ``key`` probes in ``table``."""
    return np.int64(key & np.uint64(table.shape[0] - 1))


@numba.njit(nogil=True, cache=True, _nrt=False)
def settle(start, pending, alerts, cols, flap, threshold, state, out):
    """Run the flap and threshold stages for ``pending`` entries ``start..``, in order.

    ``alerts`` is (ts, fingerprint, status) and ``cols`` the label columns ``decide``
    filled: the entries' state keys are computed from them first. An entry's first key
    is fetched from memory ``AHEAD`` entries early and its record half that: entries
    rarely share a key, and waiting for each in turn was most of the stage's time.
    Returns the position reached and ``DONE``, or ``NEED_STATE`` before an entry the
    state may have no room for.
    """
    p_row, p_flap, p_thr, p_fkey, p_tkey, count = pending
    ts, fingerprint, status = alerts
    f_hash, f_size, f_within, f_key_ptr, f_key_rows = flap
    t_hash, t_size, t_within, t_key_ptr, t_key_rows = threshold
    table, pool, ctr = state
    fate, rule = out
    n = count[0]
    for j in range(start, n):
        i = p_row[j]
        f, r = p_flap[j], p_thr[j]
        if f < _NONE:
            p_fkey[j] = _key(f_hash, f_key_ptr, f_key_rows, f, fingerprint[i], cols, i)
        if r < _NONE:
            p_tkey[j] = _key(t_hash, t_key_ptr, t_key_rows, r, fingerprint[i], cols, i)
    room = RECORD_HEADER
    for k in range(f_size.shape[0]):
        room = max(room, RECORD_HEADER + f_size[k])
    for k in range(t_size.shape[0]):
        room = max(room, RECORD_HEADER + t_size[k])
    for j in range(start, n):
        if 2 * (ctr[0] + 2) > table.shape[0] or ctr[1] + 2 * room > pool.shape[0]:
            return j, NEED_STATE
        if j + AHEAD < n:
            ahead = p_fkey[j + AHEAD] if p_flap[j + AHEAD] < _NONE else p_tkey[j + AHEAD]
            _prefetch(table, 2 * _slot(table, ahead))
        if j + AHEAD // 2 < n:
            m = j + AHEAD // 2
            near = p_fkey[m] if p_flap[m] < _NONE else p_tkey[m]
            s = _slot(table, near)
            if table[s, 0] == near:
                _prefetch(pool, np.int64(table[s, 1]) - 1)
        i = p_row[j]
        t = ts[i]
        firing = status[i] == FIRING
        f = p_flap[j]
        if f < _NONE:
            at = _record(table, pool, ctr, p_fkey[j], FLAP_TAG + f, f_size[f])
            previous = pool[at + 3]
            pool[at + 3] = status[i]
            if previous >= 0 and previous != status[i]:
                _add_time(pool, at, t)
            if firing and _full_within(pool, at, t, f_within[f]):
                fate[i] = FLAPPING
                rule[i] = f
                continue
        r = p_thr[j]
        if r < _NONE and firing:
            at = _record(table, pool, ctr, p_tkey[j], THRESHOLD_TAG + r, t_size[r])
            _add_time(pool, at, t)
            if not _full_within(pool, at, t, t_within[r]):
                fate[i] = BELOW_THRESHOLD
                rule[i] = r
    return n, DONE


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
