"""The one sentence under each chart, and the warnings, written from the figures.

Plain text, like texts.py: the page escapes it. A director reads these sentences first, so
each one states the figure that matters and never claims more than the data holds.
"""

from __future__ import annotations

import re
from typing import Any

from .texts import (
    LABELS,
    checkpoint_name,
    count,
    measure_name,
    money_short,
    num,
    percent,
    plural,
)

MIN_GROUP = 5  # the service's rule: fewer SMEs than this on either side cannot be compared
# The one warning the service is known to send; recognised to be said again in French.
SMALL_GROUPS = re.compile(r"too few SMEs to compare: (\d+) participant(?:s|\(s\))? and (\d+) in the "
                          r"comparison group \(at least (\d+) in each (?:are|is) needed\)\.?")


def funnel_sentence(programme: str, kind: str, totals: dict[str, int], cohorts: int, lang: str) -> str:
    applied, eligible = totals["applied"], totals["eligible"]
    enrolled, completed = totals["enrolled"], totals["completed"]
    rate = percent(completed / enrolled, lang) if enrolled else None
    if lang == "fr":
        head = (f"Sur {plural(cohorts, 'sa cohorte', f'ses {cohorts} cohortes')}, {applied} PME "
                f"{plural(applied, 'a', 'ont')} candidaté à «\u00a0{programme}\u00a0» : {eligible} "
                f"{plural(eligible, 'était éligible', 'étaient éligibles')}, {enrolled} "
                f"{plural(enrolled, 'a été admise', 'ont été admises')} et {completed} "
                f"{plural(completed, 'a terminé', 'ont terminé')} le programme")
        return head + (f" ({rate} des admises)." if rate else ".")
    head = (f"Across its {plural(cohorts, 'cohort', f'{cohorts} cohorts')}, {applied} "
            f"{plural(applied, 'SME', 'SMEs')} applied to {programme}: {eligible} "
            f"{plural(eligible, 'was', 'were')} eligible, {enrolled} enrolled and {completed} "
            f"completed the programme")
    return head + (f" ({rate} of those enrolled)." if rate else ".")


def timeline_sentence(cohort: dict[str, Any], kind: str, lang: str) -> str:
    name = str(cohort.get("cohort", ""))
    participants = count(cohort.get("participants"))
    money = cohort.get("money") or {}
    first = cohort.get("first_outcome") or {}
    smes = count(first.get("smes") if kind == "export" else money.get("smes"))
    total = money_short(money.get("total_cents"), lang)
    days = num(first.get("median_days"))
    timeline = cohort.get("timeline") or []
    months = max((count(point.get("month")) for point in timeline if isinstance(point, dict)), default=0)
    if not participants:
        return (f"Dans la cohorte {name}, aucune PME n'a encore été admise." if lang == "fr"
                else f"In cohort {name}, no SME has enrolled yet.")
    if lang == "fr":
        if not smes:
            what = "signé de contrat à l'export" if kind == "export" else "obtenu de fonds"
            return (f"Dans la cohorte {name}, aucune des {participants} participantes n'a encore {what} "
                    f"({months} mois de suivi).")
        delay = f", en médiane {round(days)} jours après l'admission" if days is not None else ""
        who = f"{smes} {plural(smes, 'participante', 'participantes')} sur {participants}"
        if kind == "export":
            return (f"Dans la cohorte {name}, {who} {plural(smes, 'a', 'ont')} signé un premier "
                    f"contrat à l'export ({percent(first.get('share'), lang)}){delay} ; les contrats "
                    f"à l'export atteignent {total} au total.")
        return (f"Dans la cohorte {name}, {who} {plural(smes, 'a', 'ont')} obtenu des fonds, "
                f"{total} au total{delay}.")
    if not smes:
        what = "signed a contract abroad" if kind == "export" else "obtained money"
        return (f"In cohort {name}, none of the {participants} participants has {what} yet "
                f"({months} months followed).")
    delay = f", a median of {round(days)} days after enrolment" if days is not None else ""
    if kind == "export":
        return (f"In cohort {name}, {smes} of {participants} participants signed a first contract abroad "
                f"({percent(first.get('share'), lang)}){delay}; contracts abroad total {total}.")
    return f"In cohort {name}, {smes} of {participants} participants obtained money, {total} in all{delay}."


def comparable(checkpoint: dict[str, Any]) -> bool:
    """Both groups big enough and both means known: the only case worth a sentence of figures."""
    sides = [checkpoint.get("participants") or {}, checkpoint.get("comparison") or {}]
    return all(count(side.get("n")) >= MIN_GROUP and num(side.get("mean_change_cents")) is not None
               for side in sides)


def comparison_sentence(cohort: dict[str, Any], lang: str) -> str:
    name = str(cohort.get("cohort", ""))
    checkpoints = [c for c in cohort.get("checkpoints") or [] if isinstance(c, dict)]
    usable = [c for c in checkpoints if comparable(c)]
    if not usable:
        sizes = "; ".join(
            f"{checkpoint_name(c.get('checkpoint'), lang)} : "
            f"{count((c.get('participants') or {}).get('n'))}/{count((c.get('comparison') or {}).get('n'))}"
            if lang == "fr" else
            f"{checkpoint_name(c.get('checkpoint'), lang)}: "
            f"{count((c.get('participants') or {}).get('n'))}/{count((c.get('comparison') or {}).get('n'))}"
            for c in checkpoints)
        if lang == "fr":
            return (f"Dans la cohorte {name}, les groupes sont encore trop petits pour comparer "
                    f"(participantes/témoins : {sizes} ; il en faut au moins {MIN_GROUP} de chaque côté).")
        return (f"In cohort {name}, the groups are still too small to compare (participants/comparison: "
                f"{sizes}; at least {MIN_GROUP} in each are needed).")
    last = usable[-1]  # the latest checkpoint says the most about lasting effects
    when = checkpoint_name(last.get("checkpoint"), lang)
    measure = measure_name(last.get("measure"), lang)
    mine, theirs = last.get("participants") or {}, last.get("comparison") or {}
    difference = last.get("difference") or {}
    interval = _interval(difference.get("interval"))
    estimate = num(difference.get("estimate_cents"))
    if lang == "fr":
        text = (f"Au {when}, dans la cohorte {name}, {measure} : évolution moyenne de "
                f"{money_short(mine.get('mean_change_cents'), lang)} depuis le départ pour les "
                f"participantes (n = {count(mine.get('n'))}), contre "
                f"{money_short(theirs.get('mean_change_cents'), lang)} pour le groupe témoin "
                f"(n = {count(theirs.get('n'))})")
        if estimate is not None:
            text += f", soit un écart de {money_short(estimate, lang)}"
            if interval:
                text += f" (entre {money_short(interval[0], lang)} et {money_short(interval[1], lang)})"
                if interval[0] <= 0 <= interval[1]:
                    text += ", qui peut être dû au hasard car l'intervalle contient zéro"
        return text + "."
    text = (f"At {when}, in cohort {name}, participants' {measure} changed by "
            f"{money_short(mine.get('mean_change_cents'), lang)} on average since the start "
            f"(n = {count(mine.get('n'))}), against {money_short(theirs.get('mean_change_cents'), lang)} "
            f"in the comparison group (n = {count(theirs.get('n'))})")
    if estimate is not None:
        text += f": a difference of {money_short(estimate, lang)}"
        if interval:
            text += f" (between {money_short(interval[0], lang)} and {money_short(interval[1], lang)})"
            if interval[0] <= 0 <= interval[1]:
                text += ", which may be chance as the interval includes zero"
    return text + "."


def _interval(value: Any) -> tuple[float, float] | None:
    if not isinstance(value, list | tuple) or len(value) != 2:
        return None
    low, high = num(value[0]), num(value[1])
    return (low, high) if low is not None and high is not None else None


def warnings(checkpoint: dict[str, Any], lang: str) -> list[str]:
    """What to say before trusting a checkpoint: our own small-groups warning in the reader's
    language whenever a side has fewer than MIN_GROUP SMEs (the service's text is English only),
    and any other warning the service sends, as it is (quoted in French)."""
    said: list[str] = []
    mine = count((checkpoint.get("participants") or {}).get("n"))
    theirs = count((checkpoint.get("comparison") or {}).get("n"))
    service = checkpoint.get("warning")
    service = service.strip() if isinstance(service, str) and service.strip() else None
    known = SMALL_GROUPS.fullmatch(service) if service else None
    minimum = int(known.group(3)) if known else MIN_GROUP
    # No checkpoint recorded yet on either side: the chart's sentence says so, no caution needed.
    if (mine < minimum or theirs < minimum or known) and (mine or theirs):
        said.append(LABELS[lang]["small_groups"].format(
            checkpoint=checkpoint_name(checkpoint.get("checkpoint"), lang), p=mine, c=theirs,
            minimum=minimum))
    if service and not known:
        said.append(LABELS[lang]["service_note"].format(text=service))
    return said
