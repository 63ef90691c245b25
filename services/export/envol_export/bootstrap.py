"""Wires the export service: partners and units, calendar, ORM mapping, unit of work, handlers,
timers, and the start-up step that brings the configured units into the database."""

from __future__ import annotations

from functools import partial
from pathlib import Path

from envol_export import orm
from envol_export.handlers import SERVICE, apply_configuration, bind_handlers, unit_reached_end
from envol_export.partners import Partners
from envol_export.queries import QUERIES
from envol_export.reminders import FollowUp, timer_handlers
from envol_export.unit_of_work import ExportUnitOfWork
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
        uow_factory=lambda engine: ExportUnitOfWork(engine, consumer),
        handlers=bind_handlers(follow_up.partners, follow_up),
        queries=QUERIES,
        timer_handlers=timer_handlers(follow_up, unit_reached_end),
        on_start=partial(apply_configuration, partners=follow_up.partners, follow_up=follow_up),
    )
