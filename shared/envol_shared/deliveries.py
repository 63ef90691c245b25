"""One fetched message as the consumer sees it, and the answers a refused message gets.

Building a `Delivery` never fails, whatever the message holds: what cannot be read becomes
the delivery's `invalid_reason`. The rejection and the dead letter built for a refused message
always fit the server's limits, however large or strange the original was.
"""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass, field
from typing import Any

from nats.aio.msg import Msg
from pydantic import TypeAdapter, ValidationError

from envol_shared.event_log import OutgoingMessage, Received
from envol_shared.events import (
    CloudEvent,
    EventRejected,
    Identifier,
    Incoming,
    InvalidEvent,
    is_token,
    load_json,
    make_event,
    message_key,
    namespace_of,
    parse_event,
    subject_for,
)
from envol_shared.topology import EVENTS_STREAM, dead_letter_subject

_IDENTIFIER: TypeAdapter[str] = TypeAdapter(Identifier)
# Room kept in a dead letter for NATS's own headers (Nats-Msg-Id...) and the protocol line.
_HEADROOM = 1024
MAX_REASON = 1000
_ACKNOWLEDGEMENT_FIELDS = {"stream", "seq", "duplicate", "domain"}
MAX_SUBJECT_SHOWN = 256


class Outcome(enum.Enum):
    APPLIED = "applied"
    REJECTED = "rejected"
    DEAD_LETTERED = "dead_lettered"
    DUPLICATE = "duplicate"
    RETRY = "retry"          # failed this time, redelivered later
    WAITING = "waiting"      # an earlier event about the same company must go first


@dataclass
class Delivery:
    msg: Msg
    subject: str
    stream_sequence: int
    attempt: int
    incoming: Incoming | None = None
    envelope: CloudEvent | None = None  # read even when the data was unreadable
    invalid_reason: str | None = None
    failure: str | None = None  # the handler failed for the last time allowed
    outcome: Outcome | None = None
    reason: str | None = None  # why it was refused, when it was
    key: str = ""
    company: str = ""
    readable_id: str | None = None  # the id of an unreadable message, when it has a valid one
    # JetStream's acknowledgement of someone else's publish, stored here because that
    # publisher chose this subject as its reply subject: nobody here sent it, nobody is told.
    stray_acknowledgement: bool = False
    extra_log: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, msg: Msg, accepted: frozenset[str]) -> Delivery:
        meta = msg.metadata
        delivery = cls(msg=msg, subject=msg.subject, stream_sequence=meta.sequence.stream,
                       attempt=meta.num_delivered or 1)
        try:
            delivery.incoming = parse_event(msg.data, msg.subject, accepted)
            delivery.envelope = delivery.incoming.envelope
        except InvalidEvent as exc:
            delivery.invalid_reason, delivery.envelope = exc.reason, exc.envelope
        except Exception as exc:  # a message can only fail itself, never the consumer
            delivery.invalid_reason = f"unreadable: {type(exc).__name__}"
        delivery.key, delivery.company = delivery._identity()
        return delivery

    @property
    def namespace(self) -> tuple[str, str]:
        """(cluster, producer) to answer to: the subject's, when they are real tokens."""
        namespace = namespace_of(self.subject)
        if namespace is None or not (is_token(namespace[0]) and is_token(namespace[1])):
            return "unknown", "unknown"
        return namespace

    @property
    def received(self) -> Received:
        assert self.outcome is not None
        return Received(self.outcome.value, self.reason, self.stream_sequence)

    def _identity(self) -> tuple[str, str]:
        """(inbox key, company). The key is a digest of who sent it and its CloudEvents
        identity; an unreadable message without one is known by its stream position."""
        cluster, producer = self.namespace
        if self.envelope is not None:
            envelope = self.envelope
            return message_key(cluster, producer, envelope.source, envelope.id), envelope.subject
        try:
            document = load_json(self.msg.data)
        except InvalidEvent:
            document = None
        by_position = f"{EVENTS_STREAM}#{self.stream_sequence}"
        if not isinstance(document, dict):
            return by_position, ""
        self.stray_acknowledgement = {"stream", "seq"} <= document.keys() <= _ACKNOWLEDGEMENT_FIELDS
        company = document.get("subject")
        company = company if isinstance(company, str) and _is_identifier(company, 64) else ""
        event_id, source = document.get("id"), document.get("source")
        if not (isinstance(event_id, str) and _is_identifier(event_id)):
            return by_position, company
        self.readable_id = event_id
        if isinstance(source, str) and source:
            return message_key(cluster, producer, source, event_id), company
        return by_position, company

    def log_fields(self) -> dict[str, Any]:
        fields: dict[str, Any] = {"stream_seq": self.stream_sequence, "attempt": self.attempt,
                                  "nats_subject": _short(self.subject, MAX_SUBJECT_SHOWN)}
        if self.envelope is not None:
            envelope = self.envelope
            fields.update(event_id=envelope.id, event_type=envelope.type, cluster=envelope.cluster,
                          correlation_id=envelope.correlationid, company=envelope.subject,
                          producer=self.namespace[1])
        else:
            cluster, producer = self.namespace
            fields.update(cluster=cluster, producer=producer)
            if self.readable_id:
                fields["event_id"] = self.readable_id
            if self.company:
                fields["company"] = self.company
        return fields


def rejection(service: str, delivery: Delivery, reason: str, *, dead_lettered: bool) -> OutgoingMessage:
    """The `event.rejected` sent back into the namespace of whoever sent the message."""
    cluster, producer = delivery.namespace
    envelope = delivery.envelope
    refused = EventRejected(
        rejected_event_id=envelope.id if envelope else delivery.readable_id,
        rejected_type=envelope.type if envelope else None,
        rejected_subject=_short(delivery.subject, MAX_SUBJECT_SHOWN),
        service=service,
        reason=_short(reason, MAX_REASON),
        dead_lettered=dead_lettered,
    )
    _, event = make_event(
        refused,
        cluster=cluster,
        producer=service,
        company=delivery.company or "unknown",
        correlation_id=envelope.correlationid if envelope else None,
        causation_id=envelope.id if envelope else None,
        traceparent=envelope.traceparent if envelope else None,  # the refusal is in the sender's trace
    )
    return OutgoingMessage.of_event(subject_for(cluster, producer, EventRejected.type), event)


def dead_letter(service: str, delivery: Delivery, reason: str, *, max_payload: int) -> OutgoingMessage:
    """The original bytes kept with the reason, cut to what the server accepts if need be
    (the digest and size of the whole original say what was cut)."""
    original = delivery.msg.data
    headers = {
        "Envol-Reason": _header_value(reason, MAX_REASON),
        "Envol-Service": service,
        "Envol-Original-Subject": _header_value(delivery.subject, MAX_SUBJECT_SHOWN),
        "Envol-Original-Stream-Sequence": str(delivery.stream_sequence),
        "Envol-Delivery-Attempts": str(delivery.attempt),
        "Envol-Original-Size": str(len(original)),
        "Envol-Original-Sha256": hashlib.sha256(original).hexdigest(),
    }
    room = max_payload - _HEADROOM - sum(len(k) + len(v.encode()) + 4 for k, v in headers.items())
    if len(original) > room:
        kept = max(room - 128, 0)  # the header added here takes room too
        headers["Envol-Original-Truncated"] = f"first {kept} of {len(original)} bytes kept"
        original = original[:kept]
    cluster, producer = delivery.namespace
    return OutgoingMessage(
        message_id=f"dead-letter {service} {delivery.key}",
        subject=dead_letter_subject(service, cluster, producer),
        payload=original,
        headers=headers,
    )


def _is_identifier(text: str, max_length: int = 128) -> bool:
    if len(text) > max_length:
        return False
    try:
        _IDENTIFIER.validate_python(text)
    except ValidationError:
        return False
    return True


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _header_value(text: str, limit: int) -> str:
    """One line of plain ASCII: a header is no place for line breaks or odd characters."""
    flat = " ".join(text.split()).encode("ascii", "backslashreplace").decode("ascii")
    return flat[:limit]
