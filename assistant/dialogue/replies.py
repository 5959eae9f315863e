"""Fixed replies and how citations and the extractive fallback are built from passages."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from knowledge import Hit

_MARKER = re.compile(r"\[(\d{1,2})\]")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def abstain_reply(company: str) -> str:
    return (
        f"I'm sorry, I couldn't find that in the {company} help center, so I won't guess. "
        "Would you like me to connect you with a human agent? Press \"Talk to a human\" or type \"agent\"."
    )


def escalation_reply(ticket_id: int) -> str:
    return (
        f"I've passed your conversation to a human agent (ticket #{ticket_id}). "
        "An agent will reply here as soon as possible; you don't need to repeat anything."
    )


def cited_hits(reply: str, hits: Sequence[Hit]) -> list[int]:
    """1-based numbers of the sources the reply cites with [n]; the top source when it cites none."""
    numbers = sorted({int(n) for n in _MARKER.findall(reply) if 1 <= int(n) <= len(hits)})
    return numbers or ([1] if hits else [])


def citations(numbers: Sequence[int], hits: Sequence[Hit], snippet_chars: int = 220) -> list[dict[str, Any]]:
    """What a cited source shows the customer: number, article id, title, link and a snippet."""
    out = []
    for n in numbers:
        hit = hits[n - 1]
        snippet = hit.text if len(hit.text) <= snippet_chars else hit.text[:snippet_chars].rsplit(" ", 1)[0] + "…"
        out.append({"n": n, "doc_id": hit.doc_id, "title": hit.title, "source": hit.source, "snippet": snippet})
    return out


def extractive_reply(hit: Hit, max_sentences: int = 2) -> str:
    """The first sentences of the best passage, cited: used when generation gives nothing usable."""
    lines = [line for line in hit.text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    sentences = _SENTENCE_END.split(" ".join(line.strip() for line in lines))
    return " ".join(sentences[:max_sentences]).strip() + " [1]"
