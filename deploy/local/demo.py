"""The Envol demo: three clusters' staff tools, a partner bank, the investors' club, VIE relays
abroad and an export desk publish a season of SME applications, the financing and the export
support that follow.

    python -m deploy.local.demo [--nats-url URL [--credentials FILE]] [--data-dir DIR] [--timeout SECONDS]
                                [--report-json FILE]

It talks to Envol exactly as partner systems would, and doubles as an example for partner
developers: plain nats-py, hand-built CloudEvents 1.0 JSON, no Envol code imported.

What a partner needs to know, all of it used below:
- Connect as your own NATS user, ``<cluster>-<producer>`` (``pegase-staff``,
  ``aerospace-valley-banque-garonne``), with its password and its own reply prefix
  ``_INBOX_<user>``: NATS lets each user publish its own events only. The local stack keeps
  every user's password in <data dir>/nats-credentials.json (stack.json says where).
- Publish with JetStream (`js.publish`) on ``envol.<cluster>.<producer>.<event name>``, e.g.
  ``envol.pegase.staff.application.submitted`` or
  ``envol.aerospace-valley.banque-garonne.loan.decided``: ``<producer>`` is the partner's own
  token (``staff`` for the clusters' staff tools, the bank's, the club's, the relay's or the
  desk's id). JetStream's
  acknowledgement means Envol has the event durably. Set the ``Nats-Msg-Id`` header to the
  event id: a retried publish is then stored once.
- The body is a CloudEvents 1.0 envelope in structured JSON mode. ``type`` carries the major
  version (``envol.application.submitted.v1``), ``subject`` is the company's SIREN,
  ``cluster`` repeats the cluster of the subject, ``correlationid`` names one journey of one
  company, ``data`` follows the event's schema (money in euro cents, dates ISO 8601).
- Envol answers on ``envol.<cluster>.enrolment.>``, ``envol.<cluster>.financing.>`` and
  ``envol.<cluster>.export.>`` (what happened, each event carrying the ``causationid`` of the
  event that caused it; reminders
  and escalations, raised by the clock, carry none) and, when it refuses an event, on
  ``envol.<cluster>.<producer>.event.rejected`` with the reason. Staff follow their cluster's
  events with a subscription on ``envol.<cluster>.>``, a partner its own rejections. (The demo
  reads the whole stream ENVOL_EVENTS from its start, as the operator: the ``provisioner`` user.)
- A financing case's id, or an export support's, is the id of the application whose
  enrolment opened it: staff hand it to the partner serving the case or the support.

The scenario: Aerospace Valley, Pégase and ASTech register 16 member SMEs and their
applications; reviewers accept or deny; participations start; one company withdraws and the
waitlisted one takes its place. Some applications are ineligible on purpose, and four events
are refused on purpose (a malformed registration, an event of an unknown version, an
application for a company the cluster never registered, a reviewer's mistake). Then
financing: Aerospace Valley's staff hand an R&D loan to Banque Garonne with two
requirements, one of them long overdue (Envol reminds, then escalates); the
bank grants the loan and disburses it in two tranches, the second one refused once because
the progress report gating it is not in yet; the investors' club takes an SME from
introduction to a closed round; Pégase signs a growth contract. Then export: three SMEs are
accepted one after the other for the China VIE relay, which has two places: the third waits,
and gets the place when one of the first two withdraws (the China relay then reports a lead
for it); the Germany relay reports a lead, a meeting and a contract signed in Germany for
another SME, and the China relay's report about that SME is refused (wrong relay); Pégase's
India desk delivers a prospect list and arranges a meeting. Then it prints what Envol decided,
per cluster.

Each run uses fresh event and application (hence case) ids, so it can run again against the
same stack. Envol allows one live application per company and programme, and places are
limited: so a run first withdraws the applications an earlier run of the demo left open,
which closes their financing cases and export supports (freeing their places on relay
missions, desks and cohorts) before anything new is enrolled.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import nats
from nats.aio.client import Client, ErrorCallback
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

from deploy.local.stack_control import StartupError, check_version, readiness

ROOT = Path(__file__).resolve().parents[2]
EVENTS_STREAM = "ENVOL_EVENTS"
DEAD_LETTER_STREAM = "ENVOL_DEAD_LETTERS"
PRODUCER = "staff"
# The partners of the financing story, each publishing under its own producer token.
BANK = "banque-garonne"
CLUB = "av-investors-club"
# The partners of the export story (services/export/envol_export/partners/*.toml): the VIE
# relays in China and Germany of Aerospace Valley, and Pégase's export desk in India.
RELAY_CN, RELAY_DE, DESK_IN = "vie-relay-cn", "vie-relay-de", "pg-comptoir-in"
# Envol's answers, and the refusals of what each of the demo's partners sent. The filters of
# one consumer must not overlap: each partner's rejections are named, not `envol.*.*.event.rejected`
# (which would overlap the services' `>`). A real partner would follow its own only.
OUTCOME_SUBJECTS = ["envol.*.enrolment.>", "envol.*.financing.>", "envol.*.export.>",
                    *(f"envol.*.{producer}.event.rejected"
                      for producer in (PRODUCER, BANK, CLUB, RELAY_CN, RELAY_DE, DESK_IN))]
# An application stays "live" (counts against capacity and the one-application rule) in these.
LIVE = {"applied", "eligible", "waitlisted", "enrolled", "active"}

# A date inside every programme's window of the shipped catalogue: the story stays the same
# whatever day the demo runs.
APPLIED_ON = "2026-03-02"

CLUSTERS = {
    "aerospace-valley": "Aerospace Valley",
    "pegase": "Pégase",
    "astech": "ASTech",
}


# ---- the scenario ---------------------------------------------------------------------
# Fictitious companies; their SIRENs are fictitious too but carry a valid Luhn check digit.


@dataclass(frozen=True)
class Company:
    key: str
    siren: str
    name: str
    town: str
    region: str
    cluster: str
    staff_awu: float
    turnover_eur: int
    balance_sheet_eur: int
    holdings: tuple[dict[str, Any], ...] = ()


@dataclass(frozen=True)
class Application:
    key: str
    company: str
    cluster: str
    programme: str
    target_country: str | None = None
    project: dict[str, Any] | None = None


COMPANIES = [
    # Aerospace Valley: Occitanie and Nouvelle-Aquitaine
    Company("garonne", "459880001", "Composites Garonne", "Colomiers", "Occitanie",
            "aerospace-valley", 38, 7_200_000, 5_100_000,
            # A venture capital fund up to 50 % leaves the company autonomous.
            ({"holder": "Occitanie Aéro Capital", "holder_kind": "venture_capital", "share_percent": 32},)),
    Company("aquitaine", "728804832", "Aquitaine Usinage de Précision", "Mérignac",
            "Nouvelle-Aquitaine", "aerospace-valley", 126, 21_500_000, 16_800_000),
    Company("lauragais", "974465221", "Lauragais Avionique", "Castanet-Tolosan", "Occitanie",
            "aerospace-valley", 14, 2_400_000, 1_900_000),
    Company("bigorre", "986956811", "Bigorre Drones Systèmes", "Tarbes", "Occitanie",
            "aerospace-valley", 21, 3_100_000, 2_200_000),
    # Small on its own, but 30 % held by a large group: a partner enterprise, whose figures
    # count for 30 % and take it far past the SME ceilings.
    Company("adour", "437756844", "Adour Aérostructures", "Bayonne", "Nouvelle-Aquitaine",
            "aerospace-valley", 35, 8_000_000, 6_500_000,
            ({"holder": "Groupe Altaïr Aerospace", "holder_kind": "enterprise", "share_percent": 30,
              "holder_staff_awu": 11_800, "holder_turnover_cents": 2_300_000_000_00,
              "holder_balance_sheet_cents": 2_900_000_000_00},)),
    # Three SMEs bound for China, where the VIE relay mission has two places.
    Company("quercy", "869879734", "Quercy Outillage Composite", "Figeac", "Occitanie",
            "aerospace-valley", 46, 8_900_000, 6_100_000),
    Company("landes", "753645563", "Landes Harnais Électriques", "Mont-de-Marsan",
            "Nouvelle-Aquitaine", "aerospace-valley", 58, 12_400_000, 9_800_000),
    Company("tarn", "815188446", "Tarn Revêtements Aéro", "Albi", "Occitanie",
            "aerospace-valley", 24, 3_700_000, 2_600_000),
    # Pégase: Provence-Alpes-Côte d'Azur
    Company("marignane", "599687456", "Provence Hélicoptères Services", "Marignane",
            "Provence-Alpes-Côte d'Azur", "pegase", 85, 14_300_000, 11_000_000),
    Company("azur", "864539838", "Optique Spatiale d'Azur", "Cannes",
            "Provence-Alpes-Côte d'Azur", "pegase", 42, 6_500_000, 5_200_000),
    Company("calanques", "958880734", "Calanques Robotique", "Marseille",
            "Provence-Alpes-Côte d'Azur", "pegase", 18, 2_900_000, 2_100_000),
    Company("var", "892027681", "Var Composites Aéro", "La Seyne-sur-Mer",
            "Provence-Alpes-Côte d'Azur", "pegase", 27, 4_100_000, 3_300_000),
    Company("durance", "622034072", "Durance Capteurs", "Pertuis",
            "Provence-Alpes-Côte d'Azur", "pegase", 9, 1_600_000, 1_200_000),
    # ASTech: Île-de-France
    Company("saclay", "303402200", "Saclay Propulsion Électrique", "Palaiseau", "Île-de-France",
            "astech", 23, 3_200_000, 4_800_000,
            ({"holder": "Saclay Angels", "holder_kind": "business_angel", "share_percent": 35},)),
    Company("velizy", "408345478", "Vélizy Systèmes Embarqués", "Vélizy-Villacoublay",
            "Île-de-France", "astech", 64, 11_800_000, 9_400_000),
    Company("argenteuil", "448628073", "Câblage Aéronautique Francilien", "Argenteuil",
            "Île-de-France", "astech", 31, 5_400_000, 4_000_000),
]
COMPANY = {c.key: c for c in COMPANIES}

RD_PROJECT = {
    "reference": "PSPC-REG-OCC-2025-017",
    "call": "PSPC-Régions Occitanie 2025, 2nd wave",
    "labelling_cluster": "aerospace-valley",
    "label_date": "2025-06-20",
    "funder": "Bpifrance and Région Occitanie",
}

APPLICATIONS = [
    Application("garonne-rd", "garonne", "aerospace-valley", "AV-RD-LOAN", project=RD_PROJECT),
    Application("aquitaine-vie", "aquitaine", "aerospace-valley", "AV-VIE-RELAY", target_country="DE"),
    # R&D loans need a publicly funded project: this one has none.
    Application("lauragais-rd", "lauragais", "aerospace-valley", "AV-RD-LOAN"),
    # The VIE relay serves Canada, China, Brazil and Germany, not the United States.
    Application("bigorre-vie", "bigorre", "aerospace-valley", "AV-VIE-RELAY", target_country="US"),
    Application("adour-club", "adour", "aerospace-valley", "AV-INVESTORS-CLUB"),
    # Its R&D loan application fails, but the investors' club takes it to a funding round.
    Application("lauragais-club", "lauragais", "aerospace-valley", "AV-INVESTORS-CLUB"),
    # The China relay mission has two places: accepted in this order, the third waits.
    Application("quercy-vie", "quercy", "aerospace-valley", "AV-VIE-RELAY", target_country="CN"),
    Application("landes-vie", "landes", "aerospace-valley", "AV-VIE-RELAY", target_country="CN"),
    Application("tarn-vie", "tarn", "aerospace-valley", "AV-VIE-RELAY", target_country="CN"),
    # Five growth contracts accepted in this order; the programme has four places.
    Application("marignane-growth", "marignane", "pegase", "PG-GROWTH-CONTRACT"),
    Application("azur-growth", "azur", "pegase", "PG-GROWTH-CONTRACT"),
    Application("calanques-growth", "calanques", "pegase", "PG-GROWTH-CONTRACT"),
    Application("var-growth", "var", "pegase", "PG-GROWTH-CONTRACT"),
    Application("durance-growth", "durance", "pegase", "PG-GROWTH-CONTRACT"),
    Application("calanques-desks", "calanques", "pegase", "PG-EXPORT-DESKS", target_country="SG"),
    Application("azur-desks", "azur", "pegase", "PG-EXPORT-DESKS", target_country="IN"),
    # Pégase's staff applying for an ASTech member it never registered: each cluster applies
    # only for the companies it registered itself, so Envol refuses it.
    Application("argenteuil-desks", "argenteuil", "pegase", "PG-EXPORT-DESKS", target_country="MA"),
    Application("saclay-financing", "saclay", "astech", "AS-PRIVATE-FINANCING"),
    Application("velizy-cci", "velizy", "astech", "AS-CCI-INTERNATIONAL", target_country="CA"),
]

REVIEWERS = {"aerospace-valley": "av-financing-committee", "pegase": "pg-growth-committee",
             "astech": "as-business-advisor-07"}


# ---- publishing, as a partner system ---------------------------------------------------

OPERATOR = "provisioner"  # the one user that may read the whole stream (JetStream API)


class Connections:
    """One NATS connection per user (``<cluster>-<producer>``), as each partner's own system
    has; with no passwords (a server without permissions) everyone shares one."""

    def __init__(self, url: str, passwords: dict[str, str] | None, error_cb: ErrorCallback) -> None:
        self.url, self.passwords, self.error_cb = url, passwords, error_cb
        self.clients: dict[str, Client] = {}

    async def client(self, user: str) -> Client:
        key = user if self.passwords is not None else ""
        if key in self.clients:
            return self.clients[key]
        login: dict[str, Any] = {}
        if self.passwords is not None:
            if user not in self.passwords:
                raise LookupError(f"no NATS user {user} in the credentials")
            login = {"user": user, "password": self.passwords[user], "inbox_prefix": f"_INBOX_{user}"}
        self.clients[key] = await nats.connect(self.url, connect_timeout=5, max_reconnect_attempts=3,
                                               reconnect_time_wait=1, error_cb=self.error_cb, **login)
        return self.clients[key]

    async def jetstream(self, user: str) -> JetStreamContext:
        return (await self.client(user)).jetstream()

    async def close(self) -> None:
        for client in self.clients.values():
            with contextlib.suppress(Exception):
                await client.close()


@dataclass
class Sent:
    """An event this run published, and what it was about (for the report)."""

    id: str
    type: str
    cluster: str
    company: str
    label: str
    producer: str = PRODUCER
    case: str | None = None  # the application key, for an event about a financing case
    support: str | None = None  # the application key, for an event about an export support
    data: dict[str, Any] = field(default_factory=dict)  # what it said


class PartnerSystem:
    """A partner's system (a staff tool, a bank, the investors' club, a VIE relay, an export
    desk): it builds CloudEvents and publishes them under its own producer token."""

    def __init__(self, connections: Connections, run: str, producer: str, source: str,
                 sent: dict[str, Sent]) -> None:
        self.connections = connections  # it publishes as user <cluster>-<producer>
        self.run = run
        self.producer = producer
        self.source = source  # "{cluster}" is replaced by the event's cluster
        self.sent = sent  # shared by the demo's partners: the report reads it

    def application_id(self, application: Application) -> str:
        # Fresh per run: Envol refuses a second submission of an existing application id.
        # It is also the id of the financing case the application's enrolment opens.
        return f"demo-{self.run}-{application.key}"

    def journey(self, company: Company) -> str:
        return f"demo-{self.run}-{company.key}"

    def envelope(self, type_: str, cluster: str, siren: str, data: dict[str, Any],
                 correlation_id: str) -> dict[str, Any]:
        return {
            "specversion": "1.0",
            "id": str(uuid.uuid4()),
            "source": self.source.format(cluster=cluster),
            "type": type_,
            "time": datetime.now(UTC).isoformat(),
            "subject": siren,
            "datacontenttype": "application/json",
            "data": data,
            "cluster": cluster,
            "correlationid": correlation_id,
        }

    async def publish(self, type_: str, cluster: str, company: Company, data: dict[str, Any], label: str,
                      *, correlation_id: str | None = None, case: str | None = None,
                      support: str | None = None) -> str:
        event = self.envelope(type_, cluster, company.siren, data, correlation_id or self.journey(company))
        # The subject names the event without its "envol." prefix and ".v<major>" suffix.
        name = type_.removeprefix("envol.").rsplit(".", 1)[0]
        subject = f"envol.{cluster}.{self.producer}.{name}"
        js = await self.connections.jetstream(f"{cluster}-{self.producer}")
        await js.publish(subject, json.dumps(event).encode(), headers={"Nats-Msg-Id": event["id"]})
        self.sent[event["id"]] = Sent(event["id"], type_, cluster, company.key, label, self.producer, case,
                                      support, data)
        return str(event["id"])

    async def on_case(self, type_: str, application: Application, label: str, **data: Any) -> str:
        """A fact about the financing case opened by `application`'s enrolment. Staff hand the
        partner the case id (the application id) and the company's journey (correlation id)."""
        company = COMPANY[application.company]
        return await self.publish(type_, application.cluster, company,
                                  {"case_id": self.application_id(application), **data},
                                  f"{label} ({company.name}, {application.programme})", case=application.key)

    async def on_support(self, type_: str, application: Application, label: str, **data: Any) -> str:
        """A fact about the export support opened by `application`'s enrolment: its id is the
        application id too, and the event's subject the SME's SIREN."""
        company = COMPANY[application.company]
        return await self.publish(type_, application.cluster, company,
                                  {"support_id": self.application_id(application), **data},
                                  f"{label} ({company.name}, {application.programme})",
                                  support=application.key)


class StaffTools(PartnerSystem):
    """The three clusters' staff tools."""

    def __init__(self, connections: Connections, run: str, sent: dict[str, Sent] | None = None) -> None:
        super().__init__(connections, run, PRODUCER, "/{cluster}/staff-crm", {} if sent is None else sent)

    async def register(self, company: Company, note: str = "", **overrides: Any) -> str:
        data = {
            "company_id": company.siren,
            "legal_name": company.name,
            "region": company.region,
            "clusters": [company.cluster],
            "staff_awu": company.staff_awu,
            "turnover_cents": company.turnover_eur * 100,
            "balance_sheet_cents": company.balance_sheet_eur * 100,
            "accounts_year": 2025,
            "holdings": list(company.holdings),
            **overrides,
        }
        return await self.publish("envol.company.registered.v1", company.cluster, company, data,
                                  f"registration of {company.name}{note}")

    async def submit(self, application: Application, *, type_: str = "envol.application.submitted.v1",
                     note: str = "", **extra: Any) -> str:
        company = COMPANY[application.company]
        data: dict[str, Any] = {
            "application_id": self.application_id(application),
            "company_id": company.siren,
            "programme": application.programme,
            "applied_on": APPLIED_ON,
            **extra,
        }
        if application.target_country:
            data["target_country"] = application.target_country
        if application.project:
            data["project"] = application.project
        return await self.publish(type_, application.cluster, company, data,
                                  f"{application.programme} application of {company.name}{note}")

    async def review(self, application: Application, decision: str, reason: str) -> str:
        company = COMPANY[application.company]
        data = {"application_id": self.application_id(application), "decision": decision,
                "reviewer": REVIEWERS[application.cluster], "reason": reason}
        return await self.publish("envol.application.reviewed.v1", application.cluster, company, data,
                                  f"review ({decision}) of {application.programme} for {company.name}")

    async def start(self, application: Application) -> str:
        company = COMPANY[application.company]
        data = {"application_id": self.application_id(application), "by": REVIEWERS[application.cluster]}
        return await self.publish("envol.participation.started.v1", application.cluster, company, data,
                                  f"start of {application.programme} for {company.name}")

    async def withdraw(self, application: Application, reason: str) -> str:
        company = COMPANY[application.company]
        data = {"application_id": self.application_id(application), "by": REVIEWERS[application.cluster],
                "reason": reason}
        return await self.publish("envol.withdrawal.requested.v1", application.cluster, company, data,
                                  f"withdrawal of {company.name} from {application.programme}")


# ---- reading Envol's answers ------------------------------------------------------------


@dataclass
class Outcomes:
    """Everything Envol published about applications, financing cases, export supports and
    refusals, as it arrives."""

    transitions: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # application id ->
    journeys: dict[str, str] = field(default_factory=dict)  # application id -> correlation id
    assessments: dict[str, dict[str, Any]] = field(default_factory=dict)  # SIREN -> latest
    rejections: dict[str, dict[str, Any]] = field(default_factory=dict)  # rejected event id ->
    # case id -> the case payloads (opened, progressed, closed), each with "event" and "seq"
    cases: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    # case id -> reminders and escalations, each with "event" ("reminder" or "escalation") and "seq"
    follow_ups: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    # support id -> the support payloads (opened, assigned, waitlisted, progressed, closed), each
    # with "event", "seq" and "causation" (the id of the event that caused it)
    supports: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    caused: set[str] = field(default_factory=set)  # ids of events that caused something
    caught_up: asyncio.Event = field(default_factory=asyncio.Event)

    def record(self, event: dict[str, Any], seq: int = 0) -> None:
        """`seq`: the stream sequence, the order in which Envol stored the answers."""
        data = event["data"]
        type_ = event["type"]
        if event.get("causationid"):
            self.caused.add(event["causationid"])
        if type_ == "envol.company.assessed.v1":
            self.assessments[data["siren"]] = data
        elif type_ == "envol.event.rejected.v1":
            self.rejections[data.get("rejected_event_id") or event["id"]] = {**data, "seq": seq}
        elif type_.startswith("envol.application."):
            self.transitions.setdefault(data["application_id"], []).append(data)
            self.journeys[data["application_id"]] = event["correlationid"]
        elif type_ in ("envol.case.reminder.due.v1", "envol.case.escalation.raised.v1"):
            name = "reminder" if "reminder" in type_ else "escalation"
            self.follow_ups.setdefault(data["case_id"], []).append({**data, "event": name, "seq": seq})
        elif type_.startswith("envol.case."):
            name = type_.removeprefix("envol.case.").rsplit(".", 1)[0]  # opened, progressed, closed
            self.cases.setdefault(data["case_id"], []).append({**data, "event": name, "seq": seq})
        elif type_ in ("envol.support.reminder.due.v1", "envol.support.escalation.raised.v1"):
            pass  # an export support's first checkpoint comes due days after it opens: not in a demo run
        elif type_.startswith("envol.support."):
            name = type_.removeprefix("envol.support.").rsplit(".", 1)[0]  # opened, assigned, waitlisted…
            self.supports.setdefault(data["support_id"], []).append(
                {**data, "event": name, "seq": seq, "causation": event.get("causationid")})

    def escalated(self, case_id: str, requirement_id: str) -> bool:
        return any(f["event"] == "escalation" and f.get("requirement_id") == requirement_id
                   for f in self.follow_ups.get(case_id, []))

    def support_was(self, support_id: str, *statuses: str) -> bool:
        """Whether the support has been in one of `statuses` (assigned, waiting, closed…)."""
        return any(e["status"] in statuses for e in self.supports.get(support_id, []))

    def answered(self, event_id: str) -> bool:
        return event_id in self.caused or event_id in self.rejections

    async def follow(self, js: JetStreamContext) -> None:
        """Read the answers from the start of the stream, forever (a background task)."""
        subscription = await js.pull_subscribe(
            OUTCOME_SUBJECTS[0], stream=EVENTS_STREAM,
            # Ephemeral: NATS deletes this reader's consumer soon after the demo ends.
            config=ConsumerConfig(filter_subjects=OUTCOME_SUBJECTS, deliver_policy=DeliverPolicy.ALL,
                                  ack_policy=AckPolicy.NONE, inactive_threshold=30),
        )
        while True:
            try:
                messages = await subscription.fetch(500, timeout=0.5)
            except (TimeoutError, NatsTimeoutError):
                self.caught_up.set()
                continue
            if not messages:
                # nats-py returns an empty batch when a status (the 408 of an earlier pull request
                # that expired) comes in instead of messages: nothing new, fetch again.
                continue
            for message in messages:
                self.record(json.loads(message.data), message.metadata.sequence.stream)
            if messages[-1].metadata.num_pending == 0:
                self.caught_up.set()

    async def wait_for_answers(self, event_ids: list[str], deadline: float) -> list[str]:
        """Wait until each event has caused an answer; return those still unanswered at the deadline."""
        while True:
            missing = [i for i in event_ids if not self.answered(i)]
            if not missing or time.monotonic() > deadline:
                return missing
            await asyncio.sleep(0.1)

    async def wait_until(self, condition: Callable[[], bool], deadline: float) -> bool:
        """Wait until `condition()` holds (answers the clock raises, not an event); False at the deadline."""
        while not condition():
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.1)
        return True


# ---- the story ---------------------------------------------------------------------------


def application(key: str) -> Application:
    return next(a for a in APPLICATIONS if a.key == key)


@dataclass
class Demo:
    """The partner systems playing the story, and Envol's answers as they read them."""

    staff: StaffTools
    bank: PartnerSystem
    club: PartnerSystem
    relay_cn: PartnerSystem
    relay_de: PartnerSystem
    desk_in: PartnerSystem
    outcomes: Outcomes
    deadline: float

    async def answers(self, sent: list[str]) -> list[str]:
        """Wait for Envol's answer to each event, as partners would; return the ids still unanswered."""
        return await self.outcomes.wait_for_answers(sent, self.deadline)

    async def support_reaches(self, key: str, *statuses: str) -> bool:
        """Wait until the export support of application `key` has been in one of `statuses`."""
        support_id = self.staff.application_id(application(key))
        return await self.outcomes.wait_until(lambda: self.outcomes.support_was(support_id, *statuses),
                                              self.deadline)


async def close_earlier_runs(tools: StaffTools, outcomes: Outcomes, deadline: float) -> tuple[int, int]:
    """Withdraw the demo applications an earlier run left live, to free places and ids; return
    how many, and how many export supports that closed (freeing their places)."""
    by_siren = {c.siren: c for c in COMPANIES}
    sent, withdrawn = [], []
    for application_id, history in outcomes.transitions.items():
        last = history[-1]
        if not application_id.startswith("demo-") or last["to_status"] not in LIVE:
            continue
        company = by_siren.get(last["siren"])
        if company is None:
            continue
        data = {"application_id": application_id, "by": "envol-demo",
                "reason": "demo reset: closing an application of an earlier demo run"}
        sent.append(await tools.publish("envol.withdrawal.requested.v1", last["cluster"], company, data,
                                        f"reset of {application_id}",
                                        correlation_id=outcomes.journeys[application_id]))
        withdrawn.append(application_id)
    await outcomes.wait_for_answers(sent, deadline)
    # Their export supports close (support id = application id) and free their places on relay
    # missions, desks and cohorts: wait for it, so that this run's SMEs find them free.
    supports = [i for i in withdrawn if i in outcomes.supports]
    await outcomes.wait_until(lambda: all(outcomes.support_was(i, "closed") for i in supports), deadline)
    return len(sent), sum(outcomes.support_was(i, "closed") for i in supports)


async def act_1_registrations_and_applications(demo: Demo) -> list[str]:
    tools = demo.staff
    sent = []
    for company in COMPANIES:
        if company.key == "velizy":
            # A spreadsheet export gone wrong: French-formatted numbers where integers are due.
            # Envol refuses it (and keeps it as a dead letter); the tool is fixed and sends again.
            sent.append(await tools.register(company, " (spreadsheet export)", staff_awu="64,0",
                                             turnover_cents="11 800 000,00 €"))
        sent.append(await tools.register(company))
    for app in APPLICATIONS:
        if app.key == "calanques-desks":
            # A tool upgraded ahead of Envol sends version 2 of the event, which Envol does not
            # know yet: refused and dead-lettered; the tool falls back to v1.
            sent.append(await tools.submit(app, type_="envol.application.submitted.v2", note=" (v2)",
                                           target_countries=["SG", "MA"]))
        sent.append(await tools.submit(app))
    return await demo.answers(sent)


async def act_2_reviews(demo: Demo) -> list[str]:
    tools = demo.staff
    accepted = {
        "garonne-rd": "partner bank agreed the R&D loan for the PSPC-Régions project",
        "aquitaine-vie": "shares the Hamburg VIE with five other SMEs",
        # A reviewer's mistake: this application is ineligible; Envol refuses the decision.
        "bigorre-vie": "strong US prospects",
        "lauragais-club": "avionics start-up ready for a first equity round",
        "marignane-growth": "growth plan approved by the committee",
        "azur-growth": "growth plan approved by the committee",
        "calanques-growth": "growth plan approved by the committee",
        "var-growth": "growth plan approved by the committee",
        "durance-growth": "growth plan approved by the committee",
        "saclay-financing": "fundraising of 4 M€ planned for 2027",
        "velizy-cci": "export plan for Canada validated with the CCI",
        "azur-desks": "space optics for Indian launcher and satellite programmes",
    }
    sent = [await tools.review(application(key), "accept", reason) for key, reason in accepted.items()]
    sent.append(await tools.review(application("calanques-desks"), "deny",
                                   "no sales force planned in Singapore yet; reapply at the next session"))
    return await demo.answers(sent)


async def act_3_participation(demo: Demo) -> list[str]:
    tools = demo.staff
    sent = [await tools.start(application(key))
            for key in ("garonne-rd", "marignane-growth", "azur-growth", "saclay-financing")]
    # A place frees in the full programme: the waitlisted SME is enrolled automatically.
    sent.append(await tools.withdraw(application("var-growth"),
                                     "the company postpones its growth plan after losing a major contract"))
    return await demo.answers(sent)


# The financing story. Enrolment in a financing programme opened a case whose id is the
# application id; staff hand it to the partner serving it (the cluster's only investors' club
# serves its cases from the start).
RD_LOAN, CLUB_CASE, GROWTH_CONTRACT = "garonne-rd", "lauragais-club", "marignane-growth"
PROGRESS_REPORT, ANNUAL_ACCOUNTS = "progress-report-1", "annual-accounts-2025"
REQUESTED_CENTS = 600_000_00
AWARDED_CENTS = 500_000_00
TRANCHE_CENTS = (300_000_00, 200_000_00)
ROUND_CENTS = 1_200_000_00


def day(offset: int = 0) -> str:
    """The date `offset` days from the day the demo runs (the follow-up runs on the real clock)."""
    return (date.today() + timedelta(days=offset)).isoformat()


async def act_4_financing_cases_handed_over(demo: Demo) -> list[str]:
    staff, loan = demo.staff, application(RD_LOAN)
    # Staff act on cases once Envol has opened them: they wait for case.opened.
    cases = [staff.application_id(application(key)) for key in (RD_LOAN, CLUB_CASE, GROWTH_CONTRACT)]
    await demo.outcomes.wait_until(lambda: all(c in demo.outcomes.cases for c in cases), demo.deadline)
    sent = [
        await staff.on_case("envol.financing.case.assigned.v1", loan, f"assignment to {BANK}",
                            partner=BANK, requested_cents=REQUESTED_CENTS, by=REVIEWERS[loan.cluster]),
        await staff.on_case("envol.financing.requirement.added.v1", loan, "requirement: R&D progress report",
                            requirement_id=PROGRESS_REPORT, kind="report", title="R&D progress report",
                            due_on=day(30), owner=PRODUCER, gates_tranche=2),
        # Due six weeks ago and still missing: Envol's clock reminds its owner, then escalates.
        await staff.on_case("envol.financing.requirement.added.v1", loan,
                            "requirement: annual accounts, long overdue", requirement_id=ANNUAL_ACCOUNTS,
                            kind="report", title="annual accounts 2025", due_on=day(-45), owner=PRODUCER),
        # Pégase runs its growth contracts itself: staff record the signature.
        await staff.on_case("envol.growth.contract.signed.v1", application(GROWTH_CONTRACT),
                            "growth contract signature", signed_on=day(), years=3,
                            objectives=[
                                {"objective_id": "export-40", "description": "40 % of turnover abroad"},
                                {"objective_id": "mro-gulf", "description": "an MRO base in the Gulf"}],
                            levers=[{"lever": "financing", "description": "equity round with regional funds",
                                     "amount_cents": 2_500_000_00},
                                    {"lever": "region", "description": "Région Sud innovation aid"}]),
    ]
    return await demo.answers(sent)


async def act_5_the_bank_and_the_club(demo: Demo) -> list[str]:
    bank, club = demo.bank, demo.club
    loan, startup = application(RD_LOAN), application(CLUB_CASE)
    sent = [
        await bank.on_case("envol.loan.request.received.v1", loan, "loan request receipt",
                           bank_reference=f"bg-2026-{demo.staff.run}", received_on=day()),
        await bank.on_case("envol.loan.decided.v1", loan, "loan decision (granted)", decision="granted",
                           decided_on=day(), reason="sound R&D plan in a project co-funded by Bpifrance",
                           awarded_cents=AWARDED_CENTS, rate_bps=250, duration_months=60, tranches_planned=2),
        await bank.on_case("envol.loan.tranche.disbursed.v1", loan, "tranche 1", tranche=1,
                           amount_cents=TRANCHE_CENTS[0], disbursed_on=day()),
        # Too early: tranche 2 waits for the R&D progress report, not complete yet. Envol refuses
        # it with the reason, on envol.aerospace-valley.banque-garonne.event.rejected.
        await bank.on_case("envol.loan.tranche.disbursed.v1", loan, "tranche 2, before the progress report",
                           tranche=2, amount_cents=TRANCHE_CENTS[1], disbursed_on=day()),
        # Investors are organisations, never persons.
        await club.on_case("envol.club.introduction.made.v1", startup, "introduction to Garonne Ventures",
                           investor="Garonne Ventures", introduced_on=day()),
        await club.on_case("envol.club.pitch.scheduled.v1", startup, "pitch scheduled",
                           session_id="pitch-toulouse-1", scheduled_on=day()),
        await club.on_case("envol.club.pitch.held.v1", startup, "pitch held", session_id="pitch-toulouse-1",
                           held_on=day(), investors_present=9),
        await club.on_case("envol.club.interest.expressed.v1", startup, "interest of Garonne Ventures",
                           investor="Garonne Ventures", expressed_on=day(), amount_cents=800_000_00),
        await club.on_case("envol.club.round.closed.v1", startup, "round closed", closed_on=day(),
                           amount_raised_cents=ROUND_CENTS, investors=["Garonne Ventures", "Sud Angels"]),
    ]
    return await demo.answers(sent)


async def act_6_the_second_tranche(demo: Demo) -> list[str]:
    loan = application(RD_LOAN)
    # The progress report is in: staff say so, and once Envol has taken it the bank tries again.
    missing = await demo.answers([await demo.staff.on_case(
        "envol.financing.requirement.updated.v1", loan, "progress report complete",
        requirement_id=PROGRESS_REPORT, status="complete", on=day(), note="milestones 1 to 3 met")])
    if missing:
        return missing
    return await demo.answers([await demo.bank.on_case(
        "envol.loan.tranche.disbursed.v1", loan, "tranche 2", tranche=2, amount_cents=TRANCHE_CENTS[1],
        disbursed_on=day())])


async def act_7_follow_up(demo: Demo) -> list[str]:
    # Nobody publishes here: Envol's clock speaks. The annual accounts were due six weeks ago,
    # so the "overdue" reminder fires at once, and the escalation (due a few business days
    # after the reminder was due) right after it.
    case_id = demo.staff.application_id(application(RD_LOAN))
    if await demo.outcomes.wait_until(lambda: demo.outcomes.escalated(case_id, ANNUAL_ACCOUNTS),
                                      demo.deadline):
        return []
    return [i for i, sent in demo.staff.sent.items()  # the requirement still waiting for its escalation
            if sent.case == RD_LOAN and sent.label.startswith("requirement: annual accounts")]


# The export story. Enrolment in an export programme opened a support whose id is the
# application id; Envol gave it a place on a unit of its programme (a VIE relay mission in its
# target country, an export desk, a CCI cohort), or put it on the waiting list of the units of
# that country when all are full. Staff hand the support id to the partner serving the SME, who
# reports on it under its own producer token; Envol checks that it is the partner serving it.
# The China relay mission (av-vie-cn-2026) has two places.
CHINA = {
    "quercy-vie": "composite tooling for the Tianjin A320 final assembly line",
    "landes-vie": "wiring harnesses for Chinese cabin integrators",
    "tarn-vie": "surface treatments for COMAC's suppliers",
}
GERMANY, DESK = "aquitaine-vie", "azur-desks"
LEAD_CENTS = 600_000_00
CONTRACT_CENTS = 450_000_00


def paris_day() -> str:
    """Today in France: the export service dates a support's start and its partners' facts by
    the French calendar (a fact dated before the enrolment day is refused)."""
    return datetime.now(ZoneInfo("Europe/Paris")).date().isoformat()


async def act_8_three_smes_for_two_places_in_china(demo: Demo) -> list[str]:
    staff = demo.staff
    for key, reason in CHINA.items():
        # One at a time, looking at where Envol placed each before accepting the next: the first
        # two take the mission's places, the third waits for one.
        review = await staff.review(application(key), "accept", reason)
        if await demo.answers([review]) or not await demo.support_reaches(key, "assigned", "waiting"):
            return [review]
    return []


async def act_9_a_place_freed_in_china(demo: Demo) -> list[str]:
    leaving, waiting = application("quercy-vie"), application("tarn-vie")
    withdrawal = await demo.staff.withdraw(leaving, "its Chinese customer postponed the programme to 2028")
    # Envol closes the support of the SME that withdrew and, in the same transaction, gives its
    # place to the SME that has waited longest for China.
    if await demo.answers([withdrawal]) or not await demo.support_reaches(waiting.key, "assigned"):
        return [withdrawal]
    # The China relay now serves the SME that waited: its first lead is accepted.
    return await demo.answers([await demo.relay_cn.on_support(
        "envol.relay.lead.reported.v1", waiting, "lead: COMAC", lead_id="comac-c919-coatings", country="CN",
        buyer="COMAC", reported_on=paris_day(), estimated_cents=LEAD_CENTS)])


async def act_10_relays_and_desks_report(demo: Demo) -> list[str]:
    germany, desk, today = application(GERMANY), application(DESK), paris_day()
    de, cn, india = demo.relay_de, demo.relay_cn, demo.desk_in
    sent = [
        await de.on_support("envol.relay.lead.reported.v1", germany, "lead: MTU Aero Engines",
                            lead_id="mtu-blisk-machining", country="DE", buyer="MTU Aero Engines",
                            reported_on=today, estimated_cents=LEAD_CENTS),
        # The China relay's tool files a lead under the wrong support, the German-bound SME's:
        # Envol refuses it (another relay serves that SME), on
        # envol.aerospace-valley.vie-relay-cn.event.rejected.
        await cn.on_support("envol.relay.lead.reported.v1", germany, "lead from the China relay",
                            lead_id="avic-nacelles", country="CN", buyer="AVIC", reported_on=today),
        await de.on_support("envol.relay.meeting.held.v1", germany, "meeting: MTU Aero Engines",
                            country="DE", organisation="MTU Aero Engines", held_on=today,
                            lead_id="mtu-blisk-machining"),
        # Buyers are organisations; the amount is in euro cents.
        await de.on_support("envol.export.contract.signed.v1", germany, "contract: MTU Aero Engines",
                            contract_id="mtu-po-2026-017", country="DE", buyer="MTU Aero Engines",
                            signed_on=today, amount_cents=CONTRACT_CENTS),
        await india.on_support("envol.desk.prospects.delivered.v1", desk, "prospect list",
                               list_id="space-optics-blr", country="IN", prospects=18, delivered_on=today),
        await india.on_support("envol.desk.meeting.arranged.v1", desk, "meeting: ISRO", country="IN",
                               organisation="Indian Space Research Organisation", held_on=today),
    ]
    return await demo.answers(sent)


ACTS = (act_1_registrations_and_applications, act_2_reviews, act_3_participation,
        act_4_financing_cases_handed_over, act_5_the_bank_and_the_club, act_6_the_second_tranche,
        act_7_follow_up, act_8_three_smes_for_two_places_in_china, act_9_a_place_freed_in_china,
        act_10_relays_and_desks_report)


# ---- the report --------------------------------------------------------------------------

# Transitions whose reasons tell the story (the others say "submitted", "meets every rule").
TOLD = {"ineligible", "waitlisted", "denied", "withdrawn"}


def spaced(siren: str) -> str:
    return f"{siren[:3]} {siren[3:6]} {siren[6:]}"


MONEY = ("requested_cents", "awarded_cents", "disbursed_cents", "remaining_cents")


def euros(cents: int) -> str:
    return f"{cents // 100:,}.{cents % 100:02d} €"


def financing_case(app: Application, case_id: str, tools: StaffTools, outcomes: Outcomes) -> dict[str, Any]:
    """Where one financing case stands, and its story. `seq` (the stream sequence) orders the
    facts, refusals, reminders and escalations as Envol recorded them."""
    events = outcomes.cases[case_id]
    last = events[-1]
    follow_ups = outcomes.follow_ups.get(case_id, [])
    return {
        "case_id": case_id, "company": app.company, "cluster": app.cluster, "programme": app.programme,
        "kind": last["kind"], "stage": last["stage"], "partner": last["partner"],
        "closed": any(e["event"] == "closed" for e in events),
        **{key: last[key] for key in MONEY},
        "history": [{"seq": e["seq"], "fact": e.get("fact", f"case.{e['event']}"), "by": e["by"],
                     "stage": e["stage"], "summary": e["summary"]} for e in events],
        "refused": [{"seq": outcomes.rejections[i]["seq"], "event": sent.label, "type": sent.type,
                     "by": sent.producer, "reason": outcomes.rejections[i]["reason"]}
                    for i, sent in tools.sent.items() if sent.case == app.key and i in outcomes.rejections],
        **{f"{kind}s": [{key: f.get(key) for key in ("seq", "reason", "due_on", "owner", "requirement_id",
                                                     "checkpoint", "reminded_on", "detail")
                         if key in f}
                        for f in follow_ups if f["event"] == kind]
           for kind in ("reminder", "escalation")},
    }


def export_support(app: Application, support_id: str, tools: StaffTools,
                   outcomes: Outcomes) -> dict[str, Any]:
    """Where one export support stands, and its story: its places (waiting, assigned), the
    partners' facts, contracts and refusals, ordered by `seq` as Envol recorded them."""
    events = outcomes.supports[support_id]
    last = events[-1]
    # The status path: opened → assigned, or opened → waiting → assigned, then closed.
    path = [e["status"] for e in events if e["event"] != "progressed"]
    waitlisted = next((e for e in events if e["event"] == "waitlisted"), None)
    placed = next((e for e in events
                   if e["event"] == "assigned" and waitlisted and e["seq"] > waitlisted["seq"]), None)
    waited_s = None
    if waitlisted and placed:
        waited = datetime.fromisoformat(placed["at"]) - datetime.fromisoformat(waitlisted["waiting_since"])
        waited_s = round(waited.total_seconds(), 3)
    accepted = {e["causation"] for e in events}
    mine = [(i, sent) for i, sent in tools.sent.items() if sent.support == app.key]
    contract_keys = ("contract_id", "country", "buyer", "signed_on", "amount_cents")
    return {
        "support_id": support_id, "company": app.company, "cluster": app.cluster, "programme": app.programme,
        "kind": last["kind"], "target_country": last["target_country"], "status": last["status"],
        "unit_id": last["unit_id"], "partner": last["partner"], "closed": last["status"] == "closed",
        "path": path, "waited_for_place": waitlisted is not None, "waited_s": waited_s,
        # Units it had a place on, in order (a withdrawn SME's place stays named here).
        "units": list(dict.fromkeys(e["unit_id"] for e in events if e["unit_id"])),
        "leads": last["leads"], "meetings": last["meetings"], "contracted_cents": last["contracted_cents"],
        # The contracts Envol accepted, as their partner reported them.
        "contracts": [{key: sent.data[key] for key in contract_keys} | {"by": sent.producer}
                      for i, sent in mine
                      if sent.type == "envol.export.contract.signed.v1" and i in accepted],
        "history": [{"seq": e["seq"], "fact": e.get("fact", f"support.{e['event']}"), "by": e["by"],
                     "status": e["status"], "unit_id": e["unit_id"], "summary": e["summary"]}
                    for e in events],
        "refused": [{"seq": outcomes.rejections[i]["seq"], "event": sent.label, "type": sent.type,
                     "by": sent.producer, "reason": outcomes.rejections[i]["reason"]}
                    for i, sent in mine if i in outcomes.rejections],
    }


def build_report(tools: StaffTools, outcomes: Outcomes, missing: list[str], closed: tuple[int, int],
                 dead_letters_total: int | None) -> dict[str, Any]:
    companies = {}
    for company in COMPANIES:
        assessment = outcomes.assessments.get(company.siren, {})
        companies[company.key] = {
            "siren": company.siren, "name": company.name, "cluster": company.cluster,
            "town": company.town, "sme_category": assessment.get("sme_category"),
            "staff_awu": assessment.get("staff_awu"), "reasons": assessment.get("reasons", []),
        }
    applications = {}
    for app in APPLICATIONS:
        history = outcomes.transitions.get(tools.application_id(app), [])
        applications[app.key] = {
            "id": tools.application_id(app), "company": app.company, "cluster": app.cluster,
            "programme": app.programme,
            "path": [t["to_status"] for t in history],
            "transitions": [{"from": t["from_status"], "to": t["to_status"], "by": t["by"],
                             "reasons": t["reasons"]} for t in history],
        }
    financing = {app.key: financing_case(app, tools.application_id(app), tools, outcomes)
                 for app in APPLICATIONS if tools.application_id(app) in outcomes.cases}
    export = {app.key: export_support(app, tools.application_id(app), tools, outcomes)
              for app in APPLICATIONS if tools.application_id(app) in outcomes.supports}
    rejections = []
    for event_id, sent in tools.sent.items():
        if event_id in outcomes.rejections:
            rejection = outcomes.rejections[event_id]
            rejections.append({"event": sent.label, "type": sent.type, "cluster": sent.cluster,
                               "company": sent.company, "producer": sent.producer, "case": sent.case,
                               "support": sent.support, "reason": rejection["reason"],
                               "dead_lettered": rejection["dead_lettered"]})
    return {
        "run": tools.run,
        "complete": not missing,
        "unanswered": [tools.sent[i].label for i in missing],
        "closed_from_earlier_runs": closed[0],
        "supports_closed_from_earlier_runs": closed[1],
        "events_published": len(tools.sent),
        "companies": companies,
        "applications": applications,
        "financing": financing,
        "export": export,
        "rejections": rejections,
        "dead_letters_this_run": sum(r["dead_lettered"] for r in rejections),
        "dead_letters_total": dead_letters_total,
    }


def print_report(report: dict[str, Any]) -> None:
    out: list[str] = ["", f"Envol demo, run {report['run']}: what Envol decided", ""]
    if report["closed_from_earlier_runs"]:
        out += [f"(First withdrew {report['closed_from_earlier_runs']} application(s) left live by "
                f"earlier demo runs, which closed {report['supports_closed_from_earlier_runs']} export "
                "support(s), so places and the one-application rule start clean.)", ""]
    for cluster, cluster_name in CLUSTERS.items():
        out += ["=" * 100, f"  {cluster_name}  ({cluster})", "=" * 100]
        keys = [k for k, c in report["companies"].items() if c["cluster"] == cluster]
        keys += [a["company"] for a in report["applications"].values()
                 if a["cluster"] == cluster and a["company"] not in keys]
        for key in keys:
            company = report["companies"][key]
            category = company["sme_category"] or "not assessed"
            label = "not an SME" if category == "not_sme" else f"{category} SME"
            member = "" if company["cluster"] == cluster else f", member of {CLUSTERS[company['cluster']]}"
            out.append(f"  {company['name']}, {company['town']}{member}   SIREN {spaced(company['siren'])}   "
                       f"{label} ({company['staff_awu'] or 0:g} AWU counted)")
            if len(company["reasons"]) > 1 or category == "not_sme":
                out += [f"      · {reason}" for reason in company["reasons"]]
            for app in report["applications"].values():
                if app["company"] != key or app["cluster"] != cluster:
                    continue
                path = " → ".join(app["path"]) or "(no answer)"
                out.append(f"      {app['programme']:<22} {path}")
                for step in app["transitions"]:
                    promoted = step["to"] == "enrolled" and step["from"] == "waitlisted"
                    if step["to"] in TOLD or promoted:
                        for reason in step["reasons"]:
                            out.append(f"      {'':<22}   {step['to']}: {reason}")
        # Refusals about a financing case or an export support are told with it.
        refused = [r for r in report["rejections"]
                   if r["cluster"] == cluster and not r["case"] and not r["support"]]
        if refused:
            out.append("  Refused events:")
            for rejection in refused:
                kept = "dead-lettered" if rejection["dead_lettered"] else "not applied"
                out.append(f"    ✗ {rejection['event']} [{rejection['type']}], {kept}")
                out.append(f"        {rejection['reason']}")
        out += financing_lines(report, cluster)
        out += export_lines(report, cluster)
        out.append("")
    total = report["dead_letters_total"]
    out.append(f"{report['events_published']} events published; {len(report['rejections'])} refused, "
               f"{report['dead_letters_this_run']} of them dead-lettered"
               + (f" ({total} message(s) in {DEAD_LETTER_STREAM} in all)." if total is not None else "."))
    if report["unanswered"]:
        out.append(f"NO ANSWER YET for {len(report['unanswered'])} event(s): "
                   + "; ".join(report["unanswered"]))
        out.append("Are the services running? (python3 envol.py up)")
    print("\n".join(out), flush=True)


def financing_lines(report: dict[str, Any], cluster: str) -> list[str]:
    cases = [case for case in report["financing"].values() if case["cluster"] == cluster]
    if not cases:
        return []
    out = ["  Financing:"]
    for case in cases:
        company = report["companies"][case["company"]]["name"]
        about = f" ({company}, {case['programme']})"  # said once, on the case's first line
        served = f"served by {case['partner']}" if case["partner"] else "run by the cluster's staff"
        closed = ", closed" if case["closed"] else ""
        out.append(f"    {company}: {case['kind']} case {case['case_id']} ({case['programme']}), {served}, "
                   f"stage {case['stage']}{closed}")
        if case["requested_cents"] or case["awarded_cents"]:
            out.append("        " + "   ".join(f"{key.removesuffix('_cents')} {euros(case[key])}"
                                                 for key in MONEY))
        story = [(h["seq"], f"· {h['summary']}  [{h['by']}]") for h in case["history"]]
        story += [(r["seq"], f"✗ refused: {r['event'].removesuffix(about)}  [{r['by']}]\n"
                             f"            {r['reason']}") for r in case["refused"]]
        story += [(f["seq"], f"! reminder ({f['reason']}, owner {f['owner']}): {f['detail']}")
                  for f in case["reminders"]]
        story += [(f["seq"], f"!! escalation ({f['reason']}, reminded on {f['reminded_on']}): {f['detail']}")
                  for f in case["escalations"]]
        out += [f"        {line}" for _, line in sorted(story)]
    return out


def export_lines(report: dict[str, Any], cluster: str) -> list[str]:
    supports = [support for support in report["export"].values() if support["cluster"] == cluster]
    if not supports:
        return []
    out = ["  Export:"]
    for support in supports:
        company = report["companies"][support["company"]]["name"]
        about = f" ({company}, {support['programme']})"
        towards = f" towards {support['target_country']}" if support["target_country"] else ""
        if support["unit_id"]:
            unit = f"on {support['unit_id']}, served by {support['partner']}"
        else:  # waiting, or closed: its place, if it had one, went back to the unit
            unit = f"its place on {support['units'][-1]} freed" if support["units"] else "no place"
        waited = (f" (waited {support['waited_s']:.1f} s for a place)" if support["waited_s"] is not None
                  else " (still waiting for a place)" if support["status"] == "waiting" else "")
        out.append(f"    {company}: {support['kind']} support {support['support_id']} ({support['programme']}"
                   f"{towards}), {unit}")
        out.append(f"        status {' → '.join(support['path'])}{waited}")
        if support["leads"] or support["meetings"] or support["contracts"]:
            out.append(f"        leads {support['leads']}   meetings {support['meetings']}   "
                       f"contracts {len(support['contracts'])} for {euros(support['contracted_cents'])}")
        out += [f"        contract {c['contract_id']}: {c['buyer']} ({c['country']}), "
                f"signed {c['signed_on']}, {euros(c['amount_cents'])}  [{c['by']}]"
                for c in support["contracts"]]
        story = [(h["seq"], f"· {h['summary']}  [{h['by']}]") for h in support["history"]]
        story += [(r["seq"], f"✗ refused: {r['event'].removesuffix(about)}  [{r['by']}]\n"
                             f"            {r['reason']}") for r in support["refused"]]
        out += [f"        {line}" for _, line in sorted(story)]
    return out


# ---- main ----------------------------------------------------------------------------------


async def dead_letter_count(js: JetStreamContext) -> int | None:
    try:
        return int((await js.stream_info(DEAD_LETTER_STREAM)).state.messages)
    except Exception:  # a partner's credentials may not allow it: the count is optional
        return None


async def caught_up(outcomes: Outcomes, follower: asyncio.Task[None], timeout_s: float) -> None:
    """Wait until the reader has read the stream's history, or raise what stopped it."""
    waiter = asyncio.ensure_future(outcomes.caught_up.wait())
    done, _ = await asyncio.wait({waiter, follower}, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
    if follower in done:
        waiter.cancel()
        follower.result()  # the reader's error, e.g. no ENVOL_EVENTS stream
    if waiter not in done:
        waiter.cancel()
        raise TimeoutError


# The services the story needs answers from, and how long to wait for them before publishing.
NEEDED_SERVICES = ("enrolment", "financing", "export")
PREFLIGHT_S = 5.0


class NotServed(Exception):
    """The server is too old, or Envol's services do not answer: nothing was published."""


async def check_before_publishing(connections: Connections, nats_url: str, health_ports: dict[str, int],
                                  timeout_s: float = PREFLIGHT_S) -> None:
    """NATS 2.10+ (as the stack requires), and each needed service ready: its /health/ready
    when the local stack says where (stack.json), else pulling from its durable consumer (as
    the stack checks at start)."""
    client = await connections.client(OPERATOR)
    try:
        check_version(client.connected_server_version, nats_url)
    except StartupError as exc:
        raise NotServed(str(exc)) from None
    js = client.jetstream()
    await js.stream_info(EVENTS_STREAM)  # NotFoundError: not provisioned (said by main)
    waiting = set(NEEDED_SERVICES)
    deadline = time.monotonic() + timeout_s
    while waiting:
        for name in sorted(waiting):
            if health_ports.get(name):
                ready = await asyncio.to_thread(readiness, health_ports[name], 1.0) == "ready"
            else:
                try:
                    ready = ((await js.consumer_info(EVENTS_STREAM, name)).num_waiting or 0) > 0
                except NotFoundError:
                    ready = False
            if ready:
                waiting.discard(name)
        if waiting and time.monotonic() > deadline:
            raise NotServed(f"Envol's {', '.join(sorted(waiting))} service(s) do not answer at {nats_url} "
                            f"(waited {timeout_s:g}s; nothing published): start the stack with "
                            "`python3 envol.py up`, or check `python3 envol.py status`")
        if waiting:
            await asyncio.sleep(0.2)


async def run_demo(nats_url: str, passwords: dict[str, str] | None, timeout_s: float,
                   health_ports: dict[str, int] | None = None) -> dict[str, Any]:
    """Play the story against the stack at `nats_url`, each partner as its own user (none
    without `passwords`); return the report."""
    async def report_error(exc: Exception) -> None:
        print(f"nats: {exc!r}", file=sys.stderr)  # one line; the default prints a traceback

    connections = Connections(nats_url, passwords, report_error)
    try:
        await check_before_publishing(connections, nats_url, health_ports or {})
        return await play(connections, nats_url, timeout_s)
    finally:
        await connections.close()


def health_ports_of(data_dir: Path, nats_url: str) -> dict[str, int]:
    """The services' health ports from the local stack's stack.json, when it is that NATS's."""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        state = json.loads((data_dir / "stack.json").read_text())
        if state.get("nats_url") == nats_url:
            return {name: int(port) for name, port in (state.get("health_ports") or {}).items()}
    return {}


async def play(connections: Connections, nats_url: str, timeout_s: float) -> dict[str, Any]:
    js = await connections.jetstream(OPERATOR)
    run = uuid.uuid4().hex[:6]
    tools = StaffTools(connections, run)
    outcomes = Outcomes()
    follower = asyncio.create_task(outcomes.follow(js))
    deadline = time.monotonic() + timeout_s
    missing: list[str] = []
    try:
        await caught_up(outcomes, follower, timeout_s)
        closed = await close_earlier_runs(tools, outcomes, deadline)
        print(f"Demo run {run}: publishing to {nats_url}", flush=True)

        def partner(producer: str, source: str) -> PartnerSystem:
            return PartnerSystem(connections, run, producer, source, tools.sent)

        demo = Demo(staff=tools, bank=partner(BANK, f"/{BANK}/rd-loan-desk"),
                    club=partner(CLUB, f"/{CLUB}/dealflow"),
                    relay_cn=partner(RELAY_CN, f"/{RELAY_CN}/vie-log"),
                    relay_de=partner(RELAY_DE, f"/{RELAY_DE}/vie-log"),
                    desk_in=partner(DESK_IN, f"/{DESK_IN}/crm"),
                    outcomes=outcomes, deadline=deadline)
        for act in ACTS:
            # Each act waits for Envol's answers before the next, as partners would.
            missing = await act(demo)
            print(f"  {act.__name__.removeprefix('act_').replace('_', ' ')}: "
                  f"{'answered' if not missing else f'{len(missing)} without answer'}", flush=True)
            if missing:
                break
        # The answers to one event are published together; a short pause catches the tail
        # (a promotion follows the withdrawal that freed the place).
        await asyncio.sleep(0.5)
        return build_report(tools, outcomes, missing, closed, await dead_letter_count(js))
    finally:
        follower.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await follower


def find_nats(url: str | None, credentials: Path | None, data_dir: Path) -> tuple[str, dict[str, str] | None]:
    """The NATS URL and the users' passwords (None: a server without users): --nats-url (and
    --credentials), else the running local stack's (stack.json), else $ENVOL_NATS_URL."""
    state = data_dir / "stack.json"
    if not url and state.exists():
        stack = json.loads(state.read_text())
        url = stack["nats_url"]
        credentials = Path(stack["nats_credentials"]) if stack.get("nats_credentials") else None
    url = url or os.environ.get("ENVOL_NATS_URL")
    if not url:
        sys.exit(f"no running local stack ({state} not found): start one with `python3 envol.py up`, "
                 "or pass --nats-url")
    return url, json.loads(credentials.read_text()) if credentials else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.local.demo", description=__doc__.split("\n")[0])
    parser.add_argument("--nats-url", help="NATS server of the stack (default: from <data dir>/stack.json)")
    parser.add_argument("--credentials", type=Path,
                        help="with --nats-url: the users' passwords (JSON, as the local stack writes them)")
    parser.add_argument("--data-dir", type=Path, default=ROOT / ".envol",
                        help="data dir of the local stack (default: .envol)")
    parser.add_argument("--timeout", type=float, default=45.0,
                        help="seconds to wait for all of Envol's answers (default 45)")
    parser.add_argument("--report-json", type=Path, help="also write the report to this JSON file")
    args = parser.parse_args(argv)
    url, passwords = find_nats(args.nats_url, args.credentials, args.data_dir)
    try:
        report = asyncio.run(run_demo(url, passwords, args.timeout, health_ports_of(args.data_dir, url)))
    except KeyboardInterrupt:
        return 130
    except NotServed as exc:
        print(f"cannot run the demo: {exc}", file=sys.stderr)
        return 2
    except (OSError, nats.errors.NoServersError) as exc:
        print(f"cannot reach NATS at {url}: {exc!r}. Is the stack running? (python3 envol.py up)",
              file=sys.stderr)
        return 2
    except (nats.errors.Error, LookupError) as exc:  # refused: no user, a wrong password
        print(f"NATS at {url} refused the demo: {exc}", file=sys.stderr)
        return 2
    except NotFoundError:
        print(f"no {EVENTS_STREAM} stream at {url}: the stack provisions it (python3 envol.py up)",
              file=sys.stderr)
        return 2
    except TimeoutError:
        print(f"no answer from JetStream at {url} within {args.timeout:g}s", file=sys.stderr)
        return 1
    if args.report_json is not None:
        args.report_json.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    print_report(report)
    return 0 if report["complete"] else 1


if __name__ == "__main__":
    sys.exit(main())
