"""Who is a cluster's staff for enrolment: the catalogue names them, the same producers as the
partner files of financing and export (from which the NATS users are generated)."""

from pathlib import Path

import pytest

from envol_enrolment.catalogue import SHIPPED, Catalogue, CatalogueError
from envol_export.partners import SHIPPED as EXPORT_PARTNERS
from envol_export.partners import Partners as ExportPartners
from envol_financing.partners import SHIPPED as FINANCING_PARTNERS
from envol_financing.partners import Partners as FinancingPartners

FILE = """
cluster = "test-cluster"
name = "Test Cluster"
{staff}

[[programmes]]
code = "TC-ONE"
title = "One"
kind = "financing"
capacity = 3
opens_on = 2026-01-05
rules = ["sme"]
"""


def load(tmp_path: Path, staff: str) -> Catalogue:
    (tmp_path / "test-cluster.toml").write_text(FILE.format(staff=staff), "utf-8")
    return Catalogue.load(tmp_path)


def test_shipped_catalogue_names_the_staff_of_the_partner_files() -> None:
    """A staff tool NATS lets publish (generated from the partner files) is one enrolment
    accepts, and the other way round."""
    catalogue = Catalogue.load(SHIPPED)
    for partners in (FinancingPartners.load(FINANCING_PARTNERS), ExportPartners.load(EXPORT_PARTNERS)):
        assert partners.clusters == sorted(catalogue.clusters)
        for cluster in partners.clusters:
            entry = partners.entry(cluster)
            assert entry is not None
            assert catalogue.staff_of(cluster) == tuple(entry.staff), cluster


def test_staff_tools_are_the_producers_the_file_names(tmp_path: Path) -> None:
    catalogue = load(tmp_path, 'staff = ["crm", "tc-portal"]')
    assert catalogue.is_staff("test-cluster", "crm")
    assert catalogue.is_staff("test-cluster", "tc-portal")
    assert not catalogue.is_staff("test-cluster", "staff")
    assert not catalogue.is_staff("other-cluster", "crm")
    assert catalogue.staff_of("other-cluster") == ()


def test_a_file_without_staff_has_the_usual_staff_tool(tmp_path: Path) -> None:
    assert load(tmp_path, "").staff_of("test-cluster") == ("staff",)


@pytest.mark.parametrize("staff", ['staff = []', 'staff = ["Staff Tool"]', 'staff = "staff"'])
def test_a_wrong_staff_list_stops_the_service_naming_the_file(tmp_path: Path, staff: str) -> None:
    with pytest.raises(CatalogueError) as refused:
        load(tmp_path, staff)
    assert str(refused.value).startswith(f"{tmp_path / 'test-cluster.toml'}: ")
    assert "staff" in str(refused.value)
