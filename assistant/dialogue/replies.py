"""Fixed replies and how citations and the extractive fallback are built from passages."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from assistant.dialogue.text import CITATION_MARKER
from knowledge import Hit


def abstain_reply(company: str, about: Sequence[str] = ()) -> str:
    """The honest 'not in the help center' reply, naming what it found nothing `about`, with the offer of a human."""
    what = f"anything about {' or '.join(about)}" if about else "that"
    return (
        f"I'm sorry, I couldn't find {what} in the {company} help center, so I won't guess. "
        "Would you like me to connect you with a human agent? Press \"Talk to a human\" or type \"agent\"."
    )


def escalation_reply(ticket_id: int) -> str:
    """What the customer is told when a ticket is opened."""
    return (
        f"I've passed your conversation to a human agent (ticket #{ticket_id}). "
        "An agent will reply here as soon as possible; you don't need to repeat anything."
    )


def already_escalated_reply(ticket_id: int) -> str:
    """What the customer is told when a ticket is already open."""
    return (f"Your conversation is already with our agents (ticket #{ticket_id}). "
            "An agent will reply here as soon as possible.")


def held_reply() -> str:
    """What the customer's own client may show while a human agent holds the conversation."""
    return "An agent has your conversation and will reply here."


_DOES_NOT_KNOW = re.compile(
    r"\b(i (do not|don't|dont) (know|have (that|this|any|enough) information)|i'?m not sure|i am not sure|"
    r"(cannot|can't|couldn't|could not) find (that|this|any|the) (information|answer)|"
    r"(the )?sources? (do|does) not (say|mention|contain|cover))\b", re.IGNORECASE)


def says_it_does_not_know(reply: str) -> bool:
    """True when the model's own reply is an admission that it does not know."""
    return bool(_DOES_NOT_KNOW.search(reply))


def cited_hits(reply: str, hits: Sequence[Hit]) -> list[int]:
    """1-based numbers of the sources the reply cites with [n] (empty when it cites none)."""
    return sorted({int(n) for n in CITATION_MARKER.findall(reply) if 1 <= int(n) <= len(hits)})


def citations(numbers: Sequence[int], hits: Sequence[Hit], snippet_chars: int = 220,
              evidence: Sequence[str] = ()) -> list[dict[str, Any]]:
    """What a cited source shows the customer: number, article id, title, link and a snippet (the evidence the
    answer came from when given, else the article's best passage)."""
    out = []
    for n in numbers:
        hit = hits[n - 1]
        text = (_as_prose(evidence[n - 1]) if n <= len(evidence) and evidence[n - 1] else " ".join(hit.text.split()))
        snippet = text if len(text) <= snippet_chars else text[:snippet_chars].rsplit(" ", 1)[0] + "…"
        out.append({"n": n, "doc_id": hit.doc_id, "title": hit.title, "source": hit.source, "snippet": snippet})
    return out


def _as_prose(lines: str) -> str:
    """Evidence lines as one paragraph: a run of list fragments joined by commas and closed with a full stop
    ("Visa, Discover, Apple Pay. Apple Pay and Google Pay can be used for store orders only, ...")."""
    out = ""
    for line in (" ".join(raw.split()) for raw in lines.splitlines()):
        if not line:
            continue
        if out and not _ENDED.search(out) and not out.endswith(","):  # "without its original packaging," ends one
            out += "," if not _ENDED.search(line) else "."
        out = f"{out} {line}".strip()
    return out if not out or _ENDED.search(out) else f"{out}."


_ENDED = re.compile(r"[.!?:;]$")


def abuse_reply(company: str) -> str:
    """A polite, bounded reply to an abusive message."""
    return (
        f"I'm here to help with your {company} questions, and I'd like to keep this conversation respectful. "
        "What can I help you with?"
    )


def handoff_summary(history: Sequence[dict[str, str]], reason: str, limit: int = 600) -> str:
    """What the agent reads first: what the customer wants, what the assistant tried, why it handed over."""
    asked = [" ".join(m["content"].split()) for m in history if m["role"] == "user"]
    answers = [m for m in history if m["role"] == "assistant"]
    wants = asked[0][:200] if asked else "(nothing asked yet)"
    latest = asked[-1][:200] if len(asked) > 1 else ""
    tried = f"The assistant replied {len(answers)} time(s)" if answers else "The assistant has not replied yet"
    summary = f"Customer wants: {wants}." + (f" Latest message: {latest}." if latest else "") + \
        f" {tried}. Handed over because: {reason}."
    return summary[:limit]
