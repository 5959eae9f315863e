"""Fine-tuning examples: the prompt the server builds for a turn, then the reply to learn.

Sources, all turned into the same `Example`:
- transcripts in the contract (`train export` writes the server's own prompts: `"prompt": "server"`
  in their metadata, learned on the last reply only); other transcripts are learned as they are, or,
  with an index, rebuilt turn by turn into the prompt the server would build now (retrieval, evidence,
  `assistant.prompts.build_messages`), keeping of each reply only the sentences the grounding check
  passes against that evidence, so the model learns what the customer would be shown;
- any knowledge index (`pairs_from_index`): each article section's heading as a question, answered
  with the section's own evidence, and near misses (the article withheld, distractor evidence
  retrieved) answered with the honest "not in the help center" reply;
- DSTC11 (`training.grounded_dialogues`): dialogue context and gold knowledge, then the response.

No question of a test or dev set may reach training (`drop_leaks`); the split into train and dev
is by a hash of the conversation or article, so it never changes between runs.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from assistant.dialogue.evidence import EvidenceSet
from assistant.dialogue.replies import says_it_does_not_know
from assistant.dialogue.text import as_sentence
from assistant.prompts import build_messages
from training.records import Transcript

if TYPE_CHECKING:
    from assistant.config import Settings
    from knowledge import Hit
    from knowledge.retriever import Retriever

log = logging.getLogger(__name__)

DECLINE = ("I'm sorry, I don't have that information in the help center. "
           "I can connect you with a human agent if you like.")
"""The target of a question the evidence does not answer (the server turns it into its abstention)."""
GENERIC_HEADINGS = {"steps", "how to", "how it works", "instructions", "what to do", "step by step"}
MAX_TARGET_SENTENCES = 3
ABSENT_NAMES = ("Klarna", "Venmo", "HomeKit", "WeChat", "Xbox", "Dropbox", "Slack", "Shopify", "Ethereum",
                "SmartThings", "Kindle", "Siri")
"""Products a help center rarely mentions: near-miss questions name one (only those its index never uses)."""


@dataclass(frozen=True)
class Example:
    """One conversation to learn from, with the customer questions it holds (for the leak check)."""

    id: str
    group: str
    """Examples of one conversation or article share a group, so the split never separates them."""
    messages: tuple[dict[str, str], ...]
    train_on: Literal["all", "last"] = "all"
    source: str = ""
    questions: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """The transcript contract, with what the trainer needs in `metadata`."""
        return {"id": self.id, "messages": [dict(m) for m in self.messages],
                "metadata": {"group": self.group, "train_on": self.train_on, "source": self.source,
                             "questions": list(self.questions)}}

    @classmethod
    def from_transcript(cls, transcript: Transcript, source: str = "") -> Example:
        meta = transcript.metadata
        server = meta.get("prompt") == "server" or meta.get("train_on") == "last"
        questions = meta.get("questions") or [customer_text(m["content"]) for m in transcript.messages
                                              if m["role"] == "user"]
        return cls(transcript.id, str(meta.get("group") or meta.get("conversation_id") or transcript.id),
                   transcript.messages, "last" if server else "all", str(meta.get("source") or source),
                   tuple(questions))


@dataclass
class ServerPrompts:
    """Builds a turn's prompt the way the dialogue manager does: retrieve, pick evidence, `build_messages`."""

    settings: Settings
    retriever: Retriever
    ranker: Any = field(init=False)

    def __post_init__(self) -> None:
        from assistant.dialogue.manager import evidence_ranker

        self.ranker = evidence_ranker(self.settings, self.retriever)

    def evidence(self, question: str, history: Sequence[dict[str, str]] = (),
                 without: str | None = None) -> EvidenceSet:
        """The turn's evidence; `without` withholds one document (a near miss: only distractors are found)."""
        hits: list[Hit] = self.retriever.search(question, history=history, k=self.settings.retrieval_k + 1)
        hits = [h for h in hits if h.doc_id != without][: self.settings.retrieval_k]
        return self.ranker.select(question, hits, history) if hits else EvidenceSet()

    def messages(self, question: str, evidence: EvidenceSet, history: Sequence[dict[str, str]] = ()
                 ) -> list[dict[str, str]]:
        return build_messages(question, evidence, company=self.settings.company_name, history=history,
                              history_messages=self.settings.history_messages)

    def checked(self, question: str, evidence: EvidenceSet, reply: str) -> str:
        """The sentences of `reply` that the grounding check passes against `evidence` ("" when none says anything)."""
        from assistant.dialogue.grounding import join_bare_answers
        from assistant.dialogue.manager import grounding_checker
        from assistant.dialogue.text import split_sentences

        checker = grounding_checker(self.settings, self.ranker, evidence, question)
        verdicts = [checker.check(s) for s in join_bare_answers(split_sentences(reply))]
        if not any(v.supported and v.checkable for v in verdicts):
            return ""
        return " ".join(v.text for v in verdicts if v.supported)


def rebuild_transcript(transcript: Transcript, prompts: ServerPrompts) -> list[Example]:
    """One example per assistant reply, in the prompt the server would build now; unsupported text left out."""
    out = []
    turns = [m for m in transcript.messages if m["role"] != "system"]
    for i, message in enumerate(turns):
        if message["role"] != "assistant" or i == 0 or turns[i - 1]["role"] != "user":
            continue
        question, history = turns[i - 1]["content"], turns[: i - 1]
        evidence = prompts.evidence(question, history)
        if not evidence:
            continue  # the server abstains without generating: nothing to learn here
        if says_it_does_not_know(message["content"]):
            target = DECLINE
        else:
            target = prompts.checked(question, evidence, message["content"])
        if not target:
            continue
        messages = [*prompts.messages(question, evidence, history), {"role": "assistant", "content": target}]
        out.append(Example(f"{transcript.id}:{i}", transcript.id, tuple(messages), "last", "transcripts",
                           tuple(m["content"] for m in turns[:i] if m["role"] == "user")))
    return out


def heading_question(title: str, section: str) -> str:
    """A customer's question for an article section, from its title and heading."""
    title, section = " ".join(title.split()), " ".join(section.split())
    if section.endswith("?"):
        return section
    if not section or section.lower() in GENERIC_HEADINGS:
        return f"How do I {title[:1].lower()}{title[1:]}?" if _imperative(title) else f"{title}?"
    return f"{title}: {section[:1].lower()}{section[1:]}?"


def _imperative(title: str) -> bool:
    first = title.split()[0].lower() if title.split() else ""
    return first.isalpha() and not first.endswith(("s", "ing")) and first not in {"the", "a", "an", "your", "our"}


def section_reply(units: Sequence[Any], sentences: int = MAX_TARGET_SENTENCES) -> str:
    """A section's evidence as a reply: its steps as a numbered list, else its first `sentences` units."""
    steps = [u.text for u in units if u.kind == "step"]
    if steps:
        return "\n".join(f"{n}. {text}" for n, text in enumerate(steps, start=1))
    return " ".join(as_sentence(u.text) for u in units[:sentences])


def pairs_from_index(prompts: ServerPrompts, *, near_miss_every: int = 3, target_sentences: int = MAX_TARGET_SENTENCES,
                     absent_names: Sequence[str] = (), absent_name_every: int = 0) -> list[Example]:
    """Question -> answer pairs from every article section of the retriever's index, and near misses.

    The question is answered only when the server's own evidence for it holds the section; then the
    reply is that evidence, verbatim: a procedure's steps, else the `target_sentences` units that best
    answer the question, in article order. Every `near_miss_every`-th question is also asked with its
    article withheld: when none of the reply is supported by what is found instead, the target is
    the honest decline. Every `absent_name_every`-th article is also asked about one of `absent_names`
    (products the knowledge base never mentions): its own article is found, and the target is the decline.
    """
    from tqdm import tqdm

    out: list[Example] = []
    ranker = prompts.ranker
    doc_ids = sorted({c.doc_id for c in prompts.retriever.index.chunks})
    asked = 0
    names = [n for n in absent_names if ranker.foreign_terms(n)]
    for number, doc_id in enumerate(tqdm(doc_ids, desc="pairs from the index", unit="doc", disable=None), start=1):
        if names and absent_name_every and number % absent_name_every == 0:
            out += absent_name_question(prompts, doc_id, names[(number // absent_name_every) % len(names)], number)
        units = ranker.units(doc_id)
        sections: dict[str, list[Any]] = {}
        for unit in units:
            sections.setdefault(unit.section, []).append(unit)
        for section, members in sections.items():
            question = heading_question(members[0].title, section)
            evidence = prompts.evidence(question)
            ours = [e for e in evidence.items if e.unit.doc_id == doc_id and e.unit.section == section]
            if not ours:
                continue
            if not any(e.unit.kind == "step" for e in ours):  # the units that answer best
                ours = sorted(ours, key=lambda e: -e.score)[:target_sentences]
            target = section_reply(sorted((e.unit for e in ours), key=lambda u: u.order), target_sentences)
            group = f"index:{doc_id}"
            messages = [*prompts.messages(question, evidence), {"role": "assistant", "content": target}]
            out.append(Example(f"{group}#{section or 'intro'}", group, tuple(messages), "last", "index", (question,)))
            asked += 1
            if near_miss_every and asked % near_miss_every == 0:
                distractors = prompts.evidence(question, without=doc_id)
                if distractors and not prompts.checked(question, distractors, target):
                    messages = [*prompts.messages(question, distractors), {"role": "assistant", "content": DECLINE}]
                    out.append(Example(f"{group}#{section or 'intro'}:near-miss", group, tuple(messages), "last",
                                       "index-near-miss", (question,)))
    return out


ABSENT_NAME_QUESTIONS = ("Does {topic} work with {name}?", "Can I use {name} for {topic}?",
                         "Is {name} supported for {topic}?")


def absent_name_question(prompts: ServerPrompts, doc_id: str, name: str, number: int) -> list[Example]:
    """An article's topic asked about a product the knowledge base never mentions; the target declines."""
    title = next((u.title for u in prompts.ranker.units(doc_id) if u.title), "")
    if not title:
        return []
    topic = title[:1].lower() + title[1:]
    question = ABSENT_NAME_QUESTIONS[number % len(ABSENT_NAME_QUESTIONS)].format(topic=topic, name=name)
    evidence = prompts.evidence(question)
    if not evidence:
        return []
    group = f"index:{doc_id}"
    messages = [*prompts.messages(question, evidence), {"role": "assistant", "content": DECLINE}]
    return [Example(f"{group}:absent-name", group, tuple(messages), "last", "index-absent-name", (question,))]


def customer_text(content: str) -> str:
    """What the customer wrote, from a user turn that may be the server's (summary, evidence, then `Question:`)."""
    head, marker, question = content.rpartition("\nQuestion: ")
    return question if marker and ("Evidence:" in head or head.startswith("Earlier in this conversation")) else content


def normalise_question(text: str) -> str:
    return " ".join(re.findall(r"[a-z0-9]+", text.lower()))


def held_out_questions(paths: Iterable[Path]) -> set[str]:
    """Normalised questions (and history turns) of test and dev sets: none may be trained on."""
    from assistant.evaluation.testsets import load_testset

    questions: set[str] = set()
    for path in paths:
        for item in load_testset(Path(path)):
            questions.add(normalise_question(item.question))
            questions.update(normalise_question(m["content"]) for m in item.history if m.get("role") == "user")
    questions.discard("")
    return questions


def drop_leaks(examples: Sequence[Example], held_out: set[str]) -> list[Example]:
    """Examples without any held-out question among their customer turns."""
    kept = [e for e in examples if not any(normalise_question(q) in held_out for q in e.questions)]
    if len(kept) < len(examples):
        log.warning("left out %d example(s) holding a test- or dev-set question", len(examples) - len(kept))
    return kept


def split(examples: Sequence[Example], dev_fraction: float = 0.1, seed: int = 0) -> tuple[list[Example], list[Example]]:
    """Deterministic train/dev split by group; dev gets at least one group when there are two or more."""
    def bucket(group: str) -> float:
        digest = hashlib.sha256(f"{seed}:{group}".encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2**64

    groups = sorted({e.group for e in examples}, key=bucket)
    n_dev = max(1, round(len(groups) * dev_fraction)) if len(groups) >= 2 and dev_fraction > 0 else 0
    dev_groups = set(groups[:n_dev])
    return [e for e in examples if e.group not in dev_groups], [e for e in examples if e.group in dev_groups]


def group_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]
