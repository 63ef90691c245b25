"""The export service layer: one handler per consumed event, the end of units, and the start.

Enrolment's events open and close supports. Opening places the SME on a unit of its pool or
on the waiting list; closing frees its place for the oldest waiting SME. Every change of
places happens under the lock of the pool's units, read as committed now, so two instances
of the service never give one place twice. Staff open and end relay missions and record
checkpoints. Partners' facts are checked in order: the support exists in this cluster and is
about the event's company; the producer is a partner of the kind that publishes this fact
and the one serving the support (staff may report contracts too); then the domain accepts
or refuses the fact itself. A refusal raises `Rejected`: nothing changes and the producer
receives the reason on its own `event.rejected` subject.

`apply_configuration` brings the units in the database in line with the partner files at
start; a unit's last day fires `unit_reached_end`, a durable timer.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from functools import partial
from typing import Any

from sqlalchemy.exc import IntegrityError

from envol_export.domain.model import (
    UNIT_NAMES,
    UNIT_OF,
    DomainError,
    ExportCheckpoint,
    ExportContract,
    ExportSupport,
    PartnerKind,
    Pool,
    SupportEntry,
    SupportKind,
    SupportUnit,
    UnitKind,
    end_unit,
    fill_places,
    mission_length_problem,
    place,
)
from envol_export.partners import Partners, PartnersError
from envol_export.reminders import FollowUp
from envol_export.unit_of_work import ExportUnitOfWork
from envol_shared.calendar import paris_date
from envol_shared.consumer import Context, Handler, Rejected, emit
from envol_shared.contracts import enrolment
from envol_shared.contracts import export as events
from envol_shared.decisions import log_when_committed
from envol_shared.event_log import Timer
from envol_shared.events import EventData, now
from envol_shared.timers import TimerContext
from envol_shared.unit_of_work import UnitOfWork

Ctx = Context[ExportUnitOfWork]
SERVICE = "export"
# Publishes what a support's history just recorded, from a handler, a timer or the start.
Say = Callable[[ExportSupport, SupportEntry], None]
EVENT_OF_FACT: dict[str, type[events.SupportEvent]] = {
    "support.opened": events.SupportOpened,
    "support.assigned": events.SupportAssigned,
    "support.waitlisted": events.SupportWaitlisted,
    "support.closed": events.SupportClosed,
}


# ---- enrolment opens and closes supports ------------------------------------------------------


async def open_support(event: enrolment.ApplicationEnrolled, ctx: Ctx, partners: Partners,
                       follow_up: FollowUp) -> None:
    if event.programme_kind != "export":
        return  # a financing programme: the financing service's business
    kind = partners.support_kind(event.cluster, event.programme)
    if kind is None:
        raise Rejected(f"programme {event.programme} of {event.cluster} is not configured in the export "
                       f"service (partners/{event.cluster}.toml, [programmes])")
    if kind is not SupportKind.CCI_COLLECTIVE and event.target_country is None:
        raise Rejected(f"application {event.application_id} was enrolled in {event.programme} without a "
                       f"target country: no {UNIT_NAMES[UNIT_OF[kind]]} can serve it")
    if await ctx.uow.supports.get(event.application_id) is not None:
        return  # opened already: once per enrolment
    support = ExportSupport.open(
        id=event.application_id, siren=event.siren, cluster=event.cluster, programme=event.programme,
        cohort=event.cohort, kind=kind, target_country=event.target_country,
        correlation_id=ctx.incoming.envelope.correlationid, enrolled_at=event.at, at=ctx.received_at,
    )
    ctx.uow.supports.add(support)
    say = _in_handler(ctx)
    say(support, support.history[-1])
    pool = await ctx.uow.units.pool(support.pool)  # locked: the last place goes to one SME only
    say(support, place(support, pool, at=ctx.received_at, by=SERVICE, why=f"enrolled in {support.programme}"))
    follow_up.support_opened(ctx.uow.timers, support)


async def close_support(event: enrolment.ApplicationTransition, ctx: Ctx, partners: Partners,
                        follow_up: FollowUp) -> None:
    support = await ctx.uow.supports.get(event.application_id)
    if support is None or support.is_closed:
        return  # never enrolled in an export programme, or closed already
    pool = await ctx.uow.units.pool(support.pool)
    await ctx.uow.supports.refresh(support)  # as it stands under the lock: promoted meanwhile?
    if support.is_closed:
        return
    unit = await _unit_of(ctx.uow, support, pool)
    say = _in_handler(ctx)
    reason = f"enrolment {event.to_status}: {'; '.join(event.reasons)}"
    say(support, support.close(at=ctx.received_at, by=event.by, reason=reason, unit=unit))
    if unit is not None:
        await _fill(ctx.uow, say, support.pool, pool, at=ctx.received_at,
                    why=f"place freed on {unit.id} by support {support.id} ({event.to_status})")


# ---- staff: relay missions and checkpoints ------------------------------------------------------


async def open_mission(event: events.MissionOpened, ctx: Ctx, partners: Partners,
                       follow_up: FollowUp) -> None:
    _require_staff(ctx, partners)
    if ctx.incoming.company != event.host_siren:
        raise Rejected(f"mission {event.mission_id} is lodged by company {event.host_siren}: the event's "
                       f"subject must be that SIREN, not {ctx.incoming.company}")
    if partners.support_kind(ctx.cluster, event.programme) is not SupportKind.VIE_RELAY:
        raise Rejected(f"{event.programme} is not a VIE relay programme of {ctx.cluster}")
    relay = partners.partner(ctx.cluster, event.relay)
    if relay is None or relay.kind is not PartnerKind.RELAY:
        raise Rejected(f"{event.relay} is not a relay of {ctx.cluster}")
    if problem := mission_length_problem(event.starts_on, event.ends_on):
        raise Rejected(f"mission {event.mission_id}: {problem}")
    if event.ends_on < paris_date(ctx.received_at):
        raise Rejected(f"mission {event.mission_id} would have ended on {event.ends_on}, in the past")
    if await ctx.uow.units.get(event.mission_id) is not None:
        raise Rejected(f"a mission, desk or cohort {event.mission_id} already exists")
    unit = SupportUnit(
        id=event.mission_id, cluster=ctx.cluster, programme=event.programme, kind=UnitKind.RELAY_MISSION,
        country=event.country, partner=event.relay, capacity=event.capacity, starts_on=event.starts_on,
        ends_on=event.ends_on, opened_at=ctx.received_at, origin=ctx.incoming.producer,
        host_siren=event.host_siren, host_company=event.host_company, volunteer_id=event.volunteer_id,
        details={},
    )
    unit.opened(at=ctx.received_at, by=event.by)
    ctx.uow.units.add(unit)
    follow_up.unit_scheduled(ctx.uow.timers, unit)
    pool = await ctx.uow.units.pool(unit.pool)  # with the new mission: SMEs waiting in its country
    await _fill(ctx.uow, _in_handler(ctx), unit.pool, pool, at=ctx.received_at, why=f"{unit.name} opened")


async def end_mission(event: events.MissionEnded, ctx: Ctx, partners: Partners, follow_up: FollowUp) -> None:
    _require_staff(ctx, partners)
    unit = await ctx.uow.units.get(event.mission_id)
    if unit is None or unit.cluster != ctx.cluster or unit.kind is not UnitKind.RELAY_MISSION:
        raise Rejected(f"unknown relay mission {event.mission_id} in {ctx.cluster}")
    if ctx.incoming.company != unit.host_siren:
        raise Rejected(f"mission {unit.id} is lodged by company {unit.host_siren}: the event's subject must "
                       f"be that SIREN, not {ctx.incoming.company}")
    reason = f"ended early by {event.by}: {event.reason}"
    if event.ended_on > paris_date(ctx.received_at):
        try:
            unit.shorten(event.ended_on, at=ctx.received_at, by=event.by, reason=event.reason)
        except DomainError as exc:
            raise Rejected(str(exc)) from None
        follow_up.unit_scheduled(ctx.uow.timers, unit)
        return
    if not await _end_unit(ctx.uow, _in_handler(ctx), unit, at=ctx.received_at, by=event.by, reason=reason):
        raise Rejected(f"{unit.name} has already ended ({unit.end_reason})")
    follow_up.unit_ended(ctx.uow.timers, unit)


async def record_checkpoint(event: events.CheckpointRecorded, ctx: Ctx, partners: Partners,
                            follow_up: FollowUp) -> None:
    support = await _for_staff(event.support_id, ctx, partners)
    checkpoint = ExportCheckpoint(
        support_id=support.id, name=event.checkpoint, recorded_on=event.recorded_on,
        export_turnover_cents=event.export_turnover_cents,
        countries_served=sorted(set(event.countries_served)), contracts_to_date=event.contracts_to_date,
        note=event.note)
    _apply(ctx, support, lambda at, by: support.record_checkpoint(checkpoint, at=at, by=by))
    follow_up.checkpoint_recorded(ctx.uow.timers, support, event.checkpoint)


# ---- VIE relays -------------------------------------------------------------------------------------


async def report_lead(event: events.LeadReported, ctx: Ctx, partners: Partners, follow_up: FollowUp) -> None:
    support = await _for_partner(event.support_id, ctx, partners, PartnerKind.RELAY)
    _apply(ctx, support, lambda at, by: support.report_lead(
        lead_id=event.lead_id, country=event.country, buyer=event.buyer, on=event.reported_on,
        estimated_cents=event.estimated_cents, at=at, by=by))


async def hold_relay_meeting(event: events.RelayMeetingHeld, ctx: Ctx, partners: Partners,
                             follow_up: FollowUp) -> None:
    support = await _for_partner(event.support_id, ctx, partners, PartnerKind.RELAY)
    _apply(ctx, support, lambda at, by: support.hold_meeting(
        country=event.country, organisation=event.organisation, on=event.held_on, lead_id=event.lead_id,
        at=at, by=by))


# ---- export desks ----------------------------------------------------------------------------------


async def deliver_prospects(event: events.ProspectListDelivered, ctx: Ctx, partners: Partners,
                            follow_up: FollowUp) -> None:
    support = await _for_partner(event.support_id, ctx, partners, PartnerKind.DESK)
    _apply(ctx, support, lambda at, by: support.deliver_prospects(
        list_id=event.list_id, country=event.country, prospects=event.prospects, on=event.delivered_on,
        at=at, by=by))


async def arrange_desk_meeting(event: events.DeskMeetingArranged, ctx: Ctx, partners: Partners,
                               follow_up: FollowUp) -> None:
    support = await _for_partner(event.support_id, ctx, partners, PartnerKind.DESK)
    _apply(ctx, support, lambda at, by: support.arrange_meeting(
        country=event.country, organisation=event.organisation, on=event.held_on, at=at, by=by))


async def complete_setup(event: events.LocalSetupCompleted, ctx: Ctx, partners: Partners,
                         follow_up: FollowUp) -> None:
    support = await _for_partner(event.support_id, ctx, partners, PartnerKind.DESK)
    _apply(ctx, support, lambda at, by: support.complete_setup(
        country=event.country, setup=event.setup, on=event.completed_on, at=at, by=by))


# ---- CCIs -------------------------------------------------------------------------------------------


async def attend_workshop(event: events.WorkshopAttended, ctx: Ctx, partners: Partners,
                          follow_up: FollowUp) -> None:
    support = await _for_partner(event.support_id, ctx, partners, PartnerKind.CCI)
    cohort = await _unit_of(ctx.uow, support, [])
    assert cohort is not None  # served by this CCI: it has a place on one of its cohorts
    _apply(ctx, support, lambda at, by: support.attend_workshop(
        cohort, workshop_id=event.workshop_id, on=event.attended_on, attendees=event.attendees, at=at, by=by))


async def deliver_strategy(event: events.StrategyDelivered, ctx: Ctx, partners: Partners,
                           follow_up: FollowUp) -> None:
    support = await _for_partner(event.support_id, ctx, partners, PartnerKind.CCI)
    _apply(ctx, support, lambda at, by: support.deliver_strategy(
        on=event.delivered_on, priority_countries=list(event.priority_countries), at=at, by=by))


# ---- contracts: from the partner serving the support, or from staff -----------------------------


async def sign_contract(event: events.ContractSigned, ctx: Ctx, partners: Partners,
                        follow_up: FollowUp) -> None:
    by_staff = partners.is_staff(ctx.cluster, ctx.incoming.producer)
    if by_staff:
        support = await _load(event.support_id, ctx)
    else:
        support = await _for_partner(event.support_id, ctx, partners, None)
    contract = ExportContract(support_id=support.id, contract_id=event.contract_id, country=event.country,
                              buyer=event.buyer, amount_cents=event.amount_cents, signed_on=event.signed_on,
                              reported_by=ctx.incoming.producer)
    ceiling = partners.contract_ceiling_cents(ctx.cluster)
    _apply(ctx, support, lambda at, by: support.sign_contract(contract, at=at, by=by, by_staff=by_staff,
                                                              ceiling_cents=ceiling))


# ---- units that end --------------------------------------------------------------------------------


async def unit_reached_end(timer: Timer, ctx: TimerContext[ExportUnitOfWork]) -> None:
    """A unit's last day is over: its SMEs move to another unit, wait, or close (see the domain)."""
    unit = await ctx.uow.units.get(str(timer.payload["unit_id"]))
    if unit is None or unit.ends_on is None:
        return
    await _end_unit(ctx.uow, _in_timer(ctx), unit, at=ctx.now, by=SERVICE,
                    reason=f"its last day was {unit.ends_on}")


async def _end_unit(uow: ExportUnitOfWork, say: Say, unit: SupportUnit, *, at: datetime, by: str,
                    reason: str) -> bool:
    """End `unit` under its pool's lock; False when it had ended already."""
    pool = await uow.units.pool(unit.pool)
    if not any(running is unit for running in pool):
        return False  # ended meanwhile (by staff, or by another instance)
    _, outcomes = end_unit(unit, await uow.supports.on_unit(unit.id), pool, at=at, by=by, reason=reason)
    for support, entry in outcomes:
        say(support, entry)
    return True


# ---- at start: the configuration's units ----------------------------------------------------------


async def apply_configuration(new_uow: Callable[[], UnitOfWork], *, partners: Partners,
                              follow_up: FollowUp) -> None:
    """Bring the units in the database in line with the partner files: add the new ones,
    update changed places or dates, and give added places to waiting SMEs. An ended unit stays
    ended; a unit gone from the files stays as it is (end it with its date, or by an event).
    Two instances starting together may insert the same new unit: the one that loses reads
    them again and finds nothing left to do."""
    for attempt in range(1, 4):
        try:
            async with new_uow() as uow:
                assert isinstance(uow, ExportUnitOfWork)
                await _configure(uow, partners, follow_up)
                await uow.commit()
            return
        except IntegrityError:
            if attempt == 3:
                raise


async def _configure(uow: ExportUnitOfWork, partners: Partners, follow_up: FollowUp) -> None:
    at = now()
    known = {unit.id: unit for unit in await uow.units.every()}
    pools: set[Pool] = set()
    for configured in partners.units(at):
        unit = known.get(configured.id)
        if unit is None:
            configured.opened(at=at, by="configuration")
            uow.units.add(configured)
            follow_up.unit_scheduled(uow.timers, configured)
            pools.add(configured.pool)
        elif not unit.is_ended:
            try:
                changed = unit.reconfigure(configured, at=at)
            except DomainError as exc:
                raise PartnersError(str(exc)) from None
            if "ends_on" in changed:
                follow_up.unit_scheduled(uow.timers, unit)
            if "capacity" in changed:
                pools.add(unit.pool)
    say = _at_start(uow)
    for pool in sorted(pools, key=lambda p: (p[0], p[1], p[2] or "")):
        await _fill(uow, say, pool, await uow.units.pool(pool), at=at,
                    why="places added by the configuration")


# ---- shared steps ----------------------------------------------------------------------------------


async def _fill(uow: ExportUnitOfWork, say: Say, pool: Pool, units: list[SupportUnit], *, at: datetime,
                why: str) -> None:
    """Give the free places of a locked pool to its oldest waiting supports."""
    if not any(unit.free_places for unit in units):
        return
    for support, entry in fill_places(units, await uow.supports.waiting(pool), at=at, by=SERVICE, why=why):
        say(support, entry)


async def _unit_of(uow: ExportUnitOfWork, support: ExportSupport,
                   pool: list[SupportUnit]) -> SupportUnit | None:
    if support.unit_id is None:
        return None
    return next((unit for unit in pool if unit.id == support.unit_id), None) or await uow.units.get(
        support.unit_id)


async def _load(support_id: str, ctx: Ctx) -> ExportSupport:
    support = await ctx.uow.supports.get(support_id)
    if support is None or support.cluster != ctx.cluster:
        raise Rejected(f"unknown support {support_id} in {ctx.cluster}: no export support was opened "
                       "for it (the SME must be enrolled in an export programme first)")
    if support.siren != ctx.incoming.company:
        raise Rejected(f"support {support_id} is about company {support.siren}; the event's subject must "
                       f"be that SIREN, not {ctx.incoming.company}")
    return support


def _require_staff(ctx: Ctx, partners: Partners) -> None:
    if not partners.is_staff(ctx.cluster, ctx.incoming.producer):
        raise Rejected(f"{ctx.incoming.producer} is not a staff tool of {ctx.cluster}: only its staff "
                       f"may publish {ctx.incoming.envelope.type}")


async def _for_staff(support_id: str, ctx: Ctx, partners: Partners) -> ExportSupport:
    _require_staff(ctx, partners)
    return await _load(support_id, ctx)


async def _for_partner(support_id: str, ctx: Ctx, partners: Partners,
                       kind: PartnerKind | None) -> ExportSupport:
    """The support, if `producer` is the partner serving it (and of `kind`, when given)."""
    producer = ctx.incoming.producer
    partner = partners.partner(ctx.cluster, producer)
    if partner is None:
        raise Rejected(f"{producer} is not an export partner of {ctx.cluster}")
    if kind is not None and partner.kind is not kind:
        raise Rejected(f"{producer} is a {partner.kind.value}, not a {kind.value}: only a {kind.value} "
                       f"publishes {ctx.incoming.envelope.type}")
    support = await _load(support_id, ctx)
    if support.is_closed:
        raise Rejected(f"support {support.id} is closed ({support.close_reason})")
    if support.partner != producer:
        if support.unit_id is None:
            towards = f" in {support.target_country}" if support.pool[2] else ""
            raise Rejected(f"support {support.id} is waiting for a place{towards}: no partner serves it yet, "
                           f"{producer} included")
        raise Rejected(f"support {support.id} is served by {support.partner} ({support.unit_id}), "
                       f"not by {producer}")
    return support


def _apply(ctx: Ctx, support: ExportSupport, fact: Callable[[Any, str], SupportEntry]) -> None:
    """Let the domain take the fact (or refuse it) and publish where the support now stands."""
    try:
        entry = fact(ctx.received_at, ctx.incoming.producer)
    except DomainError as exc:
        raise Rejected(str(exc)) from None
    _in_handler(ctx)(support, entry)


def _support_event(support: ExportSupport, entry: SupportEntry) -> events.SupportEvent:
    cls = EVENT_OF_FACT.get(entry.fact, events.SupportProgressed)
    extra = {"fact": entry.fact} if cls is events.SupportProgressed else {}
    return cls(
        support_id=support.id, siren=support.siren, cluster=support.cluster, programme=support.programme,
        cohort=support.cohort, kind=support.kind.value, target_country=support.target_country,
        status=support.status.value, unit_id=support.unit_id, partner=support.partner,
        waiting_since=support.waiting_since, at=entry.at, by=entry.by, summary=entry.summary,
        leads=support.leads, meetings=support.meetings, contracts=len(support.contracts),
        contracted_cents=support.contracted_cents,
        contract_countries=sorted({contract.country for contract in support.contracts}), **extra,
    )


def _log_entry(uow: UnitOfWork, support: ExportSupport, entry: SupportEntry, **cause: Any) -> None:
    """One line per decision on a support: a place given (`support.placed`, with its unit and
    partner), the waiting list (`support.waitlisted`), or any other fact (`support.progressed`).
    Never the summary: it may quote a buyer's or a partner's words."""
    name = {"support.assigned": "support.placed", "support.waitlisted": "support.waitlisted"}.get(
        entry.fact, "support.progressed")
    log_when_committed(uow, name, service=SERVICE, cluster=support.cluster, company=support.siren,
                       correlation_id=support.correlation_id, support_id=support.id,
                       programme=support.programme, kind=support.kind.value,
                       target_country=support.target_country, fact=entry.fact, status=support.status.value,
                       unit=support.unit_id, partner=support.partner, **cause)


def _in_handler(ctx: Ctx) -> Say:
    # Each support's events continue its own company's journey (a promoted SME is not the
    # one whose withdrawal freed the place).
    envelope = ctx.incoming.envelope
    cause = {"event_id": envelope.id, "event_type": envelope.type, "producer": ctx.incoming.producer}

    def say(support: ExportSupport, entry: SupportEntry) -> None:
        ctx.emit(_support_event(support, entry), company=support.siren, correlation_id=support.correlation_id)
        _log_entry(ctx.uow, support, entry, **cause)

    return say


def _in_timer(ctx: TimerContext[ExportUnitOfWork]) -> Say:
    def say(support: ExportSupport, entry: SupportEntry) -> None:
        ctx.emit(_support_event(support, entry), cluster=support.cluster, company=support.siren,
                 correlation_id=support.correlation_id)
        _log_entry(ctx.uow, support, entry, timer=ctx.timer.key)

    return say


def _at_start(uow: ExportUnitOfWork) -> Say:
    def say(support: ExportSupport, entry: SupportEntry) -> None:
        emit(uow, _support_event(support, entry), cluster=support.cluster, producer=SERVICE,
             company=support.siren, correlation_id=support.correlation_id, causation_id=None)
        _log_entry(uow, support, entry, cause="configuration")

    return say


HANDLERS: Mapping[type[EventData], Any] = {
    enrolment.ApplicationEnrolled: open_support,
    enrolment.ApplicationWithdrawn: close_support,
    enrolment.ApplicationCompleted: close_support,
    events.MissionOpened: open_mission,
    events.MissionEnded: end_mission,
    events.CheckpointRecorded: record_checkpoint,
    events.LeadReported: report_lead,
    events.RelayMeetingHeld: hold_relay_meeting,
    events.ProspectListDelivered: deliver_prospects,
    events.DeskMeetingArranged: arrange_desk_meeting,
    events.LocalSetupCompleted: complete_setup,
    events.WorkshopAttended: attend_workshop,
    events.StrategyDelivered: deliver_strategy,
    events.ContractSigned: sign_contract,
}


def bind_handlers(partners: Partners, follow_up: FollowUp) -> dict[type[EventData], Handler]:
    """Handlers with their dependencies injected (called by the bootstrap)."""
    return {event: partial(handler, partners=partners, follow_up=follow_up)
            for event, handler in HANDLERS.items()}
