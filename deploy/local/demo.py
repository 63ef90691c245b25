"""The Envol demo: three clusters' staff tools publish a season of SME applications.

    python -m deploy.local.demo [--nats-url URL] [--data-dir DIR] [--timeout SECONDS] [--report-json FILE]

It talks to Envol exactly as a partner system would, and doubles as an example for partner
developers: plain nats-py, hand-built CloudEvents 1.0 JSON, no Envol code imported.

What a partner needs to know, all of it used below:
- Publish with JetStream (`js.publish`) on ``envol.<cluster>.<producer>.<event name>``, e.g.
  ``envol.pegase.staff.application.submitted``; JetStream's acknowledgement means Envol has
  the event durably. Set the ``Nats-Msg-Id`` header to the event id: a retried publish is
  then stored once.
- The body is a CloudEvents 1.0 envelope in structured JSON mode. ``type`` carries the major
  version (``envol.application.submitted.v1``), ``subject`` is the company's SIREN,
  ``cluster`` repeats the cluster of the subject, ``correlationid`` names one journey of one
  company, ``data`` follows the event's schema (money in euro cents, dates ISO 8601).
- Envol answers on ``envol.<cluster>.enrolment.>`` (what happened, each event carrying the
  ``causationid`` of the event that caused it) and, when it refuses an event, on
  ``envol.<cluster>.<producer>.event.rejected`` with the reason. Read them with a JetStream
  consumer on the stream ENVOL_EVENTS.

The scenario: Aerospace Valley, Pégase and ASTech register 13 member SMEs and their
applications; reviewers accept or deny; participations start; one company withdraws and the
waitlisted one takes its place. Some applications are ineligible on purpose, and three events
are refused on purpose (a malformed registration, an event of an unknown version, a
reviewer's mistake). Then it prints what Envol decided, per cluster.

Each run uses fresh event and application ids, so it can run again against the same stack.
Envol allows one live application per company and programme, and places are limited: so a
run first withdraws the applications an earlier run of the demo left open.
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
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import nats
from nats.aio.client import Client
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

ROOT = Path(__file__).resolve().parents[2]
EVENTS_STREAM = "ENVOL_EVENTS"
DEAD_LETTER_STREAM = "ENVOL_DEAD_LETTERS"
PRODUCER = "staff"
# Envol's answers, and the refusals of what the staff tools sent (two filters that never overlap).
OUTCOME_SUBJECTS = ["envol.*.enrolment.>", f"envol.*.{PRODUCER}.event.rejected"]
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
    # Five growth contracts accepted in this order; the programme has four places.
    Application("marignane-growth", "marignane", "pegase", "PG-GROWTH-CONTRACT"),
    Application("azur-growth", "azur", "pegase", "PG-GROWTH-CONTRACT"),
    Application("calanques-growth", "calanques", "pegase", "PG-GROWTH-CONTRACT"),
    Application("var-growth", "var", "pegase", "PG-GROWTH-CONTRACT"),
    Application("durance-growth", "durance", "pegase", "PG-GROWTH-CONTRACT"),
    Application("calanques-desks", "calanques", "pegase", "PG-EXPORT-DESKS", target_country="SG"),
    # An ASTech member asking for a Pégase programme: members only.
    Application("argenteuil-desks", "argenteuil", "pegase", "PG-EXPORT-DESKS", target_country="MA"),
    Application("saclay-financing", "saclay", "astech", "AS-PRIVATE-FINANCING"),
    Application("velizy-cci", "velizy", "astech", "AS-CCI-INTERNATIONAL", target_country="CA"),
]

REVIEWERS = {"aerospace-valley": "av-financing-committee", "pegase": "pg-growth-committee",
             "astech": "as-business-advisor-07"}


# ---- publishing, as a partner system ---------------------------------------------------


@dataclass
class Sent:
    """An event this run published, and what it was about (for the report)."""

    id: str
    type: str
    cluster: str
    company: str
    label: str


class StaffTools:
    """The three clusters' staff tools: they build CloudEvents and publish them."""

    def __init__(self, js: JetStreamContext, run: str) -> None:
        self.js = js
        self.run = run
        self.sent: dict[str, Sent] = {}

    def application_id(self, application: Application) -> str:
        # Fresh per run: Envol refuses a second submission of an existing application id.
        return f"demo-{self.run}-{application.key}"

    def journey(self, company: Company) -> str:
        return f"demo-{self.run}-{company.key}"

    def envelope(self, type_: str, cluster: str, siren: str, data: dict[str, Any],
                 correlation_id: str) -> dict[str, Any]:
        return {
            "specversion": "1.0",
            "id": str(uuid.uuid4()),
            "source": f"/{cluster}/staff-crm",
            "type": type_,
            "time": datetime.now(UTC).isoformat(),
            "subject": siren,
            "datacontenttype": "application/json",
            "data": data,
            "cluster": cluster,
            "correlationid": correlation_id,
        }

    async def publish(self, type_: str, cluster: str, company: Company, data: dict[str, Any], label: str,
                      *, correlation_id: str | None = None) -> str:
        event = self.envelope(type_, cluster, company.siren, data, correlation_id or self.journey(company))
        # The subject names the event without its "envol." prefix and ".v<major>" suffix.
        name = type_.removeprefix("envol.").rsplit(".", 1)[0]
        subject = f"envol.{cluster}.{PRODUCER}.{name}"
        await self.js.publish(subject, json.dumps(event).encode(), headers={"Nats-Msg-Id": event["id"]})
        self.sent[event["id"]] = Sent(event["id"], type_, cluster, company.key, label)
        return str(event["id"])

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
    """Everything Envol published about applications and refusals, as it arrives."""

    transitions: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # application id ->
    journeys: dict[str, str] = field(default_factory=dict)  # application id -> correlation id
    assessments: dict[str, dict[str, Any]] = field(default_factory=dict)  # SIREN -> latest
    rejections: dict[str, dict[str, Any]] = field(default_factory=dict)  # rejected event id ->
    caused: set[str] = field(default_factory=set)  # ids of events that caused something
    caught_up: asyncio.Event = field(default_factory=asyncio.Event)

    def record(self, event: dict[str, Any]) -> None:
        data = event["data"]
        if event.get("causationid"):
            self.caused.add(event["causationid"])
        if event["type"] == "envol.company.assessed.v1":
            self.assessments[data["siren"]] = data
        elif event["type"] == "envol.event.rejected.v1":
            self.rejections[data.get("rejected_event_id") or event["id"]] = data
        elif event["type"].startswith("envol.application."):
            self.transitions.setdefault(data["application_id"], []).append(data)
            self.journeys[data["application_id"]] = event["correlationid"]

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
            for message in messages:
                self.record(json.loads(message.data))
            if messages[-1].metadata.num_pending == 0:
                self.caught_up.set()

    async def wait_for_answers(self, event_ids: list[str], deadline: float) -> list[str]:
        """Wait until each event has caused an answer; return those still unanswered at the deadline."""
        while True:
            missing = [i for i in event_ids if not self.answered(i)]
            if not missing or time.monotonic() > deadline:
                return missing
            await asyncio.sleep(0.1)


# ---- the story ---------------------------------------------------------------------------


def application(key: str) -> Application:
    return next(a for a in APPLICATIONS if a.key == key)


async def close_earlier_runs(tools: StaffTools, outcomes: Outcomes, deadline: float) -> int:
    """Withdraw the demo applications an earlier run left live, to free places and ids."""
    by_siren = {c.siren: c for c in COMPANIES}
    sent = []
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
    await outcomes.wait_for_answers(sent, deadline)
    return len(sent)


async def act_1_registrations_and_applications(tools: StaffTools) -> list[str]:
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
    return sent


async def act_2_reviews(tools: StaffTools) -> list[str]:
    accepted = {
        "garonne-rd": "partner bank agreed the R&D loan for the PSPC-Régions project",
        "aquitaine-vie": "shares the Munich VIE with five other SMEs",
        # A reviewer's mistake: this application is ineligible; Envol refuses the decision.
        "bigorre-vie": "strong US prospects",
        "marignane-growth": "growth plan approved by the committee",
        "azur-growth": "growth plan approved by the committee",
        "calanques-growth": "growth plan approved by the committee",
        "var-growth": "growth plan approved by the committee",
        "durance-growth": "growth plan approved by the committee",
        "saclay-financing": "fundraising of 4 M€ planned for 2027",
        "velizy-cci": "export plan for Canada validated with the CCI",
    }
    sent = [await tools.review(application(key), "accept", reason) for key, reason in accepted.items()]
    sent.append(await tools.review(application("calanques-desks"), "deny",
                                   "no sales force planned in Singapore yet; reapply at the next session"))
    return sent


async def act_3_participation(tools: StaffTools) -> list[str]:
    sent = [await tools.start(application(key))
            for key in ("garonne-rd", "marignane-growth", "azur-growth", "saclay-financing")]
    # A place frees in the full programme: the waitlisted SME is enrolled automatically.
    sent.append(await tools.withdraw(application("var-growth"),
                                     "the company postpones its growth plan after losing a major contract"))
    return sent


# ---- the report --------------------------------------------------------------------------

# Transitions whose reasons tell the story (the others say "submitted", "meets every rule").
TOLD = {"ineligible", "waitlisted", "denied", "withdrawn"}


def spaced(siren: str) -> str:
    return f"{siren[:3]} {siren[3:6]} {siren[6:]}"


def build_report(tools: StaffTools, outcomes: Outcomes, missing: list[str], closed: int,
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
    rejections = []
    for event_id, sent in tools.sent.items():
        if event_id in outcomes.rejections:
            rejection = outcomes.rejections[event_id]
            rejections.append({"event": sent.label, "type": sent.type, "cluster": sent.cluster,
                               "company": sent.company, "reason": rejection["reason"],
                               "dead_lettered": rejection["dead_lettered"]})
    return {
        "run": tools.run,
        "complete": not missing,
        "unanswered": [tools.sent[i].label for i in missing],
        "closed_from_earlier_runs": closed,
        "events_published": len(tools.sent),
        "companies": companies,
        "applications": applications,
        "rejections": rejections,
        "dead_letters_this_run": sum(r["dead_lettered"] for r in rejections),
        "dead_letters_total": dead_letters_total,
    }


def print_report(report: dict[str, Any]) -> None:
    out: list[str] = ["", f"Envol demo, run {report['run']}: what Envol decided", ""]
    if report["closed_from_earlier_runs"]:
        out += [f"(First withdrew {report['closed_from_earlier_runs']} application(s) left live by "
                "earlier demo runs, so places and the one-application rule start clean.)", ""]
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
        refused = [r for r in report["rejections"] if r["cluster"] == cluster]
        if refused:
            out.append("  Refused events:")
            for rejection in refused:
                kept = "dead-lettered" if rejection["dead_lettered"] else "not applied"
                out.append(f"    ✗ {rejection['event']} [{rejection['type']}], {kept}")
                out.append(f"        {rejection['reason']}")
        out.append("")
    total = report["dead_letters_total"]
    out.append(f"{report['events_published']} events published; {len(report['rejections'])} refused, "
               f"{report['dead_letters_this_run']} of them dead-lettered"
               + (f" ({total} message(s) in {DEAD_LETTER_STREAM} in all)." if total is not None else "."))
    if report["unanswered"]:
        out.append(f"NO ANSWER YET for {len(report['unanswered'])} event(s): "
                   + "; ".join(report["unanswered"]))
        out.append("Is the enrolment service running? (python3 envol.py up)")
    print("\n".join(out), flush=True)


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


async def run_demo(nats_url: str, timeout_s: float) -> dict[str, Any]:
    """Play the story against the stack at `nats_url`; return the report."""
    async def report_error(exc: Exception) -> None:
        print(f"nats: {exc!r}", file=sys.stderr)  # one line; the default prints a traceback

    nc: Client = await nats.connect(nats_url, connect_timeout=5, max_reconnect_attempts=3,
                                    reconnect_time_wait=1, error_cb=report_error)
    js = nc.jetstream()
    run = uuid.uuid4().hex[:6]
    tools = StaffTools(js, run)
    outcomes = Outcomes()
    follower = asyncio.create_task(outcomes.follow(js))
    deadline = time.monotonic() + timeout_s
    missing: list[str] = []
    try:
        await caught_up(outcomes, follower, timeout_s)
        closed = await close_earlier_runs(tools, outcomes, deadline)
        print(f"Demo run {run}: publishing to {nats_url}", flush=True)
        for act in (act_1_registrations_and_applications, act_2_reviews, act_3_participation):
            # Each act waits for Envol's answers to the previous one, as staff would.
            missing = await outcomes.wait_for_answers(await act(tools), deadline)
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
        await nc.close()


def find_nats_url(explicit: str | None, data_dir: Path) -> str:
    """--nats-url, else the running local stack's (stack.json), else $ENVOL_NATS_URL."""
    if explicit:
        return explicit
    state = data_dir / "stack.json"
    if state.exists():
        return str(json.loads(state.read_text())["nats_url"])
    if os.environ.get("ENVOL_NATS_URL"):
        return os.environ["ENVOL_NATS_URL"]
    sys.exit(f"no running local stack ({state} not found): start one with `python3 envol.py up`, "
             "or pass --nats-url")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.local.demo", description=__doc__.split("\n")[0])
    parser.add_argument("--nats-url", help="NATS server of the stack (default: from <data dir>/stack.json)")
    parser.add_argument("--data-dir", type=Path, default=ROOT / ".envol",
                        help="data dir of the local stack (default: .envol)")
    parser.add_argument("--timeout", type=float, default=45.0,
                        help="seconds to wait for all of Envol's answers (default 45)")
    parser.add_argument("--report-json", type=Path, help="also write the report to this JSON file")
    args = parser.parse_args(argv)
    url = find_nats_url(args.nats_url, args.data_dir)
    try:
        report = asyncio.run(run_demo(url, args.timeout))
    except KeyboardInterrupt:
        return 130
    except (OSError, nats.errors.NoServersError) as exc:
        print(f"cannot reach NATS at {url}: {exc!r}. Is the stack running? (python3 envol.py up)",
              file=sys.stderr)
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
