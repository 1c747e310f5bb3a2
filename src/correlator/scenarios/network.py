"""Seeded three-tier CMDB topologies and the impact of failures on them.

The generated network is what a small data centre fleet looks like in a CMDB
export: core routers, aggregation switches connected to one router each,
hosts connected to a switch (a share of them to two, for redundancy),
services running on hosts, and business services depending on services.
Every relation type (``connected_to``, ``runs_on``, ``depends_on``) means
"``from`` depends on ``to``": a failure of ``to`` can take ``from`` down.

Randomness comes from :class:`random.Random`, whose output for a given seed
is stable across Python versions, so committed fixtures stay byte-identical.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Mapping
from typing import Any

_SITES = ("fra1", "ams1", "lon1", "par1", "dub1", "mad1", "waw1", "sto1")
_TEAMS = (
    "team-platform",
    "team-payments",
    "team-search",
    "team-storefront",
    "team-data",
    "team-identity",
    "team-logistics",
    "team-messaging",
)
_OPERATING_SYSTEMS = ("ubuntu-22.04", "ubuntu-24.04", "rhel-9", "debian-12")
_APPS = (
    "nginx",
    "api",
    "worker",
    "postgres",
    "redis",
    "kafka",
    "elasticsearch",
    "memcached",
    "rabbitmq",
    "grpc-gateway",
)
_BUSINESS_SERVICES = (
    "checkout",
    "search",
    "payments",
    "catalog",
    "cart",
    "login",
    "shipping",
    "billing",
    "recommendations",
    "reviews",
    "inventory",
    "notifications",
    "accounts",
    "orders",
    "pricing",
    "loyalty",
    "returns",
    "invoicing",
    "messaging",
    "media",
    "analytics",
    "reporting",
    "support",
    "onboarding",
    "subscriptions",
    "wishlist",
    "promotions",
    "fraud-detection",
    "gift-cards",
    "ads",
)
# Share of services used by two business services rather than one.
_SHARED_SERVICE_SHARE = 0.3
# Per switch: the switch, its hosts and their services (services_per_host = 2).
_HOSTS_PER_SWITCH = 40
_SERVICES_PER_HOST = 2


def business_service_name(index: int) -> str:
    """A readable business service id: ``checkout``, ..., then ``checkout-2``."""
    base = _BUSINESS_SERVICES[index % len(_BUSINESS_SERVICES)]
    cycle = index // len(_BUSINESS_SERVICES)
    return base if cycle == 0 else f"{base}-{cycle + 1}"


def generate_network(
    *,
    routers: int = 2,
    switches_per_router: int = 4,
    hosts_per_switch: int = 30,
    services_per_host: int = 2,
    business_services: int = 8,
    dual_homed_share: float = 0.1,
    seed: int = 0,
) -> dict[str, Any]:
    """A CMDB export (``{"cis": [...], "relations": [...]}``) of a three-tier network.

    Ids are ``rt-N``, ``sw-N``, ``host-N`` (numbered across the whole network),
    ``svc-H-K`` (service K of host H) and readable business service names.
    A ``dual_homed_share`` of hosts get a second uplink, half of the time to a
    switch under another router (when there is one), so redundancy crosses
    both tiers. Every service is used by one or two business services and
    every business service uses at least one service.
    """
    counts = {
        "routers": routers,
        "switches_per_router": switches_per_router,
        "hosts_per_switch": hosts_per_switch,
        "services_per_host": services_per_host,
        "business_services": business_services,
    }
    for knob, value in counts.items():
        if value < 1:
            msg = f"generate_network: {knob} must be at least 1, got {value}"
            raise ValueError(msg)
    if not 0.0 <= dual_homed_share <= 1.0:
        msg = f"generate_network: dual_homed_share must be in [0, 1], got {dual_homed_share}"
        raise ValueError(msg)

    rng = random.Random(seed)
    cis: list[dict[str, Any]] = []
    relations: list[dict[str, str]] = []

    def relate(source: str, target: str, kind: str) -> None:
        relations.append({"from": source, "to": target, "type": kind})

    router_of: list[int] = []  # switch index -> router index
    for r in range(routers):
        site = _site(r)
        cis.append(_ci(f"rt-{r + 1}", "router", f"rt-{r + 1}.{site}.example.net", location=site))
    for r in range(routers):
        for _ in range(switches_per_router):
            router_of.append(r)
            sw = len(router_of)
            site = _site(r)
            cis.append(_ci(f"sw-{sw}", "switch", f"sw-{sw}.{site}.example.net", location=site))
            relate(f"sw-{sw}", f"rt-{r + 1}", "connected_to")

    n_switches = len(router_of)
    n_hosts = n_switches * hosts_per_switch
    dual_homed = set(rng.sample(range(n_hosts), round(dual_homed_share * n_hosts)))
    if n_switches < 2:
        dual_homed.clear()
    by_router = [[s for s, owner in enumerate(router_of) if owner == r] for r in range(routers)]
    service_ids: list[str] = []
    for h in range(n_hosts):
        sw = h // hosts_per_switch
        site = _site(router_of[sw])
        host = f"host-{h + 1}"
        rack = f"{site}-row{sw % switches_per_router + 1:02d}-rack{rng.randint(1, 12):02d}"
        owner = rng.choice(_TEAMS)
        system = rng.choice(_OPERATING_SYSTEMS)
        cis.append(
            _ci(host, "host", f"{host}.{site}.example.net", location=rack, owner=owner, os=system)
        )
        relate(host, f"sw-{sw + 1}", "connected_to")
        if h in dual_homed:
            relate(
                host, f"sw-{_second_switch(rng, sw, router_of[sw], by_router) + 1}", "connected_to"
            )
        for k in range(services_per_host):
            svc = f"svc-{h + 1}-{k + 1}"
            service_ids.append(svc)
            app = rng.choice(_APPS)
            cis.append(_ci(svc, "service", f"{app}-{h + 1}-{k + 1}", owner=rng.choice(_TEAMS)))
            relate(svc, host, "runs_on")

    users: list[list[int]] = [[] for _ in service_ids]
    guaranteed = rng.sample(range(len(service_ids)), min(business_services, len(service_ids)))
    for b, s in enumerate(guaranteed):
        users[s].append(b)
    for used_by in users:
        if not used_by:
            used_by.append(rng.randrange(business_services))
        if business_services > 1 and rng.random() < _SHARED_SERVICE_SHARE:
            other = rng.randrange(business_services - 1)
            used_by.append(other + (other >= used_by[0]))
    uses: list[list[str]] = [[] for _ in range(business_services)]
    for s, used_by in enumerate(users):
        for b in used_by:
            uses[b].append(service_ids[s])
    for b in range(business_services):
        name = business_service_name(b)
        title = name.replace("-", " ").title()
        cis.append(_ci(name, "business_service", title, owner=rng.choice(_TEAMS)))
        for svc in uses[b]:
            relate(name, svc, "depends_on")
    return {"cis": cis, "relations": relations}


def network_size(ci_count: int) -> dict[str, int | float]:
    """``generate_network`` keyword arguments for a network of about ``ci_count`` CIs.

    Switches carry ~40 hosts with two services each; routers grow with the
    square root of the switch count, business services with the CI count.
    The result is within a few percent of the target (1% at 20,000 and
    100,000), which is what benchmarks need.
    """
    if ci_count < 50:
        msg = f"network_size: ci_count must be at least 50, got {ci_count}"
        raise ValueError(msg)
    per_switch = 1 + _HOSTS_PER_SWITCH * (1 + _SERVICES_PER_HOST)
    business = min(400, max(4, ci_count // 250))
    switches = max(2, round((ci_count - business) / per_switch))
    routers = max(2, round(math.sqrt(switches / 4)))
    switches_per_router = max(1, round(switches / routers))
    switches = routers * switches_per_router
    hosts = (ci_count - business - routers - switches) / (switches * (1 + _SERVICES_PER_HOST))
    return {
        "routers": routers,
        "switches_per_router": switches_per_router,
        "hosts_per_switch": max(1, round(hosts)),
        "services_per_host": _SERVICES_PER_HOST,
        "business_services": business,
        "dual_homed_share": 0.1,
    }


class CmdbIndex:
    """Dependencies of a CMDB export, indexed for impact computations.

    ``deps[x]`` lists what x depends on (the ``to`` ends of x's relations, in
    file order, so a host's first switch is its primary uplink) and
    ``dependents[x]`` what depends on x.
    """

    def __init__(self, cmdb: Mapping[str, Any]) -> None:
        self.cis: dict[str, dict[str, Any]] = {ci["id"]: ci for ci in cmdb["cis"]}
        deps: dict[str, dict[str, None]] = {ci: {} for ci in self.cis}
        dependents: dict[str, dict[str, None]] = {ci: {} for ci in self.cis}
        for rel in cmdb["relations"]:
            deps[rel["from"]][rel["to"]] = None
            dependents[rel["to"]][rel["from"]] = None
        self.deps = {ci: list(targets) for ci, targets in deps.items()}
        self.dependents = {ci: list(sources) for ci, sources in dependents.items()}

    def of_type(self, kind: str) -> list[str]:
        """The ids of every CI of one type, in CMDB order."""
        return [ci for ci, attrs in self.cis.items() if attrs["type"] == kind]

    def down(self, failed: Iterable[str]) -> set[str]:
        """Every CI taken down by the failed set, the failed CIs included.

        A CI is down when it failed, or when it has dependencies and all of
        them are down; equivalently, when every impact path from a root to it
        passes through a failed CI (it is dominated by the failed set). A
        host with one healthy uplink therefore stays up.
        """
        down = set(failed)
        missing = set(down) - self.cis.keys()
        if missing:
            msg = f"unknown CI ids in failed set: {sorted(missing)}"
            raise ValueError(msg)
        pending: dict[str, int] = {}
        stack = list(down)
        while stack:
            ci = stack.pop()
            for dependent in self.dependents[ci]:
                if dependent in down:
                    continue
                left = pending.get(dependent, len(self.deps[dependent])) - 1
                pending[dependent] = left
                if left == 0:
                    down.add(dependent)
                    stack.append(dependent)
        return down

    def interacts(self, roots: list[str]) -> bool:
        """Whether failing ``roots`` together downs CIs that no single root explains.

        Independent failures have disjoint impact sets whose union is the
        impact of all of them; a host whose two uplinks both fail is down
        only because of the combination, and its ground truth would be
        ambiguous, so scenario builders avoid such picks.
        """
        singles = [self.down([root]) for root in roots]
        union: set[str] = set()
        for single in singles:
            if union & single:
                return True
            union |= single
        return union != self.down(roots)


def impacted(cmdb: Mapping[str, Any], failed: Iterable[str]) -> set[str]:
    """The CIs of ``cmdb`` that are down when ``failed`` fail (see ``CmdbIndex.down``)."""
    return CmdbIndex(cmdb).down(failed)


def _ci(ci_id: str, kind: str, name: str, **attrs: str) -> dict[str, Any]:
    return {"id": ci_id, "type": kind, "name": name, **attrs}


def _site(router: int) -> str:
    base = _SITES[router % len(_SITES)]
    return base if router < len(_SITES) else f"{base}-{router // len(_SITES) + 1}"


def _second_switch(rng: random.Random, primary: int, home: int, by_router: list[list[int]]) -> int:
    """A second uplink for a host on switch ``primary`` (under router ``home``).

    Half of the time it is a switch under another router, when there is one.
    """
    same = [s for s in by_router[home] if s != primary]
    others = [r for r in range(len(by_router)) if r != home]
    if same and (not others or rng.random() < 0.5):
        return rng.choice(same)
    return rng.choice(by_router[rng.choice(others)])
