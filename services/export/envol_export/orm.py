"""Tables of the export database and their mapping onto the domain classes.

As in enrolment and financing, the domain classes stay plain dataclasses mapped imperatively
here, so the domain never imports SQLAlchemy. The domain edits its JSON values in place, at
any depth (a lead reported, a workshop attended): envol_shared.json_columns writes those
edits to the database.
"""

from __future__ import annotations

from enum import StrEnum

import sqlalchemy as sa
from sqlalchemy.orm import registry, relationship

from envol_export.domain.model import (
    ExportCheckpoint,
    ExportContract,
    ExportSupport,
    SupportEntry,
    SupportKind,
    SupportStatus,
    SupportUnit,
    UnitEntry,
    UnitKind,
)
from envol_shared.database import UtcDateTime
from envol_shared.json_columns import track_json_columns

mapper_registry = registry()
metadata = mapper_registry.metadata
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _enum(kind: type[StrEnum]) -> sa.Enum:
    return sa.Enum(kind, native_enum=False, length=24, create_constraint=False,
                   values_callable=lambda e: [m.value for m in e])


# Relay missions, export desks and CCI cohorts; `occupied` is guarded by locking the row.
units = sa.Table(
    "export_units",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("cluster", sa.String(64), nullable=False),
    sa.Column("programme", sa.String(40), nullable=False),
    sa.Column("kind", _enum(UnitKind), nullable=False),
    sa.Column("country", sa.String(2)),
    sa.Column("partner", sa.String(64), nullable=False),
    sa.Column("capacity", sa.Integer(), nullable=False),
    sa.Column("starts_on", sa.Date(), nullable=False),
    sa.Column("ends_on", sa.Date()),
    sa.Column("opened_at", UtcDateTime(), nullable=False),
    sa.Column("origin", sa.String(64), nullable=False),
    sa.Column("host_siren", sa.String(9)),
    sa.Column("host_company", sa.String(200)),
    sa.Column("volunteer_id", sa.String(64)),
    sa.Column("details", sa.JSON(), nullable=False),
    sa.Column("occupied", sa.Integer(), nullable=False),
    sa.Column("ended_at", UtcDateTime()),
    sa.Column("end_reason", sa.String(500)),
    sa.CheckConstraint("occupied >= 0", name="ck_export_units_occupied"),
    sa.Index("ix_export_units_pool", "cluster", "programme", "country"),
)

unit_history = sa.Table(
    "export_unit_history",
    metadata,
    sa.Column("id", ID, primary_key=True, autoincrement=True),
    sa.Column("unit_id", sa.String(64), sa.ForeignKey("export_units.id"), nullable=False, index=True),
    sa.Column("at", UtcDateTime(), nullable=False),
    sa.Column("fact", sa.String(64), nullable=False),
    sa.Column("support_id", sa.String(64)),
    sa.Column("occupied", sa.Integer(), nullable=False),
    sa.Column("summary", sa.String(1000), nullable=False),
)

supports = sa.Table(
    "export_supports",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("siren", sa.String(9), nullable=False, index=True),
    sa.Column("cluster", sa.String(64), nullable=False),
    sa.Column("programme", sa.String(40), nullable=False),
    sa.Column("cohort", sa.String(64), nullable=False),
    sa.Column("kind", _enum(SupportKind), nullable=False),
    sa.Column("target_country", sa.String(2)),
    sa.Column("correlation_id", sa.String(128), nullable=False),
    sa.Column("enrolled_at", UtcDateTime(), nullable=False),
    sa.Column("opened_at", UtcDateTime(), nullable=False),
    sa.Column("status", _enum(SupportStatus), nullable=False),
    sa.Column("unit_id", sa.String(64), sa.ForeignKey("export_units.id"), index=True),
    sa.Column("partner", sa.String(64)),
    sa.Column("waiting_since", UtcDateTime()),
    sa.Column("first_assigned_at", UtcDateTime()),
    sa.Column("contracted_cents", sa.BigInteger(), nullable=False),
    sa.Column("first_contract_on", sa.Date()),
    sa.Column("last_news_at", UtcDateTime()),
    sa.Column("closed_at", UtcDateTime()),
    sa.Column("close_reason", sa.String(500)),
    # Edited in place by the domain (a lead reported, a workshop attended): see the module docstring.
    sa.Column("details", sa.JSON(), nullable=False),
    # The waiting list of a pool, oldest first.
    sa.Index("ix_export_supports_waiting", "cluster", "programme", "status", "waiting_since"),
)

contracts = sa.Table(
    "export_contracts",
    metadata,
    sa.Column("support_id", sa.String(64), sa.ForeignKey("export_supports.id"), primary_key=True),
    sa.Column("contract_id", sa.String(64), primary_key=True),
    sa.Column("country", sa.String(2), nullable=False),
    sa.Column("buyer", sa.String(200), nullable=False),
    sa.Column("amount_cents", sa.BigInteger(), nullable=False),
    sa.Column("signed_on", sa.Date(), nullable=False),
    sa.Column("reported_by", sa.String(64), nullable=False),
)

checkpoints = sa.Table(
    "export_checkpoints",
    metadata,
    sa.Column("support_id", sa.String(64), sa.ForeignKey("export_supports.id"), primary_key=True),
    sa.Column("name", sa.String(16), primary_key=True),
    sa.Column("recorded_on", sa.Date(), nullable=False),
    sa.Column("export_turnover_cents", sa.BigInteger(), nullable=False),
    sa.Column("countries_served", sa.JSON(), nullable=False),
    sa.Column("contracts_to_date", sa.Integer(), nullable=False),
    sa.Column("note", sa.String(500)),
)

history = sa.Table(
    "export_support_history",
    metadata,
    sa.Column("id", ID, primary_key=True, autoincrement=True),
    sa.Column("support_id", sa.String(64), sa.ForeignKey("export_supports.id"), nullable=False, index=True),
    sa.Column("at", UtcDateTime(), nullable=False),
    sa.Column("fact", sa.String(64), nullable=False),
    sa.Column("by", sa.String(64), nullable=False),
    sa.Column("summary", sa.String(1000), nullable=False),
    sa.Column("status", sa.String(24), nullable=False),
)

_mapped = False


def start_mappers() -> None:
    """Map the domain classes onto the tables; idempotent."""
    global _mapped
    if _mapped:
        return
    mapper_registry.map_imperatively(
        SupportUnit,
        units,
        # Append-only: occupancy over time.
        properties={"history": relationship(mapper_registry.map_imperatively(UnitEntry, unit_history),
                                            lazy="selectin", order_by=[unit_history.c.id], cascade="all")},
    )
    children = {
        "contracts": (mapper_registry.map_imperatively(ExportContract, contracts),
                      [contracts.c.signed_on, contracts.c.contract_id]),
        "checkpoints": (mapper_registry.map_imperatively(ExportCheckpoint, checkpoints),
                        [checkpoints.c.recorded_on]),
        # Append-only audit trail.
        "history": (mapper_registry.map_imperatively(SupportEntry, history), [history.c.id]),
    }
    mapper_registry.map_imperatively(
        ExportSupport,
        supports,
        properties={name: relationship(mapper, lazy="selectin", order_by=order, cascade="all")
                    for name, (mapper, order) in children.items()},
    )
    # So that the JSON values the domain edits in place are written too.
    track_json_columns(mapper_registry.mappers)
    _mapped = True
