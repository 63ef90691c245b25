"""The outcomes service layer: one handler per consumed event. It only listens.

Enrolment's application events start and move journeys; financing's case events and
export's support events say what each participant obtained; staff's checkpoints (on cases,
supports, and for the comparison group) say where each SME stands. Every event is checked
before it counts: published by the service that owns it (or by the cluster's staff), about
a journey of the event's cluster and company. A refusal raises `Rejected`: nothing changes
and the producer receives the reason on its own `event.rejected` subject.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

from envol_outcomes.domain.model import DomainError, Journey
from envol_outcomes.unit_of_work import OutcomesUnitOfWork
from envol_shared.consumer import Context, Handler, Rejected
from envol_shared.contracts import enrolment, export, financing, outcomes
from envol_shared.decisions import log_when_committed
from envol_shared.events import EventData

Ctx = Context[OutcomesUnitOfWork]
SERVICE = "outcomes"
STAFF_FILE = Path(__file__).parent / "staff.toml"


def load_staff(path: Path = STAFF_FILE) -> dict[str, frozenset[str]]:
    with path.open("rb") as file:
        return {cluster: frozenset(producers) for cluster, producers in tomllib.load(file)["staff"].items()}


def _owned_by(ctx: Ctx, service: str) -> None:
    # NATS lets only that service publish these subjects; the code says so too.
    if ctx.incoming.producer != service:
        raise Rejected(f"{ctx.incoming.data.name()} is published by the {service} service, "
                       f"not by {ctx.incoming.producer}")


@contextmanager
def _domain_refusals() -> Iterator[None]:
    """What the journey cannot take is refused, with its reason, to the producer."""
    try:
        yield
    except DomainError as exc:
        raise Rejected(str(exc)) from None


def _decided(ctx: Ctx, journey: Journey, decision: str, **fields: Any) -> None:
    """The decision's log line, once committed, with the identifiers every line carries."""
    envelope = ctx.incoming.envelope
    log_when_committed(ctx.uow, decision, service=SERVICE, event_id=envelope.id, event_type=envelope.type,
                       cluster=journey.cluster, correlation_id=envelope.correlationid,
                       company=journey.siren, producer=ctx.incoming.producer, application=journey.id,
                       **fields)


async def _journey(journey_id: str, ctx: Ctx) -> Journey:
    journey = await ctx.uow.journeys.get(journey_id)
    if journey is None or journey.cluster != ctx.cluster:
        raise Rejected(f"unknown application {journey_id} in {ctx.cluster}")
    if journey.siren != ctx.incoming.company:
        raise Rejected(f"application {journey_id} is about company {journey.siren}; the event's "
                       f"subject must be that SIREN, not {ctx.incoming.company}")
    return journey


# ---- enrolment: the application funnel -----------------------------------------------------


async def follow_application(event: enrolment.ApplicationTransition, ctx: Ctx, **_: Any) -> None:
    _owned_by(ctx, "enrolment")
    if event.cluster != ctx.cluster:
        raise Rejected(f"application {event.application_id} is of {event.cluster}, not {ctx.cluster}")
    journey = await ctx.uow.journeys.get(event.application_id)
    if journey is None:
        journey = Journey.start(id=event.application_id, cluster=event.cluster, siren=event.siren,
                                programme=event.programme, kind=event.programme_kind, cohort=event.cohort)
        ctx.uow.journeys.add(journey)
    elif journey.cluster != ctx.cluster or journey.siren != event.siren:
        raise Rejected(f"application {event.application_id} is already known for another cluster "
                       "or company")
    journey.reach(event.to_status, event.at)
    _decided(ctx, journey, "journey.moved", status=event.to_status, programme=journey.programme,
             cohort=journey.cohort)


# ---- financing and export: what participants obtained ----------------------------------------


async def follow_case(event: financing.CaseEvent, ctx: Ctx, **_: Any) -> None:
    _owned_by(ctx, "financing")
    journey = await _journey(event.case_id, ctx)
    with _domain_refusals():
        journey.obtained(event.awarded_cents, event.at)
    journey.disbursed_cents = event.disbursed_cents


async def follow_support(event: export.SupportEvent, ctx: Ctx, **_: Any) -> None:
    _owned_by(ctx, "export")
    journey = await _journey(event.support_id, ctx)
    with _domain_refusals():
        journey.obtained(event.contracted_cents, event.at)
    journey.export_results(leads=event.leads, meetings=event.meetings, contracts=event.contracts,
                           countries=event.contract_countries)


# ---- staff: checkpoints of participants and of the comparison group -----------------------------


def _for_staff(ctx: Ctx, staff: Mapping[str, frozenset[str]]) -> None:
    if ctx.incoming.producer not in staff.get(ctx.cluster, frozenset()):
        raise Rejected(f"{ctx.incoming.producer} is not a staff tool of {ctx.cluster}; only staff "
                       "record outcome checkpoints")


async def _record(ctx: Ctx, staff: Mapping[str, frozenset[str]], journey_id: str, checkpoint: str,
                  recorded_on: str, value_cents: int, kind: str) -> None:
    _for_staff(ctx, staff)
    journey = await _journey(journey_id, ctx)
    if journey.kind.value != kind:
        raise Rejected(f"application {journey.id} is to a {journey.kind.value} programme: {kind} "
                       "checkpoints do not apply to it")
    with _domain_refusals():
        journey.record_checkpoint(checkpoint, recorded_on, value_cents, comparison=False)
    _decided(ctx, journey, "checkpoint.recorded", checkpoint=checkpoint, group="participants")


async def record_case_checkpoint(event: financing.CheckpointRecorded, ctx: Ctx,
                                 staff: Mapping[str, frozenset[str]]) -> None:
    await _record(ctx, staff, event.case_id, event.checkpoint, event.recorded_on.isoformat(),
                  event.raised_to_date_cents, "financing")


async def record_support_checkpoint(event: export.CheckpointRecorded, ctx: Ctx,
                                    staff: Mapping[str, frozenset[str]]) -> None:
    await _record(ctx, staff, event.support_id, event.checkpoint, event.recorded_on.isoformat(),
                  event.export_turnover_cents, "export")


async def record_comparison(event: outcomes.ComparisonCheckpointRecorded, ctx: Ctx,
                            staff: Mapping[str, frozenset[str]]) -> None:
    _for_staff(ctx, staff)
    journey = await _journey(event.application_id, ctx)
    with _domain_refusals():
        journey.record_checkpoint(event.checkpoint, event.recorded_on.isoformat(), event.value_cents,
                                  comparison=True)
    _decided(ctx, journey, "checkpoint.recorded", checkpoint=event.checkpoint, group="comparison")


HANDLERS: Mapping[type[EventData], Any] = {
    **{transition: follow_application for transition in enrolment.TRANSITION_EVENTS.values()},
    financing.CaseOpened: follow_case,
    financing.CaseProgressed: follow_case,
    financing.CaseClosed: follow_case,
    export.SupportOpened: follow_support,
    export.SupportAssigned: follow_support,
    export.SupportWaitlisted: follow_support,
    export.SupportProgressed: follow_support,
    export.SupportClosed: follow_support,
    financing.CheckpointRecorded: record_case_checkpoint,
    export.CheckpointRecorded: record_support_checkpoint,
    outcomes.ComparisonCheckpointRecorded: record_comparison,
}


def bind_handlers(staff: Mapping[str, frozenset[str]]) -> dict[type[EventData], Handler]:
    """Handlers with their dependencies injected (called by the bootstrap)."""
    return {event: partial(handler, staff=staff) for event, handler in HANDLERS.items()}
