"""End to end on the committed fixtures: the grouping matches the ground truth."""

from __future__ import annotations

import json
from pathlib import Path

import msgspec
import pytest

from correlator.cli import main
from correlator.evaluate import placements, read_assignments, score
from correlator.incident import IncidentEvent
from correlator.replay import replay
from correlator.topology import Topology, load_topology

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


@pytest.fixture(scope="module")
def network() -> Topology:
    return load_topology(FIXTURES / "network-small.cmdb.json")


def _truth(name: str) -> dict:
    return json.loads((FIXTURES / f"{name}.truth.json").read_text())


def _run(name: str, topology: Topology, tmp_path: Path):
    fates = tmp_path / f"{name}.fates.jsonl"
    result = replay(FIXTURES / f"{name}.jsonl", topology=topology, assignments=fates)
    return result.summary, result.events, read_assignments(fates)


def test_a_switch_storm_becomes_one_incident_rooted_at_the_switch(network, tmp_path) -> None:
    summary, events, fates = _run("switch-failure", network, tmp_path)
    truth = _truth("switch-failure")
    (cause,) = truth["causes"]
    placed = placements(fates)
    incidents = {placed[fp] for fp in cause["fingerprints"]}
    assert len(incidents) == 1
    (incident,) = incidents
    final = [e for e in events if e.id == incident][-1]
    assert final.root_cause.ci == cause["root_ci"]
    assert final.affected_services
    assert summary.rejected == 0
    result = score(fates, events, truth)
    assert result.recall == 1.0 and result.precision >= 0.99


def test_the_dual_homed_host_stays_out_of_the_switch_incident(network, tmp_path) -> None:
    _, _, fates = _run("dual-homed", network, tmp_path)
    truth = _truth("dual-homed")
    placed = placements(fates)
    switch = next(c for c in truth["causes"] if c["kind"] == "switch_failure")
    host = next(c for c in truth["causes"] if c is not switch)
    switch_incidents = {placed[fp] for fp in switch["fingerprints"]}
    assert len(switch_incidents) == 1
    assert not switch_incidents & {placed[fp] for fp in host["fingerprints"]}


@pytest.mark.parametrize(
    "name",
    ["switch-failure", "router-failure", "overlapping-failures", "dual-homed", "late-root-30s"],
)
def test_grouping_matches_the_ground_truth(network, tmp_path, name) -> None:
    _, events, fates = _run(name, network, tmp_path)
    result = score(fates, events, _truth(name))
    assert result.f1 >= 0.97, result
    assert result.root_cause_accuracy == 1.0, result


def test_a_silent_root_is_inferred(network, tmp_path) -> None:
    _, events, fates = _run("silent-root", network, tmp_path)
    truth = _truth("silent-root")
    (cause,) = [c for c in truth["causes"] if c["inferred"]]
    placed = placements(fates)
    (incident,) = {placed[fp] for fp in cause["fingerprints"]}
    final = [e for e in events if e.id == incident][-1]
    assert final.root_cause.ci == cause["root_ci"]
    assert final.root_cause.inferred


def test_replay_is_byte_identical_from_the_command_line(tmp_path, capsys) -> None:
    outputs = []
    for run in range(2):
        out, fates = tmp_path / f"out{run}.jsonl", tmp_path / f"fates{run}.jsonl"
        status = main(
            [
                "replay",
                str(FIXTURES / "overlapping-failures.jsonl"),
                "--topology",
                str(FIXTURES / "network-small.cmdb.json"),
                "--out",
                str(out),
                "--assignments",
                str(fates),
            ]
        )
        assert status == 0
        outputs.append((out.read_bytes(), fates.read_bytes()))
    assert outputs[0] == outputs[1]
    assert outputs[0][0]
    for line in outputs[0][0].splitlines():
        msgspec.json.decode(line, type=IncidentEvent)
    assert "compression" in capsys.readouterr().err


def test_explain_says_why_an_alert_joined(tmp_path, capsys) -> None:
    truth = _truth("switch-failure")
    (cause,) = truth["causes"]
    fingerprint = cause["fingerprints"][0]
    status = main(
        [
            "replay",
            str(FIXTURES / "switch-failure.jsonl"),
            "--topology",
            str(FIXTURES / "network-small.cmdb.json"),
            "--out",
            str(tmp_path / "o"),
            "--explain",
            fingerprint,
        ]
    )
    assert status == 0
    err = capsys.readouterr().err
    assert f"fingerprint {fingerprint}" in err
    assert "dominates" in err or "opened an incident" in err
