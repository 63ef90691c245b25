"""The enrolment unit of work: the shared transaction plus the enrolment repositories."""

from envol_enrolment.repository import ApplicationRepository, CompanyRepository
from envol_shared.events import Incoming
from envol_shared.unit_of_work import UnitOfWork


class EnrolmentUnitOfWork(UnitOfWork):
    companies: CompanyRepository
    applications: ApplicationRepository

    def open_repositories(self) -> None:
        self.companies = CompanyRepository(self.session)
        self.applications = ApplicationRepository(self.session)

    async def prefetch(self, incoming: list[Incoming]) -> None:
        # Every enrolment event is about one company (its subject) as its cluster knows it,
        # most about an application.
        await self.companies.load({(event.envelope.cluster, event.company) for event in incoming})
        await self.applications.load({
            application_id for event in incoming
            if (application_id := getattr(event.data, "application_id", None))
        })
