"""Companies, programmes and applications, and the rules that move an application along.

    applied ──> eligible ──> enrolled ──> active ──> completed
       │           │  │         ▲  │         │
       │           │  └─> waitlisted ─┘      └──> withdrawn
       └─> ineligible  └─> denied     (applied, eligible, waitlisted, enrolled -> withdrawn too)

Every transition is appended to the application's history (from, to, when, by whom, why).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum

from envol_enrolment.domain.sme import Holding, SmeAssessment, SmeCategory, assess


class DomainError(Exception):
    """A request the domain refuses; the reason is sent back to whoever asked."""


class Status(StrEnum):
    APPLIED = "applied"
    ELIGIBLE = "eligible"
    INELIGIBLE = "ineligible"
    ENROLLED = "enrolled"
    WAITLISTED = "waitlisted"
    DENIED = "denied"
    ACTIVE = "active"
    COMPLETED = "completed"
    WITHDRAWN = "withdrawn"


ALLOWED: dict[Status | None, frozenset[Status]] = {
    None: frozenset({Status.APPLIED}),
    Status.APPLIED: frozenset({Status.ELIGIBLE, Status.INELIGIBLE, Status.WITHDRAWN}),
    Status.ELIGIBLE: frozenset({Status.ENROLLED, Status.WAITLISTED, Status.DENIED, Status.WITHDRAWN}),
    Status.WAITLISTED: frozenset({Status.ENROLLED, Status.DENIED, Status.WITHDRAWN}),
    Status.ENROLLED: frozenset({Status.ACTIVE, Status.WITHDRAWN}),
    Status.ACTIVE: frozenset({Status.COMPLETED, Status.WITHDRAWN}),
    Status.INELIGIBLE: frozenset(),
    Status.DENIED: frozenset(),
    Status.COMPLETED: frozenset(),
    Status.WITHDRAWN: frozenset(),
}
LIVE = frozenset({Status.APPLIED, Status.ELIGIBLE, Status.WAITLISTED, Status.ENROLLED, Status.ACTIVE})
HOLDS_A_PLACE = frozenset({Status.ENROLLED, Status.ACTIVE})


class ProgrammeKind(StrEnum):
    FINANCING = "financing"
    EXPORT = "export"


class Rule(StrEnum):
    """Eligibility rules a programme can apply (listed per programme in the catalogue)."""

    SME = "sme"
    CLUSTER_MEMBER = "cluster_member"
    OPEN_ON_APPLICATION_DATE = "open_on_application_date"
    ONE_LIVE_APPLICATION = "one_live_application"
    PUBLIC_PROJECT = "public_project"
    TARGET_COUNTRY = "target_country"


@dataclass(frozen=True)
class Programme:
    code: str
    cluster: str
    title: str
    kind: ProgrammeKind
    capacity: int
    opens_on: date
    closes_on: date | None
    rules: frozenset[Rule]
    countries: frozenset[str] = frozenset()
    description: str = ""

    def is_open_on(self, day: date) -> bool:
        return self.opens_on <= day and (self.closes_on is None or day <= self.closes_on)

    def cohort_of(self, day: date) -> str:
        return f"{self.code}-{day.year}"


@dataclass
class Company:
    """A company as one cluster knows it, keyed by (cluster, SIREN).

    Each cluster registers its members itself: its own registration data, contact, figures
    and SME assessment. Another cluster registering the same SIREN keeps a view of its own and
    never changes this one.
    """

    cluster: str
    siren: str
    legal_name: str
    region: str
    # Memberships as this cluster's registration declared them.
    clusters: list[str]
    staff_awu: float
    turnover_cents: int
    balance_sheet_cents: int
    accounts_year: int
    holdings: list[Holding] = field(default_factory=list)
    siret: str | None = None
    # Personal data of the contact person: kept for staff, never logged or published.
    contact: dict[str, str] | None = None
    sme_category: SmeCategory = SmeCategory.NOT_SME
    sme_accounts_year: int = 0

    def assess(self) -> SmeAssessment:
        """Recompute the SME status from the stored inputs and keep it with its accounts year."""
        assessment = assess(
            staff_awu=self.staff_awu,
            turnover_cents=self.turnover_cents,
            balance_sheet_cents=self.balance_sheet_cents,
            accounts_year=self.accounts_year,
            holdings=self.holdings,
        )
        self.sme_category = assessment.category
        self.sme_accounts_year = assessment.accounts_year
        return assessment


@dataclass(frozen=True)
class ProjectReference:
    """A publicly funded collaborative R&D project the company takes part in."""

    reference: str
    call: str
    labelling_cluster: str
    label_date: date
    funder: str


@dataclass
class StatusChange:
    application_id: str
    from_status: Status | None
    to_status: Status
    at: datetime
    by: str
    reasons: list[str]


@dataclass
class Application:
    id: str
    siren: str
    programme: str
    cluster: str
    cohort: str
    applied_on: date
    submitted_at: datetime
    # The journey this application belongs to: every event about it carries this id.
    correlation_id: str
    target_country: str | None = None
    project: ProjectReference | None = None
    status: Status | None = None
    status_since: datetime | None = None
    history: list[StatusChange] = field(default_factory=list)

    @property
    def is_live(self) -> bool:
        return self.status in LIVE

    @property
    def holds_a_place(self) -> bool:
        return self.status in HOLDS_A_PLACE

    def can_move_to(self, to: Status) -> bool:
        return to in ALLOWED[self.status]

    def move_to(self, to: Status, *, at: datetime, by: str, reasons: list[str]) -> StatusChange:
        if not self.can_move_to(to):
            allowed = ", ".join(sorted(ALLOWED[self.status])) or "none (final status)"
            raise DomainError(
                f"application {self.id} cannot go from {self.status} to {to}; allowed: {allowed}"
            )
        change = StatusChange(self.id, self.status, to, at, by, list(reasons))
        self.status = to
        self.status_since = at
        self.history.append(change)
        return change


def check_eligibility(
    application: Application,
    company: Company,
    programme: Programme,
    *,
    other_live_applications: int,
) -> list[str]:
    """Every rule of the programme that the application fails, each with its reason."""
    failed: list[str] = []
    rules = programme.rules
    if Rule.SME in rules and company.sme_category is SmeCategory.NOT_SME:
        failed.append(f"company {company.siren} is not an SME under Recommendation 2003/361/EC "
                      f"(accounts {company.sme_accounts_year})")
    if Rule.CLUSTER_MEMBER in rules and programme.cluster not in company.clusters:
        failed.append(f"company {company.siren} is not a member of {programme.cluster}, "
                      f"which runs {programme.code}")
    if Rule.OPEN_ON_APPLICATION_DATE in rules and not programme.is_open_on(application.applied_on):
        closes = programme.closes_on.isoformat() if programme.closes_on else "open-ended"
        failed.append(f"{programme.code} is not open on {application.applied_on.isoformat()} "
                      f"(open {programme.opens_on.isoformat()} to {closes})")
    if Rule.ONE_LIVE_APPLICATION in rules and other_live_applications > 0:
        failed.append(f"company {company.siren} already has a live application to {programme.code}")
    if Rule.PUBLIC_PROJECT in rules and application.project is None:
        failed.append(f"{programme.code} requires a publicly funded collaborative project "
                      "(call, labelling cluster, label date, funder)")
    if Rule.TARGET_COUNTRY in rules:
        if application.target_country is None:
            failed.append(f"{programme.code} requires a target country, one of "
                          f"{', '.join(sorted(programme.countries))}")
        elif application.target_country not in programme.countries:
            failed.append(f"{programme.code} does not serve {application.target_country}; it serves "
                          f"{', '.join(sorted(programme.countries))}")
    return failed


def next_from_waitlist(waitlisted: list[Application]) -> Application | None:
    """The oldest waitlisted application: first put on the waitlist, then first submitted."""
    if not waitlisted:
        return None
    return min(waitlisted, key=lambda a: (a.status_since or a.submitted_at, a.submitted_at, a.id))
