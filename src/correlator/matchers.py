"""Prometheus / Alertmanager label matchers: ``alertname="HostDown", severity=~"crit.*"``.

The syntax users already write in Alertmanager routes and inhibit rules:
``name op value`` pairs joined by commas, optionally in braces; operators
``=``, ``!=``, ``=~``, ``!~``; values in double quotes with Go escapes (a
bare word is accepted too). Regular expressions are fully anchored, and a
missing label reads as the empty string, as in Prometheus.

Matching one string is plain Python: the engine calls it once per distinct
string (vocabulary entry), never per alert.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from correlator.errors import RuleError

OPERATORS = ("=~", "!~", "!=", "=")
_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_BARE = re.compile(r"[^\s,{}\"=!~]+")
_ESCAPES = {'"': '"', "\\": "\\", "n": "\n", "t": "\t", "r": "\r"}


class MatcherError(RuleError):
    """A matcher string is malformed; ``column`` is the 0-based offset of the problem.

    ``reason`` is the message without the position, for callers that show it another way.
    """

    def __init__(self, message: str, text: str, column: int, reason: str | None = None) -> None:
        super().__init__(message)
        self.text = text
        self.column = column
        self.reason = reason if reason is not None else message


@dataclass(frozen=True)
class Matcher:
    """One ``name op value`` test on a label (or derived field)."""

    name: str
    op: str
    value: str
    pattern: re.Pattern[str] | None = field(default=None, compare=False, repr=False)

    def matches(self, value: str) -> bool:
        """Whether a label value (``""`` when absent) satisfies this matcher."""
        if self.op == "=":
            return value == self.value
        if self.op == "!=":
            return value != self.value
        assert self.pattern is not None
        found = self.pattern.fullmatch(value) is not None
        return found if self.op == "=~" else not found

    def __str__(self) -> str:
        escaped = self.value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        return f'{self.name}{self.op}"{escaped}"'


@dataclass(frozen=True)
class MatcherSet:
    """Matchers that must all hold (an AND); the empty set matches everything."""

    matchers: tuple[Matcher, ...]

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether every matcher holds on ``labels``."""
        return all(m.matches(labels.get(m.name, "")) for m in self.matchers)

    @property
    def names(self) -> tuple[str, ...]:
        """The label names the matchers read."""
        return tuple(m.name for m in self.matchers)

    def __str__(self) -> str:
        return "{" + ", ".join(map(str, self.matchers)) + "}"


def _fail(text: str, column: int, message: str) -> MatcherError:
    return MatcherError(f"{message} at column {column + 1} of {text!r}", text, column, message)


def _skip_space(text: str, i: int) -> int:
    while i < len(text) and text[i].isspace():
        i += 1
    return i


def _quoted(text: str, i: int) -> tuple[str, int]:
    out: list[str] = []
    j = i + 1
    while j < len(text):
        char = text[j]
        if char == '"':
            return "".join(out), j + 1
        if char == "\\":
            if j + 1 >= len(text) or text[j + 1] not in _ESCAPES:
                raise _fail(text, j, "unknown escape in quoted value")
            out.append(_ESCAPES[text[j + 1]])
            j += 2
            continue
        out.append(char)
        j += 1
    raise _fail(text, i, "unterminated quoted value")


def parse_matcher_set(text: str) -> MatcherSet:
    """Parse ``text`` into a ``MatcherSet``; raises ``MatcherError`` naming the column."""
    i = _skip_space(text, 0)
    end = len(text.rstrip())
    braced = i < end and text[i] == "{"
    if braced:
        if text[end - 1] != "}":
            raise _fail(text, end - 1, "missing closing '}'")
        i, end = _skip_space(text, i + 1), end - 1
    matchers: list[Matcher] = []
    while True:
        i = _skip_space(text, i)
        if i >= end:
            if not matchers and not braced:
                raise _fail(text, i, 'expected a matcher like name="value"')
            break
        name_match = _NAME.match(text, i, end)
        if name_match is None:
            raise _fail(text, i, "expected a label name")
        name = name_match.group()
        i = _skip_space(text, name_match.end())
        op = next((o for o in OPERATORS if text.startswith(o, i)), None)
        if op is None:
            raise _fail(text, i, f"expected one of {', '.join(OPERATORS)} after {name!r}")
        i = _skip_space(text, i + len(op))
        if i < end and text[i] == '"':
            value, i = _quoted(text, i)
        else:
            bare = _BARE.match(text, i, end)
            if bare is None:
                raise _fail(text, i, f"expected a value for {name!r}")
            value, i = bare.group(), bare.end()
        pattern = None
        if op in ("=~", "!~"):
            try:
                pattern = re.compile(value)
            except re.error as exc:
                raise _fail(text, i - 1, f"invalid regular expression {value!r}: {exc}") from exc
        matchers.append(Matcher(name, op, value, pattern))
        i = _skip_space(text, i)
        if i >= end:
            break
        if text[i] != ",":
            raise _fail(text, i, "expected ',' between matchers")
        i += 1
    return MatcherSet(tuple(matchers))
