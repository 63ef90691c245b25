"""AsyncAPI 3.0.0 documents of Envol: one per service, one per partner role, one for the system.

Every document is built by one `Catalogue`, which knows every channel, message and schema
and copies into a document only what its operations use, so each document stands alone:

- an event type is a channel `envol.{cluster}.{producer}.<event name>` whose message is the
  whole CloudEvent (the envelope's schema with the type's `data`); rejections are the event
  type `event.rejected`, in the namespace of the producer whose event was refused;
- dead letters are the channel `envol-dead-letter.{service}.{cluster}.{producer}`;
- a query is a channel `envol-query.{cluster}.<service>.<query>` and an operation with a
  `reply`: its answer goes to the asker's inbox, a channel whose address is not known in
  advance (`null`), and is the answer or `{"error": ...}`.

A service's operations are what it receives and sends; a partner role's are what that role
sends (its events, and the queries it asks) and receives.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from docs.generate import examples, reference
from docs.generate.answers import ANSWERS, ErrorAnswer
from docs.generate.schemas import data_schema, describe, envelope_schema, model_schema, rebase, split_defs
from envol_shared.contracts import PUBLISHED_BY
from envol_shared.events import EventRejected, event_name, registered_types
from envol_shared.queries import QUERY_ROOT, query_subject
from envol_shared.topology import DEAD_LETTER_ROOT, DUPLICATE_WINDOW_S

ASYNCAPI_VERSION = "3.0.0"
ROOT = Path(__file__).resolve().parents[2]
VERSION = tomllib.loads((ROOT / "shared" / "pyproject.toml").read_text("utf-8"))["project"]["version"]
SCHEMAS = "#/components/schemas/"
Document = dict[str, Any]

# What the dead-letter stream's headers say (shared/envol_shared/deliveries.py writes them).
DEAD_LETTER_HEADERS = {
    "Envol-Reason": "why the message could never be processed",
    "Envol-Service": "the service that gave up on it",
    "Envol-Original-Subject": "the subject it was published on",
    "Envol-Original-Stream-Sequence": "its sequence in the ENVOL_EVENTS stream",
    "Envol-Delivery-Attempts": "how many times it was delivered",
    "Envol-Original-Size": "its size in bytes",
    "Envol-Original-Sha256": "the SHA-256 digest of the whole original",
    "Envol-Original-Truncated": "present when the original was cut to fit: how much was kept",
}


def _ref(pointer: str) -> dict[str, str]:
    return {"$ref": pointer}


@dataclass
class Catalogue:
    """Every channel, message and schema of Envol, and the documents made of them."""

    clusters: dict[str, dict[str, Any]] = field(default_factory=reference.clusters)
    channels: dict[str, Document] = field(default_factory=dict)
    messages: dict[str, Document] = field(default_factory=dict)
    schemas: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._schema("CloudEvent", envelope_schema())
        self.schemas["EventHeaders"] = {
            "type": "object",
            "properties": {"Nats-Msg-Id": {
                "type": "string",
                "description": f"the event's id: JetStream drops a copy published again within "
                               f"{DUPLICATE_WINDOW_S // 60} minutes"}},
        }
        for type_ in registered_types():
            self._event(type_)
        for service in reference.SERVICES:
            self._dead_letters(service)
            for name in ANSWERS[service]:
                self._query(service, name)

    # ---- what the documents are made of ---------------------------------------------------

    def _schema(self, name: str, schema: dict[str, Any]) -> None:
        """Keep `schema` under `name`, and the models it nests under their own names."""
        main, nested = split_defs(schema)
        for key, value in {**nested, name: main}.items():
            value = rebase(value, SCHEMAS)
            if self.schemas.setdefault(key, value) != value:
                raise ValueError(f"two different schemas are both named {key}: rename one model")

    def producers(self, type_: str) -> list[str]:
        """The producer ids that may publish `type_`, in any cluster."""
        if type_ in PUBLISHED_BY:
            return [PUBLISHED_BY[type_]]
        roles = reference.producers_of(type_)
        clusters = self.clusters.values()
        found = {s["producer"] for c in clusters for s in c["staff"] if reference.STAFF in roles}
        found |= {p["id"] for c in clusters for p in c["partners"] if p["kind"] in roles}
        if type_ == EventRejected.type:  # in the namespace of whoever sent the refused event
            found |= {p for t in registered_types() if t != type_ for p in self.producers(t)}
        return sorted(found)

    def clusters_of(self, type_: str) -> list[str]:
        """The clusters where someone may publish `type_` (a bank's events: where banks serve)."""
        roles = reference.producers_of(type_)
        if type_ in PUBLISHED_BY or type_ == EventRejected.type or reference.STAFF in roles:
            return sorted(self.clusters)
        return sorted(cluster for cluster, data in self.clusters.items()
                      if any(p["kind"] in roles for p in data["partners"]))

    def _parameters(self, producers: list[str], clusters: list[str] | None = None) -> Document:
        return {
            "cluster": {"enum": clusters or sorted(self.clusters),
                        "description": "the cluster the event is about"},
            "producer": {"enum": producers, "description": "who publishes: a service, a cluster's staff "
                         "tool, or a partner's id (its NATS user is <cluster>-<producer>)"},
        }

    def _event(self, type_: str) -> None:
        model = registered_types()[type_]
        name = event_name(type_)
        self._schema(f"{type_}.data", data_schema(model))
        self.schemas[type_] = {"allOf": [_ref(SCHEMAS + "CloudEvent")],
                               "properties": {"type": {"const": type_},
                                              "data": _ref(f"{SCHEMAS}{type_}.data")}}
        subject, example = examples.message(type_)
        consumers = ", ".join(reference.consumers_of(type_)) or "no service (it is for the producer)"
        self.messages[type_] = {
            "name": type_, "title": name, "summary": describe(model), "contentType": "application/json",
            "payload": _ref(SCHEMAS + type_), "headers": _ref(SCHEMAS + "EventHeaders"),
            "correlationId": {"location": "$message.payload#/correlationid",
                              "description": "one journey of one company"},
            "examples": [{"name": "example", "summary": f"published on {subject}", "payload": example,
                          "headers": {"Nats-Msg-Id": example["id"]}}],
        }
        producers = self.producers(type_)
        self.channels[name] = {
            "address": f"envol.{{cluster}}.{{producer}}.{name}",
            "title": type_,
            "description": f"Published by {', '.join(reference.producers_of(type_))}; "
                           f"consumed by {consumers}.",
            "parameters": self._parameters(producers, self.clusters_of(type_)),
            "messages": {type_: _ref(f"#/components/messages/{type_}")},
        }

    def _dead_letters(self, service: str) -> None:
        self.messages["dead-letter"] = {
            "name": "dead-letter", "title": "dead letter", "contentType": "application/octet-stream",
            "summary": "A message no service could ever process, kept with the reason in its headers.",
            "payload": {"description": "the original message's bytes, as received (cut if too large)"},
            "headers": {"type": "object",
                        "required": [h for h in DEAD_LETTER_HEADERS if "Truncated" not in h],
                        "properties": {h: {"type": "string", "description": text}
                                       for h, text in DEAD_LETTER_HEADERS.items()}},
        }
        self.channels[f"dead-letter.{service}"] = {
            "address": f"{DEAD_LETTER_ROOT}.{service}.{{cluster}}.{{producer}}",
            "title": f"dead letters of {service}",
            "description": "Stream ENVOL_DEAD_LETTERS: what the service gave up on, by the namespace "
                           "it came from.",
            "parameters": self._parameters(sorted({p for t in registered_types()
                                                   for p in self.producers(t)})),
            "messages": {"dead-letter": _ref("#/components/messages/dead-letter")},
        }

    def _query(self, service: str, name: str) -> None:
        request = reference_queries()[service][name]
        key = f"query.{service}.{name}"
        self._schema(f"{key}.request",
                     model_schema(request) | {"description": f"A {name} query to {service}."})
        self._schema(f"{key}.answer", model_schema(ANSWERS[service][name]))
        self._schema("QueryError", model_schema(ErrorAnswer))
        self.messages[f"{key}.request"] = {"name": f"{key}.request", "contentType": "application/json",
                                           "payload": _ref(f"{SCHEMAS}{key}.request")}
        self.messages[f"{key}.answer"] = {"name": f"{key}.answer", "contentType": "application/json",
                                          "summary": describe(ANSWERS[service][name]),
                                          "payload": _ref(f"{SCHEMAS}{key}.answer")}
        self.messages["query.error"] = {"name": "query.error", "contentType": "application/json",
                                        "summary": describe(ErrorAnswer),
                                        "payload": _ref(SCHEMAS + "QueryError")}
        self.channels[key] = {
            "address": query_subject("{cluster}", service, name), "title": f"{service} {name} query",
            "description": "Request/reply over core NATS, answered from the service's database for the "
                           "cluster in the subject.",
            "parameters": {"cluster": self._parameters([])["cluster"]},
            "messages": {"request": _ref(f"#/components/messages/{key}.request")},
        }
        self.channels[f"{key}.reply"] = {
            "address": None, "title": f"answer to a {service} {name} query",
            "description": "The asker's inbox: _INBOX.… or _INBOX_<user>.… for a user of the query's "
                           "cluster (connect with inbox_prefix=\"_INBOX_<user>\"); any other reply subject "
                           "gets no answer.",
            "messages": {"answer": _ref(f"#/components/messages/{key}.answer"),
                         "error": _ref("#/components/messages/query.error")},
        }

    # ---- operations ---------------------------------------------------------------------

    def event_operation(self, action: str, type_: str, summary: str) -> Document:
        name = event_name(type_)
        return {"action": action, "channel": _ref(f"#/channels/{name}"), "summary": summary,
                "messages": [_ref(f"#/channels/{name}/messages/{type_}")]}

    def query_operation(self, action: str, service: str, name: str) -> Document:
        key = f"query.{service}.{name}"
        return {
            "action": action, "channel": _ref(f"#/channels/{key}"),
            "summary": f"{name} query of {service}: {describe(ANSWERS[service][name])}",
            "messages": [_ref(f"#/channels/{key}/messages/request")],
            "reply": {"channel": _ref(f"#/channels/{key}.reply"),
                      "messages": [_ref(f"#/channels/{key}.reply/messages/answer"),
                                   _ref(f"#/channels/{key}.reply/messages/error")]},
            "bindings": {"nats": {"queue": service, "bindingVersion": "0.1.0"}},
        }

    def service_operations(self, service: str) -> dict[str, Document]:
        contract = reference.CONTRACTS[service]
        operations = {f"{service}.receive.{event_name(e.type)}": self.event_operation(
            "receive", e.type, f"{service} consumes {e.type}") for e in contract.CONSUMED}
        operations |= {f"{service}.send.{event_name(e.type)}": self.event_operation(
            "send", e.type, f"{service} publishes {e.type}") for e in contract.PUBLISHED}
        operations[f"{service}.send.event.rejected"] = self.event_operation(
            "send", EventRejected.type, f"{service} tells a producer why it refused its event")
        operations[f"{service}.send.dead-letter"] = {
            "action": "send", "channel": _ref(f"#/channels/dead-letter.{service}"),
            "summary": f"{service} keeps what it could never process",
            "messages": [_ref(f"#/channels/dead-letter.{service}/messages/dead-letter")]}
        operations |= {f"{service}.answer.{name}": self.query_operation("receive", service, name)
                       for name in ANSWERS[service]}
        return operations

    def role_operations(self, role: str) -> dict[str, Document]:
        operations = {f"{role}.send.{event_name(e.type)}": self.event_operation(
            "send", e.type, f"a {reference.ROLE_NAMES[role]} publishes {e.type}")
            for e in reference.ROLE_EVENTS[role]}
        operations[f"{role}.receive.event.rejected"] = self.event_operation(
            "receive", EventRejected.type, "why an event you published was refused (nothing changed)")
        if role in reference.QUERY_ASKERS:
            # Staff follow their cluster's events as they happen, and ask its queries.
            operations |= {f"{role}.receive.{event_name(t)}": self.event_operation(
                "receive", t, f"{service} published {t}") for t, service in sorted(PUBLISHED_BY.items())}
            operations |= {f"{role}.ask.{service}.{name}": self.query_operation("send", service, name)
                           for service in reference.SERVICES for name in ANSWERS[service]}
        return operations

    # ---- documents -----------------------------------------------------------------------

    def document(self, title: str, description: str, operations: dict[str, Document]) -> Document:
        """A standalone AsyncAPI document with `operations` and only what they refer to."""
        document: Document = {
            "asyncapi": ASYNCAPI_VERSION,
            "info": {"title": title, "version": VERSION, "description": description,
                     "license": {"name": "see the Envol repository"}},
            "defaultContentType": "application/json",
            "servers": {
                "local": {"host": "127.0.0.1:14222", "protocol": "nats",
                          "description": "the local stack, python3 envol.py up (it prints its port if "
                                         "14222 was taken); passwords in .envol/nats-credentials.json",
                          "security": [_ref("#/components/securitySchemes/natsUser")]},
                "production": {"host": "{host}", "protocol": "nats",
                               "description": "your cluster's NATS server",
                               "variables": {"host": {"description": "host:port handed to you by the "
                                                                     "cluster's IT team"}},
                               "security": [_ref("#/components/securitySchemes/natsUser")]},
            },
            "operations": operations,
        }
        channels = sorted({op["channel"]["$ref"].split("/")[-1] for op in operations.values()}
                          | {op["reply"]["channel"]["$ref"].split("/")[-1]
                             for op in operations.values() if "reply" in op})
        document["channels"] = {name: self.channels[name] for name in channels}
        messages = sorted({ref["$ref"].split("/")[-1] for name in channels
                           for ref in self.channels[name]["messages"].values()})
        document["components"] = {
            "messages": {name: self.messages[name] for name in messages},
            "schemas": self._schemas_used([self.messages[name] for name in messages]),
            "securitySchemes": {"natsUser": {
                "type": "userPassword",
                "description": "your NATS user, <cluster>-<producer>, and its password; set your reply "
                               "prefix to _INBOX_<user>"}},
        }
        return document

    def _schemas_used(self, roots: list[Any]) -> dict[str, Any]:
        """Every component schema `roots` refer to, directly or through other schemas."""
        found: dict[str, Any] = {}
        pending = list(roots)
        while pending:
            node = pending.pop()
            if isinstance(node, list):
                pending += node
            elif isinstance(node, dict):
                ref = node.get("$ref")
                if isinstance(ref, str) and ref.startswith(SCHEMAS) and ref[len(SCHEMAS):] not in found:
                    name = ref[len(SCHEMAS):]
                    found[name] = self.schemas[name]
                    pending.append(self.schemas[name])
                pending += [value for key, value in node.items() if key not in {"examples", "const", "enum"}]
        return dict(sorted(found.items()))


def reference_queries() -> dict[str, dict[str, type[BaseModel]]]:
    """The request model of each query of each service, from the services' queries.py."""
    from envol_enrolment.queries import QUERIES as enrolment
    from envol_export.queries import QUERIES as export
    from envol_financing.queries import QUERIES as financing
    from envol_outcomes.queries import QUERIES as outcomes

    found = {"enrolment": enrolment, "financing": financing, "export": export, "outcomes": outcomes}
    return {service: {name: query.request for name, query in queries.items()}
            for service, queries in found.items()}


def documents(catalogue: Catalogue) -> dict[str, Document]:
    """Every AsyncAPI document, by file name under asyncapi/."""
    result = {"envol.json": catalogue.document(
        "Envol", "Every service of Envol: the events they consume and publish, their rejections and "
                 "dead letters, and the queries they answer. Subjects: envol.<cluster>.<producer>.<event>; "
                 f"queries: {QUERY_ROOT}.<cluster>.<service>.<query>.",
        {name: op for service in reference.SERVICES
         for name, op in catalogue.service_operations(service).items()})}
    for service in reference.SERVICES:
        result[f"{service}.json"] = catalogue.document(
            f"Envol {service} service", f"What the {service} service consumes, publishes and answers.",
            catalogue.service_operations(service))
    for role in reference.ROLE_EVENTS:
        result[f"roles/{role}.json"] = catalogue.document(
            f"Envol for a {reference.ROLE_NAMES[role]}",
            f"What a {reference.ROLE_NAMES[role]} publishes into Envol and what it receives, as NATS user "
            "<cluster>-<producer>.", catalogue.role_operations(role))
    return result
