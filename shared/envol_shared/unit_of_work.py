"""The unit of work: one database transaction around inbox, state changes and outbox.

A service subclasses `UnitOfWork` to add its repositories (see each service's
``unit_of_work.py``); handlers only ever see the subclass.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import TracebackType
from typing import Self

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from envol_shared.event_log import Holds, Inbox, Outbox, Timers
from envol_shared.events import Incoming


class UnitOfWork:
    session: AsyncSession
    inbox: Inbox
    outbox: Outbox
    holds: Holds
    timers: Timers

    def __init__(self, engine: AsyncEngine, consumer: str) -> None:
        self._sessions = async_sessionmaker(engine, expire_on_commit=False)
        self._consumer = consumer

    async def __aenter__(self) -> Self:
        self.session = self._sessions()
        self.inbox = Inbox(self.session, self._consumer)
        self.outbox = Outbox(self.session)
        self.holds = Holds(self.session, self._consumer)
        self.timers = Timers(self.session)
        self.open_repositories()
        return self

    def open_repositories(self) -> None:
        """Subclasses create their repositories on `self.session` here."""

    async def prefetch(self, incoming: list[Incoming]) -> None:
        """Load at once what a batch's handlers will ask for, instead of one query per event.

        Subclasses override this; handlers stay correct without it, only slower.
        """

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # Anything not committed explicitly is rolled back: a half-applied batch never lands.
        await self.session.rollback()
        await self.session.close()

    async def flush(self) -> None:
        """Write what is pending (state, inbox, outbox, timers) without committing."""
        await self.session.flush()
        await self.inbox.flush()
        await self.outbox.flush()
        await self.timers.flush()

    async def commit(self) -> None:
        await self.flush()
        await self.session.commit()

    @asynccontextmanager
    async def savepoint(self) -> AsyncIterator[None]:
        """Everything done inside is written at the end of the block, or undone entirely if
        it raises: one message's failure, wherever it happens, takes nothing else with it.

        Afterwards the session holds nothing the undone block may have touched: repositories
        start afresh and read again what they need."""
        await self.flush()  # what came before is not the block's to lose
        if self.session.bind.dialect.name == "sqlite":
            # pysqlite opens its transaction only at the first write; a savepoint opened
            # before that would be the transaction itself, and releasing it would commit.
            await self.session.execute(sa.text("UPDATE inbox SET outcome = outcome WHERE 1 = 0"))
        written = len(self.outbox.written)
        nested = await self.session.begin_nested()
        try:
            yield
            await self.flush()
        except BaseException:
            await nested.rollback()
            self.inbox.forget_pending()
            self.outbox.forget_since(written)
            self.timers.forget_pending()
            self.session.expunge_all()
            self.open_repositories()
            raise
        await nested.commit()
