"""The read side of enrolment: what operators and other tools may ask, answered from the
enrolment database (cosmicpython's "views"). Contact persons' data is never returned."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict
from sqlalchemy.ext.asyncio import AsyncSession

from envol_enrolment.domain.model import Application, Company
from envol_shared.identifiers import CompanyId, siren_of
from envol_shared.queries import Query, QueryError


class ApplicationRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    application_id: str


class CompanyRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    company_id: CompanyId


def _application(application: Application) -> dict[str, Any]:
    return {
        "application_id": application.id,
        "siren": application.siren,
        "programme": application.programme,
        "cohort": application.cohort,
        "status": application.status,
        "status_since": application.status_since,
        "applied_on": application.applied_on,
        "target_country": application.target_country,
        "correlation_id": application.correlation_id,
        "history": [
            {"from": change.from_status, "to": change.to_status, "at": change.at,
             "by": change.by, "reasons": change.reasons}
            for change in application.history
        ],
    }


async def application_state(request: ApplicationRequest, cluster: str,
                            session: AsyncSession) -> dict[str, Any]:
    application = await session.get(Application, request.application_id)
    if application is None or application.cluster != cluster:
        raise QueryError(f"unknown application {request.application_id} in {cluster}")
    return {"application": _application(application)}


async def company_state(request: CompanyRequest, cluster: str,
                        session: AsyncSession) -> dict[str, Any]:
    siren = siren_of(request.company_id)
    # The cluster's own view: what it registered, whatever other clusters registered since.
    company = await session.get(Company, {"cluster": cluster, "siren": siren})
    if company is None:
        raise QueryError(f"unknown company {siren} in {cluster}")
    applications = await session.execute(
        sa.select(Application)
        .where(Application.siren == siren, Application.cluster == cluster)  # type: ignore[arg-type]
        .order_by(Application.submitted_at)  # type: ignore[arg-type]
    )
    return {
        "company": {
            "siren": company.siren, "siret": company.siret, "legal_name": company.legal_name,
            "region": company.region, "clusters": company.clusters,
            "sme_category": company.sme_category, "sme_accounts_year": company.sme_accounts_year,
            "staff_awu": company.staff_awu, "turnover_cents": company.turnover_cents,
            "balance_sheet_cents": company.balance_sheet_cents,
        },
        "applications": [_application(a) for a in applications.scalars()],
    }


QUERIES = {
    "application": Query(ApplicationRequest, application_state),
    "company": Query(CompanyRequest, company_state),
}
