"""Conversation store: append-only SQL tables (SQLModel), schema from Alembic migrations."""

from assistant.store.store import Store
from assistant.store.tables import Conversation, Escalation, Feedback, Message, Retrieval, TicketEvent

__all__ = ["Conversation", "Escalation", "Feedback", "Message", "Retrieval", "Store", "TicketEvent"]
