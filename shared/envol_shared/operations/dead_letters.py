"""Reading the dead-letter stream, and replaying what can now be processed.

A dead letter (see envol_shared/deliveries.py) holds the original bytes and, in headers, the
reason (`Envol-Reason`), where it came from (`Envol-Original-Subject`,
`Envol-Original-Stream-Sequence`), which service gave up (`Envol-Service`), after how many
deliveries, and whether the original was cut (`Envol-Original-Truncated`).

A replay publishes the original event again on its original subject under a NEW CloudEvents
id: the service recorded the old id as dead-lettered in its inbox and would refuse it again.
The envelope model forbids unknown attributes, so the old id travels in a NATS header,
`Envol-Replay-Of` (with `Envol-Replay-Of-Dead-Letter`, the dead letter's sequence). The new id
is derived from the dead letter's stream sequence and `Nats-Msg-Id`, and is the replay's
`Nats-Msg-Id`: replaying the same dead letter again is dropped by JetStream within its
duplicate window, and by the service's inbox after it.

A replay is refused when it would fail again: the original bytes are parsed again with the
current contract (an unreadable message stays unreadable), a cut original is not the event,
and an event also consumed by other services would be applied by them a second time.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from nats.aio.client import Client
from nats.js.api import RawStreamMsg
from nats.js.errors import NotFoundError

from envol_shared.events import InvalidEvent, parse_event
from envol_shared.topology import CONSUMERS, DEAD_LETTER_ROOT, DEAD_LETTER_STREAM

REPLAY_OF = "Envol-Replay-Of"
REPLAY_OF_DEAD_LETTER = "Envol-Replay-Of-Dead-Letter"
_CUT_MARK = "…"  # what deliveries._short appends to a subject cut to fit a header


@dataclass(frozen=True)
class DeadLetter:
    seq: int
    subject: str
    headers: dict[str, str]
    data: bytes
    time: str = ""  # when it was dead-lettered (the stream's timestamp)

    @property
    def service(self) -> str:
        return self.headers.get("Envol-Service", "")

    @property
    def reason(self) -> str:
        return self.headers.get("Envol-Reason", "")

    @property
    def original_subject(self) -> str:
        return self.headers.get("Envol-Original-Subject", "")

    @property
    def original_id(self) -> str | None:
        try:
            document = json.loads(self.data)
        except ValueError:
            return None
        value = document.get("id") if isinstance(document, dict) else None
        return value if isinstance(value, str) else None

    def pretty(self) -> str | Any:
        """The original as JSON when it is JSON (for rich to print), else its text."""
        try:
            return json.loads(self.data)
        except ValueError:
            return self.data.decode("utf-8", "backslashreplace")

    def replay_id(self) -> str:
        """Deterministic: the same dead letter always replays under the same id."""
        identity = f"{DEAD_LETTER_STREAM}#{self.seq}#{self.headers.get('Nats-Msg-Id', '')}"
        return "replay-" + hashlib.sha256(identity.encode()).hexdigest()[:40]


def _filter(service: str | None) -> str:
    return f"{DEAD_LETTER_ROOT}.{service}.>" if service else f"{DEAD_LETTER_ROOT}.>"


async def count(nc: Client) -> dict[str, int]:
    """Dead letters per service (from the stream's per-subject counts)."""
    info = await nc.jetstream().stream_info(DEAD_LETTER_STREAM, subjects_filter=_filter(None))
    counts: dict[str, int] = {}
    for subject, number in (info.state.subjects or {}).items():
        service = subject.split(".")[1]
        counts[service] = counts.get(service, 0) + number
    return counts


async def get(nc: Client, seq: int) -> DeadLetter:
    """One dead letter by its sequence; LookupError when there is none."""
    try:
        msg = await nc.jetstream().get_msg(DEAD_LETTER_STREAM, seq)
    except NotFoundError:
        raise LookupError(f"no dead letter {seq} in {DEAD_LETTER_STREAM}") from None
    return _letter(msg)


def _letter(msg: RawStreamMsg) -> DeadLetter:
    assert msg.seq is not None
    return DeadLetter(msg.seq, msg.subject or "", dict(msg.headers or {}), msg.data or b"",
                      str(msg.time or "")[:19].replace("T", " "))


async def scan(nc: Client, service: str | None = None) -> list[DeadLetter]:
    """Every dead letter (of `service`), oldest first."""
    js, found, seq = nc.jetstream(), [], 1
    while True:
        try:
            msg = await js.get_msg(DEAD_LETTER_STREAM, seq, subject=_filter(service), next=True)
        except NotFoundError:
            return found
        found.append(_letter(msg))
        seq = found[-1].seq + 1


@dataclass(frozen=True)
class Verdict:
    """Whether a dead letter may be replayed; if so, what to publish."""

    letter: DeadLetter
    refusal: str | None
    subject: str = ""
    payload: bytes = b""
    headers: dict[str, str] | None = None
    producer: str = ""  # the NATS user that publishes on that subject (on the local stack)


def judge(letter: DeadLetter, *, shared_ok: bool = False) -> Verdict:
    """Replay only what would not fail again for the same reason."""
    subject, service = letter.original_subject, letter.service
    if "Envol-Original-Truncated" in letter.headers:
        return Verdict(letter, f"the original was cut to fit the dead letter "
                               f"({letter.headers['Envol-Original-Truncated']}): it is not the event")
    if not subject or subject.endswith(_CUT_MARK):
        return Verdict(letter, "the original subject is not known in full")
    consumer = CONSUMERS.get(service)
    if consumer is None:
        return Verdict(letter, f"unknown service {service!r}")
    try:
        incoming = parse_event(letter.data, subject, consumer.event_types)
    except InvalidEvent as exc:
        was = "" if exc.reason in letter.reason else f" (dead-lettered for: {letter.reason})"
        return Verdict(letter, f"still unreadable with the current contract: {exc.reason}{was}")
    others = sorted(name for name, other in CONSUMERS.items()
                    if name != service and incoming.envelope.type in other.event_types)
    if others and not shared_ok:
        return Verdict(letter, f"{', '.join(others)} also consume {incoming.envelope.type} and would "
                               "apply it a second time (--shared-ok to replay anyway)")
    new_id = letter.replay_id()
    envelope = incoming.envelope.model_copy(update={"id": new_id})
    headers = {"Nats-Msg-Id": new_id, REPLAY_OF: incoming.envelope.id, REPLAY_OF_DEAD_LETTER: str(letter.seq)}
    _, cluster, producer = subject.split(".")[:3]
    # A service's own events are published by its user (`enrolment`), a partner's by its own.
    user = producer if producer in CONSUMERS else f"{cluster}-{producer}"
    return Verdict(letter, None, subject, envelope.to_bytes(), headers, user)


@dataclass(frozen=True)
class Replayed:
    seq: int
    outcome: str  # published, already replayed, refused, failed, would publish
    detail: str


async def replay(verdict: Verdict, nc: Client | None, *, dry_run: bool) -> Replayed:
    letter = verdict.letter
    if verdict.refusal is not None:
        return Replayed(letter.seq, "refused", verdict.refusal)
    assert verdict.headers is not None
    new_id = verdict.headers["Nats-Msg-Id"]
    if dry_run or nc is None:
        return Replayed(letter.seq, "would publish", f"{verdict.subject} as {new_id}")
    try:
        ack = await nc.jetstream().publish(verdict.subject, verdict.payload, timeout=5,
                                           headers=verdict.headers)
    except Exception as exc:
        return Replayed(letter.seq, "failed", f"{verdict.subject}: {exc!r}")
    if ack.duplicate:
        return Replayed(letter.seq, "already replayed", f"{new_id} is in the stream already")
    return Replayed(letter.seq, "published", f"{verdict.subject} as {new_id} (stream seq {ack.seq})")
