"""Retrieval quality on DSTC11 Track 5 (../shared/data/dstc11) and on the demo test set.

The DSTC11 knowledge base becomes one document per FAQ (`domain:entity_id:faq:doc_id`) and per
review sentence (`domain:entity_id:review:doc_id:sent_id`), titled with the entity's name. The
test items are the validation contexts that need knowledge, the dialogue history as context.
FAQ-grounded turns count gold FAQ documents only; review-grounded turns count any gold review
sentence (ARCHITECTURE.md). The baseline is plain BM25 over the last three turns.

Ranking weights are fitted on dev data only: for DSTC11 on the even-numbered validation contexts
(`dev`), reported apart from the odd-numbered ones they never saw (`held_out`) and on `all`; for
the demo on `devset.jsonl` (as `assistant kb calibrate` does), reported apart from `testset.jsonl`.
Every variant runs in the same process: the baseline, embedding alone, BM25 alone, the untuned
default weights and the tuned weights.

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


def split_summaries(records, ks, splits):
    """Summary (with groups) of the records of each split, by a predicate on the item id."""
    from assistant.evaluation.retrieval import summarise

    out = {}
    for split, member in splits.items():
        rows = [r for r in records if member(r["id"])]
        groups = sorted({r["group"] for r in rows if r["group"]})
        out[split] = {**summarise(rows, ks),
                      "groups": {g: summarise([r for r in rows if r["group"] == g], ks) for g in groups}}
    return out


def score_variants(items, gathered, baseline, ks, splits):
    """Records of the baseline and of each weight variant (ranked from the gathered candidates), per split.

    Ranking the gathered candidates is what `Retriever.search` does; the single rankings rank a
    pool that holds each one's own top 50, so their top 20 is plain embedding or plain BM25 search.
    """
    from assistant.evaluation.retrieval import evaluate_retrieval, item_scores
    from knowledge.ranking import DEFAULT_WEIGHTS, RankingWeights, single_feature
    from knowledge.tuning import ranked_doc_ids

    index_weights = {"dense": single_feature("dense"), "bm25": single_feature("keyword"),
                     "default_weights": DEFAULT_WEIGHTS}
    _, records = evaluate_retrieval(items, baseline, ks, progress=False)
    figures = {"bm25_last3": split_summaries(records, ks, splits)}
    misses = {}
    tuned = RankingWeights.from_dict(gathered["weights"])
    for name, weights in {**index_weights, "tuned": tuned}.items():
        rows = [{"id": item.id, "group": item.group,
                 **item_scores(ranked_doc_ids(found, weights, max(ks)), set(item.gold_doc_ids), ks)}
                for item, found in zip(items, gathered["items"], strict=True)]
        figures[name] = split_summaries(rows, ks, splits)
        misses[name] = [r["id"] for r in rows if not r["hit@5"]]
    return figures, misses


def timed_search(retriever, items, gathered, sample=200):
    """Mean seconds of `Retriever.search` (k=20) over a sample, and how often it agrees with the scoring above."""
    from knowledge.tuning import ranked_doc_ids

    pairs = list(zip(items, gathered, strict=True))[:sample]
    started, cpu_started = time.perf_counter(), time.process_time()
    results = [[h.doc_id for h in retriever.search(item.question, history=item.history, k=20)] for item, _ in pairs]
    seconds = (time.perf_counter() - started) / max(1, len(pairs))
    cpu_seconds = (time.process_time() - cpu_started) / max(1, len(pairs))  # wall time suffers on a shared machine
    agree = sum(r == ranked_doc_ids(found, retriever.weights, 20) for r, (_, found) in zip(results, pairs, strict=True))
    return {"seconds_per_query": seconds, "cpu_seconds_per_query": cpu_seconds,
            "same_ranking_as_scored": agree / max(1, len(pairs)), "n": len(pairs)}


def bm25_last3(index):
    """The baseline: BM25 over the last three turns, chunks grouped per document."""
    def search(item, depth):
        query = " ".join([t["content"] for t in item.history[-2:]] + [item.question])
        return distinct_docs(index, [p for p, _ in index.keyword_search(query, depth * 3)])[:depth]
    return search


def scored_items(items):
    """The answerable items with gold ids (the ones hit@k scores)."""
    return [item for item in items if item.answerable and item.gold_doc_ids]


def dev_questions(items):
    from knowledge.tuning import DevQuestion

    return [DevQuestion(i.question, frozenset(i.gold_doc_ids), i.history, i.group or "all")
            for i in scored_items(items)]


def ratios(figures, split, groups, baseline="bm25_last3", ours="tuned", metric="hit@5"):
    """ours / baseline for `metric` in each group of a split."""
    out = {}
    for group in groups:
        base = figures[baseline][split]["groups"][group][metric] if group else figures[baseline][split][metric]
        mine = figures[ours][split]["groups"][group][metric] if group else figures[ours][split][metric]
        out[f"{split}_{group or 'all'}_{metric}_ratio"] = mine / max(base, 1e-9)
    return out


def fit_default(penalties=(0.3, 1.0, 3.0, 10.0, 30.0)) -> None:
    """Fit default weights on the DSTC11 dev half and the demo devset, each set weighted equally; the
    L2 strength with the best mean dev MRR wins."""
    from assistant.bootstrap import open_retriever
    from assistant.config import load_settings
    from assistant.evaluation.testsets import load_testset
    from knowledge.demo_data import DEVSET
    from knowledge.embedder import load_embedder
    from knowledge.ranking import fit_ranking
    from knowledge.retriever import Retriever
    from knowledge.tuning import gather, group_figures

    settings = load_settings()
    embedder = load_embedder(settings.embedder)
    index = cached_index(dstc11_documents(), embedder, settings.data_dir / "benchmarks" / "dstc11-index")
    dstc = gather(Retriever(index, embedder), dev_questions([i for i in dstc11_items() if int(i.id) % 2 == 0]))
    demo = gather(open_retriever(settings, embedder), dev_questions(load_testset(DEVSET)))
    queries = [(item.features, item.gold) for item in dstc] + [(item.features, item.gold) for item in demo] * max(
        1, round(len(dstc) / len(demo)))
    fits = []
    for penalty in penalties:
        weights = fit_ranking(queries, l2=penalty)
        mrr = [group_figures(items, weights)["all"]["mrr"] for items in (dstc, demo)]
        log.info("l2=%s: dev mrr DSTC11 %.4f, demo %.4f", penalty, *mrr)
        fits.append((sum(mrr) / 2, penalty, weights))
    _, penalty, weights = max(fits, key=lambda fit: fit[0])
    print(json.dumps({"l2": penalty, "weights": {k: round(v, 3) for k, v in weights.as_dict().items()}}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=None, help="score only the first N DSTC11 items")
    parser.add_argument("--json", action="store_true", help="print one JSON object on the last line")
    parser.add_argument("--fit-default", action="store_true",
                        help="only refit knowledge.ranking.DEFAULT_WEIGHTS on the two dev sets and print them")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    if args.fit_default:
        fit_default()
        return

    from assistant.bootstrap import open_retriever
    from assistant.config import load_settings
    from assistant.evaluation.testsets import load_testset
    from knowledge.demo_data import DEVSET, TESTSET
    from knowledge.embedder import load_embedder
    from knowledge.retriever import Retriever
    from knowledge.tuning import choose_weights, gather, tune_ranking

    settings = load_settings()
    embedder = load_embedder(settings.embedder)
    ks = (1, 5, 20)
    result: dict = {"baseline": "bm25_last3", "ks": list(ks)}

    if not DSTC11.is_dir():
        log.warning("%s not found: DSTC11 part skipped", DSTC11)
        result["dstc11"] = None
    else:
        documents = dstc11_documents()
        started = time.perf_counter()
        index = cached_index(documents, embedder, settings.data_dir / "benchmarks" / "dstc11-index")
        log.info("DSTC11 index: %d documents ready in %.1f s", len(documents), time.perf_counter() - started)
        items = scored_items(dstc11_items()[: args.limit])
        retriever = Retriever(index, embedder)
        started = time.perf_counter()
        found = gather(retriever, dev_questions(items))
        log.info("DSTC11 candidates of %d items gathered in %.0f s", len(items), time.perf_counter() - started)
        dev = [f for item, f in zip(items, found, strict=True) if int(item.id) % 2 == 0]
        record = choose_weights(dev, "DSTC11 val, even-numbered contexts")
        index.card["ranking"] = record  # in memory: the cached index stays untuned
        log.info("DSTC11 ranking: %s", record["chosen"])
        splits = {"held_out": lambda i: int(i) % 2 == 1, "dev": lambda i: int(i) % 2 == 0, "all": lambda i: True}
        dstc, _ = score_variants(items, {"items": found, "weights": record["weights"]}, bm25_last3(index), ks, splits)
        for split in ("held_out", "all"):
            dstc.update(ratios(dstc, split, ("faq", "review")))
        dstc["search"] = timed_search(retriever, items, found)
        dstc["ranking"] = {key: record[key] for key in ("chosen", "fitted_on", "n", "weights", "tried")}
        result["dstc11"] = dstc

    retriever = open_retriever(settings, embedder)
    if "ranking" not in retriever.index.card:  # an index built before ranking was tuned at build time
        log.warning("the default index has no tuned ranking: fitting it on %s (in memory)", DEVSET.name)
        tune_ranking(retriever, dev_questions(load_testset(DEVSET)), str(DEVSET))
    dev_items = scored_items(load_testset(DEVSET))
    dev_ids = {item.id for item in dev_items}
    items = [*dev_items, *scored_items(load_testset(TESTSET))]
    found = gather(retriever, dev_questions(items))
    demo, misses = score_variants(items, {"items": found, "weights": retriever.index.card["ranking"]["weights"]},
                                  bm25_last3(retriever.index), ks,
                                  {"test": lambda i: i not in dev_ids, "dev": lambda i: i in dev_ids})
    demo["misses_at_5"] = {name: [i for i in ids if i not in dev_ids] for name, ids in misses.items()}
    demo.update(ratios(demo, "test", (None,)))
    demo["search"] = timed_search(retriever, items, found)
    demo["ranking"] = {key: retriever.index.card["ranking"].get(key) for key in ("chosen", "fitted_on", "n")}
    result["demo"] = demo

    print_table(result)
    if args.json:
        print(json.dumps(result))


def _latency(search) -> str:
    return (f"{1000 * search['seconds_per_query']:.1f} ms/query wall, {1000 * search['cpu_seconds_per_query']:.1f} ms "
            f"CPU; same ranking as scored: {search['same_ranking_as_scored']:.3f}")


def print_table(result) -> None:
    """A human table on stderr: each variant's hit@1/5/20 per split and group."""
    def row(label, s):
        return f"{label} {s['hit@1']:.3f}/{s['hit@5']:.3f}/{s['hit@20']:.3f} mrr {s['mrr']:.3f} (n={s['n']})"

    def variants(figures, split):
        return [(name, f[split]) for name, f in figures.items() if isinstance(f, dict) and split in f]

    if result["dstc11"]:
        print(f"DSTC11 hit@1/5/20; ranking {result['dstc11']['ranking']['chosen']} on the dev half", file=sys.stderr)
        for split in ("held_out", "dev", "all"):
            for name, figures in variants(result["dstc11"], split):
                print(f"  {split:>8} {name:>15}: " + "  ".join(row(g, figures["groups"][g]) for g in ("faq", "review")),
                      file=sys.stderr)
        print(f"  search: {_latency(result['dstc11']['search'])}", file=sys.stderr)
    print(f"demo hit@1/5/20; ranking {result['demo']['ranking']['chosen']} on devset.jsonl", file=sys.stderr)
    for split in ("test", "dev"):
        for name, figures in variants(result["demo"], split):
            print(f"  {split:>8} {name:>15}: {row('all', figures)}", file=sys.stderr)
    print(f"  search: {_latency(result['demo']['search'])}; test misses at 5: "
          f"{result['demo']['misses_at_5']['tuned']}", file=sys.stderr)


if __name__ == "__main__":
    main()
