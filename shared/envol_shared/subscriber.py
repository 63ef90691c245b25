"""The one place where Envol changes FastStream: its batch pull subscriber (FastStream 0.7.8,
pinned in requirements.txt; look again at this module before moving to another version).

Each service receives its events through a FastStream subscriber on its durable pull consumer
(`topology.CONSUMERS`), which hands every fetched batch of raw nats-py messages to the
service's pipeline (`EventConsumer.handle_batch`). FastStream's own `BatchPullStreamSubscriber`
(`faststream/nats/subscriber/usecases/stream_pull_subscriber.py`) does three things Envol
cannot have, measured against a real nats-server:

* Its loop keeps fetching until the batch is full or its timeout expires, so at low load
  every event waits for the rest of that timeout before it is applied.
* It catches `nats.errors.TimeoutError` only, while nats-py 2.16 raises the builtin
  `TimeoutError` when a fetch deadline passes after an empty probe: the loop then dies with
  the messages it had collected, neither acknowledged nor refused, and FastStream restarts
  it. Those messages come back only after `ack_wait` (30 s), behind newer ones.
* It creates the consumer when it does not find it (`pull_subscribe`). Envol's streams and
  consumers are declared in one place, `topology.provision`; a service only binds to its own.

`BatchFetchSubscriber` changes exactly that: its loop asks `ready_to_fetch` (the service's
consumer lease, a pause after a failed batch...), makes one `fetch(batch_size, timeout)`,
and hands whatever it got straight to FastStream's `consume`, which calls the handler. The
rest is FastStream's: the handler call and its middlewares, start, stop, registration with
the broker. `tests/integration/test_subscriber.py` shows the difference on a real server.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import nats.errors
import structlog
from faststream.message import StreamMessage
from faststream.middlewares import AckPolicy
from faststream.nats import ConsumerConfig, JStream, NatsBroker, PullSub
from faststream.nats.subscriber.usecases import BatchPullStreamSubscriber
from nats.aio.msg import Msg

from envol_shared.topology import EVENTS_STREAM, ServiceConsumer

FETCH_TIMEOUT_S = 1.0  # how long one fetch waits for the first message when there is none
RETRY_FETCH_AFTER_S = 1.0  # JetStream or the connection unavailable: try again after this

log = structlog.get_logger("envol.subscriber")


class BatchFetchSubscriber(BatchPullStreamSubscriber):
    """FastStream's batch pull subscriber with Envol's fetch loop (see the module's doc)."""

    __slots__ = ()  # no state of its own: see `subscribe_batches`, which swaps the class in

    # Awaited before every fetch: True to fetch, False to end the loop (the service stops).
    # Set by `subscribe_batches`; a FastStream subscriber is built by FastStream's factory,
    # not by us, so this cannot be a constructor argument.
    ready_to_fetch: Callable[[], Awaitable[bool]]

    async def _create_subscription(self) -> None:
        """Bind to the provisioned durable consumer, never create nor update it; start the loop."""
        if self.subscription:
            return
        # The inbox of the fetches is the connection's own prefix (`_INBOX_<user>` under NATS
        # permissions), not FastStream's default `_INBOX.`, which the service may not read.
        self.subscription = await self.jetstream.pull_subscribe_bind(
            durable=self.config.durable_name, stream=self.stream.name,
            pending_msgs_limit=self.extra_options["pending_msgs_limit"],
            pending_bytes_limit=self.extra_options["pending_bytes_limit"],
        )
        # Not restarted on failure (FastStream would restart it at once, in a tight loop): a
        # loop that fails is a service that fails, and stops (see RunningService.crashed).
        self.add_task(self._consume_pull, restart_on_failure=False)
        self.fetch_loop.set_name("consumer")

    async def _consume_pull(self) -> None:
        """One fetch per turn, handed on at once, whatever it got (FastStream's own would go
        on fetching until the batch is full or the timeout expires); a fetch that finds
        nothing within the timeout is no error, whichever TimeoutError nats-py raises."""
        assert self.subscription is not None
        while self.running and await self.ready_to_fetch():
            try:
                messages = await self.subscription.fetch(self.pull_sub.batch_size,
                                                         timeout=self.pull_sub.timeout)
            except TimeoutError:  # the builtin one, which nats.errors.TimeoutError extends
                continue  # nothing to fetch within the timeout
            except (nats.errors.Error, OSError) as exc:
                # JetStream or the connection unavailable for a while (a node lost, a leader
                # being elected, a reconnection): the messages wait on the server.
                log.warning("consumer.fetch_failed", consumer=self.config.durable_name, error=repr(exc))
                await asyncio.sleep(RETRY_FETCH_AFTER_S)
                continue
            await self.consume(messages)

    @property
    def fetch_loop(self) -> asyncio.Task[None]:
        """The task of the fetch loop, once the broker started the subscriber."""
        return self.tasks[0]


async def raw_messages(message: StreamMessage[Any]) -> Any:
    """FastStream's decoder for Envol's handlers: the nats-py message(s) as received (a list
    for a batch). Envol reads them itself: strict JSON, its own limits, its own errors."""
    return message.raw_message


def require_raw_handlers(broker: NatsBroker) -> None:
    """Envol's handlers take raw nats-py messages, which FastDepends cannot validate: refuse a
    broker that would try (at the first message, and then only in FastStream's log)."""
    if broker.config.fd_config.use_fastdepends:
        raise ValueError("Envol's handlers take raw nats-py messages: build the broker with "
                         "apply_types=False (see envol_shared.service.nats_broker)")


def subscribe_batches(
    broker: NatsBroker,
    consumer: ServiceConsumer,
    *,
    batch_size: int,
    handle: Callable[[list[Msg]], Awaitable[None]],
    ready_to_fetch: Callable[[], Awaitable[bool]],
    fetch_timeout_s: float = FETCH_TIMEOUT_S,
) -> BatchFetchSubscriber:
    """Register `consumer`'s durable on `broker`: each fetched batch goes to `handle`.

    Acknowledgements are the handler's (manual: each message once its batch committed), and
    FastStream never replies to anything (a `reply_to` header of a partner's event is ignored).
    """
    require_raw_handlers(broker)
    subscriber = broker.subscriber(
        config=ConsumerConfig(filter_subjects=consumer.filter_subjects),
        stream=JStream(EVENTS_STREAM, declare=False),  # provisioned by topology.provision
        durable=consumer.durable,
        pull_sub=PullSub(batch_size, timeout=fetch_timeout_s, batch=True),
        ack_policy=AckPolicy.MANUAL,
        no_reply=True,
        title=f"{consumer.service} events",
    )
    # `broker.subscriber()` has no parameter for the subscriber's class: FastStream's factory
    # built a `BatchPullStreamSubscriber` and the broker registered it. That very object takes
    # on the subclass, which only overrides methods (no slots, no state of its own), so the
    # broker keeps the subscriber it registered, with its configuration, and runs our loop.
    if type(subscriber) is not BatchPullStreamSubscriber:
        raise TypeError(f"FastStream built a {type(subscriber).__name__}, not a BatchPullStreamSubscriber: "
                        "check envol_shared.subscriber against this FastStream version")
    subscriber.__class__ = BatchFetchSubscriber
    assert isinstance(subscriber, BatchFetchSubscriber)
    subscriber.ready_to_fetch = ready_to_fetch
    subscriber(handle, decoder=raw_messages)
    return subscriber
