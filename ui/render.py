"""Turn dialogue events into what the chat shows (markdown), shared by the web chat's handlers."""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from typing import Any

_MARKER = re.compile(r"\s?\[(\d{1,2})\]")


def numbered(text: str, citations: Sequence[dict[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    """The answer and its sources numbered 1, 2, … in the order listed (the prompt's article numbers mean
    nothing to a customer); markers of articles not listed are dropped."""
    order = {int(cite["n"]): position for position, cite in enumerate(citations, start=1)}

    def renumber(match: re.Match[str]) -> str:
        position = order.get(int(match.group(1)))
        return f" [{position}]" if position is not None and len(citations) > 1 else ""

    return _MARKER.sub(renumber, text), [{**cite, "n": position} for position, cite in enumerate(citations, 1)]


def sources_markdown(citations: Sequence[dict[str, Any]]) -> str:
    """The sources block under an answer: number, linked title and a snippet of the passage."""
    if not citations:
        return ""
    lines = ["", "", "<span class='sources-label'>Sources</span>", ""]
    for cite in citations:
        title = f"[{cite['title']}]({cite['source']})" if cite["source"].startswith("http") else cite["title"]
        snippet = " ".join(str(cite["snippet"]).split())
        lines.append(f"{cite['n']}. {title} — _{snippet}_")
    return "\n".join(lines)


def answer_markdown(text: str, citations: Sequence[dict[str, Any]]) -> str:
    """An answer followed by its sources block, numbered for the customer."""
    text, citations = numbered(text, citations)
    return text + sources_markdown(citations)


def streaming_markdown(text: str) -> str:
    """Checked text while it streams (markers hidden until the sources are known)."""
    return _MARKER.sub("", text)


def agent_markdown(text: str, agent: str | None = None) -> str:
    """A human agent's message, in its own style (green rule, the agent's name), so the customer can tell it
    from the bot's."""
    who = f"{agent.capitalize()} from our support team" if agent else "Our support team"
    return f"<div class='from-agent'><span class='who'>{html.escape(who)}</span>\n\n{text}\n\n</div>"


def agent_name(reason: str | None) -> str | None:
    """The agent's name from an agent message's logged reason (`agent NAME`)."""
    if not reason or not reason.startswith("agent "):
        return None
    return reason.removeprefix("agent ").strip() or None


def ticket_notice(status: str, ticket_id: int, agent: str | None) -> str | None:
    """What the customer is told when their ticket changes (None when there is nothing to say)."""
    who = agent.capitalize() if agent else "A support agent"
    text = {
        "assigned": f"{who} from our support team has joined the conversation (ticket #{ticket_id}).",
        "released": "The support team handed the conversation back to the assistant.",
        "resolved": f"Ticket #{ticket_id} is resolved. The assistant answers your next question; "
                    "press Talk to a human if you need us again.",
    }.get(status)
    return f"<div class='notice'>{html.escape(text)}</div>" if text else None


CHAT_CSS = """
.chat-window .prose strong, .chat-window .prose b { font-size: inherit; font-family: inherit; font-weight: 600; }
.chat-window .sources-label { font-weight: 600; font-size: 0.9em; color: var(--body-text-color-subdued); }
.chat-window .from-agent { border-left: 3px solid #16a34a; padding-left: 0.6rem; }
.chat-window .from-agent .who { display: block; color: #15803d; font-weight: 600; font-size: 0.85em; }
.chat-window .message-row:has(.from-agent) + .message-buttons,
.chat-window .message-row:has(.notice) + .message-buttons { display: none; }
.chat-window .notice { color: var(--body-text-color-subdued); font-size: 0.85em; font-style: italic; }
"""
"""The chat's own styles: bold text in the body font, agent messages and notices set apart (no thumbs on them)."""
