"""Export logged conversations as training records: each reply worth learning from, after the prompt of its turn.

One record per target reply, in the transcript contract:
`{"id", "messages": [system, recent history, user turn with its evidence, {"role": "assistant", target}],
"metadata": {"conversation_id", "message_id", "channel", "created_at", "source": "bot"|"agent",
"feedback": 1|-1|null, "reason_code", "prompt": "server", "evidence": "stored"|"rebuilt"|"none"}}`.
`"prompt": "server"` means every message but the last is the prompt the server builds (rebuilt with
`assistant.prompts.build_messages` from what the store kept), so the loss goes on the last one only.

Targets:
- a bot reply that answered (decision `answer`, the checked text the customer saw). Abstentions,
  clarifications and handoff notices are fixed replies written by code, and most never had a prompt;
- an agent's reply after a handoff (consecutive agent messages joined): the target for the customer
  question it answers, which is the last customer message before it, stepping back over requests for a
  human ("talk to an agent" holds no question). It replaces the bot's reply to that question;
- a thumbs-down bot reply is left out; with `negatives` it is written as a preference record
  `{"id", "prompt": messages without the target, "chosen": the agent's reply or null, "rejected": the bot's
  reply, "metadata"}` in the same file.

The evidence of a turn is rebuilt from the rows the store kept (`Message.evidence`: article number, doc id,
kind, text, in prompt order), with titles from the turn's citations, else the index, else the doc id, and
list groups from the index (they number the steps). A question handed over before any evidence was chosen
gets the evidence the server would choose now from the turn's logged retrievals (`"evidence": "rebuilt"`).
Everything comes from the store, so what it redacted stays redacted.
"""

from __future__ import annotations

import itertools
import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from assistant.config import Settings
from assistant.dialogue.evidence import Evidence, EvidenceRanker, EvidenceSet, Unit
from assistant.errors import AssistantError
from assistant.periods import CUSTOMER_CHANNELS, parse_period
from assistant.prompts import build_messages
from assistant.store import Conversation, Message, Store
from knowledge import Hit
from training.records import write_jsonl

log = logging.getLogger(__name__)

HUMAN_REQUESTS = ("human_request",)
"""Reason codes of turns whose message asks for a person and holds no question of its own."""


class ExportError(AssistantError):
    """An export that cannot run as asked (a bad option, an unwritable output, nothing to export)."""


@dataclass(frozen=True)
class ExportOptions:
    """Which conversations and replies to export."""

    since: datetime | None = None
    """Conversations started at or after this moment (UTC)."""
    until: datetime | None = None
    """Conversations started before this moment (UTC)."""
    channels: tuple[str, ...] = CUSTOMER_CHANNELS
    """Channels the conversations started on."""
    positive_only: bool = False
    """Only bot replies rated thumbs up (agent replies are always kept)."""
    negatives: bool = False
    """Write thumbs-down bot replies as preference records instead of leaving them out."""


@dataclass
class ExportSummary:
    """What an export wrote."""

    path: Path
    records: int = 0
    """Training records (prompt and target)."""
    preferences: int = 0
    """Preference records (a rejected bot reply, with the agent's reply when there is one)."""
    conversations: int = 0
    """Conversations that gave at least one record."""
    matched: int = 0
    """Conversations the filters selected."""
    skipped: int = 0
    """Answers whose prompt could not be rebuilt (logged without their evidence)."""


# -- options --------------------------------------------------------------------------------------------
def export_options(since: str | None = None, until: str | None = None, channel: str | None = None,
                   feedback: str | None = None, negatives: bool = False) -> ExportOptions:
    """Options from the command line's text, each bad value a clear error."""
    period = parse_period(since, until, channel)
    wanted = (feedback or "any").strip().lower()
    if wanted not in ("any", "positive"):
        raise ExportError(f"--feedback {feedback!r} is not a choice: use `positive` (thumbs-up replies and agent "
                          "replies only) or leave it out")
    return ExportOptions(period.since, period.until, period.channels, wanted == "positive", negatives)


def check_output(path: Path) -> Path:
    """The output file, when it can be written; else an error that says what to do (checked before any work)."""
    path = Path(path)
    if path.is_dir():
        raise ExportError(f"--out {path} is a folder: name a file, e.g. {path / 'transcripts.jsonl'}")
    folder = next((p for p in [path.parent, *path.parent.parents] if p.exists()), Path("."))
    if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        raise ExportError(f"cannot write {path}: {folder} is not a folder this process can write. "
                          "Choose another --out")
    return path


# -- export ---------------------------------------------------------------------------------------------
def evidence_ranker(settings: Settings) -> EvidenceRanker:
    """The evidence ranker the server builds over the configured index (titles, list groups, handed-over turns)."""
    from assistant.bootstrap import open_retriever
    from assistant.dialogue.manager import evidence_ranker as serving_ranker

    return serving_ranker(settings, open_retriever(settings))


def export_transcripts(store: Store, out: Path, settings: Settings, options: ExportOptions | None = None,
                       ranker: EvidenceRanker | None = None) -> ExportSummary:
    """Write the training records of the selected conversations to `out` (atomically); nothing to write is an error.

    `ranker` (the serving evidence ranker over the index) gives article titles and list groups, and chooses
    the evidence of handed-over questions; without it titles fall back to citations and doc ids.
    """
    options = options or ExportOptions()
    out = check_output(out)
    conversations = store.conversations_started(options.since, options.until, options.channels)
    summary = ExportSummary(out, matched=len(conversations))
    prompts = TurnPrompts(settings, store, ranker)
    rows = _counted(_records(store, conversations, prompts, options, summary), summary)
    first = next(rows, None)
    if first is None:
        raise ExportError(_nothing_to_export(options, summary))
    try:
        write_jsonl(out, itertools.chain([first], rows))
    except OSError as err:
        raise ExportError(f"cannot write {out} ({err.strerror or err}): choose another --out; "
                          "nothing was written") from err
    log.info("exported records=%d preferences=%d conversations=%d skipped=%d out=%s", summary.records,
             summary.preferences, summary.conversations, summary.skipped, out)
    return summary


def _records(store: Store, conversations: Sequence[Conversation], prompts: TurnPrompts, options: ExportOptions,
             summary: ExportSummary) -> Iterator[dict[str, Any]]:
    for conversation in conversations:
        messages = store.messages(conversation.id)
        ratings = store.ratings([m.id for m in messages if m.role == "assistant"])
        found = list(conversation_records(conversation, messages, ratings, prompts, options, summary))
        summary.conversations += bool(found)
        yield from found


def _counted(rows: Iterator[dict[str, Any]], summary: ExportSummary) -> Iterator[dict[str, Any]]:
    for row in rows:
        if "rejected" in row:
            summary.preferences += 1
        else:
            summary.records += 1
        yield row


def _nothing_to_export(options: ExportOptions, summary: ExportSummary) -> str:
    where = [f"channel {', '.join(options.channels)}"]
    if options.since:
        where.append(f"started since {options.since.isoformat()}")
    if options.until:
        where.append(f"started before {options.until.isoformat()}")
    if not summary.matched:
        return (f"no conversations in the store match ({'; '.join(where)}): nothing written. Widen --since/--until "
                "or --channel, or point ASSISTANT_DATABASE_URL at the store the server logs to")
    hint = "drop --feedback positive, " if options.positive_only else ""
    hint += "" if options.negatives else "pass --negatives to write thumbs-down replies as preference records, "
    return (f"{summary.matched} conversation(s) match ({'; '.join(where)}) but none has a reply to learn from "
            f"(an answer not rated down, or an agent's reply after a handoff): nothing written. {hint}"
            "or widen the filters")


# -- one conversation ---------------------------------------------------------------------------------
@dataclass
class AgentReply:
    """Consecutive agent messages, and the customer question they answer."""

    messages: list[Message]
    question: Message | None = None
    reason_code: str | None = None

    @property
    def text(self) -> str:
        return "\n\n".join(m.content for m in self.messages)


def conversation_records(conversation: Conversation, messages: Sequence[Message], ratings: Mapping[int, int],
                         prompts: TurnPrompts, options: ExportOptions,
                         summary: ExportSummary | None = None) -> Iterator[dict[str, Any]]:
    """The records of one conversation (its messages oldest first), in the order of their targets."""
    replies = {m.reply_to: m for m in messages if m.role == "assistant" and m.reply_to is not None}
    agents = {a.question.id: a for a in agent_replies(messages, replies) if a.question is not None}
    targets: list[tuple[int, Message, AgentReply | None]] = []
    for reply in messages:
        if reply.role == "assistant" and reply.decision == "answer" and reply.reply_to is not None:
            targets.append((reply.id, reply, None))
    targets += [(a.messages[0].id, replies.get(question_id), a) for question_id, a in agents.items()]
    by_id = {m.id: m for m in messages}
    for _, reply, agent in sorted(targets, key=lambda target: target[0]):
        if agent is not None:
            record = _record(conversation, agent.question, reply, agent, prompts, messages, None)
        else:
            rating, answered_by = ratings.get(reply.id), agents.get(reply.reply_to)
            if rating == -1 and options.negatives:  # a preference record, the agent's reply chosen when there is one
                chosen = answered_by.text if answered_by else None
            elif answered_by or rating == -1 or (options.positive_only and rating != 1):
                continue  # the agent's reply is the better target; a thumbs-down is no target
            else:
                chosen = None
            record = _record(conversation, by_id[reply.reply_to], reply, None, prompts, messages, rating, chosen)
        if record is None and summary is not None:
            summary.skipped += 1
        elif record is not None:
            yield record


def agent_replies(messages: Sequence[Message], replies: Mapping[int | None, Message]) -> list[AgentReply]:
    """Runs of agent messages, each with the customer question it answers (None when there is none to find)."""
    runs: list[AgentReply] = []
    asked: list[Message] = []  # customer messages since the previous agent reply
    handoff: str | None = None
    for message in messages:
        if message.role == "user":
            asked.append(message)
        elif message.role == "assistant" and message.decision == "escalate":
            handoff = message.reason_code
        elif message.role == "agent":
            if runs and not asked:  # no customer message since the agent's previous one: the same reply
                runs[-1].messages.append(message)
                continue
            questions = [m for m in asked if getattr(replies.get(m.id), "reason_code", None) not in HUMAN_REQUESTS]
            runs.append(AgentReply([message], questions[-1] if questions else None, handoff))
            asked = []
    return runs


def _record(conversation: Conversation, question: Message, reply: Message | None, agent: AgentReply | None,
            prompts: TurnPrompts, messages: Sequence[Message], rating: int | None,
            chosen: str | None = None) -> dict[str, Any] | None:
    """A training record (or, with a rating of -1, a preference record) for the reply to `question`."""
    history = [{"role": m.role, "content": m.content} for m in messages if m.id < question.id]
    built = prompts.evidence(question, reply, history, rebuild=agent is not None)
    if built is None:
        return None
    evidence, provenance = built
    prompt = prompts.messages(question.content, evidence, history)
    target = agent.messages[0] if agent else reply
    metadata = {"conversation_id": conversation.id, "message_id": target.id, "channel": conversation.channel,
                "created_at": _iso(target.created_at), "source": "agent" if agent else "bot", "feedback": rating,
                "reason_code": agent.reason_code if agent else reply.reason_code, "prompt": "server",
                "evidence": provenance}
    record_id = f"{conversation.id}:{target.id}"
    if rating == -1:
        return {"id": record_id, "prompt": prompt, "chosen": chosen, "rejected": reply.content, "metadata": metadata}
    content = agent.text if agent else reply.content
    return {"id": record_id, "messages": [*prompt, {"role": "assistant", "content": content}], "metadata": metadata}


def _iso(moment: datetime) -> str:
    return (moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)).isoformat()


# -- the prompt of a turn ---------------------------------------------------------------------------------
@dataclass
class TurnPrompts:
    """Rebuilds the prompt the server built for a turn from what the store kept."""

    settings: Settings
    store: Store
    ranker: EvidenceRanker | None = None

    def messages(self, question: str, evidence: EvidenceSet | None,
                 history: Sequence[dict[str, str]]) -> list[dict[str, str]]:
        """System message, recent history and the question with its evidence, as `DialogueManager` builds them."""
        return build_messages(question, evidence, company=self.settings.company_name, history=history,
                              history_messages=self.settings.history_messages)

    def evidence(self, question: Message, reply: Message | None, history: Sequence[dict[str, str]], *,
                 rebuild: bool) -> tuple[EvidenceSet | None, str] | None:
        """(evidence, where it came from) of the turn; None when an answer's evidence was not kept."""
        if reply is not None and reply.evidence:
            rows = stored_rows(reply.evidence)
            if rows is not None:
                return self.stored(rows, reply.citations or []), "stored"
        if not rebuild:
            return None
        if reply is None or self.ranker is None:
            return None, "none"
        hits = [Hit(r.doc_id, r.chunk_id, self.title(r.doc_id), "", "", r.score, r.confidence)
                for r in self.store.retrievals(reply.id)]
        chosen = self.ranker.select(question.content, hits, history) if hits else EvidenceSet()
        return (chosen, "rebuilt") if chosen else (None, "none")

    def title(self, doc_id: str, cited: Mapping[str, str] | None = None) -> str:
        """An article's title: as the turn cited it, else as the index has it, else its id."""
        if (cited or {}).get(doc_id):
            return cited[doc_id]
        units = self.ranker.units(doc_id) if self.ranker is not None else []
        return units[0].title if units else doc_id

    def stored(self, rows: Sequence[dict[str, Any]], citations: Sequence[dict[str, Any]]) -> EvidenceSet:
        """The EvidenceSet a turn's stored evidence rows describe, in the order the prompt held them."""
        cited = {c.get("doc_id"): c.get("title") for c in citations if isinstance(c, dict) and c.get("title")}
        doc_of: dict[int, str] = {}
        items, previous = [], None
        for position, row in enumerate(rows):
            doc_of.setdefault(row["article"], row["doc_id"])
            group = self.group(row, position, previous)
            unit = Unit(row["doc_id"], self.title(row["doc_id"], cited), "", "", row["text"], row["kind"], group,
                        (0, position))  # stored rows are in prompt order already
            items.append(Evidence(unit, float(row.get("score") or 0.0), row["article"]))
            previous = (row, group)
        articles = [Hit(doc_of.get(n, ""), "", self.title(doc_of.get(n, ""), cited), "", "", 0.0, 0.0)
                    for n in range(1, max(doc_of, default=0) + 1)]
        return EvidenceSet(items, articles, max((e.score for e in items), default=0.0))

    def group(self, row: Mapping[str, Any], position: int, previous: tuple[Mapping[str, Any], str] | None) -> str:
        """The list a stored step belongs to (steps are numbered per list): from the index, else one list per run
        of steps of an article."""
        if row["kind"] != "step":
            return ""
        if self.ranker is not None:
            for unit in self.ranker.units(row["doc_id"]):
                if unit.text == row["text"] and unit.kind == "step":
                    return unit.group
        if previous is not None and previous[0]["kind"] == "step" and previous[0]["article"] == row["article"]:
            return previous[1]
        return f"{row['doc_id']}/stored-{position}"


def stored_rows(rows: Any) -> list[dict[str, Any]] | None:
    """The stored evidence rows when each has the fields the prompt needs; else None (logged)."""
    if not isinstance(rows, list):
        return None
    for row in rows:
        if not (isinstance(row, dict) and isinstance(row.get("article"), int) and row["article"] >= 1
                and isinstance(row.get("doc_id"), str) and isinstance(row.get("text"), str)
                and isinstance(row.get("kind"), str)):
            log.warning("stored evidence row without article, doc_id, kind or text: %r", row)
            return None
    return rows
