"""Who serves which cluster abroad: the shipped files (missions, desks, cohorts), their
consistency with the enrolment catalogue, and mistakes in a cluster's file, which stop the
service naming the file and the field."""

from __future__ import annotations

import tomllib
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from envol_enrolment.catalogue import SHIPPED as CATALOGUE_DIR
from envol_enrolment.catalogue import Catalogue
from envol_enrolment.domain.model import ProgrammeKind
from envol_export.domain.follow_up import FollowUpPolicy
from envol_export.domain.model import UNIT_OF, PartnerKind, SupportKind, UnitKind
from envol_export.partners import SHIPPED, Partners, PartnersError
from envol_shared.configuration import Partner

NOW = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def shipped() -> Partners:
    return Partners.load(SHIPPED)


@pytest.fixture(scope="module")
def catalogue() -> Catalogue:
    return Catalogue.load(CATALOGUE_DIR)


# ---- the shipped files ------------------------------------------------------------------------------


def test_shipped_files_cover_the_three_clusters(shipped: Partners) -> None:
    assert shipped.clusters == ["aerospace-valley", "astech", "pegase"]
    assert sorted(p.name for p in SHIPPED.glob("*.toml")) == ["aerospace-valley.toml", "astech.toml",
                                                             "pegase.toml"]


@pytest.mark.parametrize(("cluster", "programme", "kind"), [
    ("aerospace-valley", "AV-VIE-RELAY", SupportKind.VIE_RELAY),
    ("pegase", "PG-EXPORT-DESKS", SupportKind.EXPORT_DESK),
    ("astech", "AS-CCI-INTERNATIONAL", SupportKind.CCI_COLLECTIVE),
])
def test_shipped_programmes_open_the_documented_kind_of_support(shipped: Partners, cluster: str,
                                                                programme: str, kind: SupportKind) -> None:
    assert shipped.support_kind(cluster, programme) is kind


def test_programme_is_known_only_in_its_own_cluster(shipped: Partners) -> None:
    assert shipped.support_kind("pegase", "AV-VIE-RELAY") is None
    assert shipped.support_kind("aerospace-valley", "AV-RD-LOAN") is None  # a financing programme
    assert shipped.support_kind("nowhere", "AV-VIE-RELAY") is None


def test_configured_programmes_are_exactly_the_catalogue_s_export_programmes(catalogue: Catalogue) -> None:
    """Otherwise an enrolment in one would be rejected by the export service."""
    export = {(p.cluster, p.code) for p in catalogue if p.kind is ProgrammeKind.EXPORT}
    assert len(export) == 3
    documents = [tomllib.loads(path.read_text("utf-8")) for path in SHIPPED.glob("*.toml")]
    assert {(doc["cluster"], code) for doc in documents for code in doc["programmes"]} == export


def test_every_country_the_catalogue_serves_by_relay_or_desk_has_a_unit(shipped: Partners,
                                                                         catalogue: Catalogue) -> None:
    """An SME enrolled towards a country is placed there, not left waiting for a unit that does
    not exist; and no unit serves a country its programme does not offer."""
    units = shipped.units(NOW)
    for programme in catalogue:
        kind = shipped.support_kind(programme.cluster, programme.code)
        if kind is None or kind is SupportKind.CCI_COLLECTIVE:
            continue
        countries = {u.country for u in units if u.programme == programme.code}
        assert countries == set(programme.countries), programme.code
    assert {u.country for u in units if u.programme == "AV-VIE-RELAY"} == {"CA", "CN", "BR", "DE"}
    assert {u.country for u in units if u.programme == "PG-EXPORT-DESKS"} == {"US", "IN", "SG", "MA"}


def test_every_unit_belongs_to_a_programme_and_a_partner_of_its_cluster(shipped: Partners,
                                                                         catalogue: Catalogue) -> None:
    for unit in shipped.units(NOW):
        programme = catalogue.get(unit.programme)
        assert programme is not None and programme.cluster == unit.cluster
        assert UNIT_OF[shipped.support_kind(unit.cluster, unit.programme)] is unit.kind  # type: ignore[index]
        partner = shipped.partner(unit.cluster, unit.partner)
        assert partner is not None and partner.cluster == unit.cluster
        assert unit.ends_on is None or unit.ends_on > NOW.date(), unit.id  # the demo still has them
        assert (unit.occupied, unit.ended_at, unit.origin) == (0, None, "configuration")


def test_the_china_relay_is_small_and_lodged_by_a_member_company(shipped: Partners) -> None:
    china = next(u for u in shipped.units(NOW) if u.id == "av-vie-cn-2026")
    assert (china.kind, china.country, china.capacity, china.partner) == (UnitKind.RELAY_MISSION, "CN", 2,
                                                                          "vie-relay-cn")
    assert (china.host_siren, china.volunteer_id) == ("383474814", "vie-av-cn-01")  # an id, not a name
    assert (china.starts_on, china.ends_on) == (date(2026, 9, 1), date(2028, 8, 31))


def test_the_cci_cohort_has_its_workshops(shipped: Partners) -> None:
    cohort = next(u for u in shipped.units(NOW) if u.kind is UnitKind.CCI_COHORT)
    assert (cohort.id, cohort.country, cohort.capacity, cohort.partner) == ("as-cci-2026", None, 12,
                                                                            "cci-paris-idf")
    assert list(cohort.workshops) == ["diagnostic", "target-markets", "trade-shows", "action-plan",
                                      "export-financing", "strategy-review"]
    assert cohort.workshops["action-plan"] == {"title": "Plan d'action international", "on": "2026-12-08"}


def test_partners_staff_policy_and_limits(shipped: Partners) -> None:
    assert shipped.partner("aerospace-valley", "vie-relay-cn") == Partner(
        "vie-relay-cn", PartnerKind.RELAY, "VIE relay in China", "aerospace-valley")
    assert shipped.partner("pegase", "vie-relay-cn") is None
    assert shipped.partner("pegase", "pg-comptoir-sg").kind is PartnerKind.DESK  # type: ignore[union-attr]
    assert shipped.partner("astech", "cci-paris-idf").kind is PartnerKind.CCI  # type: ignore[union-attr]
    assert all(shipped.is_staff(cluster, "staff") for cluster in shipped.clusters)
    assert not shipped.is_staff("aerospace-valley", "vie-relay-cn")
    assert shipped.policy("aerospace-valley") == FollowUpPolicy(5, 10)
    assert shipped.policy("nowhere") == FollowUpPolicy()
    assert shipped.contract_ceiling_cents("pegase") == 5_000_000_000


def test_units_are_new_objects_every_time(shipped: Partners) -> None:
    first, second = shipped.units(NOW), shipped.units(NOW)
    assert [u.id for u in first] == [u.id for u in second]
    assert all(a is not b for a, b in zip(first, second, strict=True))


def test_environment_variable_points_at_a_cluster_s_own_folder(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path, "aerospace-valley.toml", VALID)
    monkeypatch.setenv("ENVOL_EXPORT_PARTNERS_DIR", str(tmp_path))
    assert Partners.load().clusters == ["aerospace-valley"]


# ---- mistakes in a cluster's file -------------------------------------------------------------------------

VALID = '''
cluster = "aerospace-valley"
staff = ["staff"]

[programmes]
AV-VIE-RELAY = "vie_relay"

[[partners]]
id = "vie-relay-cn"
kind = "relay"
name = "VIE relay in China"

[[missions]]
id = "av-vie-cn"
programme = "AV-VIE-RELAY"
country = "CN"
host_siren = "383 474 814"
host_company = "Airbus"
volunteer_id = "vie-01"
starts_on = 2026-09-01
ends_on = 2027-08-31
capacity = 2
partner = "vie-relay-cn"
'''
COHORT = '''
cluster = "astech"
staff = ["staff"]

[programmes]
AS-CCI-INTERNATIONAL = "cci_collective"

[[partners]]
id = "cci-paris-idf"
kind = "cci"
name = "CCI"

[[cohorts]]
id = "as-cci"
programme = "AS-CCI-INTERNATIONAL"
capacity = 12
partner = "cci-paris-idf"
starts_on = 2026-01-12
ends_on = 2026-12-11

[[cohorts.workshops]]
id = "diagnostic"
title = "Diagnostic"
on = 2026-03-10
'''


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path


def load_error(directory: Path) -> str:
    with pytest.raises(PartnersError) as refused:
        Partners.load(directory)
    return str(refused.value)


def test_valid_files_load_and_the_host_siren_is_compacted(tmp_path: Path) -> None:
    write(tmp_path, "aerospace-valley.toml", VALID)
    write(tmp_path, "astech.toml", COHORT)
    write(tmp_path, "notes.txt", "not a toml file: ignored")
    partners = Partners.load(tmp_path)
    assert partners.clusters == ["aerospace-valley", "astech"]
    assert [u.host_siren for u in partners.units(NOW)] == ["383474814", None]


@pytest.mark.parametrize(("old", "new", "reason"), [
    ("ends_on = 2027-08-31", "ends_on = 2027-02-27",
     "a VIE mission lasts 6 to 24 months: starting on 2026-09-01, its last day is between 2027-02-28 and "
     "2028-08-31, not 2027-02-27"),
    ("ends_on = 2027-08-31", "ends_on = 2028-09-01", "a VIE mission lasts 6 to 24 months"),
    ('partner = "vie-relay-cn"', 'partner = "vie-relay-de"', "mission av-vie-cn: partner vie-relay-de is not "
                                                             "a relay of this file"),
    ('programme = "AV-VIE-RELAY"', 'programme = "AV-OTHER"', "mission av-vie-cn: AV-OTHER is not a programme "
                                                             "of this file served by missions"),
    ('AV-VIE-RELAY = "vie_relay"', 'AV-VIE-RELAY = "export_desk"',
     "mission av-vie-cn: AV-VIE-RELAY is not a programme of this file served by missions"),
    ('kind = "relay"', 'kind = "desk"', "partner vie-relay-cn is not a relay of this file"),
    ('staff = ["staff"]', 'staff = ["staff", "vie-relay-cn"]', "a producer cannot be both staff and partner"),
], ids=["too short", "too long", "unknown partner", "unknown programme", "wrong kind of programme",
        "wrong kind of partner", "staff and partner"])
def test_inconsistent_file_is_refused_naming_it(tmp_path: Path, old: str, new: str, reason: str) -> None:
    path = write(tmp_path, "aerospace-valley.toml", VALID.replace(old, new, 1))
    refused = load_error(tmp_path)
    assert refused.startswith(f"{path}: ")
    assert reason in refused


@pytest.mark.parametrize(("old", "new", "field"), [
    ('country = "CN"', 'country = "China"', "missions.0.country"),
    ('host_siren = "383 474 814"', 'host_siren = "383474815"', "missions.0.host_siren"),
    ('volunteer_id = "vie-01"', 'volunteer_id = "Jeanne Dupont"', "missions.0.volunteer_id"),
    ("capacity = 2", "capacity = 0", "missions.0.capacity"),
    ('kind = "relay"', 'kind = "bank"', "partners.0.kind"),
    ('AV-VIE-RELAY = "vie_relay"', 'AV-VIE-RELAY = "relay"', "programmes.AV-VIE-RELAY"),
], ids=["country", "siren", "volunteer name", "capacity", "partner kind", "support kind"])
def test_invalid_value_is_refused_naming_file_and_field(tmp_path: Path, old: str, new: str,
                                                        field: str) -> None:
    path = write(tmp_path, "aerospace-valley.toml", VALID.replace(old, new, 1))
    refused = load_error(tmp_path)
    assert refused.startswith(f"{path}: ")
    assert f"\n{field}\n" in refused


def test_unknown_field_is_refused(tmp_path: Path) -> None:
    write(tmp_path, "aerospace-valley.toml", VALID.replace('host_company = "Airbus"',
                                                           'host_company = "Airbus"\nvolunteer_name = "x"'))
    refused = load_error(tmp_path)
    assert "missions.0.volunteer_name" in refused and "Extra inputs are not permitted" in refused


@pytest.mark.parametrize(("old", "new", "reason"), [
    ("on = 2026-03-10", "on = 2027-01-05", "workshop(s) diagnostic outside 2026-01-12 - 2026-12-11"),
    ("ends_on = 2026-12-11", "ends_on = 2026-01-01", "ends_on is before starts_on"),
    ('id = "diagnostic"\ntitle = "Diagnostic"\non = 2026-03-10\n',
     'id = "diagnostic"\ntitle = "Diagnostic"\non = 2026-03-10\n\n[[cohorts.workshops]]\nid = "diagnostic"\n'
     'title = "Again"\non = 2026-04-10\n', "two workshops share an id"),
], ids=["workshop outside", "dates", "duplicate workshop"])
def test_cohort_mistakes_are_refused(tmp_path: Path, old: str, new: str, reason: str) -> None:
    write(tmp_path, "astech.toml", COHORT.replace(old, new, 1))
    assert reason in load_error(tmp_path)


def test_a_cohort_needs_a_workshop(tmp_path: Path) -> None:
    write(tmp_path, "astech.toml", COHORT.split("[[cohorts.workshops]]")[0])
    assert "cohorts.0.workshops" in load_error(tmp_path)


def test_two_units_with_one_id_are_refused_even_across_files(tmp_path: Path) -> None:
    write(tmp_path, "aerospace-valley.toml", VALID + VALID[VALID.index("[[missions]]"):])
    assert "two missions, desks or cohorts share an id" in load_error(tmp_path)
    write(tmp_path, "aerospace-valley.toml", VALID)
    write(tmp_path, "astech.toml", COHORT.replace('id = "as-cci"', 'id = "av-vie-cn"'))
    assert load_error(tmp_path) == f"two files in {tmp_path} use the same mission, desk or cohort id"


def test_two_files_for_one_cluster_and_an_empty_folder_are_refused(tmp_path: Path) -> None:
    assert load_error(tmp_path) == f"no export configuration (*.toml) in {tmp_path}"
    write(tmp_path, "aerospace-valley.toml", VALID)
    write(tmp_path, "av-copy.toml", VALID)
    assert load_error(tmp_path) == (f"{tmp_path / 'av-copy.toml'}: describes cluster 'aerospace-valley'; "
                                    "name the file aerospace-valley.toml")


def test_file_that_is_not_toml_is_refused_naming_it(tmp_path: Path) -> None:
    path = write(tmp_path, "pegase.toml", 'cluster = "pegase\n')
    assert load_error(tmp_path).startswith(f"{path}: ")
