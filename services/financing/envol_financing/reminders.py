"""Durable follow-up of cases: reminders and escalations, as timers of the shared scheduler.

Handlers schedule, in the transaction that changes the case:
- ``<case>:stale``                   no news for a while -> reminder, then escalation;
- ``<case>:requirement:<req>``       due soon -> overdue -> escalation;
- ``<case>:checkpoint:<name>``       an outcome checkpoint comes due -> reminder, then escalation.
Scheduling a key again replaces its timer, so news about a case simply pushes its stale
timer back, and each timer moves to its next step by rescheduling itself when it fires.

When a timer fires, its handler looks at the case as it is now: a requirement completed, a
checkpoint recorded or a case closed since means there is nothing to say.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from functools import partial
from typing import Any

from envol_financing.domain.follow_up import FollowUpCalendar
from envol_financing.domain.model import CHECKPOINT_ORDER, FinancingCase, Requirement
from envol_financing.partners import Partners
from envol_financing.unit_of_work import FinancingUnitOfWork
from envol_shared.calendar import BusinessCalendar, paris_date
from envol_shared.contracts import financing as events
from envol_shared.decisions import log_when_committed
from envol_shared.event_log import Timer, Timers
from envol_shared.timers import TimerContext, TimerHandler

TCtx = TimerContext[FinancingUnitOfWork]


class FollowUp:
    """Schedules a case's timers, with its cluster's policy and the French calendar."""

    def __init__(self, partners: Partners, calendar: BusinessCalendar) -> None:
        self.partners = partners
        self.calendar = calendar

    def dates(self, case: FinancingCase) -> FollowUpCalendar:
        return FollowUpCalendar(self.partners.policy(case.cluster), self.calendar)

    def case_opened(self, timers: Timers, case: FinancingCase) -> None:
        self.news(timers, case)
        dates = self.dates(case)
        for name in CHECKPOINT_ORDER:
            due_on = dates.checkpoint_due_on(name, opened_at=case.opened_at, enrolled_at=case.enrolled_at)
            timers.schedule(f"{case.id}:checkpoint:{name}", "checkpoint", dates.at(due_on),
                            {"case_id": case.id, "checkpoint": name, "step": "remind",
                             "due_on": due_on.isoformat()})

    def news(self, timers: Timers, case: FinancingCase) -> None:
        """Something happened on the case: the "no news" clock starts again."""
        if case.is_closed or case.last_news_at is None:
            return
        day = self.dates(case).stale_day(case.last_news_at)
        timers.schedule(f"{case.id}:stale", "case_stale", self.dates(case).at(day),
                        {"case_id": case.id, "step": "remind", "due_on": day.isoformat()})

    def case_closed(self, timers: Timers, case: FinancingCase) -> None:
        # Checkpoints go on: whether the programme worked is measured for 24 months anyway.
        timers.cancel(f"{case.id}:stale")
        for requirement in case.requirements:
            timers.cancel(_requirement_key(case, requirement))

    def requirement_set(self, timers: Timers, case: FinancingCase, requirement: Requirement,
                        at: datetime) -> None:
        key = _requirement_key(case, requirement)
        if requirement.is_done:
            timers.cancel(key)
            return
        dates = self.dates(case)
        payload = {"case_id": case.id, "requirement_id": requirement.requirement_id,
                   "due_on": requirement.due_on.isoformat()}
        due_soon = dates.at(dates.due_soon_day(requirement.due_on))
        if due_soon > at:
            timers.schedule(key, "requirement", due_soon, {**payload, "step": "due_soon"})
        else:  # already close to or past its date: the next word is "overdue"
            timers.schedule(key, "requirement", dates.at(dates.overdue_day(requirement.due_on)),
                            {**payload, "step": "overdue"})

    def checkpoint_recorded(self, timers: Timers, case: FinancingCase, name: str) -> None:
        timers.cancel(f"{case.id}:checkpoint:{name}")


def _requirement_key(case: FinancingCase, requirement: Requirement) -> str:
    return f"{case.id}:requirement:{requirement.requirement_id}"


def _follow_up_event(case: FinancingCase, cls: type[events.FollowUp], reason: str, due_on: date, detail: str,
                     **extra: Any) -> events.FollowUp:
    return cls(case_id=case.id, siren=case.siren, cluster=case.cluster, programme=case.programme,
               cohort=case.cohort, reason=reason, due_on=due_on, detail=detail, **extra)  # type: ignore[arg-type]


def _say(ctx: TCtx, case: FinancingCase, event: events.FollowUp) -> None:
    ctx.emit(event, cluster=case.cluster, company=case.siren, correlation_id=case.correlation_id)
    # Which follow-up the timer sent (its `timer.fired` line says only that it fired).
    about = {"requirement_id": event.requirement_id, "checkpoint": event.checkpoint}
    log_when_committed(ctx.uow, "follow_up.sent", service=ctx.service, timer=ctx.timer.key,
                       cluster=case.cluster, company=case.siren, correlation_id=case.correlation_id,
                       case_id=case.id, programme=case.programme,
                       kind="escalation" if isinstance(event, events.EscalationRaised) else "reminder",
                       reason=event.reason, due_on=event.due_on.isoformat(), owner=event.owner,
                       **{key: value for key, value in about.items() if value is not None})


def _escalate_later(ctx: TCtx, follow_up: FollowUp, case: FinancingCase, timer: Timer) -> None:
    """Escalate if nothing happens within the grace period after the reminder was due. Counted
    from when it was due, not sent: a service down for a week, or a requirement entered long
    after its date, does not push the escalation back by as much."""
    dates = follow_up.dates(case)
    escalate_on = dates.escalation_day(paris_date(timer.due_at))
    ctx.uow.timers.schedule(timer.key, timer.kind, dates.at(escalate_on),
                            {**timer.payload, "step": "escalate",
                             "reminded_on": paris_date(ctx.now).isoformat()})


async def _case(ctx: TCtx, timer: Timer) -> FinancingCase | None:
    return await ctx.uow.cases.get(str(timer.payload["case_id"]))


async def on_case_stale(timer: Timer, ctx: TCtx, follow_up: FollowUp) -> None:
    case = await _case(ctx, timer)
    if case is None or case.is_closed:
        return
    due_on = date.fromisoformat(timer.payload["due_on"])
    last = paris_date(case.last_news_at or case.opened_at).isoformat()
    owner = case.partner or "staff"
    if timer.payload["step"] == "remind":
        _say(ctx, case, _follow_up_event(
            case, events.ReminderDue, "case_stale", due_on, owner=owner,
            detail=f"no news on case {case.id} ({case.kind.value}, stage {case.stage}) since {last}"))
        _escalate_later(ctx, follow_up, case, timer)
    else:
        _say(ctx, case, _follow_up_event(
            case, events.EscalationRaised, "case_stale", due_on, owner=owner,
            reminded_on=date.fromisoformat(timer.payload["reminded_on"]),
            detail=f"still no news on case {case.id} since {last}, despite the reminder"))


async def on_requirement(timer: Timer, ctx: TCtx, follow_up: FollowUp) -> None:
    case = await _case(ctx, timer)
    if case is None or case.is_closed:
        return
    requirement = next((r for r in case.requirements if r.requirement_id == timer.payload["requirement_id"]),
                       None)
    if requirement is None or requirement.is_done:
        return
    step = timer.payload["step"]
    if step == "due_soon" and paris_date(ctx.now) > requirement.due_on:
        step = "overdue"  # the service was down past the due date: "due soon" is no news now
    what = f"{requirement.kind} '{requirement.title}' of case {case.id}"
    common = {"requirement_id": requirement.requirement_id, "owner": requirement.owner}
    if step == "due_soon":
        _say(ctx, case, _follow_up_event(case, events.ReminderDue, "requirement_due_soon", requirement.due_on,
                                         detail=f"{what} is due on {requirement.due_on} "
                                                f"({requirement.status.value})", **common))
        dates = follow_up.dates(case)
        ctx.uow.timers.schedule(timer.key, timer.kind, dates.at(dates.overdue_day(requirement.due_on)),
                                {**timer.payload, "step": "overdue"})
    elif step == "overdue":
        _say(ctx, case, _follow_up_event(case, events.ReminderDue, "requirement_overdue", requirement.due_on,
                                         detail=f"{what} was due on {requirement.due_on} and is "
                                                f"{requirement.status.value}", **common))
        _escalate_later(ctx, follow_up, case, timer)
    else:
        _say(ctx, case, _follow_up_event(
            case, events.EscalationRaised, "requirement_overdue", requirement.due_on,
            reminded_on=date.fromisoformat(timer.payload["reminded_on"]),
            detail=f"{what} is still {requirement.status.value}, due since {requirement.due_on}, "
                   "despite the reminder", **common))


async def on_checkpoint(timer: Timer, ctx: TCtx, follow_up: FollowUp) -> None:
    case = await _case(ctx, timer)
    name = str(timer.payload["checkpoint"])
    if case is None or case.checkpoint(name) is not None:
        return
    due_on = date.fromisoformat(timer.payload["due_on"])
    common = {"checkpoint": name, "owner": "staff"}
    if timer.payload["step"] == "remind":
        _say(ctx, case, _follow_up_event(
            case, events.ReminderDue, "checkpoint_due", due_on,
            detail=f"outcome checkpoint {name} of case {case.id} is due on {due_on}: record what "
                   "the company has raised to date", **common))
        _escalate_later(ctx, follow_up, case, timer)
    else:
        _say(ctx, case, _follow_up_event(
            case, events.EscalationRaised, "checkpoint_due", due_on,
            reminded_on=date.fromisoformat(timer.payload["reminded_on"]),
            detail=f"outcome checkpoint {name} of case {case.id}, due on {due_on}, is still missing",
            **common))


def timer_handlers(follow_up: FollowUp) -> Mapping[str, TimerHandler]:
    return {
        "case_stale": partial(on_case_stale, follow_up=follow_up),
        "requirement": partial(on_requirement, follow_up=follow_up),
        "checkpoint": partial(on_checkpoint, follow_up=follow_up),
    }
