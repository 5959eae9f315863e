"""The customer chat: streamed replies, cited sources, thumbs up/down and "Talk to a human"."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import gradio as gr

from assistant.config import Settings
from assistant.dialogue import DialogueManager, Final, Token
from assistant.dialogue.events import TurnView
from assistant.dialogue.manager import HELD
from assistant.errors import InvalidMessage
from assistant.store.store import new_conversation_id
from ui.render import agent_markdown, answer_markdown

log = logging.getLogger(__name__)

ChatHistory = list[dict[str, Any]]


def build_chat_app(manager: DialogueManager, settings: Settings) -> gr.Blocks:
    """A Gradio Blocks app; its handlers only call the manager and render the events."""
    title = f"{settings.company_name} Support"

    def send(text: str, chat: ChatHistory, conversation_id: str | None, message_ids: list[int | None]
             ) -> Iterator[tuple[str, ChatHistory, str, list[int | None]]]:
        conversation_id = conversation_id or new_conversation_id()
        chat = [*chat, {"role": "user", "content": text}, {"role": "assistant", "content": ""}]
        message_ids = [*message_ids, None, None]
        view = TurnView()
        try:
            for event in manager.respond(conversation_id, text, channel="web"):
                view.add(event)
                if isinstance(event, Token):  # checked text only: nothing shown is ever taken back
                    chat[-1]["content"] = view.text
                    yield "", chat, conversation_id, message_ids
                elif isinstance(event, Final) and event.decision == HELD:  # an agent answers instead
                    yield "", chat[:-1], conversation_id, message_ids[:-1]
                elif isinstance(event, Final):  # the same text, with its sources under it
                    chat[-1]["content"] = answer_markdown(view.text, event.citations)
                    message_ids[-1] = event.message_id
                    yield "", chat, conversation_id, message_ids
        except InvalidMessage as err:
            gr.Warning(str(err).capitalize())
            yield text, chat[:-2], conversation_id, message_ids[:-2]

    def talk_to_human(chat: ChatHistory, conversation_id: str | None, message_ids: list[int | None]
                      ) -> tuple[ChatHistory, str, list[int | None]]:
        conversation_id = conversation_id or new_conversation_id()
        final = TurnView.collect(manager.escalate(conversation_id, channel="web")).final
        return ([*chat, {"role": "assistant", "content": final.text}], conversation_id,
                [*message_ids, final.message_id])

    def poll(chat: ChatHistory, conversation_id: str | None, message_ids: list[int | None], last_seen: int
             ) -> tuple[ChatHistory, list[int | None], int]:
        """Show messages a human agent wrote since the last poll."""
        if not conversation_id:
            return chat, message_ids, last_seen
        updates = manager.updates_since(conversation_id, last_seen)
        if not updates:
            return chat, message_ids, last_seen
        shown = [{"role": "assistant", "content": agent_markdown(m.content)} for m in updates]
        return [*chat, *shown], [*message_ids, *([None] * len(updates))], updates[-1].id

    def restore(saved_id: str | None) -> tuple[ChatHistory, str | None, list[int | None], int]:
        """Show a conversation again after a reload or a server restart (its id is kept in the browser)."""
        if not saved_id:
            return [], None, [], 0
        chat, ids = [], []
        try:
            messages = manager.transcript(saved_id)
        except InvalidMessage:  # a tampered or foreign id in the browser: start afresh
            return [], None, [], 0
        for message in messages:
            if message.role == "user":
                chat.append({"role": "user", "content": message.content})
            elif message.role == "agent":
                chat.append({"role": "assistant", "content": agent_markdown(message.content)})
            else:
                chat.append({"role": "assistant", "content": answer_markdown(message.content, message.citations or [])})
            ids.append(message.id if message.role == "assistant" else None)
        return chat, saved_id if chat else None, ids, max((m.id for m in messages), default=0)

    def on_like(data: gr.LikeData, conversation_id: str | None, message_ids: list[int | None]) -> None:
        index = data.index[0] if isinstance(data.index, list | tuple) else data.index
        if conversation_id and 0 <= index < len(message_ids) and message_ids[index] is not None:
            try:
                manager.record_feedback(conversation_id, message_ids[index], 1 if data.liked else -1)
            except InvalidMessage as err:
                gr.Warning(str(err).capitalize())

    def feedback(conversation_id: str, message_id: int, rating: int) -> str:
        """Record +1 / -1 on an assistant message of this conversation (the API twin of the thumbs buttons)."""
        try:
            manager.record_feedback(str(conversation_id), int(message_id), int(rating))
        except (InvalidMessage, ValueError, TypeError) as err:
            raise gr.Error(str(err)) from err
        return "ok"

    with gr.Blocks(title=title, analytics_enabled=False) as app:
        gr.Markdown(f"## {title}\nAsk about your account, orders, billing, plans, returns or devices. "
                    "Answers come from our help center and list their sources.")
        conversation = gr.State(None)
        message_ids = gr.State([])
        last_seen = gr.State(0)
        saved = gr.BrowserState(None, storage_key="support-assistant-conversation")
        chatbot = gr.Chatbot(label=title, height=520, feedback_options=("Like", "Dislike"),
                             placeholder="How can we help?")
        with gr.Row():
            box = gr.Textbox(placeholder="Type your question…", show_label=False, scale=8, max_lines=6)
            send_button = gr.Button("Send", variant="primary", scale=1)
        human_button = gr.Button("Talk to a human", variant="secondary")
        outputs = [box, chatbot, conversation, message_ids]
        box.submit(send, [box, chatbot, conversation, message_ids], outputs, api_name="chat")
        send_button.click(send, [box, chatbot, conversation, message_ids], outputs, api_name=False)
        human_button.click(talk_to_human, [chatbot, conversation, message_ids], [chatbot, conversation, message_ids],
                           api_name="talk_to_human")
        chatbot.like(on_like, [conversation, message_ids], None, api_name=False)
        gr.Timer(2.0).tick(poll, [chatbot, conversation, message_ids, last_seen], [chatbot, message_ids, last_seen],
                           api_name="poll", show_progress="hidden")
        conversation.change(lambda conversation_id: conversation_id, conversation, saved, api_name=False)
        app.load(restore, saved, [chatbot, conversation, message_ids, last_seen], api_name=False)
        gr.api(feedback, api_name="feedback")
    # Each chat handler mostly waits (for the generation queue, or the customer): many may be open at once;
    # the generation queue (ASSISTANT_GENERATION_SLOTS) decides how many generate.
    app.queue(default_concurrency_limit=settings.chat_concurrency)
    return app
