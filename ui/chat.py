"""The customer chat: streamed replies, cited sources, thumbs up/down, "Talk to a human", agent messages and notices.

State kept per browser tab: the conversation id (also in the browser's storage, so a reload shows the
conversation again), the store id of each shown message, the rating given to each, and how far the
agent messages and ticket changes have been shown.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import gradio as gr

from assistant.config import Settings
from assistant.dialogue import DialogueManager, Final, Token
from assistant.dialogue.events import TurnView
from assistant.dialogue.manager import HELD
from assistant.errors import InvalidMessage
from assistant.generation_worker import CANCEL
from assistant.store.store import new_conversation_id
from ui.render import agent_markdown, agent_name, answer_markdown, streaming_markdown, ticket_notice

log = logging.getLogger(__name__)

ChatHistory = list[dict[str, Any]]
SUGGESTIONS = ["How do I reset my password?", "What is your return window?", "How much is Premium a month?",
               "My camera shows as offline"]
RATINGS = {1: "Like", -1: "Dislike"}
SAVED_KEY = "support-assistant-conversation"
"""The browser's localStorage key of the conversation id (a reload shows that conversation again)."""
SCROLL_TO_END = ("() => { setTimeout(() => document.querySelectorAll('.chat-window, .chat-window .bubble-wrap')"
                 ".forEach(el => { el.scrollTop = el.scrollHeight; }), 50); }")


@dataclass
class Shown:
    """What this tab shows: per message its store id (None for notices) and rating, and the last agent message
    and ticket change shown."""

    ids: list[int | None] = field(default_factory=list)
    ratings: dict[int, int] = field(default_factory=dict)
    last_message: int = 0
    last_change: int = 0


class OpenTurns:
    """The cancel events of each browser session's running turns: closing the tab stops their generation."""

    def __init__(self) -> None:
        self._turns: dict[str, set[threading.Event]] = {}
        self._lock = threading.Lock()

    def start(self, session: str | None) -> threading.Event:
        """A cancel event for a new turn of `session`, also made the generation's (CANCEL)."""
        cancel = threading.Event()
        CANCEL.set(cancel)
        if session:
            with self._lock:
                self._turns.setdefault(session, set()).add(cancel)
        return cancel

    def finish(self, session: str | None, cancel: threading.Event) -> None:
        with self._lock:
            self._turns.get(session or "", set()).discard(cancel)

    def leave(self, session: str | None) -> int:
        """The session's tab closed: cancel its turns; returns how many."""
        with self._lock:
            turns = self._turns.pop(session or "", set())
        for cancel in turns:
            cancel.set()
        return len(turns)


def feedback_values(chat: ChatHistory, shown: Shown) -> list[str | None]:
    """The thumbs state of every assistant message, in order (Gradio keeps it only if told each time)."""
    return [RATINGS.get(shown.ratings.get(shown.ids[i])) if i < len(shown.ids) and shown.ids[i] else None
            for i, message in enumerate(chat) if message["role"] == "assistant"]


def build_chat_app(manager: DialogueManager, settings: Settings) -> gr.Blocks:
    """A Gradio Blocks app; its handlers only call the manager and render the events."""
    title = f"{settings.company_name} Support"

    def view(chat: ChatHistory, shown: Shown) -> Any:
        return gr.Chatbot(value=chat, feedback_value=feedback_values(chat, shown))

    open_turns = OpenTurns()

    def send(text: str, chat: ChatHistory, conversation_id: str | None, shown: Shown,
             request: gr.Request | None = None) -> Iterator[tuple]:
        session = request.session_hash if request else None
        cancel = open_turns.start(session)  # a closed tab stops this turn's generation
        try:
            yield from answer(text, chat, conversation_id, shown)
        finally:
            open_turns.finish(session, cancel)

    def leave(request: gr.Request | None = None) -> None:
        if (stopped := open_turns.leave(request.session_hash if request else None)):
            log.info("a chat tab closed: %d running turn(s) stopped", stopped)

    def answer(text: str, chat: ChatHistory, conversation_id: str | None, shown: Shown) -> Iterator[tuple]:
        conversation_id = conversation_id or new_conversation_id()
        before = list(chat)
        chat = [*chat, {"role": "user", "content": text}, {"role": "assistant", "content": ""}]
        shown.ids = [*shown.ids, None, None]
        turn = TurnView()
        try:
            for event in manager.respond(conversation_id, text, channel="web"):
                turn.add(event)
                if isinstance(event, Token):  # checked text only: nothing shown is ever taken back
                    chat[-1]["content"] = streaming_markdown(turn.text)
                    yield "", view(chat, shown), conversation_id, shown
                elif isinstance(event, Final) and event.decision == HELD:  # an agent answers instead
                    chat, shown.ids = chat[:-1], shown.ids[:-1]
                    yield "", view(chat, shown), conversation_id, shown
                elif isinstance(event, Final):  # the same text, with its sources under it
                    chat[-1]["content"] = answer_markdown(turn.text, event.citations)
                    shown.ids[-1] = event.message_id
                    yield "", view(chat, shown), conversation_id, shown
        except InvalidMessage as err:
            gr.Warning(str(err).capitalize())
            shown.ids = shown.ids[:len(before)]
            yield text, view(before, shown), conversation_id, shown

    def talk_to_human(chat: ChatHistory, conversation_id: str | None, shown: Shown) -> tuple:
        conversation_id = conversation_id or new_conversation_id()
        final = TurnView.collect(manager.escalate(conversation_id, channel="web")).final
        chat = [*chat, {"role": "assistant", "content": final.text}]
        shown.ids = [*shown.ids, final.message_id]
        return view(chat, shown), conversation_id, shown

    def poll(chat: ChatHistory, conversation_id: str | None, shown: Shown) -> tuple:
        """Show what happened since the last poll: agent messages, and an agent joining, leaving or resolving."""
        if not conversation_id:
            return gr.skip(), shown
        messages = manager.updates_since(conversation_id, shown.last_message)
        changes = manager.store.ticket_changes(conversation_id, shown.last_change)
        if not messages and not changes:
            return gr.skip(), shown
        events = sorted([(m.created_at, "message", m) for m in messages]
                        + [(c.created_at, "change", c) for c in changes], key=lambda item: (item[0], item[1]))
        added = []
        for _, kind, row in events:
            if kind == "message":
                added.append(agent_markdown(row.content, agent_name(row.reason)))
            elif (notice := ticket_notice(row.status, row.ticket_id, row.agent)) is not None:
                added.append(notice)
        shown.last_message = messages[-1].id if messages else shown.last_message
        shown.last_change = changes[-1].id if changes else shown.last_change
        shown.ids = [*shown.ids, *([None] * len(added))]
        return view([*chat, *({"role": "assistant", "content": text} for text in added)], shown), shown

    def restore(saved_id: str | None) -> tuple:
        """Show a conversation again after a reload or a server restart (its id is kept in the browser)."""
        shown = Shown()
        if not saved_id:
            return [], None, shown
        try:
            messages = manager.transcript(saved_id)
        except InvalidMessage:  # a tampered or foreign id in the browser: start afresh
            return [], None, shown
        chat = []
        for message in messages:
            if message.role == "user":
                chat.append({"role": "user", "content": message.content})
            elif message.role == "agent":
                text = agent_markdown(message.content, agent_name(message.reason))
                chat.append({"role": "assistant", "content": text})
            else:
                chat.append({"role": "assistant", "content": answer_markdown(message.content, message.citations or [])})
            shown.ids.append(message.id if message.role == "assistant" else None)
        shown.ratings = manager.store.ratings([i for i in shown.ids if i])
        shown.last_message = max((m.id for m in messages), default=0)
        changes = manager.store.ticket_changes(saved_id) if chat else []
        shown.last_change = changes[-1].id if changes else 0
        return view(chat, shown), saved_id if chat else None, shown

    def on_like(data: gr.LikeData, chat: ChatHistory, conversation_id: str | None, shown: Shown) -> tuple:
        index = data.index[0] if isinstance(data.index, list | tuple) else data.index
        message_id = shown.ids[index] if conversation_id and 0 <= index < len(shown.ids) else None
        if message_id is None:
            gr.Info("Thumbs rate the assistant's answers.")
            return view(chat, shown), shown
        rating = 1 if data.liked else -1
        try:
            manager.record_feedback(conversation_id, message_id, rating)
        except InvalidMessage as err:
            gr.Warning(str(err).capitalize())
            return view(chat, shown), shown
        shown.ratings[message_id] = rating
        gr.Info("Thanks for your feedback." if rating > 0 else
                "Thanks for telling us. Press Talk to a human if you still need help.", duration=4)
        return view(chat, shown), shown

    def start_over() -> tuple:
        """The trash icon: a new conversation (the old one stays in the store, and no longer comes back on reload)."""
        return [], None, Shown(), None

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
        shown = gr.State(Shown())
        saved = gr.BrowserState(None, storage_key=SAVED_KEY)
        chatbot = gr.Chatbot(show_label=False, min_height=260, max_height=560, height=None, autoscroll=True,
                             feedback_options=("Like", "Dislike"), buttons=["copy"], elem_classes="chat-window",
                             group_consecutive_messages=False,
                             placeholder="**How can we help?** Ask a question, or pick one below.",
                             examples=[{"text": question} for question in SUGGESTIONS])
        box = gr.Textbox(placeholder="Type your question…", show_label=False, max_lines=6, submit_btn="Send",
                         autofocus=True)
        human_button = gr.Button("Talk to a human", variant="secondary", size="md")
        outputs = [box, chatbot, conversation, shown]
        box.submit(send, [box, chatbot, conversation, shown], outputs, api_name="chat")
        chatbot.example_select(lambda data: data.value["text"], None, box, api_name=False).then(
            send, [box, chatbot, conversation, shown], outputs, api_name=False)
        human_button.click(talk_to_human, [chatbot, conversation, shown], [chatbot, conversation, shown],
                           api_name="talk_to_human")
        chatbot.like(on_like, [chatbot, conversation, shown], [chatbot, shown], api_name=False)
        # The browser forgets the old id at once, before the server answers: a reload right after stays empty.
        chatbot.clear(start_over, None, [chatbot, conversation, shown, saved], api_name=False,
                      js=f"() => {{ localStorage.removeItem({json.dumps(SAVED_KEY)}); }}")
        gr.Timer(2.0).tick(poll, [chatbot, conversation, shown], [chatbot, shown], api_name="poll",
                           show_progress="hidden")
        # New messages (answers, an agent's reply, a notice) scroll into view, also on a phone's short window.
        chatbot.change(None, None, None, js=SCROLL_TO_END, api_name=False)
        conversation.change(lambda conversation_id: conversation_id, conversation, saved, api_name=False)
        app.load(restore, saved, [chatbot, conversation, shown], api_name=False)
        app.unload(leave)
        gr.api(feedback, api_name="feedback")
    # Each chat handler mostly waits (for the generation queue, or the customer): many may be open at once;
    # the generation queue (ASSISTANT_GENERATION_SLOTS) decides how many generate.
    app.queue(default_concurrency_limit=settings.chat_concurrency)
    return app
