"""The outcomes domain: one journey per application, as the other services tell it.

A journey follows one application of one SME to one programme of one cluster: the steps of
the application funnel with the moment each was first reached, then what the SME obtained
while enrolled (money for a financing programme: loans awarded, rounds raised, financing
obtained through support; contracts abroad for an export programme), and the outcome
checkpoints staff recorded (baseline, month 6, 12 and 24). Nothing here does I/O.

Its id is the application id, which is also the id of the financing case or export support
the enrolment opens, so every service's events about it meet here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

# The funnel, in the order a director reads it.
FUNNEL = ("applied", "eligible", "ineligible", "enrolled", "waitlisted", "denied", "withdrawn",
          "completed")
# Applicants never enrolled who stood where a participant could have: the comparison group.
COMPARABLE = frozenset({"waitlisted", "denied", "ineligible"})
CHECKPOINTS = ("baseline", "month_6", "month_12", "month_24")


class ProgrammeKind(StrEnum):
    FINANCING = "financing"
    EXPORT = "export"


class DomainError(Exception):
    """A fact the journey cannot take (the reason says why)."""


@dataclass
class Journey:
    id: str  # the application id
    cluster: str
    siren: str
    programme: str
    kind: ProgrammeKind
    cohort: str
    status: str
    # Funnel step -> ISO time it was first reached.
    steps: dict[str, str] = field(default_factory=dict)
    enrolled_at: datetime | None = None
    # What the SME obtained while enrolled: money (financing) or contracts abroad (export).
    obtained_cents: int = 0
    disbursed_cents: int = 0
    first_outcome_at: datetime | None = None
    # [ISO time, cents] each time obtained_cents grew: the outcomes over time.
    gains: list[list[Any]] = field(default_factory=list)
    leads: int = 0
    meetings: int = 0
    contracts: int = 0
    contract_countries: list[str] = field(default_factory=list)
    # Checkpoint name -> {"recorded_on": ISO day, "value_cents": int}
    checkpoints: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def start(cls, *, id: str, cluster: str, siren: str, programme: str, kind: str,
              cohort: str) -> Journey:
        return cls(id=id, cluster=cluster, siren=siren, programme=programme,
                   kind=ProgrammeKind(kind), cohort=cohort, status="applied")

    # ---- reading --------------------------------------------------------------------------

    @property
    def was_enrolled(self) -> bool:
        return "enrolled" in self.steps

    @property
    def is_comparable(self) -> bool:
        """Never enrolled, and turned away or kept waiting: comparable with participants."""
        return not self.was_enrolled and bool(COMPARABLE & self.steps.keys())

    @property
    def measure(self) -> str:
        """What its checkpoints measure."""
        if self.kind is ProgrammeKind.FINANCING:
            return "raised_to_date_cents"
        return "export_turnover_cents"

    # ---- the application funnel ---------------------------------------------------------

    def reach(self, status: str, at: datetime) -> None:
        """Enrolment says the application is now `status`; the first time counts."""
        self.status = status
        if status not in self.steps:
            self.steps = {**self.steps, status: at.isoformat()}
        if status == "enrolled" and self.enrolled_at is None:
            self.enrolled_at = at

    # ---- what the SME obtained ---------------------------------------------------------------

    def obtained(self, total_cents: int, at: datetime) -> None:
        """The case or support says how much it obtained so far; a rise is a gain at `at`."""
        if not self.was_enrolled:
            raise DomainError(f"application {self.id} was never enrolled: it has no case nor support")
        if total_cents > self.obtained_cents:
            self.gains = [*self.gains, [at.isoformat(), total_cents - self.obtained_cents]]
            self.obtained_cents = total_cents
            if self.first_outcome_at is None or at < self.first_outcome_at:
                self.first_outcome_at = at

    def export_results(self, *, leads: int, meetings: int, contracts: int,
                       countries: list[str]) -> None:
        self.leads, self.meetings, self.contracts = leads, meetings, contracts
        self.contract_countries = sorted(set(countries))

    # ---- checkpoints --------------------------------------------------------------------------

    def record_checkpoint(self, name: str, recorded_on: str, value_cents: int, *,
                          comparison: bool) -> None:
        """A participant's checkpoint (from a case or support) or a comparison applicant's."""
        if comparison and not self.is_comparable:
            why = "was enrolled" if self.was_enrolled else f"is {self.status}"
            raise DomainError(f"application {self.id} {why}: only waitlisted, denied or ineligible "
                              "applicants form the comparison group")
        if not comparison and not self.was_enrolled:
            raise DomainError(f"application {self.id} was never enrolled: record its checkpoints "
                              "as a comparison (outcomes.comparison.recorded)")
        self.checkpoints = {**self.checkpoints,
                            name: {"recorded_on": recorded_on, "value_cents": value_cents}}
