"""The partners' facts of the history data set (deploy/local/history_model.py): what banks, the
investors' club, coaches, staff, relays, desks and the CCI report on a financing case or an
export support, planned when the case opens or the support gets its place, and published only
if it is still served then (never after the participation ended, nor on or after TODAY).

The money obtained and the contracts signed are kept on the application: the outcome
checkpoints (deploy/local/history_outcomes.py) are built from them.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING

from deploy.local.history_world import (
    BUYERS,
    COACHING_TOPICS,
    FINANCING_ACTIONS,
    INVESTORS,
    STAFF,
    TODAY,
    moment,
)
from envol_shared.contracts import export as ex
from envol_shared.contracts import financing as fi
from envol_shared.events import EventData

if TYPE_CHECKING:
    from deploy.local.history_model import App, Unit

BANKS = ("banque-garonne", "credit-pyrenees", "caisse-atlantique")
COACHES = ("finance-coach-toulouse", "finance-coach-bordeaux")
CLUB = "av-investors-club"


class Facts:
    """The partners' side of `History` (which provides the clock, the queue and publishing)."""

    rng: random.Random
    now: datetime
    at: Callable[..., None]
    app_publish: Callable[[datetime, str, App, EventData], None]
    reviewer: Callable[[App], str]

    def fact(self, day: date, app: App, producer: str, data: EventData, *, export: bool = False,
             money: int = 0, contract: tuple[str, int] | None = None) -> bool:
        """Plan a fact on `day`, published only if the case or support is still served then."""
        if day >= TODAY or day <= self.now.date() or (app.end_on is not None and day >= app.end_on):
            return False
        self.at(moment(day, self.rng), self.report, app, producer, data, export, money, contract)
        return True

    def report(self, when: datetime, app: App, producer: str, data: EventData, export: bool, money: int,
               contract: tuple[str, int] | None) -> None:
        if not app.holds_a_place:
            return
        if producer != STAFF and app.partner != producer:
            return
        self.app_publish(when, producer, app, data)
        if money:
            app.money.append((when.date(), money))
        if contract:
            app.contracts.append((when.date(), *contract))

    def plan_financing(self, app: App) -> None:
        rng, q = self.rng, app.company.quality
        assert app.start_on is not None
        day = app.start_on + timedelta(days=rng.randint(3, 15))
        code = app.programme.code
        case = {"case_id": app.id}
        if code == "AV-RD-LOAN":
            bank = rng.choice(BANKS)
            requested = rng.randrange(150, 1500) * 1000_00
            self.fact(day, app, STAFF, fi.CaseAssigned(**case, partner=bank, requested_cents=requested,
                                                       by=self.reviewer(app)))
            app.partner = bank
            day += timedelta(days=rng.randint(7, 20))
            self.fact(day, app, bank, fi.LoanRequestReceived(**case, bank_reference=f"{bank[:2]}-{app.id}",
                                                             received_on=day))
            day += timedelta(days=rng.randint(20, 55))
            if rng.random() > min(0.95, 0.75 + 0.1 * q):
                self.fact(day, app, bank, fi.LoanDecided(**case, decision="refused", decided_on=day,
                                                         reason="guarantees judged insufficient"))
                return
            awarded = int(requested * rng.uniform(0.7, 1.0)) // 1000_00 * 1000_00
            tranches = rng.randint(1, 3)
            self.fact(day, app, bank, fi.LoanDecided(
                **case, decision="granted", decided_on=day, reason="sound R&D plan", awarded_cents=awarded,
                rate_bps=rng.randint(150, 400), duration_months=rng.choice((48, 60, 72, 84)),
                tranches_planned=tranches))
            if tranches > 1:
                self.fact(day + timedelta(days=1), app, STAFF, fi.RequirementAdded(
                    **case, requirement_id="progress-report-1", kind="report", title="R&D progress report",
                    due_on=day + timedelta(days=120), owner=self.reviewer(app), gates_tranche=2))
            left = awarded
            for n in range(1, tranches + 1):
                day += timedelta(days=rng.randint(15, 40) if n == 1 else rng.randint(60, 120))
                if n == 2:
                    if not self.fact(day, app, STAFF, fi.RequirementUpdated(
                            **case, requirement_id="progress-report-1", status="complete", on=day)):
                        return
                    day += timedelta(days=rng.randint(3, 15))
                amount = left if n == tranches else awarded // tranches
                left -= amount
                tranche = fi.LoanTrancheDisbursed(**case, tranche=n, amount_cents=amount, disbursed_on=day)
                if not self.fact(day, app, bank, tranche, money=amount):
                    return
        elif code == "AV-INVESTORS-CLUB":
            app.partner = CLUB  # the cluster's only club serves its cases from the start
            met = rng.sample(INVESTORS, rng.randint(1, 3))
            for investor in met:
                day += timedelta(days=rng.randint(7, 30))
                self.fact(day, app, CLUB, fi.InvestorIntroduced(**case, investor=investor, introduced_on=day))
            day += timedelta(days=rng.randint(20, 40))
            session = f"pitch-{day:%Y-%m}"
            self.fact(day - timedelta(days=14), app, CLUB, fi.PitchScheduled(**case, session_id=session,
                                                                             scheduled_on=day))
            self.fact(day, app, CLUB, fi.PitchHeld(**case, session_id=session, held_on=day,
                                                   investors_present=rng.randint(5, 14)))
            if rng.random() < 0.6:
                day += timedelta(days=rng.randint(10, 40))
                self.fact(day, app, CLUB, fi.InterestExpressed(
                    **case, investor=met[0], expressed_on=day,
                    amount_cents=rng.randrange(2, 20) * 100_000_00))
            if rng.random() < min(0.8, 0.35 + 0.15 * q):
                day += timedelta(days=rng.randint(40, 120))
                raised = rng.randrange(3, 30) * 100_000_00
                self.fact(day, app, CLUB, fi.RoundClosed(**case, closed_on=day, amount_raised_cents=raised,
                                                         investors=met), money=raised)
        elif code == "AV-FIN-COACHING":
            coach = rng.choice(COACHES)
            self.fact(day, app, STAFF, fi.CaseAssigned(**case, partner=coach, by=self.reviewer(app)))
            app.partner = coach
            for _ in range(rng.randint(2, 5)):
                day += timedelta(days=rng.randint(15, 45))
                self.fact(day, app, coach, fi.CoachingSessionHeld(
                    **case, held_on=day, topics=rng.sample(COACHING_TOPICS, 2),
                    hours=rng.choice((2, 3, 4, 6))))
            for deliverable in rng.sample(("financing_plan", "data_room", "investor_deck", "business_plan"),
                                          rng.randint(1, 2)):
                day += timedelta(days=rng.randint(10, 30))
                self.fact(day, app, coach, fi.DeliverableDelivered(**case, deliverable=deliverable,
                                                                   delivered_on=day))  # type: ignore[arg-type]
        elif code == "PG-GROWTH-CONTRACT":
            lever = rng.randrange(5, 30) * 100_000_00
            day += timedelta(days=rng.randint(10, 40))
            self.fact(day, app, STAFF, fi.GrowthContractSigned(
                **case, signed_on=day, years=3,
                objectives=[fi.Objective(objective_id="export-40", description="40 % of turnover abroad"),
                            fi.Objective(objective_id="equity-round", description="an equity round")],
                levers=[fi.Lever(lever="financing", description="equity round with regional funds",
                                 amount_cents=lever),
                        fi.Lever(lever="region", description="Région Sud innovation aid")]))
            for n in range(3):
                day += timedelta(days=rng.randint(100, 150))
                achieved = n > 0 and rng.random() < 0.4 + 0.15 * q
                outcome = "achieved" if achieved else rng.choice(("on_track", "on_track", "late"))
                self.fact(day, app, STAFF, fi.GrowthMilestoneReviewed(
                    **case, objective_id="equity-round", reviewed_on=day, outcome=outcome),  # type: ignore[arg-type]
                    money=lever if achieved else 0)
                if achieved:
                    break
        elif code == "AS-PRIVATE-FINANCING":
            for _ in range(rng.randint(2, 5)):
                day += timedelta(days=rng.randint(25, 80))
                action, outcome = rng.choice(FINANCING_ACTIONS)
                amount = rng.randrange(1, 20) * 100_000_00 if rng.random() < 0.3 + 0.1 * q else None
                self.fact(day, app, STAFF, fi.FinancingActionRecorded(
                    **case, action=action, on=day, outcome=outcome if amount else None,
                    amount_obtained_cents=amount), money=amount or 0)

    def plan_export(self, when: datetime, app: App, unit: Unit) -> None:
        rng, q = self.rng, app.company.quality
        assert app.start_on is not None
        day = max(app.start_on, when.date()) + timedelta(days=rng.randint(5, 20))
        support = {"support_id": app.id}
        partner, country = unit.partner, unit.pool[2]
        contracts = 0
        if app.programme.code == "AV-VIE-RELAY":
            assert country is not None
            for n in range(rng.randint(1, 4)):
                day += timedelta(days=rng.randint(15, 60))
                lead, buyer = f"lead-{n + 1}", rng.choice(BUYERS[country])
                self.fact(day, app, partner, ex.LeadReported(
                    **support, lead_id=lead, country=country, buyer=buyer, reported_on=day,
                    estimated_cents=rng.randrange(1, 30) * 50_000_00))
                if rng.random() < 0.7:
                    met = day + timedelta(days=rng.randint(5, 30))
                    self.fact(met, app, partner, ex.RelayMeetingHeld(
                        **support, country=country, organisation=buyer, held_on=met, lead_id=lead))
                    if rng.random() < min(0.7, 0.3 + 0.12 * q):
                        contracts += 1
                        signed = met + timedelta(days=rng.randint(30, 120))
                        self.contract(signed, app, partner, country, buyer, contracts)
        elif app.programme.code == "PG-EXPORT-DESKS":
            assert country is not None
            for n in range(rng.randint(1, 2)):
                day += timedelta(days=rng.randint(10, 40))
                self.fact(day, app, partner, ex.ProspectListDelivered(
                    **support, list_id=f"list-{n + 1}", country=country, prospects=rng.randint(8, 40),
                    delivered_on=day))
            for _ in range(rng.randint(1, 4)):
                day += timedelta(days=rng.randint(10, 50))
                buyer = rng.choice(BUYERS[country])
                self.fact(day, app, partner, ex.DeskMeetingArranged(
                    **support, country=country, organisation=buyer, held_on=day))
                if rng.random() < min(0.6, 0.25 + 0.1 * q):
                    contracts += 1
                    self.contract(day + timedelta(days=rng.randint(30, 100)), app, partner, country, buyer,
                                  contracts)
            if rng.random() < 0.3:
                day += timedelta(days=rng.randint(30, 90))
                self.fact(day, app, partner, ex.LocalSetupCompleted(
                    **support, country=country, setup=rng.choice(("office", "branch", "distributor")),  # type: ignore[arg-type]
                    completed_on=day))
        else:  # a CCI cohort: the workshops it holds while the SME takes part, then the strategy
            enrolled_on = app.enrolled_at.date() if app.enrolled_at else day
            attended = [w for w, on in sorted(unit.workshops.items(), key=lambda kv: kv[1])
                        if on >= max(enrolled_on, app.start_on) and rng.random() < 0.85
                        and self.fact(on, app, partner, ex.WorkshopAttended(
                            **support, workshop_id=w, attended_on=on, attendees=rng.randint(1, 3)))]
            if attended:
                day = max(unit.workshops[attended[-1]], day) + timedelta(days=rng.randint(10, 40))
                priorities = sorted({app.target or "US", rng.choice(("DE", "GB", "US", "JP"))})
                self.fact(day, app, partner, ex.StrategyDelivered(**support, delivered_on=day,
                                                                  priority_countries=priorities))
            if rng.random() < min(0.6, 0.25 + 0.1 * q):
                target = app.target or "US"
                self.contract(day + timedelta(days=rng.randint(20, 90)), app, partner, target,
                              rng.choice(BUYERS[target]), 1)

    def contract(self, day: date, app: App, partner: str, country: str, buyer: str, n: int) -> None:
        amount = self.rng.randrange(5, 150) * 10_000_00
        data = ex.ContractSigned(support_id=app.id, contract_id=f"contract-{n}", country=country, buyer=buyer,
                                 signed_on=day, amount_cents=amount)
        if day >= TODAY or day <= self.now.date():
            return
        if app.end_on is not None and day >= app.end_on:
            # Signed after the support closed: staff report it, as the outcomes are followed on.
            self.at(moment(day, self.rng), self.staff_contract, app, data)
        else:
            self.fact(day, app, partner, data, contract=(country, amount))

    def staff_contract(self, when: datetime, app: App, data: ex.ContractSigned) -> None:
        if app.enrolled_at is None:
            return
        self.app_publish(when, STAFF, app, data)
        app.contracts.append((when.date(), data.country, data.amount_cents))
