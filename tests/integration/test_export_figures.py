"""Figures per cluster, programme, cohort and country on a small realistic data set, through the
NATS query, as a cluster's reporting tool would ask for them."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from conftest import wait_until_rows
from support import SIRENS, enrolment_outcome, publish

from envol_export.bootstrap import bootstrap
from envol_shared.contracts import export as xe
from envol_shared.queries import query_subject

AV, PG = "aerospace-valley", "pegase"
RELAY, DESKS = "AV-VIE-RELAY", "PG-EXPORT-DESKS"


def day(text: str) -> datetime:
    return datetime.fromisoformat(f"{text}T10:00:00+00:00").astimezone(UTC)


async def ask(nc, request: dict, cluster: str = AV) -> dict:  # type: ignore[no-untyped-def]
    reply = await nc.request(query_subject(cluster, "export", "figures"), json.dumps(request).encode(),
                             timeout=5)
    return json.loads(reply.data)


async def test_figures_per_programme_cohort_and_country(nc, start_service, database_url):
    await start_service(definition=bootstrap())
    sent = 0

    async def send(data: Any, siren: str, producer: str, at: str, cluster: str = AV) -> None:
        nonlocal sent
        await publish(nc, data, company=siren, cluster=cluster, producer=producer, time=day(at))
        sent += 1

    async def enrol(support: str, siren: str, country: str, on: str, programme: str = RELAY,
                    cluster: str = AV) -> None:
        await send(enrolment_outcome("enrolled", support, siren, programme=programme, cluster=cluster,
                                     kind="export", target_country=country, at=day(on)),
                   siren, "enrolment", on, cluster)

    async def baseline(support: str, siren: str, on: str, countries: list[str], turnover: int,
                       cluster: str = AV) -> None:
        await send(xe.CheckpointRecorded(support_id=support, checkpoint="baseline", recorded_on=on,
                                         export_turnover_cents=turnover, countries_served=countries,
                                         contracts_to_date=0), siren, "staff", on, cluster)

    a, b, c, d, e, f = SIRENS[:6]
    # Germany: an SME already selling in Belgium and Spain signs in Germany 91 days after
    # enrolment, then declares the United Kingdom too at 6 months.
    await enrol("av-de-a", a, "DE", "2026-03-02")
    await baseline("av-de-a", a, "2026-03-10", ["BE", "ES"], 120_000_000)
    relay_de = (a, "vie-relay-de")
    await send(xe.LeadReported(support_id="av-de-a", lead_id="lht", country="DE", buyer="Lufthansa Technik",
                               reported_on="2026-04-01"), *relay_de, "2026-04-01")
    await send(xe.LeadReported(support_id="av-de-a", lead_id="premium", country="DE",
                               buyer="Premium Aerotec", reported_on="2026-04-08"), *relay_de, "2026-04-08")
    await send(xe.RelayMeetingHeld(support_id="av-de-a", country="DE", organisation="Lufthansa Technik",
                                   held_on="2026-04-20", lead_id="lht"), *relay_de, "2026-04-20")
    await send(xe.ContractSigned(support_id="av-de-a", contract_id="lht-1", country="DE",
                                 buyer="Lufthansa Technik", signed_on="2026-06-01", amount_cents=45_000_000),
               *relay_de, "2026-06-01")
    await send(xe.CheckpointRecorded(support_id="av-de-a", checkpoint="month_6", recorded_on="2026-09-02",
                                     export_turnover_cents=210_000_000,
                                     countries_served=["BE", "ES", "DE", "GB"], contracts_to_date=2),
               a, "staff", "2026-09-02")
    # China, two places: b and c take them, d waits 26 days until b withdraws; c signs after 189 days.
    await enrol("av-cn-b", b, "CN", "2026-03-09")
    await enrol("av-cn-c", c, "CN", "2026-03-10")
    await enrol("av-cn-d", d, "CN", "2026-03-11")
    await send(enrolment_outcome("withdrawn", "av-cn-b", b, programme=RELAY, kind="export",
                                 at=day("2026-04-06")), b, "enrolment", "2026-04-06")
    await baseline("av-cn-c", c, "2026-03-20", [], 0)
    await send(xe.LeadReported(support_id="av-cn-c", lead_id="comac", country="CN", buyer="COMAC",
                               reported_on="2026-05-05"), c, "vie-relay-cn", "2026-05-05")
    await send(xe.ContractSigned(support_id="av-cn-c", contract_id="comac-1", country="CN", buyer="COMAC",
                                 signed_on="2026-09-15", amount_cents=12_000_000),
               c, "vie-relay-cn", "2026-09-15")
    # Pégase's desk in the United States: prospects, a meeting, an office, a contract in 91 days.
    await enrol("pg-us-e", e, "US", "2026-02-16", programme=DESKS, cluster=PG)
    for data, at in ((xe.ProspectListDelivered(support_id="pg-us-e", list_id="mro-tx", country="US",
                                               prospects=30, delivered_on="2026-03-02"), "2026-03-02"),
                     (xe.DeskMeetingArranged(support_id="pg-us-e", country="US", organisation="Bell Textron",
                                             held_on="2026-03-20"), "2026-03-20"),
                     (xe.LocalSetupCompleted(support_id="pg-us-e", country="US", setup="office",
                                             completed_on="2026-04-15"), "2026-04-15"),
                     (xe.ContractSigned(support_id="pg-us-e", contract_id="bell-1", country="US",
                                        buyer="Bell Textron", signed_on="2026-05-18",
                                        amount_cents=30_000_000),
                      "2026-05-18")):
        await send(data, e, "pg-comptoir-us", at, PG)
    # A 2025 cohort SME in Canada with no result yet, enrolled again in the 2026 cohort.
    await enrol("av-ca-f", f, "CA", "2025-11-03")
    await enrol("av-ca-f2", f, "CA", "2026-11-02")
    # b enrols in China again and waits: the pool's two places are c's and d's.
    await enrol("av-cn-b2", b, "CN", "2026-05-04")
    # SME a, supported in Germany, has a second support in Brazil: a lead, a contract signed 120
    # days after enrolment, and at 6 months it declares Germany, the United Kingdom and Brazil,
    # which are new for this support too (its baseline lists Belgium and Spain only).
    await enrol("av-br-a", a, "BR", "2026-03-16")
    await baseline("av-br-a", a, "2026-03-20", ["BE", "ES"], 120_000_000)
    relay_br = (a, "vie-relay-br")
    await send(xe.LeadReported(support_id="av-br-a", lead_id="embraer", country="BR", buyer="Embraer",
                               reported_on="2026-05-05"), *relay_br, "2026-05-05")
    await send(xe.ContractSigned(support_id="av-br-a", contract_id="embraer-1", country="BR", buyer="Embraer",
                                 signed_on="2026-07-14", amount_cents=20_000_000), *relay_br, "2026-07-14")
    await send(xe.CheckpointRecorded(support_id="av-br-a", checkpoint="month_6", recorded_on="2026-09-16",
                                     export_turnover_cents=230_000_000,
                                     countries_served=["BE", "ES", "DE", "GB", "BR"], contracts_to_date=2),
               a, "staff", "2026-09-16")
    await wait_until_rows(database_url, "select count(*) from inbox", sent)

    figures = await ask(nc, {})
    rows = {(r["programme"], r["cohort"], r["country"]): r for r in figures["figures"]}
    assert list(rows) == [(RELAY, "AV-VIE-RELAY-2025", "CA"), (RELAY, "AV-VIE-RELAY-2026", "BR"),
                          (RELAY, "AV-VIE-RELAY-2026", "CA"), (RELAY, "AV-VIE-RELAY-2026", "CN"),
                          (RELAY, "AV-VIE-RELAY-2026", "DE")]
    germany = rows[(RELAY, "AV-VIE-RELAY-2026", "DE")]
    assert germany | {"longest_current_wait_days": None} == {
        "programme": RELAY, "cohort": "AV-VIE-RELAY-2026", "country": "DE", "kind": "vie_relay",
        "smes_supported": 1, "assigned_now": 1, "waiting_now": 0, "closed": 0, "smes_who_waited": 0,
        "median_days_waited": None, "longest_current_wait_days": None, "leads": 2, "meetings": 1,
        "prospect_lists": 0, "local_setups": 0, "workshops_attended": 0, "strategies_delivered": 0,
        "contracts": 1, "contracted_cents": 45_000_000, "smes_with_a_contract": 1,
        # Germany by contract, the United Kingdom by the 6-month checkpoint; not Belgium nor Spain.
        "new_countries_entered": 2, "median_days_to_first_contract": 91}
    # China: four supports of three SMEs (b withdrew, then enrolled again and waits).
    china = rows[(RELAY, "AV-VIE-RELAY-2026", "CN")]
    assert {k: china[k] for k in ("smes_supported", "assigned_now", "waiting_now", "closed",
                                  "smes_who_waited", "median_days_waited", "leads", "contracts",
                                  "contracted_cents", "new_countries_entered",
                                  "median_days_to_first_contract")} == {
        "smes_supported": 3, "assigned_now": 2, "waiting_now": 1, "closed": 1, "smes_who_waited": 2,
        "median_days_waited": 26.0, "leads": 1, "contracts": 1, "contracted_cents": 12_000_000,
        "new_countries_entered": 1, "median_days_to_first_contract": 189}
    assert china["longest_current_wait_days"] > 0  # b's, since 2026-05-04
    brazil = rows[(RELAY, "AV-VIE-RELAY-2026", "BR")]
    assert {k: brazil[k] for k in ("smes_supported", "assigned_now", "leads", "contracts", "contracted_cents",
                                   "smes_with_a_contract", "new_countries_entered",
                                   "median_days_to_first_contract")} == {
        "smes_supported": 1, "assigned_now": 1, "leads": 1, "contracts": 1, "contracted_cents": 20_000_000,
        "smes_with_a_contract": 1, "new_countries_entered": 3, "median_days_to_first_contract": 120}
    assert rows[(RELAY, "AV-VIE-RELAY-2025", "CA")]["contracts"] == 0
    assert rows[(RELAY, "AV-VIE-RELAY-2026", "CA")]["smes_supported"] == 1

    # The totals: 8 supports of 5 SMEs (a in Germany and Brazil, b twice in China, f in two
    # cohorts), each SME counted once; its leads, contracts and amounts add up.
    assert figures["totals"] == {
        "smes_supported": 5,  # a, b, c, d, f
        "assigned_now": 4,  # a (2 supports), c, d, f (2 supports)
        "waiting_now": 1, "closed": 1,  # b, in both
        "smes_who_waited": 2, "median_days_waited": 26.0,  # d waited 26 days; b still waits
        "longest_current_wait_days": china["longest_current_wait_days"],
        "leads": 4,  # 2 in Germany, 1 in China, 1 in Brazil
        "meetings": 1, "prospect_lists": 0, "local_setups": 0, "workshops_attended": 0,
        "strategies_delivered": 0,
        "contracts": 3, "contracted_cents": 77_000_000,  # 45 M + 12 M + 20 M
        "smes_with_a_contract": 2,  # a (2 contracts, 2 supports) and c
        # a entered Germany, the United Kingdom and Brazil (once each, whichever support says
        # so), c China: 4, not the 2 + 3 + 1 of the supports.
        "new_countries_entered": 4,
        "median_days_to_first_contract": 120,  # of 91, 120 and 189
    }
    assert figures["all"] == figures["totals"]  # the former name, kept for existing askers

    # Scoped to the cluster in the subject, and filtered on request.
    desks = await ask(nc, {"country": "US"}, cluster=PG)
    assert [(r["programme"], r["country"], r["prospect_lists"], r["meetings"], r["local_setups"],
             r["contracted_cents"], r["median_days_to_first_contract"]) for r in desks["figures"]] == [
        (DESKS, "US", 1, 1, 1, 30_000_000, 91)]
    assert desks["totals"]["smes_supported"] == 1 and desks["totals"]["contracted_cents"] == 30_000_000
    nothing = await ask(nc, {"country": "IN"}, cluster=PG)
    assert nothing["figures"] == []
    assert (nothing["totals"]["smes_supported"], nothing["totals"]["contracted_cents"],
            nothing["totals"]["median_days_to_first_contract"]) == (0, 0, None)
    only_china = await ask(nc, {"programme": RELAY, "country": "CN"})
    assert [r["country"] for r in only_china["figures"]] == ["CN"]
    # The totals are of what the request asked for: here, China's row.
    assert only_china["totals"] == {k: v for k, v in only_china["figures"][0].items()
                                    if k not in ("programme", "cohort", "country", "kind")}
    assert "invalid figures request" in (await ask(nc, {"region": "Occitanie"}))["error"]
