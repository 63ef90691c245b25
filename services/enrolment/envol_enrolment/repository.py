"""Repositories: the only code that queries the enrolment tables."""

from __future__ import annotations

import sqlalchemy as sa

from envol_enrolment.domain.model import HOLDS_A_PLACE, LIVE, Application, Company, Status
from envol_shared.repository import BatchRepository


class CompanyRepository(BatchRepository[Company]):
    model = Company
    key = "siren"


class ApplicationRepository(BatchRepository[Application]):
    model = Application
    key = "id"

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
