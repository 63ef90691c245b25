"""Wires the outcomes service: ORM mapping, unit of work, the staff of each cluster, handlers
and queries. It has no timers: it only listens and answers."""

from __future__ import annotations

from pathlib import Path

from envol_outcomes import orm
from envol_outcomes.handlers import SERVICE, bind_handlers, load_staff
from envol_outcomes.queries import QUERIES
from envol_outcomes.unit_of_work import OutcomesUnitOfWork
from envol_shared.service import ServiceDefinition
from envol_shared.topology import CONSUMERS

MIGRATIONS = Path(__file__).parent / "migrations" / "versions"


def bootstrap(staff: dict[str, frozenset[str]] | None = None) -> ServiceDefinition:
    orm.start_mappers()
    consumer = CONSUMERS[SERVICE].durable
    return ServiceDefinition(
        name=SERVICE,
        migrations=MIGRATIONS,
        uow_factory=lambda engine: OutcomesUnitOfWork(engine, consumer),
        handlers=bind_handlers(staff if staff is not None else load_staff()),
        queries=QUERIES,
    )
