"""The daemon's threads carry their names down to the operating system (Linux)."""

from __future__ import annotations

import http.client
import os
import sys
import threading
from dataclasses import replace
from pathlib import Path

import pytest

from correlator import eventlog
from correlator.threadnames import NamedThread
from daemon_helpers import daemon_config, fixture_lines, running_daemon, send_lines, wait_rows

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="thread names are Linux's comm")


def _comm(pid: int, tid: int | None = None) -> str:
    task = f"/proc/{pid}/task/{tid}" if tid is not None else f"/proc/{pid}"
    return Path(task, "comm").read_text().rstrip("\n")


def _thread_names() -> set[str]:
    names = set()
    for tid in os.listdir("/proc/self/task"):
        try:
            names.add(_comm(os.getpid(), int(tid)))
        except FileNotFoundError:  # a thread that ended meanwhile
            continue
    return names


def test_a_named_thread_is_named_for_the_operating_system_cut_to_15_bytes() -> None:
    seen: list[str] = []
    for name in ("correlate", "a-name-longer-than-fifteen-bytes"):
        thread = NamedThread(
            target=lambda: seen.append(_comm(os.getpid(), threading.get_native_id())), name=name
        )
        thread.start()
        thread.join()
    assert seen == ["correlate", "a-name-longer-t"]


def test_the_running_daemon_names_its_threads_and_its_decode_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(eventlog, "WRITE_ASIDE_ROWS", 1)  # so the log's writer thread runs
    lines = fixture_lines("switch-failure")
    config = daemon_config(tmp_path)
    config = replace(config, event_log=replace(config.event_log, max_file_bytes=1))  # sealing
    with running_daemon(config) as daemon:
        assert daemon.http_address is not None
        send_lines(daemon.endpoints[0], lines)
        wait_rows(daemon, len(lines))
        connection = http.client.HTTPConnection(*daemon.http_address, timeout=10)
        try:
            connection.request("GET", "/-/healthy")
            assert connection.getresponse().read() == b"OK\n"
            names = _thread_names()  # the connection's thread is still there: keep-alive
        finally:
            connection.close()
        worker = daemon._receiver._worker
        assert worker is not None
        assert _comm(worker.pid) == "decode"
    expected = {"correlate", "zmq-receive", "http", "http-conn", "sink-incidents"}
    assert expected | {"eventlog-seal", "eventlog-write_"} <= names
