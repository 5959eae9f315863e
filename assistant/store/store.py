"""The Store: append conversation events and read them back (SQLite or PostgreSQL)."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import exists, func, inspect
from sqlalchemy.engine import Engine
from sqlalchemy.exc import ArgumentError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import aliased
from sqlmodel import Session, col, select

from assistant.config import mask_url
from assistant.errors import InvalidFeedback, RateLimited, StoreUnavailable
from assistant.store.engine import WRITE, insert_ignoring, lock_schema, make_engine, migration_lock
from assistant.store.tables import Conversation, Feedback, Message, Retrieval, check_conversation_id, utcnow
from assistant.store.tickets import TicketLog, is_row_id, lock_row
from knowledge import Hit

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"
NO_REPLY_TO_RATE = "feedback can only be given on a reply of this conversation"


def new_conversation_id() -> str:
    """A fresh random conversation id."""
    return uuid.uuid4().hex


class Store(TicketLog):
    """Append-only conversation log over one SQLAlchemy URL; `open()` brings the schema up to date."""

    def __init__(self, url: str) -> None:
        self.url = url
        try:
            self.engine: Engine = make_engine(url)
        except (ArgumentError, ImportError, ValueError) as err:
            raise StoreUnavailable(
                f"ASSISTANT_DATABASE_URL {mask_url(url)!r} is not a usable SQLAlchemy URL ({err}); "
                "use e.g. sqlite:///path/assistant.db or postgresql+psycopg://user@host:5432/db"
            ) from err
        self._writer = self.engine.execution_options(**{WRITE: True})

    @classmethod
    def open(cls, url: str) -> Store:
        """Connect and apply any pending migration; an unreachable database is a clear error."""
        store = cls(url)
        store.upgrade()
        return store

    def upgrade(self, revision: str = "head") -> str:
        """Apply pending Alembic migrations (up to `revision`); returns the schema revision now in force.

        Processes starting together on one store upgrade it one at a time (a lock file beside a
        SQLite database, an advisory lock on PostgreSQL).
        """
        from alembic import command
        from alembic.config import Config
        from alembic.runtime.migration import MigrationContext

        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        try:
            # one process at a time: the others wait, then find the schema up to date
            with migration_lock(self.url), self._writer.begin() as connection:
                lock_schema(connection)
                config.attributes["connection"] = connection
                command.upgrade(config, revision)
                return MigrationContext.configure(connection).get_current_revision() or "base"
        except OperationalError as err:
            raise StoreUnavailable(
                f"cannot reach the conversation store at {mask_url(self.url)}: {' '.join(str(err.orig).split())} "
                "Start the database or point ASSISTANT_DATABASE_URL at one that is running."
            ) from err

    def tables(self) -> list[str]:
        """Names of the tables in the store."""
        return sorted(inspect(self.engine).get_table_names())

    def _session(self) -> Session:
        return Session(self.engine, expire_on_commit=False)

    @contextmanager
    def _writing(self) -> Iterator[Session]:
        """One write transaction: committed when the block ends, rolled back when it raises."""
        try:
            with Session(self._writer, expire_on_commit=False) as session, session.begin():
                yield session
        except OperationalError as err:
            raise StoreUnavailable(f"could not write to the conversation store: {err.orig}") from err

    def _add(self, *rows: Any) -> None:
        with self._writing() as session:
            session.add_all(rows)

    # -- writing ---------------------------------------------------------------------------
    def ensure_conversation(self, conversation_id: str | None, channel: str) -> str:
        """The id of an existing conversation, or of a new one started on `channel` (a fresh id when none is given)."""
        if not conversation_id:
            conversation_id = new_conversation_id()
        elif self.conversation(conversation_id) is not None:
            return conversation_id
        with self._writing() as session:  # simultaneous first messages: the first insert wins, none fails
            self._insert_conversation(session, conversation_id, channel)
        return conversation_id

    @staticmethod
    def _insert_conversation(session: Session, conversation_id: str, channel: str) -> None:
        row = {"id": conversation_id, "channel": channel, "created_at": utcnow()}
        session.execute(insert_ignoring(session.get_bind().dialect.name, Conversation.__table__, **row))

    def add_message(self, conversation_id: str, role: str, content: str, channel: str, **turn: Any) -> Message:
        """Append a message (customer, assistant or agent) with the turn's facts."""
        check_conversation_id(conversation_id)
        message = Message(conversation_id=conversation_id, role=role, content=content, channel=channel, **turn)
        self._add(message)
        return message

    def add_customer_message(self, conversation_id: str, content: str, channel: str, *, max_per_minute: int,
                             **turn: Any) -> Message:
        """Append a customer message unless the conversation already has `max_per_minute` in the last minute.

        Starts the conversation if it is new. The conversation's row is locked while its recent
        messages are counted and this one is written, so simultaneous messages cannot all slip under
        the limit; over it, nothing is stored and RateLimited is raised.
        """
        check_conversation_id(conversation_id)
        with self._writing() as session:
            self._insert_conversation(session, conversation_id, channel)
            lock_row(session, Conversation, conversation_id)
            if self._count_recent(session, conversation_id, "user", 60) >= max_per_minute:
                raise RateLimited(f"that is more than {max_per_minute} messages in a minute: "
                                  "please wait a moment before sending the next one")
            message = Message(conversation_id=conversation_id, role="user", content=content, channel=channel, **turn)
            session.add(message)
        return message

    def record_reply(self, conversation_id: str, content: str, channel: str, *, reply_to: int | None,
                     hits: Iterable[Hit] = (), **turn: Any) -> Message:
        """Append the assistant's reply to `reply_to` with its retrieved passages, all in one transaction.

        A turn interrupted before this commits (a crash, kill -9) leaves its customer message with
        no reply and nothing half-written: `unanswered()` lists it.
        """
        check_conversation_id(conversation_id)
        with self._writing() as session:
            message = Message(conversation_id=conversation_id, role="assistant", content=content, channel=channel,
                              reply_to=reply_to, **turn)
            session.add(message)
            session.flush()
            session.add_all(retrieval_rows(message.id, hits))
        return message

    def add_retrievals(self, message_id: int, hits: Sequence[Hit]) -> None:
        """Append the retrieved passages of an assistant message, in rank order (a turn writes them with
        `record_reply` instead)."""
        rows = retrieval_rows(message_id, hits)
        if rows:
            self._add(*rows)

    def add_feedback(self, conversation_id: str, message_id: int, rating: int, comment: str | None = None) -> Feedback:
        """Append a thumbs up (+1) or down (-1) on an assistant reply of `conversation_id`.

        Any other message id (unknown, a customer message, another conversation's reply) gets one and
        the same error, so the answer does not tell which ids are replies.
        """
        if rating not in (-1, 1):
            raise InvalidFeedback("rating must be +1 (thumbs up) or -1 (thumbs down)")
        check_conversation_id(conversation_id)
        if is_row_id(message_id):
            query = select(Message.id).where(Message.id == message_id, Message.conversation_id == conversation_id,
                                             Message.role == "assistant")
            with self._writing() as session:
                if session.exec(query).first() is not None:
                    row = Feedback(message_id=message_id, rating=rating, comment=comment)
                    session.add(row)
                    return row
        raise InvalidFeedback(NO_REPLY_TO_RATE)

    def conversation(self, conversation_id: str) -> Conversation | None:
        """The conversation row, or None."""
        check_conversation_id(conversation_id)
        with self._session() as session:
            return session.get(Conversation, conversation_id)

    def messages_since(self, conversation_id: str, after_id: int, roles: Sequence[str] = ("agent",)) -> list[Message]:
        """Messages of `roles` newer than `after_id` (what the customer's chat has not shown yet)."""
        check_conversation_id(conversation_id)
        with self._session() as session:
            query = (select(Message).where(Message.conversation_id == conversation_id, Message.id > after_id,
                                           col(Message.role).in_(list(roles))).order_by(col(Message.id)))
            return list(session.exec(query))

    def count_recent(self, conversation_id: str, role: str, seconds: float) -> int:
        """Messages of `role` in the conversation during the last `seconds` (for rate limits)."""
        check_conversation_id(conversation_id)
        with self._session() as session:
            return self._count_recent(session, conversation_id, role, seconds)

    @staticmethod
    def _count_recent(session: Session, conversation_id: str, role: str, seconds: float) -> int:
        since = utcnow() - timedelta(seconds=seconds)
        query = select(func.count()).select_from(Message).where(
            Message.conversation_id == conversation_id, Message.role == role, Message.created_at >= since)
        return session.exec(query).one()

    # -- reading ---------------------------------------------------------------------------
    def history(self, conversation_id: str) -> list[dict[str, str]]:
        """The conversation as chat messages (`role`, `content`), oldest first."""
        return [{"role": m.role, "content": m.content} for m in self.messages(conversation_id)]

    def messages(self, conversation_id: str) -> list[Message]:
        """A conversation's messages, oldest first."""
        check_conversation_id(conversation_id)
        with self._session() as session:
            query = select(Message).where(Message.conversation_id == conversation_id).order_by(col(Message.id))
            return list(session.exec(query))

    def unanswered(self, conversation_id: str | None = None, *, older_than_s: float = 60.0, limit: int = 100,
                   exclude_channels: Sequence[str] = ("eval",)) -> list[Message]:
        """Customer messages older than `older_than_s` that nothing answered yet, oldest first.

        A message is answered by a reply to it (`reply_to`) or by a later agent message in its
        conversation. What is left are turns cut off before their reply was written, and messages
        waiting for the agent who holds the conversation. Seeded evaluation history has no replies
        by design, so `eval` is left out unless asked for.
        """
        later = aliased(Message)
        replied = exists().where(later.reply_to == Message.id)
        agent_answered = exists().where(later.conversation_id == Message.conversation_id, later.role == "agent",
                                        later.id > Message.id)
        query = (select(Message).where(Message.role == "user", ~replied, ~agent_answered,
                                       Message.created_at <= utcnow() - timedelta(seconds=older_than_s))
                 .order_by(col(Message.id)).limit(limit))
        if conversation_id is not None:
            query = query.where(Message.conversation_id == check_conversation_id(conversation_id))
        if exclude_channels:
            query = query.where(col(Message.channel).not_in(list(exclude_channels)))
        with self._session() as session:
            return list(session.exec(query))

    def retrievals(self, message_id: int) -> list[Retrieval]:
        """The passages retrieved for an assistant message, in rank order."""
        with self._session() as session:
            query = select(Retrieval).where(Retrieval.message_id == message_id).order_by(col(Retrieval.rank))
            return list(session.exec(query))

    def feedback(self, message_id: int) -> list[Feedback]:
        """Feedback given on an assistant message."""
        with self._session() as session:
            return list(session.exec(select(Feedback).where(Feedback.message_id == message_id)))

    def ratings(self, message_ids: Sequence[int]) -> dict[int, int]:
        """The latest rating (+1 or -1) of each of these messages that has feedback (a later rating replaces
        an earlier one)."""
        ids = [message_id for message_id in message_ids if is_row_id(message_id)]
        if not ids:
            return {}
        found: dict[int, int] = {}
        with self._session() as session:
            for start in range(0, len(ids), 1000):  # bounded parameter lists, whatever the period holds
                query = (select(Feedback.message_id, Feedback.rating)
                         .where(col(Feedback.message_id).in_(ids[start:start + 1000])).order_by(col(Feedback.id)))
                found.update(dict(session.exec(query).all()))
        return found

    def conversations_started(self, since: datetime | None = None, until: datetime | None = None,
                              channels: Sequence[str] | None = None) -> list[Conversation]:
        """Conversations started at or after `since` and before `until` on one of `channels`, oldest first."""
        query = select(Conversation).order_by(col(Conversation.created_at), col(Conversation.id))
        if since is not None:
            query = query.where(Conversation.created_at >= since)
        if until is not None:
            query = query.where(Conversation.created_at < until)
        if channels is not None:
            query = query.where(col(Conversation.channel).in_(list(channels)))
        with self._session() as session:
            return list(session.exec(query))

    def messages_started(self, since: datetime | None = None, until: datetime | None = None,
                         channels: Sequence[str] | None = None) -> list[Message]:
        """Every message of the conversations `conversations_started` selects, by conversation then in order."""
        query = (select(Message).join(Conversation, col(Conversation.id) == col(Message.conversation_id))
                 .order_by(col(Message.conversation_id), col(Message.id)))
        if since is not None:
            query = query.where(Conversation.created_at >= since)
        if until is not None:
            query = query.where(Conversation.created_at < until)
        if channels is not None:
            query = query.where(col(Conversation.channel).in_(list(channels)))
        with self._session() as session:
            return list(session.exec(query))

    def conversations(self, limit: int = 100) -> list[Conversation]:
        """The most recent conversations, newest first."""
        with self._session() as session:
            query = select(Conversation).order_by(col(Conversation.created_at).desc()).limit(limit)
            return list(session.exec(query))


def retrieval_rows(message_id: int, hits: Iterable[Hit]) -> list[Retrieval]:
    """Retrieval rows of an assistant message, in rank order."""
    return [Retrieval(message_id=message_id, rank=rank, doc_id=hit.doc_id, chunk_id=hit.chunk_id,
                      score=float(hit.score), confidence=float(hit.confidence))
            for rank, hit in enumerate(hits, start=1)]


__all__ = ["Store", "StoreUnavailable", "SQLAlchemyError", "new_conversation_id"]
