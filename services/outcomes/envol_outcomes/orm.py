"""The outcomes table and its mapping onto the domain's journey.

As in the other services, the domain class stays a plain dataclass mapped imperatively here,
so the domain never imports SQLAlchemy; envol_shared.json_columns writes the JSON values it
changes.
"""

from __future__ import annotations

from enum import StrEnum

import sqlalchemy as sa
from sqlalchemy.orm import registry

from envol_outcomes.domain.model import Journey, ProgrammeKind
from envol_shared.database import UtcDateTime
from envol_shared.json_columns import track_json_columns

mapper_registry = registry()
metadata = mapper_registry.metadata


def _enum(kind: type[StrEnum]) -> sa.Enum:
    return sa.Enum(kind, native_enum=False, length=24, create_constraint=False,
                   values_callable=lambda e: [m.value for m in e])


journeys = sa.Table(
    "outcome_journeys",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("cluster", sa.String(64), nullable=False),
    sa.Column("siren", sa.String(9), nullable=False),
    sa.Column("programme", sa.String(40), nullable=False),
    sa.Column("kind", _enum(ProgrammeKind), nullable=False),
    sa.Column("cohort", sa.String(64), nullable=False),
    sa.Column("status", sa.String(24), nullable=False),
    sa.Column("steps", sa.JSON(), nullable=False),
    sa.Column("enrolled_at", UtcDateTime()),
    sa.Column("obtained_cents", sa.BigInteger(), nullable=False),
    sa.Column("disbursed_cents", sa.BigInteger(), nullable=False),
    sa.Column("first_outcome_at", UtcDateTime()),
    sa.Column("gains", sa.JSON(), nullable=False),
    sa.Column("leads", sa.Integer(), nullable=False),
    sa.Column("meetings", sa.Integer(), nullable=False),
    sa.Column("contracts", sa.Integer(), nullable=False),
    sa.Column("contract_countries", sa.JSON(), nullable=False),
    sa.Column("checkpoints", sa.JSON(), nullable=False),
    sa.Index("ix_outcome_journeys_cluster_programme_cohort", "cluster", "programme", "cohort"),
    sa.Index("ix_outcome_journeys_siren", "siren"),
)

_mapped = False


def start_mappers() -> None:
    """Map the journey onto its table; idempotent."""
    global _mapped
    if _mapped:
        return
    mapper_registry.map_imperatively(Journey, journeys)
    track_json_columns(mapper_registry.mappers)
    _mapped = True
