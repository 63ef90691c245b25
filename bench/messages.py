"""The benchmark's workloads: the events each measured service consumes.

* enrolment — `envol.company.registered.v1` events about many companies. Every event is
  valid (its SIREN has a correct Luhn check digit, its cluster is in the shipped catalogue
  and matches the subject), so the enrolment service upserts a company and writes one
  `envol.company.assessed.v1` event to its outbox for each of them. The figures vary (micro,
  small, medium and large companies, some with holdings or a contact) and one event in five
  updates a company registered earlier in the run.
* financing — `envol.application.enrolled.v1` events, as enrolment publishes them, for
  Aerospace Valley's investors' club (`AV-INVESTORS-CLUB`, served by the club
  `av-investors-club` from the start), each opening a case; then one partner fact per case,
  the club's `envol.club.introduction.made.v1`. An opening writes the case, four checkpoint
  timers and a stale timer, and one `case.opened`; a fact loads the case, checks it against
  the producer and the subject, applies it, reschedules the stale timer and writes one
  `case.progressed`.
* export — `envol.application.enrolled.v1` events for the three clusters' export programmes
  (`AV-VIE-RELAY`, `PG-EXPORT-DESKS`, `AS-CCI-INTERNATIONAL`, from enrolment's catalogue and
  the export service's partner files), spread over the programmes and their target countries,
  each opening a support that takes a place on a unit of its pool or waits when the pool is
  full; then one fact per support that the service accepts: from the partner serving an
  assigned support (a relay's lead, a desk's prospect list, the CCI's workshop attendance),
  and from cluster staff for a waiting one (a contract: partners' facts on a waiting support
  are refused).

Each workload is generated with a fixed seed; the events' times (CloudEvents `time`, and
the enrolment time of a case) are those of the run, so a, b and c consume the same bytes.
"""

from __future__ import annotations

import functools
import random
from abc import ABC, abstractmethod
from collections import Counter
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

from stdnum import luhn

from envol_shared.calendar import paris_date
from envol_shared.contracts.enrolment import ApplicationEnrolled, CompanyAssessed, CompanyRegistered
from envol_shared.contracts.export import (
    ContractSigned,
    LeadReported,
    ProspectListDelivered,
    SupportOpened,
    SupportProgressed,
    WorkshopAttended,
)
from envol_shared.contracts.financing import CaseOpened, CaseProgressed, InvestorIntroduced
from envol_shared.events import EventData, make_event, now, subject_for

CLUSTERS = {
    "aerospace-valley": ["Occitanie", "Nouvelle-Aquitaine"],
    "pegase": ["Provence-Alpes-Côte d'Azur"],
    "astech": ["Île-de-France"],
}
PRODUCER = "staff"


def siren(index: int) -> str:
    """A valid, distinct SIREN for each index below 10**8 (8 digits + Luhn check digit)."""
    base = f"{(10_000_019 + index * 7_919) % 100_000_000:08d}"
    return base + luhn.calc_check_digit(base)


def siret(number: str, establishment: int) -> str:
    """A valid SIRET of the company `number` (SIREN + 4-digit NIC + Luhn check digit)."""
    base = f"{number}{establishment:04d}"
    return base + luhn.calc_check_digit(base)


@dataclass(frozen=True)
class Message:
    event_id: str
    subject: str
    payload: bytes

    @property
    def name(self) -> str:
        """The event's name, from its subject (envol.<cluster>.<producer>.<name>)."""
        return self.subject.split(".", 3)[3]


def message(data: EventData, *, cluster: str, producer: str, company: str, event_id: str,
            time: datetime | None) -> Message:
    subject, envelope = make_event(data, cluster=cluster, producer=producer, company=company,
                                   event_id=event_id, time=time)
    return Message(envelope.id, subject, envelope.to_bytes())


class Workload(ABC):
    """The events one service consumes in the benchmark, and what it does with them."""

    service: str  # the service consuming them: its bootstrap, its durable consumer
    filters: tuple[str, ...]  # subject filters matching exactly these events
    caused: tuple[str, ...]  # subject filters of what the service publishes for each of them
    caused_name: str  # the same, in words

    @abstractmethod
    def events(self, count: int, *, seed: int, run: str, time: datetime | None = None,
               steady: bool = False) -> list[Message]:
        """`count` serialized events, the same for a given count and seed (and run time).
        `time` replaces the CloudEvents time of every event (see `stamped`); `steady` asks
        for the order of a load offered at a steady rate rather than of a backlog."""

    @abstractmethod
    def describe(self, count: int, *, seed: int) -> str:
        """What the events are, for the report."""

    def published(self, count: int) -> int:
        """How many events the service publishes (outbox rows) for `count` events."""
        return count

    def pending_timers(self, count: int) -> int:
        """How many timers the service has scheduled, and not fired, after `count` events."""
        return 0

    def fired_timers(self, count: int) -> int:
        """How many timers have fired by then (none: no timer comes due during a run)."""
        return 0


# ---- enrolment: companies registered by cluster staff ------------------------------------


def registration(index: int, rng: random.Random, companies: int) -> tuple[str, str, CompanyRegistered]:
    """(cluster, siren, payload) of the index-th registration."""
    # One in five events updates a company registered earlier in the run.
    company = rng.randrange(max(index, 1)) if index and rng.random() < 0.2 else index
    number = siren(company % companies)
    cluster = rng.choice(sorted(CLUSTERS))
    size = rng.choice([(4, 400_000, 300_000), (42, 6_000_000, 5_000_000),
                       (180, 40_000_000, 35_000_000), (900, 400_000_000, 300_000_000)])
    staff, turnover_eur, balance_eur = size
    holdings = []
    if rng.random() < 0.25:
        holdings = [{"holder": f"Holding {number}", "holder_kind": "enterprise",
                     "share_percent": rng.choice([25.0, 40.0, 60.0]),
                     "holder_staff_awu": float(rng.randrange(10, 400)),
                     "holder_turnover_cents": rng.randrange(1, 80) * 100_000_000,
                     "holder_balance_sheet_cents": rng.randrange(1, 80) * 100_000_000}]
    contact = None
    if rng.random() < 0.5:
        contact = {"name": "Camille Martin", "email": f"contact+{number}@example.fr",
                   "phone": "+33 5 61 00 00 00"}
    data = CompanyRegistered(
        company_id=number if rng.random() < 0.8 else siret(number, rng.randrange(1, 9999)),
        legal_name=f"Société {number}",
        region=rng.choice(CLUSTERS[cluster]),
        clusters=[cluster],
        staff_awu=staff + rng.random(),
        turnover_cents=turnover_eur * 100,
        balance_sheet_cents=balance_eur * 100,
        accounts_year=rng.choice([2024, 2025]),
        holdings=holdings,
        contact=contact,
    )
    return cluster, number, data


class Registrations(Workload):
    service = "enrolment"
    filters = (subject_for("*", "*", CompanyRegistered.type),)
    caused = (subject_for("*", "enrolment", CompanyAssessed.type),)
    caused_name = "its company.assessed"

    def events(self, count: int, *, seed: int, run: str, time: datetime | None = None,
               steady: bool = False) -> list[Message]:
        rng = random.Random(seed)
        companies = max(1, count)
        messages = []
        for index in range(count):
            cluster, number, data = registration(index, rng, companies)
            messages.append(message(data, cluster=cluster, producer=PRODUCER, company=number,
                                    event_id=f"bench-{run}-{index:08d}", time=time))
        return messages

    def describe(self, count: int, *, seed: int) -> str:
        return f"{count} envol.company.registered.v1 events"


# ---- openings by enrolment, then a fact about each: financing and export -----------------

FINANCING_CLUSTER = "aerospace-valley"
CLUB_PROGRAMME = "AV-INVESTORS-CLUB"
CLUB = "av-investors-club"  # the only investors' club of the cluster: it serves every case
INVESTORS = ("Garonne Ventures", "Sud Angels", "Occitanie Capital", "Atlantique Croissance",
             "Pyrénées Business Angels", "Aéro Seed Fund")
TIMERS_PER_CASE = 5  # checkpoints baseline, month_6, month_12, month_24, and the stale timer
# Under a steady load, a case's fact is published this many openings after the case's own
# opening (with the facts in between: about 1 s at 500 events/s).
STEADY_FACT_LAG = 250


def financing_cases(count: int) -> int:
    """How many of `count` financing (or export) events open a case (or a support); the rest
    are facts, one per case."""
    return (count + 1) // 2


def interleaved(openings: list[Message], facts: list[Message], lag: int) -> list[Message]:
    """The first `lag` openings, then each further opening followed by the fact about the
    case opened `lag` openings before it, then the facts left. With `lag` = every opening:
    all openings, then all facts."""
    ordered = openings[:lag]
    for index, opening in enumerate(openings[lag:]):
        ordered.append(opening)
        if index < len(facts):
            ordered.append(facts[index])
    ordered.extend(facts[len(openings) - lag:])
    return ordered


class OpeningsThenFacts(Workload):
    """ceil(count/2) enrolments, each opening one case (or support), and one fact per case: in
    a backlog every opening comes first, then the facts in the same order; under a steady load
    each fact follows its case by STEADY_FACT_LAG openings. Enrolment times are those of the
    run unless the workload says otherwise, so no checkpoint comes due during it."""

    def events(self, count: int, *, seed: int, run: str, time: datetime | None = None,
               steady: bool = False) -> list[Message]:
        rng = random.Random(seed)
        cases = financing_cases(count)
        openings, facts = self.generate(cases, count - cases, rng, run=run,
                                        enrolled_at=now().replace(microsecond=0), time=time)
        return interleaved(openings, facts, min(STEADY_FACT_LAG, cases) if steady else cases)

    @abstractmethod
    def generate(self, cases: int, facts: int, rng: random.Random, *, run: str, enrolled_at: datetime,
                 time: datetime | None) -> tuple[list[Message], list[Message]]:
        """The openings of `cases` cases, and the facts about the first `facts` of them."""


class FinancingCases(OpeningsThenFacts):
    service = "financing"
    filters = (subject_for("*", "enrolment", ApplicationEnrolled.type),
               subject_for("*", "*", InvestorIntroduced.type))
    caused = (subject_for("*", "financing", CaseOpened.type),
              subject_for("*", "financing", CaseProgressed.type))
    caused_name = "the case.opened or case.progressed it caused"

    def generate(self, cases: int, facts: int, rng: random.Random, *, run: str, enrolled_at: datetime,
                 time: datetime | None) -> tuple[list[Message], list[Message]]:
        openings = [self.opening(index, rng, run=run, enrolled_at=enrolled_at, time=time)
                    for index in range(cases)]
        return openings, [self.fact(index, rng, run=run, on=enrolled_at, time=time)
                          for index in range(facts)]

    @staticmethod
    def case_id(index: int, run: str) -> str:
        return f"av-bench-{run}-{index:06d}"

    def opening(self, index: int, rng: random.Random, *, run: str, enrolled_at: datetime,
                time: datetime | None) -> Message:
        number = siren(index)
        promoted = rng.random() < 0.1
        data = ApplicationEnrolled(
            application_id=self.case_id(index, run), siren=number, legal_name=f"Société {number}",
            cluster=FINANCING_CLUSTER, programme=CLUB_PROGRAMME, programme_kind="financing",
            cohort=f"{CLUB_PROGRAMME}-{enrolled_at.year}",
            from_status="waitlisted" if promoted else "eligible", to_status="enrolled",
            at=enrolled_at - timedelta(seconds=rng.randrange(3600)),
            by="enrolment" if promoted else f"av-staff-{rng.randrange(1, 9):02d}",
            reasons=(["a place was freed"] if promoted
                     else [rng.choice(["strong growth plan", "seed round in preparation",
                                       "investor-ready team"])]),
        )
        return message(data, cluster=FINANCING_CLUSTER, producer="enrolment", company=number,
                       event_id=f"bench-{run}-open-{index:06d}", time=time)

    def fact(self, index: int, rng: random.Random, *, run: str, on: datetime,
             time: datetime | None) -> Message:
        data = InvestorIntroduced(case_id=self.case_id(index, run), investor=rng.choice(INVESTORS),
                                  introduced_on=on.date())
        return message(data, cluster=FINANCING_CLUSTER, producer=CLUB, company=siren(index),
                       event_id=f"bench-{run}-fact-{index:06d}", time=time)

    def describe(self, count: int, *, seed: int) -> str:
        cases = financing_cases(count)
        return (f"{cases} envol.application.enrolled.v1 ({CLUB_PROGRAMME}: each opens a case) then "
                f"{count - cases} envol.club.introduction.made.v1 (one per case)")

    def pending_timers(self, count: int) -> int:
        return TIMERS_PER_CASE * financing_cases(count)


# ---- export: supports opened by enrolment, placed or waiting, then a fact about each -------

EXPORT_CHECKPOINTS = 4  # baseline, month_6, month_12, month_24: a timer each, from the opening
EXPORT_STAFF = "staff"  # the staff producer of every shipped cluster
BUYERS = ("Airbus", "Bombardier", "Embraer", "COMAC", "Lufthansa Technik", "Boeing", "HAL",
          "ST Engineering Aerospace", "Royal Air Maroc", "Safran", "Thales", "Dassault Aviation")
# A CCI support attends the cohort's latest workshop held within this many days before the run
# (its enrolment dated a few days before it); months-old enrolments would make checkpoints due.
RECENT_WORKSHOP_DAYS = 120


@dataclass(frozen=True)
class ExportProgramme:
    cluster: str
    code: str
    kind: str  # the kind of support (vie_relay, export_desk, cci_collective)
    countries: tuple[str, ...]  # target countries, from enrolment's catalogue


@dataclass(frozen=True)
class ExportCase:
    """One support of the workload as the service will handle it: its pool and, if the pool
    has a free place when it opens, the unit and the partner serving it."""

    index: int
    run: str
    programme: ExportProgramme
    country: str
    enrolled_at: datetime
    unit_id: str | None
    partner: str | None
    workshop: tuple[str, date] | None  # (id, day) of the workshop a CCI support attends

    @property
    def support_id(self) -> str:
        return support_id(self.programme, self.index, self.run)


def support_id(programme: ExportProgramme, index: int, run: str) -> str:
    return f"{programme.code.split('-')[0].lower()}-bench-{run}-{index:06d}"


class ExportSupports(OpeningsThenFacts):
    """Export supports on the shipped configuration: enrolment's catalogue (programmes and
    their target countries) and the export service's partner files (units and their places,
    partners, staff); ENVOL_CATALOGUE_DIR and ENVOL_EXPORT_PARTNERS_DIR are honoured, as by
    the services. Which support gets a place is worked out with the domain's own rule
    (`choose_unit`), in the order of the openings."""

    service = "export"
    facts = (LeadReported, ProspectListDelivered, WorkshopAttended, ContractSigned)
    filters = (subject_for("*", "enrolment", ApplicationEnrolled.type),
               *(subject_for("*", "*", fact.type) for fact in facts))
    caused = (subject_for("*", "export", SupportOpened.type),
              subject_for("*", "export", SupportProgressed.type))
    caused_name = "the support.opened or support.progressed it caused"

    @functools.cached_property
    def partners(self) -> Any:
        from envol_export.partners import Partners

        return Partners.load()

    @functools.cached_property
    def programmes(self) -> list[ExportProgramme]:
        from envol_enrolment.catalogue import Catalogue

        found = []
        for programme in sorted(Catalogue.load(), key=lambda p: (p.cluster, p.code)):
            kind = self.partners.support_kind(programme.cluster, programme.code)
            if programme.kind.value == "export" and kind is not None:
                assert self.partners.is_staff(programme.cluster, EXPORT_STAFF), programme.cluster
                found.append(ExportProgramme(programme.cluster, programme.code, kind.value,
                                             tuple(sorted(programme.countries))))
        assert found, "no export programme in the catalogue is configured in the export service"
        return found

    def units(self, at: datetime) -> list[Any]:
        """The configured units, as new domain objects, that have not ended by `at`."""
        today = paris_date(at)
        return [unit for unit in self.partners.units(at) if unit.ends_on is None or unit.ends_on >= today]

    def plan(self, cases: int, rng: random.Random, *, run: str, enrolled_at: datetime) -> list[ExportCase]:
        """Each support's programme and country (a programme, then one of its countries, at
        random) and where it lands: the first supports of a pool fill its places, the others
        wait."""
        from envol_export.domain.model import UnitKind, choose_unit

        today = paris_date(enrolled_at)
        pools: dict[tuple[str, str, str | None], list[Any]] = {}
        for unit in self.units(enrolled_at):
            pools.setdefault(unit.pool, []).append(unit)
        planned = []
        for index in range(cases):
            programme = rng.choice(self.programmes)
            country = rng.choice(programme.countries)
            at = enrolled_at - timedelta(seconds=rng.randrange(3600))
            pool = None if programme.kind == "cci_collective" else country  # cohorts: any country
            unit = choose_unit(pools.get((programme.cluster, programme.code, pool), []))
            workshop = None
            if unit is not None:
                unit.take(support_id(programme, index, run), at=at)
                if unit.kind is UnitKind.CCI_COHORT:
                    workshop = recent_workshop(unit.workshops, today)
                if workshop is not None:  # enrolled a few days before the workshop it attends
                    day = workshop[1] - timedelta(days=rng.randrange(1, 8))
                    at = datetime(day.year, day.month, day.day, 7, tzinfo=UTC)
            planned.append(ExportCase(index, run, programme, country, at, unit and unit.id,
                                      unit and unit.partner, workshop))
        return planned

    def generate(self, cases: int, facts: int, rng: random.Random, *, run: str, enrolled_at: datetime,
                 time: datetime | None) -> tuple[list[Message], list[Message]]:
        planned = self.plan(cases, rng, run=run, enrolled_at=enrolled_at)
        today = paris_date(enrolled_at)
        return ([self.opening(case, rng, time=time) for case in planned],
                [self.fact(case, rng, on=today, time=time) for case in planned[:facts]])

    def opening(self, case: ExportCase, rng: random.Random, *, time: datetime | None) -> Message:
        number = siren(case.index)
        programme = case.programme
        data = ApplicationEnrolled(
            application_id=case.support_id, siren=number, legal_name=f"Société {number}",
            cluster=programme.cluster, programme=programme.code, programme_kind="export",
            cohort=f"{programme.code}-{case.enrolled_at.year}", from_status="eligible",
            to_status="enrolled", at=case.enrolled_at, by=f"{programme.code.split('-')[0].lower()}-staff-01",
            reasons=[rng.choice(["export plan ready", "first contacts abroad", "team ready to travel"])],
            target_country=case.country,
        )
        return message(data, cluster=programme.cluster, producer="enrolment", company=number,
                       event_id=f"bench-{case.run}-xopen-{case.index:06d}", time=time)

    def fact(self, case: ExportCase, rng: random.Random, *, on: date, time: datetime | None) -> Message:
        """The serving partner's own fact on an assigned support; staff's contract on a
        waiting one (a partner's fact about a waiting support is refused)."""
        index, country = case.index, case.country
        data: EventData
        producer = case.partner or EXPORT_STAFF
        if case.partner is None or (case.programme.kind == "cci_collective" and case.workshop is None):
            data = ContractSigned(support_id=case.support_id, contract_id=f"ct-{index:06d}", country=country,
                                  buyer=rng.choice(BUYERS), signed_on=on,
                                  amount_cents=rng.randrange(1, 200) * 1_000_000)
        elif case.programme.kind == "vie_relay":
            data = LeadReported(support_id=case.support_id, lead_id=f"lead-{index:06d}", country=country,
                                buyer=rng.choice(BUYERS), reported_on=on,
                                estimated_cents=rng.randrange(1, 500) * 1_000_000)
        elif case.programme.kind == "export_desk":
            data = ProspectListDelivered(support_id=case.support_id, list_id=f"list-{index:06d}",
                                         country=country, prospects=rng.randrange(5, 60), delivered_on=on)
        else:
            assert case.workshop is not None
            data = WorkshopAttended(support_id=case.support_id, workshop_id=case.workshop[0],
                                    attended_on=case.workshop[1], attendees=rng.randrange(1, 4))
        return message(data, cluster=case.programme.cluster, producer=producer, company=siren(index),
                       event_id=f"bench-{case.run}-xfact-{index:06d}", time=time)

    def describe(self, count: int, *, seed: int) -> str:
        cases = financing_cases(count)
        at = now()
        planned = self.plan(cases, random.Random(seed), run="t", enrolled_at=at)
        assigned = sum(case.unit_id is not None for case in planned)
        facts = Counter(self.fact(case, random.Random(0), on=paris_date(at), time=None).name
                        for case in planned[:count - cases])
        countries = {(case.programme.code, case.country) for case in planned}
        units = self.units(at)
        return (f"{cases} envol.application.enrolled.v1 over {len(self.programmes)} export programmes "
                f"and {len(countries)} programme-countries: {assigned} take a place on one of the "
                f"{len(units)} units ({sum(u.capacity for u in units)} places), {cases - assigned} wait; "
                f"then one fact per support: "
                + ", ".join(f"{n} {name}" for name, n in sorted(facts.items()))
                + " (partners' facts on assigned supports, staff's contracts on waiting ones)")

    def published(self, count: int) -> int:
        # An opening publishes support.opened and support.assigned (or .waitlisted); a fact
        # support.progressed.
        return count + financing_cases(count)

    def pending_timers(self, count: int) -> int:
        # Four checkpoints per support, and the end of each unit with a last day.
        return (EXPORT_CHECKPOINTS * financing_cases(count)
                + sum(unit.ends_on is not None for unit in self.units(now())))

    def fired_timers(self, count: int) -> int:
        # A configured unit whose last day is past ends at the service's start.
        return len([u for u in self.partners.units(now()) if u.ends_on is not None]) - sum(
            unit.ends_on is not None for unit in self.units(now()))


def recent_workshop(workshops: dict[str, dict[str, str]], today: date) -> tuple[str, date] | None:
    """The latest workshop held within RECENT_WORKSHOP_DAYS up to today, if any."""
    held = sorted((date.fromisoformat(w["on"]), workshop_id) for workshop_id, w in workshops.items())
    recent = [(workshop_id, on) for on, workshop_id in held
              if today - timedelta(days=RECENT_WORKSHOP_DAYS) <= on <= today]
    return recent[-1] if recent else None


ENROLMENT = Registrations()
FINANCING = FinancingCases()
EXPORT = ExportSupports()
WORKLOADS = (ENROLMENT, FINANCING, EXPORT)


# Events built ahead of a timed run carry this time; `stamped` swaps in the publication time.
PLACEHOLDER_TIME = datetime(2000, 1, 1, 0, 0, 0, 123456, tzinfo=UTC)
_PLACEHOLDER = b'"time":"2000-01-01T00:00:00.123456Z"'


def stamped(message: Message, when: datetime) -> Message:
    """The message with its CloudEvents `time` set to `when` (a cheap byte substitution, so
    the publisher can keep a steady rate)."""
    stamp = b'"time":"' + when.strftime("%Y-%m-%dT%H:%M:%S.%fZ").encode() + b'"'
    payload = message.payload.replace(_PLACEHOLDER, stamp, 1)
    assert payload != message.payload
    return replace(message, payload=payload)
