"""Pure decision functions: the facts of a turn in, an action with its reason out.

Policies are checked in priority order; the first that fires decides. Each is testable with the
facts built inline.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from knowledge import Hit

ANSWER, ABSTAIN, CLARIFY, ESCALATE = "answer", "abstain", "clarify", "escalate"

_PERSON = r"(human|person|people|agent|someone|somebody|representative|rep|operator|staff|manager)(?! of)"
_HUMAN_REQUEST = [  # asking to be put through: always a request
    re.compile(rf"\b(talk|speak|chat|connect|transfer|put) (me )?(to|with|through to) (a |an |the |your |some )?"
               rf"(real |live |human )?{_PERSON}\b", re.IGNORECASE),
    re.compile(rf"^\W*(a |an )?(real |live )?{_PERSON}s?( please| now| pls)?\W*$", re.IGNORECASE),
]
_HUMAN_MENTION = [  # naming a person: a request, unless it is a question about the service
    re.compile(r"\b(real|live|actual) (person|human|agent)\b", re.IGNORECASE),
    re.compile(r"\bhuman (agent|being|support|help)\b", re.IGNORECASE),
]
_INFO_QUESTION = re.compile(r"^\W*(when|what|where|which|how|is there|are there|is your|are your|is human|is live|"
                            r"do you|does|do they)\b", re.IGNORECASE)
_FRUSTRATION = re.compile(
    r"\b(useless|ridiculous|unacceptable|furious|angry|fed up|sick of|waste of (my )?time|worst|terrible|"
    r"awful|pathetic|scam|rip[- ]?off|disgusted|outraged|never again|incompetent)\b", re.IGNORECASE)
_PROFANITY = re.compile(r"\b(shut up|f+u+c+k+\w*|bastard|bitch|damn you|screw you|go to hell)\b", re.IGNORECASE)
_INSULT = re.compile(r"\b(you|u|your)\b(\W+\w+){0,3}?\W+(idiot\w*|stupid|moron\w*|dumb|useless piece)\b",
                     re.IGNORECASE)


@dataclass(frozen=True)
class Decision:
    """What to do with a turn and why (the reason is logged)."""

    action: str
    reason: str


@dataclass(frozen=True)
class TurnFacts:
    """What the policies look at: the message, what retrieval found and how the conversation went."""

    text: str
    hits: Sequence[Hit] = ()
    previous_decisions: Sequence[str] = ()
    abstain_below: float = 0.5
    always_human_topics: Sequence[str] = ()


def asks_for_human(text: str) -> bool:
    """True when the customer explicitly asks for a person ("agent", "human", "talk to someone")."""
    if any(pattern.search(text) for pattern in _HUMAN_REQUEST):
        return True
    return any(any(p.search(sentence) for p in _HUMAN_MENTION) and not _INFO_QUESTION.search(sentence)
               for sentence in re.split(r"(?<=[.!?])\s+", text))


def frustration(text: str) -> int:
    """A small score of negative sentiment: frustrated words, shouting and repeated exclamation marks."""
    score = len(_FRUSTRATION.findall(text))
    letters = [ch for ch in text if ch.isalpha()]
    if len(letters) >= 12 and sum(ch.isupper() for ch in letters) / len(letters) > 0.7:
        score += 1
    if "!!" in text or "??" in text:
        score += 1
    return score


def is_abusive(text: str) -> bool:
    """Profanity, or an insult aimed at the assistant ("you stupid bot"; not "I feel so stupid")."""
    return bool(_PROFANITY.search(text) or _INSULT.search(text))


def always_human_topic(text: str, topics: Sequence[str]) -> str | None:
    """The configured always-human topic (a regular expression) the message matches, if any."""
    for topic in topics:
        if re.search(topic, text, re.IGNORECASE):
            return topic
    return None


def decide(facts: TurnFacts) -> Decision:
    """Escalate (asked, always-human topic, frustration, repeated failure), abstain when unsure, else answer."""
    if asks_for_human(facts.text):
        return Decision(ESCALATE, "customer asked for a human")
    topic = always_human_topic(facts.text, facts.always_human_topics)
    if topic:
        return Decision(ESCALATE, f"always-human topic ({topic})")
    if frustration(facts.text) >= 2:
        return Decision(ESCALATE, "strong frustration in the customer's message")
    best = max((hit.confidence for hit in facts.hits), default=0.0)
    if best < facts.abstain_below:
        if facts.previous_decisions[-1:] == [ABSTAIN]:
            return Decision(ESCALATE, "two abstentions in a row")
        reason = "no passage retrieved" if not facts.hits else \
            f"best retrieval confidence {best:.2f} below {facts.abstain_below:.2f}"
        return Decision(ABSTAIN, reason)
    return Decision(ANSWER, f"best retrieval confidence {best:.2f}")
