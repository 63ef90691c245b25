"""One example of every event type, as a partner would publish it or receive it.

The partners' examples are the README's; the services' are what they publish after those.
Each one is checked when the catalogue is written (its data must be valid for its model) and
by the tests (the whole message must parse on its subject, and match its JSON Schema). The
assessment of the registered company is not written here: the enrolment domain computes it.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Any

from envol_enrolment.domain.sme import Holding, assess
from envol_shared.contracts import PUBLISHED_BY
from envol_shared.contracts import enrolment as en
from envol_shared.events import CloudEvent, registered_types, subject_for
from envol_shared.identifiers import siren_of

AV, PG, AS = "aerospace-valley", "pegase", "astech"
FIGEAC, PROVENCE, ILE_DE_FRANCE, AIRBUS = "732829320", "552032534", "444608442", "383474814"
# The company each journey of the examples is about (a mission's: its host company).
COMPANY_OF = {"av-2026-0142": FIGEAC, "av-2026-0150": FIGEAC, "av-2026-0160": FIGEAC,
              "av-2026-0201": FIGEAC, "av-2026-0207": FIGEAC, "pg-2026-0007": PROVENCE,
              "pg-2026-0031": PROVENCE, "as-2026-0031": ILE_DE_FRANCE, "as-2026-0044": ILE_DE_FRANCE,
              "av-vie-cn-2026": AIRBUS, "av-vie-cn-2027": AIRBUS}
# Fixed ids, so that the catalogue is the same every time it is written.
_NAMESPACE = uuid.UUID("6f1d3c52-4a7e-4c55-9e0f-2b8a9d6c1e01")


@dataclass(frozen=True)
class Example:
    cluster: str
    producer: str
    data: dict[str, Any]


def _staff(cluster: str, data: dict[str, Any]) -> Example:
    return Example(cluster, "staff", data)


REGISTERED = {
    "company_id": "732 829 320 00074", "legal_name": "Figeac Usinage Composites", "region": "Occitanie",
    "clusters": [AV], "staff_awu": 38.5, "turnover_cents": 640000000, "balance_sheet_cents": 410000000,
    "accounts_year": 2025,
    # A venture-capital fund may hold up to 50 % without the company losing its autonomy.
    "holdings": [{"holder": "Garonne Ventures", "holder_kind": "venture_capital", "share_percent": 30}],
    "contact": {"name": "Claire Dubois", "email": "claire.dubois@figeac-usinage.example"},
}


def _assessed() -> dict[str, Any]:
    """What enrolment answers to REGISTERED: the SME rule of the enrolment domain itself."""
    result = assess(staff_awu=REGISTERED["staff_awu"], turnover_cents=REGISTERED["turnover_cents"],
                    balance_sheet_cents=REGISTERED["balance_sheet_cents"],
                    accounts_year=REGISTERED["accounts_year"],
                    holdings=[Holding(**holding) for holding in REGISTERED["holdings"]])
    return {"siren": FIGEAC, "legal_name": REGISTERED["legal_name"], "region": REGISTERED["region"],
            "clusters": REGISTERED["clusters"], "sme_category": result.category.value,
            "accounts_year": result.accounts_year, "staff_awu": result.staff_awu,
            "turnover_cents": result.turnover_cents, "balance_sheet_cents": result.balance_sheet_cents,
            "reasons": list(result.reasons)}


# ---- the application's journey: one line of its audit trail per status ------------------------

_FROM = {"applied": None, "eligible": "applied", "ineligible": "applied", "enrolled": "eligible",
         "waitlisted": "eligible", "denied": "eligible", "active": "enrolled", "completed": "active",
         "withdrawn": "enrolled"}
_BY_AND_WHY = {
    "applied": ("enrolment", ["application received"]),
    "eligible": ("enrolment", ["every eligibility rule is met"]),
    "ineligible": ("enrolment",
                   ["company 552032534 is not a member of pegase, which runs PG-GROWTH-CONTRACT"]),
    "enrolled": ("pg-staff-03", ["strong growth plan"]),
    "waitlisted": ("pg-staff-03", ["strong growth plan", "PG-GROWTH-CONTRACT is full (4 places)"]),
    "denied": ("pg-staff-03", ["growth plan not yet mature"]),
    "active": ("pg-staff-03", ["participation started"]),
    "completed": ("pg-staff-03", ["programme completed"]),
    "withdrawn": ("pg-staff-03", ["company withdrew: takeover"]),
}


def _transition(status: str) -> dict[str, Any]:
    by, reasons = _BY_AND_WHY[status]
    return {"application_id": "pg-2026-0007", "siren": PROVENCE, "legal_name": "Provence Avionique",
            "cluster": PG, "programme": "PG-GROWTH-CONTRACT", "programme_kind": "financing",
            "cohort": "PG-GROWTH-CONTRACT-2026", "from_status": _FROM[status], "to_status": status,
            "at": "2026-03-09T10:02:11Z", "by": by, "reasons": reasons, "target_country": None,
            "project": None}


# ---- the financing service: a case and its follow-up ------------------------------------------

_CASE = {"case_id": "av-2026-0142", "siren": FIGEAC, "cluster": AV, "programme": "AV-RD-LOAN",
         "cohort": "AV-RD-LOAN-2026", "kind": "rd_loan", "stage": "disbursing", "partner": "banque-garonne",
         "at": "2026-05-04T08:12:00Z", "by": "banque-garonne",
         "summary": "tranche 1 of 250,000.00 € disbursed; 200,000.00 € remaining",
         "requested_cents": 50000000, "awarded_cents": 45000000, "disbursed_cents": 25000000,
         "remaining_cents": 20000000}
_CASE_OPENED = _CASE | {"stage": "opened", "partner": None, "at": "2026-03-16T09:00:00Z", "by": "financing",
                        "summary": "rd_loan case opened for AV-RD-LOAN", "requested_cents": 0,
                        "awarded_cents": 0, "disbursed_cents": 0, "remaining_cents": 0}
_CASE_CLOSED = _CASE | {"stage": "disbursed", "at": "2027-06-30T15:00:00Z", "by": "enrolment",
                        "summary": "closed: application completed", "disbursed_cents": 45000000,
                        "remaining_cents": 0}
_CASE_REMINDER = {"case_id": "av-2026-0142", "siren": FIGEAC, "cluster": AV, "programme": "AV-RD-LOAN",
                  "cohort": "AV-RD-LOAN-2026", "reason": "requirement_overdue", "due_on": "2026-09-30",
                  "owner": "av-staff-01", "requirement_id": "progress-report-1", "checkpoint": None,
                  "detail": "report 'R&D progress report' of case av-2026-0142 was due on 2026-09-30 "
                            "and is open"}

# ---- the export service: a support and its follow-up ----------------------------------------

_SUPPORT = {"support_id": "av-2026-0201", "siren": FIGEAC, "cluster": AV, "programme": "AV-VIE-RELAY",
            "cohort": "AV-VIE-RELAY-2026", "kind": "vie_relay", "target_country": "CN", "status": "assigned",
            "unit_id": "av-vie-cn-2026", "partner": "vie-relay-cn", "waiting_since": None,
            "at": "2027-01-11T09:30:00Z", "by": "export",
            "summary": "place on relay mission av-vie-cn-2026 (CN), run by vie-relay-cn: place freed on "
                       "av-vie-cn-2026 by support av-2026-0188 (withdrawn)",
            "leads": 0, "meetings": 0, "contracts": 0, "contracted_cents": 0, "contract_countries": []}
_SUPPORT_OPENED = _SUPPORT | {"status": "opened", "unit_id": None, "partner": None,
                              "at": "2026-09-14T08:00:00Z",
                              "summary": "vie_relay support opened for AV-VIE-RELAY (CN)"}
_SUPPORT_WAITING = _SUPPORT_OPENED | {"status": "waiting", "waiting_since": "2026-09-14T08:00:00Z",
                                      "summary": "waiting for a place: every relay mission in CN is full"}
_SUPPORT_PROGRESSED = _SUPPORT | {"at": "2027-02-01T10:00:00Z", "by": "vie-relay-cn", "leads": 1,
                                  "summary": "lead comac-cabin reported in CN (COMAC)"}
_SUPPORT_CLOSED = _SUPPORT | {"status": "closed", "at": "2028-03-01T09:00:00Z", "by": "enrolment",
                              "summary": "closed: application completed", "leads": 1, "meetings": 1}
_SUPPORT_REMINDER = {
    "support_id": "av-2026-0201", "siren": FIGEAC, "cluster": AV, "programme": "AV-VIE-RELAY",
    "cohort": "AV-VIE-RELAY-2026", "target_country": "CN", "reason": "checkpoint_due",
    "checkpoint": "month_6", "due_on": "2027-06-01", "owner": "staff",
    "detail": "outcome checkpoint month_6 of support av-2026-0201 is due on 2027-06-01: record the export "
              "turnover, the countries served and the contracts to date"}

EXAMPLES: dict[str, Example] = {
    # enrolment: cluster staff
    "envol.company.registered.v1": _staff(AV, REGISTERED),
    "envol.application.submitted.v1": _staff(AV, {
        "application_id": "av-2026-0142", "company_id": FIGEAC, "programme": "AV-RD-LOAN",
        "applied_on": "2026-03-02",
        "project": {"reference": "FUI-AAP31-0042", "call": "FUI AAP 31", "labelling_cluster": AV,
                    "label_date": "2025-11-03", "funder": "Bpifrance"}}),
    "envol.application.reviewed.v1": _staff(PG, {"application_id": "pg-2026-0007", "decision": "accept",
                                                 "reviewer": "pg-staff-03", "reason": "strong growth plan"}),
    "envol.participation.started.v1": _staff(PG, {"application_id": "pg-2026-0007", "by": "pg-staff-03"}),
    "envol.participation.finished.v1": _staff(PG, {"application_id": "pg-2026-0007", "by": "pg-staff-03",
                                                   "reason": "programme completed"}),
    "envol.withdrawal.requested.v1": _staff(AS, {"application_id": "as-2026-0031", "by": "as-staff-01",
                                                 "reason": "company withdrew: takeover"}),
    # enrolment: the service
    "envol.company.assessed.v1": Example(AV, "enrolment", _assessed()),
    **{model.type: Example(PG, "enrolment", _transition(status))
       for status, model in en.TRANSITION_EVENTS.items()},
    "envol.event.rejected.v1": Example(PG, "staff", {
        "rejected_event_id": "7b0f8d0e-3a55-4f0a-9a43-52f1c1c0e6a2",
        "rejected_type": "envol.participation.started.v1",
        "rejected_subject": "envol.pegase.staff.participation.started", "service": "enrolment",
        "reason": "application pg-2026-0007 cannot go from eligible to active; allowed: denied, enrolled, "
                  "waitlisted, withdrawn", "dead_lettered": False}),
    # financing: cluster staff
    "envol.financing.case.assigned.v1": _staff(AV, {"case_id": "av-2026-0142", "partner": "banque-garonne",
                                                    "requested_cents": 50000000, "by": "av-staff-01"}),
    "envol.financing.requirement.added.v1": _staff(AV, {
        "case_id": "av-2026-0142", "requirement_id": "progress-report-1", "kind": "report",
        "title": "R&D progress report", "due_on": "2026-09-30", "owner": "av-staff-01", "gates_tranche": 2}),
    "envol.financing.requirement.updated.v1": _staff(AV, {
        "case_id": "av-2026-0142", "requirement_id": "progress-report-1", "status": "complete",
        "on": "2026-09-28", "note": "received"}),
    "envol.financing.checkpoint.recorded.v1": _staff(AV, {
        "case_id": "av-2026-0142", "checkpoint": "baseline", "recorded_on": "2026-03-20",
        "raised_to_date_cents": 20000000}),
    "envol.growth.contract.signed.v1": _staff(PG, {
        "case_id": "pg-2026-0007", "signed_on": "2026-04-02", "years": 3,
        "objectives": [{"objective_id": "export-40", "description": "40 % of turnover abroad"}],
        "levers": [{"lever": "financing", "description": "equity round", "amount_cents": 150000000},
                   {"lever": "region", "description": "Région Sud innovation aid"}]}),
    "envol.growth.milestone.reviewed.v1": _staff(PG, {
        "case_id": "pg-2026-0007", "objective_id": "export-40", "reviewed_on": "2026-10-01",
        "outcome": "on_track"}),
    "envol.financing.action.recorded.v1": _staff(AS, {
        "case_id": "as-2026-0031", "action": "introduction to two regional funds", "on": "2026-05-12",
        "outcome": "term sheet", "amount_obtained_cents": 60000000}),
    # financing: a bank, the investors' club, a coach
    "envol.loan.request.received.v1": Example(AV, "banque-garonne", {
        "case_id": "av-2026-0142", "bank_reference": "bg-2026-117", "received_on": "2026-04-01"}),
    "envol.loan.decided.v1": Example(AV, "banque-garonne", {
        "case_id": "av-2026-0142", "decision": "granted", "decided_on": "2026-04-20",
        "reason": "sound project", "awarded_cents": 45000000, "rate_bps": 250, "duration_months": 60,
        "tranches_planned": 2}),
    "envol.loan.tranche.disbursed.v1": Example(AV, "banque-garonne", {
        "case_id": "av-2026-0142", "tranche": 1, "amount_cents": 25000000, "disbursed_on": "2026-05-04"}),
    "envol.club.introduction.made.v1": Example(AV, "av-investors-club", {
        "case_id": "av-2026-0150", "investor": "Garonne Ventures", "introduced_on": "2026-04-01"}),
    "envol.club.pitch.scheduled.v1": Example(AV, "av-investors-club", {
        "case_id": "av-2026-0150", "session_id": "pitch-2026-05", "scheduled_on": "2026-05-12"}),
    "envol.club.pitch.held.v1": Example(AV, "av-investors-club", {
        "case_id": "av-2026-0150", "session_id": "pitch-2026-05", "held_on": "2026-05-12",
        "investors_present": 9}),
    "envol.club.interest.expressed.v1": Example(AV, "av-investors-club", {
        "case_id": "av-2026-0150", "investor": "Garonne Ventures", "expressed_on": "2026-05-20",
        "amount_cents": 80000000}),
    "envol.club.round.closed.v1": Example(AV, "av-investors-club", {
        "case_id": "av-2026-0150", "closed_on": "2026-07-10", "amount_raised_cents": 120000000,
        "investors": ["Garonne Ventures", "Sud Angels"]}),
    "envol.coaching.session.held.v1": Example(AV, "finance-coach-toulouse", {
        "case_id": "av-2026-0160", "held_on": "2026-04-02", "topics": ["financing plan"], "hours": 3}),
    "envol.coaching.deliverable.delivered.v1": Example(AV, "finance-coach-toulouse", {
        "case_id": "av-2026-0160", "deliverable": "data_room", "delivered_on": "2026-06-15"}),
    # financing: the service
    "envol.case.opened.v1": Example(AV, "financing", _CASE_OPENED),
    "envol.case.progressed.v1": Example(AV, "financing", _CASE | {"fact": "loan.tranche.disbursed"}),
    "envol.case.closed.v1": Example(AV, "financing", _CASE_CLOSED),
    "envol.case.reminder.due.v1": Example(AV, "financing", _CASE_REMINDER),
    "envol.case.escalation.raised.v1": Example(AV, "financing",
                                               _CASE_REMINDER | {"reminded_on": "2026-10-01"}),
    # export: cluster staff
    "envol.export.mission.opened.v1": _staff(AV, {
        "mission_id": "av-vie-cn-2027", "programme": "AV-VIE-RELAY", "country": "CN", "host_siren": AIRBUS,
        "host_company": "Airbus (final assembly line, Tianjin)", "volunteer_id": "vie-av-cn-02",
        "starts_on": "2027-01-04", "ends_on": "2028-01-03", "capacity": 3, "relay": "vie-relay-cn",
        "by": "av-staff-01"}),
    "envol.export.mission.ended.v1": _staff(AV, {
        "mission_id": "av-vie-cn-2026", "ended_on": "2027-03-31",
        "reason": "the volunteer ends the mission early", "by": "av-staff-01"}),
    "envol.export.checkpoint.recorded.v1": _staff(AV, {
        "support_id": "av-2026-0207", "checkpoint": "month_6", "recorded_on": "2027-05-03",
        "export_turnover_cents": 210000000, "countries_served": ["BE", "ES", "DE", "GB"],
        "contracts_to_date": 2, "note": "declared by the company"}),
    # export: relays, desks, CCIs, and contracts from any of them (or staff)
    "envol.export.contract.signed.v1": Example(AV, "vie-relay-de", {
        "support_id": "av-2026-0207", "contract_id": "lht-2026-01", "country": "DE",
        "buyer": "Lufthansa Technik", "signed_on": "2026-12-14", "amount_cents": 45000000}),
    "envol.relay.lead.reported.v1": Example(AV, "vie-relay-cn", {
        "support_id": "av-2026-0201", "lead_id": "comac-cabin", "country": "CN", "buyer": "COMAC",
        "reported_on": "2026-12-01", "estimated_cents": 120000000}),
    "envol.relay.meeting.held.v1": Example(AV, "vie-relay-cn", {
        "support_id": "av-2026-0201", "country": "CN", "organisation": "COMAC", "held_on": "2026-12-10",
        "lead_id": "comac-cabin"}),
    "envol.desk.prospects.delivered.v1": Example(PG, "pg-comptoir-sg", {
        "support_id": "pg-2026-0031", "list_id": "mro-sg-1", "country": "SG", "prospects": 24,
        "delivered_on": "2026-12-02"}),
    "envol.desk.meeting.arranged.v1": Example(PG, "pg-comptoir-sg", {
        "support_id": "pg-2026-0031", "country": "SG", "organisation": "ST Engineering Aerospace",
        "held_on": "2026-12-09"}),
    "envol.desk.setup.completed.v1": Example(PG, "pg-comptoir-sg", {
        "support_id": "pg-2026-0031", "country": "SG", "setup": "office", "completed_on": "2027-03-01"}),
    "envol.cci.workshop.attended.v1": Example(AS, "cci-paris-idf", {
        "support_id": "as-2026-0044", "workshop_id": "action-plan", "attended_on": "2026-12-08",
        "attendees": 2}),
    "envol.cci.strategy.delivered.v1": Example(AS, "cci-paris-idf", {
        "support_id": "as-2026-0044", "delivered_on": "2027-06-15", "priority_countries": ["CA", "US"]}),
    # outcomes: cluster staff record the comparison group's checkpoints
    "envol.outcomes.comparison.recorded.v1": _staff(PG, {
        "application_id": "pg-2026-0007", "checkpoint": "month_6", "recorded_on": "2026-09-07",
        "value_cents": 35000000, "note": "waitlisted: export turnover declared by the company"}),
    # export: the service
    "envol.support.opened.v1": Example(AV, "export", _SUPPORT_OPENED),
    "envol.support.assigned.v1": Example(AV, "export", _SUPPORT),
    "envol.support.waitlisted.v1": Example(AV, "export", _SUPPORT_WAITING),
    "envol.support.progressed.v1": Example(AV, "export",
                                           _SUPPORT_PROGRESSED | {"fact": "relay.lead.reported"}),
    "envol.support.closed.v1": Example(AV, "export", _SUPPORT_CLOSED),
    "envol.support.reminder.due.v1": Example(AV, "export", _SUPPORT_REMINDER),
    "envol.support.escalation.raised.v1": Example(AV, "export",
                                                  _SUPPORT_REMINDER | {"reminded_on": "2027-06-08"}),
}

_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_ID_FIELDS = ("application_id", "case_id", "support_id", "mission_id")


def _days_in(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [day for item in value.values() for day in _days_in(item)]
    if isinstance(value, list):
        return [day for item in value for day in _days_in(item)]
    return [value] if isinstance(value, str) and _DAY.match(value) else []


def _journey(type_: str, data: dict[str, Any]) -> str:
    """The application, case, support or mission the example is about."""
    if type_ == "envol.event.rejected.v1":
        return "pg-2026-0007"  # the refused event's
    return next((data[name] for name in _ID_FIELDS if name in data), "")


def _company(type_: str, data: dict[str, Any]) -> str:
    """The envelope's subject: the SIREN of the company the example is about."""
    if "company_id" in data:
        return siren_of(data["company_id"])
    return data.get("siren") or COMPANY_OF[_journey(type_, data)]


def _id(*parts: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, "/".join(parts)))


def message(type_: str) -> tuple[str, dict[str, Any]]:
    """The subject and the whole CloudEvent of `type_`'s example, the same every time."""
    example = EXAMPLES[type_]
    data = registered_types()[type_].model_validate(example.data, strict=False)  # a wrong example fails here
    # When it happened: the service's own time, else the last day the data mentions.
    time = example.data.get("at") or f"{max(_days_in(example.data), default='2026-03-02')}T16:30:00+01:00"
    # A service publishes every field, nulls included; a partner may leave optional ones out.
    own = type_ in PUBLISHED_BY or type_ == "envol.event.rejected.v1"
    envelope = CloudEvent(
        specversion="1.0", id=_id(type_), type=type_, time=time, subject=_company(type_, example.data),
        source=f"/envol/{example.cluster}/{PUBLISHED_BY.get(type_, 'enrolment')}" if own
        else f"/partners/{example.cluster}/{example.producer}",
        datacontenttype="application/json", data=data.model_dump(mode="json") if own else example.data,
        cluster=example.cluster, correlationid=_id("journey", _journey(type_, example.data)),
        causationid=_id("cause", type_) if own else None,
    )
    return subject_for(example.cluster, example.producer, type_), envelope.model_dump(mode="json",
                                                                                       exclude_none=True)


# One request of every query, as a staff tool would send it (checked against the request models).
QUERY_EXAMPLES: dict[str, dict[str, dict[str, Any]]] = {
    "enrolment": {"application": {"application_id": "pg-2026-0007"},
                  "company": {"company_id": "552 032 534"}},
    "financing": {"case": {"case_id": "av-2026-0142"}, "company": {"company_id": FIGEAC},
                  "figures": {"programme": "AV-RD-LOAN", "cohort": "AV-RD-LOAN-2026"}},
    "export": {"support": {"support_id": "av-2026-0201"}, "company": {"company_id": FIGEAC},
               "unit": {"unit_id": "av-vie-cn-2026"}, "units": {"programme": "AV-VIE-RELAY"},
               "figures": {"country": "CN"}},
    "outcomes": {"report": {"from": "2026-01-01", "to": "2026-12-31"}, "company": {"company_id": FIGEAC}},
}
