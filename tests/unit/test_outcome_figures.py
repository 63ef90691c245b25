"""The outcomes domain and its figures, without I/O: journeys, SMEs counted once, the timeline,
the comparison and its bootstrap intervals."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from envol_outcomes.domain import figures
from envol_outcomes.domain.figures import MIN_GROUP, add_months, cohort_figures, compare, report
from envol_outcomes.domain.model import DomainError, Journey

AS_OF = datetime(2026, 12, 1, tzinfo=UTC)


def moment(day: str) -> datetime:
    return datetime.fromisoformat(f"{day}T09:00:00+00:00")


def journey(app: str, siren: str, *steps: tuple[str, str], cohort: str = "P-2025",
            kind: str = "financing", cluster: str = "pegase") -> Journey:
    result = Journey.start(id=app, cluster=cluster, siren=siren, programme="P", kind=kind, cohort=cohort)
    for status, day in steps:
        result.reach(status, moment(day))
    return result


def enrolled(app: str, siren: str, day: str = "2025-02-01", **kw: str) -> Journey:
    return journey(app, siren, ("applied", "2025-01-10"), ("eligible", "2025-01-10"), ("enrolled", day), **kw)


def with_checkpoints(j: Journey, baseline: int, later: int, *, comparison: bool = False) -> Journey:
    j.record_checkpoint("baseline", "2025-02-03", baseline, comparison=comparison)
    j.record_checkpoint("month_6", "2025-08-04", later, comparison=comparison)
    return j


def test_a_step_keeps_the_moment_it_was_first_reached_and_a_gain_its_own():
    j = journey("a", "1", ("applied", "2025-01-10"), ("waitlisted", "2025-02-01"),
                ("enrolled", "2025-03-01"), ("waitlisted", "2025-04-01"))
    assert j.steps["waitlisted"] == moment("2025-02-01").isoformat() and j.status == "waitlisted"
    assert j.was_enrolled and not j.is_comparable
    j.obtained(100, moment("2025-05-01"))
    j.obtained(100, moment("2025-06-01"))  # the same total again: no gain
    j.obtained(250, moment("2025-07-01"))
    assert j.gains == [[moment("2025-05-01").isoformat(), 100], [moment("2025-07-01").isoformat(), 150]]
    assert j.first_outcome_at == moment("2025-05-01")


def test_only_participants_obtain_and_only_the_turned_away_are_compared():
    waiting = journey("w", "1", ("applied", "2025-01-10"), ("waitlisted", "2025-02-01"))
    with pytest.raises(DomainError, match="never enrolled"):
        waiting.obtained(1, moment("2025-03-01"))
    with pytest.raises(DomainError, match="never enrolled"):
        waiting.record_checkpoint("baseline", "2025-02-01", 0, comparison=False)
    applied = journey("x", "2", ("applied", "2025-01-10"))
    with pytest.raises(DomainError, match="is applied"):
        applied.record_checkpoint("baseline", "2025-02-01", 0, comparison=True)
    with pytest.raises(DomainError, match="was enrolled"):
        enrolled("e", "3").record_checkpoint("baseline", "2025-02-01", 0, comparison=True)


@pytest.mark.parametrize(("start", "months", "expected"), [
    ("2025-01-31", 1, "2025-02-28"), ("2024-01-31", 1, "2024-02-29"), ("2025-11-15", 2, "2026-01-15"),
    ("2025-03-31", 36, "2028-03-31"), ("2025-05-01", 0, "2025-05-01")])
def test_months_are_calendar_months(start: str, months: int, expected: str):
    assert add_months(moment(start), months) == moment(expected)


def test_an_sme_counts_once_however_many_applications():
    first = enrolled("a1", "111")
    first.obtained(1_000, moment("2025-03-01"))
    second = enrolled("a2", "111", day="2025-04-01")
    second.obtained(500, moment("2025-02-15"))  # an earlier first outcome, on its other journey
    other = journey("b1", "222", ("applied", "2025-01-11"), ("ineligible", "2025-01-11"))
    result = cohort_figures("P-2025", "raised_to_date_cents", [first, second, other], AS_OF)
    assert result["funnel"]["applied"] == 2 and result["funnel"]["enrolled"] == 1
    assert (result["participants"], result["comparison"]) == (1, 1)
    assert result["money"] == {"smes": 1, "total_cents": 1_500, "median_cents": 1_500, "per_sme_cents": 1_500}
    # From its first enrolment (1 February) to its first gain (15 February).
    assert result["first_outcome"] == {"smes": 1, "share": 1.0, "median_days": 14}


def test_the_timeline_stops_where_a_participant_has_not_lived_the_month_yet():
    early, late = enrolled("a", "1", day="2025-01-01"), enrolled("b", "2", day="2026-10-15")
    early.obtained(10, moment("2025-02-01"))
    points = figures.timeline(cohort_figures_smes([early, late]), AS_OF)
    assert [p["month"] for p in points] == [0, 1]  # late was enrolled six weeks before AS_OF
    assert points[1] == {"month": 1, "cumulative_cents": 10, "share_with_outcome": 0.5}
    assert figures.timeline([], AS_OF) == []


def cohort_figures_smes(journeys: list[Journey]) -> list[figures.Sme]:
    smes = []
    for j in journeys:
        sme = figures.Sme(j.siren)
        sme.add(j)
        smes.append(sme)
    return smes


def test_the_comparison_is_reproducible_and_warns_when_groups_are_small():
    ours = cohort_figures_smes([with_checkpoints(enrolled(f"p{n}", f"p{n}"), 0, 1_000 * n) for n in range(6)])
    theirs = cohort_figures_smes([
        with_checkpoints(journey(f"c{n}", f"c{n}", ("applied", "2025-01-10"), ("denied", "2025-02-01")),
                         0, 100 * n, comparison=True) for n in range(6)])
    result = compare(ours, theirs, "month_6", "raised_to_date_cents", "P-2025")
    assert result == compare(ours, theirs, "month_6", "raised_to_date_cents", "P-2025")
    assert result["participants"]["mean_change_cents"] == 2_500
    assert result["comparison"]["mean_change_cents"] == 250
    assert result["difference"]["estimate_cents"] == 2_250
    low, high = result["difference"]["interval"]
    assert 0 < low < 2_250 < high
    low, high = result["participants"]["interval"]
    assert 0 <= low < 2_500 < high <= 5_000
    assert result["warning"] is None
    small = compare(ours[:MIN_GROUP - 1], theirs, "month_6", "raised_to_date_cents", "P-2025")
    assert small["warning"].startswith("too few SMEs to compare: 4 participant(s) and 6")
    nobody = compare([], theirs, "month_12", "raised_to_date_cents", "P-2025")
    assert nobody["difference"] is None and nobody["participants"]["interval"] is None


def test_the_report_keeps_the_cluster_and_the_period():
    ours = enrolled("a", "1")
    elsewhere = enrolled("b", "2", cluster="astech")
    later = journey("c", "3", ("applied", "2026-03-02"), cohort="P-2026")
    answer = report("pegase", [ours, elsewhere, later], first=date(2025, 1, 1), last=date(2025, 12, 31),
                    as_of=AS_OF)
    assert [c["cohort"] for p in answer["programmes"] for c in p["cohorts"]] == ["P-2025"]
    assert answer["period"] == {"from": "2025-01-01", "to": "2025-12-31"} and answer["as_of"] == "2026-12-01"
    assert report("pegase", [], first=date(2025, 1, 1), last=None, as_of=AS_OF)["programmes"] == []


def test_the_report_says_the_service_s_small_groups_warning_once_in_the_reader_s_language():
    from envol_outcomes.report.sentences import warnings

    ours = cohort_figures_smes([with_checkpoints(enrolled(f"p{n}", f"p{n}"), 0, n) for n in range(2)])
    result = compare(ours, [], "month_6", "raised_to_date_cents", "P-2025")
    assert result["warning"] is not None
    for lang in ("en", "fr"):
        said = warnings(result, lang)
        assert len(said) == 1 and "2" in said[0], said
    assert warnings(compare([], [], "month_24", "raised_to_date_cents", "P-2025"), "en") == []
