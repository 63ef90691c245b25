"""The read side of export: a support's state and history, a company's supports, a mission's,
desk's or cohort's occupancy and waiting list, and the figures that show whether each
programme works. Answered from the export database."""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict
from sqlalchemy.ext.asyncio import AsyncSession

from envol_export.domain.model import ExportSupport, SupportStatus, SupportUnit, waiting_order
from envol_shared.calendar import paris_date
from envol_shared.event_log import Timers
from envol_shared.events import now
from envol_shared.identifiers import CompanyId, siren_of
from envol_shared.queries import Query, QueryError


class SupportRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    support_id: str


class CompanyRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    company_id: CompanyId


class UnitRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    unit_id: str


class UnitsRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    programme: str | None = None
    country: str | None = None


class FiguresRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    programme: str | None = None
    country: str | None = None
    cohort: str | None = None


def _days(start: datetime, end: datetime) -> float:
    return round((end - start).total_seconds() / 86400, 1)


def _waited(support: ExportSupport) -> bool:
    """Whether it waited for its first place (or is still waiting for it)."""
    return any(entry.fact == "support.waitlisted" and (support.first_assigned_at is None
                                                       or entry.at <= support.first_assigned_at)
               for entry in support.history)


def _support(support: ExportSupport) -> dict[str, Any]:
    return {
        "support_id": support.id, "siren": support.siren, "programme": support.programme,
        "cohort": support.cohort, "kind": support.kind, "target_country": support.target_country,
        "status": support.status, "unit_id": support.unit_id, "partner": support.partner,
        "enrolled_at": support.enrolled_at, "opened_at": support.opened_at,
        "waiting_since": support.waiting_since, "first_assigned_at": support.first_assigned_at,
        "days_waited": (_days(support.opened_at, support.first_assigned_at)
                        if support.first_assigned_at and _waited(support) else None),
        "closed_at": support.closed_at, "close_reason": support.close_reason,
        "last_news_at": support.last_news_at,
        "leads": support.leads, "meetings": support.meetings,
        "contracted_cents": support.contracted_cents, "first_contract_on": support.first_contract_on,
        "new_countries": sorted(support.new_countries()),
        "details": support.details,
        "contracts": [{"contract_id": c.contract_id, "country": c.country, "buyer": c.buyer,
                       "amount_cents": c.amount_cents, "signed_on": c.signed_on, "reported_by": c.reported_by}
                      for c in support.contracts],
        "checkpoints": [{"checkpoint": c.name, "recorded_on": c.recorded_on,
                         "export_turnover_cents": c.export_turnover_cents,
                         "countries_served": c.countries_served, "contracts_to_date": c.contracts_to_date,
                         "note": c.note}
                        for c in support.checkpoints],
        "correlation_id": support.correlation_id,
        "history": [{"at": e.at, "fact": e.fact, "by": e.by, "summary": e.summary, "status": e.status}
                    for e in support.history],
    }


def _placed_at(support: ExportSupport) -> datetime | None:
    """When it took its current place."""
    return next((e.at for e in reversed(support.history) if e.fact == "support.assigned"), None)


def _unit(unit: SupportUnit) -> dict[str, Any]:
    # The volunteer is an id: Envol holds no name for them.
    return {
        "unit_id": unit.id, "kind": unit.kind, "programme": unit.programme, "country": unit.country,
        "partner": unit.partner, "capacity": unit.capacity, "occupied": unit.occupied,
        "free_places": unit.free_places, "starts_on": unit.starts_on, "ends_on": unit.ends_on,
        "host_siren": unit.host_siren, "host_company": unit.host_company, "volunteer_id": unit.volunteer_id,
        "details": unit.details, "origin": unit.origin, "opened_at": unit.opened_at,
        "ended_at": unit.ended_at, "end_reason": unit.end_reason,
    }


async def support_state(request: SupportRequest, cluster: str, session: AsyncSession) -> dict[str, Any]:
    support = await session.get(ExportSupport, request.support_id)
    if support is None or support.cluster != cluster:
        raise QueryError(f"unknown support {request.support_id} in {cluster}")
    coming = await Timers(session).scheduled(f"{support.id}:")
    return {"support": _support(support) | {
        "follow_up": [{"kind": t.kind, "step": t.payload.get("step"), "at": t.due_at,
                       "checkpoint": t.payload.get("checkpoint")} for t in coming]}}


async def company_supports(request: CompanyRequest, cluster: str, session: AsyncSession) -> dict[str, Any]:
    siren = siren_of(request.company_id)
    found = await session.execute(
        sa.select(ExportSupport)
        .where(ExportSupport.siren == siren, ExportSupport.cluster == cluster)  # type: ignore[arg-type]
        .order_by(ExportSupport.opened_at)  # type: ignore[arg-type]
    )
    supports = list(found.scalars())
    if not supports:
        raise QueryError(f"no export support for company {siren} in {cluster}")
    return {"siren": siren, "supports": [_support(s) for s in supports]}


async def _waiting(session: AsyncSession, unit: SupportUnit) -> list[ExportSupport]:
    query = sa.select(ExportSupport).where(
        ExportSupport.cluster == unit.cluster,  # type: ignore[arg-type]
        ExportSupport.programme == unit.programme,  # type: ignore[arg-type]
        ExportSupport.status == SupportStatus.WAITING,  # type: ignore[arg-type]
    )
    if unit.country:
        query = query.where(ExportSupport.target_country == unit.country)  # type: ignore[arg-type]
    return sorted((await session.execute(query)).scalars(), key=waiting_order)


async def unit_state(request: UnitRequest, cluster: str, session: AsyncSession) -> dict[str, Any]:
    """A mission, desk or cohort: who has a place, who waits for one (oldest first; the list of
    its pool, shared with any other unit of the same programme and country), occupancy over time."""
    unit = await session.get(SupportUnit, request.unit_id)
    if unit is None or unit.cluster != cluster:
        raise QueryError(f"unknown mission, desk or cohort {request.unit_id} in {cluster}")
    served = (await session.execute(
        sa.select(ExportSupport).where(ExportSupport.unit_id == unit.id)  # type: ignore[arg-type]
        .order_by(ExportSupport.first_assigned_at, ExportSupport.id))).scalars()  # type: ignore[arg-type]
    waiting = [] if unit.is_ended else await _waiting(session, unit)
    return {"unit": _unit(unit) | {
        "smes": [{"support_id": s.id, "siren": s.siren, "since": _placed_at(s),
                  "leads": s.leads, "meetings": s.meetings, "contracts": len(s.contracts)} for s in served],
        "waiting": [{"position": n, "support_id": s.id, "siren": s.siren, "waiting_since": s.waiting_since}
                    for n, s in enumerate(waiting, start=1)],
        "history": [{"at": e.at, "fact": e.fact, "support_id": e.support_id, "occupied": e.occupied,
                     "summary": e.summary} for e in unit.history],
    }}


async def units_state(request: UnitsRequest, cluster: str, session: AsyncSession) -> dict[str, Any]:
    """Every unit of the cluster with its occupancy and the length of its pool's waiting list."""
    query = sa.select(SupportUnit).where(SupportUnit.cluster == cluster)  # type: ignore[arg-type]
    if request.programme:
        query = query.where(SupportUnit.programme == request.programme)  # type: ignore[arg-type]
    if request.country:
        query = query.where(SupportUnit.country == request.country)  # type: ignore[arg-type]
    units = list((await session.execute(query.order_by(SupportUnit.id))).scalars())  # type: ignore[arg-type]
    rows = await session.execute(
        sa.select(ExportSupport.programme, ExportSupport.target_country, sa.func.count())  # type: ignore[call-overload]
        .where(ExportSupport.cluster == cluster, ExportSupport.status == SupportStatus.WAITING)
        .group_by(ExportSupport.programme, ExportSupport.target_country))
    waiting = {(programme, country): count for programme, country, count in rows}

    def waiting_for(unit: SupportUnit) -> int:
        if unit.is_ended:
            return 0
        return sum(n for (programme, country), n in waiting.items()
                   if programme == unit.programme and (unit.country is None or country == unit.country))

    return {"cluster": cluster, "units": [_unit(u) | {"waiting": waiting_for(u)} for u in units]}


def _median(values: Iterable[float]) -> float | None:
    found = list(values)
    return statistics.median(found) if found else None


def _smes(supports: Iterable[ExportSupport]) -> int:
    """How many SMEs: one per SIREN, however many supports (countries, cohorts, runs) it has."""
    return len({support.siren for support in supports})


def _new_countries(supports: list[ExportSupport]) -> int:
    """Countries entered, once per SME: two supports of one SME entering the same country
    enter it once."""
    entered: dict[str, set[str]] = defaultdict(set)
    for support in supports:
        entered[support.siren] |= support.new_countries()
    return sum(len(countries) for countries in entered.values())


def _figures(group: list[ExportSupport], at: datetime) -> dict[str, Any]:
    """The figures of `group`, all recomputed from its supports: the same for one programme,
    cohort and country as for all of them (the totals). Counts of SMEs count each SIREN once;
    amounts, leads, meetings, contracts... add up over its supports; delays are per support."""
    waited = [s for s in group if _waited(s)]
    to_contract = [(s.first_contract_on - paris_date(s.enrolled_at)).days for s in group
                   if s.first_contract_on]
    return {
        "smes_supported": _smes(group),
        "assigned_now": _smes(s for s in group if s.status is SupportStatus.ASSIGNED),
        "waiting_now": _smes(s for s in group if s.status is SupportStatus.WAITING),
        "closed": _smes(s for s in group if s.is_closed),
        "smes_who_waited": _smes(waited),
        "median_days_waited": _median(_days(s.opened_at, s.first_assigned_at) for s in waited
                                      if s.first_assigned_at),
        "longest_current_wait_days": max((_days(s.waiting_since, at) for s in group
                                          if s.status is SupportStatus.WAITING and s.waiting_since),
                                         default=None),
        "leads": sum(s.leads for s in group),
        "meetings": sum(s.meetings for s in group),
        "prospect_lists": sum(len(s.details.get("prospect_lists", {})) for s in group),
        "local_setups": sum("setup" in s.details for s in group),
        "workshops_attended": sum(len(s.details.get("workshops", {})) for s in group),
        "strategies_delivered": sum("strategy" in s.details for s in group),
        "contracts": sum(len(s.contracts) for s in group),
        "contracted_cents": sum(s.contracted_cents for s in group),
        "smes_with_a_contract": _smes(s for s in group if s.contracts),
        "new_countries_entered": _new_countries(group),
        "median_days_to_first_contract": _median(to_contract),
    }


def figures_of(supports: list[ExportSupport], at: datetime) -> dict[str, Any]:
    """Per programme, cohort and target country, and their totals: SMEs supported, waiting
    times, leads, meetings, contracts and their amounts, new countries, time to the first
    contract. `all` is the same as `totals`, kept for the askers that read it."""
    groups: dict[tuple[str, str, str], list[ExportSupport]] = defaultdict(list)
    for support in supports:
        groups[(support.programme, support.cohort, support.target_country or "")].append(support)
    rows = [{"programme": programme, "cohort": cohort, "country": country or None, "kind": group[0].kind}
            | _figures(group, at) for (programme, cohort, country), group in sorted(groups.items())]
    totals = _figures(supports, at)
    return {"figures": rows, "totals": totals, "all": dict(totals)}


async def figures(request: FiguresRequest, cluster: str, session: AsyncSession) -> dict[str, Any]:
    query = sa.select(ExportSupport).where(ExportSupport.cluster == cluster)  # type: ignore[arg-type]
    if request.programme:
        query = query.where(ExportSupport.programme == request.programme)  # type: ignore[arg-type]
    if request.cohort:
        query = query.where(ExportSupport.cohort == request.cohort)  # type: ignore[arg-type]
    if request.country:
        query = query.where(ExportSupport.target_country == request.country)  # type: ignore[arg-type]
    supports = list((await session.execute(query)).scalars())
    return {"cluster": cluster, **figures_of(supports, now())}


QUERIES = {
    "support": Query(SupportRequest, support_state),
    "company": Query(CompanyRequest, company_supports),
    "unit": Query(UnitRequest, unit_state),
    "units": Query(UnitsRequest, units_state),
    "figures": Query(FiguresRequest, figures),
}
