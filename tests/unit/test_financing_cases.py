"""Financing cases: every kind's stages, legal and illegal facts, money, requirements,
checkpoints, closing, history and assignment. A refusal must say why and change nothing."""

import copy
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import pytest

from envol_financing.domain.model import (
    REQUIREMENT_MOVES,
    CaseKind,
    Checkpoint,
    DomainError,
    FinancingCase,
    Requirement,
    RequirementStatus,
    euros,
)
from envol_shared.contracts import financing as fin
from envol_shared.events import EventData

K = CaseKind
RS = RequirementStatus
CASE_ID = "av-2026-0142"
SIREN = "732829320"
T0 = datetime(2026, 3, 9, 8, 0, tzinfo=UTC)
LATER = T0 + timedelta(days=30)
BANK = "banque-garonne"
OTHER_BANK = "credit-pyrenees"
CLUB = "av-investors-club"
COACH = "finance-coach-toulouse"
OTHER_COACH = "finance-coach-bordeaux"
REQUESTED = 50_000_000
AWARDED = 45_000_000
TERMS = {"rate_bps": 250, "duration_months": 60, "tranches_planned": 2}
PROGRAMMES = {
    K.RD_LOAN: ("aerospace-valley", "AV-RD-LOAN"),
    K.INVESTORS_CLUB: ("aerospace-valley", "AV-INVESTORS-CLUB"),
    K.COACHING: ("aerospace-valley", "AV-FIN-COACHING"),
    K.GROWTH_CONTRACT: ("pegase", "PG-GROWTH-CONTRACT"),
    K.PRIVATE_FINANCING: ("astech", "AS-PRIVATE-FINANCING"),
}


def day(n: int) -> datetime:
    return T0 + timedelta(days=n)


def new_case(kind: CaseKind, partner: str | None = None) -> FinancingCase:
    cluster, programme = PROGRAMMES[kind]
    return FinancingCase.open(id=CASE_ID, siren=SIREN, cluster=cluster, programme=programme,
                              cohort=f"{programme}-2026", kind=kind, correlation_id="corr-1",
                              enrolled_at=T0 - timedelta(hours=1), at=T0, partner=partner)


def refusal(case: FinancingCase, fact: Callable[[FinancingCase], object]) -> str:
    """Apply a fact the domain must refuse; check nothing changed; return the reason."""
    before = copy.deepcopy(case)
    with pytest.raises(DomainError) as refused:
        fact(case)
    assert case == before, "a refused fact changed the case"
    return str(refused.value)


# ---- how to bring each kind of case to each of its stages ------------------------------------


def grant(case: FinancingCase, awarded: int = AWARDED, at: datetime | None = None) -> object:
    return case.loan_decided(granted=True, decided_on=date(2026, 4, 20), reason="sound project",
                             awarded_cents=awarded, terms=dict(TERMS), at=at or day(3), by=BANK)


def refuse_loan(case: FinancingCase, at: datetime | None = None) -> object:
    return case.loan_decided(granted=False, decided_on=date(2026, 4, 20), reason="too risky",
                             awarded_cents=None, terms=None, at=at or day(3), by=BANK)


def disburse(case: FinancingCase, tranche: int, amount: int, at: datetime | None = None) -> object:
    return case.disburse(tranche=tranche, amount_cents=amount, disbursed_on=date(2026, 5, 4), at=at or day(4),
                         by=BANK)


def rd_loan(stage: str = "opened") -> FinancingCase:
    case = new_case(K.RD_LOAN)
    steps: list[Callable[[FinancingCase], object]] = [
        lambda c: c.assign(partner=BANK, requested_cents=REQUESTED, at=day(1), by="staff"),
        lambda c: c.loan_received(bank_reference="bg-2026-117", received_on=date(2026, 4, 1), at=day(2),
                                  by=BANK),
        grant,
        lambda c: disburse(c, 1, 25_000_000, day(4)),
        lambda c: disburse(c, 2, 20_000_000, day(5)),
    ]
    order = ["opened", "requested", "received", "granted", "disbursing", "disbursed"]
    if stage == "refused":
        for step in steps[:2]:
            step(case)
        refuse_loan(case)
    else:
        for step in steps[:order.index(stage)]:
            step(case)
    assert case.stage == stage
    return case


def club(stage: str = "opened") -> FinancingCase:
    case = new_case(K.INVESTORS_CLUB, partner=CLUB)
    if stage in ("introduced", "pitching", "round_closed"):
        case.introduce(investor="Garonne Ventures", on=date(2026, 4, 1), at=day(1), by=CLUB)
    if stage in ("pitching", "round_closed"):
        case.schedule_pitch(session_id="pitch-2026-05", on=date(2026, 5, 12), at=day(2), by=CLUB)
        case.hold_pitch(session_id="pitch-2026-05", on=date(2026, 5, 12), investors_present=9, at=day(3),
                        by=CLUB)
    if stage == "round_closed":
        case.close_round(amount_cents=120_000_000, investors=["Garonne Ventures"], on=date(2026, 7, 10),
                         at=day(4), by=CLUB)
    assert case.stage == stage
    return case


def coaching(stage: str = "opened") -> FinancingCase:
    case = new_case(K.COACHING, partner=COACH)
    if stage in ("coaching", "delivered"):
        case.hold_coaching_session(on=date(2026, 4, 2), topics=["financing plan"], hours=3, at=day(1),
                                   by=COACH)
    if stage == "delivered":
        case.deliver(deliverable="financing_plan", on=date(2026, 6, 15), at=day(2), by=COACH)
    assert case.stage == stage
    return case


def sign(case: FinancingCase, at: datetime | None = None) -> object:
    return case.sign_growth_contract(
        signed_on=date(2026, 4, 2), years=3,
        objectives={"export-40": "40 % of turnover abroad", "staff-60": "60 employees"},
        levers=[{"lever": "financing", "description": "equity round", "amount_cents": 150_000_000},
                {"lever": "financing", "description": "bank loan", "amount_cents": 30_000_000},
                {"lever": "region", "description": "Région Sud innovation aid", "amount_cents": 9_000_000},
                {"lever": "cci", "description": "export coaching", "amount_cents": None}],
        at=at or day(1), by="staff")


def growth(stage: str = "opened") -> FinancingCase:
    case = new_case(K.GROWTH_CONTRACT)
    if stage == "signed":
        sign(case)
    assert case.stage == stage
    return case


def act(case: FinancingCase, amount: int | None = None, at: datetime | None = None) -> object:
    return case.record_action(action="introduction to two regional funds", on=date(2026, 5, 12),
                              outcome="term sheet", amount_cents=amount, at=at or day(1), by="staff")


def private(stage: str = "opened") -> FinancingCase:
    case = new_case(K.PRIVATE_FINANCING)
    if stage == "in_progress":
        act(case)
    if stage == "financed":
        act(case, 60_000_000)
    assert case.stage == stage
    return case


# ---- the stage machines, written out from the documentation ----------------------------------


@dataclass(frozen=True)
class Machine:
    build: Callable[[str], FinancingCase]
    stages: tuple[str, ...]
    facts: dict[str, Callable[[FinancingCase], object]]
    # stage -> {fact: stage after}; every other (stage, fact) pair must be refused
    legal: dict[str, dict[str, str]]


MACHINES: dict[CaseKind, Machine] = {
    K.RD_LOAN: Machine(
        rd_loan, ("opened", "requested", "received", "granted", "disbursing", "disbursed", "refused"),
        {
            "case.assigned": lambda c: c.assign(partner=OTHER_BANK, requested_cents=40_000_000, at=LATER,
                                         by="staff"),
            "loan.request.received": lambda c: c.loan_received(
                bank_reference="cp-1", received_on=date(2026, 4, 1), at=LATER, by=BANK),
            "loan.decided(granted)": lambda c: grant(c, 10_000_000, LATER),
            "loan.decided(refused)": lambda c: refuse_loan(c, LATER),
            "loan.tranche.disbursed": lambda c: disburse(c, len(c.tranches) + 1, 10_000_000, LATER),
        },
        {
            "opened": {"case.assigned": "requested"},
            "requested": {"case.assigned": "requested", "loan.request.received": "received"},
            "received": {"loan.decided(granted)": "granted", "loan.decided(refused)": "refused"},
            "granted": {"loan.tranche.disbursed": "disbursing"},
            "disbursing": {"loan.tranche.disbursed": "disbursing"},
            "disbursed": {},
            "refused": {},
        },
    ),
    K.INVESTORS_CLUB: Machine(
        club, ("opened", "introduced", "pitching", "round_closed"),
        {
            "club.introduction.made": lambda c: c.introduce(investor="Sud Angels", on=date(2026, 6, 1),
                                                            at=LATER, by=CLUB),
            "club.pitch.scheduled": lambda c: c.schedule_pitch(session_id="pitch-2026-09",
                                                               on=date(2026, 9, 8), at=LATER, by=CLUB),
            "club.interest.expressed": lambda c: c.express_interest(
                investor="Garonne Ventures", on=date(2026, 6, 2), amount_cents=80_000_000, at=LATER, by=CLUB),
            "club.round.closed": lambda c: c.close_round(
                amount_cents=50_000_000, investors=["Garonne Ventures"], on=date(2026, 7, 10), at=LATER,
                by=CLUB),
        },
        {
            "opened": {"club.introduction.made": "introduced"},
            "introduced": {"club.introduction.made": "introduced", "club.pitch.scheduled": "pitching",
                           "club.interest.expressed": "introduced"},
            "pitching": {"club.introduction.made": "pitching", "club.pitch.scheduled": "pitching",
                         "club.interest.expressed": "pitching", "club.round.closed": "round_closed"},
            "round_closed": {},
        },
    ),
    K.COACHING: Machine(
        coaching, ("opened", "coaching", "delivered"),
        {
            "coaching.session.held": lambda c: c.hold_coaching_session(
                on=date(2026, 7, 1), topics=["data room"], hours=2.5, at=LATER, by=COACH),
            "coaching.deliverable.delivered": lambda c: c.deliver(
                deliverable="data_room", on=date(2026, 7, 2), at=LATER, by=COACH),
        },
        {
            "opened": {"coaching.session.held": "coaching"},
            "coaching": {"coaching.session.held": "coaching", "coaching.deliverable.delivered": "delivered"},
            "delivered": {"coaching.session.held": "delivered",
                          "coaching.deliverable.delivered": "delivered"},
        },
    ),
    K.GROWTH_CONTRACT: Machine(
        growth, ("opened", "signed"),
        {
            "growth.contract.signed": lambda c: sign(c, LATER),
            "growth.milestone.reviewed": lambda c: c.review_milestone(
                objective_id="export-40", on=date(2026, 10, 1), outcome="on_track", note=None, at=LATER,
                by="staff"),
        },
        {
            "opened": {"growth.contract.signed": "signed"},
            "signed": {"growth.milestone.reviewed": "signed"},
        },
    ),
    K.PRIVATE_FINANCING: Machine(
        private, ("opened", "in_progress", "financed"),
        {
            "action": lambda c: act(c, None, LATER),
            "action(money)": lambda c: act(c, 10_000_000, LATER),
        },
        {
            "opened": {"action": "in_progress",
                       "action(money)": "financed"},
            "in_progress": {"action": "in_progress",
                            "action(money)": "financed"},
            "financed": {"action": "financed", "action(money)": "financed"},
        },
    ),
}

LEGAL = [(kind, stage, fact, to) for kind, m in MACHINES.items()
         for stage, moves in m.legal.items() for fact, to in moves.items()]
ILLEGAL = [(kind, stage, fact) for kind, m in MACHINES.items()
           for stage in m.stages for fact in m.facts if fact not in m.legal[stage]]
KIND_FACTS = [(kind, fact) for kind, m in MACHINES.items() for fact in m.facts if fact != "case.assigned"]


def label(value: object) -> str:
    return str(value)


# The event each machine fact stands for: the history records the accepted event's name.
EVENT_OF_FACT: dict[str, type[EventData]] = {
    "case.assigned": fin.CaseAssigned,
    "loan.request.received": fin.LoanRequestReceived,
    "loan.decided(granted)": fin.LoanDecided,
    "loan.decided(refused)": fin.LoanDecided,
    "loan.tranche.disbursed": fin.LoanTrancheDisbursed,
    "club.introduction.made": fin.InvestorIntroduced,
    "club.pitch.scheduled": fin.PitchScheduled,
    "club.interest.expressed": fin.InterestExpressed,
    "club.round.closed": fin.RoundClosed,
    "coaching.session.held": fin.CoachingSessionHeld,
    "coaching.deliverable.delivered": fin.DeliverableDelivered,
    "growth.contract.signed": fin.GrowthContractSigned,
    "growth.milestone.reviewed": fin.GrowthMilestoneReviewed,
    "action": fin.FinancingActionRecorded,
    "action(money)": fin.FinancingActionRecorded,
}
def fact_name(fact: str) -> str:
    return EVENT_OF_FACT[fact].name()


def test_every_stage_of_every_machine_is_reachable_and_listed() -> None:
    for kind, machine in MACHINES.items():
        assert set(machine.legal) == set(machine.stages), kind
        for stage in machine.stages:
            assert machine.build(stage).kind is kind


@pytest.mark.parametrize(("kind", "stage", "fact", "to"), LEGAL, ids=label)
def test_legal_fact_moves_the_case_and_is_recorded(kind: CaseKind, stage: str, fact: str, to: str) -> None:
    case = MACHINES[kind].build(stage)
    entries = len(case.history)

    entry = MACHINES[kind].facts[fact](case)

    assert case.stage == to
    assert len(case.history) == entries + 1
    assert case.history[-1] is entry
    assert (entry.fact, entry.at, entry.stage, entry.case_id) == (fact_name(fact), LATER, to, CASE_ID)
    assert case.last_news_at == LATER


@pytest.mark.parametrize(("kind", "stage", "fact"), ILLEGAL, ids=label)
def test_illegal_fact_is_refused_with_a_reason_and_changes_nothing(kind: CaseKind, stage: str,
                                                                    fact: str) -> None:
    case = MACHINES[kind].build(stage)
    reason = refusal(case, MACHINES[kind].facts[fact])
    assert CASE_ID in reason


@pytest.mark.parametrize(("fact_kind", "fact"), KIND_FACTS, ids=label)
def test_fact_of_another_kind_of_case_is_refused(fact_kind: CaseKind, fact: str) -> None:
    for kind in CaseKind:
        if kind is fact_kind:
            continue
        case = new_case(kind)
        reason = refusal(case, MACHINES[fact_kind].facts[fact])
        assert reason == f"case {CASE_ID} is a {kind.value} case, not {fact_kind.value}"


# ---- R&D loans: stages and reasons ---------------------------------------------------------------


def test_rd_loan_stage_refusals_name_the_stage_needed() -> None:
    case = rd_loan("opened")
    assert refusal(case, MACHINES[K.RD_LOAN].facts["loan.request.received"]) == (
        f"a loan request receipt is not possible on case {CASE_ID} at stage opened; it needs stage requested")
    case = rd_loan("granted")
    assert refusal(case, MACHINES[K.RD_LOAN].facts["loan.decided(granted)"]) == (
        f"a loan decision is not possible on case {CASE_ID} at stage granted; it needs stage received")
    case = rd_loan("received")
    assert refusal(case, MACHINES[K.RD_LOAN].facts["case.assigned"]) == (
        f"assigning a bank is not possible on case {CASE_ID} at stage received; "
        "it needs stage opened or requested")


@pytest.mark.parametrize("stage", ["requested", "received", "refused"])
def test_no_disbursement_before_the_loan_is_granted(stage: str) -> None:
    case = rd_loan(stage)
    assert refusal(case, lambda c: disburse(c, 1, 1_000)) == (
        f"no disbursement before the loan is granted: case {CASE_ID} is at stage {stage}")


def test_no_disbursement_once_fully_disbursed() -> None:
    case = rd_loan("disbursed")
    assert refusal(case, lambda c: disburse(c, 3, 1)) == (
        f"a disbursement is not possible on case {CASE_ID} at stage disbursed; "
        "it needs stage granted or disbursing")


def test_granted_loan_records_amount_terms_and_success() -> None:
    case = rd_loan("granted")
    assert case.awarded_cents == AWARDED
    assert case.details["terms"] == TERMS
    assert case.details["decided_on"] == "2026-04-20"
    assert case.details["bank_reference"] == "bg-2026-117"
    assert case.decided_at == day(3)
    assert case.succeeded is True
    assert case.history[-1].summary == "loan of 450,000.00 € granted: sound project"


def test_refused_loan_awards_nothing_and_is_not_a_success() -> None:
    case = rd_loan("refused")
    assert (case.awarded_cents, case.disbursed_cents, case.remaining_cents) == (0, 0, 0)
    assert case.succeeded is False
    assert case.decided_at == day(3)
    assert "terms" not in case.details
    assert case.history[-1].summary == "loan refused: too risky"


# ---- money ----------------------------------------------------------------------------------------


def test_awarded_above_requested_is_refused() -> None:
    case = rd_loan("received")
    assert refusal(case, lambda c: grant(c, REQUESTED + 1)) == (
        f"the awarded 500,000.01 € exceeds the 500,000.00 € requested on case {CASE_ID}")


def test_awarded_equal_to_requested_is_accepted() -> None:
    case = rd_loan("received")
    grant(case, REQUESTED)
    assert (case.stage, case.awarded_cents, case.remaining_cents) == ("granted", REQUESTED, REQUESTED)


def test_remaining_is_awarded_minus_disbursed_after_each_tranche() -> None:
    case = rd_loan("granted")
    assert (case.awarded_cents, case.disbursed_cents, case.remaining_cents) == (45_000_000, 0, 45_000_000)
    disburse(case, 1, 25_000_000, day(4))
    assert (case.disbursed_cents, case.remaining_cents, case.stage) == (25_000_000, 20_000_000, "disbursing")
    assert case.history[-1].summary == "tranche 1 of 250,000.00 € disbursed; 200,000.00 € remaining"
    disburse(case, 2, 20_000_000, day(5))
    assert (case.disbursed_cents, case.remaining_cents, case.stage) == (45_000_000, 0, "disbursed")
    assert [(t.number, t.amount_cents) for t in case.tranches] == [(1, 25_000_000), (2, 20_000_000)]
    assert case.first_disbursed_at == day(4)


def test_a_tranche_beyond_those_planned_is_refused() -> None:
    case = rd_loan("granted")  # granted in 2 tranches
    disburse(case, 1, 25_000_000, day(4))
    disburse(case, 2, 5_000_000, day(5))
    assert refusal(case, lambda c: disburse(c, 3, 15_000_000, LATER)) == (
        f"the loan of case {CASE_ID} was granted in 2 tranche(s): there is no tranche 3")


def test_single_tranche_of_the_whole_award_disburses_the_loan() -> None:
    case = rd_loan("granted")
    disburse(case, 1, AWARDED)
    assert (case.stage, case.remaining_cents) == ("disbursed", 0)


def test_tranche_above_what_remains_is_refused() -> None:
    case = rd_loan("disbursing")  # 450,000 awarded, 250,000 disbursed
    assert refusal(case, lambda c: disburse(c, 2, 20_000_001)) == (
        f"tranche 2 of 200,000.01 € exceeds the 200,000.00 € remaining of the 450,000.00 € awarded "
        f"on case {CASE_ID}")


def test_first_tranche_above_the_award_is_refused() -> None:
    case = rd_loan("granted")
    reason = refusal(case, lambda c: disburse(c, 1, AWARDED + 1))
    assert "exceeds the 450,000.00 € remaining" in reason


def test_tranche_out_of_order_is_refused() -> None:
    case = rd_loan("granted")
    assert refusal(case, lambda c: disburse(c, 2, 1_000)) == (
        f"tranche 2 of case {CASE_ID} comes after tranche 1; the next is tranche 1")


def test_tranche_repeated_is_refused() -> None:
    case = rd_loan("disbursing")
    assert refusal(case, lambda c: disburse(c, 1, 1_000)) == (
        f"tranche 1 of case {CASE_ID} already disbursed; the next is tranche 2")


def test_round_closed_counts_as_awarded_and_arrived() -> None:
    case = club("round_closed")
    assert (case.awarded_cents, case.disbursed_cents, case.remaining_cents) == (120_000_000, 120_000_000, 0)
    assert case.succeeded is True
    assert case.first_disbursed_at == day(4)
    assert case.details["round"] == {"closed_on": "2026-07-10", "amount_cents": 120_000_000,
                                     "investors": ["Garonne Ventures"]}


def test_support_actions_add_up_what_was_obtained() -> None:
    case = private("opened")
    act(case, None, day(1))
    assert (case.stage, case.awarded_cents, case.succeeded) == ("in_progress", 0, None)
    act(case, 60_000_000, day(2))
    act(case, 15_000_000, day(3))
    assert (case.stage, case.awarded_cents, case.disbursed_cents, case.remaining_cents) == (
        "financed", 75_000_000, 75_000_000, 0)
    assert case.succeeded is True
    assert case.first_disbursed_at == day(2)
    assert case.history[-1].summary == ("introduction to two regional funds: term sheet "
                                        "(150,000.00 € obtained)")


def test_growth_contract_requests_the_sum_of_its_financing_levers() -> None:
    case = growth("signed")
    assert case.requested_cents == 180_000_000  # the region's aid is not a financing lever
    assert case.awarded_cents == 0
    assert set(case.details["objectives"]) == {"export-40", "staff-60"}
    assert case.history[-1].summary == ("3-year growth contract signed: 2 objective(s), "
                                        "levers cci, financing, region")


@pytest.mark.parametrize(("cents", "text"), [(0, "0.00 €"), (5, "0.05 €"), (1234567, "12,345.67 €"),
                                             (50_000_000, "500,000.00 €")])
def test_euros_formats_cents(cents: int, text: str) -> None:
    assert euros(cents) == text


# ---- investors' club, coaching, growth contract: particular refusals --------------------------------


def test_round_before_any_pitch_held_is_refused() -> None:
    case = club("introduced")
    case.schedule_pitch(session_id="pitch-2026-05", on=date(2026, 5, 12), at=day(2), by=CLUB)
    assert refusal(case, MACHINES[K.INVESTORS_CLUB].facts["club.round.closed"]) == (
        f"no round before a pitch: no session of case {CASE_ID} was held")


def test_investor_introduced_twice_is_refused() -> None:
    case = club("introduced")
    assert refusal(case, lambda c: c.introduce(investor="Garonne Ventures", on=date(2026, 5, 1), at=LATER,
                                               by=CLUB)) == (
        f"Garonne Ventures was already introduced on case {CASE_ID}")


def test_interest_from_an_investor_never_introduced_is_refused() -> None:
    case = club("pitching")
    assert refusal(case, lambda c: c.express_interest(investor="Sud Angels", on=date(2026, 6, 1),
                                                      amount_cents=None, at=LATER, by=CLUB)) == (
        f"Sud Angels was never introduced to the company of case {CASE_ID}")


def test_pitch_session_scheduled_twice_is_refused() -> None:
    case = club("pitching")
    assert refusal(case, lambda c: c.schedule_pitch(session_id="pitch-2026-05", on=date(2026, 6, 1),
                                                    at=LATER, by=CLUB)) == (
        f"pitch session pitch-2026-05 is already scheduled on case {CASE_ID}")


def test_pitch_never_scheduled_cannot_be_held() -> None:
    case = club("pitching")
    assert refusal(case, lambda c: c.hold_pitch(session_id="pitch-x", on=date(2026, 6, 1),
                                                investors_present=3, at=LATER, by=CLUB)) == (
        f"pitch session pitch-x was never scheduled on case {CASE_ID}")


def test_pitch_held_twice_is_refused() -> None:
    case = club("pitching")
    assert refusal(case, lambda c: c.hold_pitch(session_id="pitch-2026-05", on=date(2026, 6, 1),
                                                investors_present=3, at=LATER, by=CLUB)) == (
        f"pitch session pitch-2026-05 of case {CASE_ID} was already held")


def test_held_pitch_records_the_investors_present() -> None:
    case = club("pitching")
    assert case.details["pitch_sessions"] == {
        "pitch-2026-05": {"scheduled_on": "2026-05-12", "held_on": "2026-05-12", "investors_present": 9}}
    assert case.history[-1].summary == "pitch session pitch-2026-05 held before 9 investor(s)"


def test_deliverable_before_any_session_is_refused() -> None:
    case = coaching("opened")
    assert refusal(case, MACHINES[K.COACHING].facts["coaching.deliverable.delivered"]) == (
        f"no deliverable before a coaching session: none held on case {CASE_ID}")


def test_same_deliverable_twice_is_refused() -> None:
    case = coaching("delivered")
    assert refusal(case, lambda c: c.deliver(deliverable="financing_plan", on=date(2026, 7, 1), at=LATER,
                                             by=COACH)) == (
        f"financing_plan was already delivered on case {CASE_ID}")


def test_coaching_sessions_are_numbered_in_the_history() -> None:
    case = coaching("coaching")
    case.hold_coaching_session(on=date(2026, 4, 9), topics=["cap table", "data room"], hours=1.5, at=day(2),
                               by=COACH)
    assert case.history[-1].summary == "coaching session 2 (1.5 h): cap table, data room"
    assert len(case.details["coaching_sessions"]) == 2
    assert case.succeeded is None


def test_second_growth_contract_is_refused() -> None:
    case = growth("signed")
    assert refusal(case, MACHINES[K.GROWTH_CONTRACT].facts["growth.contract.signed"]) == (
        f"signing the growth contract is not possible on case {CASE_ID} at stage signed; "
        "it needs stage opened")


def test_milestone_review_before_the_contract_is_refused() -> None:
    case = growth("opened")
    assert refusal(case, MACHINES[K.GROWTH_CONTRACT].facts["growth.milestone.reviewed"]) == (
        f"a milestone review is not possible on case {CASE_ID} at stage opened; it needs stage signed")


def test_review_of_an_unknown_objective_lists_the_contract_s_objectives() -> None:
    case = growth("signed")
    assert refusal(case, lambda c: c.review_milestone(objective_id="export-90", on=date(2026, 10, 1),
                                                      outcome="late", note=None, at=LATER, by="staff")) == (
        f"the growth contract of case {CASE_ID} has no objective export-90; it has export-40, staff-60")


def test_milestone_reviews_accumulate_per_objective() -> None:
    case = growth("signed")
    for n, outcome in enumerate(["on_track", "late"]):
        case.review_milestone(objective_id="export-40", on=date(2026, 10 + n, 1), outcome=outcome,
                              note="n" if n else None, at=day(10 + n), by="staff")
    assert case.details["objectives"]["export-40"]["reviews"] == [
        {"on": "2026-10-01", "outcome": "on_track", "note": None},
        {"on": "2026-11-01", "outcome": "late", "note": "n"}]
    assert case.details["objectives"]["staff-60"]["reviews"] == []


# ---- requirements and tranche gating -----------------------------------------------------------------


def requirement(requirement_id: str = "progress-report-1", gates: int | None = None,
                kind: str = "report") -> Requirement:
    return Requirement(case_id=CASE_ID, requirement_id=requirement_id, kind=kind, title="R&D progress report",
                       due_on=date(2026, 9, 30), owner="av-staff-01", gates_tranche=gates)


def gated_loan(status: RequirementStatus = RS.OPEN) -> FinancingCase:
    """A granted loan whose tranche 2 waits for a report, with tranche 1 disbursed."""
    case = rd_loan("granted")
    case.add_requirement(requirement(gates=2), at=day(4), by="staff")
    disburse(case, 1, 25_000_000, day(5))
    if status is not RS.OPEN:
        case.update_requirement("progress-report-1", status, on=date(2026, 9, 28), at=day(6), by="staff")
    assert case.requirement("progress-report-1").status is status
    return case


@pytest.mark.parametrize("status", [RS.OPEN, RS.IN_PROGRESS, RS.DELAYED])
def test_gated_tranche_is_refused_until_its_requirement_is_complete(status: RequirementStatus) -> None:
    case = gated_loan(status)
    assert refusal(case, lambda c: disburse(c, 2, 20_000_000, LATER)) == (
        f"tranche 2 of case {CASE_ID} waits for requirement progress-report-1 "
        f"(report 'R&D progress report', {status.value})")


def test_gated_tranche_is_disbursed_once_its_requirement_is_complete() -> None:
    case = gated_loan(RS.OPEN)
    case.update_requirement("progress-report-1", RS.COMPLETE, on=date(2026, 9, 28), at=day(7), by="staff")
    disburse(case, 2, 20_000_000, LATER)
    assert (case.stage, case.remaining_cents) == ("disbursed", 0)


def test_an_abandoned_requirement_no_longer_holds_its_tranche_back() -> None:
    """Staff dropped it: otherwise the tranche could never be paid (abandoned is final)."""
    case = gated_loan(RS.ABANDONED)
    disburse(case, 2, 20_000_000, LATER)
    assert (case.stage, case.remaining_cents) == ("disbursed", 0)


def test_gate_on_one_tranche_does_not_hold_another() -> None:
    case = rd_loan("granted")
    case.add_requirement(requirement(gates=2), at=day(4), by="staff")
    disburse(case, 1, 25_000_000, day(5))
    assert [(t.number, t.amount_cents) for t in case.tranches] == [(1, 25_000_000)]
    assert case.stage == "disbursing"


def test_every_gating_requirement_is_named_in_the_refusal() -> None:
    case = rd_loan("granted")
    case.add_requirement(requirement("report-a", gates=1), at=day(4), by="staff")
    case.add_requirement(requirement("contract-b", gates=1, kind="signed_contract"), at=day(4), by="staff")
    case.update_requirement("report-a", RS.DELAYED, on=date(2026, 9, 1), at=day(5), by="staff")
    assert refusal(case, lambda c: disburse(c, 1, 1_000, LATER)) == (
        f"tranche 1 of case {CASE_ID} waits for requirement report-a (report 'R&D progress report', "
        "delayed), contract-b (signed_contract 'R&D progress report', open)")


def test_the_planned_tranches_are_checked_before_the_gate() -> None:
    case = gated_loan(RS.OPEN)
    assert "there is no tranche 3" in refusal(case, lambda c: disburse(c, 3, 1_000, LATER))


def test_a_requirement_cannot_gate_a_tranche_that_will_never_come() -> None:
    refused = rd_loan("refused")
    assert refusal(refused, lambda c: c.add_requirement(requirement(gates=1), at=LATER, by="staff")) == (
        f"the loan of case {CASE_ID} was refused: it has no tranche to gate")
    granted = rd_loan("granted")  # in 2 tranches
    assert refusal(granted, lambda c: c.add_requirement(requirement(gates=3), at=LATER, by="staff")) == (
        f"the loan of case {CASE_ID} was granted in 2 tranche(s): there is no tranche 3 to gate")


def test_requirement_cannot_gate_a_tranche_already_disbursed() -> None:
    case = rd_loan("disbursing")
    assert refusal(case, lambda c: c.add_requirement(requirement(gates=1), at=LATER, by="staff")) == (
        f"tranche 1 of case {CASE_ID} is already disbursed: a requirement can no longer gate it")


@pytest.mark.parametrize("kind", [k for k in CaseKind if k is not K.RD_LOAN])
def test_only_a_loan_has_tranches_to_gate(kind: CaseKind) -> None:
    case = new_case(kind)
    assert refusal(case, lambda c: c.add_requirement(requirement(gates=1), at=LATER, by="staff")) == (
        f"case {CASE_ID} is a {kind.value} case, not rd_loan")


@pytest.mark.parametrize("kind", list(CaseKind))
def test_any_case_takes_requirements_that_gate_nothing(kind: CaseKind) -> None:
    case = new_case(kind)
    entry = case.add_requirement(requirement(kind="milestone_review"), at=LATER, by="staff")
    assert case.requirements == [requirement(kind="milestone_review")]
    assert entry.fact == "financing.requirement.added"
    assert entry.summary == "milestone_review 'R&D progress report' due 2026-09-30 (av-staff-01)"


def test_gating_requirement_summary_names_the_tranche() -> None:
    case = rd_loan("granted")
    entry = case.add_requirement(requirement(gates=2), at=LATER, by="staff")
    assert entry.summary == "report 'R&D progress report' due 2026-09-30 (av-staff-01), gating tranche 2"


def test_duplicate_requirement_id_is_refused() -> None:
    case = rd_loan("granted")
    case.add_requirement(requirement(), at=day(4), by="staff")
    assert refusal(case, lambda c: c.add_requirement(requirement(gates=2), at=LATER, by="staff")) == (
        f"case {CASE_ID} already has a requirement progress-report-1")


def test_update_of_an_unknown_requirement_is_refused() -> None:
    case = rd_loan("granted")
    assert refusal(case, lambda c: c.update_requirement("nope", RS.COMPLETE, on=date(2026, 9, 1), at=LATER,
                                                        by="staff")) == (
        f"case {CASE_ID} has no requirement nope")


# ---- requirement status moves ----------------------------------------------------------------------

EXPECTED_MOVES: dict[RequirementStatus, set[RequirementStatus]] = {
    RS.OPEN: {RS.IN_PROGRESS, RS.DELAYED, RS.COMPLETE, RS.ABANDONED},
    RS.IN_PROGRESS: {RS.DELAYED, RS.COMPLETE, RS.ABANDONED},
    RS.DELAYED: {RS.IN_PROGRESS, RS.COMPLETE, RS.ABANDONED},
    RS.COMPLETE: set(),
    RS.ABANDONED: set(),
}
LEGAL_MOVES = [(src, dst) for src, targets in EXPECTED_MOVES.items() for dst in sorted(targets)]
ILLEGAL_MOVES = [(src, dst) for src in EXPECTED_MOVES for dst in RS if dst not in EXPECTED_MOVES[src]]


def case_with_requirement(status: RequirementStatus) -> FinancingCase:
    case = new_case(K.COACHING, partner=COACH)
    case.add_requirement(requirement(), at=day(1), by="staff")
    if status is not RS.OPEN:
        case.update_requirement("progress-report-1", status, on=date(2026, 9, 1), at=day(2), by="staff")
    return case


def test_requirement_moves_table_is_the_documented_one() -> None:
    assert {src: set(targets) for src, targets in REQUIREMENT_MOVES.items()} == EXPECTED_MOVES


@pytest.mark.parametrize(("src", "dst"), LEGAL_MOVES, ids=label)
def test_legal_requirement_move(src: RequirementStatus, dst: RequirementStatus) -> None:
    case = case_with_requirement(src)
    entry = case.update_requirement("progress-report-1", dst, on=date(2026, 9, 28), at=LATER, by="staff",
                                    note="received")
    found = case.requirement("progress-report-1")
    assert found.status is dst
    assert found.completed_on == (date(2026, 9, 28) if dst is RS.COMPLETE else None)
    assert found.is_done is (dst in (RS.COMPLETE, RS.ABANDONED))
    assert (entry.fact, entry.summary) == ("financing.requirement.updated",
                                           f"requirement progress-report-1 {dst}: received")


@pytest.mark.parametrize(("src", "dst"), ILLEGAL_MOVES, ids=label)
def test_illegal_requirement_move_names_the_allowed_ones(src: RequirementStatus,
                                                        dst: RequirementStatus) -> None:
    case = case_with_requirement(src)
    reason = refusal(case, lambda c: c.update_requirement("progress-report-1", dst, on=date(2026, 9, 28),
                                                          at=LATER, by="staff"))
    allowed = ", ".join(sorted(EXPECTED_MOVES[src])) or "none (final status)"
    assert reason == (f"requirement progress-report-1 of case {CASE_ID} cannot go from {src} to {dst}; "
                      f"allowed: {allowed}")


# ---- outcome checkpoints ------------------------------------------------------------------------------


def checkpoint(name: str, cents: int) -> Checkpoint:
    return Checkpoint(case_id=CASE_ID, name=name, recorded_on=date(2026, 3, 20), raised_to_date_cents=cents)


def test_baseline_comes_first() -> None:
    case = rd_loan("opened")
    assert refusal(case, lambda c: c.record_checkpoint(checkpoint("month_6", 1), at=LATER, by="staff")) == (
        f"record the baseline of case {CASE_ID} before checkpoint month_6")


def test_checkpoints_are_recorded_against_the_baseline() -> None:
    case = rd_loan("opened")
    first = case.record_checkpoint(checkpoint("baseline", 20_000_000), at=day(1), by="staff")
    later = case.record_checkpoint(checkpoint("month_6", 30_000_000), at=day(2), by="staff")
    assert first.summary == "baseline: 200,000.00 € raised to date"
    assert later.summary == "month_6: 300,000.00 € raised to date, 100,000.00 € since opening"
    assert [c.name for c in case.checkpoints] == ["baseline", "month_6"]
    assert case.checkpoint("month_6") == checkpoint("month_6", 30_000_000)
    assert case.checkpoint("month_12") is None
    assert (first.fact, later.fact) == ("financing.checkpoint.recorded", "financing.checkpoint.recorded")


@pytest.mark.parametrize("name", ["baseline", "month_6"])
def test_checkpoint_recorded_twice_is_refused(name: str) -> None:
    case = rd_loan("opened")
    case.record_checkpoint(checkpoint("baseline", 0), at=day(1), by="staff")
    case.record_checkpoint(checkpoint("month_6", 5), at=day(2), by="staff")
    assert refusal(case, lambda c: c.record_checkpoint(checkpoint(name, 10), at=LATER, by="staff")) == (
        f"checkpoint {name} of case {CASE_ID} is already recorded")


def test_raised_to_date_below_the_baseline_is_refused() -> None:
    case = rd_loan("opened")
    case.record_checkpoint(checkpoint("baseline", 20_000_000), at=day(1), by="staff")
    assert refusal(case, lambda c: c.record_checkpoint(checkpoint("month_12", 19_999_999), at=LATER,
                                                       by="staff")) == (
        f"raised to date 199,999.99 € at month_12 is less than the 200,000.00 € recorded at baseline "
        f"on case {CASE_ID}: it is a running total")


def test_raised_to_date_equal_to_the_baseline_is_accepted() -> None:
    case = rd_loan("opened")
    case.record_checkpoint(checkpoint("baseline", 20_000_000), at=day(1), by="staff")
    entry = case.record_checkpoint(checkpoint("month_24", 20_000_000), at=LATER, by="staff")
    assert entry.summary == "month_24: 200,000.00 € raised to date, 0.00 € since opening"


def test_raised_to_date_is_a_running_total_across_every_checkpoint() -> None:
    """Not only against the baseline: month_12 below month_6, or month_6 recorded late above
    month_12, is a typing error."""
    case = rd_loan("opened")
    case.record_checkpoint(checkpoint("baseline", 10_000_000), at=day(1), by="staff")
    case.record_checkpoint(checkpoint("month_6", 50_000_000), at=day(2), by="staff")
    assert "is less than the 500,000.00 € recorded at month_6" in refusal(
        case, lambda c: c.record_checkpoint(checkpoint("month_12", 20_000_000), at=day(3), by="staff"))
    case.record_checkpoint(checkpoint("month_24", 60_000_000), at=day(4), by="staff")
    assert "is more than the 600,000.00 € recorded at month_24" in refusal(
        case, lambda c: c.record_checkpoint(checkpoint("month_12", 70_000_000), at=day(5), by="staff"))
    case.record_checkpoint(checkpoint("month_12", 55_000_000), at=day(6), by="staff")
    assert [c.raised_to_date_cents for c in case.checkpoints] == [10_000_000, 50_000_000, 60_000_000,
                                                                   55_000_000]


def test_checkpoints_are_recorded_on_a_closed_case() -> None:
    case = rd_loan("opened")
    case.record_checkpoint(checkpoint("baseline", 0), at=day(1), by="staff")
    case.close(at=day(2), by="av-staff-01", reason="enrolment withdrawn: takeover")
    entry = case.record_checkpoint(checkpoint("month_6", 7_000_000), at=LATER, by="staff")
    assert case.checkpoint("month_6") is not None
    assert case.history[-1] is entry
    assert case.is_closed


# ---- closing --------------------------------------------------------------------------------------------


def test_close_records_when_why_and_no_success_without_financing() -> None:
    case = rd_loan("received")
    entry = case.close(at=LATER, by="av-staff-01", reason="enrolment withdrawn: takeover")
    assert case.is_closed
    assert (case.closed_at, case.close_reason, case.succeeded) == (
        LATER, "enrolment withdrawn: takeover", False)
    assert (entry.fact, entry.by, entry.summary, entry.stage) == (
        "case.closed", "av-staff-01", "closed: enrolment withdrawn: takeover", "received")
    assert case.stage == "received"


@pytest.mark.parametrize(("build", "succeeded"), [
    (lambda: rd_loan("disbursed"), True), (lambda: rd_loan("refused"), False),
    (lambda: club("round_closed"), True), (lambda: coaching("delivered"), True),
    (lambda: growth("signed"), True), (lambda: private("financed"), True),
    (lambda: private("in_progress"), False), (lambda: coaching("coaching"), False),
])
def test_close_keeps_the_outcome_already_decided(build: Callable[[], FinancingCase], succeeded: bool) -> None:
    case = build()
    case.close(at=LATER, by="staff", reason="enrolment completed: done")
    assert case.succeeded is succeeded


def test_closed_case_cannot_be_closed_again() -> None:
    case = rd_loan("opened")
    case.close(at=day(1), by="staff", reason="enrolment completed: done")
    assert refusal(case, lambda c: c.close(at=LATER, by="staff", reason="again")) == (
        f"case {CASE_ID} is closed (enrolment completed: done)")


CLOSED_REFUSALS = [(kind, stage, fact) for kind, m in MACHINES.items() for stage in m.stages
                   for fact in m.legal[stage]]


@pytest.mark.parametrize(("kind", "stage", "fact"), CLOSED_REFUSALS, ids=label)
def test_closed_case_refuses_facts_that_were_legal(kind: CaseKind, stage: str, fact: str) -> None:
    case = MACHINES[kind].build(stage)
    case.close(at=day(20), by="staff", reason="enrolment withdrawn: takeover")
    assert refusal(case, MACHINES[kind].facts[fact]) == (
        f"case {CASE_ID} is closed (enrolment withdrawn: takeover)")


def test_closed_case_refuses_requirements() -> None:
    case = rd_loan("granted")
    case.add_requirement(requirement(), at=day(4), by="staff")
    case.close(at=day(20), by="staff", reason="enrolment completed: done")
    expected = f"case {CASE_ID} is closed (enrolment completed: done)"
    assert refusal(case, lambda c: c.add_requirement(requirement("other"), at=LATER, by="staff")) == expected
    assert refusal(case, lambda c: c.update_requirement("progress-report-1", RS.COMPLETE, on=date(2026, 9, 1),
                                                        at=LATER, by="staff")) == expected


# ---- history --------------------------------------------------------------------------------------------


def test_opening_is_the_first_history_entry() -> None:
    case = new_case(K.INVESTORS_CLUB, partner=CLUB)
    assert [(e.fact, e.by, e.stage, e.at) for e in case.history] == [
        ("case.opened", "financing", "opened", T0)]
    assert case.history[0].summary == ("investors_club case opened for AV-INVESTORS-CLUB, "
                                       "served by av-investors-club")
    assert new_case(K.RD_LOAN).history[0].summary == "rd_loan case opened for AV-RD-LOAN"
    assert case.last_news_at == T0
    assert (case.stage, case.partner, case.opened_at, case.succeeded) == ("opened", CLUB, T0, None)


def test_history_has_one_entry_per_accepted_fact_in_order() -> None:
    case = rd_loan("disbursed")
    assert [(e.fact, e.by, e.stage) for e in case.history] == [
        ("case.opened", "financing", "opened"),
        ("financing.case.assigned", "staff", "requested"),
        ("loan.request.received", BANK, "received"),
        ("loan.decided", BANK, "granted"),
        ("loan.tranche.disbursed", BANK, "disbursing"),
        ("loan.tranche.disbursed", BANK, "disbursed"),
    ]
    assert [e.at for e in case.history] == [T0, day(1), day(2), day(3), day(4), day(5)]
    assert all(e.case_id == CASE_ID for e in case.history)


def test_staff_facts_are_recorded_under_their_event_s_name() -> None:
    """README: case.progressed carries `fact`, the accepted event's name (`loan.decided`…)."""
    case = rd_loan("opened")
    entries = [
        (case.assign(partner=BANK, requested_cents=REQUESTED, at=day(1), by="staff"), fin.CaseAssigned),
        (case.add_requirement(requirement(), at=day(2), by="staff"), fin.RequirementAdded),
        (case.update_requirement("progress-report-1", RS.COMPLETE, on=date(2026, 9, 28), at=day(3),
                                 by="staff"), fin.RequirementUpdated),
        (case.record_checkpoint(checkpoint("baseline", 0), at=day(4), by="staff"), fin.CheckpointRecorded),
    ]
    assert [entry.fact for entry, _ in entries] == [event.name() for _, event in entries]


def test_last_news_is_the_latest_fact_even_when_facts_arrive_out_of_time_order() -> None:
    case = rd_loan("requested")
    entry = case.record_checkpoint(checkpoint("baseline", 0), at=T0 - timedelta(hours=5), by="staff")
    assert case.last_news_at == day(1)
    assert case.history[-1] is entry


# ---- assignment -------------------------------------------------------------------------------------------


def test_rd_loan_assignment_needs_the_requested_amount() -> None:
    case = rd_loan("opened")
    assert refusal(case, lambda c: c.assign(partner=BANK, requested_cents=None, at=LATER, by="staff")) == (
        f"case {CASE_ID} is an R&D loan: the assignment needs requested_cents")


def test_rd_loan_assignment_sets_bank_amount_and_stage() -> None:
    case = rd_loan("requested")
    assert (case.partner, case.requested_cents, case.stage) == (BANK, REQUESTED, "requested")
    assert case.history[-1].summary == "assigned to banque-garonne for 500,000.00 €"


def test_rd_loan_can_be_reassigned_until_the_bank_receives_it() -> None:
    case = rd_loan("requested")
    MACHINES[K.RD_LOAN].facts["case.assigned"](case)
    assert (case.partner, case.requested_cents, case.stage) == (OTHER_BANK, 40_000_000, "requested")


def test_coach_can_be_reassigned_before_reporting_but_not_after() -> None:
    case = new_case(K.COACHING)
    case.assign(partner=COACH, requested_cents=None, at=day(1), by="staff")
    case.assign(partner=OTHER_COACH, requested_cents=None, at=day(2), by="staff")
    assert (case.partner, case.stage, case.requested_cents) == (OTHER_COACH, "opened", 0)
    assert case.history[-1].summary == "assigned to finance-coach-bordeaux"
    case.hold_coaching_session(on=date(2026, 4, 2), topics=["plan"], hours=2, at=day(3), by=OTHER_COACH)
    assert refusal(case, lambda c: c.assign(partner=COACH, requested_cents=None, at=LATER, by="staff")) == (
        f"case {CASE_ID} is already served by {OTHER_COACH}, who has reported on it: it can no longer be "
        "reassigned")


def test_partner_serving_from_the_start_can_be_replaced_until_it_reports() -> None:
    case = new_case(K.INVESTORS_CLUB, partner=CLUB)
    case.assign(partner="other-club", requested_cents=None, at=day(1), by="staff")
    assert case.partner == "other-club"


def test_closed_case_cannot_be_assigned() -> None:
    case = new_case(K.COACHING)
    case.close(at=day(1), by="staff", reason="enrolment withdrawn: x")
    assert refusal(case, lambda c: c.assign(partner=COACH, requested_cents=None, at=LATER, by="staff")) == (
        f"case {CASE_ID} is closed (enrolment withdrawn: x)")


def test_no_pitch_is_held_once_the_round_is_closed() -> None:
    case = club("round_closed")
    assert refusal(case, lambda c: c.hold_pitch(session_id="pitch-2026-05", on=date(2026, 8, 1),
                                                investors_present=3, at=LATER, by=CLUB)) == (
        f"a pitch session is not possible on case {CASE_ID} at stage round_closed; it needs stage pitching")
