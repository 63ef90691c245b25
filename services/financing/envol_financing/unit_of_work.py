"""The financing unit of work: the shared transaction plus the case repository."""

from envol_financing.repository import CaseRepository
from envol_shared.events import Incoming
from envol_shared.unit_of_work import UnitOfWork


class FinancingUnitOfWork(UnitOfWork):
    cases: CaseRepository

    def open_repositories(self) -> None:
        self.cases = CaseRepository(self.session)

    async def prefetch(self, incoming: list[Incoming]) -> None:
        # Enrolment's events name the application, the others the case: the same id.
        await self.cases.load({
            case_id for event in incoming
            if (case_id := getattr(event.data, "case_id", None)
                or getattr(event.data, "application_id", None))
        })
