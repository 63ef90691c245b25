"""A base for repositories whose aggregates a batch loads in one query.

The consumer asks the unit of work to `prefetch` what a batch is about; each repository then
answers `get` from what it loaded, including "does not exist", without a query per event.
"""

from __future__ import annotations

from typing import Any, ClassVar, Generic, TypeVar

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

T = TypeVar("T")


class BatchRepository(Generic[T]):
    model: ClassVar[type[Any]]
    key: ClassVar[str]  # name of the primary-key attribute

    def __init__(self, session: AsyncSession) -> None:
        self._session = session
        self._known: dict[str, T | None] = {}

    async def load(self, keys: set[str]) -> None:
        """One query for every aggregate of a batch not known yet."""
        wanted = keys - self._known.keys()
        if not wanted:
            return
        column = getattr(self.model, self.key)
        found = await self._session.execute(sa.select(self.model).where(column.in_(wanted)))
        self._known |= dict.fromkeys(wanted)
        self._known |= {getattr(item, self.key): item for item in found.scalars()}

    async def get(self, key: str) -> T | None:
        if key not in self._known:
            self._known[key] = await self._session.get(self.model, key)
        return self._known[key]

    def add(self, item: T) -> None:
        self._session.add(item)
        self._known[getattr(item, self.key)] = item
