"""Durable timers of the export service on the real server: checkpoint reminders and escalations,
and the end of relay missions, fire when due after a restart that stood for months of
downtime — once, never twice.

That something did *not* fire is only ever concluded once a later timer has fired (due at
the same moment with a key sorting after, or due later): a quiet second would also pass with
a scheduler that never ran."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from conftest import query, wait_until_rows
from support import SIRENS, enrolment_outcome, events_of, publish, wait_for

from envol_export.bootstrap import bootstrap
from envol_export.domain.follow_up import FollowUpCalendar, FollowUpPolicy, unit_ends_at
from envol_export.partners import Partners
from envol_shared.calendar import BusinessCalendar, add_months, paris_date
from envol_shared.contracts import export as xe

CALENDAR = BusinessCalendar()
# Aerospace Valley's shipped policy: 5 days' grace before escalating, baseline within 10.
DATES = FollowUpCalendar(FollowUpPolicy(), CALENDAR)
AV = "aerospace-valley"
# Another support, enrolled with the first, whose timers come due with its own: its key sorts
# after, so it fires after.
LATER = "av-de-z"
CHANGES = {f"envol.support.{name}.v1" for name in ("assigned", "waitlisted", "progressed", "closed")}


class MovableClock:
    """What time the service's timers think it is: real time plus a jump."""

    def __init__(self) -> None:
        self.jump = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.jump

    def move_to(self, moment: datetime) -> None:
        self.jump = moment - datetime.now(UTC)


async def follow_ups(nc, support: str | None = None) -> list[tuple[str, str, str]]:  # type: ignore[no-untyped-def]
    found = await events_of(nc, "envol.*.export.>")
    return [(e["type"].split(".")[2], e["data"]["support_id"], e["data"]["checkpoint"]) for e in found
            if e["type"] in ("envol.support.reminder.due.v1", "envol.support.escalation.raised.v1")
            and support in (None, e["data"]["support_id"])]


async def support_changes(nc) -> list[tuple[str, str, str | None]]:
    """(event, support, unit) of every support event but opening."""
    found = await events_of(nc, "envol.*.export.>")
    return [(e["type"].split(".")[2], e["data"]["support_id"], e["data"]["unit_id"]) for e in found
            if e["type"] in CHANGES]


async def fired(database_url: str, support: str = "") -> int:
    """How many timers have fired (of one support, when given)."""
    rows = await query(database_url, "select count(*) from timers where fired_at is not null "
                                     f"and key like '{support}%'")
    return rows[0][0]


async def _equal(awaitable, expected):  # type: ignore[no-untyped-def]
    found = await awaitable
    return found if found == expected else None


async def _including(awaitable, item):  # type: ignore[no-untyped-def]
    return item in await awaitable


async def test_checkpoint_reminder_fires_after_a_restart_once_then_escalates(nc, start_service, database_url):
    siren, support = SIRENS[3], "av-de-t"
    enrolled_at = datetime.now(UTC)
    month_6 = DATES.checkpoint_due_on("month_6", opened_at=enrolled_at, enrolled_at=enrolled_at)
    escalate_on = DATES.escalation_day(month_6)

    clock = MovableClock()
    service = await start_service(definition=bootstrap(), clock=clock)
    await publish(nc, enrolment_outcome("enrolled", support, siren, programme="AV-VIE-RELAY", kind="export",
                                        target_country="DE", at=enrolled_at),
                  company=siren, producer="enrolment")
    # The baseline is recorded at once: only the later checkpoints remain to come due.
    await publish(nc, xe.CheckpointRecorded(support_id=support, checkpoint="baseline",
                                            recorded_on=paris_date(enrolled_at),
                                            export_turnover_cents=120_000_000, countries_served=["BE", "ES"],
                                            contracts_to_date=0), company=siren)
    await wait_until_rows(database_url, "select count(*) from inbox", 2)
    await service.stop()
    assert await follow_ups(nc) == []

    # Down for six months: at start, the month-6 checkpoint's reminder fires.
    clock.move_to(DATES.at(month_6) + timedelta(hours=2))
    service = await start_service(definition=bootstrap(), clock=clock)
    expected = [("reminder", support, "month_6")]
    assert await wait_for(lambda: _equal(follow_ups(nc), expected)) == expected
    reminder = next(e for e in await events_of(nc, "envol.*.export.>")
                    if e["type"] == "envol.support.reminder.due.v1")
    assert reminder["subject"] == siren and reminder["data"]["due_on"] == month_6.isoformat()
    assert reminder["data"]["owner"] == "staff" and reminder["data"]["target_country"] == "DE"
    await service.stop()

    # Restarted again at the same time: nothing fires twice. Shown once another support,
    # enrolled at the same moment (its key sorts after), has had its month-6 reminder.
    service = await start_service(definition=bootstrap(), clock=clock)
    fired_before = await fired(database_url, support)
    await publish(nc, enrolment_outcome("enrolled", LATER, SIRENS[8], programme="AV-VIE-RELAY", kind="export",
                                        target_country="DE", at=enrolled_at),
                  company=SIRENS[8], producer="enrolment")
    later = ("reminder", LATER, "month_6")
    assert await wait_for(lambda: _including(follow_ups(nc, LATER), later))
    assert await follow_ups(nc, support) == expected
    assert await fired(database_url, support) == fired_before
    await service.stop()

    # Five business days after the reminder was due, still nothing recorded: escalation, once.
    clock.move_to(DATES.at(escalate_on) + timedelta(hours=2))
    service = await start_service(definition=bootstrap(), clock=clock)
    expected += [("escalation", support, "month_6")]
    assert await wait_for(lambda: _equal(follow_ups(nc, support), expected)) == expected
    escalation = next(e["data"] for e in await events_of(nc, "envol.*.export.>")
                      if e["type"] == "envol.support.escalation.raised.v1"
                      and e["data"]["support_id"] == support)
    assert escalation["reminded_on"] == month_6.isoformat()
    assert escalation["detail"] == (f"outcome checkpoint month_6 of support {support}, due on {month_6}, "
                                    "is still missing")
    # Recording the month-12 checkpoint ahead of time stops its reminder.
    await publish(nc, xe.CheckpointRecorded(support_id=support, checkpoint="month_12",
                                            recorded_on=paris_date(datetime.now(UTC)),
                                            export_turnover_cents=150_000_000, countries_served=["BE", "DE"],
                                            contracts_to_date=1), company=siren)
    await wait_until_rows(database_url, "select count(*) from inbox", 4)
    month_12 = DATES.checkpoint_due_on("month_12", opened_at=enrolled_at, enrolled_at=enrolled_at)
    clock.move_to(DATES.at(DATES.escalation_day(month_12)) + timedelta(hours=2))
    # The other support's month-12 checkpoint, never recorded, is reminded of and escalated...
    month_12_escalation = ("escalation", LATER, "month_12")
    assert await wait_for(lambda: _including(follow_ups(nc, LATER), month_12_escalation))
    # ...this one's, recorded, never was.
    assert [f for f in await follow_ups(nc, support) if f[2] == "month_12"] == []


def write_partners(directory: Path, *, today: date, capacity_b: int = 1,
                   ending_later: bool = False) -> Partners:
    """Aerospace Valley with two missions in Germany (one ending in ten days) and one in Canada
    ending in ten days too; and, `ending_later`, one in Spain ending the day after them."""
    soon, long_ago = today + timedelta(days=10), add_months(today, -7)

    def mission(id_: str, country: str, starts_on: date, ends_on: date, capacity: int) -> str:
        return (f'[[missions]]\nid = "{id_}"\nprogramme = "AV-VIE-RELAY"\ncountry = "{country}"\n'
                f'host_siren = "383474814"\nhost_company = "Airbus"\nvolunteer_id = "vie-{id_}"\n'
                f"starts_on = {starts_on}\nends_on = {ends_on}\ncapacity = {capacity}\n"
                f'partner = "vie-relay-{country.lower()}"\n\n')

    relays = "".join(f'[[partners]]\nid = "vie-relay-{c}"\nkind = "relay"\nname = "VIE relay {c}"\n\n'
                     for c in ("de", "ca", "es"))
    text = ('cluster = "aerospace-valley"\nstaff = ["staff"]\n\n[programmes]\nAV-VIE-RELAY = "vie_relay"\n\n'
            + relays
            + mission("de-a", "DE", long_ago, soon, 2)
            + mission("de-b", "DE", add_months(today, -1), add_months(today, 12), capacity_b)
            + mission("ca-a", "CA", long_ago, soon, 2)
            + (mission("es-a", "ES", long_ago, soon + timedelta(days=1), 1) if ending_later else ""))
    directory.mkdir(exist_ok=True)
    (directory / "aerospace-valley.toml").write_text(text, encoding="utf-8")
    return Partners.load(directory)


async def test_a_mission_that_ends_moves_waitlists_or_closes_its_smes_after_a_restart(
        nc, start_service, database_url, tmp_path):
    today = paris_date(datetime.now(UTC))
    partners = write_partners(tmp_path / "partners", today=today)
    one, two, three, four = SIRENS[4:8]
    clock = MovableClock()
    service = await start_service(definition=bootstrap(partners), clock=clock)
    start = datetime.now(UTC) - timedelta(hours=1)
    for n, (siren, country) in enumerate(((one, "DE"), (two, "DE"), (three, "DE"), (four, "CA")), start=1):
        outcome = enrolment_outcome("enrolled", f"av-{n}", siren, programme="AV-VIE-RELAY", kind="export",
                                    target_country=country, at=start)
        await publish(nc, outcome, company=siren, producer="enrolment", time=start + timedelta(minutes=n))
    # The first SME leaves the mission that runs longest: a free place there, nobody waiting.
    await publish(nc, enrolment_outcome("withdrawn", "av-1", one, programme="AV-VIE-RELAY", kind="export"),
                  company=one, producer="enrolment")
    await wait_until_rows(database_url, "select count(*) from inbox", 5)
    await service.stop()
    assert await support_changes(nc) == [
        ("assigned", "av-1", "de-b"), ("assigned", "av-2", "de-a"), ("assigned", "av-3", "de-a"),
        ("assigned", "av-4", "ca-a"), ("closed", "av-1", None)]

    # Down until after the last day of de-a and ca-a: at start, both end.
    clock.move_to(unit_ends_at(today + timedelta(days=10)) + timedelta(hours=1))
    service = await start_service(definition=bootstrap(partners), clock=clock)
    # Due at the same moment, the timers fire in key order: ca-a, then de-a.
    expected = [("closed", "av-4", None), ("assigned", "av-2", "de-b"), ("waitlisted", "av-3", None)]
    found = await wait_for(lambda: _equal(_after(support_changes(nc), 5), expected))
    assert found == expected
    ended = await query(database_url, "select id, occupied, end_reason from export_units "
                                      "where ended_at is not null order by id")
    last_day = today + timedelta(days=10)
    assert [tuple(r) for r in ended] == [("ca-a", 0, f"its last day was {last_day}"),
                                         ("de-a", 0, f"its last day was {last_day}")]
    events = {(e["data"]["support_id"], e["data"]["status"], e["data"]["unit_id"]): e["data"]
              for e in await events_of(nc, "envol.*.export.>")
              if e["type"] in CHANGES}
    assert events[("av-2", "assigned", "de-b")]["summary"] == (
        f"place on relay mission de-b (DE), run by vie-relay-de: relay mission de-a (DE) ended (its last day "
        f"was {last_day}); moved from de-a")
    assert events[("av-4", "closed", None)]["summary"] == (
        f"closed: relay mission ca-a (CA) ended (its last day was {last_day}), and no other relay mission of "
        "AV-VIE-RELAY serves CA")
    await service.stop()

    # Restarted again, a day later: nothing fires twice. Shown once a mission added meanwhile,
    # whose last day was the day after theirs, has ended.
    clock.move_to(unit_ends_at(today + timedelta(days=11)) + timedelta(hours=1))
    service = await start_service(definition=bootstrap(write_partners(tmp_path / "partners", today=today,
                                                                      ending_later=True)), clock=clock)
    await wait_until_rows(database_url, "select count(*) from export_units "
                                        "where id = 'es-a' and ended_at is not null", 1)
    assert await _after(support_changes(nc), 5) == expected
    await service.stop()

    # The cluster gives de-b a second place in its file: at start, the waiting SME takes it.
    partners = write_partners(tmp_path / "partners", today=today, capacity_b=2)
    await start_service(definition=bootstrap(partners), clock=clock)
    expected += [("assigned", "av-3", "de-b")]
    assert await wait_for(lambda: _equal(_after(support_changes(nc), 5), expected)) == expected
    promoted = [e for e in await events_of(nc, "envol.*.export.>")
                if e["data"].get("support_id") == "av-3"][-1]
    assert promoted["data"]["summary"].endswith(": places added by the configuration")
    de_b = await query(database_url, "select capacity, occupied from export_units where id = 'de-b'")
    assert tuple(de_b[0]) == (2, 2)


async def _after(awaitable, count: int):  # type: ignore[no-untyped-def]
    return (await awaitable)[count:]
