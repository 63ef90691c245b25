"""The read side of financing: a case's state and history, a company's cases, and the
figures that show whether each programme works. Answered from the financing database."""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import raiseload, selectinload

from envol_financing.domain.model import FinancingCase
from envol_shared.event_log import Timers
from envol_shared.identifiers import CompanyId, siren_of
from envol_shared.queries import Query, QueryError


class CaseRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    case_id: str


class CompanyRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    company_id: CompanyId


class FiguresRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    programme: str | None = None
    cohort: str | None = None


def _case(case: FinancingCase) -> dict[str, Any]:
    return {
        "case_id": case.id, "siren": case.siren, "programme": case.programme, "cohort": case.cohort,
        "kind": case.kind, "stage": case.stage, "partner": case.partner,
        "enrolled_at": case.enrolled_at, "opened_at": case.opened_at, "closed_at": case.closed_at,
        "close_reason": case.close_reason, "last_news_at": case.last_news_at,
        "succeeded": case.succeeded, "decided_at": case.decided_at,
        "first_disbursed_at": case.first_disbursed_at,
        "requested_cents": case.requested_cents, "awarded_cents": case.awarded_cents,
        "disbursed_cents": case.disbursed_cents, "remaining_cents": case.remaining_cents,
        "details": case.details,
        "tranches": [{"tranche": t.number, "amount_cents": t.amount_cents, "disbursed_on": t.disbursed_on}
                     for t in case.tranches],
        "requirements": [{"requirement_id": r.requirement_id, "kind": r.kind, "title": r.title,
                          "due_on": r.due_on, "owner": r.owner, "status": r.status,
                          "gates_tranche": r.gates_tranche, "completed_on": r.completed_on}
                         for r in case.requirements],
        "checkpoints": [{"checkpoint": c.name, "recorded_on": c.recorded_on,
                         "raised_to_date_cents": c.raised_to_date_cents, "note": c.note}
                        for c in case.checkpoints],
        "correlation_id": case.correlation_id,
        "history": [{"at": e.at, "fact": e.fact, "by": e.by, "summary": e.summary, "stage": e.stage}
                    for e in case.history],
    }


async def case_state(request: CaseRequest, cluster: str, session: AsyncSession) -> dict[str, Any]:
    case = await session.get(FinancingCase, request.case_id)
    if case is None or case.cluster != cluster:
        raise QueryError(f"unknown case {request.case_id} in {cluster}")
    coming = await Timers(session).scheduled(f"{case.id}:")
    return {"case": _case(case) | {
        "follow_up": [{"kind": t.kind, "step": t.payload.get("step"), "at": t.due_at,
                       **{k: t.payload[k] for k in ("requirement_id", "checkpoint") if k in t.payload}}
                      for t in coming]}}


async def company_cases(request: CompanyRequest, cluster: str, session: AsyncSession) -> dict[str, Any]:
    siren = siren_of(request.company_id)
    found = await session.execute(
        sa.select(FinancingCase)
        .where(FinancingCase.siren == siren, FinancingCase.cluster == cluster)  # type: ignore[arg-type]
        .order_by(FinancingCase.opened_at)  # type: ignore[arg-type]
    )
    cases = list(found.scalars())
    if not cases:
        raise QueryError(f"no financing case for company {siren} in {cluster}")
    return {"siren": siren, "cases": [_case(c) for c in cases]}


def _days(start: Any, end: Any) -> float:
    return round((end - start).total_seconds() / 86400, 1)


def _median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


def _smes(cases: list[FinancingCase]) -> int:
    """How many SMEs: one per SIREN, however many cases it has."""
    return len({case.siren for case in cases})


def _figures(cases: list[FinancingCase]) -> dict[str, Any]:
    """Counts, money, success rate, delays and outcomes of `cases`, all recomputed from them:
    the same for a programme and cohort's cases as for all of them (the totals)."""
    decided = [c for c in cases if c.succeeded is not None]
    succeeded = sum(bool(c.succeeded) for c in decided)
    return {
        "smes_supported": _smes(cases),
        "cases_opened": len(cases),
        "cases_closed": sum(c.is_closed for c in cases),
        "requested_cents": sum(c.requested_cents for c in cases),
        "awarded_cents": sum(c.awarded_cents for c in cases),
        "disbursed_cents": sum(c.disbursed_cents for c in cases),
        "cases_decided": len(decided),
        "cases_succeeded": succeeded,
        # Of the cases whose outcome is known (decided, or closed without success).
        "success_rate": round(succeeded / len(decided), 3) if decided else None,
        "median_days_to_decision": _median([_days(c.enrolled_at, c.decided_at)
                                            for c in cases if c.decided_at]),
        "median_days_to_first_disbursement": _median([_days(c.enrolled_at, c.first_disbursed_at)
                                                      for c in cases if c.first_disbursed_at]),
        "checkpoints": _outcomes(cases),
    }


def figures_of(cases: list[FinancingCase]) -> dict[str, Any]:
    """Per programme and cohort, and their totals: counts, money, success rate and median delays."""
    groups: dict[tuple[str, str], list[FinancingCase]] = defaultdict(list)
    for case in cases:
        groups[(case.programme, case.cohort)].append(case)
    rows = [{"programme": programme, "cohort": cohort, "kind": group[0].kind} | _figures(group)
            for (programme, cohort), group in sorted(groups.items())]
    return {"figures": rows, "totals": _figures(cases)}


def _raised_by_sme(cases: list[FinancingCase], name: str) -> dict[str, int]:
    """What each SME raised between its baseline and checkpoint `name`, its cases added up."""
    raised: dict[str, int] = defaultdict(int)
    for case in cases:
        baseline, later = case.checkpoint("baseline"), case.checkpoint(name)
        if baseline is not None and later is not None:
            raised[case.siren] += later.raised_to_date_cents - baseline.raised_to_date_cents
    return raised


def _outcomes(cases: list[FinancingCase]) -> dict[str, dict[str, Any]]:
    """What the companies raised between the baseline and each later checkpoint: whether the
    programme works, measured over 24 months. Each company counts once, with its cases added up."""
    outcomes = {}
    for name in ("month_6", "month_12", "month_24"):
        raised = list(_raised_by_sme(cases, name).values())
        outcomes[name] = {
            "recorded": len(raised),
            "raised_since_baseline_cents": sum(raised),
            "median_raised_since_baseline_cents": _median(raised),
        }
    return outcomes


async def figures(request: FiguresRequest, cluster: str, session: AsyncSession) -> dict[str, Any]:
    # The figures need the cases and their checkpoints only: not their history, tranches...
    query = sa.select(FinancingCase).options(selectinload(FinancingCase.checkpoints),  # type: ignore[arg-type]
                                             raiseload("*")).where(
        FinancingCase.cluster == cluster)  # type: ignore[arg-type]
    if request.programme:
        query = query.where(FinancingCase.programme == request.programme)  # type: ignore[arg-type]
    if request.cohort:
        query = query.where(FinancingCase.cohort == request.cohort)  # type: ignore[arg-type]
    cases = list((await session.execute(query)).scalars())
    return {"cluster": cluster, **figures_of(cases)}


QUERIES = {
    "case": Query(CaseRequest, case_state),
    "company": Query(CompanyRequest, company_cases),
    "figures": Query(FiguresRequest, figures),
}
