"""The embedded ticket store: incidents as tickets in a SQLite file.

For users with no ticketing system. ``tickets`` holds one row per incident,
updated in place, and only by a newer version, so redelivery and replays
are harmless; ``history`` keeps every event (one row per incident and
version). ``correlator tickets list|show`` browses the file
(``correlator.sinks.tickets``).

Option: ``path`` (default ``tickets.db``).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Self

from correlator.errors import SinkError
from correlator.incident import IncidentEvent, encode_event
from correlator.sinks.base import SinkOptions, TicketSink

SCHEMA = """
CREATE TABLE IF NOT EXISTS tickets (
    id TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    root_ci TEXT,
    root_type TEXT,
    root_alertname TEXT,
    severity TEXT NOT NULL,
    opened_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    resolved_at TEXT,
    alert_count INTEGER NOT NULL,
    ci_count INTEGER NOT NULL,
    affected_services TEXT NOT NULL,
    explanation TEXT NOT NULL,
    merged_into TEXT,
    version INTEGER NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS tickets_state ON tickets (state, updated_at);
CREATE TABLE IF NOT EXISTS history (
    id TEXT NOT NULL,
    version INTEGER NOT NULL,
    event TEXT NOT NULL,
    at TEXT NOT NULL,
    body TEXT NOT NULL,
    UNIQUE (id, version)
);
"""

_UPSERT = """
INSERT INTO tickets (id, state, root_ci, root_type, root_alertname, severity, opened_at,
    updated_at, resolved_at, alert_count, ci_count, affected_services, explanation,
    merged_into, version, body)
VALUES (:id, :state, :root_ci, :root_type, :root_alertname, :severity, :opened_at, :at,
    :resolved_at, :alert_count, :ci_count, :services, :explanation, :merged_into, :version,
    :body)
ON CONFLICT (id) DO UPDATE SET
    state = excluded.state, root_ci = excluded.root_ci, root_type = excluded.root_type,
    root_alertname = excluded.root_alertname, severity = excluded.severity,
    updated_at = excluded.updated_at, resolved_at = excluded.resolved_at,
    alert_count = excluded.alert_count, ci_count = excluded.ci_count,
    affected_services = excluded.affected_services, explanation = excluded.explanation,
    merged_into = excluded.merged_into, version = excluded.version, body = excluded.body
WHERE excluded.version > tickets.version
"""


def connect(path: str | Path, *, create: bool) -> sqlite3.Connection:
    """A connection to the ticket store; with ``create`` the file and schema are made."""
    target = Path(path)
    if not create and not target.exists():
        msg = f"ticket store {target} does not exist (the sqlite sink creates it)"
        raise SinkError(msg)
    try:
        if create:
            target.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(target, isolation_level=None, timeout=30.0)
        conn.row_factory = sqlite3.Row
        if create:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.executescript(SCHEMA)
    except (OSError, sqlite3.Error) as exc:
        msg = f"ticket store {target}: cannot open: {exc}"
        raise SinkError(msg) from exc
    return conn


def _row(event: IncidentEvent, body: str) -> dict[str, Any]:
    root = event.root_cause
    return {
        "id": event.id,
        "state": "resolved" if event.event == "resolve" else "open",
        "root_ci": root.ci,
        "root_type": root.type,
        "root_alertname": root.alertname,
        "severity": event.severity,
        "opened_at": event.first_seen,
        "at": event.at,
        "resolved_at": event.at if event.event == "resolve" else None,
        "alert_count": event.alert_count,
        "ci_count": event.ci_count,
        "services": json.dumps(event.affected_services),
        "explanation": event.explanation,
        "merged_into": event.merged_into,
        "version": event.version,
        "body": body,
    }


class SqliteSink(TicketSink):
    """Keeps tickets and their history in the SQLite file at ``path``."""

    def __init__(self, path: str | Path = "tickets.db") -> None:
        self.name = "sqlite"
        self.path = Path(path)
        self._conn: sqlite3.Connection | None = None

    @classmethod
    def from_config(cls, name: str, options: Mapping[str, Any]) -> Self:
        """Option: ``path`` (default ``tickets.db``)."""
        opts = SinkOptions(name, "sqlite", options)
        sink = cls(opts.text("path", "tickets.db"))
        opts.done()
        sink.name = name
        return sink

    def _open(self) -> sqlite3.Connection:
        if self._conn is None:
            self._conn = connect(self.path, create=True)
        return self._conn

    def healthcheck(self) -> None:
        """Open (or create) the store and check it answers."""
        try:
            self._open().execute("SELECT count(*) FROM tickets").fetchone()
        except sqlite3.Error as exc:
            msg = f"sqlite sink {self.name!r}: {self.path}: {exc}"
            raise SinkError(msg) from exc

    def write_batch(self, events: Sequence[IncidentEvent]) -> None:
        """Upsert each incident's ticket and record every event, in one transaction."""
        if not events:
            return
        rows = [_row(e, encode_event(e).decode()) for e in events]
        conn = self._open()
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(_UPSERT, rows)
            conn.executemany(
                "INSERT OR IGNORE INTO history (id, version, event, at, body)"
                " VALUES (:id, :version, :event, :at, :body)",
                [{**r, "event": e.event} for r, e in zip(rows, events, strict=True)],
            )
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            msg = f"sqlite sink {self.name!r}: cannot write {self.path}: {exc}"
            raise SinkError(msg) from exc

    def close(self) -> None:
        """Close the database."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None
