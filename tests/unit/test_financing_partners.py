"""Who serves which cluster: the shipped partner files, their consistency with the enrolment
catalogue, and mistakes in a cluster's file, which stop the service naming the file."""

import tomllib
from pathlib import Path

import pytest

from envol_enrolment.catalogue import SHIPPED as CATALOGUE_DIR
from envol_enrolment.catalogue import Catalogue
from envol_enrolment.domain.model import ProgrammeKind
from envol_financing.domain.follow_up import FollowUpPolicy
from envol_financing.domain.model import SERVED_BY, CaseKind, PartnerKind
from envol_financing.partners import SHIPPED, Partner, Partners, PartnersError


@pytest.fixture(scope="module")
def shipped() -> Partners:
    return Partners.load(SHIPPED)


# ---- the shipped files ------------------------------------------------------------------------------


def test_shipped_files_cover_the_three_clusters(shipped: Partners) -> None:
    assert shipped.clusters == ["aerospace-valley", "astech", "pegase"]
    assert sorted(p.name for p in SHIPPED.glob("*.toml")) == ["aerospace-valley.toml", "astech.toml",
                                                             "pegase.toml"]


@pytest.mark.parametrize(("cluster", "programme", "kind"), [
    ("aerospace-valley", "AV-RD-LOAN", CaseKind.RD_LOAN),
    ("aerospace-valley", "AV-INVESTORS-CLUB", CaseKind.INVESTORS_CLUB),
    ("aerospace-valley", "AV-FIN-COACHING", CaseKind.COACHING),
    ("pegase", "PG-GROWTH-CONTRACT", CaseKind.GROWTH_CONTRACT),
    ("astech", "AS-PRIVATE-FINANCING", CaseKind.PRIVATE_FINANCING),
])
def test_shipped_programmes_open_the_documented_kind_of_case(shipped: Partners, cluster: str, programme: str,
                                                             kind: CaseKind) -> None:
    assert shipped.case_kind(cluster, programme) is kind


def test_programme_is_known_only_in_its_own_cluster(shipped: Partners) -> None:
    assert shipped.case_kind("pegase", "AV-RD-LOAN") is None
    assert shipped.case_kind("aerospace-valley", "AV-VIE-RELAY") is None  # an export programme
    assert shipped.case_kind("nowhere", "AV-RD-LOAN") is None


def test_every_financing_programme_of_the_catalogue_opens_a_kind_of_case(shipped: Partners) -> None:
    """Otherwise an enrolment in it would be rejected by the financing service."""
    catalogue = Catalogue.load(CATALOGUE_DIR)
    financing = [(p.cluster, p.code) for p in catalogue if p.kind is ProgrammeKind.FINANCING]
    assert len(financing) == 5
    missing = [(cluster, code) for cluster, code in financing if shipped.case_kind(cluster, code) is None]
    assert missing == []


def configured_programmes() -> dict[tuple[str, str], str]:
    """(cluster, programme) -> case kind, read straight from the shipped files."""
    documents = [tomllib.loads(path.read_text("utf-8")) for path in SHIPPED.glob("*.toml")]
    return {(doc["cluster"], code): kind for doc in documents for code, kind in doc["programmes"].items()}


def test_every_configured_programme_is_a_financing_programme_of_its_cluster() -> None:
    catalogue = Catalogue.load(CATALOGUE_DIR)
    financing = {(p.cluster, p.code) for p in catalogue if p.kind is ProgrammeKind.FINANCING}
    assert set(configured_programmes()) == financing


def test_every_configured_programme_has_who_serves_it(shipped: Partners) -> None:
    for (cluster, code), kind in configured_programmes().items():
        assert shipped.case_kind(cluster, code) is CaseKind(kind)
        needed = SERVED_BY[CaseKind(kind)]
        if needed is not None:
            assert shipped.serving(cluster, needed), (cluster, code)


def test_the_three_partner_banks_serve_aerospace_valley(shipped: Partners) -> None:
    banks = shipped.serving("aerospace-valley", PartnerKind.BANK)
    assert [b.id for b in banks] == ["banque-garonne", "credit-pyrenees", "caisse-atlantique"]
    assert all(b.cluster == "aerospace-valley" and b.kind is PartnerKind.BANK for b in banks)


def test_investors_club_is_alone_of_its_kind_and_coaches_are_two(shipped: Partners) -> None:
    """A partner alone of its kind serves its cases from the start; staff choose among several."""
    clubs = shipped.serving("aerospace-valley", PartnerKind.INVESTORS_CLUB)
    assert [p.id for p in clubs] == ["av-investors-club"]
    assert len(shipped.serving("aerospace-valley", PartnerKind.COACH)) == 2
    assert shipped.serving("pegase", PartnerKind.BANK) == []


def test_partner_lookup_is_per_cluster(shipped: Partners) -> None:
    assert shipped.partner("aerospace-valley", "banque-garonne") == Partner(
        "banque-garonne", PartnerKind.BANK, "Banque Garonne (partner banking group 1)", "aerospace-valley")
    assert shipped.partner("pegase", "banque-garonne") is None
    assert shipped.partner("aerospace-valley", "staff") is None
    assert shipped.partner("nowhere", "banque-garonne") is None


def test_staff_producers(shipped: Partners) -> None:
    assert all(shipped.is_staff(cluster, "staff") for cluster in shipped.clusters)
    assert not shipped.is_staff("aerospace-valley", "banque-garonne")
    assert not shipped.is_staff("nowhere", "staff")


def test_follow_up_policies(shipped: Partners) -> None:
    assert shipped.policy("aerospace-valley") == FollowUpPolicy(5, 5, 20, 10)
    assert shipped.policy("astech") == FollowUpPolicy(5, 5, 20, 10)
    assert shipped.policy("pegase") == FollowUpPolicy(5, 5, 30, 10)
    assert shipped.policy("nowhere") == FollowUpPolicy()


def test_environment_variable_points_at_a_cluster_s_own_folder(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path, "astech.toml", ASTECH)
    monkeypatch.setenv("ENVOL_FINANCING_PARTNERS_DIR", str(tmp_path))
    assert Partners.load().clusters == ["astech"]


# ---- mistakes in a cluster's file -------------------------------------------------------------------------

VALID = '''
cluster = "aerospace-valley"
staff = ["staff"]

[programmes]
AV-RD-LOAN = "rd_loan"
AV-FIN-COACHING = "coaching"

[[partners]]
id = "banque-garonne"
kind = "bank"
name = "Banque Garonne"

[[partners]]
id = "finance-coach-toulouse"
kind = "coach"
name = "Coach"
'''
ASTECH = '''
cluster = "astech"
staff = ["staff"]

[programmes]
AS-PRIVATE-FINANCING = "private_financing"
'''


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path


def load_error(directory: Path) -> str:
    with pytest.raises(PartnersError) as refused:
        Partners.load(directory)
    return str(refused.value)


def test_valid_files_in_a_folder_load(tmp_path: Path) -> None:
    write(tmp_path, "aerospace-valley.toml", VALID)
    write(tmp_path, "astech.toml", ASTECH)
    write(tmp_path, "notes.txt", "not a toml file: ignored")
    partners = Partners.load(tmp_path)
    assert partners.clusters == ["aerospace-valley", "astech"]
    assert partners.case_kind("aerospace-valley", "AV-FIN-COACHING") is CaseKind.COACHING
    assert partners.policy("astech") == FollowUpPolicy()


@pytest.mark.parametrize(("text", "field"), [
    (VALID + 'website = "https://example.org"\n', "website"),
    (VALID.replace('name = "Coach"', 'name = "Coach"\nemail = "coach@example.org"'), "partners.1.email"),
    (VALID + "[follow_up]\nreminder_hour = 9\n", "follow_up.reminder_hour"),
], ids=["top-level", "partner", "follow_up"])
def test_unknown_field_is_refused_naming_file_and_field(tmp_path: Path, text: str, field: str) -> None:
    path = write(tmp_path, "aerospace-valley.toml", text)
    reason = load_error(tmp_path)
    assert reason.startswith(f"{path}: ")
    assert field in reason
    assert "Extra inputs are not permitted" in reason


def test_duplicate_partner_id_is_refused(tmp_path: Path) -> None:
    text = VALID + '\n[[partners]]\nid = "banque-garonne"\nkind = "bank"\nname = "Another"\n'
    path = write(tmp_path, "aerospace-valley.toml", text)
    reason = load_error(tmp_path)
    assert reason.startswith(f"{path}: ")
    assert "two partners share an id" in reason


def test_programme_without_a_partner_of_the_kind_it_needs_is_refused(tmp_path: Path) -> None:
    text = VALID.replace('AV-FIN-COACHING = "coaching"', 'AV-FIN-COACHING = "coaching"\n'
                                                          'AV-INVESTORS-CLUB = "investors_club"')
    path = write(tmp_path, "aerospace-valley.toml", text)
    reason = load_error(tmp_path)
    assert reason.startswith(f"{path}: ")
    assert ("programme AV-INVESTORS-CLUB (investors_club) needs at least one partner of kind "
            "investors_club") in reason


def test_staff_run_programmes_need_no_partner(tmp_path: Path) -> None:
    write(tmp_path, "astech.toml", ASTECH.replace('"private_financing"', '"private_financing"\n'
                                                                         'AS-GROWTH = "growth_contract"'))
    assert Partners.load(tmp_path).case_kind("astech", "AS-GROWTH") is CaseKind.GROWTH_CONTRACT


def test_producer_both_staff_and_partner_is_refused(tmp_path: Path) -> None:
    text = VALID.replace('staff = ["staff"]', 'staff = ["staff", "banque-garonne"]')
    path = write(tmp_path, "aerospace-valley.toml", text)
    reason = load_error(tmp_path)
    assert reason.startswith(f"{path}: ")
    assert "a producer cannot be both staff and partner" in reason


@pytest.mark.parametrize(("old", "new", "field"), [
    ('AV-RD-LOAN = "rd_loan"', 'AV-RD-LOAN = "equity"', "programmes.AV-RD-LOAN"),
    ('kind = "bank"', 'kind = "insurer"', "partners.0.kind"),
    ('id = "banque-garonne"', 'id = "Banque Garonne"', "partners.0.id"),
    ('staff = ["staff"]', "staff = []", "staff"),
    ('cluster = "aerospace-valley"', 'cluster = "Aerospace Valley"', "cluster"),
], ids=["case kind", "partner kind", "partner id", "no staff", "cluster id"])
def test_invalid_value_is_refused_naming_file_and_field(tmp_path: Path, old: str, new: str,
                                                        field: str) -> None:
    path = write(tmp_path, "aerospace-valley.toml", VALID.replace(old, new, 1))
    reason = load_error(tmp_path)
    assert reason.startswith(f"{path}: ")
    assert f"\n{field}\n" in reason


@pytest.mark.parametrize(("setting", "value"), [("due_soon_business_days", -1),
                                                ("escalate_after_business_days", 0),
                                                ("stale_after_business_days", 251)])
def test_follow_up_delay_out_of_range_is_refused(tmp_path: Path, setting: str, value: int) -> None:
    path = write(tmp_path, "aerospace-valley.toml", VALID + f"[follow_up]\n{setting} = {value}\n")
    reason = load_error(tmp_path)
    assert reason.startswith(f"{path}: ")
    assert f"follow_up.{setting}" in reason


def test_file_that_is_not_toml_is_refused_naming_it(tmp_path: Path) -> None:
    write(tmp_path, "astech.toml", ASTECH)
    path = write(tmp_path, "pegase.toml", 'cluster = "pegase\n')
    assert load_error(tmp_path).startswith(f"{path}: ")


def test_a_file_must_be_named_after_its_cluster(tmp_path: Path) -> None:
    """So two files can never describe one cluster, and a typo in the cluster shows at start."""
    write(tmp_path, "aerospace-valley.toml", VALID)
    write(tmp_path, "av-copy.toml", VALID)
    assert load_error(tmp_path) == (f"{tmp_path / 'av-copy.toml'}: describes cluster 'aerospace-valley'; "
                                    "name the file aerospace-valley.toml")


def test_empty_folder_is_refused_naming_it(tmp_path: Path) -> None:
    write(tmp_path, "README.md", "no toml here")
    assert load_error(tmp_path) == f"no partner configuration (*.toml) in {tmp_path}"
