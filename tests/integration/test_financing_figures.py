"""Figures per cluster, programme and cohort on a small realistic data set, through the NATS
query, as a cluster's reporting tool would ask for them."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from conftest import wait_until_rows
from support import SIRENS, enrolment_outcome, publish

from envol_financing.bootstrap import bootstrap
from envol_shared.contracts import financing as fe
from envol_shared.queries import query_subject

AV = "aerospace-valley"
BANK = "banque-garonne"
CLUB = "av-investors-club"
CLUB_PROGRAMME = "AV-INVESTORS-CLUB"


NOTHING_RECORDED = {"recorded": 0, "raised_since_baseline_cents": 0,
                    "median_raised_since_baseline_cents": None}


def day(text: str) -> datetime:
    return datetime.fromisoformat(f"{text}T10:00:00+00:00").astimezone(UTC)


async def test_figures_per_programme_and_cohort(nc, start_service, database_url):
    await start_service(definition=bootstrap())
    sent = 0

    async def send(data, siren: str, producer: str = "staff", at: str | None = None) -> None:  # type: ignore[no-untyped-def]
        nonlocal sent
        await publish(nc, data, company=siren, producer=producer, time=day(at) if at else None)
        sent += 1

    async def loan(case: str, siren: str, enrolled: str, requested: int) -> None:
        await send(enrolment_outcome("enrolled", case, siren, at=day(enrolled)), siren, "enrolment", enrolled)
        await send(fe.CaseAssigned(case_id=case, partner=BANK, requested_cents=requested, by="av-staff-1"),
                   siren, at=enrolled)
        await send(fe.LoanRequestReceived(case_id=case, bank_reference=f"ref-{case}", received_on=enrolled),
                   siren, BANK, enrolled)

    def decided(case: str, granted: bool, on: str, awarded: int | None = None) -> fe.LoanDecided:
        terms = {"rate_bps": 250, "duration_months": 60, "tranches_planned": 2} if granted else {}
        return fe.LoanDecided(case_id=case, decision="granted" if granted else "refused", decided_on=on,
                              reason="committee", awarded_cents=awarded, **terms)

    a, b, c, d, e = SIRENS[:5]
    # 2026 cohort of R&D loans: granted (42 days) and partly disbursed (63 days), refused (42 days),
    # and one withdrawn before any decision.
    await loan("av-a", a, "2026-03-02", 50_000_000)
    await send(decided("av-a", True, "2026-04-13", 40_000_000), a, BANK, "2026-04-13")
    await send(fe.LoanTrancheDisbursed(case_id="av-a", tranche=1, amount_cents=25_000_000,
                                       disbursed_on="2026-05-04"), a, BANK, "2026-05-04")
    await loan("av-b", b, "2026-03-09", 30_000_000)
    await send(decided("av-b", False, "2026-04-20"), b, BANK, "2026-04-20")
    await loan("av-c", c, "2026-03-16", 20_000_000)
    await send(enrolment_outcome("withdrawn", "av-c", c, at=day("2026-05-11")), c, "enrolment", "2026-05-11")
    # 2025 cohort: granted in 42 days, fully disbursed in one tranche after 70 days.
    await loan("av-e", e, "2025-11-03", 10_000_000)
    await send(decided("av-e", True, "2025-12-15", 10_000_000), e, BANK, "2025-12-15")
    await send(fe.LoanTrancheDisbursed(case_id="av-e", tranche=1, amount_cents=10_000_000,
                                       disbursed_on="2026-01-12"), e, BANK, "2026-01-12")

    async def club(case: str, siren: str, enrolled: str, pitched: str, closed: str, raised: int) -> None:
        await send(enrolment_outcome("enrolled", case, siren, programme=CLUB_PROGRAMME, at=day(enrolled)),
                   siren, "enrolment", enrolled)
        for data in (fe.InvestorIntroduced(case_id=case, investor="Garonne Ventures", introduced_on=enrolled),
                     fe.PitchScheduled(case_id=case, session_id="p1", scheduled_on=pitched),
                     fe.PitchHeld(case_id=case, session_id="p1", held_on=pitched, investors_present=8),
                     fe.RoundClosed(case_id=case, closed_on=closed, amount_raised_cents=raised,
                                    investors=["Garonne Ventures"])):
            await send(data, siren, CLUB, closed if isinstance(data, fe.RoundClosed) else pitched)

    # The investors' club, 2026: a round closed 120 days after enrolment.
    await club("av-d", d, "2026-02-02", "2026-04-01", "2026-06-02", 120_000_000)
    # The same SME d enrols again in the same cohort, and withdraws before any introduction:
    # a second case, not a second SME.
    await send(enrolment_outcome("enrolled", "av-d2", d, programme=CLUB_PROGRAMME, at=day("2026-05-04")),
               d, "enrolment", "2026-05-04")
    await send(enrolment_outcome("withdrawn", "av-d2", d, programme=CLUB_PROGRAMME, at=day("2026-06-01")),
               d, "enrolment", "2026-06-01")
    # SME a, which has an R&D loan, also joins the club: a round of 30 M closed 91 days after enrolment.
    await club("av-a2", a, "2026-04-06", "2026-05-04", "2026-07-06", 30_000_000)
    # Another cluster's case never shows in Aerospace Valley's figures.
    await send(enrolment_outcome("enrolled", "pg-x", SIRENS[6], programme="PG-GROWTH-CONTRACT",
                                 cluster="pegase"), SIRENS[6], "enrolment")
    # Outcome checkpoints of the 2026 loans: raised since the baseline, 6 months on.
    for case, siren, baseline, month_6 in (("av-a", a, 20_000_000, 70_000_000), ("av-b", b, 0, 10_000_000),
                                           ("av-c", c, 5_000_000, None)):
        await send(fe.CheckpointRecorded(case_id=case, checkpoint="baseline", recorded_on="2026-03-20",
                                         raised_to_date_cents=baseline), siren)
        if month_6 is not None:
            await send(fe.CheckpointRecorded(case_id=case, checkpoint="month_6", recorded_on="2026-09-15",
                                             raised_to_date_cents=month_6), siren)
    # And of SME a's club case: 60 M more since its own baseline.
    for checkpoint, on, raised in (("baseline", "2026-04-10", 25_000_000),
                                   ("month_6", "2026-10-06", 85_000_000)):
        await send(fe.CheckpointRecorded(case_id="av-a2", checkpoint=checkpoint, recorded_on=on,
                                         raised_to_date_cents=raised), a)
    await wait_until_rows(database_url, "select count(*) from inbox", sent)

    reply = await nc.request(query_subject(AV, "financing", "figures"), b"{}", timeout=5)
    rows = {(r["programme"], r["cohort"]): r for r in json.loads(reply.data)["figures"]}
    assert sorted(rows) == [("AV-INVESTORS-CLUB", "AV-INVESTORS-CLUB-2026"),
                            ("AV-RD-LOAN", "AV-RD-LOAN-2025"), ("AV-RD-LOAN", "AV-RD-LOAN-2026")]
    loans_2026 = rows[("AV-RD-LOAN", "AV-RD-LOAN-2026")]
    assert {k: v for k, v in loans_2026.items() if k not in ("programme", "cohort")} == {
        "kind": "rd_loan", "smes_supported": 3, "cases_opened": 3, "cases_closed": 1,
        "requested_cents": 100_000_000, "awarded_cents": 40_000_000, "disbursed_cents": 25_000_000,
        "cases_decided": 3, "cases_succeeded": 1, "success_rate": 0.333,
        "median_days_to_decision": 42.0, "median_days_to_first_disbursement": 63.0,
        "checkpoints": {
            "month_6": {"recorded": 2, "raised_since_baseline_cents": 60_000_000,
                        "median_raised_since_baseline_cents": 30_000_000},
            "month_12": {"recorded": 0, "raised_since_baseline_cents": 0,
                         "median_raised_since_baseline_cents": None},
            "month_24": {"recorded": 0, "raised_since_baseline_cents": 0,
                         "median_raised_since_baseline_cents": None},
        },
    }
    loans_2025 = rows[("AV-RD-LOAN", "AV-RD-LOAN-2025")]
    assert (loans_2025["success_rate"], loans_2025["median_days_to_decision"],
            loans_2025["median_days_to_first_disbursement"],
            loans_2025["disbursed_cents"]) == (1.0, 42.0, 70.0, 10_000_000)
    # The club: av-d (d, 120 M in 120 days), av-d2 (d again, withdrawn), av-a2 (a, 30 M in 91 days).
    club = rows[("AV-INVESTORS-CLUB", "AV-INVESTORS-CLUB-2026")]
    assert {k: v for k, v in club.items() if k not in ("programme", "cohort")} == {
        "kind": "investors_club", "smes_supported": 2, "cases_opened": 3, "cases_closed": 1,
        "requested_cents": 0, "awarded_cents": 150_000_000, "disbursed_cents": 150_000_000,
        # av-d2 closed without a round: its outcome is known, and it is no success.
        "cases_decided": 3, "cases_succeeded": 2, "success_rate": 0.667,
        "median_days_to_decision": 105.5, "median_days_to_first_disbursement": 105.5,  # of 91 and 120
        "checkpoints": {
            "month_6": {"recorded": 1, "raised_since_baseline_cents": 60_000_000,
                        "median_raised_since_baseline_cents": 60_000_000},
            "month_12": NOTHING_RECORDED, "month_24": NOTHING_RECORDED,
        },
    }

    # The totals: the 7 cases of 5 SMEs (a and d have two cases each), recomputed over them all.
    assert json.loads(reply.data)["totals"] == {
        "smes_supported": 5, "cases_opened": 7, "cases_closed": 2,  # av-c and av-d2 withdrawn
        "requested_cents": 110_000_000,  # 100 M (2026 loans) + 10 M (2025 loan)
        "awarded_cents": 200_000_000,  # 40 M + 10 M + 120 M + 30 M
        "disbursed_cents": 185_000_000,  # 25 M + 10 M + 120 M + 30 M
        "cases_decided": 7, "cases_succeeded": 4,
        # 4 of 7, not the mean of the rows' rates (0.333, 1.0, 0.667).
        "success_rate": 0.571,
        "median_days_to_decision": 42.0,  # of 42, 42, 42, 91, 120
        "median_days_to_first_disbursement": 80.5,  # of 63, 70, 91, 120
        "checkpoints": {
            # a counts once with 50 M + 60 M = 110 M, b with 10 M: the median is of 110 M and 10 M.
            "month_6": {"recorded": 2, "raised_since_baseline_cents": 120_000_000,
                        "median_raised_since_baseline_cents": 60_000_000},
            "month_12": NOTHING_RECORDED, "month_24": NOTHING_RECORDED,
        },
    }

    # One programme, one cohort: the reporting tool's filter.
    reply = await nc.request(query_subject(AV, "financing", "figures"),
                             json.dumps({"programme": "AV-RD-LOAN", "cohort": "AV-RD-LOAN-2025"}).encode(),
                             timeout=5)
    filtered = json.loads(reply.data)
    assert [r["cohort"] for r in filtered["figures"]] == ["AV-RD-LOAN-2025"]
    # The totals are of what the request asked for: here, that one row.
    assert filtered["totals"] == {k: v for k, v in filtered["figures"][0].items()
                                  if k not in ("programme", "cohort", "kind")}
    assert (filtered["totals"]["smes_supported"], filtered["totals"]["disbursed_cents"]) == (1, 10_000_000)
