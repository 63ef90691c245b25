"""SIREN and SIRET: Luhn check digits, the La Poste exception, formats found in the wild."""

import pytest
from pydantic import BaseModel, TypeAdapter, ValidationError
from stdnum import luhn

from envol_shared.identifiers import (
    CompanyId,
    InvalidCompanyId,
    Siren,
    Siret,
    normalise_company_id,
    normalise_siren,
    normalise_siret,
    siren_of,
)

# Real SIRENs with valid check digits (tests/support.py).
VALID_SIRENS = ["732829320", "552032534", "542051180", "383474814", "775670417", "444608442"]
# SIRETs of real establishments, as they appear in the wild (from python-stdnum's tests).
VALID_SIRETS = {
    "73282932000074": "73282932000074",
    "732 829 320 00074": "73282932000074",
    "314 901 323 00043": "31490132300043",
    "775.563.232.00104": "77556323200104",
    "329.338.88300153": "32933888300153",
}


# ---- SIREN ---------------------------------------------------------------------------


@pytest.mark.parametrize("siren", VALID_SIRENS)
def test_valid_siren_is_returned_unchanged(siren: str) -> None:
    assert normalise_siren(siren) == siren


def test_siren_with_spaces_and_dots_is_compacted() -> None:
    assert normalise_siren("732 829 320") == "732829320"
    assert normalise_siren("732.829.320") == "732829320"


@pytest.mark.parametrize("siren", ["732829321", "552032535", "542051181"])
def test_siren_with_wrong_check_digit_is_refused(siren: str) -> None:
    with pytest.raises(InvalidCompanyId, match="checksum or check digit"):
        normalise_siren(siren)


@pytest.mark.parametrize("siren", ["73282932", "7328293200", "73282932000074"])
def test_siren_of_wrong_length_is_refused(siren: str) -> None:
    with pytest.raises(InvalidCompanyId, match="invalid length"):
        normalise_siren(siren)


def test_siren_of_eight_digits_says_length_is_wrong() -> None:
    with pytest.raises(InvalidCompanyId, match=r"invalid SIREN '73282932': .*invalid length"):
        normalise_siren("73282932")


@pytest.mark.parametrize("siren", ["73282932O", "ABCDEFGHI", "732-829-320"])
def test_siren_with_letters_or_other_separators_is_refused(siren: str) -> None:
    with pytest.raises(InvalidCompanyId, match="invalid format"):
        normalise_siren(siren)


def test_invalid_company_id_is_a_value_error() -> None:
    # pydantic turns ValueErrors raised by validators into validation errors.
    assert issubclass(InvalidCompanyId, ValueError)


# ---- SIRET ---------------------------------------------------------------------------


@pytest.mark.parametrize(("raw", "compact"), VALID_SIRETS.items())
def test_valid_siret_is_compacted(raw: str, compact: str) -> None:
    assert normalise_siret(raw) == compact


def test_siret_with_wrong_check_digit_is_refused() -> None:
    with pytest.raises(InvalidCompanyId, match=r"invalid SIRET '73282932000079'.*checksum"):
        normalise_siret("73282932000079")


def test_siret_passing_luhn_but_with_an_invalid_siren_is_refused() -> None:
    assert luhn.is_valid("73282932100007")  # the 14 digits pass Luhn, SIREN 732829321 does not
    with pytest.raises(InvalidCompanyId, match="invalid SIRET"):
        normalise_siret("73282932100007")


@pytest.mark.parametrize("siret", ["7328293200007", "732829320000745", "732829320"])
def test_siret_of_wrong_length_is_refused(siret: str) -> None:
    with pytest.raises(InvalidCompanyId, match="invalid length"):
        normalise_siret(siret)


def test_siret_with_a_letter_is_refused() -> None:
    with pytest.raises(InvalidCompanyId, match="invalid format"):
        normalise_siret("7328293200007A")


# ---- La Poste: SIRET starting 356000000, digit sum a multiple of 5 instead of Luhn -----


@pytest.mark.parametrize("siret", ["35600000049837", "356 000 000 09075", "35600000000100"])
def test_la_poste_establishment_with_digit_sum_multiple_of_5_is_valid(siret: str) -> None:
    compact = siret.replace(" ", "")
    assert not luhn.is_valid(compact)
    assert sum(map(int, compact)) % 5 == 0
    assert normalise_siret(siret) == compact


def test_la_poste_establishment_with_digit_sum_not_multiple_of_5_is_refused() -> None:
    with pytest.raises(InvalidCompanyId, match="invalid SIRET"):
        normalise_siret("35600000049838")


def test_la_poste_establishment_passing_luhn_but_not_the_digit_sum_is_refused() -> None:
    assert luhn.is_valid("35600000000113")
    with pytest.raises(InvalidCompanyId, match="invalid SIRET"):
        normalise_siret("35600000000113")


def test_la_poste_head_office_uses_luhn() -> None:
    assert normalise_siret("35600000000048") == "35600000000048"
    assert sum(map(int, "35600000000048")) % 5 != 0


# ---- SIREN or SIRET ------------------------------------------------------------------


def test_company_id_accepts_a_siren_or_a_siret() -> None:
    assert normalise_company_id("732 829 320") == "732829320"
    assert normalise_company_id("732 829 320 00074") == "73282932000074"


def test_company_id_of_fourteen_digits_is_checked_as_a_siret() -> None:
    with pytest.raises(InvalidCompanyId, match="invalid SIRET"):
        normalise_company_id("73282932000079")


def test_company_id_of_neither_length_is_refused() -> None:
    with pytest.raises(InvalidCompanyId, match="invalid length"):
        normalise_company_id("1234567890")


@pytest.mark.parametrize(
    ("company_id", "siren"),
    [
        ("732829320", "732829320"),
        ("73282932000074", "732829320"),
        ("732 829 320 00074", "732829320"),
        ("775.563.232.00104", "775563232"),
        ("35600000049837", "356000000"),
    ],
)
def test_siren_of_gives_the_company_of_a_siren_or_siret(company_id: str, siren: str) -> None:
    assert siren_of(company_id) == siren


def test_siren_of_an_invalid_siret_is_refused() -> None:
    with pytest.raises(InvalidCompanyId):
        siren_of("73282932000079")


# ---- pydantic annotated types --------------------------------------------------------


class Registration(BaseModel):
    siren: Siren | None = None
    siret: Siret | None = None
    company_id: CompanyId | None = None


def test_annotated_types_normalise_valid_values() -> None:
    model = Registration(siren="732 829 320", siret="732.829.320.00074", company_id="73282932000074")
    assert (model.siren, model.siret, model.company_id) == ("732829320", "73282932000074",
                                                             "73282932000074")


def test_siren_type_error_names_the_field_the_value_and_the_problem() -> None:
    with pytest.raises(ValidationError) as caught:
        Registration(siren="732829321")
    [error] = caught.value.errors()
    assert error["loc"] == ("siren",)
    assert error["type"] == "value_error"
    assert "invalid SIREN '732829321'" in error["msg"]
    assert "check digit" in error["msg"]


def test_siret_type_refuses_a_siren() -> None:
    with pytest.raises(ValidationError, match=r"siret\n.*invalid SIRET '732829320'.*invalid length"):
        Registration(siret="732829320")


def test_company_id_type_refuses_a_bad_siret() -> None:
    with pytest.raises(ValidationError, match=r"company_id\n.*invalid SIRET '73282932000079'"):
        Registration(company_id="73282932000079")


def test_siren_type_refuses_non_strings() -> None:
    with pytest.raises(ValidationError, match="string"):
        TypeAdapter(Siren).validate_python(732829320)
