"""Places on relay missions, desks and cohorts: assignment, the waiting list (oldest first),
promotion when a place frees, the race for the last place, and what a unit's end does to its
SMEs. Pure domain: the service layer applies these decisions under the pool's lock."""

from __future__ import annotations

import copy
from datetime import UTC, date, datetime, timedelta

import pytest

from envol_export.domain.model import (
    DomainError,
    ExportSupport,
    SupportKind,
    SupportStatus,
    SupportUnit,
    UnitKind,
    choose_unit,
    end_unit,
    fill_places,
    place,
    waiting_order,
)

AV = "aerospace-valley"
RELAY = "AV-VIE-RELAY"
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def mission(id_: str = "av-vie-cn", *, country: str = "CN", capacity: int = 2,
            ends_on: date | None = date(2027, 8, 31), programme: str = RELAY) -> SupportUnit:
    return SupportUnit(id=id_, cluster=AV, programme=programme, kind=UnitKind.RELAY_MISSION, country=country,
                       partner=f"vie-relay-{country.lower()}", capacity=capacity, starts_on=date(2026, 1, 5),
                       ends_on=ends_on, opened_at=T0, origin="configuration", host_siren="383474814",
                       host_company="Airbus", volunteer_id=f"vie-{id_}", details={})


def cohort(id_: str = "as-cci-2026", capacity: int = 12) -> SupportUnit:
    return SupportUnit(id=id_, cluster="astech", programme="AS-CCI-INTERNATIONAL", kind=UnitKind.CCI_COHORT,
                       country=None, partner="cci-paris-idf", capacity=capacity, starts_on=date(2026, 1, 12),
                       ends_on=date(2027, 7, 9), opened_at=T0, origin="configuration",
                       details={"workshops": {"diagnostic": {"title": "Diagnostic", "on": "2026-03-10"}}})


def support(id_: str, *, country: str = "CN", opened: float = 0, kind: SupportKind = SupportKind.VIE_RELAY,
            programme: str = RELAY, cluster: str = AV) -> ExportSupport:
    return ExportSupport.open(id=id_, siren="732829320", cluster=cluster, programme=programme,
                              cohort=f"{programme}-2026", kind=kind, target_country=country,
                              correlation_id=f"corr-{id_}", enrolled_at=at(opened) - timedelta(minutes=5),
                              at=at(opened))


def open_place(unit: SupportUnit, id_: str, opened: float = 0) -> ExportSupport:
    kind = SupportKind.VIE_RELAY if unit.kind is UnitKind.RELAY_MISSION else SupportKind.CCI_COLLECTIVE
    s = support(id_, country=unit.country or "CA", opened=opened, kind=kind, programme=unit.programme,
                cluster=unit.cluster)
    s.assign(unit, at=at(opened), by="export", why="enrolled")
    return s


# ---- assignment -----------------------------------------------------------------------------------


def test_an_enrolled_sme_takes_a_place_on_the_mission_of_its_country() -> None:
    china, germany = mission(), mission("av-vie-de", country="DE")
    s = support("av-1")
    entry = place(s, [china], at=T0, by="export", why="enrolled in AV-VIE-RELAY")
    assert (s.status, s.unit_id, s.partner, s.first_assigned_at) == (SupportStatus.ASSIGNED, china.id,
                                                                     "vie-relay-cn", T0)
    assert (china.occupied, germany.occupied) == (1, 0)
    assert entry.fact == "support.assigned"
    assert entry.summary == ("place on relay mission av-vie-cn (CN), run by vie-relay-cn: enrolled in "
                             "AV-VIE-RELAY")
    assert [(e.fact, e.support_id, e.occupied) for e in china.history] == [("place.taken", "av-1", 1)]


def test_a_mission_of_another_country_or_programme_cannot_take_the_sme() -> None:
    s = support("av-1", country="CN")
    before = copy.deepcopy(s)
    for unit in (mission("av-vie-de", country="DE"), mission("other", programme="AV-OTHER")):
        with pytest.raises(DomainError, match="does not serve support av-1"):
            s.assign(unit, at=T0, by="export", why="x")
        assert unit.occupied == 0
    assert s == before


def test_among_missions_with_free_places_the_one_running_longest_is_chosen() -> None:
    short = mission("a-short", ends_on=date(2026, 12, 31))
    long = mission("b-long", ends_on=date(2027, 12, 31), capacity=1)
    open_ended = mission("c-open-ended", ends_on=None)
    assert choose_unit([short, long]) is long
    assert choose_unit([short, long, open_ended]) is open_ended
    open_place(long, "x")
    assert choose_unit([short, long]) is short  # the longer one is full
    # Same end: the emptiest, then the first by id — the same answer on every instance.
    twin_a, twin_b = mission("twin-a", capacity=3), mission("twin-b", capacity=2)
    assert choose_unit([twin_b, twin_a]) is twin_a
    assert choose_unit([mission("z"), mission("y")]).id == "y"  # type: ignore[union-attr]


def test_a_full_mission_puts_the_sme_on_the_waiting_list() -> None:
    china = mission(capacity=1)
    open_place(china, "av-1")
    s = support("av-2", opened=1)
    entry = place(s, [china], at=at(1), by="export", why="enrolled in AV-VIE-RELAY")
    assert (s.status, s.unit_id, s.waiting_since, s.first_assigned_at) == (SupportStatus.WAITING, None, at(1),
                                                                           None)
    assert entry.summary == ("waiting for a place: enrolled in AV-VIE-RELAY; relay mission av-vie-cn (CN) is "
                             "full (1 places)")
    assert china.occupied == 1


def test_without_any_mission_in_its_country_the_sme_waits_for_one() -> None:
    s = support("av-1", country="BR")
    entry = place(s, [], at=T0, by="export", why="enrolled in AV-VIE-RELAY")
    assert s.status is SupportStatus.WAITING
    assert entry.summary.endswith("no relay mission of AV-VIE-RELAY in BR yet")


def test_a_cohort_serves_any_target_country() -> None:
    group = cohort(capacity=2)
    canada, india = (support(f"as-{c}", country=c, kind=SupportKind.CCI_COLLECTIVE,
                             programme="AS-CCI-INTERNATIONAL", cluster="astech") for c in ("CA", "IN"))
    assert canada.pool == india.pool == group.pool == ("astech", "AS-CCI-INTERNATIONAL", None)
    place(canada, [group], at=T0, by="export", why="x")
    place(india, [group], at=T0, by="export", why="x")
    assert (canada.unit_id, india.unit_id, group.occupied) == (group.id, group.id, 2)


# ---- the race for the last place -------------------------------------------------------------------


def test_the_last_place_goes_to_one_sme_only() -> None:
    """Two enrolments racing for the last place: whoever takes it second finds the mission full.
    The service makes the second one read the mission after the first committed (row lock)."""
    china = mission(capacity=2)
    open_place(china, "av-1")
    first, second = support("av-2", opened=1), support("av-3", opened=1)
    place(first, [china], at=at(1), by="export", why="x")
    place(second, [china], at=at(1), by="export", why="x")
    assert (first.status, second.status) == (SupportStatus.ASSIGNED, SupportStatus.WAITING)
    assert china.occupied == china.capacity == 2
    with pytest.raises(DomainError, match=r"relay mission av-vie-cn \(CN\) is full \(2 places\)"):
        china.take("av-4", at=at(2))
    assert china.occupied == 2


def test_a_place_is_taken_once_and_an_ended_mission_takes_nobody() -> None:
    china = mission()
    s = open_place(china, "av-1")
    with pytest.raises(DomainError, match="support av-1 already has a place on av-vie-cn"):
        s.assign(mission("av-vie-cn-2"), at=T0, by="export", why="x")
    china.end(at=at(5), reason="volunteer left")
    assert china.free_places == 0
    with pytest.raises(DomainError, match="ended on 2026-03-02"):
        china.take("av-2", at=at(6))


# ---- the waiting list ----------------------------------------------------------------------------


def test_waiting_list_is_oldest_first() -> None:
    china = mission(capacity=1)
    open_place(china, "av-0")
    waiting = []
    for n, hour in enumerate((3, 1, 2, 1), start=1):
        s = support(f"av-{n}", opened=hour)
        place(s, [china], at=at(hour), by="export", why="x")
        waiting.append(s)
    assert [s.id for s in sorted(waiting, key=waiting_order)] == ["av-2", "av-4", "av-3", "av-1"]


def test_a_freed_place_goes_to_the_oldest_waiting_sme() -> None:
    china = mission(capacity=2)
    first, second = open_place(china, "av-1"), open_place(china, "av-2")
    late, early = support("av-4", opened=4), support("av-3", opened=3)
    for s in (late, early):
        place(s, [china], at=s.opened_at, by="export", why="x")
    first.close(at=at(5), by="as-staff-1", reason="withdrawn", unit=china)
    assert (first.status, first.unit_id, china.occupied) == (SupportStatus.CLOSED, None, 1)
    promoted = fill_places([china], [late, early], at=at(5), by="export", why="place freed by av-1")
    assert [(s.id, e.fact) for s, e in promoted] == [("av-3", "support.assigned")]
    assert (early.status, early.unit_id, early.waiting_since) == (SupportStatus.ASSIGNED, china.id, None)
    assert late.status is SupportStatus.WAITING
    assert china.occupied == 2
    assert fill_places([china], [late], at=at(6), by="export", why="x") == []  # still full
    assert second.unit_id == china.id


def test_closing_a_waiting_support_frees_nothing() -> None:
    china = mission(capacity=1)
    open_place(china, "av-1")
    waiting = support("av-2", opened=1)
    place(waiting, [china], at=at(1), by="export", why="x")
    waiting.close(at=at(2), by="staff", reason="withdrawn", unit=None)
    assert (waiting.status, china.occupied) == (SupportStatus.CLOSED, 1)


def test_closing_an_assigned_support_needs_its_unit() -> None:
    china = mission()
    s = open_place(china, "av-1")
    before = copy.deepcopy(s)
    with pytest.raises(DomainError, match="frees its place on av-vie-cn: that unit is needed"):
        s.close(at=at(1), by="staff", reason="withdrawn", unit=None)
    assert s == before
    with pytest.raises(DomainError, match="support av-1 has no place on other"):
        s.close(at=at(1), by="staff", reason="withdrawn", unit=mission("other"))


def test_a_lower_capacity_evicts_nobody_but_admits_nobody_new() -> None:
    china = mission(capacity=3)
    for n in range(3):
        open_place(china, f"av-{n}")
    china.capacity = 2
    assert (china.occupied, china.free_places) == (3, 0)
    assert choose_unit([china]) is None


# ---- a unit that ends -------------------------------------------------------------------------------


def test_a_mission_that_ends_moves_its_smes_to_another_mission_of_its_country_or_waitlists_them() -> None:
    ending = mission("cn-a", capacity=3, ends_on=date(2026, 9, 30))
    other = mission("cn-b", capacity=2, ends_on=date(2027, 9, 30))
    open_place(other, "av-x")
    smes = [open_place(ending, f"av-{n}", opened=n) for n in (3, 1, 2)]
    waiting_before = support("av-w", opened=0.5)
    place(waiting_before, [mission("full", capacity=0)], at=at(0.5), by="export", why="x")

    entry, outcomes = end_unit(ending, smes, [ending, other], at=at(10), by="export",
                               reason="its last day was 2026-09-30")
    # Oldest support first: av-1 takes cn-b's free place, the others wait.
    assert [(s.id, e.fact, s.unit_id) for s, e in outcomes] == [
        ("av-1", "support.assigned", "cn-b"), ("av-2", "support.waitlisted", None),
        ("av-3", "support.waitlisted", None)]
    assert outcomes[0][1].summary == ("place on relay mission cn-b (CN), run by vie-relay-cn: relay mission "
                                      "cn-a (CN) ended (its last day was 2026-09-30); moved from cn-a")
    assert outcomes[1][1].summary == ("waiting for a place: relay mission cn-a (CN) ended (its last day was "
                                      "2026-09-30); relay mission cn-b (CN) is full (2 places)")
    # Served already, they wait behind SMEs that never had a place.
    assert outcomes[1][0].waiting_since == at(10) > waiting_before.waiting_since  # type: ignore[operator]
    assert (entry.fact, ending.is_ended, ending.occupied, other.occupied) == ("unit.ended", True, 0, 2)
    assert ending.free_places == 0


def test_a_mission_that_ends_with_no_other_mission_in_its_country_closes_its_supports() -> None:
    ending = mission("br-a", country="BR")
    s = open_place(ending, "av-1")
    _, outcomes = end_unit(ending, [s], [ending, mission("ca", country="CA")], at=at(10), by="av-staff-1",
                           reason="host closed the office")
    assert [(x.id, e.fact) for x, e in outcomes] == [("av-1", "support.closed")]
    assert s.close_reason == ("relay mission br-a (BR) ended (host closed the office), and no other relay "
                              "mission of AV-VIE-RELAY serves BR")
    assert (s.unit_id, ending.occupied) == (None, 0)


def test_a_cohort_that_ends_closes_its_supports_even_with_another_cohort_open() -> None:
    ending, next_one = cohort("as-cci-2026"), cohort("as-cci-2027")
    s = open_place(ending, "as-1")
    _, outcomes = end_unit(ending, [s], [ending, next_one], at=at(10), by="export", reason="its last day")
    assert [e.fact for _, e in outcomes] == ["support.closed"]
    assert s.close_reason == "CCI cohort as-cci-2026 ended (its last day): the collective action is over"
    assert next_one.occupied == 0


def test_a_unit_ends_once_and_a_shorter_end_may_only_come_earlier() -> None:
    china = mission(ends_on=date(2027, 8, 31))
    china.shorten(date(2027, 3, 31), at=T0, by="av-staff-1", reason="volunteer leaves early")
    assert china.ends_on == date(2027, 3, 31)
    with pytest.raises(DomainError, match="it can end earlier, not later"):
        china.shorten(date(2027, 6, 30), at=T0, by="av-staff-1", reason="x")
    china.end(at=T0, reason="x")
    with pytest.raises(DomainError, match="has already ended"):
        china.end(at=T0, reason="y")


def test_reconfiguring_a_unit_changes_places_and_dates_not_what_it_is() -> None:
    china = mission(capacity=2)
    configured = mission(capacity=3, ends_on=date(2027, 12, 31))
    assert china.reconfigure(configured, at=T0) == ["capacity", "ends_on"]
    assert (china.capacity, china.ends_on) == (3, date(2027, 12, 31))
    assert china.history[-1].summary == ("configuration changed: capacity 2 -> 3, "
                                         "ends_on 2027-08-31 -> 2027-12-31")
    assert china.reconfigure(mission(capacity=3, ends_on=date(2027, 12, 31)), at=T0) == []
    with pytest.raises(DomainError, match="country cannot change once the unit exists"):
        china.reconfigure(mission(country="DE"), at=T0)


def test_an_end_staff_brought_forward_survives_the_configuration_file() -> None:
    china = mission(ends_on=date(2027, 8, 31))
    china.shorten(date(2027, 3, 31), at=T0, by="av-staff-1", reason="volunteer leaves early")
    assert china.reconfigure(mission(ends_on=date(2027, 8, 31)), at=T0) == []
    assert china.reconfigure(mission(capacity=3, ends_on=date(2027, 12, 31)), at=T0) == ["capacity"]
    assert china.ends_on == date(2027, 3, 31)
    assert china.reconfigure(mission(capacity=3, ends_on=date(2027, 1, 31)), at=T0) == ["ends_on"]
    assert china.ends_on == date(2027, 1, 31)
