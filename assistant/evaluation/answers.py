"""Answer quality of the whole dialogue manager on a labelled test set (keys in ARCHITECTURE.md).

Each item runs in a fresh conversation on channel `eval`, seeded with its history. The four
figures answer_rate, abstention, groundedness and fallback_rate are always reported together, so
abstaining on everything or quoting passages verbatim shows up as a poor answer_rate or token_f1.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from tqdm import tqdm

from assistant.dialogue import DialogueManager
from assistant.dialogue.events import TurnView
from assistant.dialogue.policies import ABSTAIN, ANSWER, ESCALATE
from assistant.dialogue.text import fact_tokens, strip_citations
from assistant.evaluation.aggregate import mean, median, percentile
from assistant.evaluation.testsets import TestItem
from assistant.evaluation.text_metrics import rouge_l, token_f1
from assistant.store.store import new_conversation_id


def run_item(manager: DialogueManager, item: TestItem, gold_facts: set[str] | None = None) -> dict[str, Any]:
    """One test item through the dialogue manager, as the per-item record of `eval answers --out`.

    `gold_facts` are the checkable facts its gold documents state (for `wrong_fact_rate`).
    """
    conversation_id = manager.store.ensure_conversation(new_conversation_id(), "eval")
    for turn in item.history:
        manager.store.add_message(conversation_id, turn["role"], turn["content"], "eval")
    started = time.perf_counter()
    view = TurnView.collect(manager.respond(conversation_id, item.question, channel="eval"))
    final = view.final
    assert final is not None
    by_article: dict[int, list[str]] = {}
    for unit in final.check.evidence:
        by_article.setdefault(int(unit["article"]), []).append(str(unit["text"]))
    answer = strip_citations(final.text)
    facts = fact_tokens(answer) if final.decision == ANSWER else set()
    return {
        "id": item.id, "question": item.question, "answer": answer,
        "decision": final.decision, "reason": final.reason, "abstained": final.decision in (ABSTAIN, ESCALATE),
        "escalated": view.escalated, "fallback": final.check.fallback,
        "cited_doc_ids": [c["doc_id"] for c in final.citations],
        "passages": [{"doc_id": hit.doc_id, "text": "\n".join(by_article.get(n, []))}
                     for n, hit in enumerate(view.hits, start=1)],
        "generated": bool(final.check.generated) or final.decision == ANSWER,
        "latency_s": time.perf_counter() - started,
        "first_sentence_s": final.timings.get("first_token_s"),
        "groundedness": final.check.after, "groundedness_before": final.check.before,
        "removed": final.check.removed, "repeated_sentences": repeated_sentences(final.check.generated),
        "answerable": item.answerable, "gold_doc_ids": list(item.gold_doc_ids), "reference": item.answer,
        "fact_recall": fact_recall(answer, item.answer) if final.decision == ANSWER else None,
        "wrong_facts": sorted(facts - (gold_facts or set())),
    }


def repeated_sentences(text: str) -> int:
    """Sentences of a draft that repeat an earlier one (a loop), compared as lower-cased words."""
    from assistant.dialogue.text import split_sentences
    from assistant.evaluation.text_metrics import tokens

    seen: set[tuple[str, ...]] = set()
    repeats = 0
    for sentence in split_sentences(text):
        words = tuple(tokens(sentence))
        if len(words) >= 3:
            repeats += words in seen
            seen.add(words)
    return repeats


def fact_recall(answer: str, reference: str | None) -> float | None:
    """Share of the reference's checkable facts (numbers, prices, time windows, URLs, e-mails) in the answer."""
    wanted = fact_tokens(reference or "")
    return len(wanted & fact_tokens(answer)) / len(wanted) if wanted else None


def gold_facts(chunks: Sequence[Any], doc_ids: Sequence[str]) -> set[str]:
    """Every checkable fact the given documents state (titles and text of all their chunks)."""
    wanted = set(doc_ids)
    return set().union(*(fact_tokens(f"{c.title}\n{c.text}") for c in chunks if c.doc_id in wanted))


def summarise(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The headline figures of `eval answers` (ARCHITECTURE.md), then `before_check`."""
    answerable = [r for r in records if r["answerable"]]
    unanswerable = [r for r in records if not r["answerable"]]
    answered = [r for r in records if r["decision"] == ANSWER]
    answered_answerable = [r for r in answerable if r["decision"] == ANSWER]
    referenced = [r for r in answerable if r["reference"]]
    latencies = sorted(r["latency_s"] for r in records)
    first = [r["first_sentence_s"] for r in answered if r.get("first_sentence_s") is not None]
    precision = [len(set(r["cited_doc_ids"]) & set(r["gold_doc_ids"])) / len(r["cited_doc_ids"])
                 for r in answered_answerable if r["cited_doc_ids"]]
    return {
        "n": len(records), "n_answerable": len(answerable), "n_unanswerable": len(unanswerable),
        "answer_rate": len(answered_answerable) / len(answerable) if answerable else None,
        "abstention": sum(r["abstained"] for r in unanswerable) / len(unanswerable) if unanswerable else None,
        "groundedness": mean([r["groundedness"] for r in answered]),
        "fallback_rate": sum(r["fallback"] for r in answered) / len(answered) if answered else None,
        "citation_precision": mean(precision),
        "fact_recall": mean([r["fact_recall"] for r in answered_answerable if r["reference"]]),
        "wrong_fact_rate": sum(bool(r["wrong_facts"]) for r in answered) / len(answered) if answered else None,
        "escalation_rate": sum(r["escalated"] for r in records) / len(records) if records else None,
        "token_f1": mean([token_f1(r["answer"], r["reference"]) for r in referenced]),
        "rouge_l": mean([rouge_l(r["answer"], r["reference"]) for r in referenced]),
        "latency_p50_s": median(latencies),
        "latency_p95_s": percentile(latencies, 0.95),
        "first_sentence_p50_s": median(first),
        "before_check": {  # what the customer would have got had the generated draft been shown unchecked
            "answer_rate": sum(r["generated"] for r in answerable) / len(answerable) if answerable else None,
            "abstention": sum(not r["generated"] for r in unanswerable) / len(unanswerable) if unanswerable else None,
            "groundedness": mean([r["groundedness_before"] for r in records if r["generated"]]),
            "sentences_held_back": sum(r["removed"] for r in records),
            "drafts_with_repeats": sum(bool(r.get("repeated_sentences")) for r in records),
        },
    }


def evaluate_answers(manager: DialogueManager, items: Sequence[TestItem], progress: bool = True
                     ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Summary and per-item records of every test item run through the manager."""
    chunks = manager.retriever.index.chunks
    records = [run_item(manager, item, gold_facts(chunks, item.gold_doc_ids))
               for item in tqdm(items, desc="answers", disable=not progress)]
    return summarise(records), records
