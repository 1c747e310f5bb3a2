"""The correlation kernel: first-level filtering and topology collapse in one pass.

Alerts are processed in event-time order. For each alert the kernel fires the
update timers that fell due before it, drops informational alerts, drops
resends of a fingerprint within the dedup window, and places the rest: a
fingerprint already in an open incident stays there; otherwise its CI's
dominator chain is walked and the alert joins the incident rooted at the
highest alerting dominator; with none, it opens an incident, which first takes
over any open incidents rooted below it (a root that arrives after its
symptoms). Alerts whose CI is unknown are grouped by alertname and CI label.

All state lives in arrays passed in and mutated in place. When an array is
full the kernel returns the position it reached and which array to grow; the
driver grows it and calls again from there, so nothing is reallocated inside.
"""

from __future__ import annotations

import numba
import numpy as np

from correlator.correlate.layout import (
    CI_FIRING,
    CI_LAST,
    CI_MEMBER_INC,
    CI_ROOT_INC,
    CI_SUBROOTS,
    DONE,
    DROP_DEDUPLICATED,
    DROP_INFORMATIONAL,
    DROP_ORPHAN_RESOLVE,
    E_CI,
    E_INC,
    E_LAST_ACCEPT,
    E_LAST_SEEN,
    E_STATUS,
    EV_OPEN,
    EV_RESOLVE,
    EV_UPDATE,
    I_ALERTS,
    I_CI_HEAD,
    I_CI_LEN,
    I_CI_TAIL,
    I_DIRTY,
    I_FIRING,
    I_FIRST,
    I_FP_HEAD,
    I_FP_LEN,
    I_FP_TAIL,
    I_GROUP_ALERTNAME,
    I_GROUP_VALUE,
    I_ID_ROOT,
    I_ID_TS,
    I_LAST,
    I_LAST_EMIT,
    I_MERGED_INTO,
    I_OPEN_POS,
    I_ROOT,
    I_ROOT_ALERTNAME,
    I_SEVERITY,
    I_SIGNIFICANCE,
    I_STATE,
    I_VERSION,
    INFORMATIONAL,
    JOINED,
    MERGED,
    N_ENT,
    N_EV,
    N_GRP,
    N_INC,
    N_OPEN,
    N_POOL,
    NEED_ENT,
    NEED_EV,
    NEED_FPTAB,
    NEED_GRPTAB,
    NEED_INC,
    NEED_POOL,
    NEED_QUEUE,
    OPEN,
    Q_HEAD,
    Q_TAIL,
    RESOLVED_STATE,
    S_DEDUP,
    S_DROP_INFO,
    S_UPDATE_INTERVAL,
    S_WINDOW,
    V_ALERTS,
    V_CI_HEAD,
    V_CI_LEN,
    V_FIRING,
    V_FIRST,
    V_FP_HEAD,
    V_FP_LEN,
    V_INC,
    V_KIND,
    V_LAST,
    V_MERGED_INTO,
    V_ROOT,
    V_ROOT_ALERTNAME,
    V_SEVERITY,
    V_SIGNIFICANCE,
    V_TS,
    V_VERSION,
)
from correlator.schema import FIRING, RESOLVED

_MIX = np.uint64(0x9E3779B97F4A7C15)
_EMPTY = -1
_NO_TIME = np.iinfo(np.int64).min // 2


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
def collect(pool, head, length):
    """The first ``length`` values of the pool list starting at ``head``."""
    out = np.empty(length, dtype=np.int64)
    node = head
    for k in range(length):
        out[k] = pool[node, 0]
        node = pool[node, 1]
    return out


@numba.njit(nogil=True, cache=True)
def _append(pool, ctr, inc, j, value, head_col, tail_col, len_col):
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
def _splice(pool, inc, survivor, victim, head_col, tail_col, len_col):
    if inc[victim, head_col] < 0:
        return
    if inc[survivor, head_col] < 0:
        inc[survivor, head_col] = inc[victim, head_col]
    else:
        pool[inc[survivor, tail_col], 1] = inc[victim, head_col]
    inc[survivor, tail_col] = inc[victim, tail_col]
    inc[survivor, len_col] += inc[victim, len_col]


@numba.njit(nogil=True, cache=True)
def _emit(inc, ev, ctr, queue, settings, j, kind, t, merged_into):
    e = ctr[N_EV]
    ctr[N_EV] += 1
    inc[j, I_VERSION] += 1
    inc[j, I_DIRTY] = 0
    inc[j, I_LAST_EMIT] = t
    ev[e, V_INC] = j
    ev[e, V_KIND] = kind
    ev[e, V_TS] = t
    ev[e, V_VERSION] = inc[j, I_VERSION]
    ev[e, V_ROOT] = inc[j, I_ROOT]
    ev[e, V_ROOT_ALERTNAME] = inc[j, I_ROOT_ALERTNAME]
    ev[e, V_FIRST] = inc[j, I_FIRST]
    ev[e, V_LAST] = inc[j, I_LAST]
    ev[e, V_ALERTS] = inc[j, I_ALERTS]
    ev[e, V_FIRING] = inc[j, I_FIRING]
    ev[e, V_SEVERITY] = inc[j, I_SEVERITY]
    ev[e, V_SIGNIFICANCE] = inc[j, I_SIGNIFICANCE]
    ev[e, V_FP_HEAD] = inc[j, I_FP_HEAD]
    ev[e, V_FP_LEN] = inc[j, I_FP_LEN]
    ev[e, V_CI_HEAD] = inc[j, I_CI_HEAD]
    ev[e, V_CI_LEN] = inc[j, I_CI_LEN]
    ev[e, V_MERGED_INTO] = merged_into
    if kind != EV_RESOLVE:
        q = ctr[Q_TAIL]
        ctr[Q_TAIL] += 1
        queue[q, 0] = t + settings[S_UPDATE_INTERVAL]
        queue[q, 1] = j


@numba.njit(nogil=True, cache=True)
def _touch(inc, ev, ctr, queue, settings, j, t):
    inc[j, I_DIRTY] = 1
    if t >= inc[j, I_LAST_EMIT] + settings[S_UPDATE_INTERVAL]:
        _emit(inc, ev, ctr, queue, settings, j, EV_UPDATE, t, -1)


@numba.njit(nogil=True, cache=True)
def fire_timers(inc, ev, ctr, queue, settings, until):
    """Emit the coalesced updates that fell due at or before ``until``."""
    while ctr[Q_HEAD] < ctr[Q_TAIL] and queue[ctr[Q_HEAD], 0] <= until:
        due = queue[ctr[Q_HEAD], 0]
        j = queue[ctr[Q_HEAD], 1]
        ctr[Q_HEAD] += 1
        stale = inc[j, I_LAST_EMIT] + settings[S_UPDATE_INTERVAL] != due
        if inc[j, I_STATE] == OPEN and inc[j, I_DIRTY] == 1 and not stale:
            _emit(inc, ev, ctr, queue, settings, j, EV_UPDATE, due, -1)


@numba.njit(nogil=True, cache=True)
def _count_root(cis, idom, root, delta):
    x = idom[root]
    while x >= 0:
        cis[x, CI_SUBROOTS] += delta
        x = idom[x]


@numba.njit(nogil=True, cache=True)
def _set_root(inc, cis, idom, j, root):
    if root < 0:
        return
    inc[j, I_ROOT] = root
    cis[root, CI_ROOT_INC] = j
    _count_root(cis, idom, root, 1)


@numba.njit(nogil=True, cache=True)
def _clear_root(inc, cis, idom, j):
    root = inc[j, I_ROOT]
    if root < 0:
        return
    if cis[root, CI_ROOT_INC] == j:
        cis[root, CI_ROOT_INC] = -1
    _count_root(cis, idom, root, -1)


@numba.njit(nogil=True, cache=True)
def _close(inc, cis, idom, openset, ctr, j, state):
    inc[j, I_STATE] = state
    _clear_root(inc, cis, idom, j)
    pos = inc[j, I_OPEN_POS]
    last = openset[ctr[N_OPEN] - 1]
    openset[pos] = last
    inc[last, I_OPEN_POS] = pos
    ctr[N_OPEN] -= 1


@numba.njit(nogil=True, cache=True)
def _new_incident(inc, cis, idom, openset, ctr, root, alertname, group_value, t):
    j = ctr[N_INC]
    ctr[N_INC] += 1
    inc[j, :] = 0
    inc[j, I_STATE] = OPEN
    inc[j, I_ROOT] = -1
    inc[j, I_ROOT_ALERTNAME] = -1
    inc[j, I_GROUP_ALERTNAME] = alertname
    inc[j, I_GROUP_VALUE] = group_value
    inc[j, I_ID_ROOT] = root
    inc[j, I_ID_TS] = t
    inc[j, I_FIRST] = t
    inc[j, I_LAST] = t
    inc[j, I_LAST_EMIT] = _NO_TIME
    inc[j, I_FP_HEAD] = -1
    inc[j, I_FP_TAIL] = -1
    inc[j, I_CI_HEAD] = -1
    inc[j, I_CI_TAIL] = -1
    inc[j, I_MERGED_INTO] = -1
    inc[j, I_OPEN_POS] = ctr[N_OPEN]
    openset[ctr[N_OPEN]] = j
    ctr[N_OPEN] += 1
    _set_root(inc, cis, idom, j, root)
    return j


@numba.njit(nogil=True, cache=True)
def _merge(inc, cis, idom, openset, ctr, ent, pool, ev, queue, settings, survivor, victim, t):
    node = inc[victim, I_FP_HEAD]
    for _ in range(inc[victim, I_FP_LEN]):
        ent[pool[node, 0], E_INC] = survivor
        node = pool[node, 1]
    node = inc[victim, I_CI_HEAD]
    for _ in range(inc[victim, I_CI_LEN]):
        c = pool[node, 0]
        if cis[c, CI_MEMBER_INC] == victim:
            cis[c, CI_MEMBER_INC] = survivor
        node = pool[node, 1]
    inc[victim, I_MERGED_INTO] = survivor
    _emit(inc, ev, ctr, queue, settings, victim, EV_RESOLVE, t, survivor)
    _splice(pool, inc, survivor, victim, I_FP_HEAD, I_FP_TAIL, I_FP_LEN)
    _splice(pool, inc, survivor, victim, I_CI_HEAD, I_CI_TAIL, I_CI_LEN)
    inc[survivor, I_ALERTS] += inc[victim, I_ALERTS]
    inc[survivor, I_FIRING] += inc[victim, I_FIRING]
    inc[survivor, I_FIRST] = min(inc[survivor, I_FIRST], inc[victim, I_FIRST])
    inc[survivor, I_SEVERITY] = max(inc[survivor, I_SEVERITY], inc[victim, I_SEVERITY])
    inc[survivor, I_SIGNIFICANCE] = max(inc[survivor, I_SIGNIFICANCE], inc[victim, I_SIGNIFICANCE])
    _close(inc, cis, idom, openset, ctr, victim, MERGED)


@numba.njit(nogil=True, cache=True)
def _place_on_topology(
    c, t, inc, cis, idom, tin, tout, openset, ctr, ent, pool, ev, queue, settings
):
    """The incident an alert on CI ``c`` joins, opening or taking one over if needed.

    A new incident has version 0: the caller emits its ``open`` once the alert
    is a member, so the first event already counts it.
    """
    window = settings[S_WINDOW]
    best = -1
    x = c
    while x >= 0:
        j = cis[x, CI_ROOT_INC]
        if j >= 0 and cis[x, CI_FIRING] > 0 and t - cis[x, CI_LAST] <= window:
            best = j
        x = idom[x]
    if best >= 0:
        return best
    survivor = -1
    if cis[c, CI_SUBROOTS] > 0:
        k = 0
        while k < ctr[N_OPEN]:
            j = openset[k]
            r = inc[j, I_ROOT]
            dominated = r >= 0 and r != c and tin[c] <= tin[r] and tin[r] < tout[c]
            if dominated and (survivor < 0 or j < survivor):
                survivor = j
            k += 1
    if survivor < 0:
        return _new_incident(inc, cis, idom, openset, ctr, c, -1, -1, t)
    k = 0
    while k < ctr[N_OPEN]:
        j = openset[k]
        r = inc[j, I_ROOT]
        if j != survivor and r >= 0 and r != c and tin[c] <= tin[r] and tin[r] < tout[c]:
            _merge(inc, cis, idom, openset, ctr, ent, pool, ev, queue, settings, survivor, j, t)
        else:
            k += 1
    _clear_root(inc, cis, idom, survivor)
    _set_root(inc, cis, idom, survivor, c)
    inc[survivor, I_ROOT_ALERTNAME] = -1
    inc[survivor, I_LAST_EMIT] = _NO_TIME
    return survivor


@numba.njit(nogil=True, cache=True)
def _place_in_group(alertname, value, t, inc, cis, idom, openset, ctr, grp_keys, grp_vals):
    key = (np.uint64(alertname) << np.uint64(32)) | np.uint64(value)
    j = table_find(grp_keys, grp_vals, key)
    if j >= 0 and inc[j, I_STATE] == OPEN:
        return j
    j = _new_incident(inc, cis, idom, openset, ctr, -1, alertname, value, t)
    if table_put(grp_keys, grp_vals, key, j):
        ctr[N_GRP] += 1
    return j


@numba.njit(nogil=True, cache=True)
def _shortage(ctr, ent, inc, pool, ev, queue, fp_vals, grp_vals):
    margin = 2 * ctr[N_OPEN] + 4
    if ctr[N_ENT] + 1 > ent.shape[0]:
        return NEED_ENT
    if ctr[N_INC] + 1 > inc.shape[0]:
        return NEED_INC
    if ctr[N_POOL] + 2 > pool.shape[0]:
        return NEED_POOL
    if ctr[N_EV] + margin > ev.shape[0]:
        return NEED_EV
    if ctr[Q_TAIL] + margin > queue.shape[0]:
        return NEED_QUEUE
    if 2 * (ctr[N_ENT] + 1) > fp_vals.shape[0]:
        return NEED_FPTAB
    if 2 * (ctr[N_GRP] + 1) > grp_vals.shape[0]:
        return NEED_GRPTAB
    return DONE


@numba.njit(nogil=True, cache=True)
def correlate(
    start,
    ts,
    fp,
    ci,
    alertname,
    ci_label,
    severity,
    significance,
    status,
    idom,
    tin,
    tout,
    settings,
    ctr,
    fp_keys,
    fp_vals,
    ent,
    ent_fp,
    cis,
    inc,
    openset,
    pool,
    grp_keys,
    grp_vals,
    ev,
    queue,
    out_inc,
    out_reason,
):
    """Correlate alerts ``start:`` of a time-ordered batch; returns (position, stop code)."""
    n = ts.shape[0]
    for i in range(start, n):
        need = _shortage(ctr, ent, inc, pool, ev, queue, fp_vals, grp_vals)
        if need != DONE:
            return i, need
        t = ts[i]
        fire_timers(inc, ev, ctr, queue, settings, t)
        out_inc[i] = -1
        out_reason[i] = JOINED
        if significance[i] == INFORMATIONAL and settings[S_DROP_INFO] != 0:
            out_reason[i] = DROP_INFORMATIONAL
            continue
        e = table_find(fp_keys, fp_vals, fp[i])
        if status[i] == RESOLVED:
            if e < 0:
                out_reason[i] = DROP_ORPHAN_RESOLVE
                continue
            if ent[e, E_STATUS] == RESOLVED:
                out_reason[i] = DROP_DEDUPLICATED
                continue
            ent[e, E_STATUS] = RESOLVED
            ent[e, E_LAST_SEEN] = t
            c = ent[e, E_CI]
            if c >= 0:
                cis[c, CI_FIRING] -= 1
            j = ent[e, E_INC]
            out_inc[i] = j
            inc[j, I_ALERTS] += 1
            inc[j, I_FIRING] -= 1
            inc[j, I_LAST] = t
            if inc[j, I_FIRING] == 0:
                _close(inc, cis, idom, openset, ctr, j, RESOLVED_STATE)
                _emit(inc, ev, ctr, queue, settings, j, EV_RESOLVE, t, -1)
            else:
                _touch(inc, ev, ctr, queue, settings, j, t)
            continue
        c = ci[i]
        if e < 0:
            e = ctr[N_ENT]
            ctr[N_ENT] += 1
            table_put(fp_keys, fp_vals, fp[i], e)
            ent_fp[e] = fp[i]
            ent[e, E_STATUS] = RESOLVED
            ent[e, E_INC] = -1
            ent[e, E_LAST_ACCEPT] = _NO_TIME
            ent[e, E_CI] = c
        if c >= 0:
            cis[c, CI_LAST] = t
        ent[e, E_LAST_SEEN] = t
        was_firing = ent[e, E_STATUS] == FIRING
        if was_firing and t - ent[e, E_LAST_ACCEPT] < settings[S_DEDUP]:
            out_reason[i] = DROP_DEDUPLICATED
            continue
        ent[e, E_LAST_ACCEPT] = t
        j = ent[e, E_INC]
        if j >= 0 and inc[j, I_STATE] != OPEN:
            j = -1
        if not was_firing:
            ent[e, E_STATUS] = FIRING
            if c >= 0:
                cis[c, CI_FIRING] += 1
        if j < 0:
            if c >= 0:
                j = _place_on_topology(
                    c, t, inc, cis, idom, tin, tout, openset, ctr, ent, pool, ev, queue, settings
                )
            else:
                j = _place_in_group(
                    alertname[i], ci_label[i], t, inc, cis, idom, openset, ctr, grp_keys, grp_vals
                )
            ent[e, E_INC] = j
            _append(pool, ctr, inc, j, e, I_FP_HEAD, I_FP_TAIL, I_FP_LEN)
        if not was_firing:
            inc[j, I_FIRING] += 1
        if c >= 0 and cis[c, CI_MEMBER_INC] != j:
            cis[c, CI_MEMBER_INC] = j
            _append(pool, ctr, inc, j, c, I_CI_HEAD, I_CI_TAIL, I_CI_LEN)
        if c >= 0 and c == inc[j, I_ROOT] and inc[j, I_ROOT_ALERTNAME] < 0:
            inc[j, I_ROOT_ALERTNAME] = alertname[i]
        out_inc[i] = j
        inc[j, I_ALERTS] += 1
        inc[j, I_LAST] = t
        inc[j, I_SEVERITY] = max(inc[j, I_SEVERITY], severity[i])
        inc[j, I_SIGNIFICANCE] = max(inc[j, I_SIGNIFICANCE], significance[i])
        if inc[j, I_VERSION] == 0:
            _emit(inc, ev, ctr, queue, settings, j, EV_OPEN, t, -1)
        else:
            _touch(inc, ev, ctr, queue, settings, j, t)
    return n, DONE
