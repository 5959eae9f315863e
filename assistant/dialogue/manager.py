"""DialogueManager.respond: guard, decide, retrieve, pick the evidence, generate, check, log — one turn at a time."""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Protocol

from assistant.config import Settings
from assistant.dialogue import policies, replies
from assistant.dialogue.checked_stream import CheckedStream, StreamReport
from assistant.dialogue.events import CheckOutcome, Escalated, Event, Final, Sources, Token
from assistant.dialogue.evidence import (
    EvidenceConfig,
    EvidenceRanker,
    EvidenceSet,
    extract_answer,
    stated_fact,
)
from assistant.dialogue.grounding import GroundingChecker, SentenceCheck
from assistant.dialogue.policies import Action, Decision, TurnLimits, TurnState
from assistant.dialogue.text import fact_tokens, names
from assistant.errors import AssistantError, InvalidMessage
from assistant.generation import Generator
from assistant.guards import check_message, injection_markers, redact_pii, redact_values, requested_phrases
from assistant.prompts import build_messages
from assistant.store import Message, Store
from knowledge import Hit
from knowledge.retriever import Retriever

log = logging.getLogger(__name__)

HELD = Action.HELD.value


class IntentPredictor(Protocol):
    """An intent classifier (`assistant.classify.IntentClassifier`, or a fake in tests)."""

    def predict(self, texts: Sequence[str]) -> list[tuple[str, float]]: ...


@dataclass
class DialogueManager:
    """Answers customer turns from the knowledge base, hands over to humans, and logs every turn."""

    settings: Settings
    retriever: Retriever
    generator: Generator
    store: Store
    classifier: IntentPredictor | None = None
    """The configured intent / out-of-scope classifier, if any: its label of each message feeds the policies."""
    evidence: EvidenceRanker = field(init=False)

    def __post_init__(self) -> None:
        self.evidence = evidence_ranker(self.settings, self.retriever)

    @property
    def limits(self) -> TurnLimits:
        s = self.settings
        return TurnLimits(max_messages_per_minute=s.max_messages_per_minute, abstain_below=s.abstain_below,
                          min_evidence=s.min_evidence_score, always_human_topics=s.always_human_topics,
                          escalate_intents=s.escalate_intents, min_intent_probability=s.min_intent_probability,
                          abstain_on_unknown_names=s.abstain_on_unknown_names)

    def state(self, conversation_id: str, text: str, messages: Sequence[Message]) -> TurnState:
        """The facts the policies look at, read once from the store."""
        return TurnState(
            text=text, history=[{"role": m.role, "content": m.content} for m in messages],
            held_by=self.store.held_by(conversation_id), open_ticket=self.store.active_ticket(conversation_id),
            recent_messages=self.store.count_recent(conversation_id, "user", 60),
            previous_decisions=[m.decision for m in messages if m.decision], limits=self.limits,
            intent=self.classifier.predict([text])[0] if self.classifier is not None else None)

    def respond(self, conversation_id: str | None, text: str, *, channel: str = "web") -> Iterator[Event]:
        """Events of one turn; a message refused by the guards or the rate limit raises InvalidMessage, unlogged."""
        started = time.perf_counter()
        text = check_message(text, self.settings.max_message_chars)
        conversation_id = self.store.ensure_conversation(conversation_id, channel)
        messages = self.store.messages(conversation_id)
        state = self.state(conversation_id, text, messages)
        decision = policies.first_decision(state, policies.BEFORE_RETRIEVAL)
        if decision is not None and decision.action == Action.REJECT:
            raise InvalidMessage(f"that is {decision.detail}: please wait a moment before sending the next one")
        question, disclosed = self._log_customer(conversation_id, text, channel)
        turn = _Turn(conversation_id, question.id, channel, started, disclosed)
        turn.timings["prepare_s"] = time.perf_counter() - started
        if decision is not None and decision.action != Action.ESCALATE:
            yield from self._act(turn, decision, state)
            return

        with turn.timed("retrieval_s"):  # a handoff keeps what retrieval found, for the agent
            hits = self.retriever.search(text, history=state.history, k=self.settings.retrieval_k)
        turn.hits = hits
        if decision is not None:
            yield from self._act(turn, decision, state)
            return
        with turn.timed("evidence_s"):
            evidence = self.evidence.select(text, hits, state.history) if hits else EvidenceSet()
        if not evidence and state.history:  # a change of topic: the message alone may find what the conversation hid
            with turn.timed("retrieval_s"):
                alone = self.retriever.search(text, k=self.settings.retrieval_k)
            with turn.timed("evidence_s"):
                fresh = self.evidence.select(text, alone) if alone else EvidenceSet()
            if fresh:
                hits, evidence = alone, fresh
                turn.hits = hits
        score = (evidence.best_score if evidence else float("-inf")) if hits else None  # no units: no evidence
        state = dataclasses.replace(state, hits=hits, evidence_score=score,
                                    unknown_names=self.evidence.unknown_names(question.content))  # PII is no name
        decision = policies.decide(state, policies.AFTER_RETRIEVAL)
        markers = injection_markers(text)
        if markers:
            decision = dataclasses.replace(decision, detail=f"{decision.detail}; instruction-like text ignored")
        turn.evidence = evidence
        if decision.action != Action.ANSWER:
            yield from self._act(turn, decision, state)
            return
        yield from self._answer(turn, decision, text, state)

    def _act(self, turn: _Turn, decision: Decision, state: TurnState) -> Iterator[Event]:
        """Carry out a decision that is not an answer: stay quiet, reply politely, hand over or abstain."""
        if decision.action == Action.HELD:  # a human has taken over: the bot stays quiet, the agent sees it
            yield Final(replies.held_reply(), [], HELD, decision.code, turn.conversation_id, None, {},
                        reason_detail=decision.detail)
        elif decision.action == Action.ESCALATE:
            history = [*state.history, {"role": "user", "content": state.text}]
            yield from self._escalate(turn, decision, history)
        elif decision.action == Action.CLARIFY:
            yield from self._finish(turn, replies.abuse_reply(self.settings.company_name), decision)
        else:
            about = state.unknown_names if decision.code == "unknown_name" else ()
            yield from self._finish(turn, replies.abstain_reply(self.settings.company_name, about), decision)

    def _answer(self, turn: _Turn, decision: Decision, text: str, state: TurnState) -> Iterator[Event]:
        """Generate from the evidence and stream only the sentences that pass the check."""
        evidence = turn.evidence
        yield Sources(evidence.articles)
        checker = grounding_checker(self.settings, self.evidence, evidence, text)
        steps, article = evidence.procedure()
        stream = CheckedStream(_TimedChecker(checker, turn), procedure=steps, procedure_article=article - 1,
                               fact=stated_fact(evidence, text), leads=evidence.leads())
        draft: list[str] = []
        failed = False
        prompt = build_messages(text, evidence, company=self.settings.company_name, history=state.history,
                                history_messages=self.settings.history_messages)
        turn.generator = self.generator
        pieces = turn.generator.stream(prompt)
        try:
            for shown in stream.feed(_recorded(pieces, draft, turn)):
                turn.first_token(time.perf_counter())
                yield Token(shown)
        except AssistantError as err:  # busy, or the client went away: the evidence still answers
            log.warning("generation unavailable conversation=%s: %s", turn.conversation_id, err)
            failed = True
        except Exception:  # a failed generation must still leave the customer an answer
            log.exception("generation failed conversation=%s", turn.conversation_id)
            failed = True
        finally:
            close = getattr(pieces, "close", None)
            if close is not None:
                close()  # stops the model when the check ended the draft early
        for shown in stream.finish():  # what passed and was held back (steps, sentences awaiting the fact), even
            turn.first_token(time.perf_counter())  # when generation failed
            yield Token(shown)
        yield from self._conclude(turn, decision, text, stream.report, "".join(draft), failed)

    def _conclude(self, turn: _Turn, decision: Decision, question: str, report: StreamReport, draft: str,
                  failed: bool) -> Iterator[Event]:
        """After the draft: keep what passed, quote the evidence when nothing factual did, or abstain."""
        evidence = turn.evidence or EvidenceSet()
        reply = "".join(text for text, _ in report.shown)
        numbers = [i + 1 for i in report.articles]
        fallback = bool(report.quoted) and report.quoted == len(report.shown)  # none of the model's words survived
        detail = decision.detail + ("; generation failed" if failed else "")
        if report.stopped in ("loop", "off_evidence"):
            detail += f"; draft stopped ({report.stopped})"
        if report.removed:
            detail += f"; held back {report.removed} sentence(s)"
        if report.quoted > report.fact_quoted:
            detail += "; the article's own steps shown"
        if report.fact_quoted:
            detail += "; the asked-for fact quoted from the evidence"
        if not report.has_fact:
            model_declined = replies.says_it_does_not_know(draft)
            declined = self._unmatched_terms(question, evidence) or (self.settings.trust_model_decline
                                                                     and model_declined)
            extract = None if declined else extract_answer(evidence)
            fact = stated_fact(evidence, question)  # None unless the question asks for a fact the evidence states
            # a quote that states no fact, or never says the name asked about, gives way to the sentence that does (a
            # yes-or-no question's word is no such claim)
            if extract is not None and fact is not None and fact.kind != "word" and \
                    not (fact.stated_in(extract[0]) if fact.kind == "name" else fact_tokens(extract[0])):
                extract = fact.sentence, fact.article
            if extract is None:
                decision = Decision(Action.ABSTAIN, "unsupported", "nothing the model wrote is in the evidence")
                outcome = CheckOutcome(report.before, None, False, report.removed, evidence.summary(), draft)
                text = (reply + "\n\n" if reply else "") + replies.abstain_reply(self.settings.company_name)
                yield from self._finish(turn, text, decision, streamed=reply, check=outcome)
                return
            quoted, article = extract
            addition = ("\n\n" if reply else "") + quoted
            turn.first_token(time.perf_counter())
            yield Token(addition)
            reply, numbers, fallback = reply + addition, [article], True
            detail += "; extractive answer from the evidence" + (" (the model declined)" if model_declined else "")
        outcome = CheckOutcome(report.before, 1.0 if fallback else report.after, fallback, report.removed,
                               evidence.summary(), draft)
        yield from self._finish(turn, reply, dataclasses.replace(decision, detail=detail), numbers=numbers,
                                streamed=reply, check=outcome)

    def _unmatched_terms(self, question: str, evidence: EvidenceSet) -> set[str]:
        """Names in the question that the evidence never mentions ("Google Home", "Bitcoin")."""
        said = " ".join([*evidence.contexts(), *evidence.texts()]).lower()
        return {term for term in names(question) if term not in said}

    def escalate(self, conversation_id: str, reason: str = "customer pressed Talk to a human",
                 *, channel: str = "web") -> Iterator[Event]:
        """Hand the conversation to a human (the chat's button); logs the handoff and a reply."""
        conversation_id = self.store.ensure_conversation(conversation_id, channel)
        history = self.store.history(conversation_id)
        turn = _Turn(conversation_id, None, channel, time.perf_counter(), ())
        yield from self._escalate(turn, Decision(Action.ESCALATE, "human_button", reason), history)

    def transcript(self, conversation_id: str) -> list[Message]:
        """The stored conversation (to show it again after a reload or a server restart)."""
        return self.store.messages(conversation_id)

    def updates_since(self, conversation_id: str, after_id: int) -> list[Message]:
        """Agent messages the customer's chat has not shown yet."""
        return self.store.messages_since(conversation_id, after_id, roles=("agent",))

    def record_feedback(self, conversation_id: str, message_id: int, rating: int, comment: str | None = None) -> None:
        """Store a thumbs up (+1) or down (-1) on an assistant reply of this conversation (any other id: one
        neutral error)."""
        self.store.add_feedback(conversation_id, message_id, rating, comment)

    def _escalate(self, turn: _Turn, decision: Decision, history: list[dict[str, str]]) -> Iterator[Event]:
        """Open a ticket (or point to the one already open) and tell the customer its number."""
        summary, _ = redact_pii(replies.handoff_summary(history, decision.detail or decision.code))
        ticket_id, opened = self.store.open_ticket(turn.conversation_id, decision.reason, summary)
        if opened:
            text = replies.escalation_reply(ticket_id)
            log.info("escalated conversation=%s ticket=%s reason=%s", turn.conversation_id, ticket_id, decision.code)
        else:  # one ticket per conversation: point to the one already open
            text = replies.already_escalated_reply(ticket_id)
        yield Escalated(ticket_id, decision.reason)
        yield from self._finish(turn, text, decision)

    def _log_customer(self, conversation_id: str, text: str, channel: str) -> tuple[Message, list[tuple[str, str]]]:
        """Log the customer's message with personal data redacted; returns it and what was redacted.

        The store re-checks the rate limit under a lock on the conversation, so simultaneous sends
        cannot all pass the policy's check together (over the limit it raises RateLimited, nothing stored).
        """
        stored, found = redact_pii(text)
        message = self.store.add_customer_message(conversation_id, stored, channel, pii_redacted=bool(found),
                                                  max_per_minute=self.settings.max_messages_per_minute)
        return message, found

    def _finish(self, turn: _Turn, reply: str, decision: Decision, *, numbers: Sequence[int] = (),
                streamed: str = "", check: CheckOutcome | None = None) -> Iterator[Event]:
        """Stream a fixed reply (unless it was streamed already), log the turn and yield the Final event."""
        if reply != streamed:
            yield Token(reply[len(streamed):] if reply.startswith(streamed) else reply)
        articles = turn.evidence.articles if turn.evidence else []
        cited = replies.citations(numbers, articles, evidence=turn.evidence.texts() if turn.evidence else ())
        timings = {**turn.timings, "total_s": time.perf_counter() - turn.started}
        check = check or CheckOutcome()
        # Only what the customer disclosed is redacted from the reply: the help center's own phone numbers stay.
        stored, found = redact_values(reply, turn.disclosed)
        logging_started = time.perf_counter()
        message = self.store.record_reply(  # the reply and its retrievals in one transaction
            turn.conversation_id, stored, turn.channel, reply_to=turn.question_id, hits=turn.hits,
            decision=decision.action.value, reason=decision.reason, reason_code=decision.code,
            model_id=(turn.generator or self.generator).model_id,
            adapter_id=(turn.generator or self.generator).adapter_id, citations=cited,
            pii_redacted=bool(found), groundedness=check.after, groundedness_before=check.before,
            fallback=check.fallback, evidence=check.evidence or None, removed=check.removed, timings=timings,
            retrieval_s=timings.get("retrieval_s"), first_token_s=timings.get("first_token_s"),
            total_s=timings["total_s"],
        )
        timings["log_s"] = time.perf_counter() - logging_started
        log.info("turn conversation=%s decision=%s reason=%s total_s=%.2f", turn.conversation_id,
                 decision.action.value, decision.code, timings["total_s"])
        yield Final(reply, cited, decision.action.value, decision.code, turn.conversation_id, message.id, timings,
                    check, decision.detail)


@dataclass
class _Turn:
    """The running facts of one turn: where it is logged, when it started, what was found."""

    conversation_id: str
    question_id: int | None
    channel: str
    started: float
    disclosed: Sequence[tuple[str, str]]
    hits: list[Hit] = field(default_factory=list)
    evidence: EvidenceSet | None = None
    generator: Generator | None = None
    """The generator that wrote this turn (the served one can be switched while a turn runs)."""
    timings: dict[str, float | None] = field(default_factory=lambda: {"retrieval_s": None, "first_token_s": None})
    """Seconds per stage: prepare (guard, state, customer message logged), retrieval, evidence, generation
    (time spent waiting for the model), check, log; first_token_s is when the first checked text was shown."""

    def first_token(self, now: float) -> None:
        """Record when the first checked text reached the customer."""
        if self.timings.get("first_token_s") is None:
            self.timings["first_token_s"] = now - self.started

    @contextmanager
    def timed(self, stage: str) -> Iterator[None]:
        """Add the time spent in the block to `stage`."""
        began = time.perf_counter()
        try:
            yield
        finally:
            self.timings[stage] = (self.timings.get(stage) or 0.0) + time.perf_counter() - began


class _TimedChecker:
    """The grounding checker, with the time it takes added to the turn's `check_s`."""

    def __init__(self, checker: GroundingChecker, turn: _Turn) -> None:
        self.checker, self.turn = checker, turn

    def check(self, sentence: str) -> SentenceCheck:
        with self.turn.timed("check_s"):
            return self.checker.check(sentence)


def _recorded(pieces: Iterator[str], draft: list[str], turn: _Turn) -> Iterator[str]:
    """Pass the model's pieces through, keeping the whole draft and the time spent waiting for the model."""
    while True:
        with turn.timed("generation_s"):
            piece = next(pieces, None)
        if piece is None:
            return
        draft.append(piece)
        yield piece


__all__ = ["HELD", "DialogueManager", "StreamReport"]


def evidence_ranker(settings: Settings, retriever: Retriever) -> EvidenceRanker:
    """The evidence ranker of a turn as the settings configure it (training builds its prompts with it too)."""
    cfg = EvidenceConfig(min_score=settings.min_evidence_score, margin=settings.evidence_margin)
    ranker = EvidenceRanker(retriever.index.chunks, retriever.embedder.encode, cfg, query_embed=retriever.query_vectors)
    if len(retriever.index.chunks) <= 5_000:
        ranker.warm()
    return ranker


def grounding_checker(settings: Settings, ranker: EvidenceRanker, evidence: EvidenceSet, question: str
                      ) -> GroundingChecker:
    """The check a turn's reply sentences must pass: against that turn's evidence, with cached unit vectors."""
    return GroundingChecker(evidence.texts(), embed=ranker.vectors, min_similarity=settings.support_similarity,
                            contexts=evidence.contexts(), unit_headings=evidence.unit_headings(),
                            foreign_terms=ranker.foreign_terms(question),
                            requested=requested_phrases(question))
