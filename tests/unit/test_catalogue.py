"""The programme catalogue: the shipped TOML files, and mistakes that stop the service."""

from datetime import date
from pathlib import Path

import pytest

from envol_enrolment.catalogue import SHIPPED, Catalogue, CatalogueError
from envol_enrolment.domain.model import Programme, ProgrammeKind, Rule

COMMON = {Rule.SME, Rule.CLUSTER_MEMBER, Rule.OPEN_ON_APPLICATION_DATE, Rule.ONE_LIVE_APPLICATION}


@pytest.fixture(scope="module")
def shipped() -> Catalogue:
    return Catalogue.load(SHIPPED)


def programme(catalogue: Catalogue, code: str) -> Programme:
    found = catalogue.get(code)
    assert found is not None, f"{code} missing from the catalogue"
    return found


# ---- the shipped catalogue -----------------------------------------------------------


def test_shipped_catalogue_has_the_three_clusters(shipped: Catalogue) -> None:
    assert shipped.clusters == {"aerospace-valley": "Aerospace Valley", "astech": "ASTech",
                                "pegase": "Pégase"}


def test_shipped_catalogue_has_the_seed_programmes(shipped: Catalogue) -> None:
    assert {(p.cluster, p.code) for p in shipped} == {
        ("aerospace-valley", "AV-RD-LOAN"),
        ("aerospace-valley", "AV-INVESTORS-CLUB"),
        ("aerospace-valley", "AV-FIN-COACHING"),
        ("aerospace-valley", "AV-VIE-RELAY"),
        ("pegase", "PG-GROWTH-CONTRACT"),
        ("pegase", "PG-EXPORT-DESKS"),
        ("astech", "AS-PRIVATE-FINANCING"),
        ("astech", "AS-CCI-INTERNATIONAL"),
    }


def test_rd_loans_require_a_public_project(shipped: Catalogue) -> None:
    loans = programme(shipped, "AV-RD-LOAN")
    assert loans.kind is ProgrammeKind.FINANCING
    assert loans.rules == COMMON | {Rule.PUBLIC_PROJECT}
    assert (loans.opens_on, loans.closes_on) == (date(2024, 1, 8), date(2027, 12, 17))


@pytest.mark.parametrize("code", ["AV-INVESTORS-CLUB", "AV-FIN-COACHING", "PG-GROWTH-CONTRACT",
                                  "AS-PRIVATE-FINANCING"])
def test_other_financing_programmes_apply_the_common_rules(shipped: Catalogue, code: str) -> None:
    found = programme(shipped, code)
    assert found.kind is ProgrammeKind.FINANCING
    assert found.rules == COMMON
    assert found.countries == frozenset()


def test_vie_relay_serves_canada_china_brazil_and_germany(shipped: Catalogue) -> None:
    relay = programme(shipped, "AV-VIE-RELAY")
    assert relay.kind is ProgrammeKind.EXPORT
    assert relay.countries == {"CA", "CN", "BR", "DE"}
    assert relay.rules == COMMON | {Rule.TARGET_COUNTRY}
    assert relay.capacity == 22
    assert relay.closes_on is None


@pytest.mark.parametrize("code", ["PG-EXPORT-DESKS", "AS-CCI-INTERNATIONAL"])
def test_export_programmes_ask_for_a_served_country(shipped: Catalogue, code: str) -> None:
    found = programme(shipped, code)
    assert found.kind is ProgrammeKind.EXPORT
    assert Rule.TARGET_COUNTRY in found.rules
    assert found.countries


def test_programmes_carry_their_dates_and_cohort(shipped: Catalogue) -> None:
    growth = programme(shipped, "PG-GROWTH-CONTRACT")
    assert (growth.capacity, growth.opens_on, growth.closes_on) == (4, date(2024, 2, 5), date(2026, 12, 18))
    assert growth.is_open_on(date(2024, 2, 5))
    assert not growth.is_open_on(date(2024, 2, 4))
    assert growth.is_open_on(date(2026, 12, 18))
    assert not growth.is_open_on(date(2026, 12, 19))
    assert growth.cohort_of(date(2026, 5, 4)) == "PG-GROWTH-CONTRACT-2026"


def test_unknown_code_is_not_found(shipped: Catalogue) -> None:
    assert shipped.get("AV-NOPE") is None


# ---- mistakes in a cluster's file ----------------------------------------------------

VALID = """
cluster = "test-cluster"
name = "Test Cluster"

[[programmes]]
code = "TC-ONE"
title = "One"
kind = "export"
capacity = 3
opens_on = 2026-01-05
rules = ["sme", "target_country"]
countries = ["CA"]
"""


def load(tmp_path: Path, text: str, name: str = "test-cluster.toml") -> Catalogue:
    (tmp_path / name).write_text(text, "utf-8")
    return Catalogue.load(tmp_path)


def test_a_valid_file_loads(tmp_path: Path) -> None:
    [only] = list(load(tmp_path, VALID))
    assert only == Programme(code="TC-ONE", cluster="test-cluster", title="One", kind=ProgrammeKind.EXPORT,
                             capacity=3, opens_on=date(2026, 1, 5), closes_on=None,
                             rules=frozenset({Rule.SME, Rule.TARGET_COUNTRY}), countries=frozenset({"CA"}))


def test_catalogue_dir_can_come_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "mine.toml").write_text(VALID, "utf-8")
    monkeypatch.setenv("ENVOL_CATALOGUE_DIR", str(tmp_path))
    assert [p.code for p in Catalogue.load()] == ["TC-ONE"]


def test_broken_toml_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(CatalogueError) as refused:
        load(tmp_path, VALID.replace('title = "One"', 'title = "One'), name="broken.toml")
    assert str(refused.value).startswith(f"{tmp_path / 'broken.toml'}: ")


def test_target_country_rule_without_countries_is_refused(tmp_path: Path) -> None:
    with pytest.raises(CatalogueError, match="the target_country rule needs the list of countries served"):
        load(tmp_path, VALID.replace('countries = ["CA"]', ""))


def closing_on(day: str) -> str:
    return VALID.replace("opens_on = 2026-01-05", f"opens_on = 2026-01-05\ncloses_on = {day}")


def test_closing_before_opening_is_refused(tmp_path: Path) -> None:
    with pytest.raises(CatalogueError) as refused:
        load(tmp_path, closing_on("2026-01-04"))
    message = str(refused.value)
    assert message.startswith(str(tmp_path / "test-cluster.toml"))
    assert "programmes.0" in message
    assert "closes_on is before opens_on" in message


def test_closing_on_the_opening_day_is_accepted(tmp_path: Path) -> None:
    [only] = list(load(tmp_path, closing_on("2026-01-05")))
    assert only.closes_on == only.opens_on == date(2026, 1, 5)


@pytest.mark.parametrize(
    ("old", "new", "field"),
    [
        ('rules = ["sme", "target_country"]', 'rules = ["sme", "be_nice"]', "rules.1"),
        ('kind = "export"', 'kind = "charity"', "kind"),
        ("capacity = 3", "capacity = 0", "capacity"),
        ('code = "TC-ONE"', 'code = "tc-one"', "code"),
        ('countries = ["CA"]', 'countries = ["Canada"]', "countries.0"),
        ('title = "One"', 'title = "One"\ncolour = "blue"', "colour"),
    ],
)
def test_invalid_field_is_refused_naming_the_file_and_field(tmp_path: Path, old: str, new: str,
                                                          field: str) -> None:
    with pytest.raises(CatalogueError) as refused:
        load(tmp_path, VALID.replace(old, new))
    message = str(refused.value)
    assert message.startswith(str(tmp_path / "test-cluster.toml"))
    assert f"programmes.0.{field}" in message


def test_two_programmes_with_one_code_are_refused(tmp_path: Path) -> None:
    (tmp_path / "other.toml").write_text(VALID.replace('"test-cluster"', '"other-cluster"'), "utf-8")
    with pytest.raises(CatalogueError, match="two programmes share a code"):
        load(tmp_path, VALID)


def test_empty_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(CatalogueError, match="no programme catalogue"):
        Catalogue.load(tmp_path)
