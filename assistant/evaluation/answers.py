"""Answer quality of the whole dialogue manager on a labelled test set (keys in ARCHITECTURE.md).

Each item runs in a fresh conversation on channel `eval`, seeded with its history. The four
figures answer_rate, abstention, groundedness and fallback_rate are always reported together, so
abstaining on everything or quoting passages verbatim shows up as a poor answer_rate or token_f1.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from typing import Any

from tqdm import tqdm

from assistant.dialogue import DialogueManager, Escalated, Final, Sources
from assistant.dialogue.grounding import strip_citations
from assistant.dialogue.policies import ABSTAIN, ANSWER, ESCALATE
from assistant.evaluation.testsets import TestItem
from assistant.evaluation.text_metrics import rouge_l, token_f1
from assistant.guards import quote_as_data
from assistant.store.store import new_conversation_id


def run_item(manager: DialogueManager, item: TestItem) -> dict[str, Any]:
    """One test item through the dialogue manager, as the per-item record of `eval answers --out`."""
    conversation_id = manager.store.ensure_conversation(new_conversation_id(), "eval")
    for turn in item.history:
        manager.store.add_message(conversation_id, turn["role"], turn["content"], "eval")
    started = time.perf_counter()
    hits, escalated, final = [], False, None
    for event in manager.respond(conversation_id, item.question, channel="eval"):
        if isinstance(event, Sources):
            hits = event.hits
        elif isinstance(event, Escalated):
            escalated = True
        elif isinstance(event, Final):
            final = event
    assert final is not None
    row = next(m for m in manager.store.messages(conversation_id) if m.id == final.message_id)
    return {
        "id": item.id, "question": item.question, "answer": strip_citations(final.text),
        "decision": final.decision, "abstained": final.decision in (ABSTAIN, ESCALATE),
        "escalated": escalated, "fallback": bool(row.fallback),
        "cited_doc_ids": [c["doc_id"] for c in final.citations],
        "passages": [{"doc_id": hit.doc_id, "text": quote_as_data(hit.text)} for hit in hits],
        "generated": bool(hits),
        "latency_s": time.perf_counter() - started,
        "groundedness": row.groundedness, "groundedness_before": row.groundedness_before,
        "answerable": item.answerable, "gold_doc_ids": list(item.gold_doc_ids), "reference": item.answer,
    }


def _mean(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return sum(present) / len(present) if present else None


def summarise(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The headline figures of `eval answers` (ARCHITECTURE.md), then `before_check`."""
    answerable = [r for r in records if r["answerable"]]
    unanswerable = [r for r in records if not r["answerable"]]
    answered = [r for r in records if r["decision"] == ANSWER]
    answered_answerable = [r for r in answerable if r["decision"] == ANSWER]
    referenced = [r for r in answerable if r["reference"]]
    latencies = sorted(r["latency_s"] for r in records)
    precision = [len(set(r["cited_doc_ids"]) & set(r["gold_doc_ids"])) / len(r["cited_doc_ids"])
                 for r in answered_answerable if r["cited_doc_ids"]]
    return {
        "n": len(records), "n_answerable": len(answerable), "n_unanswerable": len(unanswerable),
        "answer_rate": len(answered_answerable) / len(answerable) if answerable else None,
        "abstention": sum(r["abstained"] for r in unanswerable) / len(unanswerable) if unanswerable else None,
        "groundedness": _mean([r["groundedness"] for r in answered]),
        "fallback_rate": sum(r["fallback"] for r in answered) / len(answered) if answered else None,
        "citation_precision": _mean(precision),
        "escalation_rate": sum(r["escalated"] for r in records) / len(records) if records else None,
        "token_f1": _mean([token_f1(r["answer"], r["reference"]) for r in referenced]),
        "rouge_l": _mean([rouge_l(r["answer"], r["reference"]) for r in referenced]),
        "latency_p50_s": statistics.median(latencies) if latencies else None,
        "latency_p95_s": latencies[min(len(latencies) - 1, int(0.95 * len(latencies)))] if latencies else None,
        "before_check": {  # what the customer would have got had the generated draft been shown unchecked
            "answer_rate": sum(r["generated"] for r in answerable) / len(answerable) if answerable else None,
            "abstention": sum(not r["generated"] for r in unanswerable) / len(unanswerable) if unanswerable else None,
            "groundedness": _mean([r["groundedness_before"] for r in records if r["generated"]]),
        },
    }


def evaluate_answers(manager: DialogueManager, items: Sequence[TestItem], progress: bool = True
                     ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Summary and per-item records of every test item run through the manager."""
    records = [run_item(manager, item) for item in tqdm(items, desc="answers", disable=not progress)]
    return summarise(records), records
