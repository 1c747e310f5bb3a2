"""The scenario generator: topologies, storms, ground truth and committed fixtures."""

from __future__ import annotations

import importlib.util
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest

from correlator import scenarios as sc
from correlator.fingerprint import fingerprint, format_fingerprint
from correlator.scenarios.bulk import storm, storm_table, write_storm_parquet
from correlator.scenarios.network import CmdbIndex
from correlator.scenarios.recording import ZERO_TIME, format_time, parse_time
from correlator.schema import ALERT_SCHEMA

ROOT = Path(__file__).resolve().parents[1]
DOWN_ALERTS = {"HostDown", "NodeExporterDown", "ServiceDown", "ProbeFailed", "HighErrorRate"}

BUILDERS = {
    "switch_failure": sc.switch_failure,
    "router_failure": sc.router_failure,
    "overlapping_failures": sc.overlapping_failures,
    "dual_homed_partial": sc.dual_homed_partial,
    "late_root": sc.late_root,
    "silent_root": sc.silent_root,
    "link_flap": sc.link_flap,
}


@pytest.fixture(scope="module")
def network() -> dict[str, Any]:
    return sc.generate_network(seed=5)


@pytest.fixture(scope="module")
def built(network: dict[str, Any]) -> dict[str, sc.Scenario]:
    return {name: build(seed=3, cmdb=network) for name, build in BUILDERS.items()}


@pytest.fixture(scope="module")
def small_storm():
    return storm(20_000, 2_000, seed=4)


def fp(alert: dict[str, Any]) -> str:
    return format_fingerprint(fingerprint(alert["labels"]))


def ci_of(labels: dict[str, str]) -> str:
    return labels.get("ci") or labels["instance"].rsplit(":", 1)[0]


def owner_map(truth: dict[str, Any]) -> dict[str, str]:
    """Fingerprint -> cause id or noise class; fails if one is listed twice."""
    owners: dict[str, str] = {}
    for cause in truth["causes"]:
        for f in cause["fingerprints"]:
            assert owners.setdefault(f, cause["id"]) == cause["id"], f
    for f, cls in truth["noise"].items():
        assert f not in owners, f"{f} is in a cause and in noise"
        assert cls in ("noise", "informational")
        owners[f] = cls
    return owners


def first_received(alerts: list[dict[str, Any]]) -> dict[str, int]:
    first: dict[str, int] = {}
    for alert in alerts:
        first.setdefault(fp(alert), parse_time(alert["receivedAt"]))
    return first


# -- topology ----------------------------------------------------------------


def test_network_shape(network: dict[str, Any]) -> None:
    types = Counter(ci["type"] for ci in network["cis"])
    assert types == {"router": 2, "switch": 8, "host": 240, "service": 480, "business_service": 8}
    ids = [ci["id"] for ci in network["cis"]]
    assert len(set(ids)) == len(ids)
    names = {ci["name"] for ci in network["cis"]}
    assert not names & set(ids), "a name equal to another CI's id would make lookups ambiguous"
    assert all(
        {"location", "owner", "os"} <= ci.keys() for ci in network["cis"] if ci["type"] == "host"
    )
    assert all("owner" in ci for ci in network["cis"] if ci["type"] == "service")

    idx = CmdbIndex(network)
    kinds = {
        (idx.cis[r["from"]]["type"], r["type"], idx.cis[r["to"]]["type"])
        for r in network["relations"]
    }
    assert kinds == {
        ("switch", "connected_to", "router"),
        ("host", "connected_to", "switch"),
        ("service", "runs_on", "host"),
        ("business_service", "depends_on", "service"),
    }
    assert all(idx.deps[r] == [] for r in idx.of_type("router"))
    assert all(len(idx.deps[s]) == 1 for s in idx.of_type("switch"))
    uplinks = [idx.deps[h] for h in idx.of_type("host")]
    assert {len(u) for u in uplinks} == {1, 2}
    assert sum(len(u) == 2 for u in uplinks) == 24  # 10% of 240
    same_router = [idx.deps[a] == idx.deps[b] for a, b in (u for u in uplinks if len(u) == 2)]
    assert any(same_router) and not all(same_router)
    assert {len(idx.dependents[s]) for s in idx.of_type("service")} <= {1, 2}
    assert all(idx.deps[b] for b in idx.of_type("business_service"))
    assert idx.of_type("business_service")[:3] == ["checkout", "search", "payments"]


def test_network_is_seeded() -> None:
    assert sc.generate_network(seed=1) == sc.generate_network(seed=1)
    assert sc.generate_network(seed=1) != sc.generate_network(seed=2)


@pytest.mark.parametrize("target", [2_000, 20_000, 100_000])
def test_network_size(target: int) -> None:
    p = sc.network_size(target)
    switches = p["routers"] * p["switches_per_router"]
    hosts = switches * p["hosts_per_switch"]
    total = p["routers"] + switches + hosts * (1 + p["services_per_host"]) + p["business_services"]
    assert abs(total - target) / target < 0.02
    if target == 2_000:
        assert len(sc.generate_network(**p, seed=0)["cis"]) == total


def test_impact_respects_redundancy(network: dict[str, Any]) -> None:
    idx = CmdbIndex(network)
    host = next(h for h in idx.of_type("host") if len(idx.deps[h]) == 2)
    first, second = idx.deps[host]
    assert host not in sc.impacted(network, [first])
    assert host not in sc.impacted(network, [second])
    both = sc.impacted(network, [first, second])
    assert {host, f"svc-{host[5:]}-1", f"svc-{host[5:]}-2"} <= both
    assert CmdbIndex(network).interacts([first, second])


# -- every scenario ------------------------------------------------------------


@pytest.mark.parametrize("name", BUILDERS)
def test_same_seed_same_storm_other_seed_other_storm(name: str, network, built) -> None:
    again = BUILDERS[name](seed=3, cmdb=network)
    assert again.alerts == built[name].alerts
    assert again.truth == built[name].truth
    assert BUILDERS[name](seed=4, cmdb=network).alerts != built[name].alerts


@pytest.mark.parametrize("name", BUILDERS)
def test_every_fingerprint_has_exactly_one_cause_or_is_noise(name: str, built) -> None:
    scenario = built[name]
    owners = owner_map(scenario.truth)
    assert {fp(a) for a in scenario.alerts} == owners.keys()
    assert [c["id"] for c in scenario.truth["causes"]] == [
        f"cause-{i + 1}" for i in range(len(scenario.truth["causes"]))
    ]
    assert scenario.truth["scenario"] == scenario.name and scenario.truth["seed"] == 3


@pytest.mark.parametrize("name", BUILDERS)
def test_alerts_are_in_received_order(name: str, built) -> None:
    received = [parse_time(a["receivedAt"]) for a in built[name].alerts]
    assert received == sorted(received)


@pytest.mark.parametrize("name", BUILDERS)
def test_each_alert_fires_then_resolves_once(name: str, built) -> None:
    by_fp: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for alert in built[name].alerts:
        by_fp[fp(alert)].append(alert)
    for messages in by_fp.values():
        statuses = [m["status"] for m in messages]
        assert statuses[-1] == "resolved" and statuses.count("resolved") == 1
        assert all(m["endsAt"] == ZERO_TIME for m in messages[:-1])
        ends_at, received = (
            parse_time(messages[-1]["endsAt"]),
            parse_time(messages[-1]["receivedAt"]),
        )
        assert parse_time(messages[-2]["receivedAt"]) < ends_at <= received
        if name != "link_flap":  # each flap is a new trap with its own startsAt
            assert len({m["startsAt"] for m in messages}) == 1


@pytest.mark.parametrize("name", BUILDERS)
def test_cause_alerts_are_on_cis_the_root_takes_down(name: str, network, built) -> None:
    truth = built[name].truth
    owners = owner_map(truth)
    impact = {c["id"]: sc.impacted(network, [c["root_ci"]]) for c in truth["causes"]}
    for alert in built[name].alerts:
        cause = owners[fp(alert)]
        if cause in impact:
            assert ci_of(alert["labels"]) in impact[cause]


def test_switch_failure_shape(network, built) -> None:
    scenario = built["switch_failure"]
    (cause,) = scenario.truth["causes"]
    assert cause["kind"] == "switch_failure" and not cause["inferred"]
    assert len(scenario.alerts) >= 1_000
    failure = [a for a in scenario.alerts if fp(a) in set(cause["fingerprints"])]
    starts = sorted(parse_time(a["startsAt"]) for a in failure)
    assert 40e9 < starts[-1] - starts[0] < 65e9  # first alerts spread over 10-60 s
    noise = Counter(scenario.truth["noise"].values())
    assert noise["noise"] > 0
    share = sum(fp(a) in scenario.truth["noise"] for a in scenario.alerts) / len(scenario.alerts)
    assert 0.04 < share < 0.08


def test_noise_is_on_healthy_or_unknown_cis_and_info_is_informational(network) -> None:
    scenario = sc.switch_failure(seed=8, cmdb=network, noise_share=0.3)
    (cause,) = scenario.truth["causes"]
    down = sc.impacted(network, [cause["root_ci"]])
    known = {ci["id"] for ci in network["cis"]}
    noisy = [a["labels"] for a in scenario.alerts if fp(a) in scenario.truth["noise"]]
    assert not {ci_of(labels) for labels in noisy} & down
    assert any(ci_of(labels) not in known for labels in noisy)  # e.g. instance="lab-9:9100"
    for labels in noisy:
        cls = scenario.truth["noise"][format_fingerprint(fingerprint(labels))]
        assert (cls == "informational") == (labels["severity"] == "info")
    share = len(noisy) / len(scenario.alerts)
    assert 0.25 < share < 0.35


def test_dual_homed_host_with_a_healthy_uplink_stays_silent(network, built) -> None:
    idx = CmdbIndex(network)
    (cause,) = built["switch_failure"].truth["causes"]
    redundant = {h for h in idx.dependents[cause["root_ci"]] if len(idx.deps[h]) == 2}
    assert redundant, "switch_failure picks a switch with a dual-homed host"
    spared = redundant | {s for h in redundant for s in idx.dependents[h]}
    for alert in built["switch_failure"].alerts:
        labels = alert["labels"]
        assert not (labels["alertname"] in DOWN_ALERTS and ci_of(labels) in spared), labels


def test_dual_homed_partial_host_is_its_own_cause(network, built) -> None:
    idx = CmdbIndex(network)
    scenario = built["dual_homed_partial"]
    by_kind = {c["kind"]: c for c in scenario.truth["causes"]}
    switch, host = by_kind["switch_failure"]["root_ci"], by_kind["host_failure"]["root_ci"]
    assert switch in idx.deps[host] and len(idx.deps[host]) == 2
    host_fps = set(by_kind["host_failure"]["fingerprints"])
    crash = [a for a in scenario.alerts if a["labels"].get("instance") == f"{host}:9100"]
    assert {fp(a) for a in crash} <= host_fps
    assert crash[0]["labels"]["alertname"] == "HostDown"
    assert crash[0]["labels"]["switch"] == switch  # same switch label as the switch's storm
    onsets = first_received([a for a in scenario.alerts if fp(a) in host_fps])
    assert len(onsets) >= 2  # the host and (most of) its services
    single_homed = [h for h in idx.dependents[switch] if idx.deps[h] == [switch]]
    switch_fps = set(by_kind["switch_failure"]["fingerprints"])
    hit = {ci_of(a["labels"]) for a in scenario.alerts if fp(a) in switch_fps}
    assert len(hit & set(single_homed)) >= 0.8 * len(single_homed)


def test_silent_root_is_inferred_and_never_alerts(built) -> None:
    scenario = built["silent_root"]
    (cause,) = scenario.truth["causes"]
    assert cause["inferred"] and cause["kind"] == "switch_failure"
    root = cause["root_ci"]
    assert len(cause["fingerprints"]) >= 5
    for alert in scenario.alerts:
        assert ci_of(alert["labels"]) != root
        assert alert["labels"].get("alertname") != "SwitchDown"


def test_late_root_arrives_after_its_symptoms(built) -> None:
    scenario = built["late_root"]
    (cause,) = scenario.truth["causes"]
    first = first_received([a for a in scenario.alerts if fp(a) in set(cause["fingerprints"])])
    root_fp = next(
        fp(a) for a in scenario.alerts if a["labels"].get("instance") == f"{cause['root_ci']}:161"
    )
    lag = first[root_fp] - min(first.values())
    assert 29.9e9 < lag < 30.1e9
    assert scenario.name == "late-root-30s"


def test_overlapping_failures_overlap_in_time_and_not_in_impact(network, built) -> None:
    scenario = built["overlapping_failures"]
    first, second = scenario.truth["causes"]
    windows = []
    for cause in (first, second):
        fps = set(cause["fingerprints"])
        times = [parse_time(a["receivedAt"]) for a in scenario.alerts if fp(a) in fps]
        windows.append((min(times), max(times)))
    assert windows[1][0] < windows[0][1]
    assert not sc.impacted(network, [first["root_ci"]]) & sc.impacted(network, [second["root_ci"]])


def test_overlapping_failures_with_a_router() -> None:
    network = sc.generate_network(routers=4, switches_per_router=3, hosts_per_switch=10, seed=1)
    scenario = sc.overlapping_failures(3, seed=1, cmdb=network, router_failures=1)
    kinds = Counter(c["kind"] for c in scenario.truth["causes"])
    assert kinds == {"router_failure": 1, "switch_failure": 2}
    owner_map(scenario.truth)
    one_router = sc.generate_network(routers=1, hosts_per_switch=5, seed=1)
    with pytest.raises(ValueError, match="every router fails"):
        sc.overlapping_failures(2, seed=1, cmdb=one_router, router_failures=1)


def test_router_failure_takes_its_switches_down(network, built) -> None:
    (cause,) = built["router_failure"].truth["causes"]
    idx = CmdbIndex(network)
    switches = set(idx.dependents[cause["root_ci"]])
    down = {
        ci_of(a["labels"])
        for a in built["router_failure"].alerts
        if a["labels"]["alertname"] == "SwitchDown"
    }
    assert down == switches


def test_link_flap_pairs(built) -> None:
    scenario = built["link_flap"]
    firing = [a["labels"]["alertname"] for a in scenario.alerts if a["status"] == "firing"]
    firing = [name for name in firing if name in ("LinkDown", "LinkUp")]
    assert firing == ["LinkDown", "LinkUp"] * 10
    (cause,) = scenario.truth["causes"]
    assert cause["kind"] == "link_flap" and len(cause["fingerprints"]) == 2


def test_bad_arguments_are_refused(network) -> None:
    with pytest.raises(ValueError, match="noise_share"):
        sc.switch_failure(cmdb=network, noise_share=1.0)
    with pytest.raises(ValueError, match="duration"):
        sc.silent_root(cmdb=network, duration_s=5)
    with pytest.raises(ValueError, match="routers"):
        sc.generate_network(routers=0)


# -- recordings ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "ns"),
    [
        ("2026-03-02T09:00:00Z", 1772442000 * 10**9),
        ("2026-03-02T09:00:00.5Z", 1772442000 * 10**9 + 500_000_000),
        ("2026-03-02T10:00:00.000000001+01:00", 1772442000 * 10**9 + 1),
        (ZERO_TIME, None),
    ],
)
def test_parse_time(text: str, ns: int | None) -> None:
    assert parse_time(text) == ns


def test_format_time_round_trips() -> None:
    for ns in (1772442000 * 10**9, 1772442000 * 10**9 + 120_000_000, 1772442000 * 10**9 + 7):
        assert parse_time(format_time(ns)) == ns
        assert parse_time(format_time(ns, fixed=True)) == ns
    assert format_time(1772442000 * 10**9 + 120_000_000) == "2026-03-02T09:00:00.12Z"


def test_jsonl_and_parquet_round_trip(tmp_path: Path, built) -> None:
    alerts = built["dual_homed_partial"].alerts
    sc.write_jsonl(alerts, tmp_path / "a.jsonl")
    assert sc.read_jsonl(tmp_path / "a.jsonl") == alerts
    sc.write_parquet(alerts, tmp_path / "a.parquet")
    table = pq.read_table(tmp_path / "a.parquet")
    assert table.schema.equals(ALERT_SCHEMA)
    assert [dict(m) for m in table.column("labels").to_pylist()] == [a["labels"] for a in alerts]
    assert table.column("status").to_pylist() == [a["status"] for a in alerts]
    unset = table.column("endsAt").is_null().to_pylist()
    assert unset == [a["endsAt"] == ZERO_TIME for a in alerts]
    received = table.column("receivedAt").cast("int64").to_pylist()
    assert received == [parse_time(a["receivedAt"]) for a in alerts]


# -- the columnar storm --------------------------------------------------------


def source_fingerprints(generated) -> list[str]:
    return [format_fingerprint(fingerprint(alert.labels)) for alert in generated.alerts]


def test_storm_size_truth_and_order(small_storm) -> None:
    assert abs(len(small_storm) - 20_000) < 200
    owners = owner_map(small_storm.truth)
    fps = source_fingerprints(small_storm)
    assert set(fps) == owners.keys()
    assert len(small_storm.truth["causes"]) > 1
    assert set(small_storm.truth["noise"].values()) == {"noise", "informational"}
    received = small_storm.messages.received_at
    assert (received[1:] >= received[:-1]).all()
    is_noise = np.array([f in small_storm.truth["noise"] for f in fps])
    assert 0.03 < is_noise[small_storm.messages.source].mean() < 0.07


def test_storm_failures_down_together_are_independent(small_storm) -> None:
    owners = owner_map(small_storm.truth)
    windows: dict[str, tuple[int, int]] = {}
    for src, f in enumerate(source_fingerprints(small_storm)):
        if owners[f].startswith("cause-"):
            lo, hi = windows.get(owners[f], (2**63, 0))
            starts, ends = small_storm.sources.starts_at[src], small_storm.sources.ends_at[src]
            windows[owners[f]] = (min(lo, int(starts)), max(hi, int(ends)))
    roots = {c["id"]: c["root_ci"] for c in small_storm.truth["causes"]}
    idx = CmdbIndex(small_storm.cmdb)
    for a, (lo_a, hi_a) in windows.items():
        together = [b for b, (lo_b, hi_b) in windows.items() if lo_a < hi_b and lo_b < hi_a]
        assert not idx.interacts([roots[b] for b in together]), a


def test_storm_parquet(tmp_path: Path, small_storm) -> None:
    write_storm_parquet(tmp_path / "storm.parquet", small_storm)
    table = pq.read_table(tmp_path / "storm.parquet")
    assert table.schema.equals(ALERT_SCHEMA)
    assert table.num_rows == len(small_storm)
    assert table.equals(storm_table(small_storm))
    sample = table.slice(1234, 3).select(["labels", "annotations", "generatorURL"]).to_pylist()
    for row, src in zip(sample, small_storm.messages.source[1234:1237].tolist(), strict=True):
        alert = small_storm.alerts[src]
        assert dict(row["labels"]) == alert.labels
        assert dict(row["annotations"]) == alert.annotations
        assert row["generatorURL"] == alert.generator_url
    statuses = Counter(table.column("status").to_pylist())
    assert statuses["resolved"] == len(small_storm.alerts)


def test_storm_is_seeded() -> None:
    a, b = storm(3_000, 1_000, seed=1), storm(3_000, 1_000, seed=1)
    assert a.truth == b.truth
    assert (a.messages.received_at == b.messages.received_at).all()
    assert storm(3_000, 1_000, seed=2).truth != a.truth


# -- committed fixtures ----------------------------------------------------------


def test_committed_fixtures_are_up_to_date(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("generate", ROOT / "fixtures" / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    (tmp_path / "fixtures").mkdir()
    (tmp_path / "data").mkdir()
    written = module.generate(tmp_path / "fixtures", tmp_path / "data")
    assert len(written) == 17
    stale = []
    for path in written:
        committed = (module.FIXTURES if path.parent.name == "fixtures" else module.DATA) / path.name
        if not committed.exists() or committed.read_bytes() != path.read_bytes():
            stale.append(path.name)
    assert not stale, f"rerun `python fixtures/generate.py` and commit: {stale}"
    assert sum(path.stat().st_size for path in written) < 5_500_000
    demo = sc.read_jsonl(module.DATA / "demo-storm.jsonl")
    assert 1_500 <= len(demo) <= 3_000
