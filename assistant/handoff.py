"""The human side of a handoff: the ticket queue, transcripts, takeover, agent replies, resolution.

Ticket state is rebuilt from append-only status events (open → assigned → released/resolved).
While a ticket is assigned, the agent holds the conversation and the bot stays quiet.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from assistant.errors import InvalidMessage
from assistant.guards import check_message, redact_pii
from assistant.store import Store

log = logging.getLogger(__name__)


@dataclass
class AgentDesk:
    """What the agent console does, as plain methods over the store."""

    store: Store
    max_message_chars: int = 4000

    def queue(self) -> list[dict[str, Any]]:
        """Tickets waiting for or held by an agent, oldest first."""
        return self.store.tickets(("open", "assigned", "released"))

    def ticket(self, ticket_id: int) -> dict[str, Any]:
        """The ticket with its current status; an unknown number is an error."""
        row = self.store.ticket(ticket_id)
        if row is None:
            raise InvalidMessage(f"there is no ticket #{ticket_id}")
        return row

    def transcript(self, ticket_id: int) -> list[dict[str, Any]]:
        """The conversation of a ticket: each message with its decision, reason and retrieved passages."""
        conversation_id = self.ticket(ticket_id)["conversation_id"]
        rows = []
        for message in self.store.messages(conversation_id):
            rows.append({
                "id": message.id, "role": message.role, "content": message.content, "decision": message.decision,
                "reason": message.reason, "created_at": message.created_at,
                "retrievals": [{"rank": r.rank, "doc_id": r.doc_id, "score": r.score, "confidence": r.confidence}
                               for r in self.store.retrievals(message.id)] if message.role == "assistant" else [],
            })
        return rows

    def take_over(self, ticket_id: int, agent: str) -> str:
        """Assign the ticket to `agent`: the bot stays quiet in its conversation."""
        return self._move(ticket_id, "assigned", agent)

    def hand_back(self, ticket_id: int, agent: str) -> str:
        """Give the conversation back to the bot (the ticket stays in the queue as released)."""
        return self._move(ticket_id, "released", agent)

    def resolve(self, ticket_id: int, agent: str) -> str:
        """Close the ticket."""
        return self._move(ticket_id, "resolved", agent)

    def reply(self, ticket_id: int, agent: str, text: str) -> int:
        """Send a message to the customer as the agent (the agent must hold the conversation)."""
        ticket = self.ticket(ticket_id)
        if ticket["status"] != "assigned":
            raise InvalidMessage(f"take over ticket #{ticket_id} before replying (it is {ticket['status']})")
        text = check_message(text, self.max_message_chars)
        stored, found = redact_pii(text)
        conversation = self.store.conversation(ticket["conversation_id"])
        message = self.store.add_message(ticket["conversation_id"], "agent", stored, conversation.channel,
                                         reason=f"agent {agent}", pii_redacted=bool(found))
        log.info("agent reply ticket=%s agent=%s message=%s", ticket_id, agent, message.id)
        return message.id

    def _move(self, ticket_id: int, status: str, agent: str) -> str:
        self.ticket(ticket_id)
        try:
            return self.store.set_ticket_status(ticket_id, status, agent)
        except ValueError as err:
            raise InvalidMessage(str(err)) from err
