"""The outbox relay when a destination refuses, on a real nats-server and both databases:
events and dead letters are relayed in two independent lanes, a refused lane waits on its
own (and says so, in the log and the readiness answer), a row too large ever to be
published holds nothing else up, and a stop never hangs on a refused lane."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterable

import pytest
import sqlalchemy as sa
from conftest import query
from nats.aio.client import Client
from sqlalchemy.ext.asyncio import AsyncEngine
from structlog.testing import capture_logs
from support import http_get, new_id, stream_messages, wait_for

from envol_enrolment.bootstrap import bootstrap
from envol_shared.database import create_engine, migrate
from envol_shared.event_log import OutboxRow, outbox
from envol_shared.events import now
from envol_shared.health import NotReady
from envol_shared.relay import OutboxRelay
from envol_shared.service import RunningService, Settings
from envol_shared.topology import (
    DEAD_LETTER_STREAM,
    EVENTS_STREAM,
    dead_letter_stream_config,
    dead_letter_subject,
)

EVENT = "envol.aerospace-valley.enrolment.company.assessed"
DEAD_LETTER = dead_letter_subject("enrolment", "aerospace-valley", "staff")
PENDING = "select message_id from outbox where published_at is null and subject {} order by id"
IS_DEAD_LETTER = "like 'envol-dead-letter.%'"


async def write_outbox(engine: AsyncEngine, messages: Iterable[tuple[str, bytes, dict[str, str]]]
                       ) -> list[OutboxRow]:
    """Commit outbox rows in one transaction, as a batch of the consumer does."""
    values = [{"message_id": new_id(), "subject": subject, "headers": headers, "payload": payload,
               "created_at": now()} for subject, payload, headers in messages]
    async with engine.begin() as connection:
        ids = await connection.execute(
            sa.insert(outbox).returning(outbox.c.id, sort_by_parameter_order=True), values)
    return [OutboxRow(id_, v["message_id"], v["subject"], v["headers"], v["payload"])
            for id_, v in zip(ids.scalars(), values, strict=True)]


def dead_letter(n: int) -> tuple[str, bytes, dict[str, str]]:
    return DEAD_LETTER, f"not JSON {n}".encode(), {"Envol-Reason": "not a CloudEvent"}


def event(n: int) -> tuple[str, bytes, dict[str, str]]:
    return EVENT, json.dumps({"n": n}).encode(), {}


def too_large(subject: str, max_payload: int) -> tuple[str, bytes, dict[str, str]]:
    # Under max_payload on its own, over it with its headers: nats-py would send it and the
    # server would close the connection.
    return subject, b"x" * (max_payload - 20), {"Envol-Reason": "r" * 100}


async def pending(database_url: str, dead_letters: bool) -> list[str]:
    lane = IS_DEAD_LETTER if dead_letters else f"not {IS_DEAD_LETTER}"
    return [row[0] for row in await query(database_url, PENDING.format(lane))]


async def in_stream(nc: Client, stream: str, subject: str) -> list[str]:
    """Message ids in the stream, in stream order."""
    return [m.headers["Nats-Msg-Id"] for m in await stream_messages(nc, stream, subject)]


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url)
    await migrate(engine, bootstrap().migrations)
    yield engine
    await engine.dispose()


async def test_a_full_dead_letter_stream_holds_up_neither_events_nor_readiness_for_long(
    nats_server, nc, database_url
):
    settings = Settings("enrolment", nats_server.url, database_url, 64, health_port=0)
    service = RunningService(bootstrap(), settings)
    with capture_logs() as logs:
        await service.start()
        try:
            assert service.health is not None and service.relay is not None and service.engine is not None
            port = service.health.port
            service.relay.not_ready_after_s = 0  # not ready as soon as a lane is refused
            js = nc.jetstream()
            await js.update_stream(dead_letter_stream_config(max_bytes=1))  # full: takes nothing

            # Dead letters first, each followed by an event (as an unreadable message gives).
            rows = await write_outbox(service.engine,
                                      [m for n in range(20) for m in (dead_letter(n), event(n))])
            letters = [r.message_id for r in rows if r.subject == DEAD_LETTER]
            events = [r.message_id for r in rows if r.subject == EVENT]

            # Every event goes out, in order, and is marked, while the dead letters wait.
            await wait_for(lambda: _empty(pending(database_url, dead_letters=False)))
            assert await in_stream(nc, EVENTS_STREAM, EVENT) == events
            assert await pending(database_url, dead_letters=True) == letters
            blocked = await wait_for(lambda: _async(service.relay.blocked_lanes))
            # The stream's own answer, at once (nats-py used to swallow it: a 30 s wait).
            assert list(blocked) == ["dead letters"]
            assert "maximum bytes exceeded" in blocked["dead letters"][1]
            status, body = await http_get(port, "/health/ready")
            assert status == 503
            assert body["checks"] == {"nats": True, "database": True, "outbox": False}
            assert body["reasons"]["outbox"].startswith("dead letters refused for ")
            assert "maximum bytes exceeded" in body["reasons"]["outbox"]

            # The operator raises the limit: the dead letters go out, in order, and are marked.
            await js.update_stream(dead_letter_stream_config(max_bytes=1 << 20))
            await wait_for(lambda: _empty(pending(database_url, dead_letters=True)), within=40)
            assert await in_stream(nc, DEAD_LETTER_STREAM, DEAD_LETTER) == letters
            assert await http_get(port, "/health/ready") == (
                200, {"status": "ready", "checks": {"nats": True, "database": True, "outbox": True}})
        finally:
            await service.stop()
    # One line when the lane started being refused, one when it recovered: not one per retry.
    lanes = [(e["event"], e["lane"]) for e in logs if e["event"].startswith("outbox.lane_")]
    assert lanes == [("outbox.lane_refused", "dead letters"), ("outbox.lane_recovered", "dead letters")]


async def test_a_dead_letter_too_large_to_publish_is_left_pending_and_skipped(nc, engine, database_url):
    relay = OutboxRelay(js=nc.jetstream(), engine=engine, service="enrolment")
    stopping = asyncio.Event()
    with capture_logs() as logs:
        task = asyncio.create_task(relay.run(stopping))
        try:
            rows = await write_outbox(engine, [dead_letter(1), too_large(DEAD_LETTER, nc.max_payload),
                                               dead_letter(2), event(1)])
            relay.hand_off(rows)
            first, oversize, second, an_event = rows

            await wait_for(lambda: _equal(pending(database_url, dead_letters=True), [oversize.message_id]))
            assert await pending(database_url, dead_letters=False) == []
            assert await in_stream(nc, DEAD_LETTER_STREAM, DEAD_LETTER) == [first.message_id,
                                                                            second.message_id]
            assert await in_stream(nc, EVENTS_STREAM, EVENT) == [an_event.message_id]
            # Nothing was sent that would make the server close the connection...
            assert nc.is_connected
            # ...and the lane goes on: it is not blocked behind that row.
            assert relay.blocked_lanes == {}
            assert await relay.flowing()
            later = await write_outbox(engine, [dead_letter(3)])
            relay.hand_off(later)
            await wait_for(lambda: _equal(pending(database_url, dead_letters=True), [oversize.message_id]))
            assert (await in_stream(nc, DEAD_LETTER_STREAM, DEAD_LETTER))[-1] == later[0].message_id
        finally:
            stopping.set()
            await task
    [error] = [e for e in logs if e["event"] == "outbox.row_unpublishable"]
    assert error["log_level"] == "error"
    assert (error["outbox_id"], error["message_id"], error["nats_subject"]) == (
        oversize.id, oversize.message_id, DEAD_LETTER)
    assert "xxxx" not in repr(error) and "rrrr" not in repr(error)  # never its contents


async def test_an_event_too_large_to_publish_stops_its_lane_only_and_says_so(nc, engine, database_url):
    relay = OutboxRelay(js=nc.jetstream(), engine=engine, service="enrolment", not_ready_after_s=0)
    stopping = asyncio.Event()
    task = asyncio.create_task(relay.run(stopping))
    try:
        rows = await write_outbox(engine, [event(1), too_large(EVENT, nc.max_payload), event(2),
                                           dead_letter(1)])
        relay.hand_off(rows)
        first, oversize, behind, a_dead_letter = rows

        blocked = await wait_for(lambda: _async(relay.blocked_lanes))
        assert list(blocked) == ["events"]
        assert f"outbox row {oversize.id} " in blocked["events"][1]
        assert "max_payload" in blocked["events"][1]
        with pytest.raises(NotReady, match=r"^events refused for"):
            await relay.flowing()
        # Later events wait behind it (a company's events stay in order), nothing is lost,
        # and the dead letters go on.
        await wait_for(lambda: _empty(pending(database_url, dead_letters=True)))
        assert await pending(database_url, dead_letters=False) == [oversize.message_id, behind.message_id]
        assert await in_stream(nc, EVENTS_STREAM, EVENT) == [first.message_id]
        assert await in_stream(nc, DEAD_LETTER_STREAM, DEAD_LETTER) == [a_dead_letter.message_id]
        assert nc.is_connected
    finally:
        stopping.set()
        await task


async def test_stop_does_not_wait_on_a_refused_lane_and_the_rows_go_out_at_the_next_start(
    nats_server, nc, database_url
):
    settings = Settings("enrolment", nats_server.url, database_url, 64)
    service = RunningService(bootstrap(), settings)
    await service.start()
    assert service.relay is not None and service.engine is not None
    await nc.jetstream().update_stream(dead_letter_stream_config(max_bytes=1))
    rows = await write_outbox(service.engine, [dead_letter(1), dead_letter(2), event(1)])
    await wait_for(lambda: _async("dead letters" in service.relay.blocked_lanes))
    # A hang guard, far above what a stop takes (one last, promptly refused, try).
    await asyncio.wait_for(service.stop(), timeout=30)
    assert await pending(database_url, dead_letters=True) == [rows[0].message_id, rows[1].message_id]
    assert await pending(database_url, dead_letters=False) == []

    # The next start provisions the stream with its normal limit: the dead letters go out.
    service = RunningService(bootstrap(), settings)
    await service.start()
    try:
        await wait_for(lambda: _empty(pending(database_url, dead_letters=True)))
        assert await in_stream(nc, DEAD_LETTER_STREAM, DEAD_LETTER) == [rows[0].message_id,
                                                                        rows[1].message_id]
    finally:
        await service.stop()


async def _async(value):  # type: ignore[no-untyped-def]
    return value


async def _empty(rows) -> bool:  # type: ignore[no-untyped-def]
    return await rows == []


async def _equal(rows, expected) -> bool:  # type: ignore[no-untyped-def]
    return await rows == expected
