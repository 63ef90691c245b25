"""The inbox remembers why it refused a message and where it was in the stream, so that a
producer resending a refused event hears the same refusal again.

The outbox gets an index for the relay's reads of pending rows (published rows stay for days).

Keys written from now on are digests of (cluster, producer, source, id): see events.message_key.

Revision ID: event_log_0005
Revises: event_log_0004
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "event_log_0005"
down_revision = "event_log_0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("inbox") as table:
        table.add_column(sa.Column("reason", sa.String(2000), nullable=True))
        table.add_column(sa.Column("stream_sequence", sa.BigInteger(), nullable=True))
    op.create_index("ix_outbox_published_at_id", "outbox", ["published_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_outbox_published_at_id", table_name="outbox")
    with op.batch_alter_table("inbox") as table:
        table.drop_column("stream_sequence")
        table.drop_column("reason")
