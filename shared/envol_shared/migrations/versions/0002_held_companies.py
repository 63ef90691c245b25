"""Companies whose events wait behind an earlier one that is being retried.

Revision ID: event_log_0002
Revises: event_log_0001
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = "event_log_0002"
down_revision = "event_log_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "held_companies",
        sa.Column("consumer", sa.String(64), primary_key=True),
        sa.Column("company", sa.String(64), primary_key=True),
        sa.Column("stream_sequence", sa.BigInteger(), nullable=False),
        sa.Column("held_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("held_companies")
