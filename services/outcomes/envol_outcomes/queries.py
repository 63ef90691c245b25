"""The read side of outcomes: a cluster's report figures, and one company's journeys.
Answered from the outcomes database; the figures themselves are domain/figures.py."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy.ext.asyncio import AsyncSession

from envol_outcomes.domain import figures
from envol_outcomes.domain.model import Journey
from envol_shared.events import Day
from envol_shared.identifiers import CompanyId, siren_of
from envol_shared.queries import Query, QueryError


class ReportRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    first: Day = Field(alias="from", description="applications made on or after this day")
    last: Day | None = Field(default=None, alias="to", description="and on or before this one")

    @model_validator(mode="after")
    def _ordered(self) -> ReportRequest:
        if self.last is not None and self.last < self.first:
            raise ValueError("'to' is before 'from'")
        return self


class CompanyRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    company_id: CompanyId


def now() -> datetime:
    return datetime.now(UTC)


async def report(request: ReportRequest, cluster: str, session: AsyncSession) -> dict[str, Any]:
    found = await session.execute(sa.select(Journey).where(Journey.cluster == cluster))  # type: ignore[arg-type]
    return figures.report(cluster, found.scalars(), first=request.first, last=request.last, as_of=now())


def _journey(journey: Journey) -> dict[str, Any]:
    return {
        "application_id": journey.id, "programme": journey.programme, "kind": journey.kind.value,
        "cohort": journey.cohort, "status": journey.status, "steps": journey.steps,
        "enrolled_at": journey.enrolled_at, "obtained_cents": journey.obtained_cents,
        "disbursed_cents": journey.disbursed_cents, "first_outcome_at": journey.first_outcome_at,
        "gains": journey.gains, "leads": journey.leads, "meetings": journey.meetings,
        "contracts": journey.contracts, "contract_countries": journey.contract_countries,
        "checkpoints": journey.checkpoints,
    }


async def company(request: CompanyRequest, cluster: str, session: AsyncSession) -> dict[str, Any]:
    siren = siren_of(request.company_id)
    found = await session.execute(
        sa.select(Journey).where(Journey.siren == siren, Journey.cluster == cluster)  # type: ignore[arg-type]
        .order_by(Journey.id))  # type: ignore[arg-type]
    journeys = list(found.scalars())
    if not journeys:
        raise QueryError(f"no application of company {siren} in {cluster}")
    return {"siren": siren, "journeys": [_journey(j) for j in journeys]}


QUERIES = {
    "report": Query(ReportRequest, report),
    "company": Query(CompanyRequest, company),
}


