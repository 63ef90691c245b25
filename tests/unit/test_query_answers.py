"""The catalogue's answer schemas say what the queries really answer.

Each service's queries run here on a SQLite database the domain has filled (a loan granted
and disbursed, an SME placed and one waiting, reminders to come...), and every answer, turned
into JSON as the services send it, must match the schema the catalogue publishes: no field
more (every schema forbids unknown fields), none missing, each of its type. A change to an
answer in a service's queries.py must be made in docs/generate/answers.py too.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from pydantic import BaseModel
from pydantic_core import to_jsonable_python
from sqlalchemy import MetaData
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from docs.generate.answers import ANSWERS, ErrorAnswer
from docs.generate.schemas import model_schema
from envol_enrolment import orm as enrolment_orm
from envol_enrolment import queries as enrolment_queries
from envol_enrolment.domain.model import Application, Company, Status
from envol_enrolment.domain.sme import SmeCategory
from envol_export import orm as export_orm
from envol_export import queries as export_queries
from envol_export.domain.model import (
    ExportCheckpoint,
    ExportContract,
    ExportSupport,
    SupportKind,
    SupportUnit,
    UnitKind,
)
from envol_financing import orm as financing_orm
from envol_financing import queries as financing_queries
from envol_financing.domain.model import CaseKind, Checkpoint, FinancingCase, Requirement
from envol_outcomes import orm as outcomes_orm
from envol_outcomes import queries as outcomes_queries
from envol_outcomes.domain.model import Journey
from envol_shared import event_log
from envol_shared.database import create_engine, sqlite_url
from envol_shared.event_log import Timers
from envol_shared.queries import QueryError

AV, SIREN, OTHER = "aerospace-valley", "732829320", "552032534"
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def as_sent(answer: dict[str, Any]) -> Any:
    """The answer as the asker reads it: JSON, encoded the way the services encode it."""
    return json.loads(json.dumps(answer, default=to_jsonable_python, allow_nan=False))


def check(answer: dict[str, Any], model: type[BaseModel]) -> None:
    sent = as_sent(answer)
    jsonschema.Draft202012Validator(model_schema(model)).validate(sent)
    model.model_validate(sent)  # and the model itself reads it back


async def database(tmp_path: Path, *metadata: MetaData) -> AsyncEngine:
    engine = create_engine(sqlite_url(tmp_path / "service.sqlite"))
    async with engine.begin() as conn:
        for tables in (event_log.metadata, *metadata):
            await conn.run_sync(tables.create_all)
    return engine


@pytest.fixture
async def sessions(tmp_path: Path) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    for orm in (enrolment_orm, financing_orm, export_orm, outcomes_orm):
        orm.start_mappers()
    engine = await database(tmp_path, enrolment_orm.metadata, financing_orm.metadata, export_orm.metadata,
                            outcomes_orm.metadata)
    yield async_sessionmaker(engine, expire_on_commit=False)
    await engine.dispose()


async def test_every_query_of_every_service_has_an_answer_model() -> None:
    queries = {"enrolment": enrolment_queries.QUERIES, "financing": financing_queries.QUERIES,
               "export": export_queries.QUERIES, "outcomes": outcomes_queries.QUERIES}
    assert {service: sorted(q) for service, q in queries.items()} == \
        {service: sorted(answers) for service, answers in ANSWERS.items()}


async def test_enrolment_answers(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with sessions() as session:
        company = Company(cluster=AV, siren=SIREN, legal_name="Figeac Usinage Composites", region="Occitanie",
                          clusters=[AV], staff_awu=38.5, turnover_cents=640_000_000,
                          balance_sheet_cents=410_000_000, accounts_year=2025, siret="73282932000074",
                          sme_category=SmeCategory.SMALL, sme_accounts_year=2025)
        application = Application(id="av-2026-0142", siren=SIREN, programme="AV-RD-LOAN", cluster=AV,
                                  cohort="AV-RD-LOAN-2026", applied_on=date(2026, 3, 2), submitted_at=T0,
                                  correlation_id="journey-1")
        for step, status in enumerate((Status.APPLIED, Status.ELIGIBLE, Status.ENROLLED)):
            application.move_to(status, at=T0 + timedelta(hours=step), by="enrolment", reasons=["why"])
        session.add_all([company, application])
        await session.commit()

    queries = enrolment_queries
    async with sessions() as session:
        check(await queries.application_state(queries.ApplicationRequest(application_id="av-2026-0142"), AV,
                                              session), ANSWERS["enrolment"]["application"])
        check(await queries.company_state(queries.CompanyRequest(company_id="732 829 320"), AV, session),
              ANSWERS["enrolment"]["company"])
        with pytest.raises(QueryError):  # answered {"error": ...}
            await queries.application_state(queries.ApplicationRequest(application_id="av-2026-0142"),
                                            "pegase", session)


def loan(case_id: str = "av-2026-0142") -> FinancingCase:
    """An R&D loan granted in two tranches, the first disbursed, with a requirement and checkpoints."""
    case = FinancingCase.open(id=case_id, siren=SIREN, cluster=AV, programme="AV-RD-LOAN",
                              cohort="AV-RD-LOAN-2026", kind=CaseKind.RD_LOAN, correlation_id="journey-1",
                              enrolled_at=T0, at=T0, partner=None)
    bank = "banque-garonne"
    case.assign(partner=bank, requested_cents=50_000_000, at=T0, by="av-staff-01")
    case.loan_received(bank_reference="bg-1", received_on=date(2026, 3, 9), at=T0, by=bank)
    case.loan_decided(granted=True, decided_on=date(2026, 4, 20), reason="sound", awarded_cents=45_000_000,
                      terms={"rate_bps": 250, "duration_months": 60, "tranches_planned": 2},
                      at=T0 + timedelta(days=49), by=bank)
    case.disburse(tranche=1, amount_cents=25_000_000, disbursed_on=date(2026, 5, 4),
                  at=T0 + timedelta(days=63), by=bank)
    case.add_requirement(Requirement(case_id=case_id, requirement_id="report-1", kind="report",
                                     title="R&D progress report", due_on=date(2026, 9, 30),
                                     owner="av-staff-01", gates_tranche=2), at=T0, by="av-staff-01")
    for name, raised in (("baseline", 20_000_000), ("month_6", 70_000_000)):
        case.record_checkpoint(Checkpoint(case_id=case_id, name=name, recorded_on=date(2026, 3, 20),
                                          raised_to_date_cents=raised), at=T0, by="av-staff-01")
    return case


async def test_financing_answers(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with sessions() as session:
        session.add_all([loan(), loan("av-2026-0143")])  # the same SME, twice
        timers = Timers(session)
        timers.schedule("av-2026-0142:requirement:report-1", "requirement", T0 + timedelta(days=200),
                        {"case_id": "av-2026-0142", "requirement_id": "report-1", "step": "due_soon"})
        timers.schedule("av-2026-0142:checkpoint:month_12", "checkpoint", T0 + timedelta(days=365),
                        {"case_id": "av-2026-0142", "checkpoint": "month_12", "step": "remind"})
        timers.schedule("av-2026-0142:stale", "case_stale", T0 + timedelta(days=30),
                        {"case_id": "av-2026-0142", "step": "remind"})
        await session.flush()
        await timers.flush()
        await session.commit()

    queries, answers = financing_queries, ANSWERS["financing"]
    async with sessions() as session:
        case = await queries.case_state(queries.CaseRequest(case_id="av-2026-0142"), AV, session)
        assert len(case["case"]["follow_up"]) == 3 and case["case"]["tranches"]  # every list has lines
        check(case, answers["case"])
        check(await queries.company_cases(queries.CompanyRequest(company_id=SIREN), AV, session),
              answers["company"])
        figures = await queries.figures(queries.FiguresRequest(), AV, session)
        # One SME with two cases: counted once, its amounts added up.
        for counted in (figures["figures"][0], figures["totals"]):
            assert (counted["smes_supported"], counted["cases_opened"], counted["awarded_cents"]) == (
                1, 2, 90_000_000)
            assert counted["checkpoints"]["month_6"] == {
                "recorded": 1, "raised_since_baseline_cents": 100_000_000,
                "median_raised_since_baseline_cents": 100_000_000}
        check(figures, answers["figures"])


def unit(capacity: int = 1) -> SupportUnit:
    return SupportUnit(id="av-vie-cn-2026", cluster=AV, programme="AV-VIE-RELAY", kind=UnitKind.RELAY_MISSION,
                       country="CN", partner="vie-relay-cn", capacity=capacity, starts_on=date(2026, 1, 5),
                       ends_on=date(2027, 12, 31), opened_at=T0, origin="configuration",
                       host_siren="383474814", host_company="Airbus (Tianjin)", volunteer_id="vie-av-cn-01")


def support(support_id: str, siren: str) -> ExportSupport:
    return ExportSupport.open(id=support_id, siren=siren, cluster=AV, programme="AV-VIE-RELAY",
                              cohort="AV-VIE-RELAY-2026", kind=SupportKind.VIE_RELAY, target_country="CN",
                              correlation_id=f"journey-{support_id}", enrolled_at=T0, at=T0)


async def test_export_answers(sessions: async_sessionmaker[AsyncSession]) -> None:
    mission = unit()
    mission.opened(at=T0, by="configuration")
    served, waiting = support("av-2026-0201", SIREN), support("av-2026-0202", OTHER)
    at = T0 + timedelta(days=20)
    served.wait(at=T0, by="export", why="no place yet")
    served.assign(mission, at=at, by="export", why="place freed")
    waiting.wait(at=at, by="export", why="every mission in CN is full")
    served.report_lead(lead_id="comac", country="CN", buyer="COMAC", on=at.date(), estimated_cents=None,
                       at=at, by="vie-relay-cn")
    contract = ExportContract(support_id=served.id, contract_id="c-1", country="CN", buyer="COMAC",
                              amount_cents=45_000_000, signed_on=at.date(), reported_by="vie-relay-cn")
    served.sign_contract(contract, at=at, by="vie-relay-cn", by_staff=False, ceiling_cents=5_000_000_000)
    for name, countries in (("baseline", ["BE"]), ("month_6", ["BE", "CN"])):
        served.record_checkpoint(ExportCheckpoint(support_id=served.id, name=name, recorded_on=at.date(),
                                                  export_turnover_cents=1_000, countries_served=countries,
                                                  contracts_to_date=1), at=at, by="staff")
    async with sessions() as session:
        session.add(mission)
        await session.flush()  # the supports refer to it
        session.add_all([served, waiting])
        timers = Timers(session)
        timers.schedule("av-2026-0201:checkpoint:month_12", "checkpoint", T0 + timedelta(days=365),
                        {"support_id": served.id, "checkpoint": "month_12", "step": "remind"})
        await session.flush()
        await timers.flush()
        await session.commit()

    queries, answers = export_queries, ANSWERS["export"]
    async with sessions() as session:
        check(await queries.support_state(queries.SupportRequest(support_id=served.id), AV, session),
              answers["support"])
        check(await queries.company_supports(queries.CompanyRequest(company_id=SIREN), AV, session),
              answers["company"])
        detail = await queries.unit_state(queries.UnitRequest(unit_id=mission.id), AV, session)
        assert detail["unit"]["smes"] and detail["unit"]["waiting"] and detail["unit"]["history"]
        check(detail, answers["unit"])
        check(await queries.units_state(queries.UnitsRequest(), AV, session), answers["units"])
        figures = await queries.figures(queries.FiguresRequest(country="CN"), AV, session)
        assert figures["totals"]["smes_supported"] == 2 and figures["all"] == figures["totals"]
        check(figures, answers["figures"])


async def test_outcomes_answers(sessions: async_sessionmaker[AsyncSession]) -> None:
    enrolled = Journey.start(id="av-2025-0142", cluster=AV, siren=SIREN, programme="AV-RD-LOAN",
                             kind="financing", cohort="AV-RD-LOAN-2025")
    waitlisted = Journey.start(id="av-2025-0150", cluster=AV, siren=OTHER, programme="AV-RD-LOAN",
                               kind="financing", cohort="AV-RD-LOAN-2025")
    start = datetime(2025, 3, 2, 9, 0, tzinfo=UTC)
    for journey, last in ((enrolled, "enrolled"), (waitlisted, "waitlisted")):
        for step, status in enumerate(("applied", "eligible", last)):
            journey.reach(status, start + timedelta(days=step))
    enrolled.obtained(45_000_000, start + timedelta(days=90))
    for journey, comparison in ((enrolled, False), (waitlisted, True)):
        journey.record_checkpoint("baseline", "2025-03-05", 0, comparison=comparison)
        journey.record_checkpoint("month_6", "2025-09-05", 10_000_000, comparison=comparison)
    async with sessions() as session:
        session.add_all([enrolled, waitlisted])
        await session.commit()

    queries, answers = outcomes_queries, ANSWERS["outcomes"]
    async with sessions() as session:
        request = queries.ReportRequest.model_validate({"from": "2025-01-01"})
        report = await queries.report(request, AV, session)
        cohort = report["programmes"][0]["cohorts"][0]
        assert (cohort["participants"], cohort["comparison"]) == (1, 1)
        assert cohort["money"]["total_cents"] == 45_000_000
        check(report, answers["report"])
        company = await queries.company(queries.CompanyRequest(company_id=SIREN), AV, session)
        check(company, answers["company"])


def test_an_error_answer_is_described() -> None:
    check({"error": "unknown case av-2026-9999 in aerospace-valley"}, ErrorAnswer)
    with pytest.raises(jsonschema.ValidationError):
        check({"error": "…", "detail": "a field no answer has"}, ErrorAnswer)
