"""DSTC11 Track 5 (hotels and restaurants in Cambridge) as fine-tuning examples and as a held-out test.

Each knowledge-seeking context becomes one turn in the server's prompt: the dialogue so far as
history, the gold knowledge as the evidence (one article per hotel or restaurant: its FAQ answers
and review sentences), the last customer turn as the question, the annotated response as the
target. Contexts of one dialogue share their opening turn; the split hashes it, so a dialogue's
contexts are all in training or all held out.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from assistant.dialogue.evidence import Evidence, EvidenceSet, Unit
from assistant.prompts import build_messages
from knowledge import Hit
from training.data import Example, group_hash
from training.records import TrainingDataError

COMPANY = "Cambridge TownInfo"
"""Who the assistant speaks for in these dialogues (a tourist-information desk)."""
FILES = ("knowledge.json", "val_logs.json", "val_labels.json")


@dataclass(frozen=True)
class Turn:
    """A knowledge-seeking context: history, question, evidence and the gold response."""

    id: str
    group: str
    history: tuple[dict[str, str], ...]
    question: str
    evidence: EvidenceSet
    response: str


def load_turns(folder: Path) -> list[Turn]:
    """Every context that needs knowledge, in file order."""
    folder = Path(folder)
    missing = [name for name in FILES if not (folder / name).is_file()]
    if missing:
        raise TrainingDataError(f"{folder}: missing {', '.join(missing)} (expected the DSTC11 Track 5 files)")
    knowledge = json.loads((folder / "knowledge.json").read_text(encoding="utf-8"))
    logs = json.loads((folder / "val_logs.json").read_text(encoding="utf-8"))
    labels = json.loads((folder / "val_labels.json").read_text(encoding="utf-8"))
    turns = []
    for n, (log, label) in enumerate(zip(logs, labels, strict=True)):
        if not label.get("target") or not label.get("knowledge") or not log or log[-1]["speaker"] != "U":
            continue
        history = tuple({"role": "user" if t["speaker"] == "U" else "assistant", "content": t["text"]}
                        for t in log[:-1])
        turns.append(Turn(f"dstc11-{n}", group_hash(log[0]["text"]), history, log[-1]["text"],
                          _evidence(knowledge, label["knowledge"]), label["response"]))
    return turns


def _evidence(knowledge: dict, snippets: list[dict]) -> EvidenceSet:
    """The gold snippets as evidence: one article per entity, FAQ answers before review sentences."""
    articles: dict[str, Hit] = {}
    items: list[Evidence] = []
    for position, ref in enumerate(snippets):
        entity = knowledge[ref["domain"]][str(ref["entity_id"])]
        doc_id = f"{ref['domain']}/{ref['entity_id']}"
        name = entity["name"].title()
        if doc_id not in articles:
            articles[doc_id] = Hit(doc_id=doc_id, chunk_id=f"{doc_id}#0", title=name, text="", source="", score=1.0,
                                   confidence=1.0)
        if ref["doc_type"] == "faq":
            faq = entity["faqs"][str(ref["doc_id"])]
            text, section, order = f"{faq['question']} {faq['answer']}", "FAQ", (0, position)
        else:
            text = entity["reviews"][str(ref["doc_id"])]["sentences"][str(ref["sent_id"])]
            section, order = "Reviews", (1, position)
        number = list(articles).index(doc_id) + 1
        unit = Unit(doc_id=doc_id, title=name, source="", section=section, text=text, order=order)
        items.append(Evidence(unit, 1.0, number))
    return EvidenceSet(items, list(articles.values()), 1.0)


def split_turns(turns: list[Turn], held_out_every: int = 5) -> tuple[list[Turn], list[Turn]]:
    """(train, held out): one dialogue in `held_out_every` (by the hash of its opening turn) is held out."""
    held = [t for t in turns if int(t.group, 16) % held_out_every == 0]
    return [t for t in turns if int(t.group, 16) % held_out_every != 0], held


def turn_messages(turn: Turn, history_messages: int = 4) -> list[dict[str, str]]:
    """The prompt the server would build for this turn."""
    return build_messages(turn.question, turn.evidence, company=COMPANY, history=turn.history,
                          history_messages=history_messages)


def examples(turns: list[Turn], history_messages: int = 4) -> list[Example]:
    """Fine-tuning examples: the server's prompt, then the annotated response."""
    return [Example(t.id, f"dstc11:{t.group}",
                    (*turn_messages(t, history_messages), {"role": "assistant", "content": t.response}), "last",
                    "dstc11", (*(m["content"] for m in t.history if m["role"] == "user"), t.question))
            for t in turns]
