"""Export supports: partners' facts (relay leads and meetings, desk services, CCI workshops and
strategies, contracts) and outcome checkpoints, valid and refused. A refusal must say why and
change nothing."""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta

import pytest

from envol_export.domain.model import (
    DomainError,
    ExportCheckpoint,
    ExportContract,
    ExportSupport,
    SupportKind,
    SupportUnit,
    UnitKind,
    euros,
)

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # enrolled and opened
NOW = T0 + timedelta(days=60)
TODAY = NOW.date()
CEILING = 5_000_000_000
UNITS = {
    SupportKind.VIE_RELAY: ("aerospace-valley", "AV-VIE-RELAY", UnitKind.RELAY_MISSION, "av-vie-cn",
                            "vie-relay-cn"),
    SupportKind.EXPORT_DESK: ("pegase", "PG-EXPORT-DESKS", UnitKind.EXPORT_DESK, "pg-desk-sg",
                              "pg-comptoir-sg"),
    SupportKind.CCI_COLLECTIVE: ("astech", "AS-CCI-INTERNATIONAL", UnitKind.CCI_COHORT, "as-cci-2026",
                                 "cci-paris-idf"),
}
COUNTRY = {SupportKind.VIE_RELAY: "CN", SupportKind.EXPORT_DESK: "SG", SupportKind.CCI_COLLECTIVE: None}
WORKSHOPS = {"diagnostic": {"title": "Diagnostic export", "on": "2026-03-10"},
             "target-markets": {"title": "Choisir ses pays cibles", "on": "2026-04-14"}}


def unit_for(kind: SupportKind) -> SupportUnit:
    cluster, programme, unit_kind, unit_id, partner = UNITS[kind]
    return SupportUnit(id=unit_id, cluster=cluster, programme=programme, kind=unit_kind,
                       country=COUNTRY[kind], partner=partner, capacity=5, starts_on=date(2026, 1, 5),
                       ends_on=date(2027, 12, 31),
                       opened_at=T0, origin="configuration",
                       details={"workshops": WORKSHOPS} if unit_kind is UnitKind.CCI_COHORT else {})


def served(kind: SupportKind, target: str = "CN") -> tuple[ExportSupport, SupportUnit]:
    cluster, programme, *_ = UNITS[kind]
    support = ExportSupport.open(id="s-1", siren="732829320", cluster=cluster, programme=programme,
                                 cohort=f"{programme}-2026", kind=kind,
                                 target_country=COUNTRY[kind] or target, correlation_id="corr-1",
                                 enrolled_at=T0, at=T0)
    unit = unit_for(kind)
    support.assign(unit, at=T0, by="export", why="enrolled")
    return support, unit


def refusal(support: ExportSupport, fact: Callable[[ExportSupport], object]) -> str:
    """Apply a fact the domain must refuse; check nothing changed; return the reason."""
    before = copy.deepcopy(support)
    with pytest.raises(DomainError) as refused:
        fact(support)
    assert support == before
    return str(refused.value)


def contract(contract_id: str = "c-1", *, country: str = "CN", amount: int = 45_000_000,
             signed_on: date = TODAY) -> ExportContract:
    return ExportContract(support_id="s-1", contract_id=contract_id, country=country, buyer="COMAC",
                          amount_cents=amount, signed_on=signed_on, reported_by="vie-relay-cn")


def checkpoint(name: str, countries: list[str], contracts: int = 0, turnover: int = 100_000_000,
               on: date = TODAY) -> ExportCheckpoint:
    return ExportCheckpoint(support_id="s-1", name=name, recorded_on=on, export_turnover_cents=turnover,
                            countries_served=countries, contracts_to_date=contracts)


# ---- VIE relays -------------------------------------------------------------------------------------


def test_a_relay_reports_leads_and_meetings_in_its_mission_s_country() -> None:
    support, _ = served(SupportKind.VIE_RELAY)
    entry = support.report_lead(lead_id="comac-cabin", country="CN", buyer="COMAC", on=TODAY,
                                estimated_cents=120_000_000, at=NOW, by="vie-relay-cn")
    assert (entry.fact, entry.by, entry.status) == ("relay.lead.reported", "vie-relay-cn", "assigned")
    assert entry.summary == "lead comac-cabin in CN: COMAC, worth about 1,200,000.00 €"
    support.hold_meeting(country="CN", organisation="COMAC", on=TODAY, lead_id="comac-cabin", at=NOW,
                         by="vie-relay-cn")
    assert (support.leads, support.meetings, support.last_news_at) == (1, 1, NOW)


@pytest.mark.parametrize(("fact", "reason"), [
    (lambda s: s.report_lead(lead_id="l", country="BR", buyer="Embraer", on=TODAY, estimated_cents=None,
                             at=NOW, by="r"), "lead l in BR refused: av-vie-cn covers CN only"),
    (lambda s: s.hold_meeting(country="JP", organisation="MHI", on=TODAY, lead_id=None, at=NOW, by="r"),
     "a meeting in JP refused: av-vie-cn covers CN only"),
    (lambda s: s.hold_meeting(country="CN", organisation="AVIC", on=TODAY, lead_id="nope", at=NOW, by="r"),
     "lead nope was never reported on support s-1"),
    (lambda s: s.report_lead(lead_id="l", country="CN", buyer="AVIC", on=TODAY + timedelta(days=2),
                             estimated_cents=None, at=NOW, by="r"),
     f"lead l dated {TODAY + timedelta(days=2)} is in the future (published on {TODAY})"),
    (lambda s: s.report_lead(lead_id="l", country="CN", buyer="AVIC", on=date(2026, 3, 1),
                             estimated_cents=None, at=NOW, by="r"),
     "lead l dated 2026-03-01 is before support s-1 began: enrolled in AV-VIE-RELAY on 2026-03-02"),
    (lambda s: s.deliver_prospects(list_id="p", country="CN", prospects=3, on=TODAY, at=NOW, by="r"),
     "support s-1 is a vie_relay support: a prospect list belongs to export_desk supports"),
], ids=["lead abroad", "meeting abroad", "unknown lead", "future", "before enrolment", "desk fact"])
def test_relay_facts_that_make_no_sense_are_refused(fact: Callable[[ExportSupport], object],
                                                    reason: str) -> None:
    support, _ = served(SupportKind.VIE_RELAY)
    assert refusal(support, fact) == reason


def test_a_day_of_leeway_for_partners_a_time_zone_ahead() -> None:
    support, _ = served(SupportKind.VIE_RELAY)
    late_evening = datetime.combine(TODAY, datetime.min.time(), tzinfo=UTC) + timedelta(hours=21)
    support.report_lead(lead_id="l", country="CN", buyer="AVIC", on=TODAY + timedelta(days=1),
                        estimated_cents=None, at=late_evening, by="vie-relay-cn")
    assert support.leads == 1


def test_the_same_lead_twice_is_refused() -> None:
    support, _ = served(SupportKind.VIE_RELAY)
    support.report_lead(lead_id="l", country="CN", buyer="AVIC", on=TODAY, estimated_cents=None, at=NOW,
                        by="r")
    assert refusal(support, lambda s: s.report_lead(lead_id="l", country="CN", buyer="AVIC", on=TODAY,
                                                    estimated_cents=None, at=NOW, by="r")) == (
        "lead l is already reported on support s-1")


def test_no_fact_on_a_waiting_or_closed_support() -> None:
    waiting = ExportSupport.open(id="s-1", siren="732829320", cluster="aerospace-valley",
                                 programme="AV-VIE-RELAY", cohort="AV-VIE-RELAY-2026",
                                 kind=SupportKind.VIE_RELAY, target_country="CN", correlation_id="c",
                                 enrolled_at=T0, at=T0)
    waiting.wait(at=T0, by="export", why="full")
    assert refusal(waiting, lambda s: s.report_lead(lead_id="l", country="CN", buyer="x", on=TODAY,
                                                    estimated_cents=None, at=NOW, by="r")) == (
        "support s-1 is waiting for a place: no relay mission serves it yet")
    support, unit = served(SupportKind.VIE_RELAY)
    support.close(at=NOW, by="staff", reason="enrolment withdrawn: takeover", unit=unit)
    assert refusal(support, lambda s: s.hold_meeting(country="CN", organisation="x", on=TODAY, lead_id=None,
                                                     at=NOW, by="r")) == (
        "support s-1 is closed (enrolment withdrawn: takeover)")


# ---- export desks ---------------------------------------------------------------------------------


def test_a_desk_delivers_prospects_meetings_and_one_local_set_up() -> None:
    support, _ = served(SupportKind.EXPORT_DESK)
    support.deliver_prospects(list_id="mro", country="SG", prospects=24, on=TODAY, at=NOW,
                              by="pg-comptoir-sg")
    support.arrange_meeting(country="SG", organisation="ST Engineering", on=TODAY, at=NOW,
                            by="pg-comptoir-sg")
    entry = support.complete_setup(country="SG", setup="joint_venture", on=TODAY, at=NOW, by="pg-comptoir-sg")
    assert entry.summary == "set up in SG: joint venture"
    assert support.meetings == 1
    assert refusal(support, lambda s: s.complete_setup(country="SG", setup="office", on=TODAY, at=NOW,
                                                       by="d")) == (
        f"support s-1 is already set up in SG (joint_venture, {TODAY})")
    assert refusal(support, lambda s: s.deliver_prospects(list_id="mro", country="SG", prospects=2, on=TODAY,
                                                          at=NOW, by="d")) == (
        "prospect list mro is already delivered on support s-1")
    assert refusal(support, lambda s: s.arrange_meeting(country="MY", organisation="x", on=TODAY, at=NOW,
                                                        by="d")) == (
        "a meeting in MY refused: pg-desk-sg covers SG only")


# ---- CCI collective action --------------------------------------------------------------------------


def test_a_cci_records_workshops_of_the_cohort_then_the_strategy() -> None:
    support, cohort = served(SupportKind.CCI_COLLECTIVE, target="IN")
    assert refusal(support, lambda s: s.deliver_strategy(on=TODAY, priority_countries=["IN"], at=NOW,
                                                         by="c")) == (
        "no strategy before any workshop: support s-1 attended none")
    assert refusal(support, lambda s: s.attend_workshop(cohort, workshop_id="golf", on=TODAY, attendees=1,
                                                        at=NOW, by="c")) == (
        "CCI cohort as-cci-2026 has no workshop golf; it has diagnostic, target-markets")
    assert refusal(support, lambda s: s.attend_workshop(cohort, workshop_id="diagnostic",
                                                        on=date(2026, 3, 11), attendees=1, at=NOW,
                                                        by="c")) == (
        "workshop diagnostic of CCI cohort as-cci-2026 is on 2026-03-10, not 2026-03-11")
    entry = support.attend_workshop(cohort, workshop_id="diagnostic", on=date(2026, 3, 10), attendees=2,
                                    at=NOW, by="cci-paris-idf")
    assert entry.summary == "workshop diagnostic 'Diagnostic export' attended (2 people)"
    assert refusal(support, lambda s: s.attend_workshop(cohort, workshop_id="diagnostic",
                                                        on=date(2026, 3, 10), attendees=1, at=NOW,
                                                        by="c")) == (
        "support s-1 already attended workshop diagnostic")
    support.deliver_strategy(on=TODAY, priority_countries=["IN", "SG"], at=NOW, by="cci-paris-idf")
    assert support.details["strategy"] == {"delivered_on": TODAY.isoformat(),
                                           "priority_countries": ["IN", "SG"]}
    assert "was already delivered" in refusal(
        support, lambda s: s.deliver_strategy(on=TODAY, priority_countries=["IN"], at=NOW, by="c"))


def test_a_workshop_held_before_the_sme_joined_is_refused() -> None:
    support, cohort = served(SupportKind.CCI_COLLECTIVE)
    support.enrolled_at = datetime(2026, 3, 20, 9, 0, tzinfo=UTC)
    assert refusal(support, lambda s: s.attend_workshop(cohort, workshop_id="diagnostic",
                                                        on=date(2026, 3, 10), attendees=1, at=NOW,
                                                        by="c")) == (
        "workshop diagnostic dated 2026-03-10 is before support s-1 began: enrolled in "
        "AS-CCI-INTERNATIONAL on 2026-03-20")


# ---- contracts ----------------------------------------------------------------------------------------


def test_a_contract_adds_its_amount_and_the_first_one_dates_the_first_contract() -> None:
    support, _ = served(SupportKind.VIE_RELAY)
    support.sign_contract(contract("c-2", signed_on=TODAY), at=NOW, by="vie-relay-cn", by_staff=False,
                          ceiling_cents=CEILING)
    entry = support.sign_contract(contract("c-1", amount=5_000_000, signed_on=TODAY - timedelta(days=20)),
                                  at=NOW, by="vie-relay-cn", by_staff=False, ceiling_cents=CEILING)
    assert entry.summary == "contract c-1 signed in CN with COMAC for 50,000.00 €"
    assert (support.contracted_cents, support.first_contract_on) == (50_000_000, TODAY - timedelta(days=20))
    assert [c.contract_id for c in support.contracts] == ["c-2", "c-1"]


@pytest.mark.parametrize(("made", "by_staff", "reason"), [
    (contract("c-1", country="DE"), False, "contract c-1 in DE refused: av-vie-cn covers CN only"),
    (contract("c-1", amount=CEILING + 1), False,
     "contract c-1 of 50,000,000.01 € exceeds the 50,000,000.00 € the cluster deems plausible for one SME "
     "contract: check the amount (in cents)"),
    (contract("c-1", amount=CEILING + 1), True, "exceeds the 50,000,000.00 €"),
    (contract("c-1", signed_on=date(2026, 2, 27)), True,
     "contract c-1 dated 2026-02-27 is before support s-1 began: enrolled in AV-VIE-RELAY on 2026-03-02"),
], ids=["relay abroad", "amount", "amount by staff", "before enrolment"])
def test_contracts_that_make_no_sense_are_refused(made: ExportContract, by_staff: bool, reason: str) -> None:
    support, _ = served(SupportKind.VIE_RELAY)
    found = refusal(support, lambda s: s.sign_contract(made, at=NOW, by="x", by_staff=by_staff,
                                                       ceiling_cents=CEILING))
    assert reason in found


def test_staff_report_contracts_anywhere_even_after_closing_and_never_twice() -> None:
    support, unit = served(SupportKind.VIE_RELAY)
    support.close(at=NOW, by="staff", reason="completed", unit=unit)
    support.sign_contract(contract("c-de", country="DE"), at=NOW, by="staff", by_staff=True,
                          ceiling_cents=CEILING)
    assert support.contracted_cents == 45_000_000
    assert refusal(support, lambda s: s.sign_contract(contract("c-de"), at=NOW, by="staff", by_staff=True,
                                                      ceiling_cents=CEILING)) == (
        "contract c-de is already recorded on support s-1")
    assert refusal(support, lambda s: s.sign_contract(contract("c-x"), at=NOW, by="vie-relay-cn",
                                                      by_staff=False, ceiling_cents=CEILING)) == (
        "support s-1 is closed (completed)")


def test_a_cci_s_contract_may_be_in_any_country() -> None:
    support, _ = served(SupportKind.CCI_COLLECTIVE, target="IN")
    support.sign_contract(contract("c-us", country="US"), at=NOW, by="cci-paris-idf", by_staff=False,
                          ceiling_cents=CEILING)
    assert support.contracts[0].country == "US"


# ---- outcome checkpoints ------------------------------------------------------------------------------


def test_checkpoints_start_with_the_baseline_and_show_new_countries() -> None:
    support, unit = served(SupportKind.VIE_RELAY)
    assert refusal(support, lambda s: s.record_checkpoint(checkpoint("month_6", ["CN"]), at=NOW,
                                                          by="staff")) == (
        "record the baseline of support s-1 before checkpoint month_6")
    support.record_checkpoint(checkpoint("baseline", ["BE", "ES"], contracts=1, on=T0.date()), at=NOW,
                              by="staff")
    assert support.new_countries() == set()
    support.sign_contract(contract("c-1"), at=NOW, by="vie-relay-cn", by_staff=False, ceiling_cents=CEILING)
    assert support.new_countries() == {"CN"}
    assert refusal(support, lambda s: s.record_checkpoint(checkpoint("month_6", ["CN"], contracts=0), at=NOW,
                                                          by="staff")) == (
        "0 contracts to date is fewer than the 1 of the baseline of support s-1")
    # Closed since: outcomes are still measured.
    support.close(at=NOW, by="staff", reason="completed", unit=unit)
    entry = support.record_checkpoint(checkpoint("month_6", ["BE", "CN", "GB"], contracts=3,
                                                 turnover=250_000_000),
                                      at=NOW, by="staff")
    assert entry.summary == ("month_6: export turnover 2,500,000.00 €, countries served BE, CN, GB, 3 "
                             "contract(s) to date; new since the baseline: CN, GB")
    assert support.new_countries() == {"CN", "GB"}
    assert "already recorded" in refusal(
        support, lambda s: s.record_checkpoint(checkpoint("month_6", []), at=NOW, by="staff"))


def test_history_records_every_accepted_fact_in_order() -> None:
    support, unit = served(SupportKind.VIE_RELAY)
    support.report_lead(lead_id="l", country="CN", buyer="AVIC", on=TODAY, estimated_cents=None, at=NOW,
                        by="r")
    support.close(at=NOW, by="av-staff-1", reason="completed", unit=unit)
    assert [(e.fact, e.by, e.status) for e in support.history] == [
        ("support.opened", "export", "opened"), ("support.assigned", "export", "assigned"),
        ("relay.lead.reported", "r", "assigned"), ("support.closed", "av-staff-1", "closed")]


def test_euros_are_written_for_people() -> None:
    assert euros(123_456_789) == "1,234,567.89 €"
    assert euros(5) == "0.05 €"
