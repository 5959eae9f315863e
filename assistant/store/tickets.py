"""Tickets of the conversation store: a handoff and its status events, read with indexed queries.

A ticket's status is its latest event (append-only: open → assigned → released/resolved). Every
question asked per turn (the conversation's open ticket, who holds it) reads one conversation's
tickets and, for each, one index probe for its latest event; nothing loads a whole table.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Select, func
from sqlalchemy.orm import aliased
from sqlmodel import Session, SQLModel, col, select

from assistant.store.tables import Conversation, Escalation, TicketEvent, check_conversation_id

UNRESOLVED = ("open", "assigned", "released")
TICKET_TRANSITIONS = {"open": {"assigned", "resolved"}, "assigned": {"released", "resolved"},
                      "released": {"assigned", "resolved"}, "resolved": set()}
MAX_ROW_ID = 2**31 - 1  # ids are 32-bit INTEGER columns; a larger number names no row


def is_row_id(value: Any) -> bool:
    """True for an int that can be the id of a row (anything else names no row)."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_ROW_ID


def tickets_query(statuses: Sequence[str]) -> Select:
    """Tickets joined to their latest event, that event's status one of `statuses`, oldest first."""
    earlier = aliased(TicketEvent)
    latest = (select(func.max(earlier.id)).where(earlier.ticket_id == Escalation.id)
              .correlate(Escalation).scalar_subquery())
    return (select(Escalation, TicketEvent).join(TicketEvent, col(TicketEvent.id) == latest)
            .where(col(TicketEvent.status).in_(list(statuses))).order_by(col(Escalation.id)))


def ticket_row(ticket: Escalation, change: TicketEvent) -> dict[str, Any]:
    """A ticket as the console shows it: its current status and agent with the handoff's facts."""
    return {"ticket_id": ticket.id, "conversation_id": ticket.conversation_id, "status": change.status,
            "agent": change.agent, "reason": ticket.reason, "summary": ticket.summary, "created_at": ticket.created_at}


def lock_row(session: Session, table: type[SQLModel], row_id: Any) -> bool:
    """Lock one row until the transaction ends (FOR NO KEY UPDATE on PostgreSQL; a SQLite writer
    already holds the database's write lock); False when there is no such row."""
    query = select(table.id).where(table.id == row_id).with_for_update(key_share=True)
    return session.execute(query).first() is not None


def latest_status(session: Session, ticket_id: int) -> str | None:
    """A ticket's current status (its latest event), or None when it has no events."""
    query = (select(TicketEvent.status).where(TicketEvent.ticket_id == ticket_id)
             .order_by(col(TicketEvent.id).desc()).limit(1))
    return session.execute(query).scalar_one_or_none()


class TicketLog:
    """The ticket half of the Store (it uses the Store's `_session()` and `_writing()`)."""

    def tickets(self, statuses: Sequence[str] = UNRESOLVED, limit: int | None = None) -> list[dict[str, Any]]:
        """Tickets whose current status is one of `statuses`, oldest first, with that status and its agent."""
        query = tickets_query(statuses)
        if limit is not None:
            query = query.limit(limit)
        with self._session() as session:
            return [ticket_row(ticket, change) for ticket, change in session.execute(query)]

    def ticket(self, ticket_id: int) -> dict[str, Any] | None:
        """One ticket with its current status, or None."""
        if not is_row_id(ticket_id):
            return None
        query = tickets_query(tuple(TICKET_TRANSITIONS)).where(Escalation.id == ticket_id)
        with self._session() as session:
            found = session.execute(query).first()
        return ticket_row(*found) if found else None

    def conversation_tickets(self, conversation_id: str, statuses: Sequence[str] = UNRESOLVED) -> list[dict[str, Any]]:
        """One conversation's tickets whose current status is one of `statuses`, oldest first."""
        check_conversation_id(conversation_id)
        query = tickets_query(statuses).where(Escalation.conversation_id == conversation_id)
        with self._session() as session:
            return [ticket_row(ticket, change) for ticket, change in session.execute(query)]

    def active_ticket(self, conversation_id: str) -> int | None:
        """The conversation's ticket that is not resolved yet, if any."""
        rows = self.conversation_tickets(conversation_id)
        return rows[0]["ticket_id"] if rows else None

    def held_by(self, conversation_id: str) -> str | None:
        """The agent who has taken over the conversation, if one has."""
        rows = self.conversation_tickets(conversation_id, ("assigned",))
        return (rows[0]["agent"] or "an agent") if rows else None

    def ticket_status(self, ticket_id: int) -> str:
        """A ticket's current status: its latest event."""
        status = None
        if is_row_id(ticket_id):
            with self._session() as session:
                status = latest_status(session, ticket_id)
        if status is None:
            raise ValueError(f"no ticket #{ticket_id}")
        return status

    def ticket_events(self, ticket_id: int) -> list[TicketEvent]:
        """A ticket's status events, oldest first."""
        if not is_row_id(ticket_id):
            return []
        with self._session() as session:
            query = select(TicketEvent).where(TicketEvent.ticket_id == ticket_id).order_by(col(TicketEvent.id))
            return list(session.exec(query))

    def ticket_changes(self, conversation_id: str, after_id: int = 0) -> list[TicketEvent]:
        """Status events of a conversation's tickets with an id above `after_id`, oldest first (what its
        customer is told: an agent joined, handed back, resolved)."""
        with self._session() as session:
            query = (select(TicketEvent).join(Escalation, col(Escalation.id) == col(TicketEvent.ticket_id))
                     .where(Escalation.conversation_id == check_conversation_id(conversation_id),
                            col(TicketEvent.id) > after_id)
                     .order_by(col(TicketEvent.id)))
            return list(session.exec(query))

    def open_ticket(self, conversation_id: str, reason: str, summary: str | None = None) -> tuple[int, bool]:
        """The conversation's unresolved ticket, or a new one: (ticket id, True when it was opened now).

        The conversation's row is locked while its tickets are read and the new one written, so of
        simultaneous handoffs of one conversation exactly one opens a ticket and the rest get its id.
        """
        check_conversation_id(conversation_id)
        with self._writing() as session:
            if not lock_row(session, Conversation, conversation_id):
                raise ValueError(f"no conversation {conversation_id!r} to hand over")
            query = tickets_query(UNRESOLVED).where(Escalation.conversation_id == conversation_id).limit(1)
            found = session.execute(query).first()
            if found is not None:
                return found[0].id, False
            ticket = Escalation(conversation_id=conversation_id, reason=reason, summary=summary)
            session.add(ticket)
            session.flush()
            session.add(TicketEvent(ticket_id=ticket.id, status="open"))
            return ticket.id, True

    def add_escalation(self, conversation_id: str, reason: str, summary: str | None = None) -> Escalation:
        """The conversation's unresolved ticket, opened now if it has none (see `open_ticket`)."""
        ticket_id, _ = self.open_ticket(conversation_id, reason, summary)
        with self._session() as session:
            return session.get(Escalation, ticket_id)

    def set_ticket_status(self, ticket_id: int, status: str, agent: str | None = None) -> str:
        """Move a ticket: open → assigned → resolved; `released` hands an assigned one back to the bot.

        The ticket's row is locked while its status is read and the new event written, so of agents
        taking over one ticket at once exactly one wins; the others are told who was first.
        """
        with self._writing() as session:
            current = None
            if is_row_id(ticket_id) and lock_row(session, Escalation, ticket_id):
                current = latest_status(session, ticket_id)
            if current is None:
                raise ValueError(f"no ticket #{ticket_id}")
            allowed = TICKET_TRANSITIONS.get(current, set())
            if status not in allowed:
                options = ", ".join(sorted(allowed)) or "nothing"
                raise ValueError(f"ticket #{ticket_id} is {current}: it can go to {options}, not {status}")
            session.add(TicketEvent(ticket_id=ticket_id, status=status, agent=agent))
        return status

    def escalations(self, conversation_id: str | None = None) -> list[Escalation]:
        """Tickets, oldest first (of one conversation when given)."""
        with self._session() as session:
            query = select(Escalation).order_by(col(Escalation.id))
            if conversation_id is not None:
                query = query.where(Escalation.conversation_id == check_conversation_id(conversation_id))
            return list(session.exec(query))
