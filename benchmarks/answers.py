"""Answer correctness on the demo test set: our dialogue manager against an extractive baseline.

The baseline has no model: it answers every question with the sentence of the top retrieved
document closest to the question by MiniLM cosine. Both are scored by the same `eval answers`
summary (answer_rate, abstention, groundedness, fallback_rate, citation_precision, fact_recall,
wrong_fact_rate, token_f1, ...), so the figures sit side by side. `--baseline-only` skips our
pipeline (it runs the real model and takes minutes on 2 cores).

`--json` prints one object on the last line; `*_ratio` keys are ours / baseline.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
log = logging.getLogger("benchmarks.answers")


def baseline_record(retriever: Any, item: Any, gold: set[str]) -> dict[str, Any]:
    """The top document's sentence closest to the question, as an `eval answers` record."""
    from assistant.dialogue.text import fact_tokens, split_sentences
    from assistant.evaluation.answers import fact_recall

    started = time.perf_counter()
    hits = retriever.search(item.question, history=item.history, k=1)
    answer, cited = "", []
    if hits:
        top = hits[0].doc_id
        text = "\n".join(c.text for c in retriever.index.chunks if c.doc_id == top)
        sentences = [s for line in text.splitlines() if line.strip() and not line.startswith("#")
                     for s in split_sentences(line.lstrip("-*0123456789. ").replace("**", ""))]
        vectors = retriever.embedder.encode([item.question, *sentences])
        answer = sentences[int((vectors[1:] @ vectors[0]).argmax())] if sentences else ""
        cited = [top]
    decision = "answer" if answer else "abstain"
    return {
        "id": item.id, "question": item.question, "answer": answer, "decision": decision,
        "abstained": decision != "answer", "escalated": False, "fallback": False, "cited_doc_ids": cited,
        "generated": False, "latency_s": time.perf_counter() - started, "first_sentence_s": None,
        "groundedness": None, "groundedness_before": None, "removed": 0, "answerable": item.answerable,
        "gold_doc_ids": list(item.gold_doc_ids), "reference": item.answer,
        "fact_recall": fact_recall(answer, item.answer) if answer else None,
        "wrong_facts": sorted(fact_tokens(answer) - gold),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--testset", type=Path, default=ROOT / "knowledge" / "demo" / "testset.jsonl")
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--baseline-only", action="store_true")
    parser.add_argument("--json", action="store_true", help="Print one JSON object on the last line.")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s: %(message)s")

    from assistant.bootstrap import build_dialogue_manager, open_retriever
    from assistant.config import load_settings
    from assistant.evaluation.answers import evaluate_answers, gold_facts, summarise
    from assistant.evaluation.testsets import load_testset

    settings = load_settings()
    retriever = open_retriever(settings)
    items = load_testset(args.testset, retriever.index.document_hashes)[: args.limit]
    chunks = retriever.index.chunks
    baseline = summarise([baseline_record(retriever, item, gold_facts(chunks, item.gold_doc_ids))
                          for item in items])
    result: dict[str, Any] = {"testset": str(args.testset), "n": len(items),
                              "baseline": "extractive: top document's sentence closest to the question (MiniLM)",
                              "baseline_figures": baseline}
    if not args.baseline_only:
        ours, _ = evaluate_answers(build_dialogue_manager(settings, retriever=retriever), items)
        result["ours"] = ours
        for key in ("fact_recall", "token_f1", "answer_rate", "abstention"):
            if ours.get(key) is not None and baseline.get(key):
                result[f"{key}_ratio"] = round(ours[key] / baseline[key], 3)
    if args.json:
        sys.stdout.write(json.dumps(result, default=str) + "\n")
        return
    keys = [k for k, v in baseline.items() if not isinstance(v, dict)]
    print(f"{'metric':>22} {'baseline':>10} {'ours':>10}")
    for key in keys:
        ours_value = result.get("ours", {}).get(key)
        print(f"{key:>22} {_fmt(baseline[key]):>10} {_fmt(ours_value):>10}")


def _fmt(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, float) else str(value)


if __name__ == "__main__":
    main()
