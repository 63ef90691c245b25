"""Two instances of the export service racing for the last place of a relay mission, on
PostgreSQL: each handles its enrolment in its own transaction, at the same moment; the one
that loads the mission second waits for the first to commit, then finds it full."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from support import SIRENS, enrolment_outcome

from envol_export.bootstrap import MIGRATIONS, bootstrap
from envol_export.domain.model import ExportSupport, SupportUnit
from envol_export.unit_of_work import ExportUnitOfWork
from envol_shared.consumer import Context
from envol_shared.contracts import enrolment
from envol_shared.database import create_engine, migrate
from envol_shared.events import Incoming, make_event

AV = "aerospace-valley"
CHINA = "av-vie-cn-2026"  # two places in the shipped configuration


def enrolled(support_id: str, siren: str) -> Incoming:
    data = enrolment_outcome("enrolled", support_id, siren, programme="AV-VIE-RELAY", kind="export",
                             target_country="CN", at=datetime.now(UTC))
    _, envelope = make_event(data, cluster=AV, producer="enrolment", company=siren)
    return Incoming(envelope=envelope, data=data, producer="enrolment")


async def test_two_instances_never_both_take_the_last_place(database_url):
    if not database_url.startswith("postgresql"):
        pytest.skip("two instances share one database on PostgreSQL (SQLite is one process's file)")
    definition = bootstrap()
    engine = create_engine(database_url)
    handler = definition.handlers[enrolment.ApplicationEnrolled]

    def new_uow() -> ExportUnitOfWork:
        return ExportUnitOfWork(engine, "export")

    async def handle(incoming: Incoming, *, committed: asyncio.Event | None = None,
                     handled: asyncio.Event | None = None) -> None:
        """One instance's transaction; with `handled`, it holds its locks a while before committing."""
        async with new_uow() as uow:
            await handler(incoming.data, Context(incoming, uow, "export"))
            if handled is not None:
                handled.set()
                await asyncio.sleep(0.5)  # the other instance tries meanwhile
            await uow.commit()
        if committed is not None:
            committed.set()

    try:
        await migrate(engine, MIGRATIONS)
        assert definition.on_start is not None
        await definition.on_start(new_uow)
        await handle(enrolled("race-0", SIRENS[0]))  # one of the two places taken

        handled, committed = asyncio.Event(), asyncio.Event()
        first = asyncio.create_task(handle(enrolled("race-1", SIRENS[1]), handled=handled,
                                           committed=committed))
        await handled.wait()  # the first instance has taken the last place, not yet committed
        second = asyncio.create_task(handle(enrolled("race-2", SIRENS[2])))
        await asyncio.sleep(0.2)
        assert not second.done()  # blocked on the mission's lock
        await asyncio.gather(first, second)
        assert committed.is_set()

        async with new_uow() as uow:
            supports = (await uow.session.execute(
                sa.select(ExportSupport).order_by(ExportSupport.id))).scalars()  # type: ignore[arg-type]
            placed = {s.id: (s.status.value, s.unit_id) for s in supports}
            mission = await uow.session.get(SupportUnit, CHINA)
            assert mission is not None
            assert placed == {"race-0": ("assigned", CHINA), "race-1": ("assigned", CHINA),
                              "race-2": ("waiting", None)}
            assert (mission.occupied, mission.capacity) == (2, 2)
            outbox = [row[0] for row in
                      await uow.session.execute(sa.text("select subject from outbox order by id"))]
        assert outbox.count(f"envol.{AV}.export.support.waitlisted") == 1
    finally:
        await engine.dispose()
