"""The generated catalogue (docs/catalogue/) is what the code says, valid AsyncAPI 3.0.0, and
complete; its schemas accept what the services accept and refuse what they refuse.

When the first test fails, run `python3 envol.py docs` and commit docs/catalogue/.
"""

from __future__ import annotations

import copy
import json
import re
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from pydantic import BaseModel

from docs.generate import examples, reference
from docs.generate.__main__ import OUTPUT, differences, render
from docs.generate.answers import ANSWERS
from docs.generate.asyncapi import DEAD_LETTER_HEADERS
from docs.generate.schemas import CROSS_FIELD_RULES, ENVELOPE_ATTRIBUTES
from envol_shared.contracts import PUBLISHED_BY
from envol_shared.events import CloudEvent, EventData, InvalidEvent, event_name, parse_event, registered_types

# The official JSON Schema of AsyncAPI 3.0.0; see data/README.md for where it comes from.
ASYNCAPI_SCHEMA = Path(__file__).parent / "data" / "asyncapi-3.0.0-without-id.json"
DELIVERIES = Path(__file__).parents[2] / "shared" / "envol_shared" / "deliveries.py"


@cache
def generated() -> dict[str, str]:
    return render()


def document(name: str) -> dict[str, Any]:
    return json.loads(generated()[f"asyncapi/{name}"])


ASYNCAPI_FILES = sorted(name.removeprefix("asyncapi/") for name in generated()
                        if name.startswith("asyncapi/"))


def test_the_committed_catalogue_is_what_the_code_generates() -> None:
    found = differences(OUTPUT, generated())
    assert found == [], "docs/catalogue/ is out of date: run `python3 envol.py docs` and commit it"


def test_generating_twice_gives_the_same_files() -> None:
    assert render() == generated()


@pytest.mark.parametrize("name", ASYNCAPI_FILES)
def test_each_document_is_valid_asyncapi_3(name: str) -> None:
    spec = json.loads(ASYNCAPI_SCHEMA.read_text("utf-8"))
    jsonschema.Draft7Validator(spec).validate(document(name))


def _pointer(root: Any, ref: str) -> Any:
    node = root
    for part in ref.removeprefix("#/").split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def _refs(node: Any) -> list[str]:
    """Every $ref of a document (examples hold instances, not references)."""
    if isinstance(node, dict):
        own = [node["$ref"]] if "$ref" in node else []
        return own + [r for key, value in node.items() if key != "examples" for r in _refs(value)]
    return [r for item in node for r in _refs(item)] if isinstance(node, list) else []


@pytest.mark.parametrize("name", ASYNCAPI_FILES)
def test_each_document_stands_alone_and_its_operations_agree_with_its_channels(name: str) -> None:
    doc = document(name)
    for ref in _refs(doc):
        assert ref.startswith("#/"), ref
        _pointer(doc, ref)  # raises KeyError when it points nowhere
    for channel in doc["channels"].values():
        if channel["address"] is not None:
            assert set(re.findall(r"{(\w+)}", channel["address"])) == set(channel.get("parameters", {}))
    for operation in doc["operations"].values():
        channel = operation["channel"]["$ref"]
        assert all(m["$ref"].startswith(f"{channel}/messages/") for m in operation["messages"])
        if "reply" in operation:
            reply = operation["reply"]["channel"]["$ref"]
            assert all(m["$ref"].startswith(f"{reply}/messages/") for m in operation["reply"]["messages"])


def test_every_json_schema_file_is_a_valid_json_schema() -> None:
    schemas = [name for name in generated() if name.startswith("schemas/")]
    assert len(schemas) == 1 + len(registered_types()) + 2 * sum(map(len, ANSWERS.values()))
    for name in schemas:
        jsonschema.Draft202012Validator.check_schema(json.loads(generated()[name]))


def test_every_event_type_and_every_query_is_in_the_catalogue() -> None:
    system = document("envol.json")
    assert set(registered_types()) <= set(system["components"]["messages"])
    assert {f"schemas/{t}.json" for t in registered_types()} <= set(generated())
    for service, answers in ANSWERS.items():
        for name in answers:
            assert f"query.{service}.{name}" in system["channels"]
            assert f"{service}.answer.{name}" in system["operations"]
            assert f"schemas/query.{service}.{name}.answer.json" in generated()
    page = generated()["index.html"]
    assert all(f'id="{t}"' in page for t in registered_types())


def test_the_page_opens_offline() -> None:
    page = generated()["index.html"]
    assert "<script" not in page and "<link" not in page and 'src="' not in page
    linked = re.findall(r'href="([^"#][^"]*)"', page)
    assert linked and all(name in generated() for name in linked)


@pytest.mark.parametrize("service", reference.SERVICES)
def test_each_service_document_receives_what_it_consumes_and_sends_what_it_publishes(service: str) -> None:
    doc = document(f"{service}.json")
    contract = reference.CONTRACTS[service]
    actions = {(op["action"], op["messages"][0]["$ref"].rsplit("/", 1)[-1])
               for op in doc["operations"].values()}
    assert {("receive", e.type) for e in contract.CONSUMED} <= actions
    assert {("send", e.type) for e in contract.PUBLISHED} <= actions
    assert {("receive", "request")} <= actions  # its queries, with their replies
    replies = [op for op in doc["operations"].values() if "reply" in op]
    assert len(replies) == len(ANSWERS[service])


@pytest.mark.parametrize("role", sorted(reference.ROLE_EVENTS))
def test_each_role_document_sends_exactly_what_the_role_may_publish(role: str) -> None:
    doc = document(f"roles/{role}.json")
    sent = {op["messages"][0]["$ref"].rsplit("/", 1)[-1] for op in doc["operations"].values()
            if op["action"] == "send" and "reply" not in op}
    assert sent == {e.type for e in reference.ROLE_EVENTS[role]}


def test_every_event_a_service_consumes_from_outside_has_a_role_that_may_publish_it() -> None:
    consumed = {e.type for contract in reference.CONTRACTS.values() for e in contract.CONSUMED}
    outside = consumed - set(PUBLISHED_BY)
    assert outside == {e.type for events in reference.ROLE_EVENTS.values() for e in events}


# ---- examples and schemas against the services' own parsing ------------------------------------


def event_schema_of(type_: str) -> dict[str, Any]:
    return json.loads(generated()[f"schemas/{type_}.json"])


def schema_accepts(type_: str, message: dict[str, Any]) -> bool:
    validator = jsonschema.Draft202012Validator(event_schema_of(type_),
                                                format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
    return validator.is_valid(message)


def service_accepts(subject: str, message: dict[str, Any]) -> bool:
    try:
        parse_event(json.dumps(message).encode(), subject)
    except InvalidEvent:
        return False
    return True


@pytest.mark.parametrize("type_", sorted(registered_types()))
def test_each_example_is_accepted_by_the_service_and_by_its_schema(type_: str) -> None:
    subject, message = examples.message(type_)
    assert service_accepts(subject, message)
    assert schema_accepts(type_, message)
    assert event_schema_of(type_)["examples"] == [message]


def _bounds(schema: dict[str, Any]) -> list[tuple[Any, bool]]:
    """Values at and just beyond the limits a field's schema states: (value, acceptable)."""
    options = schema.get("anyOf", [schema])
    schema = next(o for o in options if o.get("type") != "null")
    found: list[tuple[Any, bool]] = []
    if schema.get("type") == "string" and "maxLength" in schema and "pattern" not in schema:
        found += [("x" * schema["maxLength"], True), ("x" * (schema["maxLength"] + 1), False)]
    if schema.get("type") == "integer":
        if "maximum" in schema:
            found += [(schema["maximum"], True), (schema["maximum"] + 1, False)]
        if "minimum" in schema:
            found += [(schema["minimum"], True), (schema["minimum"] - 1, False)]
        if "exclusiveMinimum" in schema:
            found += [(schema["exclusiveMinimum"], False)]
    return found


# The company a message is about must be a real SIREN: their limits are their digits.
_COMPANY_FIELDS = {"siren", "company_id", "host_siren"}


def _cases() -> list[Any]:
    cases = []
    for type_ in sorted(registered_types()):
        data = event_schema_of(type_)["$defs"]["data"]
        for field, schema in data["properties"].items():
            if field not in _COMPANY_FIELDS:
                cases += [pytest.param(type_, field, value, ok,
                                       id=f"{type_}-{field}-{n}-{'ok' if ok else 'no'}")
                          for n, (value, ok) in enumerate(_bounds(schema))]
    return cases


@pytest.mark.parametrize(("type_", "field", "value", "acceptable"), _cases())
def test_the_schema_s_limits_are_the_service_s(type_: str, field: str, value: Any, acceptable: bool) -> None:
    """At a field's stated limit the service accepts the event; one beyond, it refuses it."""
    subject, message = examples.message(type_)
    message = copy.deepcopy(message)
    message["data"][field] = value
    if type_ == "envol.loan.decided.v1" and field in {"awarded_cents", "rate_bps", "duration_months",
                                                      "tranches_planned"}:
        message["data"]["decision"] = "granted"
    assert schema_accepts(type_, message) is acceptable
    assert service_accepts(subject, message) is acceptable


@pytest.mark.parametrize(("day", "acceptable"), [("1900-01-01", True), ("2199-12-31", True),
                                                 ("1899-12-31", False), ("2200-01-01", False)])
def test_days_and_times_have_the_service_s_years(day: str, acceptable: bool) -> None:
    for type_, field, value in (("envol.loan.request.received.v1", "received_on", day),
                                ("envol.case.opened.v1", "at", f"{day}T12:00:00+00:00")):
        subject, message = examples.message(type_)
        message = copy.deepcopy(message) | {"data": message["data"] | {field: value}}
        assert schema_accepts(type_, message) is acceptable
        assert service_accepts(subject, message) is acceptable


def test_a_time_without_a_time_zone_is_refused_by_both() -> None:
    subject, message = examples.message("envol.case.opened.v1")
    message = copy.deepcopy(message) | {"time": "2026-03-02T10:00:00"}
    assert not schema_accepts("envol.case.opened.v1", message)
    assert not service_accepts(subject, message)


def test_correlationid_is_required_and_causationid_is_not() -> None:
    subject, message = examples.message("envol.loan.decided.v1")
    without = {k: v for k, v in message.items() if k != "correlationid"}
    assert not schema_accepts("envol.loan.decided.v1", without)
    assert not service_accepts(subject, without)
    assert "causationid" not in message and service_accepts(subject, message)


# ---- what the generator must be told by hand is complete --------------------------------------


def _validators(model: type[BaseModel]) -> list[str]:
    decorators = model.__pydantic_decorators__
    return [*decorators.model_validators, *decorators.field_validators]


def test_every_rule_across_fields_is_in_the_schemas() -> None:
    from envol_shared.contracts.enrolment import ApplicationTransition

    for model in registered_types().values():
        # The application events' one validator ties to_status to the type: a const in the schema.
        if _validators(model) and not issubclass(model, ApplicationTransition):
            assert model in CROSS_FIELD_RULES, f"{model.type}: say its validator in JSON Schema"
    nested = [model for contract in reference.CONTRACTS.values() for model in vars(contract).values()
              if isinstance(model, type) and issubclass(model, BaseModel)
              and not issubclass(model, EventData)]
    assert {"Holding", "Contact", "Lever"} <= {model.__name__ for model in nested}
    for model in nested:
        assert not _validators(model), f"{model.__name__}: the generator cannot show its validator"


def test_every_envelope_attribute_is_explained() -> None:
    assert set(CloudEvent.model_fields) == set(ENVELOPE_ATTRIBUTES)


def test_every_dead_letter_header_is_explained() -> None:
    written = set(re.findall(r'"(Envol-[A-Za-z0-9-]+)"', DELIVERIES.read_text("utf-8")))
    assert written == set(DEAD_LETTER_HEADERS)


def test_every_day_and_time_says_its_years() -> None:
    for type_ in registered_types():
        text = generated()[f"schemas/{type_}.json"]
        for match in re.finditer(r'"format": "(date|date-time)"', text):
            following = text[match.end():match.end() + 200]
            assert '"pattern": "^(19|20|21)' in following, f"{type_}: a {match[1]} without its years"


def test_reference_data_comes_from_the_configuration_files() -> None:
    clusters = json.loads(generated()["reference.json"])["clusters"]
    assert sorted(clusters) == ["aerospace-valley", "astech", "pegase"]
    av = clusters["aerospace-valley"]
    assert {p["id"] for p in av["partners"] if p["kind"] == "bank"} == {
        "banque-garonne", "credit-pyrenees", "caisse-atlantique"}
    assert {m["id"]: m["capacity"] for m in av["missions"]}["av-vie-cn-2026"] == 2
    assert [p["closes_on"] for p in av["programmes"] if p["code"] == "AV-RD-LOAN"] == ["2027-12-17"]
    assert clusters["astech"]["cohorts"][0]["workshops"][0]["id"] == "diagnostic"


def test_programme_dates_are_inclusive_as_the_catalogue_says() -> None:
    from envol_enrolment.catalogue import SHIPPED, Catalogue

    for programme in Catalogue.load(SHIPPED):
        assert programme.is_open_on(programme.opens_on)
        if programme.closes_on:
            assert programme.is_open_on(programme.closes_on)
    assert "both included" in generated()["index.html"]


def test_every_example_request_is_a_valid_request() -> None:
    from docs.generate.asyncapi import reference_queries

    for service, queries in reference_queries().items():
        assert set(queries) == set(examples.QUERY_EXAMPLES[service])
        for name, request in queries.items():
            request.model_validate_json(json.dumps(examples.QUERY_EXAMPLES[service][name]), strict=True)


def test_events_are_named_by_their_type() -> None:
    for type_, model in registered_types().items():
        assert issubclass(model, EventData) and event_name(type_) in document("envol.json")["channels"]
