"""Load a CMDB export and validate it into a ``Cmdb`` record.

Three export formats, chosen by file extension:

* ``.json``: ``{"cis": [{"id", "type", "name"?, ...}], "relations": [{"from", "to", "type"}]}``;
  keys other than ``id``, ``type`` and ``name`` are attributes.
* ``.csv``: the pair a ServiceNow-style export gives. The CI table has ``sys_id`` (or ``id``),
  ``name`` and ``sys_class_name`` (or ``type``); its other non-empty cells are attributes.
  The relationship table has ``parent``, ``child`` and ``type`` (``Depends on::Used by``);
  the parent is the relation's ``from``. When no relationship table is given, the one CSV
  beside the CI table with ``rel`` in its name is used (``cmdb_ci.csv`` + ``cmdb_rel_ci.csv``).
* ``.graphml`` / ``.xml``: node id = CI id; node data ``type``, ``name`` and attributes;
  edge data ``type``; an edge points from → to like a JSON relation.

A relation endpoint names a CI by id, else by name. Each relation type maps to an impact
direction through ``RELATION_DIRECTIONS``; an impact edge u→v means "a failure of u can take
v down". Validation collects *every* error of an export before raising one ``TopologyError``,
each naming its file and row, so a user fixes them in one pass; data that is suspicious but
usable (unknown relation types, CIs without relations or type, shared names) becomes warnings.
"""

from __future__ import annotations

import csv
import json
import os
import re
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import msgspec
import networkx as nx
import numpy as np

from correlator.errors import TopologyError
from correlator.topology.graph import KeyIndex

FORWARD: Final = "forward"
"""Impact runs from → to: ``from`` carries ``to`` (a switch *hosts* a host)."""

REVERSE: Final = "reverse"
"""Impact runs to → from: ``from`` depends on ``to`` (a host *runs on* a hypervisor)."""

RELATION_DIRECTIONS: dict[str, str] = {
    # ``from`` depends on ``to``, so a failure of ``to`` can take ``from`` down.
    "depends_on": REVERSE,
    "runs_on": REVERSE,
    "connected_to": REVERSE,
    "uplink": REVERSE,
    "hosted_on": REVERSE,
    "uses": REVERSE,
    # ServiceNow "parent descriptor::child descriptor"; the parent depends on the child.
    "depends_on::used_by": REVERSE,
    "runs_on::runs": REVERSE,
    "connects_to::connected_by": REVERSE,
    "hosted_on::hosts": REVERSE,
    # ``from`` carries ``to``, so a failure of ``from`` can take ``to`` down.
    "impacts": FORWARD,
    "hosts": FORWARD,
    "contains": FORWARD,
    "provides": FORWARD,
    "supports": FORWARD,
    "feeds": FORWARD,
    "contains::contained_by": FORWARD,
}
"""Impact direction of each relation type, keyed by the normalized type name.

Lookups go through ``relation_direction``, which lower-cases the type and treats spaces,
hyphens and underscores alike, so ``Depends on::Used by`` finds ``depends_on::used_by``.
Relations of any other type are ignored with a warning.
"""

_SEPARATOR = re.compile(r"\s*::\s*")
_WORD_BREAK = re.compile(r"[\s\-]+")
_DIRECTION_CODE: dict[str | None, int] = {FORWARD: 1, REVERSE: -1, None: 0}
_JSON_CI_KEYS = frozenset({"id", "type", "name"})
_PREVIEW = 5


def relation_direction(relation_type: str) -> str | None:
    """Return ``FORWARD`` or ``REVERSE`` for a relation type, ``None`` when it is unknown."""
    key = _WORD_BREAK.sub("_", _SEPARATOR.sub("::", relation_type.strip().lower()))
    return RELATION_DIRECTIONS.get(key)


def format_preview(items: Iterable[str], total: int, limit: int = _PREVIEW) -> str:
    """Join the first ``limit`` of ``total`` items for a message, noting how many are left."""
    shown = [item for _, item in zip(range(limit), items, strict=False)]
    more = f" (+{total - len(shown)} more)" if total > len(shown) else ""
    return ", ".join(shown) + more


@dataclass(frozen=True, eq=False)
class Cmdb:
    """A validated CMDB export: its CIs in file order and the impact edges of its relations.

    ``load_cmdb`` builds it; ``compile_topology`` turns it into the arrays the engine reads.
    ``names`` default to the id; ``attributes`` hold every other CI field as a string.
    ``impact_src[k] → impact_dst[k]`` (CI indices, int64) is one impact edge per relation of a
    known type, duplicates and self-loops kept as the export has them; ``relation_count``
    counts every relation, those of unknown types included.
    """

    source: str
    ids: tuple[str, ...]
    types: tuple[str, ...]
    names: tuple[str, ...]
    attributes: tuple[dict[str, str], ...]
    relation_count: int
    impact_src: np.ndarray
    impact_dst: np.ndarray
    warnings: tuple[str, ...]

    @property
    def n_cis(self) -> int:
        """Number of CIs."""
        return len(self.ids)


def load_cmdb(
    path: str | os.PathLike[str], relations: str | os.PathLike[str] | None = None
) -> Cmdb:
    """Load and validate a CMDB export; the format follows the extension of ``path``.

    ``relations`` is the relationship table of a CSV pair (found beside ``path`` when omitted)
    and is refused for the other formats, which carry their relations. Raises ``TopologyError``
    listing every error of the export.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        export = _read_csv_pair(path, None if relations is None else Path(relations))
    elif relations is not None:
        msg = f"{path}: a relationship file only goes with a CSV CI table, not a {suffix} export"
        raise TopologyError(msg)
    elif suffix == ".json":
        export = _read_json(path)
    elif suffix in (".graphml", ".xml"):
        export = _read_graphml(path)
    else:
        msg = (
            f"{path}: unknown CMDB format {suffix or '(no extension)'!r}; "
            "expected one of .json, .csv, .graphml, .xml"
        )
        raise TopologyError(msg)
    return _validate(export)


@dataclass
class _Export:
    """CI and relation rows as read from the files, before validation.

    ``*_pos`` keep each row's position in its file (index or line number); ``ci_place`` and
    ``rel_place`` turn a position into the place a message names, and ``endpoints`` are what
    the format calls a relation's two ends.
    """

    source: str
    ci_place: Callable[[int], str]
    rel_place: Callable[[int], str]
    endpoints: tuple[str, str]
    ids: list[str] = field(default_factory=list)
    types: list[str] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    attributes: list[dict[str, str]] = field(default_factory=list)
    ci_pos: list[int] = field(default_factory=list)
    rel_from: list[str] = field(default_factory=list)
    rel_to: list[str] = field(default_factory=list)
    rel_type: list[str] = field(default_factory=list)
    rel_pos: list[int] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def add_ci(self, pos: int, ci_id: str, ci_type: str, name: str, attrs: dict[str, str]) -> None:
        """Record a CI, or an error when it has no id."""
        ci_id = ci_id.strip()
        if not ci_id:
            self.errors.append(f"{self.ci_place(pos)}: CI has no id")
            return
        self.ids.append(ci_id)
        self.types.append(ci_type.strip())
        self.names.append(name.strip() or ci_id)
        self.attributes.append(attrs)
        self.ci_pos.append(pos)

    def add_relation(self, pos: int, source: str, target: str, rel_type: str) -> None:
        """Record a relation, or an error naming whichever of its fields are empty."""
        values = (source.strip(), target.strip(), rel_type.strip())
        missing = [
            key for key, value in zip((*self.endpoints, "type"), values, strict=True) if not value
        ]
        if missing:
            self.errors.append(f"{self.rel_place(pos)}: relation has no {' or '.join(missing)}")
            return
        self.rel_from.append(values[0])
        self.rel_to.append(values[1])
        self.rel_type.append(values[2])
        self.rel_pos.append(pos)

    def add_cis(
        self,
        ids: list[str],
        types: list[str],
        names: list[str],
        attributes: list[dict[str, str]],
    ) -> None:
        """Record the CIs at positions 0, 1, ..., given as columns of stripped values.

        The same as ``add_ci`` for each, but when every CI has an id it is two passes over
        lists instead of a call per CI; otherwise each goes through ``add_ci``, so the errors
        come in file order.
        """
        if "" in ids:
            for pos, row in enumerate(zip(ids, types, names, attributes, strict=True)):
                self.add_ci(pos, *row)
            return
        self.ids += ids
        self.types += types
        self.names += [name or ci_id for name, ci_id in zip(names, ids, strict=True)]
        self.attributes += attributes
        self.ci_pos += range(len(ids))

    def add_relations(self, sources: list[str], targets: list[str], types: list[str]) -> None:
        """Record the relations at positions 0, 1, ..., given as columns of stripped values.

        The same shortcut as ``add_cis``: only when a field is empty does each relation go
        through ``add_relation`` for its error.
        """
        if "" in sources or "" in targets or "" in types:
            for pos, row in enumerate(zip(sources, targets, types, strict=True)):
                self.add_relation(pos, *row)
            return
        self.rel_from += sources
        self.rel_to += targets
        self.rel_type += types
        self.rel_pos += range(len(sources))


def _text(value: object) -> str:
    """A JSON or GraphML value as the string the engine matches on (``None`` → empty)."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value, sort_keys=True)


class _JsonRelation(msgspec.Struct, gc=False):
    """A JSON relation whose fields are strings; an absent field is empty.

    Untracked by the garbage collector (``gc=False``: it holds only strings), so a million
    of them add no collector work.
    """

    source: str = msgspec.field(name="from", default="")
    target: str = msgspec.field(name="to", default="")
    type: str = ""


class _JsonStrings(msgspec.Struct):
    """A JSON export whose every CI field and relation field is a string."""

    cis: list[dict[str, str]]
    relations: list[_JsonRelation] = []


_JSON_STRINGS = msgspec.json.Decoder(_JsonStrings)


def _json_export(path: Path) -> _Export:
    """An empty ``_Export`` that names places as ``cis[i]`` and ``relations[i]``."""
    return _Export(
        str(path),
        ci_place=lambda pos: f"{path}: cis[{pos}]",
        rel_place=lambda pos: f"{path}: relations[{pos}]",
        endpoints=("from", "to"),
    )


def _read_json(path: Path) -> _Export:
    """Read the ``{"cis": [...], "relations": [...]}`` export.

    Exports whose values are all strings (the usual case, and what ``generate_network``
    writes) decode with msgspec straight into string dicts and ``_JsonRelation`` records,
    about twice as fast as ``json`` and without a dict per relation; the CIs' dicts, once
    ``id``, ``type`` and ``name`` are popped, are their attributes. Anything else (numbers,
    nulls, entries that are not objects, or JSON that does not parse) goes to
    ``_read_json_values``, which gives the exact conversions and messages.
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise TopologyError(f"cannot read CMDB {path}: {exc.strerror or exc}") from exc
    try:
        doc = _JSON_STRINGS.decode(data)
    except ValueError:  # msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError
        return _read_json_values(path)
    export = _json_export(path)
    cis, rels = doc.cis, doc.relations
    export.add_cis(
        [ci.pop("id", "").strip() for ci in cis],
        [ci.pop("type", "").strip() for ci in cis],
        [ci.pop("name", "").strip() for ci in cis],
        cis,
    )
    export.add_relations(
        [r.source.strip() for r in rels],
        [r.target.strip() for r in rels],
        [r.type.strip() for r in rels],
    )
    return export


def _read_json_values(path: Path) -> _Export:
    """Read a JSON export with ``json``, converting each value with ``_text``."""
    try:
        with path.open(encoding="utf-8") as fh:
            doc = json.load(fh)
    except OSError as exc:
        raise TopologyError(f"cannot read CMDB {path}: {exc.strerror or exc}") from exc
    except ValueError as exc:  # json.JSONDecodeError and UnicodeDecodeError
        raise TopologyError(f"{path}: not valid JSON: {exc}") from exc
    cis = doc.get("cis") if isinstance(doc, dict) else None
    relations = doc.get("relations", []) if isinstance(doc, dict) else None
    if not isinstance(cis, list) or not isinstance(relations, list):
        msg = f'{path}: expected an object with a "cis" array and a "relations" array'
        raise TopologyError(msg)
    export = _json_export(path)
    for pos, ci in enumerate(cis):
        if not isinstance(ci, dict):
            export.errors.append(f"{path}: cis[{pos}]: expected an object, not {_text(ci)!r}")
            continue
        attrs = {k: _text(v) for k, v in ci.items() if k not in _JSON_CI_KEYS and v is not None}
        export.add_ci(pos, _text(ci.get("id")), _text(ci.get("type")), _text(ci.get("name")), attrs)
    for pos, rel in enumerate(relations):
        if not isinstance(rel, dict):
            export.errors.append(
                f"{path}: relations[{pos}]: expected an object, not {_text(rel)!r}"
            )
            continue
        export.add_relation(
            pos, _text(rel.get("from")), _text(rel.get("to")), _text(rel.get("type"))
        )
    return export


def _read_csv(path: Path) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """Return a CSV file's header and its non-blank rows, each with its (last) line number."""
    try:
        with path.open(encoding="utf-8-sig", newline="") as fh:
            reader = csv.reader(fh)
            header = next(reader, None)
            rows = [(reader.line_num, row) for row in reader if any(cell.strip() for cell in row)]
    except OSError as exc:
        raise TopologyError(f"cannot read CMDB {path}: {exc.strerror or exc}") from exc
    except (csv.Error, UnicodeDecodeError) as exc:
        raise TopologyError(f"{path}: not a readable CSV file: {exc}") from exc
    if header is None:
        raise TopologyError(f"{path}: empty file, expected a header row")
    return [name.strip() for name in header], rows


def _column(path: Path, header: list[str], names: tuple[str, ...], errors: list[str]) -> int:
    """Index of the first of ``names`` in ``header`` (any case); -1 and an error when absent."""
    lowered = [name.lower() for name in header]
    for name in names:
        if name in lowered:
            return lowered.index(name)
    wanted = " or ".join(repr(name) for name in names)
    errors.append(f"{path}: missing column {wanted} (columns: {', '.join(header)})")
    return -1


def _find_relations_file(ci_path: Path) -> Path:
    """The one CSV beside ``ci_path`` with ``rel`` in its name, or a ``TopologyError``."""
    found = sorted(
        p
        for p in ci_path.parent.iterdir()
        if p.suffix.lower() == ".csv" and p.name != ci_path.name and "rel" in p.name.lower()
    )
    if len(found) == 1:
        return found[0]
    if not found:
        msg = (
            f"{ci_path}: no relationship CSV given and none beside it (a .csv with 'rel' in "
            f"its name in {ci_path.parent}); pass the relationship file explicitly"
        )
    else:
        names = ", ".join(p.name for p in found)
        msg = f"{ci_path}: several relationship CSVs beside it ({names}); pass one explicitly"
    raise TopologyError(msg)


def _read_csv_pair(ci_path: Path, rel_path: Path | None) -> _Export:
    """Read a ServiceNow-style CI table and relationship table."""
    ci_header, ci_rows = _read_csv(ci_path)
    rel_path = rel_path or _find_relations_file(ci_path)
    rel_header, rel_rows = _read_csv(rel_path)
    export = _Export(
        f"{ci_path} + {rel_path.name}",
        ci_place=lambda line: f"{ci_path}:{line}",
        rel_place=lambda line: f"{rel_path}:{line}",
        endpoints=("parent", "child"),
    )
    errors = export.errors
    ci_cols = [
        _column(ci_path, ci_header, names, errors)
        for names in (("sys_id", "id"), ("name",), ("sys_class_name", "type"))
    ]
    rel_cols = [_column(rel_path, rel_header, (name,), errors) for name in export.endpoints]
    rel_cols.append(_column(rel_path, rel_header, ("type",), errors))
    if errors:
        raise TopologyError(_error_message(export.source, errors))
    attr_cols = [(j, name) for j, name in enumerate(ci_header) if j not in ci_cols and name]
    for line, row in ci_rows:
        cells = row + [""] * (len(ci_header) - len(row))
        ci_id, name, ci_type = (cells[j] for j in ci_cols)
        attrs = {key: cells[j] for j, key in attr_cols if cells[j]}
        export.add_ci(line, ci_id, ci_type, name, attrs)
    for line, row in rel_rows:
        cells = row + [""] * (len(rel_header) - len(row))
        export.add_relation(line, *(cells[j] for j in rel_cols))
    return export


def _read_graphml(path: Path) -> _Export:
    """Read a directed GraphML export through networkx."""
    try:
        graph = nx.read_graphml(path)
    except OSError as exc:
        raise TopologyError(f"cannot read CMDB {path}: {exc.strerror or exc}") from exc
    except (ET.ParseError, nx.NetworkXError, ValueError, KeyError) as exc:
        raise TopologyError(f"{path}: not valid GraphML: {exc}") from exc
    if not graph.is_directed():
        msg = f'{path}: the graph is undirected; impact needs <graph edgedefault="directed">'
        raise TopologyError(msg)
    undeclared = _undeclared_nodes(path, graph)
    edges = list(graph.edges(data=True))
    export = _Export(
        str(path),
        ci_place=lambda pos: f"{path}: node #{pos}",
        rel_place=lambda pos: f"{path}: edge {edges[pos][0]!r} -> {edges[pos][1]!r}",
        endpoints=("source", "target"),
    )
    nodes = (item for item in graph.nodes(data=True) if item[0] not in undeclared)
    for pos, (node, data) in enumerate(nodes):
        attrs = {k: _text(v) for k, v in data.items() if k not in _JSON_CI_KEYS}
        export.add_ci(pos, node, _text(data.get("type")), _text(data.get("name")), attrs)
    for pos, (source, target, data) in enumerate(edges):
        export.add_relation(pos, source, target, _text(data.get("type")))
    return export


def _undeclared_nodes(path: Path, graph: nx.DiGraph) -> set[str]:
    """Nodes networkx created only because an edge names them: they are no CI.

    Only a node without data can be undeclared, so the file is scanned for ``<node>``
    elements only when there are such nodes.
    """
    bare = {node for node, data in graph.nodes(data=True) if not data}
    if bare:
        for _, element in ET.iterparse(path):
            if element.tag.rpartition("}")[2] == "node":
                bare.discard(element.get("id"))
    return bare


def _error_message(source: str, errors: list[str]) -> str:
    """One message listing every error, so all can be fixed in one pass."""
    noun = "error" if len(errors) == 1 else "errors"
    return f"invalid CMDB {source}: {len(errors)} {noun}\n" + "\n".join(f"  - {e}" for e in errors)


def _resolve(index: KeyIndex, by_name: KeyIndex, keys: list[str]) -> np.ndarray:
    """int64 CI index of each key, an id before a name; -1 where it is neither."""
    found = index.find(keys)
    missing = np.flatnonzero(found < 0)
    if missing.size:
        found[missing] = by_name.find([keys[k] for k in missing])
    return found


def _validate(export: _Export) -> Cmdb:
    """Check ids and relation endpoints, map relation types to impact edges, collect warnings.

    Ids and names are indexed in bulk (``KeyIndex``); the loops that name duplicate ids and
    shared names run over the repeats only.
    """
    errors, warnings = export.errors, []
    ids, names = export.ids, export.names
    index = KeyIndex(ids)
    ci_place, ci_pos = export.ci_place, export.ci_pos
    for i in np.flatnonzero(index.first != np.arange(len(ids))).tolist():
        first = int(index.first[i])
        places = f"{ci_place(ci_pos[first])} and {ci_place(ci_pos[i])}"
        errors.append(f"duplicate CI id {ids[i]!r}: {places}")
    by_name = KeyIndex(names)
    shared: dict[str, list[str]] = {}
    for i in np.flatnonzero(by_name.first != np.arange(len(names))).tolist():
        shared.setdefault(names[i], [ids[by_name.first[i]]]).append(ids[i])

    sides = (export.rel_from, export.rel_to)
    ends = np.stack([_resolve(index, by_name, keys) for keys in sides], axis=1)
    for k, side in np.argwhere(ends < 0).tolist():
        place = export.rel_place(export.rel_pos[k])
        errors.append(
            f"{place}: {export.endpoints[side]}={sides[side][k]!r} is not a CI id or name"
        )
    if errors:
        raise TopologyError(_error_message(export.source, errors))

    n_rel = len(export.rel_type)
    direction = {t: relation_direction(t) for t in set(export.rel_type)}
    code_of = {t: _DIRECTION_CODE[d] for t, d in direction.items()}
    code = np.fromiter(map(code_of.__getitem__, export.rel_type), np.int8, n_rel)
    if None in direction.values():
        unknown = Counter(t for t in export.rel_type if direction[t] is None)
        for rel_type, count in sorted(unknown.items()):
            warnings.append(
                f"unknown relation type {rel_type!r} in {count} relation(s): ignored "
                "(known types: correlator.topology.RELATION_DIRECTIONS)"
            )
    untyped = [ci_id for ci_id, t in zip(ids, export.types, strict=True) if not t]
    if untyped:
        preview = format_preview(map(repr, untyped), len(untyped))
        warnings.append(f"{len(untyped)} CI(s) have no type and are typed 'unknown': {preview}")
    if shared:
        examples = (f"{name!r} ({', '.join(map(repr, ci_ids))})" for name, ci_ids in shared.items())
        warnings.append(
            f"{len(shared)} CI name(s) shared by several CIs; a lookup by name resolves to "
            f"the first: {format_preview(examples, len(shared))}"
        )
    related = np.zeros(len(ids), dtype=bool)
    related[ends.ravel()] = True
    isolated = np.flatnonzero(~related)
    if isolated.size:
        preview = format_preview((repr(ids[i]) for i in isolated), isolated.size)
        warnings.append(f"{isolated.size} CI(s) have no relations at all: {preview}")

    forward, known = code == 1, code != 0
    return Cmdb(
        source=export.source,
        ids=tuple(ids),
        types=tuple(t or "unknown" for t in export.types) if untyped else tuple(export.types),
        names=tuple(names),
        attributes=tuple(export.attributes),
        relation_count=n_rel,
        impact_src=np.where(forward, ends[:, 0], ends[:, 1])[known],
        impact_dst=np.where(forward, ends[:, 1], ends[:, 0])[known],
        warnings=tuple(warnings),
    )
