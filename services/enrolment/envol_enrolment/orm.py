"""Tables of the enrolment database and their mapping onto the domain classes.

The domain classes stay plain dataclasses; SQLAlchemy maps them imperatively here
(cosmicpython's "dependency inversion" of the ORM), so the domain never imports it.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import date
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import registry, relationship
from sqlalchemy.types import TypeDecorator

from envol_enrolment.domain.model import Application, Company, ProjectReference, Status, StatusChange
from envol_enrolment.domain.sme import Holding, SmeCategory
from envol_shared.database import UtcDateTime

mapper_registry = registry()
metadata = mapper_registry.metadata


class HoldingsJSON(TypeDecorator[list[Holding]]):
    impl = sa.JSON()
    cache_ok = True

    def process_bind_param(self, value: list[Holding] | None, dialect: sa.Dialect) -> Any:
        return [asdict(h) for h in value or []]

    def process_result_value(self, value: Any, dialect: sa.Dialect) -> list[Holding]:
        return [Holding(**h) for h in value or []]


class ProjectJSON(TypeDecorator[ProjectReference]):
    impl = sa.JSON()
    cache_ok = True

    def process_bind_param(self, value: ProjectReference | None, dialect: sa.Dialect) -> Any:
        if value is None:
            return None
        return {**asdict(value), "label_date": value.label_date.isoformat()}

    def process_result_value(self, value: Any, dialect: sa.Dialect) -> ProjectReference | None:
        if value is None:
            return None
        return ProjectReference(**{**value, "label_date": date.fromisoformat(value["label_date"])})


def _status() -> sa.Enum:
    return sa.Enum(Status, native_enum=False, length=16, create_constraint=False,
                   values_callable=lambda e: [m.value for m in e])


# One row per cluster's view of a company: a cluster's registration never touches another's.
companies = sa.Table(
    "companies",
    metadata,
    sa.Column("cluster", sa.String(64), primary_key=True),
    sa.Column("siren", sa.String(9), primary_key=True),
    sa.Column("siret", sa.String(14)),
    sa.Column("legal_name", sa.String(500), nullable=False),
    sa.Column("region", sa.String(500), nullable=False),
    sa.Column("clusters", sa.JSON(), nullable=False),
    sa.Column("staff_awu", sa.Float(), nullable=False),
    sa.Column("turnover_cents", sa.BigInteger(), nullable=False),
    sa.Column("balance_sheet_cents", sa.BigInteger(), nullable=False),
    sa.Column("accounts_year", sa.Integer(), nullable=False),
    sa.Column("holdings", HoldingsJSON(), nullable=False),
    sa.Column("contact", sa.JSON()),
    sa.Column("sme_category", sa.Enum(SmeCategory, native_enum=False, length=16,
                                      create_constraint=False,
                                      values_callable=lambda e: [m.value for m in e]),
              nullable=False),
    sa.Column("sme_accounts_year", sa.Integer(), nullable=False),
)

applications = sa.Table(
    "applications",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("siren", sa.String(9), nullable=False, index=True),
    sa.Column("programme", sa.String(40), nullable=False),
    sa.Column("cluster", sa.String(64), nullable=False),
    sa.Column("cohort", sa.String(64), nullable=False),
    sa.Column("applied_on", sa.Date(), nullable=False),
    sa.Column("submitted_at", UtcDateTime(), nullable=False),
    sa.Column("correlation_id", sa.String(128), nullable=False),
    sa.Column("target_country", sa.String(2)),
    sa.Column("project", ProjectJSON()),
    sa.Column("status", _status()),
    sa.Column("status_since", UtcDateTime()),
    sa.Index("ix_applications_programme_status", "programme", "status"),
    # An application rests on its own cluster's view of the company.
    sa.ForeignKeyConstraint(["cluster", "siren"], ["companies.cluster", "companies.siren"],
                            name="fk_applications_company"),
)

status_history = sa.Table(
    "status_history",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True,
              autoincrement=True),
    sa.Column("application_id", sa.String(64), sa.ForeignKey("applications.id"), nullable=False,
              index=True),
    sa.Column("from_status", _status()),
    sa.Column("to_status", _status(), nullable=False),
    sa.Column("at", UtcDateTime(), nullable=False),
    sa.Column("by", sa.String(64), nullable=False),
    sa.Column("reasons", sa.JSON(), nullable=False),
)

_mapped = False


def start_mappers() -> None:
    """Map the domain classes onto the tables; idempotent."""
    global _mapped
    if _mapped:
        return
    mapper_registry.map_imperatively(Company, companies)
    history_mapper = mapper_registry.map_imperatively(StatusChange, status_history)
    mapper_registry.map_imperatively(
        Application,
        applications,
        properties={
            # Append-only audit trail, loaded with its application.
            "history": relationship(history_mapper, lazy="selectin", order_by=status_history.c.id,
                                    cascade="all"),
            # Never read: it tells the unit of work to insert a company before its applications.
            "_company": relationship(Company, lazy="raise"),
        },
    )
    _mapped = True
