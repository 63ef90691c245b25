"""The directors' report (envol_outcomes.report): the page, the CSV and the command.

The fixture (data/outcomes_report.json) is a hand-made answer of the outcomes service for
Pégase: a financing programme and an export programme, three cohorts each; PG-VIE-RELAY-2026
has groups too small to compare (and the service's warning), PG-GROWTH-CONTRACT-2026 has only
nulls and nothing to draw, PG-VIE-RELAY-2025 has a checkpoint with no comparison figures.
"""

from __future__ import annotations

import asyncio
import copy
import csv
import io
import json
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import nats
import pytest

from envol_outcomes.report import render_csv, render_html
from envol_outcomes.report.command import login, main, parser
from envol_outcomes.report.texts import money, money_short, percent
from envol_shared.nats_server import NatsServer

FIXTURE = Path(__file__).parent / "data" / "outcomes_report.json"
NBSP = "\u00a0"
# 2 funnels + a timeline for the 5 cohorts with months + a comparison for the 5 with checkpoints.
CHARTS = 12
VOID = {"meta", "br", "hr", "img", "input", "link", "col", "area", "base", "source", "wbr",
        "circle", "rect", "line", "polyline", "path"}  # SVG shapes here are all self-closed


def answer() -> dict[str, Any]:
    return json.loads(FIXTURE.read_text())


class Page(HTMLParser):
    """Checks that every element closes in order, and keeps what the tests look at."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.open: list[str] = []
        self.events: list[tuple[str, str]] = []  # ("svg", "") then ("sentence", its text)
        self.caption: list[str] | None = None
        self.warnings: list[str] = []
        self.warning: list[str] | None = None
        self.text: list[str] = []
        self.scripts = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        classes = dict(attrs).get("class") or ""
        if tag == "svg":
            self.events.append(("svg", ""))
        if tag == "figcaption" and "sentence" in classes:
            self.caption = []
        if tag == "p" and "warning" in classes:
            self.warning = []
        self.scripts += tag == "script"
        if tag not in VOID:
            self.open.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        pass  # <circle .../>: nothing to close

    def handle_endtag(self, tag: str) -> None:
        if tag in VOID:
            return
        assert self.open and self.open[-1] == tag, f"</{tag}> closes <{self.open[-1:]}>"
        self.open.pop()
        if tag == "figcaption" and self.caption is not None:
            self.events.append(("sentence", "".join(self.caption).strip()))
            self.caption = None
        if tag == "p" and self.warning is not None:
            self.warnings.append("".join(self.warning).strip())
            self.warning = None

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        for collecting in (self.caption, self.warning):
            if collecting is not None:
                collecting.append(data)


def parse(page: str) -> Page:
    parsed = Page()
    parsed.feed(page)
    parsed.close()
    assert parsed.open == [], f"never closed: {parsed.open}"
    return parsed


def sentences(parsed: Page) -> list[str]:
    return [text for kind, text in parsed.events if kind == "sentence"]


@pytest.mark.parametrize("lang", ["fr", "en"])
def test_the_page_parses_and_every_chart_is_followed_by_its_sentence(lang: str) -> None:
    page = render_html(answer(), lang)
    parsed = parse(page)
    assert page.count("<svg") == CHARTS
    assert f'data-charts-expected="{CHARTS}"' in page
    kinds = [kind for kind, _ in parsed.events]
    assert kinds == ["svg", "sentence"] * CHARTS  # each chart, then its sentence, nothing between
    for text in sentences(parsed):
        assert len(text) > 40 and text.endswith("."), text
    assert f'<html lang="{lang}"' in page
    # Order of the sections: title, how to read, funnel, over time, comparison, figures.
    positions = [page.index(marker) for marker in
                 ("<h1>", 'id="how-to-read"', 'id="funnel"', 'id="over-time"', 'id="comparison"',
                  'id="figures"')]
    assert positions == sorted(positions)


def test_the_sentences_say_the_figures_in_english() -> None:
    said = sentences(parse(render_html(answer(), "en")))
    assert ("In cohort PG-GROWTH-CONTRACT-2025, 6 of 8 participants obtained money, €1.2m in all, "
            "a median of 143 days after enrolment.") in said
    assert said[0].startswith("Across its 3 cohorts, 50 SMEs applied to Contrat de croissance PME")
    assert "20 enrolled and 14 completed the programme (70% of those enrolled)" in said[0]
    assert any("PG-VIE-RELAY-2024, 6 of 10 participants signed a first contract abroad (60%)" in s
               for s in said)
    assert any(s.startswith("At month 24, in cohort PG-GROWTH-CONTRACT-2024") and "€215k" in s
               and "a difference of €161k (between €58k and €264k)." in s for s in said)
    # An interval that includes zero is said to be possibly chance.
    assert any("PG-GROWTH-CONTRACT-2025" in s and "may be chance" in s for s in said)
    assert any("PG-VIE-RELAY-2026, the groups are still too small to compare" in s for s in said)


def test_the_french_page_speaks_french_with_french_figures() -> None:
    page = render_html(answer(), "fr")
    parsed = parse(page)
    said = sentences(parsed)
    assert (f"Dans la cohorte PG-GROWTH-CONTRACT-2025, 6 participantes sur 8 ont obtenu des fonds, "
            f"1,2{NBSP}M€ au total, en médiane 143 jours après l'admission.") in said
    assert any(f"1 participante sur 2 a signé un premier contrat à l'export (50{NBSP}%)" in s for s in said)
    text = "".join(parsed.text)
    assert f"1{NBSP}200{NBSP}000{NBSP}€" in text  # the table: growth contracts 2025, total
    assert f"2{NBSP}650{NBSP}000{NBSP}€" in text
    assert f"75{NBSP}%" in text
    assert "€1,200,000" not in text and "1,200,000" not in text
    assert "1er janvier 2024" in text and "1er décembre 2026" in text
    english = "".join(parse(render_html(answer(), "en")).text)
    assert "€1,200,000" in english and "75%" in english and "1 January 2024" in english


def test_money_and_shares_are_written_the_way_each_language_writes_them() -> None:
    assert money(123_456_789, "fr") == f"1{NBSP}234{NBSP}568{NBSP}€"
    assert money(123_456_789, "en") == "€1,234,568"
    assert money(-500_000, "en") == "\u2212€5,000"
    assert money(None, "fr") == "–" and money("12", "en") == "–"
    assert money_short(120_000_000, "en") == "€1.2m" and money_short(120_000_000, "fr") == f"1,2{NBSP}M€"
    assert money_short(2_150_000, "en") == "€21.5k" and money_short(950_000, "fr") == f"9{NBSP}500{NBSP}€"
    assert percent(0.533, "fr") == f"53{NBSP}%" and percent(0.533, "en") == "53%"


@pytest.mark.parametrize("lang", ["fr", "en"])
def test_the_page_loads_nothing_from_outside(lang: str) -> None:
    page = render_html(answer(), lang)
    assert "http://" not in page and "https://" not in page
    assert "@import" not in page and "url(" not in page
    assert not re.search(r"<(link|img|iframe|object|embed)\b", page)
    assert not re.search(r"\b(src|href)\s*=", page)
    assert "default-src 'none'" in page  # and the browser refuses any load anyway
    assert "@media print" in page and "size: A4" in page and "break-inside: avoid" in page


def test_warnings_are_said_in_the_reader_language() -> None:
    fr, en = (parse(render_html(answer(), lang)) for lang in ("fr", "en"))
    assert fr.warnings == ["Attention : trop peu de PME pour comparer au mois 6 : 2 participantes et 1 "
                           "dans le groupe témoin (il en faut au moins 5 de chaque côté)."]
    assert "too few SMEs" not in "".join(fr.text)  # the service's English text is not shown in French
    assert en.warnings == ["Caution: too few SMEs to compare at month 6: 2 participants and 1 in the "
                           "comparison group (at least 5 in each are needed)."]


def test_a_small_group_is_flagged_even_when_the_service_says_nothing_and_other_warnings_are_kept() -> None:
    data = answer()
    checkpoint = data["programmes"][0]["cohorts"][1]["checkpoints"][0]  # growth contracts 2025, month 6
    checkpoint["comparison"]["n"] = 3
    data["programmes"][0]["cohorts"][0]["checkpoints"][0]["warning"] = "baseline figures partly estimated"
    fr, en = (parse(render_html(data, lang)) for lang in ("fr", "en"))
    assert any("3 dans le groupe témoin" in w for w in fr.warnings)
    assert any("2 participants and 1 in the comparison group" in w for w in en.warnings)
    assert any("6 participants and 3 in the comparison group" in w for w in en.warnings)
    assert "Caution: baseline figures partly estimated" in en.warnings
    assert "Attention : le service signale : « baseline figures partly estimated »" in fr.warnings


def test_hostile_values_are_escaped_everywhere() -> None:
    data = answer()
    data["cluster"] = "<b>pegase</b>"
    data["programmes"][0]["title"] = "<script>alert(1)</script>"
    data["programmes"][1]["cohorts"][0]["cohort"] = '"><img src=x onerror=alert(2)>'
    data["programmes"][1]["cohorts"][2]["checkpoints"][0]["warning"] = "<i>odd</i>"
    for lang in ("fr", "en"):
        page = render_html(data, lang)
        parsed = parse(page)
        assert "<script>alert(1)" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
        assert "<img" not in page and "<b>pegase" not in page and "<i>odd" not in page
        assert parsed.scripts == 1  # ours only
        assert "<script>alert(1)</script>" in "".join(parsed.text)  # shown as text
    rows = list(csv.DictReader(io.StringIO(render_csv({**data, "programmes": [
        {**data["programmes"][0], "title": "=HYPERLINK(\"x\")"}]}))))
    assert rows[0]["title"] == "'=HYPERLINK(\"x\")"  # a spreadsheet shows it, never runs it


def test_the_csv_has_one_row_per_cohort_with_the_figures() -> None:
    rows = list(csv.DictReader(io.StringIO(render_csv(answer()))))
    assert [(r["programme"], r["kind"], r["cohort"]) for r in rows] == [
        ("PG-GROWTH-CONTRACT", "financing", f"PG-GROWTH-CONTRACT-{y}") for y in (2024, 2025, 2026)
    ] + [("PG-VIE-RELAY", "export", f"PG-VIE-RELAY-{y}") for y in (2024, 2025, 2026)]
    growth = rows[1]
    assert {k: growth[k] for k in ("cluster", "applied", "eligible", "enrolled", "completed",
                                   "enrolled_of_eligible", "participants", "comparison")} == {
        "cluster": "pegase", "applied": "20", "eligible": "15", "enrolled": "8", "completed": "5",
        "enrolled_of_eligible": "0.533", "participants": "8", "comparison": "7"}
    assert (growth["money_total_eur"], growth["money_median_eur"], growth["money_per_sme_eur"]) == (
        "1200000.00", "150000.00", "150000.00")
    assert (growth["first_outcome_smes"], growth["first_outcome_share"],
            growth["first_outcome_median_days"]) == ("6", "0.75", "143")
    assert [growth[f"month_6_{k}"] for k in ("participants_n", "participants_mean_change_eur",
                                             "participants_low_eur", "participants_high_eur", "comparison_n",
                                             "comparison_mean_change_eur", "difference_eur",
                                             "difference_low_eur", "difference_high_eur", "warning")] == [
        "6", "50000.00", "20000.00", "80000.00", "5", "10000.00", "40000.00", "5000.00", "75000.00", ""]
    assert growth["month_24_participants_n"] == ""  # not reached yet
    nulls = rows[2]
    assert nulls["enrolled_of_eligible"] == "" and nulls["money_median_eur"] == ""
    assert nulls["first_outcome_median_days"] == "" and nulls["month_6_participants_n"] == ""
    assert rows[4]["month_12_comparison_mean_change_eur"] == "" and rows[4]["month_12_difference_eur"] == ""
    assert rows[5]["month_6_warning"].startswith("too few SMEs to compare at month 6: 2 participants and 1")


@pytest.mark.parametrize("lang", ["fr", "en"])
def test_an_empty_answer_is_still_a_page_that_says_so(lang: str) -> None:
    empty = {"cluster": "astech", "period": {"from": "2026-01-01", "to": "2026-12-31"}, "as_of": "2026-12-01",
             "programmes": []}
    parsed = parse(render_html(empty, lang))
    text = "".join(parsed.text)
    assert "<svg" not in render_html(empty, lang)
    nothing = "Rien à présenter pour cette période" if lang == "fr" else "nothing to report for this period"
    assert nothing in text
    assert ("au 31 décembre 2026" if lang == "fr" else "to 31 December 2026") in text
    assert render_csv(empty).count("\n") == 1  # the header only
    no_cohorts = copy.deepcopy(empty)
    no_cohorts["programmes"] = [{"programme": "AS-CCI-INTERNATIONAL", "kind": "export", "cohorts": []}]
    page = render_html(no_cohorts, lang)
    assert "<svg" not in page and "AS-CCI-INTERNATIONAL" in page
    assert ("Aucune cohorte" if lang == "fr" else "No cohort in this period") in page


def test_the_command_uses_the_local_stack_as_the_cluster_staff(tmp_path: Path) -> None:
    credentials = tmp_path / "nats-credentials.json"
    credentials.write_text(json.dumps({"pegase-staff": "s3cret", "astech-staff": "other"}))
    (tmp_path / "stack.json").write_text(json.dumps({"nats_url": "nats://127.0.0.1:14222",
                                                     "nats_credentials": str(credentials)}))
    args = parser().parse_args(["--cluster", "pegase", "--from", "2024-01-01", "--data-dir", str(tmp_path)])
    where = login(args)
    assert (where.url, where.user, where.password, where.inbox_prefix) == (
        "nats://127.0.0.1:14222", "pegase-staff", "s3cret", "_INBOX_pegase-staff")
    with pytest.raises(SystemExit):
        parser().parse_args(["--cluster", "pegase", "--from", "2024-13-01"])


async def test_the_command_asks_the_service_and_writes_the_files(nats_server: NatsServer, tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    requests: list[dict[str, Any]] = []
    client = await nats.connect(nats_server.url)

    async def respond(msg: Any) -> None:
        requests.append(json.loads(msg.data))
        reply = answer() if requests[-1]["to"] is None else {"error": "no such period"}
        await msg.respond(json.dumps(reply).encode())

    await client.subscribe("envol-query.pegase.outcomes.report", cb=respond)
    await client.flush()
    try:
        base = ["--cluster", "pegase", "--from", "2024-01-01", "--nats-url", nats_server.url,
                "--out", str(tmp_path / "reports")]
        assert await asyncio.to_thread(main, base) == 0
        written = capsys.readouterr().out.split()
        stem = "envol-pegase-2024-01-01"
        assert [Path(p).name for p in written] == [f"{stem}-fr.html", f"{stem}-en.html", f"{stem}.csv"]
        french = await asyncio.to_thread(Path(written[0]).read_text)
        assert french.count("<svg") == CHARTS
        assert requests == [{"from": "2024-01-01", "to": None}]
        assert await asyncio.to_thread(main, [*base, "--to", "2024-12-31", "--lang", "en"]) == 1
        assert "no such period" in capsys.readouterr().err
        assert requests[-1] == {"from": "2024-01-01", "to": "2024-12-31"}
    finally:
        await client.close()
