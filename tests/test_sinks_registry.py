"""The sink registry, option validation, and a third-party sink found through its entry point."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from correlator.errors import ConfigError, SinkError
from correlator.sinks import Dispatcher, TicketSink, available_sinks, sink_class
from correlator.sinks.plugins import plugins_report
from correlator.sinks.registry import BUILTINS, build_sinks
from correlator.sinks.routing import parse_sink_specs
from receivers import storm_events

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "correlator-example-sink"


@pytest.fixture(scope="session")
def example_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example plugin pip-installed into a private folder (the venv is left alone).

    pip builds from a copy, so no build output lands in the source tree. With
    the build backend (hatchling, a test dependency) installed, nothing is
    downloaded; without it pip fetches it into an isolated build environment.
    """
    offline = importlib.util.find_spec("hatchling") is not None
    work = tmp_path_factory.mktemp("example")
    source = shutil.copytree(EXAMPLE, work / "src")
    site = work / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            *(["--no-build-isolation", "--no-index"] if offline else []),
            "--target",
            str(site),
            str(source),
        ],
        check=True,
        capture_output=True,
    )
    return site


@pytest.fixture
def with_example(example_site: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.syspath_prepend(str(example_site))
    return example_site


def test_builtins_are_listed_and_load_lazily() -> None:
    found = available_sinks()
    assert set(BUILTINS) <= set(found)
    assert all(found[name].distribution == "correlator" for name in BUILTINS)
    for name in BUILTINS:
        assert issubclass(sink_class(name), TicketSink)


def test_an_unknown_sink_type_lists_the_valid_ones() -> None:
    with pytest.raises(ConfigError) as caught:
        sink_class("jira")
    message = str(caught.value)
    assert "'jira'" in message
    assert all(name in message for name in BUILTINS)
    with pytest.raises(ConfigError, match=r"sink 'tickets': unknown sink type 'jira' \(valid: "):
        build_sinks(parse_sink_specs([{"name": "tickets", "type": "jira"}]))


def test_the_example_plugin_is_found_through_its_entry_point(with_example: Path) -> None:
    entry = available_sinks()["logfmt"]
    assert entry.target == "correlator_example_sink:LogfmtSink"
    assert entry.distribution == "correlator-example-sink" and entry.version == "0.1.0"
    report = plugins_report()
    assert "logfmt" in report and "correlator-example-sink 0.1.0" in report
    assert "webhook" in report and "(built-in)" in report
    with pytest.raises(ConfigError, match="logfmt"):
        sink_class("nope")


def test_the_example_plugin_delivers_through_the_dispatcher(
    with_example: Path, tmp_path: Path
) -> None:
    log = tmp_path / "incidents.log"
    config = [{"name": "audit", "type": "logfmt", "options": {"path": str(log)}}]
    events = storm_events(2)
    with Dispatcher.from_config(config, tmp_path / "outbox.db") as dispatcher:
        dispatcher.emit(events)
        assert dispatcher.drain(10)
    lines = log.read_text().splitlines()
    assert len(lines) == len(events)
    assert lines[0].startswith(f"incident={events[0].id} event=open version=1 severity=critical")


def test_plugins_report_without_plugins_shows_the_builtins() -> None:
    report = plugins_report()
    for name, target in BUILTINS.items():
        assert name in report and target in report


BAD_OPTIONS: list[tuple[str, dict[str, Any], str]] = [
    ("jsonl", {"path": 3}, "option 'path' must be a non-empty string"),
    ("jsonl", {"apend": True}, "unknown option 'apend' (known options: append, path)"),
    ("sqlite", {"path": ""}, "option 'path' must be a non-empty string"),
    ("webhook", {}, "option 'url' is required"),
    ("webhook", {"url": "ftp://x"}, "URL must be http:// or https://"),
    ("webhook", {"url": "http://x", "format": "slack"}, "'format' must be one of"),
    ("webhook", {"url": "http://x", "timeout": 0}, "'timeout' must be at least"),
    ("webhook", {"url": "http://x", "headers": {"a": 1}}, "'headers' must map strings"),
    ("pagerduty", {"severity_map": {"p1": "sev1"}}, "maps to 'sev1'"),
    ("pagerduty", {"routing_key": "abc"}, "unknown option 'routing_key'"),
    ("servicenow", {"url": "http://x", "set_cmdb_ci": "yes"}, "must be true or false"),
    ("servicenow", {"url": "http://x", "fields": ["a"]}, "'fields' must map strings"),
]


@pytest.mark.parametrize(("kind", "options", "message"), BAD_OPTIONS)
def test_bad_options_name_the_sink_and_the_key(
    kind: str, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        sink_class(kind).from_config("team-a", options)
    assert "'team-a'" in str(caught.value)
    assert message in str(caught.value)


def test_builtins_build_from_config_without_io(tmp_path: Path) -> None:
    specs = parse_sink_specs(
        [
            {"name": "file", "type": "jsonl", "options": {"path": str(tmp_path / "x/e.jsonl")}},
            {"name": "db", "type": "sqlite", "options": {"path": str(tmp_path / "y/t.db")}},
            {"name": "hook", "type": "webhook", "options": {"url": "http://127.0.0.1:9/"}},
            {"name": "pd", "type": "pagerduty"},
            {"name": "sn", "type": "servicenow", "options": {"url": "https://x.example"}},
        ]
    )
    sinks = build_sinks(specs)
    assert [s.name for s in sinks.values()] == ["file", "db", "hook", "pd", "sn"]
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()
    for sink in sinks.values():
        sink.close()


def test_healthchecks_report_what_is_wrong(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("PAGERDUTY_ROUTING_KEY", raising=False)
    monkeypatch.delenv("SERVICENOW_USERNAME", raising=False)
    (tmp_path / "f").write_text("a file where a folder should be")
    checks = {
        "pagerduty": ({}, "PAGERDUTY_ROUTING_KEY"),
        "servicenow": ({"url": "http://127.0.0.1:9"}, "SERVICENOW_USERNAME"),
        "webhook": ({"url": "http://127.0.0.1:9/", "timeout": 0.5}, "cannot connect"),
        "jsonl": ({"path": str(tmp_path / "f" / "e.jsonl")}, "cannot open"),
    }
    for kind, (options, problem) in checks.items():
        sink = sink_class(kind).from_config(kind, options)
        with pytest.raises(SinkError, match=problem):
            sink.healthcheck()
        sink.close()
