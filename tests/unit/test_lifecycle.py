"""The application lifecycle: every legal and illegal transition, the history, the waitlist."""

from datetime import UTC, date, datetime, timedelta

import pytest

from envol_enrolment.domain.model import (
    ALLOWED,
    Application,
    DomainError,
    Status,
    StatusChange,
    next_from_waitlist,
)

S = Status
# The lifecycle as the domain describes it, written out independently of ALLOWED.
EXPECTED: dict[Status | None, set[Status]] = {
    None: {S.APPLIED},
    S.APPLIED: {S.ELIGIBLE, S.INELIGIBLE, S.WITHDRAWN},
    S.ELIGIBLE: {S.ENROLLED, S.WAITLISTED, S.DENIED, S.WITHDRAWN},
    S.WAITLISTED: {S.ENROLLED, S.DENIED, S.WITHDRAWN},
    S.ENROLLED: {S.ACTIVE, S.WITHDRAWN},
    S.ACTIVE: {S.COMPLETED, S.WITHDRAWN},
    S.INELIGIBLE: set(),
    S.DENIED: set(),
    S.COMPLETED: set(),
    S.WITHDRAWN: set(),
}
FINAL = [S.INELIGIBLE, S.DENIED, S.COMPLETED, S.WITHDRAWN]
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)

LEGAL = [(src, dst) for src, targets in EXPECTED.items() for dst in sorted(targets)]
ILLEGAL = [(src, dst) for src in EXPECTED for dst in Status if dst not in EXPECTED[src]]


def application(status: Status | None = None, *, id_: str = "app-1", submitted_at: datetime = T0,
                status_since: datetime | None = None) -> Application:
    return Application(id=id_, siren="732829320", programme="AV-INVESTORS-CLUB", cluster="aerospace-valley",
                       cohort="AV-INVESTORS-CLUB-2026", applied_on=date(2026, 3, 2),
                       submitted_at=submitted_at, correlation_id="corr-1", status=status,
                       status_since=status_since)


def label(value: object) -> str:
    return str(value)


def test_allowed_table_is_the_documented_lifecycle() -> None:
    assert {src: set(targets) for src, targets in ALLOWED.items()} == EXPECTED


@pytest.mark.parametrize(("src", "dst"), LEGAL, ids=label)
def test_legal_transition_moves_the_application(src: Status | None, dst: Status) -> None:
    app = application(src)
    assert app.can_move_to(dst)

    change = app.move_to(dst, at=T0, by="staff-42", reasons=["why"])

    assert app.status is dst
    assert app.status_since == T0
    assert app.history == [change]
    assert (change.from_status, change.to_status) == (src, dst)


@pytest.mark.parametrize(("src", "dst"), ILLEGAL, ids=label)
def test_illegal_transition_is_refused_and_names_the_allowed_targets(src: Status | None, dst: Status) -> None:
    app = application(src, status_since=T0)
    assert not app.can_move_to(dst)

    with pytest.raises(DomainError) as refused:
        app.move_to(dst, at=T0 + timedelta(days=1), by="staff-42", reasons=[])

    message = str(refused.value)
    assert f"application app-1 cannot go from {src} to {dst}; allowed: " in message
    allowed_part = message.split("allowed: ")[1]
    if EXPECTED[src]:
        assert allowed_part == ", ".join(sorted(EXPECTED[src]))
    else:
        assert allowed_part == "none (final status)"
    assert (app.status, app.status_since, app.history) == (src, T0, [])


def test_every_pair_is_either_legal_or_illegal() -> None:
    assert len(LEGAL) + len(ILLEGAL) == (len(Status) + 1) * len(Status)
    assert len(LEGAL) == 15


@pytest.mark.parametrize("final", FINAL, ids=label)
def test_final_status_allows_nothing(final: Status) -> None:
    app = application(final)
    assert not any(app.can_move_to(to) for to in Status)
    with pytest.raises(DomainError, match="allowed: none \\(final status\\)"):
        app.move_to(S.APPLIED, at=T0, by="staff", reasons=[])


def test_history_records_from_to_at_by_and_reasons() -> None:
    app = application()
    app.move_to(S.APPLIED, at=T0, by="staff-1", reasons=["submitted"])
    app.move_to(S.ELIGIBLE, at=T0 + timedelta(minutes=1), by="enrolment", reasons=[])
    app.move_to(S.WAITLISTED, at=T0 + timedelta(minutes=2), by="enrolment", reasons=["cohort full"])

    assert app.history == [
        StatusChange("app-1", None, S.APPLIED, T0, "staff-1", ["submitted"]),
        StatusChange("app-1", S.APPLIED, S.ELIGIBLE, T0 + timedelta(minutes=1), "enrolment", []),
        StatusChange("app-1", S.ELIGIBLE, S.WAITLISTED, T0 + timedelta(minutes=2), "enrolment",
                     ["cohort full"]),
    ]
    assert app.status_since == T0 + timedelta(minutes=2)


def test_history_keeps_its_own_copy_of_the_reasons() -> None:
    reasons = ["eligible"]
    app = application(S.APPLIED)
    app.move_to(S.ELIGIBLE, at=T0, by="enrolment", reasons=reasons)
    reasons.append("added later")
    assert app.history[0].reasons == ["eligible"]


def test_full_journey_to_completion() -> None:
    app = application()
    journey = [S.APPLIED, S.ELIGIBLE, S.WAITLISTED, S.ENROLLED, S.ACTIVE, S.COMPLETED]
    for minute, status in enumerate(journey):
        app.move_to(status, at=T0 + timedelta(minutes=minute), by="staff", reasons=[])
    expected = list(zip([None, *journey[:-1]], journey, strict=True))
    assert [(c.from_status, c.to_status) for c in app.history] == expected
    assert app.status is S.COMPLETED
    assert not app.is_live


@pytest.mark.parametrize(
    ("status", "live", "holds_a_place"),
    [
        (S.APPLIED, True, False),
        (S.ELIGIBLE, True, False),
        (S.WAITLISTED, True, False),
        (S.ENROLLED, True, True),
        (S.ACTIVE, True, True),
        (S.INELIGIBLE, False, False),
        (S.DENIED, False, False),
        (S.COMPLETED, False, False),
        (S.WITHDRAWN, False, False),
    ],
    ids=label,
)
def test_live_and_place_holding_statuses(status: Status, live: bool, holds_a_place: bool) -> None:
    app = application(status)
    assert (app.is_live, app.holds_a_place) == (live, holds_a_place)


# ---- waitlist promotion --------------------------------------------------------------


def waitlisted(id_: str, *, since_minutes: int, submitted_minutes: int) -> Application:
    return application(S.WAITLISTED, id_=id_, status_since=T0 + timedelta(minutes=since_minutes),
                       submitted_at=T0 + timedelta(minutes=submitted_minutes))


def test_empty_waitlist_promotes_nobody() -> None:
    assert next_from_waitlist([]) is None


def test_oldest_waitlisted_is_promoted_first() -> None:
    queue = [waitlisted("late", since_minutes=30, submitted_minutes=0),
             waitlisted("early", since_minutes=10, submitted_minutes=5),
             waitlisted("middle", since_minutes=20, submitted_minutes=1)]
    promoted = next_from_waitlist(queue)
    assert promoted is not None
    assert promoted.id == "early"


def test_same_waitlisting_time_is_decided_by_submission() -> None:
    queue = [waitlisted("second", since_minutes=10, submitted_minutes=2),
             waitlisted("first", since_minutes=10, submitted_minutes=1),
             waitlisted("third", since_minutes=10, submitted_minutes=3)]
    promoted = next_from_waitlist(queue)
    assert promoted is not None
    assert promoted.id == "first"


def test_promotion_order_over_the_whole_waitlist() -> None:
    queue = [waitlisted("c", since_minutes=20, submitted_minutes=0),
             waitlisted("b", since_minutes=10, submitted_minutes=9),
             waitlisted("a", since_minutes=10, submitted_minutes=3)]
    order = []
    while (promoted := next_from_waitlist(queue)) is not None:
        order.append(promoted.id)
        queue.remove(promoted)
    assert order == ["a", "b", "c"]


def test_waitlisted_without_a_status_time_falls_back_to_submission() -> None:
    queue = [waitlisted("timed", since_minutes=10, submitted_minutes=0),
             application(S.WAITLISTED, id_="untimed", submitted_at=T0 + timedelta(minutes=5))]
    promoted = next_from_waitlist(queue)
    assert promoted is not None
    assert promoted.id == "untimed"
