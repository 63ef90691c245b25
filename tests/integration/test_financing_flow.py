"""The financing service on the real server: cases opened by enrolment (once), every partner
fact valid and invalid, duplicates, and queries."""

from __future__ import annotations

import json
from typing import Any

import pytest
from conftest import query, wait_until_rows
from support import (
    SIRENS,
    all_consumed,
    dead_letters,
    enrolment_outcome,
    events_of,
    new_id,
    publish,
    wait_for,
)

from envol_financing.bootstrap import bootstrap
from envol_shared.contracts import financing as fe
from envol_shared.queries import query_subject

AV = "aerospace-valley"
BANK = "banque-garonne"
OTHER_BANK = "credit-pyrenees"
CLUB = "av-investors-club"


@pytest.fixture
async def financing(start_service):  # type: ignore[no-untyped-def]
    return await start_service(definition=bootstrap())


async def enrol(nc, case_id: str, siren: str, programme: str = "AV-RD-LOAN", cluster: str = AV,
                **extra: Any) -> str:
    return await publish(nc, enrolment_outcome("enrolled", case_id, siren, programme=programme,
                                               cluster=cluster, **extra),
                         company=siren, cluster=cluster, producer="enrolment")


async def case_events(nc, case_id: str, type_suffix: str = "") -> list[dict]:
    return [e for e in await events_of(nc, "envol.*.financing.>")
            if e["data"].get("case_id") == case_id and e["type"].endswith(type_suffix)]


async def rejections(nc, producer: str) -> list[dict]:
    return [e["data"] for e in await events_of(nc, f"envol.*.{producer}.event.rejected")]


async def ask(nc, name: str, request: dict, cluster: str = AV) -> dict:
    reply = await nc.request(query_subject(cluster, "financing", name), json.dumps(request).encode(),
                             timeout=5)
    return json.loads(reply.data)


async def settled(database_url: str, count: int) -> None:
    """Wait until the service has taken `count` messages into account (its inbox)."""
    await wait_until_rows(database_url, "select count(*) from inbox", count)


async def test_enrolment_opens_one_case_even_when_delivered_twice(nc, financing, database_url):
    siren = SIRENS[0]
    event_id = await enrol(nc, "av-loan-1", siren)
    # The very same event again (a redelivery or a relay's second publication)...
    await publish(nc, enrolment_outcome("enrolled", "av-loan-1", siren), company=siren, producer="enrolment",
                  event_id=event_id)
    # ...and an export enrolment, which is not financing's business.
    await enrol(nc, "av-vie-1", siren, programme="AV-VIE-RELAY", kind="export", target_country="DE")
    await settled(database_url, 2)  # the copy has no inbox row of its own
    assert await query(database_url, "select id, kind, stage, partner from financing_cases") == [
        ("av-loan-1", "rd_loan", "opened", None)]  # three banks: staff choose one
    opened = await wait_for(lambda: case_events(nc, "av-loan-1", "case.opened.v1"))
    assert len(opened) == 1
    assert opened[0]["subject"] == siren and opened[0]["data"]["cohort"].startswith("AV-RD-LOAN-")
    inbox = dict(await query(database_url, "select outcome, count(*) from inbox group by outcome"))
    assert inbox == {"applied": 2}


async def test_an_rd_loan_granted_and_disbursed_in_two_tranches(nc, financing, database_url):
    siren, case = SIRENS[1], "av-loan-2"
    await enrol(nc, case, siren)
    await publish(nc, fe.CaseAssigned(case_id=case, partner=BANK, requested_cents=50_000_000,
                                      by="av-staff-1"), company=siren)
    await publish(nc, fe.RequirementAdded(case_id=case, requirement_id="progress-report",
                                          kind="report", title="R&D progress report",
                                          due_on="2027-01-29", owner="av-staff-1", gates_tranche=2),
                  company=siren)
    bank = {"company": siren, "producer": BANK}
    await publish(nc, fe.LoanRequestReceived(case_id=case, bank_reference="bg-2026-117",
                                             received_on="2026-04-01"), **bank)
    await publish(nc, fe.LoanDecided(case_id=case, decision="granted", decided_on="2026-04-20",
                                     reason="sound project", awarded_cents=45_000_000, rate_bps=250,
                                     duration_months=60, tranches_planned=2), **bank)
    await publish(nc, fe.LoanTrancheDisbursed(case_id=case, tranche=1, amount_cents=25_000_000,
                                              disbursed_on="2026-05-04"), **bank)
    # Gated on the report, still open: refused.
    await publish(nc, fe.LoanTrancheDisbursed(case_id=case, tranche=2, amount_cents=20_000_000,
                                              disbursed_on="2026-09-01"), **bank)
    await settled(database_url, 7)
    refused = await wait_for(lambda: rejections(nc, BANK))
    assert "tranche 2 of case av-loan-2 waits for requirement progress-report" in refused[0]["reason"]

    await publish(nc, fe.RequirementUpdated(case_id=case, requirement_id="progress-report",
                                            status="complete", on="2026-08-28"), company=siren)
    # More than the 200,000.00 € remaining: refused; then the right amount goes through.
    await publish(nc, fe.LoanTrancheDisbursed(case_id=case, tranche=2, amount_cents=20_000_001,
                                              disbursed_on="2026-09-01"), **bank)
    await publish(nc, fe.LoanTrancheDisbursed(case_id=case, tranche=2, amount_cents=20_000_000,
                                              disbursed_on="2026-09-01"), **bank)
    await settled(database_url, 10)
    row = (await query(database_url, "select stage, requested_cents, awarded_cents, disbursed_cents, "
                                     "succeeded from financing_cases"))[0]
    assert tuple(row) == ("disbursed", 50_000_000, 45_000_000, 45_000_000, True)
    refused = await wait_for(lambda: _at_least(rejections(nc, BANK), 2))
    assert "exceeds the 200,000.00 € remaining of the 450,000.00 € awarded" in refused[1]["reason"]
    progressed = await wait_for(lambda: _at_least(case_events(nc, case, "case.progressed.v1"), 7))
    assert [(e["data"]["fact"], e["data"]["stage"]) for e in progressed][-3:] == [
        ("loan.tranche.disbursed", "disbursing"), ("financing.requirement.updated", "disbursing"),
        ("loan.tranche.disbursed", "disbursed")]
    assert progressed[-1]["data"]["remaining_cents"] == 0
    # Every event of the case continues the company's journey, caused by what the partner sent.
    assert {e["correlationid"] for e in progressed} == {
        (await case_events(nc, case, "case.opened.v1"))[0]["correlationid"]}


async def _at_least(awaitable, count: int):  # type: ignore[no-untyped-def]
    found = await awaitable
    return found if len(found) >= count else None


async def test_invalid_partner_events_are_rejected_with_a_reason_and_change_nothing(nc, financing,
                                                                                    database_url):
    siren, case = SIRENS[2], "av-loan-3"
    await enrol(nc, case, siren)
    await publish(nc, fe.CaseAssigned(case_id=case, partner=BANK, requested_cents=30_000_000,
                                      by="av-staff-1"), company=siren)
    await settled(database_url, 2)
    before = await query(database_url, "select * from financing_cases")
    refusals = [
        # unknown case
        (BANK, fe.LoanRequestReceived(case_id="no-such-case", bank_reference="x", received_on="2026-04-01"),
         "unknown case no-such-case in aerospace-valley"),
        # wrong partner for this case
        (OTHER_BANK, fe.LoanRequestReceived(case_id=case, bank_reference="x", received_on="2026-04-01"),
         f"case {case} is served by {BANK}, not by {OTHER_BANK}"),
        # not a partner at all
        ("some-fund", fe.LoanRequestReceived(case_id=case, bank_reference="x", received_on="2026-04-01"),
         "some-fund is not a financing partner of aerospace-valley"),
        # impossible transition: a disbursement before a decision
        (BANK, fe.LoanTrancheDisbursed(case_id=case, tranche=1, amount_cents=100, disbursed_on="2026-04-02"),
         "no disbursement before the loan is granted"),
        # a partner publishing a staff fact
        (BANK, fe.RequirementAdded(case_id=case, requirement_id="r", kind="report", title="t",
                                   due_on="2027-01-01", owner="x"),
         f"{BANK} is not a staff tool of aerospace-valley"),
        # the club on a loan case
        (CLUB, fe.InvestorIntroduced(case_id=case, investor="Fund", introduced_on="2026-04-01"),
         f"case {case} is served by {BANK}, not by {CLUB}"),
        # staff assigning a coach to a loan case
        ("staff", fe.CaseAssigned(case_id=case, partner="finance-coach-toulouse", by="av-staff-1"),
         "finance-coach-toulouse is not a bank serving aerospace-valley"),
    ]
    for producer, data, _ in refusals:
        await publish(nc, data, company=siren, producer=producer)
    # An inconsistent amount: more awarded than requested (after a valid receipt).
    await publish(nc, fe.LoanRequestReceived(case_id=case, bank_reference="bg-1", received_on="2026-04-01"),
                  company=siren, producer=BANK)
    await publish(nc, fe.LoanDecided(case_id=case, decision="granted", decided_on="2026-04-20", reason="ok",
                                     awarded_cents=30_000_001, rate_bps=300, duration_months=48,
                                     tranches_planned=1), company=siren, producer=BANK)
    # The case's SIREN differs from the event's subject.
    await publish(nc, fe.LoanRequestReceived(case_id=case, bank_reference="x", received_on="2026-04-01"),
                  company=SIRENS[3], producer=BANK)
    await settled(database_url, 2 + len(refusals) + 3)
    reasons = []
    for producer in {p for p, _, _ in refusals}:
        reasons += [r["reason"] for r in await wait_for(lambda p=producer: rejections(nc, p))]
    for _, _, expected in refusals:
        assert any(expected in reason for reason in reasons), (expected, reasons)
    assert any("exceeds the 300,000.00 € requested" in r for r in reasons)
    assert any(f"case {case} is about company {siren}" in r for r in reasons)
    # Only the valid receipt changed the case.
    after = await query(database_url, "select stage, awarded_cents, partner from financing_cases")
    assert [tuple(r) for r in after] == [("received", 0, BANK)]
    assert len(before) == 1


async def test_a_partner_resending_the_same_event_id_changes_nothing(nc, financing, database_url):
    siren, case = SIRENS[4], "av-club-1"
    await enrol(nc, case, siren, programme="AV-INVESTORS-CLUB")
    event = fe.InvestorIntroduced(case_id=case, investor="Occitanie Seed Fund", introduced_on="2026-04-01")
    event_id = new_id()
    # Taken into account once; then sent twice more (later batches: the inbox, not the batch,
    # knows them), followed by a new fact about the company: once that one is applied, every
    # copy before it has been consumed.
    await publish(nc, event, company=siren, producer=CLUB, event_id=event_id)
    await settled(database_url, 2)
    for _ in range(2):
        await publish(nc, event, company=siren, producer=CLUB, event_id=event_id)
    await publish(nc, fe.InvestorIntroduced(case_id=case, investor="Toulouse Angels",
                                            introduced_on="2026-04-02"), company=siren, producer=CLUB)
    await wait_until_rows(database_url, "select count(*) from inbox", 3, within=20)
    assert await wait_for(lambda: all_consumed(nc, "financing"))
    progressed = await wait_for(lambda: _at_least(case_events(nc, case, "case.progressed.v1"), 2))
    assert len(progressed) == 2
    assert await rejections(nc, CLUB) == []
    assert await dead_letters(nc) == []
    history = await query(database_url, f"select fact from case_history where case_id = '{case}' order by id")
    assert [r[0] for r in history] == ["case.opened", "club.introduction.made", "club.introduction.made"]


async def test_investors_club_round_and_coaching_deliverable(nc, financing, database_url):
    club_siren, coach_siren = SIRENS[5], SIRENS[6]
    await enrol(nc, "av-club-2", club_siren, programme="AV-INVESTORS-CLUB")
    await enrol(nc, "av-coach-1", coach_siren, programme="AV-FIN-COACHING")
    club = {"company": club_siren, "producer": CLUB}
    await publish(nc, fe.InvestorIntroduced(case_id="av-club-2", investor="Garonne Ventures",
                                            introduced_on="2026-04-01"), **club)
    # Interest from an investor never introduced: refused.
    await publish(nc, fe.InterestExpressed(case_id="av-club-2", investor="Unknown Capital",
                                           expressed_on="2026-04-02"), **club)
    # A round before any pitch: refused.
    await publish(nc, fe.RoundClosed(case_id="av-club-2", closed_on="2026-04-03", amount_raised_cents=1,
                                     investors=["Garonne Ventures"]), **club)
    await publish(nc, fe.PitchScheduled(case_id="av-club-2", session_id="pitch-2026-05",
                                        scheduled_on="2026-05-12"), **club)
    await publish(nc, fe.PitchHeld(case_id="av-club-2", session_id="pitch-2026-05", held_on="2026-05-12",
                                   investors_present=9), **club)
    await publish(nc, fe.InterestExpressed(case_id="av-club-2", investor="Garonne Ventures",
                                           expressed_on="2026-05-20", amount_cents=80_000_000), **club)
    await publish(nc, fe.RoundClosed(case_id="av-club-2", closed_on="2026-07-10",
                                     amount_raised_cents=120_000_000,
                                     investors=["Garonne Ventures", "Sud Angels"]), **club)
    # Two coaches serve Aerospace Valley: staff assign one; the other is refused.
    await publish(nc, fe.CaseAssigned(case_id="av-coach-1", partner="finance-coach-toulouse",
                                      by="av-staff-1"), company=coach_siren)
    coach = {"company": coach_siren, "producer": "finance-coach-toulouse"}
    await publish(nc, fe.DeliverableDelivered(case_id="av-coach-1", deliverable="data_room",
                                              delivered_on="2026-04-01"), **coach)
    await publish(nc, fe.CoachingSessionHeld(case_id="av-coach-1", held_on="2026-04-02",
                                             topics=["financing plan", "valuation"], hours=3), **coach)
    await publish(nc, fe.DeliverableDelivered(case_id="av-coach-1", deliverable="financing_plan",
                                              delivered_on="2026-04-20"), **coach)
    await publish(nc, fe.CoachingSessionHeld(case_id="av-coach-1", held_on="2026-04-02", topics=["x"],
                                             hours=1), company=coach_siren, producer="finance-coach-bordeaux")
    await settled(database_url, 14)
    rows = {r[0]: tuple(r[1:]) for r in await query(
        database_url,
        "select id, stage, partner, awarded_cents, disbursed_cents, succeeded from financing_cases")}
    assert rows == {
        "av-club-2": ("round_closed", CLUB, 120_000_000, 120_000_000, True),
        "av-coach-1": ("delivered", "finance-coach-toulouse", 0, 0, True),
    }
    club_reasons = [r["reason"] for r in await wait_for(lambda: _at_least(rejections(nc, CLUB), 2))]
    assert "Unknown Capital was never introduced" in club_reasons[0]
    assert "no round before a pitch" in club_reasons[1]
    coach_reasons = [r["reason"] for r in await wait_for(lambda: rejections(nc, "finance-coach-toulouse"))]
    assert "no deliverable before a coaching session" in coach_reasons[0]
    other = await wait_for(lambda: rejections(nc, "finance-coach-bordeaux"))
    assert "served by finance-coach-toulouse, not by finance-coach-bordeaux" in other[0]["reason"]


async def test_withdrawal_closes_the_case_and_later_partner_facts_are_refused(nc, financing, database_url):
    siren, case = SIRENS[7], "av-club-3"
    await enrol(nc, case, siren, programme="AV-INVESTORS-CLUB")
    await publish(nc, enrolment_outcome("withdrawn", case, siren, programme="AV-INVESTORS-CLUB"),
                  company=siren, producer="enrolment")
    await publish(nc, fe.InvestorIntroduced(case_id=case, investor="Fund", introduced_on="2026-04-01"),
                  company=siren, producer=CLUB)
    # A withdrawal of an application that never had a case (withdrawn before enrolment): no effect.
    await publish(nc, enrolment_outcome("withdrawn", "never-enrolled", siren), company=siren,
                  producer="enrolment")
    await settled(database_url, 4)
    rows = await query(database_url, "select stage, closed_at is not null, succeeded, close_reason "
                                     "from financing_cases")
    assert [tuple(r) for r in rows] == [("opened", True, False, "enrolment withdrawn: test")]
    closed = await wait_for(lambda: case_events(nc, case, "case.closed.v1"))
    assert closed[0]["data"]["summary"] == "closed: enrolment withdrawn: test"
    refused = await wait_for(lambda: rejections(nc, CLUB))
    assert f"case {case} is closed" in refused[0]["reason"]
    # The "no news" timer stops with the case; the outcome checkpoints go on.
    timers = [r[0] for r in await query(database_url, "select key from timers order by key")]
    assert timers == [f"{case}:checkpoint:{name}" for name in ("baseline", "month_12", "month_24", "month_6")]


async def test_queries_answer_case_company_and_errors(nc, financing, database_url):
    siren, case = SIRENS[8], "av-loan-9"
    await enrol(nc, case, siren)
    await publish(nc, fe.CaseAssigned(case_id=case, partner=BANK, requested_cents=10_000_000,
                                      by="av-staff-1"), company=siren)
    await settled(database_url, 2)
    answer = await ask(nc, "case", {"case_id": case})
    state = answer["case"]
    assert (state["stage"], state["partner"], state["requested_cents"]) == ("requested", BANK, 10_000_000)
    assert [h["fact"] for h in state["history"]] == ["case.opened", "financing.case.assigned"]
    assert state["history"][1]["by"] == "av-staff-1"  # the staff member, not just "staff"
    assert {f["kind"] for f in state["follow_up"]} == {"case_stale", "checkpoint"}
    company = await ask(nc, "company", {"company_id": f"{siren[:3]} {siren[3:6]} {siren[6:]}"})
    assert [c["case_id"] for c in company["cases"]] == [case]
    assert await ask(nc, "case", {"case_id": case}, cluster="pegase") == {
        "error": f"unknown case {case} in pegase"}
    assert "invalid case request" in (await ask(nc, "case", {"id": case}))["error"]
    assert "no financing case for company" in (await ask(nc, "company", {"company_id": SIRENS[9]}))["error"]


async def test_an_unreadable_partner_event_is_dead_lettered_and_the_bank_told_why(nc, financing,
                                                                               database_url):
    siren, case = SIRENS[9], "av-loan-10"
    await enrol(nc, case, siren)
    event = {"specversion": "1.0", "id": "bank-evt-1", "source": "/banque-garonne/loans",
             "type": "envol.loan.decided.v1", "time": "2026-04-20T10:00:00+02:00", "subject": siren,
             "datacontenttype": "application/json", "cluster": AV, "correlationid": "bank-evt-1",
             # A grant without an amount nor terms: the schema refuses it.
             "data": {"case_id": case, "decision": "granted", "decided_on": "2026-04-20", "reason": "ok"}}
    await nc.jetstream().publish(f"envol.{AV}.{BANK}.loan.decided", json.dumps(event).encode())
    await settled(database_url, 2)
    refused = await wait_for(lambda: rejections(nc, BANK))
    assert refused[0]["dead_lettered"] is True and refused[0]["rejected_event_id"] == "bank-evt-1"
    assert "a granted loan needs awarded_cents" in refused[0]["reason"]
    letters = await wait_for(lambda: dead_letters(nc))
    assert letters[0].headers["Envol-Service"] == "financing"
    assert letters[0].subject == f"envol-dead-letter.financing.{AV}.{BANK}"
