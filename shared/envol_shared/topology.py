"""Every JetStream stream and durable consumer of Envol, declared here and nowhere else.

Services never declare streams themselves (they bind to existing consumers), so two services
can never overwrite each other's settings. `provision()` is idempotent: it creates what is
missing and updates what differs, and the local stack, the compose file's one-shot
provisioning container and each service at start-up all call this same function.

Limits are chosen so that nothing disappears silently:
- discard policy NEW: a full stream refuses new publishes (the publisher gets an error and
  the outbox keeps the row) instead of quietly deleting the oldest events;
- no age limit on events: a consumer that was down for a month still finds its backlog;
- consumers redeliver forever (max_deliver=-1); the service itself decides when a message is
  hopeless and moves it to the dead-letter stream with the reason.
"""

from __future__ import annotations

import argparse
import asyncio
import os
from dataclasses import dataclass

import nats
from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    DiscardPolicy,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)
from nats.js.errors import NotFoundError

from envol_shared import contracts
from envol_shared.events import registered_types, subject_for

EVENTS_STREAM = "ENVOL_EVENTS"
DEAD_LETTER_STREAM = "ENVOL_DEAD_LETTERS"
DEAD_LETTER_ROOT = "envol-dead-letter"

# Outbox relays republish after a crash with the same Nats-Msg-Id; within this window NATS
# drops the copy, beyond it the consumers' inboxes do.
DUPLICATE_WINDOW_S = 15 * 60


# Consumers with several filter subjects (`filter_subjects`) came with nats-server 2.10; an
# older server ignores the field, and every service would then receive every event.
MIN_NATS_VERSION = (2, 10)


class NatsServerTooOld(RuntimeError):
    """The NATS server cannot give each service only its own events."""


def require_server_version(version: object, url: str) -> None:
    """Refuse a nats-server older than MIN_NATS_VERSION (`version`: nats-py's
    `connected_server_version`), naming both versions."""
    found = (getattr(version, "major", 0), getattr(version, "minor", 0))
    if found < MIN_NATS_VERSION:
        needed = ".".join(map(str, MIN_NATS_VERSION))
        raise NatsServerTooOld(f"the nats-server at {url} is {version}; Envol needs {needed} or newer "
                               "(consumers with several filter subjects)")


def without_credentials(urls: str) -> str:
    """For the log: the servers, never the passwords."""
    shown = []
    for url in urls.split(","):
        scheme, _, rest = url.partition("://")
        shown.append(f"{scheme}://{rest.rsplit('@', 1)[-1]}")
    return ",".join(shown)


def catalogue_subject(type_: str) -> str:
    """The subjects an event type may be published on: a service's own events only under
    that service, partners' events under any producer (NATS permissions say which)."""
    return subject_for("*", contracts.PUBLISHED_BY.get(type_, "*"), type_)


@dataclass(frozen=True)
class ServiceConsumer:
    """The durable pull consumer through which one service receives its events."""

    service: str
    event_types: tuple[str, ...]

    @property
    def durable(self) -> str:
        return self.service

    @property
    def filter_subjects(self) -> list[str]:
        return sorted({catalogue_subject(t) for t in self.event_types})


CONSUMERS: dict[str, ServiceConsumer] = {
    "enrolment": ServiceConsumer("enrolment", tuple(e.type for e in contracts.enrolment.CONSUMED)),
    "financing": ServiceConsumer("financing", tuple(e.type for e in contracts.financing.CONSUMED)),
    "export": ServiceConsumer("export", tuple(e.type for e in contracts.export.CONSUMED)),
    "outcomes": ServiceConsumer("outcomes", tuple(e.type for e in contracts.outcomes.CONSUMED)),
}


def dead_letter_subject(service: str, cluster: str, producer: str) -> str:
    return f"{DEAD_LETTER_ROOT}.{service}.{cluster}.{producer}"


def events_stream_config(max_bytes: int) -> StreamConfig:
    # Only catalogued events have a stream: a publish on an unknown subject (or a service's
    # event from anyone else) fails at once for the publisher instead of sitting unread.
    subjects = sorted({catalogue_subject(t) for t in registered_types()})
    return StreamConfig(
        name=EVENTS_STREAM,
        description="Every Envol event, from services and partners, in publication order",
        subjects=subjects,
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        discard=DiscardPolicy.NEW,
        max_bytes=max_bytes,
        max_msg_size=1024 * 1024,
        duplicate_window=DUPLICATE_WINDOW_S,
        num_replicas=int(os.environ.get("ENVOL_STREAM_REPLICAS", "1")),
    )


def dead_letter_stream_config(max_bytes: int) -> StreamConfig:
    return StreamConfig(
        name=DEAD_LETTER_STREAM,
        description="Messages no service could ever process, with the reason in headers",
        subjects=[f"{DEAD_LETTER_ROOT}.>"],
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        discard=DiscardPolicy.NEW,
        max_bytes=max_bytes,
        duplicate_window=DUPLICATE_WINDOW_S,
        num_replicas=int(os.environ.get("ENVOL_STREAM_REPLICAS", "1")),
    )


def consumer_config(consumer: ServiceConsumer) -> ConsumerConfig:
    return ConsumerConfig(
        durable_name=consumer.durable,
        name=consumer.durable,
        description=f"{consumer.service} service",
        deliver_policy=DeliverPolicy.ALL,
        ack_policy=AckPolicy.EXPLICIT,
        ack_wait=30,
        max_deliver=-1,
        max_ack_pending=2000,
        filter_subjects=consumer.filter_subjects,
    )


async def _ensure_stream(js: JetStreamContext, config: StreamConfig) -> None:
    try:
        await js.stream_info(config.name)  # type: ignore[arg-type]
    except NotFoundError:
        await js.add_stream(config)
        return
    await js.update_stream(config)


async def _ensure_consumer(js: JetStreamContext, stream: str, config: ConsumerConfig) -> None:
    try:
        await js.consumer_info(stream, config.durable_name)  # type: ignore[arg-type]
    except NotFoundError:
        await js.add_consumer(stream, config)
        return
    # Creating with an identical config is a no-op; a changed one updates the consumer.
    await js.add_consumer(stream, config)


async def provision(
    js: JetStreamContext,
    *,
    events_max_bytes: int | None = None,
    dead_letters_max_bytes: int | None = None,
) -> None:
    """Create or update every stream and consumer; safe to run any number of times."""
    events_max_bytes = events_max_bytes or int(os.environ.get("ENVOL_EVENTS_MAX_BYTES", 8 << 30))
    dead_letters_max_bytes = dead_letters_max_bytes or int(
        os.environ.get("ENVOL_DEAD_LETTERS_MAX_BYTES", 1 << 30)
    )
    await _ensure_stream(js, events_stream_config(events_max_bytes))
    await _ensure_stream(js, dead_letter_stream_config(dead_letters_max_bytes))
    for consumer in CONSUMERS.values():
        await _ensure_consumer(js, EVENTS_STREAM, consumer_config(consumer))


async def _provision_at(url: str) -> None:
    # Under NATS permissions the provisioner reads its replies under its own prefix only.
    nc = await nats.connect(url, connect_timeout=5, max_reconnect_attempts=3,
                            inbox_prefix=os.environ.get("ENVOL_NATS_INBOX_PREFIX", "_INBOX"))
    try:
        require_server_version(nc.connected_server_version, without_credentials(url))
        await provision(nc.jetstream())
    finally:
        await nc.close()


def main() -> None:
    parser = argparse.ArgumentParser(description="Create or update Envol's streams and consumers")
    parser.add_argument("--nats-url", default=os.environ.get("ENVOL_NATS_URL", "nats://127.0.0.1:4222"))
    args = parser.parse_args()
    asyncio.run(_provision_at(args.nats_url))
    print(f"provisioned {EVENTS_STREAM}, {DEAD_LETTER_STREAM} and consumers {', '.join(CONSUMERS)}")
