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

    def transcript(ticket_id: float) -> str:
        try:
            return transcript_markdown(desk.transcript(int(ticket_id)))
        except InvalidMessage as err:
            raise gr.Error(str(err)) from err

    def act(action: str):
        def handler(ticket_id: float, request: gr.Request) -> tuple[str, list[list[Any]]]:
            try:
                status = getattr(desk, action)(int(ticket_id), agent_name(request))
            except InvalidMessage as err:
                raise gr.Error(str(err)) from err
            gr.Info(f"Ticket #{int(ticket_id)} is {status}")
            return transcript(ticket_id), queue()
        return handler

    def reply(ticket_id: float, text: str, request: gr.Request) -> tuple[str, str]:
        try:
            desk.reply(int(ticket_id), agent_name(request), text)
        except InvalidMessage as err:
            raise gr.Error(str(err)) from err
        return "", transcript(ticket_id)

    with gr.Blocks(title=f"{settings.company_name} agent console", analytics_enabled=False) as app, gr.Tabs():
        with gr.Tab("Tickets"):
            gr.Markdown(f"## {settings.company_name} agent console\nOpen tickets, oldest first. Take over a "
                        "conversation to reply; the bot stays quiet until you hand it back or resolve the ticket.")
            table = gr.Dataframe(headers=QUEUE_COLUMNS, value=queue, interactive=False, wrap=True)
            refresh = gr.Button("Refresh queue")
            with gr.Row():
                ticket = gr.Number(label="Ticket", precision=0, minimum=1)
                open_button = gr.Button("Open transcript")
            with gr.Row():
                take_button = gr.Button("Take over", variant="primary")
                back_button = gr.Button("Hand back to bot")
                resolve_button = gr.Button("Resolve", variant="stop")
            transcript_view = gr.Markdown()
            with gr.Row():
                reply_box = gr.Textbox(label="Reply as agent", scale=8)
                send_button = gr.Button("Send", scale=1)
            refresh.click(queue, None, table, api_name="queue")
            open_button.click(transcript, ticket, transcript_view, api_name="transcript")
            take_button.click(act("take_over"), ticket, [transcript_view, table], api_name="take_over")
            back_button.click(act("hand_back"), ticket, [transcript_view, table], api_name="hand_back")
            resolve_button.click(act("resolve"), ticket, [transcript_view, table], api_name="resolve")
            send_button.click(reply, [ticket, reply_box], [reply_box, transcript_view], api_name="reply")
        if retriever is not None:
            with gr.Tab("Metrics"):
                metrics_view(desk.store, retriever)
        if models is not None:
            with gr.Tab("Models"):
                models_view(models)
    return app
