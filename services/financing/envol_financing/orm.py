"""Tables of the financing database and their mapping onto the domain classes.

As in enrolment, the domain classes stay plain dataclasses mapped imperatively here, so the
domain never imports SQLAlchemy. The domain edits its JSON values in place, at any depth (a
pitch session held, a review added to an objective): envol_shared.json_columns writes those
edits to the database.
"""

from __future__ import annotations

from enum import StrEnum

import sqlalchemy as sa
from sqlalchemy.orm import registry, relationship

from envol_financing.domain.model import (
    CaseEntry,
    CaseKind,
    Checkpoint,
    FinancingCase,
    Requirement,
    RequirementStatus,
    Tranche,
)
from envol_shared.database import UtcDateTime
from envol_shared.json_columns import track_json_columns

mapper_registry = registry()
metadata = mapper_registry.metadata
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _enum(kind: type[StrEnum]) -> sa.Enum:
    return sa.Enum(kind, native_enum=False, length=24, create_constraint=False,
                   values_callable=lambda e: [m.value for m in e])


cases = sa.Table(
    "financing_cases",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("siren", sa.String(9), nullable=False, index=True),
    sa.Column("cluster", sa.String(64), nullable=False),
    sa.Column("programme", sa.String(40), nullable=False),
    sa.Column("cohort", sa.String(64), nullable=False),
    sa.Column("kind", _enum(CaseKind), nullable=False),
    sa.Column("correlation_id", sa.String(128), nullable=False),
    sa.Column("enrolled_at", UtcDateTime(), nullable=False),
    sa.Column("opened_at", UtcDateTime(), nullable=False),
    sa.Column("stage", sa.String(24), nullable=False),
    sa.Column("partner", sa.String(64)),
    sa.Column("requested_cents", sa.BigInteger(), nullable=False),
    sa.Column("awarded_cents", sa.BigInteger(), nullable=False),
    sa.Column("disbursed_cents", sa.BigInteger(), nullable=False),
    sa.Column("decided_at", UtcDateTime()),
    sa.Column("first_disbursed_at", UtcDateTime()),
    sa.Column("succeeded", sa.Boolean()),
    sa.Column("last_news_at", UtcDateTime()),
    sa.Column("closed_at", UtcDateTime()),
    sa.Column("close_reason", sa.String(500)),
    # Edited in place by the domain (a session held, an investor met): see the module docstring.
    sa.Column("details", sa.JSON(), nullable=False),
    sa.Index("ix_financing_cases_cluster_programme_cohort", "cluster", "programme", "cohort"),
)

requirements = sa.Table(
    "case_requirements",
    metadata,
    sa.Column("case_id", sa.String(64), sa.ForeignKey("financing_cases.id"), primary_key=True),
    sa.Column("requirement_id", sa.String(64), primary_key=True),
    sa.Column("kind", sa.String(24), nullable=False),
    sa.Column("title", sa.String(500), nullable=False),
    sa.Column("due_on", sa.Date(), nullable=False),
    sa.Column("owner", sa.String(64), nullable=False),
    sa.Column("gates_tranche", sa.Integer()),
    sa.Column("status", _enum(RequirementStatus), nullable=False),
    sa.Column("completed_on", sa.Date()),
)

tranches = sa.Table(
    "case_tranches",
    metadata,
    sa.Column("case_id", sa.String(64), sa.ForeignKey("financing_cases.id"), primary_key=True),
    sa.Column("number", sa.Integer(), primary_key=True),
    sa.Column("amount_cents", sa.BigInteger(), nullable=False),
    sa.Column("disbursed_on", sa.Date(), nullable=False),
)

checkpoints = sa.Table(
    "case_checkpoints",
    metadata,
    sa.Column("case_id", sa.String(64), sa.ForeignKey("financing_cases.id"), primary_key=True),
    sa.Column("name", sa.String(16), primary_key=True),
    sa.Column("recorded_on", sa.Date(), nullable=False),
    sa.Column("raised_to_date_cents", sa.BigInteger(), nullable=False),
    sa.Column("note", sa.String(500)),
)

history = sa.Table(
    "case_history",
    metadata,
    sa.Column("id", ID, primary_key=True, autoincrement=True),
    sa.Column("case_id", sa.String(64), sa.ForeignKey("financing_cases.id"), nullable=False, index=True),
    sa.Column("at", UtcDateTime(), nullable=False),
    sa.Column("fact", sa.String(64), nullable=False),
    sa.Column("by", sa.String(64), nullable=False),
    sa.Column("summary", sa.String(1000), nullable=False),
    sa.Column("stage", sa.String(24), nullable=False),
)

_mapped = False


def start_mappers() -> None:
    """Map the domain classes onto the tables; idempotent."""
    global _mapped
    if _mapped:
        return
    children = {
        "requirements": (mapper_registry.map_imperatively(Requirement, requirements),
                         [requirements.c.due_on, requirements.c.requirement_id]),
        "tranches": (mapper_registry.map_imperatively(Tranche, tranches), [tranches.c.number]),
        "checkpoints": (mapper_registry.map_imperatively(Checkpoint, checkpoints),
                        [checkpoints.c.recorded_on]),
        # Append-only audit trail.
        "history": (mapper_registry.map_imperatively(CaseEntry, history), [history.c.id]),
    }
    mapper_registry.map_imperatively(
        FinancingCase,
        cases,
        properties={name: relationship(mapper, lazy="selectin", order_by=order, cascade="all")
                    for name, (mapper, order) in children.items()},
    )
    # So that the JSON values the domain edits in place are written too.
    track_json_columns(mapper_registry.mappers)
    _mapped = True
