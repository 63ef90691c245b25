"""Financing cases, their requirements, tranches, checkpoints and history.

Revision ID: financing_0001
Revises:
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

revision = "financing_0001"
down_revision = None
branch_labels = ("financing",)
depends_on = None

TIMESTAMP = sa.DateTime(timezone=True)
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "financing_cases",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("siren", sa.String(9), nullable=False),
        sa.Column("cluster", sa.String(64), nullable=False),
        sa.Column("programme", sa.String(40), nullable=False),
        sa.Column("cohort", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(24), nullable=False),
        sa.Column("correlation_id", sa.String(128), nullable=False),
        sa.Column("enrolled_at", TIMESTAMP, nullable=False),
        sa.Column("opened_at", TIMESTAMP, nullable=False),
        sa.Column("stage", sa.String(24), nullable=False),
        sa.Column("partner", sa.String(64)),
        sa.Column("requested_cents", sa.BigInteger(), nullable=False),
        sa.Column("awarded_cents", sa.BigInteger(), nullable=False),
        sa.Column("disbursed_cents", sa.BigInteger(), nullable=False),
        sa.Column("decided_at", TIMESTAMP),
        sa.Column("first_disbursed_at", TIMESTAMP),
        sa.Column("succeeded", sa.Boolean()),
        sa.Column("last_news_at", TIMESTAMP),
        sa.Column("closed_at", TIMESTAMP),
        sa.Column("close_reason", sa.String(500)),
        sa.Column("details", sa.JSON(), nullable=False),
    )
    op.create_index("ix_financing_cases_siren", "financing_cases", ["siren"])
    op.create_index("ix_financing_cases_cluster_programme_cohort", "financing_cases",
                    ["cluster", "programme", "cohort"])
    op.create_table(
        "case_requirements",
        sa.Column("case_id", sa.String(64), sa.ForeignKey("financing_cases.id"), primary_key=True),
        sa.Column("requirement_id", sa.String(64), primary_key=True),
        sa.Column("kind", sa.String(24), nullable=False),
        sa.Column("title", sa.String(500), nullable=False),
        sa.Column("due_on", sa.Date(), nullable=False),
        sa.Column("owner", sa.String(64), nullable=False),
        sa.Column("gates_tranche", sa.Integer()),
        sa.Column("status", sa.String(24), nullable=False),
        sa.Column("completed_on", sa.Date()),
    )
    op.create_table(
        "case_tranches",
        sa.Column("case_id", sa.String(64), sa.ForeignKey("financing_cases.id"), primary_key=True),
        sa.Column("number", sa.Integer(), primary_key=True),
        sa.Column("amount_cents", sa.BigInteger(), nullable=False),
        sa.Column("disbursed_on", sa.Date(), nullable=False),
    )
    op.create_table(
        "case_checkpoints",
        sa.Column("case_id", sa.String(64), sa.ForeignKey("financing_cases.id"), primary_key=True),
        sa.Column("name", sa.String(16), primary_key=True),
        sa.Column("recorded_on", sa.Date(), nullable=False),
        sa.Column("raised_to_date_cents", sa.BigInteger(), nullable=False),
        sa.Column("note", sa.String(500)),
    )
    op.create_table(
        "case_history",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("case_id", sa.String(64), sa.ForeignKey("financing_cases.id"), nullable=False),
        sa.Column("at", TIMESTAMP, nullable=False),
        sa.Column("fact", sa.String(64), nullable=False),
        sa.Column("by", sa.String(64), nullable=False),
        sa.Column("summary", sa.String(1000), nullable=False),
        sa.Column("stage", sa.String(24), nullable=False),
    )
    op.create_index("ix_case_history_case_id", "case_history", ["case_id"])


def downgrade() -> None:
    for table in ("case_history", "case_checkpoints", "case_tranches", "case_requirements",
                  "financing_cases"):
        op.drop_table(table)
