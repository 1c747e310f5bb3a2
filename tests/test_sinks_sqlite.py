"""The embedded ticket store, its ``tickets list|show`` reports, and the JSON-lines sink."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import msgspec
import pytest

from correlator.errors import SinkError
from correlator.sinks import JsonlSink
from correlator.sinks.sqlite import SqliteSink
from correlator.sinks.tickets import ticket_show_report, tickets_list_report
from receivers import incident_event, storm_events


def _store(path: Path, *batches) -> None:
    sink = SqliteSink.from_config("tickets", {"path": str(path)})
    sink.healthcheck()
    for batch in batches:
        sink.write_batch(batch)
    sink.close()


def test_one_ticket_per_incident_updated_in_place_with_full_history(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    events = storm_events(3)
    _store(db, events)
    conn = sqlite3.connect(db)
    rows = conn.execute(
        "SELECT id, state, version, alert_count FROM tickets ORDER BY id"
    ).fetchall()
    assert rows == [(f"inc-{k:016x}", "resolved", 4, 40) for k in range(3)]
    assert conn.execute("SELECT count(*) FROM history").fetchone()[0] == len(events)


def test_redelivery_and_late_old_versions_change_nothing(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    events = storm_events(2)
    _store(db, events, events[:5], [events[0]])
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT count(*) FROM history").fetchone()[0] == len(events)
    assert {r[0] for r in conn.execute("SELECT version FROM tickets")} == {4}
    assert {r[0] for r in conn.execute("SELECT state FROM tickets")} == {"resolved"}


def test_tickets_list_and_show(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    db_root = {"root_ci": "db-1", "root_type": "database"}
    merged = msgspec.structs.replace(
        incident_event("inc-bbbb", "resolve", 2, reason="merged_into", **db_root),
        merged_into="inc-aaaa",
    )
    _store(
        db,
        [
            incident_event("inc-aaaa", "open", 1, services=("checkout", "search")),
            incident_event("inc-bbbb", "open", 1, **db_root),
            merged,
        ],
    )
    listing = tickets_list_report(db)
    assert listing.splitlines()[0].split()[:3] == ["ticket", "state", "severity"]
    assert "inc-aaaa" in listing and "checkout, search" in listing
    assert "sw-1 (switch)" in listing
    open_only = tickets_list_report(db, state="open")
    assert "inc-aaaa" in open_only and "inc-bbbb" not in open_only
    assert "1 more" in tickets_list_report(db, limit=1)
    shown = ticket_show_report(db, "inc-bb")  # a unique prefix is enough
    assert "ticket      inc-bbbb" in shown
    assert "resolved (merged into inc-aaaa)" in shown
    assert "root cause  db-1 (database)" in shown
    assert "v1    open" in shown and "v2    resolve" in shown and "merged_into" in shown


def test_ticket_reports_explain_what_is_wrong(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    with pytest.raises(SinkError, match="does not exist"):
        tickets_list_report(db)
    _store(db, [incident_event("inc-a1", "open", 1), incident_event("inc-a2", "open", 1)])
    with pytest.raises(SinkError, match="no ticket 'inc-zz'"):
        ticket_show_report(db, "inc-zz")
    with pytest.raises(SinkError, match=r"ambiguous.*inc-a1, inc-a2"):
        ticket_show_report(db, "inc-a")
    with pytest.raises(SinkError, match="unknown ticket state 'closed'"):
        tickets_list_report(db, state="closed")
    assert tickets_list_report(db, state="resolved").startswith("no resolved tickets")


def test_jsonl_sink_writes_lines_and_opens_lazily(tmp_path: Path) -> None:
    path = tmp_path / "out" / "events.jsonl"
    sink = JsonlSink.from_config("file", {"path": str(path), "append": False})
    assert not path.exists()
    events = storm_events(1)
    sink.write_batch(events)
    sink.close()
    lines = path.read_text().splitlines()
    assert [json.loads(line)["version"] for line in lines] == [1, 2, 3, 4]
