"""Export units (relay missions, desks, CCI cohorts) and supports, with contracts, checkpoints
and history.

Revision ID: export_0001
Revises:
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

revision = "export_0001"
down_revision = None
branch_labels = ("export",)
depends_on = None

TIMESTAMP = sa.DateTime(timezone=True)
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "export_units",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("cluster", sa.String(64), nullable=False),
        sa.Column("programme", sa.String(40), nullable=False),
        sa.Column("kind", sa.String(24), nullable=False),
        sa.Column("country", sa.String(2)),
        sa.Column("partner", sa.String(64), nullable=False),
        sa.Column("capacity", sa.Integer(), nullable=False),
        sa.Column("starts_on", sa.Date(), nullable=False),
        sa.Column("ends_on", sa.Date()),
        sa.Column("opened_at", TIMESTAMP, nullable=False),
        sa.Column("origin", sa.String(64), nullable=False),
        sa.Column("host_siren", sa.String(9)),
        sa.Column("host_company", sa.String(200)),
        sa.Column("volunteer_id", sa.String(64)),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("occupied", sa.Integer(), nullable=False),
        sa.Column("ended_at", TIMESTAMP),
        sa.Column("end_reason", sa.String(500)),
        sa.CheckConstraint("occupied >= 0", name="ck_export_units_occupied"),
    )
    op.create_index("ix_export_units_pool", "export_units", ["cluster", "programme", "country"])
    op.create_table(
        "export_unit_history",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("unit_id", sa.String(64), sa.ForeignKey("export_units.id"), nullable=False),
        sa.Column("at", TIMESTAMP, nullable=False),
        sa.Column("fact", sa.String(64), nullable=False),
        sa.Column("support_id", sa.String(64)),
        sa.Column("occupied", sa.Integer(), nullable=False),
        sa.Column("summary", sa.String(1000), nullable=False),
    )
    op.create_index("ix_export_unit_history_unit_id", "export_unit_history", ["unit_id"])
    op.create_table(
        "export_supports",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("siren", sa.String(9), nullable=False),
        sa.Column("cluster", sa.String(64), nullable=False),
        sa.Column("programme", sa.String(40), nullable=False),
        sa.Column("cohort", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(24), nullable=False),
        sa.Column("target_country", sa.String(2)),
        sa.Column("correlation_id", sa.String(128), nullable=False),
        sa.Column("enrolled_at", TIMESTAMP, nullable=False),
        sa.Column("opened_at", TIMESTAMP, nullable=False),
        sa.Column("status", sa.String(24), nullable=False),
        sa.Column("unit_id", sa.String(64), sa.ForeignKey("export_units.id")),
        sa.Column("partner", sa.String(64)),
        sa.Column("waiting_since", TIMESTAMP),
        sa.Column("first_assigned_at", TIMESTAMP),
        sa.Column("contracted_cents", sa.BigInteger(), nullable=False),
        sa.Column("first_contract_on", sa.Date()),
        sa.Column("last_news_at", TIMESTAMP),
        sa.Column("closed_at", TIMESTAMP),
        sa.Column("close_reason", sa.String(500)),
        sa.Column("details", sa.JSON(), nullable=False),
    )
    op.create_index("ix_export_supports_siren", "export_supports", ["siren"])
    op.create_index("ix_export_supports_unit_id", "export_supports", ["unit_id"])
    op.create_index("ix_export_supports_waiting", "export_supports",
                    ["cluster", "programme", "status", "waiting_since"])
    op.create_table(
        "export_contracts",
        sa.Column("support_id", sa.String(64), sa.ForeignKey("export_supports.id"), primary_key=True),
        sa.Column("contract_id", sa.String(64), primary_key=True),
        sa.Column("country", sa.String(2), nullable=False),
        sa.Column("buyer", sa.String(200), nullable=False),
        sa.Column("amount_cents", sa.BigInteger(), nullable=False),
        sa.Column("signed_on", sa.Date(), nullable=False),
        sa.Column("reported_by", sa.String(64), nullable=False),
    )
    op.create_table(
        "export_checkpoints",
        sa.Column("support_id", sa.String(64), sa.ForeignKey("export_supports.id"), primary_key=True),
        sa.Column("name", sa.String(16), primary_key=True),
        sa.Column("recorded_on", sa.Date(), nullable=False),
        sa.Column("export_turnover_cents", sa.BigInteger(), nullable=False),
        sa.Column("countries_served", sa.JSON(), nullable=False),
        sa.Column("contracts_to_date", sa.Integer(), nullable=False),
        sa.Column("note", sa.String(500)),
    )
    op.create_table(
        "export_support_history",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("support_id", sa.String(64), sa.ForeignKey("export_supports.id"), nullable=False),
        sa.Column("at", TIMESTAMP, nullable=False),
        sa.Column("fact", sa.String(64), nullable=False),
        sa.Column("by", sa.String(64), nullable=False),
        sa.Column("summary", sa.String(1000), nullable=False),
        sa.Column("status", sa.String(24), nullable=False),
    )
    op.create_index("ix_export_support_history_support_id", "export_support_history", ["support_id"])


def downgrade() -> None:
    for table in ("export_support_history", "export_checkpoints", "export_contracts", "export_supports",
                  "export_unit_history", "export_units"):
        op.drop_table(table)
