"""The outbox relay: publishes committed outbox rows to JetStream, in order, at least once.

Each row is published with ``Nats-Msg-Id`` set to its message id, so when the relay crashes
after publishing but before marking rows as published, the republished copies are dropped
by JetStream's duplicate window (and, beyond it, by the consumers' inboxes). A row is marked
published when, and only when, JetStream acknowledged it.

Rows travel in two lanes, each in its own order and relayed on its own: events (to
ENVOL_EVENTS) and dead letters (to ENVOL_DEAD_LETTERS). A lane whose stream refuses (full,
missing, not answering) keeps its rows pending and retries with backoff, one row at a time,
while the other lane goes on; its rows go out once the stream accepts again (an operator
raised its limit...). Every wait for acknowledgements is bounded (`ack_timeout_s`). A lane
says when it starts being refused and when it recovers, once each, in the log; refused for
longer than `not_ready_after_s`, it makes the service not ready (`flowing`).

A row larger, with its headers, than the server's max_payload is never sent: the server
would close the connection on it. See `_unpublishable` for what happens to it.

The consumer hands over the rows of each batch it commits. When a lane's last read found
nothing older pending, it publishes those rows straight from memory (saving a read of the
outbox per batch, which at low load is most of an event's latency); otherwise, and after
any failure, it reads the outbox in order, which is also how it recovers after a crash.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta

import sqlalchemy as sa
import structlog
from nats.js import JetStreamContext
from nats.js.errors import APIError, NoStreamResponseError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from envol_shared.event_log import OutboxRow, outbox
from envol_shared.events import now
from envol_shared.health import NotReady
from envol_shared.topology import DEAD_LETTER_ROOT

DEAD_LETTER_PREFIX = DEAD_LETTER_ROOT + "."
MAX_BACKOFF_S = 10.0
LAST_PASS_ATTEMPTS = 3
PRUNE_EVERY_S = 3600.0


class Refused(Exception):
    """A lane's row was not published: it and the rows after it stay pending."""


@dataclass(eq=False)
class Lane:
    """The rows bound for one stream, and how relaying them goes."""

    name: str
    dead_letters: bool
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    handed: list[OutboxRow] = field(default_factory=list)
    # True when the last read of the outbox left nothing pending in this lane: rows handed
    # over since are then its oldest pending ones, in commit order.
    drained: bool = False
    read_up_to: int = 0
    failing_since: float | None = None  # time.monotonic() of the first refusal in a row
    reason: str | None = None
    failures: int = 0
    # Rows too large ever to be published, reported once (and, dead letters, skipped).
    unpublishable: set[int] = field(default_factory=set)

    def holds(self, subject: str) -> bool:
        return subject.startswith(DEAD_LETTER_PREFIX) == self.dead_letters

    def where(self) -> sa.ColumnElement[bool]:
        is_dead_letter = outbox.c.subject.startswith(DEAD_LETTER_PREFIX, autoescape=True)
        return is_dead_letter if self.dead_letters else sa.not_(is_dead_letter)


class OutboxRelay:
    def __init__(
        self,
        *,
        js: JetStreamContext,
        engine: AsyncEngine,
        service: str,
        batch_size: int = 500,
        poll_interval_s: float = 1.0,
        keep_published_for: timedelta = timedelta(days=7),
        ack_timeout_s: float = 5.0,
        not_ready_after_s: float = 30.0,
        on_published: Callable[[bool, int], None] = lambda dead_letters, count: None,
    ) -> None:
        self._js = js
        # The connection the context publishes on, for its max_payload (nats-py has no
        # public accessor for it).
        self._nc = js._nc
        self._engine = engine
        self._batch_size = batch_size
        self._poll_interval_s = poll_interval_s
        self._keep_published_for = keep_published_for
        self._ack_timeout_s = ack_timeout_s
        self.not_ready_after_s = not_ready_after_s
        self._on_published = on_published  # (dead letters?, rows acknowledged): the metrics
        self._lanes = (Lane("events", dead_letters=False), Lane("dead letters", dead_letters=True))
        self.log = structlog.get_logger("envol.relay").bind(service=service)
        _fail_refused_publishes(js)

    def hand_off(self, rows: list[OutboxRow]) -> None:
        """Called after each commit with the outbox rows it wrote: publish now."""
        for lane in self._lanes:
            handed = [row for row in rows if lane.holds(row.subject)]
            if handed:
                lane.handed += handed
                lane.wake.set()

    @property
    def blocked_lanes(self) -> dict[str, tuple[float, str]]:
        """Each lane refused at the moment: for how many seconds, and why."""
        at = time.monotonic()
        return {lane.name: (at - lane.failing_since, lane.reason or "")
                for lane in self._lanes if lane.failing_since is not None}

    async def flowing(self) -> bool:
        """The readiness check: raises NotReady, saying why, while a lane has been refused
        for longer than `not_ready_after_s`."""
        troubles = [f"{name} refused for {seconds:.0f} s: {reason}"
                    for name, (seconds, reason) in self.blocked_lanes.items()
                    if seconds >= self.not_ready_after_s]
        if troubles:
            raise NotReady("; ".join(troubles))
        return True

    async def run(self, stopping: asyncio.Event) -> None:
        """Publish until `stopping` is set, then flush what is left and return."""
        tasks = [asyncio.create_task(self._run_lane(lane, stopping), name=f"relay: {lane.name}")
                 for lane in self._lanes]
        tasks.append(asyncio.create_task(self._prune_hourly(stopping), name="relay: prune"))
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:  # one crashed (a bug) or run() was cancelled: end the others
                task.cancel()

    async def _run_lane(self, lane: Lane, stopping: asyncio.Event) -> None:
        failing_at_stop: bool | None = None
        last_pass_failures = 0
        while True:
            # A pass that starts after `stopping` sees every commit (the consumer has ended).
            last_pass = stopping.is_set()
            if last_pass and failing_at_stop is None:
                failing_at_stop = lane.failing_since is not None
            # Cleared before reading the outbox: a commit from now on makes the next pass run.
            lane.wake.clear()
            try:
                await self.publish_lane(lane)
            except Exception as exc:  # refused, NATS down, database blip: rows stay pending
                self._refused(lane, exc)
                if last_pass:
                    last_pass_failures += 1
                    # A lane refused already gets one last try: a stop never waits on it.
                    if failing_at_stop or last_pass_failures >= LAST_PASS_ATTEMPTS:
                        # Not lost: the rows stay in the outbox for the next start.
                        self.log.error("outbox.left_pending_at_shutdown", lane=lane.name,
                                       reason=lane.reason)
                        return
                    await asyncio.sleep(0.2)
                    continue
                # New commits do not cut the backoff short (the stream still refuses); a stop does.
                await _set_within(stopping, min(0.5 * 2 ** lane.failures, MAX_BACKOFF_S))
                continue
            self._recovered(lane)
            if last_pass:
                return
            # The lane was drained: wait for a commit to wake it, or for the next poll.
            if not lane.wake.is_set():
                await _first_set(lane.wake, stopping, timeout_s=self._poll_interval_s)

    async def publish_lane(self, lane: Lane) -> int:
        """Publish every pending row of a lane; return how many were published."""
        # Rows a read of the outbox has already taken care of are not handed over again.
        handed = [row for row in lane.handed if row.id > lane.read_up_to]
        lane.handed = []
        if lane.drained and handed:
            lane.drained = False  # until these are published and marked
            async with self._engine.begin() as connection:
                if connection.dialect.name == "postgresql":
                    # Another instance's relay may be reading these rows from the outbox:
                    # publish only those locked here; it publishes the others.
                    handed = await self._lock(connection, handed)
                acked, refusal = await self._publish(lane, handed)
                if acked:
                    await self._mark(connection, acked)
            if refusal:
                raise refusal
            lane.drained = True
            return len(acked)
        total = 0
        while True:
            count, more = await self._publish_batch(lane)
            total += count
            if not more:
                lane.drained = True
                return total

    @staticmethod
    async def _lock(connection: AsyncConnection, rows: list[OutboxRow]) -> list[OutboxRow]:
        """The rows still pending that no other transaction holds, now locked by this one."""
        query = (sa.select(outbox.c.id)
                 .where(outbox.c.id.in_([row.id for row in rows]), outbox.c.published_at.is_(None))
                 .with_for_update(skip_locked=True))
        locked = set((await connection.execute(query)).scalars())
        return [row for row in rows if row.id in locked]

    async def _publish_batch(self, lane: Lane) -> tuple[int, bool]:
        """Publish the oldest pending rows of a lane; return (published, more may wait)."""
        # A refused lane sends its oldest row alone until the stream takes it again.
        limit = 1 if lane.failing_since is not None else self._batch_size
        async with self._engine.begin() as connection:
            query = (
                sa.select(outbox.c.id, outbox.c.message_id, outbox.c.subject, outbox.c.headers,
                          outbox.c.payload)
                .where(outbox.c.published_at.is_(None), lane.where())
                .order_by(outbox.c.id)
                .limit(limit)
            )
            if lane.dead_letters and lane.unpublishable:
                query = query.where(outbox.c.id.not_in(sorted(lane.unpublishable)))
            if connection.dialect.name == "postgresql":
                # Several instances of a service may relay the same outbox: each row once.
                query = query.with_for_update(skip_locked=True)
            rows = [OutboxRow(*row) for row in await connection.execute(query)]
            if not rows:
                return 0, False
            lane.read_up_to = max(lane.read_up_to, rows[-1].id)
            acked, refusal = await self._publish(lane, rows)
            if acked:
                await self._mark(connection, acked)
        # Raised after the commit: what was acknowledged stays marked.
        if refusal:
            raise refusal
        if acked:
            self._recovered(lane)  # back to whole batches
        return len(acked), len(rows) == limit

    async def _publish(self, lane: Lane, rows: list[OutboxRow]) -> tuple[list[OutboxRow], Refused | None]:
        """Publish rows in order, pipelined; return those JetStream acknowledged, and why
        the earliest other one was not published (None: every row published or skipped).

        JetStream stores what it accepts in the order it receives it. Rows sent behind a
        refused one are normally refused too (a full stream, no stream); one accepted
        anyway (a smaller message fitting into a full stream's last bytes) is marked, being
        stored, and the refused row follows it later: one batch out of order at most, as a
        refused lane then sends a row at a time."""
        if not self._nc.is_connected:
            # Else nats-py would buffer the rows, or fail them leaving a never-resolved future.
            return [], Refused("NATS is not connected")
        max_payload = self._nc.max_payload
        sent: list[tuple[OutboxRow, asyncio.Future[object]]] = []
        refusal = None
        for row in rows:
            headers = {**row.headers, "Nats-Msg-Id": row.message_id}
            # Stricter than nats-py's own MaxPayloadError check, which leaves out the headers.
            size = _wire_size(row.payload, headers)
            if size > max_payload:
                refusal = self._unpublishable(lane, row, size, max_payload)
                if refusal:
                    break
                continue
            try:
                future = await self._js.publish_async(row.subject, row.payload, headers=headers,
                                                      wait_stall=self._ack_timeout_s)
            except Exception as exc:
                refusal = Refused(_describe(exc))
                break
            sent.append((row, future))
        acks = await self._acknowledgements([future for _, future in sent])
        acked = [row for (row, _), ack in zip(sent, acks, strict=True) if not isinstance(ack, BaseException)]
        errors = [ack for ack in acks if isinstance(ack, BaseException)]
        if acked:
            self._on_published(lane.dead_letters, len(acked))
        # The earliest failure is the one that holds the lane.
        return acked, Refused(_describe(errors[0])) if errors else refusal

    async def _acknowledgements(self, futures: list[asyncio.Future[object]]) -> list[object]:
        """Each publish's acknowledgement or error, waiting `ack_timeout_s` at most. A row
        not acknowledged in time may still be stored: it stays pending, and its next copy
        is dropped as a duplicate."""
        if not futures:
            return []
        _, late = await asyncio.wait(futures, timeout=self._ack_timeout_s)
        for future in late:
            future.cancel()  # gives nats-py's slot for it back
        timed_out = TimeoutError(f"no acknowledgement within {self._ack_timeout_s:g} s")
        return [timed_out if future.cancelled() else future.exception() or future.result()
                for future in futures]

    def _unpublishable(self, lane: Lane, row: OutboxRow, size: int, max_payload: int) -> Refused | None:
        """A row the server can never take as it is. Reported (once) with its ids and never
        its contents, and left pending, never lost.

        A dead letter is skipped: the dead letters behind it go on, and it is tried again at
        the next start (after max_payload was raised, or the row repaired). An event stops
        its lane instead: skipping it would let the company's later events overtake it, and
        a service's events are small, so one this large is a bug to fix, which the readiness
        answer shows; the lane resumes once max_payload allows it (the client learns the new
        value when it reconnects)."""
        if row.id not in lane.unpublishable:
            lane.unpublishable.add(row.id)
            self.log.error("outbox.row_unpublishable", lane=lane.name, outbox_id=row.id,
                           message_id=row.message_id, nats_subject=row.subject, size=size,
                           max_payload=max_payload, skipped=lane.dead_letters)
        if lane.dead_letters:
            return None
        return Refused(f"outbox row {row.id} (message {row.message_id}) is {size} bytes with its "
                       f"headers, over the server's max_payload of {max_payload}")

    def _refused(self, lane: Lane, exc: BaseException) -> None:
        lane.failures += 1
        lane.reason = _describe(exc)
        if lane.failing_since is None:
            lane.failing_since = time.monotonic()
            self.log.warning("outbox.lane_refused", lane=lane.name, reason=lane.reason)

    def _recovered(self, lane: Lane) -> None:
        if lane.failing_since is not None:
            self.log.warning("outbox.lane_recovered", lane=lane.name, attempts=lane.failures,
                             refused_for_s=round(time.monotonic() - lane.failing_since, 1))
        lane.failing_since, lane.reason, lane.failures = None, None, 0

    async def _mark(self, connection: AsyncConnection, rows: list[OutboxRow]) -> None:
        await connection.execute(
            sa.update(outbox).where(outbox.c.id.in_([row.id for row in rows])).values(published_at=now())
        )

    async def _prune_hourly(self, stopping: asyncio.Event) -> None:
        while not await _set_within(stopping, PRUNE_EVERY_S):
            try:
                await self.prune()
            except Exception as exc:  # a database blip: next hour
                self.log.warning("outbox.prune_failed", error=repr(exc))

    async def prune(self) -> None:
        """Forget rows published long ago (the events themselves live on in the stream)."""
        async with self._engine.begin() as connection:
            await connection.execute(
                sa.delete(outbox).where(outbox.c.published_at < now() - self._keep_published_for)
            )


def _wire_size(payload: bytes, headers: Mapping[str, str]) -> int:
    """What the server weighs against max_payload: the headers as nats-py writes them
    (`NATS/1.0`, one `key: value` line each, a blank line) plus the payload. nats-py checks
    the payload alone, and the server closes the connection of a client that sends more."""
    lines = sum(len(key.encode()) + len(str(value).encode()) + 4 for key, value in headers.items())
    return len(b"NATS/1.0\r\n") + lines + 2 + len(payload)


def _describe(exc: BaseException) -> str:
    """Why rows were not published, for the log and the readiness answer (never contents)."""
    if isinstance(exc, Refused):
        return str(exc)
    if isinstance(exc, NoStreamResponseError):
        return "no stream takes this subject"
    if isinstance(exc, APIError):
        return f"{exc.description} (JetStream error {exc.err_code})"
    if isinstance(exc, TimeoutError) and str(exc):
        return str(exc)
    return repr(exc)[:300]


def _fail_refused_publishes(js: JetStreamContext) -> None:
    """Make JetStream's refusal of a `publish_async` (stream full...) fail its future.

    nats-py 2.16 raises the refusal inside its reply handler instead of setting it on the
    future (nats-io/nats.py#985), so the future never resolves: this is why a full
    dead-letter stream used to hold every relay cycle for its whole 30 s wait. The handler
    is bound when the first `publish_async` subscribes to the replies, so it is wrapped
    before (a context that already published asynchronously keeps its handler: only the
    bounded wait then applies); once nats-py sets the refusal itself, this has nothing to do.
    """
    handle = js._handle_async_reply

    async def handle_reply(msg):  # type: ignore[no-untyped-def]
        try:
            await handle(msg)
        except APIError as refusal:
            prefix = js._async_reply_prefix
            future = js._publish_async_futures.get(msg.subject[len(prefix):]) if prefix else None
            if future is not None and not future.done():
                future.set_exception(refusal)

    js._handle_async_reply = handle_reply  # type: ignore[method-assign]


async def _set_within(event: asyncio.Event, timeout_s: float) -> bool:
    """Wait until `event` is set or `timeout_s` has passed; return whether it is set."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), timeout_s)
    return event.is_set()


async def _first_set(*events: asyncio.Event, timeout_s: float) -> None:
    """Wait until one of `events` is set, or `timeout_s` has passed."""
    waiters = {asyncio.ensure_future(event.wait()) for event in events}
    _, pending = await asyncio.wait(waiters, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
    for waiter in pending:
        waiter.cancel()
