"""Events of the enrolment service.

Cluster staff (producer ``staff``, or any staff tool given its own producer id) publish the
first four; the enrolment service publishes the rest. Financing and export react to
``application.enrolled``, ``application.withdrawn`` and ``application.completed``.
"""

from typing import Annotated, ClassVar, Literal

from pydantic import Field, field_validator

from envol_shared.events import Day, EuroCents, EventData, Payload, Token, UtcDatetime, event_type
from envol_shared.identifiers import CompanyId, Siren

HolderKind = Literal[
    "enterprise",
    "public_body",
    "venture_capital",
    "business_angel",
    "university",
    "small_local_authority",
    "institutional_investor",
]
Country = Annotated[str, Field(pattern=r"^[A-Z]{2}$", description="ISO 3166-1 alpha-2 code")]
ProgrammeCode = Annotated[str, Field(pattern=r"^[A-Z0-9][A-Z0-9-]{1,39}$")]
Text = Annotated[str, Field(min_length=1, max_length=500)]
# Ten million annual work units: more than any group employs.
MAX_STAFF_AWU = 10_000_000


class Holding(Payload):
    """A stake held by another organisation, with that holder's own figures.

    Declare stakes of 25 % or more, and every stake of a public body: public bodies
    controlling 25 % together, even through smaller stakes, make the company not an SME.
    """

    holder: Text
    holder_kind: HolderKind
    share_percent: float = Field(gt=0, le=100)
    holder_staff_awu: float | None = Field(default=None, ge=0, le=MAX_STAFF_AWU)
    holder_turnover_cents: EuroCents | None = None
    holder_balance_sheet_cents: EuroCents | None = None


class Contact(Payload):
    """Personal data: stored for the cluster's staff, never logged nor published onwards."""

    name: Text
    email: Annotated[str, Field(max_length=254, pattern=r"^[^@\s]+@[^@\s]+$")]
    phone: Annotated[str, Field(max_length=32)] | None = None


class PublicProjectReference(Payload):
    """A publicly funded collaborative R&D project (FUI, PSPC-Régions...)."""

    reference: Text
    call: Text
    labelling_cluster: Token
    label_date: Day
    funder: Text


# ---- published by cluster staff -------------------------------------------------------


@event_type
class CompanyRegistered(EventData):
    """A company registered with one or more clusters, or updated its registration."""

    type: ClassVar[str] = "envol.company.registered.v1"

    company_id: CompanyId = Field(description="SIREN or SIRET; spaces and dots accepted")
    legal_name: Text
    region: Text
    clusters: list[Token] = Field(min_length=1)
    staff_awu: float = Field(ge=0, le=MAX_STAFF_AWU, description="staff in annual work units")
    turnover_cents: EuroCents
    balance_sheet_cents: EuroCents
    accounts_year: int = Field(ge=1990, le=2100)
    holdings: list[Holding] = Field(default_factory=list)
    contact: Contact | None = None


@event_type
class ApplicationSubmitted(EventData):
    type: ClassVar[str] = "envol.application.submitted.v1"

    application_id: Token
    company_id: CompanyId
    programme: ProgrammeCode
    applied_on: Day
    target_country: Country | None = None
    project: PublicProjectReference | None = None


@event_type
class ApplicationReviewed(EventData):
    """A reviewer's decision on an eligible (or waitlisted) application."""

    type: ClassVar[str] = "envol.application.reviewed.v1"

    application_id: Token
    decision: Literal["accept", "deny"]
    reviewer: Token = Field(description="staff id of the reviewer, not a name")
    reason: Text


@event_type
class ParticipationStarted(EventData):
    type: ClassVar[str] = "envol.participation.started.v1"

    application_id: Token
    by: Token


@event_type
class ParticipationFinished(EventData):
    type: ClassVar[str] = "envol.participation.finished.v1"

    application_id: Token
    by: Token
    reason: Text = "programme completed"


@event_type
class WithdrawalRequested(EventData):
    type: ClassVar[str] = "envol.withdrawal.requested.v1"

    application_id: Token
    by: Token
    reason: Text


# ---- published by the enrolment service ---------------------------------------------

SmeCategory = Literal["micro", "small", "medium", "not_sme"]


@event_type
class CompanyAssessed(EventData):
    """A registration was stored and the company's SME status (re)computed."""

    type: ClassVar[str] = "envol.company.assessed.v1"

    siren: Siren
    legal_name: str
    region: str
    clusters: list[str]
    sme_category: SmeCategory
    accounts_year: int
    # The figures the decision used, after aggregating partner and linked enterprises.
    staff_awu: float
    turnover_cents: EuroCents
    balance_sheet_cents: EuroCents
    reasons: list[str]


ApplicationStatus = Literal[
    "applied", "eligible", "ineligible", "enrolled", "waitlisted", "denied",
    "active", "completed", "withdrawn",
]


class ApplicationTransition(EventData):
    """Common payload of every application status event: one line of the audit trail."""

    application_id: str
    siren: Siren
    legal_name: str
    cluster: str
    programme: str
    programme_kind: Literal["financing", "export"]
    cohort: str
    from_status: ApplicationStatus | None
    to_status: ApplicationStatus
    at: UtcDatetime
    by: str
    reasons: list[str]
    target_country: str | None = None
    project: PublicProjectReference | None = None

    @field_validator("to_status")
    @classmethod
    def _matches_type(cls, value: str) -> str:
        name = cls.type.split(".")[2]
        if name != EVENT_NAME_OF_STATUS.get(value, value):
            raise ValueError(f"a {cls.type} event cannot have to_status {value!r}")
        return value


# Event name of each status: what happened to the application.
EVENT_NAME_OF_STATUS = {"applied": "received", "active": "activated"}


def _transition(status: str) -> type[ApplicationTransition]:
    name = EVENT_NAME_OF_STATUS.get(status, status)
    cls = type(
        f"Application{name.capitalize()}",
        (ApplicationTransition,),
        {"type": f"envol.application.{name}.v1", "__module__": __name__,
         "__doc__": f"An application became {status}."},
    )
    return event_type(cls)


ApplicationReceived = _transition("applied")
ApplicationEligible = _transition("eligible")
ApplicationIneligible = _transition("ineligible")
ApplicationEnrolled = _transition("enrolled")
ApplicationWaitlisted = _transition("waitlisted")
ApplicationDenied = _transition("denied")
ApplicationActivated = _transition("activated")
ApplicationCompleted = _transition("completed")
ApplicationWithdrawn = _transition("withdrawn")

TRANSITION_EVENTS: dict[str, type[ApplicationTransition]] = {
    "applied": ApplicationReceived,
    "eligible": ApplicationEligible,
    "ineligible": ApplicationIneligible,
    "enrolled": ApplicationEnrolled,
    "waitlisted": ApplicationWaitlisted,
    "denied": ApplicationDenied,
    "active": ApplicationActivated,
    "completed": ApplicationCompleted,
    "withdrawn": ApplicationWithdrawn,
}

# What the enrolment service consumes (everything else it publishes).
CONSUMED = (
    CompanyRegistered,
    ApplicationSubmitted,
    ApplicationReviewed,
    ParticipationStarted,
    ParticipationFinished,
    WithdrawalRequested,
)
PUBLISHED = (CompanyAssessed, *TRANSITION_EVENTS.values())
