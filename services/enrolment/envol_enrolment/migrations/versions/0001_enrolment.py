"""Companies, applications and their status history.

Revision ID: enrolment_0001
Revises:
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = "enrolment_0001"
down_revision = None
branch_labels = ("enrolment",)
depends_on = None

TIMESTAMP = sa.DateTime(timezone=True)
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "companies",
        sa.Column("siren", sa.String(9), primary_key=True),
        sa.Column("siret", sa.String(14)),
        sa.Column("legal_name", sa.String(500), nullable=False),
        sa.Column("region", sa.String(500), nullable=False),
        sa.Column("clusters", sa.JSON(), nullable=False),
        sa.Column("staff_awu", sa.Float(), nullable=False),
        sa.Column("turnover_cents", sa.BigInteger(), nullable=False),
        sa.Column("balance_sheet_cents", sa.BigInteger(), nullable=False),
        sa.Column("accounts_year", sa.Integer(), nullable=False),
        sa.Column("holdings", sa.JSON(), nullable=False),
        sa.Column("contact", sa.JSON()),
        sa.Column("sme_category", sa.String(16), nullable=False),
        sa.Column("sme_accounts_year", sa.Integer(), nullable=False),
    )
    op.create_table(
        "applications",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("siren", sa.String(9), sa.ForeignKey("companies.siren"), nullable=False),
        sa.Column("programme", sa.String(40), nullable=False),
        sa.Column("cluster", sa.String(64), nullable=False),
        sa.Column("cohort", sa.String(64), nullable=False),
        sa.Column("applied_on", sa.Date(), nullable=False),
        sa.Column("submitted_at", TIMESTAMP, nullable=False),
        sa.Column("correlation_id", sa.String(128), nullable=False),
        sa.Column("target_country", sa.String(2)),
        sa.Column("project", sa.JSON()),
        sa.Column("status", sa.String(16)),
        sa.Column("status_since", TIMESTAMP),
    )
    op.create_index("ix_applications_siren", "applications", ["siren"])
    op.create_index("ix_applications_programme_status", "applications", ["programme", "status"])
    op.create_table(
        "status_history",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("application_id", sa.String(64), sa.ForeignKey("applications.id"), nullable=False),
        sa.Column("from_status", sa.String(16)),
        sa.Column("to_status", sa.String(16), nullable=False),
        sa.Column("at", TIMESTAMP, nullable=False),
        sa.Column("by", sa.String(64), nullable=False),
        sa.Column("reasons", sa.JSON(), nullable=False),
    )
    op.create_index("ix_status_history_application_id", "status_history", ["application_id"])


def downgrade() -> None:
    op.drop_table("status_history")
    op.drop_table("applications")
    op.drop_table("companies")
