"""The README's event catalogue is what partners read first: it must list every event type
with an example subject a partner can copy, its examples must be valid events (the same as the
generated catalogue's), and the outcome it shows must be the one the service gives."""

import json
import re
from pathlib import Path
from typing import Any

import pytest

from docs.generate import examples
from envol_enrolment.domain.sme import Holding, assess
from envol_shared.contracts import PUBLISHED_BY
from envol_shared.contracts import enrolment as en
from envol_shared.contracts import export as ex
from envol_shared.contracts import financing as fi
from envol_shared.events import event_name, registered_types

ROOT = Path(__file__).parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")
# A catalogue row: | `type` | `example subject` | `{"data": "example"}` and words |
ROW = re.compile(r"^\| `(envol\.[a-z0-9.-]+\.v\d+)` \| `([^`]+)` \| `(\{.*?\})`", re.MULTILINE)
ROWS = {type_: (subject, json.loads(data)) for type_, subject, data in ROW.findall(README)}


def test_every_event_type_is_documented_with_an_example_subject():
    missing = [t for t in registered_types() if f"`{t}`" not in README]
    assert missing == []
    for type_ in registered_types():
        # A service's own events under its producer token, exactly as they are published.
        producer = f".{PUBLISHED_BY[type_]}" if type_ in PUBLISHED_BY else ""
        example = f"{producer}.{event_name(type_)}`"
        assert example in README, f"no example subject ending in {example} for {type_}"


def test_the_readme_shows_data_for_every_event_a_partner_publishes():
    from_outside = {t for t in registered_types() if t not in PUBLISHED_BY and t != "envol.event.rejected.v1"}
    assert from_outside <= set(ROWS)


@pytest.mark.parametrize("type_", sorted(ROWS))
def test_each_readme_example_is_valid_and_is_the_catalogue_s(type_: str):
    subject, data = ROWS[type_]
    registered_types()[type_].model_validate_json(json.dumps(data), strict=True)
    assert subject.endswith(f".{event_name(type_)}")
    # The generated catalogue (docs/catalogue/) shows the same example: change both together.
    assert data == examples.EXAMPLES[type_].data


def test_the_registration_example_gets_the_assessment_the_readme_shows():
    """The README's registered company, assessed by the enrolment domain's SME rule."""
    registered = ROWS["envol.company.registered.v1"][1]
    shown = ROWS["envol.company.assessed.v1"][1]
    result = assess(staff_awu=registered["staff_awu"], turnover_cents=registered["turnover_cents"],
                    balance_sheet_cents=registered["balance_sheet_cents"],
                    accounts_year=registered["accounts_year"],
                    holdings=[Holding(**h) for h in registered["holdings"]])
    assert shown["sme_category"] == result.category.value == "small"
    figures = ("staff_awu", "turnover_cents", "balance_sheet_cents", "accounts_year")
    assert [shown[name] for name in figures] == [getattr(result, name) for name in figures]
    assert shown["reasons"] == list(result.reasons)
    assert shown["legal_name"] == registered["legal_name"] and shown["clusters"] == registered["clusters"]


def test_a_large_group_as_partner_enterprise_makes_the_company_not_an_sme_as_the_readme_says():
    registered = ROWS["envol.company.registered.v1"][1]
    group = Holding(holder="a large group", holder_kind="enterprise", share_percent=30,
                    holder_staff_awu=80_000, holder_turnover_cents=2_700_000_000_000,
                    holder_balance_sheet_cents=4_800_000_000_000)
    result = assess(staff_awu=registered["staff_awu"], turnover_cents=registered["turnover_cents"],
                    balance_sheet_cents=registered["balance_sheet_cents"],
                    accounts_year=registered["accounts_year"], holdings=[group])
    assert result.category.value == "not_sme"
    assert "makes it a partner enterprise that adds 30 %" in README and "the company is `not_sme`" in README


def _payload(introduction: str) -> dict[str, Any]:
    """The JSON object the README gives right after `introduction` (a code block or inline)."""
    start = README.index(introduction) + len(introduction)
    text = README[start:start + 3000]
    opening = text.index("{")
    depth = 0
    for end, char in enumerate(text[opening:], start=opening):
        depth += {"{": 1, "}": -1}.get(char, 0)
        if depth == 0:
            # Markdown shows a line break inside inline code as a space.
            return json.loads(text[opening:end + 1].replace("\n", " "))
    raise AssertionError(f"no JSON object after {introduction!r}")


@pytest.mark.parametrize(("introduction", "model"), [
    ("The application status payload (one line of the audit trail):", en.ApplicationWaitlisted),
    ("The case payload:", fi.CaseOpened),
    ("The support payload:", ex.SupportAssigned),
])
def test_the_readme_s_service_payloads_are_valid(introduction: str, model: type) -> None:
    model.model_validate_json(json.dumps(_payload(introduction)), strict=True)


def test_the_readme_points_partners_to_the_generated_catalogue():
    for path in ("docs/catalogue/index.html", "asyncapi/envol.json", "reference.json",
                 "schemas/envol.company.registered.v1.json", "python3 envol.py docs"):
        assert path in README
    for name in ("index.html", "asyncapi/envol.json", "schemas/envol.company.registered.v1.json",
                 "reference.json"):
        assert (ROOT / "docs" / "catalogue" / name).is_file()
