"""SME status per EU Recommendation 2003/361/EC, at the edges of every threshold."""

import pytest

from envol_enrolment.domain.model import Company
from envol_enrolment.domain.sme import Holding, SmeCategory, assess

EUR = 100  # cents
MILLION = 1_000_000 * EUR
MICRO, SMALL, MEDIUM, NOT_SME = (SmeCategory.MICRO, SmeCategory.SMALL, SmeCategory.MEDIUM,
                                 SmeCategory.NOT_SME)


def category(staff: float, turnover: int, balance: int, holdings: tuple[Holding, ...] = ()) -> SmeCategory:
    return assess(staff_awu=staff, turnover_cents=turnover, balance_sheet_cents=balance,
                  accounts_year=2025, holdings=holdings).category


# ---- staff headcount (annual work units), the figures well within every ceiling -----


@pytest.mark.parametrize(
    ("staff", "expected"),
    [
        (0, MICRO),
        (9.99, MICRO),
        (10, SMALL),
        (49.9, SMALL),
        (50, MEDIUM),
        (249, MEDIUM),
        (249.99, MEDIUM),
        (250, NOT_SME),
        (1000, NOT_SME),
    ],
)
def test_staff_decides_the_band_at_its_edges(staff: float, expected: SmeCategory) -> None:
    assert category(staff, 1 * MILLION, 1 * MILLION) is expected


# ---- turnover OR balance sheet -------------------------------------------------------


def test_turnover_of_exactly_2_million_is_micro() -> None:
    assert category(5, 2 * MILLION, 5 * MILLION) is MICRO


def test_one_cent_above_2_million_with_balance_sheet_above_too_is_small() -> None:
    assert category(5, 2 * MILLION + 1, 2 * MILLION + 1) is SMALL


def test_balance_sheet_of_exactly_2_million_keeps_micro_whatever_the_turnover() -> None:
    assert category(5, 9 * MILLION, 2 * MILLION) is MICRO


def test_turnover_above_but_balance_sheet_within_is_still_in_the_band() -> None:
    assert category(40, 30 * MILLION, 10 * MILLION) is SMALL


def test_small_ceiling_is_10_million_for_both() -> None:
    assert category(40, 10 * MILLION, 11 * MILLION) is SMALL
    assert category(40, 10 * MILLION + 1, 10 * MILLION + 1) is MEDIUM


def test_medium_with_turnover_of_exactly_50_million() -> None:
    assert category(200, 50 * MILLION, 100 * MILLION) is MEDIUM


def test_medium_with_balance_sheet_of_exactly_43_million() -> None:
    assert category(200, 100 * MILLION, 43 * MILLION) is MEDIUM


def test_medium_ceiling_is_not_the_same_for_turnover_and_balance_sheet() -> None:
    # 45 m€ is within the 50 m€ turnover ceiling but above the 43 m€ balance-sheet one.
    assert category(200, 45 * MILLION, 60 * MILLION) is MEDIUM
    assert category(200, 60 * MILLION, 45 * MILLION) is NOT_SME


def test_above_both_medium_ceilings_is_not_an_sme() -> None:
    assert category(200, 50 * MILLION + 1, 43 * MILLION + 1) is NOT_SME


def test_not_an_sme_says_which_figures_exceed_the_ceilings() -> None:
    result = assess(staff_awu=300, turnover_cents=60 * MILLION, balance_sheet_cents=50 * MILLION,
                    accounts_year=2024)
    assert result.category is NOT_SME
    assert not result.is_sme
    assert result.reasons == ("300 AWU, turnover 60 000 000 €, balance sheet 50 000 000 € "
                              "exceed the medium-sized ceilings",)


def test_assessment_keeps_its_inputs_and_accounts_year() -> None:
    result = assess(staff_awu=12.5, turnover_cents=3 * MILLION + 7, balance_sheet_cents=4 * MILLION,
                    accounts_year=2024)
    assert (result.category, result.accounts_year, result.staff_awu, result.turnover_cents,
            result.balance_sheet_cents) == (SMALL, 2024, 12.5, 3 * MILLION + 7, 4 * MILLION)
    assert result.is_sme
    assert result.reasons == ("12.5 AWU < 50 and turnover or balance sheet within the small ceilings",)


# ---- autonomy: partner and linked enterprises ---------------------------------------


def enterprise(share: float, staff: float = 0, turnover: int = 0, balance: int = 0,
               kind: str = "enterprise") -> Holding:
    return Holding(holder="Holder SA", holder_kind=kind, share_percent=share, holder_staff_awu=staff,
                   holder_turnover_cents=turnover, holder_balance_sheet_cents=balance)


def test_partner_enterprise_adds_its_share_of_the_holder_figures() -> None:
    result = assess(staff_awu=8, turnover_cents=1 * MILLION, balance_sheet_cents=1 * MILLION,
                    accounts_year=2025,
                    holdings=[enterprise(40, staff=10, turnover=5 * MILLION, balance=3 * MILLION)])
    assert result.staff_awu == pytest.approx(12)
    assert result.turnover_cents == 3 * MILLION
    assert result.balance_sheet_cents == 2_200_000 * EUR
    assert result.category is SMALL  # micro on its own figures
    assert "partner enterprise Holder SA (40 %): 40% of its figures added" in result.reasons


def test_partner_at_exactly_25_percent_aggregates() -> None:
    holding = enterprise(25, staff=8)
    assert category(8, 1 * MILLION, 1 * MILLION, (holding,)) is SMALL


def test_holding_below_25_percent_leaves_the_company_autonomous() -> None:
    holding = enterprise(24.9, staff=1000, turnover=900 * MILLION, balance=900 * MILLION)
    result = assess(staff_awu=8, turnover_cents=1 * MILLION, balance_sheet_cents=1 * MILLION,
                    accounts_year=2025, holdings=[holding])
    assert (result.category, result.staff_awu, result.turnover_cents) == (MICRO, 8, 1 * MILLION)


def test_holding_of_exactly_50_percent_is_a_partner_not_linked() -> None:
    result = assess(staff_awu=0, turnover_cents=0, balance_sheet_cents=0, accounts_year=2025,
                    holdings=[enterprise(50, staff=100, turnover=10 * MILLION, balance=10 * MILLION)])
    assert (result.staff_awu, result.turnover_cents, result.balance_sheet_cents) == (
        50, 5 * MILLION, 5 * MILLION)
    assert result.category is MEDIUM


def test_linked_enterprise_adds_all_of_the_holder_figures() -> None:
    result = assess(staff_awu=30, turnover_cents=4 * MILLION, balance_sheet_cents=4 * MILLION,
                    accounts_year=2025,
                    holdings=[enterprise(50.1, staff=300, turnover=80 * MILLION, balance=70 * MILLION)])
    assert (result.staff_awu, result.turnover_cents, result.balance_sheet_cents) == (
        330, 84 * MILLION, 74 * MILLION)
    assert result.category is NOT_SME
    assert "linked enterprise Holder SA (50.1 %): 100% of its figures added" in result.reasons


def test_holder_figures_missing_count_as_zero() -> None:
    holding = Holding(holder="Quiet SAS", holder_kind="enterprise", share_percent=60)
    result = assess(staff_awu=5, turnover_cents=1 * MILLION, balance_sheet_cents=1 * MILLION,
                    accounts_year=2025, holdings=[holding])
    assert (result.category, result.staff_awu, result.turnover_cents) == (MICRO, 5, 1 * MILLION)


def test_several_holders_all_aggregate() -> None:
    holdings = (enterprise(30, staff=10), enterprise(30, staff=10))
    result = assess(staff_awu=4, turnover_cents=0, balance_sheet_cents=0, accounts_year=2025,
                    holdings=holdings)
    assert result.staff_awu == pytest.approx(10)
    assert result.category is SMALL


# ---- exempt investors (Art. 3(2)) and public bodies (Art. 3(4)) ----------------------


@pytest.mark.parametrize(
    "kind",
    ["venture_capital", "business_angel", "university", "small_local_authority", "institutional_investor"],
)
def test_exempt_investor_holding_up_to_50_percent_keeps_autonomy(kind: str) -> None:
    holding = enterprise(50, staff=5000, turnover=900 * MILLION, balance=900 * MILLION, kind=kind)
    result = assess(staff_awu=8, turnover_cents=1 * MILLION, balance_sheet_cents=1 * MILLION,
                    accounts_year=2025, holdings=[holding])
    assert (result.category, result.staff_awu, result.turnover_cents) == (MICRO, 8, 1 * MILLION)
    assert result.reasons[0] == f"50 % held by a {kind} (Holder SA): stays autonomous"


def test_exempt_investor_above_50_percent_is_a_linked_enterprise() -> None:
    holding = enterprise(51, staff=300, kind="venture_capital")
    assert category(8, 1 * MILLION, 1 * MILLION, (holding,)) is NOT_SME


@pytest.mark.parametrize("share", [25, 60, 100])
def test_public_bodies_holding_25_percent_or_more_make_it_not_an_sme(share: float) -> None:
    holding = Holding(holder="État", holder_kind="public_body", share_percent=share)
    result = assess(staff_awu=3, turnover_cents=1 * MILLION, balance_sheet_cents=1 * MILLION,
                    accounts_year=2025, holdings=[holding])
    assert result.category is NOT_SME
    assert result.reasons[-1] == f"{share:g} % controlled by public bodies (Art. 3(4))"


def test_public_bodies_holdings_add_up() -> None:
    holdings = (Holding("Région", "public_body", 15), Holding("Département", "public_body", 10))
    assert category(3, 1 * MILLION, 1 * MILLION, holdings) is NOT_SME


def test_public_body_below_25_percent_does_not_matter() -> None:
    holdings = (Holding("Région", "public_body", 24),)
    assert category(3, 1 * MILLION, 1 * MILLION, holdings) is MICRO


# ---- Company.assess -----------------------------------------------------------------


def test_company_assess_keeps_the_category_and_the_accounts_year() -> None:
    company = Company(cluster="aerospace-valley", siren="732829320", legal_name="Aéro SAS",
                      region="Occitanie",
                      clusters=["aerospace-valley"], staff_awu=42, turnover_cents=6 * MILLION,
                      balance_sheet_cents=5 * MILLION, accounts_year=2024)
    assert (company.sme_category, company.sme_accounts_year) == (NOT_SME, 0)

    result = company.assess()

    assert result.category is SMALL
    assert (company.sme_category, company.sme_accounts_year) == (SMALL, 2024)


def test_company_assess_uses_its_holdings() -> None:
    company = Company(cluster="aerospace-valley", siren="732829320", legal_name="Aéro SAS",
                      region="Occitanie",
                      clusters=["aerospace-valley"], staff_awu=42, turnover_cents=6 * MILLION,
                      balance_sheet_cents=5 * MILLION, accounts_year=2025,
                      holdings=[Holding("Groupe SA", "enterprise", 75, 500, 200 * MILLION, 200 * MILLION)])
    assert company.assess().category is NOT_SME
    assert company.sme_category is NOT_SME
    assert company.sme_accounts_year == 2025
