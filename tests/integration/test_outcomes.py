"""The outcomes service on a real nats-server, on SQLite and PostgreSQL: the figures of a
hand-computed data set, the comparison group, and the boundaries of what it accepts.

The events below are those enrolment, financing, export and staff publish, with the
moments they happened (2025), so every figure can be computed by hand (see each assert)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from conftest import wait_until_rows
from support import SIRENS, events_of, publish

from envol_outcomes.bootstrap import bootstrap
from envol_shared.contracts import enrolment as ev
from envol_shared.contracts import export, financing, outcomes
from envol_shared.queries import query_subject

AV, PG = "aerospace-valley", "pegase"
LOANS, RELAY = "AV-RD-LOAN", "AV-VIE-RELAY"
A, B, C, D, E, F, G = SIRENS[:7]


def at(day: str) -> datetime:
    return datetime.fromisoformat(f"{day}T09:00:00+00:00")


class Story:
    """Publishes what the services and staff would, each under its own producer."""

    def __init__(self, nc: Any) -> None:
        self.nc = nc
        self.sent = 0

    async def send(self, data: Any, company: str, producer: str, when: datetime, cluster: str = AV) -> None:
        await publish(self.nc, data, company=company, cluster=cluster, producer=producer, time=when)
        self.sent += 1

    async def application(self, app_id: str, siren: str, steps: list[tuple[str, str]],
                          programme: str = LOANS, kind: str = "financing") -> None:
        previous = None
        for status, day in steps:
            cohort = f"{programme}-{steps[0][1][:4]}"
            await self.send(ev.TRANSITION_EVENTS[status](
                application_id=app_id, siren=siren, legal_name=f"Company {siren}", cluster=AV,
                programme=programme, programme_kind=kind, cohort=cohort, from_status=previous,
                to_status=status, at=at(day), by="enrolment", reasons=["test"],
                **({"target_country": "DE"} if kind == "export" else {})), siren, "enrolment", at(day))
            previous = status

    async def case(self, case_id: str, siren: str, day: str, awarded: int, disbursed: int = 0) -> None:
        await self.send(financing.CaseProgressed(
            case_id=case_id, siren=siren, cluster=AV, programme=LOANS, cohort=f"{LOANS}-2025",
            kind="rd_loan", stage="decided", partner="banque-garonne", at=at(day), by="banque-garonne",
            summary="loan", requested_cents=awarded, awarded_cents=awarded, disbursed_cents=disbursed,
            remaining_cents=awarded - disbursed, fact="loan.decided"), siren, "financing", at(day))

    async def support(self, support_id: str, siren: str, day: str, contracted: int, countries: list[str],
                      contracts: int) -> None:
        await self.send(export.SupportProgressed(
            support_id=support_id, siren=siren, cluster=AV, programme=RELAY, cohort=f"{RELAY}-2025",
            kind="vie_relay", target_country="DE", status="assigned", unit_id="av-vie-de", partner="relay",
            waiting_since=None, at=at(day), by="relay", summary="contract", leads=2, meetings=1,
            contracts=contracts, contracted_cents=contracted, contract_countries=countries,
            fact="export.contract.signed"), siren, "export", at(day))

    async def checkpoint(self, app_id: str, siren: str, name: str, day: str, cents: int, *,
                         comparison: bool = False, cluster: str = AV) -> None:
        if comparison:
            data: Any = outcomes.ComparisonCheckpointRecorded(
                application_id=app_id, checkpoint=name, recorded_on=day, value_cents=cents)
        else:
            data = financing.CheckpointRecorded(case_id=app_id, checkpoint=name, recorded_on=day,
                                                raised_to_date_cents=cents)
        await self.send(data, siren, "staff", at(day), cluster=cluster)


async def ask(nc: Any, name: str, request: dict, cluster: str = AV) -> dict:
    subject = query_subject(cluster, "outcomes", name)
    reply = await nc.request(subject, json.dumps(request).encode(), timeout=5)
    return json.loads(reply.data)


def cohort_of(answer: dict, programme: str, cohort: str) -> dict:
    found = [c for p in answer["programmes"] if p["programme"] == programme for c in p["cohorts"]]
    return next(c for c in found if c["cohort"] == cohort)


async def test_figures_of_a_hand_computed_cohort_against_its_comparison_group(nc, start_service,
                                                                              database_url):
    await start_service(definition=bootstrap())
    story = Story(nc)
    # RD loans, cohort 2025. A and B enrolled on 1 Feb; C waitlisted, D ineligible, E denied
    # (the comparison group); A applied a second time (ineligible): it still counts once.
    await story.application("a1", A, [("applied", "2025-01-10"), ("eligible", "2025-01-10"),
                                      ("enrolled", "2025-02-01")])
    await story.application("b1", B, [("applied", "2025-01-12"), ("eligible", "2025-01-12"),
                                      ("enrolled", "2025-02-01")])
    await story.application("c1", C, [("applied", "2025-01-15"), ("eligible", "2025-01-15"),
                                      ("waitlisted", "2025-02-01")])
    await story.application("d1", D, [("applied", "2025-01-16"), ("ineligible", "2025-01-16")])
    await story.application("e1", E, [("applied", "2025-01-17"), ("eligible", "2025-01-17"),
                                      ("denied", "2025-02-01")])
    await story.application("a2", A, [("applied", "2025-06-01"), ("ineligible", "2025-06-01")])
    # A obtains 100,000 € 59 days after enrolment (then a disbursement: no new money);
    # B 300,000 € 181 days after.
    await story.case("a1", A, "2025-04-01", 10_000_000)
    await story.case("a1", A, "2025-05-01", 10_000_000, disbursed=10_000_000)
    await story.case("b1", B, "2025-08-01", 30_000_000)
    # Private financing raised to date: A 0 → 200,000 €; B 50,000 € → 50,000 €.
    # Comparison: C 10,000 € → 20,000 €; D 0 → 0.
    for app, siren, base, six, comparison in [
            ("a1", A, 0, 20_000_000, False), ("b1", B, 5_000_000, 5_000_000, False),
            ("c1", C, 1_000_000, 2_000_000, True), ("d1", D, 0, 0, True)]:
        await story.checkpoint(app, siren, "baseline", "2025-02-03", base, comparison=comparison)
        await story.checkpoint(app, siren, "month_6", "2025-08-04", six, comparison=comparison)
    # Cohort 2026: F enrolled, nothing obtained yet. Export, cohort 2025: G signs two contracts.
    await story.application("f1", F, [("applied", "2026-03-02"), ("eligible", "2026-03-02"),
                                      ("enrolled", "2026-03-02")])
    await story.application("g1", G, [("applied", "2025-03-03"), ("eligible", "2025-03-03"),
                                      ("enrolled", "2025-03-03")], programme=RELAY, kind="export")
    await story.support("g1", G, "2025-06-02", 5_000_000, ["DE"], 1)
    await story.support("g1", G, "2025-09-01", 7_000_000, ["CA", "DE"], 2)
    await wait_until_rows(database_url, "select count(*) from inbox", story.sent)
    assert await events_of(nc, "envol.*.*.event.rejected") == []

    answer = await ask(nc, "report", {"from": "2025-01-01"})
    loans = cohort_of(answer, LOANS, "AV-RD-LOAN-2025")
    assert loans["funnel"] == {"applied": 5, "eligible": 4, "ineligible": 2, "enrolled": 2,
                               "waitlisted": 1, "denied": 1, "withdrawn": 0, "completed": 0}
    assert loans["conversion"] == {"eligible_of_applied": 0.8, "enrolled_of_eligible": 0.5,
                                   "completed_of_enrolled": 0.0}
    assert (loans["participants"], loans["comparison"]) == (2, 3)
    assert loans["money"] == {"smes": 2, "total_cents": 40_000_000, "median_cents": 20_000_000,
                              "per_sme_cents": 20_000_000}
    assert loans["first_outcome"] == {"smes": 2, "share": 1.0, "median_days": 120}
    months = {point["month"]: point for point in loans["timeline"]}
    assert [months[m]["cumulative_cents"] for m in (0, 1, 2, 6, 12)] == [
        0, 0, 10_000_000, 40_000_000, 40_000_000]
    assert [months[m]["share_with_outcome"] for m in (0, 2, 6)] == [0.0, 0.5, 1.0]
    six, twelve, _ = loans["checkpoints"]
    # Changes: participants 20,000,000 and 0 (mean 10,000,000); comparison 1,000,000 and 0.
    assert six["participants"]["n"] == 2 and six["participants"]["mean_change_cents"] == 10_000_000
    assert six["comparison"]["n"] == 2 and six["comparison"]["mean_change_cents"] == 500_000
    assert six["difference"]["estimate_cents"] == 9_500_000
    low, high = six["participants"]["interval"]
    assert 0 <= low <= 10_000_000 <= high <= 20_000_000
    assert "too few SMEs to compare" in six["warning"]
    assert twelve["participants"] == {"n": 0, "mean_change_cents": None, "interval": None}
    assert twelve["difference"] is None

    relay = cohort_of(answer, RELAY, "AV-VIE-RELAY-2025")
    assert relay["money"] == {"smes": 1, "total_cents": 7_000_000, "median_cents": 7_000_000,
                              "per_sme_cents": 7_000_000}
    assert relay["first_outcome"] == {"smes": 1, "share": 1.0, "median_days": 91}
    assert relay["checkpoints"][0]["measure"] == "export_turnover_cents"

    # The period selects cohorts by application date; other clusters see none of it.
    later = await ask(nc, "report", {"from": "2026-01-01", "to": "2026-12-31"})
    assert [c["cohort"] for p in later["programmes"] for c in p["cohorts"]] == ["AV-RD-LOAN-2026"]
    assert (await ask(nc, "report", {"from": "2025-01-01"}, cluster=PG))["programmes"] == []
    assert "error" in await ask(nc, "report", {"from": "2026-01-01", "to": "2025-01-01"})

    # What was stored reads back: G's contracts abroad, A's two applications.
    g = (await ask(nc, "company", {"company_id": G}))["journeys"][0]
    assert (g["contracts"], g["contract_countries"], g["obtained_cents"]) == (2, ["CA", "DE"], 7_000_000)
    a = (await ask(nc, "company", {"company_id": A}))["journeys"]
    assert [(j["application_id"], j["status"]) for j in a] == [("a1", "enrolled"), ("a2", "ineligible")]
    assert a[0]["gains"] == [[at("2025-04-01").isoformat(), 10_000_000]]
    assert a[0]["checkpoints"]["month_6"] == {"recorded_on": "2025-08-04", "value_cents": 20_000_000}


async def test_checkpoints_that_cannot_count_are_rejected_with_the_reason(nc, start_service, database_url):
    await start_service(definition=bootstrap())
    story = Story(nc)
    await story.application("a1", A, [("applied", "2025-01-10"), ("eligible", "2025-01-10"),
                                      ("enrolled", "2025-02-01")])
    await story.application("c1", C, [("applied", "2025-01-15"), ("eligible", "2025-01-15"),
                                      ("waitlisted", "2025-02-01")])
    # A participant is not a comparison; a waitlisted applicant has no case; another cluster
    # cannot touch this one's applications; a loan programme has no export support.
    await story.checkpoint("a1", A, "baseline", "2025-02-03", 0, comparison=True)
    await story.checkpoint("c1", C, "baseline", "2025-02-03", 0)
    await story.checkpoint("c1", C, "baseline", "2025-02-03", 0, comparison=True, cluster=PG)
    await story.send(export.CheckpointRecorded(
        support_id="a1", checkpoint="baseline", recorded_on="2025-02-03", export_turnover_cents=5,
        countries_served=[], contracts_to_date=0), A, "staff", at("2025-02-03"))
    # A case about an application enrolment never told of.
    await story.send(financing.CaseProgressed(
        case_id="zz", siren=B, cluster=AV, programme=LOANS, cohort=f"{LOANS}-2025", kind="rd_loan",
        stage="decided", partner=None, at=at("2025-04-01"), by="x", summary="x", requested_cents=0,
        awarded_cents=1, disbursed_cents=0, remaining_cents=1, fact="loan.decided"), B, "financing",
        at("2025-04-01"))
    await wait_until_rows(database_url, "select count(*) from inbox", story.sent)
    reasons = sorted(r["data"]["reason"] for r in await events_of(nc, "envol.*.*.event.rejected"))
    assert len(reasons) == 5, reasons
    assert any("a1 was enrolled" in r for r in reasons)
    assert any("c1 was never enrolled" in r for r in reasons)
    assert any("unknown application c1 in pegase" in r for r in reasons)
    assert any("a1 is to a financing programme: export checkpoints do not apply" in r for r in reasons)
    assert any("unknown application zz in aerospace-valley" in r for r in reasons)
    c = (await ask(nc, "company", {"company_id": C}))["journeys"][0]
    assert c["checkpoints"] == {} and c["status"] == "waitlisted"


