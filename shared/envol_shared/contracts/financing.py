"""Events of the financing service.

A financing case opens when enrolment publishes ``application.enrolled`` for a financing
programme; its id is the application id (``case_id``), which cluster staff hand to the
partner serving the case. Every event below carries the case id and, as its CloudEvents
``subject``, the SIREN of the company the case is about.

- Cluster staff (producer ``staff``) assign a case to a partner, set requirements, record
  outcome checkpoints, and run Pégase's growth contracts and ASTech's support actions.
- Partner banks publish the life of an R&D loan; the investors' club its introductions,
  pitches and rounds; coaches their sessions and deliverables — each on its own producer
  token (``envol.aerospace-valley.banque-garonne.loan.decided``).
- The financing service publishes what happened to the case, reminders and escalations.
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import Field, model_validator

from envol_shared.contracts.enrolment import ApplicationCompleted, ApplicationEnrolled, ApplicationWithdrawn
from envol_shared.events import MAX_CENTS, Day, EuroCents, EventData, Payload, Token, UtcDatetime, event_type

Text = Annotated[str, Field(min_length=1, max_length=500)]
# An organisation (an investment fund, a business-angel network), never a person's name.
Organisation = Annotated[str, Field(min_length=1, max_length=200)]
PositiveCents = Annotated[int, Field(gt=0, le=MAX_CENTS, description="amount in euro cents")]

CaseKind = Literal["rd_loan", "investors_club", "coaching", "growth_contract", "private_financing"]
RequirementKind = Literal["report", "signed_contract", "milestone_review"]
RequirementStatus = Literal["open", "in_progress", "delayed", "complete", "abandoned"]
CheckpointName = Literal["baseline", "month_6", "month_12", "month_24"]


# ---- published by cluster staff --------------------------------------------------------


@event_type
class CaseAssigned(EventData):
    """Staff choose the partner serving a case (a bank for an R&D loan, with the amount)."""

    type: ClassVar[str] = "envol.financing.case.assigned.v1"

    case_id: Token
    partner: Token = Field(description="producer id of a bank, investors' club or coach serving the cluster")
    requested_cents: PositiveCents | None = Field(default=None, description="required for an R&D loan")
    by: Token


@event_type
class RequirementAdded(EventData):
    type: ClassVar[str] = "envol.financing.requirement.added.v1"

    case_id: Token
    requirement_id: Token
    kind: RequirementKind
    title: Text
    due_on: Day
    owner: Token = Field(description="staff or partner id responsible for it, not a name")
    gates_tranche: int | None = Field(default=None, ge=1,
                                      description="R&D loans: the tranche that waits for it")


@event_type
class RequirementUpdated(EventData):
    type: ClassVar[str] = "envol.financing.requirement.updated.v1"

    case_id: Token
    requirement_id: Token
    status: Literal["in_progress", "delayed", "complete", "abandoned"]
    on: Day
    note: Text | None = None


@event_type
class CheckpointRecorded(EventData):
    """What the company has raised in private financing to date: at opening (baseline),
    then 6, 12 and 24 months after enrolment."""

    type: ClassVar[str] = "envol.financing.checkpoint.recorded.v1"

    case_id: Token
    checkpoint: CheckpointName
    recorded_on: Day
    raised_to_date_cents: EuroCents
    note: Text | None = None


class Objective(Payload):
    objective_id: Token
    description: Text


class Lever(Payload):
    lever: Literal["financing", "region", "cci", "other"]
    description: Text
    amount_cents: EuroCents | None = None


@event_type
class GrowthContractSigned(EventData):
    """Pégase's multi-year growth contract: objectives and levers (financing among them)."""

    type: ClassVar[str] = "envol.growth.contract.signed.v1"

    case_id: Token
    signed_on: Day
    years: int = Field(ge=1, le=10)
    objectives: list[Objective] = Field(min_length=1)
    levers: list[Lever] = Field(min_length=1)


@event_type
class GrowthMilestoneReviewed(EventData):
    type: ClassVar[str] = "envol.growth.milestone.reviewed.v1"

    case_id: Token
    objective_id: Token
    reviewed_on: Day
    outcome: Literal["on_track", "late", "achieved", "abandoned"]
    note: Text | None = None


@event_type
class FinancingActionRecorded(EventData):
    """ASTech's private-financing support: an action, and what came of it."""

    type: ClassVar[str] = "envol.financing.action.recorded.v1"

    case_id: Token
    action: Text
    on: Day
    outcome: Text | None = None
    amount_obtained_cents: PositiveCents | None = None


# ---- published by partner banks ----------------------------------------------------------


@event_type
class LoanRequestReceived(EventData):
    type: ClassVar[str] = "envol.loan.request.received.v1"

    case_id: Token
    bank_reference: Token
    received_on: Day


@event_type
class LoanDecided(EventData):
    type: ClassVar[str] = "envol.loan.decided.v1"

    case_id: Token
    decision: Literal["granted", "refused"]
    decided_on: Day
    reason: Text
    awarded_cents: PositiveCents | None = None
    rate_bps: int | None = Field(default=None, ge=0, le=5000, description="yearly rate, basis points")
    duration_months: int | None = Field(default=None, ge=1, le=360)
    tranches_planned: int | None = Field(default=None, ge=1, le=24)

    @model_validator(mode="after")
    def _terms_match_decision(self) -> LoanDecided:
        terms = (self.awarded_cents, self.rate_bps, self.duration_months, self.tranches_planned)
        if self.decision == "granted" and None in terms:
            raise ValueError("a granted loan needs awarded_cents, rate_bps, duration_months and "
                             "tranches_planned")
        if self.decision == "refused" and any(t is not None for t in terms):
            raise ValueError("a refused loan has no amount nor terms")
        return self


@event_type
class LoanTrancheDisbursed(EventData):
    type: ClassVar[str] = "envol.loan.tranche.disbursed.v1"

    case_id: Token
    tranche: int = Field(ge=1, le=24)
    amount_cents: PositiveCents
    disbursed_on: Day


# ---- published by the investors' club ------------------------------------------------------


@event_type
class InvestorIntroduced(EventData):
    type: ClassVar[str] = "envol.club.introduction.made.v1"

    case_id: Token
    investor: Organisation
    introduced_on: Day


@event_type
class PitchScheduled(EventData):
    type: ClassVar[str] = "envol.club.pitch.scheduled.v1"

    case_id: Token
    session_id: Token
    scheduled_on: Day


@event_type
class PitchHeld(EventData):
    type: ClassVar[str] = "envol.club.pitch.held.v1"

    case_id: Token
    session_id: Token
    held_on: Day
    investors_present: int = Field(ge=0)


@event_type
class InterestExpressed(EventData):
    type: ClassVar[str] = "envol.club.interest.expressed.v1"

    case_id: Token
    investor: Organisation
    expressed_on: Day
    amount_cents: PositiveCents | None = None


@event_type
class RoundClosed(EventData):
    type: ClassVar[str] = "envol.club.round.closed.v1"

    case_id: Token
    closed_on: Day
    amount_raised_cents: PositiveCents
    investors: list[Organisation] = Field(min_length=1)


# ---- published by financial-engineering coaches -----------------------------------------------


@event_type
class CoachingSessionHeld(EventData):
    type: ClassVar[str] = "envol.coaching.session.held.v1"

    case_id: Token
    held_on: Day
    topics: list[Text] = Field(min_length=1)
    hours: float = Field(gt=0, le=24)


@event_type
class DeliverableDelivered(EventData):
    type: ClassVar[str] = "envol.coaching.deliverable.delivered.v1"

    case_id: Token
    deliverable: Literal["financing_plan", "data_room", "investor_deck", "business_plan"]
    delivered_on: Day


# ---- published by the financing service ----------------------------------------------------


class CaseEvent(EventData):
    """Common payload of the case events: where the case stands after what happened."""

    case_id: str
    siren: str
    cluster: str
    programme: str
    cohort: str
    kind: CaseKind
    stage: str
    partner: str | None
    at: UtcDatetime
    by: str
    summary: str
    requested_cents: EuroCents
    awarded_cents: EuroCents
    disbursed_cents: EuroCents
    remaining_cents: EuroCents


@event_type
class CaseOpened(CaseEvent):
    type: ClassVar[str] = "envol.case.opened.v1"


@event_type
class CaseProgressed(CaseEvent):
    """A partner's or staff's fact was accepted; `fact` names it (``loan.decided``...)."""

    type: ClassVar[str] = "envol.case.progressed.v1"

    fact: str


@event_type
class CaseClosed(CaseEvent):
    type: ClassVar[str] = "envol.case.closed.v1"


FollowUpReason = Literal["requirement_due_soon", "requirement_overdue", "case_stale", "checkpoint_due"]


class FollowUp(EventData):
    """Something on a case needs attention: a requirement, news, or an outcome checkpoint."""

    case_id: str
    siren: str
    cluster: str
    programme: str
    cohort: str
    reason: FollowUpReason
    due_on: Day
    owner: str | None
    requirement_id: str | None = None
    checkpoint: CheckpointName | None = None
    detail: str


@event_type
class ReminderDue(FollowUp):
    type: ClassVar[str] = "envol.case.reminder.due.v1"


@event_type
class EscalationRaised(FollowUp):
    """A reminder went unanswered: the cluster's management should step in."""

    type: ClassVar[str] = "envol.case.escalation.raised.v1"

    reminded_on: Day


STAFF_EVENTS = (CaseAssigned, RequirementAdded, RequirementUpdated, CheckpointRecorded,
                GrowthContractSigned, GrowthMilestoneReviewed, FinancingActionRecorded)
BANK_EVENTS = (LoanRequestReceived, LoanDecided, LoanTrancheDisbursed)
CLUB_EVENTS = (InvestorIntroduced, PitchScheduled, PitchHeld, InterestExpressed, RoundClosed)
COACH_EVENTS = (CoachingSessionHeld, DeliverableDelivered)
PUBLISHED = (CaseOpened, CaseProgressed, CaseClosed, ReminderDue, EscalationRaised)
# What each kind of partner (partners/<cluster>.toml) may publish: its NATS permissions.
EVENTS_OF_PARTNER_KIND = {"bank": BANK_EVENTS, "investors_club": CLUB_EVENTS, "coach": COACH_EVENTS}
# What the financing service consumes: enrolment's outcomes, then staff's and partners' facts.
CONSUMED = (ApplicationEnrolled, ApplicationWithdrawn, ApplicationCompleted,
            *STAFF_EVENTS, *BANK_EVENTS, *CLUB_EVENTS, *COACH_EVENTS)
