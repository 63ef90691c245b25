"""The enrolment service layer: one handler per consumed event.

A handler loads what it needs through the unit of work, asks the domain to decide, and
emits the resulting events; the consumer around it owns the transaction, the inbox and the
acknowledgements. Raising `Rejected` refuses the event: everything the handler changed is
discarded and the producer receives the reason.

Every event enrolment consumes is a staff decision, so each handler first checks that its
producer is one of the cluster's staff tools (the catalogue names them): NATS permissions
confine partners to their own events, but a stack without them must refuse as well. A
cluster works on its own view of a company, keyed by (cluster, SIREN): its registrations,
applications, eligibility and queries never read nor change another cluster's.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from typing import Any

from envol_enrolment.catalogue import Catalogue
from envol_enrolment.domain.model import (
    Application,
    Company,
    DomainError,
    Programme,
    ProjectReference,
    Status,
    StatusChange,
    check_eligibility,
    next_from_waitlist,
)
from envol_enrolment.domain.sme import Holding
from envol_enrolment.unit_of_work import EnrolmentUnitOfWork
from envol_shared.consumer import Context, Handler, Rejected
from envol_shared.contracts import enrolment as events
from envol_shared.decisions import log_when_committed
from envol_shared.events import EventData
from envol_shared.identifiers import siren_of

Ctx = Context[EnrolmentUnitOfWork]
SERVICE = "enrolment"


# Each status change is logged with the codes of its reasons, never their text: a reviewer's
# reason is free text, and the service's own name the company. The codes, by the wording of
# the service's reasons (domain/model.py's check_eligibility and this module), first match wins;
# any other reason is a staff member's, "staff_reason".
REASON_CODES: list[tuple[str, str]] = [
    ("meets every rule of", "meets_every_rule"),
    ("is not an SME", "not_sme"),
    ("is not a member of", "not_cluster_member"),
    ("is not open on", "programme_not_open"),
    ("already has a live application", "live_application_exists"),
    ("requires a publicly funded collaborative project", "public_project_required"),
    ("requires a target country", "target_country_required"),
    ("does not serve", "country_not_served"),
    ("is full (", "programme_full"),
    ("place freed by application", "place_freed"),
]
EXACT_REASON_CODES = {"submitted": "submitted", "participation started": "participation_started"}


def reason_codes(reasons: list[str]) -> list[str]:
    codes = []
    for reason in reasons:
        code = EXACT_REASON_CODES.get(reason) or next(
            (code for words, code in REASON_CODES if words in reason), "staff_reason")
        codes.append(code)
    return codes


async def register_company(event: events.CompanyRegistered, ctx: Ctx, catalogue: Catalogue) -> None:
    _require_staff(ctx, catalogue)
    unknown = [c for c in event.clusters if c not in catalogue.clusters]
    if unknown:
        raise Rejected(f"unknown cluster(s) {', '.join(unknown)}; known: "
                       f"{', '.join(sorted(catalogue.clusters))}")
    if ctx.cluster not in event.clusters:
        raise Rejected(f"{ctx.cluster} may only register its own members: "
                       f"clusters {event.clusters} do not include it")
    siren = siren_of(event.company_id)
    # Only this cluster's view: the same SIREN registered by another cluster stays as it is.
    company = await ctx.uow.companies.get(ctx.cluster, siren)
    if company is None:
        company = Company(cluster=ctx.cluster, siren=siren, legal_name="", region="", clusters=[],
                          staff_awu=0, turnover_cents=0, balance_sheet_cents=0, accounts_year=0)
        ctx.uow.companies.add(company)
    company.siret = event.company_id if len(event.company_id) == 14 else company.siret
    company.legal_name = event.legal_name
    company.region = event.region
    company.clusters = sorted(set(event.clusters))
    company.staff_awu = event.staff_awu
    company.turnover_cents = event.turnover_cents
    company.balance_sheet_cents = event.balance_sheet_cents
    company.accounts_year = event.accounts_year
    company.holdings = [Holding(**h.model_dump()) for h in event.holdings]
    company.contact = event.contact.model_dump() if event.contact else None
    assessment = company.assess()
    ctx.emit(events.CompanyAssessed(
        siren=siren,
        legal_name=company.legal_name,
        region=company.region,
        clusters=company.clusters,
        sme_category=assessment.category.value,
        accounts_year=assessment.accounts_year,
        staff_awu=assessment.staff_awu,
        turnover_cents=assessment.turnover_cents,
        balance_sheet_cents=assessment.balance_sheet_cents,
        reasons=list(assessment.reasons),
    ), company=siren)


async def submit_application(event: events.ApplicationSubmitted, ctx: Ctx, catalogue: Catalogue) -> None:
    _require_staff(ctx, catalogue)
    programme = catalogue.get(event.programme)
    if programme is None:
        offered = ", ".join(p.code for p in catalogue if p.cluster == ctx.cluster)
        raise Rejected(f"unknown programme {event.programme}; {ctx.cluster} offers: {offered}")
    if programme.cluster != ctx.cluster:
        raise Rejected(f"programme {programme.code} is run by {programme.cluster}, not {ctx.cluster}")
    siren = siren_of(event.company_id)
    company = await ctx.uow.companies.get(ctx.cluster, siren)
    if company is None:
        raise Rejected(f"unknown company {siren} in {ctx.cluster}: register it (company.registered) "
                       "before it applies")
    if await ctx.uow.applications.get(event.application_id) is not None:
        raise Rejected(f"application {event.application_id} already exists")
    application = Application(
        id=event.application_id,
        siren=siren,
        programme=programme.code,
        cluster=programme.cluster,
        cohort=programme.cohort_of(event.applied_on),
        applied_on=event.applied_on,
        submitted_at=ctx.received_at,
        correlation_id=ctx.incoming.envelope.correlationid,
        target_country=event.target_country,
        project=ProjectReference(**event.project.model_dump()) if event.project else None,
    )
    ctx.uow.applications.add(application)
    by = ctx.incoming.producer
    _emit(ctx, application, programme, company,
          application.move_to(Status.APPLIED, at=ctx.received_at, by=by, reasons=["submitted"]))
    failed = check_eligibility(
        application, company, programme,
        other_live_applications=await ctx.uow.applications.live_count(
            siren, programme.code, excluding=application.id),
    )
    if failed:
        change = application.move_to(Status.INELIGIBLE, at=ctx.received_at, by=SERVICE, reasons=failed)
    else:
        change = application.move_to(Status.ELIGIBLE, at=ctx.received_at, by=SERVICE,
                                     reasons=[f"meets every rule of {programme.code}"])
    _emit(ctx, application, programme, company, change)


async def review_application(event: events.ApplicationReviewed, ctx: Ctx, catalogue: Catalogue) -> None:
    application, programme, company = await _load(event.application_id, ctx, catalogue)
    if event.decision == "deny":
        _move(ctx, application, programme, company, Status.DENIED, event.reviewer, [event.reason])
        return
    if application.status is Status.WAITLISTED:
        raise Rejected(f"application {application.id} is already accepted and waitlisted: "
                       f"{programme.code} is full; it is enrolled when a place frees")
    if await ctx.uow.applications.places_taken(programme.code) < programme.capacity:
        _move(ctx, application, programme, company, Status.ENROLLED, event.reviewer, [event.reason])
    else:
        _move(ctx, application, programme, company, Status.WAITLISTED, event.reviewer,
              [event.reason, f"{programme.code} is full ({programme.capacity} places)"])


async def start_participation(event: events.ParticipationStarted, ctx: Ctx, catalogue: Catalogue) -> None:
    application, programme, company = await _load(event.application_id, ctx, catalogue)
    _move(ctx, application, programme, company, Status.ACTIVE, event.by, ["participation started"])


async def finish_participation(event: events.ParticipationFinished, ctx: Ctx, catalogue: Catalogue) -> None:
    application, programme, company = await _load(event.application_id, ctx, catalogue)
    _move(ctx, application, programme, company, Status.COMPLETED, event.by, [event.reason])
    await _promote_waitlisted(ctx, programme, freed_by=application)


async def request_withdrawal(event: events.WithdrawalRequested, ctx: Ctx, catalogue: Catalogue) -> None:
    application, programme, company = await _load(event.application_id, ctx, catalogue)
    held_a_place = application.holds_a_place
    _move(ctx, application, programme, company, Status.WITHDRAWN, event.by, [event.reason])
    if held_a_place:
        await _promote_waitlisted(ctx, programme, freed_by=application)


async def _promote_waitlisted(ctx: Ctx, programme: Programme, *, freed_by: Application) -> None:
    """Give each free place to the oldest waitlisted application."""
    free = programme.capacity - await ctx.uow.applications.places_taken(programme.code)
    waitlist = await ctx.uow.applications.waitlisted(programme.code)
    while free > 0 and (promoted := next_from_waitlist(waitlist)) is not None:
        waitlist.remove(promoted)
        company = await ctx.uow.companies.get(promoted.cluster, promoted.siren)
        assert company is not None
        _move(ctx, promoted, programme, company, Status.ENROLLED, SERVICE,
              [f"place freed by application {freed_by.id} ({freed_by.status})"])
        free -= 1


async def _load(
    application_id: str, ctx: Ctx, catalogue: Catalogue
) -> tuple[Application, Programme, Company]:
    """The application a staff decision is about, with its programme and company view."""
    _require_staff(ctx, catalogue)
    application = await ctx.uow.applications.get(application_id)
    if application is None:
        raise Rejected(f"unknown application {application_id}")
    if application.cluster != ctx.cluster:
        raise Rejected(f"application {application_id} belongs to {application.cluster}, not {ctx.cluster}")
    if application.siren != ctx.incoming.company:
        raise Rejected(f"application {application_id} is about company {application.siren}; "
                       f"the event's subject must be that SIREN, not {ctx.incoming.company}")
    programme = catalogue.get(application.programme)
    if programme is None:
        raise Rejected(f"programme {application.programme} of application {application_id} "
                       "is no longer in the catalogue")
    # Always there: an application's row refers to its cluster's view of the company.
    company = await ctx.uow.companies.get(application.cluster, application.siren)
    assert company is not None
    return application, programme, company


def _require_staff(ctx: Ctx, catalogue: Catalogue) -> None:
    producer = ctx.incoming.producer
    if not catalogue.is_staff(ctx.cluster, producer):
        staff = ", ".join(catalogue.staff_of(ctx.cluster)) or "none"
        raise Rejected(f"{producer} is not a staff tool of {ctx.cluster} (its staff tools: {staff}): "
                       f"only its staff may publish {ctx.incoming.envelope.type}")


def _move(ctx: Ctx, application: Application, programme: Programme, company: Company,
          to: Status, by: str, reasons: list[str]) -> None:
    try:
        change = application.move_to(to, at=ctx.received_at, by=by, reasons=reasons)
    except DomainError as exc:
        raise Rejected(str(exc)) from None
    _emit(ctx, application, programme, company, change)


def _emit(ctx: Ctx, application: Application, programme: Programme, company: Company,
          change: StatusChange) -> None:
    envelope = ctx.incoming.envelope
    # The decision's company and journey (a promoted application is another company's than
    # the withdrawal that freed its place), and the event that led to it.
    log_when_committed(ctx.uow, "application.decided", service=SERVICE, event_id=envelope.id,
                       event_type=envelope.type,
                       cluster=application.cluster, correlation_id=application.correlation_id,
                       company=application.siren, producer=ctx.incoming.producer,
                       application_id=application.id, programme=programme.code, cohort=application.cohort,
                       from_status=change.from_status.value if change.from_status else None,
                       status=change.to_status.value, reasons=reason_codes(change.reasons),
                       decided_by=SERVICE if change.by == SERVICE else "staff")
    event_class = events.TRANSITION_EVENTS[change.to_status.value]
    ctx.emit(event_class(
        application_id=application.id,
        siren=application.siren,
        legal_name=company.legal_name,
        cluster=application.cluster,
        programme=programme.code,
        programme_kind=programme.kind.value,
        cohort=application.cohort,
        from_status=change.from_status.value if change.from_status else None,
        to_status=change.to_status.value,
        at=change.at,
        by=change.by,
        reasons=change.reasons,
        target_country=application.target_country,
        project=application.project and events.PublicProjectReference(
            reference=application.project.reference,
            call=application.project.call,
            labelling_cluster=application.project.labelling_cluster,
            label_date=application.project.label_date,
            funder=application.project.funder,
        ),
    ), company=application.siren, correlation_id=application.correlation_id)


HANDLERS: Mapping[type[EventData], Any] = {
    events.CompanyRegistered: register_company,
    events.ApplicationSubmitted: submit_application,
    events.ApplicationReviewed: review_application,
    events.ParticipationStarted: start_participation,
    events.ParticipationFinished: finish_participation,
    events.WithdrawalRequested: request_withdrawal,
}


def bind_handlers(catalogue: Catalogue) -> dict[type[EventData], Handler]:
    """Handlers with their dependencies injected (called by the bootstrap)."""
    return {event: partial(handler, catalogue=catalogue) for event, handler in HANDLERS.items()}
