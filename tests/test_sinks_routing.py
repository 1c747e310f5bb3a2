"""Sink config validation and Alertmanager-style routing on incident fields."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from correlator.errors import ConfigError
from correlator.sinks import Router, parse_sink_specs
from correlator.sinks.routing import DeliveryPolicy
from receivers import incident_event

CONFIG = [
    {"name": "netops", "type": "pagerduty", "match": 'root_type=~"switch|router"'},
    {
        "name": "dba",
        "type": "servicenow",
        "match": ['root_type="database"', 'service="billing", severity="critical"'],
        "continue": True,
    },
    {"name": "archive", "type": "sqlite"},
]


def targets(**snapshot: Any) -> tuple[str, ...]:
    return Router(parse_sink_specs(CONFIG)).targets(incident_event("inc-1", "open", 1, **snapshot))


def test_first_match_wins_unless_continue() -> None:
    assert targets(root_type="switch") == ("netops",)
    assert targets(root_type="router") == ("netops",)
    assert targets(root_type="database") == ("dba", "archive")
    assert targets(root_type="host") == ("archive",)


def test_a_list_of_matchers_is_ored_and_services_match_any_affected_one() -> None:
    assert targets(root_type="host", services=("checkout", "billing")) == ("dba", "archive")
    assert targets(root_type="host", services=("billing",), severity="warning") == ("archive",)
    assert targets(root_type="host", services=()) == ("archive",)


def test_many_valued_fields_need_one_value_satisfying_all_matchers_on_it() -> None:
    config = [{"name": "a", "match": 'service=~"bill.*", service!="billing"'}, {"name": "b"}]
    router = Router(parse_sink_specs(config))

    def route(services: tuple[str, ...]) -> tuple[str, ...]:
        return router.targets(incident_event("i", "open", 1, services=services))

    assert route(("billing", "checkout")) == ("b",)  # no one service is both
    assert route(("billing", "billing-eu")) == ("a",)
    assert route(()) == ("b",)  # no service reads as ""
    empty = Router(parse_sink_specs([{"name": "a", "match": 'service=""'}]))
    assert empty.targets(incident_event("i", "open", 1, services=())) == ("a",)


def test_every_incident_field_can_be_matched() -> None:
    event = incident_event("inc-1", "open", 1, root_ci="db-7", root_type="database")
    for text in [
        'severity="critical"',
        'significance="exception"',
        'event="open"',
        'root_ci="db-7"',
        'root_type="database"',
        'root_alertname="SwitchDown"',
        'inferred="false"',
        'ci="db-7-h0"',
        'service="checkout"',
    ]:
        assert Router(parse_sink_specs([{"name": "a", "match": text}])).targets(event) == ("a",)


def test_nothing_matched_means_no_sink() -> None:
    router = Router(parse_sink_specs([{"name": "a", "match": 'severity="warning"'}]))
    assert router.targets(incident_event("inc-1", "open", 1)) == ()


def test_delivery_policy_and_defaults() -> None:
    spec = parse_sink_specs(
        [{"name": "a", "delivery": {"batch_size": 10, "backoff_initial": 1, "backoff_max": 5}}]
    )[0]
    assert spec.type == "a" and not spec.continue_ and spec.match == ()
    assert spec.delivery == DeliveryPolicy(batch_size=10, backoff_initial=1, backoff_max=5)
    assert parse_sink_specs([{"name": "b"}])[0].delivery.batch_size is None


BAD: list[tuple[Any, str]] = [
    ([], "'sinks' must be a non-empty list"),
    ([{"type": "jsonl"}], "sinks[0]: 'name' must be"),
    ([{"name": "a b"}], "sinks[0]: 'name' must be"),
    ([{"name": "a"}, {"name": "a"}], "sink 'a': the name is used twice"),
    ([{"name": "a", "mtach": "x"}], "sink 'a': unknown key 'mtach'"),
    ([{"name": "a", "match": 'severity=="x"'}], "sink 'a': 'match': "),
    ([{"name": "a", "match": []}], "'match' must be a matcher string or a list"),
    ([{"name": "a", "continue": "yes"}], "'continue' must be true or false"),
    ([{"name": "a", "options": [1]}], "'options' must be a mapping"),
    ([{"name": "a", "delivery": {"retries": 3}}], "unknown 'delivery' key 'retries'"),
    ([{"name": "a", "delivery": {"batch_size": 0}}], "'delivery.batch_size' must be a positive"),
    (
        [{"name": "a", "delivery": {"backoff_initial": 5, "backoff_max": 1}}],
        "'delivery.backoff_max' is below",
    ),
]


@pytest.mark.parametrize(("raw", "message"), BAD)
def test_bad_config_names_the_entry_and_the_key(raw: Any, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_sink_specs(raw, source="correlator.yaml")
    assert str(caught.value).startswith("correlator.yaml: ")
    assert message in str(caught.value)


def test_routes_match_the_labels_of_the_alert_that_opened_the_incident() -> None:
    config = [
        {"name": "db-team", "match": 'team="db", severity="critical"'},
        {"name": "rest"},
    ]
    router = Router(parse_sink_specs(config))
    db = msgspec.structs.replace(incident_event("i", "open", 1), labels={"team": "db"})
    other = msgspec.structs.replace(incident_event("j", "open", 1), labels={"team": "web"})
    assert router.targets(db) == ("db-team",)
    assert router.targets(other) == ("rest",)
    assert router.targets(incident_event("k", "open", 1)) == ("rest",)  # no such label: ""
