"""Wires the financing service: partners, calendar, ORM mapping, unit of work, handlers, timers."""

from __future__ import annotations

from pathlib import Path

from envol_financing import orm
from envol_financing.handlers import SERVICE, bind_handlers
from envol_financing.partners import Partners
from envol_financing.queries import QUERIES
from envol_financing.reminders import FollowUp, timer_handlers
from envol_financing.unit_of_work import FinancingUnitOfWork
from envol_shared.calendar import BusinessCalendar
from envol_shared.service import ServiceDefinition
from envol_shared.topology import CONSUMERS

MIGRATIONS = Path(__file__).parent / "migrations" / "versions"


def bootstrap(partners: Partners | None = None) -> ServiceDefinition:
    orm.start_mappers()
    follow_up = FollowUp(partners or Partners.load(), BusinessCalendar())
    consumer = CONSUMERS[SERVICE].durable
    return ServiceDefinition(
        name=SERVICE,
        migrations=MIGRATIONS,
        uow_factory=lambda engine: FinancingUnitOfWork(engine, consumer),
        handlers=bind_handlers(follow_up.partners, follow_up),
        queries=QUERIES,
        timer_handlers=timer_handlers(follow_up),
    )
