"""Wires the enrolment service: catalogue, ORM mapping, unit of work and handlers."""

from __future__ import annotations

from pathlib import Path

from envol_enrolment import orm
from envol_enrolment.catalogue import Catalogue
from envol_enrolment.handlers import SERVICE, bind_handlers
from envol_enrolment.queries import QUERIES
from envol_enrolment.unit_of_work import EnrolmentUnitOfWork
from envol_shared.service import ServiceDefinition
from envol_shared.topology import CONSUMERS

MIGRATIONS = Path(__file__).parent / "migrations" / "versions"


def bootstrap(catalogue: Catalogue | None = None) -> ServiceDefinition:
    orm.start_mappers()
    catalogue = catalogue or Catalogue.load()
    consumer = CONSUMERS[SERVICE].durable
    return ServiceDefinition(
        name=SERVICE,
        migrations=MIGRATIONS,
        uow_factory=lambda engine: EnrolmentUnitOfWork(engine, consumer),
        handlers=bind_handlers(catalogue),
        queries=QUERIES,
    )
