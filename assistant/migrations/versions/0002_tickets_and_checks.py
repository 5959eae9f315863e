"""Tickets with status events, conversation summaries, PII and grounding flags on messages.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ADD COLUMN (SQLite supports it): a batch copy of `messages` would have to drop a table that
    # logged rows reference, which foreign keys rightly refuse.
    op.add_column("messages", sa.Column("pii_redacted", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.add_column("messages", sa.Column("groundedness", sa.Float(), nullable=True))
    op.add_column("messages", sa.Column("groundedness_before", sa.Float(), nullable=True))
    op.add_column("messages", sa.Column("fallback", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.add_column("escalations", sa.Column("summary", sa.Text(), nullable=True))
    op.create_table(
        "ticket_events",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("ticket_id", sa.Integer(), sa.ForeignKey("escalations.id"), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("agent", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_ticket_events_ticket_id", "ticket_events", ["ticket_id"])


def downgrade() -> None:
    op.drop_table("ticket_events")
    with op.batch_alter_table("escalations") as batch:
        batch.drop_column("summary")
    with op.batch_alter_table("messages") as batch:
        for column in ("fallback", "groundedness_before", "groundedness", "pii_redacted"):
            batch.drop_column(column)
