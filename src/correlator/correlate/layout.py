"""Column layout of the correlation state arrays.

The kernel keeps its state in a few row-major int64 matrices (one row per
fingerprint, incident, CI or event) so that numba compiles plain indexing and
the state can be snapshotted with ``numpy.savez``. These constants name the
columns; numba reads them as compile-time constants.
"""

from __future__ import annotations

# Alert significance (ITIL): what first-level filtering decides.
INFORMATIONAL, WARNING_SIG, EXCEPTION = 0, 1, 2
SIGNIFICANCE_NAMES = ("informational", "warning", "exception")

# Why an accepted alert joined no incident.
JOINED, DROP_INFORMATIONAL, DROP_DEDUPLICATED, DROP_ORPHAN_RESOLVE = 0, 1, 2, 3
DROP_REASONS = ("", "informational", "deduplicated", "orphan_resolve")

# How an alert that joined an incident was placed (for explanations).
WHY_NONE, WHY_MEMBER, WHY_DOMINATOR, WHY_OPENED, WHY_TOOK_OVER, WHY_REOPENED, WHY_GROUPED = range(7)

# Incident states.
OPEN, RESOLVED_STATE, MERGED = 1, 2, 3

# Incident event kinds.
EV_OPEN, EV_UPDATE, EV_RESOLVE = 0, 1, 2
EVENT_NAMES = ("open", "update", "resolve")

# Settings vector.
(
    S_WINDOW,
    S_DEDUP,
    S_UPDATE_INTERVAL,
    S_DROP_INFO,
    S_SETTLE,
    S_RESOLVE_TIMEOUT,
    S_REOPEN,
    S_INFER_MIN,
    S_INFER_PERMILLE,
    S_NF,
) = range(10)

# Counters vector. Three timers: coalesced updates and settle delays are
# first-in-first-out queues (each has one fixed delay); alert expiry is a
# binary heap with one entry per firing fingerprint, re-armed when it fires
# early, so resends cost no timer entries.
(
    N_ENT,
    N_INC,
    N_POOL,
    N_EV,
    N_GRP,
    N_OPEN,
    UQ_HEAD,
    UQ_TAIL,
    SQ_HEAD,
    SQ_TAIL,
    XQ_SIZE,
    C_NF,
) = range(12)

# Kernel stop codes: which capacity ran out (the driver grows it and resumes).
(
    DONE,
    NEED_ENT,
    NEED_INC,
    NEED_POOL,
    NEED_EV,
    NEED_UQ,
    NEED_SQ,
    NEED_XQ,
    NEED_FPTAB,
    NEED_GRPTAB,
) = range(10)

# Fingerprint entities: one row per distinct fingerprint ever accepted.
# A causal fingerprint fires with exception significance: only those let a CI
# explain the alerts below it, take incidents over or count towards inference.
E_STATUS, E_LAST_ACCEPT, E_LAST_SEEN, E_INC, E_CI, E_CAUSAL, E_ARMED, E_NF = range(8)

# Configuration items.
(
    CI_FIRING,
    CI_LAST,
    CI_ROOT_INC,
    CI_MEMBER_INC,
    CI_SUBROOTS,
    CI_INFERRED,
    CI_ALERTING_CHILDREN,
    CI_DOM_CHILDREN,
    CI_LAST_INC,
    CI_CAUSAL,
    CI_LAST_CAUSAL,
    CI_NF,
) = range(12)

# Incidents.
(
    I_STATE,
    I_ROOT,
    I_ROOT_ALERTNAME,
    I_INFERRED,
    I_GROUP_ALERTNAME,
    I_GROUP_VALUE,
    I_ID_ROOT,
    I_ID_TS,
    I_FIRST,
    I_LAST,
    I_ALERTS,
    I_FIRING,
    I_SEVERITY,
    I_SIGNIFICANCE,
    I_VERSION,
    I_DIRTY,
    I_LAST_EMIT,
    I_RESOLVED_AT,
    I_FP_HEAD,
    I_FP_TAIL,
    I_FP_LEN,
    I_CI_HEAD,
    I_CI_TAIL,
    I_CI_LEN,
    I_OPEN_POS,
    I_MERGED_INTO,
    I_NF,
) = range(27)

# Incident events (a snapshot of the incident's scalars when it was emitted).
(
    V_INC,
    V_KIND,
    V_TS,
    V_VERSION,
    V_ROOT,
    V_ROOT_ALERTNAME,
    V_INFERRED,
    V_FIRST,
    V_LAST,
    V_ALERTS,
    V_FIRING,
    V_SEVERITY,
    V_SIGNIFICANCE,
    V_FP_HEAD,
    V_FP_LEN,
    V_CI_HEAD,
    V_CI_LEN,
    V_MERGED_INTO,
    V_NF,
) = range(19)

# Positions in the state tuple every kernel function receives.
(
    ST_SETTINGS,
    ST_CTR,
    ST_IDOM,
    ST_TIN,
    ST_TOUT,
    ST_FP_KEYS,
    ST_FP_VALS,
    ST_ENT,
    ST_ENT_FP,
    ST_CIS,
    ST_INC,
    ST_OPENSET,
    ST_POOL,
    ST_GRP_KEYS,
    ST_GRP_VALS,
    ST_EV,
    ST_UQ,
    ST_SQ,
    ST_XQ,
) = range(19)
