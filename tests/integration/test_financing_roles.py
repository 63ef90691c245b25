"""The financing service refuses a partner's fact that its kind of partner does not publish,
even on a case it serves, and a partner of one cluster publishing in another: what NATS
permissions forbid, the service refuses too (a stack may run without them)."""

from __future__ import annotations

import pytest
from conftest import query, wait_until_rows
from support import SIRENS, enrolment_outcome, events_of, publish, wait_for

from envol_financing.bootstrap import bootstrap
from envol_shared.contracts import financing as fe

AV, PG = "aerospace-valley", "pegase"
BANK, COACH = "banque-garonne", "finance-coach-toulouse"


@pytest.fixture
async def financing(start_service):  # type: ignore[no-untyped-def]
    return await start_service(definition=bootstrap())


async def enrol(nc, case_id: str, siren: str, programme: str, cluster: str = AV) -> None:
    await publish(nc, enrolment_outcome("enrolled", case_id, siren, programme=programme, cluster=cluster),
                  company=siren, cluster=cluster, producer="enrolment")


async def reasons(nc, cluster: str, producer: str) -> list[str]:
    return [e["data"]["reason"] for e in await events_of(nc, f"envol.{cluster}.{producer}.event.rejected")]


async def test_a_partner_may_publish_only_the_facts_of_its_kind(nc, financing, database_url):
    loan_siren, coaching_siren, growth_siren = SIRENS[0], SIRENS[1], SIRENS[2]
    await enrol(nc, "av-loan-r", loan_siren, "AV-RD-LOAN")
    await enrol(nc, "av-coach-r", coaching_siren, "AV-FIN-COACHING")
    await enrol(nc, "pg-growth-r", growth_siren, "PG-GROWTH-CONTRACT", cluster=PG)
    await publish(nc, fe.CaseAssigned(case_id="av-loan-r", partner=BANK, requested_cents=30_000_000,
                                      by="av-staff-1"), company=loan_siren)
    await publish(nc, fe.CaseAssigned(case_id="av-coach-r", partner=COACH, by="av-staff-1"),
                  company=coaching_siren)
    await wait_until_rows(database_url, "select count(*) from inbox", 5)
    cases = "select id, stage, partner from financing_cases order by id"
    facts = "select case_id, fact from case_history order by id"
    before = (await query(database_url, cases), await query(database_url, facts))

    # The bank serves the loan case, the coach the coaching case: each reports what is not its kind's.
    await publish(nc, fe.InvestorIntroduced(case_id="av-loan-r", investor="Garonne Ventures",
                                            introduced_on="2026-04-01"), company=loan_siren, producer=BANK)
    await publish(nc, fe.LoanRequestReceived(case_id="av-coach-r", bank_reference="x",
                                             received_on="2026-04-01"),
                  company=coaching_siren, producer=COACH)
    # Aerospace Valley's bank in Pégase's namespace, about a Pégase case.
    await publish(nc, fe.LoanRequestReceived(case_id="pg-growth-r", bank_reference="x",
                                             received_on="2026-04-01"),
                  company=growth_siren, cluster=PG, producer=BANK)
    await wait_until_rows(database_url, "select count(*) from inbox", 8)

    assert await wait_for(lambda: reasons(nc, AV, BANK)) == [
        f"{BANK} is a partner of aerospace-valley of kind bank, which publishes loan.request.received, "
        "loan.decided, loan.tranche.disbursed, not club.introduction.made"]
    assert await wait_for(lambda: reasons(nc, AV, COACH)) == [
        f"{COACH} is a partner of aerospace-valley of kind coach, which publishes coaching.session.held, "
        "coaching.deliverable.delivered, not loan.request.received"]
    assert await wait_for(lambda: reasons(nc, PG, BANK)) == [f"{BANK} is not a financing partner of pegase"]
    assert (await query(database_url, cases), await query(database_url, facts)) == before
