"""The history data set, generated: three years of cohorts (2024, 2025, 2026) of the three
clusters, as the events their staff and partners publish, each at the moment it happened.

`generate(seed, scale)` is a pure function: the same seed and scale give the same list of
`Publication(time, producer, subject, event)`, sorted by time (deploy/local/history.py
publishes them). To publish only what Envol accepts, it plays what the services decide, with
the shipped catalogue and partner files: eligibility, places and waitlists (enrolment), the
cases' stages (financing), and which relay mission, desk or CCI cohort serves each export
support, or whether it waits (export). Partners report only on what they serve, while they
serve it, and never after the participation ended.

Outcomes get trends: participants' money and export turnover grow more than the comparison
group's (applicants not enrolled: waitlisted, denied, ineligible), later cohorts reach fewer
checkpoints, and some cohorts are small.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, NamedTuple

from deploy.local.history_facts import Facts
from deploy.local.history_outcomes import checkpoints
from deploy.local.history_world import STAFF, TODAY, Company, company, moment, workday
from envol_enrolment.catalogue import SHIPPED as CATALOGUE_DIR
from envol_enrolment.catalogue import Catalogue
from envol_enrolment.domain.model import Programme, Rule
from envol_export.partners import SHIPPED as EXPORT_DIR
from envol_export.partners import Partners as ExportPartners
from envol_shared.calendar import add_months
from envol_shared.contracts import enrolment as en
from envol_shared.contracts import export as ex
from envol_shared.events import CloudEvent, EventData, make_event

YEARS = (2024, 2025, 2026)
DEFAULT_SEED = 7

# Applications per year at scale 1.0, and the share of each year (2026 is not over).
APPLICANTS = {"AV-RD-LOAN": 30, "AV-INVESTORS-CLUB": 14, "AV-FIN-COACHING": 14, "AV-VIE-RELAY": 20,
              "PG-GROWTH-CONTRACT": 7, "PG-EXPORT-DESKS": 14, "AS-PRIVATE-FINANCING": 24,
              "AS-CCI-INTERNATIONAL": 12}
YEAR_SHARE = {2024: 1.0, 2025: 1.1, 2026: 0.7}
# Some cohorts are small on purpose: "too few to compare".
SMALL = {("AV-FIN-COACHING", 2024): 3, ("PG-GROWTH-CONTRACT", 2024): 4, ("AS-CCI-INTERNATIONAL", 2026): 4}
TARGETS = {"AV-VIE-RELAY": (("CA", 30), ("DE", 30), ("BR", 20), ("CN", 14), ("US", 6)),  # US: not served
           "PG-EXPORT-DESKS": (("US", 30), ("IN", 25), ("SG", 25), ("MA", 20)),
           "AS-CCI-INTERNATIONAL": (("US", 25), ("CA", 20), ("GB", 15), ("DE", 15), ("IN", 10), ("JP", 15))}
PREFIX = {"aerospace-valley": "av", "pegase": "pg", "astech": "as"}
# Hosts of the relay missions staff open when a country's SMEs wait too long.
HOSTS = {"CA": ("383474814", "Airbus (A220 site, Mirabel)"), "CN": ("383474814", "Airbus (Tianjin)"),
         "DE": ("383474814", "Airbus (Hamburg)"), "BR": ("562082909", "Safran (Rio de Janeiro)")}


class Publication(NamedTuple):
    """One event to publish: when it happened, who publishes it (the producer token; its NATS
    user is ``<cluster>-<producer>``), on which subject, and the CloudEvent itself."""

    time: datetime
    producer: str
    subject: str
    event: CloudEvent


@dataclass
class Unit:
    id: str
    pool: tuple[str, str, str | None]
    partner: str
    capacity: int
    ends_on: date
    workshops: dict[str, date] = field(default_factory=dict)
    occupied: int = 0


@dataclass
class App:
    id: str
    company: Company
    programme: Programme
    applied_on: date
    target: str | None
    project: dict[str, Any] | None
    journey: str
    status: str = "new"
    since: datetime | None = None  # when it reached its status
    submitted_at: datetime | None = None
    enrolled_at: datetime | None = None
    end_on: date | None = None  # its planned finish or withdrawal, None: still running at TODAY
    withdraws: bool = False
    start_on: date | None = None
    partner: str | None = None  # financing: who serves the case; export: the unit's partner
    unit: Unit | None = None
    waiting_key: int | None = None
    money: list[tuple[date, int]] = field(default_factory=list)  # private financing obtained
    contracts: list[tuple[date, str, int]] = field(default_factory=list)  # export contracts

    @property
    def cluster(self) -> str:
        return self.programme.cluster

    @property
    def holds_a_place(self) -> bool:
        return self.status in ("enrolled", "active")

    @property
    def is_export(self) -> bool:
        return self.programme.kind.value == "export"


class History(Facts):
    """Plays three years of the clusters' programmes, in the order things happen."""

    def __init__(self, seed: int, scale: float) -> None:
        self.rng = random.Random(seed)
        self.seed, self.scale = seed, scale
        self.catalogue = Catalogue.load(CATALOGUE_DIR)
        self.out: list[Publication] = []
        self.queue: list[tuple[datetime, int, Callable[..., None], tuple[Any, ...]]] = []
        self.counter = 0
        self.events = 0
        self.apps: list[App] = []
        self.companies: list[Company] = []
        self.taken: set[str] = set()
        self.units: list[Unit] = [
            Unit(u.id, u.pool, u.partner, u.capacity, u.ends_on or date(2099, 12, 31),
                 {k: date.fromisoformat(w["on"]) for k, w in u.workshops.items()})
            for u in ExportPartners.load(EXPORT_DIR).units(datetime.now(UTC))]
        self.staff_missions: set[str] = set()
        self.now = datetime(2024, 1, 1, tzinfo=UTC)  # the moment being played

    # ---- plumbing ----------------------------------------------------------------------------

    def at(self, when: datetime, action: Callable[..., None], *args: Any) -> None:
        self.counter += 1
        heapq.heappush(self.queue, (when, self.counter, action, args))

    def publish(self, when: datetime, producer: str, cluster: str, siren: str, data: EventData,
                journey: str) -> None:
        self.events += 1
        suffix = "" if self.seed == DEFAULT_SEED else f"-s{self.seed}"
        subject, event = make_event(data, cluster=cluster, producer=producer, company=siren,
                                    correlation_id=journey, time=when,
                                    event_id=f"history{suffix}-{self.events:06d}")
        self.out.append(Publication(when, producer, subject, event))

    def app_publish(self, when: datetime, producer: str, app: App, data: EventData) -> None:
        self.publish(when, producer, app.cluster, app.company.siren, data, app.journey)

    def reviewer(self, app: App) -> str:
        return f"{PREFIX[app.cluster]}-staff-0{self.rng.randint(1, 4)}"

    # ---- the plan: companies and their applications ---------------------------------------------

    def plan(self) -> None:
        rng = self.rng
        for programme in sorted(self.catalogue, key=lambda p: p.code):
            for year in YEARS:
                count = SMALL.get((programme.code, year))
                if count is None:
                    count = max(1, round(APPLICANTS[programme.code] * YEAR_SHARE[year] * self.scale
                                         * rng.uniform(0.8, 1.2)))
                for _ in range(count):
                    self.application(programme, year)
        for company_ in self.companies:
            first = min(a.applied_on for a in self.apps if a.company is company_)
            day = workday(max(date(2024, 1, 2), first - timedelta(days=rng.randint(3, 40))))
            self.at(moment(day, rng).replace(hour=6), self.register, company_)
        for app in self.apps:
            self.at(moment(app.applied_on, rng), self.submit, app)
        day = date(2025, 3, 3)
        while day < TODAY:  # staff look at the relays' waiting lists each month
            self.at(datetime.combine(day, time(6, 30), UTC), self.open_missions_where_needed)
            day = workday(add_months(day, 1).replace(day=1))

    def application(self, programme: Programme, year: int) -> None:
        rng = self.rng
        cluster = programme.cluster
        first = max(programme.opens_on, date(year, 1, 8))
        last = min(programme.closes_on or date(year, 12, 31), date(year, 12, 12), TODAY - timedelta(days=50))
        applied_on = workday(first + timedelta(days=rng.randint(0, (last - first).days)))
        if applied_on > last:
            applied_on = last - timedelta(days=3)
        # Some members come back for another programme; most apply once.
        others = [c for c in self.companies if c.cluster == cluster and c.sme
                  and not any(a.company is c and a.programme.code == programme.code for a in self.apps)]
        if others and rng.random() < 0.2:
            applicant = rng.choice(others)
        else:
            applicant = company(rng, len(self.companies), cluster, self.taken, sme=rng.random() > 0.04)
            self.companies.append(applicant)
        target = None
        if programme.code in TARGETS:
            countries, weights = zip(*TARGETS[programme.code], strict=True)
            target = rng.choices(countries, weights)[0]
        project = None
        if Rule.PUBLIC_PROJECT in programme.rules and rng.random() > 0.1:  # 1 in 10 has none
            label = applied_on - timedelta(days=rng.randint(30, 300))
            project = {"reference": f"FUI-{label.year}-{rng.randint(1, 999):03d}",
                       "call": f"FUI AAP {label.year}", "labelling_cluster": cluster,
                       "label_date": label.isoformat(),
                       "funder": rng.choice(("Bpifrance", "Région Occitanie", "Bpifrance and the Region"))}
        year_apps = [a for a in self.apps if a.cluster == cluster and a.applied_on.year == year]
        suffix = "" if self.seed == DEFAULT_SEED else f"-s{self.seed}"
        app_id = f"{PREFIX[cluster]}-{year}-{len(year_apps) + 1:04d}{suffix}"
        self.apps.append(App(app_id, applicant, programme, applied_on, target, project, f"journey-{app_id}"))

    # ---- enrolment ------------------------------------------------------------------------------

    def register(self, when: datetime, company_: Company) -> None:
        data = en.CompanyRegistered(
            company_id=company_.siren, legal_name=company_.name, region=company_.region,
            clusters=[company_.cluster], staff_awu=company_.staff_awu, turnover_cents=company_.turnover_cents,
            balance_sheet_cents=company_.balance_sheet_cents, accounts_year=when.year - 1,
            holdings=company_.holdings)  # type: ignore[arg-type]
        self.publish(when, STAFF, company_.cluster, company_.siren, data,
                     f"registration-{company_.cluster}-{company_.siren}")

    def submit(self, when: datetime, app: App) -> None:
        rng = self.rng
        self.app_publish(when, STAFF, app, en.ApplicationSubmitted(
            application_id=app.id, company_id=app.company.siren, programme=app.programme.code,
            applied_on=app.applied_on, target_country=app.target, project=app.project))  # type: ignore[arg-type]
        app.submitted_at = app.since = when
        rules = app.programme.rules
        eligible = (app.company.sme and (app.project is not None or Rule.PUBLIC_PROJECT not in rules)
                    and (app.target is None or app.target in app.programme.countries))
        if not eligible:
            app.status = "ineligible"
            return
        app.status = "eligible"
        later = workday(app.applied_on + timedelta(days=rng.randint(7, 25)))
        if rng.random() < 0.03:
            self.at(moment(later, rng), self.withdraw, app, "the company withdrew its application")
        elif later < TODAY:
            self.at(moment(later, rng), self.review, app)

    def review(self, when: datetime, app: App) -> None:
        if app.status != "eligible":
            return
        accept = self.rng.random() < min(0.92, max(0.35, 0.68 + 0.15 * app.company.quality))
        reason = "committee convinced by the plan" if accept else "project not mature enough yet"
        self.app_publish(when, STAFF, app, en.ApplicationReviewed(
            application_id=app.id, decision="accept" if accept else "deny", reviewer=self.reviewer(app),
            reason=reason))
        app.since = when
        if not accept:
            app.status = "denied"
        elif self.places_taken(app.programme) < app.programme.capacity:
            self.enrol(when, app)
        else:
            app.status = "waitlisted"
            if self.rng.random() < 0.15:  # some stop waiting
                later = workday(when.date() + timedelta(days=self.rng.randint(90, 220)))
                if later < TODAY:
                    self.at(moment(later, self.rng), self.withdraw, app, "no longer waiting for a place")

    def places_taken(self, programme: Programme) -> int:
        return sum(1 for a in self.apps if a.programme is programme and a.holds_a_place)

    def enrol(self, when: datetime, app: App) -> None:
        rng = self.rng
        app.status, app.since, app.enrolled_at = "enrolled", when, when
        app.start_on = workday(when.date() + timedelta(days=rng.randint(5, 20)))
        if rng.random() < 0.08:
            app.withdraws = True
            app.end_on = workday(app.start_on + timedelta(days=rng.randint(60, 300)))
        else:
            app.end_on = workday(app.start_on + timedelta(days=rng.randint(345, 390)))
        if app.end_on >= TODAY:
            app.end_on = None
        if app.start_on < TODAY:
            self.at(moment(app.start_on, rng), self.start, app)
        if app.end_on is not None:
            if app.withdraws:
                self.at(moment(app.end_on, rng), self.withdraw, app, "company withdrew: priorities changed")
            else:
                self.at(moment(app.end_on, rng), self.finish, app)
        if app.is_export:
            self.counter += 1
            app.waiting_key = self.counter
            self.place(when, app)
        else:
            self.plan_financing(app)

    def start(self, when: datetime, app: App) -> None:
        if app.status != "enrolled":
            return
        self.app_publish(when, STAFF, app, en.ParticipationStarted(application_id=app.id,
                                                                   by=self.reviewer(app)))
        app.status, app.since = "active", when

    def finish(self, when: datetime, app: App) -> None:
        if app.status != "active":
            return
        self.app_publish(when, STAFF, app, en.ParticipationFinished(application_id=app.id,
                                                                    by=self.reviewer(app)))
        self.leave(when, app, "completed")

    def withdraw(self, when: datetime, app: App, reason: str) -> None:
        if app.status not in ("eligible", "waitlisted", "enrolled", "active"):
            return
        self.app_publish(when, STAFF, app, en.WithdrawalRequested(
            application_id=app.id, by=self.reviewer(app), reason=reason))
        self.leave(when, app, "withdrawn")

    def leave(self, when: datetime, app: App, status: str) -> None:
        """As enrolment, financing and export do: the place frees for the oldest waitlisted."""
        held = app.holds_a_place
        app.status, app.since = status, when
        if app.unit is not None:  # export: the support closes, its place goes to who waits
            unit, app.unit = app.unit, None
            unit.occupied -= 1
            self.fill(when, unit.pool)
        app.partner = None if app.is_export else app.partner
        if not held:
            return
        free = app.programme.capacity - self.places_taken(app.programme)
        waiting = sorted((a for a in self.apps if a.programme is app.programme and a.status == "waitlisted"),
                         key=lambda a: (a.since, a.submitted_at, a.id))
        for promoted in waiting[:max(free, 0)]:
            self.enrol(when, promoted)

    # ---- export places --------------------------------------------------------------------------

    def pool_of(self, app: App) -> tuple[str, str, str | None]:
        country = None if app.programme.code == "AS-CCI-INTERNATIONAL" else app.target
        return (app.cluster, app.programme.code, country)

    def choose(self, pool: tuple[str, str, str | None]) -> Unit | None:
        free = [u for u in self.units if u.pool == pool and u.capacity > u.occupied]
        # As the export service: the unit that runs longest, then the emptiest, then the first by id.
        return min(free, key=lambda u: (-u.ends_on.toordinal(), -(u.capacity - u.occupied), u.id),
                   default=None)

    def place(self, when: datetime, app: App) -> None:
        unit = self.choose(self.pool_of(app))
        if unit is not None:
            self.assign(when, app, unit)

    def fill(self, when: datetime, pool: tuple[str, str, str | None]) -> None:
        waiting = sorted((a for a in self.apps if a.is_export and a.holds_a_place and a.unit is None
                          and self.pool_of(a) == pool), key=lambda a: a.waiting_key or 0)
        for app in waiting:
            unit = self.choose(pool)
            if unit is None:
                return
            self.assign(when, app, unit)

    def assign(self, when: datetime, app: App, unit: Unit) -> None:
        unit.occupied += 1
        app.unit, app.partner = unit, unit.partner
        self.plan_export(when, app, unit)

    def open_missions_where_needed(self, when: datetime) -> None:
        """Staff open a second mission in a country whose SMEs have waited over six weeks."""
        for country in ("CA", "CN", "BR", "DE"):
            pool = ("aerospace-valley", "AV-VIE-RELAY", country)
            waiting = [a for a in self.apps if a.is_export and a.holds_a_place and a.unit is None
                       and self.pool_of(a) == pool and a.enrolled_at
                       and when - a.enrolled_at > timedelta(days=42)]
            if not waiting or country in self.staff_missions:
                continue
            self.staff_missions.add(country)
            starts_on = when.date()
            ends_on = add_months(starts_on, 24) - timedelta(days=1)
            mission = f"av-vie-{country.lower()}-{starts_on.year}b"
            host_siren, host = HOSTS[country]
            self.publish(when, STAFF, "aerospace-valley", host_siren, ex.MissionOpened(
                mission_id=mission, programme="AV-VIE-RELAY", country=country, host_siren=host_siren,
                host_company=host, volunteer_id=f"vie-av-{country.lower()}-02", starts_on=starts_on,
                ends_on=ends_on, capacity=3, relay=f"vie-relay-{country.lower()}", by="av-staff-01"),
                f"mission-{mission}")
            self.units.append(Unit(mission, pool, f"vie-relay-{country.lower()}", 3, ends_on))
            self.fill(when, pool)

    # ---- running it -----------------------------------------------------------------------------

    def run(self) -> list[Publication]:
        self.plan()
        while self.queue:
            when, _, action, args = heapq.heappop(self.queue)
            self.now = when
            action(when, *args)
        extra = checkpoints(self)
        # Checkpoints change no place nor stage: they join the others in time order.
        return sorted(self.out + extra, key=lambda p: p.time)


def generate(seed: int = DEFAULT_SEED, scale: float = 1.0) -> list[Publication]:
    """Every event of the history, in the order to publish them."""
    return History(seed, scale).run()


__all__ = ["DEFAULT_SEED", "TODAY", "YEARS", "History", "Publication", "generate"]
