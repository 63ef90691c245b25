"""The export service on the real server: supports opened by enrolment (once), places and the
waiting list, every partner fact valid and invalid, duplicates, staff's missions, and queries."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from conftest import query, wait_until_rows
from support import SIRENS, all_consumed, enrolment_outcome, events_of, new_id, publish, wait_for

from envol_export.bootstrap import bootstrap
from envol_shared.calendar import paris_date
from envol_shared.contracts import export as xe
from envol_shared.queries import query_subject

AV, PG, AS = "aerospace-valley", "pegase", "astech"
RELAY = "AV-VIE-RELAY"
CN, DE = "vie-relay-cn", "vie-relay-de"
AIRBUS = "383474814"  # lodges the shipped China and Germany missions
ENROLLED = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


@pytest.fixture
async def export(start_service):  # type: ignore[no-untyped-def]
    return await start_service(definition=bootstrap())


async def enrol(nc, support_id: str, siren: str, country: str | None, programme: str = RELAY,
                cluster: str = AV, at: datetime = ENROLLED, **extra: Any) -> str:
    outcome = enrolment_outcome("enrolled", support_id, siren, programme=programme, cluster=cluster,
                                kind="export", target_country=country, at=at, **extra)
    return await publish(nc, outcome, company=siren, cluster=cluster, producer="enrolment")


async def end_enrolment(nc, status: str, support_id: str, siren: str, programme: str = RELAY,
                        cluster: str = AV) -> None:
    await publish(nc, enrolment_outcome(status, support_id, siren, programme=programme, cluster=cluster,
                                        kind="export"), company=siren, cluster=cluster, producer="enrolment")


async def support_events(nc, support_id: str, type_suffix: str = "") -> list[dict]:
    return [e for e in await events_of(nc, "envol.*.export.>")
            if e["data"].get("support_id") == support_id and e["type"].endswith(type_suffix)]


async def rejections(nc, producer: str) -> list[dict]:
    return [e["data"] for e in await events_of(nc, f"envol.*.{producer}.event.rejected")]


async def ask(nc, name: str, request: dict, cluster: str = AV) -> dict:
    reply = await nc.request(query_subject(cluster, "export", name), json.dumps(request).encode(), timeout=5)
    return json.loads(reply.data)


async def settled(database_url: str, count: int) -> None:
    """Wait until the service has taken `count` messages into account (its inbox)."""
    await wait_until_rows(database_url, "select count(*) from inbox", count)


async def _at_least(awaitable, count: int):  # type: ignore[no-untyped-def]
    found = await awaitable
    return found if len(found) >= count else None


async def places(database_url: str) -> dict[str, tuple]:
    rows = await query(database_url, "select id, status, unit_id from export_supports")
    return {r[0]: (r[1], r[2]) for r in rows}


async def occupied(database_url: str, unit_id: str) -> int:
    return (await query(database_url, f"select occupied from export_units where id = '{unit_id}'"))[0][0]


def today() -> date:
    return paris_date(datetime.now(UTC))


async def test_configured_units_are_in_the_database_at_start(export, database_url):
    units = await query(database_url, "select id, kind, country, capacity, occupied, partner "
                                      "from export_units order by id")
    assert [tuple(u) for u in units] == [
        ("as-cci-2026", "cci_cohort", None, 12, 0, "cci-paris-idf"),
        ("av-vie-br-2026", "relay_mission", "BR", 5, 0, "vie-relay-br"),
        ("av-vie-ca-2026", "relay_mission", "CA", 6, 0, "vie-relay-ca"),
        ("av-vie-cn-2026", "relay_mission", "CN", 2, 0, CN),
        ("av-vie-de-2026", "relay_mission", "DE", 6, 0, DE),
        ("pg-desk-in", "export_desk", "IN", 4, 0, "pg-comptoir-in"),
        ("pg-desk-ma", "export_desk", "MA", 3, 0, "pg-comptoir-ma"),
        ("pg-desk-sg", "export_desk", "SG", 4, 0, "pg-comptoir-sg"),
        ("pg-desk-us", "export_desk", "US", 4, 0, "pg-comptoir-us"),
    ]
    # Each unit's last day is a durable timer (desks without an end have none).
    timers = [r[0] for r in await query(database_url, "select key from timers order by key")]
    assert timers == ["unit/as-cci-2026:end", "unit/av-vie-br-2026:end", "unit/av-vie-ca-2026:end",
                      "unit/av-vie-cn-2026:end", "unit/av-vie-de-2026:end"]


async def test_enrolment_opens_one_support_even_when_delivered_twice(nc, export, database_url):
    siren = SIRENS[0]
    event_id = await enrol(nc, "av-vie-1", siren, "DE")
    # The very same event again (a redelivery or a relay's second publication)...
    await publish(nc, enrolment_outcome("enrolled", "av-vie-1", siren, programme=RELAY, kind="export",
                                        target_country="DE", at=ENROLLED),
                  company=siren, producer="enrolment", event_id=event_id)
    # ...and a financing enrolment, which is not export's business.
    await publish(nc, enrolment_outcome("enrolled", "av-loan-1", siren), company=siren, producer="enrolment")
    await settled(database_url, 2)  # the copy has no inbox row of its own
    assert await places(database_url) == {"av-vie-1": ("assigned", "av-vie-de-2026")}
    assert await occupied(database_url, "av-vie-de-2026") == 1
    found = await wait_for(lambda: _at_least(support_events(nc, "av-vie-1"), 2))
    assert [e["type"] for e in found] == ["envol.support.opened.v1",
                                          "envol.support.assigned.v1"]
    assigned = found[1]
    assert assigned["subject"] == siren
    assert assigned["data"] | {"at": None, "waiting_since": None} == {
        "support_id": "av-vie-1", "siren": siren, "cluster": AV, "programme": RELAY,
        "cohort": "AV-VIE-RELAY-2026", "kind": "vie_relay", "target_country": "DE", "status": "assigned",
        "unit_id": "av-vie-de-2026", "partner": DE, "waiting_since": None, "at": None, "by": "export",
        "summary": "place on relay mission av-vie-de-2026 (DE), run by vie-relay-de: enrolled in "
                   "AV-VIE-RELAY",
        "leads": 0, "meetings": 0, "contracts": 0, "contracted_cents": 0, "contract_countries": []}
    inbox = dict(await query(database_url, "select outcome, count(*) from inbox group by outcome"))
    assert inbox == {"applied": 2}
    # The outcome checkpoints are scheduled: baseline, 6, 12 and 24 months.
    keys = [r[0] for r in await query(database_url, "select key from timers where key like 'av-vie-1:%' "
                                                    "order by key")]
    assert keys == [f"av-vie-1:checkpoint:{name}" for name in ("baseline", "month_12", "month_24", "month_6")]


async def test_a_full_mission_waitlists_and_a_withdrawal_promotes_the_oldest(nc, export, database_url):
    a, b, c, d = SIRENS[1:5]
    for n, siren in enumerate((a, b, c, d), start=1):
        await enrol(nc, f"av-cn-{n}", siren, "CN", at=ENROLLED + timedelta(hours=n))
    await settled(database_url, 4)
    # The China mission has two places: the third and fourth SMEs wait, in that order.
    assert await places(database_url) == {
        "av-cn-1": ("assigned", "av-vie-cn-2026"), "av-cn-2": ("assigned", "av-vie-cn-2026"),
        "av-cn-3": ("waiting", None), "av-cn-4": ("waiting", None)}
    waitlisted = await wait_for(lambda: support_events(nc, "av-cn-3", "support.waitlisted.v1"))
    assert waitlisted[0]["data"]["summary"] == (
        "waiting for a place: enrolled in AV-VIE-RELAY; relay mission av-vie-cn-2026 (CN) is full (2 places)")
    mission = (await ask(nc, "unit", {"unit_id": "av-vie-cn-2026"}))["unit"]
    assert (mission["occupied"], mission["free_places"]) == (2, 0)
    assert [w["support_id"] for w in mission["waiting"]] == ["av-cn-3", "av-cn-4"]
    # A waiting SME's relay cannot report on it yet.
    await publish(nc, xe.LeadReported(support_id="av-cn-3", lead_id="l1", country="CN", buyer="COMAC",
                                      reported_on=today()), company=c, producer=CN)

    # The first SME withdraws: its place goes to the oldest waiting SME, in the same transaction.
    await end_enrolment(nc, "withdrawn", "av-cn-1", a)
    await settled(database_url, 6)
    assert await places(database_url) == {
        "av-cn-1": ("closed", None), "av-cn-2": ("assigned", "av-vie-cn-2026"),
        "av-cn-3": ("assigned", "av-vie-cn-2026"), "av-cn-4": ("waiting", None)}
    assert await occupied(database_url, "av-vie-cn-2026") == 2
    promoted = await wait_for(lambda: support_events(nc, "av-cn-3", "support.assigned.v1"))
    assert promoted[0]["data"]["summary"].endswith(
        "place freed on av-vie-cn-2026 by support av-cn-1 (withdrawn)")
    # The promoted SME's event continues its own journey, caused by the withdrawal.
    opened = (await support_events(nc, "av-cn-3", "support.opened.v1"))[0]
    assert promoted[0]["correlationid"] == opened["correlationid"]
    closed = await wait_for(lambda: support_events(nc, "av-cn-1", "support.closed.v1"))
    assert closed[0]["data"]["summary"] == "closed: enrolment withdrawn: test"
    refused = await wait_for(lambda: rejections(nc, CN))
    assert "support av-cn-3 is waiting for a place in CN: no partner serves it yet" in refused[0]["reason"]

    # A waiting SME that withdraws frees nothing; a completion frees a place too.
    await end_enrolment(nc, "withdrawn", "av-cn-4", d)
    await end_enrolment(nc, "completed", "av-cn-2", b)
    await settled(database_url, 8)
    assert await places(database_url) == {
        "av-cn-1": ("closed", None), "av-cn-2": ("closed", None),
        "av-cn-3": ("assigned", "av-vie-cn-2026"), "av-cn-4": ("closed", None)}
    assert await occupied(database_url, "av-vie-cn-2026") == 1
    history = (await ask(nc, "unit", {"unit_id": "av-vie-cn-2026"}))["unit"]["history"]
    assert [(h["fact"], h["support_id"], h["occupied"]) for h in history] == [
        ("unit.opened", None, 0), ("place.taken", "av-cn-1", 1), ("place.taken", "av-cn-2", 2),
        ("place.freed", "av-cn-1", 1), ("place.taken", "av-cn-3", 2), ("place.freed", "av-cn-2", 1)]


async def test_relay_facts_valid_and_invalid(nc, export, database_url):
    siren, support = SIRENS[5], "av-cn-9"
    await enrol(nc, support, siren, "CN")
    relay = {"company": siren, "producer": CN}
    on = today()
    await publish(nc, xe.LeadReported(support_id=support, lead_id="comac-cabin", country="CN", buyer="COMAC",
                                      reported_on=on, estimated_cents=120_000_000), **relay)
    await publish(nc, xe.RelayMeetingHeld(support_id=support, country="CN", organisation="COMAC", held_on=on,
                                          lead_id="comac-cabin"), **relay)
    await publish(nc, xe.ContractSigned(support_id=support, contract_id="c-2026-1", country="CN",
                                        buyer="COMAC", signed_on=on, amount_cents=45_000_000), **relay)
    refusals = [
        # a lead outside the mission's country
        (CN, xe.LeadReported(support_id=support, lead_id="embraer", country="BR", buyer="Embraer",
                             reported_on=on), "lead embraer in BR refused: av-vie-cn-2026 covers CN only"),
        # the wrong relay for this SME
        (DE, xe.LeadReported(support_id=support, lead_id="x", country="CN", buyer="AVIC", reported_on=on),
         f"support {support} is served by {CN} (av-vie-cn-2026), not by {DE}"),
        # not a partner at all
        ("some-agency", xe.LeadReported(support_id=support, lead_id="x", country="CN", buyer="AVIC",
                                        reported_on=on),
         "some-agency is not an export partner of aerospace-valley"),
        # a desk's fact from a relay
        (CN, xe.ProspectListDelivered(support_id=support, list_id="p1", country="CN", prospects=10,
                                      delivered_on=on), "vie-relay-cn is a relay, not a desk"),
        # a contract before any support opened
        (CN, xe.ContractSigned(support_id="av-never", contract_id="c1", country="CN", buyer="AVIC",
                               signed_on=on, amount_cents=1_000),
         "unknown support av-never in aerospace-valley"),
        # an amount that makes no sense for one SME contract
        (CN, xe.ContractSigned(support_id=support, contract_id="c-huge", country="CN", buyer="COMAC",
                               signed_on=on, amount_cents=9_000_000_000),
         "contract c-huge of 90,000,000.00 € exceeds the 50,000,000.00 € the cluster deems plausible"),
        # a contract signed before the SME was enrolled
        (CN, xe.ContractSigned(support_id=support, contract_id="c-old", country="CN", buyer="COMAC",
                               signed_on=date(2026, 10, 1), amount_cents=1_000),
         "contract c-old dated 2026-10-01 is before support av-cn-9 began: enrolled in AV-VIE-RELAY on "
         "2026-11-02"),
        # a contract in another country, from the relay of China
        (CN, xe.ContractSigned(support_id=support, contract_id="c-de", country="DE",
                               buyer="Lufthansa Technik", signed_on=on, amount_cents=1_000),
         "contract c-de in DE refused: av-vie-cn-2026 covers CN only"),
        # a lead reported in the future
        (CN, xe.LeadReported(support_id=support, lead_id="later", country="CN", buyer="AVIC",
                             reported_on=on + timedelta(days=10)), "is in the future"),
        # a meeting on a lead never reported, and the same lead twice
        (CN, xe.RelayMeetingHeld(support_id=support, country="CN", organisation="AVIC", held_on=on,
                                 lead_id="nope"), "lead nope was never reported on support av-cn-9"),
        (CN, xe.LeadReported(support_id=support, lead_id="comac-cabin", country="CN", buyer="COMAC",
                             reported_on=on), "lead comac-cabin is already reported on support av-cn-9"),
        # staff tools only for staff facts
        (CN, xe.CheckpointRecorded(support_id=support, checkpoint="baseline", recorded_on=on,
                                   export_turnover_cents=0, countries_served=[], contracts_to_date=0),
         "vie-relay-cn is not a staff tool of aerospace-valley"),
    ]
    for producer, data, _ in refusals:
        await publish(nc, data, company=siren, producer=producer)
    # The support's SIREN differs from the event's subject.
    await publish(nc, xe.LeadReported(support_id=support, lead_id="x", country="CN", buyer="AVIC",
                                      reported_on=on), company=SIRENS[6], producer=CN)
    # Staff may report a contract signed anywhere (the relay only in its country).
    await publish(nc, xe.ContractSigned(support_id=support, contract_id="c-de", country="DE",
                                        buyer="Lufthansa Technik", signed_on=on, amount_cents=2_000_000),
                  company=siren, producer="staff")
    await settled(database_url, 4 + len(refusals) + 2)
    expected = Counter(p for p, _, _ in refusals) + Counter({CN: 1})
    reasons = []
    for producer, count in expected.items():
        found = await wait_for(lambda p=producer, n=count: _at_least(rejections(nc, p), n))
        reasons += [r["reason"] for r in found]
    for _, _, expected in refusals:
        assert any(expected in reason for reason in reasons), (expected, reasons)
    assert any(f"support {support} is about company {siren}" in r for r in reasons)
    # Only the valid facts changed the support.
    row = (await query(database_url, "select status, contracted_cents from export_supports"))[0]
    assert tuple(row) == ("assigned", 47_000_000)
    state = (await ask(nc, "support", {"support_id": support}))["support"]
    assert (state["leads"], state["meetings"], [c["contract_id"] for c in state["contracts"]]) == (
        1, 1, ["c-2026-1", "c-de"])
    assert [h["fact"] for h in state["history"]] == [
        "support.opened", "support.assigned", "relay.lead.reported", "relay.meeting.held",
        "export.contract.signed", "export.contract.signed"]
    progressed = await wait_for(lambda: _at_least(support_events(nc, support, "support.progressed.v1"), 4))
    assert [(e["data"]["fact"], e["data"]["contracted_cents"]) for e in progressed] == [
        ("relay.lead.reported", 0), ("relay.meeting.held", 0), ("export.contract.signed", 45_000_000),
        ("export.contract.signed", 47_000_000)]
    # Where its contracts were signed travels with the support (the outcomes service reads it).
    assert progressed[-1]["data"]["contract_countries"] == sorted({c["country"] for c in state["contracts"]})


async def test_export_desk_facts_valid_and_invalid(nc, export, database_url):
    siren, support = SIRENS[7], "pg-sg-1"
    await enrol(nc, support, siren, "SG", programme="PG-EXPORT-DESKS", cluster=PG)
    desk = {"company": siren, "cluster": PG, "producer": "pg-comptoir-sg"}
    on = today()
    await publish(nc, xe.ProspectListDelivered(support_id=support, list_id="mro-sg", country="SG",
                                               prospects=24, delivered_on=on), **desk)
    await publish(nc, xe.DeskMeetingArranged(support_id=support, country="SG", organisation="ST Engineering",
                                             held_on=on), **desk)
    await publish(nc, xe.LocalSetupCompleted(support_id=support, country="SG", setup="office",
                                             completed_on=on), **desk)
    # Set up twice; a prospect list in another country; the desk of India on an SME of Singapore.
    await publish(nc, xe.LocalSetupCompleted(support_id=support, country="SG", setup="subsidiary",
                                             completed_on=on), **desk)
    await publish(nc, xe.ProspectListDelivered(support_id=support, list_id="my", country="MY", prospects=3,
                                               delivered_on=on), **desk)
    await publish(nc, xe.DeskMeetingArranged(support_id=support, country="SG", organisation="x", held_on=on),
                  company=siren, cluster=PG, producer="pg-comptoir-in")
    # A relay's fact from a desk.
    await publish(nc, xe.LeadReported(support_id=support, lead_id="l", country="SG", buyer="x",
                                      reported_on=on), **desk)
    await settled(database_url, 8)
    reasons = [r["reason"] for r in await wait_for(lambda: _at_least(rejections(nc, "pg-comptoir-sg"), 3))]
    assert reasons[0] == f"support {support} is already set up in SG (office, {on})"
    assert reasons[1] == "prospect list my in MY refused: pg-desk-sg covers SG only"
    assert reasons[2].startswith("pg-comptoir-sg is a desk, not a relay")
    other = await wait_for(lambda: rejections(nc, "pg-comptoir-in"))
    assert other[0]["reason"] == (f"support {support} is served by pg-comptoir-sg (pg-desk-sg), "
                                  "not by pg-comptoir-in")
    state = (await ask(nc, "support", {"support_id": support}, cluster=PG))["support"]
    assert state["details"]["setup"] == {"country": "SG", "setup": "office", "completed_on": on.isoformat()}
    assert (state["meetings"], list(state["details"]["prospect_lists"])) == (1, ["mro-sg"])


async def test_cci_workshops_and_strategy(nc, export, database_url):
    siren, support = SIRENS[8], "as-cci-1"
    # Enrolled in November; the cohort's "action-plan" workshop is on 8 December.
    await enrol(nc, support, siren, "CA", programme="AS-CCI-INTERNATIONAL", cluster=AS)
    cci = {"company": siren, "cluster": AS, "producer": "cci-paris-idf"}
    after = datetime(2026, 12, 9, 10, 0, tzinfo=UTC)
    # No strategy before any workshop; a workshop not of the cohort; a workshop on the wrong day;
    # a workshop held before the SME joined.
    await publish(nc, xe.StrategyDelivered(support_id=support, delivered_on=date(2026, 12, 9),
                                           priority_countries=["CA"]), **cci, time=after)
    await publish(nc, xe.WorkshopAttended(support_id=support, workshop_id="golf",
                                          attended_on=date(2026, 12, 8), attendees=1), **cci, time=after)
    await publish(nc, xe.WorkshopAttended(support_id=support, workshop_id="action-plan",
                                          attended_on=date(2026, 12, 7), attendees=1), **cci, time=after)
    await publish(nc, xe.WorkshopAttended(support_id=support, workshop_id="trade-shows",
                                          attended_on=date(2026, 9, 22), attendees=1), **cci, time=after)
    await publish(nc, xe.WorkshopAttended(support_id=support, workshop_id="action-plan",
                                          attended_on=date(2026, 12, 8), attendees=2), **cci, time=after)
    await publish(nc, xe.StrategyDelivered(support_id=support, delivered_on=date(2026, 12, 9),
                                           priority_countries=["CA", "US"]), **cci, time=after)
    # A contract from the CCI may be in any country.
    await publish(nc, xe.ContractSigned(support_id=support, contract_id="bombardier-1", country="CA",
                                        buyer="Bombardier", signed_on=date(2026, 12, 9),
                                        amount_cents=8_000_000), **cci, time=after)
    await settled(database_url, 8)
    reasons = [r["reason"] for r in await wait_for(lambda: _at_least(rejections(nc, "cci-paris-idf"), 4))]
    assert reasons == [
        "no strategy before any workshop: support as-cci-1 attended none",
        "CCI cohort as-cci-2026 has no workshop golf; it has diagnostic, target-markets, trade-shows, "
        "action-plan, export-financing, strategy-review",
        "workshop action-plan of CCI cohort as-cci-2026 is on 2026-12-08, not 2026-12-07",
        "workshop trade-shows dated 2026-09-22 is before support as-cci-1 began: enrolled in "
        "AS-CCI-INTERNATIONAL on 2026-11-02",
    ]
    state = (await ask(nc, "support", {"support_id": support}, cluster=AS))["support"]
    assert state["unit_id"] == "as-cci-2026"
    assert state["details"]["workshops"] == {"action-plan": {"on": "2026-12-08", "attendees": 2}}
    assert state["details"]["strategy"]["priority_countries"] == ["CA", "US"]
    assert state["contracted_cents"] == 8_000_000


async def test_a_partner_resending_the_same_event_id_changes_nothing(nc, export, database_url):
    siren, support = SIRENS[9], "av-de-5"
    await enrol(nc, support, siren, "DE")
    event = xe.LeadReported(support_id=support, lead_id="lht", country="DE", buyer="Lufthansa Technik",
                            reported_on=today())
    event_id = new_id()
    # Taken into account once; then sent twice more (later batches: the inbox, not the batch,
    # knows them), followed by a new fact about the company: once that one is applied, every
    # copy before it has been consumed.
    await publish(nc, event, company=siren, producer=DE, event_id=event_id)
    await settled(database_url, 2)
    for _ in range(2):
        await publish(nc, event, company=siren, producer=DE, event_id=event_id)
    another = xe.LeadReported(support_id=support, lead_id="mtu", country="DE", buyer="MTU Aero Engines",
                              reported_on=today())
    await publish(nc, another, company=siren, producer=DE)
    await wait_until_rows(database_url, "select count(*) from inbox", 3, within=20)
    assert await wait_for(lambda: all_consumed(nc, "export"))
    progressed = await wait_for(lambda: _at_least(support_events(nc, support, "support.progressed.v1"), 2))
    assert len(progressed) == 2
    assert await rejections(nc, DE) == []
    history = await query(database_url, "select fact from export_support_history "
                                        f"where support_id = '{support}' order by id")
    assert [r[0] for r in history] == ["support.opened", "support.assigned", "relay.lead.reported",
                                       "relay.lead.reported"]


async def test_staff_open_a_mission_for_waiting_smes_and_end_one_early(nc, export, database_url):
    a, b, c = SIRENS[10], SIRENS[11], SIRENS[0]
    for n, siren in enumerate((a, b, c), start=1):
        await enrol(nc, f"av-cn-s{n}", siren, "CN", at=ENROLLED + timedelta(hours=n))
    start = today()
    mission = xe.MissionOpened(mission_id="av-vie-cn-2027", programme=RELAY, country="CN", host_siren=AIRBUS,
                               host_company="Airbus (Tianjin)", volunteer_id="vie-av-cn-02", starts_on=start,
                               ends_on=date(start.year + 1, start.month, 1), capacity=1, relay=CN,
                               by="av-staff-1")
    # Too long a mission; a mission published by a relay; a subject that is not the host's SIREN.
    await publish(nc, mission.model_copy(update={"ends_on": date(start.year + 3, 1, 1)}), company=AIRBUS)
    await publish(nc, mission, company=AIRBUS, producer=CN)
    await publish(nc, mission, company=SIRENS[3])
    await publish(nc, mission, company=AIRBUS)
    await settled(database_url, 7)
    # The oldest waiting SME takes the new mission's place.
    assert await places(database_url) == {
        "av-cn-s1": ("assigned", "av-vie-cn-2026"), "av-cn-s2": ("assigned", "av-vie-cn-2026"),
        "av-cn-s3": ("assigned", "av-vie-cn-2027")}
    staff = [r["reason"] for r in await wait_for(lambda: _at_least(rejections(nc, "staff"), 2))]
    assert "a VIE mission lasts 6 to 24 months" in staff[0]
    assert staff[1].startswith(f"mission av-vie-cn-2027 is lodged by company {AIRBUS}: the event's subject")
    assert (await wait_for(lambda: rejections(nc, CN)))[0]["reason"].startswith(
        "vie-relay-cn is not a staff tool of aerospace-valley")

    # The new mission ends early: its SME finds no free place on the other China mission and waits.
    await publish(nc, xe.MissionEnded(mission_id="av-vie-cn-2027", ended_on=start, reason="volunteer left",
                                      by="av-staff-1"), company=AIRBUS)
    await settled(database_url, 8)
    assert (await places(database_url))["av-cn-s3"] == ("waiting", None)
    requeued = await wait_for(lambda: support_events(nc, "av-cn-s3", "support.waitlisted.v1"))
    assert requeued[-1]["data"]["summary"] == (
        "waiting for a place: relay mission av-vie-cn-2027 (CN) ended (ended early by av-staff-1: volunteer "
        "left); relay mission av-vie-cn-2026 (CN) is full (2 places)")
    ended = await query(database_url, "select ended_at is not null, occupied from export_units "
                                      "where id = 'av-vie-cn-2027'")
    assert tuple(ended[0]) == (True, 0)
    assert await query(database_url, "select key from timers where key = 'unit/av-vie-cn-2027:end'") == []
    # Then the remaining China mission ends too: nowhere left in China, the supports close.
    await publish(nc, xe.MissionEnded(mission_id="av-vie-cn-2026", ended_on=start,
                                      reason="host closed the office", by="av-staff-1"), company=AIRBUS)
    await settled(database_url, 9)
    assert await places(database_url) == {"av-cn-s1": ("closed", None), "av-cn-s2": ("closed", None),
                                          "av-cn-s3": ("waiting", None)}
    closed = await wait_for(lambda: support_events(nc, "av-cn-s1", "support.closed.v1"))
    assert closed[0]["data"]["summary"] == (
        "closed: relay mission av-vie-cn-2026 (CN) ended (ended early by av-staff-1: host closed the "
        "office), and no other relay mission of AV-VIE-RELAY serves CN")


async def test_queries_answer_support_company_units_and_errors(nc, export, database_url):
    siren, support = SIRENS[2], "av-br-1"
    await enrol(nc, support, siren, "BR")
    await settled(database_url, 1)
    state = (await ask(nc, "support", {"support_id": support}))["support"]
    assert (state["status"], state["unit_id"], state["partner"], state["target_country"]) == (
        "assigned", "av-vie-br-2026", "vie-relay-br", "BR")
    assert [h["fact"] for h in state["history"]] == ["support.opened", "support.assigned"]
    assert {(f["kind"], f["checkpoint"]) for f in state["follow_up"]} == {
        ("checkpoint", name) for name in ("baseline", "month_6", "month_12", "month_24")}
    company = await ask(nc, "company", {"company_id": f"{siren[:3]} {siren[3:6]} {siren[6:]}"})
    assert [s["support_id"] for s in company["supports"]] == [support]
    mission = (await ask(nc, "unit", {"unit_id": "av-vie-br-2026"}))["unit"]
    assert (mission["host_company"], mission["volunteer_id"], mission["occupied"]) == (
        "Safran (helicopter engines, Rio de Janeiro)", "vie-av-br-01", 1)
    assert [s["support_id"] for s in mission["smes"]] == [support]
    units = (await ask(nc, "units", {"programme": RELAY}))["units"]
    assert [(u["unit_id"], u["occupied"], u["waiting"]) for u in units] == [
        ("av-vie-br-2026", 1, 0), ("av-vie-ca-2026", 0, 0), ("av-vie-cn-2026", 0, 0),
        ("av-vie-de-2026", 0, 0)]
    assert await ask(nc, "support", {"support_id": support}, cluster=PG) == {
        "error": f"unknown support {support} in pegase"}
    assert await ask(nc, "unit", {"unit_id": "av-vie-br-2026"}, cluster=AS) == {
        "error": "unknown mission, desk or cohort av-vie-br-2026 in astech"}
    assert "invalid support request" in (await ask(nc, "support", {"id": support}))["error"]
    assert "no export support for company" in (await ask(nc, "company", {"company_id": SIRENS[9]}))["error"]
