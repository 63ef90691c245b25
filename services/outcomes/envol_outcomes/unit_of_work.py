"""The outcomes unit of work: the shared transaction plus the journey repository."""

from envol_outcomes.repository import JourneyRepository
from envol_shared.events import Incoming
from envol_shared.unit_of_work import UnitOfWork


class OutcomesUnitOfWork(UnitOfWork):
    journeys: JourneyRepository

    def open_repositories(self) -> None:
        self.journeys = JourneyRepository(self.session)

    async def prefetch(self, incoming: list[Incoming]) -> None:
        # The application, its case and its support share one id.
        await self.journeys.load({
            journey_id for event in incoming
            if (journey_id := getattr(event.data, "application_id", None)
                or getattr(event.data, "case_id", None) or getattr(event.data, "support_id", None))
        })
