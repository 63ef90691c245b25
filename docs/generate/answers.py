"""What each query answers, as pydantic models: the shapes the services' `queries.py` build.

The services build their answers as plain dictionaries; these models describe them for the
catalogue. tests/unit/test_query_answers.py runs every query of every service on a database
filled by the domain and checks each answer against these models (no field more, none
less), so a change to an answer that is not made here too fails the tests.

Whatever the query, a request that is wrong, an unknown id or an id of another cluster gets
`{"error": "..."}` instead (`ErrorAnswer`).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from envol_shared.contracts.enrolment import ApplicationStatus, SmeCategory
from envol_shared.contracts.export import SupportKind, SupportStatus
from envol_shared.contracts.financing import CaseKind, RequirementKind, RequirementStatus

Checkpoint = Literal["baseline", "month_6", "month_12", "month_24"]
UnitKind = Literal["relay_mission", "export_desk", "cci_cohort"]


class Answer(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class ErrorAnswer(Answer):
    """What every query answers to a wrong request, an unknown id or an id of another cluster."""

    error: str = Field(description="what was wrong, in words")


# ---- enrolment ----------------------------------------------------------------------------


class StatusLine(Answer):
    """One line of an application's audit trail."""

    from_status: ApplicationStatus | None = Field(alias="from")
    to: ApplicationStatus
    at: datetime
    by: str = Field(description="who decided: enrolment itself, or a staff id")
    reasons: list[str]


class ApplicationState(Answer):
    application_id: str
    siren: str
    programme: str
    cohort: str = Field(description="the programme and the year of application, e.g. AV-RD-LOAN-2026")
    status: ApplicationStatus | None
    status_since: datetime | None
    applied_on: date
    target_country: str | None
    correlation_id: str = Field(description="the journey: every event about this application carries it")
    history: list[StatusLine]


class ApplicationAnswer(Answer):
    """An application with its whole history."""

    application: ApplicationState


class CompanyView(Answer):
    """The company as this cluster registered it (contact persons are never returned)."""

    siren: str
    siret: str | None
    legal_name: str
    region: str
    clusters: list[str]
    sme_category: SmeCategory
    sme_accounts_year: int
    staff_awu: float
    turnover_cents: int
    balance_sheet_cents: int


class EnrolmentCompanyAnswer(Answer):
    """A company in this cluster's own view, and its applications in this cluster."""

    company: CompanyView
    applications: list[ApplicationState]


# ---- financing ----------------------------------------------------------------------------


class TrancheLine(Answer):
    tranche: int
    amount_cents: int
    disbursed_on: date


class RequirementLine(Answer):
    requirement_id: str
    kind: RequirementKind
    title: str
    due_on: date
    owner: str
    status: RequirementStatus
    gates_tranche: int | None
    completed_on: date | None


class CaseCheckpointLine(Answer):
    checkpoint: Checkpoint
    recorded_on: date
    raised_to_date_cents: int
    note: str | None


class CaseHistoryLine(Answer):
    at: datetime
    fact: str = Field(description="the accepted event's name (loan.decided...) or case.opened, case.closed")
    by: str
    summary: str
    stage: str


class CaseState(Answer):
    case_id: str
    siren: str
    programme: str
    cohort: str
    kind: CaseKind
    stage: str
    partner: str | None
    enrolled_at: datetime
    opened_at: datetime
    closed_at: datetime | None
    close_reason: str | None
    last_news_at: datetime | None
    succeeded: bool | None = Field(description="null while the outcome is unknown")
    decided_at: datetime | None
    first_disbursed_at: datetime | None
    requested_cents: int
    awarded_cents: int
    disbursed_cents: int
    remaining_cents: int
    details: dict[str, Any] = Field(description="kind-specific facts: loan terms, investors met, pitch "
                                                "sessions, coaching sessions, objectives, actions...")
    tranches: list[TrancheLine]
    requirements: list[RequirementLine]
    checkpoints: list[CaseCheckpointLine]
    correlation_id: str
    history: list[CaseHistoryLine]


class CaseFollowUpLine(Answer):
    """A reminder or escalation still to come."""

    kind: str = Field(description="requirement, case_stale or checkpoint")
    step: str | None = Field(description="due_soon, overdue, remind or escalate")
    at: datetime
    requirement_id: str | None = None
    checkpoint: Checkpoint | None = None


class CaseWithFollowUp(CaseState):
    follow_up: list[CaseFollowUpLine]


class CaseAnswer(Answer):
    """A case with its amounts, tranches, requirements, checkpoints, history and coming reminders."""

    case: CaseWithFollowUp


class FinancingCompanyAnswer(Answer):
    """Every financing case of a company in this cluster."""

    siren: str
    cases: list[CaseState]


class RaisedSinceBaseline(Answer):
    recorded: int = Field(description="companies that recorded both the baseline and this checkpoint")
    raised_since_baseline_cents: int
    median_raised_since_baseline_cents: float | None


class CheckpointOutcomes(Answer):
    month_6: RaisedSinceBaseline
    month_12: RaisedSinceBaseline
    month_24: RaisedSinceBaseline


class FinancingFigures(Answer):
    smes_supported: int = Field(description="SMEs with a case, each counted once (distinct SIRENs)")
    cases_opened: int
    cases_closed: int
    requested_cents: int
    awarded_cents: int
    disbursed_cents: int
    cases_decided: int
    cases_succeeded: int
    success_rate: float | None = Field(description="of the cases whose outcome is known")
    median_days_to_decision: float | None
    median_days_to_first_disbursement: float | None
    checkpoints: CheckpointOutcomes


class FinancingFiguresRow(FinancingFigures):
    programme: str
    cohort: str
    kind: CaseKind


class FinancingFiguresAnswer(Answer):
    """Per programme and cohort, and their totals: counts, money, success rate, delays and outcomes."""

    cluster: str
    figures: list[FinancingFiguresRow]
    totals: FinancingFigures = Field(description="the same figures recomputed over every case the "
                                                 "request covers: each SME counted once")


# ---- export -------------------------------------------------------------------------------


class ContractLine(Answer):
    contract_id: str
    country: str
    buyer: str
    amount_cents: int
    signed_on: date
    reported_by: str


class SupportCheckpointLine(Answer):
    checkpoint: Checkpoint
    recorded_on: date
    export_turnover_cents: int
    countries_served: list[str]
    contracts_to_date: int
    note: str | None


class SupportHistoryLine(Answer):
    at: datetime
    fact: str
    by: str
    summary: str
    status: str


class SupportState(Answer):
    support_id: str
    siren: str
    programme: str
    cohort: str
    kind: SupportKind
    target_country: str | None
    status: SupportStatus
    unit_id: str | None
    partner: str | None
    enrolled_at: datetime
    opened_at: datetime
    waiting_since: datetime | None
    first_assigned_at: datetime | None
    days_waited: float | None = Field(description="from opening to the first place, when it waited")
    closed_at: datetime | None
    close_reason: str | None
    last_news_at: datetime | None
    leads: int
    meetings: int
    contracted_cents: int
    first_contract_on: date | None
    new_countries: list[str] = Field(description="countries of its contracts and latest checkpoint "
                                                 "that its baseline did not list")
    details: dict[str, Any] = Field(description="partners' facts: leads, meetings, prospect lists, "
                                                "set-up, workshops, strategy")
    contracts: list[ContractLine]
    checkpoints: list[SupportCheckpointLine]
    correlation_id: str
    history: list[SupportHistoryLine]


class SupportFollowUpLine(Answer):
    kind: str
    step: str | None
    at: datetime
    checkpoint: Checkpoint | None


class SupportWithFollowUp(SupportState):
    follow_up: list[SupportFollowUpLine]


class SupportAnswer(Answer):
    """A support with its facts, contracts, checkpoints, history and coming reminders."""

    support: SupportWithFollowUp


class ExportCompanyAnswer(Answer):
    """Every export support of a company in this cluster."""

    siren: str
    supports: list[SupportState]


class UnitState(Answer):
    """A relay mission, export desk or CCI cohort and its occupancy."""

    unit_id: str
    kind: UnitKind
    programme: str
    country: str | None = Field(description="null for a CCI cohort: it serves any target country")
    partner: str
    capacity: int
    occupied: int
    free_places: int
    starts_on: date
    ends_on: date | None = Field(description="its last day")
    host_siren: str | None
    host_company: str | None
    volunteer_id: str | None = Field(description="an id, never a name")
    details: dict[str, Any] = Field(description="a desk's reception and sales force; a cohort's workshops")
    origin: str = Field(description="configuration, or the staff producer that opened it")
    opened_at: datetime
    ended_at: datetime | None
    end_reason: str | None


class UnitSme(Answer):
    support_id: str
    siren: str
    since: datetime | None
    leads: int
    meetings: int
    contracts: int


class UnitWaiting(Answer):
    position: int
    support_id: str
    siren: str
    waiting_since: datetime | None


class UnitHistoryLine(Answer):
    at: datetime
    fact: str
    support_id: str | None
    occupied: int
    summary: str


class UnitDetail(UnitState):
    smes: list[UnitSme]
    waiting: list[UnitWaiting] = Field(description="the waiting list of its pool, oldest first")
    history: list[UnitHistoryLine]


class UnitAnswer(Answer):
    """A unit: who has a place, who waits for one, occupancy over time."""

    unit: UnitDetail


class UnitsRow(UnitState):
    waiting: int = Field(description="SMEs waiting in its pool")


class UnitsAnswer(Answer):
    """Every unit of the cluster with its occupancy and waiting SMEs."""

    cluster: str
    units: list[UnitsRow]


class ExportFigures(Answer):
    smes_supported: int
    assigned_now: int
    waiting_now: int
    closed: int
    smes_who_waited: int
    median_days_waited: float | None
    longest_current_wait_days: float | None
    leads: int
    meetings: int
    prospect_lists: int
    local_setups: int
    workshops_attended: int
    strategies_delivered: int
    contracts: int
    contracted_cents: int
    smes_with_a_contract: int
    new_countries_entered: int
    median_days_to_first_contract: float | None


class ExportFiguresRow(ExportFigures):
    programme: str
    cohort: str
    country: str | None
    kind: SupportKind


class ExportFiguresAnswer(Answer):
    """Per programme, cohort and target country, and their totals."""

    cluster: str
    figures: list[ExportFiguresRow]
    totals: ExportFigures = Field(description="the same figures recomputed over every support the "
                                              "request covers: each SME counted once")
    all: ExportFigures = Field(description="the same as totals (its former name)")


from docs.generate.answers_outcomes import OutcomesCompanyAnswer, ReportAnswer  # noqa: E402 - they extend Answer

# What each query of each service answers (besides ErrorAnswer).
ANSWERS: dict[str, dict[str, type[Answer]]] = {
    "enrolment": {"application": ApplicationAnswer, "company": EnrolmentCompanyAnswer},
    "financing": {"case": CaseAnswer, "company": FinancingCompanyAnswer, "figures": FinancingFiguresAnswer},
    "export": {"support": SupportAnswer, "company": ExportCompanyAnswer, "unit": UnitAnswer,
               "units": UnitsAnswer, "figures": ExportFiguresAnswer},
    "outcomes": {"report": ReportAnswer, "company": OutcomesCompanyAnswer},
}
