"""What a hostile or careless partner can publish, on a real nats-server and both databases.

Each message below once stopped a service, cut it off from NATS, or was silently dropped. Now
each gets a rejection naming what is wrong, the service keeps consuming, and a valid event
sent after them is applied.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import nats
import pytest
from support import SIRENS, dead_letters, events_of, new_id, publish, publish_raw, registration, wait_for

from envol_financing.bootstrap import bootstrap as financing_bootstrap
from envol_shared.contracts import enrolment as ev
from envol_shared.contracts import financing as fe
from envol_shared.events import make_event

AV = "aerospace-valley"
REGISTER = f"envol.{AV}.staff.company.registered"


def registration_document(siren: str, event_id: str, **envelope: Any) -> dict[str, Any]:
    _, event = make_event(ev.CompanyRegistered(**registration(siren)), cluster=AV, producer="staff",
                          company=siren, event_id=event_id)
    document = json.loads(event.to_bytes())
    document.update(envelope)
    return document


def with_data(siren: str, event_id: str, **data: Any) -> dict[str, Any]:
    document = registration_document(siren, event_id)
    document["data"].update(data)
    return document


def raw(document: dict[str, Any]) -> bytes:
    return json.dumps(document).encode()


def staff_written_as(number: bytes, siren: str, event_id: str) -> bytes:
    """What no JSON encoder writes, but a careless partner can."""
    written = raw(with_data(siren, event_id, staff_awu=7))
    return written.replace(b'"staff_awu": 7,', b'"staff_awu": ' + number + b",")


# name -> (what is published, on registration's subject; words the rejection must hold)
CASES: dict[str, tuple[Callable[[str, str], bytes], str]] = {
    "JSON nested 3,000 levels deep": (
        lambda siren, id_: b'{"id": "' + id_.encode() + b'", "a": ' + b"[" * 3000 + b"]" * 3000 + b"}",
        "nested more than"),
    "a time at the end of year 9999 west of UTC": (
        lambda siren, id_: raw(registration_document(siren, id_, time="9999-12-31T23:59:59-12:00")),
        "time: Value error, must be between the years"),
    "a time in year 1 east of UTC": (
        lambda siren, id_: raw(registration_document(siren, id_, time="0001-01-01T00:00:00+01:00")),
        "time: Value error, must be between the years"),
    "an integer beyond 64 bits in a money field": (
        lambda siren, id_: raw(with_data(siren, id_, turnover_cents=10**30)),
        "data.turnover_cents: integer outside the 64-bit range"),
    "money beyond the contract's ceiling": (
        lambda siren, id_: raw(with_data(siren, id_, turnover_cents=10**16)),
        "turnover_cents: Input should be less than or equal to"),
    "an integer of 400 digits in a holder's figures": (
        lambda siren, id_: raw(with_data(siren, id_, holdings=[{
            "holder": "X", "holder_kind": "enterprise", "share_percent": 30,
            "holder_turnover_cents": 10**400}])),
        "holder_turnover_cents: integer outside the 64-bit range"),
    "a lone surrogate in the id": (
        lambda siren, id_: raw(registration_document(siren, id_, id=id_ + "-\ud800")),
        "unpaired surrogate"),
    "a CloudEvents subject of 65 characters": (
        lambda siren, id_: raw(registration_document(siren, id_, subject="7" * 65)),
        "subject: String should have at most 64 characters"),
    "a NUL character in a text field": (
        lambda siren, id_: raw(with_data(siren, id_, legal_name="Figeac\u0000Usinage")),
        "data.legal_name: text holds a control character"),
    "a schema-invalid event with a source of 200 characters": (
        lambda siren, id_: raw(registration_document(siren, id_, source="/" + "s" * 199,
                                                     data={"company_id": siren})),
        "data violates its schema"),
    "an unreadable event with a source of 510 characters": (
        lambda siren, id_: raw(registration_document(siren, id_, source="/" + "s" * 509, time=3)),
        "source: String should have at most 256 characters"),
    "Infinity for the staff": (
        lambda siren, id_: staff_written_as(b"Infinity", siren, id_),
        "Infinity is not a JSON number"),
    "a number too large for a float": (
        lambda siren, id_: staff_written_as(b"1e400", siren, id_),
        "data.staff_awu: number too large"),
}


async def test_each_hostile_message_gets_its_rejection_and_the_service_goes_on(nc, start_service):
    service = await start_service()
    ids = {name: f"hostile-{n}" for n, name in enumerate(CASES)}
    for n, (name, (build, _)) in enumerate(CASES.items()):
        await publish_raw(nc, REGISTER, build(SIRENS[n % len(SIRENS)], ids[name]))
    after = SIRENS[-1]
    await publish(nc, ev.CompanyRegistered(**registration(after)), company=after)

    await wait_for(lambda: _assessed(nc, after))
    found = await wait_for(lambda: _all_rejected(nc, len(CASES)))
    assert len(found) == len(CASES), "one rejection each, no more"
    for name, (_, words) in CASES.items():
        # Where no id could be read (too deep, not text), the rejection names none.
        [rejection] = [r for r in found if r["rejected_event_id"] == ids[name]] or [
            r for r in found if r["rejected_event_id"] is None and words in r["reason"]]
        assert words in rejection["reason"], f"{name}: {rejection['reason']!r}"
        assert rejection["dead_lettered"]
    assert not service.consumer_task.done(), "the consumer is still running"


async def _assessed(nc, siren: str) -> bool:
    return any(e["data"]["siren"] == siren for e in await events_of(nc, "envol.*.enrolment.company.assessed"))


async def _all_rejected(nc, count: int) -> list[dict[str, Any]] | None:
    events = await events_of(nc, "envol.*.staff.event.rejected")
    return [e["data"] for e in events] if len(events) >= count else None


async def test_a_huge_unreadable_message_gets_a_dead_letter_that_fits(nc, start_service):
    service = await start_service()
    limit = nc.max_payload
    size = limit - 100  # about the most a partner can send
    await publish_raw(nc, REGISTER, b"x" * size)
    siren = SIRENS[1]
    await publish(nc, ev.CompanyRegistered(**registration(siren)), company=siren)

    await wait_for(lambda: _assessed(nc, siren))
    [letter] = await wait_for(lambda: dead_letters(nc))
    assert len(letter.data) + sum(len(k) + len(v) for k, v in letter.headers.items()) < limit
    assert letter.headers["Envol-Original-Size"] == str(size)
    assert "bytes kept" in letter.headers["Envol-Original-Truncated"]
    assert len(letter.headers["Nats-Msg-Id"]) < 120
    assert service.nc is not None and service.nc.is_connected
    assert not service.consumer_task.done()


async def test_a_refused_event_sent_again_is_refused_again(nc, start_service):
    await start_service()
    siren, event_id = SIRENS[2], new_id()
    bad = raw(with_data(siren, event_id, accounts_year=1800))
    await publish_raw(nc, REGISTER, bad)
    await publish_raw(nc, REGISTER, bad)  # the producer, unsure, sends it again

    refusals = await wait_for(lambda: _refusals(nc, event_id, 2))
    assert "accounts_year" in refusals[0]["reason"]
    assert refusals[0]["rejected_type"] == "envol.company.registered.v1", "the envelope could be read"
    assert "sent again, and refused again" in refusals[1]["reason"]
    assert all(r["dead_lettered"] for r in refusals)
    assert len(await dead_letters(nc)) == 1, "the original is kept once"


async def _refusals(nc, event_id: str, count: int) -> list[dict[str, Any]] | None:
    found = [e["data"] for e in await events_of(nc, "envol.*.staff.event.rejected")
             if e["data"]["rejected_event_id"] == event_id]
    return found if len(found) >= count else None


async def test_the_same_source_and_id_from_another_producer_is_another_event(nc, start_service):
    await start_service()
    first, second = SIRENS[3], SIRENS[4]
    shared_id = new_id()
    await publish(nc, ev.CompanyRegistered(**registration(first)), company=first, event_id=shared_id)
    # Another cluster's staff tool happens to use the same source and id.
    _, event = make_event(ev.CompanyRegistered(**registration(second, cluster="pegase")), cluster="pegase",
                          producer="staff", company=second, event_id=shared_id)
    document = json.loads(event.to_bytes()) | {"source": f"/envol/{AV}/staff"}
    await publish_raw(nc, "envol.pegase.staff.company.registered", raw(document))

    await wait_for(lambda: _assessed(nc, first))
    await wait_for(lambda: _assessed(nc, second))


@pytest.mark.parametrize("time", ["9999-12-31T23:59:59-12:00", "0001-01-01T00:00:00+01:00"])
async def test_a_bank_sending_a_time_out_of_range_is_refused_and_financing_goes_on(
        nc, start_service, time):
    service = await start_service(definition=financing_bootstrap())
    bank = "banque-garonne"
    _, event = make_event(fe.LoanRequestReceived(case_id="av-loan-x", bank_reference="bg-1",
                                                 received_on="2026-04-01"),
                          cluster=AV, producer=bank, company=SIRENS[0])
    document = json.loads(event.to_bytes()) | {"time": time}
    await publish_raw(nc, f"envol.{AV}.{bank}.loan.request.received", raw(document))

    [refusal] = await wait_for(lambda: _refusals_of(nc, bank))
    assert "time: Value error, must be between the years 1900 and 2199" in refusal["reason"]
    assert not service.consumer_task.done()


async def _refusals_of(nc, producer: str) -> list[dict[str, Any]]:
    return [e["data"] for e in await events_of(nc, f"envol.*.{producer}.event.rejected")]


async def test_a_jetstream_acknowledgement_stored_through_a_reply_subject_answers_no_one(nc, start_service):
    """A bank publishing with reply=<staff's subject> gets JetStream's acknowledgement stored
    there: NATS cannot prevent it (see the README). It is kept as a dead letter, and the staff,
    who sent nothing, get no rejection."""
    service = await start_service()
    bank = await nats.connect(nc.connected_url.geturl())
    try:
        reply = f"envol.{AV}.staff.company.registered"
        await bank.publish(f"envol.{AV}.banque-garonne.loan.request.received", b"{}", reply=reply)
        [letter] = await wait_for(lambda: _letters_about(nc, "not a CloudEvents 1.0 envelope"))
    finally:
        await bank.close()
    assert json.loads(letter.data)["stream"] == "ENVOL_EVENTS"
    siren = SIRENS[5]
    await publish(nc, ev.CompanyRegistered(**registration(siren)), company=siren)
    await wait_for(lambda: _assessed(nc, siren))
    assert await _refusals_of(nc, "staff") == []
    assert not service.consumer_task.done()


async def _letters_about(nc, words: str) -> list[Any]:
    return [m for m in await dead_letters(nc) if words in m.headers["Envol-Reason"]]
