"""The report as one self-contained HTML page: inline CSS and SVG, nothing fetched.

A Content-Security-Policy forbids any load at all (``default-src 'none'``), so a stray
external reference would show as blocked rather than leak a request from a director's laptop.
The one inline script (allowed by its hash) only counts the charts the browser laid out, for
the end-to-end test; the page reads and prints the same without it.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable
from html import escape
from typing import Any

from .charts import comparison_chart, funnel_chart, timeline_chart
from .sentences import (
    MIN_GROUP,
    comparison_sentence,
    funnel_sentence,
    timeline_sentence,
    warnings,
)
from .texts import (
    CONVERSION_LABELS,
    CONVERSIONS,
    FUNNEL_STAGES,
    LANGS,
    STAGE_LABELS,
    count,
    day,
    label,
    money,
    num,
    number,
    percent,
)

CLUSTER_NAMES = {"pegase": "Pégase", "aerospace-valley": "Aerospace Valley", "astech": "ASTech"}

STYLE = """
@page { size: A4; margin: 14mm 12mm; }
* { box-sizing: border-box; }
body { font-family: "DejaVu Sans", "Liberation Sans", Arial, sans-serif; color: #1d2733; margin: 0;
  background: #fff; line-height: 1.45; font-size: 14px; }
main { max-width: 820px; margin: 0 auto; padding: 24px; }
h1 { font-size: 24px; margin: 0 0 4px; }
h2 { font-size: 19px; margin: 32px 0 8px; border-bottom: 2px solid #1f5fa8; padding-bottom: 3px; }
h3 { font-size: 15px; margin: 20px 0 6px; }
h4 { font-size: 13px; margin: 14px 0 2px; color: #5b6675; }
.meta { color: #5b6675; margin: 0; }
figure { margin: 10px 0 18px; break-inside: avoid; page-break-inside: avoid; }
svg.chart { display: block; width: 100%; height: auto; max-width: 720px; }
figcaption { margin-top: 4px; font-style: italic; }
.warning { background: #fff4e0; border-left: 4px solid #d9822b; padding: 4px 8px; margin: 4px 0;
  break-inside: avoid; page-break-inside: avoid; }
table { border-collapse: collapse; width: 100%; margin: 6px 0 16px; font-size: 12px;
  break-inside: avoid; page-break-inside: avoid; }
caption { text-align: left; font-weight: bold; padding: 2px 0; }
th, td { border: 1px solid #d5dbe3; padding: 3px 5px; text-align: right; }
th:first-child, td:first-child { text-align: left; }
thead th { background: #eef2f7; }
tr { break-inside: avoid; page-break-inside: avoid; }
footer { margin-top: 32px; color: #5b6675; font-size: 12px; }
@media print {
  body { font-size: 10pt; }
  main { max-width: none; padding: 0; }
  h2, h3, h4 { break-after: avoid; page-break-after: avoid; }
  table { font-size: 7.5pt; }
  .warning { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
  svg.chart { max-width: 100%; }
}
"""
# Counts the charts the browser laid out (non-zero size), for tests/e2e/test_report_chromium.py.
SCRIPT = ("(function(){var s=document.querySelectorAll('figure svg.chart'),n=0;"
          "for(var i=0;i<s.length;i++){var b=s[i].getBoundingClientRect();if(b.width>0&&b.height>0)n++;}"
          "document.documentElement.setAttribute('data-charts-rendered',String(n));})();")
SCRIPT_HASH = base64.b64encode(hashlib.sha256(SCRIPT.encode()).digest()).decode()
CSP = (f"default-src 'none'; style-src 'unsafe-inline'; script-src 'sha256-{SCRIPT_HASH}'; "
       "base-uri 'none'; form-action 'none'")


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _name(programme: dict[str, Any]) -> str:
    code, title = str(programme.get("programme", "")), programme.get("title")
    return f"{title} ({code})" if isinstance(title, str) and title and title != code else code


def _figure(svg: str, sentence: str) -> str:
    return f'<figure>{svg}<figcaption class="sentence">{escape(sentence)}</figcaption></figure>'


def _warnings(items: list[str], lang: str) -> str:
    return "".join(f'<p class="warning"><strong>{escape(label(lang, "warning"))}</strong>{escape(text)}</p>'
                   for text in items)


def funnel_totals(programme: dict[str, Any]) -> dict[str, int]:
    cohorts = _dicts(programme.get("cohorts"))
    return {stage: sum(count((c.get("funnel") or {}).get(stage)) for c in cohorts) for stage in FUNNEL_STAGES}


def _funnel_section(programmes: list[dict[str, Any]], lang: str) -> str:
    parts = [f'<section id="funnel"><h2>{escape(label(lang, "funnel_title"))}</h2>']
    for programme in programmes:
        name, kind = _name(programme), str(programme.get("kind", ""))
        parts.append(f"<h3>{escape(name)}</h3>")
        cohorts = _dicts(programme.get("cohorts"))
        if not cohorts:
            parts.append(f"<p>{escape(label(lang, 'no_cohort'))}</p>")
            continue
        totals = funnel_totals(programme)
        parts.append(_figure(funnel_chart(totals, lang, name),
                             funnel_sentence(name, kind, totals, len(cohorts), lang)))
    return "".join(parts) + "</section>"


def _cohort_section(programmes: list[dict[str, Any]], lang: str, section_id: str, heading: str,
                    items_key: str, missing: str,
                    render: Callable[[dict[str, Any], dict[str, Any], list[dict[str, Any]], str], list[str]],
                    ) -> str:
    """One figure per cohort of each programme, under the programme's name; a line instead
    where a cohort has nothing yet (`missing`: the label saying so)."""
    parts = [f'<section id="{section_id}"><h2>{escape(label(lang, heading))}</h2>']
    for programme in programmes:
        parts.append(f"<h3>{escape(_name(programme))}</h3>")
        cohorts = _dicts(programme.get("cohorts"))
        if not cohorts:
            parts.append(f"<p>{escape(label(lang, 'no_cohort'))}</p>")
        for cohort in cohorts:
            name = str(cohort.get("cohort", ""))
            items = _dicts(cohort.get(items_key))
            if not items:
                parts.append(f"<p>{escape(label(lang, missing, cohort=name))}</p>")
                continue
            title = f"{label(lang, 'cohort')} {name}"
            parts.append(f"<h4>{escape(title)}</h4>")
            parts += render(programme, cohort, items, title)
    return "".join(parts) + "</section>"


def _timeline_section(programmes: list[dict[str, Any]], lang: str) -> str:
    def render(programme: dict[str, Any], cohort: dict[str, Any], timeline: list[dict[str, Any]],
               title: str) -> list[str]:
        kind = str(programme.get("kind", ""))
        return [_figure(timeline_chart(timeline, kind, lang, title), timeline_sentence(cohort, kind, lang))]

    return _cohort_section(programmes, lang, "over-time", "time_title", "timeline", "no_month", render)


def _comparison_section(programmes: list[dict[str, Any]], lang: str) -> str:
    def render(_programme: dict[str, Any], cohort: dict[str, Any], checkpoints: list[dict[str, Any]],
               title: str) -> list[str]:
        return [_figure(comparison_chart(checkpoints, lang, title, MIN_GROUP),
                        comparison_sentence(cohort, lang)),
                _warnings([text for c in checkpoints for text in warnings(c, lang)], lang)]

    return _cohort_section(programmes, lang, "comparison", "compare_title", "checkpoints", "no_checkpoint",
                           render)


def _row(cells: list[str]) -> str:
    return "<tr>" + "".join(f"<td>{escape(cell)}</td>" for cell in cells) + "</tr>"


def _table(caption: str, heads: list[str], rows: list[list[str]]) -> str:
    head = "".join(f'<th scope="col">{escape(text)}</th>' for text in heads)
    return (f"<table><caption>{escape(caption)}</caption><thead><tr>{head}</tr></thead><tbody>"
            + "".join(_row(cells) for cells in rows) + "</tbody></table>")


def _figures_section(programmes: list[dict[str, Any]], lang: str) -> str:
    parts = [f'<section id="figures"><h2>{escape(label(lang, "table_title"))}</h2>']
    for programme in programmes:
        name, kind = _name(programme), str(programme.get("kind", ""))
        cohorts = _dicts(programme.get("cohorts"))
        parts.append(f"<h3>{escape(name)}</h3>")
        if not cohorts:
            parts.append(f"<p>{escape(label(lang, 'no_cohort'))}</p>")
            continue
        cohort_head = label(lang, "cohort")
        enrolment = [[str(c.get("cohort", "")),
                      *(str(count((c.get("funnel") or {}).get(s))) for s in FUNNEL_STAGES),
                      *(percent((c.get("conversion") or {}).get(r), lang) for r in CONVERSIONS)]
                     for c in cohorts]
        parts.append(_table(f"{label(lang, 'enrolment_table')} — {name}",
                            [cohort_head, *(STAGE_LABELS[lang][s] for s in FUNNEL_STAGES),
                             *(CONVERSION_LABELS[lang][r] for r in CONVERSIONS)], enrolment))
        outcomes = []
        for c in cohorts:
            money_, first = c.get("money") or {}, c.get("first_outcome") or {}
            days = num(first.get("median_days"))
            outcomes.append([str(c.get("cohort", "")), str(count(c.get("participants"))),
                             str(count(c.get("comparison"))), str(count(money_.get("smes"))),
                             money(money_.get("total_cents"), lang), money(money_.get("median_cents"), lang),
                             money(money_.get("per_sme_cents"), lang), percent(first.get("share"), lang),
                             number(days, lang) if days is not None else "–"])
        smes_head = label(lang, "smes_with_money_export" if kind == "export" else "smes_with_money_financing")
        parts.append(_table(f"{label(lang, 'outcome_table')} — {name}",
                            [cohort_head, label(lang, "participants"), label(lang, "comparison"), smes_head,
                             label(lang, "money_total"), label(lang, "money_median"),
                             label(lang, "money_per_sme"), label(lang, "first_share"),
                             label(lang, "median_days")], outcomes))
    return "".join(parts) + "</section>"


def expected_charts(answer: dict[str, Any]) -> int:
    """How many charts the page draws: one funnel per programme with cohorts, one timeline per
    cohort with months, one comparison per cohort with checkpoints."""
    total = 0
    for programme in _dicts(answer.get("programmes")):
        cohorts = _dicts(programme.get("cohorts"))
        total += bool(cohorts) + sum(bool(_dicts(c.get("timeline"))) + bool(_dicts(c.get("checkpoints")))
                                     for c in cohorts)
    return total


def render_html(answer: dict[str, Any], lang: str) -> str:
    """The whole page for one language ("fr" or "en"), as a string; pure (no I/O)."""
    if lang not in LANGS:
        raise ValueError(f"unknown language {lang!r}: one of {', '.join(LANGS)}")
    cluster_id = str(answer.get("cluster", ""))
    cluster = CLUSTER_NAMES.get(cluster_id, cluster_id)
    period = answer.get("period") or {}
    period_text = label(lang, "period_from", start=day(period.get("from"), lang))
    period_text += (label(lang, "period_to", end=day(period["to"], lang)) if period.get("to")
                    else label(lang, "period_open"))
    title = f"{label(lang, 'title')} — {cluster}"
    programmes = _dicts(answer.get("programmes"))
    if programmes:
        body = (_funnel_section(programmes, lang) + _timeline_section(programmes, lang)
                + _comparison_section(programmes, lang) + _figures_section(programmes, lang))
    else:
        body = f'<p class="nothing">{escape(label(lang, "nothing"))}</p>'
    return (
        f'<!DOCTYPE html>\n<html lang="{lang}" data-charts-expected="{expected_charts(answer)}">'
        f'<head><meta charset="utf-8"><meta http-equiv="Content-Security-Policy" content="{CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{STYLE}</style></head>\n<body><main>"
        f"<header><h1>{escape(title)}</h1><p class=\"meta\">{escape(period_text)}</p>"
        f"<p class=\"meta\">{escape(label(lang, 'as_of', day=day(answer.get('as_of'), lang)))}</p></header>"
        f'<section id="how-to-read"><h2>{escape(label(lang, "how_title"))}</h2>'
        f"<p>{escape(label(lang, 'how'))}</p></section>\n{body}\n"
        f"<footer>{escape(label(lang, 'footer', cluster=cluster))}</footer></main>"
        f"<script>{SCRIPT}</script></body></html>\n"
    )
