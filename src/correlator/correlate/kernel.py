"""The correlation kernel: first-level filtering and topology collapse in one pass.

Alerts are processed in event-time order. Before each alert the timers that
fell due are fired (settle delays, coalesced updates, alert expiry). Then the
alert is dropped if informational or a resend within the dedup window, or
placed: a fingerprint already in an open incident stays there; otherwise its
CI's dominator chain is walked and the alert joins the incident rooted at the
highest alerting dominator; with none, a recently resolved incident of the CI
is reopened, or a new one opened, which first takes over any open incidents
rooted below it (a root that arrives after its symptoms). When most of a
silent CI's dominator-tree children alert, that CI is inferred as the root
and takes their incidents over the same way. Alerts whose CI is unknown are
grouped by a pair of string ids (alertname and CI label, unless a group rule
gave others) while their group's last alert is recent enough.

A new incident is a candidate for ``settle``: nothing is sent until its
settle timer fires, so a root arriving within it absorbs the candidates
without a ticket ever being opened for them.

All state lives in arrays passed in and mutated in place. When an array is
full the kernel returns the position it reached and which array to grow; the
driver grows it and calls again from there, so nothing is reallocated inside.
"""

from __future__ import annotations

import numba
import numpy as np

from correlator.correlate.layout import (
    CI_ALERTING_CHILDREN,
    CI_CAUSAL,
    CI_DOM_CHILDREN,
    CI_FIRING,
    CI_INFERRED,
    CI_LAST,
    CI_LAST_CAUSAL,
    CI_LAST_INC,
    CI_MEMBER_INC,
    CI_ROOT_INC,
    CI_SUBROOTS,
    DONE,
    DROP_DEDUPLICATED,
    DROP_INFORMATIONAL,
    DROP_ORPHAN_RESOLVE,
    E_ARMED,
    E_CAUSAL,
    E_CI,
    E_INC,
    E_LAST_ACCEPT,
    E_LAST_SEEN,
    E_STATUS,
    EV_OPEN,
    EV_RESOLVE,
    EV_UPDATE,
    EXCEPTION,
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
    I_INFERRED,
    I_LAST,
    I_LAST_EMIT,
    I_MERGED_INTO,
    I_OPEN_POS,
    I_RESOLVED_AT,
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
    NEED_SQ,
    NEED_UQ,
    NEED_XQ,
    OPEN,
    RESOLVED_STATE,
    S_DEDUP,
    S_DROP_INFO,
    S_INFER_MIN,
    S_INFER_PERMILLE,
    S_REOPEN,
    S_RESOLVE_TIMEOUT,
    S_SETTLE,
    S_UPDATE_INTERVAL,
    S_WINDOW,
    SQ_HEAD,
    SQ_TAIL,
    ST_CIS,
    ST_CTR,
    ST_ENT,
    ST_ENT_FP,
    ST_EV,
    ST_FP_KEYS,
    ST_FP_VALS,
    ST_GRP_KEYS,
    ST_GRP_VALS,
    ST_IDOM,
    ST_INC,
    ST_OPENSET,
    ST_POOL,
    ST_SETTINGS,
    ST_SQ,
    ST_TIN,
    ST_TOUT,
    ST_UQ,
    ST_XQ,
    UQ_HEAD,
    UQ_TAIL,
    V_ALERTS,
    V_CI_HEAD,
    V_CI_LEN,
    V_FIRING,
    V_FIRST,
    V_FP_HEAD,
    V_FP_LEN,
    V_INC,
    V_INFERRED,
    V_KIND,
    V_LAST,
    V_MERGED_INTO,
    V_ROOT,
    V_ROOT_ALERTNAME,
    V_SEVERITY,
    V_SIGNIFICANCE,
    V_TS,
    V_VERSION,
    WHY_DOMINATOR,
    WHY_GROUPED,
    WHY_MEMBER,
    WHY_OPENED,
    WHY_REOPENED,
    WHY_TOOK_OVER,
    XQ_SIZE,
)
from correlator.correlate.structures import (
    append,
    heap_pop,
    heap_push,
    heap_replace_top,
    push,
    splice,
    table_find,
    table_put,
)
from correlator.schema import FIRING, RESOLVED

_NO_TIME = np.iinfo(np.int64).min // 2
_NEVER = np.iinfo(np.int64).max


@numba.njit(nogil=True, cache=True)
def _emit(inc, ev, ctr, uq, settings, j, kind, t, merged_into):
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
    ev[e, V_INFERRED] = inc[j, I_INFERRED]
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
        push(uq, ctr, UQ_TAIL, t + settings[S_UPDATE_INTERVAL], j)


@numba.njit(nogil=True, cache=True)
def _touch(inc, ev, ctr, uq, settings, j, t):
    """Note a change; send it now unless an update went out less than an interval ago."""
    inc[j, I_DIRTY] = 1
    if inc[j, I_VERSION] == 0:
        return
    if t >= inc[j, I_LAST_EMIT] + settings[S_UPDATE_INTERVAL]:
        _emit(inc, ev, ctr, uq, settings, j, EV_UPDATE, t, -1)


@numba.njit(nogil=True, cache=True)
def _causal(cis, c, t, window):
    """Whether CI ``c`` can explain the alerts below it now."""
    if cis[c, CI_INFERRED] != 0:
        return True
    return cis[c, CI_CAUSAL] > 0 and t - cis[c, CI_LAST_CAUSAL] <= window


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
    cis[root, CI_LAST_INC] = j
    _count_root(cis, idom, root, 1)


@numba.njit(nogil=True, cache=True)
def _clear_root(inc, cis, idom, j):
    """Detach incident ``j`` from its root CI; an inferred root stops alerting."""
    root = inc[j, I_ROOT]
    if root < 0:
        return
    if cis[root, CI_ROOT_INC] == j:
        cis[root, CI_ROOT_INC] = -1
        if cis[root, CI_INFERRED] != 0:
            cis[root, CI_INFERRED] = 0
            if cis[root, CI_CAUSAL] == 0 and idom[root] >= 0:
                cis[idom[root], CI_ALERTING_CHILDREN] -= 1
    _count_root(cis, idom, root, -1)


@numba.njit(nogil=True, cache=True)
def _should_infer(p, S):
    settings = S[ST_SETTINGS]
    cis = S[ST_CIS]
    count = cis[p, CI_ALERTING_CHILDREN]
    return (
        settings[S_INFER_MIN] > 0
        and cis[p, CI_INFERRED] == 0
        and cis[p, CI_FIRING] == 0
        and count >= settings[S_INFER_MIN]
        and count * 1000 >= settings[S_INFER_PERMILLE] * cis[p, CI_DOM_CHILDREN]
        and cis[p, CI_SUBROOTS] > 0
    )


@numba.njit(nogil=True, cache=True)
def _alerting_changed(c, delta, t, S):
    """Tell CI ``c``'s dominator parent that ``c`` started (+1) or stopped (-1) alerting.

    A parent that is silent while enough of its children alert is inferred as
    the root of their incidents; that makes it alerting in turn, so the test
    climbs the tree and the most specific silent cause is named first.
    """
    settings = S[ST_SETTINGS]
    ctr = S[ST_CTR]
    idom = S[ST_IDOM]
    cis = S[ST_CIS]
    inc = S[ST_INC]
    ev = S[ST_EV]
    uq = S[ST_UQ]
    p = idom[c]
    if p < 0:
        return
    cis[p, CI_ALERTING_CHILDREN] += delta
    while delta > 0 and p >= 0 and _should_infer(p, S):
        survivor = _take_over(p, t, S)
        inc[survivor, I_INFERRED] = 1
        cis[p, CI_INFERRED] = 1
        _touch(inc, ev, ctr, uq, settings, survivor, t)
        p = idom[p]
        if p >= 0:
            cis[p, CI_ALERTING_CHILDREN] += 1


@numba.njit(nogil=True, cache=True)
def _close(j, t, state, S):
    ctr = S[ST_CTR]
    idom = S[ST_IDOM]
    cis = S[ST_CIS]
    inc = S[ST_INC]
    openset = S[ST_OPENSET]
    inc[j, I_STATE] = state
    inc[j, I_RESOLVED_AT] = t
    _clear_root(inc, cis, idom, j)
    pos = inc[j, I_OPEN_POS]
    last = openset[ctr[N_OPEN] - 1]
    openset[pos] = last
    inc[last, I_OPEN_POS] = pos
    ctr[N_OPEN] -= 1


@numba.njit(nogil=True, cache=True)
def _open_slot(inc, openset, ctr, j):
    inc[j, I_STATE] = OPEN
    inc[j, I_OPEN_POS] = ctr[N_OPEN]
    openset[ctr[N_OPEN]] = j
    ctr[N_OPEN] += 1


@numba.njit(nogil=True, cache=True)
def _new_incident(root, alertname, group_value, t, S):
    settings = S[ST_SETTINGS]
    ctr = S[ST_CTR]
    idom = S[ST_IDOM]
    cis = S[ST_CIS]
    inc = S[ST_INC]
    openset = S[ST_OPENSET]
    sq = S[ST_SQ]
    j = ctr[N_INC]
    ctr[N_INC] += 1
    inc[j, :] = 0
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
    _open_slot(inc, openset, ctr, j)
    _set_root(inc, cis, idom, j, root)
    if settings[S_SETTLE] > 0:
        push(sq, ctr, SQ_TAIL, t + settings[S_SETTLE], j)
    return j


@numba.njit(nogil=True, cache=True)
def _reopen(j, t, S):
    ctr = S[ST_CTR]
    idom = S[ST_IDOM]
    cis = S[ST_CIS]
    inc = S[ST_INC]
    openset = S[ST_OPENSET]
    _open_slot(inc, openset, ctr, j)
    root = inc[j, I_ROOT]
    if root >= 0:
        _set_root(inc, cis, idom, j, root)
    inc[j, I_INFERRED] = 0
    inc[j, I_LAST_EMIT] = _NO_TIME


@numba.njit(nogil=True, cache=True)
def _merge(survivor, victim, t, S):
    settings = S[ST_SETTINGS]
    ctr = S[ST_CTR]
    ent = S[ST_ENT]
    cis = S[ST_CIS]
    inc = S[ST_INC]
    pool = S[ST_POOL]
    ev = S[ST_EV]
    uq = S[ST_UQ]
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
    if inc[victim, I_VERSION] > 0:
        _emit(inc, ev, ctr, uq, settings, victim, EV_RESOLVE, t, survivor)
    splice(pool, inc, survivor, victim, I_FP_HEAD, I_FP_TAIL, I_FP_LEN)
    splice(pool, inc, survivor, victim, I_CI_HEAD, I_CI_TAIL, I_CI_LEN)
    inc[survivor, I_ALERTS] += inc[victim, I_ALERTS]
    inc[survivor, I_FIRING] += inc[victim, I_FIRING]
    inc[survivor, I_FIRST] = min(inc[survivor, I_FIRST], inc[victim, I_FIRST])
    inc[survivor, I_LAST] = max(inc[survivor, I_LAST], inc[victim, I_LAST])
    inc[survivor, I_SEVERITY] = max(inc[survivor, I_SEVERITY], inc[victim, I_SEVERITY])
    inc[survivor, I_SIGNIFICANCE] = max(inc[survivor, I_SIGNIFICANCE], inc[victim, I_SIGNIFICANCE])
    _close(victim, t, MERGED, S)


@numba.njit(nogil=True, cache=True)
def _dominated_open(c, S):
    """The lowest-numbered open incident rooted strictly below ``c``, or -1."""
    ctr = S[ST_CTR]
    tin = S[ST_TIN]
    tout = S[ST_TOUT]
    inc = S[ST_INC]
    openset = S[ST_OPENSET]
    found = -1
    for k in range(ctr[N_OPEN]):
        j = openset[k]
        r = inc[j, I_ROOT]
        below = r >= 0 and r != c and tin[c] <= tin[r] and tin[r] < tout[c]
        if below and (found < 0 or j < found):
            found = j
    return found


@numba.njit(nogil=True, cache=True)
def _take_over(c, t, S):
    """Merge every open incident rooted below ``c`` into the oldest one, re-rooted at ``c``."""
    ctr = S[ST_CTR]
    idom = S[ST_IDOM]
    tin = S[ST_TIN]
    tout = S[ST_TOUT]
    cis = S[ST_CIS]
    inc = S[ST_INC]
    openset = S[ST_OPENSET]
    survivor = _dominated_open(c, S)
    k = 0
    while k < ctr[N_OPEN]:
        j = openset[k]
        r = inc[j, I_ROOT]
        if j != survivor and r >= 0 and r != c and tin[c] <= tin[r] and tin[r] < tout[c]:
            _merge(survivor, j, t, S)
        else:
            k += 1
    _clear_root(inc, cis, idom, survivor)
    _set_root(inc, cis, idom, survivor, c)
    inc[survivor, I_ROOT_ALERTNAME] = -1
    inc[survivor, I_INFERRED] = 0
    if inc[survivor, I_VERSION] == 0:
        inc[survivor, I_ID_ROOT] = c
    else:
        inc[survivor, I_LAST_EMIT] = _NO_TIME
    return survivor


@numba.njit(nogil=True, cache=True)
def _recently_resolved(j, t, S):
    settings = S[ST_SETTINGS]
    inc = S[ST_INC]
    return (
        j >= 0
        and inc[j, I_STATE] == RESOLVED_STATE
        and inc[j, I_VERSION] > 0
        and t - inc[j, I_RESOLVED_AT] <= settings[S_REOPEN]
    )


@numba.njit(nogil=True, cache=True)
def _place_on_topology(c, t, causal, S):
    """The incident an alert on CI ``c`` joins, how, and through which CI.

    An alert joins its own CI's open incident, or the incident of the highest
    dominator that is causally alerting; only a ``causal`` alert takes over
    the incidents below its CI. A new incident has version 0; the caller
    announces it once the alert is a member, so the first event counts it.
    """
    settings = S[ST_SETTINGS]
    idom = S[ST_IDOM]
    cis = S[ST_CIS]
    inc = S[ST_INC]
    window = settings[S_WINDOW]
    best = -1
    via = -1
    own = cis[c, CI_ROOT_INC]
    if own >= 0 and cis[c, CI_FIRING] > 0:
        best = own
        via = c
    x = idom[c]
    while x >= 0:
        j = cis[x, CI_ROOT_INC]
        if j >= 0 and _causal(cis, x, t, window):
            best = j
            via = x
        x = idom[x]
    if best >= 0:
        return best, WHY_DOMINATOR, via
    if causal and cis[c, CI_SUBROOTS] > 0 and _dominated_open(c, S) >= 0:
        return _take_over(c, t, S), WHY_TOOK_OVER, c
    last = cis[c, CI_LAST_INC]
    if _recently_resolved(last, t, S) and inc[last, I_ROOT] == c:
        _reopen(last, t, S)
        return last, WHY_REOPENED, c
    return _new_incident(c, -1, -1, t, S), WHY_OPENED, c


@numba.njit(nogil=True, cache=True)
def _place_in_group(alertname, value, within, t, S):
    """An alert outside the CMDB joins its group's open incident if the group's last alert
    is at most ``within`` ago; else it reopens or opens one."""
    ctr = S[ST_CTR]
    inc = S[ST_INC]
    grp_keys = S[ST_GRP_KEYS]
    grp_vals = S[ST_GRP_VALS]
    key = (np.uint64(alertname) << np.uint64(32)) | np.uint64(value)
    j = table_find(grp_keys, grp_vals, key)
    if j >= 0 and inc[j, I_STATE] == OPEN and t - inc[j, I_LAST] <= within:
        return j, WHY_GROUPED
    if _recently_resolved(j, t, S):
        _reopen(j, t, S)
        return j, WHY_REOPENED
    j = _new_incident(-1, alertname, value, t, S)
    if table_put(grp_keys, grp_vals, key, j):
        ctr[N_GRP] += 1
    return j, WHY_GROUPED


@numba.njit(nogil=True, cache=True)
def _resolve_entity(e, t, S):
    """A fingerprint stops firing (resolved, or expired): the incident may resolve."""
    settings = S[ST_SETTINGS]
    ctr = S[ST_CTR]
    ent = S[ST_ENT]
    cis = S[ST_CIS]
    inc = S[ST_INC]
    ev = S[ST_EV]
    uq = S[ST_UQ]
    ent[e, E_STATUS] = RESOLVED
    c = ent[e, E_CI]
    j = ent[e, E_INC]
    inc[j, I_FIRING] -= 1
    inc[j, I_LAST] = max(inc[j, I_LAST], t)
    if c >= 0:
        cis[c, CI_FIRING] -= 1
        if ent[e, E_CAUSAL] != 0:
            cis[c, CI_CAUSAL] -= 1
            if cis[c, CI_CAUSAL] == 0 and cis[c, CI_INFERRED] == 0:
                _alerting_changed(c, -1, t, S)
    if inc[j, I_STATE] != OPEN:
        return j
    if inc[j, I_FIRING] == 0:
        sent = inc[j, I_VERSION] > 0
        _close(j, t, RESOLVED_STATE, S)
        if sent:
            _emit(inc, ev, ctr, uq, settings, j, EV_RESOLVE, t, -1)
    else:
        _touch(inc, ev, ctr, uq, settings, j, t)
    return j


@numba.njit(nogil=True, cache=True, inline="always")
def _due(queue, ctr, head_col, tail_col, t):
    return ctr[head_col] < ctr[tail_col] and queue[ctr[head_col], 0] <= t


@numba.njit(nogil=True, cache=True)
def fire_timers(until, expire, S):
    """Fire every timer due at or before ``until``, oldest first (expiry only if ``expire``)."""
    settings = S[ST_SETTINGS]
    ctr = S[ST_CTR]
    ent = S[ST_ENT]
    inc = S[ST_INC]
    ev = S[ST_EV]
    uq = S[ST_UQ]
    sq = S[ST_SQ]
    xq = S[ST_XQ]
    while True:
        s_due = sq[ctr[SQ_HEAD], 0] if ctr[SQ_HEAD] < ctr[SQ_TAIL] else _NEVER
        u_due = uq[ctr[UQ_HEAD], 0] if ctr[UQ_HEAD] < ctr[UQ_TAIL] else _NEVER
        x_due = xq[0, 0] if expire and ctr[XQ_SIZE] > 0 else _NEVER
        due = min(s_due, u_due, x_due)
        if due > until or due == _NEVER:
            return
        if s_due == due:
            j = sq[ctr[SQ_HEAD], 1]
            ctr[SQ_HEAD] += 1
            if inc[j, I_STATE] == OPEN and inc[j, I_VERSION] == 0:
                _emit(inc, ev, ctr, uq, settings, j, EV_OPEN, due, -1)
        elif u_due == due:
            j = uq[ctr[UQ_HEAD], 1]
            ctr[UQ_HEAD] += 1
            fresh = inc[j, I_LAST_EMIT] + settings[S_UPDATE_INTERVAL] == due
            if inc[j, I_STATE] == OPEN and inc[j, I_DIRTY] == 1 and fresh:
                _emit(inc, ev, ctr, uq, settings, j, EV_UPDATE, due, -1)
        else:
            e = xq[0, 1]
            firing = ent[e, E_STATUS] == FIRING
            expires = ent[e, E_LAST_SEEN] + settings[S_RESOLVE_TIMEOUT]
            if firing and expires > due:  # re-sent since: re-arm, staying armed
                heap_replace_top(xq, ctr, expires, e)
            else:
                heap_pop(xq, ctr)
                ent[e, E_ARMED] = 0
                if firing:
                    _resolve_entity(e, due, S)


@numba.njit(nogil=True, cache=True, inline="always")
def shortage(S, extra):
    """Which array cannot take one more alert (plus ``extra`` events), or DONE."""
    ctr = S[ST_CTR]
    fp_vals = S[ST_FP_VALS]
    ent = S[ST_ENT]
    inc = S[ST_INC]
    pool = S[ST_POOL]
    grp_vals = S[ST_GRP_VALS]
    ev = S[ST_EV]
    uq = S[ST_UQ]
    sq = S[ST_SQ]
    xq = S[ST_XQ]
    margin = 2 * ctr[N_OPEN] + 4 + extra
    if ctr[N_ENT] + 1 > ent.shape[0]:
        return NEED_ENT
    if ctr[N_INC] + 1 > inc.shape[0]:
        return NEED_INC
    if ctr[N_POOL] + 2 > pool.shape[0]:
        return NEED_POOL
    if ctr[N_EV] + margin > ev.shape[0]:
        return NEED_EV
    if ctr[UQ_TAIL] + margin > uq.shape[0]:
        return NEED_UQ
    if ctr[SQ_TAIL] + 2 > sq.shape[0]:
        return NEED_SQ
    if ctr[XQ_SIZE] + 2 > xq.shape[0]:
        return NEED_XQ
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
    group_within,
    severity,
    significance,
    status,
    S,
    out_inc,
    out_reason,
    out_why,
    out_via,
):
    """Correlate alerts ``start:`` of a time-ordered batch; returns (position, stop code)."""
    settings = S[ST_SETTINGS]
    ctr = S[ST_CTR]
    fp_keys = S[ST_FP_KEYS]
    fp_vals = S[ST_FP_VALS]
    ent = S[ST_ENT]
    ent_fp = S[ST_ENT_FP]
    cis = S[ST_CIS]
    inc = S[ST_INC]
    pool = S[ST_POOL]
    ev = S[ST_EV]
    uq = S[ST_UQ]
    sq = S[ST_SQ]
    xq = S[ST_XQ]
    grp_vals = S[ST_GRP_VALS]
    n = ts.shape[0]
    for i in range(start, n):
        # shortage(S, 0) on the arrays unpacked above: per alert, a helper unpacking S
        # costs more than the test
        margin = 2 * ctr[N_OPEN] + 4
        if (
            ctr[N_ENT] + 1 > ent.shape[0]
            or ctr[N_INC] + 1 > inc.shape[0]
            or ctr[N_POOL] + 2 > pool.shape[0]
            or ctr[N_EV] + margin > ev.shape[0]
            or ctr[UQ_TAIL] + margin > uq.shape[0]
            or ctr[SQ_TAIL] + 2 > sq.shape[0]
            or ctr[XQ_SIZE] + 2 > xq.shape[0]
            or 2 * (ctr[N_ENT] + 1) > fp_vals.shape[0]
            or 2 * (ctr[N_GRP] + 1) > grp_vals.shape[0]
        ):
            return i, shortage(S, 0)
        t = ts[i]
        if _due(sq, ctr, SQ_HEAD, SQ_TAIL, t) or _due(uq, ctr, UQ_HEAD, UQ_TAIL, t):
            fire_timers(t, True, S)
        else:
            # Only expiry is due: re-arm the alerts re-sent since, as fire_timers would,
            # here (that is most timers, and a call per alert costs more); the first that
            # expires goes to fire_timers with the rest.
            while ctr[XQ_SIZE] > 0 and xq[0, 0] <= t:
                e = xq[0, 1]
                expires = ent[e, E_LAST_SEEN] + settings[S_RESOLVE_TIMEOUT]
                if ent[e, E_STATUS] == FIRING and expires > xq[0, 0]:
                    heap_replace_top(xq, ctr, expires, e)
                else:
                    fire_timers(t, True, S)
                    break
        out_inc[i] = -1
        out_reason[i] = JOINED
        out_via[i] = -1
        if significance[i] == INFORMATIONAL and settings[S_DROP_INFO] != 0:
            out_reason[i] = DROP_INFORMATIONAL
            continue
        e = table_find(fp_keys, fp_vals, fp[i])
        if status[i] == RESOLVED:
            if e < 0:
                out_reason[i] = DROP_ORPHAN_RESOLVE
            elif ent[e, E_STATUS] == RESOLVED:
                out_reason[i] = DROP_DEDUPLICATED
            else:
                ent[e, E_LAST_SEEN] = t
                inc[ent[e, E_INC], I_ALERTS] += 1
                out_inc[i] = _resolve_entity(e, t, S)
                out_why[i] = WHY_MEMBER
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
        causal = significance[i] == EXCEPTION
        if c >= 0:
            cis[c, CI_LAST] = t
            if causal:
                cis[c, CI_LAST_CAUSAL] = t
        ent[e, E_LAST_SEEN] = t
        if settings[S_RESOLVE_TIMEOUT] > 0 and ent[e, E_ARMED] == 0:
            heap_push(xq, ctr, t + settings[S_RESOLVE_TIMEOUT], e)
            ent[e, E_ARMED] = 1
        was_firing = ent[e, E_STATUS] == FIRING
        if was_firing and t - ent[e, E_LAST_ACCEPT] < settings[S_DEDUP]:
            out_reason[i] = DROP_DEDUPLICATED
            continue
        ent[e, E_LAST_ACCEPT] = t
        if not was_firing:
            ent[e, E_STATUS] = FIRING
            ent[e, E_CAUSAL] = causal
            if c >= 0:
                cis[c, CI_FIRING] += 1
                if causal:
                    cis[c, CI_CAUSAL] += 1
                    if cis[c, CI_CAUSAL] == 1 and cis[c, CI_INFERRED] == 0:
                        _alerting_changed(c, 1, t, S)
        j = ent[e, E_INC]
        why = WHY_MEMBER
        via = -1
        if j >= 0 and inc[j, I_STATE] != OPEN:
            if _recently_resolved(j, t, S) and (
                inc[j, I_ROOT] < 0 or cis[inc[j, I_ROOT], CI_ROOT_INC] < 0
            ):
                _reopen(j, t, S)
                why = WHY_REOPENED
            else:
                j = -1
        if j < 0:
            if c >= 0:
                j, why, via = _place_on_topology(c, t, causal, S)
            else:
                j, why = _place_in_group(alertname[i], ci_label[i], group_within[i], t, S)
            ent[e, E_INC] = j
            append(pool, ctr, inc, j, e, I_FP_HEAD, I_FP_TAIL, I_FP_LEN)
        if not was_firing:
            inc[j, I_FIRING] += 1
        if c >= 0 and cis[c, CI_MEMBER_INC] != j:
            cis[c, CI_MEMBER_INC] = j
            append(pool, ctr, inc, j, c, I_CI_HEAD, I_CI_TAIL, I_CI_LEN)
        if c >= 0 and c == inc[j, I_ROOT]:
            inc[j, I_INFERRED] = 0
            if inc[j, I_ROOT_ALERTNAME] < 0:
                inc[j, I_ROOT_ALERTNAME] = alertname[i]
        out_inc[i] = j
        out_why[i] = why
        out_via[i] = via
        inc[j, I_ALERTS] += 1
        inc[j, I_LAST] = t
        inc[j, I_SEVERITY] = max(inc[j, I_SEVERITY], severity[i])
        inc[j, I_SIGNIFICANCE] = max(inc[j, I_SIGNIFICANCE], significance[i])
        if why == WHY_REOPENED or (inc[j, I_VERSION] == 0 and settings[S_SETTLE] == 0):
            _emit(inc, ev, ctr, uq, settings, j, EV_OPEN, t, -1)
        else:  # _touch, written out: most alerts send nothing, and a call costs more
            inc[j, I_DIRTY] = 1
            if inc[j, I_VERSION] != 0 and t >= inc[j, I_LAST_EMIT] + settings[S_UPDATE_INTERVAL]:
                _emit(inc, ev, ctr, uq, settings, j, EV_UPDATE, t, -1)
    return n, DONE


@numba.njit(nogil=True, cache=True)
def remap_ci_lists(pool, inc, n_inc, index_map):
    """Renumber the CIs in every incident's member list (each pool node once)."""
    seen = np.zeros(pool.shape[0], dtype=np.bool_)
    for j in range(n_inc):
        node = inc[j, I_CI_HEAD]
        for _ in range(inc[j, I_CI_LEN]):
            if not seen[node]:
                seen[node] = True
                pool[node, 0] = index_map[pool[node, 0]]
            node = pool[node, 1]


@numba.njit(nogil=True, cache=True)
def recount(cis, inc, openset, n_open, idom):
    """Rebuild the per-CI counters that depend on the dominator tree."""
    cis[:, CI_SUBROOTS] = 0
    cis[:, CI_ALERTING_CHILDREN] = 0
    cis[:, CI_DOM_CHILDREN] = 0
    for c in range(cis.shape[0]):
        p = idom[c]
        if p >= 0:
            cis[p, CI_DOM_CHILDREN] += 1
            if cis[c, CI_CAUSAL] > 0 or cis[c, CI_INFERRED] != 0:
                cis[p, CI_ALERTING_CHILDREN] += 1
    for k in range(n_open):
        root = inc[openset[k], I_ROOT]
        if root >= 0:
            _count_root(cis, idom, root, 1)
