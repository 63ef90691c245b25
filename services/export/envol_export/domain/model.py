"""Export support: one per enrolment in an export programme, followed from enrolment to
contracts signed abroad.

An SME is served by a *unit* of its programme, which has a number of places:

    vie_relay       a relay mission: one VIE volunteer (an id), lodged by a large member
                    company in one country, shared by several SMEs (Aerospace Valley)
    export_desk     an export desk: a reception area and a sales force in one country (Pégase)
    cci_collective  a CCI cohort: SMEs building their international strategy in workshops (ASTech)

The units of one cluster, programme and country (cohorts have none) form a *pool*. A support
opens, then takes a place on the unit of its pool with a free place that runs longest, or
waits when every unit is full or none exists yet. A freed place goes to the oldest waiting
support of the pool. When a unit ends, each of its SMEs moves to another unit of the pool
with a free place, else waits for one if the pool has another unit, else its support closes;
a CCI cohort that ends closes its supports, the collective action being over.

Partners' facts (leads, meetings, prospect lists, set-ups, workshops, strategies, contracts)
are appended to the support's history: dated between the enrolment and the day they are
published, and, for relays and desks, in the unit's country. A refused fact raises
DomainError with the reason, and changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Any

from envol_shared.calendar import add_months, paris_date


class DomainError(Exception):
    """A fact the domain refuses; the reason goes back to whoever sent it."""


class SupportKind(StrEnum):
    VIE_RELAY = "vie_relay"
    EXPORT_DESK = "export_desk"
    CCI_COLLECTIVE = "cci_collective"


class UnitKind(StrEnum):
    RELAY_MISSION = "relay_mission"
    EXPORT_DESK = "export_desk"
    CCI_COHORT = "cci_cohort"


class PartnerKind(StrEnum):
    RELAY = "relay"
    DESK = "desk"
    CCI = "cci"


class SupportStatus(StrEnum):
    OPENED = "opened"
    ASSIGNED = "assigned"
    WAITING = "waiting"
    CLOSED = "closed"


# Which kind of unit serves each kind of support, and which kind of partner runs it.
UNIT_OF: dict[SupportKind, UnitKind] = {
    SupportKind.VIE_RELAY: UnitKind.RELAY_MISSION,
    SupportKind.EXPORT_DESK: UnitKind.EXPORT_DESK,
    SupportKind.CCI_COLLECTIVE: UnitKind.CCI_COHORT,
}
RUN_BY: dict[UnitKind, PartnerKind] = {
    UnitKind.RELAY_MISSION: PartnerKind.RELAY,
    UnitKind.EXPORT_DESK: PartnerKind.DESK,
    UnitKind.CCI_COHORT: PartnerKind.CCI,
}
UNIT_NAMES = {UnitKind.RELAY_MISSION: "relay mission", UnitKind.EXPORT_DESK: "export desk",
              UnitKind.CCI_COHORT: "CCI cohort"}
CHECKPOINT_MONTHS = {"month_6": 6, "month_12": 12, "month_24": 24}
CHECKPOINT_ORDER = ("baseline", *CHECKPOINT_MONTHS)
MISSION_MONTHS = (6, 24)  # Business France's VIE: 6 to 24 months

# (cluster, programme, country): the units that can serve a support; country None for cohorts.
Pool = tuple[str, str, str | None]


def euros(cents: int) -> str:
    """1234567 -> '12,345.67 €' (reasons are read by partners' developers and staff)."""
    return f"{cents // 100:,}.{cents % 100:02d} €"


def mission_length_problem(starts_on: date, ends_on: date) -> str | None:
    """Why a VIE mission from `starts_on` to `ends_on` (its last day) is too short or too long."""
    shortest, longest = (add_months(starts_on, months) - timedelta(days=1) for months in MISSION_MONTHS)
    if shortest <= ends_on <= longest:
        return None
    return (f"a VIE mission lasts 6 to 24 months: starting on {starts_on}, its last day is between "
            f"{shortest} and {longest}, not {ends_on}")


# ---- units: relay missions, export desks, CCI cohorts -------------------------------------------


@dataclass
class UnitEntry:
    """One line of a unit's history: its occupancy over time."""

    unit_id: str
    at: datetime
    fact: str
    support_id: str | None
    occupied: int
    summary: str


@dataclass
class SupportUnit:
    id: str
    cluster: str
    programme: str
    kind: UnitKind
    country: str | None  # None for a CCI cohort: it serves any target country
    partner: str  # producer id of the relay, desk or CCI that reports on its SMEs
    capacity: int
    starts_on: date
    ends_on: date | None  # last day; None for a desk without planned end
    opened_at: datetime
    origin: str  # "configuration", or the staff producer that opened it
    host_siren: str | None = None  # relay missions: the large member company lodging the VIE
    host_company: str | None = None
    volunteer_id: str | None = None  # an id, never a name
    # Desk: reception area and sales force; cohort: its workshops {id: {title, on}}.
    details: dict[str, Any] = field(default_factory=dict)
    occupied: int = 0
    ended_at: datetime | None = None
    end_reason: str | None = None
    history: list[UnitEntry] = field(default_factory=list)

    # ---- reading -------------------------------------------------------------------------

    @property
    def pool(self) -> Pool:
        return (self.cluster, self.programme, self.country)

    @property
    def is_ended(self) -> bool:
        return self.ended_at is not None

    @property
    def free_places(self) -> int:
        # A capacity lowered below the occupancy evicts nobody: it only admits nobody new.
        return 0 if self.is_ended else max(self.capacity - self.occupied, 0)

    @property
    def name(self) -> str:
        return f"{UNIT_NAMES[self.kind]} {self.id}" + (f" ({self.country})" if self.country else "")

    @property
    def workshops(self) -> dict[str, dict[str, str]]:
        return self.details.get("workshops", {})

    # ---- changes ------------------------------------------------------------------------

    def _record(self, at: datetime, fact: str, support_id: str | None, summary: str) -> UnitEntry:
        entry = UnitEntry(self.id, at, fact, support_id, self.occupied, summary)
        self.history.append(entry)
        return entry

    def opened(self, *, at: datetime, by: str) -> UnitEntry:
        until = f" until {self.ends_on}" if self.ends_on else ""
        host = f", lodged by {self.host_company}" if self.host_company else ""
        return self._record(at, "unit.opened", None,
                            f"{self.name} opened by {by}: {self.capacity} places{until}{host}, "
                            f"run by {self.partner}")

    def take(self, support_id: str, *, at: datetime) -> UnitEntry:
        if self.is_ended:
            raise DomainError(f"{self.name} ended on {paris_date(self.ended_at)}")  # type: ignore[arg-type]
        if self.occupied >= self.capacity:
            raise DomainError(f"{self.name} is full ({self.capacity} places)")
        self.occupied += 1
        return self._record(at, "place.taken", support_id,
                            f"support {support_id} takes a place ({self.occupied}/{self.capacity})")

    def release(self, support_id: str, *, at: datetime, why: str) -> UnitEntry:
        if self.occupied <= 0:
            raise DomainError(f"{self.name} has no place taken to free")
        self.occupied -= 1
        return self._record(at, "place.freed", support_id,
                            f"support {support_id} leaves ({self.occupied}/{self.capacity}): {why}")

    def end(self, *, at: datetime, reason: str) -> UnitEntry:
        if self.is_ended:
            raise DomainError(f"{self.name} has already ended ({self.end_reason})")
        self.ended_at = at
        self.end_reason = reason
        return self._record(at, "unit.ended", None, f"{self.name} ended: {reason}")

    def shorten(self, ends_on: date, *, at: datetime, by: str, reason: str) -> UnitEntry:
        """Bring a mission's end forward to a later day than today (today ends it at once)."""
        if self.is_ended:
            raise DomainError(f"{self.name} has already ended ({self.end_reason})")
        if self.ends_on is not None and ends_on > self.ends_on:
            raise DomainError(f"{self.name} ends on {self.ends_on}: it can end earlier, not later "
                              f"({ends_on})")
        self.ends_on = ends_on
        return self._record(at, "unit.shortened", None, f"{self.name} now ends on {ends_on} ({by}: {reason})")

    def reconfigure(self, configured: SupportUnit, *, at: datetime) -> list[str]:
        """Take the configuration file's values; return the fields that changed. An end that
        staff brought forward stays, unless the file brings it further forward."""
        for name in ("cluster", "programme", "kind", "country"):
            if getattr(self, name) != getattr(configured, name):
                raise DomainError(f"{self.name}: {name} cannot change once the unit exists "
                                  f"({getattr(self, name)} -> {getattr(configured, name)}); give the new "
                                  "unit an id of its own")
        shortened = any(entry.fact == "unit.shortened" for entry in self.history)
        if shortened and self.ends_on is not None and (configured.ends_on or date.max) > self.ends_on:
            configured.ends_on = self.ends_on
        changed = [name for name in ("partner", "capacity", "starts_on", "ends_on", "host_siren",
                                     "host_company", "volunteer_id", "details")
                   if getattr(self, name) != getattr(configured, name)]
        if changed:
            summary = ", ".join(f"{name} {getattr(self, name)} -> {getattr(configured, name)}"
                                for name in changed if name != "details")
            for name in changed:
                setattr(self, name, getattr(configured, name))
            self._record(at, "unit.reconfigured", None,
                         f"configuration changed: {summary or 'details'}")
        return changed


# ---- supports ------------------------------------------------------------------------------------


@dataclass
class ExportContract:
    support_id: str
    contract_id: str
    country: str
    buyer: str  # an organisation
    amount_cents: int
    signed_on: date
    reported_by: str


@dataclass
class ExportCheckpoint:
    support_id: str
    name: str
    recorded_on: date
    export_turnover_cents: int
    countries_served: list[str]
    contracts_to_date: int
    note: str | None = None


@dataclass
class SupportEntry:
    """One line of a support's history: what happened, when, according to whom."""

    support_id: str
    at: datetime
    fact: str
    by: str
    summary: str
    status: str


@dataclass
class ExportSupport:
    id: str  # the application id
    siren: str
    cluster: str
    programme: str
    cohort: str
    kind: SupportKind
    target_country: str | None
    correlation_id: str
    enrolled_at: datetime
    opened_at: datetime
    status: SupportStatus = SupportStatus.OPENED
    unit_id: str | None = None
    partner: str | None = None
    waiting_since: datetime | None = None
    first_assigned_at: datetime | None = None
    contracted_cents: int = 0
    first_contract_on: date | None = None
    last_news_at: datetime | None = None
    closed_at: datetime | None = None
    close_reason: str | None = None
    # Partners' facts (leads, meetings, prospect lists, set-up, workshops, strategy), as JSON.
    details: dict[str, Any] = field(default_factory=dict)
    contracts: list[ExportContract] = field(default_factory=list)
    checkpoints: list[ExportCheckpoint] = field(default_factory=list)
    history: list[SupportEntry] = field(default_factory=list)

    # ---- reading -----------------------------------------------------------------------

    @property
    def pool(self) -> Pool:
        country = None if self.kind is SupportKind.CCI_COLLECTIVE else self.target_country
        return (self.cluster, self.programme, country)

    @property
    def is_closed(self) -> bool:
        return self.status is SupportStatus.CLOSED

    @property
    def leads(self) -> int:
        return len(self.details.get("leads", {}))

    @property
    def meetings(self) -> int:
        return len(self.details.get("relay_meetings", [])) + len(self.details.get("desk_meetings", []))

    def checkpoint(self, name: str) -> ExportCheckpoint | None:
        return next((c for c in self.checkpoints if c.name == name), None)

    def new_countries(self) -> set[str]:
        """Countries entered since the baseline: where it signed a contract, or which its latest
        checkpoint lists, and which the baseline did not."""
        baseline = self.checkpoint("baseline")
        later = [c for c in self.checkpoints if c.name != "baseline"]
        latest = max(later, key=lambda c: CHECKPOINT_ORDER.index(c.name), default=None)
        reached = {c.country for c in self.contracts} | set(latest.countries_served if latest else [])
        return reached - set(baseline.countries_served if baseline else [])

    # ---- what every fact goes through --------------------------------------------------------

    def _record(self, at: datetime, fact: str, by: str, summary: str) -> SupportEntry:
        entry = SupportEntry(self.id, at, fact, by, summary, self.status.value)
        self.history.append(entry)
        self.last_news_at = at if self.last_news_at is None else max(self.last_news_at, at)
        return entry

    def _require_open(self) -> None:
        if self.is_closed:
            raise DomainError(f"support {self.id} is closed ({self.close_reason})")

    def _require_served(self, what: str, kind: SupportKind) -> None:
        self._require_open()
        if self.kind is not kind:
            raise DomainError(f"support {self.id} is a {self.kind.value} support: {what} belongs to "
                              f"{kind.value} supports")
        if self.unit_id is None:
            raise DomainError(f"support {self.id} is waiting for a place: no {UNIT_NAMES[UNIT_OF[kind]]} "
                              "serves it yet")

    def _require_in_country(self, what: str, country: str) -> None:
        if country != self.target_country:
            raise DomainError(f"{what} in {country} refused: {self.unit_id} covers "
                              f"{self.target_country} only")

    def _require_dated(self, what: str, day: date, at: datetime) -> None:
        enrolled_on = paris_date(self.enrolled_at)
        # A day's leeway: a partner abroad may already be on tomorrow's date.
        if day > paris_date(at) + timedelta(days=1):
            raise DomainError(f"{what} dated {day} is in the future (published on {paris_date(at)})")
        if day < enrolled_on:
            raise DomainError(f"{what} dated {day} is before support {self.id} began: enrolled in "
                              f"{self.programme} on {enrolled_on}")

    # ---- opening, places, closing -------------------------------------------------------------

    @classmethod
    def open(cls, *, id: str, siren: str, cluster: str, programme: str, cohort: str, kind: SupportKind,
             target_country: str | None, correlation_id: str, enrolled_at: datetime,
             at: datetime) -> ExportSupport:
        support = cls(id=id, siren=siren, cluster=cluster, programme=programme, cohort=cohort, kind=kind,
                      target_country=target_country, correlation_id=correlation_id,
                      enrolled_at=enrolled_at, opened_at=at)
        country = f" towards {target_country}" if target_country else ""
        support._record(at, "support.opened", "export",
                        f"{kind.value} support opened for {programme}{country}")
        return support

    def assign(self, unit: SupportUnit, *, at: datetime, by: str, why: str) -> SupportEntry:
        self._require_open()
        if unit.pool != self.pool:
            raise DomainError(f"{unit.name} does not serve support {self.id} ({self.programme}, "
                              f"{self.target_country})")
        if self.unit_id is not None:
            raise DomainError(f"support {self.id} already has a place on {self.unit_id}")
        unit.take(self.id, at=at)
        self.unit_id = unit.id
        self.partner = unit.partner
        self.status = SupportStatus.ASSIGNED
        self.waiting_since = None
        if self.first_assigned_at is None:
            self.first_assigned_at = at
        return self._record(at, "support.assigned", by, f"place on {unit.name}, run by {unit.partner}: {why}")

    def wait(self, *, at: datetime, by: str, why: str) -> SupportEntry:
        self._require_open()
        if self.unit_id is not None:
            raise DomainError(f"support {self.id} has a place on {self.unit_id}: it does not wait")
        self.status = SupportStatus.WAITING
        self.waiting_since = at
        return self._record(at, "support.waitlisted", by, f"waiting for a place: {why}")

    def _leave(self, unit: SupportUnit, *, at: datetime, why: str) -> None:
        if self.unit_id != unit.id:
            raise DomainError(f"support {self.id} has no place on {unit.id}")
        unit.release(self.id, at=at, why=why)
        self.unit_id = None
        self.partner = None

    def move(self, from_unit: SupportUnit, to_unit: SupportUnit, *, at: datetime, by: str,
             why: str) -> SupportEntry:
        self._leave(from_unit, at=at, why=why)
        return self.assign(to_unit, at=at, by=by, why=f"{why}; moved from {from_unit.id}")

    def requeue(self, from_unit: SupportUnit, *, at: datetime, by: str, why: str) -> SupportEntry:
        self._leave(from_unit, at=at, why=why)
        return self.wait(at=at, by=by, why=why)

    def close(self, *, at: datetime, by: str, reason: str, unit: SupportUnit | None) -> SupportEntry:
        """Close the support; `unit` is the one it has a place on, whose place it frees."""
        self._require_open()
        if self.unit_id is not None:
            if unit is None:
                raise DomainError(f"closing support {self.id} frees its place on {self.unit_id}: "
                                  "that unit is needed")
            self._leave(unit, at=at, why=f"support closed: {reason}")
        self.status = SupportStatus.CLOSED
        self.waiting_since = None
        self.closed_at = at
        self.close_reason = reason
        return self._record(at, "support.closed", by, f"closed: {reason}")

    # ---- VIE relays ---------------------------------------------------------------------------

    def report_lead(self, *, lead_id: str, country: str, buyer: str, on: date, estimated_cents: int | None,
                    at: datetime, by: str) -> SupportEntry:
        self._require_served("a lead", SupportKind.VIE_RELAY)
        self._require_in_country(f"lead {lead_id}", country)
        self._require_dated(f"lead {lead_id}", on, at)
        leads = self.details.setdefault("leads", {})
        if lead_id in leads:
            raise DomainError(f"lead {lead_id} is already reported on support {self.id}")
        leads[lead_id] = {"country": country, "buyer": buyer, "reported_on": on.isoformat(),
                          "estimated_cents": estimated_cents}
        worth = f", worth about {euros(estimated_cents)}" if estimated_cents else ""
        return self._record(at, "relay.lead.reported", by, f"lead {lead_id} in {country}: {buyer}{worth}")

    def hold_meeting(self, *, country: str, organisation: str, on: date, lead_id: str | None, at: datetime,
                     by: str) -> SupportEntry:
        self._require_served("a relay meeting", SupportKind.VIE_RELAY)
        self._require_in_country("a meeting", country)
        self._require_dated("a meeting", on, at)
        if lead_id is not None and lead_id not in self.details.get("leads", {}):
            raise DomainError(f"lead {lead_id} was never reported on support {self.id}")
        self.details.setdefault("relay_meetings", []).append(
            {"country": country, "organisation": organisation, "held_on": on.isoformat(), "lead_id": lead_id})
        return self._record(at, "relay.meeting.held", by, f"meeting with {organisation} in {country}")

    # ---- export desks ---------------------------------------------------------------------------

    def deliver_prospects(self, *, list_id: str, country: str, prospects: int, on: date, at: datetime,
                          by: str) -> SupportEntry:
        self._require_served("a prospect list", SupportKind.EXPORT_DESK)
        self._require_in_country(f"prospect list {list_id}", country)
        self._require_dated(f"prospect list {list_id}", on, at)
        lists = self.details.setdefault("prospect_lists", {})
        if list_id in lists:
            raise DomainError(f"prospect list {list_id} is already delivered on support {self.id}")
        lists[list_id] = {"country": country, "prospects": prospects, "delivered_on": on.isoformat()}
        return self._record(at, "desk.prospects.delivered", by,
                            f"prospect list {list_id}: {prospects} prospects in {country}")

    def arrange_meeting(self, *, country: str, organisation: str, on: date, at: datetime,
                        by: str) -> SupportEntry:
        self._require_served("a desk meeting", SupportKind.EXPORT_DESK)
        self._require_in_country("a meeting", country)
        self._require_dated("a meeting", on, at)
        self.details.setdefault("desk_meetings", []).append(
            {"country": country, "organisation": organisation, "held_on": on.isoformat()})
        return self._record(at, "desk.meeting.arranged", by, f"meeting with {organisation} in {country}")

    def complete_setup(self, *, country: str, setup: str, on: date, at: datetime, by: str) -> SupportEntry:
        self._require_served("a local set-up", SupportKind.EXPORT_DESK)
        self._require_in_country("a set-up", country)
        self._require_dated("the set-up", on, at)
        done = self.details.get("setup")
        if done is not None:
            raise DomainError(f"support {self.id} is already set up in {done['country']} "
                              f"({done['setup']}, {done['completed_on']})")
        self.details["setup"] = {"country": country, "setup": setup, "completed_on": on.isoformat()}
        return self._record(at, "desk.setup.completed", by, f"set up in {country}: {setup.replace('_', ' ')}")

    # ---- CCI collective action --------------------------------------------------------------------

    def attend_workshop(self, unit: SupportUnit, *, workshop_id: str, on: date, attendees: int, at: datetime,
                        by: str) -> SupportEntry:
        self._require_served("workshop attendance", SupportKind.CCI_COLLECTIVE)
        workshop = unit.workshops.get(workshop_id)
        if workshop is None:
            raise DomainError(f"{unit.name} has no workshop {workshop_id}; it has "
                              f"{', '.join(unit.workshops) or 'none'}")
        if on.isoformat() != workshop["on"]:
            raise DomainError(f"workshop {workshop_id} of {unit.name} is on {workshop['on']}, not {on}")
        self._require_dated(f"workshop {workshop_id}", on, at)
        attended = self.details.setdefault("workshops", {})
        if workshop_id in attended:
            raise DomainError(f"support {self.id} already attended workshop {workshop_id}")
        attended[workshop_id] = {"on": on.isoformat(), "attendees": attendees}
        return self._record(at, "cci.workshop.attended", by,
                            f"workshop {workshop_id} '{workshop['title']}' attended ({attendees} people)")

    def deliver_strategy(self, *, on: date, priority_countries: list[str], at: datetime,
                         by: str) -> SupportEntry:
        self._require_served("an international strategy", SupportKind.CCI_COLLECTIVE)
        self._require_dated("the strategy", on, at)
        if not self.details.get("workshops"):
            raise DomainError(f"no strategy before any workshop: support {self.id} attended none")
        if "strategy" in self.details:
            raise DomainError(f"the strategy of support {self.id} was already delivered on "
                              f"{self.details['strategy']['delivered_on']}")
        self.details["strategy"] = {"delivered_on": on.isoformat(), "priority_countries": priority_countries}
        return self._record(at, "cci.strategy.delivered", by,
                            f"international strategy delivered: priority {', '.join(priority_countries)}")

    # ---- contracts ---------------------------------------------------------------------------------

    def sign_contract(self, contract: ExportContract, *, at: datetime, by: str, by_staff: bool,
                      ceiling_cents: int) -> SupportEntry:
        """A contract signed abroad. The partner serving the support reports it while it serves
        (a relay or a desk: in its country); staff may report one anywhere, even after closing,
        since outcomes are measured for 24 months."""
        if not by_staff:
            self._require_open()
            if self.unit_id is None:
                raise DomainError(f"support {self.id} is waiting for a place: no partner serves it yet")
            if self.kind is not SupportKind.CCI_COLLECTIVE:
                self._require_in_country(f"contract {contract.contract_id}", contract.country)
        self._require_dated(f"contract {contract.contract_id}", contract.signed_on, at)
        if contract.amount_cents > ceiling_cents:
            raise DomainError(f"contract {contract.contract_id} of {euros(contract.amount_cents)} exceeds "
                              f"the {euros(ceiling_cents)} the cluster deems plausible for one SME "
                              "contract: check the amount (in cents)")
        if any(c.contract_id == contract.contract_id for c in self.contracts):
            raise DomainError(f"contract {contract.contract_id} is already recorded on support {self.id}")
        self.contracts.append(contract)
        self.contracted_cents += contract.amount_cents
        if self.first_contract_on is None or contract.signed_on < self.first_contract_on:
            self.first_contract_on = contract.signed_on
        return self._record(at, "export.contract.signed", by,
                            f"contract {contract.contract_id} signed in {contract.country} with "
                            f"{contract.buyer} for {euros(contract.amount_cents)}")

    # ---- outcome checkpoints -------------------------------------------------------------------------

    def record_checkpoint(self, checkpoint: ExportCheckpoint, *, at: datetime, by: str) -> SupportEntry:
        # Allowed on a closed support: outcomes are measured for 24 months whatever happened.
        if self.checkpoint(checkpoint.name) is not None:
            raise DomainError(f"checkpoint {checkpoint.name} of support {self.id} is already recorded")
        baseline = self.checkpoint("baseline")
        if checkpoint.name != "baseline" and baseline is None:
            raise DomainError(f"record the baseline of support {self.id} before checkpoint {checkpoint.name}")
        self._require_dated(f"checkpoint {checkpoint.name}", checkpoint.recorded_on, at)
        if baseline is not None and checkpoint.contracts_to_date < baseline.contracts_to_date:
            raise DomainError(f"{checkpoint.contracts_to_date} contracts to date is fewer than the "
                              f"{baseline.contracts_to_date} of the baseline of support {self.id}")
        self.checkpoints.append(checkpoint)
        served = ", ".join(sorted(checkpoint.countries_served)) or "none"
        new = "" if baseline is None else (
            f"; new since the baseline: {', '.join(sorted(self.new_countries())) or 'none'}")
        return self._record(at, "checkpoint.recorded", by,
                            f"{checkpoint.name}: export turnover {euros(checkpoint.export_turnover_cents)}, "
                            f"countries served {served}, {checkpoint.contracts_to_date} contract(s) "
                            f"to date{new}")


# ---- placing supports: pure decisions the service layer applies under the pool's lock ------------


def choose_unit(pool: Iterable[SupportUnit]) -> SupportUnit | None:
    """The unit with a free place that runs longest (an SME is served as long as possible), then
    the emptiest, then the first by id: the same answer on every instance."""
    free = [unit for unit in pool if unit.free_places > 0]
    return min(free, key=lambda u: (-(u.ends_on or date.max).toordinal(), -u.free_places, u.id), default=None)


def waiting_order(support: ExportSupport) -> tuple[datetime, datetime, str]:
    """Oldest waiting first."""
    return (support.waiting_since or support.opened_at, support.opened_at, support.id)


def why_no_place(pool: list[SupportUnit], support: ExportSupport) -> str:
    if not pool:
        country = f" in {support.target_country}" if support.pool[2] else ""
        return f"no {UNIT_NAMES[UNIT_OF[support.kind]]} of {support.programme}{country} yet"
    return "; ".join(f"{unit.name} is full ({unit.capacity} places)" for unit in pool)


def place(support: ExportSupport, pool: list[SupportUnit], *, at: datetime, by: str,
          why: str) -> SupportEntry:
    """A place on the best unit of the pool, or the waiting list."""
    unit = choose_unit(pool)
    if unit is not None:
        return support.assign(unit, at=at, by=by, why=why)
    return support.wait(at=at, by=by, why=f"{why}; {why_no_place(pool, support)}")


def fill_places(pool: list[SupportUnit], waiting: list[ExportSupport], *, at: datetime, by: str,
                why: str) -> list[tuple[ExportSupport, SupportEntry]]:
    """Give every free place of the pool to the oldest waiting supports."""
    placed = []
    for support in sorted(waiting, key=waiting_order):
        unit = choose_unit(pool)
        if unit is None:
            break
        placed.append((support, support.assign(unit, at=at, by=by, why=why)))
    return placed


def end_unit(unit: SupportUnit, supports: list[ExportSupport], pool: list[SupportUnit], *, at: datetime,
             by: str, reason: str) -> tuple[UnitEntry, list[tuple[ExportSupport, SupportEntry]]]:
    """End `unit`: each of its SMEs (oldest support first) moves to another unit of the pool with
    a free place, else waits if the pool has another unit, else its support closes. A cohort's
    SMEs are not moved: the collective action is over, their supports close."""
    others = [u for u in pool if u.id != unit.id and u.pool == unit.pool and not u.is_ended]
    why = f"{unit.name} ended ({reason})"
    outcomes = []
    for support in sorted(supports, key=lambda s: (s.opened_at, s.id)):
        if unit.kind is UnitKind.CCI_COHORT:
            entry = support.close(at=at, by=by, reason=f"{why}: the collective action is over", unit=unit)
        elif (other := choose_unit(others)) is not None:
            entry = support.move(unit, other, at=at, by=by, why=why)
        elif others:
            entry = support.requeue(unit, at=at, by=by, why=f"{why}; {why_no_place(others, support)}")
        else:
            entry = support.close(at=at, by=by, unit=unit,
                                  reason=f"{why}, and no other {UNIT_NAMES[unit.kind]} of {unit.programme} "
                                         f"serves {unit.country}")
        outcomes.append((support, entry))
    return unit.end(at=at, reason=reason), outcomes
