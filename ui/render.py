"""Turn dialogue events into what the chat shows (markdown), shared by the web chat's handlers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def sources_markdown(citations: Sequence[dict[str, Any]]) -> str:
    """The sources block under an answer: number, linked title and a snippet of the passage."""
    if not citations:
        return ""
    lines = ["", "", "**Sources**"]
    for cite in citations:
        title = f"[{cite['title']}]({cite['source']})" if cite["source"].startswith("http") else cite["title"]
        snippet = " ".join(str(cite["snippet"]).split())
        lines.append(f"{cite['n']}. {title} — _{snippet}_")
    return "\n".join(lines)


def answer_markdown(text: str, citations: Sequence[dict[str, Any]]) -> str:
    """An answer followed by its sources block."""
    return text + sources_markdown(citations)


def agent_markdown(text: str) -> str:
    """A human agent's message, marked so the customer can tell it from the bot."""
    return f"**Support agent:** {text}"
