"""Which instance of a service consumes its events: the consumer lease.

Revision ID: event_log_0004
Revises: event_log_0003
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

revision = "event_log_0004"
down_revision = "event_log_0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "consumer_leases",
        sa.Column("consumer", sa.String(64), primary_key=True),
        sa.Column("holder", sa.String(200), nullable=False),
        sa.Column("epoch", sa.BigInteger(), nullable=False),
        sa.Column("renewed_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("consumer_leases")
