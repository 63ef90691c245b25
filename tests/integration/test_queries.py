"""Request/reply queries answered from the enrolment database, scoped to a cluster; answers go
only to an inbox of that cluster, as strict JSON that fits in one NATS message."""

from __future__ import annotations

import contextlib
import json

import nats
import pytest
import sqlalchemy as sa
from conftest import wait_until_rows
from faststream.nats import NatsBroker
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession
from stdnum import luhn
from structlog.testing import capture_logs
from support import SIRENS, application, publish, registration

from envol_shared.contracts import enrolment as ev
from envol_shared.database import create_engine
from envol_shared.queries import Query, QueryResponder, query_subject

CONTACT = {"name": "Claire Martin", "email": "claire.martin@example.fr"}


async def ask(nc, cluster: str, name: str, request: dict | bytes) -> dict:
    payload = request if isinstance(request, bytes) else json.dumps(request).encode()
    reply = await nc.request(query_subject(cluster, "enrolment", name), payload, timeout=5)
    return json.loads(reply.data)


async def test_application_and_company_state_with_history(nc, start_service, database_url):
    await start_service()
    siren = SIRENS[7]
    await publish(nc, ev.CompanyRegistered(**registration(siren, contact=CONTACT)), company=siren)
    await publish(nc, ev.ApplicationSubmitted(**application("q-1", siren)), company=siren)
    await publish(nc, ev.ApplicationReviewed(application_id="q-1", decision="accept",
                                             reviewer="av-staff-2", reason="fits the club"),
                  company=siren)
    await wait_until_rows(database_url, "select count(*) from inbox", 3)

    state = (await ask(nc, "aerospace-valley", "application", {"application_id": "q-1"}))["application"]
    assert state["status"] == "enrolled"
    assert [(c["from"], c["to"], c["by"]) for c in state["history"]] == [
        (None, "applied", "staff"), ("applied", "eligible", "enrolment"),
        ("eligible", "enrolled", "av-staff-2")]
    assert state["history"][2]["at"].endswith("Z")

    # SIRET accepted, as everywhere; the contact person is not part of the answer.
    siret = siren + "0001" + luhn.calc_check_digit(siren + "0001")
    answer = await ask(nc, "aerospace-valley", "company", {"company_id": siret})
    assert answer["company"]["sme_category"] == "small"
    assert [a["application_id"] for a in answer["applications"]] == ["q-1"]
    assert CONTACT["email"] not in json.dumps(answer)


async def test_bad_or_foreign_queries_get_an_error_reply(nc, start_service, database_url):
    await start_service()
    siren = SIRENS[8]
    await publish(nc, ev.CompanyRegistered(**registration(siren)), company=siren)
    await wait_until_rows(database_url, "select count(*) from inbox", 1)

    other_cluster = await ask(nc, "pegase", "company", {"company_id": siren})
    assert other_cluster == {"error": f"unknown company {siren} in pegase"}
    assert "invalid company request: company_id" in (
        await ask(nc, "aerospace-valley", "company", {"company_id": "123456789"}))["error"]
    assert "invalid application request" in (
        await ask(nc, "aerospace-valley", "application", b"not json"))["error"]
    assert (await ask(nc, "aerospace-valley", "application", {"application_id": "nope"})) == {
        "error": "unknown application nope in aerospace-valley"}


# ---- where and what a service answers ------------------------------------------------------

AV = "aerospace-valley"


def strict_json(data: bytes) -> dict:
    def refuse(constant: str) -> None:
        raise ValueError(f"{constant} is not JSON")

    return json.loads(data, parse_constant=refuse)


async def test_answers_go_only_to_an_inbox_of_the_querys_cluster(nc, nats_server, start_service,
                                                                 database_url):
    with capture_logs() as logs:
        await start_service()
        siren = SIRENS[9]
        await publish(nc, ev.CompanyRegistered(**registration(siren)), company=siren)
        await wait_until_rows(database_url, "select count(*) from inbox", 1)
        # What a requester may not make the service publish on: its own events (the stream would
        # store the answer as one), rejections, another cluster's or a service's inbox, a
        # wildcard, the query subject itself (a loop).
        refused = [f"envol.{AV}.enrolment.application.enrolled", f"envol.{AV}.staff.event.rejected",
                   "_INBOX_pegase-staff.x1", "_INBOX_financing.x2", f"_INBOX_{AV}-.x3", "_INBOX.*",
                   "_INBOX.>", "_INBOX", query_subject(AV, "enrolment", "company")]
        # (the query subject is left out: its spy would hear the requests themselves)
        literal = [subject for subject in refused[:-1] if "*" not in subject and ">" not in subject]
        spies = [await nc.subscribe(subject) for subject in literal]
        request = json.dumps({"company_id": siren}).encode()
        for reply in refused:
            await nc.publish(query_subject(AV, "enrolment", "company"), request, reply=reply)
        # A staff tool under NATS permissions asks from its own inbox prefix: answered. Requests
        # of one query are answered in order, so the refused ones were handled by then.
        async with connected_as_inbox(nats_server.url, f"_INBOX_{AV}-staff") as staff:
            reply = await staff.request(query_subject(AV, "enrolment", "company"), request, timeout=5)
        assert reply.subject.startswith(f"_INBOX_{AV}-staff.")
        assert strict_json(reply.data)["company"]["siren"] == siren
        for spy in spies:
            with pytest.raises(nats.errors.TimeoutError):
                await spy.next_msg(timeout=0.3)
        for subject in literal:
            if subject.startswith("envol."):
                with pytest.raises(nats.js.errors.NotFoundError):
                    await nc.jetstream().get_last_msg("ENVOL_EVENTS", subject)

    warnings = [line for line in logs if line["event"] == "query.reply_refused"]
    assert len(warnings) == len(refused)
    assert all(line["log_level"] == "warning" and line["query"] == "company" and line["cluster"] == AV
               for line in warnings)
    assert "is the inbox of 'pegase-staff', not of a user of aerospace-valley" in warnings[2]["reason"]
    assert "outside the inbox namespace" in warnings[0]["reason"]
    assert "not an inbox" in warnings[5]["reason"]
    assert siren not in json.dumps(logs)  # the request itself is never logged


@contextlib.asynccontextmanager
async def connected_as_inbox(url: str, inbox_prefix: str):
    client = await nats.connect(url, inbox_prefix=inbox_prefix)
    try:
        yield client
    finally:
        await client.close()


class Filters(BaseModel):
    programme: str | None = None


class Nothing(BaseModel):
    pass


async def test_too_large_not_json_or_failing_answers_still_get_an_error_reply(nats_server, nc, database_url):
    async def rows(session: AsyncSession) -> int:
        return int((await session.execute(sa.text("select 1"))).scalar_one())

    async def big(_request: BaseModel, _cluster: str, session: AsyncSession) -> dict:
        return {"units": ["x" * 1000] * (nc.max_payload // 1000 + await rows(session))}

    async def infinite(_request: BaseModel, _cluster: str, session: AsyncSession) -> dict:
        return {"staff_awu": float("inf") * await rows(session), "ratio": float("nan")}

    async def broken(_request: BaseModel, _cluster: str, session: AsyncSession) -> dict:
        await rows(session)
        raise RuntimeError("the database went away")

    engine = create_engine(database_url)
    with capture_logs() as logs:
        responder = QueryResponder(engine=engine, service="probe", queries={
            "figures": Query(Filters, big), "unit": Query(Nothing, big),
            "company": Query(Nothing, infinite), "case": Query(Nothing, broken)})
        broker = NatsBroker(nats_server.url, apply_types=False, logger=None)
        responder.subscribe(broker)
        await broker.start()
        await broker.connection.flush()  # the server has the subscriptions before we ask
        try:
            async def ask_probe(name: str) -> str:
                reply = await nc.request(query_subject(AV, "probe", name), b"{}", timeout=5)
                answer = strict_json(reply.data)
                assert list(answer) == ["error"], answer
                return answer["error"]

            too_large = await ask_probe("figures")
            assert "the figures answer is too large" in too_large
            assert f"at most {nc.max_payload}" in too_large
            assert "narrow the request with programme" in too_large
            assert "cannot be narrowed" in await ask_probe("unit")
            assert "JSON cannot carry (NaN, infinity" in await ask_probe("company")
            assert await ask_probe("case") == "case could not be answered now; try again"
        finally:
            await broker.stop()
            await engine.dispose()
    by_event = {line["event"]: line for line in logs}
    assert by_event["query.answer_too_large"]["size"] > nc.max_payload
    assert by_event["query.answer_not_json"]["log_level"] == "error"
    assert "the database went away" in by_event["query.failed"]["error"]
