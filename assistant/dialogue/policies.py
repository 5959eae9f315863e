"""Pure decision functions: the state of a turn in, an action with its reason out.

`TurnState` is built once per turn (the message, the history, who holds the conversation, the open
ticket, how many messages arrived in the last minute, earlier decisions, and — once retrieval ran —
the hits and the evidence). Policies are an ordered list of small pure functions, each returning a
`Decision` or nothing; the first that fires decides. Each is testable with the state built inline.
The reason is a code (counted by `eval logs`) plus a detail for people.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from knowledge import Hit


class Action(StrEnum):
    """What the assistant does with a turn."""

    ANSWER = "answer"
    ABSTAIN = "abstain"
    CLARIFY = "clarify"
    ESCALATE = "escalate"
    HELD = "held"
    """A human agent holds the conversation: the bot stays quiet."""
    REJECT = "reject"
    """The message is refused before it is logged (rate limit)."""


ANSWER, ABSTAIN, CLARIFY, ESCALATE, HELD = Action.ANSWER, Action.ABSTAIN, Action.CLARIFY, Action.ESCALATE, Action.HELD

_PERSON = r"(human|person|people|agent|someone|somebody|representative|rep|operator|staff|manager)(?! of)"
_HUMAN_REQUEST = [  # asking to be put through: always a request
    re.compile(rf"\b(talk|speak|chat|connect|transfer|put) (me )?(to|with|through to) (a |an |the |your |some )?"
               rf"(real |live |human )?{_PERSON}\b", re.IGNORECASE),
    re.compile(rf"^\W*(a |an )?(real |live )?{_PERSON}s?( please| now| pls)?\W*$", re.IGNORECASE),
]
_HUMAN_MENTION = [  # naming a person: a request, unless it is a question about the service
    re.compile(r"\b(real|live|actual) (person|human|agent)\b", re.IGNORECASE),
    re.compile(r"\bhuman (agent|being|support|help)\b", re.IGNORECASE),
    re.compile(r"\b(get|give|find|need|want)( me)? (a |an |the |your |to (talk|speak) to (a |an |the )?)?"
               r"(real |live )?(human|person|agent|representative|rep|operator)s?\b(?! of| app| portal| login)",
               re.IGNORECASE),
]
_INFO_QUESTION = re.compile(r"^\W*(when|what|where|which|how|is there|are there|is your|are your|is human|is live|"
                            r"do you|does|do they|do i)\b", re.IGNORECASE)
_FRUSTRATION = re.compile(
    r"\b(useless|ridiculous|unacceptable|furious|angry|fed up|sick of|waste of (my )?time|worst|terrible|"
    r"awful|pathetic|scam|rip[- ]?off|disgusted|outraged|never again|incompetent)\b", re.IGNORECASE)
_PROFANITY = re.compile(r"\b(shut up|f+u+c+k+\w*|bastard|bitch|damn you|screw you|go to hell)\b", re.IGNORECASE)
_INSULT = re.compile(r"\b(you|u|your)\b(\W+\w+){0,3}?\W+(idiot\w*|stupid|moron\w*|dumb|useless piece)\b",
                     re.IGNORECASE)


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


@dataclass(frozen=True)
class Decision:
    """What to do with a turn, a reason code (`no_evidence`, `human_request`, ...) and a detail for people."""

    action: Action
    code: str
    detail: str = ""

    @property
    def reason(self) -> str:
        """`code: detail`, as logged."""
        return f"{self.code}: {self.detail}" if self.detail else self.code


@dataclass(frozen=True)
class TurnState:
    """Everything the policies look at, built once per turn."""

    text: str
    history: Sequence[dict[str, str]] = ()
    held_by: str | None = None
    """The agent holding the conversation, if one has taken over."""
    open_ticket: int | None = None
    recent_messages: int = 0
    """Customer messages of this conversation in the last minute, before this one."""
    previous_decisions: Sequence[str] = ()
    hits: Sequence[Hit] | None = None
    """None until retrieval has run."""
    evidence_score: float | None = None
    """Score of the best evidence unit; None until evidence was ranked."""
    unknown_names: Sequence[str] = ()
    """Names in the message ("Bitcoin", "Google Home") that the knowledge base never uses."""
    intent: tuple[str, float] | None = None
    """(label, probability) from a configured classifier, when there is one."""
    limits: TurnLimits = field(default_factory=lambda: TurnLimits())


@dataclass(frozen=True)
class TurnLimits:
    """The configured bars the policies compare against."""

    max_messages_per_minute: int = 12
    abstain_below: float = 0.5
    min_evidence: float = 0.0
    always_human_topics: Sequence[str] = ()
    escalate_intents: Sequence[str] = ()
    """Classifier labels that always go to a human."""
    min_intent_probability: float = 0.5
    abstain_on_unknown_names: bool = True


Policy = Callable[[TurnState], Decision | None]


def held(state: TurnState) -> Decision | None:
    """An agent has taken over: the bot stays quiet."""
    return Decision(Action.HELD, "held", f"{state.held_by} holds the conversation") if state.held_by else None


def rate_limit(state: TurnState) -> Decision | None:
    """Too many messages in a minute: refused before anything is logged."""
    limit = state.limits.max_messages_per_minute
    if state.recent_messages >= limit:
        return Decision(Action.REJECT, "rate_limit", f"more than {limit} messages in a minute")
    return None


def abuse(state: TurnState) -> Decision | None:
    """Profanity or insults get a polite, bounded reply."""
    return Decision(Action.CLARIFY, "abuse", "abusive message") if is_abusive(state.text) else None


def human_request(state: TurnState) -> Decision | None:
    """The customer asks for a person."""
    return Decision(Action.ESCALATE, "human_request", "customer asked for a human") if asks_for_human(state.text) \
        else None


def human_topic(state: TurnState) -> Decision | None:
    """A topic that always goes to a human (legal threats, account closure, ... as configured)."""
    topic = always_human_topic(state.text, state.limits.always_human_topics)
    return Decision(Action.ESCALATE, "human_topic", f"always-human topic ({topic})") if topic else None


def frustrated(state: TurnState) -> Decision | None:
    """Strong frustration goes to a human before it gets worse."""
    if frustration(state.text) >= 2:
        return Decision(Action.ESCALATE, "frustration", "strong frustration in the customer's message")
    return None


def classified(state: TurnState) -> Decision | None:
    """A configured classifier's intent that always goes to a human (or `oos`: out of scope)."""
    if state.intent is None:
        return None
    label, probability = state.intent
    if probability < state.limits.min_intent_probability:
        return None
    if label in state.limits.escalate_intents:
        return Decision(Action.ESCALATE, "intent", f"intent {label} ({probability:.2f}) goes to a human")
    if label == "oos":
        return Decision(Action.ABSTAIN, "out_of_scope", f"classifier: out of scope ({probability:.2f})")
    return None


def _abstain(state: TurnState, code: str, detail: str) -> Decision:
    """Abstain, or hand over when the previous reply was an abstention too."""
    if state.previous_decisions[-1:] == [ABSTAIN]:
        return Decision(Action.ESCALATE, "repeated_abstention", "two abstentions in a row")
    return Decision(Action.ABSTAIN, code, detail)


def low_confidence(state: TurnState) -> Decision | None:
    """Retrieval found nothing confident: abstain, or escalate after a second abstention in a row."""
    if state.hits is None:
        return None
    best = max((hit.confidence for hit in state.hits), default=0.0)
    if best >= state.limits.abstain_below:
        return None
    if not state.hits:
        return _abstain(state, "no_passage", "no passage retrieved")
    return _abstain(state, "low_confidence",
                    f"best retrieval confidence {best:.2f} below {state.limits.abstain_below:.2f}")


def unknown_name(state: TurnState) -> Decision | None:
    """The question names something the knowledge base never mentions ("pay in Bitcoin?"): whatever the
    articles say about paying, they cannot say it about that (on the demo dev set every such question is a
    near miss, and no answerable one names an unknown thing)."""
    if not state.unknown_names or not state.limits.abstain_on_unknown_names:
        return None
    return _abstain(state, "unknown_name", f"the knowledge base never mentions {', '.join(state.unknown_names)}")


def no_evidence(state: TurnState) -> Decision | None:
    """Nothing in the retrieved articles answers the question closely enough."""
    if state.evidence_score is None or state.evidence_score >= state.limits.min_evidence:
        return None
    return _abstain(state, "no_evidence",
                    f"best evidence score {state.evidence_score:.2f} below {state.limits.min_evidence:.2f}")


BEFORE_RETRIEVAL: tuple[Policy, ...] = (held, rate_limit, abuse, human_request, human_topic, frustrated, classified)
"""Policies that need only the message and the conversation, in priority order."""
AFTER_RETRIEVAL: tuple[Policy, ...] = (low_confidence, unknown_name, no_evidence)
"""Policies that read the hits and the evidence."""


def first_decision(state: TurnState, policies: Sequence[Policy]) -> Decision | None:
    """The decision of the first policy that fires, or None."""
    for policy in policies:
        decision = policy(state)
        if decision is not None:
            return decision
    return None


def decide(state: TurnState, policies: Sequence[Policy] = (*BEFORE_RETRIEVAL, *AFTER_RETRIEVAL)) -> Decision:
    """The first policy that fires, else answer."""
    decision = first_decision(state, policies)
    if decision is not None:
        return decision
    best = max((hit.confidence for hit in state.hits or ()), default=0.0)
    return Decision(Action.ANSWER, "answer", f"best retrieval confidence {best:.2f}")
