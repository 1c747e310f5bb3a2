"""The durable outbox: incident events are emitted once they are in here.

One SQLite database in WAL mode::

    events(seq, incident, version, targets, body)   every emitted event, seq global
    routes(incident, targets)                       the sinks of each open incident
    cursors(sink, seq)                              last seq delivered to each sink
    dead_letters(...)                               events a sink rejected for good
    sink_state(sink, key, value)                    small per-sink store (remote ticket ids)

``append`` writes a batch of events in one transaction; routing is decided on
an incident's first event and kept in ``routes`` until its ``resolve``, so all
of one incident's events go to the same sinks. Each sink's delivery thread
reads the events after its cursor that name it in ``targets``, in ``seq``
order (so an incident's events stay in order), and moves its cursor only
after they were delivered or dead-lettered: delivery is at least once, and a
restart on the same file resumes from the cursors. ``seq`` is
AUTOINCREMENT so it never goes back, even after ``compact`` empties the table.

Every thread gets its own connection; ``synchronous=NORMAL`` (the default)
survives a process crash, ``FULL`` also a power loss, at a cost the sink
benchmark measures.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from correlator.errors import SinkError
from correlator.incident import IncidentEvent, encode_event
from correlator.metrics import Metrics
from correlator.sinks.routing import Router

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    incident TEXT NOT NULL,
    version INTEGER NOT NULL,
    targets TEXT NOT NULL,
    body BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS routes (incident TEXT PRIMARY KEY, targets TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS cursors (sink TEXT PRIMARY KEY, seq INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS dead_letters (
    id INTEGER PRIMARY KEY,
    sink TEXT NOT NULL,
    seq INTEGER NOT NULL,
    incident TEXT NOT NULL,
    version INTEGER NOT NULL,
    at REAL NOT NULL,
    status INTEGER,
    reason TEXT NOT NULL,
    error TEXT NOT NULL,
    response TEXT,
    body BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS sink_state (
    sink TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (sink, key)
);
"""
SYNCHRONOUS = ("OFF", "NORMAL", "FULL")


@dataclass(frozen=True)
class OutboxRow:
    """One stored event: its global sequence number, incident, version and JSON body."""

    seq: int
    incident: str
    version: int
    body: bytes


@dataclass(frozen=True)
class DeadLetter:
    """An event a sink rejected for good, with the receiver's answer."""

    sink: str
    seq: int
    incident: str
    version: int
    at: float
    status: int | None
    reason: str
    error: str
    response: str | None
    body: bytes


def _tag(name: str) -> str:
    return f",{name},"


class Outbox:
    """The outbox database at ``path``; ``router`` picks the sinks of each new incident.

    Safe to use from several threads: each gets its own connection.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        router: Router | None = None,
        synchronous: str = "NORMAL",
        metrics: Metrics | None = None,
    ) -> None:
        if synchronous.upper() not in SYNCHRONOUS:
            msg = f"outbox {path}: synchronous must be one of {', '.join(SYNCHRONOUS)}"
            raise SinkError(msg)
        self.path = Path(path)
        self.router = router or Router(())
        self.synchronous = synchronous.upper()
        self.metrics = metrics
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()  # guards _connections and the route cache
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = self._conn()
            conn.executescript(_SCHEMA)
            self._routes = dict(conn.execute("SELECT incident, targets FROM routes"))
            for spec in self.router.specs:
                conn.execute("INSERT OR IGNORE INTO cursors VALUES (?, 0)", (spec.name,))
        except (OSError, sqlite3.Error) as exc:
            msg = f"outbox {self.path}: cannot open: {exc}"
            raise SinkError(msg) from exc

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=30.0
            )
            with self._lock:
                if not self._connections:
                    # WAL is a property of the file: set it once, from the first
                    # connection; re-setting it waits for every reader to finish.
                    conn.execute("PRAGMA journal_mode=WAL")
                self._connections.append(conn)
            conn.execute(f"PRAGMA synchronous={self.synchronous}")
            self._local.conn = conn
        return conn

    def append(self, events: Sequence[IncidentEvent]) -> int:
        """Store ``events`` in one transaction (this is what emitting means); returns the last seq.

        Each event goes to the sinks its incident was routed to on its first
        event; a ``resolve`` ends the incident's route.
        """
        if not events:
            return self.last_seq()
        rows = []
        unrouted = 0
        conn = self._conn()
        with self._lock:
            new_routes: dict[str, str] = {}
            ended: list[str] = []
            for event in events:
                targets = self._routes.get(event.id)
                if targets is None:
                    names = self.router.targets(event)
                    targets = "," + ",".join(names) + "," if names else ""
                    self._routes[event.id] = new_routes[event.id] = targets
                if not targets:
                    unrouted += 1
                if event.event == "resolve":
                    ended.append(event.id)
                rows.append((event.id, event.version, targets, encode_event(event)))
            try:
                conn.execute("BEGIN IMMEDIATE")
                conn.executemany(
                    "INSERT INTO events (incident, version, targets, body) VALUES (?, ?, ?, ?)",
                    rows,
                )
                last = conn.execute("SELECT last_insert_rowid()").fetchone()[0]
                conn.executemany(
                    "INSERT OR REPLACE INTO routes VALUES (?, ?)",
                    [(i, t) for i, t in new_routes.items() if i not in ended],
                )
                conn.executemany("DELETE FROM routes WHERE incident = ?", [(i,) for i in ended])
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                for incident in new_routes:
                    self._routes.pop(incident, None)
                msg = f"outbox {self.path}: cannot store {len(rows)} events: {exc}"
                raise SinkError(msg) from exc
            for incident in ended:
                self._routes.pop(incident, None)
        if self.metrics is not None:
            self.metrics.outbox_events.inc(len(rows))
            if unrouted:
                self.metrics.outbox_unrouted.inc(unrouted)
        return int(last)

    def read(self, sink: str, after: int, limit: int) -> tuple[list[OutboxRow], int]:
        """Up to ``limit`` events for ``sink`` after seq ``after``, and the seq read up to.

        The second value is where the cursor may move once the rows are
        delivered: past events meant for other sinks, too.
        """
        conn = self._conn()
        conn.execute("BEGIN")
        try:
            rows = [
                OutboxRow(*r)
                for r in conn.execute(
                    "SELECT seq, incident, version, body FROM events"
                    " WHERE seq > ? AND instr(targets, ?) > 0 ORDER BY seq LIMIT ?",
                    (after, _tag(sink), limit),
                )
            ]
            if len(rows) == limit:
                horizon = rows[-1].seq
            else:
                horizon = conn.execute(
                    "SELECT coalesce(max(seq), ?) FROM events", (after,)
                ).fetchone()[0]
        finally:
            conn.execute("COMMIT")
        return rows, max(int(horizon), after)

    def cursor(self, sink: str) -> int:
        """The last seq delivered to (or skipped by) ``sink``; 0 when it has none yet."""
        found = self._conn().execute("SELECT seq FROM cursors WHERE sink = ?", (sink,)).fetchone()
        return int(found[0]) if found else 0

    def advance(self, sink: str, seq: int) -> None:
        """Move ``sink``'s cursor to ``seq`` (never back)."""
        self._conn().execute(
            "INSERT INTO cursors VALUES (?, ?)"
            " ON CONFLICT(sink) DO UPDATE SET seq = max(seq, excluded.seq)",
            (sink, seq),
        )

    def dead_letter(
        self,
        sink: str,
        row: OutboxRow,
        *,
        reason: str,
        error: str,
        status: int | None = None,
        response: str | None = None,
    ) -> None:
        """Move ``row`` to the dead letters of ``sink`` and its cursor past it, atomically."""
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute(
                "INSERT INTO dead_letters (sink, seq, incident, version, at, status, reason,"
                " error, response, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    sink,
                    row.seq,
                    row.incident,
                    row.version,
                    time.time(),
                    status,
                    reason,
                    error,
                    response,
                    row.body,
                ),
            )
            self.advance(sink, row.seq)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def dead_letters(self, sink: str | None = None) -> list[DeadLetter]:
        """The dead letters (of one sink, or all), oldest first."""
        query = (
            "SELECT sink, seq, incident, version, at, status, reason, error, response, body"
            " FROM dead_letters"
        )
        args: tuple[str, ...] = ()
        if sink is not None:
            query += " WHERE sink = ?"
            args = (sink,)
        return [DeadLetter(*r) for r in self._conn().execute(query + " ORDER BY id", args)]

    def pending(self, sink: str) -> int:
        """How many stored events ``sink`` has yet to receive."""
        return int(
            self._conn()
            .execute(
                "SELECT count(*) FROM events WHERE seq > ? AND instr(targets, ?) > 0",
                (self.cursor(sink), _tag(sink)),
            )
            .fetchone()[0]
        )

    def last_seq(self) -> int:
        """The seq of the last event ever appended (0 for a new outbox)."""
        found = (
            self._conn().execute("SELECT seq FROM sqlite_sequence WHERE name = 'events'").fetchone()
        )
        return int(found[0]) if found else 0

    def compact(self, sinks: Iterable[str]) -> int:
        """Delete the events every one of ``sinks`` has passed; returns how many."""
        names = list(sinks)
        if not names:
            return 0
        marks = ",".join("?" * len(names))
        return (
            self._conn()
            .execute(
                "DELETE FROM events WHERE seq <= "
                f"(SELECT coalesce(min(seq), 0) FROM cursors WHERE sink IN ({marks}))",
                names,
            )
            .rowcount
        )

    def state(self, sink: str) -> OutboxState:
        """The durable key-value store of ``sink`` (a ``SinkState``)."""
        return OutboxState(self, sink)

    def close(self) -> None:
        """Close every thread's connection; call once the threads using it have stopped."""
        with self._lock:
            for conn in self._connections:
                conn.close()
            self._connections.clear()
        self._local = threading.local()


class OutboxState:
    """A sink's keys and values in the outbox's ``sink_state`` table."""

    def __init__(self, outbox: Outbox, sink: str) -> None:
        self._outbox = outbox
        self._sink = sink

    def get(self, key: str) -> str | None:
        """The value stored under ``key``, or None."""
        found = (
            self._outbox._conn()
            .execute("SELECT value FROM sink_state WHERE sink = ? AND key = ?", (self._sink, key))
            .fetchone()
        )
        return found[0] if found else None

    def put(self, key: str, value: str) -> None:
        """Store ``value`` under ``key``."""
        self._outbox._conn().execute(
            "INSERT OR REPLACE INTO sink_state VALUES (?, ?, ?)", (self._sink, key, value)
        )

    def delete(self, key: str) -> None:
        """Forget ``key``."""
        self._outbox._conn().execute(
            "DELETE FROM sink_state WHERE sink = ? AND key = ?", (self._sink, key)
        )
