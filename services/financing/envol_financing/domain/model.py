"""Financing cases: one per enrolment in a financing programme, followed until the money has
arrived or the case is closed.

Each kind of case moves through its own stages, driven by its partner's facts:

    rd_loan            opened -> requested -> received -> granted -> disbursing -> disbursed
                                                      └-> refused
    investors_club     opened -> introduced -> pitching -> round_closed
    coaching           opened -> coaching -> delivered
    growth_contract    opened -> signed
    private_financing  opened -> in_progress -> financed

Money is in integer euro cents: requested, awarded, disbursed, and remaining = awarded -
disbursed. Requirements (reports, contracts, milestone reviews) can gate a loan's tranche.
Outcome checkpoints (baseline, 6, 12, 24 months) record what the company has raised to date.
Every accepted fact is appended to the case's history. A refused fact raises DomainError
with the reason, and changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from typing import Any


class DomainError(Exception):
    """A fact the domain refuses; the reason goes back to whoever sent it."""


class CaseKind(StrEnum):
    RD_LOAN = "rd_loan"
    INVESTORS_CLUB = "investors_club"
    COACHING = "coaching"
    GROWTH_CONTRACT = "growth_contract"
    PRIVATE_FINANCING = "private_financing"


class PartnerKind(StrEnum):
    BANK = "bank"
    INVESTORS_CLUB = "investors_club"
    COACH = "coach"


# Who serves each kind of case: a partner of this kind, or the cluster's staff (None).
SERVED_BY: dict[CaseKind, PartnerKind | None] = {
    CaseKind.RD_LOAN: PartnerKind.BANK,
    CaseKind.INVESTORS_CLUB: PartnerKind.INVESTORS_CLUB,
    CaseKind.COACHING: PartnerKind.COACH,
    CaseKind.GROWTH_CONTRACT: None,
    CaseKind.PRIVATE_FINANCING: None,
}


class RequirementStatus(StrEnum):
    OPEN = "open"
    IN_PROGRESS = "in_progress"
    DELAYED = "delayed"
    COMPLETE = "complete"
    ABANDONED = "abandoned"


REQUIREMENT_MOVES: dict[RequirementStatus, frozenset[RequirementStatus]] = {
    RequirementStatus.OPEN: frozenset({RequirementStatus.IN_PROGRESS, RequirementStatus.DELAYED,
                                       RequirementStatus.COMPLETE, RequirementStatus.ABANDONED}),
    RequirementStatus.IN_PROGRESS: frozenset({RequirementStatus.DELAYED, RequirementStatus.COMPLETE,
                                              RequirementStatus.ABANDONED}),
    RequirementStatus.DELAYED: frozenset({RequirementStatus.IN_PROGRESS, RequirementStatus.COMPLETE,
                                          RequirementStatus.ABANDONED}),
    RequirementStatus.COMPLETE: frozenset(),
    RequirementStatus.ABANDONED: frozenset(),
}
CHECKPOINT_MONTHS = {"month_6": 6, "month_12": 12, "month_24": 24}
CHECKPOINT_ORDER = ("baseline", *CHECKPOINT_MONTHS)


def euros(cents: int) -> str:
    """1234567 -> '12,345.67 €' (reasons are read by partners' developers and staff)."""
    return f"{cents // 100:,}.{cents % 100:02d} €"


@dataclass
class Requirement:
    case_id: str
    requirement_id: str
    kind: str
    title: str
    due_on: date
    owner: str
    gates_tranche: int | None = None
    status: RequirementStatus = RequirementStatus.OPEN
    completed_on: date | None = None

    @property
    def is_done(self) -> bool:
        return self.status in (RequirementStatus.COMPLETE, RequirementStatus.ABANDONED)


@dataclass
class Tranche:
    case_id: str
    number: int
    amount_cents: int
    disbursed_on: date


@dataclass
class Checkpoint:
    case_id: str
    name: str
    recorded_on: date
    raised_to_date_cents: int
    note: str | None = None


@dataclass
class CaseEntry:
    """One line of a case's history: what happened, when, according to whom."""

    case_id: str
    at: datetime
    fact: str
    by: str
    summary: str
    stage: str


@dataclass
class FinancingCase:
    id: str  # the application id
    siren: str
    cluster: str
    programme: str
    cohort: str
    kind: CaseKind
    correlation_id: str
    enrolled_at: datetime
    opened_at: datetime
    stage: str = "opened"
    partner: str | None = None
    requested_cents: int = 0
    awarded_cents: int = 0
    disbursed_cents: int = 0
    decided_at: datetime | None = None
    first_disbursed_at: datetime | None = None
    succeeded: bool | None = None
    last_news_at: datetime | None = None
    closed_at: datetime | None = None
    close_reason: str | None = None
    # Kind-specific facts (loan terms, investors met, sessions, objectives...), as JSON.
    details: dict[str, Any] = field(default_factory=dict)
    requirements: list[Requirement] = field(default_factory=list)
    tranches: list[Tranche] = field(default_factory=list)
    checkpoints: list[Checkpoint] = field(default_factory=list)
    history: list[CaseEntry] = field(default_factory=list)

    # ---- reading -----------------------------------------------------------------------

    @property
    def remaining_cents(self) -> int:
        return self.awarded_cents - self.disbursed_cents

    @property
    def is_closed(self) -> bool:
        return self.closed_at is not None

    @property
    def tranches_planned(self) -> int | None:
        return self.details.get("terms", {}).get("tranches_planned")

    def requirement(self, requirement_id: str) -> Requirement:
        for requirement in self.requirements:
            if requirement.requirement_id == requirement_id:
                return requirement
        raise DomainError(f"case {self.id} has no requirement {requirement_id}")

    def checkpoint(self, name: str) -> Checkpoint | None:
        return next((c for c in self.checkpoints if c.name == name), None)

    # ---- what every fact goes through ------------------------------------------------------

    def _record(self, at: datetime, fact: str, by: str, summary: str) -> CaseEntry:
        entry = CaseEntry(self.id, at, fact, by, summary, self.stage)
        self.history.append(entry)
        self.last_news_at = at if self.last_news_at is None else max(self.last_news_at, at)
        return entry

    def _require_open(self) -> None:
        if self.is_closed:
            raise DomainError(f"case {self.id} is closed ({self.close_reason})")

    def _require_kind(self, *kinds: CaseKind) -> None:
        if self.kind not in kinds:
            names = " or ".join(k.value for k in kinds)
            raise DomainError(f"case {self.id} is a {self.kind.value} case, not {names}")

    def _require_stage(self, fact: str, *stages: str) -> None:
        if self.stage not in stages:
            raise DomainError(f"{fact} is not possible on case {self.id} at stage {self.stage}; "
                              f"it needs stage {' or '.join(stages)}")

    def _decided(self, at: datetime, succeeded: bool) -> None:
        if self.decided_at is None:
            self.decided_at = at
        self.succeeded = succeeded or bool(self.succeeded)

    def _money_arrived(self, at: datetime, cents: int) -> None:
        self.disbursed_cents += cents
        if self.first_disbursed_at is None:
            self.first_disbursed_at = at

    # ---- opening and closing -----------------------------------------------------------------

    @classmethod
    def open(cls, *, id: str, siren: str, cluster: str, programme: str, cohort: str, kind: CaseKind,
             correlation_id: str, enrolled_at: datetime, at: datetime, partner: str | None) -> FinancingCase:
        case = cls(id=id, siren=siren, cluster=cluster, programme=programme, cohort=cohort, kind=kind,
                   correlation_id=correlation_id, enrolled_at=enrolled_at, opened_at=at, partner=partner)
        served = f", served by {partner}" if partner else ""
        case._record(at, "case.opened", "financing", f"{kind.value} case opened for {programme}{served}")
        return case

    def close(self, *, at: datetime, by: str, reason: str) -> CaseEntry:
        self._require_open()
        self.closed_at = at
        self.close_reason = reason
        if self.succeeded is None:
            self.succeeded = False  # closed without any financing obtained
        return self._record(at, "case.closed", by, f"closed: {reason}")

    def assign(self, *, partner: str, requested_cents: int | None, at: datetime, by: str) -> CaseEntry:
        self._require_open()
        if self.kind is CaseKind.RD_LOAN:
            self._require_stage("assigning a bank", "opened", "requested")
            if requested_cents is None:
                raise DomainError(f"case {self.id} is an R&D loan: the assignment needs requested_cents")
            self.stage = "requested"
        elif self.partner is not None and any(entry.by == self.partner for entry in self.history):
            raise DomainError(f"case {self.id} is already served by {self.partner}, who has reported "
                              "on it: it can no longer be reassigned")
        self.partner = partner
        if requested_cents is not None:
            self.requested_cents = requested_cents
        amount = f" for {euros(requested_cents)}" if requested_cents is not None else ""
        return self._record(at, "financing.case.assigned", by, f"assigned to {partner}{amount}")

    # ---- R&D loans ---------------------------------------------------------------------------

    def loan_received(self, *, bank_reference: str, received_on: date, at: datetime, by: str) -> CaseEntry:
        self._require_open()
        self._require_kind(CaseKind.RD_LOAN)
        self._require_stage("a loan request receipt", "requested")
        self.stage = "received"
        self.details["bank_reference"] = bank_reference
        self.details["received_on"] = received_on.isoformat()
        return self._record(at, "loan.request.received", by,
                            f"request of {euros(self.requested_cents)} received by the bank as "
                            f"{bank_reference}")

    def loan_decided(self, *, granted: bool, decided_on: date, reason: str, awarded_cents: int | None,
                     terms: dict[str, int] | None, at: datetime, by: str) -> CaseEntry:
        self._require_open()
        self._require_kind(CaseKind.RD_LOAN)
        self._require_stage("a loan decision", "received")
        if granted:
            assert awarded_cents is not None
            if awarded_cents > self.requested_cents:
                raise DomainError(f"the awarded {euros(awarded_cents)} exceeds the "
                                  f"{euros(self.requested_cents)} requested on case {self.id}")
            self.awarded_cents = awarded_cents
            self.details["terms"] = terms or {}
            self.stage = "granted"
            summary = f"loan of {euros(awarded_cents)} granted: {reason}"
        else:
            self.stage = "refused"
            summary = f"loan refused: {reason}"
        self.details["decided_on"] = decided_on.isoformat()
        self._decided(at, granted)
        return self._record(at, "loan.decided", by, summary)

    def disburse(self, *, tranche: int, amount_cents: int, disbursed_on: date, at: datetime,
                 by: str) -> CaseEntry:
        self._require_open()
        self._require_kind(CaseKind.RD_LOAN)
        if self.stage in ("requested", "received", "refused"):
            raise DomainError(f"no disbursement before the loan is granted: case {self.id} is at "
                              f"stage {self.stage}")
        self._require_stage("a disbursement", "granted", "disbursing")
        expected = len(self.tranches) + 1
        planned = self.tranches_planned
        if planned is not None and tranche > planned:
            raise DomainError(f"the loan of case {self.id} was granted in {planned} tranche(s): "
                              f"there is no tranche {tranche}")
        if tranche != expected:
            done = "already disbursed" if tranche < expected else f"comes after tranche {expected}"
            raise DomainError(f"tranche {tranche} of case {self.id} {done}; the next is tranche {expected}")
        if amount_cents > self.remaining_cents:
            raise DomainError(f"tranche {tranche} of {euros(amount_cents)} exceeds the "
                              f"{euros(self.remaining_cents)} remaining of the "
                              f"{euros(self.awarded_cents)} awarded on case {self.id}")
        # An abandoned requirement no longer holds anything back: staff dropped it.
        gates = [r for r in self.requirements if r.gates_tranche == tranche and not r.is_done]
        if gates:
            waiting = ", ".join(f"{r.requirement_id} ({r.kind} '{r.title}', {r.status.value})"
                                for r in gates)
            raise DomainError(f"tranche {tranche} of case {self.id} waits for requirement {waiting}")
        self.tranches.append(Tranche(self.id, tranche, amount_cents, disbursed_on))
        self._money_arrived(at, amount_cents)
        self.stage = "disbursed" if self.remaining_cents == 0 else "disbursing"
        return self._record(at, "loan.tranche.disbursed", by,
                            f"tranche {tranche} of {euros(amount_cents)} disbursed; "
                            f"{euros(self.remaining_cents)} remaining")

    # ---- investors' club ------------------------------------------------------------------------

    def introduce(self, *, investor: str, on: date, at: datetime, by: str) -> CaseEntry:
        self._require_open()
        self._require_kind(CaseKind.INVESTORS_CLUB)
        self._require_stage("an introduction", "opened", "introduced", "pitching")
        introduced = self.details.setdefault("investors_introduced", [])
        if investor in introduced:
            raise DomainError(f"{investor} was already introduced on case {self.id}")
        introduced.append(investor)
        if self.stage == "opened":
            self.stage = "introduced"
        return self._record(at, "club.introduction.made", by, f"introduced to {investor}")

    def schedule_pitch(self, *, session_id: str, on: date, at: datetime, by: str) -> CaseEntry:
        self._require_open()
        self._require_kind(CaseKind.INVESTORS_CLUB)
        self._require_stage("a pitch session", "introduced", "pitching")
        sessions = self.details.setdefault("pitch_sessions", {})
        if session_id in sessions:
            raise DomainError(f"pitch session {session_id} is already scheduled on case {self.id}")
        sessions[session_id] = {"scheduled_on": on.isoformat(), "held_on": None}
        self.stage = "pitching"
        return self._record(at, "club.pitch.scheduled", by, f"pitch session {session_id} on {on}")

    def hold_pitch(self, *, session_id: str, on: date, investors_present: int, at: datetime,
                   by: str) -> CaseEntry:
        self._require_open()
        self._require_kind(CaseKind.INVESTORS_CLUB)
        self._require_stage("a pitch session", "pitching")
        session = self.details.get("pitch_sessions", {}).get(session_id)
        if session is None:
            raise DomainError(f"pitch session {session_id} was never scheduled on case {self.id}")
        if session["held_on"] is not None:
            raise DomainError(f"pitch session {session_id} of case {self.id} was already held")
        session["held_on"] = on.isoformat()
        session["investors_present"] = investors_present
        return self._record(at, "club.pitch.held", by,
                            f"pitch session {session_id} held before {investors_present} investor(s)")

    def express_interest(self, *, investor: str, on: date, amount_cents: int | None, at: datetime,
                         by: str) -> CaseEntry:
        self._require_open()
        self._require_kind(CaseKind.INVESTORS_CLUB)
        self._require_stage("an expression of interest", "introduced", "pitching")
        if investor not in self.details.get("investors_introduced", []):
            raise DomainError(f"{investor} was never introduced to the company of case {self.id}")
        interests = self.details.setdefault("interests", [])
        interests.append({"investor": investor, "on": on.isoformat(), "amount_cents": amount_cents})
        amount = f" for up to {euros(amount_cents)}" if amount_cents else ""
        return self._record(at, "club.interest.expressed", by, f"{investor} interested{amount}")

    def close_round(self, *, amount_cents: int, investors: list[str], on: date, at: datetime,
                    by: str) -> CaseEntry:
        self._require_open()
        self._require_kind(CaseKind.INVESTORS_CLUB)
        self._require_stage("closing a round", "introduced", "pitching")
        held = [s for s in self.details.get("pitch_sessions", {}).values() if s["held_on"]]
        if not held:
            raise DomainError(f"no round before a pitch: no session of case {self.id} was held")
        self.awarded_cents += amount_cents
        self._money_arrived(at, amount_cents)
        self.details["round"] = {"closed_on": on.isoformat(), "amount_cents": amount_cents,
                                 "investors": investors}
        self.stage = "round_closed"
        self._decided(at, True)
        return self._record(at, "club.round.closed", by,
                            f"round of {euros(amount_cents)} closed with {', '.join(investors)}")

    # ---- financial-engineering coaching ---------------------------------------------------------

    def hold_coaching_session(self, *, on: date, topics: list[str], hours: float, at: datetime,
                              by: str) -> CaseEntry:
        self._require_open()
        self._require_kind(CaseKind.COACHING)
        sessions = self.details.setdefault("coaching_sessions", [])
        sessions.append({"on": on.isoformat(), "topics": topics, "hours": hours})
        if self.stage == "opened":
            self.stage = "coaching"
        return self._record(at, "coaching.session.held", by,
                            f"coaching session {len(sessions)} ({hours:g} h): {', '.join(topics)}")

    def deliver(self, *, deliverable: str, on: date, at: datetime, by: str) -> CaseEntry:
        self._require_open()
        self._require_kind(CaseKind.COACHING)
        if not self.details.get("coaching_sessions"):
            raise DomainError(f"no deliverable before a coaching session: none held on case {self.id}")
        delivered = self.details.setdefault("deliverables", {})
        if deliverable in delivered:
            raise DomainError(f"{deliverable} was already delivered on case {self.id}")
        delivered[deliverable] = on.isoformat()
        self.stage = "delivered"
        self._decided(at, True)
        return self._record(at, "coaching.deliverable.delivered", by, f"{deliverable} delivered")

    # ---- growth contracts (Pégase) ------------------------------------------------------------------

    def sign_growth_contract(self, *, signed_on: date, years: int, objectives: dict[str, str],
                             levers: list[dict[str, Any]], at: datetime, by: str) -> CaseEntry:
        self._require_open()
        self._require_kind(CaseKind.GROWTH_CONTRACT)
        self._require_stage("signing the growth contract", "opened")
        self.details["contract"] = {"signed_on": signed_on.isoformat(), "years": years, "levers": levers}
        self.details["objectives"] = {key: {"description": text, "reviews": []}
                                      for key, text in objectives.items()}
        self.requested_cents = sum(lever.get("amount_cents") or 0 for lever in levers
                                   if lever["lever"] == "financing")
        self.stage = "signed"
        self._decided(at, True)
        return self._record(at, "growth.contract.signed", by,
                            f"{years}-year growth contract signed: {len(objectives)} objective(s), "
                            f"levers {', '.join(sorted({lever['lever'] for lever in levers}))}")

    def review_milestone(self, *, objective_id: str, on: date, outcome: str, note: str | None,
                         at: datetime, by: str) -> CaseEntry:
        self._require_open()
        self._require_kind(CaseKind.GROWTH_CONTRACT)
        self._require_stage("a milestone review", "signed")
        objectives = self.details["objectives"]
        if objective_id not in objectives:
            raise DomainError(f"the growth contract of case {self.id} has no objective {objective_id}; "
                              f"it has {', '.join(sorted(objectives))}")
        objectives[objective_id]["reviews"].append({"on": on.isoformat(), "outcome": outcome, "note": note})
        return self._record(at, "growth.milestone.reviewed", by, f"objective {objective_id}: {outcome}")

    # ---- private-financing support (ASTech) ------------------------------------------------------

    def record_action(self, *, action: str, on: date, outcome: str | None, amount_cents: int | None,
                      at: datetime, by: str) -> CaseEntry:
        self._require_open()
        self._require_kind(CaseKind.PRIVATE_FINANCING)
        actions = self.details.setdefault("actions", [])
        actions.append({"action": action, "on": on.isoformat(), "outcome": outcome,
                        "amount_obtained_cents": amount_cents})
        summary = action + (f": {outcome}" if outcome else "")
        if amount_cents:
            self.awarded_cents += amount_cents
            self._money_arrived(at, amount_cents)
            self._decided(at, True)
            self.stage = "financed"
            summary += f" ({euros(amount_cents)} obtained)"
        elif self.stage == "opened":
            self.stage = "in_progress"
        return self._record(at, "financing.action.recorded", by, summary)

    # ---- requirements ---------------------------------------------------------------------------------

    def add_requirement(self, requirement: Requirement, *, at: datetime, by: str) -> CaseEntry:
        self._require_open()
        if any(r.requirement_id == requirement.requirement_id for r in self.requirements):
            raise DomainError(f"case {self.id} already has a requirement {requirement.requirement_id}")
        if requirement.gates_tranche is not None:
            self._require_kind(CaseKind.RD_LOAN)
            if self.stage == "refused":
                raise DomainError(f"the loan of case {self.id} was refused: it has no tranche to gate")
            if self.tranches_planned is not None and requirement.gates_tranche > self.tranches_planned:
                raise DomainError(f"the loan of case {self.id} was granted in {self.tranches_planned} "
                                  f"tranche(s): there is no tranche {requirement.gates_tranche} to gate")
            if requirement.gates_tranche <= len(self.tranches):
                raise DomainError(f"tranche {requirement.gates_tranche} of case {self.id} is already "
                                  "disbursed: a requirement can no longer gate it")
        self.requirements.append(requirement)
        gate = f", gating tranche {requirement.gates_tranche}" if requirement.gates_tranche else ""
        return self._record(at, "financing.requirement.added", by,
                            f"{requirement.kind} '{requirement.title}' due {requirement.due_on} "
                            f"({requirement.owner}){gate}")

    def update_requirement(self, requirement_id: str, status: RequirementStatus, *, on: date,
                           at: datetime, by: str, note: str | None = None) -> CaseEntry:
        self._require_open()
        requirement = self.requirement(requirement_id)
        if status not in REQUIREMENT_MOVES[requirement.status]:
            allowed = ", ".join(sorted(REQUIREMENT_MOVES[requirement.status])) or "none (final status)"
            raise DomainError(f"requirement {requirement_id} of case {self.id} cannot go from "
                              f"{requirement.status.value} to {status.value}; allowed: {allowed}")
        requirement.status = status
        if status is RequirementStatus.COMPLETE:
            requirement.completed_on = on
        return self._record(at, "financing.requirement.updated", by,
                            f"requirement {requirement_id} {status.value}" + (f": {note}" if note else ""))

    # ---- outcome checkpoints -------------------------------------------------------------------------

    def record_checkpoint(self, checkpoint: Checkpoint, *, at: datetime, by: str) -> CaseEntry:
        # Allowed on a closed case: outcomes are measured for 24 months whatever happened.
        if self.checkpoint(checkpoint.name) is not None:
            raise DomainError(f"checkpoint {checkpoint.name} of case {self.id} is already recorded")
        baseline = self.checkpoint("baseline")
        if checkpoint.name != "baseline" and baseline is None:
            raise DomainError(f"record the baseline of case {self.id} before checkpoint {checkpoint.name}")
        # Raised to date only grows: each checkpoint lies between its neighbours in time.
        order = CHECKPOINT_ORDER.index(checkpoint.name)
        for other in self.checkpoints:
            earlier = CHECKPOINT_ORDER.index(other.name) < order
            if (checkpoint.raised_to_date_cents < other.raised_to_date_cents if earlier
                    else checkpoint.raised_to_date_cents > other.raised_to_date_cents):
                relation = "less" if earlier else "more"
                raise DomainError(f"raised to date {euros(checkpoint.raised_to_date_cents)} at "
                                  f"{checkpoint.name} is {relation} than the "
                                  f"{euros(other.raised_to_date_cents)} recorded at {other.name} on case "
                                  f"{self.id}: it is a running total")
        self.checkpoints.append(checkpoint)
        raised = checkpoint.raised_to_date_cents
        obtained = "" if baseline is None else (
            f", {euros(raised - baseline.raised_to_date_cents)} since opening")
        return self._record(at, "financing.checkpoint.recorded", by,
                            f"{checkpoint.name}: {euros(raised)} raised to date{obtained}")
