"""``correlator tickets list|show``: the embedded ticket store as text for a terminal."""

from __future__ import annotations

import json
from pathlib import Path

from correlator.errors import SinkError
from correlator.sinks.sqlite import connect

STATES = ("open", "resolved")


def _cause(ci: str | None, kind: str | None, alertname: str | None) -> str:
    if ci:
        return f"{ci} ({kind or 'not in CMDB'})"
    return alertname or "?"


def tickets_list_report(db_path: str | Path, *, state: str | None = None, limit: int = 50) -> str:
    """The most recently updated tickets (of one ``state``, or all) as a table."""
    if state is not None and state not in STATES:
        msg = f"unknown ticket state {state!r} (valid: {', '.join(STATES)})"
        raise SinkError(msg)
    conn = connect(db_path, create=False)
    try:
        where, args = ("WHERE state = ?", (state,)) if state else ("", ())
        total = conn.execute(f"SELECT count(*) FROM tickets {where}", args).fetchone()[0]
        rows = conn.execute(
            f"SELECT * FROM tickets {where} ORDER BY updated_at DESC, id LIMIT ?", (*args, limit)
        ).fetchall()
    finally:
        conn.close()
    if not rows:
        return f"no {state + ' ' if state else ''}tickets in {db_path}"
    lines = [
        f"{'ticket':<21} {'state':<8} {'severity':<9} {'root cause':<30} {'alerts':>7} "
        f"{'CIs':>5}  {'updated':<27} business services"
    ]
    for row in rows:
        services = ", ".join(json.loads(row["affected_services"])) or "-"
        cause = _cause(row["root_ci"], row["root_type"], row["root_alertname"])
        lines.append(
            f"{row['id']:<21} {row['state']:<8} {row['severity']:<9} {cause:<30} "
            f"{row['alert_count']:>7} {row['ci_count']:>5}  {row['updated_at']:<27} {services}"
        )
    if total > len(rows):
        lines.append(f"... {total - len(rows)} more (use --limit)")
    return "\n".join(lines)


def ticket_show_report(db_path: str | Path, ticket_id: str) -> str:
    """One ticket (by id or unique id prefix) with its history, oldest event first."""
    conn = connect(db_path, create=False)
    try:
        pattern = ticket_id.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        found = conn.execute(
            "SELECT * FROM tickets WHERE id = ? OR id LIKE ? ESCAPE '\\' ORDER BY id LIMIT 3",
            (ticket_id, pattern),
        ).fetchall()
        exact = [r for r in found if r["id"] == ticket_id]
        if exact:
            found = exact
        if not found:
            msg = f"no ticket {ticket_id!r} in {db_path}"
            raise SinkError(msg)
        if len(found) > 1:
            msg = f"ticket id {ticket_id!r} is ambiguous in {db_path}: " + ", ".join(
                r["id"] for r in found
            )
            raise SinkError(msg)
        ticket = found[0]
        history = conn.execute(
            "SELECT version, event, at, body FROM history WHERE id = ? ORDER BY version",
            (ticket["id"],),
        ).fetchall()
    finally:
        conn.close()
    body = json.loads(ticket["body"])
    services = ", ".join(json.loads(ticket["affected_services"])) or "-"
    lines = [
        f"ticket      {ticket['id']}",
        f"state       {ticket['state']}"
        + (f" (merged into {ticket['merged_into']})" if ticket["merged_into"] else ""),
        f"severity    {ticket['severity']} ({body.get('significance', '?')})",
        "root cause  "
        + _cause(ticket["root_ci"], ticket["root_type"], ticket["root_alertname"])
        + (" [inferred]" if body.get("root_cause", {}).get("inferred") else ""),
        f"alerts      {ticket['alert_count']} on {ticket['ci_count']} CIs",
        f"services    {services}",
        f"opened      {ticket['opened_at']}",
        f"updated     {ticket['updated_at']} (version {ticket['version']})",
    ]
    if ticket["resolved_at"]:
        lines.append(f"resolved    {ticket['resolved_at']}")
    lines += [f"explanation {ticket['explanation']}", "", "history"]
    for event in history:
        detail = json.loads(event["body"])
        lines.append(
            f"  v{event['version']:<4} {event['event']:<8} {event['at']:<27} "
            f"{detail['alert_count']} alerts, {detail['ci_count']} CIs"
            + (f", {detail['reason']}" if detail.get("reason") else "")
        )
    return "\n".join(lines)
