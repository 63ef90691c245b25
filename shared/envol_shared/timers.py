"""Durable timers: what a service must do at a given time, even if it was down then.

A handler schedules a timer (``uow.timers.schedule(key, kind, due_at, payload)``) in the
same transaction as the state that calls for it. The scheduler of every running instance
looks for due timers every few seconds and fires each in its own transaction: the timer's
handler (one per `kind`) emits its events to the outbox and may schedule follow-ups, and the
timer is marked fired in that same transaction. So a timer fires once: never twice (marked
with its effects, and locked against other instances on PostgreSQL), and never not at all (a
service that was down fires, at start, what became due meanwhile).

A timer handler decides from the current state whether there is still something to do: a
reminder for a requirement completed since it was scheduled does nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar

import structlog

from envol_shared.event_log import OutboxRow, Timer
from envol_shared.events import EventData, now
from envol_shared.handling import emit, is_transient
from envol_shared.logging import describe_error
from envol_shared.tracing import timer_span
from envol_shared.unit_of_work import UnitOfWork

U = TypeVar("U", bound=UnitOfWork)
Clock = Callable[[], datetime]


@dataclass
class TimerContext(Generic[U]):
    """What a timer handler gets: the timer, the unit of work, the time, and a way to emit."""

    timer: Timer
    uow: U
    service: str
    now: datetime
    # Whom the timer was about, for the log line (set by emit): cluster, company, journey.
    about: dict[str, str] = field(default_factory=dict)

    def emit(self, data: EventData, *, cluster: str, company: str, correlation_id: str) -> None:
        emit(self.uow, data, cluster=cluster, producer=self.service, company=company,
             correlation_id=correlation_id, causation_id=None)
        self.about = {"cluster": cluster, "company": company, "correlation_id": correlation_id}


TimerHandler = Callable[[Timer, TimerContext[Any]], Awaitable[None]]


class TimerScheduler(Generic[U]):
    def __init__(
        self,
        *,
        service: str,
        uow_factory: Callable[[], U],
        handlers: Mapping[str, TimerHandler],
        on_commit: Callable[[list[OutboxRow]], None] = lambda rows: None,
        clock: Clock = now,
        interval_s: float = 5.0,
        batch_size: int = 100,
        on_fired: Callable[[str, str], None] = lambda kind, outcome: None,
    ) -> None:
        self._service = service
        self._uow_factory = uow_factory
        self._handlers = dict(handlers)
        self._on_commit = on_commit
        self._clock = clock
        self._interval_s = interval_s
        self._batch_size = batch_size
        self._on_fired = on_fired  # (kind, "fired" or "failed"): the metrics
        self.log = structlog.get_logger("envol.timers").bind(service=service)

    async def run(self, stopping: asyncio.Event) -> None:
        failures = 0
        while not stopping.is_set():
            try:
                fired = await self.fire_due()
                failures = 0
            except Exception as exc:
                if not is_transient(exc):
                    raise
                failures += 1
                self.log.warning("timers.database_unavailable", error=repr(exc), failures=failures)
                fired = 0
            # A full batch means more may be due: go on at once.
            if fired < self._batch_size:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stopping.wait(), self._interval_s * (1 + min(failures, 5)))

    async def fire_due(self) -> int:
        """Fire every timer due now (at most one batch); return how many were taken."""
        at = self._clock()
        async with self._uow_factory() as uow:
            keys = await uow.timers.due(at, self._batch_size)
        for key in keys:
            with timer_span(self._service):  # what it emits starts a trace of its own
                await self._fire(key, at)
        return len(keys)

    async def _fire(self, key: str, at: datetime) -> None:
        kind = "unknown"
        try:
            async with self._uow_factory() as uow:
                timer = await uow.timers.claim(key, at)
                if timer is None:  # fired by another instance, or moved, meanwhile
                    return
                kind = timer.kind
                handler = self._handlers.get(timer.kind)
                if handler is None:
                    raise LookupError(f"no handler for timers of kind {timer.kind!r}")
                context = TimerContext(timer, uow, self._service, at)
                await handler(timer, context)
                await uow.timers.mark_fired(key, at, "fired")
                await uow.commit()
                written = uow.outbox.written
        except Exception as exc:
            if is_transient(exc):
                raise
            # A handler that fails for good must not block the others nor loop forever: the
            # timer is marked fired with the error, which the operator sees in the log too.
            self.log.error("timer.failed", timer=key, error=describe_error(exc))
            async with self._uow_factory() as uow:
                if await uow.timers.claim(key, at) is not None:
                    await uow.timers.mark_fired(key, at, f"failed: {exc!r}")
                    await uow.commit()
            self._on_fired(kind, "failed")
            return
        self._on_commit(written)
        self._on_fired(kind, "fired")
        self.log.info("timer.fired", timer=key, kind=timer.kind, due_at=timer.due_at.isoformat(),
                      event_ids=[row.message_id for row in written], **context.about)
