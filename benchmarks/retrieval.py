"""Retrieval quality on DSTC11 Track 5 (../shared/data/dstc11) and on the demo test set.

The DSTC11 knowledge base becomes one document per FAQ (`domain:entity_id:faq:doc_id`) and per
review sentence (`domain:entity_id:review:doc_id:sent_id`), titled with the entity's name. The
test items are the validation contexts that need knowledge, the dialogue history as context.
FAQ-grounded turns count gold FAQ documents only; review-grounded turns count any gold review
sentence (ARCHITECTURE.md). The baseline is plain BM25 over the last three turns.

`--json` prints one object on the last line; `*_ratio` keys are ours / baseline.
"""

from __future__ import annotations

import argparse
import ast
import json
import logging
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DSTC11 = ROOT.parent / "shared" / "data" / "dstc11"
log = logging.getLogger("benchmarks.retrieval")


def _field(value):
    return ast.literal_eval(value) if isinstance(value, str) else value


def dstc11_documents(path: Path = DSTC11):
    """Documents of the DSTC11 knowledge base, one per FAQ and per review sentence."""
    from knowledge import Document

    knowledge = json.loads((path / "knowledge.json").read_text(encoding="utf-8"))
    documents = []
    for domain, entities in knowledge.items():
        for entity_id, entity in entities.items():
            name = entity["name"].title()
            for doc_id, faq in _field(entity["faqs"]).items():
                documents.append(Document(f"{domain}:{entity_id}:faq:{doc_id}", name,
                                          f"{faq['question']} {faq['answer']}", metadata={"domain": domain}))
            for doc_id, review in _field(entity["reviews"]).items():
                for sent_id, sentence in _field(review["sentences"]).items():
                    documents.append(Document(f"{domain}:{entity_id}:review:{doc_id}:{sent_id}", name, sentence,
                                              metadata={"domain": domain}))
    return documents


def dstc11_items(path: Path = DSTC11):
    """Knowledge-seeking validation turns, grouped `faq` or `review`, with their gold ids."""
    from assistant.evaluation.testsets import TestItem

    logs = json.loads((path / "val_logs.json").read_text(encoding="utf-8"))
    labels = json.loads((path / "val_labels.json").read_text(encoding="utf-8"))
    items = []
    for number, (turns, label) in enumerate(zip(logs, labels, strict=True)):
        if not label.get("target") or not label.get("knowledge"):
            continue
        faqs = [k for k in label["knowledge"] if k["doc_type"] == "faq"]
        gold = ([f"{k['domain']}:{k['entity_id']}:faq:{k['doc_id']}" for k in faqs] if faqs else
                [f"{k['domain']}:{k['entity_id']}:review:{k['doc_id']}:{k['sent_id']}" for k in label["knowledge"]])
        history = tuple({"role": "user" if t["speaker"] == "U" else "assistant", "content": t["text"]}
                        for t in turns[:-1])
        items.append(TestItem(id=str(number), question=turns[-1]["text"], gold_doc_ids=tuple(gold), history=history,
                              metadata={"group": "faq" if faqs else "review"}))
    return items


def cached_index(documents, embedder, cache: Path):
    """Build once; later runs load the index and embed only documents that changed (none)."""
    from knowledge.index import KnowledgeIndex

    if cache.exists():
        index = KnowledgeIndex.load(cache)
        report = index.update(documents, embedder, remove_missing=True)
        if report.chunks_embedded or report.removed:
            index.save(cache)
        return index
    index = KnowledgeIndex.build(documents, embedder, name=cache.name)
    index.save(cache)
    return index


def distinct_docs(index, positions):
    seen, out = set(), []
    for position in positions:
        doc_id = index.chunks[position].doc_id
        if doc_id not in seen:
            seen.add(doc_id)
            out.append(doc_id)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=None, help="score only the first N DSTC11 items")
    parser.add_argument("--json", action="store_true", help="print one JSON object on the last line")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")

    from assistant.config import load_settings
    from assistant.evaluation.retrieval import evaluate_retrieval
    from assistant.evaluation.testsets import load_testset
    from knowledge.demo_data import TESTSET
    from knowledge.embedder import load_embedder
    from knowledge.retriever import Retriever, RetrieverConfig

    settings = load_settings()
    embedder = load_embedder(settings.embedder)
    result: dict = {"baseline": "bm25_last3", "ks": [1, 5, 20]}

    if not DSTC11.is_dir():
        log.warning("%s not found: DSTC11 part skipped", DSTC11)
        result["dstc11"] = None
    else:
        documents = dstc11_documents()
        started = time.perf_counter()
        index = cached_index(documents, embedder, settings.data_dir / "benchmarks" / "dstc11-index")
        log.info("DSTC11 index: %d documents ready in %.1f s", len(documents), time.perf_counter() - started)
        items = dstc11_items()[: args.limit]

        def bm25_last3(item, depth):
            query = " ".join([t["content"] for t in item.history[-2:]] + [item.question])
            return distinct_docs(index, [p for p, _ in index.keyword_search(query, depth * 3)])[:depth]

        def retriever_search(config):
            retriever = Retriever(index, embedder, config)
            return lambda item, depth: [h.doc_id for h in retriever.search(item.question, history=item.history,
                                                                           k=depth)]

        variants = {
            "bm25_last3": bm25_last3,
            "dense": retriever_search(RetrieverConfig(keyword_weight=0.0, focus_weight=0.0)),
            "bm25": retriever_search(RetrieverConfig(dense_weight=0.0, focus_weight=0.0)),
            "hybrid": retriever_search(RetrieverConfig(focus_weight=0.0)),
            "hybrid_conversational": retriever_search(RetrieverConfig()),
        }
        dstc: dict = {}
        for name, search in variants.items():
            started = time.perf_counter()
            summary, _ = evaluate_retrieval(items, search, (1, 5, 20))
            summary["seconds_per_query"] = (time.perf_counter() - started) / max(1, summary["n"])
            dstc[name] = summary
            log.info("%s: faq hit@5 %.3f, review hit@5 %.3f", name, summary["groups"]["faq"]["hit@5"],
                     summary["groups"]["review"]["hit@5"])
        base, ours = dstc["bm25_last3"]["groups"], dstc["hybrid_conversational"]["groups"]
        dstc["faq_hit@5_ratio"] = ours["faq"]["hit@5"] / max(base["faq"]["hit@5"], 1e-9)
        dstc["review_hit@5_ratio"] = ours["review"]["hit@5"] / max(base["review"]["hit@5"], 1e-9)
        result["dstc11"] = dstc

    from assistant.bootstrap import open_retriever

    demo_retriever = open_retriever(settings, embedder)
    summary, records = evaluate_retrieval(
        load_testset(TESTSET), lambda item, depth: [
            h.doc_id for h in demo_retriever.search(item.question, history=item.history, k=depth)], (1, 5, 20))
    summary["misses_at_5"] = [r["id"] for r in records if not r["hit@5"]]
    result["demo"] = summary

    if result["dstc11"]:
        for name, summary in result["dstc11"].items():
            if isinstance(summary, dict):
                groups = summary["groups"]
                print(f"{name:>22}: " + "  ".join(
                    f"{g} hit@1/5/20 {groups[g]['hit@1']:.3f}/{groups[g]['hit@5']:.3f}/{groups[g]['hit@20']:.3f} "
                    f"mrr {groups[g]['mrr']:.3f}" for g in ("faq", "review")), file=sys.stderr)
    print(f"{'demo test set':>22}: hit@1/5/20 {result['demo']['hit@1']:.3f}/{result['demo']['hit@5']:.3f}/"
          f"{result['demo']['hit@20']:.3f} mrr {result['demo']['mrr']:.3f}", file=sys.stderr)
    if args.json:
        print(json.dumps(result))


if __name__ == "__main__":
    main()
