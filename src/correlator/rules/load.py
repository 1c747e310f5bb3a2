"""Rule files (YAML) to a ``RuleSet``, with every error's file, line and column.

A rule set is one file, or a directory whose ``*.yaml``/``*.yml`` files are
merged in name order (not recursively): list sections (``classify``, ``drop``,
...) concatenate, and a single-valued setting (``ci_label``, ``dedup``,
``correlate.topology``) from a later file replaces an earlier one, so a site
file can follow the shipped defaults and retune them. Rule names are unique
across files; a rule without a ``name`` is called ``<stage>#<n>`` (n counts
that stage's rules across the merged files, from 1).

Loading goes on after an error: ``RuleLoadError`` carries every
``Diagnostic`` found. Besides the shape of each section (``sections``), the
merged set is checked for matchers that read what is not known yet when they
run: ``classify`` cannot read ``significance`` (it decides it), and ``enrich``
cannot read ``significance`` or a label that enrichment itself adds.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from correlator.batch import DEFAULT_CI_LABELS
from correlator.rules.model import Position, RuleSet, Selector
from correlator.rules.sections import read_file
from correlator.rules.source import Diagnostic, Names, RuleLoadError, Source

RULE_SUFFIXES = (".yaml", ".yml")


def rule_files(path: Path) -> list[Path]:
    """The files of a rule set: ``path`` itself, or a directory's rule files in name order."""
    if path.is_dir():
        return sorted(
            (p for p in path.iterdir() if p.is_file() and p.suffix in RULE_SUFFIXES),
            key=lambda p: p.name,
        )
    return [path]


def load_rules(path: str | os.PathLike[str]) -> RuleSet:
    """The rule set in a file or directory; raises ``RuleLoadError`` listing every problem."""
    root = Path(path)
    if not root.exists():
        raise RuleLoadError([Diagnostic(Position(str(root), 0, 0), "no such file or directory")])
    files = rule_files(root)
    if not files:
        message = f"no rule files ({', '.join('*' + s for s in RULE_SUFFIXES)}) in this directory"
        raise RuleLoadError([Diagnostic(Position(str(root), 0, 0), message)])
    diagnostics: list[Diagnostic] = []
    names = Names()
    sources: dict[str, Source] = {}
    parts = []
    for file in files:
        try:
            text = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            diagnostics.append(Diagnostic(Position(str(file), 0, 0), f"cannot read: {exc}"))
            continue
        sources[str(file)] = Source(str(file), text, diagnostics)
        parts.append(read_file(sources[str(file)], text, names))
    return _finish([str(f) for f in files], parts, sources, diagnostics)


def load_rules_text(text: str, file: str = "<rules>") -> RuleSet:
    """A rule set from YAML text (for tests and tools); ``file`` names it in diagnostics."""
    diagnostics: list[Diagnostic] = []
    source = Source(file, text, diagnostics)
    return _finish([file], [read_file(source, text, Names())], {file: source}, diagnostics)


def _finish(
    files: list[str],
    parts: Sequence[dict[str, object]],
    sources: dict[str, Source],
    diagnostics: list[Diagnostic],
) -> RuleSet:
    if not diagnostics:
        rules = merge(files, parts)
        _check_reads(rules, sources)
    if diagnostics:
        order = {file: k for k, file in enumerate(files)}
        raise RuleLoadError(
            sorted(diagnostics, key=lambda d: (order.get(d.position.file, -1), d.position.line))
        )
    return rules


def merge(files: list[str], parts: Sequence[dict[str, object]]) -> RuleSet:
    """The files' sections as one ``RuleSet``: lists concatenate, later settings win."""
    merged: dict[str, object] = {"files": tuple(files), "ci_labels": DEFAULT_CI_LABELS}
    for part in parts:
        for key, value in part.items():
            if isinstance(value, tuple) and key != "ci_labels":
                merged[key] = (*merged.get(key, ()), *value)  # type: ignore[misc]
            else:
                merged[key] = value
    return RuleSet(**merged)  # type: ignore[arg-type]


def _check_reads(rules: RuleSet, sources: dict[str, Source]) -> None:
    """Report matchers that read a field not known yet at their stage."""

    def refuse(selector: Selector, names: frozenset[str], why: str) -> None:
        for name in sorted(selector.names & names):
            sources[selector.position.file].error(selector.position, why.format(name=name))

    for rule in rules.classify:
        refuse(
            rule.match,
            frozenset({"significance"}),
            "classify cannot match on {name!r}: it is what classify decides",
        )
    added = frozenset(a for rule in rules.enrich for a in rule.attributes)
    for rule in rules.enrich:
        if rule.match is not None:
            refuse(
                rule.match,
                added | {"significance"},
                "enrich cannot match on {name!r}: it is not known before enrichment",
            )
