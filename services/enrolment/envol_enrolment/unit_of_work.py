"""The enrolment unit of work: the shared transaction plus the enrolment repositories."""

from envol_enrolment.repository import ApplicationRepository, CompanyRepository
from envol_shared.unit_of_work import UnitOfWork


class EnrolmentUnitOfWork(UnitOfWork):
    companies: CompanyRepository
    applications: ApplicationRepository

    def open_repositories(self) -> None:
        self.companies = CompanyRepository(self.session)
        self.applications = ApplicationRepository(self.session)
