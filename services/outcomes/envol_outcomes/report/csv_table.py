"""The report's figures as CSV: one row per programme × cohort, English column names.

Machine-readable on purpose: amounts in euros with a dot and two decimals, shares as
fractions (0.75), empty cells for unknown values. Text cells that a spreadsheet would run as
a formula (=, +, -, @) get a leading apostrophe.
"""

from __future__ import annotations

import csv
import io
from decimal import Decimal
from typing import Any

from .sentences import warnings
from .texts import CONVERSIONS, FUNNEL_STAGES, num

CHECKPOINTS = ("month_6", "month_12", "month_24")
BASE_COLUMNS = [
    "cluster", "programme", "title", "kind", "cohort",
    *FUNNEL_STAGES,
    *CONVERSIONS,
    "participants", "comparison",
    "money_smes", "money_total_eur", "money_median_eur", "money_per_sme_eur",
    "first_outcome_smes", "first_outcome_share", "first_outcome_median_days",
]
CHECKPOINT_FIELDS = [
    "measure",
    "participants_n", "participants_mean_change_eur", "participants_low_eur", "participants_high_eur",
    "comparison_n", "comparison_mean_change_eur", "comparison_low_eur", "comparison_high_eur",
    "difference_eur", "difference_low_eur", "difference_high_eur",
    "warning",
]


def _text(value: Any) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _euros(cents: Any) -> str:
    value = num(cents)
    if value is None:
        return ""
    return str((Decimal(round(value)) / 100).quantize(Decimal("0.01")))


def _figure(value: Any) -> str:
    number = num(value)
    if number is None:
        return ""
    return str(int(number)) if number == int(number) else repr(number)


def _bounds(interval: Any) -> tuple[str, str]:
    if isinstance(interval, list | tuple) and len(interval) == 2:
        return _euros(interval[0]), _euros(interval[1])
    return "", ""


def _checkpoint_cells(checkpoint: dict[str, Any] | None) -> list[str]:
    if checkpoint is None:
        return [""] * len(CHECKPOINT_FIELDS)
    cells = [_text(checkpoint.get("measure"))]
    for side in ("participants", "comparison"):
        group = checkpoint.get(side) or {}
        cells += [_figure(group.get("n")), _euros(group.get("mean_change_cents")),
                  *_bounds(group.get("interval"))]
    difference = checkpoint.get("difference") or {}
    cells += [_euros(difference.get("estimate_cents")), *_bounds(difference.get("interval"))]
    # The same caution as the English page: the service's warning, or ours for small groups.
    cells.append(_text(" ".join(warnings(checkpoint, "en"))))
    return cells


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def render_csv(answer: dict[str, Any]) -> str:
    """All cohorts of all programmes, one row each; the checkpoints month_6/12/24 always have
    their columns (empty when not reached), any other one found in the answer is added after."""
    programmes = _dicts(answer.get("programmes"))
    names = list(CHECKPOINTS)
    for programme in programmes:
        for cohort in _dicts(programme.get("cohorts")):
            for checkpoint in _dicts(cohort.get("checkpoints")):
                name = str(checkpoint.get("checkpoint"))
                if name not in names:
                    names.append(name)
    output = io.StringIO()
    writer = csv.writer(output, lineterminator="\n")
    writer.writerow(BASE_COLUMNS + [f"{name}_{field}" for name in names for field in CHECKPOINT_FIELDS])
    for programme in programmes:
        for cohort in _dicts(programme.get("cohorts")):
            funnel, conversion = cohort.get("funnel") or {}, cohort.get("conversion") or {}
            money, first = cohort.get("money") or {}, cohort.get("first_outcome") or {}
            by_name = {str(c.get("checkpoint")): c for c in _dicts(cohort.get("checkpoints"))}
            row = [_text(answer.get("cluster")), _text(programme.get("programme")),
                   _text(programme.get("title")), _text(programme.get("kind")), _text(cohort.get("cohort")),
                   *(_figure(funnel.get(stage)) for stage in FUNNEL_STAGES),
                   *(_figure(conversion.get(rate)) for rate in CONVERSIONS),
                   _figure(cohort.get("participants")), _figure(cohort.get("comparison")),
                   _figure(money.get("smes")), _euros(money.get("total_cents")),
                   _euros(money.get("median_cents")), _euros(money.get("per_sme_cents")),
                   _figure(first.get("smes")), _figure(first.get("share")), _figure(first.get("median_days"))]
            for name in names:
                row += _checkpoint_cells(by_name.get(name))
            writer.writerow(row)
    return output.getvalue()
