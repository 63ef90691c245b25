"""State round-trips: every fact a service accepts, read back from the database in a new
session, gives exactly the state its handler decided.

For each service, a scenario takes every event type the service consumes through its real
handler, with a real unit of work on a freshly migrated database, each event in a transaction
of its own. Just before each commit, the domain objects in the session are copied as the
handler left them; after it, a new unit of work reads them back, and the two must agree field
by field. State a handler changes but the mapping does not write (a JSON value edited in
place, say) fails here, whatever the fact and whatever the service.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine
from support import SIRENS, application, enrolment_outcome, registration

from envol_enrolment.bootstrap import bootstrap as enrolment_service
from envol_enrolment.catalogue import Catalogue
from envol_export.bootstrap import bootstrap as export_service
from envol_financing.bootstrap import bootstrap as financing_service
from envol_financing.domain.model import CaseKind, FinancingCase
from envol_shared.consumer import Context, Rejected
from envol_shared.contracts import enrolment as ee
from envol_shared.contracts import export as xe
from envol_shared.contracts import financing as fe
from envol_shared.database import create_engine, migrate
from envol_shared.events import EventData, make_event, parse_event
from envol_shared.service import ServiceDefinition

AV, PG, AS = "aerospace-valley", "pegase", "astech"
ENROLLED = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # when enrolment enrolled the SMEs
FIRST_EVENT = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)  # each step one minute after the last
REPORTED_ON = date(2026, 10, 15)  # partners' facts: after the enrolment, before they are published


@dataclasses.dataclass(frozen=True)
class Step:
    """One event as it arrives: what, about which company, in which namespace."""

    event: EventData
    company: str
    cluster: str
    producer: str


# A domain object in the session: its class and primary key.
Key = tuple[type, tuple[Any, ...]]


def enrolment_says(status: str, application_id: str, siren: str, programme: str, cluster: str,
                   kind: str, **extra: Any) -> Step:
    """An application enrolled, withdrawn or completed, as enrolment publishes it."""
    event = enrolment_outcome(status, application_id, siren, programme=programme, cluster=cluster,
                              at=ENROLLED, kind=kind, **extra)
    return Step(event, siren, cluster, "enrolment")


# ---- the scenarios: every event type each service consumes, each accepted --------------------

ONE_PLACE_CATALOGUE = """
cluster = "pegase"
name = "Pégase"

[[programmes]]
code = "PG-ONE-PLACE"
title = "A programme with one place, so that the second SME waits and is promoted"
kind = "financing"
capacity = 1
opens_on = 2026-01-01
rules = ["sme", "cluster_member", "open_on_application_date", "one_live_application"]
"""


def enrolment_scenario(tmp_path: Path) -> tuple[ServiceDefinition, list[Step]]:
    (tmp_path / "pegase.toml").write_text(ONE_PLACE_CATALOGUE)
    first, second = SIRENS[0], SIRENS[1]

    def staff(event: EventData, siren: str) -> Step:
        return Step(event, siren, PG, "staff")

    def review(application_id: str) -> ee.ApplicationReviewed:
        return ee.ApplicationReviewed(application_id=application_id, decision="accept",
                                      reviewer="pg-staff-1", reason="good file")

    holding = {"holder": "Sud Angels", "holder_kind": "business_angel", "share_percent": 10}
    contact = {"name": "Camille Martin", "email": "camille.martin@example.com"}
    return enrolment_service(Catalogue.load(tmp_path)), [
        staff(ee.CompanyRegistered(**registration(first, cluster=PG, holdings=[holding],
                                                  contact=contact)), first),
        staff(ee.CompanyRegistered(**registration(second, cluster=PG)), second),
        # Registered again with new figures: the stored company is updated, JSON columns included.
        staff(ee.CompanyRegistered(**registration(first, cluster=PG, staff=45, contact=contact)), first),
        staff(ee.ApplicationSubmitted(**application("pg-1", first, "PG-ONE-PLACE")), first),
        staff(ee.ApplicationSubmitted(**application("pg-2", second, "PG-ONE-PLACE")), second),
        staff(review("pg-1"), first),  # enrolled
        staff(review("pg-2"), second),  # waitlisted: the programme is full
        staff(ee.WithdrawalRequested(application_id="pg-1", by="pg-staff-1", reason="moved away"),
              first),  # and pg-2 is promoted
        staff(ee.ParticipationStarted(application_id="pg-2", by="pg-staff-1"), second),
        staff(ee.ParticipationFinished(application_id="pg-2", by="pg-staff-1"), second),
    ]


def financing_scenario(tmp_path: Path) -> tuple[ServiceDefinition, list[Step]]:
    loan, club, coached = "av-loan-1", "av-club-1", "av-coach-1"
    growth, private = "pg-growth-1", "as-private-1"
    s_loan, s_club, s_coached, s_growth, s_private = SIRENS[:5]

    def staff(event: EventData, siren: str, cluster: str = AV) -> Step:
        return Step(event, siren, cluster, "staff")

    def bank(event: EventData) -> Step:
        return Step(event, s_loan, AV, "banque-garonne")

    def investors(event: EventData) -> Step:
        return Step(event, s_club, AV, "av-investors-club")  # the only club: it serves from the start

    def coach(event: EventData) -> Step:
        return Step(event, s_coached, AV, "finance-coach-toulouse")

    def tranche(number: int, cents: int) -> Step:
        return bank(fe.LoanTrancheDisbursed(case_id=loan, tranche=number, amount_cents=cents,
                                            disbursed_on=REPORTED_ON))

    return financing_service(), [
        # An R&D loan, granted and disbursed in two tranches, the second gated on a report.
        enrolment_says("enrolled", loan, s_loan, "AV-RD-LOAN", AV, "financing"),
        staff(fe.CaseAssigned(case_id=loan, partner="banque-garonne", requested_cents=50_000_000,
                              by="av-staff-1"), s_loan),
        staff(fe.RequirementAdded(case_id=loan, requirement_id="progress-report", kind="report",
                                  title="R&D progress report", due_on=date(2027, 1, 29),
                                  owner="av-staff-1", gates_tranche=2), s_loan),
        bank(fe.LoanRequestReceived(case_id=loan, bank_reference="bg-2026-117", received_on=REPORTED_ON)),
        bank(fe.LoanDecided(case_id=loan, decision="granted", decided_on=REPORTED_ON, reason="sound project",
                            awarded_cents=45_000_000, rate_bps=250, duration_months=60, tranches_planned=2)),
        tranche(1, 25_000_000),
        staff(fe.RequirementUpdated(case_id=loan, requirement_id="progress-report", status="complete",
                                    on=REPORTED_ON), s_loan),
        tranche(2, 20_000_000),
        staff(fe.CheckpointRecorded(case_id=loan, checkpoint="baseline", recorded_on=REPORTED_ON,
                                    raised_to_date_cents=45_000_000), s_loan),
        # The investors' club, up to a round closed after a pitch session held.
        enrolment_says("enrolled", club, s_club, "AV-INVESTORS-CLUB", AV, "financing"),
        investors(fe.InvestorIntroduced(case_id=club, investor="Garonne Ventures",
                                        introduced_on=REPORTED_ON)),
        investors(fe.PitchScheduled(case_id=club, session_id="pitch-2026-10", scheduled_on=REPORTED_ON)),
        investors(fe.PitchHeld(case_id=club, session_id="pitch-2026-10", held_on=REPORTED_ON,
                               investors_present=9)),
        investors(fe.InterestExpressed(case_id=club, investor="Garonne Ventures", expressed_on=REPORTED_ON,
                                       amount_cents=100_000_000)),
        investors(fe.RoundClosed(case_id=club, closed_on=REPORTED_ON, amount_raised_cents=120_000_000,
                                 investors=["Garonne Ventures"])),
        # Coaching, delivered, then the SME withdraws.
        enrolment_says("enrolled", coached, s_coached, "AV-FIN-COACHING", AV, "financing"),
        staff(fe.CaseAssigned(case_id=coached, partner="finance-coach-toulouse", by="av-staff-1"), s_coached),
        coach(fe.CoachingSessionHeld(case_id=coached, held_on=REPORTED_ON, topics=["financing plan"],
                                     hours=2.5)),
        coach(fe.DeliverableDelivered(case_id=coached, deliverable="financing_plan",
                                      delivered_on=REPORTED_ON)),
        enrolment_says("withdrawn", coached, s_coached, "AV-FIN-COACHING", AV, "financing"),
        # A growth contract and a review of one of its objectives.
        enrolment_says("enrolled", growth, s_growth, "PG-GROWTH-CONTRACT", PG, "financing"),
        staff(fe.GrowthContractSigned(
            case_id=growth, signed_on=REPORTED_ON, years=3,
            objectives=[{"objective_id": "export-40", "description": "40 % of turnover abroad"},
                        {"objective_id": "staff-60", "description": "60 employees"}],
            levers=[{"lever": "financing", "description": "equity round", "amount_cents": 150_000_000},
                    {"lever": "cci", "description": "export coaching"}]), s_growth, PG),
        staff(fe.GrowthMilestoneReviewed(case_id=growth, objective_id="export-40", reviewed_on=REPORTED_ON,
                                         outcome="on_track", note="two new countries"), s_growth, PG),
        # Private financing: an action, then money obtained, then the programme completed.
        enrolment_says("enrolled", private, s_private, "AS-PRIVATE-FINANCING", AS, "financing"),
        staff(fe.FinancingActionRecorded(case_id=private, action="introduction to two regional funds",
                                         on=REPORTED_ON, outcome="term sheet"), s_private, AS),
        staff(fe.FinancingActionRecorded(case_id=private, action="seed round", on=REPORTED_ON,
                                         amount_obtained_cents=60_000_000), s_private, AS),
        enrolment_says("completed", private, s_private, "AS-PRIVATE-FINANCING", AS, "financing"),
    ]


def export_scenario(tmp_path: Path) -> tuple[ServiceDefinition, list[Step]]:
    relayed, desked, cci = "av-vie-1", "pg-desk-1", "as-cci-1"
    s_relayed, s_desked, s_cci = SIRENS[:3]
    airbus = "383474814"  # lodges the shipped Germany mission, and the one staff open here

    def staff(event: EventData, siren: str, cluster: str = AV) -> Step:
        return Step(event, siren, cluster, "staff")

    def relay(event: EventData) -> Step:
        return Step(event, s_relayed, AV, "vie-relay-de")

    def desk(event: EventData) -> Step:
        return Step(event, s_desked, PG, "pg-comptoir-us")

    def chamber(event: EventData) -> Step:
        return Step(event, s_cci, AS, "cci-paris-idf")

    today = FIRST_EVENT.date()
    return export_service(), [
        # A VIE relay in Germany: leads, a meeting, a contract, a checkpoint; then its mission
        # ends, the SME moves to a new one, and withdraws.
        enrolment_says("enrolled", relayed, s_relayed, "AV-VIE-RELAY", AV, "export", target_country="DE"),
        relay(xe.LeadReported(support_id=relayed, lead_id="lead-1", country="DE", buyer="Lufthansa Technik",
                              reported_on=REPORTED_ON, estimated_cents=30_000_000)),
        relay(xe.LeadReported(support_id=relayed, lead_id="lead-2", country="DE", buyer="MTU Aero Engines",
                              reported_on=REPORTED_ON)),
        relay(xe.RelayMeetingHeld(support_id=relayed, country="DE", organisation="Lufthansa Technik",
                                  held_on=REPORTED_ON, lead_id="lead-1")),
        relay(xe.ContractSigned(support_id=relayed, contract_id="lh-2026-01", country="DE",
                                buyer="Lufthansa Technik", signed_on=REPORTED_ON, amount_cents=12_000_000)),
        staff(xe.CheckpointRecorded(support_id=relayed, checkpoint="baseline", recorded_on=REPORTED_ON,
                                    export_turnover_cents=80_000_000, countries_served=["DE", "BE"],
                                    contracts_to_date=1), s_relayed),
        staff(xe.MissionOpened(mission_id="av-vie-de-2027", programme="AV-VIE-RELAY", country="DE",
                               host_siren=airbus, host_company="Airbus (Finkenwerder plant, Hamburg)",
                               volunteer_id="vie-av-de-02", starts_on=today, ends_on=date(2027, 11, 1),
                               capacity=2, relay="vie-relay-de", by="av-staff-1"), airbus),
        staff(xe.MissionEnded(mission_id="av-vie-de-2026", ended_on=today, reason="volunteer called home",
                              by="av-staff-1"), airbus),
        enrolment_says("withdrawn", relayed, s_relayed, "AV-VIE-RELAY", AV, "export", target_country="DE"),
        # An export desk in the United States, up to a local set-up; then the programme completes.
        enrolment_says("enrolled", desked, s_desked, "PG-EXPORT-DESKS", PG, "export", target_country="US"),
        desk(xe.ProspectListDelivered(support_id=desked, list_id="pl-1", country="US", prospects=40,
                                      delivered_on=REPORTED_ON)),
        desk(xe.DeskMeetingArranged(support_id=desked, country="US", organisation="Textron Aviation",
                                    held_on=REPORTED_ON)),
        desk(xe.LocalSetupCompleted(support_id=desked, country="US", setup="office",
                                    completed_on=REPORTED_ON)),
        enrolment_says("completed", desked, s_desked, "PG-EXPORT-DESKS", PG, "export", target_country="US"),
        # A CCI cohort: a workshop (on its configured day), then the strategy.
        enrolment_says("enrolled", cci, s_cci, "AS-CCI-INTERNATIONAL", AS, "export"),
        chamber(xe.WorkshopAttended(support_id=cci, workshop_id="diagnostic", attended_on=date(2026, 3, 10),
                                    attendees=2)),
        chamber(xe.StrategyDelivered(support_id=cci, delivered_on=REPORTED_ON,
                                     priority_countries=["DE", "US"])),
    ]


SCENARIOS: dict[str, Callable[[Path], tuple[ServiceDefinition, list[Step]]]] = {
    "enrolment": enrolment_scenario,
    "financing": financing_scenario,
    "export": export_scenario,
}


# ---- the test --------------------------------------------------------------------------------


@pytest.mark.parametrize("service", sorted(SCENARIOS))
async def test_every_accepted_fact_reads_back_as_its_handler_decided(service: str, database_url: str,
                                                                      tmp_path: Path) -> None:
    definition, steps = SCENARIOS[service](tmp_path)
    covered = {type(step.event) for step in steps}
    uncovered = sorted(event.type for event in set(definition.handlers) - covered)
    assert not uncovered, f"the {service} scenario has no step for {uncovered}"
    assert covered <= set(definition.handlers), f"the {service} scenario sends what it does not consume"

    engine = create_engine(database_url)
    try:
        await migrate(engine, definition.migrations)
        if definition.on_start is not None:  # export's configured units
            await definition.on_start(lambda: definition.uow_factory(engine))
        read_back: dict[Key, dict[str, Any] | None] = {}  # each object as last read back
        for number, step in enumerate(steps):
            what = f"step {number} ({step.event.type})"
            decided = await _handle(definition, engine, step, FIRST_EVENT + timedelta(minutes=number), what)
            assert any(fields != read_back.get(key) for key, fields in decided.items()), (
                f"{what} changed nothing: it proves nothing here")
            read_back |= await _read_back(definition, engine, decided)
            for key, fields in decided.items():
                _assert_same(fields, read_back[key], f"{what}: {key[0].__name__} {key[1]}")
    finally:
        await engine.dispose()


async def _handle(definition: ServiceDefinition, engine: AsyncEngine, step: Step, at: datetime,
                  what: str) -> dict[Key, dict[str, Any]]:
    """Run the step's handler in its own transaction, as the consumer does; return the domain
    objects of the session as the handler left them, copied just before the commit."""
    subject, envelope = make_event(step.event, cluster=step.cluster, producer=step.producer,
                                   company=step.company, time=at)
    incoming = parse_event(envelope.to_bytes(), subject)
    async with definition.uow_factory(engine) as uow:
        await uow.prefetch([incoming])
        try:
            await definition.handlers[type(step.event)](incoming.data,
                                                        Context(incoming, uow, definition.name))
        except Rejected as exc:
            pytest.fail(f"{what} was refused: {exc.reason}")
        session = uow.session
        decided = {_key(item): dataclasses.asdict(item)  # a deep copy
                   for item in [*session.identity_map.values(), *session.new]
                   if dataclasses.is_dataclass(item) and None not in _key(item)[1]}
        await uow.commit()
    return decided


async def _read_back(definition: ServiceDefinition, engine: AsyncEngine,
                     keys: dict[Key, Any]) -> dict[Key, dict[str, Any] | None]:
    """The same objects, read in a new unit of work (nothing cached from the one that wrote)."""
    async with definition.uow_factory(engine) as uow:
        stored = {key: await uow.session.get(key[0], key[1]) for key in keys}
        return {key: dataclasses.asdict(item) if item is not None else None
                for key, item in stored.items()}


def _key(item: object) -> Key:
    # Objects numbered by the database on insert (history lines) have no key yet: they are
    # compared within the aggregate that holds them.
    return type(item), tuple(sa.inspect(item).mapper.primary_key_from_instance(item))


def _assert_same(decided: dict[str, Any], stored: dict[str, Any] | None, what: str) -> None:
    assert stored is not None, f"{what}: not in the database"
    differences = [f"  {name}: decided {value!r}\n{' ' * len(name)}    read back {stored.get(name)!r}"
                   for name, value in decided.items() if stored.get(name) != value]
    assert not differences, f"{what} does not read back as decided:\n" + "\n".join(differences)


# ---- the cases no accepted fact reaches today -------------------------------------------------


async def test_an_edit_deep_inside_a_json_value_alone_is_written(database_url: str) -> None:
    """Every fact also adds a history line, so the aggregate has something else to write. An
    edit inside a JSON value with nothing else to write must be written too, and must survive
    a query that reads the object again over what is in memory."""
    definition = financing_service()
    engine = create_engine(database_url)
    try:
        await migrate(engine, definition.migrations)
        async with definition.uow_factory(engine) as uow:
            case = FinancingCase.open(id="av-club-9", siren=SIRENS[0], cluster=AV,
                                      programme="AV-INVESTORS-CLUB", cohort="AV-INVESTORS-CLUB-2026",
                                      kind=CaseKind.INVESTORS_CLUB, correlation_id="journey-9",
                                      enrolled_at=ENROLLED, at=ENROLLED, partner="av-investors-club")
            case.details["pitch_sessions"] = {"pitch-1": {"held_on": None}}
            uow.session.add(case)
            await uow.commit()
        async with definition.uow_factory(engine) as uow:
            case = await uow.session.get_one(FinancingCase, "av-club-9")
            case.details["pitch_sessions"]["pitch-1"]["held_on"] = "2026-10-15"
            await uow.commit()  # nothing else changed
        async with definition.uow_factory(engine) as uow:
            case = await uow.session.get_one(FinancingCase, "av-club-9")
            case.details["pitch_sessions"]["pitch-1"]["investors_present"] = 9
            await uow.session.execute(sa.select(FinancingCase).execution_options(populate_existing=True))
            assert case.details["pitch_sessions"]["pitch-1"]["investors_present"] == 9, "overwritten"
            await uow.commit()
        async with definition.uow_factory(engine) as uow:
            case = await uow.session.get_one(FinancingCase, "av-club-9")
            assert case.details["pitch_sessions"] == {
                "pitch-1": {"held_on": "2026-10-15", "investors_present": 9}}
    finally:
        await engine.dispose()
