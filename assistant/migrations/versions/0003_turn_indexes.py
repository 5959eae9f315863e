"""Indexes for the per-turn queries, and an `open` event for tickets opened before 0002.

A ticket's status is its latest event; tickets opened before 0002 had no events, so they would look
like no ticket at all. Their `open` event carries the ticket's own creation time.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(sa.text(
        "INSERT INTO ticket_events (ticket_id, status, agent, created_at) "
        "SELECT e.id, 'open', NULL, e.created_at FROM escalations e "
        "WHERE NOT EXISTS (SELECT 1 FROM ticket_events t WHERE t.ticket_id = e.id) ORDER BY e.id"
    ))
    # latest event of a ticket: max(id) for one ticket_id is a single index probe
    op.create_index("ix_ticket_events_ticket_id_id", "ticket_events", ["ticket_id", "id"])
    op.drop_index("ix_ticket_events_ticket_id", "ticket_events")
    # the rate limit counts one role's recent messages in one conversation
    op.create_index("ix_messages_conversation_role_created", "messages", ["conversation_id", "role", "created_at"])
    # replies of a message (is a customer message answered?)
    op.create_index("ix_messages_reply_to", "messages", ["reply_to"])


def downgrade() -> None:
    # the backfilled `open` events stay: they are true, and 0002's schema holds them
    op.drop_index("ix_messages_reply_to", "messages")
    op.drop_index("ix_messages_conversation_role_created", "messages")
    op.create_index("ix_ticket_events_ticket_id", "ticket_events", ["ticket_id"])
    op.drop_index("ix_ticket_events_ticket_id_id", "ticket_events")
