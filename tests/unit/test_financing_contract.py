"""The financing events as partners publish them: strict payloads, what is refused, and the
financing consumer's subscription covering every event the service handles."""

import json
import re
from datetime import UTC, date, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from envol_financing.handlers import HANDLERS
from envol_shared.contracts import PUBLISHED_BY
from envol_shared.contracts import financing as fin
from envol_shared.contracts.enrolment import ApplicationEnrolled
from envol_shared.events import (
    EventData,
    InvalidEvent,
    make_event,
    parse_event,
    registered_types,
    subject_for,
)
from envol_shared.topology import CONSUMERS

SIREN = "732829320"
CLUSTER = "aerospace-valley"
BANK = "banque-garonne"
GRANTED = {"case_id": "av-2026-0142", "decision": "granted", "decided_on": "2026-04-20",
           "reason": "sound project", "awarded_cents": 45_000_000, "rate_bps": 250, "duration_months": 60,
           "tranches_planned": 2}
TERMS = ("awarded_cents", "rate_bps", "duration_months", "tranches_planned")


def label(value: object) -> str:
    return str(value)


# ---- LoanDecided: the decision and its terms go together ------------------------------------------


def test_granted_loan_with_amount_and_terms_is_valid() -> None:
    decided = fin.LoanDecided.model_validate(GRANTED)
    assert (decided.awarded_cents, decided.rate_bps, decided.duration_months, decided.tranches_planned) == (
        45_000_000, 250, 60, 2)
    assert decided.decided_on == date(2026, 4, 20)


@pytest.mark.parametrize("missing", TERMS)
def test_granted_loan_without_one_of_its_terms_is_refused(missing: str) -> None:
    data = {k: v for k, v in GRANTED.items() if k != missing}
    with pytest.raises(ValidationError) as refused:
        fin.LoanDecided.model_validate(data)
    assert refused.value.errors()[0]["msg"] == ("Value error, a granted loan needs awarded_cents, rate_bps, "
                                                "duration_months and tranches_planned")


def test_refused_loan_without_terms_is_valid() -> None:
    data = {k: v for k, v in GRANTED.items() if k not in TERMS} | {"decision": "refused",
                                                                   "reason": "too risky"}
    decided = fin.LoanDecided.model_validate(data)
    assert decided.decision == "refused"
    assert (decided.awarded_cents, decided.rate_bps, decided.duration_months, decided.tranches_planned) == (
        None, None, None, None)


@pytest.mark.parametrize("present", TERMS)
def test_refused_loan_with_any_term_is_refused(present: str) -> None:
    data = {k: v for k, v in GRANTED.items() if k not in TERMS or k == present} | {"decision": "refused"}
    with pytest.raises(ValidationError) as refused:
        fin.LoanDecided.model_validate(data)
    assert refused.value.errors()[0]["msg"] == "Value error, a refused loan has no amount nor terms"


@pytest.mark.parametrize(("field", "value"), [("rate_bps", -1), ("rate_bps", 5001), ("duration_months", 0),
                                              ("duration_months", 361), ("tranches_planned", 0),
                                              ("tranches_planned", 25)], ids=label)
def test_loan_terms_out_of_range_are_refused(field: str, value: int) -> None:
    with pytest.raises(ValidationError) as refused:
        fin.LoanDecided.model_validate(GRANTED | {field: value})
    assert refused.value.errors()[0]["loc"] == (field,)


# ---- parsing as a partner publishes ------------------------------------------------------------------------


def wire(data: dict[str, Any], type_: str, producer: str, *, cluster: str = CLUSTER,
         subject: str | None = None) -> tuple[bytes, str]:
    """A CloudEvent as a partner would build it by hand, and the subject it publishes on."""
    document = {
        "specversion": "1.0", "id": "evt-1", "source": f"/partners/{producer}", "type": type_,
        "time": "2026-04-20T10:15:00+02:00", "subject": SIREN, "datacontenttype": "application/json",
        "cluster": cluster, "correlationid": "corr-1", "data": data,
    }
    return json.dumps(document).encode(), subject or subject_for(cluster, producer, type_)


def refusal(raw: bytes, subject: str) -> str:
    with pytest.raises(InvalidEvent) as refused:
        parse_event(raw, subject)
    return refused.value.reason


def test_partner_event_is_parsed_strictly_on_its_subject() -> None:
    raw, subject = wire(GRANTED, "envol.loan.decided.v1", BANK)
    assert subject == "envol.aerospace-valley.banque-garonne.loan.decided"

    incoming = parse_event(raw, subject, accepted=CONSUMERS["financing"].event_types)

    assert incoming.data == fin.LoanDecided.model_validate(GRANTED)
    assert incoming.producer == BANK
    assert incoming.company == SIREN
    assert incoming.envelope.cluster == CLUSTER
    assert incoming.envelope.time == datetime(2026, 4, 20, 8, 15, tzinfo=UTC)


# The README's examples, as a partner's developer would copy them: (model, cluster, producer, data).
AV, PG, AS = "aerospace-valley", "pegase", "astech"
CLUB, COACH = "av-investors-club", "finance-coach-toulouse"
README_EXAMPLES: list[tuple[type[EventData], str, str, dict[str, Any]]] = [
    (fin.CaseAssigned, AV, "staff",
     {"case_id": "av-2026-0142", "partner": "banque-garonne", "requested_cents": 50000000,
      "by": "av-staff-01"}),
    (fin.RequirementAdded, AV, "staff",
     {"case_id": "av-2026-0142", "requirement_id": "progress-report-1", "kind": "report",
      "title": "R&D progress report", "due_on": "2026-09-30", "owner": "av-staff-01", "gates_tranche": 2}),
    (fin.RequirementUpdated, AV, "staff",
     {"case_id": "av-2026-0142", "requirement_id": "progress-report-1", "status": "complete",
      "on": "2026-09-28", "note": "received"}),
    (fin.CheckpointRecorded, AV, "staff",
     {"case_id": "av-2026-0142", "checkpoint": "baseline", "recorded_on": "2026-03-20",
      "raised_to_date_cents": 20000000}),
    (fin.GrowthContractSigned, PG, "staff",
     {"case_id": "pg-2026-0007", "signed_on": "2026-04-02", "years": 3,
      "objectives": [{"objective_id": "export-40", "description": "40 % of turnover abroad"}],
      "levers": [{"lever": "financing", "description": "equity round", "amount_cents": 150000000},
                 {"lever": "region", "description": "Région Sud innovation aid"}]}),
    (fin.GrowthMilestoneReviewed, PG, "staff",
     {"case_id": "pg-2026-0007", "objective_id": "export-40", "reviewed_on": "2026-10-01",
      "outcome": "on_track"}),
    (fin.FinancingActionRecorded, AS, "staff",
     {"case_id": "as-2026-0031", "action": "introduction to two regional funds", "on": "2026-05-12",
      "outcome": "term sheet", "amount_obtained_cents": 60000000}),
    (fin.LoanRequestReceived, AV, BANK,
     {"case_id": "av-2026-0142", "bank_reference": "bg-2026-117", "received_on": "2026-04-01"}),
    (fin.LoanDecided, AV, BANK,
     {"case_id": "av-2026-0142", "decision": "granted", "decided_on": "2026-04-20", "reason": "sound project",
      "awarded_cents": 45000000, "rate_bps": 250, "duration_months": 60, "tranches_planned": 2}),
    (fin.LoanTrancheDisbursed, AV, BANK,
     {"case_id": "av-2026-0142", "tranche": 1, "amount_cents": 25000000, "disbursed_on": "2026-05-04"}),
    (fin.InvestorIntroduced, AV, CLUB,
     {"case_id": "av-2026-0150", "investor": "Garonne Ventures", "introduced_on": "2026-04-01"}),
    (fin.PitchScheduled, AV, CLUB,
     {"case_id": "av-2026-0150", "session_id": "pitch-2026-05", "scheduled_on": "2026-05-12"}),
    (fin.PitchHeld, AV, CLUB,
     {"case_id": "av-2026-0150", "session_id": "pitch-2026-05", "held_on": "2026-05-12",
      "investors_present": 9}),
    (fin.InterestExpressed, AV, CLUB,
     {"case_id": "av-2026-0150", "investor": "Garonne Ventures", "expressed_on": "2026-05-20",
      "amount_cents": 80000000}),
    (fin.RoundClosed, AV, CLUB,
     {"case_id": "av-2026-0150", "closed_on": "2026-07-10", "amount_raised_cents": 120000000,
      "investors": ["Garonne Ventures", "Sud Angels"]}),
    (fin.CoachingSessionHeld, AV, COACH,
     {"case_id": "av-2026-0160", "held_on": "2026-04-02", "topics": ["financing plan"], "hours": 3}),
    (fin.DeliverableDelivered, AV, COACH,
     {"case_id": "av-2026-0160", "deliverable": "data_room", "delivered_on": "2026-06-15"}),
]


def model_id(model: type[EventData]) -> str:
    return model.__name__


def example(model: type[EventData], **changes: Any) -> tuple[bytes, str]:
    """The README's example of `model`, with `changes` to its data, and its subject."""
    _, cluster, producer, data = next(e for e in README_EXAMPLES if e[0] is model)
    return wire(data | changes, model.type, producer, cluster=cluster)


@pytest.mark.parametrize(("model", "cluster", "producer", "data"), README_EXAMPLES,
                         ids=[e[0].__name__ for e in README_EXAMPLES])
def test_readme_example_parses_on_its_subject(model: type[EventData], cluster: str, producer: str,
                                              data: dict[str, Any]) -> None:
    raw, subject = wire(data, model.type, producer, cluster=cluster)
    incoming = parse_event(raw, subject, accepted=CONSUMERS["financing"].event_types)
    assert type(incoming.data) is model
    assert incoming.producer == producer
    expected = data | ({"hours": 3.0} if "hours" in data else {})  # an integer is fine for a float
    assert incoming.data.model_dump(mode="json", exclude_none=True) == expected


def test_every_staff_and_partner_event_has_an_example() -> None:
    assert {e[0] for e in README_EXAMPLES} == {*fin.STAFF_EVENTS, *fin.BANK_EVENTS, *fin.CLUB_EVENTS,
                                               *fin.COACH_EVENTS}


@pytest.mark.parametrize(("model", "field"), [
    (fin.LoanDecided, "currency"),
    (fin.LoanTrancheDisbursed, "iban"),
    (fin.CaseAssigned, "partner_name"),
    (fin.InvestorIntroduced, "contact_email"),
], ids=label)
def test_unknown_data_field_is_refused(model: type[EventData], field: str) -> None:
    raw, subject = example(model, **{field: "x"})
    assert refusal(raw, subject) == (f"{model.type} data violates its schema: {field}: "
                                     "Extra inputs are not permitted")


def test_unknown_field_in_a_nested_lever_is_refused() -> None:
    levers = [{"lever": "financing", "description": "equity round", "amount_cents": 1, "bank": "x"}]
    raw, subject = example(fin.GrowthContractSigned, levers=levers)
    assert refusal(raw, subject) == (f"{fin.GrowthContractSigned.type} data violates its schema: "
                                     "levers.0.bank: Extra inputs are not permitted")


POSITIVE_AMOUNTS = [
    (fin.LoanTrancheDisbursed, "amount_cents"),
    (fin.LoanDecided, "awarded_cents"),
    (fin.CaseAssigned, "requested_cents"),
    (fin.RoundClosed, "amount_raised_cents"),
    (fin.InterestExpressed, "amount_cents"),
    (fin.FinancingActionRecorded, "amount_obtained_cents"),
]


@pytest.mark.parametrize("value", [0, -1, -25_000_000])
@pytest.mark.parametrize(("model", "field"), POSITIVE_AMOUNTS, ids=label)
def test_zero_or_negative_amount_is_refused(model: type[EventData], field: str, value: int) -> None:
    raw, subject = example(model, **{field: value})
    assert refusal(raw, subject) == (f"{model.type} data violates its schema: {field}: "
                                     "Input should be greater than 0")


@pytest.mark.parametrize("value", ["25000000", 25000000.0, 25000000.5, True], ids=label)
def test_amount_must_be_an_integer_number_of_cents(value: object) -> None:
    raw, subject = example(fin.LoanTrancheDisbursed, amount_cents=value)
    assert refusal(raw, subject) == (f"{fin.LoanTrancheDisbursed.type} data violates its schema: "
                                     "amount_cents: Input should be a valid integer")


def test_raised_to_date_may_be_zero_but_not_negative() -> None:
    raw, subject = example(fin.CheckpointRecorded, raised_to_date_cents=0)
    assert parse_event(raw, subject).data.raised_to_date_cents == 0  # type: ignore[attr-defined]
    raw, subject = example(fin.CheckpointRecorded, raised_to_date_cents=-1)
    assert refusal(raw, subject) == (f"{fin.CheckpointRecorded.type} data violates its schema: "
                                     "raised_to_date_cents: Input should be greater than or equal to 0")


@pytest.mark.parametrize(("model", "field", "value"), [
    (fin.CheckpointRecorded, "checkpoint", "month_3"),
    (fin.RequirementUpdated, "status", "open"),
    (fin.RequirementAdded, "kind", "invoice"),
    (fin.RequirementAdded, "gates_tranche", 0),
    (fin.LoanTrancheDisbursed, "tranche", 0),
    (fin.DeliverableDelivered, "deliverable", "slides"),
    (fin.RoundClosed, "investors", []),
    (fin.GrowthContractSigned, "years", 0),
    (fin.GrowthContractSigned, "objectives", []),
    (fin.CoachingSessionHeld, "hours", 0),
    (fin.CaseAssigned, "partner", "Banque Garonne"),
], ids=label)
def test_value_outside_the_contract_is_refused_naming_the_field(model: type[EventData], field: str,
                                                                 value: object) -> None:
    raw, subject = example(model, **{field: value})
    assert refusal(raw, subject).startswith(f"{model.type} data violates its schema: {field}: ")


def test_partner_event_on_another_event_s_subject_is_refused() -> None:
    raw, _ = wire(GRANTED, "envol.loan.decided.v1", BANK)
    reason = refusal(raw, "envol.aerospace-valley.banque-garonne.loan.request.received")
    assert reason == ("subject 'envol.aerospace-valley.banque-garonne.loan.request.received' does not match "
                      "the event: a envol.loan.decided.v1 event of cluster 'aerospace-valley' goes on "
                      "'envol.aerospace-valley.banque-garonne.loan.decided'")


def test_partner_event_of_another_cluster_is_refused() -> None:
    raw, _ = wire(GRANTED, "envol.loan.decided.v1", BANK, cluster="pegase")
    reason = refusal(raw, "envol.aerospace-valley.banque-garonne.loan.decided")
    assert reason == "subject cluster 'aerospace-valley' differs from event cluster 'pegase'"


def test_financing_event_round_trips_through_make_event() -> None:
    data = fin.LoanTrancheDisbursed(case_id="av-2026-0142", tranche=1, amount_cents=25_000_000,
                                    disbursed_on=date(2026, 5, 4))
    subject, envelope = make_event(data, cluster=CLUSTER, producer=BANK, company=SIREN)
    assert subject == "envol.aerospace-valley.banque-garonne.loan.tranche.disbursed"
    assert parse_event(envelope.to_bytes(), subject).data == data


# ---- the financing consumer's subscription -------------------------------------------------------------


def nats_match(pattern: str, subject: str) -> bool:
    """NATS subject matching: `*` is one token, `>` one or more trailing tokens."""
    regex = r"\.".join("[^.]+" if t == "*" else ".+" if t == ">" else re.escape(t)
                       for t in pattern.split("."))
    return re.fullmatch(regex, subject) is not None


def consumed_by_financing(subject: str) -> bool:
    return any(nats_match(f, subject) for f in CONSUMERS["financing"].filter_subjects)


def test_nats_match_helper() -> None:
    assert nats_match("envol.*.*.loan.decided", "envol.pegase.banque-x.loan.decided")
    assert not nats_match("envol.*.*.loan.decided", "envol.pegase.loan.decided")
    assert not nats_match("envol.*.enrolment.application.enrolled", "envol.pegase.staff.application.enrolled")


@pytest.mark.parametrize("event", fin.CONSUMED, ids=lambda e: e.type)
def test_every_consumed_type_is_in_the_financing_consumer_s_filter(event: type[EventData]) -> None:
    consumer = CONSUMERS["financing"]
    assert event.type in consumer.event_types
    producer = PUBLISHED_BY.get(event.type, "some-partner")
    for cluster in ("aerospace-valley", "pegase", "astech"):
        assert consumed_by_financing(subject_for(cluster, producer, event.type))


@pytest.mark.parametrize("event", [ApplicationEnrolled, fin.CaseOpened, fin.ReminderDue],
                         ids=lambda e: e.type)
def test_service_events_reach_financing_only_from_their_own_service(event: type[EventData]) -> None:
    assert not consumed_by_financing(subject_for(CLUSTER, "staff", event.type))


def test_financing_does_not_consume_what_it_publishes() -> None:
    for event in fin.PUBLISHED:
        assert PUBLISHED_BY[event.type] == "financing"
        assert not consumed_by_financing(subject_for(CLUSTER, "financing", event.type))
    assert set(CONSUMERS["financing"].event_types) == {e.type for e in fin.CONSUMED}


def test_every_consumed_type_has_a_handler() -> None:
    assert set(HANDLERS) == set(fin.CONSUMED)


def test_every_financing_event_is_registered() -> None:
    for event in (*fin.CONSUMED, *fin.PUBLISHED):
        assert registered_types()[event.type] is event
