"""Scenario builders: alert storms over a CMDB, each with its ground truth.

A builder picks what fails and when, then records, for every failure, the
root's own alert (unless the scenario silences it) and one alert for each
CI that is down because of it: 95% of down hosts and services alert, every
down switch does. Alerts start 10-60 s after the failure (scrape and rule
evaluation delay), are re-sent every 15-60 s (an interval per alert) and
resolve 5-45 s after the failure ends. Background noise is added on
healthy CIs and on CIs the CMDB does not know, until it makes up
``noise_share`` of all messages.

Builders take the CMDB to fail (default: a small generated network, seeded
with ``seed``) and only pick failures whose impact sets are disjoint, so
every alert has exactly one cause; see :meth:`CmdbIndex.interacts`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from correlator.fingerprint import fingerprint, format_fingerprint
from correlator.scenarios.catalog import (
    HOST_NOISE,
    INFO_NOISE,
    MOUNTPOINTS,
    ROOT_ALERTS,
    SERVICE_NOISE,
    SYMPTOMS,
    UNKNOWN_NOISE,
    Alert,
    link_alert,
    make_alert,
)
from correlator.scenarios.network import CmdbIndex, generate_network
from correlator.scenarios.recording import (
    MS,
    NS,
    START_NS,
    Scenario,
    Sources,
    expand,
    render,
)

SYMPTOM_ALERT_SHARE = 0.95
# Of the noise sources: on CIs missing from the CMDB, and with severity "info".
UNKNOWN_NOISE_SHARE = 0.15
INFO_NOISE_SHARE = 0.2
_QUIET_S = 90  # noise-only lead-in before the first failure
_TAIL_S = 120  # recording goes on this long after the last failure ends
_MIN_DURATION_S = 60


@dataclass(frozen=True)
class _Failure:
    root: str
    kind: str
    start: int
    end: int
    silent: bool = False
    root_delay: int | None = None  # the root first arrives this long after the first symptom


class _Recorder:
    """Alert sources collected so far, each with the cause or noise class it belongs to."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.alerts: list[Alert] = []
        self.owners: list[str] = []
        self.rows: list[tuple[int, int, int, int, bool]] = []
        self.messages = 0

    def add(
        self,
        alert: Alert,
        owner: str,
        timing: tuple[int, int, int, int],
        *,
        resolves: bool = True,
    ) -> int:
        """Record one source; return its first receive time."""
        starts_at, first_received, interval, ends_at = timing
        self.alerts.append(alert)
        self.owners.append(owner)
        self.rows.append((starts_at, first_received, interval, ends_at, resolves))
        self.messages += (ends_at - first_received - 1) // interval + 1 + resolves
        return first_received

    def condition(
        self, fired_at: int, cleared_at: int, delay_s: tuple[float, float] = (10, 60)
    ) -> tuple[int, int, int, int]:
        """Timing of an alert whose condition holds from ``fired_at`` to ``cleared_at``."""
        rng = self.rng
        starts_at = _ms(fired_at + rng.uniform(*delay_s) * NS)
        first_received = starts_at + rng.randrange(1500 * MS)
        interval = rng.randrange(15_000, 60_001) * MS
        ends_at = _ms(cleared_at + rng.uniform(5, 45) * NS)
        return starts_at, first_received, interval, ends_at

    def scenario(
        self, name: str, seed: int, cmdb: dict[str, Any], causes: list[dict[str, Any]]
    ) -> Scenario:
        """Expand the sources into messages and attach the ground truth."""
        columns = list(zip(*self.rows, strict=True))
        sources = Sources(
            *(np.array(column, dtype=np.int64) for column in columns[:4]),
            resolves=np.array(columns[4], dtype=bool),
            salt=np.array([self.rng.getrandbits(64) for _ in self.rows], dtype=np.uint64),
        )
        alerts = render(self.alerts, sources, expand(sources))
        owned: dict[str, set[str]] = {}
        owner_of: dict[str, str] = {}
        for alert, owner in zip(self.alerts, self.owners, strict=True):
            fp = format_fingerprint(fingerprint(alert.labels))
            if owner_of.setdefault(fp, owner) != owner:
                msg = f"scenario {name!r}: fingerprint {fp} belongs to two causes"
                raise ValueError(msg)
            owned.setdefault(owner, set()).add(fp)
        for cause in causes:
            cause["fingerprints"] = sorted(owned.get(cause["id"], ()))
        noise = {fp: owner for fp, owner in owner_of.items() if owner in ("noise", "informational")}
        truth = {"scenario": name, "seed": seed, "causes": causes, "noise": noise}
        return Scenario(name, cmdb, alerts, truth)


def switch_failure(
    *,
    seed: int = 0,
    cmdb: dict[str, Any] | None = None,
    duration_s: float = 600,
    noise_share: float = 0.05,
    name: str = "switch-failure",
) -> Scenario:
    """One aggregation switch fails for ``duration_s``, then recovers.

    The switch is one with a dual-homed host whose other uplink is healthy
    (when the network has one), so the storm shows that such a host stays up.
    """
    rng, cmdb, idx = _setup(seed, cmdb)
    candidates = [sw for sw in idx.of_type("switch") if _redundant_hosts(idx, sw)]
    switch = rng.choice(candidates or idx.of_type("switch"))
    failure = _failure_at(rng, switch, "switch_failure", _QUIET_S, duration_s)
    return _build(name, seed, cmdb, idx, rng, [failure], noise_share)


def router_failure(
    *,
    seed: int = 0,
    cmdb: dict[str, Any] | None = None,
    duration_s: float = 180,
    noise_share: float = 0.05,
    name: str = "router-failure",
) -> Scenario:
    """A core router fails: its switches, their single-homed hosts and services go down."""
    rng, cmdb, idx = _setup(seed, cmdb)
    router = rng.choice(idx.of_type("router"))
    failure = _failure_at(rng, router, "router_failure", _QUIET_S, duration_s)
    return _build(name, seed, cmdb, idx, rng, [failure], noise_share)


def overlapping_failures(
    n: int = 2,
    *,
    seed: int = 0,
    cmdb: dict[str, Any] | None = None,
    router_failures: int = 0,
    duration_s: float = 300,
    noise_share: float = 0.05,
    name: str = "overlapping-failures",
) -> Scenario:
    """``n`` independent failures overlapping in time, ``router_failures`` of them routers.

    Switch failures are spread over the routers that do not fail, and picks
    whose impacts interact (a host dual-homed to two failed parts) are
    redrawn, so every down CI has exactly one cause. Each failure starts
    10-40% of ``duration_s`` after the previous one.
    """
    rng, cmdb, idx = _setup(seed, cmdb)
    routers = idx.of_type("router")
    if n < 1 or not 0 <= router_failures <= min(n, len(routers)):
        msg = (
            f"overlapping_failures: need n >= 1 and 0 <= router_failures <= min(n, routers), "
            f"got n={n}, router_failures={router_failures} with {len(routers)} routers"
        )
        raise ValueError(msg)
    if router_failures == len(routers) and n > router_failures:
        msg = "overlapping_failures: every router fails, no switch is left to fail on its own"
        raise ValueError(msg)
    router_of = {sw: idx.deps[sw][0] for sw in idx.of_type("switch")}
    for _ in range(100):
        failed_routers = rng.sample(routers, router_failures)
        up = [r for r in routers if r not in failed_routers]
        up = rng.sample(up, len(up))
        roots = list(failed_routers)
        for k in range(n - router_failures):
            under = [sw for sw, r in router_of.items() if r == up[k % len(up)] and sw not in roots]
            if not under:
                break
            roots.append(rng.choice(under))
        if len(roots) == n and not idx.interacts(roots):
            break
    else:
        msg = f"overlapping_failures: found no {n} independent failures in this network"
        raise ValueError(msg)

    failures = []
    offset_s: float = _QUIET_S
    for root in rng.sample(roots, n):
        kind = f"{idx.cis[root]['type']}_failure"
        failures.append(_failure_at(rng, root, kind, offset_s, duration_s * rng.uniform(0.8, 1.2)))
        offset_s += duration_s * rng.uniform(0.1, 0.4)
    return _build(name, seed, cmdb, idx, rng, failures, noise_share)


def dual_homed_partial(
    *,
    seed: int = 0,
    cmdb: dict[str, Any] | None = None,
    duration_s: float = 420,
    noise_share: float = 0.05,
    name: str = "dual-homed",
) -> Scenario:
    """A switch fails and, within 15 s of it, a dual-homed host on it crashes on its own.

    The host's other uplink is healthy, so the switch does not explain it:
    its ``HostDown`` (which carries ``switch=<failed switch>``, its primary
    uplink) and its services' alerts are a second cause, while the switch's
    single-homed hosts belong to the switch.
    """
    rng, cmdb, idx = _setup(seed, cmdb)
    pairs = [(sw, h) for sw in idx.of_type("switch") for h in _redundant_hosts(idx, sw)]
    primary = [(sw, h) for sw, h in pairs if idx.deps[h][0] == sw]
    if not pairs:
        raise ValueError("dual_homed_partial: the network has no dual-homed host")
    switch, host = rng.choice(primary or pairs)
    failure = _failure_at(rng, switch, "switch_failure", _QUIET_S, duration_s)
    crash_s = _QUIET_S + rng.uniform(-15, 15)
    crash_duration_s = max(_MIN_DURATION_S, duration_s * rng.uniform(0.5, 1.0))
    crash = _failure_at(rng, host, "host_failure", crash_s, crash_duration_s)
    return _build(name, seed, cmdb, idx, rng, [failure, crash], noise_share)


def late_root(
    delay_s: float = 30,
    *,
    seed: int = 0,
    cmdb: dict[str, Any] | None = None,
    duration_s: float = 420,
    noise_share: float = 0.05,
    name: str | None = None,
) -> Scenario:
    """A switch failure whose own alert arrives ``delay_s`` after the first symptom."""
    if not 0 <= delay_s <= duration_s - _MIN_DURATION_S:
        msg = f"late_root: delay_s must be in [0, duration_s - 60], got {delay_s}"
        raise ValueError(msg)
    rng, cmdb, idx = _setup(seed, cmdb)
    switch = rng.choice(idx.of_type("switch"))
    failure = _failure_at(rng, switch, "switch_failure", _QUIET_S, duration_s)
    failure = replace(failure, root_delay=round(delay_s * NS))
    return _build(name or f"late-root-{delay_s:g}s", seed, cmdb, idx, rng, [failure], noise_share)


def silent_root(
    *,
    seed: int = 0,
    cmdb: dict[str, Any] | None = None,
    duration_s: float = 420,
    noise_share: float = 0.05,
    name: str = "silent-root",
) -> Scenario:
    """A switch fails without alerting itself; its cause in the truth is ``inferred``."""
    rng, cmdb, idx = _setup(seed, cmdb)
    switch = rng.choice(idx.of_type("switch"))
    failure = _failure_at(rng, switch, "switch_failure", _QUIET_S, duration_s)
    failure = replace(failure, silent=True)
    return _build(name, seed, cmdb, idx, rng, [failure], noise_share)


def link_flap(
    *,
    seed: int = 0,
    cmdb: dict[str, Any] | None = None,
    flaps: int = 10,
    noise_share: float = 0.05,
    name: str = "link-flap",
) -> Scenario:
    """An interface of a switch goes down and up ``flaps`` times, 20-90 s apart.

    Each flap is a ``LinkDown`` trap and, 2-20 s later, a ``LinkUp`` trap
    (one message each, new ``startsAt``); both alerts resolve five minutes
    after the last flap. Nothing depends on the link alone, so nothing
    else goes down.
    """
    if flaps < 1:
        msg = f"link_flap: flaps must be at least 1, got {flaps}"
        raise ValueError(msg)
    rng, cmdb, idx = _setup(seed, cmdb)
    switch = rng.choice(idx.of_type("switch"))
    if_name = f"eth1/{rng.randint(1, 48)}"
    downs, ups = [], []
    at = START_NS + _QUIET_S * NS
    for _ in range(flaps):
        downs.append(_ms(at))
        ups.append(_ms(at + rng.uniform(2, 20) * NS))
        at = ups[-1] + rng.uniform(20, 90) * NS
    end = ups[-1] + 300 * NS
    rec = _Recorder(rng)
    for alertname, times in (("LinkDown", downs), ("LinkUp", ups)):
        alert = link_alert(alertname, switch, if_name)
        for k, starts_at in enumerate(times):
            first = starts_at + rng.randrange(500 * MS)
            ends_at = end if k == flaps - 1 else first + 1
            timing = (starts_at, first, ends_at - first, ends_at)
            rec.add(alert, "cause-1", timing, resolves=k == flaps - 1)
    cause = {"id": "cause-1", "root_ci": switch, "inferred": False, "kind": "link_flap"}
    _record_noise(rec, idx, set(), noise_share, (START_NS, end + _TAIL_S * NS))
    return rec.scenario(name, seed, cmdb, [cause])


def _setup(
    seed: int, cmdb: dict[str, Any] | None
) -> tuple[random.Random, dict[str, Any], CmdbIndex]:
    network = generate_network(seed=seed) if cmdb is None else cmdb
    return random.Random(seed), network, CmdbIndex(network)


def _failure_at(
    rng: random.Random, root: str, kind: str, offset_s: float, duration_s: float
) -> _Failure:
    if duration_s < _MIN_DURATION_S:
        msg = f"{kind} of {root}: duration must be at least {_MIN_DURATION_S} s, got {duration_s}"
        raise ValueError(msg)
    start = _ms(START_NS + offset_s * NS)
    return _Failure(root, kind, start, _ms(start + duration_s * NS))


def _build(
    name: str,
    seed: int,
    cmdb: dict[str, Any],
    idx: CmdbIndex,
    rng: random.Random,
    failures: list[_Failure],
    noise_share: float,
) -> Scenario:
    if idx.interacts([f.root for f in failures]):
        msg = f"scenario {name!r}: the failures' impacts overlap, causes would be ambiguous"
        raise ValueError(msg)
    rec = _Recorder(rng)
    causes = []
    down_all: set[str] = set()
    for i, failure in enumerate(sorted(failures, key=lambda f: (f.start, f.root))):
        cause_id = f"cause-{i + 1}"
        down = idx.down([failure.root])
        down_all |= down
        _record_failure(rec, idx, failure, cause_id, down)
        causes.append(
            {
                "id": cause_id,
                "root_ci": failure.root,
                "inferred": failure.silent,
                "kind": failure.kind,
            }
        )
    span = (START_NS, max(f.end for f in failures) + _TAIL_S * NS)
    _record_noise(rec, idx, down_all, noise_share, span)
    return rec.scenario(name, seed, cmdb, causes)


def _record_failure(
    rec: _Recorder, idx: CmdbIndex, failure: _Failure, cause_id: str, down: set[str]
) -> None:
    rng = rec.rng
    firsts = []
    for ci, attrs in idx.cis.items():
        ci_type = attrs["type"]
        if ci not in down or ci == failure.root or ci_type not in SYMPTOMS:
            continue
        if ci_type != "switch" and rng.random() >= SYMPTOM_ALERT_SHARE:
            continue
        names, weights = SYMPTOMS[ci_type]
        alert = _alert(idx, rng.choices(names, weights)[0], ci)
        firsts.append(rec.add(alert, cause_id, rec.condition(failure.start, failure.end)))
    if failure.silent:
        return
    alert = _alert(idx, ROOT_ALERTS[idx.cis[failure.root]["type"]], failure.root)
    timing = rec.condition(failure.start, failure.end, delay_s=(5, 20))
    if failure.root_delay is not None and firsts:
        first = min(firsts) + failure.root_delay
        timing = (_ms(first - rng.randrange(NS)), first, *timing[2:])
    rec.add(alert, cause_id, timing)


def _record_noise(
    rec: _Recorder,
    idx: CmdbIndex,
    down: set[str],
    share: float,
    span: tuple[int, int],
) -> None:
    """Add noise sources until they make up about ``share`` of all messages."""
    if not 0 <= share < 1:
        msg = f"noise_share must be in [0, 1), got {share}"
        raise ValueError(msg)
    rng = rec.rng
    healthy = [
        ci for ci, a in idx.cis.items() if a["type"] in ("host", "service") and ci not in down
    ]
    target = share / (1 - share) * rec.messages
    made = 0
    seen = {tuple(sorted(alert.labels.items())) for alert in rec.alerts}
    for _ in range(int(100 * target) + 100):
        if made >= target:
            return
        draw = rng.random() if healthy else 0.0
        if draw < UNKNOWN_NOISE_SHARE:
            owner, alert = "noise", _unknown_noise(rng, idx)
        elif draw < UNKNOWN_NOISE_SHARE + INFO_NOISE_SHARE:
            owner, alert = "informational", _ci_noise(rng, idx, healthy, INFO_NOISE)
        else:
            owner, alert = "noise", _ci_noise(rng, idx, healthy, None)
        key = tuple(sorted(alert.labels.items()))
        if key in seen:
            continue
        seen.add(key)
        fired_at = span[0] + rng.randrange(span[1] - span[0] - _MIN_DURATION_S * NS)
        cleared_at = min(fired_at + rng.uniform(60, 480) * NS, span[1])
        before = rec.messages
        rec.add(alert, owner, rec.condition(fired_at, cleared_at, delay_s=(0, 5)))
        made += rec.messages - before
    msg = "could not draw enough distinct noise alerts for this network"
    raise ValueError(msg)


def _unknown_noise(rng: random.Random, idx: CmdbIndex) -> Alert:
    ci = f"lab-{rng.randint(1, 40)}"
    while ci in idx.cis:
        ci = f"{ci}-x"
    alertname = rng.choice(UNKNOWN_NOISE)
    return make_alert(alertname, ci, "host", extra=_noise_extra(rng, alertname))


def _ci_noise(
    rng: random.Random, idx: CmdbIndex, healthy: list[str], names: tuple[str, ...] | None
) -> Alert:
    ci = rng.choice(healthy)
    ci_type = idx.cis[ci]["type"]
    if names is None:
        names = HOST_NOISE if ci_type == "host" else SERVICE_NOISE
    alertname = rng.choice(names)
    return _alert(idx, alertname, ci, extra=_noise_extra(rng, alertname))


def _noise_extra(rng: random.Random, alertname: str) -> dict[str, str] | None:
    return {"mountpoint": rng.choice(MOUNTPOINTS)} if alertname == "DiskSpaceLow" else None


def _alert(idx: CmdbIndex, alertname: str, ci: str, extra: dict[str, str] | None = None) -> Alert:
    ci_type = idx.cis[ci]["type"]
    switch = idx.deps[ci][0] if ci_type == "host" else None
    return make_alert(alertname, ci, ci_type, switch=switch, extra=extra)


def _redundant_hosts(idx: CmdbIndex, switch: str) -> list[str]:
    """Hosts on ``switch`` that have another uplink too."""
    return [
        h for h in idx.dependents[switch] if idx.cis[h]["type"] == "host" and len(idx.deps[h]) > 1
    ]


def _ms(ns: float) -> int:
    return int(ns) // MS * MS
