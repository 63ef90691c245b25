"""check_eligibility: each rule of a programme alone, then all failures reported together."""

from datetime import UTC, date, datetime

import pytest

from envol_enrolment.domain.model import (
    Application,
    Company,
    Programme,
    ProgrammeKind,
    ProjectReference,
    Rule,
    check_eligibility,
)
from envol_enrolment.domain.sme import SmeCategory

MILLION = 100_000_000  # cents
PROJECT = ProjectReference(reference="FUI-AAP-31-042", call="FUI AAP 31",
                           labelling_cluster="aerospace-valley", label_date=date(2025, 11, 3),
                           funder="Bpifrance")


def programme(*rules: Rule, opens_on: date = date(2026, 1, 5), closes_on: date | None = date(2026, 12, 18),
              countries: frozenset[str] = frozenset()) -> Programme:
    return Programme(code="AV-TEST", cluster="aerospace-valley", title="Test programme",
                     kind=ProgrammeKind.FINANCING, capacity=10, opens_on=opens_on, closes_on=closes_on,
                     rules=frozenset(rules), countries=countries)


def company(*, sme: SmeCategory = SmeCategory.SMALL, clusters: tuple[str, ...] = ("aerospace-valley",)
            ) -> Company:
    return Company(cluster="aerospace-valley", siren="732829320", legal_name="Aéro SAS", region="Occitanie",
                   clusters=list(clusters),
                   staff_awu=42, turnover_cents=6 * MILLION, balance_sheet_cents=5 * MILLION,
                   accounts_year=2024, sme_category=sme, sme_accounts_year=2024)


def application(*, applied_on: date = date(2026, 3, 2), target_country: str | None = None,
                project: ProjectReference | None = None) -> Application:
    return Application(id="app-1", siren="732829320", programme="AV-TEST", cluster="aerospace-valley",
                       cohort="AV-TEST-2026", applied_on=applied_on,
                       submitted_at=datetime(2026, 3, 2, 9, tzinfo=UTC), correlation_id="corr-1",
                       target_country=target_country, project=project)


def failures(app: Application, comp: Company, prog: Programme, other_live: int = 0) -> list[str]:
    return check_eligibility(app, comp, prog, other_live_applications=other_live)


def test_an_application_meeting_every_rule_has_no_failure() -> None:
    prog = programme(*Rule, countries=frozenset({"CA", "DE"}))
    assert failures(application(target_country="CA", project=PROJECT), company(), prog) == []


# ---- sme -----------------------------------------------------------------------------


@pytest.mark.parametrize("sme", [SmeCategory.MICRO, SmeCategory.SMALL, SmeCategory.MEDIUM])
def test_sme_rule_accepts_every_sme_category(sme: SmeCategory) -> None:
    assert failures(application(), company(sme=sme), programme(Rule.SME)) == []


def test_sme_rule_refuses_a_company_that_is_not_an_sme() -> None:
    assert failures(application(), company(sme=SmeCategory.NOT_SME), programme(Rule.SME)) == [
        "company 732829320 is not an SME under Recommendation 2003/361/EC (accounts 2024)"]


def test_sme_rule_refuses_a_company_never_assessed() -> None:
    never_assessed = Company(cluster="aerospace-valley", siren="552032534", legal_name="New SAS",
                             region="Occitanie",
                             clusters=["aerospace-valley"], staff_awu=3, turnover_cents=MILLION,
                             balance_sheet_cents=MILLION, accounts_year=2025)
    [reason] = failures(application(), never_assessed, programme(Rule.SME))
    assert reason.startswith("company 552032534 is not an SME")


# ---- cluster_member --------------------------------------------------------------------


def test_cluster_member_rule_accepts_a_member_of_several_clusters() -> None:
    member = company(clusters=("pegase", "aerospace-valley"))
    assert failures(application(), member, programme(Rule.CLUSTER_MEMBER)) == []


def test_cluster_member_rule_refuses_a_member_of_another_cluster() -> None:
    outsider = company(clusters=("pegase",))
    assert failures(application(), outsider, programme(Rule.CLUSTER_MEMBER)) == [
        "company 732829320 is not a member of aerospace-valley, which runs AV-TEST"]


# ---- open_on_application_date ------------------------------------------------------------


@pytest.mark.parametrize("day", [date(2026, 1, 5), date(2026, 6, 30), date(2026, 12, 18)])
def test_open_rule_accepts_the_opening_day_the_closing_day_and_between(day: date) -> None:
    assert failures(application(applied_on=day), company(), programme(Rule.OPEN_ON_APPLICATION_DATE)) == []


def test_open_rule_refuses_the_day_before_opening() -> None:
    assert failures(application(applied_on=date(2026, 1, 4)), company(),
                    programme(Rule.OPEN_ON_APPLICATION_DATE)) == [
        "AV-TEST is not open on 2026-01-04 (open 2026-01-05 to 2026-12-18)"]


def test_open_rule_refuses_the_day_after_closing() -> None:
    assert failures(application(applied_on=date(2026, 12, 19)), company(),
                    programme(Rule.OPEN_ON_APPLICATION_DATE)) == [
        "AV-TEST is not open on 2026-12-19 (open 2026-01-05 to 2026-12-18)"]


def test_open_ended_programme_is_open_long_after_opening() -> None:
    prog = programme(Rule.OPEN_ON_APPLICATION_DATE, closes_on=None)
    assert failures(application(applied_on=date(2031, 7, 1)), company(), prog) == []
    assert failures(application(applied_on=date(2025, 12, 31)), company(), prog) == [
        "AV-TEST is not open on 2025-12-31 (open 2026-01-05 to open-ended)"]


# ---- one_live_application --------------------------------------------------------------------


def test_one_live_application_rule_accepts_a_first_application() -> None:
    assert failures(application(), company(), programme(Rule.ONE_LIVE_APPLICATION), other_live=0) == []


@pytest.mark.parametrize("other_live", [1, 3])
def test_one_live_application_rule_refuses_a_second_live_application(other_live: int) -> None:
    assert failures(application(), company(), programme(Rule.ONE_LIVE_APPLICATION), other_live) == [
        "company 732829320 already has a live application to AV-TEST"]


# ---- public_project ----------------------------------------------------------------------------


def test_public_project_rule_accepts_an_application_with_a_project() -> None:
    assert failures(application(project=PROJECT), company(), programme(Rule.PUBLIC_PROJECT)) == []


def test_public_project_rule_refuses_an_application_without_a_project() -> None:
    [reason] = failures(application(project=None), company(), programme(Rule.PUBLIC_PROJECT))
    assert reason.startswith("AV-TEST requires a publicly funded collaborative project")


# ---- target_country ----------------------------------------------------------------------------

SERVED = frozenset({"CA", "CN", "BR", "DE"})


def test_target_country_rule_accepts_a_served_country() -> None:
    prog = programme(Rule.TARGET_COUNTRY, countries=SERVED)
    assert failures(application(target_country="BR"), company(), prog) == []


def test_target_country_rule_refuses_a_missing_country_and_lists_those_served() -> None:
    prog = programme(Rule.TARGET_COUNTRY, countries=SERVED)
    assert failures(application(target_country=None), company(), prog) == [
        "AV-TEST requires a target country, one of BR, CA, CN, DE"]


def test_target_country_rule_refuses_a_country_not_served() -> None:
    prog = programme(Rule.TARGET_COUNTRY, countries=SERVED)
    assert failures(application(target_country="US"), company(), prog) == [
        "AV-TEST does not serve US; it serves BR, CA, CN, DE"]


# ---- several rules ---------------------------------------------------------------------------


def test_every_failed_rule_is_reported_not_just_the_first() -> None:
    prog = programme(*Rule, countries=SERVED)
    outsider = company(sme=SmeCategory.NOT_SME, clusters=("astech",))
    late = application(applied_on=date(2027, 1, 4), target_country="US", project=None)

    reasons = failures(late, outsider, prog, other_live=1)

    expected = ["is not an SME", "is not a member of aerospace-valley", "is not open on 2027-01-04",
                "already has a live application", "requires a publicly funded collaborative project",
                "does not serve US"]
    assert len(reasons) == len(expected)
    for fragment, reason in zip(expected, reasons, strict=True):
        assert fragment in reason


def test_rules_not_listed_on_the_programme_are_not_applied() -> None:
    everything_wrong = application(applied_on=date(2020, 1, 1), target_country="ZZ", project=None)
    outsider = company(sme=SmeCategory.NOT_SME, clusters=())
    assert failures(everything_wrong, outsider, programme(), other_live=5) == []


def test_only_the_listed_rules_are_applied() -> None:
    everything_wrong = application(applied_on=date(2020, 1, 1), target_country=None, project=None)
    outsider = company(sme=SmeCategory.NOT_SME, clusters=())
    reasons = failures(everything_wrong, outsider, programme(Rule.CLUSTER_MEMBER, Rule.PUBLIC_PROJECT),
                       other_live=5)
    assert len(reasons) == 2
    assert "is not a member of aerospace-valley" in reasons[0]
    assert "requires a publicly funded collaborative project" in reasons[1]
