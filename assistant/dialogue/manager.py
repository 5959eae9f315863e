"""DialogueManager.respond: guard, retrieve, decide, generate, cite, log — one turn at a time."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass

from assistant.config import Settings
from assistant.dialogue import policies, replies
from assistant.dialogue.events import Escalated, Event, Final, Sources, Token
from assistant.generation import Generator
from assistant.guards import check_message
from assistant.prompts import build_messages
from assistant.store import Store
from knowledge import Hit
from knowledge.retriever import Retriever

log = logging.getLogger(__name__)


@dataclass
class DialogueManager:
    """Answers customer turns from the knowledge base and logs every one of them."""

    settings: Settings
    retriever: Retriever
    generator: Generator
    store: Store

    def respond(self, conversation_id: str | None, text: str, *, channel: str = "web") -> Iterator[Event]:
        """Events of one turn; a message that fails the guards raises InvalidMessage before anything is logged."""
        text = check_message(text, self.settings.max_message_chars)
        conversation_id = self.store.ensure_conversation(conversation_id, channel)
        history = self.store.history(conversation_id)
        started = time.perf_counter()
        question = self.store.add_message(conversation_id, "user", text, channel)

        hits = self.retriever.search(text, history=history, k=self.settings.retrieval_k)
        retrieval_s = time.perf_counter() - started
        decision = policies.decide(text, hits, self.settings.abstain_below)
        if decision.action == policies.ESCALATE:
            yield from self._escalate(conversation_id, question.id, channel, decision.reason, started)
            return
        first_token_s: float | None = None
        if decision.action == policies.ABSTAIN:
            reply, numbers, reason = replies.abstain_reply(self.settings.company_name), [], decision.reason
        else:
            yield Sources(hits)
            pieces: list[str] = []
            reason = decision.reason
            try:
                messages = build_messages(text, hits, company=self.settings.company_name, history=history,
                                          history_turns=self.settings.history_turns)
                for piece in self.generator.stream(messages):
                    if first_token_s is None:
                        first_token_s = time.perf_counter() - started
                    pieces.append(piece)
                    yield Token(piece)
            except Exception as err:  # a failed generation must still leave the customer an answer
                log.exception("generation failed conversation=%s", conversation_id)
                reason += f"; generation failed ({type(err).__name__}), extractive answer"
                pieces = []
            reply = "".join(pieces).strip()
            if not reply:
                reply = replies.extractive_reply(hits[0])
                reason += "; empty generation, extractive answer" if "extractive" not in reason else ""
            numbers = replies.cited_hits(reply, hits)
        cited = replies.citations(numbers, hits)
        timings = {"retrieval_s": retrieval_s, "first_token_s": first_token_s,
                   "total_s": time.perf_counter() - started}
        message = self._log_reply(conversation_id, question.id, channel, reply, decision.action, reason, cited,
                                  hits, timings)
        yield Final(reply, cited, decision.action, reason, conversation_id, message.id, timings)

    def escalate(self, conversation_id: str, reason: str = "customer pressed Talk to a human",
                 *, channel: str = "web") -> Iterator[Event]:
        """Hand the conversation to a human (the chat's button); logs the handoff and a reply."""
        conversation_id = self.store.ensure_conversation(conversation_id, channel)
        yield from self._escalate(conversation_id, None, channel, reason, time.perf_counter())

    def record_feedback(self, message_id: int, rating: int, comment: str | None = None) -> None:
        """Store a thumbs up (+1) or down (-1) on an assistant reply."""
        self.store.add_feedback(message_id, rating, comment)

    def _escalate(self, conversation_id: str, question_id: int | None, channel: str, reason: str,
                  started: float) -> Iterator[Event]:
        ticket = self.store.add_escalation(conversation_id, reason)
        log.info("escalated conversation=%s ticket=%s reason=%s", conversation_id, ticket.id, reason)
        yield Escalated(ticket.id, reason)
        reply = replies.escalation_reply(ticket.id)
        timings = {"retrieval_s": None, "first_token_s": None, "total_s": time.perf_counter() - started}
        message = self._log_reply(conversation_id, question_id, channel, reply, policies.ESCALATE, reason, [], [],
                                  timings)
        yield Final(reply, [], policies.ESCALATE, reason, conversation_id, message.id, timings)

    def _log_reply(self, conversation_id: str, question_id: int | None, channel: str, reply: str, decision: str,
                   reason: str, cited: list[dict], hits: list[Hit], timings: dict[str, float | None]):
        message = self.store.add_message(
            conversation_id, "assistant", reply, channel,
            reply_to=question_id, decision=decision, reason=reason,
            model_id=self.generator.model_id, adapter_id=self.generator.adapter_id,
            citations=cited, **timings,
        )
        self.store.add_retrievals(message.id, hits)
        log.info("turn conversation=%s decision=%s total_s=%.2f", conversation_id, decision, timings["total_s"])
        return message
