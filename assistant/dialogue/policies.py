"""Pure decision functions: conversation facts in, an action with its reason out."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from knowledge import Hit

ANSWER, ABSTAIN, ESCALATE = "answer", "abstain", "escalate"

_PERSON = r"(human|person|people|agent|someone|somebody|representative|rep|operator|staff|manager)"
_HUMAN_REQUEST = [
    re.compile(rf"\b(talk|speak|chat|connect|transfer|put) (me )?(to|with|through to) (a |an |the |your |some )?"
               rf"(real |live |human )?{_PERSON}\b", re.IGNORECASE),
    re.compile(r"\b(real|live|actual) (person|human|agent)\b", re.IGNORECASE),
    re.compile(r"\bhuman (agent|being|support|help)\b", re.IGNORECASE),
    re.compile(rf"^\W*(a |an )?{_PERSON}s?( please| now| pls)?\W*$", re.IGNORECASE),
]


@dataclass(frozen=True)
class Decision:
    """What to do with a turn and why (the reason is logged)."""

    action: str
    reason: str


def asks_for_human(text: str) -> bool:
    """True when the customer explicitly asks for a person ("agent", "human", "talk to someone")."""
    return any(pattern.search(text) for pattern in _HUMAN_REQUEST)


def decide(text: str, hits: Sequence[Hit], abstain_below: float) -> Decision:
    """Escalate on an explicit ask, abstain when retrieval found nothing confident, else answer."""
    if asks_for_human(text):
        return Decision(ESCALATE, "customer asked for a human")
    if not hits:
        return Decision(ABSTAIN, "no passage retrieved")
    best = max(hit.confidence for hit in hits)
    if best < abstain_below:
        return Decision(ABSTAIN, f"best retrieval confidence {best:.2f} below {abstain_below:.2f}")
    return Decision(ANSWER, f"best retrieval confidence {best:.2f}")
