"""How the assistant did with real customers, from the conversation log (`assistant eval logs`).

Definitions (the README repeats them). A conversation counts when the customer wrote at least one
message in it; a turn is one customer message. A conversation is **escalated** when any bot reply
in it decided `escalate`; **contained** when it was not; **resolved** when it was contained and no
bot reply in it got a thumbs-down (the latest rating of a reply counts). The thumbs rates are shares
of bot replies. Latencies are those of bot replies. Evaluation turns (channel `eval`) are left out
unless asked for.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from assistant.evaluation.aggregate import median, percentile, rate
from assistant.periods import Period
from assistant.store import Message, Store

ESCALATE = "escalate"
DECLINED_REASONS = frozenset({"no_passage", "low_confidence", "unknown_name", "no_evidence", "unsupported",
                              "out_of_scope", "repeated_abstention"})
"""Reason codes of replies that declined a question for want of knowledge (not abuse, rate limits or a
request for a person): the questions behind them are knowledge gaps."""


@dataclass
class ConversationLog:
    """One conversation's messages and the latest rating of each rated bot reply."""

    conversation_id: str
    messages: list[Message]
    ratings: dict[int, int] = field(default_factory=dict)

    @property
    def customer_messages(self) -> list[Message]:
        return [m for m in self.messages if m.role == "user"]

    @property
    def replies(self) -> list[Message]:
        return [m for m in self.messages if m.role == "assistant"]

    @property
    def escalation(self) -> Message | None:
        """The first bot reply that handed the conversation to a person."""
        return next((m for m in self.replies if m.decision == ESCALATE), None)

    @property
    def thumbs_down(self) -> bool:
        return any(self.ratings.get(m.id) == -1 for m in self.replies if m.id is not None)

    @property
    def started(self) -> date:
        return self.messages[0].created_at.date()


@dataclass
class Activity:
    """Everything the log holds for a period: the conversations in which a customer wrote."""

    period: Period
    conversations: list[ConversationLog]

    @property
    def replies(self) -> list[Message]:
        return [reply for c in self.conversations for reply in c.replies]


def load_activity(store: Store, period: Period) -> Activity:
    """The period's conversations with their messages and ratings (two queries plus one per 1,000 replies)."""
    messages = store.messages_started(period.since, period.until, period.channels)
    ratings = store.ratings([m.id for m in messages if m.role == "assistant" and m.id is not None])
    conversations = []
    for conversation_id, rows in itertools.groupby(messages, key=lambda m: m.conversation_id):
        rows = list(rows)
        if any(m.role == "user" for m in rows):
            conversations.append(ConversationLog(conversation_id, rows, {m.id: ratings[m.id] for m in rows
                                                                         if m.id in ratings}))
    conversations.sort(key=lambda c: c.messages[0].created_at)
    return Activity(period, conversations)


def log_figures(activity: Activity) -> dict[str, Any]:
    """The headline figures of `eval logs` (keys in ARCHITECTURE.md, `knowledge_gaps` left to the caller),
    then the breakdowns `feedback` and `daily`."""
    conversations = activity.conversations
    escalated = [c for c in conversations if c.escalation is not None]
    resolved = [c for c in conversations if c.escalation is None and not c.thumbs_down]
    replies = activity.replies
    ratings = [rating for c in conversations for rating in c.ratings.values()]
    first = [m.first_token_s for m in replies if m.first_token_s is not None]
    total = [m.total_s for m in replies if m.total_s is not None]
    reasons = Counter(c.escalation.reason_code or "unknown" for c in escalated)  # type: ignore[union-attr]
    return {
        "conversations": len(conversations),
        "turns": sum(len(c.customer_messages) for c in conversations),
        "resolution_rate": rate(len(resolved), len(conversations)),
        "containment_rate": rate(len(conversations) - len(escalated), len(conversations)),
        "escalation_rate": rate(len(escalated), len(conversations)),
        "escalation_reasons": dict(reasons.most_common()),
        "thumbs_up_rate": rate(ratings.count(1), len(replies)),
        "thumbs_down_rate": rate(ratings.count(-1), len(replies)),
        "first_token_p50_s": median(first),
        "first_token_p95_s": percentile(first, 0.95),
        "total_p50_s": median(total),
        "total_p95_s": percentile(total, 0.95),
        "feedback": {"replies": len(replies), "thumbs_up": ratings.count(1), "thumbs_down": ratings.count(-1)},
        "daily": daily_figures(conversations),
    }


def daily_figures(conversations: Sequence[ConversationLog]) -> list[dict[str, Any]]:
    """Per day a conversation started: conversations, turns, resolution and escalation rates, thumbs."""
    days = []
    for day, group in itertools.groupby(sorted(conversations, key=lambda c: c.started), key=lambda c: c.started):
        group = list(group)
        escalated = sum(c.escalation is not None for c in group)
        ratings = [r for c in group for r in c.ratings.values()]
        days.append({
            "day": day.isoformat(), "conversations": len(group),
            "turns": sum(len(c.customer_messages) for c in group),
            "resolution_rate": rate(sum(c.escalation is None and not c.thumbs_down for c in group), len(group)),
            "escalation_rate": rate(escalated, len(group)),
            "thumbs_up": ratings.count(1), "thumbs_down": ratings.count(-1),
        })
    return days

