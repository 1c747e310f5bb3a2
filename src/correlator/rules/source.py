"""Reading rule files with positions: YAML nodes, diagnostics, matcher values.

The YAML is composed into nodes, not loaded, so every key and value keeps its
position, and scalars are read from their source text (``01:00`` stays a clock
time, ``no`` stays a word). A ``Source`` collects ``Diagnostic``s instead of
raising, so one pass finds every problem of a file; ``RuleLoadError`` carries
them all.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import yaml

from correlator.errors import RuleError
from correlator.matchers import MatcherError, MatcherSet, parse_matcher_set
from correlator.rules.model import Position, Selector

_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass(frozen=True)
class Diagnostic:
    """One problem in a rule file; ``line_text`` is the source line it points into.

    ``position.line`` is 0 for a problem with the file as a whole (it cannot be read).
    """

    position: Position
    message: str
    line_text: str | None = None

    def render(self) -> str:
        """``file:line:col: message``, then the source line and a caret under the column."""
        where = self.position
        if where.line == 0:
            return f"{where.file}: {self.message}"
        head = f"{where}: {self.message}"
        if self.line_text is None:
            return head
        text = self.line_text.rstrip("\n")
        pad = "".join(c if c == "\t" else " " for c in text[: where.col - 1])
        return f"{head}\n  {text}\n  {pad}^"


class RuleLoadError(RuleError):
    """A rule set has errors; ``diagnostics`` lists every one of them."""

    def __init__(self, diagnostics: Sequence[Diagnostic]) -> None:
        self.diagnostics = list(diagnostics)
        shown = "\n".join(d.render() for d in self.diagnostics[:5])
        more = len(self.diagnostics) - 5
        super().__init__(shown + (f"\n... and {more} more" if more > 0 else ""))


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest choice, or an empty string."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


class Source:
    """One rule file being read: its text, positions and the diagnostics found so far."""

    def __init__(self, file: str, text: str, diagnostics: list[Diagnostic]) -> None:
        self.file = file
        self.lines = text.splitlines()
        self.diagnostics = diagnostics

    def position(self, node: yaml.Node, offset: int = 0) -> Position:
        """The position of ``node``, or of character ``offset`` of a one-line scalar's value."""
        mark = node.start_mark
        column = mark.column
        style = getattr(node, "style", None)
        if offset and isinstance(node, yaml.ScalarNode) and mark.line == node.end_mark.line:
            if style in ("'", '"'):
                line = self.lines[mark.line] if mark.line < len(self.lines) else ""
                column += 1
                for _ in range(offset):
                    doubled = style == "'" and line.startswith("''", column)
                    column += (
                        2 if doubled or (style == '"' and line[column : column + 1] == "\\") else 1
                    )
            elif not style:
                column += offset
        return Position(self.file, mark.line + 1, column + 1)

    def error(self, node: yaml.Node | Position, message: str, offset: int = 0) -> None:
        """Record a problem at ``node`` (or a position); loading goes on."""
        where = node if isinstance(node, Position) else self.position(node, offset)
        text = self.lines[where.line - 1] if 0 < where.line <= len(self.lines) else None
        self.diagnostics.append(Diagnostic(where, message, text))


@dataclass
class Names:
    """Rule names seen so far across the files of one rule set, and the auto-name counters."""

    seen: dict[str, Position] = field(default_factory=dict)
    counters: dict[str, int] = field(default_factory=dict)

    def next_auto(self, stage: str) -> str:
        """The name of the next unnamed rule of ``stage``."""
        self.counters[stage] = self.counters.get(stage, 0) + 1
        return f"{stage}#{self.counters[stage]}"


def parse_selector(src: Source, node: yaml.Node, what: str) -> Selector | None:
    """A ``match``-like value: one matcher string, or a list of them (any may hold)."""
    items = node.value if isinstance(node, yaml.SequenceNode) else [node]
    if isinstance(node, yaml.SequenceNode) and not items:
        src.error(node, f"{what} is an empty list; give at least one matcher string")
        return None
    sets: list[MatcherSet] = []
    texts: list[str] = []
    for item in items:
        if not isinstance(item, yaml.ScalarNode) or item.tag.endswith(":null"):
            src.error(item, f"{what} must be a matcher string like 'alertname=\"HostDown\"'")
            continue
        try:
            sets.append(parse_matcher_set(item.value))
        except MatcherError as exc:
            src.error(item, f"{what}: {exc.reason}", exc.column)
            continue
        texts.append(item.value)
    if len(sets) != len(items):
        return None
    return Selector(tuple(sets), tuple(texts), src.position(node))


def compose(src: Source, text: str) -> yaml.Node | None:
    """The file's one YAML document as nodes; a syntax error becomes a diagnostic."""
    try:
        documents = list(yaml.compose_all(text, Loader=_LOADER))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or "invalid YAML"
        context = f" ({exc.context})" if exc.context else ""
        where = Position(src.file, mark.line + 1, mark.column + 1) if mark else None
        src.error(where or Position(src.file, 1, 1), f"YAML syntax error: {problem}{context}")
        return None
    except yaml.YAMLError as exc:
        src.error(Position(src.file, 1, 1), f"YAML error: {exc}")
        return None
    if len(documents) > 1:
        src.error(documents[1], "a rule file holds one YAML document; remove the '---'")
    return documents[0] if documents else None
