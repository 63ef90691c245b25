"""The event contract: CloudEvents 1.0 envelopes, typed payloads and NATS subjects.

Every message on the wire is a CloudEvents 1.0 JSON envelope in structured mode. Its `type`
names the event and its major version (``envol.application.submitted.v1``); its `data` is
validated by the pydantic model registered for that type. Envol adds three extension
attributes: `cluster` (which cluster's programme it is about), `correlationid` (one journey
of one company) and `causationid` (the event that caused this one).

Subjects carry the cluster and the producer, so NATS permissions can confine a partner to
its own subjects::

    envol.<cluster>.<producer>.<event name>      e.g. envol.pegase.staff.application.submitted

A rejection goes back into the namespace of the producer that sent the rejected event::

    envol.<cluster>.<producer>.event.rejected
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, Literal, TypeVar

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from envol_shared.identifiers import siren_of

SPEC_VERSION = "1.0"
TYPE_PREFIX = "envol."
SUBJECT_ROOT = "envol"

_TOKEN = re.compile(r"^[a-z0-9][a-z0-9-]*$")
_TYPE = re.compile(r"^envol\.(?P<name>[a-z0-9-]+(?:\.[a-z0-9-]+)+)\.v(?P<major>[1-9][0-9]*)$")


def utc(value: datetime) -> datetime:
    """Normalise an aware datetime to UTC (naive datetimes never reach here: AwareDatetime)."""
    return value.astimezone(UTC)


UtcDatetime = Annotated[AwareDatetime, AfterValidator(utc)]
# Money is always an integer number of euro cents, never a float.
EuroCents = Annotated[int, Field(ge=0, description="amount in euro cents")]
# A subject token: a cluster id (aerospace-valley, pegase, astech) or a producer id.
Token = Annotated[str, Field(pattern=_TOKEN.pattern, max_length=64)]


def is_token(text: str) -> bool:
    """Whether `text` can be a cluster or producer id (one lower-case subject token)."""
    return len(text) <= 64 and bool(_TOKEN.match(text))


def now() -> datetime:
    return datetime.now(UTC)


class Payload(BaseModel):
    """Base of every model carried in event data: unknown fields are an error, not ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class EventData(Payload):
    """Base of every event payload. Subclasses set `type` and register with @event_type."""

    type: ClassVar[str]

    @classmethod
    def name(cls) -> str:
        """The event name used in subjects: the type without prefix and version."""
        return event_name(cls.type)


_REGISTRY: dict[str, type[EventData]] = {}


E = TypeVar("E", bound=type[EventData])


def event_type(cls: E) -> E:
    """Class decorator registering an event payload model under its versioned type."""
    if not _TYPE.match(cls.type):
        raise ValueError(f"{cls.type!r} is not of the form envol.<name>.v<major>")
    if cls.type in _REGISTRY:
        raise ValueError(f"event type {cls.type!r} registered twice")
    _REGISTRY[cls.type] = cls
    return cls


def registered_types() -> dict[str, type[EventData]]:
    return dict(_REGISTRY)


def event_name(type_: str) -> str:
    match = _TYPE.match(type_)
    if not match:
        raise ValueError(f"{type_!r} is not of the form envol.<name>.v<major>")
    return match["name"]


class CloudEvent(BaseModel):
    """A CloudEvents 1.0 envelope in structured JSON mode, with Envol's extensions."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    specversion: Literal["1.0"]
    id: Annotated[str, Field(min_length=1, max_length=128)]
    source: Annotated[str, Field(min_length=1, max_length=256)]
    type: Annotated[str, Field(min_length=1, max_length=128)]
    time: UtcDatetime
    # The company the event is about (its SIREN); events about one company stay in order.
    subject: Annotated[str, Field(min_length=1, max_length=64)]
    datacontenttype: Literal["application/json"]
    data: dict[str, Any]
    cluster: Token
    correlationid: Annotated[str, Field(min_length=1, max_length=128)]
    causationid: Annotated[str | None, Field(max_length=128)] = None

    def to_bytes(self) -> bytes:
        return self.model_dump_json(exclude_none=True).encode()


class Incoming(BaseModel):
    """A validated incoming event: its envelope, its typed payload and where it came from."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    envelope: CloudEvent
    data: EventData
    producer: str

    @property
    def company(self) -> str:
        return self.envelope.subject


class InvalidEvent(Exception):
    """A message that can never be processed; `reason` says why, for the producer."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def subject_for(cluster: str, producer: str, type_: str) -> str:
    return f"{SUBJECT_ROOT}.{cluster}.{producer}.{event_name(type_)}"


def namespace_of(subject: str) -> tuple[str, str] | None:
    """(cluster, producer) of a subject `envol.<cluster>.<producer>.<...>`, if it has them."""
    parts = subject.split(".")
    if len(parts) < 4 or parts[0] != SUBJECT_ROOT:
        return None
    return parts[1], parts[2]


def make_event(
    data: EventData,
    *,
    cluster: str,
    producer: str,
    company: str,
    correlation_id: str | None = None,
    causation_id: str | None = None,
    event_id: str | None = None,
    time: datetime | None = None,
) -> tuple[str, CloudEvent]:
    """Build the envelope for `data` and the subject to publish it on."""
    event_id = event_id or str(uuid.uuid4())
    envelope = CloudEvent(
        specversion=SPEC_VERSION,
        id=event_id,
        source=f"/envol/{cluster}/{producer}",
        type=data.type,
        time=time or now(),
        subject=company,
        datacontenttype="application/json",
        data=data.model_dump(mode="json"),
        cluster=cluster,
        correlationid=correlation_id or event_id,
        causationid=causation_id,
    )
    return subject_for(cluster, producer, data.type), envelope


def _first_errors(exc: ValidationError, limit: int = 5) -> str:
    parts = []
    for error in exc.errors()[:limit]:
        where = ".".join(str(p) for p in error["loc"]) or "(root)"
        parts.append(f"{where}: {error['msg']}")
    more = len(exc.errors()) - limit
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")


def parse_event(raw: bytes, subject: str, accepted: Iterable[str] | None = None) -> Incoming:
    """Validate raw bytes received on `subject` into an Incoming event, or raise InvalidEvent.

    `accepted` limits the types this consumer handles; the reason for an unknown type or
    version names the types that would have been accepted.
    """
    namespace = namespace_of(subject)
    if namespace is None:
        raise InvalidEvent(f"subject {subject!r} is not envol.<cluster>.<producer>.<event>")
    cluster, producer = namespace
    try:
        document = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidEvent(f"not JSON: {exc}") from None
    if not isinstance(document, dict):
        raise InvalidEvent("not a CloudEvent: the JSON document is not an object")
    # Strict JSON validation: no true for 1 cent, no "1250" for 1250, no number for a time.
    try:
        envelope = CloudEvent.model_validate_json(raw, strict=True)
    except ValidationError as exc:
        raise InvalidEvent(f"not a CloudEvents 1.0 envelope: {_first_errors(exc)}") from None

    known = sorted(accepted) if accepted is not None else sorted(_REGISTRY)
    model = _REGISTRY.get(envelope.type)
    if model is None or envelope.type not in known:
        same_name = [t for t in known if _TYPE.match(envelope.type) and
                     event_name(t) == event_name(envelope.type)]
        expected = ", ".join(same_name or known)
        raise InvalidEvent(f"unknown event type {envelope.type!r}; expected one of: {expected}")
    if subject_for(cluster, producer, envelope.type) != subject:
        raise InvalidEvent(
            f"subject {subject!r} does not match the event: a {envelope.type} event of cluster "
            f"{envelope.cluster!r} goes on {subject_for(envelope.cluster, producer, envelope.type)!r}"
        )
    if cluster != envelope.cluster:
        raise InvalidEvent(f"subject cluster {cluster!r} differs from event cluster {envelope.cluster!r}")
    try:
        data = model.model_validate_json(json.dumps(envelope.data), strict=True)
    except ValidationError as exc:
        raise InvalidEvent(f"{envelope.type} data violates its schema: {_first_errors(exc)}") from None
    company = getattr(data, "company_id", None) or getattr(data, "siren", None)
    if company is not None and siren_of(company) != envelope.subject:
        raise InvalidEvent(
            f"envelope subject {envelope.subject!r} must be the SIREN of the company, {company!r}"
        )
    return Incoming(envelope=envelope, data=data, producer=producer)


@event_type
class EventRejected(EventData):
    """Sent back to a producer whose event was refused; nothing changed because of it."""

    type: ClassVar[str] = "envol.event.rejected.v1"

    rejected_event_id: str | None = Field(description="id of the refused event, if it had one")
    rejected_type: str | None = None
    rejected_subject: str
    service: str = Field(description="the Envol service that refused it")
    reason: str
    dead_lettered: bool = Field(
        description="true when the message could never be processed and is kept in the dead-letter stream"
    )
