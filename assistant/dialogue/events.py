"""Events a turn produces. The UI, the API and `assistant ask` only render these."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from knowledge import Hit


@dataclass(frozen=True)
class Token:
    """A piece of the reply as the model writes it (shown while streaming)."""

    text: str


@dataclass(frozen=True)
class Sources:
    """The passages the reply is based on (empty when the assistant abstains)."""

    hits: list[Hit]


@dataclass(frozen=True)
class Escalated:
    """The conversation was handed to a human; `ticket_id` is what the customer is told."""

    ticket_id: int
    reason: str


@dataclass(frozen=True)
class Final:
    """The checked reply, which replaces what was streamed; `message_id` is its row in the store."""

    text: str
    citations: list[dict[str, Any]]
    decision: str
    reason: str
    conversation_id: str = ""
    message_id: int | None = None
    timings: dict[str, float | None] = field(default_factory=dict)


Event = Token | Sources | Escalated | Final
