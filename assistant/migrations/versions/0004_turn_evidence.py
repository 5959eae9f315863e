"""Reason codes, the evidence each reply was given and the check's outcome, on assistant messages.

`reason` held "code: detail" prose; `reason_code` lets `eval logs` count reasons without parsing it
(existing rows get the part before the first colon). `evidence` is the list of units the prompt
held (article, doc id, score, text); `removed` the sentences the check held back; `timings` the
seconds per stage of the turn.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("messages", sa.Column("reason_code", sa.String(length=32), nullable=True))
    op.add_column("messages", sa.Column("evidence", sa.JSON(), nullable=True))
    op.add_column("messages", sa.Column("removed", sa.Integer(), nullable=True))
    op.add_column("messages", sa.Column("timings", sa.JSON(), nullable=True))
    op.execute(sa.text(
        "UPDATE messages SET reason_code = substr(reason, 1, 32) WHERE reason IS NOT NULL AND reason_code IS NULL"
    ))
    op.execute(sa.text(
        "UPDATE messages SET reason_code = substr(reason_code, 1, instr(reason_code, ':') - 1) "
        "WHERE instr(reason_code, ':') > 0"
    ) if op.get_bind().dialect.name == "sqlite" else sa.text(
        "UPDATE messages SET reason_code = split_part(reason_code, ':', 1) WHERE position(':' in reason_code) > 0"
    ))
    op.create_index("ix_messages_reason_code", "messages", ["reason_code"])


def downgrade() -> None:
    op.drop_index("ix_messages_reason_code", "messages")
    for column in ("timings", "removed", "evidence", "reason_code"):
        op.drop_column("messages", column)
