"""Reliable batch consumption of a service's durable JetStream pull consumer.

For each fetched batch, one transaction:
  (a) records every message key in the inbox (a duplicate is acknowledged, with no effect),
  (b) lets the handlers apply state changes,
  (c) writes outgoing events, rejections and dead letters to the outbox;
and only after commit are the messages acknowledged.

A message can only fail itself. What can go wrong, and what happens:
- unreadable message (not JSON, beyond the contract's limits, not a CloudEvent, schema
  violation, unknown type or version): kept in the dead-letter stream with the reason and
  original bytes, and a rejection event is sent to the producer's namespace; acknowledged.
- business refusal (unknown application, illegal transition...): a rejection event, no change.
- transient failure (database unreachable, locked, timing out, a deadlock): the whole batch
  is rolled back and redelivered after a delay; fetching pauses meanwhile. Never terminated.
- anything else, in a handler or when its changes are written: the batch is applied again
  with each message in a savepoint of its own, so the one at fault is found and undone
  alone; it is redelivered later (and dead-lettered after `max_attempts`); later messages
  about the same company wait behind it so per-company order holds, across restarts too
  (the hold is stored in `held_companies` in the same transaction).
- the same event again (same producer, source and id): acknowledged with no effect; if it
  had been refused and comes back from its producer, the refusal is sent again.

The batches come from a FastStream subscriber (`subscriber.BatchFetchSubscriber`, registered
by the service): it asks `ready_to_fetch` before each fetch and hands each batch of raw
nats-py messages to `handle_batch`. Acknowledgements are this module's, not FastStream's
(its policies act per message; here a message is acknowledged once its batch committed).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Mapping
from typing import Generic, TypeVar

import nats.errors
import structlog
from nats.aio.msg import Msg
from nats.errors import ConnectionClosedError
from nats.js import JetStreamContext

from envol_shared.deliveries import Delivery, Outcome, dead_letter, rejection
from envol_shared.event_log import OutboxRow, Received
from envol_shared.events import EventData
from envol_shared.handling import Context, Handler, Rejected, emit, is_transient
from envol_shared.lease import ConsumerLease, LeaseLost
from envol_shared.logging import describe_error
from envol_shared.metrics import ConsumerTelemetry
from envol_shared.topology import EVENTS_STREAM, ServiceConsumer
from envol_shared.unit_of_work import UnitOfWork

U = TypeVar("U", bound=UnitOfWork)

# What handlers import from here (defined in handling.py).
__all__ = ["Context", "EventConsumer", "Handler", "Rejected", "emit", "is_transient"]


class EventConsumer(Generic[U]):
    """A service's consumption of its events: between fetches (`ready_to_fetch`: the lease,
    pauses) and for each fetched batch (`handle_batch`, `process`)."""

    def __init__(
        self,
        *,
        js: JetStreamContext,
        consumer: ServiceConsumer,
        uow_factory: Callable[[], U],
        handlers: Mapping[type[EventData], Handler],
        on_commit: Callable[[list[OutboxRow]], None] = lambda rows: None,
        max_attempts: int = 5,
        retry_delay_s: float = 2.0,
        max_retry_delay_s: float = 60.0,
        lease: ConsumerLease | None = None,
        max_payload: int = 1024 * 1024,
        stopping: asyncio.Event | None = None,
        telemetry: ConsumerTelemetry | None = None,
    ) -> None:
        # For the consumer's state on the server (after a crash takeover); the batches
        # themselves come from the subscriber.
        self._js = js
        self._consumer = consumer
        self._uow_factory = uow_factory
        self._handlers = {event.type: handler for event, handler in handlers.items()}
        self._accepted = frozenset(consumer.event_types)
        missing = self._accepted - set(self._handlers)
        if missing:
            raise ValueError(f"no handler for consumed event types {sorted(missing)}")
        self._on_commit = on_commit
        self._max_attempts = max_attempts
        self._retry_delay_s = retry_delay_s
        self._max_retry_delay_s = max_retry_delay_s
        self._lease = lease
        # The server's limit: a dead letter, original included, never exceeds it.
        self._max_payload = max_payload
        # company -> stream sequence of its oldest event waiting for a redelivery (loaded from
        # and saved to the database, so per-company order survives a restart)
        self._held: dict[str, int] = {}
        # Set when the service stops: the fetch loop ends after the batch in hand.
        self._stopping = stopping or asyncio.Event()
        # Between fetches (see ready_to_fetch): holds loaded for the lease held now, whether a
        # crashed holder's messages must come back first, the pause asked by the last batch,
        # when the lease was last renewed, and what broke the pipeline itself.
        self._started = False
        self._redeliveries_first = False
        self._pause_s = 0.0
        self._renewed = 0.0
        self._failure: Exception | None = None
        self.log = structlog.get_logger("envol.consumer").bind(service=consumer.service)
        # Counters and spans of each batch (see metrics.py): off the database, cheap.
        self._telemetry = telemetry or ConsumerTelemetry(consumer.service, self._accepted)

    @property
    def service(self) -> str:
        return self._consumer.service

    def _delay(self, attempt: int) -> float:
        return min(self._retry_delay_s * 2 ** max(attempt - 1, 0), self._max_retry_delay_s)

    async def ready_to_fetch(self) -> bool:
        """Asked by the subscriber before each fetch: True to fetch now, False to stop for good.

        Returns only while this instance may consume: it waits here while another instance
        holds the lease (standing by), after taking the lease over from a crashed holder (for
        what that one had fetched to come back first), and after a failed batch (its pause).
        An idle lease is renewed here. A failure that is no one message's fault, and not
        transient, is raised: the fetch loop ends with it, and the service stops."""
        if self._failure is not None:
            raise self._failure
        while not self._stopping.is_set():
            try:
                if self._lease is not None and not self._lease.held:
                    if not await self._lease.acquire(self._stopping):
                        break
                    self._started = False
                    self._redeliveries_first = self._redeliveries_first or self._lease.after_crash
                if not self._started:
                    await self._start()
                    continue  # stopping may have come meanwhile
                if self._pause_s:
                    pause, self._pause_s = self._pause_s, 0.0
                    await _sleep_unless(self._stopping, pause)
                    continue
                if self._lease is not None and time.monotonic() - self._renewed > self._lease.renew_every_s:
                    await self._renew_lease()
                    self._renewed = time.monotonic()
                return True
            except LeaseLost:
                self.log.warning("consumer.lease_lost")  # another instance consumes now
            except (nats.errors.Error, TimeoutError) as exc:
                # JetStream unavailable for a while (a node lost, a leader being elected).
                self.log.warning("consumer.jetstream_unavailable", error=repr(exc))
                await _sleep_unless(self._stopping, 1.0)
        self.log.info("consumer.stopped")
        if self._lease is not None:
            await self._lease.release()  # a standby takes over at once
        return False

    async def _start(self) -> None:
        """What comes before the first fetch of a lease: the redeliveries, the holds."""
        if self._redeliveries_first:
            await self._wait_for_redeliveries()
            self._redeliveries_first = False
        await self._load_holds()
        self._started = True
        self._renewed = time.monotonic()
        self.log.info("consumer.started", filter_subjects=self._consumer.filter_subjects,
                      held_companies=len(self._held))

    async def handle_batch(self, messages: list[Msg]) -> None:
        """The subscriber's handler: one fetched batch through `process`.

        It never raises (FastStream would log the error and fetch on): a lost lease makes the
        next `ready_to_fetch` stand by, a lost acknowledgement or a failed batch pauses
        fetching, and anything else ends the fetch loop at its next turn."""
        try:
            pause = await self.process(messages)
        except LeaseLost:
            self.log.warning("consumer.lease_lost")  # rolled back and handed back: see process
            return
        except (ConnectionClosedError, nats.errors.ConnectionReconnectingError,
                nats.errors.OutboundBufferLimitError) as exc:
            # Committed but not acknowledged: redelivered later, and the inbox drops it.
            self.log.warning("batch.acknowledgement_lost", error=repr(exc))
            pause = 1.0
        except Exception as exc:  # a fault of the pipeline itself, not of a message
            self._failure = exc
            return
        finally:
            self._telemetry.end()
        if pause:
            self._pause_s = pause
        elif self._lease is not None:
            self._renewed = time.monotonic()  # the batch renewed it

    async def _wait_for_redeliveries(self) -> None:
        """After a holder's crash, let what it had fetched come back first: fetching at once
        would apply a company's newer events before its older ones."""
        info = await self._js.consumer_info(EVENTS_STREAM, self._consumer.durable)
        if info.num_ack_pending:
            wait_s = (info.config.ack_wait or 30) + 1
            self.log.info("consumer.waiting_for_redeliveries", unacknowledged=info.num_ack_pending,
                          wait_s=wait_s)
            await _sleep_unless(self._stopping, wait_s)

    async def _renew_lease(self) -> None:
        assert self._lease is not None
        try:
            await self._lease.renew()
        except LeaseLost:
            raise
        except Exception as exc:  # database blip: the batches' own renewals will tell
            if not is_transient(exc):
                raise
            self.log.warning("consumer.lease_renewal_failed", error=repr(exc))

    async def _load_holds(self) -> None:
        attempt = 0
        while not self._stopping.is_set():
            try:
                async with self._uow_factory() as uow:
                    self._held = await uow.holds.all()
                return
            except Exception as exc:
                if not is_transient(exc):
                    raise
                attempt += 1
                self.log.warning("consumer.database_unavailable", error=repr(exc))
                await _sleep_unless(self._stopping, self._delay(attempt))

    async def process(self, messages: list[Msg]) -> float:
        """Process one fetched batch; return how long to pause fetching (0 when healthy).

        The batch is applied at once; if anything in it fails that is not transient, it is
        applied again with each message in its own savepoint, which finds the culprit."""
        deliveries = [Delivery.of(msg, self._accepted) for msg in messages]
        self._telemetry.begin(deliveries)
        for delivery in deliveries:
            held_at = self._held.get(delivery.company)
            if delivery.company and held_at is not None and delivery.stream_sequence > held_at:
                delivery.outcome = Outcome.WAITING
        isolated = False
        while True:
            try:
                written, holds = await self._apply(deliveries, isolated=isolated)
                break
            except LeaseLost:
                # Another instance consumes now: what this batch did is rolled back, and it
                # gets these messages again.
                for delivery in deliveries:
                    await delivery.msg.nak()
                raise
            except Exception as exc:
                if not is_transient(exc) and not isolated:
                    isolated = True
                    self.log.info("batch.isolating_failure", size=len(deliveries), error=describe_error(exc))
                    continue
                # Transient, or failing with every message in a savepoint of its own: not a
                # message's fault. Try the batch again later, and keep consuming.
                delay = self._delay(max(d.attempt for d in deliveries))
                log = self.log.warning if is_transient(exc) else self.log.error
                log("batch.transient_failure" if is_transient(exc) else "batch.failed",
                    error=describe_error(exc), size=len(deliveries), retry_in_s=delay)
                self._telemetry.rolled_back()
                for delivery in deliveries:
                    await delivery.msg.nak(delay=delay)
                return delay
        self._telemetry.committed()
        for company, sequence in holds.items():
            if sequence is None:
                self._held.pop(company, None)
            else:
                self._held[company] = sequence
        self._on_commit(written)
        await self._settle(deliveries)
        return 0.0

    async def _apply(self, deliveries: list[Delivery], *,
                     isolated: bool) -> tuple[list[OutboxRow], dict[str, int | None]]:
        for delivery in deliveries:
            if delivery.outcome not in (Outcome.RETRY, Outcome.WAITING):
                delivery.outcome, delivery.reason = None, None
        waiting_companies: set[str] = set()
        async with self._uow_factory() as uow:
            live = [d for d in deliveries if d.outcome is None]
            seen = await uow.inbox.seen({d.key for d in live})
            fresh = [d for d in live if d.incoming is not None and d.key not in seen]
            await uow.prefetch([d.incoming for d in fresh if d.incoming is not None])
            after = {id(d): fresh[index + 1:] for index, d in enumerate(fresh)} if isolated else {}
            for delivery in deliveries:
                if delivery.outcome in (Outcome.RETRY, Outcome.WAITING):
                    if delivery.company:
                        waiting_companies.add(delivery.company)
                    continue
                if delivery.key in seen:
                    self._duplicate(uow, delivery, seen[delivery.key])
                    continue
                if delivery.company and delivery.company in waiting_companies:
                    delivery.outcome = Outcome.WAITING
                    continue
                if delivery.invalid_reason is not None or delivery.failure is not None:
                    self._dead_letter(uow, delivery, delivery.invalid_reason or delivery.failure or "")
                elif isolated:
                    await self._handle_alone(uow, delivery, after[id(delivery)])
                else:
                    await self._handle(uow, delivery)
                seen[delivery.key] = delivery.received
            holds = self._hold_changes(deliveries)
            await uow.holds.apply(holds)
            if self._lease is not None:
                await self._lease.renew(uow.session)  # commits only while this instance holds it
            await uow.commit()
            return uow.outbox.written, holds

    def _hold_changes(self, deliveries: list[Delivery]) -> dict[str, int | None]:
        """Companies to hold (an event of theirs is being retried) or release (it went through)."""
        changes: dict[str, int | None] = {}
        for delivery in deliveries:
            company = delivery.company
            if not company:
                continue
            held_at = changes.get(company, self._held.get(company))
            if delivery.outcome is Outcome.RETRY and (held_at is None
                                                      or delivery.stream_sequence < held_at):
                changes[company] = delivery.stream_sequence
            elif held_at == delivery.stream_sequence and delivery.outcome not in (
                    Outcome.RETRY, Outcome.WAITING):
                changes[company] = None
        return changes

    async def _handle(self, uow: U, delivery: Delivery) -> None:
        """Apply one event, all in the batch's transaction: any failure fails the batch."""
        assert delivery.incoming is not None
        handler = self._handlers[delivery.incoming.envelope.type]
        with self._telemetry.handling(delivery):  # its span is current: emitted events carry it
            await handler(delivery.incoming.data, Context(delivery.incoming, uow, self.service))
        delivery.outcome = Outcome.APPLIED
        uow.inbox.record(delivery.key, delivery.received)

    async def _handle_alone(self, uow: U, delivery: Delivery, rest: list[Delivery]) -> None:
        """Apply one event in a savepoint: a refusal or a failure, in the handler or in
        writing what it changed, undoes this event's changes and nothing else."""
        assert delivery.incoming is not None
        try:
            async with uow.savepoint():
                await self._handle(uow, delivery)
            return
        except Rejected as exc:
            delivery.outcome, delivery.reason = Outcome.REJECTED, exc.reason
            delivery.extra_log["reason"] = exc.reason
            uow.outbox.add(rejection(self.service, delivery, exc.reason, dead_lettered=False))
            uow.inbox.record(delivery.key, delivery.received)
        except Exception as exc:
            if is_transient(exc):
                raise
            self.log.error("event.handler_failed", error=describe_error(exc), **delivery.log_fields())
            if delivery.attempt >= self._max_attempts:
                self._dead_letter(uow, delivery, f"handler failed on attempt {delivery.attempt} of "
                                                 f"{self._max_attempts}: {describe_error(exc)}")
            else:
                delivery.outcome = Outcome.RETRY
        # The savepoint's undoing emptied the session: load again what the rest will need.
        await uow.prefetch([d.incoming for d in rest if d.incoming is not None])

    def _duplicate(self, uow: U, delivery: Delivery, before: Received) -> None:
        """Seen already: no second effect. A refused event sent again by its producer (not a
        redelivery of the same stream message) hears the same refusal again."""
        delivery.outcome = Outcome.DUPLICATE
        refused = before.outcome in (Outcome.REJECTED.value, Outcome.DEAD_LETTERED.value)
        if refused and before.stream_sequence != delivery.stream_sequence:
            reason = f"sent again, and refused again: {before.reason or 'refused'}"
            uow.outbox.add(rejection(self.service, delivery, reason,
                                     dead_lettered=before.outcome == Outcome.DEAD_LETTERED.value))
            delivery.extra_log.update(reason=reason, refusal_repeated=True)

    def _dead_letter(self, uow: U, delivery: Delivery, reason: str) -> None:
        delivery.outcome, delivery.reason = Outcome.DEAD_LETTERED, reason
        delivery.extra_log["reason"] = reason
        uow.outbox.add(dead_letter(self.service, delivery, reason, max_payload=self._max_payload))
        if delivery.stray_acknowledgement:
            delivery.extra_log["stray_acknowledgement"] = True  # see Delivery: no one to answer
        else:
            uow.outbox.add(rejection(self.service, delivery, reason, dead_lettered=True))
        uow.inbox.record(delivery.key, delivery.received)

    async def _settle(self, deliveries: list[Delivery]) -> None:
        for delivery in deliveries:
            log = self.log.bind(**delivery.log_fields(), **delivery.extra_log)
            if delivery.outcome in (Outcome.RETRY, Outcome.WAITING):
                await delivery.msg.nak(delay=self._delay(delivery.attempt))
                log.info(f"event.{delivery.outcome.value}")
                continue
            await delivery.msg.ack()
            assert delivery.outcome is not None
            if delivery.outcome is Outcome.DEAD_LETTERED:
                log.warning("event.dead_lettered")
            elif delivery.outcome is Outcome.REJECTED:
                log.warning("event.rejected")
            else:
                log.info(f"event.{delivery.outcome.value}")


async def _sleep_unless(stopping: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stopping.wait(), timeout=seconds)
