"""The financing service layer: one handler per consumed event.

Enrolment's events open and close cases. Staff's and partners' facts are checked in order:
the case exists in this cluster and is about the event's company; the producer is the
cluster's staff (staff facts) or, for partner facts, a partner of the cluster whose kind
publishes that fact and the one serving the case; then the domain accepts or refuses the
fact itself. A refusal raises `Rejected`: nothing changes and the producer receives the
reason on its own `event.rejected` subject.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

from envol_financing.domain.model import (
    SERVED_BY,
    CaseEntry,
    Checkpoint,
    DomainError,
    FinancingCase,
    Requirement,
    RequirementStatus,
)
from envol_financing.partners import Partners
from envol_financing.reminders import FollowUp
from envol_financing.unit_of_work import FinancingUnitOfWork
from envol_shared.consumer import Context, Handler, Rejected
from envol_shared.contracts import enrolment
from envol_shared.contracts import financing as events
from envol_shared.decisions import log_when_committed
from envol_shared.events import EventData

Ctx = Context[FinancingUnitOfWork]
SERVICE = "financing"


# ---- enrolment opens and closes cases -------------------------------------------------------


async def open_case(event: enrolment.ApplicationEnrolled, ctx: Ctx, partners: Partners,
                    follow_up: FollowUp) -> None:
    if event.programme_kind != "financing":
        return  # an export programme: the export service's business
    kind = partners.case_kind(event.cluster, event.programme)
    if kind is None:
        raise Rejected(f"programme {event.programme} of {event.cluster} is not configured in the "
                       f"financing service (partners/{event.cluster}.toml, [programmes])")
    if await ctx.uow.cases.get(event.application_id) is not None:
        return  # opened already: once per enrolment
    needed = SERVED_BY[kind]
    serving = partners.serving(event.cluster, needed) if needed else []
    case = FinancingCase.open(
        id=event.application_id, siren=event.siren, cluster=event.cluster, programme=event.programme,
        cohort=event.cohort, kind=kind, correlation_id=ctx.incoming.envelope.correlationid,
        enrolled_at=event.at, at=ctx.received_at,
        # The only partner of its kind in the cluster serves the case from the start.
        partner=serving[0].id if len(serving) == 1 else None,
    )
    ctx.uow.cases.add(case)
    _emit(ctx, case, case.history[-1], events.CaseOpened)
    follow_up.case_opened(ctx.uow.timers, case)


async def close_case(event: enrolment.ApplicationTransition, ctx: Ctx, partners: Partners,
                     follow_up: FollowUp) -> None:
    case = await ctx.uow.cases.get(event.application_id)
    if case is None or case.is_closed:
        return  # never enrolled in a financing programme, or closed already
    reason = f"enrolment {event.to_status}: {'; '.join(event.reasons)}"
    _emit(ctx, case, case.close(at=ctx.received_at, by=event.by, reason=reason), events.CaseClosed)
    follow_up.case_closed(ctx.uow.timers, case)


# ---- staff ------------------------------------------------------------------------------------


async def assign_case(event: events.CaseAssigned, ctx: Ctx, partners: Partners,
                      follow_up: FollowUp) -> None:
    case = await _for_staff(event.case_id, ctx, partners)
    needed = SERVED_BY[case.kind]
    if needed is None:
        raise Rejected(f"case {case.id} is a {case.kind.value} case, run by {case.cluster}'s staff: "
                       "no partner to assign")
    partner = partners.partner(case.cluster, event.partner)
    if partner is None or partner.kind is not needed:
        offered = ", ".join(p.id for p in partners.serving(case.cluster, needed))
        raise Rejected(f"{event.partner} is not a {needed.value} serving {case.cluster}; "
                       f"those are: {offered}")
    # Recorded under the staff member who assigned it (an id, not a name).
    _apply(ctx, case, follow_up, lambda at, _producer: case.assign(
        partner=event.partner, requested_cents=event.requested_cents, at=at, by=event.by))


async def add_requirement(event: events.RequirementAdded, ctx: Ctx, partners: Partners,
                          follow_up: FollowUp) -> None:
    case = await _for_staff(event.case_id, ctx, partners)
    requirement = Requirement(case_id=case.id, requirement_id=event.requirement_id, kind=event.kind,
                              title=event.title, due_on=event.due_on, owner=event.owner,
                              gates_tranche=event.gates_tranche)
    _apply(ctx, case, follow_up, lambda at, by: case.add_requirement(requirement, at=at, by=by))
    follow_up.requirement_set(ctx.uow.timers, case, requirement, ctx.received_at)


async def update_requirement(event: events.RequirementUpdated, ctx: Ctx, partners: Partners,
                             follow_up: FollowUp) -> None:
    case = await _for_staff(event.case_id, ctx, partners)
    _apply(ctx, case, follow_up, lambda at, by: case.update_requirement(
        event.requirement_id, RequirementStatus(event.status), on=event.on, at=at, by=by, note=event.note))
    follow_up.requirement_set(ctx.uow.timers, case, case.requirement(event.requirement_id), ctx.received_at)


async def record_checkpoint(event: events.CheckpointRecorded, ctx: Ctx, partners: Partners,
                            follow_up: FollowUp) -> None:
    case = await _for_staff(event.case_id, ctx, partners)
    checkpoint = Checkpoint(case_id=case.id, name=event.checkpoint, recorded_on=event.recorded_on,
                            raised_to_date_cents=event.raised_to_date_cents, note=event.note)
    _apply(ctx, case, follow_up, lambda at, by: case.record_checkpoint(checkpoint, at=at, by=by))
    follow_up.checkpoint_recorded(ctx.uow.timers, case, event.checkpoint)


async def sign_growth_contract(event: events.GrowthContractSigned, ctx: Ctx, partners: Partners,
                               follow_up: FollowUp) -> None:
    case = await _for_staff(event.case_id, ctx, partners)
    _apply(ctx, case, follow_up, lambda at, by: case.sign_growth_contract(
        signed_on=event.signed_on, years=event.years,
        objectives={o.objective_id: o.description for o in event.objectives},
        levers=[lever.model_dump() for lever in event.levers], at=at, by=by))


async def review_milestone(event: events.GrowthMilestoneReviewed, ctx: Ctx, partners: Partners,
                           follow_up: FollowUp) -> None:
    case = await _for_staff(event.case_id, ctx, partners)
    _apply(ctx, case, follow_up, lambda at, by: case.review_milestone(
        objective_id=event.objective_id, on=event.reviewed_on, outcome=event.outcome, note=event.note,
        at=at, by=by))


async def record_financing_action(event: events.FinancingActionRecorded, ctx: Ctx, partners: Partners,
                                follow_up: FollowUp) -> None:
    case = await _for_staff(event.case_id, ctx, partners)
    _apply(ctx, case, follow_up, lambda at, by: case.record_action(
        action=event.action, on=event.on, outcome=event.outcome, amount_cents=event.amount_obtained_cents,
        at=at, by=by))


# ---- partner banks -------------------------------------------------------------------------------


async def receive_loan_request(event: events.LoanRequestReceived, ctx: Ctx, partners: Partners,
                               follow_up: FollowUp) -> None:
    case = await _for_partner(event.case_id, ctx, partners)
    _apply(ctx, case, follow_up, lambda at, by: case.loan_received(
        bank_reference=event.bank_reference, received_on=event.received_on, at=at, by=by))


async def decide_loan(event: events.LoanDecided, ctx: Ctx, partners: Partners, follow_up: FollowUp) -> None:
    case = await _for_partner(event.case_id, ctx, partners)
    terms = None
    if event.decision == "granted":
        terms = {"rate_bps": event.rate_bps, "duration_months": event.duration_months,
                 "tranches_planned": event.tranches_planned}
    _apply(ctx, case, follow_up, lambda at, by: case.loan_decided(
        granted=event.decision == "granted", decided_on=event.decided_on, reason=event.reason,
        awarded_cents=event.awarded_cents, terms=terms, at=at, by=by))  # type: ignore[arg-type]


async def disburse_tranche(event: events.LoanTrancheDisbursed, ctx: Ctx, partners: Partners,
                           follow_up: FollowUp) -> None:
    case = await _for_partner(event.case_id, ctx, partners)
    _apply(ctx, case, follow_up, lambda at, by: case.disburse(
        tranche=event.tranche, amount_cents=event.amount_cents, disbursed_on=event.disbursed_on,
        at=at, by=by))


# ---- the investors' club ---------------------------------------------------------------------------


async def introduce_investor(event: events.InvestorIntroduced, ctx: Ctx, partners: Partners,
                             follow_up: FollowUp) -> None:
    case = await _for_partner(event.case_id, ctx, partners)
    _apply(ctx, case, follow_up, lambda at, by: case.introduce(
        investor=event.investor, on=event.introduced_on, at=at, by=by))


async def schedule_pitch(event: events.PitchScheduled, ctx: Ctx, partners: Partners,
                         follow_up: FollowUp) -> None:
    case = await _for_partner(event.case_id, ctx, partners)
    _apply(ctx, case, follow_up, lambda at, by: case.schedule_pitch(
        session_id=event.session_id, on=event.scheduled_on, at=at, by=by))


async def hold_pitch(event: events.PitchHeld, ctx: Ctx, partners: Partners, follow_up: FollowUp) -> None:
    case = await _for_partner(event.case_id, ctx, partners)
    _apply(ctx, case, follow_up, lambda at, by: case.hold_pitch(
        session_id=event.session_id, on=event.held_on, investors_present=event.investors_present,
        at=at, by=by))


async def express_interest(event: events.InterestExpressed, ctx: Ctx, partners: Partners,
                           follow_up: FollowUp) -> None:
    case = await _for_partner(event.case_id, ctx, partners)
    _apply(ctx, case, follow_up, lambda at, by: case.express_interest(
        investor=event.investor, on=event.expressed_on, amount_cents=event.amount_cents, at=at, by=by))


async def close_round(event: events.RoundClosed, ctx: Ctx, partners: Partners, follow_up: FollowUp) -> None:
    case = await _for_partner(event.case_id, ctx, partners)
    _apply(ctx, case, follow_up, lambda at, by: case.close_round(
        amount_cents=event.amount_raised_cents, investors=list(event.investors), on=event.closed_on,
        at=at, by=by))


# ---- coaches ----------------------------------------------------------------------------------------


async def hold_coaching_session(event: events.CoachingSessionHeld, ctx: Ctx, partners: Partners,
                                follow_up: FollowUp) -> None:
    case = await _for_partner(event.case_id, ctx, partners)
    _apply(ctx, case, follow_up, lambda at, by: case.hold_coaching_session(
        on=event.held_on, topics=list(event.topics), hours=event.hours, at=at, by=by))


async def deliver(event: events.DeliverableDelivered, ctx: Ctx, partners: Partners,
                  follow_up: FollowUp) -> None:
    case = await _for_partner(event.case_id, ctx, partners)
    _apply(ctx, case, follow_up, lambda at, by: case.deliver(
        deliverable=event.deliverable, on=event.delivered_on, at=at, by=by))


# ---- shared steps ----------------------------------------------------------------------------------


async def _load(case_id: str, ctx: Ctx) -> FinancingCase:
    case = await ctx.uow.cases.get(case_id)
    if case is None or case.cluster != ctx.cluster:
        raise Rejected(f"unknown case {case_id} in {ctx.cluster}")
    if case.siren != ctx.incoming.company:
        raise Rejected(f"case {case_id} is about company {case.siren}; the event's subject must be "
                       f"that SIREN, not {ctx.incoming.company}")
    return case


async def _for_staff(case_id: str, ctx: Ctx, partners: Partners) -> FinancingCase:
    if not partners.is_staff(ctx.cluster, ctx.incoming.producer):
        raise Rejected(f"{ctx.incoming.producer} is not a staff tool of {ctx.cluster}: only its staff "
                       f"may publish {ctx.incoming.envelope.type}")
    return await _load(case_id, ctx)


async def _for_partner(case_id: str, ctx: Ctx, partners: Partners) -> FinancingCase:
    producer = ctx.incoming.producer
    partner = partners.partner(ctx.cluster, producer)
    if partner is None:
        raise Rejected(f"{producer} is not a financing partner of {ctx.cluster}")
    # What each kind of partner may publish is the table its NATS permissions come from: a
    # stack run without them must refuse the same (a coach's loan decision, a bank's pitch).
    allowed = events.EVENTS_OF_PARTNER_KIND[partner.kind.value]
    if type(ctx.incoming.data) not in allowed:
        names = ", ".join(cls.name() for cls in allowed)
        raise Rejected(f"{producer} is a partner of {ctx.cluster} of kind {partner.kind.value}, which "
                       f"publishes {names}, not {ctx.incoming.data.name()}")
    case = await _load(case_id, ctx)
    if case.partner != producer:
        served = f"served by {case.partner}" if case.partner else "not assigned to a partner yet"
        raise Rejected(f"case {case.id} is {served}, not by {producer}")
    return case


def _apply(ctx: Ctx, case: FinancingCase, follow_up: FollowUp,
           fact: Callable[[Any, str], CaseEntry]) -> None:
    """Let the domain take the fact (or refuse it), publish where the case now stands, and
    start its "no news" clock again."""
    try:
        entry = fact(ctx.received_at, ctx.incoming.producer)
    except DomainError as exc:
        raise Rejected(str(exc)) from None
    _emit(ctx, case, entry, events.CaseProgressed)
    follow_up.news(ctx.uow.timers, case)


def _emit(ctx: Ctx, case: FinancingCase, entry: CaseEntry, cls: type[events.CaseEvent]) -> None:
    extra = {"fact": entry.fact} if cls is events.CaseProgressed else {}
    envelope = ctx.incoming.envelope
    # Where the case now stands and the fact that took it there; never the summary (it may
    # quote a partner's figures or names).
    log_when_committed(ctx.uow, "case.progressed", service=SERVICE, event_id=envelope.id,
                       event_type=envelope.type, cluster=case.cluster, correlation_id=case.correlation_id,
                       company=case.siren, producer=ctx.incoming.producer, case_id=case.id,
                       programme=case.programme, kind=case.kind.value, fact=entry.fact, stage=case.stage,
                       partner=case.partner, closed=case.is_closed)
    ctx.emit(cls(
        case_id=case.id, siren=case.siren, cluster=case.cluster, programme=case.programme,
        cohort=case.cohort, kind=case.kind.value, stage=case.stage, partner=case.partner, at=entry.at,
        by=entry.by, summary=entry.summary, requested_cents=case.requested_cents,
        awarded_cents=case.awarded_cents, disbursed_cents=case.disbursed_cents,
        remaining_cents=case.remaining_cents, **extra,
    ), company=case.siren, correlation_id=case.correlation_id)


HANDLERS: Mapping[type[EventData], Any] = {
    enrolment.ApplicationEnrolled: open_case,
    enrolment.ApplicationWithdrawn: close_case,
    enrolment.ApplicationCompleted: close_case,
    events.CaseAssigned: assign_case,
    events.RequirementAdded: add_requirement,
    events.RequirementUpdated: update_requirement,
    events.CheckpointRecorded: record_checkpoint,
    events.GrowthContractSigned: sign_growth_contract,
    events.GrowthMilestoneReviewed: review_milestone,
    events.FinancingActionRecorded: record_financing_action,
    events.LoanRequestReceived: receive_loan_request,
    events.LoanDecided: decide_loan,
    events.LoanTrancheDisbursed: disburse_tranche,
    events.InvestorIntroduced: introduce_investor,
    events.PitchScheduled: schedule_pitch,
    events.PitchHeld: hold_pitch,
    events.InterestExpressed: express_interest,
    events.RoundClosed: close_round,
    events.CoachingSessionHeld: hold_coaching_session,
    events.DeliverableDelivered: deliver,
}


def bind_handlers(partners: Partners, follow_up: FollowUp) -> dict[type[EventData], Handler]:
    """Handlers with their dependencies injected (called by the bootstrap)."""
    return {event: partial(handler, partners=partners, follow_up=follow_up)
            for event, handler in HANDLERS.items()}
