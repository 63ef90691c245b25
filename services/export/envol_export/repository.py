"""Repositories: the only code that queries the export tables.

Whoever gives or takes a place locks the units of the pool first (``SELECT … FOR UPDATE`` on
PostgreSQL; a SQLite database has one writer at a time anyway) and reads them, and the
waiting list, as committed now rather than as loaded earlier in the batch: two instances of
the service can then never both take a mission's last place, nor both promote one SME.
"""

from __future__ import annotations

from collections.abc import Iterable

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from envol_export.domain.model import ExportSupport, Pool, SupportStatus, SupportUnit
from envol_shared.repository import BatchRepository


class UnitRepository(BatchRepository[SupportUnit]):
    model = SupportUnit
    key = "id"

    def __init__(self, session: AsyncSession) -> None:
        super().__init__(session)
        # (cluster, programme) whose units this transaction has locked and read already.
        self._locked_programmes: set[tuple[str, str]] = set()

    async def pool(self, pool: Pool) -> list[SupportUnit]:
        """The units still running that can serve `pool`, locked for this transaction, by id."""
        cluster, programme, country = pool
        if (cluster, programme) in self._locked_programmes:
            # Locked and read earlier in this transaction (the batch's prefetch): no other
            # instance can have changed them since, so what is in memory is current, and asking
            # again would cost a round trip and an autoflush per opening.
            return sorted((unit for unit in self._known.values()
                           if unit is not None and unit.cluster == cluster and unit.programme == programme
                           and unit.country == country and unit.ended_at is None),
                          key=lambda unit: unit.id)
        return await self._locked(sa.and_(
            SupportUnit.cluster == cluster,  # type: ignore[arg-type]
            SupportUnit.programme == programme,  # type: ignore[arg-type]
            SupportUnit.country == country if country else SupportUnit.country.is_(None),  # type: ignore[attr-defined]
            SupportUnit.ended_at.is_(None),  # type: ignore[attr-defined]
        ))

    async def lock_programmes(self, programmes: Iterable[tuple[str, str]]) -> None:
        """Lock at once, in id order, every unit of these (cluster, programme) pairs: a batch that
        then locks pools one by one never waits on another instance that holds one of them while
        waiting for one of its own (no deadlock)."""
        wanted = sorted(set(programmes) - self._locked_programmes)
        if wanted:
            await self._locked(sa.or_(*(sa.and_(SupportUnit.cluster == cluster,  # type: ignore[arg-type]
                                                SupportUnit.programme == programme)  # type: ignore[arg-type]
                                        for cluster, programme in wanted)))
            self._locked_programmes |= set(wanted)

    async def every(self) -> list[SupportUnit]:
        """Every unit, locked (bringing them in line with the configuration at start)."""
        return await self._locked(sa.true())

    async def _locked(self, condition: sa.ColumnElement[bool]) -> list[SupportUnit]:
        query = (sa.select(SupportUnit).where(condition).order_by(SupportUnit.id)  # type: ignore[arg-type]
                 .with_for_update().execution_options(populate_existing=True))
        found = list((await self._session.execute(query)).scalars())
        self._known |= {unit.id: unit for unit in found}
        return found


class SupportRepository(BatchRepository[ExportSupport]):
    model = ExportSupport
    key = "id"

    async def waiting(self, pool: Pool) -> list[ExportSupport]:
        """The pool's waiting list as committed now; lock the pool first."""
        cluster, programme, country = pool
        query = sa.select(ExportSupport).where(
            ExportSupport.cluster == cluster,  # type: ignore[arg-type]
            ExportSupport.programme == programme,  # type: ignore[arg-type]
            ExportSupport.status == SupportStatus.WAITING,  # type: ignore[arg-type]
        )
        if country:
            query = query.where(ExportSupport.target_country == country)  # type: ignore[arg-type]
        return await self._fresh(query)

    async def on_unit(self, unit_id: str) -> list[ExportSupport]:
        """The supports holding a place on the unit, as committed now; lock its pool first."""
        return await self._fresh(sa.select(ExportSupport).where(
            ExportSupport.unit_id == unit_id))  # type: ignore[arg-type]

    async def refresh(self, support: ExportSupport) -> None:
        """Read the support again, as committed now (another instance may have placed it)."""
        await self._fresh(sa.select(ExportSupport).where(ExportSupport.id == support.id))  # type: ignore[arg-type]

    async def _fresh(self, query: sa.Select[tuple[ExportSupport]]) -> list[ExportSupport]:
        found = list((await self._session.execute(
            query.order_by(ExportSupport.opened_at, ExportSupport.id)  # type: ignore[arg-type]
            .execution_options(populate_existing=True))).scalars())
        self._known |= {support.id: support for support in found}
        return found
