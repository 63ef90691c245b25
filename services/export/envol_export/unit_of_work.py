"""The export unit of work: the shared transaction plus the support and unit repositories."""

from envol_export.repository import SupportRepository, UnitRepository
from envol_shared.contracts import enrolment
from envol_shared.contracts import export as events
from envol_shared.events import Incoming
from envol_shared.unit_of_work import UnitOfWork


class ExportUnitOfWork(UnitOfWork):
    supports: SupportRepository
    units: UnitRepository

    def open_repositories(self) -> None:
        self.supports = SupportRepository(self.session)
        self.units = UnitRepository(self.session)

    async def prefetch(self, incoming: list[Incoming]) -> None:
        # Places change under the lock of their programme's units: take every lock the batch
        # needs first, in one ordered statement (see UnitRepository.lock_programmes), then read
        # the supports as they stand under those locks.
        programmes = {(event.envelope.cluster, data.programme) for event in incoming
                      if isinstance(data := event.data, events.MissionOpened)
                      or (isinstance(data, enrolment.ApplicationTransition)
                          and data.programme_kind == "export")}
        ended = {event.data.mission_id for event in incoming if isinstance(event.data, events.MissionEnded)}
        await self.units.load(ended)
        for mission_id in ended:
            if (unit := await self.units.get(mission_id)) is not None:
                programmes.add((unit.cluster, unit.programme))
        await self.units.lock_programmes(programmes)
        # Enrolment's events name the application, the others the support: the same id.
        await self.supports.load({
            support_id for event in incoming
            if (support_id := getattr(event.data, "support_id", None)
                or getattr(event.data, "application_id", None))
        })
