"""Generated hostile input against each service's real consumer, on a real nats-server and
both databases.

Each example publishes a few generated hostile messages (random bytes, random JSON, valid
events with one field replaced by something nasty, deep nesting), then a valid event about
another company. Whatever was sent, the consumer keeps consuming; every message has exactly
one outcome in the log (applied, rejected, dead-lettered or duplicate), every refusal reaches
its producer, the valid event is applied, and no personal data reaches the log.
"""

from __future__ import annotations

import io
import itertools
import json
import logging
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import structlog
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from stdnum import luhn
from support import enrolment_outcome, events_of, registration, wait_for

from envol_enrolment.bootstrap import bootstrap as enrolment_bootstrap
from envol_export.bootstrap import bootstrap as export_bootstrap
from envol_financing.bootstrap import bootstrap as financing_bootstrap
from envol_outcomes.bootstrap import bootstrap as outcomes_bootstrap
from envol_shared.contracts import enrolment as ev
from envol_shared.contracts import financing as fe
from envol_shared.contracts import outcomes as oe
from envol_shared.events import EventData, make_event
from envol_shared.logging import configure_logging
from envol_shared.queries import query_subject
from envol_shared.service import ServiceDefinition

AV = "aerospace-valley"
# Personal data a careless partner puts in its events: it must never be logged.
PERSON = {"name": "Perso Marqueur-Unique", "email": "perso.marqueur@example.fr", "phone": "+33 6 99 99 99 99"}
FINAL = {"event.applied", "event.rejected", "event.dead_lettered", "event.duplicate"}
_companies = itertools.count(1)


def fresh_siren() -> str:
    body = f"9{next(_companies):07d}"
    return body + luhn.calc_check_digit(body)


@dataclass(frozen=True)
class Target:
    """A service, a partner subject to attack it on, and a valid event whose effect shows."""

    bootstrap: Callable[[], ServiceDefinition]
    producer: str
    hostile: Callable[[str], EventData]  # a valid event of that partner, to be spoiled
    valid: Callable[[str], EventData]  # a valid event about a new company
    shown: Callable[[Any, str], Awaitable[bool]]  # whether its effect shows, for that company


def enrolled(kind: str, programme: str) -> Callable[[str], EventData]:
    return lambda siren: enrolment_outcome("enrolled", f"app-{siren}", siren, programme=programme, kind=kind,
                                           **({"target_country": "CN"} if kind == "export" else {}))


def published(service: str, type_: str) -> Callable[[Any, str], Awaitable[bool]]:
    """The service published an event of `type_` about the company."""
    async def shown(nc: Any, siren: str) -> bool:
        return any(e["type"] == type_ and e["subject"] == siren
                   for e in await events_of(nc, f"envol.*.{service}.>"))
    return shown


async def followed_by_outcomes(nc: Any, siren: str) -> bool:
    """The outcomes service publishes nothing: its company query shows the journey."""
    reply = await nc.request(query_subject(AV, "outcomes", "company"),
                             json.dumps({"company_id": siren}).encode(), timeout=5)
    return bool(json.loads(reply.data).get("journeys"))


TARGETS = {
    "enrolment": Target(
        enrolment_bootstrap, "staff",
        lambda siren: ev.CompanyRegistered(**registration(siren, contact=PERSON)),
        lambda siren: ev.CompanyRegistered(**registration(siren)),
        published("enrolment", "envol.company.assessed.v1")),
    "financing": Target(
        financing_bootstrap, "banque-garonne",
        lambda siren: fe.LoanRequestReceived(case_id=f"c-{siren}", bank_reference="bg-1",
                                             received_on="2026-04-01"),
        enrolled("financing", "AV-RD-LOAN"), published("financing", "envol.case.opened.v1")),
    "export": Target(
        export_bootstrap, "enrolment",
        lambda siren: enrolled("export", "AV-VIE-RELAY")(siren),
        enrolled("export", "AV-VIE-RELAY"), published("export", "envol.support.opened.v1")),
    "outcomes": Target(
        outcomes_bootstrap, "staff",
        lambda siren: oe.ComparisonCheckpointRecorded(application_id=f"app-{siren}", checkpoint="baseline",
                                                      recorded_on="2026-04-01", value_cents=1,
                                                      note=PERSON["email"]),
        enrolled("financing", "AV-RD-LOAN"), followed_by_outcomes),
}

NASTY_TEXT = st.sampled_from(["\x00", "a\x00b", "\ud800", "x\udfff", "\u202e", "\x1b[31m", "é" * 600,
                              "s" * 70_000, "", " ", "\n", "9999-12-31T23:59:59-12:00",
                              "0001-01-01T00:00:00+01:00", "../../etc/passwd", "envol.>"])
NASTY_NUMBER = st.one_of(st.integers(), st.sampled_from([2**63, -(2**63) - 1, 10**30, 10**400]),
                         st.floats(allow_nan=True, allow_infinity=True))
SCALAR = st.one_of(st.none(), st.booleans(), NASTY_NUMBER, st.text(max_size=50), NASTY_TEXT)
JSON_VALUE = st.recursive(SCALAR, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)), max_leaves=12)
ENVELOPE_FIELDS = ["id", "source", "type", "time", "subject", "specversion", "datacontenttype", "cluster",
                   "correlationid", "causationid", "data", "extra"]


def nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


@st.composite
def hostile_message(draw: st.DrawFn, document: dict[str, Any]) -> bytes:
    """One message spoiled in one of several ways, from a valid event's document."""
    how = draw(st.sampled_from(["bytes", "json", "envelope", "data", "deep"]))
    if how == "bytes":
        return draw(st.binary(max_size=3000))
    if how == "json":
        return _encode(draw(JSON_VALUE))
    spoiled = json.loads(json.dumps(document))
    if how == "deep":
        spoiled["data"]["nested"] = nested(draw(st.integers(min_value=20, max_value=5000)))
    elif how == "envelope":
        spoiled[draw(st.sampled_from(ENVELOPE_FIELDS))] = draw(JSON_VALUE)
    else:
        keys = [*spoiled["data"], "unexpected"]
        spoiled["data"][draw(st.sampled_from(keys))] = draw(JSON_VALUE)
    return _encode(spoiled)


def _encode(value: Any) -> bytes:
    try:
        return json.dumps(value).encode()  # NaN, Infinity and escaped surrogates included
    except RecursionError:
        return b"[" * 5000 + b"]" * 5000


@pytest.fixture
def running() -> dict[str, Any]:
    """The service under test, started by the first example and kept for the others."""
    return {}


@pytest.fixture
def log() -> Iterator[io.StringIO]:
    """The services' log lines, at INFO, as operators get them."""
    lines = io.StringIO()
    configure_logging(json_lines=True, level="INFO")
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(lines),
                        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO))
    yield lines
    configure_logging(json_lines=True, level="WARNING")


@pytest.mark.parametrize("target_name", list(TARGETS))
@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(data=st.data())
async def test_no_generated_message_stops_stalls_or_silences_a_service(
        nc, start_service, running, log, target_name: str, data: st.DataObject) -> None:
    target = TARGETS[target_name]
    if "service" not in running:
        running["service"] = await start_service(definition=target.bootstrap())
    js = nc.jetstream()
    siren = fresh_siren()
    subject, envelope = make_event(target.hostile(siren), cluster=AV, producer=target.producer, company=siren)
    document = json.loads(envelope.to_bytes())
    sequences = []
    for message in data.draw(st.lists(hostile_message(document), min_size=1, max_size=5), label="hostile"):
        sequences.append((await js.publish(subject, message)).seq)
    other = fresh_siren()
    valid_subject, valid = make_event(target.valid(other), cluster=AV, company=other,
                                      producer="enrolment" if target_name != "enrolment" else "staff")
    sequences.append((await js.publish(valid_subject, valid.to_bytes())).seq)

    outcomes = await wait_for(lambda: _outcomes(log, sequences), within=30)
    assert all(len(found) == 1 for found in outcomes.values()), outcomes
    await wait_for(lambda: target.shown(nc, other), within=30)
    refused = sum(1 for lines in _all_outcomes(log).values() for line in lines
                  if line in ("event.rejected", "event.dead_lettered"))
    await wait_for(lambda: _rejections_at_least(nc, target.producer, refused), within=30)
    assert not running["service"].consumer_task.done(), "the consumer is still running"
    text = log.getvalue()
    for personal in PERSON.values():
        assert personal not in text


def _all_outcomes(log: io.StringIO) -> dict[int, list[str]]:
    found: dict[int, list[str]] = {}
    for line in log.getvalue().splitlines():
        entry = json.loads(line)
        if entry.get("event") in FINAL and "stream_seq" in entry:
            found.setdefault(entry["stream_seq"], []).append(entry["event"])
    return found


async def _outcomes(log: io.StringIO, sequences: list[int]) -> dict[int, list[str]] | None:
    found = _all_outcomes(log)
    return {seq: found[seq] for seq in sequences} if all(seq in found for seq in sequences) else None


async def _rejections_at_least(nc, producer: str, count: int) -> bool:
    return len(await events_of(nc, f"envol.{AV}.{producer}.event.rejected")) >= count
