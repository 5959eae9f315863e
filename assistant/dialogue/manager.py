"""DialogueManager.respond: guard, retrieve, decide, generate, check, log — one turn at a time."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from assistant.config import Settings
from assistant.dialogue import policies, replies
from assistant.dialogue.events import Escalated, Event, Final, Sources, Token
from assistant.dialogue.grounding import check_reply, extractive_answer
from assistant.errors import InvalidMessage
from assistant.generation import Generator
from assistant.guards import check_message, injection_markers, quote_as_data, redact_pii, redact_values
from assistant.prompts import build_messages
from assistant.store import Message, Store
from knowledge import Hit
from knowledge.retriever import Retriever

log = logging.getLogger(__name__)

HELD = "held"


@dataclass
class DialogueManager:
    """Answers customer turns from the knowledge base, hands over to humans, and logs every turn."""

    settings: Settings
    retriever: Retriever
    generator: Generator
    store: Store

    def respond(self, conversation_id: str | None, text: str, *, channel: str = "web") -> Iterator[Event]:
        """Events of one turn; a message that fails the guards raises InvalidMessage before anything is logged."""
        text = check_message(text, self.settings.max_message_chars)
        conversation_id = self.store.ensure_conversation(conversation_id, channel)
        if self.store.count_recent(conversation_id, "user", 60) >= self.settings.max_messages_per_minute:
            raise InvalidMessage(f"that is more than {self.settings.max_messages_per_minute} messages in a minute: "
                                 "please wait a moment before sending the next one")
        messages = self.store.messages(conversation_id)
        history = [{"role": m.role, "content": m.content} for m in messages]
        started = time.perf_counter()
        question, disclosed = self._log_customer(conversation_id, text, channel)

        agent = self.store.held_by(conversation_id)
        if agent:  # a human has taken over: the bot stays quiet, the agent sees the message
            yield Final(replies.held_reply(), [], HELD, f"{agent} holds the conversation", conversation_id, None, {})
            return
        if policies.is_abusive(text):
            reply = replies.abuse_reply(self.settings.company_name)
            yield from self._finish(conversation_id, question.id, channel, reply, policies.CLARIFY,
                                    "abusive message", [], [], started, {"retrieval_s": None}, disclosed=disclosed)
            return

        hits = self.retriever.search(text, history=history, k=self.settings.retrieval_k)
        timings: dict[str, float | None] = {"retrieval_s": time.perf_counter() - started}
        decision = policies.decide(policies.TurnFacts(
            text=text, hits=hits, previous_decisions=[m.decision for m in messages if m.decision],
            abstain_below=self.settings.abstain_below, always_human_topics=self.settings.always_human_topics))
        reason = decision.reason
        markers = injection_markers(text)
        if markers:
            reason += f"; instruction-like text ignored ({markers[0]!r})"
        if decision.action == policies.ESCALATE:
            yield from self._escalate(conversation_id, question.id, channel, reason, started,
                                      [*history, {"role": "user", "content": question.content}], hits)
            return
        if decision.action == policies.ABSTAIN:
            reply = replies.abstain_reply(self.settings.company_name)
            yield from self._finish(conversation_id, question.id, channel, reply, policies.ABSTAIN, reason, [], hits,
                                    started, timings, disclosed=disclosed)
            return

        yield Sources(hits)
        streamed = yield from self._generate(conversation_id, text, hits, history, started, timings)
        if streamed is None:
            reason += "; generation failed"
            streamed = ""
        reply, action, numbers, check = self._checked(text, streamed, hits)
        if check["fallback"]:
            reason += "; reply unsupported by the passages, extractive answer"
        elif check["removed"]:
            reason += f"; removed {check['removed']} unsupported sentence(s)"
        if action == policies.ABSTAIN:
            reason += "; nothing in the passages answers it"
        yield from self._finish(conversation_id, question.id, channel, reply, action, reason, numbers, hits, started,
                                timings, check, disclosed)

    def _generate(self, conversation_id: str, text: str, hits: list[Hit], history: list[dict[str, str]],
                  started: float, timings: dict) -> Iterator[Event]:
        """Stream the model's reply as Token events; returns the whole text, or None if generation failed."""
        pieces: list[str] = []
        try:
            prompt = build_messages(text, hits, company=self.settings.company_name, history=history,
                                    history_turns=self.settings.history_turns)
            for piece in self.generator.stream(prompt):
                if timings.get("first_token_s") is None:
                    timings["first_token_s"] = time.perf_counter() - started
                pieces.append(piece)
                yield Token(piece)
        except Exception:  # a failed generation must still leave the customer an answer
            log.exception("generation failed conversation=%s", conversation_id)
            return None
        return "".join(pieces).strip()

    def _checked(self, question: str, reply: str, hits: list[Hit]) -> tuple[str, str, list[int], dict]:
        """The reply with unsupported sentences removed, or an extractive answer, or an abstention."""
        passages = [quote_as_data(hit.text) for hit in hits]
        embed = self.retriever.embedder.encode
        report = check_reply(reply, passages, embed=embed, min_similarity=self.settings.support_similarity)
        check = {"before": report.groundedness, "after": report.groundedness, "fallback": False,
                 "removed": sum(1 for s in report.checked if not s.supported)}
        if replies.says_it_does_not_know(reply):
            check.update(after=None, removed=0)
            return replies.abstain_reply(self.settings.company_name), policies.ABSTAIN, [], check
        if reply and report.has_supported_fact:
            text = report.supported_text
            check["after"] = check_reply(text, passages, embed=embed,
                                         min_similarity=self.settings.support_similarity).groundedness
            numbers = replies.cited_hits(text, hits) or [i + 1 for i in report.supporting_passages]
            return text, policies.ANSWER, numbers, check
        extract = extractive_answer(question, passages, embed=embed, min_similarity=self.settings.extract_similarity)
        if extract is None:
            check.update(after=None, removed=0)
            return replies.abstain_reply(self.settings.company_name), policies.ABSTAIN, [], check
        index, sentences = extract
        check.update(fallback=True, after=1.0, removed=0)
        return f"{sentences} [{index + 1}]", policies.ANSWER, [index + 1], check

    def escalate(self, conversation_id: str, reason: str = "customer pressed Talk to a human",
                 *, channel: str = "web") -> Iterator[Event]:
        """Hand the conversation to a human (the chat's button); logs the handoff and a reply."""
        conversation_id = self.store.ensure_conversation(conversation_id, channel)
        history = self.store.history(conversation_id)
        yield from self._escalate(conversation_id, None, channel, reason, time.perf_counter(), history)

    def transcript(self, conversation_id: str) -> list[Message]:
        """The stored conversation (to show it again after a reload or a server restart)."""
        return self.store.messages(conversation_id)

    def updates_since(self, conversation_id: str, after_id: int) -> list[Message]:
        """Agent messages the customer's chat has not shown yet."""
        return self.store.messages_since(conversation_id, after_id, roles=("agent",))

    def record_feedback(self, message_id: int, rating: int, comment: str | None = None) -> None:
        """Store a thumbs up (+1) or down (-1) on an assistant reply."""
        self.store.add_feedback(message_id, rating, comment)

    def _escalate(self, conversation_id: str, question_id: int | None, channel: str, reason: str,
                  started: float, history: list[dict[str, str]], hits: list[Hit] | None = None) -> Iterator[Event]:
        """Open a ticket (or point to the one already open) and tell the customer its number."""
        active = self.store.active_ticket(conversation_id)
        if active is not None:
            ticket_id, text = active, replies.already_escalated_reply(active)
        else:
            summary, _ = redact_pii(replies.handoff_summary(history, reason))  # history holds stored, redacted text
            ticket_id = self.store.add_escalation(conversation_id, reason, summary).id
            text = replies.escalation_reply(ticket_id)
            log.info("escalated conversation=%s ticket=%s reason=%s", conversation_id, ticket_id, reason)
        yield Escalated(ticket_id, reason)
        yield from self._finish(conversation_id, question_id, channel, text, policies.ESCALATE, reason, [],
                                hits or [], started, {"retrieval_s": None})

    def _log_customer(self, conversation_id: str, text: str, channel: str) -> tuple[Message, list[tuple[str, str]]]:
        """Log the customer's message with personal data redacted; returns it and what was redacted."""
        stored, found = redact_pii(text)
        return self.store.add_message(conversation_id, "user", stored, channel, pii_redacted=bool(found)), found

    def _finish(self, conversation_id: str, question_id: int | None, channel: str, reply: str, decision: str,
                reason: str, numbers: list[int], hits: list[Hit], started: float, timings: dict,
                check: dict | None = None, disclosed: Sequence[tuple[str, str]] = ()) -> Iterator[Event]:
        """Log the reply (PII redacted, with its retrievals and timings) and yield the Final event."""
        cited = replies.citations(numbers, hits)
        timings = {"retrieval_s": timings.get("retrieval_s"), "first_token_s": timings.get("first_token_s"),
                   "total_s": time.perf_counter() - started}
        # Only what the customer disclosed is redacted from the reply: the help center's own phone numbers stay.
        stored, found = redact_values(reply, disclosed)
        check = check or {}
        message = self.store.add_message(
            conversation_id, "assistant", stored, channel, reply_to=question_id, decision=decision, reason=reason,
            model_id=self.generator.model_id, adapter_id=self.generator.adapter_id, citations=cited,
            pii_redacted=bool(found), groundedness=check.get("after"), groundedness_before=check.get("before"),
            fallback=bool(check.get("fallback")), **timings,
        )
        self.store.add_retrievals(message.id, hits)
        log.info("turn conversation=%s decision=%s total_s=%.2f", conversation_id, decision, timings["total_s"])
        yield Final(reply, cited, decision, reason, conversation_id, message.id, timings)
