"""Loading CMDB exports: the three formats, relation directions, validation messages."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import networkx as nx
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from correlator.errors import TopologyError
from correlator.topology import (
    FORWARD,
    REVERSE,
    compile_topology,
    load_cmdb,
    load_topology,
    relation_direction,
)
from correlator.topology import cmdb as cmdb_module

# One small network, dual-homed host included: (id, type, name or None, attributes).
CIS = [
    ("core-1", "router", None, {}),
    ("sw-1", "switch", "Switch 1", {"rack": "4"}),
    ("sw-2", "switch", None, {}),
    ("host-1", "host", None, {"os": "linux"}),
    ("host-2", "host", None, {}),
    ("svc-a", "service", None, {}),
    ("checkout", "business_service", "Checkout", {}),
]
# (from, to, JSON/GraphML type, ServiceNow type); every one makes ``from`` depend on ``to``.
RELATIONS = [
    ("sw-1", "core-1", "uplink", "Connects to::Connected by"),
    ("sw-2", "core-1", "uplink", "Connects to::Connected by"),
    ("host-1", "sw-1", "connected_to", "Connects to::Connected by"),
    ("host-1", "sw-2", "connected_to", "Connects to::Connected by"),
    ("host-2", "sw-2", "Connected To", "Connects to::Connected by"),
    ("svc-a", "host-1", "runs_on", "Runs on::Runs"),
    ("checkout", "svc-a", "depends_on", "Depends on::Used by"),
]


def write_json(path: Path, cis: list[dict], relations: list[dict]) -> Path:
    path.write_text(json.dumps({"cis": cis, "relations": relations}), encoding="utf-8")
    return path


def network_json(tmp_path: Path) -> Path:
    cis = [
        {"id": i, "type": t, **({"name": n} if n else {}), **{k: v for k, v in a.items()}}
        for i, t, n, a in CIS
    ]
    cis[1]["rack"] = 4  # a number becomes the string "4"
    relations = [{"from": a, "to": b, "type": t} for a, b, t, _ in RELATIONS]
    return write_json(tmp_path / "cmdb.json", cis, relations)


def network_csv(tmp_path: Path) -> Path:
    ci_path = tmp_path / "cmdb_ci.csv"
    rows = ["sys_id,name,sys_class_name,rack,os"]
    rows += [f"{i},{n or i},{t},{a.get('rack', '')},{a.get('os', '')}" for i, t, n, a in CIS]
    ci_path.write_text("\ufeff" + "\n".join(rows) + "\n", encoding="utf-8")  # with a BOM
    names = {i: n for i, _, n, _ in CIS if n}
    rel = ["parent,child,type"]
    # Parents by display name where the CI has one, as ServiceNow display-value exports do.
    rel += [f'{names.get(a, a)},{b},"{sn}"' for a, b, _, sn in RELATIONS]
    (tmp_path / "cmdb_rel_ci.csv").write_text("\n".join(rel) + "\n", encoding="utf-8")
    return ci_path


def network_graphml(tmp_path: Path) -> Path:
    graph = nx.DiGraph()
    for i, t, n, a in CIS:
        graph.add_node(i, type=t, **({"name": n} if n else {}), **a)
    for a, b, t, _ in RELATIONS:
        graph.add_edge(a, b, type=t)
    path = tmp_path / "cmdb.graphml"
    nx.write_graphml(graph, path)
    return path


COMPILED_ARRAYS = [
    "ci_type",
    "child_ptr",
    "child_idx",
    "parent_ptr",
    "parent_idx",
    "depth",
    "idom",
    "dom_depth",
    "tin",
    "tout",
    "euler_order",
    "is_business_service",
]


def test_each_format_compiles_to_the_same_arrays(tmp_path: Path) -> None:
    paths = [network_json(tmp_path), network_csv(tmp_path), network_graphml(tmp_path)]
    topologies = [load_topology(path) for path in paths]
    reference = topologies[0]
    assert reference.ci_ids == [i for i, *_ in CIS]
    assert reference.ci_names[1] == "Switch 1" and reference.ci_names[0] == "core-1"
    assert reference.attributes[1] == {"rack": "4"}
    assert reference.n_impact_edges == len(RELATIONS)
    for topology in topologies[1:]:
        assert topology.ci_ids == reference.ci_ids
        assert topology.ci_names == reference.ci_names
        assert topology.type_names == reference.type_names
        assert topology.attributes == reference.attributes
        for name in COMPILED_ARRAYS:
            np.testing.assert_array_equal(getattr(topology, name), getattr(reference, name), name)
        assert topology.warnings == reference.warnings == []


@pytest.mark.parametrize(
    ("relation_type", "direction"),
    [
        ("depends_on", REVERSE),
        ("Depends On", REVERSE),
        ("runs_on", REVERSE),
        ("connected_to", REVERSE),
        ("UPLINK", REVERSE),
        ("hosted-on", REVERSE),
        ("uses", REVERSE),
        ("Depends on::Used by", REVERSE),
        ("depends_on::used_by", REVERSE),
        ("Runs on::Runs", REVERSE),
        ("Connects to::Connected by", REVERSE),
        ("Hosted on :: Hosts", REVERSE),
        ("impacts", FORWARD),
        ("hosts", FORWARD),
        ("Contains", FORWARD),
        ("provides", FORWARD),
        ("supports", FORWARD),
        ("feeds", FORWARD),
        ("Contains::Contained by", FORWARD),
        ("Members::Member of", None),
    ],
)
def test_relation_type_maps_to_impact_direction(
    tmp_path: Path, relation_type: str, direction: str | None
) -> None:
    assert relation_direction(relation_type) == direction
    path = write_json(
        tmp_path / "cmdb.json",
        [{"id": "a", "type": "x"}, {"id": "b", "type": "x"}],
        [{"from": "a", "to": "b", "type": relation_type}],
    )
    cmdb = load_cmdb(path)
    edges = list(zip(cmdb.impact_src.tolist(), cmdb.impact_dst.tolist(), strict=True))
    expected = {FORWARD: [(0, 1)], REVERSE: [(1, 0)], None: []}[direction]
    assert edges == expected
    assert cmdb.relation_count == 1
    unknown = [w for w in cmdb.warnings if "unknown relation type" in w]
    assert bool(unknown) == (direction is None)
    if unknown:
        assert "'Members::Member of' in 1 relation(s)" in unknown[0]


def test_duplicate_id_names_both_places(tmp_path: Path) -> None:
    path = write_json(
        tmp_path / "cmdb.json",
        [{"id": "a", "type": "x"}, {"id": "b", "type": "x"}, {"id": "a", "type": "y"}],
        [],
    )
    with pytest.raises(TopologyError, match=r"duplicate CI id 'a': .*cis\[0\] and .*cis\[2\]"):
        load_cmdb(path)


def test_csv_duplicate_id_names_both_lines(tmp_path: Path) -> None:
    ci = tmp_path / "ci.csv"
    ci.write_text("id,name,type\na,,x\nb,,x\na,,x\n", encoding="utf-8")
    (tmp_path / "rel.csv").write_text("parent,child,type\n", encoding="utf-8")
    with pytest.raises(TopologyError, match=r"duplicate CI id 'a': .*ci\.csv:2 and .*ci\.csv:4"):
        load_cmdb(ci)


def test_every_error_is_listed_with_its_place(tmp_path: Path) -> None:
    path = write_json(
        tmp_path / "cmdb.json",
        [{"id": "a", "type": "x"}, {"type": "x"}, "oops"],
        [
            {"from": "a", "to": "nowhere", "type": "uses"},
            {"from": "ghost", "to": "a", "type": "uses"},
            {"from": "a", "to": "a"},
        ],
    )
    with pytest.raises(TopologyError) as info:
        load_cmdb(path)
    message = str(info.value)
    assert message.startswith(f"invalid CMDB {path}: 5 errors")
    assert "cis[1]: CI has no id" in message
    assert "cis[2]: expected an object" in message
    assert "relations[0]: to='nowhere' is not a CI id or name" in message
    assert "relations[1]: from='ghost' is not a CI id or name" in message
    assert "relations[2]: relation has no type" in message


def test_csv_unknown_ci_names_the_relationship_row(tmp_path: Path) -> None:
    ci = tmp_path / "cmdb_ci.csv"
    ci.write_text("sys_id,name,sys_class_name\n1,web,host\n2,db,host\n", encoding="utf-8")
    rel = tmp_path / "cmdb_rel_ci.csv"
    rel.write_text(
        'parent,child,type\nweb,2,"Depends on::Used by"\nweb,db-9,"Depends on::Used by"\n',
        encoding="utf-8",
    )
    with pytest.raises(TopologyError, match=r"cmdb_rel_ci\.csv:3: child='db-9' is not a CI"):
        load_cmdb(ci)


def test_csv_missing_columns_are_all_reported(tmp_path: Path) -> None:
    ci = tmp_path / "ci.csv"
    ci.write_text("sys_id,label\n1,web\n", encoding="utf-8")
    rel = tmp_path / "links.csv"
    rel.write_text("parent,child\n", encoding="utf-8")
    with pytest.raises(TopologyError) as info:
        load_cmdb(ci, rel)
    message = str(info.value)
    assert "3 errors" in message
    assert "missing column 'name'" in message
    assert "missing column 'sys_class_name' or 'type'" in message
    assert "links.csv: missing column 'type'" in message


def test_csv_relationship_file_is_found_beside_or_refused(tmp_path: Path) -> None:
    ci = tmp_path / "cmdb_ci.csv"
    ci.write_text("id,name,type\na,,x\n", encoding="utf-8")
    with pytest.raises(TopologyError, match="no relationship CSV given and none beside it"):
        load_cmdb(ci)
    (tmp_path / "cmdb_rel_ci.csv").write_text("parent,child,type\n", encoding="utf-8")
    assert load_cmdb(ci).ids == ("a",)
    (tmp_path / "relations_old.csv").write_text("parent,child,type\n", encoding="utf-8")
    with pytest.raises(TopologyError, match=r"several relationship CSVs.*cmdb_rel_ci\.csv"):
        load_cmdb(ci)
    assert load_cmdb(ci, tmp_path / "relations_old.csv").ids == ("a",)


def test_graphml_edge_to_undeclared_node_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "cmdb.xml"
    path.write_text(
        '<?xml version="1.0"?><graphml xmlns="http://graphml.graphdrawing.org/xmlns">'
        '<key id="t" for="all" attr.name="type" attr.type="string"/>'
        '<graph edgedefault="directed"><node id="a"><data key="t">host</data></node>'
        '<node id="b"/><edge source="a" target="b"><data key="t">uses</data></edge>'
        '<edge source="a" target="ghost"><data key="t">uses</data></edge></graph></graphml>',
        encoding="utf-8",
    )
    with pytest.raises(TopologyError, match=r"edge 'a' -> 'ghost': target='ghost' is not a CI"):
        load_cmdb(path)


@pytest.mark.parametrize(
    ("name", "content", "cause"),
    [
        ("bad.json", "{", json.JSONDecodeError),
        ("bad.graphml", "<graphml><graph>", ET.ParseError),
    ],
)
def test_foreign_errors_are_converted(
    tmp_path: Path, name: str, content: str, cause: type[Exception]
) -> None:
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    with pytest.raises(TopologyError, match=str(path)) as info:
        load_cmdb(path)
    assert isinstance(info.value.__cause__, cause)


def test_unreadable_and_unknown_inputs(tmp_path: Path) -> None:
    with pytest.raises(TopologyError, match=r"expected one of \.json, \.csv, \.graphml, \.xml"):
        load_cmdb(tmp_path / "cmdb.yaml")
    with pytest.raises(TopologyError, match="cannot read CMDB") as info:
        load_cmdb(tmp_path / "missing.json")
    assert isinstance(info.value.__cause__, FileNotFoundError)
    path = write_json(tmp_path / "cmdb.json", [], [])
    with pytest.raises(TopologyError, match="only goes with a CSV CI table"):
        load_cmdb(path, tmp_path / "rel.csv")
    undirected = tmp_path / "u.graphml"
    nx.write_graphml(nx.Graph([("a", "b")]), undirected)
    with pytest.raises(TopologyError, match="undirected"):
        load_cmdb(undirected)


def test_warnings_for_isolated_untyped_and_shared_names(tmp_path: Path) -> None:
    path = write_json(
        tmp_path / "cmdb.json",
        [
            {"id": "a", "type": "x", "name": "web"},
            {"id": "b", "type": "x", "name": "web"},
            {"id": "c"},
            {"id": "d", "type": "x"},
        ],
        [{"from": "d", "to": "web", "type": "uses"}, {"from": "a", "to": "web", "type": "uses"}],
    )
    cmdb = load_cmdb(path)
    assert cmdb.types[2] == "unknown"
    assert "1 CI(s) have no type and are typed 'unknown': 'c'" in cmdb.warnings
    assert "2 CI(s) have no relations at all: 'b', 'c'" in cmdb.warnings
    shared = [w for w in cmdb.warnings if "shared" in w]
    assert shared == [
        "1 CI name(s) shared by several CIs; a lookup by name resolves to the first: "
        "'web' ('a', 'b')"
    ]
    # ``web`` resolves to the first CI with that name, so ``a uses web`` is a self-loop.
    topology = compile_topology(cmdb)
    assert topology.lookup("web") == 0
    assert "impact cycle: 'a' impacts itself" in topology.warnings
    assert topology.n_impact_edges == 1
    assert topology.child_idx.tolist() == [3]


texts = st.sampled_from(["", " ", "a", " a ", "b", "web", "hôte-1", "Depends on", "uses", "hosts"])
keys = st.sampled_from(["a", " b", "c ", "hôte-1", "web", " web "])
# Any fields (mostly invalid exports) or well-formed ones (mostly valid: every CI with an id).
json_exports = st.one_of(
    st.tuples(
        st.lists(
            st.dictionaries(st.sampled_from(["id", "type", "name", "rack"]), texts, max_size=4),
            max_size=6,
        ),
        st.lists(
            st.dictionaries(st.sampled_from(["from", "to", "type", "note"]), texts, max_size=4),
            max_size=8,
        ),
    ),
    st.tuples(
        st.lists(
            st.fixed_dictionaries({"id": keys}, optional={"type": texts, "name": keys}),
            max_size=6,
            unique_by=lambda ci: ci["id"].strip(),
        ),
        st.lists(
            st.fixed_dictionaries(
                {"from": keys, "to": keys, "type": st.sampled_from(["uses", " hosts", "feeds?"])}
            ),
            max_size=8,
        ),
    ),
)


def outcome(export: cmdb_module._Export) -> tuple[object, ...]:
    """What validating an export gives: its fields, or the error message."""
    try:
        cmdb = cmdb_module._validate(export)
    except TopologyError as exc:
        return ("error", str(exc))
    arrays = (cmdb.impact_src.tolist(), cmdb.impact_dst.tolist())
    return (cmdb.ids, cmdb.types, cmdb.names, cmdb.attributes, cmdb.warnings, arrays)


@settings(max_examples=300, deadline=None)
@given(json_exports)
def test_json_fast_path_agrees_with_the_exact_path(
    tmp_path_factory: pytest.TempPathFactory, export: tuple[list[dict], list[dict]]
) -> None:
    # All-string exports decode through msgspec; ``_read_json_values`` is the json twin.
    path = write_json(tmp_path_factory.mktemp("cmdb") / "cmdb.json", *export)
    fast = cmdb_module._read_json(path)
    exact = cmdb_module._read_json_values(path)
    assert outcome(fast) == outcome(exact)


def test_non_ascii_ids_and_names_resolve(tmp_path: Path) -> None:
    path = write_json(
        tmp_path / "cmdb.json",
        [{"id": "交换机-1", "type": "switch"}, {"id": "hôte-1", "type": "host", "name": "hôte"}],
        [{"from": "hôte", "to": "交换机-1", "type": "connected_to"}],
    )
    topology = load_topology(path)
    assert topology.child_idx.tolist() == [1] and topology.lookup("hôte") == 1
