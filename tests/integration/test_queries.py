"""Request/reply queries answered from the enrolment database, scoped to a cluster."""

from __future__ import annotations

import json

from conftest import wait_until_rows
from stdnum import luhn
from support import SIRENS, application, publish, registration

from envol_shared.contracts import enrolment as ev
from envol_shared.queries import query_subject

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
