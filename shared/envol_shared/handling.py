"""What an event handler gets and may raise, and what counts as a transient failure.

A service's handlers (`handlers.py`) take the event's data and a `Context`; they change state
through its unit of work, emit events with `Context.emit`, and refuse an event by raising
`Rejected`. `EventConsumer` (consumer.py) calls them, and the timers use `emit` too.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from envol_shared.event_log import OutgoingMessage
from envol_shared.events import EventData, Incoming, make_event
from envol_shared.tracing import outgoing_traceparent
from envol_shared.unit_of_work import UnitOfWork

U = TypeVar("U", bound=UnitOfWork)


class Rejected(Exception):
    """A handler refuses an event for a business reason; nothing it did is kept."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# PostgreSQL's "try the transaction again": a deadlock, a serialization failure.
RETRYABLE_SQLSTATES = frozenset({"40P01", "40001"})


def is_transient(exc: BaseException) -> bool:
    """Failures that say nothing about the message itself: retry the whole batch later."""
    if isinstance(exc, OperationalError | PoolTimeoutError | ConnectionError | TimeoutError):
        return True
    if isinstance(exc, DBAPIError) and (
            exc.connection_invalidated or getattr(exc.orig, "sqlstate", None) in RETRYABLE_SQLSTATES):
        return True
    return isinstance(exc, OSError)


@dataclass
class Context(Generic[U]):
    """What a handler gets: the event, the unit of work, and a way to emit events."""

    incoming: Incoming
    uow: U
    service: str

    @property
    def cluster(self) -> str:
        return self.incoming.envelope.cluster

    @property
    def received_at(self) -> datetime:
        return self.incoming.envelope.time

    def emit(self, data: EventData, *, company: str, correlation_id: str | None = None) -> None:
        """Queue an event caused by the incoming one; it is published after commit.

        The correlation id defaults to the incoming event's; pass the journey's own id when
        the event concerns another company (a waitlisted SME promoted by a withdrawal).
        """
        envelope = self.incoming.envelope
        emit(self.uow, data, cluster=envelope.cluster, producer=self.service, company=company,
             correlation_id=correlation_id or envelope.correlationid, causation_id=envelope.id,
             traceparent=envelope.traceparent)


def emit(uow: UnitOfWork, data: EventData, *, cluster: str, producer: str, company: str,
         correlation_id: str, causation_id: str | None, traceparent: str | None = None) -> None:
    """Write an event to the outbox of `uow`: published once the transaction commits.

    It carries the trace of what is being handled (the current span), else `traceparent`
    (the incoming event's: with tracing off the journey keeps its trace id)."""
    subject, event = make_event(data, cluster=cluster, producer=producer, company=company,
                                correlation_id=correlation_id, causation_id=causation_id,
                                traceparent=outgoing_traceparent(traceparent))
    uow.outbox.add(OutgoingMessage.of_event(subject, event))


Handler = Callable[[Any, Context[Any]], Awaitable[None]]
