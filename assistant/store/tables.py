"""SQLModel tables. Rows are appended, never updated: state is rebuilt from them.

The schema is created and changed only by the migrations in `assistant/migrations`; a change
here needs a new migration.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Column, Index
from sqlmodel import Field, SQLModel

from assistant.errors import InvalidConversationId

CONVERSATION_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


def utcnow() -> datetime:
    """The current time in UTC (timezone-aware)."""
    return datetime.now(UTC)


def check_conversation_id(conversation_id: object) -> str:
    """The id itself when the store can hold it: 1–64 characters of letters, digits, `_` and `-`."""
    if isinstance(conversation_id, str) and CONVERSATION_ID.fullmatch(conversation_id):
        return conversation_id
    raise InvalidConversationId("a conversation id is 1 to 64 characters of letters, digits, '_' and '-'")


class Conversation(SQLModel, table=True):
    """One conversation; `channel` is where it started (web, api, cli, eval)."""

    __tablename__ = "conversations"

    id: str = Field(primary_key=True, max_length=64)
    channel: str = Field(max_length=16, index=True)
    created_at: datetime = Field(default_factory=utcnow, index=True)


class Message(SQLModel, table=True):
    """A customer, assistant or human-agent message; assistant rows carry the turn's facts."""

    __tablename__ = "messages"
    __table_args__ = (Index("ix_messages_conversation_role_created", "conversation_id", "role", "created_at"),
                      Index("ix_messages_reply_to", "reply_to"))

    id: int | None = Field(default=None, primary_key=True)
    conversation_id: str = Field(foreign_key="conversations.id", index=True, max_length=64)
    role: str = Field(max_length=16)
    content: str
    channel: str = Field(max_length=16)
    created_at: datetime = Field(default_factory=utcnow)
    reply_to: int | None = Field(default=None, foreign_key="messages.id")
    decision: str | None = Field(default=None, max_length=16)
    reason: str | None = None
    reason_code: str | None = Field(default=None, max_length=32, index=True)
    """The decision's reason code (`human_request`, `no_evidence`, ...): what `eval logs` counts."""
    model_id: str | None = None
    adapter_id: str | None = None
    retrieval_s: float | None = None
    first_token_s: float | None = None
    total_s: float | None = None
    citations: list[dict[str, Any]] | None = Field(default=None, sa_column=Column(JSON))
    pii_redacted: bool = False
    groundedness: float | None = None
    groundedness_before: float | None = None
    fallback: bool = False
    evidence: list[dict[str, Any]] | None = Field(default=None, sa_column=Column(JSON))
    """The evidence units the prompt held: article number, doc id, kind, score and text."""
    removed: int | None = None
    """Sentences of the draft the check held back."""
    timings: dict[str, float | None] | None = Field(default=None, sa_column=Column(JSON))
    """Seconds per stage of the turn (prepare, retrieval, evidence, generation, check, log)."""


class Retrieval(SQLModel, table=True):
    """One retrieved passage of a turn, with its rank and scores."""

    __tablename__ = "retrievals"

    id: int | None = Field(default=None, primary_key=True)
    message_id: int = Field(foreign_key="messages.id", index=True)
    rank: int
    doc_id: str
    chunk_id: str
    score: float
    confidence: float


class Feedback(SQLModel, table=True):
    """A thumbs up (+1) or down (-1) on an assistant message."""

    __tablename__ = "feedback"

    id: int | None = Field(default=None, primary_key=True)
    message_id: int = Field(foreign_key="messages.id", index=True)
    rating: int
    comment: str | None = None
    created_at: datetime = Field(default_factory=utcnow)


class Escalation(SQLModel, table=True):
    """A handoff to a human; its id is the ticket number shown to the customer."""

    __tablename__ = "escalations"

    id: int | None = Field(default=None, primary_key=True)
    conversation_id: str = Field(foreign_key="conversations.id", index=True, max_length=64)
    reason: str
    created_at: datetime = Field(default_factory=utcnow)
    summary: str | None = None


class TicketEvent(SQLModel, table=True):
    """A change of a ticket's status (open → assigned → resolved, or released back to the bot)."""

    __tablename__ = "ticket_events"
    __table_args__ = (Index("ix_ticket_events_ticket_id_id", "ticket_id", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    ticket_id: int = Field(foreign_key="escalations.id")
    status: str = Field(max_length=16)
    agent: str | None = None
    created_at: datetime = Field(default_factory=utcnow)
