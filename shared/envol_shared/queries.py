"""Request/reply queries over core NATS, answered from the service's own database.

    envol-query.<cluster>.<service>.<query>      request: a JSON object; reply: a JSON object

A reply is either the answer or ``{"error": "..."}`` saying what was wrong with the request;
a query never goes unanswered. The cluster in the subject scopes the answer to that cluster's
data, so NATS permissions can confine a cluster's tools to its own subject. Each query is a
FastStream subscriber of the service's broker (`QueryResponder.subscribe`); instances of a
service share the work through a queue group, the service's name.

The reply subject is chosen by the asker, and NATS checks a publisher's permissions against
the subject it publishes on, not against who chose it: a service that answered wherever it is
told could be made to publish into its own events (``envol.pegase.enrolment.…``). So answers
go only to an inbox: ``_INBOX.…`` (a client's default), or ``_INBOX_<user>.…`` where ``<user>``
is a user of the query's cluster (``<cluster>-<producer>``, the per-user inboxes of
deploy/nats/auth.conf). Any other reply subject gets no answer, and a warning in the log.
Answers are strict JSON (no NaN or Infinity) and must fit the server's ``max_payload``;
otherwise the asker gets an error saying so. FastStream itself never answers (``no_reply``):
it would answer on any reply subject, with headers of its own.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import structlog
from faststream.nats import NatsBroker
from nats.aio.msg import Msg
from pydantic import BaseModel, ValidationError
from pydantic_core import PydanticSerializationError, to_jsonable_python
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from envol_shared.subscriber import raw_messages, require_raw_handlers

QUERY_ROOT = "envol-query"
INBOX = "_INBOX"
# A literal subject token: not empty, no wildcard, no white space.
_LITERAL_TOKEN = re.compile(r"[^\s*>.]+")
_SHOWN_SUBJECT_CHARS = 120  # enough to recognise a subject in the log, not a payload smuggled in it


class QueryError(Exception):
    """The request is understood but cannot be answered (unknown id...): said to the asker."""


@dataclass(frozen=True)
class Query:
    """One query a service answers: its request model and the function that answers it."""

    request: type[BaseModel]
    answer: Callable[[Any, str, AsyncSession], Awaitable[dict[str, Any]]]


def query_subject(cluster: str, service: str, name: str) -> str:
    return f"{QUERY_ROOT}.{cluster}.{service}.{name}"


def reply_refusal(reply: str, cluster: str) -> str | None:
    """Why an answer to a query of `cluster` may not be published on `reply`; None if it may."""
    shown = reply[:_SHOWN_SUBJECT_CHARS]
    tokens = reply.split(".")
    if len(tokens) < 2 or not all(_LITERAL_TOKEN.fullmatch(token) for token in tokens):
        return f"reply subject {shown!r} is not an inbox (an inbox is a literal subject)"
    prefix = tokens[0]
    if prefix == INBOX:
        return None
    if not prefix.startswith(f"{INBOX}_"):
        return f"reply subject {shown!r} is outside the inbox namespace ({INBOX}. or {INBOX}_<user>.)"
    user = prefix.removeprefix(f"{INBOX}_")
    if user.startswith(f"{cluster}-") and len(user) > len(cluster) + 1:
        return None
    return f"reply subject {shown!r} is the inbox of {user!r}, not of a user of {cluster}"


def _error(message: str) -> bytes:
    return json.dumps({"error": message}).encode()


class QueryResponder:
    def __init__(self, *, engine: AsyncEngine, service: str, queries: Mapping[str, Query]) -> None:
        self._sessions = async_sessionmaker(engine, expire_on_commit=False)
        self._service = service
        self._queries = dict(queries)
        self._broker: NatsBroker | None = None
        self.log = structlog.get_logger("envol.queries").bind(service=service)

    def subscribe(self, broker: NatsBroker) -> None:
        """Register each query on `broker`: `envol-query.*.<service>.<query>`, in the queue
        group of the service; the broker subscribes when it starts, unsubscribes when it stops."""
        require_raw_handlers(broker)
        self._broker = broker
        for name in self._queries:
            subscriber = broker.subscriber(query_subject("*", self._service, name), queue=self._service,
                                           no_reply=True, title=f"{self._service} query {name}")
            subscriber(self.respond, decoder=raw_messages)

    async def respond(self, msg: Msg) -> None:
        """Answer one request (a nats-py message) on its reply subject, when that may be done."""
        _, cluster, _, name = msg.subject.split(".", 3)
        if not msg.reply:
            return  # a plain publish: there is no one to answer
        refusal = reply_refusal(msg.reply, cluster)
        if refusal is not None:
            # The request itself is never logged: it is the asker's, and may hold anything.
            self.log.warning("query.reply_refused", query=name, cluster=cluster, reason=refusal)
            return
        assert self._broker is not None, "subscribe() first"
        connection = self._broker.connection
        try:
            body = self._encode(name, cluster, await self.answer(name, cluster, msg.data),
                                connection.max_payload)
        except Exception as exc:  # whatever failed, the asker still hears back
            self.log.error("query.failed", query=name, cluster=cluster, error=repr(exc))
            body = _error(f"{name} could not be answered now; try again")
        try:
            # The bare answer: not msg.respond() (it would echo the asker's headers back), nor
            # the broker's publish (it would add FastStream's headers).
            await connection.publish(msg.reply, body)
        except Exception as exc:  # the connection went away: the asker's request times out
            self.log.error("query.reply_failed", query=name, cluster=cluster, error=repr(exc))

    async def answer(self, name: str, cluster: str, raw: bytes) -> dict[str, Any]:
        query = self._queries.get(name)
        if query is None:
            return {"error": f"unknown query {name}; known: {', '.join(sorted(self._queries))}"}
        try:
            request = query.request.model_validate_json(raw or b"{}", strict=True)
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or '(request)'}: {e['msg']}"
                                 for e in exc.errors()[:5])
            return {"error": f"invalid {name} request: {problems}"}
        try:
            async with self._sessions() as session:
                return await query.answer(request, cluster, session)
        except QueryError as exc:
            return {"error": str(exc)}
        except Exception as exc:  # the asker gets an answer; the operator gets the details
            self.log.error("query.failed", query=name, cluster=cluster, error=repr(exc))
            return {"error": f"{name} could not be answered now; try again"}

    def _encode(self, name: str, cluster: str, answer: dict[str, Any], limit: int) -> bytes:
        """The answer as strict JSON that fits in one NATS message (`limit`, the server's
        max_payload), else an error saying why."""
        try:
            body = json.dumps(answer, default=to_jsonable_python, allow_nan=False).encode()
        except (ValueError, TypeError, PydanticSerializationError) as exc:
            self.log.error("query.answer_not_json", query=name, cluster=cluster, error=repr(exc))
            return _error(f"{name} could not be answered: the answer holds a value JSON cannot carry "
                          "(NaN, infinity...); the operator has the details")
        if len(body) <= limit:
            return body
        self.log.warning("query.answer_too_large", query=name, cluster=cluster, size=len(body),
                         max_payload=limit)
        query = self._queries.get(name)
        filters = [field for field, info in query.request.model_fields.items()
                   if not info.is_required()] if query else []
        narrow = (f"narrow the request with {', '.join(filters)}" if filters
                  else "this query cannot be narrowed: ask the operator to raise the server's max_payload")
        return _error(f"the {name} answer is too large ({len(body)} bytes; the NATS server carries at "
                      f"most {limit}): {narrow}")
