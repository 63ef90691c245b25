"""The history data set (deploy/local/history_model.py): generated from the seed alone, in time
order, every fact dated on or before the moment it is published."""

from __future__ import annotations

from collections import Counter
from datetime import date

import pytest

from deploy.local.history_model import TODAY, YEARS, History, Publication, generate


@pytest.fixture(scope="module")
def history() -> list[Publication]:
    return generate(7, 0.5)


def as_plain(publications: list[Publication]) -> list[tuple[str, str, str, bytes]]:
    return [(p.time.isoformat(), p.producer, p.subject, p.event.to_bytes()) for p in publications]


def test_the_same_seed_gives_the_same_events(history: list[Publication]) -> None:
    assert as_plain(generate(7, 0.5)) == as_plain(history)


def test_another_seed_gives_another_history(history: list[Publication]) -> None:
    other = generate(8, 0.5)
    assert as_plain(other) != as_plain(history)
    # Another seed can be published on the same stack: its ids differ.
    assert not {p.event.id for p in other} & {p.event.id for p in history}


def test_events_come_in_time_order_before_today_with_unique_ids(history: list[Publication]) -> None:
    times = [p.time for p in history]
    assert times == sorted(times)
    assert times[0].date() >= date(YEARS[0], 1, 1) and times[-1].date() < TODAY
    assert len({p.event.id for p in history}) == len(history)
    assert all(p.event.time == p.time and p.subject.split(".")[2] == p.producer for p in history)


def test_facts_are_dated_on_or_before_the_moment_they_are_published(history: list[Publication]) -> None:
    for publication in history:
        for key, value in publication.event.data.items():
            # Not facts: a requirement's due day, a mission's dates, the day a pitch is planned for.
            if (key.endswith("_on") or key == "on") and key not in ("due_on", "ends_on", "starts_on",
                                                                    "scheduled_on"):
                assert date.fromisoformat(value) <= publication.time.date(), (key, publication.event)


def test_three_cohort_years_in_every_cluster(history: list[Publication]) -> None:
    years = Counter((p.event.cluster, p.event.data["applied_on"][:4]) for p in history
                    if p.event.type == "envol.application.submitted.v1")
    assert {cluster for cluster, _ in years} == {"aerospace-valley", "pegase", "astech"}
    assert {(c, str(y)) for c in ("aerospace-valley", "pegase", "astech") for y in YEARS} <= set(years)


def test_it_holds_every_kind_of_fact() -> None:
    types = Counter(p.event.type for p in generate(7, 1.0))
    for kind in ("company.registered", "application.submitted", "application.reviewed",
                 "participation.started", "participation.finished", "withdrawal.requested",
                 "financing.case.assigned", "loan.decided", "loan.tranche.disbursed", "club.round.closed",
                 "coaching.session.held", "growth.contract.signed", "financing.action.recorded",
                 "relay.lead.reported", "relay.meeting.held", "desk.prospects.delivered",
                 "cci.workshop.attended", "export.contract.signed", "financing.checkpoint.recorded",
                 "export.checkpoint.recorded", "outcomes.comparison.recorded"):
        assert types[f"envol.{kind}.v1"] > 0, kind


def test_the_comparison_group_is_applicants_never_enrolled_and_participants_do_better() -> None:
    played = History(7, 1.0)
    publications = played.run()
    apps = {app.id: app for app in played.apps}
    compared = [p.event.data for p in publications if p.event.type == "envol.outcomes.comparison.recorded.v1"]
    assert compared
    assert {apps[d["application_id"]].status for d in compared} <= {"waitlisted", "denied", "ineligible"}
    assert all(apps[d["application_id"]].enrolled_at is None for d in compared)
    assert 200 <= len({c.siren for c in played.companies}) <= 400  # a few hundred companies
    assert any(not c.sme for c in played.companies)

    def gain(type_: str, field: str, key: str, apps_of: set[str]) -> float:
        by_app: dict[str, dict[str, int]] = {}
        for p in publications:
            data = p.event.data
            if p.event.type == type_ and data[key] in apps_of and field in data:
                by_app.setdefault(data[key], {})[data["checkpoint"]] = data[field]
        gains = [points["month_12"] - points["baseline"] for points in by_app.values()
                 if "baseline" in points and "month_12" in points]
        assert len(gains) > 5
        return sum(gains) / len(gains)

    financing = {i for i, a in apps.items() if not a.is_export}
    field = "value_cents" if "value_cents" in compared[0] else "raised_to_date_cents"
    participants = gain("envol.financing.checkpoint.recorded.v1", "raised_to_date_cents", "case_id",
                        financing)
    comparison = gain("envol.outcomes.comparison.recorded.v1", field, "application_id", financing)
    assert participants > comparison


def test_later_cohorts_reach_fewer_checkpoints() -> None:
    checkpoints = [p.event.data["case_id"] for p in generate(7, 1.0)
                   if p.event.type == "envol.financing.checkpoint.recorded.v1"]
    cases = {year: {c for c in checkpoints if c.split("-")[1] == year} for year in ("2024", "2025", "2026")}
    per_case = {year: sum(1 for c in checkpoints if c in cases[year]) / len(cases[year]) for year in cases}
    assert per_case["2024"] > per_case["2025"] > per_case["2026"] >= 1
