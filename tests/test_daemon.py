"""The daemon end to end: every way in, the HTTP API, reload, the event log, config errors.

Each test starts a real ``Daemon`` on free loopback ports with its state in a
temporary folder, on the recording's own event times. The recorded switch
storm (``fixtures/switch-failure.jsonl``) then gives a known incident stream:
the recording correlated in one batch, without the final flush that a stop
does not do (``expected_stream``). Correlation does not depend on how the
alerts were split into messages or batches, so the stream from any wire
format must equal it byte for byte.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import pyarrow as pa
import pytest
import yaml

from correlator import eventlog
from correlator.cli import main
from correlator.client import Client
from correlator.daemon.config import ZmqConfig, load_config
from correlator.decode import read_recording
from correlator.errors import ConfigError
from correlator.eventlog import segments
from correlator.pipeline import shipped_rules
from daemon_helpers import (
    CMDB,
    FIXTURES,
    SINK_FILE,
    daemon_config,
    decode_events,
    expected_stream,
    final_states,
    fixture_lines,
    http,
    metric,
    open_incidents,
    push_socket,
    running_daemon,
    scrape,
    send_lines,
    wait_rows,
)

STORM = "switch-failure"


@pytest.fixture(scope="module")
def storm() -> list[bytes]:
    return fixture_lines(STORM)


@pytest.fixture(scope="module")
def expected() -> bytes:
    return expected_stream(STORM)


def _arrays(lines: list[bytes], size: int) -> list[bytes]:
    """The alerts as JSON arrays of ``size`` (Alertmanager's API v2 body)."""
    return [b"[" + b",".join(lines[k : k + size]) + b"]" for k in range(0, len(lines), size)]


def _send_json(endpoint: str, lines: list[bytes]) -> None:
    send_lines(endpoint, lines, "json")


def _send_json_array(endpoint: str, lines: list[bytes]) -> None:
    with Client(endpoint, batch_size=250, linger=5) as client:
        client.send(json.loads(line) for line in lines)


def _send_arrow(endpoint: str, lines: list[bytes]) -> None:
    table = read_recording(FIXTURES / f"{STORM}.jsonl").table
    assert table.num_rows == len(lines)
    with Client(endpoint, batch_size=400, linger=5) as client:
        client.send_table(table)


def _send_sniffed(endpoint: str, lines: list[bytes]) -> None:
    """Single-frame messages: the first half one alert each, the rest as arrays."""
    half = len(lines) // 2
    with push_socket(endpoint) as sock:
        for line in lines[:half]:
            sock.send(line)
        for array in _arrays(lines[half:], 100):
            sock.send(array)


SENDERS: dict[str, Callable[[str, list[bytes]], None]] = {
    "json": _send_json,
    "json-array": _send_json_array,
    "arrow": _send_arrow,
    "sniffed": _send_sniffed,
}


@pytest.mark.parametrize("wire", [*SENDERS, "http", "http-one-by-one"])
def test_every_way_in_gives_the_same_incidents(
    wire: str, storm: list[bytes], expected: bytes, tmp_path: Path
) -> None:
    """The storm over ZeroMQ in each wire format, or over HTTP, gives the expected stream.

    ``http-one-by-one`` posts one alert per request, so the daemon correlates
    it in batches of a few alerts, where the others come in batches of
    thousands: the stream must not depend on where batches are cut.
    """
    with running_daemon(daemon_config(tmp_path)) as daemon:
        if wire.startswith("http"):
            assert daemon.http_address is not None
            size = 1 if wire == "http-one-by-one" else 250
            for body in _arrays(storm, size):
                status, reply = http(daemon.http_address, "POST", "/api/v2/alerts", body)
                assert status == 200, reply
        else:
            SENDERS[wire](daemon.endpoints[0], storm)
        wait_rows(daemon, len(storm))
        assert metric(scrape(daemon.http_address), "correlator_events_rejected_total") == 0
    assert (tmp_path / SINK_FILE).read_bytes() == expected


@pytest.mark.parametrize("wire", ["json", "arrow", "sniffed"])
def test_decoding_on_a_thread_gives_the_same_incidents(
    wire: str, storm: list[bytes], expected: bytes, tmp_path: Path
) -> None:
    """``zmq.decode_process: false`` (decoding in the daemon's process) changes nothing."""
    intake = ZmqConfig(pull=("tcp://127.0.0.1:0",), decode_process=False)
    with running_daemon(daemon_config(tmp_path, zmq=intake)) as daemon:
        SENDERS[wire](daemon.endpoints[0], storm)
        wait_rows(daemon, len(storm))
    assert (tmp_path / SINK_FILE).read_bytes() == expected


def test_health_readiness_metrics_and_open_incidents(storm: list[bytes], tmp_path: Path) -> None:
    """``/-/healthy``, ``/-/ready``, ``/metrics`` and ``/api/v1/incidents`` tell the truth.

    After half the storm, the counters match what was sent and what the
    stream holds, and the incident list is exactly the incidents whose last
    event is not a resolve, each with its latest event.
    """
    storm = storm[: len(storm) // 2]
    events = decode_events(expected_stream(STORM, len(storm)))
    still_open = {i for i, e in final_states(events).items() if e.event != "resolve"}
    assert still_open, "half the storm should leave incidents open"
    with running_daemon(daemon_config(tmp_path)) as daemon:
        address = daemon.http_address
        assert address is not None
        assert http(address, "GET", "/-/healthy") == (200, b"OK\n")
        assert http(address, "GET", "/-/ready") == (200, b"OK\n")
        send_lines(daemon.endpoints[0], storm)
        wait_rows(daemon, len(storm))

        text = scrape(address)
        assert metric(text, "correlator_up") == 1
        assert metric(text, "correlator_events_received_total") == len(storm)
        assert metric(text, "correlator_events_rejected_total") == 0
        assert metric(text, "correlator_events_deduplicated_total") > 0
        assert metric(text, "correlator_events_by_significance_total") == len(storm)
        for kind in ("open", "update", "resolve"):
            count = sum(e.event == kind for e in events)
            assert metric(text, "correlator_incident_events_total", event=kind) == count, kind
        assert metric(text, "correlator_incidents_open") == len(still_open)
        assert metric(text, "correlator_batch_duration_seconds_count") >= 1
        # The storm's info-severity alerts are correlation's built-in drop; no rule of
        # the shipped set stops any of it (tests/test_rules_second_level.py counts those).
        informational = sum(b'"severity":"info"' in line for line in storm)
        dropped = metric(text, "correlator_events_dropped_total", rule="informational")
        assert dropped == informational
        assert metric(text, "correlator_events_dropped_total") == informational
        assert "correlator_events_suppressed_total{" not in text
        status, body = http(
            address,
            "GET",
            "/metrics?name[]=correlator_events_received_total&name[]=correlator_incidents_open",
        )
        assert status == 200
        only = body.decode()
        assert metric(only, "correlator_events_received_total") == len(storm)
        assert metric(only, "correlator_incidents_open") == len(still_open)
        series = {line.split("{")[0].split()[0] for line in only.splitlines() if line[:1] != "#"}
        assert series == {"correlator_events_received_total", "correlator_incidents_open"}

        listed = open_incidents(address)
        assert {e.id for e in listed} == still_open
        assert [e.first_seen for e in listed] == sorted(e.first_seen for e in listed)
        latest = final_states(events)
        assert all(e == latest[e.id] for e in listed)
        status, body = http(address, "GET", "/no/such/thing")
        assert status == 404 and b"no such endpoint" in body


def test_a_dead_decode_process_is_reported_and_posts_are_refused_not_lost(
    storm: list[bytes], tmp_path: Path
) -> None:
    """Posted bodies are decoded by the decode process; without it they get 503, and
    ``/-/ready`` says why, while a body posted before it died was correlated."""
    with running_daemon(daemon_config(tmp_path)) as daemon:
        address = daemon.http_address
        assert address is not None
        body = b"[" + b",".join(storm[:50]) + b"]"
        assert http(address, "POST", "/api/v2/alerts", body) == (200, b"")
        wait_rows(daemon, 50)
        worker = daemon._receiver._worker
        assert worker is not None
        worker.kill()
        worker.wait(30)
        status, reply = http(address, "POST", "/api/v2/alerts", body)
        assert status == 503 and b"send again later" in reply
        status, reply = http(address, "GET", "/-/ready")
        assert status == 503 and b"alert intake" in reply
        assert daemon.rows_processed == 50


def _cmdb_with_spare(path: Path) -> None:
    """The CMDB with an unconnected host listed first, so every other CI's number shifts."""
    cmdb = json.loads(CMDB.read_text())
    cmdb["cis"].insert(0, {"id": "aaa-spare", "type": "host"})
    path.write_text(json.dumps(cmdb))


def test_reload_takes_a_good_topology_and_refuses_a_broken_one(
    storm: list[bytes], expected: bytes, tmp_path: Path
) -> None:
    """``POST /-/reload`` swaps the topology atomically, or refuses and keeps the old one.

    Mid-storm, the CMDB file gains an unconnected CI listed first (every CI
    number shifts) and is reloaded; then the file is broken and the reload
    refused (500, ``correlator_reloads_total{result="failure"}`` goes up, the
    running topology stays); the storm goes on. Then the daemon stops, the
    file goes back to the original, and a new daemon restores the snapshot
    (taken with the shifted numbers) and gets the rest. The spare CI has no
    alerts and explains nothing, so the stream must still be the expected one:
    nothing was lost or mixed up in either reload or in the restart across a
    changed CMDB.
    """
    cmdb = tmp_path / "cmdb.json"
    cmdb.write_text(CMDB.read_text())
    config = daemon_config(tmp_path / "state", topology=str(cmdb))
    first_part, second_part = len(storm) // 3, 2 * len(storm) // 3
    with running_daemon(config) as daemon:
        address = daemon.http_address
        assert address is not None
        n_cis = daemon.topology.n_cis if daemon.topology else 0
        send_lines(daemon.endpoints[0], storm[:first_part])
        wait_rows(daemon, first_part)

        _cmdb_with_spare(cmdb)
        status, body = http(address, "POST", "/-/reload", b"")
        assert status == 200
        assert body.startswith(f"reloaded topology: {n_cis + 1} CIs; rules: ".encode())
        reloaded = daemon.topology
        assert reloaded is not None and reloaded.ci_ids[0] == "aaa-spare"

        cmdb.write_text('{"cis": [{"id": "sw-1", "type": "switch"}')
        status, body = http(address, "POST", "/-/reload", b"")
        assert status == 500 and str(cmdb).encode() in body, body
        assert daemon.topology is reloaded
        text = scrape(address)
        assert metric(text, "correlator_reloads_total", result="success") == 1
        assert metric(text, "correlator_reloads_total", result="failure") == 1
        assert http(address, "GET", "/-/ready")[0] == 200

        send_lines(daemon.endpoints[0], storm[first_part:second_part])
        wait_rows(daemon, second_part)
        open_at_stop = {e.id for e in daemon.open_incidents()}

    cmdb.write_text(CMDB.read_text())
    with running_daemon(config) as daemon:
        assert {e.id for e in daemon.open_incidents()} == open_at_stop
        send_lines(daemon.endpoints[0], storm[second_part:])
        wait_rows(daemon, len(storm) - second_part)
    assert (tmp_path / "state" / SINK_FILE).read_bytes() == expected


@pytest.mark.parametrize(
    ("aside", "error"),
    [
        (False, OSError(28, "No space left on device")),
        (True, OSError(28, "No space left on device")),
        (True, RuntimeError("a bug in the writer")),
    ],
    ids=["full-disk-at-once", "full-disk-on-the-writer-thread", "bug-on-the-writer-thread"],
)
def test_a_failed_event_log_write_is_counted_and_its_incidents_still_go_out(
    aside: bool,
    error: Exception,
    storm: list[bytes],
    expected: bytes,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A full disk (or a bug) under the black box costs the log that batch, not its
    incidents."""
    if aside:  # every batch written beside the loop, as large ones are
        monkeypatch.setattr(eventlog, "WRITE_ASIDE_ROWS", 1)
    write = eventlog._write
    lost: list[int] = []

    def first_fails(*args: Any) -> None:
        if not lost:
            lost.append(sum(batch.num_rows for batch in args[2]))
            raise error
        write(*args)

    with running_daemon(daemon_config(tmp_path)) as daemon:
        monkeypatch.setattr(eventlog, "_write", first_fails)
        # In two parts, so the batch that fails is not the whole storm.
        send_lines(daemon.endpoints[0], storm[:100])
        wait_rows(daemon, 100)
        send_lines(daemon.endpoints[0], storm[100:])
        wait_rows(daemon, len(storm))
        text = scrape(daemon.http_address)
    assert 0 < lost[0] <= 100
    assert metric(text, "correlator_errors_total", stage="eventlog") == 1
    assert (tmp_path / SINK_FILE).read_bytes() == expected
    assert read_recording(tmp_path / "eventlog").rows == len(storm) - lost[0]


def test_the_event_log_replays_to_the_same_incidents(
    storm: list[bytes], expected: bytes, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``correlator replay STATE/eventlog`` gives the daemon's incidents, byte for byte.

    Rows the daemon rejected (here: a bad label name, an unknown status) are
    not logged, so the log replays exactly what the daemon correlated. The
    storm ends with every incident resolved, so the replay's final flush
    has nothing to add that the stopped daemon held back.
    """
    bad = [
        b'{"labels": {"alertname": "X", "0bad": "y"}, "startsAt": "2026-03-02T09:00:00Z"}',
        b'{"labels": {"alertname": "Maybe"}, "status": "perhaps"}',
    ]
    with running_daemon(daemon_config(tmp_path)) as daemon:
        send_lines(daemon.endpoints[0], storm[:100] + bad + storm[100:])
        wait_rows(daemon, len(storm) + len(bad))
        text = scrape(daemon.http_address)
    assert metric(text, "correlator_events_rejected_total", reason="invalid_label_name") == 1
    assert metric(text, "correlator_events_rejected_total", reason="bad_status") == 1
    log = tmp_path / "eventlog"
    assert [p.suffix for p in segments(log)] == [".parquet"], "a clean stop seals the log"
    assert read_recording(log).rows == len(storm)

    out = tmp_path / "replayed.jsonl"
    code = main(
        [
            "replay",
            str(log),
            "--topology",
            str(CMDB),
            "--rules",
            str(shipped_rules()),
            "--out",
            str(out),
        ]
    )
    assert code == 0, capsys.readouterr().err
    assert (tmp_path / SINK_FILE).read_bytes() == expected
    assert out.read_bytes() == expected


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"zmq": {"pul": ["tcp://127.0.0.1:5555"]}}, "zmq.pul: unknown key (did you mean 'pull'?)"),
        (
            {"snapshot_intervall": "5s"},
            "snapshot_intervall: unknown key (did you mean 'snapshot_interval'?)",
        ),
        (
            {"correlation": {"window": "5 minutes"}},
            "correlation.window: not a duration: '5 minutes'",
        ),
        ({"heartbeat": "soon"}, "heartbeat: not a duration: 'soon'"),
        ({"dead_letter": {"max_file_bytes": "lots"}}, "dead_letter.max_file_bytes: not a size"),
        ({"zmq": {"hwm": 0}}, "zmq.hwm: must be at least 1, got 0"),
        ({"zmq": {"decode_process": "yes"}}, "zmq.decode_process: expected bool, got str 'yes'"),
    ],
)
def test_config_errors_name_the_file_and_the_key(
    raw: dict[str, object], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A bad config is refused before anything starts, naming the file, the key and the fix."""
    path = tmp_path / "correlator.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value).startswith(f"{path}: ")
    assert message in str(caught.value)

    assert main(["run", "--config", str(path)]) == 1
    assert f"correlator: {path}: " in capsys.readouterr().err


def test_invalid_yaml_is_refused_with_its_line(tmp_path: Path) -> None:
    """A YAML syntax error points at the line and column."""
    path = tmp_path / "correlator.yaml"
    path.write_text("zmq:\n  pull: [tcp://127.0.0.1:5555\nhttp: {}\n")
    with pytest.raises(ConfigError, match=rf"^{path}:\d+:\d+: invalid YAML"):
        load_config(path)


def test_arrow_and_json_producers_are_told_apart_on_one_socket(
    storm: list[bytes], tmp_path: Path
) -> None:
    """Mixed formats on one socket: each message is decoded by its own format frame."""
    table = read_recording(FIXTURES / f"{STORM}.jsonl").table.slice(0, 50)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    with running_daemon(daemon_config(tmp_path)) as daemon, push_socket(daemon.endpoints[0]) as s:
        s.send_multipart([b"arrow", sink.getvalue().to_pybytes()])
        s.send_multipart([b"json", storm[50]])
        s.send_multipart([b"json-array", b"[" + b",".join(storm[51:60]) + b"]"])
        s.send(storm[60])
        wait_rows(daemon, 61)
        text = scrape(daemon.http_address)
    assert metric(text, "correlator_events_received_total") == 61
    assert metric(text, "correlator_events_rejected_total") == 0
    logged = read_recording(tmp_path / "eventlog").table
    labels = [dict(row) for row in logged.column("labels").to_pylist()]
    assert labels == [msgspec.json.decode(line)["labels"] for line in storm[:61]]
