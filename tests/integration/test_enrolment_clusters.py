"""Enrolment on the real server, between clusters and producers: each cluster keeps its own
view of a company, and only a cluster's staff tools may publish what enrolment consumes."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import query, wait_until_rows
from support import SIRENS, application, events_of, publish, registration, wait_for

from envol_enrolment.bootstrap import bootstrap
from envol_enrolment.catalogue import Catalogue
from envol_shared.contracts import enrolment as ev
from envol_shared.queries import query_subject

AV, PG = "aerospace-valley", "pegase"
BANK = "banque-garonne"  # a partner bank of Aerospace Valley: no staff tool
AV_CONTACT = {"name": "Claire Martin", "email": "claire.martin@example.fr"}
PG_CONTACT = {"name": "Paul Durand", "email": "paul.durand@example.fr"}


async def ask(nc, cluster: str, name: str, request: dict) -> dict:
    reply = await nc.request(query_subject(cluster, "enrolment", name), json.dumps(request).encode(),
                             timeout=5)
    return json.loads(reply.data)


async def statuses(database_url: str) -> dict[str, str]:
    return dict(await query(database_url, "select id, status from applications"))


async def rejections(nc, cluster: str, producer: str) -> list[dict]:
    return [e["data"] for e in await events_of(nc, f"envol.{cluster}.{producer}.event.rejected")]


async def test_a_cluster_changes_only_its_own_view_of_a_company(nc, start_service, database_url):
    await start_service()
    siren = SIRENS[9]
    await publish(nc, ev.CompanyRegistered(**registration(siren, contact=AV_CONTACT)), company=siren)
    await publish(nc, ev.ApplicationSubmitted(**application("av-club-1", siren)), company=siren)
    # Pégase registers the same SIREN as its own member: another name, figures of a large
    # group, its own contact.
    await publish(nc, ev.CompanyRegistered(**registration(
        siren, cluster=PG, legal_name="Renamed by Pégase", region="Provence-Alpes-Côte d'Azur",
        staff=900, turnover_eur=400_000_000, balance_eur=300_000_000, contact=PG_CONTACT)),
        company=siren, cluster=PG)
    # Aerospace Valley goes on with its view: an SME, eligible, enrolled under its own name.
    await publish(nc, ev.ApplicationReviewed(application_id="av-club-1", decision="accept",
                                             reviewer="av-staff-1", reason="fits the club"), company=siren)
    await publish(nc, ev.ApplicationSubmitted(**application("av-coach-1", siren, "AV-FIN-COACHING")),
                  company=siren)
    # Pégase decides on its own view: not an SME.
    await publish(nc, ev.ApplicationSubmitted(**application("pg-growth-1", siren, "PG-GROWTH-CONTRACT")),
                  company=siren, cluster=PG)
    await wait_until_rows(database_url, "select count(*) from inbox", 6)

    assert await statuses(database_url) == {"av-club-1": "enrolled", "av-coach-1": "eligible",
                                            "pg-growth-1": "ineligible"}
    av = await ask(nc, AV, "company", {"company_id": siren})
    shown = ("legal_name", "region", "clusters", "sme_category", "staff_awu")
    assert {k: av["company"][k] for k in shown} == {
        "legal_name": f"Company {siren}", "region": "Occitanie", "clusters": [AV], "sme_category": "small",
        "staff_awu": 42}
    assert [a["application_id"] for a in av["applications"]] == ["av-club-1", "av-coach-1"]
    pg = await ask(nc, PG, "company", {"company_id": siren})
    assert {k: pg["company"][k] for k in ("legal_name", "clusters", "sme_category")} == {
        "legal_name": "Renamed by Pégase", "clusters": [PG], "sme_category": "not_sme"}
    assert [a["application_id"] for a in pg["applications"]] == ["pg-growth-1"]

    # Each cluster keeps the contact it gave.
    views = await query(database_url, "select cluster, legal_name, cast(contact as text) from companies "
                                      "order by cluster")
    assert [(c, name) for c, name, _ in views] == [(AV, f"Company {siren}"), (PG, "Renamed by Pégase")]
    assert AV_CONTACT["email"] in views[0][2] and PG_CONTACT["email"] in views[1][2]

    published = await events_of(nc)
    enrolled = [e for e in published if e["type"] == "envol.application.enrolled.v1"]
    assert [e["data"]["legal_name"] for e in enrolled] == [f"Company {siren}"]
    assessed = {e["cluster"]: e["data"]["sme_category"] for e in published
                if e["type"] == "envol.company.assessed.v1"}
    assert assessed == {AV: "small", PG: "not_sme"}


async def test_a_cluster_applies_only_for_companies_it_registered(nc, start_service, database_url):
    await start_service()
    siren = SIRENS[10]
    # Aerospace Valley declares the company a member of Pégase too: that is not Pégase's registration.
    await publish(nc, ev.CompanyRegistered(**registration(siren, clusters=[AV, PG])), company=siren)
    await publish(nc, ev.ApplicationSubmitted(**application("pg-growth-2", siren, "PG-GROWTH-CONTRACT")),
                  company=siren, cluster=PG)
    await wait_until_rows(database_url, "select count(*) from inbox", 2)
    [refused] = await wait_for(lambda: rejections(nc, PG, "staff"))
    assert refused["reason"] == (f"unknown company {siren} in pegase: register it (company.registered) "
                                 "before it applies")
    assert await ask(nc, PG, "company", {"company_id": siren}) == {
        "error": f"unknown company {siren} in pegase"}
    assert (await ask(nc, AV, "company", {"company_id": siren}))["company"]["clusters"] == [AV, PG]


async def test_staff_events_from_a_producer_that_is_not_staff_are_refused(nc, start_service, database_url):
    await start_service()
    siren = SIRENS[11]
    await publish(nc, ev.CompanyRegistered(**registration(siren)), company=siren)
    await publish(nc, ev.ApplicationSubmitted(**application("av-club-2", siren)), company=siren)
    from_the_bank = [
        ev.CompanyRegistered(**registration(siren, legal_name="Renamed by a bank", staff=900)),
        ev.ApplicationSubmitted(**application("av-coach-2", siren, "AV-FIN-COACHING")),
        ev.ApplicationReviewed(application_id="av-club-2", decision="accept", reviewer="bg-1", reason="ok"),
        ev.ParticipationStarted(application_id="av-club-2", by="bg-1"),
        ev.ParticipationFinished(application_id="av-club-2", by="bg-1"),
        ev.WithdrawalRequested(application_id="av-club-2", by="bg-1", reason="the bank says so"),
    ]
    for data in from_the_bank:
        await publish(nc, data, company=siren, producer=BANK)
    await wait_until_rows(database_url, "select count(*) from inbox", 2 + len(from_the_bank))

    refused = await wait_for(lambda: _at_least(rejections(nc, AV, BANK), len(from_the_bank)))
    assert sorted(r["rejected_type"] for r in refused) == sorted(d.type for d in from_the_bank)
    for rejection in refused:
        assert rejection["reason"] == (f"{BANK} is not a staff tool of aerospace-valley (its staff tools: "
                                       f"staff): only its staff may publish {rejection['rejected_type']}")
        assert rejection["dead_lettered"] is False
    # Nothing changed.
    assert await statuses(database_url) == {"av-club-2": "eligible"}
    assert await query(database_url, "select legal_name, staff_awu from companies") == [
        (f"Company {siren}", 42)]


async def test_the_staff_tools_are_those_the_catalogue_names(nc, start_service, database_url,
                                                              tmp_path: Path):
    (tmp_path / "pegase.toml").write_text("""
cluster = "pegase"
name = "Pégase"
staff = ["pg-crm"]

[[programmes]]
code = "PG-ONE"
title = "One programme"
kind = "financing"
capacity = 2
opens_on = 2026-01-01
rules = ["sme"]
""")
    await start_service(definition=bootstrap(Catalogue.load(tmp_path)))
    siren = SIRENS[0]
    registered = ev.CompanyRegistered(**registration(siren, cluster=PG))
    await publish(nc, registered, company=siren, cluster=PG, producer="staff")
    await publish(nc, registered, company=siren, cluster=PG, producer="pg-crm")
    await wait_until_rows(database_url, "select count(*) from inbox", 2)
    [refused] = await wait_for(lambda: rejections(nc, PG, "staff"))
    assert refused["reason"].startswith("staff is not a staff tool of pegase (its staff tools: pg-crm)")
    assert await query(database_url, "select cluster, siren from companies") == [(PG, siren)]


async def _at_least(awaitable, count: int):  # type: ignore[no-untyped-def]
    found = await awaitable
    return found if len(found) >= count else None
