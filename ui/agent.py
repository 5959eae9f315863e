"""The agent console: ticket queue, transcripts with sources and scores, takeover, replies, resolution.

Mounted at /agent by `assistant serve`; when agent keys are configured the server asks for one
(any user name, the key as password) before the page or its API answers.
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from assistant.config import Settings
from assistant.errors import InvalidMessage
from assistant.handoff import AgentDesk
from assistant.model_desk import ModelDesk
from ui.metrics import metrics_view
from ui.models import models_view

QUEUE_COLUMNS = ["ticket", "status", "agent", "reason", "summary", "opened"]
QUEUE_WIDTHS = ["80px", "100px", "90px", "220px", "420px", "150px"]
"""Fixed widths: words wrap between words, and a phone scrolls the queue sideways instead of squeezing it."""


def transcript_markdown(rows: list[dict[str, Any]]) -> str:
    """The conversation as the agent reads it: who said what, each bot decision with its reason and sources."""
    lines = []
    for row in rows:
        who = {"user": "Customer", "assistant": "Bot", "agent": "Agent"}.get(row["role"], row["role"])
        lines.append(f"**{who}** ({row['created_at']:%H:%M:%S}): {row['content']}")
        if row["decision"]:
            lines.append(f"> decision `{row['decision']}` — {row['reason']}")
        for hit in row["retrievals"]:
            lines.append(f"> {hit['rank']}. `{hit['doc_id']}` confidence {hit['confidence']:.2f}, "
                         f"score {hit['score']:.4f}")
        lines.append("")
    return "\n".join(lines) or "_No messages._"


def build_agent_app(desk: AgentDesk, settings: Settings, *, retriever: Any = None,
                    models: ModelDesk | None = None) -> gr.Blocks:
    """A Gradio Blocks app over an AgentDesk (every handler is one desk call), with the Metrics view when a
    retriever is given (it names the closest article of each knowledge gap) and the Models view with a ModelDesk."""

    def agent_name(request: gr.Request | None) -> str:
        return (request.username if request is not None and request.username else None) or "agent"

    def queue() -> list[list[Any]]:
        return [[t["ticket_id"], t["status"], t["agent"] or "", t["reason"], t["summary"] or "",
                 f"{t['created_at']:%Y-%m-%d %H:%M}"] for t in desk.queue()]

    def ticket_number(value: Any) -> int:
        try:
            number = int(str(value).lstrip("#").strip())
        except ValueError:
            raise gr.Error("choose a ticket: click its row in the queue, or type its number") from None
        if number < 1:
            raise gr.Error("choose a ticket: click its row in the queue, or type its number")
        return number

    def transcript(ticket_id: Any) -> str:
        if ticket_id in (None, ""):
            return "_Click a ticket in the queue to read its conversation._"
        try:
            return transcript_markdown(desk.transcript(ticket_number(ticket_id)))
        except InvalidMessage as err:
            raise gr.Error(str(err)) from err

    def pick(table_value: Any, event: gr.SelectData) -> tuple[str, str]:
        """A click on any cell of a queue row selects that row's ticket."""
        row = event.index[0] if isinstance(event.index, list | tuple) else event.index
        rows = table_value.values.tolist() if hasattr(table_value, "values") else table_value
        ticket = str(rows[row][0]) if rows and 0 <= row < len(rows) else ""
        return ticket, transcript(ticket)

    def refresh(ticket_id: Any) -> tuple[list[list[Any]], Any]:
        """The queue, and the open transcript, as they are now (a timer calls this every few seconds)."""
        return queue(), transcript(ticket_id) if ticket_id not in (None, "") else gr.skip()

    def act(action: str):
        def handler(ticket_id: Any, request: gr.Request) -> tuple[str, list[list[Any]]]:
            if ticket_id in (None, ""):  # the agent cancelled the confirmation, or chose nothing
                return gr.skip(), gr.skip()
            number = ticket_number(ticket_id)
            try:
                status = getattr(desk, action)(number, agent_name(request))
            except InvalidMessage as err:
                raise gr.Error(str(err)) from err
            gr.Info(f"Ticket #{number} is {status}")
            return transcript(number), queue()
        return handler

    def reply(ticket_id: Any, text: str, request: gr.Request) -> tuple[str, str]:
        number = ticket_number(ticket_id)
        try:
            desk.reply(number, agent_name(request), text)
        except InvalidMessage as err:
            raise gr.Error(str(err)) from err
        return "", transcript(number)

    with gr.Blocks(title=f"{settings.company_name} agent console", analytics_enabled=False) as app, gr.Tabs():
        with gr.Tab("Tickets"):
            gr.Markdown(f"## {settings.company_name} agent console\nOpen tickets, oldest first: click one to read it. "
                        "Take over a conversation to reply; the bot stays quiet until you hand it back or resolve "
                        "the ticket. The queue refreshes by itself.")
            table = gr.Dataframe(headers=QUEUE_COLUMNS, value=queue, interactive=False, wrap=True,
                                 column_widths=QUEUE_WIDTHS, elem_classes="ticket-queue")
            with gr.Row(equal_height=True):
                ticket = gr.Textbox(label="Ticket", placeholder="click a row, or type a number", scale=1,
                                    min_width=140)
                take_button = gr.Button("Take over", variant="primary", scale=1, min_width=120)
                back_button = gr.Button("Hand back to bot", scale=1, min_width=120)
                resolve_button = gr.Button("Resolve…", variant="stop", scale=1, min_width=120)
            transcript_view = gr.Markdown("_Click a ticket in the queue to read its conversation._",
                                          elem_classes="transcript")
            with gr.Row(equal_height=True):
                reply_box = gr.Textbox(label="Reply as agent", scale=8, min_width=200, lines=2)
                send_button = gr.Button("Send", variant="primary", scale=1, min_width=100)
            table.select(pick, table, [ticket, transcript_view], api_name=False)
            ticket.submit(transcript, ticket, transcript_view, api_name="transcript")
            gr.Button("Refresh", visible=False).click(queue, None, table, api_name="queue")
            gr.Timer(3.0).tick(refresh, ticket, [table, transcript_view], api_name=False, show_progress="hidden")
            take_button.click(act("take_over"), ticket, [transcript_view, table], api_name="take_over")
            back_button.click(act("hand_back"), ticket, [transcript_view, table], api_name="hand_back")
            resolve_button.click(act("resolve"), ticket, [transcript_view, table], api_name="resolve",
                                 js="(t) => (t && confirm('Resolve ticket #' + t + '? The customer is told, and "
                                    "the bot answers again.')) ? t : null")
            send_button.click(reply, [ticket, reply_box], [reply_box, transcript_view], api_name="reply")
        if retriever is not None:
            with gr.Tab("Metrics"):
                metrics_view(desk.store, retriever)
        if models is not None:
            with gr.Tab("Models"):
                models_view(models)
    return app



CONSOLE_CSS = """
.ticket-queue .table-wrap { overflow-x: auto; }
.transcript blockquote { font-size: 0.9em; }
"""
