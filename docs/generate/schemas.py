"""JSON Schemas of Envol's messages, taken from the pydantic models that validate them.

pydantic writes most of each schema (types, lengths, patterns, bounds, enumerations). What
it cannot see, and is added here so that the schema shows every limit the services apply:

- the limits every message meets before its schema is looked at (`events.check_document`):
  texts of at most 10,000 characters, integers within 64 bits;
- the years of days and times, and what makes a SIREN or a SIRET: these are checked by plain
  functions (`events.sane_day`, `events.utc`, `identifiers.normalise_*`), recognised here;
- rules written as validators across fields: the status each application event carries, and
  that a granted loan has terms while a refused one has none.

Every schema is built with `$ref`s to `#/$defs/<Model>`; `rebase` moves them elsewhere (the
AsyncAPI documents keep their schemas under `#/components/schemas/`).
"""

from __future__ import annotations

import copy
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
from pydantic_core import core_schema

from envol_shared import events, identifiers
from envol_shared.contracts import enrolment, financing
from envol_shared.events import FIRST_YEAR, LAST_YEAR, MAX_INT, MAX_STRING, MIN_INT, CloudEvent, EventData

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
DEFS = "#/$defs/"
Schema = dict[str, Any]

# Years FIRST_YEAR..LAST_YEAR (1900..2199) as the first four characters of a day or a time.
assert (FIRST_YEAR, LAST_YEAR) == (1900, 2199), "update _YEAR to the new range"
_YEAR = "(19|20|21)[0-9]{2}"
_DIGITS = r"[ .]*"  # python-stdnum drops spaces and dots before checking the digits

# What the plain validator functions of the contract check, as JSON Schema.
_VALIDATED_BY: dict[Any, Schema] = {
    events.sane_day: {"pattern": f"^{_YEAR}-[0-9]{{2}}-[0-9]{{2}}$"},
    events.utc: {"pattern": f"^{_YEAR}-[0-9]{{2}}-[0-9]{{2}}[Tt ].*([Zz]|[+-][0-9]{{2}}:?[0-9]{{2}})$"},
    identifiers.normalise_siren: {
        "pattern": f"^{_DIGITS}([0-9]{_DIGITS}){{9}}$",
        "description": "a SIREN: 9 digits, spaces and dots accepted; its Luhn check digit must be right",
    },
    identifiers.normalise_siret: {
        "pattern": f"^{_DIGITS}([0-9]{_DIGITS}){{14}}$",
        "description": "a SIRET: 14 digits, spaces and dots accepted; its Luhn check digit must be right "
                       "(La Poste's exception applies)",
    },
    identifiers.normalise_company_id: {
        "pattern": f"^{_DIGITS}(([0-9]{_DIGITS}){{9}}|([0-9]{_DIGITS}){{14}})$",
        "description": "a SIREN (9 digits) or a SIRET (14 digits), spaces and dots accepted; "
                       "its Luhn check digit must be right",
    },
}


class EnvolJsonSchema(GenerateJsonSchema):
    """pydantic's generator, told what Envol's validator functions check."""

    def function_after_schema(self, schema: core_schema.AfterValidatorFunctionSchema) -> JsonSchemaValue:
        json_schema = super().function_after_schema(schema)
        extra = _VALIDATED_BY.get(schema["function"]["function"])
        if extra is None:
            return json_schema
        # A description given on the field (Field(description=...)) is added later and wins.
        return {**json_schema, **extra}


# Rules pydantic validators enforce across fields, as JSON Schema, per event model. A test
# checks that every event model with such a validator is listed here (or below), and that
# the models nested in events have none.
_GRANTED_TERMS = ["awarded_cents", "rate_bps", "duration_months", "tranches_planned"]
CROSS_FIELD_RULES: dict[type[BaseModel], Schema] = {
    financing.LoanDecided: {
        "if": {"properties": {"decision": {"const": "granted"}}},
        "then": {"required": _GRANTED_TERMS,
                 "properties": {name: {"not": {"type": "null"}} for name in _GRANTED_TERMS}},
        "else": {"properties": {name: {"type": "null"} for name in _GRANTED_TERMS}},
        "$comment": "A granted loan needs awarded_cents, rate_bps, duration_months and "
                    "tranches_planned; a refused loan has none of them.",
    },
}
# Application events: their one validator ties to_status to the type.
_TRANSITIONS = {model: status for status, model in enrolment.TRANSITION_EVENTS.items()}


def model_schema(model: type[BaseModel], *, message_limits: bool = False) -> Schema:
    """The JSON Schema of `model`, nested models under `$defs`. `message_limits`: add the limits
    every event message meets whatever its type (events only: queries and answers have none)."""
    schema = model.model_json_schema(ref_template=DEFS + "{model}", schema_generator=EnvolJsonSchema)
    schema.update(copy.deepcopy(CROSS_FIELD_RULES.get(model, {})))
    if model in _TRANSITIONS:
        # Each application event carries the one status it is named after.
        schema["properties"]["to_status"] = {"const": _TRANSITIONS[model],
                                             "description": "the status the application went to"}
    _tidy(schema, message_limits)
    return schema


_VALUES = {"default", "const", "enum", "examples"}  # keywords holding instances, not schemas


def _tidy(node: Any, message_limits: bool) -> None:
    """Drop pydantic's titles made from field names (the names say it already) and, with
    `message_limits`, add the limits of every message (texts, 64-bit integers)."""
    if isinstance(node, list):
        for item in node:
            _tidy(item, message_limits)
        return
    if not isinstance(node, dict):
        return
    if isinstance(node.get("title"), str):
        del node["title"]
    kind = node.get("type")
    if message_limits and kind == "string" and not {"maxLength", "enum", "const", "format"} & node.keys():
        node["maxLength"] = MAX_STRING
    if message_limits and kind == "integer":
        if not {"minimum", "exclusiveMinimum"} & node.keys():
            node["minimum"] = MIN_INT
        if not {"maximum", "exclusiveMaximum"} & node.keys():
            node["maximum"] = MAX_INT
    for key, value in node.items():
        if key == "properties":
            for child in value.values():
                _tidy(child, message_limits)
        elif key not in _VALUES:
            _tidy(value, message_limits)


def split_defs(schema: Schema) -> tuple[Schema, dict[str, Schema]]:
    """The schema without its `$defs`, and the `$defs` apart."""
    schema = dict(schema)
    return schema, schema.pop("$defs", {})


def rebase(node: Any, prefix: str) -> Any:
    """A copy of `node` whose `#/$defs/X` references point to `prefix + X` instead."""
    if isinstance(node, list):
        return [rebase(item, prefix) for item in node]
    if not isinstance(node, dict):
        return node
    return {key: (prefix + value.removeprefix(DEFS) if key == "$ref" and isinstance(value, str)
                  and value.startswith(DEFS) else rebase(value, prefix) if key not in _VALUES else value)
            for key, value in node.items()}


# ---- the CloudEvents envelope --------------------------------------------------------------

# What each attribute of the envelope means to a partner; a test checks none is left out.
ENVELOPE_ATTRIBUTES: dict[str, str] = {
    "specversion": "CloudEvents version: always 1.0",
    "id": "your id for this event, unique for its source: the same source and id sent again has one "
          "effect (publish it with the NATS header Nats-Msg-Id set to this id)",
    "source": "where the event comes from, e.g. /partners/pegase-staff-portal (part of its identity)",
    "type": "envol.<name>.v<major>: the event and the major version of its data",
    "time": "when it happened, with a time zone (stored in UTC); years 1900 to 2199",
    "subject": "the SIREN of the company the event is about (for a relay mission: the host company's); "
               "events about one company are applied in the order they were published",
    "datacontenttype": "always application/json",
    "data": "the event's data, as its type's schema says",
    "cluster": "Envol extension: the cluster whose programme the event is about; the same as the "
               "cluster in the subject",
    "correlationid": "Envol extension, required: one journey of one company (an application and "
                     "everything that follows from it); a journey's first event uses its own id",
    "causationid": "Envol extension: the id of the event that caused this one; absent on a "
                   "journey's first event",
    "traceparent": "optional, CloudEvents distributed-tracing extension: the W3C trace context "
                   "00-<32 hex trace id>-<16 hex span id>-<2 hex flags>; never required. Envol's "
                   "events carry the trace of the event that caused them",
}


def envelope_schema() -> Schema:
    """The envelope whatever the event type: `data` is any object."""
    schema = model_schema(CloudEvent, message_limits=True)
    schema["description"] = (
        "A CloudEvents 1.0 envelope in structured JSON mode, with Envol's extensions cluster, "
        "correlationid (required) and causationid. Whatever the type, a message is refused when it "
        f"nests objects and arrays more than {events.MAX_DEPTH} levels deep, holds a text longer than "
        f"{MAX_STRING} characters or with a control character other than tab, line feed and carriage "
        "return, an integer outside 64 bits, or a number that is not finite; unknown fields are "
        "refused, not ignored."
    )
    for name, text in ENVELOPE_ATTRIBUTES.items():
        schema["properties"][name]["description"] = text
    return schema


def data_schema(model: type[EventData]) -> Schema:
    """The schema of one event type's `data`, with its description."""
    schema = model_schema(model, message_limits=True)
    # The rule across fields, if any, said in words too.
    schema["description"] = " ".join(filter(None, [describe(model), schema.pop("$comment", None)]))
    return schema


def describe(model: type[BaseModel]) -> str:
    """The model's own explanation (its docstring, on one line), or its event's name in words."""
    if model.__doc__:
        return " ".join(model.__doc__.split())
    if issubclass(model, EventData):
        return model.name().replace(".", " ").capitalize() + "."
    return model.__name__ + "."


def event_schema(model: type[EventData], example: Schema | None = None) -> Schema:
    """A whole message of one event type, envelope and data, as one standalone JSON Schema
    document (draft 2020-12): what a partner validates what it publishes against."""
    envelope, _ = split_defs(envelope_schema())
    data, defs = split_defs(data_schema(model))
    envelope["properties"]["type"] = {"const": model.type, "description": ENVELOPE_ATTRIBUTES["type"]}
    envelope["properties"]["data"] = {"$ref": DEFS + "data"}
    schema: Schema = {
        "$schema": JSON_SCHEMA_DIALECT,
        "title": model.type,
        **{key: value for key, value in envelope.items() if key != "description"},
        "description": f"{describe(model)} — {envelope['description']}",
        "$defs": {**defs, "data": data},
    }
    if example is not None:
        schema["examples"] = [example]
    return schema
