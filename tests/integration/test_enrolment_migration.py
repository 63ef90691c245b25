"""Revision enrolment_0002 on both databases: the companies of revision 0001 (one row per
SIREN, shared by every cluster) become one view per cluster, and nothing is lost."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from conftest import query
from support import SIRENS

from envol_enrolment.bootstrap import MIGRATIONS as ENROLMENT_MIGRATIONS
from envol_shared.database import MIGRATIONS as SHARED_MIGRATIONS
from envol_shared.database import create_engine, migrate
from envol_shared.queries import query_subject

AV, PG, AS = "aerospace-valley", "pegase", "astech"
BOTH, OVERWRITTEN, ASTECH_ONLY = SIRENS[0], SIRENS[1], SIRENS[2]
AV_CONTACT = {"name": "Claire Martin", "email": "claire.martin@example.fr"}
PG_CONTACT = {"name": "Paul Durand", "email": "paul.durand@example.fr"}
AT = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)

# The tables as revision 0001 left them.
COMPANIES = sa.table(
    "companies", sa.column("siren"), sa.column("siret"), sa.column("legal_name"), sa.column("region"),
    sa.column("clusters", sa.JSON()), sa.column("staff_awu"), sa.column("turnover_cents"),
    sa.column("balance_sheet_cents"), sa.column("accounts_year"), sa.column("holdings", sa.JSON()),
    sa.column("contact", sa.JSON()), sa.column("sme_category"), sa.column("sme_accounts_year"))
APPLICATIONS = sa.table(
    "applications", sa.column("id"), sa.column("siren"), sa.column("programme"), sa.column("cluster"),
    sa.column("cohort"), sa.column("applied_on", sa.Date()), sa.column("submitted_at", sa.DateTime(True)),
    sa.column("correlation_id"), sa.column("status"), sa.column("status_since", sa.DateTime(True)))
HISTORY = sa.table(
    "status_history", sa.column("application_id"), sa.column("from_status"), sa.column("to_status"),
    sa.column("at", sa.DateTime(True)), sa.column("by"), sa.column("reasons", sa.JSON()))


def company(siren: str, clusters: list[str], name: str, contact: dict | None, staff: float = 42,
            category: str = "small") -> dict[str, Any]:
    return {"siren": siren, "siret": None, "legal_name": name, "region": "Occitanie", "clusters": clusters,
            "staff_awu": staff, "turnover_cents": 600_000_000, "balance_sheet_cents": 500_000_000,
            "accounts_year": 2025, "holdings": [], "contact": contact, "sme_category": category,
            "sme_accounts_year": 2025}


def application(app_id: str, siren: str, cluster: str, programme: str, status: str) -> dict[str, Any]:
    return {"id": app_id, "siren": siren, "programme": programme, "cluster": cluster,
            "cohort": f"{programme}-2026", "applied_on": date(2026, 3, 2), "submitted_at": AT,
            "correlation_id": f"journey-{app_id}", "status": status, "status_since": AT}


def history(app_id: str, *steps: str) -> list[dict[str, Any]]:
    return [{"application_id": app_id, "from_status": before, "to_status": after, "at": AT, "by": "staff",
             "reasons": [f"{before} to {after}"]}
            for before, after in zip((None, *steps), steps, strict=False)]


async def alembic(database_url: str, action: str, revision: str) -> None:
    config = Config()
    config.set_main_option("script_location", str(SHARED_MIGRATIONS))
    config.set_main_option("version_locations", f"{SHARED_MIGRATIONS / 'versions'} {ENROLMENT_MIGRATIONS}")
    config.set_main_option("path_separator", "space")

    def run(connection: sa.Connection) -> None:
        config.attributes["connection"] = connection
        getattr(command, action)(config, revision)

    engine = create_engine(database_url)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(run)
    finally:
        await engine.dispose()


async def execute(database_url: str, *statements: sa.Executable) -> None:
    engine = create_engine(database_url)
    try:
        async with engine.begin() as connection:
            for statement in statements:
                await connection.execute(statement)
    finally:
        await engine.dispose()


async def database_at_revision_0001(database_url: str) -> None:
    """Three companies as the old model kept them: one shared by two clusters, one whose
    Aerospace Valley registration Pégase overwrote (the bug), one of ASTech alone."""
    await alembic(database_url, "upgrade", "enrolment_0001")
    await execute(
        database_url,
        sa.insert(COMPANIES).values([
            company(BOTH, [AV, PG], "Shared SAS", AV_CONTACT),
            company(OVERWRITTEN, [PG], "Renamed by Pégase", PG_CONTACT, staff=900, category="not_sme"),
            company(ASTECH_ONLY, [AS], "Francilienne SAS", None),
        ]),
        sa.insert(APPLICATIONS).values([
            application("av-1", BOTH, AV, "AV-INVESTORS-CLUB", "enrolled"),
            application("pg-1", BOTH, PG, "PG-GROWTH-CONTRACT", "eligible"),
            application("av-2", OVERWRITTEN, AV, "AV-FIN-COACHING", "enrolled"),
        ]),
        sa.insert(HISTORY).values([*history("av-1", "applied", "eligible", "enrolled"),
                                   *history("pg-1", "applied", "eligible"),
                                   *history("av-2", "applied", "eligible", "enrolled")]),
    )


APPLICATION_ROWS = ("select id, siren, cluster, programme, status, applied_on, correlation_id "
                    "from applications")
HISTORY_ROWS = "select id, application_id, from_status, to_status from status_history order by id"


def contact_email(raw: Any) -> str | None:
    value = json.loads(raw) if isinstance(raw, str) else raw
    return value["email"] if value else None


async def views(database_url: str) -> dict[tuple[str, str], tuple[str, list[str], str | None]]:
    rows = await query(database_url, "select cluster, siren, legal_name, clusters, contact from companies")
    return {(cluster, siren): (name, json.loads(clusters) if isinstance(clusters, str) else clusters,
                               contact_email(contact))
            for cluster, siren, name, clusters, contact in rows}


async def test_each_company_row_becomes_the_view_of_each_of_its_clusters(nc, start_service, database_url):
    await database_at_revision_0001(database_url)
    applications = sorted(await query(database_url, APPLICATION_ROWS))
    status_history = await query(database_url, HISTORY_ROWS)

    engine = create_engine(database_url)
    try:
        await migrate(engine, ENROLMENT_MIGRATIONS)
    finally:
        await engine.dispose()

    assert await views(database_url) == {
        (AV, BOTH): ("Shared SAS", [AV, PG], AV_CONTACT["email"]),
        (PG, BOTH): ("Shared SAS", [AV, PG], AV_CONTACT["email"]),
        (PG, OVERWRITTEN): ("Renamed by Pégase", [PG], PG_CONTACT["email"]),
        # Its applications keep a company; Pégase's contact person stays Pégase's.
        (AV, OVERWRITTEN): ("Renamed by Pégase", [PG], None),
        (AS, ASTECH_ONLY): ("Francilienne SAS", [AS], None),
    }
    assert sorted(await query(database_url, APPLICATION_ROWS)) == applications
    assert await query(database_url, HISTORY_ROWS) == status_history
    # An application now needs its own cluster's view of the company.
    with pytest.raises(sa.exc.IntegrityError):
        await execute(database_url, sa.insert(APPLICATIONS).values(
            application("as-1", BOTH, AS, "AS-PRIVATE-FINANCING", "applied")))

    # The service runs on it: each cluster finds its own view and its own applications.
    await start_service()
    answers = {}
    for cluster, siren in ((AV, OVERWRITTEN), (PG, BOTH)):
        reply = await nc.request(query_subject(cluster, "enrolment", "company"),
                                 json.dumps({"company_id": siren}).encode(), timeout=5)
        answer = json.loads(reply.data)
        answers[cluster] = (answer["company"]["legal_name"],
                            [a["application_id"] for a in answer["applications"]])
    assert answers == {AV: ("Renamed by Pégase", ["av-2"]), PG: ("Shared SAS", ["pg-1"])}


async def test_downgrading_merges_the_views_of_a_siren(database_url):
    await database_at_revision_0001(database_url)
    applications = sorted(await query(database_url, APPLICATION_ROWS))
    await alembic(database_url, "upgrade", "enrolment_0002")

    await alembic(database_url, "downgrade", "enrolment_0001")

    rows = await query(database_url, "select siren, legal_name, clusters, contact from companies")
    merged = {siren: (name, json.loads(clusters) if isinstance(clusters, str) else clusters,
                      contact_email(contact)) for siren, name, clusters, contact in rows}
    assert merged == {
        BOTH: ("Shared SAS", [AV, PG], AV_CONTACT["email"]),
        # The view Pégase registered wins over the copy made for Aerospace Valley's applications.
        OVERWRITTEN: ("Renamed by Pégase", [AV, PG], PG_CONTACT["email"]),
        ASTECH_ONLY: ("Francilienne SAS", [AS], None),
    }
    assert sorted(await query(database_url, APPLICATION_ROWS)) == applications
    with pytest.raises(sa.exc.IntegrityError):
        await execute(database_url, sa.insert(APPLICATIONS).values(
            application("as-1", SIRENS[3], AS, "AS-PRIVATE-FINANCING", "applied")))
