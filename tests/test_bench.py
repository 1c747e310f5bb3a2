"""``correlator bench``: the quick suite as a smoke test, recordings, and failing loudly.

The quick suite runs with ``--runs 1 --max-seconds 0.5`` (one timed run
after the warm-up, paced replays cut at half a second) so this file stays
well under a minute; the report says such figures are a smoke test.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from correlator.bench.figures import BenchError, Figure, repeat
from correlator.bench.scaling import Point, growth
from correlator.cli import main

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "fixtures"
HAS_MATPLOTLIB = importlib.util.find_spec("matplotlib") is not None


def _check_charts(out: Path, report: str, names: list[str]) -> None:
    if HAS_MATPLOTLIB:
        for name in names:
            assert (out / name).stat().st_size > 0
            assert f"]({name})" in report
    else:
        assert "Charts skipped: matplotlib is not installed" in report
        assert not list(out.glob("*.png"))


def test_quick_suite_writes_a_report(tmp_path: Path) -> None:
    out = tmp_path / "report"
    argv = ["bench", "--suite", "quick", "--runs", "1", "--max-seconds", "0.5"]
    assert main([*argv, "--out", str(out), "--cache", str(tmp_path / "cache")]) == 0
    report = (out / "report.md").read_text()
    for section in (
        "# correlator bench: suite quick",
        "## Machine",
        "### Against storm size",
        "### Against topology size",
        "## Replay: full speed and paced",
        "## Accuracy",
        "## Side by side with Alertmanager",
        "## Charts",
        "a smoke test",
    ):
        assert section in report, section
    results = json.loads((out / "results.json").read_text())
    machine = results["machine"]
    assert machine["cpu_model"] and machine["cores"] >= 1
    assert {"python", "numpy", "numba", "pyzmq", "pyarrow"} <= set(machine["versions"])
    assert [p["alerts_requested"] for p in results["scaling"]["storm"]] == [10_000, 100_000]
    assert [p["cis_requested"] for p in results["scaling"]["topology"]] == [1_000, 10_000]
    for point in results["scaling"]["storm"] + results["scaling"]["topology"]:
        assert point["peak_rss_mib"] > 0
        assert point["figures"]["alerts_per_s"]["median"] > 0
        assert len(point["figures"]["alerts_per_s"]["runs"]) == 1
    assert [e["speed"] for e in results["replay"]] == ["full speed", "x100", "x10", "x1"]
    assert results["accuracy"]["verdict"]["mean_f1"] > 0.9
    _check_charts(out, report, ["scaling-storm.png", "scaling-topology.png", "replay-latency.png"])


def test_recording_with_compared_rules(tmp_path: Path) -> None:
    out = tmp_path / "report"
    argv = ["bench", "--recording", str(FIXTURES / "switch-failure.jsonl")]
    argv += ["--topology", str(FIXTURES / "network-small.cmdb.json")]
    argv += ["--runs", "1", "--max-seconds", "0.2", "--out", str(out)]
    argv += ["--compare-rules", str(ROOT / "rules" / "default.yaml")]
    argv += [str(ROOT / "rules" / "examples" / "network-storm.yaml")]
    assert main(argv) == 0
    report = (out / "report.md").read_text()
    assert "# correlator bench: recording" in report
    assert "## Rule sets compared" in report
    assert "## Accuracy" not in report
    results = json.loads((out / "results.json").read_text())
    assert [e["speed"] for e in results["replay"]] == ["full speed", "x100", "x10", "x1"]
    assert len(results["compare_rules"]) == 2


def test_missing_recording_exits_nonzero(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "report"
    code = main(["bench", "--recording", str(tmp_path / "nope.jsonl"), "--out", str(out)])
    assert code == 1
    assert "nope.jsonl" in capsys.readouterr().err
    assert not (out / "report.md").exists()


def test_a_failing_run_fails_the_bench(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"not parquet at all")
    out = tmp_path / "report"
    code = main(["bench", "--recording", str(broken), "--runs", "1", "--out", str(out)])
    assert code == 1
    assert "failed" in capsys.readouterr().err
    assert not (out / "report.md").exists()


def test_repeat_reports_median_min_max_and_refuses_errors() -> None:
    values = iter([100.0, 3.0, 1.0, 2.0])
    figures = repeat(lambda: {"x": next(values)}, 3, what="test")
    assert figures["x"] == Figure((3.0, 1.0, 2.0))
    assert (figures["x"].median, figures["x"].low, figures["x"].high) == (2.0, 1.0, 3.0)

    def broken() -> dict[str, float]:
        raise ValueError("boom")

    with pytest.raises(BenchError, match="boom"):
        repeat(broken, 5, what="test")


def test_growth_flags_a_super_linear_step() -> None:
    def point(alerts: int, seconds: float) -> Point:
        figures = {
            name: {"median": value}
            for name, value in (
                ("seconds", seconds + 0.5),
                ("setup_seconds", 0.5),
                ("cpu_seconds", seconds),
                ("setup_cpu_seconds", 0.0),
            )
        }
        return Point(alerts, 1000, {"alerts": alerts, "peak_rss_mib": 100.0, "figures": figures})

    steps = growth([point(1_000, 1.0), point(10_000, 10.0), point(100_000, 1000.0)], "alerts")
    assert [s["super_linear"] for s in steps] == [False, True]
    assert steps[0]["elasticity"] == pytest.approx(0.0)
