"""The event contract: CloudEvents envelopes, typed payloads, subjects, and what is refused."""

import json
import uuid
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest
from pydantic import ValidationError

from envol_enrolment.domain.model import Status
from envol_shared.contracts.enrolment import (
    TRANSITION_EVENTS,
    ApplicationEnrolled,
    ApplicationReceived,
    ApplicationReviewed,
    ApplicationSubmitted,
    CompanyRegistered,
)
from envol_shared.events import (
    EventData,
    EventRejected,
    InvalidEvent,
    event_name,
    event_type,
    make_event,
    namespace_of,
    parse_event,
    registered_types,
    subject_for,
)
from envol_shared.topology import catalogue_subject

SIREN = "732829320"
CLUSTER = "aerospace-valley"
SUBMITTED_SUBJECT = "envol.aerospace-valley.staff.application.submitted"
REGISTERED_SUBJECT = "envol.aerospace-valley.staff.company.registered"


def submitted(**changes: Any) -> ApplicationSubmitted:
    fields = {"application_id": "app-1", "company_id": SIREN, "programme": "AV-INVESTORS-CLUB",
              "applied_on": date(2026, 3, 2), **changes}
    return ApplicationSubmitted(**fields)


def envelope_of(data: EventData, company: str = SIREN) -> dict[str, Any]:
    """A valid envelope as a JSON document, to be spoiled by a test."""
    _, envelope = make_event(data, cluster=CLUSTER, producer="staff", company=company)
    return json.loads(envelope.to_bytes())


REGISTRATION = {"company_id": SIREN, "legal_name": "Aéro SAS", "region": "Occitanie", "clusters": [CLUSTER],
                "staff_awu": 42, "turnover_cents": 600_000_000, "balance_sheet_cents": 500_000_000,
                "accounts_year": 2025}


def registration(**changes: Any) -> dict[str, Any]:
    """A valid company.registered envelope whose data fields are then changed."""
    document = envelope_of(CompanyRegistered.model_validate(REGISTRATION))
    document["data"] = {**document["data"], **changes}
    return document


def parse(document: Any, subject: str = SUBMITTED_SUBJECT, **kwargs: Any):  # type: ignore[no-untyped-def]
    return parse_event(json.dumps(document).encode(), subject, **kwargs)


def refusal(document: Any, subject: str = SUBMITTED_SUBJECT, **kwargs: Any) -> str:
    with pytest.raises(InvalidEvent) as refused:
        parse(document, subject, **kwargs)
    return refused.value.reason


# ---- a valid event -------------------------------------------------------------------


def test_valid_envelope_is_parsed_into_its_typed_payload() -> None:
    document = envelope_of(submitted(target_country="CA"))

    incoming = parse(document)

    assert isinstance(incoming.data, ApplicationSubmitted)
    assert incoming.data == submitted(target_country="CA")
    assert incoming.envelope.id == document["id"]
    assert incoming.envelope.type == "envol.application.submitted.v1"
    assert incoming.producer == "staff"
    assert incoming.company == SIREN


def test_envelope_time_with_an_offset_is_normalised_to_utc() -> None:
    document = envelope_of(submitted())
    document["time"] = "2026-03-02T10:00:00+02:00"
    assert parse(document).envelope.time == datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


def test_data_may_name_the_company_by_its_siret_when_the_subject_is_its_siren() -> None:
    incoming = parse(envelope_of(submitted(company_id="732 829 320 00074")))
    assert incoming.data.company_id == "73282932000074"  # type: ignore[attr-defined]


def test_consumer_can_restrict_the_types_it_accepts() -> None:
    reason = refusal(envelope_of(submitted()), accepted=["envol.company.registered.v1"])
    assert reason == ("unknown event type 'envol.application.submitted.v1'; "
                      "expected one of: envol.company.registered.v1")


# ---- not an envelope -----------------------------------------------------------------


def test_bytes_that_are_not_json_are_refused() -> None:
    with pytest.raises(InvalidEvent, match=r"^not JSON: "):
        parse_event(b"{not json", SUBMITTED_SUBJECT)


def test_bytes_that_are_not_utf8_are_refused() -> None:
    with pytest.raises(InvalidEvent, match=r"^not JSON: "):
        parse_event(b"\xff\xfe\x00", SUBMITTED_SUBJECT)


@pytest.mark.parametrize("document", [[], [{"specversion": "1.0"}], "text", 42, None])
def test_json_that_is_not_an_object_is_refused(document: Any) -> None:
    assert refusal(document) == "not a CloudEvent: the JSON document is not an object"


@pytest.mark.parametrize(
    "attribute", ["specversion", "id", "source", "type", "time", "subject", "datacontenttype", "data",
                  "cluster", "correlationid"],
)
def test_missing_cloudevents_attribute_is_refused_by_name(attribute: str) -> None:
    document = envelope_of(submitted())
    del document[attribute]
    assert refusal(document) == f"not a CloudEvents 1.0 envelope: {attribute}: Field required"


def test_wrong_specversion_is_refused() -> None:
    document = envelope_of(submitted()) | {"specversion": "0.3"}
    assert refusal(document) == "not a CloudEvents 1.0 envelope: specversion: Input should be '1.0'"


def test_naive_time_is_refused() -> None:
    document = envelope_of(submitted()) | {"time": "2026-03-02T10:00:00"}
    assert refusal(document) == "not a CloudEvents 1.0 envelope: time: Input should have timezone info"


def test_unknown_extra_attribute_is_refused() -> None:
    document = envelope_of(submitted()) | {"priority": "high"}
    assert refusal(document) == "not a CloudEvents 1.0 envelope: priority: Extra inputs are not permitted"


def test_content_type_other_than_json_is_refused() -> None:
    document = envelope_of(submitted()) | {"datacontenttype": "application/xml"}
    assert refusal(document).startswith("not a CloudEvents 1.0 envelope: datacontenttype:")


def test_subject_outside_the_envol_namespace_is_refused() -> None:
    reason = refusal(envelope_of(submitted()), subject="other.aerospace-valley.staff")
    assert reason == "subject 'other.aerospace-valley.staff' is not envol.<cluster>.<producer>.<event>"


# ---- type and version ----------------------------------------------------------------


def test_unknown_type_lists_every_expected_type() -> None:
    document = envelope_of(submitted()) | {"type": "envol.application.teleported.v1"}
    reason = refusal(document)
    assert reason.startswith("unknown event type 'envol.application.teleported.v1'; expected one of: ")
    expected = reason.split("expected one of: ")[1].split(", ")
    assert expected == sorted(registered_types())
    assert "envol.application.submitted.v1" in expected
    assert "envol.company.registered.v1" in expected


def test_unknown_version_of_a_known_event_names_the_known_version() -> None:
    document = envelope_of(submitted()) | {"type": "envol.application.submitted.v2"}
    assert refusal(document) == ("unknown event type 'envol.application.submitted.v2'; "
                                 "expected one of: envol.application.submitted.v1")


# ---- data against its schema ---------------------------------------------------------


def test_negative_turnover_is_refused_naming_the_field() -> None:
    reason = refusal(registration(turnover_cents=-1), REGISTERED_SUBJECT)
    assert reason == ("envol.company.registered.v1 data violates its schema: "
                      "turnover_cents: Input should be greater than or equal to 0")


def test_bad_siren_in_data_is_refused_naming_the_field() -> None:
    reason = refusal(registration(company_id="732829321"), REGISTERED_SUBJECT)
    assert reason.startswith("envol.company.registered.v1 data violates its schema: company_id: ")
    assert "invalid SIREN '732829321'" in reason


def test_unknown_data_field_is_refused() -> None:
    reason = refusal(registration(website="https://example.org"), REGISTERED_SUBJECT)
    assert reason.endswith("website: Extra inputs are not permitted")


def test_nested_error_is_located_by_its_path() -> None:
    holding = {"holder": "Holder SA", "holder_kind": "enterprise", "share_percent": 120}
    reason = refusal(registration(holdings=[holding]), REGISTERED_SUBJECT)
    assert "holdings.0.share_percent: Input should be less than or equal to 100" in reason


def test_many_schema_errors_are_summarised() -> None:
    document = envelope_of(submitted())
    document["data"] = {f"extra{i}": i for i in range(7)}  # 4 fields missing, 7 extra
    reason = refusal(document)
    assert reason.startswith("envol.application.submitted.v1 data violates its schema: "
                             "application_id: Field required; ")
    assert reason.count("; ") == 5
    assert reason.endswith("; and 6 more")


def test_public_bodies_jointly_holding_25_percent_can_be_declared() -> None:
    holdings = [{"holder": "Région", "holder_kind": "public_body", "share_percent": 15},
                {"holder": "Département", "holder_kind": "public_body", "share_percent": 10}]
    incoming = parse(registration(holdings=holdings), REGISTERED_SUBJECT)
    assert [h.share_percent for h in incoming.data.holdings] == [15, 10]  # type: ignore[attr-defined]


@pytest.mark.parametrize("field", ["turnover_cents", "balance_sheet_cents"])
@pytest.mark.parametrize("amount", [12.5, 0.01, "12.5", -100, 1e30])
def test_money_refuses_fractions_negatives_and_absurd_values(field: str, amount: Any) -> None:
    reason = refusal(registration(**{field: amount}), REGISTERED_SUBJECT)
    assert f"data violates its schema: {field}: " in reason


def test_money_refuses_a_float_even_a_whole_one() -> None:
    reason = refusal(registration(turnover_cents=1250.0), REGISTERED_SUBJECT)
    assert "turnover_cents" in reason


def test_money_refuses_a_boolean() -> None:
    reason = refusal(registration(turnover_cents=True), REGISTERED_SUBJECT)
    assert "turnover_cents" in reason


def test_money_refuses_a_string() -> None:
    reason = refusal(registration(turnover_cents="1250"), REGISTERED_SUBJECT)
    assert "turnover_cents" in reason


def test_time_as_a_number_is_refused() -> None:
    document = envelope_of(submitted()) | {"time": 1772445600}
    assert refusal(document).startswith("not a CloudEvents 1.0 envelope: time:")


# ---- subject, cluster and company ----------------------------------------------------


def test_subject_not_matching_the_type_is_refused() -> None:
    reason = refusal(envelope_of(submitted()), subject="envol.aerospace-valley.staff.application.reviewed")
    assert reason == (
        "subject 'envol.aerospace-valley.staff.application.reviewed' does not match the event: "
        "a envol.application.submitted.v1 event of cluster 'aerospace-valley' goes on "
        "'envol.aerospace-valley.staff.application.submitted'")


def test_subject_with_extra_tokens_is_refused() -> None:
    reason = refusal(envelope_of(submitted()), subject=SUBMITTED_SUBJECT + ".again")
    assert "does not match the event" in reason


def test_subject_cluster_different_from_envelope_cluster_is_refused() -> None:
    reason = refusal(envelope_of(submitted()), subject="envol.pegase.staff.application.submitted")
    assert reason == "subject cluster 'pegase' differs from event cluster 'aerospace-valley'"


def test_envelope_subject_must_be_the_siren_of_the_company_in_data() -> None:
    document = envelope_of(submitted(), company="552032534")
    assert refusal(document) == "envelope subject '552032534' must be the SIREN of the company, '732829320'"


def test_envelope_subject_given_as_a_siret_is_refused() -> None:
    document = envelope_of(submitted(), company="73282932000074")
    assert "must be the SIREN of the company" in refusal(document)


def test_assessed_event_subject_is_checked_against_its_siren_field() -> None:
    data = {"siren": SIREN, "legal_name": "Aéro SAS", "region": "Occitanie", "clusters": [CLUSTER],
            "sme_category": "small", "accounts_year": 2025, "staff_awu": 42, "turnover_cents": 1,
            "balance_sheet_cents": 1, "reasons": []}
    document = envelope_of(submitted()) | {"type": "envol.company.assessed.v1", "subject": "552032534",
                                           "data": data}
    reason = refusal(document, "envol.aerospace-valley.enrolment.company.assessed")
    assert reason == "envelope subject '552032534' must be the SIREN of the company, '732829320'"


# ---- make_event ----------------------------------------------------------------------


def test_make_event_builds_the_subject_and_envelope() -> None:
    data = ApplicationReviewed(application_id="app-1", decision="accept", reviewer="staff-7", reason="ok")
    subject, envelope = make_event(data, cluster="pegase", producer="staff", company="552032534",
                                   causation_id="cause-1")
    assert subject == "envol.pegase.staff.application.reviewed"
    assert (envelope.specversion, envelope.source, envelope.type, envelope.subject, envelope.cluster) == (
        "1.0", "/envol/pegase/staff", "envol.application.reviewed.v1", "552032534", "pegase")
    assert envelope.datacontenttype == "application/json"
    assert envelope.data == {"application_id": "app-1", "decision": "accept", "reviewer": "staff-7",
                             "reason": "ok"}
    assert envelope.causationid == "cause-1"


def test_make_event_time_is_utc_now_by_default() -> None:
    before = datetime.now(UTC)
    _, envelope = make_event(submitted(), cluster=CLUSTER, producer="staff", company=SIREN)
    assert envelope.time.tzinfo == UTC
    assert before <= envelope.time <= datetime.now(UTC)


def test_make_event_converts_a_given_time_to_utc() -> None:
    paris = timezone(timedelta(hours=1))
    _, envelope = make_event(submitted(), cluster=CLUSTER, producer="staff", company=SIREN,
                             time=datetime(2026, 3, 2, 10, 0, tzinfo=paris))
    assert envelope.time == datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    assert envelope.time.utcoffset() == timedelta(0)
    assert json.loads(envelope.to_bytes())["time"] == "2026-03-02T09:00:00Z"


def test_make_event_refuses_a_naive_time() -> None:
    with pytest.raises(ValidationError, match="timezone"):
        make_event(submitted(), cluster=CLUSTER, producer="staff", company=SIREN,
                   time=datetime(2026, 3, 2, 10, 0))


def test_correlation_id_defaults_to_the_event_id() -> None:
    _, envelope = make_event(submitted(), cluster=CLUSTER, producer="staff", company=SIREN)
    assert str(uuid.UUID(envelope.id)) == envelope.id
    assert envelope.correlationid == envelope.id
    assert envelope.causationid is None
    assert "causationid" not in json.loads(envelope.to_bytes())


def test_given_ids_are_kept() -> None:
    _, envelope = make_event(submitted(), cluster=CLUSTER, producer="staff", company=SIREN,
                             event_id="evt-1", correlation_id="journey-9")
    assert (envelope.id, envelope.correlationid) == ("evt-1", "journey-9")


def test_make_event_then_parse_event_round_trips() -> None:
    data = submitted(target_country="DE")
    subject, envelope = make_event(data, cluster=CLUSTER, producer="staff", company=SIREN)
    incoming = parse_event(envelope.to_bytes(), subject)
    assert (incoming.envelope, incoming.data) == (envelope, data)


# ---- names, subjects and registration ------------------------------------------------


def test_event_names_and_subjects() -> None:
    assert ApplicationSubmitted.name() == "application.submitted"
    assert event_name("envol.company.registered.v12") == "company.registered"
    assert subject_for("astech", "staff", "envol.withdrawal.requested.v1") == (
        "envol.astech.staff.withdrawal.requested")
    assert catalogue_subject("envol.application.enrolled.v1") == "envol.*.enrolment.application.enrolled"
    assert catalogue_subject("envol.application.submitted.v1") == "envol.*.*.application.submitted"
    assert namespace_of("envol.pegase.staff.company.registered") == ("pegase", "staff")
    assert namespace_of("envol.pegase.staff") is None
    assert namespace_of("nats.pegase.staff.company.registered") is None


@pytest.mark.parametrize("bad", ["envol.application.submitted", "application.submitted.v1",
                                 "envol.submitted.v1", "envol.application.submitted.v0"])
def test_event_name_refuses_a_malformed_type(bad: str) -> None:
    with pytest.raises(ValueError, match=r"is not of the form envol\.<name>\.v<major>"):
        event_name(bad)


def test_registering_a_type_twice_is_refused() -> None:
    with pytest.raises(ValueError, match="registered twice"):
        @event_type
        class Duplicate(EventData):
            type = "envol.event.rejected.v1"

    assert registered_types()["envol.event.rejected.v1"] is EventRejected


# ---- application status events -------------------------------------------------------


def transition(event: type[EventData], to_status: str) -> EventData:
    return event.model_validate({
        "application_id": "app-1", "siren": SIREN, "legal_name": "Aéro SAS", "cluster": CLUSTER,
        "programme": "AV-INVESTORS-CLUB", "programme_kind": "financing", "cohort": "AV-INVESTORS-CLUB-2026",
        "from_status": None, "to_status": to_status, "at": "2026-03-02T09:00:00Z", "by": "enrolment",
        "reasons": []})


def test_there_is_one_transition_event_per_status() -> None:
    assert set(TRANSITION_EVENTS) == {s.value for s in Status}
    assert TRANSITION_EVENTS["applied"].type == "envol.application.received.v1"
    assert TRANSITION_EVENTS["active"].type == "envol.application.activated.v1"
    assert TRANSITION_EVENTS["withdrawn"].type == "envol.application.withdrawn.v1"


@pytest.mark.parametrize("status", [s.value for s in Status])
def test_each_transition_event_carries_its_own_status(status: str) -> None:
    event = transition(TRANSITION_EVENTS[status], status)
    assert event.to_status == status  # type: ignore[attr-defined]


def test_transition_event_refuses_another_status() -> None:
    with pytest.raises(ValidationError, match=r"enrolled\.v1 event cannot have to_status 'denied'"):
        transition(ApplicationEnrolled, "denied")
    with pytest.raises(ValidationError, match=r"received\.v1 event cannot have to_status 'eligible'"):
        transition(ApplicationReceived, "eligible")
