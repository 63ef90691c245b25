"""What a cluster's programmes achieved, per programme and cohort: the figures of the report.

Pure functions over journeys. Rules a reader of the figures can rely on:
- each SME counts once per cohort, however many applications, cases or supports it had: its
  journeys are merged (steps reached by any of them, money of all of them, first outcome the
  earliest);
- participants are the SMEs enrolled; the comparison group the SMEs never enrolled that were
  waitlisted, denied or ineligible;
- money is what participants obtained while enrolled (loans awarded, rounds raised, financing
  obtained through support; contracts abroad for export programmes); the median is over the
  participants that obtained some, the amount per SME over all participants;
- change since baseline is a checkpoint's value minus the baseline's, for the SMEs that have
  both; its interval is a 95 % percentile bootstrap (2,000 resamples, seeded by the cohort, so
  the same data always gives the same interval). Under MIN_GROUP SMEs in either group, the
  figures are given with a plain warning that they say nothing.
"""

from __future__ import annotations

import calendar
import random
import statistics
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime

from envol_outcomes.domain.model import CHECKPOINTS, FUNNEL, Journey

MIN_GROUP = 5
RESAMPLES = 2_000
HORIZON_MONTHS = 36


@dataclass
class Sme:
    """One SME in one cohort: its journeys merged."""

    siren: str
    steps: dict[str, datetime] = field(default_factory=dict)
    enrolled_at: datetime | None = None
    obtained_cents: int = 0
    gains: list[tuple[datetime, int]] = field(default_factory=list)
    first_outcome_at: datetime | None = None
    checkpoints: dict[str, int] = field(default_factory=dict)
    comparable: bool = False

    @property
    def participant(self) -> bool:
        return self.enrolled_at is not None

    def add(self, journey: Journey) -> None:
        for step, at in journey.steps.items():
            reached = datetime.fromisoformat(at)
            self.steps[step] = min(self.steps.get(step, reached), reached)
        if journey.enrolled_at is not None:
            self.enrolled_at = min(filter(None, (self.enrolled_at, journey.enrolled_at)))
        self.obtained_cents += journey.obtained_cents
        self.gains += [(datetime.fromisoformat(at), cents) for at, cents in journey.gains]
        if journey.first_outcome_at is not None:
            self.first_outcome_at = min(filter(None, (self.first_outcome_at, journey.first_outcome_at)))
        # A later journey's checkpoint (a second support) replaces an earlier one's.
        self.checkpoints |= {name: c["value_cents"] for name, c in journey.checkpoints.items()}
        self.comparable = self.comparable or journey.is_comparable


def add_months(moment: datetime, months: int) -> datetime:
    month = moment.month - 1 + months
    year, month = moment.year + month // 12, month % 12 + 1
    return moment.replace(year=year, month=month, day=min(moment.day, calendar.monthrange(year, month)[1]))


def _ratio(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _median(values: Sequence[float]) -> int | None:
    return round(statistics.median(values)) if values else None


def _interval(samples: list[float]) -> list[int]:
    samples.sort()
    return [round(samples[int(0.025 * len(samples))]), round(samples[int(0.975 * len(samples)) - 1])]


def _bootstrap(values: Sequence[int], rng: random.Random) -> list[int] | None:
    if len(values) < 2:
        return None
    means = [statistics.fmean(rng.choices(values, k=len(values))) for _ in range(RESAMPLES)]
    return _interval(means)


def _bootstrap_difference(a: Sequence[int], b: Sequence[int], rng: random.Random) -> list[int] | None:
    if len(a) < 2 or len(b) < 2:
        return None
    diffs = [statistics.fmean(rng.choices(a, k=len(a))) - statistics.fmean(rng.choices(b, k=len(b)))
             for _ in range(RESAMPLES)]
    return _interval(diffs)


def _changes(smes: Iterable[Sme], checkpoint: str) -> list[int]:
    return [s.checkpoints[checkpoint] - s.checkpoints["baseline"] for s in smes
            if "baseline" in s.checkpoints and checkpoint in s.checkpoints]


def _group(values: list[int], rng: random.Random) -> dict[str, object]:
    return {"n": len(values), "mean_change_cents": round(statistics.fmean(values)) if values else None,
            "interval": _bootstrap(values, rng)}


def compare(participants: list[Sme], comparison: list[Sme], checkpoint: str, measure: str,
            seed: str) -> dict[str, object]:
    rng = random.Random(f"{seed}/{checkpoint}")
    ours, theirs = _changes(participants, checkpoint), _changes(comparison, checkpoint)
    difference = None
    if ours and theirs:
        difference = {"estimate_cents": round(statistics.fmean(ours) - statistics.fmean(theirs)),
                      "interval": _bootstrap_difference(ours, theirs, rng)}
    warning = None
    if len(ours) < MIN_GROUP or len(theirs) < MIN_GROUP:
        warning = (f"too few SMEs to compare: {len(ours)} participant(s) and {len(theirs)} in the "
                   f"comparison group (at least {MIN_GROUP} in each are needed)")
    return {"checkpoint": checkpoint, "measure": measure, "participants": _group(ours, rng),
            "comparison": _group(theirs, rng), "difference": difference, "warning": warning}


def timeline(participants: list[Sme], as_of: datetime) -> list[dict[str, object]]:
    """Month by month since each participant's enrolment, while every one of them has lived
    that month: what they obtained in all, and the share with a first outcome."""
    if not participants:
        return []
    points = []
    for month in range(HORIZON_MONTHS + 1):
        horizons = [(s, add_months(s.enrolled_at, month)) for s in participants if s.enrolled_at]
        if any(horizon > as_of for _, horizon in horizons):
            break
        cumulative = sum(cents for s, horizon in horizons for at, cents in s.gains if at <= horizon)
        reached = sum(1 for s, horizon in horizons if s.first_outcome_at and s.first_outcome_at <= horizon)
        points.append({"month": month, "cumulative_cents": cumulative,
                       "share_with_outcome": _ratio(reached, len(participants))})
    return points


def cohort_figures(cohort: str, measure: str, journeys: list[Journey], as_of: datetime) -> dict[str, object]:
    smes: dict[str, Sme] = defaultdict(lambda: Sme(""))
    for journey in journeys:
        smes[journey.siren].siren = journey.siren
        smes[journey.siren].add(journey)
    everyone = list(smes.values())
    funnel = {step: sum(1 for s in everyone if step in s.steps) for step in FUNNEL}
    participants = [s for s in everyone if s.participant]
    comparison = [s for s in everyone if not s.participant and s.comparable]
    with_money = [s.obtained_cents for s in participants if s.obtained_cents > 0]
    days = [(s.first_outcome_at - s.enrolled_at).days for s in participants
            if s.first_outcome_at and s.enrolled_at]
    total = sum(s.obtained_cents for s in participants)
    return {
        "cohort": cohort,
        "funnel": funnel,
        "conversion": {"eligible_of_applied": _ratio(funnel["eligible"], funnel["applied"]),
                       "enrolled_of_eligible": _ratio(funnel["enrolled"], funnel["eligible"]),
                       "completed_of_enrolled": _ratio(funnel["completed"], funnel["enrolled"])},
        "participants": len(participants),
        "comparison": len(comparison),
        "money": {"smes": len(with_money), "total_cents": total, "median_cents": _median(with_money),
                  "per_sme_cents": round(total / len(participants)) if participants else None},
        "first_outcome": {"smes": len(days), "share": _ratio(len(days), len(participants)),
                          "median_days": _median(days)},
        "timeline": timeline(participants, as_of),
        "checkpoints": [compare(participants, comparison, name, measure, cohort)
                        for name in CHECKPOINTS[1:]],
    }


def in_period(journey: Journey, first: date, last: date | None) -> bool:
    """Cohorts of the period: applications made within it."""
    applied = journey.steps.get("applied")
    if applied is None:
        return False
    day = datetime.fromisoformat(applied).date()
    return first <= day and (last is None or day <= last)


def report(cluster: str, journeys: Iterable[Journey], *, first: date, last: date | None,
           as_of: datetime) -> dict[str, object]:
    """The figures of one cluster's programmes for the applications of a period."""
    cohorts: dict[tuple[str, str], dict[str, list[Journey]]] = defaultdict(lambda: defaultdict(list))
    for journey in journeys:
        if journey.cluster == cluster and in_period(journey, first, last):
            cohorts[(journey.programme, journey.kind.value)][journey.cohort].append(journey)
    programmes = []
    for (programme, kind), by_cohort in sorted(cohorts.items()):
        measure = next(iter(by_cohort.values()))[0].measure
        programmes.append({
            "programme": programme, "kind": kind, "title": None,
            "cohorts": [cohort_figures(cohort, measure, members, as_of)
                        for cohort, members in sorted(by_cohort.items())],
        })
    period = {"from": first.isoformat(), "to": last.isoformat() if last else None}
    return {"cluster": cluster, "period": period, "as_of": as_of.date().isoformat(),
            "programmes": programmes}
