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

Each workload is generated with a fixed seed; the events' times (CloudEvents `time`, and
the enrolment time of a case) are those of the run, so a, b and c consume the same bytes.
"""

from __future__ import annotations

import random
from abc import ABC, abstractmethod
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from stdnum import luhn

from envol_shared.contracts.enrolment import ApplicationEnrolled, CompanyAssessed, CompanyRegistered
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
    def describe(self, count: int) -> str:
        """What the events are, for the report."""

    def pending_timers(self, count: int) -> int:
        """How many timers the service has scheduled, and not fired, after `count` events."""
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

    def describe(self, count: int) -> str:
        return f"{count} envol.company.registered.v1 events"


# ---- financing: cases opened by enrolment, then a partner's fact about each ---------------

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
    """How many of `count` financing events open a case (the rest are facts, one per case)."""
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


class FinancingCases(Workload):
    service = "financing"
    filters = (subject_for("*", "enrolment", ApplicationEnrolled.type),
               subject_for("*", "*", InvestorIntroduced.type))
    caused = (subject_for("*", "financing", CaseOpened.type),
              subject_for("*", "financing", CaseProgressed.type))
    caused_name = "the case.opened or case.progressed it caused"

    def events(self, count: int, *, seed: int, run: str, time: datetime | None = None,
               steady: bool = False) -> list[Message]:
        """ceil(count/2) enrolments, one case each, and a club introduction per case: in a
        backlog every opening comes first, then the facts in the same order; under a steady
        load each fact follows its case by STEADY_FACT_LAG openings."""
        rng = random.Random(seed)
        cases = financing_cases(count)
        # Enrolled now: no checkpoint comes due during the run (the first, 10 business days on).
        enrolled_at = now().replace(microsecond=0)
        openings = [self.opening(index, rng, run=run, enrolled_at=enrolled_at, time=time)
                    for index in range(cases)]
        facts = [self.fact(index, rng, run=run, on=enrolled_at, time=time)
                 for index in range(count - cases)]
        return interleaved(openings, facts, min(STEADY_FACT_LAG, cases) if steady else cases)

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

    def describe(self, count: int) -> str:
        cases = financing_cases(count)
        return (f"{cases} envol.application.enrolled.v1 ({CLUB_PROGRAMME}: each opens a case) then "
                f"{count - cases} envol.club.introduction.made.v1 (one per case)")

    def pending_timers(self, count: int) -> int:
        return TIMERS_PER_CASE * financing_cases(count)


ENROLMENT = Registrations()
FINANCING = FinancingCases()
WORKLOADS = (ENROLMENT, FINANCING)


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
