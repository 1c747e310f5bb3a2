"""Column layout of the correlation state arrays.

The kernel keeps its state in a few row-major int64 matrices (one row per
fingerprint, incident, CI or event) so that numba compiles plain indexing and
the state can be snapshotted with ``numpy.save``. These constants name the
columns; numba reads them as compile-time constants.
"""

from __future__ import annotations

# Alert significance (ITIL): what first-level filtering decides.
INFORMATIONAL, WARNING_SIG, EXCEPTION = 0, 1, 2
SIGNIFICANCE_NAMES = ("informational", "warning", "exception")

# Why an accepted alert joined no incident.
JOINED, DROP_INFORMATIONAL, DROP_DEDUPLICATED, DROP_ORPHAN_RESOLVE = 0, 1, 2, 3
DROP_REASONS = ("", "informational", "deduplicated", "orphan_resolve")

# Incident states.
OPEN, RESOLVED_STATE, MERGED = 1, 2, 3

# Incident event kinds.
EV_OPEN, EV_UPDATE, EV_RESOLVE = 0, 1, 2
EVENT_NAMES = ("open", "update", "resolve")

# Settings vector.
S_WINDOW, S_DEDUP, S_UPDATE_INTERVAL, S_DROP_INFO, S_NF = 0, 1, 2, 3, 4

# Counters vector.
N_ENT, N_INC, N_POOL, N_EV, Q_HEAD, Q_TAIL, N_GRP, N_OPEN, C_NF = range(9)

# Kernel stop codes: which capacity ran out (the driver grows it and resumes).
DONE, NEED_ENT, NEED_INC, NEED_POOL, NEED_EV, NEED_QUEUE, NEED_FPTAB, NEED_GRPTAB = range(8)

# Fingerprint entities: one row per distinct fingerprint ever accepted.
E_STATUS, E_LAST_ACCEPT, E_LAST_SEEN, E_INC, E_CI, E_NF = range(6)

# Configuration items.
CI_FIRING, CI_LAST, CI_ROOT_INC, CI_MEMBER_INC, CI_SUBROOTS, CI_NF = range(6)

# Incidents.
(
    I_STATE,
    I_ROOT,
    I_ROOT_ALERTNAME,
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
    I_FP_HEAD,
    I_FP_TAIL,
    I_FP_LEN,
    I_CI_HEAD,
    I_CI_TAIL,
    I_CI_LEN,
    I_OPEN_POS,
    I_MERGED_INTO,
    I_NF,
) = range(25)

# Incident events (a snapshot of the incident's scalars when it was emitted).
(
    V_INC,
    V_KIND,
    V_TS,
    V_VERSION,
    V_ROOT,
    V_ROOT_ALERTNAME,
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
) = range(18)
