"""The outcome checkpoints of the history data set (deploy/local/history_model.py), once the
three years have been played: what each participant has raised to date or exports (staff's
``financing.checkpoint.recorded`` and ``export.checkpoint.recorded``), and the same for the
comparison group, applicants never enrolled (``outcomes.comparison.recorded``).

The trends are built in: participants add to a growth every company has what the programme
brought them (the money of their loans, rounds and actions, their export contracts), so they
do better than the comparison group on average, with noise; checkpoints come 6, 12 and 24
months after enrolment (or after the decision, for the comparison group) only when that day
is before TODAY, so later cohorts have fewer; a few are missed.
"""

from __future__ import annotations

import random
from datetime import date, timedelta
from typing import TYPE_CHECKING

from deploy.local.history_world import STAFF, TODAY, moment, workday
from envol_shared.calendar import add_months
from envol_shared.contracts import export as ex
from envol_shared.contracts import financing as fi
from envol_shared.contracts import outcomes as oc

if TYPE_CHECKING:
    from deploy.local.history_model import App, History, Publication

COMPARED = ("waitlisted", "denied", "ineligible")
CHECKPOINTS = {"month_6": 6, "month_12": 12, "month_24": 24}


def checkpoints(history: History) -> list[Publication]:
    rng = random.Random(f"checkpoints-{history.seed}")
    before = len(history.out)
    for app in history.apps:
        enrolled = app.enrolled_at is not None
        if not enrolled and app.status not in COMPARED:
            continue
        start = app.enrolled_at.date() if app.enrolled_at else app.since.date()  # type: ignore[union-attr]
        after = rng.randint(2, 12) if enrolled else rng.randint(5, 20)
        days = {"baseline": workday(start + timedelta(days=after))}
        for name, months in CHECKPOINTS.items():
            if rng.random() > (0.07 if enrolled else 0.15):  # a few are missed
                days[name] = workday(add_months(start, months) + timedelta(days=rng.randint(0, 14)))
        growth = Growth(app, rng, participant=enrolled)
        for name, day in days.items():
            if day >= TODAY:
                break
            when = moment(day, rng)
            if not enrolled:
                cents = growth.export_turnover(day) if app.is_export else growth.raised(day)
                data: object = oc.ComparisonCheckpointRecorded(
                    application_id=app.id, checkpoint=name, recorded_on=day,  # type: ignore[arg-type]
                    note=f"declared by the company ({app.status} applicant)",
                    **comparison_measure(cents, export=app.is_export))
            elif app.is_export:
                data = ex.CheckpointRecorded(
                    support_id=app.id, checkpoint=name, recorded_on=day,  # type: ignore[arg-type]
                    export_turnover_cents=growth.export_turnover(day), countries_served=growth.countries(day),
                    contracts_to_date=sum(1 for signed, _, _ in app.contracts if signed <= day),
                    note="declared by the company")
            else:
                data = fi.CheckpointRecorded(case_id=app.id, checkpoint=name, recorded_on=day,  # type: ignore[arg-type]
                                             raised_to_date_cents=growth.raised(day))
            history.app_publish(when, STAFF, app, data)  # type: ignore[arg-type]
    extra = history.out[before:]
    del history.out[before:]
    return extra


def comparison_measure(cents: int, *, export: bool) -> dict[str, int]:
    """The comparison checkpoint's measure, in the field(s) its contract has: one `value_cents`,
    or `export_turnover_cents` (an export programme) / `raised_to_date_cents` (a financing one)."""
    if "value_cents" in oc.ComparisonCheckpointRecorded.model_fields:
        return {"value_cents": cents}
    return {"export_turnover_cents" if export else "raised_to_date_cents": cents}


class Growth:
    """How one applicant's outcomes move over time: a growth of its own, plus, for a
    participant, what the programme brought."""

    def __init__(self, app: App, rng: random.Random, *, participant: bool) -> None:
        self.app = app
        self.start: date = app.enrolled_at.date() if app.enrolled_at else app.since.date()  # type: ignore[union-attr]
        quality = app.company.quality
        # Private financing raised by itself, per year (cents): the coached raise more.
        boost = 1.8 if participant and app.programme.code == "AV-FIN-COACHING" else 1.0
        self.raise_per_year = max(0, int(rng.gauss(120_000, 90_000) * boost * (1 + 0.2 * quality))) * 100
        # Yearly growth of export turnover: participants' plans and networks abroad work.
        mean = 0.16 + 0.05 * quality if participant else 0.03 + 0.02 * quality
        self.export_growth = rng.gauss(mean, 0.1)
        self.base_export = app.company.export_cents or rng.randrange(0, 5) * 50_000_00

    def years(self, day: date) -> float:
        return max(0, (day - self.start).days) / 365.25

    def raised(self, day: date) -> int:
        obtained = sum(cents for on, cents in self.app.money if on <= day)
        return self.app.company.raised_cents + int(self.raise_per_year * self.years(day)) + obtained

    def export_turnover(self, day: date) -> int:
        trend = self.base_export * max(0.2, 1 + self.export_growth * self.years(day))
        recent = sum(cents for on, _, cents in self.app.contracts if day - timedelta(days=365) < on <= day)
        return max(0, int(trend) + recent // 2)

    def countries(self, day: date) -> list[str]:
        reached = set(self.app.company.markets)
        reached |= {country for on, country, _ in self.app.contracts if on <= day}
        return sorted(reached)
