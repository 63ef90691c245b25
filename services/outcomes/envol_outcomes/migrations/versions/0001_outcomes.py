"""Outcome journeys: one row per application, as the three services tell it.

Revision ID: outcomes_0001
Revises:
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "outcomes_0001"
down_revision = None
branch_labels = ("outcomes",)
depends_on = None

TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "outcome_journeys",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("cluster", sa.String(64), nullable=False),
        sa.Column("siren", sa.String(9), nullable=False),
        sa.Column("programme", sa.String(40), nullable=False),
        sa.Column("kind", sa.String(24), nullable=False),
        sa.Column("cohort", sa.String(64), nullable=False),
        sa.Column("status", sa.String(24), nullable=False),
        sa.Column("steps", sa.JSON(), nullable=False),
        sa.Column("enrolled_at", TIMESTAMP),
        sa.Column("obtained_cents", sa.BigInteger(), nullable=False),
        sa.Column("disbursed_cents", sa.BigInteger(), nullable=False),
        sa.Column("first_outcome_at", TIMESTAMP),
        sa.Column("gains", sa.JSON(), nullable=False),
        sa.Column("leads", sa.Integer(), nullable=False),
        sa.Column("meetings", sa.Integer(), nullable=False),
        sa.Column("contracts", sa.Integer(), nullable=False),
        sa.Column("contract_countries", sa.JSON(), nullable=False),
        sa.Column("checkpoints", sa.JSON(), nullable=False),
    )
    op.create_index("ix_outcome_journeys_cluster_programme_cohort", "outcome_journeys",
                    ["cluster", "programme", "cohort"])
    op.create_index("ix_outcome_journeys_siren", "outcome_journeys", ["siren"])


def downgrade() -> None:
    op.drop_table("outcome_journeys")
