"""``correlator plugins``: every sink type found, and the package it came from."""

from __future__ import annotations

from correlator.sinks.registry import GROUP, sink_entries


def plugins_report() -> str:
    """A table of sink types: name, ``module:Attr`` target, providing package and version."""
    entries = sink_entries()
    lines = [f"sinks (built-in, and entry-point group {GROUP!r}):"]
    width = max(len(e.name) for e in entries)
    for entry in entries:
        package = entry.distribution + (f" {entry.version}" if entry.version else "")
        if entry.distribution == "correlator":
            package += " (built-in)"
        note = "  [shadowed by the built-in of that name]" if entry.shadowed else ""
        lines.append(f"  {entry.name:<{width}}  {entry.target:<45} {package}{note}")
    return "\n".join(lines)
