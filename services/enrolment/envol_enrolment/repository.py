"""Repositories: the only code that queries the enrolment tables."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from envol_enrolment.domain.model import HOLDS_A_PLACE, LIVE, Application, Company, Status


class CompanyRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session
        # What this transaction already knows, including the companies known not to exist.
        self._known: dict[str, Company | None] = {}

    async def load(self, sirens: set[str]) -> None:
        """One query for the companies of a whole batch."""
        wanted = sirens - self._known.keys()
        if not wanted:
            return
        found = await self._session.execute(
            sa.select(Company).where(Company.siren.in_(wanted))  # type: ignore[attr-defined]
        )
        self._known |= dict.fromkeys(wanted)
        self._known |= {company.siren: company for company in found.scalars()}

    async def get(self, siren: str) -> Company | None:
        if siren not in self._known:
            self._known[siren] = await self._session.get(Company, siren)
        return self._known[siren]

    def add(self, company: Company) -> None:
        self._session.add(company)
        self._known[company.siren] = company


class ApplicationRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session
        self._known: dict[str, Application | None] = {}

    async def load(self, ids: set[str]) -> None:
        """One query (and one for their histories) for the applications of a whole batch."""
        wanted = ids - self._known.keys()
        if not wanted:
            return
        found = await self._session.execute(
            sa.select(Application).where(Application.id.in_(wanted))  # type: ignore[attr-defined]
        )
        self._known |= dict.fromkeys(wanted)
        self._known |= {application.id: application for application in found.scalars()}

    async def get(self, application_id: str) -> Application | None:
        if application_id not in self._known:
            self._known[application_id] = await self._session.get(Application, application_id)
        return self._known[application_id]

    def add(self, application: Application) -> None:
        self._session.add(application)
        self._known[application.id] = application

    async def live_count(self, siren: str, programme: str, *, excluding: str) -> int:
        query = sa.select(sa.func.count()).select_from(Application).where(
            Application.siren == siren,  # type: ignore[arg-type]
            Application.programme == programme,  # type: ignore[arg-type]
            Application.status.in_(LIVE),  # type: ignore[attr-defined]
            Application.id != excluding,  # type: ignore[arg-type]
        )
        return (await self._session.execute(query)).scalar_one()

    async def places_taken(self, programme: str) -> int:
        query = sa.select(sa.func.count()).select_from(Application).where(
            Application.programme == programme,  # type: ignore[arg-type]
            Application.status.in_(HOLDS_A_PLACE),  # type: ignore[attr-defined]
        )
        return (await self._session.execute(query)).scalar_one()

    async def waitlisted(self, programme: str) -> list[Application]:
        query = sa.select(Application).where(
            Application.programme == programme,  # type: ignore[arg-type]
            Application.status == Status.WAITLISTED,  # type: ignore[arg-type]
        )
        return list((await self._session.execute(query)).scalars())

    async def of_company(self, siren: str) -> list[Application]:
        query = sa.select(Application).where(Application.siren == siren)  # type: ignore[arg-type]
        return list((await self._session.execute(query)).scalars())
