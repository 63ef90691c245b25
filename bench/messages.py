"""The benchmark's workload: `envol.company.registered.v1` events about many companies.

Every event is valid (its SIREN has a correct Luhn check digit, its cluster is in the
shipped catalogue and matches the subject), so the enrolment service upserts a company and
writes one `envol.company.assessed.v1` event to its outbox for each of them. The figures
vary (micro, small, medium and large companies, some with holdings or a contact) and one
event in five updates a company registered earlier in the run.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from stdnum import luhn

from envol_shared.contracts.enrolment import CompanyRegistered
from envol_shared.events import make_event

CLUSTERS = {
    "aerospace-valley": ["Occitanie", "Nouvelle-Aquitaine"],
    "pegase": ["Provence-Alpes-Côte d'Azur"],
    "astech": ["Île-de-France"],
}
PRODUCER = "staff"
# Subject filter matching exactly the events generated here, from any cluster.
SUBJECT_FILTER = "envol.*.*.company.registered"
# What the enrolment service publishes for each of them.
ASSESSED_FILTER = "envol.*.enrolment.company.assessed"


def siren(index: int) -> str:
    """A valid, distinct SIREN for each index below 10**8 (8 digits + Luhn check digit)."""
    base = f"{(10_000_019 + index * 7_919) % 100_000_000:08d}"
    return base + luhn.calc_check_digit(base)


def siret(number: str, establishment: int) -> str:
    """A valid SIRET of the company `number` (SIREN + 4-digit NIC + Luhn check digit)."""
    base = f"{number}{establishment:04d}"
    return base + luhn.calc_check_digit(base)


@dataclass(frozen=True)
class Message:
    event_id: str
    subject: str
    payload: bytes


def registration(index: int, rng: random.Random, companies: int) -> tuple[str, str, CompanyRegistered]:
    """(cluster, siren, payload) of the index-th registration."""
    # One in five events updates a company registered earlier in the run.
    company = rng.randrange(max(index, 1)) if index and rng.random() < 0.2 else index
    number = siren(company % companies)
    cluster = rng.choice(sorted(CLUSTERS))
    size = rng.choice([(4, 400_000, 300_000), (42, 6_000_000, 5_000_000),
                       (180, 40_000_000, 35_000_000), (900, 400_000_000, 300_000_000)])
    staff, turnover_eur, balance_eur = size
    holdings = []
    if rng.random() < 0.25:
        holdings = [{"holder": f"Holding {number}", "holder_kind": "enterprise",
                     "share_percent": rng.choice([25.0, 40.0, 60.0]),
                     "holder_staff_awu": float(rng.randrange(10, 400)),
                     "holder_turnover_cents": rng.randrange(1, 80) * 100_000_000,
                     "holder_balance_sheet_cents": rng.randrange(1, 80) * 100_000_000}]
    contact = None
    if rng.random() < 0.5:
        contact = {"name": "Camille Martin", "email": f"contact+{number}@example.fr",
                   "phone": "+33 5 61 00 00 00"}
    data = CompanyRegistered(
        company_id=number if rng.random() < 0.8 else siret(number, rng.randrange(1, 9999)),
        legal_name=f"Société {number}",
        region=rng.choice(CLUSTERS[cluster]),
        clusters=[cluster],
        staff_awu=staff + rng.random(),
        turnover_cents=turnover_eur * 100,
        balance_sheet_cents=balance_eur * 100,
        accounts_year=rng.choice([2024, 2025]),
        holdings=holdings,
        contact=contact,
    )
    return cluster, number, data


def build(index: int, rng: random.Random, companies: int, *, run: str,
          time: datetime | None = None) -> Message:
    cluster, number, data = registration(index, rng, companies)
    subject, envelope = make_event(data, cluster=cluster, producer=PRODUCER, company=number,
                                   event_id=f"bench-{run}-{index:08d}", time=time)
    return Message(envelope.id, subject, envelope.to_bytes())


def workload(count: int, *, seed: int = 20261126, run: str = "t") -> list[Message]:
    """`count` serialized events, the same for a given count and seed."""
    rng = random.Random(seed)
    companies = max(1, count)
    return [build(i, rng, companies, run=run) for i in range(count)]


# Events built ahead of a timed run carry this time; `stamped` swaps in the publication time.
PLACEHOLDER_TIME = datetime(2000, 1, 1, 0, 0, 0, 123456, tzinfo=UTC)
_PLACEHOLDER = b'"time":"2000-01-01T00:00:00.123456Z"'


def stamped(message: Message, when: datetime) -> Message:
    """The message with its CloudEvents `time` set to `when` (a cheap byte substitution, so
    the publisher can keep a steady rate)."""
    stamp = b'"time":"' + when.strftime("%Y-%m-%dT%H:%M:%S.%fZ").encode() + b'"'
    payload = message.payload.replace(_PLACEHOLDER, stamp, 1)
    assert payload != message.payload
    return replace(message, payload=payload)
