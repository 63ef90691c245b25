"""Repositories: the only code that queries the enrolment tables."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from envol_enrolment.domain.model import HOLDS_A_PLACE, LIVE, Application, Company, Status
from envol_shared.repository import BatchRepository

CompanyKey = tuple[str, str]  # (cluster, SIREN): each cluster keeps its own view of a company


class CompanyRepository:
    """Each cluster's view of its companies. Like `BatchRepository`, a batch's views are
    loaded in one query and `get` answers from them, "not registered" included."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session
        self._known: dict[CompanyKey, Company | None] = {}

    async def load(self, keys: set[CompanyKey]) -> None:
        wanted = keys - self._known.keys()
        if not wanted:
            return
        # By SIREN alone: a company has a view in a few clusters at most, and the statement
        # stays the same on every database.
        query = sa.select(Company).where(
            Company.siren.in_({siren for _, siren in wanted}))  # type: ignore[attr-defined]
        found = {(c.cluster, c.siren): c for c in (await self._session.execute(query)).scalars()}
        self._known |= {key: found.get(key) for key in wanted}

    async def get(self, cluster: str, siren: str) -> Company | None:
        key = (cluster, siren)
        if key not in self._known:
            self._known[key] = await self._session.get(Company, {"cluster": cluster, "siren": siren})
        return self._known[key]

    def add(self, company: Company) -> None:
        self._session.add(company)
        self._known[(company.cluster, company.siren)] = company


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
