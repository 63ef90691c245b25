"""Who serves which cluster abroad, with which missions, desks and cohorts, and how supports
are followed: one TOML file per cluster.

The files shipped in ``partners/`` describe the seed article's clusters; a cluster points
ENVOL_EXPORT_PARTNERS_DIR at its own copy. Adding a relay mission, a desk, a cohort or a
partner is an edit of that file, not a code change (staff may also open and end relay
missions with events). The service brings its database in line with the files at start; a
mistake stops it there with the file and the field at fault.
"""

from __future__ import annotations

import os
from datetime import date, datetime
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

from envol_export.domain.follow_up import FollowUpPolicy
from envol_export.domain.model import (
    RUN_BY,
    UNIT_OF,
    PartnerKind,
    SupportKind,
    SupportUnit,
    UnitKind,
    mission_length_problem,
)
from envol_shared.configuration import ClusterFiles, ConfigurationError, load_cluster_files
from envol_shared.identifiers import Siren

SHIPPED = Path(__file__).parent / "partners"
TOKEN = r"^[a-z0-9][a-z0-9-]*$"
Id = Annotated[str, Field(pattern=TOKEN, max_length=64)]
Code = Annotated[str, Field(pattern=r"^[A-Z0-9][A-Z0-9-]{1,39}$")]
Country = Annotated[str, Field(pattern=r"^[A-Z]{2}$", description="ISO 3166-1 alpha-2")]
Name = Annotated[str, Field(min_length=1, max_length=200)]


class Entry(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PartnerEntry(Entry):
    id: Annotated[str, Field(pattern=TOKEN, max_length=64, description="its NATS producer token")]
    kind: PartnerKind
    name: Name


class MissionEntry(Entry):
    """A VIE relay mission: one volunteer lodged by a large member company, shared by SMEs."""

    id: Id
    programme: Code
    country: Country
    host_siren: Siren
    host_company: Name
    volunteer_id: Id  # never the volunteer's name
    starts_on: date
    ends_on: date  # its last day
    capacity: Annotated[int, Field(ge=1, le=12)]
    partner: Id  # the relay that reports on its SMEs

    @model_validator(mode="after")
    def _six_to_twenty_four_months(self) -> MissionEntry:
        problem = mission_length_problem(self.starts_on, self.ends_on)
        if problem:
            raise ValueError(problem)
        return self


class DeskEntry(Entry):
    """An export desk ("comptoir"): a reception area and a sales force in a priority country."""

    id: Id
    programme: Code
    country: Country
    reception: Name  # where the reception area is
    sales_force: Annotated[int, Field(ge=1, le=100, description="people selling for the SMEs")]
    capacity: Annotated[int, Field(ge=1, le=100)]
    partner: Id
    opens_on: date
    closes_on: date | None = None

    @model_validator(mode="after")
    def _dates(self) -> DeskEntry:
        if self.closes_on is not None and self.closes_on < self.opens_on:
            raise ValueError("closes_on is before opens_on")
        return self


class WorkshopEntry(Entry):
    id: Id
    title: Name
    on: date


class CohortEntry(Entry):
    """A cohort of the CCIs' collective action: SMEs building their strategy in workshops."""

    id: Id
    programme: Code
    capacity: Annotated[int, Field(ge=1, le=100)]
    partner: Id
    starts_on: date
    ends_on: date
    workshops: list[WorkshopEntry] = Field(min_length=1)

    @model_validator(mode="after")
    def _workshops_within_the_cohort(self) -> CohortEntry:
        if self.ends_on < self.starts_on:
            raise ValueError("ends_on is before starts_on")
        ids = [w.id for w in self.workshops]
        if len(set(ids)) != len(ids):
            raise ValueError("two workshops share an id")
        outside = [w.id for w in self.workshops if not self.starts_on <= w.on <= self.ends_on]
        if outside:
            raise ValueError(f"workshop(s) {', '.join(outside)} outside {self.starts_on} - {self.ends_on}")
        return self


class FollowUpEntry(Entry):
    escalate_after_business_days: Annotated[int, Field(ge=1, le=60)] = 5
    baseline_within_business_days: Annotated[int, Field(ge=0, le=60)] = 10


class LimitsEntry(Entry):
    # Above this, one SME's export contract is taken for a mistake (euros sent as cents...).
    contract_ceiling_cents: Annotated[int, Field(ge=100)] = 5_000_000_000


class ClusterPartners(Entry):
    cluster: Annotated[str, Field(pattern=TOKEN)]
    staff: list[Annotated[str, Field(pattern=TOKEN)]] = Field(min_length=1)
    programmes: dict[Code, SupportKind]
    partners: list[PartnerEntry] = []
    missions: list[MissionEntry] = []
    desks: list[DeskEntry] = []
    cohorts: list[CohortEntry] = []
    follow_up: FollowUpEntry = FollowUpEntry()
    limits: LimitsEntry = LimitsEntry()

    @model_validator(mode="after")
    def _consistent(self) -> ClusterPartners:
        ids = [p.id for p in self.partners]
        if len(set(ids)) != len(ids):
            raise ValueError("two partners share an id")
        if set(ids) & set(self.staff):
            raise ValueError("a producer cannot be both staff and partner")
        units: list[tuple[str, UnitKind, MissionEntry | DeskEntry | CohortEntry]] = [
            *(("mission", UnitKind.RELAY_MISSION, m) for m in self.missions),
            *(("desk", UnitKind.EXPORT_DESK, d) for d in self.desks),
            *(("cohort", UnitKind.CCI_COHORT, c) for c in self.cohorts),
        ]
        unit_ids = [entry.id for _, _, entry in units]
        if len(set(unit_ids)) != len(unit_ids):
            raise ValueError("two missions, desks or cohorts share an id")
        kinds = {p.id: p.kind for p in self.partners}
        for label, kind, entry in units:
            programme_kind = self.programmes.get(entry.programme)
            if programme_kind is None or UNIT_OF[programme_kind] is not kind:
                raise ValueError(f"{label} {entry.id}: {entry.programme} is not a programme of this file "
                                 f"served by {label}s")
            if kinds.get(entry.partner) is not RUN_BY[kind]:
                raise ValueError(f"{label} {entry.id}: partner {entry.partner} is not a "
                                 f"{RUN_BY[kind].value} of this file")
        return self

    def units(self, at: datetime) -> list[SupportUnit]:
        """Fresh domain objects for the configured units (the database then keeps their state)."""
        common = {"cluster": self.cluster, "opened_at": at, "origin": "configuration"}
        return [
            *(SupportUnit(id=m.id, programme=m.programme, kind=UnitKind.RELAY_MISSION, country=m.country,
                          partner=m.partner, capacity=m.capacity, starts_on=m.starts_on, ends_on=m.ends_on,
                          host_siren=m.host_siren, host_company=m.host_company, volunteer_id=m.volunteer_id,
                          details={}, **common)  # type: ignore[arg-type]
              for m in self.missions),
            *(SupportUnit(id=d.id, programme=d.programme, kind=UnitKind.EXPORT_DESK, country=d.country,
                          partner=d.partner, capacity=d.capacity, starts_on=d.opens_on, ends_on=d.closes_on,
                          details={"reception": d.reception, "sales_force": d.sales_force},
                          **common)  # type: ignore[arg-type]
              for d in self.desks),
            *(SupportUnit(id=c.id, programme=c.programme, kind=UnitKind.CCI_COHORT, country=None,
                          partner=c.partner, capacity=c.capacity, starts_on=c.starts_on, ends_on=c.ends_on,
                          details={"workshops": {w.id: {"title": w.title, "on": w.on.isoformat()}
                                                 for w in c.workshops}},
                          **common)  # type: ignore[arg-type]
              for c in self.cohorts),
        ]


# What a mistake in a partner file raises.
PartnersError = ConfigurationError


class Partners(ClusterFiles[ClusterPartners]):
    """The partners, staff producers, programmes, units and follow-up policy of every cluster."""

    def support_kind(self, cluster: str, programme: str) -> SupportKind | None:
        entry = self._clusters.get(cluster)
        return entry.programmes.get(programme) if entry else None

    def policy(self, cluster: str) -> FollowUpPolicy:
        entry = self._clusters.get(cluster)
        return FollowUpPolicy(**entry.follow_up.model_dump()) if entry else FollowUpPolicy()

    def contract_ceiling_cents(self, cluster: str) -> int:
        entry = self._clusters.get(cluster)
        return (entry.limits if entry else LimitsEntry()).contract_ceiling_cents

    def units(self, at: datetime) -> list[SupportUnit]:
        """Every configured relay mission, desk and cohort, as new domain objects."""
        return [unit for cluster in self.clusters for unit in self._clusters[cluster].units(at)]

    @classmethod
    def load(cls, directory: Path | None = None) -> Partners:
        directory = directory or Path(os.environ.get("ENVOL_EXPORT_PARTNERS_DIR", SHIPPED))
        clusters = load_cluster_files(directory, ClusterPartners, "export configuration")
        unit_ids = [entry.id for c in clusters for entry in (*c.missions, *c.desks, *c.cohorts)]
        if len(set(unit_ids)) != len(unit_ids):
            raise PartnersError(f"two files in {directory} use the same mission, desk or cohort id")
        return cls(clusters)
