"""Durable follow-up of supports and units, as timers of the shared scheduler.

Handlers schedule, in the transaction that changes the support or the unit:
- ``<support>:checkpoint:<name>``  an outcome checkpoint comes due -> reminder, then escalation;
- ``unit/<unit>:end``              a relay mission, desk or cohort has served its last day: it
                                   ends (``handlers.unit_reached_end`` places its SMEs elsewhere).
Scheduling a key again replaces its timer, so a mission ended earlier simply moves its end,
and a checkpoint timer moves to its next step by rescheduling itself when it fires.

When a timer fires, its handler looks at the support or unit as it is now: a checkpoint
recorded, or a unit ended, since means there is nothing left to do.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from functools import partial
from typing import Any

from envol_export.domain.follow_up import FollowUpCalendar, unit_ends_at
from envol_export.domain.model import CHECKPOINT_ORDER, ExportSupport, SupportUnit
from envol_export.partners import Partners
from envol_export.unit_of_work import ExportUnitOfWork
from envol_shared.calendar import BusinessCalendar, paris_date
from envol_shared.contracts import export as events
from envol_shared.decisions import log_when_committed
from envol_shared.event_log import Timer, Timers
from envol_shared.timers import TimerContext, TimerHandler

TCtx = TimerContext[ExportUnitOfWork]


CHECKPOINTS = CHECKPOINT_ORDER
UNIT_END = "unit_end"


class FollowUp:
    """Schedules a support's and a unit's timers, with its cluster's policy and the French calendar."""

    def __init__(self, partners: Partners, calendar: BusinessCalendar) -> None:
        self.partners = partners
        self.calendar = calendar

    def dates(self, support: ExportSupport) -> FollowUpCalendar:
        return FollowUpCalendar(self.partners.policy(support.cluster), self.calendar)

    def support_opened(self, timers: Timers, support: ExportSupport) -> None:
        # Checkpoints go on whatever happens to the support: whether the programme worked is
        # measured for 24 months anyway.
        dates = self.dates(support)
        for name in CHECKPOINTS:
            due_on = dates.checkpoint_due_on(name, opened_at=support.opened_at,
                                             enrolled_at=support.enrolled_at)
            timers.schedule(f"{support.id}:checkpoint:{name}", "checkpoint", dates.at(due_on),
                            {"support_id": support.id, "checkpoint": name, "step": "remind",
                             "due_on": due_on.isoformat()})

    def checkpoint_recorded(self, timers: Timers, support: ExportSupport, name: str) -> None:
        timers.cancel(f"{support.id}:checkpoint:{name}")

    def unit_scheduled(self, timers: Timers, unit: SupportUnit) -> None:
        """The unit's end (or its new end) is a timer; a unit without end date has none."""
        if unit.ends_on is None or unit.is_ended:
            timers.cancel(unit_key(unit))
            return
        timers.schedule(unit_key(unit), UNIT_END, unit_ends_at(unit.ends_on),
                        {"unit_id": unit.id, "ends_on": unit.ends_on.isoformat()})

    def unit_ended(self, timers: Timers, unit: SupportUnit) -> None:
        timers.cancel(unit_key(unit))


def unit_key(unit: SupportUnit) -> str:
    # "/" cannot appear in a support id (a token), so a unit's timers never show as a support's.
    return f"unit/{unit.id}:end"


def _follow_up_event(support: ExportSupport, cls: type[events.FollowUp], due_on: date, detail: str,
                     **extra: Any) -> events.FollowUp:
    return cls(support_id=support.id, siren=support.siren, cluster=support.cluster,
               programme=support.programme, cohort=support.cohort, target_country=support.target_country,
               reason="checkpoint_due", due_on=due_on, detail=detail, **extra)


def _say(ctx: TCtx, support: ExportSupport, event: events.FollowUp) -> None:
    ctx.emit(event, cluster=support.cluster, company=support.siren, correlation_id=support.correlation_id)
    # Which follow-up the timer sent (its `timer.fired` line says only that it fired).
    log_when_committed(ctx.uow, "follow_up.sent", service=ctx.service, timer=ctx.timer.key,
                       cluster=support.cluster, company=support.siren, correlation_id=support.correlation_id,
                       support_id=support.id, programme=support.programme,
                       kind="escalation" if isinstance(event, events.EscalationRaised) else "reminder",
                       reason=event.reason, checkpoint=event.checkpoint, due_on=event.due_on.isoformat(),
                       owner=event.owner)


async def on_checkpoint(timer: Timer, ctx: TCtx, follow_up: FollowUp) -> None:
    support = await ctx.uow.supports.get(str(timer.payload["support_id"]))
    name = str(timer.payload["checkpoint"])
    if support is None or support.checkpoint(name) is not None:
        return
    due_on = date.fromisoformat(timer.payload["due_on"])
    common = {"checkpoint": name, "owner": "staff"}
    if timer.payload["step"] == "remind":
        _say(ctx, support, _follow_up_event(
            support, events.ReminderDue, due_on,
            detail=f"outcome checkpoint {name} of support {support.id} is due on {due_on}: record the "
                   "export turnover, the countries served and the contracts to date", **common))
        # Escalate if nothing happens within the grace period after the reminder was due.
        # Counted from when it was due, not sent: a service down for a week does not push the
        # escalation back by as much.
        dates = follow_up.dates(support)
        escalate_on = dates.escalation_day(paris_date(timer.due_at))
        ctx.uow.timers.schedule(timer.key, timer.kind, dates.at(escalate_on),
                                {**timer.payload, "step": "escalate",
                                 "reminded_on": paris_date(ctx.now).isoformat()})
    else:
        _say(ctx, support, _follow_up_event(
            support, events.EscalationRaised, due_on,
            reminded_on=date.fromisoformat(timer.payload["reminded_on"]),
            detail=f"outcome checkpoint {name} of support {support.id}, due on {due_on}, is still missing",
            **common))


def timer_handlers(follow_up: FollowUp, unit_end: TimerHandler) -> Mapping[str, TimerHandler]:
    """The checkpoint reminders, and the end of units (given by the service layer)."""
    return {
        "checkpoint": partial(on_checkpoint, follow_up=follow_up),
        UNIT_END: unit_end,
    }
