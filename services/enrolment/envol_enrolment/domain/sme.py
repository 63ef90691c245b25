"""SME status per EU Recommendation 2003/361/EC.

Staff (annual work units) decides the band together with EITHER turnover OR balance-sheet
total. An enterprise held at 25 % or more by another is not autonomous: a partner
enterprise (25-50 %) adds its share of the holder's figures, a linked one (> 50 %) adds all
of them. Venture capital, business angels, universities, institutional investors and small
local authorities may hold up to 50 % without that (Art. 3(2)). An enterprise 25 % or more
controlled by public bodies is not an SME (Art. 3(4)).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

EXEMPT_INVESTORS = frozenset({"venture_capital", "business_angel", "university",
                              "small_local_authority", "institutional_investor"})
EURO = 100  # cents


class SmeCategory(StrEnum):
    MICRO = "micro"
    SMALL = "small"
    MEDIUM = "medium"
    NOT_SME = "not_sme"


@dataclass(frozen=True)
class Holding:
    holder: str
    holder_kind: str
    share_percent: float
    holder_staff_awu: float | None = None
    holder_turnover_cents: int | None = None
    holder_balance_sheet_cents: int | None = None


@dataclass(frozen=True)
class Band:
    category: SmeCategory
    staff_below: float
    turnover_max_cents: int
    balance_sheet_max_cents: int


# Reference thresholds of the Recommendation; ordered from the smallest band.
BANDS = (
    Band(SmeCategory.MICRO, 10, 2_000_000 * EURO, 2_000_000 * EURO),
    Band(SmeCategory.SMALL, 50, 10_000_000 * EURO, 10_000_000 * EURO),
    Band(SmeCategory.MEDIUM, 250, 50_000_000 * EURO, 43_000_000 * EURO),
)


@dataclass(frozen=True)
class SmeAssessment:
    category: SmeCategory
    accounts_year: int
    staff_awu: float
    turnover_cents: int
    balance_sheet_cents: int
    reasons: tuple[str, ...]

    @property
    def is_sme(self) -> bool:
        return self.category is not SmeCategory.NOT_SME


def assess(
    *,
    staff_awu: float,
    turnover_cents: int,
    balance_sheet_cents: int,
    accounts_year: int,
    holdings: tuple[Holding, ...] | list[Holding] = (),
) -> SmeAssessment:
    staff, turnover, balance = staff_awu, turnover_cents, balance_sheet_cents
    reasons: list[str] = []
    public_share = sum(h.share_percent for h in holdings if h.holder_kind == "public_body")
    for holding in holdings:
        if holding.holder_kind == "public_body":
            continue
        if holding.holder_kind in EXEMPT_INVESTORS and holding.share_percent <= 50:
            reasons.append(f"{holding.share_percent:g} % held by a {holding.holder_kind} "
                           f"({holding.holder}): stays autonomous")
            continue
        if holding.share_percent > 50:
            weight, relation = 1.0, "linked"
        elif holding.share_percent >= 25:
            weight, relation = holding.share_percent / 100, "partner"
        else:
            continue
        staff += weight * (holding.holder_staff_awu or 0)
        turnover += round(weight * (holding.holder_turnover_cents or 0))
        balance += round(weight * (holding.holder_balance_sheet_cents or 0))
        reasons.append(f"{relation} enterprise {holding.holder} ({holding.share_percent:g} %): "
                       f"{weight:.0%} of its figures added")
    if public_share >= 25:
        reasons.append(f"{public_share:g} % controlled by public bodies (Art. 3(4))")
        return SmeAssessment(SmeCategory.NOT_SME, accounts_year, staff, turnover, balance,
                             tuple(reasons))
    for band in BANDS:
        if staff < band.staff_below and (turnover <= band.turnover_max_cents
                                          or balance <= band.balance_sheet_max_cents):
            reasons.append(f"{staff:g} AWU < {band.staff_below:g} and turnover or balance sheet "
                           f"within the {band.category.value} ceilings")
            return SmeAssessment(band.category, accounts_year, staff, turnover, balance,
                                 tuple(reasons))
    reasons.append(f"{staff:g} AWU, turnover {_euros(turnover)}, balance sheet "
                   f"{_euros(balance)} exceed the medium-sized ceilings")
    return SmeAssessment(SmeCategory.NOT_SME, accounts_year, staff, turnover, balance,
                         tuple(reasons))


def _euros(cents: int) -> str:
    return f"{cents // EURO:,} €".replace(",", " ")
