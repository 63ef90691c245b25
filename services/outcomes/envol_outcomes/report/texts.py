"""Numbers, money, dates and labels in French and English.

Every function here returns plain text: the callers escape it (html.escape) before it goes
into a page, because the labels embed values that come from the query answer.
"""

from __future__ import annotations

import math
import re
from datetime import date
from typing import Any

LANGS = ("fr", "en")
NBSP = "\u00a0"  # no-break space: "1 234 567 €" never breaks inside a figure
MINUS = "\u2212"  # a real minus sign: a hyphen reads as a dash in running text

FUNNEL_STAGES = ("applied", "eligible", "ineligible", "enrolled", "waitlisted", "denied", "withdrawn",
                 "completed")
CONVERSIONS = ("eligible_of_applied", "enrolled_of_eligible", "completed_of_enrolled")

MONTHS = {
    "fr": ("janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août", "septembre",
           "octobre", "novembre", "décembre"),
    "en": ("January", "February", "March", "April", "May", "June", "July", "August", "September",
           "October", "November", "December"),
}

LABELS: dict[str, dict[str, str]] = {
    "en": {
        "title": "Programme effectiveness report",
        "period_from": "Period: from {start}",
        "period_to": " to {end}",
        "period_open": " to date",
        "as_of": "Figures as of {day}.",
        "how_title": "How to read this report",
        "how": ("Each programme is followed from application to outcome. The first charts show how "
                "many SMEs went through each stage of the programme, all cohorts together. The "
                "line charts then follow each cohort month by month after enrolment, up to 36 "
                "months. Last, participants are compared with a comparison group of similar SMEs "
                "that did not take part: the dot is the mean change since the start, the whisker "
                "the interval of plausible values; when the two whiskers overlap widely, the "
                "difference may be chance. Small groups (fewer than 5 SMEs) cannot be compared "
                "and are flagged. Amounts are in euros."),
        "funnel_title": "1. From application to completion, per programme",
        "time_title": "2. Outcomes over time, per cohort",
        "compare_title": "3. Participants against the comparison group",
        "table_title": "4. The figures",
        "nothing": "There is nothing to report for this period: no programme had any application.",
        "no_cohort": "No cohort in this period.",
        "no_month": "Cohort {cohort}: no month of follow-up reached yet.",
        "no_checkpoint": "Cohort {cohort}: no checkpoint reached yet.",
        "financing": "financing",
        "export": "export",
        "participants": "Participants",
        "comparison": "Comparison group",
        "money_axis_financing": "Money obtained (cumulative)",
        "money_axis_export": "Contracted abroad (cumulative)",
        "share_axis": "SMEs with a first contract abroad",
        "months_axis": "Months since enrolment",
        "cohort": "Cohort",
        "enrolment_table": "Enrolment",
        "outcome_table": "Outcomes",
        "money_total": "Total",
        "money_median": "Median",
        "money_per_sme": "Per SME",
        "smes_with_money_financing": "SMEs financed",
        "smes_with_money_export": "SMEs with contracts",
        "first_share": "Share with a first outcome",
        "median_days": "Median days",
        "warning": "Caution: ",
        "small_groups": ("too few SMEs to compare at {checkpoint}: {p} participants and {c} in the "
                         "comparison group (at least {minimum} in each are needed)."),
        "service_note": "{text}",
        "footer": "Envol — report generated from the outcomes service of cluster {cluster}.",
    },
    "fr": {
        "title": "Rapport d'efficacité des programmes",
        "period_from": "Période : du {start}",
        "period_to": " au {end}",
        "period_open": " à ce jour",
        "as_of": "Chiffres arrêtés au {day}.",
        "how_title": "Comment lire ce rapport",
        "how": ("Chaque programme est suivi de la candidature au résultat. Les premiers graphiques "
                "montrent combien de PME sont passées par chaque étape du programme, toutes cohortes "
                "confondues. Les courbes suivent ensuite chaque cohorte mois par mois après "
                "l'admission, jusqu'à 36 mois. Enfin, les participantes sont comparées à un groupe "
                "témoin de PME semblables qui n'ont pas suivi le programme : le point est "
                "l'évolution moyenne depuis le départ, la barre l'intervalle des valeurs "
                "plausibles ; quand les deux barres se chevauchent largement, l'écart peut être dû "
                "au hasard. Les petits groupes (moins de 5 PME) ne se comparent pas et sont "
                "signalés. Les montants sont en euros."),
        "funnel_title": "1. De la candidature à la fin du programme",
        "time_title": "2. Les résultats dans le temps, par cohorte",
        "compare_title": "3. Les participantes face au groupe témoin",
        "table_title": "4. Les chiffres",
        "nothing": "Rien à présenter pour cette période : aucun programme n'a reçu de candidature.",
        "no_cohort": "Aucune cohorte sur cette période.",
        "no_month": "Cohorte {cohort} : aucun mois de suivi écoulé pour l'instant.",
        "no_checkpoint": "Cohorte {cohort} : aucun point d'étape atteint pour l'instant.",
        "financing": "financement",
        "export": "export",
        "participants": "Participantes",
        "comparison": "Groupe témoin",
        "money_axis_financing": "Fonds obtenus (cumul)",
        "money_axis_export": "Contrats à l'export (cumul)",
        "share_axis": "PME ayant signé un premier contrat à l'export",
        "months_axis": "Mois depuis l'admission",
        "cohort": "Cohorte",
        "enrolment_table": "Parcours",
        "outcome_table": "Résultats",
        "money_total": "Total",
        "money_median": "Médiane",
        "money_per_sme": "Par PME",
        "smes_with_money_financing": "PME financées",
        "smes_with_money_export": "PME avec contrats",
        "first_share": "Part avec un premier résultat",
        "median_days": "Délai médian (jours)",
        "warning": "Attention : ",
        "small_groups": ("trop peu de PME pour comparer au {checkpoint} : {p} participantes et {c} "
                         "dans le groupe témoin (il en faut au moins {minimum} de chaque côté)."),
        "service_note": "le service signale : « {text} »",
        "footer": "Envol — rapport produit à partir du service des résultats du pôle {cluster}.",
    },
}

STAGE_LABELS = {
    "en": {"applied": "Applied", "eligible": "Eligible", "ineligible": "Ineligible", "enrolled": "Enrolled",
           "waitlisted": "Waitlisted", "denied": "Denied", "withdrawn": "Withdrawn",
           "completed": "Completed"},
    "fr": {"applied": "Candidatures", "eligible": "Éligibles", "ineligible": "Inéligibles",
           "enrolled": "Admises", "waitlisted": "En attente", "denied": "Refusées", "withdrawn": "Retirées",
           "completed": "Terminées"},
}
CONVERSION_LABELS = {
    "en": {"eligible_of_applied": "Eligible / applied", "enrolled_of_eligible": "Enrolled / eligible",
           "completed_of_enrolled": "Completed / enrolled"},
    "fr": {"eligible_of_applied": "Éligibles / candidatures", "enrolled_of_eligible": "Admises / éligibles",
           "completed_of_enrolled": "Terminées / admises"},
}
MEASURES = {
    "en": {"raised_to_date_cents": "money raised", "export_turnover_cents": "turnover abroad"},
    "fr": {"raised_to_date_cents": "fonds levés", "export_turnover_cents": "chiffre d'affaires à l'export"},
}


def label(lang: str, key: str, **values: Any) -> str:
    return LABELS[lang][key].format(**values)


def num(value: Any) -> float | None:
    """A finite number from the answer, else None: a string or a bool is not a figure."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def count(value: Any) -> int:
    """A count from the answer; anything that is not one counts as 0 (drawn as nothing)."""
    number = num(value)
    return int(number) if number is not None and number > 0 else 0


def _grouped(value: int, separator: str) -> str:
    return f"{value:,}".replace(",", separator)


def number(value: float, lang: str, decimals: int = 0) -> str:
    text = f"{abs(value):,.{decimals}f}"
    if lang == "fr":  # 1 234,5: swap the separators through a placeholder
        text = text.replace(",", "\0").replace(".", ",").replace("\0", NBSP)
    rounded_to_zero = round(abs(value), decimals) == 0
    return (MINUS if value < 0 and not rounded_to_zero else "") + text


def money(cents: Any, lang: str) -> str:
    """Whole euros: fr ``1 234 567 €``, en ``€1,234,567``; ``–`` when unknown."""
    value = num(cents)
    if value is None:
        return "–"
    euros = round(value / 100)
    sign = MINUS if euros < 0 else ""
    digits = _grouped(abs(euros), NBSP if lang == "fr" else ",")
    return f"{sign}{digits}{NBSP}€" if lang == "fr" else f"{sign}€{digits}"


def money_short(cents: Any, lang: str) -> str:
    """Millions and thousands in short (``€1.2m``, ``1,2 M€``), for sentences and axes."""
    value = num(cents)
    if value is None:
        return "–"
    euros = value / 100
    # From 10 000 € on in thousands (below, the whole figure reads as easily).
    for threshold, size, en_suffix, fr_suffix in ((1_000_000, 1_000_000, "m", "M"), (10_000, 1000, "k", "k")):
        if abs(euros) >= threshold:
            scaled = euros / size
            decimals = 0 if abs(scaled) >= 100 or scaled == round(scaled) else 1
            figure = number(scaled, lang, decimals)
            if lang == "fr":
                return f"{figure}{NBSP}{fr_suffix}€"
            return f"{figure[:1] if figure.startswith(MINUS) else ''}€{figure.lstrip(MINUS)}{en_suffix}"
    return money(cents, lang)


def percent(share: Any, lang: str) -> str:
    value = num(share)
    if value is None:
        return "–"
    figure = number(value * 100, lang, 0)
    return f"{figure}{NBSP}%" if lang == "fr" else f"{figure}%"


def day(iso: Any, lang: str) -> str:
    """``1 December 2026`` / ``1er décembre 2026``; the text as given when not a date."""
    try:
        when = date.fromisoformat(str(iso))
    except ValueError:
        return str(iso)
    first = "er" if lang == "fr" and when.day == 1 else ""
    return f"{when.day}{first} {MONTHS[lang][when.month - 1]} {when.year}"


def checkpoint_name(checkpoint: Any, lang: str) -> str:
    found = re.fullmatch(r"month_(\d+)", str(checkpoint))
    if not found:
        return str(checkpoint)
    return f"{'mois' if lang == 'fr' else 'month'} {found.group(1)}"


def measure_name(measure: Any, lang: str) -> str:
    return MEASURES[lang].get(str(measure), str(measure))


def plural(n: int, one: str, many: str) -> str:
    return one if n == 1 else many
