"""Durable timers: reminders, escalations and checkpoints that survive restarts.

Revision ID: event_log_0003
Revises: event_log_0002
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

revision = "event_log_0003"
down_revision = "event_log_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "timers",
        sa.Column("key", sa.String(200), primary_key=True),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("scheduled_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("fired_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("outcome", sa.String(500), nullable=True),
    )
    op.create_index("ix_timers_fired_at_due_at", "timers", ["fired_at", "due_at"])


def downgrade() -> None:
    op.drop_table("timers")
