"""How each service is wired on FastStream, with FastStream's test broker (no server): queries
reach their handler with the request's bytes untouched and are answered only by the service,
only into an inbox; the consumer's subjects reach the batch handler as raw nats-py messages;
the log context holds a message's identifiers while it is handled, and only then.

(The test broker delivers messages without JetStream metadata and its acknowledgements do
nothing: what is acknowledged, when, is proven on a real server, tests/integration.)"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import structlog
from faststream.nats import NatsBroker, TestNatsBroker
from nats.aio.msg import Msg
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from envol_enrolment.bootstrap import bootstrap
from envol_shared.database import create_engine
from envol_shared.logging import LogContext
from envol_shared.queries import Query, QueryResponder, query_subject
from envol_shared.service import RunningService, Settings
from envol_shared.topology import CONSUMERS

PG = "pegase"


@pytest.fixture
def service(tmp_path: Path) -> RunningService:
    """The enrolment service as built, never started: what FastStream is given."""
    return RunningService(bootstrap(), Settings("enrolment", "nats://127.0.0.1:1",
                                                f"sqlite+aiosqlite:///{tmp_path / 'e.sqlite'}", 64))


class Answers:
    """Stands for the database behind the queries: what was asked, and a fixed answer."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, str, bytes]] = []

    async def answer(self, name: str, cluster: str, raw: bytes) -> dict[str, Any]:
        self.asked.append((name, cluster, raw))
        return {"answered": name}


async def test_each_query_reaches_its_handler_and_only_the_service_answers_into_an_inbox(
    service: RunningService, monkeypatch: pytest.MonkeyPatch
):
    answers = Answers()
    monkeypatch.setattr(service.queries, "answer", answers.answer)
    # Anything FastStream itself would publish on the reply subject lands here.
    echoed: list[Any] = []
    service.broker.subscriber("_INBOX.>")(echoed.append)
    async with TestNatsBroker(service.broker) as broker:
        broker.connection.max_payload = 1024 * 1024
        for name in service.definition.queries:
            await broker.publish(b'{"x": NaN}', query_subject(PG, "enrolment", name),
                                 reply_to=f"_INBOX.{name}")
        await broker.publish(b"{}", query_subject(PG, "enrolment", "company"),
                             reply_to="envol.pegase.enrolment.company.assessed")  # not an inbox
        await broker.publish(b"{}", query_subject(PG, "enrolment", "nonsense"), reply_to="_INBOX.n")
        answered = broker.connection.publish.await_args_list

    queries = sorted(service.definition.queries)
    assert queries == ["application", "company"]
    # The request's bytes as sent (not JSON, here): the service reads them itself, strictly.
    assert sorted(answers.asked) == [(name, PG, b'{"x": NaN}') for name in queries]
    assert sorted(call.args for call in answered) == [
        (f"_INBOX.{name}", json.dumps({"answered": name}).encode()) for name in queries]
    assert all(not call.kwargs for call in answered), "a bare answer: no headers"
    assert echoed == [], "FastStream answers nothing itself"


async def test_the_consumers_subjects_reach_the_batch_handler_as_raw_messages(service: RunningService):
    batches: list[list[Msg]] = []

    class Consumer:
        async def handle_batch(self, messages: list[Msg]) -> None:
            batches.append(messages)

    service.consumer = Consumer()  # type: ignore[assignment]
    # envol.*.*.company.registered... as a partner publishes them
    consumed = [subject.replace("*", PG, 1).replace("*", "staff", 1)
                for subject in CONSUMERS["enrolment"].filter_subjects]
    async with TestNatsBroker(service.broker) as broker:
        for subject in consumed:
            await broker.publish(b'{"id": 1e400}', subject)
        await broker.publish(b"{}", f"envol.{PG}.enrolment.company.assessed")  # its own event
    assert [[msg.subject for msg in batch] for batch in batches] == [[subject] for subject in consumed]
    assert all(isinstance(msg, Msg) and msg.data == b'{"id": 1e400}' for batch in batches for msg in batch)


async def test_the_log_context_holds_the_message_being_handled_and_only_then(tmp_path: Path):
    seen: list[dict[str, Any]] = []

    class Nothing(BaseModel):
        pass

    async def answer(_request: BaseModel, _cluster: str, _session: AsyncSession) -> dict[str, Any]:
        seen.append(structlog.contextvars.get_contextvars())
        return {}

    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'q.sqlite'}")
    broker = NatsBroker(apply_types=False, logger=None, middlewares=[LogContext])  # as a service's
    responder = QueryResponder(engine=engine, service="probe", queries={"figures": Query(Nothing, answer)})
    responder.subscribe(broker)
    try:
        async with TestNatsBroker(broker) as test_broker:
            test_broker.connection.max_payload = 1024 * 1024
            await test_broker.publish(b"{}", query_subject(PG, "probe", "figures"), reply_to="_INBOX.1")
            assert structlog.contextvars.get_contextvars() == {}
    finally:
        await engine.dispose()
    assert seen == [{"query": "figures", "cluster": PG}]


async def test_a_batch_is_handled_with_its_size_in_the_log_context(service: RunningService):
    seen: list[dict[str, Any]] = []

    class Consumer:
        async def handle_batch(self, messages: list[Msg]) -> None:
            seen.append(structlog.contextvars.get_contextvars())

    service.consumer = Consumer()  # type: ignore[assignment]
    async with TestNatsBroker(service.broker) as broker:
        await broker.publish(b"{}", "envol.pegase.staff.company.registered")
    assert seen == [{"batch_size": 1}]  # (no stream sequences: the test broker has no JetStream)
    assert structlog.contextvars.get_contextvars() == {}

