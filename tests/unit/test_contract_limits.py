"""The limits of the contract: what no field of any event may hold, refused with the field named."""

from __future__ import annotations

import json
from typing import Any

import pytest

from envol_shared.contracts import enrolment as ev
from envol_shared.contracts import financing as fe
from envol_shared.events import MAX_CENTS, InvalidEvent, make_event, message_key, parse_event

SIREN = "732829320"


def registration(**data: Any) -> dict[str, Any]:
    return {"company_id": SIREN, "legal_name": "Figeac", "region": "Occitanie",
            "clusters": ["aerospace-valley"], "staff_awu": 42.0, "turnover_cents": 1,
            "balance_sheet_cents": 1, "accounts_year": 2025, **data}


def document(**envelope: Any) -> dict[str, Any]:
    _, event = make_event(ev.CompanyRegistered(**registration()), cluster="aerospace-valley",
                          producer="staff", company=SIREN)
    return json.loads(event.to_bytes()) | envelope


def refusal(raw: bytes) -> InvalidEvent:
    with pytest.raises(InvalidEvent) as caught:
        parse_event(raw, "envol.aerospace-valley.staff.company.registered")
    return caught.value


def with_data(**data: Any) -> bytes:
    return json.dumps(document(data=registration(**data))).encode()


@pytest.mark.parametrize(("raw", "words"), [
    (b"[" * 100_000 + b"]" * 100_000, "nested more than 32 levels deep"),
    (with_data(holdings=[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]),
     "data.holdings.0.0.0"),
    (with_data(turnover_cents=2**63), "data.turnover_cents: integer outside the 64-bit range"),
    (with_data(turnover_cents=-(2**63) - 1), "data.turnover_cents: integer outside the 64-bit range"),
    (with_data(turnover_cents=MAX_CENTS + 1), "turnover_cents: Input should be less than or equal to"),
    (with_data(legal_name="a\x00b"), "data.legal_name: text holds a control character"),
    (with_data(legal_name="a\x1bb"), "data.legal_name: text holds a control character"),
    (with_data(legal_name="a\ud800b"), "data.legal_name: text holds an unpaired surrogate"),
    (with_data(region="r" * 10_001), "data.region: text longer than 10000 characters"),
    (with_data(staff_awu=7.5).replace(b"7.5", b"1e400"), "data.staff_awu: number too large"),
    (with_data(staff_awu=10_000_001.0), "staff_awu: Input should be less than or equal to 10000000"),
    (json.dumps(document(id="has space")).encode(), "id: String should match pattern"),
    (json.dumps(document(time="9999-12-31T23:59:59-12:00")).encode(), "must be between the years"),
    (json.dumps(document(time="1899-12-31T23:00:00+00:00")).encode(), "must be between the years"),
    (json.dumps(document(source="/s" * 200)).encode(), "source: String should have at most 256"),
    (b'{"id": NaN}', "NaN is not a JSON number"),
    (b"1" * 5000, "not JSON"),  # more digits than Python converts
])
def test_what_no_event_may_hold_is_refused_naming_the_field(raw: bytes, words: str) -> None:
    assert words in refusal(raw).reason


def test_a_day_outside_the_years_is_refused_by_the_schema() -> None:
    _, event = make_event(fe.LoanRequestReceived(case_id="c", bank_reference="b", received_on="2026-04-01"),
                          cluster="aerospace-valley", producer="banque-garonne", company=SIREN)
    spoiled = json.loads(event.to_bytes())
    spoiled["data"]["received_on"] = "9999-12-31"
    with pytest.raises(InvalidEvent) as caught:
        parse_event(json.dumps(spoiled).encode(),
                    "envol.aerospace-valley.banque-garonne.loan.request.received")
    assert "received_on: Value error, must be between the years 1900 and 2199" in caught.value.reason
    assert caught.value.envelope is not None, "the envelope was readable: the rejection can name it"


def test_the_limits_are_in_the_published_schema() -> None:
    schema = ev.CompanyRegistered.model_json_schema()
    assert schema["properties"]["turnover_cents"]["maximum"] == MAX_CENTS
    day = fe.LoanRequestReceived.model_json_schema()["properties"]["received_on"]
    assert "1900" in day["description"] and "2199" in day["description"]


def test_the_inbox_key_is_a_digest_of_producer_and_identity() -> None:
    key = message_key("pegase", "staff", "/" + "s" * 300, "id-1")
    assert len(key) == 64
    assert key != message_key("aerospace-valley", "staff", "/" + "s" * 300, "id-1")
    assert key != message_key("pegase", "banque-garonne", "/" + "s" * 300, "id-1")
    # No separator can make two identities collide.
    assert message_key("a", "b", "c d", "e") != message_key("a", "b", "c", "d e")
