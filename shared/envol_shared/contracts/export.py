"""Events of the export service.

Export support opens when enrolment publishes ``application.enrolled`` for an export
programme; its id is the application id (``support_id``), which cluster staff hand to the
relay, desk or CCI serving the SME. The service assigns the SME to a *unit* of its programme —
a VIE relay mission or an export desk in its target country, or a CCI cohort — or puts it on
the waiting list when every unit is full. Every event below about one SME carries the
support id and, as its CloudEvents ``subject``, the SIREN of that SME.

- Cluster staff (producer ``staff``) open and end relay missions (subject: the host company's
  SIREN), record outcome checkpoints, and may report a contract.
- Relays abroad publish leads and meetings; export desks prospect lists, meetings and local
  set-ups; CCIs workshop attendance and strategies; any of them the contracts signed — each
  on its own producer token (``envol.aerospace-valley.vie-relay-cn.relay.lead.reported``).
- The export service publishes what happened to the support (``envol.support.*``: placed,
  waiting, progressed, closed, reminders and escalations) under its own producer token
  (``envol.aerospace-valley.export.support.opened``).

A VIE volunteer is only ever an id (``volunteer_id``); buyers and host companies are
organisations, never persons.
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import Field

from envol_shared.contracts.enrolment import (
    ApplicationCompleted,
    ApplicationEnrolled,
    ApplicationWithdrawn,
    Country,
    ProgrammeCode,
)
from envol_shared.events import MAX_CENTS, Day, EuroCents, EventData, Token, UtcDatetime, event_type
from envol_shared.identifiers import Siren

Text = Annotated[str, Field(min_length=1, max_length=500)]
# A company, a public buyer, a distributor: an organisation, not a person's name.
Organisation = Annotated[str, Field(min_length=1, max_length=200)]
PositiveCents = Annotated[int, Field(gt=0, le=MAX_CENTS, description="amount in euro cents")]

SupportKind = Literal["vie_relay", "export_desk", "cci_collective"]
SupportStatus = Literal["opened", "assigned", "waiting", "closed"]
CheckpointName = Literal["baseline", "month_6", "month_12", "month_24"]


# ---- published by cluster staff --------------------------------------------------------


@event_type
class MissionOpened(EventData):
    """Staff open a new VIE relay mission (besides those of the configuration file)."""

    type: ClassVar[str] = "envol.export.mission.opened.v1"

    mission_id: Token
    programme: ProgrammeCode
    country: Country
    host_siren: Siren = Field(description="the large member company lodging the volunteer; the "
                                          "event's subject")
    host_company: Organisation
    volunteer_id: Token = Field(description="the VIE volunteer's id, never a name")
    starts_on: Day
    ends_on: Day = Field(description="6 to 24 months after starts_on")
    capacity: int = Field(ge=1, le=12, description="SMEs the mission serves at once")
    relay: Token = Field(description="producer id the relay publishes under")
    by: Token


@event_type
class MissionEnded(EventData):
    """Staff end a relay mission before its planned end date (today, or a later day)."""

    type: ClassVar[str] = "envol.export.mission.ended.v1"

    mission_id: Token
    ended_on: Day
    reason: Text
    by: Token


@event_type
class CheckpointRecorded(EventData):
    """Where the SME stands abroad: at opening (baseline), then 6, 12 and 24 months after
    enrolment. `countries_served` lists every country it sells to at that date."""

    type: ClassVar[str] = "envol.export.checkpoint.recorded.v1"

    support_id: Token
    checkpoint: CheckpointName
    recorded_on: Day
    export_turnover_cents: EuroCents = Field(description="export turnover over the last 12 months")
    countries_served: list[Country] = Field(max_length=250)
    contracts_to_date: int = Field(ge=0, le=10_000, description="export contracts signed since enrolment")
    note: Text | None = None


# ---- published by VIE relays -----------------------------------------------------------


@event_type
class LeadReported(EventData):
    type: ClassVar[str] = "envol.relay.lead.reported.v1"

    support_id: Token
    lead_id: Token
    country: Country = Field(description="the mission's country")
    buyer: Organisation
    reported_on: Day
    estimated_cents: PositiveCents | None = None


@event_type
class RelayMeetingHeld(EventData):
    type: ClassVar[str] = "envol.relay.meeting.held.v1"

    support_id: Token
    country: Country = Field(description="the mission's country")
    organisation: Organisation = Field(description="whom the SME met")
    held_on: Day
    lead_id: Token | None = Field(default=None, description="the lead it follows, if any")


# ---- published by export desks -----------------------------------------------------------


@event_type
class ProspectListDelivered(EventData):
    type: ClassVar[str] = "envol.desk.prospects.delivered.v1"

    support_id: Token
    list_id: Token
    country: Country = Field(description="the desk's country")
    prospects: int = Field(ge=1, le=10_000)
    delivered_on: Day


@event_type
class DeskMeetingArranged(EventData):
    type: ClassVar[str] = "envol.desk.meeting.arranged.v1"

    support_id: Token
    country: Country = Field(description="the desk's country")
    organisation: Organisation = Field(description="whom the SME met")
    held_on: Day


@event_type
class LocalSetupCompleted(EventData):
    """The SME is set up in the desk's country (the desks' purpose)."""

    type: ClassVar[str] = "envol.desk.setup.completed.v1"

    support_id: Token
    country: Country = Field(description="the desk's country")
    setup: Literal["office", "subsidiary", "branch", "distributor", "joint_venture"]
    completed_on: Day


# ---- published by CCIs --------------------------------------------------------------------


@event_type
class WorkshopAttended(EventData):
    type: ClassVar[str] = "envol.cci.workshop.attended.v1"

    support_id: Token
    workshop_id: Token = Field(description="a workshop of the SME's cohort")
    attended_on: Day
    attendees: int = Field(ge=1, le=20, description="how many people of the SME came (a count)")


@event_type
class StrategyDelivered(EventData):
    type: ClassVar[str] = "envol.cci.strategy.delivered.v1"

    support_id: Token
    delivered_on: Day
    priority_countries: list[Country] = Field(min_length=1, max_length=20)


# ---- published by the partner serving the support, or by staff ---------------------------


@event_type
class ContractSigned(EventData):
    type: ClassVar[str] = "envol.export.contract.signed.v1"

    support_id: Token
    contract_id: Token
    country: Country = Field(description="the buyer's country")
    buyer: Organisation
    signed_on: Day
    amount_cents: PositiveCents


# ---- published by the export service ----------------------------------------------------------


class SupportEvent(EventData):
    """Common payload of the support events: where the support stands after what happened."""

    support_id: str
    siren: str
    cluster: str
    programme: str
    cohort: str
    kind: SupportKind
    target_country: str | None
    status: SupportStatus
    unit_id: str | None = Field(description="the relay mission, export desk or CCI cohort serving it")
    partner: str | None
    waiting_since: UtcDatetime | None
    at: UtcDatetime
    by: str
    summary: str
    leads: int
    meetings: int
    contracts: int
    contracted_cents: EuroCents
    contract_countries: list[str] = Field(default_factory=list, description="where its contracts were signed")


@event_type
class SupportOpened(SupportEvent):
    type: ClassVar[str] = "envol.support.opened.v1"


@event_type
class SupportAssigned(SupportEvent):
    """Given a place: at opening, from the waiting list, or when its unit ended."""

    type: ClassVar[str] = "envol.support.assigned.v1"


@event_type
class SupportWaitlisted(SupportEvent):
    """Every unit that could serve it is full (or none exists yet): it waits for a place."""

    type: ClassVar[str] = "envol.support.waitlisted.v1"


@event_type
class SupportProgressed(SupportEvent):
    """A partner's or staff's fact was accepted; `fact` names it (``relay.lead.reported``...)."""

    type: ClassVar[str] = "envol.support.progressed.v1"

    fact: str


@event_type
class SupportClosed(SupportEvent):
    type: ClassVar[str] = "envol.support.closed.v1"


class FollowUp(EventData):
    """An outcome checkpoint of a support needs recording."""

    support_id: str
    siren: str
    cluster: str
    programme: str
    cohort: str
    target_country: str | None
    reason: Literal["checkpoint_due"]
    checkpoint: CheckpointName
    due_on: Day
    owner: str
    detail: str


@event_type
class ReminderDue(FollowUp):
    type: ClassVar[str] = "envol.support.reminder.due.v1"


@event_type
class EscalationRaised(FollowUp):
    """A reminder went unanswered: the cluster's management should step in."""

    type: ClassVar[str] = "envol.support.escalation.raised.v1"

    reminded_on: Day


STAFF_EVENTS = (MissionOpened, MissionEnded, CheckpointRecorded)
RELAY_EVENTS = (LeadReported, RelayMeetingHeld)
DESK_EVENTS = (ProspectListDelivered, DeskMeetingArranged, LocalSetupCompleted)
CCI_EVENTS = (WorkshopAttended, StrategyDelivered)
PUBLISHED = (SupportOpened, SupportAssigned, SupportWaitlisted, SupportProgressed, SupportClosed,
             ReminderDue, EscalationRaised)
# What the export service consumes: enrolment's outcomes, then staff's and partners' facts.
CONSUMED = (ApplicationEnrolled, ApplicationWithdrawn, ApplicationCompleted,
            *STAFF_EVENTS, *RELAY_EVENTS, *DESK_EVENTS, *CCI_EVENTS, ContractSigned)
# What each kind of partner (partners/<cluster>.toml) may publish: its NATS permissions.
EVENTS_OF_PARTNER_KIND = {"relay": (*RELAY_EVENTS, ContractSigned), "desk": (*DESK_EVENTS, ContractSigned),
                          "cci": (*CCI_EVENTS, ContractSigned)}
