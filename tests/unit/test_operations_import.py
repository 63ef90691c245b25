"""Reading clusters' spreadsheets for `envol-ops import companies`: what Excel and LibreOffice
write (BOM, `;`, decimal commas, spaces), each row validated by the contract."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from envol_shared.events import parse_event
from envol_shared.operations.importer import ImportFileError, cents_of, decimal_of, decode, parse

AV = "aerospace-valley"
AT = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
HEADER = "siren;legal_name;region;staff_awu;turnover_eur;balance_sheet_eur;accounts_year"


@pytest.mark.parametrize(("text", "expected"), [
    ("38,5", Decimal("38.5")), ("6 400 000", Decimal(6400000)),
    ("6\u00a0400\u202f000,50", Decimal("6400000.50")),  # no-break spaces, as LibreOffice writes
    ("6.400.000,50", Decimal("6400000.50")), ("6,400,000.50", Decimal("6400000.50")),
    ("1.234.567", Decimal(1234567)),
    ("12", Decimal(12)), (" 7.5 ", Decimal("7.5")),
])
def test_numbers_as_french_and_english_spreadsheets_write_them(text: str, expected: Decimal) -> None:
    assert decimal_of(text) == expected


@pytest.mark.parametrize("text", ["", "beaucoup", "NaN", "Infinity", "1,2,3,4x"])
def test_what_is_not_a_number_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        decimal_of(text)


def test_euros_become_cents_exactly_and_fractions_of_a_cent_are_refused() -> None:
    assert cents_of("4 100 000,50") == 410_000_050
    assert cents_of("0,1") == 10
    with pytest.raises(ValueError, match="fractions of a cent"):
        cents_of("1,005")


def test_a_french_export_with_bom_semicolons_and_spaces_is_read_row_by_row() -> None:
    raw = ("\ufeff" + HEADER.replace("siren", "SIREN ").replace("legal_name", "Legal name") + "\r\n"
           "732 829 320;Figeac Usinage;Occitanie;38,5;6 400 000;4 100 000,50;2025\r\n").encode("utf-8")
    parsed = parse(decode(raw), AV, at=AT)
    assert parsed.total == 1 and not parsed.refused
    [row] = parsed.rows
    assert (row.line, row.siren, row.subject) == (2, "732829320", f"envol.{AV}.staff.company.registered")
    incoming = parse_event(row.payload, row.subject)  # the event the service will read
    assert incoming.envelope.id == row.event_id and incoming.envelope.subject == "732829320"
    data = json.loads(row.payload)["data"]
    assert data == {"company_id": "732829320", "legal_name": "Figeac Usinage", "region": "Occitanie",
                    "clusters": [AV], "staff_awu": 38.5, "turnover_cents": 640_000_000,
                    "balance_sheet_cents": 410_000_050, "accounts_year": 2025, "holdings": [],
                    "contact": None}


def test_commas_windows_1252_and_a_siret_are_accepted() -> None:
    raw = ("siret,legal_name,region,staff_awu,turnover_eur,balance_sheet_eur,accounts_year\n"
           '"732 829 320 00074",Société Générale d\'Usinage,Occitanie,"12,5",1000000,900000,2024\n'
           ).encode("cp1252")
    [row] = parse(decode(raw), AV, at=AT).rows
    assert row.siren == "732829320"
    assert json.loads(row.payload)["data"]["legal_name"] == "Société Générale d'Usinage"


def test_refused_rows_say_their_spreadsheet_row_and_why() -> None:
    text = "\n".join([
        HEADER,
        "732829320;Good;Occitanie;10;1000;1000;2025",
        "123456789;Bad check digit;Occitanie;10;1000;1000;2025",
        "",  # blank rows are skipped, but counted as rows of the sheet
        '552032534;"Two\nlines";Occitanie;ten;1000;1000;2025',
        "542051180;Too old;Occitanie;10;1000;1000;1850",
        "552100554;Short row;Occitanie;10",
        "732829320;Good;Occitanie;10;1000;1000;2025",
        "383474814;;Occitanie;10;1000;1000;2025",
    ])
    parsed = parse(text, AV, at=AT)
    assert parsed.total == 7 and [row.line for row in parsed.rows] == [2]
    reasons = {refusal.line: refusal.reason for refusal in parsed.refused}
    assert "invalid SIREN '123456789'" in reasons[3]
    assert reasons[5] == "staff_awu: 'ten' is not a number"
    assert reasons[7].startswith("accounts_year:")
    assert reasons[8] == "4 fields, the header has 7"
    assert reasons[9] == "the same registration as row 2"
    assert reasons[10].startswith("legal_name:")
    assert {refusal.company for refusal in parsed.refused} >= {"123456789", "552032534"}


def test_the_same_registration_gets_the_same_id_however_it_is_written() -> None:
    first = parse(f"{HEADER}\n732 829 320;A;Occitanie;38,5;6 400 000;1 000;2025", AV, at=AT).rows[0]
    again = parse(f"{HEADER.replace(';', ',')}\n732829320,A,Occitanie,38.5,6400000,1000,2025", AV,
                  at=datetime(2027, 1, 1, tzinfo=UTC)).rows[0]
    changed = parse(f"{HEADER}\n732829320;A;Occitanie;38,5;6 400 001;1 000;2025", AV, at=AT).rows[0]
    other_cluster = parse(f"{HEADER}\n732829320;A;Occitanie;38,5;6 400 000;1 000;2025", "pegase",
                          at=AT).rows[0]
    assert first.event_id == again.event_id
    assert len({first.event_id, changed.event_id, other_cluster.event_id}) == 3


@pytest.mark.parametrize(("text", "message"), [
    ("", "empty"),
    ("siren;legal_name;region\n732829320;A;Occitanie", "missing column(s): staff_awu"),
    ("legal_name;region;staff_awu;turnover_eur;balance_sheet_eur;accounts_year\n", "siren or siret"),
])
def test_a_file_without_the_columns_is_refused_as_a_whole(text: str, message: str) -> None:
    with pytest.raises(ImportFileError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse(text, AV)
