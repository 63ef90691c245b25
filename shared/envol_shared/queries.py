"""Request/reply queries over core NATS, answered from the service's own database.

    envol-query.<cluster>.<service>.<query>      request: a JSON object; reply: a JSON object

A reply is either the answer or ``{"error": "..."}`` saying what was wrong with the request;
a query never goes unanswered. The cluster in the subject scopes the answer to that cluster's
data, so NATS permissions can confine a cluster's tools to its own subject. Instances of a
service share the work through a queue group.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import structlog
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from pydantic import BaseModel, ValidationError
from pydantic_core import to_jsonable_python
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

QUERY_ROOT = "envol-query"


class QueryError(Exception):
    """The request is understood but cannot be answered (unknown id...): said to the asker."""


@dataclass(frozen=True)
class Query:
    """One query a service answers: its request model and the function that answers it."""

    request: type[BaseModel]
    answer: Callable[[Any, str, AsyncSession], Awaitable[dict[str, Any]]]


def query_subject(cluster: str, service: str, name: str) -> str:
    return f"{QUERY_ROOT}.{cluster}.{service}.{name}"


class QueryResponder:
    def __init__(self, *, nc: Client, engine: AsyncEngine, service: str,
                 queries: Mapping[str, Query]) -> None:
        self._nc = nc
        self._sessions = async_sessionmaker(engine, expire_on_commit=False)
        self._service = service
        self._queries = dict(queries)
        self._subscriptions: list[Subscription] = []
        self.log = structlog.get_logger("envol.queries").bind(service=service)

    async def start(self) -> None:
        for name in self._queries:
            self._subscriptions.append(await self._nc.subscribe(
                query_subject("*", self._service, name), queue=self._service, cb=self._on_request,
            ))

    async def stop(self) -> None:
        for subscription in self._subscriptions:
            await subscription.unsubscribe()
        self._subscriptions = []

    async def _on_request(self, msg: Msg) -> None:
        _, cluster, _, name = msg.subject.split(".", 3)
        reply = await self.answer(name, cluster, msg.data)
        if msg.reply:
            await msg.respond(json.dumps(reply, default=to_jsonable_python).encode())

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
