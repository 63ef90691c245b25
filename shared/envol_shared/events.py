"""The event contract: CloudEvents 1.0 envelopes, typed payloads and NATS subjects.

Every message on the wire is a CloudEvents 1.0 JSON envelope in structured mode. Its `type`
names the event and its major version (``envol.application.submitted.v1``); its `data` is
validated by the pydantic model registered for that type. Envol adds three extension
attributes: `cluster` (which cluster's programme it is about), `correlationid` (one journey
of one company) and `causationid` (the event that caused this one), and carries the optional
`traceparent` of CloudEvents' distributed-tracing extension (W3C trace context).

Subjects carry the cluster and the producer, so NATS permissions can confine a partner to
its own subjects::

    envol.<cluster>.<producer>.<event name>      e.g. envol.pegase.staff.application.submitted

A rejection goes back into the namespace of the producer that sent the rejected event::

    envol.<cluster>.<producer>.event.rejected
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import uuid
from collections.abc import Iterable
from datetime import UTC, date, datetime
from typing import Annotated, Any, ClassVar, Literal, TypeVar

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from envol_shared.identifiers import siren_of

SPEC_VERSION = "1.0"
TYPE_PREFIX = "envol."
SUBJECT_ROOT = "envol"

_TOKEN = re.compile(r"^[a-z0-9][a-z0-9-]*$")
_TYPE = re.compile(r"^envol\.(?P<name>[a-z0-9-]+(?:\.[a-z0-9-]+)+)\.v(?P<major>[1-9][0-9]*)$")


# What the contract accepts, whatever the field: the limits are published in the README and
# in the schemas. They keep out what the databases cannot store (64-bit integers, no NUL) and
# what the domain cannot compute with (dates it cannot add a month to, infinite numbers).
FIRST_YEAR, LAST_YEAR = 1900, 2199
MAX_CENTS = 10**15  # ten thousand billion euros: sums of many still fit in 64 bits
MAX_DEPTH = 32  # objects and arrays nested in an envelope, the envelope itself included
MAX_STRING = 10_000  # characters of any string; most fields allow far fewer
MIN_INT, MAX_INT = -(2**63), 2**63 - 1
# Ids are printable ASCII without spaces: they end up in keys, headers and log lines.
_PRINTABLE = r"^[!-~]+$"
# Characters no text may hold: C0 controls but tab, line feed and carriage return, and DEL.
_FORBIDDEN = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
# W3C trace context (version 00), as the CloudEvents distributed-tracing extension carries it.
TRACEPARENT = r"^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$"


def _within_years(value: date) -> None:
    if not FIRST_YEAR <= value.year <= LAST_YEAR:
        raise ValueError(f"must be between the years {FIRST_YEAR} and {LAST_YEAR}")


def utc(value: datetime) -> datetime:
    """Normalise an aware datetime to UTC (naive datetimes never reach here: AwareDatetime)."""
    _within_years(value)  # before converting: year 9999 at UTC-12 overflows
    return value.astimezone(UTC)


def sane_day(value: date) -> date:
    _within_years(value)
    return value


UtcDatetime = Annotated[AwareDatetime, AfterValidator(utc),
                        Field(description=f"with a time zone; years {FIRST_YEAR} to {LAST_YEAR}")]
Day = Annotated[date, AfterValidator(sane_day),
                Field(description=f"a calendar day, years {FIRST_YEAR} to {LAST_YEAR}")]
# Money is always an integer number of euro cents, never a float.
EuroCents = Annotated[int, Field(ge=0, le=MAX_CENTS, description="amount in euro cents")]
# A subject token: a cluster id (aerospace-valley, pegase, astech) or a producer id.
Token = Annotated[str, Field(pattern=_TOKEN.pattern, max_length=64)]
Identifier = Annotated[str, Field(min_length=1, max_length=128, pattern=_PRINTABLE)]
Traceparent = Annotated[str, Field(min_length=55, max_length=55, pattern=TRACEPARENT,
                                   description="W3C trace context: 00-<32 hex>-<16 hex>-<2 hex>")]


def is_token(text: str) -> bool:
    """Whether `text` can be a cluster or producer id (one lower-case subject token)."""
    return len(text) <= 64 and bool(_TOKEN.match(text))


def now() -> datetime:
    return datetime.now(UTC)


class Payload(BaseModel):
    """Base of every model carried in event data: unknown fields are an error, not ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


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

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    specversion: Literal["1.0"]
    id: Identifier
    source: Annotated[str, Field(min_length=1, max_length=256, pattern=_PRINTABLE)]
    type: Annotated[str, Field(min_length=1, max_length=128)]
    time: UtcDatetime
    # The company the event is about (its SIREN); events about one company stay in order.
    subject: Annotated[str, Field(min_length=1, max_length=64, pattern=_PRINTABLE)]
    datacontenttype: Literal["application/json"]
    data: dict[str, Any]
    cluster: Token
    correlationid: Identifier
    causationid: Identifier | None = None
    # CloudEvents' distributed-tracing extension: optional, never required from partners; the
    # events a service emits carry the trace of the message that caused them.
    traceparent: Traceparent | None = None

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
    """A message that can never be processed; `reason` says why, for the producer.

    `envelope` is the envelope when it could be read (the data was what failed): the
    rejection and the log line then name the event's id, type and journey."""

    def __init__(self, reason: str, envelope: CloudEvent | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.envelope = envelope


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
    traceparent: str | None = None,
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
        traceparent=traceparent,
    )
    return subject_for(cluster, producer, data.type), envelope


def _first_errors(exc: ValidationError, limit: int = 5) -> str:
    parts = []
    for error in exc.errors()[:limit]:
        where = _short(".".join(str(p) for p in error["loc"]), 100) or "(root)"
        parts.append(f"{where}: {error['msg']}")
    more = len(exc.errors()) - limit
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")


def message_key(cluster: str, producer: str, source: str, event_id: str) -> str:
    """The inbox key of an event: who sent it (the subject's namespace) and its CloudEvents
    identity (source, id), as a digest of fixed length whatever they hold."""
    identity = json.dumps([cluster, producer, source, event_id], ensure_ascii=True)
    return hashlib.sha256(identity.encode()).hexdigest()


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def load_json(raw: bytes) -> Any:
    """Parse a message as strict JSON (no NaN, no Infinity), or raise InvalidEvent."""
    try:
        return json.loads(raw, parse_constant=_refuse_constant)
    except RecursionError:
        raise InvalidEvent(f"not JSON Envol accepts: nested more than {MAX_DEPTH} levels deep") from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidEvent(f"not JSON: {_short(str(exc))}") from None


def check_document(document: Any) -> None:
    """Refuse, naming the field, what no field of any event may hold (see the limits above).

    Iterative, so that no nesting can exhaust the stack."""
    stack: list[tuple[Any, str, int]] = [(document, "", 1)]
    while stack:
        value, path, depth = stack.pop()
        where = path or "(root)"
        if isinstance(value, dict | list):
            if depth > MAX_DEPTH:
                raise InvalidEvent(f"{where}: nested more than {MAX_DEPTH} levels deep")
            items = value.items() if isinstance(value, dict) else enumerate(value)
            for key, item in items:
                if isinstance(key, str):
                    _check_text(key, f"{where}: a field name")
                stack.append((item, f"{path}.{key}" if path else str(key), depth + 1))
        elif isinstance(value, str):
            _check_text(value, where)
        elif isinstance(value, bool) or value is None:
            continue
        elif isinstance(value, int):
            if not MIN_INT <= value <= MAX_INT:
                raise InvalidEvent(f"{where}: integer outside the 64-bit range")
        elif isinstance(value, float) and not math.isfinite(value):
            raise InvalidEvent(f"{where}: number too large")


def _check_text(text: str, where: str) -> None:
    if len(text) > MAX_STRING:
        raise InvalidEvent(f"{where}: text longer than {MAX_STRING} characters")
    if _FORBIDDEN.search(text):
        raise InvalidEvent(f"{where}: text holds a control character (NUL or the like)")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidEvent(f"{where}: text holds an unpaired surrogate (not Unicode text)") from None


def _short(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


def parse_event(raw: bytes, subject: str, accepted: Iterable[str] | None = None) -> Incoming:
    """Validate raw bytes received on `subject` into an Incoming event, or raise InvalidEvent.

    `accepted` limits the types this consumer handles; the reason for an unknown type or
    version names the types that would have been accepted.
    """
    namespace = namespace_of(subject)
    if namespace is None:
        raise InvalidEvent(f"subject {subject!r} is not envol.<cluster>.<producer>.<event>")
    cluster, producer = namespace
    document = load_json(raw)
    if not isinstance(document, dict):
        raise InvalidEvent("not a CloudEvent: the JSON document is not an object")
    check_document(document)
    # Strict JSON validation: no true for 1 cent, no "1250" for 1250, no number for a time.
    try:
        envelope = CloudEvent.model_validate_json(raw, strict=True)
    except ValidationError as exc:
        raise InvalidEvent(f"not a CloudEvents 1.0 envelope: {_first_errors(exc)}") from None

    try:
        data = _typed_data(envelope, subject, cluster, producer, accepted)
    except InvalidEvent as exc:
        raise InvalidEvent(exc.reason, envelope) from None
    return Incoming(envelope=envelope, data=data, producer=producer)


def _typed_data(envelope: CloudEvent, subject: str, cluster: str, producer: str,
                accepted: Iterable[str] | None) -> EventData:
    """The envelope's data as its type's model, once type, subject and cluster agree."""
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
    try:
        siren = siren_of(company) if company is not None else None
    except ValueError:  # a field typed as plain text (an event Envol itself publishes)
        raise InvalidEvent(f"{company!r} is not a valid SIREN or SIRET") from None
    if siren is not None and siren != envelope.subject:
        raise InvalidEvent(
            f"envelope subject {envelope.subject!r} must be the SIREN of the company, {company!r}"
        )
    return data


@event_type
class EventRejected(EventData):
    """Sent back to a producer whose event was refused; nothing changed because of it."""

    type: ClassVar[str] = "envol.event.rejected.v1"

    rejected_event_id: Identifier | None = Field(description="id of the refused event, if it had one")
    rejected_type: Annotated[str, Field(max_length=128)] | None = None
    rejected_subject: Annotated[str, Field(max_length=256)]
    service: str = Field(description="the Envol service that refused it")
    reason: Annotated[str, Field(max_length=2000)]
    dead_lettered: bool = Field(
        description="true when the message could never be processed and is kept in the dead-letter stream"
    )
