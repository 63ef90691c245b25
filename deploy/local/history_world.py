"""The people, companies and places of the history data set (deploy/local/history.py): fictitious
SMEs with valid SIRENs, and the partners, investors and buyers the clusters' partners meet.

Everything here is drawn from the `random.Random` it is given, so a seed gives the same world.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

TODAY = date(2026, 12, 1)  # the history stops the day before
STAFF = "staff"  # the clusters' staff tools' producer token


def moment(day: date, rng: random.Random) -> datetime:
    """A working hour of `day` (UTC, the same day in Paris)."""
    return datetime.combine(day, time(rng.randint(7, 15), rng.randint(0, 59), rng.randint(0, 59)), UTC)


def workday(day: date) -> date:
    while day.weekday() >= 5:
        day += timedelta(days=1)
    return day


REGIONS = {
    "aerospace-valley": ("Occitanie", "Nouvelle-Aquitaine"),
    "pegase": ("Provence-Alpes-Côte d'Azur",),
    "astech": ("Île-de-France",),
}
TOWNS = {
    "Occitanie": ("Toulouse", "Colomiers", "Blagnac", "Figeac", "Tarbes", "Albi", "Castres", "Montauban"),
    "Nouvelle-Aquitaine": ("Mérignac", "Bordeaux", "Pau", "Bayonne", "Rochefort", "Le Haillan"),
    "Provence-Alpes-Côte d'Azur": ("Marignane", "Marseille", "Cannes", "Istres", "Toulon", "Aix"),
    "Île-de-France": ("Vélizy", "Palaiseau", "Saclay", "Argenteuil", "Élancourt", "Gennevilliers"),
}
TRADES = ("Usinage", "Composites", "Avionique", "Systèmes Embarqués", "Câblage", "Drones", "Optique",
          "Propulsion", "Revêtements", "Capteurs", "Robotique", "Outillage", "Logiciels Critiques",
          "Maintenance Aéro", "Simulation", "Fonderie de Précision", "Électronique de Puissance")
FORMS = ("", " SAS", " Industries", " Technologies", " Systèmes", " & Fils")
# Where a company already exports before any programme (ISO 3166-1 alpha-2).
NEAR_MARKETS = ("BE", "DE", "ES", "IT", "GB", "CH", "NL", "PT")

# Who the partners meet: organisations, never persons.
INVESTORS = ("Garonne Ventures", "Sud Angels", "Occitanie Aéro Capital", "Aquitaine Croissance",
             "Irdi Capital Investissement", "Bpifrance Investissement", "Aerofund IV", "Midi Capital")
BUYERS = {
    "CA": ("Bombardier", "CAE", "Héroux-Devtek", "Pratt & Whitney Canada"),
    "CN": ("COMAC", "AVIC", "Tianjin Airbus Supply Hub", "AECC"),
    "BR": ("Embraer", "Helibras", "Akaer", "Avibras"),
    "DE": ("MTU Aero Engines", "Lufthansa Technik", "Diehl Aviation", "Premium Aerotec"),
    "US": ("Spirit AeroSystems", "Textron Aviation", "Collins Aerospace", "Boeing Global Services"),
    "IN": ("Hindustan Aeronautics", "Indian Space Research Organisation", "Tata Advanced Systems"),
    "SG": ("ST Engineering Aerospace", "SIA Engineering", "Singapore Technologies Kinetics"),
    "MA": ("Royal Air Maroc Engineering", "Matis Aerospace", "Safran Nacelles Maroc"),
    "GB": ("Rolls-Royce", "GKN Aerospace", "BAE Systems"),
    "JP": ("Mitsubishi Heavy Industries", "Kawasaki Aerospace", "ANA Engineering"),
    "AE": ("Strata Manufacturing", "Emirates Engineering", "Sanad Aerotech"),
}
COACHING_TOPICS = ("financing plan", "valuation", "data room", "investor pitch", "cash forecast",
                   "public funding", "debt structure")
FINANCING_ACTIONS = (
    ("introduction to two regional funds", "term sheet"),
    ("meeting with a corporate venture fund", "due diligence under way"),
    ("Bpifrance innovation loan file", "loan obtained"),
    ("business angels evening", "two angels interested"),
    ("bank pool for a new line", "credit line signed"),
    ("crowdfunding campaign prepared", "campaign closed"),
)


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, char in enumerate(reversed(digits)):
        n = int(char) * (2 if i % 2 else 1)
        total += n - 9 if n > 9 else n
    return total % 10 == 0


def siren(rng: random.Random, taken: set[str]) -> str:
    """A fictitious SIREN with a valid Luhn check digit, never one already taken."""
    while True:
        body = f"{rng.randrange(10_000_000, 99_999_999):08d}"
        if body.startswith("356"):  # La Poste's SIRENs follow another rule
            continue
        for last in range(10):
            if luhn_ok(body + str(last)):
                found = body + str(last)
                break
        if found not in taken:
            taken.add(found)
            return found


@dataclass
class Company:
    key: int
    siren: str
    name: str
    region: str
    cluster: str
    staff_awu: float
    turnover_cents: int
    balance_sheet_cents: int
    sme: bool
    quality: float  # how well it does, whatever the programme: N(0, 1)
    export_cents: int  # export turnover over the 12 months before any programme
    markets: list[str] = field(default_factory=list)  # where it already sells
    raised_cents: int = 0  # private financing raised before any programme
    holdings: list[dict[str, object]] = field(default_factory=list)


def company(rng: random.Random, key: int, cluster: str, taken: set[str], *, sme: bool = True) -> Company:
    region = rng.choice(REGIONS[cluster])
    town = rng.choice(TOWNS[region])
    name = f"{rng.choice(TRADES)} {town}{rng.choice(FORMS)}"
    if sme:
        staff = round(rng.choice((rng.uniform(3, 9.5), rng.uniform(10, 49), rng.uniform(50, 240))), 1)
        turnover = int(staff * rng.uniform(90_000, 190_000)) * 100
        balance = int(turnover * rng.uniform(0.5, 0.9))
    else:  # a large group's subsidiary or a large company: never an SME
        staff = round(rng.uniform(300, 1500), 1)
        turnover = int(rng.uniform(80e6, 400e6)) * 100
        balance = int(rng.uniform(60e6, 300e6)) * 100
    quality = rng.gauss(0, 1)
    holdings: list[dict[str, object]] = []
    if sme and rng.random() < 0.12:
        holdings.append({"holder": rng.choice(INVESTORS), "holder_kind": "venture_capital",
                         "share_percent": rng.choice((15, 20, 30, 35))})
    markets = sorted(rng.sample(NEAR_MARKETS, rng.randint(0, 3)))
    return Company(key=key, siren=siren(rng, taken), name=name, region=region, cluster=cluster,
                   staff_awu=staff, turnover_cents=turnover, balance_sheet_cents=balance, sme=sme,
                   quality=quality, export_cents=int(turnover * rng.uniform(0.02, 0.25)) if markets else 0,
                   markets=markets, raised_cents=rng.choice((0, 0, rng.randrange(5, 80) * 1_000_000)),
                   holdings=holdings)
