"""What the outcomes service's queries answer (see answers.py): the report's figures and a
company's journeys. The figures' rules are in services/outcomes/envol_outcomes/domain/figures.py."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import Field

from docs.generate.answers import Answer, Checkpoint

Funnel = Literal["applied", "eligible", "ineligible", "enrolled", "waitlisted", "denied", "withdrawn",
                 "completed"]


class Conversion(Answer):
    eligible_of_applied: float | None
    enrolled_of_eligible: float | None
    completed_of_enrolled: float | None


class Money(Answer):
    """What participants obtained while enrolled: money (financing) or contracts abroad (export)."""

    smes: int = Field(description="participants that obtained some")
    total_cents: int
    median_cents: int | None = Field(description="over the participants that obtained some")
    per_sme_cents: int | None = Field(description="the total over every participant")


class FirstOutcome(Answer):
    smes: int
    share: float | None = Field(description="of the participants")
    median_days: int | None = Field(description="from enrolment to the first money or contract")


class TimelinePoint(Answer):
    month: int = Field(description="months since each participant's enrolment")
    cumulative_cents: int
    share_with_outcome: float | None


class Group(Answer):
    n: int = Field(description="SMEs with this checkpoint and a baseline")
    mean_change_cents: int | None = Field(description="mean change since the baseline")
    interval: list[int] | None = Field(description="95 % bootstrap interval of the mean (2 or more SMEs)")


class Difference(Answer):
    estimate_cents: int
    interval: list[int] | None


class Comparison(Answer):
    checkpoint: Checkpoint
    measure: Literal["raised_to_date_cents", "export_turnover_cents"]
    participants: Group
    comparison: Group
    difference: Difference | None
    warning: str | None = Field(description="set when either group has too few SMEs to say anything")


class CohortFigures(Answer):
    cohort: str
    funnel: dict[Funnel, int] = Field(description="SMEs that reached each step (each SME once)")
    conversion: Conversion
    participants: int
    comparison: int = Field(description="SMEs never enrolled that were waitlisted, denied or ineligible")
    money: Money
    first_outcome: FirstOutcome
    timeline: list[TimelinePoint]
    checkpoints: list[Comparison]


class ProgrammeFigures(Answer):
    programme: str
    kind: Literal["financing", "export"]
    title: str | None
    cohorts: list[CohortFigures]


class Period(Answer):
    first: date = Field(alias="from")
    last: date | None = Field(alias="to")


class ReportAnswer(Answer):
    """Per programme and cohort of the applications made in the period: the funnel, what the
    participants obtained over time, and how they compare with the comparison group."""

    cluster: str
    period: Period
    as_of: date
    programmes: list[ProgrammeFigures]


class Journey(Answer):
    application_id: str
    programme: str
    kind: Literal["financing", "export"]
    cohort: str
    status: str
    steps: dict[Funnel | Literal["active"], datetime] = Field(description="when each step was first reached")
    enrolled_at: datetime | None
    obtained_cents: int
    disbursed_cents: int
    first_outcome_at: datetime | None
    gains: list[list[Any]] = Field(description="[when, cents] each time what it obtained grew")
    leads: int
    meetings: int
    contracts: int
    contract_countries: list[str]
    checkpoints: dict[Checkpoint, dict[str, Any]]


class OutcomesCompanyAnswer(Answer):
    """Every application of a company in this cluster, as the outcomes service follows it."""

    siren: str
    journeys: list[Journey]
