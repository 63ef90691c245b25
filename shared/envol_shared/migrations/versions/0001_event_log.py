"""Inbox and outbox tables shared by every service.

Revision ID: event_log_0001
Revises:
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = "event_log_0001"
down_revision = None
branch_labels = ("event_log",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "inbox",
        sa.Column("consumer", sa.String(64), primary_key=True),
        sa.Column("message_key", sa.String(400), primary_key=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
    )
    op.create_table(
        "outbox",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                  primary_key=True, autoincrement=True),
        sa.Column("message_id", sa.String(200), nullable=False),
        sa.Column("subject", sa.String(400), nullable=False),
        sa.Column("headers", sa.JSON(), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_outbox_pending", "outbox", ["published_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_outbox_pending", "outbox")
    op.drop_table("outbox")
    op.drop_table("inbox")
